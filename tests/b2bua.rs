//! End-to-end calls through the switch over real UDP sockets on 127.0.0.1: a caller phone,
//! the switch, and a trunk, each a real SIP endpoint.

mod common;

use common::{WAIT, config, start};
use freecall_testkit::Phone;
use std::time::Duration;

/// Caller → switch → trunk, answered; returns everything needed to continue the call.
struct Answered {
    caller: Phone,
    trunk: Phone,
    switch: freecall::driver::SwitchHandle,
    a_leg: freecall_testkit::Leg,
    b_leg: freecall_testkit::Leg,
    a_ok: freecall::sip::Message,
    b_invite: freecall::sip::Message,
}

async fn answered_call(sip_extra: &str, media_extra: &str) -> Answered {
    let caller = Phone::bind("alice").await;
    let trunk = Phone::bind("pstn").await;
    let switch = start(&config(&[trunk.addr], sip_extra, media_extra, "127.0.0.1")).await;
    let (invite, mut a_leg) = caller.invite(switch.sip_addr, "0212345678", &caller.sdp("sendrecv"));
    caller.send(switch.sip_addr, &invite).await;
    let (b_invite, from) = trunk.expect_request("INVITE", WAIT).await;
    trunk
        .send(
            from,
            &trunk.response(&b_invite, 180, "Ringing", "trk1", None),
        )
        .await;
    caller.expect_status(&[180], WAIT).await;
    trunk
        .send(
            from,
            &trunk.response(&b_invite, 200, "OK", "trk1", Some(&trunk.sdp("sendrecv"))),
        )
        .await;
    let a_ok = caller.expect_status(&[200], WAIT).await;
    Phone::update_leg(&mut a_leg, &a_ok);
    caller.send(switch.sip_addr, &caller.ack(&a_leg, 1)).await;
    let (ack, _) = trunk.expect_request("ACK", WAIT).await;
    assert_eq!(ack.cseq, 1);
    let b_leg = trunk.leg_from_request(&b_invite, from, "trk1");
    Answered {
        caller,
        trunk,
        switch,
        a_leg,
        b_leg,
        a_ok,
        b_invite,
    }
}

