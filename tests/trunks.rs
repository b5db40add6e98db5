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
