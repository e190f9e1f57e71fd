//! Multi-Region sets: the same operations in the replica regions, and replicas of the set's
//! keys there (same key material, same `kid`).

use std::time::Duration;

use aws_sdk_kms::types::Tag;

use super::exec::is_already_exists;
use super::{KeySets, REPLICA_WAIT, TAGS_ADDED_LATER};
use crate::kms::KmsKey;
use crate::{Error, Result};

impl KeySets {
    /// The same operations in another region: a multi-Region set's replica regions.
    pub(super) fn in_region(&self, region: &str) -> KeySets {
        KeySets { kms: self.kms.in_region(region), lock_ttl: self.lock_ttl }
    }

    /// Makes sure the multi-Region primary `key` has an enabled replica in `region`, with
    /// the primary's creation tags. A racing run's `ReplicateKey` makes this one's answer
    /// `AlreadyExists`, which is success.
    pub(super) async fn ensure_replica(&self, key: &KmsKey, region: &str) -> Result<()> {
        let there = self.in_region(region);
        let existing = there.kms.describe(&key.key_id, false).await?;
        if existing.as_ref().is_some_and(KmsKey::is_enabled) {
            return Ok(());
        }
        if existing.is_none() {
            // The tags a key is created with; the kid and demotion tags live on the primary.
            let tags = key
                .tags
                .iter()
                .filter(|(k, _)| !TAGS_ADDED_LATER.contains(&k.as_str()))
                .map(|(k, v)| Tag::builder().tag_key(k).tag_value(v).build().map_err(|e| Error::Config(e.to_string())))
                .collect::<Result<Vec<_>>>()?;
            let replicated = self
                .kms
                .sdk()
                .replicate_key()
                .key_id(&key.arn)
                .replica_region(region)
                .set_tags(Some(tags))
                .send()
                .await;
            if let Err(e) = replicated {
                let e = self.kms.error(e, &key.key_id);
                if !is_already_exists(&e) {
                    return Err(e);
                }
            }
        }
        // AWS creates a replica asynchronously: it signs once it is Enabled.
        for _ in 0..REPLICA_WAIT.as_secs() {
            if there.kms.describe(&key.key_id, false).await?.is_some_and(|k| k.is_enabled()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(Error::Refused(format!("the replica of {} in {region} is not enabled after {REPLICA_WAIT:?}", key.key_id)))
    }
}
