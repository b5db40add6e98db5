//! A caller speaking SIP over TCP whose connection the network cuts in the middle of an
//! answered call (issue 14): the call goes on, and whoever hangs up later reaches the
//! other side. The caller's connection runs through a small proxy in the test, which cuts
//! it by shutting down both of its sockets, as a network that drops it would; the caller
//! keeps listening for SIP on its Contact's port, as RFC 3261 §18 asks of a UA.
//!
//! The callee cuts short: the switch opens a new connection to the caller's Contact for
//! its BYE (RFC 3261 §18.1.1). The caller hangs up: it opens a new connection for its BYE
//! and the switch answers there. Either way the call ends with its cause and nothing is
//! left behind: the next call over TCP goes through, its BYE on its own open connection.

mod common;

use common::{WAIT, config, start};
use freecall::driver::SwitchHandle;
use freecall::sip::{Message, frame_stream, parse_framed};
use freecall_testkit::{Leg, Phone};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy between the caller and the switch: every connection accepted on `addr` is
/// copied both ways to a connection of its own to the switch. `cut` shuts down both
/// sockets of every connection open at that moment; later connections are carried again.
struct Proxy {
    addr: SocketAddr,
    cuts: Arc<watch::Sender<u32>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(to: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cuts = Arc::new(watch::channel(0u32).0);
        let watched = cuts.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut near, _)) = listener.accept().await {
                let mut cut = watched.subscribe();
                tokio::spawn(async move {
                    let Ok(Ok(mut far)) = tokio::time::timeout(WAIT, TcpStream::connect(to)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut near, &mut far) => {}
                        _ = cut.changed() => {}
                    }
                    for side in [near, far] {
                        if let Ok(s) = side.into_std() {
                            let _ = s.shutdown(std::net::Shutdown::Both);
                        }
                    }
                });
            }
        });
        Proxy { addr, cuts, task }
    }

    /// The network drops every connection through the proxy.
    fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One end of a SIP connection: messages framed by Content-Length.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    fn local(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    async fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).await.unwrap();
    }

    /// The next message, or None when the connection is closed (or reset) or `wait` passes.
    async fn next(&mut self, wait: Duration) -> Option<Message> {
        tokio::time::timeout(wait, self.read_message())
            .await
            .ok()
            .flatten()
    }

    /// The next message, or None at the end of the stream. Cancel-safe: bytes are kept
    /// in `buf` only once read.
    async fn read_message(&mut self) -> Option<Message> {
        let mut chunk = [0u8; 4096];
        loop {
            while let Some((skip, len)) = frame_stream(&self.buf).expect("a SIP stream") {
                let frame: Vec<u8> = self.buf.drain(..skip + len).skip(skip).collect();
                if len > 0 {
                    return Some(parse_framed(&frame).expect("a SIP message"));
                }
            }
            match self.stream.read(&mut chunk).await {
                Ok(n) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// The response with `code`, skipping provisional ones.
    async fn expect_status(&mut self, code: u16) -> Message {
        loop {
            let m = self
                .next(WAIT)
                .await
                .unwrap_or_else(|| panic!("no {code} on the connection"));
            match m.status() {
                Some(c) if c == code => return m,
                Some(c) if c < 200 => continue,
                _ => panic!("expected {code}, got {:?}", m.start),
            }
        }
    }

    /// True once the peer has closed (or reset) the connection; false if it stays open
    /// and silent for `wait`.
    async fn closed(&mut self, wait: Duration) -> bool {
        let mut chunk = [0u8; 64];
        match tokio::time::timeout(wait, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(n)) => panic!("unexpected bytes: {}", String::from_utf8_lossy(&chunk[..n])),
            Err(_) => false,
        }
    }
}

/// The caller: SIP over TCP, with a listener on its Contact's port that stays open for
/// the whole call.
struct Caller {
    listener: TcpListener,
    contact: SocketAddr,
    call_id: String,
    tag: String,
    /// The switch's To (with its tag) and Contact, from its 200.
    remote: String,
    target: String,
    cseq: u32,
}

const SDP: &str = "v=0\r\no=tcp 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

impl Caller {
    async fn new(call_id: &str) -> Caller {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let contact = listener.local_addr().unwrap();
        Caller {
            listener,
            contact,
            call_id: call_id.to_string(),
            tag: format!("{call_id}-tag"),
            remote: String::new(),
            target: String::new(),
            cseq: 1,
        }
    }

    /// A request whose Via names `via` (the connection's own address, as a UA over TCP
    /// writes it), with an SDP body or none.
    fn request(
        &self,
        method: &str,
        uri: &str,
        to: &str,
        cseq: u32,
        via: SocketAddr,
        sdp: Option<&str>,
    ) -> String {
        let branch = format!("z9hG4bK-{}-{method}-{cseq}", self.call_id);
        let mut text = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/TCP {via};branch={branch};rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:0311111111@127.0.0.1>;tag={tag}\r\nTo: {to}\r\n\
Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:caller@{contact};transport=tcp>\r\n",
            tag = self.tag,
            call_id = self.call_id,
            contact = self.contact,
        );
        match sdp {
            Some(b) => text.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )),
            None => text.push_str("Content-Length: 0\r\n\r\n"),
        }
        text
    }

    /// BYE in our dialog, sent on `conn`.
    async fn bye(&mut self, conn: &mut Conn) {
        self.cseq += 1;
        let bye = self.request(
            "BYE",
            &self.target.clone(),
            &self.remote.clone(),
            self.cseq,
            conn.local(),
            None,
        );
        conn.send(&bye).await;
    }

    /// A connection the switch opens to our Contact, and the first message on it.
    async fn accept(&self) -> (Conn, Message) {
        let (stream, from) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .expect("the switch connects to the caller's Contact")
            .unwrap();
        assert_eq!(from.ip(), self.contact.ip(), "only loopback here");
        let mut conn = Conn::new(stream);
        let m = conn
            .next(WAIT)
            .await
            .expect("a request on the new connection");
        (conn, m)
    }

    /// Nobody connects to our Contact within `wait`.
    async fn expect_no_connection(&self, wait: Duration) {
        if let Ok(Ok((_, from))) = tokio::time::timeout(wait, self.listener.accept()).await {
            panic!("unexpected connection to the caller's Contact from {from}");
        }
    }
}

