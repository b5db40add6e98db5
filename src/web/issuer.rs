//! An issuer's pages: the guild (balance, top-ups, minutes left per kind of number), the
//! cards with their calls, the card editor (two language versions, numbers by kind, a
//! photo, a design, the quota), vCard export and import.

use super::{Page, WebState, Who, csrf_ok, render, require, see_other};
use crate::cards::Draft;
use crate::cdr::CallRecord;
use crate::store::StoreError;
use crate::store::cards::{Card, CardNumber, CardText};
use actix_multipart::form::{MultipartForm, tempfile::TempFile, text::Text};
use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

/// A call on a card as the issuer's tables show it.
pub struct CallLine {
    pub from: String,
    pub to: String,
    pub start: String,
    pub end: String,
    pub secs: i64,
    pub cost: String,
    pub cause: String,
}

pub fn call_lines(p: &Page, records: &[CallRecord]) -> Vec<CallLine> {
    records
        .iter()
        .rev()
        .map(|r| CallLine {
            from: r.caller.clone(),
            to: r.callee.clone(),
            start: p.when(&r.answered_ms.unwrap_or(r.setup_ms)),
            end: p.when(&r.ended_ms),
            secs: r.billed_secs,
            cost: super::group(r.cost),
            cause: r.cause.clone(),
        })
        .collect()
}

pub struct CardLine {
    pub id: i64,
    pub name: String,
    pub slug: String,
    pub quota_left: i64,
    pub quota_used: i64,
    pub calls: i64,
}

pub struct KindLine {
    pub kind: String,
    pub per_minute: String,
    pub minutes: i64,
}

pub struct TopUp {
    pub when: String,
    pub amount: String,
    pub cause: String,
}

#[derive(Template)]
#[template(path = "issuer.html")]
struct Dashboard {
    p: Page,
    balance: String,
    reserved: String,
    kinds: Vec<KindLine>,
    topups: Vec<TopUp>,
    cards: Vec<CardLine>,
    /// The whisper's length, if the issuer recorded one.
    whisper: Option<String>,
}

pub async fn dashboard(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
) -> HttpResponse {
    let who = match require(&session, "issuer") {
        Ok(w) => w,
        Err(r) => return r,
    };
    let id = who.id;
    let loaded = state
        .store
        .run(move |s| {
            let issuer = s.issuer(id)?;
            let account = s.account(issuer.account_id)?;
            let ledger = s.ledger(issuer.account_id, 0, 1000)?;
            let cards = s.cards_of(id)?;
            let whisper = s.whisper(id)?.map(|(_, ms)| ms);
            let mut counts = Vec::new();
            for c in &cards {
                counts.push(s.count_cdrs(&crate::store::cdrs::CdrQuery {
                    card: Some(c.id),
                    ..Default::default()
                })?);
            }
            Ok((account, ledger, cards, counts, whisper))
        })
        .await;
    let (account, ledger, cards, counts, whisper) = match loaded {
        Ok(x) => x,
        Err(e) => return super::store_failure(&req, &e),
    };
    let mut p = Page::new(&req, &session, "guild");
    if let Some(Ok(error)) = session.remove_as::<String>("error") {
        p.errors.push(error);
    }
    let tariffs = state.tariffs();
    let available = account.available();
    let kinds = tariffs
        .iter()
        .filter(|(k, _)| *k == crate::billing::AccountKind::Guild)
        .map(|(_, t)| KindLine {
            kind: p.t(&format!("kind_{}", t.destination.as_str())).to_string(),
            per_minute: super::group(t.per_minute),
            minutes: t
                .max_secs(available, tariffs.max_call_secs.max(1) * 1_000_000)
                .unwrap_or(0)
                / 60,
        })
        .filter(|k| k.kind != "?")
        .collect();
    let topups = ledger
        .iter()
        .rev()
        .filter(|e| e.kind == "credit" && e.amount > 0)
        .take(50)
        .map(|e| TopUp {
            when: p.when(&e.created_ms),
            amount: super::group(e.amount),
            cause: e.cause.clone(),
        })
        .collect();
    let cards = cards
        .iter()
        .zip(counts)
        .map(|(c, n)| CardLine {
            id: c.id,
            name: c.name.clone(),
            slug: c.slug().to_string(),
            quota_left: c.quota_left(),
            quota_used: c.quota_used,
            calls: n,
        })
        .collect();
    render(
        200,
        &Dashboard {
            balance: super::group(account.balance),
            reserved: super::group(account.reserved),
            kinds,
            topups,
            cards,
            whisper: whisper.map(|ms| format!("{:.1} s", ms as f64 / 1000.0)),
            p,
        },
    )
}

