//! The strict verifier: for third parties who hold only the public keys.
//!
//! Keys come only from the configuration (a JWKS or a PEM), never from the token: `jwk`,
//! `jku`, `x5u` and `x5c` headers are ignored. Each key is pinned to one algorithm, so a
//! token cannot choose `none`, HMAC, or another padding.

use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::claims::Registered;
use crate::error::TokenError;
use crate::jwk::{Jwks, PublicKey};
use crate::jws::{self, CompactParts};
pub(crate) use crate::key::VerifyingKey;
use crate::{Algorithm, Error, Result, b64};

/// The default upper bound on a token's length. Generous for claims, small enough that a
/// hostile multi-megabyte input is refused before any decoding.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 64 * 1024;

/// The default clock-skew allowance for `exp` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

/// A verified JWT: its protected header and its claims, typed as the caller asked.
#[derive(Debug, Clone)]
pub struct Verified<T> {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The claims.
    pub claims: T,
}

/// A configured key and the protected header that selected it first: its base64url text and
/// its parsed members.
///
/// Key selection is a function of the header bytes alone, and a signer's tokens all share
/// one header, so the verifier parses each signer's header once: later tokens with the same
/// header text go straight to their key, and get a copy of the parsed header. Set once, read
/// without a lock; each key has its own slot, so tokens from several keys (a rotation) mix at
/// no cost.
#[derive(Debug)]
struct KeySlot {
    key: VerifyingKey,
    header: OnceLock<(Box<str>, Map<String, Value>)>,
}

/// Verifies compact JWTs against a fixed set of public keys.
///
/// `Send + Sync` and cheap to clone (the keys are shared): one verifier serves every thread
/// of a server, and verifying takes no lock.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Arc<[KeySlot]>,
    issuer: Option<String>,
    audiences: Vec<String>,
    any_audience: bool,
    leeway: i64,
    max_token_len: usize,
    require_exp: bool,
    /// A fixed time to verify at, instead of the clock.
    now: Option<i64>,
}

impl Verifier {
    /// A verifier for these keys with default checks: `exp` required, 60 s leeway,
    /// 64 KiB maximum token length, no issuer check, and no audience expected: a token that
    /// has an `aud` is refused until [`Verifier::with_audience`] names one of its audiences
    /// (or [`Verifier::allow_any_audience`] says any will do), as jsonwebtoken and `PyJWT` do.
    /// A token meant for another service must not pass because nobody asked.
    #[must_use]
    pub fn new(keys: Vec<VerifyingKey>) -> Verifier {
        Verifier {
            keys: keys.into_iter().map(|key| KeySlot { key, header: OnceLock::new() }).collect(),
            issuer: None,
            audiences: Vec::new(),
            any_audience: false,
            leeway: DEFAULT_LEEWAY_SECS.cast_signed(),
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            require_exp: true,
            now: None,
        }
    }

