//! Electronic business cards (C2–C4) with their call quota; calls on a card are paid by its
//! issuer's guild. What the card editor on the web can do, the API can do:
//!
//! - `POST /v1/cards`, `GET /v1/cards?issuer_id=`, `GET/PUT/DELETE /v1/cards/{id}`: a
//!   card with its language versions; its view carries the public page (`public_url`).
//! - `GET /v1/cards/{id}/vcard` (vCard 4.0, `text/vcard`), `PUT /v1/cards/{id}/vcard`
//!   (4.0, 3.0 or 2.1): the card as a contact, or the card's text and numbers from one.
//! - `GET /v1/issuers/{id}/calls`: every call made through the issuer's cards.
//!
//! The rules a card must meet are `crate::cards::Draft::validate`, shared with the pages.

use super::{ApiState, Problem, Scope, authorize};
use crate::cards::Draft;
use crate::store::cards::{Card, CardNumber, CardText};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardIn {
    pub issuer_id: i64,
    /// Language of the card's main text ("ko" or "en").
    #[serde(default = "default_language")]
    pub language: String,
    pub name: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub company: String,
    #[serde(default)]
    pub text: String,
    /// The card's text in further languages (one public link, one quota).
    #[serde(default)]
    pub versions: Vec<CardVersion>,
    /// A picture's address (an uploaded photo, from the card editor, wins).
    #[serde(default)]
    pub image_url: String,
    #[serde(default)]
    pub video_url: String,
    /// classic, ocean, forest or night (default classic).
    #[serde(default)]
    pub design: String,
    /// The issuer's numbers, by kind.
    #[serde(default)]
    pub phones: Vec<CardPhone>,
    /// Calls visitors may place on this card (0-1000000). Changing it is a ledger entry;
    /// it never goes below the calls used or in progress.
    pub quota: i64,
    /// Countries (ISO 3166 codes, e.g. ["JP", "US"]) whose numbers visitors may be called
    /// back on. Empty (the default): domestic numbers only.
    #[serde(default)]
    pub callback_countries: Vec<String>,
}

fn default_language() -> String {
    "ko".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CardVersion {
    pub language: String,
    pub name: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub company: String,
    #[serde(default)]
    pub text: String,
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
    pub versions: Vec<CardVersion>,
    pub image_url: String,
    /// The uploaded photo's address on the switch's pages, if there is one.
    pub photo_url: Option<String>,
    pub video_url: String,
    pub design: String,
    pub phones: Vec<CardPhone>,
    pub quota_total: i64,
    pub quota_used: i64,
    /// Held by calls in progress.
    pub quota_reserved: i64,
    pub quota_left: i64,
    pub callback_countries: Vec<String>,
    /// The card's public page (its short link).
    pub public_url: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// The address the web pages are reached at: `web.public_url`, else the request's host.
pub fn base_url(state: &ApiState, req: &HttpRequest) -> String {
    if !state.public_url.is_empty() {
        return state.public_url.trim_end_matches('/').to_string();
    }
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

pub fn view(c: Card, versions: Vec<CardText>, base: &str) -> CardView {
    let quota_left = c.quota_left();
    let callback_countries = c.callback_countries();
    let phones = c
        .phone_numbers_in_order()
        .into_iter()
        .map(|p| CardPhone {
            kind: p.kind,
            number: p.number,
            callback: p.callback,
        })
        .collect();
    CardView {
        public_url: format!("{base}/c/{}", c.slug()),
        photo_url: (!c.photo.is_empty()).then(|| format!("{base}/photos/{}", c.photo)),
        id: c.id,
        issuer_id: c.issuer_id,
        language: c.language,
        name: c.name,
        title: c.title,
        company: c.company,
        text: c.text,
        versions: versions
            .into_iter()
            .map(|v| CardVersion {
                language: v.language,
                name: v.name,
                title: v.title,
                company: v.company,
                text: v.text,
            })
            .collect(),
        image_url: c.image_url,
        video_url: c.video_url,
        design: c.design,
        phones,
        quota_total: c.quota_total,
        quota_used: c.quota_used,
        quota_reserved: c.quota_reserved,
        quota_left,
        callback_countries,
        created_ms: c.created_ms,
        updated_ms: c.updated_ms,
    }
}

impl CardIn {
    fn draft(self) -> (i64, Draft) {
        (
            self.issuer_id,
            Draft {
                main: CardText {
                    language: self.language,
                    name: self.name,
                    title: self.title,
                    company: self.company,
                    text: self.text,
                },
                versions: self
                    .versions
                    .into_iter()
                    .map(|v| CardText {
                        language: v.language,
                        name: v.name,
                        title: v.title,
                        company: v.company,
                        text: v.text,
                    })
                    .collect(),
                image_url: self.image_url,
                video_url: self.video_url,
                design: self.design,
                phones: self
                    .phones
                    .into_iter()
                    .map(|p| CardNumber {
                        kind: p.kind,
                        number: p.number,
                        callback: p.callback,
                    })
                    .collect(),
                quota: self.quota,
                callback_countries: self.callback_countries,
            },
        )
    }
}

async fn load(state: &ApiState, id: i64) -> Result<(Card, Vec<CardText>), Problem> {
    state
        .store
        .run(move |s| {
            let card = s.card(id)?;
            let texts = s.card_texts(id)?;
            Ok((card, texts))
        })
        .await
        .map_err(Problem::from_store)
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
    let (issuer, draft) = body.into_inner().draft();
    let (new, versions) = draft
        .validate(issuer, &state.numbers)
        .map_err(|e| Problem::validation(&e.to_string()))?;
    let (card, texts) = state
        .store
        .run(move |s| {
            let card = s.create_card(&new)?;
            s.set_card_texts(card.id, &versions)?;
            let texts = s.card_texts(card.id)?;
            Ok((card, texts))
        })
        .await
        .map_err(Problem::from_store)?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/cards/{}", card.id)))
        .json(view(card, texts, &base_url(&state, &req))))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The issuer whose cards to list.
    pub issuer_id: i64,
}

/// An issuer's cards in service, oldest first.
#[utoipa::path(
    get,
    path = "/v1/cards",
    params(ListQuery),
    responses((status = 200, description = "The issuer's cards", body = [CardView])),
    security(("bearer" = ["read"]))
)]
pub async fn list(
    state: web::Data<ApiState>,
    req: HttpRequest,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Read]).await?;
    let issuer = q.issuer_id;
    let cards = state
        .store
        .run(move |s| {
            s.issuer(issuer)?;
            let mut out = Vec::new();
            for c in s.cards_of(issuer)? {
                let texts = s.card_texts(c.id)?;
                out.push((c, texts));
            }
            Ok(out)
        })
        .await
        .map_err(Problem::from_store)?;
    let base = base_url(&state, &req);
    let views: Vec<CardView> = cards.into_iter().map(|(c, t)| view(c, t, &base)).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// One card.
