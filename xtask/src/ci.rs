//! `cargo xtask ci`: what CI checks, in the order that fails fastest.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use kms_jwt_test_support as support;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::localstack::Guard;
use crate::{script, step};

pub(crate) fn run() -> Result<()> {
    step("cargo fmt --check");
    cargo(&["fmt", "--all", "--check"], &[])?;
    step("cargo clippy (all targets, all features, warnings are errors)");
    cargo(&["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"], &[])?;
    step("cargo clippy on the library without its kms feature (the verifier-only build)");
    cargo(&["clippy", "-p", "kms-jwt", "--no-default-features", "--all-targets", "--", "-D", "warnings"], &[])?;
    step("checkov over infra/ (Terraform; skips are inline with their reasons)");
    script("checkov.sh", &[]).context("checkov found failed checks in infra/")?;
    step("parliament over every IAM policy the Terraform module writes (offline)");
    script("iam-lint.sh", &[]).context("parliament found problems in infra/'s IAM policies")?;
    step(
        "every feature set a user can pick: the library alone, as a dependency builds it (no dev-dependency lends it a feature)",
    );
    for features in LIBRARY_FEATURE_SETS {
        let args = ["clippy", "-p", "kms-jwt", "--lib", "--no-default-features", "--features", features];
        cargo(&[&args[..], &["--", "-D", "warnings"]].concat(), &[])?;
    }
    step("crates outside the workspace that depend on the library: a verifying service, a signing one");
    consumers()?;
    step("cargo package: the library (built from its package), the server and the CLI");
    cargo(&["package", "-p", "kms-jwt"], &[])?;
    // The library is listed again so cargo packages the server and the CLI
    // against it rather than looking for it on crates.io.
    cargo(&["package", "--no-verify", "-p", "kms-jwt", "-p", "kms-jwt-server", "-p", "kms-jwt-cli"], &[])?;
    step("building the tests and the examples");
    cargo(&["test", "--workspace", "--all-features", "--no-run"], &[])?;
    cargo(&["build", "--workspace", "--all-features", "--examples"], &[])?;
    // The binaries just built: `cargo run -p kms-jwt` would resolve other features and build
    // the dependencies a second time. (The next step builds the examples without `kms`.)
    step("running the examples");
    for example in ["mint_in_axum", "verify_from_issuer", "axum_api"] {
        let path = crate::repo_root().join("target/debug/examples").join(example);
        let status = Command::new(&path).status().with_context(|| format!("cannot run {}", path.display()))?;
        anyhow::ensure!(status.success(), "example {example} failed");
    }
    step("installing jose (npm) on Node.js 24 for the interop tests (scripts/jose.sh)");
    let jose = script("jose.sh", &[])?;
    step("the library's tests without its kms feature (no AWS SDK in the build)");
    cargo(&["test", "-p", "kms-jwt", "--no-default-features"], &[("KMS_JWT_TEST_JOSE", jose.as_str())])?;
    let binary = crate::repo_root().join("target/debug/kms-jwt");
    let binary = binary.to_str().context("a UTF-8 path")?;
    step("deploy/kubernetes: kubernetes-validate (strict, offline) and its consistency with kms-jwt serve");
    script("kubernetes-check.sh", &[binary]).context("deploy/kubernetes does not validate")?;
    // The debug binary the tests run: the image's packaging (base, user, health check, drain)
    // is what is tested, and a release build would add minutes; scripts/image.sh without
    // --binary builds the release image.
    step("building the serve image with Podman (scripts/image.sh), for the image test");
    let image = script("image.sh", &["--binary", binary, "--tag", "ci"])?;

    step("installing cargo-lambda, whose Lambda runtime emulator runs the issuer function (scripts/cargo-lambda.sh)");
    let cargo_lambda = script("cargo-lambda.sh", &["path"])?;
    step("starting MiniStack, the KMS emulator with Ed25519 keys (scripts/ministack.sh), for both passes");
    let ministack = Guard::ministack()?;
    let others = [
        ("KMS_JWT_TEST_IMAGE", image.as_str()),
        ("KMS_JWT_TEST_JOSE", jose.as_str()),
        ("KMS_JWT_TEST_MINISTACK_ENDPOINT", ministack.endpoint.as_str()),
        ("KMS_JWT_TEST_CARGO_LAMBDA", cargo_lambda.as_str()),
    ];
    step("starting LocalStack for the integration tests");
    let localstack = Guard::up()?;
    let python = Guard::python()?;
    step(&format!("running every test against LocalStack at {}", localstack.endpoint));
    let env = test_env(&localstack.endpoint, &python);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).chain(others).collect();
    cargo_within(TEST_PASS_LIMIT, &["test", "--workspace", "--all-features"], &env, &[])?;
    step("stopping LocalStack");
    drop(localstack);

    // The KMS signer and key-set suites again, against a second implementation of the KMS API.
    step(&format!("the KMS signer and key-set suites against MiniStack at {}", ministack.endpoint));
    let env = test_env(&ministack.endpoint, &python);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let suites = ["test", "-p", "kms-jwt", "--all-features", "--test", "kms_signer", "--test", "keyset"];
    cargo_within(TEST_PASS_LIMIT, &suites, &env, &[])?;

    // Every test binary runs again, so that no suite that needs LocalStack can be left out of
    // this pass: the harness starts a container for each binary that asks for an endpoint.
    step("every test binary again, LocalStack through testcontainers (a Docker engine, else Podman)");
    let engine = Engine::up()?;
    let env: Vec<(&str, &str)> = [
        ("DOCKER_HOST", engine.docker_host.as_str()),
        ("CONTAINERS_CONF", engine.containers_conf.as_str()),
        ("KMS_JWT_TEST_PYTHON", python.as_str()),
    ]
    .into_iter()
    .chain(others)
    .chain(support::LOCALSTACK_ENV)
    .collect();
    cargo_within(
        TEST_PASS_LIMIT,
        &["test", "--workspace", "--all-features", "--tests"],
        &env,
        &["KMS_JWT_TEST_ENDPOINT", "AWS_ENDPOINT_URL"],
    )?;
    drop(engine);
    drop(ministack);
    step("ci passed");
    Ok(())
}
/// The feature sets `cargo xtask ci` checks the library with, one at a time and without
/// dev-dependencies: each alone, and all together.
const LIBRARY_FEATURE_SETS: [&str; 7] = ["", "remote", "axum", "kms", "s3", "fuzzing", "kms,s3,remote,axum"];

