//! One outbound leg, the same state machine for every leg the switch dials: the B-leg
//! of a call that came in, and both legs of a call the switch places. It holds the
//! numbers the leg may ring (in turn) and the trunks of the current one (in failover
//! order), opens a new dialog per attempt (`invite`), and says what each response means
//! (`handle_response`): provisional, the first 2xx (acknowledged here, the ACK kept for
//! retransmissions), a retransmitted 2xx, a second fork, a failure, or a response to an
//! attempt given up on. What an answer or a failure means for the call is the flow's
//! business (`invite.rs`, `placed.rs`).

use super::cause::{EndCause, Role};
use super::placed::Target;
use crate::billing::Authorization;
use crate::dialog::{Dialog, via};
use crate::media::LegFormat;
use crate::sip::{Message, Method, OutRequest};
use crate::transaction::{Peer, TxId};
use std::net::SocketAddr;
use std::time::Instant;

/// One outbound leg: the numbers it may ring, the trunks of the current number, and the
/// dialog once an INVITE is out.
pub(super) struct OutLeg {
    pub(super) role: Role,
    pub(super) targets: Vec<Target>,
    pub(super) target: usize,
    /// Trunk indices (into the routing the call started with) for the current target.
    pub(super) trunks: Vec<usize>,
    pub(super) trunk: usize,
    /// The current trunk's addresses for this attempt (a host name may give several,
    /// each a failover candidate before the next trunk), and the one in use.
    pub(super) hops: Vec<Peer>,
    pub(super) hop: usize,
    /// Names of the trunks dialled, for the record.
    pub(super) dialled: Vec<String>,
    pub(super) dialog: Option<Dialog>,
    pub(super) tx: Option<TxId>,
    /// Bumped with every INVITE sent, so a ring timer of an earlier attempt is ignored.
    pub(super) attempt: u32,
    pub(super) provisional: bool,
    pub(super) ack: Option<Vec<u8>>,
    pub(super) answered: Option<Instant>,
    /// Answered on a registered softphone: on-net, so this leg is not billed.
    pub(super) on_net: bool,
    pub(super) format: Option<LegFormat>,
    pub(super) auth: Option<Authorization>,
    /// A re-INVITE from the far end that the switch answered: (CSeq, server transaction),
    /// until its ACK arrives.
    pub(super) reinvite: Option<(u32, TxId)>,
    /// The worst failure so far, told when no number is left.
    pub(super) failure: Option<EndCause>,
    /// The current attempt's trunk credentials, the INVITE as sent, its CSeq, and whether
    /// a challenge was answered already (a second one is a failure, not a loop).
    credentials: Option<crate::auth::Credentials>,
    sent: Option<OutRequest>,
    invite_cseq: u32,
    challenged: bool,
    /// The last INVITE's called number and caller as sent (for the record).
    pub(super) presented: Option<(String, String)>,
}

impl OutLeg {
    /// The address the current attempt went to, when it is on a trunk.
    pub(super) fn hop_peer(&self) -> Option<Peer> {
        self.hops.get(self.hop).copied()
    }

    /// Move on after a failure worth another try: the current trunk's next address, else
    /// the next trunk (whose addresses are chosen when it is dialled). False when none is
    /// left.
    pub(super) fn next_candidate(&mut self) -> bool {
        if self.hop + 1 < self.hops.len() {
            self.hop += 1;
            return true;
        }
        self.next_trunk()
    }

    /// Skip to the next trunk. False when none is left.
    pub(super) fn next_trunk(&mut self) -> bool {
        self.hops.clear();
        self.hop = 0;
        self.trunk += 1;
        self.trunk < self.trunks.len()
    }

    /// The next number to ring (a placed call's leg), its trunks chosen anew.
    pub(super) fn next_number(&mut self) {
        self.target += 1;
        self.trunks.clear();
        self.trunk = 0;
        self.hops.clear();
        self.hop = 0;
    }
}

impl OutLeg {
    pub(super) fn new(role: Role, targets: Vec<Target>, auth: Option<Authorization>) -> OutLeg {
        OutLeg {
            role,
            targets,
            target: 0,
            trunks: Vec::new(),
            trunk: 0,
            hops: Vec::new(),
            hop: 0,
            dialled: Vec::new(),
            dialog: None,
            tx: None,
            attempt: 0,
            provisional: false,
            ack: None,
            answered: None,
            on_net: false,
            format: None,
            auth,
            reinvite: None,
            failure: None,
            credentials: None,
            sent: None,
            invite_cseq: INVITE_CSEQ,
            challenged: false,
            presented: None,
        }
    }

    pub(super) fn current(&self) -> Option<&Target> {
        self.targets.get(self.target)
    }

