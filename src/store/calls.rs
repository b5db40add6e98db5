//! Money in the call path: reserve before the call rings, note the answer, settle once.
//!
//! The reservation is one conditional statement
//! (`UPDATE accounts SET reserved = reserved + a WHERE id = ? AND balance - reserved >= a`),
//! so any number of calls on one account, on any number of nodes sharing the database, can
//! never hold more than the balance. Settlement flips the reservation from `open` to
//! `settled` in the same transaction as the debit, so it happens at most once per call.

use super::accounts::{Entry, append};
use super::schema::{accounts, cards, issuers, ledger, members, nodes, reservations};
use super::{Result, Store, StoreError, in_tx, on_conn};
use crate::billing::{AccountKind, Authorization, Refusal, Settlement, Tariff, Tariffs};
use crate::numbers::DestinationKind;
use diesel::prelude::*;

/// The records of the calls of `batch` that this settlement settled, completed from their
/// reservations: who paid, billed time, cost, and each dialled leg's billed time and cost
/// (`rows`: every reservation's own result, by reservation id). (A call settled before — by
/// recovery, or a retry whose commit was not seen — already has its record.)
macro_rules! settled_records {
    ($c:expr, $batch:expr, $out:expr, $rows:expr) => {{
        let batch: &[Settlement] = $batch;
        let out: &[Result<Settled>] = $out;
        let rows: &std::collections::HashMap<i64, (i64, i64)> = $rows;
        let ids: Vec<i64> = batch.iter().map(|s| s.reservation).collect();
        let owners: Vec<(i64, i64, Option<i64>)> = reservations::table
            .filter(reservations::id.eq_any(&ids))
            .select((
                reservations::id,
                reservations::account_id,
                reservations::card_id,
            ))
            .load($c)?;
        let mut records = Vec::new();
        for (s, r) in batch.iter().zip(out) {
            if let (
                Some(rec),
                Ok(Settled::Done {
                    billed_secs, cost, ..
                }),
            ) = (&s.record, r)
            {
                let mut rec = (**rec).clone();
                rec.billed_secs = *billed_secs;
                rec.cost = *cost;
                for leg in &mut rec.legs {
                    if let Some(&(billed, cost)) = rows.get(&leg.reservation) {
                        leg.billed_secs = billed;
                        leg.cost = cost;
                    }
                }
                if let Some(&(_, account, card)) = owners.iter().find(|o| o.0 == s.reservation) {
                    rec.account_id = Some(account);
                    rec.card_id = card;
                }
                records.push(rec);
            }
        }
        records
    }};
}

/// A batch of settlements as rows of reservations: a call with several dialled legs is
/// one row per leg, settled like calls of their own and summed back (`combine`).
struct Rows {
    rows: Vec<Settlement>,
    /// For each settlement of the batch: where its rows start and how many there are.
    spans: Vec<(usize, usize)>,
}

/// Each settled reservation's (billed seconds, cost).
type ByRow = std::collections::HashMap<i64, (i64, i64)>;

impl Rows {
    fn of(batch: &[Settlement]) -> Rows {
        let mut rows = Vec::with_capacity(batch.len());
        let mut spans = Vec::with_capacity(batch.len());
        for s in batch {
            let start = rows.len();
            if s.legs.is_empty() {
                rows.push(s.clone());
            } else {
                rows.extend(s.per_reservation());
            }
            spans.push((start, rows.len() - start));
        }
        Rows { rows, spans }
    }

