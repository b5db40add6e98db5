//! Accounts: `GET /v1/accounts/{id}` (balance, reserved, available, quota left, minutes
//! left per destination kind — C10), `GET /v1/accounts/{id}/ledger` (usage history, paged)
//! and `POST /v1/accounts/{id}/credits` (a top-up; needs an `Idempotency-Key`).

use super::problem::{check_amount, check_text};
use super::products::PageQuery;
use super::{ApiState, Problem, Scope, authorize, idempotency_key, request_hash};
use crate::store::accounts::{Answer, Idempotent, LedgerEntry};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub id: i64,
    /// "mileage" (points) or "guild" (money in minor units).
    pub kind: String,
    pub balance: i64,
    /// Held by calls in progress.
    pub reserved: i64,
    /// balance − reserved: what new calls can use.
    pub available: i64,
    /// Calls left on the cards this guild pays for (absent for mileage accounts).
    pub quota_left: Option<i64>,
    pub cards: Vec<CardQuota>,
    /// Whole minutes the available balance buys, per destination kind with a tariff and
    /// per destination of the rate deck (by its name, at the dearest of its prefixes);
    /// null where calls are free.
    pub minutes_left: BTreeMap<String, Option<i64>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CardQuota {
    pub card_id: i64,
    pub quota_left: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerEntryView {
    pub id: i64,
    /// credit, debit, reserve or release.
    pub kind: String,
    pub amount: i64,
    /// Call quota units moved (card calls).
    pub calls: i64,
    pub balance_after: i64,
    pub reserved_after: i64,
    /// signup bonus, purchase, top-up, call quota, call.
    pub cause: String,
    /// The call id, sale or idempotency key.
    pub reference: Option<String>,
    pub card_id: Option<i64>,
    pub created_ms: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerPage {
    pub account_id: i64,
    pub entries: Vec<LedgerEntryView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditIn {
    /// Units to add: 1 to 1000000000000 (points, or minor units of the guild currency).
    pub amount: i64,
    /// Why (shown in the ledger), e.g. "top-up" or "payment 2026-11-23-0042".
    #[serde(default = "default_cause")]
    pub cause: String,
}

fn default_cause() -> String {
    "top-up".into()
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreditView {
    pub account_id: i64,
    pub amount: i64,
    pub balance: i64,
    pub ledger_entry: i64,
}

fn account_id(raw: &str) -> Result<i64, Problem> {
    raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        Problem::new(
            400,
            "bad-path",
            "Bad account id",
            "account ids are positive integers",
        )
    })
}

/// Balance, holds and what it buys.
#[utoipa::path(
    get,
    path = "/v1/accounts/{id}",
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 200, description = "The account", body = AccountView),
        (status = 404, description = "No such account", body = Problem),
    ),
    security(("bearer" = ["read", "admin"]))
)]
pub async fn show(
    state: web::Data<ApiState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Read]).await?;
    let id = account_id(&id)?;
    let a = state
        .store
        .run(move |s| s.account(id))
        .await
        .map_err(Problem::from_store)?;
    let tariffs = state.tariffs();
    let available = a.available();
    let mut minutes_left = BTreeMap::new();
    // Over one call or many, a minute costs the same: the balance's worth in minutes.
    let minutes = |t: &crate::billing::Tariff| {
        let free = t.per_minute == 0 && t.minimum == 0 && t.connection == 0;
        (!free).then(|| {
            t.max_secs(available, 1_000_000_000)
                .map(|s| s / 60)
                .unwrap_or(0)
        })
    };
    for (kind, t) in tariffs.iter() {
        if kind == a.kind {
            minutes_left.insert(t.destination.to_string(), minutes(t));
        }
    }
    for rate in tariffs.deck().rates() {
        if rate.account != a.kind {
            continue;
        }
        let left = minutes(&rate.tariff(crate::numbers::DestinationKind::International));
        minutes_left
            .entry(rate.name.clone())
            .and_modify(|m: &mut Option<i64>| {
                *m = match (*m, left) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                }
            })
            .or_insert(left);
    }
    let guild = a.kind == crate::billing::AccountKind::Guild;
    Ok(HttpResponse::Ok().json(AccountView {
        id: a.id,
        kind: a.kind.as_str().into(),
        balance: a.balance,
        reserved: a.reserved,
        available,
        quota_left: guild.then(|| a.cards.iter().map(|(_, q)| q).sum()),
        cards: a
            .cards
            .iter()
            .map(|&(card_id, quota_left)| CardQuota {
                card_id,
                quota_left,
            })
            .collect(),
        minutes_left,
    }))
}

