//! The planner: a set's state, a policy and the time in, the ordered steps out. No KMS call
//! is made here, so every case (a fresh set, a staged key, an overlap not yet over, a run
//! stopped after any step, several regions) is tested offline below; the executor (`exec`)
//! only carries the steps out.
//!
//! The order is the safety argument: the new key is staged under `next` (in every region)
//! before anything moves, so a stopped run promotes it instead of making another and a region
//! that is down stops the rotation before any `current` moved; the retired key goes while
//! `previous` still names it; the replica regions move before the primary's `current`, which
//! moves last, and is only ever moved, never deleted.

use std::time::{Duration, SystemTime};

use super::TAG_DEMOTED_AT;
use super::state::{KeySetState, ProvisionRequest, RotationPolicy};
use crate::kms::{KeySpec, KeyState, KmsKey};
use crate::{Error, Result};

/// One of a set's aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alias {
    Current,
    Previous,
    Next,
}

/// The key a step is about: the rotation's new key (known once it is made), or a known one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyRef {
    New,
    Id(String),
}

/// Where a step happens: the primary's region (the client's), or a replica region.
pub(crate) type Region = Option<String>;

/// One KMS change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Create the new key and, in the very next call, `next` for it.
    CreateNew,
    /// The staged key becomes the new key: check it is enabled, record its `kid` if missing.
    AdoptStaged,
    /// Replicate the new key into `region` (and wait until it is enabled).
    ReplicateNew(String),
    /// Point the alias at the key, creating or moving it as needed.
    SetAlias(Region, Alias, KeyRef),
    /// Schedule the key's deletion.
    Retire(Region, String),
    /// Record when the key stopped being current ([`TAG_DEMOTED_AT`]).
    TagDemoted(String),
    /// Delete the alias if it exists.
    DeleteAlias(Region, Alias),
}

/// Where the new key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewKey {
    /// The key staged under `next`.
    Staged(KmsKey),
    /// A key to be created, of the current key's spec.
    Create,
    /// None: the rotation was stopped after `current` moved, and only its cleanup is left; or
    /// the set is not due.
    None,
}

/// A rotation, worked out but not applied.
#[derive(Debug, Clone)]
pub struct RotationPlan {
    /// The set before the rotation.
    pub state: KeySetState,
    /// Where the new current key comes from.
    pub new: NewKey,
    /// The key that will be scheduled for deletion.
    pub retire: Option<KmsKey>,
    /// Only the cleanup of an interrupted rotation remains.
    pub finish_only: bool,
    pub(crate) steps: Vec<Step>,
}

impl RotationPlan {
    /// Whether it changes nothing (the set is not due for rotation).
    #[must_use]
    pub fn is_noop(&self) -> bool {
        self.steps.is_empty()
    }
}

/// A rotation's deletion window must be one KMS accepts.
pub(crate) fn check_window(days: i32) -> Result<()> {
    if (7..=30).contains(&days) {
        Ok(())
    } else {
        Err(Error::Refused(format!("the pending window must be between 7 and 30 days, not {days}")))
    }
}

/// Whether a set whose current key is `current` is due for rotation at `now`.
pub(crate) fn due(current: &KmsKey, if_older_than: Option<Duration>, now: SystemTime) -> bool {
    let Some(min_age) = if_older_than else { return true };
    let age = current.created.and_then(|c| now.duration_since(c).ok()).unwrap_or(Duration::MAX);
    age >= min_age
}

/// The key as a rotation reports it once retired.
pub(crate) fn retired(key: KmsKey) -> KmsKey {
    KmsKey { state: KeyState::PendingDeletion, ..key }
}

