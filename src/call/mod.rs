//! The B2BUA: every call is two dialogs (A-leg: caller → switch, B-leg: switch → trunk)
//! owned by one `Call`.
//!
//! `Manager` is sans-IO like the transaction layer beneath it: `handle_message`,
//! `handle_timeout`, `handle_media_event` take the current time; `poll_transmit` and
//! `next_timeout` tell the driver what to send and when to wake. Media resources are
//! obtained through the `MediaControl` trait.
//!
//! Files: `invite.rs` (new calls, the B-leg, failover, CANCEL), `in_dialog.rs` (BYE,
//! re-INVITE, UPDATE, INFO relayed between legs, ACK), `outcome.rs` (how a failure is told
//! to the caller).

mod admission;
mod cause;
mod guard;
mod identity;
pub(crate) use identity::contact_for;
mod in_dialog;
mod intake;
mod invite;
mod outbound;
mod outcome;
mod placed;
mod register;
mod responses;
mod settings;
mod shedding;
mod trunk_health;
mod trunk_register;

pub use cause::{EndCause, Rejection, Role};
pub use outcome::Outcome;
pub use placed::{
    Command, Extras, Flow, Greetings, Originate, Progress, Target, Voice, info_digit,
};
pub use register::parse_source;

use crate::billing::{Authorization, BillingReply, BillingRequest, Settlement};
use crate::dialog::Dialog;
use crate::media::{Endpoints, MediaControl, MediaEvent, MediaId, Play, Side};
use crate::routing::Routing;
use crate::sip::{Builder, Message, Method};
use crate::transaction::{Peer, Timers, TransactionLayer, Transmit, TxEvent, TxId};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tracing::{debug, info};

pub use settings::{CallMedia, Limits, Settings, Stats};
pub use trunk_register::RegState;

pub type CallKey = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the accounting service to reserve the call's money.
    Authorizing,
    /// Waiting to learn where the member dialled by name is registered.
    Locating,
    /// INVITE sent to a trunk, nothing relayed to the caller yet.
    Trying,
    /// A provisional response (ringing, early media) relayed to the caller.
    Early,
    Answered,
    /// The caller cancelled; waiting for the trunk to confirm.
    Cancelling,
    /// Refused: the reason is being played as early media, the final status follows.
    Announcing,
}

/// What a server transaction is for, so its events find their call.
#[derive(Clone, Copy, Debug)]
enum ServerPurpose {
    InitialInvite,
    /// An in-dialog request being relayed to the other leg.
    Relay,
}

#[derive(Clone, Copy, Debug)]
enum ClientPurpose {
    /// OPTIONS to trunk `index` of routing generation `generation`.
    Ping {
        index: usize,
        peer: Peer,
        generation: u64,
    },
    BInvite,
    /// The INVITE of a placed call's leg.
    PlacedInvite(Side),
    Relay {
        server: TxId,
        from: Side,
    },
    Bye,
    Cancel,
    /// A REGISTER (or un-REGISTER) for trunk `index`.
    Register {
        index: usize,
    },
}

/// An ACK the caller of a relayed re-INVITE owes, to be passed on to the other leg.
#[derive(Clone, Debug)]
struct PendingAck {
    /// CSeq of the re-INVITE on the side that sent it.
    origin_cseq: u32,
    origin_tx: TxId,
    /// CSeq of the re-INVITE we sent on the other side.
    relayed_cseq: u32,
    /// The ACK we sent, resent when the 2xx is retransmitted.
    sent: Option<Vec<u8>>,
}

