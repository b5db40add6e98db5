//! The driver: owns the SIP sockets, the clock and the timers, and feeds the sans-IO call
//! manager. One tokio task runs the whole signalling plane; media runs in its own tasks.
//!
//! Why one signalling task and not one per call: the transaction and call state machines
//! are plain data driven by `handle_*` calls, which cost microseconds; a single owner needs
//! no locks and keeps every call flow deterministic for tests. Media, the per-packet work,
//! is where parallelism pays, and it is spread over one task per call.

use crate::accounting::Accounting;
use crate::auth::NonceKey;
use crate::billing::{BillingReply, BillingRequest, CallBilling};
use crate::call::{CallMedia, Manager, Outcome, Settings, Stats};
use crate::clock::Clock;
use crate::config::Config;
use crate::media::{MediaEvent, MediaOptions, Prompts, RelayMedia};
use crate::routing::Routing;
use crate::sip::{self, Transport};
use crate::transaction::{Peer, Timers, Transmit};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

mod net;
pub mod tls;
use net::{
    NetInput, Stamps, Wire, accept_tls, admit_connection, bind_udp, connection, flush, recv_aged,
};
/// How the switch should stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Running,
    /// Take no new calls; let calls finish for up to the grace period, then hang up.
    Drain(Duration),
    /// Hang up everything now.
    Now,
}

/// A running switch, as `main` and the tests see it.
pub struct SwitchHandle {
    pub sip_addr: SocketAddr,
    stop: std::sync::Arc<watch::Sender<Stop>>,
    done: oneshot::Receiver<Stats>,
    queries: mpsc::UnboundedSender<Query>,
    /// The prompts every new call plays from (swapped by a reload).
    prompts: Arc<RwLock<Arc<Prompts>>>,
    /// Commands for the call layer (place a call, end one) and the progress it reports.
    link: crate::placing::SwitchLink,
    /// Each registering trunk's registration (`registering`, `registered`, `failed`,
    /// `unregistered`), for the health endpoint.
    registrations: Registrations,
    /// Where the switch listens for SIP over TLS, and the certificate it presents there.
    pub tls_addr: Option<SocketAddr>,
    certificates: Option<Arc<tls::Certificates>>,
}

/// Trunk name → where its registration stands.
pub type Registrations = Arc<RwLock<std::collections::BTreeMap<String, &'static str>>>;

enum Query {
    Active(oneshot::Sender<usize>),
    Finished(oneshot::Sender<Vec<Outcome>>),
    Reload(Box<Routing>, tls::TrunkTls, oneshot::Sender<()>),
}

impl SwitchHandle {
    /// Where each registering trunk's registration stands.
    pub fn registrations(&self) -> Registrations {
        self.registrations.clone()
    }

    /// Read the TLS certificate and key again (SIGHUP): new connections present the new
    /// certificate; on an error the one in use stays. Nothing to do without TLS.
    pub fn reload_certificate(&self, certificate: &str, private_key: &str) -> Result<(), String> {
        match &self.certificates {
            Some(c) => c.reload(certificate, private_key),
            None => Ok(()),
        }
    }

    pub fn stop(&self, how: Stop) {
        let _ = self.stop.send(how);
    }

