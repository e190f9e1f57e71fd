//! Who is asking: the [`Authenticator`] an [`super::Issuer`] is built with turns what a request
//! carries into a [`Caller`], or a [`Refusal`]. `serve` checks an STS proof
//! ([`super::StsProofs`]); a Lambda function behind IAM auth takes the caller AWS verified.

use std::future::Future;
use std::time::{Duration, SystemTime};

/// The caller, as AWS named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The ARN exactly as AWS gave it: an assumed-role session keeps its session name.
    pub arn: String,
    /// The 12-digit account id.
    pub account: String,
    /// The ARN a policy matches: an assumed-role session's role (`arn:P:iam::A:role/ROLE`).
    pub principal: String,
}

/// What an answer to a refused request is, in words a transport maps to its own codes (HTTP:
/// 400, 401, 403, 429, 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalKind {
    /// The request is malformed.
    Malformed,
    /// Who is asking could not be established.
    Unauthenticated,
    /// The caller is known, and the policy does not allow this.
    Forbidden,
    /// Too many requests; retry later.
    Limited,
    /// The issuer or what it depends on (STS, KMS) cannot answer now; retry later.
    Unavailable,
}

/// A refused request: why, in a message safe to show the caller (it names nothing of the
/// server), and when to retry if that may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What kind of refusal.
    pub kind: RefusalKind,
    /// Why, for the caller.
    pub message: String,
    /// When a retry may succeed.
    pub retry_after: Option<Duration>,
}

impl Refusal {
    /// A refusal without a retry hint.
    pub fn new(kind: RefusalKind, message: impl Into<String>) -> Refusal {
        Refusal { kind, message: message.into(), retry_after: None }
    }

    /// A refusal to retry after `after`.
    pub fn retry(kind: RefusalKind, message: impl Into<String>, after: Duration) -> Refusal {
        Refusal { kind, message: message.into(), retry_after: Some(after) }
    }
}

/// What an authenticator found out without any network call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precheck {
    /// The access key id the request was signed with: limited before authentication.
    pub access_key_id: Option<String>,
    /// A value that may be used once, and until when it must be remembered (a proof's
    /// signature and the end of its date window).
    pub single_use: Option<(String, SystemTime)>,
}

/// Establishes who sent a request.
pub trait Authenticator: Send + Sync + 'static {
    /// What a request carries to say who sent it.
    type Credential: Send + Sync;
    /// A credential that passed [`Authenticator::precheck`].
    type Checked: Send + Sync;

    /// Checks the credential offline, before any limit that needs its content and before any
    /// network call.
    fn precheck(&self, credential: &Self::Credential, now: SystemTime) -> Result<(Precheck, Self::Checked), Refusal>;

    /// Establishes the caller (STS for a proof). Called only after [`Authenticator::precheck`]
    /// passed and the limits allowed the request.
    fn authenticate(&self, checked: &Self::Checked) -> impl Future<Output = Result<Caller, Refusal>> + Send;
}
