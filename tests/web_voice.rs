//! Greetings, the whisper and recordings on the pages, in a real browser (headless
//! Chromium): an issuer uploads their own greeting from a laptop's WAV and hears it in the
//! editor, picks the shipped voice for another case, is told why a picture is refused,
//! records a whisper, has every call recorded; recordings play in the browser's own player
//! (which fetches them with range requests), for their owner only.

mod common;

use common::browser::Browser;
use common::http;
use freecall::billing::RecordingStarted;
use freecall::store::Store;
use freecall::store::cards::{NewCard, NewIssuer};
use freecall::store::recordings::RecordingClosed;
use freecall_testkit::Phone;
use freecall_testkit::audio::tone_wav;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

const PHONE: (u32, u32) = (360, 740);
const DESKTOP: (u32, u32) = (1200, 900);

struct Site {
    url: String,
    addr: SocketAddr,
    store: Store,
    _pbx: Phone,
    _switch: freecall::driver::SwitchHandle,
}

async fn site() -> Site {
    let pbx = Phone::bind("pbx").await;
    let cfg = common::placed::config(
        pbx.addr,
        "voice",
        "[[tariffs]]\naccount = \"guild\"\ndestination = \"mobile\"\nper_minute = 120\n",
    );
    let store = common::stores::open(&common::stores::sqlite_url());
    let switch = common::start_billed(&cfg, store.clone()).await;
    let addr = common::serve_site(&cfg, &store, &switch, common::web_config());
    Site {
        url: format!("http://{addr}"),
        addr,
        store,
        _pbx: pbx,
        _switch: switch,
    }
}

