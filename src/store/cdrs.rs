//! Call records in the database: written in the transaction that settles the call (or on
//! their own for calls nobody pays for), read by number, account and time, in the order
//! they were written (`id`), which is what the live feed resumes from.

use super::schema::cdrs;
use super::{Result, Store, on_conn};
use crate::cdr::CallRecord;
use diesel::prelude::*;

#[derive(Insertable)]
#[diesel(table_name = cdrs)]
struct NewCdr<'a> {
    call_id: &'a str,
    node: &'a str,
    caller: &'a str,
    callee: &'a str,
    account_id: Option<i64>,
    card_id: Option<i64>,
    destination: &'a str,
    trunks: String,
    trunk: Option<&'a str>,
    setup_ms: i64,
    answered_ms: Option<i64>,
    ended_ms: i64,
    billed_secs: i64,
    cost: i64,
    code: i32,
    cause: &'a str,
    ended_by: &'a str,
    codec_caller: &'a str,
    codec_callee: &'a str,
    media: Option<String>,
    legs: Option<String>,
    sent_callee: &'a str,
    sent_caller: &'a str,
}

impl<'a> From<&'a CallRecord> for NewCdr<'a> {
    fn from(r: &'a CallRecord) -> Self {
        NewCdr {
            call_id: &r.call_id,
            node: &r.node,
            caller: &r.caller,
            callee: &r.callee,
            account_id: r.account_id,
            card_id: r.card_id,
            destination: &r.destination,
            trunks: r.trunks.join(","),
            trunk: r.trunk.as_deref(),
            setup_ms: r.setup_ms,
            answered_ms: r.answered_ms,
            ended_ms: r.ended_ms,
            billed_secs: r.billed_secs,
            cost: r.cost,
            code: i32::from(r.code),
            cause: &r.cause,
            ended_by: &r.ended_by,
            codec_caller: &r.codec_caller,
            codec_callee: &r.codec_callee,
            media: r.media.as_ref().map(|m| m.to_string()),
            legs: (!r.legs.is_empty()).then(|| serde_json::to_string(&r.legs).unwrap_or_default()),
            sent_callee: &r.sent_callee,
            sent_caller: &r.sent_caller,
        }
    }
}

type Row = (
    i64,
    String,
    String,
    String,
    String,
    Option<i64>,
    Option<i64>,
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
    i64,
    i64,
    i64,
    i32,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
);

fn from_row(r: Row) -> CallRecord {
    CallRecord {
        id: r.0,
        call_id: r.1,
        node: r.2,
        caller: r.3,
        callee: r.4,
        account_id: r.5,
        card_id: r.6,
        destination: r.7,
        trunks: r
            .8
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        trunk: r.9,
        setup_ms: r.10,
        answered_ms: r.11,
        ended_ms: r.12,
        billed_secs: r.13,
        cost: r.14,
        code: u16::try_from(r.15).unwrap_or(0),
        cause: r.16,
        ended_by: r.17,
        codec_caller: r.18,
        codec_callee: r.19,
        media: r.20.and_then(|m| serde_json::from_str(&m).ok()),
        legs: r
            .21
            .and_then(|l| serde_json::from_str(&l).ok())
            .unwrap_or_default(),
        sent_callee: r.22,
        sent_caller: r.23,
    }
}

/// Which records to read: those after `after` (the feed's position), matching the filters,
/// oldest first, at most `limit`.
#[derive(Clone, Debug, Default)]
pub struct CdrQuery {
    pub after: i64,
    /// Only this node's records.
    pub node: Option<String>,
    /// Either number of the call (calling or dialled).
    pub number: Option<String>,
    pub account: Option<i64>,
    /// Calls on this card (its visitors' call-backs).
    pub card: Option<i64>,
    /// Calls that ended at or after / before this wall-clock time (ms).
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: i64,
}

