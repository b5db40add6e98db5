//! The call manager driven without sockets or sleeping: time is a value the test moves.
//! Whole flows with 32-second timers run in microseconds (a silent trunk's failover, a
//! dead trunk found by its OPTIONS pings), and hostile input is thrown at the full
//! signalling path by the thousand.

use freecall::call::{Manager, Settings};
use freecall::clock::NowForTests;
use freecall::config::Config;
use freecall::media::NullMedia;
use freecall::routing::Routing;
use freecall::sip::{Message, Transport, parse_datagram};
use freecall::transaction::{Peer, Timers, Transmit};
use rand::{RngExt, SeedableRng, rngs::SmallRng};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SWITCH: &str = "127.0.0.1:5060";
const CALLER: &str = "127.0.0.1:5070";
const T0: &str = "127.0.0.1:5080";
const T1: &str = "127.0.0.1:5081";

fn manager() -> Manager {
    manager_pinging(None)
}

fn manager_pinging(trunk_ping: Option<Duration>) -> Manager {
    manager_with(trunk_ping, "")
}

/// `t0_extra`: more keys of trunk t0 (its credentials).
fn manager_with(trunk_ping: Option<Duration>, t0_extra: &str) -> Manager {
    manager_routed(trunk_ping, t0_extra, "", "[\"t0\", \"t1\"]")
}

/// Trunks t0 and t1 with lines added to each, and the route's `trunks` list.
fn manager_routed(
    trunk_ping: Option<Duration>,
    t0_extra: &str,
    t1_extra: &str,
    route: &str,
) -> Manager {
    let cfg = Config::from_toml(&format!(
        "[sip]\nlisten = \"{SWITCH}\"\n[media]\naddress = \"127.0.0.1\"\nport_min = 20000\nport_max = 30000\n\
[[peers]]\nname = \"lo\"\naddress = \"127.0.0.0/8\"\n\
[[trunks]]\nname = \"t0\"\naddress = \"{T0}\"\n{t0_extra}[[trunks]]\nname = \"t1\"\naddress = \"{T1}\"\n{t1_extra}\
[[routes]]\nprefix = \"\"\ntrunks = {route}\n"
    ))
    .unwrap();
    let settings = manager_settings(trunk_ping);
    Manager::new(
        settings,
        Routing::from_config(&cfg),
        Box::new(NullMedia::new()),
    )
}

/// The switch's settings in these tests.
fn manager_settings(trunk_ping: Option<Duration>) -> Settings {
    Settings {
        advertised: SWITCH.parse().unwrap(),
        user_agent: "freecall-test".into(),
        max_calls: 100,
        ring_timeout: Duration::from_secs(180),
        timers: Timers::default(),
        seed: 42,
        billing: None,
        media: Default::default(),
        node: "test".into(),
        records: true,
        trunk_ping,
        placed_ring: Duration::from_secs(30),
        placed_answer: Duration::from_secs(15),
        visitor_sees: None,
        limits: Default::default(),
    }
}

fn caller() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: CALLER.parse().unwrap(),
    }
}

const SDP: &str = "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

