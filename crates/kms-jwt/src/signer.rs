//! The signing abstraction: the JWS signing input goes in, a JOSE signature comes out.
//!
//! KMS is one implementation ([`crate::kms::KmsSigner`]); [`LocalSigner`] holds an aws-lc-rs
//! key in memory for tests, examples and RFC vectors.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, PqdsaKeyPair, RsaKeyPair};

use crate::alg::{Curve, KeyFamily, MlDsaLevel};
use crate::jwk::PublicKey;
use crate::{Algorithm, Error, Result, ecdsa};

/// The future [`Signer::sign_message`] returns. Boxed so that `Signer` is dyn-compatible:
/// `Arc<dyn Signer>` can hold a [`LocalSigner`] in tests and a KMS signer in production. One
/// allocation per signature is nothing beside a network call.
pub type SignatureFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>>> + Send + 'a>>;

/// Something that signs JWS signing inputs with one key and one algorithm.
///
/// Implementations return the signature in JOSE form: the raw RSA signature, fixed-width
/// `R || S` for ECDSA, the raw Ed25519 or ML-DSA signature. [`crate::JwtSigner`] checks every signature against
/// [`Signer::public_key`] before a token leaves it, so a faulty implementation cannot emit a
/// token that does not verify.
pub trait Signer: Send + Sync {
    /// The algorithm this signer is pinned to.
    fn algorithm(&self) -> Algorithm;

    /// The public key that verifies this signer's signatures.
    fn public_key(&self) -> &PublicKey;

    /// Signs `message`, the JWS signing input (`BASE64URL(header) '.' BASE64URL(payload)`).
    /// How is the implementation's business: KMS is sent only the digest for RSA and ECDSA,
    /// and the message itself for Ed25519 and ML-DSA, which hash it as part of signing.
    fn sign_message<'a>(&'a self, message: &'a [u8]) -> SignatureFuture<'a>;

    /// The longest lifetime (`exp` minus now) a token signed with this key may have, if the
    /// key has such a policy. [`crate::JwtSigner`] refuses longer tokens, and tokens without
    /// `exp`, before it asks for a signature.
    fn max_token_ttl(&self) -> Option<Duration> {
        None
    }
}

macro_rules! forward_signer {
    ($($ptr:ident),*) => {$(
        impl<S: Signer + ?Sized> Signer for $ptr<S> {
            fn algorithm(&self) -> Algorithm {
                (**self).algorithm()
            }

            fn public_key(&self) -> &PublicKey {
                (**self).public_key()
            }

            fn sign_message<'a>(&'a self, message: &'a [u8]) -> SignatureFuture<'a> {
                (**self).sign_message(message)
            }

            fn max_token_ttl(&self) -> Option<Duration> {
                (**self).max_token_ttl()
            }
        }
    )*};
}

forward_signer!(Arc, Box);

enum LocalKey {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    MlDsa(PqdsaKeyPair),
}

/// An in-memory aws-lc-rs key: for tests, examples and offline use. Production keys belong
/// in KMS.
pub struct LocalSigner {
    alg: Algorithm,
    public: PublicKey,
    key: LocalKey,
}

impl std::fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSigner").field("alg", &self.alg).finish_non_exhaustive()
    }
}

fn ecdsa_signing(curve: Curve) -> &'static signature::EcdsaSigningAlgorithm {
    // The ASN.1 (DER) form, as KMS returns it, so that local signing exercises the same
    // DER-to-R||S conversion as the KMS path.
    match curve {
        Curve::P256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        Curve::P384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        Curve::P521 => &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
        Curve::Secp256k1 => &signature::ECDSA_P256K1_SHA256_ASN1_SIGNING,
    }
}

fn ml_dsa_signing(level: MlDsaLevel) -> &'static signature::PqdsaSigningAlgorithm {
    match level {
        MlDsaLevel::L44 => &signature::ML_DSA_44_SIGNING,
        MlDsaLevel::L65 => &signature::ML_DSA_65_SIGNING,
        MlDsaLevel::L87 => &signature::ML_DSA_87_SIGNING,
    }
}

fn rsa_padding(alg: Algorithm) -> &'static dyn signature::RsaEncoding {
    match alg {
        Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_SHA512,
        _ => &signature::RSA_PKCS1_SHA256,
    }
}

fn crypto_err(what: &str) -> Error {
    Error::InvalidKey(format!("local key: {what}"))
}

