//! The operator's rate deck over REST: load a CSV (atomic: every call is priced by the old
//! deck or the new one), read it, remove it, and ask what a number would cost.
//! `freecall deck import FILE` does the same from the command line.

use super::{ApiState, Problem, Scope, authorize};
use crate::billing::{AccountKind, DeckRate, deck};
use crate::store::rate_deck::DeckImport;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The largest deck accepted (a carrier's full deck is a few megabytes).
pub const MAX_DECK_BYTES: usize = 32 << 20;

#[derive(Debug, Serialize, ToSchema)]
pub struct DeckView {
    /// Grows with every load (0: no deck was ever loaded).
    pub version: i64,
    pub loaded_ms: Option<i64>,
    /// Rates in force (an `any` row of the CSV counts once per account kind).
    pub rates: i64,
    /// "cli", or the API key that loaded it ("api key 3").
    pub source: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RateView {
    /// "mileage" or "guild".
    pub account: String,
    /// E.164 digits, without `+`.
    pub prefix: String,
    pub name: String,
    pub per_minute: i64,
    /// "first/next" billing periods in seconds.
    pub increment: String,
    pub connection: i64,
    pub minimum: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeckList {
    #[serde(flatten)]
    pub deck: DeckView,
    /// The rates (those whose prefix starts with `prefix`, when asked).
    pub list: Vec<RateView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PriceView {
    /// The number as given, in E.164.
    pub e164: String,
    /// landline, mobile, international, …
    pub destination: String,
    /// "deck" (the longest prefix decided) or "tariff" (the kind of number's tariff).
    pub priced_by: String,
    /// The deck's prefix and name for it (priced by the deck only).
    pub prefix: Option<String>,
    pub name: Option<String>,
    pub per_minute: i64,
    pub increment: String,
    pub connection: i64,
    pub minimum: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only rates whose prefix starts with these digits.
    pub prefix: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PriceQuery {
    /// Any way of writing it: `+81 90 1234 5678`, `010-1234-5678`.
    pub number: String,
    /// "mileage" or "guild".
    pub account: String,
}

fn deck_view(import: Option<DeckImport>) -> DeckView {
    match import {
        Some(i) => DeckView {
            version: i.version,
            loaded_ms: Some(i.loaded_ms),
            rates: i.rates,
            source: Some(i.source),
        },
        None => DeckView {
            version: 0,
            loaded_ms: None,
            rates: 0,
            source: None,
        },
    }
}

fn rate_view(r: &DeckRate) -> RateView {
    RateView {
        account: r.account.as_str().into(),
        prefix: r.prefix.clone(),
        name: r.name.clone(),
        per_minute: r.per_minute,
        increment: format!("{}/{}", r.first_secs, r.increment_secs),
        connection: r.connection,
        minimum: r.minimum,
    }
}

/// Put the new deck in force on this node at once (the others pick it up at their next
/// heartbeat).
async fn put_in_force(state: &ApiState) -> Result<(), Problem> {
    let deck = state
        .store
        .run(|s| s.rate_deck())
        .await
        .map_err(Problem::from_store)?;
    crate::billing::put_deck(&state.tariffs, deck);
    Ok(())
}

/// Load a rate deck (CSV: `prefix,name,account,per_minute,increment,connection` and
/// optionally `minimum`), replacing the one in force in one step. Calls in progress keep
/// the price they were reserved at.
#[utoipa::path(
    put,
    path = "/v1/rate-deck",
    request_body(content = String, content_type = "text/csv"),
    responses(
        (status = 200, description = "The deck now in force", body = DeckView),
        (status = 415, description = "Not CSV", body = Problem),
        (status = 422, description = "Rows that are wrong, each with its line; nothing was loaded", body = Problem),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn load(
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, Problem> {
    let key = authorize(&state, &req, &[Scope::Admin]).await?;
    let body = super::read_body(&req, body, MAX_DECK_BYTES).await?;
    let ct = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !(ct.starts_with("text/csv") || ct.starts_with("text/plain")) {
        return Err(Problem::new(
            415,
            "unsupported-media-type",
            "Send the deck as CSV",
            "Content-Type must be text/csv",
        ));
    }
    let text = std::str::from_utf8(&body).map_err(|_| {
        Problem::new(
            422,
            "bad-rate-deck",
            "Rate deck refused",
            "the CSV is not UTF-8",
        )
    })?;
    let rates = deck::parse_csv(text).map_err(|errors| {
        Problem::new(
            422,
            "bad-rate-deck",
            "Rate deck refused",
            &format!("nothing was loaded: {}", errors.join("; ")),
        )
    })?;
    let source = format!("api key {key}");
    let import = state
        .store
        .run(move |s| s.load_rate_deck(&rates, &source))
        .await
        .map_err(Problem::from_store)?;
    put_in_force(&state).await?;
    Ok(HttpResponse::Ok().json(deck_view(Some(import))))
}

/// Remove the deck: every number is priced by its kind again.
#[utoipa::path(
    delete,
    path = "/v1/rate-deck",
    responses((status = 200, description = "No deck in force", body = DeckView)),
    security(("bearer" = ["admin"]))
)]
pub async fn remove(state: web::Data<ApiState>, req: HttpRequest) -> Result<HttpResponse, Problem> {
    let key = authorize(&state, &req, &[Scope::Admin]).await?;
    let source = format!("api key {key}");
    let import = state
        .store
        .run(move |s| s.load_rate_deck(&[], &source))
        .await
        .map_err(Problem::from_store)?;
    put_in_force(&state).await?;
    Ok(HttpResponse::Ok().json(deck_view(Some(import))))
}

/// The deck in force and its rates.
#[utoipa::path(
    get,
    path = "/v1/rate-deck",
    params(ListQuery),
    responses((status = 200, description = "The deck", body = DeckList)),
    security(("bearer" = ["read", "admin"]))
)]
pub async fn show(
    state: web::Data<ApiState>,
    req: HttpRequest,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Read]).await?;
    let import = state
        .store
        .run(|s| s.rate_deck_import())
        .await
        .map_err(Problem::from_store)?;
    let tariffs = state.tariffs();
    let want = q.prefix.as_deref().unwrap_or("").trim_start_matches('+');
    let list = tariffs
        .deck()
        .rates()
        .into_iter()
        .filter(|r| r.prefix.starts_with(want))
        .map(rate_view)
        .collect();
    Ok(HttpResponse::Ok().json(DeckList {
        deck: deck_view(import),
        list,
    }))
}

/// What a call to `number` is priced at on an account of `account` kind: the deck's
/// longest prefix, else the tariff of its kind of number.
#[utoipa::path(
    get,
    path = "/v1/rate-deck/price",
    params(PriceQuery),
    responses(
        (status = 200, description = "The price", body = PriceView),
        (status = 422, description = "Not a number, or not callable on that kind of account", body = Problem),
    ),
    security(("bearer" = ["read", "admin"]))
)]
pub async fn price(
    state: web::Data<ApiState>,
    req: HttpRequest,
    q: web::Query<PriceQuery>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Read]).await?;
    let kind = AccountKind::parse(&q.account)
        .ok_or_else(|| Problem::validation("account must be mileage or guild"))?;
    let (dialable, destination, _) = state
        .numbers
        .dialable(&q.number)
        .ok_or_else(|| Problem::validation(&format!("'{}' is not a phone number", q.number)))?;
    let e164 = state.numbers.e164(&q.number).unwrap_or_default();
    let tariffs = state.tariffs();
    let rate = tariffs.deck_rate(kind, &dialable).cloned();
    let tariff = tariffs
        .tariff_for(kind, destination, &dialable)
        .ok_or_else(|| {
            Problem::new(
                422,
                "destination-not-allowed",
                "Not callable",
                &format!(
                    "a {destination} number cannot be called on a {} account",
                    kind.as_str()
                ),
            )
        })?;
    Ok(HttpResponse::Ok().json(PriceView {
        e164,
        destination: destination.to_string(),
        priced_by: if rate.is_some() { "deck" } else { "tariff" }.into(),
        prefix: rate.as_ref().map(|r| r.prefix.clone()),
        name: rate.map(|r| r.name),
        per_minute: tariff.per_minute,
        increment: format!("{}/{}", tariff.first_secs, tariff.increment_secs),
        connection: tariff.connection,
        minimum: tariff.minimum,
    }))
}
