//! The flood gate: one address may start `limits.requests_per_address` new requests a
//! second (a burst of twice that); past it they are dropped unanswered and counted, while
//! trusted peers, retransmissions and other addresses go on as before. Overload: new work
//! that waited too long in the socket's queue is refused at once.

use super::*;

fn options(from: &str, n: usize) -> freecall::sip::Message {
    parse_datagram(
        format!(
            "OPTIONS sip:{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKscan{n}\r\nMax-Forwards: 70\r\n\
From: <sip:scan@{from}>;tag=s{n}\r\nTo: <sip:probe@{SWITCH}>\r\nCall-ID: scan-{n}@{from}\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap()
}

fn peer(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse().unwrap(),
    }
}

/// Answers `m` sent to `to`.
fn answered(m: &mut Manager, to: &str) -> usize {
    let to: SocketAddr = to.parse().unwrap();
    drain(m)
        .iter()
        .filter(|(t, s)| t.dest == to && s.starts_with("SIP/2.0 "))
        .count()
}

#[test]
fn a_scanner_is_answered_up_to_its_allowance_and_then_dropped_while_a_peer_is_not() {
    let mut m = manager();
    assert_eq!(m.limits().requests_per_address, 30);
    let t0 = Instant::now_for_tests();
    let scanner = "198.51.100.9:5060";
    for n in 0..200 {
        m.handle_message(t0, peer(scanner), options(scanner, n));
    }
    assert_eq!(answered(&mut m, scanner), 60, "the burst: twice the rate");
    let refused = m.take_limit_refusals();
    assert_eq!(refused.len(), 140);
    assert!(refused.iter().all(|l| *l == "requests_per_address"));

    // A retransmission of a request it was answered is answered again, not counted.
    m.handle_message(t0, peer(scanner), options(scanner, 0));
    assert_eq!(answered(&mut m, scanner), 1);
    assert!(m.take_limit_refusals().is_empty());

    // The trusted peer (127.0.0.0/8) and another address are not held back.
    let pbx = "127.0.0.1:5090";
    for n in 0..200 {
        m.handle_message(t0, peer(pbx), options(pbx, 1000 + n));
    }
    assert_eq!(answered(&mut m, pbx), 200);
    let phone = "203.0.113.5:5060";
    m.handle_message(t0, peer(phone), options(phone, 5000));
    assert_eq!(answered(&mut m, phone), 1);

    // A second later the scanner has a second's allowance again, and no more.
    let t1 = t0 + Duration::from_secs(1);
    for n in 200..300 {
        m.handle_message(t1, peer(scanner), options(scanner, n));
    }
    assert_eq!(answered(&mut m, scanner), 30);
    assert_eq!(m.take_limit_refusals().len(), 70);
}

/// Overloaded: a new call that waited in the socket's queue past `limits.overload_queue_ms`
/// gets 503 with Retry-After at once, without any state kept, while what belongs to a call
/// in progress — its ACK, its BYE — waits as long and still goes through.
#[test]
fn a_new_call_that_waited_too_long_is_refused_at_once_while_calls_in_progress_go_on() {
    let mut m = manager();
    assert_eq!(m.limits().overload_queue_ms, 200);
    let t0 = Instant::now_for_tests();
    let late = Duration::from_millis(250);
    // A call in progress (answered by t0, the caller's ACK still to come).
    let (answered, _, _) = answered_at(&mut m, t0, &invite("z9hG4bKbusy"));
    assert_eq!(m.active_calls(), 1);

    // A new call that sat in the queue for 250 ms: refused, nothing kept.
    m.handle_waited(
        t0,
        caller(),
        parse_datagram(invite("z9hG4bKlate").as_bytes()).unwrap(),
        late,
    );
    let out = drain(&mut m);
    let refusal = out
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.starts_with("SIP/2.0 "))
        .expect("an answer");
    assert!(refusal.starts_with("SIP/2.0 503"), "{refusal}");
    assert!(refusal.contains("Retry-After: 2"), "{refusal}");
    assert!(refusal.contains("overloaded"), "{refusal}");
    assert!(
        !out.iter().any(|(_, s)| s.starts_with("INVITE ")),
        "no trunk dialled"
    );
    assert_eq!(m.active_calls(), 1);
    assert_eq!(m.take_limit_refusals(), ["overload"]);

    // The call in progress: its ACK and BYE, just as late, are handled.
    let ack = format!(
        "ACK sip:freecall@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKack\r\nMax-Forwards: 70\r\n\
From: <sip:0311111111@127.0.0.1>;tag=a1\r\nTo: {}\r\nCall-ID: z9hG4bKbusy@caller\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        answered.to
    );
    m.handle_waited(t0, caller(), parse_datagram(ack.as_bytes()).unwrap(), late);
    let bye = format!(
        "BYE sip:freecall@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKbye2\r\nMax-Forwards: 70\r\n\
From: <sip:0311111111@127.0.0.1>;tag=a1\r\nTo: {}\r\nCall-ID: z9hG4bKbusy@caller\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        answered.to
    );
    m.handle_waited(t0, caller(), parse_datagram(bye.as_bytes()).unwrap(), late);
    let out = drain(&mut m);
    assert!(
        out.iter().any(|(t, s)| t.dest == caller().addr
            && s.starts_with("SIP/2.0 200")
            && s.contains("CSeq: 2 BYE")),
        "the BYE is answered"
    );
    assert_eq!(m.active_calls(), 0);
    assert!(m.take_limit_refusals().is_empty());

    // Caught up: the next new call, read at once, goes ahead.
    m.handle_waited(
        t0,
        caller(),
        parse_datagram(invite("z9hG4bKnext").as_bytes()).unwrap(),
        Duration::from_millis(5),
    );
    assert!(drain(&mut m).iter().any(|(_, s)| s.starts_with("INVITE ")));
}

