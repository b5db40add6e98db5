//! The REST API over a real socket, on SQLite and on PostgreSQL: the shop's flow (signup,
//! catalogue, purchase → mileage), top-ups with idempotency keys, cards and quotas, the
//! account view with minutes left, scopes, hostile bodies refused with problem+json and
//! nothing written, and an OpenAPI document that matches the routes.

mod common;

use common::http::{call, request};
use freecall::api::{self, ApiState};
use freecall::billing::{AccountKind, Tariff, Tariffs};
use freecall::numbers::DestinationKind;
use freecall::store::Store;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

struct Api {
    addr: SocketAddr,
    admin: String,
    credit: String,
    read: String,
    _rt: actix_web::rt::SystemRunner,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Api {
    fn drop(&mut self) {
        let h = self.handle.clone();
        self._rt.block_on(async move { h.stop(false).await });
    }
}

fn key(store: &Store, scope: &str) -> String {
    let k = format!("fc_test_{scope}_{}", std::process::id());
    store
        .create_api_key(scope, &freecall::auth::api_key_hash(&k), scope)
        .unwrap();
    k
}

fn start(store: Store) -> Api {
    let mut t = Tariffs::new(3600);
    for (dest, per_minute) in [
        (DestinationKind::Landline, 10),
        (DestinationKind::Mobile, 20),
        (DestinationKind::TollFree, 0),
    ] {
        t.insert(
            AccountKind::Mileage,
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
    t.insert(
        AccountKind::Guild,
        Tariff {
            destination: DestinationKind::Landline,
            per_minute: 50,
            first_secs: 30,
            increment_secs: 6,
            minimum: 0,
            connection: 0,
        },
    );
    let state = ApiState {
        store: store.clone(),
        tariffs: Arc::new(RwLock::new(Arc::new(t))),
        realm: "freecall".into(),
        signup_bonus_mileage: 300,
        signup_bonus_guild: 1000,
        metrics: None,
        placing: None,
        public_url: String::new(),
        numbers: freecall::numbers::Classifier::new("KR").expect("home country"),
        bookings: None,
        registrations: None,
    };
    let (admin, credit, read) = (
        key(&store, "admin"),
        key(&store, "credit"),
        key(&store, "read"),
    );
    let rt = actix_web::rt::System::new();
    let (server, addr) = rt
        .block_on(async { api::serve(state, "127.0.0.1:0".parse().unwrap(), 4096) })
        .unwrap();
    let handle = server.handle();
    std::thread::spawn(move || {
        let _ = actix_web::rt::System::new().block_on(server);
    });
    Api {
        addr,
        admin,
        credit,
        read,
        _rt: rt,
        handle,
    }
}

fn problem_type(r: &common::http::Response) -> String {
    assert_eq!(
        r.header("Content-Type"),
        Some("application/problem+json"),
        "{}",
        r.text()
    );
    r.json()["type"].as_str().unwrap().to_string()
}

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

on_both_stores!(issuers_cards_and_quota, |store: Store, _url| {
    let api = start(store.clone());
    let a = api.addr;
    let r = call(
        a,
        "POST",
        "/v1/issuers",
        Some(&api.admin),
        &[],
        Some(
            json!({"login": "acme", "password": "long enough", "name": "Acme", "company": "Acme Co"}),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let issuer = r.json();
    let r = call(
        a,
        "POST",
        "/v1/cards",
        Some(&api.admin),
        &[],
        Some(json!({
            "issuer_id": issuer["id"], "language": "en", "name": "Kim", "title": "CEO", "company": "Acme",
            "phones": [{"kind": "landline", "number": "02-556-1234"}, {"kind": "mobile", "number": "010-1234-5678"}],
            "quota": 25
        })),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let card = r.json();
    assert_eq!(card["quota_left"], 25);
    assert_eq!(card["phones"][1]["kind"], "mobile");
    let r = call(
        a,
        "GET",
        &format!("/v1/accounts/{}", issuer["account_id"]),
        Some(&api.read),
        &[],
        None,
    );
    let view = r.json();
    assert_eq!(view["kind"], "guild");
    assert_eq!(view["balance"], 1000, "the guild signup bonus");
    assert_eq!(view["quota_left"], 25);
    // 1000 at 50 a minute on 30/6 billing: twenty minutes.
    assert_eq!(view["minutes_left"]["landline"], 20);
    let r = call(
        a,
        "POST",
        "/v1/cards",
        Some(&api.admin),
        &[],
        Some(json!({"issuer_id": 99999, "name": "X", "quota": 1})),
    );
    assert_eq!(r.status, 404);
    let r = call(
        a,
        "POST",
        "/v1/cards",
        Some(&api.admin),
        &[],
        Some(
            json!({"issuer_id": issuer["id"], "name": "X", "quota": 1, "phones": [{"kind": "fax", "number": "1"}]}),
        ),
    );
    assert_eq!(r.status, 422);
});

on_both_stores!(keys_and_scopes, |store: Store, _url| {
    let api = start(store.clone());
    let a = api.addr;
    let r = call(a, "GET", "/v1/tariffs", None, &[], None);
    assert_eq!(
        (r.status, problem_type(&r).as_str()),
        (401, "urn:freecall:problem:unauthorized")
    );
    assert_eq!(r.header("WWW-Authenticate"), Some("Bearer"));
    let r = call(a, "GET", "/v1/tariffs", Some("fc_not_a_key"), &[], None);
    assert_eq!(r.status, 401);
    let r = call(a, "GET", "/v1/tariffs", Some(&api.read), &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["tariffs"].as_array().unwrap().len(), 4);
    // read cannot write; credit cannot read or touch the catalogue.
    let r = call(
        a,
        "POST",
        "/v1/products",
        Some(&api.read),
        &[],
        Some(json!({"name": "x", "price": 1, "mileage_award": 1})),
    );
    assert_eq!(
        (r.status, problem_type(&r).as_str()),
        (403, "urn:freecall:problem:forbidden")
    );
    let r = call(
        a,
        "POST",
        "/v1/products",
        Some(&api.credit),
        &[],
        Some(json!({"name": "x", "price": 1, "mileage_award": 1})),
    );
    assert_eq!(r.status, 403);
    let r = call(a, "GET", "/v1/tariffs", Some(&api.credit), &[], None);
    assert_eq!(r.status, 403);
    let r = call(a, "GET", "/v1/nothing-here", Some(&api.admin), &[], None);
    assert_eq!(
        (r.status, problem_type(&r).as_str()),
        (404, "urn:freecall:problem:not-found")
    );
    assert_eq!(
        store.products(0, 10).unwrap().len(),
        0,
        "nothing was written"
    );
});

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

on_both_stores!(
    the_openapi_document_matches_the_routes,
    |store: Store, _url| {
        let api = start(store.clone());
        let r = call(api.addr, "GET", "/v1/openapi.json", None, &[], None);
        assert_eq!(r.status, 200);
        let doc = r.json();
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.push((method.clone(), path.clone()));
            }
        }
        documented.sort();
        let mut served: Vec<(String, String)> = api::ROUTES
            .iter()
            .filter(|(_, p)| *p != "/v1/openapi.json")
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        served.sort();
        assert_eq!(documented, served);
        // Every listed route is really served (a missing one would be a "no route" 404).
        for (method, path) in api::ROUTES {
            let p = path.replace("{id}", "1");
            let r = call(
                api.addr,
                &method.to_uppercase(),
                &p,
                Some(&api.admin),
                &[("Idempotency-Key", "probe")],
                (*method == "post").then(|| json!({})),
            );
            assert!(
                !r.text().contains("no route for"),
                "{method} {path}: {}",
                r.text()
            );
        }
    }
);

on_both_stores!(
    cards_are_read_changed_withdrawn_and_exchanged_as_vcards_and_phone_books_kept,
    |store: Store, _url| {
        let api = start(store.clone());
        let a = api.addr;
        let issuer = call(
            a,
            "POST",
            "/v1/issuers",
            Some(&api.admin),
            &[],
            Some(json!({"login": "hanbit", "password": "long enough", "name": "Hanbit", "company": "Hanbit Co"})),
        )
        .json();
        let r = call(
            a,
            "POST",
            "/v1/cards",
            Some(&api.admin),
            &[],
            Some(json!({
                "issuer_id": issuer["id"], "language": "ko", "name": "김민지", "title": "디자이너",
                "versions": [{"language": "en", "name": "Minji Kim", "title": "Designer"}],
                "phones": [{"kind": "mobile", "number": "010-2222-3333", "callback": true}],
                "design": "forest", "quota": 10
            })),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let card = r.json();
        let id = card["id"].as_i64().unwrap();
        let public = card["public_url"].as_str().unwrap();
        assert!(public.starts_with(&format!("http://{a}/c/")), "{public}");
        assert_eq!(card["versions"][0]["name"], "Minji Kim");

        // Read, listed, changed: quota up (a ledger entry), the English title changed.
        let r = call(
            a,
            "GET",
            &format!("/v1/cards/{id}"),
            Some(&api.read),
            &[],
            None,
        );
        assert_eq!(r.json()["public_url"], public);
        let r = call(
            a,
            "GET",
            &format!("/v1/cards?issuer_id={}", issuer["id"]),
            Some(&api.read),
            &[],
            None,
        );
        assert_eq!(r.json().as_array().unwrap().len(), 1);
        let r = call(
            a,
            "PUT",
            &format!("/v1/cards/{id}"),
            Some(&api.admin),
            &[],
            Some(json!({
                "issuer_id": issuer["id"], "language": "ko", "name": "김민지", "title": "디자이너",
                "versions": [{"language": "en", "name": "Minji Kim", "title": "Head of design"}],
                "phones": [{"kind": "mobile", "number": "010-2222-3333", "callback": true}],
                "design": "forest", "quota": 12
            })),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["versions"][0]["title"], "Head of design");
        assert_eq!(r.json()["quota_left"], 12);
        assert_eq!(r.json()["public_url"], public, "the link stays");
        let ledger = call(
            a,
            "GET",
            &format!("/v1/accounts/{}/ledger", issuer["account_id"]),
            Some(&api.read),
            &[],
            None,
        )
        .json();
        assert!(
            ledger["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["cause"] == "call quota raised" && e["calls"] == 2),
            "{ledger}"
        );
        assert!(store.audit().unwrap().is_empty());
        // Another issuer's id in the body does not reach this card; a bad design is named.
        let r = call(
            a,
            "PUT",
            &format!("/v1/cards/{id}"),
            Some(&api.admin),
            &[],
            Some(json!({"issuer_id": 99999, "name": "X", "quota": 1})),
        );
        assert_eq!(r.status, 404);
        let r = call(
            a,
            "PUT",
            &format!("/v1/cards/{id}"),
            Some(&api.admin),
            &[],
            Some(
                json!({"issuer_id": issuer["id"], "name": "X", "quota": 1, "design": "neon", "versions": [{"language": "xx", "name": "Y"}]}),
            ),
        );
        assert_eq!(r.status, 422);
        let detail = r.json()["detail"].as_str().unwrap().to_string();
        assert!(
            detail.contains("design must be one of") && detail.contains("versions[0].language"),
            "every fault at once: {detail}"
        );

        // vCard out, and in (a phone's 3.0): text and numbers replaced, the rest kept.
        let r = request(
            a,
            "GET",
            &format!("/v1/cards/{id}/vcard?lang=en"),
            &[("Authorization", &format!("Bearer {}", api.read))],
            None,
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Content-Type"), Some("text/vcard; charset=utf-8"));
        let vcf = r.text();
        assert!(
            vcf.contains("FN;LANGUAGE=en:Minji Kim") && vcf.contains("TITLE:Head of design"),
            "{vcf}"
        );
        assert!(vcf.contains(&format!("URL:{public}")), "{vcf}");
        let phone = std::fs::read(format!(
            "{}/tests/fixtures/phone-3.0.vcf",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let auth = format!("Bearer {}", api.admin);
        let r = request(
            a,
            "PUT",
            &format!("/v1/cards/{id}/vcard"),
            &[("Authorization", &auth), ("Content-Type", "text/vcard")],
            Some(&phone),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["name"], "Jisoo Park");
        assert_eq!(v["phones"][0]["number"], "010-4444-5555");
        assert_eq!(v["quota_total"], 12, "the quota stays");
        assert_eq!(v["design"], "forest");
        let r = request(
            a,
            "PUT",
            &format!("/v1/cards/{id}/vcard"),
            &[("Authorization", &auth), ("Content-Type", "text/vcard")],
            Some(b"hello"),
        );
        assert_eq!(r.status, 422);
        let r = request(
            a,
            "PUT",
            &format!("/v1/cards/{id}/vcard"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            Some(&phone),
        );
        assert_eq!(r.status, 415);

        // The issuer's calls (none yet), then the card withdrawn.
        let r = call(
            a,
            "GET",
            &format!("/v1/issuers/{}/calls", issuer["id"]),
            Some(&api.read),
            &[],
            None,
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), json!([]));
        let r = call(
            a,
            "DELETE",
            &format!("/v1/cards/{id}"),
            Some(&api.admin),
            &[],
            None,
        );
        assert_eq!(r.status, 204);
        let r = call(
            a,
            "GET",
            &format!("/v1/cards/{id}"),
            Some(&api.read),
            &[],
            None,
        );
        assert_eq!(r.status, 404);
        let r = call(
            a,
            "POST",
            &format!("/v1/cards/{id}/callbacks"),
            None,
            &[],
            Some(json!({"number": "02-556-1234"})),
        );
        assert_ne!(r.status, 202, "no call-back on a withdrawn card");

        // A member's phone book.
        let m = call(
            a,
            "POST",
            "/v1/members",
            Some(&api.credit),
            &[],
            Some(json!({"login": "haneul", "password": "correct horse", "name": "Haneul", "phone": "010-5555-6666"})),
        )
        .json();
        let book = format!("/v1/members/{}/phonebook", m["id"]);
        let r = call(
            a,
            "POST",
            &book,
            Some(&api.credit),
            &[],
            Some(json!({"name": "Mum", "number": "02-556-7777"})),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let entry = r.json()["id"].as_i64().unwrap();
        let r = call(
            a,
            "POST",
            &book,
            Some(&api.credit),
            &[],
            Some(json!({"name": "Nobody", "number": "not a number"})),
        );
        assert_eq!(r.status, 422);
        let r = call(
            a,
            "PUT",
            &format!("{book}/{entry}"),
            Some(&api.credit),
            &[],
            Some(json!({"name": "Mum (home)", "number": "02-556-7777"})),
        );
        assert_eq!(r.json()["name"], "Mum (home)");
        let r = call(a, "GET", &book, Some(&api.read), &[], None);
        assert_eq!(r.json().as_array().unwrap().len(), 1);
        let r = call(
            a,
            "GET",
            &format!("/v1/members/99999/phonebook/{entry}"),
            Some(&api.read),
            &[],
            None,
        );
        assert_eq!(r.status, 404);
        // Without a running switch the call is refused plainly.
        let r = call(
            a,
            "POST",
            &format!("{book}/{entry}/calls"),
            Some(&api.credit),
            &[],
            None,
        );
        assert_eq!(r.status, 503, "{}", r.text());
        let r = call(
            a,
            "DELETE",
            &format!("{book}/{entry}"),
            Some(&api.credit),
            &[],
            None,
        );
        assert_eq!(r.status, 204);
        let r = call(
            a,
            "DELETE",
            &format!("{book}/{entry}"),
            Some(&api.credit),
            &[],
            None,
        );
        assert_eq!(r.status, 404);
    }
);
