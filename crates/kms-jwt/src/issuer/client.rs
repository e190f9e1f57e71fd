//! The client side of `POST /token`: a proof made with the caller's own credentials, sent to
//! the issuer, and its answer read; or, for an issuer on AWS Lambda behind IAM auth, the
//! request itself signed with `SigV4` for the `lambda` service, which AWS checks.

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

    /// A token for `audience` from an issuer behind IAM auth (a Lambda function URL): the
    /// request is signed with `config`'s credentials for the `lambda` service in `region`, and
    /// AWS checks the signature before the issuer sees the request. No proof is made.
    pub async fn token_sigv4(
        &self,
        config: &aws_config::SdkConfig,
        region: &str,
        audience: &str,
        ttl: Option<Duration>,
    ) -> Result<IssuedToken> {
        use aws_credential_types::provider::ProvideCredentials as _;
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        use aws_sigv4::sign::v4;

        let provider =
            config.credentials_provider().ok_or_else(|| Error::Config("no AWS credentials are configured".into()))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| Error::Config(format!("cannot load AWS credentials: {e}")))?;
        let ttl = ttl.map(|t| humantime::format_duration(t).to_string());
        let body = serde_json::to_vec(&serde_json::json!({ "audience": audience, "ttl": ttl }))
            .map_err(|e| Error::InvalidClaims(e.to_string()))?;
        let url = format!("{}/token", self.issuer);
        let host = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split('/').next())
            .ok_or_else(|| Error::Config(format!("{url} has no host")))?
            .to_owned();
        let headers = [("host", host.as_str()), ("content-type", "application/json")];
        let identity = credentials.into();
        let failed = |e: &dyn std::fmt::Display| Error::Config(format!("cannot sign the request: {e}"));
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("lambda")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| failed(&e))?
            .into();
        let request = SignableRequest::new("POST", url.as_str(), headers.iter().copied(), SignableBody::Bytes(&body))
            .map_err(|e| failed(&e))?;
        let (instructions, _signature) = sign(request, &params).map_err(|e| failed(&e))?.into_parts();
        let (added, _query) = instructions.into_parts();
        let mut all: Vec<(String, String)> = headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        all.extend(added.iter().map(|h| (h.name().to_owned(), h.value().to_owned())));
        self.send(&url, all.iter().map(|(k, v)| (k.as_str(), v.as_str())), body).await
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
        self.send(&url, [("content-type", "application/json")], body).await
    }

    /// POSTs `body` to `url` with `headers` and reads the issuer's answer.
    async fn send<'a>(
        &self,
        url: &str,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        body: Vec<u8>,
    ) -> Result<IssuedToken> {
        let url = url.to_owned();
        let answer = self
            .http
            .post(&url, headers, body, MAX_ANSWER)
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
