//! The ledger's promises with the real daemon: `kill -9` during an answered call, then a
//! restart, leaves exactly one debit and a balance that adds up (SQLite and PostgreSQL);
//! two daemons sharing one PostgreSQL, racing on one account, never overdraw it.

mod common;

use common::daemon::{
    Daemon, digest_call, free_port, node_config, sip_member, temp_dir, wait_ready,
};
use freecall::store::Store;
use freecall::store::shop::NewMember;
use freecall_testkit::Phone;
use std::net::SocketAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

fn kill_9_then_restart(store: Store, url: String) {
    let account = sip_member(&store, "crash", 100_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = temp_dir(&format!("crash-{}", store.backend()));
        let trunk = Phone::bind("pstn").await;
        let trunk_addr = trunk.addr;
        let _answering = freecall_testkit::auto_trunk(trunk);
        let port = free_port();
        let media = if store.backend() == "sqlite" {
            40000
        } else {
            40400
        };
        let conf = node_config(&dir, "node", port, media, trunk_addr, &url, "crashy", "");
        let sip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut daemon = Daemon::spawn(
            &conf,
            &[
                ("FREECALL__DATABASE__URL", url.clone()),
                ("FREECALL__BILLING__NODE_ID", "crashy".into()),
            ],
        );
        tokio::task::spawn_blocking(move || wait_ready(sip))
            .await
            .unwrap();

        // A member's digest call, answered.
        let caller = Phone::bind_on("127.0.0.2", "crash").await;
        let _leg = digest_call(&caller, sip, "crash", WAIT).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(
            store.open_reservations().unwrap(),
            1,
            "the call holds its reservation"
        );

        // kill -9: no settlement, no goodbye.
        daemon.signal("-KILL");
        let _ = tokio::task::spawn_blocking(move || {
            daemon.wait_exit(Duration::from_secs(5));
        })
        .await;
        assert_eq!(
            store.open_reservations().unwrap(),
            1,
            "nothing settled the call"
        );
        assert!(
            store
                .ledger(account, 0, 100)
                .unwrap()
                .iter()
                .all(|e| e.kind != "debit")
        );

        // Restart: the open call is billed from its answer up to the last heartbeat.
        let mut daemon = Daemon::spawn(
            &conf,
            &[
                ("FREECALL__DATABASE__URL", url.clone()),
                ("FREECALL__BILLING__NODE_ID", "crashy".into()),
            ],
        );
        tokio::task::spawn_blocking(move || wait_ready(sip))
            .await
            .unwrap();
        assert_eq!(
            store.open_reservations().unwrap(),
            0,
            "recovered at start-up"
        );
        let entries = store.ledger(account, 0, 100).unwrap();
        let debits: Vec<_> = entries.iter().filter(|e| e.kind == "debit").collect();
        assert_eq!(debits.len(), 1, "{entries:?}");
        // About 2.5 s talked, heartbeats every second: 1 to 3 seconds billed, 1 point each.
        assert!((1..=3).contains(&debits[0].amount), "{}", debits[0].amount);
        let a = store.account(account).unwrap();
        assert_eq!((a.balance + debits[0].amount, a.reserved), (100_000, 0));
        assert!(store.audit().unwrap().is_empty());
        // The call's record was rebuilt from its reservation: who paid, what it cost, why
        // it ended.
        let records = common::stores::records(&store);
        assert_eq!(records.len(), 1, "{records:?}");
        let r = &records[0];
        assert_eq!(r.account_id, Some(account));
        assert_eq!(r.cost, debits[0].amount);
        assert!(r.answered_ms.is_some() && r.ended_ms >= r.answered_ms.unwrap());
        assert!(r.cause.contains("switch restarted"), "{}", r.cause);
        daemon.signal("-TERM");
        tokio::task::spawn_blocking(move || daemon.wait_exit(Duration::from_secs(10)))
            .await
            .unwrap();
        // A second restart settles nothing again.
        assert_eq!(
            store
                .ledger(account, 0, 100)
                .unwrap()
                .iter()
                .filter(|e| e.kind == "debit")
                .count(),
            1
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// A call-back connected (the issuer accepted with an INFO digit, the visitor answered),
/// then `kill -9`: at restart each answered leg is billed up to the last heartbeat, once,
/// with one record for the request and one call of the card's quota.
fn kill_9_mid_call_back(store: Store, url: String) {
    let (card, _) = common::cards::issue(
        &store,
        "crashcard",
        100_000,
        5,
        r#"[{"kind":"mobile","number":"010-7777-8888"}]"#,
        "",
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = temp_dir(&format!("crash-cb-{}", store.backend()));
        let pbx = Phone::bind("pbx").await;
        let port = free_port();
        let api_port = free_port();
        let media = if store.backend() == "sqlite" { 40800 } else { 41200 };
        let conf = node_config(&dir, "cb", port, media, pbx.addr, &url, "crashy-cb", "");
        let text = std::fs::read_to_string(&conf).unwrap() + "[[tariffs]]\naccount = \"guild\"\ndestination = \"mobile\"\nper_minute = 60\nincrement = \"1/1\"\n\
[[tariffs]]\naccount = \"guild\"\ndestination = \"landline\"\nper_minute = 30\nincrement = \"1/1\"\n";
        std::fs::write(&conf, text).unwrap();
        let sip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let api: SocketAddr = format!("127.0.0.1:{api_port}").parse().unwrap();
        let env = [
            ("FREECALL__DATABASE__URL", url.clone()),
            ("FREECALL__BILLING__NODE_ID", "crashy-cb".to_string()),
            ("FREECALL__API__LISTEN", api.to_string()),
        ];
        let mut daemon = Daemon::spawn(&conf, &env);
        tokio::task::spawn_blocking(move || {
            wait_ready(sip);
            common::daemon::wait_api(api);
        })
        .await
        .unwrap();
        let path = format!("/v1/cards/{card}/callbacks");
        let r = tokio::task::spawn_blocking(move || {
            common::http::call(api, "POST", &path, None, &[], Some(serde_json::json!({"number": "02-556-1234"})))
        })
        .await
        .unwrap();
        assert_eq!(r.status, 202, "{}", r.text());
        let id = r.json()["id"].as_str().unwrap().to_string();
        // The issuer answers and accepts with digit 1 as SIP INFO.
        let (inv, from) = pbx.expect_request("INVITE", WAIT).await;
        assert_eq!(inv.uri_user.as_deref(), Some("01077778888"));
        pbx.send(from, &pbx.response(&inv, 200, "OK", "iss", Some(&pbx.sdp("sendrecv")))).await;
        let mut leg = pbx.leg_from_request(&inv, from, "iss");
        let info = pbx.request(&mut leg, "INFO", Some(("application/dtmf-relay", "Signal=1\r\nDuration=100\r\n")));
        pbx.send(from, &info).await;
        let (visitor, from) = pbx.expect_request("INVITE", WAIT).await;
        assert_eq!(visitor.uri_user.as_deref(), Some("025561234"));
        pbx.send(from, &pbx.response(&visitor, 200, "OK", "vis", Some(&pbx.sdp("sendrecv")))).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(store.open_reservations().unwrap(), 2, "both legs hold their reservation");

        daemon.signal("-KILL");
        let _ = tokio::task::spawn_blocking(move || daemon.wait_exit(Duration::from_secs(5))).await;
        let mut daemon = Daemon::spawn(&conf, &env);
        tokio::task::spawn_blocking(move || wait_ready(sip)).await.unwrap();
        assert_eq!(store.open_reservations().unwrap(), 0, "recovered at start-up");
        let issuer_debits = store.debits_of_call(&format!("{id}/issuer")).unwrap();
        let visitor_debits = store.debits_of_call(&format!("{id}/visitor")).unwrap();
        assert_eq!(issuer_debits.len(), 1, "one debit for the issuer's leg");
        assert_eq!(visitor_debits.len(), 1, "one debit for the visitor's leg");
        // About 2.5 s talked with heartbeats every second: 1 to 4 s at 60 and 30 per minute.
        assert!((1..=4).contains(&issuer_debits[0]), "{issuer_debits:?}");
        assert!((1..=2).contains(&visitor_debits[0]), "{visitor_debits:?}");
        let records = common::stores::records(&store);
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0].call_id, id);
        assert_eq!(records[0].legs.len(), 2);
        assert_eq!(records[0].cost, issuer_debits[0] + visitor_debits[0]);
        assert!(records[0].cause.contains("switch restarted"));
        let c = store.card(card).unwrap();
        assert_eq!((c.quota_used, c.quota_reserved), (1, 0));
        assert!(store.audit().unwrap().is_empty());
        daemon.signal("-TERM");
        tokio::task::spawn_blocking(move || daemon.wait_exit(Duration::from_secs(10))).await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    });
}

