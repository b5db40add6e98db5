//! Call recording: both directions mixed into one WAV file (16-bit mono, 8 kHz).
//!
//! The media task decodes each packet and hands the PCM to a thread of the recording's own
//! through a bounded channel (`try_send`: a slow disk drops audio from the file, never
//! delays the call). The thread places each frame on a timeline by its arrival time,
//! keeping a leg's frames back to back while they arrive on time, mixes the two legs, and
//! writes audio that is 200 ms old. The WAV header is brought up to date every second, so
//! after a crash the file is playable up to the last second.

use super::Side;
use super::codec::PCM_RATE;
use crate::clock::Clock;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use tracing::warn;

/// How a recording's file closed: its length in samples, its size, and whether all of
/// it was written (a full disk or an I/O error leaves `failed`; the call never notices).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingDone {
    pub path: std::path::PathBuf,
    pub samples: u64,
    pub bytes: u64,
    /// 20 ms frames left out of the file because the disk was too slow.
    pub dropped: u64,
    pub failed: bool,
}

impl RecordingDone {
    pub fn duration_ms(&self) -> i64 {
        (self.samples / PER_MS) as i64
    }
}

/// Samples per millisecond.
const PER_MS: u64 = PCM_RATE as u64 / 1000;
/// Audio this old is final and written.
const HOLD: u64 = 200 * PER_MS;
/// A frame arriving within this of where its leg's last one ended continues it.
const SNAP: u64 = 60 * PER_MS;

struct Frame {
    side: usize,
    at: u64,
    pcm: Vec<i16>,
}

pub struct Recorder {
    tx: SyncSender<Frame>,
    clock: Clock,
    started: Instant,
    /// Frames the writer could not take (a slow disk): missing from the file only.
    dropped: Arc<AtomicU64>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            warn!(
                frames = dropped,
                "the recording misses audio: its disk was too slow"
            );
        }
    }
}

impl Recorder {
    /// Create the file (and its folder) and start the writer thread.
    pub fn start(
        path: &Path,
        done: Option<UnboundedSender<RecordingDone>>,
        clock: Clock,
    ) -> std::io::Result<Recorder> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: PCM_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(path, spec).map_err(std::io::Error::other)?;
        let (tx, rx) = sync_channel(256);
        let started = clock.now();
        let writer_clock = clock.clone();
        let file = path.to_path_buf();
        let dropped = Arc::new(AtomicU64::new(0));
        let dropped_count = dropped.clone();
        std::thread::Builder::new()
            .name("freecall-rec".into())
            .spawn(move || {
                let (samples, failed) = write(
                    rx,
                    writer,
                    &writer_clock,
                    started,
                    &file.display().to_string(),
                );
                let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
                if let Some(done) = done {
                    let _ = done.send(RecordingDone {
                        path: file,
                        samples,
                        bytes,
                        dropped: dropped_count.load(Ordering::Relaxed),
                        failed,
                    });
                }
            })?;
        Ok(Recorder {
            tx,
            clock,
            started,
            dropped,
        })
    }

    /// Audio that just arrived from `side`.
    pub fn push(&mut self, side: Side, pcm: &[i16]) {
        self.frame(side.index(), pcm.to_vec());
    }

    /// Audio the switch just played to `side`. It has a timeline of its own, at half
    /// level: what it plays (the recording notice, "one minute left") usually goes to both
    /// legs at once, and is then heard in the file at its own level.
    pub fn push_played(&mut self, side: Side, pcm: &[i16]) {
        self.frame(2 + side.index(), pcm.iter().map(|s| s / 2).collect());
    }

    fn frame(&mut self, timeline: usize, pcm: Vec<i16>) {
        let at = self
            .clock
            .now()
            .saturating_duration_since(self.started)
            .as_millis() as u64
            * PER_MS;
        let frame = Frame {
            side: timeline,
            at,
            pcm,
        };
        match self.tx.try_send(frame) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn write(
    rx: Receiver<Frame>,
    mut w: hound::WavWriter<std::io::BufWriter<std::fs::File>>,
    clock: &Clock,
    started: Instant,
    name: &str,
) -> (u64, bool) {
    // mix[i] is sample `base + i` of the recording.
    let mut mix: VecDeque<i32> = VecDeque::new();
    let mut base: u64 = 0;
    // Where each timeline's next frame goes: the two legs, and what was played to each.
    let mut next: [Option<u64>; 4] = [None; 4];
    let mut flushed = started;
    let mut failed = false;
    let mut emit = |mix: &mut VecDeque<i32>, base: &mut u64, upto: u64, failed: &mut bool| {
        while *base < upto {
            let s = mix.pop_front().unwrap_or(0);
            if !*failed
                && w.write_sample(s.clamp(i16::MIN as i32, i16::MAX as i32) as i16)
                    .is_err()
            {
                *failed = true;
            }
            *base += 1;
        }
        w.flush().is_ok()
    };
    loop {
        let now_pos = clock.now().saturating_duration_since(started).as_millis() as u64 * PER_MS;
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(f) => {
                let pos = match next[f.side] {
                    Some(n) if n.abs_diff(f.at) <= SNAP => n,
                    _ => f.at,
                };
                next[f.side] = Some(pos + f.pcm.len() as u64);
                for (i, &s) in f.pcm.iter().enumerate() {
                    let p = pos + i as u64;
                    if p < base {
                        continue;
                    }
                    let idx = (p - base) as usize;
                    if idx >= mix.len() {
                        mix.resize(idx + 1, 0);
                    }
                    mix[idx] += s as i32;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if clock.now().saturating_duration_since(flushed) >= Duration::from_secs(1) {
            flushed = clock.now();
            let upto = now_pos.saturating_sub(HOLD);
            if !emit(&mut mix, &mut base, upto, &mut failed) {
                failed = true;
            }
        }
    }
    let end = base + mix.len() as u64;
    if !emit(&mut mix, &mut base, end, &mut failed) {
        failed = true;
    }
    if w.finalize().is_err() {
        failed = true;
    }
    if failed {
        warn!(file = name, "recording could not be written completely");
    }
    (base, failed)
}
