//! The web side in a real browser (headless Chromium through chromedriver): an issuer signs
//! up and builds a card, a visitor on a phone-sized screen calls for free and watches the
//! call connect while the test's SIP phones ring, a member dials from the phone book; and
//! the fences: refusals in the visitor's words, CSRF, password guessing.
//!
//! Screenshots land in `target/screenshots/` for a person to look at.

mod common;

use common::browser::Browser;
use common::http;
use freecall::config::Config;
use freecall::media::codec::Codec;
use freecall::sip::Message;
use freecall::store::Store;
use freecall_testkit::Phone;
use freecall_testkit::audio::RtpEnd;
use std::net::SocketAddr;
use std::time::Duration;

const PHONE: (u32, u32) = (360, 740);
const DESKTOP: (u32, u32) = (1200, 900);

fn config(trunk: SocketAddr) -> Config {
    common::placed::config(
        trunk,
        "web",
        "signup_bonus_guild = 50000\n\
[[tariffs]]\naccount = \"guild\"\ndestination = \"landline\"\nper_minute = 30\nincrement = \"1/1\"\n\
[[tariffs]]\naccount = \"guild\"\ndestination = \"mobile\"\nper_minute = 120\nincrement = \"1/1\"\n\
[[tariffs]]\naccount = \"mileage\"\ndestination = \"mobile\"\nper_minute = 20\nincrement = \"1/1\"\n\
[[tariffs]]\naccount = \"mileage\"\ndestination = \"landline\"\nper_minute = 10\nincrement = \"1/1\"\n",
    )
}

struct Site {
    url: String,
    addr: SocketAddr,
    store: Store,
    pbx: Phone,
    _switch: freecall::driver::SwitchHandle,
}

async fn site() -> Site {
    site_with(common::web_config()).await
}

