//! Greetings and recordings (C12) as the people on the calls meet them: over real
//! sockets, with the test's PBX answering as the issuer's and the visitor's phones, real
//! RTP carrying real audio, uploads through the REST API, and the recording's file fetched
//! back the way a browser's player does (range requests). The store parts run on SQLite
//! and PostgreSQL.

mod common;

use common::http;
use common::placed::{next_invite, sdp_for, switch_media};
use freecall::config::Config;
use freecall::media::codec::Codec;
use freecall::store::Store;
use freecall_testkit::Phone;
use freecall_testkit::audio::{RtpEnd, level_dbfs, rms_dbfs, tone_wav};
use serde_json::json;
use std::io::Cursor;
use std::net::SocketAddr;
use std::time::Duration;

fn config(trunk: SocketAddr, media: &str) -> Config {
    common::placed::config(
        trunk,
        "gr",
        &format!(
            "[[tariffs]]\naccount = \"guild\"\ndestination = \"landline\"\nper_minute = 30\nincrement = \"1/1\"\n\
[[tariffs]]\naccount = \"guild\"\ndestination = \"mobile\"\nper_minute = 120\nincrement = \"1/1\"\n{media}"
        ),
    )
}

struct Setup {
    api: SocketAddr,
    store: Store,
    key: String,
    _switch: freecall::driver::SwitchHandle,
}

async fn setup(cfg: &Config) -> Setup {
    let url = common::stores::sqlite_url();
    let store = common::stores::open(&url);
    let switch = common::start_billed(cfg, store.clone()).await;
    let api = common::serve_api(cfg, &store, &switch);
    let key = format!("fc_test_admin_{}", std::process::id());
    store
        .create_api_key("admin", &freecall::auth::api_key_hash(&key), "admin")
        .unwrap();
    Setup {
        api,
        store,
        key,
        _switch: switch,
    }
}

fn card(store: &Store, login: &str) -> i64 {
    let phones = r#"[{"kind":"mobile","number":"010-2222-3333","callback":true}]"#;
    common::cards::issue(store, login, 100_000, 5, phones, "").0
}

async fn send(
    api: SocketAddr,
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
) -> http::Response {
    tokio::task::spawn_blocking(move || {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        http::request(api, method, &path, &h, body.as_deref())
    })
    .await
    .unwrap()
}

fn auth(key: &str) -> (String, String) {
    ("Authorization".into(), format!("Bearer {key}"))
}

async fn upload(s: &Setup, path: String, content_type: &str, body: Vec<u8>) -> http::Response {
    send(
        s.api,
        "PUT",
        path,
        vec![auth(&s.key), ("Content-Type".into(), content_type.into())],
        Some(body),
    )
    .await
}

