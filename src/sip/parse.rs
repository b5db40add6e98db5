//! Framing and parsing of SIP messages, with the checks RFC 3261 and RFC 4475 ask for.
//!
//! "Incomplete is not an error": a partial TCP frame is `Ok(None)`.

use super::grammar;
use super::message::{Header, Message, Method, StartLine};
use thiserror::Error;

/// The most header bytes we accept before the blank line; a larger head is hostile.
const MAX_HEAD: usize = 16 * 1024;
/// The largest body we accept (SDP is a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;
/// RFC 3261 8.1.1.5: the CSeq number MUST be less than 2**31.
const MAX_CSEQ: u64 = (1 << 31) - 1;

/// Why a message was refused. The text goes into the `Reason` header of the 400.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("no blank line after the headers")]
    NoHeaderEnd,
    #[error("headers larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("headers are not valid UTF-8")]
    NotUtf8,
    #[error("malformed start line")]
    StartLine,
    #[error("malformed header line: {0}")]
    HeaderLine(String),
    #[error("missing mandatory header {0}")]
    Missing(&'static str),
    #[error("invalid {0} header")]
    Invalid(&'static str),
    #[error("Content-Length does not match the body")]
    ContentLength,
    #[error("CSeq method does not match the request method")]
    CSeqMethod,
    #[error("CSeq number out of range")]
    CSeqRange,
    #[error("unbalanced quotes or brackets in {0}")]
    Unbalanced(&'static str),
    #[error("unsupported SIP version")]
    Version,
    #[error("more than one {0} header")]
    Repeated(&'static str),
    #[error("a header value holds a bare CR or LF")]
    BareLineBreak,
    #[error("malformed Request-URI")]
    RequestUri,
}

impl ParseError {
    /// The status a request refused for this gets (RFC 4475 3.1.2.16: an unknown SIP
    /// version is 505, anything else 400) and its phrase.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            ParseError::Version => (505, "Version Not Supported"),
            _ => (400, "Bad Request"),
        }
    }
}

/// Parse one UDP datagram. Bytes after the body that Content-Length announces are
/// discarded (RFC 3261 18.3); a body shorter than announced is an error.
pub fn parse_datagram(bytes: &[u8]) -> Result<Message, ParseError> {
    parse(bytes, false)
}

/// Parse one message that `frame_stream` has cut out of a TCP stream.
pub fn parse_framed(bytes: &[u8]) -> Result<Message, ParseError> {
    parse(bytes, true)
}

/// Find the next message in a stream buffer. Returns `(skip, len)`: `skip` bytes of
/// keep-alive CRLFs to drop first, then a complete message of `len` bytes.
/// `Ok(None)` means more bytes are needed.
pub fn frame_stream(buf: &[u8]) -> Result<Option<(usize, usize)>, ParseError> {
    let skip = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    let rest = &buf[skip..];
    if rest.is_empty() {
        return Ok(if skip > 0 { Some((skip, 0)) } else { None });
    }
    let Some(end) = find(rest, b"\r\n\r\n") else {
        if rest.len() > MAX_HEAD {
            return Err(ParseError::HeadTooLarge);
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&rest[..end]).map_err(|_| ParseError::NotUtf8)?;
    let (_, headers) = split_head(head)?;
    // RFC 3261 18.3: over a stream transport Content-Length is mandatory.
    let length = content_length(&headers)?.ok_or(ParseError::Missing("Content-Length"))?;
    let total = end + 4 + length;
    if rest.len() < total {
        return Ok(None);
    }
    Ok(Some((skip, total)))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Expand RFC 3261 7.3.3 compact header names so the rest of the code sees one spelling.
fn canonical_name(name: &str) -> &str {
    match name {
        "v" | "V" => "Via",
        "f" | "F" => "From",
        "t" | "T" => "To",
        "i" | "I" => "Call-ID",
        "m" | "M" => "Contact",
        "l" | "L" => "Content-Length",
        "c" | "C" => "Content-Type",
        "k" | "K" => "Supported",
        "s" | "S" => "Subject",
        "e" | "E" => "Content-Encoding",
        _ => name,
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// Split the head into the start line and unfolded header lines.
fn split_head(head: &str) -> Result<(&str, Vec<Header>), ParseError> {
    let mut lines = head.split("\r\n");
    let start = lines.next().ok_or(ParseError::StartLine)?;
    let mut headers: Vec<Header> = Vec::with_capacity(16);
    for line in lines {
        // A CR or LF not part of a line end (it could end a header in a reply or a request
        // the switch sends on, and start one of an attacker's choosing).
        if line.contains(['\r', '\n']) {
            return Err(ParseError::BareLineBreak);
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            // A folded continuation (RFC 3261 7.3.1): joined with a single space.
            let last = headers
                .last_mut()
                .ok_or_else(|| ParseError::HeaderLine(line.trim().to_string()))?;
            last.value.push(' ');
            last.value.push_str(line.trim());
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| ParseError::HeaderLine(truncate(line)))?;
        let name = name.trim_end();
        if !is_token(name) {
            return Err(ParseError::HeaderLine(truncate(line)));
        }
        headers.push(Header {
            name: canonical_name(name).to_string(),
            value: value.trim().to_string(),
        });
    }
    Ok((start, headers))
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

fn content_length(headers: &[Header]) -> Result<Option<usize>, ParseError> {
    // Two lengths leave the framing unknowable (RFC 4475 3.3.9).
    let Some(value) = single(headers, "Content-Length")? else {
        return Ok(None);
    };
    let v = value.trim();
    if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::ContentLength);
    }
    // Cannot fail: at most nine ASCII digits.
    let n: usize = v.parse().map_err(|_| ParseError::ContentLength)?;
    if n > MAX_BODY {
        return Err(ParseError::ContentLength);
    }
    Ok(Some(n))
}

fn balanced(value: &str) -> bool {
    let mut quoted = false;
    let mut escaped = false;
    let mut depth = 0i32;
    for c in value.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    !quoted && depth == 0
}

fn parse(bytes: &[u8], exact: bool) -> Result<Message, ParseError> {
    let end = find(bytes, b"\r\n\r\n").ok_or(ParseError::NoHeaderEnd)?;
    if end > MAX_HEAD {
        return Err(ParseError::HeadTooLarge);
    }
    let head = std::str::from_utf8(&bytes[..end]).map_err(|_| ParseError::NotUtf8)?;
    let rest = &bytes[end + 4..];
    let (start, headers) = split_head(head)?;
    let body = match content_length(&headers)? {
        Some(n) if n > rest.len() => return Err(ParseError::ContentLength),
        Some(n) if exact && n != rest.len() => return Err(ParseError::ContentLength),
        Some(n) => &rest[..n],
        None if exact => return Err(ParseError::Missing("Content-Length")),
        None => rest,
    };
    if body.len() > MAX_BODY {
        return Err(ParseError::ContentLength);
    }

    let start_line = parse_start(start)?;
    for name in ["From", "To", "Contact"] {
        if let Some(h) = headers.iter().find(|h| h.name.eq_ignore_ascii_case(name))
            && !balanced(&h.value)
        {
            return Err(ParseError::Unbalanced(static_name(name)));
        }
    }
    extract(start_line, headers, body)
}

fn static_name(name: &str) -> &'static str {
    match name {
        "From" => "From",
        "To" => "To",
        _ => "Contact",
    }
}

fn parse_start(line: &str) -> Result<StartLine, ParseError> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        let mut parts = rest.splitn(3, ' ');
        if parts.next() != Some("2.0") {
            return Err(ParseError::Version);
        }
        let code: u16 = parts
            .next()
            .filter(|c| c.len() == 3)
            .and_then(|c| c.parse().ok())
            .ok_or(ParseError::StartLine)?;
        if !(100..700).contains(&code) {
            return Err(ParseError::StartLine);
        }
        let reason = parts.next().unwrap_or("").to_string();
        return Ok(StartLine::Response { code, reason });
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::StartLine);
    };
    if version != "SIP/2.0" {
        return Err(ParseError::Version);
    }
    if !is_token(method) || uri.is_empty() {
        return Err(ParseError::StartLine);
    }
    // A Request-URI has a scheme (not `<sip:…>`, RFC 4475 3.1.2.7) and no headers (3.1.2.11).
    let Some(scheme) = grammar::scheme(uri) else {
        return Err(ParseError::RequestUri);
    };
    let sip = scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips");
    if sip && grammar::has_headers(uri) {
        return Err(ParseError::RequestUri);
    }
    Ok(StartLine::Request {
        method: Method::parse(method),
        uri: uri.to_string(),
    })
}

