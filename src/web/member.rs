//! A member's pages: mileage and its history, purchases, calls, the dial screen and the
//! phone book (C13). Dialling rings the member's own phone first (`placing::web_dial`).

use super::{Page, WebState, csrf_ok, progress_view, render, require, see_other};
use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

pub struct LedgerLine {
    pub when: String,
    pub amount: String,
    pub cause: String,
}

pub struct SaleLine {
    pub when: String,
    pub total: String,
    pub mileage: String,
}

#[derive(Template)]
#[template(path = "member.html")]
struct Dashboard {
    p: Page,
    balance: String,
    reserved: String,
    ledger: Vec<LedgerLine>,
    sales: Vec<SaleLine>,
    calls: Vec<super::issuer::CallLine>,
    book: Vec<crate::store::phonebook::Entry>,
    number: String,
    can_book: bool,
    /// Calls booked for later, not yet placed.
    upcoming: Vec<Upcoming>,
    recordings: Vec<super::voice::RecordingLine>,
}

pub struct Upcoming {
    pub token: String,
    pub serial: String,
    pub local: String,
    pub number: String,
}

async fn dashboard_page(
    state: &WebState,
    req: &HttpRequest,
    session: &Session,
    id: i64,
    status: u16,
    errors: Vec<String>,
    number: String,
) -> HttpResponse {
    let loaded = state
        .store
        .run(move |s| {
            let m = s.member(id)?;
            let account = s.account(m.account_id)?;
            let ledger = s.ledger(m.account_id, 0, 1000)?;
            let sales = s.sales_of(id, 50)?;
            let calls = s.last_cdrs(
                &crate::store::cdrs::CdrQuery {
                    account: Some(m.account_id),
                    ..Default::default()
                },
                50,
            )?;
            let book = s.phonebook(id)?;
            let booked = s.bookings_of(None, Some(id))?;
            Ok((account, ledger, sales, calls, book, booked))
        })
        .await;
    let (account, ledger, sales, calls, book, booked) = match loaded {
        Ok(x) => x,
        Err(e) => return super::store_failure(req, &e),
    };
    let mut p = Page::new(req, session, "mileage");
    p.errors = errors;
    let recordings = super::voice::recording_lines(
        state,
        &p,
        crate::store::recordings::Owner::Account(account.id),
    )
    .await;
    let ledger = ledger
        .iter()
        .rev()
        .filter(|e| e.kind == "credit" || e.kind == "debit")
        .take(50)
        .map(|e| LedgerLine {
            when: p.when(&e.created_ms),
            amount: if e.kind == "debit" {
                format!("-{}", super::group(e.amount))
            } else {
                format!("+{}", super::group(e.amount))
            },
            cause: e.cause.clone(),
        })
        .collect();
    let sales = sales
        .iter()
        .map(|(_, total, mileage, at)| SaleLine {
            when: p.when(at),
            total: super::group(*total),
            mileage: super::group(*mileage),
        })
        .collect();
    let calls = super::issuer::call_lines(&p, &calls);
    let upcoming = booked
        .into_iter()
        .filter(|b| matches!(b.state.as_str(), "scheduled" | "claimed" | "dialling"))
        .map(|b| Upcoming {
            local: crate::placing::bookings::local_time(b.due_ms, &b.time_zone)
                .get(..16)
                .unwrap_or("")
                .replace('T', " "),
            token: b.token,
            serial: b.serial,
            number: b.number,
        })
        .collect();
    render(
        status,
        &Dashboard {
            balance: super::group(account.balance),
            reserved: super::group(account.reserved),
            ledger,
            sales,
            calls,
            book,
            number,
            can_book: state.bookings.is_some(),
            upcoming,
            recordings,
            p,
        },
    )
}

