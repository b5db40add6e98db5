//! Several nodes on one store, on SQLite and on PostgreSQL: a node that stops renewing its
//! lease is taken over by exactly one survivor, which settles its open calls up to its last
//! heartbeat (once, with their records) and releases its booked calls; the dead node, if it
//! was only cut off, finds itself fenced, and nothing it settles later counts twice.

mod common;

use freecall::auth;
use freecall::billing::{AccountKind, Settlement, Tariff, Tariffs};
use freecall::numbers::DestinationKind;
use freecall::store::Store;
use freecall::store::bookings::{BookingLimits, NewBooking};
use freecall::store::calls::{Charge, Settled};
use freecall::store::nodes::{Beat, Joined};
use freecall::store::shop::NewMember;

/// One point a second, billed by the minute.
fn tariffs() -> Tariffs {
    let mut t = Tariffs::new(3600);
    for dest in [DestinationKind::Landline, DestinationKind::Mobile] {
        t.insert(
            AccountKind::Mileage,
            Tariff {
                destination: dest,
                per_minute: 60,
                first_secs: 60,
                increment_secs: 60,
                minimum: 0,
                connection: 0,
            },
        );
    }
    t
}

fn member(store: &Store, login: &str, bonus: i64) -> i64 {
    store
        .create_member(
            &NewMember {
                login: login.into(),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                name: "Kim".into(),
                address: "Seoul".into(),
                job: "".into(),
                phone: "01012345678".into(),
                email: "".into(),
                sip_ha1: auth::ha1(login, "freecall", "pw"),
            },
            bonus,
        )
        .unwrap()
        .account_id
}

/// An answered call of `node`, paid by `account`: its reservation.
fn answered_call(store: &Store, node: &str, call: &str, account: i64, answered_ms: i64) -> i64 {
    let a = store
        .reserve(
            node,
            call,
            "01012345678",
            DestinationKind::Mobile,
            Charge::Account(account),
            &tariffs(),
        )
        .unwrap();
    store.mark_answered(a.reservation, answered_ms).unwrap();
    a.reservation
}

fn epoch(j: Joined) -> i64 {
    match j {
        Joined::Epoch(e) => e,
        busy => panic!("the node could not start: {busy:?}"),
    }
}

const LEASE: i64 = 20_000;

/// The moment the test starts, on the store's clock (what reservations are stamped with).
fn started(store: &Store) -> i64 {
    store.clock().unix_ms()
}

