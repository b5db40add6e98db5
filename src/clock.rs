//! The one place that reads the clock.
//!
//! Protocol state machines take `now` as an argument; only the drivers (sockets, media
//! tasks, the daemon's main loop) ask this module for it. `clippy.toml` forbids
//! `Instant::now` and `SystemTime::now` everywhere else.

use std::time::{Instant, SystemTime};

/// Monotonic time for timers.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Instant {
    Instant::now()
}

/// Wall-clock time, for records a person reads.
#[allow(clippy::disallowed_methods)]
pub fn wall() -> SystemTime {
    SystemTime::now()
}

/// Tests start their simulated clock from a real instant (an `Instant` cannot be built
/// from nothing); after that they only add durations to it.
pub trait NowForTests {
    fn now_for_tests() -> Self;
}

impl NowForTests for Instant {
    fn now_for_tests() -> Instant {
        now()
    }
}

/// Wall-clock milliseconds since the Unix epoch: what the ledger, reservations and
/// heartbeats store (they must mean the same on every node and after a restart).
pub fn unix_ms() -> i64 {
    wall()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
