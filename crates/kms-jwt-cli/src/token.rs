//! `kms-jwt token`: asks an issuer's `POST /token` for a token, proving this caller's AWS
//! identity with a signed, unsent `sts:GetCallerIdentity` request; or, for an issuer on Lambda
//! behind IAM auth, by signing the request itself with `SigV4` for the `lambda` service.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use kms_jwt::issuer::TokenClient;
use kms_jwt::kms::KmsOptions;

/// Ask an issuer (kms-jwt serve --token-policy, or its Lambda function) for a token for this caller's AWS identity; prints the token
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
    /// Sign the request with `SigV4` for the lambda service instead of sending a proof: an issuer on Lambda behind IAM auth [default: on for *.lambda-url.REGION.on.aws URLs]
    #[arg(long)]
    sigv4: bool,
}

/// The region of a function URL (`https://ID.lambda-url.REGION.on.aws`), if `url` is one.
fn function_url_region(url: &str) -> Option<&str> {
    let host = url.strip_prefix("https://")?.split(['/', ':']).next()?;
    let (_, rest) = host.split_once(".lambda-url.")?;
    let region = rest.strip_suffix(".on.aws")?;
    (!region.is_empty() && !region.contains('.')).then_some(region)
}

/// Runs `kms-jwt token`.
pub async fn run(args: TokenArgs, opts: &KmsOptions) -> Result<ExitCode> {
    let issuer = crate::serve::check_issuer(&args.issuer)?;
    let config = opts.load().await?;
    if args.sigv4 || function_url_region(&issuer).is_some() {
        let region = match function_url_region(&issuer) {
            Some(region) => region.to_owned(),
            None => config.region().map(ToString::to_string).context("no AWS region: set AWS_REGION")?,
        };
        let answer = TokenClient::new(&issuer)?.token_sigv4(&config, &region, &args.aud, args.ttl).await?;
        writeln!(std::io::stdout().lock(), "{}", answer.token)?;
        return Ok(ExitCode::SUCCESS);
    }
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

#[cfg(test)]
mod tests {
    use super::function_url_region;

    #[test]
    fn function_urls_name_their_region() {
        assert_eq!(function_url_region("https://abcdefgh.lambda-url.eu-west-1.on.aws"), Some("eu-west-1"));
        assert_eq!(function_url_region("https://abcdefgh.lambda-url.eu-west-1.on.aws/"), Some("eu-west-1"));
        for other in
            ["http://abcdefgh.lambda-url.eu-west-1.on.aws", "https://issuer.example", "https://x.lambda-url..on.aws"]
        {
            assert_eq!(function_url_region(other), None, "{other}");
        }
    }
}
