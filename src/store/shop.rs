//! The web shop's side: members (M1, M2), products (M3), purchases that credit mileage (M4).

use super::accounts::{Answer, Entry, Idempotent, append, new_account, remember, replay};
use super::schema::{accounts, idempotency, ledger, members, products, sale_items, sales};
use super::{Result, Store, StoreError, in_tx, on_conn};
use crate::billing::AccountKind;
use diesel::prelude::*;

/// A signup, with the password already hashed and the SIP digest HA1 computed.
#[derive(Clone, Debug)]
pub struct NewMember {
    pub login: String,
    pub password_hash: String,
    pub name: String,
    pub address: String,
    pub job: String,
    pub phone: String,
    pub email: String,
    pub sip_ha1: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct Member {
    pub id: i64,
    pub login: String,
    pub name: String,
    pub address: String,
    pub job: String,
    pub phone: String,
    pub email: String,
    pub sip_user: String,
    pub account_id: i64,
    pub created_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub spec: String,
    pub image_url: String,
    pub features: String,
    pub price: i64,
    pub supplier: String,
    pub mileage_award: i64,
    pub created_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Insertable)]
#[diesel(table_name = products)]
pub struct NewProduct {
    pub name: String,
    pub kind: String,
    pub spec: String,
    pub image_url: String,
    pub features: String,
    pub price: i64,
    pub supplier: String,
    pub mileage_award: i64,
    pub created_ms: i64,
}

/// A sales record (M4): what was bought and the mileage it earned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sale {
    pub id: i64,
    pub member_id: i64,
    pub account_id: i64,
    /// (product, quantity, unit price, mileage)
    pub items: Vec<(i64, i64, i64, i64)>,
    pub total_price: i64,
    pub mileage: i64,
    pub balance: i64,
    pub created_ms: i64,
}

macro_rules! member_columns {
    () => {
        (
            members::id,
            members::login,
            members::name,
            members::address,
            members::job,
            members::phone,
            members::email,
            members::sip_user,
            members::account_id,
            members::created_ms,
        )
    };
}

impl Store {
    /// Sign a member up: a mileage account opened with `bonus` (M1).
    pub fn create_member(&self, m: &NewMember, bonus: i64) -> Result<Member> {
        in_tx!(self, c => {
            let taken: Option<i64> = members::table
                .filter(members::login.eq(&m.login))
                .select(members::id)
                .first(c)
                .optional()?;
            if taken.is_some() {
                return Err(StoreError::Conflict(format!("login '{}' is taken", m.login)));
            }
            let account = new_account!(c, self.clock.unix_ms(), AccountKind::Mileage, bonus, "signup bonus");
            let id: i64 = diesel::insert_into(members::table)
                .values((
                    members::login.eq(&m.login),
                    members::password_hash.eq(&m.password_hash),
                    members::name.eq(&m.name),
                    members::address.eq(&m.address),
                    members::job.eq(&m.job),
                    members::phone.eq(&m.phone),
                    members::email.eq(&m.email),
                    members::sip_user.eq(&m.login),
                    members::sip_ha1.eq(&m.sip_ha1),
                    members::account_id.eq(account),
                    members::created_ms.eq(self.clock.unix_ms()),
                ))
                .returning(members::id)
                .get_result(c)?;
            Ok(members::table.find(id).select(member_columns!()).first::<Member>(c)?)
        })
    }

    pub fn member(&self, id: i64) -> Result<Member> {
        on_conn!(self, c => {
            members::table
                .find(id)
                .select(member_columns!())
                .first::<Member>(c)
                .optional()?
                .ok_or(StoreError::NotFound("member"))
        })
    }

    /// A member by login, with the password hash to check (web login).
    pub fn member_login(&self, login: &str) -> Result<Option<(Member, String)>> {
        on_conn!(self, c => {
            let row: Option<(i64, String)> = members::table
                .filter(members::login.eq(login))
                .select((members::id, members::password_hash))
                .first(c)
                .optional()?;
            match row {
                Some((id, hash)) => Ok(Some((
                    members::table.find(id).select(member_columns!()).first::<Member>(c)?,
                    hash,
                ))),
                None => Ok(None),
            }
        })
    }

    /// A new password: its Argon2id hash and the SIP digest HA1 change together, so the
    /// member's softphone takes the new password too.
    pub fn set_member_password(&self, id: i64, password_hash: &str, sip_ha1: &str) -> Result<()> {
        on_conn!(self, c => {
            diesel::update(members::table.find(id))
                .set((members::password_hash.eq(password_hash), members::sip_ha1.eq(sip_ha1)))
                .execute(c)?;
            Ok(())
        })
    }