    /// The number this leg rang last (or would ring first).
    pub(super) fn number(&self) -> String {
        self.targets
            .get(self.target.min(self.targets.len().saturating_sub(1)))
            .map(|t| t.number.clone())
            .unwrap_or_default()
    }

    /// Open a new dialog for the next attempt and build its INVITE. The dialog of the
    /// attempt before (if any) is returned, for its key to be forgotten.
    pub(super) fn invite(&mut self, n: NewInvite<'_>) -> (OutRequest, Option<Dialog>) {
        // What the far end was told: the called number (the Request-URI's user) and the
        // caller as presented, for the record.
        let called = n
            .uri
            .split_once(':')
            .map(|(_, rest)| rest.split(['@', ';']).next().unwrap_or(rest))
            .unwrap_or_default()
            .to_string();
        self.presented = Some((called, n.caller.from_user.clone()));
        let dialog = Dialog {
            call_id: n.call_id.clone(),
            local_tag: n.from_tag,
            local_uri: if n.caller.private && n.caller.from_user == "anonymous" {
                // RFC 3323: nothing of the caller in From.
                "\"Anonymous\" <sip:anonymous@anonymous.invalid>".to_string()
            } else {
                format!("<sip:{}@{}>", n.caller.from_user, n.advertised.ip())
            },
            remote_tag: None,
            remote: format!("<{}>", n.uri),
            local_cseq: 1,
            remote_target: n.uri.clone(),
            route_set: Vec::new(),
            peer: n.peer,
        };
        let request = OutRequest {
            method: Method::Invite,
            uri: n.uri,
            via: via(n.peer.transport, n.advertised, &n.branch),
            branch: n.branch,
            max_forwards: n.max_forwards,
            from: dialog.local(),
            to: dialog.remote.clone(),
            call_id: n.call_id,
            cseq: INVITE_CSEQ,
            route: Vec::new(),
            contact: Some(super::contact_for(n.advertised, n.peer.transport)),
            extra: identity_headers(n.caller, n.advertised)
                .into_iter()
                .chain([
                    ("Allow".into(), n.allow.into()),
                    ("User-Agent".into(), n.user_agent),
                ])
                .collect(),
            content_type: Some("application/sdp".into()),
            body: n.offer,
        };
        self.credentials = n.credentials;
        self.sent = self.credentials.as_ref().map(|_| request.clone());
        self.invite_cseq = INVITE_CSEQ;
        self.challenged = false;
        self.attempt += 1;
        self.provisional = false;
        self.ack = None;
        self.tx = None;
        (request, self.dialog.replace(dialog))
    }

    /// What a response to one of this leg's INVITEs means, with the leg's own part done:
    /// tags noted, the first 2xx acknowledged (the ACK is kept for retransmissions).
    pub(super) fn handle_response(
        &mut self,
        tx: TxId,
        resp: &Message,
        now: Instant,
        ack_branch: String,
        advertised: SocketAddr,
    ) -> LegResponse {
        let code = resp.status().unwrap_or(0);
        if self.tx != Some(tx) {
            return LegResponse::Stale;
        }
        let Some(d) = self.dialog.as_mut() else {
            return LegResponse::Stale;
        };
        if code < 200 {
            // Any provisional, 100 too, lets a CANCEL go (RFC 3261 9.1).
            self.provisional = true;
            if code == 100 {
                return LegResponse::Trying;
            }
            if let Some(tag) = &resp.to_tag {
                d.remote_tag = Some(tag.clone());
                d.remote = resp.to.clone();
            }
            return LegResponse::Provisional;
        }
        if code >= 300 {
            self.tx = None;
            if let Some(again) = self.answer_challenge(code, resp, ack_branch, advertised) {
                return again;
            }
            return LegResponse::Failed(code);
        }
        if let Some(ack) = &self.ack {
            if d.remote_tag.is_some() && d.remote_tag == resp.to_tag {
                return LegResponse::AnsweredAgain(ack.clone(), d.peer);
            }
            // Another fork answered: acknowledge it, then hang it up.
            let mut other = d.clone();
            other.remote_tag = None;
            return LegResponse::Fork(answered_dialog(other, resp));
        }
        let answered = answered_dialog(d.clone(), resp);
        let ack = answered
            .ack(self.invite_cseq, ack_branch, advertised)
            .to_bytes();
        *d = answered;
        self.ack = Some(ack.clone());
        self.answered = Some(now);
        LegResponse::Answered(ack, d.peer)
    }
}

