//! A token cache for callers that mint the same token again and again (service-to-service
//! calls, Lambda, an issuer): one KMS `Sign` per distinct claims set and lifetime, not per
//! request, and after warm-up no caller waits on KMS at all. It holds a bounded number of
//! tokens, the least recently used going first.
//!
//! - **Single flight**: callers that miss at once for the same claims share one `Sign` call
//!   and its answer, or its error.
//! - **Refresh ahead**: a token handed out within `refresh_ahead` of its `margin` is re-minted
//!   in the background; callers keep getting the current token meanwhile.
//! - **Never stale**: no token is handed out within `margin` of its expiry. A failed refresh
//!   keeps the current token until then, and then callers mint (and see the error) themselves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::signer::Signer;
use crate::{Claims, Error, JwtSigner, Result};

/// Claims that differ per token and so do not make two requests different.
const VOLATILE: [&str; 3] = ["iat", "exp", "jti"];

/// A token the cache handed out: the compact JWT, its `exp`, and its `jti` if it has one (a
/// cached token keeps the `jti` of the request that minted it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedToken {
    /// The compact JWT.
    pub token: String,
    /// Its `exp`, seconds since the epoch.
    pub expires_at: i64,
    /// Its `jti`.
    pub jti: Option<String>,
}

/// How often the cache had a token and how often callers waited for a mint (their own, or one
/// that another caller had started), since the cache was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Tokens handed out from the cache.
    pub hits: u64,
    /// Requests that waited for a mint.
    pub misses: u64,
}

impl std::ops::Add for CacheStats {
    type Output = CacheStats;
    fn add(self, other: CacheStats) -> CacheStats {
        CacheStats { hits: self.hits + other.hits, misses: self.misses + other.misses }
    }
}

/// One mint in progress, shared by every caller that waits for it.
type Flight = Arc<OnceCell<Result<MintedToken, Arc<Error>>>>;

/// How long after a failed background refresh the next one may start: a KMS outage costs a
/// few calls a minute per claims set, not one per request.
const REFRESH_RETRY_SECS: i64 = 5;

#[derive(Default)]
struct Entry {
    minted: Option<MintedToken>,
    flight: Option<Flight>,
    /// When the last mint for these claims failed.
    failed_at: Option<i64>,
    /// When it was last asked for, in the cache's own ticks: the least recent goes first.
    used: u64,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    tick: u64,
}

struct Inner<S> {
    signer: JwtSigner<S>,
    ttl: i64,
    margin: i64,
    refresh_ahead: i64,
    capacity: usize,
    entries: Mutex<Entries>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The lifetime of one request and the times derived from it.
#[derive(Clone, Copy)]
struct Lifetime {
    ttl: i64,
    margin: i64,
    refresh_ahead: i64,
}

/// Caches tokens by their claims (ignoring `iat`, `exp` and `jti`) and lifetime. Holds at most
/// `capacity` of them; when full, expired ones go first, then the least recently used. Cheap to
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
    /// Tokens live `ttl` (unless [`TokenCache::mint`] asks otherwise) and are handed out until
    /// `margin` before they expire; a token in use is refreshed in the background from `margin`
    /// plus one more `margin` before its expiry (see [`TokenCache::refresh_ahead`]).
    #[must_use]
    pub fn new(signer: JwtSigner<S>, ttl: Duration, margin: Duration, capacity: usize) -> TokenCache<S> {
        TokenCache {
            inner: Arc::new(Inner {
                signer,
                ttl: secs(ttl),
                margin: secs(margin),
                refresh_ahead: secs(margin),
                capacity: capacity.max(1),
                entries: Mutex::new(Entries::default()),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
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
        let lifetime = self.inner.lifetime(self.inner.ttl);
        Ok(self.inner.get(claims, lifetime, now).await?.token)
    }

    /// A token for `claims` that lives `ttl`, cached apart from the same claims with another
    /// lifetime. Its margin is the cache's, but at most a quarter of `ttl`.
    pub async fn mint(&self, claims: &Claims, ttl: Duration) -> Result<MintedToken> {
        self.mint_at(claims, ttl, crate::claims::now()).await
    }

    /// [`TokenCache::mint`] at a given time (seconds since the epoch).
    pub async fn mint_at(&self, claims: &Claims, ttl: Duration, now: i64) -> Result<MintedToken> {
        let ttl = secs(ttl);
        let margin = self.inner.margin.min(ttl / 4);
        let lifetime = Lifetime { ttl, margin, refresh_ahead: self.inner.refresh_ahead.min(margin) };
        self.inner.get(claims, lifetime, now).await
    }

    /// How many tokens are cached.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.lock().map.len()
    }

    /// Whether nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hits and misses so far.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        CacheStats { hits: self.inner.hits.load(Ordering::Relaxed), misses: self.inner.misses.load(Ordering::Relaxed) }
    }

    /// The signer the cache mints with.
    #[must_use]
    pub fn signer(&self) -> &JwtSigner<S> {
        &self.inner.signer
    }
}

impl<S: Signer + 'static> Inner<S> {
    fn lifetime(&self, ttl: i64) -> Lifetime {
        Lifetime { ttl, margin: self.margin, refresh_ahead: self.refresh_ahead }
    }

