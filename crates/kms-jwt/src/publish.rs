//! The documents third parties fetch: `/.well-known/jwks.json` and
//! `/.well-known/openid-configuration`, with their HTTP caching metadata.

use serde_json::{Value, json};

use crate::{Jwks, b64};

/// Where each document lives under the issuer.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Where discovery clients look (`OpenID` Connect Discovery 1.0, section 4).
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";

/// The two published documents, serialised once, each with a strong `ETag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Documents {
    /// `jwks.json` bytes.
    pub jwks: Vec<u8>,
    /// `ETag` of `jwks.json` (quoted).
    pub jwks_etag: String,
    /// `openid-configuration` bytes.
    pub openid_configuration: Vec<u8>,
    /// `ETag` of `openid-configuration` (quoted).
    pub openid_configuration_etag: String,
}

impl Documents {
    /// Builds both documents for `issuer` (an `https://` URL without a trailing slash, as it
    /// appears in tokens' `iss`).
    #[must_use]
    pub fn new(issuer: &str, jwks: &Jwks) -> Documents {
        let jwks_bytes = pretty(&jwks.to_json());
        let openid = pretty(&openid_configuration(issuer, jwks));
        Documents {
            jwks_etag: etag(&jwks_bytes),
            jwks: jwks_bytes,
            openid_configuration_etag: etag(&openid),
            openid_configuration: openid,
        }
    }
}

/// The discovery document: what JWT libraries read to find the keys from the issuer alone.
#[must_use]
pub fn openid_configuration(issuer: &str, jwks: &Jwks) -> Value {
    let issuer = issuer.trim_end_matches('/');
    let mut algs: Vec<&str> = jwks.keys.iter().filter_map(|k| k.alg.map(crate::Algorithm::name)).collect();
    algs.sort_unstable();
    algs.dedup();
    json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "id_token_signing_alg_values_supported": algs,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "claims_supported": ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"],
    })
}

/// The `Cache-Control` value for documents refreshed every `max_age_secs`.
#[must_use]
pub fn cache_control(max_age_secs: u64) -> String {
    format!("public, max-age={max_age_secs}")
}

fn pretty(value: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("JSON value serialises");
    bytes.push(b'\n');
    bytes
}

/// A strong validator: the SHA-256 of the exact bytes served.
fn etag(bytes: &[u8]) -> String {
    format!("\"{}\"", b64::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Algorithm, LocalSigner, Signer};

    #[test]
    fn discovery_points_at_the_jwks_and_lists_algorithms() {
        let key = LocalSigner::generate(Algorithm::ES256).unwrap();
        let jwk = crate::Jwk { key: key.public_key().clone(), kid: Some("k".into()), alg: Some(Algorithm::ES256) };
        let jwks = Jwks { keys: vec![jwk.clone(), jwk] };
        let doc = openid_configuration("https://issuer.example/", &jwks);
        assert_eq!(doc["issuer"], "https://issuer.example");
        assert_eq!(doc["jwks_uri"], "https://issuer.example/.well-known/jwks.json");
        assert_eq!(doc["id_token_signing_alg_values_supported"], json!(["ES256"]));
        let docs = Documents::new("https://issuer.example", &jwks);
        assert_eq!(docs, Documents::new("https://issuer.example", &jwks), "deterministic bytes and ETags");
        assert!(docs.jwks_etag.starts_with('"') && docs.jwks_etag.len() == 45);
        assert_eq!(cache_control(300), "public, max-age=300");
    }
}
