//! What a card's visitors hear when its issuer cannot take the call (C12), and the
//! issuer's whisper before the question. Audio is kept in the database, converted once at
//! upload (`media::clip`), so every node sharing it plays the same.

use super::schema::{card_greetings, cards, issuer_whispers};
use super::{Result, Store, StoreError, on_conn};
use diesel::prelude::*;

/// The cases a card may have a greeting for, as the REST API and the pages name them.
pub const EVENTS: [&str; 3] = ["no-answer", "declined", "busy"];

/// One of a card's greetings: the case, and its uploaded audio (`None`: the shipped voice
/// in the card's language).
#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct Greeting {
    pub card_id: i64,
    pub event: String,
    pub audio: Option<Vec<u8>>,
    pub duration_ms: i64,
    pub updated_ms: i64,
}

impl Store {
    /// The card's greetings, in the order of `EVENTS`.
    pub fn greetings(&self, card_id: i64) -> Result<Vec<Greeting>> {
        let mut all: Vec<Greeting> = on_conn!(self, c => {
            card_greetings::table
                .filter(card_greetings::card_id.eq(card_id))
                .load::<Greeting>(c)?
        });
        all.sort_by_key(|g| EVENTS.iter().position(|e| *e == g.event));
        Ok(all)
    }

    /// Turn on the greeting for `event`, with uploaded audio (a WAV from `Clip::to_wav`)
    /// or the shipped voice (`None`).
    pub fn set_greeting(
        &self,
        card_id: i64,
        event: &str,
        audio: Option<&[u8]>,
        duration_ms: i64,
    ) -> Result<()> {
        if !EVENTS.contains(&event) {
            return Err(StoreError::Invalid(format!(
                "no greeting '{event}': one of {}",
                EVENTS.join(", ")
            )));
        }
        let now = self.clock.unix_ms();
        on_conn!(self, c => {
            diesel::insert_into(card_greetings::table)
                .values((
                    card_greetings::card_id.eq(card_id),
                    card_greetings::event.eq(event),
                    card_greetings::audio.eq(audio),
                    card_greetings::duration_ms.eq(duration_ms),
                    card_greetings::updated_ms.eq(now),
                ))
                .on_conflict((card_greetings::card_id, card_greetings::event))
                .do_update()
                .set((
                    card_greetings::audio.eq(audio),
                    card_greetings::duration_ms.eq(duration_ms),
                    card_greetings::updated_ms.eq(now),
                ))
                .execute(c)?;
            Ok(())
        })
    }

    /// Turn the greeting for `event` off (the visitor is not called when that happens).
    pub fn remove_greeting(&self, card_id: i64, event: &str) -> Result<bool> {
        on_conn!(self, c => {
            let n = diesel::delete(
                card_greetings::table
                    .filter(card_greetings::card_id.eq(card_id))
                    .filter(card_greetings::event.eq(event)),
            )
            .execute(c)?;
            Ok(n > 0)
        })
    }

    /// Record every call-back of the card (or stop).
    pub fn set_record_calls(&self, card_id: i64, on: bool) -> Result<()> {
        on_conn!(self, c => {
            let n = diesel::update(cards::table.find(card_id).filter(cards::deleted_ms.is_null()))
                .set(cards::record_calls.eq(on))
                .execute(c)?;
            if n == 0 {
                return Err(StoreError::NotFound("card"));
            }
            Ok(())
        })
    }

    /// The issuer's whisper (a WAV) and its length, if they recorded one.
    pub fn whisper(&self, issuer_id: i64) -> Result<Option<(Vec<u8>, i64)>> {
        on_conn!(self, c => {
            Ok(issuer_whispers::table
                .find(issuer_id)
                .select((issuer_whispers::audio, issuer_whispers::duration_ms))
                .first::<(Vec<u8>, i64)>(c)
                .optional()?)
        })
    }

    pub fn set_whisper(&self, issuer_id: i64, audio: &[u8], duration_ms: i64) -> Result<()> {
        let now = self.clock.unix_ms();
        on_conn!(self, c => {
            diesel::insert_into(issuer_whispers::table)
                .values((
                    issuer_whispers::issuer_id.eq(issuer_id),
                    issuer_whispers::audio.eq(audio),
                    issuer_whispers::duration_ms.eq(duration_ms),
                    issuer_whispers::updated_ms.eq(now),
                ))
                .on_conflict(issuer_whispers::issuer_id)
                .do_update()
                .set((
                    issuer_whispers::audio.eq(audio),
                    issuer_whispers::duration_ms.eq(duration_ms),
                    issuer_whispers::updated_ms.eq(now),
                ))
                .execute(c)?;
            Ok(())
        })
    }

    pub fn remove_whisper(&self, issuer_id: i64) -> Result<bool> {
        on_conn!(self, c => {
            Ok(diesel::delete(issuer_whispers::table.find(issuer_id)).execute(c)? > 0)
        })
    }
}
