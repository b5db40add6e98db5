//! Configuration: `conf/freecall.toml`, overridden by `FREECALL__SECTION__KEY` variables.
//!
//! Every subsystem owns its section; `Config::load` composes them and `validate` reports
//! every problem at once, each naming its key, so an operator fixes the file in one pass.

mod placed;
mod trunk;

pub use crate::billing::TariffConfig;
pub use crate::media::{MediaConfig, OpusConfig};
pub use placed::{BookingsConfig, CallbacksConfig, WebConfig, WebListen};
pub use trunk::{TrunkAddress, TrunkConfig};

use crate::numbers::{Classifier, DestinationKind};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub sip: SipConfig,
    pub media: MediaConfig,
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    #[serde(default)]
    pub trunks: Vec<TrunkConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub billing: BillingConfig,
    #[serde(default)]
    pub tariffs: Vec<TariffConfig>,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub cdr: CdrConfig,
    #[serde(default)]
    pub callbacks: CallbacksConfig,
    #[serde(default)]
    pub web: WebConfig,
    #[serde(default)]
    pub bookings: BookingsConfig,
    #[serde(default)]
    pub limits: crate::call::Limits,
}

/// Call records (they are always stored in the database; this is the file export).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CdrConfig {
    /// Store a record of every call (off only to measure what records cost).
    pub enabled: bool,
    /// JSON-lines file this node's records are appended to ("" for none). Rotated when it
    /// passes `max_file_bytes` and at each new day (UTC): `calls-<time>.jsonl`.
    pub file: String,
    pub max_file_bytes: u64,
}

