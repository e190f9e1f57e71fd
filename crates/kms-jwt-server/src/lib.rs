//! kms-jwt's HTTP service, as `kms-jwt serve` runs it: the JWKS and discovery documents,
//! refreshed from KMS in the background and served from memory, and with a token policy the
//! issuer, `POST /token`.
//!
//! [`router`] builds the routes from their state, for any transport; [`serve`] runs them on a
//! TCP listener with [`listener::Limits`] until SIGTERM or Ctrl-C.

mod audit;
mod documents;
mod issuer;
pub mod listener;
mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use kms_jwt::publish::{JWKS_PATH, OPENID_CONFIGURATION_PATH};

pub use documents::{Served, Source};
pub use issuer::TokenConfig;
pub use token::{FromTokenRequest, MAX_REQUEST_BYTES, TokenRoute};

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
}

/// The routes: the two documents, `/healthz`, and `POST /token` when there is an issuer.
pub fn router<A: FromTokenRequest>(served: Served, token: Option<Arc<TokenRoute<A>>>) -> Router {
    let mut app = Router::new()
        .route(JWKS_PATH, get(documents::jwks))
        .route(OPENID_CONFIGURATION_PATH, get(documents::openid_configuration))
        .route("/healthz", get(documents::healthz))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(served);
    if let Some(route) = token {
        app = app.merge(Router::new().route("/token", post(token::token::<A>)).with_state(route));
    }
    app
}

/// Runs the service until SIGTERM or Ctrl-C. It starts only with something good to serve: a
/// bad policy or a typo in a key fails here, not at the first request.
pub async fn serve(config: ServeConfig) -> Result<()> {
    let ServeConfig { source, listen, refresh, token, limits } = config;
    // Taken first: a SIGHUP while the server starts is kept for later, not fatal.
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let issuer = match &token {
        Some(token) => {
            let key = source.keys.first().context("no key to sign with")?;
            Some(Arc::new(issuer::Running::start(token, &source.issuer, key, &source.regions).await?))
        }
        None => None,
    };
    let served = Served::new(source.load().await?, refresh);
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let route = issuer.as_ref().map(|running| Arc::new(TokenRoute::new(running.issuer.clone())));
    let app = router::<kms_jwt::issuer::StsProofs>(served.clone(), route);
    let refresher = tokio::spawn(served.clone().refresh(source, refresh));
    let mut background = vec![refresher];
    if let Some(running) = issuer {
        background.push(tokio::spawn(running.clone().reload_on(hup)));
        background.push(tokio::spawn(running.follow_rotations(served.clone(), refresh)));
    } else {
        background.push(tokio::spawn(ignore(hup)));
    }
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "serving");
    say(&format!("listening on http://{addr}"));
    listener::serve(listener, app, limits, shutdown_signal()).await;
    for task in background {
        task.abort();
    }
    Ok(())
}

/// A server without a policy has nothing to reload.
async fn ignore(mut hup: tokio::signal::unix::Signal) {
    while hup.recv().await.is_some() {
        say("SIGHUP: no token policy to reload");
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// One line on stderr, `kms-jwt: ` first, as every message the command line gives people.
fn say(message: &str) {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("kms-jwt: {message}");
    }
}
