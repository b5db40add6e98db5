//! A member's phone book (C13): names and numbers to place calls to.

use super::schema::phonebook;
use super::{Result, Store, StoreError, on_conn};
use diesel::prelude::*;

/// Entries a member may keep.
pub const MAX_ENTRIES: i64 = 500;

#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct Entry {
    pub id: i64,
    pub member_id: i64,
    pub name: String,
    pub number: String,
    pub created_ms: i64,
}

impl Store {
    /// The member's entries by name.
    pub fn phonebook(&self, member_id: i64) -> Result<Vec<Entry>> {
        on_conn!(self, c => {
            Ok(phonebook::table
                .filter(phonebook::member_id.eq(member_id))
                .order((phonebook::name.asc(), phonebook::id.asc()))
                .load::<Entry>(c)?)
        })
    }

    pub fn phonebook_entry(&self, member_id: i64, id: i64) -> Result<Entry> {
        on_conn!(self, c => {
            phonebook::table
                .find(id)
                .filter(phonebook::member_id.eq(member_id))
                .first::<Entry>(c)
                .optional()?
                .ok_or(StoreError::NotFound("phone book entry"))
        })
    }

    pub fn add_phonebook_entry(&self, member_id: i64, name: &str, number: &str) -> Result<Entry> {
        on_conn!(self, c => {
            let count: i64 = phonebook::table
                .filter(phonebook::member_id.eq(member_id))
                .count()
                .get_result(c)?;
            if count >= MAX_ENTRIES {
                return Err(StoreError::Invalid(format!("a phone book holds at most {MAX_ENTRIES} entries")));
            }
            let id: i64 = diesel::insert_into(phonebook::table)
                .values((
                    phonebook::member_id.eq(member_id),
                    phonebook::name.eq(name),
                    phonebook::number.eq(number),
                    phonebook::created_ms.eq(self.clock.unix_ms()),
                ))
                .returning(phonebook::id)
                .get_result(c)?;
            Ok(phonebook::table.find(id).first::<Entry>(c)?)
        })
    }

    pub fn update_phonebook_entry(
        &self,
        member_id: i64,
        id: i64,
        name: &str,
        number: &str,
    ) -> Result<Entry> {
        on_conn!(self, c => {
            let n = diesel::update(phonebook::table.find(id).filter(phonebook::member_id.eq(member_id)))
                .set((phonebook::name.eq(name), phonebook::number.eq(number)))
                .execute(c)?;
            if n == 0 {
                return Err(StoreError::NotFound("phone book entry"));
            }
            Ok(phonebook::table.find(id).first::<Entry>(c)?)
        })
    }

    pub fn delete_phonebook_entry(&self, member_id: i64, id: i64) -> Result<()> {
        on_conn!(self, c => {
            let n = diesel::delete(phonebook::table.find(id).filter(phonebook::member_id.eq(member_id)))
                .execute(c)?;
            if n == 0 { Err(StoreError::NotFound("phone book entry")) } else { Ok(()) }
        })
    }
}
