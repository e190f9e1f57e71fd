//! The `kms-jwt serve` image (Containerfile, built by `scripts/image.sh`; `cargo xtask ci` builds
//! it and names it in `KMS_JWT_TEST_IMAGE`), run with Podman against LocalStack: a read-only
//! root, a non-root user, its own HEALTHCHECK, discovery, the JWKS, `/token`, `/readyz`, and a
//! drain on `podman stop` with a request in flight.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use kms_jwt::issuer::{TokenRequest, sign_proof};
use kms_jwt::{Jwks, Verifier, VerifyingKey};
use support::proxy::{Action, FaultProxy};

fn image() -> String {
    std::env::var("KMS_JWT_TEST_IMAGE").unwrap_or_else(|_| {
        panic!("this test needs the image: run `cargo xtask ci`, or export KMS_JWT_TEST_IMAGE=$(scripts/image.sh)")
    })
}

fn podman(args: &[&str]) -> Output {
    let conf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/containers.conf");
    Command::new("podman").env("CONTAINERS_CONF", conf).args(args).output().expect("podman runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A container, removed on drop (also when an assertion fails first).
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_serves_issues_reports_health_and_drains_on_podman_stop() {
    let image = image();
    let (_, name) = support::key_set("ECC_NIST_P256").await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[rule]]\nprincipals = [\"arn:aws:iam::000000000000:root\"]\naudiences = [\"api\"]\nmax_ttl = \"30m\"\n",
    )
    .unwrap();
    // The container's user (65532) reads it.
    std::fs::set_permissions(&policy, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let slow = Arc::new(AtomicBool::new(false));
    let delay = slow.clone();
    let kms = FaultProxy::start(&support::endpoint(), move |exchange| {
        if exchange.operation() == "Sign" && delay.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_secs(2));
        }
        Action::Forward
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let issuer = format!("http://127.0.0.1:{port}");
    let container = Container(support::unique("kms-jwt-image-test"));
    run(&image, &container, &policy, port, &kms.url, name.name());
    let inspect = podman(&["inspect", "--format", "{{.Config.User}}", &image]);
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), "65532:65532");

    // Ready once the keys are loaded: the image's own HEALTHCHECK says so too.
    let http = reqwest::Client::new();
    wait_ready(&http, &issuer, &container).await;
    let health = podman(&["healthcheck", "run", &container.0]);
    assert!(health.status.success(), "HEALTHCHECK: {}", text(&health));

    let discovery: serde_json::Value =
        http.get(format!("{issuer}/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(discovery["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
    let jwks =
        Jwks::parse(&http.get(format!("{issuer}/.well-known/jwks.json")).send().await.unwrap().bytes().await.unwrap())
            .unwrap();
    let verifier = Verifier::new(jwks.keys.iter().map(|k| VerifyingKey::from_jwk(k, None).unwrap()).collect())
        .with_issuer(&issuer)
        .with_audience("api")
        .clone();
    let token = support::kms_jwt!().region("us-east-1").output(["token", "--issuer", &issuer, "--aud", "api"]);
    assert!(token.status.success(), "{}", text(&token));
    verifier.verify::<kms_jwt::Claims>(String::from_utf8(token.stdout).unwrap().trim()).unwrap();

    // A token request in flight (its Sign takes 2 s) when `podman stop` sends SIGTERM.
    slow.store(true, Ordering::SeqCst);
    let creds =
        aws_credential_types::Credentials::new(support::ACCESS_KEY_ID, support::SECRET_ACCESS_KEY, None, None, "test");
    // Dated before the last minute, where `kms-jwt token` above dated its own: two proofs of
    // one key in one second are the same proof, and the second is refused as used.
    let proof = sign_proof(&creds, Some("us-east-1"), &issuer, SystemTime::now() - Duration::from_secs(90)).unwrap();
    let body = serde_json::to_vec(&TokenRequest { audience: "api".into(), ttl: Some("10m".into()), proof }).unwrap();
    let in_flight = tokio::spawn(http.post(format!("{issuer}/token")).body(body).send());
    let signs = kms.count("Sign");
    let deadline = Instant::now() + Duration::from_secs(30);
    while kms.count("Sign") == signs {
        assert!(!in_flight.is_finished(), "the token request was answered before it reached KMS's Sign");
        assert!(Instant::now() < deadline, "no Sign call within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stop = tokio::task::spawn_blocking({
        let name = container.0.clone();
        move || podman(&["stop", "-t", "30", &name])
    });
    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!(answer.status(), 200);
    let answer: serde_json::Value = answer.json().await.unwrap();
    verifier.verify::<kms_jwt::Claims>(answer["token"].as_str().unwrap()).unwrap();
    let stopped = stop.await.unwrap();
    assert!(stopped.status.success(), "{}", text(&stopped));
    let code = podman(&["inspect", "--format", "{{.State.ExitCode}}", &container.0]);
    let logs = text(&podman(&["logs", &container.0]));
    assert_eq!(String::from_utf8_lossy(&code.stdout).trim(), "0", "{logs}");
    assert!(logs.contains("drained: every request answered"), "{logs}");
}

/// `podman run` of the image as CI runs it: host network, read-only root, the policy mounted,
/// KMS through `kms_url` and STS at LocalStack.
fn run(image: &str, container: &Container, policy: &std::path::Path, port: u16, kms_url: &str, key: &str) {
    let issuer = format!("http://127.0.0.1:{port}");
    let mount = format!("{}:/etc/kms-jwt/policy.toml:ro", policy.display());
    let listen = format!("KMS_JWT_LISTEN=127.0.0.1:{port}");
    let sts = support::endpoint();
    let run = podman(&[
        "run",
        "-d",
        "--name",
        &container.0,
        "--network",
        "host",
        "--read-only",
        "--health-interval",
        "disable",
        "-e",
        "AWS_ACCESS_KEY_ID=test",
        "-e",
        "AWS_SECRET_ACCESS_KEY=test",
        "-e",
        &listen,
        "-v",
        &mount,
        image,
        "--endpoint-url",
        kms_url,
        "--region",
        "us-east-1",
        "--max-attempts",
        "1",
        "serve",
        "--key",
        key,
        "--issuer",
        &issuer,
        "--token-policy",
        "/etc/kms-jwt/policy.toml",
        "--sts-region",
        "us-east-1",
        "--sts-endpoint-url",
        &sts,
    ]);
    assert!(run.status.success(), "{}", text(&run));
}

/// Waits for `/readyz` to answer 200 (the first key load done), for at most 60 s.
async fn wait_ready(http: &reqwest::Client, issuer: &str, container: &Container) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(answer) = http.get(format!("{issuer}/readyz")).send().await
            && answer.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "not ready within 60 s: {}", text(&podman(&["logs", &container.0])));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
