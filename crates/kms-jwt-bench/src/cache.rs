//! Tokens that never wait: mints through a `TokenCache` in front of a KMS made slow, against
//! the same mints straight through the signer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::{StreamExt as _, TryStreamExt as _};
use kms_jwt::{Algorithm, Claims, JwtSigner, PublicKey, Signer, TokenCache};

use crate::report;

/// KMS made slow: every signature waits this long first (as a region away, or a loaded KMS).
const KMS_DELAY: Duration = Duration::from_millis(50);

/// A signer in front of another that delays each signature by [`KMS_DELAY`] and counts them.
struct Slow<S> {
    inner: S,
    calls: AtomicUsize,
}

impl<S: Signer> Signer for Slow<S> {
    fn algorithm(&self) -> Algorithm {
        self.inner.algorithm()
    }
    fn public_key(&self) -> &PublicKey {
        self.inner.public_key()
    }
    fn sign_message<'a>(&'a self, message: &'a [u8]) -> kms_jwt::SignatureFuture<'a> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            tokio::time::sleep(KMS_DELAY).await;
            self.inner.sign_message(message).await
        })
    }
}

const CACHE_CLAIM_SETS: usize = 100;
const CACHE_MINTS: usize = 10_000;
const CACHE_CONCURRENCY: usize = 32;
/// Cache settings for the latency run: short enough that tokens are refreshed several times.
const CACHE_TTL: Duration = Duration::from_secs(4);
const CACHE_MARGIN: Duration = Duration::from_secs(1);
/// The pause between one worker's mints, so that the run spans several refresh cycles.
const CACHE_PACE: Duration = Duration::from_millis(18);

pub(crate) async fn cache_latency(endpoint: String, key_arn: String, cached: bool) -> Result<()> {
    let kms = kms_jwt::kms::KmsOptions::endpoint(endpoint, "us-east-1").connect().await?;
    let slow =
        Arc::new(Slow { inner: kms_jwt::kms::KmsSigner::new(&kms, &key_arn).await?, calls: AtomicUsize::new(0) });
    let signer = JwtSigner::new(slow.clone())?;
    let claims: Vec<Claims> =
        (0..CACHE_CLAIM_SETS).map(|i| Claims::new().subject(format!("svc-{i}")).audience("api")).collect();
    let cache = TokenCache::new(JwtSigner::new(slow.clone())?, CACHE_TTL, CACHE_MARGIN, 1024);
    let mint = |i: usize| {
        let (cache, signer, claims) = (cache.clone(), &signer, &claims[i % CACHE_CLAIM_SETS]);
        async move {
            let started = Instant::now();
            if cached {
                cache.token(claims).await?;
            } else {
                let exp = kms_jwt::now() + 60;
                signer.sign(&claims.clone().expires_at(exp)).await?;
            }
            Ok::<_, kms_jwt::Error>(started.elapsed())
        }
    };
    if cached {
        // Warm-up: every claims set once.
        futures_util::stream::iter(0..CACHE_CLAIM_SETS)
            .map(mint)
            .buffer_unordered(CACHE_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?;
    }
    let warm_calls = slow.calls.load(Ordering::Relaxed);
    let started = Instant::now();
    let latencies: Vec<Duration> = futures_util::stream::iter(0..CACHE_MINTS)
        .map(|i| {
            let mint = mint(i);
            async move {
                let latency = mint.await?;
                if cached {
                    tokio::time::sleep(CACHE_PACE).await;
                }
                Ok::<_, kms_jwt::Error>(latency)
            }
        })
        .buffer_unordered(CACHE_CONCURRENCY)
        .try_collect()
        .await?;
    let elapsed = started.elapsed();
    // A token is refreshed when it is (ttl - 2 margins) old: that many refresh cycles fit the run.
    let cycle = CACHE_TTL.saturating_sub(2 * CACHE_MARGIN).as_millis().max(1);
    let cycles = 1 + usize::try_from(elapsed.as_millis() / cycle).unwrap_or(usize::MAX);
    let calls = slow.calls.load(Ordering::Relaxed);
    let mut out = report::latency_figures(latencies, elapsed);
    out["sign_calls"] = calls.into();
    out["warm_up_calls"] = warm_calls.into();
    out["elapsed_s"] = elapsed.as_secs_f64().into();
    out["expected_calls"] = (CACHE_CLAIM_SETS * cycles).into();
    report::json(&out)
}
