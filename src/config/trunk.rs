//! One `[[trunks]]` entry: where the carrier is, how it wants numbers and callers, its
//! credentials, caps and registration.

use crate::media::codec::Codec;
use crate::numbers::Classifier;
use crate::routing::{HostName, TrunkDest};
use crate::sip::Transport;
use crate::transaction::Peer;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};

/// Where a trunk is: a fixed address, or a host name looked up in DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrunkAddress {
    At(SocketAddr),
    Host { name: String, port: Option<u16> },
}

impl std::str::FromStr for TrunkAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<TrunkAddress, String> {
        let text = text.trim();
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(TrunkAddress::At(addr));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(TrunkAddress::At(SocketAddr::new(ip, 5060)));
        }
        let bad = || format!("'{text}' is not an ip:port or a host name (with an optional :port)");
        let (name, port) = match text.rsplit_once(':') {
            Some((name, port)) => (
                name,
                Some(
                    port.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(bad)?,
                ),
            ),
            None => (text, None),
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(bad());
        }
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(TrunkAddress::At(SocketAddr::new(ip, port.unwrap_or(5060))));
        }
        Ok(TrunkAddress::Host {
            name: name.to_ascii_lowercase(),
            port,
        })
    }
}

impl<'de> Deserialize<'de> for TrunkAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TrunkAddress, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for TrunkAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrunkAddress::At(a) => write!(f, "{a}"),
            TrunkAddress::Host { name, port: None } => f.write_str(name),
            TrunkAddress::Host {
                name,
                port: Some(p),
            } => write!(f, "{name}:{p}"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    pub name: String,
    /// `ip:port`, or a host name: `carrier.example` (resolved as RFC 3263 says: NAPTR,
    /// SRV, then A/AAAA on 5060) or `carrier.example:5070` (A/AAAA on that port). Every
    /// address a name resolves to is a failover candidate, in DNS order.
    pub address: TrunkAddress,
    /// `udp`, `tcp` or `tls`. Unset: UDP, or for a host name without a port what its
    /// NAPTR records say. On TLS (port 5061 unless given; needs `sip.tls_listen`, the
    /// switch's Contact) the carrier's certificate must be signed by an authority in
    /// `tls_ca` (a PEM file; unset: the machine's store) and name `tls_server_name`
    /// (unset: the host name of `address`, or its IP address), which is sent as SNI.
    #[serde(default)]
    pub transport: Option<Transport>,
    #[serde(default)]
    pub tls_server_name: Option<String>,
    #[serde(default)]
    pub tls_ca: Option<String>,
    /// Codecs the trunk takes, in order of preference (`PCMA`, `PCMU`, `opus`). Empty:
    /// whatever the caller offered is passed on, untranscoded.
    #[serde(default)]
    pub codecs: Vec<Codec>,
    /// Digest credentials the carrier gave: a 401/407 to an INVITE is answered once with
    /// them (MD5 or SHA-256). Both or neither.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<crate::auth::Secret>,
    /// Calls at most on this trunk at once, and new calls per second (0: no cap). A call
    /// over either goes to the next trunk of its route; only when none is left does the
    /// caller get 503.
    #[serde(default)]
    pub max_calls: usize,
    /// How the called number is written to this trunk: `as_dialled` (national at home,
    /// E.164 abroad), `e164` or `national`; then `strip_prefix` is taken off its front and
    /// `add_prefix` (a tech prefix) put there. The Request-URI and To carry the result.
    #[serde(default)]
    pub number_format: crate::numbers::NumberFormat,
    #[serde(default)]
    pub strip_prefix: String,
    #[serde(default)]
    pub add_prefix: String,
    #[serde(default)]
    pub calls_per_second: usize,
    /// How the caller is presented: `from` (the number in From only) or `pai` (From and
    /// RFC 3325 P-Asserted-Identity, for a carrier that trusts the switch: a caller who
    /// asked for privacy keeps the number in P-Asserted-Identity with `Privacy: id`, and
    /// From is anonymous).
    #[serde(default)]
    pub caller_id: crate::routing::CallerIdMode,
    /// How the calling number is written: `as_dialled`, `e164` or `national`.
    #[serde(default)]
    pub caller_format: crate::numbers::NumberFormat,
    /// The number presented for a caller who has none (a softphone whose user is a name);
    /// empty: anonymous.
    #[serde(default)]
    pub default_caller: String,
    /// Its share of the calls among trunks of equal rank in a route (1 to 1000; 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Register with the carrier as `username` (its challenge answered with the
    /// password), asking for `register_expires` seconds; renewed before they run out,
    /// retried with a growing pause after a failure, removed when the switch stops. Calls
    /// from the carrier's address are then its inbound calls.
    #[serde(default)]
    pub register: bool,
    #[serde(default = "default_register_expires")]
    pub register_expires: u64,
}

fn default_register_expires() -> u64 {
    600
}

fn default_weight() -> u32 {
    1
}

impl TrunkConfig {
    /// Where its requests go, with the transport it asks for.
    pub fn dest(&self) -> TrunkDest {
        match &self.address {
            TrunkAddress::At(addr) => TrunkDest::Fixed(Peer {
                transport: self.transport.unwrap_or(Transport::Udp),
                addr: *addr,
            }),
            TrunkAddress::Host { name, port } => TrunkDest::Named(HostName {
                host: name.clone(),
                port: *port,
                transport: self.transport,
            }),
        }
    }

    /// Problems with this entry (the `i`th), each naming its key.
    pub(super) fn validate(&self, i: usize, home: &Classifier, errors: &mut Vec<String>) {
        if self.transport != Some(Transport::Tls)
            && (self.tls_server_name.is_some() || self.tls_ca.is_some())
        {
            errors.push(format!(
                "trunks[{i}].tls_server_name/tls_ca: only for a trunk with transport = \"tls\""
            ));
        }
        let digits = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#'))
        };
        if !digits(&self.strip_prefix) || !digits(&self.add_prefix) {
            errors.push(format!(
                "trunks[{i}].strip_prefix/add_prefix: digits (and + * #) only"
            ));
        }
        if self.username.is_some() != self.password.is_some()
            || self
                .username
                .as_deref()
                .is_some_and(|u| u.is_empty() || u.contains('"'))
        {
            errors.push(format!(
                "trunks[{i}].username/password: give both (a username without quotes) or neither"
            ));
        }
        if !(1..=1000).contains(&self.weight) {
            errors.push(format!("trunks[{i}].weight: must be 1..=1000"));
        }
        if self.register && self.username.is_none() {
            errors.push(format!("trunks[{i}].register: needs the trunk's username"));
        }
        if !(60..=86_400).contains(&self.register_expires) {
            errors.push(format!("trunks[{i}].register_expires: must be 60..=86400"));
        }
        let n = &self.default_caller;
        if !n.is_empty() && home.dialable(n).is_none() {
            errors.push(format!(
                "trunks[{i}].default_caller: '{n}' is not a phone number"
            ));
        }
    }
}
