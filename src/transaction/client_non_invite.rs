//! Non-INVITE client transaction (RFC 3261 17.1.2).
//!
//! Timers: `Retransmit` = E (UDP; doubling up to T2, T2 once a provisional came),
//! `Timeout` = F (64*T1), `Linger` = K (T4 over UDP).

use super::{Effects, Peer, TimerKind, Timers, TxEvent, TxId};
use crate::sip::{Message, OutRequest};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

pub struct ClientNonInvite {
    state: State,
    peer: Peer,
    request: OutRequest,
    bytes: Vec<u8>,
    interval: Duration,
}

impl ClientNonInvite {
    pub fn start(
        now: Instant,
        id: TxId,
        peer: Peer,
        request: OutRequest,
        timers: &Timers,
        fx: &mut Effects,
    ) -> ClientNonInvite {
        let bytes = request.to_bytes();
        fx.send(peer, bytes.clone());
        if !peer.transport.is_reliable() {
            fx.timers.arm(id.0, TimerKind::Retransmit, now + timers.t1);
        }
        fx.timers
            .arm(id.0, TimerKind::Timeout, now + timers.t1 * 64);
        ClientNonInvite {
            state: State::Trying,
            peer,
            request,
            bytes,
            interval: timers.t1,
        }
    }

    pub fn request(&self) -> &OutRequest {
        &self.request
    }

    pub fn peer(&self) -> Peer {
        self.peer
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// The request could not be delivered (RFC 3261 17.1.4): told as a timeout, at once.
    pub fn transport_failed(&mut self, id: TxId, fx: &mut Effects) {
        if matches!(self.state, State::Trying | State::Proceeding) {
            self.state = State::Terminated;
            fx.events.push_back(TxEvent::Timeout { tx: id });
        }
    }

    pub fn handle_response(
        &mut self,
        now: Instant,
        id: TxId,
        resp: Message,
        timers: &Timers,
        fx: &mut Effects,
    ) {
        if !matches!(self.state, State::Trying | State::Proceeding) {
            return;
        }
        let code = resp.status().unwrap_or(0);
        if code < 200 {
            self.state = State::Proceeding;
        } else {
            fx.timers.disarm(id.0, TimerKind::Retransmit);
            fx.timers.disarm(id.0, TimerKind::Timeout);
            if self.peer.transport.is_reliable() {
                self.state = State::Terminated;
            } else {
                self.state = State::Completed;
                fx.timers.arm(id.0, TimerKind::Linger, now + timers.t4);
            }
        }
        fx.events.push_back(TxEvent::Response {
            tx: id,
            response: resp,
        });
    }

    pub fn handle_timer(
        &mut self,
        now: Instant,
        id: TxId,
        kind: TimerKind,
        timers: &Timers,
        fx: &mut Effects,
    ) {
        match (kind, self.state) {
            (TimerKind::Retransmit, State::Trying | State::Proceeding) => {
                fx.send(self.peer, self.bytes.clone());
                self.interval = if self.state == State::Proceeding {
                    timers.t2
                } else {
                    (self.interval * 2).min(timers.t2)
                };
                fx.timers
                    .arm(id.0, TimerKind::Retransmit, now + self.interval);
            }
            (TimerKind::Timeout, State::Trying | State::Proceeding) => {
                self.state = State::Terminated;
                fx.events.push_back(TxEvent::Timeout { tx: id });
            }
            (TimerKind::Linger, State::Completed) => self.state = State::Terminated,
            _ => {}
        }
    }
}
