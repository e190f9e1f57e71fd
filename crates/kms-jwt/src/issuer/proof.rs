//! The proof of an AWS identity: a SigV4-signed `sts:GetCallerIdentity` request that the caller
//! makes with its own credentials and hands to the issuer unsent. The issuer checks it here,
//! before it sends anything anywhere, and what passes is a [`CheckedProof`]: the exact request
//! to send to its own STS endpoint, built from an allow-list of headers.

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
/// The headers sent to STS, lowercase; any other header in a proof refuses it (`Content-Length`
/// apart: it must be the body's, and is computed from the body anyway).
pub const FORWARDED_HEADERS: [&str; 6] =
    ["authorization", "content-type", "host", "x-amz-date", "x-amz-security-token", SERVER_ID_HEADER];
/// The most headers a proof may carry, and the longest name and value (a session token, which
/// AWS does not bound, may be longer than other values).
const MAX_HEADERS: usize = 16;
const MAX_HEADER_NAME: usize = 64;
const MAX_HEADER_VALUE: usize = 4096;
const MAX_SESSION_TOKEN: usize = 8192;

/// A signed, unsent `sts:GetCallerIdentity` request, as the `/token` request carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proof {
    /// `POST`.
    pub method: String,
    /// `https://sts.REGION.amazonaws.com/` or `https://sts.amazonaws.com/`.
    pub url: String,
    /// The request's headers, `Authorization` and `X-Amz-Date` among them. `Host` may be left
    /// out (botocore leaves it to its HTTP client): it is then the URL's. Headers the signature
    /// does not cover and STS does not need (`User-Agent`, ...) are dropped.
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
    /// The STS URLs a proof may name: the region's, and the global one (in the `aws`
    /// partition; China's regions have their own domain and no global endpoint).
    #[must_use]
    pub fn allowed_urls(&self) -> Vec<String> {
        if self.sts_region.starts_with("cn-") {
            vec![format!("https://sts.{}.amazonaws.com.cn/", self.sts_region)]
        } else {
            vec![format!("https://sts.{}.amazonaws.com/", self.sts_region), "https://sts.amazonaws.com/".to_owned()]
        }
    }
}

/// A proof that passed every check that can be made without sending it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedProof {
    /// The STS URL the proof names (one of [`ProofRules::allowed_urls`]).
    pub url: String,
    /// The headers to send, lowercase names from [`FORWARDED_HEADERS`], `host` always among them.
    pub headers: Vec<(&'static str, String)>,
    /// The body to send.
    pub body: &'static str,
    /// The access key id of the credential scope.
    pub access_key_id: String,
    /// The `SigV4` signature (64 lowercase hex digits): what makes a proof single-use.
    pub signature: String,
    /// When the proof's date window closes: after this no server accepts it.
    pub valid_until: SystemTime,
}

/// The parts of an `AWS4-HMAC-SHA256` `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