impl Default for CdrConfig {
    fn default() -> Self {
        CdrConfig {
            enabled: true,
            file: String::new(),
            max_file_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// An SQLite file path (the embedded default) or `postgres://…` for a shared store.
    #[serde(default = "default_db_url")]
    pub url: String,
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: default_db_url(),
            pool_size: default_pool_size(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingConfig {
    /// ISO 3166 country numbers are classified against (landline, mobile, international…),
    /// read once into the classifier every part of the switch uses.
    #[serde(default = "default_home_country")]
    pub home_country: Classifier,
    /// SIP digest realm members' phones authenticate in.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Key for stateless digest nonces; nodes sharing a database should share it.
    /// Unset: a random key per start (a phone then re-authenticates after a restart).
    #[serde(default)]
    pub nonce_secret: Option<String>,
    #[serde(default = "default_nonce_lifetime")]
    pub nonce_lifetime_secs: u64,
    /// Password guessing: failed digest proofs from one address, or for one user, within a
    /// minute before it is blocked (0: no limit). While blocked even the right password
    /// gets the wrong password's answer.
    #[serde(default = "default_auth_failures_per_address")]
    pub auth_failures_per_address: usize,
    #[serde(default = "default_auth_failures_per_user")]
    pub auth_failures_per_user: usize,
    /// The first block; each next one of the same address or user lasts twice as long
    /// (at most an hour).
    #[serde(default = "default_auth_block")]
    pub auth_block_secs: u64,
    /// No call is reserved (and so allowed) for longer than this.
    #[serde(default = "default_max_call_secs")]
    pub max_call_secs: i64,
    /// Destination kinds nobody may call, whoever pays (toll fraud).
    #[serde(default = "default_blocked")]
    pub blocked_destinations: Vec<DestinationKind>,
    #[serde(default)]
    pub signup_bonus_mileage: i64,
    #[serde(default)]
    pub signup_bonus_guild: i64,
    /// This node's name in reservations and heartbeats; unique per node on a shared store.
    #[serde(default = "default_node_id")]
    pub node_id: String,
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: u64,
    /// A node whose last heartbeat is older than this is dead: one survivor settles its
    /// open calls (billed up to that heartbeat) and fences it.
    #[serde(default = "default_node_lease")]
    pub node_lease_secs: u64,
    /// Where settlements are kept if the switch stops while the database is away; the next
    /// start applies them first.
    #[serde(default = "default_spool")]
    pub spool_file: String,
}

fn default_spool() -> String {
    "data/unsettled-calls.jsonl".into()
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            home_country: default_home_country(),
            realm: default_realm(),
            nonce_secret: None,
            nonce_lifetime_secs: default_nonce_lifetime(),
            auth_failures_per_address: default_auth_failures_per_address(),
            auth_failures_per_user: default_auth_failures_per_user(),
            auth_block_secs: default_auth_block(),
            max_call_secs: default_max_call_secs(),
            blocked_destinations: default_blocked(),
            signup_bonus_mileage: 0,
            signup_bonus_guild: 0,
            node_id: default_node_id(),
            heartbeat_secs: default_heartbeat(),
            node_lease_secs: default_node_lease(),
            spool_file: default_spool(),
        }
    }
}

/// Where the REST API listens: `"off"` (no API) or an address:port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ApiListen {
    #[default]
    Off,
    At(SocketAddr),
}

impl TryFrom<String> for ApiListen {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        match text.as_str() {
            "off" => Ok(ApiListen::Off),
            _ => text
                .parse()
                .map(ApiListen::At)
                .map_err(|_| format!("'{text}' is not an address:port (or \"off\")")),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// REST API address; unset (or "off") runs no API.
    #[serde(default)]
    pub listen: ApiListen,
    /// Largest request body accepted.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Keep Prometheus metrics and serve them at `/metrics`.
    #[serde(default = "default_true")]
    pub metrics: bool,
    /// Requests a second per client address under `/v1` (burst twice that); past it 429
    /// with Retry-After (0: no limit).
    #[serde(default = "default_api_rate")]
    pub requests_per_address: u32,
    /// Requests handled at once under `/v1`; past it 503 with Retry-After (0: no limit).
    #[serde(default = "default_api_concurrent")]
    pub max_concurrent_requests: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: ApiListen::Off,
            max_body_bytes: default_max_body(),
            metrics: true,
            requests_per_address: default_api_rate(),
            max_concurrent_requests: default_api_concurrent(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_db_url() -> String {
    "data/freecall.db".into()
}
fn default_pool_size() -> u32 {
    8
}
fn default_home_country() -> Classifier {
    Classifier::new("KR").expect("KR is in the number metadata")
}
fn default_realm() -> String {
    "freecall".into()
}
fn default_auth_failures_per_address() -> usize {
    10
}
fn default_auth_failures_per_user() -> usize {
    30
}
fn default_auth_block() -> u64 {
    60
}
fn default_nonce_lifetime() -> u64 {
    300
}
fn default_max_call_secs() -> i64 {
    3600
}
fn default_blocked() -> Vec<DestinationKind> {
    vec![DestinationKind::PremiumRate]
}
fn default_node_id() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node1".into())
}
fn default_heartbeat() -> u64 {
    5
}
fn default_node_lease() -> u64 {
    20
}
fn default_max_body() -> usize {
    64 * 1024
}
fn default_api_rate() -> u32 {
    100
}
fn default_api_concurrent() -> usize {
    256
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// UDP and TCP listen address.
    pub listen: SocketAddr,
    /// Address written into Via and Contact; defaults to the listen address.
    #[serde(default)]
    pub advertised_address: Option<IpAddr>,
    #[serde(default = "default_max_calls")]
    pub max_calls: usize,
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_secs: u64,
    #[serde(default = "default_t1")]
    pub t1_ms: u64,
    #[serde(default = "default_grace")]
    pub shutdown_grace_secs: u64,
    /// Seconds between OPTIONS pings to each trunk (0: none). A trunk that does not
    /// answer, or answers 5xx, is skipped by routing until it answers again.
    #[serde(default)]
    pub trunk_ping_secs: u64,
    #[serde(default = "default_user_agent")]
    pub user_agent: String,
    /// DNS servers (`ip:port`) for trunks given by host name; empty: the machine's
    /// (`/etc/resolv.conf`).
    #[serde(default)]
    pub dns_servers: Vec<SocketAddr>,
    /// SIP over TLS for phones: the address it listens on (unset: no TLS), and the
    /// certificate chain and private key (PEM files), read again on SIGHUP.
    #[serde(default)]
    pub tls_listen: Option<SocketAddr>,
    #[serde(default)]
    pub tls_certificate: String,
    #[serde(default)]
    pub tls_private_key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub name: String,
    /// An address or a network in CIDR notation allowed to send calls.
    #[serde(deserialize_with = "network")]
    pub address: ipnet::IpNet,
    /// "unbilled" (calls are free) or "header" (charged to the account or card named in
    /// `charge_header`: `account=42` or `card=7`).
    #[serde(default)]
    pub billing: PeerBillingMode,
    #[serde(default = "default_charge_header")]
    pub charge_header: String,
}

/// How a trusted peer's calls are paid for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerBillingMode {
    /// Free.
    #[default]
    Unbilled,
    /// Charged to the account or card the peer names in its charge header.
    Header,
    /// A load balancer in front of the nodes (Kamailio's dispatcher): not trusted for
    /// money — its callers authenticate as themselves — but believed about where each
    /// request came from (its `X-Freecall-Source` header).
    Dispatcher,
}

/// An address or a CIDR network, read once.
fn network<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ipnet::IpNet, D::Error> {
    let s = String::deserialize(d)?;
    parse_net(&s)
        .ok_or_else(|| serde::de::Error::custom(format!("'{s}' is not an address or CIDR network")))
}
fn default_charge_header() -> String {
    "X-Freecall-Charge".into()
}

/// One place in a route's order: a trunk, or trunks of equal rank.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Rank {
    One(String),
    Shared(Vec<String>),
}

impl Rank {
    pub fn names(&self) -> &[String] {
        match self {
            Rank::One(n) => std::slice::from_ref(n),
            Rank::Shared(all) => all,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Digits the dialled number starts with; "" matches every number.
    pub prefix: String,
    /// Trunk names, tried in order (failover on 408, 5xx and timeouts). A list inside the
    /// list is a rank of equals: each call goes first to one of them, shared by their
    /// `weight`s, then to the others of the rank, then on: `[["kt", "lgu"], "backup"]`.
    pub trunks: Vec<Rank>,
    /// Record calls on this route (both voices mixed, under `media.recordings_dir`).
    #[serde(default)]
    pub record: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default = "default_log_level")]
    pub level: String,
    #[serde(default)]
    pub json: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_log_level(),
            json: false,
        }
    }
}

