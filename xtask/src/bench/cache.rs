//! Tokens that never wait: mints through a `TokenCache` in front of a slow KMS.

use std::path::Path;
use std::process::Command;

use anyhow::Result;
use serde_json::Value;

use kms_jwt_test_support as support;

use super::Stats;
use super::report::Comparison;
use crate::step;

/// Tokens that never wait: mints through a `TokenCache` in front of a KMS made 50 ms slower,
/// against the same mints straight through the signer.
pub(super) fn benchmarks(base: &Path, endpoint: &str, arn: &str) -> Result<Vec<Comparison>> {
    step(
        "tokens that never wait: 10,000 mints over 100 claims sets at concurrency 32, KMS 50 ms slower, cached and not",
    );
    let run = |cached: bool| -> Result<Value> {
        let mut cmd = Command::new(base);
        cmd.args(["cache-latency", endpoint, arn]).envs(support::LOCALSTACK_ENV);
        if cached {
            cmd.arg("--cached");
        }
        let output = cmd.output()?;
        anyhow::ensure!(output.status.success(), "cache-latency failed: {}", String::from_utf8_lossy(&output.stderr));
        Ok(serde_json::from_slice(&output.stdout)?)
    };
    let (cached, uncached) = (run(true)?, run(false)?);
    let figure = |v: &Value, name: &str| v[name].as_f64().unwrap_or(f64::NAN);
    let mut results = Vec::new();
    for p in ["p50_ms", "p99_ms"] {
        results.push(Comparison {
            measure: format!("mint latency {} after warm-up, TokenCache", &p[..3]),
            unit: "ms",
            ours: Stats::once(figure(&cached, p)),
            baseline: "the same mints without the cache (context)".into(),
            theirs: Stats::once(figure(&uncached, p)),
            goal: f64::INFINITY,
            higher_is_better: false,
        });
    }
    results.push(Comparison {
        measure: "mint latency p99 after warm-up, TokenCache (goal: at most 1 ms)".into(),
        unit: "ms",
        ours: Stats::once(figure(&cached, "p99_ms")),
        baseline: "1 ms".into(),
        theirs: Stats::once(1.0),
        goal: 1.0,
        higher_is_better: false,
    });
    results.push(Comparison {
        measure: format!("KMS Sign calls, TokenCache ({} s run)", figure(&cached, "elapsed_s").round()),
        unit: "calls",
        ours: Stats::once(figure(&cached, "sign_calls")),
        baseline: "claims sets x refresh cycles".into(),
        theirs: Stats::once(figure(&cached, "expected_calls")),
        goal: 1.1,
        higher_is_better: false,
    });
    Ok(results)
}
