//! Shared set-up for the end-to-end tests: a switch on 127.0.0.1 with the given trunks.
#![allow(dead_code)]

pub mod billed;
pub mod browser;
pub mod callback;
pub mod cards;
pub mod daemon;
pub mod http;
pub mod impair;
pub mod pages;
pub mod placed;
pub mod rest;
pub mod stores;
pub mod tls;

use freecall::config::Config;
use freecall::driver::{self, SwitchHandle};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(3);

static MEDIA_BASE: AtomicU16 = AtomicU16::new(0);

/// A configuration with trunks `t0, t1, …` at `trunks` (tried in that order for every
/// number) and `extra` TOML lines appended to `[sip]`.
pub fn config(trunks: &[SocketAddr], sip_extra: &str, media_extra: &str, peers: &str) -> Config {
    let mut text = String::new();
    let mut names = Vec::new();
    for (i, t) in trunks.iter().enumerate() {
        text.push_str(&format!("[[trunks]]\nname = \"t{i}\"\naddress = \"{t}\"\n"));
        names.push(format!("\"t{i}\""));
    }
    if !trunks.is_empty() {
        text.push_str(&format!(
            "[[routes]]\nprefix = \"\"\ntrunks = [{}]\n",
            names.join(", ")
        ));
    }
    config_with(&text, sip_extra, media_extra, peers)
}

/// A configuration whose trunks and routes are the TOML `trunks` (the caller's own
/// `[[trunks]]` and `[[routes]]`), with `extra` lines appended to `[sip]`.
pub fn config_with(trunks: &str, sip_extra: &str, media_extra: &str, peers: &str) -> Config {
    // Each test's switch gets its own RTP range so parallel tests do not trip on each other.
    let slot = MEDIA_BASE.fetch_add(1, Ordering::Relaxed);
    let port_min =
        30000 + (u32::from(slot) % 60) as u16 * 400 + (std::process::id() % 2) as u16 * 200;
    let mut text = format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\nt1_ms = 100\n{sip_extra}\n\
[media]\naddress = \"127.0.0.1\"\nport_min = {port_min}\nport_max = {}\n{media_extra}\n\
[[peers]]\nname = \"test\"\naddress = \"{peers}\"\n",
        port_min + 198
    );
    text.push_str(trunks);
    Config::from_toml(&text).expect("test config")
}

pub async fn start(cfg: &Config) -> SwitchHandle {
    start_on(cfg, freecall::clock::Clock::system()).await
}

/// A switch without billing on `clock` (a test moves an adjustable one forward).
pub async fn start_on(cfg: &Config, clock: freecall::clock::Clock) -> SwitchHandle {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    driver::start_on(cfg, 7, None, clock)
        .await
        .expect("switch starts")
}

/// A switch that bills: its accounting service runs on `store` with the config's tariffs.
pub async fn start_billed(cfg: &Config, store: freecall::store::Store) -> SwitchHandle {
    start_billed_sharing(cfg, store).await.0
}

/// The tariffs a switch prices with, shared (as in the daemon) with its REST API.
pub type Tariffs = std::sync::Arc<freecall::billing::SharedTariffs>;

/// `start_billed`, and the tariffs its accounting prices with (the rate deck in force).
pub async fn start_billed_sharing(
    cfg: &Config,
    store: freecall::store::Store,
) -> (SwitchHandle, Tariffs) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    let accounting = freecall::accounting::Accounting::new(
        store,
        cfg.tariffs(),
        cfg.billing.node_id.clone(),
        Duration::from_secs(cfg.billing.heartbeat_secs),
        std::env::temp_dir().join(format!(
            "freecall-spool-{}-{}.jsonl",
            std::process::id(),
            cfg.billing.node_id
        )),
    );
    accounting.recover().await.expect("recovery");
    let tariffs = accounting.tariffs.clone();
    let switch = driver::start(cfg, 7, Some(accounting))
        .await
        .expect("switch starts");
    (switch, tariffs)
}

/// What the daemon builds for its REST API from `cfg`: the API's state, the service that
/// places calls on `switch`, and the bookings service (its task not started).
pub fn services(
    cfg: &Config,
    store: &freecall::store::Store,
    switch: &SwitchHandle,
) -> (
    freecall::api::ApiState,
    freecall::placing::Placing,
    freecall::placing::bookings::Bookings,
) {
    use std::sync::{Arc, RwLock};
    services_sharing(
        cfg,
        store,
        switch,
        Arc::new(RwLock::new(Arc::new(cfg.tariffs()))),
    )
}

