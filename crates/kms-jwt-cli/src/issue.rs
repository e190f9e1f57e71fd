//! `POST /token` on `kms-jwt serve --token-policy FILE`: a workload proves its AWS identity with
//! a signed, unsent `sts:GetCallerIdentity` request and gets a token signed by the set's current
//! key. Written for hostile callers: a bounded body read within a deadline, proofs checked before
//! anything is sent, STS reached only at the configured endpoint and within a timeout, bounded
//! concurrency, a per-principal rate limit, and errors that say nothing about the server.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use clap::Args;
use kms_jwt::failover::FailoverSigner;
use kms_jwt::issuer::{ACCOUNT_CLAIM, CallerIdentity, Decision, ProofRules, TokenPolicy, TokenRequest};
use kms_jwt::kms::KmsClient;
use kms_jwt::{Claims, JwtSigner, TokenCache};
use tokio::sync::Semaphore;

/// The largest `/token` request body.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// How long a client has to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long STS has to answer a proof, and the most of its answer that is read.
const STS_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_STS_ANSWER: usize = 16 * 1024;
/// Requests served at once; more get 503 at once rather than queueing.
const MAX_IN_FLIGHT: usize = 64;
/// Distinct (principal, audience, claims) tokens kept per lifetime.
const CACHE_CAPACITY: usize = 10_000;
/// Principals tracked by the rate limiter before the oldest windows are dropped.
const MAX_TRACKED_PRINCIPALS: usize = 100_000;

/// `POST /token`: AWS identities exchanged for tokens (see docs/ISSUER.md)
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Token issuer (POST /token)")]
pub struct IssuerArgs {
    /// Token policy (TOML) that turns on POST /token; SIGHUP reloads it, and a bad reload keeps the old one
    #[arg(long, value_name = "FILE")]
    pub token_policy: Option<PathBuf>,
    /// The id proofs must carry, signed, in x-kms-jwt-server-id [default: the issuer URL]
    #[arg(long, value_name = "ID", requires = "token_policy")]
    pub server_id: Option<String>,
    /// STS region the proofs must name (sts.R.amazonaws.com, or the global sts.amazonaws.com) [default: the KMS region]
    #[arg(long, value_name = "R", requires = "token_policy")]
    pub sts_region: Option<String>,
    /// Where proofs are sent instead of `https://sts.R.amazonaws.com/` (`LocalStack`); never a host a request names
    #[arg(long, value_name = "URL", requires = "token_policy")]
    pub sts_endpoint_url: Option<String>,
    /// Tokens per principal per minute; more get 429
    #[arg(long, value_name = "N", default_value_t = 60)]
    pub rate_limit: u32,
}

/// The issuer's state, shared by the requests.
pub(crate) struct Issuer {
    iss: String,
    rules: ProofRules,
    policy_path: PathBuf,
    policy: RwLock<Arc<TokenPolicy>>,
    longest: Option<Duration>,
    sts_url: String,
    http: crate::http::Http,
    /// The KMS region first, then `--fallback-region`s: a multi-Region set's tokens are signed
    /// in the next region while one is down.
    regions: Vec<KmsClient>,
    key: String,
    signer: RwLock<Arc<FailoverSigner>>,
    caches: Mutex<HashMap<u64, TokenCache<Arc<FailoverSigner>>>>,
    limiter: Mutex<HashMap<String, (Instant, u32)>>,
    rate_limit: u32,
    in_flight: Semaphore,
}

impl Issuer {
    /// Reads the policy and resolves the signing key; any problem stops the server at start-up.
    pub(crate) async fn start(
        args: &IssuerArgs,
        issuer: &str,
        key: &str,
        regions: &[KmsClient],
    ) -> Result<Option<Issuer>> {
        let Some(policy_path) = args.token_policy.clone() else { return Ok(None) };
        let signer = FailoverSigner::builder(regions.to_vec(), key).build().await?;
        let longest = kms_jwt::Signer::max_token_lifetime(&signer);
        let policy = read_policy(&policy_path, longest)?;
        let sts_region = match &args.sts_region {
            Some(region) => region.clone(),
            None => regions.first().and_then(KmsClient::region).context("no STS region: pass --sts-region")?.to_owned(),
        };
        let rules = ProofRules { server_id: args.server_id.clone().unwrap_or_else(|| issuer.to_owned()), sts_region };
        let sts_url = args.sts_endpoint_url.clone().unwrap_or_else(|| rules.allowed_urls()[0].clone());
        let http = crate::http::Http::new(STS_TIMEOUT)?;
        crate::say(&format!(
            "POST /token on, {} rules from {}, proofs for {:?} sent to {sts_url}",
            policy.len(),
            policy_path.display(),
            rules.server_id
        ));
        Ok(Some(Issuer {
            iss: issuer.to_owned(),
            rules,
            policy_path,
            policy: RwLock::new(Arc::new(policy)),
            longest,
            sts_url,
            http,
            regions: regions.to_vec(),
            key: key.to_owned(),
            signer: RwLock::new(Arc::new(signer)),
            caches: Mutex::new(HashMap::new()),
            limiter: Mutex::new(HashMap::new()),
            rate_limit: args.rate_limit.max(1),
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
        }))
    }

