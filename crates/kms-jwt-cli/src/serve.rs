//! `kms-jwt publish` and `kms-jwt serve`: the JWKS and discovery documents for third parties.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Args;
use kms_jwt::kms::{KmsClient, KmsOptions};
use kms_jwt::publish::{self, Documents, JWKS_PATH, OPENID_CONFIGURATION_PATH};

/// Write .well-known/jwks.json and .well-known/openid-configuration for static hosting
#[derive(Args)]
pub struct PublishArgs {
    /// Key id or ARN, or alias/NAME (or NAME) for a whole key set; repeatable
    #[arg(long, value_name = "KEY", required = true)]
    key: Vec<String>,
    /// The issuer URL, exactly as tokens carry it in iss (for example `https://auth.example.com`)
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// Directory to write .well-known/ into
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// Cache lifetime to recommend for the hosted files, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    max_age: u64,
}

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

    #[command(flatten)]
    token_issuer: crate::issue::IssuerArgs,
}

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection lives, keep-alive included: a slow client cannot hold one for ever.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 1024;
/// The most request-head bytes hyper buffers.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The issuer URL without a trailing `/`, or an error if it is not http(s).
pub(crate) fn check_issuer(issuer: &str) -> Result<String> {
    anyhow::ensure!(
        issuer.starts_with("https://") || issuer.starts_with("http://"),
        "--issuer must be an http(s) URL, not {issuer:?}"
    );
    Ok(issuer.trim_end_matches('/').to_owned())
}

async fn documents(keys: &[String], issuer: &str, kms: &KmsClient) -> Result<Documents> {
    let jwks = crate::keys::fetch_jwks(keys, None, kms).await?;
    Ok(Documents::new(issuer, &jwks))
}

/// The documents from the first region that answers, in order: every region of a multi-Region
/// set publishes the same keys. An error that is not an outage (a wrong key) is not passed over.
async fn documents_from(keys: &[String], issuer: &str, regions: &[KmsClient]) -> Result<Documents> {
    let mut last = None;
    for kms in regions {
        match documents(keys, issuer, kms).await {
            Ok(docs) => return Ok(docs),
            Err(e) if e.chain().any(|c| c.downcast_ref::<kms_jwt::Error>().is_some_and(kms_jwt::Error::is_outage)) => {
                tracing::warn!(region = kms.region(), error = %format!("{e:#}"), "kms is unavailable; reading the next region");
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no region to read the keys from")))
}

/// Runs `kms-jwt publish`.
pub async fn publish(args: PublishArgs, opts: &KmsOptions) -> Result<ExitCode> {
    let issuer = check_issuer(&args.issuer)?;
    let docs = documents(&args.key, &issuer, &opts.connect().await?).await?;
    let dir = args.out_dir.join(".well-known");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, bytes) in [("jwks.json", &docs.jwks), ("openid-configuration", &docs.openid_configuration)] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "kms-jwt: wrote {dir}/jwks.json and {dir}/openid-configuration; serve both as application/json with \
             Cache-Control: {} and re-publish after every rotation",
            publish::cache_control(args.max_age),
            dir = dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What the server knows: the last good documents and how the last refresh went.
struct Published {
    docs: Documents,
    refreshed_at: SystemTime,
    last_error: Option<String>,
}

#[derive(Clone)]
struct AppState {
    published: Arc<RwLock<Published>>,
    cache_control: HeaderValue,
}

/// Runs `kms-jwt serve` until SIGTERM or Ctrl-C.
pub async fn serve(args: ServeArgs, opts: &KmsOptions) -> Result<ExitCode> {
    let issuer = check_issuer(&args.issuer)?;
    let regions = crate::aws::connect_with_fallbacks(opts, &args.fallback_region).await?;
    // Start only with something good to serve: a typo in --key fails here, not at the first fetch.
    let docs = documents_from(&args.key, &issuer, &regions).await?;
    let state = AppState {
        published: Arc::new(RwLock::new(Published { docs, refreshed_at: SystemTime::now(), last_error: None })),
        cache_control: HeaderValue::from_str(&publish::cache_control(args.refresh.as_secs())).context("max-age")?,
    };
    let refresher = tokio::spawn(refresh_loop(
        args.key.clone(),
        issuer.clone(),
        regions.clone(),
        args.refresh,
        state.published.clone(),
    ));

    let mut app = Router::new()
        .route(JWKS_PATH, get(jwks))
        .route(OPENID_CONFIGURATION_PATH, get(openid_configuration))
        .route("/healthz", get(healthz))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state);
    // The issuer signs with the first key: a set's current key when it names a set.
    if let Some(token_issuer) = crate::issue::Issuer::start(&args.token_issuer, &issuer, &args.key[0], &regions).await?
    {
        let token_issuer = Arc::new(token_issuer);
        tokio::spawn(crate::issue::reload_on_sighup(token_issuer.clone()));
        tokio::spawn(crate::issue::follow_rotations(token_issuer.clone(), args.refresh));
        app = app.merge(Router::new().route("/token", post(crate::issue::token)).with_state(token_issuer));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "serving");
    #[allow(clippy::print_stderr)]
    {
        eprintln!("kms-jwt: listening on http://{}", listener.local_addr()?);
    }
    accept_loop(listener, app).await;
    refresher.abort();
    Ok(ExitCode::SUCCESS)
}

/// Serves connections until SIGTERM or Ctrl-C, each with a deadline for its request head and a
/// lifetime, and at most [`MAX_CONNECTIONS`] at once (`axum::serve` has neither deadline).
async fn accept_loop(listener: tokio::net::TcpListener, app: Router) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors or a connection reset before accept: keep serving.
                Err(_) => continue,
            },
            () = &mut shutdown => return,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).max_buf_size(MAX_HEAD_BYTES);
            let _ =
                tokio::time::timeout(CONNECTION_LIFETIME, http.serve_connection(TokioIo::new(stream), service)).await;
        });
    }
}

