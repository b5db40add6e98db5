//! A shop's member on the pages, in a real browser (headless Chromium through
//! chromedriver): on a phone they log in, call an entry of their phone book (their own
//! phone rings first) and book a call for later from the same screen; a form another web
//! site posts while they are logged in places no call and adds no entry; and members sign
//! up on the page only where the shop lets them.
//!
//! Screenshots land in `target/screenshots/` for a person to look at.

mod common;

use common::browser::Browser;
use common::http;
use common::pages::{DESKTOP, PHONE, answer, hang_up, post_form, session, site, site_with};
use common::placed::{next_invite, next_invite_after};
use freecall::media::codec::Codec;
use std::net::SocketAddr;
use std::time::Duration;

/// A shop member `login` (password "member secret", phone 010-5555-6666, 10,000 mileage).
use common::member;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_calls_a_phone_book_entry_and_their_own_phone_rings_first() {
    let s = site().await;
    member(&s.store, "haneul");
    let b = Browser::start(PHONE.0, PHONE.1).await;
    b.goto(&format!("{}/login?as=member&lang=en", s.url)).await;
    b.fill("input[name=login]", "haneul").await;
    b.fill("input[name=password]", "member secret").await;
    b.submit("button[type=submit]").await;
    assert_eq!(b.path().await, "/member");
    assert_eq!(b.text("#balance").await, "10,000");

    b.fill("#add-entry input[name=name]", "Mum").await;
    b.fill("#add-entry input[name=number]", "02-556-7777").await;
    b.submit("#add-entry button").await;
    assert!(
        b.text(".book").await.contains("Mum")
            || b.js("return document.querySelector('.entry input[name=name]').value")
                .await
                == "Mum"
    );
    b.screenshot("member-phonebook-phone").await;
    b.submit(".entry .call-entry").await;
    assert!(
        b.path().await.starts_with("/member/calls/"),
        "{}",
        b.body().await
    );

    let (own, from) = next_invite(&s.pbx, Duration::from_secs(5))
        .await
        .expect("the member's phone rings");
    assert_eq!(
        own.uri_user.as_deref(),
        Some("01055556666"),
        "the member's own phone first"
    );
    let (_m, _) = answer(&s.pbx, &own, from, "mem", Codec::Pcmu, 0).await;
    let (mum, mfrom) = next_invite_after(&s.pbx, Duration::from_secs(5), &[&own])
        .await
        .expect("then the entry's number");
    assert_eq!(mum.uri_user.as_deref(), Some("025567777"));
    let (_n, _) = answer(&s.pbx, &mum, mfrom, "mum", Codec::Pcmu, 0).await;
    let state = b
        .wait_text("#state", "Connected", Duration::from_secs(5))
        .await;
    assert_eq!(state, "Connected");
    hang_up(&s.pbx, &mum, mfrom, "mum").await;
    let state = b.wait_text("#state", "ended", Duration::from_secs(5)).await;
    assert_eq!(state, "The call has ended");
    // A call booked for later from the same screen shows among the booked calls.
    b.goto(&format!("{}/member", s.url)).await;
    b.click("#book-later summary").await;
    let tomorrow = chrono::DateTime::from_timestamp_millis(
        freecall::clock::Clock::system().unix_ms() + 9 * 3_600_000 + 86_400_000,
    )
    .unwrap()
    .format("%Y-%m-%d")
    .to_string();
    b.fill("#book-later input[name=number]", "02-556-7777")
        .await;
    b.js(&format!(
        "document.getElementById('book-date').value = '{tomorrow}'; document.getElementById('book-time').value = '09:30'; return 1"
    ))
    .await;
    b.submit("#book-button").await;
    let serial = b.text("#serial").await;
    assert!(serial.starts_with("R-"), "{}", b.body().await);
    assert_eq!(b.text("#local").await, format!("{tomorrow} 09:30"));
    b.goto(&format!("{}/member", s.url)).await;
    let upcoming = b.text("#upcoming").await;
    assert!(
        upcoming.contains(&serial) && upcoming.contains("09:30"),
        "{upcoming}"
    );

    b.stop().await;
}

/// Another web site (on 127.0.0.2, so another origin and another site) whose page posts a
/// form to the switch's pages as soon as it loads.
async fn hostile_site(target: &str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0")
        .await
        .expect("127.0.0.2");
    let addr = listener.local_addr().unwrap();
    let page = format!(
        "<!doctype html><html><body>\
<form id=f method=post action=\"{target}\">\
<input name=csrf value=guessed><input name=number value=02-556-7777><input name=name value=Fraud></form>\
<script>document.getElementById('f').submit()</script></body></html>"
    );
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for _ in 0..10 {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_posted_from_another_site_changes_nothing_for_a_logged_in_member() {
    let s = site().await;
    let member = member(&s.store, "dana");
    let b = Browser::start(DESKTOP.0, DESKTOP.1).await;
    b.goto(&format!("{}/login?as=member&lang=en", s.url)).await;
    b.fill("input[name=login]", "dana").await;
    b.fill("input[name=password]", "member secret").await;
    b.submit("button[type=submit]").await;
    assert_eq!(b.path().await, "/member");

    for target in ["/member/dial", "/member/phonebook"] {
        let evil = hostile_site(&format!("{}{target}", s.url)).await;
        b.goto(&format!("http://{evil}/")).await;
        // The form posts itself and the browser lands on the switch's answer.
        let until = freecall::clock::Clock::system().now() + Duration::from_secs(10);
        while !b
            .c
            .current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with(&s.url)
        {
            assert!(
                freecall::clock::Clock::system().now() < until,
                "the hostile form was not sent"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.screenshot(&format!("hostile-post-{}", target.replace('/', "-")))
            .await;
    }
    assert!(
        next_invite(&s.pbx, Duration::from_secs(1)).await.is_none(),
        "no call was placed"
    );
    assert!(
        s.store.phonebook(member.id).unwrap().is_empty(),
        "no entry was added"
    );
    // The member's own session still works on the switch's own pages.
    b.goto(&format!("{}/member", s.url)).await;
    assert_eq!(b.path().await, "/member");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_sign_up_on_the_page_only_where_the_shop_lets_them() {
    let closed = site().await;
    let open = site_with(freecall::config::WebConfig {
        member_signup: true,
        ..common::web_config()
    })
    .await;
    let (a, b) = (closed.addr, open.addr);
    tokio::task::spawn_blocking(move || {
        let r = http::request(a, "GET", "/signup?as=member", &[], None);
        assert_eq!(r.status, 303, "no member sign-up unless the shop enables it");
        assert_eq!(r.header("Location"), Some("/login?as=member"));
        let (cookie, token) = session(b, "/signup?as=member");
        let r = post_form(
            b,
            "/signup",
            &cookie,
            &format!("as=member&login=sora&password=a+long+secret&name=Sora&phone=010-3333-4444&csrf={token}"),
        );
        assert_eq!(r.status, 303, "{}", r.text());
        assert_eq!(r.header("Location"), Some("/member"));
    })
    .await
    .unwrap();
    let (m, _) = open
        .store
        .member_login("sora")
        .unwrap()
        .expect("the member");
    assert_eq!(m.phone, "010-3333-4444");
    assert_eq!(
        m.sip_user, "sora",
        "the login is the softphone's SIP user too"
    );
}
