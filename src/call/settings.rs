//! What the call layer is given from configuration, and the totals it keeps.

use super::Timers;
use crate::billing::CallBilling;
use std::net::SocketAddr;
use std::time::Duration;

/// Settings the call layer needs from configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Our SIP address as written into Via and Contact.
    pub advertised: SocketAddr,
    pub user_agent: String,
    pub max_calls: usize,
    /// How long a B-leg may ring before the caller gets 480.
    pub ring_timeout: Duration,
    pub timers: Timers,
    /// Seed for tags, branches and Call-IDs (fixed in tests for byte-stable output).
    pub seed: u64,
    /// Classification, blocked destinations and digest authentication; `None` carries
    /// calls from allowed peers unbilled and refuses everyone else (a bare B2BUA).
    pub billing: Option<CallBilling>,
    pub media: CallMedia,
    /// This node's name in call records.
    pub node: String,
    /// Write a record of every call.
    pub records: bool,
    /// Send OPTIONS to every trunk this often; a trunk that does not answer (or answers
    /// 5xx) is skipped by routing until it answers again. `None`: no pings.
    pub trunk_ping: Option<Duration>,
    /// How long each leg of a call the switch places may ring.
    pub placed_ring: Duration,
    /// How long the issuer of a call-back has to press 1 or 2 after the question.
    pub placed_answer: Duration,
    /// The number a call-back's visitor is shown (None: the issuer's number the switch
    /// rang, the number on the card).
    pub visitor_sees: Option<String>,
    /// Caps on what a flood could make grow.
    pub limits: Limits,
}

/// Caps on the signalling state a peer can make the switch hold (`[limits]`). Over one,
/// the request is refused without keeping anything, and the refusal is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Live SIP transactions: a new dialog-creating request beyond it gets 503 with
    /// Retry-After (requests within a call, ACK and CANCEL still go through).
    pub max_transactions: usize,
    /// Header fields in one message: more gets 400.
    pub max_headers: usize,
    /// Bytes of one request (datagram or TCP frame): a larger one is dropped (answers to
    /// the switch's own requests are not).
    pub max_message_bytes: usize,
    /// Open TCP connections in all, and from one address: the next is closed at once.
    pub max_tcp_connections: usize,
    pub max_tcp_per_address: usize,
    /// Seconds a connection opened to the switch has to bring its first whole SIP
    /// message; a silent one is closed (it would hold the connection caps).
    pub tcp_first_message_secs: u64,
    /// Contacts one member may have registered at once: a REGISTER adding one more gets
    /// 503 and changes nothing.
    pub max_bindings_per_user: usize,
    /// New requests (outside a call) one source address may start per second, with a
    /// burst of twice that; past it they are dropped unanswered until it slows down
    /// (0: no limit). Trusted peers and carriers are not limited.
    pub requests_per_address: u32,
    /// Overload: a new request (outside a call; not a CANCEL or BYE) that waited this many
    /// milliseconds in the socket's queue gets 503 with Retry-After at once (0: never).
    pub overload_queue_ms: u64,
    /// Overload: a new INVITE while this many authorizations wait for the database gets
    /// 503 with Retry-After at once.
    pub max_pending_authorizations: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_transactions: 250_000,
            max_headers: 100,
            max_message_bytes: 65_535,
            max_tcp_connections: 4_096,
            max_tcp_per_address: 32,
            tcp_first_message_secs: 30,
            max_bindings_per_user: 10,
            requests_per_address: 30,
            overload_queue_ms: 200,
            max_pending_authorizations: 500,
        }
    }
}

impl Limits {
    pub fn validate(&self, errors: &mut Vec<String>) {
        if self.max_transactions < 100 {
            errors.push("limits.max_transactions: must be at least 100".into());
        }
        if !(20..=1000).contains(&self.max_headers) {
            errors.push("limits.max_headers: must be 20..=1000".into());
        }
        if !(1500..=65_535).contains(&self.max_message_bytes) {
            errors.push("limits.max_message_bytes: must be 1500..=65535".into());
        }
        if !(1..=600).contains(&self.tcp_first_message_secs) {
            errors.push("limits.tcp_first_message_secs: must be 1..=600".into());
        }
        if self.overload_queue_ms > 60_000 {
            errors.push("limits.overload_queue_ms: must be 0..=60000".into());
        }
        if self.max_pending_authorizations == 0 {
            errors.push("limits.max_pending_authorizations: must be at least 1".into());
        }
        if self.requests_per_address > 100_000 {
            errors.push("limits.requests_per_address: must be 0..=100000".into());
        }
        if self.max_bindings_per_user == 0 {
            errors.push("limits.max_bindings_per_user: must be at least 1".into());
        }
        if self.max_tcp_connections == 0 || self.max_tcp_per_address == 0 {
            errors
                .push("limits.max_tcp_connections/max_tcp_per_address: must be at least 1".into());
        }
    }
}

/// What the switch plays and records itself.
#[derive(Clone, Debug, Default)]
pub struct CallMedia {
    /// Play prompts: the refusal reason as early media before a money refusal, "one
    /// minute left" before a paid call's limit.
    pub announce: bool,
    /// Answer a trunk's ringing with "please hold" and the ringback tone as early media.
    pub local_ringback: bool,
    /// How long before a paid call's limit its caller is warned (zero: never).
    pub warning: Duration,
    /// Where recordings of routes with `record = true` are written.
    pub recordings: std::path::PathBuf,
}

/// Counters for the operator (the driver's `telemetry::CallTotals` exports the outcomes
/// as metrics; these are the switch's own totals, returned when it stops).
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub calls_offered: u64,
    pub calls_answered: u64,
    pub calls_refused: u64,
    /// INVITEs answered 407 (a member's phone asked for credentials).
    pub calls_challenged: u64,
    pub calls_failed: u64,
    pub calls_ended: u64,
    pub malformed: u64,
    /// Wrong digest proofs (or unknown users), for calls and registrations.
    pub auth_failures: u64,
    /// Requests answered as a wrong password without a check: their address or user was
    /// blocked for guessing.
    pub auth_blocked: u64,
}
