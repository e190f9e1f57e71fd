//! The function end to end under a Lambda runtime emulator: cargo-lambda's Runtime API
//! (`cargo lambda watch --only-lambda-apis`, from `PyPI`) runs the built `kms-jwt-lambda` binary
//! as Lambda would, and is invoked over HTTP with a function URL event that carries an IAM
//! caller. The token is verified by PyJWT against the JWKS published to LocalStack's S3. The
//! function's init time and the first and later invocations' times are printed
//! (`cargo test -p kms-jwt-lambda --test emulator -- --nocapture`).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kms_jwt::publish::{self, Documents, S3Target};
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.example";
const ROOT: &str = "arn:aws:iam::000000000000:root";
const POLICY: &str =
    "[[rule]]\nprincipals = [\"arn:aws:iam::000000000000:root\"]\naudiences = [\"api\"]\nmax_ttl = \"30m\"\n";

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// cargo-lambda's Runtime API on `port`. It reads a Cargo project where it starts (a throwaway
/// one: with --only-lambda-apis it builds nothing), and routes the invocations of function `_`
/// to the runtime that polls it without naming a function, as the Rust runtime does.
fn emulator(port: u16, project: &std::path::Path) -> Running {
    let cargo_lambda = std::env::var("KMS_JWT_TEST_CARGO_LAMBDA").unwrap_or_else(|_| {
        panic!("this test needs cargo-lambda: run `cargo xtask ci`, or export KMS_JWT_TEST_CARGO_LAMBDA=$(bash scripts/cargo-lambda.sh path)")
    });
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(
        project.join("Cargo.toml"),
        "[package]\nname = \"kms-jwt-lambda\"\nversion = \"0.0.0\"\nedition = \"2021\"\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(project.join("src/main.rs"), "fn main() {}\n").unwrap();
    let child = Command::new(cargo_lambda)
        .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", &port.to_string()])
        .current_dir(project)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "the emulator did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    running
}

/// Invokes the function through the emulator's Invoke API: its JSON answer and the wall time.
fn invoke(port: u16, event: &Value) -> (Value, Duration) {
    let url = format!("http://127.0.0.1:{port}/2015-03-31/functions/_/invocations");
    let started = Instant::now();
    let out =
        Command::new("curl").args(["-fsS", "-m", "30", "-X", "POST", &url, "-d", &event.to_string()]).output().unwrap();
    let took = started.elapsed();
    assert!(out.status.success(), "invoke: {}", String::from_utf8_lossy(&out.stderr));
    (serde_json::from_slice(&out.stdout).unwrap(), took)
}

fn token_event(body: &str, iam: Option<(&str, &str)>) -> Value {
    let authorizer = iam.map_or(json!({}), |(arn, account)| {
        json!({"iam": {"accessKey": "ASIAEXAMPLEKEY000001", "accountId": account, "callerId": "AIDAEXAMPLE",
                       "userArn": arn, "userId": "AIDAEXAMPLE", "cognitoIdentity": null, "principalOrgId": null}})
    });
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/token", "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "abcdefgh.lambda-url.us-east-1.on.aws"},
        "requestContext": {
            "accountId": "anonymous", "apiId": "abcdefgh", "authorizer": authorizer,
            "domainName": "abcdefgh.lambda-url.us-east-1.on.aws", "domainPrefix": "abcdefgh",
            "http": {"method": "POST", "path": "/token", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "kms-jwt"},
            "requestId": "emulator-1", "routeKey": "$default", "stage": "$default",
            "time": "01/Dec/2026:05:00:00 +0000", "timeEpoch": 1_796_101_200_000_i64
        },
        "body": body, "isBase64Encoded": false
    })
}

#[tokio::test]
async fn the_function_under_a_runtime_emulator_issues_tokens_pyjwt_verifies_from_s3() {
    // The key set, and its documents published to S3 as the rotation function would.
    let (_, name) = support::key_set("ECC_NIST_P256").await;
    let kms = support::kms().await;
    let bucket = support::unique("kms-jwt-keys");
    let s3 = publish::s3_client(&support::options().load().await.unwrap());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let jwks = publish::jwks_from_kms(&kms, &[name.current()], None).await.unwrap();
    let current = kms.describe_signing_key(&name.current()).await.unwrap().public_key.thumbprint();
    let target: S3Target = format!("s3://{bucket}").parse().unwrap();
    publish::publish_to_s3(&s3, &target, &Documents::new(ISSUER, &jwks), &current, 300).await.unwrap();

    let port = free_port();
    let project = tempfile::tempdir().unwrap();
    let _emulator = emulator(port, project.path());
    let started = Instant::now();
    let function = Command::new(env!("CARGO_BIN_EXE_kms-jwt-lambda"))
        .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "kms-jwt-lambda")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_ENDPOINT_URL", support::endpoint())
        .envs(support::LOCALSTACK_ENV)
        .env("KMS_JWT_KEY", name.name())
        .env("KMS_JWT_ISSUER", ISSUER)
        .env("KMS_JWT_TOKEN_POLICY", POLICY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut function = Running(function);

    let (first, first_took) =
        invoke(port, &token_event(r#"{"audience":"api","ttl":"10m"}"#, Some((ROOT, "000000000000"))));
    let start_to_first = started.elapsed();
    assert_eq!(first["statusCode"], 200, "{first}");
    let token =
        serde_json::from_str::<Value>(first["body"].as_str().unwrap()).unwrap()["token"].as_str().unwrap().to_owned();
    let mut warm = Vec::new();
    for _ in 0..20 {
        let (again, took) =
            invoke(port, &token_event(r#"{"audience":"api","ttl":"10m"}"#, Some((ROOT, "000000000000"))));
        assert_eq!(again["statusCode"], 200, "{again}");
        warm.push(took);
    }
    let (refused, _) = invoke(port, &token_event(r#"{"audience":"api"}"#, None));
    assert_eq!(refused["statusCode"], 401, "no IAM caller: {refused}");

    // PyJWT, with the JWKS fetched from S3 as a verifier would fetch it from CloudFront.
    let jwks_url = format!("{}/{bucket}/.well-known/jwks.json", support::endpoint());
    let script = r#"
import json, sys, jwt
client = jwt.PyJWKClient(sys.argv[1])
key = client.get_signing_key_from_jwt(sys.argv[2])
print(json.dumps(jwt.decode(sys.argv[2], key.key, algorithms=["ES256"], audience="api", issuer=sys.argv[3])))
"#;
    let out = Command::new(support::python()).args(["-c", script, &jwks_url, &token, ISSUER]).output().unwrap();
    assert!(out.status.success(), "PyJWT: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["sub"], ROOT);

    // The function's own account of its start: init_ms, with the KMS round trips to LocalStack.
    let _ = function.0.kill();
    let output = std::mem::replace(&mut function.0, Command::new("true").spawn().unwrap()).wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    let init_ms = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|l| l["fields"]["init_ms"].as_u64())
        .unwrap_or_else(|| panic!("no init_ms in the function's log: {log}"));
    warm.sort();
    eprintln!(
        "lambda emulator: init {init_ms} ms (KMS round trips included), process start to first answer {} ms, first invocation {} ms, warm p50 {} ms / max {} ms over {} invocations",
        start_to_first.as_millis(),
        first_took.as_millis(),
        warm[warm.len() / 2].as_millis(),
        warm[warm.len() - 1].as_millis(),
        warm.len()
    );
}
