//! A userspace impairment proxy for UDP (these machines have no kernel `netem`): it stands
//! between two hosts that both live on 127.0.0.1 and loses, delays, reorders and
//! duplicates what passes, in both directions, with a seeded generator.
//!
//! Each host is mirrored at an address of its own (its *face*): every port of the host
//! is bound there too. A datagram the other host sends to `face:p` is passed on to
//! `127.0.0.1:p`, sent from the sender's own face and port — so each side sees the other
//! only at its face and answers there, and nothing goes around the proxy. The hosts write
//! their face into Via, Contact and SDP (the switch: `sip.advertised_address`,
//! `media.advertised_address`; pjsua2: its transports' public address).

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;

/// What the network does to each datagram, independently.
#[derive(Clone, Copy, Debug)]
pub struct Impairment {
    /// Share of datagrams lost.
    pub loss: f64,
    /// Share sent twice (the copy 2 ms after the original).
    pub duplicate: f64,
    /// Share held back `reorder_by`, so the ones after it overtake it.
    pub reorder: f64,
    pub reorder_by: Duration,
    /// Every datagram is delayed this much, plus up to `jitter`.
    pub delay: Duration,
    pub jitter: Duration,
    pub seed: u64,
}

/// A host behind the proxy: where it is mirrored, and its ports (`sip` among them are
/// counted as signalling, the rest as media).
pub struct Host {
    pub face: Ipv4Addr,
    pub sip: Vec<u16>,
    pub media: Vec<u16>,
}

/// What the proxy did, per kind of traffic.
#[derive(Default, Debug)]
pub struct Tally {
    pub passed: AtomicU64,
    pub lost: AtomicU64,
    pub duplicated: AtomicU64,
    pub reordered: AtomicU64,
}

impl Tally {
    pub fn get(&self) -> [u64; 4] {
        [
            self.passed.load(Ordering::Relaxed),
            self.lost.load(Ordering::Relaxed),
            self.duplicated.load(Ordering::Relaxed),
            self.reordered.load(Ordering::Relaxed),
        ]
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [p, l, d, r] = self.get();
        write!(f, "{p} passed, {l} lost, {d} duplicated, {r} reordered")
    }
}

#[derive(Default, Debug)]
pub struct Tallies {
    pub sip: Tally,
    pub media: Tally,
    /// Datagrams from a port neither host has (nothing to pass them to).
    pub stray: AtomicU64,
}

/// The running proxy; it stops when dropped.
pub struct Proxy {
    pub tallies: Arc<Tallies>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Proxy {
    /// Mirror `a` and `b` and start passing datagrams between them, impaired by `how`.
    pub fn start(a: Host, b: Host, how: Impairment) -> Proxy {
        let tallies = Arc::new(Tallies::default());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let t = tallies.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let run = Run::bind(&a, &b, how, t).await;
                let _ = ready_tx.send(());
                run.serve(stopped).await;
            });
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the impairment proxy bound its ports");
        Proxy {
            tallies,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

struct Run {
    /// (face, port) → the socket bound there.
    sockets: HashMap<(Ipv4Addr, u16), Arc<UdpSocket>>,
    /// Each host's face and ports.
    hosts: [(Ipv4Addr, HashSet<u16>); 2],
    sip: HashSet<u16>,
    how: Impairment,
    rng: Arc<Mutex<SmallRng>>,
    tallies: Arc<Tallies>,
}

impl Run {
    async fn bind(a: &Host, b: &Host, how: Impairment, tallies: Arc<Tallies>) -> Run {
        let mut sockets = HashMap::new();
        let mut sip = HashSet::new();
        let mut hosts = Vec::new();
        for h in [a, b] {
            let mut ports = HashSet::new();
            for &p in h.sip.iter().chain(&h.media) {
                let s = UdpSocket::bind((h.face, p))
                    .await
                    .unwrap_or_else(|e| panic!("the proxy cannot bind {}:{p}: {e}", h.face));
                sockets.insert((h.face, p), Arc::new(s));
                ports.insert(p);
            }
            sip.extend(h.sip.iter().copied());
            hosts.push((h.face, ports));
        }
        let hosts: [(Ipv4Addr, HashSet<u16>); 2] = [hosts.remove(0), hosts.remove(0)];
        Run {
            sockets,
            hosts,
            sip,
            how,
            rng: Arc::new(Mutex::new(SmallRng::seed_from_u64(how.seed))),
            tallies,
        }
    }

    async fn serve(self, stopped: tokio::sync::oneshot::Receiver<()>) {
        let this = Arc::new(self);
        let mut tasks = tokio::task::JoinSet::new();
        for (&(face, port), sock) in &this.sockets {
            let (this, sock) = (this.clone(), sock.clone());
            tasks.spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                        continue;
                    };
                    this.pass(face, port, from, buf[..n].to_vec());
                }
            });
        }
        let _ = stopped.await;
        tasks.abort_all();
    }

    /// A datagram for the host faced at `face`, port `port`, from `from` (the other host's
    /// real address): on to the real host, from the sender's face.
    fn pass(&self, face: Ipv4Addr, port: u16, from: SocketAddr, bytes: Vec<u8>) {
        let to_host = usize::from(self.hosts[1].0 == face);
        let (sender_face, sender_ports) = &self.hosts[1 - to_host];
        let Some(out) = self
            .sockets
            .get(&(*sender_face, from.port()))
            .filter(|_| sender_ports.contains(&from.port()))
            .cloned()
        else {
            self.tallies.stray.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let tally = if self.sip.contains(&port) || self.sip.contains(&from.port()) {
            &self.tallies.sip
        } else {
            &self.tallies.media
        };
        let how = self.how;
        let (lose, copy, hold, jitter) = {
            let mut rng = self.rng.lock().unwrap();
            (
                rng.random_bool(how.loss),
                rng.random_bool(how.duplicate),
                rng.random_bool(how.reorder),
                how.jitter.mul_f64(rng.random::<f64>()),
            )
        };
        if lose {
            tally.lost.fetch_add(1, Ordering::Relaxed);
            return;
        }
        tally.passed.fetch_add(1, Ordering::Relaxed);
        let mut after = how.delay + jitter;
        if hold {
            tally.reordered.fetch_add(1, Ordering::Relaxed);
            after += how.reorder_by;
        }
        if copy {
            tally.duplicated.fetch_add(1, Ordering::Relaxed);
        }
        let to = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let send = async move {
            if !after.is_zero() {
                tokio::time::sleep(after).await;
            }
            let _ = out.send_to(&bytes, to).await;
            if copy {
                tokio::time::sleep(Duration::from_millis(2)).await;
                let _ = out.send_to(&bytes, to).await;
            }
        };
        tokio::spawn(send);
    }
}
