//! `cargo xtask bench`: kms-jwt against baselines measured side by side in one run, reported
//! as ratios (absolute times on a shared 2-core machine are noise) in `target/bench/`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use kms_jwt::keyset::{KeySetName, KeySets, ProvisionRequest, Provisioned};
use kms_jwt::kms::KmsOptions;
use serde_json::{Value, json};

use crate::localstack::Guard;
use crate::step;

const VERIFY_TOKENS: usize = 20_000;
const SIGN_TOKENS: usize = 1_000;
const SCALING_TOKENS: usize = 40_000;
const CONCURRENCY: usize = 16;
const REPEATS: usize = 5;
/// `LocalStack`'s dummy credentials, for every command that talks to it.
const CREDS: [(&str, &str); 3] =
    [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_DEFAULT_REGION", "us-east-1")];
const ISSUER_REQUESTS: usize = 500;
/// The key set the signing runs provision in `LocalStack`.
const BENCH_SET: &str = "kms-jwt-bench";
/// The multi-Region set of the failover runs, its phases' length and the runs.
const FAILOVER_SET: &str = "kms-jwt-bench-failover";
const FAILOVER_PHASE_SECS: u64 = 5;
const FAILOVER_RUNS: usize = 3;

/// min, median, max of repeated measurements.
#[derive(Clone, Copy)]
struct Stats {
    min: f64,
    median: f64,
    max: f64,
}

impl Stats {
    fn of(mut samples: Vec<f64>) -> Stats {
        samples.sort_by(f64::total_cmp);
        Stats { min: samples[0], median: samples[samples.len() / 2], max: samples[samples.len() - 1] }
    }

    fn json(self) -> Value {
        json!({ "min": self.min, "median": self.median, "max": self.max })
    }

    fn text(self, unit: &str) -> String {
        format!("{} / {} / {} {unit}", fmt(self.min), fmt(self.median), fmt(self.max))
    }
}

fn fmt(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

/// One comparison: our figure against a baseline's, and the goal for their ratio.
struct Comparison {
    measure: String,
    unit: &'static str,
    ours: Stats,
    baseline: String,
    theirs: Stats,
    /// `ours / theirs` must be at least this (rates) or at most this (costs).
    goal: f64,
    higher_is_better: bool,
}

impl Comparison {
    fn ratio(&self) -> f64 {
        self.ours.median / self.theirs.median
    }

    fn met(&self) -> bool {
        if self.higher_is_better { self.ratio() >= self.goal } else { self.ratio() <= self.goal }
    }

    fn goal_text(&self) -> String {
        if self.goal.is_infinite() {
            return "(context)".into();
        }
        format!("{} {}x", if self.higher_is_better { ">=" } else { "<=" }, self.goal)
    }
}

/// Runs a command, returning (wall seconds, user+sys CPU seconds of the command).
fn measure(cmd: &mut Command, stdin: Option<&Path>) -> Result<(f64, f64)> {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    cmd.stdin(match stdin {
        Some(path) => Stdio::from(std::fs::File::open(path)?),
        None => Stdio::null(),
    });
    // getrusage(RUSAGE_CHILDREN) counts every child waited for so far, in microseconds (GNU
    // time prints hundredths, too coarse for per-token figures); the difference is this one.
    let cpu_before = children_cpu()?;
    let started = Instant::now();
    let out = cmd.output().with_context(|| format!("cannot run {}", cmd.get_program().display()))?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = children_cpu()? - cpu_before;
    if !out.status.success() {
        bail!("{} failed: {}", cmd.get_program().display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok((wall, cpu))
}

fn children_cpu() -> Result<f64> {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Ok(secs(usage.user_time()) + secs(usage.system_time()))
}

/// Runs every command once to warm up (caches, a cold endpoint), then `times` rounds of all
/// of them in turn, so that a slow spell of the shared machine hits each alike. Returns each
/// command's (wall, CPU) statistics.
fn rounds<const N: usize>(times: usize, mut cmds: [(&mut Command, Option<&Path>); N]) -> Result<[(Stats, Stats); N]> {
    let mut samples: [(Vec<f64>, Vec<f64>); N] = std::array::from_fn(|_| (Vec::new(), Vec::new()));
    for round in 0..=times {
        for ((cmd, stdin), (walls, cpus)) in cmds.iter_mut().zip(&mut samples) {
            let (wall, cpu) = measure(cmd, *stdin)?;
            if round > 0 {
                walls.push(wall);
                cpus.push(cpu);
            }
        }
    }
    Ok(samples.map(|(walls, cpus)| (Stats::of(walls), Stats::of(cpus))))
}

fn per(stats: Stats, n: usize, invert: bool) -> Stats {
    let f = |x: f64| if invert { n as f64 / x } else { x / n as f64 };
    // Inverting swaps which end is min.
    if invert {
        Stats { min: f(stats.max), median: f(stats.median), max: f(stats.min) }
    } else {
        Stats { min: f(stats.min), median: f(stats.median), max: f(stats.max) }
    }
}

fn micros(stats: Stats) -> Stats {
    Stats { min: stats.min * 1e6, median: stats.median * 1e6, max: stats.max * 1e6 }
}

fn on_one_core(program: &Path) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0"]).arg(program);
    cmd
}

pub(crate) fn run() -> Result<()> {
    let root = crate::repo_root();
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out)?;
    step("building kms-jwt and the baselines (release)");
    crate::ci::cargo(&["build", "--release", "--quiet", "-p", "kms-jwt-cli", "-p", "kms-jwt-bench"], &[])?;
    let ours = root.join("target/release/kms-jwt");
    let base = root.join("target/release/kms-jwt-bench");
    let mut results = verify_benchmarks(&out, &ours, &base)?;
    results.extend(scaling_benchmarks(&out, &ours, &base)?);
    step("starting LocalStack for the signing benchmarks");
    let localstack = Guard::up()?;
    let endpoint = localstack.endpoint.clone();
    let (arn, kid) = crate::block_on(bench_key(&endpoint))?;
    results.extend(sign_benchmarks(&root, &out, [&ours, &base], &endpoint, &arn, &kid)?);
    results.extend(cache_benchmarks(&base, &endpoint, &arn)?);
    results.extend(issuer_benchmarks(&out, [&ours, &base], &endpoint, &arn)?);
    results.extend(failover_benchmarks(&base, &endpoint)?);
    drop(localstack);
    write_report(&out, &results)
}

/// `kms-jwt verify --batch` on one core against the bare aws-lc-rs loop and jsonwebtoken.
fn verify_benchmarks(out: &Path, ours: &Path, base: &Path) -> Result<Vec<Comparison>> {
    let mut results = Vec::new();
    for alg in ["RS256", "ES256"] {
        step(&format!(
            "verify: {VERIFY_TOKENS} {alg} tokens on one core, one warm-up and {REPEATS} interleaved runs each"
        ));
        let dir = out.join(alg);
        let status = Command::new(base).args(["tokens", alg, &VERIFY_TOKENS.to_string()]).arg(&dir).status()?;
        anyhow::ensure!(status.success(), "cannot make {alg} tokens");
        let (tokens, jwks) = (dir.join("tokens.txt"), dir.join("jwks.json"));
        let measured = rounds(
            REPEATS,
            [
                (on_one_core(ours).args(["verify", "--batch"]).arg(&tokens).arg("--jwks").arg(&jwks), None),
                (on_one_core(base).arg("verify-aws-lc").arg(&tokens).arg(&jwks), None),
                (on_one_core(base).arg("verify-jsonwebtoken").arg(&tokens).arg(&jwks), None),
            ],
        )?;
        let [kms_jwt, aws_lc, jsonwebtoken] = measured.map(|(wall, _)| per(wall, VERIFY_TOKENS, true));
        // ES256 rows are context: every verifier on it is one aws-lc-rs P-256 verification, so
        // issue 17 withdrew the 0.95x goal against the bare loop set in issue 6.
        let (bare_goal, jsonwebtoken_goal) = if alg == "RS256" { (0.95, 1.1) } else { (f64::INFINITY, f64::INFINITY) };
        for (baseline, theirs, goal) in
            [("bare aws-lc-rs verify loop", aws_lc, bare_goal), ("jsonwebtoken", jsonwebtoken, jsonwebtoken_goal)]
        {
            results.push(Comparison {
                measure: format!("verify {alg} (kms-jwt verify --batch)"),
                unit: "tokens/s",
                ours: kms_jwt,
                baseline: baseline.into(),
                theirs,
                goal,
                higher_is_better: true,
            });
        }
    }

    Ok(results)
}

/// Every core: `verify --batch` on all cores against one, and one `Verifier` shared by threads
/// (and cloned per thread) against one thread, with tokens from one key and from two.
fn scaling_benchmarks(out: &Path, ours: &Path, base: &Path) -> Result<Vec<Comparison>> {
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

/// Signing against LocalStack: client CPU, throughput, and one process.
fn sign_benchmarks(
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
    let mut ours_cmd = Command::new(ours);
    ours_cmd
        .args(["--endpoint-url", endpoint, "--region", "us-east-1", "sign", "--key", arn, "--batch"])
        .arg(&claims)
        .args(["--concurrency", &c])
        .envs(CREDS);
    let mut boto3_cmd = Command::new(&python);
    boto3_cmd.arg(root.join("scripts/bench_boto3.py")).args([endpoint, arn, kid, &c]).envs(CREDS);
    let mut sdk_cmd = Command::new(base);
    sdk_cmd.args(["sign-sdk", endpoint, arn, &SIGN_TOKENS.to_string(), &c]).envs(CREDS);
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
    let mut one = Command::new(ours);
    one.args(["--endpoint-url", endpoint, "--region", "us-east-1", "sign", "--key", arn, "--sub", "x"]).envs(CREDS);
    let mut cli = Command::new(&aws_cli);
    cli.args(["--endpoint-url", endpoint, "kms", "sign", "--key-id", arn, "--message"])
        .arg(format!("fileb://{}", msg.display()))
        .args(["--message-type", "RAW", "--signing-algorithm", "ECDSA_SHA_256"])
        .envs(CREDS);
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

/// Tokens that never wait: mints through a `TokenCache` in front of a KMS made 50 ms slower,
/// against the same mints straight through the signer.
fn cache_benchmarks(base: &Path, endpoint: &str, arn: &str) -> Result<Vec<Comparison>> {
    step(
        "tokens that never wait: 10,000 mints over 100 claims sets at concurrency 32, KMS 50 ms slower, cached and not",
    );
    let run = |cached: bool| -> Result<Value> {
        let mut cmd = Command::new(base);
        cmd.args(["cache-latency", endpoint, arn]).envs(CREDS);
        if cached {
            cmd.arg("--cached");
        }
        let output = cmd.output()?;
        anyhow::ensure!(output.status.success(), "cache-latency failed: {}", String::from_utf8_lossy(&output.stderr));
        Ok(serde_json::from_slice(&output.stdout)?)
    };
    let (cached, uncached) = (run(true)?, run(false)?);
    let figure = |v: &Value, name: &str| v[name].as_f64().unwrap_or(f64::NAN);
    let once = |x: f64| Stats { min: x, median: x, max: x };
    let mut results = Vec::new();
    for p in ["p50_ms", "p99_ms"] {
        results.push(Comparison {
            measure: format!("mint latency {} after warm-up, TokenCache", &p[..3]),
            unit: "ms",
            ours: once(figure(&cached, p)),
            baseline: "the same mints without the cache (context)".into(),
            theirs: once(figure(&uncached, p)),
            goal: f64::INFINITY,
            higher_is_better: false,
        });
    }
    results.push(Comparison {
        measure: "mint latency p99 after warm-up, TokenCache (goal: at most 1 ms)".into(),
        unit: "ms",
        ours: once(figure(&cached, "p99_ms")),
        baseline: "1 ms".into(),
        theirs: once(1.0),
        goal: 1.0,
        higher_is_better: false,
    });
    results.push(Comparison {
        measure: format!("KMS Sign calls, TokenCache ({} s run)", figure(&cached, "elapsed_s").round()),
        unit: "calls",
        ours: once(figure(&cached, "sign_calls")),
        baseline: "claims sets x refresh cycles".into(),
        theirs: once(figure(&cached, "expected_calls")),
        goal: 1.1,
        higher_is_better: false,
    });
    Ok(results)
}

/// `POST /token` answers per second and p99 at concurrency 16, every answer a token cached for
/// its (principal, audience) or every one new, next to `kms-jwt sign` of the same claims.
fn issuer_benchmarks(out: &Path, [ours, base]: [&Path; 2], endpoint: &str, arn: &str) -> Result<Vec<Comparison>> {
    step(&format!(
        "issuer: {ISSUER_REQUESTS} POST /token at concurrency {CONCURRENCY}, cached and new tokens, against kms-jwt sign of the same claims, one warm-up and {REPEATS} interleaved runs each"
    ));
    // Every audience a miss run asks for, listed: the policy has no audience patterns.
    let misses: Vec<String> =
        (0..=REPEATS).flat_map(|round| (0..ISSUER_REQUESTS).map(move |i| format!("\"miss-{round}-{i}\""))).collect();
    let policy = out.join("token-policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[[rule]]\nprincipals = [\"arn:aws:iam::*:root\"]\naudiences = [\"api\", {}]\nmax_ttl = \"15m\"\n",
            misses.join(", ")
        ),
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let issuer = format!("http://127.0.0.1:{port}");
    let mut serve = Command::new(ours);
    serve
        .args(["--endpoint-url", endpoint, "--region", "us-east-1", "serve", "--key", BENCH_SET, "--issuer", &issuer])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--token-policy"])
        .arg(&policy)
        .args(["--sts-endpoint-url", endpoint, "--rate-limit", "1000000000"])
        .envs(CREDS);
    let _server = Server::start(serve)?;

    let account = "000000000000";
    let claims = out.join("issuer-claims.jsonl");
    let line = format!("{{\"sub\":\"arn:aws:iam::{account}:root\",\"aws_account\":\"{account}\"}}\n");
    std::fs::write(&claims, line.repeat(ISSUER_REQUESTS))?;
    let (n, c) = (ISSUER_REQUESTS.to_string(), CONCURRENCY.to_string());
    let mut cli = Command::new(ours);
    cli.args(["--endpoint-url", endpoint, "--region", "us-east-1", "sign", "--key", arn, "--batch"])
        .arg(&claims)
        .args(["--iss", &issuer, "--aud", "api", "--ttl", "15m", "--jti", "--concurrency", &c])
        .envs(CREDS);
    let figures = |args: &[&str]| -> Result<Value> {
        let output = Command::new(base).args(args).envs(CREDS).output()?;
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

/// A multi-Region set signed through a `FailoverSigner` while its primary region is cut:
/// tokens per second before, during and after the cut, and the longest wait for one token.
fn failover_benchmarks(base: &Path, endpoint: &str) -> Result<Vec<Comparison>> {
    step(&format!(
        "failover: ES256 at concurrency {CONCURRENCY}, {FAILOVER_PHASE_SECS} s each with us-east-1 up, a black hole, back; {FAILOVER_RUNS} runs"
    ));
    crate::block_on(bench_set(endpoint, FAILOVER_SET, &["us-east-1", "eu-west-1"]))?;
    let mut runs = Vec::new();
    for _ in 0..FAILOVER_RUNS {
        let output = Command::new(base)
            .args(["failover", endpoint, FAILOVER_SET, &CONCURRENCY.to_string(), &FAILOVER_PHASE_SECS.to_string()])
            .envs(CREDS)
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

/// A `kms-jwt serve` for the issuer runs, stopped on drop; its audit lines are read and dropped.
struct Server(std::process::Child);

impl Server {
    fn start(mut cmd: Command) -> Result<Server> {
        use std::io::BufRead as _;
        let mut child =
            cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().context("cannot start kms-jwt serve")?;
        let mut lines = std::io::BufReader::new(child.stderr.take().context("no stderr")?).lines();
        let mut seen = Vec::new();
        loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                bail!("kms-jwt serve exited: {}", seen.join("\n"));
            };
            if line.starts_with("kms-jwt: listening on ") {
                break;
            }
            seen.push(line);
        }
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        Ok(Server(child))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An ECC P-256 key set for the signing runs; returns its key ARN and kid.
async fn bench_key(endpoint: &str) -> Result<(String, String)> {
    let done = bench_set(endpoint, BENCH_SET, &[]).await?;
    Ok((done.info.key.arn, done.kid))
}

/// Provisions the ECC P-256 key set `name` in `LocalStack`'s us-east-1, or across `regions`.
async fn bench_set(endpoint: &str, name: &str, regions: &[&str]) -> Result<Provisioned> {
    let mut opts = KmsOptions::endpoint(endpoint, "us-east-1");
    opts.static_credentials = Some(("test".into(), "test".into()));
    let req = ProvisionRequest {
        name: KeySetName::parse(name)?,
        key_spec: "ECC_NIST_P256".into(),
        description: "kms-jwt bench".into(),
        tags: vec![],
        max_token_ttl: kms_jwt::keyset::DEFAULT_MAX_TOKEN_TTL,
        regions: regions.iter().map(|r| (*r).to_owned()).collect(),
        pending_window_days: 7,
    };
    Ok(KeySets::new(opts.connect().await?).provision(&req).await?)
}

fn write_report(out: &Path, results: &[Comparison]) -> Result<()> {
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let mut md = String::from("# kms-jwt benchmarks\n\n");
    let _ = write!(
        md,
        "`cargo xtask bench`, {} CPUs ({machine}). Each figure is min / median / max over interleaved runs after a warm-up; ratios use medians.\n\n",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    md.push_str(
        "| measure | kms-jwt | baseline | baseline figure | ratio | goal | met |\n|---|---|---|---|---|---|---|\n",
    );
    let mut rows = Vec::new();
    for r in results {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.3}x | {} | {} |",
            r.measure,
            r.ours.text(r.unit),
            r.baseline,
            r.theirs.text(r.unit),
            r.ratio(),
            r.goal_text(),
            match (r.goal.is_infinite(), r.met()) {
                (true, _) => "-",
                (false, true) => "yes",
                (false, false) => "no",
            }
        );
        rows.push(json!({
            "measure": r.measure, "unit": r.unit, "kms_jwt": r.ours.json(), "baseline": r.baseline,
            "baseline_figure": r.theirs.json(), "ratio": r.ratio(), "goal": r.goal_text(), "met": (!r.goal.is_infinite()).then(|| r.met()),
        }));
    }
    std::fs::write(out.join("report.md"), &md)?;
    std::fs::write(out.join("report.json"), serde_json::to_string_pretty(&json!({ "results": rows }))? + "\n")?;
    crate::print_text(&md)?;
    step(&format!("report written to {}", PathBuf::from(out).join("report.md").display()));
    Ok(())
}
