//! Callers the switch turns away, over real sockets, on SQLite and on PostgreSQL: every
//! refusal (a wrong password, an unknown member, a premium-rate or untariffed number)
//! carries a Reason the member's phone can show, and with prompts a caller without the
//! mileage hears why before the 402; nothing reaches the trunk and nothing is held.
//! Captured digest credentials cannot be replayed, and someone guessing a member's
//! password is blocked at their address and learns nothing, while the member's own phone
//! still calls.

mod common;

use common::billed::{WAIT, call_as, member, money_config, run, trunk_answers};
use freecall::auth;
use freecall::store::Store;
use freecall_testkit::Phone;
use std::time::Duration;

on_both_stores!(refusals_say_why, |store: Store, _url| run(async move {
    member(&store, "hana", "right", 10_000);
    let trunk = Phone::bind("pstn").await;
    let caller = Phone::bind_on("127.0.0.2", "hana").await;
    let cfg = money_config(trunk.addr);
    let switch = common::start_billed(&cfg, store.clone()).await;
    let sip = switch.sip_addr;

    // A wrong password.
    let (resp, leg) = call_as(&caller, sip, "01012345678", "hana", "wrong").await;
    assert_eq!(resp.status(), Some(403));
    assert!(
        resp.header("Reason")
            .unwrap()
            .contains("authentication failed")
    );
    caller.send(sip, &caller.ack_failure(&leg, &resp)).await;
    // An unknown member.
    let (resp, leg) = call_as(&caller, sip, "01012345678", "nobody", "x").await;
    assert_eq!(resp.status(), Some(403));
    caller.send(sip, &caller.ack_failure(&leg, &resp)).await;
    // Premium rate (060) is refused whoever pays: toll fraud.
    let (resp, leg) = call_as(&caller, sip, "0602345678", "hana", "right").await;
    assert_eq!(resp.status(), Some(403));
    assert!(
        resp.header("Reason")
            .unwrap()
            .contains("destination not allowed")
    );
    caller.send(sip, &caller.ack_failure(&leg, &resp)).await;
    // A landline: no mileage tariff for it in this configuration.
    let (resp, leg) = call_as(&caller, sip, "0212345678", "hana", "right").await;
    assert_eq!(resp.status(), Some(403));
    assert!(
        resp.header("Reason")
            .unwrap()
            .contains("destination not allowed")
    );
    caller.send(sip, &caller.ack_failure(&leg, &resp)).await;
    // Nothing reached the trunk, nothing was held.
    trunk.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(store.open_reservations().unwrap(), 0);
    assert!(store.audit().unwrap().is_empty());
    switch.stop(freecall::driver::Stop::Now);
    switch.join().await;
}));