#[utoipa::path(
    get,
    path = "/v1/cards/{id}",
    params(("id" = i64, Path, description = "Card id")),
    responses(
        (status = 200, description = "The card", body = CardView),
        (status = 404, description = "No such card (or withdrawn)", body = Problem),
    ),
    security(("bearer" = ["read"]))
)]
pub async fn show(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Read]).await?;
    let (card, texts) = load(&state, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(view(card, texts, &base_url(&state, &req))))
}

/// Replace a card's text, versions, numbers, design, countries and quota (the same body
/// as issuing it; `issuer_id` must be the card's).
#[utoipa::path(
    put,
    path = "/v1/cards/{id}",
    request_body = CardIn,
    params(("id" = i64, Path, description = "Card id")),
    responses(
        (status = 200, description = "The card as changed", body = CardView),
        (status = 404, description = "No such card for this issuer", body = Problem),
        (status = 422, description = "Invalid body, or a quota below the calls used", body = Problem),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn update(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<i64>,
    body: web::Json<CardIn>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Admin]).await?;
    let id = path.into_inner();
    let (issuer, draft) = body.into_inner().draft();
    let (new, versions) = draft
        .validate(issuer, &state.numbers)
        .map_err(|e| Problem::validation(&e.to_string()))?;
    let (card, texts) = state
        .store
        .run(move |s| {
            let card = s.update_card(id, &new, &versions)?;
            Ok((card, s.card_texts(id)?))
        })
        .await
        .map_err(Problem::from_store)?;
    Ok(HttpResponse::Ok().json(view(card, texts, &base_url(&state, &req))))
}

/// Withdraw a card: its page is gone and call-backs on it are refused; its ledger
/// entries and call records stay.
#[utoipa::path(
    delete,
    path = "/v1/cards/{id}",
    params(("id" = i64, Path, description = "Card id")),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 404, description = "No such card", body = Problem),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn delete(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Admin]).await?;
    let id = path.into_inner();
    state
        .store
        .run(move |s| {
            let card = s.card(id)?;
            s.delete_card(id, card.issuer_id)
        })
        .await
        .map_err(Problem::from_store)?;
    Ok(HttpResponse::NoContent().finish())
}

