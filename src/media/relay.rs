//! The media relay: real UDP sockets and one tokio task per call.
//!
//! Each call gets four sockets (RTP and RTCP for each leg). The task forwards what arrives
//! on one leg out of the other leg's socket of the same kind, so each far end sees packets
//! come from the address our SDP gave it. Buffers live in the task: relaying and
//! transcoding allocate nothing per packet.
//!
//! Symmetric RTP (RFC 4961): the first valid packet from a leg after each SDP update fixes
//! where that leg's media is sent, so phones behind NAT work without STUN.
//!
//! Once both legs' formats are known (`set_format`), each direction is either relayed
//! untouched (same encoding and payload types), relayed with payload types rewritten, or
//! transcoded (`Transcoder`). The switch's own audio — prompts, ringback, digits — goes
//! out as a stream of the switch's (`OutStream`) and replaces the other leg's audio
//! towards that leg while it plays.

use super::codec::{Decoder, Encoder, MAX_FRAME, OpusSettings, opus_frame_ok};
use super::prompts::{Prompts, Ringback, event_code, event_digit};
use super::recorder::Recorder;
use super::sdp::LegFormat;
use super::{
    Endpoints, MediaControl, MediaError, MediaEvent, MediaId, MediaStats, Play, PortPool, Remote,
    Side,
};
use crate::clock;
use rand::Rng;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// One RTP packet's header fields, read with `rtp-rs`.
#[derive(Clone, Copy, Debug)]
struct Header {
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    /// Where the payload starts and ends in the packet.
    payload: (usize, usize),
}

fn read_header(packet: &[u8]) -> Option<Header> {
    let r = rtp_rs::RtpReader::new(packet).ok()?;
    let start = r.payload_offset();
    let end = start + r.payload().len();
    Some(Header {
        pt: r.payload_type(),
        marker: r.mark(),
        seq: u16::from(r.sequence_number()),
        ts: r.timestamp(),
        ssrc: r.ssrc(),
        payload: (start, end),
    })
}

/// Write a 12-byte RTP header (RFC 3550 5.1) at the start of `buf`.
pub(crate) fn write_header(buf: &mut [u8], pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32) {
    buf[0] = 0x80;
    buf[1] = (u8::from(marker) << 7) | (pt & 0x7f);
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// Who last sent on a stream of the switch's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Nobody,
    Transcoder,
    Player,
}

/// The switch's own RTP stream towards one leg: one SSRC, one sequence and timestamp
/// space, shared by the transcoder and the player so the far end sees one continuous
/// source (a marker bit where the sender changes).
struct OutStream {
    ssrc: u32,
    seq: u16,
    ts: u32,
    sent_at: Option<Instant>,
    owner: Owner,
}

impl OutStream {
    fn new() -> OutStream {
        let mut rng = rand::rng();
        OutStream {
            ssrc: rng.next_u32(),
            seq: rng.next_u32() as u16,
            ts: rng.next_u32(),
            sent_at: None,
            owner: Owner::Nobody,
        }
    }

    /// Take the stream over for `owner`: the next sequence number, and a timestamp that
    /// advanced with the wall clock since the last packet (`clock` ticks a second).
    fn take_over(&mut self, owner: Owner, clock: u32, now: Instant) -> (u16, u32) {
        let elapsed = self
            .sent_at
            .map(|t| now.saturating_duration_since(t).as_micros() as u64)
            .unwrap_or(0);
        let ticks = (elapsed * clock as u64 / 1_000_000).max(1) as u32;
        self.owner = owner;
        (self.seq.wrapping_add(1), self.ts.wrapping_add(ticks))
    }

    fn sent(&mut self, seq: u16, ts: u32, now: Instant) {
        self.seq = seq;
        self.ts = ts;
        self.sent_at = Some(now);
    }
}

/// Input sequence/timestamp → output sequence/timestamp for one transcoded direction.
#[derive(Clone, Copy, Debug)]
struct SeqMap {
    in_ssrc: u32,
    in_seq: u16,
    in_ts: u32,
    out_seq: u16,
    out_ts: u32,
}