impl Proof {
    /// The value of header `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Checks everything that can be checked without sending the request: the method, the URL
    /// and `Host`, the body, the headers (allow-listed, well-formed, none twice), the
    /// `Authorization` header (one credential scope for STS in the URL's region, the date's
    /// day, the signed headers, a hex signature), the server id and the date. The signature
    /// itself is STS's to check.
    pub fn check(&self, rules: &ProofRules, now: SystemTime) -> Result<CheckedProof, Rejected> {
        if self.method != "POST" {
            return Err(reject("the proof must be a POST"));
        }
        let allowed = rules.allowed_urls();
        if !allowed.contains(&self.url) {
            return Err(reject(format!("the proof must be sent to {}", allowed.join(" or "))));
        }
        let url_host = self.url.trim_start_matches("https://").trim_end_matches('/');
        let url_region = if self.url == allowed[0] { rules.sts_region.as_str() } else { "us-east-1" };
        if self.headers.len() > MAX_HEADERS {
            return Err(reject("the proof has too many headers"));
        }
        let authorization = self.header("authorization").ok_or_else(|| reject("the proof is not signed"))?;
        let auth = parse_authorization(authorization)
            .ok_or_else(|| reject("the proof's Authorization is not one AWS4-HMAC-SHA256 signature"))?;
        let mut names: Vec<String> = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            check_header(name, value)?;
            let lower = name.to_ascii_lowercase();
            if names.contains(&lower) {
                return Err(reject("the proof repeats a header"));
            }
            if lower == "content-length" {
                if *value != self.body.len().to_string() {
                    return Err(reject("the proof's Content-Length is not its body's length"));
                }
            } else if !FORWARDED_HEADERS.contains(&lower.as_str()) && auth.signed_headers.contains(&lower.as_str()) {
                // Signed, so STS would need it; not on the list, so it is not sent.
                return Err(reject(format!(
                    "the proof signs a header STS is not sent ({name}); allowed: {}",
                    FORWARDED_HEADERS.join(", ")
                )));
            }
            names.push(lower);
        }
        if self.body != GET_CALLER_IDENTITY_BODY {
            return Err(reject(format!("the proof's body must be exactly {GET_CALLER_IDENTITY_BODY}")));
        }
        if self.header("host").is_some_and(|host| host != url_host) {
            return Err(reject("the proof's Host header must match its URL"));
        }
        if auth.service != "sts" || auth.region != url_region {
            return Err(reject(format!("the proof must be signed for sts in {url_region}")));
        }
        for required in ["host", "x-amz-date", SERVER_ID_HEADER] {
            if !auth.signed_headers.contains(&required) {
                return Err(reject(format!("the proof's signature must cover the {required} header")));
            }
        }
        if let Some(missing) = auth.signed_headers.iter().find(|h| **h != "host" && !names.iter().any(|n| n == *h)) {
            return Err(reject(format!("the proof signs a header it does not carry ({missing})")));
        }
        if self.header(SERVER_ID_HEADER) != Some(rules.server_id.as_str()) {
            return Err(reject(format!(
                "the proof was made for another server (expected {SERVER_ID_HEADER} {:?})",
                rules.server_id
            )));
        }
        let date_text = self.header("x-amz-date").ok_or_else(|| reject("the proof has no X-Amz-Date"))?;
        let date = parse_amz_date(date_text).ok_or_else(|| reject("the proof's X-Amz-Date is not YYYYMMDDTHHMMSSZ"))?;
        if !date_text.starts_with(auth.date) {
            return Err(reject("the proof's credential scope is not for its X-Amz-Date's day"));
        }
        // Strictly within the window: a proof accepted at `now` is remembered past `now`.
        let skew = now.duration_since(date).unwrap_or_else(|e| e.duration());
        if skew >= MAX_PROOF_SKEW {
            return Err(reject("the proof's X-Amz-Date is 5 minutes or more from the server's clock"));
        }
        let mut headers: Vec<(&'static str, String)> = FORWARDED_HEADERS
            .iter()
            .filter_map(|name| self.header(name).map(|value| (*name, value.to_owned())))
            .collect();
        if self.header("host").is_none() {
            headers.push(("host", url_host.to_owned()));
        }
        Ok(CheckedProof {
            url: self.url.clone(),
            headers,
            body: GET_CALLER_IDENTITY_BODY,
            access_key_id: auth.access_key_id.to_owned(),
            signature: auth.signature.to_owned(),
            valid_until: date + MAX_PROOF_SKEW,
        })
    }
}

/// A header name is an RFC 9110 token; a value is visible ASCII, spaces and tabs: no CR or LF
/// can reach the request sent to STS, nor a byte its HTTP stack would refuse.
fn check_header(name: &str, value: &str) -> Result<(), Rejected> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || name.len() > MAX_HEADER_NAME || !name.bytes().all(tchar) {
        return Err(reject("the proof has a header name that is not an HTTP token"));
    }
    let longest = if name.eq_ignore_ascii_case("x-amz-security-token") { MAX_SESSION_TOKEN } else { MAX_HEADER_VALUE };
    if value.len() > longest || !value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
        return Err(reject(format!("the proof's {name} header is too long or has a character HTTP does not allow")));
    }
    Ok(())
}