    /// Re-reads the policy file; a bad one keeps the policy in force and says so.
    pub(crate) fn reload(&self) {
        match read_policy(&self.policy_path, self.longest) {
            Ok(policy) => {
                crate::say(&format!("token policy reloaded, {} rules", policy.len()));
                *self.policy.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(policy);
            }
            Err(e) => crate::say(&format!("token policy not reloaded, the old one stays in force: {e:#}")),
        }
    }

    /// Re-resolves the signing key: after a rotation, `/token` signs with the new current key
    /// (and mints afresh), before the old one is retired.
    async fn follow_rotation(&self) {
        let fresh = match FailoverSigner::builder(self.regions.clone(), &self.key).build().await {
            Ok(fresh) => fresh,
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-resolve the signing key; signing with the last one");
                return;
            }
        };
        let mut signer = self.signer.write().unwrap_or_else(PoisonError::into_inner);
        if signer.key_id() != fresh.key_id() {
            crate::say(&format!("{} now names {}; POST /token signs with it", self.key, fresh.arn()));
            *signer = Arc::new(fresh);
            self.caches.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    /// Counts a request against the principal's one-minute window.
    fn allow(&self, principal: &str) -> bool {
        let mut windows = self.limiter.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if windows.len() >= MAX_TRACKED_PRINCIPALS {
            windows.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let (start, count) = windows.entry(principal.to_owned()).or_insert((now, 0));
        if now.duration_since(*start) >= Duration::from_secs(60) {
            *start = now;
            *count = 0;
        }
        *count += 1;
        *count <= self.rate_limit
    }

    fn cache(&self, ttl: Duration) -> Result<TokenCache<Arc<FailoverSigner>>, kms_jwt::Error> {
        let mut caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cache) = caches.get(&ttl.as_secs()) {
            return Ok(cache.clone());
        }
        // A token is handed out again until a quarter of its lifetime (at most 5 minutes) is
        // left, and refreshed in the background before that.
        let margin = (ttl / 4).min(Duration::from_secs(300));
        let signer = self.signer.read().unwrap_or_else(PoisonError::into_inner).clone();
        let cache = TokenCache::new(JwtSigner::new(signer)?, ttl, margin, CACHE_CAPACITY);
        caches.insert(ttl.as_secs(), cache.clone());
        Ok(cache)
    }

    /// STS's answer to the proof: the caller, or why there is none.
    async fn identity(&self, proof: &kms_jwt::issuer::Proof) -> Result<CallerIdentity, Answer> {
        let headers = proof.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let answer =
            self.http.post(&self.sts_url, headers, proof.body.clone().into_bytes(), MAX_STS_ANSWER).await.map_err(
                |e| {
                    tracing::warn!(error = %format!("{e:#}"), "sts unreachable");
                    Answer::unavailable("sts is unavailable")
                },
            )?;
        if (400..500).contains(&answer.status) {
            return Err(Answer::error(StatusCode::UNAUTHORIZED, "sts rejected the proof"));
        }
        let body = std::str::from_utf8(&answer.body).unwrap_or("");
        if answer.status != 200 {
            return Err(Answer::unavailable("sts is unavailable"));
        }
        CallerIdentity::from_sts_xml(body).map_err(|e| {
            tracing::warn!(error = %e, "unreadable sts answer");
            Answer::unavailable("sts is unavailable")
        })
    }
}

fn read_policy(path: &PathBuf, longest: Option<Duration>) -> Result<TokenPolicy> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    TokenPolicy::from_toml(&text, longest).with_context(|| format!("{} is not a valid token policy", path.display()))
}

/// An error answer: a status and a message safe to show the caller.
struct Answer {
    status: StatusCode,
    message: String,
}

impl Answer {
    fn error(status: StatusCode, message: impl Into<String>) -> Answer {
        Answer { status, message: message.into() }
    }

    fn unavailable(message: &str) -> Answer {
        Answer::error(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        (self.status, [("content-type", "application/json")], body).into_response()
    }
}

/// One audit line per decision, JSON on stderr.
struct Audit<'a> {
    principal: Option<&'a str>,
    audience: Option<&'a str>,
}