/// Digest credentials cannot be reused: the same proof again is challenged, and a nonce
/// issued to one address is worthless from another.
#[test]
fn captured_credentials_cannot_be_replayed() {
    let url = common::stores::sqlite_url();
    let store = common::stores::open(&url);
    member(&store, "yuna", "pw", 100_000);
    run(async move {
        let trunk = Phone::bind("pstn").await;
        let caller = Phone::bind_on("127.0.0.2", "yuna").await;
        let thief = Phone::bind_on("127.0.0.4", "thief").await;
        let cfg = money_config(trunk.addr);
        let switch = common::start_billed(&cfg, store.clone()).await;
        let sip = switch.sip_addr;
        let sdp = caller.sdp("sendrecv");
        let (invite, mut leg) = caller.invite(sip, "01012345678", &sdp);
        caller.send(sip, &invite).await;
        let challenge = caller.expect_status(&[407], WAIT).await;
        caller
            .send(sip, &caller.ack_failure(&leg, &challenge))
            .await;
        let good = caller.invite_with_credentials(&mut leg, &challenge, &sdp, "yuna", "pw");
        let credentials = String::from_utf8(good.clone())
            .unwrap()
            .lines()
            .find(|l| l.starts_with("Proxy-Authorization:"))
            .unwrap()
            .to_string();
        caller.send(sip, &good).await;
        trunk_answers(&trunk).await;
        caller.expect_status(&[200], WAIT).await;

        // Replayed from the caller's own address, in a new call to the same number.
        let (again, leg2) = caller.invite(sip, "01012345678", &sdp);
        let again = String::from_utf8(again).unwrap().replacen(
            "Max-Forwards: 70\r\n",
            &format!("Max-Forwards: 70\r\n{credentials}\r\n"),
            1,
        );
        let again = again.replace(&leg2.request_uri, &leg.request_uri);
        caller.send(sip, again.as_bytes()).await;
        let r = caller.expect_status(&[200, 407], WAIT).await;
        assert_eq!(r.status(), Some(407), "a replayed proof is challenged");
        // From another address.
        let (stolen, _) = thief.invite(sip, "01012345678", &sdp);
        let stolen = String::from_utf8(stolen).unwrap().replacen(
            "Max-Forwards: 70\r\n",
            &format!("Max-Forwards: 70\r\n{credentials}\r\n"),
            1,
        );
        thief.send(sip, stolen.as_bytes()).await;
        let r = thief.expect_status(&[200, 407], WAIT).await;
        assert_eq!(
            r.status(),
            Some(407),
            "a nonce is bound to the address it was given to"
        );
        switch.stop(freecall::driver::Stop::Now);
        switch.join().await;
    });
}

/// With prompts, a caller refused for money hears why before the final status.
#[test]
fn a_refused_caller_hears_why_before_the_402() {
    run(async {
        let store = common::stores::open(&common::stores::sqlite_url());
        let account = member(&store, "jisoo", "pw-jisoo", 0);
        let trunk = Phone::bind("pstn").await;
        let caller = Phone::bind_on("127.0.0.2", "jisoo").await;
        let mut cfg = money_config(trunk.addr);
        cfg.media.prompts_dir = format!("{}/prompts", env!("CARGO_MANIFEST_DIR"));
        let switch = common::start_billed(&cfg, store.clone()).await;
        let sip = switch.sip_addr;

        let (early, leg) = call_as(&caller, sip, "01012345678", "jisoo", "pw-jisoo").await;
        assert_eq!(early.status(), Some(183), "early media first");
        assert!(String::from_utf8_lossy(&early.body).contains("PCMU"));
        // mileage-exhausted.wav lasts 5.8 s: 290 packets of 20 ms, then the 402.
        let packets = caller.recv_rtp(400, Duration::from_secs(8)).await;
        let final_status = caller.expect_status(&[402], WAIT).await;
        assert!(
            final_status
                .header("Reason")
                .unwrap()
                .contains("mileage exhausted")
        );
        assert!(
            packets.len() >= 280,
            "{} packets of announcement",
            packets.len()
        );
        let mut dec =
            freecall::media::codec::Decoder::new(freecall::media::codec::Codec::Pcmu).unwrap();
        let mut pcm = Vec::new();
        let mut frame = [0i16; 960];
        for (p, _) in &packets {
            let n = dec.decode(&p[12..], &mut frame).unwrap();
            pcm.extend_from_slice(&frame[..n]);
        }
        let level = freecall_testkit::audio::rms_dbfs(&pcm);
        assert!(level > -35.0, "the announcement is heard: {level:.1} dBFS");
        caller
            .send(sip, &caller.ack_failure(&leg, &final_status))
            .await;
        trunk.expect_silence(Duration::from_millis(300)).await;
        // Nothing was reserved or charged.
        let a = store.account(account).unwrap();
        assert_eq!((a.balance, a.reserved), (0, 0));
        assert!(store.audit().unwrap().is_empty());
        switch.stop(freecall::driver::Stop::Now);
        switch.join().await;
    })
}

