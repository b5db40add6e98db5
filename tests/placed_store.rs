//! Money for calls the switch places, on SQLite and on PostgreSQL: both legs reserved in one
//! transaction at the sum of their kinds' rates, never more than the guild holds, each leg
//! billed from its own answer with one debit, the quota used only when the visitor's leg
//! was answered, and a node killed mid-call-back billing each answered leg up to its last
//! heartbeat, once, with one record.

mod common;

use freecall::billing::{LegSettlement, Refusal, Settlement, Tariff, Tariffs};
use freecall::cdr::{CallRecord, RecordLeg};
use freecall::numbers::DestinationKind;
use freecall::store::calls::{Charge, Settled};
use freecall::store::placed::{DailyLimits, PlacedLeg};
use freecall::store::{Store, StoreError};

fn tariffs() -> Tariffs {
    let mut t = Tariffs::new(3600);
    for (dest, per_minute) in [
        (DestinationKind::Landline, 60),
        (DestinationKind::Mobile, 120),
    ] {
        t.insert(
            freecall::billing::AccountKind::Guild,
            Tariff {
                destination: dest,
                per_minute,
                first_secs: 1,
                increment_secs: 1,
                minimum: 0,
                connection: 0,
            },
        );
    }
    t
}

fn card(store: &Store, login: &str, guild: i64, quota: i64) -> (i64, i64) {
    common::cards::issue(store, login, guild, quota, "[]", "")
}

fn legs(visitor: &str) -> Vec<PlacedLeg> {
    vec![
        PlacedLeg {
            role: "issuer",
            number: "01022223333".into(),
            destination: DestinationKind::Mobile,
            free: false,
        },
        PlacedLeg {
            role: "visitor",
            number: visitor.into(),
            destination: DestinationKind::Landline,
            free: false,
        },
    ]
}

fn reserve(
    store: &Store,
    id: &str,
    card: i64,
    limits: &DailyLimits,
) -> Result<Vec<freecall::billing::Authorization>, StoreError> {
    store.reserve_placed(
        "n1",
        id,
        Charge::Card(card),
        &legs("025561234"),
        &tariffs(),
        limits,
    )
}

fn settlement(
    a: &[freecall::billing::Authorization],
    issuer_ms: Option<i64>,
    visitor_ms: Option<i64>,
    ended_ms: i64,
) -> Settlement {
    Settlement {
        reservation: a[1].reservation,
        call_id: a[1].call_id.clone(),
        answered_ms: visitor_ms,
        ended_ms,
        cause: "visitor hung up".into(),
        record: Some(Box::new(CallRecord {
            call_id: a[0].call_id.split('/').next().unwrap().to_string(),
            node: "n1".into(),
            caller: "025561234".into(),
            callee: "01022223333".into(),
            legs: vec![
                RecordLeg {
                    role: "issuer".into(),
                    reservation: a[0].reservation,
                    answered_ms: issuer_ms,
                    ..Default::default()
                },
                RecordLeg {
                    role: "visitor".into(),
                    reservation: a[1].reservation,
                    answered_ms: visitor_ms,
                    ..Default::default()
                },
            ],
            ..Default::default()
        })),
        legs: vec![LegSettlement {
            reservation: a[0].reservation,
            call_id: a[0].call_id.clone(),
            answered_ms: issuer_ms,
            ended_ms: None,
        }],
    }
}

on_both_stores!(
    both_legs_are_held_at_the_sum_of_their_rates_and_billed_each_from_its_answer,
    |store: Store, _url| {
        // 1,800 units: at 120 + 60 per minute the call may last 600 s.
        let (card, account) = card(&store, "park", 1800, 2);
        let a = reserve(&store, "fc-a", card, &DailyLimits::default()).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(
            (a[0].call_id.as_str(), a[1].call_id.as_str()),
            ("fc-a/issuer", "fc-a/visitor")
        );
        assert_eq!(a[0].max_secs, 600);
        let acc = store.account(account).unwrap();
        assert_eq!(acc.reserved, 1800, "both legs' longest call is held");
        assert_eq!(store.card(card).unwrap().quota_reserved, 1);
        // Nothing is left for a second call-back on the same guild.
        assert!(matches!(
            reserve(&store, "fc-b", card, &DailyLimits::default()).unwrap_err(),
            StoreError::Refused(Refusal::GuildExhausted)
        ));

        // The issuer answered at t, the visitor 20 s later; they talked 100 s.
        let t = 1_780_000_000_000;
        let s = settlement(&a, Some(t), Some(t + 20_000), t + 120_000);
        let Settled::Done {
            billed_secs,
            cost,
            released,
        } = store.settle(&s).unwrap()
        else {
            panic!("settled once");
        };
        assert_eq!(billed_secs, 120, "the longest leg's seconds");
        assert_eq!(
            cost,
            240 + 100,
            "120 s mobile at 120/min + 100 s landline at 60/min"
        );
        assert_eq!(released, 1800 - 340);
        assert_eq!(store.debits_of_call("fc-a/issuer").unwrap(), vec![240]);
        assert_eq!(store.debits_of_call("fc-a/visitor").unwrap(), vec![100]);
        assert_eq!(store.settle(&s).unwrap(), Settled::Already, "never twice");
        let acc = store.account(account).unwrap();
        assert_eq!((acc.balance, acc.reserved), (1800 - 340, 0));
        let c = store.card(card).unwrap();
        assert_eq!((c.quota_used, c.quota_reserved), (1, 0));
        let records = common::stores::records(&store);
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(
            (r.call_id.as_str(), r.cost, r.card_id),
            ("fc-a", 340, Some(card))
        );
        assert_eq!((r.legs[0].cost, r.legs[1].cost), (240, 100));
        assert!(store.audit().unwrap().is_empty());
    }
);

