//! Why a call ended — a call that came in, or one the switch placed — or was refused: one
//! enum, and from it the text a person reads (the Reason header, the record's cause, the
//! requester's page), the stable code (REST `cause` and problem types, the metric label),
//! who ended it and the SIP status. Nothing else matches on cause strings.

use crate::billing::Refusal;

/// The parties of a placed call by role: `issuer`/`visitor` (a card's call-back) or
/// `member`/`dialled` (a member's web dial).
pub type Role = &'static str;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndCause {
    /// Connected (or ringing, for an early BYE), then this party hung up: `caller` /
    /// `callee` on a call that came in, the roles of a placed call.
    HungUp(Role),
    /// The caller cancelled before the answer.
    CallerCancelled,
    /// The trunk's side rang out (`sip.ring_timeout_secs`).
    RangOut,
    /// The trunk (or the called phone) refused or failed with this status and text.
    Trunk(u16, String),
    /// The trunk answered without SDP.
    TrunkAnsweredWithoutSdp,
    /// A reload removed the trunk the call was routed to.
    TrunkGone,
    /// No codec in common with the trunk.
    NoCommonCodec,
    /// The caller never acknowledged the answer.
    NoAck,
    /// A relayed in-dialog request got no answer, or the other leg's dialog is gone.
    InDialogTimeout,
    DialogLost,
    /// The member dialled by name has no registered phone.
    NotRegistered,
    /// The registrations could not be read.
    RegistrarUnavailable,
    /// Refused before it became a call.
    Rejected(Rejection),
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
            EndCause::CallerCancelled => "caller-cancelled",
            EndCause::RangOut => "no-answer",
            EndCause::Trunk(..) => "trunk-failure",
            EndCause::TrunkAnsweredWithoutSdp => "trunk-answered-without-sdp",
            EndCause::TrunkGone => "trunk-gone",
            EndCause::NoCommonCodec => "no-common-codec",
            EndCause::NoAck => "no-ack",
            EndCause::InDialogTimeout => "in-dialog-timeout",
            EndCause::DialogLost => "dialog-lost",
            EndCause::NotRegistered => "not-registered",
            EndCause::RegistrarUnavailable => "registrar-unavailable",
            EndCause::Rejected(r) => r.code(),
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
            EndCause::CallerCancelled => "caller cancelled".into(),
            EndCause::RangOut => "no answer".into(),
            EndCause::Trunk(code, text) => format!("trunk: {code} {text}"),
            EndCause::TrunkAnsweredWithoutSdp => "trunk answered without SDP".into(),
            EndCause::TrunkGone => "trunk no longer configured".into(),
            EndCause::NoCommonCodec => "no codec in common with the trunk".into(),
            EndCause::NoAck => "no ACK from caller".into(),
            EndCause::InDialogTimeout => "in-dialog request timed out".into(),
            EndCause::DialogLost => "dialog lost on the other leg".into(),
            EndCause::NotRegistered => "user not registered".into(),
            EndCause::RegistrarUnavailable => "registrar unavailable".into(),
            EndCause::Rejected(r) => r.text(),
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
            EndCause::HungUp("visitor" | "dialled" | "caller") => crate::cdr::BY_CALLER,
            EndCause::HungUp(_) | EndCause::Declined | EndCause::Trunk(..) => crate::cdr::BY_CALLEE,
            EndCause::Cancelled | EndCause::CallerCancelled => crate::cdr::BY_CALLER,
            _ => crate::cdr::BY_SWITCH,
        }
    }

    /// The SIP status the record keeps for this end (200 for a call that connected and
    /// was hung up or cut).
    pub fn sip_status(&self) -> u16 {
        match self {
            EndCause::HungUp(_) | EndCause::LimitReached(_) | EndCause::MediaTimeout => 200,
            EndCause::NoAck | EndCause::InDialogTimeout | EndCause::DialogLost => 200,
            EndCause::CallerCancelled => 487,
            EndCause::RangOut | EndCause::NotRegistered => 480,
            EndCause::Trunk(code, _) => super::outcome::map_trunk_failure(*code).0,
            EndCause::TrunkAnsweredWithoutSdp => 502,
            EndCause::TrunkGone | EndCause::RegistrarUnavailable => 503,
            EndCause::NoCommonCodec => 488,
            EndCause::Rejected(r) => r.sip_status(),
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

/// Why an INVITE was refused before it became a call (admission).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    ShuttingDown,
    TooManyHops,
    Loop,
    /// A digest proof made for another Request-URI.
    CredentialsForAnotherRequest,
    /// A trusted peer billed by header named no account or card.
    NoChargeHeader,
    SourceNotAllowed,
    NoNumber,
    /// The dialled string is not a number (the reason from `routing::NumberError`).
    BadNumber(String),
    DestinationNotAllowed,
    NoRoute,
    NoOffer,
    NoAudio,
    /// The offer's SDP could not be used (the parser's reason).
    BadSdp(String),
    NoMediaPorts,
    /// The address or user is blocked for guessing passwords: answered as a wrong
    /// password is, without checking.
    GuessingBlocked,
}

impl Rejection {
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::ShuttingDown => "switch-stopping",
            Rejection::TooManyHops => "too-many-hops",
            Rejection::Loop => "loop-detected",
            Rejection::CredentialsForAnotherRequest => "credentials-for-another-request",
            Rejection::NoChargeHeader => "no-charge-header",
            Rejection::SourceNotAllowed => "source-not-allowed",
            Rejection::NoNumber => "no-number",
            Rejection::BadNumber(_) => "bad-number",
            Rejection::DestinationNotAllowed => "destination-not-allowed",
            Rejection::NoRoute => "no-route",
            Rejection::NoOffer | Rejection::NoAudio | Rejection::BadSdp(_) => "bad-offer",
            Rejection::NoMediaPorts => "no-media-ports",
            Rejection::GuessingBlocked => "guessing-blocked",
        }
    }

    pub fn text(&self) -> String {
        match self {
            Rejection::ShuttingDown => "switch is shutting down".into(),
            Rejection::TooManyHops => "too many hops".into(),
            Rejection::Loop => "loop detected".into(),
            Rejection::CredentialsForAnotherRequest => "credentials are for another request".into(),
            Rejection::NoChargeHeader => "no account or card named in the charge header".into(),
            Rejection::SourceNotAllowed => "source address not allowed".into(),
            Rejection::NoNumber => "no number dialled".into(),
            Rejection::BadNumber(why) | Rejection::BadSdp(why) => why.clone(),
            Rejection::DestinationNotAllowed => "destination not allowed".into(),
            Rejection::NoRoute => "no route for this number".into(),
            Rejection::NoOffer => "an SDP offer is required in the INVITE".into(),
            Rejection::NoAudio => "the offer names no audio format".into(),
            Rejection::NoMediaPorts => "no free RTP port in the configured range".into(),
            // The words a wrong password gets: a guesser cannot tell.
            Rejection::GuessingBlocked => crate::billing::Refusal::BadCredentials.to_string(),
        }
    }

    pub fn sip_status(&self) -> u16 {
        match self {
            Rejection::ShuttingDown | Rejection::NoMediaPorts => 503,
            Rejection::TooManyHops => 483,
            Rejection::Loop => 482,
            Rejection::CredentialsForAnotherRequest
            | Rejection::NoChargeHeader
            | Rejection::SourceNotAllowed
            | Rejection::DestinationNotAllowed
            | Rejection::GuessingBlocked => 403,
            Rejection::NoNumber | Rejection::BadNumber(_) => 484,
            Rejection::NoRoute => 404,
            Rejection::NoOffer | Rejection::NoAudio | Rejection::BadSdp(_) => 488,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_has_a_distinct_code_and_text() {
        let all = [
            EndCause::CallerCancelled,
            EndCause::Trunk(503, "Service Unavailable".into()),
            EndCause::TrunkAnsweredWithoutSdp,
            EndCause::TrunkGone,
            EndCause::NoCommonCodec,
            EndCause::NoAck,
            EndCause::InDialogTimeout,
            EndCause::DialogLost,
            EndCause::NotRegistered,
            EndCause::RegistrarUnavailable,
            EndCause::Rejected(Rejection::Loop),
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
        assert_eq!(EndCause::HungUp("caller").text(), "caller hung up");
        assert_eq!(EndCause::HungUp("callee").ended_by(), "callee");
        assert_eq!(EndCause::Rejected(Rejection::NoRoute).sip_status(), 404);
        assert_eq!(EndCause::Declined.sip_status(), 603);
        assert_eq!(EndCause::NoAnswer("issuer").text(), "issuer did not answer");
    }
}
