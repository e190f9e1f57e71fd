//! kms-jwt's HTTP service, as `kms-jwt serve` runs it: the JWKS and discovery documents,
//! refreshed from KMS in the background and served from memory, and with a token policy the
//! issuer, `POST /token`; over HTTP/1.1, or TLS with HTTP/2; with readiness, a graceful drain
//! and Prometheus metrics.
//!
//! [`router`] builds the routes from their state, for any transport; [`serve`] runs them on a
//! TCP listener with [`listener::Limits`] until SIGTERM or Ctrl-C.

mod audit;
mod documents;
mod issuer;
pub mod listener;
mod metrics;
mod probe;
mod tls;
mod token;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use kms_jwt::publish::{JWKS_PATH, OPENID_CONFIGURATION_PATH};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::documents::Readiness;
pub use documents::{Served, Source};
pub use issuer::TokenConfig;
pub use metrics::Metrics;
pub use probe::{Probe, probe};
pub use tls::TlsFiles;
pub use token::{DEFAULT_MAX_IN_FLIGHT, FromTokenRequest, MAX_REQUEST_BYTES, TokenRoute};

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where the documents come from.
    pub source: Source,
    /// The address to listen on.
    pub listen: SocketAddr,
    /// How often the keys are re-read; also the documents' `Cache-Control` max-age.
    pub refresh: Duration,
    /// `POST /token`, when a policy is given.
    pub token: Option<TokenConfig>,
    /// Connection limits.
    pub limits: listener::Limits,
    /// TLS on the listener; plain HTTP without.
    pub tls: Option<TlsFiles>,
    /// How long requests in flight have to finish once SIGTERM arrives.
    pub drain_timeout: Duration,
    /// Where `/metrics` is served, apart from the public listener; none without.
    pub metrics_listen: Option<SocketAddr>,
}

/// How the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Requests still in flight when the drain timeout ran out (0: every request was answered).
    pub cut: usize,
}

/// How the server's own messages are written: `kms-jwt: ...` lines, or through `tracing` (which
/// the binary sets up as JSON).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One `kms-jwt: ` line per message on stderr.
    #[default]
    Text,
    /// Every message a `tracing` event at level INFO or above.
    Json,
}

static LOG_FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Sets how the server's messages are written, once, before [`serve`].
pub fn set_log_format(format: LogFormat) {
    let _ = LOG_FORMAT.set(format);
}

/// The routes: the two documents, the probes, and `POST /token` when there is an issuer.
pub fn router<A: FromTokenRequest>(served: Served, token: Option<Arc<TokenRoute<A>>>) -> Router {
    router_with(served, token, Arc::new(ready()))
}

fn ready() -> Readiness {
    let readiness = Readiness::default();
    readiness.started();
    readiness
}

fn router_with<A: FromTokenRequest>(
    served: Served,
    token: Option<Arc<TokenRoute<A>>>,
    readiness: Arc<Readiness>,
) -> Router {
    let mut app = Router::new()
        .route(JWKS_PATH, get(documents::jwks))
        .route(OPENID_CONFIGURATION_PATH, get(documents::openid_configuration))
        .route("/healthz", get(documents::healthz))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(served)
        .merge(probes(readiness));
    if let Some(route) = token {
        app = app.merge(Router::new().route("/token", post(token::token::<A>)).with_state(route));
    }
    app
}

fn probes(readiness: Arc<Readiness>) -> Router {
    Router::new().route("/readyz", get(documents::readyz)).with_state(readiness)
}

/// What is served while the keys load: the probes, and 503 for the rest.
fn starting(readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(documents::healthz_starting))
        .fallback(documents::starting)
        .merge(probes(readiness))
}

