//! Three freecall nodes behind Debian's Kamailio, run with the recipe shipped in
//! `deploy/kamailio/`, on one throw-away PostgreSQL: members' calls spread over every node;
//! a node killed with `kill -9` gets no new calls once the dispatcher notices, while calls
//! keep succeeding on the others and the dead node's call is settled once by a survivor;
//! the NOC reads every node's records as one feed from any node (REST and `cdr tail`);
//! a node drained with SIGTERM gets no new calls and finishes its own; requests within a
//! call are relayed to the nodes only.

mod common;

use common::daemon::{Daemon, ROOT, digest_call, free_port, node_config, sip_member, temp_dir};
use freecall::store::Store;
use freecall_testkit::{Leg, Phone};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(8);

/// Kamailio, started by the test and ended by it.
struct Kamailio(Child);

impl Drop for Kamailio {
    /// SIGTERM: the main process ends its worker processes too (SIGKILL would orphan
    /// them); SIGKILL only if it has not gone within 5 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The shipped recipe, listening on `port`, dispatching to `nodes`, probing every second.
fn kamailio(dir: &std::path::Path, port: u16, nodes: &[SocketAddr]) -> Kamailio {
    let list = dir.join("nodes.list");
    let lines: String = nodes.iter().map(|n| format!("1 sip:{n}\n")).collect();
    std::fs::write(&list, lines).unwrap();
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let child = Command::new("kamailio")
        .args(["-f", &format!("{ROOT}/deploy/kamailio/kamailio.cfg")])
        .args(["-DD", "-E", "-m", "64", "-M", "8"])
        .args(["-A", &format!("LISTEN=udp:127.0.0.1:{port}")])
        .args(["-A", &format!("DISPATCHER_LIST=\"{}\"", list.display())])
        .args(["-A", "PING_SECS=1"])
        .args(["-Y", &run.display().to_string()])
        .args(["-P", &dir.join("kamailio.pid").display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kamailio (Debian's package: .ci/run installs it)");
    Kamailio(child)
}

/// The nodes trust the dispatcher (on 127.0.0.1) for where a request came from, and
/// nothing else.
const BEHIND_DISPATCHER: &str = r#"node_lease_secs = 3
[[peers]]
name = "dispatcher"
address = "127.0.0.1"
billing = "dispatcher"
"#;

fn start_node(
    dir: &std::path::Path,
    url: &str,
    i: u16,
    trunk: SocketAddr,
    extra_env: &[(&str, String)],
) -> (Daemon, SocketAddr) {
    let node = format!("node-{i}");
    let mut env = vec![
        ("FREECALL__DATABASE__URL", url.to_string()),
        ("FREECALL__BILLING__NODE_ID", node.clone()),
    ];
    env.extend(extra_env.iter().cloned());
    Daemon::spawn_ready(
        |port| {
            node_config(
                dir,
                &node,
                port,
                45000 + 400 * i,
                trunk,
                url,
                &node,
                BEHIND_DISPATCHER,
            )
        },
        &env,
    )
}

/// A member's call through the dispatcher, answered: its leg, the node that carries it
/// (the port of the node's Contact), and how long it took to set up.
async fn call(caller: &Phone, dispatcher: SocketAddr, login: &str) -> (Leg, u16, Duration) {
    let clock = freecall::clock::Clock::system();
    let from = clock.now();
    let leg = digest_call(caller, dispatcher, login, WAIT).await;
    assert!(
        !leg.route.is_empty(),
        "the dispatcher stays on the call's path (Record-Route)"
    );
    let contact: SocketAddr = leg
        .request_uri
        .split('@')
        .nth(1)
        .and_then(|h| h.trim_end_matches('>').split(';').next())
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("a node's Contact: {}", leg.request_uri));
    (leg, contact.port(), clock.now() - from)
}

/// The caller hangs up, through the dispatcher (the route set), and the node answers.
async fn hang_up(caller: &Phone, dispatcher: SocketAddr, leg: &mut Leg) {
    let bye = caller.request(leg, "BYE", None);
    caller.send(dispatcher, &bye).await;
    common::daemon::expect_answer(caller, &leg.call_id, "BYE", &[200], WAIT).await;
}

fn records_by_node(store: &Store) -> std::collections::BTreeMap<String, usize> {
    let mut by = std::collections::BTreeMap::new();
    for r in common::stores::records(store) {
        *by.entry(r.node).or_insert(0) += 1;
    }
    by
}

#[test]
fn calls_spread_over_three_nodes_and_a_killed_one_is_passed_over() {
    let url = common::stores::pg_url();
    let store = common::stores::open(&url);
    let account = sip_member(&store, "kim", 1_000_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = temp_dir("cluster");
        let trunk = Phone::bind("pstn").await;
        let trunk_addr = trunk.addr;
        let _answering = freecall_testkit::auto_trunk(trunk);
        // node-3 also serves the REST API, where the NOC reads the records.
        let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut nodes = Vec::new();
        for i in 1..=3 {
            let (u, d) = (url.clone(), dir.clone());
            let env = match i {
                3 => vec![("FREECALL__API__LISTEN", api.to_string())],
                _ => vec![],
            };
            nodes.push(
                tokio::task::spawn_blocking(move || start_node(&d, &u, i, trunk_addr, &env))
                    .await
                    .unwrap(),
            );
        }
        let port = free_port();
        let dispatcher: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let addrs: Vec<SocketAddr> = nodes.iter().map(|(_, a)| *a).collect();
        let _kamailio = kamailio(&dir, port, &addrs);
        tokio::time::sleep(Duration::from_millis(1500)).await;

        // Nine calls, one after another: every node carries some.
        let caller = Phone::bind_on("127.0.0.2", "kim").await;
        let mut carried = std::collections::BTreeMap::new();
        for _ in 0..9 {
            let (mut leg, node, _) = call(&caller, dispatcher, "kim").await;
            *carried.entry(node).or_insert(0) += 1;
            hang_up(&caller, dispatcher, &mut leg).await;
        }
        eprintln!("calls per node (SIP port → calls): {carried:?}");
        assert_eq!(carried.len(), 3, "every node carried calls: {carried:?}");

        // A call in progress on the node about to be killed.
        let victim = addrs[1].port();
        let mut on_victim = None;
        let mut searched = 0;
        for _ in 0..6 {
            let (leg, node, _) = call(&caller, dispatcher, "kim").await;
            searched += 1;
            if node == victim {
                on_victim = Some(leg);
                break;
            }
            let mut leg = leg;
            hang_up(&caller, dispatcher, &mut leg).await;
        }
        assert!(on_victim.is_some(), "round robin reaches node-2");
        nodes[1].0.signal("-KILL");
        let clock = freecall::clock::Clock::system();
        let killed = clock.now();

        // New calls keep succeeding, none on the dead node; the first ones may wait for
        // the dispatcher to give up on it.
        let mut setups = Vec::new();
        for _ in 0..6 {
            let (mut leg, node, took) = call(&caller, dispatcher, "kim").await;
            assert_ne!(node, victim, "no call on the killed node");
            setups.push(took);
            hang_up(&caller, dispatcher, &mut leg).await;
        }
        eprintln!(
            "after the kill: call set-up times {setups:?}; all six connected within {:?} of the kill",
            clock.now() - killed
        );

        // The dead node's call: settled once, by a survivor, after its lease.
        for _ in 0..100 {
            if store.open_reservations().unwrap() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(store.open_reservations().unwrap(), 0, "settled by a survivor");
        let records = common::stores::records(&store);
        let taken: Vec<_> = records
            .iter()
            .filter(|r| r.cause.contains("settled by node-"))
            .collect();
        assert_eq!(taken.len(), 1, "{records:?}");
        assert_eq!(taken[0].node, "node-2");
        assert_eq!(records.len(), 9 + searched + 6, "one record per call");
        assert!(store.audit().unwrap().is_empty());
        let debits = store
            .ledger(account, 0, 1000)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "debit")
            .count();
        assert!(debits <= records.len(), "at most one debit per call");
        eprintln!("records per node: {:?}", records_by_node(&store));

        // One feed: node-3's API lists every node's records, in one order, and a reader
        // resuming after any position gets the rest with no repeats.
        let conf = dir.join("node-3.toml").display().to_string();
        let key = common::daemon::api_key(&conf, &url, "admin", "noc");
        let page = |after: i64| {
            let r = common::http::call(
                api,
                "GET",
                &format!("/v1/cdrs?limit=1000&after={after}"),
                Some(&key),
                &[],
                None,
            );
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()["cdrs"].as_array().unwrap().clone()
        };
        let all = page(0);
        let ids: Vec<i64> = all.iter().map(|r| r["id"].as_i64().unwrap()).collect();
        assert_eq!(all.len(), records.len(), "every node's records");
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "one order: {ids:?}");
        let nodes_seen: std::collections::BTreeSet<&str> =
            all.iter().map(|r| r["node"].as_str().unwrap()).collect();
        assert_eq!(
            nodes_seen.into_iter().collect::<Vec<_>>(),
            vec!["node-1", "node-2", "node-3"]
        );
        let rest = page(ids[4]);
        assert_eq!(rest.len(), all.len() - 5, "resumed after the fifth");
        assert_eq!(rest[0]["id"], all[5]["id"]);
        // `freecall cdr tail` run with node-1's configuration shows the same feed.
        let tail = std::process::Command::new(common::daemon::BIN)
            .args(["cdr", "tail", "--config"])
            .arg(dir.join("node-1.toml"))
            .args(["--format", "json", "--after", "0"])
            .env("FREECALL__DATABASE__URL", &url)
            .output()
            .unwrap();
        assert!(tail.status.success(), "{}", String::from_utf8_lossy(&tail.stderr));
        let tailed: Vec<i64> = String::from_utf8_lossy(&tail.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_i64().unwrap())
            .collect();
        assert_eq!(tailed, ids, "cdr tail on node-1: the same records in the same order");

        // The NOC sees which node died and who settled its calls.
        let r = common::http::call(api, "GET", "/v1/nodes", Some(&key), &[], None);
        assert_eq!(r.status, 200, "{}", r.text());
        let listed = r.json()["nodes"].as_array().unwrap().clone();
        let dead = listed.iter().find(|n| n["id"] == "node-2").unwrap();
        assert_eq!(dead["fenced"], true, "{listed:?}");
        assert_eq!(dead["calls_taken_over"], 1);
        assert_ne!(dead["taken_over_by"], serde_json::Value::Null);
        assert!(dead["heartbeat_age_secs"].as_i64().unwrap() >= 2);
        for alive in ["node-1", "node-3"] {
            let n = listed.iter().find(|n| n["id"] == alive).unwrap();
            assert_eq!((&n["fenced"], n["heartbeat_age_secs"].as_i64().unwrap() < 2), (&serde_json::Value::Bool(false), true), "{n}");
        }
        drop(nodes);
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// SIGTERM to one of three nodes with calls on it: the dispatcher's next probe gets 503
/// and sends it nothing new; its calls go on — one is hung up by its caller, through the
/// dispatcher, the other gets the node's BYE, through the dispatcher too, when the grace
/// period ends — and the node exits cleanly, every call billed once.
#[test]
fn a_draining_node_gets_no_new_calls_and_finishes_its_own() {
    let url = common::stores::pg_url();
    let store = common::stores::open(&url);
    sip_member(&store, "lee", 1_000_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = temp_dir("cluster-drain");
        let trunk = Phone::bind("pstn").await;
        let trunk_addr = trunk.addr;
        let _answering = freecall_testkit::auto_trunk(trunk);
        let mut nodes = Vec::new();
        for i in 1..=3 {
            let (u, d) = (url.clone(), dir.clone());
            let grace = [("FREECALL__SIP__SHUTDOWN_GRACE_SECS", "4".to_string())];
            nodes.push(
                tokio::task::spawn_blocking(move || start_node(&d, &u, i, trunk_addr, &grace))
                    .await
                    .unwrap(),
            );
        }
        let port = free_port();
        let dispatcher: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let addrs: Vec<SocketAddr> = nodes.iter().map(|(_, a)| *a).collect();
        let _kamailio = kamailio(&dir, port, &addrs);
        tokio::time::sleep(Duration::from_millis(1500)).await;

        // Two calls on node-1 (each caller its own phone), the rest hung up at once.
        let drained = addrs[0].port();
        let mut on_drained = Vec::new();
        let mut placed = 0;
        for n in 0..12 {
            let caller = Phone::bind_on("127.0.0.2", &format!("lee{n}")).await;
            let (mut leg, node, _) = call(&caller, dispatcher, "lee").await;
            placed += 1;
            if node == drained {
                on_drained.push((caller, leg));
                if on_drained.len() == 2 {
                    break;
                }
            } else {
                hang_up(&caller, dispatcher, &mut leg).await;
            }
        }
        assert_eq!(on_drained.len(), 2, "round robin reaches node-1 twice");

        let (mut node1, _) = nodes.remove(0);
        node1.signal("-TERM");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let caller = Phone::bind_on("127.0.0.2", "lee-new").await;
        for _ in 0..6 {
            let (mut leg, node, _) = call(&caller, dispatcher, "lee").await;
            placed += 1;
            assert_ne!(node, drained, "a draining node gets no new calls");
            hang_up(&caller, dispatcher, &mut leg).await;
        }
        // Its own calls: one ended by the caller, the other by the node at the grace's end.
        let (first, mut first_leg) = on_drained.remove(0);
        hang_up(&first, dispatcher, &mut first_leg).await;
        let (second, _leg) = on_drained.remove(0);
        let (bye, from) = second.expect_request("BYE", Duration::from_secs(8)).await;
        assert_eq!(
            from, dispatcher,
            "the node's BYE comes back through the dispatcher"
        );
        assert!(
            bye.header("Route").is_none(),
            "the dispatcher consumed its route"
        );
        second
            .send(from, &second.response(&bye, 200, "OK", "x", None))
            .await;
        let code = tokio::task::spawn_blocking(move || node1.wait_exit(Duration::from_secs(15)))
            .await
            .unwrap();
        assert_eq!(code, Some(0), "a drained node exits cleanly");

        assert_eq!(store.open_reservations().unwrap(), 0);
        let records = common::stores::records(&store);
        assert_eq!(records.len(), placed, "one record per call");
        assert!(
            records
                .iter()
                .all(|r| r.answered_ms.is_some() && r.code == 200),
            "no admitted call lost: {records:?}"
        );
        assert!(store.audit().unwrap().is_empty());
        drop(nodes);
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// A request within a call from outside goes to a node and nowhere else: a Route or a
/// Request-URI naming another host gets 403 from the dispatcher, so it is no open relay.
#[test]
fn the_dispatcher_relays_requests_within_a_call_to_its_nodes_only() {
    use std::net::UdpSocket;
    let dir = temp_dir("relay");
    let node = UdpSocket::bind("127.0.0.1:0").unwrap();
    let elsewhere = UdpSocket::bind("127.0.0.1:0").unwrap();
    let phone = UdpSocket::bind("127.0.0.2:0").unwrap();
    for s in [&node, &elsewhere, &phone] {
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
    }
    let port = free_port();
    let _kamailio = kamailio(&dir, port, &[node.local_addr().unwrap()]);
    let me = phone.local_addr().unwrap();
    let bye = |to: SocketAddr, branch: &str| {
        format!(
            "BYE sip:kim@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{branch}\r\n\
Route: <sip:127.0.0.1:{port};lr>\r\nMax-Forwards: 70\r\nFrom: <sip:kim@127.0.0.2>;tag=a\r\n\
To: <sip:0255561234@127.0.0.1>;tag=b\r\nCall-ID: relay-{branch}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let recv = |s: &UdpSocket| -> Option<String> {
        let mut buf = [0u8; 4096];
        s.recv(&mut buf)
            .ok()
            .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let dispatcher: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Kamailio is up once it answers (bounded: 10 s).
    let mut answer = None;
    for _ in 0..30 {
        phone
            .send_to(
                bye(elsewhere.local_addr().unwrap(), "x1").as_bytes(),
                dispatcher,
            )
            .unwrap();
        answer = recv(&phone);
        if answer.is_some() {
            break;
        }
    }
    let answer = answer.expect("the dispatcher answers");
    assert!(answer.starts_with("SIP/2.0 403"), "{answer}");
    assert!(answer.contains("not a call of this service"), "{answer}");
    assert_eq!(recv(&elsewhere), None, "nothing relayed to another host");

    // The same request for a node's dialog reaches the node.
    phone
        .send_to(bye(node.local_addr().unwrap(), "n1").as_bytes(), dispatcher)
        .unwrap();
    let mut relayed = None;
    for _ in 0..10 {
        match recv(&node) {
            Some(m) if m.starts_with("BYE ") => {
                relayed = Some(m);
                break;
            }
            _ => {}
        }
    }
    let relayed = relayed.expect("the node's BYE is relayed to it");
    assert!(relayed.contains("relay-n1"), "{relayed}");
}