/// `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, SignedHeaders=a;b,
/// Signature=HEX`, each part exactly once, or `None`.
fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=')?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return None,
        };
        if slot.replace(value).is_some() {
            return None;
        }
    }
    let mut scope = credential?.split('/');
    let (access_key_id, date, region, service) = (scope.next()?, scope.next()?, scope.next()?, scope.next()?);
    if scope.next()? != "aws4_request" || scope.next().is_some() {
        return None;
    }
    let key_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    let valid = !access_key_id.is_empty()
        && access_key_id.len() <= 128
        && access_key_id.bytes().all(key_char)
        && date.len() == 8
        && date.bytes().all(|b| b.is_ascii_digit())
        && !region.is_empty()
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let signature = signature?;
    let hex = signature.len() == 64 && signature.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let signed_headers: Vec<&str> = signed?.split(';').collect();
    let names_ok = signed_headers
        .iter()
        .all(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
    (valid && hex && names_ok).then_some(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
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

    fn amz_date(at: SystemTime) -> String {
        humantime::format_rfc3339_seconds(at).to_string().replace(['-', ':'], "")
    }

    fn proof(now: SystemTime) -> Proof {
        let date = amz_date(now);
        Proof {
            method: "POST".into(),
            url: "https://sts.us-east-1.amazonaws.com/".into(),
            headers: BTreeMap::from([
                ("Host".into(), "sts.us-east-1.amazonaws.com".into()),
                ("Content-Type".into(), "application/x-www-form-urlencoded".into()),
                (SERVER_ID_HEADER.into(), "https://issuer.example".into()),
                (
                    "Authorization".into(),
                    format!(
                        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{}/us-east-1/sts/aws4_request, \
                         SignedHeaders=content-type;host;x-amz-date;x-kms-jwt-server-id, Signature={}",
                        &date[..8],
                        "ab".repeat(32)
                    ),
                ),
                ("X-Amz-Date".into(), date),
            ]),
            body: GET_CALLER_IDENTITY_BODY.into(),
        }
    }

    #[test]
    fn a_good_proof_passes_and_gives_the_request_to_send() {
        let now = SystemTime::now();
        let checked = proof(now).check(&rules(), now).unwrap();
        assert_eq!(checked.access_key_id, "AKIDEXAMPLE");
        assert_eq!(checked.signature, "ab".repeat(32));
        let names: Vec<&str> = checked.headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["authorization", "content-type", "host", "x-amz-date", SERVER_ID_HEADER]);
        assert!(checked.valid_until > now && checked.valid_until <= now + MAX_PROOF_SKEW);
    }

    #[test]
    fn each_flaw_is_named() {
        let now = SystemTime::now();
        let flaw = |change: &dyn Fn(&mut Proof), expected: &str| {
            let mut p = proof(now);
            change(&mut p);
            let err = p.check(&rules(), now).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
            assert!(!err.contains('\n') && !err.contains('\r'), "{err:?}");
        };
        let set = |name: &str, value: &str| {
            let (name, value) = (name.to_owned(), value.to_owned());
            move |p: &mut Proof| _ = p.headers.insert(name.clone(), value.clone())
        };
        let auth = |change: &dyn Fn(&str) -> String| {
            let mut p = proof(now);
            let value = change(&p.headers["Authorization"]);
            p.headers.insert("Authorization".into(), value);
            p.check(&rules(), now).unwrap_err().to_string()
        };
        flaw(&|p| p.method = "GET".into(), "POST");
        flaw(&|p| p.url = "https://attacker.example/".into(), "must be sent to");
        flaw(&|p| p.url = "https://sts.us-east-1.amazonaws.com.attacker.example/".into(), "must be sent to");
        flaw(&|p| p.url = "http://sts.us-east-1.amazonaws.com/".into(), "must be sent to");
        flaw(&|p| p.url = "https://sts.eu-west-1.amazonaws.com/".into(), "must be sent to");
        flaw(&set("Host", "attacker.example"), "Host");
        flaw(&set("host", "sts.amazonaws.com"), "repeats");
        let signs = |name: &'static str| {
            move |p: &mut Proof| {
                p.headers.insert(name.to_owned(), "1".to_owned());
                let auth = p.headers["Authorization"]
                    .replace("SignedHeaders=", &format!("SignedHeaders={};", name.to_ascii_lowercase()));
                p.headers.insert("Authorization".into(), auth);
            }
        };
        flaw(&signs("X-Forwarded-For"), "the proof signs a header STS is not sent (X-Forwarded-For)");
        flaw(&signs("Transfer-Encoding"), "not sent");
        flaw(&signs("Amz-Sdk-Invocation-Id"), "not sent");
        flaw(&set("X-Amz-Security-Token", "a\r\nb: c"), "character HTTP does not allow");
        flaw(&set("X-Amz-Security-Token", "a\nb"), "character HTTP does not allow");
        flaw(&set("X-Amz-Security-Token", "\u{e9}"), "character HTTP does not allow");
        flaw(&set("Content-Type", &"t".repeat(4097)), "too long");
        flaw(&set("bad name", "x"), "not an HTTP token");
        flaw(&set("", "x"), "not an HTTP token");
        flaw(&set("Content-Length", "5"), "Content-Length");
        flaw(&|p| p.body = "Action=AssumeRole&Version=2011-06-15".into(), "GetCallerIdentity");
        flaw(&|p| p.body.push_str("&RoleArn=x"), "GetCallerIdentity");
        flaw(&|p| p.body = "Version=2011-06-15&Action=GetCallerIdentity".into(), "must be exactly");
        flaw(&set("Content-Length", "+43"), "Content-Length");
        flaw(&set("Content-Length", "043"), "Content-Length");
        flaw(&set("X-Amz-Security-Token", &"t".repeat(8193)), "too long");
        flaw(&set(SERVER_ID_HEADER, "https://other.example"), "another server");
        flaw(&|p| _ = p.headers.remove("Authorization"), "not signed");
        flaw(&|p| _ = p.headers.remove("Content-Type"), "does not carry (content-type)");
        flaw(&set("X-Amz-Date", "2026-01-01T00:00:00Z"), "YYYYMMDDTHHMMSSZ");
        let many = |p: &mut Proof| {
            for i in 0..MAX_HEADERS {
                p.headers.insert(format!("x-amz-meta-{i}"), "1".into());
            }
        };
        flaw(&many, "too many headers");

        let not_one = "not one AWS4-HMAC-SHA256 signature";
        let changes: [&dyn Fn(&str) -> String; 11] = [
            &|a: &str| format!("{a}, SignedHeaders=host"),
            &|a: &str| format!("{a}, Signature={}", "0".repeat(64)),
            &|a: &str| format!("{a}, Credential=AKID/20260101/us-east-1/sts/aws4_request"),
            &|a: &str| a.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
            &|_: &str| "AWS4-HMAC-SHA256 nonsense".to_owned(),
            &|_: &str| String::new(),
            &|a: &str| a.replace(&"ab".repeat(32), &"AB".repeat(32)),
            &|a: &str| a.replace(&"ab".repeat(32), "abab"),
            &|a: &str| a.replace("/aws4_request", "/aws4_request/x"),
            &|a: &str| a.replace("AKIDEXAMPLE", "AKID/EXAMPLE"),
            &|a: &str| format!("{a}, Extra=1"),
        ];
        for change in changes {
            let err = auth(change);
            assert!(err.contains(not_one), "{err}");
        }
        assert!(auth(&|a| a.replace("/sts/", "/s3/")).contains("signed for sts in us-east-1"));
        assert!(auth(&|a| a.replace("/us-east-1/", "/eu-west-1/")).contains("signed for sts in us-east-1"));
        assert!(auth(&|a| a.replace(";x-kms-jwt-server-id", "")).contains("cover the x-kms-jwt-server-id"));
        assert!(
            auth(&|a| a.replace("SignedHeaders=", "SignedHeaders=x-amz-security-token;")).contains("does not carry")
        );
        let yesterday = amz_date(now - Duration::from_secs(86_400));
        assert!(auth(&|a| a.replacen(&amz_date(now)[..8], &yesterday[..8], 1)).contains("day"));

        let stale = proof(now - Duration::from_secs(301));
        assert!(stale.check(&rules(), now).unwrap_err().to_string().contains("5 minutes"));
        let future = proof(now + Duration::from_secs(301));
        assert!(future.check(&rules(), now).unwrap_err().to_string().contains("5 minutes"));
    }

    #[test]
    fn unsigned_headers_sts_does_not_need_are_dropped() {
        let now = SystemTime::now();
        let mut p = proof(now);
        for (name, value) in
            [("User-Agent", "aws-sdk-go/2"), ("Accept-Encoding", "identity"), ("X-Forwarded-For", "1.2.3.4")]
        {
            p.headers.insert(name.into(), value.into());
        }
        p.headers.insert("X-Amz-Security-Token".into(), "t".repeat(6000));
        let checked = p.check(&rules(), now).unwrap();
        let names: Vec<&str> = checked.headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["authorization", "content-type", "host", "x-amz-date", "x-amz-security-token", SERVER_ID_HEADER]
        );
        assert_eq!(checked.url, "https://sts.us-east-1.amazonaws.com/");
    }

    #[test]
    fn the_window_is_strict_and_china_has_its_own_domain() {
        let now = SystemTime::now();
        let date = parse_amz_date(&amz_date(now)).unwrap();
        let p = proof(date);
        assert!(p.check(&rules(), date + MAX_PROOF_SKEW - Duration::from_secs(1)).is_ok());
        let at_the_edge = p.check(&rules(), date + MAX_PROOF_SKEW).unwrap_err().to_string();
        assert!(at_the_edge.contains("5 minutes"), "{at_the_edge}");
        let cn = ProofRules { server_id: "s".into(), sts_region: "cn-north-1".into() };
        assert_eq!(cn.allowed_urls(), ["https://sts.cn-north-1.amazonaws.com.cn/"]);
    }

    #[test]
    fn host_comes_from_the_url_when_absent_and_content_length_from_the_body() {
        let now = SystemTime::now();
        let mut p = proof(now);
        p.headers.remove("Host");
        p.headers.insert("Content-Length".into(), GET_CALLER_IDENTITY_BODY.len().to_string());
        let checked = p.check(&rules(), now).unwrap();
        assert!(checked.headers.contains(&("host", "sts.us-east-1.amazonaws.com".to_owned())));
        assert!(!checked.headers.iter().any(|(n, _)| *n == "content-length"));
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
