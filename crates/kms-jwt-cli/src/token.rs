//! `kms-jwt token`: asks an issuer's `POST /token` for a token, proving this caller's AWS
//! identity with a signed, unsent `sts:GetCallerIdentity` request.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use kms_jwt::issuer::TokenClient;
use kms_jwt::kms::KmsOptions;

/// Ask an issuer (kms-jwt serve --token-policy) for a token for this caller's AWS identity; prints the token
#[derive(Args)]
pub struct TokenArgs {
    /// The issuer URL; its POST /token is called
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// The audience to ask for
    #[arg(long, value_name = "A")]
    aud: String,
    /// The lifetime to ask for, whole seconds of at least 1m, granted in whole minutes [default: the longest the issuer's policy allows]
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    ttl: Option<Duration>,
    /// The issuer's server id, when it is not its URL
    #[arg(long, value_name = "ID")]
    server_id: Option<String>,
    /// The STS region the proof names [default: the AWS region]
    #[arg(long, value_name = "R")]
    sts_region: Option<String>,
}

/// Runs `kms-jwt token`.
pub async fn run(args: TokenArgs, opts: &KmsOptions) -> Result<ExitCode> {
    let issuer = crate::serve::check_issuer(&args.issuer)?;
    let config = opts.load().await?;
    let region = match &args.sts_region {
        Some(region) => region.clone(),
        None => config.region().map(ToString::to_string).context("no AWS region: pass --sts-region")?,
    };
    let mut client = TokenClient::new(&issuer)?;
    if let Some(id) = args.server_id {
        client = client.server_id(id);
    }
    let answer = client.token(&config, &region, &args.aud, args.ttl).await?;
    writeln!(std::io::stdout().lock(), "{}", answer.token)?;
    Ok(ExitCode::SUCCESS)
}
