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
}

/// The key family an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    /// An RSA key (any size from 2048 bits).
    Rsa,
    /// An EC key on this curve.
    Ec(Curve),
}

impl Algorithm {
    /// Every algorithm, in the order RFC 7518 lists them.
    pub const ALL: [Algorithm; 10] = [
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
        }
    }

    /// The digest computed locally over the signing input.
    #[must_use]
    pub fn digest(self) -> &'static digest::Algorithm {
        match self {
            Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 | Algorithm::ES256K => &digest::SHA256,
            Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => &digest::SHA384,
            Algorithm::RS512 | Algorithm::PS512 | Algorithm::ES512 => &digest::SHA512,
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
        }
    }

    /// Whether a KMS key of this `KeySpec` can sign with this algorithm.
    #[must_use]
    pub fn fits_key_spec(self, key_spec: &str) -> bool {
        match self.key_family() {
            KeyFamily::Rsa => matches!(key_spec, "RSA_2048" | "RSA_3072" | "RSA_4096"),
            KeyFamily::Ec(curve) => curve.kms_key_spec() == key_spec,
        }
    }

    /// The algorithm a key of this family is pinned to when nothing else is asked for:
    /// RS256 for RSA (the most widely verified), the curve's own ES* for EC.
    #[must_use]
    pub const fn default_for(family: KeyFamily) -> Algorithm {
        match family {
            KeyFamily::Rsa => Algorithm::RS256,
            KeyFamily::Ec(curve) => curve.algorithm(),
        }
    }

    /// The default algorithm for a KMS key spec, if the spec can sign JWTs at all.
    #[must_use]
    pub fn default_for_key_spec(key_spec: &str) -> Option<Algorithm> {
        match key_spec {
            "RSA_2048" | "RSA_3072" | "RSA_4096" => Some(Algorithm::RS256),
            other => Curve::from_kms_key_spec(other).map(Curve::algorithm),
        }
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
#[error("unsupported algorithm {0:?} (expected one of RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 ES256K)")]
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
    }
}
