//! Call records for the NOC, with the real binary: the live feed (server-sent events) shows
//! a call within a second of its BYE and resumes after `Last-Event-ID` without repeats;
//! `freecall cdr tail -f` follows across a restart of the switch without gaps or
//! duplicates; the JSON-lines file holds the same records.

mod common;

use common::daemon::{BIN, Daemon, free_port, wait_ready};
use freecall_testkit::Phone;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

struct Setup {
    dir: std::path::PathBuf,
    conf: String,
    sip: SocketAddr,
    api: SocketAddr,
    trunk_port: u16,
    key: String,
    env: Vec<(&'static str, String)>,
}

/// The shipped configuration with this test's ports, database and record file.
fn setup(name: &str) -> Setup {
    let dir = std::env::temp_dir().join(format!("freecall-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (sip_port, trunk_port, api_port) = (free_port(), free_port(), free_port());
    let conf = common::daemon::shipped_config(
        sip_port,
        &format!("127.0.0.1:{trunk_port}"),
        api_port,
        47000,
        &[
            ("shutdown_grace_secs = 30", "shutdown_grace_secs = 2".into()),
            (
                "file = \"data/cdr/calls.jsonl\"",
                format!("file = \"{}\"", dir.join("cdr/calls.jsonl").display()),
            ),
        ],
    );
    let conf_path = dir.join("freecall.toml");
    std::fs::write(&conf_path, conf).unwrap();
    let conf = conf_path.display().to_string();
    let db = dir.join("freecall.db").display().to_string();
    let env = vec![
        ("FREECALL__DATABASE__URL", db.clone()),
        ("FREECALL__API__LISTEN", format!("127.0.0.1:{api_port}")),
        ("FREECALL__BILLING__NODE_ID", "noc-test".to_string()),
    ];
    let key = common::daemon::api_key(&conf, &db, "read", "noc");
    Setup {
        dir,
        conf,
        sip: format!("127.0.0.1:{sip_port}").parse().unwrap(),
        api: format!("127.0.0.1:{api_port}").parse().unwrap(),
        trunk_port,
        key,
        env,
    }
}

/// The trunk, on the port the configuration names, and a caller.
async fn phones(trunk_port: u16) -> (Phone, Phone) {
    let sip = tokio::net::UdpSocket::bind(("127.0.0.1", trunk_port))
        .await
        .unwrap();
    let mut trunk = Phone::bind("pstn").await;
    trunk.addr = sip.local_addr().unwrap();
    trunk.sip = sip;
    (trunk, Phone::bind("noc-caller").await)
}

/// One answered call, hung up by the caller after 300 ms; when the BYE was sent.
async fn call(sip: SocketAddr, trunk: &Phone, caller: &Phone, number: &str) -> Instant {
    let (invite, mut leg) = caller.invite(sip, number, &caller.sdp("sendrecv"));
    caller.send(sip, &invite).await;
    let (inv, from) = trunk.expect_request("INVITE", WAIT).await;
    trunk
        .send(
            from,
            &trunk.response(&inv, 200, "OK", "tk", Some(&trunk.sdp("sendrecv"))),
        )
        .await;
    let ok = caller.expect_status(&[200], WAIT).await;
    Phone::update_leg(&mut leg, &ok);
    caller.send(sip, &caller.ack(&leg, leg.cseq)).await;
    trunk.expect_request("ACK", WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    caller
        .send(sip, &caller.request(&mut leg, "BYE", None))
        .await;
    #[allow(clippy::disallowed_methods)]
    let bye_at = Instant::now();
    let (bye, from) = trunk.expect_request("BYE", WAIT).await;
    trunk
        .send(from, &trunk.response(&bye, 200, "OK", "tk", None))
        .await;
    caller.expect_status(&[200], WAIT).await;
    bye_at
}

/// A server-sent-events reader: (id, record) pairs as they arrive.
struct Sse {
    stream: TcpStream,
    pending: String,
}

impl Sse {
    fn open(api: SocketAddr, key: &str, last_event_id: Option<i64>) -> Sse {
        let mut stream = TcpStream::connect(api).unwrap();
        let resume = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "GET /v1/cdrs/stream HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer {key}\r\n{resume}Accept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        Sse {
            stream,
            pending: String::new(),
        }
    }

    /// Events that arrive within `wait`.
    fn events(&mut self, wait: Duration) -> Vec<(i64, serde_json::Value)> {
        #[allow(clippy::disallowed_methods)]
        let until = Instant::now() + wait;
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        #[allow(clippy::disallowed_methods)]
        while Instant::now() < until {
            #[allow(clippy::disallowed_methods)]
            let left = until
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(10));
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.pending.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(_) => break,
            }
            let mut id = None;
            for line in self.pending.split('\n') {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.trim().parse::<i64>().ok();
                } else if let Some(v) = line.strip_prefix("data: ")
                    && let (Some(i), Ok(json)) = (id, serde_json::from_str(v.trim()))
                {
                    out.push((i, json));
                    id = None;
                }
            }
            // Keep only an unfinished last line.
            self.pending = self.pending.rsplit('\n').next().unwrap_or("").to_string();
            if !out.is_empty() {
                break;
            }
        }
        out
    }
}

