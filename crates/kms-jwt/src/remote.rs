//! Keys from an issuer's URL, for services that only verify (feature `remote`): `OpenID`
//! discovery (the document's `issuer` must be the URL asked), the JWKS it names, and a
//! [`Verifier`] kept current the way jose's `createRemoteJWKSet`, `PyJWT`'s `PyJWKClient` and Go's
//! `keyfunc` keep theirs, and stricter:
//!
//! - **caching by the issuer's word**: `Cache-Control: max-age` (clamped to a floor and a
//!   ceiling), `ETag` and `If-None-Match`;
//! - **rotation**: a token whose `kid` is unknown makes one refetch at most once per cooldown
//!   (default 30 s), single flight: a storm of made-up `kid`s costs one fetch per cooldown; a
//!   token met while a fetch is under way waits for it, and every other such token is answered
//!   "unknown key" at once, without waiting on the network;
//! - **stale if error**: while the issuer cannot be reached the last good keys keep verifying,
//!   for a bounded time (default 24 h), and then the error says they are too old;
//! - **what is fetched**: only the URL configured (never one a token names: no `jku`, no
//!   `x5u`), over https (http only to a loopback address), without following redirects, with a
//!   deadline and a size limit.
//!
//! ```no_run
//! # async fn example(token: &str) -> Result<(), kms_jwt::Error> {
//! use kms_jwt::Claims;
//! use kms_jwt::remote::RemoteJwks;
//!
//! let keys = RemoteJwks::from_issuer("https://auth.example.com")?.audience("api").build()?;
//! let claims = keys.verify::<Claims>(token).await?.claims;
//! # Ok(()) }
//! ```

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::http::Http;
use crate::publish::OPENID_CONFIGURATION_PATH;
use crate::{Error, Jwks, Result, TokenError, Verified, Verifier};

/// The defaults a [`RemoteJwksBuilder`] starts from.
pub mod defaults {
    use std::time::Duration;

    /// The least time fetched keys are kept, whatever the issuer says.
    pub const MIN_MAX_AGE: Duration = Duration::from_secs(60);
    /// The most time fetched keys are kept before they are fetched again.
    pub const MAX_MAX_AGE: Duration = Duration::from_secs(3600);
    /// How long keys are kept when the issuer's answer says nothing.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
    /// The least time between two fetches made for an unknown `kid` (or after a failure).
    pub const COOLDOWN: Duration = Duration::from_secs(30);
    /// How long the last good keys verify while the issuer cannot be reached.
    pub const STALE_FOR: Duration = Duration::from_secs(24 * 3600);
    /// How long a fetch may take.
    pub const TIMEOUT: Duration = Duration::from_secs(5);
    /// The largest document read.
    pub const MAX_SIZE: usize = 512 * 1024;
}

/// How the keys are found.
#[derive(Debug, Clone)]
enum Source {
    /// `{issuer}/.well-known/openid-configuration`, then its `jwks_uri`.
    Issuer(String),
    /// This JWKS URL.
    Jwks(String),
}

/// What every token is checked for, besides its signature.
#[derive(Debug, Clone, Default)]
struct Checks {
    issuer: Option<String>,
    audiences: Vec<String>,
    any_audience: bool,
    leeway: Option<u64>,
}

impl Checks {
    fn apply(&self, mut verifier: Verifier) -> Verifier {
        if let Some(issuer) = &self.issuer {
            verifier = verifier.with_issuer(issuer.clone());
        }
        for audience in &self.audiences {
            verifier = verifier.with_audience(audience.clone());
        }
        if self.any_audience {
            verifier = verifier.allow_any_audience();
        }
        if let Some(leeway) = self.leeway {
            verifier = verifier.with_leeway(leeway);
        }
        verifier
    }
}

/// Settings of a [`RemoteJwks`]: [`RemoteJwks::from_issuer`] or [`RemoteJwks::from_jwks_url`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RemoteJwksBuilder {
    source: Source,
    checks: Checks,
    min_max_age: Duration,
    max_max_age: Duration,
    cooldown: Duration,
    stale_for: Duration,
    timeout: Duration,
    max_size: usize,
}