/// The card as a vCard 4.0 (RFC 6350): name, organisation, title, phones by type, note,
/// photo and the public page's URL.
#[utoipa::path(
    get,
    path = "/v1/cards/{id}/vcard",
    params(("id" = i64, Path, description = "Card id"), ("lang" = Option<String>, Query, description = "Which language version (default: the card's main)")),
    responses(
        (status = 200, description = "The vCard", content_type = "text/vcard"),
        (status = 404, description = "No such card", body = Problem),
    ),
    security(("bearer" = ["read"]))
)]
pub async fn vcard(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Read]).await?;
    let (card, texts) = load(&state, path.into_inner()).await?;
    let lang = req
        .query_string()
        .split('&')
        .find_map(|kv| kv.strip_prefix("lang="))
        .unwrap_or(&card.language)
        .to_string();
    let text = crate::cards::text_for(&card, &texts, &lang);
    let base = base_url(&state, &req);
    let photo = if !card.photo.is_empty() {
        Some(format!("{base}/photos/{}", card.photo))
    } else if !card.image_url.is_empty() {
        Some(card.image_url.clone())
    } else {
        None
    };
    let body = crate::cards::vcard::export(
        &text,
        &card.phone_numbers_in_order(),
        &format!("{base}/c/{}", card.slug()),
        photo.as_deref(),
    );
    Ok(HttpResponse::Ok()
        .content_type("text/vcard; charset=utf-8")
        .body(body))
}

/// Replace the card's main text and numbers from a vCard (4.0, 3.0 or 2.1, at most 1 MiB);
/// what a vCard does not carry (quota, design, countries, other languages) stays. An
/// embedded photo is ignored here (the card editor takes photos).
#[utoipa::path(
    put,
    path = "/v1/cards/{id}/vcard",
    request_body(content = String, content_type = "text/vcard"),
    params(("id" = i64, Path, description = "Card id")),
    responses(
        (status = 200, description = "The card as changed", body = CardView),
        (status = 404, description = "No such card", body = Problem),
        (status = 415, description = "Not text/vcard", body = Problem),
        (status = 422, description = "Not a vCard, or the card's rules fail", body = Problem),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn put_vcard(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<i64>,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Admin]).await?;
    let ct = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !(ct.starts_with("text/vcard")
        || ct.starts_with("text/x-vcard")
        || ct.starts_with("text/directory"))
    {
        return Err(Problem::new(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "send the vCard as text/vcard",
        ));
    }
    let id = path.into_inner();
    let (card, texts) = load(&state, id).await?;
    let imported = crate::cards::vcard::import(&body, &card.language, &state.numbers)
        .map_err(|e| Problem::validation(&e.to_string()))?;
    let draft = imported.onto(Draft::of(&card, texts));
    let (new, versions) = draft
        .validate(card.issuer_id, &state.numbers)
        .map_err(|e| Problem::validation(&e.to_string()))?;
    let (card, texts) = state
        .store
        .run(move |s| {
            let card = s.update_card(id, &new, &versions)?;
            Ok((card, s.card_texts(id)?))
        })
        .await
        .map_err(Problem::from_store)?;
    Ok(HttpResponse::Ok().json(view(card, texts, &base_url(&state, &req))))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CardCall {
    pub card_id: Option<i64>,
    pub call_id: String,
    /// The visitor's number (a call-back) or the calling number.
    pub caller: String,
    pub callee: String,
    pub started: String,
    pub answered: Option<String>,
    pub ended: String,
    pub billed_secs: i64,
    pub cost: i64,
    pub cause: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CallsQuery {
    /// Records after this position (the previous page's last `id`).
    #[serde(default)]
    pub after: i64,
    #[serde(default = "default_limit")]
    pub limit: i64,
}

fn default_limit() -> i64 {
    100
}

/// Every call made through the issuer's cards (paid by the issuer's guild), oldest first.
#[utoipa::path(
    get,
    path = "/v1/issuers/{id}/calls",
    params(("id" = i64, Path, description = "Issuer id"), CallsQuery),
    responses(
        (status = 200, description = "The calls", body = [CardCall]),
        (status = 404, description = "No such issuer", body = Problem),
    ),
    security(("bearer" = ["read"]))
)]
pub async fn issuer_calls(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<i64>,
    q: web::Query<CallsQuery>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Read]).await?;
    let id = path.into_inner();
    let (after, limit) = (q.after, q.limit.clamp(1, 1000));
    let records = state
        .store
        .run(move |s| {
            let issuer = s.issuer(id)?;
            s.cdrs(&crate::store::cdrs::CdrQuery {
                after,
                account: Some(issuer.account_id),
                limit,
                ..Default::default()
            })
        })
        .await
        .map_err(Problem::from_store)?;
    let calls: Vec<CardCall> = records
        .into_iter()
        .map(|r| CardCall {
            card_id: r.card_id,
            call_id: r.call_id,
            caller: r.caller,
            callee: r.callee,
            started: crate::cdr::stamp(r.setup_ms),
            answered: r.answered_ms.map(crate::cdr::stamp),
            ended: crate::cdr::stamp(r.ended_ms),
            billed_secs: r.billed_secs,
            cost: r.cost,
            cause: r.cause,
        })
        .collect();
    Ok(HttpResponse::Ok().json(calls))
}
