//! Transaction tests: the clock is a plain `Instant` moved forward by hand, so Timer B's
//! 32 seconds pass in microseconds.

use super::*;
use crate::clock::NowForTests;
use crate::sip::parse_datagram;

fn peer() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: "127.0.0.1:5080".parse().unwrap(),
    }
}

fn invite_out(branch: &str) -> OutRequest {
    OutRequest {
        method: Method::Invite,
        uri: "sip:100@127.0.0.1:5080".into(),
        via: format!("SIP/2.0/UDP 127.0.0.1:5060;branch={branch}"),
        branch: branch.into(),
        max_forwards: 70,
        from: "<sip:a@127.0.0.1>;tag=f1".into(),
        to: "<sip:100@127.0.0.1>".into(),
        call_id: "cid1".into(),
        cseq: 1,
        route: vec![],
        contact: Some("<sip:fc@127.0.0.1:5060>".into()),
        extra: vec![],
        content_type: None,
        body: vec![],
    }
}

fn response(code: u16, branch: &str, method: &str, to_tag: &str) -> Message {
    let text = format!(
        "SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n\
From: <sip:a@127.0.0.1>;tag=f1\r\nTo: <sip:100@127.0.0.1>;tag={to_tag}\r\n\
Call-ID: cid1\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    );
    parse_datagram(text.as_bytes()).unwrap()
}

fn request(method: &str, branch: &str, to_tag: Option<&str>) -> Message {
    let to = match to_tag {
        Some(t) => format!("<sip:100@127.0.0.1>;tag={t}"),
        None => "<sip:100@127.0.0.1>".into(),
    };
    let text = format!(
        "{method} sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n\
Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=a1\r\nTo: {to}\r\nCall-ID: in1\r\n\
CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    );
    parse_datagram(text.as_bytes()).unwrap()
}

fn drain(layer: &mut TransactionLayer) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(t) = layer.poll_transmit() {
        out.push(String::from_utf8(t.bytes).unwrap());
    }
    out
}

/// Run timers until `until`, returning the offsets (ms) at which something was sent.
fn run_until(layer: &mut TransactionLayer, t0: Instant, until: Duration) -> Vec<u128> {
    let mut sent = Vec::new();
    while let Some(at) = layer.next_timeout() {
        if at > t0 + until {
            break;
        }
        layer.handle_timeout(at);
        for _ in drain(layer) {
            sent.push((at - t0).as_millis());
        }
    }
    sent
}

#[test]
fn client_invite_retransmits_on_timer_a_and_times_out_on_timer_b() {
    let mut layer = TransactionLayer::new(Timers::default(), 1);
    let t0 = Instant::now_for_tests();
    let tx = layer.send_request(t0, peer(), invite_out("z9hG4bKa"));
    assert_eq!(drain(&mut layer).len(), 1);
    let sent = run_until(&mut layer, t0, Duration::from_secs(40));
    assert_eq!(sent, vec![500, 1500, 3500, 7500, 15500, 31500]);
    let mut events = Vec::new();
    while let Some(e) = layer.poll_event() {
        events.push(e);
    }
    assert!(matches!(events.as_slice(), [TxEvent::Timeout { tx: t }] if *t == tx));
    assert!(layer.is_empty());
}

#[test]
fn a_connection_that_cannot_be_opened_ends_the_requests_waiting_on_it_at_once() {
    let mut layer = TransactionLayer::new(Timers::default(), 1);
    let t0 = Instant::now_for_tests();
    let tls = Peer {
        transport: Transport::Tls,
        addr: "127.0.0.1:5061".parse().unwrap(),
    };
    let other = Peer {
        transport: Transport::Tcp,
        addr: "127.0.0.1:5061".parse().unwrap(),
    };
    let invite = layer.send_request(t0, tls, invite_out("z9hG4bKt1"));
    let mut options = invite_out("z9hG4bKt2");
    options.method = Method::Options;
    let ping = layer.send_request(t0, tls, options);
    let elsewhere = layer.send_request(t0, other, invite_out("z9hG4bKt3"));
    drain(&mut layer);
    layer.transport_failed(tls);
    let mut ended: Vec<TxId> = std::iter::from_fn(|| layer.poll_event())
        .map(|e| match e {
            TxEvent::Timeout { tx } => tx,
            other => panic!("{other:?}"),
        })
        .collect();
    ended.sort_by_key(|t| t.0);
    assert_eq!(ended, vec![invite, ping], "both told at once, nothing else");
    assert_eq!(
        layer.len(),
        1,
        "only the request to the other transport waits"
    );
    assert_eq!(layer.client_peer(elsewhere), Some(other));
    // Told once: a second failure finds nothing left to end.
    layer.transport_failed(tls);
    assert!(layer.poll_event().is_none());
}

#[test]
fn client_invite_acks_a_failure_once_per_retransmission() {
    let mut layer = TransactionLayer::new(Timers::default(), 1);
    let t0 = Instant::now_for_tests();
    let tx = layer.send_request(t0, peer(), invite_out("z9hG4bKb"));
    drain(&mut layer);
    layer.handle_message(t0, peer(), response(486, "z9hG4bKb", "INVITE", "b1"));
    let acks = drain(&mut layer);
    assert_eq!(acks.len(), 1);
    assert!(acks[0].starts_with("ACK sip:100@127.0.0.1:5080 SIP/2.0\r\n"));
    assert!(acks[0].contains("branch=z9hG4bKb"));
    assert!(acks[0].contains("To: <sip:100@127.0.0.1>;tag=b1"));
    assert!(acks[0].contains("CSeq: 1 ACK"));
    // A retransmitted 486 is ACKed again but not reported twice.
    layer.handle_message(t0, peer(), response(486, "z9hG4bKb", "INVITE", "b1"));
    assert_eq!(drain(&mut layer).len(), 1);
    let events: Vec<_> = std::iter::from_fn(|| layer.poll_event()).collect();
    assert_eq!(events.len(), 1);
    assert!(
        matches!(&events[0], TxEvent::Response { tx: t, response } if *t == tx && response.status() == Some(486))
    );
    // Timer D ends it after 32 s, and nothing is sent meanwhile.
    assert!(run_until(&mut layer, t0, Duration::from_secs(33)).is_empty());
    assert!(layer.is_empty());
}

#[test]
fn server_invite_answers_trying_and_absorbs_retransmissions() {
    let mut layer = TransactionLayer::new(Timers::default(), 1);
    let t0 = Instant::now_for_tests();
    layer.handle_message(t0, peer(), request("INVITE", "z9hG4bKc", None));
    let sent = drain(&mut layer);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].starts_with("SIP/2.0 100 Trying"));
    let Some(TxEvent::Request { tx: Some(tx), .. }) = layer.poll_event() else {
        panic!("no request event")
    };
    layer.handle_message(t0, peer(), request("INVITE", "z9hG4bKc", None));
    assert_eq!(drain(&mut layer).len(), 1, "100 resent");
    assert!(layer.poll_event().is_none(), "retransmission not reported");
    let busy = Builder::response(486, "Busy Here").finish(None, &[]);
    layer.send_response(t0, tx, 486, busy);
    assert_eq!(drain(&mut layer).len(), 1);
    // Timer G: 0.5, 1.5, 3.5, then every T2 (4 s) until the ACK.
    let sent = run_until(&mut layer, t0, Duration::from_millis(12_000));
    assert_eq!(sent, vec![500, 1500, 3500, 7500, 11500]);
    layer.handle_message(t0, peer(), request("ACK", "z9hG4bKc", Some("x")));
    assert!(
        layer.poll_event().is_none(),
        "ACK of a failure stays in the transaction"
    );
    assert!(run_until(&mut layer, t0, Duration::from_secs(60)).is_empty());
    assert!(layer.is_empty());
}

