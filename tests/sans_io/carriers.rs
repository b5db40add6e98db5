//! Carrier trunks in virtual time: credentials, 503 with Retry-After, caps, number
//! formats, ranks shared by weight, registration.

use super::*;

/// The carrier's challenge to an INVITE the switch sent it.
fn challenge(request: &str, code: u16, header_value: &str) -> freecall::sip::Message {
    let r = parse_datagram(request.as_bytes()).unwrap();
    let header = if code == 401 {
        "WWW-Authenticate"
    } else {
        "Proxy-Authenticate"
    };
    let text = format!(
        "SIP/2.0 {code} Unauthorized\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=ch\r\nCall-ID: {}\r\nCSeq: {} INVITE\r\n\
{header}: {header_value}\r\nContent-Length: 0\r\n\r\n",
        r.header("Via").unwrap(),
        r.from,
        r.to,
        r.call_id,
        r.cseq
    );
    parse_datagram(text.as_bytes()).unwrap()
}

#[test]
fn a_carrier_that_asks_for_credentials_gets_them_once_and_never_sees_them_twice() {
    let creds = "username = \"acme-7\"\npassword = \"s3cret pw\"\n";
    for (code, algorithm) in [(407u16, "MD5"), (401, "SHA-256")] {
        let mut m = manager_with(None, creds);
        let t0 = Instant::now_for_tests();
        let (carrier, other): (SocketAddr, SocketAddr) = (T0.parse().unwrap(), T1.parse().unwrap());
        let peer = |addr| Peer {
            transport: Transport::Udp,
            addr,
        };
        m.handle_message(
            t0,
            caller(),
            parse_datagram(invite("z9hG4bKauth").as_bytes()).unwrap(),
        );
        let first = drain(&mut m)
            .into_iter()
            .find(|(t, s)| t.dest == carrier && s.starts_with("INVITE "))
            .expect("the INVITE to the carrier")
            .1;
        let nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093";
        m.handle_message(
            t0,
            peer(carrier),
            challenge(
                &first,
                code,
                &format!("Digest realm=\"carrier.example\", nonce=\"{nonce}\", qop=\"auth\", algorithm={algorithm}, opaque=\"5ccc\""),
            ),
        );
        let sent = drain(&mut m);
        assert!(
            sent.iter()
                .any(|(t, s)| t.dest == carrier && s.starts_with("ACK ")),
            "the challenge is acknowledged"
        );
        let (_, again) = sent
            .iter()
            .find(|(t, s)| t.dest == carrier && s.starts_with("INVITE "))
            .expect("the INVITE again, with the digest");
        let (a, b) = (
            parse_datagram(first.as_bytes()).unwrap(),
            parse_datagram(again.as_bytes()).unwrap(),
        );
        assert_eq!(a.call_id, b.call_id, "the same call");
        assert_eq!((a.cseq, b.cseq), (1, 2));
        assert_ne!(a.header("Via"), b.header("Via"), "a new transaction");
        let answer = if code == 401 {
            "Authorization"
        } else {
            "Proxy-Authorization"
        };
        let value = b.header(answer).expect("the digest");
        assert!(
            value.contains(&format!("algorithm={algorithm}")) && value.contains("opaque=\"5ccc\"")
        );
        if algorithm == "MD5" {
            // The carrier checks it as any registrar would.
            let proof = freecall::auth::parse_digest(value, "INVITE").unwrap();
            assert_eq!(proof.uri, "sip:0212345678@127.0.0.1:5080");
            assert!(freecall::auth::verify(
                &freecall::auth::ha1("acme-7", "carrier.example", "s3cret pw"),
                &proof
            ));
        }
        assert!(
            sent.iter().all(|(_, s)| !s.contains("s3cret")),
            "the password itself never goes on the wire"
        );
        if code == 407 {
            // Accepted: the call is answered, and its ACK carries the INVITE's CSeq.
            let ok = format!(
                "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=ok\r\nCall-ID: {}\r\nCSeq: 2 INVITE\r\n\
Contact: <sip:pstn@{T0}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
                b.header("Via").unwrap(),
                b.from,
                b.to,
                b.call_id,
                SDP.len()
            );
            m.handle_message(t0, peer(carrier), parse_datagram(ok.as_bytes()).unwrap());
            let sent = drain(&mut m);
            let ack = sent
                .iter()
                .find(|(t, s)| t.dest == carrier && s.starts_with("ACK "))
                .expect("the 2xx is acknowledged");
            assert!(ack.1.contains("CSeq: 2 ACK"), "{}", ack.1);
            assert!(
                sent.iter()
                    .any(|(t, s)| t.dest == caller().addr && s.starts_with("SIP/2.0 200"))
            );
        } else {
            // Refused again: not answered a second time; the next trunk takes the call.
            m.handle_message(
                t0,
                peer(carrier),
                challenge(
                    again,
                    code,
                    &format!(
                        "Digest realm=\"carrier.example\", nonce=\"n2\", algorithm={algorithm}"
                    ),
                ),
            );
            let sent = drain(&mut m);
            assert!(
                !sent
                    .iter()
                    .any(|(t, s)| t.dest == carrier && s.starts_with("INVITE ")),
                "no third INVITE to the carrier"
            );
            assert!(
                sent.iter()
                    .any(|(t, s)| t.dest == other && s.starts_with("INVITE ")),
                "the next trunk is tried"
            );
        }
    }
}

