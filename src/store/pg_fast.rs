//! PostgreSQL: the call path's writes as one call each of a server-side function
//! (`freecall_reserve`, `freecall_apply_settlement`, in `sql/postgres/`).
//!
//! Over a network every statement is a round trip and a transaction adds two more; a
//! long ad-hoc statement is also planned anew each time. A function call is one round
//! trip, atomic, and its inner statements' plans are cached per connection. This cuts a
//! call's database round trips from about eighteen to five.
//!
//! The functions compute nothing of the money rules: what to hold is priced by
//! `Tariffs::price` and what a settlement writes by `Held::settle` (read the held rows,
//! compute, apply: two statements a batch), exactly as on SQLite.

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
    price: &crate::billing::Price,
    now_ms: i64,
) -> Result<Option<i64>> {
    let t = &price.tariff;
    let row: Reserved = diesel::sql_query(
        "SELECT freecall_reserve($2, $1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) AS reservation",
    )
    .bind::<BigInt, _>(price.amount)
    .bind::<BigInt, _>(account)
    .bind::<Text, _>(call_id)
    .bind::<Text, _>(node)
    .bind::<Text, _>(number)
    .bind::<Text, _>(destination)
    .bind::<BigInt, _>(price.max_secs)
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
struct Applied {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Text)]
    outcome: String,
}

/// Settle a batch: read what each reservation holds, compute every posting with
/// `Held::settle`, apply them all in one statement (each `freecall_apply_settlement` is
/// atomic and flips the reservation only while it is still open with the amount the
/// posting was computed from; the statement is one transaction, so a database failure
/// writes none of them).
pub(crate) fn settle_many(
    c: &mut PgConnection,
    batch: &[Settlement],
    now_ms: i64,
) -> Result<Vec<Result<Settled>>> {
    use super::schema::reservations;
    use diesel::sql_types::{Array, Bool};
    let ids: Vec<i64> = batch.iter().map(|s| s.reservation).collect();
    // What is held never changes after the reservation is made: read without a lock.
    let held: std::collections::HashMap<i64, (String, crate::billing::Held)> = reservations::table
        .filter(reservations::id.eq_any(&ids))
        .select(super::reservation::HELD_COLUMNS)
        .load::<super::reservation::HeldRow>(c)?
        .into_iter()
        .map(|row| (row.id, (row.state.clone(), row.held())))
        .collect();
    let mut out: Vec<Result<Settled>> = Vec::with_capacity(batch.len());
    let mut apply: Vec<(usize, crate::billing::Posting)> = Vec::new();
    for (i, s) in batch.iter().enumerate() {
        out.push(match held.get(&s.reservation) {
            None => Err(StoreError::NotFound("reservation")),
            Some((state, _)) if state != "open" => Ok(Settled::Already),
            Some((_, h)) => {
                let p = h.settle(s.talk_secs(), s.answered_ms.is_some());
                apply.push((i, p));
                Ok(Settled::Done {
                    billed_secs: p.billed_secs,
                    cost: p.cost,
                    released: p.released,
                })
            }
        });
    }
    if apply.is_empty() {
        return Ok(out);
    }
    let col = |f: &dyn Fn(&crate::billing::Posting) -> i64| -> Vec<i64> {
        apply.iter().map(|(_, p)| f(p)).collect()
    };
    let pick = |i: &usize| &batch[*i];
    let ids: Vec<i64> = apply.iter().map(|(i, _)| pick(i).reservation).collect();
    let answered: Vec<Option<i64>> = apply.iter().map(|(i, _)| pick(i).answered_ms).collect();
    let ended: Vec<i64> = apply.iter().map(|(i, _)| pick(i).ended_ms).collect();
    let causes: Vec<&str> = apply.iter().map(|(i, _)| pick(i).cause.as_str()).collect();
    let calls: Vec<&str> = apply
        .iter()
        .map(|(i, _)| pick(i).call_id.as_str())
        .collect();
    let debit: Vec<bool> = apply.iter().map(|(_, p)| p.debit).collect();
    let rows: Vec<Applied> = diesel::sql_query(
        "SELECT u.n, freecall_apply_settlement(u.id, u.billed, u.cost, u.released, u.debit,
                    u.debit_calls, u.release_calls, u.quota_used, u.answered, u.ended, u.cause,
                    u.call, $14) AS outcome
           FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::boolean[],
                       $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[],
                       $11::text[], $12::text[], $13::bigint[])
                AS u(id, billed, cost, released, debit, debit_calls, release_calls, quota_used,
                     answered, ended, cause, call, n)
          ORDER BY u.n",
    )
    .bind::<Array<BigInt>, _>(&ids)
    .bind::<Array<BigInt>, _>(col(&|p| p.billed_secs))
    .bind::<Array<BigInt>, _>(col(&|p| p.cost))
    .bind::<Array<BigInt>, _>(col(&|p| p.released))
    .bind::<Array<Bool>, _>(&debit)
    .bind::<Array<BigInt>, _>(col(&|p| p.debit_calls))
    .bind::<Array<BigInt>, _>(col(&|p| p.release_calls))
    .bind::<Array<BigInt>, _>(col(&|p| p.quota_used))
    .bind::<Array<Nullable<BigInt>>, _>(&answered)
    .bind::<Array<BigInt>, _>(&ended)
    .bind::<Array<Text>, _>(&causes)
    .bind::<Array<Text>, _>(&calls)
    .bind::<Array<BigInt>, _>(apply.iter().map(|(i, _)| *i as i64).collect::<Vec<_>>())
    .bind::<BigInt, _>(now_ms)
    .load(c)?;
    for r in rows {
        let i = r.n as usize;
        match r.outcome.as_str() {
            "done" => {}
            // Settled by another writer between the read and now.
            "already" => out[i] = Ok(Settled::Already),
            "missing" => out[i] = Err(StoreError::NotFound("reservation")),
            other => {
                out[i] = Err(StoreError::Invalid(format!(
                    "settlement of reservation {} not applied: {other}",
                    batch[i].reservation
                )))
            }
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

/// One reservation of a batch: the item's index, the account, and its price.
pub(crate) struct ReserveRow {
    pub n: usize,
    pub account: i64,
    pub price: crate::billing::Price,
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
    let amounts = col(&|r| r.price.amount);
    let max = col(&|r| r.price.max_secs);
    let pm = col(&|r| r.price.tariff.per_minute);
    let first = col(&|r| r.price.tariff.first_secs);
    let inc = col(&|r| r.price.tariff.increment_secs);
    let min = col(&|r| r.price.tariff.minimum);
    let conn = col(&|r| r.price.tariff.connection);
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
