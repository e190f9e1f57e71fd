//! The set's lock: `CreateAlias alias/NAME/lock`, which fails when the alias exists, is the one
//! compare-and-set KMS offers. Racing rotations take turns through it; a lock left by a run
//! that died is broken, once, by whoever first creates `alias/NAME/lock-<its time>`. See
//! docs/RELIABILITY.md.

use std::time::{Duration, SystemTime};

use super::exec::is_already_exists;
use super::{KeySetName, KeySets};
use crate::{Error, Result};

/// A held lock, and the alias that broke a stale one before it, if any.
#[derive(Debug)]
pub(super) struct Lock {
    breaker: Option<String>,
}

impl KeySets {
    /// Takes the set's lock: `CreateAlias alias/NAME/lock`, which fails when the alias exists,
    /// is the one compare-and-set KMS offers. A lock older than [`LOCK_TTL`] was left by an
    /// operation that died; it is broken by whoever first creates `alias/NAME/lock-<its time>`,
    /// so that two runs never both break it. See docs/RELIABILITY.md.
    pub(super) async fn lock(&self, name: &KeySetName, target: &str) -> Result<Lock> {
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

    pub(super) async fn unlock(&self, name: &KeySetName, lock: Lock) -> Result<()> {
        self.delete_alias(&name.lock()).await?;
        if let Some(breaker) = lock.breaker {
            self.delete_alias(&breaker).await?;
        }
        Ok(())
    }

    /// When the lock alias was created, if it exists: `DescribeKey` finds its key, and
    /// `ListAliases` for that key has the alias's creation date.
    pub(super) async fn lock_taken_at(&self, name: &KeySetName) -> Result<Option<SystemTime>> {
        let Some(target) = self.kms.describe(&name.lock(), false).await? else { return Ok(None) };
        let aliases = self
            .kms
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
}
