//! The `kms-jwt` binary against `LocalStack`: sign with every flag, batches, jwks,
//! public-key, verify --key, and one-line errors with exit code 2.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use std::process::Output;

use kms_jwt::{Jwks, PublicKey};

fn stdout(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn assert_one_line_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
}

fn payload(token: &str) -> serde_json::Value {
    kms_jwt::decode_unverified(token).unwrap().1
}

#[tokio::test]
async fn sign_with_every_flag_then_verify_with_the_kms_key() {
    let cli = support::kms_jwt!().localstack();
    let client = support::client().await;
    let key_id = support::signing_key(&client, "ECC_NIST_P256").await;
    let token = stdout(&cli.output([
        "sign",
        "--key",
        &key_id,
        "--claims",
        r#"{"scope":"read","sub":"overridden"}"#,
        "--sub",
        "test-user",
        "--iss",
        "my-lambda",
        "--aud",
        "a",
        "--aud",
        "b",
        "--exp",
        "4102444800",
        "--nbf",
        "1000",
        "--no-iat",
        "--jti",
        "--kid",
        "key-id",
    ]));
    let token = token.trim_end();
    let claims = payload(token);
    assert_eq!(claims["sub"], "test-user");
    assert_eq!(claims["iss"], "my-lambda");
    assert_eq!(claims["aud"], serde_json::json!(["a", "b"]));
    assert_eq!(claims["exp"], 4_102_444_800_i64);
    assert_eq!(claims["nbf"], 1000);
    assert_eq!(claims["scope"], "read");
    assert!(claims.get("iat").is_none());
    assert_eq!(claims["jti"].as_str().unwrap().len(), 22);
    assert_eq!(kms_jwt::decode_unverified(token).unwrap().0["kid"], key_id.as_str());

    // --kid key-id tokens verify against the KMS key directly (a single key matches any kid).
    let verified = stdout(&cli.output(["verify", token, "--key", &key_id, "--iss", "my-lambda", "--aud", "b"]));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&verified).unwrap(), claims);

    // Defaults: iat now, exp = now + 15m, thumbprint kid.
    let token = stdout(&cli.output(["sign", "--key", &key_id, "--sub", "x"]));
    let claims = payload(token.trim_end());
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 900);
    let ttl = stdout(&cli.output(["sign", "--key", &key_id, "--ttl", "2h"]));
    let claims = payload(ttl.trim_end());
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 7200);
}

#[tokio::test]
async fn batch_keeps_input_order() {
    let cli = support::kms_jwt!().localstack();
    let client = support::client().await;
    let key_id = support::signing_key(&client, "ECC_NIST_P256").await;
    let input = (0..60).map(|i| format!("{{\"n\":{i}}}")).collect::<Vec<_>>().join("\n");
    let out = support::run_with_stdin(
        cli.command().args(["sign", "--key", &key_id, "--batch", "-", "--concurrency", "8"]),
        input.as_bytes(),
    );
    let text = stdout(&out);
    let tokens: Vec<&str> = text.lines().collect();
    assert_eq!(tokens.len(), 60);
    for (i, token) in tokens.iter().enumerate() {
        assert_eq!(payload(token)["n"], i);
    }
    // The same tokens verify as a batch against the key's JWKS.
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, stdout(&cli.output(["jwks", "--key", &key_id]))).unwrap();
    let verified = support::run_with_stdin(
        cli.command().args(["verify", "--batch", "-", "--jwks", jwks_path.to_str().unwrap()]),
        text.as_bytes(),
    );
    assert_eq!(stdout(&verified).lines().filter(|l| l.starts_with("{\"valid\":true")).count(), 60);

    // A bad line stops the batch with an error naming it; earlier tokens were printed.
    let out = support::run_with_stdin(
        cli.command().args(["sign", "--key", &key_id, "--batch", "-", "--concurrency", "1"]),
        b"{\"n\":0}\n[1]\n{\"n\":2}\n",
    );
    assert_one_line_error(&out, "line 2 of -");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}

