//! `kms-jwt serve`: the JWKS and discovery documents over HTTP(S) and, with a token policy, the
//! issuer (`POST /token`); and `kms-jwt health`, its probe. The service is `kms-jwt-server`'s;
//! this is its command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use kms_jwt::kms::KmsOptions;
use kms_jwt_server::listener::Limits;
use kms_jwt_server::{LogFormat, ServeConfig, Source, TlsFiles, TokenConfig};

/// Serve the JWKS and discovery documents over HTTP(S), refreshed from KMS in the background
///
/// SIGTERM or Ctrl-C drains: no new connections, /readyz 503, requests in flight finish within
/// --drain-timeout (exit 0), or are cut (exit 1). SIGHUP reloads the token policy and the TLS
/// certificate.
#[derive(Args)]
pub struct ServeArgs {
    /// Key id or ARN, or alias/NAME (or NAME) for a whole key set; repeatable
    #[arg(long, value_name = "KEY", required = true)]
    key: Vec<String>,
    /// The issuer URL, exactly as tokens carry it in iss
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// Address to listen on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080", env = "KMS_JWT_LISTEN")]
    listen: SocketAddr,
    /// How often to re-read the keys from KMS; also the documents' Cache-Control max-age
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = positive_duration)]
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
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = positive_duration)]
    connection_lifetime: Duration,
    /// On SIGTERM, how long requests in flight have to finish before they are cut
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// Serve HTTPS (TLS 1.3 and 1.2, HTTP/2 and HTTP/1.1) with this certificate chain (PEM); SIGHUP reloads it
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve Prometheus metrics at /metrics on ADDR (plain HTTP), apart from the public listener
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// How the server's messages are written (audit lines are JSON either way)
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: LogFormatArg,

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
    /// Requests decided at once (each holds an STS call); more get 503 at once
    #[arg(long, value_name = "N", default_value_t = kms_jwt_server::DEFAULT_MAX_IN_FLIGHT)]
    max_token_requests: usize,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormatArg {
    /// `kms-jwt: ` lines
    Text,
    /// One JSON object per line
    Json,
}

impl ServeArgs {
    /// Whether the server logs JSON: the binary sets up its log output before it runs.
    #[must_use]
    pub fn json_logs(&self) -> bool {
        self.log_format == LogFormatArg::Json
    }
}

/// A duration above zero: a refresh or a connection lifetime of 0 would spin or close every
/// connection at once.
fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be longer than 0s".to_owned()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// The issuer URL without a trailing `/`, or an error if it is not http(s).
pub(crate) fn check_issuer(issuer: &str) -> Result<String> {
    anyhow::ensure!(
        issuer.starts_with("https://") || issuer.starts_with("http://"),
        "--issuer must be an http(s) URL, not {issuer:?}"
    );
    Ok(issuer.trim_end_matches('/').to_owned())
}

/// Runs `kms-jwt serve` until SIGTERM or Ctrl-C, then drains: exit 0 if every request in
/// flight was answered, 1 if some were cut.
pub async fn run(args: ServeArgs, opts: &KmsOptions) -> Result<ExitCode> {
    kms_jwt_server::set_log_format(if args.json_logs() { LogFormat::Json } else { LogFormat::Text });
    let issuer = check_issuer(&args.issuer)?;
    let regions = crate::aws::connect_with_fallbacks(opts, &args.fallback_region).await?;
    let token = args.token_issuer.token_policy.map(|policy| TokenConfig {
        policy,
        server_id: args.token_issuer.server_id,
        sts_region: args.token_issuer.sts_region,
        sts_endpoint: args.token_issuer.sts_endpoint_url,
        rate_limit: args.token_issuer.rate_limit,
        address_rate_limit: args.token_issuer.address_rate_limit,
        max_in_flight: args.token_issuer.max_token_requests,
    });
    let limits = Limits {
        total: args.max_connections.max(1),
        per_address: args.max_connections_per_address,
        lifetime: args.connection_lifetime,
        ..Limits::default()
    };
    let tls = args.tls_cert.zip(args.tls_key).map(|(cert, key)| TlsFiles { cert, key });
    let config = ServeConfig {
        source: Source::new(args.key, issuer, regions),
        listen: args.listen,
        refresh: args.refresh,
        token,
        limits,
        tls,
        drain_timeout: args.drain_timeout,
        metrics_listen: args.metrics_listen,
    };
    let stopped = kms_jwt_server::serve(config).await?;
    Ok(if stopped.cut > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Ask a running `kms-jwt serve` whether it is ready: exit 0 on a 2xx answer, 1 on another, 2 on none
///
/// For a container's HEALTHCHECK, which has no curl: without --url it asks /readyz at the address
/// serve listens on in the same environment (`KMS_JWT_LISTEN`, 0.0.0.0 asked as 127.0.0.1).
#[derive(Args)]
pub struct HealthArgs {
    /// The probe to GET [default: /readyz over HTTP at `KMS_JWT_LISTEN`, else at 127.0.0.1:8080]
    #[arg(long, value_name = "URL", env = "KMS_JWT_HEALTH_URL")]
    url: Option<String>,
    /// The CA of the server's certificate (PEM) [default: the system's roots]
    #[arg(long, value_name = "FILE", env = "KMS_JWT_HEALTH_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// The name the certificate must carry, when it is not the URL's host
    #[arg(long, value_name = "NAME", env = "KMS_JWT_HEALTH_SERVER_NAME")]
    server_name: Option<String>,
    /// Give up after this long
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// `/readyz` at the address `serve` would listen on here.
fn default_health_url() -> String {
    let listen = std::env::var("KMS_JWT_LISTEN").ok().and_then(|a| a.parse::<SocketAddr>().ok());
    let mut addr = listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    format!("http://{addr}/readyz")
}

/// Runs `kms-jwt health`.
pub async fn health(args: HealthArgs) -> Result<ExitCode> {
    let url = args.url.unwrap_or_else(default_health_url);
    let probe = kms_jwt_server::Probe {
        url: &url,
        ca_file: args.ca_file.as_deref(),
        server_name: args.server_name.as_deref(),
        timeout: args.timeout,
    };
    let status = kms_jwt_server::probe(&probe).await?;
    if (200..300).contains(&status) {
        return Ok(ExitCode::SUCCESS);
    }
    crate::say(&format!("{url} answered {status}"));
    Ok(ExitCode::from(1))
}