pub async fn dashboard(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
) -> HttpResponse {
    match require(&session, "member") {
        Ok(w) => dashboard_page(&state, &req, &session, w.id, 200, Vec::new(), String::new()).await,
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub struct DialForm {
    csrf: String,
    #[serde(default)]
    number: String,
    /// A phone book entry to call instead of a typed number.
    #[serde(default)]
    entry: Option<i64>,
    /// "Record this call" ticked.
    #[serde(default)]
    record: Option<String>,
}

/// `POST /member/dial`: the member's phone rings first, then the number.
pub async fn dial(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    form: web::Form<DialForm>,
) -> HttpResponse {
    let who = match require(&session, "member") {
        Ok(w) => w,
        Err(r) => return r,
    };
    let f = form.into_inner();
    let lang = super::i18n::Lang::of(&req);
    if !csrf_ok(&session, &f.csrf) {
        return dashboard_page(
            &state,
            &req,
            &session,
            who.id,
            403,
            vec![lang.t("bad_form").into()],
            f.number,
        )
        .await;
    }
    let number = match f.entry {
        Some(entry) => {
            let id = who.id;
            match state.store.run(move |s| s.phonebook_entry(id, entry)).await {
                Ok(e) => e.number,
                Err(e) => return super::store_failure(&req, &e),
            }
        }
        None => f.number.trim().to_string(),
    };
    let Some(placing) = &state.placing else {
        return dashboard_page(
            &state,
            &req,
            &session,
            who.id,
            503,
            vec![lang.t("why_unavailable").into()],
            number,
        )
        .await;
    };
    match placing.web_dial(who.id, &number, f.record.is_some()).await {
        Ok(id) => see_other(&format!("/member/calls/{id}")),
        Err(e) => {
            let (status, words) = super::refusal_words(lang, &e);
            let text = format!("{}: {words}", lang.t("refused"));
            dashboard_page(&state, &req, &session, who.id, status, vec![text], number).await
        }
    }
}

pub async fn progress(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
) -> HttpResponse {
    let who = match require(&session, "member") {
        Ok(w) => w,
        Err(r) => return r,
    };
    let id = path.into_inner();
    let Some(r) = state.placing.as_ref().and_then(|p| p.hub().get(&id)) else {
        return super::message_page(
            &req,
            404,
            "error",
            super::i18n::Lang::of(&req).t("not_found"),
        );
    };
    if r.member != Some(who.id) {
        return super::message_page(
            &req,
            404,
            "error",
            super::i18n::Lang::of(&req).t("not_found"),
        );
    }
    let p = Page::new(&req, &session, "progress");
    let v = progress_view(p.lang, &r);
    render(
        200,
        &super::public::ProgressPage {
            words: super::progress_words(p.lang),
            heading: r.number.clone(),
            back: "/member".into(),
            v,
            p,
        },
    )
}

#[derive(Deserialize)]
pub struct EntryForm {
    csrf: String,
    name: String,
    number: String,
}

pub async fn add_entry(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    form: web::Form<EntryForm>,
) -> HttpResponse {
    save_entry(&state, &req, &session, None, form.into_inner()).await
}

pub async fn update_entry(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<i64>,
    form: web::Form<EntryForm>,
) -> HttpResponse {
    save_entry(
        &state,
        &req,
        &session,
        Some(path.into_inner()),
        form.into_inner(),
    )
    .await
}

/// Add an entry (`entry` None) or change one, after the form's token and the name and
/// number are checked.
async fn save_entry(
    state: &WebState,
    req: &HttpRequest,
    session: &Session,
    entry: Option<i64>,
    form: EntryForm,
) -> HttpResponse {
    let who = match require(session, "member") {
        Ok(w) => w,
        Err(r) => return r,
    };
    let lang = super::i18n::Lang::of(req);
    let checked = if csrf_ok(session, &form.csrf) {
        crate::placing::check_phonebook_entry(&form.name, &form.number).map_err(|e| (422, e))
    } else {
        Err((403, lang.t("bad_form").to_string()))
    };
    let (name, number) = match checked {
        Ok(x) => x,
        Err((status, e)) => {
            return dashboard_page(state, req, session, who.id, status, vec![e], String::new())
                .await;
        }
    };
    let id = who.id;
    let saved = state
        .store
        .run(move |s| match entry {
            Some(entry) => s.update_phonebook_entry(id, entry, &name, &number),
            None => s.add_phonebook_entry(id, &name, &number),
        })
        .await;
    match saved {
        Ok(_) => see_other("/member#phonebook"),
        Err(e) => super::store_failure(req, &e),
    }
}

pub async fn delete_entry(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<i64>,
    form: web::Form<super::account::CsrfOnly>,
) -> HttpResponse {
    let who = match require(&session, "member") {
        Ok(w) => w,
        Err(r) => return r,
    };
    if !csrf_ok(&session, &form.csrf) {
        return super::message_page(
            &req,
            403,
            "error",
            super::i18n::Lang::of(&req).t("bad_form"),
        );
    }
    let (id, entry) = (who.id, path.into_inner());
    match state
        .store
        .run(move |s| s.delete_phonebook_entry(id, entry))
        .await
    {
        Ok(()) => see_other("/member#phonebook"),
        Err(e) => super::store_failure(&req, &e),
    }
}
