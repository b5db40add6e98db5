//! Real audio for tests: tones, their level measured with the Goertzel algorithm, and an
//! RTP end point that speaks a codec (encodes what it sends, decodes what it receives).

use freecall::media::codec::{Codec, Decoder, Encoder, MAX_FRAME, OpusFmtp, OpusSettings};
use freecall::media::sdp::{Format, LegFormat};
use freecall::media::write_header as header;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

/// `n` samples at 8 kHz of a sine of `hz` at `dbfs` (0 dBFS: a full-scale sine), from
/// sample `start` on.
pub fn tone(hz: f64, dbfs: f64, n: usize, start: usize) -> Vec<i16> {
    let amp = 32767.0 * 10f64.powf(dbfs / 20.0);
    (start..start + n)
        .map(|i| (amp * (2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin()) as i16)
        .collect()
}

/// A WAV file of `secs` of a `hz` sine at `dbfs`, at `rate` Hz on `channels` channels: what
/// a phone or a laptop records and an issuer uploads.
pub fn tone_wav(rate: u32, channels: u16, secs: f64, hz: f64, dbfs: f64) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut out, spec).expect("a WAV in memory");
    let amp = 32767.0 * 10f64.powf(dbfs / 20.0);
    for i in 0..(rate as f64 * secs) as usize {
        let s = (amp * (2.0 * std::f64::consts::PI * hz * i as f64 / rate as f64).sin()) as i16;
        for _ in 0..channels {
            w.write_sample(s).expect("a sample in memory");
        }
    }
    w.finalize().expect("a WAV in memory");
    out.into_inner()
}

/// The level of the `hz` component of 8 kHz `pcm` in dBFS (Goertzel).
pub fn level_dbfs(pcm: &[i16], hz: f64) -> f64 {
    let n = pcm.len() as f64;
    let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in pcm {
        let s = x as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0);
    let amplitude = 2.0 * power.sqrt() / n;
    20.0 * (amplitude / 32767.0).max(1e-9).log10()
}

/// The RMS level of `pcm` in dBFS relative to a full-scale sine.
pub fn rms_dbfs(pcm: &[i16]) -> f64 {
    if pcm.is_empty() {
        return -180.0;
    }
    let ms = pcm.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / pcm.len() as f64;
    10.0 * (ms / (32767.0f64.powi(2) / 2.0)).max(1e-18).log10()
}

/// One RTP packet as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

/// A phone's media: one RTP socket, one codec, telephone-events at the codec's clock.
pub struct RtpEnd {
    pub socket: UdpSocket,
    pub addr: SocketAddr,
    pub codec: Codec,
    pub pt: u8,
    pub dtmf: Option<u8>,
    /// The telephone-event clock (the codec's unless `with_dtmf_clock` says otherwise):
    /// the unit of event durations.
    pub dtmf_clock: u32,
    pub ssrc: u32,
    state: std::sync::Mutex<State>,
}

/// What sending and decoding change (behind a lock, so one end sends and receives at once).
struct State {
    seq: u16,
    ts: u32,
    samples: usize,
    enc: Encoder,
    dec: Decoder,
}

impl RtpEnd {
    pub async fn bind(codec: Codec, pt: u8, dtmf: Option<u8>) -> RtpEnd {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind RTP");
        let fec = OpusFmtp {
            useinbandfec: true,
            maxplaybackrate: None,
        };
        RtpEnd {
            addr: socket.local_addr().expect("addr"),
            socket,
            codec,
            pt,
            dtmf,
            dtmf_clock: codec.clock(),
            ssrc: 0x1234_0000 + pt as u32,
            state: std::sync::Mutex::new(State {
                seq: 1000,
                ts: 5000,
                samples: 0,
                enc: Encoder::new(codec, OpusSettings::default(), fec).expect("encoder"),
                dec: Decoder::new(codec).expect("decoder"),
            }),
        }
    }

    /// Telephone-events at `clock` (an Opus phone offering `telephone-event/8000`).
    pub fn with_dtmf_clock(mut self, clock: u32) -> RtpEnd {
        self.dtmf_clock = clock;
        self
    }

