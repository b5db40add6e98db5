//! How a call ended, how a failure is told to the caller, and the call's record.

use super::{Call, EndCause, Manager};
use std::time::{Duration, Instant};

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

impl Manager {
    /// The call's record as the call layer knows it (the store adds who paid, the billed
    /// time and the cost).
    pub(super) fn record_of(
        &self,
        call: &Call,
        now: Instant,
        code: u16,
        cause: &EndCause,
        media: &Option<crate::media::MediaStats>,
    ) -> crate::cdr::CallRecord {
        let trunks = call.b.dialled.clone();
        // The caller as established (a trusted peer's asserted identity), else From's user.
        let caller = call
            .caller
            .number
            .clone()
            .unwrap_or_else(|| call.a_invite.from_user.clone().unwrap_or_default());
        let (sent_callee, sent_caller) = call.b.presented.clone().unwrap_or_default();
        crate::cdr::CallRecord {
            id: 0,
            call_id: call.id.clone(),
            node: self.settings.node.clone(),
            caller,
            callee: call.number.clone(),
            sent_callee,
            sent_caller,
            account_id: call.paid.as_ref().map(|p| p.account),
            card_id: None,
            destination: call.destination.clone(),
            trunk: call.answered.and(trunks.last().cloned()),
            trunks,
            setup_ms: self.unix_ms(call.started),
            answered_ms: call.answered.map(|a| self.unix_ms(a)),
            ended_ms: self.unix_ms(now),
            billed_secs: 0,
            cost: 0,
            code,
            cause: cause.text(),
            ended_by: cause.ended_by().into(),
            codec_caller: call.a_format.as_ref().map(|f| f.name()).unwrap_or_default(),
            codec_callee: call.b.format.as_ref().map(|f| f.name()).unwrap_or_default(),
            media: media.as_ref().and_then(|m| serde_json::to_value(m).ok()),
            legs: Vec::new(),
        }
    }
}
