//! A token cache for callers that mint the same token again and again (service-to-service
//! calls, Lambda): one KMS `Sign` per distinct claims set and lifetime, not per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::signer::Signer;
use crate::{Claims, JwtSigner, Result};

/// Claims that differ per token and so do not make two requests different.
const VOLATILE: [&str; 3] = ["iat", "exp", "jti"];

struct Entry {
    token: String,
    exp: i64,
}

/// Caches tokens by their claims (ignoring `iat`, `exp` and `jti`) until they are within
/// `margin` of expiry. Holds at most `capacity` tokens; when full, expired tokens go first,
/// then the one that expires soonest.
///
/// Two concurrent misses for the same claims may both sign; both tokens are valid.
pub struct TokenCache<S> {
    signer: JwtSigner<S>,
    ttl: Duration,
    margin: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

impl<S: Signer> TokenCache<S> {
    /// Tokens live `ttl` and are reused until `margin` before they expire.
    #[must_use]
    pub fn new(signer: JwtSigner<S>, ttl: Duration, margin: Duration, capacity: usize) -> TokenCache<S> {
        TokenCache { signer, ttl, margin, capacity: capacity.max(1), entries: Mutex::new(HashMap::new()) }
    }

    /// A token for `claims`: the cached one if it has more than the margin left, else a
    /// fresh one with `iat` = now and `exp` = now + ttl.
    pub async fn token(&self, claims: &Claims) -> Result<String> {
        self.token_at(claims, crate::claims::now()).await
    }

    /// [`TokenCache::token`] at a given time (seconds since the epoch).
    pub async fn token_at(&self, claims: &Claims, now: i64) -> Result<String> {
        let key = cache_key(claims);
        let margin = secs(self.margin);
        if let Some(entry) = self.lock().get(&key)
            && now < entry.exp.saturating_sub(margin)
        {
            return Ok(entry.token.clone());
        }
        let exp = now.saturating_add(secs(self.ttl));
        let fresh = claims.clone().issued_at(now).expires_at(exp);
        let token = self.signer.sign(&fresh).await?;
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, e| now < e.exp.saturating_sub(margin));
            if entries.len() >= self.capacity
                && let Some(soonest) = entries.iter().min_by_key(|(_, e)| e.exp).map(|(k, _)| k.clone())
            {
                entries.remove(&soonest);
            }
        }
        entries.insert(key, Entry { token: token.clone(), exp });
        Ok(token)
    }

    /// How many tokens are cached.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::jwk::PublicKey;
    use crate::{Algorithm, LocalSigner, Verifier, VerifyingKey};

    /// Counts the signatures it is asked for.
    struct Counting {
        inner: LocalSigner,
        calls: AtomicUsize,
    }

    impl Signer for Counting {
        fn algorithm(&self) -> Algorithm {
            self.inner.algorithm()
        }
        fn public_key(&self) -> &PublicKey {
            self.inner.public_key()
        }
        fn sign_digest<'a>(&'a self, digest: &'a aws_lc_rs::digest::Digest) -> crate::signer::SignatureFuture<'a> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.inner.sign_digest(digest)
        }
    }

    fn cache(capacity: usize) -> TokenCache<Counting> {
        let signer = Counting { inner: LocalSigner::generate(Algorithm::ES256).unwrap(), calls: AtomicUsize::new(0) };
        TokenCache::new(JwtSigner::new(signer).unwrap(), Duration::from_secs(600), Duration::from_secs(60), capacity)
    }

    fn calls(cache: &TokenCache<Counting>) -> usize {
        cache.signer.signer().calls.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn reuses_tokens_for_the_same_claims_until_the_margin() {
        let cache = cache(8);
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
        let key = VerifyingKey::from_jwk(&cache.signer.jwk(), None).unwrap();
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
}