    /// A function that stops the switch, for signal handlers that outlive a borrow.
    pub fn stopper(&self) -> impl Fn(Stop) + Send + 'static {
        let stop = self.stop.clone();
        move |how| {
            let _ = stop.send(how);
        }
    }

    /// What the control plane needs to place calls and follow them.
    pub fn link(&self) -> crate::placing::SwitchLink {
        self.link.clone()
    }

    /// Wait until the switch has stopped; returns its final counters.
    pub async fn join(self) -> Option<Stats> {
        self.done.await.ok()
    }

    pub async fn active_calls(&self) -> usize {
        let (tx, rx) = oneshot::channel();
        let _ = self.queries.send(Query::Active(tx));
        rx.await.unwrap_or(0)
    }

    /// Apply a new configuration's trunks, dial plan, peers and prompts, all at once: the
    /// next call sees all of them, calls in progress keep what they started with. Nothing
    /// changes when the prompts cannot be read. (Tariffs live in the accounting service,
    /// which `main` reloads beside this.)
    pub async fn reload(&self, cfg: &Config) -> Result<(), String> {
        let prompts = match cfg.media.prompts_dir.as_str() {
            "" => Prompts::default(),
            dir => Prompts::load(std::path::Path::new(dir)).map_err(|e| e.to_string())?,
        };
        let trunk_tls = tls::TrunkTls::from_config(cfg)?;
        let (tx, rx) = oneshot::channel();
        let _ = self.queries.send(Query::Reload(
            Box::new(Routing::from_config(cfg)),
            trunk_tls,
            tx,
        ));
        rx.await.map_err(|_| "the switch is stopping".to_string())?;
        if let Ok(mut p) = self.prompts.write() {
            *p = Arc::new(prompts);
        }
        Ok(())
    }

    /// Calls finished since the last call of this method.
    pub async fn finished_calls(&self) -> Vec<Outcome> {
        let (tx, rx) = oneshot::channel();
        let _ = self.queries.send(Query::Finished(tx));
        rx.await.unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen for SIP on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Prompts(#[from] crate::media::prompts::PromptError),
    #[error("SIP over TLS: {0}")]
    Tls(String),
}

/// Bind the sockets and start the switch in the current tokio runtime. With
/// `accounting`, calls are classified, members authenticated and calls paid for; without
/// it the switch is a bare B2BUA for its allowed peers.
pub async fn start(
    cfg: &Config,
    seed: u64,
    accounting: Option<Accounting>,
) -> Result<SwitchHandle, StartError> {
    // The store's clock is the switch's: one handle for signalling, media and money.
    let clock = accounting
        .as_ref()
        .map(|a| a.store.clock().clone())
        .unwrap_or_default();
    start_on(cfg, seed, accounting, clock).await
}

/// `start` on the given clock (a billing switch must use its store's).
pub async fn start_on(
    cfg: &Config,
    seed: u64,
    accounting: Option<Accounting>,
    clock: Clock,
) -> Result<SwitchHandle, StartError> {
    let prompts = match cfg.media.prompts_dir.as_str() {
        "" => Prompts::default(),
        dir => Prompts::load(std::path::Path::new(dir))?,
    };
    if !prompts.is_empty() {
        let mut names: Vec<&str> = prompts.names().collect();
        names.sort_unstable();
        info!(prompts = ?names, "prompts loaded");
    }
    let prompts = Arc::new(RwLock::new(Arc::new(prompts)));
    // UDP and TCP on the same port. With port 0 (tests, benchmarks) the port the kernel
    // picks for UDP may be taken for TCP: pick again (bounded).
    let mut attempt = 0;
    let (udp, tcp, bound) = loop {
        attempt += 1;
        let udp = bind_udp(cfg.sip.listen).map_err(|source| StartError::Listen {
            addr: cfg.sip.listen,
            source,
        })?;
        let bound = udp.local_addr().map_err(|source| StartError::Listen {
            addr: cfg.sip.listen,
            source,
        })?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => break (udp, tcp, bound),
            Err(_) if cfg.sip.listen.port() == 0 && attempt < 20 => continue,
            Err(source) => {
                return Err(StartError::Listen {
                    addr: bound,
                    source,
                });
            }
        }
    };
    // SIP over TLS for phones, on a port of its own.
    let tls = match cfg.sip.tls_listen {
        None => None,
        Some(addr) => {
            let certificates = Arc::new(
                tls::Certificates::load(&cfg.sip.tls_certificate, &cfg.sip.tls_private_key)
                    .map_err(StartError::Tls)?,
            );
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| StartError::Listen { addr, source })?;
            info!(tls = %bound, "listening for SIP over TLS");
            Some((listener, certificates, bound))
        }
    };
    let mut settings = Settings {
        advertised: cfg.advertised_sip(),
        user_agent: cfg.sip.user_agent.clone(),
        max_calls: cfg.sip.max_calls,
        ring_timeout: Duration::from_secs(cfg.sip.ring_timeout_secs),
        timers: Timers {
            t1: Duration::from_millis(cfg.sip.t1_ms),
            ..Timers::default()
        },
        seed,
        billing: accounting.as_ref().map(|_| call_billing(cfg, seed)),
        node: cfg.billing.node_id.clone(),
        records: cfg.cdr.enabled,
        trunk_ping: (cfg.sip.trunk_ping_secs > 0)
            .then(|| Duration::from_secs(cfg.sip.trunk_ping_secs)),
        placed_ring: Duration::from_secs(cfg.callbacks.ring_secs),
        placed_answer: Duration::from_secs(cfg.callbacks.answer_secs),
        visitor_sees: (!cfg.callbacks.visitor_sees.is_empty())
            .then(|| cfg.callbacks.visitor_sees.clone()),
        limits: cfg.limits,
        media: CallMedia {
            announce: !cfg.media.prompts_dir.is_empty(),
            local_ringback: cfg.media.local_ringback,
            warning: Duration::from_secs(cfg.media.warning_secs),
            recordings: cfg.media.recordings_dir.clone().into(),
        },
    };
    settings.advertised.set_port(bound.port());
    // Closed recordings get their rows' length and size (with a store to keep them in).
    let recordings = accounting.as_ref().map(|a| {
        let (tx, rx) = mpsc::unbounded_channel();
        let keeper = crate::recordings::Keeper {
            store: a.store.clone(),
            node: a.node.clone(),
            retention: (cfg.media.recordings_retention_days > 0)
                .then(|| Duration::from_secs(cfg.media.recordings_retention_days * 86_400)),
        };
        keeper.spawn(rx);
        tx
    });
    let (media_tx, media_rx) = mpsc::unbounded_channel();
    let media = RelayMedia::new(
        cfg.media.address,
        cfg.media.port_min,
        cfg.media.port_max,
        Duration::from_secs(cfg.media.rtp_timeout_secs),
        media_tx,
    )
    .with_options(MediaOptions {
        opus: cfg.media.opus.settings(),
        prompts: prompts.clone(),
        recordings,
        clock: clock.clone(),
        advertised: cfg.media.advertised_address,
    });
    let routing = Routing::from_config(cfg);
    // Every trunk counts as up until a ping says otherwise.
    for t in &routing.trunks {
        crate::telemetry::trunk_up(&t.name, true);
    }
    let registrations: Registrations = Arc::new(RwLock::new(
        routing
            .trunks
            .iter()
            .filter(|t| t.register.is_some())
            .map(|t| {
                crate::telemetry::trunk_registered(&t.name, false);
                (t.name.clone(), crate::call::RegState::Registering.as_str())
            })
            .collect(),
    ));
    // Trunks given by host name are resolved before the first call (bounded), then kept
    // resolved by their records' TTL in the background.
    let names = routing.host_names();
    let mut keeper =
        crate::dns::Keeper::new(cfg.sip.dns_servers.clone(), bound.is_ipv6(), clock.clone());
    let first = match tokio::time::timeout(DNS_AT_START, keeper.refresh(&names)).await {
        Ok(found) => found,
        Err(_) => {
            warn!(
                secs = DNS_AT_START.as_secs(),
                "DNS did not answer for every trunk host name at start: those trunks are passed over until it does"
            );
            keeper.start_over();
            Vec::new()
        }
    };
    let mut manager = Manager::new(settings, routing, Box::new(media));
    manager.set_wall_clock(clock.now(), clock.unix_ms());
    let tls_addr = tls.as_ref().map(|(_, _, bound)| *bound);
    if let (Some(mut advertised), Some(bound)) = (cfg.advertised_tls(), tls_addr) {
        advertised.set_port(bound.port());
        manager.set_tls_address(advertised);
    }
    let certificates = tls.as_ref().map(|(_, c, _)| c.clone());
    let trunk_tls = tls::TrunkTls::from_config(cfg).map_err(StartError::Tls)?;
    let tls = tls.map(|(listener, c, _)| (listener, c.acceptor()));
    for (name, targets) in first {
        manager.set_resolved(name, targets);
    }
    let (names_tx, names_rx) = watch::channel(names);
    let (resolved_tx, resolved_rx) = mpsc::unbounded_channel();
    tokio::spawn(keeper.run(names_rx, resolved_tx));
    let billing = match accounting {
        Some(a) => {
            let (tx, rx, task) = a.spawn();
            Billing {
                tx: Some(tx),
                rx,
                task: Some(task),
                _idle: None,
            }
        }
        None => {
            let (idle, rx) = mpsc::unbounded_channel();
            Billing {
                tx: None,
                rx,
                task: None,
                _idle: Some(idle),
            }
        }
    };
    let (stop_tx, stop_rx) = watch::channel(Stop::Running);
    let (done_tx, done_rx) = oneshot::channel();
    let (query_tx, query_rx) = mpsc::unbounded_channel();
    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let hub = Arc::new(crate::placing::ProgressHub::default());
    info!(sip = %bound, "listening for SIP on UDP and TCP");
    tokio::spawn(run(
        manager,
        clock,
        udp,
        tcp,
        tls,
        trunk_tls,
        media_rx,
        stop_rx,
        query_rx,
        done_tx,
        billing,
        Placed {
            commands: command_rx,
            hub: hub.clone(),
        },
        registrations.clone(),
        Dns {
            names: names_tx,
            resolved: resolved_rx,
        },
    ));
    Ok(SwitchHandle {
        sip_addr: bound,
        stop: std::sync::Arc::new(stop_tx),
        done: done_rx,
        queries: query_tx,
        prompts,
        link: crate::placing::SwitchLink {
            commands: command_tx,
            hub,
        },
        registrations,
        tls_addr,
        certificates,
    })
}

