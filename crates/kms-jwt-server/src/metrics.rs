//! Prometheus metrics, served on a listener of their own (`--metrics-listen`), never on the
//! public one: they name regions, rules and rates that are nobody else's business.
//!
//! `prometheus-client` (the Prometheus project's own Rust client) rather than `metrics` with
//! `metrics-exporter-prometheus`: it keeps no global recorder, so two servers in one test
//! process do not share counters; label sets are types, so a label cannot be misspelt at one
//! call site; values that are state, not events (the JWKS's age, a region's health, the token
//! cache's counts), are read when scraped through a [`Collector`]; and it brings four small
//! crates, no HTTP server or exporter thread of its own.
//!
//! Counters and histograms are updated as things happen: requests by route and status, their
//! latency, `/token` decisions, KMS calls (through the library's [`KmsObserver`]). Everything
//! else is read at scrape time from the state the server keeps anyway.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kms_jwt::issuer::{Refusal, RefusalKind};
use kms_jwt::kms::{KmsCall, KmsObserver};
use kms_jwt::publish::{JWKS_PATH, OPENID_CONFIGURATION_PATH};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::issuer::Running;
use crate::listener::Activity;
use crate::{Served, Source};

/// Request latency buckets, in seconds: documents answer in tens of microseconds, `/token` in
/// the tens of milliseconds KMS takes.
const HTTP_BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// KMS call buckets, up to the client's operation timeout.
const KMS_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0];

