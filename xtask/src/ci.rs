//! `cargo xtask ci`: what CI checks, in the order that fails fastest.

use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::localstack::Guard;
use crate::step;

pub(crate) fn run() -> Result<()> {
    step("cargo fmt --check");
    cargo(&["fmt", "--all", "--check"], &[])?;
    step("cargo clippy (all targets, all features, warnings are errors)");
    cargo(&["clippy", "--workspace", "--all-targets", "--all-features", "--quiet", "--", "-D", "warnings"], &[])?;
    step("checkov over infra/ (Terraform; skips are inline with their reasons)");
    let status = Command::new("bash")
        .arg(crate::repo_root().join("scripts/checkov.sh"))
        .status()
        .context("cannot run scripts/checkov.sh")?;
    if !status.success() {
        bail!("checkov found failed checks in infra/");
    }
    step("building the tests");
    cargo(&["test", "--workspace", "--all-features", "--no-run", "--quiet"], &[])?;

    step("starting LocalStack for the integration tests");
    let localstack = Guard::up()?;
    let python = Guard::python()?;
    step(&format!("running every test against LocalStack at {}", localstack.endpoint));
    let env = test_env(&localstack.endpoint, &python);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    cargo(&["test", "--workspace", "--all-features"], &env)?;
    step("stopping LocalStack");
    drop(localstack);
    step("ci passed");
    Ok(())
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
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
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
