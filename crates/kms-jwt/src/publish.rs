//! The documents third parties fetch: `/.well-known/jwks.json` and
//! `/.well-known/openid-configuration`, with their HTTP caching metadata.

use serde_json::{Value, json};

#[cfg(feature = "kms")]
use crate::{
    Algorithm, Result,
    keyset::{KeySetName, KeySets},
    kms::{KeyInfo, KmsClient, normalize_key_ref},
};
use crate::{Jwks, b64};

#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "s3")]
pub use s3::{BadS3Url, S3Published, S3Target, publish_keys_to_s3, publish_to_s3, s3_client};

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

/// Each of `keys` with the algorithm it is pinned to (`alg`, or its key spec's default), once
/// each. A key id or ARN is that key; an alias (or a bare name) is a key set: its current,
/// previous and next keys, each while enabled.
#[cfg(feature = "kms")]
pub async fn keys_from_kms(
    kms: &KmsClient,
    keys: &[String],
    alg: Option<Algorithm>,
) -> Result<Vec<(KeyInfo, Algorithm)>> {
    let sets = KeySets::new(kms.clone());
    let mut out: Vec<(KeyInfo, Algorithm)> = Vec::with_capacity(keys.len());
    for key in keys {
        let key = normalize_key_ref(key);
        let found = if let Some(name) = key.strip_prefix("alias/") {
            sets.published(&KeySetName::parse(name)?, alg).await?
        } else {
            let info = kms.describe_signing_key(&key).await?;
            let alg = info.algorithm(alg)?;
            vec![(info, alg)]
        };
        for (info, alg) in found {
            if !out.iter().any(|(k, _)| k.key.key_id == info.key.key_id) {
                out.push((info, alg));
            }
        }
    }
    Ok(out)
}

/// The JWKS of `keys` (see [`keys_from_kms`]): each key's JWK with its thumbprint `kid`.
#[cfg(feature = "kms")]
pub async fn jwks_from_kms(kms: &KmsClient, keys: &[String], alg: Option<Algorithm>) -> Result<Jwks> {
    let keys = keys_from_kms(kms, keys, alg).await?;
    Ok(Jwks { keys: keys.iter().map(|(info, alg)| info.jwk(*alg)).collect() })
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
