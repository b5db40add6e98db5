//! The ledger's promises, on SQLite and on PostgreSQL: credits once per idempotency key,
//! reservations that never overdraw, settlement exactly once, quota counted, recovery
//! after a crash, an append-only ledger whose sums match the balances.

mod common;

use freecall::auth;
use freecall::billing::{AccountKind, Payer, Refusal, Settlement, Tariff, Tariffs};
use freecall::numbers::DestinationKind;
use freecall::store::accounts::Idempotent;
use freecall::store::calls::{Charge, Settled};
use freecall::store::cards::{NewCard, NewIssuer};
use freecall::store::shop::{NewMember, NewProduct};
use freecall::store::{Store, StoreError};

fn tariffs(per_minute: i64, cap: i64) -> Tariffs {
    let mut t = Tariffs::new(cap);
    for kind in [AccountKind::Mileage, AccountKind::Guild] {
        for dest in [DestinationKind::Landline, DestinationKind::Mobile] {
            t.insert(
                kind,
                Tariff {
                    destination: dest,
                    per_minute,
                    first_secs: 60,
                    increment_secs: 60,
                    minimum: 0,
                    connection: 0,
                },
            );
        }
    }
    t
}

fn member(store: &Store, login: &str, bonus: i64) -> (i64, i64) {
    let m = store
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
        .unwrap();
    (m.id, m.account_id)
}

fn idem(key: &str, body: &str) -> Idempotent {
    Idempotent {
        scope: "credit".into(),
        key: key.into(),
        request_hash: body.into(),
    }
}

fn audit_ok(store: &Store) {
    let problems = store.audit().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

on_both_stores!(signup_bonus_is_a_ledger_credit, |store: Store, _url| {
    let (_, account) = member(&store, "kim", 300);
    let a = store.account(account).unwrap();
    assert_eq!(
        (a.balance, a.reserved, a.kind),
        (300, 0, AccountKind::Mileage)
    );
    let entries = store.ledger(account, 0, 10).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (
            entries[0].kind.as_str(),
            entries[0].amount,
            entries[0].cause.as_str()
        ),
        ("credit", 300, "signup bonus")
    );
    assert!(matches!(
        store.create_member(
            &NewMember {
                login: "kim".into(),
                password_hash: "x".into(),
                name: "x".into(),
                address: "".into(),
                job: "".into(),
                phone: "".into(),
                email: "".into(),
                sip_ha1: "x".into()
            },
            0
        ),
        Err(StoreError::Conflict(_))
    ));
    audit_ok(&store);
});

on_both_stores!(
    a_credit_is_applied_once_per_idempotency_key,
    |store: Store, _url| {
        let (_, account) = member(&store, "lee", 0);
        let first = store
            .credit(account, 500, "top-up", &idem("k1", "500"), |c| {
                format!("{}", c.balance)
            })
            .unwrap();
        assert!(!first.replayed);
        assert_eq!(first.body, "500");
        let retry = store
            .credit(account, 500, "top-up", &idem("k1", "500"), |c| {
                format!("{}", c.balance)
            })
            .unwrap();
        assert!(retry.replayed);
        assert_eq!(retry.body, "500", "the original answer is replayed");
        assert!(matches!(
            store.credit(account, 700, "top-up", &idem("k1", "700"), |_| String::new(
            )),
            Err(StoreError::IdempotencyMismatch)
        ));
        assert_eq!(store.account(account).unwrap().balance, 500);
        assert!(matches!(
            store.credit(account, -5, "top-up", &idem("k2", "-5"), |_| String::new()),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            store.credit(999_999, 5, "top-up", &idem("k3", "5"), |_| String::new()),
            Err(StoreError::NotFound(_))
        ));
        audit_ok(&store);
    }
);

on_both_stores!(
    a_purchase_records_the_sale_and_credits_mileage,
    |store: Store, _url| {
        let (m, account) = member(&store, "park", 100);
        let p = store
            .create_product(&NewProduct {
                name: "Kettle".into(),
                kind: "kitchen".into(),
                spec: "1.7 l".into(),
                image_url: "".into(),
                features: "".into(),
                price: 39_000,
                supplier: "Acme".into(),
                mileage_award: 150,
                created_ms: 0,
            })
            .unwrap();
        let key = Idempotent {
            scope: "purchase".into(),
            key: "order-1".into(),
            request_hash: "h".into(),
        };
        let a = store
            .purchase(m, &[(p.id, 2)], &key, |s| {
                format!("{} {} {}", s.total_price, s.mileage, s.balance)
            })
            .unwrap();
        assert_eq!(a.body, "78000 300 400");
        let again = store
            .purchase(m, &[(p.id, 2)], &key, |_| "x".into())
            .unwrap();
        assert!(again.replayed);
        assert_eq!(store.account(account).unwrap().balance, 400);
        assert!(matches!(
            store.purchase(
                m,
                &[(9999, 1)],
                &Idempotent {
                    scope: "purchase".into(),
                    key: "o2".into(),
                    request_hash: "h".into()
                },
                |_| String::new()
            ),
            Err(StoreError::NotFound(_))
        ));
        audit_ok(&store);
    }
);

