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
