//! INVITE server transaction (RFC 3261 17.2.1, with RFC 6026's Accepted state).
//!
//! Timers: `Retransmit` = G (resend a failure response over UDP until the ACK; here also
//! the 2xx resends of RFC 3261 13.3.1.4, until the transaction user reports the ACK),
//! `Timeout` = H (64*T1 waiting for the ACK of a failure) or L (64*T1 in Accepted),
//! `Linger` = I (T4 absorbing ACK retransmissions over UDP).

use super::{Effects, Peer, TimerKind, Timers, TxEvent, TxId};
use crate::sip::{Builder, Message};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

pub struct ServerInvite {
    state: State,
    peer: Peer,
    /// The last response sent, resent on retransmitted INVITEs and by Timer G.
    last: Vec<u8>,
    interval: Duration,
    acked: bool,
}

impl ServerInvite {
    /// Creating the transaction answers 100 Trying at once (RFC 3261 17.2.1 allows it and
    /// it stops the caller's INVITE retransmissions while the B-leg is set up).
    pub fn start(
        _now: Instant,
        _id: TxId,
        peer: Peer,
        req: &Message,
        timers: &Timers,
        fx: &mut Effects,
    ) -> ServerInvite {
        let trying = Builder::response_to(req, 100, "Trying", None).finish(None, &[]);
        fx.send(peer, trying.clone());
        ServerInvite {
            state: State::Proceeding,
            peer,
            last: trying,
            interval: timers.t1,
            acked: false,
        }
    }

    pub fn is_proceeding(&self) -> bool {
        self.state == State::Proceeding
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    pub fn handle_retransmission(&mut self, fx: &mut Effects) {
        if matches!(
            self.state,
            State::Proceeding | State::Completed | State::Accepted
        ) {
            fx.send(self.peer, self.last.clone());
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
        match self.state {
            State::Proceeding => {
                fx.send(self.peer, bytes.clone());
                self.last = bytes;
                if code < 200 {
                    return;
                }
                self.interval = timers.t1;
                if !self.peer.transport.is_reliable() {
                    fx.timers.arm(id.0, TimerKind::Retransmit, now + timers.t1);
                }
                fx.timers
                    .arm(id.0, TimerKind::Timeout, now + timers.t1 * 64);
                self.state = if code < 300 {
                    State::Accepted
                } else {
                    State::Completed
                };
            }
            State::Accepted if (200..300).contains(&code) => {
                fx.send(self.peer, bytes.clone());
                self.last = bytes;
            }
            _ => {}
        }
    }

    /// An ACK with this transaction's branch. Returns false when the transaction user must
    /// see it (an ACK for our 2xx that reused the INVITE's branch).
    pub fn handle_ack(
        &mut self,
        now: Instant,
        id: TxId,
        timers: &Timers,
        fx: &mut Effects,
    ) -> bool {
        match self.state {
            State::Completed => {
                fx.timers.disarm(id.0, TimerKind::Retransmit);
                fx.timers.disarm(id.0, TimerKind::Timeout);
                if self.peer.transport.is_reliable() {
                    self.state = State::Terminated;
                } else {
                    self.state = State::Confirmed;
                    fx.timers.arm(id.0, TimerKind::Linger, now + timers.t4);
                }
                true
            }
            State::Accepted => false,
            _ => true,
        }
    }

    pub fn ack_received(&mut self) {
        self.acked = true;
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
            (TimerKind::Retransmit, State::Completed) => {
                fx.send(self.peer, self.last.clone());
                self.interval = (self.interval * 2).min(timers.t2);
                fx.timers
                    .arm(id.0, TimerKind::Retransmit, now + self.interval);
            }
            (TimerKind::Retransmit, State::Accepted) if !self.acked => {
                fx.send(self.peer, self.last.clone());
                self.interval = (self.interval * 2).min(timers.t2);
                fx.timers
                    .arm(id.0, TimerKind::Retransmit, now + self.interval);
            }
            (TimerKind::Timeout, State::Completed) => self.state = State::Terminated,
            (TimerKind::Timeout, State::Accepted) => {
                if !self.acked {
                    fx.events.push_back(TxEvent::AckTimeout { tx: id });
                }
                self.state = State::Terminated;
            }
            (TimerKind::Linger, State::Confirmed) => self.state = State::Terminated,
            _ => {}
        }
    }
}
