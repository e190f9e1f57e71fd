//! JOSE signature algorithms (RFC 7518 section 3) and how each maps onto KMS and aws-lc-rs.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::{digest, signature};

/// An elliptic curve that KMS signs with and JOSE names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// NIST P-256 (`ECC_NIST_P256`).
    P256,
    /// NIST P-384 (`ECC_NIST_P384`).
    P384,
    /// NIST P-521 (`ECC_NIST_P521`).
    P521,
    /// SECG secp256k1 (`ECC_SECG_P256K1`).
    Secp256k1,
}

impl Curve {
    pub(crate) const ALL: [Curve; 4] = [Curve::P256, Curve::P384, Curve::P521, Curve::Secp256k1];

    /// The JWK `crv` value.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
            Curve::Secp256k1 => "secp256k1",
        }
    }

    /// The KMS `KeySpec` of keys on this curve.
    #[must_use]
    pub const fn kms_key_spec(self) -> &'static str {
        match self {
            Curve::P256 => "ECC_NIST_P256",
            Curve::P384 => "ECC_NIST_P384",
            Curve::P521 => "ECC_NIST_P521",
            Curve::Secp256k1 => "ECC_SECG_P256K1",
        }
    }

    /// The only JWS algorithm defined for this curve.
    #[must_use]
    pub const fn algorithm(self) -> Algorithm {
        match self {
            Curve::P256 => Algorithm::ES256,
            Curve::P384 => Algorithm::ES384,
            Curve::P521 => Algorithm::ES512,
            Curve::Secp256k1 => Algorithm::ES256K,
        }
    }

    /// Bytes in one coordinate or scalar: half the length of a JOSE signature.
    #[must_use]
    pub const fn scalar_len(self) -> usize {
        match self {
            Curve::P256 | Curve::Secp256k1 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// The curve with this KMS key spec.
    #[must_use]
    pub fn from_kms_key_spec(spec: &str) -> Option<Curve> {
        Curve::ALL.into_iter().find(|c| c.kms_key_spec() == spec)
    }

    pub(crate) fn from_name(name: &str) -> Option<Curve> {
        Curve::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An ML-DSA parameter set (FIPS 204): the key and signature sizes and the security level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MlDsaLevel {
    /// ML-DSA-44 (`ML_DSA_44`): 1,312-byte public key, 2,420-byte signature.
    L44,
    /// ML-DSA-65 (`ML_DSA_65`): 1,952-byte public key, 3,309-byte signature.
    L65,
    /// ML-DSA-87 (`ML_DSA_87`): 2,592-byte public key, 4,627-byte signature.
    L87,
}

impl MlDsaLevel {
    pub(crate) const ALL: [MlDsaLevel; 3] = [MlDsaLevel::L44, MlDsaLevel::L65, MlDsaLevel::L87];

    /// The KMS `KeySpec` of keys of this parameter set.
    #[must_use]
    pub const fn kms_key_spec(self) -> &'static str {
        match self {
            MlDsaLevel::L44 => "ML_DSA_44",
            MlDsaLevel::L65 => "ML_DSA_65",
            MlDsaLevel::L87 => "ML_DSA_87",
        }
    }

    /// The JWS algorithm of this parameter set (also the JWK's required `alg`).
    #[must_use]
    pub const fn algorithm(self) -> Algorithm {
        match self {
            MlDsaLevel::L44 => Algorithm::MlDsa44,
            MlDsaLevel::L65 => Algorithm::MlDsa65,
            MlDsaLevel::L87 => Algorithm::MlDsa87,
        }
    }

    /// Bytes in an encoded public key.
    #[must_use]
    pub const fn public_key_len(self) -> usize {
        match self {
            MlDsaLevel::L44 => 1312,
            MlDsaLevel::L65 => 1952,
            MlDsaLevel::L87 => 2592,
        }
    }

    /// Bytes in a signature.
    #[must_use]
    pub const fn signature_len(self) -> usize {
        match self {
            MlDsaLevel::L44 => 2420,
            MlDsaLevel::L65 => 3309,
            MlDsaLevel::L87 => 4627,
        }
    }
}

/// The KMS `KeySpec` of Ed25519 keys.
pub(crate) const ED25519_KEY_SPEC: &str = "ECC_NIST_EDWARDS25519";

/// A JWS signature algorithm that a KMS asymmetric key can produce.
///
/// HMAC (`HS*`) and `none` are deliberately absent: a KMS signing key is asymmetric, and a
/// verifier that knows only these algorithms cannot be talked into the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256, 32-byte salt.
    PS256,
    /// RSASSA-PSS with SHA-384, MGF1-SHA-384, 48-byte salt.
    PS384,
    /// RSASSA-PSS with SHA-512, MGF1-SHA-512, 64-byte salt.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// ECDSA on P-521 with SHA-512.
    ES512,
    /// ECDSA on secp256k1 with SHA-256 (RFC 8812).
    ES256K,
    /// `EdDSA` (RFC 8037), which on this crate's keys is always Ed25519: the `alg` that
    /// `PyJWT`, jsonwebtoken and most verifiers accept today.
    EdDSA,
    /// Ed25519, fully specified (RFC 9864): the same signature as [`Algorithm::EdDSA`] under
    /// the name RFC 9864 recommends for new use.
    Ed25519,
    /// ML-DSA-44 (RFC 9964), pure ML-DSA with an empty context.
    MlDsa44,
    /// ML-DSA-65 (RFC 9964).
    MlDsa65,
    /// ML-DSA-87 (RFC 9964).
    MlDsa87,
}

/// The key family an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    /// An RSA key (any size from 2048 bits).
    Rsa,
    /// An EC key on this curve.
    Ec(Curve),
    /// An Ed25519 key (JWK `kty` `OKP`, `crv` `Ed25519`).
    Ed25519,
    /// An ML-DSA key of this parameter set (JWK `kty` `AKP`).
    MlDsa(MlDsaLevel),
}

