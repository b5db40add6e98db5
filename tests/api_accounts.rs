//! The REST API as a shop's backend uses it, over a real socket, on SQLite and on
//! PostgreSQL: the shop signs a member up, lists a product and sells it, and the member's
//! mileage is credited once however often the shop retries; top-ups with idempotency keys;
//! the member's account with its balance, minutes left and a paged ledger; and hostile
//! bodies sent as a credit are refused with problem+json and nothing is written.

mod common;

use common::http::{call, request};
use common::rest::{problem_type, start};
use freecall::store::Store;
use serde_json::json;

on_both_stores!(
    a_shop_signs_up_a_member_sells_and_credits_mileage,
    |store: Store, _url| {
        let api = start(store.clone());
        let a = api.addr;
        let r = call(
            a,
            "POST",
            "/v1/members",
            Some(&api.credit),
            &[],
            Some(json!({
                "login": "minji", "password": "correct horse", "name": "Kim Minji",
                "address": "Seoul", "job": "designer", "phone": "010-9999-8888", "email": "minji@example.com"
            })),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let member = r.json();
        assert_eq!(member["sip_user"], "minji");
        let account = member["account_id"].as_i64().unwrap();
        let r = call(
            a,
            "GET",
            &format!("/v1/accounts/{account}"),
            Some(&api.read),
            &[],
            None,
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["balance"], 300, "the signup bonus");
        // A second signup with the same login.
        let r = call(
            a,
            "POST",
            "/v1/members",
            Some(&api.credit),
            &[],
            Some(json!({"login": "minji", "password": "whatever1", "name": "X"})),
        );
        assert_eq!(
            (r.status, problem_type(&r).as_str()),
            (409, "urn:freecall:problem:conflict")
        );

        let r = call(
            a,
            "POST",
            "/v1/products",
            Some(&api.admin),
            &[],
            Some(json!({
                "name": "Electric kettle", "kind": "kitchen", "spec": "1.7 l", "price": 39000, "supplier": "Acme", "mileage_award": 150
            })),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let product = r.json()["id"].as_i64().unwrap();
        let r = call(a, "GET", "/v1/products", Some(&api.read), &[], None);
        assert_eq!(r.json()["products"][0]["mileage_award"], 150);

        let purchase =
            json!({"member_id": member["id"], "items": [{"product_id": product, "quantity": 2}]});
        let r = call(
            a,
            "POST",
            "/v1/purchases",
            Some(&api.credit),
            &[],
            Some(purchase.clone()),
        );
        assert_eq!(
            (r.status, problem_type(&r).as_str()),
            (400, "urn:freecall:problem:idempotency-key-missing")
        );
        let r = call(
            a,
            "POST",
            "/v1/purchases",
            Some(&api.credit),
            &[("Idempotency-Key", "order-1001")],
            Some(purchase.clone()),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let sale = r.json();
        assert_eq!(
            (
                sale["total_price"].as_i64(),
                sale["mileage"].as_i64(),
                sale["balance"].as_i64()
            ),
            (Some(78000), Some(300), Some(600))
        );
        // The shop retries (its connection dropped): the same sale, no second credit.
        let r = call(
            a,
            "POST",
            "/v1/purchases",
            Some(&api.credit),
            &[("Idempotency-Key", "order-1001")],
            Some(purchase),
        );
        assert_eq!(r.status, 201);
        assert_eq!(r.header("Idempotent-Replayed"), Some("true"));
        assert_eq!(r.json(), sale);
        let r = call(
            a,
            "GET",
            &format!("/v1/accounts/{account}"),
            Some(&api.read),
            &[],
            None,
        );
        let view = r.json();
        assert_eq!(view["balance"], 600);
        assert_eq!(
            view["minutes_left"]["landline"], 60,
            "600 points at 10 a minute"
        );
        assert_eq!(view["minutes_left"]["mobile"], 30);
        assert_eq!(
            view["minutes_left"]["toll_free"],
            serde_json::Value::Null,
            "free"
        );

        // Top-ups.
        let path = format!("/v1/accounts/{account}/credits");
        let r = call(
            a,
            "POST",
            &path,
            Some(&api.credit),
            &[("Idempotency-Key", "pay-1")],
            Some(json!({"amount": 400, "cause": "payment 42"})),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.json()["balance"], 1000);
        let r = call(
            a,
            "POST",
            &path,
            Some(&api.credit),
            &[("Idempotency-Key", "pay-1")],
            Some(json!({"amount": 400, "cause": "payment 42"})),
        );
        assert_eq!(
            (r.status, r.json()["balance"].as_i64()),
            (201, Some(1000)),
            "replayed, not credited again"
        );
        let r = call(
            a,
            "POST",
            &path,
            Some(&api.credit),
            &[("Idempotency-Key", "pay-1")],
            Some(json!({"amount": 999, "cause": "payment 42"})),
        );
        assert_eq!(
            (r.status, problem_type(&r).as_str()),
            (422, "urn:freecall:problem:idempotency-key-reused")
        );

        // The ledger: signup bonus, purchase, top-up; paged.
        let r = call(
            a,
            "GET",
            &format!("/v1/accounts/{account}/ledger?limit=2"),
            Some(&api.read),
            &[],
            None,
        );
        let page = r.json();
        assert_eq!(page["entries"].as_array().unwrap().len(), 2);
        assert_eq!(page["entries"][0]["cause"], "signup bonus");
        assert_eq!(page["entries"][1]["cause"], "purchase");
        let after = page["next_after"].as_i64().unwrap();
        let r = call(
            a,
            "GET",
            &format!("/v1/accounts/{account}/ledger?after={after}"),
            Some(&api.read),
            &[],
            None,
        );
        let page = r.json();
        assert_eq!(page["entries"][0]["cause"], "payment 42");
        assert_eq!(page["entries"][0]["balance_after"], 1000);
        assert!(page["next_after"].is_null());
        assert!(store.audit().unwrap().is_empty());
    }
);

on_both_stores!(
    hostile_bodies_are_refused_and_nothing_is_written,
    |store: Store, _url| {
        let api = start(store.clone());
        let a = api.addr;
        let r = call(
            a,
            "POST",
            "/v1/members",
            Some(&api.credit),
            &[],
            Some(json!({"login": "jin", "password": "long enough", "name": "Jin"})),
        );
        let account = r.json()["account_id"].as_i64().unwrap();
        let path = format!("/v1/accounts/{account}/credits");
        let auth = format!("Bearer {}", api.credit);
        let post = |body: &[u8], ctype: &str, key: &str| {
            request(
                a,
                "POST",
                &path,
                &[
                    ("Authorization", &auth),
                    ("Content-Type", ctype),
                    ("Idempotency-Key", key),
                ],
                Some(body),
            )
        };
        let cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
            (
                "unknown field",
                br#"{"amount": 5, "admin": true}"#.to_vec(),
                "application/json",
                400,
                "malformed-body",
            ),
            (
                "negative",
                br#"{"amount": -500}"#.to_vec(),
                "application/json",
                422,
                "validation",
            ),
            (
                "zero",
                br#"{"amount": 0}"#.to_vec(),
                "application/json",
                422,
                "validation",
            ),
            (
                "absurd",
                br#"{"amount": 9223372036854775807}"#.to_vec(),
                "application/json",
                422,
                "validation",
            ),
            (
                "beyond i64",
                br#"{"amount": 99999999999999999999999}"#.to_vec(),
                "application/json",
                400,
                "malformed-body",
            ),
            (
                "float",
                br#"{"amount": 10.5}"#.to_vec(),
                "application/json",
                400,
                "malformed-body",
            ),
            (
                "string",
                br#"{"amount": "100"}"#.to_vec(),
                "application/json",
                400,
                "malformed-body",
            ),
            (
                "bad UTF-8",
                b"{\"amount\": 5, \"cause\": \"\xff\xfe\"}".to_vec(),
                "application/json",
                400,
                "malformed-body",
            ),
            (
                "not JSON",
                b"amount=5".to_vec(),
                "application/json",
                400,
                "malformed-body",
            ),
            (
                "form",
                b"amount=5".to_vec(),
                "application/x-www-form-urlencoded",
                415,
                "unsupported-media-type",
            ),
            (
                "oversized",
                format!("{{\"amount\": 5, \"cause\": \"{}\"}}", "x".repeat(10_000)).into_bytes(),
                "application/json",
                413,
                "payload-too-large",
            ),
            (
                "control characters",
                br#"{"amount": 5, "cause": "a\u0000b"}"#.to_vec(),
                "application/json",
                422,
                "validation",
            ),
        ];
        for (i, (what, body, ctype, status, kind)) in cases.into_iter().enumerate() {
            let r = post(&body, ctype, &format!("hostile-{i}"));
            assert_eq!(r.status, status, "{what}: {}", r.text());
            assert_eq!(
                problem_type(&r),
                format!("urn:freecall:problem:{kind}"),
                "{what}"
            );
        }
        let r = call(a, "GET", "/v1/accounts/abc", Some(&api.read), &[], None);
        assert_eq!(r.status, 400);
        let r = call(
            a,
            "GET",
            "/v1/accounts/1/ledger?limit=100000",
            Some(&api.read),
            &[],
            None,
        );
        assert_eq!(r.status, 422);
        let r = call(
            a,
            "POST",
            "/v1/accounts/424242/credits",
            Some(&api.credit),
            &[("Idempotency-Key", "k")],
            Some(json!({"amount": 5})),
        );
        assert_eq!(r.status, 404);
        // Only the signup bonus is in the ledger.
        let entries = store.ledger(account, 0, 100).unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(store.account(account).unwrap().balance, 300);
    }
);