/// 200 to `req` (its Vias, From, To, Call-ID and CSeq).
fn ok_to(req: &Message) -> String {
    let mut text = String::from("SIP/2.0 200 OK\r\n");
    for v in req.headers_named("Via") {
        text.push_str(&format!("Via: {v}\r\n"));
    }
    text.push_str(&format!(
        "From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {}\r\nContent-Length: 0\r\n\r\n",
        req.from, req.to, req.call_id, req.cseq, req.cseq_method
    ));
    text
}

/// A call from a TCP caller (connected to `via`: the proxy or the switch itself) to the
/// trunk, answered and ACKed on both legs. The caller's connection and the trunk's leg.
async fn answered(
    switch: &SwitchHandle,
    via: SocketAddr,
    caller: &mut Caller,
    trunk: &Phone,
    tag: &str,
) -> (Conn, Leg) {
    let stream = tokio::time::timeout(WAIT, TcpStream::connect(via))
        .await
        .unwrap()
        .unwrap();
    let mut conn = Conn::new(stream);
    let uri = format!("sip:0212345678@{};transport=tcp", switch.sip_addr);
    let to = format!("<sip:0212345678@{}>", switch.sip_addr);
    let invite = caller.request("INVITE", &uri, &to, 1, conn.local(), Some(SDP));
    conn.send(&invite).await;
    let (b_invite, from) = trunk.expect_request("INVITE", WAIT).await;
    trunk
        .send(
            from,
            &trunk.response(&b_invite, 200, "OK", tag, Some(&trunk.sdp("sendrecv"))),
        )
        .await;
    let ok = conn.expect_status(200).await;
    assert!(ok.has_sdp(), "the answer carries the switch's SDP");
    caller.remote = ok.to.clone();
    caller.target = ok.contact_uri.clone().expect("the switch's Contact");
    assert!(
        caller.target.to_ascii_lowercase().contains("transport=tcp"),
        "the switch's Contact keeps TCP: {}",
        caller.target
    );
    let ack = caller.request("ACK", &caller.target, &caller.remote, 1, conn.local(), None);
    conn.send(&ack).await;
    trunk.expect_request("ACK", WAIT).await;
    (conn, trunk.leg_from_request(&b_invite, from, tag))
}

