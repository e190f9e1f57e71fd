//! Key sets: a signing key published through three aliases, provisioned and rotated from
//! KMS state alone.
//!
//! | alias                 | role                                   | published |
//! |-----------------------|----------------------------------------|-----------|
//! | `alias/NAME`          | current: new tokens are signed with it | yes       |
//! | `alias/NAME/previous` | current before the last rotation       | while enabled |
//! | `alias/NAME/next`     | staged for the next rotation           | yes       |
//!
//! Finding a set costs three `DescribeKey` calls, never a scan. The work is in phases, one
//! module each: the set's state ([`KeySetState`], `state`), a pure planner that turns a state, a
//! policy and the time into ordered steps (`plan`), an executor that makes the KMS calls
//! (`exec`) while holding the set's lock (`lock`), replication of multi-Region sets
//! (`replicate`) and status. Every step of a rotation is ordered so that a run stopped after
//! any KMS call can be re-run and converges, and the current alias is only ever moved, never
//! deleted.

mod exec;
mod lock;
mod plan;
mod replicate;
mod state;

use std::time::{Duration, SystemTime};

pub use plan::{NewKey, RotationPlan};
pub use state::{
    KeySetState, KeySetStatus, ProvisionRequest, Provisioned, RotationOutcome, RotationPolicy, default_min_overlap,
};

#[cfg(test)]
use crate::kms::KeySpec;
use crate::kms::{KeyInfo, KmsClient};
use crate::{Algorithm, Error, Jwks, Result};

/// Tag naming the key set a key belongs to.
pub const TAG_KEY_SET: &str = "kms-jwt:key-set";
/// Tag with the key's creation time (RFC 3339).
pub const TAG_CREATED_AT: &str = "kms-jwt:created-at";
/// Tag with the time the key stopped being current (RFC 3339).
pub const TAG_DEMOTED_AT: &str = "kms-jwt:demoted-at";
/// Tag with the key's RFC 7638 thumbprint: its `kid`, readable after the key is retired.
pub const TAG_KID: &str = "kms-jwt:kid";
pub use crate::kms::TAG_MAX_TOKEN_TTL;
/// The longest token lifetime a set gets unless asked otherwise.
pub const DEFAULT_MAX_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// How long verifiers may cache a JWKS (`kms-jwt publish` and `serve` recommend this max-age):
/// part of the overlap, since a verifier may not see a new key for that long.
pub const JWKS_CACHE_AGE: Duration = Duration::from_secs(300);
/// Clock skew allowed between signers and verifiers (the verifier's default leeway).
pub const CLOCK_SKEW: Duration = Duration::from_secs(crate::verify::DEFAULT_LEEWAY_SECS);
/// The overlap of a set without a lifetime policy (made before there was one): one day.
pub const LEGACY_MIN_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// A lock older than this was left by an operation that died: the next one breaks it. No
/// operation takes longer than a few dozen KMS calls with their timeouts (20 s each at most).
pub const LOCK_TTL: Duration = Duration::from_secs(15 * 60);
/// How long provision and rotation wait for a new replica to become enabled.
pub const REPLICA_WAIT: Duration = Duration::from_secs(120);
/// The key usage of every key a set holds.
pub const KEY_USAGE: &str = "SIGN_VERIFY";
/// The tags [`KeySets`] puts on a key as it creates it (`kms-jwt keyset provision --tag` may add
/// more). A rotator's IAM policy can require them (`aws:RequestTag`, `aws:TagKeys`).
pub const TAGS_AT_CREATION: [&str; 3] = [TAG_KEY_SET, TAG_CREATED_AT, TAG_MAX_TOKEN_TTL];
/// The tags [`KeySets`] adds to a key of the set later: its `kid` once the public key is known,
/// and the time it stopped being current. The only tags a rotator changes on existing keys.
pub const TAGS_ADDED_LATER: [&str; 2] = [TAG_KID, TAG_DEMOTED_AT];

