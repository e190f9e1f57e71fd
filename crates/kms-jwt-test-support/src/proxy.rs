//! An HTTP proxy with fault hooks, in front of `LocalStack` (KMS, STS) or `kms-jwt serve`: it
//! records every request and the status of each answer, and a hook decides per request to
//! forward it, answer it itself, never answer, or rewrite the upstream's answer. A hook keeps
//! its own state (a counter, a [`Switch`]). It runs on its own thread and runtime, so that
//! blocking and async callers use it alike.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// 0 for the first request, then 1, 2, ...
    pub n: usize,
    /// The method.
    pub method: Method,
    /// The path.
    pub path: String,
    /// The request's headers.
    pub headers: HeaderMap,
    /// The request body.
    pub body: Bytes,
}

impl Exchange {
    /// The AWS operation: `X-Amz-Target`'s last part (KMS), else the form body's `Action` (STS).
    pub fn operation(&self) -> String {
        if let Some(target) = self.headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
            return target.rsplit('.').next().unwrap_or("").to_owned();
        }
        String::from_utf8_lossy(&self.body)
            .split('&')
            .find_map(|field| field.strip_prefix("Action="))
            .unwrap_or("")
            .to_owned()
    }
}

/// What the proxy does with one request.
#[derive(Clone)]
pub enum Action {
    /// Forward it and pass the answer back.
    Forward,
    /// Answer it without forwarding.
    Respond {
        /// HTTP status.
        status: u16,
        /// `Content-Type`.
        content_type: &'static str,
        /// The body.
        body: String,
    },
    /// Accept it and never answer.
    Hang,
    /// Forward it and pass back the answer's body changed by this function.
    Rewrite(Arc<Change>),
}

impl Action {
    /// A KMS JSON error answer.
    pub fn kms_error(status: u16, kind: &str, message: &str) -> Action {
        let body = serde_json::json!({ "__type": kind, "message": message }).to_string();
        Action::Respond { status, content_type: "application/x-amz-json-1.1", body }
    }

    /// An STS (query protocol) XML error answer.
    pub fn sts_error(status: u16, code: &str, message: &str) -> Action {
        let body = format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
             <Code>{code}</Code><Message>{message}</Message></Error><RequestId>test</RequestId></ErrorResponse>"
        );
        Action::Respond { status, content_type: "text/xml", body }
    }
}

type Hook = Arc<dyn Fn(&Exchange) -> Action + Send + Sync>;
/// A change to an answer's body.
pub type Change = dyn Fn(&[u8]) -> Vec<u8> + Send + Sync;

/// What a [`Switch`] makes of the requests that reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Forward them.
    Up,
    /// Answer each at once with HTTP 503 and a KMS `ServiceUnavailable` error: an endpoint that
    /// is there and unwell (a client sees KMS unavailable, an outage).
    Down,
    /// Accept each and never answer: a dead network path, where callers wait for their timeout.
    BlackHole,
}

/// An endpoint that a test (or the bench) takes away and gives back while it runs; clones
/// share the state. [`FaultProxy::switchable`] puts one in front of a target.
#[derive(Debug, Clone)]
pub struct Switch(Arc<AtomicU8>);

impl Switch {
    /// A switch in state `link`.
    pub fn new(link: Link) -> Switch {
        Switch(Arc::new(AtomicU8::new(link as u8)))
    }

    /// Sets the state from now on (requests already forwarded are not called back).
    pub fn set(&self, link: Link) {
        self.0.store(link as u8, Ordering::SeqCst);
    }

    /// The state now.
    pub fn get(&self) -> Link {
        match self.0.load(Ordering::SeqCst) {
            0 => Link::Up,
            1 => Link::Down,
            _ => Link::BlackHole,
        }
    }

    /// What to do with a request now: `None` while up (the hook decides), else the fault.
    pub fn action(&self) -> Option<Action> {
        match self.get() {
            Link::Up => None,
            Link::Down => Some(Action::kms_error(503, "ServiceUnavailable", "the proxy's switch is down")),
            Link::BlackHole => Some(Action::Hang),
        }
    }
}

/// A running proxy. It lives as long as the process; clones share it.
#[derive(Clone)]
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    seen: Arc<Mutex<Vec<Exchange>>>,
    /// The request number and status of each answer given, in order.
    answered: Arc<Mutex<Vec<(usize, u16)>>>,
}

