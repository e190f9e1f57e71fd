//! Public keys as SPKI (DER, PEM) and as JWK (RFC 7517), RFC 7638 thumbprints, and JWKS.

use der::asn1::{ObjectIdentifier, UintRef};
use der::{Decode as _, Encode as _};
use serde_json::{Map, Value, json};
use spki::SubjectPublicKeyInfoRef;

use crate::alg::{Curve, KeyFamily, MlDsaLevel};
use crate::{Algorithm, Error, Result, b64, json};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The OID of an ML-DSA parameter set in an SPKI (RFC 9881), which has no parameters.
fn ml_dsa_oid(level: MlDsaLevel) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(match level {
        MlDsaLevel::L44 => "2.16.840.1.101.3.4.3.17",
        MlDsaLevel::L65 => "2.16.840.1.101.3.4.3.18",
        MlDsaLevel::L87 => "2.16.840.1.101.3.4.3.19",
    })
}

/// The length of an Ed25519 public key (RFC 8032 section 5.1.5).
const ED25519_KEY_LEN: usize = 32;

/// The named-curve OID of `curve` in an SPKI.
fn curve_oid(curve: Curve) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(match curve {
        Curve::P256 => "1.2.840.10045.3.1.7",
        Curve::P384 => "1.3.132.0.34",
        Curve::P521 => "1.3.132.0.35",
        Curve::Secp256k1 => "1.3.132.0.10",
    })
}

/// The smallest RSA modulus this crate signs or verifies with (NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;

/// A public key, reduced to the values a JWK carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// An RSA key: modulus and public exponent, big-endian, without leading zeros.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// An EC key: affine coordinates, each exactly the curve's width.
    Ec {
        /// The curve.
        curve: Curve,
        /// X coordinate.
        x: Vec<u8>,
        /// Y coordinate.
        y: Vec<u8>,
    },
    /// An Ed25519 key (RFC 8037, JWK `kty` `OKP`).
    Ed25519 {
        /// The 32-byte encoded point (the JWK's `x`).
        x: Vec<u8>,
    },
    /// An ML-DSA key (RFC 9964, JWK `kty` `AKP`).
    MlDsa {
        /// The parameter set, which fixes the key's one algorithm.
        level: MlDsaLevel,
        /// The encoded public key (the JWK's `pub`), exactly the parameter set's length.
        key: Vec<u8>,
    },
}

fn key_err(msg: impl Into<String>) -> Error {
    Error::InvalidKey(msg.into())
}

