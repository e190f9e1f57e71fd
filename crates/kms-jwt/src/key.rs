//! A public key pinned to one algorithm: what the verifier checks tokens with, and what the
//! signer checks its own signatures with before a token leaves it.

use aws_lc_rs::signature::ParsedPublicKey;

use crate::alg::KeyFamily;
use crate::jwk::{Jwk, PublicKey};
use crate::{Algorithm, Error, Result};

/// A public key pinned to one algorithm, parsed once for fast repeated verification.
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    alg: Algorithm,
    public: PublicKey,
    parsed: ParsedPublicKey,
}

impl VerifyingKey {
    /// Pins `public` to `alg`. Fails if the algorithm does not fit the key.
    pub fn new(public: PublicKey, alg: Algorithm, kid: Option<String>) -> Result<VerifyingKey> {
        if alg.key_family() != public.family() {
            let key = match public.family() {
                KeyFamily::Rsa => format!("an RSA-{} key", public.bits()),
                KeyFamily::Ec(curve) => format!("a {curve} key"),
                KeyFamily::Ed25519 => "an Ed25519 key".to_owned(),
                KeyFamily::MlDsa(level) => format!("an {} key", level.algorithm()),
            };
            return Err(Error::AlgorithmMismatch { alg, key });
        }
        let parsed = ParsedPublicKey::new(alg.verification(), public.verification_bytes()?)
            .map_err(|e| Error::InvalidKey(format!("aws-lc-rs rejected the key: {e}")))?;
        Ok(VerifyingKey { kid, alg, public, parsed })
    }

    /// Pins a JWK: to `alg` if given, else to the JWK's `alg`, else to the key type's default
    /// (RS256 for RSA, the curve's ES* for EC, `EdDSA` for Ed25519, the parameter set's ML-DSA). A JWK `alg` that differs from `alg` is an error.
    pub fn from_jwk(jwk: &Jwk, alg: Option<Algorithm>) -> Result<VerifyingKey> {
        let pinned = match (alg, jwk.alg) {
            (Some(wanted), Some(own)) if wanted != own => {
                return Err(Error::InvalidKey(format!(
                    "key {} is published for {own}, not {wanted}",
                    jwk.kid.as_deref().unwrap_or("without kid")
                )));
            }
            (Some(alg), _) | (None, Some(alg)) => alg,
            (None, None) => Algorithm::default_for(jwk.key.family()),
        };
        VerifyingKey::new(jwk.key.clone(), pinned, jwk.kid.clone())
    }

    /// The key id, if the key has one.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The pinned algorithm.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public key.
    #[must_use]
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Verifies a JOSE signature (RSA bytes, ECDSA fixed-width `R || S`, the 64 bytes of
    /// Ed25519, or an ML-DSA signature) over `message` with the pinned algorithm. This is the
    /// primitive the Wycheproof vectors exercise.
    #[must_use]
    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        // aws-lc-rs checks the lengths too; saying it here makes the rule explicit: exactly
        // R || S, no DER, no truncated or padded values.
        let expected = match self.alg.key_family() {
            KeyFamily::Rsa => None,
            KeyFamily::Ec(curve) => Some(2 * curve.scalar_len()),
            KeyFamily::Ed25519 => Some(64),
            KeyFamily::MlDsa(level) => Some(level.signature_len()),
        };
        if expected.is_some_and(|len| len != signature.len()) {
            return false;
        }
        self.parsed.verify_sig(message, signature).is_ok()
    }
}