#[tokio::test]
async fn jwks_and_public_key_agree_with_get_public_key() {
    let cli = support::kms_jwt!().localstack();
    let client = support::client().await;
    let key_id = support::signing_key(&client, "RSA_2048").await;
    let spki = client.get_public_key().key_id(&key_id).send().await.unwrap().public_key.unwrap();
    let expected = PublicKey::from_spki_der(spki.as_ref()).unwrap();

    let pem = stdout(&cli.output(["public-key", "--key", &key_id]));
    assert_eq!(PublicKey::from_pem(&pem).unwrap().to_spki_der(), spki.as_ref());
    let jwk: serde_json::Value =
        serde_json::from_str(&stdout(&cli.output(["public-key", "--key", &key_id, "--format", "jwk"]))).unwrap();
    assert_eq!(jwk["kid"], expected.thumbprint());
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["kty"], "RSA");
    let jwks = Jwks::parse(stdout(&cli.output(["jwks", "--key", &key_id, "--alg", "PS256"])).as_bytes()).unwrap();
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(jwks.keys[0].key, expected);
    assert_eq!(jwks.keys[0].alg, Some(kms_jwt::Algorithm::PS256));
}

#[tokio::test]
async fn kms_errors_are_one_line_with_exit_2() {
    let cli = support::kms_jwt!().localstack();
    let client = support::client().await;
    let missing = support::unique("alias/kms-jwt-missing");
    assert_one_line_error(&cli.output(["sign", "--key", &missing]), &format!("kms key {missing} was not found"));

    let disabled = support::signing_key(&client, "ECC_NIST_P256").await;
    client.disable_key().key_id(&disabled).send().await.unwrap();
    assert_one_line_error(&cli.output(["sign", "--key", &disabled]), "is disabled");

    let deleted = support::signing_key(&client, "ECC_NIST_P256").await;
    client.schedule_key_deletion().key_id(&deleted).pending_window_in_days(7).send().await.unwrap();
    assert_one_line_error(&cli.output(["sign", "--key", &deleted]), "is pending deletion");

    let encrypt = support::create_key(
        &client,
        aws_sdk_kms::types::KeyUsageType::EncryptDecrypt,
        aws_sdk_kms::types::KeySpec::SymmetricDefault,
    )
    .await;
    assert_one_line_error(&cli.output(["sign", "--key", &encrypt]), "SIGN_VERIFY RSA, ECC or ML-DSA key is required");

    let rsa = support::signing_key(&client, "RSA_2048").await;
    assert_one_line_error(
        &cli.output(["sign", "--key", &rsa, "--alg", "ES256"]),
        "algorithm ES256 is not valid for kms key",
    );
    assert_one_line_error(
        &cli.output(["sign", "--key", &rsa, "--claims", "{\"exp\":\"soon\"}"]),
        "exp must be a number",
    );
    assert_one_line_error(
        &cli.output(["sign", "--key", &rsa, "--endpoint-url", "http://127.0.0.1:9"]),
        "cannot reach kms",
    );
}

#[tokio::test]
async fn jwks_of_an_alias_publishes_the_whole_key_set() {
    use kms_jwt::keyset::RotationPolicy;
    let cli = support::kms_jwt!().localstack();
    let (sets, name) = support::key_set("ECC_NIST_P256").await;
    let old = stdout(&cli.output(["sign", "--key", name.name()]));
    let policy = RotationPolicy {
        pending_window_days: 7,
        min_overlap: Some(std::time::Duration::ZERO),
        if_older_than: None,
        force: false,
        description: "t".into(),
        key_spec: None,
    };
    sets.rotate(&name, &policy).await.unwrap();
    let jwks = Jwks::parse(stdout(&cli.output(["jwks", "--key", &name.current()])).as_bytes()).unwrap();
    assert_eq!(jwks.keys.len(), 2, "current and previous");
    // verify --key with the set's name accepts tokens of both keys.
    let new = stdout(&cli.output(["sign", "--key", &name.current()]));
    for token in [old.trim_end(), new.trim_end()] {
        stdout(&cli.output(["verify", token, "--key", name.name()]));
    }
}
