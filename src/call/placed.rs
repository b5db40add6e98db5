//! Calls the switch places itself: a card's free call-back and a member's web dial.
//!
//! A placed call has two outbound legs, both dialled by the switch (A: the issuer or the
//! member, B: the visitor or the dialled number), and a flow that decides what a leg's
//! answer means:
//! - call-back: A rings (each of the issuer's numbers in turn); on answer A hears "a
//!   visitor is calling from 0 1 0 …, press 1 to accept, 2 to decline"; 1 → A hears
//!   ringback while B is dialled; B answers → post-dial digits to B (RFC 4733), bridged.
//! - web dial: A (the member's own phone) answers → A hears "please hold" and ringback
//!   while B is dialled; B answers → bridged.
//!
//! Each outbound leg (`OutLeg`) is one state machine: numbers in order, trunks in failover
//! order per number, 18x/2xx, ACK (resent on a retransmitted 2xx), CANCEL on ring-out,
//! late answers after a CANCEL acknowledged and hung up. Money was reserved for both legs
//! before the command arrived (`store::placed`); each leg is billed from its own answer
//! and the call is settled once, with one record holding both legs.

use super::cause::{EndCause, Role};
use super::outbound::{LegResponse, NewInvite, OutLeg};
use super::{CallKey, CallTimer, ClientPurpose, Manager};
use crate::billing::{Authorization, BillingRequest, LegSettlement, Settlement};
use crate::dialog::Dialog;
use crate::media::codec::Codec;
use crate::media::{Endpoints, MediaId, Play, Side, sdp};
use crate::numbers::DestinationKind;
use crate::sip::{Builder, Message, Method};
use crate::transaction::TxId;
use std::cmp::Reverse;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// What the control plane asks of the call layer (through the switch handle).
#[derive(Clone, Debug)]
pub enum Command {
    Originate(Box<Originate>),
    /// End a placed call (the requester cancelled it, or an operator).
    Hangup {
        id: String,
    },
}

/// Place a call: ring `first`'s numbers in turn, then (as the flow says) `second`.
#[derive(Clone, Debug)]
pub struct Originate {
    /// The request's id (`fc-…`): the call's name in logs, progress and its record.
    pub id: String,
    pub flow: Flow,
    /// The first party's numbers, tried in order (the issuer's numbers, or the member's).
    pub first: Vec<Target>,
    pub second: Target,
    /// One reservation per leg, in order (first, second); empty for an unbilled call.
    pub billing: Vec<Authorization>,
    pub card: Option<i64>,
    pub account: Option<i64>,
    /// Prompts in this language where the prompts folder has them (`ko`, `en`).
    pub language: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// A card's call-back: the issuer is asked first and must press 1.
    Callback,
    /// A member's web dial: the member's phone first, then the number.
    WebDial,
}

impl Flow {
    fn roles(self) -> [Role; 2] {
        match self {
            Flow::Callback => ["issuer", "visitor"],
            Flow::WebDial => ["member", "dialled"],
        }
    }
}

/// A number to dial, with digits to send once it answers (an extension behind a PBX).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub number: String,
    pub destination: DestinationKind,
    pub post_dial: String,
    /// A member's registered softphone: rung at its binding instead of through a trunk.
    pub registered: Option<crate::registrar::Binding>,
}

/// One step of a placed call, as the requester follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub id: String,
    /// `requested`, `calling_issuer`, `issuer_answered`, `accepted`, `calling_visitor`,
    /// `connected`, `ended` (with the roles of a web dial: `calling_member`, …).
    pub state: String,
    /// For `ended`: why (`EndCause`).
    pub cause: Option<EndCause>,
    /// Wall-clock milliseconds.
    pub at_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Leg A rings.
    CallingFirst,
    /// Leg A answered and hears the question; waiting for its digit.
    Asking,
    /// Leg B rings; leg A hears ringback.
    CallingSecond,
    /// Both answered and bridged.
    Connected,
}

pub(super) struct Placed {
    id: String,
    flow: Flow,
    stage: Stage,
    legs: [OutLeg; 2],
    media: MediaId,
    endpoints: Endpoints,
    started: Instant,
    card: Option<i64>,
    account: Option<i64>,
    language: String,
    /// The prompts of the question have all been played.
    asked: bool,
}

impl Placed {
    pub(super) fn card(&self) -> Option<i64> {
        self.card
    }

    pub(super) fn leg_tx(&self, side: Side) -> Option<TxId> {
        self.legs[side.index()].tx
    }