#[test]
fn the_live_feed_shows_a_call_within_a_second_and_resumes_without_repeats() {
    let s = setup("feed");
    let mut daemon = Daemon::spawn(&s.conf, &s.env);
    wait_ready(s.sip);
    common::daemon::wait_api(s.api);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (trunk, caller) = rt.block_on(phones(s.trunk_port));
    let mut feed = Sse::open(s.api, &s.key, None);
    let bye_at = rt.block_on(call(s.sip, &trunk, &caller, "0212345678"));
    let got = feed.events(Duration::from_secs(3));
    #[allow(clippy::disallowed_methods)]
    let latency = Instant::now().saturating_duration_since(bye_at);
    assert_eq!(got.len(), 1, "one record: {got:?}");
    assert!(
        latency < Duration::from_secs(1),
        "the record came {latency:?} after the BYE"
    );
    let (first_id, r) = &got[0];
    assert_eq!(r["callee"], "0212345678");
    assert_eq!(r["code"], 200);
    assert_eq!(r["ended_by"], "caller");
    assert_eq!(r["trunk"], "pstn");
    assert_eq!(r["destination"], "landline");
    assert_eq!(r["codec_caller"], "PCMU");
    assert!(r["media"]["legs"][0]["received"].is_u64());
    drop(feed);

    // Disconnected: a call happens; on reconnect only that one is new.
    rt.block_on(call(s.sip, &trunk, &caller, "0311112222"));
    let mut again = Sse::open(s.api, &s.key, Some(*first_id));
    let got = again.events(Duration::from_secs(3));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].0 > *first_id);
    assert_eq!(got[0].1["callee"], "0311112222");
    assert!(
        again.events(Duration::from_millis(700)).is_empty(),
        "nothing repeated"
    );

    // The list endpoint filters by number.
    let r = common::http::call(
        s.api,
        "GET",
        "/v1/cdrs?number=0311112222",
        Some(&s.key),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let page = r.json();
    assert_eq!(page["cdrs"].as_array().unwrap().len(), 1);
    let r = common::http::call(
        s.api,
        "GET",
        "/v1/cdrs?since=yesterday",
        Some(&s.key),
        &[],
        None,
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(
        common::http::call(s.api, "GET", "/healthz", None, &[], None).status,
        200
    );
    assert_eq!(
        common::http::call(s.api, "GET", "/readyz", None, &[], None).status,
        200
    );
    daemon.signal("-TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[test]
fn cdr_tail_follows_across_a_restart_without_gaps_or_duplicates() {
    let s = setup("tail");
    let mut daemon = Daemon::spawn(&s.conf, &s.env);
    wait_ready(s.sip);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (trunk, caller) = rt.block_on(phones(s.trunk_port));
    rt.block_on(call(s.sip, &trunk, &caller, "0212340001"));
    let tail = Command::new(BIN)
        .args([
            "cdr", "tail", "--config", &s.conf, "-f", "--format", "json", "--for", "12",
        ])
        .env("FREECALL__DATABASE__URL", &s.env[0].1)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let tail = scopeguard(tail);
    rt.block_on(call(s.sip, &trunk, &caller, "0212340002"));
    // The switch restarts (SIGTERM: drained, records written), and calls go on.
    daemon.signal("-TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));
    let mut daemon = Daemon::spawn(&s.conf, &s.env);
    wait_ready(s.sip);
    rt.block_on(call(s.sip, &trunk, &caller, "0212340003"));
    rt.block_on(call(s.sip, &trunk, &caller, "0212340004"));
    let out = tail.into_inner().wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let numbers: Vec<&str> = lines
        .iter()
        .map(|r| r["callee"].as_str().unwrap())
        .collect();
    assert_eq!(
        numbers,
        ["0212340001", "0212340002", "0212340003", "0212340004"]
    );
    let ids: Vec<i64> = lines.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in order, once each: {ids:?}"
    );

    // The table format has readable columns, and a number filter.
    let table = Command::new(BIN)
        .args([
            "cdr",
            "tail",
            "--config",
            &s.conf,
            "--number",
            "02-1234-0003",
        ])
        .env("FREECALL__DATABASE__URL", &s.env[0].1)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(rows[0].starts_with("ID") && rows[0].contains("CALLEE") && rows[0].contains("CAUSE"));
    assert!(
        rows[1].contains("0212340003") && rows[1].contains("caller hung up"),
        "{text}"
    );

    // The JSON-lines file holds the same four records.
    let file = std::fs::read_to_string(s.dir.join("cdr/calls.jsonl")).unwrap();
    let in_file: Vec<String> = file
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["callee"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(in_file, numbers);
    daemon.signal("-TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));
    let _ = std::fs::remove_dir_all(&s.dir);
}

/// A child process that is killed if the test fails before it is waited for.
struct Guard(Option<std::process::Child>);

impl Guard {
    fn into_inner(mut self) -> std::process::Child {
        self.0.take().unwrap()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn scopeguard(c: std::process::Child) -> Guard {
    Guard(Some(c))
}