impl PublicKey {
    /// Reads a DER `SubjectPublicKeyInfo`, the form KMS `GetPublicKey` returns.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey> {
        let spki = SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| key_err(format!("not a DER SubjectPublicKeyInfo ({e})")))?;
        let bits =
            spki.subject_public_key.as_bytes().ok_or_else(|| key_err("public key bit string has unused bits"))?;
        match spki.algorithm.oid {
            RSA_ENCRYPTION => Self::from_pkcs1_der(bits),
            EC_PUBLIC_KEY => {
                let named = spki.algorithm.parameters_oid().map_err(|_| key_err("EC key without a named curve"))?;
                let curve = Curve::ALL
                    .into_iter()
                    .find(|&c| curve_oid(c) == named)
                    .ok_or_else(|| key_err(format!("unsupported EC curve {named}")))?;
                Self::from_ec_point(curve, bits)
            }
            ID_ED25519 if spki.algorithm.parameters.is_none() => Self::ed25519(bits.to_vec()),
            other => match MlDsaLevel::ALL.into_iter().find(|&l| ml_dsa_oid(l) == other) {
                Some(level) if spki.algorithm.parameters.is_none() => Self::ml_dsa(level, bits.to_vec()),
                _ => Err(key_err(format!("unsupported key algorithm {other}"))),
            },
        }
    }

    /// Reads a PKCS#1 `RSAPublicKey`.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<PublicKey> {
        let key =
            pkcs1::RsaPublicKeyRef::from_der(der).map_err(|e| key_err(format!("not a DER RSAPublicKey ({e})")))?;
        Self::rsa(key.modulus.as_bytes(), key.public_exponent.as_bytes())
    }

    /// Reads a PEM `PUBLIC KEY` (SPKI) or `RSA PUBLIC KEY` (PKCS#1) block.
    pub fn from_pem(pem: &str) -> Result<PublicKey> {
        let (label, der) = pem_rfc7468::decode_vec(pem.trim().as_bytes())
            .map_err(|e| key_err(format!("not a PEM public key ({e})")))?;
        match label {
            "PUBLIC KEY" => Self::from_spki_der(&der),
            "RSA PUBLIC KEY" => Self::from_pkcs1_der(&der),
            other => Err(key_err(format!("PEM block is {other:?}, expected \"PUBLIC KEY\""))),
        }
    }

    fn rsa(n: &[u8], e: &[u8]) -> Result<PublicKey> {
        let n = strip_zeros(n);
        let e = strip_zeros(e);
        let bits = bit_len(n);
        if bits < MIN_RSA_BITS {
            return Err(key_err(format!("RSA key has {bits} bits; at least {MIN_RSA_BITS} are required")));
        }
        if e.is_empty() || e.len() > 4 || e[e.len() - 1] & 1 == 0 {
            return Err(key_err("RSA public exponent is not a small odd integer"));
        }
        Ok(PublicKey::Rsa { n: n.to_vec(), e: e.to_vec() })
    }

    fn ed25519(x: Vec<u8>) -> Result<PublicKey> {
        if x.len() != ED25519_KEY_LEN {
            return Err(key_err(format!("Ed25519 key must be {ED25519_KEY_LEN} bytes, not {}", x.len())));
        }
        Ok(PublicKey::Ed25519 { x })
    }

    fn ml_dsa(level: MlDsaLevel, key: Vec<u8>) -> Result<PublicKey> {
        if key.len() != level.public_key_len() {
            return Err(key_err(format!(
                "{} key must be {} bytes, not {}",
                level.algorithm(),
                level.public_key_len(),
                key.len()
            )));
        }
        Ok(PublicKey::MlDsa { level, key })
    }

    pub(crate) fn from_ec_point(curve: Curve, point: &[u8]) -> Result<PublicKey> {
        let w = curve.scalar_len();
        match point.split_first() {
            Some((0x04, xy)) if xy.len() == 2 * w => {
                Ok(PublicKey::Ec { curve, x: xy[..w].to_vec(), y: xy[w..].to_vec() })
            }
            _ => Err(key_err(format!("{curve} key is not an uncompressed point"))),
        }
    }

    /// The DER `SubjectPublicKeyInfo`, as KMS `GetPublicKey` returns it and openssl reads it.
    #[must_use]
    pub fn to_spki_der(&self) -> Vec<u8> {
        let algorithm = match self {
            PublicKey::Rsa { .. } => {
                spki::AlgorithmIdentifierOwned { oid: RSA_ENCRYPTION, parameters: Some(der::asn1::Null.into()) }
            }
            PublicKey::Ec { curve, .. } => {
                spki::AlgorithmIdentifierOwned { oid: EC_PUBLIC_KEY, parameters: Some(curve_oid(*curve).into()) }
            }
            PublicKey::Ed25519 { .. } => spki::AlgorithmIdentifierOwned { oid: ID_ED25519, parameters: None },
            PublicKey::MlDsa { level, .. } => {
                spki::AlgorithmIdentifierOwned { oid: ml_dsa_oid(*level), parameters: None }
            }
        };
        // The key was validated when it was built, so encoding cannot fail.
        let bits = self.verification_bytes().expect("validated key encodes");
        let spki = spki::SubjectPublicKeyInfoOwned {
            algorithm,
            subject_public_key: der::asn1::BitString::from_bytes(&bits).expect("bit string"),
        };
        spki.to_der().expect("SubjectPublicKeyInfo encodes")
    }

    /// The PEM `PUBLIC KEY` block (SPKI), with a trailing newline.
    #[must_use]
    pub fn to_pem(&self) -> String {
        pem_rfc7468::encode_string("PUBLIC KEY", pem_rfc7468::LineEnding::LF, &self.to_spki_der()).expect("PEM encodes")
    }

    /// The key family, which fixes the algorithms it can verify.
    #[must_use]
    pub fn family(&self) -> KeyFamily {
        match self {
            PublicKey::Rsa { .. } => KeyFamily::Rsa,
            PublicKey::Ec { curve, .. } => KeyFamily::Ec(*curve),
            PublicKey::Ed25519 { .. } => KeyFamily::Ed25519,
            PublicKey::MlDsa { level, .. } => KeyFamily::MlDsa(*level),
        }
    }

    /// Size of the key in bits (RSA modulus, the curve's field, or an ML-DSA public key).
    #[must_use]
    pub fn bits(&self) -> usize {
        match self {
            PublicKey::Rsa { n, .. } => bit_len(n),
            PublicKey::Ec { curve, .. } => match curve {
                Curve::P256 | Curve::Secp256k1 => 256,
                Curve::P384 => 384,
                Curve::P521 => 521,
            },
            PublicKey::Ed25519 { .. } => 256,
            PublicKey::MlDsa { key, .. } => key.len() * 8,
        }
    }

    /// The bytes aws-lc-rs verifies with: PKCS#1 `RSAPublicKey`, an uncompressed point, or
    /// the raw Ed25519 or ML-DSA public key.
    pub(crate) fn verification_bytes(&self) -> Result<Vec<u8>> {
        match self {
            PublicKey::Rsa { n, e } => {
                let key = pkcs1::RsaPublicKeyRef {
                    modulus: UintRef::new(n).map_err(|e| key_err(e.to_string()))?,
                    public_exponent: UintRef::new(e).map_err(|e| key_err(e.to_string()))?,
                };
                key.to_der().map_err(|e| key_err(e.to_string()))
            }
            PublicKey::Ec { x, y, .. } => Ok([&[0x04], x.as_slice(), y.as_slice()].concat()),
            PublicKey::Ed25519 { x } => Ok(x.clone()),
            PublicKey::MlDsa { key, .. } => Ok(key.clone()),
        }
    }

    /// The required members of the JWK, in the lexicographic order RFC 7638 hashes them.
    fn required_members(&self) -> Vec<(&'static str, String)> {
        match self {
            PublicKey::Rsa { n, e } => vec![("e", b64::encode(e)), ("kty", "RSA".into()), ("n", b64::encode(n))],
            PublicKey::Ec { curve, x, y } => {
                vec![("crv", curve.name().into()), ("kty", "EC".into()), ("x", b64::encode(x)), ("y", b64::encode(y))]
            }
            // RFC 8037 section 2.
            PublicKey::Ed25519 { x } => vec![("crv", "Ed25519".into()), ("kty", "OKP".into()), ("x", b64::encode(x))],
            // RFC 9964: an AKP key names its one algorithm, and the thumbprint covers it.
            PublicKey::MlDsa { level, key } => {
                vec![("alg", level.algorithm().name().into()), ("kty", "AKP".into()), ("pub", b64::encode(key))]
            }
        }
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url): this crate's default `kid`.
    #[must_use]
    pub fn thumbprint(&self) -> String {
        // Required members only, sorted, no whitespace: the members are base64url or fixed
        // ASCII names, so plain formatting produces the canonical JSON RFC 7638 hashes.
        let members: Vec<String> =
            self.required_members().into_iter().map(|(k, v)| format!("\"{k}\":\"{v}\"")).collect();
        let canonical = format!("{{{}}}", members.join(","));
        b64::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()))
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

