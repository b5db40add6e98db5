//! The REST API for issuers, their cards and members' phone books, over a real socket, on
//! SQLite and on PostgreSQL: an issuer's guild and a card's call quota, seen on the account
//! with minutes left; a card read, changed, exchanged as a vCard and withdrawn; a member's
//! phone book kept; which key may do what (read, credit, admin); and an OpenAPI document
//! that matches the routes.

mod common;

use common::http::{call, request};
use common::rest::{problem_type, start};
use freecall::api;
use freecall::store::Store;
use serde_json::json;

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