/// The editor's fields (a multipart form, for the photo).
#[derive(MultipartForm)]
pub struct CardForm {
    csrf: Option<Text<String>>,
    language: Option<Text<String>>,
    name: Option<Text<String>>,
    title: Option<Text<String>>,
    company: Option<Text<String>>,
    text: Option<Text<String>>,
    alt_language: Option<Text<String>>,
    alt_name: Option<Text<String>>,
    alt_title: Option<Text<String>>,
    alt_company: Option<Text<String>>,
    alt_text: Option<Text<String>>,
    video_url: Option<Text<String>>,
    design: Option<Text<String>>,
    quota: Option<Text<String>>,
    callback_countries: Option<Text<String>>,
    phone0_kind: Option<Text<String>>,
    phone0_number: Option<Text<String>>,
    phone0_callback: Option<Text<String>>,
    phone1_kind: Option<Text<String>>,
    phone1_number: Option<Text<String>>,
    phone1_callback: Option<Text<String>>,
    phone2_kind: Option<Text<String>>,
    phone2_number: Option<Text<String>>,
    phone2_callback: Option<Text<String>>,
    phone3_kind: Option<Text<String>>,
    phone3_number: Option<Text<String>>,
    phone3_callback: Option<Text<String>>,
    remove_photo: Option<Text<String>>,
    photo: Option<TempFile>,
}

fn field(f: &Option<Text<String>>) -> String {
    f.as_ref().map(|t| t.0.clone()).unwrap_or_default()
}

/// Rows of the editor's phone table.
pub const PHONE_ROWS: usize = 4;

impl CardForm {
    /// The draft the form describes (unchecked), with the quota as typed.
    fn draft(&self, keep_image_url: &str) -> (Draft, Option<String>) {
        let phones = [
            (
                &self.phone0_kind,
                &self.phone0_number,
                &self.phone0_callback,
            ),
            (
                &self.phone1_kind,
                &self.phone1_number,
                &self.phone1_callback,
            ),
            (
                &self.phone2_kind,
                &self.phone2_number,
                &self.phone2_callback,
            ),
            (
                &self.phone3_kind,
                &self.phone3_number,
                &self.phone3_callback,
            ),
        ]
        .into_iter()
        .filter(|(_, n, _)| !field(n).trim().is_empty())
        .map(|(k, n, c)| CardNumber {
            kind: field(k),
            number: field(n).trim().to_string(),
            callback: !field(c).is_empty(),
        })
        .collect();
        let alt_name = field(&self.alt_name);
        let versions = if alt_name.trim().is_empty() {
            Vec::new()
        } else {
            vec![CardText {
                language: field(&self.alt_language),
                name: alt_name.trim().to_string(),
                title: field(&self.alt_title).trim().to_string(),
                company: field(&self.alt_company).trim().to_string(),
                text: field(&self.alt_text),
            }]
        };
        let quota_text = field(&self.quota);
        let (quota, bad_quota) = match quota_text.trim().parse::<i64>() {
            Ok(q) => (q, None),
            Err(_) => (
                0,
                Some(format!(
                    "quota '{}' is not a whole number",
                    quota_text.trim()
                )),
            ),
        };
        (
            Draft {
                main: CardText {
                    language: field(&self.language),
                    name: field(&self.name),
                    title: field(&self.title),
                    company: field(&self.company),
                    text: field(&self.text),
                },
                versions,
                image_url: keep_image_url.to_string(),
                video_url: field(&self.video_url).trim().to_string(),
                design: field(&self.design),
                phones,
                quota,
                callback_countries: field(&self.callback_countries)
                    .split([',', ' '])
                    .map(str::to_string)
                    .filter(|c| !c.trim().is_empty())
                    .collect(),
            },
            bad_quota,
        )
    }

    fn photo_bytes(&self) -> Option<std::io::Result<Vec<u8>>> {
        let f = self.photo.as_ref()?;
        if f.size == 0 {
            return None;
        }
        Some(std::fs::read(f.file.path()))
    }
}

/// One row of the editor's phone table.
pub struct PhoneRow {
    pub i: usize,
    pub kind: String,
    pub number: String,
    pub callback: bool,
}

#[derive(Template)]
#[template(path = "card_edit.html")]
struct Editor {
    p: Page,
    /// None: a new card.
    card: Option<EditedCard>,
    d: Draft,
    alt: CardText,
    phones: Vec<PhoneRow>,
    designs: Vec<(String, String)>,
    languages: Vec<(String, String)>,
    kinds: Vec<(String, String)>,
    countries: String,
    calls: Vec<CallLine>,
}

