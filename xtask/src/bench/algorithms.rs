//! Signing with Ed25519 against ES256 on the same emulator, `MiniStack` (`LocalStack` has no
//! Ed25519 keys): the client CPU per token of `kms-jwt sign --batch`, and its throughput.

use std::path::Path;

use anyhow::Result;
use kms_jwt_test_support::Cli;

use super::report::Comparison;
use super::{CONCURRENCY, REPEATS, bench_set, micros, per, rounds};
use crate::localstack::Guard;
use crate::step;

const TOKENS: usize = 1_000;

pub(super) fn benchmarks(out: &Path, ours: &Path) -> Result<Vec<Comparison>> {
    step("starting MiniStack (KMS with Ed25519 keys) for the algorithm benchmarks");
    let ministack = Guard::ministack()?;
    let endpoint = ministack.endpoint.as_str();
    let ed25519 = crate::block_on(bench_set(endpoint, "kms-jwt-bench-ed25519", &[], "ECC_NIST_EDWARDS25519"))?;
    let es256 = crate::block_on(bench_set(endpoint, "kms-jwt-bench-es256", &[], "ECC_NIST_P256"))?;
    let claims = out.join("algorithms-claims.jsonl");
    let lines: Vec<String> = (0..TOKENS).map(|i| format!("{{\"sub\":\"user-{i}\"}}")).collect();
    std::fs::write(&claims, lines.join("\n") + "\n")?;
    let c = CONCURRENCY.to_string();

    step(&format!(
        "algorithms: {TOKENS} EdDSA and {TOKENS} ES256 tokens against MiniStack at concurrency {CONCURRENCY}, one warm-up and {REPEATS} interleaved runs each"
    ));
    let sign = |arn: &str| {
        let mut cmd = Cli::new(ours).endpoint(endpoint).command();
        cmd.args(["sign", "--key", arn, "--batch"]).arg(&claims).args(["--concurrency", &c]);
        cmd
    };
    let (mut edwards, mut nist) = (sign(&ed25519.info.key.arn), sign(&es256.info.key.arn));
    let [(edwards_wall, edwards_cpu), (nist_wall, nist_cpu)] =
        rounds(REPEATS, [(&mut edwards, None), (&mut nist, None)])?;
    Ok(vec![
        Comparison {
            measure: "sign EdDSA on MiniStack: client CPU per token (user+sys)".into(),
            unit: "µs/token",
            ours: micros(per(edwards_cpu, TOKENS, false)),
            baseline: "the same with an ES256 key".into(),
            theirs: micros(per(nist_cpu, TOKENS, false)),
            goal: f64::INFINITY,
            higher_is_better: false,
        },
        Comparison {
            measure: format!("sign EdDSA on MiniStack: throughput at concurrency {CONCURRENCY}"),
            unit: "tokens/s",
            ours: per(edwards_wall, TOKENS, true),
            baseline: "the same with an ES256 key".into(),
            theirs: per(nist_wall, TOKENS, true),
            goal: f64::INFINITY,
            higher_is_better: true,
        },
    ])
}
