//! The sections for what faces the public: calls the switch places (`[callbacks]`),
//! calls booked for later (`[bookings]`) and the web pages (`[web]`). `Config` composes
//! them and validates them with the rest.

use serde::Deserialize;
use std::net::SocketAddr;

/// Calls booked for a set time (C11): a call-back or a member's dial that waits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BookingsConfig {
    /// How far ahead a call may be booked.
    pub max_days_ahead: u64,
    /// A booking missed while every node was down still fires this late; later it ends
    /// as "missed".
    pub late_window_secs: u64,
    /// How long a node's claim on a due booking holds before another node may take it
    /// (only while nothing was dialled).
    pub lease_secs: u64,
    /// Attempts when the line is busy or nobody answers, and the wait between them.
    pub attempts: u64,
    pub retry_secs: u64,
    /// Bookings not yet done at once, per card (or member) and per number.
    pub per_owner_open: u64,
    pub per_number_open: u64,
}

impl Default for BookingsConfig {
    fn default() -> Self {
        BookingsConfig {
            max_days_ahead: 30,
            late_window_secs: 600,
            lease_secs: 60,
            attempts: 3,
            retry_secs: 300,
            per_owner_open: 20,
            per_number_open: 3,
        }
    }
}

/// Where the web pages are served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum WebListen {
    /// On the REST API's listener.
    #[default]
    Api,
    /// No pages.
    Off,
    /// On a listener of their own.
    At(SocketAddr),
}

impl TryFrom<String> for WebListen {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        match text.as_str() {
            "api" => Ok(WebListen::Api),
            "off" => Ok(WebListen::Off),
            _ => text
                .parse()
                .map(WebListen::At)
                .map_err(|_| format!("'{text}' is not \"api\", \"off\" or an address:port")),
        }
    }
}

/// The web pages: public card pages, issuers' and members' self-service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// "api": on the REST API's listener (the default); "off": no pages; or an
    /// address:port of their own.
    pub listen: WebListen,
    /// The address visitors reach the pages at (links, QR codes, vCards, Open Graph), e.g.
    /// "https://call.example.com". Empty: taken from each request's Host.
    pub public_url: String,
    /// Photos issuers upload, and the session key file (when `session_secret` is unset).
    pub data_dir: String,
    /// Signs and encrypts the session cookie (64 characters or more); nodes behind one
    /// address share it. Unset: a key kept in `data_dir/session.key`, made at first start.
    pub session_secret: Option<String>,
    /// Mark the session cookie `Secure` (set this when the pages are served over TLS,
    /// e.g. behind a TLS-terminating proxy).
    pub secure_cookies: bool,
    /// Hours a login lasts without being used.
    pub session_hours: u64,
    /// Largest photo an issuer may upload.
    pub max_photo_bytes: usize,
    /// Let people sign up as members of the shop on the page (else the shop creates
    /// members over REST).
    pub member_signup: bool,
    /// Failed logins per account, and per address, within 15 minutes before further
    /// attempts are refused until the window passes.
    pub login_failures_per_account: usize,
    pub login_failures_per_address: usize,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: WebListen::Api,
            public_url: String::new(),
            data_dir: "data/web".into(),
            session_secret: None,
            secure_cookies: false,
            session_hours: 12,
            max_photo_bytes: 2 * 1024 * 1024,
            member_signup: false,
            login_failures_per_account: 5,
            login_failures_per_address: 20,
        }
    }
}

/// Calls the switch places: a card's free call-back (the issuer is asked first, then the
/// visitor is dialled) and a member's web dial. The public call button makes the switch
/// dial out, so every ceiling here is a fence against toll fraud; 0 turns one off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbacksConfig {
    /// Seconds each leg may ring before the next number is tried (or the call ends).
    pub ring_secs: u64,
    /// Seconds the issuer has to press 1 or 2 after the announcement.
    pub answer_secs: u64,
    /// Kinds of visitor numbers a card may call back (international only on the countries
    /// a card names, premium rate and other special numbers never). Parsed once, here.
    pub allowed_destinations: Vec<crate::numbers::DestinationKind>,
    /// Call-backs in progress at once per card.
    pub per_card_concurrent: u32,
    /// Call-back requests per card in 24 hours.
    pub per_card_daily: i64,
    /// Call-backs to one visitor number in 24 hours, across every card.
    pub per_number_daily: i64,
    /// Call-backs per issuer (all their cards) in 24 hours.
    pub per_issuer_daily: i64,
    /// What one issuer's call-backs may spend in 24 hours (guild minor units).
    pub per_issuer_daily_spend: i64,
    /// Requests per client address per minute (the public endpoint).
    pub per_address_per_minute: u32,
    /// The number a visitor's phone shows for a call-back: empty (the default) shows the
    /// issuer's number the switch rang, the number on the card; a number shows that one
    /// for every call-back (the service's own line). Each trunk writes it in its format.
    pub visitor_sees: String,
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        CallbacksConfig {
            ring_secs: 30,
            answer_secs: 15,
            allowed_destinations: vec![
                crate::numbers::DestinationKind::Landline,
                crate::numbers::DestinationKind::Mobile,
                crate::numbers::DestinationKind::Internet,
            ],
            per_card_concurrent: 2,
            per_card_daily: 50,
            per_number_daily: 5,
            per_issuer_daily: 200,
            per_issuer_daily_spend: 0,
            per_address_per_minute: 5,
            visitor_sees: String::new(),
        }
    }
}

impl WebConfig {
    /// Every fault of `[web]`, each naming its key.
    pub(super) fn validate(&self, errors: &mut Vec<String>) {
        let url = &self.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            errors.push(format!(
                "web.public_url: '{}' must start with http:// or https://",
                self.public_url
            ));
        }
        if self.session_secret.as_ref().is_some_and(|s| s.len() < 64) {
            errors.push("web.session_secret: must be at least 64 characters".into());
        }
        if self.session_hours == 0 || self.session_hours > 24 * 90 {
            errors.push("web.session_hours: must be 1..=2160".into());
        }
        if self.max_photo_bytes < 1024 || self.max_photo_bytes > 20 * 1024 * 1024 {
            errors.push("web.max_photo_bytes: must be 1 KiB..=20 MiB".into());
        }
        if self.login_failures_per_account == 0 || self.login_failures_per_address == 0 {
            errors.push("web.login_failures_per_account/_per_address: must be at least 1".into());
        }
    }
}

impl BookingsConfig {
    /// Every fault of `[bookings]`, each naming its key.
    pub(super) fn validate(&self, errors: &mut Vec<String>) {
        let b = self;
        if b.max_days_ahead == 0 || b.max_days_ahead > 366 {
            errors.push("bookings.max_days_ahead: must be 1..=366".into());
        }
        if b.lease_secs == 0 || b.lease_secs > 3600 {
            errors.push("bookings.lease_secs: must be 1..=3600".into());
        }
        if b.attempts == 0 || b.attempts > 10 {
            errors.push("bookings.attempts: must be 1..=10".into());
        }
        if b.retry_secs == 0 || b.retry_secs > 86_400 {
            errors.push("bookings.retry_secs: must be 1..=86400".into());
        }
    }
}