/// `services`, pricing with `tariffs` (those of the switch's accounting).
pub fn services_sharing(
    cfg: &Config,
    store: &freecall::store::Store,
    switch: &SwitchHandle,
    tariffs: Tariffs,
) -> (
    freecall::api::ApiState,
    freecall::placing::Placing,
    freecall::placing::bookings::Bookings,
) {
    let numbers = cfg.billing.home_country.clone();
    let placing = freecall::placing::Placing::new(
        store.clone(),
        tariffs.clone(),
        cfg.billing.node_id.clone(),
        numbers.clone(),
        freecall::placing::Rules::from_config(&cfg.callbacks, &cfg.billing.blocked_destinations),
        switch.link(),
    );
    let bookings = freecall::placing::bookings::Bookings::new(
        placing.clone(),
        store.clone(),
        cfg.billing.node_id.clone(),
        freecall::placing::bookings::BookingRules::from_config(&cfg.bookings),
    );
    let state = freecall::api::ApiState {
        store: store.clone(),
        tariffs,
        realm: cfg.billing.realm.clone(),
        signup_bonus_mileage: cfg.billing.signup_bonus_mileage,
        signup_bonus_guild: cfg.billing.signup_bonus_guild,
        metrics: None,
        placing: Some(placing.clone()),
        public_url: String::new(),
        numbers,
        bookings: Some(bookings.clone()),
        registrations: Some(switch.registrations()),
        fence: Default::default(),
    };
    (state, placing, bookings)
}

/// The REST API on 127.0.0.1 (a free port) for `store`, placing calls on `switch` with
/// `cfg`'s call-back rules and tariffs: its address.
pub fn serve_api(
    cfg: &Config,
    store: &freecall::store::Store,
    switch: &SwitchHandle,
) -> SocketAddr {
    let (state, _, _) = services(cfg, store, switch);
    serve_state(state)
}

/// The REST API pricing with `tariffs` (those of the switch's accounting, as the daemon
/// serves it): its address.
pub fn serve_api_sharing(
    cfg: &Config,
    store: &freecall::store::Store,
    switch: &SwitchHandle,
    tariffs: Tariffs,
) -> SocketAddr {
    serve_state(services_sharing(cfg, store, switch, tariffs).0)
}

fn serve_state(state: freecall::api::ApiState) -> SocketAddr {
    let (server, api) =
        freecall::api::serve(state, "127.0.0.1:0".parse().expect("address"), 65536).expect("API");
    tokio::spawn(server);
    api
}

/// The REST API and the web pages on one listener, as the shipped configuration serves
/// them; photos and the session key under a fresh data directory. Its address.
pub fn serve_site(
    cfg: &Config,
    store: &freecall::store::Store,
    switch: &SwitchHandle,
    web: freecall::config::WebConfig,
) -> SocketAddr {
    let (state, placing, bookings) = services(cfg, store, switch);
    let pages = freecall::web::WebState::new(
        store.clone(),
        Some(placing),
        state.tariffs.clone(),
        web,
        cfg.billing.realm.clone(),
        cfg.billing.signup_bonus_guild,
        cfg.billing.signup_bonus_mileage,
        state.numbers.clone(),
    )
    .expect("web state")
    .with_bookings(bookings);
    let (server, addr) = freecall::api::serve_with_pages(
        state,
        "127.0.0.1:0".parse().expect("address"),
        65536,
        Some(pages),
    )
    .expect("API and pages");
    tokio::spawn(server);
    addr
}

/// Web settings for a test: its own data directory.
pub fn web_config() -> freecall::config::WebConfig {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("freecall-web-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    freecall::config::WebConfig {
        data_dir: dir.display().to_string(),
        ..Default::default()
    }
}

/// A shop member who logs in with `login` / "member secret" (the web and the softphone),
/// with 10,000 mileage and the phone 010-5555-6666.
pub fn member(store: &freecall::store::Store, login: &str) -> freecall::store::shop::Member {
    store
        .create_member(
            &freecall::store::shop::NewMember {
                login: login.into(),
                password_hash: freecall::auth::hash_password("member secret").unwrap(),
                name: format!("Member {login}"),
                address: String::new(),
                job: String::new(),
                phone: "010-5555-6666".into(),
                email: String::new(),
                sip_ha1: freecall::auth::ha1(login, "freecall", "member secret"),
            },
            10_000,
        )
        .unwrap()
}
