//! The proof of an AWS identity: a SigV4-signed `sts:GetCallerIdentity` request that the caller
//! makes with its own credentials and hands to the issuer unsent. The issuer checks it here,
//! before it sends anything anywhere, then sends it to its own STS endpoint only.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// The header that binds a proof to one issuer: it is signed, so a proof made for one server
/// is useless at another.
pub const SERVER_ID_HEADER: &str = "x-kms-jwt-server-id";
/// The one request a proof may be.
pub const GET_CALLER_IDENTITY_BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
/// How far a proof's `X-Amz-Date` may be from the server's clock, either way.
pub const MAX_PROOF_SKEW: Duration = Duration::from_secs(300);
/// The most headers a proof may carry, and the longest value.
const MAX_HEADERS: usize = 16;
const MAX_HEADER_VALUE: usize = 4096;

/// A signed, unsent `sts:GetCallerIdentity` request, as the `/token` request carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proof {
    /// `POST`.
    pub method: String,
    /// `https://sts.REGION.amazonaws.com/` or `https://sts.amazonaws.com/`.
    pub url: String,
    /// The request's headers, `Authorization` and `X-Amz-Date` among them.
    pub headers: BTreeMap<String, String>,
    /// [`GET_CALLER_IDENTITY_BODY`].
    pub body: String,
}

/// Why a proof was rejected (safe to show the caller: it says nothing about the server).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(pub String);

fn reject(reason: impl Into<String>) -> Rejected {
    Rejected(reason.into())
}

/// What the server expects of a proof.
#[derive(Debug, Clone)]
pub struct ProofRules {
    /// The server's id, which the proof must carry, signed, in [`SERVER_ID_HEADER`].
    pub server_id: String,
    /// The STS region the server sends proofs to: the proof must name its endpoint (or the
    /// global one) as URL and `Host`.
    pub sts_region: String,
}

impl ProofRules {
    /// The STS URLs a proof may name.
    #[must_use]
    pub fn allowed_urls(&self) -> [String; 2] {
        [format!("https://sts.{}.amazonaws.com/", self.sts_region), "https://sts.amazonaws.com/".to_owned()]
    }
}

impl Proof {
    /// The value of header `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Checks everything that can be checked without sending the request: the method, the URL
    /// and `Host`, the body, that `host`, `x-amz-date` and the server id are signed, the server
    /// id itself and the date. The signature is STS's to check.
    pub fn check(&self, rules: &ProofRules, now: SystemTime) -> Result<(), Rejected> {
        if self.method != "POST" {
            return Err(reject("the proof must be a POST"));
        }
        let allowed = rules.allowed_urls();
        if !allowed.contains(&self.url) {
            return Err(reject(format!("the proof must be sent to {} or {}", allowed[0], allowed[1])));
        }
        if self.headers.len() > MAX_HEADERS || self.headers.values().any(|v| v.len() > MAX_HEADER_VALUE) {
            return Err(reject("the proof has too many or too long headers"));
        }
        let mut names: Vec<String> = self.headers.keys().map(|k| k.to_ascii_lowercase()).collect();
        names.sort();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(reject("the proof repeats a header"));
        }
        if !is_get_caller_identity(&self.body) {
            return Err(reject("the proof must be sts:GetCallerIdentity (Version 2011-06-15) and nothing else"));
        }
        let host = self.url.trim_start_matches("https://").trim_end_matches('/');
        if self.header("host") != Some(host) {
            return Err(reject("the proof's Host header must match its URL"));
        }
        let authorization = self.header("authorization").ok_or_else(|| reject("the proof is not signed"))?;
        let signed = authorization
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .and_then(|rest| rest.split(',').find_map(|part| part.trim().strip_prefix("SignedHeaders=")))
            .ok_or_else(|| reject("the proof is not signed with AWS4-HMAC-SHA256"))?;
        let signed: Vec<&str> = signed.split(';').collect();
        for required in ["host", "x-amz-date", SERVER_ID_HEADER] {
            if !signed.contains(&required) {
                return Err(reject(format!("the proof's signature must cover the {required} header")));
            }
        }
        if self.header(SERVER_ID_HEADER) != Some(rules.server_id.as_str()) {
            return Err(reject(format!(
                "the proof was made for another server (expected {SERVER_ID_HEADER} {:?})",
                rules.server_id
            )));
        }
        let date = self.header("x-amz-date").ok_or_else(|| reject("the proof has no X-Amz-Date"))?;
        let date = parse_amz_date(date).ok_or_else(|| reject("the proof's X-Amz-Date is not YYYYMMDDTHHMMSSZ"))?;
        let skew = now.duration_since(date).unwrap_or_else(|e| e.duration());
        if skew > MAX_PROOF_SKEW {
            return Err(reject("the proof's X-Amz-Date is more than 5 minutes from the server's clock"));
        }
        Ok(())
    }
}