impl RemoteJwksBuilder {
    /// Requires `aud` to contain `audience` (or, when called again, any of them). Without
    /// one, a token that has an `aud` is refused (see [`Verifier::allow_any_audience`]).
    pub fn audience(mut self, audience: impl Into<String>) -> RemoteJwksBuilder {
        self.checks.audiences.push(audience.into());
        self
    }

    /// Accepts a token whatever its `aud`: for tools that inspect tokens.
    pub fn allow_any_audience(mut self) -> RemoteJwksBuilder {
        self.checks.any_audience = true;
        self
    }

    /// Requires `iss` to be `issuer` (set to the issuer URL by [`RemoteJwks::from_issuer`]).
    pub fn issuer(mut self, issuer: impl Into<String>) -> RemoteJwksBuilder {
        self.checks.issuer = Some(issuer.into());
        self
    }

    /// The clock skew allowed for `exp` and `nbf`, in seconds.
    pub fn leeway(mut self, seconds: u64) -> RemoteJwksBuilder {
        self.checks.leeway = Some(seconds);
        self
    }

    /// Keeps fetched keys at least `floor` and at most `ceiling`, whatever the issuer's
    /// `Cache-Control` says ([`defaults::MIN_MAX_AGE`], [`defaults::MAX_MAX_AGE`]).
    pub fn max_age_between(mut self, floor: Duration, ceiling: Duration) -> RemoteJwksBuilder {
        self.min_max_age = floor;
        self.max_max_age = ceiling.max(floor);
        self
    }

    /// The least time between fetches for unknown `kid`s or after a failure
    /// ([`defaults::COOLDOWN`]).
    pub fn cooldown(mut self, cooldown: Duration) -> RemoteJwksBuilder {
        self.cooldown = cooldown;
        self
    }

    /// How long the last good keys verify while the issuer cannot be reached
    /// ([`defaults::STALE_FOR`]).
    pub fn stale_for(mut self, limit: Duration) -> RemoteJwksBuilder {
        self.stale_for = limit;
        self
    }

    /// How long one fetch may take ([`defaults::TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> RemoteJwksBuilder {
        self.timeout = timeout;
        self
    }

    /// The largest document read, in bytes ([`defaults::MAX_SIZE`]).
    pub fn max_size(mut self, bytes: usize) -> RemoteJwksBuilder {
        self.max_size = bytes;
        self
    }

    /// The keys, fetched when first needed.
    pub fn build(self) -> Result<RemoteJwks> {
        let http = Http::new(self.timeout).map_err(|e| Error::KeysUnavailable(e.to_string()))?;
        let checks = Arc::new(self.checks.clone());
        let inner =
            Inner { settings: self, http, state: Mutex::new(State::default()), fetching: tokio::sync::Mutex::new(()) };
        Ok(RemoteJwks { inner: Arc::new(inner), checks })
    }
}

/// What is known of the keys.
#[derive(Default)]
struct State {
    /// The JWKS URL, once discovery has named it.
    jwks_url: Option<String>,
    /// A verifier for the last good keys.
    verifier: Option<Verifier>,
    /// When the keys were last fetched (or confirmed unchanged).
    fetched_at: Option<Instant>,
    /// Until when they are fresh.
    fresh_until: Option<Instant>,
    etag: Option<String>,
    /// When the last fetch started, successful or not: the cooldown counts from it.
    attempted_at: Option<Instant>,
    /// Why the last fetch failed, if it did.
    last_error: Option<String>,
    /// Fetches made (answered 200 or 304), for tests and benches.
    fetches: u64,
}

struct Inner {
    settings: RemoteJwksBuilder,
    http: Http,
    state: Mutex<State>,
    /// Held while a fetch is in progress: one at a time.
    fetching: tokio::sync::Mutex<()>,
}

/// An issuer's keys, fetched and kept current. Cheap to clone: clones share the keys.
#[derive(Clone)]
pub struct RemoteJwks {
    inner: Arc<Inner>,
    /// This handle's checks; [`RemoteJwks::audience`] makes another handle on the same keys.
    checks: Arc<Checks>,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks").field("source", &self.inner.settings.source).finish_non_exhaustive()
    }
}