    /// A verifier for every usable key of a JWKS, each pinned as [`VerifyingKey::from_jwk`] says.
    pub fn from_jwks(jwks: &Jwks, alg: Option<Algorithm>) -> Result<Verifier> {
        if jwks.keys.is_empty() {
            return Err(Error::InvalidKey(
                "the JWKS has no signing keys this verifier implements (RSA, EC, Ed25519, ML-DSA)".into(),
            ));
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

    /// Accepts a token whatever its `aud`, when no audience is expected: for tools that
    /// inspect tokens, never for a service that acts on them.
    #[must_use]
    pub fn allow_any_audience(mut self) -> Verifier {
        self.any_audience = true;
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
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &VerifyingKey> {
        self.keys.iter().map(|slot| &slot.key)
    }

    /// Verifies a JWT: the signature with the key its header selects (and that key's pinned
    /// algorithm), then the registered claims' types, `exp` and `nbf` (with the leeway), then
    /// `iss` and `aud` as configured. Returns the protected header and the claims as `T`, built
    /// only once every check has passed: [`Claims`](crate::Claims) for a map, any `Deserialize` type for typed
    /// claims, or `serde::de::IgnoredAny` for a check alone (the cheapest).
    ///
    /// ```
    /// # fn example(verifier: &kms_jwt::Verifier, token: &str) -> Result<(), kms_jwt::TokenError> {
    /// #[derive(serde::Deserialize)]
    /// struct Access {
    ///     sub: String,
    ///     scope: Vec<String>,
    /// }
    /// let access = verifier.verify::<Access>(token)?.claims;
    /// let claims = verifier.verify::<kms_jwt::Claims>(token)?.claims;
    /// # Ok(()) }
    /// ```
    pub fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<Verified<T>, TokenError> {
        let now = self.now.unwrap_or_else(crate::claims::now);
        let (header, payload) = self.verified_parts(token)?;
        self.check_claims(&Registered::parse(&payload)?, now)?;
        let claims =
            serde_json::from_slice(&payload).map_err(|e| TokenError::Json { part: "claims", reason: e.to_string() })?;
        Ok(Verified { header, claims })
    }

    /// Verifies as of `now` (seconds since the epoch) rather than the clock: tokens from a
    /// log, or tests.
    #[must_use]
    pub fn at(mut self, now: i64) -> Verifier {
        self.now = Some(now);
        self
    }

    /// The signature's check: the protected header and the payload of a token whose signature
    /// verifies. A header seen before is neither decoded nor parsed again.
    fn verified_parts(&self, token: &str) -> Result<(Map<String, Value>, Vec<u8>), TokenError> {
        if token.len() > self.max_token_len {
            return Err(TokenError::TooLong { len: token.len(), max: self.max_token_len });
        }
        let (first, second) = jws::dot_positions(token)?;
        let header_b64 = &token[..first];
        let Some((slot, header)) = self.keys.iter().find_map(|slot| match slot.header.get() {
            Some((seen, header)) if **seen == *header_b64 => Some((slot, header)),
            _ => None,
        }) else {
            let CompactParts { signing_input, header, payload, signature } = jws::split_compact(token)?;
            let slot = self.select_key(&header)?;
            if !slot.key.verify_signature(signing_input.as_bytes(), &signature) {
                return Err(TokenError::BadSignature);
            }
            // Only a header that came with a valid signature is remembered, so forged tokens
            // cannot take the slot. Another thread may have filled it first: either is right.
            let _ = slot.header.set((header_b64.into(), header.clone()));
            return Ok((header, payload));
        };
        // The header was accepted before; the rest is checked exactly as split_compact does.
        let payload = b64::decode(&token[first + 1..second]).ok_or(TokenError::Base64("payload"))?;
        let signature = b64::decode(&token[second + 1..]).ok_or(TokenError::Base64("signature"))?;
        if !slot.key.verify_signature(&token.as_bytes()[..second], &signature) {
            return Err(TokenError::BadSignature);
        }
        Ok((header.clone(), payload))
    }

    fn select_key(&self, header: &Map<String, Value>) -> Result<&KeySlot, TokenError> {
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
        let slot = match header.get("kid") {
            Some(Value::String(kid)) => self
                .keys
                .iter()
                .find(|slot| slot.key.kid() == Some(kid))
                // A single key given without a kid (a PEM) is the key, whatever the token says.
                .or_else(|| match &*self.keys {
                    [only] if only.key.kid().is_none() => Some(only),
                    _ => None,
                })
                .ok_or_else(|| TokenError::UnknownKid(kid.clone()))?,
            Some(_) => return Err(TokenError::HeaderType("kid")),
            None => match &*self.keys {
                [only] => only,
                keys => return Err(TokenError::AmbiguousKey(keys.len())),
            },
        };
        let pinned = slot.key.algorithm();
        if pinned != alg {
            return Err(TokenError::AlgNotAllowed {
                got: alg.name().to_owned(),
                kid: slot.key.kid().unwrap_or_default().to_owned(),
                pinned,
            });
        }
        Ok(slot)
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
        } else if claims.aud.is_some() && !self.any_audience {
            return Err(TokenError::AudienceNotExpected);
        }
        Ok(())
    }
}
