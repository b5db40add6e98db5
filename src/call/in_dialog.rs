//! Requests inside an established call: BYE from either side, re-INVITE / UPDATE (hold,
//! unhold, codec change) and INFO relayed to the other leg, ACKs matched and passed on.
//!
//! A relayed request is a new request in the other leg's dialog; its response comes back
//! through the client transaction and is answered on the original server transaction.
//! SDP in either direction is rewritten so media keeps flowing through the switch.

use super::{CallKey, ClientPurpose, EndCause, Manager, PendingAck, ServerPurpose, State};
use crate::media::Side;
use crate::sip::{Builder, Message, Method};
use crate::transaction::TxId;
use std::time::Instant;
use tracing::info;

impl Manager {
    pub(super) fn handle_in_dialog(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        tx: TxId,
        req: Message,
    ) {
        // Cannot fail: only requests reach here.
        let method = req.method().cloned().unwrap_or(Method::Ack);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if let Some(d) = call.dialog_mut(side)
            && let Some(target) = &req.contact_uri
            && (method == Method::Invite || method == Method::Update)
        {
            // A target refresh (RFC 3261 12.2.2).
            d.remote_target = target.clone();
        }
        match method {
            Method::Bye => {
                let cause = EndCause::HungUp(match side {
                    Side::A => "caller",
                    Side::B => "callee",
                });
                self.reply(now, tx, &req, 200, "OK", None, None);
                let Some(call) = self.calls.get(&key) else {
                    return;
                };
                let state = call.state;
                info!(call = %call.id, cause = %cause.text(), "BYE");
                if state == State::Answered {
                    if side == Side::A {
                        // The caller's BYE shows it has the answer, even if its ACK is
                        // still on the way (a proxy in front may deliver them in that
                        // order): the 200 is not sent again. When anyone else ends the
                        // call, the 200 is still repeated until the caller ACKs it.
                        let a_tx = self.calls.get(&key).map(|c| c.a_invite_tx);
                        if let Some(a_tx) = a_tx {
                            self.tx.dialog_ended(a_tx);
                        }
                    }
                    self.send_bye(now, key, side.other(), &cause);
                    self.finish(now, key, 200, cause);
                } else if side == Side::A {
                    // BYE on an early dialog: the caller gives up before the answer.
                    self.abandon(now, key, 487, "Request Terminated", cause);
                } else {
                    self.abandon(now, key, 480, "Temporarily Unavailable", cause);
                }
            }
            Method::Options => self.reply(now, tx, &req, 200, "OK", None, None),
            Method::Invite | Method::Update | Method::Info => {
                let answered = self.calls.get(&key).map(|c| c.state) == Some(State::Answered);
                if !answered && method == Method::Invite {
                    return self.reply(
                        now,
                        tx,
                        &req,
                        491,
                        "Request Pending",
                        None,
                        Some("call not yet answered"),
                    );
                }
                let busy = self
                    .calls
                    .get(&key)
                    .and_then(|c| c.pending_ack[side.index()].as_ref())
                    .map(|p| p.sent.is_none())
                    .unwrap_or(false);
                if method == Method::Invite && busy {
                    return self.reply(
                        now,
                        tx,
                        &req,
                        491,
                        "Request Pending",
                        None,
                        Some("re-INVITE in progress"),
                    );
                }
                self.relay_request(now, key, side, tx, req, method);
            }
            Method::Refer => {
                // Transfers would let one party make the switch dial anywhere.
                self.reply(
                    now,
                    tx,
                    &req,
                    403,
                    "Forbidden",
                    None,
                    Some("transfer not allowed"),
                )
            }
            Method::Extension(_) => self.reply(
                now,
                tx,
                &req,
                501,
                "Not Implemented",
                None,
                Some("unknown method"),
            ),
            _ => {
                let mut b = Builder::response_to(&req, 405, "Method Not Allowed", None);
                b.header("Allow", self.allow());
                self.tx.send_response(now, tx, 405, b.finish(None, &[]));
            }
        }
    }