    fn leg(&mut self, side: Side) -> &mut OutLeg {
        &mut self.legs[side.index()]
    }

    /// A prompt in the call's language (`name.ko`), or the default one (`name`).
    fn prompt(&self, name: &str) -> Play {
        match self.language.as_str() {
            "" | "en" => Play::Prompt(name.into()),
            lang => Play::Prompt(format!("{name}.{lang}")),
        }
    }
}

impl Manager {
    /// A command from the control plane.
    pub fn handle_command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Originate(o) => self.originate(now, *o),
            Command::Hangup { id } => {
                let key = self
                    .placed
                    .iter()
                    .find(|(_, p)| p.id == id)
                    .map(|(k, _)| *k);
                if let Some(key) = key {
                    info!(call = %id, "cancelled by the requester");
                    self.end_placed(now, key, EndCause::Cancelled);
                }
            }
        }
        self.process_tx_events(now);
    }

    /// Progress of placed calls since the last call (the driver hands it to the API).
    pub fn poll_progress(&mut self) -> Option<Progress> {
        self.progress.pop_front()
    }

    fn progress(&mut self, id: &str, state: String, cause: Option<EndCause>, now: Instant) {
        let at_ms = self.unix_ms(now);
        self.progress.push_back(Progress {
            id: id.to_string(),
            state,
            cause,
            at_ms,
        });
    }

    fn originate(&mut self, now: Instant, o: Originate) {
        self.stats.calls_offered += 1;
        self.progress(&o.id, "requested".into(), None, now);
        let refuse = |m: &mut Manager, o: &Originate, cause: EndCause| {
            info!(call = %o.id, cause = %cause.text(), "placed call refused");
            m.stats.calls_refused += 1;
            // What was reserved goes back (nothing was answered).
            m.settle_unplaced(now, o, &cause);
            m.progress(&o.id, "ended".into(), Some(cause), now);
        };
        if self.draining {
            return refuse(self, &o, EndCause::SwitchStopping);
        }
        if self.active_calls() >= self.settings.max_calls {
            return refuse(self, &o, EndCause::SwitchBusy);
        }
        if o.first.is_empty() {
            return refuse(self, &o, EndCause::NoRoute(o.flow.roles()[0]));
        }
        let (media, endpoints) = match self.media.allocate() {
            Ok(m) => m,
            Err(_) => return refuse(self, &o, EndCause::SwitchBusy),
        };
        let key = self.next_key;
        self.next_key += 1;
        let [first_role, second_role] = o.flow.roles();
        let mut auth = o.billing.clone().into_iter();
        let placed = Placed {
            id: o.id.clone(),
            flow: o.flow,
            stage: Stage::CallingFirst,
            legs: [
                OutLeg::new(first_role, o.first.clone(), auth.next()),
                OutLeg::new(second_role, vec![o.second.clone()], auth.next()),
            ],
            media,
            endpoints,
            started: now,
            card: o.card,
            account: o.account,
            language: o.language.clone(),
            asked: false,
        };
        info!(call = %o.id, flow = ?o.flow, first = %o.first[0].number, second = %o.second.number, "placing a call");
        self.media_calls.insert(media, key);
        self.placed.insert(key, placed);
        self.dial_leg(now, key, Side::A);
    }

    /// Release what was reserved for a call that never got a leg out.
    fn settle_unplaced(&mut self, now: Instant, o: &Originate, cause: &EndCause) {
        let ended_ms = self.unix_ms(now);
        let mut legs = o.billing.iter();
        let (Some(first), Some(second)) = (legs.next(), legs.next()) else {
            return;
        };
        self.billing_out
            .push_back(BillingRequest::Settle(Settlement {
                reservation: second.reservation,
                call_id: second.call_id.clone(),
                answered_ms: None,
                ended_ms,
                cause: cause.text(),
                record: None,
                legs: vec![LegSettlement {
                    reservation: first.reservation,
                    call_id: first.call_id.clone(),
                    answered_ms: None,
                }],
            }));
    }

    /// Send the leg's INVITE to its current number on its current trunk; when the number
    /// has no trunk left, the next number; when no number is left, end the call.
    fn dial_leg(&mut self, now: Instant, key: CallKey, side: Side) {
        loop {
            let Some(p) = self.placed.get_mut(&key) else {
                return;
            };
            let leg = &mut p.legs[side.index()];
            let Some(target) = leg.current().cloned() else {
                let cause = leg.failure.clone().unwrap_or(EndCause::NoRoute(leg.role));
                return self.end_placed(now, key, cause);
            };
            if let Some(binding) = &target.registered {
                if leg.trunk == 0
                    && let Some(peer) = super::parse_source(&binding.source)
                {
                    leg.trunk = 1;
                    let uri = binding.contact.clone();
                    return self.send_leg_invite(
                        now,
                        key,
                        side,
                        &target,
                        uri,
                        peer,
                        &[],
                        "registered",
                    );
                }
                // Tried (or unusable): the next number.
                leg.failure.get_or_insert(EndCause::NoAnswer(leg.role));
                leg.target += 1;
                leg.trunk = 0;
                continue;
            }
            if leg.trunk == 0 && leg.trunks.is_empty() {
                let mut trunks = self
                    .routing
                    .plan
                    .lookup(&target.number)
                    .map(|r| r.trunks.clone())
                    .unwrap_or_default();
                if trunks.iter().any(|&t| self.trunk_is_up(t)) {
                    trunks.retain(|&t| self.trunk_is_up(t));
                }
                let Some(p) = self.placed.get_mut(&key) else {
                    return;
                };
                let leg = &mut p.legs[side.index()];
                if trunks.is_empty() {
                    leg.failure.get_or_insert(EndCause::NoRoute(leg.role));
                    leg.target += 1;
                    continue;
                }
                leg.trunks = trunks;
            }
            let Some(p) = self.placed.get_mut(&key) else {
                return;
            };
            let leg = &p.legs[side.index()];
            let Some(trunk) = leg
                .trunks
                .get(leg.trunk)
                .and_then(|&i| self.routing.trunks.get(i))
                .cloned()
            else {
                let leg = &mut p.legs[side.index()];
                leg.target += 1;
                leg.trunks.clear();
                leg.trunk = 0;
                continue;
            };
            let uri = format!("sip:{}@{}", target.number, trunk.peer.addr);
            let codecs: Vec<Codec> = trunk
                .codecs
                .iter()
                .filter_map(|c| Codec::from_name(c))
                .collect();
            return self.send_leg_invite(
                now,
                key,
                side,
                &target,
                uri,
                trunk.peer,
                &codecs,
                &trunk.name,
            );
        }
    }

    /// The leg's INVITE to `uri` at `peer` (a trunk, or a registered phone), offering
    /// `codecs` (none: every codec the switch speaks); `via` names it in the record.
    #[allow(clippy::too_many_arguments)]
    fn send_leg_invite(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        target: &Target,
        uri: String,
        peer: crate::transaction::Peer,
        codecs: &[Codec],
        through: &str,
    ) {
        let call_id = format!("{}@freecall", self.tx.new_token());
        let from_tag = self.tx.new_token();
        let branch = self.tx.new_branch();
        let advertised = self.settings.advertised;
        let user_agent = self.settings.user_agent.clone();
        let allow = self.allow();
        let ring = self.settings.placed_ring;
        let Some(p) = self.placed.get_mut(&key) else {
            return;
        };
        // Who the phone shows as calling: the visitor's number to the issuer (it is read
        // out too), the issuer's number to the visitor (the number on the card).
        let shown = p.legs[side.other().index()].number();
        let shown = if shown.is_empty() {
            "anonymous".to_string()
        } else {
            shown
        };
        let offer = sdp::own_offer(p.endpoints.local(side), codecs);
        let (request, old) = p.leg(side).invite(NewInvite {
            call_id: call_id.clone(),
            from_tag: from_tag.clone(),
            branch,
            uri,
            peer,
            from_user: &shown,
            advertised,
            max_forwards: 70,
            allow,
            user_agent,
            offer,
        });
        let leg = p.leg(side);
        leg.dialled.push(through.to_string());
        let attempt = leg.attempt;
        let role = leg.role;
        if let Some(old) = old {
            self.dialogs.remove(&(old.call_id, old.local_tag));
        }
        let id = p.id.clone();
        let first_attempt = p.legs[side.index()].dialled.len() == 1;
        self.dialogs.insert((call_id, from_tag), (key, side));
        info!(call = %id, role, number = %target.number, through, "dialling");
        let tx = self.tx.send_request(now, peer, request);
        if let Some(p) = self.placed.get_mut(&key) {
            p.leg(side).tx = Some(tx);
        }
        self.client_txs
            .insert(tx, (key, ClientPurpose::PlacedInvite(side)));
        self.timers.push(Reverse((
            now + ring,
            key,
            CallTimer::LegRing(side, attempt),
        )));
        if first_attempt {
            self.progress(&id, format!("calling_{role}"), None, now);
        }
    }

    /// A response to a leg's INVITE.
    pub(super) fn handle_leg_response(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        tx: TxId,
        resp: Message,
    ) {
        let code = resp.status().unwrap_or(0);
        let advertised = self.settings.advertised;
        let branch = self.tx.new_branch();
        let heard = match self.placed.get_mut(&key) {
            Some(p) => p
                .leg(side)
                .handle_response(tx, &resp, now, branch, advertised),
            None => LegResponse::Stale,
        };
        match heard {
            LegResponse::Stale => {
                // An INVITE given up on (rang out, or the call ended): a late 2xx is
                // acknowledged and hung up.
                if code >= 200 {
                    self.client_txs.remove(&tx);
                    if let Some(d) = self.late_answers.remove(&tx)
                        && code < 300
                    {
                        self.ack_and_bye(now, d, &resp, "call no longer wanted");
                    }
                }
            }
            LegResponse::Trying | LegResponse::Provisional => {}
            LegResponse::AnsweredAgain(ack, peer) => self.tx.send_stateless(peer, ack),
            LegResponse::Fork(d) => self.ack_and_bye(now, d, &resp, "call already answered"),
            LegResponse::Answered(ack, peer) => {
                self.tx.send_stateless(peer, ack);
                self.leg_answered(now, key, side, resp);
            }
            LegResponse::Failed(code) => {
                self.client_txs.remove(&tx);
                self.leg_failed(now, key, side, code);
            }
        }
    }

    /// The leg's INVITE got no answer at all (Timer B).
    pub(super) fn placed_leg_timed_out(&mut self, now: Instant, key: CallKey, side: Side) {
        if let Some(p) = self.placed.get_mut(&key) {
            p.leg(side).tx = None;
        }
        self.leg_failed(now, key, side, 408);
    }

    /// The leg's INVITE failed with `code` (408 for a timeout): next trunk, next number,
    /// or the end of the call, as the status says.
    fn leg_failed(&mut self, now: Instant, key: CallKey, side: Side, code: u16) {
        let Some(p) = self.placed.get_mut(&key) else {
            return;
        };
        let flow = p.flow;
        let id = p.id.clone();
        let leg = p.leg(side);
        let role = leg.role;
        info!(call = %id, role, code, "leg failed");
        let cause = match code {
            486 | 600 => EndCause::Busy(role),
            603 if side == Side::A && flow == Flow::Callback => EndCause::Declined,
            603 => EndCause::Busy(role),
            480 | 487 => EndCause::NoAnswer(role),
            c => EndCause::Unreachable(role, c),
        };
        match cause {
            // The person said no: no other number is tried.
            EndCause::Busy(_) | EndCause::Declined => self.end_placed(now, key, cause),
            EndCause::Unreachable(_, c) if c == 408 || c >= 500 => {
                // The trunk failed: the next trunk for the same number.
                leg.failure = Some(cause);
                leg.trunk += 1;
                self.dial_leg(now, key, side);
            }
            _ => {
                leg.failure = Some(cause);
                leg.target += 1;
                leg.trunks.clear();
                leg.trunk = 0;
                self.dial_leg(now, key, side);
            }
        }
    }

    /// The leg rang out: cancel it and ring its next number.
    pub(super) fn leg_ring_timeout(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        attempt: u32,
    ) {
        let Some(p) = self.placed.get_mut(&key) else {
            return;
        };
        let leg = p.leg(side);
        if leg.attempt != attempt || leg.answered.is_some() {
            return;
        }
        let Some(tx) = leg.tx.take() else { return };
        let role = leg.role;
        if let Some(d) = leg.dialog.clone() {
            self.late_answers.insert(tx, d);
        }
        let provisional = leg.provisional;
        leg.failure = Some(EndCause::NoAnswer(role));
        leg.target += 1;
        leg.trunks.clear();
        leg.trunk = 0;
        if provisional && let Some(c) = self.tx.send_cancel(now, tx) {
            self.client_txs.insert(c, (key, ClientPurpose::Cancel));
        }
        self.dial_leg(now, key, side);
    }

    /// The leg's first 2xx (already acknowledged): its media, then the flow goes on.
    fn leg_answered(&mut self, now: Instant, key: CallKey, side: Side, resp: Message) {
        let Some(p) = self.placed.get_mut(&key) else {
            return;
        };
        let media = p.media;
        let id = p.id.clone();
        let leg = p.leg(side);
        let role = leg.role;
        let answer = sdp::read_offer(&resp.body)
            .ok()
            .and_then(|(remote, formats)| Some((remote, sdp::chosen(&formats)?)))
            .filter(|(_, f)| f.codec().is_some());
        let Some((remote, format)) = answer else {
            warn!(call = %id, role, "answer without a usable SDP");
            return self.end_placed(now, key, EndCause::Unreachable(role, 488));
        };
        leg.format = Some(format.clone());
        leg.on_net = leg.current().is_some_and(|t| t.registered.is_some());
        // An on-net leg is never billed, so its answer is not persisted for recovery.
        let reservation = leg
            .auth
            .as_ref()
            .filter(|_| !leg.on_net)
            .map(|a| a.reservation);
        let max_secs = leg.auth.as_ref().map(|a| a.max_secs);
        self.media.set_format(media, side, format);
        if side == Side::A {
            self.media.set_remote(media, side, remote);
        }
        info!(call = %id, role, "answered");
        if let Some(reservation) = reservation {
            let answered_ms = self.unix_ms(now);
            self.billing_out.push_back(BillingRequest::Answered {
                reservation,
                answered_ms,
            });
        }
        match side {
            Side::A => {
                self.stats.calls_answered += 1;
                self.media.arm(media);
                if let Some(secs) = max_secs {
                    // The reservation holds max_secs of both legs from the first answer.
                    let length = Duration::from_secs(secs.max(0) as u64);
                    let limit = now + length;
                    self.timers.push(Reverse((limit, key, CallTimer::Limit)));
                    let warning = self.settings.media.warning;
                    if self.settings.media.announce && !warning.is_zero() && length > warning * 2 {
                        self.timers
                            .push(Reverse((limit - warning, key, CallTimer::Warn)));
                    }
                }
                self.progress(&id, format!("{role}_answered"), None, now);
                self.first_answered(now, key);
            }
            Side::B => {
                // What the switch plays to the second leg (its post-dial digits, the
                // greeting) is queued before the leg's address is known, so nothing of
                // the first leg — such as the tail of the issuer's "1" — reaches it first.
                self.bridge(now, key);
                self.media.set_remote(media, side, remote);
            }
        }
    }

    /// The first party answered: ask (call-back) or go on dialling (web dial).
    fn first_answered(&mut self, now: Instant, key: CallKey) {
        let answer_wait = self.settings.placed_answer;
        let Some(p) = self.placed.get_mut(&key) else {
            return;
        };
        let media = p.media;
        match p.flow {
            Flow::Callback => {
                p.stage = Stage::Asking;
                let visitor = p.legs[1].number();
                let mut plays = vec![p.prompt("callback-request")];
                for d in visitor.chars().filter(char::is_ascii_digit) {
                    plays.push(p.prompt(&format!("digit-{d}")));
                }
                plays.push(p.prompt("callback-press"));
                for play in plays {
                    self.media.play(media, Side::A, play);
                }
                // The wait starts when the question has been played (PlayDone), or at the
                // latest after this long.
                self.timers.push(Reverse((
                    now + answer_wait + Duration::from_secs(30),
                    key,
                    CallTimer::AnswerWait,
                )));
            }
            Flow::WebDial => {
                p.stage = Stage::CallingSecond;
                let hold = p.prompt("please-hold");
                self.media.play(media, Side::A, hold);
                self.media.play(media, Side::A, Play::Ringback);
                self.dial_leg(now, key, Side::B);
            }
        }
    }

    /// The second party answered: send its post-dial digits, bridge.
    fn bridge(&mut self, now: Instant, key: CallKey) {
        let Some(p) = self.placed.get_mut(&key) else {
            return;
        };
        p.stage = Stage::Connected;
        let media = p.media;
        let id = p.id.clone();
        let post_dial = p.legs[1]
            .current()
            .map(|t| t.post_dial.clone())
            .unwrap_or_default();
        let greet = (post_dial.is_empty() && p.flow == Flow::Callback)
            .then(|| p.prompt("callback-connected"));
        self.media.stop_playing(media, Side::A);
        if !post_dial.is_empty() {
            self.media.play(media, Side::B, Play::Digits(post_dial));
        } else if let Some(greet) = greet {
            self.media.play(media, Side::B, greet);
        }
        self.stats.calls_answered += 1;
        info!(call = %id, "connected");
        self.progress(&id, "connected".into(), None, now);
    }

    /// A digit from a leg (RFC 4733 or SIP INFO).
    pub(super) fn placed_digit(&mut self, now: Instant, key: CallKey, side: Side, digit: char) {
        let Some(p) = self.placed.get_mut(&key) else {
            return;
        };
        if side != Side::A || p.stage != Stage::Asking {
            return;
        }
        let id = p.id.clone();
        let media = p.media;
        info!(call = %id, %digit, "issuer pressed");
        match digit {
            '1' => {
                p.stage = Stage::CallingSecond;
                self.media.stop_playing(media, Side::A);
                self.media.play(media, Side::A, Play::Ringback);
                self.progress(&id, "accepted".into(), None, now);
                self.dial_leg(now, key, Side::B);
            }
            '2' => {
                self.progress(&id, "declined".into(), None, now);
                self.end_placed(now, key, EndCause::Declined);
            }
            _ => {}
        }
    }

    pub(super) fn placed_play_done(&mut self, now: Instant, key: CallKey, side: Side) {
        let wait = self.settings.placed_answer;
        let Some(p) = self.placed.get_mut(&key) else {
            return;
        };
        if side == Side::A && p.stage == Stage::Asking && !p.asked {
            p.asked = true;
            self.timers
                .push(Reverse((now + wait, key, CallTimer::AnswerWait)));
        }
    }

    pub(super) fn placed_timer(&mut self, now: Instant, key: CallKey, timer: CallTimer) {
        let Some(p) = self.placed.get(&key) else {
            return;
        };
        match timer {
            CallTimer::LegRing(side, attempt) => self.leg_ring_timeout(now, key, side, attempt),
            CallTimer::AnswerWait => {
                if p.stage == Stage::Asking {
                    self.end_placed(now, key, EndCause::NoKeyPressed);
                }
            }
            CallTimer::Limit => {
                let reason = p.legs[0]
                    .auth
                    .as_ref()
                    .map(|a| a.limit_reason)
                    .unwrap_or("maximum call duration reached");
                info!(call = %p.id, reason, "time limit reached, hanging up");
                self.end_placed(now, key, EndCause::LimitReached(reason));
            }
            CallTimer::Warn => {
                let media = p.media;
                let warn_both = p.stage == Stage::Connected;
                let one = p.prompt("one-minute-left");
                self.media.play(media, Side::A, one.clone());
                if warn_both {
                    self.media.play(media, Side::B, one);
                }
            }
            CallTimer::NoAnswer | CallTimer::AnnounceEnd => {}
        }
    }

    /// A request inside one of a placed call's dialogs.
    pub(super) fn placed_in_dialog(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        tx: TxId,
        req: Message,
    ) {
        let method = req.method().cloned().unwrap_or(Method::Ack);
        let Some(p) = self.placed.get_mut(&key) else {
            return;
        };
        let local = p.endpoints.local(side);
        let media = p.media;
        let leg = p.leg(side);
        let role = leg.role;
        match method {
            Method::Bye => {
                self.reply(now, tx, &req, 200, "OK", None, None);
                if let Some(p) = self.placed.get_mut(&key)
                    && let Some(d) = p.leg(side).dialog.take()
                {
                    // Its dialog is over: no BYE goes back to it.
                    self.dialogs.remove(&(d.call_id, d.local_tag));
                }
                self.end_placed(now, key, EndCause::HungUp(role));
            }
            Method::Invite | Method::Update => {
                // A re-offer (hold, a new address): the switch answers for the leg itself,
                // keeping its negotiated format; media stays anchored.
                if let Some(d) = leg.dialog.as_mut()
                    && let Some(target) = &req.contact_uri
                {
                    d.remote_target = target.clone();
                }
                let Some(format) = leg.format.clone() else {
                    return self.reply(
                        now,
                        tx,
                        &req,
                        491,
                        "Request Pending",
                        None,
                        Some("call not yet answered"),
                    );
                };
                if req.has_sdp()
                    && let Ok((remote, _)) = sdp::read_offer(&req.body)
                {
                    self.media.set_remote(media, side, remote);
                }
                if method == Method::Invite {
                    leg.reinvite = Some((req.cseq, tx));
                }
                let body = sdp::own_answer(local, &format);
                let mut b = Builder::response_to(&req, 200, "OK", None);
                b.header("Contact", &self.contact(req_transport(&req)))
                    .header("Allow", self.allow())
                    .header("Server", &self.settings.user_agent);
                let bytes = b.finish(Some("application/sdp"), &body);
                self.tx.send_response(now, tx, 200, bytes);
            }
            Method::Info => {
                self.reply(now, tx, &req, 200, "OK", None, None);
                if let Some(d) = info_digit(&req) {
                    self.placed_digit(now, key, side, d);
                }
            }
            Method::Options => self.reply(now, tx, &req, 200, "OK", None, None),
            Method::Refer => self.reply(
                now,
                tx,
                &req,
                403,
                "Forbidden",
                None,
                Some("transfer not allowed"),
            ),
            _ => {
                let mut b = Builder::response_to(&req, 405, "Method Not Allowed", None);
                b.header("Allow", self.allow());
                self.tx.send_response(now, tx, 405, b.finish(None, &[]));
            }
        }
    }

    /// ACK a 2xx on a dialog we do not want, then hang it up.
    pub(super) fn ack_and_bye(&mut self, now: Instant, mut d: Dialog, resp: &Message, why: &str) {
        let advertised = self.settings.advertised;
        d.remote_tag = resp.to_tag.clone();
        d.remote = resp.to.clone();
        if let Some(c) = resp.contact_uri.clone() {
            d.remote_target = c;
        }
        d.route_set = resp.record_routes().into_iter().rev().collect();
        let branch = self.tx.new_branch();
        self.tx
            .send_stateless(d.peer, d.ack(1, branch, advertised).to_bytes());
        let contact = super::contact_for(advertised, d.peer.transport);
        let mut bye = d.request(Method::Bye, self.tx.new_branch(), advertised, &contact);
        bye.extra
            .push(("Reason".into(), format!("SIP;cause=200;text=\"{why}\"")));
        self.tx.send_request(now, d.peer, bye);
    }

    /// End a placed call: hang up answered legs, cancel ringing ones, settle both legs'
    /// money once with one record, tell the requester why.
    pub(super) fn end_placed(&mut self, now: Instant, key: CallKey, cause: EndCause) {
        let Some(mut p) = self.placed.remove(&key) else {
            return;
        };
        let advertised = self.settings.advertised;
        let text = cause.text();
        for side in [Side::A, Side::B] {
            let leg = p.leg(side);
            if let Some(d) = leg.dialog.take() {
                self.dialogs
                    .remove(&(d.call_id.clone(), d.local_tag.clone()));
                if leg.answered.is_some() {
                    let mut d = d;
                    let contact = super::contact_for(advertised, d.peer.transport);
                    let mut bye =
                        d.request(Method::Bye, self.tx.new_branch(), advertised, &contact);
                    bye.extra.push((
                        "Reason".into(),
                        format!("SIP;cause=200;text=\"{}\"", text.replace('"', "'")),
                    ));
                    let tx = self.tx.send_request(now, d.peer, bye);
                    self.client_txs.insert(tx, (key, ClientPurpose::Bye));
                } else if let Some(tx) = leg.tx.take() {
                    if leg.provisional
                        && let Some(c) = self.tx.send_cancel(now, tx)
                    {
                        self.client_txs.insert(c, (key, ClientPurpose::Cancel));
                    }
                    // A 2xx that crosses the CANCEL is ACKed and hung up.
                    self.late_answers.insert(tx, d);
                }
            }
        }
        let media_stats = self.media.stats(p.media);
        self.media.release(p.media);
        self.media_calls.remove(&p.media);
        let late = &self.late_answers;
        self.client_txs.retain(|tx, (k, purpose)| {
            *k != key
                || matches!(purpose, ClientPurpose::Bye | ClientPurpose::Cancel)
                || late.contains_key(tx)
        });
        let ended_ms = self.unix_ms(now);
        let answered_ms = |l: &OutLeg| l.answered.map(|a| self.unix_ms(a));
        // What settlement bills from: nothing for a leg answered on-net.
        let billed_from = |l: &OutLeg| answered_ms(l).filter(|_| !l.on_net);
        let [a, b] = &p.legs;
        let leg_record = |l: &OutLeg, answered: Option<i64>| crate::cdr::RecordLeg {
            role: l.role.to_string(),
            number: l.number(),
            destination: l
                .current()
                .or(l.targets.last())
                .map(|t| t.destination.to_string())
                .unwrap_or_default(),
            answered_ms: answered,
            ended_ms,
            billed_secs: 0,
            cost: 0,
            reservation: l.auth.as_ref().map(|x| x.reservation).unwrap_or(0),
        };
        let (a_ms, b_ms) = (answered_ms(a), answered_ms(b));
        let record = self.settings.records.then(|| {
            Box::new(crate::cdr::CallRecord {
                id: 0,
                call_id: p.id.clone(),
                node: self.settings.node.clone(),
                caller: b.number(),
                callee: a.number(),
                account_id: p.account,
                card_id: p.card,
                destination: b
                    .targets
                    .first()
                    .map(|t| t.destination.to_string())
                    .unwrap_or_default(),
                trunks: a.dialled.iter().chain(&b.dialled).cloned().collect(),
                trunk: b.answered.and(b.dialled.last().cloned()),
                setup_ms: self.unix_ms(p.started),
                answered_ms: b_ms,
                ended_ms,
                billed_secs: 0,
                cost: 0,
                code: cause.sip_status(),
                cause: text.clone(),
                ended_by: cause.ended_by().into(),
                codec_caller: b.format.as_ref().map(|f| f.name()).unwrap_or_default(),
                codec_callee: a.format.as_ref().map(|f| f.name()).unwrap_or_default(),
                media: media_stats
                    .as_ref()
                    .and_then(|m| serde_json::to_value(m).ok()),
                legs: vec![leg_record(a, a_ms), leg_record(b, b_ms)],
            })
        });
        match (&a.auth, &b.auth) {
            (Some(first), Some(second)) => {
                self.billing_out
                    .push_back(BillingRequest::Settle(Settlement {
                        reservation: second.reservation,
                        call_id: second.call_id.clone(),
                        answered_ms: billed_from(b),
                        ended_ms,
                        cause: text.clone(),
                        record,
                        legs: vec![LegSettlement {
                            reservation: first.reservation,
                            call_id: first.call_id.clone(),
                            answered_ms: billed_from(a),
                        }],
                    }))
            }
            _ => {
                if let Some(record) = record {
                    self.billing_out.push_back(BillingRequest::Record(record));
                }
            }
        }
        if a.answered.is_some() {
            self.stats.calls_ended += 1;
        } else {
            self.stats.calls_failed += 1;
        }
        let talk = b.answered.map(|t| now.saturating_duration_since(t));
        info!(
            call = %p.id,
            cause = %text,
            talk_ms = talk.map(|d| d.as_millis() as u64).unwrap_or(0),
            "placed call ended"
        );
        self.finished.push(super::Outcome {
            call: p.id.clone(),
            number: b.number(),
            code: cause.sip_status(),
            cause: text,
            cause_code: cause.code(),
            setup: b.answered.map(|t| t.saturating_duration_since(p.started)),
            talk,
            media: media_stats,
        });
        self.progress(&p.id, "ended".into(), Some(cause), now);
    }
}

