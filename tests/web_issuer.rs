//! A card's issuer in a real browser (headless Chromium through chromedriver): they sign
//! up, build a card in two languages with a photo, see it as their visitors do (in either
//! language, with its QR code and link preview) and see an edit there at once; save a card
//! as a vCard and import it again as the same card, or import a phone's contact and are
//! told what was left out; and the fences around their login: a form without the
//! session's token makes nothing, the password changes only with the current one, a logout
//! ends the session and guessing passwords is stopped.
//!
//! Screenshots land in `target/screenshots/` for a person to look at.

mod common;

use common::browser::Browser;
use common::http;
use common::pages::{DESKTOP, next_cookie, post_form, session, site};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
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
