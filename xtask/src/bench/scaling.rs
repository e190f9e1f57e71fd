//! Every core: `verify --batch` on all cores against one, and one `Verifier` shared by threads
//! (and cloned per thread) against one thread; the machine's own ceiling beside them.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result};
use serde_json::Value;

use super::report::Comparison;
use super::{REPEATS, Stats, on_one_core, per, rounds};
use crate::step;

const SCALING_TOKENS: usize = 40_000;

/// Every core: `verify --batch` on all cores against one, and one `Verifier` shared by threads
/// (and cloned per thread) against one thread, with tokens from one key and from two.
pub(super) fn benchmarks(out: &Path, ours: &Path, base: &Path) -> Result<Vec<Comparison>> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let tokens = SCALING_TOKENS.to_string();
    let (one_key, two_keys) = (out.join("scaling-one-key"), out.join("scaling-two-keys"));
    for (command, dir) in [("tokens", &one_key), ("tokens-mixed", &two_keys)] {
        let status = Command::new(base).args([command, "RS256", &tokens]).arg(dir).status()?;
        anyhow::ensure!(status.success(), "cannot make tokens for the scaling runs");
    }
    let (one_tokens, one_jwks) = (one_key.join("tokens.txt"), one_key.join("jwks.json"));
    step(&format!(
        "scaling: verify --batch of {SCALING_TOKENS} RS256 tokens on {cores} cores and on one, {REPEATS} interleaved runs"
    ));
    let mut all = Command::new(ours);
    all.args(["verify", "--batch"]).arg(&one_tokens).arg("--jwks").arg(&one_jwks);
    let mut one = on_one_core(ours);
    one.args(["verify", "--batch"]).arg(&one_tokens).arg("--jwks").arg(&one_jwks);
    let [(all_wall, _), (one_wall, _)] = rounds(REPEATS, [(&mut all, None), (&mut one, None)])?;
    let scaled = |stats: Stats| Stats {
        min: stats.min * cores as f64,
        median: stats.median * cores as f64,
        max: stats.max * cores as f64,
    };
    let mut results = vec![Comparison {
        measure: format!("verify --batch on all {cores} cores (RS256)"),
        unit: "tokens/s",
        ours: per(all_wall, SCALING_TOKENS, true),
        baseline: format!("{cores} x one core"),
        theirs: scaled(per(one_wall, SCALING_TOKENS, true)),
        goal: 0.85,
        higher_is_better: true,
    }];

    step(&format!(
        "scaling: one Verifier shared by {cores} threads, and cloned, one key and two keys, {REPEATS} runs each"
    ));
    let run_threads = |dir: &Path, n: usize, flag: Option<&str>| -> Result<Stats> {
        let mut samples = Vec::new();
        for _ in 0..REPEATS {
            let mut cmd = Command::new(base);
            cmd.arg("verify-threads").arg(dir.join("tokens.txt")).arg(dir.join("jwks.json")).arg(n.to_string());
            cmd.args(flag);
            let output = cmd.output()?;
            anyhow::ensure!(
                output.status.success(),
                "verify-threads failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let figure: Value = serde_json::from_slice(&output.stdout)?;
            samples.push(figure["tokens_per_sec"].as_f64().context("tokens_per_sec")?);
        }
        Ok(Stats::of(samples))
    };
    let threads = |dir: &Path, n: usize, clones: bool| run_threads(dir, n, clones.then_some("--clones"));
    // The machine's own ceiling: bare aws-lc-rs signature checks, no kms-jwt at all. Two vCPUs
    // of a VM need not be two free cores; this row says how far any verifier can scale here.
    let bare_one = run_threads(&one_key, 1, Some("--bare"))?;
    results.push(Comparison {
        measure: format!("ceiling: bare aws-lc-rs RS256 checks on {cores} threads"),
        unit: "tokens/s",
        ours: run_threads(&one_key, cores, Some("--bare"))?,
        baseline: format!("{cores} x one thread"),
        theirs: scaled(bare_one),
        // Context: the machine's scaling, not kms-jwt's; the rows below are judged beside it.
        goal: f64::INFINITY,
        higher_is_better: true,
    });
    let single = threads(&one_key, 1, false)?;
    for (label, stats) in [
        ("one Verifier shared by", threads(&one_key, cores, false)?),
        ("a clone of one Verifier per thread,", threads(&one_key, cores, true)?),
    ] {
        results.push(Comparison {
            measure: format!("verify: {label} {cores} threads, one key"),
            unit: "tokens/s",
            ours: stats,
            baseline: format!("{cores} x one thread"),
            theirs: scaled(single),
            goal: 0.85,
            higher_is_better: true,
        });
    }
    let shared_one_key = threads(&one_key, cores, false)?;
    results.push(Comparison {
        measure: format!("verify: one Verifier shared by {cores} threads, two keys mixed half and half"),
        unit: "tokens/s",
        ours: threads(&two_keys, cores, false)?,
        baseline: "the same, one key".into(),
        theirs: shared_one_key,
        goal: 0.95,
        higher_is_better: true,
    });
    Ok(results)
}