fn default_max_calls() -> usize {
    1000
}
fn default_ring_timeout() -> u64 {
    180
}
fn default_t1() -> u64 {
    500
}
fn default_grace() -> u64 {
    30
}
fn default_user_agent() -> String {
    format!("freecall/{}", env!("CARGO_PKG_VERSION"))
}
fn default_log_level() -> String {
    "info".into()
}

/// A configuration that cannot be used, with every problem found.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// Read the file, apply `FREECALL__SECTION__KEY` overrides, validate.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let raw = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("FREECALL")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()
            .map_err(|e| ConfigError(vec![e.to_string()]))?;
        let cfg: Config = raw
            .try_deserialize()
            .map_err(|e| ConfigError(vec![e.to_string()]))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parse a TOML string (tests build configurations this way), then validate.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let raw = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .map_err(|e| ConfigError(vec![e.to_string()]))?;
        let cfg: Config = raw
            .try_deserialize()
            .map_err(|e| ConfigError(vec![e.to_string()]))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        if self.sip.max_calls == 0 {
            errors.push("sip.max_calls: must be at least 1".to_string());
        }
        if !(50..=5000).contains(&self.sip.t1_ms) {
            errors.push(format!(
                "sip.t1_ms: {} is outside 50..=5000",
                self.sip.t1_ms
            ));
        }
        if self.sip.ring_timeout_secs == 0 {
            errors.push("sip.ring_timeout_secs: must be at least 1".into());
        }
        self.media.validate(&mut errors);
        if self.sip.tls_listen.is_some()
            && let Err(e) = crate::driver::tls::Certificates::load(
                &self.sip.tls_certificate,
                &self.sip.tls_private_key,
            )
        {
            errors.push(format!("sip.tls_certificate, sip.tls_private_key: {e}"));
        }
        if let Err(e) = crate::driver::tls::TrunkTls::from_config(self) {
            errors.push(e);
        }
        if let Some(i) = self
            .trunks
            .iter()
            .position(|t| t.transport == Some(crate::sip::Transport::Tls))
            && self.sip.tls_listen.is_none()
        {
            errors.push(format!(
                "trunks[{i}].transport: tls needs sip.tls_listen (the carrier reaches the switch's Contact on TLS)"
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.trunks.iter().enumerate() {
            if !names.insert(t.name.as_str()) {
                errors.push(format!("trunks[{i}].name: '{}' is used twice", t.name));
            }
            t.validate(i, &self.billing.home_country, &mut errors);
        }
        for (i, r) in self.routes.iter().enumerate() {
            if !r
                .prefix
                .chars()
                .all(|c| c.is_ascii_digit() || c == '+' || c == '*' || c == '#')
            {
                errors.push(format!(
                    "routes[{i}].prefix: '{}' must be digits (and + * #)",
                    r.prefix
                ));
            }
            if r.trunks.iter().all(|rank| rank.names().is_empty()) {
                errors.push(format!("routes[{i}].trunks: names no trunk"));
            }
            let mut listed = std::collections::HashSet::new();
            for t in r.trunks.iter().flat_map(Rank::names) {
                if !listed.insert(t) {
                    errors.push(format!("routes[{i}].trunks: '{t}' is listed twice"));
                }
                if !names.contains(t.as_str()) {
                    errors.push(format!("routes[{i}].trunks: unknown trunk '{t}'"));
                }
            }
        }
        if let Err(e) = p_billing_ok(&self.peers) {
            errors.extend(e);
        }
        if !(1..=86_400).contains(&self.billing.max_call_secs) {
            errors.push("billing.max_call_secs: must be 1..=86400".into());
        }
        if self.billing.heartbeat_secs == 0 || self.billing.heartbeat_secs > 300 {
            errors.push("billing.heartbeat_secs: must be 1..=300".into());
        }
        // Two heartbeats at least: one late beat (a slow database) must not fence a node.
        if self.billing.node_lease_secs < 2 * self.billing.heartbeat_secs
            || self.billing.node_lease_secs > 3600
        {
            errors.push(
                "billing.node_lease_secs: must be at least twice billing.heartbeat_secs, and at most 3600"
                    .into(),
            );
        }
        if self.billing.node_id.is_empty() {
            errors.push("billing.node_id: must not be empty".into());
        }
        if self.callbacks.ring_secs == 0 || self.callbacks.ring_secs > 300 {
            errors.push("callbacks.ring_secs: must be 1..=300".into());
        }
        if self.callbacks.answer_secs == 0 || self.callbacks.answer_secs > 120 {
            errors.push("callbacks.answer_secs: must be 1..=120".into());
        }
        let shown = &self.callbacks.visitor_sees;
        if !shown.is_empty() && self.billing.home_country.dialable(shown).is_none() {
            errors.push(format!(
                "callbacks.visitor_sees: '{shown}' is not a phone number"
            ));
        }
        for (i, k) in self.callbacks.allowed_destinations.iter().enumerate() {
            if *k == DestinationKind::PremiumRate {
                errors.push(format!(
                    "callbacks.allowed_destinations[{i}]: premium_rate numbers are never called back"
                ));
            }
        }
        if self.callbacks.per_card_daily < 0
            || self.callbacks.per_number_daily < 0
            || self.callbacks.per_issuer_daily < 0
            || self.callbacks.per_issuer_daily_spend < 0
        {
            errors.push("callbacks.per_*: must not be negative".into());
        }
        if self.billing.signup_bonus_mileage < 0 || self.billing.signup_bonus_guild < 0 {
            errors.push("billing.signup_bonus_*: must not be negative".into());
        }
        TariffConfig::validate(&self.tariffs, &mut errors);
        self.web.validate(&mut errors);
        if self.billing.auth_block_secs == 0 || self.billing.auth_block_secs > 3600 {
            errors.push("billing.auth_block_secs: must be 1..=3600".into());
        }
        self.bookings.validate(&mut errors);
        self.limits.validate(&mut errors);
        if self.database.url.is_empty() {
            errors.push("database.url: must not be empty".into());
        }
        if self.database.pool_size == 0 || self.database.pool_size > 256 {
            errors.push("database.pool_size: must be 1..=256".into());
        }
        if let Err(e) = self
            .log
            .level
            .parse::<tracing_subscriber::filter::EnvFilter>()
        {
            errors.push(format!("log.level: {e}"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(errors))
        }
    }

    /// The address written into Contact for phones on TLS.
    pub fn advertised_tls(&self) -> Option<SocketAddr> {
        self.sip
            .tls_listen
            .map(|tls| SocketAddr::new(self.sip.advertised_address.unwrap_or(tls.ip()), tls.port()))
    }

    /// The address written into Via, Contact and as the SIP host of our URIs.
    pub fn advertised_sip(&self) -> SocketAddr {
        SocketAddr::new(
            self.sip.advertised_address.unwrap_or(self.sip.listen.ip()),
            self.sip.listen.port(),
        )
    }
}

fn p_billing_ok(peers: &[PeerConfig]) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        if p.charge_header.is_empty()
            || !p
                .charge_header
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            errors.push(format!(
                "peers[{i}].charge_header: '{}' is not a header name",
                p.charge_header
            ));
        }
        if let ipnet::IpNet::V6(net) = p.address
            && net.network().to_ipv4_mapped().is_some()
        {
            errors.push(format!(
                "peers[{i}].address: '{}' is an IPv4-mapped network: write it as IPv4",
                p.address
            ));
        }
        if peers[..i].iter().any(|q| q.name == p.name) {
            errors.push(format!("peers[{i}].name: '{}' is used twice", p.name));
        }
        // A dispatcher's own address must never make a call a trusted peer's (the
        // dispatcher relays anyone's calls), nor a peer's address a dispatcher's.
        if p.billing == PeerBillingMode::Dispatcher {
            for (j, q) in peers.iter().enumerate() {
                let overlap = p.address.contains(&q.address.network())
                    || q.address.contains(&p.address.network());
                if j != i && q.billing != PeerBillingMode::Dispatcher && overlap {
                    errors.push(format!(
                        "peers[{i}].address: the dispatcher '{}' ({}) overlaps the peer '{}' ({}): calls it relays would be trusted as that peer's",
                        p.name, p.address, q.name, q.address
                    ));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

impl Config {
    /// The tariff table the billing layer uses.
    pub fn tariffs(&self) -> crate::billing::Tariffs {
        crate::billing::Tariffs::from_config(self.billing.max_call_secs, &self.tariffs)
            .with_numbers(self.billing.home_country.clone())
    }
}

pub fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
}

#[cfg(test)]
mod tests;
