//! What a key set is, as KMS says: the keys its aliases name, the set's tags on them (its
//! `kid`, when a key stopped being current, the lifetime policy), and what the operations
//! are asked to do and report.

use std::time::{Duration, SystemTime};

use super::{CLOCK_SKEW, JWKS_CACHE_AGE, KeySetName, LEGACY_MIN_OVERLAP, TAG_DEMOTED_AT, TAG_KID};
use crate::kms::{KeyInfo, KmsKey};
use crate::{Algorithm, Error, Result};

/// The keys a set's three aliases name in one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySetState {
    /// The set's name.
    pub name: KeySetName,
    /// The region the aliases are in.
    pub region: Option<String>,
    /// `alias/NAME`.
    pub current: Option<KmsKey>,
    /// `alias/NAME/previous`.
    pub previous: Option<KmsKey>,
    /// `alias/NAME/next`.
    pub next: Option<KmsKey>,
}

impl KeySetState {
    /// The set's lifetime policy, as its current (else previous) key records it. A tag that
    /// is not a duration is an error: the overlap that depends on it cannot be known.
    pub fn max_token_ttl(&self) -> Result<Option<Duration>> {
        for key in [&self.current, &self.previous].into_iter().flatten() {
            if let Some(ttl) = key.max_token_ttl()? {
                return Ok(Some(ttl));
            }
        }
        Ok(None)
    }

    /// The overlap a rotation waits for by default: [`default_min_overlap`] of the policy.
    pub fn min_overlap(&self) -> Result<Duration> {
        Ok(default_min_overlap(self.max_token_ttl()?))
    }
}

/// The minimum overlap a set's policy implies: a token signed just before a rotation lives
/// up to the longest token lifetime, verifiers may hold the old JWKS for its cache age, and
/// clocks disagree by the skew. Sets without a policy keep the one-day overlap.
#[must_use]
pub fn default_min_overlap(max_token_ttl: Option<Duration>) -> Duration {
    max_token_ttl.map_or(LEGACY_MIN_OVERLAP, |ttl| ttl + JWKS_CACHE_AGE + CLOCK_SKEW)
}

/// The set's tags on a key.
impl KmsKey {
    /// The `kid` recorded at creation ([`TAG_KID`]), if the key was made by kms-jwt.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.tags.get(TAG_KID).map(String::as_str)
    }

    /// When the key stopped being current ([`TAG_DEMOTED_AT`]), if it did.
    pub fn demoted_at(&self) -> Result<Option<SystemTime>> {
        let Some(value) = self.tags.get(TAG_DEMOTED_AT) else { return Ok(None) };
        humantime::parse_rfc3339(value).map(Some).map_err(|_| Error::BadTag {
            key: self.key_id.clone(),
            tag: TAG_DEMOTED_AT,
            value: value.clone(),
            expected: "an RFC 3339 time",
        })
    }
}

/// A set as `status` reports it.
#[derive(Debug, Clone)]
pub struct KeySetStatus {
    /// The three aliases' keys (with their tags) in the region asked, or in the primary region
    /// of a multi-Region set.
    pub state: KeySetState,
    /// When the lock was taken, if an operation holds it (or died holding it).
    pub lock: Option<SystemTime>,
    /// A multi-Region set's aliases in each replica region (keys without their tags).
    pub replicas: Vec<KeySetState>,
}

impl KeySetStatus {
    /// When the next rotation may retire `previous` without force: its demotion plus the
    /// overlap. `None` when there is no previous key, or it has no demotion time.
    pub fn previous_retirable_at(&self) -> Result<Option<SystemTime>> {
        let Some(previous) = &self.state.previous else { return Ok(None) };
        let Some(demoted) = previous.demoted_at()? else { return Ok(None) };
        Ok(Some(demoted + self.state.min_overlap()?))
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
    /// The longest lifetime of a token signed by the set's keys ([`super::TAG_MAX_TOKEN_TTL`]).
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
    /// The spec of a newly created key, as KMS names it; `None` for the current key's. A set
    /// moves to another spec (RSA to Ed25519, say) by rotating with one: its JWKS carries both
    /// keys, each with its own algorithm, through the overlap.
    pub key_spec: Option<String>,
}

/// The set after a rotation.
#[derive(Debug, Clone)]
pub struct RotationOutcome {
    /// The set now.
    pub state: KeySetState,
    /// Keys scheduled for deletion by this rotation.
    pub retired: Vec<KmsKey>,
    /// Whether this call rotated (false: the current key was younger than `if_older_than`).
    pub rotated: bool,
}
