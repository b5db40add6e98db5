//! Rating: what a call of a given length costs, and how long a call a balance buys.
//!
//! Integer arithmetic only: amounts are in the account's unit (mileage points, or the
//! guild's currency in minor units), durations in whole seconds.

use crate::numbers::DestinationKind;
use serde::Serialize;

/// The price of one destination kind for one kind of account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Tariff {
    pub destination: DestinationKind,
    /// Units per minute of billed time.
    pub per_minute: i64,
    /// The first billing period in seconds ("30" in 30/6).
    pub first_secs: i64,
    /// Every later period in seconds ("6" in 30/6).
    pub increment_secs: i64,
    /// The least an answered call costs (units, connection charge excluded).
    pub minimum: i64,
    /// Charged once per answered call (units).
    pub connection: i64,
}

/// The most any tariff may charge per minute: keeps every product below far from i64::MAX
/// (1e9 units/min × 1e6 s stays under 2^63).
pub const MAX_PER_MINUTE: i64 = 1_000_000_000;

impl Tariff {
    /// Parse "60/60", "30/6", "1/1".
    pub fn parse_increment(s: &str) -> Option<(i64, i64)> {
        let (a, b) = s.split_once('/')?;
        let first: i64 = a.trim().parse().ok()?;
        let next: i64 = b.trim().parse().ok()?;
        (first >= 1 && next >= 1 && first <= 3600 && next <= 3600).then_some((first, next))
    }

    /// Seconds billed for a call that talked `secs` seconds: 0 for an unanswered call,
    /// otherwise the first period and then whole increments.
    pub fn billed_secs(&self, secs: i64) -> i64 {
        if secs <= 0 {
            return 0;
        }
        if secs <= self.first_secs {
            return self.first_secs;
        }
        let rest = secs - self.first_secs;
        let periods = (rest + self.increment_secs - 1) / self.increment_secs;
        self.first_secs + periods * self.increment_secs
    }

    /// What a call that talked `secs` seconds costs.
    pub fn cost(&self, secs: i64) -> i64 {
        let billed = self.billed_secs(secs);
        if billed == 0 {
            return 0;
        }
        // Rounded up to a whole unit: never bill less than the tariff says.
        let time = (self.per_minute * billed + 59) / 60;
        self.connection + time.max(self.minimum)
    }

    /// The longest call (in seconds, on a period boundary) that `available` pays for,
    /// at most `cap` seconds; `None` when not even the first period is affordable.
    pub fn max_secs(&self, available: i64, cap: i64) -> Option<i64> {
        if self.cost(1) > available || cap < 1 {
            return None;
        }
        if self.cost(cap) <= available {
            return Some(cap);
        }
        // cost() is monotonic in secs: binary search the last affordable second, then step
        // back to the period boundary it belongs to (same cost, so still affordable).
        let (mut lo, mut hi) = (1i64, cap);
        while lo < hi {
            let mid = lo + (hi - lo + 1) / 2;
            if self.cost(mid) <= available {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Some(self.billed_secs(lo).min(cap))
    }
}

/// A reservation as settlement needs it: what was held, the longest call it pays for,
/// the tariff it was priced with, and whether a card's call quota rides on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    pub amount: i64,
    pub max_secs: i64,
    pub tariff: Tariff,
    pub card: bool,
}

/// What settling one reservation writes — computed here once, applied as it is by each
/// store (SQLite statements, PostgreSQL's `freecall_apply_settlement`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Posting {
    pub billed_secs: i64,
    /// Debited from the balance out of what was held (0 for an unanswered call).
    pub cost: i64,
    /// Given back: what was held less the cost.
    pub released: i64,
    /// The call was answered: a debit entry is written (even of 0).
    pub debit: bool,
    /// Card calls each entry counts: the debit carries the card's call, or — unanswered —
    /// the release gives it back.
    pub debit_calls: i64,
    pub release_calls: i64,
    /// Calls of the card's quota used (1: an answered card call).
    pub quota_used: i64,
}

impl Held {
    /// Settle a call that talked `talk_secs` (answered or not): billed by the tariff it
    /// was priced with, never beyond the time held nor more than the amount held.
    pub fn settle(&self, talk_secs: i64, answered: bool) -> Posting {
        let talk = if answered {
            talk_secs.min(self.max_secs)
        } else {
            0
        };
        let billed_secs = self.tariff.billed_secs(talk);
        let cost = self.tariff.cost(talk).min(self.amount);
        let card = i64::from(self.card);
        Posting {
            billed_secs,
            cost,
            released: self.amount - cost,
            debit: answered,
            debit_calls: card,
            release_calls: if answered { 0 } else { card },
            quota_used: if answered { card } else { 0 },
        }
    }
}

