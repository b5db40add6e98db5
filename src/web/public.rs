//! What a visitor sees: a card's public page (in their language when the card has it),
//! its QR code and vCard, the "Call for free" form and the request's live progress; and
//! the photos and static files the pages use.

use super::i18n::Lang;
use super::{Page, ProgressView, WebState, client_ip, csrf_ok, progress_view, render, see_other};
use crate::store::cards::{Card, CardNumber, CardText};
use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "card.html")]
pub(super) struct CardPage {
    pub(super) p: Page,
    slug: String,
    text: CardText,
    phones: Vec<PhoneLine>,
    photo: String,
    video_url: String,
    public_url: String,
    og_image: String,
    description: String,
    pub(super) number: String,
    pub(super) extension: String,
    /// Whether the card offers "Book a call".
    can_book: bool,
    /// The booking form's date and time, as typed (after a refusal).
    pub(super) book_date: String,
    pub(super) book_time: String,
    /// Which form a refusal belongs to ("call" or "book").
    pub(super) form: String,
}

pub struct PhoneLine {
    pub kind: String,
    pub number: String,
    /// For a `tel:` link (empty for an internet phone's SIP user).
    pub tel: String,
}

fn phone_lines(p: &Page, phones: &[CardNumber]) -> Vec<PhoneLine> {
    phones
        .iter()
        .map(|n| PhoneLine {
            kind: p.t(&format!("kind_{}", n.kind)).to_string(),
            number: n.number.clone(),
            tel: if crate::routing::is_sip_user(&n.number) && n.kind == "internet" {
                String::new()
            } else {
                n.number
                    .chars()
                    .filter(|c| c.is_ascii_digit() || *c == '+')
                    .collect()
            },
        })
        .collect()
}

/// The photo to show: the uploaded one, else the card's image link.
pub fn photo_url(card: &Card) -> String {
    if card.photo.is_empty() {
        card.image_url.clone()
    } else {
        format!("/photos/{}", card.photo)
    }
}

pub(super) async fn load(
    state: &WebState,
    slug: String,
) -> Result<(Card, Vec<CardText>), crate::store::StoreError> {
    state
        .store
        .run(move |s| {
            let card = s.card_by_slug(&slug)?;
            let texts = s.card_texts(card.id)?;
            Ok((card, texts))
        })
        .await
}

pub(super) fn card_page(
    state: &WebState,
    req: &HttpRequest,
    session: &Session,
    card: &Card,
    texts: &[CardText],
) -> CardPage {
    let mut p = Page::new(req, session, "brand");
    let text = crate::cards::text_for(card, texts, p.lang.code());
    p.title = text.name.clone();
    p.design = card.design.clone();
    let base = state.base_url(req);
    let photo = photo_url(card);
    let og_image = if photo.starts_with('/') {
        format!("{base}{photo}")
    } else {
        photo.clone()
    };
    let description = [text.title.as_str(), text.company.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(" · ");
    CardPage {
        phones: phone_lines(&p, &card.phone_numbers_in_order()),
        slug: card.slug().to_string(),
        text,
        photo,
        video_url: card.video_url.clone(),
        public_url: format!("{base}/c/{}", card.slug()),
        og_image,
        description,
        number: String::new(),
        extension: String::new(),
        can_book: state.bookings.is_some(),
        book_date: String::new(),
        book_time: String::new(),
        form: String::new(),
        p,
    }
}

/// `GET /c/{slug}`: the card. Revalidated on every visit (an ETag from the card's last
/// change, the language and the session's form token), so an edit shows at once.
pub async fn card(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
) -> HttpResponse {
    let (card, texts) = match load(&state, path.into_inner()).await {
        Ok(x) => x,
        Err(e) => return super::store_failure(&req, &e),
    };
    let page = card_page(&state, &req, &session, &card, &texts);
    let etag = {
        use sha2::Digest;
        let h = sha2::Sha256::digest(
            format!(
                "{}|{}|{}|{:?}",
                card.updated_ms,
                page.p.lang.code(),
                page.p.csrf,
                page.p.who.as_ref().map(|w| &w.name)
            )
            .as_bytes(),
        );
        format!("\"{}\"", hex::encode(&h[..12]))
    };
    let matches = req
        .headers()
        .get("If-None-Match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag)
        });
    if matches {
        return HttpResponse::NotModified()
            .insert_header(("ETag", etag))
            .insert_header(("Cache-Control", "private, no-cache"))
            .finish();
    }
    let mut resp = render(200, &page);
    let h = resp.headers_mut();
    h.insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("private, no-cache"),
    );
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&etag) {
        h.insert(actix_web::http::header::ETAG, v);
    }
    h.insert(
        actix_web::http::header::VARY,
        actix_web::http::header::HeaderValue::from_static("Accept-Language, Cookie"),
    );
    resp
}

/// `GET /c/{slug}/qr.svg`: a QR code of the card's public link.
pub async fn qr(
    state: web::Data<WebState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let slug = path.into_inner();
    let card = match state.store.run(move |s| s.card_by_slug(&slug)).await {
        Ok(c) => c,
        Err(e) => return super::store_failure(&req, &e),
    };
    let url = format!("{}/c/{}", state.base_url(&req), card.slug());
    match qrcode::QrCode::with_error_correction_level(url.as_bytes(), qrcode::EcLevel::M) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(240, 240)
                .quiet_zone(true)
                .build();
            HttpResponse::Ok()
                .content_type("image/svg+xml")
                .insert_header(("Cache-Control", "public, max-age=3600"))
                .body(svg)
        }
        Err(e) => super::message_page(&req, 500, "error", &e.to_string()),
    }
}

