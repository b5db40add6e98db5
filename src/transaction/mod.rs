//! RFC 3261 transactions (section 17), sans-IO.
//!
//! `TransactionLayer` takes parsed messages and timer firings with the current time and
//! queues what to send (`poll_transmit`) and what the transaction user must know
//! (`poll_event`). It never reads the clock and never touches a socket, so whole call flows
//! — Timer B's 32 seconds included — run in tests without sleeping.
//!
//! Each transaction kind has its own state enum in its own file; impossible states such as
//! "a non-INVITE client transaction waiting for an ACK" cannot be written down.
//!
//! Two extensions over RFC 3261, both from RFC 6026: INVITE transactions have an
//! `Accepted` state that absorbs retransmitted 2xx/INVITEs, and the server INVITE
//! transaction retransmits its 2xx until the transaction user reports the ACK
//! (`ack_received`) — the retransmission logic then lives in one place.

mod client_invite;
mod client_non_invite;
mod server_invite;
mod server_non_invite;
mod timer;

use crate::sip::{Builder, Message, Method, OutRequest, Transport};
use client_invite::ClientInvite;
use client_non_invite::ClientNonInvite;
use rand::{Rng, SeedableRng, rngs::SmallRng};
use server_invite::ServerInvite;
use server_non_invite::ServerNonInvite;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
pub use timer::TimerKind;
use timer::TimerQueue;

/// Where a message came from or must go: a transport and an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// Bytes to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub transport: Transport,
    pub dest: SocketAddr,
    pub bytes: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub u64);

/// RFC 3261 timer values (table 4). Configurable so that tests and lossy links can tune them.
#[derive(Clone, Copy, Debug)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// What the transaction user (the call layer) must handle.
#[derive(Debug)]
pub enum TxEvent {
    /// A new request. `tx` is `None` for an ACK to a 2xx (it belongs to no transaction).
    /// `local_tag` is a fresh tag the transaction user should use as its To tag.
    Request {
        tx: Option<TxId>,
        request: Message,
        from: Peer,
        local_tag: String,
    },
    /// A response to a request the transaction user sent (1xx, 2xx — including 2xx
    /// retransmissions, which must be ACKed again — and the first non-2xx final).
    Response { tx: TxId, response: Message },
    /// A CANCEL matched this INVITE server transaction; the CANCEL has been answered 200.
    Cancelled { invite: TxId },
    /// A client transaction got no final response (Timer B or F).
    Timeout { tx: TxId },
    /// Our 2xx to an INVITE was never acknowledged (64*T1).
    AckTimeout { tx: TxId },
}

/// Server transaction key (RFC 3261 17.2.3): branch, sent-by, method (ACK matches INVITE).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ServerKey {
    branch: String,
    sent_by: String,
    method: Method,
}

/// Client transaction key (RFC 3261 17.1.3): branch and CSeq method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ClientKey {
    branch: String,
    method: Method,
}

