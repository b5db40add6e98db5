//! Money for calls the switch places (a card's call-back, a member's web dial): one
//! transaction reserves for both dialled legs before the first one rings.
//!
//! Each leg gets its own reservation row (`fc-…/issuer` and `fc-…/visitor`, or
//! `fc-…/member` and `fc-…/dialled`), priced with the tariff of its own kind of number, so
//! each is billed from its own answer by the ordinary settlement (`calls.rs`), and crash
//! recovery bills each answered leg up to the last heartbeat. Together they hold what the
//! longest affordable call costs at the sum of both legs' rates. The card's quota is held
//! by the last leg only: it is used when that leg is answered, which is when the two
//! parties are bridged.
//!
//! The daily limits are counted inside the same transaction from the reservations
//! themselves, so they hold across nodes sharing one database.

use super::accounts::{Entry, append};
use super::calls::{Charge, NewReservation, hold, payer_of};
use super::schema::{accounts, cards, issuers, ledger, reservations};
use super::{Result, Store, StoreError, in_tx};
use crate::billing::tariff::max_secs_together;
use crate::billing::{AccountKind, Authorization, Refusal, Tariff, Tariffs};
use crate::numbers::DestinationKind;
use diesel::prelude::*;

/// One leg the switch will dial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedLeg {
    /// `issuer`, `visitor`, `member` or `dialled`: the suffix of the leg's reservation.
    pub role: &'static str,
    pub number: String,
    pub destination: DestinationKind,
    /// On-net (a registered softphone): costs nothing, needs no tariff.
    pub free: bool,
}

/// Ceilings over the last 24 hours, checked when a placed call is reserved (0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DailyLimits {
    /// Call-backs one card may take.
    pub per_card: i64,
    /// Call-backs to one visitor number, across all cards.
    pub per_number: i64,
    /// Call-backs one issuer's cards may take together.
    pub issuer_calls: i64,
    /// What one issuer may spend (debits, plus what is held now and would be held).
    pub issuer_spend: i64,
}

const DAY_MS: i64 = 24 * 3600 * 1000;
const MAX_ATTEMPTS: usize = 8;

