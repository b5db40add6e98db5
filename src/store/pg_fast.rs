//! PostgreSQL: the call path's writes as one call each of a server-side function
//! (`freecall_reserve`, `freecall_settle`, in `sql/postgres/…_call_functions`).
//!
//! Over a network every statement is a round trip and a transaction adds two more; a
//! long ad-hoc statement is also planned anew each time. A function call is one round
//! trip, atomic, and its inner statements' plans are cached per connection. This cuts a
//! call's database round trips from about eighteen to five. The arithmetic of settlement
//! is done in SQL there and in `Tariff` for SQLite; the store tests run the same cases on
//! both backends and must agree.

use super::reservation::{ReserveItem, Settled};
use super::{Result, StoreError};
use crate::billing::Settlement;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

#[derive(QueryableByName)]
struct Reserved {
    #[diesel(sql_type = Nullable<BigInt>)]
    reservation: Option<i64>,
}

/// Hold `amount` on `account` and record the reservation and its ledger entry — or, when
/// the balance no longer covers it, nothing at all (`None`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn reserve_account(
    c: &mut PgConnection,
    node: &str,
    call_id: &str,
    number: &str,
    destination: &str,
    account: i64,
    amount: i64,
    max_secs: i64,
    t: &crate::billing::Tariff,
    now_ms: i64,
) -> Result<Option<i64>> {
    let row: Reserved = diesel::sql_query(
        "SELECT freecall_reserve($2, $1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) AS reservation",
    )
    .bind::<BigInt, _>(amount)
    .bind::<BigInt, _>(account)
    .bind::<Text, _>(call_id)
    .bind::<Text, _>(node)
    .bind::<Text, _>(number)
    .bind::<Text, _>(destination)
    .bind::<BigInt, _>(max_secs)
    .bind::<BigInt, _>(t.per_minute)
    .bind::<BigInt, _>(t.first_secs)
    .bind::<BigInt, _>(t.increment_secs)
    .bind::<BigInt, _>(t.minimum)
    .bind::<BigInt, _>(t.connection)
    .bind::<BigInt, _>(now_ms)
    .get_result(c)?;
    Ok(row.reservation)
}

#[derive(QueryableByName)]
struct SettleManyRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Text)]
    outcome: String,
    #[diesel(sql_type = BigInt)]
    billed: i64,
    #[diesel(sql_type = BigInt)]
    cost: i64,
    #[diesel(sql_type = BigInt)]
    released: i64,
}

/// Settle a batch in one statement (each `freecall_settle` is atomic; the statement is one
/// transaction, so a database failure writes none of them).
pub(crate) fn settle_many(
    c: &mut PgConnection,
    batch: &[Settlement],
    now_ms: i64,
) -> Result<Vec<Result<Settled>>> {
    use diesel::sql_types::Array;
    let ids: Vec<i64> = batch.iter().map(|s| s.reservation).collect();
    let talk: Vec<i64> = batch.iter().map(|s| s.talk_secs()).collect();
    let answered: Vec<Option<i64>> = batch.iter().map(|s| s.answered_ms).collect();
    let ended: Vec<i64> = batch.iter().map(|s| s.ended_ms).collect();
    let causes: Vec<&str> = batch.iter().map(|s| s.cause.as_str()).collect();
    let calls: Vec<&str> = batch.iter().map(|s| s.call_id.as_str()).collect();
    let rows: Vec<SettleManyRow> = diesel::sql_query(
        "SELECT u.n, f.outcome, f.billed, f.cost, f.released
           FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[])
                WITH ORDINALITY AS u(id, talk, answered, ended, cause, call, n),
                LATERAL freecall_settle(u.id, u.talk, u.answered, u.ended, u.cause, u.call, $7) f
          ORDER BY u.n",
    )
    .bind::<Array<BigInt>, _>(&ids)
    .bind::<Array<BigInt>, _>(&talk)
    .bind::<Array<Nullable<BigInt>>, _>(&answered)
    .bind::<Array<BigInt>, _>(&ended)
    .bind::<Array<Text>, _>(&causes)
    .bind::<Array<Text>, _>(&calls)
    .bind::<BigInt, _>(now_ms)
    .load(c)?;
    let mut out: Vec<Result<Settled>> = (0..batch.len())
        .map(|_| Err(StoreError::NotFound("reservation")))
        .collect();
    for r in rows {
        let i = (r.n - 1) as usize;
        if i < out.len() {
            out[i] = match r.outcome.as_str() {
                "missing" => Err(StoreError::NotFound("reservation")),
                "already" => Ok(Settled::Already),
                _ => Ok(Settled::Done {
                    billed_secs: r.billed,
                    cost: r.cost,
                    released: r.released,
                }),
            };
        }
    }
    Ok(out)
}

