//! The REST API under `/v1` (actix-web): members, products, purchases, issuers, cards,
//! account credits, balances, ledgers and tariffs, for the web shop and operators.
//!
//! - Auth: `Authorization: Bearer <key>`; keys are stored hashed, each with scopes
//!   (`admin`: everything; `credit`: members, purchases and credits; `read`: the GETs).
//! - Errors are `application/problem+json` with a stable `type` (`urn:freecall:problem:…`).
//! - Bodies are validated before anything is written: unknown fields, negative or absurd
//!   amounts, oversized or non-UTF-8 bodies are refused with 4xx.
//! - Anything that credits money needs an `Idempotency-Key`: a retry with the same key and
//!   body gets the original answer; the same key with another body is refused.
//! - Its own limits (`fence.rs`): per client address 429, and a cap on handlers at work
//!   (503), both with `Retry-After`, before the key is looked up.
//! - DTOs live here (serde and OpenAPI stay at the edge); the store speaks domain types.
//!
//! Files: one per resource (`members.rs`, `products.rs`, `purchases.rs`, `issuers.rs`,
//! `cards.rs`, `calls.rs`, `bookings.rs`, `phonebook.rs`, `accounts.rs`, `tariffs.rs`), `problem.rs`
//! (errors), `fence.rs` (limits), `openapi.rs`.

pub mod accounts;
pub mod bookings;
pub mod calls;
pub mod cards;
pub mod cdrs;
pub mod fence;
pub mod issuers;
pub mod members;
pub mod nodes;
pub mod openapi;
pub mod phonebook;
pub mod problem;
pub mod products;
pub mod purchases;
pub mod rate_deck;
pub mod recordings;
pub mod tariffs;
pub mod voice;

use crate::billing::Tariffs;
use crate::store::Store;
use actix_web::{App, HttpRequest, HttpServer, web};
pub use problem::Problem;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    /// Shared with the accounting service, so a reload shows here at once.
    pub tariffs: Arc<RwLock<Arc<Tariffs>>>,
    pub realm: String,
    pub signup_bonus_mileage: i64,
    pub signup_bonus_guild: i64,
    /// Renders `/metrics` (None: no recorder installed, `/metrics` is 404).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Places calls on the running switch (None: the API runs without one, and the
    /// call endpoints answer 503).
    pub placing: Option<crate::placing::Placing>,
    /// Where the web pages are reached (`web.public_url`), for cards' `public_url`; empty:
    /// the request's own host.
    pub public_url: String,
    /// Reads the numbers written on cards (the home country's phonenumber metadata).
    pub numbers: crate::numbers::Classifier,
    /// Books calls for a set time (None: no switch, the booking endpoints answer 503).
    pub bookings: Option<crate::placing::bookings::Bookings>,
    /// The running switch's registrations with its trunks (trunk → state), shown by
    /// `/healthz` (None: no switch).
    pub registrations: Option<Arc<RwLock<std::collections::BTreeMap<String, &'static str>>>>,
    /// The API's own limits (`[api] requests_per_address`, `max_concurrent_requests`),
    /// applied by `serve_with_pages`; the default has none.
    pub fence: Arc<fence::Fence>,
}

impl ApiState {
    pub fn tariffs(&self) -> Arc<Tariffs> {
        self.tariffs
            .read()
            .map(|t| t.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

/// What an API key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Admin,
    Credit,
    Read,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "admin" => Some(Scope::Admin),
            "credit" => Some(Scope::Credit),
            "read" => Some(Scope::Read),
            _ => None,
        }
    }
}

