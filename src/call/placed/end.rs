//! A placed call once its legs are up: requests inside their dialogs (BYE, re-offers,
//! INFO digits), and the end — hang-ups, one settlement for both legs, one record.

use super::OutLeg;
use crate::billing::{BillingRequest, LegSettlement, Settlement};
use crate::call::cause::EndCause;
use crate::call::{CallKey, ClientPurpose, Manager};
use crate::dialog::Dialog;
use crate::media::{Side, sdp};
use crate::sip::{Builder, Message, Method};
use crate::transaction::TxId;
use std::time::Instant;
use tracing::info;

impl Manager {
    /// A request inside one of a placed call's dialogs.
    pub(in crate::call) fn placed_in_dialog(
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

    /// Hang up one leg: BYE if it answered, CANCEL while it rings (a 2xx that crosses
    /// the CANCEL is acknowledged and hung up).
    pub(in crate::call) fn hang_up_leg(
        &mut self,
        now: Instant,
        key: CallKey,
        leg: &mut OutLeg,
        text: &str,
    ) {
        let Some(d) = leg.dialog.take() else {
            return;
        };
        let advertised = self.advertised_for(d.peer.transport);
        self.dialogs
            .remove(&(d.call_id.clone(), d.local_tag.clone()));
        if leg.answered.is_some() {
            let mut d = d;
            let contact = crate::call::contact_for(advertised, d.peer.transport);
            let mut bye = d.request(Method::Bye, self.tx.new_branch(), advertised, &contact);
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
            self.late_answers.insert(tx, d);
        }
    }

    /// ACK a 2xx on a dialog we do not want, then hang it up.
    pub(in crate::call) fn ack_and_bye(
        &mut self,
        now: Instant,
        mut d: Dialog,
        resp: &Message,
        why: &str,
    ) {
        let advertised = self.advertised_for(d.peer.transport);
        d.remote_tag = resp.to_tag.clone();
        d.remote = resp.to.clone();
        if let Some(c) = resp.contact_uri.clone() {
            d.remote_target = c;
        }
        d.route_set = resp.record_routes().into_iter().rev().collect();
        let branch = self.tx.new_branch();
        self.tx
            .send_stateless(d.peer, d.ack(1, branch, advertised).to_bytes());
        let contact = crate::call::contact_for(advertised, d.peer.transport);
        let mut bye = d.request(Method::Bye, self.tx.new_branch(), advertised, &contact);
        bye.extra
            .push(("Reason".into(), format!("SIP;cause=200;text=\"{why}\"")));
        self.tx.send_request(now, d.peer, bye);
    }

    /// End a placed call: hang up answered legs, cancel ringing ones, settle both legs'
    /// money once with one record, tell the requester why.
    pub(in crate::call) fn end_placed(&mut self, now: Instant, key: CallKey, cause: EndCause) {
        if self.divert_to_greeting(now, key, &cause) {
            return;
        }
        let Some(mut p) = self.placed.remove(&key) else {
            return;
        };
        // While the visitor hears the greeting, the call ends as the issuer's leg did
        // (unless the requester cancels it).
        let cause = match (&p.greeting_for, cause) {
            (_, EndCause::Cancelled) => EndCause::Cancelled,
            (Some(first), _) => first.clone(),
            (None, cause) => cause,
        };
        let text = cause.text();
        for side in [Side::A, Side::B] {
            self.hang_up_leg(now, key, p.leg(side), &text);
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
        // The issuer's leg of a greeting ended before the call did.
        let first_ended_ms = p.first_ended.map(|t| self.unix_ms(t));
        let answered_ms = |l: &OutLeg| l.answered.map(|a| self.unix_ms(a));
        // What settlement bills from: nothing for a leg answered on-net.
        let billed_from = |l: &OutLeg| answered_ms(l).filter(|_| !l.on_net);
        let [a, b] = &p.legs;
        let leg_record = |l: &OutLeg, answered: Option<i64>, ended_ms: i64| crate::cdr::RecordLeg {
            role: l.role.to_string(),
            number: l.number(),
            sent: l.presented.clone().map(|(n, _)| n).unwrap_or_default(),
            presented: l.presented.clone().map(|(_, c)| c).unwrap_or_default(),
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
                sent_callee: String::new(),
                sent_caller: String::new(),
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
                legs: vec![
                    leg_record(a, a_ms, first_ended_ms.unwrap_or(ended_ms)),
                    leg_record(b, b_ms, ended_ms),
                ],
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
                            ended_ms: first_ended_ms,
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
        self.finished.push(crate::call::Outcome {
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
    pub(in crate::call) fn placed_ack(&mut self, key: CallKey, side: Side, cseq: u32) {
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
