//! Audio that users upload for the switch to play (a card's greetings, an issuer's
//! whisper): read once, at upload, from any common format (WAV, MP3, FLAC, Ogg Vorbis) with
//! symphonia, mixed to mono, resampled to the switch's 8 kHz with rubato and kept as a
//! 16-bit WAV — the format the player plays without converting anything per call.

/// The switch's internal rate (`media::codec::PCM_RATE`).
const PCM_RATE: u32 = 8000;
use std::io::Cursor;
use std::sync::Arc;

/// The longest greeting a card may have (what the visitor hears when the issuer cannot
/// take the call).
pub const GREETING_MAX_MS: i64 = 30_000;
/// The longest whisper (what the issuer hears before the question).
pub const WHISPER_MAX_MS: i64 = 5_000;
/// The largest upload read (a 30 s greeting as a CD-quality WAV is about 5.3 MB).
pub const UPLOAD_MAX_BYTES: usize = 8 << 20;

/// PCM the switch plays as it is: 16-bit mono at 8 kHz.
#[derive(Clone, PartialEq, Eq)]
pub struct Clip(pub Arc<[i16]>);

impl std::fmt::Debug for Clip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clip({} ms)", self.duration_ms())
    }
}

impl Clip {
    pub fn duration_ms(&self) -> i64 {
        self.0.len() as i64 * 1000 / PCM_RATE as i64
    }

    /// The clip as a WAV file (what the store keeps and a browser plays).
    pub fn to_wav(&self) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: PCM_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut out = Cursor::new(Vec::with_capacity(44 + self.0.len() * 2));
        // Writing to memory cannot fail.
        if let Ok(mut w) = hound::WavWriter::new(&mut out, spec) {
            for &s in self.0.iter() {
                let _ = w.write_sample(s);
            }
            let _ = w.finalize();
        }
        out.into_inner()
    }

    /// A clip the store kept (a WAV written by `to_wav`).
    pub fn from_wav(bytes: &[u8]) -> Result<Clip, ClipError> {
        let mut r = hound::WavReader::new(Cursor::new(bytes)).map_err(|_| ClipError::NotAudio)?;
        let spec = r.spec();
        if spec.sample_rate != PCM_RATE || spec.channels != 1 || spec.bits_per_sample != 16 {
            return decode(bytes, i64::MAX);
        }
        let samples: Result<Vec<i16>, _> = r.samples::<i16>().collect();
        Ok(Clip(Arc::from(samples.map_err(|_| ClipError::NotAudio)?)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClipError {
    #[error("this is not audio the switch can read (WAV, MP3, FLAC or Ogg Vorbis)")]
    NotAudio,
    #[error("the recording is silent or empty")]
    Empty,
    #[error("the recording is {secs} s long; at most {max} s")]
    TooLong { secs: i64, max: i64 },
}

/// Read `bytes` (any format symphonia knows) into a clip of at most `max_ms`.
pub fn decode(bytes: &[u8], max_ms: i64) -> Result<Clip, ClipError> {
    use symphonia::core::audio::SampleBuffer;
    use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
    use symphonia::core::errors::Error;
    use symphonia::core::formats::FormatOptions;
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;
    use symphonia::core::probe::Hint;

    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes.to_vec())), Default::default());
    let probed = symphonia::default::get_probe()
        .format(
            &Hint::new(),
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|_| ClipError::NotAudio)?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or(ClipError::NotAudio)?;
    let track_id = track.id;
    let rate = track.codec_params.sample_rate.ok_or(ClipError::NotAudio)?;
    if rate < 4000 {
        return Err(ClipError::NotAudio);
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|_| ClipError::NotAudio)?;
    let too_long = |frames: usize| {
        let ms = frames as i64 * 1000 / rate as i64;
        (ms > max_ms).then(|| ClipError::TooLong {
            secs: (ms + 999) / 1000,
            max: max_ms / 1000,
        })
    };
    let mut mono: Vec<f32> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(Error::ResetRequired) => break,
            Err(_) if !mono.is_empty() => break,
            Err(_) => return Err(ClipError::NotAudio),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            // A damaged packet is skipped, as players do.
            Err(Error::DecodeError(_)) => continue,
            Err(_) => return Err(ClipError::NotAudio),
        };
        let spec = *decoded.spec();
        let channels = spec.channels.count().max(1);
        let mut buf = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        buf.copy_interleaved_ref(decoded);
        mono.extend(
            buf.samples()
                .chunks(channels)
                .map(|f| f.iter().sum::<f32>() / channels as f32),
        );
        if let Some(e) = too_long(mono.len()) {
            return Err(e);
        }
    }
    if mono.iter().all(|s| s.abs() < 1e-4) {
        return Err(ClipError::Empty);
    }
    let pcm = if rate == PCM_RATE {
        mono
    } else {
        resample(&mono, rate as usize).ok_or(ClipError::NotAudio)?
    };
    let samples: Vec<i16> = pcm
        .iter()
        .map(|s| (s * 32767.0).clamp(i16::MIN as f32, i16::MAX as f32) as i16)
        .collect();
    Ok(Clip(Arc::from(samples)))
}

