//! What a card's calls sound like (C12): the greetings a visitor hears when the issuer
//! cannot take the call, the issuer's whisper before the question, and whether every
//! call-back of the card is recorded.
//!
//! - `GET /v1/cards/{id}/greetings`: the card's greetings and its recording setting.
//! - `PUT /v1/cards/{id}/greetings/{event}` (`no-answer`, `declined`, `busy`): audio in
//!   any common format (WAV, MP3, FLAC, Ogg Vorbis; at most 30 s), converted once; or
//!   `{"voice":"shipped"}` for the shipped voice in the card's language.
//!   `DELETE` turns it off: then nobody calls the visitor back in that case.
//! - `GET /v1/cards/{id}/greetings/{event}/audio`: an uploaded greeting as WAV.
//! - `PUT /v1/cards/{id}/recording` `{"record_calls": true}`.
//! - `PUT/DELETE /v1/issuers/{id}/whisper`: audio of at most 5 s.

use super::{ApiState, Problem, Scope, authorize};
use crate::clip::{Clip, ClipError};
use crate::store::greetings::EVENTS;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct GreetingView {
    /// `no-answer`, `declined` or `busy`.
    pub event: String,
    /// `shipped` (the switch's own voice in the card's language) or `uploaded`.
    pub voice: String,
    pub duration_ms: i64,
    /// The uploaded audio (WAV), for an uploaded greeting.
    pub audio_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CardVoiceView {
    pub card_id: i64,
    /// Greetings that are on; a case not listed calls nobody back.
    pub greetings: Vec<GreetingView>,
    /// Every call-back of the card is recorded.
    pub record_calls: bool,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoiceIn {
    /// `shipped`: the switch's own greeting in the card's language.
    pub voice: String,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordingIn {
    pub record_calls: bool,
}

/// An upload as the switch will play it, or why not (415 for a type that is not audio,
/// 422 for audio it cannot read, too long or silent).
pub fn read_upload(req: &HttpRequest, body: &[u8], max_ms: i64) -> Result<Clip, Problem> {
    let ct = content_type(req);
    if !(ct.starts_with("audio/")
        || ct.starts_with("application/octet-stream")
        || ct.starts_with("video/ogg"))
    {
        return Err(Problem::new(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "send the recording as audio (audio/wav, audio/mpeg, audio/flac, audio/ogg)",
        ));
    }
    crate::clip::decode(body, max_ms).map_err(clip_problem)
}

pub fn clip_problem(e: ClipError) -> Problem {
    Problem::new(422, "bad-audio", "Audio not accepted", &e.to_string())
}

fn content_type(req: &HttpRequest) -> String {
    req.headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn event_of(event: &str) -> Result<&'static str, Problem> {
    EVENTS.iter().copied().find(|e| *e == event).ok_or_else(|| {
        Problem::not_found(&format!(
            "greeting '{event}' (one of {})",
            EVENTS.join(", ")
        ))
    })
}

async fn voice_view(state: &ApiState, card_id: i64) -> Result<CardVoiceView, Problem> {
    let (card, greetings) = state
        .store
        .run(move |s| Ok((s.card(card_id)?, s.greetings(card_id)?)))
        .await
        .map_err(Problem::from_store)?;
    Ok(CardVoiceView {
        card_id,
        record_calls: card.record_calls,
        greetings: greetings
            .into_iter()
            .map(|g| GreetingView {
                audio_url: g
                    .audio
                    .as_ref()
                    .map(|_| format!("/v1/cards/{card_id}/greetings/{}/audio", g.event)),
                voice: if g.audio.is_some() {
                    "uploaded"
                } else {
                    "shipped"
                }
                .into(),
                event: g.event,
                duration_ms: g.duration_ms,
            })
            .collect(),
    })
}

/// The card's greetings and whether its call-backs are recorded.
#[utoipa::path(
    get,
    path = "/v1/cards/{id}/greetings",
    params(("id" = i64, Path, description = "Card id")),
    responses(
        (status = 200, description = "The card's greetings", body = CardVoiceView),
        (status = 404, description = "No such card", body = Problem),
    ),
    security(("bearer" = ["read"]))
)]
pub async fn list(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Read]).await?;
    Ok(HttpResponse::Ok().json(voice_view(&state, path.into_inner()).await?))
}

/// Turn a greeting on: uploaded audio (any common format, at most 30 s, converted once to
/// what the switch plays), or `{"voice":"shipped"}`.
#[utoipa::path(
    put,
    path = "/v1/cards/{id}/greetings/{event}",
    request_body(content = Vec<u8>, content_type = "audio/wav"),
    params(
        ("id" = i64, Path, description = "Card id"),
        ("event" = String, Path, description = "no-answer, declined or busy"),
    ),
    responses(
        (status = 200, description = "The card's greetings now", body = CardVoiceView),
        (status = 404, description = "No such card or case", body = Problem),
        (status = 415, description = "Not audio", body = Problem),
        (status = 422, description = "Audio the switch cannot read, longer than 30 s, or silent", body = Problem),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn put(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<(i64, String)>,
    body: web::Payload,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Admin]).await?;
    let body = super::read_body(&req, body, crate::clip::UPLOAD_MAX_BYTES).await?;
    let (card_id, event) = path.into_inner();
    let event = event_of(&event)?;
    state
        .store
        .run(move |s| s.card(card_id))
        .await
        .map_err(Problem::from_store)?;
    let audio = if content_type(&req).starts_with("application/json") {
        let v: VoiceIn = serde_json::from_slice(&body)
            .map_err(|e| Problem::validation(&format!("body: {e}")))?;
        if v.voice != "shipped" {
            return Err(Problem::validation(
                "voice must be \"shipped\" (or send the audio itself)",
            ));
        }
        None
    } else {
        Some(read_upload(&req, &body, crate::clip::GREETING_MAX_MS)?)
    };
    let (wav, ms) = match &audio {
        Some(clip) => (Some(clip.to_wav()), clip.duration_ms()),
        None => (None, 0),
    };
    state
        .store
        .run(move |s| s.set_greeting(card_id, event, wav.as_deref(), ms))
        .await
        .map_err(Problem::from_store)?;
    Ok(HttpResponse::Ok().json(voice_view(&state, card_id).await?))
}

