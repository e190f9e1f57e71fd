//! A KMS key as kms-jwt sees it: [`KmsKey`] (what `DescribeKey` and `ListResourceTags` say),
//! and [`KeyInfo`], a signing key with its public half. Key specs and states are enums: the
//! values kms-jwt acts on are closed, and anything else is kept as KMS named it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use aws_sdk_kms::types::{KeyMetadata, MultiRegionKeyType};

use crate::jwk::PublicKey;
use crate::{Algorithm, Error, Jwk, Result};

/// Tag with the longest token lifetime the key may sign (a duration such as `1h`): the key
/// set's lifetime policy, which [`super::KmsSigner`] enforces and rotation's overlap is
/// derived from.
pub const TAG_MAX_TOKEN_TTL: &str = "kms-jwt:max-token-ttl";

/// A KMS key spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeySpec {
    /// `RSA_2048`: RS256 by default.
    Rsa2048,
    /// `RSA_3072`.
    Rsa3072,
    /// `RSA_4096`.
    Rsa4096,
    /// `ECC_NIST_P256`: ES256.
    EccNistP256,
    /// `ECC_NIST_P384`: ES384.
    EccNistP384,
    /// `ECC_NIST_P521`: ES512.
    EccNistP521,
    /// `ECC_SECG_P256K1`: ES256K.
    EccSecgP256k1,
    /// `ECC_NIST_EDWARDS25519`: `EdDSA` by default, or RFC 9864's `Ed25519`.
    EccNistEdwards25519,
    /// `ML_DSA_44`: ML-DSA-44.
    MlDsa44,
    /// `ML_DSA_65`: ML-DSA-65.
    MlDsa65,
    /// `ML_DSA_87`: ML-DSA-87.
    MlDsa87,
    /// Any other spec (symmetric, HMAC, SM2, ...), as KMS names it: no JWT is signed with it.
    Other(String),
}

const SPECS: [(KeySpec, &str); 11] = [
    (KeySpec::Rsa2048, "RSA_2048"),
    (KeySpec::Rsa3072, "RSA_3072"),
    (KeySpec::Rsa4096, "RSA_4096"),
    (KeySpec::EccNistP256, "ECC_NIST_P256"),
    (KeySpec::EccNistP384, "ECC_NIST_P384"),
    (KeySpec::EccNistP521, "ECC_NIST_P521"),
    (KeySpec::EccSecgP256k1, "ECC_SECG_P256K1"),
    (KeySpec::EccNistEdwards25519, "ECC_NIST_EDWARDS25519"),
    (KeySpec::MlDsa44, "ML_DSA_44"),
    (KeySpec::MlDsa65, "ML_DSA_65"),
    (KeySpec::MlDsa87, "ML_DSA_87"),
];

impl KeySpec {
    /// The spec a key set is provisioned with unless asked otherwise.
    pub const DEFAULT: KeySpec = KeySpec::Rsa2048;

    /// The specs that sign JWTs.
    pub fn signing() -> impl Iterator<Item = KeySpec> {
        SPECS.into_iter().map(|(spec, _)| spec)
    }

    /// The name KMS uses, such as `RSA_2048`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            KeySpec::Other(name) => name,
            known => SPECS.iter().find(|(spec, _)| spec == known).map_or("", |(_, name)| name),
        }
    }

    /// The algorithm a key of this spec signs with unless told otherwise (RS256 for RSA, the
    /// curve's ES* for ECC, `EdDSA` for Ed25519, the parameter set's ML-DSA); `None` for a
    /// spec that signs no JWT.
    #[must_use]
    pub fn default_algorithm(&self) -> Option<Algorithm> {
        Algorithm::default_for_key_spec(self.as_str())
    }
}

impl KeySpec {
    /// The spec KMS calls `name`; [`KeySpec::Other`] for one kms-jwt does not sign with.
    #[must_use]
    pub fn from_name(name: &str) -> KeySpec {
        SPECS
            .iter()
            .find(|(_, known)| *known == name)
            .map_or_else(|| KeySpec::Other(name.to_owned()), |(spec, _)| spec.clone())
    }
}

