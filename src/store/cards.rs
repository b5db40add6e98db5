//! Electronic business cards: issuers with their guild account (C1) and cards with their
//! call quota (C2).

use super::accounts::{Entry, append, new_account};
use super::schema::{accounts, cards, issuers, ledger};
use super::{Result, Store, StoreError, in_tx, on_conn};
use crate::billing::AccountKind;
use crate::clock;
use diesel::prelude::*;

#[derive(Clone, Debug)]
pub struct NewIssuer {
    pub login: String,
    pub password_hash: String,
    pub name: String,
    pub company: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct Issuer {
    pub id: i64,
    pub login: String,
    pub name: String,
    pub company: String,
    pub account_id: i64,
    pub created_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCard {
    pub issuer_id: i64,
    pub language: String,
    pub name: String,
    pub title: String,
    pub company: String,
    pub text: String,
    pub image_url: String,
    pub video_url: String,
    pub design: String,
    /// JSON array of phone numbers by kind.
    pub phones: String,
    pub quota: i64,
    /// Countries (ISO 3166 codes, comma-separated) where visitors may be called back;
    /// empty: domestic numbers only.
    pub callback_countries: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct Card {
    pub id: i64,
    pub issuer_id: i64,
    pub language: String,
    pub name: String,
    pub title: String,
    pub company: String,
    pub text: String,
    pub image_url: String,
    pub video_url: String,
    pub design: String,
    pub phones: String,
    pub quota_total: i64,
    pub quota_used: i64,
    pub quota_reserved: i64,
    pub created_ms: i64,
    pub callback_countries: String,
}

impl Card {
    pub fn quota_left(&self) -> i64 {
        self.quota_total - self.quota_used - self.quota_reserved
    }

    /// The card's numbers by kind, in the card's order: (kind, number, callback). The
    /// issuer is called back on the numbers marked `callback` first, then on the others.
    pub fn phone_numbers(&self) -> Vec<CardNumber> {
        let mut all: Vec<CardNumber> = serde_json::from_str(&self.phones).unwrap_or_default();
        all.sort_by_key(|p| !p.callback);
        all
    }

    /// Countries whose numbers visitors may be called back on (upper case).
    pub fn callback_countries(&self) -> Vec<String> {
        self.callback_countries
            .split(',')
            .map(|c| c.trim().to_ascii_uppercase())
            .filter(|c| !c.is_empty())
            .collect()
    }
}

/// One of a card's numbers as stored (JSON in `cards.phones`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct CardNumber {
    /// landline, mobile or internet.
    pub kind: String,
    pub number: String,
    /// Call the issuer back on this number first.
    #[serde(default)]
    pub callback: bool,
}

impl Store {
    /// An issuer and its guild account, opened with `bonus` (C1).
    pub fn create_issuer(&self, i: &NewIssuer, bonus: i64) -> Result<Issuer> {
        in_tx!(self, c => {
            let taken: Option<i64> = issuers::table
                .filter(issuers::login.eq(&i.login))
                .select(issuers::id)
                .first(c)
                .optional()?;
            if taken.is_some() {
                return Err(StoreError::Conflict(format!("login '{}' is taken", i.login)));
            }
            let account = new_account!(c, AccountKind::Guild, bonus, "signup bonus");
            let id: i64 = diesel::insert_into(issuers::table)
                .values((
                    issuers::login.eq(&i.login),
                    issuers::password_hash.eq(&i.password_hash),
                    issuers::name.eq(&i.name),
                    issuers::company.eq(&i.company),
                    issuers::account_id.eq(account),
                    issuers::created_ms.eq(clock::unix_ms()),
                ))
                .returning(issuers::id)
                .get_result(c)?;
            Ok(issuers::table
                .find(id)
                .select((issuers::id, issuers::login, issuers::name, issuers::company, issuers::account_id, issuers::created_ms))
                .first::<Issuer>(c)?)
        })
    }

    /// Issue a card with its call quota; the grant is a ledger entry on the guild.
    pub fn create_card(&self, n: &NewCard) -> Result<Card> {
        in_tx!(self, c => {
            let account: i64 = issuers::table
                .find(n.issuer_id)
                .select(issuers::account_id)
                .first(c)
                .optional()?
                .ok_or(StoreError::NotFound("issuer"))?;
            let id: i64 = diesel::insert_into(cards::table)
                .values((
                    cards::issuer_id.eq(n.issuer_id),
                    cards::language.eq(&n.language),
                    cards::name.eq(&n.name),
                    cards::title.eq(&n.title),
                    cards::company.eq(&n.company),
                    cards::text.eq(&n.text),
                    cards::image_url.eq(&n.image_url),
                    cards::video_url.eq(&n.video_url),
                    cards::design.eq(&n.design),
                    cards::phones.eq(&n.phones),
                    cards::quota_total.eq(n.quota),
                    cards::created_ms.eq(clock::unix_ms()),
                    cards::callback_countries.eq(&n.callback_countries),
                ))
                .returning(cards::id)
                .get_result(c)?;
            let (balance, reserved): (i64, i64) = accounts::table
                .find(account)
                .select((accounts::balance, accounts::reserved))
                .first(c)?;
            if n.quota > 0 {
                append!(c, Entry {
                    account,
                    card: Some(id),
                    kind: "credit",
                    amount: 0,
                    calls: n.quota,
                    after: (balance, reserved),
                    cause: "call quota",
                    reference: None,
                })?;
            }
            Ok(cards::table.find(id).first::<Card>(c)?)
        })
    }

    pub fn card(&self, id: i64) -> Result<Card> {
        on_conn!(self, c => {
            cards::table
                .find(id)
                .first::<Card>(c)
                .optional()?
                .ok_or(StoreError::NotFound("card"))
        })
    }
}
