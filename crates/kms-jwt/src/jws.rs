//! JWS compact serialization (RFC 7515 section 7.1): building the signing input, signing it
//! through any [`Signer`], and splitting a token strictly.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::claims::Registered;
use crate::error::TokenError;
use crate::jwk::Jwk;
use crate::key::VerifyingKey;
use crate::signer::Signer;
use crate::{Error, Result, b64};

/// What the `kid` header of signed tokens is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KeyIdMode {
    /// The RFC 7638 thumbprint of the public key (the default): stable, and any verifier
    /// can recompute it from the JWKS.
    #[default]
    Thumbprint,
    /// A fixed value, such as the KMS key id or ARN.
    Fixed(String),
}

/// Signs JWTs with one [`Signer`]: fixed protected header, local verification of every
/// signature before the token is returned.
#[derive(Debug)]
pub struct JwtSigner<S> {
    signer: S,
    kid: String,
    /// The protected header is the same for every token: encode it once.
    header_b64: String,
    check: VerifyingKey,
}

impl<S: Signer> JwtSigner<S> {
    /// A signer whose tokens carry `{"alg","typ":"JWT","kid"}` with the thumbprint as `kid`.
    pub fn new(signer: S) -> Result<JwtSigner<S>> {
        Self::with_kid(signer, KeyIdMode::Thumbprint)
    }

    /// A signer with the given `kid` policy.
    pub fn with_kid(signer: S, kid: KeyIdMode) -> Result<JwtSigner<S>> {
        let public = signer.public_key().clone();
        let kid = match kid {
            KeyIdMode::Thumbprint => public.thumbprint(),
            KeyIdMode::Fixed(kid) => kid,
        };
        let alg = signer.algorithm();
        let header = json!({ "alg": alg.name(), "typ": "JWT", "kid": kid });
        let header_b64 = b64::encode(header.to_string());
        let check = VerifyingKey::new(public, alg, Some(kid.clone()))?;
        Ok(JwtSigner { signer, kid, header_b64, check })
    }

    /// The `kid` every token carries.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK, with `kid` and `alg`, as a verifier should publish it.
    #[must_use]
    pub fn jwk(&self) -> Jwk {
        Jwk { key: self.signer.public_key().clone(), kid: Some(self.kid.clone()), alg: Some(self.signer.algorithm()) }
    }

    /// The underlying signer.
    pub fn signer(&self) -> &S {
        &self.signer
    }

    /// Signs a claims set and returns the compact JWT. `claims` is a [`crate::Claims`] or any
    /// type that serialises to a JSON object; either way the registered claims must have
    /// their RFC 7519 types (`exp`, `nbf`, `iat` numbers; `iss`, `sub`, `jti` strings; `aud`
    /// a string or an array of strings) and no member name may repeat.
    pub async fn sign<T: Serialize + ?Sized>(&self, claims: &T) -> Result<String> {
        let payload = serde_json::to_vec(claims).map_err(|e| Error::InvalidClaims(e.to_string()))?;
        let registered = Registered::parse(&payload).map_err(|e| Error::InvalidClaims(e.to_string()))?;
        if let Some(max) = self.signer.max_token_ttl() {
            check_lifetime(registered.exp, crate::claims::now(), max)?;
        }
        self.sign_payload(&payload).await
    }

    /// Signs arbitrary payload bytes under this signer's header.
    pub async fn sign_payload(&self, payload: &[u8]) -> Result<String> {
        sign_with_header(&self.signer, &self.check, &self.header_b64, payload).await
    }
}

/// Refuses a token that would live longer than `max` from `now`, or that never expires.
fn check_lifetime(exp: Option<i64>, now: i64, max: Duration) -> Result<()> {
    let lifetime = exp.map(|exp| Duration::from_secs(u64::try_from(exp.saturating_sub(now)).unwrap_or(0)));
    match lifetime {
        Some(lifetime) if lifetime <= max => Ok(()),
        lifetime => Err(Error::LifetimeTooLong { lifetime, max }),
    }
}

