//! AWS KMS: the client configuration, the error mapping, and [`KmsSigner`].

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyMetadata, KeyState, MessageType, SigningAlgorithmSpec};

use crate::alg::KeyFamily;
use crate::jwk::PublicKey;
use crate::signer::Signer;
use crate::{Algorithm, Error, Result, ecdsa};

/// How to reach KMS: endpoint, region, profile, timeouts and retries.
///
/// Unset fields fall back to the standard AWS environment (`AWS_ENDPOINT_URL`,
/// `AWS_REGION`, `AWS_PROFILE`, the credential chain). The SDK has no operation timeout by
/// default; this type always sets one, so a hung endpoint cannot hang a caller.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct KmsOptions {
    /// KMS endpoint URL (for example `LocalStack`'s <http://127.0.0.1:4566>) [env: `AWS_ENDPOINT_URL`]
    #[cfg_attr(feature = "cli", arg(long, global = true, value_name = "URL"))]
    pub endpoint_url: Option<String>,

    /// AWS region [env: `AWS_REGION`]
    #[cfg_attr(feature = "cli", arg(long, global = true, value_name = "R"))]
    pub region: Option<String>,

    /// AWS shared-config profile [env: `AWS_PROFILE`]
    #[cfg_attr(feature = "cli", arg(long, global = true, value_name = "P"))]
    pub profile: Option<String>,

    /// Give up on a KMS call, retries included, after this long
    #[cfg_attr(feature = "cli", arg(long, global = true, value_name = "DURATION", default_value = "20s", value_parser = humantime::parse_duration))]
    pub timeout: Duration,

    /// Give up on one attempt of a KMS call after this long (then retry)
    #[cfg_attr(feature = "cli", arg(long, global = true, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration))]
    pub attempt_timeout: Duration,

    /// Attempts per KMS call, first try included (throttling and 5xx are retried with backoff)
    #[cfg_attr(feature = "cli", arg(long, global = true, value_name = "N", default_value_t = 8))]
    pub max_attempts: u32,

    /// Fixed credentials (access key id, secret) instead of the credential chain: for
    /// `LocalStack`, which accepts any.
    #[cfg_attr(feature = "cli", arg(skip))]
    pub static_credentials: Option<(String, String)>,
}

impl Default for KmsOptions {
    fn default() -> KmsOptions {
        KmsOptions {
            endpoint_url: None,
            region: None,
            profile: None,
            timeout: Duration::from_secs(20),
            attempt_timeout: Duration::from_secs(5),
            max_attempts: 8,
            static_credentials: None,
        }
    }
}

impl KmsOptions {
    /// Options for an explicit endpoint and region (`LocalStack`, tests).
    #[must_use]
    pub fn endpoint(url: impl Into<String>, region: impl Into<String>) -> KmsOptions {
        KmsOptions { endpoint_url: Some(url.into()), region: Some(region.into()), ..KmsOptions::default() }
    }

    /// Builds one KMS client (one connection pool) from these options and the environment.
    pub async fn client(&self) -> Result<Client> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.attempt_timeout.min(Duration::from_secs(3)))
                    .operation_attempt_timeout(self.attempt_timeout)
                    .operation_timeout(self.timeout)
                    .build(),
            )
            // Short backoff: throttling clears in well under a second, and an endpoint that
            // refuses connections should fail in seconds, not after the operation timeout.
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(self.max_attempts.max(1))
                    .with_initial_backoff(Duration::from_millis(50))
                    .with_max_backoff(Duration::from_secs(2)),
            );
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some((id, secret)) = &self.static_credentials {
            loader =
                loader.credentials_provider(aws_sdk_kms::config::Credentials::new(id, secret, None, None, "kms-jwt"));
        }
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(Error::Config("no AWS region is configured: pass --region or set AWS_REGION".into()));
        }
        Ok(Client::new(&config))
    }
}

