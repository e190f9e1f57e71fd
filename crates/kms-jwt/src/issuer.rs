//! The issuer: AWS identities exchanged for tokens, without its transport. [`Issuer`] takes a
//! request and a credential and gives a token or a refusal and one audit record; the token
//! policy ([`TokenPolicy`]) and the proof of an AWS identity ([`Proof`], checked by
//! [`StsProofs`] before it goes to STS) are its parts. `kms-jwt serve --token-policy` puts it
//! behind HTTP; [`TokenClient`] (and `kms-jwt token`) is the client side. The threat model is
//! in docs/ISSUER.md.

pub mod arn;
mod authenticate;
mod client;
pub mod identity;
mod limit;
pub mod policy;
pub mod proof;
mod replay;
mod service;
mod sts;

use std::time::SystemTime;

pub use authenticate::{Authenticator, Caller, Precheck, Refusal, RefusalKind};
pub use client::{IssuedToken, TokenClient};
pub use identity::CallerIdentity;
pub use policy::{Decision, TokenPolicy};
pub use proof::{CheckedProof, Proof, ProofRules, Rejected};
pub use service::{
    ACCOUNT_CLAIM, AuditDecision, AuditRecord, ClientInfo, Issued, Issuer, IssuerConfig, Outcome, TokenAsk,
};
pub use sts::StsProofs;

use crate::{Error, Result};

/// The JSON a client posts to `/token`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The audience asked for (`aud`).
    pub audience: String,
    /// The lifetime asked for, such as `15m`; the rule's `max_ttl` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// The signed, unsent `GetCallerIdentity` request.
    pub proof: Proof,
}

/// Makes a proof with the credentials of `config` (the standard AWS chain: environment,
/// profile, SSO, container or instance role) for the issuer `server_id`, naming STS in `region`.
///
/// A proof is used once, and two made with the same credentials in the same second are the
/// same proof: workers that share a role would refuse each other's. So the proof is dated a
/// random second of the last minute (well within the issuer's 5-minute window).
pub async fn make_proof(config: &aws_config::SdkConfig, region: &str, server_id: &str) -> Result<Proof> {
    use aws_credential_types::provider::ProvideCredentials as _;
    let provider =
        config.credentials_provider().ok_or_else(|| Error::Config("no AWS credentials are configured".into()))?;
    let credentials =
        provider.provide_credentials().await.map_err(|e| Error::Config(format!("cannot load AWS credentials: {e}")))?;
    let mut random = [0u8; 1];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| Error::Config("no random numbers".into()))?;
    let back = std::time::Duration::from_secs(u64::from(random[0] % 60));
    sign_proof(&credentials, Some(region), server_id, SystemTime::now() - back)
}

/// Makes a proof with `credentials` for the issuer `server_id`, to be sent by the issuer to STS
/// in `region` (`None`: the global endpoint). `aws-sigv4` signs it; the signature covers
/// `host`, `x-amz-date` and the server id.
pub fn sign_proof(
    credentials: &aws_credential_types::Credentials,
    region: Option<&str>,
    server_id: &str,
    now: SystemTime,
) -> Result<Proof> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;

    let host = region.map_or_else(|| "sts.amazonaws.com".to_owned(), |r| format!("sts.{r}.amazonaws.com"));
    let url = format!("https://{host}/");
    let headers = [
        ("host", host.as_str()),
        ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
        (proof::SERVER_ID_HEADER, server_id),
    ];
    let identity = credentials.clone().into();
    let failed = |e: &dyn std::fmt::Display| Error::Config(format!("cannot sign the identity proof: {e}"));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        // The global endpoint signs for us-east-1.
        .region(region.unwrap_or("us-east-1"))
        .name("sts")
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let request = SignableRequest::new(
        "POST",
        url.as_str(),
        headers.iter().copied(),
        SignableBody::Bytes(proof::GET_CALLER_IDENTITY_BODY.as_bytes()),
    )
    .map_err(|e| failed(&e))?;
    let (instructions, _signature) = sign(request, &params).map_err(|e| failed(&e))?.into_parts();
    let (added, _query) = instructions.into_parts();
    let mut all: std::collections::BTreeMap<String, String> =
        headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    for header in added {
        all.insert(header.name().to_owned(), header.value().to_owned());
    }
    Ok(Proof { method: "POST".into(), url, headers: all, body: proof::GET_CALLER_IDENTITY_BODY.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_proof_passes_the_servers_checks() {
        let creds = aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", Some("token".into()), None, "test");
        let now = SystemTime::now();
        let proof = sign_proof(&creds, Some("eu-west-1"), "https://issuer.example", now).unwrap();
        let rules = ProofRules { server_id: "https://issuer.example".into(), sts_region: "eu-west-1".into() };
        proof.check(&rules, now).unwrap();
        assert!(proof.header("host").is_some());
        assert_eq!(proof.header("x-amz-security-token"), Some("token"));
        let authorization = proof.header("authorization").unwrap();
        assert!(authorization.contains("Credential=AKIDEXAMPLE/"), "{authorization}");
        assert!(authorization.contains("/eu-west-1/sts/aws4_request"), "{authorization}");
        // Made for another issuer: refused by this one.
        let elsewhere = ProofRules { server_id: "https://other.example".into(), ..rules.clone() };
        assert!(proof.check(&elsewhere, now).unwrap_err().to_string().contains("made for another server"));
        let global = sign_proof(&creds, None, "https://issuer.example", now).unwrap();
        global.check(&rules, now).unwrap();
    }
}