/// Whether `url` may be fetched: https, or http to a loopback address; no user info.
fn check_url(url: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::KeysUnavailable(format!("{url:?} {why}")));
    let Ok(uri) = url.parse::<http::Uri>() else { return bad("is not a URL") };
    let Some(authority) = uri.authority() else { return bad("has no host") };
    if authority.as_str().contains('@') {
        return bad("has user info");
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if loopback => Ok(()),
        _ => bad("is not https (http is allowed to a loopback address only)"),
    }
}

impl RemoteJwks {
    /// The keys of the issuer at `issuer` (its URL, as tokens carry it in `iss`): discovery
    /// names the JWKS, and tokens must have this `iss`.
    pub fn from_issuer(issuer: &str) -> Result<RemoteJwksBuilder> {
        let issuer = issuer.trim_end_matches('/');
        check_url(issuer)?;
        Ok(RemoteJwks::builder(Source::Issuer(issuer.to_owned())).issuer(issuer))
    }

    /// The keys of the JWKS at `url` (no discovery; set the expected issuer with
    /// [`RemoteJwksBuilder::issuer`]).
    pub fn from_jwks_url(url: &str) -> Result<RemoteJwksBuilder> {
        check_url(url)?;
        Ok(RemoteJwks::builder(Source::Jwks(url.to_owned())))
    }

    fn builder(source: Source) -> RemoteJwksBuilder {
        RemoteJwksBuilder {
            source,
            checks: Checks::default(),
            min_max_age: defaults::MIN_MAX_AGE,
            max_max_age: defaults::MAX_MAX_AGE,
            cooldown: defaults::COOLDOWN,
            stale_for: defaults::STALE_FOR,
            timeout: defaults::TIMEOUT,
            max_size: defaults::MAX_SIZE,
        }
    }

    /// The issuer tokens must name, if any.
    #[must_use]
    pub fn expected_issuer(&self) -> Option<&str> {
        self.checks.issuer.as_deref()
    }

    /// The audiences tokens must name one of.
    #[must_use]
    pub fn expected_audiences(&self) -> &[String] {
        &self.checks.audiences
    }

    /// The same keys (one cache, one fetch), for tokens that must also have `audience` among
    /// their `aud` (or any of the audiences named so far).
    #[must_use]
    pub fn audience(&self, audience: impl Into<String>) -> RemoteJwks {
        let mut checks = (*self.checks).clone();
        checks.audiences.push(audience.into());
        RemoteJwks { inner: self.inner.clone(), checks: Arc::new(checks) }
    }