impl Manager {
    /// The ACK for the switch's 2xx to a re-INVITE on a placed call's leg.
    pub(super) fn placed_ack(&mut self, key: CallKey, side: Side, cseq: u32) {
        if let Some(p) = self.placed.get_mut(&key)
            && let Some((c, tx)) = p.leg(side).reinvite
            && c == cseq
        {
            p.leg(side).reinvite = None;
            self.tx.ack_received(tx);
        }
    }
}

/// The transport a request came over (for our Contact in the answer).
fn req_transport(req: &Message) -> crate::sip::Transport {
    match req.header("Via") {
        Some(v) if v.to_ascii_uppercase().contains("/TCP") => crate::sip::Transport::Tcp,
        _ => crate::sip::Transport::Udp,
    }
}

/// A digit sent as SIP INFO: `application/dtmf-relay` (`Signal=1`) or `application/dtmf`
/// (`1`).
pub fn info_digit(req: &Message) -> Option<char> {
    let kind = req.content_type()?.to_ascii_lowercase();
    let body = std::str::from_utf8(&req.body).ok()?;
    let value = if kind.starts_with("application/dtmf-relay") {
        body.lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
            })?
            .to_string()
    } else if kind.starts_with("application/dtmf") {
        body.trim().to_string()
    } else {
        return None;
    };
    let mut chars = value.chars();
    let d = chars.next()?;
    (chars.next().is_none() && (d.is_ascii_digit() || matches!(d, '*' | '#' | 'A'..='D')))
        .then_some(d)
}
