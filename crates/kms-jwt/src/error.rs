//! The library's error type.

use std::time::Duration;

use crate::Algorithm;

/// The boxed cause an [`Error`] keeps as its `source()`: the AWS SDK's error, for example.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in `kms_jwt`, grouped by what a caller does about it.
///
/// Messages are one lowercase sentence, fit for a log line or a command-line error, and name
/// no command-line flag. Errors that come from the AWS SDK keep it as their `source()` for
/// callers that want every detail; the message already says what matters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token is not acceptable: malformed, forged, expired or for someone else.
    /// The caller rejects it; retrying cannot help.
    #[error("{0}")]
    InvalidToken(#[from] TokenError),

    /// A public key, PEM, JWK or JWKS could not be used.
    #[error("invalid key: {0}")]
    InvalidKey(String),

    /// Claims or header input that cannot become a token (not a JSON object, bad value).
    #[error("invalid claims: {0}")]
    InvalidClaims(String),

    /// The algorithm cannot be used with this key (for example RS256 on an EC key).
    #[error("algorithm {alg} is not valid for {key}")]
    AlgorithmMismatch {
        /// The algorithm that was asked for.
        alg: Algorithm,
        /// What the key is, as KMS or the JWK names it (for example `ECC_NIST_P256`).
        key: String,
    },

    #[cfg(feature = "kms")]
    /// The KMS key, alias or ARN does not exist (or is not visible to these credentials).
    #[error("kms key {0} was not found")]
    KeyNotFound(String),

    #[cfg(feature = "kms")]
    /// The KMS key exists but is disabled.
    #[error("kms key {0} is disabled")]
    KeyDisabled(String),

    #[cfg(feature = "kms")]
    /// The KMS key is scheduled for deletion.
    #[error("kms key {0} is pending deletion")]
    KeyPendingDeletion(String),

    #[cfg(feature = "kms")]
    /// The KMS key is in another state that cannot sign (for example `PendingImport`).
    #[error("kms key {key} is in state {state} and cannot sign")]
    KeyUnavailable {
        /// The key.
        key: String,
        /// The key state as KMS reports it.
        state: String,
    },

    #[cfg(feature = "kms")]
    /// The KMS key is not an asymmetric `SIGN_VERIFY` key (an encryption or HMAC key).
    #[error(
        "kms key {key} has key usage {usage} and key spec {spec}; a SIGN_VERIFY RSA, ECC or ML-DSA key is required"
    )]
    WrongKeyUsage {
        /// The key.
        key: String,
        /// Its key usage.
        usage: String,
        /// Its key spec.
        spec: String,
    },

    #[cfg(feature = "kms")]
    /// The credentials may not perform this KMS operation.
    #[error("access denied by kms: {message}")]
    AccessDenied {
        /// What KMS said.
        message: String,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },

    #[cfg(feature = "kms")]
    /// KMS kept throttling after the retries the client allows (fewer when the SDK's retry
    /// quota, shared by the client's calls, ran out first).
    #[error("kms throttled the request (up to {attempts} attempts)")]
    Throttled {
        /// The attempts the client allows per call.
        attempts: u32,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },

    #[cfg(feature = "kms")]
    /// KMS did not answer within the configured timeout.
    #[error("kms did not answer within {after:?}")]
    Timeout {
        /// The operation timeout.
        after: Duration,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },

    #[cfg(feature = "kms")]
    /// KMS could not be reached (DNS, connection refused, TLS).
    #[error("cannot reach kms: {reason}")]
    Transport {
        /// The innermost cause, for example "Connection refused (os error 111)".
        reason: String,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },

    #[cfg(feature = "kms")]
    /// KMS answered with a server error (HTTP 5xx), after the retries the client allows: the
    /// region is unwell. A `FailoverSigner` signs in its next region instead.
    #[error("kms is unavailable: HTTP {status}{}", if code.is_empty() { String::new() } else { format!(" {code}: {message}") })]
    Unavailable {
        /// The HTTP status.
        status: u16,
        /// The error code, for example `KMSInternalException`, if the answer had one.
        code: String,
        /// What KMS said.
        message: String,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },

    /// KMS answered something the signer refuses to trust (another key, another algorithm,
    /// a malformed signature). No token is produced from such an answer.
    #[error("kms returned an invalid response: {0}")]
    InvalidResponse(String),

    #[cfg(feature = "kms")]
    /// Any other error reported by KMS, with its code and message.
    #[error("kms error: {code}: {message}")]
    Kms {
        /// The error code, for example `KMSInternalException`.
        code: String,
        /// What KMS said.
        message: String,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },

    #[cfg(feature = "kms")]
    /// A KMS request could not be made at all (the SDK's request construction failed).
    #[error("cannot build the kms request: {reason}")]
    Request {
        /// What went wrong.
        reason: String,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },

    /// Rotation would retire a key that stopped being current less than the minimum overlap
    /// ago: tokens it signed may still be valid. Nothing was changed; waiting (or forcing)
    /// is the caller's choice.
    #[error(
        "previous key {key} was demoted {} ago, less than the minimum overlap of {}; tokens it signed may still be valid. Nothing was changed",
        humanize(*.demoted_ago),
        humanize(*.min_overlap)
    )]
    #[cfg(feature = "kms")]
    OverlapNotElapsed {
        /// The key that would be retired.
        key: String,
        /// How long ago it was demoted.
        demoted_ago: Duration,
        /// The overlap asked for.
        min_overlap: Duration,
    },

    #[cfg(feature = "kms")]
    /// Another operation on the key set is in progress (or died holding its lock); nothing
    /// was changed. Retrying later is safe.
    #[error("another operation on key set {set} is in progress ({detail}); nothing was changed")]
    Busy {
        /// The key set.
        set: String,
        /// What was found.
        detail: String,
    },

    /// The token would outlive the key's longest token lifetime (the key set's policy), so it
    /// could outlive the key's publication. Nothing was signed.
    #[error("{}", lifetime_message(*.lifetime, *.max))]
    LifetimeTooLong {
        /// The token's lifetime, `exp` minus the signing time; `None` for a token without `exp`.
        lifetime: Option<Duration>,
        /// The key's maximum token lifetime.
        max: Duration,
    },

    #[cfg(feature = "kms")]
    /// A rotation or provisioning step refused to run; nothing was changed.
    #[error("{0}")]
    Refused(String),

    #[cfg(feature = "s3")]
    /// Writing the documents to S3 failed (no such bucket, access denied, unreachable). A
    /// document written before the failure stays; publishing again is safe.
    #[error("{message}")]
    Publish {
        /// What failed, with S3's error code and message.
        message: String,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },

    /// An error that several callers waited for and share (a [`crate::TokenCache`] mint):
    /// the error itself is inside.
    #[error(transparent)]
    Shared(std::sync::Arc<Error>),

    #[cfg(feature = "kms")]
    /// Configuration of the AWS client (region, profile, endpoint) is unusable.
    #[error("aws configuration: {0}")]
    Config(String),

    #[cfg(feature = "kms")]
    /// A kms-jwt tag on a KMS key has a value that cannot be read: the key's policy is unknown,
    /// and nothing that depends on it is done.
    #[error("kms key {key} has tag {tag}={value:?}, which is not {expected}")]
    BadTag {
        /// The key.
        key: String,
        /// The tag.
        tag: &'static str,
        /// Its value.
        value: String,
        /// What the value must be.
        expected: &'static str,
    },

    #[cfg(feature = "kms")]
    /// An issuer refused to give a token: its HTTP status and its reason.
    #[error("the issuer refused: {reason} (HTTP {status})")]
    IssuerRefused {
        /// The HTTP status (401 proof rejected, 403 policy, 429 rate limit, 503 unavailable).
        status: u16,
        /// What the issuer said.
        reason: String,
        /// When the issuer said a retry may succeed.
        retry_after: Option<Duration>,
    },

    #[cfg(feature = "kms")]
    /// An issuer could not be reached, or answered something that is not an answer.
    #[error("cannot reach the issuer at {url}: {reason}")]
    IssuerUnreachable {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },

    /// An issuer's keys cannot be had: never fetched, or too old to trust and not refreshable.
    #[cfg(feature = "remote")]
    #[error("{0}")]
    KeysUnavailable(String),

    #[cfg(feature = "kms")]
    /// An issuer's token policy file is invalid; the line is 1-based.
    #[error("token policy: line {line}: {reason}")]
    InvalidPolicy {
        /// The line that is wrong.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// Whether the error says the KMS region is out of reach or unwell (it could not be
    /// reached, did not answer in time, kept throttling, or answered 5xx), rather than that
    /// the request or the key is wrong: the errors after which another region may be tried.
    #[must_use]
    pub fn is_outage(&self) -> bool {
        match self {
            #[cfg(feature = "kms")]
            Error::Timeout { .. } | Error::Transport { .. } | Error::Throttled { .. } | Error::Unavailable { .. } => {
                true
            }
            Error::Shared(inner) => inner.is_outage(),
            _ => false,
        }
    }
}

