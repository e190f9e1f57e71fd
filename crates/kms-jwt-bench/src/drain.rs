//! The drain: `kms-jwt serve` stopped with many `POST /token` requests in flight.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result};
use kms_jwt_test_support::proxy::{Action, FaultProxy};
use kms_jwt_test_support::serve::Serve;
use kms_jwt_test_support::{self as support, Cli};

use crate::report;

/// `kms-jwt serve` (the binary `kms_jwt`) for `set` with a token policy, STS behind a proxy that
/// holds every `GetCallerIdentity` `hold` long; `count` `POST /token` at once (each its own
/// proof), and SIGTERM once all of them have reached STS. Prints how many were answered with a
/// token, answered otherwise or cut, the exit code and the seconds from SIGTERM to the exit.
pub(crate) async fn drain(
    kms_jwt: &Path,
    endpoint: &str,
    set: &str,
    count: usize,
    hold: Duration,
    drain_timeout: Duration,
) -> Result<()> {
    let sts = FaultProxy::start(endpoint, move |exchange| {
        if exchange.operation() == "GetCallerIdentity" {
            std::thread::sleep(hold);
        }
        Action::Forward
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let issuer = format!("http://127.0.0.1:{port}");
    let policy = std::env::temp_dir().join(format!("kms-jwt-bench-drain-{}.toml", std::process::id()));
    std::fs::write(
        &policy,
        format!(
            "[[rule]]\nprincipals = [\"arn:aws:iam::{}:root\"]\naudiences = [\"api\"]\nmax_ttl = \"15m\"\n",
            support::ACCOUNT
        ),
    )?;
    let mut cmd = Cli::new(kms_jwt).endpoint(endpoint).command();
    cmd.args(["serve", "--key", set, "--issuer", &issuer, "--listen", &format!("127.0.0.1:{port}")])
        .arg("--token-policy")
        .arg(&policy)
        .args(["--sts-endpoint-url", &sts.url, "--rate-limit", "1000000000", "--address-rate-limit", "0"])
        .args(["--max-connections-per-address", "0", "--max-token-requests", &(count * 2).to_string()])
        .arg("--drain-timeout")
        .arg(humantime::format_duration(drain_timeout).to_string());
    let mut server = Serve::try_spawn(cmd).map_err(anyhow::Error::msg)?;

    // Distinct proofs: one per second back in time, all within the five minutes a proof lives.
    let creds =
        aws_credential_types::Credentials::new(support::ACCESS_KEY_ID, support::SECRET_ACCESS_KEY, None, None, "bench");
    let now = SystemTime::now();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let mut requests = Vec::with_capacity(count);
    for i in 0..count {
        let at = now - Duration::from_secs(i as u64);
        let proof = kms_jwt::issuer::sign_proof(&creds, Some("us-east-1"), &issuer, at)?;
        let body = serde_json::to_vec(&kms_jwt::issuer::TokenRequest { audience: "api".into(), ttl: None, proof })?;
        let request = client.post(format!("{issuer}/token")).header("content-type", "application/json").body(body);
        requests.push(tokio::spawn(async move {
            let answer = request.send().await.ok()?;
            let status = answer.status().as_u16();
            let text = answer.text().await.ok()?;
            Some(status == 200 && text.contains("\"token\""))
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while sts.count("GetCallerIdentity") < count {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {count} requests reached STS",
            sts.count("GetCallerIdentity")
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopped = Instant::now();
    server.signal("TERM");
    let (mut tokens, mut refused, mut cut) = (0, 0, 0);
    for request in requests {
        match request.await? {
            Some(true) => tokens += 1,
            Some(false) => refused += 1,
            None => cut += 1,
        }
    }
    let exit = tokio::task::spawn_blocking(move || {
        let exit = server.wait_for_exit(drain_timeout + Duration::from_secs(30));
        (exit, stopped.elapsed())
    })
    .await?;
    let (status, took) = (exit.0.context("serve did not exit")?, exit.1);
    let _ = std::fs::remove_file(&policy);
    report::json(&serde_json::json!({
        "in_flight": count, "tokens": tokens, "refused": refused, "cut": cut,
        "exit_code": status.code(), "exit_secs": took.as_secs_f64(),
    }))
}
