//! Trunks reached by host name, resolved as RFC 3263 says: NAPTR picks the transport
//! (when the trunk does not name one), SRV gives the servers in priority order (a weighted
//! draw among equals, RFC 2782), A/AAAA their addresses; a name with a port, or without
//! SRV records, is just its addresses on that port (5060 by default, 5061 for TLS). Every
//! address is a failover candidate; the call manager orders them per call (priority
//! first, equal priorities shared by weight). Only addresses of the switch's own family
//! (IPv4 for an IPv4 listen address) are asked for.
//!
//! The call manager never waits for DNS: a keeper task resolves each trunk's name before
//! the switch takes calls and again when the shortest TTL of the records it used runs out
//! (on the switch's clock), and hands the addresses to the manager. A lookup that fails
//! keeps the last addresses and is retried after [`RETRY`].

use crate::clock::Clock;
use crate::routing::{Hop, HostName};
use crate::sip::Transport;
use crate::transaction::Peer;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Records are looked up again at least this long after the last lookup, at most this long.
pub const MIN_TTL: Duration = Duration::from_secs(5);
pub const MAX_TTL: Duration = Duration::from_secs(86_400);
/// A failed lookup is tried again after this long (the last addresses stay in use).
pub const RETRY: Duration = Duration::from_secs(30);

/// What a name resolved to: the addresses with their priorities and weights, and how long
/// the answer may be used (the shortest TTL of the records it came from).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub targets: Vec<Hop>,
    pub ttl: Duration,
}

/// One SRV record: where and how much it is preferred.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SrvTarget {
    priority: u16,
    weight: u16,
    port: u16,
    target: String,
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// A name's own addresses, tried in the order DNS gave them.
fn in_order(peers: Vec<Peer>) -> Vec<Hop> {
    peers
        .into_iter()
        .enumerate()
        .map(|(i, peer)| Hop {
            peer,
            priority: i as u16,
            weight: 1,
        })
        .collect()
}

/// The transport a NAPTR service field names, for the ones the switch speaks.
fn naptr_transport(services: &[u8]) -> Option<Transport> {
    match services.to_ascii_uppercase().as_slice() {
        b"SIP+D2U" => Some(Transport::Udp),
        b"SIP+D2T" => Some(Transport::Tcp),
        _ => None,
    }
}

fn srv_prefix(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "_sip._udp.",
        Transport::Tcp => "_sip._tcp.",
        Transport::Tls => "_sips._tcp.",
    }
}

/// Looks trunks' host names up, from the given DNS servers or the machine's
/// (`/etc/resolv.conf`, `/etc/hosts`).
#[derive(Clone)]
pub struct SipResolver {
    inner: TokioResolver,
}