/// Turns an SDK error into the crate's typed error. `key` names the key in messages.
pub(crate) fn map_sdk_error<E, R>(err: &SdkError<E, R>, key: &str, opts: &ErrorContext) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + 'static,
{
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            // An answer without an error code is one the SDK could not read at all.
            let Some(code) = e.code() else {
                return Error::InvalidResponse(format!("{}", DisplayErrorContext(err)));
            };
            let message = e.message().unwrap_or("").to_owned();
            match code {
                "NotFoundException" => Error::KeyNotFound(key.to_owned()),
                "DisabledException" => Error::KeyDisabled(key.to_owned()),
                "KMSInvalidStateException" if message.to_ascii_lowercase().contains("pending deletion") => {
                    Error::KeyPendingDeletion(key.to_owned())
                }
                "KMSInvalidStateException" => Error::KeyUnavailable { key: key.to_owned(), state: message },
                "AccessDeniedException" => Error::AccessDenied(message),
                "ThrottlingException" | "LimitExceededException" => Error::Throttled { attempts: opts.max_attempts },
                _ => Error::Kms(format!("{code}: {message}")),
            }
        }
        SdkError::TimeoutError(_) => Error::Timeout(opts.timeout),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => Error::Timeout(opts.timeout),
        SdkError::DispatchFailure(_) => Error::Transport(root_cause(err)),
        SdkError::ResponseError(_) => Error::InvalidResponse(root_cause(err)),
        _ => Error::Config(format!("{}", DisplayErrorContext(err))),
    }
}

/// The innermost cause: "Connection refused (os error 111)" rather than "dispatch failure".
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// What error messages need from the options.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorContext {
    pub(crate) timeout: Duration,
    pub(crate) max_attempts: u32,
}

impl From<&KmsOptions> for ErrorContext {
    fn from(opts: &KmsOptions) -> ErrorContext {
        ErrorContext { timeout: opts.timeout, max_attempts: opts.max_attempts }
    }
}

/// A KMS key as `DescribeKey` and `GetPublicKey` report it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// The key ARN.
    pub arn: String,
    /// The key id (UUID).
    pub key_id: String,
    /// `KeySpec`, for example `RSA_2048`.
    pub key_spec: String,
    /// The public key.
    pub public_key: PublicKey,
    /// `SigningAlgorithms` the key supports, as KMS names them.
    pub signing_algorithms: Vec<String>,
    /// The key's metadata.
    pub metadata: KeyMetadata,
}

impl KeyInfo {
    /// Picks `requested` if the key can sign with it, else the key spec's default.
    pub fn algorithm(&self, requested: Option<Algorithm>) -> Result<Algorithm> {
        let alg = match requested {
            Some(alg) => alg,
            None => Algorithm::default_for_key_spec(&self.key_spec).ok_or_else(|| Error::WrongKeyUsage {
                key: self.arn.clone(),
                usage: "SIGN_VERIFY".into(),
                spec: self.key_spec.clone(),
            })?,
        };
        if !alg.fits_key_spec(&self.key_spec) || !self.signing_algorithms.iter().any(|a| a == alg.kms_name()) {
            return Err(Error::AlgorithmMismatch { alg, key: format!("kms key {} ({})", self.key_id, self.key_spec) });
        }
        Ok(alg)
    }
}

/// Describes `key` (id, ARN or alias) and fetches its public key: two KMS calls. Refuses
/// keys that are not enabled asymmetric `SIGN_VERIFY` keys.
pub async fn describe_signing_key(client: &Client, key: &str, ctx: &KmsOptions) -> Result<KeyInfo> {
    let key = normalize_key_ref(key);
    let ectx = ErrorContext::from(ctx);
    let described = client.describe_key().key_id(&key).send().await.map_err(|e| map_sdk_error(&e, &key, &ectx))?;
    let metadata =
        described.key_metadata.ok_or_else(|| Error::InvalidResponse("DescribeKey without KeyMetadata".into()))?;
    let arn = metadata.arn().unwrap_or_default().to_owned();
    match metadata.key_state() {
        Some(KeyState::Enabled) => {}
        Some(KeyState::Disabled) => return Err(Error::KeyDisabled(key)),
        Some(KeyState::PendingDeletion | KeyState::PendingReplicaDeletion) => {
            return Err(Error::KeyPendingDeletion(key));
        }
        other => {
            return Err(Error::KeyUnavailable { key, state: other.map_or("unknown", KeyState::as_str).to_owned() });
        }
    }
    let usage = metadata.key_usage().map_or("unknown", |u| u.as_str()).to_owned();
    let key_spec = metadata.key_spec().map_or("unknown", |s| s.as_str()).to_owned();
    if usage != "SIGN_VERIFY" || Algorithm::default_for_key_spec(&key_spec).is_none() {
        return Err(Error::WrongKeyUsage { key, usage, spec: key_spec });
    }
    let public = client.get_public_key().key_id(&arn).send().await.map_err(|e| map_sdk_error(&e, &key, &ectx))?;
    let der = public.public_key().ok_or_else(|| Error::InvalidResponse("GetPublicKey without PublicKey".into()))?;
    let public_key = PublicKey::from_spki_der(der.as_ref())?;
    let signing_algorithms = metadata.signing_algorithms().iter().map(|a| a.as_str().to_owned()).collect();
    Ok(KeyInfo { key_id: metadata.key_id().to_owned(), arn, key_spec, public_key, signing_algorithms, metadata })
}

