//! Money in the call path, as the call layer sees it: who pays (`Payer`), what a call may
//! cost (`Tariffs`), and the answer to "may this call go ahead, and for how long"
//! (`Authorization` or `Refusal`).
//!
//! Pure: no SIP, no database. The accounting service (`crate::accounting`) carries these
//! requests to the store; the call layer turns a `Refusal` into a SIP status.

mod config;
pub mod deck;
pub mod tariff;

use crate::auth::DigestProof;
use crate::numbers::{Classifier, DestinationKind};
pub use config::{Increment, TariffConfig};
pub use deck::{DeckRate, RateDeck};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
pub use tariff::{Held, Posting, Tariff};

/// What an account holds.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// A web shop member's mileage points.
    Mileage,
    /// A card issuer's prepaid balance, in the guild currency's minor units.
    Guild,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Mileage => "mileage",
            AccountKind::Guild => "guild",
        }
    }

    pub fn parse(s: &str) -> Option<AccountKind> {
        match s {
            "mileage" => Some(AccountKind::Mileage),
            "guild" => Some(AccountKind::Guild),
            _ => None,
        }
    }

    /// What the caller is told when this account cannot pay.
    pub fn exhausted(self) -> Refusal {
        match self {
            AccountKind::Mileage => Refusal::MileageExhausted,
            AccountKind::Guild => Refusal::GuildExhausted,
        }
    }
}

/// The tariff table: one tariff per account kind and destination kind, and the operator's
/// rate deck above it (prices per number prefix). A number the deck does not cover is priced
/// by its kind; a kind without a tariff cannot be called on that kind of account, unless the
/// deck prices the number.
#[derive(Clone, Debug, Default)]
pub struct Tariffs {
    table: BTreeMap<(AccountKind, DestinationKind), Tariff>,
    /// No reservation covers more than this many seconds, however rich the account.
    pub max_call_secs: i64,
    deck: Arc<RateDeck>,
    /// Writes a dialled number in E.164 for the deck (the home country's numbers are
    /// dialled nationally).
    numbers: Option<Classifier>,
}

impl Tariffs {
    pub fn new(max_call_secs: i64) -> Tariffs {
        Tariffs {
            table: BTreeMap::new(),
            max_call_secs,
            deck: Arc::default(),
            numbers: None,
        }
    }

    pub fn insert(&mut self, kind: AccountKind, tariff: Tariff) {
        self.table.insert((kind, tariff.destination), tariff);
    }

    /// The same table reading dialled numbers with `numbers` (for the deck).
    pub fn with_numbers(mut self, numbers: Classifier) -> Tariffs {
        self.numbers = Some(numbers);
        self
    }

    /// The same table with `deck` above it.
    pub fn with_deck(&self, deck: Arc<RateDeck>) -> Tariffs {
        Tariffs {
            deck,
            ..self.clone()
        }
    }

    pub fn deck(&self) -> &Arc<RateDeck> {
        &self.deck
    }

    pub fn get(&self, kind: AccountKind, dest: DestinationKind) -> Option<&Tariff> {
        self.table.get(&(kind, dest))
    }

    pub fn iter(&self) -> impl Iterator<Item = (AccountKind, &Tariff)> {
        self.table.iter().map(|((k, _), t)| (*k, t))
    }

    /// The deck's rate for `number` on an account of `kind`, if the deck covers it.
    pub fn deck_rate(&self, kind: AccountKind, number: &str) -> Option<&DeckRate> {
        if self.deck.is_empty() {
            return None;
        }
        let e164 = match number.strip_prefix('+') {
            Some(_) => number.to_string(),
            None => self.numbers.as_ref()?.e164(number)?,
        };
        self.deck.lookup(kind, &e164)
    }

    /// The tariff a call to `number` (a number of `destination` kind) is priced at on an
    /// account of `kind`: the deck's longest prefix, else the tariff of its kind.
    pub fn tariff_for(
        &self,
        kind: AccountKind,
        destination: DestinationKind,
        number: &str,
    ) -> Option<Tariff> {
        let own = self.get(kind, destination).copied();
        match self.deck_rate(kind, number) {
            // The deck prices calls abroad, and re-prices a home kind the operator sells;
            // it never opens a home kind without a tariff (a row for "82" must not make
            // premium-rate numbers callable).
            Some(rate) if destination == DestinationKind::International || own.is_some() => {
                Some(rate.tariff(destination))
            }
            Some(_) => None,
            None => own,
        }
    }

