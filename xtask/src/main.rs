//! Operator and repository tasks for kms-jwt. Run `cargo xtask --help`.
//!
//! Each command is a module; the logic they share with users lives in the `kms_jwt` library.

mod bench;
mod ci;
mod demo;
mod lambda_build;
mod localstack;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kms_jwt_cli::aws::AwsArgs;
use kms_jwt_cli::keyset;

/// Operator and repository tasks for kms-jwt
#[derive(Parser)]
#[command(name = "cargo xtask", max_term_width = 100)]
struct Xtask {
    #[command(flatten)]
    aws: AwsArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a key set's KMS key and alias (idempotent): `kms-jwt keyset provision`
    Provision(keyset::ProvisionArgs),
    /// Rotate a key set through its aliases: `kms-jwt keyset rotate`
    Rotate(keyset::RotateArgs),
    /// Export a key set's public key as PEM, JWK or JWKS: `kms-jwt public-key`
    PublicKey(kms_jwt_cli::keys::PublicKeyArgs),
    /// Start, stop or check the local `LocalStack` (KMS, STS, IAM, S3) used by tests and the demo
    Localstack(localstack::Args),
    /// The whole seed flow against `LocalStack`, narrated
    Demo,
    /// Everything CI checks: fmt, clippy, unit and `LocalStack` integration tests
    Ci,
    /// Benchmarks against baselines in the same run; report in target/bench/
    Bench(bench::Args),
    /// The issuer's Lambda zip (provided.al2023, arm64) in target/lambda/kms-jwt-lambda/
    LambdaBuild,
}

fn main() -> ExitCode {
    let xtask = Xtask::parse();
    let kms = xtask.aws.options();
    let result = match xtask.command {
        Command::Provision(args) => block_on(keyset::provision(args, &kms)).map(drop),
        Command::Rotate(args) => block_on(keyset::rotate(args, &kms)).map(drop),
        Command::PublicKey(args) => block_on(kms_jwt_cli::keys::public_key(args, &kms)).map(drop),
        Command::Localstack(args) => localstack::run(&args),
        Command::Demo => demo::run(&kms),
        Command::Ci => ci::run(),
        Command::Bench(args) => bench::run(&args),
        Command::LambdaBuild => lambda_build::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("xtask: {e:#}");
            }
            ExitCode::from(2)
        }
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime").block_on(future)
}

/// Prints text on stdout.
fn print_text(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// The repository root (xtask's parent directory).
fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the repository").to_path_buf()
}

/// Runs `scripts/NAME ARGS...` with bash; its stderr passes through, its trimmed stdout is
/// returned (an endpoint, a `DOCKER_HOST`, a path).
fn script(name: &str, args: &[&str]) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let path = repo_root().join("scripts").join(name);
    let out = std::process::Command::new("bash")
        .arg(&path)
        .args(args)
        .env("CONTAINERS_CONF", repo_root().join("scripts/containers.conf"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", path.display()))?;
    anyhow::ensure!(out.status.success(), "scripts/{name} {} failed", args.join(" "));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Prints a step heading on stderr, so that stdout stays machine-readable, with the time since
/// the first step: a slow CI run then says which step took the time.
fn step(message: &str) {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let elapsed = START.get_or_init(std::time::Instant::now).elapsed().as_secs();
    #[allow(clippy::print_stderr)]
    {
        eprintln!("\n==> [{:02}:{:02}] {message}", elapsed / 60, elapsed % 60);
    }
}