impl FaultProxy {
    /// A proxy to `target` (an `http://host:port` URL) that forwards everything.
    pub fn forwarding(target: &str) -> FaultProxy {
        FaultProxy::start(target, |_| Action::Forward)
    }

    /// A proxy to `target` that forwards while its [`Switch`] (returned, starting [`Link::Up`])
    /// says so.
    pub fn switchable(target: &str) -> (FaultProxy, Switch) {
        let switch = Switch::new(Link::Up);
        let state = switch.clone();
        (FaultProxy::start(target, move |_| state.action().unwrap_or(Action::Forward)), switch)
    }

    /// A proxy to `target` whose `hook` decides each request.
    pub fn start(target: &str, hook: impl Fn(&Exchange) -> Action + Send + Sync + 'static) -> FaultProxy {
        let (target, hook): (String, Hook) = (target.trim_end_matches('/').to_owned(), Arc::new(hook));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answered = Arc::new(Mutex::new(Vec::new()));
        let statuses = answered.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let record = seen.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(async move {
                let http = reqwest::Client::new();
                let handler = move |method: Method, uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                    let (hook, http, record, statuses) = (hook.clone(), http.clone(), record.clone(), statuses.clone());
                    let url = format!("{target}{}", uri.path_and_query().map_or("/", |p| p.as_str()));
                    async move {
                        let exchange = {
                            let mut seen = record.lock().unwrap();
                            let exchange =
                                Exchange { n: seen.len(), method, path: uri.path().to_owned(), headers, body };
                            seen.push(exchange.clone());
                            exchange
                        };
                        // Hooks may block (sleep, call AWS): off the proxy's runtime threads.
                        let decided = exchange.clone();
                        let action = tokio::task::spawn_blocking(move || hook(&decided)).await.unwrap();
                        let response = match action {
                            Action::Forward => forward(&http, &url, &exchange, None).await,
                            Action::Rewrite(change) => forward(&http, &url, &exchange, Some(&*change)).await,
                            Action::Respond { status, content_type, body } => {
                                (StatusCode::from_u16(status).unwrap(), [("content-type", content_type)], body)
                                    .into_response()
                            }
                            Action::Hang => std::future::pending().await,
                        };
                        statuses.lock().unwrap().push((exchange.n, response.status().as_u16()));
                        response
                    }
                };
                let app = axum::Router::new().fallback(handler);
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        FaultProxy { url, seen, answered }
    }

    /// How many answers so far had `status`.
    pub fn answered(&self, status: u16) -> usize {
        self.answered.lock().unwrap().iter().filter(|(_, s)| *s == status).count()
    }

    /// How many requests for `operation` (see [`Exchange::operation`]) were answered `status`
    /// so far: `count_answered("Sign", 200)` is the signatures the upstream made.
    pub fn count_answered(&self, operation: &str, status: u16) -> usize {
        let seen = self.seen.lock().unwrap();
        let answered = self.answered.lock().unwrap();
        answered.iter().filter(|(n, s)| *s == status && seen[*n].operation() == operation).count()
    }

    /// How many requests reached the proxy so far (answered or not).
    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Exchange> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests so far were for `path`.
    pub fn count_path(&self, path: &str) -> usize {
        self.seen.lock().unwrap().iter().filter(|e| e.path == path).count()
    }

    /// How many requests so far were for `operation` (see [`Exchange::operation`]).
    pub fn count(&self, operation: &str) -> usize {
        self.seen.lock().unwrap().iter().filter(|e| e.operation() == operation).count()
    }
}

async fn forward(http: &reqwest::Client, url: &str, exchange: &Exchange, change: Option<&Change>) -> Response {
    let mut request = http.request(exchange.method.clone(), url).body(exchange.body.clone());
    for (name, value) in &exchange.headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let Ok(upstream) = request.send().await else {
        return (StatusCode::BAD_GATEWAY, "upstream unreachable").into_response();
    };
    let status = StatusCode::from_u16(upstream.status().as_u16()).unwrap();
    let headers = upstream.headers().clone();
    let bytes = upstream.bytes().await.unwrap_or_default().to_vec();
    let bytes = change.map_or(bytes.clone(), |change| change(&bytes));
    let mut response = (status, bytes).into_response();
    for (name, value) in &headers {
        if !matches!(name.as_str(), "content-length" | "transfer-encoding" | "connection") {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}
