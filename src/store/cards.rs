//! Electronic business cards: issuers with their guild account (C1) and cards with their
//! call quota (C2).

use super::accounts::{Entry, append, new_account};
use super::schema::{accounts, card_texts, cards, issuers, ledger};
use super::{Result, Store, StoreError, in_tx, on_conn};
use crate::billing::AccountKind;
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

macro_rules! issuer_columns {
    () => {
        (
            issuers::id,
            issuers::login,
            issuers::name,
            issuers::company,
            issuers::account_id,
            issuers::created_ms,
        )
    };
}

/// Replace card `$id`'s further language versions with `$texts` (leaving out the main
/// language `$main`), inside the caller's transaction.
macro_rules! replace_texts {
    ($c:expr, $id:expr, $main:expr, $texts:expr) => {
        diesel::delete(card_texts::table.filter(card_texts::card_id.eq($id))).execute($c)?;
        for t in $texts.iter().filter(|t: &&CardText| &t.language != $main) {
            diesel::insert_into(card_texts::table)
                .values((
                    card_texts::card_id.eq($id),
                    card_texts::language.eq(&t.language),
                    card_texts::name.eq(&t.name),
                    card_texts::title.eq(&t.title),
                    card_texts::company.eq(&t.company),
                    card_texts::text.eq(&t.text),
                ))
                .execute($c)?;
        }
    };
}

/// A new card's public link: 16 characters of a 31-letter alphabet without look-alikes (79 random bits), so
/// links cannot be guessed or walked.
fn new_slug() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..16)
        .map(|_| ALPHABET[(rng.next_u32() % ALPHABET.len() as u32) as usize] as char)
        .collect()
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
    /// The public page's short link (`/c/{slug}`).
    pub slug: Option<String>,
    /// An uploaded photo's file name (under the data directory's `photos/`), or empty.
    pub photo: String,
    pub updated_ms: i64,
    pub deleted_ms: Option<i64>,
    /// Every call-back of this card is recorded.
    pub record_calls: bool,
}

/// One language version of a card's text; the card's own row is its main language.
#[derive(Clone, Debug, Default, PartialEq, Eq, Queryable)]
pub struct CardText {
    pub language: String,
    pub name: String,
    pub title: String,
    pub company: String,
    pub text: String,
}

impl Card {
    /// The card's own text, as a language version.
    pub fn main_text(&self) -> CardText {
        CardText {
            language: self.language.clone(),
            name: self.name.clone(),
            title: self.title.clone(),
            company: self.company.clone(),
            text: self.text.clone(),
        }
    }

    pub fn slug(&self) -> &str {
        self.slug.as_deref().unwrap_or("")
    }

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

