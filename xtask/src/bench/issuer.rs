//! The issuer: `POST /token` to `kms-jwt serve --token-policy`, cached and new tokens, next
//! to `kms-jwt sign --batch` and kms-jwt's KMS signer in-process.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Result;
use kms_jwt_test_support::serve::Serve;
use kms_jwt_test_support::{self as support, Cli};
use serde_json::Value;

use super::report::Comparison;
use super::{BENCH_SET, CONCURRENCY, REPEATS, Stats, measure};
use crate::step;

const ISSUER_REQUESTS: usize = 500;

/// `POST /token` answers per second and p99 at concurrency 16, every answer a token cached for
/// its (principal, audience) or every one new, next to `kms-jwt sign` of the same claims.
pub(super) fn benchmarks(out: &Path, [ours, base]: [&Path; 2], endpoint: &str, arn: &str) -> Result<Vec<Comparison>> {
    step(&format!(
        "issuer: {ISSUER_REQUESTS} POST /token at concurrency {CONCURRENCY}, cached and new tokens, against kms-jwt sign of the same claims, one warm-up and {REPEATS} interleaved runs each"
    ));
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let issuer = format!("http://127.0.0.1:{port}");
    let _server = start_issuer(out, ours, endpoint, port)?;

    let account = support::ACCOUNT;
    let claims = out.join("issuer-claims.jsonl");
    let line = format!("{{\"sub\":\"arn:aws:iam::{account}:root\",\"aws_account\":\"{account}\"}}\n");
    std::fs::write(&claims, line.repeat(ISSUER_REQUESTS))?;
    let (n, c) = (ISSUER_REQUESTS.to_string(), CONCURRENCY.to_string());
    let mut cli = Cli::new(ours).endpoint(endpoint).command();
    cli.args(["sign", "--key", arn, "--batch"]).arg(&claims).args([
        "--iss",
        &issuer,
        "--aud",
        "api",
        "--ttl",
        "15m",
        "--jti",
        "--concurrency",
        &c,
    ]);
    let figures = |args: &[&str]| -> Result<Value> {
        let output = Command::new(base).args(args).envs(support::LOCALSTACK_ENV).output()?;
        anyhow::ensure!(output.status.success(), "{} failed: {}", args[0], String::from_utf8_lossy(&output.stderr));
        Ok(serde_json::from_slice(&output.stdout)?)
    };
    let mut samples: [Vec<f64>; 7] = Default::default();
    for round in 0..=REPEATS {
        let (cli_wall, _) = measure(&mut cli, None)?;
        let library = figures(&["sign-latency", endpoint, arn, &issuer, &n, &c])?;
        let hits = figures(&["issuer-load", &issuer, "api", &n, &c])?;
        let prefix = format!("miss-{round}-");
        let new = figures(&["issuer-load", &issuer, &prefix, &n, &c, "--distinct"])?;
        if round == 0 {
            continue;
        }
        let figure = |v: &Value, name: &str| v[name].as_f64().unwrap_or(f64::NAN);
        let round_figures = [
            ISSUER_REQUESTS as f64 / cli_wall,
            figure(&library, "p99_ms"),
            figure(&hits, "per_sec"),
            figure(&hits, "p99_ms"),
            figure(&new, "per_sec"),
            figure(&new, "p99_ms"),
            figure(&library, "per_sec"),
        ];
        for (sample, x) in samples.iter_mut().zip(round_figures) {
            sample.push(x);
        }
    }
    let [cli_rate, library_p99, hit_rate, hit_p99, new_rate, new_p99, library_rate] = samples.map(Stats::of);
    let mut results = Vec::new();
    for (kind, rate, p99) in [("cached token", hit_rate, hit_p99), ("new token", new_rate, new_p99)] {
        results.push(Comparison {
            measure: format!("issuer: POST /token at concurrency {CONCURRENCY}, {kind}"),
            unit: "answers/s",
            ours: rate,
            baseline: "`kms-jwt sign --batch` of the same claims (context)".into(),
            theirs: cli_rate,
            goal: f64::INFINITY,
            higher_is_better: true,
        });
        results.push(Comparison {
            measure: format!("issuer: POST /token p99 at concurrency {CONCURRENCY}, {kind}"),
            unit: "ms",
            ours: p99,
            baseline: "kms-jwt's KMS signer, same claims, p99 (context)".into(),
            theirs: library_p99,
            goal: f64::INFINITY,
            higher_is_better: false,
        });
    }
    results.push(Comparison {
        measure: format!("sign: kms-jwt's KMS signer in-process, issuer's claims, concurrency {CONCURRENCY}"),
        unit: "tokens/s",
        ours: library_rate,
        baseline: "`kms-jwt sign --batch` of the same claims (context)".into(),
        theirs: cli_rate,
        goal: f64::INFINITY,
        higher_is_better: true,
    });
    Ok(results)
}

/// `kms-jwt serve --token-policy` for the bench set on `port`, stopped on drop.
pub(super) fn start_issuer(out: &Path, ours: &Path, endpoint: &str, port: u16) -> Result<Serve> {
    // Every audience a miss run asks for, listed: the policy has no audience patterns.
    let misses: Vec<String> =
        (0..=REPEATS).flat_map(|round| (0..ISSUER_REQUESTS).map(move |i| format!("\"miss-{round}-{i}\""))).collect();
    let policy = out.join("token-policy.toml");
    // The principal is LocalStack's root: a policy names its account (no pattern spans accounts).
    std::fs::write(
        &policy,
        format!(
            "[[rule]]\nprincipals = [\"arn:aws:iam::{}:root\"]\naudiences = [\"api\", {}]\nmax_ttl = \"15m\"\n",
            support::ACCOUNT,
            misses.join(", ")
        ),
    )?;
    let issuer = format!("http://127.0.0.1:{port}");
    let mut serve = Cli::new(ours).endpoint(endpoint).command();
    serve
        .args(["serve", "--key", BENCH_SET, "--issuer", &issuer])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--token-policy"])
        .arg(&policy)
        .args(["--sts-endpoint-url", endpoint, "--rate-limit", "1000000000", "--address-rate-limit", "0"])
        .stdout(Stdio::null());
    Serve::try_spawn(serve).map_err(anyhow::Error::msg)
}