/// Runs the service until SIGTERM or Ctrl-C, then drains. What can be checked without KMS (the
/// policy file, the TLS pair, the addresses) fails here, before anything listens. Then it
/// listens, `/readyz` 503, while it loads the keys and starts the issuer, retrying while KMS is
/// unreachable; a wrong key stops it.
pub async fn serve(config: ServeConfig) -> Result<Stopped> {
    let ServeConfig { source, listen, refresh, token, limits, tls, drain_timeout, metrics_listen } = config;
    // Taken first: a signal while the server starts is handled, not fatal.
    let hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    // Every connection is a file, and so is every KMS and STS connection: a soft limit of
    // 1,024 would refuse them long before `--max-connections`.
    listener::raise_open_files_limit();
    if let Some(token) = &token {
        issuer::check(token, source.issuer(), source.regions())?;
    }
    let certificates = tls.map(tls::Certificates::load).transpose()?.map(Arc::new);
    // Nothing is counted without a listener to read the counts from.
    let metrics = metrics_listen.map(|_| Arc::new(Metrics::new()));
    let source = match &metrics {
        Some(metrics) => source.observed(&metrics.kms_observer()),
        None => source,
    };
    let public = listener::Listener {
        tcp: tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?,
        tls: certificates.as_ref().map(tls::Certificates::acceptor).transpose()?,
        limits,
        metrics: metrics.clone(),
        activity: Arc::default(),
    };
    let mut background = Vec::new();
    if let (Some(address), Some(metrics)) = (metrics_listen, &metrics) {
        metrics.watch_listener(&public.activity);
        background.push(serve_metrics(address, metrics.clone()).await?);
    }
    let url = format!("{}://{}", if certificates.is_some() { "https" } else { "http" }, public.tcp.local_addr()?);
    if certificates.is_none() {
        say("serving plain HTTP: TLS is expected in front (a load balancer), or pass --tls-cert and --tls-key");
    }

    let readiness = Arc::new(Readiness::default());
    let (stop, stopping) = tokio::sync::watch::channel(false);
    background.push(tokio::spawn(on_terminate(terminate, stop, readiness.clone())));
    let running = Arc::new(OnceLock::new());
    background.push(tokio::spawn(reload_on(hup, certificates, running.clone())));
    let app = Arc::new(listener::App::new(starting(readiness.clone())));
    let server = tokio::spawn(public.serve(app.clone(), stopped(stopping.clone()), drain_timeout));
    say(&format!("starting on {url}: /readyz answers 503 until the keys are loaded"));

    let started = tokio::select! {
        started = start(&source, token.as_ref(), refresh) => Some(started?),
        () = stopped(stopping.clone()) => None,
    };
    if let Some((served, issuer)) = started {
        if let Some(metrics) = &metrics {
            metrics.watch_documents(&served, &source);
        }
        background.push(tokio::spawn(served.clone().refresh(source, refresh)));
        let route = issuer.as_ref().map(|issuer| {
            let _ = running.set(issuer.clone());
            background.push(tokio::spawn(issuer.clone().follow_rotations(served.clone(), refresh)));
            let limit = token.as_ref().map_or(DEFAULT_MAX_IN_FLIGHT, |t| t.max_in_flight);
            let route = TokenRoute::new(issuer.issuer.clone()).max_in_flight(limit);
            Arc::new(match &metrics {
                Some(metrics) => {
                    metrics.watch_issuer(issuer);
                    route.with_metrics(metrics.clone())
                }
                None => route,
            })
        });
        app.ready(router_with::<kms_jwt::issuer::StsProofs>(served, route, readiness.clone()));
        readiness.started();
        say(&format!("listening on {url}"));
    }
    let cut = server.await.context("the server stopped")?;
    if cut > 0 {
        let requests = if cut == 1 { "request" } else { "requests" };
        say(&format!("drain timed out after {}: {cut} {requests} cut", humantime::format_duration(drain_timeout)));
    } else {
        say("drained: every request answered");
    }
    for task in background {
        task.abort();
    }
    audit::flush(Duration::from_secs(2));
    Ok(Stopped { cut })
}

