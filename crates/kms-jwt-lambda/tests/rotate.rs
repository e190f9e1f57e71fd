//! The scheduled rotation against LocalStack's KMS and S3: two runs at once rotate the set
//! once and publish documents that PyJWT verifies the new key's tokens with; a later run that
//! is not due changes and writes nothing; an event that is not the schedule's runs nothing.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use std::time::Duration;

use kms_jwt::aws_sdk_s3;
use kms_jwt::kms::KmsSigner;
use kms_jwt::{Claims, JwtSigner};
use kms_jwt_lambda::config::Config;
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.example";

async fn s3() -> aws_sdk_s3::Client {
    kms_jwt::publish::s3_client(&support::options().load().await.unwrap())
}

fn config(set: &str, bucket: &str, if_older_than: &str) -> Config {
    let vars = [
        ("KMS_JWT_MODE", "rotate".to_owned()),
        ("KMS_JWT_KEY", set.to_owned()),
        ("KMS_JWT_ISSUER", ISSUER.to_owned()),
        ("KMS_JWT_PUBLISH_TO", format!("s3://{bucket}/issuer")),
        ("KMS_JWT_ROTATE_IF_OLDER_THAN", if_older_than.to_owned()),
    ];
    Config::from_vars(|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone())).unwrap()
}

/// An object's body and headers, read anonymously over HTTP as `CloudFront`'s origin would be.
fn fetch(bucket: &str, key: &str) -> (Vec<u8>, String) {
    let url = format!("{}/{bucket}/{key}", support::endpoint());
    let out = std::process::Command::new("curl").args(["-fsS", "-D", "-", &url]).output().unwrap();
    assert!(out.status.success(), "{url}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (body.as_bytes().to_vec(), head.to_ascii_lowercase())
}

#[tokio::test]
async fn two_scheduled_runs_at_once_rotate_once_and_publish_what_verifies_the_new_key() {
    let (_, name) = support::key_set("ECC_NIST_P256").await;
    let bucket = support::unique("kms-jwt-keys");
    let s3 = s3().await;
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let kms = support::kms().await;
    let before = KmsSigner::new(&kms, &name.current()).await.unwrap().key().key.key_id.clone();

    // Due: the current key is older than a second. Both runs see it due; one rotates.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let due = config(name.name(), &bucket, "1s");
    let event = json!({"kms_jwt": "rotate"});
    let (a, b) = tokio::join!(
        kms_jwt_lambda::rotate::handle(&due, &kms, &s3, &event),
        kms_jwt_lambda::rotate::handle(&due, &kms, &s3, &event)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let rotations = [&a, &b].iter().filter(|r| r["rotated"] == true).count();
    assert_eq!(rotations, 1, "exactly one run rotates: {a} {b}");
    let after = KmsSigner::new(&kms, &name.current()).await.unwrap();
    assert_ne!(after.key().key.key_id, before);
    let keys = support::keys_of_set(kms.sdk(), &name).await;
    assert_eq!(keys.len(), 2, "one new key, not two: {keys:?}");

    // The documents: JSON, cacheable, the JWKS with the new current key and the old one.
    let (jwks, head) = fetch(&bucket, "issuer/.well-known/jwks.json");
    assert!(head.contains("content-type: application/json"), "{head}");
    let max_age: u64 =
        head.split("cache-control: public, max-age=").nth(1).unwrap().lines().next().unwrap().trim().parse().unwrap();
    assert!((270..=300).contains(&max_age), "{head}");
    let (discovery, _) = fetch(&bucket, "issuer/.well-known/openid-configuration");
    let discovery: Value = serde_json::from_slice(&discovery).unwrap();
    assert_eq!(discovery["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
    let jwks_text = String::from_utf8(jwks).unwrap();
    let signer = JwtSigner::new(after).unwrap();
    assert!(jwks_text.contains(signer.kid()), "the new current key is published");
    let token =
        signer.sign(&Claims::new().subject("alice").issuer(ISSUER).expires_at(kms_jwt::now() + 600)).await.unwrap();
    let script = r#"
import json, sys, jwt
jwks = jwt.PyJWKSet.from_json(sys.argv[1])
token = sys.argv[2]
kid = jwt.get_unverified_header(token)["kid"]
key = next(k for k in jwks.keys if k.key_id == kid)
print(json.dumps(jwt.decode(token, key.key, algorithms=[key.algorithm_name], issuer=sys.argv[3])))
"#;
    let out = std::process::Command::new(support::python())
        .args(["-c", script, &jwks_text, &token, ISSUER])
        .output()
        .unwrap();
    assert!(out.status.success(), "PyJWT: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["sub"], "alice");

    // Not due: nothing rotates, and S3 already holds these bytes: nothing is written.
    let later = kms_jwt_lambda::rotate::handle(&config(name.name(), &bucket, "1h"), &kms, &s3, &event).await.unwrap();
    assert_eq!(later["rotated"], false, "{later}");
    assert_eq!(later["written"], json!([]), "{later}");
    assert_eq!(later["unchanged"].as_array().unwrap().len(), 2, "{later}");

    // Only the schedule's event runs a rotation.
    for other in [json!({}), json!({"kms_jwt": "serve"}), json!({"requestContext": {}, "body": "{}"})] {
        let err = kms_jwt_lambda::rotate::handle(&due, &kms, &s3, &other).await.unwrap_err().to_string();
        assert!(err.starts_with("not a rotation event"), "{err}");
    }
    assert_eq!(support::keys_of_set(kms.sdk(), &name).await.len(), 2);
}
