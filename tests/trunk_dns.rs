//! Trunks given by host name (RFC 3263), resolved through a DNS server the test starts on
//! loopback: NAPTR to SRV to A, each address a failover candidate, the records' TTL
//! honoured on the switch's clock, names that do not resolve passed over. Real SIP over
//! UDP; the carriers are the test's own user agents.

mod common;

use common::{WAIT, config_with, start_on};
use freecall::clock::Clock;
use freecall_testkit::Phone;
use freecall_testkit::dns::{DnsServer, a, naptr, srv};
use std::net::Ipv4Addr;
use std::time::Duration;

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// The caller's call is answered by `carrier` (its INVITE's Request-URI returned), then
/// hung up by the caller.
async fn answered_by(
    caller: &Phone,
    mut leg: freecall_testkit::Leg,
    carrier: &Phone,
    sip: std::net::SocketAddr,
) -> String {
    let (invite, from) = carrier.expect_request("INVITE", WAIT).await;
    carrier
        .send(
            from,
            &carrier.response(&invite, 200, "OK", "dns", Some(&carrier.sdp("sendrecv"))),
        )
        .await;
    carrier.expect_request("ACK", WAIT).await;
    let ok = caller.expect_status(&[200], WAIT).await;
    Phone::update_leg(&mut leg, &ok);
    caller.send(sip, &caller.ack(&leg, leg.cseq)).await;
    caller
        .send(sip, &caller.request(&mut leg, "BYE", None))
        .await;
    let (bye, from) = carrier.expect_request("BYE", WAIT).await;
    carrier
        .send(from, &carrier.response(&bye, 200, "OK", "dns", None))
        .await;
    caller.expect_status(&[200], WAIT).await;
    invite.request_uri().unwrap_or_default().to_string()
}

/// A carrier's name with NAPTR and SRV: its first server (priority 10) is down, its
/// second (priority 20) up. The first call waits out the silent server (Timer B, on the
/// switch's clock) and completes on the second; the next call goes to the second at once.
/// When the records' TTL has run out the switch asks again and follows the carrier to a
/// new server. The Request-URI keeps the carrier's domain throughout.
#[tokio::test]
async fn srv_with_two_servers_the_first_down_fails_over_and_follows_the_ttl() {
    let down = Phone::bind("down").await;
    let carrier = Phone::bind("carrier").await;
    let moved = Phone::bind("moved").await;
    let zone = |second: u16| {
        vec![
            naptr("carrier.test", 300, 10, "SIP+D2U", "_sip._udp.carrier.test"),
            srv(
                "_sip._udp.carrier.test",
                300,
                10,
                50,
                down.addr.port(),
                "sip1.carrier.test",
            ),
            srv(
                "_sip._udp.carrier.test",
                300,
                20,
                50,
                second,
                "sip2.carrier.test",
            ),
            a("sip1.carrier.test", 600, LOOPBACK),
            a("sip2.carrier.test", 600, LOOPBACK),
        ]
    };
    let dns = DnsServer::start(zone(carrier.addr.port())).await;
    let cfg = config_with(
        "[[trunks]]\nname = \"carrier\"\naddress = \"carrier.test\"\n\
[[routes]]\nprefix = \"\"\ntrunks = [\"carrier\"]\n",
        &format!("dns_servers = [\"{}\"]", dns.addr),
        "",
        "127.0.0.1",
    );
    let clock = Clock::adjustable();
    let switch = start_on(&cfg, clock.clone()).await;
    let sip = switch.sip_addr;
    let asked_at_start = dns.asked();
    assert_eq!(
        asked_at_start,
        [
            "NAPTR carrier.test.",
            "SRV _sip._udp.carrier.test.",
            "A sip1.carrier.test.",
            "A sip2.carrier.test."
        ],
        "resolved once, before the first call (IPv4 only: the switch listens on IPv4)"
    );

    let caller = Phone::bind("caller").await;
    let (invite, leg) = caller.invite(sip, "0212345678", &caller.sdp("sendrecv"));
    caller.send(sip, &invite).await;
    let (first, _) = down.expect_request("INVITE", WAIT).await;
    assert_eq!(first.request_uri(), Some("sip:0212345678@carrier.test"));
    // The first server never answers: Timer B (64 × T1 = 6.4 s here) on the switch's clock.
    clock.advance(Duration::from_secs(7));
    caller.settled(sip).await;
    let uri = answered_by(&caller, leg, &carrier, sip).await;
    assert_eq!(uri, "sip:0212345678@carrier.test");

    // The next call: straight to the second server, the silent one passed over.
    let (invite, leg) = caller.invite(sip, "0212345679", &caller.sdp("sendrecv"));
    caller.send(sip, &invite).await;
    answered_by(&caller, leg, &carrier, sip).await;
    while let Some((m, _)) = down.recv(Duration::from_millis(200)).await {
        assert_eq!(
            m.call_id, first.call_id,
            "only the first call's INVITE (and its retransmissions) reached the silent server"
        );
    }
    // Four minutes on (the SRV's TTL is five): nothing is asked again.
    clock.advance(Duration::from_secs(240));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        dns.asked(),
        asked_at_start,
        "answers are kept for their TTL"
    );

    // The carrier moves its second server and drops the first; once the five minutes
    // are up the switch asks again and follows.
    let mut zone2 = zone(moved.addr.port());
    zone2.remove(1);
    dns.set(zone2);
    clock.advance(Duration::from_secs(61));
    for _ in 0..200 {
        if dns.asked().len() >= asked_at_start.len() + 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        dns.asked()[asked_at_start.len()..],
        [
            "NAPTR carrier.test.",
            "SRV _sip._udp.carrier.test.",
            "A sip2.carrier.test."
        ],
        "asked again once the TTL ran out"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (invite, leg) = caller.invite(sip, "0212345670", &caller.sdp("sendrecv"));
    caller.send(sip, &invite).await;
    let uri = answered_by(&caller, leg, &moved, sip).await;
    assert_eq!(uri, "sip:0212345670@carrier.test");
    switch.stop(freecall::driver::Stop::Now);
}

