//! AWS KMS: the client configuration, the error mapping, and [`KmsSigner`].

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_kms::Client;
use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyMetadata, KeyState, MessageType, SigningAlgorithmSpec};

use crate::alg::KeyFamily;
use crate::jwk::PublicKey;
use crate::signer::{SignatureFuture, Signer};
use crate::{Algorithm, BoxError, Error, Result, ecdsa};

/// How to reach KMS: endpoint, region, profile, timeouts and retries.
///
/// Unset fields fall back to the standard AWS environment (`AWS_ENDPOINT_URL`,
/// `AWS_REGION`, `AWS_PROFILE`, the credential chain). `KMS_JWT_ENDPOINT_URL_<REGION>` (for
/// example `KMS_JWT_ENDPOINT_URL_EU_WEST_1`) overrides the endpoint of one region only: an
/// on-premises KMS-compatible endpoint, or a test's proxy in front of one region. The SDK has
/// no operation timeout by default; this type always sets one, so a hung endpoint cannot hang
/// a caller.
#[derive(Debug, Clone)]
pub struct KmsOptions {
    /// KMS endpoint URL (for example `LocalStack`'s <http://127.0.0.1:4566>).
    pub endpoint_url: Option<String>,
    /// AWS region.
    pub region: Option<String>,
    /// AWS shared-config profile.
    pub profile: Option<String>,
    /// Give up on a KMS call, retries included, after this long.
    pub timeout: Duration,
    /// Give up on one attempt of a KMS call after this long (then retry).
    pub attempt_timeout: Duration,
    /// Attempts per KMS call, first try included (throttling and 5xx are retried with backoff).
    pub max_attempts: u32,
    /// Fixed credentials (access key id, secret) instead of the credential chain: for
    /// `LocalStack`, which accepts any.
    pub static_credentials: Option<(String, String)>,
}

/// Tag with the longest token lifetime the key may sign (a duration such as `1h`): the key
/// set's lifetime policy, which [`KmsSigner`] enforces and rotation's overlap is derived from.
pub const TAG_MAX_TOKEN_TTL: &str = "kms-jwt:max-token-ttl";

/// Every KMS action a [`KmsSigner`] performs (and `jwks`, `publish` and `serve` with it): the
/// Terraform module's signer policy grants exactly these, on the keys tagged with the set.
pub const SIGNER_ACTIONS: [&str; 4] = ["kms:DescribeKey", "kms:GetPublicKey", "kms:ListResourceTags", "kms:Sign"];

/// The operation timeout [`KmsOptions`] and [`KmsClient`] set when none is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// The attempt timeout [`KmsOptions`] and [`KmsClient`] set when none is given.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per KMS call, first try included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;

impl Default for KmsOptions {
    fn default() -> KmsOptions {
        KmsOptions {
            endpoint_url: None,
            region: None,
            profile: None,
            timeout: DEFAULT_TIMEOUT,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
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

    /// Loads the AWS configuration these options describe (credentials, region, endpoint,
    /// timeouts, retries) from the environment.
    pub async fn load(&self) -> Result<SdkConfig> {
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
        let Some(region) = config.region() else {
            return Err(Error::Config(
                "no AWS region is configured (set AWS_REGION, or a region in the profile)".into(),
            ));
        };
        Ok(match region_endpoint(region.as_ref()) {
            Some(url) => config.to_builder().endpoint_url(url).build(),
            None => config,
        })
    }

    /// The same options for another region.
    #[must_use]
    pub fn in_region(&self, region: &str) -> KmsOptions {
        KmsOptions { region: Some(region.to_owned()), ..self.clone() }
    }

    /// Builds one KMS client (one connection pool) from these options and the environment.
    pub async fn connect(&self) -> Result<KmsClient> {
        let config = self.load().await?;
        let mut kms = KmsClient::from_conf(&config);
        if config.region().and_then(|r| region_endpoint(r.as_ref())).is_some() {
            // This region's override is its own: other regions use the shared endpoint.
            kms.shared_endpoint =
                SharedEndpoint::Known(self.endpoint_url.clone().or_else(|| std::env::var("AWS_ENDPOINT_URL").ok()));
        }
        Ok(kms)
    }
}

/// The endpoint a client for another region uses.
#[derive(Debug, Clone)]
enum SharedEndpoint {
    /// Not known (a client built from an SDK client): the same as this client's.
    Same,
    /// This one (`None`: the region's standard AWS endpoint).
    Known(Option<String>),
}

/// The environment variable that overrides the KMS endpoint of `region` alone.
#[must_use]
pub fn region_endpoint_variable(region: &str) -> String {
    format!("KMS_JWT_ENDPOINT_URL_{}", region.to_ascii_uppercase().replace('-', "_"))
}

fn region_endpoint(region: &str) -> Option<String> {
    std::env::var(region_endpoint_variable(region)).ok().filter(|url| !url.is_empty())
}

/// A KMS client with the timeouts every kms-jwt call needs: the handle that signers and key
/// sets share. Cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct KmsClient {
    sdk: Client,
    errors: ErrorContext,
    /// The endpoint other regions use: the one given for all regions, not a region's own
    /// override.
    shared_endpoint: SharedEndpoint,
}

impl KmsClient {
    /// A client from an AWS configuration, such as `aws_config::load_defaults` returns.
    #[must_use]
    pub fn from_conf(config: &SdkConfig) -> KmsClient {
        let mut kms = KmsClient::from_client(Client::new(config));
        kms.shared_endpoint = SharedEndpoint::Known(config.endpoint_url().map(str::to_owned));
        kms
    }

