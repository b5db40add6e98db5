//! A scriptable SIP phone and trunk over real UDP sockets, for the end-to-end tests, the
//! benchmark harness and operators' smoke checks.
//!
//! It is deliberately simple and independent of the switch's call layer: messages are
//! written as text here and only parsed with the switch's parser, so a test asserts what
//! a real far end would see on the wire.

pub mod audio;
pub mod dns;
pub mod pg;

use freecall::sip::{Message, parse_datagram};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::UdpSocket;

static COUNTER: AtomicU64 = AtomicU64::new(1);

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// One SIP user agent (a phone or a trunk) with its own RTP socket.
pub struct Phone {
    pub sip: UdpSocket,
    pub addr: SocketAddr,
    pub rtp: UdpSocket,
    pub rtp_addr: SocketAddr,
    /// RTCP on the port above RTP, as the SDP implies.
    pub rtcp: UdpSocket,
    pub name: String,
}

/// Our side of a dialog, enough to send in-dialog requests and ACKs.
#[derive(Clone, Debug)]
pub struct Leg {
    pub call_id: String,
    pub local: String,
    pub remote: String,
    pub cseq: u32,
    pub target: SocketAddr,
    pub request_uri: String,
    pub invite_branch: String,
    /// The route set (a proxy's Record-Route in the answer), sent as Route headers.
    pub route: Vec<String>,
}

impl Leg {
    /// `Route: …` lines for the route set, or nothing.
    fn route_lines(&self) -> String {
        self.route
            .iter()
            .map(|r| format!("Route: {r}\r\n"))
            .collect()
    }
}

impl Phone {
    pub async fn bind(name: &str) -> Phone {
        Phone::bind_on("127.0.0.1", name).await
    }

    /// A phone on another loopback address (127.0.0.2 …), to be a different source.
    pub async fn bind_on(ip: &str, name: &str) -> Phone {
        let sip = UdpSocket::bind((ip, 0)).await.expect("bind SIP");
        // An even RTP port with RTCP free on the next one (bounded search).
        for _ in 0..200 {
            let rtp = UdpSocket::bind((ip, 0)).await.expect("bind RTP");
            let port = rtp.local_addr().expect("addr").port();
            if port % 2 != 0 || port == u16::MAX {
                continue;
            }
            if let Ok(rtcp) = UdpSocket::bind((ip, port + 1)).await {
                return Phone {
                    addr: sip.local_addr().expect("addr"),
                    rtp_addr: rtp.local_addr().expect("addr"),
                    sip,
                    rtp,
                    rtcp,
                    name: name.to_string(),
                };
            }
        }
        panic!("no free RTP/RTCP port pair on 127.0.0.1")
    }

    /// An SDP offer/answer for PCMU with our RTP address.
    pub fn sdp(&self, direction: &str) -> String {
        format!(
            "v=0\r\no={n} 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
m=audio {p} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=ptime:20\r\na={direction}\r\n",
            n = self.name,
            ip = self.rtp_addr.ip(),
            p = self.rtp_addr.port()
        )
    }

    pub async fn send(&self, to: SocketAddr, bytes: &[u8]) {
        self.sip.send_to(bytes, to).await.expect("send");
    }

