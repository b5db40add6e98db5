//! A placed call's legs on the wire: each leg's INVITE to its numbers in turn and its
//! trunks in failover order, what each response means for the call, ring-out, and the
//! late 2xx to an attempt given up on.

use super::{Flow, Target};
use crate::call::cause::EndCause;
use crate::call::outbound::{LegResponse, NewInvite};
use crate::call::{CallKey, CallTimer, ClientPurpose, Manager};
use crate::media::codec::Codec;
use crate::media::{Side, sdp};
use crate::sip::Message;
use crate::transaction::TxId;
use std::cmp::Reverse;
use std::time::Instant;
use tracing::info;

/// Where a leg's INVITE goes: the Request-URI, the peer it is sent to, the trunk's
/// credentials, the codecs to offer (none: every codec the switch speaks) and the name
/// the record gives the way it went.
pub(in crate::call) struct Dest<'a> {
    pub uri: String,
    pub peer: crate::transaction::Peer,
    pub credentials: Option<crate::auth::Credentials>,
    pub codecs: &'a [Codec],
    pub through: &'a str,
    /// The trunk's rules for presenting the caller (none: a registered phone, shown the
    /// number as it is).
    pub caller: Option<&'a crate::routing::CallerRules>,
}

impl Manager {
    /// Send the leg's INVITE to its current number on its current trunk; when the number
    /// has no trunk left, the next number; when no number is left, end the call.
    pub(in crate::call) fn dial_leg(&mut self, now: Instant, key: CallKey, side: Side) {
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
                    && let Some(peer) = crate::call::parse_source(&binding.source)
                {
                    leg.trunk = 1;
                    let uri = binding.contact.clone();
                    return self.send_leg_invite(
                        now,
                        key,
                        side,
                        &target,
                        Dest {
                            uri,
                            peer,
                            credentials: None,
                            codecs: &[],
                            through: "registered",
                            caller: None,
                        },
                    );
                }
                // Tried (or unusable): the next number.
                leg.failure.get_or_insert(EndCause::NoAnswer(leg.role));
                leg.target += 1;
                leg.trunk = 0;
                continue;
            }
            if leg.trunk == 0 && leg.trunks.is_empty() {
                let mut trunks = match self.routing.plan.lookup(&target.number).cloned() {
                    Some(route) => self.route_order(&route),
                    None => Vec::new(),
                };
                if trunks.iter().any(|&t| self.trunk_is_up(t, now)) {
                    trunks.retain(|&t| self.trunk_is_up(t, now));
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
            // A new trunk: it needs an address (its host name resolved) and room under
            // its caps, else the next trunk for the same number.
            if leg.hops.is_empty()
                && let Some(&index) = leg.trunks.get(leg.trunk)
            {
                if !self.has_targets(index) || !self.take_trunk(index, now) {
                    let Some(p) = self.placed.get_mut(&key) else {
                        return;
                    };
                    let leg = &mut p.legs[side.index()];
                    leg.failure = Some(EndCause::Unreachable(leg.role, 503));
                    leg.next_trunk();
                    continue;
                }
                let hops = self.attempt_targets(index, now);
                let Some(p) = self.placed.get_mut(&key) else {
                    return;
                };
                let leg = &mut p.legs[side.index()];
                leg.hops = hops;
                leg.hop = 0;
            }
            let Some(p) = self.placed.get_mut(&key) else {
                return;
            };
            let leg = &p.legs[side.index()];
            let index = leg.trunks.get(leg.trunk).copied();
            let Some((index, trunk, peer)) = index
                .and_then(|i| Some((i, self.routing.trunks.get(i).cloned()?, leg.hop_peer()?)))
            else {
                let leg = &mut p.legs[side.index()];
                leg.next_number();
                continue;
            };
            let uri = format!(
                "sip:{}@{}",
                trunk.numbers.apply(&target.number),
                self.trunk_uri_host(index, peer)
            );
            return self.send_leg_invite(
                now,
                key,
                side,
                &target,
                Dest {
                    uri,
                    peer,
                    credentials: trunk.credentials.clone(),
                    codecs: &trunk.codecs,
                    through: &trunk.name,
                    caller: Some(&trunk.caller),
                },
            );
        }
    }