    async fn get(self: &Arc<Self>, claims: &Claims, lifetime: Lifetime, now: i64) -> Result<MintedToken> {
        let key = cache_key(claims, lifetime.ttl);
        let flight = {
            let mut entries = self.lock();
            entries.tick += 1;
            let tick = entries.tick;
            if let Some(entry) = entries.map.get_mut(&key)
                && let Some(minted) = &entry.minted
                && now < minted.expires_at.saturating_sub(lifetime.margin)
            {
                entry.used = tick;
                let token = minted.clone();
                let refresh_from =
                    minted.expires_at.saturating_sub(lifetime.margin).saturating_sub(lifetime.refresh_ahead);
                if now >= refresh_from
                    && entry.flight.is_none()
                    && entry.failed_at.is_none_or(|failed| now >= failed.saturating_add(REFRESH_RETRY_SECS))
                    && let Ok(runtime) = tokio::runtime::Handle::try_current()
                {
                    let flight = Flight::default();
                    entry.flight = Some(flight.clone());
                    let (inner, key, claims) = (self.clone(), key.clone(), claims.clone());
                    runtime.spawn(async move {
                        let _ = inner.fly(&key, &claims, lifetime.ttl, &flight, now).await;
                    });
                }
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(token);
            }
            self.misses.fetch_add(1, Ordering::Relaxed);
            make_room(&mut entries.map, self.capacity, &key, now);
            let entry = entries.map.entry(key.clone()).or_default();
            entry.used = tick;
            entry.flight.get_or_insert_with(Flight::default).clone()
        };
        self.fly(&key, claims, lifetime.ttl, &flight, now).await.map_err(Error::Shared)
    }
}

impl<S: Signer> Inner<S> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for `flight` (minting if no one else is), then records its outcome once. A failed
    /// mint leaves the previous token in place: still valid until its margin.
    async fn fly(
        &self,
        key: &str,
        claims: &Claims,
        ttl: i64,
        flight: &Flight,
        now: i64,
    ) -> Result<MintedToken, Arc<Error>> {
        let outcome = flight
            .get_or_init(|| async {
                let exp = now.saturating_add(ttl);
                let fresh = claims.clone().issued_at(now).expires_at(exp);
                let jti = fresh.get("jti").and_then(|j| j.as_str()).map(str::to_owned);
                self.signer
                    .sign(&fresh)
                    .await
                    .map(|token| MintedToken { token, expires_at: exp, jti })
                    .map_err(Arc::new)
            })
            .await
            .clone();
        let mut entries = self.lock();
        if let Some(entry) = entries.map.get_mut(key)
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
        outcome
    }
}

