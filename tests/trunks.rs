//! Real carrier trunks as the test's own SIP user agents on loopback: a carrier that
//! challenges every INVITE (and the BYE) gets them answered with the trunk's credentials,
//! over real UDP.

mod common;

use common::{WAIT, config, start};
use freecall::auth::{Secret, ha1, parse_digest, verify};
use freecall_testkit::Phone;

/// `msg` with one more header line.
fn with_header(msg: Vec<u8>, line: &str) -> Vec<u8> {
    String::from_utf8(msg)
        .unwrap()
        .replacen("Content-Length:", &format!("{line}\r\nContent-Length:"), 1)
        .into_bytes()
}

#[tokio::test]
async fn a_carrier_that_challenges_every_invite_gets_the_call_with_the_trunks_credentials() {
    let carrier = Phone::bind("carrier").await;
    let mut cfg = config(&[carrier.addr], "", "", "127.0.0.1");
    cfg.trunks[0].username = Some("acme-7".into());
    cfg.trunks[0].password = Some(Secret::new("s3cret pw"));
    let switch = start(&cfg).await;
    let sip = switch.sip_addr;
    let caller = Phone::bind("caller").await;
    let (invite, mut leg) = caller.invite(sip, "0212345678", &caller.sdp("sendrecv"));
    caller.send(sip, &invite).await;

    let (first, from) = carrier.expect_request("INVITE", WAIT).await;
    assert!(first.header("Proxy-Authorization").is_none());
    let nonce = "a1b2c3d4e5";
    let challenge = format!(
        "Proxy-Authenticate: Digest realm=\"carrier.example\", nonce=\"{nonce}\", qop=\"auth\", algorithm=MD5"
    );
    carrier
        .send(
            from,
            &with_header(
                carrier.response(&first, 407, "Proxy Authentication Required", "c1", None),
                &challenge,
            ),
        )
        .await;
    let (ack, _) = carrier.expect_request("ACK", WAIT).await;
    assert_eq!(ack.call_id, first.call_id, "the challenge is acknowledged");
    let (again, from) = carrier.expect_request("INVITE", WAIT).await;
    assert_eq!(
        (again.call_id.as_str(), again.cseq),
        (first.call_id.as_str(), 2)
    );
    let proof = parse_digest(again.header("Proxy-Authorization").unwrap(), "INVITE").unwrap();
    assert_eq!(
        (proof.username.as_str(), proof.nonce.as_str()),
        ("acme-7", nonce)
    );
    assert!(
        verify(&ha1("acme-7", "carrier.example", "s3cret pw"), &proof),
        "the carrier accepts the digest"
    );
    carrier
        .send(
            from,
            &carrier.response(&again, 200, "OK", "c2", Some(&carrier.sdp("sendrecv"))),
        )
        .await;
    let (ack, _) = carrier.expect_request("ACK", WAIT).await;
    assert_eq!(ack.cseq, 2, "the 2xx's ACK has the INVITE's CSeq");
    let ok = caller.expect_status(&[200], WAIT).await;
    Phone::update_leg(&mut leg, &ok);
    caller.send(sip, &caller.ack(&leg, leg.cseq)).await;

    // The caller hangs up: the carrier's BYE continues the dialog's CSeq.
    caller
        .send(sip, &caller.request(&mut leg, "BYE", None))
        .await;
    let (bye, from) = carrier.expect_request("BYE", WAIT).await;
    assert_eq!(
        (bye.call_id.as_str(), bye.cseq),
        (first.call_id.as_str(), 3)
    );
    // The carrier challenges the BYE too, and gets the credentials for it once more.
    carrier
        .send(
            from,
            &with_header(
                carrier.response(&bye, 401, "Unauthorized", "c2", None),
                "WWW-Authenticate: Digest realm=\"carrier.example\", nonce=\"bye-nonce\", algorithm=MD5",
            ),
        )
        .await;
    let (bye2, from) = carrier.expect_request("BYE", WAIT).await;
    assert_eq!(
        (bye2.call_id.as_str(), bye2.cseq),
        (first.call_id.as_str(), 4)
    );
    let proof = parse_digest(bye2.header("Authorization").unwrap(), "BYE").unwrap();
    assert!(verify(
        &ha1("acme-7", "carrier.example", "s3cret pw"),
        &proof
    ));
    carrier
        .send(from, &carrier.response(&bye2, 200, "OK", "c2", None))
        .await;
    caller.expect_status(&[200], WAIT).await;
}