/// The longest a stopping switch waits for its un-REGISTERs to be answered.
const UNREGISTER_WAIT: Duration = Duration::from_secs(2);

/// The longest a starting switch waits for its trunks' host names to resolve.
const DNS_AT_START: Duration = Duration::from_secs(5);

/// The signalling task's link to the DNS keeper: the names to keep resolved (they change
/// with a reload) and the addresses it found.
struct Dns {
    names: watch::Sender<Vec<crate::routing::HostName>>,
    resolved: mpsc::UnboundedReceiver<(crate::routing::HostName, Vec<crate::routing::Hop>)>,
}

/// The signalling task's end of the control plane's link.
struct Placed {
    commands: mpsc::UnboundedReceiver<crate::call::Command>,
    hub: Arc<crate::placing::ProgressHub>,
}

/// The signalling task's link to the accounting service.
struct Billing {
    tx: Option<mpsc::UnboundedSender<BillingRequest>>,
    rx: mpsc::UnboundedReceiver<BillingReply>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Without accounting, keeps `rx` open (and silent).
    _idle: Option<mpsc::UnboundedSender<BillingReply>>,
}

/// The call layer's billing settings from the configuration (validated already).
fn call_billing(cfg: &Config, seed: u64) -> CallBilling {
    let secret = match &cfg.billing.nonce_secret {
        Some(s) => s.as_bytes().to_vec(),
        None => {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..4)
                .flat_map(|_| (rng.next_u64() ^ seed).to_le_bytes())
                .collect()
        }
    };
    CallBilling {
        classifier: cfg.billing.home_country.clone(),
        blocked: cfg.billing.blocked_destinations.clone(),
        realm: cfg.billing.realm.clone(),
        nonces: NonceKey::new(&secret, cfg.billing.nonce_lifetime_secs),
        auth_failures_per_address: cfg.billing.auth_failures_per_address,
        auth_failures_per_user: cfg.billing.auth_failures_per_user,
        auth_block: Duration::from_secs(cfg.billing.auth_block_secs),
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    mut manager: Manager,
    clock: Clock,
    udp: UdpSocket,
    tcp: TcpListener,
    tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    trunk_tls: tls::TrunkTls,
    mut media_rx: mpsc::UnboundedReceiver<MediaEvent>,
    mut stop_rx: watch::Receiver<Stop>,
    mut queries: mpsc::UnboundedReceiver<Query>,
    done: oneshot::Sender<Stats>,
    mut billing: Billing,
    mut placed: Placed,
    registrations: Registrations,
    mut dns: Dns,
) {
    let (net_tx, mut net_rx) = mpsc::unbounded_channel::<NetInput>();
    let mut wire = Wire {
        udp,
        conns: HashMap::new(),
        pending: HashMap::new(),
        net_tx: net_tx.clone(),
        trunk_tls,
    };
    let mut buf = vec![0u8; 65_536];
    let mut stamps = Stamps::new();
    let mut drain_until: Option<std::time::Instant> = None;
    // Stopping waits this long at most for the carriers' answers to un-REGISTERs.
    let mut unregister_until: Option<std::time::Instant> = None;
    // Every call was hung up at the end of the grace period.
    let mut hung_up = false;
    // systemd's watchdog wants a ping at least every WATCHDOG_USEC; ping at half of it.
    let watchdog_every = sd_notify::watchdog_enabled();
    let watchdog = watchdog_every.is_some();
    let tick_every = watchdog_every
        .map(|w| (w / 2).clamp(Duration::from_millis(50), Duration::from_secs(1)))
        .unwrap_or(Duration::from_secs(1));
    let mut tick = tokio::time::interval(tick_every);
    let mut finished: Vec<Outcome> = Vec::new();
    let mut totals = crate::telemetry::CallTotals::default();
    let mut active = 0usize;
    loop {
        let wake = manager
            .next_timeout()
            .map(|at| clock.timer_at(at))
            .unwrap_or_else(|| clock.timer_at(clock.now() + Duration::from_secs(3600)));
        tokio::select! {
            r = recv_aged(&wire.udp, &mut buf, &mut stamps) => {
                match r {
                    Ok((n, from, waited)) => {
                        let peer = Peer { transport: Transport::Udp, addr: from };
                        manager.handle_bytes(clock.now(), peer, &buf[..n], false, waited);
                    }
                    // ICMP port unreachable surfaces as an error on some systems: ignore.
                    Err(e) => debug!(error = %e, "UDP receive error"),
                }
            }
            Some(input) = net_rx.recv() => match input {
                NetInput::Frame { peer, transport, bytes } => {
                    manager.handle_bytes(clock.now(), Peer { transport, addr: peer }, &bytes, true, Duration::ZERO);
                }
                NetInput::Malformed { peer, transport, bytes, why } => {
                    manager.handle_malformed(Peer { transport, addr: peer }, &bytes, &why);
                }
                NetInput::Connected { peer, writer } => {
                    for bytes in wire.pending.remove(&peer).unwrap_or_default() {
                        let _ = writer.send(bytes);
                    }
                    wire.conns.insert(peer, writer);
                }
                NetInput::Closed { peer } => {
                    wire.conns.remove(&peer);
                    wire.pending.remove(&peer);
                    // A caller on this connection is reached at its Contact from now on.
                    manager.connection_closed(peer);
                }
                NetInput::Failed { peer, transport } => {
                    wire.conns.remove(&peer);
                    wire.pending.remove(&peer);
                    manager.connection_failed(clock.now(), Peer { transport, addr: peer });
                }
            },
            Ok((stream, peer)) = tcp.accept() => {
                if let Some((rx, first)) = admit_connection(&manager, &clock, &mut wire.conns, peer) {
                    tokio::spawn(connection(stream, peer, Transport::Tcp, rx, net_tx.clone(), Some(first)));
                }
            }
            Ok((stream, peer)) = accept_tls(&tls) => {
                // Counted with the TCP connections (the same caps), from before the
                // handshake: a flood of handshakes is bounded like one of connections.
                if let (Some((rx, first)), Some((_, acceptor))) =
                    (admit_connection(&manager, &clock, &mut wire.conns, peer), &tls)
                {
                    let (acceptor, net_tx) = (acceptor.clone(), net_tx.clone());
                    tokio::spawn(async move {
                        match tokio::time::timeout_at(first, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => {
                                connection(stream, peer, Transport::Tls, rx, net_tx, Some(first)).await;
                            }
                            Ok(Err(e)) => {
                                debug!(%peer, error = %e, "TLS handshake failed");
                                let _ = net_tx.send(NetInput::Closed { peer });
                            }
                            Err(_) => {
                                debug!(%peer, "TLS handshake not finished in time");
                                let _ = net_tx.send(NetInput::Closed { peer });
                            }
                        }
                    });
                }
            }
            Some(event) = media_rx.recv() => manager.handle_media_event(clock.now(), event),
            Some(reply) = billing.rx.recv() => manager.handle_billing(clock.now(), reply),
            Some(command) = placed.commands.recv() => manager.handle_command(clock.now(), command),
            Some((name, targets)) = dns.resolved.recv() => manager.set_resolved(name, targets),
            Some(q) = queries.recv() => match q {
                Query::Active(reply) => { let _ = reply.send(manager.active_calls()); }
                Query::Finished(reply) => { let _ = reply.send(std::mem::take(&mut finished)); }
                Query::Reload(routing, fresh_tls, done) => {
                    wire.trunk_tls = fresh_tls;
                    for t in &routing.trunks {
                        crate::telemetry::trunk_up(&t.name, true);
                    }
                    let _ = dns.names.send(routing.host_names());
                    manager.set_routing(*routing);
                    info!("routing reloaded");
                    let _ = done.send(());
                }
            },
            _ = tokio::time::sleep_until(wake) => manager.handle_timeout(clock.now()),
            _ = tick.tick() => {
                if watchdog {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                }
            }
            changed = stop_rx.changed() => {
                let how = if changed.is_err() { Stop::Now } else { *stop_rx.borrow() };
                match how {
                    Stop::Running => {}
                    Stop::Drain(grace) => {
                        info!(active = manager.active_calls(), ?grace, "draining: no new calls");
                        manager.begin_drain();
                        manager.unregister_all(clock.now());
                        unregister_until = Some(clock.now() + grace.max(UNREGISTER_WAIT));
                        drain_until = Some(clock.now() + grace);
                    }
                    Stop::Now => {
                        manager.begin_drain();
                        manager.unregister_all(clock.now());
                        unregister_until = Some(clock.now() + UNREGISTER_WAIT);
                        manager.hangup_all(clock.now(), crate::call::EndCause::SwitchStopping);
                        drain_until = Some(clock.now());
                    }
                }
            }
        }
        flush(&mut manager, &mut wire).await;
        forward_billing(&mut manager, &billing);
        while let Some(p) = manager.poll_progress() {
            placed.hub.publish(p);
        }
        let ended = manager.take_finished();
        for o in &ended {
            totals.record(o);
        }
        finished.extend(ended);
        for limit in manager.take_limit_refusals() {
            crate::telemetry::limit_refused(limit);
        }
        for event in manager.take_guard_events() {
            crate::telemetry::guard_event(event);
        }
        for (trunk, up) in manager.take_trunk_changes() {
            crate::telemetry::trunk_up(&trunk, up);
        }
        let changes = manager.take_registration_changes();
        if !changes.is_empty() {
            let mut shown = registrations.write().unwrap_or_else(|p| p.into_inner());
            for (trunk, state) in changes {
                crate::telemetry::trunk_registered(
                    &trunk,
                    state == crate::call::RegState::Registered,
                );
                shown.insert(trunk, state.as_str());
            }
        }
        if manager.active_calls() != active {
            active = manager.active_calls();
            crate::telemetry::active_calls(active);
        }
        if finished.len() > 100_000 {
            // Nobody is collecting outcomes (the daemon logs them): keep memory bounded.
            finished.drain(..50_000);
        }
        if let Some(until) = drain_until {
            let unregistering =
                manager.unregistering() && unregister_until.is_some_and(|u| clock.now() < u);
            if manager.active_calls() == 0 {
                if !unregistering {
                    break;
                }
                continue;
            }
            if clock.now() >= until && !hung_up {
                warn!(
                    active = manager.active_calls(),
                    "grace period over, hanging up"
                );
                manager.hangup_all(clock.now(), crate::call::EndCause::SwitchStopping);
                flush(&mut manager, &mut wire).await;
                forward_billing(&mut manager, &billing);
                while let Some(p) = manager.poll_progress() {
                    placed.hub.publish(p);
                }
                hung_up = true;
            }
            if hung_up && !unregistering {
                break;
            }
        }
    }
    info!("signalling stopped");
    // Authorizations still in flight belong to calls that are gone: take their answers
    // so what they reserved is released (bounded: the store answers or times out).
    let wait_until = clock.now() + Duration::from_secs(15);
    while manager.pending_authorizations() > 0 && clock.now() < wait_until {
        let left = wait_until.saturating_duration_since(clock.now());
        match tokio::time::timeout(left, billing.rx.recv()).await {
            Ok(Some(reply)) => {
                manager.handle_billing(clock.now(), reply);
                flush(&mut manager, &mut wire).await;
                forward_billing(&mut manager, &billing);
            }
            _ => break,
        }
    }
    // Every call has ended: let the accounting service write the last settlements.
    billing.tx = None;
    if let Some(task) = billing.task.take()
        && tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .is_err()
    {
        warn!("settlements still pending at exit: recovery settles them at the next start");
    }
    let _ = done.send(manager.stats());
}

fn forward_billing(manager: &mut Manager, billing: &Billing) {
    while let Some(req) = manager.poll_billing() {
        match &billing.tx {
            Some(tx) => {
                let _ = tx.send(req);
            }
            None => debug!("billing request without accounting"),
        }
    }
}