#[test]
fn a_trunk_answering_503_with_retry_after_is_skipped_until_then() {
    let mut m = manager();
    let t0 = Instant::now_for_tests();
    let (first_trunk, second): (SocketAddr, SocketAddr) =
        (T0.parse().unwrap(), T1.parse().unwrap());
    let (to, inv) = first_invite(&mut m, t0, "z9hG4bKfull1");
    assert_eq!(to, first_trunk);
    let full = answer_with(&inv, 503, "f", "Retry-After: 60\r\n");
    m.handle_message(
        t0,
        Peer {
            transport: Transport::Udp,
            addr: first_trunk,
        },
        full,
    );
    let failover = drain(&mut m);
    assert!(
        failover
            .iter()
            .any(|(t, s)| t.dest == second && s.starts_with("INVITE ")),
        "this call goes on to the next trunk"
    );
    let later = t0 + Duration::from_secs(30);
    let (to, _) = first_invite(&mut m, later, "z9hG4bKfull2");
    assert_eq!(
        to, second,
        "within Retry-After, new calls skip the full trunk"
    );
    let after = t0 + Duration::from_secs(61);
    let (to, _) = first_invite(&mut m, after, "z9hG4bKfull3");
    assert_eq!(to, first_trunk, "after it, the trunk is first again");
}

#[test]
fn a_trunk_at_its_caps_passes_calls_to_the_next_and_takes_them_again_when_there_is_room() {
    let (capped, next): (SocketAddr, SocketAddr) = (T0.parse().unwrap(), T1.parse().unwrap());
    let sent_invite = first_invite;
    let first_invite =
        |m: &mut Manager, at: Instant, branch: &str| -> SocketAddr { sent_invite(m, at, branch).0 };
    // At most two calls at once on t0.
    let mut m = manager_with(None, "max_calls = 2\n");
    let t0 = Instant::now_for_tests();
    let (to, busy) = sent_invite(&mut m, t0, "z9hG4bKcap1");
    assert_eq!(to, capped);
    assert_eq!(first_invite(&mut m, t0, "z9hG4bKcap2"), capped);
    assert_eq!(
        first_invite(&mut m, t0, "z9hG4bKcap3"),
        next,
        "a third call at once goes to the next trunk"
    );
    // The first call ends (the number is busy): t0 has room again.
    m.handle_message(
        t0,
        Peer {
            transport: Transport::Udp,
            addr: capped,
        },
        answer(&busy, 486, "b"),
    );
    drain(&mut m);
    assert_eq!(
        first_invite(&mut m, t0, "z9hG4bKcap4"),
        capped,
        "room again"
    );

    // At most two new calls a second on t0.
    let mut m = manager_with(None, "calls_per_second = 2\n");
    assert_eq!(first_invite(&mut m, t0, "z9hG4bKcps1"), capped);
    assert_eq!(first_invite(&mut m, t0, "z9hG4bKcps2"), capped);
    assert_eq!(
        first_invite(&mut m, t0, "z9hG4bKcps3"),
        next,
        "the third in the same second"
    );
    let later = t0 + Duration::from_millis(1001);
    assert_eq!(
        first_invite(&mut m, later, "z9hG4bKcps4"),
        capped,
        "a second later"
    );
}

