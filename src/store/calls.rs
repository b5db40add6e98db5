//! Money in the call path, before the call rings: who pays, and the reservation (settling
//! it is `settle.rs`).
//!
//! The reservation is one conditional statement
//! (`UPDATE accounts SET reserved = reserved + a WHERE id = ? AND balance - reserved >= a`),
//! so any number of calls on one account, on any number of nodes sharing the database, can
//! never hold more than the balance. Settlement flips the reservation from `open` to
//! `settled` in the same transaction as the debit, so it happens at most once per call.

use super::accounts::{Entry, append};
use super::schema::{accounts, cards, issuers, ledger, members, reservations};
use super::{Result, Store, StoreError, in_tx, on_conn};
use crate::billing::{AccountKind, Authorization, Refusal, Tariff, Tariffs};
use crate::numbers::DestinationKind;
use diesel::prelude::*;

/// The account that pays for `$charge` and its kind (one query, inside the caller's
/// transaction); `UnknownAccount` when there is none.
macro_rules! payer_of {
    ($c:expr, $charge:expr) => {{
        let found: Option<(i64, String)> = match $charge {
            Charge::Account(a) => accounts::table
                .find(a)
                .select((accounts::id, accounts::kind))
                .first($c)
                .optional()?,
            Charge::Card(card) => cards::table
                .inner_join(issuers::table.inner_join(accounts::table))
                .filter(cards::id.eq(card))
                .select((accounts::id, accounts::kind))
                .first($c)
                .optional()?,
        };
        let (account, kind) = found.ok_or(StoreError::Refused(Refusal::UnknownAccount))?;
        let kind = AccountKind::parse(&kind)
            .ok_or_else(|| StoreError::Invalid(format!("account kind '{kind}'")))?;
        (account, kind)
    }};
}
pub(super) use payer_of;

/// Hold `$amount` on `$account` in one conditional statement: the account's (balance,
/// reserved) after it, or `None` when what is available no longer covers it (then
/// nothing changed). This statement is why concurrent calls can never overdraw.
macro_rules! hold {
    ($c:expr, $account:expr, $amount:expr) => {{
        let amount: i64 = $amount;
        let after: Option<(i64, i64)> = diesel::update(
            accounts::table
                .filter(accounts::id.eq($account))
                .filter((accounts::balance - accounts::reserved).ge(amount)),
        )
        .set(accounts::reserved.eq(accounts::reserved + amount))
        .returning((accounts::balance, accounts::reserved))
        .get_result($c)
        .optional()?;
        after
    }};
}
pub(super) use hold;

/// A reservation row: who holds what for which call, with the tariff it was priced at
/// (settlement uses it even if tariffs are reloaded meanwhile).
#[derive(Insertable)]
#[diesel(table_name = reservations)]
pub(super) struct NewReservation<'a> {
    call_id: &'a str,
    node: &'a str,
    account_id: i64,
    card_id: Option<i64>,
    number: &'a str,
    destination: &'static str,
    amount: i64,
    max_secs: i64,
    per_minute: i64,
    first_secs: i64,
    increment_secs: i64,
    minimum: i64,
    connection: i64,
    created_ms: i64,
}

impl<'a> NewReservation<'a> {
    /// `(account, card)` pays; `(amount, max_secs)` is held, priced at `tariff`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        call_id: &'a str,
        node: &'a str,
        (account_id, card_id): (i64, Option<i64>),
        number: &'a str,
        destination: DestinationKind,
        (amount, max_secs): (i64, i64),
        tariff: &Tariff,
        created_ms: i64,
    ) -> NewReservation<'a> {
        NewReservation {
            call_id,
            node,
            account_id,
            card_id,
            number,
            destination: destination.as_str(),
            amount,
            max_secs,
            per_minute: tariff.per_minute,
            first_secs: tariff.first_secs,
            increment_secs: tariff.increment_secs,
            minimum: tariff.minimum,
            connection: tariff.connection,
            created_ms,
        }
    }
}

pub use super::reservation::{Charge, Recovered, ReserveItem, Settled};