/// The one value of a header that must appear once (RFC 4475 3.3.8: two Call-IDs, Froms,
/// Tos, CSeqs or Max-Forwards are an error, not a choice).
fn single<'a>(headers: &'a [Header], name: &'static str) -> Result<Option<&'a str>, ParseError> {
    let mut found = headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name));
    let first = found.next().map(|h| h.value.as_str());
    if found.next().is_some() {
        return Err(ParseError::Repeated(name));
    }
    Ok(first)
}

fn extract(start: StartLine, headers: Vec<Header>, body: &[u8]) -> Result<Message, ParseError> {
    let call_id = single(&headers, "Call-ID")?
        .ok_or(ParseError::Missing("Call-ID"))?
        .trim()
        .to_string();
    if call_id.is_empty() || call_id.contains(char::is_whitespace) {
        return Err(ParseError::Invalid("Call-ID"));
    }
    let from = single(&headers, "From")?
        .ok_or(ParseError::Missing("From"))?
        .to_string();
    let from_typed = grammar::name_addr(&from).ok_or(ParseError::Invalid("From"))?;
    let to = single(&headers, "To")?
        .ok_or(ParseError::Missing("To"))?
        .to_string();
    let to_typed = grammar::name_addr(&to).ok_or(ParseError::Invalid("To"))?;
    let raw_cseq = single(&headers, "CSeq")?.ok_or(ParseError::Missing("CSeq"))?;
    let via_value = headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("Via"))
        .ok_or(ParseError::Missing("Via"))?;
    let via = grammar::via(&via_value.value).ok_or(ParseError::Invalid("Via"))?;
    for later in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Via"))
        .skip(1)
    {
        grammar::via(&later.value).ok_or(ParseError::Invalid("Via"))?;
    }

    // RFC 3261 wants CSeq numbers < 2**31.
    let mut cseq_parts = raw_cseq.split_whitespace();
    let number: u64 = cseq_parts
        .next()
        .filter(|n| n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
        .ok_or(ParseError::Invalid("CSeq"))?;
    if number > MAX_CSEQ {
        return Err(ParseError::CSeqRange);
    }
    let cseq_method = cseq_parts
        .next()
        .filter(|m| is_token(m))
        .map(Method::parse)
        .ok_or(ParseError::Invalid("CSeq"))?;
    if cseq_parts.next().is_some() {
        return Err(ParseError::Invalid("CSeq"));
    }
    if let StartLine::Request { method, .. } = &start
        && *method != cseq_method
    {
        return Err(ParseError::CSeqMethod);
    }
    // RFC 2543 senders put no branch in their Via (RFC 4475 3.4.1): their transaction is
    // told by what RFC 3261 17.2.3 matches on instead, folded into a branch of our own
    // making that no RFC 3261 branch can equal (those start with the magic cookie).
    let branch = match via.branch {
        Some(b) if !b.is_empty() => b,
        _ => format!(
            "rfc2543-{:016x}",
            rfc2543_key(&start, &call_id, number, &from_typed.tag, &via.sent_by)
        ),
    };

    let max_forwards = match single(&headers, "Max-Forwards")? {
        Some(v) => Some(
            v.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= 255)
                .ok_or(ParseError::Invalid("Max-Forwards"))?,
        ),
        None => None,
    };
    let contact_uri = match headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("Contact"))
    {
        Some(c) => Some(
            grammar::name_addr(&c.value)
                .ok_or(ParseError::Invalid("Contact"))?
                .uri,
        ),
        None => None,
    };
    let uri_user = match &start {
        StartLine::Request { uri, .. } => grammar::uri_user(uri),
        StartLine::Response { .. } => None,
    };
    Ok(Message {
        call_id,
        from_user: grammar::uri_user(&from_typed.uri),
        from,
        from_tag: from_typed.tag,
        to,
        to_tag: to_typed.tag,
        cseq: number as u32,
        cseq_method,
        branch,
        sent_by: via.sent_by,
        max_forwards,
        contact_uri,
        uri_user,
        start,
        headers,
        body: body.to_vec(),
    })
}