    /// The card's numbers as the issuer listed them (for the page and the vCard).
    pub fn phone_numbers_in_order(&self) -> Vec<CardNumber> {
        serde_json::from_str(&self.phones).unwrap_or_default()
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
            let account = new_account!(c, self.clock.unix_ms(), AccountKind::Guild, bonus, "signup bonus");
            let id: i64 = diesel::insert_into(issuers::table)
                .values((
                    issuers::login.eq(&i.login),
                    issuers::password_hash.eq(&i.password_hash),
                    issuers::name.eq(&i.name),
                    issuers::company.eq(&i.company),
                    issuers::account_id.eq(account),
                    issuers::created_ms.eq(self.clock.unix_ms()),
                ))
                .returning(issuers::id)
                .get_result(c)?;
            Ok(issuers::table.find(id).select(issuer_columns!()).first::<Issuer>(c)?)
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
                    cards::created_ms.eq(self.clock.unix_ms()),
                    cards::callback_countries.eq(&n.callback_countries),
                    cards::slug.eq(new_slug()),
                    cards::updated_ms.eq(self.clock.unix_ms()),
                ))
                .returning(cards::id)
                .get_result(c)?;
            let (balance, reserved): (i64, i64) = accounts::table
                .find(account)
                .select((accounts::balance, accounts::reserved))
                .first(c)?;
            if n.quota > 0 {
                append!(c, self.clock.unix_ms(), Entry {
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

    /// A card in service (a withdrawn card is not found).
    pub fn card(&self, id: i64) -> Result<Card> {
        on_conn!(self, c => {
            cards::table
                .find(id)
                .filter(cards::deleted_ms.is_null())
                .first::<Card>(c)
                .optional()?
                .ok_or(StoreError::NotFound("card"))
        })
    }

    /// The card behind a public link.
    pub fn card_by_slug(&self, slug: &str) -> Result<Card> {
        on_conn!(self, c => {
            cards::table
                .filter(cards::slug.eq(slug))
                .filter(cards::deleted_ms.is_null())
                .first::<Card>(c)
                .optional()?
                .ok_or(StoreError::NotFound("card"))
        })
    }

    /// An issuer's cards in service, oldest first.
    pub fn cards_of(&self, issuer_id: i64) -> Result<Vec<Card>> {
        on_conn!(self, c => {
            Ok(cards::table
                .filter(cards::issuer_id.eq(issuer_id))
                .filter(cards::deleted_ms.is_null())
                .order(cards::id.asc())
                .load::<Card>(c)?)
        })
    }

    /// The card's further language versions (its main language is the card itself).
    pub fn card_texts(&self, card_id: i64) -> Result<Vec<CardText>> {
        on_conn!(self, c => {
            Ok(card_texts::table
                .filter(card_texts::card_id.eq(card_id))
                .order(card_texts::language.asc())
                .select((card_texts::language, card_texts::name, card_texts::title, card_texts::company, card_texts::text))
                .load::<CardText>(c)?)
        })
    }

    /// Change a card: its main text, numbers, design and countries from `n`, its further
    /// language versions replaced by `texts`, its quota set to `n.quota` (a ledger entry
    /// for the change; never below what calls used or hold). `n.issuer_id` must own it.
    pub fn update_card(&self, id: i64, n: &NewCard, texts: &[CardText]) -> Result<Card> {
        in_tx!(self, c => {
            let card: Card = cards::table
                .find(id)
                .filter(cards::deleted_ms.is_null())
                .filter(cards::issuer_id.eq(n.issuer_id))
                .first::<Card>(c)
                .optional()?
                .ok_or(StoreError::NotFound("card"))?;
            if n.quota < card.quota_used + card.quota_reserved {
                return Err(StoreError::Invalid(format!(
                    "the quota cannot go below the {} calls already used or in progress",
                    card.quota_used + card.quota_reserved
                )));
            }
            diesel::update(cards::table.find(id))
                .set((
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
                    cards::callback_countries.eq(&n.callback_countries),
                    cards::updated_ms.eq(self.clock.unix_ms().max(card.updated_ms + 1)),
                ))
                .execute(c)?;
            replace_texts!(c, id, &n.language, texts);
            let change = n.quota - card.quota_total;
            if change != 0 {
                let account: i64 = issuers::table.find(n.issuer_id).select(issuers::account_id).first(c)?;
                let (balance, reserved): (i64, i64) = accounts::table
                    .find(account)
                    .select((accounts::balance, accounts::reserved))
                    .first(c)?;
                append!(c, self.clock.unix_ms(), Entry {
                    account,
                    card: Some(id),
                    kind: if change > 0 { "credit" } else { "debit" },
                    amount: 0,
                    calls: change.abs(),
                    after: (balance, reserved),
                    cause: if change > 0 { "call quota raised" } else { "call quota lowered" },
                    reference: None,
                })?;
            }
            Ok(cards::table.find(id).first::<Card>(c)?)
        })
    }

    /// Set the language versions of a new card (what `create_card` does not take).
    pub fn set_card_texts(&self, id: i64, texts: &[CardText]) -> Result<()> {
        in_tx!(self, c => {
            let main: String = cards::table.find(id).select(cards::language).first(c)?;
            replace_texts!(c, id, &main, texts);
            Ok(())
        })
    }

    /// The card's uploaded photo (a file name under `photos/`; empty: none).
    pub fn set_card_photo(&self, id: i64, issuer_id: i64, photo: &str) -> Result<()> {
        on_conn!(self, c => {
            let n = diesel::update(
                cards::table
                    .find(id)
                    .filter(cards::issuer_id.eq(issuer_id))
                    .filter(cards::deleted_ms.is_null()),
            )
            .set((cards::photo.eq(photo), cards::updated_ms.eq(self.clock.unix_ms())))
            .execute(c)?;
            if n == 0 { Err(StoreError::NotFound("card")) } else { Ok(()) }
        })
    }

    /// Withdraw a card: its page is gone and calls on it are refused; the row stays for
    /// the ledger and the call records. Calls in progress end as they would.
    pub fn delete_card(&self, id: i64, issuer_id: i64) -> Result<()> {
        on_conn!(self, c => {
            let n = diesel::update(
                cards::table
                    .find(id)
                    .filter(cards::issuer_id.eq(issuer_id))
                    .filter(cards::deleted_ms.is_null()),
            )
            .set((cards::deleted_ms.eq(self.clock.unix_ms()), cards::updated_ms.eq(self.clock.unix_ms())))
            .execute(c)?;
            if n == 0 { Err(StoreError::NotFound("card")) } else { Ok(()) }
        })
    }

    pub fn issuer(&self, id: i64) -> Result<Issuer> {
        on_conn!(self, c => {
            issuers::table
                .find(id)
                .select(issuer_columns!())
                .first::<Issuer>(c)
                .optional()?
                .ok_or(StoreError::NotFound("issuer"))
        })
    }

    /// An issuer by login, with the password hash to check (web login).
    pub fn issuer_login(&self, login: &str) -> Result<Option<(Issuer, String)>> {
        on_conn!(self, c => {
            let row: Option<(i64, String)> = issuers::table
                .filter(issuers::login.eq(login))
                .select((issuers::id, issuers::password_hash))
                .first(c)
                .optional()?;
            match row {
                Some((id, hash)) => Ok(Some((
                    issuers::table.find(id).select(issuer_columns!()).first::<Issuer>(c)?,
                    hash,
                ))),
                None => Ok(None),
            }
        })
    }

    pub fn set_issuer_password(&self, id: i64, password_hash: &str) -> Result<()> {
        on_conn!(self, c => {
            diesel::update(issuers::table.find(id))
                .set(issuers::password_hash.eq(password_hash))
                .execute(c)?;
            Ok(())
        })
    }
}