/// An upload's body, read only once its sender is authorized (a stranger cannot make the
/// switch buffer megabytes): at most `max` bytes, 413 beyond.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    max: usize,
) -> Result<web::Bytes, Problem> {
    use futures_util::StreamExt;
    let too_large = || {
        Problem::new(
            413,
            "payload-too-large",
            "Body too large",
            &format!("at most {max} bytes"),
        )
    };
    // A body announced larger than the cap is refused before a byte of it is read.
    let announced = req
        .headers()
        .get("Content-Length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            Problem::new(
                400,
                "bad-body",
                "The body could not be read",
                &e.to_string(),
            )
        })?;
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Check the bearer key; the key's id when it holds one of `allowed` (admin may do
/// anything). Idempotency keys are scoped by it: two shops' "order-1" never collide.
pub async fn authorize(
    state: &ApiState,
    req: &HttpRequest,
    allowed: &[Scope],
) -> Result<i64, Problem> {
    let header = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(key) = header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|k| !k.is_empty())
    else {
        return Err(Problem::unauthorized());
    };
    let hash = crate::auth::api_key_hash(key);
    let scopes = state
        .store
        .run(move |s| s.api_key_scopes(&hash))
        .await
        .map_err(Problem::from_store)?;
    let Some((key_id, scopes)) = scopes else {
        return Err(Problem::unauthorized());
    };
    let held: Vec<Scope> = scopes.split_whitespace().filter_map(Scope::parse).collect();
    if held.contains(&Scope::Admin) || allowed.iter().any(|s| held.contains(s)) {
        Ok(key_id)
    } else {
        Err(Problem::forbidden(allowed))
    }
}

/// The client's address for the per-address fences: the TCP peer. A proxy in front must
/// be allowed for explicitly (raise or turn off the fences); `X-Forwarded-For`, which
/// anyone can write, is not read. Used by the API and the pages alike.
pub fn client_ip(req: &HttpRequest) -> std::net::IpAddr {
    req.peer_addr()
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
}

/// The `Idempotency-Key` header, required on requests that credit money.
pub fn idempotency_key(req: &HttpRequest) -> Result<String, Problem> {
    let key = req
        .headers()
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    if key.is_empty() {
        return Err(Problem::new(
            400,
            "idempotency-key-missing",
            "Idempotency-Key required",
            "requests that credit money need an Idempotency-Key header",
        ));
    }
    if key.len() > 200 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Problem::validation(
            "Idempotency-Key must be 1-200 visible ASCII characters",
        ));
    }
    Ok(key.to_string())
}

/// SHA-256 of the validated request (canonical JSON): what a retry must match.
pub fn request_hash<T: serde::Serialize>(body: &T) -> String {
    use sha2::Digest;
    let json = serde_json::to_vec(body).unwrap_or_default();
    hex::encode(sha2::Sha256::digest(&json))
}

