//! The API's own limits, ahead of any work that costs (a key check is a database read):
//!
//! - per client address, `[api] requests_per_address` a second with a burst of twice that
//!   (`crate::flood`'s token bucket): past it, `429` with `Retry-After: 1` — a second
//!   gives the address back its rate;
//! - for the whole listener, `[api] max_concurrent_requests` handlers at work at once:
//!   past it, `503` with `Retry-After: 1` (the switch is busy, not the client greedy).
//!
//! Only `/v1/…` is fenced. `/metrics`, `/healthz` and `/readyz` stay open for monitoring
//! and load balancers even while a client is refused; the web pages have their own fences
//! (logins per account and address, call-backs per address). A stream (`/v1/cdrs/stream`,
//! a call's events) holds a slot only until its first byte: the slot counts handlers at
//! work, not open connections.

use super::{ApiState, Problem, client_ip};
use crate::flood::{FloodGate, Verdict};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The limits and what they have counted so far.
pub struct Fence {
    per_address: Mutex<FloodGate>,
    max_concurrent: usize,
    at_work: AtomicUsize,
}

impl Default for Fence {
    /// No limits.
    fn default() -> Fence {
        Fence::new(0, 0)
    }
}

impl Fence {
    /// `requests_per_address` a second per client address, `max_concurrent` handlers at
    /// once (0: no limit, either of them).
    pub fn new(requests_per_address: u32, max_concurrent: usize) -> Fence {
        Fence {
            per_address: Mutex::new(FloodGate::new(requests_per_address)),
            max_concurrent,
            at_work: AtomicUsize::new(0),
        }
    }

    /// A request from `ip` at `now`: its slot (held until it drops) to let it in, or the
    /// problem to answer with.
    fn admit(&self, now: Instant, ip: std::net::IpAddr) -> Result<Slot<'_>, Problem> {
        let verdict = self
            .per_address
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(now, ip);
        match verdict {
            Verdict::Pass => {}
            Verdict::Recovered { dropped } => {
                tracing::info!(%ip, refused = dropped, "API: client back under its rate");
            }
            Verdict::Drop { first } => {
                crate::telemetry::limit_refused("api_requests_per_address");
                if first {
                    tracing::warn!(%ip, "API: client over its rate of requests, refused with 429");
                }
                return Err(too_many());
            }
        }
        let before = self.at_work.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(&self.at_work);
        if self.max_concurrent > 0 && before >= self.max_concurrent {
            crate::telemetry::limit_refused("api_concurrent_requests");
            return Err(busy());
        }
        Ok(slot)
    }
}

/// A handler at work; its slot is given back when it drops.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn too_many() -> Problem {
    Problem {
        retry_after: Some(1),
        ..Problem::new(
            429,
            "too-many-requests",
            "Too many requests",
            "this address sent more requests than the API takes from one client; \
             retry after the time in Retry-After",
        )
    }
}

fn busy() -> Problem {
    Problem {
        retry_after: Some(1),
        ..Problem::new(
            503,
            "overloaded",
            "Service busy",
            "the API is working on as many requests as it takes at once; nothing was \
             done, retry after the time in Retry-After",
        )
    }
}

/// The middleware (`actix_web::middleware::from_fn`) in front of every route.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if !req.path().starts_with("/v1/") {
        return next.call(req).await.map(|r| r.map_into_left_body());
    }
    let Some(state) = req.app_data::<web::Data<ApiState>>().cloned() else {
        return next.call(req).await.map(|r| r.map_into_left_body());
    };
    let ip = client_ip(req.request());
    match state.fence.admit(state.store.clock().now(), ip) {
        Ok(_slot) => next.call(req).await.map(|r| r.map_into_left_body()),
        Err(problem) => {
            let response = problem.error_response();
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::NowForTests;

    #[test]
    fn a_client_over_its_rate_gets_429_and_its_slot_is_given_back() {
        let fence = Fence::new(5, 2);
        let t0 = Instant::now_for_tests();
        let shop: std::net::IpAddr = "192.0.2.10".parse().unwrap();
        let other: std::net::IpAddr = "192.0.2.11".parse().unwrap();
        // The burst (10) passes, one at a time; the 11th is refused with 429.
        for _ in 0..10 {
            assert!(fence.admit(t0, shop).is_ok());
        }
        let refused = fence.admit(t0, shop).err().expect("over the rate");
        assert_eq!((refused.status, refused.retry_after), (429, Some(1)));
        // Another client is not held up by it, and a second later the shop may go on.
        assert!(fence.admit(t0, other).is_ok());
        assert!(
            fence
                .admit(t0 + std::time::Duration::from_secs(1), shop)
                .is_ok()
        );
    }

    #[test]
    fn past_the_handlers_at_work_the_api_answers_503_until_one_finishes() {
        let fence = Fence::new(0, 2);
        let t0 = Instant::now_for_tests();
        let ip: std::net::IpAddr = "192.0.2.10".parse().unwrap();
        let first = fence.admit(t0, ip).expect("first");
        let _second = fence.admit(t0, ip).expect("second");
        let busy = fence.admit(t0, ip).err().expect("third is one too many");
        assert_eq!((busy.status, busy.retry_after), (503, Some(1)));
        drop(first);
        assert!(fence.admit(t0, ip).is_ok(), "a slot came back");
    }
}