#[test]
fn server_invite_resends_2xx_until_acked_and_reports_a_missing_ack() {
    let mut layer = TransactionLayer::new(Timers::default(), 1);
    let t0 = Instant::now_for_tests();
    layer.handle_message(t0, peer(), request("INVITE", "z9hG4bKd", None));
    drain(&mut layer);
    let Some(TxEvent::Request { tx: Some(tx), .. }) = layer.poll_event() else {
        panic!()
    };
    layer.send_response(t0, tx, 200, Builder::response(200, "OK").finish(None, &[]));
    drain(&mut layer);
    let sent = run_until(&mut layer, t0, Duration::from_secs(40));
    assert_eq!(
        sent.len(),
        10,
        "resent at 0.5, 1.5, 3.5 and every 4 s until 32 s"
    );
    assert!(matches!(layer.poll_event(), Some(TxEvent::AckTimeout { tx: t }) if t == tx));

    // With the ACK reported, the resends stop.
    layer.handle_message(t0, peer(), request("INVITE", "z9hG4bKe", None));
    drain(&mut layer);
    let Some(TxEvent::Request { tx: Some(tx), .. }) = layer.poll_event() else {
        panic!()
    };
    layer.send_response(t0, tx, 200, Builder::response(200, "OK").finish(None, &[]));
    drain(&mut layer);
    run_until(&mut layer, t0, Duration::from_millis(600));
    layer.ack_received(tx);
    assert!(run_until(&mut layer, t0, Duration::from_secs(40)).is_empty());
    assert!(layer.poll_event().is_none());
}

#[test]
fn cancel_matches_its_invite_and_unknown_cancel_gets_481() {
    let mut layer = TransactionLayer::new(Timers::default(), 1);
    let t0 = Instant::now_for_tests();
    layer.handle_message(t0, peer(), request("INVITE", "z9hG4bKf", None));
    drain(&mut layer);
    let Some(TxEvent::Request { tx: Some(tx), .. }) = layer.poll_event() else {
        panic!()
    };
    layer.handle_message(t0, peer(), request("CANCEL", "z9hG4bKf", None));
    let sent = drain(&mut layer);
    assert!(sent[0].starts_with("SIP/2.0 200 OK") && sent[0].contains("CSeq: 1 CANCEL"));
    assert!(matches!(layer.poll_event(), Some(TxEvent::Cancelled { invite }) if invite == tx));

    layer.handle_message(t0, peer(), request("CANCEL", "z9hG4bKnothing", None));
    let sent = drain(&mut layer);
    assert!(sent[0].starts_with("SIP/2.0 481"));
    assert!(layer.poll_event().is_none());
}