on_both_stores!(
    a_declined_call_back_costs_the_issuers_leg_and_no_quota,
    |store: Store, _url| {
        let (card, account) = card(&store, "decl", 6000, 1);
        let a = reserve(&store, "fc-d", card, &DailyLimits::default()).unwrap();
        let t = 1_780_000_000_000;
        // The issuer listened 15 s and pressed 2: the visitor was never dialled.
        store
            .settle(&settlement(&a, Some(t), None, t + 15_000))
            .unwrap();
        assert_eq!(store.debits_of_call("fc-d/issuer").unwrap(), vec![30]);
        assert!(store.debits_of_call("fc-d/visitor").unwrap().is_empty());
        let c = store.card(card).unwrap();
        assert_eq!(
            (c.quota_used, c.quota_reserved),
            (0, 0),
            "the quota is given back"
        );
        assert_eq!(store.account(account).unwrap().balance, 6000 - 30);
        assert!(store.audit().unwrap().is_empty());
    }
);

on_both_stores!(
    daily_limits_hold_per_card_per_number_and_per_issuer,
    |store: Store, _url| {
        let (card1, _) = card(&store, "lim", 1_000_000, 100);
        let limits = DailyLimits {
            per_card: 2,
            per_number: 100,
            issuer_calls: 100,
            issuer_spend: 0,
        };
        reserve(&store, "fc-1", card1, &limits).unwrap();
        reserve(&store, "fc-2", card1, &limits).unwrap();
        assert!(matches!(
            reserve(&store, "fc-3", card1, &limits).unwrap_err(),
            StoreError::Refused(Refusal::CardDailyLimit)
        ));
        let per_number = DailyLimits {
            per_card: 100,
            per_number: 2,
            issuer_calls: 100,
            issuer_spend: 0,
        };
        assert!(matches!(
            reserve(&store, "fc-4", card1, &per_number).unwrap_err(),
            StoreError::Refused(Refusal::NumberDailyLimit)
        ));
        let per_issuer = DailyLimits {
            per_card: 100,
            per_number: 100,
            issuer_calls: 2,
            issuer_spend: 0,
        };
        assert!(matches!(
            reserve(&store, "fc-5", card1, &per_issuer).unwrap_err(),
            StoreError::Refused(Refusal::IssuerDailyLimit)
        ));
        // The spend ceiling counts what is held now: two calls of 3,600 s hold 10,800 each,
        // a third would make 32,400.
        let spend = DailyLimits {
            per_card: 100,
            per_number: 100,
            issuer_calls: 100,
            issuer_spend: 30_000,
        };
        assert!(matches!(
            reserve(&store, "fc-6", card1, &spend).unwrap_err(),
            StoreError::Refused(Refusal::IssuerDailyLimit)
        ));
        assert!(store.audit().unwrap().is_empty());
    }
);

on_both_stores!(
    a_node_killed_mid_call_back_bills_each_answered_leg_to_its_heartbeat_once,
    |store: Store, _url| {
        let (card, account) = card(&store, "kill", 100_000, 3);
        let a = reserve(&store, "fc-k", card, &DailyLimits::default()).unwrap();
        let t = 1_780_000_000_000;
        store.mark_answered(a[0].reservation, t).unwrap();
        store.mark_answered(a[1].reservation, t + 30_000).unwrap();
        store.heartbeat("n1", 0, t + 90_000).unwrap();
        // The process dies here; at the next start:
        let recovered = store.recover("n1").unwrap();
        assert_eq!(recovered.len(), 1, "one call");
        assert_eq!(recovered[0].call_id, "fc-k");
        assert_eq!(
            store.debits_of_call("fc-k/issuer").unwrap(),
            vec![180],
            "90 s mobile"
        );
        assert_eq!(
            store.debits_of_call("fc-k/visitor").unwrap(),
            vec![60],
            "60 s landline"
        );
        assert!(store.recover("n1").unwrap().is_empty(), "never twice");
        let records = common::stores::records(&store);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].legs.len(), 2);
        assert_eq!(records[0].cost, 240);
        assert_eq!(store.account(account).unwrap().reserved, 0);
        assert_eq!(store.card(card).unwrap().quota_used, 1);
        assert!(store.audit().unwrap().is_empty());
    }
);