async fn ask_callback(s: &Setup, card: i64, record: bool) -> String {
    let body = serde_json::to_vec(&json!({"number": "02-556-1234", "record": record})).unwrap();
    let r = send(
        s.api,
        "POST",
        format!("/v1/cards/{card}/callbacks"),
        vec![("Content-Type".into(), "application/json".into())],
        Some(body),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

/// The request's steps, as `GET /v1/calls/{id}` lists them.
async fn steps(s: &Setup, id: &str) -> (Vec<String>, serde_json::Value) {
    let r = send(s.api, "GET", format!("/v1/calls/{id}"), vec![], None).await;
    let v = r.json();
    let names = v["steps"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["state"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    (names, v)
}

/// The issuer's phone answers the switch's INVITE; its RTP end and the switch's address.
async fn answer(
    pbx: &Phone,
    codec: Codec,
    pt: u8,
    tag: &str,
) -> (freecall::sip::Message, SocketAddr, RtpEnd, SocketAddr) {
    let (inv, from) = next_invite(pbx, Duration::from_secs(5))
        .await
        .expect("an INVITE");
    let end = RtpEnd::bind(codec, pt, Some(101)).await;
    pbx.send(
        from,
        &pbx.response(&inv, 200, "OK", tag, Some(&sdp_for(&end))),
    )
    .await;
    let to_switch = switch_media(&inv);
    (inv, from, end, to_switch)
}

/// The next request of `method` the PBX gets (others are skipped), answered 200.
async fn expect_request(pbx: &Phone, method: &str, tag: &str) -> Option<freecall::sip::Message> {
    for _ in 0..40 {
        match pbx.recv(Duration::from_secs(2)).await {
            Some((m, f)) if m.method().map(|x| x.as_str()) == Some(method) => {
                pbx.send(f, &pbx.response(&m, 200, "OK", tag, None)).await;
                return Some(m);
            }
            Some(_) => continue,
            None => return None,
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_who_declines_leaves_the_visitor_their_own_greeting() {
    let pbx = Phone::bind("pbx").await;
    let cfg = config(pbx.addr, "");
    let s = setup(&cfg).await;
    let card = card(&s.store, "kim");
    let greetings = format!("/v1/cards/{card}/greetings/declined");

    // What an issuer's upload meets: only audio, at most 30 s, not silence.
    let r = upload(
        &s,
        greetings.clone(),
        "image/png",
        b"\x89PNG\r\n\x1a\n".to_vec(),
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.text());
    let r = upload(
        &s,
        greetings.clone(),
        "audio/wav",
        b"\x89PNG\r\n\x1a\nnot a sound".to_vec(),
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["type"], "urn:freecall:problem:bad-audio");
    let r = upload(
        &s,
        greetings.clone(),
        "audio/wav",
        tone_wav(8000, 1, 31.0, 800.0, -12.0),
    )
    .await;
    assert_eq!(r.status, 422);
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("at most 30 s"),
        "{}",
        r.text()
    );
    let r = upload(
        &s,
        format!("/v1/cards/{card}/greetings/lunch"),
        "audio/wav",
        tone_wav(8000, 1, 1.0, 800.0, -12.0),
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(
        s.store.greetings(card).unwrap().is_empty(),
        "nothing refused was kept"
    );

    // A laptop's recording: 3 s of 800 Hz at CD quality, stereo.
    let r = upload(
        &s,
        greetings.clone(),
        "audio/wav",
        tone_wav(44100, 2, 3.0, 800.0, -12.0),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["greetings"][0]["event"], "declined");
    assert_eq!(v["greetings"][0]["voice"], "uploaded");
    let ms = v["greetings"][0]["duration_ms"].as_i64().unwrap();
    assert!((2980..=3020).contains(&ms), "{ms}");
    // What the switch will play, fetched back: 8 kHz mono.
    let r = send(
        s.api,
        "GET",
        format!("{greetings}/audio"),
        vec![auth(&s.key)],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let stored = hound::WavReader::new(Cursor::new(r.body)).unwrap();
    assert_eq!(
        (stored.spec().sample_rate, stored.spec().channels),
        (8000, 1)
    );

    let id = ask_callback(&s, card, false).await;
    let (issuer_inv, _, issuer, to_issuer) = answer(&pbx, Codec::Pcmu, 0, "iss").await;
    assert_eq!(issuer_inv.uri_user.as_deref(), Some("01022223333"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    issuer.send_digit(to_issuer, 2).await;
    let bye = expect_request(&pbx, "BYE", "iss")
        .await
        .expect("the issuer is hung up");
    assert_eq!(bye.call_id, issuer_inv.call_id);

    let (visitor_inv, from, visitor, to_visitor) = answer(&pbx, Codec::Pcma, 8, "vis").await;
    assert_eq!(visitor_inv.uri_user.as_deref(), Some("025561234"));
    // The visitor's phone keeps sending (as phones do) and hears the greeting.
    let (heard, _) = tokio::join!(
        visitor.collect(Duration::from_millis(800), Duration::from_secs(6)),
        visitor.send_tone(to_visitor, 300.0, -30.0, 150, |_| false),
    );
    let pcm = visitor.decode(&heard);
    let one = |from: usize, len: usize| &pcm[from.min(pcm.len())..(from + len).min(pcm.len())];
    eprintln!(
        "declined: the visitor heard {:.2} s, 800 Hz at {:.1} dBFS (uploaded at -12 dBFS)",
        pcm.len() as f64 / 8000.0,
        level_dbfs(one(4000, 16000), 800.0)
    );
    assert!(
        pcm.len() >= 2 * 8000,
        "at least 2 s of the greeting: {}",
        pcm.len()
    );
    assert!(
        level_dbfs(one(4000, 16000), 800.0) > -18.0,
        "the visitor hears the issuer's own greeting (800 Hz at -12 dBFS): {:.1} dBFS",
        level_dbfs(one(4000, 16000), 800.0)
    );
    let bye = expect_request(&pbx, "BYE", "vis")
        .await
        .expect("the visitor is hung up after it");
    assert_eq!(bye.call_id, visitor_inv.call_id);
    assert!(bye.header("Reason").unwrap_or("").contains("declined"));
    let _ = from;

    let record = common::stores::wait_record(&s.store, &id)
        .await
        .expect("one record");
    assert_eq!(record.cause, "issuer declined");
    let legs: Vec<(String, i64)> = record
        .legs
        .iter()
        .map(|l| (l.role.clone(), l.billed_secs))
        .collect();
    assert_eq!(legs[0].0, "issuer");
    assert!(
        legs[0].1 <= 2,
        "the issuer pays their own second or so: {legs:?}"
    );
    assert!(
        (3..=5).contains(&legs[1].1),
        "the visitor's leg is the greeting's length: {legs:?}"
    );
    let (names, v) = steps(&s, &id).await;
    assert_eq!(
        names,
        [
            "requested",
            "calling_issuer",
            "issuer_answered",
            "declined",
            "calling_visitor",
            "greeting",
            "ended"
        ],
        "{v}"
    );
    assert!(s.store.audit().unwrap().is_empty(), "the ledger adds up");
}

/// Read a WAV the switch wrote.
fn samples(wav: &[u8]) -> Vec<i16> {
    hound::WavReader::new(Cursor::new(wav))
        .unwrap()
        .samples::<i16>()
        .map(|s| s.unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_call_holds_the_notice_and_both_voices_and_plays_back_with_ranges() {
    let pbx = Phone::bind("pbx").await;
    let dir = std::env::temp_dir().join(format!("freecall-rec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = config(pbx.addr, "");
    let mut cfg = cfg;
    cfg.media.recordings_dir = dir.display().to_string();
    let s = setup(&cfg).await;
    let card = card(&s.store, "lee");

    let id = ask_callback(&s, card, true).await;
    let (_, _, issuer, to_issuer) = answer(&pbx, Codec::Pcmu, 0, "iss").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    issuer.send_digit(to_issuer, 1).await;
    let (visitor_inv, from, visitor, to_visitor) = answer(&pbx, Codec::Pcma, 8, "vis").await;

    // Both hear "this call is recorded" before anything else.
    let (at_visitor, at_issuer) = tokio::join!(
        visitor.collect(Duration::from_millis(400), Duration::from_millis(1500)),
        issuer.collect(Duration::from_millis(400), Duration::from_millis(1500)),
    );
    for (who, pcm) in [
        ("visitor", visitor.decode(&at_visitor)),
        ("issuer", issuer.decode(&at_issuer)),
    ] {
        assert!(
            pcm.len() >= 4000 && rms_dbfs(&pcm) > -40.0,
            "the {who} hears the notice ({} samples, {:.1} dBFS)",
            pcm.len(),
            rms_dbfs(&pcm)
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Then they talk: the issuer at 1000 Hz, the visitor at 600 Hz, 2 s each at once.
    tokio::join!(
        issuer.send_tone(to_issuer, 1000.0, -12.0, 100, |_| false),
        visitor.send_tone(to_visitor, 600.0, -12.0, 100, |_| false),
    );
    let mut leg = pbx.leg_from_request(&visitor_inv, from, "vis");
    pbx.send(from, &pbx.request(&mut leg, "BYE", None)).await;
    expect_request(&pbx, "BYE", "iss")
        .await
        .expect("the issuer is hung up");

    // The row says how long and large the file came out.
    let mut row = None;
    for _ in 0..50 {
        match s.store.recording(&id) {
            Ok(r) if r.state != "recording" => {
                row = Some(r);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let row = row.expect("the recording's row");
    eprintln!(
        "recording: {} ms, {} bytes, state {}",
        row.duration_ms.unwrap_or(0),
        row.bytes.unwrap_or(0),
        row.state
    );
    assert_eq!(row.state, "ready");
    assert_eq!(row.card_id, Some(card));
    let ms = row.duration_ms.unwrap();
    assert!((3000..9000).contains(&ms), "{ms} ms recorded");

    let list = send(
        s.api,
        "GET",
        format!("/v1/recordings?card_id={card}"),
        vec![auth(&s.key)],
        None,
    )
    .await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json()[0]["call_id"], id.as_str());
    let audio = format!("/v1/recordings/{id}/audio");
    // Nobody without the owner's key hears it.
    let r = send(s.api, "GET", audio.clone(), vec![], None).await;
    assert_eq!(r.status, 401);

    // A player asks for the header first, then the rest.
    let r = send(
        s.api,
        "GET",
        audio.clone(),
        vec![auth(&s.key), ("Range".into(), "bytes=0-43".into())],
        None,
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(&r.body[..4], b"RIFF");
    assert_eq!(r.body.len(), 44);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes 0-43/{}", row.bytes.unwrap()).as_str())
    );
    assert_eq!(r.header("Content-Type"), Some("audio/wav"));
    let r = send(s.api, "GET", audio.clone(), vec![auth(&s.key)], None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len() as i64, row.bytes.unwrap());
    let pcm = samples(&r.body);
    eprintln!(
        "recording: notice {:.1} dBFS in its first second, issuer 1000 Hz {:.1} dBFS, visitor 600 Hz {:.1} dBFS",
        rms_dbfs(&pcm[..8000.min(pcm.len())]),
        level_dbfs(&pcm, 1000.0),
        level_dbfs(&pcm, 600.0)
    );
    assert!(
        rms_dbfs(&pcm[..8000.min(pcm.len())]) > -40.0,
        "the recording starts with the notice"
    );
    assert!(
        level_dbfs(&pcm, 1000.0) > -30.0,
        "the issuer's voice is in it"
    );
    assert!(
        level_dbfs(&pcm, 600.0) > -30.0,
        "the visitor's voice is in it"
    );

    let r = send(
        s.api,
        "DELETE",
        format!("/v1/recordings/{id}"),
        vec![auth(&s.key)],
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert!(
        !std::path::Path::new(&row.path).exists(),
        "the file is gone"
    );
    let r = send(s.api, "GET", audio, vec![auth(&s.key)], None).await;
    assert_eq!(r.status, 404);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_the_recording_but_never_the_call() {
    let pbx = Phone::bind("pbx").await;
    let dir = std::env::temp_dir().join(format!("freecall-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = config(pbx.addr, "");
    cfg.media.recordings_dir = dir.display().to_string();
    let s = setup(&cfg).await;
    let card = card(&s.store, "park");
    s.store.set_record_calls(card, true).unwrap();

    let id = ask_callback(&s, card, false).await;
    // The recording's file will be a disk that is full: every write fails (ENOSPC).
    std::os::unix::fs::symlink("/dev/full", dir.join(format!("{id}.wav"))).unwrap();
    let (_, _, issuer, to_issuer) = answer(&pbx, Codec::Pcmu, 0, "iss").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    issuer.send_digit(to_issuer, 1).await;
    let (visitor_inv, from, visitor, to_visitor) = answer(&pbx, Codec::Pcmu, 0, "vis").await;
    // Both hear the notice first (what arrived meanwhile is drained: it is not the test).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    tokio::join!(
        visitor.collect(Duration::from_millis(100), Duration::from_millis(400)),
        issuer.collect(Duration::from_millis(100), Duration::from_millis(400)),
    );
    let (heard_v, heard_i, _, _) = tokio::join!(
        visitor.collect(Duration::from_millis(300), Duration::from_millis(1500)),
        issuer.collect(Duration::from_millis(300), Duration::from_millis(1500)),
        visitor.send_tone(to_visitor, 600.0, -12.0, 60, |_| false),
        issuer.send_tone(to_issuer, 1000.0, -12.0, 60, |_| false),
    );
    let (v_pcm, i_pcm) = (visitor.decode(&heard_v), issuer.decode(&heard_i));
    let (v_level, i_level) = (level_dbfs(&v_pcm, 1000.0), level_dbfs(&i_pcm, 600.0));
    eprintln!(
        "full disk: the visitor hears the issuer at {v_level:.1} dBFS, the issuer the visitor at {i_level:.1} dBFS"
    );
    assert!(
        v_level > -18.0,
        "the visitor hears the issuer: {v_level:.1} dBFS in {} samples",
        v_pcm.len()
    );
    assert!(
        i_level > -18.0,
        "the issuer hears the visitor: {i_level:.1} dBFS in {} samples",
        i_pcm.len()
    );
    let (_, v) = steps(&s, &id).await;
    assert_eq!(v["state"], "connected");
    let mut leg = pbx.leg_from_request(&visitor_inv, from, "vis");
    pbx.send(from, &pbx.request(&mut leg, "BYE", None)).await;
    expect_request(&pbx, "BYE", "iss")
        .await
        .expect("the issuer is hung up");
    let record = common::stores::wait_record(&s.store, &id)
        .await
        .expect("the call's record");
    assert!(record.billed_secs >= 3, "the call was billed as usual");
    let mut state = String::new();
    for _ in 0..50 {
        state = s.store.recording(&id).map(|r| r.state).unwrap_or_default();
        if state == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "failed", "the owner sees that the recording failed");
    let _ = std::fs::remove_dir_all(&dir);
}

on_both_stores!(
    greetings_and_recordings_rows,
    |store: Store, _url: String| {
        use freecall::billing::RecordingStarted;
        use freecall::store::recordings::{Owner, RecordingClosed};
        let phones = r#"[{"kind":"mobile","number":"010-2222-3333","callback":true}]"#;
        let (card, _) = common::cards::issue(&store, "choi", 1000, 1, phones, "");
        store.set_greeting(card, "busy", None, 0).unwrap();
        store
            .set_greeting(card, "no-answer", Some(b"RIFF...."), 1200)
            .unwrap();
        store
            .set_greeting(card, "no-answer", Some(b"RIFF2..."), 1300)
            .unwrap();
        assert!(store.set_greeting(card, "lunch", None, 0).is_err());
        let g = store.greetings(card).unwrap();
        let seen: Vec<(&str, i64)> = g
            .iter()
            .map(|g| (g.event.as_str(), g.duration_ms))
            .collect();
        assert_eq!(
            seen,
            [("no-answer", 1300), ("busy", 0)],
            "in EVENTS order, replaced"
        );
        assert!(store.remove_greeting(card, "busy").unwrap());
        assert_eq!(store.greetings(card).unwrap().len(), 1);

        // The file's half may come before the owner's: one row either way.
        let closed = RecordingClosed {
            call_id: "fc-a".into(),
            path: "/tmp/fc-a.wav".into(),
            duration_ms: 4000,
            bytes: 64_044,
            failed: false,
        };
        store
            .recording_closed("n1", &closed, 1_800_000_010_000)
            .unwrap();
        let started = |id: &str, at: i64| RecordingStarted {
            call_id: id.into(),
            path: format!("/tmp/{id}.wav"),
            card: Some(card),
            account: None,
            started_ms: at,
        };
        store
            .recording_started("n1", &started("fc-a", 1_800_000_005_000))
            .unwrap();
        store
            .recording_started("n1", &started("fc-b", 1_700_000_000_000))
            .unwrap();
        let a = store.recording("fc-a").unwrap();
        assert_eq!(
            (a.state.as_str(), a.duration_ms, a.card_id),
            ("ready", Some(4000), Some(card))
        );
        assert_eq!(a.started_ms, 1_800_000_005_000);
        let b = store.recording("fc-b").unwrap();
        assert_eq!(b.state, "recording", "still going");
        let mine = store.recordings_of(Owner::Card(card), 10).unwrap();
        assert_eq!(
            mine.iter().map(|r| r.call_id.as_str()).collect::<Vec<_>>(),
            ["fc-a", "fc-b"]
        );
        let issuer = store.recording_issuer(&a).unwrap().unwrap();
        assert_eq!(
            store
                .recordings_of(Owner::Issuer(issuer), 10)
                .unwrap()
                .len(),
            2
        );
        assert!(
            store
                .recordings_of(Owner::Account(999), 10)
                .unwrap()
                .is_empty()
        );
        let old = store
            .expired_recordings("n1", 1_750_000_000_000, 10)
            .unwrap();
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].call_id, "fc-b");
        assert!(
            store
                .expired_recordings("n2", 1_750_000_000_000, 10)
                .unwrap()
                .is_empty(),
            "only this node's files"
        );
    }
);

#[tokio::test]
async fn the_retention_sweep_deletes_old_recordings_files_and_rows() {
    use freecall::billing::RecordingStarted;
    let url = common::stores::sqlite_url();
    let store = common::stores::open(&url);
    let dir = std::env::temp_dir().join(format!("freecall-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let day = 86_400_000i64;
    let now = 1_800_000_000_000i64;
    let mut files = Vec::new();
    for (id, age_days) in [("fc-old", 91), ("fc-older", 400), ("fc-new", 89)] {
        let path = dir.join(format!("{id}.wav"));
        std::fs::write(&path, b"RIFF").unwrap();
        files.push(path.clone());
        store
            .recording_started(
                "n1",
                &RecordingStarted {
                    call_id: id.into(),
                    path: path.display().to_string(),
                    card: None,
                    account: None,
                    started_ms: now - age_days * day,
                },
            )
            .unwrap();
    }
    let keeper = freecall::recordings::Keeper {
        store: store.clone(),
        node: "n1".into(),
        retention: Some(Duration::from_secs(90 * 86_400)),
    };
    assert_eq!(keeper.sweep(now).await.unwrap(), 2);
    assert!(
        !files[0].exists() && !files[1].exists(),
        "old files deleted"
    );
    assert!(files[2].exists(), "the recent one kept");
    assert!(store.recording("fc-old").is_err() && store.recording("fc-older").is_err());
    assert!(store.recording("fc-new").is_ok());
    assert_eq!(keeper.sweep(now).await.unwrap(), 0, "nothing twice");
    let keep_forever = freecall::recordings::Keeper {
        retention: None,
        ..keeper
    };
    assert_eq!(keep_forever.sweep(now + 1000 * day).await.unwrap(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_greeting_is_heard_when_the_issuer_is_busy_or_does_not_answer() {
    let pbx = Phone::bind("pbx").await;
    let cfg = config(pbx.addr, "[callbacks]\nring_secs = 2\n");
    let s = setup(&cfg).await;
    for (login, event) in [("busy", "busy"), ("away", "no-answer")] {
        let card = card(&s.store, login);
        let r = upload(
            &s,
            format!("/v1/cards/{card}/greetings/{event}"),
            "application/json",
            br#"{"voice":"shipped"}"#.to_vec(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["greetings"][0]["voice"], "shipped");
        let id = ask_callback(&s, card, false).await;
        let (issuer_inv, from) = next_invite(&pbx, Duration::from_secs(5))
            .await
            .expect("the issuer is called");
        if event == "busy" {
            pbx.send(
                from,
                &pbx.response(&issuer_inv, 486, "Busy Here", "iss", None),
            )
            .await;
        } else {
            // It rings, and nobody answers within callbacks.ring_secs.
            pbx.send(
                from,
                &pbx.response(&issuer_inv, 180, "Ringing", "iss", None),
            )
            .await;
        }
        let visitor_inv = loop {
            let (inv, from) = next_invite(&pbx, Duration::from_secs(6))
                .await
                .unwrap_or_else(|| panic!("{event}: the visitor is called"));
            if inv.uri_user.as_deref() == Some("025561234") {
                let end = RtpEnd::bind(Codec::Pcmu, 0, Some(101)).await;
                pbx.send(
                    from,
                    &pbx.response(&inv, 200, "OK", "vis", Some(&sdp_for(&end))),
                )
                .await;
                break (inv, end);
            }
        };
        let (inv, visitor) = visitor_inv;
        let to_visitor = switch_media(&inv);
        let (heard, _) = tokio::join!(
            visitor.collect(Duration::from_millis(800), Duration::from_secs(12)),
            visitor.send_tone(to_visitor, 300.0, -30.0, 100, |_| false),
        );
        let pcm = visitor.decode(&heard);
        eprintln!(
            "{event}: the visitor heard {:.2} s of the shipped greeting at {:.1} dBFS",
            pcm.len() as f64 / 8000.0,
            rms_dbfs(&pcm)
        );
        // The shipped English greetings last 7 to 9 s: heard whole, and spoken.
        assert!(
            pcm.len() >= 6 * 8000,
            "{event}: the whole greeting reaches the visitor ({} samples)",
            pcm.len()
        );
        assert!(
            rms_dbfs(&pcm) > -35.0,
            "{event}: audible ({:.1} dBFS)",
            rms_dbfs(&pcm)
        );
        let bye = expect_request(&pbx, "BYE", "vis")
            .await
            .expect("the visitor is hung up");
        assert_eq!(bye.call_id, inv.call_id);
        let record = common::stores::wait_record(&s.store, &id)
            .await
            .expect("a record");
        assert_eq!(
            record.legs[0].billed_secs, 0,
            "{event}: the issuer's leg never answered"
        );
        let (names, _) = steps(&s, &id).await;
        assert_eq!(
            names[names.len() - 3..],
            ["calling_visitor", "greeting", "ended"],
            "{event}"
        );
    }
}
