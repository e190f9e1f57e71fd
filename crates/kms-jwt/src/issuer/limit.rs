//! Rate limits: a one-minute window per key (a client address, an access key id, a principal).
//! Memory is bounded: windows expire, and when the table is full of live ones a new key is
//! refused (the caller answers "busy") rather than an old window forgotten, which would let a
//! flood reset its own count.

use std::collections::HashMap;
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
    /// Over it; the window ends in this long.
    Limited(Duration),
    /// The table is full of live windows.
    Full,
}

/// Requests per key per minute.
pub(crate) struct RateLimiter {
    per_window: u32,
    capacity: usize,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    /// At most `per_window` requests per key and window (0: no limit), for at most `capacity`
    /// keys at once.
    pub(crate) fn new(per_window: u32, capacity: usize) -> RateLimiter {
        RateLimiter { per_window, capacity: capacity.max(1), windows: Mutex::new(HashMap::new()) }
    }

    /// Counts a request of `key` at `now`.
    pub(crate) fn check(&self, key: &str, now: Instant) -> Verdict {
        if self.per_window == 0 {
            return Verdict::Allowed;
        }
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if !windows.contains_key(key) && windows.len() >= self.capacity {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if windows.len() >= self.capacity {
                return Verdict::Full;
            }
        }
        let (start, count) = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            *start = now;
            *count = 0;
        }
        if *count >= self.per_window {
            return Verdict::Limited(WINDOW.saturating_sub(now.duration_since(*start)));
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
        assert_eq!(limiter.check("a", t0 + Duration::from_secs(10)), Verdict::Limited(Duration::from_secs(50)));
        assert_eq!(limiter.check("b", t0), Verdict::Allowed, "keys are counted apart");
        assert_eq!(limiter.check("a", t0 + WINDOW), Verdict::Allowed, "a new window");
        assert_eq!(RateLimiter::new(0, 1).check("a", t0), Verdict::Allowed, "0 is no limit");
    }

    #[test]
    fn a_full_table_refuses_new_keys_until_windows_expire() {
        let limiter = RateLimiter::new(5, 2);
        let t0 = Instant::now();
        limiter.check("a", t0);
        limiter.check("b", t0);
        assert_eq!(limiter.check("c", t0), Verdict::Full);
        assert_eq!(limiter.check("a", t0), Verdict::Allowed, "known keys are still counted");
        assert_eq!(limiter.check("c", t0 + WINDOW), Verdict::Allowed);
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