on_both_stores!(
    kill_9_mid_call_back_bills_each_answered_leg_once,
    |store: Store, url: String| { kill_9_mid_call_back(store, url) }
);

on_both_stores!(
    kill_9_during_an_answered_call_then_restart_bills_once,
    |store: Store, url: String| kill_9_then_restart(store, url)
);

/// Two nodes on one PostgreSQL, 20 calls at once on an account that pays for three
/// one-minute calls: exactly three are connected, the rest refused, nothing overdrawn.
#[test]
fn two_daemons_on_one_postgres_race_on_one_account() {
    let url = common::stores::pg_url();
    let store = common::stores::open(&url);
    let account = store
        .create_member(
            &NewMember {
                login: "race".into(),
                password_hash: "x".into(),
                name: "Race".into(),
                address: "".into(),
                job: "".into(),
                phone: "".into(),
                email: "".into(),
                sip_ha1: "x".into(),
            },
            180, // three minutes at one point a second
        )
        .unwrap()
        .account_id;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = temp_dir("race");
        let trunk = Phone::bind("pstn").await;
        let trunk_addr = trunk.addr;
        let _answering = freecall_testkit::auto_trunk(trunk);
        let mut nodes = Vec::new();
        for (i, media) in [(0, 41000u16), (1, 41400u16)] {
            let port = free_port();
            let conf = node_config(
                &dir,
                &format!("node{i}"),
                port,
                media,
                trunk_addr,
                &url,
                &format!("node-{i}"),
                "",
            );
            let d = Daemon::spawn(
                &conf,
                &[
                    ("FREECALL__DATABASE__URL", url.clone()),
                    ("FREECALL__BILLING__NODE_ID", format!("node-{i}")),
                ],
            );
            let sip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            tokio::task::spawn_blocking(move || wait_ready(sip))
                .await
                .unwrap();
            nodes.push((d, sip));
        }
        let sips: Vec<SocketAddr> = nodes.iter().map(|(_, s)| *s).collect();
        let mut calls = Vec::new();
        for i in 0..20 {
            let sip = sips[i % 2];
            calls.push(tokio::spawn(async move {
                let proxy = Phone::bind_on("127.0.0.3", &format!("p{i}")).await;
                let (invite, leg) = proxy.invite(sip, "01012345678", &proxy.sdp("sendrecv"));
                let text = String::from_utf8(invite).unwrap().replacen(
                    "Max-Forwards: 70\r\n",
                    &format!("Max-Forwards: 70\r\nX-Freecall-Charge: account={account}\r\n"),
                    1,
                );
                proxy.send(sip, text.as_bytes()).await;
                let resp = proxy
                    .expect_status(&[200, 402, 503], Duration::from_secs(10))
                    .await;
                (proxy, leg, resp, sip)
            }));
        }
        let mut answered = Vec::new();
        let mut refused = 0;
        for c in calls {
            let (proxy, mut leg, resp, sip) = c.await.unwrap();
            match resp.status() {
                Some(200) => {
                    Phone::update_leg(&mut leg, &resp);
                    proxy.send(sip, &proxy.ack(&leg, 1)).await;
                    answered.push((proxy, leg, sip));
                }
                Some(402) => {
                    assert!(resp.header("Reason").unwrap().contains("mileage exhausted"));
                    proxy.send(sip, &proxy.ack_failure(&leg, &resp)).await;
                    refused += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            answered.len(),
            3,
            "three one-minute calls fit in 180 points"
        );
        assert_eq!(refused, 17);
        let a = store.account(account).unwrap();
        assert_eq!((a.balance, a.reserved), (180, 180));
        tokio::time::sleep(Duration::from_millis(1200)).await;
        for (proxy, mut leg, sip) in answered {
            proxy.send(sip, &proxy.request(&mut leg, "BYE", None)).await;
            proxy.expect_status(&[200], WAIT).await;
        }
        for _ in 0..50 {
            if store.open_reservations().unwrap() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(store.open_reservations().unwrap(), 0);
        let a = store.account(account).unwrap();
        assert!(a.balance >= 0 && a.reserved == 0, "{a:?}");
        let debits: Vec<_> = store
            .ledger(account, 0, 1000)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "debit")
            .collect();
        assert_eq!(debits.len(), 3);
        assert_eq!(
            a.balance + debits.iter().map(|d| d.amount).sum::<i64>(),
            180
        );
        assert!(store.audit().unwrap().is_empty());
        for (mut d, _) in nodes {
            d.signal("-TERM");
            tokio::task::spawn_blocking(move || d.wait_exit(Duration::from_secs(10)))
                .await
                .unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// A second switch started with a node id that is in use refuses to start (it would
/// settle the running switch's live calls as if they had been left open by a crash).
#[test]
fn a_node_id_in_use_is_refused() {
    let dir = temp_dir("nodelock");
    let url = dir.join("freecall.db").display().to_string();
    let trunk: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let (p1, p2) = (free_port(), free_port());
    let c1 = node_config(&dir, "a", p1, 42000, trunk, &url, "same", "");
    let c2 = node_config(&dir, "b", p2, 42400, trunk, &url, "same", "");
    let env = [
        ("FREECALL__DATABASE__URL", url.clone()),
        ("FREECALL__BILLING__NODE_ID", "same".to_string()),
    ];
    let mut first = Daemon::spawn(&c1, &env);
    wait_ready(format!("127.0.0.1:{p1}").parse().unwrap());
    let mut second = Daemon::spawn(&c2, &env);
    let code = second.wait_exit(Duration::from_secs(10));
    assert!(
        matches!(code, Some(c) if c != 0),
        "the second switch must not start: {code:?}"
    );
    // The first one is unaffected.
    wait_ready(format!("127.0.0.1:{p1}").parse().unwrap());
    first.signal("-TERM");
    assert_eq!(first.wait_exit(Duration::from_secs(10)), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A booked call-back fires, the issuer's phone is ringing, and the switch is killed with
/// `kill -9`: after the restart the booking is `interrupted` and nobody is dialled again
/// (the INVITE may have rung someone), while its money is released by recovery.
#[test]
fn kill_9_while_a_booking_is_dialling_never_dials_it_again() {
    let url = common::stores::sqlite_url();
    let store = common::stores::open(&url);
    let (card, _) = common::cards::issue(
        &store,
        "bookedcard",
        100_000,
        5,
        r#"[{"kind":"mobile","number":"010-7777-9999"}]"#,
        "",
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = temp_dir("crash-booking");
        let pbx = Phone::bind("pbx").await;
        let port = free_port();
        let api_port = free_port();
        let conf = node_config(&dir, "bk", port, 41600, pbx.addr, &url, "crashy-bk", "");
        let text = std::fs::read_to_string(&conf).unwrap()
            + "[[tariffs]]\naccount = \"guild\"\ndestination = \"mobile\"\nper_minute = 60\nincrement = \"1/1\"\n\
[[tariffs]]\naccount = \"guild\"\ndestination = \"landline\"\nper_minute = 30\nincrement = \"1/1\"\n";
        std::fs::write(&conf, text).unwrap();
        let sip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let api: SocketAddr = format!("127.0.0.1:{api_port}").parse().unwrap();
        let env = [
            ("FREECALL__DATABASE__URL", url.clone()),
            ("FREECALL__BILLING__NODE_ID", "crashy-bk".to_string()),
            ("FREECALL__API__LISTEN", api.to_string()),
        ];
        let mut daemon = Daemon::spawn(&conf, &env);
        tokio::task::spawn_blocking(move || {
            wait_ready(sip);
            common::daemon::wait_api(api);
        })
        .await
        .unwrap();
        let due = freecall::clock::Clock::system().unix_ms() + 1500;
        let at = freecall::cdr::stamp(due);
        let at = format!("{}-{}-{}T{}:{}:{}Z", &at[..4], &at[5..7], &at[8..10], &at[11..13], &at[13..15], &at[15..17]);
        let path = format!("/v1/cards/{card}/bookings");
        let r = tokio::task::spawn_blocking(move || {
            common::http::call(api, "POST", &path, None, &[], Some(serde_json::json!({"number": "02-556-1234", "at": at})))
        })
        .await
        .unwrap();
        assert_eq!(r.status, 201, "{}", r.text());
        let token = r.json()["id"].as_str().unwrap().to_string();
        // It fires: the issuer's phone rings (and is left ringing).
        let (inv, from) = pbx.expect_request("INVITE", Duration::from_secs(8)).await;
        assert_eq!(inv.uri_user.as_deref(), Some("01077779999"));
        pbx.send(from, &pbx.response(&inv, 180, "Ringing", "iss", None)).await;
        assert_eq!(store.booking(&token).unwrap().state, "dialling");

        daemon.signal("-KILL");
        let _ = tokio::task::spawn_blocking(move || daemon.wait_exit(Duration::from_secs(5))).await;
        let mut daemon = Daemon::spawn(&conf, &env);
        tokio::task::spawn_blocking(move || wait_ready(sip)).await.unwrap();
        // Nobody is dialled again, however long we wait past the retry time.
        let until = freecall::clock::Clock::system().now() + Duration::from_secs(3);
        while let Some((m, _)) = pbx.recv(until.saturating_duration_since(freecall::clock::Clock::system().now())).await {
            assert!(
                !(m.method().map(|x| x.as_str()) == Some("INVITE") && m.call_id != inv.call_id),
                "a second INVITE after the restart: {}",
                m.call_id
            );
        }
        let b = store.booking(&token).unwrap();
        assert_eq!(b.state, "interrupted", "{b:?}");
        assert_eq!(b.attempts, 1);
        assert_eq!(store.open_reservations().unwrap(), 0, "its money is released");
        assert!(store.audit().unwrap().is_empty());
        daemon.signal("-TERM");
        tokio::task::spawn_blocking(move || daemon.wait_exit(Duration::from_secs(10))).await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    });
}