/// A carrier that wants the caller asserted (RFC 3325) and numbers in E.164: a trusted
/// PBX's asserted caller who asked for privacy reaches it as `anonymous` in From with the
/// number in P-Asserted-Identity and `Privacy: id`; a member's softphone that puts a
/// P-Asserted-Identity of its own is not believed (the trunk's default number is
/// presented). Records keep what was dialled and what was sent. Real UDP.
#[tokio::test]
async fn the_caller_is_presented_as_the_carrier_wants_and_only_trusted_peers_assert_it() {
    use freecall::routing::CallerIdMode;
    let carrier = Phone::bind("carrier").await;
    let tariff = "[[tariffs]]\naccount = \"mileage\"\ndestination = \"landline\"\nper_minute = 10";
    let mut cfg = config(&[carrier.addr], tariff, "", "127.0.0.1");
    cfg.trunks[0].caller_id = CallerIdMode::Pai;
    cfg.trunks[0].caller_format = freecall::numbers::NumberFormat::E164;
    cfg.trunks[0].number_format = freecall::numbers::NumberFormat::E164;
    cfg.trunks[0].default_caller = "02-1588-0000".into();
    let store = common::stores::open(&common::stores::sqlite_url());
    store
        .create_member(
            &freecall::store::shop::NewMember {
                login: "minji".into(),
                password_hash: freecall::auth::hash_password("pw").unwrap(),
                name: "Kim Minji".into(),
                address: String::new(),
                job: String::new(),
                phone: "01099998888".into(),
                email: String::new(),
                sip_ha1: ha1("minji", "freecall", "pw"),
            },
            10_000,
        )
        .unwrap();
    let switch = common::start_billed(&cfg, store.clone()).await;
    let sip = switch.sip_addr;
    let busy = |m: &freecall::sip::Message, tag| carrier.response(m, 486, "Busy Here", tag, None);

    // The office PBX (a trusted peer) asserts its user, who withholds the number.
    let pbx = Phone::bind("pbx").await;
    let (invite, leg) = pbx.invite(sip, "0212345678", &pbx.sdp("sendrecv"));
    let invite = with_header(
        with_header(
            invite,
            "P-Asserted-Identity: <sip:+821099998888@pbx.example>",
        ),
        "Privacy: id",
    );
    pbx.send(sip, &invite).await;
    let (got, from) = carrier.expect_request("INVITE", WAIT).await;
    assert_eq!(got.uri_user.as_deref(), Some("+82212345678"));
    assert!(
        got.from
            .starts_with("\"Anonymous\" <sip:anonymous@anonymous.invalid>"),
        "{}",
        got.from
    );
    assert_eq!(
        got.header("P-Asserted-Identity"),
        Some("<sip:+821099998888@127.0.0.1;user=phone>")
    );
    assert_eq!(got.header("Privacy"), Some("id"));
    carrier.send(from, &busy(&got, "c1")).await;
    let resp = pbx.expect_status(&[486], WAIT).await;
    pbx.send(sip, &pbx.ack_failure(&leg, &resp)).await;

    // A member's softphone claims to be someone else: the switch does not believe it.
    let phone = Phone::bind_on("127.0.0.2", "minji").await;
    let sdp = phone.sdp("sendrecv");
    let (invite, mut leg) = phone.invite(sip, "0212345678", &sdp);
    phone.send(sip, &invite).await;
    let challenge = phone.expect_status(&[407], WAIT).await;
    phone.send(sip, &phone.ack_failure(&leg, &challenge)).await;
    let again = phone.invite_with_credentials(&mut leg, &challenge, &sdp, "minji", "pw");
    let again = with_header(
        again,
        "P-Asserted-Identity: <sip:+821011112222@evil.example>",
    );
    phone.send(sip, &again).await;
    let (got, from) = carrier.expect_request("INVITE", WAIT).await;
    assert!(got.from.starts_with("<sip:+82215880000@"), "{}", got.from);
    assert_eq!(
        got.header("P-Asserted-Identity"),
        Some("<sip:+82215880000@127.0.0.1;user=phone>"),
        "the trunk's default number, not the phone's claim"
    );
    assert_eq!(got.header("Privacy"), None);
    carrier.send(from, &busy(&got, "c2")).await;
    let resp = phone.expect_status(&[486], WAIT).await;
    phone.send(sip, &phone.ack_failure(&leg, &resp)).await;

    let mut records = Vec::new();
    for _ in 0..50 {
        records = common::stores::records(&store);
        if records.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let seen: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.caller.as_str(),
                r.callee.as_str(),
                r.sent_caller.as_str(),
                r.sent_callee.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("+821099998888", "0212345678", "anonymous", "+82212345678"),
            ("minji", "0212345678", "+82215880000", "+82212345678"),
        ]
    );
}

