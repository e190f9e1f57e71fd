//! Publishing the documents to S3, for a CDN in front (`CloudFront` with origin access control):
//! the JWKS first, then discovery, each `application/json` with `Cache-Control: public,
//! max-age=N` (N a little under the asked-for age, so that caches that fetched together do not
//! all expire together), and nothing written when S3 already holds the same bytes.

use std::fmt;
use std::str::FromStr;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::primitives::ByteStream;

use super::{Documents, JWKS_PATH, OPENID_CONFIGURATION_PATH};
use crate::{Error, Jwks, Result};

/// Where the documents go: `s3://BUCKET` or `s3://BUCKET/PREFIX`; the objects are
/// `PREFIX/.well-known/jwks.json` and `PREFIX/.well-known/openid-configuration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Target {
    /// The bucket.
    pub bucket: String,
    /// The key prefix, without leading or trailing `/` (empty: the bucket's root).
    pub prefix: String,
}

/// A destination that is not an `s3://BUCKET` or `s3://BUCKET/PREFIX` URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an s3://BUCKET or s3://BUCKET/PREFIX URL")]
pub struct BadS3Url(pub String);

impl FromStr for S3Target {
    type Err = BadS3Url;

    fn from_str(url: &str) -> std::result::Result<S3Target, BadS3Url> {
        let bad = || BadS3Url(url.to_owned());
        let rest = url.strip_prefix("s3://").ok_or_else(bad)?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's bucket naming rules, enough to refuse what S3 would: 3-63 lower-case letters,
        // digits, '.' and '-', starting and ending with a letter or digit.
        let valid = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && bucket.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
        if !valid || prefix.split('/').any(|part| part == "." || part == "..") {
            return Err(bad());
        }
        Ok(S3Target { bucket: bucket.to_owned(), prefix: prefix.trim_matches('/').to_owned() })
    }
}

impl fmt::Display for S3Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

impl S3Target {
    /// The object key of a document at `path` (`/.well-known/...`).
    #[must_use]
    pub fn key(&self, path: &str) -> String {
        let path = path.trim_start_matches('/');
        if self.prefix.is_empty() { path.to_owned() } else { format!("{}/{path}", self.prefix) }
    }
}

/// An S3 client for `config` (a [`crate::kms::KmsOptions::load`]): path-style addressing when
/// the configuration names its own endpoint (`LocalStack`, `MinIO`), whose buckets have no DNS
/// names of their own.
#[must_use]
pub fn s3_client(config: &aws_config::SdkConfig) -> Client {
    let path_style = config.endpoint_url().is_some();
    Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(path_style).build())
}

/// What [`publish_to_s3`] did with each document, by object key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Published {
    /// Objects written (their bytes changed, or they did not exist).
    pub written: Vec<String>,
    /// Objects that already held the same bytes and were left alone.
    pub unchanged: Vec<String>,
    /// The `Cache-Control` the written objects carry.
    pub cache_control: String,
    /// The `kid` of the key that signs now, which the published JWKS holds.
    pub current_kid: String,
}

/// The metadata entry that records the SHA-256 of what was written: S3's own `ETag` is no
/// content hash for every kind of encryption, this one is.
const SHA256_METADATA: &str = "kms-jwt-sha256";

/// Publishes `docs` to `target`: the JWKS first, so that discovery never names keys that are
/// not there yet. Refuses, before writing anything, a JWKS without `current_kid` (the key that
/// signs now: verifiers must have it). Each document is written only when its bytes changed.
pub async fn publish_to_s3(
    s3: &Client,
    target: &S3Target,
    docs: &Documents,
    current_kid: &str,
    max_age_secs: u64,
) -> Result<S3Published> {
    let jwks = Jwks::parse(&docs.jwks)?;
    if !jwks.keys.iter().any(|k| k.kid.as_deref() == Some(current_kid)) {
        return Err(Error::Refused(format!(
            "the JWKS lacks the current key {current_kid}: verifiers would refuse its tokens, so nothing was published"
        )));
    }
    let cache_control = super::cache_control(jittered(max_age_secs));
    let mut done = S3Published {
        cache_control: cache_control.clone(),
        current_kid: current_kid.to_owned(),
        ..S3Published::default()
    };
    for (path, bytes) in [(JWKS_PATH, &docs.jwks), (OPENID_CONFIGURATION_PATH, &docs.openid_configuration)] {
        let key = target.key(path);
        let sha256 = crate::b64::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes));
        if stored_sha256(s3, &target.bucket, &key).await?.as_deref() == Some(sha256.as_str()) {
            done.unchanged.push(key);
            continue;
        }
        s3.put_object()
            .bucket(&target.bucket)
            .key(&key)
            .body(ByteStream::from(bytes.clone()))
            .content_type("application/json")
            .cache_control(&cache_control)
            .metadata(SHA256_METADATA, &sha256)
            .send()
            .await
            .map_err(|e| s3_error("PutObject", &target.bucket, &key, e))?;
        done.written.push(key);
    }
    Ok(done)
}

