//! What the call path's store operations take and give: who pays (`Charge`), one call of
//! a batch to reserve for (`ReserveItem`), what settling did (`Settled`) and what recovery
//! settled (`Recovered`). Shared by `calls.rs` (both backends) and `pg_fast.rs`
//! (PostgreSQL's server-side functions), so neither needs the other's types: `pg_fast` is a
//! leaf that `calls` uses.

use crate::numbers::DestinationKind;

/// Who pays, after the payer was resolved (and a member authenticated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charge {
    Account(i64),
    Card(i64),
}

/// What settlement did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    Done {
        billed_secs: i64,
        cost: i64,
        released: i64,
    },
    /// The reservation was settled before (a retry, or recovery got there first).
    Already,
}

/// An open reservation being settled after a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    pub call_id: String,
    pub billed_secs: i64,
    pub cost: i64,
}

/// One call to reserve for, in a batch.
#[derive(Clone, Debug)]
pub struct ReserveItem {
    pub call_id: String,
    pub number: String,
    pub destination: DestinationKind,
    pub charge: Charge,
}

/// A reservation row as settlement reads it: whether it is still open, and what it holds.
#[derive(Clone, Debug, PartialEq, Eq, diesel::Queryable)]
pub struct HeldRow {
    pub id: i64,
    pub state: String,
    pub account_id: i64,
    pub card_id: Option<i64>,
    pub amount: i64,
    pub max_secs: i64,
    pub per_minute: i64,
    pub first_secs: i64,
    pub increment_secs: i64,
    pub minimum: i64,
    pub connection: i64,
}

/// The columns of `HeldRow`, in order.
pub const HELD_COLUMNS: (
    super::schema::reservations::id,
    super::schema::reservations::state,
    super::schema::reservations::account_id,
    super::schema::reservations::card_id,
    super::schema::reservations::amount,
    super::schema::reservations::max_secs,
    super::schema::reservations::per_minute,
    super::schema::reservations::first_secs,
    super::schema::reservations::increment_secs,
    super::schema::reservations::minimum,
    super::schema::reservations::connection,
) = {
    use super::schema::reservations::*;
    (
        id,
        state,
        account_id,
        card_id,
        amount,
        max_secs,
        per_minute,
        first_secs,
        increment_secs,
        minimum,
        connection,
    )
};

impl HeldRow {
    /// What settlement computes from (`billing::Held::settle`): the tariff the call was
    /// priced with, stored in the row, whatever tariffs were reloaded since.
    pub fn held(&self) -> crate::billing::Held {
        crate::billing::Held {
            amount: self.amount,
            max_secs: self.max_secs,
            tariff: crate::billing::Tariff {
                destination: DestinationKind::Other,
                per_minute: self.per_minute,
                first_secs: self.first_secs,
                increment_secs: self.increment_secs,
                minimum: self.minimum,
                connection: self.connection,
            },
            card: self.card_id.is_some(),
        }
    }
}
