//! The registrar (RFC 3261 section 10): members' softphones REGISTER with SIP digest
//! (challenged with 401), and calls to a member's SIP user go to its registered phones.
//!
//! The nonce is checked here (stateless, bound to the client's address, replays refused);
//! the proof against the member's HA1 and the bindings are the accounting service's work
//! (`BillingRequest::Register`), so several nodes share them through the store. A call is
//! sent to the address the phone registered from, never to an address its Contact names.

use super::{CallKey, EndCause, Manager, State};
use crate::auth::{self, NonceCheck};
use crate::billing::BillingRequest;
use crate::registrar::{Binding, RegisterRefusal, RegisterRequest};
use crate::sip::{Builder, Message, Transport};
use crate::transaction::{Peer, TxId};
use std::time::Instant;
use tracing::info;

/// Registrations last at most this long (and at least `MIN_EXPIRES`), seconds.
const MAX_EXPIRES: u32 = 3600;
const MIN_EXPIRES: u32 = 60;
const DEFAULT_EXPIRES: u32 = 3600;

/// A REGISTER waiting for the accounting service.
pub(super) struct PendingRegister {
    tx: TxId,
    req: Message,
    local_tag: String,
    /// Where it came from (its nonce is bound to this address).
    from: Peer,
}

impl Manager {
    pub(super) fn handle_register(
        &mut self,
        now: Instant,
        tx: TxId,
        req: Message,
        from: Peer,
        local_tag: String,
    ) {
        let Some(billing) = &self.settings.billing else {
            // A bare B2BUA keeps no accounts, so no registrations.
            let mut b = Builder::response_to(&req, 405, "Method Not Allowed", Some(&local_tag));
            b.header("Allow", self.allow());
            return self.tx.send_response(now, tx, 405, b.finish(None, &[]));
        };
        let realm = billing.realm.clone();
        // The address of record is the To's: a registrar binds only SIP ones (RFC 3261
        // 10.3; RFC 4475 3.3.4), whatever the caller could prove.
        let aor_scheme = crate::sip::name_addr_uri(&req.to)
            .and_then(|u| crate::sip::scheme(&u).map(str::to_ascii_lowercase));
        if !matches!(aor_scheme.as_deref(), Some("sip" | "sips")) {
            let mut b = Builder::response_to(&req, 400, "Bad Request", Some(&local_tag));
            b.reason(400, "the To is not a SIP address of record");
            return self.tx.send_response(now, tx, 400, b.finish(None, &[]));
        }
        let Some(proof) = req
            .header("Authorization")
            .and_then(|v| auth::parse_digest(v, "REGISTER"))
            .filter(|p| p.realm == realm)
        else {
            return self.challenge_register(now, tx, &req, &local_tag, false, from);
        };
        let unix_secs = (self.unix_ms(now) / 1000).max(0) as u64;
        let lifetime = std::time::Duration::from_secs(billing.nonces.lifetime_secs);
        match billing.nonces.check(
            &proof.nonce,
            unix_secs,
            &self.client_ip(from, &req).to_string(),
        ) {
            NonceCheck::Valid
                if self
                    .guard
                    .blocked(self.client_ip(from, &req), &proof.username, now) =>
            {
                // Blocked for guessing: the answer a wrong password gets, unchecked.
                self.refused_while_blocked();
                return self.challenge_register(now, tx, &req, &local_tag, false, from);
            }
            NonceCheck::Valid if self.replays.first_use(&proof, now, lifetime) => {}
            NonceCheck::Stale => {
                return self.challenge_register(now, tx, &req, &local_tag, true, from);
            }
            _ => return self.challenge_register(now, tx, &req, &local_tag, false, from),
        }
        let aor = uri_user(&req.to).unwrap_or_default();
        if aor != proof.username {
            return self.reply(
                now,
                tx,
                &req,
                403,
                "Forbidden",
                Some(&local_tag),
                Some("a phone registers only its own address"),
            );
        }
        let (contacts, wildcard) = match contacts(&req) {
            Ok(c) => c,
            Err(why) => {
                return self.reply(
                    now,
                    tx,
                    &req,
                    400,
                    "Bad Request",
                    Some(&local_tag),
                    Some(why),
                );
            }
        };
        if contacts.iter().any(|(_, e)| *e > 0 && *e < MIN_EXPIRES) {
            let mut b = Builder::response_to(&req, 423, "Interval Too Brief", Some(&local_tag));
            b.header("Min-Expires", &MIN_EXPIRES.to_string())
                .header("Server", &self.settings.user_agent);
            return self.tx.send_response(now, tx, 423, b.finish(None, &[]));
        }
        let contacts = contacts
            .into_iter()
            .map(|(c, e)| (c, e.min(MAX_EXPIRES)))
            .collect();
        let key = self.next_key;
        self.next_key += 1;
        let transport = match from.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        };
        let request = RegisterRequest {
            user: aor,
            proof: Box::new(proof),
            contacts,
            remove_all: wildcard,
            source: format!("{transport}:{}", from.addr),
            call_id: req.call_id.clone(),
            cseq: req.cseq,
            max_bindings: self.settings.limits.max_bindings_per_user,
        };
        self.billing_out.push_back(BillingRequest::Register {
            key,
            request: Box::new(request),
        });
        self.registering.insert(
            key,
            PendingRegister {
                tx,
                req,
                local_tag,
                from,
            },
        );
    }

    fn challenge_register(
        &mut self,
        now: Instant,
        tx: TxId,
        req: &Message,
        local_tag: &str,
        stale: bool,
        from: Peer,
    ) {
        self.send_challenge(now, tx, req, local_tag, stale, from, 401);
    }

    /// The accounting service wrote (or refused) a REGISTER's bindings.
    pub(super) fn handle_registered(
        &mut self,
        now: Instant,
        key: u64,
        result: Result<Vec<Binding>, RegisterRefusal>,
    ) {
        let Some(p) = self.registering.remove(&key) else {
            return;
        };
        match result {
            Ok(bindings) => {
                let now_ms = self.unix_ms(now);
                let mut b = Builder::response_to(&p.req, 200, "OK", Some(&p.local_tag));
                for binding in &bindings {
                    let left =
                        ((binding.expires_ms - now_ms).max(0) / 1000).min(i64::from(MAX_EXPIRES));
                    b.header("Contact", &format!("<{}>;expires={left}", binding.contact));
                }
                b.header("Server", &self.settings.user_agent);
                info!(user = ?uri_user(&p.req.to), contacts = bindings.len(), "registered");
                self.guard
                    .succeeded(&uri_user(&p.req.to).unwrap_or_default());
                self.tx.send_response(now, p.tx, 200, b.finish(None, &[]));
            }
            Err(RegisterRefusal::BadCredentials) => {
                info!(user = ?uri_user(&p.req.to), source = %p.from.addr, "registration refused: bad credentials");
                let user = uri_user(&p.req.to).unwrap_or_default();
                self.auth_failed(self.client_ip(p.from, &p.req), &user, now);
                self.challenge_register(now, p.tx, &p.req, &p.local_tag, false, p.from);
            }
            Err(RegisterRefusal::TooManyContacts) => {
                info!(user = ?uri_user(&p.req.to), source = %p.from.addr, "registration refused: too many contacts");
                self.limit_refusals.push("bindings");
                let mut b =
                    Builder::response_to(&p.req, 503, "Service Unavailable", Some(&p.local_tag));
                b.reason(503, "too many registered contacts")
                    .header("Server", &self.settings.user_agent);
                self.tx.send_response(now, p.tx, 503, b.finish(None, &[]));
            }
            Err(RegisterRefusal::Unavailable) => {
                let mut b =
                    Builder::response_to(&p.req, 503, "Service Unavailable", Some(&p.local_tag));
                b.reason(503, "registrar unavailable")
                    .header("Retry-After", "30");
                self.tx.send_response(now, p.tx, 503, b.finish(None, &[]));
            }
        }
    }

    /// Where a member a caller dialled by name is registered.
    pub(super) fn handle_located(
        &mut self,
        now: Instant,
        key: CallKey,
        bindings: Option<Vec<Binding>>,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.state != State::Locating {
            return;
        }
        let target = bindings.as_ref().and_then(|b| {
            b.iter()
                .find_map(|b| Some((b.contact.clone(), parse_source(&b.source)?)))
        });
        match (bindings.is_some(), target) {
            (_, Some(target)) => {
                info!(call = %call.id, contact = %target.0, "calling a registered phone");
                call.direct = Some(target);
                call.state = State::Trying;
                self.send_b_invite(now, key);
            }
            (true, None) => self.abandon(
                now,
                key,
                480,
                "Temporarily Unavailable",
                EndCause::NotRegistered,
            ),
            (false, None) => self.abandon(
                now,
                key,
                503,
                "Service Unavailable",
                EndCause::RegistrarUnavailable,
            ),
        }
    }
}

