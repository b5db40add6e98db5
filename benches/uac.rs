//! The bench's UAC: calls placed at a rate, held, hung up; setup latencies.

use super::*;

#[derive(Default)]
pub(crate) struct UacReport {
    pub(crate) attempted: u64,
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    /// Of the failed: refused at once as overloaded (503, Reason "overloaded").
    pub(crate) shed: u64,
    /// Of the failed: never answered at all, retransmissions included (the switch never
    /// took them on; the kernel dropped every copy of the INVITE, say).
    pub(crate) unheard: u64,
    /// Requests sent again because no answer came in time (RFC 3261 Timers A and E).
    pub(crate) retransmitted: u64,
    /// The failed by why: a status and its Reason, or "no answer in 8 s".
    pub(crate) why: std::collections::BTreeMap<String, u64>,
    pub(crate) latencies_us: Vec<u64>,
    pub(crate) elapsed: Duration,
    /// Datagrams the kernel dropped at the generator's socket (its receive buffer full).
    pub(crate) drops: u64,
}

pub(crate) struct UacCall {
    /// The call's number in the run (member and branch derive from it).
    pub(crate) seq: u64,
    /// CSeq of the INVITE in flight (2 after a 407).
    pub(crate) cseq: u32,
    pub(crate) started: Instant,
    pub(crate) from: String,
    pub(crate) to: Option<String>,
    pub(crate) contact: String,
    /// `Route:` lines from the answer's Record-Route (a proxy in front), reversed.
    pub(crate) route: String,
    pub(crate) bye_sent: Option<Instant>,
    /// The request in flight that no answer has stopped yet (the INVITE until a response
    /// to its CSeq, the BYE until its final response), sent again as its timer fires.
    pub(crate) unanswered: Option<String>,
    /// Whether the switch answered anything to this call (a 100 Trying at least).
    pub(crate) heard: bool,
}

/// RFC 3261's T1 and T2: a request unanswered after T1 is sent again, the interval
/// doubling (for a BYE, up to T2) — as every phone does, so a datagram the kernel drops
/// under load costs a retransmission, not the call.
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);

