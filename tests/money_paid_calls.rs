//! A member's paid call, end to end over real sockets, on SQLite and on PostgreSQL: the
//! member's phone is challenged and authenticates with SIP digest, the whole allowance is
//! held while the call lasts, the caller hears a warning before the time runs out, the
//! call is cut at the limit with BYE on both legs, and it is settled with exactly one debit
//! for the seconds talked. A trusted proxy charges a card issuer's guild by header, one
//! call of the card's quota at a time. A database that goes away during a call loses
//! nothing: the call ends normally and is settled once the database is back.

mod common;

use common::billed::{WAIT, call_as, member, money_config, run, trunk_answers};
use freecall::clock::Clock;
use freecall::store::Store;
use freecall::store::cards::{NewCard, NewIssuer};
use freecall_testkit::{Leg, Phone};
use std::net::SocketAddr;
use std::time::Duration;

/// A member's call, answered: INVITE, 407, ACK, INVITE with credentials, the trunk
/// answers, 200, ACK. The caller's leg, the trunk's INVITE, and where that came from.
async fn answered_call(
    caller: &Phone,
    trunk: &Phone,
    sip: SocketAddr,
    number: &str,
    user: &str,
    password: &str,
) -> (Leg, freecall::sip::Message, SocketAddr) {
    let sdp = caller.sdp("sendrecv");
    let (invite, mut leg) = caller.invite(sip, number, &sdp);
    caller.send(sip, &invite).await;
    let challenge = caller.expect_status(&[407], WAIT).await;
    caller
        .send(sip, &caller.ack_failure(&leg, &challenge))
        .await;
    let again = caller.invite_with_credentials(&mut leg, &challenge, &sdp, user, password);
    caller.send(sip, &again).await;
    let (b_invite, trunk_from) = trunk_answers(trunk).await;
    let ok = caller.expect_status(&[200], WAIT).await;
    Phone::update_leg(&mut leg, &ok);
    caller.send(sip, &caller.ack(&leg, leg.cseq)).await;
    (leg, b_invite, trunk_from)
}