impl FromStr for KeySpec {
    type Err = std::convert::Infallible;

    fn from_str(name: &str) -> std::result::Result<KeySpec, Self::Err> {
        Ok(KeySpec::from_name(name))
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A KMS key state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyState {
    /// Signs.
    Enabled,
    /// Does not sign until enabled again.
    Disabled,
    /// Scheduled for deletion (or a multi-Region primary waiting for its replicas' deletion).
    PendingDeletion,
    /// A new key or replica not ready yet.
    Creating,
    /// Any other state (`PendingImport`, `Unavailable`, `Updating`, ...), as KMS names it.
    Other(String),
}

impl KeyState {
    /// The name KMS uses, such as `Enabled`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
            KeyState::Creating => "Creating",
            KeyState::Other(name) => name,
        }
    }

    fn from_sdk(state: Option<&aws_sdk_kms::types::KeyState>) -> KeyState {
        use aws_sdk_kms::types::KeyState as Sdk;
        match state {
            Some(Sdk::Enabled) => KeyState::Enabled,
            Some(Sdk::Disabled) => KeyState::Disabled,
            Some(Sdk::PendingDeletion | Sdk::PendingReplicaDeletion) => KeyState::PendingDeletion,
            Some(Sdk::Creating) => KeyState::Creating,
            Some(other) => KeyState::Other(other.as_str().to_owned()),
            None => KeyState::Other("unknown".into()),
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a key stands among multi-Region keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MultiRegion {
    /// A single-Region key.
    #[default]
    No,
    /// A multi-Region primary key, with the regions of its replicas.
    Primary {
        /// The replicas' regions.
        replica_regions: Vec<String>,
    },
    /// A multi-Region replica key, with its primary's region.
    Replica {
        /// The primary's region.
        primary_region: String,
    },
}

/// One KMS key: what `DescribeKey` says, and its tags when they were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKey {
    /// Key id (a UUID, or `mrk-...` for a multi-Region key).
    pub key_id: String,
    /// Key ARN.
    pub arn: String,
    /// Key spec.
    pub spec: KeySpec,
    /// Key state.
    pub state: KeyState,
    /// When KMS created it.
    pub created: Option<SystemTime>,
    /// Whether it is a multi-Region key, and which kind.
    pub multi_region: MultiRegion,
    /// Its tags, when they were read (empty otherwise).
    pub tags: BTreeMap<String, String>,
}

impl KmsKey {
    /// The key `DescribeKey` described.
    pub(crate) fn from_metadata(meta: &KeyMetadata) -> KmsKey {
        let multi_region = match meta.multi_region_configuration() {
            Some(config) if config.multi_region_key_type() == Some(&MultiRegionKeyType::Replica) => {
                MultiRegion::Replica {
                    primary_region: config.primary_key().and_then(|p| p.region()).unwrap_or_default().to_owned(),
                }
            }
            Some(config) => MultiRegion::Primary {
                replica_regions: config.replica_keys().iter().filter_map(|r| r.region().map(str::to_owned)).collect(),
            },
            None => MultiRegion::No,
        };
        KmsKey {
            key_id: meta.key_id().to_owned(),
            arn: meta.arn().unwrap_or_default().to_owned(),
            spec: KeySpec::from_name(meta.key_spec().map_or("unknown", |s| s.as_str())),
            state: KeyState::from_sdk(meta.key_state()),
            created: meta.creation_date().and_then(|d| SystemTime::try_from(*d).ok()),
            multi_region,
            tags: BTreeMap::new(),
        }
    }

    /// Whether it signs now.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.state == KeyState::Enabled
    }

    /// Whether it is a multi-Region key (primary or replica).
    #[must_use]
    pub fn is_multi_region(&self) -> bool {
        self.multi_region != MultiRegion::No
    }

    /// A multi-Region primary's replica regions; empty for any other key.
    #[must_use]
    pub fn replica_regions(&self) -> &[String] {
        match &self.multi_region {
            MultiRegion::Primary { replica_regions } => replica_regions,
            _ => &[],
        }
    }

    /// A replica's primary region.
    #[must_use]
    pub fn primary_region(&self) -> Option<&str> {
        match &self.multi_region {
            MultiRegion::Replica { primary_region } => Some(primary_region),
            _ => None,
        }
    }

    /// The longest lifetime of a token this key may sign ([`TAG_MAX_TOKEN_TTL`]), if its tags
    /// (as read) set one. A tag that is not a duration is an error, wherever it is read: a
    /// policy that cannot be read must not be taken for no policy.
    pub fn max_token_ttl(&self) -> Result<Option<Duration>> {
        let Some(value) = self.tags.get(TAG_MAX_TOKEN_TTL) else { return Ok(None) };
        humantime::parse_duration(value).map(Some).map_err(|_| Error::BadTag {
            key: self.key_id.clone(),
            tag: TAG_MAX_TOKEN_TTL,
            value: value.clone(),
            expected: "a duration such as 1h",
        })
    }
}

/// A signing key: the key and its public half, as `DescribeKey` and `GetPublicKey` report
/// them.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// The key.
    pub key: KmsKey,
    /// The public key.
    pub public_key: PublicKey,
    /// The signing algorithms KMS offers for it, as KMS names them.
    pub signing_algorithms: Vec<String>,
}