    /// The next SIP message, or `None` after `wait`.
    pub async fn recv(&self, wait: Duration) -> Option<(Message, SocketAddr)> {
        let mut buf = vec![0u8; 65536];
        let (n, from) = tokio::time::timeout(wait, self.sip.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        let text = buf[..n].to_vec();
        match parse_datagram(&text) {
            Ok(m) => Some((m, from)),
            Err(e) => panic!(
                "{}: unparsable message from the switch: {e}\n{}",
                self.name,
                String::from_utf8_lossy(&text)
            ),
        }
    }

    /// The next datagram as text, unparsed, skipping 100 Trying.
    pub async fn recv_raw(&self, wait: Duration) -> Option<String> {
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, _) = tokio::time::timeout(wait, self.sip.recv_from(&mut buf))
                .await
                .ok()?
                .ok()?;
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if !text.starts_with("SIP/2.0 100 ") {
                return Some(text);
            }
        }
    }

    /// Wait for a request of `method`, skipping anything else. Panics after `wait`.
    pub async fn expect_request(&self, method: &str, wait: Duration) -> (Message, SocketAddr) {
        let deadline =
            tokio::time::Instant::from_std(freecall::clock::Clock::system().now() + wait);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::from_std(
                freecall::clock::Clock::system().now(),
            ));
            match self.recv(left).await {
                Some((m, from)) if m.method().map(|x| x.as_str()) == Some(method) => {
                    return (m, from);
                }
                Some(_) => continue,
                None => panic!("{}: no {method} within {wait:?}", self.name),
            }
        }
    }

    /// Wait for a final response (or the given provisional), skipping 100 Trying.
    pub async fn expect_status(&self, codes: &[u16], wait: Duration) -> Message {
        let deadline =
            tokio::time::Instant::from_std(freecall::clock::Clock::system().now() + wait);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::from_std(
                freecall::clock::Clock::system().now(),
            ));
            match self.recv(left).await {
                Some((m, _)) if m.status().map(|c| codes.contains(&c)).unwrap_or(false) => {
                    return m;
                }
                Some((m, _)) if m.status() == Some(100) || m.is_request() => continue,
                Some((m, _)) => panic!(
                    "{}: expected {codes:?}, got {:?} {}",
                    self.name,
                    m.status(),
                    m.reason_phrase()
                ),
                None => panic!("{}: no {codes:?} within {wait:?}", self.name),
            }
        }
    }

    /// Nothing arrives for `wait` (ignoring 100 Trying).
    pub async fn expect_silence(&self, wait: Duration) {
        if let Some((m, _)) = self.recv(wait).await
            && m.status() != Some(100)
        {
            panic!(
                "{}: expected silence, got {:?} {:?}",
                self.name,
                m.method(),
                m.status()
            );
        }
    }

    /// Build an INVITE to `number` via `switch`; returns the bytes and our leg.
    pub fn invite(&self, switch: SocketAddr, number: &str, sdp: &str) -> (Vec<u8>, Leg) {
        let call_id = unique(&format!("{}-call-", self.name));
        let tag = unique("tag");
        let branch = unique("z9hG4bK-test-");
        let uri = format!("sip:{number}@{switch}");
        let local = format!("\"{0}\" <sip:{0}@127.0.0.1>;tag={tag}", self.name);
        let remote = format!("<sip:{number}@{switch}>");
        let text = format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\nMax-Forwards: 70\r\n\
From: {local}\r\nTo: {remote}\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:{name}@{me}>\r\nContent-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            me = self.addr,
            name = self.name,
            len = sdp.len()
        );
        let leg = Leg {
            call_id,
            local,
            remote,
            cseq: 1,
            target: switch,
            request_uri: uri,
            invite_branch: branch,
            route: Vec::new(),
        };
        (text.into_bytes(), leg)
    }

    /// Wait until `switch` has read everything this phone sent it (an ACK has no answer):
    /// an OPTIONS outside any dialog, whose answer comes after the switch read what came
    /// before it from this socket. Before a test moves the switch's clock forward.
    pub async fn settled(&self, switch: SocketAddr) {
        self.options(switch).await;
    }

    /// An OPTIONS outside any dialog (what a load balancer probes with); its answer.
    pub async fn options(&self, switch: SocketAddr) -> Message {
        let call_id = unique(&format!("{}-sync-", self.name));
        let branch = unique("z9hG4bK-test-");
        let text = format!(
            "OPTIONS sip:{switch} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:{name}@127.0.0.1>;tag={tag}\r\nTo: <sip:{switch}>\r\n\
Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            me = self.addr,
            name = self.name,
            tag = unique("tag"),
        );
        self.send(switch, text.as_bytes()).await;
        loop {
            match self.recv(Duration::from_secs(5)).await {
                Some((m, _))
                    if m.header("Call-ID") == Some(call_id.as_str())
                        && m.status().unwrap_or(0) >= 200 =>
                {
                    return m;
                }
                Some(_) => continue,
                None => panic!("{}: the switch did not answer OPTIONS", self.name),
            }
        }
    }

    /// The ACK for a final non-2xx response to our INVITE (same branch, RFC 3261 17.1.1.3).
    pub fn ack_failure(&self, leg: &Leg, resp: &Message) -> Vec<u8> {
        format!(
            "ACK {} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={};rport\r\nMax-Forwards: 70\r\n\
From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
            leg.request_uri,
            self.addr,
            leg.invite_branch,
            leg.local,
            resp.to,
            leg.call_id,
            leg.cseq
        )
        .into_bytes()
    }

    /// Answer a 407 the way a softphone does: the same INVITE again (same Call-ID and tag,
    /// next CSeq, new branch) with a digest `Proxy-Authorization` for `user`/`password`.
    pub fn invite_with_credentials(
        &self,
        leg: &mut Leg,
        challenge: &Message,
        sdp: &str,
        user: &str,
        password: &str,
    ) -> Vec<u8> {
        let value = challenge.header("Proxy-Authenticate").unwrap_or_default();
        let param = |name: &str| -> String {
            let key = format!("{name}=\"");
            value
                .find(&key)
                .map(|i| &value[i + key.len()..])
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_default()
                .to_string()
        };
        let (realm, nonce) = (param("realm"), param("nonce"));
        let cnonce = unique("cn");
        let proof = freecall::auth::DigestProof {
            username: user.into(),
            realm: realm.clone(),
            nonce: nonce.clone(),
            uri: leg.request_uri.clone(),
            response: String::new(),
            method: "INVITE".into(),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some(cnonce.clone()),
        };
        let response =
            freecall::auth::digest_response(&freecall::auth::ha1(user, &realm, password), &proof);
        leg.cseq += 1;
        leg.invite_branch = unique("z9hG4bK-test-");
        format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\nMax-Forwards: 70\r\n\
From: {local}\r\nTo: {remote}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\n\
Contact: <sip:{name}@{me}>\r\nProxy-Authorization: Digest username=\"{user}\", realm=\"{realm}\", \
nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"{cnonce}\"\r\n\
Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            uri = leg.request_uri,
            me = self.addr,
            branch = leg.invite_branch,
            local = leg.local,
            remote = leg.remote,
            call_id = leg.call_id,
            cseq = leg.cseq,
            name = self.name,
            len = sdp.len()
        )
        .into_bytes()
    }

    /// A response to `req` with our tag, Contact and optional SDP.
    pub fn response(
        &self,
        req: &Message,
        code: u16,
        phrase: &str,
        tag: &str,
        sdp: Option<&str>,
    ) -> Vec<u8> {
        let mut text = format!("SIP/2.0 {code} {phrase}\r\n");
        for v in req.headers_named("Via") {
            text.push_str(&format!("Via: {v}\r\n"));
        }
        let to = if req.to_tag.is_some() || code == 100 {
            req.to.clone()
        } else {
            format!("{};tag={tag}", req.to)
        };
        text.push_str(&format!(
            "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {} {}\r\nContact: <sip:{}@{}>\r\n",
            req.from, req.call_id, req.cseq, req.cseq_method, self.name, self.addr
        ));
        match sdp {
            Some(s) => text.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{s}",
                s.len()
            )),
            None => text.push_str("Content-Length: 0\r\n\r\n"),
        }
        text.into_bytes()
    }

    /// Answer `req` and return our leg for in-dialog requests towards the sender.
    pub fn leg_from_request(&self, req: &Message, from: SocketAddr, tag: &str) -> Leg {
        Leg {
            call_id: req.call_id.clone(),
            local: format!("{};tag={tag}", req.to),
            remote: req.from.clone(),
            cseq: 100,
            target: from,
            request_uri: req.contact_uri.clone().unwrap_or_default(),
            invite_branch: req.branch.clone(),
            route: req
                .headers_named("Record-Route")
                .map(str::to_string)
                .collect(),
        }
    }

    /// Record the far end's tag from a response to our INVITE, and the route set its
    /// Record-Route names (reversed: we are the caller).
    pub fn update_leg(leg: &mut Leg, resp: &Message) {
        leg.remote = resp.to.clone();
        let mut route: Vec<String> = resp
            .headers_named("Record-Route")
            .flat_map(|v| v.split(',').map(|r| r.trim().to_string()))
            .collect();
        route.reverse();
        leg.route = route;
        if let Some(c) = &resp.contact_uri {
            leg.request_uri = c.clone();
        }
    }

    /// An in-dialog request (BYE, re-INVITE, INFO …) on `leg`.
    pub fn request(&self, leg: &mut Leg, method: &str, body: Option<(&str, &str)>) -> Vec<u8> {
        if method != "ACK" {
            leg.cseq += 1;
        }
        let branch = unique("z9hG4bK-test-");
        let mut text = format!(
            "{method} {} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={branch};rport\r\nMax-Forwards: 70\r\n\
From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {method}\r\nContact: <sip:{}@{}>\r\n{}",
            leg.request_uri,
            self.addr,
            leg.local,
            leg.remote,
            leg.call_id,
            leg.cseq,
            self.name,
            self.addr,
            leg.route_lines()
        );
        match body {
            Some((ct, b)) => text.push_str(&format!(
                "Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )),
            None => text.push_str("Content-Length: 0\r\n\r\n"),
        }
        text.into_bytes()
    }

    /// The ACK for a 2xx to the INVITE with CSeq `cseq` on `leg`.
    pub fn ack(&self, leg: &Leg, cseq: u32) -> Vec<u8> {
        let branch = unique("z9hG4bK-test-");
        format!(
            "ACK {} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={branch};rport\r\nMax-Forwards: 70\r\n\
From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} ACK\r\n{}Content-Length: 0\r\n\r\n",
            leg.request_uri,
            self.addr,
            leg.local,
            leg.remote,
            leg.call_id,
            leg.route_lines()
        )
        .into_bytes()
    }

    /// Send `count` RTP packets of µ-law audio (a tone of `hz`) to `dest`, 20 ms apart
    /// in RTP time (sent back to back: the switch does not pace).
    pub async fn send_rtp(
        &self,
        dest: SocketAddr,
        ssrc: u32,
        first_seq: u16,
        count: u16,
        hz: f64,
    ) -> Vec<Vec<u8>> {
        let mut sent = Vec::new();
        for i in 0..count {
            let payload = tone_pcmu(hz, 160, u32::from(i) * 160);
            let pkt = rtp_rs::RtpPacketBuilder::new()
                .payload_type(0)
                .ssrc(ssrc)
                .sequence(rtp_rs::Seq::from(first_seq.wrapping_add(i)))
                .timestamp(u32::from(i) * 160)
                .marked(i == 0)
                .payload(&payload)
                .build()
                .expect("RTP packet");
            self.rtp.send_to(&pkt, dest).await.expect("send RTP");
            sent.push(pkt);
        }
        sent
    }

    /// Receive RTP packets until `count` arrived or `wait` passed.
    pub async fn recv_rtp(&self, count: usize, wait: Duration) -> Vec<(Vec<u8>, SocketAddr)> {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 2048];
        let deadline =
            tokio::time::Instant::from_std(freecall::clock::Clock::system().now() + wait);
        while got.len() < count {
            match tokio::time::timeout_at(deadline, self.rtp.recv_from(&mut buf)).await {
                Ok(Ok((n, from))) => got.push((buf[..n].to_vec(), from)),
                _ => break,
            }
        }
        got
    }
}

