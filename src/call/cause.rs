//! Why a call the switch placed ended: one enum, and from it the text a person reads, the
//! stable code (REST `cause`, metric label, record), who ended it and the SIP status the
//! record keeps. Nothing else matches on cause strings.

use crate::billing::Refusal;

/// The parties of a placed call by role: `issuer`/`visitor` (a card's call-back) or
/// `member`/`dialled` (a member's web dial).
pub type Role = &'static str;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndCause {
    /// Connected, then this party hung up.
    HungUp(Role),
    /// The issuer pressed 2 (or rejected the call on the phone).
    Declined,
    /// The issuer answered but pressed no key in time.
    NoKeyPressed,
    /// This party's phone rang out (every number of it tried).
    NoAnswer(Role),
    Busy(Role),
    /// The party could not be reached: the trunk or the far end failed with this status.
    Unreachable(Role, u16),
    /// No route (or no trunk left) for the party's number.
    NoRoute(Role),
    /// The requester cancelled before the call connected.
    Cancelled,
    /// The reserved time is used up (`guild exhausted`, `mileage exhausted`, `maximum call
    /// duration reached`).
    LimitReached(&'static str),
    /// No RTP from either side for the configured time.
    MediaTimeout,
    SwitchStopping,
    /// The switch is at its call limit.
    SwitchBusy,
    Refused(Refusal),
}

impl EndCause {
    /// The stable code: `urn:freecall:problem:<code>` in REST, the metric label, and the
    /// call record's cause code.
    pub fn code(&self) -> &'static str {
        match self {
            EndCause::HungUp(_) => "hung-up",
            EndCause::Declined => "declined",
            EndCause::NoKeyPressed => "no-key-pressed",
            EndCause::NoAnswer(_) => "no-answer",
            EndCause::Busy(_) => "busy",
            EndCause::Unreachable(..) => "unreachable",
            EndCause::NoRoute(_) => "no-route",
            EndCause::Cancelled => "cancelled",
            EndCause::LimitReached(_) => "limit-reached",
            EndCause::MediaTimeout => "media-timeout",
            EndCause::SwitchStopping => "switch-stopping",
            EndCause::SwitchBusy => "switch-busy",
            EndCause::Refused(r) => r.code(),
        }
    }

    /// What a person reads: the requester's page, the operator's record.
    pub fn text(&self) -> String {
        match self {
            EndCause::HungUp(r) => format!("{r} hung up"),
            EndCause::Declined => "issuer declined".into(),
            EndCause::NoKeyPressed => "issuer pressed no key".into(),
            EndCause::NoAnswer(r) => format!("{r} did not answer"),
            EndCause::Busy(r) => format!("{r} is busy"),
            EndCause::Unreachable(r, code) => format!("{r} unreachable ({code})"),
            EndCause::NoRoute(r) => format!("no route to the {r}'s number"),
            EndCause::Cancelled => "cancelled by the requester".into(),
            EndCause::LimitReached(why) => (*why).to_string(),
            EndCause::MediaTimeout => "media timeout".into(),
            EndCause::SwitchStopping => "switch is shutting down".into(),
            EndCause::SwitchBusy => "call limit reached".into(),
            EndCause::Refused(r) => r.to_string(),
        }
    }

    /// `caller` (the second party: the visitor, who asked for the call), `callee` (the
    /// first: the issuer) or `switch`, as call records say it.
    pub fn ended_by(&self) -> &'static str {
        match self {
            EndCause::HungUp("visitor" | "dialled") => crate::cdr::BY_CALLER,
            EndCause::HungUp(_) | EndCause::Declined => crate::cdr::BY_CALLEE,
            EndCause::Cancelled => crate::cdr::BY_CALLER,
            _ => crate::cdr::BY_SWITCH,
        }
    }

    /// The SIP status the record keeps for this end (200 for a call that connected and
    /// was hung up or cut).
    pub fn sip_status(&self) -> u16 {
        match self {
            EndCause::HungUp(_) | EndCause::LimitReached(_) | EndCause::MediaTimeout => 200,
            EndCause::Declined => 603,
            EndCause::NoKeyPressed | EndCause::NoAnswer(_) => 480,
            EndCause::Busy(_) => 486,
            EndCause::Unreachable(_, code) => *code,
            EndCause::NoRoute(_) => 404,
            EndCause::Cancelled => 487,
            EndCause::SwitchStopping | EndCause::SwitchBusy => 503,
            EndCause::Refused(r) => r.sip_status(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_has_a_distinct_code_and_text() {
        let all = [
            EndCause::HungUp("issuer"),
            EndCause::Declined,
            EndCause::NoKeyPressed,
            EndCause::NoAnswer("issuer"),
            EndCause::Busy("visitor"),
            EndCause::Unreachable("visitor", 503),
            EndCause::NoRoute("visitor"),
            EndCause::Cancelled,
            EndCause::LimitReached("guild exhausted"),
            EndCause::MediaTimeout,
            EndCause::SwitchStopping,
            EndCause::SwitchBusy,
            EndCause::Refused(Refusal::GuildExhausted),
        ];
        let mut codes: Vec<&str> = all.iter().map(|c| c.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert_eq!(EndCause::HungUp("visitor").ended_by(), "caller");
        assert_eq!(EndCause::Declined.sip_status(), 603);
        assert_eq!(EndCause::NoAnswer("issuer").text(), "issuer did not answer");
    }
}
