//! The audio codecs the switch speaks: G.711 µ-law (PCMU), G.711 A-law (PCMA) and Opus.
//!
//! Inside the switch audio is 16-bit PCM at 8 kHz: G.711 is 8 kHz by definition and libopus
//! encodes from and decodes to 8 kHz itself, so G.711 ⇄ Opus needs no resampler. G.711
//! comes from `audio-codec-algorithms`, Opus from the system libopus through `audiopus`.

use audiopus::coder::{Decoder as OpusDecoder, Encoder as OpusEncoder};
use audiopus::{Application, Bandwidth, Bitrate, Channels, SampleRate};

/// The rate of PCM inside the switch.
pub const PCM_RATE: u32 = 8000;
/// The most PCM one packet may carry: 120 ms, the longest Opus packet.
pub const MAX_FRAME: usize = 960;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    Pcmu,
    Pcma,
    Opus,
}

/// As the configuration writes it: `PCMU`, `PCMA` or `opus` (any case).
impl<'de> serde::Deserialize<'de> for Codec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Codec::from_name(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("'{s}' is not PCMU, PCMA or opus")))
    }
}

impl Codec {
    /// From an `a=rtpmap` encoding name and clock rate (names are case-insensitive).
    pub fn from_rtpmap(name: &str, clock: u32) -> Option<Codec> {
        match (name.to_ascii_uppercase().as_str(), clock) {
            ("PCMU", 8000) => Some(Codec::Pcmu),
            ("PCMA", 8000) => Some(Codec::Pcma),
            ("OPUS", 48000) => Some(Codec::Opus),
            _ => None,
        }
    }

    /// From a name in the configuration: `PCMU`, `PCMA` or `opus`.
    pub fn from_name(name: &str) -> Option<Codec> {
        match name.to_ascii_uppercase().as_str() {
            "PCMU" => Some(Codec::Pcmu),
            "PCMA" => Some(Codec::Pcma),
            "OPUS" => Some(Codec::Opus),
            _ => None,
        }
    }