impl SipResolver {
    /// `v6`: the switch speaks IPv6 (its listen address is one): AAAA records are asked
    /// for first; else only A records (an IPv6 address could not be reached).
    pub fn new(servers: &[SocketAddr], v6: bool) -> Result<SipResolver, String> {
        let mut builder = if servers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| format!("cannot read the DNS setup: {e}"))?
        } else {
            let name_servers = servers
                .iter()
                .map(|s| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = s.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = s.port();
                    NameServerConfig::new(s.ip(), true, vec![udp, tcp])
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), name_servers),
                TokioRuntimeProvider::default(),
            )
        };
        let opts = builder.options_mut();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        // The keeper caches on the switch's clock, by the records' TTL.
        opts.cache_size = 0;
        opts.ip_strategy = if v6 {
            LookupIpStrategy::Ipv6thenIpv4
        } else {
            LookupIpStrategy::Ipv4Only
        };
        let inner = builder
            .build()
            .map_err(|e| format!("cannot set up DNS: {e}"))?;
        Ok(SipResolver { inner })
    }

    /// RFC 3263 section 4 for `name`: the addresses to try, in order.
    pub async fn resolve(&self, name: &HostName) -> Result<Resolved, String> {
        let mut ttl = MAX_TTL;
        let host = fqdn(&name.host);
        if let Some(port) = name.port {
            let t = name.transport.unwrap_or(Transport::Udp);
            let targets = in_order(self.addresses(&host, port, t, &mut ttl).await?);
            return Ok(Resolved { targets, ttl });
        }
        // Which transports, and under which SRV names: the trunk's own, else NAPTR's
        // choice, else SRV for each transport the switch speaks.
        let mut srv_names: Vec<(Transport, String)> = Vec::new();
        match name.transport {
            Some(t) => srv_names.push((t, format!("{}{host}", srv_prefix(t)))),
            None => {
                let mut naptrs = Vec::new();
                if let Some(lookup) = self.records(&host, RecordType::NAPTR).await? {
                    for r in lookup.answers() {
                        if let RData::NAPTR(n) = &r.data
                            && n.flags.eq_ignore_ascii_case(b"s")
                            && let Some(t) = naptr_transport(&n.services)
                        {
                            ttl = ttl.min(Duration::from_secs(u64::from(r.ttl)));
                            naptrs.push((n.order, n.preference, t, n.replacement.to_string()));
                        }
                    }
                }
                naptrs.sort_by_key(|&(order, preference, _, _)| (order, preference));
                srv_names.extend(naptrs.into_iter().map(|(_, _, t, to)| (t, to)));
                if srv_names.is_empty() {
                    for t in [Transport::Udp, Transport::Tcp] {
                        srv_names.push((t, format!("{}{host}", srv_prefix(t))));
                    }
                }
            }
        }
        for (transport, srv_name) in &srv_names {
            let Some(lookup) = self.records(srv_name, RecordType::SRV).await? else {
                continue;
            };
            let mut records = Vec::new();
            let mut srv_ttl = ttl;
            for r in lookup.answers() {
                if let RData::SRV(s) = &r.data {
                    srv_ttl = srv_ttl.min(Duration::from_secs(u64::from(r.ttl)));
                    records.push(SrvTarget {
                        priority: s.priority,
                        weight: s.weight,
                        port: s.port,
                        target: s.target.to_string(),
                    });
                }
            }
            if records.is_empty() {
                continue;
            }
            ttl = srv_ttl;
            records.sort_by_key(|r| r.priority);
            let mut targets = Vec::new();
            for s in records {
                // A "." target says the service is not offered here.
                if s.target == "." {
                    continue;
                }
                match self
                    .addresses(&s.target, s.port, *transport, &mut ttl)
                    .await
                {
                    // The record's weight is its first address's; its others stand by.
                    Ok(found) => {
                        targets.extend(found.into_iter().enumerate().map(|(i, peer)| Hop {
                            peer,
                            priority: s.priority,
                            weight: if i == 0 { s.weight } else { 0 },
                        }))
                    }
                    Err(e) => {
                        warn!(host = %name, target = %s.target, error = %e, "SRV target does not resolve")
                    }
                }
            }
            if targets.is_empty() {
                return Err(format!("no SRV target of {srv_name} resolves"));
            }
            return Ok(Resolved { targets, ttl });
        }
        // No NAPTR or SRV: the name's own addresses on the default port (5061 for TLS).
        let t = name.transport.unwrap_or(Transport::Udp);
        let port = if t == Transport::Tls { 5061 } else { 5060 };
        let targets = in_order(self.addresses(&host, port, t, &mut ttl).await?);
        Ok(Resolved { targets, ttl })
    }

    /// The answer for `name`'s records of `kind`: None when there are none (the next step
    /// of RFC 3263 is tried); an error when DNS did not answer (the last addresses stay).
    async fn records(
        &self,
        name: &str,
        kind: RecordType,
    ) -> Result<Option<hickory_resolver::lookup::Lookup>, String> {
        match self.inner.lookup(name, kind).await {
            Ok(lookup) => Ok(Some(lookup)),
            Err(e) if e.is_no_records_found() => Ok(None),
            Err(e) => Err(format!("{kind} {name}: {e}")),
        }
    }

    async fn addresses(
        &self,
        host: &str,
        port: u16,
        transport: Transport,
        ttl: &mut Duration,
    ) -> Result<Vec<Peer>, String> {
        let lookup = self
            .inner
            .lookup_ip(host)
            .await
            .map_err(|e| format!("{host}: {e}"))?;
        for r in lookup.as_lookup().answers() {
            *ttl = (*ttl).min(Duration::from_secs(u64::from(r.ttl)));
        }
        let found: Vec<Peer> = lookup
            .iter()
            .map(|ip| Peer {
                transport,
                addr: SocketAddr::new(ip, port),
            })
            .collect();
        if found.is_empty() {
            return Err(format!("{host}: no address"));
        }
        Ok(found)
    }
}

