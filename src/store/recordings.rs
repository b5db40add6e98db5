//! Recordings asked for on a call (C12): a row per call, written in two halves that may
//! arrive in either order — whose it is (from the call layer, when recording starts) and
//! how long and large the file came out (from the media side, when it is closed).

use super::schema::{cards, recordings};
use super::{Result, Store, StoreError, on_conn};
use crate::billing::RecordingStarted;
use diesel::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct Recording {
    pub call_id: String,
    pub card_id: Option<i64>,
    pub account_id: Option<i64>,
    pub node: String,
    pub path: String,
    pub format: String,
    pub started_ms: i64,
    pub duration_ms: Option<i64>,
    pub bytes: Option<i64>,
    /// `recording`, `ready` or `failed`.
    pub state: String,
}

/// Whose recordings to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Card(i64),
    /// Every card of this issuer.
    Issuer(i64),
    Account(i64),
}

/// How the media side closed a recording's file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingClosed {
    pub call_id: String,
    pub path: String,
    pub duration_ms: i64,
    pub bytes: i64,
    /// The file could not be written completely (a full disk, an I/O error).
    pub failed: bool,
}

impl Store {
    /// The owner's half of a recording's row.
    pub fn recording_started(&self, node: &str, r: &RecordingStarted) -> Result<()> {
        on_conn!(self, c => {
            diesel::insert_into(recordings::table)
                .values((
                    recordings::call_id.eq(&r.call_id),
                    recordings::card_id.eq(r.card),
                    recordings::account_id.eq(r.account),
                    recordings::node.eq(node),
                    recordings::path.eq(&r.path),
                    recordings::started_ms.eq(r.started_ms),
                ))
                .on_conflict(recordings::call_id)
                .do_update()
                .set((
                    recordings::card_id.eq(r.card),
                    recordings::account_id.eq(r.account),
                    recordings::started_ms.eq(r.started_ms),
                ))
                .execute(c)?;
            Ok(())
        })
    }

    /// The file's half: its length and size, and whether it is whole.
    pub fn recording_closed(&self, node: &str, r: &RecordingClosed, now_ms: i64) -> Result<()> {
        let state = if r.failed { "failed" } else { "ready" };
        on_conn!(self, c => {
            diesel::insert_into(recordings::table)
                .values((
                    recordings::call_id.eq(&r.call_id),
                    recordings::node.eq(node),
                    recordings::path.eq(&r.path),
                    recordings::started_ms.eq(now_ms - r.duration_ms),
                    recordings::duration_ms.eq(r.duration_ms),
                    recordings::bytes.eq(r.bytes),
                    recordings::state.eq(state),
                ))
                .on_conflict(recordings::call_id)
                .do_update()
                .set((
                    recordings::duration_ms.eq(r.duration_ms),
                    recordings::bytes.eq(r.bytes),
                    recordings::state.eq(state),
                ))
                .execute(c)?;
            Ok(())
        })
    }

    pub fn recording(&self, call_id: &str) -> Result<Recording> {
        on_conn!(self, c => {
            recordings::table
                .find(call_id)
                .first::<Recording>(c)
                .optional()?
                .ok_or(StoreError::NotFound("recording"))
        })
    }

    /// The owner's recordings, newest first.
    pub fn recordings_of(&self, owner: Owner, limit: i64) -> Result<Vec<Recording>> {
        on_conn!(self, c => {
            let q = recordings::table
                .order(recordings::started_ms.desc())
                .limit(limit.clamp(1, 1000));
            Ok(match owner {
                Owner::Card(card) => q.filter(recordings::card_id.eq(card)).load::<Recording>(c)?,
                Owner::Account(a) => q.filter(recordings::account_id.eq(a)).load::<Recording>(c)?,
                Owner::Issuer(issuer) => q
                    .filter(
                        recordings::card_id.eq_any(
                            cards::table
                                .filter(cards::issuer_id.eq(issuer))
                                .select(cards::id.nullable()),
                        ),
                    )
                    .load::<Recording>(c)?,
            })
        })
    }

    /// The issuer who owns a recording made on one of their cards' calls.
    pub fn recording_issuer(&self, r: &Recording) -> Result<Option<i64>> {
        let Some(card) = r.card_id else {
            return Ok(None);
        };
        on_conn!(self, c => {
            Ok(cards::table
                .find(card)
                .select(cards::issuer_id)
                .first::<i64>(c)
                .optional()?)
        })
    }

    /// Forget a recording (its file is the caller's to remove).
    pub fn delete_recording(&self, call_id: &str) -> Result<bool> {
        on_conn!(self, c => {
            Ok(diesel::delete(recordings::table.find(call_id)).execute(c)? > 0)
        })
    }

    /// This node's recordings started before `before_ms` (past the retention period).
    pub fn expired_recordings(
        &self,
        node: &str,
        before_ms: i64,
        limit: i64,
    ) -> Result<Vec<Recording>> {
        on_conn!(self, c => {
            Ok(recordings::table
                .filter(recordings::node.eq(node))
                .filter(recordings::started_ms.lt(before_ms))
                .order(recordings::started_ms.asc())
                .limit(limit)
                .load::<Recording>(c)?)
        })
    }
}