on_both_stores!(
    a_survivor_settles_a_dead_nodes_calls_once_and_fences_it,
    |store: Store, _url| {
        let t0 = started(&store);
        let account = member(&store, "yoon", 1000);
        let a = epoch(store.join("node-a", t0).unwrap());
        let b = epoch(store.join("node-b", t0).unwrap());
        assert_eq!((a, b), (1, 1));
        let reservation = answered_call(&store, "node-a", "a-1", account, t0);
        // node-a's last heartbeat: 95 s into the call. Then it is killed.
        assert_eq!(
            store.heartbeat("node-a", a, t0 + 95_000).unwrap(),
            Beat::Alive
        );

        // Inside the lease nobody touches node-a.
        assert_eq!(
            store.heartbeat("node-b", b, t0 + 110_000).unwrap(),
            Beat::Alive
        );
        assert!(
            store
                .take_over("node-b", t0 + 110_000, LEASE)
                .unwrap()
                .is_empty(),
            "15 s after its heartbeat node-a still holds its lease"
        );
        assert!(
            store.account(account).unwrap().reserved > 0,
            "the call's money is still held"
        );

        // Past it, node-b settles the call: billed up to node-a's last heartbeat.
        let taken = store.take_over("node-b", t0 + 120_000, LEASE).unwrap();
        assert_eq!(taken.len(), 1, "{taken:?}");
        assert_eq!(taken[0].node, "node-a");
        assert_eq!(taken[0].last_heartbeat_ms, t0 + 95_000);
        assert_eq!(taken[0].calls.len(), 1);
        assert_eq!(
            (taken[0].calls[0].billed_secs, taken[0].calls[0].cost),
            (120, 120),
            "95 s talked, billed as two minutes"
        );
        // A third node looking a moment later finds nothing left to do.
        assert!(
            store
                .take_over("node-c", t0 + 121_000, LEASE)
                .unwrap()
                .is_empty()
        );

        let acc = store.account(account).unwrap();
        assert_eq!((acc.balance, acc.reserved), (880, 0));
        let records = common::stores::records(&store);
        assert_eq!(records.len(), 1, "one record for the call");
        assert_eq!(records[0].call_id, "a-1");
        assert_eq!(records[0].node, "node-a", "the call was node-a's");
        assert_eq!((records[0].billed_secs, records[0].cost), (120, 120));
        assert!(
            records[0].cause.contains("settled by node-b"),
            "{}",
            records[0].cause
        );

        // node-a was only cut off and comes back with its old incarnation: fenced.
        assert_eq!(
            store.heartbeat("node-a", a, t0 + 125_000).unwrap(),
            Beat::Fenced {
                by: Some("node-b".into())
            }
        );
        // The settlement it still had queued counts for nothing.
        let late = Settlement {
            reservation,
            call_id: "a-1".into(),
            answered_ms: Some(t0),
            ended_ms: t0 + 125_000,
            cause: "caller hung up".into(),
            record: None,
            legs: Vec::new(),
        };
        assert_eq!(store.settle(&late).unwrap(), Settled::Already);
        assert_eq!(store.debits_of_call("a-1").unwrap(), vec![120]);

        // Started again: nothing left to recover, a new incarnation whose lease renews.
        assert!(store.recover("node-a").unwrap().is_empty());
        let a2 = epoch(store.join("node-a", t0 + 130_000).unwrap());
        assert_eq!(a2, 2);
        assert_eq!(
            store.heartbeat("node-a", a2, t0 + 135_000).unwrap(),
            Beat::Alive
        );
        let node_a = store
            .nodes()
            .unwrap()
            .into_iter()
            .find(|n| n.id == "node-a")
            .unwrap();
        assert_eq!(
            (
                node_a.epoch,
                node_a.fenced_ms,
                node_a.taker.as_deref(),
                node_a.taken_calls
            ),
            (2, None, Some("node-b"), 1)
        );
        assert!(store.audit().unwrap().is_empty());
        assert_eq!(store.open_reservations().unwrap(), 0);
    }
);

on_both_stores!(
    of_several_survivors_looking_at_once_exactly_one_takes_the_dead_node_over,
    |store: Store, url: String| {
        let t0 = started(&store);
        let account = member(&store, "park", 100_000);
        let dead = epoch(store.join("node-a", t0).unwrap());
        for i in 0..8 {
            answered_call(&store, "node-a", &format!("a-{i}"), account, t0 + i * 1000);
        }
        store.heartbeat("node-a", dead, t0 + 60_000).unwrap();
        // Four survivors, each with its own connections, all at the same moment.
        let now = t0 + 60_000 + LEASE + 1;
        let takers: Vec<_> = (0..4)
            .map(|i| {
                let url = url.clone();
                std::thread::spawn(move || {
                    let mine = Store::open(&url, 2).unwrap();
                    mine.take_over(&format!("survivor-{i}"), now, LEASE)
                        .unwrap()
                })
            })
            .collect();
        let taken: Vec<_> = takers.into_iter().flat_map(|t| t.join().unwrap()).collect();
        assert_eq!(taken.len(), 1, "exactly one survivor: {taken:?}");
        assert_eq!(taken[0].calls.len(), 8);
        for i in 0..8 {
            assert_eq!(
                store.debits_of_call(&format!("a-{i}")).unwrap().len(),
                1,
                "call a-{i} debited once"
            );
        }
        assert_eq!(common::stores::records(&store).len(), 8);
        assert_eq!(store.open_reservations().unwrap(), 0);
        assert!(store.audit().unwrap().is_empty());
    }
);

