//! The `kms-jwt` binary offline: `verify` (single and batch) and `decode`, exit codes and
//! one-line errors.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use std::process::Output;

use kms_jwt::{Algorithm, Claims, Jwks, JwtSigner, LocalSigner, Signer};

const FAR_FUTURE: i64 = 4_102_444_800;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_one_line_error(out: &Output, code: i32, needle: &str) {
    assert_eq!(out.status.code(), Some(code), "stderr: {}", stderr(out));
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("kms-jwt: ") && err.contains(needle), "{err:?} should mention {needle:?}");
    assert!(!err.contains("panicked"), "{err}");
}

struct Keys {
    dir: tempfile::TempDir,
    signer: JwtSigner<LocalSigner>,
}

impl Keys {
    fn new(alg: Algorithm) -> Keys {
        let signer = JwtSigner::new(LocalSigner::generate(alg).unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jwks.json"), Jwks { keys: vec![signer.jwk()] }.to_json().to_string()).unwrap();
        std::fs::write(dir.path().join("public.pem"), signer.signer().public_key().to_pem()).unwrap();
        Keys { dir, signer }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    async fn token(&self, claims: &Claims) -> String {
        self.signer.sign(claims).await.unwrap()
    }
}

#[tokio::test]
async fn verify_prints_claims_or_the_reason() {
    let cli = support::kms_jwt!();
    let keys = Keys::new(Algorithm::RS256);
    let claims = Claims::new().subject("test-user").issuer("my-lambda").expires_at(FAR_FUTURE);
    let token = keys.token(&claims).await;
    for source in [["--jwks", &keys.path("jwks.json")], ["--pem", &keys.path("public.pem")]] {
        let out = cli.output(["verify", &token, source[0], source[1], "--iss", "my-lambda"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(printed, serde_json::Value::Object(claims.as_map().clone()));
    }
    let out = cli.output(["verify", &token, "--jwks", &keys.path("jwks.json"), "--iss", "someone-else"]);
    assert_one_line_error(&out, 1, "invalid token: issuer \"my-lambda\" is not the expected issuer");
    assert!(out.stdout.is_empty());

    let expired = keys.token(&Claims::new().expires_at(1_000)).await;
    assert_one_line_error(
        &cli.output(["verify", &expired, "--pem", &keys.path("public.pem")]),
        1,
        "token expired at 1000",
    );
    assert_one_line_error(&cli.output(["verify", "a.b", "--pem", &keys.path("public.pem")]), 1, "3 segments");

    let from_stdin = support::run_with_stdin(
        cli.command().args(["verify", "-", "--pem", &keys.path("public.pem")]),
        format!("{token}\n").as_bytes(),
    );
    assert_eq!(from_stdin.status.code(), Some(0), "{}", stderr(&from_stdin));
}

#[tokio::test]
async fn a_token_with_an_audience_needs_aud_or_any_audience() {
    let cli = support::kms_jwt!();
    let keys = Keys::new(Algorithm::ES256);
    let token = keys.token(&Claims::new().subject("x").audience("billing").expires_at(FAR_FUTURE)).await;
    let pem = keys.path("public.pem");
    assert_one_line_error(
        &cli.output(["verify", &token, "--pem", &pem]),
        1,
        "invalid token: token has an audience (aud) but none is expected",
    );
    assert_one_line_error(&cli.output(["verify", &token, "--pem", &pem, "--aud", "api"]), 1, "audience does not match");
    for accepted in [&["--aud", "billing"][..], &["--any-audience"]] {
        let out = cli.output([&["verify", &token, "--pem", &pem][..], accepted].concat());
        assert_eq!(out.status.code(), Some(0), "{accepted:?}: {}", stderr(&out));
    }
    let both = cli.output(["verify", &token, "--pem", &pem, "--aud", "billing", "--any-audience"]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
}

#[tokio::test]
async fn a_token_over_the_size_bound_does_not_verify_on_the_command_line_or_on_stdin() {
    let cli = support::kms_jwt!();
    let keys = Keys::new(Algorithm::ES256);
    let token = keys.token(&Claims::new().claim("pad", "x".repeat(70_000)).expires_at(FAR_FUTURE)).await;
    let expected = format!("invalid token: token is {} bytes, more than the 65536 allowed", token.len());
    let pem = keys.path("public.pem");
    assert_one_line_error(&cli.output(["verify", &token, "--pem", &pem]), 1, &expected);
    let from_stdin = support::run_with_stdin(cli.command().args(["verify", "-", "--pem", &pem]), token.as_bytes());
    assert_one_line_error(&from_stdin, 1, &expected);
    // Far over any bound: counted, not kept, and still exit 1.
    let huge = vec![b'a'; 8 * 1024 * 1024];
    let out = support::run_with_stdin(cli.command().args(["verify", "-", "--pem", &pem]), &huge);
    assert_one_line_error(&out, 1, "invalid token: token is 8388608 bytes, more than the 65536 allowed");
}

#[test]
fn completions_for_every_shell_and_help_with_aws_options_under_their_own_heading() {
    let cli = support::kms_jwt!();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = cli.output(["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains("kms-jwt") && script.contains("verify"), "{shell}: {script}");
    }
    for command in ["sign", "verify", "jwks", "public-key", "publish", "serve"] {
        let out = cli.output([command, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{command}");
        let help = String::from_utf8(out.stdout).unwrap();
        let own = help.find("--key").or_else(|| help.find("--batch")).unwrap_or_else(|| panic!("{help}"));
        let heading = help.find("AWS connection:").unwrap_or_else(|| panic!("{command}: {help}"));
        assert!(own < heading, "{command}: own options first\n{help}");
        for aws in ["--endpoint-url", "--region", "--profile", "--timeout", "--attempt-timeout", "--max-attempts"] {
            assert!(help[heading..].contains(aws), "{command}: {aws} under AWS connection\n{help}");
        }
    }
}

#[tokio::test]
async fn verify_batch_keeps_order_and_reports_each_line() {
    let cli = support::kms_jwt!();
    let keys = Keys::new(Algorithm::ES256);
    let good = keys.token(&Claims::new().subject("a").expires_at(FAR_FUTURE)).await;
    let expired = keys.token(&Claims::new().subject("b").expires_at(1_000)).await;
    let input = format!("{good}\n{expired}\nnot-a-token\n{}\n{good}\r\n", "x".repeat(2 * 1024 * 1024));
    let out = support::run_with_stdin(
        cli.command().args(["verify", "--batch", "-", "--jwks", &keys.path("jwks.json")]),
        input.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0], serde_json::json!({"valid": true, "claims": {"sub": "a", "exp": FAR_FUTURE}}));
    assert_eq!(lines[1], serde_json::json!({"valid": false, "error": "token expired at 1000"}));
    assert_eq!(
        lines[2],
        serde_json::json!({"valid": false, "error": "token must have 3 segments separated by dots, found 1"})
    );
    assert_eq!(lines[3]["valid"], false);
    assert!(lines[3]["error"].as_str().unwrap().contains("more than"), "{}", lines[3]);
    assert_eq!(lines[4]["valid"], true);

    let all_good = support::run_with_stdin(
        cli.command().args(["verify", "--batch", "-", "--pem", &keys.path("public.pem")]),
        format!("{good}\n{good}\n").as_bytes(),
    );
    assert_eq!(all_good.status.code(), Some(0));
}

#[tokio::test]
async fn bad_key_material_is_one_line_and_exit_2() {
    let cli = support::kms_jwt!();
    let keys = Keys::new(Algorithm::ES256);
    let token = keys.token(&Claims::new().expires_at(FAR_FUTURE)).await;
    let dir = tempfile::tempdir().unwrap();
    let bad_pem = dir.path().join("bad.pem");
    std::fs::write(&bad_pem, "-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n").unwrap();
    let bad_jwks = dir.path().join("bad.json");
    std::fs::write(&bad_jwks, r#"{"keys": [{"kty": "RSA", "n": "AQAB"}]}"#).unwrap();
    let not_json = dir.path().join("not.json");
    std::fs::write(&not_json, "{oops").unwrap();

    assert_one_line_error(
        &cli.output(["verify", &token, "--pem", bad_pem.to_str().unwrap()]),
        2,
        "not a PEM public key",
    );
    assert_one_line_error(&cli.output(["verify", &token, "--jwks", bad_jwks.to_str().unwrap()]), 2, "key 0");
    assert_one_line_error(
        &cli.output(["verify", &token, "--jwks", not_json.to_str().unwrap()]),
        2,
        "JWKS is not valid JSON",
    );
    assert_one_line_error(
        &cli.output(["verify", &token, "--jwks", "/nonexistent/jwks.json"]),
        2,
        "cannot open /nonexistent/jwks.json",
    );
    // A key pinned to another algorithm than the one asked for.
    assert_one_line_error(
        &cli.output(["verify", &token, "--jwks", &keys.path("jwks.json"), "--alg", "ES384"]),
        2,
        "published for ES256",
    );
    // Usage errors are clap's, also exit 2.
    assert_eq!(cli.output(["verify", &token]).status.code(), Some(2));
    assert_eq!(
        cli.output(["verify", &token, "--alg", "HS256", "--pem", &keys.path("public.pem")]).status.code(),
        Some(2)
    );
}

#[tokio::test]
async fn decode_shows_header_and_payload_with_a_warning() {
    let cli = support::kms_jwt!();
    let keys = Keys::new(Algorithm::ES256);
    let token = keys.token(&Claims::new().subject("x").expires_at(FAR_FUTURE)).await;
    let out = cli.output(["decode", &token]);
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["header"]["alg"], "ES256");
    assert_eq!(doc["header"]["kid"], keys.signer.kid());
    assert_eq!(doc["payload"], serde_json::json!({"sub": "x", "exp": FAR_FUTURE}));
    assert!(stderr(&out).contains("NOT verified"));
    assert_one_line_error(&cli.output(["decode", "a.b"]), 2, "3 segments");
}

/// A refresh of 0 made the key refresher's interval panic in its task (the server then served
/// its first keys forever, `/healthz` "ok"), and a connection lifetime of 0 closed every
/// connection at once: both are refused before anything starts.
#[test]
fn serve_refuses_a_zero_refresh_or_connection_lifetime() {
    for flag in ["--refresh", "--connection-lifetime"] {
        let mut child = support::kms_jwt!()
            .endpoint("http://127.0.0.1:9")
            .command()
            .args([
                "serve",
                "--key",
                "jwt",
                "--issuer",
                "https://issuer.example",
                "--listen",
                "127.0.0.1:0",
                flag,
                "0s",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!("serve {flag} 0s started instead of refusing: {:?}", child.wait_with_output().unwrap());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("invalid value '0s' for '{flag} <DURATION>': must be longer than 0s")),
            "{}",
            stderr(&out)
        );
    }
}