pub struct EditedCard {
    pub id: i64,
    pub slug: String,
    pub public_url: String,
    pub photo: String,
    pub quota_used: i64,
    pub quota_left: i64,
    pub record_calls: bool,
    pub greetings: Vec<super::voice::GreetingLine>,
    pub recordings: Vec<super::voice::RecordingLine>,
}

fn editor(p: Page, card: Option<EditedCard>, d: Draft, calls: Vec<CallLine>) -> Editor {
    let alt = d.versions.first().cloned().unwrap_or_else(|| CardText {
        language: if d.main.language == "en" {
            "ko".into()
        } else {
            "en".into()
        },
        ..Default::default()
    });
    let mut phones: Vec<PhoneRow> = d
        .phones
        .iter()
        .take(PHONE_ROWS)
        .enumerate()
        .map(|(i, n)| PhoneRow {
            i,
            kind: n.kind.clone(),
            number: n.number.clone(),
            callback: n.callback,
        })
        .collect();
    while phones.len() < PHONE_ROWS {
        phones.push(PhoneRow {
            i: phones.len(),
            kind: if phones.is_empty() {
                "mobile".into()
            } else {
                "landline".into()
            },
            number: String::new(),
            callback: false,
        });
    }
    let designs = crate::cards::DESIGNS
        .iter()
        .map(|d| (d.to_string(), p.t(&format!("design_{d}")).to_string()))
        .collect();
    let languages = crate::cards::LANGUAGES
        .iter()
        .map(|l| (l.to_string(), p.t(&format!("lang_{l}")).to_string()))
        .collect();
    let kinds = ["mobile", "landline", "internet"]
        .iter()
        .map(|k| (k.to_string(), p.t(&format!("kind_{k}")).to_string()))
        .collect();
    Editor {
        countries: d.callback_countries.join(", "),
        p,
        card,
        alt,
        phones,
        designs,
        languages,
        kinds,
        calls,
        d,
    }
}

pub async fn new_form(req: HttpRequest, session: Session) -> HttpResponse {
    if let Err(r) = require(&session, "issuer") {
        return r;
    }
    let p = Page::new(&req, &session, "new_card");
    let d = Draft {
        main: CardText {
            language: p.lang.code().into(),
            ..Default::default()
        },
        design: "classic".into(),
        quota: 100,
        ..Default::default()
    };
    render(200, &editor(p, None, d, Vec::new()))
}