on_both_stores!(
    a_dead_nodes_booked_calls_are_released_with_its_money,
    |store: Store, _url| {
        let t0 = started(&store);
        let (card, _) = common::cards::issue(&store, "bk", 100_000, 10, "[]", "");
        let new = |number: &str| NewBooking {
            card_id: Some(card),
            member_id: None,
            number: number.into(),
            due_ms: t0,
            time_zone: "Asia/Seoul".into(),
            max_attempts: 3,
            retry_secs: 300,
            record: false,
        };
        let limits = BookingLimits {
            per_owner: 10,
            per_number: 10,
        };
        let dialling = store.create_booking(&new("0255561234"), limits).unwrap();
        let claimed = store.create_booking(&new("0255569999"), limits).unwrap();
        let dead = epoch(store.join("node-a", t0).unwrap());
        let got = store.claim_due("node-a", t0, t0 + 600_000, 10).unwrap();
        assert_eq!(got.len(), 2);
        assert!(
            store
                .start_dialling(dialling.id, "node-a", "fc-bk-1", t0)
                .unwrap()
        );
        store.heartbeat("node-a", dead, t0 + 1000).unwrap();
        // No call was left open, but the booked calls are enough to take the node over.
        let taken = store
            .take_over("node-b", t0 + 1000 + LEASE + 1, LEASE)
            .unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(
            (taken[0].bookings_interrupted, taken[0].bookings_released),
            (1, 1)
        );
        assert_eq!(
            store.booking(&dialling.token).unwrap().state,
            "interrupted",
            "it may have rung: never dialled again"
        );
        assert_eq!(store.booking(&claimed.token).unwrap().state, "scheduled");
        assert_eq!(
            store
                .claim_due("node-b", t0 + 30_000, t0 + 90_000, 10)
                .unwrap()
                .len(),
            1,
            "the claimed one is another node's to dial"
        );
    }
);

on_both_stores!(
    a_node_stopped_cleanly_is_never_taken_over,
    |store: Store, _url| {
        let t0 = started(&store);
        let account = member(&store, "lee", 1000);
        let a = epoch(store.join("node-a", t0).unwrap());
        let r = answered_call(&store, "node-a", "a-1", account, t0);
        store
            .settle(&Settlement {
                reservation: r,
                call_id: "a-1".into(),
                answered_ms: Some(t0),
                ended_ms: t0 + 30_000,
                cause: "caller hung up".into(),
                record: None,
                legs: Vec::new(),
            })
            .unwrap();
        store.heartbeat("node-a", a, t0 + 31_000).unwrap();
        // Stopped for a day: nothing open, so nobody fences it.
        assert!(
            store
                .take_over("node-b", t0 + 86_400_000, LEASE)
                .unwrap()
                .is_empty()
        );
        let node_a = store
            .nodes()
            .unwrap()
            .into_iter()
            .find(|n| n.id == "node-a")
            .unwrap();
        assert_eq!((node_a.fenced_ms, node_a.taker), (None, None));
        assert_eq!(epoch(store.join("node-a", t0 + 86_400_000).unwrap()), 2);
    }
);

