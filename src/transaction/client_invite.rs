//! INVITE client transaction (RFC 3261 17.1.1, with RFC 6026's Accepted state).
//!
//! Timers: `Retransmit` = A (UDP only, doubling), `Timeout` = B (64*T1, only while no
//! response at all has come — after a provisional the call layer decides how long to ring),
//! `Linger` = D (32 s over UDP, to re-ACK retransmitted failures) or M (64*T1 in Accepted).

use super::{Effects, Peer, TimerKind, Timers, TxEvent, TxId};
use crate::sip::{Message, OutRequest};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Calling,
    Proceeding,
    Accepted,
    Completed,
    Terminated,
}

pub struct ClientInvite {
    state: State,
    peer: Peer,
    request: OutRequest,
    bytes: Vec<u8>,
    interval: Duration,
    /// The ACK for a failure response, kept to answer its retransmissions.
    ack: Option<Vec<u8>>,
}

impl ClientInvite {
    pub fn start(
        now: Instant,
        id: TxId,
        peer: Peer,
        request: OutRequest,
        timers: &Timers,
        fx: &mut Effects,
    ) -> ClientInvite {
        let bytes = request.to_bytes();
        fx.send(peer, bytes.clone());
        if !peer.transport.is_reliable() {
            fx.timers.arm(id.0, TimerKind::Retransmit, now + timers.t1);
        }
        fx.timers
            .arm(id.0, TimerKind::Timeout, now + timers.t1 * 64);
        ClientInvite {
            state: State::Calling,
            peer,
            request,
            bytes,
            interval: timers.t1,
            ack: None,
        }
    }

    pub fn peer(&self) -> Peer {
        self.peer
    }

    pub fn request(&self) -> &OutRequest {
        &self.request
    }

    /// Still waiting for a final response (a CANCEL makes sense).
    pub fn is_pending(&self) -> bool {
        matches!(self.state, State::Calling | State::Proceeding)
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// The request could not be delivered (RFC 3261 17.1.4: the connection could not be
    /// opened): told as a timeout, at once, when no final response came yet.
    pub fn transport_failed(&mut self, id: TxId, fx: &mut Effects) {
        if self.is_pending() {
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
        let code = resp.status().unwrap_or(0);
        match self.state {
            State::Calling | State::Proceeding => {
                fx.timers.disarm(id.0, TimerKind::Retransmit);
                if code < 200 {
                    self.state = State::Proceeding;
                    fx.timers.disarm(id.0, TimerKind::Timeout);
                } else if code < 300 {
                    self.state = State::Accepted;
                    fx.timers.disarm(id.0, TimerKind::Timeout);
                    fx.timers.arm(id.0, TimerKind::Linger, now + timers.t1 * 64);
                } else {
                    fx.timers.disarm(id.0, TimerKind::Timeout);
                    let ack = self.request.ack_for_failure(&resp.to).to_bytes();
                    fx.send(self.peer, ack.clone());
                    self.ack = Some(ack);
                    if self.peer.transport.is_reliable() {
                        self.state = State::Terminated;
                    } else {
                        self.state = State::Completed;
                        fx.timers
                            .arm(id.0, TimerKind::Linger, now + Duration::from_secs(32));
                    }
                }
                fx.events.push_back(TxEvent::Response {
                    tx: id,
                    response: resp,
                });
            }
            // A retransmitted 2xx: the transaction user must ACK it again.
            State::Accepted if (200..300).contains(&code) => {
                fx.events.push_back(TxEvent::Response {
                    tx: id,
                    response: resp,
                });
            }
            State::Completed if code >= 300 => {
                if let Some(ack) = &self.ack {
                    fx.send(self.peer, ack.clone());
                }
            }
            _ => {}
        }
    }

    pub fn handle_timer(
        &mut self,
        now: Instant,
        id: TxId,
        kind: TimerKind,
        _timers: &Timers,
        fx: &mut Effects,
    ) {
        match (kind, self.state) {
            (TimerKind::Retransmit, State::Calling) => {
                fx.send(self.peer, self.bytes.clone());
                self.interval *= 2;
                fx.timers
                    .arm(id.0, TimerKind::Retransmit, now + self.interval);
            }
            (TimerKind::Timeout, State::Calling | State::Proceeding) => {
                self.state = State::Terminated;
                fx.events.push_back(TxEvent::Timeout { tx: id });
            }
            (TimerKind::Linger, State::Completed | State::Accepted) => {
                self.state = State::Terminated;
            }
            _ => {}
        }
    }
}