fn bit_len(be: &[u8]) -> usize {
    let be = strip_zeros(be);
    match be.first() {
        Some(&top) => be.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    }
}

/// A public JWK: the key, its `kid` and the algorithm it is pinned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    /// The key material.
    pub key: PublicKey,
    /// The key id (`kid`).
    pub kid: Option<String>,
    /// The algorithm (`alg`) the key is for, if pinned.
    pub alg: Option<Algorithm>,
}

impl Jwk {
    /// The JWK as JSON, with `use: "sig"` and, when known, `kid` and `alg`.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut map: Map<String, Value> =
            self.key.required_members().into_iter().map(|(k, v)| (k.to_owned(), Value::String(v))).collect();
        map.insert("use".into(), json!("sig"));
        if let Some(kid) = &self.kid {
            map.insert("kid".into(), json!(kid));
        }
        if let Some(alg) = self.alg {
            map.insert("alg".into(), json!(alg.name()));
        }
        Value::Object(map)
    }

    /// Reads one JWK. Returns `Ok(None)` for a key this crate does not verify with but that
    /// may legitimately share a JWKS (another `kty`, or `use` other than `sig`).
    pub fn from_json(value: &Value) -> Result<Option<Jwk>> {
        let obj = value.as_object().ok_or_else(|| key_err("JWK is not a JSON object"))?;
        let text = |name: &str| -> Result<Option<&str>> {
            match obj.get(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(key_err(format!("JWK member {name} is not a string"))),
            }
        };
        let bytes = |name: &str| -> Result<Vec<u8>> {
            let s = text(name)?.ok_or_else(|| key_err(format!("JWK has no {name}")))?;
            b64::decode(s).ok_or_else(|| key_err(format!("JWK member {name} is not base64url")))
        };
        if text("use")?.is_some_and(|u| u != "sig") {
            return Ok(None);
        }
        let key = match text("kty")? {
            Some("RSA") => {
                if obj.contains_key("d") {
                    return Err(key_err("JWK contains a private key; publish public keys only"));
                }
                PublicKey::rsa(&bytes("n")?, &bytes("e")?)?
            }
            Some("EC") => {
                if obj.contains_key("d") {
                    return Err(key_err("JWK contains a private key; publish public keys only"));
                }
                let crv = text("crv")?.ok_or_else(|| key_err("EC JWK has no crv"))?;
                let curve = Curve::from_name(crv).ok_or_else(|| key_err(format!("unsupported EC curve {crv}")))?;
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != curve.scalar_len() || y.len() != curve.scalar_len() {
                    return Err(key_err(format!("{crv} coordinates must be {} bytes", curve.scalar_len())));
                }
                PublicKey::Ec { curve, x, y }
            }
            Some("OKP") => {
                if obj.contains_key("d") {
                    return Err(key_err("JWK contains a private key; publish public keys only"));
                }
                match text("crv")? {
                    Some("Ed25519") => PublicKey::ed25519(bytes("x")?)?,
                    // Ed448, or an X25519/X448 key-agreement key: not for this verifier.
                    Some(_) => return Ok(None),
                    None => return Err(key_err("OKP JWK has no crv")),
                }
            }
            Some("AKP") => {
                if obj.contains_key("priv") {
                    return Err(key_err("JWK contains a private key; publish public keys only"));
                }
                let name = text("alg")?.ok_or_else(|| key_err("AKP JWK has no alg"))?;
                let Ok(alg) = name.parse::<Algorithm>() else { return Ok(None) };
                let KeyFamily::MlDsa(level) = alg.key_family() else {
                    return Err(key_err(format!("JWK alg {alg} does not fit its key type")));
                };
                PublicKey::ml_dsa(level, bytes("pub")?)?
            }
            Some(_) => return Ok(None),
            None => return Err(key_err("JWK has no kty")),
        };
        let alg = match text("alg")? {
            None => None,
            Some(name) => match name.parse::<Algorithm>() {
                Ok(alg) => Some(alg),
                // A key for an algorithm we do not implement cannot verify anything here.
                Err(_) => return Ok(None),
            },
        };
        if let Some(alg) = alg
            && alg.key_family() != key.family()
        {
            return Err(key_err(format!("JWK alg {alg} does not fit its key type")));
        }
        Ok(Some(Jwk { key, kid: text("kid")?.map(str::to_owned), alg }))
    }
}