#[test]
fn a_trunk_gets_the_number_in_its_own_format_with_its_tech_prefix() {
    let mut m = manager_with(
        None,
        "number_format = \"e164\"\nstrip_prefix = \"+\"\nadd_prefix = \"99\"\n",
    );
    let t0 = Instant::now_for_tests();
    m.handle_message(
        t0,
        caller(),
        parse_datagram(invite("z9hG4bKfmt").as_bytes()).unwrap(),
    );
    let (_, sent) = drain(&mut m)
        .into_iter()
        .find(|(_, s)| s.starts_with("INVITE "))
        .expect("an INVITE to the trunk");
    // 02-1234-5678 in Seoul → +82 2 1234 5678 → "82212345678" → "9982212345678".
    assert!(
        sent.starts_with("INVITE sip:9982212345678@127.0.0.1:5080 SIP/2.0"),
        "{sent}"
    );
    let to = parse_datagram(sent.as_bytes()).unwrap().to;
    assert!(to.contains("sip:9982212345678@"), "{to}");
}

/// Two trunks of equal rank share the calls by weight (3 to 1: a, a, b, a), and each is
/// the other's failover; ranks still come in order.
#[test]
fn trunks_of_equal_rank_share_calls_by_weight_and_back_each_other_up() {
    let mut m = manager_routed(None, "weight = 3\n", "weight = 1\n", "[[\"t0\", \"t1\"]]");
    let t0 = Instant::now_for_tests();
    let (a, b): (SocketAddr, SocketAddr) = (T0.parse().unwrap(), T1.parse().unwrap());
    let mut firsts = Vec::new();
    for i in 0..8 {
        m.handle_message(
            t0,
            caller(),
            parse_datagram(invite(&format!("z9hG4bKw{i}")).as_bytes()).unwrap(),
        );
        let (t, inv) = drain(&mut m)
            .into_iter()
            .find(|(_, s)| s.starts_with("INVITE "))
            .expect("an INVITE to a trunk");
        firsts.push(t.dest);
        if i == 7 {
            // The last call's first trunk is busy: the other of its rank takes it.
            let invite = parse_datagram(inv.as_bytes()).unwrap();
            let busy = format!(
                "SIP/2.0 503 Service Unavailable\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=x\r\nCall-ID: {}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
                invite.header("Via").unwrap(),
                invite.from,
                invite.to,
                invite.call_id
            );
            m.handle_message(
                t0,
                Peer {
                    transport: Transport::Udp,
                    addr: t.dest,
                },
                parse_datagram(busy.as_bytes()).unwrap(),
            );
            let next = drain(&mut m)
                .into_iter()
                .find(|(_, s)| s.starts_with("INVITE "))
                .map(|(t, _)| t.dest);
            assert_eq!(next, Some(b), "failover inside the rank");
        }
    }
    assert_eq!(firsts, [a, a, b, a, a, a, b, a]);

    // Ranks in order: the shared rank first, the backup after both.
    let m2 = Config::from_toml(&format!(
        "[sip]\nlisten = \"{SWITCH}\"\n[media]\naddress = \"127.0.0.1\"\nport_min = 20000\nport_max = 30000\n\
[[trunks]]\nname = \"t0\"\naddress = \"{T0}\"\n[[trunks]]\nname = \"t1\"\naddress = \"{T1}\"\n\
[[trunks]]\nname = \"backup\"\naddress = \"127.0.0.1:5082\"\n\
[[routes]]\nprefix = \"\"\ntrunks = [[\"t0\", \"t1\"], \"backup\"]\n"
    ))
    .unwrap();
    let route = Routing::from_config(&m2);
    let r = route.plan.lookup("0212345678").unwrap();
    assert_eq!(
        (r.trunks.clone(), r.ranks.clone()),
        (vec![0, 1, 2], vec![vec![0, 1], vec![2]])
    );
}

