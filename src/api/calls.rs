//! Calls the switch places: a card visitor's free call-back (public: the card's page calls
//! it, no key), a member's web dial (the shop's key), and following or cancelling either.
//!
//! - `POST /v1/cards/{id}/callbacks` `{"number": "025561234;235"}` → 202 with the request's
//!   id, or a problem saying why not (`guild-exhausted`, `quota-used-up`,
//!   `number-not-allowed`, `too-many-requests` with `Retry-After`, …).
//! - `POST /v1/members/{id}/calls` `{"number": "…"}` → 202 (scope `credit`).
//! - `GET /v1/calls/{id}`: the request's steps; `GET /v1/calls/{id}/events`: the same as a
//!   live event stream (SSE) that ends with `ended`; `DELETE /v1/calls/{id}` cancels.
//!
//! The id is a 64-bit random token: whoever holds it may follow and cancel the request
//! (it is what the visitor's page holds), nobody can guess another's.

use super::{ApiState, Problem, Scope, authorize};
use crate::call::Progress;
use crate::placing::{PlaceError, Placing, Request};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallIn {
    /// Where to call: `010-1234-5678`, `+82 2 556 1234`, `025561234;235` (an extension
    /// after `;` is sent as digits once the line answers).
    pub number: String,
    /// Record the call: both parties hear "this call is recorded" first; the card's
    /// issuer (or the member) can list, play and delete it (`/v1/recordings`).
    #[serde(default)]
    pub record: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    /// requested, calling_issuer, issuer_answered, accepted, declined, calling_visitor,
    /// connected, ended (a web dial: calling_member, member_answered, calling_dialled).
    pub state: String,
    /// For `ended`: the stable cause code (hung-up, declined, no-answer, busy,
    /// guild-exhausted, …) and its text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Who ended it: caller (the visitor), callee (the issuer) or switch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
    pub at: String,
    pub at_ms: i64,
}

impl From<&Progress> for StepView {
    fn from(p: &Progress) -> StepView {
        StepView {
            state: p.state.clone(),
            cause: p.cause.as_ref().map(|c| c.code().to_string()),
            detail: p.cause.as_ref().map(|c| c.text()),
            ended_by: p.cause.as_ref().map(|c| c.ended_by().to_string()),
            at: crate::cdr::stamp(p.at_ms),
            at_ms: p.at_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallView {
    pub id: String,
    pub state: String,
    pub card_id: Option<i64>,
    pub member_id: Option<i64>,
    /// The number called back (or dialled).
    pub number: String,
    pub steps: Vec<StepView>,
    /// Where to follow it live.
    pub events_url: String,
}

fn view(r: &Request) -> CallView {
    CallView {
        id: r.id.clone(),
        state: r.state().to_string(),
        card_id: r.card,
        member_id: r.member,
        number: r.number.clone(),
        steps: r.events.iter().map(StepView::from).collect(),
        events_url: format!("/v1/calls/{}/events", r.id),
    }
}

pub(super) fn placing(state: &ApiState) -> Result<&Placing, Problem> {
    state.placing.as_ref().ok_or_else(|| {
        Problem::new(
            503,
            "switch-unavailable",
            "Calls cannot be placed",
            "this API is not connected to a running switch",
        )
    })
}

/// A placing error as the requester reads it.
pub fn problem(e: PlaceError) -> Problem {
    match e {
        PlaceError::Refused(r) => {
            let mut p = Problem::new(r.http_status(), r.code(), "Call refused", &r.to_string());
            p.retry_after = r.retry_after_secs();
            p
        }
        PlaceError::BadNumber(d) => Problem::new(422, "bad-number", "Not a phone number", &d),
        PlaceError::NotFound(what) => Problem::not_found(what),
        PlaceError::NothingToRing(d) => Problem::new(409, "nothing-to-ring", "Cannot call", d),
        PlaceError::Stopped => Problem::new(
            503,
            "switch-stopping",
            "Calls cannot be placed",
            "the switch is shutting down",
        ),
    }
}

pub(super) fn accepted(id: String, state: &ApiState) -> HttpResponse {
    let body = state
        .placing
        .as_ref()
        .and_then(|p| p.hub().get(&id))
        .map(|r| view(&r));
    HttpResponse::Accepted()
        .insert_header(("Location", format!("/v1/calls/{id}")))
        .json(body)
}

/// A card visitor asks to be called back (no key: the card's public page calls this).
#[utoipa::path(
    post,
    path = "/v1/cards/{id}/callbacks",
    request_body = CallIn,
    params(("id" = i64, Path, description = "Card id")),
    responses(
        (status = 202, description = "Requested: the issuer is being called", body = CallView),
        (status = 402, description = "Guild exhausted or call quota used up", body = Problem),
        (status = 403, description = "Number not allowed", body = Problem),
        (status = 404, description = "No such card", body = Problem),
        (status = 409, description = "The card has no number to ring", body = Problem),
        (status = 422, description = "Not a phone number", body = Problem),
        (status = 429, description = "A limit is reached (see Retry-After)", body = Problem),
    )
)]
pub async fn callback(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<i64>,
    body: web::Json<CallIn>,
) -> Result<HttpResponse, Problem> {
    let card = path.into_inner();
    let p = placing(&state)?;
    let id = p
        .callback(card, &body.number, super::client_ip(&req), body.record)
        .await
        .map_err(problem)?;
    Ok(accepted(id, &state))
}

/// A member dials a number from the web: their own phone rings first.
#[utoipa::path(
    post,
    path = "/v1/members/{id}/calls",
    request_body = CallIn,
    params(("id" = i64, Path, description = "Member id")),
    responses(
        (status = 202, description = "Requested: the member's phone is being called", body = CallView),
        (status = 402, description = "Mileage exhausted", body = Problem),
        (status = 404, description = "No such member", body = Problem),
        (status = 409, description = "No phone number on file", body = Problem),
    ),
    security(("bearer" = ["credit"]))
)]
pub async fn web_dial(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<i64>,
    body: web::Json<CallIn>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Credit]).await?;
    let member = path.into_inner();
    let p = placing(&state)?;
    let id = p
        .web_dial(member, &body.number, body.record)
        .await
        .map_err(problem)?;
    Ok(accepted(id, &state))
}