on_both_stores!(reserve_then_settle_debits_once, |store: Store, _url| {
    let (_, account) = member(&store, "choi", 1000);
    let t = tariffs(100, 3600);
    let auth = store
        .reserve(
            "n1",
            "call-1",
            "01012345678",
            DestinationKind::Mobile,
            Charge::Account(account),
            &t,
        )
        .unwrap();
    assert_eq!(auth.max_secs, 600, "1000 points at 100/min buy ten minutes");
    assert_eq!(auth.limit_reason, "mileage exhausted");
    let a = store.account(account).unwrap();
    assert_eq!((a.balance, a.reserved, a.available()), (1000, 1000, 0));
    // 61 s of talk on 60/60 billing: two minutes.
    let s = Settlement {
        reservation: auth.reservation,
        call_id: "call-1".into(),
        answered_ms: Some(10_000),
        ended_ms: 71_000,
        cause: "caller hung up".into(),
        record: None,
        legs: Vec::new(),
    };
    assert_eq!(
        store.settle(&s).unwrap(),
        Settled::Done {
            billed_secs: 120,
            cost: 200,
            released: 800
        }
    );
    assert_eq!(
        store.settle(&s).unwrap(),
        Settled::Already,
        "a second settlement does nothing"
    );
    let a = store.account(account).unwrap();
    assert_eq!((a.balance, a.reserved), (800, 0));
    assert_eq!(store.debits_of_call("call-1").unwrap(), vec![200]);
    let kinds: Vec<_> = store
        .ledger(account, 0, 10)
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.amount))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("credit".into(), 1000),
            ("reserve".into(), 1000),
            ("debit".into(), 200),
            ("release".into(), 800)
        ]
    );
    // Not enough for the first minute: refused with the reason the caller hears.
    store
        .reserve(
            "n1",
            "call-2",
            "01012345678",
            DestinationKind::Mobile,
            Charge::Account(account),
            &tariffs(800, 3600),
        )
        .unwrap();
    let err = store
        .reserve(
            "n1",
            "call-3",
            "01012345678",
            DestinationKind::Mobile,
            Charge::Account(account),
            &t,
        )
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Refused(Refusal::MileageExhausted)),
        "{err:?}"
    );
    let err = store
        .reserve(
            "n1",
            "call-4",
            "0602345678",
            DestinationKind::PremiumRate,
            Charge::Account(account),
            &t,
        )
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Refused(Refusal::DestinationNotAllowed)),
        "{err:?}"
    );
    audit_ok(&store);
});

on_both_stores!(an_unanswered_call_costs_nothing, |store: Store, _url| {
    let (_, account) = member(&store, "jung", 500);
    let auth = store
        .reserve(
            "n1",
            "c",
            "0212345678",
            DestinationKind::Landline,
            Charge::Account(account),
            &tariffs(100, 3600),
        )
        .unwrap();
    let s = Settlement {
        reservation: auth.reservation,
        call_id: "c".into(),
        answered_ms: None,
        ended_ms: 5_000,
        cause: "busy".into(),
        record: None,
        legs: Vec::new(),
    };
    assert_eq!(
        store.settle(&s).unwrap(),
        Settled::Done {
            billed_secs: 0,
            cost: 0,
            released: 500
        }
    );
    assert_eq!(store.debits_of_call("c").unwrap(), Vec::<i64>::new());
    assert_eq!(store.account(account).unwrap().balance, 500);
    audit_ok(&store);
});

