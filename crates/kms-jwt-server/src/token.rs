//! `POST /token` over HTTP: a bounded body read within a deadline, then (and only then) one of
//! a bounded number of in-flight permits, then the [`Issuer`]. Every answer is JSON, every
//! decision one audit line on stderr, and the request id is in both.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kms_jwt::issuer::{
    AuditDecision, AuditRecord, Authenticator, ClientInfo, Issuer, Refusal, RefusalKind, StsProofs, TokenAsk,
    TokenRequest,
};
use tokio::sync::Semaphore;

use crate::audit;
use crate::metrics::Metrics;

/// The largest `/token` request body: room for a proof with a long session token.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// How long a client has to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests decided at once by default; more get 503 at once rather than queueing.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

/// How a transport finds the credential in a `/token` request: the body's proof for `serve`,
/// the invocation's verified identity for a Lambda function.
pub trait FromTokenRequest: Authenticator {
    /// The ask and the credential, from the request's head and its (bounded) body.
    fn read(parts: &axum::http::request::Parts, body: &[u8]) -> Result<(TokenAsk, Self::Credential), Refusal>;
}

impl FromTokenRequest for StsProofs {
    fn read(_: &axum::http::request::Parts, body: &[u8]) -> Result<(TokenAsk, Self::Credential), Refusal> {
        let request: TokenRequest = serde_json::from_slice(body).map_err(|_| {
            Refusal::new(RefusalKind::Malformed, "malformed request: expected {\"audience\", \"ttl\"?, \"proof\"}")
        })?;
        Ok((TokenAsk { audience: request.audience, ttl: request.ttl }, request.proof))
    }
}

/// The issuer behind the route, and its in-flight permits.
pub struct TokenRoute<A: Authenticator> {
    issuer: Arc<Issuer<A>>,
    in_flight: Semaphore,
    metrics: Option<Arc<Metrics>>,
}

impl<A: Authenticator> TokenRoute<A> {
    /// A route for `issuer`.
    #[must_use]
    pub fn new(issuer: Arc<Issuer<A>>) -> TokenRoute<A> {
        TokenRoute { issuer, in_flight: Semaphore::new(DEFAULT_MAX_IN_FLIGHT), metrics: None }
    }

    /// Decides at most `n` requests at once (default [`DEFAULT_MAX_IN_FLIGHT`]); more get 503
    /// at once: each holds an STS call, and perhaps a KMS one.
    #[must_use]
    pub fn max_in_flight(mut self, n: usize) -> TokenRoute<A> {
        self.in_flight = Semaphore::new(n.max(1));
        self
    }

    /// Counts every decision in `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> TokenRoute<A> {
        self.metrics = Some(metrics);
        self
    }

    fn count(&self, result: Result<(), &Refusal>, rule: Option<usize>) {
        if let Some(metrics) = &self.metrics {
            metrics.decision(result, rule);
        }
    }
}

/// `POST /token`.
pub(crate) async fn token<A: FromTokenRequest>(State(route): State<Arc<TokenRoute<A>>>, request: Request) -> Response {
    let request_id = request_id();
    let address = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let client = ClientInfo { address, request_id: request_id.clone() };
    let (parts, body) = request.into_parts();
    let record = |refusal: &Refusal| AuditRecord {
        decision: if refusal.kind == RefusalKind::Unavailable { AuditDecision::Error } else { AuditDecision::Deny },
        reason: refusal.message.clone(),
        ..AuditRecord::new(&client)
    };
    let refuse = |refusal: Refusal| {
        audit::emit(&record(&refusal));
        route.count(Err(&refusal), None);
        answer(&request_id, Err(refusal))
    };
    // The address's rate before anything is read: a flood from one address costs no more than
    // this, and leaves one audit line a minute, not one per request.
    if let Err((refusal, first)) = route.issuer.admit(&client) {
        if first {
            audit::emit(&record(&refusal));
        }
        route.count(Err(&refusal), None);
        return answer(&request_id, Err(refusal));
    }
    // The body next: a slow client holds its connection, not one of the permits.
    let bytes = match read_body(body).await {
        Ok(bytes) => bytes,
        Err(refusal) => return refuse(refusal),
    };
    let Ok(_permit) = route.in_flight.try_acquire() else {
        return refuse(Refusal::retry(
            RefusalKind::Unavailable,
            "the issuer is busy, retry shortly",
            Duration::from_secs(1),
        ));
    };
    let (ask, credential) = match A::read(&parts, &bytes) {
        Ok(read) => read,
        Err(refusal) => return refuse(refusal),
    };
    let outcome = route.issuer.issue(&ask, &credential, &client).await;
    audit::emit(&outcome.audit);
    route.count(outcome.result.as_ref().map(|_| ()), outcome.audit.rule);
    answer(&request_id, outcome.result.map(|issued| (issued.token, issued.expires_at)))
}

async fn read_body(body: Body) -> Result<axum::body::Bytes, Refusal> {
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_REQUEST_BYTES)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(Refusal::new(RefusalKind::Malformed, "request body too large or unreadable")),
        Err(_) => Err(Refusal::new(RefusalKind::Malformed, "request body too slow")),
    }
}

/// A random request id: 16 hex digits.
fn request_id() -> String {
    let mut bytes = [0u8; 8];
    // A request id is no secret; a failed RNG gives the same id to requests, nothing worse.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes.iter().fold(String::with_capacity(16), |mut id, b| {
        use std::fmt::Write as _;
        let _ = write!(id, "{b:02x}");
        id
    })
}

/// The HTTP answer: 200 with the token, or the refusal's status and `{"error"}`.
fn answer(request_id: &str, result: Result<(String, i64), Refusal>) -> Response {
    let mut response = match result {
        Ok((token, expires_at)) => {
            let body = serde_json::json!({ "token": token, "expires_at": expires_at });
            (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], body.to_string()).into_response()
        }
        Err(refusal) => {
            let status = match refusal.kind {
                RefusalKind::Malformed => StatusCode::BAD_REQUEST,
                RefusalKind::Unauthenticated => StatusCode::UNAUTHORIZED,
                RefusalKind::Forbidden => StatusCode::FORBIDDEN,
                RefusalKind::Limited => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            let body = serde_json::json!({ "error": refusal.message });
            let mut response = (status, body.to_string()).into_response();
            if let Some(after) = refusal.retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs().max(1)));
            }
            response
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", id);
    }
    response
}
