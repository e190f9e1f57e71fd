//! The AWS connection options every command shares, mapped onto the library's `KmsOptions`.

use std::time::Duration;

use clap::Args;
use kms_jwt::kms::{DEFAULT_MAX_ATTEMPTS, KmsClient, KmsOptions};

/// How to reach KMS. Unset options fall back to the standard AWS environment.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "AWS connection")]
pub struct AwsArgs {
    /// KMS endpoint URL, for example `LocalStack`'s <http://127.0.0.1:4566> [env: `AWS_ENDPOINT_URL`]
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// AWS region [env: `AWS_REGION`]
    #[arg(long, global = true, value_name = "R")]
    pub region: Option<String>,

    /// AWS shared-config profile [env: `AWS_PROFILE`]
    #[arg(long, global = true, value_name = "P")]
    pub profile: Option<String>,

    /// Give up on a KMS call, retries included, after this long
    #[arg(long, global = true, value_name = "DURATION", default_value = "20s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Give up on one attempt of a KMS call after this long (then retry)
    #[arg(long, global = true, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub attempt_timeout: Duration,

    /// Attempts per KMS call, first try included (throttling and 5xx are retried with backoff)
    #[arg(long, global = true, value_name = "N", default_value_t = DEFAULT_MAX_ATTEMPTS)]
    pub max_attempts: u32,
}

impl AwsArgs {
    /// The library's options for these arguments.
    #[must_use]
    pub fn options(&self) -> KmsOptions {
        KmsOptions {
            endpoint_url: self.endpoint_url.clone(),
            region: self.region.clone(),
            profile: self.profile.clone(),
            timeout: self.timeout,
            attempt_timeout: self.attempt_timeout,
            max_attempts: self.max_attempts,
            ..KmsOptions::default()
        }
    }
}

/// A client for the KMS region `opts` name, then one for each of `fallbacks`, in that order:
/// what a `--fallback-region` command signs or reads through.
pub(crate) async fn connect_with_fallbacks(opts: &KmsOptions, fallbacks: &[String]) -> kms_jwt::Result<Vec<KmsClient>> {
    let mut clients = vec![opts.connect().await?];
    for region in fallbacks {
        clients.push(opts.in_region(region).connect().await?);
    }
    Ok(clients)
}
