//! A call booked for a set time, as its booker sees it: "Book a call" on a card's page
//! (a date and time in the booker's own time zone), the booking's page with its serial,
//! and moving or cancelling it until it fires. Finding it again takes the serial and the
//! number it calls (serials are read out; they are not secrets).

use super::i18n::Lang;
use super::{Page, WebState, client_ip, csrf_ok, render, see_other};
use crate::placing::bookings::{BookError, Owner, local_time};
use crate::store::bookings::Booking;
use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct BookForm {
    csrf: String,
    number: String,
    #[serde(default)]
    extension: String,
    date: String,
    time: String,
    #[serde(default)]
    time_zone: String,
}

/// A booking refusal in the reader's words.
fn refusal(lang: Lang, e: &BookError) -> (u16, String) {
    match e {
        BookError::Place(p) => {
            let (status, words) = super::refusal_words(lang, p);
            (status, words.to_string())
        }
        BookError::Time(d) => (422, format!("{} ({d})", lang.t("bad_time"))),
        BookError::Conflict(_) => (409, lang.t("booking_too_late").to_string()),
        BookError::NotFound => (404, lang.t("booking_not_found").to_string()),
    }
}

/// `POST /c/{slug}/book`: book a call-back for a date and time.
pub async fn book(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
    form: web::Form<BookForm>,
) -> HttpResponse {
    let (card, texts) = match super::public::load(&state, path.into_inner()).await {
        Ok(x) => x,
        Err(e) => return super::store_failure(&req, &e),
    };
    let f = form.into_inner();
    let mut page = super::public::card_page(&state, &req, &session, &card, &texts);
    page.number = f.number.chars().take(40).collect();
    page.extension = f.extension.chars().take(32).collect();
    page.book_date = f.date.chars().take(10).collect();
    page.book_time = f.time.chars().take(8).collect();
    page.form = "book".into();
    if !csrf_ok(&session, &f.csrf) {
        page.p.errors.push(page.p.t("bad_form").into());
        return render(403, &page);
    }
    let Some(bookings) = &state.bookings else {
        page.p.errors.push(page.p.t("why_unavailable").into());
        return render(503, &page);
    };
    let number = match f.extension.trim() {
        "" => f.number.trim().to_string(),
        ext => format!("{};{ext}", f.number.trim()),
    };
    let zone = match f.time_zone.trim() {
        "" => "Asia/Seoul",
        z => z,
    };
    let at = format!("{}T{}", f.date.trim(), f.time.trim());
    match bookings
        .book(
            Owner::Card(card.id),
            &number,
            &at,
            zone,
            client_ip(&req),
            false,
        )
        .await
    {
        Ok(b) => see_other(&format!("/bookings/{}", b.token)),
        Err(e) => {
            let (status, words) = refusal(page.p.lang, &e);
            page.p
                .errors
                .push(format!("{}: {words}", page.p.t("book_refused")));
            render(status, &page)
        }
    }
}

#[derive(Deserialize)]
pub struct MemberBookForm {
    csrf: String,
    number: String,
    date: String,
    time: String,
    #[serde(default)]
    time_zone: String,
    /// "Record this call" ticked.
    #[serde(default)]
    record: Option<String>,
}

/// `POST /member/book`: a member books a dial for later (their phone rings first then,
/// paid from their mileage then).
pub async fn book_dial(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    form: web::Form<MemberBookForm>,
) -> HttpResponse {
    let who = match super::require(&session, "member") {
        Ok(w) => w,
        Err(r) => return r,
    };
    let lang = Lang::of(&req);
    if !csrf_ok(&session, &form.csrf) {
        return super::message_page(&req, 403, "error", lang.t("bad_form"));
    }
    let Some(bookings) = &state.bookings else {
        return super::message_page(&req, 503, "error", lang.t("why_unavailable"));
    };
    let zone = match form.time_zone.trim() {
        "" => "Asia/Seoul",
        z => z,
    };
    let at = format!("{}T{}", form.date.trim(), form.time.trim());
    match bookings
        .book(
            Owner::Member(who.id),
            form.number.trim(),
            &at,
            zone,
            client_ip(&req),
            form.record.is_some(),
        )
        .await
    {
        Ok(b) => see_other(&format!("/bookings/{}", b.token)),
        Err(e) => {
            let (status, words) = refusal(lang, &e);
            super::message_page(&req, status, "book_refused", &words)
        }
    }
}

#[derive(Template)]
#[template(path = "booking.html")]
struct BookingPage {
    p: Page,
    b: Booking,
    local: String,
    state_words: String,
    cause_words: String,
    /// The card's page, or the member's.
    back: String,
    date: String,
    time: String,
}

