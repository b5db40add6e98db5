//! What the switch refuses before doing any work: requests over `[limits]` (answered
//! statelessly, counted) — among them new work while the switch is overloaded (requests
//! that waited too long in the socket's queue, authorizations piling up) — and a load
//! balancer's probe told whether this node takes calls (200, or 503 while it drains or
//! its database does not answer).

use super::{Limits, Manager};
use crate::flood;
use crate::sip::{Builder, Message, Method};
use crate::transaction::{Peer, TxId};
use std::time::Instant;

impl Manager {
    /// A request that would make the switch hold more than `[limits]` allows is refused
    /// without keeping anything (answered statelessly, counted): too many header fields
    /// (400), or, while the transactions are at their cap, anything that would start a
    /// new one (503 with Retry-After). What belongs to what the switch holds still goes
    /// through: retransmissions, ACKs, a CANCEL of a held INVITE, a request within a
    /// known call (an invented To tag is not one).
    pub(super) fn within_limits(
        &mut self,
        now: Instant,
        from: Peer,
        req: &Message,
        waited: std::time::Duration,
    ) -> bool {
        let limits = self.settings.limits;
        let method = req.method().cloned().unwrap_or(Method::Ack);
        let known = method == Method::Ack
            || self.tx.holds(req)
            || req.to_tag.as_ref().is_some_and(|tag| {
                self.dialogs
                    .contains_key(&(req.call_id.clone(), tag.clone()))
            });
        if !known && !self.flood_passes(now, from, req) {
            // Dropped unanswered: a flood or a scanner learns nothing, at no cost.
            self.limit_refusals.push("requests_per_address");
            return false;
        }
        // What overload control may refuse: new work. Not what belongs to a call, and
        // not a load balancer's probe, answered as the node's state says (200 while it
        // takes calls): one late probe must not take a busy node out.
        let probe =
            method == Method::Options && self.routing.dispatchers.allows(from.addr.ip()).is_some();
        let new_work = !(known || probe || matches!(method, Method::Cancel | Method::Bye));
        let (code, phrase, why, limit) = if req.headers.len() > limits.max_headers {
            if method == Method::Ack {
                self.limit_refusals.push("headers");
                return false;
            }
            (400, "Bad Request", "too many header fields", "headers")
        } else if new_work
            && (waited.as_millis() as u64 >= limits.overload_queue_ms
                && limits.overload_queue_ms > 0
                || method == Method::Invite
                    && self.authorizing >= limits.max_pending_authorizations)
        {
            // Overloaded: the signalling loop is behind (this request waited in the
            // socket's queue) or the database is (authorizations pile up). New work is
            // refused at once, statelessly, so what the switch holds — calls in progress,
            // their ACKs, BYEs and CANCELs — gets its time, and the switch catches up.
            (503, "Service Unavailable", "overloaded", "overload")
        } else if self.tx.len() >= limits.max_transactions && !known {
            (
                503,
                "Service Unavailable",
                "too many transactions",
                "transactions",
            )
        } else {
            return true;
        };
        self.limit_refusals.push(limit);
        let tag = self.tx.new_token();
        let mut b = Builder::response_to(req, code, phrase, Some(&tag));
        b.reason(code, why)
            .header("Server", &self.settings.user_agent);
        if code == 503 {
            b.header("Retry-After", if limit == "overload" { "2" } else { "5" });
        }
        self.tx.send_stateless(from, b.finish(None, &[]));
        false
    }

    /// Whether a new request from `from` is within its address's allowance. Trusted
    /// peers, carriers and a dispatcher's requests that do not name their caller are not
    /// limited; behind a dispatcher the caller's own address is.
    fn flood_passes(&mut self, now: Instant, from: Peer, req: &Message) -> bool {
        let Some(source) = self.routing.vouched_address(from.addr, req) else {
            return true;
        };
        let ip = source.ip();
        if self.routing.acl.allows(ip).is_some()
            || (0..self.routing.trunks.len()).any(|i| self.trunk_has_ip(i, ip))
        {
            return true;
        }
        match self.flood.admit(now, ip) {
            flood::Verdict::Pass => true,
            flood::Verdict::Recovered { dropped } => {
                tracing::info!(source = %ip, dropped, "requests from this address are within limits again");
                true
            }
            flood::Verdict::Drop { first } => {
                if first {
                    tracing::warn!(
                        source = %ip,
                        per_second = self.settings.limits.requests_per_address,
                        "requests from this address over limits.requests_per_address: dropped until it slows down"
                    );
                }
                false
            }
        }
    }

    /// The caps the switch works under.
    pub fn limits(&self) -> Limits {
        self.settings.limits
    }

    /// Limits hit since the last call, one entry per refusal (`headers`, `transactions`,
    /// `requests_per_address`, `overload`).
    pub fn take_limit_refusals(&mut self) -> Vec<&'static str> {
        std::mem::take(&mut self.limit_refusals)
    }

    pub(super) fn set_store_up(&mut self, up: bool) {
        if self.store_up != up {
            if up {
                tracing::info!("the database answers again: OPTIONS answered 200");
            } else {
                tracing::warn!("the database does not answer: OPTIONS answered 503 until it does");
            }
            self.store_up = up;
        }
    }

    /// An OPTIONS outside any call: a load balancer's probe (Kamailio's dispatcher).
    pub(super) fn answer_probe(&mut self, now: Instant, tx: TxId, req: &Message, local_tag: &str) {
        // A load balancer's probe: 200 while this node takes calls, 503 while it
        // drains or its database does not answer, so calls go elsewhere first.
        let refusing = if self.draining {
            Some("draining: no new calls")
        } else if !self.store_up {
            Some("database unavailable")
        } else {
            None
        };
        let (code, phrase) = match refusing {
            Some(_) => (503, "Service Unavailable"),
            None => (200, "OK"),
        };
        let mut b = Builder::response_to(req, code, phrase, Some(local_tag));
        b.header("Allow", self.allow())
            .header("Accept", "application/sdp")
            .header("Server", &self.settings.user_agent);
        if let Some(why) = refusing {
            b.reason(503, why);
        }
        self.tx.send_response(now, tx, code, b.finish(None, &[]));
    }
}