/// Makes room for `key` when the cache is full: expired entries go first, then the least
/// recently used. Entries with a mint in flight stay (their callers wait on them).
fn make_room(entries: &mut HashMap<String, Entry>, capacity: usize, key: &str, now: i64) {
    if entries.len() < capacity || entries.contains_key(key) {
        return;
    }
    entries.retain(|_, e| e.flight.is_some() || e.minted.as_ref().is_some_and(|m| now < m.expires_at));
    if entries.len() >= capacity
        && let Some(least) =
            entries.iter().filter(|(_, e)| e.flight.is_none()).min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone())
    {
        entries.remove(&least);
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The lifetime and the claims without their volatile members, as canonical JSON
/// (`serde_json` sorts keys).
fn cache_key(claims: &Claims, ttl: i64) -> String {
    let mut map = claims.as_map().clone();
    for name in VOLATILE {
        map.remove(name);
    }
    format!("{ttl} {}", serde_json::Value::Object(map))
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
        fn sign_message<'a>(&'a self, message: &'a [u8]) -> SignatureFuture<'a> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                if self.fail.load(Ordering::SeqCst) {
                    return Err(Error::InvalidResponse("injected".into()));
                }
                self.inner.sign_message(message).await
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
        Verifier::new(vec![key])
            .clone()
            .at(now)
            .verify::<crate::Claims>(token)
            .map(|v| v.claims)
            .unwrap()
            .get("exp")
            .unwrap()
            .as_i64()
            .unwrap()
    }

    /// Waits (a bounded number of turns, no timing) until the background work has signed.
    async fn until_calls(cache: &TokenCache<Counting>, n: usize) {
        for _ in 0..1000 {
            if calls(cache) >= n && cache.inner.lock().map.values().all(|e| e.flight.is_none()) {
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
        assert_eq!(cache.stats(), CacheStats { hits: 1, misses: 1 });
        // Within 60 s of its expiry (t0 + 600) it is replaced.
        let renewed = cache.token_at(&claims, t0 + 541).await.unwrap();
        assert_ne!(renewed, first);
        assert_eq!(calls(&cache), 2);
        assert_eq!(cache.stats(), CacheStats { hits: 1, misses: 2 });
        // Other claims, other token.
        let other = cache.token_at(&Claims::new().subject("other"), t0).await.unwrap();
        assert_ne!(other, renewed);
        let key = VerifyingKey::from_jwk(&cache.signer().jwk(), None).unwrap();
        let claims = Verifier::new(vec![key])
            .with_audience("api")
            .clone()
            .at(t0 + 541)
            .verify::<crate::Claims>(&renewed)
            .map(|v| v.claims)
            .unwrap();
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

    #[tokio::test]
    async fn the_least_recently_used_token_goes_first() {
        let cache = cache(3);
        let t0 = 1_800_000_000;
        let claims = |s: &str| Claims::new().subject(s);
        for s in ["a", "b", "c"] {
            cache.token_at(&claims(s), t0).await.unwrap();
        }
        // "a" is used again, so "b" is the least recently used when "d" needs room.
        cache.token_at(&claims("a"), t0 + 1).await.unwrap();
        cache.token_at(&claims("d"), t0 + 2).await.unwrap();
        assert_eq!(calls(&cache), 4);
        cache.token_at(&claims("a"), t0 + 3).await.unwrap();
        assert_eq!(calls(&cache), 4, "a was kept");
        cache.token_at(&claims("b"), t0 + 4).await.unwrap();
        assert_eq!(calls(&cache), 5, "b was dropped");
    }

    #[tokio::test]
    async fn each_lifetime_is_its_own_token_with_a_margin_of_at_most_a_quarter() {
        let cache = cache(64).refresh_ahead(Duration::ZERO);
        let claims = Claims::new().subject("svc").random_jwt_id();
        let t0 = 1_800_000_000;
        let short = cache.mint_at(&claims, Duration::from_secs(120), t0).await.unwrap();
        let long = cache.mint_at(&claims, Duration::from_secs(900), t0).await.unwrap();
        assert_eq!((short.expires_at, long.expires_at), (t0 + 120, t0 + 900));
        assert_ne!(short.token, long.token);
        assert_eq!(short.jti.as_deref(), claims.get("jti").and_then(|j| j.as_str()));
        assert_eq!(calls(&cache), 2);
        // The cache's margin is 60 s, but a 120 s token's is 30 s: handed out until t0 + 90.
        assert_eq!(cache.mint_at(&claims, Duration::from_secs(120), t0 + 89).await.unwrap(), short);
        assert_ne!(cache.mint_at(&claims, Duration::from_secs(120), t0 + 90).await.unwrap(), short);
        // A caller cycling through lifetimes grows the cache only to its capacity.
        for ttl in 60..400 {
            cache.mint_at(&claims, Duration::from_secs(ttl), t0).await.unwrap();
            assert!(cache.len() <= 64);
        }
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
            assert!(matches!(&err, Error::Shared(inner) if matches!(**inner, Error::InvalidResponse(_))), "{err:?}");
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
            assert!(matches!(&err, Error::Shared(inner) if matches!(**inner, Error::InvalidResponse(_))), "{err:?}");
        }
        // KMS is back: the next caller mints.
        cache.signer().signer().fail.store(false, Ordering::SeqCst);
        let fresh = cache.token_at(&claims, t0 + 10_000).await.unwrap();
        assert_eq!(exp_of(&cache, &fresh, t0 + 10_000), t0 + 10_600);
    }
}