    /// The encoding name as written in `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::Opus => "opus",
        }
    }

    /// The RTP clock rate (Opus always uses 48 kHz, RFC 7587).
    pub fn clock(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::Opus => 48000,
        }
    }

    /// The static payload type, if the codec has one (RFC 3551).
    pub fn static_pt(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::Opus => None,
        }
    }

    /// The `a=rtpmap` value after the payload type.
    pub fn rtpmap(self) -> String {
        match self {
            Codec::Opus => "opus/48000/2".into(),
            c => format!("{}/{}", c.name(), c.clock()),
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the switch encodes Opus (`[media.opus]` in the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpusSettings {
    /// Target bitrate in bits per second.
    pub bitrate: i32,
    /// libopus complexity 0–10: CPU per frame against quality.
    pub complexity: u8,
    /// Expected loss in percent, which sizes in-band FEC when the far end asked for it.
    pub loss_percent: u8,
}

impl Default for OpusSettings {
    fn default() -> Self {
        OpusSettings {
            bitrate: 16_000,
            complexity: 5,
            loss_percent: 5,
        }
    }
}

/// What the far end of an Opus leg asked for in its `a=fmtp` (RFC 7587 6.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpusFmtp {
    /// `useinbandfec=1`: the far end can use in-band FEC, so we send it.
    pub useinbandfec: bool,
    /// `maxplaybackrate`: the most the far end can play; we never exceed it (the switch's
    /// audio is narrowband, 8 kHz, which every allowed value covers).
    pub maxplaybackrate: Option<u32>,
}

impl OpusFmtp {
    pub fn parse(fmtp: &str) -> OpusFmtp {
        let mut out = OpusFmtp::default();
        for part in fmtp.split(';') {
            let Some((k, v)) = part.trim().split_once('=') else {
                continue;
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "useinbandfec" => out.useinbandfec = v.trim() == "1",
                "maxplaybackrate" => out.maxplaybackrate = v.trim().parse().ok(),
                _ => {}
            }
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
#[error("codec: {0}")]
pub struct CodecError(String);

impl From<audiopus::Error> for CodecError {
    fn from(e: audiopus::Error) -> Self {
        CodecError(e.to_string())
    }
}

pub enum Decoder {
    Pcmu,
    Pcma,
    Opus(Box<OpusDecoder>),
}

impl Decoder {
    pub fn new(codec: Codec) -> Result<Decoder, CodecError> {
        Ok(match codec {
            Codec::Pcmu => Decoder::Pcmu,
            Codec::Pcma => Decoder::Pcma,
            Codec::Opus => Decoder::Opus(Box::new(OpusDecoder::new(
                SampleRate::Hz8000,
                Channels::Mono,
            )?)),
        })
    }

    /// Decode one payload into 8 kHz PCM; the number of samples, `None` if it is not
    /// decodable (the packet is then treated as lost).
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Option<usize> {
        match self {
            Decoder::Pcmu => {
                let n = payload.len().min(out.len());
                for (o, &b) in out.iter_mut().zip(&payload[..n]) {
                    *o = audio_codec_algorithms::decode_ulaw(b);
                }
                Some(n)
            }
            Decoder::Pcma => {
                let n = payload.len().min(out.len());
                for (o, &b) in out.iter_mut().zip(&payload[..n]) {
                    *o = audio_codec_algorithms::decode_alaw(b);
                }
                Some(n)
            }
            Decoder::Opus(d) => {
                if payload.is_empty() {
                    return None;
                }
                d.decode(Some(payload), &mut out[..MAX_FRAME], false).ok()
            }
        }
    }

    /// Audio for `samples` lost samples: Opus conceals (PLC), or recovers them from the
    /// in-band FEC of the packet that follows when `next` carries it. G.711 has neither:
    /// `None`, the gap stays a gap.
    pub fn conceal(
        &mut self,
        samples: usize,
        next: Option<&[u8]>,
        out: &mut [i16],
    ) -> Option<usize> {
        match self {
            Decoder::Opus(d) => {
                let n = samples.min(out.len());
                match next {
                    Some(p) if !p.is_empty() => d.decode(Some(p), &mut out[..n], true).ok(),
                    _ => d.decode(None::<&[u8]>, &mut out[..n], false).ok(),
                }
            }
            _ => None,
        }
    }
}

pub enum Encoder {
    Pcmu,
    Pcma,
    Opus(Box<OpusEncoder>),
}

impl Encoder {
    pub fn new(codec: Codec, settings: OpusSettings, far: OpusFmtp) -> Result<Encoder, CodecError> {
        Ok(match codec {
            Codec::Pcmu => Encoder::Pcmu,
            Codec::Pcma => Encoder::Pcma,
            Codec::Opus => {
                let mut e =
                    OpusEncoder::new(SampleRate::Hz8000, Channels::Mono, Application::Voip)?;
                e.set_bitrate(Bitrate::BitsPerSecond(settings.bitrate))?;
                e.set_complexity(settings.complexity.min(10))?;
                // 8 kHz in is narrowband out, within any maxplaybackrate (≥ 8000).
                e.set_max_bandwidth(Bandwidth::Narrowband)?;
                e.set_inband_fec(far.useinbandfec)?;
                if far.useinbandfec {
                    e.set_packet_loss_perc(settings.loss_percent.min(100))?;
                }
                Encoder::Opus(Box::new(e))
            }
        })
    }

    /// Encode 8 kHz PCM (a frame length the codec accepts: any for G.711; 2.5–60 ms for
    /// Opus) into `out`; the payload length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Option<usize> {
        match self {
            Encoder::Pcmu => {
                let n = pcm.len().min(out.len());
                for (o, &s) in out.iter_mut().zip(&pcm[..n]) {
                    *o = audio_codec_algorithms::encode_ulaw(s);
                }
                Some(n)
            }
            Encoder::Pcma => {
                let n = pcm.len().min(out.len());
                for (o, &s) in out.iter_mut().zip(&pcm[..n]) {
                    *o = audio_codec_algorithms::encode_alaw(s);
                }
                Some(n)
            }
            Encoder::Opus(e) => e.encode(pcm, out).ok(),
        }
    }
}

/// Opus accepts frames of 2.5, 5, 10, 20, 40 or 60 ms: at 8 kHz, these sample counts.
pub fn opus_frame_ok(samples: usize) -> bool {
    matches!(samples, 20 | 40 | 80 | 160 | 320 | 480)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                ((i as f64 * 2.0 * std::f64::consts::PI * 1000.0 / 8000.0).sin() * 8000.0) as i16
            })
            .collect()
    }

    #[test]
    fn g711_round_trips_within_its_quantisation() {
        let pcm = tone(160);
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut enc =
                Encoder::new(codec, OpusSettings::default(), OpusFmtp::default()).unwrap();
            let mut dec = Decoder::new(codec).unwrap();
            let mut bytes = [0u8; 160];
            assert_eq!(enc.encode(&pcm, &mut bytes), Some(160));
            let mut back = [0i16; MAX_FRAME];
            assert_eq!(dec.decode(&bytes, &mut back), Some(160));
            for (a, b) in pcm.iter().zip(&back) {
                assert!((a - b).abs() < 300, "{codec}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn opus_encodes_20ms_at_8khz_and_conceals_a_loss() {
        let mut enc = Encoder::new(
            Codec::Opus,
            OpusSettings::default(),
            OpusFmtp {
                useinbandfec: true,
                maxplaybackrate: Some(16000),
            },
        )
        .unwrap();
        let mut dec = Decoder::new(Codec::Opus).unwrap();
        let mut bytes = [0u8; 400];
        let mut out = [0i16; MAX_FRAME];
        let pcm = tone(160);
        let n = enc.encode(&pcm, &mut bytes).unwrap();
        assert!(n > 0 && n < 100, "{n} bytes at 16 kb/s");
        assert_eq!(dec.decode(&bytes[..n], &mut out), Some(160));
        assert_eq!(dec.conceal(160, None, &mut out), Some(160));
        assert_eq!(dec.conceal(160, Some(&bytes[..n]), &mut out), Some(160));
        assert!(dec.decode(&[], &mut out).is_none());
    }

    #[test]
    fn rtpmap_names() {
        assert_eq!(Codec::from_rtpmap("opus", 48000), Some(Codec::Opus));
        assert_eq!(Codec::from_rtpmap("pcma", 8000), Some(Codec::Pcma));
        assert_eq!(Codec::from_rtpmap("G722", 8000), None);
        assert_eq!(
            OpusFmtp::parse("minptime=10; useinbandfec=1;maxplaybackrate=16000"),
            OpusFmtp {
                useinbandfec: true,
                maxplaybackrate: Some(16000)
            }
        );
    }
}
