//! Building outgoing SIP messages as bytes.
//!
//! Outgoing messages are written directly rather than through a parser's types: the switch
//! controls every header it emits (topology hiding depends on it) and the bytes on the wire
//! are exactly what the tests and the golden fixtures see.

use super::message::{Message, Method};
use std::fmt::Write;

/// Writes a start line and headers; `finish` adds Content-Length and the body.
pub struct Builder {
    buf: String,
}

impl Builder {
    pub fn request(method: &Method, uri: &str) -> Builder {
        let mut buf = String::with_capacity(512);
        let _ = write!(buf, "{method} {uri} SIP/2.0\r\n");
        Builder { buf }
    }

    pub fn response(code: u16, phrase: &str) -> Builder {
        let mut buf = String::with_capacity(512);
        let _ = write!(buf, "SIP/2.0 {code} {phrase}\r\n");
        Builder { buf }
    }

    /// A response to `req`: Via, From, To, Call-ID and CSeq copied (RFC 3261 8.2.6.2), our
    /// tag added to To unless it already carries one; Record-Route too in an INVITE's
    /// 1xx/2xx.
    pub fn response_to(req: &Message, code: u16, phrase: &str, to_tag: Option<&str>) -> Builder {
        let mut b = Builder::response(code, phrase);
        for via in req.headers_named("Via") {
            b.header("Via", via);
        }
        b.header("From", &req.from);
        match (to_tag, &req.to_tag) {
            (Some(tag), None) if code != 100 => {
                let to = format!("{};tag={tag}", req.to);
                b.header("To", &to)
            }
            _ => b.header("To", &req.to),
        };
        b.header("Call-ID", &req.call_id);
        let cseq = format!("{} {}", req.cseq, req.cseq_method);
        b.header("CSeq", &cseq);
        // A response that makes a dialog carries the request's Record-Route, in order
        // (RFC 3261 12.1.1): a proxy in front (Kamailio) stays on the dialog's path.
        if req.cseq_method == super::Method::Invite && (101..300).contains(&code) {
            for rr in req.headers_named("Record-Route") {
                b.header("Record-Route", rr);
            }
        }
        b
    }

    pub fn header(&mut self, name: &str, value: &str) -> &mut Builder {
        self.buf.push_str(name);
        self.buf.push_str(": ");
        self.buf.push_str(value);
        self.buf.push_str("\r\n");
        self
    }

    /// `Reason: SIP;cause=…;text="…"` (RFC 3326): tells the far end and the NOC why.
    pub fn reason(&mut self, cause: u16, text: &str) -> &mut Builder {
        let value = format!("SIP;cause={cause};text=\"{}\"", text.replace('"', "'"));
        self.header("Reason", &value)
    }

    pub fn finish(mut self, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
        if let (Some(ct), false) = (content_type, body.is_empty()) {
            self.header("Content-Type", ct);
        }
        let _ = write!(self.buf, "Content-Length: {}\r\n\r\n", body.len());
        let mut out = self.buf.into_bytes();
        out.extend_from_slice(body);
        out
    }
}

/// A request the switch sends as a UAC. Kept by the client transaction so it can build the
/// ACK for a non-2xx final response and the CANCEL (RFC 3261 17.1.1.3, 9.1).
#[derive(Clone, Debug)]
pub struct OutRequest {
    pub method: Method,
    pub uri: String,
    /// The complete value of our Via header, branch included.
    pub via: String,
    pub branch: String,
    pub max_forwards: u32,
    pub from: String,
    pub to: String,
    pub call_id: String,
    pub cseq: u32,
    pub route: Vec<String>,
    pub contact: Option<String>,
    pub extra: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl OutRequest {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Builder::request(&self.method, &self.uri);
        b.header("Via", &self.via);
        let mf = self.max_forwards.to_string();
        b.header("Max-Forwards", &mf);
        for r in &self.route {
            b.header("Route", r);
        }
        b.header("From", &self.from);
        b.header("To", &self.to);
        b.header("Call-ID", &self.call_id);
        let cseq = format!("{} {}", self.cseq, self.method);
        b.header("CSeq", &cseq);
        if let Some(c) = &self.contact {
            b.header("Contact", c);
        }
        for (n, v) in &self.extra {
            b.header(n, v);
        }
        b.finish(self.content_type.as_deref(), &self.body)
    }

    /// The ACK for a non-2xx final response: same branch, To taken from the response.
    pub fn ack_for_failure(&self, response_to: &str) -> OutRequest {
        OutRequest {
            method: Method::Ack,
            to: response_to.to_string(),
            contact: None,
            extra: Vec::new(),
            content_type: None,
            body: Vec::new(),
            ..self.clone()
        }
    }

    /// The CANCEL for this request (RFC 3261 9.1): same Request-URI, Via branch, From, To,
    /// Call-ID and CSeq number.
    pub fn cancel(&self) -> OutRequest {
        OutRequest {
            method: Method::Cancel,
            contact: None,
            extra: Vec::new(),
            content_type: None,
            body: Vec::new(),
            ..self.clone()
        }
    }
}
