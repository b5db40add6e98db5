//! RTP as the relay reads and writes it: header fields, the switch's own output stream
//! (one SSRC, sequence and timestamp space per leg), and what a leg's stream looked like
//! on arrival (RFC 3550 A.3, A.8).

use rand::Rng;
use std::time::Instant;

/// One RTP packet's header fields, read with `rtp-rs`.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    /// Where the payload starts and ends in the packet.
    pub payload: (usize, usize),
}

/// The header of an RTP packet, None when it is not one.
pub fn read_header(packet: &[u8]) -> Option<Header> {
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
pub fn write_header(buf: &mut [u8], pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32) {
    buf[0] = 0x80;
    buf[1] = (u8::from(marker) << 7) | (pt & 0x7f);
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// Who last sent on a stream of the switch's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Owner {
    Nobody,
    Transcoder,
    Player,
}

/// The switch's own RTP stream towards one leg: one SSRC, one sequence and timestamp
/// space, shared by the transcoder and the player so the far end sees one continuous
/// source (a marker bit where the sender changes).
pub(super) struct OutStream {
    pub(super) ssrc: u32,
    pub(super) seq: u16,
    pub(super) ts: u32,
    pub(super) sent_at: Option<Instant>,
    pub(super) owner: Owner,
}

impl OutStream {
    pub(super) fn new() -> OutStream {
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
    pub(super) fn take_over(&mut self, owner: Owner, clock: u32, now: Instant) -> (u16, u32) {
        let elapsed = self
            .sent_at
            .map(|t| now.saturating_duration_since(t).as_micros() as u64)
            .unwrap_or(0);
        let ticks = (elapsed * clock as u64 / 1_000_000).max(1) as u32;
        self.owner = owner;
        (self.seq.wrapping_add(1), self.ts.wrapping_add(ticks))
    }

    pub(super) fn sent(&mut self, seq: u16, ts: u32, now: Instant) {
        self.seq = seq;
        self.ts = ts;
        self.sent_at = Some(now);
    }
}

/// What one leg's RTP stream looked like on arrival (RFC 3550 A.3, A.8).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Reception {
    pub(super) received: u64,
    pub(super) late: u64,
    /// Packets whose sequence number had already arrived (a network that doubles).
    pub(super) duplicated: u64,
    /// Which of the 128 sequence numbers up to `highest` have arrived (bit n: highest − n),
    /// to tell a duplicate from a late packet.
    pub(super) seen: u128,
    /// Extended sequence numbers: the first packet's, and the highest seen.
    pub(super) first: u64,
    pub(super) highest: u64,
    /// The last transit time (arrival − RTP timestamp) in clock ticks.
    pub(super) transit: i64,
    /// Interarrival jitter × 16, in clock ticks.
    pub(super) jitter_q4: i64,
    pub(super) clock: i64,
}

/// RTCP packet types 192..=223 sit where an RTP payload type with the marker bit would be
/// (RFC 5761 4): that is how RTCP is told apart on a multiplexed port.
pub fn is_rtcp(packet: &[u8]) -> bool {
    packet.len() >= 8 && packet[0] >> 6 == 2 && (192..=223).contains(&packet[1])
}