/// Routes and extractor settings, shared by the server and in-process tests.
pub fn configure(state: ApiState, max_body: usize) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state))
            .app_data(
                web::JsonConfig::default()
                    .limit(max_body)
                    .error_handler(problem::json_error),
            )
            .app_data(web::PathConfig::default().error_handler(problem::path_error))
            .app_data(web::QueryConfig::default().error_handler(problem::query_error))
            .route("/v1/openapi.json", web::get().to(openapi::document))
            .route("/v1/members", web::post().to(members::create))
            .route("/v1/products", web::post().to(products::create))
            .route("/v1/products", web::get().to(products::list))
            .route("/v1/purchases", web::post().to(purchases::create))
            .route("/v1/issuers", web::post().to(issuers::create))
            .route("/v1/cards", web::post().to(cards::create))
            .route("/v1/cards", web::get().to(cards::list))
            .route("/v1/cards/{id}", web::get().to(cards::show))
            .route("/v1/cards/{id}", web::put().to(cards::update))
            .route("/v1/cards/{id}", web::delete().to(cards::delete))
            .route("/v1/cards/{id}/vcard", web::get().to(cards::vcard))
            .route("/v1/cards/{id}/vcard", web::put().to(cards::put_vcard))
            .route("/v1/issuers/{id}/calls", web::get().to(cards::issuer_calls))
            .route("/v1/cards/{id}/greetings", web::get().to(voice::list))
            .service(
                web::resource("/v1/cards/{id}/greetings/{event}")
                    .route(web::put().to(voice::put))
                    .route(web::delete().to(voice::delete)),
            )
            .route(
                "/v1/cards/{id}/greetings/{event}/audio",
                web::get().to(voice::audio),
            )
            .route(
                "/v1/cards/{id}/recording",
                web::put().to(voice::put_recording),
            )
            .service(
                web::resource("/v1/issuers/{id}/whisper")
                    .route(web::put().to(voice::put_whisper))
                    .route(web::delete().to(voice::delete_whisper)),
            )
            .route("/v1/recordings", web::get().to(recordings::list))
            .route("/v1/recordings/{call_id}", web::get().to(recordings::show))
            .route(
                "/v1/recordings/{call_id}",
                web::delete().to(recordings::delete),
            )
            .route(
                "/v1/recordings/{call_id}/audio",
                web::get().to(recordings::audio),
            )
            .route("/v1/members/{id}/phonebook", web::get().to(phonebook::list))
            .route("/v1/members/{id}/phonebook", web::post().to(phonebook::add))
            .route(
                "/v1/members/{id}/phonebook/{entry}",
                web::put().to(phonebook::update),
            )
            .route(
                "/v1/members/{id}/phonebook/{entry}",
                web::delete().to(phonebook::delete),
            )
            .route(
                "/v1/members/{id}/phonebook/{entry}/calls",
                web::post().to(phonebook::call),
            )
            .route("/v1/cards/{id}/callbacks", web::post().to(calls::callback))
            .route("/v1/members/{id}/calls", web::post().to(calls::web_dial))
            .route(
                "/v1/cards/{id}/bookings",
                web::post().to(bookings::book_callback),
            )
            .route("/v1/cards/{id}/bookings", web::get().to(bookings::of_card))
            .route(
                "/v1/members/{id}/bookings",
                web::post().to(bookings::book_dial),
            )
            .route(
                "/v1/members/{id}/bookings",
                web::get().to(bookings::of_member),
            )
            .route("/v1/bookings", web::get().to(bookings::by_serial))
            .route("/v1/bookings/{id}", web::get().to(bookings::show))
            .route("/v1/bookings/{id}", web::patch().to(bookings::reschedule))
            .route("/v1/bookings/{id}", web::delete().to(bookings::cancel))
            .route("/v1/calls/{id}", web::get().to(calls::show))
            .route("/v1/calls/{id}", web::delete().to(calls::cancel))
            .route("/v1/calls/{id}/events", web::get().to(calls::events))
            .route("/v1/accounts/{id}", web::get().to(accounts::show))
            .route("/v1/accounts/{id}/ledger", web::get().to(accounts::ledger))
            .route(
                "/v1/accounts/{id}/credits",
                web::post().to(accounts::credit),
            )
            .route("/v1/tariffs", web::get().to(tariffs::list))
            .service(
                web::resource("/v1/rate-deck")
                    .route(web::put().to(rate_deck::load))
                    .route(web::get().to(rate_deck::show))
                    .route(web::delete().to(rate_deck::remove)),
            )
            .route("/v1/rate-deck/price", web::get().to(rate_deck::price))
            .route("/v1/nodes", web::get().to(nodes::list))
            .route("/v1/cdrs", web::get().to(cdrs::list))
            .route("/v1/cdrs/stream", web::get().to(cdrs::stream))
            .route("/metrics", web::get().to(cdrs::metrics))
            .route("/healthz", web::get().to(cdrs::healthz))
            .route("/readyz", web::get().to(cdrs::readyz));
    }
}

