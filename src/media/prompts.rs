//! What the switch plays itself: recorded prompts from the prompts folder, the ringback
//! tone and RFC 4733 digits.
//!
//! Prompts are WAV files (16-bit mono PCM at 8 kHz, the switch's internal rate) named after
//! what they say: `mileage-exhausted.wav` is played as prompt `mileage-exhausted`. They are
//! read once at start (and at reload) and kept in memory; playing one allocates nothing.

use super::codec::PCM_RATE;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Every prompt the switch may play, by name.
#[derive(Clone, Debug, Default)]
pub struct Prompts {
    map: HashMap<String, Arc<[i16]>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("prompts folder {0}: {1}")]
    Folder(String, std::io::Error),
    #[error("prompt {0}: {1}")]
    File(String, String),
}

impl Prompts {
    /// Load every `*.wav` in `dir`. A file in another format is an error naming it (the
    /// operator converts it once with `sox in.wav -r 8000 -c 1 -b 16 out.wav`).
    pub fn load(dir: &Path) -> Result<Prompts, PromptError> {
        let mut map = HashMap::new();
        let entries = std::fs::read_dir(dir)
            .map_err(|e| PromptError::Folder(dir.display().to_string(), e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("wav") {
                continue;
            }
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            let err = |e: String| PromptError::File(path.display().to_string(), e);
            let mut reader = hound::WavReader::open(&path).map_err(|e| err(e.to_string()))?;
            let spec = reader.spec();
            if spec.sample_rate != PCM_RATE
                || spec.channels != 1
                || spec.bits_per_sample != 16
                || spec.sample_format != hound::SampleFormat::Int
            {
                return Err(err(format!(
                    "must be 16-bit mono PCM at {PCM_RATE} Hz, is {} bit {} channel(s) at {} Hz",
                    spec.bits_per_sample, spec.channels, spec.sample_rate
                )));
            }
            let samples: Result<Vec<i16>, _> = reader.samples::<i16>().collect();
            let samples = samples.map_err(|e| err(e.to_string()))?;
            map.insert(name, Arc::from(samples));
        }
        Ok(Prompts { map })
    }

    pub fn get(&self, name: &str) -> Option<Arc<[i16]>> {
        self.map.get(name).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }
}

/// The ringback tone heard while the far end rings: 440 + 480 Hz, 1 s on, 2 s off (the
/// North American and Korean cadence), each tone at −19 dBFS.
#[derive(Clone, Debug, Default)]
pub struct Ringback {
    n: u64,
}

impl Ringback {
    pub fn fill(&mut self, out: &mut [i16]) {
        const ON: u64 = PCM_RATE as u64;
        const PERIOD: u64 = 3 * PCM_RATE as u64;
        let amp = 32767.0 * 10f64.powf(-19.0 / 20.0);
        for o in out.iter_mut() {
            let pos = self.n % PERIOD;
            *o = if pos < ON {
                let t = self.n as f64 / PCM_RATE as f64;
                let tau = 2.0 * std::f64::consts::PI;
                (amp * ((tau * 440.0 * t).sin() + (tau * 480.0 * t).sin())) as i16
            } else {
                0
            };
            self.n += 1;
        }
    }
}

/// The RFC 4733 event code of a DTMF digit.
pub fn event_code(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(d as u8 - b'A' + 12),
        _ => None,
    }
}

/// The digit of an RFC 4733 event code.
pub fn event_digit(code: u8) -> Option<char> {
    match code {
        0..=9 => Some((b'0' + code) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + code - 12) as char),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_map_both_ways() {
        for d in "0123456789*#ABCD".chars() {
            assert_eq!(event_digit(event_code(d).unwrap()), Some(d));
        }
        assert_eq!(event_code('x'), None);
    }

    #[test]
    fn ringback_is_on_for_one_second_in_three() {
        let mut r = Ringback::default();
        let mut buf = vec![0i16; 3 * 8000];
        r.fill(&mut buf);
        let loud = |s: &[i16]| s.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / s.len() as f64;
        assert!(loud(&buf[..8000]) > 1e6);
        assert_eq!(loud(&buf[8000..]), 0.0);
    }

    #[test]
    fn the_shipped_prompts_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let p = Prompts::load(&dir).unwrap();
        for name in [
            "mileage-exhausted",
            "guild-exhausted",
            "quota-used-up",
            "destination-not-allowed",
            "billing-unavailable",
            "one-minute-left",
            "please-hold",
        ] {
            let s = p.get(name).unwrap_or_else(|| panic!("{name} missing"));
            assert!(s.len() > 8000 / 2, "{name} is {} samples", s.len());
        }
    }
}