impl KeyInfo {
    /// Picks `requested` if the key can sign with it, else the key spec's default.
    pub fn algorithm(&self, requested: Option<Algorithm>) -> Result<Algorithm> {
        let spec = self.key.spec.as_str();
        let alg = match requested {
            Some(alg) => alg,
            None => self.key.spec.default_algorithm().ok_or_else(|| Error::WrongKeyUsage {
                key: self.key.arn.clone(),
                usage: "SIGN_VERIFY".into(),
                spec: spec.to_owned(),
            })?,
        };
        if !alg.fits_key_spec(spec) || !self.signing_algorithms.iter().any(|a| a == alg.kms_name()) {
            return Err(Error::AlgorithmMismatch { alg, key: format!("kms key {} ({spec})", self.key.key_id) });
        }
        Ok(alg)
    }

    /// The key as verifiers get it: its JWK, pinned to `alg`, with its RFC 7638 thumbprint as
    /// `kid` (the `kid` a [`crate::JwtSigner`] puts in its tokens by default).
    #[must_use]
    pub fn jwk(&self, alg: Algorithm) -> Jwk {
        Jwk { kid: Some(self.public_key.thumbprint()), key: self.public_key.clone(), alg: Some(alg) }
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

    #[test]
    fn key_specs_round_trip_and_name_their_algorithm() {
        for spec in KeySpec::signing() {
            assert_eq!(KeySpec::from_name(spec.as_str()), spec);
            assert!(spec.default_algorithm().is_some(), "{spec}");
        }
        assert_eq!(KeySpec::from_name("SYMMETRIC_DEFAULT"), KeySpec::Other("SYMMETRIC_DEFAULT".into()));
        assert_eq!(KeySpec::Other("HMAC_256".into()).default_algorithm(), None);
        assert_eq!(KeySpec::DEFAULT.default_algorithm(), Some(Algorithm::RS256));
    }

    fn key_with(tags: &[(&str, &str)]) -> KmsKey {
        KmsKey {
            key_id: "k".into(),
            arn: "arn:aws:kms:us-east-1:111122223333:key/k".into(),
            spec: KeySpec::EccNistP256,
            state: KeyState::Enabled,
            created: None,
            multi_region: MultiRegion::No,
            tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    #[test]
    fn a_malformed_lifetime_tag_is_an_error_not_no_policy() {
        assert_eq!(key_with(&[(TAG_MAX_TOKEN_TTL, "1h")]).max_token_ttl().unwrap(), Some(Duration::from_secs(3600)));
        assert_eq!(key_with(&[]).max_token_ttl().unwrap(), None);
        let err = key_with(&[(TAG_MAX_TOKEN_TTL, "an hour")]).max_token_ttl().unwrap_err();
        assert_eq!(
            err.to_string(),
            "kms key k has tag kms-jwt:max-token-ttl=\"an hour\", which is not a duration such as 1h"
        );
    }
}
