//! `cargo xtask ci`: what CI checks, in the order that fails fastest.

use std::process::Command;

use anyhow::{Context as _, Result, bail};

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
    step("cargo package: the library and the CLI as crates.io would get them");
    cargo(&["package", "--no-verify", "-p", "kms-jwt", "-p", "kms-jwt-cli"], &[])?;
    step("building the tests and the examples");
    cargo(&["test", "--workspace", "--all-features", "--no-run"], &[])?;
    cargo(&["build", "--workspace", "--all-features", "--examples"], &[])?;
    // The binaries just built: `cargo run -p kms-jwt` would resolve other features and build
    // the dependencies a second time. (The next step builds the examples without `kms`.)
    step("running the examples");
    for example in ["mint_in_axum", "verify_from_issuer"] {
        let path = crate::repo_root().join("target/debug/examples").join(example);
        let status = Command::new(&path).status().with_context(|| format!("cannot run {}", path.display()))?;
        anyhow::ensure!(status.success(), "example {example} failed");
    }
    step("the library's tests without its kms feature (no AWS SDK in the build)");
    cargo(&["test", "-p", "kms-jwt", "--no-default-features"], &[])?;

    step("starting LocalStack for the integration tests");
    let localstack = Guard::up()?;
    let python = Guard::python()?;
    step(&format!("running every test against LocalStack at {}", localstack.endpoint));
    let env = test_env(&localstack.endpoint, &python);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    cargo(&["test", "--workspace", "--all-features"], &env)?;
    step("stopping LocalStack");
    drop(localstack);

    // Every test binary runs again, so that no suite that needs LocalStack can be left out of
    // this pass: the harness starts a container for each binary that asks for an endpoint.
    step("every test binary again, LocalStack through testcontainers (a Docker engine, else Podman)");
    let engine = Engine::up()?;
    let env = [
        ("DOCKER_HOST", engine.docker_host.as_str()),
        ("CONTAINERS_CONF", engine.containers_conf.as_str()),
        ("KMS_JWT_TEST_PYTHON", python.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    cargo_without(
        &["test", "--workspace", "--all-features", "--tests"],
        &env,
        &["KMS_JWT_TEST_ENDPOINT", "AWS_ENDPOINT_URL"],
    )?;
    drop(engine);
    step("ci passed");
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
    vec![
        ("KMS_JWT_TEST_ENDPOINT", endpoint.to_owned()),
        ("KMS_JWT_TEST_PYTHON", python.to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

pub(crate) fn cargo(args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    cargo_without(args, env, &[])
}

/// Runs cargo with `env` set and `unset` removed from the environment.
fn cargo_without(args: &[&str], env: &[(&str, &str)], unset: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    for name in unset {
        cmd.env_remove(name);
    }
    let status = cmd
        .args(args)
        .envs(env.iter().copied())
        .current_dir(crate::repo_root())
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}