/// The longest call (in seconds, at most `cap`) that `available` pays for when every
/// tariff of `legs` bills the same seconds: a call-back's two legs, each at the rate of its
/// own kind of number. `None` when not even the first second of every leg is affordable.
pub fn max_secs_together(legs: &[Tariff], available: i64, cap: i64) -> Option<i64> {
    let cost = |secs: i64| legs.iter().map(|t| t.cost(secs)).sum::<i64>();
    if legs.is_empty() || cap < 1 || cost(1) > available {
        return None;
    }
    if cost(cap) <= available {
        return Some(cap);
    }
    // The sum of monotonic costs is monotonic: binary search the last affordable second.
    let (mut lo, mut hi) = (1i64, cap);
    while lo < hi {
        let mid = lo + (hi - lo + 1) / 2;
        if cost(mid) <= available {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settlement_bills_by_the_held_tariff_within_what_was_held() {
        let held = Held {
            amount: 300,
            max_secs: 180,
            tariff: Tariff {
                connection: 5,
                minimum: 20,
                ..t(60, 30, 6)
            },
            card: true,
        };
        // 31 s → 36 s billed, 36 units, plus the connection.
        let p = held.settle(31, true);
        assert_eq!((p.billed_secs, p.cost, p.released), (36, 41, 259));
        assert_eq!(
            (p.debit, p.debit_calls, p.release_calls, p.quota_used),
            (true, 1, 0, 1)
        );
        // 10 s → the first period (30 units, above the minimum of 20), and the connection.
        assert_eq!(held.settle(10, true).cost, 35);
        // Past the time held (a late settlement): billed up to max_secs, never more than held.
        let p = held.settle(10_000, true);
        assert_eq!((p.billed_secs, p.cost, p.released), (180, 185, 115));
        let rich = Held {
            amount: 100,
            ..held
        };
        assert_eq!(rich.settle(10_000, true).cost, 100);
        // Unanswered: nothing billed, everything back, the card's call given back.
        let p = held.settle(50, false);
        assert_eq!(
            (p.billed_secs, p.cost, p.released, p.debit),
            (0, 0, 300, false)
        );
        assert_eq!((p.debit_calls, p.release_calls, p.quota_used), (1, 1, 0));
        let account = Held {
            card: false,
            ..held
        }
        .settle(31, true);
        assert_eq!(
            (
                account.debit_calls,
                account.release_calls,
                account.quota_used
            ),
            (0, 0, 0)
        );
    }

    fn t(per_minute: i64, first: i64, inc: i64) -> Tariff {
        Tariff {
            destination: DestinationKind::Mobile,
            per_minute,
            first_secs: first,
            increment_secs: inc,
            minimum: 0,
            connection: 0,
        }
    }

    #[test]
    fn increments_round_up() {
        let m = t(60, 60, 60);
        assert_eq!(m.billed_secs(0), 0);
        assert_eq!(m.billed_secs(1), 60);
        assert_eq!(m.billed_secs(61), 120);
        assert_eq!(m.cost(61), 120);
        let s = t(120, 30, 6);
        assert_eq!(s.billed_secs(31), 36);
        assert_eq!(s.cost(31), 72);
        let one = t(100, 1, 1);
        assert_eq!(one.cost(7), 12); // 700/60 = 11.67 → 12
    }

    #[test]
    fn minimum_and_connection_charge() {
        let mut x = t(60, 1, 1);
        x.minimum = 30;
        x.connection = 5;
        assert_eq!(x.cost(0), 0, "unanswered calls cost nothing");
        assert_eq!(x.cost(10), 35);
        assert_eq!(x.cost(100), 105);
    }

    #[test]
    fn the_longest_affordable_call() {
        let m = t(100, 60, 60);
        assert_eq!(m.max_secs(99, 7200), None, "not even the first minute");
        assert_eq!(m.max_secs(100, 7200), Some(60));
        assert_eq!(m.max_secs(350, 7200), Some(180));
        assert_eq!(m.max_secs(1_000_000, 7200), Some(7200), "capped");
        let s = t(120, 30, 6);
        let secs = s.max_secs(100, 7200).unwrap();
        assert!(s.cost(secs) <= 100 && s.cost(secs + 1) > 100, "{secs}");
        let free = t(0, 60, 60);
        assert_eq!(free.max_secs(0, 3600), Some(3600));
    }

    #[test]
    fn increments_parse() {
        assert_eq!(Tariff::parse_increment("30/6"), Some((30, 6)));
        assert_eq!(Tariff::parse_increment("0/6"), None);
        assert_eq!(Tariff::parse_increment("60"), None);
    }

    #[test]
    fn two_legs_together_never_cost_more_than_the_balance() {
        let landline = t(60, 60, 60);
        let mobile = t(120, 30, 6);
        for available in [0, 59, 60, 179, 180, 1000, 12345] {
            match max_secs_together(&[landline, mobile], available, 3600) {
                None => assert!(landline.cost(1) + mobile.cost(1) > available),
                Some(s) => {
                    assert!(
                        landline.cost(s) + mobile.cost(s) <= available,
                        "{available}"
                    );
                    if s < 3600 {
                        assert!(landline.cost(s + 1) + mobile.cost(s + 1) > available);
                    }
                }
            }
        }
    }
}