/// Accepts `NAME` for `alias/NAME`: anything that is not a key id, ARN or `alias/` name is
/// taken as an alias name.
#[must_use]
pub fn normalize_key_ref(key: &str) -> String {
    let looks_like_id = key.len() == 36 && key.bytes().filter(|&b| b == b'-').count() == 4;
    let looks_like_mrk = key.starts_with("mrk-");
    if key.starts_with("alias/") || key.starts_with("arn:") || looks_like_id || looks_like_mrk {
        key.to_owned()
    } else {
        format!("alias/{key}")
    }
}

/// Signs with a KMS asymmetric key: the private key never leaves KMS.
///
/// The key is resolved once (`DescribeKey`, `GetPublicKey`) and then always addressed by ARN, so
/// an alias moved by a rotation mid-batch cannot make one signer sign with two keys.
#[derive(Debug, Clone)]
pub struct KmsSigner {
    client: Client,
    info: KeyInfo,
    alg: Algorithm,
    errors: ErrorContext,
}

impl KmsSigner {
    /// Resolves `key` (key id, key ARN, `alias/NAME` or `NAME`) and pins `alg`, or the key
    /// spec's default (RS256 for RSA, the curve's ES* for EC).
    pub async fn new(client: Client, key: &str, alg: Option<Algorithm>, opts: &KmsOptions) -> Result<KmsSigner> {
        let info = describe_signing_key(&client, key, opts).await?;
        let alg = info.algorithm(alg)?;
        Ok(KmsSigner { client, info, alg, errors: ErrorContext::from(opts) })
    }

    /// The resolved key.
    #[must_use]
    pub fn key(&self) -> &KeyInfo {
        &self.info
    }
}

impl Signer for KmsSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }

    fn public_key(&self) -> &PublicKey {
        &self.info.public_key
    }

    async fn sign_digest(&self, digest: &aws_lc_rs::digest::Digest) -> Result<Vec<u8>> {
        let arn = &self.info.arn;
        let out = self
            .client
            .sign()
            .key_id(arn)
            .message(Blob::new(digest.as_ref()))
            .message_type(MessageType::Digest)
            .signing_algorithm(SigningAlgorithmSpec::from(self.alg.kms_name()))
            .send()
            .await
            .map_err(|e| map_sdk_error(&e, arn, &self.errors))?;
        if out.key_id() != Some(arn.as_str()) {
            return Err(Error::InvalidResponse(format!(
                "Sign answered for key {:?}, not {arn}",
                out.key_id().unwrap_or("(none)")
            )));
        }
        if out.signing_algorithm().map(SigningAlgorithmSpec::as_str) != Some(self.alg.kms_name()) {
            return Err(Error::InvalidResponse(format!(
                "Sign used algorithm {:?}, not {}",
                out.signing_algorithm().map_or("(none)", SigningAlgorithmSpec::as_str),
                self.alg.kms_name()
            )));
        }
        let signature = out.signature().ok_or_else(|| Error::InvalidResponse("Sign returned no signature".into()))?;
        match self.alg.key_family() {
            KeyFamily::Ec(curve) => ecdsa::der_to_fixed(signature.as_ref(), curve.scalar_len())
                .ok_or_else(|| Error::InvalidResponse("Sign returned a malformed ECDSA signature".into())),
            KeyFamily::Rsa => Ok(signature.as_ref().to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_become_aliases() {
        assert_eq!(normalize_key_ref("jwt-signer"), "alias/jwt-signer");
        assert_eq!(normalize_key_ref("alias/jwt-signer"), "alias/jwt-signer");
        assert_eq!(normalize_key_ref("1234abcd-12ab-34cd-56ef-1234567890ab"), "1234abcd-12ab-34cd-56ef-1234567890ab");
        assert_eq!(
            normalize_key_ref("arn:aws:kms:us-east-1:000000000000:key/x"),
            "arn:aws:kms:us-east-1:000000000000:key/x"
        );
    }
}