/// A carrier that wants registration, over real UDP: the switch registers (answering the
/// challenge), `/healthz` says so, the carrier's call to the registered number comes in
/// and is passed to the office PBX by the dial plan, and stopping the switch un-registers.
#[tokio::test]
async fn a_registering_trunk_is_registered_sends_calls_in_and_is_told_when_the_switch_stops() {
    use freecall::config::{Rank, RouteConfig};
    let carrier = Phone::bind("carrier").await;
    let office = Phone::bind("office").await;
    let mut cfg = config(&[carrier.addr, office.addr], "", "", "127.0.0.9");
    cfg.trunks[0].username = Some("07012345678".into());
    cfg.trunks[0].password = Some(Secret::new("reg pw"));
    cfg.trunks[0].register = true;
    cfg.routes = vec![
        RouteConfig {
            prefix: "070".into(),
            trunks: vec![Rank::One("t1".into())],
            record: false,
        },
        RouteConfig {
            prefix: String::new(),
            trunks: vec![Rank::One("t0".into())],
            record: false,
        },
    ];
    let store = common::stores::open(&common::stores::sqlite_url());
    let switch = common::start_billed(&cfg, store.clone()).await;
    let api = common::serve_api(&cfg, &store, &switch);
    let sip = switch.sip_addr;

    let (reg, from) = carrier.expect_request("REGISTER", WAIT).await;
    assert_eq!(reg.header("Expires"), Some("600"));
    carrier
        .send(
            from,
            &with_header(
                carrier.response(&reg, 401, "Unauthorized", "r", None),
                "WWW-Authenticate: Digest realm=\"carrier.example\", nonce=\"rn\", algorithm=MD5",
            ),
        )
        .await;
    let (reg, from) = carrier.expect_request("REGISTER", WAIT).await;
    let proof = parse_digest(reg.header("Authorization").unwrap(), "REGISTER").unwrap();
    assert!(verify(
        &ha1("07012345678", "carrier.example", "reg pw"),
        &proof
    ));
    carrier
        .send(
            from,
            &with_header(carrier.response(&reg, 200, "OK", "r", None), "Expires: 600"),
        )
        .await;
    let mut health = serde_json::Value::Null;
    for _ in 0..30 {
        health = tokio::task::spawn_blocking(move || {
            common::http::call(api, "GET", "/healthz", None, &[], None).json()
        })
        .await
        .unwrap();
        if health["registrations"]["t0"] == "registered" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(health["registrations"]["t0"], "registered", "{health}");

    // A call for the registered number comes in from the carrier: the office rings.
    let (invite, leg) = carrier.invite(sip, "07012345678", &carrier.sdp("sendrecv"));
    carrier.send(sip, &invite).await;
    let (rung, ofrom) = office.expect_request("INVITE", WAIT).await;
    assert_eq!(rung.uri_user.as_deref(), Some("07012345678"));
    office
        .send(ofrom, &office.response(&rung, 486, "Busy Here", "o", None))
        .await;
    let resp = carrier.expect_status(&[486], WAIT).await;
    carrier.send(sip, &carrier.ack_failure(&leg, &resp)).await;

    // The switch stops: it un-registers, and the carrier's answer is waited for.
    switch.stop(freecall::driver::Stop::Now);
    let (bye, from) = carrier.expect_request("REGISTER", WAIT).await;
    assert_eq!(bye.header("Expires"), Some("0"));
    assert_eq!(bye.call_id, reg.call_id, "the same registration");
    carrier
        .send(from, &carrier.response(&bye, 200, "OK", "r", None))
        .await;
    switch.join().await;
}

/// A carrier that challenges a re-INVITE within the call (a caller putting it on hold):
/// the switch answers with the trunk's credentials once, the dialog's CSeq moves on, the
/// caller gets the carrier's 200, and the ACK and the later BYE carry the right CSeqs.
#[tokio::test]
async fn a_carrier_that_challenges_a_re_invite_gets_the_credentials_and_the_dialog_goes_on() {
    let carrier = Phone::bind("carrier").await;
    let mut cfg = config(&[carrier.addr], "", "", "127.0.0.1");
    cfg.trunks[0].username = Some("acme-7".into());
    cfg.trunks[0].password = Some(Secret::new("s3cret pw"));
    let switch = start(&cfg).await;
    let sip = switch.sip_addr;
    let caller = Phone::bind("caller").await;
    let (invite, mut leg) = caller.invite(sip, "0212345678", &caller.sdp("sendrecv"));
    caller.send(sip, &invite).await;
    let (first, from) = carrier.expect_request("INVITE", WAIT).await;
    carrier
        .send(
            from,
            &carrier.response(&first, 200, "OK", "c1", Some(&carrier.sdp("sendrecv"))),
        )
        .await;
    carrier.expect_request("ACK", WAIT).await;
    let ok = caller.expect_status(&[200], WAIT).await;
    Phone::update_leg(&mut leg, &ok);
    caller.send(sip, &caller.ack(&leg, leg.cseq)).await;

    // Hold: the carrier wants credentials for it.
    let hold = caller.sdp("sendonly");
    caller
        .send(
            sip,
            &caller.request(&mut leg, "INVITE", Some(("application/sdp", &hold))),
        )
        .await;
    let (reinvite, from) = carrier.expect_request("INVITE", WAIT).await;
    assert_eq!(
        (reinvite.call_id.as_str(), reinvite.cseq),
        (first.call_id.as_str(), 2)
    );
    carrier
        .send(
            from,
            &with_header(
                carrier.response(&reinvite, 407, "Proxy Authentication Required", "c1", None),
                "Proxy-Authenticate: Digest realm=\"carrier.example\", nonce=\"hold-nonce\", qop=\"auth\"",
            ),
        )
        .await;
    let (again, from) = carrier.expect_request("INVITE", WAIT).await;
    assert_eq!(again.cseq, 3, "the dialog's next CSeq");
    let proof = parse_digest(again.header("Proxy-Authorization").unwrap(), "INVITE").unwrap();
    assert!(verify(
        &ha1("acme-7", "carrier.example", "s3cret pw"),
        &proof
    ));
    carrier
        .send(
            from,
            &carrier.response(&again, 200, "OK", "c1", Some(&carrier.sdp("recvonly"))),
        )
        .await;
    let held = caller.expect_status(&[200], WAIT).await;
    assert_eq!(
        held.cseq, leg.cseq,
        "the caller's own re-INVITE is answered"
    );
    caller.send(sip, &caller.ack(&leg, leg.cseq)).await;
    let (ack, _) = carrier.expect_request("ACK", WAIT).await;
    assert_eq!(ack.cseq, 3, "the ACK of the re-INVITE that was accepted");

    caller
        .send(sip, &caller.request(&mut leg, "BYE", None))
        .await;
    let (bye, from) = carrier.expect_request("BYE", WAIT).await;
    assert_eq!(bye.cseq, 4, "the dialog goes on from there");
    carrier
        .send(from, &carrier.response(&bye, 200, "OK", "c1", None))
        .await;
    caller.expect_status(&[200], WAIT).await;
}
