//! A trunk given by host name, with the addresses DNS gave it handed to the manager:
//! OPTIONS pings to every address, SRV weights sharing calls among equal priorities, and
//! a carrier's Retry-After that its own pings do not undo.

use super::*;
use freecall::routing::{Hop, HostName};

const A: &str = "127.0.0.1:5080";
const B: &str = "127.0.0.1:5081";
const C: &str = "127.0.0.1:5082";

fn hop(addr: &str, priority: u16, weight: u16) -> Hop {
    Hop {
        peer: Peer {
            transport: Transport::Udp,
            addr: addr.parse().unwrap(),
        },
        priority,
        weight,
    }
}

#[test]
fn a_named_trunks_addresses_are_pinged_shared_by_weight_and_a_retry_after_stands() {
    let cfg = Config::from_toml(&format!(
        "[sip]\nlisten = \"{SWITCH}\"\n[media]\naddress = \"127.0.0.1\"\nport_min = 20000\nport_max = 30000\n\
[[peers]]\nname = \"lo\"\naddress = \"127.0.0.0/8\"\n\
[[trunks]]\nname = \"carrier\"\naddress = \"carrier.test\"\n\
[[routes]]\nprefix = \"\"\ntrunks = [\"carrier\"]\n"
    ))
    .unwrap();
    let mut m = Manager::new(
        manager_settings(Some(Duration::from_secs(30))),
        Routing::from_config(&cfg),
        Box::new(NullMedia::new()),
    );
    let t0 = Instant::now_for_tests();
    m.set_wall_clock(t0, 1_780_000_000_000);
    // Before DNS answered, the trunk has no address: a call is refused, nothing is sent.
    m.handle_message(
        t0,
        caller(),
        parse_datagram(invite("z9hG4bKnodns").as_bytes()).unwrap(),
    );
    let out = drain(&mut m);
    assert!(
        out.iter().any(|(_, s)| s.starts_with("SIP/2.0 503")),
        "{out:?}"
    );
    assert!(!out.iter().any(|(_, s)| s.starts_with("INVITE ")));

    m.set_resolved(
        HostName {
            host: "carrier.test".into(),
            port: None,
            transport: None,
        },
        vec![hop(A, 10, 3), hop(B, 10, 1), hop(C, 20, 1)],
    );
    // Every address is pinged, each asked as the carrier's domain.
    m.handle_timeout(t0);
    let pings: Vec<(Transmit, String)> = drain(&mut m)
        .into_iter()
        .filter(|(_, s)| s.starts_with("OPTIONS "))
        .collect();
    let mut pinged: Vec<String> = pings.iter().map(|(t, _)| t.dest.to_string()).collect();
    pinged.sort();
    assert_eq!(pinged, [A, B, C]);
    assert!(
        pings
            .iter()
            .all(|(_, s)| s.starts_with("OPTIONS sip:carrier.test SIP/2.0"))
    );
    for (t, s) in &pings {
        m.handle_message(
            t0,
            Peer {
                transport: Transport::Udp,
                addr: t.dest,
            },
            answer(s, 200, "p"),
        );
    }

    // Weights 3 and 1 at priority 10: a, a, b, a; priority 20 only backs them up.
    let (a, b): (SocketAddr, SocketAddr) = (A.parse().unwrap(), B.parse().unwrap());
    let mut firsts = Vec::new();
    for i in 0..4 {
        let (to, inv) = first_invite(&mut m, t0, &format!("z9hG4bKsrv{i}"));
        assert!(inv.starts_with("INVITE sip:0212345678@carrier.test SIP/2.0"));
        firsts.push(to);
    }
    assert_eq!(firsts, [a, a, b, a]);

    // A answers 503 with Retry-After: this call goes on to B, and new calls skip A for
    // the two minutes even though A answers its pings.
    let (to, inv) = first_invite(&mut m, t0, "z9hG4bKbusy");
    assert_eq!(to, a);
    let full = answer_with(&inv, 503, "f", "Retry-After: 120\r\n");
    m.handle_message(
        t0,
        Peer {
            transport: Transport::Udp,
            addr: a,
        },
        full,
    );
    let next = drain(&mut m)
        .into_iter()
        .find(|(_, s)| s.starts_with("INVITE "))
        .map(|(t, _)| t.dest);
    assert_eq!(
        next,
        Some(b),
        "the same call tries the carrier's next address"
    );
    let later = t0 + Duration::from_secs(31);
    m.handle_timeout(later);
    for (t, s) in drain(&mut m)
        .into_iter()
        .filter(|(_, s)| s.starts_with("OPTIONS "))
    {
        m.handle_message(
            later,
            Peer {
                transport: Transport::Udp,
                addr: t.dest,
            },
            answer(&s, 200, "p"),
        );
    }
    let (to, _) = first_invite(&mut m, later, "z9hG4bKskip");
    assert_eq!(to, b, "A's Retry-After stands against its pings");
    let (to, _) = first_invite(&mut m, t0 + Duration::from_secs(121), "z9hG4bKback");
    assert_eq!(to, a, "after it, A takes its turn again");
}
