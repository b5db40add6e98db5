//! The pages people use, served by the daemon (actix-web, server-rendered with askama,
//! plain CSS, a few lines of our own JavaScript for live progress; every form works
//! without it): a card's public page with "Call for free" and "Save contact", issuers'
//! sign-up, card editor and guild, members' dial screen, phone book and mileage.
//!
//! - Sessions: `actix-session`'s signed, encrypted cookie (`HttpOnly`, `SameSite=Lax`,
//!   `Secure` when configured), renewed at login, purged at logout.
//! - Every form carries the session's CSRF token; a POST without it changes nothing.
//! - Failed logins are counted per account and per address (`LoginLimiter`).
//! - No rules here: cards are checked by `cards`, calls placed by `placing`, money and
//!   records read from `store`.
//!
//! Files: `mod.rs` (state, routes, the page frame, sessions, CSRF), `i18n.rs` (words),
//! `account.rs` (sign-up, login, logout, password), `issuer.rs` (guild, cards, editor,
//! vCard import and export), `public.rs` (a card's public page, QR, vCard, call-back
//! request and its progress, photos, static files), `bookings.rs` (a call booked for a
//! set time: book, find, move, cancel), `member.rs` (mileage, purchases, calls, dial,
//! phone book).

pub mod account;
pub mod bookings;
pub mod i18n;
pub mod issuer;
pub mod member;
pub mod public;
pub mod voice;

use crate::billing::Tariffs;
use crate::config::WebConfig;
use crate::store::{Store, StoreError};
use actix_session::config::{PersistentSession, TtlExtensionPolicy};
use actix_session::storage::CookieSessionStore;
use actix_session::{Session, SessionMiddleware};
use actix_web::cookie::{Key, SameSite};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use i18n::Lang;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};

/// What every page handler can reach.
#[derive(Clone)]
pub struct WebState {
    pub store: Store,
    pub placing: Option<crate::placing::Placing>,
    /// Books calls for a set time (None: the pages offer no booking).
    pub bookings: Option<crate::placing::bookings::Bookings>,
    pub tariffs: Arc<RwLock<Arc<Tariffs>>>,
    pub cfg: WebConfig,
    pub realm: String,
    pub signup_bonus_guild: i64,
    pub signup_bonus_mileage: i64,
    pub limiter: Arc<LoginLimiter>,
    pub key: Key,
    /// Reads the numbers issuers write on cards and members in phone books.
    pub numbers: crate::numbers::Classifier,
}

