//! The STS proof as an [`Authenticator`]: checked offline ([`Proof::check`]), then sent, as the
//! allow-listed request it was checked into, to this issuer's own STS endpoint, never to a host
//! a request names. STS's answer names the caller; its refusals are 401, its throttling and
//! outages 503.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use super::authenticate::{Authenticator, Caller, Precheck, Refusal, RefusalKind};
use super::identity::{CallerIdentity, is_throttling, sts_error_code};
use super::proof::{CheckedProof, Proof, ProofRules};
use crate::http::Http;
use crate::{Error, Result};

/// How long STS has to answer a proof, and the most of its answer that is read.
const STS_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_STS_ANSWER: usize = 16 * 1024;
/// When a caller may retry after STS throttled or failed.
const STS_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Proofs of AWS identity, checked against this issuer's rules and STS.
#[derive(Debug)]
pub struct StsProofs {
    rules: ProofRules,
    /// Where every proof is sent (`LocalStack`, a VPC endpoint); `None`: the STS URL the proof
    /// names, which is one of the rules' fixed URLs, never a host a client chose.
    endpoint: Option<String>,
    http: Http,
}

impl StsProofs {
    /// Proofs must meet `rules`; they are sent to `endpoint` (`None`: the STS URL each proof
    /// names, the region's or the global one). An endpoint must be `https://`, or `http://` on
    /// a loopback address (`LocalStack`): a proof carries a bearer credential for its window.
    pub fn new(rules: ProofRules, endpoint: Option<&str>) -> Result<StsProofs> {
        let endpoint = endpoint.map(check_endpoint).transpose()?;
        let http = Http::new(STS_TIMEOUT).map_err(|e| Error::Config(e.to_string()))?;
        Ok(StsProofs { rules, endpoint, http })
    }

    /// Where proofs are sent, in words.
    #[must_use]
    pub fn endpoint(&self) -> String {
        self.endpoint.clone().unwrap_or_else(|| self.rules.allowed_urls().join(" or "))
    }

    /// The rules proofs must meet.
    #[must_use]
    pub fn rules(&self) -> &ProofRules {
        &self.rules
    }
}

/// `https://` anywhere, `http://` only to a loopback address; no user info, which would let
/// `http://localhost:1@elsewhere/` pass for loopback. Read as the HTTP client reads it.
fn check_endpoint(url: &str) -> Result<String> {
    let bad = || Error::Config(format!("the sts endpoint must be https (or http on a loopback address), not {url:?}"));
    let uri: http::Uri = url.parse().map_err(|_| bad())?;
    let authority = uri.authority().ok_or_else(bad)?;
    if authority.as_str().contains('@') {
        return Err(bad());
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") => Ok(url.to_owned()),
        Some("http") if loopback => Ok(url.to_owned()),
        _ => Err(bad()),
    }
}

impl Authenticator for StsProofs {
    type Credential = Proof;
    type Checked = CheckedProof;

    fn precheck(&self, proof: &Proof, now: SystemTime) -> Result<(Precheck, CheckedProof), Refusal> {
        let checked =
            proof.check(&self.rules, now).map_err(|e| Refusal::new(RefusalKind::Unauthenticated, e.to_string()))?;
        let precheck = Precheck {
            access_key_id: Some(checked.access_key_id.clone()),
            // A signature covers the request, not the access key id: two keys with one secret
            // (LocalStack's) sign alike. The pair is what was used; the id in one case, as IAM
            // key ids are upper case and a caller must not make a new pair by changing it.
            single_use: Some((
                format!("{} {}", checked.access_key_id.to_ascii_uppercase(), checked.signature),
                checked.valid_until,
            )),
        };
        Ok((precheck, checked))
    }

    async fn authenticate(&self, proof: &CheckedProof) -> Result<Caller, Refusal> {
        let unavailable = || Refusal::retry(RefusalKind::Unavailable, "sts is unavailable", STS_RETRY_AFTER);
        let headers = proof.headers.iter().map(|(k, v)| (*k, v.as_str()));
        let url = self.endpoint.as_deref().unwrap_or(&proof.url);
        let answer =
            self.http.post(url, headers, proof.body.as_bytes().to_vec(), MAX_STS_ANSWER).await.map_err(|e| {
                tracing::warn!(error = %e, "sts unreachable");
                unavailable()
            })?;
        let body = std::str::from_utf8(&answer.body).unwrap_or("");
        let code = sts_error_code(body);
        if answer.status == 429 || code.as_deref().is_some_and(is_throttling) {
            tracing::warn!(status = answer.status, "sts throttled a proof");
            return Err(unavailable());
        }
        if (400..500).contains(&answer.status) {
            return Err(Refusal::new(RefusalKind::Unauthenticated, "sts rejected the proof"));
        }
        if answer.status != 200 {
            tracing::warn!(status = answer.status, "sts failed");
            return Err(unavailable());
        }
        let identity = CallerIdentity::from_sts_xml(body).map_err(|e| {
            tracing::error!(error = %e, "sts answered something it should not");
            unavailable()
        })?;
        Ok(Caller { principal: identity.principal(), arn: identity.arn, account: identity.account })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_is_reached_over_tls_except_on_loopback() {
        for good in [
            "https://sts.us-east-1.amazonaws.com/",
            "https://vpce-1.sts.us-east-1.vpce.amazonaws.com",
            "http://127.0.0.1:4566",
            "http://127.9.9.9",
            "http://localhost:4566/",
            "http://[::1]:4566",
        ] {
            assert_eq!(check_endpoint(good).unwrap(), good);
        }
        for bad in
            ["http://sts.example.com", "http://10.0.0.1:4566", "ftp://127.0.0.1", "http://127.0.0.1.evil.com/", ""]
        {
            let err = check_endpoint(bad).unwrap_err().to_string();
            assert!(err.contains("must be https"), "{bad}: {err}");
        }
    }
}