/// The body, as form fields in any order, is exactly `Action=GetCallerIdentity` and
/// `Version=2011-06-15`.
fn is_get_caller_identity(body: &str) -> bool {
    let mut fields: Vec<&str> = body.split('&').collect();
    fields.sort_unstable();
    fields == ["Action=GetCallerIdentity", "Version=2011-06-15"]
}

/// `20260101T120000Z` as a time.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u64> {
        text.get(range).filter(|s| s.bytes().all(|c| c.is_ascii_digit()))?.parse().ok()
    };
    let rfc3339 = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        digits(0..4)?,
        digits(4..6)?,
        digits(6..8)?,
        digits(9..11)?,
        digits(11..13)?,
        digits(13..15)?
    );
    humantime::parse_rfc3339(&rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ProofRules {
        ProofRules { server_id: "https://issuer.example".into(), sts_region: "us-east-1".into() }
    }

    fn proof(now: SystemTime) -> Proof {
        let date = humantime::format_rfc3339_seconds(now).to_string().replace(['-', ':'], "");
        Proof {
            method: "POST".into(),
            url: "https://sts.us-east-1.amazonaws.com/".into(),
            headers: BTreeMap::from([
                ("Host".into(), "sts.us-east-1.amazonaws.com".into()),
                ("X-Amz-Date".into(), date),
                (SERVER_ID_HEADER.into(), "https://issuer.example".into()),
                (
                    "Authorization".into(),
                    "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/sts/aws4_request, \
                     SignedHeaders=content-type;host;x-amz-date;x-kms-jwt-server-id, Signature=00"
                        .into(),
                ),
            ]),
            body: GET_CALLER_IDENTITY_BODY.into(),
        }
    }

    #[test]
    fn a_good_proof_passes_and_each_flaw_is_named() {
        let now = SystemTime::now();
        proof(now).check(&rules(), now).unwrap();
        let flaw = |change: &dyn Fn(&mut Proof), expected: &str| {
            let mut p = proof(now);
            change(&mut p);
            let err = p.check(&rules(), now).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
        };
        flaw(&|p| p.method = "GET".into(), "POST");
        flaw(&|p| p.url = "https://attacker.example/".into(), "must be sent to");
        flaw(&|p| p.url = "https://sts.us-east-1.amazonaws.com.attacker.example/".into(), "must be sent to");
        flaw(&|p| p.url = "http://sts.us-east-1.amazonaws.com/".into(), "must be sent to");
        flaw(&|p| p.url = "https://sts.eu-west-1.amazonaws.com/".into(), "must be sent to");
        flaw(&|p| _ = p.headers.insert("Host".into(), "attacker.example".into()), "Host");
        flaw(&|p| _ = p.headers.insert("host".into(), "sts.amazonaws.com".into()), "repeats");
        flaw(&|p| p.body = "Action=AssumeRole&Version=2011-06-15".into(), "GetCallerIdentity");
        flaw(&|p| p.body.push_str("&RoleArn=x"), "GetCallerIdentity");
        flaw(&|p| _ = p.headers.insert(SERVER_ID_HEADER.into(), "https://other.example".into()), "another server");
        flaw(
            &|p| {
                let auth = p.headers["Authorization"].replace(";x-kms-jwt-server-id", "");
                p.headers.insert("Authorization".into(), auth);
            },
            "cover the x-kms-jwt-server-id",
        );
        flaw(&|p| _ = p.headers.remove("Authorization"), "not signed");
        let stale = proof(now - Duration::from_secs(301));
        assert!(stale.check(&rules(), now).unwrap_err().to_string().contains("5 minutes"));
        let future = proof(now + Duration::from_secs(301));
        assert!(future.check(&rules(), now).unwrap_err().to_string().contains("5 minutes"));
        flaw(&|p| _ = p.headers.insert("X-Amz-Date".into(), "2026-01-01T00:00:00Z".into()), "YYYYMMDDTHHMMSSZ");
    }

    #[test]
    fn the_global_endpoint_is_allowed_too() {
        let now = SystemTime::now();
        let mut p = proof(now);
        p.url = "https://sts.amazonaws.com/".into();
        p.headers.insert("Host".into(), "sts.amazonaws.com".into());
        p.check(&rules(), now).unwrap();
    }
}
