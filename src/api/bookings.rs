//! Calls booked for a set time (C11):
//!
//! - `POST /v1/cards/{id}/bookings` `{"number", "at", "time_zone"}` (public, as the
//!   call-back: the card's page books) and `POST /v1/members/{id}/bookings` (scope
//!   `credit`) → 201 with the booking's serial (`R-20261202-0042`) and its `id`.
//! - `GET/PATCH/DELETE /v1/bookings/{id}`: look it up, move it (`{"at"}`), cancel it, until
//!   it fires. The id is an unguessable token; `GET /v1/bookings?serial=…&number=…` finds
//!   a booking by the serial read out to its booker, with the number it calls.
//! - `GET /v1/cards/{id}/bookings`, `GET /v1/members/{id}/bookings` (scope `read`).

use super::{ApiState, Problem, Scope, authorize};
use crate::placing::bookings::{BookError, Bookings, Owner, local_time};
use crate::store::bookings::Booking;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingIn {
    /// Where to call (as for a call-back: `010-1234-5678`, `025561234;235`).
    pub number: String,
    /// When: `2026-12-02T15:00` in `time_zone`, or RFC 3339 with an offset.
    pub at: String,
    /// The booker's IANA time zone (default Asia/Seoul).
    #[serde(default = "default_zone")]
    pub time_zone: String,
    /// Record the call (both parties hear that it is recorded).
    #[serde(default)]
    pub record: bool,
}

fn default_zone() -> String {
    "Asia/Seoul".into()
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveIn {
    pub at: String,
    /// A new time zone (default: the booking's).
    pub time_zone: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: i64,
    /// The placed call's id (its record's `call_id`; it carries the serial).
    pub call_id: String,
    /// How it ended (busy, no-answer, hung-up, guild-exhausted, …).
    pub cause: Option<String>,
    pub started: String,
    pub ended: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BookingView {
    pub id: String,
    pub serial: String,
    /// scheduled, claimed, dialling, done, failed, refused, missed, cancelled, interrupted
    pub state: String,
    pub card_id: Option<i64>,
    pub member_id: Option<i64>,
    pub number: String,
    /// UTC.
    pub due: String,
    /// The same moment in the booker's zone.
    pub local: String,
    pub time_zone: String,
    pub attempts: Vec<AttemptView>,
    pub max_attempts: i64,
    /// Why it ended, or why the last attempt did.
    pub cause: Option<String>,
    /// The call will be recorded.
    pub record: bool,
}

async fn view(state: &ApiState, b: Booking) -> BookingView {
    let id = b.id;
    let attempts = state
        .store
        .run(move |s| s.booking_attempts(id))
        .await
        .unwrap_or_default();
    BookingView {
        id: b.token,
        serial: b.serial,
        state: b.state,
        card_id: b.card_id,
        member_id: b.member_id,
        number: b.number,
        due: crate::cdr::stamp(b.due_ms),
        local: local_time(b.due_ms, &b.time_zone),
        time_zone: b.time_zone,
        attempts: attempts
            .into_iter()
            .map(|a| AttemptView {
                attempt: a.attempt,
                call_id: a.call_id,
                cause: a.cause,
                started: crate::cdr::stamp(a.started_ms),
                ended: a.ended_ms.map(crate::cdr::stamp),
            })
            .collect(),
        max_attempts: b.max_attempts,
        cause: b.cause,
        record: b.record,
    }
}

fn bookings(state: &ApiState) -> Result<&Bookings, Problem> {
    state.bookings.as_ref().ok_or_else(|| {
        Problem::new(
            503,
            "switch-unavailable",
            "Calls cannot be booked",
            "this API is not connected to a running switch",
        )
    })
}

fn problem(e: BookError) -> Problem {
    match e {
        BookError::Place(p) => super::calls::problem(p),
        BookError::Time(d) => Problem::new(422, "bad-time", "Not a time we can book", &d),
        BookError::Conflict(d) => Problem::new(409, "booking-fired", "Too late to change", &d),
        BookError::NotFound => Problem::not_found("booking"),
    }
}

async fn created(state: &ApiState, b: Booking) -> HttpResponse {
    let token = b.token.clone();
    HttpResponse::Created()
        .insert_header(("Location", format!("/v1/bookings/{token}")))
        .json(view(state, b).await)
}

/// Book a call-back on a card for a set time (no key: the card's page books; fenced like
/// a live call-back request).
#[utoipa::path(
    post,
    path = "/v1/cards/{id}/bookings",
    request_body = BookingIn,
    params(("id" = i64, Path, description = "Card id")),
    responses(
        (status = 201, description = "Booked", body = BookingView),
        (status = 403, description = "A number the card may not call back", body = Problem),
        (status = 404, description = "No such card", body = Problem),
        (status = 422, description = "Not a phone number, or not a time we can book", body = Problem),
        (status = 429, description = "Too many requests, or too many open bookings", body = Problem),
    )
)]
pub async fn book_callback(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<i64>,
    body: web::Json<BookingIn>,
) -> Result<HttpResponse, Problem> {
    let b = bookings(&state)?
        .book(
            Owner::Card(path.into_inner()),
            &body.number,
            &body.at,
            &body.time_zone,
            super::client_ip(&req),
            body.record,
        )
        .await
        .map_err(problem)?;
    Ok(created(&state, b).await)
}

