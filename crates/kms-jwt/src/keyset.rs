//! Key sets: a signing key published through three aliases, provisioned and rotated from
//! KMS state alone.
//!
//! | alias                 | role                                   | published |
//! |-----------------------|----------------------------------------|-----------|
//! | `alias/NAME`          | current: new tokens are signed with it | yes       |
//! | `alias/NAME/previous` | current before the last rotation       | while enabled |
//! | `alias/NAME/next`     | staged for the next rotation           | yes       |
//!
//! Finding a set costs three `DescribeKey` calls, never a scan. Every step of a rotation is
//! ordered so that a run stopped after any KMS call can be re-run and converges, and the
//! current alias is only ever moved, never deleted.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_sdk_kms::Client;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType, MultiRegionKeyType, Tag};
use serde_json::{Value, json};

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
/// The key spec `provision` creates unless asked otherwise.
pub const DEFAULT_KEY_SPEC: &str = "RSA_2048";
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

/// One key of a set, as `DescribeKey` and `ListResourceTags` report it.
#[derive(Debug, Clone)]
pub struct SetKey {
    /// Key id.
    pub key_id: String,
    /// Key ARN.
    pub arn: String,
    /// Key spec.
    pub key_spec: String,
    /// Key state (`Enabled`, `PendingDeletion`, ...).
    pub state: String,
    /// When KMS created the key.
    pub created: Option<SystemTime>,
    /// The key's tags.
    pub tags: HashMap<String, String>,
    /// Whether it is a multi-Region key.
    pub multi_region: bool,
    /// For a multi-Region primary key, the regions of its replicas; empty otherwise.
    pub replica_regions: Vec<String>,
    /// For a multi-Region replica key, its primary's region.
    pub primary_region: Option<String>,
}

impl SetKey {
    fn enabled(&self) -> bool {
        self.state == KeyState::Enabled.as_str()
    }

    /// The `kid` recorded at creation, if the key was made by kms-jwt.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.tags.get(TAG_KID).map(String::as_str)
    }

    fn summary(&self) -> Value {
        json!({ "key_id": self.key_id, "kid": self.kid(), "state": self.state })
    }

    /// When the key stopped being current ([`TAG_DEMOTED_AT`]).
    #[must_use]
    pub fn demoted_at(&self) -> Option<SystemTime> {
        self.tags.get(TAG_DEMOTED_AT).and_then(|t| humantime::parse_rfc3339(t).ok())
    }

    /// The set's lifetime policy as this key records it ([`TAG_MAX_TOKEN_TTL`]).
    #[must_use]
    pub fn max_token_ttl(&self) -> Option<Duration> {
        self.tags.get(TAG_MAX_TOKEN_TTL).and_then(|t| humantime::parse_duration(t).ok())
    }

    fn status(&self, alias: &str) -> Value {
        json!({
            "alias": alias,
            "key_id": self.key_id,
            "kid": self.kid(),
            "state": self.state,
            "key_spec": self.key_spec,
            "created_at": self.created.map(rfc3339),
            "demoted_at": self.demoted_at().map(rfc3339),
        })
    }
}

/// The keys the three aliases point at now.
#[derive(Debug, Clone)]
pub struct KeySetState {
    /// The set's name.
    pub name: KeySetName,
    /// `alias/NAME`.
    pub current: Option<SetKey>,
    /// `alias/NAME/previous`.
    pub previous: Option<SetKey>,
    /// `alias/NAME/next`.
    pub next: Option<SetKey>,
}