fn sdp_port(msg: &freecall::sip::Message) -> u16 {
    let body = String::from_utf8_lossy(&msg.body);
    let line = body
        .lines()
        .find(|l| l.starts_with("m=audio "))
        .expect("m=audio line");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn basic_call_carries_rtp_both_ways_and_hides_topology() {
    let mut c = answered_call("", "").await;

    // Topology hiding: nothing of the caller's dialog reaches the trunk.
    let raw_b: String = c
        .b_invite
        .headers
        .iter()
        .map(|h| format!("{}: {}\n", h.name, h.value))
        .collect();
    assert_ne!(
        c.b_invite.call_id, c.a_leg.call_id,
        "B-leg has its own Call-ID"
    );
    assert!(
        !raw_b.contains(&c.caller.addr.to_string()),
        "caller address leaked to trunk:\n{raw_b}"
    );
    assert!(
        !raw_b.contains(&c.a_leg.invite_branch),
        "caller's Via leaked"
    );
    assert_eq!(c.b_invite.uri_user.as_deref(), Some("0212345678"));
    // "alice" is not a number, so the trunk gets no calling number it could misuse.
    assert_eq!(c.b_invite.from_user.as_deref(), Some("anonymous"));
    assert_ne!(
        sdp_port(&c.b_invite),
        c.caller.rtp_addr.port(),
        "media anchored at the switch"
    );
    let raw_a: String = c
        .a_ok
        .headers
        .iter()
        .map(|h| format!("{}: {}\n", h.name, h.value))
        .collect();
    assert!(
        !raw_a.contains(&c.trunk.addr.to_string()),
        "trunk address leaked to caller:\n{raw_a}"
    );
    assert_ne!(sdp_port(&c.a_ok), c.trunk.rtp_addr.port());

    // RTP both ways: the bytes that arrive are the bytes that were sent.
    let switch_a = std::net::SocketAddr::from(([127, 0, 0, 1], sdp_port(&c.a_ok)));
    let switch_b = std::net::SocketAddr::from(([127, 0, 0, 1], sdp_port(&c.b_invite)));
    let sent = c.caller.send_rtp(switch_a, 0x1111, 1000, 50, 1000.0).await;
    let got = c.trunk.recv_rtp(50, WAIT).await;
    assert_eq!(got.len(), 50, "caller → trunk packets");
    assert_eq!(got.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(), sent);
    assert!(
        got.iter().all(|(_, from)| *from == switch_b),
        "trunk sees media from the switch's B-side port"
    );
    let sent = c.trunk.send_rtp(switch_b, 0x2222, 7, 50, 1500.0).await;
    let got = c.caller.recv_rtp(50, WAIT).await;
    assert_eq!(got.len(), 50, "trunk → caller packets");
    assert_eq!(got.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(), sent);
    assert!(got.iter().all(|(_, from)| *from == switch_a));

    // Non-RTP junk on the media port is dropped, not relayed.
    c.caller.rtp.send_to(b"not rtp", switch_a).await.unwrap();
    assert!(
        c.trunk
            .recv_rtp(1, Duration::from_millis(300))
            .await
            .is_empty()
    );

    // The caller hangs up.
    let bye = c.caller.request(&mut c.a_leg, "BYE", None);
    c.caller.send(c.switch.sip_addr, &bye).await;
    c.caller.expect_status(&[200], WAIT).await;
    let (b_bye, from) = c.trunk.expect_request("BYE", WAIT).await;
    assert_eq!(b_bye.call_id, c.b_invite.call_id);
    c.trunk
        .send(from, &c.trunk.response(&b_bye, 200, "OK", "trk1", None))
        .await;
    let outcomes = wait_finished(&c.switch).await;
    assert_eq!(outcomes[0].code, 200);
    assert_eq!(outcomes[0].cause, "caller hung up");
    assert!(outcomes[0].talk.is_some());
}

async fn wait_finished(switch: &freecall::driver::SwitchHandle) -> Vec<freecall::call::Outcome> {
    for _ in 0..50 {
        let f = switch.finished_calls().await;
        if !f.is_empty() {
            assert_eq!(switch.active_calls().await, 0);
            return f;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no call finished");
}

#[tokio::test]
async fn callee_hangs_up() {
    let mut c = answered_call("", "").await;
    let bye = c.trunk.request(&mut c.b_leg, "BYE", None);
    c.trunk.send(c.switch.sip_addr, &bye).await;
    c.trunk.expect_status(&[200], WAIT).await;
    let (a_bye, from) = c.caller.expect_request("BYE", WAIT).await;
    assert_eq!(
        a_bye.call_id, c.a_leg.call_id,
        "BYE arrives in the caller's own dialog"
    );
    assert_eq!(a_bye.to_tag.as_deref(), c.a_leg.local.split("tag=").nth(1));
    c.caller
        .send(from, &c.caller.response(&a_bye, 200, "OK", "x", None))
        .await;
    let outcomes = wait_finished(&c.switch).await;
    assert_eq!(outcomes[0].cause, "callee hung up");
}

#[tokio::test]
async fn cancel_before_answer() {
    let caller = Phone::bind("alice").await;
    let trunk = Phone::bind("pstn").await;
    let switch = start(&config(&[trunk.addr], "", "", "127.0.0.1")).await;
    let (invite, _) = caller.invite(switch.sip_addr, "0212345678", &caller.sdp("sendrecv"));
    caller.send(switch.sip_addr, &invite).await;
    let (b_invite, from) = trunk.expect_request("INVITE", WAIT).await;
    trunk
        .send(from, &trunk.response(&b_invite, 180, "Ringing", "t9", None))
        .await;
    caller.expect_status(&[180], WAIT).await;
    // CANCEL: same branch, Call-ID, From, To, CSeq number as the INVITE.
    let text = String::from_utf8(invite).unwrap();
    let head = text.split("\r\n\r\n").next().unwrap();
    let cancel: String = head
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
        .lines()
        .filter(|l| !l.starts_with("Content-") && !l.starts_with("Contact"))
        .map(|l| format!("{l}\r\n"))
        .collect::<String>()
        + "Content-Length: 0\r\n\r\n";
    caller.send(switch.sip_addr, cancel.as_bytes()).await;
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(caller.expect_status(&[200, 487], WAIT).await);
    }
    assert!(
        got.iter()
            .any(|m| m.status() == Some(200) && m.cseq_method.as_str() == "CANCEL")
    );
    assert!(
        got.iter()
            .any(|m| m.status() == Some(487) && m.cseq_method.as_str() == "INVITE")
    );
    let (b_cancel, from) = trunk.expect_request("CANCEL", WAIT).await;
    assert_eq!(
        b_cancel.branch, b_invite.branch,
        "CANCEL matches the B-leg INVITE"
    );
    trunk
        .send(from, &trunk.response(&b_cancel, 200, "OK", "t9", None))
        .await;
    trunk
        .send(
            from,
            &trunk.response(&b_invite, 487, "Request Terminated", "t9", None),
        )
        .await;
    let (ack, _) = trunk.expect_request("ACK", WAIT).await;
    assert_eq!(ack.branch, b_invite.branch, "487 ACKed in the transaction");
    let outcomes = wait_finished(&switch).await;
    assert_eq!(outcomes[0].code, 487);
}

#[tokio::test]
async fn busy_is_relayed_without_failover() {
    let caller = Phone::bind("alice").await;
    let first = Phone::bind("first").await;
    let second = Phone::bind("second").await;
    let switch = start(&config(&[first.addr, second.addr], "", "", "127.0.0.1")).await;
    let (invite, _) = caller.invite(switch.sip_addr, "0101234567", &caller.sdp("sendrecv"));
    caller.send(switch.sip_addr, &invite).await;
    let (b_invite, from) = first.expect_request("INVITE", WAIT).await;
    first
        .send(
            from,
            &first.response(&b_invite, 486, "Busy Here", "f1", None),
        )
        .await;
    let busy = caller.expect_status(&[486], WAIT).await;
    assert!(
        busy.header("Reason").unwrap().contains("cause=486"),
        "Reason says why"
    );
    second.expect_silence(Duration::from_millis(400)).await;
}

#[tokio::test]
async fn fails_over_to_the_next_trunk_after_503() {
    let caller = Phone::bind("alice").await;
    let first = Phone::bind("first").await;
    let second = Phone::bind("second").await;
    let switch = start(&config(&[first.addr, second.addr], "", "", "127.0.0.1")).await;
    let (invite, mut a_leg) = caller.invite(switch.sip_addr, "0101234567", &caller.sdp("sendrecv"));
    caller.send(switch.sip_addr, &invite).await;
    let (b1, from1) = first.expect_request("INVITE", WAIT).await;
    first
        .send(
            from1,
            &first.response(&b1, 503, "Service Unavailable", "f1", None),
        )
        .await;
    let (b2, from2) = second.expect_request("INVITE", WAIT).await;
    assert_ne!(b2.call_id, b1.call_id, "each attempt is its own dialog");
    assert_eq!(b2.uri_user.as_deref(), Some("0101234567"));
    second
        .send(
            from2,
            &second.response(&b2, 200, "OK", "s1", Some(&second.sdp("sendrecv"))),
        )
        .await;
    let ok = caller.expect_status(&[200], WAIT).await;
    Phone::update_leg(&mut a_leg, &ok);
    caller.send(switch.sip_addr, &caller.ack(&a_leg, 1)).await;
    second.expect_request("ACK", WAIT).await;
    let (ack1, _) = first.expect_request("ACK", WAIT).await;
    assert_eq!(ack1.branch, b1.branch, "the 503 was ACKed");
}

#[tokio::test]
async fn all_trunks_failing_gives_the_caller_the_last_error() {
    let caller = Phone::bind("alice").await;
    let first = Phone::bind("first").await;
    let switch = start(&config(&[first.addr], "", "", "127.0.0.1")).await;
    let (invite, _) = caller.invite(switch.sip_addr, "0101234567", &caller.sdp("sendrecv"));
    caller.send(switch.sip_addr, &invite).await;
    let (b1, from1) = first.expect_request("INVITE", WAIT).await;
    first
        .send(
            from1,
            &first.response(&b1, 503, "Service Unavailable", "f1", None),
        )
        .await;
    let err = caller.expect_status(&[503], WAIT).await;
    assert!(
        err.header("Reason")
            .unwrap()
            .contains("Service Unavailable")
    );
}

#[tokio::test]
async fn reinvite_puts_the_call_on_hold_and_back() {
    let mut c = answered_call("", "").await;
    for (direction, answer) in [("sendonly", "recvonly"), ("sendrecv", "sendrecv")] {
        let sdp = c
            .caller
            .sdp(direction)
            .replace("o=alice 1 1", "o=alice 1 2");
        let reinvite = c
            .caller
            .request(&mut c.a_leg, "INVITE", Some(("application/sdp", &sdp)));
        let cseq = c.a_leg.cseq;
        c.caller.send(c.switch.sip_addr, &reinvite).await;
        let (b_re, from) = c.trunk.expect_request("INVITE", WAIT).await;
        assert_eq!(
            b_re.call_id, c.b_invite.call_id,
            "re-INVITE in the B-leg dialog"
        );
        let body = String::from_utf8_lossy(&b_re.body).to_string();
        assert!(
            body.contains(&format!("a={direction}")),
            "direction relayed: {body}"
        );
        c.trunk
            .send(
                from,
                &c.trunk
                    .response(&b_re, 200, "OK", "trk1", Some(&c.trunk.sdp(answer))),
            )
            .await;
        let ok = c.caller.expect_status(&[200], WAIT).await;
        assert!(String::from_utf8_lossy(&ok.body).contains(&format!("a={answer}")));
        c.caller
            .send(c.switch.sip_addr, &c.caller.ack(&c.a_leg, cseq))
            .await;
        let (ack, _) = c.trunk.expect_request("ACK", WAIT).await;
        assert_eq!(ack.cseq, b_re.cseq, "ACK passed on with the B-leg's CSeq");
    }
    // Media still flows after unhold.
    let switch_a = std::net::SocketAddr::from(([127, 0, 0, 1], sdp_port(&c.a_ok)));
    c.caller.send_rtp(switch_a, 9, 1, 10, 1000.0).await;
    assert_eq!(c.trunk.recv_rtp(10, WAIT).await.len(), 10);
}

#[tokio::test]
async fn retransmissions_recover_lost_invite_and_lost_200() {
    let caller = Phone::bind("alice").await;
    let trunk = Phone::bind("pstn").await;
    let switch = start(&config(&[trunk.addr], "", "", "127.0.0.1")).await;
    let (invite, mut a_leg) = caller.invite(switch.sip_addr, "0212345678", &caller.sdp("sendrecv"));
    caller.send(switch.sip_addr, &invite).await;
    // The trunk "loses" the first INVITE: it waits for the retransmission (T1 = 100 ms).
    let (first, _) = trunk.expect_request("INVITE", WAIT).await;
    let (again, from) = trunk
        .expect_request("INVITE", Duration::from_millis(500))
        .await;
    assert_eq!(
        first.branch, again.branch,
        "a retransmission, not a new INVITE"
    );
    trunk
        .send(
            from,
            &trunk.response(&again, 200, "OK", "t1", Some(&trunk.sdp("sendrecv"))),
        )
        .await;
    // The caller "loses" the first 200: the switch resends it until the ACK.
    let ok1 = caller.expect_status(&[200], WAIT).await;
    let ok2 = caller
        .expect_status(&[200], Duration::from_millis(500))
        .await;
    assert_eq!(ok1.to_tag, ok2.to_tag);
    Phone::update_leg(&mut a_leg, &ok2);
    caller.send(switch.sip_addr, &caller.ack(&a_leg, 1)).await;
    trunk.expect_request("ACK", WAIT).await;
    // After the ACK, no more 200s.
    tokio::time::sleep(Duration::from_millis(150)).await;
    while let Some((m, _)) = caller.recv(Duration::from_millis(1)).await {
        let _ = m;
    }
    caller.expect_silence(Duration::from_millis(500)).await;
    assert_eq!(switch.active_calls().await, 1);
}

#[tokio::test]
async fn calls_from_unknown_addresses_are_refused() {
    let caller = Phone::bind("mallory").await;
    let trunk = Phone::bind("pstn").await;
    let switch = start(&config(&[trunk.addr], "", "", "127.0.0.9")).await;
    let (invite, _) = caller.invite(switch.sip_addr, "00442071234567", &caller.sdp("sendrecv"));
    caller.send(switch.sip_addr, &invite).await;
    let refused = caller.expect_status(&[403], WAIT).await;
    assert!(
        refused
            .header("Reason")
            .unwrap()
            .contains("source address not allowed")
    );
    trunk.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn malformed_requests_get_400_with_a_reason_and_the_switch_lives_on() {
    let caller = Phone::bind("alice").await;
    let trunk = Phone::bind("pstn").await;
    let switch = start(&config(&[trunk.addr], "", "", "127.0.0.1")).await;
    let (invite, _) = caller.invite(switch.sip_addr, "0212345678", &caller.sdp("sendrecv"));
    let text = String::from_utf8(invite).unwrap();
    for (bad, why) in [
        (text.replace("CSeq: 1 INVITE", "CSeq: 1 BYE"), "CSeq method"),
        (
            text.replace("Content-Length: ", "Content-Length: 9"),
            "Content-Length",
        ),
        (
            text.replace("From: \"alice\"", "From: \"alice"),
            "unbalanced",
        ),
    ] {
        caller.send(switch.sip_addr, bad.as_bytes()).await;
        // The 400 echoes the request's (possibly broken) headers, so read it raw.
        let raw = caller.recv_raw(WAIT).await.expect("a reply");
        assert!(raw.starts_with("SIP/2.0 400 Bad Request\r\n"), "{raw}");
        let reason = raw
            .lines()
            .find(|l| l.starts_with("Reason:"))
            .expect("Reason header");
        assert!(reason.contains(why), "{reason} should mention {why}");
    }
    // Garbage and a malformed response are dropped silently.
    caller.send(switch.sip_addr, b"\x00\x01garbage").await;
    caller
        .send(switch.sip_addr, b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n")
        .await;
    caller.expect_silence(Duration::from_millis(300)).await;
    // And the switch still takes calls.
    let (invite, _) = caller.invite(switch.sip_addr, "0212345678", &caller.sdp("sendrecv"));
    caller.send(switch.sip_addr, &invite).await;
    trunk.expect_request("INVITE", WAIT).await;
}

#[tokio::test]
async fn options_unknown_methods_and_hop_limits() {
    let caller = Phone::bind("alice").await;
    let trunk = Phone::bind("pstn").await;
    let switch = start(&config(&[trunk.addr], "", "", "127.0.0.1")).await;
    let (invite, _) = caller.invite(switch.sip_addr, "0212345678", "");
    let text = String::from_utf8(invite)
        .unwrap()
        .replace("Content-Type: application/sdp\r\n", "");
    let options = text
        .replace("INVITE sip:", "OPTIONS sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 OPTIONS");
    caller.send(switch.sip_addr, options.as_bytes()).await;
    let ok = caller.expect_status(&[200], WAIT).await;
    assert!(ok.header("Allow").unwrap().contains("INVITE"));
    let frob = text
        .replace("INVITE sip:", "FROB sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 FROB")
        .replace("branch=", "branch=x");
    caller.send(switch.sip_addr, frob.as_bytes()).await;
    caller.expect_status(&[501], WAIT).await;
    let register = text
        .replace("INVITE sip:", "REGISTER sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 REGISTER")
        .replace("branch=", "branch=y");
    caller.send(switch.sip_addr, register.as_bytes()).await;
    let r = caller.expect_status(&[405], WAIT).await;
    assert!(r.header("Allow").is_some());
    let (invite, _) = caller.invite(switch.sip_addr, "0212345678", &caller.sdp("sendrecv"));
    let hops = String::from_utf8(invite)
        .unwrap()
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    caller.send(switch.sip_addr, hops.as_bytes()).await;
    caller.expect_status(&[483], WAIT).await;
    trunk.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn call_limit_answers_503() {
    let caller = Phone::bind("alice").await;
    let trunk = Phone::bind("pstn").await;
    let switch = start(&config(&[trunk.addr], "max_calls = 1", "", "127.0.0.1")).await;
    let (invite, _) = caller.invite(switch.sip_addr, "0212345678", &caller.sdp("sendrecv"));
    caller.send(switch.sip_addr, &invite).await;
    trunk.expect_request("INVITE", WAIT).await;
    let (invite, _) = caller.invite(switch.sip_addr, "0212345679", &caller.sdp("sendrecv"));
    caller.send(switch.sip_addr, &invite).await;
    let r = caller.expect_status(&[503], WAIT).await;
    assert!(r.header("Retry-After").is_some());
    assert!(r.header("Reason").unwrap().contains("call limit"));
}

#[tokio::test]
async fn silent_media_hangs_up_both_legs() {
    let c = answered_call("", "rtp_timeout_secs = 1").await;
    let (a_bye, _) = c.caller.expect_request("BYE", Duration::from_secs(4)).await;
    let (b_bye, _) = c.trunk.expect_request("BYE", Duration::from_secs(1)).await;
    assert!(a_bye.header("Reason").unwrap().contains("media timeout"));
    assert!(b_bye.header("Reason").unwrap().contains("media timeout"));
    let outcomes = wait_finished(&c.switch).await;
    assert_eq!(outcomes[0].cause, "media timeout");
}

/// A caller on TCP: requests and responses on one connection, framed by Content-Length.
#[tokio::test]
async fn caller_over_tcp() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let trunk = Phone::bind("pstn").await;
    let switch = start(&config(&[trunk.addr], "", "", "127.0.0.1")).await;
    let mut stream = tokio::net::TcpStream::connect(switch.sip_addr)
        .await
        .unwrap();
    let me = stream.local_addr().unwrap();
    let sdp = "v=0\r\no=tcp 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
    let head = |method: &str, cseq: u32, to: &str, branch: &str| {
        format!(
            "{method} sip:0212345678@{sw};transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch={branch}\r\n\
Max-Forwards: 70\r\nFrom: <sip:0311111111@127.0.0.1>;tag=tcp1\r\nTo: {to}\r\nCall-ID: tcp-call-1\r\n\
CSeq: {cseq} {method}\r\nContact: <sip:tcp@{me};transport=tcp>\r\n",
            sw = switch.sip_addr
        )
    };
    let to = format!("<sip:0212345678@{}>", switch.sip_addr);
    let invite = format!(
        "{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        head("INVITE", 1, &to, "z9hG4bKtcp1"),
        sdp.len()
    );
    // Written in two pieces: the switch must reassemble the frame.
    let (a, b) = invite.as_bytes().split_at(100);
    stream.write_all(a).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream.write_all(b).await.unwrap();
    let (b_invite, from) = trunk.expect_request("INVITE", WAIT).await;
    assert_eq!(
        b_invite.from_user.as_deref(),
        Some("0311111111"),
        "calling number passed on"
    );
    trunk
        .send(
            from,
            &trunk.response(&b_invite, 200, "OK", "t1", Some(&trunk.sdp("sendrecv"))),
        )
        .await;

    let mut buf = Vec::new();
    let mut read_status = async |want: u16| -> freecall::sip::Message {
        let mut chunk = [0u8; 4096];
        loop {
            while let Some((skip, len)) = freecall::sip::frame_stream(&buf).unwrap() {
                let frame: Vec<u8> = buf.drain(..skip + len).skip(skip).collect();
                if len == 0 {
                    continue;
                }
                let m = freecall::sip::parse_framed(&frame).unwrap();
                if m.status() == Some(want) {
                    return m;
                }
            }
            let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "connection closed");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    let ok = read_status(200).await;
    let to = ok.to.clone();
    let ack = format!(
        "{}Content-Length: 0\r\n\r\n",
        head("ACK", 1, &to, "z9hG4bKtcp2")
    );
    stream.write_all(ack.as_bytes()).await.unwrap();
    trunk.expect_request("ACK", WAIT).await;
    let bye = format!(
        "{}Content-Length: 0\r\n\r\n",
        head("BYE", 2, &to, "z9hG4bKtcp3")
    );
    stream.write_all(bye.as_bytes()).await.unwrap();
    let (b_bye, from) = trunk.expect_request("BYE", WAIT).await;
    trunk
        .send(from, &trunk.response(&b_bye, 200, "OK", "t1", None))
        .await;
    let mut chunk = [0u8; 4096];
    let mut got = String::new();
    while !got.contains("CSeq: 2 BYE") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    assert!(got.contains("SIP/2.0 200 OK"), "{got}");
}

#[tokio::test]
async fn early_media_and_in_dialog_info_are_relayed() {
    let caller = Phone::bind("alice").await;
    let trunk = Phone::bind("pstn").await;
    let switch = start(&config(&[trunk.addr], "", "", "127.0.0.1")).await;
    let (invite, mut a_leg) = caller.invite(switch.sip_addr, "0212345678", &caller.sdp("sendrecv"));
    caller.send(switch.sip_addr, &invite).await;
    let (b_invite, from) = trunk.expect_request("INVITE", WAIT).await;
    // 183 with SDP: early media (ringback, announcements) must reach the caller.
    trunk
        .send(
            from,
            &trunk.response(
                &b_invite,
                183,
                "Session Progress",
                "e1",
                Some(&trunk.sdp("sendrecv")),
            ),
        )
        .await;
    let progress = caller.expect_status(&[183], WAIT).await;
    let early_port = sdp_port(&progress);
    assert_ne!(
        early_port,
        trunk.rtp_addr.port(),
        "early media anchored too"
    );
    let switch_b = std::net::SocketAddr::from(([127, 0, 0, 1], sdp_port(&b_invite)));
    let sent = trunk.send_rtp(switch_b, 0x3333, 1, 5, 425.0).await;
    let got = caller.recv_rtp(5, WAIT).await;
    assert_eq!(
        got.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
        sent,
        "ringback heard before answer"
    );

    trunk
        .send(
            from,
            &trunk.response(&b_invite, 200, "OK", "e1", Some(&trunk.sdp("sendrecv"))),
        )
        .await;
    let ok = caller.expect_status(&[200], WAIT).await;
    Phone::update_leg(&mut a_leg, &ok);
    caller.send(switch.sip_addr, &caller.ack(&a_leg, 1)).await;
    trunk.expect_request("ACK", WAIT).await;

    // INFO (e.g. SIP INFO DTMF) passes through with its body; the answer comes back.
    let info = caller.request(
        &mut a_leg,
        "INFO",
        Some(("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n")),
    );
    caller.send(switch.sip_addr, &info).await;
    let (b_info, from) = trunk.expect_request("INFO", WAIT).await;
    assert_eq!(b_info.content_type(), Some("application/dtmf-relay"));
    assert_eq!(b_info.body, b"Signal=5\r\nDuration=160\r\n");
    assert_eq!(b_info.call_id, b_invite.call_id);
    trunk
        .send(from, &trunk.response(&b_info, 200, "OK", "e1", None))
        .await;
    let r = caller.expect_status(&[200], WAIT).await;
    assert_eq!(r.cseq_method.as_str(), "INFO");

    // A transfer attempt is refused: it would let a party make the switch dial anywhere.
    let refer = caller.request(&mut a_leg, "REFER", None);
    caller.send(switch.sip_addr, &refer).await;
    caller.expect_status(&[403], WAIT).await;
}

#[tokio::test]
async fn media_latches_onto_the_real_source_and_carries_rtcp() {
    let c = answered_call("", "").await;
    let switch_a = std::net::SocketAddr::from(([127, 0, 0, 1], sdp_port(&c.a_ok)));
    let switch_b = std::net::SocketAddr::from(([127, 0, 0, 1], sdp_port(&c.b_invite)));
    // The caller is behind NAT: its packets come from another port than its SDP says.
    let nat = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let pkt = rtp_rs::RtpPacketBuilder::new()
        .payload_type(0)
        .ssrc(77)
        .sequence(rtp_rs::Seq::from(1))
        .timestamp(0)
        .payload(&freecall_testkit::tone_pcmu(1000.0, 160, 0))
        .build()
        .unwrap();
    nat.send_to(&pkt, switch_a).await.unwrap();
    assert_eq!(c.trunk.recv_rtp(1, WAIT).await.len(), 1);
    let sent = c.trunk.send_rtp(switch_b, 5, 1, 3, 1500.0).await;
    let mut buf = [0u8; 2048];
    for expected in &sent {
        let (n, from) = tokio::time::timeout(WAIT, nat.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            &buf[..n],
            expected.as_slice(),
            "media goes where the caller's packets come from"
        );
        assert_eq!(from, switch_a);
    }
    assert!(
        c.caller
            .recv_rtp(1, Duration::from_millis(200))
            .await
            .is_empty(),
        "not to the SDP address any more"
    );

    // RTCP (a sender report) on RTP port + 1 reaches the trunk's RTCP port (its RTP port + 1).
    let mut sr = vec![0x80u8, 200, 0, 6];
    sr.extend_from_slice(&[0u8; 24]);
    nat.send_to(
        &sr,
        std::net::SocketAddr::from(([127, 0, 0, 1], switch_a.port() + 1)),
    )
    .await
    .unwrap();
    let (n, from) = tokio::time::timeout(WAIT, c.trunk.rtcp.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], sr.as_slice());
    assert_eq!(
        from.port(),
        switch_b.port() + 1,
        "RTCP leaves from the switch's RTCP port"
    );
}
