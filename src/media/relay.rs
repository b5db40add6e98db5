//! The media relay: real UDP sockets and one tokio task per call.
//!
//! Each call gets four sockets (RTP and RTCP for each leg). The task forwards what arrives
//! on one leg out of the other leg's socket of the same kind, so each far end sees packets
//! come from the address our SDP gave it. Buffers live in the task: nothing is allocated
//! per packet.
//!
//! Symmetric RTP (RFC 4961): the first valid packet from a leg after each SDP update fixes
//! where that leg's media is sent, so phones behind NAT work without STUN.

use super::{Endpoints, MediaControl, MediaError, MediaEvent, MediaId, PortPool, Remote, Side};
use crate::clock;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// What happens to a packet between legs. Today packets are relayed untouched; the
/// transcoder (G.711 ⇄ Opus) is another variant that decodes and re-encodes into the
/// scratch buffer — the relay loop does not change.
pub enum Path {
    Relay,
}

impl Path {
    /// The bytes to send on the other leg, or `None` to drop the packet.
    fn forward<'a>(
        &mut self,
        _from: Side,
        packet: &'a [u8],
        _scratch: &'a mut [u8],
    ) -> Option<&'a [u8]> {
        match self {
            Path::Relay => Some(packet),
        }
    }
}

enum Command {
    SetRemote(Side, Remote),
    Arm,
}

struct Session {
    commands: mpsc::UnboundedSender<Command>,
    ports: [u16; 2],
}

pub struct RelayMedia {
    address: IpAddr,
    pool: PortPool,
    sessions: HashMap<MediaId, Session>,
    events: mpsc::UnboundedSender<MediaEvent>,
    rtp_timeout: Duration,
    next: u64,
}

impl RelayMedia {
    pub fn new(
        address: IpAddr,
        port_min: u16,
        port_max: u16,
        rtp_timeout: Duration,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> RelayMedia {
        RelayMedia {
            address,
            pool: PortPool::new(port_min, port_max),
            sessions: HashMap::new(),
            events,
            rtp_timeout,
            next: 0,
        }
    }

    /// Bind RTP and RTCP for one leg, skipping ports someone else holds.
    fn bind_pair(&mut self) -> Result<(u16, StdUdpSocket, StdUdpSocket), MediaError> {
        for _ in 0..self.pool.available() {
            let port = self.pool.take().ok_or(MediaError::NoPorts)?;
            let rtp = StdUdpSocket::bind(SocketAddr::new(self.address, port));
            let rtcp = StdUdpSocket::bind(SocketAddr::new(self.address, port + 1));
            match (rtp, rtcp) {
                (Ok(rtp), Ok(rtcp)) => {
                    if rtp.set_nonblocking(true).is_ok() && rtcp.set_nonblocking(true).is_ok() {
                        return Ok((port, rtp, rtcp));
                    }
                }
                _ => debug!(port, "RTP port busy, skipped"),
            }
            self.pool.give_back(port);
        }
        Err(MediaError::NoPorts)
    }
}

impl MediaControl for RelayMedia {
    fn allocate(&mut self) -> Result<(MediaId, Endpoints), MediaError> {
        let (pa, a_rtp, a_rtcp) = self.bind_pair()?;
        let (pb, b_rtp, b_rtcp) = match self.bind_pair() {
            Ok(x) => x,
            Err(e) => {
                self.pool.give_back(pa);
                return Err(e);
            }
        };
        let sockets = [a_rtp, a_rtcp, b_rtp, b_rtcp].map(|s| UdpSocket::from_std(s));
        let [Ok(a_rtp), Ok(a_rtcp), Ok(b_rtp), Ok(b_rtcp)] = sockets else {
            self.pool.give_back(pa);
            self.pool.give_back(pb);
            return Err(MediaError::NoPorts);
        };
        self.next += 1;
        let id = MediaId(self.next);
        let (tx, rx) = mpsc::unbounded_channel();
        let relay = Relay {
            id,
            sockets: [a_rtp, a_rtcp, b_rtp, b_rtcp],
            remote: [Remote::default(); 2],
            latched: [false; 2],
            path: Path::Relay,
            stats: [LegStats::default(); 2],
        };
        tokio::spawn(relay.run(rx, self.events.clone(), self.rtp_timeout));
        self.sessions.insert(
            id,
            Session {
                commands: tx,
                ports: [pa, pb],
            },
        );
        Ok((
            id,
            Endpoints {
                a: SocketAddr::new(self.address, pa),
                b: SocketAddr::new(self.address, pb),
            },
        ))
    }

    fn set_remote(&mut self, id: MediaId, side: Side, remote: Remote) {
        if let Some(s) = self.sessions.get(&id) {
            let _ = s.commands.send(Command::SetRemote(side, remote));
        }
    }

    fn arm(&mut self, id: MediaId) {
        if let Some(s) = self.sessions.get(&id) {
            let _ = s.commands.send(Command::Arm);
        }
    }

