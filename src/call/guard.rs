//! The fence against password guessing (fail2ban's idea, in the call path): failed digest
//! proofs are counted per source address and per user in a sliding window; past the limit
//! that address (or user) is blocked, for `block` the first time and twice as long each
//! time after (up to `MAX_BLOCK`). While blocked, credentials are not even checked: the
//! answer is the one a wrong password gets, so a guesser learns nothing, the right
//! password included.
//!
//! Sans-IO: it takes `now`, like the rest of the call layer.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// No block grows past this.
pub const MAX_BLOCK: Duration = Duration::from_secs(3600);
/// Entries kept at most (addresses and users); the quiet ones go first.
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardSettings {
    /// Failures from one address in `window` before it is blocked (0: no limit).
    pub per_address: usize,
    /// Failures for one user in `window` before the user is blocked (0: no limit).
    pub per_user: usize,
    pub window: Duration,
    /// The first block; each next block of the same address or user lasts twice as long.
    pub block: Duration,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            per_address: 10,
            per_user: 30,
            window: Duration::from_secs(60),
            block: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    User(String),
}

#[derive(Default)]
struct Entry {
    failures: VecDeque<Instant>,
    blocked_until: Option<Instant>,
    /// Blocks so far (the next one lasts `block × 2^strikes`).
    strikes: u32,
    last: Option<Instant>,
}

/// A block that has just begun: who, and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub what: String,
    pub secs: u64,
}

#[derive(Default)]
pub struct AuthGuard {
    settings: GuardSettings,
    entries: HashMap<Key, Entry>,
}

impl AuthGuard {
    pub fn new(settings: GuardSettings) -> AuthGuard {
        AuthGuard {
            settings,
            entries: HashMap::new(),
        }
    }

    /// Is `ip`, or `user`, blocked at `now`?
    pub fn blocked(&self, ip: IpAddr, user: &str, now: Instant) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        [Key::Address(ip), Key::User(user.to_string())]
            .iter()
            .any(|k| {
                self.entries
                    .get(k)
                    .and_then(|e| e.blocked_until)
                    .is_some_and(|until| now < until)
            })
    }

    /// A wrong password (or an unknown user) from `ip`: the blocks this begins.
    pub fn failed(&mut self, ip: IpAddr, user: &str, now: Instant) -> Vec<Block> {
        if self.entries.len() >= MAX_ENTRIES {
            self.forget_quiet(now);
        }
        let s = self.settings;
        let mut begun = Vec::new();
        for (key, limit) in [
            (Key::Address(ip), s.per_address),
            (Key::User(user.to_string()), s.per_user),
        ] {
            if limit == 0 {
                continue;
            }
            let e = self.entries.entry(key.clone()).or_default();
            // Strikes are forgiven after a long quiet spell.
            if e.last
                .is_some_and(|l| now.saturating_duration_since(l) > MAX_BLOCK * 2)
            {
                e.strikes = 0;
            }
            e.last = Some(now);
            while e
                .failures
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= s.window)
            {
                e.failures.pop_front();
            }
            e.failures.push_back(now);
            if e.failures.len() >= limit && e.blocked_until.is_none_or(|u| now >= u) {
                let length = s
                    .block
                    .saturating_mul(1u32 << e.strikes.min(16))
                    .min(MAX_BLOCK);
                e.blocked_until = Some(now + length);
                e.strikes += 1;
                e.failures.clear();
                begun.push(Block {
                    what: match &key {
                        Key::Address(a) => format!("address {a}"),
                        Key::User(u) => format!("user {u}"),
                    },
                    secs: length.as_secs(),
                });
            }
        }
        begun
    }

    /// The right password: the user's failures are forgiven (an address's are not: one
    /// success does not buy a guesser more tries).
    pub fn succeeded(&mut self, user: &str) {
        if self.entries.is_empty() {
            // Nobody has failed: nothing to look up (the common case, every paid call).
            return;
        }
        if let Some(e) = self.entries.get_mut(&Key::User(user.to_string())) {
            e.failures.clear();
        }
    }

    fn forget_quiet(&mut self, now: Instant) {
        self.entries.retain(|_, e| {
            e.blocked_until.is_some_and(|u| now < u)
                || e.last
                    .is_some_and(|l| now.saturating_duration_since(l) < MAX_BLOCK)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::NowForTests;

    fn guard() -> AuthGuard {
        AuthGuard::new(GuardSettings {
            per_address: 3,
            per_user: 5,
            window: Duration::from_secs(60),
            block: Duration::from_secs(10),
        })
    }

    #[test]
    fn an_address_is_blocked_after_its_failures_for_longer_each_time() {
        let mut g = guard();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let t0 = std::time::Instant::now_for_tests();
        assert!(g.failed(ip, "a", t0).is_empty());
        assert!(g.failed(ip, "b", t0).is_empty());
        assert!(!g.blocked(ip, "c", t0));
        let begun = g.failed(ip, "c", t0);
        assert_eq!(
            begun,
            [Block {
                what: "address 192.0.2.7".into(),
                secs: 10
            }]
        );
        assert!(g.blocked(ip, "anyone", t0 + Duration::from_secs(9)));
        assert!(!g.blocked(ip, "anyone", t0 + Duration::from_secs(10)));
        // Again: twice as long.
        let t1 = t0 + Duration::from_secs(11);
        for u in ["d", "e"] {
            g.failed(ip, u, t1);
        }
        assert_eq!(g.failed(ip, "f", t1)[0].secs, 20);
        assert!(g.blocked(ip, "x", t1 + Duration::from_secs(19)));
        // Another address is not touched.
        assert!(!g.blocked("192.0.2.8".parse().unwrap(), "x", t1));
    }

    #[test]
    fn a_user_guessed_from_many_addresses_is_blocked_and_old_failures_fall_out() {
        let mut g = guard();
        let t0 = std::time::Instant::now_for_tests();
        for i in 0..4 {
            g.failed(IpAddr::from([192, 0, 2, i]), "minji", t0);
        }
        // Failures older than the window do not count.
        let later = t0 + Duration::from_secs(61);
        assert!(
            g.failed(IpAddr::from([192, 0, 2, 9]), "minji", later)
                .is_empty()
        );
        for i in 10..13 {
            g.failed(IpAddr::from([192, 0, 2, i]), "minji", later);
        }
        let begun = g.failed(IpAddr::from([192, 0, 2, 20]), "minji", later);
        assert_eq!(
            begun,
            [Block {
                what: "user minji".into(),
                secs: 10
            }]
        );
        assert!(g.blocked(IpAddr::from([198, 51, 100, 1]), "minji", later));
        assert!(!g.blocked(IpAddr::from([198, 51, 100, 1]), "yuna", later));
    }
}
