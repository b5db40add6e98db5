//! Transcoding one direction of a call: decode the input leg's codec, encode the
//! output's, keep the output's sequence and timestamps continuous (concealing short
//! losses), and carry telephone-events across clocks. Pure of sockets but for the one it
//! is handed to send on.

use super::codec::{Decoder, Encoder, MAX_FRAME, opus_frame_ok};
use super::rtp::{Header, OutStream, Owner, write_header};
use std::net::SocketAddr;
use std::time::Instant;
use tokio::net::UdpSocket;

/// Input sequence/timestamp → output sequence/timestamp for one transcoded direction.
#[derive(Clone, Copy, Debug)]
pub(super) struct SeqMap {
    pub(super) in_ssrc: u32,
    pub(super) in_seq: u16,
    pub(super) in_ts: u32,
    pub(super) out_seq: u16,
    pub(super) out_ts: u32,
}

/// One direction of a transcoded call: decode the input leg's codec, encode the output's.
pub(super) struct Transcoder {
    pub(super) dec: Decoder,
    pub(super) enc: Encoder,
    pub(super) in_pt: u8,
    pub(super) in_dtmf: Option<u8>,
    pub(super) out_pt: u8,
    pub(super) out_dtmf: Option<u8>,
    pub(super) in_clock: u32,
    pub(super) out_clock: u32,
    /// Telephone-event clocks (the units of event durations) in and out.
    pub(super) in_dtmf_clock: u32,
    pub(super) out_dtmf_clock: u32,
    pub(super) map: Option<SeqMap>,
    /// Samples (8 kHz) in the last decoded frame: the size of a concealed one.
    pub(super) frame: usize,
    pub(super) pcm: Box<[i16; MAX_FRAME]>,
}

/// Lost packets up to this many in a row are concealed (Opus PLC, FEC for the last one).
pub(super) const MAX_CONCEAL: u16 = 4;

impl Transcoder {
    pub(super) fn scale(&self, in_ticks: i64) -> i64 {
        in_ticks * self.out_clock as i64 / self.in_clock as i64
    }

    /// Note where input packet `h` went in the output. A telephone-event on a continuing
    /// stream (`event_only`) moves only the sequence number: timestamps stay anchored to
    /// the audio, as the event keeps its start time.
    pub(super) fn remember(&mut self, h: &Header, seq: u16, ts: u32, event_only: bool) {
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
    pub(super) fn send_pcm(
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

pub(super) enum Dir {
    Untouched,
    Rewrite {
        audio: (u8, u8),
        dtmf: Option<(u8, u8)>,
    },
    Transcode(Box<Transcoder>),
}

/// Transcode one packet (and conceal a few lost before it); the packets sent.
#[allow(clippy::too_many_arguments)]
pub(super) fn transcode(
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
pub(super) fn encode_frame(enc: &mut Encoder, pcm: &[i16], out: &mut [u8]) -> Option<usize> {
    if matches!(enc, Encoder::Opus(_)) && !opus_frame_ok(pcm.len()) {
        return None;
    }
    enc.encode(pcm, out)
}