/// Place `total` calls at `rate`/s to `target`, hold each `hold`, then BYE.
/// With `rtp`, every answered call's media target is reported and BYE waits for `release`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn uac(
    target: SocketAddr,
    rate: u64,
    total: u64,
    hold: Duration,
    rtp_addrs: Vec<SocketAddr>,
    media: Option<tokio::sync::mpsc::UnboundedSender<(String, SocketAddr)>>,
    release: Option<tokio::sync::watch::Receiver<bool>>,
    run: &str,
    members: Option<u64>,
) -> UacReport {
    let sock = udp("127.0.0.1:0");
    let me = sock.local_addr().unwrap();
    let mut calls: HashMap<String, UacCall> = HashMap::new();
    let mut byes: BinaryHeap<Reverse<(Instant, String)>> = BinaryHeap::new();
    // (when, interval, call, CSeq): the unanswered request's next retransmission.
    let mut resend: BinaryHeap<Reverse<(Instant, Duration, String, u32)>> = BinaryHeap::new();
    let mut report = UacReport::default();
    let mut buf = vec![0u8; 65536];
    let start = now();
    let mut sent = 0u64;
    let mut last_sweep = start;
    let deadline = start
        + Duration::from_secs_f64(total as f64 / rate as f64)
        + hold
        + Duration::from_secs(15);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Like a softphone with authentication caching: once challenged, later INVITEs carry
    // credentials for the nonce it was given (a fresh cnonce each time).
    let mut nonce: Option<String> = None;
    let invite = |seq: u64, cseq: u32, rtp: SocketAddr, nonce: Option<&str>| -> String {
        let call_id = format!("{run}-{seq}@bench");
        let sdp = sdp("uac", rtp);
        // Seoul landlines, 02-2000-0000 onwards: numbers the classifier knows as landline.
        let number = 220_000_000 + seq % 70_000_000;
        let uri = format!("sip:0{number}@{target}");
        let auth = match (members, nonce) {
            (Some(m), Some(nonce)) => {
                let user = format!("m{}", seq % m);
                let proof = freecall::auth::DigestProof {
                    username: user.clone(),
                    realm: "freecall".into(),
                    nonce: nonce.to_string(),
                    uri: uri.clone(),
                    response: String::new(),
                    method: "INVITE".into(),
                    qop: Some("auth".into()),
                    nc: Some("00000001".into()),
                    cnonce: Some(format!("c{seq}x{cseq}")),
                };
                let response = freecall::auth::digest_response(
                    &freecall::auth::ha1(&user, "freecall", "pw"),
                    &proof,
                );
                format!(
                    "Proxy-Authorization: Digest username=\"{user}\", realm=\"freecall\", nonce=\"{nonce}\", uri=\"{uri}\", \
response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c{seq}x{cseq}\"\r\n"
                )
            }
            _ => String::new(),
        };
        format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{run}{seq}c{cseq};rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:0311111111@127.0.0.1>;tag=c{seq}\r\nTo: <{uri}>\r\n\
Call-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:uac@{me}>\r\n{auth}Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
    };
    loop {
        let t = now();
        if t > deadline || (sent == total && calls.is_empty()) {
            break;
        }
        tokio::select! {
            _ = tick.tick() => {
                let due = ((t - start).as_secs_f64() * rate as f64) as u64;
                while sent < due.min(total) {
                    let call_id = format!("{run}-{sent}@bench");
                    let rtp = rtp_addrs[sent as usize % rtp_addrs.len()];
                    let inv = invite(sent, 1, rtp, nonce.as_deref());
                    let _ = sock.send_to(inv.as_bytes(), target).await;
                    let from = format!("<sip:0311111111@127.0.0.1>;tag=c{sent}");
                    resend.push(Reverse((now() + T1, T1, call_id.clone(), 1)));
                    calls.insert(call_id, UacCall { seq: sent, cseq: 1, started: now(), from, to: None, contact: String::new(), route: String::new(), bye_sent: None, unanswered: Some(inv), heard: false });
                    sent += 1;
                    report.attempted += 1;
                }
                // BYEs that are due (after the hold time, or once media is released).
                let released = release.as_ref().map(|r| *r.borrow()).unwrap_or(true);
                while let Some(Reverse((at, _))) = byes.peek() {
                    if *at > t || !released {
                        break;
                    }
                    let Some(Reverse((_, call_id))) = byes.pop() else { break };
                    if let Some(c) = calls.get_mut(&call_id) {
                        let bye = format!(
                            "BYE {} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKbye{};rport\r\nMax-Forwards: 70\r\n\
        From: {}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: {} BYE\r\n{}Content-Length: 0\r\n\r\n",
                            c.contact, branch_token(&call_id), c.from, c.to.clone().unwrap_or_default(), c.cseq + 1, c.route
                        );
                        let _ = sock.send_to(bye.as_bytes(), target).await;
                        c.bye_sent = Some(now());
                        c.cseq += 1;
                        c.unanswered = Some(bye);
                        resend.push(Reverse((now() + T1, T1, call_id, c.cseq)));
                    }
                }
                // Requests no answer has stopped yet, sent again (Timer A, Timer E).
                while let Some(Reverse((at, _, _, _))) = resend.peek() {
                    if *at > t {
                        break;
                    }
                    let Some(Reverse((_, every, call_id, cseq))) = resend.pop() else { break };
                    let Some(c) = calls.get(&call_id) else { continue };
                    let Some(req) = c.unanswered.as_ref().filter(|_| c.cseq == cseq) else { continue };
                    let _ = sock.send_to(req.as_bytes(), target).await;
                    report.retransmitted += 1;
                    let every = if c.bye_sent.is_some() { (every * 2).min(T2) } else { every * 2 };
                    resend.push(Reverse((t + every, every, call_id, cseq)));
                }
                // Calls stuck for 8 s are failures (checked every 100 ms).
                if t.duration_since(last_sweep) < Duration::from_millis(100) {
                    continue;
                }
                last_sweep = t;
                let stuck: Vec<String> = calls
                    .iter()
                    .filter(|(_, c)| {
                        let since = c.bye_sent.unwrap_or(c.started);
                        (c.to.is_none() || c.bye_sent.is_some()) && t.saturating_duration_since(since) > Duration::from_secs(8)
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in stuck {
                    let Some(c) = calls.remove(&k) else { continue };
                    report.failed += 1;
                    if c.heard {
                        *report.why.entry("no answer in 8 s".into()).or_default() += 1;
                    } else {
                        report.unheard += 1;
                        *report.why.entry("never answered".into()).or_default() += 1;
                    }
                }
            }
            r = sock.recv_from(&mut buf) => {
                let Ok((n, _)) = r else { continue };
                let Ok(m) = parse_datagram(&buf[..n]) else { continue };
                let code = m.status().unwrap_or(0);
                if code == 0 {
                    continue;
                }
                // Any answer to the request in flight stops its INVITE retransmissions;
                // a final answer stops a BYE's.
                if let Some(c) = calls.get_mut(&m.call_id)
                    && m.cseq == c.cseq
                {
                    let shed = code == 503 && m.header("Reason").is_some_and(|r| r.contains("overloaded"));
                    c.heard |= !shed;
                    if m.cseq_method.as_str() == "INVITE" || code >= 200 {
                        c.unanswered = None;
                    }
                }
                if code == 100 {
                    continue;
                }
                let is_invite = m.cseq_method.as_str() == "INVITE";
                if is_invite && code >= 300 {
                    // Every final refusal is ACKed, its retransmissions too (RFC 3261
                    // 17.1.1.3: the INVITE's branch and Request-URI), as a phone does.
                    let seq: u64 = m
                        .call_id
                        .split('@')
                        .next()
                        .and_then(|c| c.rsplit_once('-'))
                        .and_then(|(_, n)| n.parse().ok())
                        .unwrap_or(0);
                    let ack = format!(
                        "ACK sip:0{number}@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{run}{seq}c{cseq};rport\r\nMax-Forwards: 70\r\n\
        From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
                        m.from, m.to, m.call_id, cseq = m.cseq, number = 220_000_000 + seq % 70_000_000
                    );
                    let _ = sock.send_to(ack.as_bytes(), target).await;
                }
                if is_invite && (200..300).contains(&code) {
                    let Some(c) = calls.get_mut(&m.call_id) else { continue };
                    let mut rr: Vec<&str> = m.headers_named("Record-Route").collect();
                    rr.reverse();
                    let route: String = rr.iter().map(|r| format!("Route: {r}\r\n")).collect();
                    let ack = format!(
                        "ACK {} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKack{};rport\r\nMax-Forwards: 70\r\n\
        From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} ACK\r\n{route}Content-Length: 0\r\n\r\n",
                        m.contact_uri.clone().unwrap_or_default(), branch_token(&m.call_id), m.from, m.to, m.call_id, m.cseq
                    );
                    let _ = sock.send_to(ack.as_bytes(), target).await;
                    if c.to.is_none() {
                        report.latencies_us.push(now().duration_since(c.started).as_micros() as u64);
                        c.to = Some(m.to.clone());
                        c.contact = m.contact_uri.clone().unwrap_or_default();
                        c.route = route;
                        if let (Some(tx), Some(t)) = (&media, offer_target(&m)) {
                            let _ = tx.send((m.call_id.clone(), t));
                        }
                        byes.push(Reverse((now() + hold, m.call_id.clone())));
                    }
                } else if is_invite && code == 407 && members.is_some() {
                    // The challenge was ACKed above; the INVITE goes again with credentials.
                    let Some(c) = calls.get_mut(&m.call_id) else { continue };
                    if m.cseq != c.cseq {
                        continue;
                    }
                    let challenge = m.header("Proxy-Authenticate").unwrap_or_default();
                    nonce = challenge
                        .split("nonce=\"")
                        .nth(1)
                        .and_then(|r| r.split('"').next())
                        .map(str::to_string);
                    if c.cseq >= 3 || nonce.is_none() {
                        calls.remove(&m.call_id);
                        report.failed += 1;
                        continue;
                    }
                    c.cseq += 1;
                    let rtp = rtp_addrs[c.seq as usize % rtp_addrs.len()];
                    let inv = invite(c.seq, c.cseq, rtp, nonce.as_deref());
                    let _ = sock.send_to(inv.as_bytes(), target).await;
                    c.unanswered = Some(inv);
                    resend.push(Reverse((now() + T1, T1, m.call_id.clone(), c.cseq)));
                } else if is_invite && code >= 300 {
                    if calls.remove(&m.call_id).is_some() {
                        report.failed += 1;
                        if code == 503 && m.header("Reason").is_some_and(|r| r.contains("overloaded")) {
                            report.shed += 1;
                        }
                        let why = format!("{code} {}", m.header("Reason").unwrap_or_default());
                        *report.why.entry(why).or_default() += 1;
                    }
                } else if m.cseq_method.as_str() == "BYE" && code == 200
                    && calls.remove(&m.call_id).is_some() {
                        report.completed += 1;
                    }
            }
        }
    }
    report.failed += calls.len() as u64;
    report.elapsed = now().duration_since(start);
    report.drops = sock.local_addr().map(|a| udp_drops(a.port())).unwrap_or(0);
    report
}

/// Datagrams the kernel dropped so far at the IPv4 UDP sockets on `port` (their receive
/// buffers full): the `drops` column of /proc/net/udp.
pub(crate) fn udp_drops(port: u16) -> u64 {
    let local = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/udp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.get(1)?.ends_with(&local)).then(|| cols.last()?.parse::<u64>().ok())?
        })
        .sum()
}

/// Calls completed per second of the offered window (`total` calls at `rate`/s): the
/// goodput, however long the stragglers took.
pub(crate) fn goodput(r: &UacReport, rate: u64, total: u64) -> f64 {
    r.completed as f64 / (total as f64 / rate.max(1) as f64)
}

/// A Call-ID as a branch's tail: a Via parameter is a token, which has no `@`.
fn branch_token(call_id: &str) -> String {
    call_id.replace('@', ".")
}

pub(crate) fn percentile(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i] as f64 / 1000.0
}

/// Calls completed per second of the run, the hold time of the last calls left out.
pub(crate) fn calls_per_sec(r: &UacReport, hold: Duration) -> f64 {
    r.completed as f64 / (r.elapsed.as_secs_f64() - hold.as_secs_f64()).max(0.001)
}