/// `n` samples of a sine of `hz` at 8 kHz, −10 dBFS, µ-law encoded (ITU-T G.711).
pub fn tone_pcmu(hz: f64, n: usize, start: u32) -> Vec<u8> {
    (0..n)
        .map(|i| {
            let t = f64::from(start + i as u32) / 8000.0;
            let s = (0.316 * 32767.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16;
            audio_codec_algorithms::encode_ulaw(s)
        })
        .collect()
}

/// A trunk that answers every INVITE (200 with its SDP), and every BYE, CANCEL and OPTIONS
/// with 200, until nothing arrives for a minute. The count is of INVITEs answered.
pub fn auto_trunk(trunk: Phone) -> (tokio::task::JoinHandle<()>, std::sync::Arc<AtomicU64>) {
    let invites = std::sync::Arc::new(AtomicU64::new(0));
    let count = invites.clone();
    let task = tokio::spawn(async move {
        loop {
            let Some((m, from)) = trunk.recv(Duration::from_secs(60)).await else {
                return;
            };
            match m.method().map(|x| x.as_str().to_string()).as_deref() {
                Some("INVITE") => {
                    if m.to_tag.is_none() {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    let sdp = trunk.sdp("sendrecv");
                    trunk
                        .send(from, &trunk.response(&m, 200, "OK", "auto", Some(&sdp)))
                        .await;
                }
                Some("BYE") | Some("CANCEL") | Some("OPTIONS") => {
                    trunk
                        .send(from, &trunk.response(&m, 200, "OK", "auto", None))
                        .await;
                }
                _ => {}
            }
        }
    });
    (task, invites)
}