enum ServerTx {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

enum ClientTx {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

/// Queues shared by every transaction: what to send, what to tell, which timers to arm.
pub(crate) struct Effects {
    transmits: VecDeque<Transmit>,
    events: VecDeque<TxEvent>,
    timers: TimerQueue,
}

impl Effects {
    fn send(&mut self, peer: Peer, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit {
            transport: peer.transport,
            dest: peer.addr,
            bytes,
        });
    }
}

pub struct TransactionLayer {
    timers: Timers,
    server: HashMap<TxId, (ServerKey, ServerTx)>,
    client: HashMap<TxId, (ClientKey, ClientTx)>,
    server_keys: HashMap<ServerKey, TxId>,
    client_keys: HashMap<ClientKey, TxId>,
    fx: Effects,
    next_id: u64,
    /// Seeded, so that tags and branches are byte-stable in tests.
    rng: SmallRng,
}

impl TransactionLayer {
    pub fn new(timers: Timers, seed: u64) -> TransactionLayer {
        TransactionLayer {
            timers,
            server: HashMap::new(),
            client: HashMap::new(),
            server_keys: HashMap::new(),
            client_keys: HashMap::new(),
            fx: Effects {
                transmits: VecDeque::new(),
                events: VecDeque::new(),
                timers: TimerQueue::default(),
            },
            next_id: 1,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    pub fn timers(&self) -> Timers {
        self.timers
    }

    /// A random token for tags and Call-IDs.
    pub fn new_token(&mut self) -> String {
        format!("{:016x}", self.rng.next_u64())
    }

    /// A branch with the RFC 3261 magic cookie and our loop-detection marker.
    pub fn new_branch(&mut self) -> String {
        format!("{}{:016x}", crate::sip::BRANCH_PREFIX, self.rng.next_u64())
    }

    fn alloc_id(&mut self) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        id
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.fx.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.fx.events.pop_front()
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        self.fx.timers.next()
    }

    /// Number of live transactions (for metrics and leak tests).
    pub fn len(&self) -> usize {
        self.server.len() + self.client.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Send bytes outside any transaction: the ACK for a 2xx, stateless replies.
    pub fn send_stateless(&mut self, peer: Peer, bytes: Vec<u8>) {
        self.fx.send(peer, bytes);
    }

    /// Whether request `req` belongs to a transaction the layer holds: a retransmission,
    /// the ACK or CANCEL of a held INVITE (what a cap on new transactions must let pass).
    pub fn holds(&self, req: &Message) -> bool {
        let method = req.method().cloned().unwrap_or(Method::Ack);
        let key = ServerKey {
            branch: req.branch.clone(),
            sent_by: req.sent_by.clone(),
            method: match method {
                Method::Ack | Method::Cancel => Method::Invite,
                m => m,
            },
        };
        self.server_keys.contains_key(&key)
    }

    /// Feed a parsed message that arrived from `from`.
    pub fn handle_message(&mut self, now: Instant, from: Peer, msg: Message) {
        if msg.is_request() {
            self.handle_request(now, from, msg)
        } else {
            self.handle_response(now, msg)
        }
    }

    fn handle_request(&mut self, now: Instant, from: Peer, req: Message) {
        // Cannot fail: is_request() was checked by the caller.
        let method = req.method().cloned().unwrap_or(Method::Ack);
        let key_method = if method == Method::Ack {
            Method::Invite
        } else {
            method.clone()
        };
        let key = ServerKey {
            branch: req.branch.clone(),
            sent_by: req.sent_by.clone(),
            method: key_method,
        };
        if let Some(id) = self.server_keys.get(&key).copied() {
            let timers = self.timers;
            if let Some((_, tx)) = self.server.get_mut(&id) {
                match (tx, method == Method::Ack) {
                    (ServerTx::Invite(t), true) => {
                        if !t.handle_ack(now, id, &timers, &mut self.fx) {
                            // An ACK for our 2xx that reuses the INVITE's branch
                            // (RFC 2543 style): the transaction user needs it.
                            let local_tag = String::new();
                            self.fx.events.push_back(TxEvent::Request {
                                tx: None,
                                request: req,
                                from,
                                local_tag,
                            });
                        }
                    }
                    (ServerTx::Invite(t), false) => t.handle_retransmission(&mut self.fx),
                    (ServerTx::NonInvite(t), _) => t.handle_retransmission(&mut self.fx),
                }
            }
            return;
        }
        match method {
            Method::Ack => {
                self.fx.events.push_back(TxEvent::Request {
                    tx: None,
                    request: req,
                    from,
                    local_tag: String::new(),
                });
            }
            Method::Cancel => self.handle_cancel(now, from, key, req),
            Method::Invite => {
                let id = self.alloc_id();
                let local_tag = self.new_token();
                let t = ServerInvite::start(now, id, from, &req, &self.timers, &mut self.fx);
                self.server_keys.insert(key.clone(), id);
                self.server.insert(id, (key, ServerTx::Invite(t)));
                self.fx.events.push_back(TxEvent::Request {
                    tx: Some(id),
                    request: req,
                    from,
                    local_tag,
                });
            }
            _ => {
                let id = self.alloc_id();
                let local_tag = self.new_token();
                let t = ServerNonInvite::start(from);
                self.server_keys.insert(key.clone(), id);
                self.server.insert(id, (key, ServerTx::NonInvite(t)));
                self.fx.events.push_back(TxEvent::Request {
                    tx: Some(id),
                    request: req,
                    from,
                    local_tag,
                });
            }
        }
    }

    /// RFC 3261 9.2: a CANCEL is answered by its own transaction; the INVITE it names gets
    /// a 487 from the transaction user.
    fn handle_cancel(&mut self, now: Instant, from: Peer, key: ServerKey, req: Message) {
        let invite_key = ServerKey {
            method: Method::Invite,
            ..key.clone()
        };
        let invite = self.server_keys.get(&invite_key).copied();
        let id = self.alloc_id();
        let mut t = ServerNonInvite::start(from);
        let (code, phrase) = if invite.is_some() {
            (200, "OK")
        } else {
            (481, "Call/Transaction Does Not Exist")
        };
        let tag = self.new_token();
        let bytes = Builder::response_to(&req, code, phrase, Some(&tag)).finish(None, &[]);
        t.send_response(now, id, code, bytes, &self.timers, &mut self.fx);
        self.server_keys.insert(key.clone(), id);
        self.server.insert(id, (key, ServerTx::NonInvite(t)));
        if let Some(invite) = invite
            && let Some((_, ServerTx::Invite(inv))) = self.server.get(&invite)
            && inv.is_proceeding()
        {
            self.fx.events.push_back(TxEvent::Cancelled { invite });
        }
    }

    fn handle_response(&mut self, now: Instant, resp: Message) {
        let key = ClientKey {
            branch: resp.branch.clone(),
            method: resp.cseq_method.clone(),
        };
        // A response matching no transaction is a stray: dropped (RFC 3261 17.1.3).
        let Some(id) = self.client_keys.get(&key).copied() else {
            return;
        };
        let timers = self.timers;
        if let Some((_, tx)) = self.client.get_mut(&id) {
            match tx {
                ClientTx::Invite(t) => t.handle_response(now, id, resp, &timers, &mut self.fx),
                ClientTx::NonInvite(t) => t.handle_response(now, id, resp, &timers, &mut self.fx),
            }
        }
        self.reap_client(id);
    }

    /// Start a client transaction for `req` (any method but ACK).
    pub fn send_request(&mut self, now: Instant, peer: Peer, req: OutRequest) -> TxId {
        let id = self.alloc_id();
        let key = ClientKey {
            branch: req.branch.clone(),
            method: req.method.clone(),
        };
        let tx = if req.method == Method::Invite {
            ClientTx::Invite(ClientInvite::start(
                now,
                id,
                peer,
                req,
                &self.timers,
                &mut self.fx,
            ))
        } else {
            ClientTx::NonInvite(ClientNonInvite::start(
                now,
                id,
                peer,
                req,
                &self.timers,
                &mut self.fx,
            ))
        };
        self.client_keys.insert(key.clone(), id);
        self.client.insert(id, (key, tx));
        id
    }

    /// Send a CANCEL for a pending client INVITE transaction. Returns the CANCEL's own
    /// transaction, or `None` if the INVITE is gone or already has a final response.
    pub fn send_cancel(&mut self, now: Instant, invite: TxId) -> Option<TxId> {
        let (peer, cancel) = match self.client.get(&invite) {
            Some((_, ClientTx::Invite(t))) if t.is_pending() => (t.peer(), t.request().cancel()),
            _ => return None,
        };
        Some(self.send_request(now, peer, cancel))
    }

    /// The request a client transaction was started with.
    pub fn client_request(&self, tx: TxId) -> Option<&OutRequest> {
        match self.client.get(&tx) {
            Some((_, ClientTx::Invite(t))) => Some(t.request()),
            Some((_, ClientTx::NonInvite(t))) => Some(t.request()),
            None => None,
        }
    }

    /// Where a client transaction sends its request.
    pub fn client_peer(&self, tx: TxId) -> Option<Peer> {
        match self.client.get(&tx) {
            Some((_, ClientTx::Invite(t))) => Some(t.peer()),
            Some((_, ClientTx::NonInvite(t))) => Some(t.peer()),
            None => None,
        }
    }

    /// Answer a server transaction. Responses to finished transactions are ignored.
    pub fn send_response(&mut self, now: Instant, tx: TxId, code: u16, bytes: Vec<u8>) {
        let timers = self.timers;
        if let Some((_, t)) = self.server.get_mut(&tx) {
            match t {
                ServerTx::Invite(t) => t.send_response(now, tx, code, bytes, &timers, &mut self.fx),
                ServerTx::NonInvite(t) => {
                    t.send_response(now, tx, code, bytes, &timers, &mut self.fx)
                }
            }
        }
        self.reap_server(tx);
    }

    /// The transaction user matched an ACK to the 2xx this INVITE transaction sent.
    pub fn ack_received(&mut self, tx: TxId) {
        if let Some((_, ServerTx::Invite(t))) = self.server.get_mut(&tx) {
            t.ack_received();
        }
    }

    /// The dialog an INVITE's 2xx made is over (a BYE came before the ACK, which a proxy
    /// in front may well deliver in that order): the 2xx is not sent again. A late ACK
    /// or a retransmitted INVITE is still absorbed until Timer L.
    pub fn dialog_ended(&mut self, tx: TxId) {
        self.ack_received(tx);
    }

    /// Nothing can be sent to `peer` (a TCP or TLS connection to it could not be opened,
    /// or its certificate was not trusted): every client transaction still waiting on it
    /// ends with `TxEvent::Timeout` at once (RFC 3261 17.1.4), so the transaction user
    /// fails over without waiting for Timer B or F.
    pub fn transport_failed(&mut self, peer: Peer) {
        let failed: Vec<TxId> = self
            .client
            .iter()
            .filter(|(_, (_, tx))| match tx {
                ClientTx::Invite(t) => t.peer() == peer,
                ClientTx::NonInvite(t) => t.peer() == peer,
            })
            .map(|(id, _)| *id)
            .collect();
        for id in failed {
            if let Some((_, tx)) = self.client.get_mut(&id) {
                match tx {
                    ClientTx::Invite(t) => t.transport_failed(id, &mut self.fx),
                    ClientTx::NonInvite(t) => t.transport_failed(id, &mut self.fx),
                }
            }
            self.reap_client(id);
        }
    }

    /// Fire every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let timers = self.timers;
        while let Some((id, kind)) = self.fx.timers.pop_due(now) {
            let id = TxId(id);
            if let Some((_, tx)) = self.server.get_mut(&id) {
                match tx {
                    ServerTx::Invite(t) => t.handle_timer(now, id, kind, &timers, &mut self.fx),
                    ServerTx::NonInvite(t) => t.handle_timer(kind),
                }
                self.reap_server(id);
            } else if let Some((_, tx)) = self.client.get_mut(&id) {
                match tx {
                    ClientTx::Invite(t) => t.handle_timer(now, id, kind, &timers, &mut self.fx),
                    ClientTx::NonInvite(t) => t.handle_timer(now, id, kind, &timers, &mut self.fx),
                }
                self.reap_client(id);
            }
        }
    }

    fn reap_server(&mut self, id: TxId) {
        let done = match self.server.get(&id) {
            Some((_, ServerTx::Invite(t))) => t.is_terminated(),
            Some((_, ServerTx::NonInvite(t))) => t.is_terminated(),
            None => false,
        };
        if done {
            if let Some((key, _)) = self.server.remove(&id) {
                self.server_keys.remove(&key);
            }
            self.fx.timers.forget(id.0);
        }
    }

    fn reap_client(&mut self, id: TxId) {
        let done = match self.client.get(&id) {
            Some((_, ClientTx::Invite(t))) => t.is_terminated(),
            Some((_, ClientTx::NonInvite(t))) => t.is_terminated(),
            None => false,
        };
        if done {
            if let Some((key, _)) = self.client.remove(&id) {
                self.client_keys.remove(&key);
            }
            self.fx.timers.forget(id.0);
        }
    }
}

#[cfg(test)]
mod tests;