impl LocalSigner {
    /// Generates a fresh key for `alg`: RSA-2048 for RS*/PS*, the algorithm's curve for ES*,
    /// Ed25519 for `EdDSA` and `Ed25519`, the parameter set for ML-DSA.
    pub fn generate(alg: Algorithm) -> Result<LocalSigner> {
        match alg.key_family() {
            KeyFamily::Rsa => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| crypto_err("generate RSA"))?;
                Self::from_rsa(alg, pair)
            }
            KeyFamily::Ec(curve) => {
                let pair = EcdsaKeyPair::generate(ecdsa_signing(curve)).map_err(|_| crypto_err("generate EC"))?;
                Self::from_ec(curve, pair)
            }
            KeyFamily::Ed25519 => {
                Self::from_ed25519(alg, Ed25519KeyPair::generate().map_err(|_| crypto_err("generate Ed25519"))?)
            }
            KeyFamily::MlDsa(level) => Self::from_ml_dsa(
                level,
                PqdsaKeyPair::generate(ml_dsa_signing(level)).map_err(|_| crypto_err("generate ML-DSA"))?,
            ),
        }
    }

    /// Loads a PKCS#8 private key (DER) for `alg`.
    pub fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<LocalSigner> {
        match alg.key_family() {
            KeyFamily::Rsa => Self::from_rsa(alg, RsaKeyPair::from_pkcs8(der).map_err(|e| crypto_err(&e.to_string()))?),
            KeyFamily::Ec(curve) => Self::from_ec(
                curve,
                EcdsaKeyPair::from_pkcs8(ecdsa_signing(curve), der).map_err(|e| crypto_err(&e.to_string()))?,
            ),
            KeyFamily::Ed25519 => {
                Self::from_ed25519(alg, Ed25519KeyPair::from_pkcs8(der).map_err(|e| crypto_err(&e.to_string()))?)
            }
            KeyFamily::MlDsa(level) => Self::from_ml_dsa(
                level,
                PqdsaKeyPair::from_pkcs8(ml_dsa_signing(level), der).map_err(|e| crypto_err(&e.to_string()))?,
            ),
        }
    }

    /// Loads an Ed25519 key from its 32-byte seed (RFC 8032's private key, the JWK's `d`), for
    /// `EdDSA` or `Ed25519`.
    pub fn from_ed25519_seed(alg: Algorithm, seed: &[u8]) -> Result<LocalSigner> {
        if alg.key_family() != KeyFamily::Ed25519 {
            return Err(Error::AlgorithmMismatch { alg, key: "an Ed25519 key".into() });
        }
        Self::from_ed25519(alg, Ed25519KeyPair::from_seed_unchecked(seed).map_err(|e| crypto_err(&e.to_string()))?)
    }

    /// Loads a PKCS#1 `RSAPrivateKey` (DER) for an RS*/PS* algorithm.
    pub fn from_rsa_der(alg: Algorithm, der: &[u8]) -> Result<LocalSigner> {
        if alg.key_family() != KeyFamily::Rsa {
            return Err(Error::AlgorithmMismatch { alg, key: "an RSA key".into() });
        }
        Self::from_rsa(alg, RsaKeyPair::from_der(der).map_err(|e| crypto_err(&e.to_string()))?)
    }

    fn from_rsa(alg: Algorithm, pair: RsaKeyPair) -> Result<LocalSigner> {
        let public = PublicKey::from_pkcs1_der(pair.public_key().as_ref())?;
        Ok(LocalSigner { alg, public, key: LocalKey::Rsa(pair) })
    }

    fn from_ec(curve: Curve, pair: EcdsaKeyPair) -> Result<LocalSigner> {
        let public = PublicKey::from_ec_point(curve, pair.public_key().as_ref())?;
        Ok(LocalSigner { alg: curve.algorithm(), public, key: LocalKey::Ec(pair) })
    }

    fn from_ed25519(alg: Algorithm, pair: Ed25519KeyPair) -> Result<LocalSigner> {
        let public =
            PublicKey::from_spki_der(pair.public_key().as_der().map_err(|_| crypto_err("Ed25519 SPKI"))?.as_ref())?;
        Ok(LocalSigner { alg, public, key: LocalKey::Ed25519(pair) })
    }

    fn from_ml_dsa(level: MlDsaLevel, pair: PqdsaKeyPair) -> Result<LocalSigner> {
        let public =
            PublicKey::from_spki_der(pair.public_key().as_der().map_err(|_| crypto_err("ML-DSA SPKI"))?.as_ref())?;
        Ok(LocalSigner { alg: level.algorithm(), public, key: LocalKey::MlDsa(pair) })
    }

    /// The private key as PKCS#8 DER, so that tests can hand the same key to other libraries.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>> {
        let der = match &self.key {
            LocalKey::Rsa(pair) => pair.as_der().map(|d| d.as_ref().to_vec()),
            LocalKey::Ec(pair) => pair.to_pkcs8v1().map(|d| d.as_ref().to_vec()),
            LocalKey::Ed25519(pair) => pair.to_pkcs8v1().map(|d| d.as_ref().to_vec()),
            LocalKey::MlDsa(pair) => pair.to_pkcs8v1().map(|d| d.as_ref().to_vec()),
        };
        der.map_err(|_| crypto_err("export PKCS#8"))
    }
}

impl Signer for LocalSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }

    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign_message<'a>(&'a self, message: &'a [u8]) -> SignatureFuture<'a> {
        Box::pin(std::future::ready(self.sign_now(message)))
    }
}

impl LocalSigner {
    fn sign_now(&self, message: &[u8]) -> Result<Vec<u8>> {
        match &self.key {
            LocalKey::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(rsa_padding(self.alg), &SystemRandom::new(), message, &mut sig)
                    .map_err(|_| crypto_err("RSA signing failed"))?;
                Ok(sig)
            }
            LocalKey::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            LocalKey::MlDsa(pair) => {
                let mut sig = vec![0u8; pair.algorithm().signature_len()];
                let len = pair.sign(message, &mut sig).map_err(|_| crypto_err("ML-DSA signing failed"))?;
                sig.truncate(len);
                Ok(sig)
            }
            LocalKey::Ec(pair) => {
                let der = pair.sign(&SystemRandom::new(), message).map_err(|_| crypto_err("ECDSA signing failed"))?;
                let KeyFamily::Ec(curve) = self.alg.key_family() else {
                    unreachable!("EC keys are only built for ES algorithms")
                };
                ecdsa::der_to_fixed(der.as_ref(), curve.scalar_len())
                    .ok_or_else(|| crypto_err("ECDSA signature is not valid DER"))
            }
        }
    }
}
