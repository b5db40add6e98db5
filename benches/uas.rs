//! The bench's UAS: the trunk every call reaches, answering with its SDP.

use super::*;

/// Answers every INVITE with 200 (SDP pointing at one of its RTP sockets), every BYE with
/// 200; resends its 200 for retransmitted INVITEs. Reports ACKed calls' media targets.
pub(crate) async fn uas(
    sock: Arc<UdpSocket>,
    rtp_addrs: Vec<SocketAddr>,
    media: tokio::sync::mpsc::UnboundedSender<(String, SocketAddr)>,
    stop: Arc<AtomicBool>,
) {
    let me = sock.local_addr().unwrap();
    let mut answered: HashMap<String, (Vec<u8>, Option<SocketAddr>)> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    let mut n_calls = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let Ok(Ok((n, from))) =
            tokio::time::timeout(Duration::from_millis(100), sock.recv_from(&mut buf)).await
        else {
            continue;
        };
        let Ok(m) = parse_datagram(&buf[..n]) else {
            continue;
        };
        match m.method().map(|m| m.as_str()) {
            Some("INVITE") => {
                if let Some((ok, _)) = answered.get(&m.call_id) {
                    let _ = sock.send_to(ok, from).await;
                    continue;
                }
                n_calls += 1;
                let rtp = rtp_addrs[n_calls % rtp_addrs.len()];
                let offered = String::from_utf8_lossy(&m.body);
                let sdp = if offered.contains("opus/48000") {
                    sdp_opus("uas", rtp)
                } else {
                    sdp("uas", rtp)
                };
                let ok = response(&m, 200, "OK", &format!("u{n_calls}"), Some(&sdp), me);
                let target = offer_target(&m);
                let _ = sock.send_to(&ok, from).await;
                answered.insert(m.call_id.clone(), (ok, target));
            }
            Some("ACK") => {
                if let Some((_, Some(target))) = answered.get(&m.call_id) {
                    let _ = media.send((m.call_id.clone(), *target));
                }
            }
            Some("BYE") => {
                let ok = response(&m, 200, "OK", "x", None, me);
                let _ = sock.send_to(&ok, from).await;
                answered.remove(&m.call_id);
            }
            Some(_) => {
                let r = response(&m, 200, "OK", "x", None, me);
                let _ = sock.send_to(&r, from).await;
            }
            None => {}
        }
    }
}

pub(crate) fn sdp(name: &str, rtp: SocketAddr) -> String {
    format!(
        "v=0\r\no={name} 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n",
        rtp.port()
    )
}

/// An Opus answer (payload type 111, as the switch offers it when it is free).
pub(crate) fn sdp_opus(name: &str, rtp: SocketAddr) -> String {
    format!(
        "v=0\r\no={name} 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio {} RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\na=ptime:20\r\n",
        rtp.port()
    )
}

/// Where the offer/answer in `m` says media goes.
pub(crate) fn offer_target(m: &Message) -> Option<SocketAddr> {
    let body = std::str::from_utf8(&m.body).ok()?;
    let port = body
        .lines()
        .find(|l| l.starts_with("m=audio "))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(SocketAddr::from(([127, 0, 0, 1], port)))
}

pub(crate) fn response(
    req: &Message,
    code: u16,
    phrase: &str,
    tag: &str,
    sdp: Option<&str>,
    me: SocketAddr,
) -> Vec<u8> {
    let mut t = format!("SIP/2.0 {code} {phrase}\r\n");
    for v in req.headers_named("Via") {
        t.push_str("Via: ");
        t.push_str(v);
        t.push_str("\r\n");
    }
    let to = if req.to_tag.is_some() {
        req.to.clone()
    } else {
        format!("{};tag={tag}", req.to)
    };
    t.push_str(&format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {} {}\r\nContact: <sip:uas@{me}>\r\n",
        req.from, req.call_id, req.cseq, req.cseq_method
    ));
    match sdp {
        Some(s) => t.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{s}",
            s.len()
        )),
        None => t.push_str("Content-Length: 0\r\n\r\n"),
    }
    t.into_bytes()
}
