//! The documents third parties fetch (`/.well-known/jwks.json`, `/.well-known/openid-configuration`)
//! and `/healthz`: read from KMS at start, refreshed in the background, and served from memory
//! with `ETag` and `Cache-Control`. While KMS is unreachable the last good documents are served.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kms_jwt::kms::KmsClient;
use kms_jwt::publish::{self, Documents};

/// Documents older than this are `unavailable` in `/healthz` (they are still served: a
/// verifier is better served by keys an hour old than by none).
const STALE_LIMIT: Duration = Duration::from_secs(3600);

/// Where the documents come from: keys (or key sets) read from the first region that answers.
#[derive(Clone, Debug)]
pub struct Source {
    /// Key ids, ARNs or key set names.
    pub keys: Vec<String>,
    /// The issuer URL, without a trailing `/`.
    pub issuer: String,
    /// The KMS region first, then fallback regions of a multi-Region set.
    pub regions: Vec<KmsClient>,
}

impl Source {
    /// The documents from the first region that answers, in order: every region of a
    /// multi-Region set publishes the same keys. An error that is not an outage (a wrong key)
    /// is not passed over.
    pub async fn load(&self) -> kms_jwt::Result<Documents> {
        let mut last = None;
        for kms in &self.regions {
            match publish::jwks_from_kms(kms, &self.keys, None).await {
                Ok(jwks) => return Ok(Documents::new(&self.issuer, &jwks)),
                Err(e) if e.is_outage() => {
                    tracing::warn!(region = kms.region(), error = %e, "kms is unavailable; reading the next region");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| kms_jwt::Error::Config("no region to read the keys from".into())))
    }
}

/// The last good documents and how the last refresh went.
#[derive(Debug)]
struct Published {
    docs: Documents,
    refreshed_at: SystemTime,
    failing: bool,
    /// When each `kid` of the JWKS was first served.
    since: HashMap<String, Instant>,
}

/// The `kid`s of a JWKS document.
fn kids(jwks: &[u8]) -> Vec<String> {
    kms_jwt::Jwks::parse(jwks).map(|j| j.keys.into_iter().filter_map(|k| k.kid).collect()).unwrap_or_default()
}

impl Published {
    fn new(docs: Documents, failing: bool, before: Option<&HashMap<String, Instant>>) -> Published {
        let now = Instant::now();
        let since = kids(&docs.jwks)
            .into_iter()
            .map(|kid| {
                let first = before.and_then(|b| b.get(&kid)).copied().unwrap_or(now);
                (kid, first)
            })
            .collect();
        Published { docs, refreshed_at: SystemTime::now(), failing, since }
    }
}

/// The documents being served, shared by the handlers and the refresher.
#[derive(Clone, Debug)]
pub struct Served {
    published: Arc<RwLock<Published>>,
    cache_control: HeaderValue,
    max_age: Duration,
}

impl Served {
    /// Serves `docs`, telling caches to keep them `max_age`.
    #[must_use]
    pub fn new(docs: Documents, max_age: Duration) -> Served {
        let cache_control = HeaderValue::from_str(&publish::cache_control(max_age.as_secs()))
            .expect("a number is a valid header value");
        Served { published: Arc::new(RwLock::new(Published::new(docs, false, None))), cache_control, max_age }
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
            let result = source.load().await;
            let mut guard = self.published.write().unwrap_or_else(PoisonError::into_inner);
            match result {
                Ok(docs) => {
                    if docs != guard.docs {
                        tracing::info!("keys changed; serving the new set");
                    }
                    *guard = Published::new(docs, false, Some(&guard.since));
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
