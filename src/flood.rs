//! The flood gate: each source address may start so many new requests a second, with a
//! burst of twice that; past it, they are refused until it slows down. A token bucket per
//! address, like Kamailio's pike.
//!
//! - In the call path (`call::shedding`): new requests outside a call (INVITE, REGISTER,
//!   OPTIONS …) over the allowance are dropped unanswered — a scanner or a flood learns
//!   nothing and costs the switch next to nothing. Requests within a call, ACKs and
//!   retransmissions are not counted; trusted peers and carriers are not limited (their
//!   traffic is many callers' at once).
//! - In front of the REST API (`api::fence`): requests over the allowance get 429 with
//!   `Retry-After`.
//!
//! Sans-IO: it takes `now`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Addresses kept at most; past it, those whose allowance is full again are forgotten
/// (they are as good as new).
const MAX_ENTRIES: usize = 100_000;

struct Bucket {
    tokens: f64,
    last: Instant,
    /// Requests dropped since this address went over, if it is over.
    dropping: Option<u64>,
}

/// What the gate says of a new request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Passed, and the address had been over the limit: it dropped this many before.
    Recovered {
        dropped: u64,
    },
    /// Dropped; `first` for the first of a run (worth a log line).
    Drop {
        first: bool,
    },
}

pub struct FloodGate {
    /// New requests per second per address (0: no limit).
    rate: u32,
    buckets: HashMap<IpAddr, Bucket>,
    /// The table is swept for quiet addresses at most once a second.
    next_sweep: Option<Instant>,
}

impl FloodGate {
    pub fn new(rate: u32) -> FloodGate {
        FloodGate {
            rate,
            buckets: HashMap::new(),
            next_sweep: None,
        }
    }

    fn burst(&self) -> f64 {
        f64::from(self.rate) * 2.0
    }

    /// A new request from `ip` at `now`. IPv6 sources count by their /64 (one customer's
    /// network: its addresses are free to pick).
    pub fn admit(&mut self, now: Instant, ip: IpAddr) -> Verdict {
        if self.rate == 0 {
            return Verdict::Pass;
        }
        let ip = source_key(ip);
        if self.buckets.len() >= MAX_ENTRIES && !self.buckets.contains_key(&ip) {
            if self.next_sweep.is_none_or(|at| now >= at) {
                self.forget_quiet(now);
                self.next_sweep = Some(now + Duration::from_secs(1));
            }
            // Still full (every address busy, or between sweeps): one entry makes room,
            // without scanning the table for every request of a flood.
            if self.buckets.len() >= MAX_ENTRIES
                && let Some(old) = self.buckets.keys().next().copied()
            {
                self.buckets.remove(&old);
            }
        }
        let (rate, burst) = (f64::from(self.rate), self.burst());
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            last: now,
            dropping: None,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return match b.dropping.take() {
                Some(dropped) => Verdict::Recovered { dropped },
                None => Verdict::Pass,
            };
        }
        let first = b.dropping.is_none();
        *b.dropping.get_or_insert(0) += 1;
        Verdict::Drop { first }
    }

    /// Forget the addresses whose allowance has filled up again (a source that was being
    /// dropped and has been quiet that long is as good as new too).
    fn forget_quiet(&mut self, now: Instant) {
        let full = Duration::from_secs_f64(self.burst() / f64::from(self.rate.max(1)));
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.last) < full);
    }

    /// Addresses tracked now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// What a source is counted by: an IPv4 address (IPv4-mapped ones included), or an IPv6
/// address's /64.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !u128::from(u64::MAX),
            )),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::NowForTests;

    #[test]
    fn a_source_gets_its_rate_with_a_burst_then_is_dropped_until_it_slows_down() {
        let mut gate = FloodGate::new(10);
        let t0 = Instant::now_for_tests();
        let scanner: IpAddr = "192.0.2.66".parse().unwrap();
        let phone: IpAddr = "192.0.2.7".parse().unwrap();
        // 100 requests in the same instant: the burst (20) passes, the rest is dropped,
        // and only the first drop is worth a log line.
        let verdicts: Vec<_> = (0..100).map(|_| gate.admit(t0, scanner)).collect();
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Pass).count(), 20);
        assert_eq!(verdicts[20], Verdict::Drop { first: true });
        assert_eq!(verdicts[21], Verdict::Drop { first: false });
        // Another address is not affected.
        assert_eq!(gate.admit(t0, phone), Verdict::Pass);
        // A tenth of a second later one more request is allowed: the flood is told so.
        let later = t0 + Duration::from_millis(100);
        assert_eq!(
            gate.admit(later, scanner),
            Verdict::Recovered { dropped: 80 }
        );
        assert_eq!(gate.admit(later, scanner), Verdict::Drop { first: true });
        // Kept below its rate (10 a second), it always passes.
        let mut at = later;
        for _ in 0..50 {
            at += Duration::from_millis(110);
            assert_ne!(
                std::mem::discriminant(&gate.admit(at, scanner)),
                std::mem::discriminant(&Verdict::Drop { first: false })
            );
        }
    }

    #[test]
    fn no_limit_at_zero_and_the_table_stays_bounded() {
        let mut off = FloodGate::new(0);
        let t0 = Instant::now_for_tests();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..1000).all(|_| off.admit(t0, ip) == Verdict::Pass));
        assert!(off.is_empty());

        let mut gate = FloodGate::new(5);
        for i in 0..(MAX_ENTRIES as u32 + 10) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            gate.admit(t0 + Duration::from_millis(u64::from(i / 1000)), ip);
        }
        assert!(gate.len() <= MAX_ENTRIES, "{}", gate.len());
    }

    #[test]
    fn an_ipv6_network_counts_as_one_source() {
        let mut gate = FloodGate::new(1);
        let t0 = Instant::now_for_tests();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(gate.admit(t0, a), Verdict::Pass);
        assert_eq!(gate.admit(t0, b), Verdict::Pass);
        assert_eq!(
            gate.admit(t0, a),
            Verdict::Drop { first: true },
            "the /64's burst (2) is used up"
        );
        assert_eq!(gate.admit(t0, elsewhere), Verdict::Pass);
    }
}
