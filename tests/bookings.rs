//! Calls booked for a set time (C11): the store's claims on SQLite and PostgreSQL (two
//! nodes racing for 50 due bookings, leases, a node that stops mid-dial), and the
//! scheduler over real sockets — in virtual time (it is told the time) and in real time
//! (seconds from now) — with money re-checked at fire time, retries for busy, missed
//! bookings, and the REST endpoints to book, find, move and cancel.

mod common;

use common::http;
use common::placed::next_invite_after;
use freecall::config::Config;
use freecall::placing::bookings::Bookings;
use freecall::sip::Message;
use freecall::store::Store;
use freecall::store::bookings::{BookingLimits, NewBooking};
use freecall_testkit::Phone;
use serde_json::json;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

fn new_booking(card: i64, number: &str, due_ms: i64) -> NewBooking {
    NewBooking {
        card_id: Some(card),
        member_id: None,
        number: number.into(),
        due_ms,
        time_zone: "Asia/Seoul".into(),
        max_attempts: 2,
        retry_secs: 60,
        record: false,
    }
}

const NO_LIMITS: BookingLimits = BookingLimits {
    per_owner: 0,
    per_number: 0,
};

on_both_stores!(
    two_nodes_racing_for_fifty_due_bookings_claim_each_exactly_once,
    |store: Store, _url| {
        let phones = r#"[{"kind":"mobile","number":"010-2222-3333","callback":true}]"#;
        let (card, _) = common::cards::issue(&store, "race", 100_000, 100, phones, "");
        let now = freecall::clock::Clock::system().unix_ms();
        let mut serials = Vec::new();
        for i in 0..50 {
            let b = store
                .create_booking(
                    &new_booking(card, &format!("02-556-{:04}", 1000 + i), now - 1000),
                    NO_LIMITS,
                )
                .unwrap();
            serials.push(b.serial);
        }
        let day = freecall::cdr::stamp(now)[..10].replace('-', "");
        assert_eq!(serials[0], format!("R-{day}-0001"));
        assert_eq!(serials[49], format!("R-{day}-0050"));
        let race = |node: &'static str| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                loop {
                    let got = store.claim_due(node, now, now + 60_000, 7).unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    for b in got {
                        assert_eq!(b.state, "claimed");
                        assert_eq!(b.claimed_by.as_deref(), Some(node));
                        mine.push(b.id);
                    }
                }
            })
        };
        let (a, b) = (race("node-a"), race("node-b"));
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        let all: HashSet<i64> = a.iter().chain(b.iter()).copied().collect();
        assert_eq!(a.len() + b.len(), 50, "claimed {} + {}", a.len(), b.len());
        assert_eq!(all.len(), 50, "no booking claimed twice");
        // Only the claimer may dial it.
        for id in &a {
            assert!(!store.start_dialling(*id, "node-b", "fc-x", now).unwrap());
            assert!(
                store
                    .start_dialling(*id, "node-a", &format!("fc-{id}"), now)
                    .unwrap()
            );
        }
        // Dialling bookings are never claimed again, whenever that is.
        assert!(
            store
                .claim_due("node-b", now + 86_400_000, now + 86_460_000, 100)
                .unwrap()
                .len()
                == b.len()
        );
    }
);

