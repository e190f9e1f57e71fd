//! AWS KMS: the client and its configuration ([`KmsOptions`], [`KmsClient`]), keys as KMS
//! describes them ([`KmsKey`], [`KeyInfo`]), the error mapping, and [`KmsSigner`].

mod errors;
mod key;
mod observe;
mod signer;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_kms::Client;
use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};

#[cfg(feature = "s3")]
pub(crate) use self::errors::root_cause;
use self::errors::{ErrorContext, map_sdk_error};
pub use self::key::{KeyInfo, KeySpec, KeyState, KmsKey, MultiRegion, TAG_MAX_TOKEN_TTL, normalize_key_ref};
pub use self::observe::{KmsCall, KmsCallOutcome, KmsObserver};
pub use self::signer::{KmsSigner, KmsSignerBuilder};
use crate::jwk::PublicKey;
use crate::{Error, Result};

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

    /// The same client, telling `observer` of every call it makes from now on (and every call
    /// of its [`KmsClient::in_region`] clients): metrics on KMS without a metrics library here.
    #[must_use]
    pub fn observed(&self, observer: std::sync::Arc<dyn KmsObserver>) -> KmsClient {
        let conf = self.sdk.config().to_builder().interceptor(observe::ObserverInterceptor(observer)).build();
        KmsClient { sdk: Client::from_conf(conf), errors: self.errors, shared_endpoint: self.shared_endpoint.clone() }
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

    /// Describes `key` (id, ARN or alias): `None` if it does not exist. With `with_tags`, its
    /// tags too (a second call).
    pub async fn describe(&self, key: &str, with_tags: bool) -> Result<Option<KmsKey>> {
        let out = match self.sdk.describe_key().key_id(key).send().await {
            Ok(out) => out,
            Err(e) => {
                return match self.error(e, key) {
                    Error::KeyNotFound(_) => Ok(None),
                    other => Err(other),
                };
            }
        };
        let meta = out.key_metadata.ok_or_else(|| Error::InvalidResponse("DescribeKey without KeyMetadata".into()))?;
        let mut described = KmsKey::from_metadata(&meta);
        if with_tags {
            described.tags = self.tags(&described.key_id, key).await?;
        }
        Ok(Some(described))
    }

    /// The tags of `key_id`; `name` is how messages name the key.
    pub(crate) async fn tags(&self, key_id: &str, name: &str) -> Result<BTreeMap<String, String>> {
        let out = self.sdk.list_resource_tags().key_id(key_id).send().await.map_err(|e| self.error(e, name))?;
        Ok(out.tags().iter().map(|t| (t.tag_key().to_owned(), t.tag_value().to_owned())).collect())
    }

    /// Describes `key` (id, ARN or alias) and fetches its public key: two KMS calls. Refuses
    /// keys that are not enabled asymmetric `SIGN_VERIFY` keys.
    pub async fn describe_signing_key(&self, key: &str) -> Result<KeyInfo> {
        let key = normalize_key_ref(key);
        let described = self.sdk.describe_key().key_id(&key).send().await.map_err(|e| self.error(e, &key))?;
        let metadata =
            described.key_metadata.ok_or_else(|| Error::InvalidResponse("DescribeKey without KeyMetadata".into()))?;
        let found = KmsKey::from_metadata(&metadata);
        match &found.state {
            KeyState::Enabled => {}
            KeyState::Disabled => return Err(Error::KeyDisabled(key)),
            KeyState::PendingDeletion => return Err(Error::KeyPendingDeletion(key)),
            other => return Err(Error::KeyUnavailable { key, state: other.as_str().to_owned() }),
        }
        let usage = metadata.key_usage().map_or("unknown", |u| u.as_str()).to_owned();
        if usage != "SIGN_VERIFY" || found.spec.default_algorithm().is_none() {
            return Err(Error::WrongKeyUsage { key, usage, spec: found.spec.as_str().to_owned() });
        }
        let public = self.sdk.get_public_key().key_id(&found.arn).send().await.map_err(|e| self.error(e, &key))?;
        let der = public.public_key().ok_or_else(|| Error::InvalidResponse("GetPublicKey without PublicKey".into()))?;
        let public_key = PublicKey::from_spki_der(der.as_ref())?;
        let signing_algorithms = metadata.signing_algorithms().iter().map(|a| a.as_str().to_owned()).collect();
        Ok(KeyInfo { key: found, public_key, signing_algorithms })
    }

    /// The key's lifetime policy ([`TAG_MAX_TOKEN_TTL`]), if it has one: its tags are read (one
    /// call). A key whose tags these credentials may not read signs without one: the policy
    /// guards against mistakes, and whoever may call `kms:Sign` could sign any token anyway. A
    /// tag that is not a duration is an error.
    pub async fn lifetime_policy(&self, key: &KmsKey) -> Result<Option<Duration>> {
        match self.tags(&key.arn, &key.arn).await {
            Ok(tags) => KmsKey { tags, ..key.clone() }.max_token_ttl(),
            Err(Error::AccessDenied { message, .. }) => {
                tracing::warn!(key = key.arn, %message, "cannot read the key's tags; no lifetime policy");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}
