//! The documents third parties fetch (`/.well-known/jwks.json`, `/.well-known/openid-configuration`)
//! and `/healthz`: read from KMS at start, refreshed in the background, and served from memory
//! with `ETag` and `Cache-Control`. While KMS is unreachable the last good documents are served.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kms_jwt::Jwks;
use kms_jwt::kms::{KmsClient, KmsObserver, normalize_key_ref};
use kms_jwt::publish::{self, Documents};

/// Documents older than this are `unavailable` in `/healthz` (they are still served: a
/// verifier is better served by keys an hour old than by none).
const STALE_LIMIT: Duration = Duration::from_secs(3600);

/// Where the documents come from: keys (or key sets) read from the first region that answers.
#[derive(Clone, Debug)]
pub struct Source {
    keys: Vec<String>,
    issuer: String,
    regions: Vec<KmsClient>,
    /// Whether each region answered when last asked.
    health: Arc<Mutex<Vec<(String, bool)>>>,
}

/// What one load read: the documents and the current key's creation time.
#[derive(Debug)]
pub(crate) struct Loaded {
    docs: Documents,
    current_key_created: Option<SystemTime>,
}

impl Source {
    /// `keys` (key ids, ARNs or key set names) for `issuer` (an http(s) URL without a trailing
    /// `/`), read from `regions`: the KMS region first, then fallback regions of a multi-Region
    /// set.
    #[must_use]
    pub fn new(keys: Vec<String>, issuer: String, regions: Vec<KmsClient>) -> Source {
        let health = regions.iter().map(|kms| (kms.region().unwrap_or("unknown").to_owned(), true)).collect();
        Source { keys, issuer, regions, health: Arc::new(Mutex::new(health)) }
    }

    /// The issuer URL.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The keys, as given.
    #[must_use]
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The KMS clients, the KMS region first.
    #[must_use]
    pub fn regions(&self) -> &[KmsClient] {
        &self.regions
    }

    /// The same source with every KMS call reported to `observer`.
    #[must_use]
    pub(crate) fn observed(mut self, observer: &Arc<dyn KmsObserver>) -> Source {
        self.regions = self.regions.iter().map(|kms| kms.observed(observer.clone())).collect();
        self
    }

    /// Each region and whether it answered when last asked (a region not asked yet counts as
    /// answering).
    pub(crate) fn region_health(&self) -> Vec<(String, bool)> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn mark(&self, index: usize, up: bool) {
        if let Some(region) = self.health.lock().unwrap_or_else(PoisonError::into_inner).get_mut(index) {
            region.1 = up;
        }
    }

    /// The documents from the first region that answers, in order: every region of a
    /// multi-Region set publishes the same keys. An error that is not an outage (a wrong key)
    /// is not passed over.
    pub async fn load(&self) -> kms_jwt::Result<Documents> {
        self.load_all().await.map(|loaded| loaded.docs)
    }

    pub(crate) async fn load_all(&self) -> kms_jwt::Result<Loaded> {
        let mut last = None;
        for (index, kms) in self.regions.iter().enumerate() {
            match self.load_from(kms).await {
                Ok(loaded) => {
                    self.mark(index, true);
                    return Ok(loaded);
                }
                Err(e) if e.is_outage() => {
                    tracing::warn!(region = kms.region(), error = %e, "kms is unavailable; reading the next region");
                    self.mark(index, false);
                    last = Some(e);
                }
                Err(e) => {
                    self.mark(index, true);
                    return Err(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| kms_jwt::Error::Config("no region to read the keys from".into())))
    }

    async fn load_from(&self, kms: &KmsClient) -> kms_jwt::Result<Loaded> {
        let keys = publish::keys_from_kms(kms, &self.keys, None).await?;
        let jwks = Jwks { keys: keys.iter().map(|(info, alg)| info.jwk(*alg)).collect() };
        // The current key: the first key given, or its set's current key (one DescribeKey: the
        // set's keys come back without saying which alias named them).
        let first = self.keys.first().map(|k| normalize_key_ref(k));
        let current_key_created = match first.as_deref() {
            Some(alias) if alias.starts_with("alias/") => kms.describe(alias, false).await?.and_then(|k| k.created),
            Some(_) => keys.first().and_then(|(info, _)| info.key.created),
            None => None,
        };
        Ok(Loaded { docs: Documents::new(&self.issuer, &jwks), current_key_created })
    }
}

/// The last good documents and how the last refresh went.
#[derive(Debug)]
struct Published {
    docs: Documents,
    refreshed_at: SystemTime,
    current_key_created: Option<SystemTime>,
    failing: bool,
    /// When each `kid` of the JWKS was first served.
    since: HashMap<String, Instant>,
}

/// The `kid`s of a JWKS document.
fn kids(jwks: &[u8]) -> Vec<String> {
    kms_jwt::Jwks::parse(jwks).map(|j| j.keys.into_iter().filter_map(|k| k.kid).collect()).unwrap_or_default()
}

impl Published {
    fn new(loaded: Loaded, before: Option<&HashMap<String, Instant>>) -> Published {
        let Loaded { docs, current_key_created } = loaded;
        let now = Instant::now();
        let since = kids(&docs.jwks)
            .into_iter()
            .map(|kid| {
                let first = before.and_then(|b| b.get(&kid)).copied().unwrap_or(now);
                (kid, first)
            })
            .collect();
        Published { docs, refreshed_at: SystemTime::now(), current_key_created, failing: false, since }
    }
}

/// The documents being served, shared by the handlers and the refresher.
#[derive(Clone, Debug)]
pub struct Served {
    published: Arc<RwLock<Published>>,
    cache_control: HeaderValue,
    max_age: Duration,
}

/// What the metrics read of the documents.
#[derive(Debug)]
pub(crate) struct ServedState {
    /// When the keys were last read from KMS successfully.
    pub(crate) refreshed_at: SystemTime,
    /// When the current key was created.
    pub(crate) current_key_created: Option<SystemTime>,
}

impl Served {
    /// The documents of `source`, read from KMS once (no refresh task): for a process that
    /// lives one request burst at a time, such as a Lambda function.
    pub async fn load(source: &Source, max_age: Duration) -> kms_jwt::Result<Served> {
        Ok(Served::new(source.load_all().await?, max_age))
    }

    /// Serves what was loaded, telling caches to keep it `max_age`.
    pub(crate) fn new(loaded: Loaded, max_age: Duration) -> Served {
        let cache_control = HeaderValue::from_str(&publish::cache_control(max_age.as_secs()))
            .expect("a number is a valid header value");
        Served { published: Arc::new(RwLock::new(Published::new(loaded, None))), cache_control, max_age }
    }

    pub(crate) fn state(&self) -> ServedState {
        let guard = self.published.read().unwrap_or_else(PoisonError::into_inner);
        ServedState { refreshed_at: guard.refreshed_at, current_key_created: guard.current_key_created }
    }

    /// How long caches may keep the documents.
    #[must_use]
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// How long the JWKS served here has had `kid`, if it has it.
    #[must_use]
    pub fn published_for(&self, kid: &str) -> Option<Duration> {
        let guard = self.published.read().unwrap_or_else(PoisonError::into_inner);
        guard.since.get(kid).map(Instant::elapsed)
    }

    /// Re-reads the documents from `source` every `every`, forever.
    pub async fn refresh(self, source: Source, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let result = source.load_all().await;
            let mut guard = self.published.write().unwrap_or_else(PoisonError::into_inner);
            match result {
                Ok(loaded) => {
                    if loaded.docs != guard.docs {
                        tracing::info!("keys changed; serving the new set");
                    }
                    *guard = Published::new(loaded, Some(&guard.since));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "refresh from KMS failed; still serving the last good set");
                    crate::say(&format!("refresh from KMS failed, still serving the last good set: {e}"));
                    guard.failing = true;
                }
            }
        }
    }