impl WebState {
    /// The state for `cfg`, with the session key from `session_secret` or the key file
    /// (made on first start).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        placing: Option<crate::placing::Placing>,
        tariffs: Arc<RwLock<Arc<Tariffs>>>,
        cfg: WebConfig,
        realm: String,
        signup_bonus_guild: i64,
        signup_bonus_mileage: i64,
        numbers: crate::numbers::Classifier,
    ) -> std::io::Result<WebState> {
        let key = session_key(&cfg)?;
        Ok(WebState {
            store,
            placing,
            bookings: None,
            tariffs,
            limiter: Arc::new(LoginLimiter::new(
                cfg.login_failures_per_account,
                cfg.login_failures_per_address,
            )),
            cfg,
            realm,
            signup_bonus_guild,
            signup_bonus_mileage,
            key,
            numbers,
        })
    }

    /// The pages with booking: the card page's "Book a call" and the booking's own page.
    pub fn with_bookings(mut self, b: crate::placing::bookings::Bookings) -> WebState {
        self.bookings = Some(b);
        self
    }

    pub fn tariffs(&self) -> Arc<Tariffs> {
        self.tariffs
            .read()
            .map(|t| t.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The address the pages are reached at, without a trailing `/`.
    pub fn base_url(&self, req: &HttpRequest) -> String {
        if !self.cfg.public_url.is_empty() {
            return self.cfg.public_url.trim_end_matches('/').to_string();
        }
        let info = req.connection_info();
        format!("{}://{}", info.scheme(), info.host())
    }
}

fn session_key(cfg: &WebConfig) -> std::io::Result<Key> {
    use sha2::Digest;
    let material = match &cfg.session_secret {
        Some(s) => s.as_bytes().to_vec(),
        None => {
            let path = std::path::Path::new(&cfg.data_dir).join("session.key");
            match std::fs::read(&path) {
                Ok(bytes) if bytes.len() >= 64 => bytes,
                _ => {
                    std::fs::create_dir_all(&cfg.data_dir)?;
                    let bytes = Key::generate().master().to_vec();
                    // Written aside, then linked into place: never half a key, and never
                    // another node's (or process's) key overwritten when two start at once.
                    let tmp = path.with_extension(format!("{}.part", std::process::id()));
                    std::fs::write(&tmp, &bytes)?;
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
                    }
                    let linked = std::fs::hard_link(&tmp, &path);
                    let _ = std::fs::remove_file(&tmp);
                    match linked {
                        Ok(()) => bytes,
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                            std::fs::read(&path)?
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    };
    // 64 bytes for signing and encryption, whatever the secret's length.
    let a = sha2::Sha512::digest([b"freecall web session\0".as_slice(), &material].concat());
    Ok(Key::from(&a[..]))
}

/// Routes of the pages; the session middleware wraps them (and only them).
pub fn configure(state: WebState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        let session = SessionMiddleware::builder(CookieSessionStore::default(), state.key.clone())
            .cookie_name("freecall".to_string())
            .cookie_secure(state.cfg.secure_cookies)
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Lax)
            .session_lifecycle(
                PersistentSession::default()
                    .session_ttl(actix_web::cookie::time::Duration::hours(
                        state.cfg.session_hours as i64,
                    ))
                    .session_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest),
            )
            .build();
        let multipart = actix_multipart::form::MultipartFormConfig::default()
            .total_limit(state.cfg.max_photo_bytes + 64 * 1024)
            .memory_limit(256 * 1024)
            .error_handler(|e, req| {
                let text = format!("{e}");
                actix_web::error::InternalError::from_response(
                    e,
                    message_page(req, 413, "error", &text),
                )
                .into()
            });
        cfg.service(
            web::scope("")
                .wrap(session)
                .wrap_fn(remember_language)
                .app_data(web::Data::new(state))
                .app_data(multipart)
                .app_data(
                    web::FormConfig::default()
                        .limit(64 * 1024)
                        .error_handler(|e, req| {
                            let text = format!("{e}");
                            actix_web::error::InternalError::from_response(
                                e,
                                message_page(req, 400, "error", &text),
                            )
                            .into()
                        }),
                )
                .route("/", web::get().to(account::home))
                .route("/login", web::get().to(account::login_form))
                .route("/login", web::post().to(account::login))
                .route("/signup", web::get().to(account::signup_form))
                .route("/signup", web::post().to(account::signup))
                .route("/logout", web::post().to(account::logout))
                .route("/account/password", web::get().to(account::password_form))
                .route("/account/password", web::post().to(account::password))
                .route("/issuer", web::get().to(issuer::dashboard))
                .route("/issuer/cards/new", web::get().to(issuer::new_form))
                .route("/issuer/cards", web::post().to(issuer::create))
                .route("/issuer/cards/import", web::post().to(issuer::import))
                .route("/issuer/cards/{id}", web::get().to(issuer::edit_form))
                .route("/issuer/cards/{id}", web::post().to(issuer::update))
                .route("/issuer/cards/{id}/delete", web::post().to(issuer::delete))
                .route("/issuer/cards/{id}/card.vcf", web::get().to(issuer::export))
                .service(
                    web::resource("/issuer/cards/{id}/greetings/{event}")
                        .app_data(upload_limits())
                        .route(web::post().to(voice::set_greeting)),
                )
                .route(
                    "/issuer/cards/{id}/greetings/{event}/audio",
                    web::get().to(voice::greeting_audio),
                )
                .route(
                    "/issuer/cards/{id}/recording",
                    web::post().to(voice::set_recording),
                )
                .service(
                    web::resource("/issuer/whisper")
                        .app_data(upload_limits())
                        .route(web::post().to(voice::set_whisper)),
                )
                .route("/issuer/whisper/audio", web::get().to(voice::whisper_audio))
                .route(
                    "/recordings/{call_id}/audio",
                    web::get().to(voice::recording_audio),
                )
                .route(
                    "/recordings/{call_id}/delete",
                    web::post().to(voice::delete_recording),
                )
                .route("/member", web::get().to(member::dashboard))
                .route("/member/dial", web::post().to(member::dial))
                .route("/member/book", web::post().to(bookings::book_dial))
                .route("/member/phonebook", web::post().to(member::add_entry))
                .route(
                    "/member/phonebook/{id}",
                    web::post().to(member::update_entry),
                )
                .route(
                    "/member/phonebook/{id}/delete",
                    web::post().to(member::delete_entry),
                )
                .route("/member/calls/{id}", web::get().to(member::progress))
                .route("/c/{slug}", web::get().to(public::card))
                .route("/c/{slug}/qr.svg", web::get().to(public::qr))
                .route("/c/{slug}/card.vcf", web::get().to(public::vcard))
                .route("/c/{slug}/call", web::post().to(public::call))
                .route("/c/{slug}/calls/{id}", web::get().to(public::progress))
                .route("/c/{slug}/book", web::post().to(bookings::book))
                .route("/bookings/find", web::get().to(bookings::find))
                .route("/bookings/{token}", web::get().to(bookings::show))
                .route(
                    "/bookings/{token}/move",
                    web::post().to(bookings::reschedule),
                )
                .route("/bookings/{token}/cancel", web::post().to(bookings::cancel))
                .route("/photos/{name}", web::get().to(public::photo))
                .route("/static/{name}", web::get().to(public::asset))
                .default_service(web::to(not_found)),
        );
    }
}

/// The pages on a listener of their own (`web.listen` = an address); its address.
pub fn serve(
    state: WebState,
    addr: std::net::SocketAddr,
) -> std::io::Result<(actix_web::dev::Server, std::net::SocketAddr)> {
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new().configure(configure(state.clone()))
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(5)
    .bind(addr)?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    Ok((server.run(), bound))
}

/// `?lang=ko|en` is remembered in a cookie, so the choice holds on the next pages.
fn remember_language<S>(
    req: actix_web::dev::ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<actix_web::dev::ServiceResponse, actix_web::Error>> + use<S>
where
    S: actix_web::dev::Service<
            actix_web::dev::ServiceRequest,
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
        >,
{
    let chosen = req
        .query_string()
        .split('&')
        .find_map(|kv| kv.strip_prefix("lang="))
        .and_then(Lang::parse);
    let fut = srv.call(req);
    async move {
        let mut res = fut.await?;
        if let Some(lang) = chosen {
            let cookie = actix_web::cookie::Cookie::build("lang", lang.code())
                .path("/")
                .same_site(SameSite::Lax)
                .max_age(actix_web::cookie::time::Duration::days(365))
                .finish();
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&cookie.to_string()) {
                res.headers_mut()
                    .append(actix_web::http::header::SET_COOKIE, v);
            }
        }
        Ok(res)
    }
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    if req.path().starts_with("/v1/") {
        let problem = crate::api::problem::not_found(req.clone()).await;
        return actix_web::Responder::respond_to(problem, &req);
    }
    message_page(&req, 404, "error", Lang::of(&req).t("not_found"))
}

/// Who is logged in (kept in the session).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Who {
    /// "issuer" or "member"
    pub role: String,
    pub id: i64,
    pub name: String,
}