/// A manager for `cfg` at a moment `t0` whose wall-clock time is set, and its carrier
/// (T0) as an address and as a peer.
fn registering(cfg: &Config) -> (Manager, Instant, SocketAddr, Peer) {
    let mut m = Manager::new(
        manager_settings(None),
        Routing::from_config(cfg),
        Box::new(NullMedia::new()),
    );
    let t0 = Instant::now_for_tests();
    m.set_wall_clock(t0, 1_780_000_000_000);
    let carrier: SocketAddr = T0.parse().unwrap();
    let peer = Peer {
        transport: Transport::Udp,
        addr: carrier,
    };
    (m, t0, carrier, peer)
}

/// A carrier that wants registration: REGISTER at start, its challenge answered once,
/// again a minute before the granted time runs out, retries 30 s then 60 s apart after
/// refusals, the carrier's calls taken as its inbound calls, `Expires: 0` when stopping.
/// All in virtual time.
#[test]
fn a_registration_trunk_registers_renews_retries_and_unregisters() {
    let cfg = Config::from_toml(&format!(
        "[sip]\nlisten = \"{SWITCH}\"\n[media]\naddress = \"127.0.0.1\"\nport_min = 20000\nport_max = 30000\n\
[[trunks]]\nname = \"carrier\"\naddress = \"{T0}\"\nusername = \"07012345678\"\npassword = \"s3cret\"\n\
register = true\nregister_expires = 600\n\
[[trunks]]\nname = \"pbx\"\naddress = \"{T1}\"\n\
[[routes]]\nprefix = \"070\"\ntrunks = [\"pbx\"]\n[[routes]]\nprefix = \"\"\ntrunks = [\"carrier\"]\n"
    ))
    .unwrap();
    let (mut m, t0, carrier, peer) = registering(&cfg);
    let registers = |m: &mut Manager| requests_to(m, carrier, "REGISTER");
    m.handle_timeout(t0);
    let first = registers(&mut m);
    assert_eq!(first.len(), 1);
    let reg = parse_datagram(first[0].as_bytes()).unwrap();
    assert_eq!(reg.header("Expires"), Some("600"));
    assert!(
        reg.from.starts_with("<sip:07012345678@127.0.0.1>"),
        "{}",
        reg.from
    );
    assert_eq!(
        reg.contact_uri.as_deref(),
        Some("sip:07012345678@127.0.0.1:5060")
    );
    assert!(reg.header("Authorization").is_none());
    m.handle_message(
        t0,
        peer,
        answer_with(
            &first[0],
            401,
            "r",
            "WWW-Authenticate: Digest realm=\"carrier.example\", nonce=\"n1\", qop=\"auth\"\r\n",
        ),
    );
    let again = registers(&mut m);
    assert_eq!(again.len(), 1, "the challenge answered once");
    let again_msg = parse_datagram(again[0].as_bytes()).unwrap();
    assert_eq!(
        (again_msg.call_id.as_str(), again_msg.cseq),
        (reg.call_id.as_str(), 2)
    );
    let proof =
        freecall::auth::parse_digest(again_msg.header("Authorization").unwrap(), "REGISTER")
            .unwrap();
    assert!(freecall::auth::verify(
        &freecall::auth::ha1("07012345678", "carrier.example", "s3cret"),
        &proof
    ));
    // Granted 300 s (not the 600 asked): renewed a minute before they run out.
    m.handle_message(
        t0,
        peer,
        answer_with(
            &again[0],
            200,
            "r",
            "Contact: <sip:07012345678@127.0.0.1:5060>;expires=300\r\n",
        ),
    );
    assert_eq!(
        m.take_registration_changes(),
        [("carrier".to_string(), freecall::call::RegState::Registered)]
    );
    // When the REGISTERs that timers send go out, relative to `from`.
    let registers_until =
        |m: &mut Manager, from: Instant, until: Duration| -> Vec<(Duration, String)> {
            run(m, from, until)
                .into_iter()
                .filter(|(_, t, s)| t.dest == carrier && s.starts_with("REGISTER "))
                .map(|(at, _, s)| (at, s))
                .collect()
        };
    let renew = registers_until(&mut m, t0, Duration::from_secs(240));
    assert_eq!(renew.len(), 1);
    assert_eq!(
        renew[0].0,
        Duration::from_secs(240),
        "a minute before the 300 s run out"
    );
    let renew = [renew[0].1.clone()];
    let t1 = t0 + Duration::from_secs(240);
    assert_eq!(
        parse_datagram(renew[0].as_bytes()).unwrap().cseq,
        3,
        "same Call-ID, next CSeq"
    );

    // The carrier refuses: retried 30 s later, then 60 s after that.
    m.handle_message(t1, peer, answer(&renew[0], 403, "r"));
    assert_eq!(
        m.take_registration_changes(),
        [("carrier".to_string(), freecall::call::RegState::Failed)]
    );
    let retry = registers_until(&mut m, t1, Duration::from_secs(30));
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].0, Duration::from_secs(30));
    m.handle_message(
        t1 + Duration::from_secs(30),
        peer,
        answer(&retry[0].1, 503, "r"),
    );
    let retry = registers_until(
        &mut m,
        t1 + Duration::from_secs(30),
        Duration::from_secs(60),
    );
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].0, Duration::from_secs(60), "the pause doubled");
    let t2 = t1 + Duration::from_secs(90);
    m.handle_message(t2, peer, answer(&retry[0].1, 200, "r"));
    assert_eq!(
        m.take_registration_changes(),
        [("carrier".to_string(), freecall::call::RegState::Registered)]
    );

    // The carrier sends a call in (no peer is configured: its address is what admits
    // it); the dial plan takes it to the office PBX.
    let inbound = format!(
        "INVITE sip:07012345678@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {T0};branch=z9hG4bKin1\r\nMax-Forwards: 70\r\n\
From: <sip:0311111111@{T0}>;tag=c1\r\nTo: <sip:07012345678@{SWITCH}>\r\nCall-ID: in1@carrier\r\n\
CSeq: 1 INVITE\r\nContact: <sip:c@{T0}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    m.handle_message(t2, peer, parse_datagram(inbound.as_bytes()).unwrap());
    let out = drain(&mut m);
    let to_pbx = out
        .iter()
        .find(|(_, s)| s.starts_with("INVITE "))
        .map(|(t, _)| t.dest);
    assert_eq!(
        to_pbx,
        Some(T1.parse().unwrap()),
        "the carrier's call goes to the PBX"
    );
    // Anyone else calling from elsewhere is not let in.
    let stranger = Peer {
        transport: Transport::Udp,
        addr: "127.0.0.77:5060".parse().unwrap(),
    };
    m.handle_message(
        t2,
        stranger,
        parse_datagram(
            inbound
                .replace("z9hG4bKin1", "z9hG4bKin2")
                .replace("in1@", "in2@")
                .as_bytes(),
        )
        .unwrap(),
    );
    assert!(
        drain(&mut m)
            .iter()
            .any(|(t, s)| t.dest == stranger.addr && s.starts_with("SIP/2.0 403")),
        "a stranger is refused"
    );

    // Stopping: the carrier is told to forget the switch, and answers.
    m.unregister_all(t2);
    let bye = registers(&mut m);
    assert_eq!(bye.len(), 1);
    assert_eq!(
        parse_datagram(bye[0].as_bytes()).unwrap().header("Expires"),
        Some("0")
    );
    assert!(m.unregistering());
    m.handle_message(t2, peer, answer(&bye[0], 200, "r"));
    assert!(!m.unregistering());
    assert_eq!(
        m.take_registration_changes(),
        [(
            "carrier".to_string(),
            freecall::call::RegState::Unregistered
        )]
    );
}