on_both_stores!(
    a_fenced_node_reserves_nothing_until_it_starts_again,
    |store: Store, _url| {
        let t0 = started(&store);
        let account = member(&store, "han", 1000);
        let a = epoch(store.join("node-a", t0).unwrap());
        answered_call(&store, "node-a", "a-1", account, t0);
        store.heartbeat("node-a", a, t0 + 1000).unwrap();
        let taken = store
            .take_over("node-b", t0 + 1000 + LEASE + 1, LEASE)
            .unwrap();
        assert_eq!(taken.len(), 1);

        // node-a was only cut off: until its next heartbeat tells it, it still admits
        // calls. The store refuses their money, one by one and in a batch.
        let one = store.reserve(
            "node-a",
            "a-2",
            "01012345678",
            DestinationKind::Mobile,
            Charge::Account(account),
            &tariffs(),
        );
        match one {
            Err(freecall::store::StoreError::Unavailable(why)) => {
                assert!(why.contains("fenced"), "{why}")
            }
            other => panic!("a fenced node reserved: {other:?}"),
        }
        let items: Vec<_> = (3..5)
            .map(|i| freecall::store::calls::ReserveItem {
                call_id: format!("a-{i}"),
                number: "01012345678".into(),
                destination: DestinationKind::Mobile,
                charge: Charge::Account(account),
            })
            .collect();
        let batch = store.reserve_many("node-a", &items, &tariffs());
        let refused = match batch {
            Err(_) => items.len(),
            Ok(results) => results.iter().filter(|r| r.is_err()).count(),
        };
        assert_eq!(refused, items.len(), "every call of the batch refused");
        let acc = store.account(account).unwrap();
        assert_eq!(acc.reserved, 0, "nothing held for the refused calls");
        assert_eq!(store.open_reservations().unwrap(), 0);
        // Nothing was left for a second claim to bill at the stale heartbeat.
        assert!(
            store
                .take_over("node-c", t0 + 1000 + 3 * LEASE, LEASE)
                .unwrap()
                .is_empty()
        );
        // Started again (a new incarnation): it takes calls.
        assert!(store.recover("node-a").unwrap().is_empty());
        epoch(store.join("node-a", t0 + 200_000).unwrap());
        answered_call(&store, "node-a", "a-5", account, t0 + 200_000);
        assert_eq!(store.open_reservations().unwrap(), 1);
        assert!(store.audit().unwrap().is_empty());
    }
);

/// A node that loses the database while other nodes run stops carrying its calls before
/// any of them could count its lease as run out (its calls would be billed there only up
/// to its last heartbeat while they went on here); a node alone carries on, since nobody
/// could take its calls over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_database_stops_when_others_could_take_over() {
    use freecall::accounting::Accounting;
    use std::time::Duration;
    let cluster = freecall_testkit::pg::PgCluster::start();
    let pair = cluster.create_db("pair");
    let alone = cluster.create_db("alone");
    let heartbeat = Duration::from_millis(200);
    let lease = Duration::from_millis(1000);
    let start = |url: &str, node: &str| {
        let store = common::stores::open(url);
        Accounting::new(
            store,
            tariffs(),
            node.into(),
            heartbeat,
            std::env::temp_dir().join(format!("freecall-spool-{}-{node}", std::process::id())),
        )
        .with_lease(lease)
    };
    let nodes = [
        start(&pair, "node-a"),
        start(&pair, "node-b"),
        start(&alone, "solo"),
    ];
    let mut running = Vec::new();
    for n in &nodes {
        n.recover().await.unwrap();
        let fenced = n.fenced();
        let (requests, replies, task) = n.clone().spawn();
        running.push((fenced, requests, replies, task));
    }
    // A few heartbeats: node-a and node-b see each other's lease.
    tokio::time::sleep(heartbeat * 4).await;
    assert!(running.iter().all(|r| r.0.borrow().is_none()));
    let clock = nodes[0].store.clock().clone();
    let cut = clock.unix_ms();
    cluster.stop();

    let mut stopped = Vec::new();
    for r in running.iter_mut().take(2) {
        tokio::time::timeout(Duration::from_secs(15), r.0.changed())
            .await
            .expect("a node of the pair stops carrying calls")
            .unwrap();
        stopped.push(Duration::from_millis((clock.unix_ms() - cut) as u64));
        let why = r.0.borrow().clone().unwrap();
        assert!(why.contains("cut off from the database"), "{why}");
    }
    eprintln!(
        "the pair stopped carrying calls {stopped:?} after the database went away (lease {lease:?})"
    );
    // The last renewal came at most a heartbeat before the cut; the node stops a
    // heartbeat before its lease runs out (its next check might come too late).
    for at in &stopped {
        assert!(
            *at >= lease - heartbeat * 3,
            "a short outage must not stop a node: it stopped {at:?} after the cut"
        );
    }
    // The node alone is still carrying calls a good while later.
    let later = tokio::time::timeout(Duration::from_secs(4), running[2].0.changed()).await;
    assert!(
        later.is_err(),
        "a node alone must not stop: {:?}",
        running[2].0.borrow()
    );
    for (_, requests, _, task) in running {
        drop(requests);
        task.abort();
    }
}