    /// Each settlement's result from its rows' results, and each settled row's (billed
    /// seconds, cost) by reservation.
    fn combine(&self, results: Vec<Result<Settled>>) -> (Vec<Result<Settled>>, ByRow) {
        let mut by_row = std::collections::HashMap::new();
        let mut results: Vec<Option<Result<Settled>>> = results.into_iter().map(Some).collect();
        let mut out = Vec::with_capacity(self.spans.len());
        for &(start, len) in &self.spans {
            let mut total: Option<(i64, i64, i64)> = None;
            let mut failed = None;
            for i in start..start + len {
                match results.get_mut(i).and_then(Option::take) {
                    Some(Ok(Settled::Done {
                        billed_secs,
                        cost,
                        released,
                    })) => {
                        by_row.insert(self.rows[i].reservation, (billed_secs, cost));
                        let t = total.get_or_insert((0, 0, 0));
                        t.0 = t.0.max(billed_secs);
                        t.1 += cost;
                        t.2 += released;
                    }
                    Some(Ok(Settled::Already)) => {}
                    Some(Err(e)) => failed = failed.or(Some(e)),
                    None => failed = failed.or(Some(StoreError::NotFound("reservation"))),
                }
            }
            out.push(match (failed, total) {
                (Some(e), _) => Err(e),
                (None, Some((billed_secs, cost, released))) => Ok(Settled::Done {
                    billed_secs,
                    cost,
                    released,
                }),
                (None, None) => Ok(Settled::Already),
            });
        }
        (out, by_row)
    }
}

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
use super::reservation::{HELD_COLUMNS, HeldRow};

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

    /// Persist the answer time: after a crash the call is billed from here up to the
    /// node's last heartbeat.
    pub fn mark_answered(&self, reservation: i64, answered_ms: i64) -> Result<()> {
        if let super::Pool::Pg(p) = &*self.pool {
            let mut guard = p.get()?;
            let c: &mut diesel::pg::PgConnection = &mut guard;
            diesel::update(
                reservations::table
                    .filter(reservations::id.eq(reservation))
                    .filter(reservations::state.eq("open")),
            )
            .set(reservations::answered_ms.eq(answered_ms))
            .execute(c)?;
            return Ok(());
        }
        in_tx!(self, c => {
            diesel::update(
                reservations::table
                    .filter(reservations::id.eq(reservation))
                    .filter(reservations::state.eq("open")),
            )
            .set(reservations::answered_ms.eq(answered_ms))
            .execute(c)?;
            Ok(())
        })
    }

    /// Debit the billed time and release the rest, once. A card call that was answered
    /// uses one call of the quota; an unanswered one gives it back.
    pub fn settle(&self, s: &Settlement) -> Result<Settled> {
        self.settle_many(std::slice::from_ref(s))?
            .pop()
            .unwrap_or(Err(StoreError::NotFound("reservation")))
    }

    /// Settle several calls in one transaction (one round trip on PostgreSQL): a result
    /// per settlement, in order. Only a database failure fails the whole batch (and then
    /// nothing of it was written). A call with several legs settles every leg's
    /// reservation, each at its own tariff from its own answer, all or none.
    pub fn settle_many(&self, batch: &[Settlement]) -> Result<Vec<Result<Settled>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let with_records = batch.iter().any(|s| s.record.is_some());
        let rows = Rows::of(batch);
        let now = self.clock.unix_ms();
        match &*self.pool {
            super::Pool::Pg(p) => {
                let mut guard = p.get()?;
                if !with_records {
                    let results = super::pg_fast::settle_many(&mut guard, &rows.rows, now)?;
                    return Ok(rows.combine(results).0);
                }
                let c: &mut diesel::pg::PgConnection = &mut guard;
                c.transaction(|c| {
                    let results = super::pg_fast::settle_many(c, &rows.rows, now)?;
                    let (out, by_row) = rows.combine(results);
                    let records = settled_records!(c, batch, &out, &by_row);
                    super::cdrs::insert_pg(c, &records.iter().collect::<Vec<_>>())?;
                    Ok(out)
                })
            }
            super::Pool::Sqlite(p) => {
                let mut guard = p.get()?;
                let _writer = self.sqlite_writer.lock().unwrap_or_else(|e| e.into_inner());
                let c: &mut diesel::sqlite::SqliteConnection = &mut guard;
                c.immediate_transaction(|c| {
                    let mut results = Vec::with_capacity(rows.rows.len());
                    for &(start, len) in &rows.spans {
                        // A savepoint per call: one that fails leaves nothing half-written.
                        let legs = &rows.rows[start..start + len];
                        match c.transaction(|c| {
                            legs.iter()
                                .map(|s| settle_sqlite(c, s, now))
                                .collect::<Result<Vec<Settled>>>()
                        }) {
                            Err(StoreError::Unavailable(e)) => {
                                return Err(StoreError::Unavailable(e));
                            }
                            Ok(done) => results.extend(done.into_iter().map(Ok)),
                            Err(e) => {
                                let text = e.to_string();
                                results.push(Err(e));
                                results.extend(
                                    (1..len).map(|_| Err(StoreError::Invalid(text.clone()))),
                                );
                            }
                        }
                    }
                    let (out, by_row) = rows.combine(results);
                    if with_records {
                        let records = settled_records!(c, batch, &out, &by_row);
                        super::cdrs::insert_sqlite(c, &records.iter().collect::<Vec<_>>())?;
                    }
                    Ok(out)
                })
            }
        }
    }

    /// Persist several answer times in one transaction (one statement on PostgreSQL).
    pub fn mark_answered_many(&self, batch: &[(i64, i64)]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        match &*self.pool {
            super::Pool::Pg(p) => {
                let mut guard = p.get()?;
                super::pg_fast::mark_answered_many(&mut guard, batch)
            }
            super::Pool::Sqlite(p) => {
                let mut guard = p.get()?;
                let _writer = self.sqlite_writer.lock().unwrap_or_else(|e| e.into_inner());
                let c: &mut diesel::sqlite::SqliteConnection = &mut guard;
                c.immediate_transaction(|c| {
                    for &(reservation, answered_ms) in batch {
                        diesel::update(
                            reservations::table
                                .filter(reservations::id.eq(reservation))
                                .filter(reservations::state.eq("open")),
                        )
                        .set(reservations::answered_ms.eq(answered_ms))
                        .execute(c)?;
                    }
                    Ok(())
                })
            }
        }
    }

    /// The node is alive at `now_ms`.
    pub fn heartbeat(&self, node: &str, now_ms: i64) -> Result<()> {
        in_tx!(self, c => {
            let n = diesel::update(nodes::table.find(node))
                .set(nodes::heartbeat_ms.eq(now_ms))
                .execute(c)?;
            if n == 0 {
                diesel::insert_into(nodes::table)
                    .values((nodes::id.eq(node), nodes::heartbeat_ms.eq(now_ms)))
                    .execute(c)?;
            }
            Ok(())
        })
    }

    /// After a restart: settle this node's open reservations, billing answered calls from
    /// their persisted answer time up to the node's last heartbeat. The legs of a call the
    /// switch placed (`fc-…/issuer`, `fc-…/visitor`) are settled together, each from its
    /// own answer, with one record for the call.
    pub fn recover(&self, node: &str) -> Result<Vec<Recovered>> {
        type Open = (i64, String, Option<i64>, i64, String, String, Option<i64>);
        let (open, heartbeat) = on_conn!(self, c => {
            let open: Vec<Open> = reservations::table
                .filter(reservations::node.eq(node))
                .filter(reservations::state.eq("open"))
                .select((
                    reservations::id,
                    reservations::call_id,
                    reservations::answered_ms,
                    reservations::created_ms,
                    reservations::number,
                    reservations::destination,
                    reservations::card_id,
                ))
                .order(reservations::id)
                .load(c)?;
            let hb: Option<i64> = nodes::table.find(node).select(nodes::heartbeat_ms).first(c).optional()?;
            (open, hb)
        });
        // Group the legs of one call: the record's call id is the part before '/'.
        let mut calls: Vec<(String, Vec<Open>)> = Vec::new();
        for row in open {
            let base = row.1.split('/').next().unwrap_or(&row.1).to_string();
            match calls.iter_mut().find(|(b, _)| *b == base) {
                Some((_, legs)) => legs.push(row),
                None => calls.push((base, vec![row])),
            }
        }
        let cause = "switch restarted: billed up to its last heartbeat";
        let mut done = Vec::new();
        for (base, mut legs) in calls {
            // The leg that carries the card (a call-back's visitor leg) settles the quota
            // and is the record's main reservation.
            legs.sort_by_key(|l| l.6.is_none());
            let answered_any = legs.iter().filter_map(|l| l.2).min();
            let created = legs.iter().map(|l| l.3).min().unwrap_or(0);
            // Never before the answer: a heartbeat older than the answer bills nothing beyond it.
            let ended_ms = heartbeat
                .unwrap_or(created)
                .max(legs.iter().filter_map(|l| l.2).max().unwrap_or(i64::MIN));
            let main = &legs[0];
            let placed = legs.len() > 1;
            // The record is rebuilt from what the reservations kept; the caller's number,
            // the trunk and media were only in the lost process.
            let record = crate::cdr::CallRecord {
                call_id: base.clone(),
                node: node.to_string(),
                callee: main.4.clone(),
                caller: if placed {
                    legs[1].4.clone()
                } else {
                    String::new()
                },
                destination: main.5.clone(),
                setup_ms: created,
                answered_ms: if placed { main.2 } else { answered_any },
                ended_ms,
                code: if main.2.is_some() { 200 } else { 503 },
                cause: cause.into(),
                ended_by: crate::cdr::BY_SWITCH.into(),
                legs: if placed {
                    legs.iter()
                        .rev()
                        .map(|l| crate::cdr::RecordLeg {
                            role: l.1.split('/').nth(1).unwrap_or("leg").to_string(),
                            number: l.4.clone(),
                            destination: l.5.clone(),
                            answered_ms: l.2,
                            ended_ms,
                            reservation: l.0,
                            ..Default::default()
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                ..Default::default()
            };
            let s = Settlement {
                reservation: main.0,
                call_id: main.1.clone(),
                answered_ms: main.2,
                ended_ms,
                cause: cause.into(),
                record: Some(Box::new(record)),
                legs: legs[1..]
                    .iter()
                    .map(|l| crate::billing::LegSettlement {
                        reservation: l.0,
                        call_id: l.1.clone(),
                        answered_ms: l.2,
                        ended_ms: None,
                    })
                    .collect(),
            };
            if let Settled::Done {
                billed_secs, cost, ..
            } = self.settle(&s)?
            {
                done.push(Recovered {
                    call_id: base,
                    billed_secs,
                    cost,
                });
            }
        }
        Ok(done)
    }

    /// The balance held by open reservations (all nodes).
    pub fn reserved_total(&self) -> Result<i64> {
        on_conn!(self, c => {
            // As many rows as calls in progress: summed here, the same on both backends.
            let held: Vec<i64> = reservations::table
                .filter(reservations::state.eq("open"))
                .select(reservations::amount)
                .load(c)?;
            Ok(held.iter().sum())
        })
    }

    /// Reservations still open (all nodes): what an operator checks after an incident.
    pub fn open_reservations(&self) -> Result<i64> {
        on_conn!(self, c => {
            Ok(reservations::table
                .filter(reservations::state.eq("open"))
                .count()
                .get_result::<i64>(c)?)
        })
    }

    /// Debits of a call (tests and audits: a call must have at most one).
    pub fn debits_of_call(&self, call_id: &str) -> Result<Vec<i64>> {
        on_conn!(self, c => {
            Ok(ledger::table
                .filter(ledger::reference.eq(call_id))
                .filter(ledger::kind.eq("debit"))
                .select(ledger::amount)
                .load::<i64>(c)?)
        })
    }
}

/// Settle one call on SQLite (inside the caller's transaction): flip it open → settled
/// and read what it holds in one statement (a second settlement of the same call finds
/// nothing to flip), compute the posting with `Held::settle`, apply it.
fn settle_sqlite(
    c: &mut diesel::sqlite::SqliteConnection,
    s: &Settlement,
    now: i64,
) -> Result<Settled> {
    let row: Option<HeldRow> = diesel::update(
        reservations::table
            .filter(reservations::id.eq(s.reservation))
            .filter(reservations::state.eq("open")),
    )
    .set((
        reservations::state.eq("settled"),
        reservations::answered_ms.eq(s.answered_ms),
        reservations::ended_ms.eq(s.ended_ms),
        reservations::cause.eq(&s.cause),
    ))
    .returning(HELD_COLUMNS)
    .get_result(c)
    .optional()?;
    let Some(row) = row else {
        let exists: Option<i64> = reservations::table
            .find(s.reservation)
            .select(reservations::id)
            .first(c)
            .optional()?;
        return match exists {
            Some(_) => Ok(Settled::Already),
            None => Err(StoreError::NotFound("reservation")),
        };
    };
    let p = row.held().settle(s.talk_secs(), s.answered_ms.is_some());
    diesel::update(reservations::table.find(s.reservation))
        .set((
            reservations::billed_secs.eq(p.billed_secs),
            reservations::cost.eq(p.cost),
        ))
        .execute(c)?;
    let (account, card, amount) = (row.account_id, row.card_id, row.amount);
    let (mut balance, mut reserved): (i64, i64) = diesel::update(accounts::table.find(account))
        .set((
            accounts::balance.eq(accounts::balance - p.cost),
            accounts::reserved.eq(accounts::reserved - amount),
        ))
        .returning((accounts::balance, accounts::reserved))
        .get_result(c)?;
    if let Some(card) = card {
        diesel::update(cards::table.find(card))
            .set((
                cards::quota_reserved.eq(cards::quota_reserved - 1),
                cards::quota_used.eq(cards::quota_used + p.quota_used),
            ))
            .execute(c)?;
    }
    // Entries in order: the debit out of the held amount, then the release of the
    // rest, each with the account's state after it.
    balance += p.cost;
    reserved += amount;
    if p.debit {
        balance -= p.cost;
        reserved -= p.cost;
        append!(
            c,
            now,
            Entry {
                account,
                card,
                kind: "debit",
                amount: p.cost,
                calls: p.debit_calls,
                after: (balance, reserved),
                cause: "call",
                reference: Some(&s.call_id),
            }
        )?;
    }
    reserved -= p.released;
    append!(
        c,
        now,
        Entry {
            account,
            card,
            kind: "release",
            amount: p.released,
            calls: p.release_calls,
            after: (balance, reserved),
            cause: "call",
            reference: Some(&s.call_id),
        }
    )?;
    Ok(Settled::Done {
        billed_secs: p.billed_secs,
        cost: p.cost,
        released: p.released,
    })
}
