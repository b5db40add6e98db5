//! The one place that reads the clock.
//!
//! Protocol state machines take `now` as an argument. Everything else that needs the time
//! holds a [`Clock`]: one handle, made in `main` and given to the store (and through it to
//! accounting, placing, the web pages and the API), the driver and media. A test makes an
//! adjustable clock and moves it forward instead of sleeping; every holder sees the jump at
//! once (call durations, reservations, heartbeats, booking times, recordings).
//! `clippy.toml` forbids `Instant::now` and `SystemTime::now` everywhere else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// The switch's clock. `Clock::system()` (the default) reads the machine's clocks;
/// `Clock::adjustable()` reads them plus however far a test has moved it forward.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Nanoseconds this clock runs ahead of the machine's (tests only).
    ahead: Option<Arc<AtomicU64>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock a test moves forward with [`Clock::advance`]; it starts at the machine's
    /// time and keeps running with it.
    pub fn adjustable() -> Clock {
        Clock {
            ahead: Some(Arc::new(AtomicU64::new(0))),
        }
    }

    /// Move an adjustable clock forward (a test's "time passes"). The system clock cannot
    /// be moved: asking is a mistake in the test.
    pub fn advance(&self, by: Duration) {
        let ahead = self
            .ahead
            .as_ref()
            .expect("only an adjustable clock can be moved forward");
        ahead.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }

    fn ahead(&self) -> Duration {
        self.ahead
            .as_ref()
            .map(|a| Duration::from_nanos(a.load(Ordering::SeqCst)))
            .unwrap_or_default()
    }

    /// Monotonic time, for timers and durations.
    pub fn now(&self) -> Instant {
        machine_now() + self.ahead()
    }

    /// Wall-clock time, for records a person reads.
    pub fn wall(&self) -> SystemTime {
        machine_wall() + self.ahead()
    }

    /// Wall-clock milliseconds since the Unix epoch: what the ledger, reservations and
    /// heartbeats store (they must mean the same on every node and after a restart).
    pub fn unix_ms(&self) -> i64 {
        self.wall()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    /// The tokio instant at which this clock will read `at`: timers sleep on the machine's
    /// time, so an adjustable clock that was moved forward fires them that much sooner.
    pub fn timer_at(&self, at: Instant) -> tokio::time::Instant {
        let machine = at.checked_sub(self.ahead()).unwrap_or_else(machine_now);
        tokio::time::Instant::from_std(machine)
    }
}

/// How long a piece of work took, on the machine's clock whatever the switch's clock says
/// (for latency metrics and logs).
pub struct Stopwatch(Instant);

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch(machine_now())
    }

    pub fn elapsed(&self) -> Duration {
        machine_now().saturating_duration_since(self.0)
    }
}

/// How long ago the kernel stamped a datagram it received (`secs`, `nanos` since the Unix
/// epoch, on the machine's wall clock whatever the switch's clock says): how long it
/// waited in the socket's queue. Zero for a stamp from the future.
pub fn since_kernel_stamp(secs: i64, nanos: i64) -> Duration {
    let stamp = Duration::new(secs.max(0) as u64, nanos.clamp(0, 999_999_999) as u32);
    machine_wall()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|now| now.saturating_sub(stamp))
        .unwrap_or_default()
}

#[allow(clippy::disallowed_methods)]
fn machine_now() -> Instant {
    Instant::now()
}

#[allow(clippy::disallowed_methods)]
fn machine_wall() -> SystemTime {
    SystemTime::now()
}

/// Tests start their simulated clock from a real instant (an `Instant` cannot be built
/// from nothing); after that they only add durations to it.
pub trait NowForTests {
    fn now_for_tests() -> Self;
}

impl NowForTests for Instant {
    fn now_for_tests() -> Instant {
        machine_now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adjustable_clock_moves_forward_for_every_holder_and_fires_timers_sooner() {
        let clock = Clock::adjustable();
        let holder = clock.clone();
        let (t0, ms0) = (holder.now(), holder.unix_ms());
        clock.advance(Duration::from_secs(90));
        assert!(holder.now() - t0 >= Duration::from_secs(90));
        assert!((90_000..91_000).contains(&(holder.unix_ms() - ms0)));
        // A timer due 30 s from the clock's now sleeps about 30 s of the machine's time.
        let due = holder.timer_at(holder.now() + Duration::from_secs(30));
        let machine = tokio::time::Instant::from_std(machine_now());
        let wait = due.saturating_duration_since(machine);
        assert!(wait > Duration::from_secs(29) && wait <= Duration::from_secs(30));
    }

    #[test]
    #[should_panic(expected = "only an adjustable clock")]
    fn the_system_clock_cannot_be_moved() {
        Clock::system().advance(Duration::from_secs(1));
    }
}
