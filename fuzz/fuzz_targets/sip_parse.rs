//! Framing and parsing: a datagram, and the same bytes as a TCP stream cut into messages.
//! Neither may panic; a message that parses must say what its bytes say.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = freecall::sip::parse_datagram(data) {
        assert!(!m.call_id.is_empty());
        assert!(!m.branch.is_empty());
        assert!(m.body.len() <= data.len());
    }
    let mut rest = data;
    while let Ok(Some((skip, len))) = freecall::sip::frame_stream(rest) {
        if len == 0 {
            rest = &rest[skip..];
            if rest.is_empty() {
                break;
            }
            continue;
        }
        let _ = freecall::sip::parse_framed(&rest[skip..skip + len]);
        rest = &rest[skip + len..];
    }
    // The stateless 400 a request that failed to parse gets: never a header of the
    // sender's making, so never a bare CR or LF inside a line.
    if let Some(reply) =
        freecall::sip::stateless_reply_to_raw(data, 400, "Bad Request", "fuzz", "t")
    {
        let text = String::from_utf8_lossy(&reply);
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        for line in head.split("\r\n") {
            assert!(!line.contains(['\r', '\n']), "{line:?}");
        }
    }
});