on_both_stores!(
    twenty_simultaneous_calls_never_overdraw,
    |store: Store, _url| {
        // Three minutes of mileage; each call may reserve at most one minute.
        let (_, account) = member(&store, "han", 300);
        let t = tariffs(100, 60);
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..20)
                .map(|i| {
                    let store = store.clone();
                    let t = t.clone();
                    s.spawn(move || {
                        store.reserve(
                            "n1",
                            &format!("race-{i}"),
                            "01012345678",
                            DestinationKind::Mobile,
                            Charge::Account(account),
                            &t,
                        )
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(StoreError::Refused(Refusal::MileageExhausted))))
            .count();
        assert_eq!(
            ok.len(),
            3,
            "exactly three one-minute calls fit: {results:?}"
        );
        assert_eq!(refused, 17);
        let a = store.account(account).unwrap();
        assert_eq!((a.balance, a.reserved), (300, 300));
        for (i, auth) in ok.iter().enumerate() {
            let s = Settlement {
                reservation: auth.reservation,
                call_id: format!("settle-{i}"),
                answered_ms: Some(0),
                ended_ms: 60_000,
                cause: "x".into(),
                record: None,
                legs: Vec::new(),
            };
            store.settle(&s).unwrap();
        }
        let a = store.account(account).unwrap();
        assert_eq!(
            (a.balance, a.reserved),
            (0, 0),
            "three billed minutes, nothing below zero"
        );
        audit_ok(&store);
    }
);

on_both_stores!(
    a_card_call_uses_the_guild_and_one_call_of_quota,
    |store: Store, _url| {
        let issuer = store
            .create_issuer(
                &NewIssuer {
                    login: "acme".into(),
                    password_hash: "x".into(),
                    name: "Acme".into(),
                    company: "Acme Co".into(),
                },
                1000,
            )
            .unwrap();
        let card = store
            .create_card(&NewCard {
                issuer_id: issuer.id,
                language: "ko".into(),
                name: "Kim".into(),
                title: "CEO".into(),
                company: "Acme".into(),
                text: "".into(),
                image_url: "".into(),
                video_url: "".into(),
                design: "".into(),
                phones: "[]".into(),
                quota: 2,
                callback_countries: String::new(),
            })
            .unwrap();
        let t = tariffs(100, 60);
        let a1 = store
            .reserve(
                "n1",
                "card-1",
                "0212345678",
                DestinationKind::Landline,
                Charge::Card(card.id),
                &t,
            )
            .unwrap();
        assert_eq!(a1.limit_reason, "maximum call duration reached");
        let a2 = store
            .reserve(
                "n1",
                "card-2",
                "0212345678",
                DestinationKind::Landline,
                Charge::Card(card.id),
                &t,
            )
            .unwrap();
        let err = store
            .reserve(
                "n1",
                "card-3",
                "0212345678",
                DestinationKind::Landline,
                Charge::Card(card.id),
                &t,
            )
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Refused(Refusal::QuotaUsedUp)),
            "{err:?}"
        );
        assert_eq!(
            store.account(issuer.account_id).unwrap().reserved,
            200,
            "the refused call holds nothing"
        );
        // One answered, one not: one call of quota used, one given back.
        store
            .settle(&Settlement {
                reservation: a1.reservation,
                call_id: "card-1".into(),
                answered_ms: Some(0),
                ended_ms: 30_000,
                cause: "x".into(),
                record: None,
                legs: Vec::new(),
            })
            .unwrap();
        store
            .settle(&Settlement {
                reservation: a2.reservation,
                call_id: "card-2".into(),
                answered_ms: None,
                ended_ms: 30_000,
                cause: "x".into(),
                record: None,
                legs: Vec::new(),
            })
            .unwrap();
        let c = store.card(card.id).unwrap();
        assert_eq!((c.quota_used, c.quota_reserved, c.quota_left()), (1, 0, 1));
        let a = store.account(issuer.account_id).unwrap();
        assert_eq!(
            (a.balance, a.reserved, a.cards.clone()),
            (900, 0, vec![(card.id, 1)])
        );
        // Guild exhausted is its own reason.
        let poor = store
            .create_issuer(
                &NewIssuer {
                    login: "poor".into(),
                    password_hash: "x".into(),
                    name: "P".into(),
                    company: "".into(),
                },
                0,
            )
            .unwrap();
        let pc = store
            .create_card(&NewCard {
                issuer_id: poor.id,
                language: "ko".into(),
                name: "P".into(),
                title: "".into(),
                company: "".into(),
                text: "".into(),
                image_url: "".into(),
                video_url: "".into(),
                design: "".into(),
                phones: "[]".into(),
                quota: 5,
                callback_countries: String::new(),
            })
            .unwrap();
        let err = store
            .reserve(
                "n1",
                "card-4",
                "0212345678",
                DestinationKind::Landline,
                Charge::Card(pc.id),
                &t,
            )
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Refused(Refusal::GuildExhausted)),
            "{err:?}"
        );
        audit_ok(&store);
    }
);

