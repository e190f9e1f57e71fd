//! `kms-jwt`: sign JWTs with AWS KMS keys, verify them, and publish and rotate the keys.

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};
use kms_jwt_cli::aws::AwsArgs;
use kms_jwt_cli::{completions, decode, keys, keyset, publish, serve, sign, token, verify};

/// Sign JWTs with an AWS KMS key that never leaves KMS, and verify them with its public key.
///
/// Exit codes: 0 success, 1 a token that does not verify, 2 usage, configuration or AWS error.
/// Set `KMS_JWT_LOG=debug` for a trace of the KMS calls on stderr.
#[derive(Parser)]
#[command(name = "kms-jwt", version, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    aws: AwsArgs,

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
    Publish(publish::PublishArgs),
    Serve(serve::ServeArgs),
    Keyset(keyset::KeysetArgs),
    Token(token::TokenArgs),
    Completions(completions::CompletionsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("KMS_JWT_LOG").unwrap_or_else(|_| "off".into()))
        .init();
    // A server answers many requests at once, on every core; a command does one thing.
    let mut builder = match cli.command {
        Command::Serve(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    let opts = cli.aws.options();
    let result = runtime.block_on(async {
        match cli.command {
            Command::Sign(args) => sign::run(args, &opts).await,
            Command::Verify(args) => verify::run(args, &opts).await,
            Command::Jwks(args) => keys::jwks(args, &opts).await,
            Command::PublicKey(args) => keys::public_key(args, &opts).await,
            Command::Decode(args) => decode::run(&args),
            Command::Publish(args) => publish::run(args, &opts).await,
            Command::Serve(args) => serve::run(args, &opts).await,
            Command::Keyset(args) => keyset::run(args, &opts).await,
            Command::Token(args) => token::run(args, &opts).await,
            Command::Completions(args) => completions::run(&args, &mut Cli::command()),
        }
    });
    match result {
        Ok(code) => code,
        // A reader that went away (`| head -1`) is not an error worth a message.
        Err(e) if kms_jwt_cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// One line on stderr and exit 2. The chain of context is printed down to the first error of
/// the library, whose message is complete; its own sources (the AWS SDK's error) are
/// internals that `KMS_JWT_LOG=debug` shows.
fn fail(e: &anyhow::Error) -> ExitCode {
    let mut parts = Vec::new();
    for cause in e.chain() {
        parts.push(cause.to_string());
        if cause.is::<kms_jwt::Error>() || cause.is::<kms_jwt::TokenError>() {
            tracing::debug!(error = ?cause, "full error");
            break;
        }
    }
    kms_jwt_cli::say(&parts.join(": "));
    ExitCode::from(2)
}