/// Password guessing from one address: after five wrong passwords that address gets the
/// wrong password's answer even for the right one (and learns nothing else), the trunk
/// never hears of it, while the member's own phone elsewhere still calls; a REGISTER from
/// the guessing address is challenged again, never accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_blocked_per_address_and_learns_nothing() {
    let store = common::stores::open(&common::stores::sqlite_url());
    member(&store, "minji", "right password", 10_000);
    let trunk = Phone::bind("pstn").await;
    let mut cfg = money_config(trunk.addr);
    cfg.billing.auth_failures_per_address = 5;
    cfg.billing.auth_failures_per_user = 50;
    let switch = common::start_billed(&cfg, store.clone()).await;
    let sip = switch.sip_addr;
    let guesser = Phone::bind_on("127.0.0.2", "guesser").await;

    let mut answers = Vec::new();
    for i in 0..5 {
        let (resp, leg) =
            call_as(&guesser, sip, "01012345678", "minji", &format!("guess {i}")).await;
        answers.push((resp.status(), resp.header("Reason").map(str::to_string)));
        guesser.send(sip, &guesser.ack_failure(&leg, &resp)).await;
    }
    let wrong = answers[0].clone();
    assert_eq!(wrong.0, Some(403));
    assert!(
        wrong
            .1
            .as_deref()
            .unwrap_or("")
            .contains("authentication failed"),
        "{wrong:?}"
    );
    assert!(
        answers.iter().all(|a| *a == wrong),
        "every wrong password answered alike: {answers:?}"
    );

    // Blocked: the right password, and an unknown user, get exactly that answer.
    for (user, password) in [("minji", "right password"), ("nobody", "x")] {
        let (resp, leg) = call_as(&guesser, sip, "01012345678", user, password).await;
        assert_eq!(
            (resp.status(), resp.header("Reason").map(str::to_string)),
            wrong,
            "{user}"
        );
        guesser.send(sip, &guesser.ack_failure(&leg, &resp)).await;
    }
    assert!(
        trunk.recv(Duration::from_millis(300)).await.is_none(),
        "no INVITE reached the trunk"
    );
    // A REGISTER from there is challenged again, however right its password.
    let register = format!(
        "REGISTER sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKguess1\r\nMax-Forwards: 70\r\n\
From: <sip:minji@{sip}>;tag=g1\r\nTo: <sip:minji@{sip}>\r\nCall-ID: guess-reg\r\nCSeq: 1 REGISTER\r\n\
Contact: <sip:minji@{}>\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n",
        guesser.addr, guesser.addr
    );
    guesser.send(sip, register.as_bytes()).await;
    let challenge = guesser.expect_status(&[401], WAIT).await;
    let www = challenge.header("WWW-Authenticate").unwrap().to_string();
    let nonce = www
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let ha1 = auth::ha1("minji", "freecall", "right password");
    let uri = format!("sip:{sip}");
    let ha2 = md5_hex(&format!("REGISTER:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
    let with_auth = register
        .replace("CSeq: 1 REGISTER", "CSeq: 2 REGISTER")
        .replace("branch=z9hG4bKguess1", "branch=z9hG4bKguess2")
        .replace(
            "Content-Length: 0",
            &format!(
                "Authorization: Digest username=\"minji\", realm=\"freecall\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\"\r\nContent-Length: 0"
            ),
        );
    guesser.send(sip, with_auth.as_bytes()).await;
    let again = guesser.expect_status(&[200, 401, 403], WAIT).await;
    assert_eq!(
        again.status(),
        Some(401),
        "blocked: challenged again, not registered"
    );
    assert!(
        store
            .bindings("minji", freecall::clock::Clock::system().unix_ms())
            .unwrap()
            .is_empty()
    );

    // The member's own phone, elsewhere, still calls.
    let own = Phone::bind("minji").await;
    let ((resp, _), (inv, _)) = tokio::join!(
        call_as(&own, sip, "01012345678", "minji", "right password"),
        trunk_answers(&trunk)
    );
    assert_eq!(
        resp.status(),
        Some(200),
        "the member's own phone is connected"
    );
    assert_eq!(inv.uri_user.as_deref(), Some("01012345678"));
    switch.stop(freecall::driver::Stop::Now);
    switch.join().await;
}

fn md5_hex(s: &str) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(s.as_bytes()))
}