/// Plans a rotation of `state` under `policy` at `now`.
pub(crate) fn plan_rotation(state: &KeySetState, policy: &RotationPolicy, now: SystemTime) -> Result<RotationPlan> {
    check_window(policy.pending_window_days)?;
    if let Some(spec) = &policy.key_spec {
        check_spec(spec)?;
    }
    let current = state.current.clone().ok_or_else(|| Error::KeyNotFound(state.name.current()))?;
    // The policy is read before anything else: a new key inherits it, and an unreadable one
    // must not be copied or taken for none.
    state.max_token_ttl()?;
    let replicas = current.replica_regions().to_vec();
    let plan = |new, retire, finish_only, steps| RotationPlan { state: state.clone(), new, retire, finish_only, steps };
    // A rotation stopped after moving the primary's current alias: only the cleanup is left.
    if state.next.as_ref().is_some_and(|n| n.key_id == current.key_id) {
        let mut steps = Vec::new();
        for region in &replicas {
            if let Some(previous) = &state.previous {
                steps.push(Step::SetAlias(Some(region.clone()), Alias::Previous, KeyRef::Id(previous.key_id.clone())));
            }
            steps.push(Step::SetAlias(Some(region.clone()), Alias::Current, KeyRef::Id(current.key_id.clone())));
        }
        steps.extend(clear_next(&replicas));
        return Ok(plan(NewKey::None, None, true, steps));
    }
    if !due(&current, policy.if_older_than, now) {
        return Ok(plan(NewKey::None, None, false, Vec::new()));
    }
    let retire = state.previous.clone().filter(|p| p.key_id != current.key_id && p.state != KeyState::PendingDeletion);
    if let Some(old) = retire.as_ref().filter(|_| !policy.force) {
        let Some(demoted) = old.demoted_at()? else {
            return Err(Error::Refused(format!(
                "previous key {} has no {TAG_DEMOTED_AT} tag, so its overlap cannot be checked; \
                 only a forced rotation retires it",
                old.key_id
            )));
        };
        let age = now.duration_since(demoted).unwrap_or(Duration::ZERO);
        let min_overlap = match policy.min_overlap {
            Some(overlap) => overlap,
            None => state.min_overlap()?,
        };
        if age < min_overlap {
            return Err(Error::OverlapNotElapsed { key: old.key_id.clone(), demoted_ago: age, min_overlap });
        }
    }
    let (new, mut steps) = match &state.next {
        Some(next) => (NewKey::Staged(next.clone()), vec![Step::AdoptStaged]),
        None => (NewKey::Create, vec![Step::CreateNew]),
    };
    // 1. The new key, staged everywhere before anything moves.
    for region in &replicas {
        steps.push(Step::ReplicateNew(region.clone()));
        steps.push(Step::SetAlias(Some(region.clone()), Alias::Next, KeyRef::New));
    }
    // 2. The key that drops out, while `previous` still names it: replicas first, as a primary
    //    is deleted after its replicas.
    if let Some(old) = &retire {
        for region in &replicas {
            steps.push(Step::Retire(Some(region.clone()), old.key_id.clone()));
        }
        steps.push(Step::Retire(None, old.key_id.clone()));
    }
    // 3. When the current key stops being current: the next rotation's overlap guard reads it.
    steps.push(Step::TagDemoted(current.key_id.clone()));
    // 4. previous <- current, 5. current <- new: the replica regions, then the primary's.
    let old_current = KeyRef::Id(current.key_id.clone());
    for region in replicas.iter().cloned().map(Some).chain([None]) {
        steps.push(Step::SetAlias(region.clone(), Alias::Previous, old_current.clone()));
        steps.push(Step::SetAlias(region, Alias::Current, KeyRef::New));
    }
    // 6. `next` is empty again, everywhere.
    steps.extend(clear_next(&replicas));
    Ok(plan(new, retire, false, steps))
}

fn clear_next(replicas: &[String]) -> impl Iterator<Item = Step> + '_ {
    replicas.iter().cloned().map(Some).chain([None]).map(|region| Step::DeleteAlias(region, Alias::Next))
}

/// What `provision` does with a set in `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Provision {
    /// The set exists: report its current key.
    Existing(KmsKey),
    /// An interrupted (or racing) provision staged a key under `next`: make it current rather
    /// than make another.
    PromoteNext(KmsKey),
    /// Nothing yet: create the key and its current alias.
    Create,
}

/// A new key's spec must sign JWTs.
fn check_spec(spec: &str) -> Result<()> {
    if KeySpec::from_name(spec).default_algorithm().is_none() {
        return Err(Error::Refused(format!("key spec {spec} cannot sign JWTs")));
    }
    Ok(())
}

/// Checks a provision request before any KMS call: a spec that signs JWTs, a window KMS
/// accepts, regions listed once, the primary region the client's.
pub(crate) fn check_provision(req: &ProvisionRequest, client_region: Option<&str>) -> Result<()> {
    check_spec(&req.key_spec)?;
    check_window(req.pending_window_days)?;
    if let Some((_, twice)) = req.regions.iter().enumerate().find(|(i, r)| req.regions[..*i].contains(r)) {
        return Err(Error::Config(format!("region {twice} is listed twice")));
    }
    if let Some(primary) = req.regions.first()
        && client_region != Some(primary.as_str())
    {
        return Err(Error::Config(format!(
            "a set's primary region ({primary}) must be the client's region ({})",
            client_region.unwrap_or("none")
        )));
    }
    Ok(())
}

/// Plans a provision of the set in `state`.
pub(crate) fn plan_provision(state: &KeySetState) -> Provision {
    match (&state.current, &state.next) {
        (Some(current), _) => Provision::Existing(current.clone()),
        (None, Some(next)) => Provision::PromoteNext(next.clone()),
        (None, None) => Provision::Create,
    }
}

#[cfg(test)]
mod tests;