impl Audit<'_> {
    fn emit(&self, decision: &str, reason: &str, jti: Option<&str>, exp: Option<i64>) {
        let line = serde_json::json!({
            "audit": "token",
            "time": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            "principal": self.principal,
            "audience": self.audience,
            "jti": jti,
            "exp": exp,
            "decision": decision,
            "reason": reason,
        });
        // JSON, without the `kms-jwt: ` prefix of the human messages, for log pipelines.
        #[allow(clippy::print_stderr)]
        {
            eprintln!("{line}");
        }
    }
}

/// `POST /token`.
pub(crate) async fn token(State(issuer): State<Arc<Issuer>>, request: Request) -> Response {
    let Ok(_permit) = issuer.in_flight.try_acquire() else {
        Audit { principal: None, audience: None }.emit("error", "busy", None, None);
        return Answer::unavailable("the issuer is busy, retry shortly").into_response();
    };
    match issue(&issuer, request.into_body()).await {
        Ok(response) | Err(response) => response,
    }
}

async fn issue(issuer: &Issuer, body: Body) -> Result<Response, Response> {
    let mut audit = Audit { principal: None, audience: None };
    let refuse = |audit: &Audit<'_>, answer: Answer| {
        let decision = if answer.status.is_server_error() { "error" } else { "deny" };
        audit.emit(decision, &answer.message, None, None);
        answer.into_response()
    };
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_REQUEST_BYTES)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return Err(refuse(&audit, Answer::error(StatusCode::BAD_REQUEST, "request body too large or unreadable")));
        }
        Err(_) => return Err(refuse(&audit, Answer::error(StatusCode::BAD_REQUEST, "request body too slow"))),
    };
    let request: TokenRequest = serde_json::from_slice(&bytes).map_err(|_| {
        refuse(
            &audit,
            Answer::error(StatusCode::BAD_REQUEST, "malformed request: expected {\"audience\", \"ttl\"?, \"proof\"}"),
        )
    })?;
    let ttl = match &request.ttl {
        None => None,
        Some(text) => Some(humantime::parse_duration(text).map_err(|_| {
            refuse(&audit, Answer::error(StatusCode::BAD_REQUEST, "ttl is not a duration such as 15m"))
        })?),
    };
    request
        .proof
        .check(&issuer.rules, SystemTime::now())
        .map_err(|e| refuse(&audit, Answer::error(StatusCode::UNAUTHORIZED, e.to_string())))?;
    let identity = issuer.identity(&request.proof).await.map_err(|answer| refuse(&audit, answer))?;
    let principal = identity.principal();
    audit.principal = Some(&principal);
    audit.audience = Some(&request.audience);
    if !issuer.allow(&principal) {
        return Err(refuse(
            &audit,
            Answer::error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded, retry in a minute"),
        ));
    }
    let policy = issuer.policy.read().unwrap_or_else(PoisonError::into_inner).clone();
    let (ttl, extra) = match policy.decide(&principal, &request.audience, ttl) {
        Decision::Allow { ttl, claims } => (ttl, claims.clone()),
        Decision::Deny(reason) => return Err(refuse(&audit, Answer::error(StatusCode::FORBIDDEN, reason))),
    };
    let mut claims = Claims::new()
        .issuer(issuer.iss.clone())
        .subject(principal.clone())
        .audience(request.audience.clone())
        .claim(ACCOUNT_CLAIM, identity.account.clone())
        .random_jwt_id();
    for (name, value) in extra {
        claims = claims.claim(name, value);
    }
    let minted = match issuer.cache(ttl) {
        Ok(cache) => cache.token(&claims).await,
        Err(e) => Err(e),
    };
    let token = minted.map_err(|e| {
        tracing::warn!(error = %e, "signing failed");
        refuse(&audit, Answer::unavailable("kms is unavailable"))
    })?;
    let (jti, exp) = jti_and_exp(&token);
    audit.emit("allow", "policy allows", jti.as_deref(), exp);
    let body = serde_json::json!({ "token": token, "expires_at": exp });
    Ok(([("content-type", "application/json"), ("cache-control", "no-store")], body.to_string()).into_response())
}

/// The `jti` and `exp` of a token this server just minted (a cached one carries the first).
fn jti_and_exp(token: &str) -> (Option<String>, Option<i64>) {
    let payload = token.split('.').nth(1).and_then(kms_jwt::b64::decode);
    let claims: Option<serde_json::Value> = payload.and_then(|p| serde_json::from_slice(&p).ok());
    let claims = claims.unwrap_or_default();
    (claims["jti"].as_str().map(str::to_owned), claims["exp"].as_i64())
}

/// Follows rotations of the signing key, checking every `every`.
pub(crate) async fn follow_rotations(issuer: Arc<Issuer>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        issuer.follow_rotation().await;
    }
}

/// Reloads the policy on every SIGHUP.
pub(crate) async fn reload_on_sighup(issuer: Arc<Issuer>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
    while hup.recv().await.is_some() {
        issuer.reload();
    }
}
