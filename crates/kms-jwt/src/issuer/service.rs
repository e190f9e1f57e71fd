//! The issuer without its transport: a request (audience, lifetime, credential, client) in; a
//! token or a refusal, and one audit record, out. `kms-jwt serve` puts it behind HTTP with STS
//! proofs; a Lambda function behind IAM auth puts it behind its invocation.
//!
//! Checks run cheapest first, and every limit before the call it protects:
//!
//! 1. the client address's rate ([`Issuer::admit`], which a transport calls before it reads
//!    the request);
//! 2. the lifetime asked for (whole seconds, at least a minute);
//! 3. the credential, offline (for a proof: everything but its signature);
//! 4. the rate of the access key id from this address (a key id is the caller's to claim until
//!    STS has checked it, so it is counted per address: nobody can spend another's quota), then
//!    single use (a proof's signature);
//! 5. the caller, from STS; a proof STS refuses is forgotten (it is worthless), so forged proofs
//!    hold no place in the replay set;
//! 6. the principal's rate, then the policy;
//! 7. the token, from a cache keyed by claims and lifetime.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::authenticate::{Authenticator, Caller, Refusal, RefusalKind};
use super::limit::{RateLimiter, Verdict, address_key};
use super::policy::{Decision, MIN_TTL, TokenPolicy};
use super::replay::{Replay, ReplayCache};
use crate::cache::{CacheStats, MintedToken};
use crate::{Claims, JwtSigner, Result, Signer, TokenCache};

/// The claim that carries the caller's AWS account id.
pub const ACCOUNT_CLAIM: &str = "aws_account";

/// Limits and sizes of an [`Issuer`].
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// The `iss` of every token.
    pub issuer: String,
    /// Tokens per principal per minute; the same number of requests per access key id and
    /// client address, counted before STS is asked.
    pub rate_limit: u32,
    /// Requests per client address (an IPv6 client's /64) per minute, counted first; 0 turns
    /// it off (behind a load balancer every request comes from its addresses).
    pub address_rate_limit: u32,
    /// Tokens cached (by claims and lifetime).
    pub cache_capacity: usize,
    /// Proofs remembered within their window; when full, new ones are refused.
    pub replay_capacity: usize,
    /// Keys each rate limiter tracks at once; when full, the oldest window is forgotten.
    pub limiter_capacity: usize,
}

impl IssuerConfig {
    /// The defaults for an issuer whose tokens carry `iss` = `issuer`.
    #[must_use]
    pub fn new(issuer: impl Into<String>) -> IssuerConfig {
        IssuerConfig {
            issuer: issuer.into(),
            rate_limit: 60,
            address_rate_limit: 600,
            cache_capacity: 10_000,
            replay_capacity: 100_000,
            limiter_capacity: 100_000,
        }
    }
}

/// What a caller asks for.
#[derive(Debug, Clone, Default)]
pub struct TokenAsk {
    /// The audience (`aud`).
    pub audience: String,
    /// The lifetime, such as `15m`; the rule's `max_ttl` when absent.
    pub ttl: Option<String>,
}

/// Where a request came from.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The peer's address, if the transport knows it.
    pub address: Option<IpAddr>,
    /// The request's id, for the audit line and the answer.
    pub request_id: String,
}

/// A token issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The compact JWT.
    pub token: String,
    /// Its `exp`.
    pub expires_at: i64,
}

/// The decision on one request, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditDecision {
    /// A token was issued.
    Allow,
    /// Refused because of the request or the caller.
    Deny,
    /// Refused because the issuer or what it depends on failed.
    Error,
}

