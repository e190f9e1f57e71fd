//! `cargo xtask bench`: kms-jwt against baselines measured side by side in one run, reported
//! as ratios (absolute times on a shared 2-core machine are noise) in `target/bench/`.
//!
//! One module per measured area, run in this order: `verify` and `scaling` (offline), then
//! against `LocalStack` `sign`, `cache`, `issuer`, `failover`, `remote` (the verifying side) and
//! `service` (TLS against nginx, metrics, the drain), `lambda` (the issuer function under a
//! runtime emulator against `serve`), then `algorithms` (Ed25519 against ES256
//! signing, on `MiniStack`, the emulator with Ed25519 keys); `report` writes the one report. This module holds the order and the measurement helpers.

mod algorithms;
mod cache;
mod failover;
mod issuer;
mod lambda;
mod remote;
mod report;
mod scaling;
mod service;
mod sign;
mod verify;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use kms_jwt::keyset::{KeySetName, KeySets, ProvisionRequest, Provisioned};
use kms_jwt::kms::KmsOptions;
use kms_jwt_test_support as support;
use serde_json::{Value, json};

use crate::localstack::Guard;
use crate::step;

const CONCURRENCY: usize = 16;
const REPEATS: usize = 5;
/// The key set the signing runs provision in `LocalStack`.
const BENCH_SET: &str = "kms-jwt-bench";

/// min, median, max of repeated measurements.
#[derive(Clone, Copy)]
struct Stats {
    min: f64,
    median: f64,
    max: f64,
}

impl Stats {
    /// One measurement, reported as its own min, median and max.
    fn once(x: f64) -> Stats {
        Stats { min: x, median: x, max: x }
    }

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

/// The measured areas, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Area {
    Verify,
    Scaling,
    Sign,
    Cache,
    Issuer,
    Failover,
    Remote,
    Service,
    Algorithms,
    Lambda,
}

/// `cargo xtask bench`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Run only these areas (repeatable) [default: all]
    #[arg(long, value_enum, value_name = "AREA")]
    only: Vec<Area>,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let runs = |area: Area| args.only.is_empty() || args.only.contains(&area);
    let root = crate::repo_root();
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out)?;
    step("building kms-jwt and the baselines (release)");
    let build = ["build", "--release", "--quiet", "-p", "kms-jwt-cli", "-p", "kms-jwt-bench", "-p", "kms-jwt-lambda"];
    crate::ci::cargo(&build, &[])?;
    let ours = root.join("target/release/kms-jwt");
    let base = root.join("target/release/kms-jwt-bench");
    let function = root.join("target/release/kms-jwt-lambda");
    let mut results = Vec::new();
    if runs(Area::Verify) {
        results.extend(verify::benchmarks(&out, &ours, &base)?);
    }
    if runs(Area::Scaling) {
        results.extend(scaling::benchmarks(&out, &ours, &base)?);
    }
    let online = [Area::Sign, Area::Cache, Area::Issuer, Area::Failover, Area::Remote, Area::Service, Area::Lambda];
    if online.into_iter().any(runs) {
        step("starting LocalStack for the signing benchmarks");
        let localstack = Guard::up()?;
        let endpoint = localstack.endpoint.clone();
        let (arn, kid) = crate::block_on(bench_key(&endpoint))?;
        if runs(Area::Sign) {
            results.extend(sign::benchmarks(&root, &out, [&ours, &base], &endpoint, &arn, &kid)?);
        }
        if runs(Area::Cache) {
            results.extend(cache::benchmarks(&base, &endpoint, &arn)?);
        }
        if runs(Area::Issuer) {
            results.extend(issuer::benchmarks(&out, [&ours, &base], &endpoint, &arn)?);
        }
        if runs(Area::Failover) {
            results.extend(failover::benchmarks(&base, &endpoint)?);
        }
        if runs(Area::Remote) {
            results.extend(remote::benchmarks([&ours, &base], &endpoint)?);
        }
        if runs(Area::Service) {
            results.extend(service::benchmarks(&out, [&ours, &base], &endpoint)?);
        }
        if runs(Area::Lambda) {
            results.extend(lambda::benchmarks(&out, [&ours, &base, &function], &endpoint)?);
        }
    }
    if runs(Area::Algorithms) {
        results.extend(algorithms::benchmarks(&out, &ours)?);
    }
    report::write_report(&out, &results)
}

/// An ECC P-256 key set for the signing runs; returns its key ARN and kid.
async fn bench_key(endpoint: &str) -> Result<(String, String)> {
    let done = bench_set(endpoint, BENCH_SET, &[], "ECC_NIST_P256").await?;
    Ok((done.info.key.arn, done.kid))
}

/// Provisions the key set `name` of `spec` at `endpoint`, in us-east-1 or across `regions`.
async fn bench_set(endpoint: &str, name: &str, regions: &[&str], spec: &str) -> Result<Provisioned> {
    let mut opts = KmsOptions::endpoint(endpoint, "us-east-1");
    opts.static_credentials = Some((support::ACCESS_KEY_ID.into(), support::SECRET_ACCESS_KEY.into()));
    let req = ProvisionRequest {
        name: KeySetName::parse(name)?,
        key_spec: spec.into(),
        description: "kms-jwt bench".into(),
        tags: vec![],
        max_token_ttl: kms_jwt::keyset::DEFAULT_MAX_TOKEN_TTL,
        regions: regions.iter().map(|r| (*r).to_owned()).collect(),
        pending_window_days: 7,
    };
    Ok(KeySets::new(opts.connect().await?).provision(&req).await?)
}
