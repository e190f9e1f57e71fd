//! `cargo xtask lambda-build`: the issuer function's zip for AWS Lambda (`provided.al2023`,
//! arm64): `cargo lambda build` cross-compiles with Zig, both from `PyPI`
//! (`scripts/cargo-lambda.sh`), into `target/lambda/kms-jwt-lambda/bootstrap.zip`.

use std::process::Command;

use anyhow::{Context as _, Result, ensure};

use crate::{script, step};

pub(crate) fn run() -> Result<()> {
    step("rustup target add aarch64-unknown-linux-gnu (the Lambda's arm64)");
    let status = Command::new("rustup").args(["target", "add", "aarch64-unknown-linux-gnu"]).status()?;
    ensure!(status.success(), "rustup could not add the aarch64-unknown-linux-gnu target");
    step("installing cargo-lambda and Zig (scripts/cargo-lambda.sh zig)");
    let bin = script("cargo-lambda.sh", &["zig"])?;
    step("cargo lambda build --release --arm64 --output-format zip -p kms-jwt-lambda (several minutes on two cores)");
    let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
    let status = Command::new(format!("{bin}/cargo-lambda"))
        .args(["lambda", "build", "--release", "--arm64", "--output-format", "zip", "--package", "kms-jwt-lambda"])
        .env("PATH", path)
        .current_dir(crate::repo_root())
        .status()
        .context("cannot run cargo-lambda")?;
    ensure!(status.success(), "cargo lambda build failed");
    let zip = crate::repo_root().join("target/lambda/kms-jwt-lambda/bootstrap.zip");
    let size = std::fs::metadata(&zip).with_context(|| format!("no {}", zip.display()))?.len();
    step(&format!("{}: {:.1} MB (Terraform's lambda_zip)", zip.display(), size as f64 / 1e6));
    Ok(())
}
