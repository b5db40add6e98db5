//! Two real daemons on one database: when one is killed mid-call, the other settles that
//! call's money once its lease has run out, billed up to the dead node's last heartbeat;
//! the dead node started again settles nothing twice. A node frozen past its lease (cut
//! off, not dead) finds itself fenced when it wakes: it hangs its calls up and stops,
//! and its late settlement counts for nothing.

mod common;

use common::daemon::{Daemon, digest_call, node_config, sip_member, temp_dir};
use freecall::store::Store;
use freecall_testkit::Phone;
use std::net::SocketAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);
/// Heartbeats every second; a node is dead two seconds after its last one.
const LEASE: &str = "node_lease_secs = 3";

/// Node `node` on `url`, listening on a fresh port: the daemon and its SIP address.
fn start(
    dir: &std::path::Path,
    url: &str,
    node: &str,
    media: u16,
    trunk: SocketAddr,
) -> (Daemon, SocketAddr) {
    Daemon::spawn_ready(
        |port| node_config(dir, node, port, media, trunk, url, node, LEASE),
        &[
            ("FREECALL__DATABASE__URL", url.to_string()),
            ("FREECALL__BILLING__NODE_ID", node.to_string()),
        ],
    )
}

/// Wait (bounded: 15 s) until no reservation is open; how long that took.
async fn settled_within(store: &Store) -> Duration {
    let clock = freecall::clock::Clock::system();
    let from = clock.now();
    for _ in 0..150 {
        if store.open_reservations().unwrap() == 0 {
            return clock.now() - from;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nobody settled the dead node's call within 15 s");
}

fn debits(store: &Store, account: i64) -> Vec<i64> {
    store
        .ledger(account, 0, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "debit")
        .map(|e| e.amount)
        .collect()
}

fn killed_node_is_settled_by_the_survivor(store: Store, url: String) {
    let account = sip_member(&store, "kim", 100_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = temp_dir(&format!("takeover-{}", store.backend()));
        let trunk = Phone::bind("pstn").await;
        let trunk_addr = trunk.addr;
        let _answering = freecall_testkit::auto_trunk(trunk);
        let (u, d) = (url.clone(), dir.clone());
        let (mut a, sip_a) =
            tokio::task::spawn_blocking(move || start(&d, &u, "node-a", 43000, trunk_addr))
                .await
                .unwrap();
        let (u, d) = (url.clone(), dir.clone());
        let (mut b, _) =
            tokio::task::spawn_blocking(move || start(&d, &u, "node-b", 43400, trunk_addr))
                .await
                .unwrap();

        let caller = Phone::bind_on("127.0.0.2", "kim").await;
        let _leg = digest_call(&caller, sip_a, "kim", WAIT).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(store.open_reservations().unwrap(), 1);

        a.signal("-KILL");
        let _ = tokio::task::spawn_blocking(move || {
            a.wait_exit(Duration::from_secs(5));
        })
        .await;
        let took = settled_within(&store).await;
        eprintln!("node-b settled node-a's call {took:?} after the kill");
        let records = common::stores::records(&store);
        assert_eq!(records.len(), 1, "{records:?}");
        assert!(
            records[0].cause.contains("settled by node-b"),
            "{}",
            records[0].cause
        );
        assert_eq!(records[0].node, "node-a");
        let billed = debits(&store, account);
        assert_eq!(billed.len(), 1);
        // About 2.5 s talked, heartbeats every second: 1 to 3 seconds, 1 point each.
        assert!((1..=3).contains(&billed[0]), "{billed:?}");
        assert_eq!(records[0].cost, billed[0]);

        // node-a starts again: nothing of its last run is left to settle.
        let (u, d) = (url.clone(), dir.clone());
        let (mut a, _) =
            tokio::task::spawn_blocking(move || start(&d, &u, "node-a", 43000, trunk_addr))
                .await
                .unwrap();
        assert_eq!(debits(&store, account), billed, "never twice");
        let node_a = store
            .nodes()
            .unwrap()
            .into_iter()
            .find(|n| n.id == "node-a")
            .unwrap();
        assert_eq!(
            (node_a.epoch, node_a.fenced_ms, node_a.taken_calls),
            (2, None, 1),
            "a new incarnation, no longer fenced; one call was taken over"
        );
        let acc = store.account(account).unwrap();
        assert_eq!((acc.balance + billed[0], acc.reserved), (100_000, 0));
        assert!(store.audit().unwrap().is_empty());
        a.signal("-TERM");
        b.signal("-TERM");
        tokio::task::spawn_blocking(move || {
            a.wait_exit(Duration::from_secs(10));
            b.wait_exit(Duration::from_secs(10));
        })
        .await
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    });
}

on_both_stores!(
    a_killed_nodes_call_is_settled_by_a_survivor_once,
    |store: Store, url: String| killed_node_is_settled_by_the_survivor(store, url)
);

/// node-a is frozen (SIGSTOP) mid-call for longer than its lease — what a node cut off
/// from the database looks like to the others — and node-b settles its call. When node-a
/// wakes up its heartbeat is refused: it hangs the call up and exits with an error (for
/// systemd to start it again), and the call is still debited once.
#[test]
fn a_node_cut_off_past_its_lease_is_fenced_and_stops() {
    let url = common::stores::pg_url();
    let store = common::stores::open(&url);
    let account = sip_member(&store, "lim", 100_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = temp_dir("fenced");
        let trunk = Phone::bind("pstn").await;
        let trunk_addr = trunk.addr;
        let _answering = freecall_testkit::auto_trunk(trunk);
        let (u, d) = (url.clone(), dir.clone());
        let (mut a, sip_a) =
            tokio::task::spawn_blocking(move || start(&d, &u, "node-a", 44000, trunk_addr))
                .await
                .unwrap();
        let (u, d) = (url.clone(), dir.clone());
        let (mut b, _) =
            tokio::task::spawn_blocking(move || start(&d, &u, "node-b", 44400, trunk_addr))
                .await
                .unwrap();
        let caller = Phone::bind_on("127.0.0.2", "lim").await;
        let _leg = digest_call(&caller, sip_a, "lim", WAIT).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;

        a.signal("-STOP");
        settled_within(&store).await;
        let billed = debits(&store, account);
        assert_eq!(billed.len(), 1);
        a.signal("-CONT");

        // Awake, node-a learns it was fenced: the caller is hung up on, the process ends.
        let (bye, from) = caller.expect_request("BYE", Duration::from_secs(10)).await;
        caller
            .send(from, &caller.response(&bye, 200, "OK", "x", None))
            .await;
        let code = tokio::task::spawn_blocking(move || a.wait_exit(Duration::from_secs(15)))
            .await
            .unwrap();
        assert!(
            matches!(code, Some(c) if c != 0),
            "a fenced node exits with an error, for systemd to start it again: {code:?}"
        );
        assert_eq!(
            debits(&store, account),
            billed,
            "its late settlement counts for nothing"
        );
        assert_eq!(common::stores::records(&store).len(), 1);
        assert_eq!(store.open_reservations().unwrap(), 0);
        assert!(store.audit().unwrap().is_empty());
        b.signal("-TERM");
        tokio::task::spawn_blocking(move || b.wait_exit(Duration::from_secs(10)))
            .await
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    });
}
