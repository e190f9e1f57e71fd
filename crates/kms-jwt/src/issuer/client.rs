//! The client side of `POST /token`: a proof made with the caller's own credentials, sent to
//! the issuer, and its answer read.

use std::time::Duration;

use super::{TokenRequest, make_proof};
use crate::http::Http;
use crate::{Error, Result};

/// How long an issuer has to answer, and the most of its answer that is read.
const ISSUER_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_ANSWER: usize = 64 * 1024;

/// A token an issuer gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Its `exp`, as the issuer said.
    pub expires_at: Option<i64>,
}

/// Asks one issuer for tokens.
#[derive(Debug, Clone)]
pub struct TokenClient {
    issuer: String,
    server_id: String,
    http: Http,
}

impl TokenClient {
    /// A client of the issuer at `issuer` (its URL, as tokens carry it in `iss`), whose server
    /// id is its URL unless [`TokenClient::server_id`] says otherwise.
    pub fn new(issuer: &str) -> Result<TokenClient> {
        let issuer = issuer.trim_end_matches('/').to_owned();
        let http = Http::new(ISSUER_TIMEOUT).map_err(|e| Error::Config(e.to_string()))?;
        Ok(TokenClient { server_id: issuer.clone(), issuer, http })
    }

    /// The issuer's server id, when it is not its URL.
    #[must_use]
    pub fn server_id(mut self, id: impl Into<String>) -> TokenClient {
        self.server_id = id.into();
        self
    }

    /// A token for `audience`, proving the identity of `config`'s credentials with a proof
    /// that names STS in `sts_region`. `ttl` asks for a lifetime (the issuer's rule decides
    /// otherwise). A proof is used once, and callers that share credentials may by chance make
    /// the same one ([`super::make_proof`]): refused as used, this asks again with a new one, a
    /// few times.
    pub async fn token(
        &self,
        config: &aws_config::SdkConfig,
        sts_region: &str,
        audience: &str,
        ttl: Option<Duration>,
    ) -> Result<IssuedToken> {
        let mut tries = 1;
        loop {
            match self.ask(config, sts_region, audience, ttl).await {
                Err(Error::IssuerRefused { status: 401, reason, .. })
                    if reason == "proof already used" && tries < 4 =>
                {
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    async fn ask(
        &self,
        config: &aws_config::SdkConfig,
        sts_region: &str,
        audience: &str,
        ttl: Option<Duration>,
    ) -> Result<IssuedToken> {
        let proof = make_proof(config, sts_region, &self.server_id).await?;
        let ttl = ttl.map(|t| humantime::format_duration(t).to_string());
        let request = TokenRequest { audience: audience.to_owned(), ttl, proof };
        let url = format!("{}/token", self.issuer);
        let body = serde_json::to_vec(&request).map_err(|e| Error::InvalidClaims(e.to_string()))?;
        let answer = self
            .http
            .post(&url, [("content-type", "application/json")], body, MAX_ANSWER)
            .await
            .map_err(|e| Error::IssuerUnreachable { url: url.clone(), reason: e.to_string() })?;
        let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        if answer.status != 200 {
            let retry_after =
                answer.headers.get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok()).map(Duration::from_secs);
            return Err(Error::IssuerRefused {
                status: answer.status,
                reason: json["error"].as_str().unwrap_or("no reason given").to_owned(),
                retry_after,
            });
        }
        let token = json["token"]
            .as_str()
            .ok_or_else(|| Error::IssuerUnreachable { url, reason: "its answer has no token".into() })?;
        Ok(IssuedToken { token: token.to_owned(), expires_at: json["expires_at"].as_i64() })
    }
}
