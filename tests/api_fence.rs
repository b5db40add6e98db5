//! The REST API's own limits on the real daemon (the shipped configuration with
//! `[api] requests_per_address = 20`): a client that sends more than its rate gets `429`
//! with `Retry-After` and a problem body, before its key is even read; a credit refused
//! that way writes nothing and goes through once when retried after the wait; monitoring
//! (`/healthz`, `/metrics`) stays open meanwhile, and the refusals are counted there.

mod common;

use common::http::call;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn a_client_over_its_rate_gets_429_with_retry_after_and_loses_nothing() {
    let dir = common::daemon::temp_dir("api-fence");
    let shipped = common::daemon::shipped_with_api(
        &dir,
        45000,
        &[(
            "requests_per_address = 100",
            "requests_per_address = 20".into(),
        )],
    );
    let (api, key) = (shipped.api, shipped.key.clone());

    let r = call(
        api,
        "POST",
        "/v1/members",
        Some(&key),
        &[],
        Some(json!({"login": "minji", "password": "correct horse", "name": "Kim Minji"})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let account = r.json()["account_id"].as_i64().unwrap();
    let balance = || {
        call(
            api,
            "GET",
            &format!("/v1/accounts/{account}"),
            Some(&key),
            &[],
            None,
        )
        .json()["balance"]
            .as_i64()
            .unwrap()
    };
    // The requests so far took from the allowance; let it fill up again before counting.
    std::thread::sleep(Duration::from_millis(2100));

    // 60 reads as fast as one client can send them: the burst (40) and what the rate
    // gives back meanwhile pass; the rest are refused. A request without a key is
    // refused the same way (guessing keys is as limited as using one).
    // The client's own stopwatch: how long its 60 requests took bounds what may pass.
    #[allow(clippy::disallowed_methods)]
    let started = Instant::now();
    let statuses: Vec<u16> = (0..60)
        .map(|i| {
            let key = (i % 2 == 0).then_some(key.as_str());
            call(api, "GET", "/v1/tariffs", key, &[], None).status
        })
        .collect();
    let took = started.elapsed();
    let passed = statuses.iter().filter(|s| **s != 429).count();
    let refused = statuses.len() - passed;
    eprintln!("60 requests in {took:?}: {passed} passed, {refused} refused with 429");
    let allowed = 40 + (took.as_secs_f64() * 20.0).ceil() as usize;
    assert!(
        (40..=allowed).contains(&passed),
        "the burst of 40 and 20/s after it pass, no more: {statuses:?}"
    );
    assert!(refused >= 60 - allowed, "{statuses:?}");

    // What a refused client is told.
    let r = call(api, "GET", "/v1/tariffs", Some(&key), &[], None);
    assert_eq!(r.status, 429, "still over its rate");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.json()["type"], "urn:freecall:problem:too-many-requests");

    // A credit refused now writes nothing ...
    let credit = |key: &str| {
        call(
            api,
            "POST",
            &format!("/v1/accounts/{account}/credits"),
            Some(key),
            &[("Idempotency-Key", "order-7")],
            Some(json!({"amount": 500, "cause": "order 7"})),
        )
    };
    let r = credit(&key);
    assert_eq!(r.status, 429, "{}", r.text());

    // ... while monitoring still answers, and counts the refusals.
    let r = call(api, "GET", "/healthz", None, &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    let metrics = call(api, "GET", "/metrics", None, &[], None).text();
    let counted: u64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("freecall_limit_refusals_total{limit=\"api_requests_per_address\"}")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no API refusals in /metrics:\n{metrics}"));
    assert!(
        counted >= refused as u64 + 2,
        "{counted} counted, {refused} + 2 refused"
    );

    // After the Retry-After, the shop's retry of the same credit goes through, once.
    std::thread::sleep(Duration::from_millis(1100));
    let r = credit(&key);
    assert_eq!(r.status, 201, "{}", r.text());
    let signup = 300;
    assert_eq!(balance(), signup + 500, "credited exactly once");
}
