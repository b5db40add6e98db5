//! How a call ended, and how a failure is told to the caller.

use std::time::Duration;

/// One finished call, as the call-record layer will store it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub call: String,
    pub number: String,
    /// The final SIP status the caller saw (200 for an answered call).
    pub code: u16,
    /// Why it ended, in words an operator reads: "caller hung up", "no route", …
    pub cause: String,
    /// The same as a stable code (`EndCause::code`): the metric label.
    pub cause_code: &'static str,
    /// INVITE received → answer, for answered calls.
    pub setup: Option<Duration>,
    pub talk: Option<Duration>,
    /// Codecs, packets, loss and jitter per leg (none for a call refused before media).
    pub media: Option<crate::media::MediaStats>,
}

/// The prompt that tells a caller why billing refused the call. Refusals that would help
/// an attacker (unknown account, bad credentials) get no voice.
pub fn refusal_prompt(refusal: &crate::billing::Refusal) -> Option<&'static str> {
    use crate::billing::Refusal::*;
    match refusal {
        MileageExhausted => Some("mileage-exhausted"),
        GuildExhausted => Some("guild-exhausted"),
        QuotaUsedUp => Some("quota-used-up"),
        DestinationNotAllowed => Some("destination-not-allowed"),
        Unavailable => Some("billing-unavailable"),
        NumberNotAllowed => Some("destination-not-allowed"),
        UnknownAccount | BadCredentials | CardDailyLimit | CardBusy | NumberDailyLimit
        | IssuerDailyLimit | TooManyRequests => None,
    }
}

/// What the caller is told when the trunk side fails with `code`: the status to send and
/// whether the next trunk should be tried instead.
pub fn map_trunk_failure(code: u16) -> (u16, &'static str, bool) {
    match code {
        // Trunk down, overloaded or silent: another trunk may do better.
        408 => (408, "Request Timeout", true),
        500..=599 => (code, phrase(code), true),
        // A trunk that challenges us and has no credentials of ours, or refused them (a
        // challenge answered once is not answered again): that trunk is unusable, the
        // next may take the call.
        401 | 407 => (502, "Bad Gateway", true),
        // Following a redirect would let a trunk send our calls anywhere.
        300..=399 => (502, "Bad Gateway", false),
        _ => (code, phrase(code), false),
    }
}

pub fn phrase(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => "Failed",
    }
}
