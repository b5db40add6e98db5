//! The timer table shared by all transactions.
//!
//! Each transaction has at most one timer of each `TimerKind` armed. Arming again replaces
//! the deadline; the heap keeps stale entries, which are skipped when they surface (lazy
//! deletion is cheaper than searching the heap, and a stale entry costs one comparison).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

/// The three timer slots a transaction can use. Which RFC timer a slot stands for depends
/// on the transaction kind (see each kind's file): e.g. `Retransmit` is A, E or G.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    /// A (client INVITE), E (client non-INVITE), G (server INVITE, also 2xx resends).
    Retransmit,
    /// B, F (no final response), H (no ACK), L (Accepted ends).
    Timeout,
    /// D, K, I, J, M: how long a finished transaction absorbs retransmissions.
    Linger,
}

#[derive(Default)]
pub struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, u64, TimerKind)>>,
    armed: HashMap<(u64, TimerKind), Instant>,
}

impl TimerQueue {
    pub fn arm(&mut self, id: u64, kind: TimerKind, at: Instant) {
        self.armed.insert((id, kind), at);
        self.heap.push(Reverse((at, id, kind)));
    }

    pub fn disarm(&mut self, id: u64, kind: TimerKind) {
        self.armed.remove(&(id, kind));
    }

    /// Forget every timer of a finished transaction.
    pub fn forget(&mut self, id: u64) {
        for kind in [TimerKind::Retransmit, TimerKind::Timeout, TimerKind::Linger] {
            self.armed.remove(&(id, kind));
        }
    }

    pub fn next(&self) -> Option<Instant> {
        // Stale entries may make this earlier than needed; the driver then wakes, finds
        // nothing due and sleeps again. Correct, and rare.
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    pub fn pop_due(&mut self, now: Instant) -> Option<(u64, TimerKind)> {
        while let Some(Reverse((at, id, kind))) = self.heap.peek().copied() {
            if at > now {
                return None;
            }
            self.heap.pop();
            if self.armed.get(&(id, kind)) == Some(&at) {
                self.armed.remove(&(id, kind));
                return Some((id, kind));
            }
        }
        None
    }
}
