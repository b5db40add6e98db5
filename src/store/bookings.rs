//! Calls booked for a set time (C11). The store is the truth about each booking's state,
//! so a booking fires once however many nodes share the database and however often they
//! restart:
//!
//! `scheduled` → `claimed` (one node, with a lease, in one statement) → `dialling`
//! (committed before the first INVITE) → `done` | `failed` | `scheduled` again (a retry
//! for busy or no answer). A claim whose lease ran out before `dialling` may be taken by
//! another node (nothing was dialled); a booking left `dialling` by a node that stopped
//! is `interrupted`, never dialled again. `claimed` → `missed` (too late), `refused` (no
//! money, a fence); `scheduled` → `cancelled`.

use super::schema::{booking_attempts, bookings};
use super::{Result, Store, StoreError, in_tx, on_conn};
use diesel::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, Queryable, QueryableByName)]
#[diesel(table_name = bookings)]
pub struct Booking {
    pub id: i64,
    pub serial: String,
    pub token: String,
    pub card_id: Option<i64>,
    pub member_id: Option<i64>,
    pub number: String,
    pub due_ms: i64,
    pub time_zone: String,
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub retry_secs: i64,
    pub claimed_by: Option<String>,
    pub lease_ms: Option<i64>,
    pub call_id: Option<String>,
    pub cause: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The booked call is recorded.
    pub record: bool,
}

