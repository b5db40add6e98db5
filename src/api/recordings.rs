//! Recordings asked for on calls (C12), for their owner: the card's issuer or the member
//! (on the pages, logged in) or an admin key (here). A recording is the file on the node
//! that made it; its row says which node, how long and how large.
//!
//! - `GET /v1/recordings?card_id=|issuer_id=|account_id=`: newest first.
//! - `GET /v1/recordings/{call_id}`: one.
//! - `GET /v1/recordings/{call_id}/audio`: the WAV, with range requests (a browser's
//!   player seeks in it).
//! - `DELETE /v1/recordings/{call_id}`: the file and the row.

use super::{ApiState, Problem, Scope, authorize};
use crate::store::recordings::{Owner, Recording};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingView {
    pub call_id: String,
    pub card_id: Option<i64>,
    pub account_id: Option<i64>,
    /// The node whose disk holds the file.
    pub node: String,
    /// `audio/wav` (16-bit mono, 8 kHz, both voices mixed).
    pub format: String,
    pub started: String,
    pub duration_ms: Option<i64>,
    pub bytes: Option<i64>,
    /// `recording` (the call goes on), `ready`, or `failed` (the disk was full or failed:
    /// the call went on without it).
    pub state: String,
    pub audio_url: String,
}

pub fn view(r: Recording) -> RecordingView {
    RecordingView {
        audio_url: format!("/v1/recordings/{}/audio", r.call_id),
        call_id: r.call_id,
        card_id: r.card_id,
        account_id: r.account_id,
        node: r.node,
        format: r.format,
        started: crate::cdr::stamp(r.started_ms),
        duration_ms: r.duration_ms,
        bytes: r.bytes,
        state: r.state,
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub card_id: Option<i64>,
    /// Every card of this issuer.
    pub issuer_id: Option<i64>,
    /// A member's (their mileage account).
    pub account_id: Option<i64>,
    /// At most this many (default 100).
    pub limit: Option<i64>,
}

/// One owner's recordings, newest first.
#[utoipa::path(
    get,
    path = "/v1/recordings",
    params(ListQuery),
    responses(
        (status = 200, description = "Recordings", body = [RecordingView]),
        (status = 422, description = "Not exactly one of card_id, issuer_id, account_id", body = Problem),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn list(
    state: web::Data<ApiState>,
    req: HttpRequest,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Admin]).await?;
    let owner = match (q.card_id, q.issuer_id, q.account_id) {
        (Some(c), None, None) => Owner::Card(c),
        (None, Some(i), None) => Owner::Issuer(i),
        (None, None, Some(a)) => Owner::Account(a),
        _ => {
            return Err(Problem::validation(
                "name exactly one of card_id, issuer_id, account_id",
            ));
        }
    };
    let limit = q.limit.unwrap_or(100);
    let rows = state
        .store
        .run(move |s| s.recordings_of(owner, limit))
        .await
        .map_err(Problem::from_store)?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(view).collect::<Vec<_>>()))
}

async fn load(state: &ApiState, call_id: String) -> Result<Recording, Problem> {
    state
        .store
        .run(move |s| s.recording(&call_id))
        .await
        .map_err(Problem::from_store)
}

/// One recording.
#[utoipa::path(
    get,
    path = "/v1/recordings/{call_id}",
    params(("call_id" = String, Path, description = "The call's id")),
    responses(
        (status = 200, description = "The recording", body = RecordingView),
        (status = 404, description = "No such recording", body = Problem),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn show(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Admin]).await?;
    Ok(HttpResponse::Ok().json(view(load(&state, path.into_inner()).await?)))
}

/// The recording's audio (WAV), with range requests.
#[utoipa::path(
    get,
    path = "/v1/recordings/{call_id}/audio",
    params(("call_id" = String, Path, description = "The call's id")),
    responses(
        (status = 200, description = "audio/wav"),
        (status = 206, description = "The range asked for"),
        (status = 404, description = "No such recording, or its file is on another node", body = Problem),
        (status = 416, description = "A range outside the file"),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn audio(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Admin]).await?;
    let r = load(&state, path.into_inner()).await?;
    serve(&req, &r).await
}

/// The file of `r` as a response that honours `Range` and `If-None-Match`.
pub async fn serve(req: &HttpRequest, r: &Recording) -> Result<HttpResponse, Problem> {
    use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
    let file = actix_files::NamedFile::open_async(&r.path)
        .await
        .map_err(|_| {
            Problem::new(
                404,
                "not-found",
                "Not found",
                &format!(
                    "the recording's file is not on this node (it was made on {})",
                    r.node
                ),
            )
        })?
        .set_content_type("audio/wav".parse().expect("a valid MIME type"))
        .set_content_disposition(ContentDisposition {
            disposition: DispositionType::Inline,
            parameters: vec![DispositionParam::Filename(format!("{}.wav", r.call_id))],
        });
    Ok(file.into_response(req))
}

/// Delete a recording: its file and its row.
#[utoipa::path(
    delete,
    path = "/v1/recordings/{call_id}",
    params(("call_id" = String, Path, description = "The call's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such recording", body = Problem),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn delete(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Admin]).await?;
    let r = load(&state, path.into_inner()).await?;
    crate::recordings::delete(&state.store, &r)
        .await
        .map_err(Problem::from_store)?;
    crate::telemetry::recordings_deleted("owner", 1);
    Ok(HttpResponse::NoContent().finish())
}
