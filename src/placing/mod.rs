//! The service behind every button that makes the switch dial out: a card visitor's free
//! call-back and a member's web dial. The REST API (and the web pages after it) only
//! parse and answer; every rule lives here and below.
//!
//! A request goes: the client address's rate → the number (national or international
//! format, `;235` post-dial digits) → the kinds the card allows (premium and special
//! numbers never, international only in the card's countries) → calls in progress on the
//! card → the store reserves both legs in one transaction, with the daily limits per
//! card, visitor number and issuer (they hold across nodes) → the switch gets an
//! `Originate`. The visitor's number is dialled only after the issuer has pressed 1: that
//! is the call layer's flow, not a rule here.

pub mod bookings;
pub mod progress;

use crate::billing::{AccountKind, Refusal, Settlement, Tariffs};
use crate::call::{Command, Extras, Flow, Greetings, Originate, Target, Voice};
use crate::clip::Clip;
use crate::config::CallbacksConfig;
use crate::numbers::{Classifier, DestinationKind};
use crate::store::calls::Charge;
use crate::store::placed::{DailyLimits, PlacedLeg};
use crate::store::{Store, StoreError};
pub use progress::{ProgressHub, Request};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc;
use tracing::info;

/// The call-back rules, parsed once from `[callbacks]`.
#[derive(Clone, Debug)]
pub struct Rules {
    pub allowed: Vec<DestinationKind>,
    pub per_card_concurrent: usize,
    pub per_address_per_minute: usize,
    pub daily: DailyLimits,
    /// Kinds nobody may call, whoever pays (`billing.blocked_destinations`).
    pub blocked: Vec<DestinationKind>,
}

impl Rules {
    /// From validated configuration (unknown kinds were reported by `Config::validate`).
    pub fn from_config(c: &CallbacksConfig, blocked: &[DestinationKind]) -> Rules {
        Rules {
            allowed: c
                .allowed_destinations
                .iter()
                .copied()
                .filter(|k| *k != DestinationKind::PremiumRate)
                .collect(),
            per_card_concurrent: c.per_card_concurrent as usize,
            per_address_per_minute: c.per_address_per_minute as usize,
            daily: DailyLimits {
                per_card: c.per_card_daily,
                per_number: c.per_number_daily,
                issuer_calls: c.per_issuer_daily,
                issuer_spend: c.per_issuer_daily_spend,
            },
            blocked: blocked.to_vec(),
        }
    }
}

/// The switch as this service reaches it: commands in, progress out.
#[derive(Clone)]
pub struct SwitchLink {
    pub commands: mpsc::UnboundedSender<Command>,
    pub hub: Arc<ProgressHub>,
}

/// Why a request was not placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    #[error("{0}")]
    Refused(Refusal),
    #[error("{0}")]
    BadNumber(String),
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The card (or member) has no number the switch could ring first.
    #[error("{0}")]
    NothingToRing(&'static str),
    #[error("the switch is not taking calls")]
    Stopped,
}

#[derive(Clone)]
pub struct Placing {
    store: Store,
    tariffs: Arc<RwLock<Arc<Tariffs>>>,
    node: String,
    classifier: Classifier,
    rules: Rules,
    link: SwitchLink,
    /// Request times (wall ms) per client address in the last minute.
    recent: Arc<Mutex<HashMap<IpAddr, VecDeque<i64>>>>,
}

impl Placing {
    pub fn new(
        store: Store,
        tariffs: Arc<RwLock<Arc<Tariffs>>>,
        node: String,
        classifier: Classifier,
        rules: Rules,
        link: SwitchLink,
    ) -> Placing {
        Placing {
            store,
            tariffs,
            node,
            classifier,
            rules,
            link,
            recent: Arc::default(),
        }
    }

    pub fn hub(&self) -> &ProgressHub {
        &self.link.hub
    }