/// A name with a port is only its A records on that port (no NAPTR or SRV asked); a trunk
/// whose name does not resolve is passed over for the next, and a route with only such a
/// trunk refuses the call with 503 saying why.
#[tokio::test]
async fn a_name_with_a_port_is_its_addresses_and_a_name_that_does_not_resolve_is_passed_over() {
    let pbx = Phone::bind("pbx").await;
    let dns = DnsServer::start(vec![a("pbx.test", 60, LOOPBACK)]).await;
    let cfg = config_with(
        &format!(
            "[[trunks]]\nname = \"ghost\"\naddress = \"ghost.test\"\n\
[[trunks]]\nname = \"pbx\"\naddress = \"pbx.test:{}\"\n\
[[routes]]\nprefix = \"09\"\ntrunks = [\"ghost\"]\n\
[[routes]]\nprefix = \"\"\ntrunks = [\"ghost\", \"pbx\"]\n",
            pbx.addr.port()
        ),
        &format!("dns_servers = [\"{}\"]", dns.addr),
        "",
        "127.0.0.1",
    );
    let switch = start_on(&cfg, Clock::adjustable()).await;
    let sip = switch.sip_addr;
    let asked = dns.asked();
    assert!(asked.contains(&"A pbx.test.".to_string()), "{asked:?}");
    assert!(
        !asked
            .iter()
            .any(|q| q.contains("pbx.test") && !q.starts_with("A")),
        "a name with a port is looked up for its addresses only: {asked:?}"
    );
    assert!(
        asked.contains(&"NAPTR ghost.test.".to_string()),
        "{asked:?}"
    );

    let caller = Phone::bind("caller").await;
    let (invite, leg) = caller.invite(sip, "0212345678", &caller.sdp("sendrecv"));
    caller.send(sip, &invite).await;
    let uri = answered_by(&caller, leg, &pbx, sip).await;
    assert_eq!(uri, format!("sip:0212345678@pbx.test:{}", pbx.addr.port()));

    let (invite, leg) = caller.invite(sip, "0912345678", &caller.sdp("sendrecv"));
    caller.send(sip, &invite).await;
    let refused = caller.expect_status(&[503], WAIT).await;
    caller.send(sip, &caller.ack_failure(&leg, &refused)).await;
    let reason = refused.header("Reason").unwrap_or_default();
    assert!(
        reason.contains("no address for the trunk's host name"),
        "{reason}"
    );
    switch.stop(freecall::driver::Stop::Now);
}