/// Every KMS action [`KeySets`] performs on a key that already exists, in a single-Region set
/// as in a multi-Region one (creating keys is the account-level `kms:CreateKey`; a multi-Region
/// set also replicates them: [`ROTATE_MULTI_REGION_ACTIONS`]). The Terraform module's rotator
/// policy grants exactly these, on the keys tagged with the set (and the alias actions on the
/// set's aliases).
pub const ROTATE_KEY_ACTIONS: [&str; 8] = [
    "kms:DescribeKey",
    "kms:GetPublicKey",
    "kms:ListResourceTags",
    "kms:TagResource",
    "kms:CreateAlias",
    "kms:UpdateAlias",
    "kms:DeleteAlias",
    "kms:ScheduleKeyDeletion",
];

/// The account-level KMS actions [`KeySets`] performs (IAM policy only: they name no key):
/// creating a set's keys, and reading the lock alias's creation date. Creating a key with tags
/// also needs `kms:TagResource` on the account's keys, limited by `aws:RequestTag`.
pub const ROTATE_ACCOUNT_ACTIONS: [&str; 2] = ["kms:CreateKey", "kms:ListAliases"];

/// The actions only a multi-Region set's rotator needs, besides the two lists above:
/// `kms:ReplicateKey` on the set's primary keys (the replica's `kms:CreateKey` is the account
/// action), and the IAM action `iam:CreateServiceLinkedRole`, with which KMS creates (or
/// re-creates, harmlessly) its service-linked role for multi-Region keys,
/// `AWSServiceRoleForKeyManagementServiceMultiRegionKeys`, whenever a multi-Region primary key
/// is created. The Terraform module grants these only when the set has replica regions.
pub const ROTATE_MULTI_REGION_ACTIONS: [&str; 2] = ["kms:ReplicateKey", "iam:CreateServiceLinkedRole"];

/// The three aliases of a key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySetName(String);

impl KeySetName {
    /// Accepts `NAME` or `alias/NAME`.
    pub fn parse(name: &str) -> Result<KeySetName> {
        let name = name.strip_prefix("alias/").unwrap_or(name);
        let valid = !name.is_empty()
            && name.len() <= 240
            && !name.starts_with("aws/")
            && !name.ends_with("/previous")
            && !name.ends_with("/next")
            && !name.ends_with("/lock")
            && !name.contains("/lock-")
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b));
        if !valid {
            return Err(Error::Refused(format!(
                "{name:?} is not a key set name (letters, digits, / _ -, not aws/..., not ending in /previous, /next or /lock)"
            )));
        }
        Ok(KeySetName(name.to_owned()))
    }

    /// `NAME`.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.0
    }

    /// `alias/NAME`: the current key.
    #[must_use]
    pub fn current(&self) -> String {
        format!("alias/{}", self.0)
    }

    /// `alias/NAME/previous`.
    #[must_use]
    pub fn previous(&self) -> String {
        format!("alias/{}/previous", self.0)
    }

    /// `alias/NAME/next`.
    #[must_use]
    pub fn next(&self) -> String {
        format!("alias/{}/next", self.0)
    }

    /// `alias/NAME/lock`: exists while an operation changes the set.
    #[must_use]
    pub fn lock(&self) -> String {
        format!("alias/{}/lock", self.0)
    }
}

/// Operations on key sets through one KMS client.
#[derive(Debug, Clone)]
pub struct KeySets {
    kms: KmsClient,
    lock_ttl: Duration,
}

impl KeySets {
    /// Key-set operations through this client.
    #[must_use]
    pub fn new(kms: KmsClient) -> KeySets {
        KeySets { kms, lock_ttl: LOCK_TTL }
    }

    /// Treats a lock older than `ttl` as left by a dead operation (default [`LOCK_TTL`]).
    /// Shorter only where no operation can still be running, such as a test that killed one.
    #[must_use]
    pub fn with_lock_ttl(mut self, ttl: Duration) -> KeySets {
        self.lock_ttl = ttl;
        self
    }