    /// How many times the keys were fetched (answered 200 or 304).
    #[must_use]
    pub fn fetches(&self) -> u64 {
        self.lock().fetches
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A verifier for the issuer's current keys (fetched if there are none yet) with this
    /// handle's checks: for checking many tokens at once without the cache in between.
    pub async fn snapshot(&self) -> Result<Verifier> {
        Ok(self.checks.apply(self.verifier().await?))
    }

    /// Verifies `token` as [`Verifier::verify`] does, with the issuer's current keys: fetched
    /// if there are none yet, refreshed in the background once they are no longer fresh, and
    /// fetched again (at most once per cooldown) for a `kid` they do not have.
    pub async fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<Verified<T>> {
        let verifier = self.checks.apply(self.verifier().await?);
        match verifier.verify::<T>(token) {
            Err(TokenError::UnknownKid(kid)) => {
                // A new key, perhaps: one fetch per cooldown, which every caller meeting an
                // unknown key meanwhile waits for (none starts another).
                if self.refetch_now().await {
                    let verifier = self.checks.apply(self.verifier().await?);
                    return verifier.verify::<T>(token).map_err(Error::InvalidToken);
                }
                Err(Error::InvalidToken(TokenError::UnknownKid(kid)))
            }
            other => other.map_err(Error::InvalidToken),
        }
    }

    /// The verifier for the keys to use now. With fresh keys, at once; with keys past their
    /// freshness but within the stale limit, at once, a refresh starting in the background; with
    /// none (or too old), after a fetch.
    async fn verifier(&self) -> Result<Verifier> {
        let settings = &self.inner.settings;
        let now = Instant::now();
        {
            let state = self.lock();
            if let (Some(verifier), Some(fresh_until), Some(fetched_at)) =
                (&state.verifier, state.fresh_until, state.fetched_at)
            {
                if now < fresh_until {
                    return Ok(verifier.clone());
                }
                if now.duration_since(fetched_at) < settings.stale_for {
                    let cooled = state.attempted_at.is_none_or(|a| now.duration_since(a) >= settings.cooldown);
                    let verifier = verifier.clone();
                    drop(state);
                    if cooled {
                        let this = self.clone();
                        tokio::spawn(async move { this.refetch_now().await });
                    }
                    return Ok(verifier);
                }
            }
        }
        // No keys, or keys too old to use: this caller waits for a fetch (one at a time).
        let _fetching = self.inner.fetching.lock().await;
        {
            let state = self.lock();
            if let (Some(verifier), Some(fetched_at)) = (&state.verifier, state.fetched_at)
                && fetched_at > now
            {
                return Ok(verifier.clone());
            }
        }
        self.fetch().await;
        let state = self.lock();
        match (&state.verifier, state.fetched_at) {
            (Some(verifier), Some(fetched_at)) if fetched_at.elapsed() < settings.stale_for => Ok(verifier.clone()),
            (Some(_), Some(fetched_at)) => Err(Error::KeysUnavailable(format!(
                "the issuer's keys are {}s old, over the limit of {}s, and cannot be refreshed: {}",
                fetched_at.elapsed().as_secs(),
                settings.stale_for.as_secs(),
                state.last_error.as_deref().unwrap_or("unknown error")
            ))),
            _ => Err(Error::KeysUnavailable(format!(
                "cannot fetch the issuer's keys: {}",
                state.last_error.as_deref().unwrap_or("unknown error")
            ))),
        }
    }

    /// Fetches again if the cooldown has passed; whether the keys are newer now. A fetch under
    /// way (a background refresh, another caller's) is waited for, not repeated: its keys are
    /// as new as any, and a token from a key it brings must not be refused meanwhile.
    async fn refetch_now(&self) -> bool {
        let Ok(_fetching) = self.inner.fetching.try_lock() else {
            drop(self.inner.fetching.lock().await);
            return true;
        };
        let cooled = self.lock().attempted_at.is_none_or(|a| a.elapsed() >= self.inner.settings.cooldown);
        if cooled {
            self.fetch().await;
        }
        cooled
    }

    /// One fetch (discovery first, if the JWKS URL is not known yet); its outcome goes into the
    /// state. Called with `fetching` held.
    async fn fetch(&self) {
        let started = Instant::now();
        self.lock().attempted_at = Some(started);
        let outcome = self.fetch_keys().await;
        let mut state = self.lock();
        match outcome {
            Ok(Fetched::Unchanged(max_age)) => {
                state.fetched_at = Some(started);
                state.fresh_until = Some(started + max_age);
                state.last_error = None;
                state.fetches += 1;
            }
            Ok(Fetched::Keys { verifier, etag, max_age }) => {
                state.verifier = Some(verifier);
                state.etag = etag;
                state.fetched_at = Some(started);
                state.fresh_until = Some(started + max_age);
                state.last_error = None;
                state.fetches += 1;
            }
            Err(reason) => {
                tracing::warn!(%reason, "cannot fetch the issuer's keys; the last good ones are used while they last");
                state.last_error = Some(reason);
            }
        }
    }

    async fn fetch_keys(&self) -> std::result::Result<Fetched, String> {
        let settings = &self.inner.settings;
        let known = self.lock().jwks_url.clone();
        let jwks_url = match (known, &settings.source) {
            (Some(url), _) => url,
            (None, Source::Jwks(url)) => url.clone(),
            (None, Source::Issuer(issuer)) => {
                let url = self.discover(issuer).await?;
                self.lock().jwks_url = Some(url.clone());
                url
            }
        };
        let etag = self.lock().etag.clone();
        let mut headers = vec![("accept", "application/json")];
        if let Some(etag) = &etag {
            headers.push(("if-none-match", etag.as_str()));
        }
        let answer = self
            .inner
            .http
            .send(http::Method::GET, &jwks_url, headers, Vec::new(), settings.max_size)
            .await
            .map_err(|e| format!("{jwks_url}: {e}"))?;
        let max_age = self.max_age(&answer.headers);
        match answer.status {
            304 if etag.is_some() => Ok(Fetched::Unchanged(max_age)),
            200 => {
                let jwks = Jwks::parse(&answer.body).map_err(|e| format!("{jwks_url}: {e}"))?;
                let verifier = Verifier::from_jwks(&jwks, None).map_err(|e| format!("{jwks_url}: {e}"))?;
                let etag = answer.headers.get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
                Ok(Fetched::Keys { verifier, etag, max_age })
            }
            status @ 300..=399 => Err(format!("{jwks_url}: HTTP {status}: redirects are not followed")),
            status => Err(format!("{jwks_url}: HTTP {status}")),
        }
    }

    /// The JWKS URL the issuer's discovery document names; its `issuer` must be `issuer`.
    async fn discover(&self, issuer: &str) -> std::result::Result<String, String> {
        let url = format!("{issuer}{OPENID_CONFIGURATION_PATH}");
        let answer = self
            .inner
            .http
            .send(http::Method::GET, &url, [("accept", "application/json")], Vec::new(), self.inner.settings.max_size)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        match answer.status {
            200 => {}
            status @ 300..=399 => return Err(format!("{url}: HTTP {status}: redirects are not followed")),
            status => return Err(format!("{url}: HTTP {status}")),
        }
        let document: serde_json::Value =
            serde_json::from_slice(&answer.body).map_err(|e| format!("{url}: not JSON: {e}"))?;
        if document["issuer"].as_str() != Some(issuer) {
            return Err(format!("{url} names issuer {}, not {issuer:?}", document["issuer"]));
        }
        let jwks_url = document["jwks_uri"].as_str().ok_or_else(|| format!("{url} has no jwks_uri"))?;
        check_url(jwks_url).map_err(|e| e.to_string())?;
        Ok(jwks_url.to_owned())
    }

    /// How long an answer's keys stay fresh: its `max-age`, within the floor and the ceiling.
    fn max_age(&self, headers: &http::HeaderMap) -> Duration {
        let settings = &self.inner.settings;
        let said = headers
            .get_all("cache-control")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|directive| {
                let directive = directive.trim();
                if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache") {
                    return Some(Duration::ZERO);
                }
                let (name, value) = directive.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("max-age")
                    .then(|| value.trim().parse().ok().map(Duration::from_secs))?
            })
            .unwrap_or(defaults::DEFAULT_MAX_AGE);
        said.clamp(settings.min_max_age, settings.max_max_age)
    }
}