impl Store {
    /// Reserve for a call the switch places: one `Authorization` per leg, in order, all
    /// with the same `max_secs`. Refuses with the reason the requester is told.
    pub fn reserve_placed(
        &self,
        node: &str,
        call_id: &str,
        charge: Charge,
        legs: &[PlacedLeg],
        tariffs: &Tariffs,
        limits: &DailyLimits,
    ) -> Result<Vec<Authorization>> {
        let cap = tariffs.max_call_secs;
        let now = self.clock.unix_ms();
        let since = now - DAY_MS;
        let Some(last) = legs.last() else {
            return Err(StoreError::Invalid("a placed call needs a leg".into()));
        };
        in_tx!(self, c => {
            let (account, kind) = payer_of!(c, charge);
            let card = match charge {
                Charge::Card(card) => Some(card),
                Charge::Account(_) => None,
            };
            if let Some(card) = card {
                let today: i64 = reservations::table
                    .filter(reservations::card_id.eq(card))
                    .filter(reservations::created_ms.ge(since))
                    .count()
                    .get_result(c)?;
                if limits.per_card > 0 && today >= limits.per_card {
                    return Err(StoreError::Refused(Refusal::CardDailyLimit));
                }
                let to_number: i64 = reservations::table
                    .filter(reservations::number.eq(&last.number))
                    .filter(reservations::created_ms.ge(since))
                    .filter(reservations::call_id.like("%/visitor"))
                    .count()
                    .get_result(c)?;
                if limits.per_number > 0 && to_number >= limits.per_number {
                    return Err(StoreError::Refused(Refusal::NumberDailyLimit));
                }
                let issuer_today: i64 = reservations::table
                    .filter(reservations::account_id.eq(account))
                    .filter(reservations::created_ms.ge(since))
                    .filter(reservations::call_id.like("%/visitor"))
                    .count()
                    .get_result(c)?;
                if limits.issuer_calls > 0 && issuer_today >= limits.issuer_calls {
                    return Err(StoreError::Refused(Refusal::IssuerDailyLimit));
                }
            }
            let mut priced: Vec<Tariff> = Vec::with_capacity(legs.len());
            for leg in legs {
                if leg.free {
                    priced.push(Tariff {
                        destination: leg.destination,
                        per_minute: 0,
                        first_secs: 1,
                        increment_secs: 1,
                        minimum: 0,
                        connection: 0,
                    });
                    continue;
                }
                priced.push(tariffs.tariff_for(kind, leg.destination, &leg.number).ok_or(StoreError::Refused(
                    match card {
                        Some(_) => Refusal::NumberNotAllowed,
                        None => Refusal::DestinationNotAllowed,
                    },
                ))?);
            }
            let spent: i64 = if card.is_some() && limits.issuer_spend > 0 {
                let debits: Vec<i64> = ledger::table
                    .filter(ledger::account_id.eq(account))
                    .filter(ledger::kind.eq("debit"))
                    .filter(ledger::created_ms.ge(since))
                    .select(ledger::amount)
                    .load(c)?;
                debits.iter().sum()
            } else {
                0
            };
            let mut attempt = 0;
            let (max_secs, amounts, after) = loop {
                attempt += 1;
                let (balance, reserved): (i64, i64) = accounts::table
                    .find(account)
                    .select((accounts::balance, accounts::reserved))
                    .first(c)?;
                let Some(max_secs) = max_secs_together(&priced, balance - reserved, cap) else {
                    return Err(StoreError::Refused(kind.exhausted()));
                };
                let amounts: Vec<i64> = priced.iter().map(|t| t.cost(max_secs)).collect();
                let total: i64 = amounts.iter().sum();
                if card.is_some()
                    && limits.issuer_spend > 0
                    && spent + reserved + total > limits.issuer_spend
                {
                    return Err(StoreError::Refused(Refusal::IssuerDailyLimit));
                }
                let after = hold!(c, account, total);
                match after {
                    Some(after) => break (max_secs, amounts, after),
                    // Another call took some of the balance between the read and the
                    // update: price again with what is left.
                    None if attempt < MAX_ATTEMPTS => continue,
                    None => return Err(StoreError::Refused(kind.exhausted())),
                }
            };
            if let Some(card) = card {
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
            }
            let total: i64 = amounts.iter().sum();
            // The ledger's entries in order, each with the account's state after it.
            let mut held = after.1 - total;
            let mut out = Vec::with_capacity(legs.len());
            for (n, ((leg, tariff), amount)) in legs.iter().zip(&priced).zip(&amounts).enumerate() {
                let leg_card = if n + 1 == legs.len() { card } else { None };
                let leg_call = format!("{call_id}/{}", leg.role);
                let id: i64 = diesel::insert_into(reservations::table)
                    .values(NewReservation::new(
                        &leg_call, node, (account, leg_card), &leg.number, leg.destination,
                        (*amount, max_secs), tariff, now,
                    ))
                    .returning(reservations::id)
                    .get_result(c)?;
                held += amount;
                append!(c, self.clock.unix_ms(), Entry {
                    account,
                    card: leg_card,
                    kind: "reserve",
                    amount: *amount,
                    calls: i64::from(leg_card.is_some()),
                    after: (after.0, held),
                    cause: "call",
                    reference: Some(&leg_call),
                })?;
                out.push(Authorization {
                    reservation: id,
                    call_id: leg_call,
                    account,
                    max_secs,
                    limit_reason: if max_secs >= cap {
                        "maximum call duration reached"
                    } else {
                        match kind {
                            AccountKind::Mileage => "mileage exhausted",
                            AccountKind::Guild => "guild exhausted",
                        }
                    },
                });
            }
            Ok(out)
        })
    }
}