    /// Wraps an SDK client. If it has no operation timeout, the defaults are added
    /// ([`DEFAULT_TIMEOUT`], [`DEFAULT_ATTEMPT_TIMEOUT`]): without one, a hung endpoint would
    /// hang every caller.
    #[must_use]
    pub fn from_client(client: Client) -> KmsClient {
        let conf = client.config();
        let timeouts = conf.timeout_config().cloned().unwrap_or_else(TimeoutConfig::disabled);
        let sdk = if timeouts.operation_timeout().is_some() {
            client
        } else {
            let mut with = timeouts.to_builder();
            with.set_operation_timeout(Some(DEFAULT_TIMEOUT));
            if timeouts.operation_attempt_timeout().is_none() {
                with.set_operation_attempt_timeout(Some(DEFAULT_ATTEMPT_TIMEOUT));
            }
            Client::from_conf(conf.to_builder().timeout_config(with.build()).build())
        };
        let conf = sdk.config();
        let errors = ErrorContext {
            timeout: conf.timeout_config().and_then(TimeoutConfig::operation_timeout).unwrap_or(DEFAULT_TIMEOUT),
            max_attempts: conf.retry_config().map_or(1, RetryConfig::max_attempts),
        };
        KmsClient { sdk, errors, shared_endpoint: SharedEndpoint::Same }
    }

    /// The SDK client, for calls this crate does not make.
    #[must_use]
    pub fn sdk(&self) -> &Client {
        &self.sdk
    }

    /// The same client settings for `region`, with that region's endpoint override
    /// (`KMS_JWT_ENDPOINT_URL_<REGION>`) if one is set.
    #[must_use]
    pub fn in_region(&self, region: &str) -> KmsClient {
        let mut conf = self.sdk.config().to_builder().region(aws_config::Region::new(region.to_owned()));
        if let Some(url) = region_endpoint(region) {
            conf.set_endpoint_url(Some(url));
        } else if let SharedEndpoint::Known(shared) = &self.shared_endpoint {
            conf.set_endpoint_url(shared.clone());
        }
        KmsClient {
            sdk: Client::from_conf(conf.build()),
            errors: self.errors,
            shared_endpoint: self.shared_endpoint.clone(),
        }
    }

    /// The region this client talks to.
    #[must_use]
    pub fn region(&self) -> Option<&str> {
        self.sdk.config().region().map(aws_config::Region::as_ref)
    }

    /// Turns an SDK error into the crate's typed error; `key` names the key in messages.
    pub(crate) fn error<E>(&self, err: SdkError<E, HttpResponse>, key: &str) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        map_sdk_error(err, key, self.errors)
    }

