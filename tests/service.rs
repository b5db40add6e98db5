//! The switch as a service: SIGHUP reloads trunks and the dial plan under load without dropping a call (and a bad
//! configuration changes nothing); `/metrics` moves when calls happen.

mod common;

use common::daemon::{Daemon, free_port, wait_ready};
use freecall_testkit::{Leg, Phone, auto_trunk};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

/// INVITE → 200 → ACK: the caller's leg (the trunk answers by itself).
async fn answered(caller: &Phone, sip: SocketAddr, number: &str) -> Leg {
    let (invite, mut leg) = caller.invite(sip, number, &caller.sdp("sendrecv"));
    caller.send(sip, &invite).await;
    let ok = caller.expect_status(&[200], WAIT).await;
    Phone::update_leg(&mut leg, &ok);
    caller.send(sip, &caller.ack(&leg, leg.cseq)).await;
    leg
}

async fn hang_up(caller: &Phone, sip: SocketAddr, leg: &mut Leg) {
    caller.send(sip, &caller.request(leg, "BYE", None)).await;
    caller.expect_status(&[200], WAIT).await;
}

fn write_conf(path: &std::path::Path, sip: u16, api: u16, trunk: SocketAddr) {
    let conf = common::daemon::shipped_config(
        sip,
        &trunk.to_string(),
        api,
        48000,
        &[
            ("file = \"data/cdr/calls.jsonl\"", "file = \"\"".into()),
            ("local_ringback = true", "local_ringback = false".into()),
        ],
    );
    std::fs::write(path, conf).unwrap();
}

#[test]
fn sighup_reloads_trunks_under_load_without_dropping_a_call() {
    let dir = std::env::temp_dir().join(format!("freecall-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (sip_port, api_port) = (free_port(), free_port());
    let sip: SocketAddr = format!("127.0.0.1:{sip_port}").parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (old, new) = rt.block_on(async { (Phone::bind("old").await, Phone::bind("new").await) });
    let conf = dir.join("freecall.toml");
    write_conf(&conf, sip_port, api_port, old.addr);
    let env = [(
        "FREECALL__DATABASE__URL",
        dir.join("freecall.db").display().to_string(),
    )];
    let mut daemon = Daemon::spawn(conf.to_str().unwrap(), &env);
    wait_ready(sip);
    let new_addr = new.addr;
    let (to_old, to_new) = rt.block_on(async { (auto_trunk(old).1, auto_trunk(new).1) });
    let (old_calls, new_calls) = rt.block_on(async {
        let caller = Phone::bind("caller").await;
        // A call in progress across the reload.
        let mut long = answered(&caller, sip, "0212345678").await;
        // Load: callers placing short calls back to back while the reload happens.
        let load = tokio::spawn(async move {
            let mut done = 0;
            for i in 0..40 {
                let c = Phone::bind(&format!("load{i}")).await;
                let mut leg = answered(&c, sip, "0311112222").await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                hang_up(&c, sip, &mut leg).await;
                done += 1;
            }
            done
        });
        tokio::time::sleep(Duration::from_millis(400)).await;
        write_conf(&conf, sip_port, api_port, new_addr);
        daemon.signal("-HUP");
        let completed = load.await.unwrap();
        assert_eq!(completed, 40, "every call of the load completed");
        // The call from before the reload still hangs up normally, on the old trunk.
        hang_up(&caller, sip, &mut long).await;
        (
            to_old.load(Ordering::Relaxed),
            to_new.load(Ordering::Relaxed),
        )
    });
    assert!(
        old_calls >= 2,
        "calls before the reload went to the old trunk ({old_calls})"
    );
    assert!(
        new_calls >= 2,
        "calls after it went to the new one ({new_calls})"
    );
    assert_eq!(
        old_calls + new_calls,
        41,
        "each call went to exactly one trunk"
    );

    // A configuration that does not validate changes nothing: calls still go to the new
    // trunk.
    std::fs::write(&conf, "[sip]\nlisten = \"not an address\"\n").unwrap();
    daemon.signal("-HUP");
    std::thread::sleep(Duration::from_millis(300));
    rt.block_on(async {
        let caller = Phone::bind("caller2").await;
        let mut leg = answered(&caller, sip, "0212345678").await;
        hang_up(&caller, sip, &mut leg).await;
    });
    assert_eq!(to_new.load(Ordering::Relaxed), new_calls + 1);
    daemon.signal("-TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn metrics_move_when_calls_happen() {
    let dir = std::env::temp_dir().join(format!("freecall-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (sip_port, api_port) = (free_port(), free_port());
    let sip: SocketAddr = format!("127.0.0.1:{sip_port}").parse().unwrap();
    let api: SocketAddr = format!("127.0.0.1:{api_port}").parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let trunk = rt.block_on(Phone::bind("pstn"));
    let conf = dir.join("freecall.toml");
    write_conf(&conf, sip_port, api_port, trunk.addr);
    let env = [
        (
            "FREECALL__DATABASE__URL",
            dir.join("freecall.db").display().to_string(),
        ),
        ("FREECALL__API__LISTEN", api.to_string()),
    ];
    let mut daemon = Daemon::spawn(conf.to_str().unwrap(), &env);
    wait_ready(sip);
    common::daemon::wait_api(api);
    let scrape = || common::http::request(api, "GET", "/metrics", &[], None);
    let value = |text: &str, series: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let before = scrape();
    assert_eq!(before.status, 200);
    let before = before.text();
    rt.block_on(async {
        let (_t, _) = auto_trunk(trunk);
        let caller = Phone::bind("caller").await;
        let mut leg = answered(&caller, sip, "0212345678").await;
        let during = scrape().text();
        assert_eq!(value(&during, "freecall_active_calls"), 1.0, "{during}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        hang_up(&caller, sip, &mut leg).await;
        // A number nobody routes is refused.
        let (invite, _) = caller.invite(sip, "12+34", &caller.sdp("sendrecv"));
        caller.send(sip, &invite).await;
        caller.expect_status(&[484], WAIT).await;
    });
    std::thread::sleep(Duration::from_millis(300));
    let after = scrape().text();
    let answered_series = "freecall_calls_total{outcome=\"answered\",code=\"200\"}";
    assert_eq!(
        value(&after, answered_series) - value(&before, answered_series),
        1.0,
        "{after}"
    );
    assert_eq!(value(&after, "freecall_active_calls"), 0.0);
    assert_eq!(
        value(&after, "freecall_asr_ratio"),
        0.5,
        "one answered of two"
    );
    assert!(value(&after, "freecall_rtp_packets_received_total") >= 0.0);
    assert!(
        after.contains("freecall_db_seconds_bucket"),
        "database latency: {after}"
    );
    assert!(after.contains("freecall_calls_total{outcome=\"refused\",code=\"484\"}"));
    assert_eq!(
        value(&after, "freecall_trunk_up{trunk=\"pstn\"}"),
        1.0,
        "{after}"
    );
    daemon.signal("-TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