fn lifetime_message(lifetime: Option<Duration>, max: Duration) -> String {
    match lifetime {
        Some(lifetime) => format!(
            "token lifetime {} exceeds the key's maximum token lifetime of {}",
            humanize(lifetime),
            humanize(max)
        ),
        None => format!("token has no exp, and the key's maximum token lifetime is {}", humanize(max)),
    }
}

/// Whole seconds, as humans write durations ("1h 30m", "45s").
fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    let parts = [(secs / 86_400, "d"), (secs / 3_600 % 24, "h"), (secs / 60 % 60, "m"), (secs % 60, "s")];
    let text: Vec<String> = parts.iter().filter(|(n, _)| *n > 0).map(|(n, unit)| format!("{n}{unit}")).collect();
    if text.is_empty() { "0s".into() } else { text.join(" ") }
}
/// Why a token was rejected. Each variant is a distinct, stable reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than the verifier accepts.
    #[error("token is {len} bytes, more than the {max} allowed")]
    TooLong {
        /// Length of the token.
        len: usize,
        /// The configured bound.
        max: usize,
    },
    /// The input is not text (invalid UTF-8).
    #[error("token is not ASCII text")]
    NotText,
    /// Not three dot-separated segments.
    #[error("token must have 3 segments separated by dots, found {0}")]
    Segments(usize),
    /// A segment is not unpadded base64url with zero trailing bits.
    #[error("{0} segment is not valid unpadded base64url")]
    Base64(&'static str),
    /// The header or claims are not a JSON object (or have duplicate member names).
    #[error("{part} is not a valid JSON object: {reason}")]
    Json {
        /// `header` or `claims`.
        part: &'static str,
        /// What the JSON parser said.
        reason: String,
    },
    /// `alg` is `none`: unsigned tokens are never accepted.
    #[error("unsigned tokens (alg none) are not accepted")]
    AlgNone,
    /// `alg` is missing, not a string, or an algorithm this verifier does not implement.
    #[error("unsupported algorithm {0}")]
    UnsupportedAlg(String),
    /// The header names an algorithm other than the one pinned for the key.
    #[error("algorithm {got} is not allowed for key {kid} (pinned to {pinned})")]
    AlgNotAllowed {
        /// Algorithm in the header.
        got: String,
        /// Key id of the selected key.
        kid: String,
        /// The key's pinned algorithm.
        pinned: Algorithm,
    },
    /// The header has a `crit` member; this verifier understands no extensions.
    #[error("unsupported critical header parameters {0}")]
    Crit(String),
    /// A header member has the wrong type.
    #[error("header member {0} has the wrong type")]
    HeaderType(&'static str),
    /// No configured key has the token's `kid`.
    #[error("no key with kid {0:?}")]
    UnknownKid(String),
    /// The token has no `kid` and the key set has more than one key.
    #[error("token has no kid and {0} keys are configured")]
    AmbiguousKey(usize),
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// A registered claim is present with the wrong JSON type.
    #[error("claim {name} must be {expected}")]
    ClaimType {
        /// The claim's name.
        name: &'static str,
        /// The type it must have, in words.
        expected: &'static str,
    },
    /// `exp` is in the past (beyond leeway).
    #[error("token expired at {exp}")]
    Expired {
        /// The `exp` claim.
        exp: i64,
    },
    /// `nbf` is in the future (beyond leeway).
    #[error("token is not valid before {nbf}")]
    NotYetValid {
        /// The `nbf` claim.
        nbf: i64,
    },
    /// A required claim is absent.
    #[error("required claim {0} is missing")]
    MissingClaim(&'static str),
    /// `iss` is not the expected issuer.
    #[error("issuer {got:?} is not the expected issuer")]
    Issuer {
        /// The `iss` claim.
        got: String,
    },
    /// `aud` does not contain an expected audience.
    #[error("audience does not match")]
    Audience,
    /// The token has an `aud` and the verifier expects none: it may be meant for another
    /// service. Name the expected audience, or allow any.
    #[error("token has an audience (aud) but none is expected")]
    AudienceNotExpected,
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
