//! Single use: the signatures of accepted proofs, each kept until its proof's date window has
//! closed (after that no server accepts the proof anyway). Memory is bounded: when the set is
//! full of proofs still in their window, new proofs are refused rather than old ones forgotten.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

/// Why a proof cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// It was used already.
    Used,
    /// The set is full of proofs still in their window.
    Full,
    /// Its window has closed.
    Expired,
}

#[derive(Default)]
struct Seen {
    signatures: HashSet<String>,
    /// The same signatures by the time their window closes, oldest first.
    by_expiry: BTreeSet<(SystemTime, String)>,
}

/// The signatures of proofs used within their window.
pub(crate) struct ReplayCache {
    capacity: usize,
    seen: Mutex<Seen>,
}

impl ReplayCache {
    pub(crate) fn new(capacity: usize) -> ReplayCache {
        ReplayCache { capacity: capacity.max(1), seen: Mutex::new(Seen::default()) }
    }

    /// Records `signature` as used until `until`; refuses one used before, or any new one when
    /// the set is full.
    pub(crate) fn reserve(&self, signature: &str, until: SystemTime, now: SystemTime) -> Result<(), Replay> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(first) = seen.by_expiry.first().filter(|(expiry, _)| *expiry <= now).cloned() {
            seen.by_expiry.remove(&first);
            seen.signatures.remove(&first.1);
        }
        if seen.signatures.contains(signature) {
            return Err(Replay::Used);
        }
        if until <= now {
            return Err(Replay::Expired);
        }
        if seen.signatures.len() >= self.capacity {
            return Err(Replay::Full);
        }
        seen.signatures.insert(signature.to_owned());
        seen.by_expiry.insert((until, signature.to_owned()));
        Ok(())
    }

    /// Forgets `signature`: its request failed on the server's side (STS or KMS unavailable),
    /// so the caller may try the same proof again.
    pub(crate) fn release(&self, signature: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.signatures.remove(signature) {
            seen.by_expiry.retain(|(_, s)| s != signature);
        }
    }

    /// How many signatures are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).signatures.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_signature_is_used_once_within_its_window_and_forgotten_after() {
        let cache = ReplayCache::new(8);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let until = now + Duration::from_secs(300);
        assert_eq!(cache.reserve("a", until, now), Ok(()));
        assert_eq!(cache.reserve("a", until, now + Duration::from_secs(299)), Err(Replay::Used));
        assert_eq!(cache.reserve("b", until, now), Ok(()));
        // Past the window the proof is stale anyway, and its signature is let go; a proof
        // whose window has closed is never taken.
        assert_eq!(cache.reserve("a", until, until), Err(Replay::Expired));
        assert_eq!(cache.reserve("c", until + Duration::from_secs(600), until), Ok(()));
        assert_eq!(cache.len(), 1);
        cache.release("c");
        assert_eq!(cache.reserve("c", until + Duration::from_secs(600), until), Ok(()));
    }

    #[test]
    fn a_full_cache_refuses_rather_than_forgets() {
        let cache = ReplayCache::new(3);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let until = now + Duration::from_secs(300);
        for s in ["a", "b", "c"] {
            cache.reserve(s, until, now).unwrap();
        }
        assert_eq!(cache.reserve("d", until, now), Err(Replay::Full));
        assert_eq!(cache.reserve("a", until, now), Err(Replay::Used), "still remembered");
        let later = until + Duration::from_secs(300);
        assert_eq!(cache.reserve("d", later, until), Ok(()), "room again once the windows closed");
    }
}