    /// The price of a call to `number` (of `destination` kind) from an account of `kind`
    /// with `available` to spend: its tariff, the longest call it pays for (at most
    /// `max_call_secs`), what to hold for that, and what the caller is told at the limit.
    /// Refused when there is no tariff for that number or not even the first period is
    /// affordable.
    pub fn price(
        &self,
        kind: AccountKind,
        destination: DestinationKind,
        number: &str,
        available: i64,
    ) -> Result<Price, Refusal> {
        let tariff = self
            .tariff_for(kind, destination, number)
            .ok_or(Refusal::DestinationNotAllowed)?;
        let cap = self.max_call_secs;
        let max_secs = tariff.max_secs(available, cap).ok_or(kind.exhausted())?;
        Ok(Price {
            tariff,
            max_secs,
            amount: tariff.cost(max_secs),
            limit_reason: if max_secs >= cap {
                "maximum call duration reached"
            } else {
                match kind {
                    AccountKind::Mileage => "mileage exhausted",
                    AccountKind::Guild => "guild exhausted",
                }
            },
        })
    }
}

/// The tariffs every part of the switch prices with (calls, call-backs, balances), replaced
/// whole when the configuration is reloaded or a rate deck is loaded.
pub type SharedTariffs = std::sync::RwLock<Arc<Tariffs>>;

/// Put `deck` above the shared tariffs; calls already reserved keep their price.
pub fn put_deck(shared: &SharedTariffs, deck: RateDeck) {
    let mut t = shared.write().unwrap_or_else(|p| p.into_inner());
    // Two readers may race (the API after a load, the heartbeat's refresh): an older
    // version never replaces a newer one.
    if deck.version < t.deck().version {
        return;
    }
    *t = Arc::new(t.with_deck(Arc::new(deck)));
}

/// What a call is priced at when it is reserved (`Tariffs::price`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Price {
    pub tariff: Tariff,
    pub max_secs: i64,
    /// What is held: the cost of `max_secs`.
    pub amount: i64,
    /// Why the call is cut at `max_secs` (the Reason the caller hears).
    pub limit_reason: &'static str,
}

/// Who pays for a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payer {
    /// A member's softphone, authenticated with SIP digest (the proof is checked against
    /// the stored credentials before anything is reserved).
    Member {
        username: String,
        proof: Box<DigestProof>,
    },
    /// A trusted peer named the account in a header.
    Account(i64),
    /// A trusted peer named a card: its issuer's guild pays, its call quota counts.
    Card(i64),
}

/// A request to let one call go ahead.
#[derive(Clone, Debug)]
pub struct AuthorizeRequest {
    /// Our call id; the reservation is keyed by it, so it is settled at most once.
    pub call_id: String,
    pub payer: Payer,
    pub number: String,
    pub destination: DestinationKind,
}

/// The call may go ahead for at most `max_secs` after answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub reservation: i64,
    /// The call id the reservation is keyed by (the ledger's reference for the call).
    pub call_id: String,
    pub account: i64,
    pub max_secs: i64,
    /// Said in the BYE when the limit is reached.
    pub limit_reason: &'static str,
}

