//! Every KMS call a [`KmsClient`](super::KmsClient) makes, reported to a [`KmsObserver`] once
//! it is over (retries included): what a service needs for metrics on its dependency, without
//! this crate choosing a metrics library.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kms::config::interceptors::{BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef};
use aws_sdk_kms::config::{ConfigBag, Intercept, Region, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

/// How a KMS call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KmsCallOutcome {
    /// KMS answered with success.
    Ok,
    /// KMS refused the request (4xx: access denied, not found, throttled, a disabled key).
    ClientError,
    /// KMS failed (5xx).
    ServerError,
    /// No answer within the attempt or operation timeout.
    Timeout,
    /// No connection, or no readable answer.
    Unreachable,
}

impl KmsCallOutcome {
    /// A short lowercase name, for a metric's label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            KmsCallOutcome::Ok => "ok",
            KmsCallOutcome::ClientError => "client_error",
            KmsCallOutcome::ServerError => "server_error",
            KmsCallOutcome::Timeout => "timeout",
            KmsCallOutcome::Unreachable => "unreachable",
        }
    }
}

/// One KMS call, over.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KmsCall<'a> {
    /// The operation (`Sign`, `GetPublicKey`, `DescribeKey`, ...).
    pub operation: &'a str,
    /// The region the client talks to.
    pub region: &'a str,
    /// How it ended.
    pub outcome: KmsCallOutcome,
    /// How long it took, retries and back-off included.
    pub duration: Duration,
}

/// Told of every KMS call a client makes: see [`KmsClient::observed`](super::KmsClient::observed).
/// It runs on the caller's task, once the call is over: it must be quick and must not block.
pub trait KmsObserver: Send + Sync + 'static {
    /// One call is over.
    fn observe(&self, call: &KmsCall<'_>);
}

/// The SDK interceptor that times each call and tells the observer.
#[derive(Clone)]
pub(super) struct ObserverInterceptor(pub(super) Arc<dyn KmsObserver>);

impl fmt::Debug for ObserverInterceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ObserverInterceptor")
    }
}

/// When the call started, kept in the call's own config bag.
#[derive(Debug, Clone, Copy)]
struct Started(Instant);

impl Storable for Started {
    type Storer = StoreReplace<Started>;
}

impl Intercept for ObserverInterceptor {
    fn name(&self) -> &'static str {
        "kms-jwt observer"
    }

    fn read_before_execution(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Started(Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let duration = cfg.load::<Started>().map_or(Duration::ZERO, |started| started.0.elapsed());
        let outcome = match (context.output_or_error(), context.response()) {
            (Some(Ok(_)), _) => KmsCallOutcome::Ok,
            (_, Some(response)) if response.status().is_server_error() => KmsCallOutcome::ServerError,
            (_, Some(response)) if response.status().is_client_error() => KmsCallOutcome::ClientError,
            (Some(Err(e)), _) if e.is_timeout_error() => KmsCallOutcome::Timeout,
            _ => KmsCallOutcome::Unreachable,
        };
        let call = KmsCall {
            operation: cfg.load::<Metadata>().map_or("unknown", Metadata::name),
            region: cfg.load::<Region>().map_or("unknown", Region::as_ref),
            outcome,
            duration,
        };
        self.0.observe(&call);
        Ok(())
    }
}