/// Operations on key sets through one KMS client.
#[derive(Debug, Clone)]
pub struct KeySets {
    kms: KmsClient,
    lock_ttl: Duration,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

fn is_already_exists(e: &Error) -> bool {
    matches!(e, Error::Kms { code, .. } if code == "AlreadyExistsException")
}

/// The minimum overlap a set's policy implies: a token signed just before a rotation lives
/// up to the longest token lifetime, verifiers may hold the old JWKS for its cache age, and
/// clocks disagree by the skew. Sets without a policy keep the one-day overlap.
#[must_use]
pub fn default_min_overlap(max_token_ttl: Option<Duration>) -> Duration {
    max_token_ttl.map_or(LEGACY_MIN_OVERLAP, |ttl| ttl + JWKS_CACHE_AGE + CLOCK_SKEW)
}

fn tag(key: &str, value: impl Into<String>) -> Result<Tag> {
    Tag::builder().tag_key(key).tag_value(value).build().map_err(|e| Error::Config(e.to_string()))
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

    fn sdk(&self) -> &Client {
        self.kms.sdk()
    }

    /// `DescribeKey` on an alias; `None` if the alias does not exist.
    async fn describe(&self, alias: &str, with_tags: bool) -> Result<Option<SetKey>> {
        let out = match self.sdk().describe_key().key_id(alias).send().await {
            Ok(out) => out,
            Err(e) => {
                return match self.kms.error(e, alias) {
                    Error::KeyNotFound(_) => Ok(None),
                    other => Err(other),
                };
            }
        };
        let meta = out.key_metadata.ok_or_else(|| Error::InvalidResponse("DescribeKey without KeyMetadata".into()))?;
        let mut key = SetKey {
            key_id: meta.key_id().to_owned(),
            arn: meta.arn().unwrap_or_default().to_owned(),
            key_spec: meta.key_spec().map_or("unknown", |s| s.as_str()).to_owned(),
            state: meta.key_state().map_or("unknown", KeyState::as_str).to_owned(),
            created: meta.creation_date().and_then(|d| SystemTime::try_from(*d).ok()),
            tags: HashMap::new(),
            multi_region: meta.multi_region() == Some(true),
            replica_regions: Vec::new(),
            primary_region: None,
        };
        if let Some(config) = meta.multi_region_configuration() {
            if config.multi_region_key_type() == Some(&MultiRegionKeyType::Replica) {
                key.primary_region = config.primary_key().and_then(|p| p.region()).map(str::to_owned);
            } else {
                key.replica_regions =
                    config.replica_keys().iter().filter_map(|r| r.region().map(str::to_owned)).collect();
            }
        }
        if with_tags {
            let tags = self
                .sdk()
                .list_resource_tags()
                .key_id(&key.key_id)
                .send()
                .await
                .map_err(|e| self.kms.error(e, alias))?;
            key.tags = tags.tags().iter().map(|t| (t.tag_key().to_owned(), t.tag_value().to_owned())).collect();
        }
        Ok(Some(key))
    }

    /// The set's keys: three `DescribeKey` calls and one `ListResourceTags` per key found.
    pub async fn resolve(&self, name: &KeySetName) -> Result<KeySetState> {
        // Boxed: each SDK call future is kilobytes, and three of them inline make every
        // caller's future huge.
        let (current, previous, next) = futures_util::future::try_join3(
            Box::pin(self.describe(&name.current(), true)),
            Box::pin(self.describe(&name.previous(), true)),
            Box::pin(self.describe(&name.next(), true)),
        )
        .await?;
        Ok(KeySetState { name: name.clone(), current, previous, next })
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
                Ok(info) if !out.iter().any(|(k, _)| k.key_id == info.key_id) => {
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

    /// Creates a key for the set, tagged with the set and its creation time, and in the very
    /// next call creates `alias` for it. It has KMS's default key policy, which lets the
    /// account's IAM policies decide: the Terraform module's grants, conditioned on the set's
    /// tag, reach it without any change. Between those two calls is the one moment a stopped
    /// run leaves a key that no alias names: `CreateKey` has no idempotency token, and finding
    /// such a key again would take an account scan, which this module never does. A key whose
    /// alias cannot be created is retired at once, with `retire_window` days of grace.
    async fn create_key(&self, name: &KeySetName, new: &NewKey<'_>, alias: &str, retire_window: i32) -> Result<SetKey> {
        let NewKey { spec, description, extra, multi_region } = *new;
        let mut tags = vec![tag(TAG_KEY_SET, name.name())?, tag(TAG_CREATED_AT, now_rfc3339())?];
        for (k, v) in extra {
            tags.push(tag(k, v.clone())?);
        }
        let created = self
            .sdk()
            .create_key()
            .multi_region(multi_region)
            .key_usage(KeyUsageType::SignVerify)
            .key_spec(KeySpec::from(spec))
            .description(description)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| self.kms.error(e, name.name()))?;
        let meta =
            created.key_metadata.ok_or_else(|| Error::InvalidResponse("CreateKey without KeyMetadata".into()))?;
        if let Err(e) = self.alias_new_key(alias, meta.key_id()).await {
            // The key was never published and never signed: retire it at once rather than
            // leave behind a key no alias names.
            self.retire_key(meta.key_id(), retire_window).await?;
            if !is_already_exists(&e) {
                return Err(e);
            }
            // Another operation named its own key at the same moment.
            return Err(Error::Busy {
                set: name.name().to_owned(),
                detail: format!("{alias} was created by another operation at the same moment"),
            });
        }
        let key = SetKey {
            key_id: meta.key_id().to_owned(),
            arn: meta.arn().unwrap_or_default().to_owned(),
            key_spec: spec.to_owned(),
            state: KeyState::Enabled.as_str().to_owned(),
            created: Some(SystemTime::now()),
            tags: HashMap::from([(TAG_KEY_SET.to_owned(), name.name().to_owned())]),
            multi_region,
            replica_regions: Vec::new(),
            primary_region: None,
        };
        self.ensure_kid(key).await
    }

    /// Creates `alias` for a key made a moment ago. KMS is eventually consistent: a new key may
    /// not be visible to `CreateAlias` yet (AWS says up to five minutes, seconds in practice),
    /// so `NotFound` is retried with a bounded backoff; any other error is returned at once.
    async fn alias_new_key(&self, alias: &str, key_id: &str) -> Result<()> {
        let mut delay = NEW_KEY_RETRY_FIRST;
        loop {
            match self.point(alias, key_id, false).await {
                Err(Error::KeyNotFound(_)) if delay <= NEW_KEY_RETRY_LAST => {
                    tracing::debug!(alias, key_id, ?delay, "the new key is not visible yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
    }

    /// Tags a key with its `kid` if it has none yet (also after a run stopped before the tag).
    async fn ensure_kid(&self, mut key: SetKey) -> Result<SetKey> {
        if key.kid().is_none() {
            let info = self.kms.describe_signing_key(&key.arn).await?;
            let kid = info.public_key.thumbprint();
            self.sdk()
                .tag_resource()
                .key_id(&key.key_id)
                .tags(tag(TAG_KID, kid.clone())?)
                .send()
                .await
                .map_err(|e| self.kms.error(e, &key.key_id))?;
            key.tags.insert(TAG_KID.to_owned(), kid);
        }
        Ok(key)
    }

    /// Points `alias` at `key_id`, creating the alias if needed.
    async fn point(&self, alias: &str, key_id: &str, exists: bool) -> Result<()> {
        if exists {
            self.sdk()
                .update_alias()
                .alias_name(alias)
                .target_key_id(key_id)
                .send()
                .await
                .map(drop)
                .map_err(|e| self.kms.error(e, alias))
        } else {
            self.sdk()
                .create_alias()
                .alias_name(alias)
                .target_key_id(key_id)
                .send()
                .await
                .map(drop)
                .map_err(|e| self.kms.error(e, alias))
        }
    }

    /// The same operations in another region: a multi-Region set's replica regions.
    fn in_region(&self, region: &str) -> KeySets {
        KeySets { kms: self.kms.in_region(region), lock_ttl: self.lock_ttl }
    }

    /// Makes sure the multi-Region primary `key` has an enabled replica in `region`, with
    /// the primary's tags. A racing run's `ReplicateKey` makes this one's answer
    /// `AlreadyExists`, which is success.
    async fn ensure_replica(&self, key: &SetKey, region: &str) -> Result<()> {
        let there = self.in_region(region);
        let existing = there.describe(&key.key_id, false).await?;
        if existing.as_ref().is_some_and(SetKey::enabled) {
            return Ok(());
        }
        if existing.is_none() {
            // The tags a key is created with; the kid and demotion tags live on the primary.
            let tags = key
                .tags
                .iter()
                .filter(|(k, _)| !TAGS_ADDED_LATER.contains(&k.as_str()))
                .map(|(k, v)| tag(k, v.clone()))
                .collect::<Result<Vec<_>>>()?;
            if let Err(e) =
                self.sdk().replicate_key().key_id(&key.arn).replica_region(region).set_tags(Some(tags)).send().await
            {
                let e = self.kms.error(e, &key.key_id);
                if !is_already_exists(&e) {
                    return Err(e);
                }
            }
        }
        // AWS creates a replica asynchronously: it signs once it is Enabled.
        for _ in 0..REPLICA_WAIT.as_secs() {
            if there.describe(&key.key_id, false).await?.is_some_and(|k| k.enabled()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(Error::Refused(format!("the replica of {} in {region} is not enabled after {REPLICA_WAIT:?}", key.key_id)))
    }

    /// Creates `alias` for `key_id`; an alias that already names that key is fine, one that
    /// names another key is refused (provision never moves an alias).
    async fn claim_alias(&self, alias: &str, key_id: &str) -> Result<()> {
        match self.point(alias, key_id, false).await {
            Ok(()) => Ok(()),
            Err(e) if is_already_exists(&e) => match self.describe(alias, false).await? {
                Some(k) if k.key_id == key_id => Ok(()),
                other => Err(Error::Refused(format!(
                    "{alias} in {} names key {}, not {key_id}",
                    self.kms.region().unwrap_or("the region"),
                    other.map_or_else(|| "(none)".to_owned(), |k| k.key_id)
                ))),
            },
            Err(e) => Err(e),
        }
    }

    /// Points `alias` at `key_id`, creating or moving it as needed.
    async fn set_alias(&self, alias: &str, key_id: &str) -> Result<()> {
        match self.describe(alias, false).await? {
            Some(k) if k.key_id == key_id => Ok(()),
            Some(_) => self.point(alias, key_id, true).await,
            None => match self.point(alias, key_id, false).await {
                Err(e) if is_already_exists(&e) => self.point(alias, key_id, true).await,
                other => other,
            },
        }
    }

    /// Schedules `key_id` for deletion; a key already pending deletion (or gone) is fine.
    async fn retire_key(&self, key_id: &str, days: i32) -> Result<()> {
        match self.sdk().schedule_key_deletion().key_id(key_id).pending_window_in_days(days).send().await {
            Ok(_) => Ok(()),
            Err(e) => match self.kms.error(e, key_id) {
                Error::KeyPendingDeletion(_) | Error::KeyNotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Creates the set's key and current alias, or reports the set if it already exists.
    pub async fn provision(&self, req: &ProvisionRequest) -> Result<Provisioned> {
        check_window(req.pending_window_days)?;
        if Algorithm::default_for_key_spec(&req.key_spec).is_none() {
            return Err(Error::Refused(format!("key spec {} cannot sign JWTs", req.key_spec)));
        }
        let name = &req.name;
        let multi = req.regions.len() > 1;
        if let Some((_, twice)) = req.regions.iter().enumerate().find(|(i, r)| req.regions[..*i].contains(r)) {
            return Err(Error::Config(format!("region {twice} is listed twice")));
        }
        if let Some(primary) = req.regions.first()
            && self.kms.region() != Some(primary.as_str())
        {
            return Err(Error::Config(format!(
                "a set's primary region ({primary}) must be the client's region ({})",
                self.kms.region().unwrap_or("none")
            )));
        }
        let state = self.resolve(name).await?;
        let (key, created) = match (state.current, state.next) {
            (Some(current), _) => (current, false),
            // An interrupted provision that staged its key: promote it rather than make another.
            (None, Some(next)) => match self.point(&name.current(), &next.key_id, false).await {
                Ok(()) => (self.ensure_kid(next).await?, true),
                // A racing run promoted it first.
                Err(e) if is_already_exists(&e) => (next, false),
                Err(e) => return Err(e),
            },
            (None, None) => {
                let mut tags = req.tags.clone();
                tags.push((TAG_MAX_TOKEN_TTL.to_owned(), humantime::format_duration(req.max_token_ttl).to_string()));
                let new =
                    NewKey { spec: &req.key_spec, description: &req.description, extra: &tags, multi_region: multi };
                match self.create_key(name, &new, &name.current(), req.pending_window_days).await {
                    Ok(key) => (key, true),
                    // Provisioned by a racing run: report its set, as for any existing set.
                    Err(Error::Busy { .. }) => (
                        self.describe(&name.current(), true)
                            .await?
                            .ok_or_else(|| Error::KeyNotFound(name.current()))?,
                        false,
                    ),
                    Err(e) => return Err(e),
                }
            }
        };
        if multi {
            if !key.multi_region {
                return Err(Error::Refused(format!(
                    "key set {} exists with a single-region key, which cannot have replicas",
                    name.name()
                )));
            }
            for region in &req.regions[1..] {
                self.ensure_replica(&key, region).await?;
                self.in_region(region).claim_alias(&name.current(), &key.key_id).await?;
            }
        }
        let info = self.kms.describe_signing_key(&key.arn).await?;
        let alg = info.algorithm(None)?;
        let regions =
            if multi { req.regions.clone() } else { self.kms.region().map(str::to_owned).into_iter().collect() };
        Ok(Provisioned { alias: name.current(), kid: info.public_key.thumbprint(), alg, info, created, regions })
    }

    /// Works out what a rotation would do, without changing anything.
    pub async fn plan_rotation(&self, name: &KeySetName, policy: &RotationPolicy) -> Result<RotationPlan> {
        check_window(policy.pending_window_days)?;
        let state = self.resolve(name).await?;
        let current = state.current.clone().ok_or_else(|| Error::KeyNotFound(name.current()))?;
        // A rotation stopped after moving the current alias: only the cleanup is left.
        if state.next.as_ref().is_some_and(|n| n.key_id == current.key_id) {
            return Ok(RotationPlan { state, stage_new: false, retire: None, finish_only: true });
        }
        let retire = state
            .previous
            .clone()
            .filter(|p| p.key_id != current.key_id && p.state != KeyState::PendingDeletion.as_str());
        if let Some(old) = retire.as_ref().filter(|_| !policy.force) {
            let Some(demoted) = old.demoted_at() else {
                return Err(Error::Refused(format!(
                    "previous key {} has no {TAG_DEMOTED_AT} tag, so its overlap cannot be checked; \
                     only a forced rotation retires it",
                    old.key_id
                )));
            };
            let age = SystemTime::now().duration_since(demoted).unwrap_or(Duration::ZERO);
            let min_overlap = policy.min_overlap.unwrap_or_else(|| state.min_overlap());
            if age < min_overlap {
                return Err(Error::OverlapNotElapsed { key: old.key_id.clone(), demoted_ago: age, min_overlap });
            }
        }
        Ok(RotationPlan { stage_new: state.next.is_none(), state, retire, finish_only: false })
    }

    /// Rotates: stage (or promote) the new key, retire the key that drops out, demote the
    /// current key to `previous`, make the new key current, and clear `next`.
    ///
    /// Holds the set's lock (`alias/NAME/lock`) throughout: a racing rotation fails with
    /// [`Error::Busy`] and changes nothing. With `if_older_than`, a set whose current key is
    /// younger is left alone (`rotated: false`), also when a racing run has just rotated it.
    pub async fn rotate(&self, name: &KeySetName, policy: &RotationPolicy) -> Result<RotationOutcome> {
        check_window(policy.pending_window_days)?;
        let current = self.describe(&name.current(), false).await?.ok_or_else(|| Error::KeyNotFound(name.current()))?;
        if let Some(primary) = current.primary_region.as_deref().filter(|p| Some(*p) != self.kms.region()) {
            // Asked in a replica region: a multi-Region set is rotated from its primary's.
            return Box::pin(self.in_region(primary).rotate(name, policy)).await;
        }
        if !due(&current, policy.if_older_than) {
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
        let plan = self.plan_rotation(name, policy).await?;
        if let Some(current) = &plan.state.current
            && !plan.finish_only
            && !due(current, policy.if_older_than)
        {
            return Ok(RotationOutcome { state: plan.state, retired: Vec::new(), rotated: false });
        }
        let mut state = plan.state.clone();
        let current = state.current.clone().ok_or_else(|| Error::KeyNotFound(name.current()))?;
        // A multi-Region set: every step below is done in the replica regions too, and the
        // primary region (this client's) last.
        let replicas: Vec<KeySets> = current.replica_regions.iter().map(|r| self.in_region(r)).collect();
        if plan.finish_only {
            // Stopped after the primary's current alias moved: the replica regions follow it.
            for there in &replicas {
                if let Some(previous) = &state.previous {
                    there.set_alias(&name.previous(), &previous.key_id).await?;
                }
                there.set_alias(&name.current(), &current.key_id).await?;
            }
        } else {
            let policy_tags: Vec<(String, String)> = current
                .tags
                .get(TAG_MAX_TOKEN_TTL)
                .map(|v| (TAG_MAX_TOKEN_TTL.to_owned(), v.clone()))
                .into_iter()
                .collect();
            // 1. The new key is staged under `next` before anything else moves, so that a
            //    re-run promotes it instead of creating another; and in every replica region
            //    before `current` moves in any, so that a region that is down stops the
            //    rotation while every `current` alias still names the old key.
            let new = if let Some(next) = state.next.clone() {
                self.ensure_kid(next).await?
            } else {
                let new = NewKey {
                    spec: &current.key_spec,
                    description: &policy.description,
                    extra: &policy_tags,
                    multi_region: current.multi_region,
                };
                self.create_key(name, &new, &name.next(), policy.pending_window_days).await?
            };
            if !new.enabled() {
                return Err(Error::Refused(format!("staged key {} is {}, not Enabled", new.key_id, new.state)));
            }
            if !replicas.is_empty() {
                // The replicas copy the primary's tags as they are now.
                let tagged =
                    self.describe(&new.key_id, true).await?.ok_or_else(|| Error::KeyNotFound(new.key_id.clone()))?;
                for (region, there) in current.replica_regions.iter().zip(&replicas) {
                    self.ensure_replica(&tagged, region).await?;
                    there.set_alias(&name.next(), &new.key_id).await?;
                }
            }
            // 2. Retire the key that drops out while `previous` still names it (replicas
            //    first: a primary is deleted after its replicas): a re-run sees it pending
            //    deletion and moves on.
            if let Some(old) = &plan.retire {
                for there in &replicas {
                    there.retire_key(&old.key_id, policy.pending_window_days).await?;
                }
                self.retire_key(&old.key_id, policy.pending_window_days).await?;
            }
            // 3. Record when the current key stops being current: the overlap guard of the
            //    next rotation reads it.
            self.sdk()
                .tag_resource()
                .key_id(&current.key_id)
                .tags(tag(TAG_DEMOTED_AT, now_rfc3339())?)
                .send()
                .await
                .map_err(|e| self.kms.error(e, &current.key_id))?;
            // 4. previous <- current; 5. current <- new, in the replica regions, then here.
            //    The current alias is only ever moved.
            for there in &replicas {
                there.set_alias(&name.previous(), &current.key_id).await?;
                there.set_alias(&name.current(), &new.key_id).await?;
            }
            self.point(&name.previous(), &current.key_id, state.previous.is_some()).await?;
            self.point(&name.current(), &new.key_id, true).await?;
            state.next = Some(new);
        }
        // 6. `next` is empty again, everywhere.
        for there in &replicas {
            there.delete_alias(&name.next()).await?;
        }
        if state.next.is_some() {
            self.delete_alias(&name.next()).await?;
        }
        let after = self.resolve(name).await?;
        let retired = plan
            .retire
            .into_iter()
            .map(|key| SetKey { state: KeyState::PendingDeletion.as_str().to_owned(), ..key })
            .collect();
        Ok(RotationOutcome { state: after, retired, rotated: true })
    }

    /// Takes the set's lock: `CreateAlias alias/NAME/lock`, which fails when the alias exists,
    /// is the one compare-and-set KMS offers. A lock older than [`LOCK_TTL`] was left by an
    /// operation that died; it is broken by whoever first creates `alias/NAME/lock-<its time>`,
    /// so that two runs never both break it. See docs/RELIABILITY.md.
    async fn lock(&self, name: &KeySetName, target: &str) -> Result<Lock> {
        match self.point(&name.lock(), target, false).await {
            Ok(()) => return Ok(Lock { breaker: None }),
            Err(e) if !is_already_exists(&e) => return Err(e),
            Err(_) => {}
        }
        let busy = |detail: String| Error::Busy { set: name.name().to_owned(), detail };
        let Some(taken) = self.lock_taken_at(name).await? else {
            return Err(busy(format!("{} was held a moment ago", name.lock())));
        };
        let age = SystemTime::now().duration_since(taken).unwrap_or_default();
        let age_text = humantime::format_duration(Duration::from_secs(age.as_secs()));
        if age <= self.lock_ttl {
            return Err(busy(format!("{} was taken {age_text} ago", name.lock())));
        }
        let stamp = taken.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
        let breaker = format!("{}-{stamp}", name.lock());
        match self.point(&breaker, target, false).await {
            Ok(()) => {}
            Err(e) if is_already_exists(&e) => return Err(busy(format!("another run is breaking {}", name.lock()))),
            Err(e) => return Err(e),
        }
        tracing::warn!(lock = name.lock(), age = %age_text, "breaking a stale lock left by an operation that died");
        // Only the stale lock itself is deleted: one taken since then belongs to a live run.
        if self.lock_taken_at(name).await? == Some(taken) {
            self.delete_alias(&name.lock()).await?;
        }
        match self.point(&name.lock(), target, false).await {
            Ok(()) => Ok(Lock { breaker: Some(breaker) }),
            Err(e) => {
                self.delete_alias(&breaker).await?;
                if is_already_exists(&e) {
                    Err(busy(format!("{} was taken a moment ago", name.lock())))
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn unlock(&self, name: &KeySetName, lock: Lock) -> Result<()> {
        self.delete_alias(&name.lock()).await?;
        if let Some(breaker) = lock.breaker {
            self.delete_alias(&breaker).await?;
        }
        Ok(())
    }

    /// When the lock alias was created, if it exists: `DescribeKey` finds its key, and
    /// `ListAliases` for that key has the alias's creation date.
    async fn lock_taken_at(&self, name: &KeySetName) -> Result<Option<SystemTime>> {
        let Some(target) = self.describe(&name.lock(), false).await? else { return Ok(None) };
        let aliases = self
            .sdk()
            .list_aliases()
            .key_id(&target.key_id)
            .send()
            .await
            .map_err(|e| self.kms.error(e, &name.lock()))?;
        Ok(aliases
            .aliases()
            .iter()
            .find(|a| a.alias_name() == Some(name.lock().as_str()))
            .and_then(|a| a.creation_date())
            .and_then(|d| SystemTime::try_from(*d).ok()))
    }

    async fn delete_alias(&self, alias: &str) -> Result<()> {
        match self.sdk().delete_alias().alias_name(alias).send().await {
            Ok(_) => Ok(()),
            Err(e) => match self.kms.error(e, alias) {
                Error::KeyNotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Everything an operator needs to know about a set: its aliases and keys with their
    /// states and times, its lifetime policy, the lock, and when `previous` may be retired.
    pub async fn status(&self, name: &KeySetName) -> Result<KeySetStatus> {
        let state = self.resolve(name).await?;
        if let Some(primary) = state.current.as_ref().and_then(|c| c.primary_region.as_deref()) {
            // A replica region's view: the set's state (tags, lock) is its primary's.
            if Some(primary) != self.kms.region() {
                return Box::pin(self.in_region(primary).status(name)).await;
            }
        }
        if state.current.is_none() {
            return Err(Error::KeyNotFound(name.current()));
        }
        let lock = self.lock_taken_at(name).await?;
        let mut replicas = Vec::new();
        for region in state.current.iter().flat_map(|c| &c.replica_regions) {
            let there = self.in_region(region);
            let id = |key: Option<SetKey>| key.map(|k| k.key_id);
            replicas.push(RegionAliases {
                region: region.clone(),
                current: id(there.describe(&name.current(), false).await?),
                previous: id(there.describe(&name.previous(), false).await?),
                next: id(there.describe(&name.next(), false).await?),
            });
        }
        Ok(KeySetStatus { state, lock, region: self.kms.region().map(str::to_owned), replicas })
    }
}

/// Whether a set whose current key is `current` is due for rotation.
fn due(current: &SetKey, if_older_than: Option<Duration>) -> bool {
    let Some(min_age) = if_older_than else { return true };
    let age = current.created.and_then(|c| SystemTime::now().duration_since(c).ok()).unwrap_or(Duration::MAX);
    age >= min_age
}

/// What a new key of a set is made with.
#[derive(Clone, Copy)]
struct NewKey<'a> {
    spec: &'a str,
    description: &'a str,
    extra: &'a [(String, String)],
    multi_region: bool,
}

/// The first wait before `CreateAlias` is retried for a new key KMS does not show yet, doubled
/// each time up to the last: 0.25 + 0.5 + ... + 8 s, about 16 s in all.
const NEW_KEY_RETRY_FIRST: Duration = Duration::from_millis(250);
const NEW_KEY_RETRY_LAST: Duration = Duration::from_secs(8);

fn check_window(days: i32) -> Result<()> {
    if (7..=30).contains(&days) {
        Ok(())
    } else {
        Err(Error::Refused(format!("the pending window must be between 7 and 30 days, not {days}")))
    }
}

/// A held lock, and the alias that broke a stale one before it, if any.
#[derive(Debug)]
struct Lock {
    breaker: Option<String>,
}

impl KeySetState {
    /// The set's lifetime policy, as its current (else previous) key records it.
    #[must_use]
    pub fn max_token_ttl(&self) -> Option<Duration> {
        self.current.as_ref().and_then(SetKey::max_token_ttl).or_else(|| self.previous.as_ref()?.max_token_ttl())
    }

    /// The overlap a rotation waits for by default: [`default_min_overlap`] of the policy.
    #[must_use]
    pub fn min_overlap(&self) -> Duration {
        default_min_overlap(self.max_token_ttl())
    }
}

/// A set as `status` reports it.
#[derive(Debug, Clone)]
pub struct KeySetStatus {
    /// The three aliases' keys.
    pub state: KeySetState,
    /// When the lock was taken, if an operation holds it (or died holding it).
    pub lock: Option<SystemTime>,
    /// The region asked.
    pub region: Option<String>,
    /// A multi-Region set's replica regions, with the key id each alias names there.
    pub replicas: Vec<RegionAliases>,
}

/// The key ids a set's aliases name in one replica region.
#[derive(Debug, Clone)]
pub struct RegionAliases {
    /// The region.
    pub region: String,
    /// `alias/NAME` there.
    pub current: Option<String>,
    /// `alias/NAME/previous` there.
    pub previous: Option<String>,
    /// `alias/NAME/next` there.
    pub next: Option<String>,
}

impl KeySetStatus {
    /// When the next rotation may retire `previous` without force: its demotion plus the
    /// overlap. `None` when there is no previous key, or it has no demotion time.
    #[must_use]
    pub fn previous_retirable_at(&self) -> Option<SystemTime> {
        let previous = self.state.previous.as_ref()?;
        Some(previous.demoted_at()? + self.state.min_overlap())
    }

    /// The status as JSON: `set`, `region`, `policy`, `keys` (one per alias), `lock`,
    /// `previous_retirable_at`, `replica_regions` (each with its aliases' key ids).
    #[must_use]
    pub fn to_json(&self) -> Value {
        let s = &self.state;
        let keys: Vec<Value> =
            [(s.name.current(), &s.current), (s.name.previous(), &s.previous), (s.name.next(), &s.next)]
                .iter()
                .filter_map(|(alias, key)| key.as_ref().map(|k| k.status(alias)))
                .collect();
        json!({
            "set": s.name.name(),
            "region": self.region,
            "policy": {
                "max_token_ttl": s.max_token_ttl().map(|d| humantime::format_duration(d).to_string()),
                "min_overlap": humantime::format_duration(s.min_overlap()).to_string(),
            },
            "keys": keys,
            "lock": self.lock.map(|t| json!({ "alias": s.name.lock(), "taken_at": rfc3339(t) })),
            "previous_retirable_at": self.previous_retirable_at().map(rfc3339),
            "replica_regions": self.replicas.iter().map(|r| json!({
                "region": r.region, "current": r.current, "previous": r.previous, "next": r.next,
            })).collect::<Vec<_>>(),
        })
    }
}

/// What `provision` creates.
#[derive(Debug, Clone)]
pub struct ProvisionRequest {
    /// The set.
    pub name: KeySetName,
    /// Key spec, `RSA_2048` by default.
    pub key_spec: String,
    /// Key description.
    pub description: String,
    /// Extra tags.
    pub tags: Vec<(String, String)>,
    /// The longest lifetime of a token signed by the set's keys ([`TAG_MAX_TOKEN_TTL`]).
    pub max_token_ttl: Duration,
    /// For a multi-Region set, its regions, the primary first (the client's region); empty
    /// (or one region) for a single-region set.
    pub regions: Vec<String>,
    /// The deletion window, in days (7 to 30), of a key this run creates and must retire at
    /// once: one whose alias could not be created, or that lost a race to another run.
    pub pending_window_days: i32,
}

/// What `provision` found or made.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// `alias/NAME`.
    pub alias: String,
    /// The current key.
    pub info: KeyInfo,
    /// Its default algorithm.
    pub alg: Algorithm,
    /// Its thumbprint.
    pub kid: String,
    /// Whether this call created it (false: the set already existed).
    pub created: bool,
    /// The regions the set's aliases are in, the primary first.
    pub regions: Vec<String>,
}

impl Provisioned {
    /// The JSON summary: alias, key id and ARN, key spec, alg, kid.
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "alias": self.alias,
            "key_id": self.info.key_id,
            "key_arn": self.info.arn,
            "key_spec": self.info.key_spec,
            "alg": self.alg.name(),
            "kid": self.kid,
            "created": self.created,
            "regions": self.regions,
        })
    }
}

/// Rotation settings.
#[derive(Debug, Clone)]
pub struct RotationPolicy {
    /// Deletion window for the retired key (7 to 30 days).
    pub pending_window_days: i32,
    /// Minimum time a key stays `previous` before it may be retired; `None` for the set's
    /// policy ([`KeySetState::min_overlap`]).
    pub min_overlap: Option<Duration>,
    /// Rotate only when the current key is at least this old (for schedules).
    pub if_older_than: Option<Duration>,
    /// Retire even within the overlap.
    pub force: bool,
    /// Description of a newly created key.
    pub description: String,
}

/// A rotation, worked out but not applied.
#[derive(Debug, Clone)]
pub struct RotationPlan {
    /// The set before the rotation.
    pub state: KeySetState,
    /// Whether a new key will be created (no staged `next`).
    pub stage_new: bool,
    /// The key that will be scheduled for deletion.
    pub retire: Option<SetKey>,
    /// Only the cleanup of an interrupted rotation remains.
    pub finish_only: bool,
}

impl RotationPlan {
    /// The plan as JSON, for `--dry-run`.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let s = &self.state;
        let new = match (&s.next, self.stage_new) {
            (Some(next), _) => next.summary(),
            (None, _) => json!("a new key"),
        };
        json!({
            "dry_run": true,
            "current": if self.finish_only { s.current.as_ref().map(SetKey::summary) } else { Some(new) },
            "previous": if self.finish_only { s.previous.as_ref().map(SetKey::summary) } else { s.current.as_ref().map(SetKey::summary) },
            "retired": self.retire.iter().map(SetKey::summary).collect::<Vec<_>>(),
        })
    }
}

/// The set after a rotation.
#[derive(Debug, Clone)]
pub struct RotationOutcome {
    /// The set now.
    pub state: KeySetState,
    /// Keys scheduled for deletion by this rotation.
    pub retired: Vec<SetKey>,
    /// Whether this call rotated (false: the current key was younger than `if_older_than`).
    pub rotated: bool,
}

impl RotationOutcome {
    /// `{"rotated":true,"current":{...},"previous":{...},"retired":[...]}` with key id and kid
    /// per key.
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "rotated": self.rotated,
            "current": self.state.current.as_ref().map(SetKey::summary),
            "previous": self.state.previous.as_ref().map(SetKey::summary),
            "retired": self.retired.iter().map(SetKey::summary).collect::<Vec<_>>(),
        })
    }
}