on_both_stores!(
    a_member_calls_until_the_mileage_runs_out,
    |store: Store, _url| run(async move {
        // 300 points at 100 a second: the call is cut after three seconds.
        let account = member(&store, "minji", "s3cret", 300);
        let trunk = Phone::bind("pstn").await;
        let caller = Phone::bind_on("127.0.0.2", "minji").await;
        let cfg = money_config(trunk.addr);
        let switch = common::start_billed(&cfg, store.clone()).await;
        let sip = switch.sip_addr;

        let (_leg, b_invite, _) =
            answered_call(&caller, &trunk, sip, "01012345678", "minji", "s3cret").await;
        assert!(
            b_invite.header("Proxy-Authorization").is_none(),
            "credentials never reach the trunk"
        );
        trunk.expect_request("ACK", WAIT).await;
        let a = store.account(account).unwrap();
        assert_eq!(
            (a.balance, a.reserved),
            (300, 300),
            "the whole balance is held while the call lasts"
        );

        // At the limit both legs get a BYE saying why.
        let (a_bye, a_from) = caller.expect_request("BYE", Duration::from_secs(6)).await;
        caller
            .send(a_from, &caller.response(&a_bye, 200, "OK", "x", None))
            .await;
        let (b_bye, b_from) = trunk.expect_request("BYE", WAIT).await;
        trunk
            .send(b_from, &trunk.response(&b_bye, 200, "OK", "x", None))
            .await;
        assert!(
            a_bye
                .header("Reason")
                .unwrap()
                .contains("mileage exhausted"),
            "{:?}",
            a_bye.header("Reason")
        );
        assert!(
            b_bye
                .header("Reason")
                .unwrap()
                .contains("mileage exhausted")
        );

        // Settlement: exactly one debit, of exactly the billed three seconds.
        let mut settled = false;
        for _ in 0..50 {
            if store.open_reservations().unwrap() == 0 {
                settled = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(settled, "the call was settled");
        let a = store.account(account).unwrap();
        assert_eq!((a.balance, a.reserved), (0, 0));
        let debits: Vec<_> = store
            .ledger(account, 0, 100)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "debit")
            .collect();
        assert_eq!(debits.len(), 1, "{debits:?}");
        assert_eq!(debits[0].amount, 300);
        assert!(store.audit().unwrap().is_empty());

        // No mileage left: the next call is refused before anything rings.
        let (refused, leg) = call_as(&caller, sip, "01012345678", "minji", "s3cret").await;
        assert_eq!(refused.status(), Some(402));
        assert!(
            refused
                .header("Reason")
                .unwrap()
                .contains("mileage exhausted")
        );
        caller.send(sip, &caller.ack_failure(&leg, &refused)).await;
        trunk.expect_silence(Duration::from_millis(300)).await;
        switch.stop(freecall::driver::Stop::Now);
        switch.join().await;

        // Two records: the call cut at the limit, and the refusal.
        let records = common::stores::records(&store);
        assert_eq!(records.len(), 2, "{records:?}");
        let (paid, refused) = (&records[0], &records[1]);
        assert_eq!(paid.callee, "01012345678");
        assert_eq!(paid.caller, "minji");
        assert_eq!(paid.account_id, Some(account));
        assert_eq!(paid.destination, "mobile");
        assert_eq!((paid.billed_secs, paid.cost), (3, 300));
        assert_eq!((paid.code, paid.ended_by.as_str()), (200, "switch"));
        assert_eq!(paid.cause, "mileage exhausted");
        assert_eq!(paid.trunk.as_deref(), Some("pstn"));
        assert_eq!(
            (paid.codec_caller.as_str(), paid.codec_callee.as_str()),
            ("PCMU", "PCMU")
        );
        assert_eq!((refused.code, refused.cost), (402, 0));
        assert!(refused.trunks.is_empty() && refused.answered_ms.is_none());
    })
);

on_both_stores!(
    the_caller_hangs_up_and_is_billed_for_the_time_talked,
    |store: Store, _url| run(async move {
        let clock = Clock::adjustable();
        let store = store.with_clock(clock.clone());
        let account = member(&store, "jisoo", "pw", 100_000);
        let trunk = Phone::bind("pstn").await;
        let caller = Phone::bind_on("127.0.0.2", "jisoo").await;
        let cfg = money_config(trunk.addr);
        let switch = common::start_billed(&cfg, store.clone()).await;
        let sip = switch.sip_addr;
        let (mut leg, _, trunk_from) =
            answered_call(&caller, &trunk, sip, "010-1234-5678", "jisoo", "pw").await;
        trunk.expect_request("ACK", WAIT).await;
        let max = 600; // max_call_secs caps the hold at ten minutes: 60 000 points
        assert_eq!(store.account(account).unwrap().reserved, max * 100);
        // Half a minute of talk, on the switch's clock (once it has read the ACK).
        caller.settled(sip).await;
        clock.advance(Duration::from_millis(29_500));
        caller
            .send(sip, &caller.request(&mut leg, "BYE", None))
            .await;
        caller.expect_status(&[200], WAIT).await;
        let (bye, _) = trunk.expect_request("BYE", WAIT).await;
        trunk
            .send(trunk_from, &trunk.response(&bye, 200, "OK", "tk", None))
            .await;
        for _ in 0..50 {
            if store.open_reservations().unwrap() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let entries = store.ledger(account, 0, 100).unwrap();
        let debits: Vec<_> = entries.iter().filter(|e| e.kind == "debit").collect();
        assert_eq!(debits.len(), 1);
        // 29.5 s and the moments the messages took: 30 started seconds at 100 points.
        assert_eq!(debits[0].amount, 3_000);
        let a = store.account(account).unwrap();
        assert_eq!((a.balance + debits[0].amount, a.reserved), (100_000, 0));
        assert!(store.audit().unwrap().is_empty());
        switch.stop(freecall::driver::Stop::Now);
        switch.join().await;
    })
);

on_both_stores!(
    a_proxy_charges_a_card_and_its_quota_runs_out,
    |store: Store, _url| run(async move {
        let clock = Clock::adjustable();
        let store = store.with_clock(clock.clone());
        let issuer = store
            .create_issuer(
                &NewIssuer {
                    login: "acme".into(),
                    password_hash: "x".into(),
                    name: "Acme".into(),
                    company: "Acme Co".into(),
                },
                5_000,
            )
            .unwrap();
        let card = store
            .create_card(&NewCard {
                issuer_id: issuer.id,
                language: "ko".into(),
                name: "Kim".into(),
                title: "CEO".into(),
                company: "Acme".into(),
                text: "".into(),
                image_url: "".into(),
                video_url: "".into(),
                design: "".into(),
                phones: "[]".into(),
                quota: 1,
                callback_countries: String::new(),
            })
            .unwrap();
        let trunk = Phone::bind("pstn").await;
        let proxy = Phone::bind_on("127.0.0.3", "proxy").await;
        let cfg = money_config(trunk.addr);
        let switch = common::start_billed(&cfg, store.clone()).await;
        let sip = switch.sip_addr;
        let with_charge = |invite: Vec<u8>, value: &str| -> Vec<u8> {
            let text = String::from_utf8(invite).unwrap();
            text.replacen(
                "Max-Forwards: 70\r\n",
                &format!("Max-Forwards: 70\r\nX-Freecall-Charge: {value}\r\n"),
                1,
            )
            .into_bytes()
        };
        // Without the header the proxy's call is refused.
        let (invite, leg) = proxy.invite(sip, "0212345678", &proxy.sdp("sendrecv"));
        proxy.send(sip, &invite).await;
        let resp = proxy.expect_status(&[403], WAIT).await;
        proxy.send(sip, &proxy.ack_failure(&leg, &resp)).await;
        // With it: the issuer's guild pays, one call of quota.
        let (invite, mut leg) = proxy.invite(sip, "0212345678", &proxy.sdp("sendrecv"));
        proxy
            .send(sip, &with_charge(invite, &format!("card={}", card.id)))
            .await;
        let (_, trunk_from) = trunk_answers(&trunk).await;
        let ok = proxy.expect_status(&[200], WAIT).await;
        Phone::update_leg(&mut leg, &ok);
        proxy.send(sip, &proxy.ack(&leg, 1)).await;
        assert_eq!(store.card(card.id).unwrap().quota_reserved, 1);
        // The quota is held: a second call is refused while the first goes on.
        let (invite2, leg2) = proxy.invite(sip, "0212345678", &proxy.sdp("sendrecv"));
        proxy
            .send(sip, &with_charge(invite2, &format!("card={}", card.id)))
            .await;
        let resp = proxy.expect_status(&[402], WAIT).await;
        assert!(
            resp.header("Reason")
                .unwrap()
                .contains("call quota used up")
        );
        proxy.send(sip, &proxy.ack_failure(&leg2, &resp)).await;
        proxy.settled(sip).await;
        clock.advance(Duration::from_millis(29_500));
        proxy.send(sip, &proxy.request(&mut leg, "BYE", None)).await;
        proxy.expect_status(&[200], WAIT).await;
        let (bye, _) = trunk.expect_request("BYE", WAIT).await;
        trunk
            .send(trunk_from, &trunk.response(&bye, 200, "OK", "tk", None))
            .await;
        for _ in 0..50 {
            if store.open_reservations().unwrap() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let c = store.card(card.id).unwrap();
        assert_eq!((c.quota_used, c.quota_reserved, c.quota_left()), (1, 0, 0));
        // 30 started seconds of a landline at 60 a minute.
        let a = store.account(issuer.account_id).unwrap();
        assert_eq!((a.balance, a.reserved), (4_970, 0));
        assert!(store.audit().unwrap().is_empty());
        switch.stop(freecall::driver::Stop::Now);
        switch.join().await;
    })
);

/// The database goes away during an answered call: the call goes on and ends normally,
/// new calls are refused with a clear reason, and when the database is back the ended
/// call is settled — exactly once. Nothing is lost.
#[test]
fn a_database_that_goes_away_loses_nothing() {
    let cluster = freecall_testkit::pg::PgCluster::start();
    let url = cluster.create_db("gone");
    let clock = Clock::adjustable();
    let store = common::stores::open(&url).with_clock(clock.clone());
    let account = member(&store, "sora", "pw", 100_000);
    run(async move {
        let trunk = Phone::bind("pstn").await;
        let caller = Phone::bind_on("127.0.0.2", "sora").await;
        let cfg = money_config(trunk.addr);
        let switch = common::start_billed(&cfg, store.clone()).await;
        let sip = switch.sip_addr;
        let (mut leg, _, trunk_from) =
            answered_call(&caller, &trunk, sip, "01012345678", "sora", "pw").await;
        caller.settled(sip).await;
        clock.advance(Duration::from_millis(19_500));

        cluster.stop();
        // The call in progress is not affected: it ends normally.
        caller
            .send(sip, &caller.request(&mut leg, "BYE", None))
            .await;
        caller.expect_status(&[200], WAIT).await;
        let (bye, _) = trunk.expect_request("BYE", WAIT).await;
        trunk
            .send(trunk_from, &trunk.response(&bye, 200, "OK", "tk", None))
            .await;
        // A new call cannot be paid for: refused, saying why.
        let (resp, leg2) = call_as(&caller, sip, "01012345678", "sora", "pw").await;
        assert_eq!(resp.status(), Some(503));
        assert!(
            resp.header("Reason")
                .unwrap()
                .contains("billing unavailable")
        );
        caller.send(sip, &caller.ack_failure(&leg2, &resp)).await;
        // A load balancer probing the node is told to send calls elsewhere.
        let probe = caller.options(sip).await;
        assert_eq!(probe.status(), Some(503));
        assert!(
            probe
                .header("Reason")
                .unwrap()
                .contains("database unavailable")
        );

        cluster.start_server();
        let mut settled = false;
        for _ in 0..300 {
            if store.open_reservations().map(|n| n == 0).unwrap_or(false) {
                settled = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(settled, "the call was settled once the database was back");
        // From its next heartbeat the node is offered calls again.
        let mut taking = false;
        for _ in 0..100 {
            if caller.options(sip).await.status() == Some(200) {
                taking = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(taking, "OPTIONS answered 200 again");
        let debits: Vec<_> = store
            .ledger(account, 0, 100)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "debit")
            .collect();
        assert_eq!(debits.len(), 1);
        assert_eq!(
            debits[0].amount, 2_000,
            "20 started seconds at 100 a second"
        );
        assert!(store.audit().unwrap().is_empty());
        switch.stop(freecall::driver::Stop::Now);
        switch.join().await;
    });
}

/// A paid call's caller is told before its time runs out.
#[test]
fn a_caller_hears_the_warning_before_the_limit() {
    run(async {
        let store = common::stores::open(&common::stores::sqlite_url());
        // 500 points at 100 a second: a five-second call, warned two seconds before.
        member(&store, "yuna", "pw-yuna", 500);
        let trunk = Phone::bind("pstn").await;
        let caller = Phone::bind_on("127.0.0.2", "yuna").await;
        let mut cfg = money_config(trunk.addr);
        cfg.media.prompts_dir = format!("{}/prompts", env!("CARGO_MANIFEST_DIR"));
        cfg.media.warning_secs = 2;
        let switch = common::start_billed(&cfg, store.clone()).await;
        let sip = switch.sip_addr;
        let (_leg, _, _) =
            answered_call(&caller, &trunk, sip, "01012345678", "yuna", "pw-yuna").await;
        #[allow(clippy::disallowed_methods)]
        let answered = std::time::Instant::now();
        // The trunk sends no audio: whatever reaches the caller is the switch's.
        let first = caller.recv_rtp(1, Duration::from_secs(4)).await;
        #[allow(clippy::disallowed_methods)]
        let at = answered.elapsed();
        assert_eq!(first.len(), 1, "the warning is played");
        assert!(
            at >= Duration::from_millis(2500) && at < Duration::from_millis(4000),
            "three seconds into a five-second call, not {at:?}"
        );
        let rest = caller.recv_rtp(200, Duration::from_millis(2500)).await;
        let mut dec =
            freecall::media::codec::Decoder::new(freecall::media::codec::Codec::Pcmu).unwrap();
        let mut pcm = Vec::new();
        let mut frame = [0i16; 960];
        for (p, _) in first.iter().chain(&rest) {
            let n = dec.decode(&p[12..], &mut frame).unwrap();
            pcm.extend_from_slice(&frame[..n]);
        }
        // one-minute-left.wav lasts 1.8 s.
        assert!(
            (80..=95).contains(&(first.len() + rest.len())),
            "{} packets",
            rest.len() + 1
        );
        let level = freecall_testkit::audio::rms_dbfs(&pcm);
        assert!(level > -35.0, "the warning is heard: {level:.1} dBFS");
        let (bye, from) = caller.expect_request("BYE", Duration::from_secs(3)).await;
        caller
            .send(from, &caller.response(&bye, 200, "OK", "x", None))
            .await;
        switch.stop(freecall::driver::Stop::Now);
        switch.join().await;
    })
}