/// One audit record per request: JSON, one object per line whatever the input.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// Always `"token"`.
    pub audit: &'static str,
    /// When the decision was made (RFC 3339).
    pub time: String,
    /// The request's id.
    pub request_id: String,
    /// The client's address.
    pub client: Option<String>,
    /// The caller's ARN as AWS gave it (an assumed-role session with its session name).
    pub arn: Option<String>,
    /// The principal the policy matched.
    pub principal: Option<String>,
    /// The access key id the request was signed with.
    pub access_key_id: Option<String>,
    /// The audience asked for.
    pub audience: Option<String>,
    /// The policy rule that decided (0 for the first), when one matched.
    pub rule: Option<usize>,
    /// The token's `jti`.
    pub jti: Option<String>,
    /// The token's `exp`.
    pub exp: Option<i64>,
    /// The decision.
    pub decision: AuditDecision,
    /// Why: the refusal's message, or `policy allows`.
    pub reason: String,
}

impl AuditRecord {
    /// A record of a request from `client`, decided (so far) as denied for no stated reason.
    #[must_use]
    pub fn new(client: &ClientInfo) -> AuditRecord {
        AuditRecord {
            audit: "token",
            time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            request_id: client.request_id.clone(),
            client: client.address.map(|a| a.to_string()),
            arn: None,
            principal: None,
            access_key_id: None,
            audience: None,
            rule: None,
            jti: None,
            exp: None,
            decision: AuditDecision::Deny,
            reason: String::new(),
        }
    }
}

/// The answer to one request and its audit record.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The token, or why not.
    pub result: std::result::Result<Issued, Refusal>,
    /// What the audit log keeps.
    pub audit: AuditRecord,
}

/// The signer and its token cache, swapped together when the key rotates: one lock, so no
/// order of two locks can deadlock.
struct Minting {
    kid: String,
    cache: TokenCache<Arc<dyn Signer>>,
}

/// Exchanges authenticated AWS identities for tokens, under a policy and limits.
pub struct Issuer<A: Authenticator> {
    config: IssuerConfig,
    authenticator: A,
    policy: RwLock<Arc<TokenPolicy>>,
    minting: RwLock<Arc<Minting>>,
    by_address: RateLimiter,
    by_key: RateLimiter,
    by_principal: RateLimiter,
    replay: ReplayCache,
    /// The hits and misses of the token caches of keys no longer signed with.
    retired: Mutex<CacheStats>,
}

/// A cached token is handed out until a quarter of its lifetime (at most 5 minutes) is left.
const CACHE_MARGIN: Duration = Duration::from_secs(300);

