//! Accounts, the append-only ledger, credits with idempotency keys, and API keys.

use super::schema::{accounts, api_keys, cards, idempotency, ledger};
use super::{Result, Store, StoreError, in_tx, on_conn};
use crate::billing::AccountKind;
use diesel::prelude::*;

/// No balance may exceed this (units): far from i64 overflow whatever is credited.
pub const MAX_BALANCE: i64 = 1_000_000_000_000_000;

/// An account as an operator or a shop sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub kind: AccountKind,
    pub balance: i64,
    pub reserved: i64,
    /// Cards charged to this account (a guild): id and calls left on their quota.
    pub cards: Vec<(i64, i64)>,
}

impl Account {
    pub fn available(&self) -> i64 {
        self.balance - self.reserved
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct LedgerEntry {
    pub id: i64,
    pub account_id: i64,
    pub card_id: Option<i64>,
    pub kind: String,
    pub amount: i64,
    pub calls: i64,
    pub balance_after: i64,
    pub reserved_after: i64,
    pub cause: String,
    pub reference: Option<String>,
    pub created_ms: i64,
}

/// One entry to append, with the account's state after the change.
pub(crate) struct Entry<'a> {
    pub account: i64,
    pub card: Option<i64>,
    pub kind: &'static str,
    pub amount: i64,
    pub calls: i64,
    pub after: (i64, i64),
    pub cause: &'a str,
    pub reference: Option<&'a str>,
}

/// Append a ledger entry (inside the caller's transaction).
macro_rules! append {
    ($c:expr, $now:expr, $e:expr) => {{
        let e = $e;
        diesel::insert_into($crate::store::schema::ledger::table)
            .values((
                ledger::account_id.eq(e.account),
                ledger::card_id.eq(e.card),
                ledger::kind.eq(e.kind),
                ledger::amount.eq(e.amount),
                ledger::calls.eq(e.calls),
                ledger::balance_after.eq(e.after.0),
                ledger::reserved_after.eq(e.after.1),
                ledger::cause.eq(e.cause),
                ledger::reference.eq(e.reference),
                ledger::created_ms.eq($now),
            ))
            .returning(ledger::id)
            .get_result::<i64>($c)
    }};
}
pub(crate) use append;

/// Create an account holding `opening` (credited with `cause`, e.g. "signup bonus").
macro_rules! new_account {
    ($c:expr, $now:expr, $kind:expr, $opening:expr, $cause:expr) => {{
        let id: i64 = diesel::insert_into(accounts::table)
            .values((
                accounts::kind.eq($kind.as_str()),
                accounts::balance.eq($opening),
                accounts::created_ms.eq($now),
            ))
            .returning(accounts::id)
            .get_result($c)?;
        if $opening > 0 {
            append!(
                $c,
                $now,
                Entry {
                    account: id,
                    card: None,
                    kind: "credit",
                    amount: $opening,
                    calls: 0,
                    after: ($opening, 0),
                    cause: $cause,
                    reference: None,
                }
            )?;
        }
        id
    }};
}
pub(crate) use new_account;

/// A request made with an Idempotency-Key: its scope (what it is for), the key, and a hash
/// of the request body.
#[derive(Clone, Debug)]
pub struct Idempotent {
    pub scope: String,
    pub key: String,
    pub request_hash: String,
}

/// The outcome of an idempotent request: the stored answer is replayed on a retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub replayed: bool,
}

/// Look up a key inside a transaction: Some(answer) when it was used with the same request.
macro_rules! replay {
    ($c:expr, $idem:expr) => {{
        let row: Option<(String, i32, String)> = idempotency::table
            .filter(idempotency::scope.eq(&$idem.scope))
            .filter(idempotency::key.eq(&$idem.key))
            .select((
                idempotency::request_hash,
                idempotency::status,
                idempotency::response,
            ))
            .first($c)
            .optional()?;
        match row {
            Some((hash, _, _)) if hash != $idem.request_hash => {
                return Err(StoreError::IdempotencyMismatch);
            }
            Some((_, status, body)) => Some(Answer {
                status: status as u16,
                body,
                replayed: true,
            }),
            None => None,
        }
    }};
}
pub(crate) use replay;

macro_rules! remember {
    ($c:expr, $now:expr, $idem:expr, $status:expr, $body:expr) => {
        diesel::insert_into(idempotency::table)
            .values((
                idempotency::scope.eq(&$idem.scope),
                idempotency::key.eq(&$idem.key),
                idempotency::request_hash.eq(&$idem.request_hash),
                idempotency::status.eq(i32::from($status)),
                idempotency::response.eq(&$body),
                idempotency::created_ms.eq($now),
            ))
            .execute($c)
    };
}
pub(crate) use remember;

/// Two requests with the same new Idempotency-Key at once: the loser's insert of the key
/// fails (unique) and its transaction rolls back; run it again and it replays the
/// winner's answer (or is refused if its body differs).
pub(crate) fn replay_on_race(mut once: impl FnMut() -> Result<Answer>) -> Result<Answer> {
    match once() {
        Err(StoreError::Conflict(_)) => once(),
        other => other,
    }
}

/// What a credit did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credited {
    pub account: i64,
    pub amount: i64,
    pub balance: i64,
    pub entry: i64,
}