fn entry_view(e: LedgerEntry) -> LedgerEntryView {
    LedgerEntryView {
        id: e.id,
        kind: e.kind,
        amount: e.amount,
        calls: e.calls,
        balance_after: e.balance_after,
        reserved_after: e.reserved_after,
        cause: e.cause,
        reference: e.reference,
        card_id: e.card_id,
        created_ms: e.created_ms,
    }
}

/// Usage history, oldest first.
#[utoipa::path(
    get,
    path = "/v1/accounts/{id}/ledger",
    params(("id" = i64, Path, description = "Account id"), PageQuery),
    responses(
        (status = 200, description = "A page of ledger entries", body = LedgerPage),
        (status = 404, description = "No such account", body = Problem),
    ),
    security(("bearer" = ["read", "admin"]))
)]
pub async fn ledger(
    state: web::Data<ApiState>,
    req: HttpRequest,
    id: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Read]).await?;
    let id = account_id(&id)?;
    let (after, limit) = q.bounds()?;
    let rows = state
        .store
        .run(move |s| s.ledger(id, after, limit))
        .await
        .map_err(Problem::from_store)?;
    let next_after = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|e| e.id))
        .flatten();
    Ok(HttpResponse::Ok().json(LedgerPage {
        account_id: id,
        entries: rows.into_iter().map(entry_view).collect(),
        next_after,
    }))
}

/// Credit an account (a top-up from a payment).
#[utoipa::path(
    post,
    path = "/v1/accounts/{id}/credits",
    params(
        ("id" = i64, Path, description = "Account id"),
        ("Idempotency-Key" = String, Header, description = "Unique per credit; a retry with the same key and body returns the original result and credits nothing more"),
    ),
    request_body = CreditIn,
    responses(
        (status = 201, description = "Credited (or the original result of this key)", body = CreditView),
        (status = 400, description = "Idempotency-Key missing", body = Problem),
        (status = 404, description = "No such account", body = Problem),
        (status = 422, description = "Invalid amount, or the key was used for another request", body = Problem),
    ),
    security(("bearer" = ["credit", "admin"]))
)]
pub async fn credit(
    state: web::Data<ApiState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Json<CreditIn>,
) -> Result<HttpResponse, Problem> {
    let api_key = authorize(&state, &req, &[Scope::Credit]).await?;
    let id = account_id(&id)?;
    let key = idempotency_key(&req)?;
    let b = body.into_inner();
    check_amount("amount", b.amount, false)?;
    check_text("cause", &b.cause, 200, true)?;
    let idem = Idempotent {
        scope: format!("credit:{api_key}:{id}"),
        key,
        request_hash: request_hash(&b),
    };
    let answer = state
        .store
        .run(move |s| {
            s.credit(id, b.amount, &b.cause, &idem, |c| {
                serde_json::to_string(&CreditView {
                    account_id: c.account,
                    amount: c.amount,
                    balance: c.balance,
                    ledger_entry: c.entry,
                })
                .unwrap_or_default()
            })
        })
        .await
        .map_err(Problem::from_store)?;
    Ok(replayable(answer))
}

/// The stored answer of an idempotent request; a replay says so in `Idempotent-Replayed`.
pub fn replayable(answer: Answer) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(answer.status)
        .unwrap_or(actix_web::http::StatusCode::OK);
    let mut r = HttpResponse::build(status);
    r.content_type("application/json");
    if answer.replayed {
        r.insert_header(("Idempotent-Replayed", "true"));
    }
    r.body(answer.body)
}
