//! A card's visitor in a real browser (headless Chromium through chromedriver), on a
//! phone-sized screen: they open the card, ask for a free call and watch the page follow it
//! (the card's owner called and answering, then their own phone ringing, then connected)
//! while the test's SIP phones ring, and the owner finds the call afterwards; a refusal is
//! told in the visitor's own language and nobody is dialled; a call booked for tomorrow in
//! the visitor's own time zone gets a serial and is moved, found again and cancelled; and
//! the front page can have a listener of its own, apart from the API.
//!
//! Screenshots land in `target/screenshots/` for a person to look at.

mod common;

use common::browser::Browser;
use common::http;
use common::pages::{PHONE, answer, config, hang_up, site};
use common::placed::{next_invite, next_invite_after};
use freecall::media::codec::Codec;
use freecall_testkit::Phone;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_on_a_phone_calls_for_free_and_the_page_follows_the_call_until_connected() {
    let s = site().await;
    let phones = r#"[{"kind":"landline","number":"02-700-1000"},{"kind":"mobile","number":"010-2222-3333","callback":true}]"#;
    let (card, _) = common::cards::issue(&s.store, "kim", 100_000, 3, phones, "");
    let slug = s
        .store
        .card(card)
        .expect("card")
        .slug
        .expect("a public link");
    let b = Browser::start(PHONE.0, PHONE.1).await;
    b.goto(&format!("{}/c/{slug}?lang=en", s.url)).await;
    b.screenshot("visitor-card-phone").await;
    // Readable on a phone: nothing wider than the screen.
    let width = b
        .js("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        .await;
    assert!(
        width[0].as_i64() <= width[1].as_i64(),
        "no sideways scrolling: {width}"
    );

    b.fill("#number", "02-556-1234").await;
    b.fill("#extension", "235").await;
    b.submit("#call").await;
    let path = b.path().await;
    assert!(
        path.starts_with(&format!("/c/{slug}/calls/")),
        "the progress page: {path} {}",
        b.body().await
    );

    // The issuer's phone rings first.
    let (issuer_inv, from) = next_invite(&s.pbx, Duration::from_secs(5))
        .await
        .expect("the issuer is called");
    assert_eq!(issuer_inv.uri_user.as_deref(), Some("01022223333"));
    let state = b
        .wait_text("#state", "Calling the card's owner", Duration::from_secs(5))
        .await;
    assert!(state.contains("Calling the card's owner"), "{state}");
    let (issuer, to_issuer) = answer(&s.pbx, &issuer_inv, from, "iss", Codec::Pcmu, 0).await;
    let state = b
        .wait_text("#state", "answered", Duration::from_secs(5))
        .await;
    assert!(state.contains("The card's owner answered"), "{state}");
    assert!(
        next_invite_after(&s.pbx, Duration::from_millis(300), &[&issuer_inv])
            .await
            .is_none(),
        "the visitor waits for the issuer"
    );
    // The issuer hears the question, then presses 1.
    issuer
        .send_tone(to_issuer, 1000.0, -20.0, 5, |_| false)
        .await;
    let _ = issuer
        .collect(Duration::from_millis(500), Duration::from_secs(2))
        .await;
    issuer.send_digit(to_issuer, 1).await;

    let (visitor_inv, vfrom) = next_invite_after(&s.pbx, Duration::from_secs(5), &[&issuer_inv])
        .await
        .expect("the visitor is called");
    assert_eq!(visitor_inv.uri_user.as_deref(), Some("025561234"));
    let state = b
        .wait_text("#state", "ringing", Duration::from_secs(5))
        .await;
    assert!(state.contains("Your phone is ringing now"), "{state}");
    let (_visitor, _to_visitor) = answer(&s.pbx, &visitor_inv, vfrom, "vis", Codec::Pcma, 8).await;
    let state = b
        .wait_text("#state", "Connected", Duration::from_secs(5))
        .await;
    assert_eq!(state, "Connected");
    b.screenshot("visitor-connected-phone").await;

    hang_up(&s.pbx, &visitor_inv, vfrom, "vis").await;
    let state = b.wait_text("#state", "ended", Duration::from_secs(5)).await;
    assert_eq!(state, "The call has ended");
    assert_eq!(b.text("#outcome").await, "The call was completed.");
    let steps: Vec<String> = b
        .js("return [...document.querySelectorAll('#steps li')].map(li => li.dataset.state)")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        steps,
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

    // The issuer finds the call on the card's page: both numbers, times, length, cost.
    let request = path.rsplit('/').next().unwrap().to_string();
    let record = common::stores::wait_record(&s.store, &request)
        .await
        .expect("the call's record");
    let issuer_id = s.store.card(card).unwrap().issuer_id;
    let hash = freecall::auth::hash_password("issuer secret").unwrap();
    s.store.set_issuer_password(issuer_id, &hash).unwrap();
    b.goto(&format!("{}/login?lang=en", s.url)).await;
    b.fill("input[name=login]", "kim").await;
    b.fill("input[name=password]", "issuer secret").await;
    b.submit("button[type=submit]").await;
    b.goto(&format!("{}/issuer/cards/{card}", s.url)).await;
    let row = b.text("#calls tbody tr").await;
    assert!(
        row.contains("025561234") && row.contains("01022223333"),
        "both numbers: {row}"
    );
    assert!(
        row.contains(&format!("{}s", record.billed_secs)) && row.contains(&record.cost.to_string()),
        "length and cost: {row} vs {record:?}"
    );
    b.screenshot("issuer-sees-the-call").await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_shows_its_reason_in_the_visitors_language_and_dials_nobody() {
    let s = site().await;
    let phones = r#"[{"kind":"mobile","number":"010-2222-3333","callback":true}]"#;
    let (card, _) = common::cards::issue(&s.store, "lee", 100_000, 0, phones, "");
    let slug = s.store.card(card).expect("card").slug.expect("link");
    let b = Browser::start(PHONE.0, PHONE.1).await;

    b.goto(&format!("{}/c/{slug}?lang=ko", s.url)).await;
    b.fill("#number", "02-556-1234").await;
    b.submit("#call").await;
    let error = b.text(".error").await;
    assert!(
        error.contains("무료 통화 횟수를 다 썼습니다"),
        "the quota is used up, in Korean: {error}"
    );
    b.screenshot("visitor-refused-ko").await;

    b.goto(&format!("{}/c/{slug}?lang=en", s.url)).await;
    b.fill("#number", "060-700-1234").await;
    b.submit("#call").await;
    let error = b.text(".error").await;
    assert!(
        error.contains("We cannot call you back on this number"),
        "premium numbers are refused: {error}"
    );
    // What the visitor typed stays in the form.
    let typed = b.js("return document.getElementById('number').value").await;
    assert_eq!(typed, "060-700-1234");

    assert!(
        next_invite(&s.pbx, Duration::from_millis(500))
            .await
            .is_none(),
        "nobody is dialled"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_books_a_call_for_tomorrow_gets_a_serial_moves_finds_and_cancels_it() {
    let s = site().await;
    let phones = r#"[{"kind":"mobile","number":"010-2222-3333","callback":true}]"#;
    let (card, _) = common::cards::issue(&s.store, "yoon", 100_000, 3, phones, "");
    let slug = s.store.card(card).unwrap().slug.unwrap();
    let b = Browser::start(PHONE.0, PHONE.1).await;
    b.goto(&format!("{}/c/{slug}?lang=en", s.url)).await;
    // Tomorrow, 15:00 in the visitor's own zone (the browser is in Seoul).
    let tomorrow = chrono::DateTime::from_timestamp_millis(
        freecall::clock::Clock::system().unix_ms() + 9 * 3_600_000 + 86_400_000,
    )
    .unwrap()
    .format("%Y-%m-%d")
    .to_string();
    b.fill("#book input[name=number]", "02-556-1234").await;
    b.js(&format!("document.getElementById('book-date').value = '{tomorrow}'; document.getElementById('book-time').value = '15:00'; return 1")).await;
    let zone = b
        .js("return document.getElementById('time-zone').value")
        .await;
    assert_eq!(zone, "Asia/Seoul", "the browser's own zone");
    b.submit("#book-button").await;
    assert!(
        b.path().await.starts_with("/bookings/bk-"),
        "{}",
        b.body().await
    );
    let serial = b.text("#serial").await;
    assert!(serial.starts_with("R-") && serial.len() == 15, "{serial}");
    assert_eq!(b.text("#booking-state").await, "Booked");
    assert_eq!(b.text("#local").await, format!("{tomorrow} 15:00"));
    b.screenshot("visitor-booked-phone").await;
    let booking = s.store.booking_by_serial(&serial, "02-556-1234").unwrap();
    let utc = chrono::DateTime::from_timestamp_millis(booking.due_ms)
        .unwrap()
        .format("%H:%M")
        .to_string();
    assert_eq!(utc, "06:00", "15:00 in Seoul is 06:00 UTC");

    // Moved to 16:30.
    b.js("document.querySelector('#move input[name=time]').value = '16:30'; return 1")
        .await;
    b.submit("#move button").await;
    assert_eq!(b.text("#local").await, format!("{tomorrow} 16:30"));

    // Found again with the serial and the number; the serial alone is not enough.
    b.goto(&format!(
        "{}/bookings/find?lang=en&serial={serial}&number=02-556-0000",
        s.url
    ))
    .await;
    assert!(
        b.text(".error")
            .await
            .contains("No booking has that number"),
        "{}",
        b.body().await
    );
    b.goto(&format!(
        "{}/bookings/find?serial={}&number=02-556-1234",
        s.url,
        serial.to_lowercase()
    ))
    .await;
    assert_eq!(b.text("#serial").await, serial);

    b.submit("#cancel button").await;
    assert_eq!(b.text("#booking-state").await, "Cancelled");
    assert!(
        b.c.find(fantoccini::Locator::Css("#move")).await.is_err(),
        "nothing left to change"
    );
    assert_eq!(
        s.store
            .booking_by_serial(&serial, "02-556-1234")
            .unwrap()
            .state,
        "cancelled"
    );

    // A time in the past is refused in words, and the form keeps what was typed.
    b.goto(&format!("{}/c/{slug}?lang=en", s.url)).await;
    b.fill("#book input[name=number]", "02-556-1234").await;
    b.js("document.getElementById('book-date').value = '2020-01-01'; document.getElementById('book-time').value = '09:00'; return 1").await;
    b.submit("#book-button").await;
    assert!(
        b.text(".error")
            .await
            .contains("That is not a time we can book"),
        "{}",
        b.body().await
    );
    assert_eq!(
        b.js("return document.getElementById('book-date').value")
            .await,
        "2020-01-01"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_can_have_a_listener_of_their_own_apart_from_the_api() {
    let pbx = Phone::bind("pbx").await;
    let cfg = config(pbx.addr);
    let store = common::stores::open(&common::stores::sqlite_url());
    let switch = common::start_billed(&cfg, store.clone()).await;
    let (state, placing, _) = common::services(&cfg, &store, &switch);
    let pages = freecall::web::WebState::new(
        store.clone(),
        Some(placing),
        state.tariffs.clone(),
        common::web_config(),
        "freecall".into(),
        0,
        0,
        state.numbers.clone(),
    )
    .unwrap();
    let (server, addr) = freecall::web::serve(pages, "127.0.0.1:0".parse().unwrap()).unwrap();
    tokio::spawn(server);
    tokio::task::spawn_blocking(move || {
        let home = http::request(addr, "GET", "/?lang=en", &[], None);
        assert_eq!(home.status, 200);
        assert!(home.text().contains("Free calls someone else has paid for"));
        let css = http::request(addr, "GET", "/static/style.css", &[], None);
        assert_eq!(css.header("Content-Type"), Some("text/css; charset=utf-8"));
        // The API is not served here; an unknown /v1 path is still a problem document.
        let api = http::request(addr, "GET", "/v1/tariffs", &[], None);
        assert_eq!(api.status, 404);
        assert_eq!(api.header("Content-Type"), Some("application/problem+json"));
    })
    .await
    .unwrap();
}