async fn refresh_loop(
    keys: Vec<String>,
    issuer: String,
    regions: Vec<KmsClient>,
    every: Duration,
    published: Arc<RwLock<Published>>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let result = documents_from(&keys, &issuer, &regions).await;
        let mut guard = published.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match result {
            Ok(docs) => {
                if docs != guard.docs {
                    tracing::info!("keys changed; serving the new set");
                }
                *guard = Published { docs, refreshed_at: SystemTime::now(), last_error: None };
            }
            Err(e) => {
                let message = format!("{e:#}");
                tracing::warn!(error = %message, "refresh from KMS failed; still serving the last good set");
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("kms-jwt: refresh from KMS failed, still serving the last good set: {message}");
                }
                guard.last_error = Some(message);
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

fn document(state: &AppState, request: &HeaderMap, pick: fn(&Documents) -> (&Vec<u8>, &String)) -> Response {
    let guard = state.published.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (body, etag) = pick(&guard.docs);
    let etag_value = HeaderValue::from_str(etag).expect("base64url ETag is a valid header value");
    let not_modified = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, etag_value);
    headers.insert(header::CACHE_CONTROL, state.cache_control.clone());
    if not_modified {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    (StatusCode::OK, headers, body.clone()).into_response()
}

async fn jwks(State(state): State<AppState>, headers: HeaderMap) -> Response {
    document(&state, &headers, |d| (&d.jwks, &d.jwks_etag))
}

async fn openid_configuration(State(state): State<AppState>, headers: HeaderMap) -> Response {
    document(&state, &headers, |d| (&d.openid_configuration, &d.openid_configuration_etag))
}

async fn healthz(State(state): State<AppState>) -> Response {
    let guard = state.published.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    let age = guard.refreshed_at.elapsed().unwrap_or_default().as_secs();
    let body = match &guard.last_error {
        None => serde_json::json!({ "status": "ok", "last_refresh_secs_ago": age }),
        Some(error) => serde_json::json!({ "status": "stale", "last_refresh_secs_ago": age, "error": error }),
    };
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}
