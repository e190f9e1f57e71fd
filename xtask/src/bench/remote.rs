//! The verifying side: `RemoteJwks` with warm keys against a local `Verifier` of the same keys
//! on one core; a storm of unknown `kid`s against `kms-jwt serve`, with the JWKS fetches counted
//! at a proxy in front of it; and how soon a token from a rotated key verifies.

use kms_jwt::publish::JWKS_PATH;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Result;
use kms_jwt_test_support::proxy::FaultProxy;
use kms_jwt_test_support::serve::Serve;
use kms_jwt_test_support::{self as support, Cli};
use serde_json::Value;

use super::report::Comparison;
use super::{REPEATS, Stats, bench_set, on_one_core};
use crate::step;

/// The key set `kms-jwt serve` publishes for the storm and the rotation (rotated every run).
const REMOTE_SET: &str = "kms-jwt-bench-remote";
/// Distinct tokens of the `RemoteJwks` runs, and how many times each run verifies them.
const REMOTE_TOKENS: usize = 2_000;
const REMOTE_PASSES: usize = 10;
const STORM_TOKENS: usize = 10_000;
const STORM_CONCURRENCY: usize = 32;
/// `RemoteJwks`'s default cooldown between fetches for unknown `kid`s.
const COOLDOWN_SECS: u64 = 30;

pub(super) fn benchmarks([ours, base]: [&Path; 2], endpoint: &str) -> Result<Vec<Comparison>> {
    let mut results = Vec::new();
    step(&format!(
        "remote: RS256 verification with RemoteJwks (warm keys) and with a local Verifier, {REMOTE_TOKENS} tokens x {REMOTE_PASSES} on one core, one warm-up and {REPEATS} interleaved rounds"
    ));
    let mut cmd = on_one_core(base);
    cmd.args(["remote-verify", "RS256"]).args([REMOTE_TOKENS, REMOTE_PASSES, REPEATS].map(|n| n.to_string()));
    let figures = run(&mut cmd)?;
    let rates = |name: &str| -> Result<Stats> {
        let samples: Vec<f64> = figures[name].as_array().into_iter().flatten().filter_map(Value::as_f64).collect();
        anyhow::ensure!(samples.len() == REPEATS, "remote-verify gave no {name}: {figures}");
        Ok(Stats::of(samples))
    };
    results.push(Comparison {
        measure: "verify RS256 with RemoteJwks, warm keys, one core".into(),
        unit: "tokens/s",
        ours: rates("remote_per_sec")?,
        baseline: "a local Verifier with the same keys, same tokens".into(),
        theirs: rates("local_per_sec")?,
        goal: 0.95,
        higher_is_better: true,
    });

    // kms-jwt serve behind a proxy whose URL is the issuer's: what a verifier fetches, counted.
    crate::block_on(bench_set(endpoint, REMOTE_SET, &[], "ECC_NIST_P256"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let proxy = FaultProxy::forwarding(&format!("http://127.0.0.1:{port}"));
    let mut serve = Cli::new(ours).endpoint(endpoint).command();
    serve
        .args(["serve", "--key", REMOTE_SET, "--issuer", &proxy.url, "--listen", &format!("127.0.0.1:{port}")])
        .args(["--refresh", "1s"])
        .stdout(Stdio::null());
    let server = Serve::try_spawn(serve).map_err(anyhow::Error::msg)?;

    step(&format!(
        "remote: {STORM_TOKENS} tokens with unknown kids against kms-jwt serve: one to fetch the keys, then past the cooldown ({COOLDOWN_SECS} s) the rest at concurrency {STORM_CONCURRENCY}"
    ));
    let before = proxy.count_path(JWKS_PATH);
    let mut cmd = Command::new(base);
    cmd.args(["remote-storm", &proxy.url])
        .args([STORM_TOKENS as u64, STORM_CONCURRENCY as u64, COOLDOWN_SECS].map(|n| n.to_string()));
    let storm = run(&mut cmd)?;
    let figure = |v: &Value, name: &str| v[name].as_f64().unwrap_or(f64::NAN);
    // The JWKS GETs the proxy saw, less the first token's (the keys fetched before the storm).
    let fetches = (proxy.count_path(JWKS_PATH) - before) as f64 - figure(&storm, "warm_up_fetches");
    let elapsed = figure(&storm, "elapsed_s");
    let bound = 1.0 + (elapsed / COOLDOWN_SECS as f64).floor();
    results.push(Comparison {
        measure: format!(
            "remote: JWKS fetches in a storm of {STORM_TOKENS} unknown kids at concurrency {STORM_CONCURRENCY} ({elapsed:.1} s run)"
        ),
        unit: "fetches",
        ours: Stats::once(fetches),
        baseline: format!("1 + elapsed / cooldown ({COOLDOWN_SECS} s)"),
        theirs: Stats::once(bound),
        goal: 1.0,
        higher_is_better: false,
    });
    results.push(Comparison {
        measure: "remote: \"unknown key\" answer p99 after the first fetch, in that storm (goal: at most 1 ms)".into(),
        unit: "ms",
        ours: Stats::once(figure(&storm, "p99_ms")),
        baseline: "1 ms".into(),
        theirs: Stats::once(1.0),
        goal: 1.0,
        higher_is_better: false,
    });

    step(&format!(
        "remote: keyset rotate --force --min-overlap 0s, serve --refresh 1s, then a token from the new key against a RemoteJwks warmed just before (cooldown {COOLDOWN_SECS} s)"
    ));
    let mut cmd = Command::new(base);
    cmd.args(["remote-rotation", endpoint, &proxy.url, REMOTE_SET]).arg(ours).arg(COOLDOWN_SECS.to_string());
    let rotation = run(&mut cmd)?;
    results.push(Comparison {
        measure: "remote: a rotated key's first token verifies with a warm RemoteJwks, after the rotation".into(),
        unit: "s",
        ours: Stats::once(figure(&rotation, "seconds")),
        baseline: format!("one cooldown ({COOLDOWN_SECS} s)"),
        theirs: Stats::once(COOLDOWN_SECS as f64),
        goal: 1.0,
        higher_is_better: false,
    });
    drop(server);
    Ok(results)
}

/// Runs a kms-jwt-bench command with `LocalStack`'s credentials; the JSON it printed.
fn run(cmd: &mut Command) -> Result<Value> {
    let output = cmd.envs(support::LOCALSTACK_ENV).output()?;
    anyhow::ensure!(
        output.status.success(),
        "{} failed: {}",
        cmd.get_args().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}
