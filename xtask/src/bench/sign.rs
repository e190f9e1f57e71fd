//! Signing against `LocalStack`: client CPU per token, throughput, and one process.

use std::path::Path;
use std::process::Command;

use anyhow::Result;
use kms_jwt_test_support::{self as support, Cli};

use super::report::Comparison;
use super::verify::VERIFY_TOKENS;
use super::{CONCURRENCY, REPEATS, Stats, micros, on_one_core, per, rounds};
use crate::localstack::Guard;
use crate::step;

const SIGN_TOKENS: usize = 1_000;

/// Signing against LocalStack: client CPU, throughput, and one process.
pub(super) fn benchmarks(
    root: &Path,
    out: &Path,
    [ours, base]: [&Path; 2],
    endpoint: &str,
    arn: &str,
    kid: &str,
) -> Result<Vec<Comparison>> {
    let mut results = Vec::new();
    let python = Guard::python()?;
    let aws_cli = Path::new(&python).with_file_name("aws");
    let claims = out.join("claims.jsonl");
    let lines: Vec<String> = (0..SIGN_TOKENS).map(|i| format!("{{\"sub\":\"user-{i}\"}}")).collect();
    std::fs::write(&claims, lines.join("\n") + "\n")?;
    let c = CONCURRENCY.to_string();

    step(&format!(
        "sign: {SIGN_TOKENS} ES256 tokens against LocalStack at concurrency {CONCURRENCY}, one warm-up and {REPEATS} interleaved runs each"
    ));
    let mut ours_cmd = Cli::new(ours).endpoint(endpoint).command();
    ours_cmd.args(["sign", "--key", arn, "--batch"]).arg(&claims).args(["--concurrency", &c]);
    let mut boto3_cmd = Command::new(&python);
    boto3_cmd.arg(root.join("scripts/bench_boto3.py")).args([endpoint, arn, kid, &c]).envs(support::LOCALSTACK_ENV);
    let mut sdk_cmd = Command::new(base);
    sdk_cmd.args(["sign-sdk", endpoint, arn, &SIGN_TOKENS.to_string(), &c]).envs(support::LOCALSTACK_ENV);
    let [(ours_wall, ours_cpu), (boto3_wall, boto3_cpu), (sdk_wall, sdk_cpu)] =
        rounds(REPEATS, [(&mut ours_cmd, None), (&mut boto3_cmd, Some(&claims)), (&mut sdk_cmd, None)])?;
    results.push(Comparison {
        measure: "sign: client CPU per token (user+sys)".into(),
        unit: "µs/token",
        ours: micros(per(ours_cpu, SIGN_TOKENS, false)),
        baseline: "boto3 loop, same job (context)".into(),
        theirs: micros(per(boto3_cpu, SIGN_TOKENS, false)),
        goal: f64::INFINITY,
        higher_is_better: false,
    });
    // The honest frame: what the SDK costs, plus the one local verification of the same
    // algorithm that no token leaves without.
    let es256 = out.join("ES256");
    let mut verify_one = on_one_core(base);
    verify_one.arg("verify-aws-lc").arg(es256.join("tokens.txt")).arg(es256.join("jwks.json"));
    let [(_, verify_cpu)] = rounds(REPEATS, [(&mut verify_one, None)])?;
    let verify_us = micros(per(verify_cpu, VERIFY_TOKENS, false));
    let sdk_us = micros(per(sdk_cpu, SIGN_TOKENS, false));
    results.push(Comparison {
        measure: "sign: client CPU per token (user+sys)".into(),
        unit: "µs/token",
        ours: micros(per(ours_cpu, SIGN_TOKENS, false)),
        baseline: "bare aws-sdk-kms Sign loop + one local ES256 verification".into(),
        theirs: Stats {
            min: sdk_us.min + verify_us.min,
            median: sdk_us.median + verify_us.median,
            max: sdk_us.max + verify_us.max,
        },
        goal: 1.1,
        higher_is_better: false,
    });
    // Context for the goal above: the SDK alone, signing digests and nothing else.
    results.push(Comparison {
        measure: "sign: client CPU per token (user+sys)".into(),
        unit: "µs/token",
        ours: micros(per(ours_cpu, SIGN_TOKENS, false)),
        baseline: "bare aws-sdk-kms Sign loop (context: the SDK's own cost)".into(),
        theirs: micros(per(sdk_cpu, SIGN_TOKENS, false)),
        goal: f64::INFINITY,
        higher_is_better: false,
    });
    for (baseline, theirs, goal) in
        [("bare aws-sdk-kms Sign loop", sdk_wall, 0.9), ("boto3 loop, same job", boto3_wall, 1.0)]
    {
        results.push(Comparison {
            measure: format!("sign: throughput at concurrency {CONCURRENCY}"),
            unit: "tokens/s",
            ours: per(ours_wall, SIGN_TOKENS, true),
            baseline: baseline.into(),
            theirs: per(theirs, SIGN_TOKENS, true),
            goal,
            higher_is_better: true,
        });
    }

    step("one process: kms-jwt sign against aws kms sign, one warm-up and 7 interleaved runs each");
    let msg = out.join("message.txt");
    std::fs::write(&msg, "hello")?;
    let mut one = Cli::new(ours).endpoint(endpoint).command();
    one.args(["sign", "--key", arn, "--sub", "x"]);
    let mut cli = Command::new(&aws_cli);
    cli.args(["--endpoint-url", endpoint, "kms", "sign", "--key-id", arn, "--message"])
        .arg(format!("fileb://{}", msg.display()))
        .args(["--message-type", "RAW", "--signing-algorithm", "ECDSA_SHA_256"])
        .envs(support::LOCALSTACK_ENV);
    let [(one_wall, _), (cli_wall, _)] = rounds(7, [(&mut one, None), (&mut cli, None)])?;
    results.push(Comparison {
        measure: "one process: wall time of one sign".into(),
        unit: "s",
        ours: one_wall,
        baseline: "one `aws kms sign` (CLI v1, LocalStack venv)".into(),
        theirs: cli_wall,
        goal: 0.1,
        higher_is_better: false,
    });
    Ok(results)
}