async fn booking_page(
    state: &WebState,
    req: &HttpRequest,
    session: &Session,
    b: Booking,
    status: u16,
    errors: Vec<String>,
) -> HttpResponse {
    let mut p = Page::new(req, session, "booking");
    p.errors = errors;
    let back = match b.card_id {
        Some(card) => state
            .store
            .run(move |s| s.card(card))
            .await
            .map(|c| format!("/c/{}", c.slug()))
            .unwrap_or_default(),
        None => "/member".to_string(),
    };
    let local = local_time(b.due_ms, &b.time_zone);
    let state_words = p.t(&format!("booking_{}", b.state)).to_string();
    let cause_words = b
        .cause
        .as_deref()
        .map(|c| super::cause_words(p.lang, c).to_string())
        .unwrap_or_default();
    render(
        status,
        &BookingPage {
            date: local.get(..10).unwrap_or("").to_string(),
            time: local.get(11..16).unwrap_or("").to_string(),
            local: local.get(..16).unwrap_or("").replace('T', " "),
            state_words,
            cause_words,
            back,
            b,
            p,
        },
    )
}

pub async fn show(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
) -> HttpResponse {
    let token = path.into_inner();
    match state.store.run(move |s| s.booking(&token)).await {
        Ok(b) => booking_page(&state, &req, &session, b, 200, Vec::new()).await,
        Err(e) => super::store_failure(&req, &e),
    }
}

#[derive(Deserialize)]
pub struct MoveForm {
    csrf: String,
    date: String,
    time: String,
}

pub async fn reschedule(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
    form: web::Form<MoveForm>,
) -> HttpResponse {
    let at = format!("{}T{}", form.date.trim(), form.time.trim());
    change(
        &state,
        &req,
        &session,
        path.into_inner(),
        &form.csrf,
        Some(at),
    )
    .await
}

pub async fn cancel(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
    form: web::Form<super::account::CsrfOnly>,
) -> HttpResponse {
    change(&state, &req, &session, path.into_inner(), &form.csrf, None).await
}

/// Move the booking to `at` (or cancel it, `at` None), after the form's token is checked;
/// the booking's page, with the reason when it could not be changed.
async fn change(
    state: &WebState,
    req: &HttpRequest,
    session: &Session,
    token: String,
    csrf: &str,
    at: Option<String>,
) -> HttpResponse {
    let lang = Lang::of(req);
    let t = token.clone();
    let b = match state.store.run(move |s| s.booking(&t)).await {
        Ok(b) => b,
        Err(e) => return super::store_failure(req, &e),
    };
    let result = match (&state.bookings, csrf_ok(session, csrf)) {
        (_, false) => Err((403, lang.t("bad_form").to_string())),
        (None, true) => Err((503, lang.t("why_unavailable").to_string())),
        (Some(bookings), true) => match &at {
            Some(at) => bookings.reschedule(&token, at, None).await,
            None => bookings.cancel(&token).await,
        }
        .map_err(|e| refusal(lang, &e)),
    };
    match result {
        Ok(_) => see_other(&format!("/bookings/{token}")),
        Err((status, words)) => booking_page(state, req, session, b, status, vec![words]).await,
    }
}

#[derive(Deserialize)]
pub struct FindQuery {
    #[serde(default)]
    serial: String,
    #[serde(default)]
    number: String,
}

#[derive(Template)]
#[template(path = "booking_find.html")]
struct FindPage {
    p: Page,
    serial: String,
    number: String,
}

/// `GET /bookings/find?serial=…&number=…`: a booking by the serial its booker was given
/// and the number it calls.
pub async fn find(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    q: web::Query<FindQuery>,
) -> HttpResponse {
    let mut p = Page::new(&req, &session, "find_booking");
    let (serial, number) = (q.serial.trim().to_uppercase(), q.number.trim().to_string());
    if serial.is_empty() && number.is_empty() {
        return render(200, &FindPage { p, serial, number });
    }
    let (s2, n2) = (serial.clone(), number.clone());
    match state
        .store
        .run(move |s| s.booking_by_serial(&s2, &n2))
        .await
    {
        Ok(b) => see_other(&format!("/bookings/{}", b.token)),
        Err(crate::store::StoreError::NotFound(_)) => {
            p.errors.push(p.t("booking_not_found").into());
            render(404, &FindPage { p, serial, number })
        }
        Err(e) => super::store_failure(&req, &e),
    }
}