/// Persist a batch of answer times in one statement.
pub(crate) fn mark_answered_many(c: &mut PgConnection, batch: &[(i64, i64)]) -> Result<()> {
    use diesel::sql_types::Array;
    let ids: Vec<i64> = batch.iter().map(|b| b.0).collect();
    let at: Vec<i64> = batch.iter().map(|b| b.1).collect();
    diesel::sql_query(
        "UPDATE reservations r SET answered_ms = u.at
           FROM unnest($1::bigint[], $2::bigint[]) AS u(id, at)
          WHERE r.id = u.id AND r.state = 'open'",
    )
    .bind::<Array<BigInt>, _>(&ids)
    .bind::<Array<BigInt>, _>(&at)
    .execute(c)?;
    Ok(())
}

/// One reservation of a batch: the item's index, what to hold, and the tariff.
pub(crate) struct ReserveRow {
    pub n: usize,
    pub account: i64,
    pub amount: i64,
    pub max_secs: i64,
    pub tariff: crate::billing::Tariff,
    pub limit_reason: &'static str,
}

#[derive(QueryableByName)]
struct ReservedMany {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    reservation: Option<i64>,
}

/// Reserve a batch in one statement; a reservation id per row, `None` where the balance
/// no longer covered it.
pub(crate) fn reserve_many(
    c: &mut PgConnection,
    node: &str,
    items: &[ReserveItem],
    rows: &[ReserveRow],
    now_ms: i64,
) -> diesel::QueryResult<Vec<Option<i64>>> {
    use diesel::sql_types::Array;
    let col = |f: &dyn Fn(&ReserveRow) -> i64| -> Vec<i64> { rows.iter().map(f).collect() };
    let accounts = col(&|r| r.account);
    let amounts = col(&|r| r.amount);
    let max = col(&|r| r.max_secs);
    let pm = col(&|r| r.tariff.per_minute);
    let first = col(&|r| r.tariff.first_secs);
    let inc = col(&|r| r.tariff.increment_secs);
    let min = col(&|r| r.tariff.minimum);
    let conn = col(&|r| r.tariff.connection);
    let calls: Vec<&str> = rows.iter().map(|r| items[r.n].call_id.as_str()).collect();
    let numbers: Vec<&str> = rows.iter().map(|r| items[r.n].number.as_str()).collect();
    let dests: Vec<&str> = rows
        .iter()
        .map(|r| items[r.n].destination.as_str())
        .collect();
    let got: Vec<ReservedMany> = diesel::sql_query(
        "SELECT u.n, freecall_reserve(u.account, u.amount, u.call, $12, u.number, u.dest, u.max,
                                      u.pm, u.first, u.inc, u.min, u.conn, $13) AS reservation
           FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                       $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[])
                WITH ORDINALITY AS u(account, amount, call, number, dest, max, pm, first, inc, min, conn, n)
          ORDER BY u.n",
    )
    .bind::<Array<BigInt>, _>(&accounts)
    .bind::<Array<BigInt>, _>(&amounts)
    .bind::<Array<Text>, _>(&calls)
    .bind::<Array<Text>, _>(&numbers)
    .bind::<Array<Text>, _>(&dests)
    .bind::<Array<BigInt>, _>(&max)
    .bind::<Array<BigInt>, _>(&pm)
    .bind::<Array<BigInt>, _>(&first)
    .bind::<Array<BigInt>, _>(&inc)
    .bind::<Array<BigInt>, _>(&min)
    .bind::<Array<BigInt>, _>(&conn)
    .bind::<Text, _>(node)
    .bind::<BigInt, _>(now_ms)
    .load(c)?;
    let mut out = vec![None; rows.len()];
    for g in got {
        let i = (g.n - 1) as usize;
        if i < out.len() {
            out[i] = g.reservation;
        }
    }
    Ok(out)
}