/// The outcome of the one call that ended, once it has.
async fn finished(switch: &SwitchHandle) -> freecall::call::Outcome {
    for _ in 0..100 {
        let mut f = switch.finished_calls().await;
        if !f.is_empty() {
            assert_eq!(f.len(), 1, "one call ended: {f:?}");
            return f.remove(0);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no call finished");
}

/// The cut: both of the proxy's sockets shut down. The caller sees its connection close;
/// the moment after, the switch has seen it too (loopback).
async fn cut(proxy: &Proxy, conn: &mut Conn) {
    proxy.cut();
    assert!(conn.closed(WAIT).await, "the cut closes the caller's side");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// After a call ended: no call left in the switch, and a new call from a TCP caller goes
/// through, its BYE delivered on its own connection while that is open (the Contact is
/// only for a connection that is gone).
async fn next_call_works(switch: &SwitchHandle, proxy: &Proxy, trunk: &Phone, call_id: &str) {
    assert_eq!(switch.active_calls().await, 0, "nothing left behind");
    let mut caller = Caller::new(call_id).await;
    let (mut conn, mut b_leg) = answered(switch, proxy.addr, &mut caller, trunk, "next").await;
    trunk
        .send(switch.sip_addr, &trunk.request(&mut b_leg, "BYE", None))
        .await;
    trunk.expect_status(&[200], WAIT).await;
    let bye = conn.next(WAIT).await.expect("BYE on the open connection");
    assert_eq!(bye.method(), Some(&freecall::sip::Method::Bye));
    assert_eq!(bye.call_id, call_id);
    conn.send(&ok_to(&bye)).await;
    caller
        .expect_no_connection(Duration::from_millis(300))
        .await;
    let outcome = finished(switch).await;
    assert_eq!(
        (outcome.code, outcome.cause.as_str()),
        (200, "callee hung up")
    );
    assert_eq!(switch.active_calls().await, 0);
}

/// Cut mid-call, then the callee hangs up: the trunk's BYE is answered at once, and the
/// switch delivers its own BYE to the caller on a new connection to the caller's Contact,
/// which the caller answers there. The call ends "callee hung up", once.
#[tokio::test]
async fn callee_hangs_up_after_the_callers_connection_is_cut() {
    let trunk = Phone::bind("pstn").await;
    let switch = start(&config(&[trunk.addr], "", "", "127.0.0.1")).await;
    let proxy = Proxy::start(switch.sip_addr).await;
    let mut caller = Caller::new("cut-callee-hangs-up").await;
    let (mut conn, mut b_leg) = answered(&switch, proxy.addr, &mut caller, &trunk, "trk1").await;

    cut(&proxy, &mut conn).await;
    drop(conn);
    assert_eq!(
        switch.active_calls().await,
        1,
        "a cut connection is not a hang-up"
    );
    trunk.expect_silence(Duration::from_millis(200)).await;

    let bye = trunk.request(&mut b_leg, "BYE", None);
    trunk.send(switch.sip_addr, &bye).await;
    trunk.expect_status(&[200], WAIT).await;

    let (mut back, a_bye) = caller.accept().await;
    assert_eq!(a_bye.method(), Some(&freecall::sip::Method::Bye));
    assert_eq!(a_bye.call_id, caller.call_id, "in the caller's own dialog");
    assert_eq!(a_bye.to_tag.as_deref(), Some(caller.tag.as_str()));
    assert_eq!(
        a_bye.from, caller.remote,
        "from the switch's side of the dialog"
    );
    assert_eq!(
        a_bye.request_uri(),
        Some(format!("sip:caller@{};transport=tcp", caller.contact).as_str()),
        "addressed to the caller's Contact"
    );
    assert!(
        a_bye.header("Via").unwrap().starts_with("SIP/2.0/TCP "),
        "sent over TCP: {:?}",
        a_bye.header("Via")
    );
    assert!(
        a_bye.header("Reason").unwrap().contains("callee hung up"),
        "{:?}",
        a_bye.header("Reason")
    );
    back.send(&ok_to(&a_bye)).await;
    // Answered: the BYE is not sent again, on this connection or another.
    assert!(
        back.next(Duration::from_millis(300)).await.is_none(),
        "nothing more after the 200"
    );
    caller
        .expect_no_connection(Duration::from_millis(100))
        .await;

    let outcome = finished(&switch).await;
    assert_eq!(outcome.code, 200);
    assert_eq!(outcome.cause, "callee hung up");
    assert!(outcome.talk.is_some(), "the call was answered");
    assert!(switch.finished_calls().await.is_empty(), "one outcome only");

    next_call_works(&switch, &proxy, &trunk, "cut-callee-next").await;
    switch.stop(freecall::driver::Stop::Now);
}

/// Cut mid-call, then the caller hangs up: it connects again (through the same network)
/// and sends its BYE on the new connection; the switch answers 200 there and sends BYE to
/// the trunk. The call ends "caller hung up"; the switch never calls the caller back.
#[tokio::test]
async fn caller_hangs_up_on_a_new_connection_after_the_cut() {
    let trunk = Phone::bind("pstn").await;
    let switch = start(&config(&[trunk.addr], "", "", "127.0.0.1")).await;
    let proxy = Proxy::start(switch.sip_addr).await;
    let mut caller = Caller::new("cut-caller-hangs-up").await;
    let (mut conn, b_leg) = answered(&switch, proxy.addr, &mut caller, &trunk, "trk2").await;

    cut(&proxy, &mut conn).await;
    drop(conn);
    assert_eq!(
        switch.active_calls().await,
        1,
        "a cut connection is not a hang-up"
    );
    trunk.expect_silence(Duration::from_millis(200)).await;

    let stream = tokio::time::timeout(WAIT, TcpStream::connect(proxy.addr))
        .await
        .unwrap()
        .unwrap();
    let mut again = Conn::new(stream);
    caller.bye(&mut again).await;
    let ok = again.expect_status(200).await;
    assert_eq!(ok.call_id, caller.call_id);
    assert_eq!(ok.cseq, 2);
    assert!(
        ok.header("Via")
            .unwrap()
            .contains(&format!("SIP/2.0/TCP {}", again.local())),
        "the 200 answers the BYE on the new connection: {:?}",
        ok.header("Via")
    );

    let (b_bye, from) = trunk.expect_request("BYE", WAIT).await;
    assert_eq!(b_bye.call_id, b_leg.call_id, "in the trunk's dialog");
    assert!(
        b_bye.header("Reason").unwrap().contains("caller hung up"),
        "{:?}",
        b_bye.header("Reason")
    );
    trunk
        .send(from, &trunk.response(&b_bye, 200, "OK", "trk2", None))
        .await;

    let outcome = finished(&switch).await;
    assert_eq!(outcome.code, 200);
    assert_eq!(outcome.cause, "caller hung up");
    assert!(outcome.talk.is_some(), "the call was answered");
    // The call is over: nothing more on the new connection, and no connection to the
    // caller's Contact.
    assert!(
        again.next(Duration::from_millis(200)).await.is_none(),
        "nothing more on the new connection"
    );
    caller
        .expect_no_connection(Duration::from_millis(100))
        .await;
    trunk.expect_silence(Duration::from_millis(100)).await;

    next_call_works(&switch, &proxy, &trunk, "cut-caller-next").await;
    switch.stop(freecall::driver::Stop::Now);
}
