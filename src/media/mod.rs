//! Media anchored at the switch: both legs' SDP point at our RTP ports, and a relay task per
//! call carries RTP and RTCP between them.
//!
//! The call layer uses media only through the `MediaControl` trait (allocate, point at a
//! remote, arm the RTP timeout, release); the daemon plugs in `RelayMedia` (real sockets,
//! one tokio task per call) and sans-IO tests plug in `NullMedia`. Media knows nothing of
//! SIP or money.

pub mod codec;
mod config;
mod player;
mod ports;
pub mod prompts;
mod recorder;
mod relay;
pub mod rtp;
pub mod sdp;
mod transcode;

pub use crate::clip::Clip;
pub use config::{MediaConfig, OpusConfig};
pub use ports::PortPool;
pub use prompts::Prompts;
pub use recorder::RecordingDone;
pub use relay::{MediaOptions, RelayMedia};
pub use rtp::write_header;
pub use sdp::{Format, LegFormat};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The first leg: the caller's on a call that came in (we are its UAS), the issuer's
    /// or member's on a call the switch placed (we dialled it).
    A,
    /// The second leg: towards a trunk (we are its UAC), the visitor's or the dialled
    /// number's on a placed call.
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
    pub fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MediaId(pub u64);

/// Our RTP addresses for one call: the port the A-leg's SDP names and the B-leg's.
/// RTCP is on the next port up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub a: SocketAddr,
    pub b: SocketAddr,
}

impl Endpoints {
    pub fn local(&self, side: Side) -> SocketAddr {
        match side {
            Side::A => self.a,
            Side::B => self.b,
        }
    }
}

/// Where one leg's far end says it receives media (from its SDP). `None` while on hold
/// (connection address 0.0.0.0) or before any SDP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Remote {
    pub rtp: Option<SocketAddr>,
    pub rtcp: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("no free RTP port in the configured range")]
    NoPorts,
}

/// What the media side tells the call layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEvent {
    /// No RTP in either direction for the configured time on an answered call.
    RtpTimeout(MediaId),
    /// Everything queued with `play` for that leg has been played (or could not be).
    PlayDone(MediaId, Side),
    /// The leg sent an RFC 4733 digit (reported once, when the key is released).
    Digit(MediaId, Side, char),
}

/// What the switch can play to a leg itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Play {
    /// A prompt from the prompts folder, by file name without `.wav`.
    Prompt(String),
    /// The ringback tone, until stopped.
    Ringback,
    /// DTMF digits as RFC 4733 telephone-events (0-9, *, #, A-D).
    Digits(String),
    /// Audio a user uploaded (a card's greeting, an issuer's whisper), as it was stored.
    Clip(Clip),
}

/// What one leg sent the switch, and what the switch sent it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LegStats {
    pub codec: String,
    /// RTP packets received from the leg.
    pub received: u64,
    /// RTP packets the switch sent to the leg (relayed or transcoded).
    pub sent: u64,
    /// Packets the leg's sequence numbers say never arrived (RFC 3550 A.3).
    pub lost: u64,
    /// Packets that arrived after a later one (reordered).
    pub late: u64,
    /// Packets that arrived twice (counted in `received`, not against `lost`).
    pub duplicated: u64,
    /// Datagrams on the RTP port that were not RTP.
    pub invalid: u64,
    /// Interarrival jitter (RFC 3550 A.8) in microseconds.
    pub jitter_us: u64,
}

/// A call's media as its record shows it: per leg (A, B), whether it was transcoded, and
/// the recording's file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MediaStats {
    pub legs: [LegStats; 2],
    pub transcoded: bool,
    pub recording: Option<String>,
}

pub trait MediaControl: Send {
    fn allocate(&mut self) -> Result<(MediaId, Endpoints), MediaError>;
    fn set_remote(&mut self, id: MediaId, side: Side, remote: Remote);
    /// The negotiated format of one leg; with both known, media decides per direction
    /// whether to relay untouched or transcode.
    fn set_format(&mut self, id: MediaId, side: Side, format: LegFormat);
    /// The call is answered: start watching for the RTP timeout.
    fn arm(&mut self, id: MediaId);
    /// Queue something for the switch to play to `side` (it replaces the other leg's audio
    /// towards that side while it plays); `MediaEvent::PlayDone` follows.
    fn play(&mut self, id: MediaId, side: Side, what: Play);
    fn stop_playing(&mut self, id: MediaId, side: Side);
    /// Record both legs, mixed, into a WAV file at `path` from now on.
    fn record(&mut self, id: MediaId, path: PathBuf);
    fn stats(&self, id: MediaId) -> Option<MediaStats>;
    fn release(&mut self, id: MediaId);
}

/// Media for sans-IO tests: hands out addresses and remembers nothing.
pub struct NullMedia {
    next: u64,
}

impl NullMedia {
    pub fn new() -> NullMedia {
        NullMedia { next: 0 }
    }
}

impl Default for NullMedia {
    fn default() -> Self {
        NullMedia::new()
    }
}

impl MediaControl for NullMedia {
    fn allocate(&mut self) -> Result<(MediaId, Endpoints), MediaError> {
        self.next += 1;
        let port = 40000 + (self.next as u16 % 1000) * 4;
        Ok((
            MediaId(self.next),
            Endpoints {
                a: SocketAddr::from(([127, 0, 0, 1], port)),
                b: SocketAddr::from(([127, 0, 0, 1], port + 2)),
            },
        ))
    }
    fn set_remote(&mut self, _: MediaId, _: Side, _: Remote) {}
    fn set_format(&mut self, _: MediaId, _: Side, _: LegFormat) {}
    fn arm(&mut self, _: MediaId) {}
    fn play(&mut self, _: MediaId, _: Side, _: Play) {}
    fn stop_playing(&mut self, _: MediaId, _: Side) {}
    fn record(&mut self, _: MediaId, _: PathBuf) {}
    fn stats(&self, _: MediaId) -> Option<MediaStats> {
        None
    }
    fn release(&mut self, _: MediaId) {}
}
