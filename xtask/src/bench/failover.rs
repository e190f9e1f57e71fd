//! Failover: a multi-Region set signed through a `FailoverSigner` while its primary region is
//! a black hole.

use std::path::Path;
use std::process::Command;

use anyhow::Result;
use kms_jwt_test_support as support;
use serde_json::Value;

use super::report::Comparison;
use super::{CONCURRENCY, Stats, bench_set};
use crate::step;

/// The multi-Region set of the failover runs, its phases' length and the runs.
const FAILOVER_SET: &str = "kms-jwt-bench-failover";
const FAILOVER_PHASE_SECS: u64 = 5;
const FAILOVER_RUNS: usize = 3;

/// A multi-Region set signed through a `FailoverSigner` while its primary region is cut:
/// tokens per second before, during and after the cut, and the longest wait for one token.
pub(super) fn benchmarks(base: &Path, endpoint: &str) -> Result<Vec<Comparison>> {
    step(&format!(
        "failover: ES256 at concurrency {CONCURRENCY}, {FAILOVER_PHASE_SECS} s each with us-east-1 up, a black hole, back; {FAILOVER_RUNS} runs"
    ));
    crate::block_on(bench_set(endpoint, FAILOVER_SET, &["us-east-1", "eu-west-1"], "ECC_NIST_P256"))?;
    let mut runs = Vec::new();
    for _ in 0..FAILOVER_RUNS {
        let output = Command::new(base)
            .args(["failover", endpoint, FAILOVER_SET, &CONCURRENCY.to_string(), &FAILOVER_PHASE_SECS.to_string()])
            .envs(support::LOCALSTACK_ENV)
            .output()?;
        anyhow::ensure!(output.status.success(), "failover failed: {}", String::from_utf8_lossy(&output.stderr));
        let run: Value = serde_json::from_slice(&output.stdout)?;
        anyhow::ensure!(
            run["primary_requests_after"].as_u64().unwrap_or(0) > 0,
            "signing did not return to the primary after the cut: {run}"
        );
        runs.push(run);
    }
    let stats = |name: &str| Stats::of(runs.iter().map(|r| r[name].as_f64().unwrap_or(f64::NAN)).collect());
    let before = stats("before_per_sec");
    let mut results = Vec::new();
    for (phase, name) in
        [("while us-east-1 is a black hole", "during_per_sec"), ("after us-east-1 is back", "after_per_sec")]
    {
        results.push(Comparison {
            measure: format!("failover: tokens/s {phase}"),
            unit: "tokens/s",
            ours: stats(name),
            baseline: "the same signer before the cut (context)".into(),
            theirs: before,
            goal: f64::INFINITY,
            higher_is_better: true,
        });
    }
    results.push(Comparison {
        measure: "failover: longest wait for one token across the cut".into(),
        unit: "ms",
        ours: stats("longest_wait_ms"),
        baseline: "the --timeout a failing call waits".into(),
        theirs: stats("timeout_ms"),
        goal: 1.5,
        higher_is_better: false,
    });
    Ok(results)
}