/// What a fetch found.
enum Fetched {
    /// `304 Not Modified`: the keys held are current, for this long.
    Unchanged(Duration),
    /// New keys.
    Keys { verifier: Verifier, etag: Option<String>, max_age: Duration },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_fetched() {
        for good in ["https://auth.example.com", "http://127.0.0.1:8080", "http://localhost/x", "http://[::1]:1"] {
            check_url(good).unwrap();
        }
        for bad in
            ["http://auth.example.com", "ftp://x", "https://u@x.example", "http://localhost:1@evil.example/", "x"]
        {
            assert!(matches!(check_url(bad), Err(Error::KeysUnavailable(_))), "{bad}");
        }
    }

    #[test]
    fn max_age_is_read_and_clamped() {
        let jwks = RemoteJwks::from_jwks_url("https://x.example/jwks.json")
            .unwrap()
            .max_age_between(Duration::from_secs(60), Duration::from_secs(600))
            .build()
            .unwrap();
        let age = |value: &str| {
            let mut headers = http::HeaderMap::new();
            if !value.is_empty() {
                headers.insert("cache-control", value.parse().unwrap());
            }
            jwks.max_age(&headers).as_secs()
        };
        assert_eq!(age("public, max-age=300"), 300);
        assert_eq!(age("max-age=5"), 60, "the floor");
        assert_eq!(age("max-age=86400, public"), 600, "the ceiling");
        assert_eq!(age("no-store"), 60);
        assert_eq!(age(""), 300, "the default");
        assert_eq!(age("max-age=soon"), 300);
    }
}