/// Book a member's call for a set time (the member's phone rings first, then the number).
#[utoipa::path(
    post,
    path = "/v1/members/{id}/bookings",
    request_body = BookingIn,
    params(("id" = i64, Path, description = "Member id")),
    responses(
        (status = 201, description = "Booked", body = BookingView),
        (status = 404, description = "No such member", body = Problem),
        (status = 422, description = "Not a phone number, or not a time we can book", body = Problem),
    ),
    security(("bearer" = ["credit"]))
)]
pub async fn book_dial(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<i64>,
    body: web::Json<BookingIn>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Credit]).await?;
    let b = bookings(&state)?
        .book(
            Owner::Member(path.into_inner()),
            &body.number,
            &body.at,
            &body.time_zone,
            super::client_ip(&req),
            body.record,
        )
        .await
        .map_err(problem)?;
    Ok(created(&state, b).await)
}

/// A booking, with each attempt and how it ended.
#[utoipa::path(
    get,
    path = "/v1/bookings/{id}",
    params(("id" = String, Path, description = "The booking's id")),
    responses(
        (status = 200, description = "The booking", body = BookingView),
        (status = 404, description = "No such booking", body = Problem),
    )
)]
pub async fn show(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let token = path.into_inner();
    let b = state
        .store
        .run(move |s| s.booking(&token))
        .await
        .map_err(Problem::from_store)?;
    Ok(HttpResponse::Ok().json(view(&state, b).await))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SerialQuery {
    /// The serial the booker was given.
    pub serial: String,
    /// The number the booking calls, exactly as booked.
    pub number: String,
}

/// A booking by its serial and the number it calls.
#[utoipa::path(
    get,
    path = "/v1/bookings",
    params(SerialQuery),
    responses(
        (status = 200, description = "The booking", body = BookingView),
        (status = 404, description = "No booking with that serial and number", body = Problem),
    )
)]
pub async fn by_serial(
    state: web::Data<ApiState>,
    q: web::Query<SerialQuery>,
) -> Result<HttpResponse, Problem> {
    let (serial, number) = (q.serial.trim().to_string(), q.number.trim().to_string());
    let b = state
        .store
        .run(move |s| s.booking_by_serial(&serial, &number))
        .await
        .map_err(Problem::from_store)?;
    Ok(HttpResponse::Ok().json(view(&state, b).await))
}

/// Move a booking that has not fired.
#[utoipa::path(
    patch,
    path = "/v1/bookings/{id}",
    request_body = MoveIn,
    params(("id" = String, Path, description = "The booking's id")),
    responses(
        (status = 200, description = "Moved", body = BookingView),
        (status = 404, description = "No such booking", body = Problem),
        (status = 409, description = "It has fired (or ended) already", body = Problem),
        (status = 422, description = "Not a time we can book", body = Problem),
    )
)]
pub async fn reschedule(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    body: web::Json<MoveIn>,
) -> Result<HttpResponse, Problem> {
    let b = bookings(&state)?
        .reschedule(&path, &body.at, body.time_zone.as_deref())
        .await
        .map_err(problem)?;
    Ok(HttpResponse::Ok().json(view(&state, b).await))
}

/// Cancel a booking that has not fired.
#[utoipa::path(
    delete,
    path = "/v1/bookings/{id}",
    params(("id" = String, Path, description = "The booking's id")),
    responses(
        (status = 200, description = "Cancelled", body = BookingView),
        (status = 404, description = "No such booking", body = Problem),
        (status = 409, description = "It has fired (or ended) already", body = Problem),
    )
)]
pub async fn cancel(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let b = bookings(&state)?.cancel(&path).await.map_err(problem)?;
    Ok(HttpResponse::Ok().json(view(&state, b).await))
}

/// A card's bookings, soonest first.
#[utoipa::path(
    get,
    path = "/v1/cards/{id}/bookings",
    params(("id" = i64, Path, description = "Card id")),
    responses((status = 200, description = "The bookings", body = [BookingView])),
    security(("bearer" = ["read"]))
)]
pub async fn of_card(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Read]).await?;
    let card = path.into_inner();
    list(&state, Some(card), None).await
}

/// A member's bookings, soonest first.
#[utoipa::path(
    get,
    path = "/v1/members/{id}/bookings",
    params(("id" = i64, Path, description = "Member id")),
    responses((status = 200, description = "The bookings", body = [BookingView])),
    security(("bearer" = ["read"]))
)]
pub async fn of_member(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Read, Scope::Credit]).await?;
    let member = path.into_inner();
    list(&state, None, Some(member)).await
}

async fn list(
    state: &ApiState,
    card: Option<i64>,
    member: Option<i64>,
) -> Result<HttpResponse, Problem> {
    let all = state
        .store
        .run(move |s| s.bookings_of(card, member))
        .await
        .map_err(Problem::from_store)?;
    let mut out = Vec::new();
    for b in all {
        out.push(view(state, b).await);
    }
    Ok(HttpResponse::Ok().json(out))
}