    /// The set's keys: three `DescribeKey` calls and one `ListResourceTags` per key found.
    pub async fn resolve(&self, name: &KeySetName) -> Result<KeySetState> {
        self.resolve_with(name, true).await
    }

    /// Every enabled key of the set (next, current, previous) with its public key and the
    /// algorithm it signs with, for publication in a JWKS.
    pub async fn published(&self, name: &KeySetName, alg: Option<Algorithm>) -> Result<Vec<(KeyInfo, Algorithm)>> {
        // DescribeKey and GetPublicKey per alias, the three at once: the tags `resolve`
        // reads are not needed to publish.
        let aliases = [name.next(), name.current(), name.previous()];
        let (next, current, previous) = futures_util::future::join3(
            Box::pin(self.kms.describe_signing_key(&aliases[0])),
            Box::pin(self.kms.describe_signing_key(&aliases[1])),
            Box::pin(self.kms.describe_signing_key(&aliases[2])),
        )
        .await;
        let mut out: Vec<(KeyInfo, Algorithm)> = Vec::new();
        for (alias, found) in aliases.iter().zip([next, current, previous]) {
            match found {
                Ok(info) if !out.iter().any(|(k, _)| k.key.key_id == info.key.key_id) => {
                    let alg = info.algorithm(alg)?;
                    out.push((info, alg));
                }
                // A key already listed (two aliases on one key) is published once; only enabled
                // keys are published at all; only the current alias must exist.
                Ok(_) | Err(Error::KeyDisabled(_) | Error::KeyPendingDeletion(_) | Error::KeyUnavailable { .. }) => {}
                Err(Error::KeyNotFound(_)) if *alias != name.current() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The JWKS of a set: every published key with its thumbprint `kid` and `alg`.
    pub async fn jwks(&self, name: &KeySetName, alg: Option<Algorithm>) -> Result<Jwks> {
        let keys = self.published(name, alg).await?;
        Ok(Jwks { keys: keys.iter().map(|(info, alg)| info.jwk(*alg)).collect() })
    }

    /// Creates the set's key and current alias, or reports the set if it already exists.
    /// Runs that race are safe: each reports the one set that results.
    pub async fn provision(&self, req: &ProvisionRequest) -> Result<Provisioned> {
        plan::check_provision(req, self.kms.region())?;
        let state = self.resolve(&req.name).await?;
        let (key, created) = self.provision_key(req, plan::plan_provision(&state)).await?;
        let multi = req.regions.len() > 1;
        if multi {
            if !key.is_multi_region() {
                return Err(Error::Refused(format!(
                    "key set {} exists with a single-region key, which cannot have replicas",
                    req.name.name()
                )));
            }
            for region in &req.regions[1..] {
                self.ensure_replica(&key, region).await?;
                self.in_region(region).claim_alias(&req.name.current(), &key.key_id).await?;
            }
        }
        let info = self.kms.describe_signing_key(&key.arn).await?;
        let alg = info.algorithm(None)?;
        let regions =
            if multi { req.regions.clone() } else { self.kms.region().map(str::to_owned).into_iter().collect() };
        Ok(Provisioned { alias: req.name.current(), kid: info.public_key.thumbprint(), alg, info, created, regions })
    }

    /// Works out what a rotation would do now, without changing anything (`--dry-run`).
    pub async fn plan_rotation(&self, name: &KeySetName, policy: &RotationPolicy) -> Result<RotationPlan> {
        plan::check_window(policy.pending_window_days)?;
        let state = self.resolve(name).await?;
        plan::plan_rotation(&state, policy, SystemTime::now())
    }

    /// Rotates: stage (or promote) the new key, retire the key that drops out, demote the
    /// current key to `previous`, make the new key current, and clear `next`.
    ///
    /// Holds the set's lock (`alias/NAME/lock`) throughout: a racing rotation fails with
    /// [`Error::Busy`] and changes nothing. With `if_older_than`, a set whose current key is
    /// younger is left alone (`rotated: false`), also when a racing run has just rotated it.
    pub async fn rotate(&self, name: &KeySetName, policy: &RotationPolicy) -> Result<RotationOutcome> {
        plan::check_window(policy.pending_window_days)?;
        let current =
            self.kms.describe(&name.current(), false).await?.ok_or_else(|| Error::KeyNotFound(name.current()))?;
        if let Some(primary) = current.primary_region().filter(|p| Some(*p) != self.kms.region()) {
            // Asked in a replica region: a multi-Region set is rotated from its primary's.
            return Box::pin(self.in_region(primary).rotate(name, policy)).await;
        }
        if !plan::due(&current, policy.if_older_than, SystemTime::now()) {
            return Ok(RotationOutcome { state: self.resolve(name).await?, retired: Vec::new(), rotated: false });
        }
        let lock = self.lock(name, &current.key_id).await?;
        let result = self.rotate_locked(name, policy).await;
        let unlocked = self.unlock(name, lock).await;
        let outcome = result?;
        unlocked?;
        Ok(outcome)
    }

    async fn rotate_locked(&self, name: &KeySetName, policy: &RotationPolicy) -> Result<RotationOutcome> {
        // The state again, under the lock: a racing run may have rotated meanwhile.
        let state = self.resolve(name).await?;
        let plan = plan::plan_rotation(&state, policy, SystemTime::now())?;
        if plan.is_noop() {
            return Ok(RotationOutcome { state, retired: Vec::new(), rotated: false });
        }
        self.execute(name, &plan, policy).await?;
        let retired = plan.retire.iter().cloned().map(plan::retired).collect();
        Ok(RotationOutcome { state: self.resolve(name).await?, retired, rotated: true })
    }

    /// Everything an operator needs to know about a set: its aliases and keys with their
    /// states and times, its lifetime policy, the lock, and each replica region's aliases.
    pub async fn status(&self, name: &KeySetName) -> Result<KeySetStatus> {
        let state = self.resolve(name).await?;
        if let Some(primary) = state.current.as_ref().and_then(|c| c.primary_region()) {
            // A replica region's view: the set's state (tags, lock) is its primary's.
            if Some(primary) != self.kms.region() {
                return Box::pin(self.in_region(primary).status(name)).await;
            }
        }
        let Some(current) = &state.current else { return Err(Error::KeyNotFound(name.current())) };
        let lock = self.lock_taken_at(name).await?;
        let mut replicas = Vec::new();
        for region in current.replica_regions() {
            replicas.push(self.in_region(region).resolve_with(name, false).await?);
        }
        Ok(KeySetStatus { state, lock, replicas })
    }

    /// The three aliases' keys, with their tags or without.
    async fn resolve_with(&self, name: &KeySetName, with_tags: bool) -> Result<KeySetState> {
        // Boxed: each SDK call future is kilobytes, and three of them inline make every
        // caller's future huge.
        let (current, previous, next) = futures_util::future::try_join3(
            Box::pin(self.kms.describe(&name.current(), with_tags)),
            Box::pin(self.kms.describe(&name.previous(), with_tags)),
            Box::pin(self.kms.describe(&name.next(), with_tags)),
        )
        .await?;
        Ok(KeySetState { name: name.clone(), region: self.kms.region().map(str::to_owned), current, previous, next })
    }
}

/// The spec `provision` creates unless asked otherwise, as KMS names it ([`crate::kms::KeySpec::DEFAULT`]).
pub const DEFAULT_KEY_SPEC: &str = "RSA_2048";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_spec_has_one_name() {
        assert_eq!(KeySpec::DEFAULT.as_str(), DEFAULT_KEY_SPEC);
    }

    #[test]
    fn set_names_are_checked() {
        assert_eq!(KeySetName::parse("alias/jwt-signer").unwrap().next(), "alias/jwt-signer/next");
        for bad in ["", "aws/thing", "x/previous", "x/next", "x/lock", "x/lock-1", "has space", "é"] {
            let err = KeySetName::parse(bad).unwrap_err();
            assert!(matches!(err, Error::Refused(ref m) if m.contains("is not a key set name")), "{bad}: {err}");
        }
    }
}
