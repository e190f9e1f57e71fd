//! The strict verifier: for third parties who hold only the public keys.
//!
//! Keys come only from the configuration (a JWKS or a PEM), never from the token: `jwk`,
//! `jku`, `x5u` and `x5c` headers are ignored. Each key is pinned to one algorithm, so a
//! token cannot choose `none`, HMAC, or another padding.

use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::ParsedPublicKey;
use serde_json::{Map, Value};

use crate::alg::KeyFamily;
use crate::claims::Registered;
use crate::error::TokenError;
use crate::jwk::{Jwk, Jwks, PublicKey};
use crate::jws::{self, CompactParts};
use crate::{Algorithm, Claims, Error, Result, b64};

/// The default upper bound on a token's length. Generous for claims, small enough that a
/// hostile multi-megabyte input is refused before any decoding.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 64 * 1024;

/// The default clock-skew allowance for `exp` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

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
            };
            return Err(Error::AlgorithmMismatch { alg, key });
        }
        let parsed = ParsedPublicKey::new(alg.verification(), public.verification_bytes()?)
            .map_err(|e| Error::InvalidKey(format!("aws-lc-rs rejected the key: {e}")))?;
        Ok(VerifyingKey { kid, alg, public, parsed })
    }

    /// Pins a JWK: to `alg` if given, else to the JWK's `alg`, else to the key type's default
    /// (RS256 for RSA, the curve's ES* for EC). A JWK `alg` that differs from `alg` is an error.
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

    /// Verifies a JOSE signature (RSA bytes, or ECDSA fixed-width `R || S`) over `message`
    /// with the pinned algorithm. This is the primitive the Wycheproof vectors exercise.
    #[must_use]
    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        if let KeyFamily::Ec(curve) = self.alg.key_family() {
            // aws-lc-rs checks this too; saying it here makes the rule explicit: exactly
            // R || S, no DER, no truncated or padded scalars.
            if signature.len() != 2 * curve.scalar_len() {
                return false;
            }
        }
        self.parsed.verify_sig(message, signature).is_ok()
    }
}

/// A protected header (its base64url text) and the index of the key it selected.
type HeaderChoice = (Box<str>, usize);

/// A verified JWS: its header and payload.
#[derive(Debug, Clone)]
pub struct VerifiedJws {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

/// Verifies compact JWTs against a fixed set of public keys.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<VerifyingKey>,
    /// The last protected header that selected a key, and which key. Tokens from one signer
    /// share their header, and the selection is a function of the header bytes alone, so a
    /// batch parses it once. Shared by clones, which have the same keys.
    last_header: Arc<Mutex<Option<HeaderChoice>>>,
    issuer: Option<String>,
    audiences: Vec<String>,
    leeway: i64,
    max_token_len: usize,
    require_exp: bool,
}

impl Verifier {
    /// A verifier for these keys with default checks: `exp` required, 60 s leeway,
    /// 64 KiB maximum token length, no issuer or audience check.
    #[must_use]
    pub fn new(keys: Vec<VerifyingKey>) -> Verifier {
        Verifier {
            keys,
            last_header: Arc::default(),
            issuer: None,
            audiences: Vec::new(),
            leeway: DEFAULT_LEEWAY_SECS.cast_signed(),
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            require_exp: true,
        }
    }

    /// A verifier for every usable key of a JWKS, each pinned as [`VerifyingKey::from_jwk`] says.
    pub fn from_jwks(jwks: &Jwks, alg: Option<Algorithm>) -> Result<Verifier> {
        if jwks.keys.is_empty() {
            return Err(Error::InvalidKey("the JWKS has no RSA or EC signing keys".into()));
        }
        let keys = jwks.keys.iter().map(|jwk| VerifyingKey::from_jwk(jwk, alg)).collect::<Result<Vec<_>>>()?;
        Ok(Verifier::new(keys))
    }

    /// A verifier for one PEM public key, pinned to `alg` or the key type's default.
    pub fn from_pem(pem: &str, alg: Option<Algorithm>) -> Result<Verifier> {
        let key = PublicKey::from_pem(pem)?;
        let alg = alg.unwrap_or_else(|| Algorithm::default_for(key.family()));
        Ok(Verifier::new(vec![VerifyingKey::new(key, alg, None)?]))
    }

    /// Requires `iss` to equal `issuer`.
    #[must_use]
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Verifier {
        self.issuer = Some(issuer.into());
        self
    }

    /// Requires `aud` to contain `audience` (or, when called again, any of the audiences).
    #[must_use]
    pub fn with_audience(mut self, audience: impl Into<String>) -> Verifier {
        self.audiences.push(audience.into());
        self
    }

    /// Sets the clock-skew allowance for `exp` and `nbf`.
    #[must_use]
    pub fn with_leeway(mut self, seconds: u64) -> Verifier {
        self.leeway = i64::try_from(seconds).unwrap_or(i64::MAX);
        self
    }

    /// Sets the largest token accepted, in bytes.
    #[must_use]
    pub fn with_max_token_len(mut self, bytes: usize) -> Verifier {
        self.max_token_len = bytes;
        self
    }

    /// Whether tokens without `exp` are rejected (the default) or accepted.
    #[must_use]
    pub fn require_exp(mut self, required: bool) -> Verifier {
        self.require_exp = required;
        self
    }

    /// The configured keys.
    #[must_use]
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Verifies the token's structure and signature only (JWS level: no claim is read).
    pub fn verify_jws(&self, token: &str) -> Result<VerifiedJws, TokenError> {
        if token.len() > self.max_token_len {
            return Err(TokenError::TooLong { len: token.len(), max: self.max_token_len });
        }
        let CompactParts { signing_input, header, payload, signature } = jws::split_compact(token)?;
        let key = self.select_key(&header)?;
        if !key.verify_signature(signing_input.as_bytes(), &signature) {
            return Err(TokenError::BadSignature);
        }
        Ok(VerifiedJws { header, payload })
    }