/// Store an uploaded photo; the file name, or the words of what is wrong with it.
async fn take_photo(state: &WebState, bytes: Vec<u8>) -> Result<String, String> {
    let dir = state.cfg.data_dir.clone();
    let max = state.cfg.max_photo_bytes;
    web::block(move || crate::cards::photo::store(&dir, &bytes, max))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

pub async fn create(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    MultipartForm(form): MultipartForm<CardForm>,
) -> HttpResponse {
    let who = match require(&session, "issuer") {
        Ok(w) => w,
        Err(r) => return r,
    };
    let mut p = Page::new(&req, &session, "new_card");
    let (draft, bad_quota) = form.draft("");
    if !csrf_ok(&session, &field(&form.csrf)) {
        p.errors.push(p.t("bad_form").into());
        return render(403, &editor(p, None, draft, Vec::new()));
    }
    let checked = draft.clone().validate(who.id, &state.numbers);
    let photo = match form.photo_bytes() {
        None => None,
        Some(Ok(bytes)) => match take_photo(&state, bytes).await {
            Ok(name) => Some(name),
            Err(e) => {
                p.errors.push(e);
                None
            }
        },
        Some(Err(e)) => {
            p.errors.push(e.to_string());
            None
        }
    };
    p.errors.extend(bad_quota);
    let (new, versions) = match checked {
        Ok(x) if p.errors.is_empty() => x,
        Ok(_) => return render(422, &editor(p, None, draft, Vec::new())),
        Err(invalid) => {
            p.errors.extend(invalid.0);
            return render(422, &editor(p, None, draft, Vec::new()));
        }
    };
    let issuer = who.id;
    let saved = state
        .store
        .run(move |s| {
            let card = s.create_card(&new)?;
            s.set_card_texts(card.id, &versions)?;
            if let Some(photo) = &photo {
                s.set_card_photo(card.id, issuer, photo)?;
            }
            Ok(card)
        })
        .await;
    match saved {
        Ok(card) => {
            tracing::info!(issuer = who.id, card = card.id, "card issued on the web");
            see_other(&format!("/issuer/cards/{}?saved=1", card.id))
        }
        Err(e) => super::store_failure(&req, &e),
    }
}

async fn owned(state: &WebState, who: &Who, id: i64) -> Result<(Card, Vec<CardText>), StoreError> {
    let issuer = who.id;
    state
        .store
        .run(move |s| {
            let card = s.card(id)?;
            if card.issuer_id != issuer {
                return Err(StoreError::NotFound("card"));
            }
            let texts = s.card_texts(id)?;
            Ok((card, texts))
        })
        .await
}

fn edited(state: &WebState, req: &HttpRequest, card: &Card) -> EditedCard {
    EditedCard {
        id: card.id,
        slug: card.slug().to_string(),
        public_url: format!("{}/c/{}", state.base_url(req), card.slug()),
        photo: super::public::photo_url(card),
        quota_used: card.quota_used,
        quota_left: card.quota_left(),
        record_calls: card.record_calls,
        greetings: Vec::new(),
        recordings: Vec::new(),
    }
}

async fn card_calls(state: &WebState, card: i64) -> Vec<CallRecord> {
    state
        .store
        .run(move |s| {
            s.last_cdrs(
                &crate::store::cdrs::CdrQuery {
                    card: Some(card),
                    ..Default::default()
                },
                100,
            )
        })
        .await
        .unwrap_or_default()
}

#[derive(serde::Deserialize)]
pub struct SavedQuery {
    saved: Option<String>,
}

pub async fn edit_form(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<i64>,
    q: web::Query<SavedQuery>,
) -> HttpResponse {
    let who = match require(&session, "issuer") {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (card, texts) = match owned(&state, &who, path.into_inner()).await {
        Ok(x) => x,
        Err(e) => return super::store_failure(&req, &e),
    };
    let mut p = Page::new(&req, &session, "edit_card");
    if q.saved.is_some() {
        p.notices.push(p.t("saved").into());
    }
    if let Some(Ok(notice)) = session.remove_as::<String>("notice") {
        p.notices.push(notice);
    }
    if let Some(Ok(error)) = session.remove_as::<String>("error") {
        p.notices.clear();
        p.errors.push(error);
    }
    let calls = call_lines(&p, &card_calls(&state, card.id).await);
    let mut e = edited(&state, &req, &card);
    e.greetings = super::voice::greeting_lines(&state, &p, card.id).await;
    e.recordings =
        super::voice::recording_lines(&state, &p, crate::store::recordings::Owner::Card(card.id))
            .await;
    render(200, &editor(p, Some(e), Draft::of(&card, texts), calls))
}

pub async fn update(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<i64>,
    MultipartForm(form): MultipartForm<CardForm>,
) -> HttpResponse {
    let who = match require(&session, "issuer") {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (card, _) = match owned(&state, &who, path.into_inner()).await {
        Ok(x) => x,
        Err(e) => return super::store_failure(&req, &e),
    };
    let mut p = Page::new(&req, &session, "edit_card");
    let (draft, bad_quota) = form.draft(&card.image_url);
    let e = edited(&state, &req, &card);
    if !csrf_ok(&session, &field(&form.csrf)) {
        p.errors.push(p.t("bad_form").into());
        return render(403, &editor(p, Some(e), draft, Vec::new()));
    }
    let photo = match form.photo_bytes() {
        None if !field(&form.remove_photo).is_empty() => Some(String::new()),
        None => None,
        Some(Ok(bytes)) => match take_photo(&state, bytes).await {
            Ok(name) => Some(name),
            Err(err) => {
                p.errors.push(err);
                None
            }
        },
        Some(Err(err)) => {
            p.errors.push(err.to_string());
            None
        }
    };
    p.errors.extend(bad_quota);
    let (new, versions) = match draft.clone().validate(who.id, &state.numbers) {
        Ok(x) if p.errors.is_empty() => x,
        Ok(_) => return render(422, &editor(p, Some(e), draft, Vec::new())),
        Err(invalid) => {
            p.errors.extend(invalid.0);
            return render(422, &editor(p, Some(e), draft, Vec::new()));
        }
    };
    let (id, issuer) = (card.id, who.id);
    let saved = state
        .store
        .run(move |s| {
            let card = s.update_card(id, &new, &versions)?;
            if let Some(photo) = &photo {
                s.set_card_photo(id, issuer, photo)?;
            }
            Ok(card)
        })
        .await;
    match saved {
        Ok(_) => see_other(&format!("/issuer/cards/{id}?saved=1")),
        Err(StoreError::Invalid(m)) => {
            p.errors.push(m);
            render(422, &editor(p, Some(e), draft, Vec::new()))
        }
        Err(err) => super::store_failure(&req, &err),
    }
}

pub async fn delete(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<i64>,
    form: web::Form<super::account::CsrfOnly>,
) -> HttpResponse {
    let who = match require(&session, "issuer") {
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
    let (id, issuer) = (path.into_inner(), who.id);
    match state.store.run(move |s| s.delete_card(id, issuer)).await {
        Ok(()) => see_other("/issuer"),
        Err(e) => super::store_failure(&req, &e),
    }
}

pub async fn export(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<i64>,
) -> HttpResponse {
    let who = match require(&session, "issuer") {
        Ok(w) => w,
        Err(r) => return r,
    };
    match owned(&state, &who, path.into_inner()).await {
        Ok((card, texts)) => super::public::vcard_response(&state, &req, &card, &texts),
        Err(e) => super::store_failure(&req, &e),
    }
}

#[derive(MultipartForm)]
pub struct ImportForm {
    csrf: Option<Text<String>>,
    /// Update this card instead of making a new one.
    card: Option<Text<String>>,
    vcard: Option<TempFile>,
}

/// `POST /issuer/cards/import`: a vCard file makes a new card (quota 0 until the issuer
/// sets one) or, with `card`, replaces that card's main text and numbers.
pub async fn import(
    state: web::Data<WebState>,
    req: HttpRequest,
    session: Session,
    MultipartForm(form): MultipartForm<ImportForm>,
) -> HttpResponse {
    let who = match require(&session, "issuer") {
        Ok(w) => w,
        Err(r) => return r,
    };
    let lang = super::i18n::Lang::of(&req);
    if !csrf_ok(&session, &field(&form.csrf)) {
        return super::message_page(&req, 403, "error", lang.t("bad_form"));
    }
    let bytes = match form.vcard.as_ref().filter(|f| f.size > 0) {
        Some(f) if f.size > crate::cards::vcard::MAX_BYTES => {
            return super::message_page(
                &req,
                413,
                "error",
                &crate::cards::vcard::VcardError::TooLarge.to_string(),
            );
        }
        Some(f) => std::fs::read(f.file.path()).unwrap_or_default(),
        None => return super::message_page(&req, 422, "error", "choose a .vcf file to import"),
    };
    let imported = match crate::cards::vcard::import(&bytes, lang.code(), &state.numbers) {
        Ok(i) => i,
        Err(e) => return super::message_page(&req, 422, "import_vcard", &e.to_string()),
    };
    let target: Option<i64> = field(&form.card).trim().parse().ok();
    if !imported.skipped.is_empty() {
        // Told on the next page: what the vCard had that a card cannot take.
        let _ = session.insert(
            "notice",
            format!(
                "{}: {}",
                lang.t("import_skipped"),
                imported.skipped.join(", ")
            ),
        );
    }
    let photo = match imported.photo.clone() {
        Some(bytes) => take_photo(&state, bytes).await.ok(),
        None => None,
    };
    let issuer = who.id;
    let id = match target {
        Some(id) => {
            let (card, texts) = match owned(&state, &who, id).await {
                Ok(x) => x,
                Err(e) => return super::store_failure(&req, &e),
            };
            let draft = imported.onto(Draft::of(&card, texts));
            let (new, versions) = match draft.validate(issuer, &state.numbers) {
                Ok(x) => x,
                Err(e) => return super::message_page(&req, 422, "import_vcard", &e.to_string()),
            };
            match state
                .store
                .run(move |s| {
                    s.update_card(id, &new, &versions)?;
                    if let Some(p) = &photo {
                        s.set_card_photo(id, issuer, p)?;
                    }
                    Ok(id)
                })
                .await
            {
                Ok(id) => id,
                Err(e) => return super::store_failure(&req, &e),
            }
        }
        None => {
            // A new card: its quota is set by the issuer afterwards.
            let draft = imported.onto(crate::cards::Draft::default());
            let (new, versions) = match draft.validate(issuer, &state.numbers) {
                Ok(x) => x,
                Err(e) => return super::message_page(&req, 422, "import_vcard", &e.to_string()),
            };
            match state
                .store
                .run(move |s| {
                    let card = s.create_card(&new)?;
                    s.set_card_texts(card.id, &versions)?;
                    if let Some(p) = &photo {
                        s.set_card_photo(card.id, issuer, p)?;
                    }
                    Ok(card.id)
                })
                .await
            {
                Ok(id) => id,
                Err(e) => return super::store_failure(&req, &e),
            }
        }
    };
    see_other(&format!("/issuer/cards/{id}?saved=1"))
}