/// Why a call may not go ahead. The text is what the caller's phone shows (in `Reason`),
/// what a call-back's requester reads, and the record's cause; `sip_status`,
/// `problem_type` and `retry_after_secs` are the one table of what each refusal means.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("mileage exhausted")]
    MileageExhausted,
    #[error("guild exhausted")]
    GuildExhausted,
    #[error("call quota used up")]
    QuotaUsedUp,
    #[error("destination not allowed")]
    DestinationNotAllowed,
    #[error("unknown account")]
    UnknownAccount,
    #[error("authentication failed")]
    BadCredentials,
    /// The store could not be reached; nothing was reserved.
    #[error("billing unavailable")]
    Unavailable,
    /// A call-back to a kind of number the card does not allow (premium, special,
    /// international unless enabled).
    #[error("number not allowed")]
    NumberNotAllowed,
    /// The card took as many call-back requests today as it may.
    #[error("card's daily call limit reached")]
    CardDailyLimit,
    /// The card has as many call-backs in progress as it may.
    #[error("card is busy with other calls")]
    CardBusy,
    /// This visitor number was called back as often today as it may be (across cards).
    #[error("this number was called back too often today")]
    NumberDailyLimit,
    /// The issuer's calls or spend today reached the configured ceiling.
    #[error("issuer's daily limit reached")]
    IssuerDailyLimit,
    /// Too many requests from one client address in a short time.
    #[error("too many requests")]
    TooManyRequests,
}

impl Refusal {
    /// The SIP status for this refusal.
    pub fn sip_status(&self) -> u16 {
        match self {
            Refusal::MileageExhausted | Refusal::GuildExhausted | Refusal::QuotaUsedUp => 402,
            Refusal::DestinationNotAllowed | Refusal::UnknownAccount | Refusal::BadCredentials => {
                403
            }
            Refusal::Unavailable => 503,
            Refusal::NumberNotAllowed => 403,
            Refusal::CardDailyLimit
            | Refusal::CardBusy
            | Refusal::NumberDailyLimit
            | Refusal::IssuerDailyLimit
            | Refusal::TooManyRequests => 486,
        }
    }

    /// The stable name of this refusal: the REST problem type
    /// (`urn:freecall:problem:<code>`), the metric label and the record's cause code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::MileageExhausted => "mileage-exhausted",
            Refusal::GuildExhausted => "guild-exhausted",
            Refusal::QuotaUsedUp => "quota-used-up",
            Refusal::DestinationNotAllowed => "destination-not-allowed",
            Refusal::UnknownAccount => "unknown-account",
            Refusal::BadCredentials => "bad-credentials",
            Refusal::Unavailable => "billing-unavailable",
            Refusal::NumberNotAllowed => "number-not-allowed",
            Refusal::CardDailyLimit => "card-daily-limit",
            Refusal::CardBusy => "card-busy",
            Refusal::NumberDailyLimit => "number-daily-limit",
            Refusal::IssuerDailyLimit => "issuer-daily-limit",
            Refusal::TooManyRequests => "too-many-requests",
        }
    }

    /// The HTTP status a REST requester gets for this refusal.
    pub fn http_status(&self) -> u16 {
        match self {
            Refusal::MileageExhausted | Refusal::GuildExhausted | Refusal::QuotaUsedUp => 402,
            Refusal::DestinationNotAllowed | Refusal::NumberNotAllowed => 403,
            Refusal::UnknownAccount => 404,
            Refusal::BadCredentials => 401,
            Refusal::Unavailable => 503,
            Refusal::CardDailyLimit
            | Refusal::CardBusy
            | Refusal::NumberDailyLimit
            | Refusal::IssuerDailyLimit
            | Refusal::TooManyRequests => 429,
        }
    }

    /// Seconds after which trying again can help (`Retry-After`), where waiting helps.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Refusal::Unavailable => Some(30),
            Refusal::CardBusy => Some(60),
            Refusal::TooManyRequests => Some(60),
            Refusal::CardDailyLimit | Refusal::NumberDailyLimit | Refusal::IssuerDailyLimit => {
                Some(3600)
            }
            _ => None,
        }
    }
}

/// How a call ended, for settlement: times are wall-clock milliseconds since the epoch
/// (persisted, so they survive a restart of the switch).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settlement {
    pub reservation: i64,
    pub call_id: String,
    pub answered_ms: Option<i64>,
    pub ended_ms: i64,
    pub cause: String,
    /// The call's record, stored with the settlement (its account, card, billed time and
    /// cost are filled in from the reservation).
    pub record: Option<Box<crate::cdr::CallRecord>>,
    /// The other legs of the same call (a call-back's first leg), each with its own
    /// reservation and answer time, settled in the same transaction; the record's cost is
    /// the sum of all legs'.
    pub legs: Vec<LegSettlement>,
}

