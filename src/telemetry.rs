//! Prometheus metrics (`/metrics` on the API listener), through the `metrics` crate and
//! its Prometheus exporter. The daemon installs the recorder once; without it (tests,
//! embedded use) every call here is a no-op.
//!
//! What is counted, and where: calls by outcome and SIP code, refusals by reason, talk time
//! (ACD), RTP packets and loss per finished call (the driver, from each `Outcome`); active
//! calls and ASR/ACD gauges (the driver's loop); trunk state (the call layer's OPTIONS
//! pings, through the driver); reserved balance (the accounting service); database latency
//! (`Store::run`, which records `freecall_db_seconds` itself).

use crate::call::Outcome;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::time::Duration;

/// Install the global recorder (once per process); the handle renders `/metrics`.
pub fn install() -> Option<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&[
            0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
        ])
        .ok()?
        .install_recorder()
        .ok()?;
    describe_counter!(
        "freecall_calls_total",
        "Calls ended, by outcome and final SIP code"
    );
    describe_counter!("freecall_calls_answered_total", "Calls answered");
    describe_counter!(
        "freecall_refusals_total",
        "Calls refused before a trunk was dialled, by reason"
    );
    describe_counter!("freecall_talk_seconds_total", "Talk time of answered calls");
    describe_gauge!("freecall_active_calls", "Calls in progress");
    describe_gauge!(
        "freecall_asr_ratio",
        "Answer-seizure ratio since start: answered / ended"
    );
    describe_gauge!(
        "freecall_acd_seconds",
        "Average call duration of answered calls since start"
    );
    describe_counter!(
        "freecall_rtp_packets_received_total",
        "RTP packets received, by leg"
    );
    describe_counter!(
        "freecall_rtp_packets_lost_total",
        "RTP packets lost on the way to the switch, by leg"
    );
    describe_counter!(
        "freecall_trunk_connect_failures_total",
        "Connections to a trunk on TCP or TLS that could not be opened, by trunk and why (refused, timeout, tls_handshake: mostly a certificate not trusted for the trunk's name)"
    );
    describe_gauge!(
        "freecall_trunk_up",
        "1 when the trunk answers OPTIONS, 0 when it does not"
    );
    describe_gauge!(
        "freecall_reserved_balance",
        "Balance held by calls in progress (all nodes)"
    );
    describe_counter!(
        "freecall_recordings_total",
        "Recordings closed, by result (ready, or failed: a full disk or an I/O error; the call went on)"
    );
    describe_counter!(
        "freecall_recording_frames_dropped_total",
        "20 ms frames left out of recordings because the disk was too slow"
    );
    describe_counter!(
        "freecall_recordings_deleted_total",
        "Recordings deleted, by why (retention, owner)"
    );
    describe_counter!(
        "freecall_auth_guard_total",
        "Password guessing: blocks begun (blocked_address, blocked_user) and requests refused while one lasts (refused_while_blocked)"
    );
    describe_counter!(
        "freecall_nodes_taken_over_total",
        "Other nodes whose lease ran out and whose calls this node settled"
    );
    describe_counter!(
        "freecall_calls_taken_over_total",
        "Calls of dead nodes this node settled, billed up to their node's last heartbeat"
    );
    describe_gauge!(
        "freecall_node_fenced",
        "1 when another node took this node's calls over: it takes no calls and stops"
    );
    describe_histogram!(
        "freecall_db_seconds",
        "Time of each database operation, queue included"
    );
    Some(handle)
}

/// Running totals behind the ASR and ACD gauges.
#[derive(Default)]
pub struct CallTotals {
    ended: u64,
    answered: u64,
    talk: Duration,
}