fn invite(branch: &str) -> String {
    format!(
        "INVITE sip:0212345678@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch={branch}\r\nMax-Forwards: 70\r\n\
From: <sip:0311111111@127.0.0.1>;tag=a1\r\nTo: <sip:0212345678@{SWITCH}>\r\nCall-ID: {branch}@caller\r\n\
CSeq: 1 INVITE\r\nContact: <sip:a@{CALLER}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

fn drain(m: &mut Manager) -> Vec<(Transmit, String)> {
    std::iter::from_fn(|| m.poll_transmit())
        .map(|t| {
            let text = String::from_utf8_lossy(&t.bytes).to_string();
            (t, text)
        })
        .collect()
}

/// `answer`, with extra header lines.
fn answer_with(request: &str, code: u16, tag: &str, headers: &str) -> freecall::sip::Message {
    let plain = answer(request, code, tag);
    let text = format!(
        "SIP/2.0 {code} X\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {}\r\n{headers}Content-Length: 0\r\n\r\n",
        plain.header("Via").unwrap(),
        plain.from,
        plain.to,
        plain.call_id,
        plain.cseq,
        plain.cseq_method.as_str()
    );
    parse_datagram(text.as_bytes()).unwrap()
}

/// Where a new call's first INVITE goes at `at`, and the INVITE.
fn first_invite(m: &mut Manager, at: Instant, branch: &str) -> (SocketAddr, String) {
    m.handle_message(
        at,
        caller(),
        parse_datagram(invite(branch).as_bytes()).unwrap(),
    );
    drain(m)
        .into_iter()
        .find(|(_, s)| s.starts_with("INVITE "))
        .map(|(t, s)| (t.dest, s))
        .expect("an INVITE to the carrier")
}

/// The requests of `method` (`"REGISTER"`) sent to `dest` since the last drain.
fn requests_to(m: &mut Manager, dest: SocketAddr, method: &str) -> Vec<String> {
    drain(m)
        .into_iter()
        .filter(|(t, s)| t.dest == dest && s.starts_with(&format!("{method} ")))
        .map(|(_, s)| s)
        .collect()
}

/// Run timers up to `until`, returning what was sent and when (offset from `t0`).
fn run(m: &mut Manager, t0: Instant, until: Duration) -> Vec<(Duration, Transmit, String)> {
    let mut out = Vec::new();
    while let Some(at) = m.next_timeout() {
        if at > t0 + until {
            break;
        }
        m.handle_timeout(at);
        for (t, s) in drain(m) {
            out.push((at - t0, t, s));
        }
    }
    out
}

#[test]
fn a_silent_trunk_fails_over_after_timer_b_without_waiting_32_seconds() {
    let mut m = manager();
    let t0 = Instant::now_for_tests();
    m.handle_message(
        t0,
        caller(),
        parse_datagram(invite("z9hG4bKsilent").as_bytes()).unwrap(),
    );
    let sent = drain(&mut m);
    assert!(sent[0].1.starts_with("SIP/2.0 100 Trying"));
    let t0_addr: SocketAddr = T0.parse().unwrap();
    let t1_addr: SocketAddr = T1.parse().unwrap();
    assert_eq!(sent[1].0.dest, t0_addr);

    let later = run(&mut m, t0, Duration::from_secs(40));
    let to_t0: Vec<Duration> = later
        .iter()
        .filter(|(_, t, _)| t.dest == t0_addr)
        .map(|(d, _, _)| *d)
        .collect();
    let secs: Vec<u64> = to_t0.iter().map(|d| d.as_millis() as u64).collect();
    assert_eq!(
        secs,
        vec![500, 1500, 3500, 7500, 15500, 31500],
        "Timer A retransmissions to the silent trunk"
    );
    let (at, _, first_to_t1) = later
        .iter()
        .find(|(_, t, _)| t.dest == t1_addr)
        .expect("failover INVITE");
    assert_eq!(*at, Duration::from_secs(32), "Timer B = 64*T1");
    assert!(first_to_t1.starts_with("INVITE sip:0212345678@127.0.0.1:5081 SIP/2.0"));

    // The second trunk answers; the caller gets the 200 at once.
    let b = parse_datagram(first_to_t1.as_bytes()).unwrap();
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=t1\r\nCall-ID: {}\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:pstn@{T1}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        b.header("Via").unwrap(),
        b.from,
        b.to,
        b.call_id,
        SDP.len()
    );
    let now = t0 + Duration::from_secs(33);
    m.handle_message(
        now,
        Peer {
            transport: Transport::Udp,
            addr: t1_addr,
        },
        parse_datagram(ok.as_bytes()).unwrap(),
    );
    let sent = drain(&mut m);
    assert!(
        sent.iter()
            .any(|(t, s)| t.dest == t1_addr && s.starts_with("ACK "))
    );
    assert!(
        sent.iter()
            .any(|(t, s)| t.dest == caller().addr && s.starts_with("SIP/2.0 200 OK"))
    );
    assert_eq!(m.active_calls(), 1);
}

#[test]
fn ten_thousand_hostile_messages_never_crash_the_signalling_path() {
    let mut m = manager();
    let mut rng = SmallRng::seed_from_u64(0xf4ee_ca11);
    let t0 = Instant::now_for_tests();
    let seeds = [
        invite("z9hG4bKseed"),
        format!(
            "BYE sip:freecall@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKbye\r\nMax-Forwards: 70\r\n\
From: <sip:0311111111@127.0.0.1>;tag=a1\r\nTo: <sip:0212345678@{SWITCH}>;tag=x\r\nCall-ID: seed@caller\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        ),
        format!(
            "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP {SWITCH};branch=z9hG4bKfc0000\r\nFrom: <sip:a@b>;tag=f\r\nTo: <sip:c@d>;tag=t\r\n\
Call-ID: x\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        ),
    ];
    let junk: [&[u8]; 8] = [
        b"\r\n",
        b";tag=",
        b"\"",
        b"<",
        b">",
        b"%00",
        b"\r\n\r\n",
        b"Content-Length: 99999999999\r\n",
    ];
    let (mut parsed, mut refused) = (0u32, 0u32);
    for i in 0..10_000u32 {
        let mut bytes = seeds[i as usize % seeds.len()].as_bytes().to_vec();
        for _ in 0..rng.random_range(1..6) {
            let pos = rng.random_range(0..bytes.len());
            match rng.random_range(0..5) {
                0 => bytes[pos] = rng.random(),
                1 => {
                    let end = (pos + rng.random_range(1..40)).min(bytes.len());
                    bytes.drain(pos..end);
                }
                2 => {
                    let j = junk[rng.random_range(0..junk.len())];
                    bytes.splice(pos..pos, j.iter().copied());
                }
                3 => bytes.truncate(pos),
                _ => {
                    let end = (pos + rng.random_range(1..40)).min(bytes.len());
                    let dup = bytes[pos..end].to_vec();
                    bytes.splice(pos..pos, dup);
                }
            }
            if bytes.is_empty() {
                bytes.push(b'x');
            }
        }
        let now = t0 + Duration::from_millis(u64::from(i) * 10);
        let from = Peer {
            transport: Transport::Udp,
            addr: SocketAddr::from(([127, 0, 0, 1], 5000 + (i % 50) as u16)),
        };
        match parse_datagram(&bytes) {
            Ok(msg) => {
                parsed += 1;
                m.handle_message(now, from, msg);
            }
            Err(e) => {
                refused += 1;
                m.handle_malformed(from, &bytes, &e.to_string());
            }
        }
        m.handle_timeout(now);
        for (t, _) in drain(&mut m) {
            // The switch answers a sender (ports 5000–5049) or calls a configured trunk —
            // never an address a mutated Via, Contact or Request-URI names.
            let sender = (5000..5050).contains(&t.dest.port());
            let trunk = t.dest.port() == 5080 || t.dest.port() == 5081;
            let ok = t.dest.ip() == std::net::Ipv4Addr::LOCALHOST && (sender || trunk);
            assert!(ok, "sent to {}", t.dest);
        }
    }
    assert!(
        parsed > 500 && refused > 500,
        "both paths exercised: {parsed} parsed, {refused} refused"
    );
    // Still a working switch afterwards.
    let now = t0 + Duration::from_secs(200);
    m.handle_timeout(now);
    drain(&mut m);
    m.handle_message(
        now,
        caller(),
        parse_datagram(invite("z9hG4bKafter").as_bytes()).unwrap(),
    );
    let sent = drain(&mut m);
    assert!(
        sent.iter()
            .any(|(t, s)| t.dest == T0.parse::<SocketAddr>().unwrap() && s.starts_with("INVITE "))
    );
}

/// The answer of a trunk to a request the switch sent it.
fn answer(request: &str, code: u16, tag: &str) -> freecall::sip::Message {
    let r = parse_datagram(request.as_bytes()).unwrap();
    let text = format!(
        "SIP/2.0 {code} X\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag={tag}\r\nCall-ID: {}\r\nCSeq: {} {}\r\nContent-Length: 0\r\n\r\n",
        r.header("Via").unwrap(),
        r.from,
        r.to,
        r.call_id,
        r.cseq,
        r.cseq_method.as_str()
    );
    parse_datagram(text.as_bytes()).unwrap()
}

#[test]
fn a_trunk_that_stops_answering_options_is_skipped_without_waiting() {
    // Pings every second; t0 is silent (a dead trunk), t1 answers its pings.
    let mut m = manager_pinging(Some(Duration::from_secs(1)));
    let t0 = Instant::now_for_tests();
    m.set_wall_clock(t0, 1_780_000_000_000);
    let (dead, alive): (SocketAddr, SocketAddr) = (T0.parse().unwrap(), T1.parse().unwrap());
    let mut to_dead = Vec::new();
    let mut down_at = None;
    let mut now = t0;
    while let Some(at) = m.next_timeout() {
        if at > t0 + Duration::from_secs(40) {
            break;
        }
        now = at;
        m.handle_timeout(at);
        for (t, text) in drain(&mut m) {
            if t.dest == dead {
                to_dead.push(text);
            } else if t.dest == alive && text.starts_with("OPTIONS ") {
                let peer = Peer {
                    transport: Transport::Udp,
                    addr: alive,
                };
                m.handle_message(at, peer, answer(&text, 200, "t1"));
            }
        }
        for (name, up) in m.take_trunk_changes() {
            if name == "t0" && !up {
                down_at.get_or_insert(at - t0);
            }
        }
    }
    assert!(
        to_dead.iter().all(|t| t.starts_with("OPTIONS ")),
        "the dead trunk sees pings only"
    );
    assert_eq!(
        down_at,
        Some(Duration::from_secs(32)),
        "the first ping gets no answer: taken out after Timer F (64 × T1), 32 s of virtual time"
    );
    // A call now goes straight to the live trunk: no time lost on the dead one.
    m.handle_message(
        now,
        caller(),
        parse_datagram(invite("z9hG4bKafter").as_bytes()).unwrap(),
    );
    let sent = drain(&mut m);
    let invites: Vec<SocketAddr> = sent
        .iter()
        .filter(|(_, s)| s.starts_with("INVITE "))
        .map(|(t, _)| t.dest)
        .collect();
    assert_eq!(invites, [alive], "the live trunk takes the call at once");
}

mod carriers;
mod floods;
mod named;
mod torture;

/// A load balancer's OPTIONS: 200 while the node takes calls, 503 (with a Reason) while
/// it drains or its database does not answer, 200 again when the database is back.
#[test]
fn options_tell_a_load_balancer_whether_the_node_takes_calls() {
    let mut m = manager();
    let t0 = Instant::now_for_tests();
    let probe = |m: &mut Manager, branch: &str| -> String {
        let text = format!(
            "OPTIONS sip:{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch={branch}\r\nMax-Forwards: 70\r\n\
From: <sip:lb@127.0.0.1>;tag=l1\r\nTo: <sip:{SWITCH}>\r\nCall-ID: {branch}@lb\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        m.handle_message(t0, caller(), parse_datagram(text.as_bytes()).unwrap());
        drain(m)
            .into_iter()
            .map(|(_, s)| s)
            .find(|s| s.starts_with("SIP/2.0"))
            .expect("an answer")
    };
    assert!(probe(&mut m, "z9hG4bKo1").starts_with("SIP/2.0 200"));
    m.handle_billing(t0, freecall::billing::BillingReply::Store { up: false });
    let down = probe(&mut m, "z9hG4bKo2");
    assert!(down.starts_with("SIP/2.0 503"), "{down}");
    assert!(down.contains("database unavailable"), "{down}");
    m.handle_billing(t0, freecall::billing::BillingReply::Store { up: true });
    assert!(probe(&mut m, "z9hG4bKo3").starts_with("SIP/2.0 200"));
    m.begin_drain();
    let draining = probe(&mut m, "z9hG4bKo4");
    assert!(draining.starts_with("SIP/2.0 503"), "{draining}");
    assert!(draining.contains("draining"), "{draining}");
}

/// Over `[limits]`: a request with too many header fields gets 400, a new call while the
/// transactions are at their cap gets 503 with Retry-After — both without any state
/// kept — while a request within a call still goes through. Each refusal is counted.
#[test]
fn requests_over_the_limits_are_refused_without_keeping_state() {
    let mut settings = manager_settings(None);
    settings.limits.max_transactions = 3;
    settings.limits.max_headers = 20;
    let cfg = Config::from_toml(&format!(
        "[sip]\nlisten = \"{SWITCH}\"\n[media]\naddress = \"127.0.0.1\"\nport_min = 20000\nport_max = 30000\n\
[[peers]]\nname = \"lo\"\naddress = \"127.0.0.0/8\"\n"
    ))
    .unwrap();
    let mut m = Manager::new(
        settings,
        Routing::from_config(&cfg),
        Box::new(NullMedia::new()),
    );
    let t0 = Instant::now_for_tests();
    let answer_to = |m: &mut Manager, text: String| -> String {
        m.handle_message(t0, caller(), parse_datagram(text.as_bytes()).unwrap());
        drain(m)
            .into_iter()
            .map(|(_, s)| s)
            .find(|s| s.starts_with("SIP/2.0"))
            .unwrap_or_default()
    };
    let options = |branch: &str, extra: &str| {
        format!(
            "OPTIONS sip:{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch={branch}\r\nMax-Forwards: 70\r\n\
From: <sip:x@127.0.0.1>;tag=x1\r\nTo: <sip:{SWITCH}>\r\nCall-ID: {branch}@x\r\nCSeq: 1 OPTIONS\r\n{extra}Content-Length: 0\r\n\r\n"
        )
    };
    let padding: String = (0..20).map(|i| format!("X-Pad-{i}: {i}\r\n")).collect();
    let refused = answer_to(&mut m, options("z9hG4bKpad", &padding));
    assert!(refused.starts_with("SIP/2.0 400"), "{refused}");
    assert!(refused.contains("too many header fields"), "{refused}");
    // Three OPTIONS transactions linger (Timer J): the cap is reached.
    for i in 0..3 {
        assert!(
            answer_to(&mut m, options(&format!("z9hG4bKfill{i}"), "")).starts_with("SIP/2.0 200")
        );
    }
    let busy = answer_to(&mut m, invite("z9hG4bKover"));
    assert!(busy.starts_with("SIP/2.0 503"), "{busy}");
    assert!(busy.contains("Retry-After: 5"), "{busy}");
    assert!(busy.contains("too many transactions"), "{busy}");
    // What belongs to what the switch holds still goes through: a retransmission of a
    // held OPTIONS is answered again from its transaction.
    assert!(answer_to(&mut m, options("z9hG4bKfill1", "")).starts_with("SIP/2.0 200"));
    // A BYE with a To tag of a call the switch does not have is a new transaction like
    // any other (an invented tag does not get around the cap), and so is a CANCEL of
    // nothing.
    let bye = format!(
        "BYE sip:a@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKbye\r\nMax-Forwards: 70\r\n\
From: <sip:x@127.0.0.1>;tag=x1\r\nTo: <sip:{SWITCH}>;tag=gone\r\nCall-ID: old@x\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    assert!(answer_to(&mut m, bye).starts_with("SIP/2.0 503"));
    let cancel = invite("z9hG4bKnothing")
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    assert!(answer_to(&mut m, cancel).starts_with("SIP/2.0 503"));
    assert_eq!(
        m.take_limit_refusals(),
        ["headers", "transactions", "transactions", "transactions"]
    );
    // After Timer J the OPTIONS transactions are gone and new requests are taken again.
    m.handle_timeout(t0 + Duration::from_secs(40));
    let later = t0 + Duration::from_secs(40);
    m.handle_message(
        later,
        caller(),
        parse_datagram(invite("z9hG4bKlater").as_bytes()).unwrap(),
    );
    assert!(
        !drain(&mut m)
            .iter()
            .any(|(_, s)| s.starts_with("SIP/2.0 503")),
        "the cap is of what is held now"
    );
}

/// A proxy in front (Kamailio's dispatcher) records its route: the switch's answers carry
/// it. Its worker processes may hand the switch a BYE before the ACK of the 200: the call
/// ends, and the 200 is not sent again for the 32 s of Timer L.
/// `invite` from the caller, answered by the trunk with 200 at `t0`: the 200 the caller
/// got, the B-leg's INVITE and the trunk.
fn answered_at(m: &mut Manager, t0: Instant, invite: &str) -> (Message, Message, Peer) {
    m.handle_message(t0, caller(), parse_datagram(invite.as_bytes()).unwrap());
    let out = drain(m);
    let (to_trunk, invite_b) = out
        .iter()
        .find(|(_, s)| s.starts_with("INVITE "))
        .map(|(t, s)| (t.dest, s.clone()))
        .unwrap();
    let b = parse_datagram(invite_b.as_bytes()).unwrap();
    assert!(
        b.header("Record-Route").is_none(),
        "the caller's route is not the carrier's"
    );
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=t0\r\nCall-ID: {}\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:pstn@{T0}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        b.header("Via").unwrap(),
        b.from,
        b.to,
        b.call_id,
        SDP.len()
    );
    let trunk = Peer {
        transport: Transport::Udp,
        addr: to_trunk,
    };
    m.handle_message(t0, trunk, parse_datagram(ok.as_bytes()).unwrap());
    let answered = drain(m)
        .into_iter()
        .find(|(t, s)| t.dest == caller().addr && s.starts_with("SIP/2.0 200 OK"))
        .map(|(_, s)| parse_datagram(s.as_bytes()).unwrap())
        .expect("the caller's 200");
    (answered, b, trunk)
}

#[test]
fn a_proxy_stays_on_the_path_and_a_bye_before_the_ack_stops_the_200() {
    let mut m = manager();
    let t0 = Instant::now_for_tests();
    let routed = invite("z9hG4bKrr").replacen(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 69\r\nRecord-Route: <sip:127.0.0.9:5060;lr>\r\n",
        1,
    );
    let (answered, _, _) = answered_at(&mut m, t0, &routed);
    assert_eq!(
        answered.headers_named("Record-Route").collect::<Vec<_>>(),
        vec!["<sip:127.0.0.9:5060;lr>"],
        "RFC 3261 12.1.1: the 2xx carries the request's Record-Route"
    );

    // The BYE overtakes the ACK.
    let bye = format!(
        "BYE sip:freecall@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKbye\r\nMax-Forwards: 70\r\n\
From: <sip:0311111111@127.0.0.1>;tag=a1\r\nTo: {}\r\nCall-ID: z9hG4bKrr@caller\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        answered.to
    );
    let at = t0 + Duration::from_millis(10);
    m.handle_message(at, caller(), parse_datagram(bye.as_bytes()).unwrap());
    let out = drain(&mut m);
    assert!(out.iter().any(|(t, s)| t.dest == caller().addr
        && s.starts_with("SIP/2.0 200")
        && s.contains("CSeq: 2 BYE")));
    assert_eq!(m.active_calls(), 0);
    let later = run(&mut m, t0, Duration::from_secs(40));
    let resent: Vec<_> = later
        .iter()
        .filter(|(_, t, s)| t.dest == caller().addr && s.contains("CSeq: 1 INVITE"))
        .map(|(d, _, _)| *d)
        .collect();
    assert!(resent.is_empty(), "the 200 sent again at {resent:?}");
}

#[test]
fn a_callee_hanging_up_before_the_callers_ack_leaves_the_200_repeated_until_the_ack() {
    let mut m = manager();
    let t0 = Instant::now_for_tests();
    let (answered, b, trunk) = answered_at(&mut m, t0, &invite("z9hG4bKhu"));
    // The callee hangs up at once; the caller's ACK was lost.
    let bye = format!(
        "BYE sip:freecall@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {T0};branch=z9hG4bKtbye\r\nMax-Forwards: 70\r\n\
From: {};tag=t0\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 9 BYE\r\nContent-Length: 0\r\n\r\n",
        b.to, b.from, b.call_id
    );
    let at = t0 + Duration::from_millis(10);
    m.handle_message(at, trunk, parse_datagram(bye.as_bytes()).unwrap());
    let out = drain(&mut m);
    assert!(
        out.iter()
            .any(|(t, s)| t.dest == caller().addr && s.starts_with("BYE ")),
        "the caller is hung up"
    );
    assert_eq!(m.active_calls(), 0);
    let later = run(&mut m, t0, Duration::from_secs(2));
    let resent = later
        .iter()
        .filter(|(_, t, s)| {
            t.dest == caller().addr && s.starts_with("SIP/2.0 200") && s.contains("CSeq: 1 INVITE")
        })
        .count();
    assert!(
        resent >= 1,
        "the caller never ACKed: its 200 ({}) is repeated as RFC 3261 13.3.1.4 says",
        answered.call_id
    );
}