impl Store {
    pub fn account(&self, id: i64) -> Result<Account> {
        on_conn!(self, c => {
            let (kind, balance, reserved): (String, i64, i64) = accounts::table
                .find(id)
                .select((accounts::kind, accounts::balance, accounts::reserved))
                .first(c)
                .optional()?
                .ok_or(StoreError::NotFound("account"))?;
            let cards: Vec<(i64, i64, i64, i64)> = cards::table
                .inner_join(super::schema::issuers::table)
                .filter(super::schema::issuers::account_id.eq(id))
                .select((cards::id, cards::quota_total, cards::quota_used, cards::quota_reserved))
                .order(cards::id)
                .load(c)?;
            Ok(Account {
                id,
                kind: AccountKind::parse(&kind).ok_or(StoreError::Invalid(format!("account kind '{kind}'")))?,
                balance,
                reserved,
                cards: cards.into_iter().map(|(id, t, u, r)| (id, t - u - r)).collect(),
            })
        })
    }

    /// Ledger entries of an account, oldest first, after entry `after` (0 for the start).
    pub fn ledger(&self, account: i64, after: i64, limit: i64) -> Result<Vec<LedgerEntry>> {
        on_conn!(self, c => {
            let exists: Option<i64> = accounts::table.find(account).select(accounts::id).first(c).optional()?;
            if exists.is_none() {
                return Err(StoreError::NotFound("account"));
            }
            Ok(ledger::table
                .filter(ledger::account_id.eq(account))
                .filter(ledger::id.gt(after))
                .order(ledger::id)
                .limit(limit)
                .load::<LedgerEntry>(c)?)
        })
    }

    /// Credit `amount` to an account once per idempotency key; `render` makes the answer
    /// that is stored with the key and replayed to a retry.
    pub fn credit(
        &self,
        account: i64,
        amount: i64,
        cause: &str,
        idem: &Idempotent,
        render: impl Fn(&Credited) -> String,
    ) -> Result<Answer> {
        if amount <= 0 || amount > MAX_BALANCE {
            return Err(StoreError::Invalid("amount must be positive".into()));
        }
        // Two requests with the same new key at once: the loser's insert of the key fails
        // and rolls back; run it again and it replays the winner's answer.
        super::accounts::replay_on_race(|| {
            in_tx!(self, c => {
                if let Some(answer) = replay!(c, idem) {
                    return Ok(answer);
                }
                let after: Option<(i64, i64)> = diesel::update(
                    accounts::table
                        .filter(accounts::id.eq(account))
                        .filter(accounts::balance.le(MAX_BALANCE - amount)),
                )
                .set(accounts::balance.eq(accounts::balance + amount))
                .returning((accounts::balance, accounts::reserved))
                .get_result(c)
                .optional()?;
                let Some(after) = after else {
                    let exists: Option<i64> = accounts::table.find(account).select(accounts::id).first(c).optional()?;
                    return Err(match exists {
                        Some(_) => StoreError::Invalid(format!("the balance would exceed {MAX_BALANCE}")),
                        None => StoreError::NotFound("account"),
                    });
                };
                let entry = append!(c, self.clock.unix_ms(), Entry {
                    account,
                    card: None,
                    kind: "credit",
                    amount,
                    calls: 0,
                    after,
                    cause,
                    reference: Some(&idem.key),
                })?;
                let body = render(&Credited { account, amount, balance: after.0, entry });
                remember!(c, self.clock.unix_ms(), idem, 201u16, body)?;
                Ok(Answer { status: 201, body, replayed: false })
            })
        })
    }

    /// Store a new API key's hash; scopes are space-separated.
    pub fn create_api_key(&self, name: &str, key_hash: &str, scopes: &str) -> Result<i64> {
        on_conn!(self, c => {
            Ok(diesel::insert_into(api_keys::table)
                .values((
                    api_keys::name.eq(name),
                    api_keys::key_hash.eq(key_hash),
                    api_keys::scopes.eq(scopes),
                    api_keys::created_ms.eq(self.clock.unix_ms()),
                ))
                .returning(api_keys::id)
                .get_result::<i64>(c)?)
        })
    }

    /// The id and scopes of the key with this hash, if it exists.
    pub fn api_key_scopes(&self, key_hash: &str) -> Result<Option<(i64, String)>> {
        on_conn!(self, c => {
            Ok(api_keys::table
                .filter(api_keys::key_hash.eq(key_hash))
                .select((api_keys::id, api_keys::scopes))
                .first::<(i64, String)>(c)
                .optional()?)
        })
    }

    /// Sums that must agree for every account: credits − debits = balance, and
    /// reserves − releases − debits of calls = reserved. A list of accounts that disagree.
    pub fn audit(&self) -> Result<Vec<String>> {
        on_conn!(self, c => {
            let rows: Vec<(i64, i64, i64)> = accounts::table
                .select((accounts::id, accounts::balance, accounts::reserved))
                .load(c)?;
            let mut problems = Vec::new();
            for (id, balance, reserved) in rows {
                let entries: Vec<(String, i64, String)> = ledger::table
                    .filter(ledger::account_id.eq(id))
                    .select((ledger::kind, ledger::amount, ledger::cause))
                    .load(c)?;
                let sum = |k: &str| entries.iter().filter(|e| e.0 == k).map(|e| e.1).sum::<i64>();
                let (credit, debit, reserve, release) = (sum("credit"), sum("debit"), sum("reserve"), sum("release"));
                if credit - debit != balance {
                    problems.push(format!("account {id}: credits {credit} - debits {debit} != balance {balance}"));
                }
                if reserve - release - debit != reserved {
                    problems.push(format!("account {id}: reserves {reserve} - releases {release} - debits {debit} != reserved {reserved}"));
                }
            }
            Ok(problems)
        })
    }
}
