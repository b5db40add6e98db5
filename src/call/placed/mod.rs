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
use super::outbound::OutLeg;
use super::{CallKey, CallTimer, Manager};
use crate::billing::{Authorization, BillingRequest, LegSettlement, RecordingStarted, Settlement};
use crate::clip::Clip;
use crate::media::{Endpoints, MediaId, Play, Side, sdp};
use crate::numbers::DestinationKind;
use crate::sip::Message;
use crate::transaction::TxId;
use std::cmp::Reverse;
use std::time::{Duration, Instant};
use tracing::{info, warn};

mod dial;
mod end;
pub use end::info_digit;

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
    /// The issuer's whisper, the card's greetings, a recording asked for.
    pub extras: Extras,
}

/// What a placed call plays and keeps besides the shipped prompts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extras {
    /// Played to the first party when it answers, before anything else (the issuer's
    /// own short whisper: which card, which line).
    pub whisper: Option<Clip>,
    /// What the visitor hears when the issuer cannot take the call.
    pub greetings: Greetings,
    /// Record the call once both are connected; both first hear that it is recorded.
    pub record: bool,
}

/// A greeting's voice: the shipped one in the call's language, or the issuer's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Voice {
    Shipped,
    Uploaded(Clip),
}

/// A card's greetings: when the issuer does not answer, declines or is busy, the visitor
/// is dialled only to hear the one for that case, and the call ends. `None`: the visitor
/// is not dialled at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Greetings {
    pub no_answer: Option<Voice>,
    pub declined: Option<Voice>,
    pub busy: Option<Voice>,
}

impl Greetings {
    /// The greeting for why the issuer's leg ended (its case's name and voice), if the
    /// card has one.
    fn for_cause(&self, cause: &EndCause) -> Option<(&'static str, &Voice)> {
        let (event, voice) = match cause {
            EndCause::Declined => ("declined", &self.declined),
            EndCause::Busy("issuer") => ("busy", &self.busy),
            EndCause::NoAnswer("issuer")
            | EndCause::NoKeyPressed
            | EndCause::Unreachable("issuer", _) => ("no-answer", &self.no_answer),
            _ => return None,
        };
        voice.as_ref().map(|v| (event, v))
    }
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

/// The longest a greeting call stays up after the visitor answered (a greeting is at most
/// 30 s, and the extension's digits come first).
const GREETING_GUARD: Duration = Duration::from_secs(45);

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
    /// The issuer could not take the call: the visitor is dialled to hear the card's
    /// greeting, then the call ends as the issuer's leg did.
    Greeting,
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
    extras: Extras,
    /// When the first leg was hung up while the second goes on (a greeting): it is billed
    /// up to here, not to the call's end.
    first_ended: Option<Instant>,
    /// Why the issuer's leg ended, while the visitor hears the greeting.
    greeting_for: Option<EndCause>,
}

impl Placed {
    pub(super) fn card(&self) -> Option<i64> {
        self.card
    }

    /// How many of this call's legs have their current attempt out on trunk `index`.
    pub(super) fn legs_on_trunk(&self, index: usize) -> usize {
        self.legs
            .iter()
            .filter(|l| {
                l.dialog.is_some()
                    && l.current().is_some_and(|t| t.registered.is_none())
                    && l.trunks.get(l.trunk) == Some(&index)
            })
            .count()
    }

