//! An axum/tower layer for APIs that accept this issuer's tokens (feature `axum`): it verifies
//! `Authorization: Bearer` with a [`RemoteJwks`], requires the issuer and an audience, and puts
//! the [`Verified`] claims into the request for handlers to extract.
//!
//! ```no_run
//! # async fn example() -> Result<(), kms_jwt::Error> {
//! use axum::Router;
//! use axum::routing::get;
//! use kms_jwt::Verified;
//! use kms_jwt::axum::BearerAuth;
//! use kms_jwt::remote::RemoteJwks;
//!
//! #[derive(Clone, serde::Deserialize)]
//! struct Access {
//!     sub: String,
//! }
//!
//! async fn whoami(token: Verified<Access>) -> String {
//!     token.claims.sub
//! }
//!
//! let keys = RemoteJwks::from_issuer("https://auth.example.com")?.build()?;
//! let app: Router = Router::new().route("/whoami", get(whoami)).layer(BearerAuth::<Access>::new(keys).audience("api"));
//! # Ok(()) }
//! ```
//!
//! Answers follow RFC 6750: no credentials (or another scheme) is 401 with
//! `WWW-Authenticate: Bearer` and no error code; a token that does not verify is 401 with
//! `error="invalid_token"`; a malformed `Authorization` is 400 `error="invalid_request"`. Bodies
//! are empty: which check failed is for the server's log, not the caller. While the issuer's
//! keys cannot be had, 503.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::remote::RemoteJwks;
use crate::{Claims, Error, Verified};

/// The layer: [`BearerAuth::new`], then [`BearerAuth::audience`].
pub struct BearerAuth<T = Claims> {
    keys: RemoteJwks,
    claims: PhantomData<fn() -> T>,
}

impl<T> Clone for BearerAuth<T> {
    fn clone(&self) -> Self {
        BearerAuth { keys: self.keys.clone(), claims: PhantomData }
    }
}

impl<T> BearerAuth<T> {
    /// Verifies bearer tokens with `keys`, whose issuer is required (set by
    /// [`RemoteJwks::from_issuer`]); the claims go to handlers as [`Verified<T>`].
    #[must_use]
    pub fn new(keys: RemoteJwks) -> BearerAuth<T> {
        BearerAuth { keys, claims: PhantomData }
    }

    /// Requires `audience` among the token's `aud` (calling again allows any of them).
    #[must_use]
    pub fn audience(self, audience: impl Into<String>) -> BearerAuth<T> {
        BearerAuth { keys: self.keys.audience(audience), claims: PhantomData }
    }
}

impl<S, T> tower::Layer<S> for BearerAuth<T> {
    type Service = Bearer<S, T>;

    /// # Panics
    ///
    /// If the keys have no expected issuer or no audience: an API that takes any issuer's or
    /// any audience's tokens takes tokens that were never meant for it.
    fn layer(&self, inner: S) -> Bearer<S, T> {
        assert!(
            self.keys.expected_issuer().is_some(),
            "BearerAuth needs keys with an issuer (RemoteJwks::from_issuer)"
        );
        assert!(!self.keys.expected_audiences().is_empty(), "BearerAuth needs an audience (BearerAuth::audience)");
        Bearer { inner, keys: self.keys.clone(), claims: PhantomData }
    }
}

/// The service the layer wraps around a route.
pub struct Bearer<S, T> {
    inner: S,
    keys: RemoteJwks,
    claims: PhantomData<fn() -> T>,
}

impl<S: Clone, T> Clone for Bearer<S, T> {
    fn clone(&self) -> Self {
        Bearer { inner: self.inner.clone(), keys: self.keys.clone(), claims: PhantomData }
    }
}

/// The token in `Authorization: Bearer TOKEN`: `Ok(None)` when there is none (or another
/// scheme), `Err` when the header is malformed.
fn bearer(headers: &HeaderMap) -> Result<Option<String>, ()> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(());
    }
    let value = value.to_str().map_err(drop)?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return if value.eq_ignore_ascii_case("bearer") { Err(()) } else { Ok(None) };
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    // RFC 6750 b64token: base64url, `~`, `+`, `/`, then `=` padding.
    let token = token.trim_matches(' ');
    let b64token = |c: char| c.is_ascii_alphanumeric() || "-._~+/".contains(c);
    if token.is_empty() || !token.trim_end_matches('=').chars().all(b64token) {
        return Err(());
    }
    Ok(Some(token.to_owned()))
}

/// A 401 or 400 with the RFC 6750 challenge and an empty body.
fn challenge(status: StatusCode, error: Option<&str>) -> Response {
    let value = match error {
        None => "Bearer".to_owned(),
        Some(error) => format!("Bearer error=\"{error}\""),
    };
    let mut response = status.into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_str(&value).expect("ASCII"));
    response
}

impl<S, T> tower::Service<Request<Body>> for Bearer<S, T>
where
    S: tower::Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    T: DeserializeOwned + Clone + Send + Sync + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The service that was polled ready serves this request; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let keys = self.keys.clone();
        Box::pin(async move {
            let token = match bearer(request.headers()) {
                Ok(Some(token)) => token,
                Ok(None) => return Ok(challenge(StatusCode::UNAUTHORIZED, None)),
                Err(()) => return Ok(challenge(StatusCode::BAD_REQUEST, Some("invalid_request"))),
            };
            match keys.verify::<T>(&token).await {
                Ok(verified) => {
                    request.extensions_mut().insert(verified);
                    inner.call(request).await
                }
                Err(Error::InvalidToken(reason)) => {
                    tracing::debug!(%reason, "bearer token refused");
                    Ok(challenge(StatusCode::UNAUTHORIZED, Some("invalid_token")))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "bearer token not checked: no keys");
                    Ok(StatusCode::SERVICE_UNAVAILABLE.into_response())
                }
            }
        })
    }
}

/// The claims [`BearerAuth`] verified, for a handler: `async fn h(token: Verified<Access>)`.
impl<S, T> FromRequestParts<S> for Verified<T>
where
    S: Send + Sync,
    T: Clone + Send + Sync + 'static,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        parts.extensions.get::<Verified<T>>().cloned().ok_or_else(|| {
            tracing::error!("Verified<T> asked for on a route without BearerAuth<T> (or another T)");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_read_strictly() {
        let with = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(header::AUTHORIZATION, v.parse().unwrap());
            }
            bearer(&headers)
        };
        assert_eq!(with(&[]), Ok(None));
        assert_eq!(with(&["Basic dXNlcjpwYXNz"]), Ok(None), "another scheme: no bearer credentials");
        assert_eq!(with(&["Bearer a.b.c"]), Ok(Some("a.b.c".into())));
        assert_eq!(with(&["bearer a-b_c.d~e+f/g=="]), Ok(Some("a-b_c.d~e+f/g==".into())));
        for bad in [&["Bearer"][..], &["Bearer "], &["Bearer a b"], &["Bearer a,b"], &["Bearer a.b", "Bearer c.d"]] {
            assert_eq!(with(bad), Err(()), "{bad:?}");
        }
    }
}