impl Store {
    /// SIP digest credentials of several members in one query: user → (account, HA1).
    pub fn sip_credentials_many(
        &self,
        users: &[String],
    ) -> Result<std::collections::HashMap<String, (i64, String)>> {
        if users.is_empty() {
            return Ok(Default::default());
        }
        on_conn!(self, c => {
            let rows: Vec<(String, i64, String)> = members::table
                .filter(members::sip_user.eq_any(users))
                .select((members::sip_user, members::account_id, members::sip_ha1))
                .load(c)?;
            Ok(rows.into_iter().map(|(u, a, h)| (u, (a, h))).collect())
        })
    }

    /// Reserve for several calls: a result each, in order. On PostgreSQL, calls charged to
    /// accounts take two statements for the whole batch (read the balances, then one
    /// `freecall_reserve` per row of an `unnest`), so the critical path's commits are
    /// shared; anything that does not fit (cards, a balance that moved) goes one by one.
    pub fn reserve_many(
        &self,
        node: &str,
        items: &[ReserveItem],
        tariffs: &Tariffs,
    ) -> Result<Vec<Result<Authorization>>> {
        let mut out: Vec<Option<Result<Authorization>>> = (0..items.len()).map(|_| None).collect();
        if let super::Pool::Pg(p) = &*self.pool {
            let mut guard = p.get()?;
            let c: &mut diesel::pg::PgConnection = &mut guard;
            let ids: Vec<i64> = items
                .iter()
                .filter_map(|i| match i.charge {
                    Charge::Account(a) => Some(a),
                    Charge::Card(_) => None,
                })
                .collect();
            let rows: Vec<(i64, String, i64, i64)> = accounts::table
                .filter(accounts::id.eq_any(&ids))
                .select((
                    accounts::id,
                    accounts::kind,
                    accounts::balance,
                    accounts::reserved,
                ))
                .load(c)?;
            let mut available: std::collections::HashMap<i64, (AccountKind, i64)> = rows
                .into_iter()
                .filter_map(|(id, k, b, r)| AccountKind::parse(&k).map(|k| (id, (k, b - r))))
                .collect();
            let mut batch = Vec::new();
            for (n, item) in items.iter().enumerate() {
                let Charge::Account(account) = item.charge else {
                    continue;
                };
                let Some((kind, avail)) = available.get_mut(&account) else {
                    out[n] = Some(Err(StoreError::Refused(Refusal::UnknownAccount)));
                    continue;
                };
                let price = match tariffs.price(*kind, item.destination, &item.number, *avail) {
                    Ok(p) => p,
                    Err(refusal) => {
                        out[n] = Some(Err(StoreError::Refused(refusal)));
                        continue;
                    }
                };
                // Later calls on the same account in this batch see what this one holds.
                *avail -= price.amount;
                batch.push(super::pg_fast::ReserveRow { n, account, price });
            }
            if !batch.is_empty() {
                match super::pg_fast::reserve_many(c, node, items, &batch, self.clock.unix_ms()) {
                    Ok(ids) => {
                        for (row, id) in batch.iter().zip(ids) {
                            if let Some(reservation) = id {
                                out[row.n] = Some(Ok(Authorization {
                                    reservation,
                                    call_id: items[row.n].call_id.clone(),
                                    account: row.account,
                                    max_secs: row.price.max_secs,
                                    limit_reason: row.price.limit_reason,
                                }));
                            }
                        }
                    }
                    Err(diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::ClosedConnection,
                        info,
                    )) => return Err(StoreError::Unavailable(info.message().to_string())),
                    // A failing row (a constraint) or a deadlock with a settlement fails the
                    // statement: every row goes one by one below, and only a bad one is
                    // refused.
                    Err(e) => tracing::debug!(error = %e, "batch reservation retried one by one"),
                }
            }
        }
        let mut results = Vec::with_capacity(items.len());
        for (n, item) in items.iter().enumerate() {
            results.push(match out[n].take() {
                Some(r) => r,
                None => match self.reserve(
                    node,
                    &item.call_id,
                    &item.number,
                    item.destination,
                    item.charge,
                    tariffs,
                ) {
                    Err(StoreError::Unavailable(e)) => return Err(StoreError::Unavailable(e)),
                    r => r,
                },
            });
        }
        Ok(results)
    }
}

