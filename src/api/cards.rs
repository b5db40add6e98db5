//! `POST /v1/cards`: an electronic business card (C2) with its call quota; calls on it
//! are paid by the issuer's guild.

use super::problem::check_text;
use super::{ApiState, Problem, Scope, authorize};
use crate::store::cards::{Card, NewCard};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardIn {
    pub issuer_id: i64,
    /// Language of this version of the card (e.g. "ko", "en").
    #[serde(default = "default_language")]
    pub language: String,
    pub name: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub company: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub image_url: String,
    #[serde(default)]
    pub video_url: String,
    #[serde(default)]
    pub design: String,
    /// The issuer's numbers, by kind.
    #[serde(default)]
    pub phones: Vec<CardPhone>,
    /// Calls visitors may place on this card (0-1000000).
    pub quota: i64,
    /// Countries (ISO 3166 codes, e.g. ["JP", "US"]) whose numbers visitors may be called
    /// back on. Empty (the default): domestic numbers only.
    #[serde(default)]
    pub callback_countries: Vec<String>,
}

fn default_language() -> String {
    "ko".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardPhone {
    /// landline, mobile or internet.
    pub kind: String,
    /// A phone number; for an internet phone also a member's SIP user (rung where that
    /// phone is registered).
    pub number: String,
    /// Call the issuer back on this number first (else the card's order is kept).
    #[serde(default)]
    pub callback: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CardView {
    pub id: i64,
    pub issuer_id: i64,
    pub language: String,
    pub name: String,
    pub title: String,
    pub company: String,
    pub text: String,
    pub image_url: String,
    pub video_url: String,
    pub design: String,
    pub phones: Vec<CardPhone>,
    pub quota_total: i64,
    pub quota_used: i64,
    /// Held by calls in progress.
    pub quota_reserved: i64,
    pub quota_left: i64,
    pub callback_countries: Vec<String>,
    pub created_ms: i64,
}

pub fn view(c: Card) -> CardView {
    let quota_left = c.quota_left();
    let callback_countries = c.callback_countries();
    CardView {
        id: c.id,
        issuer_id: c.issuer_id,
        language: c.language,
        name: c.name,
        title: c.title,
        company: c.company,
        text: c.text,
        image_url: c.image_url,
        video_url: c.video_url,
        design: c.design,
        phones: serde_json::from_str(&c.phones).unwrap_or_default(),
        quota_total: c.quota_total,
        quota_used: c.quota_used,
        quota_reserved: c.quota_reserved,
        quota_left,
        callback_countries,
        created_ms: c.created_ms,
    }
}

/// Issue a card.
#[utoipa::path(
    post,
    path = "/v1/cards",
    request_body = CardIn,
    responses(
        (status = 201, description = "Card issued", body = CardView),
        (status = 404, description = "No such issuer", body = Problem),
        (status = 422, description = "Invalid body", body = Problem),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn create(
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: web::Json<CardIn>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Admin]).await?;
    let b = body.into_inner();
    if b.issuer_id <= 0 {
        return Err(Problem::validation("issuer_id must be positive"));
    }
    if !(0..=1_000_000).contains(&b.quota) {
        return Err(Problem::validation("quota must be 0-1000000"));
    }
    check_text("language", &b.language, 16, true)?;
    check_text("name", &b.name, 200, true)?;
    for (f, v) in [
        ("title", &b.title),
        ("company", &b.company),
        ("design", &b.design),
    ] {
        check_text(f, v, 200, false)?;
    }
    check_text("text", &b.text, 4000, false)?;
    check_text("image_url", &b.image_url, 2000, false)?;
    check_text("video_url", &b.video_url, 2000, false)?;
    if b.phones.len() > 20 {
        return Err(Problem::validation("at most 20 phone numbers"));
    }
    for (i, p) in b.phones.iter().enumerate() {
        if !matches!(p.kind.as_str(), "landline" | "mobile" | "internet") {
            return Err(Problem::validation(&format!(
                "phones[{i}].kind must be landline, mobile or internet"
            )));
        }
        // An internet phone may be a member's SIP user: it rings wherever that phone
        // is registered.
        let sip_user = p.kind == "internet" && crate::routing::is_sip_user(&p.number);
        if !sip_user && crate::routing::normalize_number(&p.number).is_err() {
            return Err(Problem::validation(&format!(
                "phones[{i}].number is not a phone number (or, for an internet phone, a SIP user)"
            )));
        }
    }
    if b.callback_countries.len() > 50
        || b.callback_countries
            .iter()
            .any(|c| c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_alphabetic()))
    {
        return Err(Problem::validation(
            "callback_countries must be at most 50 two-letter country codes",
        ));
    }
    let new = NewCard {
        issuer_id: b.issuer_id,
        language: b.language,
        name: b.name,
        title: b.title,
        company: b.company,
        text: b.text,
        image_url: b.image_url,
        video_url: b.video_url,
        design: b.design,
        phones: serde_json::to_string(&b.phones).unwrap_or_else(|_| "[]".into()),
        quota: b.quota,
        callback_countries: b
            .callback_countries
            .iter()
            .map(|c| c.to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(","),
    };
    let card = state
        .store
        .run(move |s| s.create_card(&new))
        .await
        .map_err(Problem::from_store)?;
    Ok(HttpResponse::Created().json(view(card)))
}