/// One direction of a transcoded call: decode the input leg's codec, encode the output's.
struct Transcoder {
    dec: Decoder,
    enc: Encoder,
    in_pt: u8,
    in_dtmf: Option<u8>,
    out_pt: u8,
    out_dtmf: Option<u8>,
    in_clock: u32,
    out_clock: u32,
    /// Telephone-event clocks (the units of event durations) in and out.
    in_dtmf_clock: u32,
    out_dtmf_clock: u32,
    map: Option<SeqMap>,
    /// Samples (8 kHz) in the last decoded frame: the size of a concealed one.
    frame: usize,
    pcm: Box<[i16; MAX_FRAME]>,
}

/// Lost packets up to this many in a row are concealed (Opus PLC, FEC for the last one).
const MAX_CONCEAL: u16 = 4;

impl Transcoder {
    fn scale(&self, in_ticks: i64) -> i64 {
        in_ticks * self.out_clock as i64 / self.in_clock as i64
    }

    /// Note where input packet `h` went in the output. A telephone-event on a continuing
    /// stream (`event_only`) moves only the sequence number: timestamps stay anchored to
    /// the audio, as the event keeps its start time.
    fn remember(&mut self, h: &Header, seq: u16, ts: u32, event_only: bool) {
        match &mut self.map {
            Some(m) if event_only && m.in_ssrc == h.ssrc => {
                m.in_seq = h.seq;
                m.out_seq = seq;
            }
            _ => {
                self.map = Some(SeqMap {
                    in_ssrc: h.ssrc,
                    in_seq: h.seq,
                    in_ts: h.ts,
                    out_seq: seq,
                    out_ts: ts,
                })
            }
        }
    }

    /// Encode the first `n` samples of `pcm` and send them as one packet with header
    /// (marker, sequence, timestamp, SSRC); the packets sent (0 or 1).
    fn send_pcm(
        &mut self,
        n: usize,
        (marker, seq, ts, ssrc): (bool, u16, u32, u32),
        scratch: &mut [u8; 2048],
        socket: &UdpSocket,
        dest: SocketAddr,
    ) -> u64 {
        let Some(len) = encode_frame(&mut self.enc, &self.pcm[..n], &mut scratch[12..]) else {
            return 0;
        };
        write_header(&mut scratch[..], self.out_pt, marker, seq, ts, ssrc);
        u64::from(socket.try_send_to(&scratch[..12 + len], dest).is_ok())
    }
}

enum Dir {
    Untouched,
    Rewrite {
        audio: (u8, u8),
        dtmf: Option<(u8, u8)>,
    },
    Transcode(Box<Transcoder>),
}

enum Command {
    SetRemote(Side, Remote),
    SetFormat(Side, LegFormat),
    Arm,
    Play(Side, Play),
    StopPlaying(Side),
    Record(PathBuf),
}

struct Session {
    commands: mpsc::UnboundedSender<Command>,
    ports: [u16; 2],
    stats: Arc<Mutex<MediaStats>>,
}

/// Shared by every call's task: how Opus is encoded and the prompts to play.
#[derive(Clone, Debug, Default)]
pub struct MediaOptions {
    pub opus: OpusSettings,
    pub prompts: Arc<RwLock<Arc<Prompts>>>,
}