impl Booking {
    /// Still to come: it can be moved or cancelled.
    pub fn open(&self) -> bool {
        self.state == "scheduled" && self.attempts == 0
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct Attempt {
    pub attempt: i64,
    pub call_id: String,
    pub cause: Option<String>,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct NewBooking {
    pub card_id: Option<i64>,
    pub member_id: Option<i64>,
    pub number: String,
    /// The dialled number as the switch reads it (for the per-number limit).
    pub due_ms: i64,
    pub time_zone: String,
    pub max_attempts: i64,
    pub retry_secs: i64,
    /// Record the call.
    pub record: bool,
}

/// Open bookings at most: per card (or member) and per number.
#[derive(Clone, Copy, Debug)]
pub struct BookingLimits {
    pub per_owner: i64,
    pub per_number: i64,
}

fn token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    format!("bk-{:016x}{:08x}", rng.next_u64(), rng.next_u32())
}

const OPEN: [&str; 3] = ["scheduled", "claimed", "dialling"];

impl Store {
    /// Book a call. Its serial counts the bookings made that day (UTC): `R-20261202-0042`.
    pub fn create_booking(&self, n: &NewBooking, limits: BookingLimits) -> Result<Booking> {
        let now = self.clock.unix_ms();
        let day = crate::cdr::stamp(now)
            .get(..10)
            .unwrap_or("")
            .replace('-', "");
        in_tx!(self, c => {
            let owner: i64 = match (n.card_id, n.member_id) {
                (Some(card), _) => bookings::table
                    .filter(bookings::card_id.eq(card))
                    .filter(bookings::state.eq_any(OPEN))
                    .count()
                    .get_result(c)?,
                (_, Some(member)) => bookings::table
                    .filter(bookings::member_id.eq(member))
                    .filter(bookings::state.eq_any(OPEN))
                    .count()
                    .get_result(c)?,
                _ => return Err(StoreError::Invalid("a booking is for a card or a member".into())),
            };
            if limits.per_owner > 0 && owner >= limits.per_owner {
                return Err(StoreError::Refused(crate::billing::Refusal::CardDailyLimit));
            }
            let same_number: i64 = bookings::table
                .filter(bookings::number.eq(&n.number))
                .filter(bookings::state.eq_any(OPEN))
                .count()
                .get_result(c)?;
            if limits.per_number > 0 && same_number >= limits.per_number {
                return Err(StoreError::Refused(crate::billing::Refusal::NumberDailyLimit));
            }
            let prefix = format!("R-{day}-");
            let today: i64 = bookings::table
                .filter(bookings::serial.like(format!("{prefix}%")))
                .count()
                .get_result(c)?;
            let serial = format!("{prefix}{:04}", today + 1);
            let id: i64 = diesel::insert_into(bookings::table)
                .values((
                    bookings::serial.eq(&serial),
                    bookings::token.eq(token()),
                    bookings::card_id.eq(n.card_id),
                    bookings::member_id.eq(n.member_id),
                    bookings::number.eq(&n.number),
                    bookings::due_ms.eq(n.due_ms),
                    bookings::time_zone.eq(&n.time_zone),
                    bookings::max_attempts.eq(n.max_attempts),
                    bookings::retry_secs.eq(n.retry_secs),
                    bookings::record.eq(n.record),
                    bookings::created_ms.eq(now),
                    bookings::updated_ms.eq(now),
                ))
                .returning(bookings::id)
                .get_result(c)?;
            Ok(bookings::table.find(id).first::<Booking>(c)?)
        })
    }

    pub fn booking(&self, token: &str) -> Result<Booking> {
        on_conn!(self, c => {
            bookings::table
                .filter(bookings::token.eq(token))
                .first::<Booking>(c)
                .optional()?
                .ok_or(StoreError::NotFound("booking"))
        })
    }

    /// A booking by its serial, for whoever also knows the number it calls (serials are
    /// meant to be read out; they are not secrets).
    pub fn booking_by_serial(&self, serial: &str, number: &str) -> Result<Booking> {
        on_conn!(self, c => {
            bookings::table
                .filter(bookings::serial.eq(serial))
                .filter(bookings::number.eq(number))
                .first::<Booking>(c)
                .optional()?
                .ok_or(StoreError::NotFound("booking"))
        })
    }

    /// A card's (or a member's) bookings, soonest first.
    pub fn bookings_of(&self, card: Option<i64>, member: Option<i64>) -> Result<Vec<Booking>> {
        on_conn!(self, c => {
            let mut q = bookings::table.into_boxed();
            if let Some(card) = card {
                q = q.filter(bookings::card_id.eq(card));
            }
            if let Some(member) = member {
                q = q.filter(bookings::member_id.eq(member));
            }
            Ok(q.order((bookings::due_ms.asc(), bookings::id.asc())).limit(1000).load::<Booking>(c)?)
        })
    }

    pub fn booking_attempts(&self, booking: i64) -> Result<Vec<Attempt>> {
        on_conn!(self, c => {
            Ok(booking_attempts::table
                .filter(booking_attempts::booking_id.eq(booking))
                .order(booking_attempts::attempt.asc())
                .select((booking_attempts::attempt, booking_attempts::call_id, booking_attempts::cause, booking_attempts::started_ms, booking_attempts::ended_ms))
                .load::<Attempt>(c)?)
        })
    }

    /// Move a booking that has not fired yet.
    pub fn move_booking(&self, token: &str, due_ms: i64) -> Result<Booking> {
        on_conn!(self, c => {
            let n = diesel::update(
                bookings::table
                    .filter(bookings::token.eq(token))
                    .filter(bookings::state.eq("scheduled"))
                    .filter(bookings::attempts.eq(0)),
            )
            .set((bookings::due_ms.eq(due_ms), bookings::updated_ms.eq(self.clock.unix_ms())))
            .execute(c)?;
            let b = bookings::table
                .filter(bookings::token.eq(token))
                .first::<Booking>(c)
                .optional()?
                .ok_or(StoreError::NotFound("booking"))?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("the booking is {} and can no longer be moved", b.state)));
            }
            Ok(b)
        })
    }

    /// Cancel a booking that has not fired yet.
    pub fn cancel_booking(&self, token: &str) -> Result<Booking> {
        on_conn!(self, c => {
            let n = diesel::update(
                bookings::table
                    .filter(bookings::token.eq(token))
                    .filter(bookings::state.eq("scheduled")),
            )
            .set((
                bookings::state.eq("cancelled"),
                bookings::cause.eq("cancelled"),
                bookings::updated_ms.eq(self.clock.unix_ms()),
            ))
            .execute(c)?;
            let b = bookings::table
                .filter(bookings::token.eq(token))
                .first::<Booking>(c)
                .optional()?
                .ok_or(StoreError::NotFound("booking"))?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("the booking is {} and can no longer be cancelled", b.state)));
            }
            Ok(b)
        })
    }

    /// When the next booking falls due (or a claim's lease runs out): what the scheduler
    /// sleeps until.
    pub fn next_due_ms(&self) -> Result<Option<i64>> {
        on_conn!(self, c => {
            let due: Option<i64> = bookings::table
                .filter(bookings::state.eq("scheduled"))
                .select(diesel::dsl::min(bookings::due_ms))
                .first(c)?;
            let lease: Option<i64> = bookings::table
                .filter(bookings::state.eq("claimed"))
                .select(diesel::dsl::min(bookings::lease_ms))
                .first::<Option<i64>>(c)?;
            Ok(match (due, lease) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            })
        })
    }

    /// Claim up to `limit` bookings due at `now_ms` for `node`, with a lease until
    /// `lease_until_ms`: one statement, so two nodes never claim the same one (PostgreSQL:
    /// `FOR UPDATE SKIP LOCKED`; SQLite: one writer). Claims whose lease ran out before
    /// they were dialled are taken again.
    pub fn claim_due(
        &self,
        node: &str,
        now_ms: i64,
        lease_until_ms: i64,
        limit: i64,
    ) -> Result<Vec<Booking>> {
        match &*self.pool {
            super::Pool::Pg(p) => {
                let mut c = p.get()?;
                use diesel::sql_types::{BigInt, Text};
                Ok(diesel::sql_query(
                    "UPDATE bookings SET state = 'claimed', claimed_by = $1, lease_ms = $2, updated_ms = $3 \
                     WHERE id IN (SELECT id FROM bookings \
                                  WHERE (state = 'scheduled' AND due_ms <= $3) OR (state = 'claimed' AND lease_ms < $3) \
                                  ORDER BY due_ms LIMIT $4 FOR UPDATE SKIP LOCKED) \
                     RETURNING *",
                )
                .bind::<Text, _>(node)
                .bind::<BigInt, _>(lease_until_ms)
                .bind::<BigInt, _>(now_ms)
                .bind::<BigInt, _>(limit)
                .load::<Booking>(&mut c)?)
            }
            super::Pool::Sqlite(_) => in_tx!(self, c => {
                let ids: Vec<i64> = bookings::table
                    .filter(
                        bookings::state.eq("scheduled").and(bookings::due_ms.le(now_ms))
                            .or(bookings::state.eq("claimed").and(bookings::lease_ms.lt(now_ms))),
                    )
                    .order(bookings::due_ms.asc())
                    .limit(limit)
                    .select(bookings::id)
                    .load(c)?;
                diesel::update(bookings::table.filter(bookings::id.eq_any(&ids)))
                    .set((
                        bookings::state.eq("claimed"),
                        bookings::claimed_by.eq(node),
                        bookings::lease_ms.eq(lease_until_ms),
                        bookings::updated_ms.eq(now_ms),
                    ))
                    .execute(c)?;
                Ok(bookings::table.filter(bookings::id.eq_any(&ids)).order(bookings::due_ms.asc()).load::<Booking>(c)?)
            }),
        }
    }

    /// About to dial: `node`'s claim becomes `dialling` (with the attempt's call id),
    /// committed before the INVITE. False when the claim is no longer this node's.
    pub fn start_dialling(&self, id: i64, node: &str, call_id: &str, now_ms: i64) -> Result<bool> {
        in_tx!(self, c => {
            let n = diesel::update(
                bookings::table
                    .find(id)
                    .filter(bookings::state.eq("claimed"))
                    .filter(bookings::claimed_by.eq(node)),
            )
            .set((
                bookings::state.eq("dialling"),
                bookings::attempts.eq(bookings::attempts + 1),
                bookings::call_id.eq(call_id),
                bookings::updated_ms.eq(now_ms),
            ))
            .execute(c)?;
            if n == 0 {
                return Ok(false);
            }
            let attempt: i64 = bookings::table.find(id).select(bookings::attempts).first(c)?;
            diesel::insert_into(booking_attempts::table)
                .values((
                    booking_attempts::booking_id.eq(id),
                    booking_attempts::attempt.eq(attempt),
                    booking_attempts::call_id.eq(call_id),
                    booking_attempts::started_ms.eq(now_ms),
                ))
                .execute(c)?;
            Ok(true)
        })
    }

    /// A claimed booking that will not be dialled: `missed`, `refused` (with why).
    pub fn end_claim(&self, id: i64, node: &str, state: &str, cause: &str) -> Result<()> {
        on_conn!(self, c => {
            diesel::update(
                bookings::table
                    .find(id)
                    .filter(bookings::state.eq("claimed"))
                    .filter(bookings::claimed_by.eq(node)),
            )
            .set((bookings::state.eq(state), bookings::cause.eq(cause), bookings::updated_ms.eq(self.clock.unix_ms())))
            .execute(c)?;
            Ok(())
        })
    }

    /// The dialled attempt ended with `cause`: the booking is `state` (`done`, `failed`,
    /// `refused`), or `scheduled` again at `retry_at_ms`.
    pub fn finish_attempt(
        &self,
        id: i64,
        call_id: &str,
        cause: &str,
        state: &str,
        retry_at_ms: Option<i64>,
    ) -> Result<()> {
        let now = self.clock.unix_ms();
        in_tx!(self, c => {
            diesel::update(
                booking_attempts::table
                    .filter(booking_attempts::booking_id.eq(id))
                    .filter(booking_attempts::call_id.eq(call_id)),
            )
            .set((booking_attempts::cause.eq(cause), booking_attempts::ended_ms.eq(now)))
            .execute(c)?;
            let target = bookings::table
                .find(id)
                .filter(bookings::state.eq("dialling"))
                .filter(bookings::call_id.eq(call_id));
            match retry_at_ms {
                Some(at) => diesel::update(target)
                    .set((
                        bookings::state.eq("scheduled"),
                        bookings::due_ms.eq(at),
                        bookings::cause.eq(cause),
                        bookings::claimed_by.eq(None::<String>),
                        bookings::lease_ms.eq(None::<i64>),
                        bookings::updated_ms.eq(now),
                    ))
                    .execute(c)?,
                None => diesel::update(target)
                    .set((bookings::state.eq(state), bookings::cause.eq(cause), bookings::updated_ms.eq(now)))
                    .execute(c)?,
            };
            Ok(())
        })
    }

    /// At a node's start: what it left `dialling` may have rung someone, so it is
    /// `interrupted` (never dialled again); what it had only claimed goes back to
    /// `scheduled`. How many of each.
    pub fn recover_bookings(&self, node: &str) -> Result<(usize, usize)> {
        let now = self.clock.unix_ms();
        in_tx!(self, c => {
            let interrupted = diesel::update(
                bookings::table
                    .filter(bookings::state.eq("dialling"))
                    .filter(bookings::claimed_by.eq(node)),
            )
            .set((
                bookings::state.eq("interrupted"),
                bookings::cause.eq("the switch stopped while the call was placed"),
                bookings::updated_ms.eq(now),
            ))
            .execute(c)?;
            let released = diesel::update(
                bookings::table
                    .filter(bookings::state.eq("claimed"))
                    .filter(bookings::claimed_by.eq(node)),
            )
            .set((
                bookings::state.eq("scheduled"),
                bookings::claimed_by.eq(None::<String>),
                bookings::lease_ms.eq(None::<i64>),
                bookings::updated_ms.eq(now),
            ))
            .execute(c)?;
            Ok((interrupted, released))
        })
    }
}