/// Every route `configure` registers (method, path): the OpenAPI test holds the document
/// and the server to this list.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/openapi.json"),
    ("post", "/v1/members"),
    ("post", "/v1/products"),
    ("get", "/v1/products"),
    ("post", "/v1/purchases"),
    ("post", "/v1/issuers"),
    ("post", "/v1/cards"),
    ("get", "/v1/cards"),
    ("get", "/v1/cards/{id}"),
    ("put", "/v1/cards/{id}"),
    ("delete", "/v1/cards/{id}"),
    ("get", "/v1/cards/{id}/vcard"),
    ("put", "/v1/cards/{id}/vcard"),
    ("get", "/v1/issuers/{id}/calls"),
    ("get", "/v1/cards/{id}/greetings"),
    ("put", "/v1/cards/{id}/greetings/{event}"),
    ("delete", "/v1/cards/{id}/greetings/{event}"),
    ("get", "/v1/cards/{id}/greetings/{event}/audio"),
    ("put", "/v1/cards/{id}/recording"),
    ("put", "/v1/issuers/{id}/whisper"),
    ("delete", "/v1/issuers/{id}/whisper"),
    ("get", "/v1/recordings"),
    ("get", "/v1/recordings/{call_id}"),
    ("delete", "/v1/recordings/{call_id}"),
    ("get", "/v1/recordings/{call_id}/audio"),
    ("get", "/v1/members/{id}/phonebook"),
    ("post", "/v1/members/{id}/phonebook"),
    ("put", "/v1/members/{id}/phonebook/{entry}"),
    ("delete", "/v1/members/{id}/phonebook/{entry}"),
    ("post", "/v1/members/{id}/phonebook/{entry}/calls"),
    ("post", "/v1/cards/{id}/callbacks"),
    ("post", "/v1/members/{id}/calls"),
    ("post", "/v1/cards/{id}/bookings"),
    ("get", "/v1/cards/{id}/bookings"),
    ("post", "/v1/members/{id}/bookings"),
    ("get", "/v1/members/{id}/bookings"),
    ("get", "/v1/bookings"),
    ("get", "/v1/bookings/{id}"),
    ("patch", "/v1/bookings/{id}"),
    ("delete", "/v1/bookings/{id}"),
    ("get", "/v1/calls/{id}"),
    ("delete", "/v1/calls/{id}"),
    ("get", "/v1/calls/{id}/events"),
    ("get", "/v1/accounts/{id}"),
    ("get", "/v1/accounts/{id}/ledger"),
    ("post", "/v1/accounts/{id}/credits"),
    ("get", "/v1/tariffs"),
    ("put", "/v1/rate-deck"),
    ("get", "/v1/rate-deck"),
    ("delete", "/v1/rate-deck"),
    ("get", "/v1/rate-deck/price"),
    ("get", "/v1/nodes"),
    ("get", "/v1/cdrs"),
    ("get", "/v1/cdrs/stream"),
    ("get", "/metrics"),
    ("get", "/healthz"),
    ("get", "/readyz"),
];

/// Serve the API on `addr` (port 0 picks one) until the returned server is stopped; the
/// address it listens on.
pub fn serve(
    state: ApiState,
    addr: SocketAddr,
    max_body: usize,
) -> std::io::Result<(actix_web::dev::Server, SocketAddr)> {
    serve_with_pages(state, addr, max_body, None)
}

/// The API and, on the same listener, the web pages (`crate::web`) when `pages` is given.
pub fn serve_with_pages(
    state: ApiState,
    addr: SocketAddr,
    max_body: usize,
    pages: Option<crate::web::WebState>,
) -> std::io::Result<(actix_web::dev::Server, SocketAddr)> {
    let server = HttpServer::new(move || {
        let app = App::new()
            .wrap(actix_web::middleware::from_fn(fence::guard))
            .configure(configure(state.clone(), max_body));
        match &pages {
            Some(p) => app.configure(crate::web::configure(p.clone())),
            None => app.default_service(web::to(problem::not_found)),
        }
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(5)
    .bind(addr)?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    Ok((server.run(), bound))
}