    fn document(&self, request: &HeaderMap, pick: fn(&Documents) -> (&Vec<u8>, &String)) -> Response {
        let guard = self.published.read().unwrap_or_else(PoisonError::into_inner);
        let (body, etag) = pick(&guard.docs);
        let etag_value = HeaderValue::from_str(etag).expect("base64url ETag is a valid header value");
        let not_modified = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
        let mut headers = HeaderMap::new();
        headers.insert(header::ETAG, etag_value);
        headers.insert(header::CACHE_CONTROL, self.cache_control.clone());
        if not_modified {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        (StatusCode::OK, headers, body.clone()).into_response()
    }
}

/// `GET /.well-known/jwks.json`.
pub(crate) async fn jwks(State(served): State<Served>, headers: HeaderMap) -> Response {
    served.document(&headers, |d| (&d.jwks, &d.jwks_etag))
}

/// `GET /.well-known/openid-configuration`.
pub(crate) async fn openid_configuration(State(served): State<Served>, headers: HeaderMap) -> Response {
    served.document(&headers, |d| (&d.openid_configuration, &d.openid_configuration_etag))
}

/// `GET /healthz`: liveness, with a status word (`ok`, `stale` while refreshes fail, then
/// `unavailable` once the documents are older than an hour) and their age. What failed is in
/// the server's log, never here: a KMS error names keys and endpoints.
pub(crate) async fn healthz(State(served): State<Served>) -> Response {
    let guard = served.published.read().unwrap_or_else(PoisonError::into_inner);
    let age = guard.refreshed_at.elapsed().unwrap_or_default();
    let status = match (guard.failing, age > STALE_LIMIT) {
        (false, _) => "ok",
        (true, false) => "stale",
        (true, true) => "unavailable",
    };
    let body = serde_json::json!({ "status": status, "last_refresh_secs_ago": age.as_secs() });
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Whether the server takes traffic: not before it has loaded what it serves, and not once it
/// is draining.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    started: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
    pub(crate) fn started(&self) {
        self.started.store(true, Ordering::SeqCst);
    }

    pub(crate) fn draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
}

/// `GET /readyz`: 200 once the keys are loaded (and the issuer started), 503 before, and 503
/// from the moment the server starts draining, so that a load balancer stops sending it
/// requests. Liveness is `/healthz`'s: a replica that cannot reach KMS still serves its last
/// good keys, and every replica would fail alike.
pub(crate) async fn readyz(State(readiness): State<Arc<Readiness>>) -> Response {
    let status = if readiness.draining.load(Ordering::SeqCst) {
        "draining"
    } else if readiness.started.load(Ordering::SeqCst) {
        "ready"
    } else {
        "starting"
    };
    let code = if status == "ready" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({ "status": status });
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Every route but the probes while the server starts: 503, retry shortly.
pub(crate) async fn starting() -> Response {
    let body = serde_json::json!({ "error": "the server is starting, retry shortly" });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "application/json"), (header::RETRY_AFTER, "1")],
        body.to_string(),
    )
        .into_response()
}

/// `GET /healthz` while the server starts: it is alive.
pub(crate) async fn healthz_starting() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], r#"{"status":"starting"}"#).into_response()
}
