//! Failover: a multi-Region set signed through a `FailoverSigner` while us-east-1 is up, a
//! black hole, and back.

use std::time::{Duration, Instant};

use anyhow::Result;
use kms_jwt::kms::KmsOptions;
use kms_jwt::{Claims, JwtSigner};
use kms_jwt_test_support::proxy::{FaultProxy, Link};

use crate::report;

/// The failover run's KMS settings: what a latency-minded caller would pass.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(2);
const FAILOVER_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
const FAILOVER_BACKOFF: Duration = Duration::from_secs(1);

/// Signs with `set` (a multi-Region set, primary us-east-1, replica eu-west-1) through a
/// failover signer, `concurrency` at a time, for three phases of `phase_secs` each; prints
/// tokens per second per phase, the longest wait for one token, and the signatures us-east-1
/// made after the cut.
pub(crate) async fn failover(endpoint: String, set: String, concurrency: usize, phase_secs: u64) -> Result<()> {
    // us-east-1 through a proxy that turns into a black hole: while cut it accepts requests and
    // answers none, so callers time out as on a dead network path.
    let (proxy, cut) = FaultProxy::switchable(&endpoint);
    let options = |url: &str, region: &str| KmsOptions {
        timeout: FAILOVER_TIMEOUT,
        attempt_timeout: FAILOVER_ATTEMPT_TIMEOUT,
        max_attempts: 2,
        ..KmsOptions::endpoint(url, region)
    };
    let clients =
        vec![options(&proxy.url, "us-east-1").connect().await?, options(&endpoint, "eu-west-1").connect().await?];
    let signer = JwtSigner::new(
        kms_jwt::failover::FailoverSigner::builder(clients, set).backoff(FAILOVER_BACKOFF).build().await?,
    )?;
    let phase = Duration::from_secs(phase_secs);
    let started = Instant::now();
    let stop = started + 3 * phase;
    // Returns the signatures us-east-1 had made when the cut ended.
    let switch = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            tokio::time::sleep(phase).await;
            cut.set(Link::BlackHole);
            tokio::time::sleep(phase).await;
            cut.set(Link::Up);
            proxy.count_answered("Sign", 200)
        })
    };
    // Each worker signs one token after another; a token counts in the phase it finished in.
    let workers = (0..concurrency).map(|w| {
        let signer = &signer;
        async move {
            let mut done = Vec::new();
            let mut i = 0;
            while Instant::now() < stop {
                let asked = Instant::now();
                let claims = Claims::new().subject(format!("worker-{w}-{i}")).expires_at(kms_jwt::now() + 300);
                signer.sign(&claims).await?;
                done.push((asked.elapsed(), started.elapsed()));
                i += 1;
            }
            Ok::<_, kms_jwt::Error>(done)
        }
    });
    let done: Vec<(Duration, Duration)> =
        futures_util::future::try_join_all(workers).await?.into_iter().flatten().collect();
    let at_recovery = switch.await?;
    let rate = |n: u32| {
        let (from, to) = (n * phase, (n + 1) * phase);
        done.iter().filter(|(_, at)| *at >= from && *at < to).count() as f64 / phase.as_secs_f64()
    };
    let longest = done.iter().map(|(wait, _)| *wait).max().unwrap_or_default();
    let out = serde_json::json!({
        "before_per_sec": rate(0),
        "during_per_sec": rate(1),
        "after_per_sec": rate(2),
        "longest_wait_ms": longest.as_secs_f64() * 1e3,
        "timeout_ms": FAILOVER_TIMEOUT.as_secs_f64() * 1e3,
        "tokens": done.len(),
        "primary_requests_after": proxy.count_answered("Sign", 200) - at_recovery,
    });
    report::json(&out)
}