    /// The leg's INVITE to `dest` (a trunk with its credentials, or a registered phone).
    pub(in crate::call) fn send_leg_invite(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        target: &Target,
        dest: Dest<'_>,
    ) {
        let Dest {
            uri,
            peer,
            credentials,
            codecs,
            through,
            caller: rules,
        } = dest;
        let call_id = format!("{}@freecall", self.tx.new_token());
        let from_tag = self.tx.new_token();
        let branch = self.tx.new_branch();
        let advertised = self.advertised_for(peer.transport);
        let user_agent = self.settings.user_agent.clone();
        let allow = self.allow();
        let ring = self.settings.placed_ring;
        let Some(p) = self.placed.get_mut(&key) else {
            return;
        };
        // Who the phone shows as calling: the visitor's number to the issuer (it is read
        // out too), the issuer's number to the visitor (the number on the card).
        let shown = match (&self.settings.visitor_sees, p.legs[side.index()].role) {
            (Some(n), "visitor") => n.clone(),
            _ => p.legs[side.other().index()].number(),
        };
        let caller = crate::routing::CallerId {
            number: (!shown.is_empty()).then_some(shown),
            private: false,
            verified: true,
        };
        let presentation = match rules {
            Some(rules) => rules.present(&caller),
            None => crate::routing::Presentation {
                from_user: caller.number.unwrap_or_else(|| "anonymous".into()),
                asserted: None,
                private: false,
            },
        };
        let offer = sdp::own_offer(p.endpoints.local(side), codecs);
        let (request, old) = p.leg(side).invite(NewInvite {
            call_id: call_id.clone(),
            from_tag: from_tag.clone(),
            branch,
            uri,
            peer,
            caller: &presentation,
            advertised,
            max_forwards: 70,
            allow,
            user_agent,
            offer,
            credentials,
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
    pub(in crate::call) fn handle_leg_response(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        tx: TxId,
        resp: Message,
    ) {
        let code = resp.status().unwrap_or(0);
        let advertised = self.leg_advertised(tx);
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
            LegResponse::Resend(request, peer) => {
                self.client_txs.remove(&tx);
                info!(code, "the trunk asked for credentials: answered once");
                let again = self.tx.send_request(now, peer, request);
                if let Some(p) = self.placed.get_mut(&key) {
                    p.leg(side).tx = Some(again);
                }
                self.client_txs
                    .insert(again, (key, ClientPurpose::PlacedInvite(side)));
            }
            LegResponse::Failed(code) => {
                self.client_txs.remove(&tx);
                if code == 503
                    && let Some(p) = self.placed.get(&key)
                    && let Some(&index) =
                        p.legs[side.index()].trunks.get(p.legs[side.index()].trunk)
                {
                    let peer = p.legs[side.index()].hop_peer();
                    self.trunk_busy_for(index, peer, now, &resp);
                }
                self.leg_failed(now, key, side, code);
            }
        }
    }

    /// The leg's INVITE got no answer at all (Timer B).
    pub(in crate::call) fn placed_leg_timed_out(&mut self, now: Instant, key: CallKey, side: Side) {
        let mut silent = None;
        if let Some(p) = self.placed.get_mut(&key) {
            let leg = p.leg(side);
            leg.tx = None;
            silent = leg.hop_peer();
        }
        if let Some(peer) = silent {
            self.target_failed(peer, now);
        }
        self.leg_failed(now, key, side, 408);
    }

    /// The leg's INVITE failed with `code` (408 for a timeout): next trunk, next number,
    /// or the end of the call, as the status says.
    pub(in crate::call) fn leg_failed(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        code: u16,
    ) {
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
                // The trunk failed: its next address, else the next trunk for the same
                // number.
                leg.failure = Some(cause);
                leg.next_candidate();
                self.dial_leg(now, key, side);
            }
            _ => {
                leg.failure = Some(cause);
                leg.next_number();
                self.dial_leg(now, key, side);
            }
        }
    }

    /// The leg rang out: cancel it and ring its next number.
    pub(in crate::call) fn leg_ring_timeout(
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
        leg.next_number();
        if provisional && let Some(c) = self.tx.send_cancel(now, tx) {
            self.client_txs.insert(c, (key, ClientPurpose::Cancel));
        }
        self.dial_leg(now, key, side);
    }
}
