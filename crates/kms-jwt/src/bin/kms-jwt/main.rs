//! `kms-jwt`: sign JWTs with AWS KMS keys, verify them, and publish the public keys.

mod decode;
mod input;
mod keys;
mod serve;
mod sign;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kms_jwt::kms::KmsOptions;

/// Sign JWTs with an AWS KMS key that never leaves KMS, and verify them with its public key.
///
/// Exit codes: 0 success, 1 a token that does not verify, 2 usage, configuration or AWS error.
/// Set `KMS_JWT_LOG=debug` for a trace of the KMS calls on stderr.
#[derive(Parser)]
#[command(name = "kms-jwt", version, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    kms: KmsOptions,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Sign(sign::SignArgs),
    Verify(verify::VerifyArgs),
    Jwks(keys::JwksArgs),
    PublicKey(keys::PublicKeyArgs),
    Decode(decode::DecodeArgs),
    Publish(serve::PublishArgs),
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("KMS_JWT_LOG").unwrap_or_else(|_| "off".into()))
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Sign(args) => sign::run(args, &cli.kms).await,
            Command::Verify(args) => verify::run(args, &cli.kms).await,
            Command::Jwks(args) => keys::jwks(args, &cli.kms).await,
            Command::PublicKey(args) => keys::public_key(args, &cli.kms).await,
            Command::Decode(args) => decode::run(&args),
            Command::Publish(args) => serve::publish(args, &cli.kms).await,
            Command::Serve(args) => serve::serve(args, &cli.kms).await,
        }
    });
    match result {
        Ok(code) => code,
        // A reader that went away (`| head -1`) is not an error worth a message.
        Err(e) if input::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &anyhow::Error) -> ExitCode {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("kms-jwt: {e:#}");
    }
    ExitCode::from(2)
}
