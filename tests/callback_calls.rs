//! A card's free call-back over real sockets: the REST request, the issuer's phone and
//! the visitor's phone behind a PBX on a trunk, real RTP carrying real audio and RFC 4733
//! digits, the money in an SQLite store.

mod common;

use common::http;
use freecall::clock::Clock;
use freecall::config::Config;
use freecall::media::codec::Codec;
use freecall::store::Store;
use freecall_testkit::Phone;
use freecall_testkit::audio::{RtpEnd, level_dbfs};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;

fn config(trunk: SocketAddr, extra: &str) -> Config {
    common::placed::config(
        trunk,
        "cb",
        &format!(
            "[[tariffs]]\naccount = \"guild\"\ndestination = \"landline\"\nper_minute = 30\nincrement = \"1/1\"\n\
[[tariffs]]\naccount = \"guild\"\ndestination = \"mobile\"\nper_minute = 120\nincrement = \"1/1\"\n\
[[tariffs]]\naccount = \"guild\"\ndestination = \"international\"\nper_minute = 600\n\
[[tariffs]]\naccount = \"mileage\"\ndestination = \"mobile\"\nper_minute = 20\nincrement = \"1/1\"\n\
[[tariffs]]\naccount = \"mileage\"\ndestination = \"landline\"\nper_minute = 10\nincrement = \"1/1\"\n\
{extra}"
        ),
    )
}

struct Setup {
    api: SocketAddr,
    store: Store,
    /// The switch's clock, moved forward where a call must last a while.
    clock: Clock,
    _switch: freecall::driver::SwitchHandle,
}

async fn setup(cfg: &Config) -> Setup {
    let url = common::stores::sqlite_url();
    let clock = Clock::adjustable();
    let store = common::stores::open(&url).with_clock(clock.clone());
    let switch = common::start_billed(cfg, store.clone()).await;
    let api = common::serve_api(cfg, &store, &switch);
    Setup {
        api,
        store,
        clock,
        _switch: switch,
    }
}

/// An issuer with `guild` and a card with `quota` calls whose call-back number is a mobile
/// (its landline is rung after it).
fn card(store: &Store, login: &str, guild: i64, quota: i64, countries: &str) -> i64 {
    let phones = r#"[{"kind":"landline","number":"02-700-1000"},{"kind":"mobile","number":"010-2222-3333","callback":true}]"#;
    common::cards::issue(store, login, guild, quota, phones, countries).0
}

async fn post(api: SocketAddr, path: String, body: serde_json::Value) -> http::Response {
    tokio::task::spawn_blocking(move || http::call(api, "POST", &path, None, &[], Some(body)))
        .await
        .unwrap()
}

async fn get(api: SocketAddr, path: String) -> serde_json::Value {
    tokio::task::spawn_blocking(move || http::call(api, "GET", &path, None, &[], None).json())
        .await
        .unwrap()
}

