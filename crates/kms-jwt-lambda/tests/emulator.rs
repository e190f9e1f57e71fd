//! The function end to end under a Lambda runtime emulator: cargo-lambda's Runtime API
//! (`cargo lambda watch --only-lambda-apis`, from `PyPI`) runs the built `kms-jwt-lambda` binary
//! as Lambda would, and is invoked over HTTP with a function URL event that carries an IAM
//! caller. The token is verified by `PyJWT` against the JWKS published to `LocalStack`'s S3. The
//! function's init time and the invocations' times are printed
//! (`cargo test -p kms-jwt-lambda --test emulator -- --nocapture`).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use std::process::Command;
use std::time::{Duration, Instant};

use kms_jwt::publish::{self, S3Target};
use serde_json::Value;
use support::lambda::{LambdaUnderEmulator, function_url_event};

const ISSUER: &str = "https://issuer.example";
const ROOT: &str = "arn:aws:iam::000000000000:root";
const POLICY: &str =
    "[[rule]]\nprincipals = [\"arn:aws:iam::000000000000:root\"]\naudiences = [\"api\"]\nmax_ttl = \"30m\"\n";

/// Invokes the function through the emulator's Invoke API: its JSON answer and the wall time.
fn invoke(url: &str, event: &Value) -> (Value, Duration) {
    let started = Instant::now();
    let out =
        Command::new("curl").args(["-fsS", "-m", "30", "-X", "POST", url, "-d", &event.to_string()]).output().unwrap();
    let took = started.elapsed();
    assert!(out.status.success(), "invoke: {}", String::from_utf8_lossy(&out.stderr));
    (serde_json::from_slice(&out.stdout).unwrap(), took)
}

#[tokio::test]
async fn the_function_under_a_runtime_emulator_issues_tokens_pyjwt_verifies_from_s3() {
    let cargo_lambda = std::env::var("KMS_JWT_TEST_CARGO_LAMBDA").unwrap_or_else(|_| {
        panic!("this test needs cargo-lambda: run `cargo xtask ci`, or export KMS_JWT_TEST_CARGO_LAMBDA=$(bash scripts/cargo-lambda.sh path)")
    });
    // The key set, and its documents published to S3 as the rotation function would.
    let (_, name) = support::key_set("ECC_NIST_P256").await;
    let kms = support::kms().await;
    let bucket = support::unique("kms-jwt-keys");
    let s3 = publish::s3_client(&support::options().load().await.unwrap());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let target: S3Target = format!("s3://{bucket}").parse().unwrap();
    publish::publish_keys_to_s3(&kms, &s3, &target, &[name.current()], ISSUER, 300).await.unwrap();

    let endpoint = support::endpoint();
    let mut env = vec![
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("KMS_JWT_KEY", name.name()),
        ("KMS_JWT_ISSUER", ISSUER),
        ("KMS_JWT_TOKEN_POLICY", POLICY),
    ];
    env.extend(support::LOCALSTACK_ENV);
    let started = Instant::now();
    let function =
        LambdaUnderEmulator::start(cargo_lambda.as_ref(), env!("CARGO_BIN_EXE_kms-jwt-lambda").as_ref(), &env);
    let ask = function_url_event("POST", "/token", r#"{"audience":"api","ttl":"10m"}"#, Some((ROOT, "000000000000")));
    let (first, first_took) = invoke(&function.invoke_url, &ask);
    let start_to_first = started.elapsed();
    assert_eq!(first["statusCode"], 200, "{first}");
    let answer: Value = serde_json::from_str(first["body"].as_str().unwrap()).unwrap();
    let token = answer["token"].as_str().unwrap().to_owned();
    let mut warm = Vec::new();
    for _ in 0..20 {
        let (again, took) = invoke(&function.invoke_url, &ask);
        assert_eq!(again["statusCode"], 200, "{again}");
        warm.push(took);
    }
    let (refused, _) =
        invoke(&function.invoke_url, &function_url_event("POST", "/token", r#"{"audience":"api"}"#, None));
    assert_eq!(refused["statusCode"], 401, "no IAM caller: {refused}");

    // PyJWT, with the JWKS fetched from S3 as a verifier would fetch it from CloudFront.
    let jwks_url = format!("{endpoint}/{bucket}/.well-known/jwks.json");
    let script = r#"
import json, sys, jwt
client = jwt.PyJWKClient(sys.argv[1])
key = client.get_signing_key_from_jwt(sys.argv[2])
print(json.dumps(jwt.decode(sys.argv[2], key.key, algorithms=["ES256"], audience="api", issuer=sys.argv[3])))
"#;
    let out = Command::new(support::python()).args(["-c", script, &jwks_url, &token, ISSUER]).output().unwrap();
    assert!(out.status.success(), "PyJWT: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["sub"], ROOT);

    // The function's own account of its start.
    let log = function.log();
    let ready = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == "issuer ready")
        .unwrap_or_else(|| panic!("no start-up line in the function's log: {log}"));
    warm.sort();
    eprintln!(
        "lambda emulator: init {} ms ({} ms of it KMS), process start to first answer {} ms, first invocation {} ms, warm p50 {} ms / max {} ms over {} invocations (curl each)",
        ready["fields"]["init_ms"],
        ready["fields"]["kms_ms"],
        start_to_first.as_millis(),
        first_took.as_millis(),
        warm[warm.len() / 2].as_millis(),
        warm[warm.len() - 1].as_millis(),
        warm.len()
    );
}