    /// Describes `key` (id, ARN or alias) and fetches its public key: two KMS calls. Refuses
    /// keys that are not enabled asymmetric `SIGN_VERIFY` keys.
    pub async fn describe_signing_key(&self, key: &str) -> Result<KeyInfo> {
        let key = normalize_key_ref(key);
        let described = self.sdk.describe_key().key_id(&key).send().await.map_err(|e| self.error(e, &key))?;
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
        let public = self.sdk.get_public_key().key_id(&arn).send().await.map_err(|e| self.error(e, &key))?;
        let der = public.public_key().ok_or_else(|| Error::InvalidResponse("GetPublicKey without PublicKey".into()))?;
        let public_key = PublicKey::from_spki_der(der.as_ref())?;
        let signing_algorithms = metadata.signing_algorithms().iter().map(|a| a.as_str().to_owned()).collect();
        Ok(KeyInfo { key_id: metadata.key_id().to_owned(), arn, key_spec, public_key, signing_algorithms, metadata })
    }
}

impl KmsClient {
    /// The key's lifetime policy ([`TAG_MAX_TOKEN_TTL`]), if it has one. A key whose tags
    /// these credentials may not read signs without one: the policy guards against mistakes,
    /// and whoever may call `kms:Sign` could sign any token anyway.
    pub async fn max_token_lifetime(&self, key_arn: &str) -> Result<Option<Duration>> {
        let tags = match self.sdk.list_resource_tags().key_id(key_arn).send().await {
            Ok(tags) => tags,
            Err(e) => {
                return match self.error(e, key_arn) {
                    Error::AccessDenied { message, .. } => {
                        tracing::warn!(key = key_arn, %message, "cannot read the key's tags; no lifetime policy");
                        Ok(None)
                    }
                    other => Err(other),
                };
            }
        };
        let Some(tag) = tags.tags().iter().find(|t| t.tag_key() == TAG_MAX_TOKEN_TTL) else { return Ok(None) };
        humantime::parse_duration(tag.tag_value()).map(Some).map_err(|e| {
            Error::InvalidResponse(format!("key {key_arn} has tag {TAG_MAX_TOKEN_TTL}={:?}: {e}", tag.tag_value()))
        })
    }
}

/// Turns an SDK error into the crate's typed error, keeping it as the source.
fn map_sdk_error<E>(err: SdkError<E, HttpResponse>, key: &str, ctx: ErrorContext) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (code, message) = match &err {
        SdkError::ServiceError(service) => {
            (service.err().code().map(str::to_owned), service.err().message().unwrap_or("").to_owned())
        }
        _ => (None, String::new()),
    };
    let timeout = matches!(&err, SdkError::TimeoutError(_))
        || matches!(&err, SdkError::DispatchFailure(failure) if failure.is_timeout());
    let dispatch = matches!(&err, SdkError::DispatchFailure(_));
    let status = err.raw_response().map_or(0, |r| r.status().as_u16());
    let construction = matches!(&err, SdkError::ConstructionFailure(_));
    let source: BoxError = Box::new(err);
    if status >= 500 && code.as_deref() != Some("ThrottlingException") {
        return Error::Unavailable { status, code: code.unwrap_or_default(), message, source };
    }
    match code.as_deref() {
        Some("NotFoundException") => Error::KeyNotFound(key.to_owned()),
        Some("DisabledException") => Error::KeyDisabled(key.to_owned()),
        Some("KMSInvalidStateException") if message.to_ascii_lowercase().contains("pending deletion") => {
            Error::KeyPendingDeletion(key.to_owned())
        }
        Some("KMSInvalidStateException") => Error::KeyUnavailable { key: key.to_owned(), state: message },
        Some("AccessDeniedException") => Error::AccessDenied { message, source },
        Some("ThrottlingException" | "LimitExceededException") => {
            Error::Throttled { attempts: ctx.max_attempts, source }
        }
        Some(code) => Error::Kms { code: code.to_owned(), message, source },
        None if timeout => Error::Timeout { after: ctx.timeout, source },
        None if dispatch => Error::Transport { reason: root_cause(&*source), source },
        None if construction => Error::Request { reason: root_cause(&*source), source },
        // A service error without a code, or a response the SDK could not read at all.
        None => Error::InvalidResponse(format!("{}", DisplayErrorContext(&*source))),
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

/// What error messages need from the client's configuration.
#[derive(Debug, Clone, Copy)]
struct ErrorContext {
    timeout: Duration,
    max_attempts: u32,
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

    /// The key as verifiers get it: its JWK, pinned to `alg`, with its RFC 7638 thumbprint as
    /// `kid` (the `kid` a [`crate::JwtSigner`] puts in its tokens by default).
    #[must_use]
    pub fn jwk(&self, alg: Algorithm) -> crate::Jwk {
        crate::Jwk { kid: Some(self.public_key.thumbprint()), key: self.public_key.clone(), alg: Some(alg) }
    }
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
///
/// ```no_run
/// # async fn example() -> kms_jwt::Result<()> {
/// use kms_jwt::kms::{KmsClient, KmsSigner};
/// use kms_jwt::{Algorithm, Claims, JwtSigner};
///
/// let config = kms_jwt::aws_config::load_defaults(kms_jwt::aws_config::BehaviorVersion::latest()).await;
/// let kms = KmsClient::from_conf(&config);
/// let signer = JwtSigner::new(KmsSigner::builder(&kms, "jwt-signer").algorithm(Algorithm::RS256).build().await?)?;
/// let token = signer.sign(&Claims::new().subject("alice").expires_at(4_102_444_800)).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct KmsSigner {
    kms: KmsClient,
    info: KeyInfo,
    alg: Algorithm,
    max_token_lifetime: Option<Duration>,
}

/// Options of a [`KmsSigner`], given once: [`KmsSigner::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct KmsSignerBuilder {
    kms: KmsClient,
    key: String,
    alg: Option<Algorithm>,
}