use common::placed::{next_invite, sdp_for, switch_media};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_is_called_back_after_the_issuer_presses_1_and_both_legs_are_billed() {
    let pbx = Phone::bind("pbx").await;
    let cfg = config(pbx.addr, "");
    let s = setup(&cfg).await;
    let card = card(&s.store, "kim", 100_000, 3, "");

    let r = post(
        s.api,
        format!("/v1/cards/{card}/callbacks"),
        json!({"number": "02-556-1234;235"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();

    // The issuer's call-back number rings first; the visitor's number is not dialled.
    let (issuer_inv, from) = next_invite(&pbx, Duration::from_secs(5))
        .await
        .expect("the issuer is called");
    assert_eq!(issuer_inv.uri_user.as_deref(), Some("01022223333"));
    assert_eq!(issuer_inv.from_user.as_deref(), Some("025561234"));
    let issuer = RtpEnd::bind(Codec::Pcmu, 0, Some(101)).await;
    pbx.send(
        from,
        &pbx.response(&issuer_inv, 180, "Ringing", "iss", None),
    )
    .await;
    pbx.send(
        from,
        &pbx.response(&issuer_inv, 200, "OK", "iss", Some(&sdp_for(&issuer))),
    )
    .await;
    let to_issuer = switch_media(&issuer_inv);
    // The issuer hears the announcement (a second of it) before pressing anything.
    issuer
        .send_tone(to_issuer, 1000.0, -20.0, 5, |_| false)
        .await;
    let heard = issuer
        .collect(Duration::from_millis(500), Duration::from_secs(2))
        .await;
    let announcement = issuer.decode(&heard);
    assert!(
        announcement.len() >= 8000,
        "a second of the announcement reached the issuer"
    );
    assert!(
        freecall_testkit::audio::rms_dbfs(&announcement) > -40.0,
        "the announcement is audible"
    );
    let steps = get(s.api, format!("/v1/calls/{id}")).await;
    assert_eq!(steps["state"], "issuer_answered", "{steps}");
    assert!(
        next_invite(&pbx, Duration::from_millis(300))
            .await
            .is_none(),
        "the visitor is not dialled before the issuer accepts"
    );

    issuer.send_digit(to_issuer, 1).await;
    let (visitor_inv, from) = next_invite(&pbx, Duration::from_secs(5))
        .await
        .expect("the visitor is called after 1");
    assert_eq!(visitor_inv.uri_user.as_deref(), Some("025561234"));
    assert_eq!(visitor_inv.from_user.as_deref(), Some("01022223333"));
    let visitor = RtpEnd::bind(Codec::Pcma, 8, Some(101)).await;
    pbx.send(
        from,
        &pbx.response(&visitor_inv, 200, "OK", "vis", Some(&sdp_for(&visitor))),
    )
    .await;
    let to_visitor = switch_media(&visitor_inv);

    // The PBX gets the extension as RFC 4733 digits: 2, 3, 5.
    let (v_send, i_send) = tokio::join!(
        visitor.send_tone(to_visitor, 600.0, -12.0, 75, |_| false),
        async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            issuer
                .send_tone(to_issuer, 1000.0, -12.0, 60, |_| false)
                .await
        }
    );
    assert!(v_send > 0 && i_send > 0);
    let (at_visitor, at_issuer) = tokio::join!(
        visitor.collect(Duration::from_millis(400), Duration::from_secs(3)),
        issuer.collect(Duration::from_millis(400), Duration::from_secs(3)),
    );
    let _ = (at_visitor, at_issuer);
    // Tones while both send: measure a fresh second each way.
    let (heard_v, heard_i, _, _) = tokio::join!(
        visitor.collect(Duration::from_millis(300), Duration::from_millis(1500)),
        issuer.collect(Duration::from_millis(300), Duration::from_millis(1500)),
        visitor.send_tone(to_visitor, 600.0, -12.0, 50, |_| false),
        issuer.send_tone(to_issuer, 1000.0, -12.0, 50, |_| false),
    );
    let v_pcm = visitor.decode(&heard_v);
    let i_pcm = issuer.decode(&heard_i);
    assert!(v_pcm.len() >= 4000 && i_pcm.len() >= 4000);
    assert!(
        level_dbfs(&v_pcm, 1000.0) > -18.0,
        "the visitor hears the issuer"
    );
    assert!(
        level_dbfs(&i_pcm, 600.0) > -18.0,
        "the issuer hears the visitor"
    );

    let steps = get(s.api, format!("/v1/calls/{id}")).await;
    assert_eq!(steps["state"], "connected", "{steps}");
    // The visitor hangs up.
    let mut leg = pbx.leg_from_request(&visitor_inv, from, "vis");
    let bye = pbx.request(&mut leg, "BYE", None);
    pbx.send(from, &bye).await;
    let mut issuer_bye = false;
    for _ in 0..20 {
        match pbx.recv(Duration::from_secs(2)).await {
            Some((m, f)) if m.method().map(|x| x.as_str()) == Some("BYE") => {
                assert_eq!(m.call_id, issuer_inv.call_id);
                pbx.send(f, &pbx.response(&m, 200, "OK", "iss", None)).await;
                issuer_bye = true;
                break;
            }
            Some(_) => continue,
            None => break,
        }
    }
    assert!(issuer_bye, "the issuer's leg is hung up");

    let record = common::stores::wait_record(&s.store, &id)
        .await
        .expect("one record for the request");
    assert_eq!(record.caller, "025561234");
    assert_eq!(record.callee, "01022223333");
    assert_eq!(record.card_id, Some(card));
    assert_eq!(record.legs.len(), 2);
    let (iss, vis) = (&record.legs[0], &record.legs[1]);
    assert_eq!(
        (iss.role.as_str(), iss.destination.as_str()),
        ("issuer", "mobile")
    );
    assert_eq!(
        (vis.role.as_str(), vis.destination.as_str()),
        ("visitor", "landline")
    );
    assert!(
        iss.billed_secs > vis.billed_secs,
        "the issuer's leg talked longer"
    );
    // Each leg at its own kind's rate (1/1 increments: cost = ceil(rate * secs / 60)).
    assert_eq!(iss.cost, (120 * iss.billed_secs + 59) / 60);
    assert_eq!(vis.cost, (30 * vis.billed_secs + 59) / 60);
    assert_eq!(record.cost, iss.cost + vis.cost);
    let debits_i = s.store.debits_of_call(&format!("{id}/issuer")).unwrap();
    let debits_v = s.store.debits_of_call(&format!("{id}/visitor")).unwrap();
    assert_eq!(debits_i, vec![iss.cost], "one debit for the issuer's leg");
    assert_eq!(debits_v, vec![vis.cost], "one debit for the visitor's leg");
    let c = s.store.card(card).unwrap();
    assert_eq!(
        (c.quota_used, c.quota_reserved),
        (1, 0),
        "one call of the quota"
    );
    assert!(s.store.audit().unwrap().is_empty());
    assert_eq!(s.store.open_reservations().unwrap(), 0);
    let steps = get(s.api, format!("/v1/calls/{id}")).await;
    let states: Vec<&str> = steps["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "requested",
            "calling_issuer",
            "issuer_answered",
            "accepted",
            "calling_visitor",
            "connected",
            "ended"
        ]
    );
    let last = steps["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["cause"], "hung-up");
    assert_eq!(last["ended_by"], "caller");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_visitor_hears_the_post_dial_digits_as_rfc_4733() {
    let pbx = Phone::bind("pbx").await;
    let cfg = config(pbx.addr, "");
    let s = setup(&cfg).await;
    let card = card(&s.store, "lee", 100_000, 3, "");
    let r = post(
        s.api,
        format!("/v1/cards/{card}/callbacks"),
        json!({"number": "025561234;235"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let (inv, from) = next_invite(&pbx, Duration::from_secs(5)).await.unwrap();
    let issuer = RtpEnd::bind(Codec::Pcmu, 0, Some(101)).await;
    pbx.send(
        from,
        &pbx.response(&inv, 200, "OK", "iss", Some(&sdp_for(&issuer))),
    )
    .await;
    let to_issuer = switch_media(&inv);
    issuer
        .send_tone(to_issuer, 1000.0, -20.0, 3, |_| false)
        .await;
    issuer.send_digit(to_issuer, 1).await;
    let (vinv, from) = next_invite(&pbx, Duration::from_secs(5)).await.unwrap();
    let visitor = RtpEnd::bind(Codec::Pcmu, 0, Some(101)).await;
    pbx.send(
        from,
        &pbx.response(&vinv, 200, "OK", "vis", Some(&sdp_for(&visitor))),
    )
    .await;
    let to_visitor = switch_media(&vinv);
    let (_, got) = tokio::join!(
        visitor.send_tone(to_visitor, 600.0, -20.0, 3, |_| false),
        visitor.collect(Duration::from_millis(800), Duration::from_secs(4))
    );
    let mut digits = Vec::new();
    for p in got.iter().filter(|p| p.pt == 101 && p.payload.len() >= 4) {
        if p.payload[1] & 0x80 != 0 && digits.last() != Some(&(p.ts, p.payload[0])) {
            digits.push((p.ts, p.payload[0]));
        }
    }
    let events: Vec<u8> = digits.iter().map(|d| d.1).collect();
    assert_eq!(events, [2, 3, 5], "the extension 235 reaches the PBX");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_say_why_and_never_dial_the_visitor() {
    let pbx = Phone::bind("pbx").await;
    let cfg = config(pbx.addr, "[callbacks]\nper_address_per_minute = 6\n");
    let s = setup(&cfg).await;
    let broke = card(&s.store, "broke", 0, 3, "");
    let no_quota = card(&s.store, "nocalls", 100_000, 0, "");
    let rich = card(&s.store, "rich", 100_000, 3, "");
    let cases = [
        (broke, "025561234", 402, "guild-exhausted"),
        (no_quota, "025561234", 402, "quota-used-up"),
        (rich, "0602345678", 403, "number-not-allowed"),
        (rich, "+14155550123", 403, "number-not-allowed"),
        (rich, "hello", 422, "bad-number"),
        (9999, "025561234", 404, "not-found"),
    ];
    for (card, number, status, kind) in cases {
        let r = post(
            s.api,
            format!("/v1/cards/{card}/callbacks"),
            json!({ "number": number }),
        )
        .await;
        assert_eq!(r.status, status, "{number}: {}", r.text());
        assert_eq!(
            r.json()["type"],
            format!("urn:freecall:problem:{kind}"),
            "{number}"
        );
    }
    // The seventh request from this address within a minute is refused, with Retry-After.
    let r = post(
        s.api,
        format!("/v1/cards/{rich}/callbacks"),
        json!({"number": "025561234"}),
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["type"], "urn:freecall:problem:too-many-requests");
    assert_eq!(r.header("retry-after"), Some("60"));
    assert!(
        next_invite(&pbx, Duration::from_millis(500))
            .await
            .is_none(),
        "no refused request dials anyone"
    );
    assert_eq!(s.store.open_reservations().unwrap(), 0);
    assert!(s.store.audit().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_with_countries_enabled_calls_back_abroad_and_limits_per_number_hold() {
    let pbx = Phone::bind("pbx").await;
    let cfg = config(
        pbx.addr,
        "[callbacks]\nper_number_daily = 1\nper_card_concurrent = 5\n",
    );
    let s = setup(&cfg).await;
    let card = card(&s.store, "world", 100_000, 10, "US");
    let r = post(
        s.api,
        format!("/v1/cards/{card}/callbacks"),
        json!({"number": "+1 415 555 0123"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    // The same visitor number again today: refused (across cards too).
    let other = self::card(&s.store, "world2", 100_000, 10, "US");
    let r = post(
        s.api,
        format!("/v1/cards/{other}/callbacks"),
        json!({"number": "+14155550123"}),
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["type"], "urn:freecall:problem:number-daily-limit");
    // The first request is cancelled by its requester while the issuer's phone rings.
    let (inv, from) = next_invite(&pbx, Duration::from_secs(5)).await.unwrap();
    pbx.send(from, &pbx.response(&inv, 180, "Ringing", "iss", None))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let path = format!("/v1/calls/{id}");
    let api = s.api;
    let r = tokio::task::spawn_blocking(move || http::call(api, "DELETE", &path, None, &[], None))
        .await
        .unwrap();
    assert_eq!(r.status, 202);
    let mut cancelled = false;
    for _ in 0..10 {
        match pbx.recv(Duration::from_secs(2)).await {
            Some((m, f)) if m.method().map(|x| x.as_str()) == Some("CANCEL") => {
                pbx.send(f, &pbx.response(&m, 200, "OK", "iss", None)).await;
                pbx.send(
                    f,
                    &pbx.response(&inv, 487, "Request Terminated", "iss", None),
                )
                .await;
                cancelled = true;
                break;
            }
            Some(_) => continue,
            None => break,
        }
    }
    assert!(cancelled, "the issuer's ringing phone is cancelled");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let steps = get(s.api, format!("/v1/calls/{id}")).await;
    assert_eq!(steps["state"], "ended");
    let last = steps["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["cause"], "cancelled");
    for _ in 0..30 {
        if s.store.open_reservations().unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        s.store.open_reservations().unwrap(),
        0,
        "the money is released"
    );
    let c = s.store.card(card).unwrap();
    assert_eq!(
        (c.quota_used, c.quota_reserved),
        (0, 0),
        "no call of the quota used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_dials_from_the_web_and_their_own_phone_rings_first() {
    let pbx = Phone::bind("pbx").await;
    let cfg = config(pbx.addr, "");
    let s = setup(&cfg).await;
    let member = s
        .store
        .create_member(
            &freecall::store::shop::NewMember {
                login: "minji".into(),
                password_hash: "x".into(),
                name: "Kim Minji".into(),
                address: String::new(),
                job: String::new(),
                phone: "010-9999-8888".into(),
                email: String::new(),
                sip_ha1: "x".into(),
            },
            600,
        )
        .unwrap();
    let key = "web-dial-test-key";
    s.store
        .create_api_key("shop", &freecall::auth::api_key_hash(key), "credit")
        .unwrap();
    let (api, path) = (s.api, format!("/v1/members/{}/calls", member.id));
    let body = json!({"number": "02-556-1234"});
    let anonymous = {
        let (path, body) = (path.clone(), body.clone());
        tokio::task::spawn_blocking(move || http::call(api, "POST", &path, None, &[], Some(body)))
            .await
            .unwrap()
    };
    assert_eq!(anonymous.status, 401, "web dial needs the shop's key");
    let r = tokio::task::spawn_blocking(move || {
        http::call(api, "POST", &path, Some(key), &[], Some(body))
    })
    .await
    .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let (own, from) = next_invite(&pbx, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        own.uri_user.as_deref(),
        Some("01099998888"),
        "the member's phone first"
    );
    let phone = RtpEnd::bind(Codec::Pcmu, 0, Some(101)).await;
    pbx.send(
        from,
        &pbx.response(&own, 200, "OK", "m", Some(&sdp_for(&phone))),
    )
    .await;
    let (dialled, from) = next_invite(&pbx, Duration::from_secs(5))
        .await
        .expect("then the number, with no key to press");
    assert_eq!(dialled.uri_user.as_deref(), Some("025561234"));
    let far = RtpEnd::bind(Codec::Pcmu, 0, Some(101)).await;
    pbx.send(
        from,
        &pbx.response(&dialled, 200, "OK", "d", Some(&sdp_for(&far))),
    )
    .await;
    // Once the switch has taken the answer (its ACK), half a minute of talk on its clock.
    pbx.expect_request("ACK", common::WAIT).await;
    s.clock.advance(Duration::from_millis(29_500));
    let mut leg = pbx.leg_from_request(&own, from, "m");
    pbx.send(from, &pbx.request(&mut leg, "BYE", None)).await;
    let record = common::stores::wait_record(&s.store, &id)
        .await
        .expect("the record");
    assert_eq!(record.account_id, Some(member.account_id));
    assert_eq!(record.cause, "member hung up");
    assert_eq!(record.legs[0].role, "member");
    assert_eq!(record.legs[1].role, "dialled");
    // Paid from the member's mileage: 30 s of the member's mobile at 20 a minute and
    // of the dialled landline at 10.
    assert_eq!((record.legs[0].cost, record.legs[1].cost), (10, 5));
    let acc = s.store.account(member.account_id).unwrap();
    assert_eq!((acc.balance, acc.reserved), (600 - record.cost, 0));
    assert!(s.store.audit().unwrap().is_empty());
}

/// pjsua2, an independent SIP stack, as both phones: the issuer's answers and presses 1
/// (RFC 4733), the visitor's PBX answers, receives 235, and each hears the other's tone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pjsua2_phones_take_a_call_back_end_to_end() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import pjsua2"])
        .status();
    assert!(
        matches!(probe, Ok(st) if st.success()),
        "pjsua2 is missing: install it with `pip install pjsua2-python` (.ci/run does)"
    );
    let port = common::daemon::free_port();
    let trunk: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cfg = config(trunk, "");
    let s = setup(&cfg).await;
    let card = card(&s.store, "pjsua", 100_000, 3, "");
    let ready = std::env::temp_dir().join(format!(
        "pjsua-callback-ready-{}-{port}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&ready);
    let child = std::process::Command::new("python3")
        .args([
            "tests/interop/pjsua_callback.py",
            "--port",
            &port.to_string(),
            "--issuer",
            "01022223333",
            "--visitor",
            "025561234",
            "--expect-digits",
            "235",
            "--press",
            "3",
            "--seconds",
            "3",
            "--ready-file",
            &ready.display().to_string(),
        ])
        .current_dir(common::daemon::ROOT)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start pjsua2");
    for _ in 0..100 {
        if ready.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready.exists(), "pjsua2 listens");
    let r = post(
        s.api,
        format!("/v1/cards/{card}/callbacks"),
        json!({"number": "025561234;235"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .expect("pjsua2 ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["visitor"]["digits"], "235");
    let record = common::stores::wait_record(&s.store, &id)
        .await
        .expect("the record");
    assert_eq!(record.legs.len(), 2);
    assert!(
        record
            .legs
            .iter()
            .all(|l| l.cost > 0 && l.answered_ms.is_some())
    );
    assert_eq!(s.store.card(card).unwrap().quota_used, 1);
    eprintln!("pjsua2 call-back: {report}");
}

/// A card takes `callbacks.per_card_concurrent` call-backs at once; one more is refused
/// with `card-busy` and Retry-After until one ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_busy_with_call_backs_refuses_one_more_until_one_ends() {
    let pbx = Phone::bind("pbx").await;
    let cfg = config(pbx.addr, "[callbacks]\nper_card_concurrent = 1\n");
    let s = setup(&cfg).await;
    let card = card(&s.store, "busy", 100_000, 10, "");
    let first = post(
        s.api,
        format!("/v1/cards/{card}/callbacks"),
        json!({"number": "025561234"}),
    )
    .await;
    assert_eq!(first.status, 202, "{}", first.text());
    let id = first.json()["id"].as_str().unwrap().to_string();
    let (inv, from) = next_invite(&pbx, Duration::from_secs(5)).await.unwrap();
    pbx.send(from, &pbx.response(&inv, 180, "Ringing", "iss", None))
        .await;
    let second = post(
        s.api,
        format!("/v1/cards/{card}/callbacks"),
        json!({"number": "025561235"}),
    )
    .await;
    assert_eq!(second.status, 429, "{}", second.text());
    assert_eq!(second.json()["type"], "urn:freecall:problem:card-busy");
    assert_eq!(second.header("retry-after"), Some("60"));
    // The issuer's phone is busy: the first request ends, and the card takes one again.
    pbx.send(from, &pbx.response(&inv, 486, "Busy Here", "iss", None))
        .await;
    for _ in 0..30 {
        if get(s.api, format!("/v1/calls/{id}")).await["state"] == "ended" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let steps = get(s.api, format!("/v1/calls/{id}")).await;
    let last = steps["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["cause"], "busy", "{steps}");
    let third = post(
        s.api,
        format!("/v1/cards/{card}/callbacks"),
        json!({"number": "025561236"}),
    )
    .await;
    assert_eq!(third.status, 202, "{}", third.text());
}