/// Builds and runs the crates in `xtask/consumers/`, each its own workspace, with the
/// repository's lock file (so the same versions, and the build's artifacts, are reused).
fn consumers() -> Result<()> {
    let root = crate::repo_root();
    for consumer in ["verify-only", "with-kms"] {
        let dir = root.join("xtask/consumers").join(consumer);
        std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).context("cannot copy Cargo.lock")?;
        let manifest = dir.join("Cargo.toml");
        let target = root.join("target");
        let manifest = manifest.to_str().context("a UTF-8 path")?;
        let target = target.to_str().context("a UTF-8 path")?;
        cargo(&["run", "--quiet", "--manifest-path", manifest, "--target-dir", target], &[])?;
    }
    Ok(())
}

/// A Docker API for testcontainers: a Docker engine that answers, else Podman with the locally
/// built LocalStack image (`scripts/container-engine.sh` says which); Podman and the tests'
/// containers are stopped on drop, also when a step fails.
struct Engine {
    docker_host: String,
    containers_conf: String,
}

impl Engine {
    fn up() -> Result<Engine> {
        let docker_host = script("container-engine.sh", &["up"])?;
        let containers_conf = crate::repo_root().join("scripts/containers.conf").display().to_string();
        Ok(Engine { docker_host, containers_conf })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = script("container-engine.sh", &["down"]);
    }
}

/// The environment integration tests read: `LocalStack`'s endpoint and its dummy credentials.
pub(crate) fn test_env(endpoint: &str, python: &str) -> Vec<(&'static str, String)> {
    [("KMS_JWT_TEST_ENDPOINT", endpoint.to_owned()), ("KMS_JWT_TEST_PYTHON", python.to_owned())]
        .into_iter()
        .chain(support::LOCALSTACK_ENV.map(|(name, value)| (name, value.to_owned())))
        .collect()
}

/// The longest a pass over the tests may take. Each takes a few minutes; a test that hangs
/// should fail CI with its name on screen (libtest names a test running over 60 s), not hold
/// the run until CI's own limit ends it without a word.
const TEST_PASS_LIMIT: Duration = Duration::from_secs(20 * 60);

pub(crate) fn cargo(args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    cargo_within(Duration::MAX, args, env, &[])
}

/// Runs cargo with `env` set and `unset` removed from the environment; past `limit`, stops
/// it and everything it started.
fn cargo_within(limit: Duration, args: &[&str], env: &[(&str, &str)], unset: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    for name in unset {
        cmd.env_remove(name);
    }
    let mut child = cmd
        .args(args)
        .envs(env.iter().copied())
        .current_dir(crate::repo_root())
        .spawn()
        .with_context(|| format!("cannot run {cargo}"))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > limit {
            for pid in descendants(child.id()).into_iter().chain([child.id()]) {
                let _ = kill(Pid::from_raw(i32::try_from(pid)?), Signal::SIGKILL);
            }
            let _ = child.wait();
            bail!("cargo {} ran over {} min and was stopped: a test hangs", args.join(" "), limit.as_secs() / 60);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

/// Every process below `root`, from /proc (the test binaries cargo runs, and what they run).
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // The command name, in parentheses, may hold spaces: the parent is the second
            // field after its closing parenthesis.
            let parent = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, parent))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let above = found[i];
        found.extend(parents.iter().filter(|&&(_, parent)| parent == above).map(|&(pid, _)| pid));
        i += 1;
    }
    found.remove(0);
    found
}
