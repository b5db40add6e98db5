//! What a card's calls sound like, and what was recorded (C12), on the pages: an issuer
//! turns each greeting on (the shipped voice or their own upload, in any common audio
//! format), records a whisper, has every call-back of a card recorded, and plays back or
//! deletes recordings in the browser; a member plays back their own recorded calls.

use super::{Page, WebState, Who, csrf_ok, see_other};
use crate::store::StoreError;
use crate::store::greetings::EVENTS;
use crate::store::recordings::{Owner, Recording};
use actix_multipart::form::{MultipartForm, tempfile::TempFile, text::Text};
use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse, web};

/// One of a card's greetings, as the editor lists it.
pub struct GreetingLine {
    pub event: String,
    pub label: String,
    /// Off, the shipped voice, or the issuer's own recording (with its length).
    pub state: String,
    pub uploaded: bool,
}

/// A recording as the issuer's and the member's pages list it.
pub struct RecordingLine {
    pub call_id: String,
    pub started: String,
    /// Its length, as the greetings show theirs ("2.5 s").
    pub length: String,
    /// Ready to play; otherwise `state` says why not.
    pub ready: bool,
    pub state: String,
}

pub async fn greeting_lines(state: &WebState, p: &Page, card_id: i64) -> Vec<GreetingLine> {
    let on = state
        .store
        .run(move |s| s.greetings(card_id))
        .await
        .unwrap_or_default();
    EVENTS
        .iter()
        .map(|event| {
            let g = on.iter().find(|g| g.event == *event);
            let uploaded = g.is_some_and(|g| g.audio.is_some());
            GreetingLine {
                event: event.to_string(),
                label: p.t(&format!("greeting_{}", event.replace('-', "_"))).into(),
                state: match g {
                    None => p.t("greeting_off").into(),
                    Some(_) if !uploaded => p.t("greeting_shipped").into(),
                    Some(g) => format!(
                        "{} ({:.1} s)",
                        p.t("greeting_uploaded"),
                        g.duration_ms as f64 / 1000.0
                    ),
                },
                uploaded,
            }
        })
        .collect()
}

pub async fn recording_lines(state: &WebState, p: &Page, owner: Owner) -> Vec<RecordingLine> {
    state
        .store
        .run(move |s| s.recordings_of(owner, 100))
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| RecordingLine {
            started: p.when(&r.started_ms),
            length: format!("{:.1} s", r.duration_ms.unwrap_or(0) as f64 / 1000.0),
            ready: r.state == "ready",
            state: p.t(&format!("recording_{}", r.state)).into(),
            call_id: r.call_id,
        })
        .collect()
}

/// An audio upload from a page's form: its bytes, or why not.
fn upload_bytes(f: &Option<TempFile>) -> Result<Vec<u8>, String> {
    match f.as_ref().filter(|f| f.size > 0) {
        None => Err("choose an audio file (WAV, MP3, FLAC or Ogg)".into()),
        Some(f) if f.size > crate::clip::UPLOAD_MAX_BYTES => Err(format!(
            "the file is larger than {} MB",
            crate::clip::UPLOAD_MAX_BYTES >> 20
        )),
        Some(f) => std::fs::read(f.file.path()).map_err(|e| e.to_string()),
    }
}