    /// The format the switch is told this leg negotiated.
    pub fn format(&self) -> LegFormat {
        LegFormat {
            audio: Format {
                pt: self.pt,
                name: self.codec.name().into(),
                clock: self.codec.clock(),
                params: (self.codec == Codec::Opus).then(|| "2".into()),
                fmtp: (self.codec == Codec::Opus).then(|| "useinbandfec=1".into()),
            },
            dtmf: self.dtmf,
            dtmf_clock: self.dtmf_clock,
        }
    }

    fn ticks(&self, samples: usize) -> u32 {
        (samples as u64 * self.codec.clock() as u64 / 8000) as u32
    }

    /// Send `frames` 20 ms frames of a tone, paced in real time; frames for which `lose`
    /// says so are encoded but not sent (packet loss).
    pub async fn send_tone(
        &self,
        dest: SocketAddr,
        hz: f64,
        dbfs: f64,
        frames: usize,
        lose: impl Fn(usize) -> bool,
    ) -> usize {
        let mut interval = tokio::time::interval(Duration::from_millis(20));
        let mut sent = 0;
        let mut out = [0u8; 1500];
        for i in 0..frames {
            interval.tick().await;
            let n = {
                let mut st = self.state.lock().unwrap();
                let pcm = tone(hz, dbfs, 160, st.samples);
                st.samples += 160;
                let n = st.enc.encode(&pcm, &mut out[12..]).expect("encode");
                header(&mut out, self.pt, i == 0, st.seq, st.ts, self.ssrc);
                st.seq = st.seq.wrapping_add(1);
                st.ts = st.ts.wrapping_add(self.ticks(160));
                n
            };
            if !lose(i) {
                self.socket
                    .send_to(&out[..12 + n], dest)
                    .await
                    .expect("send");
                sent += 1;
            }
        }
        sent
    }

    /// Press `digit` for 100 ms as RFC 4733 events (5 packets, the end sent 3 times).
    pub async fn send_digit(&self, dest: SocketAddr, digit: u8) {
        let pt = self.dtmf.expect("telephone-event negotiated");
        let start = self.state.lock().unwrap().ts;
        let mut out = [0u8; 16];
        for i in 0..7u32 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let end = i >= 4;
            let duration = 160 * self.dtmf_clock / 8000 * (i.min(4) + 1);
            {
                let mut st = self.state.lock().unwrap();
                header(&mut out, pt, i == 0, st.seq, start, self.ssrc);
                st.seq = st.seq.wrapping_add(1);
            }
            out[12] = digit;
            out[13] = (u8::from(end) << 7) | 10;
            out[14..16].copy_from_slice(&(duration as u16).to_be_bytes());
            self.socket.send_to(&out, dest).await.expect("send");
        }
        let mut st = self.state.lock().unwrap();
        st.ts = st.ts.wrapping_add(self.ticks(160 * 8));
    }

    /// Everything that arrives until nothing has for `quiet`, at most `max`.
    pub async fn collect(&self, quiet: Duration, max: Duration) -> Vec<Received> {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        let until = tokio::time::Instant::from_std(freecall::clock::Clock::system().now() + max);
        loop {
            let wait = tokio::time::timeout(quiet, self.socket.recv_from(&mut buf));
            match tokio::time::timeout_at(until, wait).await {
                Ok(Ok(Ok((n, _)))) => {
                    if let Ok(r) = rtp_rs::RtpReader::new(&buf[..n]) {
                        got.push(Received {
                            pt: r.payload_type(),
                            marker: r.mark(),
                            seq: u16::from(r.sequence_number()),
                            ts: r.timestamp(),
                            ssrc: r.ssrc(),
                            payload: r.payload().to_vec(),
                        });
                    }
                }
                _ => break,
            }
        }
        got
    }

    /// The audio of the packets of our payload type, decoded in arrival order.
    pub fn decode(&self, packets: &[Received]) -> Vec<i16> {
        let mut pcm = Vec::new();
        let mut frame = [0i16; MAX_FRAME];
        let mut st = self.state.lock().unwrap();
        for p in packets.iter().filter(|p| p.pt == self.pt) {
            if let Some(n) = st.dec.decode(&p.payload, &mut frame) {
                pcm.extend_from_slice(&frame[..n]);
            }
        }
        pcm
    }
}
