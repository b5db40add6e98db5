//! The operator's rate deck: calls abroad priced by the longest matching prefix (a country,
//! a mobile range inside it), one ledger debit each; numbers the deck does not cover priced
//! by their kind; a deck loaded in one step that never reprices a call in progress; the CLI.
//! Real SIP over loopback (a member's softphone, a trunk), both stores.

#[macro_use]
mod common;

use common::{WAIT, http};
use freecall::auth;
use freecall::clock::Clock;
use freecall::config::Config;
use freecall::store::Store;
use freecall::store::shop::NewMember;
use freecall_testkit::{Leg, Phone};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

/// Japan at 300 a minute per whole minute; its mobile ranges (+81 80, +81 90) at 900 a
/// minute in 30/6 with a 50 connection fee.
const DECK: &str = "prefix,name,account,per_minute,increment,connection\n\
81,Japan,any,300,60/60,0\n\
+8190,Japan mobile,any,900,30/6,50\n\
8180,Japan mobile,any,900,30/6,50\n";

static SLOT: AtomicU16 = AtomicU16::new(0);

/// Domestic mobiles have a tariff of their kind (20 a minute); international numbers have
/// none: only what the deck prices can be called abroad. The test's phones send no RTP: the
/// RTP timeout is set above the minutes they talk.
fn config(trunk: SocketAddr) -> Config {
    let slot = SLOT.fetch_add(1, Ordering::Relaxed);
    let port_min = 41000 + slot * 100;
    Config::from_toml(&format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\nt1_ms = 100\n\
[media]\naddress = \"127.0.0.1\"\nport_min = {port_min}\nport_max = {}\nrtp_timeout_secs = 600\n\
[[trunks]]\nname = \"pstn\"\naddress = \"{trunk}\"\n\
[[routes]]\nprefix = \"\"\ntrunks = [\"pstn\"]\n\
[billing]\nhome_country = \"KR\"\nrealm = \"freecall\"\nnode_id = \"deck-{slot}\"\nmax_call_secs = 600\n\
[[tariffs]]\naccount = \"mileage\"\ndestination = \"mobile\"\nper_minute = 20\nincrement = \"1/1\"\n",
        port_min + 98
    ))
    .expect("test config")
}

fn member(store: &Store, login: &str, bonus: i64) -> i64 {
    store
        .create_member(
            &NewMember {
                login: login.into(),
                password_hash: auth::hash_password("pw").unwrap(),
                name: "Kim Minji".into(),
                address: String::new(),
                job: String::new(),
                phone: "01099998888".into(),
                email: String::new(),
                sip_ha1: auth::ha1(login, "freecall", "pw"),
            },
            bonus,
        )
        .unwrap()
        .account_id
}

struct Switch {
    sip: SocketAddr,
    api: SocketAddr,
    store: Store,
    clock: Clock,
    trunk: Phone,
    caller: Phone,
    login: &'static str,
    account: i64,
    _switch: freecall::driver::SwitchHandle,
}

const KEY: &str = "deck-admin-key";

async fn start(store: Store, login: &'static str) -> Switch {
    let clock = Clock::adjustable();
    let store = store.with_clock(clock.clone());
    let account = member(&store, login, 100_000);
    store
        .create_api_key("noc", &auth::api_key_hash(KEY), "admin")
        .unwrap();
    let trunk = Phone::bind("pstn").await;
    let caller = Phone::bind_on("127.0.0.2", login).await;
    let cfg = config(trunk.addr);
    let (switch, tariffs) = common::start_billed_sharing(&cfg, store.clone()).await;
    let api = common::serve_api_sharing(&cfg, &store, &switch, tariffs);
    Switch {
        sip: switch.sip_addr,
        api,
        store,
        clock,
        trunk,
        caller,
        login,
        account,
        _switch: switch,
    }
}

