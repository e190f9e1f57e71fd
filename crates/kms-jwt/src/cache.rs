//! A token cache for callers that mint the same token again and again (service-to-service
//! calls, Lambda, an issuer): one KMS `Sign` per distinct claims set and lifetime, not per
//! request, and after warm-up no caller waits on KMS at all.
//!
//! - **Single flight**: callers that miss at once for the same claims share one `Sign` call
//!   and its answer, or its error.
//! - **Refresh ahead**: a token handed out within `refresh_ahead` of its `margin` is re-minted
//!   in the background; callers keep getting the current token meanwhile.
//! - **Never stale**: no token is handed out within `margin` of its expiry. A failed refresh
//!   keeps the current token until then, and then callers mint (and see the error) themselves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::signer::Signer;
use crate::{Claims, Error, JwtSigner, Result};

/// Claims that differ per token and so do not make two requests different.
const VOLATILE: [&str; 3] = ["iat", "exp", "jti"];

/// A minted token and its `exp`.
#[derive(Clone)]
struct Minted {
    token: String,
    exp: i64,
}

/// One mint in progress, shared by every caller that waits for it.
type Flight = Arc<OnceCell<Result<Minted, Arc<Error>>>>;

/// How long after a failed background refresh the next one may start: a KMS outage costs a
/// few calls a minute per claims set, not one per request.
const REFRESH_RETRY_SECS: i64 = 5;

#[derive(Default)]
struct Entry {
    minted: Option<Minted>,
    flight: Option<Flight>,
    /// When the last mint for these claims failed.
    failed_at: Option<i64>,
}