/// The logged-in user shown in the page's header.
pub struct WhoView {
    pub name: String,
    pub home: String,
}

/// What every page's frame shows.
pub struct Page {
    pub lang: Lang,
    pub title: String,
    pub csrf: String,
    pub who: Option<WhoView>,
    /// The card design the page is drawn in.
    pub design: String,
    pub notices: Vec<String>,
    pub errors: Vec<String>,
}

impl Page {
    pub fn new(req: &HttpRequest, session: &Session, title_key: &str) -> Page {
        let lang = Lang::of(req);
        let who = current(session).map(|w| WhoView {
            home: format!("/{}", w.role),
            name: w.name,
        });
        Page {
            lang,
            title: lang.t(title_key).to_string(),
            csrf: csrf_token(session),
            who,
            design: "classic".into(),
            notices: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn t(&self, key: &str) -> &'static str {
        self.lang.t(key)
    }

    /// A stored amount with thousands separators (amounts are whole units of the account).
    pub fn amount(&self, v: &i64) -> String {
        group(*v)
    }

    /// A wall-clock time in ms as `2026-12-01 14:03` (UTC).
    pub fn when(&self, ms: &i64) -> String {
        let s = crate::cdr::clock_time(*ms);
        s.get(..16).unwrap_or(&s).to_string()
    }
}

pub fn group(v: i64) -> String {
    let digits = v.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0 { format!("-{out}") } else { out }
}

pub fn current(session: &Session) -> Option<Who> {
    session.get::<Who>("who").ok().flatten()
}

/// The session's CSRF token, made on first use.
pub fn csrf_token(session: &Session) -> String {
    if let Ok(Some(t)) = session.get::<String>("csrf") {
        return t;
    }
    use rand::Rng;
    let mut rng = rand::rng();
    let token = hex::encode(
        (0..4)
            .flat_map(|_| rng.next_u64().to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    let _ = session.insert("csrf", &token);
    token
}

/// Whether a form's token is the session's (compared in constant time).
/// Audio uploads (greetings, whispers): up to `clip::UPLOAD_MAX_BYTES` in memory or on disk.
fn upload_limits() -> actix_multipart::form::MultipartFormConfig {
    actix_multipart::form::MultipartFormConfig::default()
        .total_limit(crate::clip::UPLOAD_MAX_BYTES + 64 * 1024)
        .memory_limit(64 * 1024)
}

pub fn csrf_ok(session: &Session, sent: &str) -> bool {
    let Ok(Some(expected)) = session.get::<String>("csrf") else {
        return false;
    };
    let (a, b) = (expected.as_bytes(), sent.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A rendered page: HTML, never cached by the browser or a proxy (it is personal, or it
/// must show a card's change at once), with the headers that keep it from being framed.
pub fn html(status: u16, body: String) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    )
    .content_type("text/html; charset=utf-8")
    .insert_header(("Cache-Control", "no-store"))
    .insert_header(("X-Content-Type-Options", "nosniff"))
    .insert_header(("Referrer-Policy", "same-origin"))
    .insert_header((
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' https: data:; style-src 'self'; script-src 'self'; \
         frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ))
    .body(body)
}

pub fn render<T: Template>(status: u16, t: &T) -> HttpResponse {
    match t.render() {
        Ok(body) => html(status, body),
        Err(e) => {
            tracing::error!(error = %e, "a page could not be rendered");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("the page could not be rendered")
        }
    }
}

/// A page to go to after a form was taken (303: the browser GETs it).
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", to))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub p: Page,
    pub heading: String,
    pub text: String,
    pub back: String,
}

/// A page that says what went wrong (outside a session: no CSRF token, no user).
pub fn message_page(req: &HttpRequest, status: u16, heading_key: &str, text: &str) -> HttpResponse {
    let lang = Lang::of(req);
    let p = Page {
        lang,
        title: lang.t(heading_key).to_string(),
        csrf: String::new(),
        who: None,
        design: "classic".into(),
        notices: Vec::new(),
        errors: Vec::new(),
    };
    render(
        status,
        &MessagePage {
            heading: p.title.clone(),
            text: text.to_string(),
            back: "/".into(),
            p,
        },
    )
}

/// The page for a store failure: a missing row is 404, a database that is gone 503
/// ("nothing was lost"), a rule 422 with its words.
pub fn store_failure(req: &HttpRequest, e: &StoreError) -> HttpResponse {
    let lang = Lang::of(req);
    match e {
        StoreError::NotFound(_) => message_page(req, 404, "error", lang.t("not_found")),
        StoreError::Unavailable(_) => message_page(req, 503, "error", lang.t("store_down")),
        StoreError::Invalid(m) | StoreError::Conflict(m) => message_page(req, 422, "error", m),
        other => message_page(req, 500, "error", &other.to_string()),
    }
}

/// The logged-in user of `role`, or the login page to go to (the response itself: it is
/// what the handler returns).
#[allow(clippy::result_large_err)]
pub fn require(session: &Session, role: &str) -> Result<Who, HttpResponse> {
    match current(session) {
        Some(w) if w.role == role => Ok(w),
        _ => Err(see_other(&format!("/login?as={role}"))),
    }
}

pub use crate::api::client_ip;

/// Failed logins in the last 15 minutes, per account and per address: past the limit,
/// even the right password is refused until the window has passed (so guessing gains
/// nothing), and a success forgets the account's failures.
pub struct LoginLimiter {
    per_account: usize,
    per_address: usize,
    failures: Mutex<HashMap<String, VecDeque<i64>>>,
}

const LOGIN_WINDOW_MS: i64 = 15 * 60 * 1000;

impl LoginLimiter {
    pub fn new(per_account: usize, per_address: usize) -> LoginLimiter {
        LoginLimiter {
            per_account,
            per_address,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn count(map: &mut HashMap<String, VecDeque<i64>>, key: &str, now: i64) -> usize {
        let Some(times) = map.get_mut(key) else {
            return 0;
        };
        while times.front().is_some_and(|t| *t <= now - LOGIN_WINDOW_MS) {
            times.pop_front();
        }
        times.len()
    }

    /// May `account` try to log in from `ip` now?
    pub fn allowed(&self, account: &str, ip: IpAddr, now: i64) -> bool {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        Self::count(&mut map, &format!("a:{account}"), now) < self.per_account
            && Self::count(&mut map, &format!("ip:{ip}"), now) < self.per_address
    }

    pub fn failed(&self, account: &str, ip: IpAddr, now: i64) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, t| t.back().is_some_and(|t| *t > now - LOGIN_WINDOW_MS));
        }
        for key in [format!("a:{account}"), format!("ip:{ip}")] {
            map.entry(key).or_default().push_back(now);
        }
    }

    pub fn succeeded(&self, account: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&format!("a:{account}"));
    }
}

/// What a refused call request tells its requester: the HTTP status and the reason in
/// the reader's language.
pub fn refusal_words(lang: Lang, e: &crate::placing::PlaceError) -> (u16, &'static str) {
    use crate::placing::PlaceError;
    match e {
        PlaceError::Refused(r) => {
            let key = match r.code() {
                "billing-unavailable" => "why_unavailable".to_string(),
                code => format!("why_{code}"),
            };
            let text = lang.t(&key);
            let text = if text == "?" {
                lang.t("why_other")
            } else {
                text
            };
            (r.http_status(), text)
        }
        PlaceError::BadNumber(_) => (422, lang.t("why_bad-number")),
        PlaceError::NotFound(_) => (404, lang.t("card_gone")),
        PlaceError::NothingToRing(_) => (409, lang.t("why_nothing-to-ring")),
        PlaceError::Stopped => (503, lang.t("why_unavailable")),
    }
}

/// A step of a placed call in the reader's words.
pub fn step_words(lang: Lang, state: &str) -> &'static str {
    let t = lang.t(&format!("state_{state}"));
    if t == "?" {
        lang.t("state_requested")
    } else {
        t
    }
}

/// How a placed call ended, in the reader's words.
pub fn cause_words(lang: Lang, code: &str) -> &'static str {
    let t = lang.t(&format!("cause_{code}"));
    if t == "?" {
        let why = lang.t(&format!("why_{code}"));
        if why == "?" {
            lang.t("cause_other")
        } else {
            why
        }
    } else {
        t
    }
}

/// The words the progress page's script shows as steps arrive (JSON, no code).
pub fn progress_words(lang: Lang) -> String {
    let mut map = serde_json::Map::new();
    for (k, ko, en) in i18n::WORDS {
        if k.starts_with("state_") || k.starts_with("cause_") || k.starts_with("why_") {
            let v = if lang == Lang::Ko { ko } else { en };
            map.insert(k.to_string(), serde_json::Value::String(v.to_string()));
        }
    }
    serde_json::Value::Object(map).to_string()
}

/// One step as the progress page lists it.
pub struct StepLine {
    pub state: String,
    pub words: String,
    /// `14:03:07` UTC; the page's script shows it in the reader's own time.
    pub at: String,
    pub at_ms: i64,
}

/// The progress page's view of a request: its steps, whether it ended, and why.
pub struct ProgressView {
    pub id: String,
    pub steps: Vec<StepLine>,
    pub ended: bool,
    pub outcome: String,
    pub connected: bool,
}

pub fn progress_view(lang: Lang, r: &crate::placing::progress::Request) -> ProgressView {
    let steps = r
        .events
        .iter()
        .map(|e| StepLine {
            state: e.state.clone(),
            words: step_words(lang, &e.state).to_string(),
            at: crate::cdr::clock_time(e.at_ms)
                .get(11..19)
                .unwrap_or("")
                .to_string(),
            at_ms: e.at_ms,
        })
        .collect();
    let outcome = r
        .events
        .iter()
        .rev()
        .find_map(|e| e.cause.as_ref())
        .map(|c| cause_words(lang, c.code()).to_string())
        .unwrap_or_default();
    ProgressView {
        id: r.id.clone(),
        steps,
        ended: r.ended(),
        outcome,
        connected: r.events.iter().any(|e| e.state == "connected"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_logins_block_the_account_and_the_address_until_the_window_passes() {
        let l = LoginLimiter::new(3, 5);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t = 1_000_000;
        for _ in 0..3 {
            assert!(l.allowed("issuer:kim", a, t));
            l.failed("issuer:kim", a, t);
        }
        assert!(!l.allowed("issuer:kim", a, t + 1), "the account is blocked");
        assert!(!l.allowed("issuer:kim", b, t + 1), "from every address");
        assert!(l.allowed("issuer:lee", a, t + 1), "other accounts are not");
        assert!(
            l.allowed("issuer:kim", a, t + LOGIN_WINDOW_MS),
            "until the window passes"
        );
        // Guessing many accounts from one address blocks the address.
        for n in 0..5 {
            l.failed(&format!("issuer:u{n}"), b, t);
        }
        assert!(!l.allowed("issuer:new", b, t + 1));
        // A success forgets the account's failures, not the address's.
        l.succeeded("issuer:kim");
        assert!(l.allowed("issuer:kim", a, t + 2));
        assert!(!l.allowed("issuer:kim", b, t + 2));
    }
}
