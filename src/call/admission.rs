//! Admission of a new INVITE: the checks before a call exists (draining, hops, loops,
//! who pays — digest proof, trusted peer, charge header — capacity, extensions, the
//! number and its kind, the route, the offer, media ports), the 407 challenge, and the
//! record of an INVITE refused before it became a call. What passes becomes a `Call`
//! (`invite.rs` dials its B-leg).

use super::outbound::OutLeg;
use super::outcome::phrase;
use super::placed::Target;
use super::{Call, CallTimer, EndCause, Manager, Rejection, ServerPurpose, State};
use crate::auth::{self, NonceCheck};
use crate::billing::{AuthorizeRequest, BillingRequest, Payer};
use crate::dialog::Dialog;
use crate::media::{Side, sdp};
use crate::numbers::DestinationKind;
use crate::routing::PeerBilling;
use crate::routing::{NumberError, normalize_number};
use crate::sip::{Builder, Message};
use crate::transaction::{Peer, TxId};
use std::cmp::Reverse;
use std::time::Instant;
use tracing::info;

impl Manager {
    pub(super) fn handle_new_invite(
        &mut self,
        now: Instant,
        tx: TxId,
        req: Message,
        from: Peer,
        local_tag: String,
    ) {
        self.stats.calls_offered += 1;
        let refuse = |m: &mut Manager, why: Rejection| {
            m.stats.calls_refused += 1;
            let code = why.sip_status();
            let cause = EndCause::Rejected(why);
            let text = cause.text();
            info!(code, why = %text, source = %from.addr, "call refused");
            m.refused_early(now, &req, code, &cause);
            m.reply(
                now,
                tx,
                &req,
                code,
                phrase(code),
                Some(&local_tag),
                Some(&text),
            );
        };
        if self.draining {
            return refuse(self, Rejection::ShuttingDown);
        }
        if req.max_forwards == Some(0) {
            return refuse(self, Rejection::TooManyHops);
        }
        let me = self.settings.advertised.to_string();
        let looped = req.headers_named("Via").any(|v| {
            v.contains(&me) && v.contains(&format!("branch={}", crate::sip::BRANCH_PREFIX))
        });
        if looped {
            return refuse(self, Rejection::Loop);
        }
        let payer = match self.payer_for(now, &req, from) {
            Ok(p) => p,
            Err(Gate::Refuse(why)) => return refuse(self, why),
            Err(Gate::Challenge { stale }) => {
                return self.challenge(now, tx, &req, &local_tag, stale, from);
            }
        };
        if self.calls.len() >= self.settings.max_calls {
            self.stats.calls_refused += 1;
            let mut b = Builder::response_to(&req, 503, "Service Unavailable", Some(&local_tag));
            b.reason(503, "call limit reached")
                .header("Retry-After", "5");
            return self.tx.send_response(now, tx, 503, b.finish(None, &[]));
        }
        let dialled = req.uri_user.as_deref().unwrap_or("");
        // A member's SIP user (a name, not a number) is reached on its registered phones,
        // on-net and free: never through a trunk.
        let member = self.settings.billing.is_some() && crate::routing::is_sip_user(dialled);
        let number = match normalize_number(dialled) {
            Ok(n) => n,
            Err(_) if member => dialled.to_string(),
            Err(NumberError::Empty) => return refuse(self, Rejection::NoNumber),
            Err(e) => return refuse(self, Rejection::BadNumber(e.to_string())),
        };
        let payer = if member { None } else { payer };
        let destination = match &self.settings.billing {
            _ if member => DestinationKind::Internet,
            Some(b) => b.classifier.classify(&number),
            None => DestinationKind::Other,
        };
        let blocked = self
            .settings
            .billing
            .as_ref()
            .is_some_and(|b| b.blocked.contains(&destination));
        if blocked {
            return refuse(self, Rejection::DestinationNotAllowed);
        }
        let route = match member {
            true => Some((Vec::new(), false)),
            false => match self.routing.plan.lookup(&number).cloned() {
                Some(r) => Some((self.route_order(&r), r.record)),
                None => None,
            },
        };
        let Some((mut trunks, record)) = route else {
            return refuse(self, Rejection::NoRoute);
        };
        // Trunks that do not answer OPTIONS are skipped, unless none does (then all are
        // tried: a ping can be lost, a call should not be for that).
        if trunks.iter().any(|&t| self.trunk_is_up(t, now)) {
            trunks.retain(|&t| self.trunk_is_up(t, now));
        }
        if !req.has_sdp() {
            return refuse(self, Rejection::NoOffer);
        }
        let (remote, a_formats) = match sdp::read_offer(&req.body) {
            Ok((r, f)) if !f.is_empty() => (r, f),
            Ok(_) => return refuse(self, Rejection::NoAudio),
            Err(e) => return refuse(self, Rejection::BadSdp(e.to_string())),
        };
        let (media, endpoints) = match self.media.allocate() {
            Ok(m) => m,
            Err(_) => return refuse(self, Rejection::NoMediaPorts),
        };
        self.media.set_remote(media, Side::A, remote);

        let key = self.next_key;
        self.next_key += 1;
        let id = format!("fc-{}", self.tx.new_token());
        let a = Dialog {
            call_id: req.call_id.clone(),
            local_tag: local_tag.clone(),
            local_uri: req.to.clone(),
            remote_tag: req.from_tag.clone(),
            remote: req.from.clone(),
            local_cseq: 0,
            remote_target: req
                .contact_uri
                .clone()
                .unwrap_or_else(|| req.request_uri().unwrap_or_default().to_string()),
            route_set: req.record_routes(),
            peer: from,
        };
        info!(call = %id, number = %number, %destination, caller = ?req.from_user, source = %from.addr, "call offered");
        let mut b_leg = OutLeg::new(
            "callee",
            vec![Target {
                number: number.clone(),
                destination,
                post_dial: String::new(),
                registered: None,
            }],
            None,
        );
        b_leg.trunks = trunks;
        let client = self.client_ip(from, &req);
        let trusted = self.trusted_peer(from, &req).is_some()
            || self
                .routing
                .vouched_address(from.addr, &req)
                .is_some_and(|a| self.registered_trunk_at(a.ip()).is_some());
        let caller = crate::routing::CallerId::of(&req, trusted);
        let call = Call {
            id,
            client,
            auth_user: match &payer {
                Some(Payer::Member { username, .. }) => Some(username.clone()),
                _ => None,
            },
            state: match (&payer, member) {
                (_, true) => State::Locating,
                (Some(_), false) => State::Authorizing,
                (None, false) => State::Trying,
            },
            number,
            a_invite_tx: tx,
            a_invite: req,
            a,
            b: b_leg,
            media,
            endpoints,
            started: now,
            answered: None,
            pending_ack: [None, None],
            paid: None,
            a_formats,
            a_format: None,
            local_media: false,
            refusal: None,
            record,
            destination: destination.to_string(),
            direct: None,
            caller,
        };
        self.dialogs.insert(
            (call.a.call_id.clone(), call.a.local_tag.clone()),
            (key, Side::A),
        );
        self.server_txs
            .insert(tx, (key, ServerPurpose::InitialInvite));
        self.media_calls.insert(media, key);
        self.calls.insert(key, call);
        self.timers.push(Reverse((
            now + self.settings.ring_timeout,
            key,
            CallTimer::NoAnswer,
        )));
        // The call was inserted just above: it is there.
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if member {
            let user = call.number.clone();
            self.billing_out
                .push_back(BillingRequest::Locate { key, user });
            return;
        }
        match payer {
            Some(payer) => {
                self.authorizing += 1;
                self.billing_out.push_back(BillingRequest::Authorize {
                    key,
                    request: AuthorizeRequest {
                        call_id: call.id.clone(),
                        payer,
                        number: call.number.clone(),
                        destination,
                    },
                });
            }
            None => self.send_b_invite(now, key),
        }
    }