/// Keeps trunks' names resolved: each is looked up when its answer is due (its TTL ran
/// out, or it never was), and a changed answer is reported.
pub struct Keeper {
    servers: Vec<SocketAddr>,
    v6: bool,
    /// Set up at the first name to resolve (a switch without named trunks reads no DNS
    /// configuration); retried after [`RETRY`] when that fails.
    resolver: Option<SipResolver>,
    setup_due: Option<Instant>,
    clock: Clock,
    due: HashMap<HostName, Instant>,
    known: HashMap<HostName, Vec<Hop>>,
}

impl Keeper {
    /// A keeper asking `servers` (empty: the machine's DNS servers) for addresses a
    /// switch listening on IPv6 (`v6`) or IPv4 can reach.
    pub fn new(servers: Vec<SocketAddr>, v6: bool, clock: Clock) -> Keeper {
        Keeper {
            servers,
            v6,
            resolver: None,
            setup_due: None,
            clock,
            due: HashMap::new(),
            known: HashMap::new(),
        }
    }

    fn resolver(&mut self) -> Option<SipResolver> {
        if self.resolver.is_none() && self.setup_due.is_none_or(|at| self.clock.now() >= at) {
            match SipResolver::new(&self.servers, self.v6) {
                Ok(r) => self.resolver = Some(r),
                Err(e) => {
                    warn!(error = %e, "trunks given by host name cannot be resolved");
                    self.setup_due = Some(self.clock.now() + RETRY);
                }
            }
        }
        self.resolver.clone()
    }

    /// Look up every name of `wanted` whose answer is due; forget the others. Returns the
    /// names whose addresses changed, with their new addresses.
    pub async fn refresh(&mut self, wanted: &[HostName]) -> Vec<(HostName, Vec<Hop>)> {
        self.due.retain(|h, _| wanted.contains(h));
        self.known.retain(|h, _| wanted.contains(h));
        let mut changed = Vec::new();
        if wanted.is_empty() {
            return changed;
        }
        let Some(resolver) = self.resolver() else {
            return changed;
        };
        for name in wanted {
            let now = self.clock.now();
            if self.due.get(name).is_some_and(|&at| now < at) {
                continue;
            }
            match resolver.resolve(name).await {
                Ok(r) => {
                    let ttl = r.ttl.clamp(MIN_TTL, MAX_TTL);
                    self.due.insert(name.clone(), self.clock.now() + ttl);
                    if self.known.get(name) != Some(&r.targets) {
                        let shown: Vec<String> = r
                            .targets
                            .iter()
                            .map(|h| {
                                format!(
                                    "{}:{} priority {} weight {}",
                                    h.peer.transport.as_str(),
                                    h.peer.addr,
                                    h.priority,
                                    h.weight
                                )
                            })
                            .collect();
                        info!(host = %name, targets = ?shown, ttl = ttl.as_secs(), "trunk host resolved");
                        self.known.insert(name.clone(), r.targets.clone());
                        changed.push((name.clone(), r.targets));
                    }
                }
                Err(e) => {
                    warn!(host = %name, error = %e, retry_secs = RETRY.as_secs(), "cannot resolve trunk host: its last addresses stay in use");
                    self.due.insert(name.clone(), self.clock.now() + RETRY);
                }
            }
        }
        changed
    }

    /// Forget what was found and when to look again: everything is looked up anew and
    /// reported (after a first lookup that was cut short, whose finds never reached the
    /// call manager).
    pub fn start_over(&mut self) {
        self.due.clear();
        self.known.clear();
    }

    /// Keep refreshing the names `wanted` holds (it changes with a reload) until it is
    /// dropped; changes go to `out`. Checks the clock every second, so a test's jump of the
    /// switch's clock is seen at once.
    pub async fn run(
        mut self,
        mut wanted: tokio::sync::watch::Receiver<Vec<HostName>>,
        out: tokio::sync::mpsc::UnboundedSender<(HostName, Vec<Hop>)>,
    ) {
        loop {
            let names = wanted.borrow_and_update().clone();
            for change in self.refresh(&names).await {
                if out.send(change).is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                r = wanted.changed() => if r.is_err() { return },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naptr_services_name_the_transports_the_switch_speaks() {
        assert_eq!(naptr_transport(b"SIP+D2U"), Some(Transport::Udp));
        assert_eq!(naptr_transport(b"sip+d2t"), Some(Transport::Tcp));
        assert_eq!(naptr_transport(b"SIPS+D2T"), None);
    }
}
