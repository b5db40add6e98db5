//! A carrier that challenges every request the switch sends it — the OPTIONS ping, the
//! INVITE, the BYE — with SHA-256 digest (RFC 7616, qop=auth), against the real daemon:
//! each challenge is answered once with the trunk's account, as the carrier computes it
//! (the trunk's REGISTER too: the registration shows in /metrics and /healthz),
//! and the trunk's password appears nowhere an operator or the NOC can read: the log (at
//! trace level), /metrics, /healthz, /v1/cdrs and the JSON-lines record file.

mod common;

use common::WAIT;
use common::daemon::{BIN, Daemon, ROOT, api_key, free_port, shipped_config, temp_dir, wait_ready};
use freecall::sip::Message;
use freecall_testkit::Phone;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

const USER: &str = "acme-7";
const PASSWORD: &str = "Zq9-carrier-secret";
const REALM: &str = "carrier.example";

fn sha256(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// `msg` with one more header line.
fn with_header(msg: Vec<u8>, line: &str) -> Vec<u8> {
    String::from_utf8(msg)
        .unwrap()
        .replacen("Content-Length:", &format!("{line}\r\nContent-Length:"), 1)
        .into_bytes()
}

/// The carrier's check of an answer to its challenge with `nonce`, computed here from the
/// RFC 7616 formulas (not with the switch's code): the digest is right, for this request.
fn carrier_accepts(req: &Message, header: &str, nonce: &str) {
    let value = req
        .header(header)
        .unwrap_or_else(|| panic!("{} without {header}", req.cseq_method));
    let param = |name: &str| -> String {
        value
            .split(',')
            .map(str::trim)
            .map(|p| p.strip_prefix("Digest ").unwrap_or(p))
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| panic!("no {name} in {value}"))
    };
    assert_eq!(param("algorithm"), "SHA-256", "{value}");
    assert_eq!(param("username"), USER);
    assert_eq!(param("realm"), REALM);
    assert_eq!(param("nonce"), nonce, "the nonce of this challenge");
    assert_eq!(param("qop"), "auth");
    let ha1 = sha256(&format!("{USER}:{REALM}:{PASSWORD}"));
    let ha2 = sha256(&format!("{}:{}", req.cseq_method, param("uri")));
    let want = sha256(&format!(
        "{ha1}:{nonce}:{}:{}:auth:{ha2}",
        param("nc"),
        param("cnonce")
    ));
    assert_eq!(
        param("response"),
        want,
        "{} answered as the carrier computes it",
        req.cseq_method
    );
}

fn challenge_line(header: &str, nonce: &str) -> String {
    format!(
        "{header}: Digest realm=\"{REALM}\", nonce=\"{nonce}\", qop=\"auth\", algorithm=SHA-256"
    )
}

/// The carrier answers `req` (from `from`) with a `code` challenge carrying `nonce`
/// (acknowledged, for an INVITE): the same request comes again once, with the next CSeq
/// and a digest the carrier accepts. The request and where it came from.
async fn challenged(
    carrier: &Phone,
    req: &Message,
    from: SocketAddr,
    code: u16,
    nonce: &str,
) -> (Message, SocketAddr) {
    let (phrase, challenge, answer) = match code {
        407 => (
            "Proxy Authentication Required",
            "Proxy-Authenticate",
            "Proxy-Authorization",
        ),
        _ => ("Unauthorized", "WWW-Authenticate", "Authorization"),
    };
    let resp = carrier.response(req, code, phrase, "c1", None);
    carrier
        .send(from, &with_header(resp, &challenge_line(challenge, nonce)))
        .await;
    let method = req.cseq_method.as_str();
    if method == "INVITE" {
        carrier.expect_request("ACK", WAIT).await;
    }
    let (again, from) = carrier.expect_request(method, WAIT).await;
    assert_eq!(
        (again.call_id.as_str(), again.cseq),
        (req.call_id.as_str(), req.cseq + 1),
        "{method} asked again once, in the same call"
    );
    carrier_accepts(&again, answer, nonce);
    (again, from)
}

