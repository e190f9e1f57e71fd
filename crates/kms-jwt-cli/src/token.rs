//! `kms-jwt token`: asks an issuer's `POST /token` for a token, proving this caller's AWS
//! identity with a signed, unsent `sts:GetCallerIdentity` request.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use kms_jwt::issuer::{TokenRequest, make_proof};
use kms_jwt::kms::KmsOptions;

/// How long the issuer has to answer, and the most of its answer that is read.
const ISSUER_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_ANSWER: usize = 64 * 1024;

/// Ask an issuer (kms-jwt serve --token-policy) for a token for this caller's AWS identity; prints the token
#[derive(Args)]
pub struct TokenArgs {
    /// The issuer URL; its POST /token is called
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// The audience to ask for
    #[arg(long, value_name = "A")]
    aud: String,
    /// The lifetime to ask for, such as 15m [default: the longest the issuer's policy allows]
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
    let server_id = args.server_id.as_deref().unwrap_or(&issuer);
    let proof = make_proof(&config, &region, server_id).await?;
    let request =
        TokenRequest { audience: args.aud, ttl: args.ttl.map(|t| humantime::format_duration(t).to_string()), proof };
    let http = crate::http::Http::new(ISSUER_TIMEOUT)?;
    let url = format!("{issuer}/token");
    let answer = http
        .post(&url, [("content-type", "application/json")], serde_json::to_vec(&request)?, MAX_ANSWER)
        .await
        .with_context(|| format!("cannot reach the issuer at {url}"))?;
    let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    if answer.status != 200 {
        let reason = body["error"].as_str().unwrap_or("no reason given");
        bail!("the issuer refused: {reason} (HTTP {})", answer.status);
    }
    let token = body["token"].as_str().context("the issuer's answer has no token")?;
    writeln!(std::io::stdout().lock(), "{token}")?;
    Ok(ExitCode::SUCCESS)
}