impl Algorithm {
    /// Every algorithm, in the order RFC 7518 lists them.
    pub const ALL: [Algorithm; 15] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::ES256K,
        Algorithm::EdDSA,
        Algorithm::Ed25519,
        Algorithm::MlDsa44,
        Algorithm::MlDsa65,
        Algorithm::MlDsa87,
    ];

    /// The `alg` header value.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
            Algorithm::ES256K => "ES256K",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::Ed25519 => "Ed25519",
            Algorithm::MlDsa44 => "ML-DSA-44",
            Algorithm::MlDsa65 => "ML-DSA-65",
            Algorithm::MlDsa87 => "ML-DSA-87",
        }
    }

    /// The digest a signer computes locally over the signing input, so that only the digest
    /// travels to KMS; `None` for Ed25519 and ML-DSA, which sign the message itself.
    #[must_use]
    pub fn digest(self) -> Option<&'static digest::Algorithm> {
        match self {
            Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 | Algorithm::ES256K => Some(&digest::SHA256),
            Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => Some(&digest::SHA384),
            Algorithm::RS512 | Algorithm::PS512 | Algorithm::ES512 => Some(&digest::SHA512),
            Algorithm::EdDSA | Algorithm::Ed25519 | Algorithm::MlDsa44 | Algorithm::MlDsa65 | Algorithm::MlDsa87 => {
                None
            }
        }
    }

    /// The KMS `SigningAlgorithmSpec` that produces this algorithm's signature.
    #[must_use]
    pub const fn kms_name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RSASSA_PKCS1_V1_5_SHA_256",
            Algorithm::RS384 => "RSASSA_PKCS1_V1_5_SHA_384",
            Algorithm::RS512 => "RSASSA_PKCS1_V1_5_SHA_512",
            Algorithm::PS256 => "RSASSA_PSS_SHA_256",
            Algorithm::PS384 => "RSASSA_PSS_SHA_384",
            Algorithm::PS512 => "RSASSA_PSS_SHA_512",
            Algorithm::ES256 | Algorithm::ES256K => "ECDSA_SHA_256",
            Algorithm::ES384 => "ECDSA_SHA_384",
            Algorithm::ES512 => "ECDSA_SHA_512",
            // Pure Ed25519 over the raw message; `ED25519_PH_SHA_512` is Ed25519ph, which JOSE
            // does not define.
            Algorithm::EdDSA | Algorithm::Ed25519 => "ED25519_SHA_512",
            Algorithm::MlDsa44 | Algorithm::MlDsa65 | Algorithm::MlDsa87 => "ML_DSA_SHAKE_256",
        }
    }

    /// The key family (and curve) this algorithm signs with.
    #[must_use]
    pub const fn key_family(self) -> KeyFamily {
        match self {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => KeyFamily::Rsa,
            Algorithm::ES256 => KeyFamily::Ec(Curve::P256),
            Algorithm::ES384 => KeyFamily::Ec(Curve::P384),
            Algorithm::ES512 => KeyFamily::Ec(Curve::P521),
            Algorithm::ES256K => KeyFamily::Ec(Curve::Secp256k1),
            Algorithm::EdDSA | Algorithm::Ed25519 => KeyFamily::Ed25519,
            Algorithm::MlDsa44 => KeyFamily::MlDsa(MlDsaLevel::L44),
            Algorithm::MlDsa65 => KeyFamily::MlDsa(MlDsaLevel::L65),
            Algorithm::MlDsa87 => KeyFamily::MlDsa(MlDsaLevel::L87),
        }
    }

    /// Whether a KMS key of this `KeySpec` can sign with this algorithm.
    #[must_use]
    pub fn fits_key_spec(self, key_spec: &str) -> bool {
        match self.key_family() {
            KeyFamily::Rsa => matches!(key_spec, "RSA_2048" | "RSA_3072" | "RSA_4096"),
            KeyFamily::Ec(curve) => curve.kms_key_spec() == key_spec,
            KeyFamily::Ed25519 => key_spec == ED25519_KEY_SPEC,
            KeyFamily::MlDsa(level) => level.kms_key_spec() == key_spec,
        }
    }

    /// The algorithm a key of this family is pinned to when nothing else is asked for:
    /// RS256 for RSA (the most widely verified), the curve's own ES* for EC, `EdDSA` for
    /// Ed25519 (what verifiers accept today, RFC 9864's `Ed25519` on request), the parameter
    /// set's own ML-DSA.
    #[must_use]
    pub const fn default_for(family: KeyFamily) -> Algorithm {
        match family {
            KeyFamily::Rsa => Algorithm::RS256,
            KeyFamily::Ec(curve) => curve.algorithm(),
            KeyFamily::Ed25519 => Algorithm::EdDSA,
            KeyFamily::MlDsa(level) => level.algorithm(),
        }
    }

    /// The default algorithm for a KMS key spec, if the spec can sign JWTs at all.
    #[must_use]
    pub fn default_for_key_spec(key_spec: &str) -> Option<Algorithm> {
        match key_spec {
            "RSA_2048" | "RSA_3072" | "RSA_4096" => Some(Algorithm::RS256),
            ED25519_KEY_SPEC => Some(Algorithm::EdDSA),
            other => Curve::from_kms_key_spec(other)
                .map(Curve::algorithm)
                .or_else(|| MlDsaLevel::ALL.into_iter().find(|l| l.kms_key_spec() == other).map(MlDsaLevel::algorithm)),
        }
    }

    /// Whether KMS signs the message itself (`MessageType=RAW`, at most 4,096 bytes) rather
    /// than a digest computed locally.
    #[must_use]
    pub const fn signs_raw_message(self) -> bool {
        matches!(self.key_family(), KeyFamily::Ed25519 | KeyFamily::MlDsa(_))
    }

    /// Whether this is an ECDSA algorithm (whose JOSE signature is fixed-width R||S).
    #[must_use]
    pub const fn is_ecdsa(self) -> bool {
        matches!(self.key_family(), KeyFamily::Ec(_))
    }

    /// The aws-lc-rs verification algorithm for JOSE-format signatures.
    pub(crate) fn verification(self) -> &'static dyn signature::VerificationAlgorithm {
        match self {
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            Algorithm::ES512 => &signature::ECDSA_P521_SHA512_FIXED,
            Algorithm::ES256K => &signature::ECDSA_P256K1_SHA256_FIXED,
            Algorithm::EdDSA | Algorithm::Ed25519 => &signature::ED25519,
            Algorithm::MlDsa44 => &signature::ML_DSA_44,
            Algorithm::MlDsa65 => &signature::ML_DSA_65,
            Algorithm::MlDsa87 => &signature::ML_DSA_87,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for an `alg` string this crate does not implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported algorithm {0:?} (expected one of RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 ES256K EdDSA Ed25519 ML-DSA-44 ML-DSA-65 ML-DSA-87)"
)]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    /// Parses an `alg` value exactly (case-sensitive, as RFC 7515 requires).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL.into_iter().find(|alg| alg.name() == s).ok_or_else(|| UnknownAlgorithm(s.to_owned()))
    }
}

