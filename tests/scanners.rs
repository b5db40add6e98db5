//! The tools attackers scan SIP servers with — Debian's sipvicious (`svmap`, `svwar`,
//! `svcrack`) — against the real daemon, in a private network namespace the test makes
//! (their messages name this host's addresses; nothing can leave the namespace):
//! `svwar` enumerates no user (by REGISTER or INVITE, forced or not), `svcrack` finds no
//! password within its budget and is slowed to a crawl, no INVITE reaches the trunk
//! without authentication, the right password from the guessing address gets the same
//! answer as a wrong one while the block lasts, and the blocks are in the log and the
//! metrics.

mod common;

use common::daemon::{BIN, Daemon, temp_dir, wait_ready};
use freecall_testkit::Phone;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};

/// Set in the run of this test inside the namespace.
const INSIDE: &str = "FREECALL_SCANNER_NETNS";
const MEMBER: &str = "1005";
const PASSWORD: &str = "137";

/// A sipvicious tool's output (stdout and stderr), bounded by `secs`.
fn sipvicious(tool: &str, args: &[&str], secs: u64) -> String {
    let out = Command::new("timeout")
        .args(["-k", "5"])
        .arg(secs.to_string())
        .arg(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("{tool} could not be started ({e}): .ci/run installs sipvicious")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("== {tool} {}\n{text}", args.join(" "));
    text
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn sipvicious_finds_no_user_no_password_and_no_way_to_a_trunk() {
    if !common::daemon::inside_private_netns(
        "sipvicious_finds_no_user_no_password_and_no_way_to_a_trunk",
        INSIDE,
    ) {
        return;
    }

    let dir = temp_dir("scanners");
    let db = dir.join("freecall.db").display().to_string();
    let store = common::stores::open(&db);
    common::daemon::sip_member_with(&store, MEMBER, PASSWORD, 100_000);
    drop(store);
    // The carrier: it must never see an INVITE the switch did not authenticate.
    // On 127.0.0.2: a carrier's address is not held back by the flood gate, and the
    // scanners come from 127.0.0.1.
    let trunk = UdpSocket::bind("127.0.0.2:5080").unwrap();
    trunk.set_nonblocking(true).unwrap();
    let conf = dir.join("freecall.toml");
    std::fs::write(
        &conf,
        format!(
            r#"[sip]
listen = "127.0.0.1:5060"
[media]
address = "127.0.0.1"
port_min = 40000
port_max = 40200
{}[api]
listen = "127.0.0.1:8080"
"#,
            common::daemon::pstn_and_money("127.0.0.2:5080", &db)
        ),
    )
    .unwrap();
    let log_path = dir.join("freecall.log");
    let child = Command::new(BIN)
        .args(["serve", "--config", &conf.display().to_string()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .expect("start freecall");
    let _daemon = Daemon(child);
    let sip: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    wait_ready(sip);

    // svmap finds a SIP server (it answers OPTIONS, as a load balancer's probe needs) …
    let map = sipvicious("svmap", &["127.0.0.1", "-p", "5060"], 30);
    assert!(map.contains("127.0.0.1:5060"), "{map}");
    // … but svwar learns no user, by REGISTER or INVITE, even forced to go on.
    for args in [
        vec!["-e1000-1010", "127.0.0.1", "-p", "5060"],
        vec!["--force", "-e1000-1010", "127.0.0.1", "-p", "5060"],
        vec![
            "--force",
            "-m",
            "INVITE",
            "-e1000-1010",
            "127.0.0.1",
            "-p",
            "5060",
        ],
    ] {
        let war = sipvicious("svwar", &args, 60);
        assert!(war.contains("found nothing"), "{war}");
        assert!(!war.contains(&format!("| {MEMBER}")), "{war}");
    }

    // svcrack on the member, with the password in its range: it finds nothing.
    let clock = freecall::clock::Clock::system();
    let started = clock.now();
    let crack = sipvicious(
        "svcrack",
        &["-u", MEMBER, "-r", "100-199", "127.0.0.1", "-p", "5060"],
        10,
    );
    let cracking = clock.now() - started;
    assert!(
        !crack.contains(PASSWORD),
        "svcrack found the password:\n{crack}"
    );
    let log = std::fs::read_to_string(&log_path).unwrap();
    let guesses = log.matches("bad credentials").count();
    assert!(
        log.contains("password guessing: blocked blocked=address 127.0.0.1"),
        "the block is in the log"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // While the block lasts, the right password from that address gets the answer a
        // wrong one gets from an address that is not blocked: nothing to learn.
        let refusal = |ip: &'static str, password: &'static str| async move {
            let phone = Phone::bind_on(ip, MEMBER).await;
            let sdp = phone.sdp("sendrecv");
            let (invite, mut leg) = phone.invite(sip, "0212345678", &sdp);
            phone.send(sip, &invite).await;
            let challenge = phone.expect_status(&[407], common::WAIT).await;
            phone.send(sip, &phone.ack_failure(&leg, &challenge)).await;
            let again = phone.invite_with_credentials(&mut leg, &challenge, &sdp, MEMBER, password);
            phone.send(sip, &again).await;
            let resp = phone
                .expect_status(&[403, 200, 180, 183], common::WAIT)
                .await;
            (
                resp.status(),
                resp.header("Reason").unwrap_or_default().to_string(),
            )
        };
        let blocked = refusal("127.0.0.1", PASSWORD).await;
        let wrong = refusal("127.0.0.3", "000").await;
        assert_eq!(
            blocked, wrong,
            "the right password while blocked, a wrong one elsewhere"
        );
        assert_eq!(blocked.0, Some(403));
    });
    let mut buf = [0u8; 4096];
    let mut at_trunk = Vec::new();
    while let Ok(n) = trunk.recv(&mut buf) {
        at_trunk.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        !at_trunk.iter().any(|m| m.starts_with("INVITE ")),
        "an INVITE reached the trunk: {at_trunk:?}"
    );

    let metrics = common::http::request(
        "127.0.0.1:8080".parse().unwrap(),
        "GET",
        "/metrics",
        &[],
        None,
    )
    .text();
    let blocks = metric(
        &metrics,
        "freecall_auth_guard_total{event=\"blocked_address\"}",
    );
    let refused = metric(
        &metrics,
        "freecall_auth_guard_total{event=\"refused_while_blocked\"}",
    );
    let dropped = metric(
        &metrics,
        "freecall_limit_refusals_total{limit=\"requests_per_address\"}",
    );
    assert!(blocks >= 1.0, "the block is in the metrics:\n{metrics}");
    eprintln!(
        "svcrack: {guesses} passwords checked in {:.1} s before the block, {refused} more answered unchecked; {dropped} requests dropped by the flood gate; {blocks} address block(s)",
        cracking.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