/// Overloaded, a load balancer's probe is still answered as the node's state says (200
/// while it takes calls): one late probe must not take a busy node out of the rotation.
#[test]
fn a_dispatchers_late_probe_is_answered_not_shed() {
    let cfg = Config::from_toml(&format!(
        "[sip]\nlisten = \"{SWITCH}\"\n[media]\naddress = \"127.0.0.1\"\nport_min = 20000\nport_max = 30000\n\
[[peers]]\nname = \"lb\"\naddress = \"192.0.2.5\"\nbilling = \"dispatcher\"\n"
    ))
    .unwrap();
    let mut m = Manager::new(
        manager_settings(None),
        Routing::from_config(&cfg),
        Box::new(NullMedia::new()),
    );
    let t0 = Instant::now_for_tests();
    let late = Duration::from_millis(400);
    let lb = "192.0.2.5:5060";
    m.handle_waited(t0, peer(lb), options(lb, 1), late);
    assert!(
        drain(&mut m)
            .iter()
            .any(|(_, s)| s.starts_with("SIP/2.0 200")),
        "the probe is answered 200"
    );
    // Anyone else's late OPTIONS is new work, refused while overloaded.
    let other = "198.51.100.20:5060";
    m.handle_waited(t0, peer(other), options(other, 2), late);
    assert!(
        drain(&mut m)
            .iter()
            .any(|(_, s)| s.starts_with("SIP/2.0 503") && s.contains("overloaded"))
    );
}

/// Overloaded database: while `limits.max_pending_authorizations` calls wait for their
/// money to be reserved, a new call gets 503 with Retry-After at once (nothing reserved,
/// no trunk dialled); the calls already waiting go on as the database answers, and once
/// one has its answer a new call is taken again.
#[test]
fn a_new_call_while_the_database_is_behind_is_refused_at_once() {
    let cfg = Config::from_toml(&format!(
        "[sip]\nlisten = \"{SWITCH}\"\n[media]\naddress = \"127.0.0.1\"\nport_min = 20000\nport_max = 30000\n\
[[peers]]\nname = \"shop\"\naddress = \"127.0.0.0/8\"\nbilling = \"header\"\n\
[[trunks]]\nname = \"t0\"\naddress = \"{T0}\"\n[[routes]]\nprefix = \"\"\ntrunks = [\"t0\"]\n"
    ))
    .unwrap();
    let mut settings = manager_settings(None);
    settings.limits.max_pending_authorizations = 3;
    let mut m = Manager::new(
        settings,
        Routing::from_config(&cfg),
        Box::new(NullMedia::new()),
    );
    let t0 = Instant::now_for_tests();
    let paid = |branch: &str| {
        let plain = invite(branch);
        let text = plain.replacen(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nX-Freecall-Charge: account=7\r\n",
            1,
        );
        parse_datagram(text.as_bytes()).unwrap()
    };
    // Three calls wait for the database: each asks it to reserve, none is refused.
    for n in 0..3 {
        m.handle_message(t0, caller(), paid(&format!("z9hG4bKpaid{n}")));
    }
    let asked: Vec<_> = std::iter::from_fn(|| m.poll_billing()).collect();
    assert_eq!(asked.len(), 3, "three reservations asked for");
    assert_eq!(m.pending_authorizations(), 3);
    assert!(
        drain(&mut m)
            .iter()
            .all(|(_, s)| !s.starts_with("SIP/2.0 503"))
    );

    // The fourth is refused at once: 503, Retry-After, the reason; nothing asked, no call.
    m.handle_message(t0, caller(), paid("z9hG4bKpaid3"));
    let out = drain(&mut m);
    let refusal = out
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.starts_with("SIP/2.0 ") && s.contains("z9hG4bKpaid3"))
        .expect("an answer to the fourth call");
    assert!(refusal.starts_with("SIP/2.0 503"), "{refusal}");
    assert!(refusal.contains("Retry-After: 2"), "{refusal}");
    assert!(refusal.contains("overloaded"), "{refusal}");
    assert!(m.poll_billing().is_none(), "nothing asked of the database");
    assert_eq!(m.active_calls(), 3);
    assert_eq!(m.take_limit_refusals(), ["overload"]);

    // The database answers the first: its call is refused there (no money), and a
    // new call is taken again.
    let key = match &asked[0] {
        freecall::billing::BillingRequest::Authorize { key, .. } => *key,
        other => panic!("an Authorize, not {other:?}"),
    };
    m.handle_billing(
        t0,
        freecall::billing::BillingReply::Refused {
            key,
            refusal: freecall::billing::Refusal::MileageExhausted,
        },
    );
    assert_eq!(m.pending_authorizations(), 2);
    m.handle_message(t0, caller(), paid("z9hG4bKpaid4"));
    let asked: Vec<_> = std::iter::from_fn(|| m.poll_billing()).collect();
    assert!(
        asked
            .iter()
            .any(|r| matches!(r, freecall::billing::BillingRequest::Authorize { .. })),
        "the next call's reservation is asked for: {asked:?}"
    );
    assert!(m.take_limit_refusals().is_empty());
}