on_both_stores!(
    after_a_crash_open_calls_are_billed_up_to_the_last_heartbeat,
    |store: Store, _url| {
        let (_, account) = member(&store, "yoon", 1000);
        let t = tariffs(60, 3600); // one point a second
        let auth = store
            .reserve(
                "node-a",
                "crashed-call",
                "01012345678",
                DestinationKind::Mobile,
                Charge::Account(account),
                &t,
            )
            .unwrap();
        let unanswered = store
            .reserve(
                "node-a",
                "ringing-call",
                "01012345678",
                DestinationKind::Mobile,
                Charge::Account(account),
                &tariffs(1, 60),
            )
            .unwrap();
        store.mark_answered(auth.reservation, 1_000_000).unwrap();
        store.heartbeat("node-a", 0, 1_000_000 + 95_000).unwrap();
        // Another node's reservations are not ours to settle.
        let (_, other) = member(&store, "other", 100);
        store
            .reserve(
                "node-b",
                "b-call",
                "01012345678",
                DestinationKind::Mobile,
                Charge::Account(other),
                &t,
            )
            .unwrap();
        let recovered = store.recover("node-a").unwrap();
        assert_eq!(recovered.len(), 2);
        let crashed = recovered
            .iter()
            .find(|r| r.call_id == "crashed-call")
            .unwrap();
        assert_eq!(
            (crashed.billed_secs, crashed.cost),
            (120, 120),
            "95 s talked, billed as two minutes"
        );
        assert_eq!(
            store.recover("node-a").unwrap(),
            vec![],
            "recovery is idempotent"
        );
        assert_eq!(
            store
                .settle(&Settlement {
                    reservation: auth.reservation,
                    call_id: "crashed-call".into(),
                    answered_ms: Some(1_000_000),
                    ended_ms: 2_000_000,
                    cause: "late".into(),
                    record: None,
                    legs: Vec::new(),
                })
                .unwrap(),
            Settled::Already
        );
        let _ = unanswered;
        assert_eq!(store.debits_of_call("crashed-call").unwrap(), vec![120]);
        assert_eq!(store.account(account).unwrap().balance, 880);
        assert_eq!(
            store.open_reservations().unwrap(),
            1,
            "node-b's call stays open"
        );
        audit_ok(&store);
    }
);

on_both_stores!(the_ledger_is_append_only, |store: Store, url: String| {
    let (_, account) = member(&store, "seo", 10);
    let _ = account;
    // Straight SQL, as a careless script would do it.
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    let err = if url.starts_with("postgres") {
        let mut c = diesel::pg::PgConnection::establish(&url).unwrap();
        c.batch_execute("UPDATE ledger SET amount = 0")
            .unwrap_err()
            .to_string()
            + &c.batch_execute("DELETE FROM ledger")
                .unwrap_err()
                .to_string()
    } else {
        let mut c = diesel::sqlite::SqliteConnection::establish(&url).unwrap();
        c.batch_execute("UPDATE ledger SET amount = 0")
            .unwrap_err()
            .to_string()
            + &c.batch_execute("DELETE FROM ledger")
                .unwrap_err()
                .to_string()
    };
    assert!(err.contains("append-only"), "{err}");
    let _ = Payer::Account(1);
});

/// PostgreSQL's settlement function applies postings and decides nothing: one that does
/// not add up to what the reservation holds is not applied (and nothing moves).
#[test]
fn postgres_applies_only_a_posting_that_adds_up_to_what_was_held() {
    use diesel::{Connection, QueryableByName, RunQueryDsl, sql_query};
    #[derive(QueryableByName)]
    struct Outcome {
        #[diesel(sql_type = diesel::sql_types::Text)]
        outcome: String,
    }
    let url = common::stores::pg_url();
    let store = common::stores::open(&url);
    let (_, account) = member(&store, "yoon", 1000);
    let auth = store
        .reserve(
            "n1",
            "call-x",
            "01012345678",
            DestinationKind::Mobile,
            Charge::Account(account),
            &tariffs(100, 3600),
        )
        .unwrap();
    let mut c = diesel::pg::PgConnection::establish(&url).unwrap();
    let apply = |c: &mut diesel::pg::PgConnection, cost: i64, released: i64| -> String {
        sql_query(format!(
            "SELECT freecall_apply_settlement({}, 60, {cost}, {released}, true, 0, 0, 0, 1, 2, 'x', 'call-x', 3) AS outcome",
            auth.reservation
        ))
        .get_result::<Outcome>(c)
        .unwrap()
        .outcome
    };
    // 1000 held: 100 + 800 gives out less than was held, 100 + 1000 more.
    assert_eq!(apply(&mut c, 100, 800), "mismatch");
    assert_eq!(apply(&mut c, 100, 1000), "mismatch");
    let a = store.account(account).unwrap();
    assert_eq!((a.balance, a.reserved), (1000, 1000), "nothing moved");
    assert_eq!(apply(&mut c, 100, 900), "done");
    assert_eq!(apply(&mut c, 100, 900), "already", "once");
    let a = store.account(account).unwrap();
    assert_eq!((a.balance, a.reserved), (900, 0));
    audit_ok(&store);
}