/// The records `q` selects, as a boxed query for the connection's backend.
macro_rules! filtered {
    ($q:expr) => {{
        let q: &CdrQuery = $q;
        let mut query = cdrs::table.filter(cdrs::id.gt(q.after)).into_boxed();
        if let Some(n) = &q.number {
            query = query.filter(cdrs::callee.eq(n.clone()).or(cdrs::caller.eq(n.clone())));
        }
        if let Some(a) = q.account {
            query = query.filter(cdrs::account_id.eq(a));
        }
        if let Some(card) = q.card {
            query = query.filter(cdrs::card_id.eq(card));
        }
        if let Some(node) = &q.node {
            query = query.filter(cdrs::node.eq(node.clone()));
        }
        if let Some(t) = q.since_ms {
            query = query.filter(cdrs::ended_ms.ge(t));
        }
        if let Some(t) = q.until_ms {
            query = query.filter(cdrs::ended_ms.lt(t));
        }
        query
    }};
}

/// Insert records inside the caller's transaction; a call already recorded is skipped
/// (a settlement retried after its commit, recovery racing a late settlement).
pub(super) fn insert_sqlite(
    c: &mut diesel::sqlite::SqliteConnection,
    records: &[&CallRecord],
) -> Result<()> {
    // One statement per record (diesel's SQLite batch insert cannot leave out NULLs with
    // ON CONFLICT); the statement is prepared once and cached.
    for r in records {
        diesel::insert_into(cdrs::table)
            .values(NewCdr::from(*r))
            .on_conflict(cdrs::call_id)
            .do_nothing()
            .execute(c)?;
    }
    Ok(())
}

/// The PostgreSQL variant: the transaction first takes a lock that orders every node's
/// record inserts, so ids become visible in the order they were given and a reader that
/// resumes after an id never misses a row committed later with a smaller one.
pub(super) fn insert_pg(c: &mut diesel::pg::PgConnection, records: &[&CallRecord]) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    diesel::sql_query("SELECT pg_advisory_xact_lock(7242001)").execute(c)?;
    let rows: Vec<NewCdr> = records.iter().map(|r| NewCdr::from(*r)).collect();
    diesel::insert_into(cdrs::table)
        .values(&rows)
        .on_conflict(cdrs::call_id)
        .do_nothing()
        .execute(c)?;
    Ok(())
}

impl Store {
    /// Record calls that settle no money (free peers' calls, calls refused before a
    /// reservation).
    pub fn record_calls(&self, records: &[CallRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let refs: Vec<&CallRecord> = records.iter().collect();
        match &*self.pool {
            super::Pool::Sqlite(p) => {
                let mut guard = p.get()?;
                let _writer = self.sqlite_writer.lock().unwrap_or_else(|e| e.into_inner());
                let c: &mut diesel::sqlite::SqliteConnection = &mut guard;
                c.immediate_transaction(|c| insert_sqlite(c, &refs))
            }
            super::Pool::Pg(p) => {
                let mut guard = p.get()?;
                let c: &mut diesel::pg::PgConnection = &mut guard;
                c.transaction(|c| insert_pg(c, &refs))
            }
        }
    }

    pub fn cdrs(&self, q: &CdrQuery) -> Result<Vec<CallRecord>> {
        let limit = q.limit.clamp(1, 10_000);
        on_conn!(self, c => {
            let rows: Vec<Row> = filtered!(q).order(cdrs::id).limit(limit).load(c)?;
            Ok(rows.into_iter().map(from_row).collect())
        })
    }

    /// The newest `n` records `q` selects, oldest first (`q.limit` is ignored).
    pub fn last_cdrs(&self, q: &CdrQuery, n: i64) -> Result<Vec<CallRecord>> {
        let n = n.clamp(1, 10_000);
        on_conn!(self, c => {
            let rows: Vec<Row> = filtered!(q).order(cdrs::id.desc()).limit(n).load(c)?;
            Ok(rows.into_iter().rev().map(from_row).collect())
        })
    }

    /// The newest record's position (0 when there is none).
    pub fn last_cdr_id(&self) -> Result<i64> {
        on_conn!(self, c => {
            let max: Option<i64> = cdrs::table.select(diesel::dsl::max(cdrs::id)).first(c)?;
            Ok(max.unwrap_or(0))
        })
    }

    /// How many records match (for progress while a reader catches up).
    pub fn count_cdrs(&self, q: &CdrQuery) -> Result<i64> {
        on_conn!(self, c => Ok(filtered!(q).count().get_result::<i64>(c)?))
    }
}