impl<A: Authenticator> Issuer<A> {
    /// An issuer that signs with `signer` under `policy`.
    pub fn new(config: IssuerConfig, authenticator: A, policy: TokenPolicy, signer: Arc<dyn Signer>) -> Result<Self> {
        let minting = Arc::new(Minting::new(signer, config.cache_capacity)?);
        let capacity = config.limiter_capacity;
        Ok(Issuer {
            by_address: RateLimiter::new(config.address_rate_limit, capacity),
            by_key: RateLimiter::new(config.rate_limit, capacity),
            by_principal: RateLimiter::new(config.rate_limit, capacity),
            replay: ReplayCache::new(config.replay_capacity),
            retired: Mutex::default(),
            policy: RwLock::new(Arc::new(policy)),
            minting: RwLock::new(minting),
            authenticator,
            config,
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &IssuerConfig {
        &self.config
    }

    /// The authenticator.
    #[must_use]
    pub fn authenticator(&self) -> &A {
        &self.authenticator
    }

    /// Puts `policy` in force for the requests that start from now on.
    pub fn set_policy(&self, policy: TokenPolicy) {
        *self.policy.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(policy);
    }

    /// Signs with `signer` from now on, if it is another key than the current one (a rotation);
    /// its tokens are minted afresh. Whether the key changed. A key whose lifetime policy is
    /// shorter than a rule of the policy in force is refused, and the current key kept: every
    /// token that rule allows would fail.
    pub fn set_signer(&self, signer: Arc<dyn Signer>) -> Result<bool> {
        let kid = signer.public_key().thumbprint();
        if self.minting.read().unwrap_or_else(PoisonError::into_inner).kid == kid {
            return Ok(false);
        }
        let policy = self.policy.read().unwrap_or_else(PoisonError::into_inner).clone();
        if let (Some(limit), Some(longest)) = (signer.max_token_ttl(), policy.longest_ttl())
            && longest > limit
        {
            return Err(crate::Error::Refused(format!(
                "key {kid} allows tokens of at most {}, less than the policy's max_ttl of {}",
                humantime::format_duration(limit),
                humantime::format_duration(longest)
            )));
        }
        let fresh = Arc::new(Minting::new(signer, self.config.cache_capacity)?);
        let old = std::mem::replace(&mut *self.minting.write().unwrap_or_else(PoisonError::into_inner), fresh);
        // Read after the swap: no later hit counts twice, so the total never goes down.
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        *retired = *retired + old.cache.stats();
        Ok(true)
    }

    /// The token cache's hits and misses since the issuer started, across rotations.
    #[must_use]
    pub fn cache_stats(&self) -> CacheStats {
        let retired = *self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        retired + self.minting.read().unwrap_or_else(PoisonError::into_inner).cache.stats()
    }

    /// The `kid` of the key tokens are signed with now.
    #[must_use]
    pub fn kid(&self) -> String {
        self.minting.read().unwrap_or_else(PoisonError::into_inner).kid.clone()
    }

    /// The client address's rate: a transport asks before it reads the request, so that a
    /// flood from one address costs no more than this. `Err` with the refusal to answer, and
    /// whether it is the first of the window (worth an audit line; the rest are not).
    pub fn admit(&self, client: &ClientInfo) -> std::result::Result<(), (Refusal, bool)> {
        let Some(address) = client.address else { return Ok(()) };
        match self.by_address.check(&address_key(address), Instant::now()) {
            Verdict::Allowed => Ok(()),
            Verdict::Limited { wait, first } => Err((limited(wait), first)),
        }
    }

    /// Decides one request (after [`Issuer::admit`]).
    pub async fn issue(&self, ask: &TokenAsk, credential: &A::Credential, client: &ClientInfo) -> Outcome {
        let mut audit = AuditRecord { audience: Some(ask.audience.clone()), ..AuditRecord::new(client) };
        let result = self.decide(ask, credential, client, &mut audit).await;
        match &result {
            Ok(_) => {
                audit.decision = AuditDecision::Allow;
                "policy allows".clone_into(&mut audit.reason);
            }
            Err(refusal) => {
                audit.decision = match refusal.kind {
                    RefusalKind::Unavailable => AuditDecision::Error,
                    _ => AuditDecision::Deny,
                };
                audit.reason.clone_from(&refusal.message);
            }
        }
        Outcome { result, audit }
    }

    async fn decide(
        &self,
        ask: &TokenAsk,
        credential: &A::Credential,
        client: &ClientInfo,
        audit: &mut AuditRecord,
    ) -> std::result::Result<Issued, Refusal> {
        let (now, clock) = (Instant::now(), SystemTime::now());
        let ttl = ask.ttl.as_deref().map(parse_ttl).transpose()?;
        let (precheck, checked) = self.authenticator.precheck(credential, clock)?;
        audit.access_key_id.clone_from(&precheck.access_key_id);
        if let Some(key) = &precheck.access_key_id {
            let from = client.address.map_or_else(|| "-".to_owned(), address_key);
            limit(&self.by_key, &format!("{from} {key}"), now)?;
        }
        let single_use = precheck.single_use;
        if let Some((value, until)) = &single_use {
            // The same clock as the check: a proof accepted is remembered past this moment.
            self.replay.reserve(value, *until, clock).map_err(|replay| match replay {
                Replay::Used => Refusal::new(RefusalKind::Unauthenticated, "proof already used"),
                Replay::Expired => Refusal::new(RefusalKind::Unauthenticated, "the proof's window has closed"),
                Replay::Full => busy(),
            })?;
        }
        let result = self.decide_for(ask, ttl, &checked, audit, now).await;
        // A credential STS refused is worthless, and one that met a failure of the issuer's (STS
        // or KMS unavailable) may be tried again: neither holds a place.
        if let (Err(refusal), Some((value, _))) = (&result, &single_use)
            && (refusal.kind == RefusalKind::Unavailable || audit.arn.is_none())
        {
            self.replay.release(value);
        }
        result
    }

    async fn decide_for(
        &self,
        ask: &TokenAsk,
        ttl: Option<Duration>,
        checked: &A::Checked,
        audit: &mut AuditRecord,
        now: Instant,
    ) -> std::result::Result<Issued, Refusal> {
        let Caller { arn, account, principal } = self.authenticator.authenticate(checked).await?;
        audit.arn = Some(arn);
        audit.principal = Some(principal.clone());
        limit(&self.by_principal, &principal, now)?;
        let policy = self.policy.read().unwrap_or_else(PoisonError::into_inner).clone();
        let (rule, ttl, extra) = match policy.decide(&principal, &ask.audience, ttl) {
            Decision::Allow { rule, ttl, claims } => (rule, ttl, claims.clone()),
            Decision::Deny(reason) => return Err(Refusal::new(RefusalKind::Forbidden, reason)),
        };
        audit.rule = Some(rule);
        let mut claims = Claims::new()
            .issuer(self.config.issuer.clone())
            .subject(principal)
            .audience(ask.audience.clone())
            .claim(ACCOUNT_CLAIM, account)
            .random_jwt_id();
        for (name, value) in extra {
            claims = claims.claim(name, value);
        }
        let minting = self.minting.read().unwrap_or_else(PoisonError::into_inner).clone();
        let MintedToken { token, expires_at, jti } = minting.cache.mint(&claims, ttl).await.map_err(|e| {
            tracing::warn!(error = %e, "signing failed");
            Refusal::retry(RefusalKind::Unavailable, "kms is unavailable", Duration::from_secs(5))
        })?;
        audit.jti = jti;
        audit.exp = Some(expires_at);
        Ok(Issued { token, expires_at })
    }
}

impl Minting {
    fn new(signer: Arc<dyn Signer>, capacity: usize) -> Result<Minting> {
        let kid = signer.public_key().thumbprint();
        let longest = signer.max_token_ttl().unwrap_or(Duration::from_secs(3600));
        let cache = TokenCache::new(JwtSigner::new(signer)?, longest, CACHE_MARGIN, capacity);
        Ok(Minting { kid, cache })
    }
}

fn busy() -> Refusal {
    Refusal::retry(RefusalKind::Unavailable, "the issuer is busy, retry shortly", Duration::from_secs(1))
}

fn limited(wait: Duration) -> Refusal {
    Refusal::retry(
        RefusalKind::Limited,
        "rate limit exceeded, retry in a minute",
        Duration::from_secs(wait.as_secs().max(1)),
    )
}

fn limit(limiter: &RateLimiter, key: &str, now: Instant) -> std::result::Result<(), Refusal> {
    match limiter.check(key, now) {
        Verdict::Allowed => Ok(()),
        Verdict::Limited { wait, .. } => Err(limited(wait)),
    }
}

/// A lifetime asked for: whole seconds, at least [`MIN_TTL`], granted in whole minutes (rounded
/// down), so that a caller varying it cannot make every request a new token and a new `Sign`.
fn parse_ttl(text: &str) -> std::result::Result<Duration, Refusal> {
    let bad = || {
        Refusal::new(
            RefusalKind::Malformed,
            format!(
                "ttl must be a whole number of seconds, at least {}, such as 15m",
                humantime::format_duration(MIN_TTL)
            ),
        )
    };
    let ttl = humantime::parse_duration(text).map_err(|_| bad())?;
    if ttl.subsec_nanos() != 0 || ttl < MIN_TTL {
        return Err(bad());
    }
    Ok(Duration::from_secs(ttl.as_secs() / 60 * 60))
}

#[cfg(test)]
mod tests;