impl Switch {
    async fn http(
        &self,
        method: &str,
        path: &str,
        body: Option<(&'static str, String)>,
    ) -> http::Response {
        let (api, method, path) = (self.api, method.to_string(), path.to_string());
        tokio::task::spawn_blocking(move || {
            let auth = format!("Bearer {KEY}");
            let mut headers = vec![("Authorization", auth.as_str())];
            if let Some((ct, _)) = &body {
                headers.push(("Content-Type", ct));
            }
            http::request(
                api,
                &method,
                &path,
                &headers,
                body.as_ref().map(|(_, b)| b.as_bytes()),
            )
        })
        .await
        .unwrap()
    }

    async fn load(&self, csv: &str) -> http::Response {
        self.http("PUT", "/v1/rate-deck", Some(("text/csv", csv.to_string())))
            .await
    }

    /// Dial `number`, answered by the trunk; the caller's leg.
    async fn answered(&self, number: &str) -> Leg {
        let (c, t, sip) = (&self.caller, &self.trunk, self.sip);
        let sdp = c.sdp("sendrecv");
        let (invite, mut leg) = c.invite(sip, number, &sdp);
        c.send(sip, &invite).await;
        let challenge = c.expect_status(&[407], WAIT).await;
        c.send(sip, &c.ack_failure(&leg, &challenge)).await;
        let again = c.invite_with_credentials(&mut leg, &challenge, &sdp, self.login, "pw");
        c.send(sip, &again).await;
        let (inv, from) = t.expect_request("INVITE", WAIT).await;
        t.send(
            from,
            &t.response(&inv, 200, "OK", "tk", Some(&t.sdp("sendrecv"))),
        )
        .await;
        let ok = c.expect_status(&[200, 402, 403, 404, 503], WAIT).await;
        assert_eq!(ok.status(), Some(200), "{number}: {ok:?}");
        Phone::update_leg(&mut leg, &ok);
        c.send(sip, &c.ack(&leg, leg.cseq)).await;
        leg
    }

    /// Hang up after `talk` on the switch's clock; the call's one debit.
    async fn hang_up_after(&self, mut leg: Leg, talk: Duration) -> i64 {
        let before = self.debits().len();
        // The ACK is read before the clock moves (else the answer looks unacknowledged).
        self.caller.settled(self.sip).await;
        self.clock.advance(talk);
        let (c, sip) = (&self.caller, self.sip);
        c.send(sip, &c.request(&mut leg, "BYE", None)).await;
        c.expect_status(&[200], WAIT).await;
        let (bye, from) = self.trunk.expect_request("BYE", WAIT).await;
        self.trunk
            .send(from, &self.trunk.response(&bye, 200, "OK", "tk", None))
            .await;
        for _ in 0..50 {
            if self.store.open_reservations().unwrap() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let debits = self.debits();
        assert_eq!(debits.len(), before + 1, "one debit for the call");
        debits[before]
    }

    fn debits(&self) -> Vec<i64> {
        let mut d: Vec<(i64, i64)> = self
            .store
            .ledger(self.account, 0, 1000)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "debit")
            .map(|e| (e.id, e.amount))
            .collect();
        d.sort();
        d.into_iter().map(|(_, a)| a).collect()
    }
}

fn run(f: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

on_both_stores!(
    calls_abroad_are_priced_by_the_longest_prefix_of_the_deck,
    |store: Store, _url| run(async move {
        let s = start(store, "minji").await;
        // Before any deck, Japan cannot be called: no tariff covers international numbers.
        let (c, sip) = (&s.caller, s.sip);
        let sdp = c.sdp("sendrecv");
        let (invite, mut leg) = c.invite(sip, "+819012345678", &sdp);
        c.send(sip, &invite).await;
        let challenge = c.expect_status(&[407], WAIT).await;
        c.send(sip, &c.ack_failure(&leg, &challenge)).await;
        c.send(
            sip,
            &c.invite_with_credentials(&mut leg, &challenge, &sdp, "minji", "pw"),
        )
        .await;
        let refused = c.expect_status(&[403], WAIT).await;
        assert!(
            refused
                .header("Reason")
                .unwrap()
                .contains("destination not allowed")
        );
        c.send(sip, &c.ack_failure(&leg, &refused)).await;

        let r = s.load(DECK).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let loaded = r.json();
        assert_eq!(loaded["rates"], 6, "three rows for both account kinds");
        let version = loaded["version"].as_i64().unwrap();

        // A deck with a bad row is refused whole, saying where; the deck in force stays.
        let r = s
            .load("prefix,name,account,per_minute,increment,connection\n44,UK,any,250,60/60,0\n33,France,any,2.5,60/60,0\n")
            .await;
        assert_eq!(r.status, 422, "{}", r.text());
        assert!(
            r.json()["detail"]
                .as_str()
                .unwrap()
                .contains("line 3: per_minute '2.5'")
        );
        // A stranger announcing a large deck is turned away before a byte of it is read.
        let api = s.api;
        assert_eq!(announce(api, None, 30_000_000).await, "HTTP/1.1 401");
        // An operator announcing more than a deck may be is told so before sending it.
        assert_eq!(announce(api, Some(KEY), 40_000_000).await, "HTTP/1.1 413");
        let r = s.http("GET", "/v1/rate-deck?prefix=81", None).await;
        assert_eq!(
            (
                r.json()["version"].as_i64(),
                r.json()["list"].as_array().unwrap().len()
            ),
            (Some(version), 6)
        );

        // What a number would cost, as a shop's developer asks it.
        let r = s
            .http(
                "GET",
                "/v1/rate-deck/price?number=%2B81%2090%201234%205678&account=mileage",
                None,
            )
            .await;
        let p = r.json();
        assert_eq!(
            (
                p["priced_by"].as_str(),
                p["name"].as_str(),
                p["prefix"].as_str()
            ),
            (Some("deck"), Some("Japan mobile"), Some("8190"))
        );
        assert_eq!(
            (
                p["per_minute"].as_i64(),
                p["increment"].as_str(),
                p["connection"].as_i64()
            ),
            (Some(900), Some("30/6"), Some(50))
        );
        let r = s
            .http(
                "GET",
                "/v1/rate-deck/price?number=010-1234-5678&account=mileage",
                None,
            )
            .await;
        assert_eq!(
            (
                r.json()["priced_by"].as_str(),
                r.json()["per_minute"].as_i64()
            ),
            (Some("tariff"), Some(20))
        );

        // One minute each (59.5 s and the messages' moments: 60 started seconds).
        let minute = Duration::from_millis(59_500);
        for (number, cost, why) in [
            ("+819012345678", 950, "Japan mobile: 50 + 900"),
            (
                "001818012345678",
                950,
                "the other mobile range, dialled with 001",
            ),
            ("+81312345678", 300, "Japan (Tokyo): the country's rate"),
            ("010-1234-5678", 20, "a domestic mobile: its kind's tariff"),
        ] {
            let leg = s.answered(number).await;
            assert_eq!(s.hang_up_after(leg, minute).await, cost, "{why}");
        }

        // Abroad but not in the deck: still refused.
        let (invite, mut leg) = c.invite(sip, "+442079460000", &sdp);
        c.send(sip, &invite).await;
        let challenge = c.expect_status(&[407], WAIT).await;
        c.send(sip, &c.ack_failure(&leg, &challenge)).await;
        c.send(
            sip,
            &c.invite_with_credentials(&mut leg, &challenge, &sdp, "minji", "pw"),
        )
        .await;
        c.expect_status(&[403], WAIT).await;

        // The balance answers in minutes per destination of the deck too.
        let r = s
            .http("GET", &format!("/v1/accounts/{}", s.account), None)
            .await;
        let a = r.json();
        assert_eq!(a["balance"].as_i64(), Some(100_000 - 950 - 950 - 300 - 20));
        let left = &a["minutes_left"];
        assert_eq!(left["Japan"].as_i64(), Some(97_780 / 300));
        assert_eq!(
            left["Japan mobile"].as_i64(),
            Some((97_780 - 50) / 900),
            "{a}"
        );
        assert_eq!(left["mobile"].as_i64(), Some(97_780 / 20));
        assert!(s.store.audit().unwrap().is_empty());
    })
);

on_both_stores!(
    a_new_deck_never_reprices_a_call_in_progress,
    |store: Store, _url| run(async move {
        let s = start(store, "sora").await;
        assert_eq!(s.load(DECK).await.status, 200);
        let during = s.answered("+819012345678").await;
        // The carrier's prices went up while the call goes on.
        let dearer = DECK.replace("900,30/6,50", "1800,30/6,50");
        let r = s.load(&dearer).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let minute = Duration::from_millis(59_500);
        assert_eq!(
            s.hang_up_after(during, minute).await,
            950,
            "priced when it was reserved"
        );
        let after = s.answered("+819012345678").await;
        assert_eq!(
            s.hang_up_after(after, minute).await,
            1_850,
            "the next call: the new deck"
        );
        // Removed: Japan is not callable again.
        let r = s.http("DELETE", "/v1/rate-deck", None).await;
        assert_eq!((r.status, r.json()["rates"].as_i64()), (200, Some(0)));
        let r = s
            .http(
                "GET",
                "/v1/rate-deck/price?number=%2B819012345678&account=mileage",
                None,
            )
            .await;
        assert_eq!(r.status, 422, "{}", r.text());
        assert!(s.store.audit().unwrap().is_empty());
    })
);

/// A deck upload that announces `length` bytes and sends only its first line: the
/// status line of the answer, which must come without the rest of the body.
async fn announce(api: SocketAddr, key: Option<&'static str>, length: u64) -> String {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(api).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
        let head = format!(
            "PUT /v1/rate-deck HTTP/1.1\r\nHost: {api}\r\n{auth}Content-Type: text/csv\r\n\
Content-Length: {length}\r\n\r\nprefix,name"
        );
        c.write_all(head.as_bytes()).unwrap();
        let mut first = [0u8; 12];
        c.read_exact(&mut first)
            .expect("answered without waiting for the body");
        String::from_utf8_lossy(&first).to_string()
    })
    .await
    .unwrap()
}

