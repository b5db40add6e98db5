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

use super::codec::{Decoder, Encoder, MAX_FRAME, OpusSettings};
use super::player::{Player, TICK, play_tick};
use super::prompts::{Prompts, Ringback, event_digit};
use super::recorder::{Recorder, RecordingDone};
use super::rtp::{Header, OutStream, Reception, is_rtcp, read_header};
use super::sdp::LegFormat;
use super::transcode::{Dir, Transcoder, transcode};
use super::{
    Endpoints, MediaControl, MediaError, MediaEvent, MediaId, MediaStats, Play, PortPool, Remote,
    Side,
};
use crate::clock::Clock;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, warn};

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
    /// Told how each recording's file closed (its length and size, or that it failed).
    pub recordings: Option<mpsc::UnboundedSender<RecordingDone>>,
    /// The switch's clock (packet times, playback pacing, recordings).
    pub clock: Clock,
    /// The address SDP names for the relay's ports, when not the one they bind
    /// (`media.advertised_address`, behind a 1:1 NAT).
    pub advertised: Option<IpAddr>,
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
            recordings: self.options.recordings.clone(),
            events: self.events.clone(),
            clock: self.options.clock.clone(),
            born: self.options.clock.now(),
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
                a: SocketAddr::new(self.options.advertised.unwrap_or(self.address), pa),
                b: SocketAddr::new(self.options.advertised.unwrap_or(self.address), pb),
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
    recordings: Option<mpsc::UnboundedSender<RecordingDone>>,
    events: mpsc::UnboundedSender<MediaEvent>,
    clock: Clock,
    /// Arrival times for jitter are counted from here.
    born: Instant,
}

impl Relay {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>, timeout: Duration) {
        let mut bufs = [[0u8; 2048]; 4];
        let mut scratch = [0u8; 2048];
        let mut armed = false;
        let mut last = self.clock.now();
        let mut next_tick = self.clock.timer_at(self.clock.now());
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
                        next_tick = self.clock.timer_at(self.clock.now());
                        tick_timer.as_mut().reset(next_tick);
                    }
                    if matches!(cmd, Command::Arm) {
                        armed = true;
                        last = self.clock.now();
                        rtp_timer.as_mut().reset(self.clock.timer_at(last + timeout));
                    }
                    self.command(cmd);
                    continue;
                }
                _ = &mut tick_timer, if playing => {
                    next_tick += TICK;
                    // Catch up at most a little after a stall; never burst a backlog.
                    let now = self.clock.timer_at(self.clock.now());
                    if next_tick + TICK * 3 < now {
                        next_tick = now;
                    }
                    tick_timer.as_mut().reset(next_tick);
                    self.tick(&mut scratch);
                    continue;
                }
                _ = &mut rtp_timer, if armed => {
                    let due = last + timeout;
                    if due > self.clock.now() {
                        rtp_timer.as_mut().reset(self.clock.timer_at(due));
                        continue;
                    }
                    warn!(media = self.id.0, "no RTP for {timeout:?}");
                    let _ = self.events.send(MediaEvent::RtpTimeout(self.id));
                    armed = false;
                    continue;
                }
            };
            let now = self.clock.now();
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
                    heard: None,
                });
                player.queue.push_back(what);
            }
            Command::StopPlaying(side) => {
                if self.players[side.index()].take().is_some() {
                    let _ = self.events.send(MediaEvent::PlayDone(self.id, side));
                }
            }
            Command::Record(path) => {
                match Recorder::start(&path, self.recordings.clone(), self.clock.clone()) {
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
                        warn!(media = self.id.0, file = %path.display(), error = %e, "cannot record");
                        if let Some(done) = &self.recordings {
                            let _ = done.send(RecordingDone {
                                path,
                                samples: 0,
                                bytes: 0,
                                dropped: 0,
                                failed: true,
                            });
                        }
                    }
                }
            }
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
        if delta > 0 {
            rx.seen = if delta < 128 { rx.seen << delta } else { 0 } | 1;
        } else {
            let back = delta.unsigned_abs();
            if back < 128 && rx.seen & (1 << back) != 0 {
                // The same packet again: neither late nor a sign of loss, nor of jitter.
                rx.duplicated += 1;
                return;
            }
            if back < 128 {
                rx.seen |= 1 << back;
            }
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
            leg.duplicated = rx.duplicated;
            leg.lost = (rx.highest + 1 - rx.first).saturating_sub(rx.received - rx.duplicated);
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
                self.clock.now(),
            ) {
                Some(len) => {
                    if let Some(dest) = self.remote[i].rtp {
                        let _ = self.sockets[i * 2].try_send_to(&scratch[..len], dest);
                    }
                    // What the switch says (the recording notice, "one minute left") is
                    // part of the call's recording too.
                    if let (Some(rec), Some(pcm)) = (&mut self.recorder, player.heard.take()) {
                        rec.push_played(side, &pcm);
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