    /// A member's purchases, newest first: (sale id, total price, mileage, when).
    pub fn sales_of(&self, member_id: i64, limit: i64) -> Result<Vec<(i64, i64, i64, i64)>> {
        on_conn!(self, c => {
            Ok(sales::table
                .filter(sales::member_id.eq(member_id))
                .order(sales::id.desc())
                .limit(limit.clamp(1, 1000))
                .select((sales::id, sales::total_price, sales::mileage, sales::created_ms))
                .load(c)?)
        })
    }

    pub fn create_product(&self, p: &NewProduct) -> Result<Product> {
        on_conn!(self, c => {
            let id: i64 = diesel::insert_into(products::table)
                .values(p)
                .returning(products::id)
                .get_result(c)?;
            Ok(products::table.find(id).first::<Product>(c)?)
        })
    }

    pub fn products(&self, after: i64, limit: i64) -> Result<Vec<Product>> {
        on_conn!(self, c => {
            Ok(products::table
                .filter(products::id.gt(after))
                .order(products::id)
                .limit(limit)
                .load::<Product>(c)?)
        })
    }

    /// Record a purchase (member, items × quantity) and credit the mileage it earns, once
    /// per idempotency key. `render` makes the stored answer.
    pub fn purchase(
        &self,
        member: i64,
        items: &[(i64, i64)],
        idem: &Idempotent,
        render: impl Fn(&Sale) -> String,
    ) -> Result<Answer> {
        if items.is_empty() {
            return Err(StoreError::Invalid(
                "a purchase needs at least one item".into(),
            ));
        }
        // Two requests with the same new key at once: the loser's insert of the key fails
        // and rolls back; run it again and it replays the winner's answer.
        super::accounts::replay_on_race(|| {
            in_tx!(self, c => {
                if let Some(answer) = replay!(c, idem) {
                    return Ok(answer);
                }
                let account: i64 = members::table
                    .find(member)
                    .select(members::account_id)
                    .first(c)
                    .optional()?
                    .ok_or(StoreError::NotFound("member"))?;
                let mut lines = Vec::with_capacity(items.len());
                let (mut total, mut mileage) = (0i64, 0i64);
                for &(product, quantity) in items {
                    let (price, award): (i64, i64) = products::table
                        .find(product)
                        .select((products::price, products::mileage_award))
                        .first(c)
                        .optional()?
                        .ok_or(StoreError::NotFound("product"))?;
                    let line_price = price.checked_mul(quantity);
                    let line_mileage = award.checked_mul(quantity);
                    let (Some(lp), Some(lm)) = (line_price, line_mileage) else {
                        return Err(StoreError::Invalid("quantity too large".into()));
                    };
                    total = total.checked_add(lp).ok_or(StoreError::Invalid("total too large".into()))?;
                    mileage = mileage.checked_add(lm).ok_or(StoreError::Invalid("mileage too large".into()))?;
                    lines.push((product, quantity, price, lm));
                }
                let now = self.clock.unix_ms();
                let sale: i64 = diesel::insert_into(sales::table)
                    .values((
                        sales::member_id.eq(member),
                        sales::total_price.eq(total),
                        sales::mileage.eq(mileage),
                        sales::created_ms.eq(now),
                    ))
                    .returning(sales::id)
                    .get_result(c)?;
                for &(product, quantity, price, m) in &lines {
                    diesel::insert_into(sale_items::table)
                        .values((
                            sale_items::sale_id.eq(sale),
                            sale_items::product_id.eq(product),
                            sale_items::quantity.eq(quantity),
                            sale_items::unit_price.eq(price),
                            sale_items::mileage.eq(m),
                        ))
                        .execute(c)?;
                }
                if mileage > super::accounts::MAX_BALANCE {
                    return Err(StoreError::Invalid("mileage too large".into()));
                }
                let after: Option<(i64, i64)> = diesel::update(
                    accounts::table
                        .filter(accounts::id.eq(account))
                        .filter(accounts::balance.le(super::accounts::MAX_BALANCE - mileage)),
                )
                .set(accounts::balance.eq(accounts::balance + mileage))
                .returning((accounts::balance, accounts::reserved))
                .get_result(c)
                .optional()?;
                let (balance, reserved) = after.ok_or_else(|| {
                    StoreError::Invalid("the member's balance would exceed the maximum".into())
                })?;
                if mileage > 0 {
                    let reference = format!("sale {sale}");
                    append!(c, self.clock.unix_ms(), Entry {
                        account,
                        card: None,
                        kind: "credit",
                        amount: mileage,
                        calls: 0,
                        after: (balance, reserved),
                        cause: "purchase",
                        reference: Some(&reference),
                    })?;
                }
                let body = render(&Sale {
                    id: sale,
                    member_id: member,
                    account_id: account,
                    items: lines,
                    total_price: total,
                    mileage,
                    balance,
                    created_ms: now,
                });
                remember!(c, self.clock.unix_ms(), idem, 201u16, body)?;
                Ok(Answer { status: 201, body, replayed: false })
            })
        })
    }
}
