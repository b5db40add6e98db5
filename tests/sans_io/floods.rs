//! The flood gate: one address may start `limits.requests_per_address` new requests a
//! second (a burst of twice that); past it they are dropped unanswered and counted, while
//! trusted peers, retransmissions and other addresses go on as before.

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
