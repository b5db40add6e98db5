//! Where members' softphones are: SIP registrations (RFC 3261 section 10) in the shared
//! store, so every node can reach a phone that registered with any of them.
//!
//! A binding is a member's Contact URI, the address its REGISTER came from (`source`,
//! where the switch sends: never to an address the Contact merely names) and when it
//! expires. Several contacts per member; an expired one is never returned.

use super::schema::registrations;
use super::{Result, Store, StoreError, in_tx, on_conn};
use diesel::prelude::*;

/// The user's live bindings, newest first (expanded for each connection type).
macro_rules! live_query {
    ($c:expr, $user:expr, $now:expr) => {{
        let rows: Vec<(String, String, i64)> = registrations::table
            .filter(registrations::sip_user.eq($user))
            .filter(registrations::expires_ms.gt($now))
            .order(registrations::updated_ms.desc())
            .select((
                registrations::contact,
                registrations::source,
                registrations::expires_ms,
            ))
            .load($c)?;
        Ok(rows
            .into_iter()
            .map(|(contact, source, expires_ms)| Binding {
                contact,
                source,
                expires_ms,
            })
            .collect())
    }};
}

pub use crate::registrar::Binding;

/// A REGISTER's changes, after authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub user: String,
    /// (Contact URI, seconds; 0 removes it).
    pub contacts: Vec<(String, u32)>,
    /// `Contact: *` with `Expires: 0`: remove every binding of the user.
    pub remove_all: bool,
    pub source: String,
    pub node: String,
    pub call_id: String,
    pub cseq: i64,
    /// A new contact beyond this many live ones is refused (the whole REGISTER, nothing
    /// changed): `StoreError::Invalid`.
    pub max_bindings: usize,
}

/// Why a REGISTER with one contact too many changed nothing.
pub const TOO_MANY_CONTACTS: &str = "too many registered contacts";

impl Store {
    /// Apply a REGISTER and return the user's bindings after it.
    pub fn register(&self, r: &Registration, now_ms: i64) -> Result<Vec<Binding>> {
        in_tx!(self, c => {
            if r.remove_all {
                diesel::delete(registrations::table.filter(registrations::sip_user.eq(&r.user)))
                    .execute(c)?;
            }
            for (contact, secs) in &r.contacts {
                let existing = registrations::table
                    .filter(registrations::sip_user.eq(&r.user))
                    .filter(registrations::contact.eq(contact));
                if *secs == 0 {
                    diesel::delete(existing).execute(c)?;
                    continue;
                }
                let expires_ms = now_ms + i64::from(*secs) * 1000;
                let updated = diesel::update(existing)
                    .set((
                        registrations::source.eq(&r.source),
                        registrations::node.eq(&r.node),
                        registrations::call_id.eq(&r.call_id),
                        registrations::cseq.eq(r.cseq),
                        registrations::expires_ms.eq(expires_ms),
                        registrations::updated_ms.eq(now_ms),
                    ))
                    .execute(c)?;
                if updated == 0 {
                    let live: i64 = registrations::table
                        .filter(registrations::sip_user.eq(&r.user))
                        .filter(registrations::expires_ms.gt(now_ms))
                        .count()
                        .get_result(c)?;
                    if live >= r.max_bindings as i64 {
                        return Err(StoreError::Invalid(TOO_MANY_CONTACTS.into()));
                    }
                    diesel::insert_into(registrations::table)
                        .values((
                            registrations::sip_user.eq(&r.user),
                            registrations::contact.eq(contact),
                            registrations::source.eq(&r.source),
                            registrations::node.eq(&r.node),
                            registrations::call_id.eq(&r.call_id),
                            registrations::cseq.eq(r.cseq),
                            registrations::expires_ms.eq(expires_ms),
                            registrations::updated_ms.eq(now_ms),
                        ))
                        .execute(c)?;
                }
            }
            // What has expired goes (it would never be returned anyway).
            diesel::delete(
                registrations::table
                    .filter(registrations::sip_user.eq(&r.user))
                    .filter(registrations::expires_ms.le(now_ms)),
            )
            .execute(c)?;
            live_query!(c, &r.user, now_ms)
        })
    }

    /// The user's bindings that have not expired, newest first.
    pub fn bindings(&self, user: &str, now_ms: i64) -> Result<Vec<Binding>> {
        on_conn!(self, c => live_query!(c, user, now_ms))
    }
}