struct Inner<S> {
    signer: JwtSigner<S>,
    ttl: i64,
    margin: i64,
    refresh_ahead: i64,
    capacity: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

/// Caches tokens by their claims (ignoring `iat`, `exp` and `jti`). Holds at most `capacity`
/// claims sets; when full, expired ones go first, then the one that expires soonest. Cheap to
/// clone: clones share the cache.
///
/// Background refreshes run on the Tokio runtime of the caller; without one, a token is simply
/// re-minted by the first caller that finds it within its margin.
pub struct TokenCache<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for TokenCache<S> {
    fn clone(&self) -> Self {
        TokenCache { inner: self.inner.clone() }
    }
}

impl<S: Signer + 'static> TokenCache<S> {
    /// Tokens live `ttl` and are handed out until `margin` before they expire; a token in use
    /// is refreshed in the background from `margin` plus one more `margin` before its expiry
    /// (see [`TokenCache::refresh_ahead`]).
    #[must_use]
    pub fn new(signer: JwtSigner<S>, ttl: Duration, margin: Duration, capacity: usize) -> TokenCache<S> {
        TokenCache {
            inner: Arc::new(Inner {
                signer,
                ttl: secs(ttl),
                margin: secs(margin),
                refresh_ahead: secs(margin),
                capacity: capacity.max(1),
                entries: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Starts the background refresh of a token in use this long before its margin.
    ///
    /// # Panics
    ///
    /// If the cache has been cloned already (set it when building the cache).
    #[must_use]
    pub fn refresh_ahead(mut self, ahead: Duration) -> TokenCache<S> {
        Arc::get_mut(&mut self.inner).expect("refresh_ahead is set before the cache is shared").refresh_ahead =
            secs(ahead);
        self
    }

    /// A token for `claims`: a cached one if it has more than the margin left, else a fresh
    /// one with `iat` = now and `exp` = now + ttl.
    pub async fn token(&self, claims: &Claims) -> Result<String> {
        self.token_at(claims, crate::claims::now()).await
    }

    /// [`TokenCache::token`] at a given time (seconds since the epoch).
    ///
    /// An error from a mint that several callers waited for reaches each of them as
    /// [`Error::Shared`].
    pub async fn token_at(&self, claims: &Claims, now: i64) -> Result<String> {
        let inner = &self.inner;
        let key = cache_key(claims);
        let flight = {
            let mut entries = inner.lock();
            if let Some(entry) = entries.get_mut(&key)
                && let Some(minted) = &entry.minted
                && now < minted.exp.saturating_sub(inner.margin)
            {
                let token = minted.token.clone();
                let refresh_from = minted.exp.saturating_sub(inner.margin).saturating_sub(inner.refresh_ahead);
                if now >= refresh_from
                    && entry.flight.is_none()
                    && entry.failed_at.is_none_or(|failed| now >= failed.saturating_add(REFRESH_RETRY_SECS))
                    && let Ok(runtime) = tokio::runtime::Handle::try_current()
                {
                    let flight = Flight::default();
                    entry.flight = Some(flight.clone());
                    let (inner, key, claims) = (inner.clone(), key.clone(), claims.clone());
                    runtime.spawn(async move {
                        let _ = inner.fly(&key, &claims, &flight, now).await;
                    });
                }
                return Ok(token);
            }
            inner.make_room(&mut entries, &key, now);
            entries.entry(key.clone()).or_default().flight.get_or_insert_with(Flight::default).clone()
        };
        inner.fly(&key, claims, &flight, now).await.map_err(Error::Shared)
    }

    /// How many claims sets are cached.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    /// Whether nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The signer the cache mints with.
    #[must_use]
    pub fn signer(&self) -> &JwtSigner<S> {
        &self.inner.signer
    }
}

impl<S: Signer> Inner<S> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for `flight` (minting if no one else is), then records its outcome once. A failed
    /// mint leaves the previous token in place: still valid until its margin.
    async fn fly(&self, key: &str, claims: &Claims, flight: &Flight, now: i64) -> Result<String, Arc<Error>> {
        let outcome = flight
            .get_or_init(|| async {
                let exp = now.saturating_add(self.ttl);
                let fresh = claims.clone().issued_at(now).expires_at(exp);
                self.signer.sign(&fresh).await.map(|token| Minted { token, exp }).map_err(Arc::new)
            })
            .await
            .clone();
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(key)
            && entry.flight.as_ref().is_some_and(|f| Arc::ptr_eq(f, flight))
        {
            entry.flight = None;
            match &outcome {
                Ok(minted) => {
                    entry.minted = Some(minted.clone());
                    entry.failed_at = None;
                }
                Err(_) => entry.failed_at = Some(now),
            }
        }
        outcome.map(|minted| minted.token)
    }

    /// Makes room for `key` when the cache is full: expired entries go first, then the one
    /// that expires soonest. Entries with a mint in flight stay (their callers wait on them).
    fn make_room(&self, entries: &mut HashMap<String, Entry>, key: &str, now: i64) {
        if entries.len() < self.capacity || entries.contains_key(key) {
            return;
        }
        let margin = self.margin;
        entries.retain(|_, e| e.flight.is_some() || e.minted.as_ref().is_some_and(|m| now < m.exp - margin));
        if entries.len() >= self.capacity
            && let Some(soonest) = entries
                .iter()
                .filter(|(_, e)| e.flight.is_none())
                .min_by_key(|(_, e)| e.minted.as_ref().map_or(i64::MIN, |m| m.exp))
                .map(|(k, _)| k.clone())
        {
            entries.remove(&soonest);
        }
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The claims without their volatile members, as canonical JSON (`serde_json` sorts keys).
fn cache_key(claims: &Claims) -> String {
    let mut map = claims.as_map().clone();
    for name in VOLATILE {
        map.remove(name);
    }
    serde_json::Value::Object(map).to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::jwk::PublicKey;
    use crate::signer::SignatureFuture;
    use crate::{Algorithm, LocalSigner, Verifier, VerifyingKey};

    /// Counts the signatures it is asked for; can be slow, and can fail.
    struct Counting {
        inner: LocalSigner,
        calls: AtomicUsize,
        delay: Duration,
        fail: AtomicBool,
    }

    impl Signer for Counting {
        fn algorithm(&self) -> Algorithm {
            self.inner.algorithm()
        }
        fn public_key(&self) -> &PublicKey {
            self.inner.public_key()
        }
        fn sign_digest<'a>(&'a self, digest: &'a aws_lc_rs::digest::Digest) -> SignatureFuture<'a> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                if self.fail.load(Ordering::SeqCst) {
                    return Err(Error::Throttled { attempts: 1, source: "injected".into() });
                }
                self.inner.sign_digest(digest).await
            })
        }
    }

    fn cache_with(capacity: usize, delay: Duration) -> TokenCache<Counting> {
        let signer = Counting {
            inner: LocalSigner::generate(Algorithm::ES256).unwrap(),
            calls: AtomicUsize::new(0),
            delay,
            fail: AtomicBool::new(false),
        };
        TokenCache::new(JwtSigner::new(signer).unwrap(), Duration::from_secs(600), Duration::from_secs(60), capacity)
    }

    fn cache(capacity: usize) -> TokenCache<Counting> {
        cache_with(capacity, Duration::ZERO)
    }

    fn calls(cache: &TokenCache<Counting>) -> usize {
        cache.signer().signer().calls.load(Ordering::SeqCst)
    }

    fn exp_of(cache: &TokenCache<Counting>, token: &str, now: i64) -> i64 {
        let key = VerifyingKey::from_jwk(&cache.signer().jwk(), None).unwrap();
        Verifier::new(vec![key]).verify_at(token, now).unwrap().get("exp").unwrap().as_i64().unwrap()
    }

    /// Waits (a bounded number of turns, no timing) until the background work has signed.
    async fn until_calls(cache: &TokenCache<Counting>, n: usize) {
        for _ in 0..1000 {
            if calls(cache) >= n && cache.inner.lock().values().all(|e| e.flight.is_none()) {
                return;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("the background refresh never finished");
    }

    #[tokio::test]
    async fn reuses_tokens_for_the_same_claims_until_the_margin() {
        let cache = cache(8).refresh_ahead(Duration::ZERO);
        let claims = Claims::new().subject("svc").audience("api");
        let t0 = 1_800_000_000;
        let first = cache.token_at(&claims, t0).await.unwrap();
        // iat, exp and jti do not make a request different.
        let same = claims.clone().jwt_id("x").issued_at(5).expires_at(6);
        assert_eq!(cache.token_at(&same, t0 + 500).await.unwrap(), first);
        assert_eq!(calls(&cache), 1);
        // Within 60 s of its expiry (t0 + 600) it is replaced.
        let renewed = cache.token_at(&claims, t0 + 541).await.unwrap();
        assert_ne!(renewed, first);
        assert_eq!(calls(&cache), 2);
        // Other claims, other token.
        let other = cache.token_at(&Claims::new().subject("other"), t0).await.unwrap();
        assert_ne!(other, renewed);
        let key = VerifyingKey::from_jwk(&cache.signer().jwk(), None).unwrap();
        let claims = Verifier::new(vec![key]).verify_at(&renewed, t0 + 541).unwrap();
        assert_eq!(claims.get("exp").unwrap(), t0 + 541 + 600);
        assert_eq!(claims.get("iat").unwrap(), t0 + 541);
    }

    #[tokio::test]
    async fn stays_within_its_capacity() {
        let cache = cache(4);
        for i in 0..20 {
            cache.token_at(&Claims::new().subject(format!("s{i}")), 1_800_000_000 + i).await.unwrap();
            assert!(cache.len() <= 4);
        }
        // The most recent ones are kept.
        cache.token_at(&Claims::new().subject("s19"), 1_800_000_020).await.unwrap();
        assert_eq!(calls(&cache), 20);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_misses_makes_one_sign_call_and_shares_its_answer_or_its_error() {
        let cache = cache_with(8, Duration::from_millis(50));
        let claims = Claims::new().subject("burst");
        let burst = |cache: TokenCache<Counting>, claims: Claims| async move {
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    let (cache, claims) = (cache.clone(), claims.clone());
                    tokio::spawn(async move { cache.token_at(&claims, 1_800_000_000).await })
                })
                .collect();
            let mut out = Vec::new();
            for task in tasks {
                out.push(task.await.unwrap());
            }
            out
        };
        let tokens = burst(cache.clone(), claims.clone()).await;
        assert_eq!(calls(&cache), 1);
        let first = tokens[0].as_ref().unwrap();
        assert!(tokens.iter().all(|t| t.as_ref().unwrap() == first));

        cache.signer().signer().fail.store(true, Ordering::SeqCst);
        let failed = burst(cache.clone(), Claims::new().subject("burst-2")).await;
        assert_eq!(calls(&cache), 2, "one call for the whole burst, failing");
        for result in failed {
            let err = result.unwrap_err();
            assert!(matches!(&err, Error::Shared(inner) if matches!(**inner, Error::Throttled { .. })), "{err:?}");
        }
    }

    #[tokio::test]
    async fn a_token_in_use_is_refreshed_in_the_background() {
        let cache = cache(8);
        let claims = Claims::new().subject("busy");
        let t0 = 1_800_000_000;
        let first = cache.token_at(&claims, t0).await.unwrap();
        // Refresh starts one margin before the margin: from t0 + 480. The caller is not kept
        // waiting: it gets the current token.
        assert_eq!(cache.token_at(&claims, t0 + 480).await.unwrap(), first);
        until_calls(&cache, 2).await;
        let second = cache.token_at(&claims, t0 + 481).await.unwrap();
        assert_ne!(second, first);
        assert_eq!(exp_of(&cache, &second, t0 + 481), t0 + 480 + 600);
        assert_eq!(calls(&cache), 2);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_token_until_its_margin_then_surfaces_the_error() {
        let cache = cache(8);
        let claims = Claims::new().subject("failing");
        let t0 = 1_800_000_000;
        let first = cache.token_at(&claims, t0).await.unwrap();
        cache.signer().signer().fail.store(true, Ordering::SeqCst);
        assert_eq!(cache.token_at(&claims, t0 + 500).await.unwrap(), first);
        until_calls(&cache, 2).await;
        // The refresh failed: the current token is still handed out while it has its margin,
        // and the next background attempt waits a few seconds rather than follow every request.
        assert_eq!(cache.token_at(&claims, t0 + 501).await.unwrap(), first);
        assert_eq!(calls(&cache), 2);
        assert_eq!(cache.token_at(&claims, t0 + 539).await.unwrap(), first);
        until_calls(&cache, 3).await;
        // Never a token within its margin, let alone an expired one: the error instead.
        for now in [t0 + 540, t0 + 600, t0 + 10_000] {
            let err = cache.token_at(&claims, now).await.unwrap_err();
            assert!(matches!(&err, Error::Shared(inner) if matches!(**inner, Error::Throttled { .. })), "{err:?}");
        }
        // KMS is back: the next caller mints.
        cache.signer().signer().fail.store(false, Ordering::SeqCst);
        let fresh = cache.token_at(&claims, t0 + 10_000).await.unwrap();
        assert_eq!(exp_of(&cache, &fresh, t0 + 10_000), t0 + 10_600);
    }
}
