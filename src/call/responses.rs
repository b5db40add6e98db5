//! What comes back to the requests the switch sends itself: each response or timeout
//! dispatched by what the request was for (a B-leg or placed leg INVITE, a relayed
//! in-dialog request, a BYE, a trunk ping, a REGISTER), and a carrier's 401/407 answered
//! once with the trunk's credentials.

use super::{ClientPurpose, EndCause, Manager};
use crate::media::Side;
use crate::sip::{Builder, Message, Method};
use crate::transaction::{Peer, TxId};
use std::time::Instant;

impl Manager {
    pub(super) fn handle_response(&mut self, now: Instant, tx: TxId, resp: Message) {
        let Some((key, purpose)) = self.client_txs.get(&tx).copied() else {
            return;
        };
        let code = resp.status().unwrap_or(0);
        // A carrier that challenges a BYE, an OPTIONS ping or a REGISTER gets the trunk's
        // credentials, once (INVITEs are answered by their leg, which also keeps the
        // dialog's CSeq).
        if matches!(code, 401 | 407)
            && matches!(
                purpose,
                ClientPurpose::Bye | ClientPurpose::Ping { .. } | ClientPurpose::Register { .. }
            )
            && let Some((again, peer)) = self.answer_trunk_challenge(key, tx, code, &resp, purpose)
        {
            self.client_txs.remove(&tx);
            let cseq = again.cseq;
            let again = self.tx.send_request(now, peer, again);
            self.client_txs.insert(again, (key, purpose));
            if let ClientPurpose::Register { index } = purpose {
                self.registration_resent(index, again, cseq);
            }
            return;
        }
        // A request relayed to the carrier within the call (a re-INVITE, UPDATE, INFO)
        // that it challenges: answered once with the trunk's credentials; the dialog's
        // CSeq (and a re-INVITE's ACK) move on to the resent request's.
        if matches!(code, 401 | 407)
            && let ClientPurpose::Relay { from: Side::A, .. } = purpose
            && let Some((mut again, peer)) =
                self.answer_trunk_challenge(key, tx, code, &resp, purpose)
        {
            self.client_txs.remove(&tx);
            // The dialog's next CSeq: another request may have gone out meanwhile.
            if let Some(d) = self.calls.get(&key).and_then(|c| c.b.dialog.as_ref()) {
                again.cseq = again.cseq.max(d.local_cseq + 1);
            }
            let cseq = again.cseq;
            let again = self.tx.send_request(now, peer, again);
            self.client_txs.insert(again, (key, purpose));
            if let Some(call) = self.calls.get_mut(&key) {
                if let Some(d) = call.b.dialog.as_mut() {
                    d.local_cseq = d.local_cseq.max(cseq);
                }
                if resp.cseq_method == Method::Invite
                    && let Some(p) = call.pending_ack[Side::A.index()].as_mut()
                {
                    p.relayed_cseq = cseq;
                }
            }
            return;
        }
        match purpose {
            ClientPurpose::Ping {
                index,
                peer,
                generation,
            } => {
                if code >= 200 {
                    self.client_txs.remove(&tx);
                    self.trunk_answered(now, index, peer, generation, code < 500);
                }
            }
            ClientPurpose::BInvite => self.handle_b_invite_response(now, key, tx, resp),
            ClientPurpose::PlacedInvite(side) => self.handle_leg_response(now, key, side, tx, resp),
            ClientPurpose::Relay { server, from } => {
                self.relay_response(now, key, tx, server, from, resp)
            }
            ClientPurpose::Bye | ClientPurpose::Cancel => {
                if code >= 200 {
                    self.client_txs.remove(&tx);
                }
            }
            ClientPurpose::Register { index } => {
                if code >= 200 {
                    self.client_txs.remove(&tx);
                    self.registration_answered(now, index, tx, Some(&resp));
                }
            }
        }
    }

    /// The request of client transaction `tx` again with the digest answering `resp`'s
    /// challenge, if it went to a trunk with credentials and was not answered before.
    fn answer_trunk_challenge(
        &mut self,
        key: super::CallKey,
        tx: TxId,
        code: u16,
        resp: &Message,
        purpose: ClientPurpose,
    ) -> Option<(crate::sip::OutRequest, Peer)> {
        let peer = self.tx.client_peer(tx)?;
        let sent = self.tx.client_request(tx)?;
        if sent
            .extra
            .iter()
            .any(|(n, _)| n == "Authorization" || n == "Proxy-Authorization")
        {
            return None;
        }
        // A REGISTER or a ping answers with its own trunk's account (two accounts may
        // share one registrar); a request within a call with the trunk the call went out
        // on (DNS may have moved the carrier since); else the trunk at that address.
        let index = match purpose {
            ClientPurpose::Register { index } | ClientPurpose::Ping { index, .. } => Some(index),
            _ => self.trunk_of_call(key, peer),
        };
        let creds = self
            .routing
            .trunks
            .get(index.or_else(|| self.trunk_at(peer))?)?;
        let creds = creds.credentials.clone()?;
        let sent = sent.clone();
        let branch = self.tx.new_branch();
        let again = super::outbound::with_digest(
            &sent,
            code,
            resp,
            &creds,
            branch,
            peer,
            self.advertised_for(peer.transport),
        )?;
        Some((again, peer))
    }

    /// The trunk call `key`'s leg to `peer` went out on: an inbound call's B-leg, or the
    /// placed call's leg that talks to `peer`.
    fn trunk_of_call(&self, key: super::CallKey, peer: Peer) -> Option<usize> {
        if let Some(c) = self.calls.get(&key) {
            return c
                .direct
                .is_none()
                .then(|| c.b.trunks.get(c.b.trunk).copied())
                .flatten();
        }
        self.placed.get(&key)?.trunk_towards(peer)
    }

    pub(super) fn handle_client_timeout(&mut self, now: Instant, tx: TxId) {
        let Some((key, purpose)) = self.client_txs.remove(&tx) else {
            return;
        };
        match purpose {
            ClientPurpose::BInvite => {
                if self
                    .calls
                    .get(&key)
                    .map(|c| c.b.tx == Some(tx))
                    .unwrap_or(false)
                {
                    if let Some(peer) = self.calls.get(&key).and_then(|c| c.b.hop_peer()) {
                        self.target_failed(peer, now);
                    }
                    self.b_leg_failed(now, key, 408, "no response from trunk".into());
                }
            }
            ClientPurpose::Relay { server, from } => {
                if let Some(call) = self.calls.get(&key) {
                    let _ = (call, from);
                    self.server_txs.remove(&server);
                    self.tx.send_response(
                        now,
                        server,
                        408,
                        Builder::response(408, "Request Timeout").finish(None, &[]),
                    );
                    self.hangup(now, key, EndCause::InDialogTimeout);
                }
            }
            ClientPurpose::Ping {
                index,
                peer,
                generation,
            } => self.trunk_answered(now, index, peer, generation, false),
            ClientPurpose::Register { index } => self.registration_answered(now, index, tx, None),
            ClientPurpose::PlacedInvite(side) => {
                self.late_answers.remove(&tx);
                let current = self
                    .placed
                    .get(&key)
                    .is_some_and(|p| p.leg_tx(side) == Some(tx));
                if current {
                    self.placed_leg_timed_out(now, key, side);
                }
            }
            ClientPurpose::Bye | ClientPurpose::Cancel => {}
        }
    }
}
