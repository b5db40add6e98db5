//! PostgreSQL: the call path's writes as one call each of a server-side function
//! (`freecall_reserve`, `freecall_settle`, in `sql/postgres/…_call_functions`).
//!
//! Over a network every statement is a round trip and a transaction adds two more; a
//! long ad-hoc statement is also planned anew each time. A function call is one round
//! trip, atomic, and its inner statements' plans are cached per connection. This cuts a
//! call's database round trips from about eighteen to five. The arithmetic of settlement
//! is done in SQL there and in `Tariff` for SQLite; the store tests run the same cases on
//! both backends and must agree.

use super::calls::Settled;
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
struct SettleRow {
    #[diesel(sql_type = Text)]
    outcome: String,
    #[diesel(sql_type = BigInt)]
    billed: i64,
    #[diesel(sql_type = BigInt)]
    cost: i64,
    #[diesel(sql_type = BigInt)]
    released: i64,
}

/// Settle in one call of `freecall_settle` (sql/postgres/…_call_functions).
pub(crate) fn settle(c: &mut PgConnection, s: &Settlement, now_ms: i64) -> Result<Settled> {
    let row: SettleRow = diesel::sql_query(
        "SELECT outcome, billed, cost, released FROM freecall_settle($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind::<BigInt, _>(s.reservation)
    .bind::<BigInt, _>(s.talk_secs())
    .bind::<Nullable<BigInt>, _>(s.answered_ms)
    .bind::<BigInt, _>(s.ended_ms)
    .bind::<Text, _>(&s.cause)
    .bind::<Text, _>(&s.call_id)
    .bind::<BigInt, _>(now_ms)
    .get_result(c)?;
    match row.outcome.as_str() {
        "missing" => Err(StoreError::NotFound("reservation")),
        "already" => Ok(Settled::Already),
        _ => Ok(Settled::Done {
            billed_secs: row.billed,
            cost: row.cost,
            released: row.released,
        }),
    }
}