    /// An INVITE refused before it became a call (no route, bad number, blocked
    /// destination, …) still ends as an outcome and a record: the NOC sees attempts too.
    fn refused_early(&mut self, now: Instant, req: &Message, code: u16, why: &EndCause) {
        let id = format!("fc-{}", self.tx.new_token());
        let dialled = req.uri_user.clone().unwrap_or_default();
        let number = normalize_number(&dialled).unwrap_or(dialled);
        let caller = req.from_user.clone().unwrap_or_default();
        let at = self.unix_ms(now);
        if self.settings.records {
            self.billing_out
                .push_back(BillingRequest::Record(Box::new(crate::cdr::CallRecord {
                    call_id: id.clone(),
                    node: self.settings.node.clone(),
                    caller: normalize_number(&caller).unwrap_or(caller),
                    callee: number.clone(),
                    setup_ms: at,
                    ended_ms: at,
                    code,
                    cause: why.text(),
                    ended_by: crate::cdr::BY_SWITCH.into(),
                    ..Default::default()
                })));
        }
        self.finished.push(super::Outcome {
            call: id,
            number,
            code,
            cause: why.text(),
            cause_code: why.code(),
            setup: None,
            talk: None,
            media: None,
        });
    }

    /// Who pays for a new call: `Ok(None)` for an unbilled peer, a payer, or the reason
    /// it may not be placed (refused, or challenged for digest credentials).
    fn payer_for(
        &mut self,
        now: Instant,
        req: &Message,
        from: Peer,
    ) -> Result<Option<Payer>, Gate> {
        if let (Some(billing), Some(value)) =
            (&self.settings.billing, req.header("Proxy-Authorization"))
        {
            let Some(proof) = auth::parse_digest(value, "INVITE") else {
                return Err(Gate::Challenge { stale: false });
            };
            if proof.realm != billing.realm {
                // A trusted proxy may pass on credentials meant for another realm: its
                // calls are then paid as the peer's configuration says.
                if self.trusted_peer(from, req).is_none() {
                    return Err(Gate::Challenge { stale: false });
                }
                return self.peer_payer(req, from);
            }
            // The proof covers the Request-URI: a captured one cannot dial another number.
            if Some(proof.uri.as_str()) != req.request_uri() {
                return Err(Gate::Refuse(Rejection::CredentialsForAnotherRequest));
            }
            let unix_secs = (self.unix_ms(now) / 1000).max(0) as u64;
            let client = self.client_ip(from, req).to_string();
            let lifetime = std::time::Duration::from_secs(billing.nonces.lifetime_secs);
            return match billing.nonces.check(&proof.nonce, unix_secs, &client) {
                NonceCheck::Valid if !self.replays.first_use(&proof, now, lifetime) => {
                    // The same proof twice is a replay (a retransmission never gets here:
                    // the transaction layer absorbs it).
                    Err(Gate::Challenge { stale: false })
                }
                NonceCheck::Valid
                    if self
                        .guard
                        .blocked(self.client_ip(from, req), &proof.username, now) =>
                {
                    self.refused_while_blocked();
                    Err(Gate::Refuse(Rejection::GuessingBlocked))
                }
                NonceCheck::Valid => Ok(Some(Payer::Member {
                    username: proof.username.clone(),
                    proof: Box::new(proof),
                })),
                NonceCheck::Stale => Err(Gate::Challenge { stale: true }),
                NonceCheck::Invalid => Err(Gate::Challenge { stale: false }),
            };
        }
        self.peer_payer(req, from)
    }

