//! Two carriers as the test's own SIP user agents over real UDP, each trunk with its own
//! number format and a cap of one call at a time: the first call goes to the first trunk
//! in its format, the second spills over to the second trunk in that one's, the third finds
//! every trunk full and the caller gets 503 saying so, and once a call ends its trunk takes
//! calls again.

mod common;

use common::{WAIT, config_with, start};
use freecall::sip::Message;
use freecall_testkit::{Leg, Phone};
use std::net::SocketAddr;
use std::time::Duration;

/// The user part of a SIP URI or name-addr (`"x" <sip:user@host>;tag=…`).
fn user_of(uri: &str) -> &str {
    let rest = uri.split_once("sip:").map(|(_, r)| r).unwrap_or(uri);
    rest.split('@').next().unwrap_or(rest)
}

/// A call from `caller` to `number`, answered by `carrier`: the INVITE the carrier got
/// and the caller's leg.
async fn answered(
    caller: &Phone,
    sip: SocketAddr,
    carrier: &Phone,
    number: &str,
) -> (Message, Leg) {
    let (invite, mut leg) = caller.invite(sip, number, &caller.sdp("sendrecv"));
    caller.send(sip, &invite).await;
    let (got, from) = carrier.expect_request("INVITE", WAIT).await;
    let tag = format!("{}-{}", carrier.name, got.cseq);
    let ok = carrier.response(&got, 200, "OK", &tag, Some(&carrier.sdp("sendrecv")));
    carrier.send(from, &ok).await;
    carrier.expect_request("ACK", WAIT).await;
    let resp = caller.expect_status(&[200], WAIT).await;
    Phone::update_leg(&mut leg, &resp);
    caller.send(sip, &caller.ack(&leg, leg.cseq)).await;
    caller.settled(sip).await;
    (got, leg)
}

async fn hang_up(caller: &Phone, sip: SocketAddr, leg: &mut Leg, carrier: &Phone) {
    caller.send(sip, &caller.request(leg, "BYE", None)).await;
    let (bye, from) = carrier.expect_request("BYE", WAIT).await;
    carrier
        .send(from, &carrier.response(&bye, 200, "OK", "", None))
        .await;
    caller.expect_status(&[200], WAIT).await;
}

#[tokio::test]
async fn a_full_trunk_passes_calls_to_the_next_in_its_format_and_the_caller_hears_503_when_all_are_full()
 {
    let kt = Phone::bind("kt").await;
    let lgu = Phone::bind("lgu").await;
    let trunks = format!(
        "[[trunks]]\nname = \"kt\"\naddress = \"{}\"\nmax_calls = 1\n\
number_format = \"e164\"\nstrip_prefix = \"+\"\nadd_prefix = \"00700\"\n\
[[trunks]]\nname = \"lgu\"\naddress = \"{}\"\nmax_calls = 1\nnumber_format = \"national\"\nadd_prefix = \"1234\"\n\
[[routes]]\nprefix = \"\"\ntrunks = [\"kt\", \"lgu\"]\n",
        kt.addr, lgu.addr
    );
    let cfg = config_with(&trunks, "", "", "127.0.0.1");
    let switch = start(&cfg).await;
    let sip = switch.sip_addr;
    let caller = Phone::bind("caller").await;

    // The first call: kt, in E.164 without '+', behind its tech prefix, in the Request-URI
    // and in To.
    let (got, mut first) = answered(&caller, sip, &kt, "0212345678").await;
    assert_eq!(got.uri_user.as_deref(), Some("0070082212345678"));
    assert_eq!(user_of(&got.to), "0070082212345678", "{}", got.to);

    // kt is full: the second call goes to lgu, national with lgu's prefix.
    let (got, mut second) = answered(&caller, sip, &lgu, "+82315551234").await;
    assert_eq!(got.uri_user.as_deref(), Some("12340315551234"));
    assert_eq!(user_of(&got.to), "12340315551234", "{}", got.to);

    // Both full: the third caller hears 503 at once, and neither carrier is asked.
    let (invite, leg) = caller.invite(sip, "0212340000", &caller.sdp("sendrecv"));
    caller.send(sip, &invite).await;
    let refused = caller.expect_status(&[503], WAIT).await;
    let reason = refused.header("Reason").unwrap_or_default().to_string();
    assert!(reason.contains("limit"), "Reason: {reason}");
    caller.send(sip, &caller.ack_failure(&leg, &refused)).await;
    kt.expect_silence(Duration::from_millis(300)).await;
    lgu.expect_silence(Duration::from_millis(10)).await;

    // The first call ends: kt takes the next call again.
    hang_up(&caller, sip, &mut first, &kt).await;
    let (got, mut fourth) = answered(&caller, sip, &kt, "0212340000").await;
    assert_eq!(got.uri_user.as_deref(), Some("0070082212340000"));
    hang_up(&caller, sip, &mut fourth, &kt).await;
    hang_up(&caller, sip, &mut second, &lgu).await;
}