const MINIMAL: &str = "[sip]\nlisten = \"127.0.0.1:0\"\n\
[media]\naddress = \"127.0.0.1\"\nport_min = 40000\nport_max = 40098\n";

/// The operator's command line: import (refused whole on a bad row, with its line), show
/// as CSV, remove; a running switch picks up what another process loaded.
#[test]
fn the_deck_is_imported_shown_and_removed_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("freecall-deck-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("freecall.db");
    let conf = dir.join("freecall.toml");
    std::fs::write(
        &conf,
        format!("{MINIMAL}[database]\nurl = \"{}\"\n", db.display()),
    )
    .unwrap();
    let freecall = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_freecall"))
            .args(args)
            .arg("--config")
            .arg(&conf)
            .output()
            .expect("run freecall");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        "prefix,name,account,per_minute,increment,connection\n81,Japan,gold,300,60/60,0\n",
    )
    .unwrap();
    let (code, _, err) = freecall(&["deck", "import", bad.to_str().unwrap()]);
    assert_eq!(code, Some(65), "{err}");
    assert!(
        err.contains("nothing was loaded") && err.contains("line 2: account 'gold'"),
        "{err}"
    );

    let good = dir.join("deck.csv");
    std::fs::write(&good, DECK).unwrap();
    let (code, _, err) = freecall(&["deck", "import", good.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("rate deck version 1 in force: 6 rates"),
        "{err}"
    );
    let (code, out, _) = freecall(&["deck", "show"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        out.lines().next(),
        Some("prefix,name,account,per_minute,increment,connection,minimum")
    );
    assert!(
        out.contains("8190,Japan mobile,guild,900,30/6,50,0"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 7);

    // A switch already running on this database prices with it from its next heartbeat
    // (what the heartbeat calls, called here).
    let store = common::stores::open(db.to_str().unwrap());
    run(async move {
        let accounting = freecall::accounting::Accounting::new(
            store.clone(),
            Config::from_toml(MINIMAL).unwrap().tariffs(),
            "cli-node".into(),
            Duration::from_secs(5),
            dir.join("spool.jsonl"),
        );
        assert!(accounting.refresh_deck().await.unwrap(), "the deck was new");
        assert!(
            !accounting.refresh_deck().await.unwrap(),
            "and is now in force"
        );
        let t = accounting.tariffs.read().unwrap().clone();
        let rate = t
            .deck_rate(freecall::billing::AccountKind::Guild, "+818012345678")
            .expect("priced by the deck");
        assert_eq!((rate.name.as_str(), rate.per_minute), ("Japan mobile", 900));
        let (code, _, err) = freecall(&["deck", "remove"]);
        assert_eq!(code, Some(0));
        assert!(err.contains("rate deck removed (version 2)"), "{err}");
        assert!(accounting.refresh_deck().await.unwrap());
        let t = accounting.tariffs.read().unwrap().clone();
        assert!(t.deck().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    });
}
