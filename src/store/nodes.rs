//! The nodes sharing one store: each switch's lease, renewed by its heartbeat; its
//! incarnations (each start is a new `epoch`); and what becomes of the calls of a node that
//! stopped. The node settles them itself when it starts again (`recover`); if it does not
//! come back, one survivor does once its lease has run out (`take_over`). The survivor's
//! claim is one conditional statement, so exactly one node takes a dead node over; the
//! claim fences the dead incarnation, whose heartbeats then fail (`Beat::Fenced`), and a
//! node cannot start again while a survivor is settling its calls (`Joined::Busy`).
//! Every settlement flips a reservation `open → settled` at most once, whoever settles.

use super::reservation::{Recovered, Settled};
use super::schema::{bookings, nodes, reservations};
use super::{Result, Store, in_tx, on_conn};
use crate::billing::Settlement;
use diesel::prelude::*;

/// What a heartbeat found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Beat {
    /// The lease is renewed.
    Alive,
    /// This incarnation may renew nothing: a survivor took its calls over (`by`), or a newer
    /// incarnation of the same node id started. It must take no more calls and stop.
    Fenced { by: Option<String> },
}

/// What a start of a node found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Joined {
    /// This incarnation's number: its heartbeats carry it.
    Epoch(i64),
    /// A survivor is settling the calls an earlier incarnation left open, until `until_ms`
    /// at the latest: join again after it.
    Busy { taker: String, until_ms: i64 },
}

/// A dead node a survivor took over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TakenOver {
    pub node: String,
    /// What its calls were billed up to.
    pub last_heartbeat_ms: i64,
    pub calls: Vec<Recovered>,
    /// Booked calls it was dialling (now `interrupted`) and had claimed (scheduled again).
    pub bookings_interrupted: usize,
    pub bookings_released: usize,
}

/// A node as an operator sees it.
#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct NodeRow {
    pub id: String,
    pub heartbeat_ms: i64,
    pub epoch: i64,
    pub fenced_ms: Option<i64>,
    pub taker: Option<String>,
    pub taken_calls: i64,
}

impl Store {
    /// A node starts: a new incarnation, its lease renewed from `now_ms`, any fence lifted.
    /// Refused (`Busy`) while a survivor is settling what an earlier incarnation left open.
    pub fn join(&self, node: &str, now_ms: i64) -> Result<Joined> {
        in_tx!(self, c => {
            // Conditional, so a survivor's claim and a start exclude each other.
            let n = diesel::update(
                nodes::table
                    .filter(nodes::id.eq(node))
                    .filter(nodes::taker_until_ms.is_null().or(nodes::taker_until_ms.le(now_ms))),
            )
            .set((
                nodes::epoch.eq(nodes::epoch + 1),
                nodes::heartbeat_ms.eq(now_ms),
                nodes::fenced_ms.eq(None::<i64>),
                nodes::taker_until_ms.eq(None::<i64>),
            ))
            .execute(c)?;
            let row: Option<(i64, Option<String>, Option<i64>)> = nodes::table
                .find(node)
                .select((nodes::epoch, nodes::taker, nodes::taker_until_ms))
                .first(c)
                .optional()?;
            match row {
                Some((epoch, ..)) if n == 1 => Ok(Joined::Epoch(epoch)),
                Some((_, taker, until)) => Ok(Joined::Busy {
                    taker: taker.unwrap_or_default(),
                    until_ms: until.unwrap_or(now_ms),
                }),
                None => {
                    diesel::insert_into(nodes::table)
                        .values((nodes::id.eq(node), nodes::heartbeat_ms.eq(now_ms), nodes::epoch.eq(1)))
                        .execute(c)?;
                    Ok(Joined::Epoch(1))
                }
            }
        })
    }

    /// The node's incarnation `epoch` is alive at `now_ms`: its lease is renewed, unless it
    /// has been fenced.
    pub fn heartbeat(&self, node: &str, epoch: i64, now_ms: i64) -> Result<Beat> {
        in_tx!(self, c => {
            let n = diesel::update(
                nodes::table
                    .filter(nodes::id.eq(node))
                    .filter(nodes::epoch.eq(epoch))
                    .filter(nodes::fenced_ms.is_null()),
            )
            .set(nodes::heartbeat_ms.eq(now_ms))
            .execute(c)?;
            if n == 1 {
                return Ok(Beat::Alive);
            }
            let taker: Option<Option<String>> = nodes::table
                .find(node)
                .select(nodes::taker)
                .first(c)
                .optional()?;
            match taker {
                Some(by) => Ok(Beat::Fenced { by }),
                None => {
                    diesel::insert_into(nodes::table)
                        .values((nodes::id.eq(node), nodes::heartbeat_ms.eq(now_ms), nodes::epoch.eq(epoch)))
                        .execute(c)?;
                    Ok(Beat::Alive)
                }
            }
        })
    }

    /// The nodes of this store, by id.
    pub fn nodes(&self) -> Result<Vec<NodeRow>> {
        on_conn!(self, c => {
            Ok(nodes::table
                .select((
                    nodes::id,
                    nodes::heartbeat_ms,
                    nodes::epoch,
                    nodes::fenced_ms,
                    nodes::taker,
                    nodes::taken_calls,
                ))
                .order(nodes::id)
                .load(c)?)
        })
    }

    /// How many other nodes share this store (any that ever joined): whether anyone could
    /// take this node's calls over if it were cut off.
    pub fn other_nodes(&self, me: &str) -> Result<i64> {
        on_conn!(self, c => {
            Ok(nodes::table
                .filter(nodes::id.ne(me))
                .count()
                .get_result(c)?)
        })
    }

