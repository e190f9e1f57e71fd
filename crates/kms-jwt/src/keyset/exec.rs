//! The executor: the KMS calls that carry out a plan (`plan`), each one safe to repeat, so that
//! a run stopped after any of them can be re-run.

use std::time::{Duration, SystemTime};

use aws_sdk_kms::types::{KeySpec as SdkKeySpec, KeyUsageType, Tag};

use super::plan::{Alias, KeyRef, NewKey, Provision, RotationPlan, Step};
use super::state::{ProvisionRequest, RotationPolicy};
use super::{KeySetName, KeySets, TAG_CREATED_AT, TAG_DEMOTED_AT, TAG_KEY_SET, TAG_KID, TAG_MAX_TOKEN_TTL};
use crate::kms::{KeySpec, KmsKey};
use crate::{Error, Result};

/// The first wait before `CreateAlias` is retried for a new key KMS does not show yet, doubled
/// each time up to the last: 0.25 + 0.5 + ... + 8 s, about 16 s in all.
const NEW_KEY_RETRY_FIRST: Duration = Duration::from_millis(250);
const NEW_KEY_RETRY_LAST: Duration = Duration::from_secs(8);

/// What a new key of a set is made with.
struct Creation<'a> {
    spec: &'a str,
    description: &'a str,
    extra: &'a [(String, String)],
    multi_region: bool,
}

pub(super) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

pub(super) fn is_already_exists(e: &Error) -> bool {
    matches!(e, Error::Kms { code, .. } if code == "AlreadyExistsException")
}

fn tag(key: &str, value: impl Into<String>) -> Result<Tag> {
    Tag::builder().tag_key(key).tag_value(value).build().map_err(|e| Error::Config(e.to_string()))
}

impl KeySets {
    pub(super) fn alias_name(name: &KeySetName, alias: Alias) -> String {
        match alias {
            Alias::Current => name.current(),
            Alias::Previous => name.previous(),
            Alias::Next => name.next(),
        }
    }

    /// Carries out `plan` for set `name`: the steps in order, each in its region.
    pub(super) async fn execute(&self, name: &KeySetName, plan: &RotationPlan, policy: &RotationPolicy) -> Result<()> {
        let current = plan.state.current.as_ref().ok_or_else(|| Error::KeyNotFound(name.current()))?;
        let mut new: Option<KmsKey> = None;
        let new_key =
            |new: &Option<KmsKey>| new.clone().ok_or_else(|| Error::Refused("the plan has no new key".into()));
        for step in &plan.steps {
            match step {
                Step::CreateNew => {
                    let extra: Vec<(String, String)> = current
                        .tags
                        .get(TAG_MAX_TOKEN_TTL)
                        .map(|v| (TAG_MAX_TOKEN_TTL.to_owned(), v.clone()))
                        .into_iter()
                        .collect();
                    let creation = Creation {
                        spec: policy.key_spec.as_deref().unwrap_or(current.spec.as_str()),
                        description: &policy.description,
                        extra: &extra,
                        multi_region: current.is_multi_region(),
                    };
                    new = Some(self.create_key(name, &creation, &name.next(), policy.pending_window_days).await?);
                }
                Step::AdoptStaged => {
                    let NewKey::Staged(staged) = &plan.new else { return Err(Error::Refused("nothing staged".into())) };
                    if !staged.is_enabled() {
                        return Err(Error::Refused(format!(
                            "staged key {} is {}, not Enabled",
                            staged.key_id, staged.state
                        )));
                    }
                    new = Some(self.ensure_kid(staged.clone()).await?);
                }
                Step::ReplicateNew(region) => {
                    // The replicas copy the primary's tags as they are now.
                    let id = new_key(&new)?.key_id;
                    let tagged = self.kms.describe(&id, true).await?.ok_or_else(|| Error::KeyNotFound(id))?;
                    self.ensure_replica(&tagged, region).await?;
                }
                Step::SetAlias(region, alias, key) => {
                    let key_id = match key {
                        KeyRef::New => new_key(&new)?.key_id,
                        KeyRef::Id(id) => id.clone(),
                    };
                    self.at(region.as_deref()).set_alias(&Self::alias_name(name, *alias), &key_id).await?;
                }
                Step::Retire(region, key_id) => {
                    self.at(region.as_deref()).retire_key(key_id, policy.pending_window_days).await?;
                }
                Step::TagDemoted(key_id) => self.tag(key_id, TAG_DEMOTED_AT, rfc3339(SystemTime::now())).await?,
                Step::DeleteAlias(region, alias) => {
                    self.at(region.as_deref()).delete_alias(&Self::alias_name(name, *alias)).await?;
                }
            }
        }
        Ok(())
    }

    /// The operations in `region` (`None`: here).
    fn at(&self, region: Option<&str>) -> KeySets {
        region.map_or_else(|| self.clone(), |r| self.in_region(r))
    }

