//! Who is asking, from the invocation: a function URL with `AuthType=AWS_IAM` (or API Gateway
//! with IAM authorization) has AWS check the request's `SigV4` and put the caller in the request
//! context (`requestContext.authorizer.iam` for function URLs and HTTP APIs,
//! `requestContext.identity` for REST APIs). Nothing else in a request says who sent it: no
//! header, no body field. An invocation without that context (another authorizer, none, an
//! event of another kind) is refused.

use std::time::SystemTime;

use kms_jwt::issuer::arn::Arn;
use kms_jwt::issuer::{Authenticator, Caller, CallerIdentity, Precheck, Refusal, RefusalKind, TokenAsk};
use kms_jwt_server::FromTokenRequest;
use lambda_http::request::RequestContext;
use serde::Deserialize;

/// The caller AWS verified, as the request context gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoker {
    /// The caller's ARN (`userArn`).
    pub arn: String,
    /// The caller's account (`accountId` of the caller, not of the function).
    pub account: String,
    /// The access key the request was signed with (`accessKey`), for the per-key limit.
    pub access_key: Option<String>,
}

/// The [`Authenticator`] of a function behind IAM auth: the invocation's verified caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct IamInvocation;

/// The request body: the audience and, optionally, a lifetime. Nothing about identity.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ask {
    audience: String,
    ttl: Option<String>,
}

/// The caller from a request context, when it holds an IAM caller. A caller with Amazon
/// Cognito identity-pool credentials (a guest among them) is not one: its role is the pool's,
/// shared by everyone the pool lets in, so it names no one a token could be for.
#[must_use]
pub fn invoker(context: &RequestContext) -> Option<Invoker> {
    match context {
        RequestContext::ApiGatewayV2(v2) => {
            let iam = v2.authorizer.as_ref()?.iam.as_ref()?;
            if iam.cognito_identity.is_some() {
                return None;
            }
            Some(Invoker {
                arn: iam.user_arn.clone()?,
                account: iam.account_id.clone()?,
                access_key: iam.access_key.clone(),
            })
        }
        RequestContext::ApiGatewayV1(v1) => {
            let identity = &v1.identity;
            if identity.cognito_identity_id.is_some() || identity.cognito_identity_pool_id.is_some() {
                return None;
            }
            Some(Invoker {
                arn: identity.user_arn.clone()?,
                account: identity.account_id.clone()?,
                access_key: identity.access_key.clone(),
            })
        }
        // An ALB, a WebSocket API, VPC Lattice: none carries a caller AWS verified with IAM.
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

impl Authenticator for IamInvocation {
    type Credential = Option<Invoker>;
    type Checked = CallerIdentity;

    fn precheck(&self, invoker: &Option<Invoker>, _: SystemTime) -> Result<(Precheck, CallerIdentity), Refusal> {
        let unauthenticated = |why: &str| Refusal::new(RefusalKind::Unauthenticated, why);
        let invoker = invoker.as_ref().ok_or_else(|| {
            unauthenticated("no IAM identity in the invocation: call the function URL (or API) with SigV4, IAM auth on")
        })?;
        // AWS wrote both; parts that disagree are not AWS's, and trust goes to neither.
        match Arn::parse(&invoker.arn) {
            Some(arn) if arn.account == invoker.account && matches!(arn.service, "iam" | "sts") => {}
            _ => return Err(unauthenticated("the invocation's caller is not an IAM principal of its account")),
        }
        let checked =
            CallerIdentity { arn: invoker.arn.clone(), account: invoker.account.clone(), user_id: String::new() };
        Ok((Precheck { access_key_id: invoker.access_key.clone(), single_use: None }, checked))
    }

    async fn authenticate(&self, checked: &CallerIdentity) -> Result<Caller, Refusal> {
        Ok(Caller { arn: checked.arn.clone(), account: checked.account.clone(), principal: checked.principal() })
    }
}

impl FromTokenRequest for IamInvocation {
    fn read(parts: &axum::http::request::Parts, body: &[u8]) -> Result<(TokenAsk, Option<Invoker>), Refusal> {
        let ask: Ask = serde_json::from_slice(body).map_err(|_| {
            Refusal::new(
                RefusalKind::Malformed,
                "malformed request: expected {\"audience\", \"ttl\"?} and nothing else",
            )
        })?;
        let invoker = parts.extensions.get::<RequestContext>().and_then(invoker);
        Ok((TokenAsk { audience: ask.audience, ttl: ask.ttl }, invoker))
    }
}
