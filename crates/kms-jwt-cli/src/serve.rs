//! `kms-jwt serve`: the JWKS and discovery documents over HTTP and, with a token policy, the
//! issuer (`POST /token`). The service is `kms-jwt-server`'s; this is its command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use kms_jwt::kms::KmsOptions;
use kms_jwt_server::listener::Limits;
use kms_jwt_server::{ServeConfig, Source, TokenConfig};

/// Serve the JWKS and discovery documents over HTTP, refreshed from KMS in the background
#[derive(Args)]
pub struct ServeArgs {
    /// Key id or ARN, or alias/NAME (or NAME) for a whole key set; repeatable
    #[arg(long, value_name = "KEY", required = true)]
    key: Vec<String>,
    /// The issuer URL, exactly as tokens carry it in iss
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// Address to listen on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// How often to re-read the keys from KMS; also the documents' Cache-Control max-age
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    refresh: Duration,
    /// Read the keys from R, and sign POST /token answers with the key's replica there, when KMS in --region fails (a multi-Region set); repeatable, tried in order
    #[arg(long, value_name = "R")]
    fallback_region: Vec<String>,
    /// Connections open at once; more wait in the listen backlog
    #[arg(long, value_name = "N", default_value_t = Limits::default().total)]
    max_connections: usize,
    /// Connections open at once from one client address (an IPv6 client's /64); more are closed; 0 for none (behind a load balancer)
    #[arg(long, value_name = "N", default_value_t = Limits::default().per_address)]
    max_connections_per_address: usize,
    /// The longest a connection lives (keep-alive included); then its request in flight has 10s to finish
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    connection_lifetime: Duration,

    #[command(flatten)]
    token_issuer: IssuerArgs,
}

/// `POST /token`: AWS identities exchanged for tokens (see docs/ISSUER.md)
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Token issuer (POST /token)")]
pub struct IssuerArgs {
    /// Token policy (TOML) that turns on POST /token; SIGHUP reloads it, and a bad reload keeps the old one
    #[arg(long, value_name = "FILE")]
    token_policy: Option<PathBuf>,
    /// The id proofs must carry, signed, in x-kms-jwt-server-id [default: the issuer URL]
    #[arg(long, value_name = "ID", requires = "token_policy")]
    server_id: Option<String>,
    /// STS region the proofs must name (sts.R.amazonaws.com, or the global sts.amazonaws.com) [default: the KMS region]
    #[arg(long, value_name = "R", requires = "token_policy")]
    sts_region: Option<String>,
    /// Where proofs are sent instead of `https://sts.R.amazonaws.com/` (`LocalStack`): https, or http on a loopback address; never a host a request names
    #[arg(long, value_name = "URL", requires = "token_policy")]
    sts_endpoint_url: Option<String>,
    /// Tokens per principal per minute; also requests per access key id, counted before STS is asked; more get 429
    #[arg(long, value_name = "N", default_value_t = 60)]
    rate_limit: u32,
    /// Requests per client address (an IPv6 client's /64) per minute, counted first; 0 for none (behind a load balancer)
    #[arg(long, value_name = "N", default_value_t = 600)]
    address_rate_limit: u32,
}

/// The issuer URL without a trailing `/`, or an error if it is not http(s).
pub(crate) fn check_issuer(issuer: &str) -> Result<String> {
    anyhow::ensure!(
        issuer.starts_with("https://") || issuer.starts_with("http://"),
        "--issuer must be an http(s) URL, not {issuer:?}"
    );
    Ok(issuer.trim_end_matches('/').to_owned())
}

/// Runs `kms-jwt serve` until SIGTERM or Ctrl-C.
pub async fn run(args: ServeArgs, opts: &KmsOptions) -> Result<ExitCode> {
    let issuer = check_issuer(&args.issuer)?;
    let regions = crate::aws::connect_with_fallbacks(opts, &args.fallback_region).await?;
    let token = args.token_issuer.token_policy.map(|policy| TokenConfig {
        policy,
        server_id: args.token_issuer.server_id,
        sts_region: args.token_issuer.sts_region,
        sts_endpoint: args.token_issuer.sts_endpoint_url,
        rate_limit: args.token_issuer.rate_limit,
        address_rate_limit: args.token_issuer.address_rate_limit,
    });
    let limits = Limits {
        total: args.max_connections.max(1),
        per_address: args.max_connections_per_address,
        lifetime: args.connection_lifetime,
        ..Limits::default()
    };
    let source = Source { keys: args.key, issuer, regions };
    kms_jwt_server::serve(ServeConfig { source, listen: args.listen, refresh: args.refresh, token, limits }).await?;
    Ok(ExitCode::SUCCESS)
}