pub struct RelayMedia {
    address: IpAddr,
    pool: PortPool,
    sessions: HashMap<MediaId, Session>,
    events: mpsc::UnboundedSender<MediaEvent>,
    rtp_timeout: Duration,
    options: MediaOptions,
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
            options: MediaOptions::default(),
            next: 0,
        }
    }

    pub fn with_options(mut self, options: MediaOptions) -> RelayMedia {
        self.options = options;
        self
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

    fn send(&self, id: MediaId, cmd: Command) {
        if let Some(s) = self.sessions.get(&id) {
            let _ = s.commands.send(cmd);
        }
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
        let sockets = [a_rtp, a_rtcp, b_rtp, b_rtcp].map(UdpSocket::from_std);
        let [Ok(a_rtp), Ok(a_rtcp), Ok(b_rtp), Ok(b_rtcp)] = sockets else {
            self.pool.give_back(pa);
            self.pool.give_back(pb);
            return Err(MediaError::NoPorts);
        };
        self.next += 1;
        let id = MediaId(self.next);
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(MediaStats::default()));
        let prompts = self
            .options
            .prompts
            .read()
            .map(|p| p.clone())
            .unwrap_or_default();
        let relay = Relay {
            id,
            sockets: [a_rtp, a_rtcp, b_rtp, b_rtcp],
            remote: [Remote::default(); 2],
            latched: [false; 2],
            format: [None, None],
            dirs: [Dir::Untouched, Dir::Untouched],
            out: [OutStream::new(), OutStream::new()],
            players: [None, None],
            recorder: None,
            rec_dec: [None, None],
            rec_pcm: Box::new([0; MAX_FRAME]),
            last_digit: [None; 2],
            rx: [None; 2],
            stats: stats.clone(),
            opus: self.options.opus,
            prompts,
            events: self.events.clone(),
            born: clock::now(),
        };
        tokio::spawn(relay.run(rx, self.rtp_timeout));
        self.sessions.insert(
            id,
            Session {
                commands: tx,
                ports: [pa, pb],
                stats,
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
        self.send(id, Command::SetRemote(side, remote));
    }

    fn set_format(&mut self, id: MediaId, side: Side, format: LegFormat) {
        self.send(id, Command::SetFormat(side, format));
    }

    fn arm(&mut self, id: MediaId) {
        self.send(id, Command::Arm);
    }

    fn play(&mut self, id: MediaId, side: Side, what: Play) {
        self.send(id, Command::Play(side, what));
    }

    fn stop_playing(&mut self, id: MediaId, side: Side) {
        self.send(id, Command::StopPlaying(side));
    }

    fn record(&mut self, id: MediaId, path: PathBuf) {
        self.send(id, Command::Record(path));
    }

    fn stats(&self, id: MediaId) -> Option<MediaStats> {
        let s = self.sessions.get(&id)?;
        s.stats.lock().ok().map(|s| s.clone())
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

/// What the switch is playing to one leg.
struct Player {
    queue: std::collections::VecDeque<Play>,
    enc: Option<Encoder>,
    /// Position in the current prompt, or of the current digit's event in 20 ms ticks.
    pos: usize,
    ringback: Ringback,
    /// Timestamp of the current digit's event (its start).
    event_ts: Option<u32>,
}

/// One digit in 20 ms packets: 5 growing to 100 ms, the end sent twice more (three in all,
/// RFC 4733 2.5.1.4), then 20 ms without a packet before the next digit.
const DIGIT_TICKS: usize = 5;
const DIGIT_GAP_TICKS: usize = 3;
const TICK: Duration = Duration::from_millis(20);
const TICK_SAMPLES: usize = 160;

struct Relay {
    id: MediaId,
    /// A-RTP, A-RTCP, B-RTP, B-RTCP.
    sockets: [UdpSocket; 4],
    remote: [Remote; 2],
    /// Whether the leg's media address was taken from a received packet since its SDP.
    latched: [bool; 2],
    format: [Option<LegFormat>; 2],
    /// Indexed by the side packets come from.
    dirs: [Dir; 2],
    /// The switch's streams, indexed by the side they go to.
    out: [OutStream; 2],
    players: [Option<Player>; 2],
    recorder: Option<Recorder>,
    rec_dec: [Option<Decoder>; 2],
    rec_pcm: Box<[i16; MAX_FRAME]>,
    /// The timestamp of the last telephone-event reported per leg (one report per event).
    last_digit: [Option<u32>; 2],
    /// Per leg: what it sent us, for loss, lateness and jitter.
    rx: [Option<Reception>; 2],
    stats: Arc<Mutex<MediaStats>>,
    opus: OpusSettings,
    prompts: Arc<Prompts>,
    events: mpsc::UnboundedSender<MediaEvent>,
    /// Arrival times for jitter are counted from here.
    born: Instant,
}

/// What one leg's RTP stream looked like on arrival (RFC 3550 A.3, A.8).
#[derive(Clone, Copy, Debug, Default)]
struct Reception {
    received: u64,
    late: u64,
    /// Extended sequence numbers: the first packet's, and the highest seen.
    first: u64,
    highest: u64,
    /// The last transit time (arrival − RTP timestamp) in clock ticks.
    transit: i64,
    /// Interarrival jitter × 16, in clock ticks.
    jitter_q4: i64,
    clock: i64,
}

/// RTCP packet types 192..=223 sit where an RTP payload type with the marker bit would be
/// (RFC 5761 4): that is how RTCP is told apart on a multiplexed port.
fn is_rtcp(packet: &[u8]) -> bool {
    packet.len() >= 8 && packet[0] >> 6 == 2 && (192..=223).contains(&packet[1])
}

impl Relay {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>, timeout: Duration) {
        let mut bufs = [[0u8; 2048]; 4];
        let mut scratch = [0u8; 2048];
        let mut armed = false;
        let mut last = clock::now();
        let mut next_tick = tokio::time::Instant::from_std(clock::now());
        // Two timers, each registered once and moved only when needed: the RTP timeout is
        // checked when it fires (and pushed back to the last packet + timeout), so a
        // packet costs no timer work.
        let rtp_timer = tokio::time::sleep(timeout);
        tokio::pin!(rtp_timer);
        let tick_timer = tokio::time::sleep(TICK);
        tokio::pin!(tick_timer);
        loop {
            let playing = self.players.iter().any(Option::is_some);
            let [b0, b1, b2, b3] = &mut bufs;
            let (slot, n, from) = tokio::select! {
                r = self.sockets[0].recv_from(b0) => match r { Ok((n, f)) => (0, n, f), Err(_) => continue },
                r = self.sockets[1].recv_from(b1) => match r { Ok((n, f)) => (1, n, f), Err(_) => continue },
                r = self.sockets[2].recv_from(b2) => match r { Ok((n, f)) => (2, n, f), Err(_) => continue },
                r = self.sockets[3].recv_from(b3) => match r { Ok((n, f)) => (3, n, f), Err(_) => continue },
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else { break };
                    if let Command::Play(..) = cmd && !playing {
                        next_tick = tokio::time::Instant::from_std(clock::now());
                        tick_timer.as_mut().reset(next_tick);
                    }
                    if matches!(cmd, Command::Arm) {
                        armed = true;
                        last = clock::now();
                        rtp_timer.as_mut().reset(tokio::time::Instant::from_std(last + timeout));
                    }
                    self.command(cmd);
                    continue;
                }
                _ = &mut tick_timer, if playing => {
                    next_tick += TICK;
                    // Catch up at most a little after a stall; never burst a backlog.
                    let now = tokio::time::Instant::from_std(clock::now());
                    if next_tick + TICK * 3 < now {
                        next_tick = now;
                    }
                    tick_timer.as_mut().reset(next_tick);
                    self.tick(&mut scratch);
                    continue;
                }
                _ = &mut rtp_timer, if armed => {
                    let due = last + timeout;
                    if due > clock::now() {
                        rtp_timer.as_mut().reset(tokio::time::Instant::from_std(due));
                        continue;
                    }
                    warn!(media = self.id.0, "no RTP for {timeout:?}");
                    let _ = self.events.send(MediaEvent::RtpTimeout(self.id));
                    armed = false;
                    continue;
                }
            };
            let now = clock::now();
            if self.packet(slot, n, from, &bufs[slot], &mut scratch, now) {
                last = now;
            }
        }
        if let Ok(s) = self.stats.lock() {
            debug!(media = self.id.0, stats = ?*s, "media closed");
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::SetRemote(side, remote) => {
                self.remote[side.index()] = remote;
                self.latched[side.index()] = false;
            }
            Command::SetFormat(side, format) => {
                if let Ok(mut s) = self.stats.lock() {
                    s.legs[side.index()].codec = format.name();
                }
                if self.recorder.is_some() {
                    self.rec_dec[side.index()] = format.codec().and_then(|c| Decoder::new(c).ok());
                }
                self.format[side.index()] = Some(format);
                self.plan();
            }
            Command::Arm => {}
            Command::Play(side, what) => {
                let player = self.players[side.index()].get_or_insert_with(|| Player {
                    queue: Default::default(),
                    enc: None,
                    pos: 0,
                    ringback: Ringback::default(),
                    event_ts: None,
                });
                player.queue.push_back(what);
            }
            Command::StopPlaying(side) => {
                if self.players[side.index()].take().is_some() {
                    let _ = self.events.send(MediaEvent::PlayDone(self.id, side));
                }
            }
            Command::Record(path) => match Recorder::start(&path) {
                Ok(r) => {
                    self.recorder = Some(r);
                    for side in [Side::A, Side::B] {
                        self.rec_dec[side.index()] = self.format[side.index()]
                            .as_ref()
                            .and_then(LegFormat::codec)
                            .and_then(|c| Decoder::new(c).ok());
                    }
                    if let Ok(mut s) = self.stats.lock() {
                        s.recording = Some(path.display().to_string());
                    }
                }
                Err(e) => {
                    warn!(media = self.id.0, file = %path.display(), error = %e, "cannot record")
                }
            },
        }
    }

    /// Decide per direction how packets cross, from the two legs' formats.
    fn plan(&mut self) {
        let (Some(a), Some(b)) = (&self.format[0], &self.format[1]) else {
            return;
        };
        let dir = |from: &LegFormat, to: &LegFormat, opus: OpusSettings| -> Dir {
            if from.audio.same_encoding(&to.audio) {
                if from.audio.pt == to.audio.pt && from.dtmf == to.dtmf {
                    return Dir::Untouched;
                }
                return Dir::Rewrite {
                    audio: (from.audio.pt, to.audio.pt),
                    dtmf: from.dtmf.zip(to.dtmf),
                };
            }
            let (Some(fc), Some(tc)) = (from.codec(), to.codec()) else {
                return Dir::Untouched;
            };
            match (Decoder::new(fc), Encoder::new(tc, opus, to.opus())) {
                (Ok(dec), Ok(enc)) => Dir::Transcode(Box::new(Transcoder {
                    dec,
                    enc,
                    in_pt: from.audio.pt,
                    in_dtmf: from.dtmf,
                    out_pt: to.audio.pt,
                    out_dtmf: to.dtmf,
                    in_clock: fc.clock(),
                    out_clock: tc.clock(),
                    in_dtmf_clock: from.dtmf_clock.max(1),
                    out_dtmf_clock: to.dtmf_clock.max(1),
                    map: None,
                    frame: 160,
                    pcm: Box::new([0; MAX_FRAME]),
                })),
                _ => Dir::Untouched,
            }
        };
        let ab = dir(a, b, self.opus);
        let ba = dir(b, a, self.opus);
        let transcoding = matches!(ab, Dir::Transcode(_));
        debug!(media = self.id.0, a = %a.audio.name, b = %b.audio.name, transcoding, "media path");
        if let Ok(mut s) = self.stats.lock() {
            s.transcoded = transcoding;
        }
        self.dirs = [ab, ba];
    }

    /// Handle one received datagram; whether it was RTP (for the timeout).
    fn packet(
        &mut self,
        slot: usize,
        n: usize,
        from: SocketAddr,
        buf: &[u8; 2048],
        scratch: &mut [u8; 2048],
        now: Instant,
    ) -> bool {
        let side = if slot < 2 { Side::A } else { Side::B };
        let me = side.index();
        let packet = &buf[..n];
        let rtcp = slot % 2 == 1 || is_rtcp(packet);
        let header = if rtcp { None } else { read_header(packet) };
        if !rtcp && header.is_none() {
            if let Ok(mut s) = self.stats.lock() {
                s.legs[me].invalid += 1;
            }
            return false;
        }
        if let Some(h) = header {
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
            self.account(side, &h, now);
            self.observe(side, &h, packet);
        } else if slot % 2 == 1 && self.remote[me].rtcp != Some(from) {
            self.remote[me].rtcp = Some(from);
        }
        let other = side.other();
        let oi = other.index();
        if rtcp {
            // Send RTCP out of the socket the other leg sends its RTCP to.
            let mux = self.remote[oi].rtcp.is_some() && self.remote[oi].rtcp == self.remote[oi].rtp;
            if let Some(dest) = self.remote[oi].rtcp {
                let _ = self.sockets[oi * 2 + usize::from(!mux)].try_send_to(packet, dest);
            }
            return false;
        }
        let Some(h) = header else { return false };
        let sent = self.forward(me, &h, packet, scratch, now);
        self.publish(me, sent);
        true
    }

    /// Send an RTP packet from leg `me` on to the other leg, as its direction says; the
    /// packets sent.
    fn forward(
        &mut self,
        me: usize,
        h: &Header,
        packet: &[u8],
        scratch: &mut [u8; 2048],
        now: Instant,
    ) -> u64 {
        let oi = 1 - me;
        // While the switch plays to the other leg, its audio replaces this leg's.
        if self.players[oi].is_some() {
            return 0;
        }
        let Some(dest) = self.remote[oi].rtp else {
            return 0;
        };
        let socket = &self.sockets[oi * 2];
        let n = packet.len();
        let mut sent = 0u64;
        match &mut self.dirs[me] {
            Dir::Untouched => {
                if socket.try_send_to(packet, dest).is_ok() {
                    sent += 1;
                }
            }
            Dir::Rewrite { audio, dtmf } => {
                let out = &mut scratch[..n];
                out.copy_from_slice(packet);
                let pt = if h.pt == audio.0 {
                    Some(audio.1)
                } else {
                    dtmf.filter(|d| d.0 == h.pt).map(|d| d.1)
                };
                if let Some(pt) = pt {
                    out[1] = (out[1] & 0x80) | pt;
                    if socket.try_send_to(out, dest).is_ok() {
                        sent += 1;
                    }
                }
            }
            Dir::Transcode(t) => {
                let out = &mut self.out[oi];
                sent = transcode(t, out, h, packet, scratch, socket, dest, now);
            }
        }
        sent
    }

    /// Statistics of what a leg sent us (RFC 3550 A.3 loss, A.8 jitter), kept in the task
    /// and published by `publish`.
    fn account(&mut self, side: Side, h: &Header, now: Instant) {
        let me = side.index();
        let clock = self.format[me]
            .as_ref()
            .map(|f| f.audio.clock)
            .unwrap_or(8000) as i64;
        let arrival =
            now.saturating_duration_since(self.born).as_micros() as i64 * clock / 1_000_000;
        let transit = arrival - h.ts as i64;
        let is_dtmf = self.format[me].as_ref().and_then(|f| f.dtmf) == Some(h.pt);
        let rx = self.rx[me].get_or_insert(Reception {
            // Extended sequence numbers start one cycle up, so a reordered first packet
            // cannot take them below zero.
            first: h.seq as u64 | 1 << 16,
            highest: (h.seq as u64 | 1 << 16).wrapping_sub(1),
            transit,
            ..Default::default()
        });
        rx.received += 1;
        rx.clock = clock;
        let delta = h.seq.wrapping_sub(rx.highest as u16) as i16 as i64;
        if delta <= 0 {
            rx.late += 1;
        }
        rx.highest = rx.highest.max((rx.highest as i64 + delta).max(0) as u64);
        // Telephone-events repeat one timestamp: they say nothing of jitter.
        if !is_dtmf {
            let d = (transit - rx.transit).abs();
            rx.jitter_q4 += d - (rx.jitter_q4 + 8) / 16;
            rx.transit = transit;
        }
    }

    /// Make the statistics of leg `me` (and what was just sent to the other) visible to
    /// `stats()`: one lock per packet.
    fn publish(&self, me: usize, sent: u64) {
        let Ok(mut s) = self.stats.lock() else { return };
        if let Some(rx) = &self.rx[me] {
            let leg = &mut s.legs[me];
            leg.received = rx.received;
            leg.late = rx.late;
            leg.lost = (rx.highest + 1 - rx.first).saturating_sub(rx.received);
            leg.jitter_us = (rx.jitter_q4.max(0) as u64) * 1_000_000 / 16 / rx.clock.max(1) as u64;
        }
        s.legs[1 - me].sent += sent;
    }

    /// Telephone-events a leg sends (reported once per event, at its end) and audio for the
    /// recording.
    fn observe(&mut self, side: Side, h: &Header, packet: &[u8]) {
        let me = side.index();
        let Some(format) = &self.format[me] else {
            return;
        };
        let payload = &packet[h.payload.0..h.payload.1];
        if format.dtmf == Some(h.pt) {
            if payload.len() >= 4 && payload[1] & 0x80 != 0 && self.last_digit[me] != Some(h.ts) {
                self.last_digit[me] = Some(h.ts);
                if let Some(d) = event_digit(payload[0]) {
                    debug!(media = self.id.0, ?side, digit = %d, "digit");
                    let _ = self.events.send(MediaEvent::Digit(self.id, side, d));
                }
            }
            return;
        }
        if h.pt != format.audio.pt {
            return;
        }
        if let (Some(rec), Some(dec)) = (&mut self.recorder, &mut self.rec_dec[me])
            && let Some(n) = dec.decode(payload, &mut self.rec_pcm[..])
        {
            rec.push(side, &self.rec_pcm[..n]);
        }
    }

    /// 20 ms of the switch's own audio (or digit events) to each leg something plays to.
    fn tick(&mut self, scratch: &mut [u8; 2048]) {
        for side in [Side::A, Side::B] {
            let i = side.index();
            let Some(player) = &mut self.players[i] else {
                continue;
            };
            let format = self.format[i].clone();
            let done = match play_tick(
                player,
                format.as_ref(),
                &self.prompts,
                self.opus,
                &mut self.out[i],
                scratch,
            ) {
                Some(len) => {
                    if let Some(dest) = self.remote[i].rtp {
                        let _ = self.sockets[i * 2].try_send_to(&scratch[..len], dest);
                    }
                    false
                }
                None => player.queue.is_empty(),
            };
            if done {
                self.players[i] = None;
                let _ = self.events.send(MediaEvent::PlayDone(self.id, side));
            }
        }
    }
}

/// Produce the next 20 ms packet of what `player` plays into `scratch`; `None` when
/// nothing is left to send this tick (the queue may then have moved on).
fn play_tick(
    player: &mut Player,
    format: Option<&LegFormat>,
    prompts: &Prompts,
    opus: OpusSettings,
    out: &mut OutStream,
    scratch: &mut [u8; 2048],
) -> Option<usize> {
    let now = clock::now();
    loop {
        let Some(format) = format else {
            player.queue.clear();
            return None;
        };
        let codec = format.codec();
        let clock = format.audio.clock;
        let ticks_per_frame = TICK_SAMPLES as u32 * clock / 8000;
        let what = player.queue.front()?.clone();
        let mut pcm = [0i16; TICK_SAMPLES];
        match &what {
            Play::Digits(digits) => {
                let Some(pt) = format.dtmf else {
                    warn!("the leg did not agree to telephone-events: digits not sent");
                    player.queue.pop_front();
                    continue;
                };
                let per_digit = DIGIT_TICKS + DIGIT_GAP_TICKS;
                let index = player.pos / per_digit;
                let Some(code) = digits.chars().nth(index).and_then(event_code) else {
                    player.queue.pop_front();
                    player.pos = 0;
                    player.event_ts = None;
                    continue;
                };
                let step = player.pos % per_digit;
                player.pos += 1;
                // The event's end is sent three times (RFC 4733 2.5.1.4), then a pause.
                let end_repeats = 3;
                if step >= DIGIT_TICKS + end_repeats - 1 {
                    // Pause between digits: nothing on the wire.
                    if step == per_digit - 1 {
                        player.event_ts = None;
                    }
                    return None;
                }
                let (seq, ts) = if out.owner == Owner::Player && player.event_ts.is_some() {
                    (out.seq.wrapping_add(1), out.ts)
                } else {
                    out.take_over(Owner::Player, clock, now)
                };
                let start = *player.event_ts.get_or_insert(ts);
                let first = step == 0;
                let end = step + 1 >= DIGIT_TICKS;
                // Durations count in the event clock, timestamps in the audio's.
                let event_ticks = TICK_SAMPLES as u32 * format.dtmf_clock / 8000;
                let duration = (step.min(DIGIT_TICKS - 1) as u32 + 1) * event_ticks;
                write_header(&mut scratch[..], pt, first, seq, start, out.ssrc);
                scratch[12] = code;
                scratch[13] = (u8::from(end) << 7) | 10; // volume −10 dBm0
                scratch[14..16].copy_from_slice(&(duration.min(0xffff) as u16).to_be_bytes());
                out.sent(seq, start, now);
                return Some(16);
            }
            Play::Prompt(name) => {
                let Some(samples) = prompts.get(name) else {
                    warn!(prompt = %name, "no such prompt");
                    player.queue.pop_front();
                    player.pos = 0;
                    continue;
                };
                if player.pos >= samples.len() {
                    player.queue.pop_front();
                    player.pos = 0;
                    continue;
                }
                let n = (samples.len() - player.pos).min(TICK_SAMPLES);
                pcm[..n].copy_from_slice(&samples[player.pos..player.pos + n]);
                player.pos += n;
            }
            Play::Ringback => player.ringback.fill(&mut pcm),
        }
        let Some(codec) = codec else {
            player.queue.clear();
            return None;
        };
        if player.enc.is_none() {
            player.enc = Encoder::new(codec, opus, format.opus()).ok();
        }
        let enc = player.enc.as_mut()?;
        let (seq, ts, marker) = if out.owner == Owner::Player {
            (
                out.seq.wrapping_add(1),
                out.ts.wrapping_add(ticks_per_frame),
                false,
            )
        } else {
            let (s, t) = out.take_over(Owner::Player, clock, now);
            (s, t, true)
        };
        let len = enc.encode(&pcm, &mut scratch[12..])?;
        write_header(&mut scratch[..], format.audio.pt, marker, seq, ts, out.ssrc);
        out.sent(seq, ts, now);
        return Some(12 + len);
    }
}

/// Transcode one packet (and conceal a few lost before it); the packets sent.
#[allow(clippy::too_many_arguments)]
fn transcode(
    t: &mut Transcoder,
    out: &mut OutStream,
    h: &Header,
    packet: &[u8],
    scratch: &mut [u8; 2048],
    socket: &UdpSocket,
    dest: SocketAddr,
    now: Instant,
) -> u64 {
    let payload = &packet[h.payload.0..h.payload.1];
    let is_dtmf = t.in_dtmf == Some(h.pt);
    if !is_dtmf && h.pt != t.in_pt {
        return 0;
    }
    // Where this packet goes in the output's sequence and timestamp space.
    let continuing = out.owner == Owner::Transcoder;
    let mut marker = h.marker;
    let mut lost = 0u16;
    let (seq, ts) = match t.map {
        Some(m) if continuing && m.in_ssrc == h.ssrc => {
            let d = h.seq.wrapping_sub(m.in_seq) as i16;
            if d <= 0 {
                return 0; // late or duplicate: its time has passed
            }
            if d as u16 > 50 {
                // A jump (the sender restarted its sequence): continue by the wall clock.
                marker = true;
                out.take_over(Owner::Transcoder, t.out_clock, now)
            } else {
                lost = d as u16 - 1;
                let dts = h.ts.wrapping_sub(m.in_ts) as i32 as i64;
                (
                    m.out_seq.wrapping_add(d as u16),
                    m.out_ts.wrapping_add(t.scale(dts) as u32),
                )
            }
        }
        _ => {
            marker = true;
            let clock = t.out_clock;
            out.take_over(Owner::Transcoder, clock, now)
        }
    };
    let mut sent = 0;
    if is_dtmf {
        let Some(pt) = t.out_dtmf else { return 0 };
        if payload.len() < 4 {
            return 0;
        }
        // The event keeps its start time (mapped like audio); its duration is rescaled.
        write_header(&mut scratch[..], pt, marker, seq, ts, out.ssrc);
        scratch[12..12 + payload.len()].copy_from_slice(payload);
        let dur = u16::from_be_bytes([payload[2], payload[3]]) as i64;
        let scaled =
            (dur * t.out_dtmf_clock as i64 / t.in_dtmf_clock as i64).clamp(0, 0xffff) as u16;
        scratch[14..16].copy_from_slice(&scaled.to_be_bytes());
        if socket
            .try_send_to(&scratch[..12 + payload.len()], dest)
            .is_ok()
        {
            sent += 1;
        }
        t.remember(h, seq, ts, continuing);
        out.sent(seq, ts, now);
        return sent;
    }
    // Conceal a short run of lost packets so the output keeps its pace.
    if (1..=MAX_CONCEAL).contains(&lost) {
        let out_frame = t.scale(t.frame as i64 * t.in_clock as i64 / 8000) as u32;
        for k in 1..=lost {
            let next = (k == lost).then_some(payload);
            let Some(n) = t.dec.conceal(t.frame, next, &mut t.pcm[..]) else {
                break;
            };
            let lseq = seq.wrapping_sub(lost - k + 1);
            let lts = ts.wrapping_sub(out_frame * (lost - k + 1) as u32);
            sent += t.send_pcm(n, (false, lseq, lts, out.ssrc), scratch, socket, dest);
        }
    }
    let Some(n) = t.dec.decode(payload, &mut t.pcm[..]) else {
        return sent;
    };
    t.frame = n;
    sent += t.send_pcm(n, (marker, seq, ts, out.ssrc), scratch, socket, dest);
    t.remember(h, seq, ts, false);
    out.sent(seq, ts, now);
    sent
}

/// Encode one frame; Opus takes only its frame sizes (a 30 ms G.711 frame is not one).
fn encode_frame(enc: &mut Encoder, pcm: &[i16], out: &mut [u8]) -> Option<usize> {
    if matches!(enc, Encoder::Opus(_)) && !opus_frame_ok(pcm.len()) {
        return None;
    }
    enc.encode(pcm, out)
}