/// A registrar that wants longer registrations (423 with Min-Expires) is asked again at
/// once for its minimum; a reload that moves the trunk elsewhere in the list while its
/// REGISTER is out keeps the registration, and the answer lands on it.
#[test]
fn a_registrars_minimum_is_honoured_and_a_reordering_reload_keeps_the_registration() {
    let toml = |order: &str| {
        format!(
            "[sip]\nlisten = \"{SWITCH}\"\n[media]\naddress = \"127.0.0.1\"\nport_min = 20000\nport_max = 30000\n{order}\
[[routes]]\nprefix = \"\"\ntrunks = [\"carrier\"]\n"
        )
    };
    let carrier_entry = format!(
        "[[trunks]]\nname = \"carrier\"\naddress = \"{T0}\"\nusername = \"07012345678\"\npassword = \"s3cret\"\n\
register = true\nregister_expires = 300\n"
    );
    let pbx_entry = format!("[[trunks]]\nname = \"pbx\"\naddress = \"{T1}\"\n");
    let cfg = Config::from_toml(&toml(&format!("{carrier_entry}{pbx_entry}"))).unwrap();
    let (mut m, t0, carrier, peer) = registering(&cfg);
    let registers = |m: &mut Manager| requests_to(m, carrier, "REGISTER");
    m.handle_timeout(t0);
    let first = registers(&mut m);
    assert_eq!(
        parse_datagram(first[0].as_bytes())
            .unwrap()
            .header("Expires"),
        Some("300")
    );
    m.handle_message(
        t0,
        peer,
        answer_with(&first[0], 423, "r", "Min-Expires: 1800\r\n"),
    );
    m.handle_timeout(t0);
    let again = registers(&mut m);
    assert_eq!(again.len(), 1, "asked again at once");
    assert_eq!(
        parse_datagram(again[0].as_bytes())
            .unwrap()
            .header("Expires"),
        Some("1800"),
        "for the registrar's minimum"
    );
    assert!(
        m.take_registration_changes().is_empty(),
        "a 423 is not a refusal"
    );

    // A reload puts the PBX first while that REGISTER is out.
    let reordered = Config::from_toml(&toml(&format!("{pbx_entry}{carrier_entry}"))).unwrap();
    m.set_routing(Routing::from_config(&reordered));
    m.handle_message(t0, peer, answer(&again[0], 200, "r"));
    assert_eq!(
        m.take_registration_changes(),
        [("carrier".to_string(), freecall::call::RegState::Registered)],
        "the answer lands on the carrier's registration in its new place"
    );
    let renew: Vec<(Duration, String)> = run(&mut m, t0, Duration::from_secs(1800))
        .into_iter()
        .filter(|(_, t, s)| t.dest == carrier && s.starts_with("REGISTER "))
        .map(|(at, _, s)| (at, s))
        .collect();
    // (Unanswered, the renewal is retransmitted: count requests, not datagrams.)
    let cseqs: std::collections::BTreeSet<u32> = renew
        .iter()
        .map(|(_, r)| parse_datagram(r.as_bytes()).unwrap().cseq)
        .collect();
    assert_eq!(cseqs.len(), 1, "one renewal");
    assert_eq!(
        renew[0].0,
        Duration::from_secs(1740),
        "renewed a minute before the 1800 s run out"
    );
    assert_eq!(
        parse_datagram(renew[0].1.as_bytes())
            .unwrap()
            .header("Expires"),
        Some("1800")
    );
}