    /// Verifies a JWT now: signature, then the registered claims' types, `exp` and `nbf`,
    /// then `iss` and `aud` when configured. Returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_at(token, crate::claims::now())
    }

    /// [`Verifier::verify`] at a given time (seconds since the epoch).
    pub fn verify_at(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let payload = self.verify_payload_at(token, now)?;
        // The payload passed the strict scan; this only builds the map it describes.
        let map =
            serde_json::from_slice(&payload).map_err(|e| TokenError::Json { part: "claims", reason: e.to_string() })?;
        Ok(Claims::checked(map))
    }

    /// [`Verifier::verify`], returning the payload exactly as signed (the claims' JSON text)
    /// instead of building the claims: for callers that pass the claims on, and the cheapest
    /// way to check a token. The checks are the same.
    pub fn verify_payload(&self, token: &str) -> Result<Vec<u8>, TokenError> {
        self.verify_payload_at(token, crate::claims::now())
    }

    /// [`Verifier::verify_payload`] at a given time (seconds since the epoch).
    pub fn verify_payload_at(&self, token: &str, now: i64) -> Result<Vec<u8>, TokenError> {
        let payload = self.verified_payload(token)?;
        self.check_claims(&Registered::parse(&payload)?, now)?;
        Ok(payload)
    }

    /// [`Verifier::verify_jws`] without the header map, with the key selection cached.
    fn verified_payload(&self, token: &str) -> Result<Vec<u8>, TokenError> {
        if token.len() > self.max_token_len {
            return Err(TokenError::TooLong { len: token.len(), max: self.max_token_len });
        }
        let (first, second) = jws::dot_positions(token)?;
        let header_b64 = &token[..first];
        let cached = self
            .last_header
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .and_then(|(header, index)| (**header == *header_b64).then_some(*index));
        let Some(index) = cached else {
            let CompactParts { signing_input, header, payload, signature } = jws::split_compact(token)?;
            let key = self.select_key(&header)?;
            if !key.verify_signature(signing_input.as_bytes(), &signature) {
                return Err(TokenError::BadSignature);
            }
            let index = self.keys.iter().position(|k| std::ptr::eq(k, key)).unwrap_or_default();
            *self.last_header.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some((header_b64.into(), index));
            return Ok(payload);
        };
        // The header was accepted before; the rest is checked exactly as split_compact does.
        let payload = b64::decode(&token[first + 1..second]).ok_or(TokenError::Base64("payload"))?;
        let signature = b64::decode(&token[second + 1..]).ok_or(TokenError::Base64("signature"))?;
        if !self.keys[index].verify_signature(&token.as_bytes()[..second], &signature) {
            return Err(TokenError::BadSignature);
        }
        Ok(payload)
    }

    fn select_key(&self, header: &Map<String, Value>) -> Result<&VerifyingKey, TokenError> {
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => alg.as_str(),
            Some(_) => return Err(TokenError::HeaderType("alg")),
            None => return Err(TokenError::UnsupportedAlg("(missing)".into())),
        };
        if alg.eq_ignore_ascii_case("none") {
            return Err(TokenError::AlgNone);
        }
        let Ok(alg) = alg.parse::<Algorithm>() else {
            return Err(TokenError::UnsupportedAlg(alg.to_owned()));
        };
        if let Some(crit) = header.get("crit") {
            // This verifier implements no JWS extension, so every critical one is unknown.
            return Err(TokenError::Crit(crit.to_string()));
        }
        let key = match header.get("kid") {
            Some(Value::String(kid)) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                // A single key given without a kid (a PEM) is the key, whatever the token says.
                .or_else(|| match self.keys.as_slice() {
                    [only] if only.kid.is_none() => Some(only),
                    _ => None,
                })
                .ok_or_else(|| TokenError::UnknownKid(kid.clone()))?,
            Some(_) => return Err(TokenError::HeaderType("kid")),
            None => match self.keys.as_slice() {
                [only] => only,
                keys => return Err(TokenError::AmbiguousKey(keys.len())),
            },
        };
        if key.alg != alg {
            return Err(TokenError::AlgNotAllowed {
                got: alg.name().to_owned(),
                kid: key.kid.clone().unwrap_or_default(),
                pinned: key.alg,
            });
        }
        Ok(key)
    }

    fn check_claims(&self, claims: &Registered<'_>, now: i64) -> Result<(), TokenError> {
        match claims.exp {
            Some(exp) if now > exp.saturating_add(self.leeway) => return Err(TokenError::Expired { exp }),
            None if self.require_exp => return Err(TokenError::MissingClaim("exp")),
            _ => {}
        }
        if let Some(nbf) = claims.nbf
            && nbf > now.saturating_add(self.leeway)
        {
            return Err(TokenError::NotYetValid { nbf });
        }
        if let Some(expected) = &self.issuer {
            match &claims.iss {
                None => return Err(TokenError::MissingClaim("iss")),
                Some(iss) if iss == expected => {}
                Some(iss) => return Err(TokenError::Issuer { got: iss.to_string() }),
            }
        }
        if !self.audiences.is_empty() {
            match &claims.aud {
                None => return Err(TokenError::MissingClaim("aud")),
                Some(aud) if aud.iter().any(|a| self.audiences.iter().any(|e| e == a)) => {}
                Some(_) => return Err(TokenError::Audience),
            }
        }
        Ok(())
    }
}