on_both_stores!(
    a_lapsed_claim_is_taken_over_but_a_booking_that_may_have_rung_is_never_dialled_again,
    |store: Store, _url| {
        let phones = r#"[{"kind":"mobile","number":"010-2222-3333","callback":true}]"#;
        let (card, _) = common::cards::issue(&store, "lease", 100_000, 100, phones, "");
        let now = freecall::clock::Clock::system().unix_ms();
        let b = store
            .create_booking(&new_booking(card, "02-556-1234", now), NO_LIMITS)
            .unwrap();
        // Node A claims it and stops before dialling: its lease runs out, B takes over.
        assert_eq!(
            store
                .claim_due("node-a", now, now + 1000, 10)
                .unwrap()
                .len(),
            1
        );
        assert!(
            store
                .claim_due("node-b", now + 500, now + 60_000, 10)
                .unwrap()
                .is_empty(),
            "the lease holds"
        );
        let taken = store
            .claim_due("node-b", now + 2000, now + 60_000, 10)
            .unwrap();
        assert_eq!(taken.len(), 1);
        assert!(
            !store
                .start_dialling(b.id, "node-a", "fc-a", now + 2000)
                .unwrap(),
            "A lost it"
        );
        assert!(
            store
                .start_dialling(b.id, "node-b", "fc-b", now + 2000)
                .unwrap()
        );
        // B is killed while dialling: nobody dials it again; B's restart marks it.
        assert!(
            store
                .claim_due("node-a", now + 3_600_000, now + 3_660_000, 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.recover_bookings("node-b").unwrap(), (1, 0));
        let after = store.booking(&b.token).unwrap();
        assert_eq!(after.state, "interrupted");
        assert_eq!(after.attempts, 1);
        assert!(store.next_due_ms().unwrap().is_none());
    }
);

on_both_stores!(
    a_booking_moves_and_cancels_until_it_fires_and_limits_hold,
    |store: Store, _url| {
        let phones = r#"[{"kind":"mobile","number":"010-2222-3333","callback":true}]"#;
        let (card, _) = common::cards::issue(&store, "moves", 100_000, 100, phones, "");
        let now = freecall::clock::Clock::system().unix_ms();
        let limits = BookingLimits {
            per_owner: 3,
            per_number: 2,
        };
        let a = store
            .create_booking(&new_booking(card, "02-556-1234", now + 60_000), limits)
            .unwrap();
        let _b = store
            .create_booking(&new_booking(card, "02-556-1234", now + 90_000), limits)
            .unwrap();
        assert!(
            store
                .create_booking(&new_booking(card, "02-556-1234", now + 99_000), limits)
                .is_err(),
            "per number"
        );
        let c = store
            .create_booking(&new_booking(card, "02-556-9999", now + 120_000), limits)
            .unwrap();
        assert!(
            store
                .create_booking(&new_booking(card, "02-556-8888", now + 120_000), limits)
                .is_err(),
            "per card"
        );
        assert_eq!(store.next_due_ms().unwrap(), Some(now + 60_000));
        let moved = store.move_booking(&a.token, now + 30_000).unwrap();
        assert_eq!(moved.due_ms, now + 30_000);
        assert_eq!(
            store.next_due_ms().unwrap(),
            Some(now + 30_000),
            "the next wake-up follows"
        );
        assert_eq!(store.cancel_booking(&c.token).unwrap().state, "cancelled");
        assert!(store.cancel_booking(&c.token).is_err());
        assert_eq!(
            store
                .claim_due("n", now + 30_000, now + 90_000, 10)
                .unwrap()
                .len(),
            1
        );
        assert!(
            store.move_booking(&a.token, now + 500_000).is_err(),
            "claimed: too late to move"
        );
        assert!(
            store.cancel_booking(&a.token).is_err(),
            "claimed: too late to cancel"
        );
        assert_eq!(
            store
                .booking_by_serial(&a.serial, "02-556-1234")
                .unwrap()
                .id,
            a.id
        );
        assert!(
            store.booking_by_serial(&a.serial, "02-556-0000").is_err(),
            "the serial alone finds nothing"
        );
    }
);

// ---- the scheduler over real sockets ----

fn config(trunk: SocketAddr) -> Config {
    common::placed::config(
        trunk,
        "bk",
        "[callbacks]\nper_address_per_minute = 100\n\
[bookings]\nattempts = 2\nretry_secs = 60\nlate_window_secs = 300\n\
[[tariffs]]\naccount = \"guild\"\ndestination = \"landline\"\nper_minute = 30\nincrement = \"1/1\"\n\
[[tariffs]]\naccount = \"guild\"\ndestination = \"mobile\"\nper_minute = 120\nincrement = \"1/1\"\n",
    )
}

struct Site {
    api: SocketAddr,
    store: Store,
    pbx: Phone,
    bookings: Bookings,
    placing: freecall::placing::Placing,
    _switch: freecall::driver::SwitchHandle,
}

async fn site() -> Site {
    let pbx = Phone::bind("pbx").await;
    let cfg = config(pbx.addr);
    let store = common::stores::open(&common::stores::sqlite_url());
    let switch = common::start_billed(&cfg, store.clone()).await;
    let (state, placing, bookings) = common::services(&cfg, &store, &switch);
    let (server, api) = freecall::api::serve(state, "127.0.0.1:0".parse().unwrap(), 65536).unwrap();
    tokio::spawn(server);
    Site {
        api,
        store,
        pbx,
        bookings,
        placing,
        _switch: switch,
    }
}

async fn post(api: SocketAddr, path: String, body: serde_json::Value) -> http::Response {
    tokio::task::spawn_blocking(move || http::call(api, "POST", &path, None, &[], Some(body)))
        .await
        .unwrap()
}

async fn get(api: SocketAddr, path: String) -> http::Response {
    tokio::task::spawn_blocking(move || http::call(api, "GET", &path, None, &[], None))
        .await
        .unwrap()
}

/// The issuer's phone is busy: 486, and the ACK taken.
async fn busy(pbx: &Phone, inv: &Message, from: SocketAddr) {
    pbx.send(from, &pbx.response(inv, 486, "Busy Here", "busy", None))
        .await;
}

/// The placed call's request ends; the scheduler is told (as its task would be).
async fn ended(s: &Site, request: &str) {
    for _ in 0..100 {
        if let Some(r) = s.placing.hub().get(request)
            && r.ended()
        {
            s.bookings.on_progress(r.events.last().unwrap()).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the request {request} did not end");
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_fires_once_at_its_time_and_tries_again_when_busy_in_virtual_time() {
    let s = site().await;
    let phones = r#"[{"kind":"mobile","number":"010-2222-3333","callback":true}]"#;
    let (card, _) = common::cards::issue(&s.store, "kim", 100_000, 5, phones, "");
    let due = freecall::clock::Clock::system().unix_ms() + 3_600_000;
    let r = post(
        s.api,
        format!("/v1/cards/{card}/bookings"),
        json!({"number": "02-556-1234;235", "at": iso(due), "time_zone": "Asia/Seoul"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    let token = v["id"].as_str().unwrap().to_string();
    let serial = v["serial"].as_str().unwrap().to_string();
    assert!(
        serial.starts_with("R-") && serial.len() == "R-20261202-0001".len(),
        "{serial}"
    );
    assert_eq!(v["state"], "scheduled");
    assert!(
        v["local"].as_str().unwrap().ends_with("+09:00"),
        "shown in Seoul time: {v}"
    );

    // Not before its time.
    assert_eq!(s.bookings.tick(due - 1000).await, 0);
    assert!(
        next_invite_after(&s.pbx, Duration::from_millis(300), &[])
            .await
            .is_none()
    );
    // At its time: once.
    assert_eq!(s.bookings.tick(due).await, 1);
    assert_eq!(s.bookings.tick(due + 1000).await, 0, "never twice");
    let (first, from) = next_invite_after(&s.pbx, Duration::from_secs(5), &[])
        .await
        .expect("the issuer is called");
    assert_eq!(first.uri_user.as_deref(), Some("01022223333"));
    let b = get(s.api, format!("/v1/bookings/{token}")).await.json();
    assert_eq!(b["state"], "dialling");
    let call = b["attempts"][0]["call_id"].as_str().unwrap().to_string();
    assert!(
        call.starts_with(&format!("fc-{serial}-1-")),
        "the call carries the serial: {call}"
    );
    busy(&s.pbx, &first, from).await;
    ended(&s, &call).await;
    let b = get(s.api, format!("/v1/bookings/{token}")).await.json();
    assert_eq!(b["state"], "scheduled", "busy: tried again later: {b}");
    assert_eq!(b["attempts"][0]["cause"], "busy");

    // The retry comes retry_secs (60) after the first attempt ended, not before.
    let now = freecall::clock::Clock::system().unix_ms();
    assert_eq!(s.bookings.tick(now + 30_000).await, 0);
    assert_eq!(s.bookings.tick(now + 61_000).await, 1);
    let (second, from) = next_invite_after(&s.pbx, Duration::from_secs(5), &[&first])
        .await
        .expect("the second attempt");
    busy(&s.pbx, &second, from).await;
    let b = get(s.api, format!("/v1/bookings/{token}")).await.json();
    let call2 = b["attempts"][1]["call_id"].as_str().unwrap().to_string();
    assert!(call2.starts_with(&format!("fc-{serial}-2-")));
    ended(&s, &call2).await;
    let b = get(s.api, format!("/v1/bookings/{token}")).await.json();
    assert_eq!(b["state"], "failed", "two attempts, both busy: {b}");
    assert_eq!(b["cause"], "busy");
    assert_eq!(s.bookings.tick(now + 86_400_000).await, 0);
    assert!(
        next_invite_after(&s.pbx, Duration::from_millis(300), &[&first, &second])
            .await
            .is_none(),
        "two INVITEs in all"
    );
    // The call records carry the serial.
    let record = common::stores::wait_record(&s.store, &call)
        .await
        .expect("a record");
    assert!(record.call_id.contains(&serial));
    // Found by serial with its number; the serial alone finds nothing.
    let r = get(
        s.api,
        format!("/v1/bookings?serial={serial}&number=02-556-1234;235"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get(
        s.api,
        format!("/v1/bookings?serial={serial}&number=02-556-0000"),
    )
    .await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_spent_before_the_time_refuses_with_the_reason_and_nobody_is_dialled() {
    let s = site().await;
    let phones = r#"[{"kind":"mobile","number":"010-2222-3333","callback":true}]"#;
    let (card, _) = common::cards::issue(&s.store, "lee", 100_000, 1, phones, "");
    let due = freecall::clock::Clock::system().unix_ms() + 600_000;
    let r = post(
        s.api,
        format!("/v1/cards/{card}/bookings"),
        json!({"number": "02-556-1234", "at": iso(due)}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let token = r.json()["id"].as_str().unwrap().to_string();
    // The quota goes to another call meanwhile.
    let c = s.store.card(card).unwrap();
    let mut n = freecall::cards::Draft::of(&c, vec![])
        .validate(
            c.issuer_id,
            &freecall::numbers::Classifier::new("KR").unwrap(),
        )
        .unwrap()
        .0;
    n.quota = 0;
    s.store.update_card(card, &n, &[]).unwrap();
    assert_eq!(s.bookings.tick(due).await, 0);
    assert!(
        next_invite_after(&s.pbx, Duration::from_millis(500), &[])
            .await
            .is_none(),
        "nobody is dialled"
    );
    let b = get(s.api, format!("/v1/bookings/{token}")).await.json();
    assert_eq!(b["state"], "refused");
    assert_eq!(b["cause"], "quota-used-up", "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_move_cancel_refuse_bad_times_and_one_missed_while_down_ends_missed() {
    let s = site().await;
    let phones = r#"[{"kind":"mobile","number":"010-2222-3333","callback":true}]"#;
    let (card, _) = common::cards::issue(&s.store, "park", 100_000, 5, phones, "");
    let api = s.api;
    let path = format!("/v1/cards/{card}/bookings");
    for (body, why) in [
        (
            json!({"number": "02-556-1234", "at": "2026-13-45T99:00"}),
            "bad-time",
        ),
        (
            json!({"number": "02-556-1234", "at": "2026-12-02T15:00", "time_zone": "Mars/Olympus"}),
            "bad-time",
        ),
        (
            json!({"number": "02-556-1234", "at": iso(freecall::clock::Clock::system().unix_ms() - 3_600_000)}),
            "bad-time",
        ),
        (
            json!({"number": "02-556-1234", "at": iso(freecall::clock::Clock::system().unix_ms() + 400 * 86_400_000)}),
            "bad-time",
        ),
        (
            json!({"number": "060-700-1234", "at": iso(freecall::clock::Clock::system().unix_ms() + 60_000)}),
            "number-not-allowed",
        ),
        (
            json!({"number": "12", "at": iso(freecall::clock::Clock::system().unix_ms() + 60_000)}),
            "bad-number",
        ),
    ] {
        let r = post(api, path.clone(), body.clone()).await;
        assert!(r.status >= 400, "{body}: {}", r.text());
        assert_eq!(
            r.json()["type"],
            format!("urn:freecall:problem:{why}"),
            "{body}"
        );
    }
    // A local time in the booker's zone.
    let r = post(
        api,
        path.clone(),
        json!({"number": "02-556-1234", "at": "2030-01-02T15:00", "time_zone": "Asia/Seoul"}),
    )
    .await;
    assert_eq!(r.status, 422, "beyond 30 days ahead: {}", r.text());
    let at = chrono::DateTime::from_timestamp_millis(freecall::clock::Clock::system().unix_ms())
        .unwrap()
        + chrono::Duration::hours(2);
    let local = (at + chrono::Duration::hours(9))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let r = post(
        api,
        path.clone(),
        json!({"number": "02-556-1234", "at": local, "time_zone": "Asia/Seoul"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let b = r.json();
    let due_ms = s.store.booking(b["id"].as_str().unwrap()).unwrap().due_ms;
    assert!(
        (due_ms - at.timestamp_millis()).abs() < 60_000,
        "Seoul 15:00 is 06:00 UTC: {b}"
    );
    let token = b["id"].as_str().unwrap().to_string();
    let t = token.clone();
    let moved = tokio::task::spawn_blocking(move || {
        http::call(
            api,
            "PATCH",
            &format!("/v1/bookings/{t}"),
            None,
            &[],
            Some(json!({"at": iso(freecall::clock::Clock::system().unix_ms() + 7_200_000)})),
        )
    })
    .await
    .unwrap();
    assert_eq!(moved.status, 200, "{}", moved.text());
    let t = token.clone();
    let cancelled = tokio::task::spawn_blocking(move || {
        http::call(api, "DELETE", &format!("/v1/bookings/{t}"), None, &[], None)
    })
    .await
    .unwrap();
    assert_eq!(cancelled.json()["state"], "cancelled");
    let t = token.clone();
    let again = tokio::task::spawn_blocking(move || {
        http::call(api, "DELETE", &format!("/v1/bookings/{t}"), None, &[], None)
    })
    .await
    .unwrap();
    assert_eq!(again.status, 409);

    // Every node was down at the booked time, and for longer than the late window.
    let missed = s
        .store
        .create_booking(
            &new_booking(
                card,
                "02-556-7777",
                freecall::clock::Clock::system().unix_ms() - 3_600_000,
            ),
            NO_LIMITS,
        )
        .unwrap();
    assert_eq!(
        s.bookings
            .tick(freecall::clock::Clock::system().unix_ms())
            .await,
        0
    );
    assert!(
        next_invite_after(&s.pbx, Duration::from_millis(300), &[])
            .await
            .is_none()
    );
    assert_eq!(s.store.booking(&missed.token).unwrap().state, "missed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_a_few_seconds_ahead_fires_on_time_with_the_scheduler_running() {
    let s = site().await;
    let _task = s.bookings.spawn();
    let phones = r#"[{"kind":"mobile","number":"010-2222-3333","callback":true}]"#;
    let (card, _) = common::cards::issue(&s.store, "choi", 100_000, 5, phones, "");
    let due = freecall::clock::Clock::system().unix_ms() + 2000;
    let r = post(
        s.api,
        format!("/v1/cards/{card}/bookings"),
        json!({"number": "02-556-1234", "at": iso(due)}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let token = r.json()["id"].as_str().unwrap().to_string();
    let (inv, from) = next_invite_after(&s.pbx, Duration::from_secs(8), &[])
        .await
        .expect("fired");
    let at = freecall::clock::Clock::system().unix_ms();
    assert!(at >= due - 1000, "not early: {} ms before", due - at);
    assert!(at < due + 2000, "on time: {} ms late", at - due);
    busy(&s.pbx, &inv, from).await;
    // The running scheduler hears the end itself and books the retry.
    let mut state = String::new();
    for _ in 0..50 {
        state = s.store.booking(&token).unwrap().state;
        if state == "scheduled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "scheduled", "busy: a retry is booked");
    assert!(
        next_invite_after(&s.pbx, Duration::from_millis(1500), &[&inv])
            .await
            .is_none(),
        "not before retry_secs"
    );
}
