//! Non-INVITE server transaction (RFC 3261 17.2.2).
//!
//! Timer: `Linger` = J (64*T1 over UDP) absorbing request retransmissions after the final
//! response. There is nothing to retransmit on our own: the client drives this one.

use super::{Effects, Peer, TimerKind, Timers, TxId};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

pub struct ServerNonInvite {
    state: State,
    peer: Peer,
    last: Option<Vec<u8>>,
}

impl ServerNonInvite {
    pub fn start(peer: Peer) -> ServerNonInvite {
        ServerNonInvite {
            state: State::Trying,
            peer,
            last: None,
        }
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    pub fn handle_retransmission(&mut self, fx: &mut Effects) {
        if let Some(last) = &self.last {
            fx.send(self.peer, last.clone());
        }
    }

    pub fn send_response(
        &mut self,
        now: Instant,
        id: TxId,
        code: u16,
        bytes: Vec<u8>,
        timers: &Timers,
        fx: &mut Effects,
    ) {
        if !matches!(self.state, State::Trying | State::Proceeding) {
            return;
        }
        fx.send(self.peer, bytes.clone());
        self.last = Some(bytes);
        if code < 200 {
            self.state = State::Proceeding;
        } else if self.peer.transport.is_reliable() {
            self.state = State::Terminated;
        } else {
            self.state = State::Completed;
            fx.timers.arm(id.0, TimerKind::Linger, now + timers.t1 * 64);
        }
    }

    pub fn handle_timer(&mut self, kind: TimerKind) {
        if kind == TimerKind::Linger && self.state == State::Completed {
            self.state = State::Terminated;
        }
    }
}
