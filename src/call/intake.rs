//! Bytes off the wire, into the call layer: parsed here (so the whole path from the first
//! byte is sans-IO — the RFC 4475 messages and the fuzzers go through exactly this),
//! keep-alives ignored, oversized requests dropped, malformed requests answered statelessly
//! (400 with the reason, 505 for an unknown SIP version); and what RFC 3261 8.2.2–8.2.3 has
//! a UAS refuse before it looks at what a new request is for.

use super::Manager;
use crate::sip::{Message, Method};
use crate::transaction::Peer;
use std::time::{Duration, Instant};

impl Manager {
    /// Bytes off the wire: one UDP datagram, or one message `sip::frame_stream` cut out
    /// of a TCP stream (`framed`). `waited`: how long they waited in the socket's queue
    /// (overload control). Parsed here, so everything from the first byte on is sans-IO
    /// (the torture messages and the fuzzers go through exactly this).
    pub fn handle_bytes(
        &mut self,
        now: Instant,
        peer: Peer,
        bytes: &[u8],
        framed: bool,
        waited: Duration,
    ) {
        // Keep-alives (RFC 5626 CRLF pings) are ignored.
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return;
        }
        // Answers to the switch's own requests (a carrier's 200 with a large SDP) are never
        // dropped for their size; requests over it are.
        if bytes.len() > self.limits().max_message_bytes && !bytes.starts_with(b"SIP/2.0 ") {
            tracing::debug!(from = %peer.addr, bytes = bytes.len(), "message over limits.max_message_bytes: dropped");
            self.limit_refusals.push("message_bytes");
            return;
        }
        let parsed = if framed {
            crate::sip::parse_framed(bytes)
        } else {
            crate::sip::parse_datagram(bytes)
        };
        match parsed {
            Ok(msg) => self.handle_waited(now, peer, msg, waited),
            Err(e) => {
                tracing::debug!(from = %peer.addr, error = %e, "malformed SIP");
                let (code, phrase) = e.status();
                self.answer_malformed(peer, bytes, code, phrase, &e.to_string());
            }
        }
    }

    /// A datagram or stream frame that failed to parse: answer 400 if it was a request.
    pub fn handle_malformed(&mut self, from: Peer, bytes: &[u8], why: &str) {
        self.answer_malformed(from, bytes, 400, "Bad Request", why);
    }

    fn answer_malformed(&mut self, from: Peer, bytes: &[u8], code: u16, phrase: &str, why: &str) {
        self.stats.malformed += 1;
        let tag = self.tx.new_token();
        if let Some(reply) = crate::sip::stateless_reply_to_raw(bytes, code, phrase, why, &tag) {
            self.tx.send_stateless(from, reply);
        }
    }
}

/// What RFC 3261 8.2.2–8.2.3 has a UAS refuse before looking at a new request's purpose:
/// a Request-URI scheme it does not serve (416), an extension it is required to have
/// (420, naming it in Unsupported) and, for an INVITE, a body it cannot read (415) or an
/// Accept that leaves out SDP (406). (status, phrase, Reason text, a header to add.)
pub(super) type UasRefusal = (
    u16,
    &'static str,
    &'static str,
    Option<(&'static str, String)>,
);

pub(super) fn uas_refusal(method: &Method, req: &Message) -> Option<UasRefusal> {
    let scheme = req
        .request_uri()
        .and_then(crate::sip::scheme)
        .unwrap_or("")
        .to_ascii_lowercase();
    if !matches!(scheme.as_str(), "sip" | "sips" | "tel") {
        return Some((
            416,
            "Unsupported URI Scheme",
            "only sip:, sips: and tel: are served",
            None,
        ));
    }
    if *method != Method::Ack
        && let Some(required) = req.header("Require")
    {
        let unsupported = Some(("Unsupported", required.to_string()));
        return Some((420, "Bad Extension", "extension not supported", unsupported));
    }
    if *method != Method::Invite {
        return None;
    }
    let sdp = "application/sdp";
    let content_type = req.header("Content-Type").map(|t| {
        t.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    if !req.body.is_empty() && content_type.as_deref() != Some(sdp) {
        let accept = Some(("Accept", sdp.to_string()));
        return Some((
            415,
            "Unsupported Media Type",
            "only SDP bodies are read",
            accept,
        ));
    }
    if let Some(accept) = req.header("Accept") {
        let takes_sdp = accept.split(',').any(|t| {
            let t = t
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            matches!(t.as_str(), "application/sdp" | "application/*" | "*/*")
        });
        if !takes_sdp && !accept.trim().is_empty() {
            let warning = Some((
                "Warning",
                "399 freecall \"only SDP answers are sent\"".into(),
            ));
            return Some((
                406,
                "Not Acceptable",
                "the caller does not accept SDP",
                warning,
            ));
        }
    }
    None
}