async fn site_with(web: freecall::config::WebConfig) -> Site {
    let pbx = Phone::bind("pbx").await;
    let cfg = config(pbx.addr);
    let store = common::stores::open(&common::stores::sqlite_url());
    let switch = common::start_billed(&cfg, store.clone()).await;
    let addr = common::serve_site(&cfg, &store, &switch, web);
    Site {
        url: format!("http://{addr}"),
        addr,
        store,
        pbx,
        _switch: switch,
    }
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

use common::placed::{next_invite, next_invite_after, sdp_for, switch_media};

/// Answer `inv` on the PBX with a phone speaking `codec`; the phone and where the switch
/// takes its audio.
async fn answer(
    pbx: &Phone,
    inv: &Message,
    from: SocketAddr,
    tag: &str,
    codec: Codec,
    pt: u8,
) -> (RtpEnd, SocketAddr) {
    let phone = RtpEnd::bind(codec, pt, Some(101)).await;
    pbx.send(from, &pbx.response(inv, 180, "Ringing", tag, None))
        .await;
    pbx.send(
        from,
        &pbx.response(inv, 200, "OK", tag, Some(&sdp_for(&phone))),
    )
    .await;
    (phone, switch_media(inv))
}

/// The far end hangs up `inv`'s call; the other leg's BYE is answered.
async fn hang_up(pbx: &Phone, inv: &Message, from: SocketAddr, tag: &str) {
    let mut leg = pbx.leg_from_request(inv, from, tag);
    let bye = pbx.request(&mut leg, "BYE", None);
    pbx.send(from, &bye).await;
    for _ in 0..20 {
        match pbx.recv(Duration::from_secs(2)).await {
            Some((m, f)) if m.method().map(|x| x.as_str()) == Some("BYE") => {
                pbx.send(f, &pbx.response(&m, 200, "OK", "x", None)).await;
                return;
            }
            Some(_) => continue,
            None => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_signs_up_builds_a_two_language_card_with_a_photo_and_an_edit_shows_at_once() {
    let s = site().await;
    let b = Browser::start(DESKTOP.0, DESKTOP.1).await;

    b.goto(&format!("{}/signup?lang=ko", s.url)).await;
    b.fill("input[name=login]", "minji").await;
    b.fill("input[name=password]", "a long secret").await;
    b.fill("input[name=name]", "김민지").await;
    b.fill("input[name=company]", "한빛상사").await;
    b.submit("button[type=submit]").await;
    assert_eq!(b.path().await, "/issuer", "signed up and logged in");
    // The guild opened with the sign-up bonus.
    assert_eq!(b.text("#balance").await, "50,000");
    assert!(
        b.body().await.contains("남은 통화 시간"),
        "minutes left per kind are shown"
    );

    b.submit("#new-card").await;
    b.fill("input[name=name]", "김민지").await;
    b.fill("input[name=title]", "제품 디자이너").await;
    b.fill("input[name=company]", "한빛상사").await;
    b.fill("textarea[name=text]", "전화 주세요.").await;
    b.select("select[name=alt_language]", "en").await;
    b.fill("input[name=alt_name]", "Minji Kim").await;
    b.fill("input[name=alt_title]", "Product designer").await;
    b.fill("input[name=alt_company]", "Hanbit Trading").await;
    b.select("select[name=phone0_kind]", "mobile").await;
    b.fill("input[name=phone0_number]", "010-2222-3333").await;
    b.click("input[name=phone0_callback]").await;
    b.select("select[name=phone1_kind]", "landline").await;
    b.fill("input[name=phone1_number]", "02-700-1000").await;
    b.select("select[name=design]", "ocean").await;
    b.fill("input[name=quota]", "10").await;
    b.c.find(fantoccini::Locator::Css("input[name=photo]"))
        .await
        .expect("photo field")
        .send_keys(&fixture("photo.png"))
        .await
        .expect("choose the photo");
    b.submit("#save").await;
    assert!(
        b.path().await.starts_with("/issuer/cards/"),
        "saved: {}",
        b.body().await
    );
    assert!(
        b.body().await.contains("저장했습니다"),
        "the editor says it saved"
    );
    b.screenshot("issuer-card-editor").await;
    let public =
        b.c.find(fantoccini::Locator::Css("#public-link"))
            .await
            .expect("public link")
            .attr("href")
            .await
            .expect("href")
            .expect("a link");
    assert!(
        public.starts_with("/c/") && public.len() == 3 + 16,
        "an unguessable link: {public}"
    );

    // The public page, in Korean: name, title, photo, QR code, tel: link, Open Graph.
    b.goto(&format!("{}{public}?lang=ko", s.url)).await;
    assert_eq!(b.text(".name").await, "김민지");
    assert_eq!(b.text(".title").await, "제품 디자이너");
    let loaded = b
        .js("return [document.querySelector('.photo').naturalWidth, document.querySelector('.qr').naturalWidth, \
             document.querySelector('meta[property=\"og:title\"]').content, \
             document.querySelector('meta[property=\"og:image\"]').content, \
             document.querySelector('a[href^=\"tel:\"]').getAttribute('href'), document.body.className]")
        .await;
    assert_eq!(loaded[0], 96, "the uploaded photo is served: {loaded}");
    assert!(
        loaded[1].as_i64().unwrap_or(0) >= 200,
        "the QR code is drawn: {loaded}"
    );
    assert_eq!(loaded[2], "김민지");
    assert!(
        loaded[3]
            .as_str()
            .unwrap_or("")
            .starts_with(&format!("{}/photos/", s.url)),
        "{loaded}"
    );
    assert_eq!(loaded[4], "tel:01022223333");
    assert_eq!(loaded[5], "design-ocean");
    b.screenshot("card-public-ko").await;

    // In English, the English version.
    b.goto(&format!("{}{public}?lang=en", s.url)).await;
    assert_eq!(b.text(".name").await, "Minji Kim");
    assert_eq!(b.text(".title").await, "Product designer");
    assert_eq!(b.text(".company").await, "Hanbit Trading");

    // An edit shows on the public page at once.
    b.goto(&format!("{}/issuer", s.url)).await;
    b.submit("#cards a").await;
    b.fill("input[name=alt_title]", "Head of design").await;
    b.submit("#save").await;
    b.goto(&format!("{}{public}?lang=en", s.url)).await;
    assert_eq!(
        b.text(".title").await,
        "Head of design",
        "the edit is on the page"
    );

    // The photo's URL is its content's hash: cached for good. The page is revalidated.
    let page = http::request(s.addr, "GET", &format!("{public}?lang=en"), &[], None);
    assert_eq!(page.status, 200);
    assert_eq!(page.header("Cache-Control"), Some("private, no-cache"));
    let etag = page.header("ETag").expect("an ETag").to_string();
    assert!(page.text().contains("og:url"), "Open Graph tags");
    let photo = loaded[3]
        .as_str()
        .unwrap()
        .trim_start_matches(&s.url)
        .to_string();
    let img = http::request(s.addr, "GET", &photo, &[], None);
    assert_eq!(img.status, 200);
    assert_eq!(img.header("Content-Type"), Some("image/png"));
    assert!(
        img.header("Cache-Control")
            .unwrap_or("")
            .contains("immutable")
    );
    let cookie = page
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Set-Cookie"))
        .filter_map(|(_, v)| v.split(';').next())
        .find(|c| c.starts_with("freecall="))
        .expect("the visitor's session")
        .to_string();
    let again = http::request(
        s.addr,
        "GET",
        &format!("{public}?lang=en"),
        &[("If-None-Match", &etag), ("Cookie", &cookie)],
        None,
    );
    assert_eq!(again.status, 304, "unchanged: revalidated, not sent again");
    // Without a choice, the browser's language decides.
    let en = http::request(
        s.addr,
        "GET",
        &public,
        &[("Accept-Language", "en-US,en;q=0.9")],
        None,
    );
    assert!(
        en.text().contains("<h1 class=\"name\">Minji Kim</h1>"),
        "English from Accept-Language"
    );
    let ko = http::request(
        s.addr,
        "GET",
        &public,
        &[("Accept-Language", "ko-KR,ko;q=0.9,en;q=0.8")],
        None,
    );
    assert!(
        ko.text().contains("<h1 class=\"name\">김민지</h1>"),
        "Korean from Accept-Language"
    );
    b.stop().await;
}

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
async fn a_card_exported_as_vcard_imports_as_the_same_card_and_a_phones_vcard_3_imports() {
    let s = site().await;
    let b = Browser::start(DESKTOP.0, DESKTOP.1).await;
    b.goto(&format!("{}/signup?lang=en", s.url)).await;
    b.fill("input[name=login]", "jisoo").await;
    b.fill("input[name=password]", "a long secret").await;
    b.fill("input[name=name]", "Jisoo").await;
    b.submit("button[type=submit]").await;
    b.submit("#new-card").await;
    b.fill("input[name=name]", "Jane Doe").await;
    b.fill("input[name=title]", "Buyer").await;
    b.fill("input[name=company]", "Acme; Seoul").await;
    b.fill("textarea[name=text]", "Line one, and two; three")
        .await;
    b.select("select[name=phone0_kind]", "mobile").await;
    b.fill("input[name=phone0_number]", "010-1111-2222").await;
    b.select("select[name=phone1_kind]", "landline").await;
    b.fill("input[name=phone1_number]", "02-555-0100").await;
    b.fill("input[name=quota]", "5").await;
    b.submit("#save").await;
    let edit = b.path().await;

    // Export, as "Save contact" gives it.
    let vcf = b
        .js(&format!(
            "return fetch('{edit}/card.vcf').then(r => r.text())"
        ))
        .await
        .as_str()
        .unwrap()
        .to_string();
    assert!(vcf.starts_with("BEGIN:VCARD\r\nVERSION:4.0\r\n"), "{vcf}");
    assert!(vcf.contains("FN;LANGUAGE=en:Jane Doe"), "{vcf}");
    assert!(vcf.contains("ORG:Acme\\; Seoul"), "{vcf}");
    assert!(
        vcf.contains("TEL;VALUE=URI;TYPE=CELL,VOICE;PREF=1:tel:010-1111-2222"),
        "{vcf}"
    );
    assert!(
        vcf.contains("URL:http://"),
        "the public page's address: {vcf}"
    );
    let file = std::env::temp_dir().join(format!("freecall-export-{}.vcf", std::process::id()));
    std::fs::write(&file, &vcf).unwrap();

    // Import it: a new card, the same as the first.
    b.goto(&format!("{}/issuer", s.url)).await;
    b.c.find(fantoccini::Locator::Css("input[name=vcard]"))
        .await
        .unwrap()
        .send_keys(&file.display().to_string())
        .await
        .unwrap();
    b.submit("form[action='/issuer/cards/import'] button").await;
    assert!(b.body().await.contains("Saved."), "{}", b.body().await);
    let issuer = s.store.issuer_login("jisoo").unwrap().unwrap().0;
    let cards = s.store.cards_of(issuer.id).unwrap();
    assert_eq!(cards.len(), 2);
    let (a, c) = (&cards[0], &cards[1]);
    assert_eq!(
        (&c.name, &c.title, &c.company, &c.text, &c.language),
        (&a.name, &a.title, &a.company, &a.text, &a.language)
    );
    assert_eq!(
        c.phone_numbers_in_order(),
        a.phone_numbers_in_order(),
        "the same numbers by kind"
    );
    assert_ne!(c.slug, a.slug, "a card of its own, with its own link");

    // A phone's vCard 3.0: name, company, title, mobile and work numbers; the fax is left out.
    b.goto(&format!("{}/issuer", s.url)).await;
    b.c.find(fantoccini::Locator::Css("input[name=vcard]"))
        .await
        .unwrap()
        .send_keys(&fixture("phone-3.0.vcf"))
        .await
        .unwrap();
    b.submit("form[action='/issuer/cards/import'] button").await;
    assert!(b.body().await.contains("Saved."), "{}", b.body().await);
    assert!(
        b.body()
            .await
            .contains("Left out of the card: 02-3456-7899 (fax or pager)"),
        "the issuer is told what was left out: {}",
        b.body().await
    );
    let cards = s.store.cards_of(issuer.id).unwrap();
    let p = cards.last().unwrap();
    assert_eq!(
        (p.name.as_str(), p.title.as_str(), p.company.as_str()),
        ("Jisoo Park", "Sales Manager", "Hanbit Trading")
    );
    let numbers: Vec<(String, String)> = p
        .phone_numbers_in_order()
        .into_iter()
        .map(|n| (n.kind, n.number))
        .collect();
    assert_eq!(
        numbers,
        [
            ("mobile".to_string(), "010-4444-5555".to_string()),
            ("landline".into(), "02-3456-7890".into())
        ]
    );

    // Something that is not a vCard gets a page that says so.
    b.goto(&format!("{}/issuer", s.url)).await;
    b.c.find(fantoccini::Locator::Css("input[name=vcard]"))
        .await
        .unwrap()
        .send_keys(&fixture("photo.png"))
        .await
        .unwrap();
    b.submit("form[action='/issuer/cards/import'] button").await;
    assert!(
        b.body().await.contains("this is not a vCard"),
        "{}",
        b.body().await
    );
    assert_eq!(
        s.store.cards_of(issuer.id).unwrap().len(),
        3,
        "nothing was made of it"
    );
    b.stop().await;
}

/// A shop member `login` (password "member secret", phone 010-5555-6666, 10,000 mileage).
use common::member;

/// The cookie jar of a client without a browser: the session cookie and the form token.
fn session(addr: SocketAddr, path: &str) -> (String, String) {
    let r = http::request(addr, "GET", path, &[("Cookie", "lang=en")], None);
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Set-Cookie"))
        .filter_map(|(_, v)| v.split(';').next())
        .find(|c| c.starts_with("freecall="))
        .expect("a session cookie")
        .to_string();
    let body = r.text();
    let token = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("a form token")
        .to_string();
    (format!("{cookie}; lang=en"), token)
}

/// The session cookie a response set (a login renews it), else the one sent.
fn next_cookie(r: &http::Response, old: &str) -> String {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Set-Cookie"))
        .filter_map(|(_, v)| v.split(';').next())
        .find(|c| c.starts_with("freecall="))
        .map(|c| format!("{c}; lang=en"))
        .unwrap_or_else(|| old.to_string())
}

fn post_form(addr: SocketAddr, path: &str, cookie: &str, body: &str) -> http::Response {
    http::request(
        addr,
        "POST",
        path,
        &[
            ("Cookie", cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(body.as_bytes()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_the_sessions_token_and_password_guessing_are_refused() {
    let s = site().await;
    let addr = s.addr;
    tokio::task::spawn_blocking(move || {
        // A sign-up posted from another site (no cookie, no token) makes nothing.
        let r = http::request(
            addr,
            "POST",
            "/signup",
            &[
                ("Cookie", "lang=en"),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            Some(b"as=issuer&login=mallory&password=a+long+secret&name=M&csrf=guess"),
        );
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(r.text().contains("This form has expired"), "{}", r.text());

        let (cookie, token) = session(addr, "/signup");
        let r = post_form(
            addr,
            "/signup",
            &cookie,
            &format!("as=issuer&login=park&password=a+long+secret&name=Park&csrf={token}"),
        );
        assert_eq!(r.status, 303, "{}", r.text());

        // The password can be changed (the current one proves it is the owner), and a
        // logout ends the session.
        let signed_up = r
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Set-Cookie"))
            .filter_map(|(_, v)| v.split(';').next())
            .find(|c| c.starts_with("freecall="))
            .expect("logged in")
            .to_string();
        let cookie = format!("{signed_up}; lang=en");
        let page = http::request(
            addr,
            "GET",
            "/account/password",
            &[("Cookie", &cookie)],
            None,
        );
        let cookie = next_cookie(&page, &cookie);
        let token = page
            .text()
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .expect("token")
            .to_string();
        let r = post_form(
            addr,
            "/account/password",
            &cookie,
            &format!("current=not+it&new=another+secret&csrf={token}"),
        );
        assert_eq!(r.status, 401, "the current password is checked");
        let r = post_form(
            addr,
            "/account/password",
            &cookie,
            &format!("current=a+long+secret&new=another+secret&csrf={token}"),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().contains("Your password has been changed"));
        let cookie = r
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Set-Cookie"))
            .filter_map(|(_, v)| v.split(';').next())
            .find(|c| c.starts_with("freecall="))
            .map(|c| format!("{c}; lang=en"))
            .unwrap_or(cookie);
        let r = post_form(addr, "/logout", &cookie, &format!("csrf={token}"));
        assert_eq!(r.status, 303);
        let after = r
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Set-Cookie"))
            .filter_map(|(_, v)| v.split(';').next())
            .find(|c| c.starts_with("freecall="))
            .unwrap_or("freecall=")
            .to_string();
        let r = http::request(addr, "GET", "/issuer", &[("Cookie", &after)], None);
        assert_eq!(r.status, 303, "logged out: back to the login");
        let (cookie, token) = session(addr, "/login");
        let r = post_form(
            addr,
            "/login",
            &cookie,
            &format!("as=issuer&login=park&password=another+secret&csrf={token}"),
        );
        assert_eq!(r.status, 303, "the new password works");
        let password = "another+secret";

        // Guessing: five wrong passwords, then even the right one is refused for a while.
        let (cookie, token) = session(addr, "/login");
        for _ in 0..5 {
            let r = post_form(
                addr,
                "/login",
                &cookie,
                &format!("as=issuer&login=park&password=wrong+guess&csrf={token}"),
            );
            assert_eq!(r.status, 401);
            assert!(r.text().contains("The login name or password is not right"));
        }
        let r = post_form(
            addr,
            "/login",
            &cookie,
            &format!("as=issuer&login=park&password={password}&csrf={token}"),
        );
        assert_eq!(r.status, 429, "{}", r.text());
        assert!(r.text().contains("Too many failed logins"), "{}", r.text());
        // Login CSRF: the right password with another session's token is refused too.
        let (other, _) = session(addr, "/login");
        let r = post_form(
            addr,
            "/login",
            &other,
            &format!("as=issuer&login=park&password={password}&csrf={token}"),
        );
        assert_eq!(r.status, 403);
    })
    .await
    .unwrap();
    assert!(
        s.store.issuer_login("mallory").unwrap().is_none(),
        "no issuer was made by the forged form"
    );
    assert!(s.store.issuer_login("park").unwrap().is_some());
}

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