impl OutLeg {
    /// A carrier's 401/407 to this attempt's INVITE, answered once with the trunk's
    /// credentials: the same INVITE (same Call-ID and tag) with CSeq + 1, a new branch and
    /// the digest. `None` when there is nothing to answer with, or it was answered before.
    fn answer_challenge(
        &mut self,
        code: u16,
        resp: &Message,
        branch: String,
        advertised: SocketAddr,
    ) -> Option<LegResponse> {
        if self.challenged {
            return None;
        }
        let d = self.dialog.as_mut()?;
        let again = with_digest(
            self.sent.as_ref()?,
            code,
            resp,
            self.credentials.as_ref()?,
            branch,
            d.peer,
            advertised,
        )?;
        // Nothing of the challenged attempt's dialog is kept but its Call-ID and tag.
        d.remote_tag = None;
        d.remote = again.to.clone();
        d.local_cseq = again.cseq;
        self.invite_cseq = again.cseq;
        self.challenged = true;
        self.provisional = false;
        self.sent = Some(again.clone());
        Some(LegResponse::Resend(again, d.peer))
    }
}

/// `sent` again, answering the 401/407 `resp` with `creds`: CSeq + 1, a new branch and
/// Via, the digest (`Authorization` or `Proxy-Authorization`). `None` for any other
/// status, or a challenge the switch cannot answer. Every request the switch answers a
/// carrier's challenge for is built here.
pub(super) fn with_digest(
    sent: &OutRequest,
    code: u16,
    resp: &Message,
    creds: &crate::auth::Credentials,
    branch: String,
    peer: Peer,
    advertised: SocketAddr,
) -> Option<OutRequest> {
    let (header, answer) = match code {
        401 => ("WWW-Authenticate", "Authorization"),
        407 => ("Proxy-Authenticate", "Proxy-Authorization"),
        _ => return None,
    };
    let challenge = crate::auth::parse_challenge(resp.header(header)?)?;
    let mut again = sent.clone();
    again.cseq += 1;
    again.via = via(peer.transport, advertised, &branch);
    // The client nonce: the new branch's random part, unique per answer.
    let cnonce = branch.trim_start_matches("z9hG4bK").to_string();
    again.branch = branch;
    again
        .extra
        .retain(|(name, _)| name != "Authorization" && name != "Proxy-Authorization");
    let method = again.method.as_str().to_string();
    again.extra.push((
        answer.into(),
        crate::auth::authorization(&challenge, creds, &method, &again.uri, &cnonce),
    ));
    Some(again)
}

/// Every INVITE a leg sends opens a new dialog, so its CSeq starts at 1 (2 once a
/// carrier's challenge was answered).
pub(super) const INVITE_CSEQ: u32 = 1;

/// What a leg's next INVITE needs.
pub(super) struct NewInvite<'a> {
    pub call_id: String,
    pub from_tag: String,
    pub branch: String,
    pub uri: String,
    pub peer: Peer,
    /// How the caller is shown: From, and P-Asserted-Identity and Privacy when asked.
    pub caller: &'a crate::routing::Presentation,
    pub advertised: SocketAddr,
    pub max_forwards: u32,
    pub allow: &'static str,
    pub user_agent: String,
    pub offer: Vec<u8>,
    /// The trunk's digest credentials (none for a registered phone or an open trunk).
    pub credentials: Option<crate::auth::Credentials>,
}

/// P-Asserted-Identity (RFC 3325) and Privacy (RFC 3323) for a trunk that takes them.
fn identity_headers(
    caller: &crate::routing::Presentation,
    advertised: SocketAddr,
) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    if let Some(n) = &caller.asserted {
        headers.push((
            "P-Asserted-Identity".into(),
            format!("<sip:{n}@{};user=phone>", advertised.ip()),
        ));
    }
    if caller.private {
        headers.push(("Privacy".into(), "id".into()));
    }
    headers
}

/// What a response to a leg's INVITE means.
pub(super) enum LegResponse {
    /// For an INVITE the leg has given up on (or none).
    Stale,
    /// 100 Trying.
    Trying,
    /// 18x (the far end's tag noted).
    Provisional,
    /// The first 2xx: send this ACK to this peer.
    Answered(Vec<u8>, Peer),
    /// The 2xx again (the ACK was lost): the ACK again.
    AnsweredAgain(Vec<u8>, Peer),
    /// A second fork answered: this dialog is to be acknowledged and hung up.
    Fork(Dialog),
    /// A final failure (the leg has no INVITE out any more).
    Failed(u16),
    /// The carrier challenged: send this INVITE (with the digest) to this peer instead.
    Resend(OutRequest, Peer),
}

/// `d` as the 2xx `resp` establishes it (RFC 3261 12.1.2).
pub(super) fn answered_dialog(mut d: Dialog, resp: &Message) -> Dialog {
    d.remote_tag = resp.to_tag.clone();
    d.remote = resp.to.clone();
    if let Some(c) = resp.contact_uri.clone() {
        d.remote_target = c;
    }
    d.route_set = resp.record_routes().into_iter().rev().collect();
    d
}
