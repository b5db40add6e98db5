//! The inbound flow after admission (`admission.rs`): the B-leg INVITE, failover,
//! answer, CANCEL, and the switch's own hang-ups.

use super::outbound::{LegResponse, NewInvite};
use super::outcome::{map_trunk_failure, phrase, refusal_prompt};
use super::{
    CallKey, CallTimer, ClientPurpose, EndCause, Manager, Rejection, ServerPurpose, State,
};
use crate::billing::{Authorization, BillingRequest, Refusal, Settlement};
use crate::media::{Play, Side, sdp};
use crate::sip::{Builder, Message, Method};
use crate::transaction::{Peer, TxId};
use std::cmp::Reverse;
use std::time::Instant;
use tracing::{info, warn};

impl Manager {
    /// The accounting service reserved the call's money: dial the trunk.
    pub(super) fn handle_authorized(&mut self, now: Instant, key: CallKey, auth: Authorization) {
        match self.calls.get_mut(&key) {
            Some(call) if call.state == State::Authorizing => {
                info!(call = %call.id, max_secs = auth.max_secs, account = auth.account, "call authorized");
                if let Some(user) = &call.auth_user {
                    self.guard.succeeded(user);
                }
                call.paid = Some(auth);
                call.state = State::Trying;
                self.send_b_invite(now, key);
            }
            _ => {
                // The caller gave up while we were reserving: give the money back.
                let ended_ms = self.unix_ms(now);
                self.billing_out
                    .push_back(BillingRequest::Settle(Settlement {
                        reservation: auth.reservation,
                        call_id: self
                            .calls
                            .get(&key)
                            .map(|c| c.id.clone())
                            .unwrap_or_default(),
                        answered_ms: None,
                        ended_ms,
                        cause: "caller gave up before the call was placed".into(),
                        // The call's record was written when it ended.
                        record: None,
                        legs: Vec::new(),
                    }));
            }
        }
    }