async fn convert(bytes: Vec<u8>, max_ms: i64) -> Result<crate::clip::Clip, String> {
    web::block(move || crate::clip::decode(&bytes, max_ms))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// The issuer's card `id`, or not found.
async fn own_card(state: &WebState, who: &Who, id: i64) -> Result<(), StoreError> {
    let issuer = who.id;
    state
        .store
        .run(move |s| {
            let card = s.card(id)?;
            if card.issuer_id != issuer {
                return Err(StoreError::NotFound("card"));
            }
            Ok(())
        })
        .await
}

#[derive(MultipartForm)]
pub struct AudioForm {
    csrf: Option<Text<String>>,
    /// `upload`, `shipped` or `off`.
    action: Option<Text<String>>,
    audio: Option<TempFile>,
}

fn text(t: &Option<Text<String>>) -> String {
    t.as_ref().map(|t| t.0.clone()).unwrap_or_default()
}

/// A form an issuer sent: who, once logged in and with the session's token (else the
/// page to answer with, as `super::require`).
#[allow(clippy::result_large_err)]
fn issuer_posting(req: &HttpRequest, session: &Session, csrf: &str) -> Result<Who, HttpResponse> {
    let who = super::require(session, "issuer")?;
    if !csrf_ok(session, csrf) {
        let lang = super::i18n::Lang::of(req);
        return Err(super::message_page(req, 403, "error", lang.t("bad_form")));
    }
    Ok(who)
}

fn wav(bytes: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("audio/wav")
        .insert_header(("Cache-Control", "private, no-cache"))
        .body(bytes)
}

/// Back to `to` with `error` shown there (or the saved notice).
fn back(session: &Session, to: &str, error: Option<String>) -> HttpResponse {
    match error {
        Some(e) => {
            let _ = session.insert("error", e);
            see_other(to)
        }
        None => see_other(&format!("{to}?saved=1")),
    }
}

/// `POST /issuer/cards/{id}/greetings/{event}`: upload one, use the shipped voice, or off.
pub async fn set_greeting(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(i64, String)>,
    MultipartForm(form): MultipartForm<AudioForm>,
) -> HttpResponse {
    let who = match issuer_posting(&req, &session, &text(&form.csrf)) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let lang = super::i18n::Lang::of(&req);
    let (id, event) = path.into_inner();
    let Some(event) = EVENTS.iter().copied().find(|e| *e == event) else {
        return super::message_page(&req, 404, "error", lang.t("not_found"));
    };
    if let Err(e) = own_card(&state, &who, id).await {
        return super::store_failure(&req, &e);
    }
    let to = format!("/issuer/cards/{id}");
    let audio = match text(&form.action).as_str() {
        "off" => {
            return match state.store.run(move |s| s.remove_greeting(id, event)).await {
                Ok(_) => back(&session, &to, None),
                Err(e) => super::store_failure(&req, &e),
            };
        }
        "shipped" => None,
        _ => {
            let clip = match upload_bytes(&form.audio) {
                Ok(b) => convert(b, crate::clip::GREETING_MAX_MS).await,
                Err(e) => Err(e),
            };
            match clip {
                Ok(c) => Some(c),
                Err(e) => {
                    return back(&session, &to, Some(format!("{}: {e}", lang.t("greetings"))));
                }
            }
        }
    };
    let (wav, ms) = match &audio {
        Some(c) => (Some(c.to_wav()), c.duration_ms()),
        None => (None, 0),
    };
    match state
        .store
        .run(move |s| s.set_greeting(id, event, wav.as_deref(), ms))
        .await
    {
        Ok(()) => back(&session, &to, None),
        Err(e) => super::store_failure(&req, &e),
    }
}

/// `GET /issuer/cards/{id}/greetings/{event}/audio`: the issuer's own greeting, to hear.
pub async fn greeting_audio(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(i64, String)>,
) -> HttpResponse {
    let who = match super::require(&session, "issuer") {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (id, event) = path.into_inner();
    if let Err(e) = own_card(&state, &who, id).await {
        return super::store_failure(&req, &e);
    }
    let uploaded = state
        .store
        .run(move |s| s.greetings(id))
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|g| g.event == event)
        .and_then(|g| g.audio);
    match uploaded {
        Some(w) => wav(w),
        None => super::store_failure(&req, &StoreError::NotFound("greeting")),
    }
}

#[derive(serde::Deserialize)]
pub struct RecordForm {
    csrf: String,
    #[serde(default)]
    record_calls: Option<String>,
}

/// `POST /issuer/cards/{id}/recording`: record every call-back of the card, or stop.
pub async fn set_recording(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<i64>,
    form: web::Form<RecordForm>,
) -> HttpResponse {
    let who = match issuer_posting(&req, &session, &form.csrf) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let id = path.into_inner();
    if let Err(e) = own_card(&state, &who, id).await {
        return super::store_failure(&req, &e);
    }
    let on = form.record_calls.is_some();
    match state.store.run(move |s| s.set_record_calls(id, on)).await {
        Ok(()) => back(&session, &format!("/issuer/cards/{id}"), None),
        Err(e) => super::store_failure(&req, &e),
    }
}

/// `POST /issuer/whisper`: the issuer's whisper (at most 5 s), or none.
pub async fn set_whisper(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    MultipartForm(form): MultipartForm<AudioForm>,
) -> HttpResponse {
    let who = match issuer_posting(&req, &session, &text(&form.csrf)) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let lang = super::i18n::Lang::of(&req);
    let issuer = who.id;
    if text(&form.action) == "off" {
        return match state.store.run(move |s| s.remove_whisper(issuer)).await {
            Ok(_) => back(&session, "/issuer", None),
            Err(e) => super::store_failure(&req, &e),
        };
    }
    let clip = match upload_bytes(&form.audio) {
        Ok(b) => convert(b, crate::clip::WHISPER_MAX_MS).await,
        Err(e) => Err(e),
    };
    let clip = match clip {
        Ok(c) => c,
        Err(e) => {
            return back(
                &session,
                "/issuer",
                Some(format!("{}: {e}", lang.t("whisper"))),
            );
        }
    };
    let (wav, ms) = (clip.to_wav(), clip.duration_ms());
    match state
        .store
        .run(move |s| s.set_whisper(issuer, &wav, ms))
        .await
    {
        Ok(()) => back(&session, "/issuer", None),
        Err(e) => super::store_failure(&req, &e),
    }
}

/// `GET /issuer/whisper/audio`: the issuer's whisper, to hear.
pub async fn whisper_audio(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
) -> HttpResponse {
    let who = match super::require(&session, "issuer") {
        Ok(w) => w,
        Err(r) => return r,
    };
    let issuer = who.id;
    match state.store.run(move |s| s.whisper(issuer)).await {
        Ok(Some((bytes, _))) => wav(bytes),
        Ok(None) => super::store_failure(&req, &StoreError::NotFound("whisper")),
        Err(e) => super::store_failure(&req, &e),
    }
}

/// The recording `call_id` if the logged-in issuer or member owns it.
async fn owned_recording(
    state: &WebState,
    who: &Who,
    call_id: String,
) -> Result<Recording, StoreError> {
    let who = who.clone();
    state
        .store
        .run(move |s| {
            let r = s.recording(&call_id)?;
            let mine = match who.role.as_str() {
                "issuer" => s.recording_issuer(&r)? == Some(who.id),
                "member" => r.account_id == Some(s.member(who.id)?.account_id),
                _ => false,
            };
            if !mine {
                return Err(StoreError::NotFound("recording"));
            }
            Ok(r)
        })
        .await
}

/// `GET /recordings/{call_id}/audio`: the owner plays it (range requests: the player seeks).
pub async fn recording_audio(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
) -> HttpResponse {
    let Some(who) = super::current(&session) else {
        return see_other("/login");
    };
    match owned_recording(&state, &who, path.into_inner()).await {
        Ok(r) => match crate::api::recordings::serve(&req, &r).await {
            Ok(resp) => resp,
            Err(_) => super::store_failure(&req, &StoreError::NotFound("recording")),
        },
        Err(e) => super::store_failure(&req, &e),
    }
}

/// `POST /recordings/{call_id}/delete`: the owner deletes it, file and row.
pub async fn delete_recording(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
    form: web::Form<super::account::CsrfOnly>,
) -> HttpResponse {
    let Some(who) = super::current(&session) else {
        return see_other("/login");
    };
    if !csrf_ok(&session, &form.csrf) {
        let lang = super::i18n::Lang::of(&req);
        return super::message_page(&req, 403, "error", lang.t("bad_form"));
    }
    let r = match owned_recording(&state, &who, path.into_inner()).await {
        Ok(r) => r,
        Err(e) => return super::store_failure(&req, &e),
    };
    if let Err(e) = crate::recordings::delete(&state.store, &r).await {
        return super::store_failure(&req, &e);
    }
    crate::telemetry::recordings_deleted("owner", 1);
    match (who.role.as_str(), r.card_id) {
        ("issuer", Some(card)) => back(&session, &format!("/issuer/cards/{card}"), None),
        ("issuer", None) => see_other("/issuer"),
        _ => see_other("/member#recordings"),
    }
}
