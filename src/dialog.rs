//! A SIP dialog as one leg of a call sees it (RFC 3261 12).
//!
//! Knows nothing of media or money; the call layer owns two of these per call.

use crate::sip::{Method, OutRequest, Transport};
use crate::transaction::Peer;
use std::net::SocketAddr;

#[derive(Clone, Debug)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    /// Our side's name-addr without tag (From when we are the UAC, To when the UAS).
    pub local_uri: String,
    pub remote_tag: Option<String>,
    /// The far side's name-addr, tag included.
    pub remote: String,
    pub local_cseq: u32,
    pub remote_target: String,
    pub route_set: Vec<String>,
    /// Where in-dialog requests are sent. For the caller's leg this is the address its
    /// INVITE came from (the flow), not its Contact: the switch never sends signalling
    /// to an address a message merely names, so it cannot be made into a relay.
    pub peer: Peer,
}

impl Dialog {
    pub fn local(&self) -> String {
        format!("{};tag={}", self.local_uri, self.local_tag)
    }

    /// A new in-dialog request with the next local CSeq.
    pub fn request(
        &mut self,
        method: Method,
        branch: String,
        via_host: SocketAddr,
        contact: &str,
    ) -> OutRequest {
        self.local_cseq += 1;
        self.build(method, self.local_cseq, branch, via_host, contact)
    }

    /// The ACK for a 2xx to our INVITE with CSeq `cseq` (RFC 3261 13.2.2.4).
    pub fn ack(&self, cseq: u32, branch: String, via_host: SocketAddr) -> OutRequest {
        let mut r = self.build(Method::Ack, cseq, branch, via_host, "");
        r.contact = None;
        r
    }

    fn build(
        &self,
        method: Method,
        cseq: u32,
        branch: String,
        via_host: SocketAddr,
        contact: &str,
    ) -> OutRequest {
        OutRequest {
            via: via(self.peer.transport, via_host, &branch),
            method,
            uri: self.remote_target.clone(),
            branch,
            max_forwards: 70,
            from: self.local(),
            to: self.remote.clone(),
            call_id: self.call_id.clone(),
            cseq,
            route: self.route_set.clone(),
            contact: (!contact.is_empty()).then(|| contact.to_string()),
            extra: Vec::new(),
            content_type: None,
            body: Vec::new(),
        }
    }
}

/// Our Via header value.
pub fn via(transport: Transport, host: SocketAddr, branch: &str) -> String {
    format!(
        "SIP/2.0/{} {host};branch={branch};rport",
        transport.as_str()
    )
}