    /// The accounting service refused the call: tell the caller why.
    pub(super) fn handle_refused(&mut self, now: Instant, key: CallKey, refusal: Refusal) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if call.state != State::Authorizing {
            return;
        }
        let code = refusal.sip_status();
        let text = refusal.to_string();
        info!(call = %call.id, code, reason = %text, "call refused by billing");
        if refusal == Refusal::BadCredentials {
            let (ip, user) = (call.client, call.auth_user.clone().unwrap_or_default());
            self.auth_failed(ip, &user, now);
        }
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let playable = sdp::caller_playable(&call.a_formats);
        if self.settings.media.announce
            && let (Some(prompt), Some(format)) = (refusal_prompt(&refusal), playable)
        {
            // Tell the caller why, as early media, then the final status.
            let Ok((body, _)) = sdp::rewrite_formats(
                &call.a_invite.body,
                call.endpoints.a,
                &sdp::answer_formats(&format),
            ) else {
                return self.send_refusal(now, key, refusal);
            };
            let media = call.media;
            let bytes = self.response_to_a(key, 183, "Session Progress", Some(body));
            let (Some(bytes), Some(call)) = (bytes, self.calls.get_mut(&key)) else {
                return;
            };
            call.state = State::Announcing;
            call.refusal = Some(refusal);
            call.a_format = Some(format.clone());
            let a_tx = call.a_invite_tx;
            self.tx.send_response(now, a_tx, 183, bytes);
            self.media.set_format(media, Side::A, format);
            self.media.play(media, Side::A, Play::Prompt(prompt.into()));
            self.timers.push(Reverse((
                now + std::time::Duration::from_secs(20),
                key,
                CallTimer::AnnounceEnd,
            )));
            return;
        }
        self.send_refusal(now, key, refusal);
    }

    /// The announcement of a refusal ended (or took too long): the final status.
    pub(super) fn end_announcement(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.state != State::Announcing {
            return;
        }
        if let Some(refusal) = call.refusal.take() {
            self.send_refusal(now, key, refusal);
        }
    }

    fn send_refusal(&mut self, now: Instant, key: CallKey, refusal: Refusal) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let code = refusal.sip_status();
        let a_tx = call.a_invite_tx;
        let mut b =
            Builder::response_to(&call.a_invite, code, phrase(code), Some(&call.a.local_tag));
        b.reason(code, &refusal.to_string())
            .header("Server", &self.settings.user_agent);
        self.tx.send_response(now, a_tx, code, b.finish(None, &[]));
        self.stats.calls_refused += 1;
        self.finish(now, key, code, EndCause::Refused(refusal));
    }

    /// Send the INVITE to the current trunk: a new dialog with its own Call-ID, tags, Via
    /// and Contact. Nothing of the caller's topology (Via, Contact, Record-Route, Call-ID,
    /// tags) is copied; the calling number is kept as the user part of From.
    pub(super) fn send_b_invite(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if let Some((contact, peer)) = call.direct.clone() {
            return self.send_direct_invite(now, key, contact, peer);
        }
        // A new trunk: one with an address (a host name may not be resolved yet) and
        // below its caps (calls at once, calls per second) — a trunk at its cap passes
        // the call on to the next; the caller hears 503 only when none is left. Its
        // addresses are then tried in turn before the next trunk.
        if call.b.hops.is_empty() {
            let (trunks, from) = (call.b.trunks.clone(), call.b.trunk);
            let free = (from..trunks.len())
                .find(|&j| self.has_targets(trunks[j]) && self.take_trunk(trunks[j], now));
            let Some(free) = free else {
                let unresolved = (from..trunks.len()).all(|j| !self.has_targets(trunks[j]));
                if from < trunks.len() {
                    let why = if unresolved {
                        "no address for the trunk's host name (DNS)"
                    } else {
                        "every trunk of the route is at its limit"
                    };
                    return self.abandon(
                        now,
                        key,
                        503,
                        "Service Unavailable",
                        EndCause::Trunk(503, why.into()),
                    );
                }
                return self.abandon(now, key, 503, "Service Unavailable", EndCause::TrunkGone);
            };
            let hops = self.attempt_targets(trunks[free], now);
            let Some(call) = self.calls.get_mut(&key) else {
                return;
            };
            call.b.trunk = free;
            call.b.hops = hops;
            call.b.hop = 0;
        }
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        // Indices are into the routing the call started with; a reload may have shrunk it.
        let index = call.b.trunks.get(call.b.trunk).copied();
        let (Some(index), Some(peer)) = (index, call.b.hop_peer()) else {
            return self.abandon(now, key, 503, "Service Unavailable", EndCause::TrunkGone);
        };
        let uri_host = self.trunk_uri_host(index, peer);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(trunk) = self.routing.trunks.get(index) else {
            return self.abandon(now, key, 503, "Service Unavailable", EndCause::TrunkGone);
        };
        let offer = if trunk.codecs.is_empty() {
            // The caller's offer as it is: the trunk picks, media is relayed untouched.
            sdp::rewrite(&call.a_invite.body, call.endpoints.b).map(|(b, _)| b)
        } else {
            sdp::offer_for_trunk(&call.a_formats, &trunk.codecs).and_then(|formats| {
                sdp::rewrite_formats(&call.a_invite.body, call.endpoints.b, &formats)
                    .map(|(b, _)| b)
            })
        };
        let offer = match offer {
            Ok(o) => o,
            Err(e) => {
                info!(call = %call.id, trunk = %trunk.name, error = %e, "no codec in common with trunk");
                if call.b.next_trunk() {
                    return self.send_b_invite(now, key);
                }
                return self.abandon(
                    now,
                    key,
                    488,
                    "Not Acceptable Here",
                    EndCause::NoCommonCodec,
                );
            }
        };
        let uri = format!("sip:{}@{}", trunk.numbers.apply(&call.number), uri_host);
        info!(call = %call.id, trunk = %trunk.name, dest = %peer.addr, "dialling trunk");
        let credentials = trunk.credentials.clone();
        let caller = trunk.caller.present(&call.caller);
        call.b.dialled.push(trunk.name.clone());
        self.send_b_request(
            now,
            key,
            BRequest {
                uri,
                peer,
                offer,
                credentials,
                caller,
            },
        );
    }

    /// A call to a member's registered phone: the Contact as Request-URI, sent to the
    /// address the phone registered from, with the caller's offer as it is.
    fn send_direct_invite(&mut self, now: Instant, key: CallKey, contact: String, peer: Peer) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        match sdp::rewrite(&call.a_invite.body, call.endpoints.b) {
            Ok((offer, _)) => {
                // A member's own phone, on-net: shown the caller as they are.
                let caller = crate::routing::Presentation {
                    from_user: match (&call.caller.number, call.caller.private) {
                        (Some(n), false) => n.clone(),
                        _ => "anonymous".into(),
                    },
                    asserted: None,
                    private: call.caller.private,
                };
                self.send_b_request(
                    now,
                    key,
                    BRequest {
                        uri: contact,
                        peer,
                        offer,
                        credentials: None,
                        caller,
                    },
                )
            }
            Err(e) => self.abandon(
                now,
                key,
                488,
                "Not Acceptable Here",
                EndCause::Rejected(Rejection::BadSdp(e.to_string())),
            ),
        }
    }

    /// Send the B-leg's INVITE to `uri` at `peer`: a new dialog with its own Call-ID,
    /// tags, Via and Contact; the caller presented as the trunk wants.
    fn send_b_request(&mut self, now: Instant, key: CallKey, r: BRequest) {
        let BRequest {
            uri,
            peer,
            offer,
            credentials,
            caller,
        } = r;
        let call_id = format!("{}@freecall", self.tx.new_token());
        let from_tag = self.tx.new_token();
        let branch = self.tx.new_branch();
        let advertised = self.advertised_for(peer.transport);
        let allow = self.allow();
        let user_agent = self.settings.user_agent.clone();
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let max_forwards = call.a_invite.max_forwards.unwrap_or(70).saturating_sub(1);
        let (request, old) = call.b.invite(NewInvite {
            call_id: call_id.clone(),
            from_tag: from_tag.clone(),
            branch,
            uri,
            peer,
            caller: &caller,
            advertised,
            max_forwards,
            allow,
            user_agent,
            offer,
            credentials,
        });
        if let Some(old) = old {
            self.dialogs.remove(&(old.call_id, old.local_tag));
        }
        self.dialogs.insert((call_id, from_tag), (key, Side::B));
        let tx = self.tx.send_request(now, peer, request);
        call.b.tx = Some(tx);
        self.client_txs.insert(tx, (key, ClientPurpose::BInvite));
    }

    pub(super) fn handle_b_invite_response(
        &mut self,
        now: Instant,
        key: CallKey,
        tx: TxId,
        resp: Message,
    ) {
        let code = resp.status().unwrap_or(0);
        let advertised = self.leg_advertised(tx);
        let branch = self.tx.new_branch();
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let cancelling = call.state == State::Cancelling;
        match call.b.handle_response(tx, &resp, now, branch, advertised) {
            LegResponse::Stale | LegResponse::Trying if !cancelling => {}
            LegResponse::Trying | LegResponse::Provisional if cancelling => {
                // The CANCEL waited for a provisional (RFC 3261 9.1).
                if let Some(c) = self.tx.send_cancel(now, tx) {
                    self.client_txs.insert(c, (key, ClientPurpose::Cancel));
                }
            }
            LegResponse::Stale | LegResponse::Trying => {}
            LegResponse::Provisional => self.b_leg_ringing(now, key, code, resp),
            LegResponse::AnsweredAgain(ack, peer) => self.tx.send_stateless(peer, ack),
            LegResponse::Fork(d) => self.ack_and_bye(now, d, &resp, "call already answered"),
            LegResponse::Answered(ack, peer) if cancelling => {
                // Answered after the caller gave up: acknowledged, then hung up.
                self.tx.send_stateless(peer, ack);
                if let Some(d) = call.b.dialog.as_mut() {
                    let contact = super::contact_for(advertised, peer.transport);
                    let mut bye =
                        d.request(Method::Bye, self.tx.new_branch(), advertised, &contact);
                    bye.extra.push((
                        "Reason".into(),
                        "SIP;cause=487;text=\"caller cancelled\"".into(),
                    ));
                    self.tx.send_request(now, peer, bye);
                }
                self.finish(now, key, 487, EndCause::CallerCancelled);
            }
            LegResponse::Answered(ack, peer) => {
                self.tx.send_stateless(peer, ack);
                self.handle_b_answer(now, key, resp);
            }
            LegResponse::Resend(_, _) if cancelling => {
                // The caller gave up meanwhile: the challenge ends the attempt.
                self.client_txs.remove(&tx);
                self.b_leg_failed(now, key, code, resp.reason_phrase().to_string());
            }
            LegResponse::Resend(request, peer) => {
                self.client_txs.remove(&tx);
                info!(call = %call.id, code, "the trunk asked for credentials: answered once");
                let again = self.tx.send_request(now, peer, request);
                call.b.tx = Some(again);
                self.client_txs.insert(again, (key, ClientPurpose::BInvite));
            }
            LegResponse::Failed(code) => {
                self.client_txs.remove(&tx);
                if code == 503
                    && let Some(&index) = call.b.trunks.get(call.b.trunk)
                    && call.direct.is_none()
                {
                    let peer = call.b.hop_peer();
                    self.trunk_busy_for(index, peer, now, &resp);
                }
                self.b_leg_failed(now, key, code, resp.reason_phrase().to_string());
            }
        }
    }

    /// The trunk rings (18x): relay it to the caller with our SDP, or play our ringback.
    fn b_leg_ringing(&mut self, now: Instant, key: CallKey, code: u16, resp: Message) {
        let mut body = self.answer_sdp(key, &resp);
        let mut code_to_a = code;
        let mut phrase_to_a = resp.reason_phrase().to_string();
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if body.is_none() && call.local_media {
            // Our ringback already plays: the caller knows it rings.
            return;
        }
        if body.is_none()
            && self.settings.media.local_ringback
            && call.a_format.is_none()
            && let Some(format) = sdp::caller_playable(&call.a_formats)
            && let Ok((ours, _)) = sdp::rewrite_formats(
                &call.a_invite.body,
                call.endpoints.a,
                &sdp::answer_formats(&format),
            )
        {
            call.local_media = true;
            call.a_format = Some(format.clone());
            self.media.set_format(call.media, Side::A, format);
            self.media
                .play(call.media, Side::A, Play::Prompt("please-hold".into()));
            self.media.play(call.media, Side::A, Play::Ringback);
            body = Some(ours);
            code_to_a = 183;
            phrase_to_a = "Session Progress".into();
        }
        call.state = State::Early;
        let a_tx = call.a_invite_tx;
        if let Some(bytes) = self.response_to_a(key, code_to_a, &phrase_to_a, body) {
            self.tx.send_response(now, a_tx, code_to_a, bytes);
        }
    }

    /// The trunk's first 2xx (already acknowledged): answer the caller.
    fn handle_b_answer(&mut self, now: Instant, key: CallKey, resp: Message) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if !resp.has_sdp() {
            warn!(call = %call.id, "trunk answered without SDP");
            return self.abandon(
                now,
                key,
                502,
                "Bad Gateway",
                EndCause::TrunkAnsweredWithoutSdp,
            );
        }
        let body = self.answer_sdp(key, &resp);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.state = State::Answered;
        call.answered = Some(now);
        self.stats.calls_answered += 1;
        let media = call.media;
        let a_tx = call.a_invite_tx;
        let recording = call.record.then(|| {
            self.settings
                .media
                .recordings
                .join(format!("{}.wav", call.id))
        });
        info!(call = %call.id, setup_ms = now.saturating_duration_since(call.started).as_millis() as u64, "call answered");
        if let Some(paid) = &call.paid {
            let limit = now + std::time::Duration::from_secs(paid.max_secs.max(0) as u64);
            let reservation = paid.reservation;
            self.timers.push(Reverse((limit, key, CallTimer::Limit)));
            let warning = self.settings.media.warning;
            let length = std::time::Duration::from_secs(paid.max_secs.max(0) as u64);
            if self.settings.media.announce && !warning.is_zero() && length > warning * 2 {
                self.timers
                    .push(Reverse((limit - warning, key, CallTimer::Warn)));
            }
            let answered_ms = self.unix_ms(now);
            self.billing_out.push_back(BillingRequest::Answered {
                reservation,
                answered_ms,
            });
        }
        if let Some(file) = recording {
            self.media.record(media, file);
        }
        self.media.arm(media);
        if let Some(bytes) = self.response_to_a(key, 200, "OK", body) {
            self.tx.send_response(now, a_tx, 200, bytes);
        }
    }

    /// The B-leg's SDP rewritten for the caller (and the B-leg's media address noted).
    fn answer_sdp(&mut self, key: CallKey, resp: &Message) -> Option<Vec<u8>> {
        if !resp.has_sdp() {
            return None;
        }
        let call = self.calls.get_mut(&key)?;
        let trunk = sdp::formats(&resp.body).ok().and_then(|f| sdp::chosen(&f));
        let caller = match (&call.a_format, &trunk) {
            (Some(f), _) => Some(f.clone()),
            (None, Some(t)) => sdp::caller_format(&call.a_formats, t),
            (None, None) => None,
        };
        let rewritten = match &caller {
            Some(f) => sdp::rewrite_formats(&resp.body, call.endpoints.a, &sdp::answer_formats(f)),
            None => sdp::rewrite(&resp.body, call.endpoints.a),
        };
        match rewritten {
            Ok((body, remote)) => {
                if call.local_media {
                    // The trunk's own early media or answer replaces our ringback.
                    call.local_media = false;
                    self.media.stop_playing(call.media, Side::A);
                }
                self.media.set_remote(call.media, Side::B, remote);
                if let (Some(a), Some(b)) = (caller, trunk) {
                    call.a_format = Some(a.clone());
                    call.b.format = Some(b.clone());
                    self.media.set_format(call.media, Side::A, a);
                    self.media.set_format(call.media, Side::B, b);
                }
                Some(body)
            }
            Err(e) => {
                warn!(call = %call.id, error = %e, "unusable SDP from trunk");
                None
            }
        }
    }

    /// A response to the caller's INVITE carrying our tag and Contact.
    fn response_to_a(
        &self,
        key: CallKey,
        code: u16,
        phrase: &str,
        body: Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        let call = self.calls.get(&key)?;
        let mut b = Builder::response_to(&call.a_invite, code, phrase, Some(&call.a.local_tag));
        b.header("Contact", &self.contact(call.a.peer.transport))
            .header("Allow", self.allow())
            .header("Server", &self.settings.user_agent);
        Some(match body {
            Some(body) => b.finish(Some("application/sdp"), &body),
            None => b.finish(None, &[]),
        })
    }

    /// The trunk refused or timed out: try the next trunk or tell the caller.
    pub(super) fn b_leg_failed(&mut self, now: Instant, key: CallKey, code: u16, reason: String) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.state == State::Cancelling {
            return self.finish(now, key, 487, EndCause::CallerCancelled);
        }
        let (a_code, a_phrase, retry) = map_trunk_failure(code);
        if retry && call.b.next_candidate() {
            info!(call = %call.id, code, "trunk failed, trying the next address or trunk");
            return self.send_b_invite(now, key);
        }
        self.stats.calls_failed += 1;
        let a_tx = call.a_invite_tx;
        let tag = call.a.local_tag.clone();
        let mut b = Builder::response_to(&call.a_invite, a_code, a_phrase, Some(&tag));
        let text = if reason.is_empty() {
            phrase(code).to_string()
        } else {
            reason
        };
        b.reason(code, &text)
            .header("Server", &self.settings.user_agent);
        self.tx
            .send_response(now, a_tx, a_code, b.finish(None, &[]));
        self.finish(now, key, a_code, EndCause::Trunk(code, text));
    }

    /// The caller's CANCEL matched its INVITE: 487 to the caller, CANCEL to the trunk.
    pub(super) fn handle_cancel(&mut self, now: Instant, invite: TxId) {
        let Some((key, ServerPurpose::InitialInvite)) = self.server_txs.get(&invite).copied()
        else {
            return;
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.state == State::Answered {
            return;
        }
        info!(call = %call.id, "caller cancelled");
        call.state = State::Cancelling;
        // A trunk that never answers the CANCEL must not hold the call (and its money)
        // for ever: give it 64×T1, as RFC 3261 gives a transaction (section 9.1).
        let give_up = now + self.settings.timers.t1 * 64;
        self.timers
            .push(Reverse((give_up, key, CallTimer::NoAnswer)));
        let b_tx = call.b.tx;
        let provisional = call.b.provisional;
        if let Some(bytes) = self.response_to_a(key, 487, "Request Terminated", None) {
            self.tx.send_response(now, invite, 487, bytes);
        }
        match b_tx {
            Some(b_tx) if provisional => {
                if let Some(c) = self.tx.send_cancel(now, b_tx) {
                    self.client_txs.insert(c, (key, ClientPurpose::Cancel));
                } else {
                    self.finish(now, key, 487, EndCause::CallerCancelled);
                }
            }
            // No provisional yet: the CANCEL is sent when one arrives; a trunk that stays
            // silent times out (Timer B) and the call is removed then.
            Some(_) => {}
            None => self.finish(now, key, 487, EndCause::CallerCancelled),
        }
    }

    /// End a call that is not answered: tell the caller `code`, cancel the trunk.
    pub(super) fn abandon(
        &mut self,
        now: Instant,
        key: CallKey,
        code: u16,
        phrase: &str,
        cause: EndCause,
    ) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let a_tx = call.a_invite_tx;
        let b_tx = call.b.tx;
        let answered = call.state == State::Answered;
        let tag = call.a.local_tag.clone();
        if !answered {
            let mut b = Builder::response_to(&call.a_invite, code, phrase, Some(&tag));
            b.reason(code, &cause.text());
            self.tx.send_response(now, a_tx, code, b.finish(None, &[]));
        }
        if let Some(b_tx) = b_tx
            && let Some(c) = self.tx.send_cancel(now, b_tx)
        {
            self.client_txs.insert(c, (key, ClientPurpose::Cancel));
        }
        if answered {
            // The trunk's 2xx arrived but the call cannot go on: hang up the trunk leg.
            self.send_bye(now, key, Side::B, &cause);
        }
        self.stats.calls_failed += 1;
        self.finish(now, key, code, cause);
    }

    /// The switch ends a call itself (RTP timeout, missing ACK, shutdown).
    pub(super) fn hangup(&mut self, now: Instant, key: CallKey, cause: EndCause) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        match call.state {
            State::Answered => {
                self.send_bye(now, key, Side::A, &cause);
                self.send_bye(now, key, Side::B, &cause);
                self.finish(now, key, 200, cause);
            }
            State::Authorizing | State::Locating | State::Trying | State::Early => {
                self.abandon(now, key, 503, "Service Unavailable", cause)
            }
            State::Cancelling => self.finish(now, key, 487, cause),
            State::Announcing => self.end_announcement(now, key),
        }
    }

    /// BYE on one leg with a Reason header saying why.
    pub(super) fn send_bye(&mut self, now: Instant, key: CallKey, side: Side, cause: &EndCause) {
        let branch = self.tx.new_branch();
        let Some(transport) = self
            .calls
            .get_mut(&key)
            .and_then(|c| c.dialog_mut(side))
            .map(|d| d.peer.transport)
        else {
            return;
        };
        let advertised = self.advertised_for(transport);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(d) = call.dialog_mut(side) else {
            return;
        };
        let peer = d.peer;
        let contact = super::contact_for(advertised, transport);
        let mut bye = d.request(Method::Bye, branch, advertised, &contact);
        bye.extra.push((
            "Reason".into(),
            format!("SIP;cause=200;text=\"{}\"", cause.text().replace('"', "'")),
        ));
        let tx = self.tx.send_request(now, peer, bye);
        self.client_txs.insert(tx, (key, ClientPurpose::Bye));
    }
}

/// The B-leg's next INVITE: where to, with what offer and credentials, and how the caller
/// is presented.
struct BRequest {
    uri: String,
    peer: Peer,
    offer: Vec<u8>,
    credentials: Option<crate::auth::Credentials>,
    caller: crate::routing::Presentation,
}