/// A registrar that keeps refusing is asked again after a pause that doubles from 30 s
/// and never grows past half an hour.
#[test]
fn a_refusing_registrar_is_asked_again_less_and_less_often_but_at_least_every_half_hour() {
    let cfg = Config::from_toml(&format!(
        "[sip]\nlisten = \"{SWITCH}\"\n[media]\naddress = \"127.0.0.1\"\nport_min = 20000\nport_max = 30000\n\
[[trunks]]\nname = \"carrier\"\naddress = \"{T0}\"\nusername = \"07012345678\"\npassword = \"s3cret\"\n\
register = true\n[[routes]]\nprefix = \"\"\ntrunks = [\"carrier\"]\n"
    ))
    .unwrap();
    let (mut m, t0, carrier, peer) = registering(&cfg);
    m.handle_timeout(t0);
    let mut register = requests_to(&mut m, carrier, "REGISTER");
    assert_eq!(register.len(), 1);
    let mut at = t0;
    let mut pauses = Vec::new();
    for _ in 0..9 {
        m.handle_message(at, peer, answer(&register[0], 403, "r"));
        // Timers run one at a time until the next REGISTER (within the hour).
        let mut next = None;
        while let Some(when) = m.next_timeout() {
            if when > at + Duration::from_secs(3600) {
                break;
            }
            m.handle_timeout(when);
            if let Some((_, s)) = drain(&mut m)
                .into_iter()
                .find(|(t, s)| t.dest == carrier && s.starts_with("REGISTER "))
            {
                next = Some((when - at, s));
                break;
            }
        }
        let Some((after, text)) = next else {
            panic!("not asked again within the hour after {pauses:?}");
        };
        pauses.push(after.as_secs());
        at += after;
        register = vec![text];
    }
    assert_eq!(pauses, [30, 60, 120, 240, 480, 960, 1800, 1800, 1800]);
}
