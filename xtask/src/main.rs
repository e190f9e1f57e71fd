//! Operator and repository tasks for kms-jwt. Run `cargo xtask --help`.
//!
//! Each command is a module; the logic they share with users lives in the `kms_jwt` library.

mod ci;
mod demo;
mod localstack;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kms_jwt::kms::KmsOptions;

/// Operator and repository tasks for kms-jwt
#[derive(Parser)]
#[command(name = "cargo xtask", max_term_width = 100)]
struct Xtask {
    #[command(flatten)]
    kms: KmsOptions,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start, stop or check the local `LocalStack` (KMS) used by tests and the demo
    Localstack(localstack::Args),
    /// The whole seed flow against `LocalStack`, narrated
    Demo,
    /// Everything CI checks: fmt, clippy, unit and `LocalStack` integration tests
    Ci,
}

fn main() -> ExitCode {
    let xtask = Xtask::parse();
    let result = match xtask.command {
        Command::Localstack(args) => localstack::run(&args),
        Command::Demo => demo::run(&xtask.kms),
        Command::Ci => ci::run(),
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

/// The repository root (xtask's parent directory).
fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the repository").to_path_buf()
}

/// Prints a step heading on stderr, so that stdout stays machine-readable.
fn step(message: &str) {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("\n==> {message}");
    }
}