/// Another leg of a settlement: its reservation (keyed by its own call id, the ledger's
/// reference) and when it was answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegSettlement {
    pub reservation: i64,
    pub call_id: String,
    pub answered_ms: Option<i64>,
    /// When this leg was hung up, if before the call ended (a call-back's issuer leg while
    /// the visitor hears the card's greeting); `None`: at the call's end.
    pub ended_ms: Option<i64>,
}

impl Settlement {
    /// Talk time in whole seconds, rounded up (a started second is a billed second).
    pub fn talk_secs(&self) -> i64 {
        match self.answered_ms {
            Some(a) if self.ended_ms > a => (self.ended_ms - a + 999) / 1000,
            _ => 0,
        }
    }

    /// One settlement per reservation, this one's first, without the record: what the
    /// store settles row by row before it sums the legs into the record.
    pub fn per_reservation(&self) -> Vec<Settlement> {
        let mut out = vec![Settlement {
            record: None,
            legs: Vec::new(),
            ..self.clone()
        }];
        for leg in &self.legs {
            out.push(Settlement {
                reservation: leg.reservation,
                call_id: leg.call_id.clone(),
                answered_ms: leg.answered_ms,
                ended_ms: leg.ended_ms.unwrap_or(self.ended_ms).min(self.ended_ms),
                cause: self.cause.clone(),
                record: None,
                legs: Vec::new(),
            });
        }
        out
    }
}

/// What the call layer asks of the accounting service (the driver carries it): money,
/// and — because they need the same stored credentials — registrations.
#[derive(Clone, Debug)]
pub enum BillingRequest {
    /// May call `key` go ahead? Answered with a `BillingReply`.
    Authorize { key: u64, request: AuthorizeRequest },
    /// The call was answered at this wall-clock time.
    Answered { reservation: i64, answered_ms: i64 },
    /// The call ended: debit and release, once.
    Settle(Settlement),
    /// A call nobody pays for ended: store its record.
    Record(Box<crate::cdr::CallRecord>),
    /// A member's softphone registers: check its digest, write the bindings. Answered
    /// with `BillingReply::Registered`.
    Register {
        key: u64,
        request: Box<crate::registrar::RegisterRequest>,
    },
    /// Where is this member's softphone? Answered with `BillingReply::Located`.
    Locate { key: u64, user: String },
    /// A call is being recorded: its owner's row for the recording (the file's length
    /// and size follow from the media side when it is closed).
    Recording(Box<RecordingStarted>),
}

/// A recording begun on a call: whose it is and where its file is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingStarted {
    pub call_id: String,
    pub path: String,
    /// The card whose issuer owns it (a call-back), or the account (a member's call).
    pub card: Option<i64>,
    pub account: Option<i64>,
    pub started_ms: i64,
}

/// The accounting service's answer to `Authorize`.
#[derive(Clone, Debug)]
pub enum BillingReply {
    Authorized {
        key: u64,
        auth: Authorization,
    },
    Refused {
        key: u64,
        refusal: Refusal,
    },
    /// The bindings after a REGISTER, or why it was refused.
    Registered {
        key: u64,
        result: Result<Vec<crate::registrar::Binding>, crate::registrar::RegisterRefusal>,
    },
    /// A member's live bindings (empty: not registered; `None`: the store is away).
    Located {
        key: u64,
        bindings: Option<Vec<crate::registrar::Binding>>,
    },
    /// Whether the database answered the last heartbeat (a load balancer's OPTIONS are
    /// answered 503 while it does not).
    Store {
        up: bool,
    },
}

/// The call layer's billing settings.
#[derive(Clone, Debug)]
pub struct CallBilling {
    pub classifier: crate::numbers::Classifier,
    /// Destination kinds refused whoever pays.
    pub blocked: Vec<DestinationKind>,
    /// Digest realm and nonce key for members' phones.
    pub realm: String,
    pub nonces: crate::auth::NonceKey,
    /// Password guessing: failed digest proofs per address and per user within a minute
    /// before it is blocked (0: no limit), and the first block (doubling after).
    pub auth_failures_per_address: usize,
    pub auth_failures_per_user: usize,
    pub auth_block: std::time::Duration,
}
