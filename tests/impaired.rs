//! Calls over a bad network: the real daemon and an independent SIP client (pjsua2, both
//! the member's phone and the carrier) with a userspace impairment proxy between them
//! (`common::impair`; these machines have no `netem`) that loses 5 % of the datagrams in
//! each direction, SIP and RTP alike, duplicates and reorders some and adds jitter. Every
//! call of the run completes through the retransmission timers, the duplicates are
//! absorbed by the transactions (one record and one debit per call), and the call records'
//! media statistics report the loss.
//!
//! The phone, the carrier and the switch write the proxy's faces (127.0.0.5, 127.0.0.6)
//! into their messages, so the test runs in a private network namespace it makes itself
//! (`unshare -n`), where the ports it needs are its own and nothing can leave.

mod common;

use common::daemon::{BIN, Daemon, temp_dir, wait_ready};
use common::impair::{Host, Impairment, Proxy};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Set in the run of this test inside the namespace.
const INSIDE: &str = "FREECALL_IMPAIRED_NETNS";
const CALLS: usize = 8;

#[test]
fn calls_complete_through_five_percent_loss_duplicates_and_reordering() {
    if !common::daemon::inside_private_netns(
        "calls_complete_through_five_percent_loss_duplicates_and_reordering",
        INSIDE,
    ) {
        return;
    }

    let dir = temp_dir("impaired");
    let db = dir.join("freecall.db").display().to_string();
    let store = common::stores::open(&db);
    let account = common::daemon::sip_member(&store, "1005", 100_000);
    let cdr_file = dir.join("calls.jsonl");
    let conf = dir.join("freecall.toml");
    std::fs::write(
        &conf,
        format!(
            r#"[sip]
listen = "127.0.0.1:5060"
advertised_address = "127.0.0.6"
[media]
address = "127.0.0.1"
advertised_address = "127.0.0.6"
port_min = 40000
port_max = 40079
{}[cdr]
file = "{}"
"#,
            common::daemon::pstn_and_money("127.0.0.5:5080", &db),
            cdr_file.display()
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
    wait_ready("127.0.0.1:5060".parse::<SocketAddr>().unwrap());

    // The phone (SIP 5070, RTP from 21000) and the carrier (SIP 5080, RTP from 23000) face
    // the switch at 127.0.0.5; the switch (SIP 5060, RTP 40000–40079) faces them at
    // 127.0.0.6.
    let proxy = Proxy::start(
        Host {
            face: "127.0.0.5".parse().unwrap(),
            sip: vec![5070, 5080],
            media: (21000..21010).chain(23000..23010).collect(),
        },
        Host {
            face: "127.0.0.6".parse().unwrap(),
            sip: vec![5060],
            media: (40000..40080).collect(),
        },
        Impairment {
            loss: 0.05,
            duplicate: 0.05,
            reorder: 0.02,
            reorder_by: Duration::from_millis(30),
            delay: Duration::from_millis(5),
            jitter: Duration::from_millis(10),
            seed: 4475,
        },
    );

    let clock = freecall::clock::Clock::system();
    for call in 1..=CALLS {
        let started = clock.now();
        let report = common::daemon::pjsua_call(&[
            "--switch",
            "127.0.0.6:5060",
            "--number",
            "0212345678",
            "--caller-port",
            "5070",
            "--callee-port",
            "5080",
            "--caller-rtp-port",
            "21000",
            "--callee-rtp-port",
            "23000",
            "--public-address",
            "127.0.0.5",
            "--auth-user",
            "1005",
            "--auth-password",
            "pw",
            "--auth-realm",
            "freecall",
            "--seconds",
            "2.5",
            "--setup-timeout",
            "20",
            "--teardown-timeout",
            "20",
            // The caller's BYE or its 200 may be lost after the carrier is already down:
            // its retransmission must get the answer before the phone is switched off.
            "--await-bye-answer",
        ]);
        eprintln!(
            "call {call}: passed in {:.1} s; caller SIP {}; SIP so far: {}; RTP so far: {}",
            (clock.now() - started).as_secs_f64(),
            report["caller"]["sip"],
            proxy.tallies.sip,
            proxy.tallies.media,
        );
    }
    let [_, sip_lost, sip_duplicated, _] = proxy.tallies.sip.get();
    let [rtp_passed, rtp_lost, _, rtp_reordered] = proxy.tallies.media.get();
    eprintln!(
        "the proxy: SIP {}; RTP {}; stray {:?}",
        proxy.tallies.sip, proxy.tallies.media, proxy.tallies.stray
    );
    assert!(
        sip_lost > 0 && sip_duplicated > 0,
        "the run must have lost and doubled signalling to show anything"
    );
    assert!(rtp_passed > 0 && rtp_lost > 0 && rtp_reordered > 0);

    // One record and one debit per call: no duplicate became a call of its own.
    let records = wait_records(&cdr_file, CALLS);
    let mut received = 0u64;
    let mut lost = 0u64;
    let mut late = 0u64;
    let mut doubled = 0u64;
    for r in &records {
        assert_eq!(r["code"], 200, "{r}");
        assert!(r["billed_secs"].as_i64().unwrap() > 0, "{r}");
        for leg in r["media"]["legs"].as_array().expect("media legs") {
            received += leg["received"].as_u64().unwrap();
            lost += leg["lost"].as_u64().unwrap();
            late += leg["late"].as_u64().unwrap();
            doubled += leg["duplicated"].as_u64().unwrap();
        }
    }
    let share = lost as f64 / (received - doubled + lost) as f64;
    eprintln!(
        "the switch's records: {received} RTP packets received, {lost} lost ({:.1} %), \
         {late} late, {doubled} duplicated",
        share * 100.0
    );
    assert!(
        (0.02..=0.10).contains(&share),
        "the records report the 5 % loss: {share}"
    );
    assert!(
        late > 0 && doubled > 0,
        "reordered and doubled packets show as such"
    );

    let mut debited: Vec<String> = store
        .ledger(account, 0, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "debit")
        .filter_map(|e| e.reference)
        .collect();
    let mut calls: Vec<String> = records
        .iter()
        .map(|r| r["call_id"].as_str().unwrap().to_string())
        .collect();
    debited.sort();
    calls.sort();
    assert_eq!(debited, calls, "one debit for each recorded call, no more");
    let cost: i64 = records.iter().map(|r| r["cost"].as_i64().unwrap()).sum();
    let acc = store.account(account).unwrap();
    assert_eq!(
        (acc.balance, acc.reserved),
        (100_000 - cost, 0),
        "billed what the records say, nothing left reserved"
    );
    drop(proxy);
}

/// The JSON-lines call records, once `n` are there (bounded: 10 s).
fn wait_records(file: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON record"))
            .collect();
        if lines.len() >= n {
            assert_eq!(lines.len(), n, "exactly one record per call");
            return lines;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the call records did not all arrive in {}", file.display());
}