/// The routes requests are counted by: a fixed set, so a scanner probing paths adds no series.
pub(crate) fn route_label(path: &str) -> &'static str {
    match path {
        JWKS_PATH => "jwks",
        OPENID_CONFIGURATION_PATH => "openid_configuration",
        "/token" => "token",
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        _ => "other",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    outcome: &'static str,
    audience_rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KmsLabels {
    operation: String,
    region: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KmsOperationLabels {
    operation: String,
    region: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of one server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Histograms<RouteLabels>,
    token_decisions: Family<DecisionLabels, Counter>,
    kms: KmsMetrics,
    tls_handshake_failures: Counter,
    live: Arc<Live>,
}

/// KMS calls, as the library's observer reports them.
#[derive(Debug, Clone)]
struct KmsMetrics {
    calls: Family<KmsLabels, Counter>,
    duration: Histograms<KmsOperationLabels>,
}

impl KmsObserver for KmsMetrics {
    fn observe(&self, call: &KmsCall<'_>) {
        let (operation, region) = (call.operation.to_owned(), call.region.to_owned());
        self.duration
            .get_or_create(&KmsOperationLabels { operation: operation.clone(), region: region.clone() })
            .observe(call.duration.as_secs_f64());
        self.calls.get_or_create(&KmsLabels { operation, region, outcome: call.outcome.as_str() }).inc();
    }
}

/// What is read at scrape time.
#[derive(Debug, Default)]
struct Live {
    served: OnceLock<(Served, Source)>,
    issuer: OnceLock<Arc<Running>>,
    activity: OnceLock<Arc<Activity>>,
}

impl Metrics {
    /// A registry with every metric, prefixed `kms_jwt_`.
    #[must_use]
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("kms_jwt");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by route and status", http_requests.clone());
        let http_duration: Histograms<RouteLabels> = Family::new_with_constructor(|| Histogram::new(HTTP_BUCKETS));
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's head to its answer, by route",
            Unit::Seconds,
            http_duration.clone(),
        );
        let token_decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "token_decisions",
            "POST /token decisions, by outcome (issued, or why not) and the policy rule that matched (its index)",
            token_decisions.clone(),
        );
        let kms = KmsMetrics {
            calls: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(KMS_BUCKETS)),
        };
        registry.register(
            "kms_calls",
            "KMS calls, retries included, by operation, region and outcome",
            kms.calls.clone(),
        );
        registry.register_with_unit(
            "kms_call_duration",
            "KMS call latency, retries included, by operation and region",
            Unit::Seconds,
            kms.duration.clone(),
        );
        let tls_handshake_failures = Counter::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            tls_handshake_failures.clone(),
        );
        let live = Arc::new(Live::default());
        registry.register_collector(Box::new(live.clone()));
        Metrics { registry, http_requests, http_duration, token_decisions, kms, tls_handshake_failures, live }
    }

    /// The observer to give every KMS client: [`kms_jwt::kms::KmsClient::observed`].
    pub(crate) fn kms_observer(&self) -> Arc<dyn KmsObserver> {
        Arc::new(self.kms.clone())
    }

    /// The documents, once loaded: their age is read at each scrape.
    pub(crate) fn watch_documents(&self, served: &Served, source: &Source) {
        let _ = self.live.served.set((served.clone(), source.clone()));
    }

    /// The issuer, once started: its signer's regions and its token cache.
    pub(crate) fn watch_issuer(&self, running: &Arc<Running>) {
        let _ = self.live.issuer.set(running.clone());
    }

    /// The public listener's connections and requests.
    pub(crate) fn watch_listener(&self, activity: &Arc<Activity>) {
        let _ = self.live.activity.set(activity.clone());
    }

    /// One request answered.
    pub(crate) fn request(&self, route: &'static str, status: StatusCode, took: Duration) {
        self.http_requests.get_or_create(&HttpLabels { route, status: status.as_u16() }).inc();
        self.http_duration.get_or_create(&RouteLabels { route }).observe(took.as_secs_f64());
    }

    /// One `/token` decision: a token, or a refusal; `rule` is the policy rule that matched.
    pub(crate) fn decision(&self, result: Result<(), &Refusal>, rule: Option<usize>) {
        let outcome = match result {
            Ok(()) => "issued",
            Err(refusal) => refusal_label(refusal.kind),
        };
        let audience_rule = rule.map_or_else(|| "none".to_owned(), |r| r.to_string());
        self.token_decisions.get_or_create(&DecisionLabels { outcome, audience_rule }).inc();
    }

    /// A failed TLS handshake.
    pub(crate) fn handshake_failed(&self) {
        self.tls_handshake_failures.inc();
    }

    /// The Prometheus text format, or `OpenMetrics` for a scraper that asks for it.
    pub(crate) fn render(&self, request: &HeaderMap) -> Response {
        let openmetrics = request
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/openmetrics-text"));
        let mut body = String::with_capacity(16 * 1024);
        let (encoded, content_type) = if openmetrics {
            (
                prometheus_client::encoding::text::encode(&mut body, &self.registry),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
        } else {
            (
                prometheus_client::encoding::prometheus_text::encode(&mut body, &self.registry),
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )
        };
        if encoded.is_err() {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        ([(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], body).into_response()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// The label of a refusal's kind.
fn refusal_label(kind: RefusalKind) -> &'static str {
    match kind {
        RefusalKind::Malformed => "malformed",
        RefusalKind::Unauthenticated => "unauthenticated",
        RefusalKind::Forbidden => "forbidden",
        RefusalKind::Limited => "limited",
        _ => "unavailable",
    }
}

fn seconds_since(at: SystemTime) -> f64 {
    SystemTime::now().duration_since(at).unwrap_or_default().as_secs_f64()
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(activity) = self.activity.get() {
            let (connections, requests) =
                (activity.connections.load(Ordering::Relaxed), activity.requests.load(Ordering::Relaxed));
            gauge(
                &mut encoder,
                "open_connections",
                "Connections open on the public listener",
                None,
                connections as f64,
            )?;
            gauge(
                &mut encoder,
                "requests_in_flight",
                "Requests being answered on the public listener",
                None,
                requests as f64,
            )?;
        }
        if let Some((served, source)) = self.served.get() {
            let state = served.state();
            gauge(
                &mut encoder,
                "jwks_age",
                "Time since the keys were last read from KMS successfully",
                Some(&Unit::Seconds),
                seconds_since(state.refreshed_at),
            )?;
            if let Some(created) = state.current_key_created {
                gauge(
                    &mut encoder,
                    "current_key_age",
                    "Time since the current key (the first --key, or its set's current key) was created in KMS",
                    Some(&Unit::Seconds),
                    seconds_since(created),
                )?;
            }
            let health = source.region_health();
            region_gauges(
                &mut encoder,
                "jwks_region_up",
                "Whether the keys were last read from this region (or would be): 0 after it failed",
                health.iter().map(|(region, up)| (region.as_str(), *up)),
            )?;
        }
        if let Some(running) = self.issuer.get() {
            let signer = running.signer();
            region_gauges(
                &mut encoder,
                "signer_region_up",
                "Whether POST /token signs in this region: 0 while it is passed over after an outage",
                signer.region_health(),
            )?;
            if let Some(created) = signer.created() {
                gauge(
                    &mut encoder,
                    "signing_key_age",
                    "Time since the key POST /token signs with was created in KMS",
                    Some(&Unit::Seconds),
                    seconds_since(created),
                )?;
            }
            let stats = running.issuer.cache_stats();
            counter(&mut encoder, "token_cache_hits", "Tokens POST /token answered from its cache", stats.hits)?;
            counter(&mut encoder, "token_cache_misses", "Tokens POST /token had to sign (or wait for)", stats.misses)?;
        }
        Ok(())
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

/// A gauge family with one 0-or-1 sample per region.
fn region_gauges<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    health: impl Iterator<Item = (&'a str, bool)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, prometheus_client::metrics::MetricType::Gauge)?;
    for (region, up) in health {
        ConstGauge::new(i64::from(up)).encode(family.encode_family(&[("region", region)])?)?;
    }
    Ok(())
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}