/// Turn a greeting off: in that case nobody calls the visitor.
#[utoipa::path(
    delete,
    path = "/v1/cards/{id}/greetings/{event}",
    params(
        ("id" = i64, Path, description = "Card id"),
        ("event" = String, Path, description = "no-answer, declined or busy"),
    ),
    responses(
        (status = 204, description = "Off"),
        (status = 404, description = "No such card or case", body = Problem),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn delete(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<(i64, String)>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Admin]).await?;
    let (card_id, event) = path.into_inner();
    let event = event_of(&event)?;
    state
        .store
        .run(move |s| {
            s.card(card_id)?;
            s.remove_greeting(card_id, event)
        })
        .await
        .map_err(Problem::from_store)?;
    Ok(HttpResponse::NoContent().finish())
}

/// An uploaded greeting, as the switch plays it (WAV, 8 kHz mono).
#[utoipa::path(
    get,
    path = "/v1/cards/{id}/greetings/{event}/audio",
    params(
        ("id" = i64, Path, description = "Card id"),
        ("event" = String, Path, description = "no-answer, declined or busy"),
    ),
    responses(
        (status = 200, description = "audio/wav"),
        (status = 404, description = "No uploaded greeting for that case", body = Problem),
    ),
    security(("bearer" = ["read"]))
)]
pub async fn audio(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<(i64, String)>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Read]).await?;
    let (card_id, event) = path.into_inner();
    let event = event_of(&event)?;
    let greetings = state
        .store
        .run(move |s| s.greetings(card_id))
        .await
        .map_err(Problem::from_store)?;
    let wav = greetings
        .into_iter()
        .find(|g| g.event == event)
        .and_then(|g| g.audio)
        .ok_or_else(|| Problem::not_found("uploaded greeting"))?;
    Ok(HttpResponse::Ok().content_type("audio/wav").body(wav))
}

/// Record every call-back of the card (both parties hear "this call is recorded").
#[utoipa::path(
    put,
    path = "/v1/cards/{id}/recording",
    request_body = RecordingIn,
    params(("id" = i64, Path, description = "Card id")),
    responses(
        (status = 200, description = "The card's greetings and setting now", body = CardVoiceView),
        (status = 404, description = "No such card", body = Problem),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn put_recording(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<i64>,
    body: web::Json<RecordingIn>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Admin]).await?;
    let card_id = path.into_inner();
    let on = body.record_calls;
    state
        .store
        .run(move |s| s.set_record_calls(card_id, on))
        .await
        .map_err(Problem::from_store)?;
    Ok(HttpResponse::Ok().json(voice_view(&state, card_id).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WhisperView {
    pub issuer_id: i64,
    pub duration_ms: i64,
}

/// The issuer's whisper: at most 5 s of audio they hear on answering a call-back, before
/// the question (which card, which line).
#[utoipa::path(
    put,
    path = "/v1/issuers/{id}/whisper",
    request_body(content = Vec<u8>, content_type = "audio/wav"),
    params(("id" = i64, Path, description = "Issuer id")),
    responses(
        (status = 200, description = "Stored", body = WhisperView),
        (status = 404, description = "No such issuer", body = Problem),
        (status = 415, description = "Not audio", body = Problem),
        (status = 422, description = "Audio the switch cannot read, longer than 5 s, or silent", body = Problem),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn put_whisper(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<i64>,
    body: web::Payload,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Admin]).await?;
    let body = super::read_body(&req, body, crate::clip::UPLOAD_MAX_BYTES).await?;
    let issuer = path.into_inner();
    state
        .store
        .run(move |s| s.issuer(issuer))
        .await
        .map_err(Problem::from_store)?;
    let clip = read_upload(&req, &body, crate::clip::WHISPER_MAX_MS)?;
    let (wav, ms) = (clip.to_wav(), clip.duration_ms());
    state
        .store
        .run(move |s| s.set_whisper(issuer, &wav, ms))
        .await
        .map_err(Problem::from_store)?;
    Ok(HttpResponse::Ok().json(WhisperView {
        issuer_id: issuer,
        duration_ms: ms,
    }))
}

/// No whisper: the issuer hears the question at once.
#[utoipa::path(
    delete,
    path = "/v1/issuers/{id}/whisper",
    params(("id" = i64, Path, description = "Issuer id")),
    responses((status = 204, description = "Removed")),
    security(("bearer" = ["admin"]))
)]
pub async fn delete_whisper(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Admin]).await?;
    let issuer = path.into_inner();
    state
        .store
        .run(move |s| s.remove_whisper(issuer))
        .await
        .map_err(Problem::from_store)?;
    Ok(HttpResponse::NoContent().finish())
}