/// A JWK Set (RFC 7517 section 5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jwks {
    /// The keys, in publication order.
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// The JWKS document: `{"keys":[...]}`.
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({ "keys": self.keys.iter().map(Jwk::to_json).collect::<Vec<_>>() })
    }

    /// Parses a JWKS document strictly (duplicate member names rejected). Keys of other
    /// types or uses are skipped, as RFC 7517 section 5 asks; malformed keys are errors.
    pub fn parse(bytes: &[u8]) -> Result<Jwks> {
        let doc = json::parse_object(bytes).map_err(|e| key_err(format!("JWKS is not valid JSON: {e}")))?;
        let keys = doc.get("keys").and_then(Value::as_array).ok_or_else(|| key_err("JWKS has no \"keys\" array"))?;
        let mut out = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let jwk = Jwk::from_json(key).map_err(|e| key_err(format!("key {i}: {e}")))?;
            out.extend(jwk);
        }
        Ok(Jwks { keys: out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7638 section 3.1.
    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    #[test]
    fn rfc7638_thumbprint() {
        let jwk =
            Jwk::from_json(&json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}))
                .unwrap()
                .unwrap();
        assert_eq!(jwk.key.thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        assert_eq!(jwk.key.bits(), 2048);
    }

    #[test]
    fn jwk_round_trips_and_skips_foreign_keys() {
        let jwk = Jwk::from_json(&json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB"})).unwrap().unwrap();
        let again = Jwk::from_json(&jwk.to_json()).unwrap().unwrap();
        assert_eq!(jwk, again);
        assert_eq!(Jwk::from_json(&json!({"kty": "oct", "k": "AAAA"})).unwrap(), None);
        assert_eq!(Jwk::from_json(&json!({"kty": "RSA", "use": "enc", "n": RFC7638_N, "e": "AQAB"})).unwrap(), None);
        let refused = |jwk: serde_json::Value| Jwk::from_json(&jwk).unwrap_err().to_string();
        assert_eq!(refused(json!({"kty": "RSA", "n": RFC7638_N})), "invalid key: JWK has no e");
        assert_eq!(
            refused(json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "ES256"})),
            "invalid key: JWK alg ES256 does not fit its key type"
        );
        assert_eq!(
            refused(json!({"kty": "EC", "crv": "P-256", "x": "AQAB", "y": "AQAB"})),
            "invalid key: P-256 coordinates must be 32 bytes"
        );
    }

    #[test]
    fn spki_and_pem_round_trip() {
        for alg in [
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::ES512,
            Algorithm::ES256K,
            Algorithm::EdDSA,
            Algorithm::MlDsa44,
            Algorithm::MlDsa65,
            Algorithm::MlDsa87,
        ] {
            let key = crate::LocalSigner::generate(alg).unwrap();
            let public = crate::Signer::public_key(&key).clone();
            assert_eq!(PublicKey::from_spki_der(&public.to_spki_der()).unwrap(), public);
            assert_eq!(PublicKey::from_pem(&public.to_pem()).unwrap(), public);
            let jwk = Jwk { key: public.clone(), kid: None, alg: Some(alg) };
            assert_eq!(Jwk::from_json(&jwk.to_json()).unwrap().unwrap(), jwk, "{alg}");
        }
        let private = PublicKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
        assert_eq!(
            private.unwrap_err().to_string(),
            "invalid key: PEM block is \"PRIVATE KEY\", expected \"PUBLIC KEY\""
        );
        assert!(
            PublicKey::from_pem("garbage").unwrap_err().to_string().starts_with("invalid key: not a PEM public key")
        );
    }

    #[test]
    fn okp_and_akp_keys_are_read_strictly() {
        let x = b64::encode([7u8; 32]);
        let refused = |jwk: serde_json::Value| Jwk::from_json(&jwk).unwrap_err().to_string();
        assert_eq!(
            refused(json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode([7u8; 31])})),
            "invalid key: Ed25519 key must be 32 bytes, not 31"
        );
        assert_eq!(refused(json!({"kty": "OKP", "x": x})), "invalid key: OKP JWK has no crv");
        assert_eq!(
            refused(json!({"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "ES256"})),
            "invalid key: JWK alg ES256 does not fit its key type"
        );
        // Ed448 and X25519 keys may share a JWKS; this verifier skips them.
        assert_eq!(Jwk::from_json(&json!({"kty": "OKP", "crv": "X25519", "x": x})).unwrap(), None);
        let ed = Jwk::from_json(&json!({"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "Ed25519"})).unwrap().unwrap();
        assert_eq!(ed.alg, Some(Algorithm::Ed25519), "RFC 9864's fully specified name");

        let public = b64::encode(vec![1u8; 1312]);
        assert_eq!(refused(json!({"kty": "AKP", "pub": public})), "invalid key: AKP JWK has no alg");
        assert_eq!(
            refused(json!({"kty": "AKP", "alg": "ML-DSA-65", "pub": public})),
            "invalid key: ML-DSA-65 key must be 1952 bytes, not 1312"
        );
        assert_eq!(
            refused(json!({"kty": "AKP", "alg": "ML-DSA-44", "pub": public, "priv": "AAAA"})),
            "invalid key: JWK contains a private key; publish public keys only"
        );
        assert_eq!(
            refused(json!({"kty": "AKP", "alg": "EdDSA", "pub": public})),
            "invalid key: JWK alg EdDSA does not fit its key type"
        );
        // An AKP key for an algorithm this crate does not implement (SLH-DSA, say) is skipped.
        assert_eq!(Jwk::from_json(&json!({"kty": "AKP", "alg": "SLH-DSA-SHA2-128s", "pub": "AAAA"})).unwrap(), None);

        // RFC 9964: the thumbprint covers alg, kty and pub, in that order, and nothing else.
        let akp =
            Jwk::from_json(&json!({"kty": "AKP", "alg": "ML-DSA-44", "pub": public, "kid": "k"})).unwrap().unwrap();
        let canonical = format!(r#"{{"alg":"ML-DSA-44","kty":"AKP","pub":"{public}"}}"#);
        let expected = b64::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()));
        assert_eq!(akp.key.thumbprint(), expected);
        assert_eq!(akp.to_json()["alg"], "ML-DSA-44", "an AKP JWK always names its algorithm");
    }

    #[test]
    fn jwks_parse_is_strict() {
        let refused = |json: &[u8]| Jwks::parse(json).unwrap_err().to_string();
        assert!(
            refused(br#"{"keys":[],"keys":[]}"#)
                .starts_with("invalid key: JWKS is not valid JSON: duplicate member name \"keys\"")
        );
        assert_eq!(refused(br#"{"key":[]}"#), "invalid key: JWKS has no \"keys\" array");
        assert!(refused(b"not json").starts_with("invalid key: JWKS is not valid JSON"));
        assert_eq!(Jwks::parse(br#"{"keys":[]}"#).unwrap().keys.len(), 0);
    }
}