impl serde::Serialize for Algorithm {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.name().parse::<Algorithm>(), Ok(alg));
        }
        for unknown in ["rs256", "none", "HS256"] {
            let err = unknown.parse::<Algorithm>().unwrap_err().to_string();
            assert!(err.starts_with(&format!("unsupported algorithm \"{unknown}\" (expected one of RS256")), "{err}");
        }
    }

    #[test]
    fn key_spec_fit() {
        assert!(Algorithm::PS512.fits_key_spec("RSA_3072"));
        assert!(!Algorithm::RS256.fits_key_spec("ECC_NIST_P256"));
        assert!(Algorithm::ES256K.fits_key_spec("ECC_SECG_P256K1"));
        assert!(!Algorithm::ES256.fits_key_spec("ECC_SECG_P256K1"));
        assert_eq!(Algorithm::default_for_key_spec("RSA_2048"), Some(Algorithm::RS256));
        assert_eq!(Algorithm::default_for_key_spec("ECC_NIST_P521"), Some(Algorithm::ES512));
        assert_eq!(Algorithm::default_for_key_spec("SYMMETRIC_DEFAULT"), None);
        assert_eq!(Algorithm::default_for_key_spec("HMAC_256"), None);
        assert_eq!(Algorithm::default_for_key_spec("ECC_NIST_EDWARDS25519"), Some(Algorithm::EdDSA));
        assert!(Algorithm::Ed25519.fits_key_spec("ECC_NIST_EDWARDS25519"));
        assert_eq!(Algorithm::default_for_key_spec("ML_DSA_65"), Some(Algorithm::MlDsa65));
        assert!(!Algorithm::MlDsa44.fits_key_spec("ML_DSA_65"));
        assert_eq!(Algorithm::EdDSA.kms_name(), "ED25519_SHA_512");
        assert_eq!(Algorithm::MlDsa87.kms_name(), "ML_DSA_SHAKE_256");
        assert!(Algorithm::MlDsa44.signs_raw_message() && !Algorithm::ES256.signs_raw_message());
    }
}
