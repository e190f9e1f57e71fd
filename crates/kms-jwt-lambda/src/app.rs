//! The issuer function's routes: `kms-jwt serve`'s router, with the invocation's caller as
//! the identity.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use kms_jwt::Signer as _;
use kms_jwt::failover::FailoverSigner;
use kms_jwt::issuer::{Issuer, IssuerConfig, TokenPolicy};
use kms_jwt::kms::KmsClient;
use kms_jwt_server::{Served, Source, TokenRoute};

use lambda_http::request::RequestContext;

use crate::config::Config;
use crate::identity::IamInvocation;

/// The router for `config`: the documents of its key set (read once, at start-up: a cold
/// start resolves the key once per container) and `POST /token` under `policy` (TOML).
/// `kms` holds the function's region first, then the fallback regions.
pub async fn issuer_app(config: &Config, kms: Vec<KmsClient>, policy: &str) -> Result<axum::Router> {
    let source = Source::new(vec![config.key.clone()], config.issuer.clone(), kms.clone());
    let served = Served::load(&source, Duration::from_secs(config.max_age)).await?;
    let signer = Arc::new(FailoverSigner::builder(kms, &config.key).build().await?);
    let policy = TokenPolicy::from_toml(policy, signer.max_token_ttl()).context("the token policy is invalid")?;
    // No client address reaches a function (AWS is the client): the per-principal and
    // per-access-key limits apply, the per-address one cannot.
    let settings =
        IssuerConfig { rate_limit: config.rate_limit, address_rate_limit: 0, ..IssuerConfig::new(&config.issuer) };
    let issuer = Issuer::new(settings, IamInvocation, policy, signer)?;
    let routes = kms_jwt_server::router(served, Some(Arc::new(TokenRoute::new(Arc::new(issuer)))));
    // Middleware on a router runs after its routing: the stage comes off in an outer router
    // whose only route is the inner one.
    Ok(axum::Router::new().fallback_service(routes).layer(axum::middleware::map_request(without_stage)))
}

/// The request with its API Gateway stage taken off the path: `lambda_http` puts a REST API's
/// stage (and an HTTP API's named one) in front of the path, `/prod/token`, and the routes are
/// the same whatever the stage.
async fn without_stage(mut request: axum::extract::Request) -> axum::extract::Request {
    let stage = match request.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV1(context)) => context.stage.clone(),
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|s| s != "$default") else { return request };
    let uri = request.uri();
    let Some(rest) = uri.path().strip_prefix(&format!("/{stage}")).filter(|rest| rest.starts_with('/')) else {
        return request;
    };
    let path_and_query = match uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    if let Ok(stripped) = axum::http::Uri::builder().path_and_query(path_and_query).build() {
        *request.uri_mut() = stripped;
    }
    request
}