    fn relay_request(
        &mut self,
        now: Instant,
        key: CallKey,
        from: Side,
        tx: TxId,
        req: Message,
        method: Method,
    ) {
        let branch = self.tx.new_branch();
        let to = from.other();
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let media = call.media;
        let body = if req.has_sdp() {
            match call.sdp_for(to, &req.body) {
                Ok((body, remote)) => {
                    self.media.set_remote(media, from, remote);
                    Some(body)
                }
                Err(e) => {
                    return self.reply(
                        now,
                        tx,
                        &req,
                        488,
                        "Not Acceptable Here",
                        None,
                        Some(&e.to_string()),
                    );
                }
            }
        } else {
            None
        };
        let contact_transport = match to {
            Side::A => Some(call.a.peer.transport),
            Side::B => call.b.dialog.as_ref().map(|b| b.peer.transport),
        }
        .unwrap_or(crate::sip::Transport::Udp);
        let contact = self.contact(contact_transport);
        let advertised = self.advertised_for(contact_transport);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(d) = call.dialog_mut(to) else {
            return self.reply(
                now,
                tx,
                &req,
                481,
                "Call/Transaction Does Not Exist",
                None,
                Some("other leg not established"),
            );
        };
        let peer = d.peer;
        let mut out = d.request(method.clone(), branch, advertised, &contact);
        match body {
            Some(b) => {
                out.content_type = Some("application/sdp".into());
                out.body = b;
            }
            None if !req.body.is_empty() => {
                // INFO bodies (DTMF relay, application data) pass unchanged.
                out.content_type = req.content_type().map(str::to_string);
                out.body = req.body.clone();
            }
            None => {}
        }
        if method == Method::Info {
            for name in ["Info-Package", "Content-Disposition"] {
                if let Some(v) = req.header(name) {
                    out.extra.push((name.into(), v.into()));
                }
            }
        }
        let relayed_cseq = out.cseq;
        if method == Method::Invite {
            call.pending_ack[from.index()] = Some(PendingAck {
                origin_cseq: req.cseq,
                origin_tx: tx,
                relayed_cseq,
                sent: None,
            });
        }
        let client = self.tx.send_request(now, peer, out);
        self.client_txs
            .insert(client, (key, ClientPurpose::Relay { server: tx, from }));
        self.server_txs.insert(tx, (key, ServerPurpose::Relay));
        self.pending_requests.insert(tx, req);
    }

    pub(super) fn relay_response(
        &mut self,
        now: Instant,
        key: CallKey,
        client: TxId,
        server: TxId,
        from: Side,
        resp: Message,
    ) {
        let code = resp.status().unwrap_or(0);
        let is_invite = resp.cseq_method == Method::Invite;
        if code < 200 {
            return;
        }
        if is_invite && (200..300).contains(&code) {
            // A retransmitted 2xx whose ACK we already passed on: ACK again.
            if let Some(c) = self.calls.get(&key)
                && let Some(p) = c.pending_ack[from.index()].as_ref()
                && let Some(ack) = &p.sent
            {
                let peer = match from.other() {
                    Side::A => Some(c.a.peer),
                    Side::B => c.b.dialog.as_ref().map(|b| b.peer),
                };
                if let Some(peer) = peer {
                    self.tx.send_stateless(peer, ack.clone());
                }
                return;
            }
        }
        let Some(req) = self.pending_requests.remove(&server) else {
            return;
        };
        if code >= 300 {
            self.client_txs.remove(&client);
            if let Some(c) = self.calls.get_mut(&key)
                && is_invite
            {
                c.pending_ack[from.index()] = None;
            }
        }
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let media = call.media;
        let body = if resp.has_sdp() {
            match call.sdp_for(from, &resp.body) {
                Ok((body, remote)) => {
                    self.media.set_remote(media, from.other(), remote);
                    Some(body)
                }
                Err(_) => None,
            }
        } else {
            None
        };
        let mut b = Builder::response_to(&req, code, resp.reason_phrase(), None);
        if is_invite || resp.cseq_method == Method::Update {
            b.header("Contact", &self.contact(call.a.peer.transport));
        }
        if let Some(r) = resp.header("Reason") {
            b.header("Reason", r);
        }
        let bytes = match body {
            Some(body) => b.finish(Some("application/sdp"), &body),
            None if !resp.body.is_empty() => b.finish(resp.content_type(), &resp.body),
            None => b.finish(None, &[]),
        };
        self.tx.send_response(now, server, code, bytes);
        if code == 481 || code == 408 {
            // RFC 5057: the other leg's dialog is gone; so is the call.
            self.hangup(now, key, EndCause::DialogLost);
        }
    }