impl CallTotals {
    /// Count a finished call.
    pub fn record(&mut self, o: &Outcome) {
        let outcome = match (o.code, o.talk.is_some()) {
            (_, true) => "answered",
            (487, _) => "cancelled",
            (402 | 403 | 404 | 484 | 488 | 420 | 482 | 483, _) => "refused",
            (503, _) if o.setup.is_none() => "refused",
            _ => "failed",
        };
        counter!("freecall_calls_total", "outcome" => outcome, "code" => o.code.to_string())
            .increment(1);
        self.ended += 1;
        if let Some(t) = o.talk {
            self.answered += 1;
            self.talk += t;
            counter!("freecall_calls_answered_total").increment(1);
            counter!("freecall_talk_seconds_total").increment(t.as_secs());
        }
        if outcome == "refused" {
            // The cause's stable code: a fixed set of labels (`call::EndCause::code`).
            counter!("freecall_refusals_total", "reason" => o.cause_code).increment(1);
        }
        if let Some(m) = &o.media {
            for (leg, stats) in ["caller", "callee"].iter().zip(&m.legs) {
                counter!("freecall_rtp_packets_received_total", "leg" => *leg)
                    .increment(stats.received);
                counter!("freecall_rtp_packets_lost_total", "leg" => *leg).increment(stats.lost);
            }
        }
        gauge!("freecall_asr_ratio").set(self.answered as f64 / self.ended.max(1) as f64);
        if self.answered > 0 {
            gauge!("freecall_acd_seconds").set(self.talk.as_secs_f64() / self.answered as f64);
        }
    }
}

pub fn active_calls(n: usize) {
    gauge!("freecall_active_calls").set(n as f64);
}

pub fn trunk_up(trunk: &str, up: bool) {
    gauge!("freecall_trunk_up", "trunk" => trunk.to_string()).set(if up { 1.0 } else { 0.0 });
}

/// Whether the switch is registered with a trunk that wants it.
pub fn trunk_registered(trunk: &str, registered: bool) {
    gauge!("freecall_trunk_registered", "trunk" => trunk.to_string()).set(if registered {
        1.0
    } else {
        0.0
    });
}

pub fn reserved_balance(total: i64) {
    gauge!("freecall_reserved_balance").set(total as f64);
}

/// A recording's file closed: whole or failed, and the frames a slow disk dropped.
pub fn recording_closed(failed: bool, dropped_frames: u64) {
    let result = if failed { "failed" } else { "ready" };
    counter!("freecall_recordings_total", "result" => result).increment(1);
    if dropped_frames > 0 {
        counter!("freecall_recording_frames_dropped_total").increment(dropped_frames);
    }
}

/// A request, message or connection refused by `[limits]`, by which limit
/// (`transactions`, `headers`, `message_bytes`, `tcp_connections`, `tcp_per_address`,
/// `requests_per_address`).
pub fn limit_refused(limit: &'static str) {
    counter!("freecall_limit_refusals_total", "limit" => limit).increment(1);
}

/// A connection to trunk `trunk` could not be opened (`why`: `refused`, `timeout`,
/// `tls_handshake`: mostly its certificate was not trusted for its name).
pub fn trunk_connect_failed(trunk: &str, why: &'static str) {
    counter!("freecall_trunk_connect_failures_total", "trunk" => trunk.to_string(), "why" => why)
        .increment(1);
}

/// The password-guessing fence began a block (`blocked_address`, `blocked_user`) or
/// refused a request while one lasts (`refused_while_blocked`).
pub fn guard_event(event: &'static str) {
    counter!("freecall_auth_guard_total", "event" => event).increment(1);
}

/// This node settled a dead node's `calls`.
pub fn took_over(calls: usize) {
    counter!("freecall_nodes_taken_over_total").increment(1);
    counter!("freecall_calls_taken_over_total").increment(calls as u64);
}

/// Another node fenced this one.
pub fn fenced() {
    gauge!("freecall_node_fenced").set(1.0);
}

/// Recordings deleted, by why (`retention`, `owner`).
pub fn recordings_deleted(why: &'static str, n: u64) {
    counter!("freecall_recordings_deleted_total", "why" => why).increment(n);
}