/// What an RFC 2543 request's transaction is matched by: the Request-URI, Call-ID, CSeq
/// number, From tag and the top Via's sent-by (the method is left out, so its ACK and
/// CANCEL match it, as the transaction layer expects of a branch).
fn rfc2543_key(
    start: &StartLine,
    call_id: &str,
    cseq: u64,
    from_tag: &Option<String>,
    sent_by: &str,
) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if let StartLine::Request { uri, .. } = start {
        uri.hash(&mut h);
    }
    (call_id, cseq, from_tag, sent_by).hash(&mut h);
    h.finish()
}

/// Build a stateless reply (e.g. 400) to a request that could not be parsed, from its raw
/// Via/From/To/Call-ID/CSeq lines. `None` when the bytes are a response, an ACK, or lack
/// what a reply needs — those are dropped.
pub fn stateless_reply_to_raw(
    bytes: &[u8],
    code: u16,
    phrase: &str,
    reason_text: &str,
    to_tag: &str,
) -> Option<Vec<u8>> {
    let end = find(bytes, b"\r\n\r\n").unwrap_or(bytes.len().min(MAX_HEAD));
    let head = String::from_utf8_lossy(&bytes[..end.min(MAX_HEAD)]);
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    if start.starts_with("SIP/") || start.starts_with("ACK ") {
        return None;
    }
    let mut vias = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        // Values with CR/LF cannot occur here (lines were split on CRLF) but a stray CR
        // would let a hostile request inject headers into our reply.
        if value.contains('\r') || value.contains('\n') || value.len() > 1024 {
            continue;
        }
        match canonical_name(name.trim()).to_ascii_lowercase().as_str() {
            "via" => vias.push(value.to_string()),
            "from" => from = Some(value.to_string()),
            "to" => to = Some(value.to_string()),
            "call-id" => call_id = Some(value.to_string()),
            "cseq" => cseq = Some(value.to_string()),
            _ => {}
        }
    }
    if vias.is_empty() {
        return None;
    }
    let mut out = format!("SIP/2.0 {code} {phrase}\r\n");
    for v in &vias {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    out.push_str(&format!("From: {}\r\n", from.unwrap_or_default()));
    let mut to = to.unwrap_or_default();
    if !to.contains(";tag=") {
        to.push_str(&format!(";tag={to_tag}"));
    }
    out.push_str(&format!("To: {to}\r\n"));
    out.push_str(&format!("Call-ID: {}\r\n", call_id.unwrap_or_default()));
    out.push_str(&format!("CSeq: {}\r\n", cseq.unwrap_or_default()));
    out.push_str(&format!(
        "Reason: SIP;cause={code};text=\"{}\"\r\n",
        reason_text.replace('"', "'")
    ));
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:0212345678@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@127.0.0.1>;tag=a1\r\n\
To: <sip:0212345678@127.0.0.1>\r\n\
Call-ID: c1@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@127.0.0.1:5070>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

    #[test]
    fn parses_a_plain_invite() {
        let m = parse_datagram(INVITE.as_bytes()).unwrap();
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.uri_user.as_deref(), Some("0212345678"));
        assert_eq!(m.from_tag.as_deref(), Some("a1"));
        assert_eq!(m.to_tag, None);
        assert_eq!(m.branch, "z9hG4bK1");
        assert_eq!(m.sent_by, "127.0.0.1:5070");
        assert_eq!(m.cseq, 1);
        assert_eq!(m.body, b"v=0\n");
        assert_eq!(m.contact_uri.as_deref(), Some("sip:alice@127.0.0.1:5070"));
    }

    #[test]
    fn unfolds_folded_headers_and_compact_names() {
        let folded = INVITE
            .replace(
                "Max-Forwards: 70\r\n",
                "Subject: hello\r\n  world\r\nMax-Forwards: 70\r\n",
            )
            .replace("Call-ID:", "i:");
        let m = parse_datagram(folded.as_bytes()).unwrap();
        assert_eq!(m.header("Subject"), Some("hello world"));
        assert_eq!(m.call_id, "c1@127.0.0.1");
    }

    #[test]
    fn refuses_what_rfc_3261_does_not_allow() {
        let long = INVITE.replace("Content-Length: 4", "Content-Length: 400");
        assert_eq!(
            parse_datagram(long.as_bytes()).unwrap_err(),
            ParseError::ContentLength
        );
        let neg = INVITE.replace("Content-Length: 4", "Content-Length: -4");
        assert_eq!(
            parse_datagram(neg.as_bytes()).unwrap_err(),
            ParseError::ContentLength
        );
        let cseq = INVITE.replace("CSeq: 1 INVITE", "CSeq: 1 BYE");
        assert_eq!(
            parse_datagram(cseq.as_bytes()).unwrap_err(),
            ParseError::CSeqMethod
        );
        let big = INVITE.replace("CSeq: 1 INVITE", "CSeq: 4294967295 INVITE");
        assert_eq!(
            parse_datagram(big.as_bytes()).unwrap_err(),
            ParseError::CSeqRange
        );
        let quote = INVITE.replace("\"Alice\"", "\"Alice");
        assert_eq!(
            parse_datagram(quote.as_bytes()).unwrap_err(),
            ParseError::Unbalanced("From")
        );
    }

    #[test]
    fn frames_a_tcp_stream() {
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(INVITE.as_bytes());
        stream.extend_from_slice(&INVITE.as_bytes()[..30]);
        let (skip, len) = frame_stream(&stream).unwrap().unwrap();
        assert_eq!(skip, 4);
        assert_eq!(len, INVITE.len());
        assert!(parse_framed(&stream[skip..skip + len]).is_ok());
        assert_eq!(frame_stream(&stream[skip + len..]).unwrap(), None);
    }

    #[test]
    fn answers_garbage_statelessly() {
        let bad = INVITE.replace("CSeq: 1 INVITE", "CSeq: x INVITE");
        let reply =
            stateless_reply_to_raw(bad.as_bytes(), 400, "Bad Request", "bad CSeq", "t1").unwrap();
        let reply = String::from_utf8(reply).unwrap();
        assert!(reply.starts_with("SIP/2.0 400 Bad Request\r\n"));
        assert!(reply.contains("Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\n"));
        assert!(reply.contains("To: <sip:0212345678@127.0.0.1>;tag=t1\r\n"));
        assert!(reply.contains("Reason: SIP;cause=400;text=\"bad CSeq\""));
        assert!(
            stateless_reply_to_raw(
                b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n",
                400,
                "Bad Request",
                "",
                "t"
            )
            .is_none()
        );
    }
}