    /// The set's current key for a provision, and whether this run created it.
    pub(super) async fn provision_key(&self, req: &ProvisionRequest, plan: Provision) -> Result<(KmsKey, bool)> {
        let name = &req.name;
        match plan {
            Provision::Existing(current) => Ok((current, false)),
            Provision::PromoteNext(next) => match self.point(&name.current(), &next.key_id, false).await {
                Ok(()) => Ok((self.ensure_kid(next).await?, true)),
                // A racing run promoted it first.
                Err(e) if is_already_exists(&e) => Ok((next, false)),
                Err(e) => Err(e),
            },
            Provision::Create => {
                let mut extra = req.tags.clone();
                extra.push((TAG_MAX_TOKEN_TTL.to_owned(), humantime::format_duration(req.max_token_ttl).to_string()));
                let creation = Creation {
                    spec: &req.key_spec,
                    description: &req.description,
                    extra: &extra,
                    multi_region: req.regions.len() > 1,
                };
                match self.create_key(name, &creation, &name.current(), req.pending_window_days).await {
                    Ok(key) => Ok((key, true)),
                    // Provisioned by a racing run: report its set, as for any existing set.
                    Err(Error::Busy { .. }) => Ok((
                        self.kms
                            .describe(&name.current(), true)
                            .await?
                            .ok_or_else(|| Error::KeyNotFound(name.current()))?,
                        false,
                    )),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Creates a key for the set, tagged with the set and its creation time, and in the very
    /// next call creates `alias` for it. It has KMS's default key policy, which lets the
    /// account's IAM policies decide: the Terraform module's grants, conditioned on the set's
    /// tag, reach it without any change. Between those two calls is the one moment a stopped
    /// run leaves a key that no alias names: `CreateKey` has no idempotency token, and finding
    /// such a key again would take an account scan, which this module never does. A key whose
    /// alias cannot be created is retired at once, with `retire_window` days of grace.
    async fn create_key(
        &self,
        name: &KeySetName,
        new: &Creation<'_>,
        alias: &str,
        retire_window: i32,
    ) -> Result<KmsKey> {
        let mut tags = vec![tag(TAG_KEY_SET, name.name())?, tag(TAG_CREATED_AT, rfc3339(SystemTime::now()))?];
        for (k, v) in new.extra {
            tags.push(tag(k, v.clone())?);
        }
        let created = self
            .kms
            .sdk()
            .create_key()
            .multi_region(new.multi_region)
            .key_usage(KeyUsageType::SignVerify)
            .key_spec(SdkKeySpec::from(new.spec))
            .description(new.description)
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
        let mut key = KmsKey::from_metadata(&meta);
        key.spec = KeySpec::from_name(new.spec);
        key.tags.insert(TAG_KEY_SET.to_owned(), name.name().to_owned());
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
    async fn ensure_kid(&self, mut key: KmsKey) -> Result<KmsKey> {
        if key.kid().is_none() {
            let kid = self.kms.describe_signing_key(&key.arn).await?.public_key.thumbprint();
            self.tag(&key.key_id, TAG_KID, kid.clone()).await?;
            key.tags.insert(TAG_KID.to_owned(), kid);
        }
        Ok(key)
    }

    async fn tag(&self, key_id: &str, name: &str, value: String) -> Result<()> {
        self.kms
            .sdk()
            .tag_resource()
            .key_id(key_id)
            .tags(tag(name, value)?)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.kms.error(e, key_id))
    }

    /// Points `alias` at `key_id`: `UpdateAlias` if it `exists`, else `CreateAlias`.
    pub(super) async fn point(&self, alias: &str, key_id: &str, exists: bool) -> Result<()> {
        let sdk = self.kms.sdk();
        if exists {
            sdk.update_alias()
                .alias_name(alias)
                .target_key_id(key_id)
                .send()
                .await
                .map(drop)
                .map_err(|e| self.kms.error(e, alias))
        } else {
            sdk.create_alias()
                .alias_name(alias)
                .target_key_id(key_id)
                .send()
                .await
                .map(drop)
                .map_err(|e| self.kms.error(e, alias))
        }
    }

    /// Creates `alias` for `key_id`; an alias that already names that key is fine, one that
    /// names another key is refused (provision never moves an alias).
    pub(super) async fn claim_alias(&self, alias: &str, key_id: &str) -> Result<()> {
        match self.point(alias, key_id, false).await {
            Ok(()) => Ok(()),
            Err(e) if is_already_exists(&e) => match self.kms.describe(alias, false).await? {
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
        match self.kms.describe(alias, false).await? {
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
        match self.kms.sdk().schedule_key_deletion().key_id(key_id).pending_window_in_days(days).send().await {
            Ok(_) => Ok(()),
            Err(e) => match self.kms.error(e, key_id) {
                Error::KeyPendingDeletion(_) | Error::KeyNotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Deletes `alias`; one that does not exist is fine.
    pub(super) async fn delete_alias(&self, alias: &str) -> Result<()> {
        match self.kms.sdk().delete_alias().alias_name(alias).send().await {
            Ok(_) => Ok(()),
            Err(e) => match self.kms.error(e, alias) {
                Error::KeyNotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }
}