/// The card as a vCard 4.0 download, in the reader's language.
pub fn vcard_response(
    state: &WebState,
    req: &HttpRequest,
    card: &Card,
    texts: &[CardText],
) -> HttpResponse {
    let lang = Lang::of(req);
    let text = crate::cards::text_for(card, texts, lang.code());
    let base = state.base_url(req);
    let photo = photo_url(card);
    let photo = if photo.is_empty() {
        None
    } else if photo.starts_with('/') {
        Some(format!("{base}{photo}"))
    } else {
        Some(photo)
    };
    let body = crate::cards::vcard::export(
        &text,
        &card.phone_numbers_in_order(),
        &format!("{base}/c/{}", card.slug()),
        photo.as_deref(),
    );
    let file: String = text
        .name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>();
    let file = if file.is_empty() {
        format!("card-{}", card.id)
    } else {
        file
    };
    HttpResponse::Ok()
        .content_type("text/vcard; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{file}.vcf\""),
        ))
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}

/// `GET /c/{slug}/card.vcf`: "Save contact".
pub async fn vcard(
    state: web::Data<WebState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    match load(&state, path.into_inner()).await {
        Ok((card, texts)) => vcard_response(&state, &req, &card, &texts),
        Err(e) => super::store_failure(&req, &e),
    }
}

#[derive(Deserialize)]
pub struct CallForm {
    csrf: String,
    number: String,
    #[serde(default)]
    extension: String,
}

/// `POST /c/{slug}/call`: "Call for free". The call-back's own fences apply (per
/// address, per card, per number, daily limits, allowed kinds); a refusal is shown on the
/// card's page in the visitor's language, and nobody is dialled.
pub async fn call(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
    form: web::Form<CallForm>,
) -> HttpResponse {
    let (card, texts) = match load(&state, path.into_inner()).await {
        Ok(x) => x,
        Err(e) => return super::store_failure(&req, &e),
    };
    let f = form.into_inner();
    let mut page = card_page(&state, &req, &session, &card, &texts);
    page.number = f.number.chars().take(40).collect();
    page.extension = f.extension.chars().take(32).collect();
    if !csrf_ok(&session, &f.csrf) {
        page.p.errors.push(page.p.t("bad_form").into());
        return render(403, &page);
    }
    let Some(placing) = &state.placing else {
        page.p.errors.push(page.p.t("why_unavailable").into());
        return render(503, &page);
    };
    let ext = f.extension.trim();
    let text = if ext.is_empty() {
        f.number.trim().to_string()
    } else {
        format!("{};{ext}", f.number.trim())
    };
    match placing
        .callback(card.id, &text, client_ip(&req), false)
        .await
    {
        Ok(id) => see_other(&format!("/c/{}/calls/{id}", card.slug())),
        Err(e) => {
            let (status, words) = super::refusal_words(page.p.lang, &e);
            tracing::info!(card = card.id, error = %e, "call-back from the page refused");
            page.p
                .errors
                .push(format!("{}: {words}", page.p.t("refused")));
            render(status, &page)
        }
    }
}

#[derive(Template)]
#[template(path = "progress.html")]
pub struct ProgressPage {
    pub p: Page,
    pub v: ProgressView,
    pub words: String,
    pub back: String,
    pub heading: String,
}

/// `GET /c/{slug}/calls/{id}`: the request's steps, live (EventSource) or, without
/// JavaScript, refreshed every few seconds until it ends.
pub async fn progress(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (slug, id) = path.into_inner();
    let (card, texts) = match load(&state, slug).await {
        Ok(x) => x,
        Err(e) => return super::store_failure(&req, &e),
    };
    let Some(r) = state.placing.as_ref().and_then(|p| p.hub().get(&id)) else {
        return super::message_page(&req, 404, "error", Lang::of(&req).t("not_found"));
    };
    if r.card != Some(card.id) {
        return super::message_page(&req, 404, "error", Lang::of(&req).t("not_found"));
    }
    let mut p = Page::new(&req, &session, "progress");
    p.design = card.design.clone();
    let text = crate::cards::text_for(&card, &texts, p.lang.code());
    let v = progress_view(p.lang, &r);
    render(
        200,
        &ProgressPage {
            words: super::progress_words(p.lang),
            heading: text.name,
            back: format!("/c/{}", card.slug()),
            v,
            p,
        },
    )
}

/// `GET /photos/{name}`: an uploaded photo. Its name is its content's hash, so it can be
/// cached for good.
pub async fn photo(
    state: web::Data<WebState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let name = path.into_inner();
    let Some(ct) = crate::cards::photo::content_type(&name) else {
        return super::message_page(&req, 404, "error", Lang::of(&req).t("not_found"));
    };
    let file = crate::cards::photo::dir(&state.cfg.data_dir).join(&name);
    match web::block(move || std::fs::read(file)).await {
        Ok(Ok(bytes)) => HttpResponse::Ok()
            .content_type(ct)
            .insert_header(("Cache-Control", "public, max-age=31536000, immutable"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(bytes),
        _ => super::message_page(&req, 404, "error", Lang::of(&req).t("not_found")),
    }
}

const STYLE: &str = include_str!("../../static/style.css");
const SCRIPT: &str = include_str!("../../static/progress.js");
const ZONE: &str = include_str!("../../static/zone.js");

/// `GET /static/{name}`: the style sheet and the progress script, built in.
pub async fn asset(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let (ct, body) = match path.as_str() {
        "style.css" => ("text/css; charset=utf-8", STYLE),
        "progress.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "zone.js" => ("text/javascript; charset=utf-8", ZONE),
        _ => return super::message_page(&req, 404, "error", Lang::of(&req).t("not_found")),
    };
    HttpResponse::Ok()
        .content_type(ct)
        .insert_header(("Cache-Control", "public, max-age=300"))
        .body(body)
}
