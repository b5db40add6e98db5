//! Settlement: a call's answer noted, its reservation settled exactly once (the debit and
//! the flip from `open` to `settled` in one transaction), its record completed. (What a node
//! left open when it stopped is settled in `nodes.rs`.)

use super::accounts::{Entry, append};
use super::schema::{accounts, cards, ledger, reservations};
use super::{Result, Store, StoreError, in_tx, on_conn};
use crate::billing::Settlement;
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

use super::reservation::{HELD_COLUMNS, HeldRow, Settled};

impl Store {
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
