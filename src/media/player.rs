//! What the switch plays to a leg itself: prompts, the ringback tone and RFC 4733
//! digits, 20 ms at a time on the leg's own output stream.

use super::Play;
use super::codec::{Encoder, OpusSettings};
use super::prompts::{Prompts, Ringback, event_code};
use super::rtp::{OutStream, Owner, write_header};
use super::sdp::LegFormat;

use std::time::{Duration, Instant};
use tracing::warn;

/// What the switch is playing to one leg.
pub(super) struct Player {
    pub(super) queue: std::collections::VecDeque<Play>,
    pub(super) enc: Option<Encoder>,
    /// Position in the current prompt, or of the current digit's event in 20 ms ticks.
    pub(super) pos: usize,
    pub(super) ringback: Ringback,
    /// Timestamp of the current digit's event (its start).
    pub(super) event_ts: Option<u32>,
    /// The audio of the packet just produced (none for digits): for a recording.
    pub(super) heard: Option<[i16; TICK_SAMPLES]>,
}

/// One digit in 20 ms packets: 5 growing to 100 ms, the end sent twice more (three in all,
/// RFC 4733 2.5.1.4), then 20 ms without a packet before the next digit.
pub(super) const DIGIT_TICKS: usize = 5;
pub(super) const DIGIT_GAP_TICKS: usize = 3;
pub(super) const TICK: Duration = Duration::from_millis(20);
pub(super) const TICK_SAMPLES: usize = 160;

/// Produce the next 20 ms packet of what `player` plays into `scratch`; `None` when
/// nothing is left to send this tick (the queue may then have moved on).
pub(super) fn play_tick(
    player: &mut Player,
    format: Option<&LegFormat>,
    prompts: &Prompts,
    opus: OpusSettings,
    out: &mut OutStream,
    scratch: &mut [u8; 2048],
    now: Instant,
) -> Option<usize> {
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
            Play::Prompt(_) | Play::Clip(_) => {
                let samples = match &what {
                    Play::Clip(c) => Some(c.0.clone()),
                    Play::Prompt(name) => prompts.get(name),
                    _ => None,
                };
                let Some(samples) = samples else {
                    warn!(play = ?what, "no such prompt");
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
        player.heard = Some(pcm);
        let len = enc.encode(&pcm, &mut scratch[12..])?;
        write_header(&mut scratch[..], format.audio.pt, marker, seq, ts, out.ssrc);
        out.sent(seq, ts, now);
        return Some(12 + len);
    }
}