/// Loads the documents and starts the issuer, again and again while KMS is unreachable (a
/// replica that starts during an outage serves once KMS answers); any other error is final.
async fn start(
    source: &Source,
    token: Option<&TokenConfig>,
    refresh: Duration,
) -> Result<(Served, Option<Arc<issuer::Running>>)> {
    let mut wait = Duration::from_secs(1);
    loop {
        let attempt = async {
            let issuer = match token {
                Some(token) => {
                    let proofs = issuer::check(token, source.issuer(), source.regions())?;
                    let key = source.keys().first().context("no key to sign with")?;
                    Some(Arc::new(issuer::Running::start(token, proofs, source.issuer(), key, source.regions()).await?))
                }
                None => None,
            };
            let loaded = source.load_all().await?;
            anyhow::Ok((Served::new(loaded, refresh), issuer))
        };
        match attempt.await {
            Ok(started) => return Ok(started),
            Err(e) if is_outage(&e) => {
                say(&format!("kms is unreachable, retrying in {}: {e:#}", humantime::format_duration(wait)));
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e),
        }
    }
}

fn is_outage(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| cause.downcast_ref::<kms_jwt::Error>().is_some_and(kms_jwt::Error::is_outage))
}

/// Serves `/metrics` on `address`, apart from the public listener, until the process ends.
async fn serve_metrics(address: SocketAddr, metrics: Arc<Metrics>) -> Result<tokio::task::JoinHandle<()>> {
    let tcp = tokio::net::TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?;
    say(&format!("metrics on http://{}/metrics", tcp.local_addr()?));
    let routes = Router::new()
        .route("/metrics", get(|headers: axum::http::HeaderMap| async move { metrics.render(&headers) }))
        .fallback(|| async { StatusCode::NOT_FOUND });
    let app = Arc::new(listener::App::new(routes));
    let limits = listener::Limits { total: 64, per_address: 0, ..listener::Limits::default() };
    let listener = listener::Listener { tcp, tls: None, limits, metrics: None, activity: Arc::default() };
    Ok(tokio::spawn(async move {
        listener.serve(app, std::future::pending(), Duration::ZERO).await;
    }))
}

/// On SIGTERM or Ctrl-C: not ready from now on, and the listener starts draining.
async fn on_terminate(mut terminate: Signal, stop: tokio::sync::watch::Sender<bool>, readiness: Arc<Readiness>) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate.recv() => {},
    }
    readiness.draining();
    say("draining: no new connections; requests in flight finish");
    let _ = stop.send(true);
}

/// Completes once the server is told to stop.
async fn stopped(mut stopping: tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// On every SIGHUP: the TLS pair and the token policy are read again; what fails to load keeps
/// what was in force.
async fn reload_on(
    mut hup: Signal,
    certificates: Option<Arc<tls::Certificates>>,
    running: Arc<OnceLock<Arc<issuer::Running>>>,
) {
    while hup.recv().await.is_some() {
        if let Some(certificates) = &certificates {
            match certificates.reload() {
                Ok(()) => say("TLS certificate reloaded"),
                Err(e) => say(&format!("TLS certificate not reloaded, the old one stays in use: {e:#}")),
            }
        }
        match running.get() {
            Some(running) => running.reload(),
            None if certificates.is_none() => say("SIGHUP: nothing to reload (no token policy, no TLS)"),
            None => {}
        }
    }
}

/// One message for people: a `kms-jwt: ` line on stderr, or an INFO event in JSON.
fn say(message: &str) {
    match LOG_FORMAT.get().copied().unwrap_or_default() {
        LogFormat::Text => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("kms-jwt: {message}");
            }
        }
        LogFormat::Json => tracing::info!(target: "kms_jwt", "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    async fn readyz(app: &Router) -> (StatusCode, String) {
        let response = app.clone().oneshot(Request::get("/readyz").body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readyz_is_503_until_started_and_from_the_moment_the_drain_begins() {
        let readiness = Arc::new(Readiness::default());
        let app = starting(readiness.clone());
        assert_eq!(readyz(&app).await, (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"starting"}"#.into()));
        readiness.started();
        assert_eq!(readyz(&app).await, (StatusCode::OK, r#"{"status":"ready"}"#.into()));
        readiness.draining();
        assert_eq!(readyz(&app).await, (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"draining"}"#.into()));
    }
}