fn http_text(addr: SocketAddr, path: &str, key: Option<&str>) -> String {
    let r = common::http::call(addr, "GET", path, key, &[], None);
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r.text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_challenging_every_request_gets_each_answered_once_and_never_the_password() {
    let dir = temp_dir("carrier-daemon");
    let carrier = Phone::bind("carrier").await;
    let (sip_port, api_port) = (free_port(), free_port());
    let path = |p: &str| dir.join(p).display().to_string();
    let conf = shipped_config(
        sip_port,
        &carrier.addr.to_string(),
        api_port,
        46000,
        &[
            ("# username = \"acme-7\"", format!("username = \"{USER}\"")),
            (
                "# password = \"the carrier's password\"",
                format!("password = \"{PASSWORD}\"\nregister = true"),
            ),
            (
                "url = \"data/freecall.db\"",
                format!("url = \"{}\"", path("freecall.db")),
            ),
            (
                "prompts_dir = \"prompts\"",
                format!("prompts_dir = \"{ROOT}/prompts\""),
            ),
            (
                "file = \"data/cdr/calls.jsonl\"",
                format!("file = \"{}\"", path("calls.jsonl")),
            ),
        ],
    );
    let conf_path = path("freecall.toml");
    std::fs::write(&conf_path, conf).unwrap();
    let log_path = dir.join("freecall.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--config", &conf_path])
        .current_dir(&dir)
        .env("RUST_LOG", "trace")
        .env("FREECALL__SIP__TRUNK_PING_SECS", "30")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start freecall");
    let _daemon = Daemon(child);
    let sip: SocketAddr = format!("127.0.0.1:{sip_port}").parse().unwrap();
    let api: SocketAddr = format!("127.0.0.1:{api_port}").parse().unwrap();

    // The health check's OPTIONS, challenged with 401: asked again with the credentials.
    let (ping, from) = carrier.expect_request("OPTIONS", WAIT).await;
    assert!(ping.header("Authorization").is_none());
    let (ping2, from) = challenged(&carrier, &ping, from, 401, "ping-nonce").await;
    carrier
        .send(from, &carrier.response(&ping2, 200, "OK", "c1", None))
        .await;

    // The trunk registers; its REGISTER is challenged too.
    let (reg, from) = carrier.expect_request("REGISTER", WAIT).await;
    let (reg2, from) = challenged(&carrier, &reg, from, 401, "reg-nonce").await;
    let granted = String::from_utf8(carrier.response(&reg2, 200, "OK", "c1", None))
        .unwrap()
        .replacen(
            &format!("Contact: <sip:carrier@{}>", carrier.addr),
            &format!(
                "Contact: <{}>;expires=600",
                reg2.contact_uri.as_deref().unwrap_or_default()
            ),
            1,
        );
    carrier.send(from, granted.as_bytes()).await;
    wait_ready(sip);

    // A call from the shipped configuration's trusted local peer.
    let caller = Phone::bind("caller").await;
    let (invite, mut leg) = caller.invite(sip, "0212345678", &caller.sdp("sendrecv"));
    caller.send(sip, &invite).await;
    let (first, from) = carrier.expect_request("INVITE", WAIT).await;
    assert!(first.header("Proxy-Authorization").is_none());
    let (again, from) = challenged(&carrier, &first, from, 407, "invite-nonce").await;
    let answer = carrier.response(&again, 200, "OK", "c1", Some(&carrier.sdp("sendrecv")));
    carrier.send(from, &answer).await;
    carrier.expect_request("ACK", WAIT).await;
    let ok = caller.expect_status(&[200], WAIT).await;
    Phone::update_leg(&mut leg, &ok);
    caller.send(sip, &caller.ack(&leg, leg.cseq)).await;
    caller.settled(sip).await;

    // The caller hangs up; the carrier challenges the BYE as well.
    caller
        .send(sip, &caller.request(&mut leg, "BYE", None))
        .await;
    let (bye, from) = carrier.expect_request("BYE", WAIT).await;
    let (bye2, from) = challenged(&carrier, &bye, from, 401, "bye-nonce").await;
    carrier
        .send(from, &carrier.response(&bye2, 200, "OK", "c1", None))
        .await;
    caller.expect_status(&[200], WAIT).await;

    // Everything an operator or the NOC can read, once the call's record is out.
    let key = api_key(&conf_path, &path("freecall.db"), "read", "noc");
    let mut cdrs = String::new();
    for _ in 0..50 {
        cdrs = http_text(api, "/v1/cdrs", Some(&key));
        if cdrs.contains(&first.call_id) || cdrs.contains("0212345678") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cdrs.contains("0212345678"), "the call's record: {cdrs}");
    let mut file = String::new();
    for _ in 0..50 {
        file = std::fs::read_to_string(path("calls.jsonl")).unwrap_or_default();
        if file.contains("0212345678") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(file.contains("0212345678"), "the record file: {file}");
    let metrics = http_text(api, "/metrics", None);
    assert!(
        metrics.contains("freecall_trunk_registered{trunk=\"pstn\"} 1"),
        "the registration in the metrics: {metrics}"
    );
    let health = http_text(api, "/healthz", None);
    assert!(
        health.contains("\"pstn\":\"registered\""),
        "the registration in the health check: {health}"
    );
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("0212345678") && log.contains("pstn"),
        "the log tells of the call and the trunk (so it could have leaked): {} bytes",
        log.len()
    );
    for (what, text) in [
        ("the log", &log),
        ("/v1/cdrs", &cdrs),
        ("the record file", &file),
        ("/metrics", &metrics),
        ("/healthz", &health),
    ] {
        assert!(
            !text.contains(PASSWORD),
            "the trunk's password is in {what}"
        );
    }
    eprintln!(
        "searched {} bytes of log, {} of records, {} of metrics: no password",
        log.len(),
        cdrs.len() + file.len(),
        metrics.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