    /// The trunk of the leg whose dialog talks to `peer` (not a registered phone).
    pub(super) fn trunk_towards(&self, peer: crate::transaction::Peer) -> Option<usize> {
        self.legs
            .iter()
            .find(|l| {
                l.dialog.as_ref().is_some_and(|d| d.peer == peer)
                    && l.current().is_some_and(|t| t.registered.is_none())
            })
            .and_then(|l| l.trunks.get(l.trunk).copied())
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
            extras: o.extras.clone(),
            first_ended: None,
            greeting_for: None,
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
                    ended_ms: None,
                }],
            }));
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
        if let Some(whisper) = p.extras.whisper.clone() {
            self.media.play(media, Side::A, Play::Clip(whisper));
        }
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

    /// The second party answered: send its post-dial digits, bridge (or, for a greeting,
    /// play it).
    fn bridge(&mut self, now: Instant, key: CallKey) {
        let started_ms = self.unix_ms(now);
        let Some(p) = self.placed.get_mut(&key) else {
            return;
        };
        let media = p.media;
        let id = p.id.clone();
        let post_dial = p.legs[1]
            .current()
            .map(|t| t.post_dial.clone())
            .unwrap_or_default();
        if !post_dial.is_empty() {
            self.media
                .play(media, Side::B, Play::Digits(post_dial.clone()));
        }
        if p.stage == Stage::Greeting {
            let greeting = p
                .greeting_for
                .as_ref()
                .and_then(|c| p.extras.greetings.for_cause(c))
                .map(|(event, voice)| match voice {
                    Voice::Shipped => p.prompt(&format!("greeting-{event}")),
                    Voice::Uploaded(clip) => Play::Clip(clip.clone()),
                });
            let limit = p.legs[1].auth.as_ref().map(|a| a.max_secs);
            if let Some(greeting) = greeting {
                self.media.play(media, Side::B, greeting);
            }
            if let Some(secs) = limit.filter(|_| p.legs[0].answered.is_none()) {
                // Nobody answered before: the reservation's time runs from here.
                let limit = now + Duration::from_secs(secs.max(0) as u64);
                self.timers.push(Reverse((limit, key, CallTimer::Limit)));
            }
            // A greeting lasts at most 30 s: whatever happens to its playing, the call
            // ends soon after (as the issuer's leg did).
            self.timers
                .push(Reverse((now + GREETING_GUARD, key, CallTimer::Limit)));
            info!(call = %id, "the visitor hears the card's greeting");
            self.progress(&id, "greeting".into(), None, now);
            return;
        }
        p.stage = Stage::Connected;
        let greet = (post_dial.is_empty() && p.flow == Flow::Callback)
            .then(|| p.prompt("callback-connected"));
        let recorded = p.extras.record.then(|| p.prompt("call-recorded"));
        self.media.stop_playing(media, Side::A);
        if let Some(notice) = recorded {
            // Both hear it, and it is the recording's first words.
            let path = self.settings.media.recordings.join(format!("{id}.wav"));
            self.media.record(media, path.clone());
            self.media.play(media, Side::A, notice.clone());
            self.media.play(media, Side::B, notice);
            let (card, account) = (p.card, p.account);
            self.billing_out
                .push_back(BillingRequest::Recording(Box::new(RecordingStarted {
                    call_id: id.clone(),
                    path: path.display().to_string(),
                    card,
                    account,
                    started_ms,
                })));
        } else if let Some(greet) = greet {
            self.media.play(media, Side::B, greet);
        }
        self.stats.calls_answered += 1;
        info!(call = %id, "connected");
        self.progress(&id, "connected".into(), None, now);
    }

    /// The issuer's leg ended without the call: if the card has a greeting for why, hang
    /// the issuer up and dial the visitor to hear it; true when that was done.
    pub(super) fn divert_to_greeting(
        &mut self,
        now: Instant,
        key: CallKey,
        cause: &EndCause,
    ) -> bool {
        let Some(p) = self.placed.get_mut(&key) else {
            return false;
        };
        if p.flow != Flow::Callback
            || !matches!(p.stage, Stage::CallingFirst | Stage::Asking)
            || p.extras.greetings.for_cause(cause).is_none()
        {
            return false;
        }
        p.stage = Stage::Greeting;
        p.greeting_for = Some(cause.clone());
        p.first_ended = Some(now);
        let media = p.media;
        let id = p.id.clone();
        self.media.stop_playing(media, Side::A);
        if let Some(mut p) = self.placed.remove(&key) {
            self.hang_up_leg(now, key, p.leg(Side::A), &cause.text());
            self.placed.insert(key, p);
        }
        info!(call = %id, cause = %cause.text(), "the issuer cannot take the call: greeting the visitor");
        self.dial_leg(now, key, Side::B);
        true
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
        if side == Side::B && p.stage == Stage::Greeting && p.legs[1].answered.is_some() {
            // The greeting has been heard: the call ends as the issuer's leg did.
            let cause = p.greeting_for.clone().unwrap_or(EndCause::Declined);
            self.end_placed(now, key, cause);
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
            CallTimer::Warn if p.stage == Stage::Greeting => {}
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
}