/// `udp:127.0.0.1:5070` → the peer it names.
pub fn parse_source(source: &str) -> Option<Peer> {
    let (transport, addr) = source.split_once(':')?;
    let transport = match transport {
        "udp" => Transport::Udp,
        "tcp" => Transport::Tcp,
        "tls" => Transport::Tls,
        _ => return None,
    };
    Some(Peer {
        transport,
        addr: addr.parse().ok()?,
    })
}

/// The user part of a name-addr's URI (`"Kim" <sip:minji@host>;tag=x` → `minji`).
fn uri_user(name_addr: &str) -> Option<String> {
    let start = name_addr.find("sip:").or_else(|| name_addr.find("sips:"))?;
    let rest = &name_addr[start..];
    let rest = &rest[rest.find(':')? + 1..];
    let end = rest.find(['@', '>', ';'])?;
    rest[end..]
        .starts_with('@')
        .then(|| rest[..end].to_string())
}

/// (Contact URI, seconds).
type Contacts = Vec<(String, u32)>;

/// The REGISTER's contacts with their expiry (the `expires` parameter, else the Expires
/// header, else one hour), and whether it is the wildcard `*`.
fn contacts(req: &Message) -> Result<(Contacts, bool), &'static str> {
    let default = req
        .header("Expires")
        .and_then(|e| e.trim().parse::<u32>().ok())
        .unwrap_or(DEFAULT_EXPIRES);
    let mut out = Vec::new();
    let mut wildcard = false;
    for value in req.headers_named("Contact").chain(req.headers_named("m")) {
        for part in split_top_level(value) {
            let part = part.trim();
            if part == "*" {
                wildcard = true;
                continue;
            }
            let (uri, params) = match (part.find('<'), part.find('>')) {
                (Some(a), Some(b)) if a < b => (&part[a + 1..b], &part[b + 1..]),
                _ => match part.split_once(';') {
                    Some((u, p)) => (u, p),
                    None => (part, ""),
                },
            };
            if !(uri.starts_with("sip:") || uri.starts_with("sips:")) || uri.len() > 512 {
                return Err("a Contact is not a SIP URI");
            }
            let expires = params
                .split(';')
                .filter_map(|p| p.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("expires"))
                .and_then(|(_, v)| v.trim().parse::<u32>().ok())
                .unwrap_or(default);
            out.push((uri.to_string(), expires));
        }
    }
    if wildcard && (!out.is_empty() || default != 0) {
        return Err("Contact: * needs Expires: 0 and no other contact");
    }
    if out.len() > 10 {
        return Err("at most 10 contacts per REGISTER");
    }
    Ok((out, wildcard))
}

/// Split a header value at commas that are not inside `<…>` or quotes.
fn split_top_level(value: &str) -> Vec<&str> {
    let (mut out, mut start, mut angle, mut quoted) = (Vec::new(), 0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}
