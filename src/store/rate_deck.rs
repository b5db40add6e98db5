//! The operator's rate deck: loaded whole, in one transaction, so a call is priced either
//! by the old deck or by the new one, never by half of each. A call in progress keeps the
//! tariff its reservation was priced at.

use super::schema::{rate_deck, rate_decks};
use super::{Result, Store, StoreError, in_tx, on_conn};
use crate::billing::{AccountKind, DeckRate, RateDeck};
use diesel::prelude::*;

/// Rows per INSERT (SQLite allows 32 766 bound values: 9 a row).
const CHUNK: usize = 1_000;

/// An import, as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeckImport {
    pub version: i64,
    pub loaded_ms: i64,
    pub rates: i64,
    pub source: String,
}

#[derive(Insertable, Queryable)]
#[diesel(table_name = rate_deck)]
struct Row {
    deck_id: i64,
    account: String,
    prefix: String,
    name: String,
    per_minute: i64,
    first_secs: i64,
    increment_secs: i64,
    connection: i64,
    minimum: i64,
}

impl Row {
    fn of(deck_id: i64, r: &DeckRate) -> Row {
        Row {
            deck_id,
            account: r.account.as_str().into(),
            prefix: r.prefix.clone(),
            name: r.name.clone(),
            per_minute: r.per_minute,
            first_secs: r.first_secs,
            increment_secs: r.increment_secs,
            connection: r.connection,
            minimum: r.minimum,
        }
    }

    fn rate(self) -> Option<DeckRate> {
        Some(DeckRate {
            account: AccountKind::parse(&self.account)?,
            prefix: self.prefix,
            name: self.name,
            per_minute: self.per_minute,
            first_secs: self.first_secs,
            increment_secs: self.increment_secs,
            connection: self.connection,
            minimum: self.minimum,
        })
    }
}

macro_rules! insert_deck {
    ($c:expr, $now:expr, $rates:expr, $source:expr) => {{
        let id: i64 = diesel::insert_into(rate_decks::table)
            .values((
                rate_decks::loaded_ms.eq($now),
                rate_decks::rates.eq($rates.len() as i64),
                rate_decks::source.eq($source),
            ))
            .returning(rate_decks::id)
            .get_result($c)?;
        diesel::delete(rate_deck::table.filter(rate_deck::deck_id.lt(id))).execute($c)?;
        for chunk in $rates.chunks(CHUNK) {
            let rows: Vec<Row> = chunk.iter().map(|r| Row::of(id, r)).collect();
            diesel::insert_into(rate_deck::table)
                .values(&rows)
                .execute($c)?;
        }
        id
    }};
}

/// The newest deck's version on either backend's connection (0: none was ever loaded).
macro_rules! newest_deck {
    ($c:expr) => {
        rate_decks::table
            .select(diesel::dsl::max(rate_decks::id))
            .first::<Option<i64>>($c)?
            .unwrap_or(0)
    };
}

impl Store {
    /// Put `rates` in force in place of the deck before (none: remove the deck, so every
    /// number is priced by its kind again). The new version.
    pub fn load_rate_deck(&self, rates: &[DeckRate], source: &str) -> Result<DeckImport> {
        let now = self.clock.unix_ms();
        let version = in_tx!(self, c => {
            Ok::<i64, StoreError>(insert_deck!(c, now, rates, source))
        })?;
        Ok(DeckImport {
            version,
            loaded_ms: now,
            rates: rates.len() as i64,
            source: source.into(),
        })
    }

    /// The newest import, if a deck was ever loaded.
    pub fn rate_deck_import(&self) -> Result<Option<DeckImport>> {
        on_conn!(self, c => {
            Ok(rate_decks::table
                .order(rate_decks::id.desc())
                .select((rate_decks::id, rate_decks::loaded_ms, rate_decks::rates, rate_decks::source))
                .first::<(i64, i64, i64, String)>(c)
                .optional()?
                .map(|(version, loaded_ms, rates, source)| DeckImport { version, loaded_ms, rates, source }))
        })
    }

    /// The version of the deck in force (0: none was ever loaded): what a node compares
    /// with the deck it prices with.
    pub fn rate_deck_version(&self) -> Result<i64> {
        on_conn!(self, c => Ok(newest_deck!(c)))
    }

    /// The deck in force, its version and its rows agreeing. PostgreSQL's read committed
    /// lets another node's load commit (and delete this version's rows) between two
    /// statements: the rows count only when the version read before and after them is
    /// the same, else they are read again (a few times; then "unavailable").
    pub fn rate_deck(&self) -> Result<RateDeck> {
        for _ in 0..5 {
            let (before, rows, after) = in_tx!(self, c => {
                let before = newest_deck!(c);
                let rows: Vec<Row> = rate_deck::table
                    .filter(rate_deck::deck_id.eq(before))
                    .load(c)?;
                let after = newest_deck!(c);
                Ok::<(i64, Vec<Row>, i64), StoreError>((before, rows, after))
            })?;
            if before == after {
                return Ok(RateDeck::new(
                    before,
                    rows.into_iter().filter_map(Row::rate).collect(),
                ));
            }
        }
        Err(StoreError::Unavailable(
            "the rate deck kept changing while it was read".into(),
        ))
    }
}