/// Publishes the documents of `keys` (as [`super::jwks_from_kms`] reads them) for `issuer` to
/// `target`, as [`publish_to_s3`] does; the first of `keys` names the key that signs now.
pub async fn publish_keys_to_s3(
    kms: &crate::kms::KmsClient,
    s3: &Client,
    target: &S3Target,
    keys: &[String],
    issuer: &str,
    max_age_secs: u64,
) -> Result<S3Published> {
    let first = keys.first().ok_or_else(|| Error::Config("no key to publish".into()))?;
    let jwks = super::jwks_from_kms(kms, keys, None).await?;
    let current = kms.describe_signing_key(&crate::kms::normalize_key_ref(first)).await?.public_key.thumbprint();
    publish_to_s3(s3, target, &Documents::new(issuer, &jwks), &current, max_age_secs).await
}

/// The SHA-256 recorded on the object when it was written; `None` when it does not exist.
async fn stored_sha256(s3: &Client, bucket: &str, key: &str) -> Result<Option<String>> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(head) => Ok(head.metadata().and_then(|m| m.get(SHA256_METADATA)).cloned()),
        Err(e) if e.as_service_error().is_some_and(HeadObjectError::is_not_found) => Ok(None),
        Err(e) => Err(s3_error("HeadObject", bucket, key, e)),
    }
}

fn s3_error<E>(operation: &str, bucket: &str, key: &str, e: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = match &e {
        SdkError::ServiceError(service) => {
            format!("{}: {}", service.err().code().unwrap_or("error"), service.err().message().unwrap_or("no message"))
        }
        other => crate::kms::root_cause(other),
    };
    Error::Publish { message: format!("s3 {operation} of s3://{bucket}/{key} failed: {detail}"), source: Box::new(e) }
}

/// `max_age` less up to a tenth of it, at random: documents published at the same moment by
/// several runs, or fetched at the same moment by many caches, do not all expire together.
fn jittered(max_age: u64) -> u64 {
    let mut byte = [0u8; 2];
    // Jitter is no secret; without the RNG, no jitter.
    let _ = aws_lc_rs::rand::fill(&mut byte);
    let spread = max_age / 10;
    if spread == 0 { max_age } else { max_age - u64::from(u16::from_le_bytes(byte)) % (spread + 1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_strictly() {
        let t: S3Target = "s3://jwt-keys/issuer/prod/".parse().unwrap();
        assert_eq!((t.bucket.as_str(), t.prefix.as_str()), ("jwt-keys", "issuer/prod"));
        assert_eq!(t.key(JWKS_PATH), "issuer/prod/.well-known/jwks.json");
        assert_eq!(t.to_string(), "s3://jwt-keys/issuer/prod");
        let root: S3Target = "s3://jwt-keys".parse().unwrap();
        assert_eq!(root.key(OPENID_CONFIGURATION_PATH), ".well-known/openid-configuration");
        for bad in
            ["https://jwt-keys", "s3://", "s3://Jwt-Keys", "s3://ab", "s3://-keys", "s3://keys/../x", "s3://k_eys"]
        {
            let err = bad.parse::<S3Target>().unwrap_err().to_string();
            assert!(err.ends_with("is not an s3://BUCKET or s3://BUCKET/PREFIX URL"), "{bad}: {err}");
        }
    }

    #[test]
    fn jitter_shortens_by_at_most_a_tenth() {
        for _ in 0..200 {
            let age = jittered(300);
            assert!((270..=300).contains(&age), "{age}");
        }
        assert_eq!(jittered(5), 5);
    }
}