/// A placed call's steps so far.
#[utoipa::path(
    get,
    path = "/v1/calls/{id}",
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 200, description = "The request", body = CallView),
        (status = 404, description = "Unknown (or ended over an hour ago: see /v1/cdrs)", body = Problem),
    )
)]
pub async fn show(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = placing(&state)?;
    let r = p
        .hub()
        .get(&path)
        .ok_or_else(|| Problem::not_found("call request"))?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(view(&r)))
}

/// Cancel a request that has not ended.
#[utoipa::path(
    delete,
    path = "/v1/calls/{id}",
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 202, description = "Being cancelled"),
        (status = 404, description = "Unknown", body = Problem),
        (status = 409, description = "Already ended", body = Problem),
    )
)]
pub async fn cancel(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = placing(&state)?;
    match p.cancel(&path).map_err(problem)? {
        true => Ok(HttpResponse::Accepted().finish()),
        false => Err(Problem::new(
            409,
            "already-ended",
            "Already ended",
            "the call has ended",
        )),
    }
}

/// The request's steps as they happen (`text/event-stream`): every step so far, then each
/// new one, closed after `ended`.
#[utoipa::path(
    get,
    path = "/v1/calls/{id}/events",
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 200, description = "Server-sent events, one `step` each", content_type = "text/event-stream"),
        (status = 404, description = "Unknown", body = Problem),
    )
)]
pub async fn events(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = placing(&state)?;
    let id = path.into_inner();
    // Subscribe before reading what happened, so nothing falls between the two.
    let live = p.hub().subscribe();
    let r = p
        .hub()
        .get(&id)
        .ok_or_else(|| Problem::not_found("call request"))?;
    let mut first = String::new();
    for e in &r.events {
        first.push_str(&step_event(e));
    }
    let seen = r.events.len();
    let done = r.ended();
    let stream = futures_util::stream::unfold(
        (Some(first), live, id, seen, done),
        |(first, mut live, id, mut seen, done)| async move {
            if let Some(text) = first {
                return Some((
                    Ok::<_, actix_web::Error>(web::Bytes::from(text)),
                    (None, live, id, seen, done),
                ));
            }
            if done {
                return None;
            }
            loop {
                let next =
                    tokio::time::timeout(std::time::Duration::from_secs(15), live.recv()).await;
                match next {
                    Err(_) => {
                        return Some((
                            Ok(web::Bytes::from_static(b": keep-alive\n\n")),
                            (None, live, id, seen, false),
                        ));
                    }
                    Ok(Ok(p)) if p.id == id => {
                        seen += 1;
                        let ended = p.state == "ended";
                        return Some((
                            Ok(web::Bytes::from(step_event(&p))),
                            (None, live, id, seen, ended),
                        ));
                    }
                    Ok(Ok(_)) => continue,
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
                    Ok(Err(_)) => return None,
                }
            }
        },
    );
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}

fn step_event(p: &Progress) -> String {
    let json = serde_json::to_string(&StepView::from(p)).unwrap_or_default();
    format!("event: step\ndata: {json}\n\n")
}