impl KmsSignerBuilder {
    /// Pins this algorithm (default: RS256 for RSA keys, the curve's ES* for EC keys).
    pub fn algorithm(mut self, alg: impl Into<Option<Algorithm>>) -> KmsSignerBuilder {
        self.alg = alg.into();
        self
    }

    /// Resolves the key and reads its lifetime policy (three KMS calls) and returns the signer.
    pub async fn build(self) -> Result<KmsSigner> {
        let info = self.kms.describe_signing_key(&self.key).await?;
        let alg = info.algorithm(self.alg)?;
        let max_token_lifetime = self.kms.max_token_lifetime(&info.arn).await?;
        Ok(KmsSigner { kms: self.kms, info, alg, max_token_lifetime })
    }
}

impl KmsSigner {
    /// A signer for `key` (key id, key ARN, `alias/NAME` or `NAME`) with its key spec's
    /// default algorithm.
    pub async fn new(kms: &KmsClient, key: &str) -> Result<KmsSigner> {
        KmsSigner::builder(kms, key).build().await
    }

    /// A builder for a signer of `key` (key id, key ARN, `alias/NAME` or `NAME`).
    pub fn builder(kms: &KmsClient, key: impl Into<String>) -> KmsSignerBuilder {
        KmsSignerBuilder { kms: kms.clone(), key: key.into(), alg: None }
    }

    /// The resolved key.
    #[must_use]
    pub fn key(&self) -> &KeyInfo {
        &self.info
    }

    async fn sign(&self, digest: &aws_lc_rs::digest::Digest) -> Result<Vec<u8>> {
        let arn = &self.info.arn;
        let out = self
            .kms
            .sdk
            .sign()
            .key_id(arn)
            .message(Blob::new(digest.as_ref()))
            .message_type(MessageType::Digest)
            .signing_algorithm(SigningAlgorithmSpec::from(self.alg.kms_name()))
            .send()
            .await
            .map_err(|e| self.kms.error(e, arn))?;
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

impl Signer for KmsSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }

    fn public_key(&self) -> &PublicKey {
        &self.info.public_key
    }

    fn sign_digest<'a>(&'a self, digest: &'a aws_lc_rs::digest::Digest) -> SignatureFuture<'a> {
        Box::pin(self.sign(digest))
    }

    fn max_token_lifetime(&self) -> Option<Duration> {
        self.max_token_lifetime
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