    /// After a restart: settle what this node left open, billed up to its last heartbeat.
    pub fn recover(&self, node: &str) -> Result<Vec<Recovered>> {
        self.settle_left_open(
            node,
            None,
            "switch restarted: billed up to its last heartbeat",
        )
    }

    /// Run by every live node on its heartbeat: each other node whose lease ran out
    /// (`lease_ms` after its last heartbeat) and that left calls open or booked calls
    /// claimed is claimed by one survivor — this one if its conditional claim wins — which
    /// fences it, settles its open calls up to its last heartbeat with their records, and
    /// releases its booked calls. A claim holds for `lease_ms`; one whose taker died with
    /// it may be claimed again after that.
    pub fn take_over(&self, me: &str, now_ms: i64, lease_ms: i64) -> Result<Vec<TakenOver>> {
        let expired = now_ms - lease_ms;
        let candidates: Vec<(String, i64, i64)> = on_conn!(self, c => {
            nodes::table
                .filter(nodes::id.ne(me))
                .filter(nodes::heartbeat_ms.lt(expired))
                .filter(nodes::taker_until_ms.is_null().or(nodes::taker_until_ms.le(now_ms)))
                .select((nodes::id, nodes::epoch, nodes::heartbeat_ms))
                .order(nodes::id)
                .load(c)?
        });
        let mut out = Vec::new();
        for (dead, epoch, last_heartbeat_ms) in candidates {
            let work: i64 = on_conn!(self, c => {
                let open: i64 = reservations::table
                    .filter(reservations::node.eq(&dead))
                    .filter(reservations::state.eq("open"))
                    .count()
                    .get_result(c)?;
                let booked: i64 = bookings::table
                    .filter(bookings::claimed_by.eq(&dead))
                    .filter(bookings::state.eq_any(["claimed", "dialling"]))
                    .count()
                    .get_result(c)?;
                open + booked
            });
            if work == 0 {
                continue;
            }
            let pg = self.backend() == "postgres";
            let claimed = in_tx!(self, c => {
                if pg {
                    // Wait for the dead node's reservations in flight, and hold back new
                    // ones until the fence is committed (see the reservations trigger).
                    diesel::sql_query("SELECT pg_advisory_xact_lock(7242002, hashtext($1))")
                        .bind::<diesel::sql_types::Text, _>(&dead)
                        .execute(c)?;
                }
                Ok::<usize, super::StoreError>(diesel::update(
                    nodes::table
                        .filter(nodes::id.eq(&dead))
                        .filter(nodes::epoch.eq(epoch))
                        // The heartbeat read above is the one its calls are billed up to.
                        .filter(nodes::heartbeat_ms.eq(last_heartbeat_ms))
                        .filter(nodes::heartbeat_ms.lt(expired))
                        .filter(nodes::taker_until_ms.is_null().or(nodes::taker_until_ms.le(now_ms)))
                        // Still something to do: a survivor that finished a moment ago
                        // leaves nothing for the next one to claim.
                        .filter(
                            diesel::dsl::exists(
                                reservations::table
                                    .filter(reservations::node.eq(&dead))
                                    .filter(reservations::state.eq("open")),
                            )
                            .or(diesel::dsl::exists(
                                bookings::table
                                    .filter(bookings::claimed_by.eq(&dead))
                                    .filter(bookings::state.eq_any(["claimed", "dialling"])),
                            )),
                        ),
                )
                .set((
                    nodes::fenced_ms.eq(now_ms),
                    nodes::taker.eq(me),
                    nodes::taker_until_ms.eq(now_ms + lease_ms),
                ))
                .execute(c)?)
            })?;
            if claimed != 1 {
                continue; // another survivor won, or the node came back
            }
            let cause = format!(
                "switch {dead} stopped answering: settled by {me}, billed up to its last heartbeat"
            );
            // Everything the dead node left open: nothing can be newer than the claim (the
            // store refuses a fenced node's reservations, and the claim waited for those
            // in flight).
            let calls = self.settle_left_open(&dead, Some(last_heartbeat_ms), &cause)?;
            let (bookings_interrupted, bookings_released) = self.recover_bookings(&dead)?;
            let taken = calls.len() as i64;
            in_tx!(self, c => {
                diesel::update(nodes::table.filter(nodes::id.eq(&dead)).filter(nodes::taker.eq(me)))
                    .set((
                        nodes::taker_until_ms.eq(None::<i64>),
                        nodes::taken_calls.eq(nodes::taken_calls + taken),
                    ))
                    .execute(c)?;
                Ok::<(), super::StoreError>(())
            })?;
            out.push(TakenOver {
                node: dead,
                last_heartbeat_ms,
                calls,
                bookings_interrupted,
                bookings_released,
            });
        }
        Ok(out)
    }

    /// Settle `node`'s reservations still open, billing answered calls from their
    /// persisted answer time up to `billed_to` (the heartbeat a survivor's claim read), or
    /// else the node's last heartbeat. The legs of a call the switch placed
    /// (`fc-…/issuer`, `fc-…/visitor`) are settled together, each from its own answer,
    /// with one record for the call.
    fn settle_left_open(
        &self,
        node: &str,
        billed_to: Option<i64>,
        cause: &str,
    ) -> Result<Vec<Recovered>> {
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
            let hb: Option<i64> = match billed_to {
                Some(ms) => Some(ms),
                None => nodes::table.find(node).select(nodes::heartbeat_ms).first(c).optional()?,
            };
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
}
