//! Configuration: `conf/freecall.toml`, overridden by `FREECALL__SECTION__KEY` variables.
//!
//! Every subsystem owns its section; `Config::load` composes them and `validate` reports
//! every problem at once, each naming its key, so an operator fixes the file in one pass.

use crate::sip::Transport;
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
    #[serde(default = "default_user_agent")]
    pub user_agent: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// Address RTP sockets bind to and SDP advertises.
    pub address: IpAddr,
    pub port_min: u16,
    pub port_max: u16,
    #[serde(default = "default_rtp_timeout")]
    pub rtp_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub name: String,
    /// An address or a network in CIDR notation allowed to send calls.
    pub address: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    pub name: String,
    pub address: SocketAddr,
    #[serde(default = "default_transport")]
    pub transport: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Digits the dialled number starts with; "" matches every number.
    pub prefix: String,
    /// Trunk names, tried in order (failover on 408, 5xx and timeouts).
    pub trunks: Vec<String>,
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
fn default_rtp_timeout() -> u64 {
    60
}
fn default_transport() -> String {
    "udp".into()
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
        if !self.media.port_min.is_multiple_of(2) {
            errors.push(format!(
                "media.port_min: {} must be even (RTP on even ports, RTCP on the next)",
                self.media.port_min
            ));
        }
        if self.media.port_min >= self.media.port_max || self.media.port_min < 1024 {
            errors.push(format!(
                "media.port_min/media.port_max: {}..{} must be an increasing range above 1023",
                self.media.port_min, self.media.port_max
            ));
        }
        if self.media.rtp_timeout_secs == 0 {
            errors.push("media.rtp_timeout_secs: must be at least 1".into());
        }
        for (i, p) in self.peers.iter().enumerate() {
            if parse_net(&p.address).is_none() {
                errors.push(format!(
                    "peers[{i}].address: '{}' is not an address or CIDR network",
                    p.address
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.trunks.iter().enumerate() {
            if !names.insert(t.name.as_str()) {
                errors.push(format!("trunks[{i}].name: '{}' is used twice", t.name));
            }
            if parse_transport(&t.transport).is_none() {
                errors.push(format!(
                    "trunks[{i}].transport: '{}' is not udp or tcp",
                    t.transport
                ));
            }
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
            if r.trunks.is_empty() {
                errors.push(format!("routes[{i}].trunks: names no trunk"));
            }
            for t in &r.trunks {
                if !names.contains(t.as_str()) {
                    errors.push(format!("routes[{i}].trunks: unknown trunk '{t}'"));
                }
            }
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

    /// The address written into Via, Contact and as the SIP host of our URIs.
    pub fn advertised_sip(&self) -> SocketAddr {
        SocketAddr::new(
            self.sip.advertised_address.unwrap_or(self.sip.listen.ip()),
            self.sip.listen.port(),
        )
    }
}

pub fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
}

pub fn parse_transport(s: &str) -> Option<Transport> {
    match s.to_ascii_lowercase().as_str() {
        "udp" => Some(Transport::Udp),
        "tcp" => Some(Transport::Tcp),
        _ => None,
    }
}
