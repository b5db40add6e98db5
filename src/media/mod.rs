//! Media anchored at the switch: both legs' SDP point at our RTP ports, and a relay task per
//! call carries RTP and RTCP between them.
//!
//! The call layer uses media only through the `MediaControl` trait (allocate, point at a
//! remote, arm the RTP timeout, release); the daemon plugs in `RelayMedia` (real sockets,
//! one tokio task per call) and sans-IO tests plug in `NullMedia`. Media knows nothing of
//! SIP or money.

mod ports;
mod relay;
pub mod sdp;

pub use ports::PortPool;
pub use relay::{Path, RelayMedia};
use std::net::SocketAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The caller's leg (we are its UAS).
    A,
    /// The callee's leg towards a trunk (we are its UAC).
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
}

pub trait MediaControl: Send {
    fn allocate(&mut self) -> Result<(MediaId, Endpoints), MediaError>;
    fn set_remote(&mut self, id: MediaId, side: Side, remote: Remote);
    /// The call is answered: start watching for the RTP timeout.
    fn arm(&mut self, id: MediaId);
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
    fn arm(&mut self, _: MediaId) {}
    fn release(&mut self, _: MediaId) {}
}