/// Signs `payload` under the exact protected-header bytes given (JWS level: RFC test
/// vectors and headers other than this crate's own). The signature is verified with the
/// signer's public key before the token is returned.
#[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
pub(crate) async fn sign_compact<S: Signer>(signer: &S, protected_header: &[u8], payload: &[u8]) -> Result<String> {
    let check = VerifyingKey::new(signer.public_key().clone(), signer.algorithm(), None)?;
    sign_with_header(signer, &check, &b64::encode(protected_header), payload).await
}

async fn sign_with_header<S: Signer>(
    signer: &S,
    check: &VerifyingKey,
    header_b64: &str,
    payload: &[u8],
) -> Result<String> {
    let alg = signer.algorithm();
    // The signature's base64url: 4/3 of its bytes (ML-DSA-87's are 4,627).
    let mut token = String::with_capacity(header_b64.len() + payload.len() * 4 / 3 + 2 + signature_b64_len(alg));
    token.push_str(header_b64);
    token.push('.');
    b64::encode_into(payload, &mut token);
    let signature = signer.sign_message(token.as_bytes()).await?;
    if !check.verify_signature(token.as_bytes(), &signature) {
        return Err(Error::InvalidResponse(format!("the {alg} signature does not verify with the key's public key")));
    }
    token.push('.');
    b64::encode_into(&signature, &mut token);
    Ok(token)
}

/// Room for the base64url of an `alg` signature: 700 covers RSA-4096 and every ECDSA curve.
fn signature_b64_len(alg: crate::Algorithm) -> usize {
    match alg.key_family() {
        crate::KeyFamily::MlDsa(level) => level.signature_len().div_ceil(3) * 4,
        _ => 700,
    }
}

/// A compact JWS split into its parts, header parsed, nothing verified yet.
#[derive(Debug, Clone)]
pub(crate) struct CompactParts<'a> {
    /// The signing input: `BASE64URL(header) '.' BASE64URL(payload)`.
    pub signing_input: &'a str,
    /// The protected header.
    pub header: Map<String, Value>,
    /// The decoded payload.
    pub payload: Vec<u8>,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// Splits a compact JWS strictly: exactly three segments, each unpadded canonical
/// base64url, and a header that is a JSON object with unique member names.
pub(crate) fn split_compact(token: &str) -> Result<CompactParts<'_>, TokenError> {
    let (first, second) = dot_positions(token)?;
    let header_b64 = &token[..first];
    let payload_b64 = &token[first + 1..second];
    let signature_b64 = &token[second + 1..];
    let header_bytes = b64::decode(header_b64).ok_or(TokenError::Base64("header"))?;
    let payload = b64::decode(payload_b64).ok_or(TokenError::Base64("payload"))?;
    let signature = b64::decode(signature_b64).ok_or(TokenError::Base64("signature"))?;
    let header =
        crate::json::parse_object(&header_bytes).map_err(|reason| TokenError::Json { part: "header", reason })?;
    Ok(CompactParts { signing_input: &token[..second], header, payload, signature })
}

/// The byte offsets of the two dots of a three-segment token.
pub(crate) fn dot_positions(token: &str) -> Result<(usize, usize), TokenError> {
    let mut dots = memchr::memchr_iter(b'.', token.as_bytes());
    match (dots.next(), dots.next(), dots.next()) {
        (Some(first), Some(second), None) => Ok((first, second)),
        _ => Err(TokenError::Segments(token.split('.').count())),
    }
}

/// Decodes a token's header and payload without verifying anything (for inspection only).
pub fn decode_unverified(token: &str) -> Result<(Map<String, Value>, Value), TokenError> {
    let parts = split_compact(token)?;
    let claims = match crate::json::parse_object(&parts.payload) {
        Ok(map) => Value::Object(map),
        Err(_) => Value::String(String::from_utf8_lossy(&parts.payload).into_owned()),
    };
    Ok((parts.header, claims))
}
