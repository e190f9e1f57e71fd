//! `kms-jwt publish --to s3://...` against LocalStack's KMS and S3: the two documents as
//! `application/json` with a jittered `Cache-Control`, the JWKS first, nothing written when
//! nothing changed, a rotation published on the next run, and a JWKS without the current key
//! refused before anything is written.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use std::process::Output;

use kms_jwt::publish::{Documents, S3Target};
use kms_jwt::{Jwks, JwtSigner, LocalSigner};
use serde_json::{Value, json};

fn stdout_json(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// An object's body and response headers (lower-cased), fetched anonymously over HTTP.
fn fetch(bucket: &str, key: &str) -> (String, String) {
    let url = format!("{}/{bucket}/{key}", support::endpoint());
    let out = std::process::Command::new("curl").args(["-fsS", "-D", "-", &url]).output().unwrap();
    assert!(out.status.success(), "{url}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (body.to_owned(), head.to_ascii_lowercase())
}

#[tokio::test]
async fn publish_writes_both_documents_once_and_again_after_a_rotation() {
    let (sets, name) = support::key_set("ECC_NIST_P256").await;
    let bucket = support::unique("kms-jwt-keys");
    let s3 = kms_jwt::publish::s3_client(&support::options().load().await.unwrap());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let cli = support::kms_jwt!().localstack();
    let to = format!("s3://{bucket}/prod");
    let publish = || cli.output(["publish", "--key", name.name(), "--issuer", "https://issuer.example", "--to", &to]);

    let first = stdout_json(&publish());
    assert_eq!(first["written"], json!(["prod/.well-known/jwks.json", "prod/.well-known/openid-configuration"]));
    assert_eq!(first["unchanged"], json!([]));
    let (jwks, head) = fetch(&bucket, "prod/.well-known/jwks.json");
    assert!(head.contains("content-type: application/json"), "{head}");
    let cache = head.lines().find_map(|l| l.strip_prefix("cache-control: ")).unwrap().trim().to_owned();
    assert_eq!(cache, first["cache_control"].as_str().unwrap());
    let age: u64 = cache.strip_prefix("public, max-age=").unwrap().parse().unwrap();
    assert!((270..=300).contains(&age), "a tenth of jitter at most: {cache}");
    let jwks = Jwks::parse(jwks.as_bytes()).unwrap();
    assert_eq!(jwks.keys[0].kid.as_deref(), first["current_kid"].as_str());
    let (discovery, _) = fetch(&bucket, "prod/.well-known/openid-configuration");
    let discovery: Value = serde_json::from_str(&discovery).unwrap();
    assert_eq!(discovery["jwks_uri"], "https://issuer.example/.well-known/jwks.json");

    // The same keys: nothing is written.
    let again = stdout_json(&publish());
    assert_eq!(again["written"], json!([]), "{again}");
    assert_eq!(again["unchanged"].as_array().unwrap().len(), 2);

    // After a rotation the JWKS has both keys; it is written.
    sets.rotate(&name, &support::rotation_policy(Some(std::time::Duration::ZERO), false)).await.unwrap();
    let rotated = stdout_json(&publish());
    assert_ne!(rotated["current_kid"], first["current_kid"]);
    assert!(rotated["written"].as_array().unwrap().contains(&json!("prod/.well-known/jwks.json")), "{rotated}");
    let (jwks, _) = fetch(&bucket, "prod/.well-known/jwks.json");
    assert_eq!(Jwks::parse(jwks.as_bytes()).unwrap().keys.len(), 2);
}

#[tokio::test]
async fn a_jwks_without_the_current_key_is_never_published() {
    let bucket = support::unique("kms-jwt-keys");
    let s3 = kms_jwt::publish::s3_client(&support::options().load().await.unwrap());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let other = JwtSigner::new(LocalSigner::generate(kms_jwt::Algorithm::ES256).unwrap()).unwrap();
    let docs = Documents::new("https://issuer.example", &Jwks { keys: vec![other.jwk()] });
    let target: S3Target = format!("s3://{bucket}").parse().unwrap();
    let err = kms_jwt::publish::publish_to_s3(&s3, &target, &docs, "the-current-kid", 300).await.unwrap_err();
    assert!(err.to_string().starts_with("the JWKS lacks the current key the-current-kid"), "{err}");
    let listed = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0), "nothing was written");
}

#[test]
fn bad_destinations_are_one_line_errors() {
    let cli = support::kms_jwt!();
    let out = cli.output(["publish", "--key", "k", "--issuer", "https://issuer.example", "--to", "s3://No_Such"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end(), "kms-jwt: \"s3://No_Such\" is not an s3://BUCKET or s3://BUCKET/PREFIX URL");
    let out = cli.output(["publish", "--key", "k", "--issuer", "https://issuer.example"]);
    assert_eq!(out.status.code(), Some(2));
}