    /// Where a request really came from (a dispatcher in front names it): what nonces,
    /// the guessing fence and peer trust are about.
    pub(super) fn client_ip(&self, from: Peer, req: &Message) -> std::net::IpAddr {
        self.routing.caller_address(from.addr, req).ip()
    }

    /// The trusted peer a request comes from, if any; a dispatcher's request counts only
    /// with the caller's address it names.
    fn trusted_peer(&self, from: Peer, req: &Message) -> Option<&str> {
        let addr = self.routing.vouched_address(from.addr, req)?;
        self.routing.acl.allows(addr.ip())
    }

    /// A trusted peer's call: unbilled or charged by header; anyone else is challenged.
    fn peer_payer(&self, req: &Message, from: Peer) -> Result<Option<Payer>, Gate> {
        if let Some(peer) = self.trusted_peer(from, req) {
            return match self.routing.billing_of(peer) {
                PeerBilling::Unbilled => Ok(None),
                PeerBilling::Header(name) => match req.header(&name).and_then(parse_charge) {
                    Some(payer) => Ok(Some(payer)),
                    None => Err(Gate::Refuse(Rejection::NoChargeHeader)),
                },
            };
        }
        // A carrier the switch is registered with sends its inbound calls: unbilled, like
        // a trusted peer's, but only to the number registered (never a free way out).
        if let Some(addr) = self.routing.vouched_address(from.addr, req)
            && let Some(number) = self.registered_number_at(addr.ip())
            && req.uri_user.as_deref() == Some(number)
        {
            return Ok(None);
        }
        match self.settings.billing {
            Some(_) => Err(Gate::Challenge { stale: false }),
            None => Err(Gate::Refuse(Rejection::SourceNotAllowed)),
        }
    }

    /// 407 with a fresh nonce: the phone resends the INVITE with credentials.
    fn challenge(
        &mut self,
        now: Instant,
        tx: TxId,
        req: &Message,
        local_tag: &str,
        stale: bool,
        from: Peer,
    ) {
        self.stats.calls_challenged += 1;
        self.send_challenge(now, tx, req, local_tag, stale, from, 407);
    }

    /// A digest challenge with a fresh nonce bound to `from`: 407 (Proxy-Authenticate) for
    /// calls, 401 (WWW-Authenticate) for registrations.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_challenge(
        &mut self,
        now: Instant,
        tx: TxId,
        req: &Message,
        local_tag: &str,
        stale: bool,
        from: Peer,
        code: u16,
    ) {
        let Some(billing) = &self.settings.billing else {
            return;
        };
        let nonce = billing.nonces.issue(
            (self.unix_ms(now) / 1000).max(0) as u64,
            &self.client_ip(from, req).to_string(),
        );
        let value = auth::challenge(&billing.realm, &nonce, stale);
        let (phrase, header) = match code {
            401 => ("Unauthorized", "WWW-Authenticate"),
            _ => ("Proxy Authentication Required", "Proxy-Authenticate"),
        };
        let mut b = Builder::response_to(req, code, phrase, Some(local_tag));
        b.header(header, &value)
            .header("Server", &self.settings.user_agent);
        self.tx.send_response(now, tx, code, b.finish(None, &[]));
    }
}

/// Why a new INVITE does not go ahead yet.
enum Gate {
    Refuse(Rejection),
    /// Answer 407 (with `stale=true` when the nonce merely expired).
    Challenge {
        stale: bool,
    },
}

/// `account=42`, `card=7` or a bare account number.
fn parse_charge(value: &str) -> Option<Payer> {
    let v = value.trim();
    let (kind, id) = v.split_once('=').unwrap_or(("account", v));
    let id: i64 = id.trim().parse().ok().filter(|n| *n > 0)?;
    match kind.trim().to_ascii_lowercase().as_str() {
        "account" => Some(Payer::Account(id)),
        "card" => Some(Payer::Card(id)),
        _ => None,
    }
}