    fn release(&mut self, id: MediaId) {
        // Dropping the sender ends the task, which drops (closes) the sockets.
        if let Some(s) = self.sessions.remove(&id) {
            for p in s.ports {
                self.pool.give_back(p);
            }
        }
    }
}

#[derive(Default, Clone, Copy, Debug)]
struct LegStats {
    received: u64,
    forwarded: u64,
    invalid: u64,
}

struct Relay {
    id: MediaId,
    /// A-RTP, A-RTCP, B-RTP, B-RTCP.
    sockets: [UdpSocket; 4],
    remote: [Remote; 2],
    /// Whether the leg's media address was taken from a received packet since its SDP.
    latched: [bool; 2],
    path: Path,
    stats: [LegStats; 2],
}

/// RTCP packet types 192..=223 sit where an RTP payload type with the marker bit would be
/// (RFC 5761 4): that is how RTCP is told apart on a multiplexed port.
fn is_rtcp(packet: &[u8]) -> bool {
    packet.len() >= 8 && packet[0] >> 6 == 2 && (192..=223).contains(&packet[1])
}

impl Relay {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        events: mpsc::UnboundedSender<MediaEvent>,
        timeout: Duration,
    ) {
        let mut bufs = [[0u8; 2048]; 4];
        let mut scratch = [0u8; 2048];
        let mut armed = false;
        let mut last = clock::now();
        loop {
            let deadline = tokio::time::Instant::from_std(last + timeout);
            let [b0, b1, b2, b3] = &mut bufs;
            let (slot, n, from) = tokio::select! {
                r = self.sockets[0].recv_from(b0) => match r { Ok((n, f)) => (0, n, f), Err(_) => continue },
                r = self.sockets[1].recv_from(b1) => match r { Ok((n, f)) => (1, n, f), Err(_) => continue },
                r = self.sockets[2].recv_from(b2) => match r { Ok((n, f)) => (2, n, f), Err(_) => continue },
                r = self.sockets[3].recv_from(b3) => match r { Ok((n, f)) => (3, n, f), Err(_) => continue },
                cmd = commands.recv() => {
                    match cmd {
                        None => break,
                        Some(Command::SetRemote(side, remote)) => {
                            self.remote[side.index()] = remote;
                            self.latched[side.index()] = false;
                        }
                        Some(Command::Arm) => {
                            armed = true;
                            last = clock::now();
                        }
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(deadline), if armed => {
                    warn!(media = self.id.0, "no RTP for {timeout:?}");
                    let _ = events.send(MediaEvent::RtpTimeout(self.id));
                    armed = false;
                    continue;
                }
            };
            let side = if slot < 2 { Side::A } else { Side::B };
            let packet = &bufs[slot][..n];
            self.stats[side.index()].received += 1;
            let rtcp = slot % 2 == 1 || is_rtcp(packet);
            if !rtcp && rtp_rs::RtpReader::new(packet).is_err() {
                self.stats[side.index()].invalid += 1;
                continue;
            }
            let me = side.index();
            if !rtcp {
                last = clock::now();
                if !self.latched[me] {
                    // Symmetric RTP: send this leg's media where its packets come from.
                    self.latched[me] = true;
                    if self.remote[me].rtp != Some(from) {
                        debug!(media = self.id.0, ?side, %from, "latched RTP source");
                        if self.remote[me].rtcp == self.remote[me].rtp {
                            self.remote[me].rtcp = Some(from);
                        }
                        self.remote[me].rtp = Some(from);
                    }
                }
            } else if slot % 2 == 1 && self.remote[me].rtcp != Some(from) {
                self.remote[me].rtcp = Some(from);
            }
            let other = side.other();
            let (dest, socket) = if rtcp {
                let oi = other.index();
                // Send RTCP out of the socket the other leg sends its RTCP to.
                let mux =
                    self.remote[oi].rtcp.is_some() && self.remote[oi].rtcp == self.remote[oi].rtp;
                let s = oi * 2 + usize::from(!mux);
                (self.remote[oi].rtcp, s)
            } else {
                (self.remote[other.index()].rtp, other.index() * 2)
            };
            let Some(dest) = dest else { continue };
            let out = if rtcp {
                Some(packet)
            } else {
                self.path.forward(side, packet, &mut scratch)
            };
            if let Some(out) = out
                && self.sockets[socket].try_send_to(out, dest).is_ok()
            {
                self.stats[side.index()].forwarded += 1;
            }
        }
        debug!(
            media = self.id.0,
            a_received = self.stats[0].received,
            a_forwarded = self.stats[0].forwarded,
            a_invalid = self.stats[0].invalid,
            b_received = self.stats[1].received,
            b_forwarded = self.stats[1].forwarded,
            b_invalid = self.stats[1].invalid,
            "media closed"
        );
    }
}