    /// An ACK outside any transaction: for our 2xx to the initial INVITE, or for a relayed
    /// re-INVITE's 2xx (then passed on to the other leg).
    pub(super) fn handle_ack(&mut self, now: Instant, ack: Message) {
        let Some(tag) = ack.to_tag.clone() else {
            return;
        };
        let Some((key, side)) = self.dialogs.get(&(ack.call_id.clone(), tag)).copied() else {
            return;
        };
        if self.placed.contains_key(&key) {
            return self.placed_ack(key, side, ack.cseq);
        }
        let (sip, tls) = (self.settings.advertised, self.tls_advertised);
        let branch = self.tx.new_branch();
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if side == Side::A && ack.cseq == call.a_invite.cseq {
            self.tx.ack_received(call.a_invite_tx);
            return;
        }
        let media = call.media;
        let Some(pending) = call.pending_ack[side.index()].as_mut() else {
            return;
        };
        if pending.origin_cseq != ack.cseq || pending.sent.is_some() {
            return;
        }
        let origin_tx = pending.origin_tx;
        let relayed_cseq = pending.relayed_cseq;
        let to = side.other();
        let Some(d) = (match to {
            Side::A => Some(&call.a),
            Side::B => call.b.dialog.as_ref(),
        }) else {
            return;
        };
        let peer = d.peer;
        let advertised = super::identity::advertised_on(peer.transport, sip, tls);
        let mut out = d.ack(relayed_cseq, branch, advertised);
        if ack.has_sdp()
            && let Ok((body, remote)) = call.sdp_for(to, &ack.body)
        {
            self.media.set_remote(media, side, remote);
            out.content_type = Some("application/sdp".into());
            out.body = body;
        }
        let bytes = out.to_bytes();
        if let Some(p) = call.pending_ack[side.index()].as_mut() {
            p.sent = Some(bytes.clone());
        }
        self.tx.ack_received(origin_tx);
        self.tx.send_stateless(peer, bytes);
        let _ = now;
    }

    /// The TCP connection from `addr` is gone (closed, reset or cut by the network). A
    /// caller whose call came over it cannot be reached on it any more: its leg's requests
    /// (a BYE) go from now on to its Contact, on a new connection (RFC 3261 12.2.1.1 and
    /// 18.1.1: the remote target) — only when the Contact names the host the call came
    /// from, so the switch still sends nothing to a host a message merely names.
    pub fn connection_closed(&mut self, addr: std::net::SocketAddr) {
        self.connection_closed_on(addr, crate::sip::Transport::Tcp);
        self.connection_closed_on(addr, crate::sip::Transport::Tls);
    }

    /// A connection the switch opened to `peer` could not be opened, or the far end's
    /// certificate was not trusted: what was sent on it is told as timed out at once
    /// (RFC 3261 17.1.4), so a call goes on to the trunk's next address or next trunk.
    pub fn connection_failed(&mut self, now: Instant, peer: crate::transaction::Peer) {
        self.tx.transport_failed(peer);
        self.process_tx_events(now);
    }

