//! [`KmsSigner`]: signs with a KMS asymmetric key; the private key never leaves KMS.

use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};

use super::{KeyInfo, KmsClient};
use crate::alg::KeyFamily;
use crate::jwk::PublicKey;
use crate::signer::{SignatureFuture, Signer};
use crate::{Algorithm, Error, Result, ecdsa};

/// The largest message KMS signs with `MessageType=RAW` (Ed25519, ML-DSA): a longer JWS
/// signing input is refused before KMS is called.
const KMS_RAW_MESSAGE_MAX: usize = 4096;

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
    max_token_ttl: Option<Duration>,
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
    /// Pins this algorithm (default: RS256 for RSA keys, the curve's ES* for EC keys, `EdDSA`
    /// for Ed25519 keys, the parameter set's ML-DSA for ML-DSA keys).
    pub fn algorithm(mut self, alg: impl Into<Option<Algorithm>>) -> KmsSignerBuilder {
        self.alg = alg.into();
        self
    }

    /// Resolves the key and reads its lifetime policy (three KMS calls) and returns the signer.
    pub async fn build(self) -> Result<KmsSigner> {
        let info = self.kms.describe_signing_key(&self.key).await?;
        let alg = info.algorithm(self.alg)?;
        let max_token_ttl = self.kms.lifetime_policy(&info.key).await?;
        Ok(KmsSigner { kms: self.kms, info, alg, max_token_ttl })
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

    async fn sign_input(&self, message: &[u8]) -> Result<Vec<u8>> {
        let arn = &self.info.key.arn;
        // RSA and ECDSA: only the digest travels, whatever the token's size. Ed25519 and
        // ML-DSA hash as part of signing, so KMS needs the message itself, and RAW takes
        // at most 4,096 bytes: refuse a longer one here rather than spend a call on it.
        let (message, message_type) = match self.alg.digest() {
            Some(digest) => (Blob::new(aws_lc_rs::digest::digest(digest, message).as_ref()), MessageType::Digest),
            None if message.len() > KMS_RAW_MESSAGE_MAX => {
                return Err(Error::InvalidClaims(format!(
                    "the {} signing input is {} bytes; kms signs at most {KMS_RAW_MESSAGE_MAX} bytes of a raw message",
                    self.alg,
                    message.len()
                )));
            }
            None => (Blob::new(message), MessageType::Raw),
        };
        let out = self
            .kms
            .sdk
            .sign()
            .key_id(arn)
            .message(message)
            .message_type(message_type)
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
            KeyFamily::Rsa | KeyFamily::Ed25519 | KeyFamily::MlDsa(_) => Ok(signature.as_ref().to_vec()),
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

    fn sign_message<'a>(&'a self, message: &'a [u8]) -> SignatureFuture<'a> {
        Box::pin(self.sign_input(message))
    }

    fn max_token_ttl(&self) -> Option<Duration> {
        self.max_token_ttl
    }
}
