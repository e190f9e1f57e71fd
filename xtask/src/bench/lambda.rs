//! The issuer on Lambda against `serve`: `POST /token` for a cached token, one request at a
//! time, through the function under cargo-lambda's runtime emulator and through `kms-jwt
//! serve`'s listener, the same key set, policy and `LocalStack`; and the function's init time.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use kms_jwt_test_support::{self as support, lambda::LambdaUnderEmulator};
use serde_json::Value;

use super::report::Comparison;
use super::{BENCH_SET, REPEATS, Stats};
use crate::step;

const REQUESTS: usize = 300;

pub(super) fn benchmarks(out: &Path, [ours, base, function]: [&Path; 3], endpoint: &str) -> Result<Vec<Comparison>> {
    step(&format!(
        "lambda: {REQUESTS} POST /token for a cached token, one at a time, through the function under cargo-lambda's emulator and through kms-jwt serve, one warm-up and {REPEATS} interleaved runs each"
    ));
    let cargo_lambda = crate::script("cargo-lambda.sh", &["path"])?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let issuer = format!("http://127.0.0.1:{port}");
    let _serve = super::issuer::start_issuer(out, ours, endpoint, port)?;
    let policy = std::fs::read_to_string(out.join("token-policy.toml"))?;
    let mut env = vec![
        ("AWS_ENDPOINT_URL", endpoint),
        ("KMS_JWT_KEY", BENCH_SET),
        ("KMS_JWT_ISSUER", issuer.as_str()),
        ("KMS_JWT_TOKEN_POLICY", policy.as_str()),
        // As serve's --rate-limit in the issuer rows: one principal sends every request.
        ("KMS_JWT_RATE_LIMIT", "1000000000"),
    ];
    env.extend(support::LOCALSTACK_ENV);
    let lambda = LambdaUnderEmulator::start(cargo_lambda.as_ref(), function, &env);
    let started = Instant::now();
    let ready = loop {
        let log = lambda.log();
        if let Some(ready) = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["fields"]["message"] == "issuer ready")
        {
            break ready;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "the function did not start: {log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let figures = |args: &[&str]| -> Result<Value> {
        let output = Command::new(base).args(args).envs(support::LOCALSTACK_ENV).output()?;
        anyhow::ensure!(output.status.success(), "{} failed: {}", args[0], String::from_utf8_lossy(&output.stderr));
        Ok(serde_json::from_slice(&output.stdout)?)
    };
    let n = REQUESTS.to_string();
    let (mut lambda_p99, mut serve_p99) = (Vec::new(), Vec::new());
    for round in 0..=REPEATS {
        let through_lambda = figures(&["lambda-load", &lambda.invoke_url, &n, "1"])?;
        let through_serve = figures(&["issuer-load", &issuer, "api", &n, "1"])?;
        if round > 0 {
            lambda_p99.push(through_lambda["p99_ms"].as_f64().context("p99_ms")?);
            serve_p99.push(through_serve["p99_ms"].as_f64().context("p99_ms")?);
        }
    }
    let millis = |name: &str| ready["fields"][name].as_f64().with_context(|| format!("no {name} in {ready}"));
    let (init, kms) = (millis("init_ms")?, millis("kms_ms")?);
    Ok(vec![
        Comparison {
            measure: "issuer on Lambda: POST /token, cached token, one at a time, p99 (through the runtime emulator)"
                .into(),
            unit: "ms",
            ours: Stats::of(lambda_p99),
            baseline: "kms-jwt serve, the same request (its proof checked at STS)".into(),
            theirs: Stats::of(serve_p99),
            goal: 1.1,
            higher_is_better: false,
        },
        Comparison {
            measure: format!("issuer on Lambda: init without the KMS round trips (init {init} ms, KMS {kms} ms)"),
            unit: "ms",
            ours: Stats::once(init - kms),
            baseline: "the goal".into(),
            theirs: Stats::once(100.0),
            goal: 1.0,
            higher_is_better: false,
        },
    ])
}