/// `input` at `rate` Hz, band-limited and resampled to the switch's rate.
fn resample(input: &[f32], rate: usize) -> Option<Vec<f32>> {
    use rubato::{FftFixedIn, Resampler};
    let out_rate = PCM_RATE as usize;
    let mut r = FftFixedIn::<f32>::new(rate, out_rate, 1024, 2, 1).ok()?;
    let delay = r.output_delay();
    let wanted = input.len() * out_rate / rate;
    let mut out: Vec<f32> = Vec::with_capacity(wanted + delay + 1024);
    let mut pos = 0;
    while pos + r.input_frames_next() <= input.len() {
        let n = r.input_frames_next();
        let o = r.process(&[&input[pos..pos + n]], None).ok()?;
        out.extend_from_slice(&o[0]);
        pos += n;
    }
    let o = r.process_partial(Some(&[&input[pos..]]), None).ok()?;
    out.extend_from_slice(&o[0]);
    // Flush what the filter still holds, then drop its delay from the front.
    while out.len() < wanted + delay {
        let o = r.process_partial::<&[f32]>(None, None).ok()?;
        if o[0].is_empty() {
            break;
        }
        out.extend_from_slice(&o[0]);
    }
    Some(out.into_iter().skip(delay).take(wanted).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(rate: u32, channels: u16, secs: f64, freq: f64) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut out = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        let n = (rate as f64 * secs) as usize;
        for i in 0..n {
            let s = (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin())
                as i16;
            for _ in 0..channels {
                w.write_sample(s).unwrap();
            }
        }
        w.finalize().unwrap();
        out.into_inner()
    }

    /// Power of `freq` in `pcm` (Goertzel), relative to the signal's total.
    fn share_at(pcm: &[i16], freq: f64) -> f64 {
        let k = 2.0 * (2.0 * std::f64::consts::PI * freq / PCM_RATE as f64).cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in pcm {
            let s0 = x as f64 + k * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - k * s1 * s2;
        let total: f64 = pcm.iter().map(|&x| (x as f64).powi(2)).sum();
        power / (total * pcm.len() as f64 / 2.0)
    }

    #[test]
    fn a_cd_quality_stereo_wav_becomes_8_khz_mono_with_the_same_tone() {
        let clip = decode(&wav(44100, 2, 2.0, 440.0), 30_000).unwrap();
        assert!(
            (clip.duration_ms() - 2000).abs() <= 20,
            "{}",
            clip.duration_ms()
        );
        assert!(share_at(&clip.0, 440.0) > 0.9, "the tone survives");
        let again = Clip::from_wav(&clip.to_wav()).unwrap();
        assert_eq!(again, clip, "stored and read back unchanged");
    }

    #[test]
    fn an_8_khz_wav_is_taken_as_it_is() {
        let clip = decode(&wav(8000, 1, 1.0, 1000.0), 30_000).unwrap();
        assert_eq!(clip.0.len(), 8000);
    }

    #[test]
    fn too_long_silent_or_not_audio_is_refused_with_the_reason() {
        assert_eq!(
            decode(&wav(16000, 1, 3.5, 440.0), 3_000),
            Err(ClipError::TooLong { secs: 4, max: 3 })
        );
        assert_eq!(
            decode(&wav(8000, 1, 1.0, 0.0), 3_000),
            Err(ClipError::Empty)
        );
        assert_eq!(
            decode(b"\x89PNG\r\n\x1a\nnot a sound", 3_000),
            Err(ClipError::NotAudio)
        );
        assert_eq!(decode(b"", 3_000), Err(ClipError::NotAudio));
    }
}
