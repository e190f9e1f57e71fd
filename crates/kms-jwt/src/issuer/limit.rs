//! Rate limits: a one-minute window per key (a client address, an access key id, a principal).
//! Memory is bounded: when the table is full, the oldest window goes. Refusing new keys instead
//! would let a flood of made-up keys (access key ids are the caller's to choose) lock everyone
//! else out; forgetting the oldest window at worst gives a flood a fresh count, which the
//! limits before it (the address's) still bound.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The window every limit counts in.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// What a limiter says about one more request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the limit.
    Allowed,
    /// Over it; the window ends in `wait`. `first` for the first refusal of the window.
    Limited { wait: Duration, first: bool },
}

#[derive(Default)]
struct Windows {
    /// Each key's window: when it started and how many requests it counted.
    by_key: HashMap<String, (Instant, u32)>,
    /// The windows in the order they started (a key's stale entries are skipped).
    order: VecDeque<(Instant, String)>,
}

/// Requests per key per minute.
pub(crate) struct RateLimiter {
    per_window: u32,
    capacity: usize,
    windows: Mutex<Windows>,
}

impl RateLimiter {
    /// At most `per_window` requests per key and window (0: no limit), for at most `capacity`
    /// keys at once.
    pub(crate) fn new(per_window: u32, capacity: usize) -> RateLimiter {
        RateLimiter { per_window, capacity: capacity.max(1), windows: Mutex::new(Windows::default()) }
    }

    /// Counts a request of `key` at `now`.
    pub(crate) fn check(&self, key: &str, now: Instant) -> Verdict {
        if self.per_window == 0 {
            return Verdict::Allowed;
        }
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let Windows { by_key, order } = &mut *windows;
        let fresh = match by_key.get(key) {
            Some((start, _)) => now.duration_since(*start) >= WINDOW,
            None => true,
        };
        if fresh {
            let live = |by_key: &HashMap<String, (Instant, u32)>, start: &Instant, key: &String| {
                by_key.get(key).is_some_and(|(s, _)| s == start)
            };
            if !by_key.contains_key(key) {
                while by_key.len() >= self.capacity {
                    let Some((start, oldest)) = order.pop_front() else { break };
                    if live(by_key, &start, &oldest) {
                        by_key.remove(&oldest);
                    }
                }
            }
            // A renewed window leaves its old place behind: drop those now and then.
            if order.len() > 2 * self.capacity {
                order.retain(|(start, k)| live(by_key, start, k));
            }
            by_key.insert(key.to_owned(), (now, 0));
            order.push_back((now, key.to_owned()));
        }
        let (start, count) = by_key.get_mut(key).expect("the window was just made");
        if *count >= self.per_window {
            let first = *count == self.per_window;
            *count = count.saturating_add(1);
            return Verdict::Limited { wait: WINDOW.saturating_sub(now.duration_since(*start)), first };
        }
        *count += 1;
        Verdict::Allowed
    }
}

/// The key a client address is limited by: the address itself, or an IPv6 address's /64, since
/// one host (one customer) commonly holds a whole /64.
pub(crate) fn address_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                v4.to_string()
            } else {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_limit_per_window() {
        let limiter = RateLimiter::new(2, 100);
        let t0 = Instant::now();
        assert_eq!(limiter.check("a", t0), Verdict::Allowed);
        assert_eq!(limiter.check("a", t0), Verdict::Allowed);
        let over = Verdict::Limited { wait: Duration::from_secs(50), first: true };
        assert_eq!(limiter.check("a", t0 + Duration::from_secs(10)), over);
        assert!(matches!(limiter.check("a", t0 + Duration::from_secs(10)), Verdict::Limited { first: false, .. }));
        assert_eq!(limiter.check("b", t0), Verdict::Allowed, "keys are counted apart");
        assert_eq!(limiter.check("a", t0 + WINDOW), Verdict::Allowed, "a new window");
        assert_eq!(RateLimiter::new(0, 1).check("a", t0), Verdict::Allowed, "0 is no limit");
    }

    #[test]
    fn a_full_table_lets_the_oldest_window_go_and_never_locks_new_keys_out() {
        let limiter = RateLimiter::new(1, 2);
        let t0 = Instant::now();
        assert_eq!(limiter.check("a", t0), Verdict::Allowed);
        assert_eq!(limiter.check("b", t0 + Duration::from_secs(1)), Verdict::Allowed);
        // A flood of made-up keys: each is let in once, and the table stays at two.
        for i in 0..1000 {
            assert_eq!(limiter.check(&format!("forged-{i}"), t0 + Duration::from_secs(2)), Verdict::Allowed);
        }
        let windows = limiter.windows.lock().unwrap();
        assert!(windows.by_key.len() <= 2 && windows.order.len() <= 5, "{}", windows.order.len());
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_eq!(address_key(a), "2001:db8:1:2::/64");
        assert_eq!(address_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1");
        assert_eq!(address_key("127.0.0.1".parse().unwrap()), "127.0.0.1");
    }
}