    fn tariffs(&self) -> Arc<Tariffs> {
        self.tariffs
            .read()
            .map(|t| t.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// One more request from `client` at `now_ms`, or `TooManyRequests`.
    fn admit(&self, client: IpAddr, now_ms: i64) -> Result<(), PlaceError> {
        let limit = self.rules.per_address_per_minute;
        if limit == 0 {
            return Ok(());
        }
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() > 100_000 {
            recent.retain(|_, times| times.back().is_some_and(|t| *t > now_ms - 60_000));
        }
        let times = recent.entry(client).or_default();
        while times.front().is_some_and(|t| *t <= now_ms - 60_000) {
            times.pop_front();
        }
        if times.len() >= limit {
            return Err(PlaceError::Refused(Refusal::TooManyRequests));
        }
        times.push_back(now_ms);
        Ok(())
    }

    /// `text` as a number to dial: digits in national or international format, with
    /// optional post-dial digits after `;` or `,` (`025561234;235`).
    pub fn parse_number(&self, text: &str) -> Result<(Target, String), PlaceError> {
        let (main, post_dial) = match text.find([';', ',']) {
            Some(i) => (&text[..i], text[i + 1..].trim()),
            None => (text, ""),
        };
        if post_dial.len() > 32
            || !post_dial
                .chars()
                .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
        {
            return Err(PlaceError::BadNumber(
                "the extension after ';' may only hold digits, * and # (at most 32)".into(),
            ));
        }
        let normal = crate::routing::normalize_number(main.trim())
            .map_err(|e| PlaceError::BadNumber(e.to_string()))?;
        let (number, destination, country) = self
            .classifier
            .dialable(&normal)
            .filter(|(n, _, _)| n.len() >= 3)
            .ok_or_else(|| PlaceError::BadNumber(format!("'{main}' is not a phone number")))?;
        Ok((
            Target {
                number,
                destination,
                post_dial: post_dial.to_string(),
                registered: None,
            },
            country,
        ))
    }

    /// A card visitor asks to be called back on `text`; the request's id, once money for
    /// both legs is reserved and the switch has it.
    pub async fn callback(
        &self,
        card_id: i64,
        text: &str,
        client: IpAddr,
        record: bool,
    ) -> Result<String, PlaceError> {
        self.admit(client, self.store.clock().unix_ms())?;
        self.callback_as(card_id, text, None, record).await
    }

    /// `client` may ask (the per-address rate, as for a call-back request now).
    pub fn admit_request(&self, client: IpAddr) -> Result<(), PlaceError> {
        self.admit(client, self.store.clock().unix_ms())
    }

    /// Whether `text` is a number `card`'s visitors may be called back on (what a booking
    /// checks when it is made; the call checks again when it is placed).
    pub async fn check_callback(&self, card_id: i64, text: &str) -> Result<(), PlaceError> {
        let (visitor, country) = self.parse_number(text)?;
        let card = self
            .store
            .run(move |s| s.card(card_id))
            .await
            .map_err(store_error)?;
        if !self.may_call_back(&card, &visitor, &country) {
            return Err(PlaceError::Refused(Refusal::NumberNotAllowed));
        }
        Ok(())
    }

    fn may_call_back(
        &self,
        card: &crate::store::cards::Card,
        visitor: &Target,
        country: &str,
    ) -> bool {
        let allowed = match visitor.destination {
            DestinationKind::PremiumRate => false,
            DestinationKind::International => {
                card.callback_countries().iter().any(|c| c == country)
            }
            kind => self.rules.allowed.contains(&kind),
        };
        allowed && !self.rules.blocked.contains(&visitor.destination)
    }

    /// A call-back as `callback` places it, with the request's id chosen by the caller (a
    /// booking's attempt) and no per-address rate (it was counted when booked).
    pub async fn callback_as(
        &self,
        card_id: i64,
        text: &str,
        id: Option<String>,
        record: bool,
    ) -> Result<String, PlaceError> {
        let (visitor, country) = self.parse_number(text)?;
        let card = self
            .store
            .run(move |s| s.card(card_id))
            .await
            .map_err(store_error)?;
        if !self.may_call_back(&card, &visitor, &country) {
            return Err(PlaceError::Refused(Refusal::NumberNotAllowed));
        }
        let mut issuer: Vec<Target> = Vec::new();
        for p in card.phone_numbers() {
            if p.kind == "internet" && crate::routing::is_sip_user(&p.number) {
                // A SIP phone: rung where it is registered (on-net, free), if anywhere.
                let user = p.number.clone();
                let bindings = self
                    .store
                    .run(move |s| s.bindings(&user, s.clock().unix_ms()))
                    .await
                    .unwrap_or_default();
                issuer.extend(bindings.into_iter().map(|b| Target {
                    number: p.number.clone(),
                    destination: DestinationKind::Internet,
                    post_dial: String::new(),
                    registered: Some(b),
                }));
                continue;
            }
            let dialable = crate::routing::normalize_number(&p.number)
                .ok()
                .and_then(|n| self.classifier.dialable(&n));
            if let Some((number, destination, _)) = dialable {
                issuer.push(Target {
                    number,
                    destination,
                    post_dial: String::new(),
                    registered: None,
                });
            }
        }
        if issuer.is_empty() {
            return Err(PlaceError::NothingToRing(
                "the card has no number (or registered phone) to call its issuer on",
            ));
        }
        if self.rules.per_card_concurrent > 0
            && self.hub().active_on_card(card_id) >= self.rules.per_card_concurrent
        {
            return Err(PlaceError::Refused(Refusal::CardBusy));
        }
        let language = if card.language.starts_with("ko") {
            "ko"
        } else {
            "en"
        };
        let extras = self.card_extras(&card, record).await;
        self.place(
            Flow::Callback,
            Charge::Card(card_id),
            issuer,
            visitor,
            Some(card_id),
            None,
            language,
            self.rules.daily,
            id,
            extras,
        )
        .await
    }

    /// The card's greetings and its issuer's whisper as the switch plays them, and
    /// whether the call is recorded. A store that cannot be read leaves them out: the
    /// call still goes ahead.
    async fn card_extras(&self, card: &crate::store::cards::Card, record: bool) -> Extras {
        let (card_id, issuer) = (card.id, card.issuer_id);
        let loaded = self
            .store
            .run(move |s| Ok((s.greetings(card_id)?, s.whisper(issuer)?)))
            .await;
        let (greetings, whisper) = loaded.unwrap_or_default();
        let voice = |event: &str| {
            let g = greetings.iter().find(|g| g.event == event)?;
            match &g.audio {
                None => Some(Voice::Shipped),
                Some(wav) => Clip::from_wav(wav).ok().map(Voice::Uploaded),
            }
        };
        Extras {
            whisper: whisper.and_then(|(wav, _)| Clip::from_wav(&wav).ok()),
            greetings: Greetings {
                no_answer: voice("no-answer"),
                declined: voice("declined"),
                busy: voice("busy"),
            },
            record: record || card.record_calls,
        }
    }

    /// A member dials `text` from the web: the member's own phone rings first.
    pub async fn web_dial(
        &self,
        member_id: i64,
        text: &str,
        record: bool,
    ) -> Result<String, PlaceError> {
        self.web_dial_as(member_id, text, None, record).await
    }

    /// `web_dial` with the request's id chosen by the caller (a booking's attempt).
    pub async fn web_dial_as(
        &self,
        member_id: i64,
        text: &str,
        id: Option<String>,
        record: bool,
    ) -> Result<String, PlaceError> {
        let (dialled, _) = self.parse_number(text)?;
        if self.rules.blocked.contains(&dialled.destination) {
            return Err(PlaceError::Refused(Refusal::DestinationNotAllowed));
        }
        let member = self
            .store
            .run(move |s| s.member(member_id))
            .await
            .map_err(store_error)?;
        // The member's registered softphones ring first, then the phone on file.
        let user = member.sip_user.clone();
        let bindings = self
            .store
            .run(move |s| s.bindings(&user, s.clock().unix_ms()))
            .await
            .unwrap_or_default();
        let mut own: Vec<Target> = bindings
            .into_iter()
            .map(|b| Target {
                number: member.sip_user.clone(),
                destination: DestinationKind::Internet,
                post_dial: String::new(),
                registered: Some(b),
            })
            .collect();
        if let Some((number, destination, _)) = crate::routing::normalize_number(&member.phone)
            .ok()
            .and_then(|n| self.classifier.dialable(&n))
        {
            own.push(Target {
                number,
                destination,
                post_dial: String::new(),
                registered: None,
            });
        }
        if own.is_empty() {
            return Err(PlaceError::NothingToRing(
                "the member has no registered phone and no phone number on file",
            ));
        }
        self.place(
            Flow::WebDial,
            Charge::Account(member.account_id),
            own,
            dialled,
            None,
            Some(member_id),
            "ko",
            DailyLimits::default(),
            id,
            Extras {
                record,
                ..Default::default()
            },
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn place(
        &self,
        flow: Flow,
        charge: Charge,
        first: Vec<Target>,
        second: Target,
        card: Option<i64>,
        member: Option<i64>,
        language: &str,
        daily: DailyLimits,
        id: Option<String>,
        extras: Extras,
    ) -> Result<String, PlaceError> {
        let tariffs = self.tariffs();
        let kind = match charge {
            Charge::Card(_) => AccountKind::Guild,
            Charge::Account(_) => AccountKind::Mileage,
        };
        // The first leg may ring any of its numbers: it is priced at the dearest of them.
        // A registered softphone is on-net and free; a leg of only those costs nothing.
        let priced: Vec<&Target> = first.iter().filter(|t| t.registered.is_none()).collect();
        let free = priced.is_empty();
        let dearest = priced
            .iter()
            .filter_map(|t| {
                tariffs
                    .tariff_for(kind, t.destination, &t.number)
                    .map(|x| (x.per_minute, *t))
            })
            .max_by_key(|(pm, _)| *pm)
            .map(|(_, t)| t)
            .or(priced.first().copied());
        let (first_number, first_kind) = match dearest {
            Some(t) => (t.number.clone(), t.destination),
            None => (first[0].number.clone(), DestinationKind::Internet),
        };
        let id = id.unwrap_or_else(|| format!("fc-{:016x}", rand::random::<u64>()));
        let [first_role, second_role] = match flow {
            Flow::Callback => ["issuer", "visitor"],
            Flow::WebDial => ["member", "dialled"],
        };
        let legs = vec![
            PlacedLeg {
                role: first_role,
                number: first_number,
                destination: first_kind,
                free,
            },
            PlacedLeg {
                role: second_role,
                number: second.number.clone(),
                destination: second.destination,
                free: false,
            },
        ];
        let (node, call) = (self.node.clone(), id.clone());
        let billing = self
            .store
            .run(move |s| s.reserve_placed(&node, &call, charge, &legs, &tariffs, &daily))
            .await
            .map_err(store_error)?;
        let account = billing.first().map(|a| a.account);
        self.hub().register(Request {
            id: id.clone(),
            card,
            member,
            number: second.number.clone(),
            events: Vec::new(),
        });
        info!(call = %id, ?flow, number = %second.number, "call requested");
        let command = Command::Originate(Box::new(Originate {
            id: id.clone(),
            flow,
            first,
            second,
            billing: billing.clone(),
            card,
            account,
            language: language.into(),
            extras,
        }));
        if self.link.commands.send(command).is_err() {
            // The switch has stopped: give the money back now.
            let release = Settlement {
                reservation: billing[1].reservation,
                call_id: billing[1].call_id.clone(),
                ended_ms: self.store.clock().unix_ms(),
                cause: "switch is shutting down".into(),
                legs: vec![crate::billing::LegSettlement {
                    reservation: billing[0].reservation,
                    call_id: billing[0].call_id.clone(),
                    answered_ms: None,
                    ended_ms: None,
                }],
                ..Default::default()
            };
            let _ = self.store.run(move |s| s.settle(&release)).await;
            return Err(PlaceError::Stopped);
        }
        Ok(id)
    }

    /// End a request that has not ended: `Ok(false)` when it had already ended.
    pub fn cancel(&self, id: &str) -> Result<bool, PlaceError> {
        let Some(r) = self.hub().get(id) else {
            return Err(PlaceError::NotFound("call request"));
        };
        if r.ended() {
            return Ok(false);
        }
        self.link
            .commands
            .send(Command::Hangup { id: id.to_string() })
            .map_err(|_| PlaceError::Stopped)?;
        Ok(true)
    }
}

fn store_error(e: StoreError) -> PlaceError {
    match e {
        StoreError::Refused(r) => PlaceError::Refused(r),
        StoreError::NotFound(what) => PlaceError::NotFound(what),
        StoreError::Unavailable(_) => PlaceError::Refused(Refusal::Unavailable),
        other => {
            tracing::error!(error = %other, "cannot reserve a placed call");
            PlaceError::Refused(Refusal::Unavailable)
        }
    }
}

/// A phone book entry's name and number, checked: the number must be one the switch could
/// dial (the dial itself checks again, with the allowed kinds).
pub fn check_phonebook_entry(
    name: &str,
    number: &str,
) -> std::result::Result<(String, String), String> {
    let name = name.trim();
    let number = number.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err("the name must be 1-100 characters".into());
    }
    if number.len() > 40 || crate::routing::normalize_number(number).is_err() {
        return Err(format!("'{number}' is not a phone number"));
    }
    Ok((name.to_string(), number.to_string()))
}