pub struct Call {
    /// The name of the call in logs: the caller's Call-ID is theirs, this one is ours.
    id: String,
    /// The member whose digest proof pays for the call (the guessing fence counts its
    /// failures and forgives them on success).
    auth_user: Option<String>,
    /// Where the caller really is (a dispatcher in front names it): the guessing fence
    /// counts a refused password against it.
    client: std::net::IpAddr,
    state: State,
    number: String,
    a_invite: Message,
    a_invite_tx: TxId,
    a: Dialog,
    /// The B-leg: the trunks in failover order, a new dialog per attempt (the same
    /// outbound state machine as a placed call's legs); its format once negotiated.
    b: outbound::OutLeg,
    media: MediaId,
    endpoints: Endpoints,
    started: Instant,
    /// When the caller was answered (the trunk's 2xx passed on). Not `b.answered`: a trunk
    /// may answer a call that the caller has cancelled, or answer without SDP.
    answered: Option<Instant>,
    /// At most one relayed re-INVITE waits for its ACK per side (indexed by origin side).
    pending_ack: [Option<PendingAck>; 2],
    /// The reservation that pays for the call (unbilled calls have none).
    paid: Option<Authorization>,
    /// The caller's offered formats, and the one its leg uses once chosen.
    a_formats: Vec<crate::media::Format>,
    a_format: Option<crate::media::LegFormat>,
    /// The switch is playing its own early media (ringback) to the caller.
    local_media: bool,
    /// The final status to send once the refusal's announcement ends.
    refusal: Option<crate::billing::Refusal>,
    /// The route asks for a recording.
    record: bool,
    /// The dialled number's kind, for the record.
    destination: String,
    /// A call to a member's registered phone: its Contact URI and the address it
    /// registered from (instead of a trunk).
    direct: Option<(String, Peer)>,
    /// Who is calling (identity headers counted only from a trusted peer).
    caller: crate::routing::CallerId,
}

impl Call {
    /// SDP from one leg rewritten for the other (`to`): our address, and `to`'s
    /// negotiated format once there is one, so a re-INVITE never moves a leg to a codec
    /// it did not agree to (the switch transcodes in between).
    fn sdp_for(
        &self,
        to: Side,
        body: &[u8],
    ) -> Result<(Vec<u8>, crate::media::Remote), crate::media::sdp::SdpError> {
        let local = self.endpoints.local(to);
        let format = match to {
            Side::A => self.a_format.as_ref(),
            Side::B => self.b.format.as_ref(),
        };
        match format {
            Some(f) => crate::media::sdp::rewrite_formats(
                body,
                local,
                &crate::media::sdp::answer_formats(f),
            ),
            None => crate::media::sdp::rewrite(body, local),
        }
    }

    fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::A => Some(&mut self.a),
            Side::B => self.b.dialog.as_mut(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum CallTimer {
    /// The B-leg rang too long.
    NoAnswer,
    /// The reserved time is used up: hang up both legs.
    Limit,
    /// A minute before `Limit`: tell the caller.
    Warn,
    /// The refusal announcement has had its time: send the final status.
    AnnounceEnd,
    /// A placed call's leg rang out (attempt number, so a later attempt is not cut).
    LegRing(Side, u32),
    /// The issuer of a call-back pressed no key in time.
    AnswerWait,
}

pub struct Manager {
    tx: TransactionLayer,
    routing: Routing,
    settings: Settings,
    media: Box<dyn MediaControl>,
    calls: HashMap<CallKey, Call>,
    /// (Call-ID, our tag) → call and leg.
    dialogs: HashMap<(String, String), (CallKey, Side)>,
    server_txs: HashMap<TxId, (CallKey, ServerPurpose)>,
    client_txs: HashMap<TxId, (CallKey, ClientPurpose)>,
    media_calls: HashMap<MediaId, CallKey>,
    timers: BinaryHeap<Reverse<(Instant, CallKey, CallTimer)>>,
    next_key: CallKey,
    draining: bool,
    stats: Stats,
    finished: Vec<Outcome>,
    /// In-dialog requests being relayed, by their server transaction, to answer them.
    pending_requests: HashMap<TxId, Message>,
    /// Work for the accounting service, drained by the driver.
    billing_out: VecDeque<BillingRequest>,
    /// Digest proofs already used (replays are challenged again).
    replays: crate::auth::ReplayGuard,
    /// Authorizations asked for and not yet answered: at shutdown the driver waits for
    /// them, so a reservation made for a call that is gone is released, not left open.
    authorizing: usize,
    /// A monotonic instant and the wall-clock milliseconds it corresponds to, so money
    /// times can be persisted without the state machine reading a clock.
    wall_anchor: Option<(Instant, i64)>,
    /// Trunk health from OPTIONS pings, by index into `routing.trunks`.
    trunks: trunk_health::TrunkHealth,
    /// Registrations with the carriers that want them, by the same index.
    registrations: trunk_register::Registrations,
    /// Calls the switch places (call-backs, web dial); keys shared with `calls`.
    placed: HashMap<CallKey, placed::Placed>,
    /// Their progress for the requester, drained by the driver.
    progress: VecDeque<Progress>,
    /// Placed legs' INVITEs given up on (rang out, call ended): a 2xx that still comes is
    /// acknowledged and hung up with this dialog.
    late_answers: HashMap<TxId, Dialog>,
    /// REGISTERs waiting for the accounting service.
    registering: HashMap<u64, register::PendingRegister>,
    /// Failed digest proofs per address and user; blocks password guessing.
    guard: guard::AuthGuard,
    /// The database answered the last heartbeat or authorization (a switch without
    /// billing has none to lose).
    store_up: bool,
    /// Requests refused by `[limits]`, drained by the driver for the metrics.
    limit_refusals: Vec<&'static str>,
    /// Our address for phones on TLS (`sip.tls_listen`), when the switch listens there.
    tls_advertised: Option<SocketAddr>,
    /// New requests per source address (`limits.requests_per_address`).
    flood: crate::flood::FloodGate,
    /// What the guessing fence did since the driver last looked (`blocked_address`,
    /// `blocked_user`, `refused_while_blocked`), for the metrics.
    guard_events: Vec<&'static str>,
}

impl Manager {
    pub fn new(settings: Settings, routing: Routing, media: Box<dyn MediaControl>) -> Manager {
        let settings_requests_per_address = settings.limits.requests_per_address;
        let mut m = Manager {
            tx: TransactionLayer::new(settings.timers, settings.seed),
            routing,
            settings,
            media,
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            server_txs: HashMap::new(),
            client_txs: HashMap::new(),
            media_calls: HashMap::new(),
            timers: BinaryHeap::new(),
            next_key: 1,
            draining: false,
            stats: Stats::default(),
            finished: Vec::new(),
            pending_requests: HashMap::new(),
            billing_out: VecDeque::new(),
            replays: crate::auth::ReplayGuard::default(),
            authorizing: 0,
            wall_anchor: None,
            trunks: trunk_health::TrunkHealth::default(),
            registrations: trunk_register::Registrations::default(),
            placed: HashMap::new(),
            progress: VecDeque::new(),
            late_answers: HashMap::new(),
            registering: HashMap::new(),
            guard: guard::AuthGuard::default(),
            store_up: true,
            limit_refusals: Vec::new(),
            tls_advertised: None,
            flood: crate::flood::FloodGate::new(settings_requests_per_address),
            guard_events: Vec::new(),
        };
        if let Some(b) = &m.settings.billing {
            m.guard = guard::AuthGuard::new(guard::GuardSettings {
                per_address: b.auth_failures_per_address,
                per_user: b.auth_failures_per_user,
                window: Duration::from_secs(60),
                block: b.auth_block,
            });
        }
        m.trunks.reset(m.routing.trunks.len());
        m.reset_registrations(None);
        m
    }

    /// Tell the manager which wall-clock time `now` is (the driver does so at start).
    pub fn set_wall_clock(&mut self, now: Instant, unix_ms: i64) {
        self.wall_anchor = Some((now, unix_ms));
        if self.settings.trunk_ping.is_some() && self.trunks.next_ping.is_none() {
            self.trunks.next_ping = Some(now);
        }
        self.start_registrations(now);
    }

    fn unix_ms(&self, at: Instant) -> i64 {
        match self.wall_anchor {
            Some((i, ms)) if at >= i => ms + at.duration_since(i).as_millis() as i64,
            Some((i, ms)) => ms - i.duration_since(at).as_millis() as i64,
            None => 0,
        }
    }

    /// Next request for the accounting service.
    pub fn poll_billing(&mut self) -> Option<BillingRequest> {
        self.billing_out.pop_front()
    }

    /// Authorizations still awaited from the accounting service.
    pub fn pending_authorizations(&self) -> usize {
        self.authorizing
    }

    /// The accounting service answered an `Authorize`.
    pub fn handle_billing(&mut self, now: Instant, reply: BillingReply) {
        match reply {
            BillingReply::Authorized { key, auth } => {
                self.authorizing = self.authorizing.saturating_sub(1);
                self.set_store_up(true);
                self.handle_authorized(now, key, auth)
            }
            BillingReply::Refused { key, refusal } => {
                self.authorizing = self.authorizing.saturating_sub(1);
                if refusal == crate::billing::Refusal::Unavailable {
                    self.set_store_up(false);
                }
                self.handle_refused(now, key, refusal)
            }
            BillingReply::Store { up } => self.set_store_up(up),
            BillingReply::Registered { key, result } => self.handle_registered(now, key, result),
            BillingReply::Located { key, bindings } => self.handle_located(now, key, bindings),
        }
        self.process_tx_events(now);
    }

    /// A wrong digest proof (or an unknown user) from `ip`: counted, and a block begun
    /// when it is one too many.
    fn auth_failed(&mut self, ip: std::net::IpAddr, user: &str, now: Instant) {
        self.stats.auth_failures += 1;
        for block in self.guard.failed(ip, user, now) {
            tracing::warn!(blocked = %block.what, secs = block.secs, "password guessing: blocked");
            self.guard_events
                .push(if block.what.starts_with("address") {
                    "blocked_address"
                } else {
                    "blocked_user"
                });
        }
    }

    /// A request with a valid proof refused because its address or user is blocked.
    fn refused_while_blocked(&mut self) {
        self.stats.auth_blocked += 1;
        self.guard_events.push("refused_while_blocked");
    }

    /// What the guessing fence did since the last call (`blocked_address`, `blocked_user`,
    /// `refused_while_blocked`), one entry each.
    pub fn take_guard_events(&mut self) -> Vec<&'static str> {
        std::mem::take(&mut self.guard_events)
    }

    pub fn active_calls(&self) -> usize {
        self.calls.len() + self.placed.len()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Calls that ended since the last call, with how they ended.
    pub fn take_finished(&mut self) -> Vec<Outcome> {
        std::mem::take(&mut self.finished)
    }

    /// Replace trunks and dial plan; calls in progress keep what they were routed with.
    /// Every trunk starts as up and is pinged at once.
    pub fn set_routing(&mut self, routing: Routing) {
        let old = std::mem::replace(&mut self.routing, routing);
        self.trunks.reset(self.routing.trunks.len());
        self.carry_registrations(&old.trunks);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tx.poll_transmit()
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        let ours = self.timers.peek().map(|Reverse((at, _, _))| *at);
        let ours = [ours, self.trunks.next_ping, self.next_registration()]
            .into_iter()
            .flatten()
            .min();
        match (ours, self.tx.next_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_message(&mut self, now: Instant, from: Peer, msg: Message) {
        self.handle_waited(now, from, msg, Duration::ZERO)
    }

    /// A message that waited `waited` in the socket's queue before the switch read it:
    /// past `limits.overload_queue_ms`, new work is refused at once (overload control).
    pub fn handle_waited(&mut self, now: Instant, from: Peer, msg: Message, waited: Duration) {
        if msg.is_request() && !self.within_limits(now, from, &msg, waited) {
            return;
        }
        self.tx.handle_message(now, from, msg);
        self.process_tx_events(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.tx.handle_timeout(now);
        self.process_tx_events(now);
        if let (Some(at), Some(every)) = (self.trunks.next_ping, self.settings.trunk_ping)
            && at <= now
        {
            self.trunks.next_ping = Some(now + every);
            self.ping_trunks(now);
        }
        self.registrations_due(now);
        while let Some(Reverse((at, key, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.placed.contains_key(&key) {
                self.placed_timer(now, key, timer);
                continue;
            }
            match timer {
                CallTimer::Limit => {
                    let reason = self
                        .calls
                        .get(&key)
                        .filter(|c| c.state == State::Answered)
                        .and_then(|c| c.paid.as_ref().map(|p| p.limit_reason));
                    if let Some(reason) = reason {
                        info!(call = %self.call_name(key), reason, "time limit reached, hanging up");
                        self.hangup(now, key, EndCause::LimitReached(reason));
                    }
                }
                CallTimer::Warn => {
                    let answered = self
                        .calls
                        .get(&key)
                        .filter(|c| c.state == State::Answered)
                        .map(|c| c.media);
                    if let Some(media) = answered {
                        info!(call = %self.call_name(key), "one minute left");
                        self.media
                            .play(media, Side::A, Play::Prompt("one-minute-left".into()));
                    }
                }
                CallTimer::AnnounceEnd => self.end_announcement(now, key),
                CallTimer::LegRing(..) | CallTimer::AnswerWait => {}
                CallTimer::NoAnswer => {
                    let state = self.calls.get(&key).map(|c| c.state);
                    if state == Some(State::Cancelling) {
                        info!(call = %self.call_name(key), "trunk never confirmed the CANCEL");
                        self.finish(now, key, 487, EndCause::CallerCancelled);
                        continue;
                    }
                    let ringing = matches!(
                        state,
                        Some(State::Authorizing | State::Locating | State::Trying | State::Early)
                    );
                    if ringing {
                        self.abandon(now, key, 480, "Temporarily Unavailable", EndCause::RangOut);
                    }
                }
            }
        }
        self.process_tx_events(now);
    }

    pub fn handle_media_event(&mut self, now: Instant, event: MediaEvent) {
        let id = match event {
            MediaEvent::RtpTimeout(id)
            | MediaEvent::PlayDone(id, _)
            | MediaEvent::Digit(id, _, _) => id,
        };
        if let Some(key) = self.media_calls.get(&id).copied()
            && self.placed.contains_key(&key)
        {
            match event {
                MediaEvent::RtpTimeout(_) => {
                    self.end_placed(now, key, EndCause::MediaTimeout);
                }
                MediaEvent::PlayDone(_, side) => self.placed_play_done(now, key, side),
                MediaEvent::Digit(_, side, digit) => self.placed_digit(now, key, side, digit),
            }
            return self.process_tx_events(now);
        }
        match event {
            MediaEvent::RtpTimeout(id) => {
                if let Some(key) = self.media_calls.get(&id).copied() {
                    info!(call = %self.call_name(key), "no RTP, hanging up");
                    self.hangup(now, key, EndCause::MediaTimeout);
                }
            }
            MediaEvent::PlayDone(id, Side::A) => {
                if let Some(key) = self.media_calls.get(&id).copied() {
                    self.end_announcement(now, key);
                }
            }
            MediaEvent::PlayDone(..) => {}
            MediaEvent::Digit(id, side, digit) => {
                if let Some(key) = self.media_calls.get(&id).copied() {
                    info!(call = %self.call_name(key), ?side, %digit, "digit pressed");
                }
            }
        }
        self.process_tx_events(now);
    }

    /// Stop taking calls (503 to new INVITEs); calls in progress continue.
    pub fn begin_drain(&mut self) {
        self.draining = true;
    }

    /// End every call now: BYE to answered ones, CANCEL/503 to ringing ones.
    pub fn hangup_all(&mut self, now: Instant, cause: EndCause) {
        let keys: Vec<CallKey> = self.calls.keys().copied().collect();
        for key in keys {
            self.hangup(now, key, cause.clone());
        }
        let placed: Vec<CallKey> = self.placed.keys().copied().collect();
        for key in placed {
            self.end_placed(now, key, cause.clone());
        }
        self.process_tx_events(now);
    }

    fn call_name(&self, key: CallKey) -> String {
        self.calls
            .get(&key)
            .map(|c| c.id.clone())
            .unwrap_or_default()
    }

    /// Calls placed by the switch that are in progress on `card`.
    pub fn placed_on_card(&self, card: i64) -> usize {
        self.placed
            .values()
            .filter(|p| p.card() == Some(card))
            .count()
    }

    fn process_tx_events(&mut self, now: Instant) {
        while let Some(event) = self.tx.poll_event() {
            match event {
                TxEvent::Request {
                    tx: Some(tx),
                    request,
                    from,
                    local_tag,
                } => self.handle_request(now, tx, request, from, local_tag),
                TxEvent::Request {
                    tx: None, request, ..
                } => self.handle_ack(now, request),
                TxEvent::Response { tx, response } => self.handle_response(now, tx, response),
                TxEvent::Cancelled { invite } => self.handle_cancel(now, invite),
                TxEvent::Timeout { tx } => self.handle_client_timeout(now, tx),
                TxEvent::AckTimeout { tx } => {
                    if let Some((key, ServerPurpose::InitialInvite)) =
                        self.server_txs.get(&tx).copied()
                    {
                        info!(call = %self.call_name(key), "caller never acknowledged the answer");
                        self.hangup(now, key, EndCause::NoAck);
                    }
                }
            }
        }
    }

    fn handle_request(
        &mut self,
        now: Instant,
        tx: TxId,
        req: Message,
        from: Peer,
        local_tag: String,
    ) {
        if let Some(to_tag) = req.to_tag.clone() {
            let found = self.dialogs.get(&(req.call_id.clone(), to_tag)).copied();
            match found {
                Some((key, side)) if self.placed.contains_key(&key) => {
                    self.placed_in_dialog(now, key, side, tx, req)
                }
                Some((key, side)) => self.handle_in_dialog(now, key, side, tx, req),
                None => self.reply(
                    now,
                    tx,
                    &req,
                    481,
                    "Call/Transaction Does Not Exist",
                    None,
                    Some("no such dialog"),
                ),
            }
            return;
        }
        // Cannot fail: the transaction layer only reports requests.
        let method = req.method().cloned().unwrap_or(Method::Ack);
        if let Some(refusal) = intake::uas_refusal(&method, &req) {
            let (code, phrase, reason, header) = refusal;
            if method == Method::Invite {
                self.stats.calls_refused += 1;
            }
            let mut b = Builder::response_to(&req, code, phrase, Some(&local_tag));
            b.reason(code, reason);
            if let Some((name, value)) = header {
                b.header(name, &value);
            }
            self.tx.send_response(now, tx, code, b.finish(None, &[]));
            return;
        }
        match method {
            Method::Invite => self.handle_new_invite(now, tx, req, from, local_tag),
            Method::Register => self.handle_register(now, tx, req, from, local_tag),
            Method::Options => self.answer_probe(now, tx, &req, &local_tag),
            Method::Bye | Method::Update | Method::Info | Method::Prack => self.reply(
                now,
                tx,
                &req,
                481,
                "Call/Transaction Does Not Exist",
                Some(&local_tag),
                Some("no such dialog"),
            ),
            Method::Extension(_) => {
                let mut b = Builder::response_to(&req, 501, "Not Implemented", Some(&local_tag));
                b.header("Allow", self.allow())
                    .reason(501, "unknown method");
                self.tx.send_response(now, tx, 501, b.finish(None, &[]));
            }
            _ => {
                let mut b = Builder::response_to(&req, 405, "Method Not Allowed", Some(&local_tag));
                b.header("Allow", self.allow());
                self.tx.send_response(now, tx, 405, b.finish(None, &[]));
            }
        }
    }

    /// Answer a server transaction with a bodiless response and an optional Reason.
    #[allow(clippy::too_many_arguments)]
    fn reply(
        &mut self,
        now: Instant,
        tx: TxId,
        req: &Message,
        code: u16,
        phrase: &str,
        tag: Option<&str>,
        reason: Option<&str>,
    ) {
        let mut b = Builder::response_to(req, code, phrase, tag);
        if let Some(r) = reason {
            b.reason(code, r);
        }
        b.header("Server", &self.settings.user_agent);
        self.tx.send_response(now, tx, code, b.finish(None, &[]));
    }

    /// Remove a call and everything that points at it.
    fn finish(&mut self, now: Instant, key: CallKey, outcome_code: u16, cause: EndCause) {
        let Some(call) = self.calls.remove(&key) else {
            return;
        };
        let media = self.media.stats(call.media);
        self.media.release(call.media);
        self.media_calls.remove(&call.media);
        self.dialogs
            .remove(&(call.a.call_id.clone(), call.a.local_tag.clone()));
        if let Some(b) = &call.b.dialog {
            self.dialogs
                .remove(&(b.call_id.clone(), b.local_tag.clone()));
        }
        let pending = &mut self.pending_requests;
        self.server_txs.retain(|tx, (k, _)| {
            if *k == key {
                pending.remove(tx);
            }
            *k != key
        });
        self.client_txs.retain(|_, (k, p)| {
            *k != key || matches!(p, ClientPurpose::Bye | ClientPurpose::Cancel)
        });
        let talk = call.answered.map(|a| now.saturating_duration_since(a));
        let record = self
            .settings
            .records
            .then(|| Box::new(self.record_of(&call, now, outcome_code, &cause, &media)));
        match (&call.paid, record) {
            (Some(paid), record) => {
                self.billing_out
                    .push_back(BillingRequest::Settle(Settlement {
                        reservation: paid.reservation,
                        call_id: call.id.clone(),
                        answered_ms: call.answered.map(|a| self.unix_ms(a)),
                        ended_ms: self.unix_ms(now),
                        cause: cause.text(),
                        record,
                        legs: Vec::new(),
                    }))
            }
            (None, Some(record)) => self.billing_out.push_back(BillingRequest::Record(record)),
            (None, None) => {}
        }
        if call.answered.is_some() {
            self.stats.calls_ended += 1;
        }
        info!(
            call = %call.id,
            number = %call.number,
            code = outcome_code,
            cause = %cause.text(),
            talk_ms = talk.map(|d| d.as_millis() as u64).unwrap_or(0),
            "call ended"
        );
        self.finished.push(Outcome {
            call: call.id,
            number: call.number,
            code: outcome_code,
            cause: cause.text(),
            cause_code: cause.code(),
            setup: call
                .answered
                .map(|a| a.saturating_duration_since(call.started)),
            talk,
            media,
        });
        debug!(active = self.calls.len(), "calls in progress");
    }
}