/// PostgreSQL, an account pays: read the balance, then reserve in one statement (retried
/// when another call took part of the balance in between).
fn reserve_pg(
    c: &mut diesel::pg::PgConnection,
    node: &str,
    call_id: &str,
    (number, destination): (&str, DestinationKind),
    account: i64,
    tariffs: &Tariffs,
    now: i64,
) -> Result<Authorization> {
    let mut exhausted = Refusal::MileageExhausted;
    for _ in 0..MAX_RESERVE_ATTEMPTS {
        let row: Option<(String, i64, i64)> = accounts::table
            .find(account)
            .select((accounts::kind, accounts::balance, accounts::reserved))
            .first(c)
            .optional()?;
        let (kind, balance, reserved) = row.ok_or(StoreError::Refused(Refusal::UnknownAccount))?;
        let kind = AccountKind::parse(&kind)
            .ok_or_else(|| StoreError::Invalid(format!("account kind '{kind}'")))?;
        exhausted = kind.exhausted();
        let price = tariffs
            .price(kind, destination, number, balance - reserved)
            .map_err(StoreError::Refused)?;
        if let Some(reservation) = super::pg_fast::reserve_account(
            c,
            node,
            call_id,
            number,
            destination.as_str(),
            account,
            &price,
            now,
        )? {
            return Ok(Authorization {
                reservation,
                call_id: call_id.to_string(),
                account,
                max_secs: price.max_secs,
                limit_reason: price.limit_reason,
            });
        }
    }
    Err(StoreError::Refused(exhausted))
}

const MAX_RESERVE_ATTEMPTS: usize = 8;

impl Store {
    /// Reserve what the longest affordable call costs (at most `tariffs.max_call_secs`)
    /// and, for a card, one call of its quota. Refuses with the reason the caller hears.
    pub fn reserve(
        &self,
        node: &str,
        call_id: &str,
        number: &str,
        destination: DestinationKind,
        charge: Charge,
        tariffs: &Tariffs,
    ) -> Result<Authorization> {
        if let (super::Pool::Pg(p), Charge::Account(account)) = (&*self.pool, charge) {
            let mut guard = p.get()?;
            let c: &mut diesel::pg::PgConnection = &mut guard;
            return reserve_pg(
                c,
                node,
                call_id,
                (number, destination),
                account,
                tariffs,
                self.clock.unix_ms(),
            );
        }
        in_tx!(self, c => {
            // Who pays, and in what: one query inside the transaction.
            let (account, kind) = payer_of!(c, charge);
            let mut attempt = 0;
            let (price, after) = loop {
                attempt += 1;
                let (balance, reserved): (i64, i64) = accounts::table
                    .find(account)
                    .select((accounts::balance, accounts::reserved))
                    .first(c)?;
                let price = tariffs
                    .price(kind, destination, number, balance - reserved)
                    .map_err(StoreError::Refused)?;
                let after = hold!(c, account, price.amount);
                match after {
                    Some(after) => break (price, after),
                    // Another call took some of the balance between the read and the
                    // update: price again with what is left.
                    None if attempt < MAX_RESERVE_ATTEMPTS => continue,
                    None => return Err(StoreError::Refused(kind.exhausted())),
                }
            };
            let card = match charge {
                Charge::Card(card) => {
                    let took = diesel::update(
                        cards::table
                            .filter(cards::id.eq(card))
                            .filter((cards::quota_total - cards::quota_used - cards::quota_reserved).ge(1i64)),
                    )
                    .set(cards::quota_reserved.eq(cards::quota_reserved + 1))
                    .execute(c)?;
                    if took == 0 {
                        return Err(StoreError::Refused(Refusal::QuotaUsedUp));
                    }
                    Some(card)
                }
                Charge::Account(_) => None,
            };
            let id: i64 = diesel::insert_into(reservations::table)
                .values(NewReservation::new(
                    call_id, node, (account, card), number, destination,
                    (price.amount, price.max_secs), &price.tariff, self.clock.unix_ms(),
                ))
                .returning(reservations::id)
                .get_result(c)?;
            append!(c, self.clock.unix_ms(), Entry {
                account,
                card,
                kind: "reserve",
                amount: price.amount,
                calls: i64::from(card.is_some()),
                after,
                cause: "call",
                reference: Some(call_id),
            })?;
            Ok(Authorization {
                reservation: id,
                call_id: call_id.to_string(),
                account,
                max_secs: price.max_secs,
                limit_reason: price.limit_reason,
            })
        })
    }
}