fn scratch() -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("freecall-voice-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

/// An issuer who can log in (`login` / "issuer secret") with one card: (issuer, card).
fn issuer_with_card(store: &Store, login: &str) -> (i64, i64) {
    let issuer = store
        .create_issuer(
            &NewIssuer {
                login: login.into(),
                password_hash: freecall::auth::hash_password("issuer secret").unwrap(),
                name: "Jane Doe".into(),
                company: "Acme".into(),
            },
            50_000,
        )
        .unwrap();
    let card = store
        .create_card(&NewCard {
            issuer_id: issuer.id,
            language: "en".into(),
            name: "Jane Doe".into(),
            title: String::new(),
            company: "Acme".into(),
            text: String::new(),
            image_url: String::new(),
            video_url: String::new(),
            design: String::new(),
            phones: r#"[{"kind":"mobile","number":"010-2222-3333","callback":true}]"#.into(),
            quota: 10,
            callback_countries: String::new(),
        })
        .unwrap();
    (issuer.id, card.id)
}

/// A finished recording of `secs` on the card (or the account), its file in `dir`.
fn recording(
    store: &Store,
    dir: &Path,
    id: &str,
    card: Option<i64>,
    account: Option<i64>,
    secs: f64,
) {
    let path = write(
        dir,
        &format!("{id}.wav"),
        &tone_wav(8000, 1, secs, 440.0, -12.0),
    );
    let now = freecall::clock::Clock::system().unix_ms();
    store
        .recording_started(
            "voice",
            &RecordingStarted {
                call_id: id.into(),
                path: path.clone(),
                card,
                account,
                started_ms: now - 60_000,
            },
        )
        .unwrap();
    store
        .recording_closed(
            "voice",
            &RecordingClosed {
                call_id: id.into(),
                bytes: std::fs::metadata(&path).unwrap().len() as i64,
                path,
                duration_ms: (secs * 1000.0) as i64,
                failed: false,
            },
            now,
        )
        .unwrap();
}

async fn login(b: &Browser, url: &str, role: &str, login: &str, password: &str) {
    b.goto(&format!("{url}/login?as={role}&lang=en")).await;
    b.fill("input[name=login]", login).await;
    b.fill("input[name=password]", password).await;
    b.submit("button[type=submit]").await;
    assert_eq!(b.path().await, format!("/{role}"));
}

/// The browser's own player has loaded `css`'s audio: its duration in seconds.
async fn player_duration(b: &Browser, css: &str) -> f64 {
    let script = format!(
        "const a = document.querySelector('{css}'); a.preload = 'auto'; a.load(); \
         for (let i = 0; i < 100 && !(a.readyState >= 1 && isFinite(a.duration)); i++) \
           {{ await new Promise(r => setTimeout(r, 50)); }} \
         return a.duration;"
    );
    b.js(&format!("return (async () => {{ {script} }})()"))
        .await
        .as_f64()
        .unwrap_or(f64::NAN)
}

async fn choose(b: &Browser, css: &str, file: &str) {
    b.c.find(fantoccini::Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .send_keys(file)
        .await
        .expect("choose the file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_sets_greetings_a_whisper_and_recording_and_plays_recordings_on_a_phone() {
    let s = site().await;
    let (_, card) = issuer_with_card(&s.store, "jane");
    let files = scratch();
    let laptop = write(
        &files,
        "meeting.wav",
        &tone_wav(44100, 2, 3.0, 800.0, -12.0),
    );
    let long = write(&files, "long.wav", &tone_wav(8000, 1, 6.0, 800.0, -12.0));
    let short = write(&files, "short.wav", &tone_wav(22050, 1, 2.0, 800.0, -12.0));
    let picture = write(&files, "photo.png", b"\x89PNG\r\n\x1a\nnot a sound at all");
    recording(&s.store, &files, "fc-rec1", Some(card), None, 4.0);

    let b = Browser::start(PHONE.0, PHONE.1).await;
    login(&b, &s.url, "issuer", "jane", "issuer secret").await;
    b.goto(&format!("{}/issuer/cards/{card}", s.url)).await;
    let row = |event: &str| format!("#greeting-list li[data-event={event}]");
    assert_eq!(
        b.text(&format!("{} .greeting-state", row("declined")))
            .await,
        "Off"
    );

    // Their own greeting for "declined", from a laptop's CD-quality stereo WAV.
    choose(
        &b,
        &format!("{} input[name=audio]", row("declined")),
        &laptop,
    )
    .await;
    b.submit(&format!("{} button[value=upload]", row("declined")))
        .await;
    assert_eq!(
        b.text(&format!("{} .greeting-state", row("declined")))
            .await,
        "Your recording (3.0 s)"
    );
    let secs = player_duration(&b, &format!("{} audio", row("declined"))).await;
    assert!(
        (secs - 3.0).abs() < 0.05,
        "the editor plays it back: {secs} s"
    );

    // A picture is refused with the reason, and nothing changes.
    choose(&b, &format!("{} input[name=audio]", row("busy")), &picture).await;
    b.submit(&format!("{} button[value=upload]", row("busy")))
        .await;
    assert!(
        b.text(".error").await.contains("not audio"),
        "{}",
        b.body().await
    );
    assert_eq!(
        b.text(&format!("{} .greeting-state", row("busy"))).await,
        "Off"
    );

    // The shipped voice for "no answer"; recording every call.
    b.submit(&format!("{} button[value=shipped]", row("no-answer")))
        .await;
    assert_eq!(
        b.text(&format!("{} .greeting-state", row("no-answer")))
            .await,
        "Our voice"
    );
    b.click("#record-form input[name=record_calls]").await;
    b.submit("#record-form button").await;
    assert!(s.store.card(card).unwrap().record_calls);
    let on: Vec<String> = s
        .store
        .greetings(card)
        .unwrap()
        .into_iter()
        .map(|g| g.event)
        .collect();
    assert_eq!(on, ["no-answer", "declined"]);

    // The card's recordings play in the page.
    let secs = player_duration(&b, "#recording-list li[data-call=fc-rec1] audio").await;
    assert!((secs - 4.0).abs() < 0.05, "the recording plays: {secs} s");
    let nothing_scrolls = b
        .js("return document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        .await;
    assert_eq!(nothing_scrolls, true, "nothing scrolls sideways on a phone");
    b.js("document.getElementById('greetings').scrollIntoView(); return 1")
        .await;
    b.screenshot("issuer-greetings-phone").await;

    // The whisper: 6 s is too long, 2 s is kept.
    b.goto(&format!("{}/issuer", s.url)).await;
    choose(&b, "input[name=audio]", &long).await;
    b.submit("button[value=upload]").await;
    assert!(b.body().await.contains("at most 5 s"), "{}", b.body().await);
    choose(&b, "input[name=audio]", &short).await;
    b.submit("button[value=upload]").await;
    let secs = player_duration(&b, "#whisper ~ p audio").await;
    assert!((secs - 2.0).abs() < 0.05, "the whisper plays: {secs} s");
    b.js("document.getElementById('whisper').scrollIntoView(); return 1")
        .await;
    b.screenshot("issuer-whisper-phone").await;

    // The editor and the guild page at desktop width.
    let d = Browser::start(DESKTOP.0, DESKTOP.1).await;
    login(&d, &s.url, "issuer", "jane", "issuer secret").await;
    d.goto(&format!("{}/issuer/cards/{card}", s.url)).await;
    d.js("document.getElementById('greetings').scrollIntoView(); return 1")
        .await;
    d.screenshot("issuer-greetings-desktop").await;
    d.goto(&format!("{}/issuer", s.url)).await;
    d.js("document.getElementById('whisper').scrollIntoView(); return 1")
        .await;
    d.screenshot("issuer-whisper-desktop").await;
    d.stop().await;

    // Deleting the recording takes the file with it.
    b.goto(&format!("{}/issuer/cards/{card}", s.url)).await;
    b.submit("#recording-list li[data-call=fc-rec1] button")
        .await;
    assert!(s.store.recording("fc-rec1").is_err());
    assert!(!files.join("fc-rec1.wav").exists());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_plays_their_own_recordings_and_nobody_else_can() {
    let s = site().await;
    let files = scratch();
    let accounts: Vec<i64> = ["sora", "other"]
        .iter()
        .map(|login| common::member(&s.store, login).account_id)
        .collect();
    recording(&s.store, &files, "fc-mem1", None, Some(accounts[0]), 2.5);

    let b = Browser::start(PHONE.0, PHONE.1).await;
    login(&b, &s.url, "member", "sora", "member secret").await;
    assert_eq!(
        b.js("return document.querySelector('#dial-record').type")
            .await,
        "checkbox",
        "a dial can be recorded"
    );
    let secs = player_duration(&b, "#recording-list li[data-call=fc-mem1] audio").await;
    assert!((secs - 2.5).abs() < 0.05, "their recording plays: {secs} s");
    b.screenshot("member-dial-phone").await;
    b.js("document.getElementById('recordings').scrollIntoView(); return 1")
        .await;
    b.screenshot("member-recordings-phone").await;
    b.stop().await;
    // The same pages at desktop width.
    let d = Browser::start(DESKTOP.0, DESKTOP.1).await;
    login(&d, &s.url, "member", "sora", "member secret").await;
    d.screenshot("member-dial-desktop").await;
    d.stop().await;

    // Another member (and nobody logged in) gets nothing.
    let addr = s.addr;
    let status = tokio::task::spawn_blocking(move || {
        let anon = http::request(addr, "GET", "/recordings/fc-mem1/audio", &[], None);
        assert_eq!(anon.status, 303, "to the login");
        let r = http::request(addr, "GET", "/login?as=member&lang=en", &[], None);
        let cookie = r
            .headers
            .iter()
            .find(|(n, v)| n.eq_ignore_ascii_case("Set-Cookie") && v.starts_with("freecall="))
            .map(|(_, v)| v.split(';').next().unwrap().to_string())
            .unwrap();
        let token = r
            .text()
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .unwrap()
            .to_string();
        let body = format!("csrf={token}&as=member&login=other&password=member+secret");
        let r = http::request(
            addr,
            "POST",
            "/login",
            &[
                ("Cookie", cookie.as_str()),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            Some(body.as_bytes()),
        );
        let cookie = r
            .headers
            .iter()
            .find(|(n, v)| n.eq_ignore_ascii_case("Set-Cookie") && v.starts_with("freecall="))
            .map(|(_, v)| v.split(';').next().unwrap().to_string())
            .unwrap_or(cookie);
        let mine = http::request(addr, "GET", "/member", &[("Cookie", cookie.as_str())], None);
        assert_eq!(mine.status, 200, "the other member is logged in");
        http::request(
            addr,
            "GET",
            "/recordings/fc-mem1/audio",
            &[("Cookie", cookie.as_str())],
            None,
        )
        .status
    })
    .await
    .unwrap();
    assert_eq!(status, 404, "not theirs");
}
