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
    Health(serve::HealthArgs),
    Keyset(keyset::KeysetArgs),
    Token(token::TokenArgs),
    Completions(completions::CompletionsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = matches!(&cli.command, Command::Serve(args) if args.json_logs());
    init_logs(json);
    // A server answers many requests at once, on every core; a command does one thing.
    let mut builder = match cli.command {
        Command::Serve(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&anyhow::Error::new(e).context("cannot start the async runtime"), json),
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
            Command::Health(args) => serve::health(args).await,
            Command::Keyset(args) => keyset::run(args, &opts).await,
            Command::Token(args) => token::run(args, &opts).await,
            Command::Completions(args) => completions::run(&args, &mut Cli::command()),
        }
    });
    // Not a wait on blocking tasks that will not end (a DNS lookup during an outage): a drained
    // server must exit within its grace period.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => code,
        // A reader that went away (`| head -1`) is not an error worth a message.
        Err(e) if kms_jwt_cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => fail(&e, json),
    }
}

/// `tracing` on stderr: off unless `KMS_JWT_LOG` says otherwise; for a server logging JSON,
/// INFO and above as one JSON object per line (its messages are INFO events then).
fn init_logs(json: bool) {
    let filter =
        |default: &str| tracing_subscriber::EnvFilter::try_from_env("KMS_JWT_LOG").unwrap_or_else(|_| default.into());
    let logs = tracing_subscriber::fmt().with_writer(std::io::stderr);
    if json {
        logs.json().flatten_event(true).with_current_span(false).with_env_filter(filter("info")).init();
    } else {
        logs.with_env_filter(filter("off")).init();
    }
}

/// One line on stderr (a JSON object for a server logging JSON) and exit 2. The chain of
/// context is printed down to the first error of the library, whose message is complete; its
/// own sources (the AWS SDK's error) are internals that `KMS_JWT_LOG=debug` shows.
fn fail(e: &anyhow::Error, json: bool) -> ExitCode {
    let mut parts = Vec::new();
    for cause in e.chain() {
        parts.push(cause.to_string());
        if cause.is::<kms_jwt::Error>() || cause.is::<kms_jwt::TokenError>() {
            tracing::debug!(error = ?cause, "full error");
            break;
        }
    }
    if json {
        tracing::error!(target: "kms_jwt", "{}", parts.join(": "));
    } else {
        kms_jwt_cli::say(&parts.join(": "));
    }
    ExitCode::from(2)
}