    fn connection_closed_on(
        &mut self,
        addr: std::net::SocketAddr,
        transport: crate::sip::Transport,
    ) {
        let flow = crate::transaction::Peer { transport, addr };
        for call in self.calls.values_mut() {
            let a = &mut call.a;
            if a.peer != flow || !a.route_set.is_empty() {
                continue;
            }
            if let Some(peer) = contact_on_host(&a.remote_target, addr.ip()) {
                info!(call = %call.id, flow = %addr, contact = %peer.addr, "caller's connection gone: its Contact from now on");
                a.peer = peer;
            }
        }
    }
}

/// Where a Contact URI sends requests when its host is the IP address `ip`
/// (`sip:u@192.0.2.1:5062;transport=tcp` → TCP to 192.0.2.1:5062; RFC 3263 4.1–4.2: a
/// numeric host without a port is on 5060, without a transport on UDP). None for another
/// host, a host name, `maddr`, `sips:` or a transport the switch does not speak.
fn contact_on_host(uri: &str, ip: std::net::IpAddr) -> Option<crate::transaction::Peer> {
    use crate::sip::Transport;
    let uri = uri.trim().trim_start_matches('<');
    let rest = uri
        .get(..4)?
        .eq_ignore_ascii_case("sip:")
        .then(|| &uri[4..])?;
    let rest = rest.split_once('@').map_or(rest, |(_, host)| host);
    let end = rest.find([';', '?', '>']).unwrap_or(rest.len());
    let (host_port, params) = rest.split_at(end);
    let params = params.split(['?', '>']).next().unwrap_or_default();
    let mut transport = Transport::Udp;
    for param in params.split(';').filter(|p| !p.is_empty()) {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if name.eq_ignore_ascii_case("maddr") {
            return None;
        }
        if name.eq_ignore_ascii_case("transport") {
            transport = match value.to_ascii_lowercase().as_str() {
                "udp" => Transport::Udp,
                "tcp" => Transport::Tcp,
                _ => return None,
            };
        }
    }
    let addr = match host_port.parse::<std::net::SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            let host = host_port.trim_start_matches('[').trim_end_matches(']');
            std::net::SocketAddr::new(host.parse().ok()?, 5060)
        }
    };
    (addr.ip() == ip).then_some(crate::transaction::Peer { transport, addr })
}

#[cfg(test)]
mod tests {
    use super::contact_on_host;
    use crate::sip::Transport;

    #[test]
    fn a_contact_is_used_only_on_the_host_the_call_came_from() {
        let ip = "192.0.2.1".parse().unwrap();
        let peer = |uri: &str| contact_on_host(uri, ip).map(|p| (p.transport, p.addr.to_string()));
        let tcp = Some((Transport::Tcp, "192.0.2.1:5062".to_string()));
        assert_eq!(peer("sip:alice@192.0.2.1:5062;transport=tcp"), tcp);
        assert_eq!(
            peer("<sip:alice;npdi@192.0.2.1:5062;transport=TCP;ob>"),
            tcp
        );
        assert_eq!(
            peer("sip:192.0.2.1"),
            Some((Transport::Udp, "192.0.2.1:5060".to_string()))
        );
        assert_eq!(peer("sip:alice@192.0.2.2:5062;transport=tcp"), None);
        assert_eq!(peer("sip:alice@phone.example.com;transport=tcp"), None);
        assert_eq!(peer("sip:alice@192.0.2.1;maddr=192.0.2.9"), None);
        assert_eq!(peer("sips:alice@192.0.2.1:5061"), None);
        assert_eq!(peer("sip:alice@192.0.2.1;transport=sctp"), None);
        let v6 = "2001:db8::1".parse().unwrap();
        assert_eq!(
            contact_on_host("sip:alice@[2001:db8::1];transport=tcp", v6)
                .map(|p| p.addr.to_string()),
            Some("[2001:db8::1]:5060".to_string())
        );
    }
}
