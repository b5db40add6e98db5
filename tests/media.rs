//! The media relay with real sockets and real audio: transcoding G.711 ⇄ Opus measured
//! with Goertzel, loss concealment, RFC 4733 digits relayed, sent and detected, prompts,
//! and recordings.

use freecall::media::codec::Codec;
use freecall::media::{
    MediaControl, MediaEvent, MediaId, MediaOptions, Play, Prompts, RelayMedia, Remote, Side,
};
use freecall_testkit::audio::{Received, RtpEnd, level_dbfs, rms_dbfs};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;

struct Setup {
    media: RelayMedia,
    events: mpsc::UnboundedReceiver<MediaEvent>,
    id: MediaId,
    a: RtpEnd,
    b: RtpEnd,
    /// Where each end sends: the switch's port for its leg.
    to_a_leg: std::net::SocketAddr,
    to_b_leg: std::net::SocketAddr,
}

/// A call's media between end A (its leg's format) and end B, formats told to the relay.
async fn setup(a: RtpEnd, b: RtpEnd) -> Setup {
    let (tx, events) = mpsc::unbounded_channel();
    let prompts = Prompts::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts"))
        .expect("shipped prompts");
    let mut media = RelayMedia::new(
        "127.0.0.1".parse().unwrap(),
        30000,
        39998,
        Duration::from_secs(30),
        tx,
    )
    .with_options(MediaOptions {
        prompts: Arc::new(RwLock::new(Arc::new(prompts))),
        ..Default::default()
    });
    let (id, ends) = media.allocate().expect("ports");
    let remote = |e: &RtpEnd| Remote {
        rtp: Some(e.addr),
        rtcp: None,
    };
    media.set_remote(id, Side::A, remote(&a));
    media.set_remote(id, Side::B, remote(&b));
    media.set_format(id, Side::A, a.format());
    media.set_format(id, Side::B, b.format());
    Setup {
        media,
        events,
        id,
        a,
        b,
        to_a_leg: ends.a,
        to_b_leg: ends.b,
    }
}

/// The steady part of decoded audio (the codec's start-up skipped): 0.5 s.
fn steady(pcm: &[i16]) -> &[i16] {
    assert!(pcm.len() >= 4800, "only {} samples arrived", pcm.len());
    &pcm[800..4800]
}

/// The tone is there at its level (±`tolerance` dB), and nearly all the energy is the
/// tone: no distortion, no other signal.
fn assert_tone(pcm: &[i16], hz: f64, dbfs: f64, tolerance: f64, what: &str) {
    let s = steady(pcm);
    let level = level_dbfs(s, hz);
    let total = rms_dbfs(s);
    assert!(
        (level - dbfs).abs() < tolerance,
        "{what}: {hz} Hz at {level:.1} dBFS, sent at {dbfs}"
    );
    assert!(
        total - level < tolerance / 2.0,
        "{what}: total {total:.1} dBFS against the tone's {level:.1}"
    );
}

fn assert_continuous(got: &[Received], pt: u8, ticks: u32, what: &str) {
    let audio: Vec<_> = got.iter().filter(|p| p.pt == pt).collect();
    assert!(!audio.is_empty(), "{what}: no packets of type {pt}");
    assert!(
        audio[0].marker,
        "{what}: the first packet carries the marker"
    );
    for w in audio.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "{what}: sequence");
        assert_eq!(w[1].ts, w[0].ts.wrapping_add(ticks), "{what}: timestamp");
        assert_eq!(w[1].ssrc, w[0].ssrc, "{what}: one SSRC");
    }
}

#[tokio::test]
async fn a_pcmu_tone_arrives_on_the_opus_leg_and_back_at_its_frequency_and_level() {
    let a = RtpEnd::bind(Codec::Pcmu, 0, Some(101)).await;
    let b = RtpEnd::bind(Codec::Opus, 111, Some(102)).await;
    let mut s = setup(a, b).await;
    let (to_a, to_b) = (s.to_a_leg, s.to_b_leg);
    // Both directions at once: 1 kHz from the G.711 phone, 1 kHz from the Opus phone.
    let (sent_a, sent_b, got_b, got_a) = tokio::join!(
        s.a.send_tone(to_a, 1000.0, -12.0, 50, |_| false),
        s.b.send_tone(to_b, 1000.0, -12.0, 50, |_| false),
        s.b.collect(Duration::from_millis(500), Duration::from_secs(5)),
        s.a.collect(Duration::from_millis(500), Duration::from_secs(5)),
    );
    assert_eq!((sent_a, sent_b), (50, 50));
    assert_eq!(got_b.len(), 50, "every PCMU packet became one Opus packet");
    assert_eq!(got_a.len(), 50, "every Opus packet became one PCMU packet");
    assert_continuous(&got_b, 111, 960, "to the Opus leg");
    assert_continuous(&got_a, 0, 160, "to the PCMU leg");
    assert!(
        got_b.iter().all(|p| p.payload.len() < 100),
        "Opus, not G.711, on the B leg"
    );
    let pcm_b = s.b.decode(&got_b);
    assert_tone(&pcm_b, 1000.0, -12.0, 2.0, "PCMU → Opus");
    let pcm_a = s.a.decode(&got_a);
    assert_tone(&pcm_a, 1000.0, -12.0, 2.0, "Opus → PCMU");
    let stats = s.media.stats(s.id).unwrap();
    // Paced every 20 ms on loopback: jitter well under a frame.
    assert!(stats.legs[0].jitter_us < 20_000, "{:?}", stats.legs[0]);
    assert!(stats.transcoded);
    assert_eq!(stats.legs[0].codec, "PCMU");
    assert_eq!(stats.legs[1].codec, "opus");
    assert_eq!((stats.legs[0].received, stats.legs[1].received), (50, 50));
    assert_eq!((stats.legs[0].lost, stats.legs[1].lost), (0, 0));
    assert_eq!((stats.legs[0].sent, stats.legs[1].sent), (50, 50));
    s.media.release(s.id);
}

#[tokio::test]
async fn a_doubled_packet_is_counted_as_doubled_not_as_making_up_for_a_lost_one() {
    let a = RtpEnd::bind(Codec::Pcmu, 0, None).await;
    let b = RtpEnd::bind(Codec::Pcmu, 0, None).await;
    let mut s = setup(a, b).await;
    // Sequence numbers 100..=119 as a bad network delivers them: 105 lost, 107 twice,
    // 111 before 110.
    let mut order: Vec<u16> = (100..=119).filter(|q| *q != 105).collect();
    order.insert(order.iter().position(|q| *q == 107).unwrap(), 107);
    let at = order.iter().position(|q| *q == 110).unwrap();
    order.swap(at, at + 1);
    for seq in &order {
        let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
        packet[2..4].copy_from_slice(&seq.to_be_bytes());
        packet[4..8].copy_from_slice(&(u32::from(*seq) * 160).to_be_bytes());
        packet.extend_from_slice(&[0xff; 160]);
        s.a.socket.send_to(&packet, s.to_a_leg).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let got =
        s.b.collect(Duration::from_millis(300), Duration::from_secs(3))
            .await;
    assert_eq!(got.len(), 20, "every datagram is relayed, the double too");
    let leg = &s.media.stats(s.id).unwrap().legs[0];
    assert_eq!(
        (leg.received, leg.lost, leg.duplicated, leg.late),
        (20, 1, 1, 1),
        "{leg:?}"
    );
    s.media.release(s.id);
}

#[tokio::test]
async fn loss_on_the_opus_leg_is_concealed_and_the_output_keeps_its_pace() {
    let a = RtpEnd::bind(Codec::Pcma, 8, Some(101)).await;
    let b = RtpEnd::bind(Codec::Opus, 96, Some(97)).await;
    let mut s = setup(a, b).await;
    let to_b = s.to_b_leg;
    // Every 10th Opus packet is lost on the way to the switch.
    let (sent, got) = tokio::join!(
        s.b.send_tone(to_b, 1000.0, -12.0, 60, |i| i % 10 == 5),
        s.a.collect(Duration::from_millis(500), Duration::from_secs(5)),
    );
    assert_eq!(sent, 54);
    assert_eq!(got.len(), 60, "6 lost packets were concealed, none missing");
    assert_continuous(&got, 8, 160, "to the A-law leg");
    let pcm = s.a.decode(&got);
    // Concealed frames are a good guess, not the tone itself: a wider margin.
    assert_tone(&pcm, 1000.0, -12.0, 4.0, "Opus with loss → PCMA");
    let stats = s.media.stats(s.id).unwrap();
    assert_eq!(
        stats.legs[1].lost, 6,
        "the loss is counted on the leg it happened"
    );
    s.media.release(s.id);
}

#[tokio::test]
async fn the_same_codec_on_both_legs_is_relayed_untouched() {
    let a = RtpEnd::bind(Codec::Pcmu, 0, Some(101)).await;
    let b = RtpEnd::bind(Codec::Pcmu, 0, Some(101)).await;
    let mut s = setup(a, b).await;
    let to_a = s.to_a_leg;
    let (_, got) = tokio::join!(
        s.a.send_tone(to_a, 1000.0, -12.0, 20, |_| false),
        s.b.collect(Duration::from_millis(300), Duration::from_secs(3)),
    );
    assert_eq!(got.len(), 20);
    assert!(
        got.iter().all(|p| p.ssrc == s.a.ssrc),
        "the caller's own stream, not ours"
    );
    assert!(!s.media.stats(s.id).unwrap().transcoded);
    s.media.release(s.id);
}

#[tokio::test]
async fn a_digit_crosses_to_the_opus_leg_retimed_and_is_detected_once() {
    let a = RtpEnd::bind(Codec::Pcmu, 0, Some(101)).await;
    let b = RtpEnd::bind(Codec::Opus, 111, Some(110)).await;
    let mut s = setup(a, b).await;
    let to_a = s.to_a_leg;
    let (_, got) = tokio::join!(
        async {
            s.a.send_tone(to_a, 1000.0, -12.0, 5, |_| false).await;
            s.a.send_digit(to_a, 5).await;
        },
        s.b.collect(Duration::from_millis(400), Duration::from_secs(4)),
    );
    let events: Vec<_> = got.iter().filter(|p| p.pt == 110).collect();
    assert_eq!(events.len(), 7, "every event packet crossed: {got:?}");
    assert!(events.iter().all(|e| e.payload[0] == 5), "digit 5");
    assert!(
        events.iter().all(|e| e.ts == events[0].ts),
        "one event, one timestamp"
    );
    assert!(events[0].marker);
    let durations: Vec<u16> = events
        .iter()
        .map(|e| u16::from_be_bytes([e.payload[2], e.payload[3]]))
        .collect();
    // 160..800 at 8 kHz is 960..4800 at Opus's 48 kHz clock.
    assert_eq!(durations, [960, 1920, 2880, 3840, 4800, 4800, 4800]);
    assert_eq!(
        events.iter().filter(|e| e.payload[1] & 0x80 != 0).count(),
        3
    );
    let audio_last = got.iter().rfind(|p| p.pt == 111).unwrap();
    assert_eq!(
        events[0].ts,
        audio_last.ts.wrapping_add(960),
        "the event starts where audio stopped"
    );
    let mut digits = Vec::new();
    while let Ok(e) = s.events.try_recv() {
        if let MediaEvent::Digit(_, side, d) = e {
            digits.push((side, d));
        }
    }
    assert_eq!(digits, [(Side::A, '5')]);
    s.media.release(s.id);
}

/// An Opus phone that offers digits only at 8 kHz (as baresip does): its digit is
/// detected, reaches a G.711 leg with the same 8 kHz durations, and digits the switch
/// sends it count in 8 kHz too.
#[tokio::test]
async fn an_opus_phone_with_digits_at_8_khz_is_heard_and_sent_to() {
    let a = RtpEnd::bind(Codec::Opus, 111, Some(101))
        .await
        .with_dtmf_clock(8000);
    let b = RtpEnd::bind(Codec::Pcmu, 0, Some(101)).await;
    let mut s = setup(a, b).await;
    let to_a = s.to_a_leg;
    let (_, got) = tokio::join!(
        async {
            s.a.send_tone(to_a, 1000.0, -12.0, 5, |_| false).await;
            s.a.send_digit(to_a, 7).await;
        },
        s.b.collect(Duration::from_millis(400), Duration::from_secs(4)),
    );
    let events: Vec<_> = got.iter().filter(|p| p.pt == 101).collect();
    assert_eq!(events.len(), 7, "every event packet crossed: {got:?}");
    assert!(events.iter().all(|e| e.payload[0] == 7));
    assert!(events.iter().all(|e| e.ts == events[0].ts), "one event");
    let durations: Vec<u16> = events
        .iter()
        .map(|e| u16::from_be_bytes([e.payload[2], e.payload[3]]))
        .collect();
    assert_eq!(
        durations,
        [160, 320, 480, 640, 800, 800, 800],
        "8 kHz both sides"
    );
    let mut digits = Vec::new();
    while let Ok(e) = s.events.try_recv() {
        if let MediaEvent::Digit(_, side, d) = e {
            digits.push((side, d));
        }
    }
    assert_eq!(digits, [(Side::A, '7')], "detected once");
    // Digits to the Opus phone: durations at 8 kHz, timestamps on its 48 kHz audio.
    s.media.play(s.id, Side::A, Play::Digits("3".into()));
    let got_a =
        s.a.collect(Duration::from_millis(400), Duration::from_secs(3))
            .await;
    let ends: Vec<u16> = got_a
        .iter()
        .filter(|p| p.pt == 101 && p.payload[1] & 0x80 != 0)
        .map(|p| u16::from_be_bytes([p.payload[2], p.payload[3]]))
        .collect();
    assert!(
        !ends.is_empty(),
        "the digit reached the Opus phone: {got_a:?}"
    );
    assert!(ends.iter().all(|d| *d == 800), "100 ms at 8 kHz: {ends:?}");
    s.media.release(s.id);
}

#[tokio::test]
async fn the_switch_sends_digits_and_plays_a_prompt() {
    let a = RtpEnd::bind(Codec::Pcmu, 0, Some(101)).await;
    let b = RtpEnd::bind(Codec::Opus, 111, Some(110)).await;
    let mut s = setup(a, b).await;
    s.media.play(s.id, Side::B, Play::Digits("12#".into()));
    s.media
        .play(s.id, Side::A, Play::Prompt("please-hold".into()));
    let (got_b, got_a) = tokio::join!(
        s.b.collect(Duration::from_millis(400), Duration::from_secs(5)),
        s.a.collect(Duration::from_millis(400), Duration::from_secs(5)),
    );
    let ends: Vec<u8> = got_b
        .iter()
        .filter(|p| p.pt == 110 && p.payload[1] & 0x80 != 0)
        .map(|p| p.payload[0])
        .collect();
    assert_eq!(
        ends,
        [1, 1, 1, 2, 2, 2, 11, 11, 11],
        "each digit's end sent three times"
    );
    let pcm = s.a.decode(&got_a);
    let prompt = Prompts::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts"))
        .unwrap()
        .get("please-hold")
        .unwrap();
    assert_eq!(
        got_a.len(),
        prompt.len().div_ceil(160),
        "the whole prompt, in 20 ms packets"
    );
    assert!(
        rms_dbfs(&pcm) > -30.0,
        "the prompt is heard: {:.1} dBFS",
        rms_dbfs(&pcm)
    );
    let mut done = Vec::new();
    while let Ok(e) = s.events.try_recv() {
        if let MediaEvent::PlayDone(_, side) = e {
            done.push(side);
        }
    }
    done.sort_by_key(|s| s.index());
    assert_eq!(done, [Side::A, Side::B]);
    s.media.release(s.id);
}

#[tokio::test]
async fn a_recording_holds_both_voices() {
    let dir = std::env::temp_dir().join(format!("freecall-rec-{}", std::process::id()));
    let file = dir.join("call.wav");
    let a = RtpEnd::bind(Codec::Pcmu, 0, Some(101)).await;
    let b = RtpEnd::bind(Codec::Opus, 111, Some(110)).await;
    let mut s = setup(a, b).await;
    s.media.record(s.id, file.clone());
    let (to_a, to_b) = (s.to_a_leg, s.to_b_leg);
    tokio::join!(
        s.a.send_tone(to_a, 1000.0, -12.0, 75, |_| false),
        s.b.send_tone(to_b, 600.0, -12.0, 75, |_| false),
    );
    s.media.release(s.id);
    // The writer finishes the file once the call's media is gone.
    let mut samples = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(r) = hound::WavReader::open(&file)
            && r.len() >= 8000
        {
            samples = r.into_samples::<i16>().map(|s| s.unwrap()).collect();
            break;
        }
    }
    assert!(
        samples.len() >= 11000,
        "1.5 s recorded, got {} samples",
        samples.len()
    );
    let middle = &samples[2000..10000];
    let (l1, l2) = (level_dbfs(middle, 1000.0), level_dbfs(middle, 600.0));
    assert!(
        (l1 + 12.0).abs() < 3.0,
        "the caller's 1 kHz at {l1:.1} dBFS"
    );
    assert!(
        (l2 + 12.0).abs() < 3.0,
        "the callee's 600 Hz at {l2:.1} dBFS"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_recording_is_readable_while_the_call_goes_on() {
    // What a crash would leave: the file as written so far, header up to date each second.
    let dir = std::env::temp_dir().join(format!("freecall-rec-live-{}", std::process::id()));
    let file = dir.join("live.wav");
    let a = RtpEnd::bind(Codec::Pcmu, 0, Some(101)).await;
    let b = RtpEnd::bind(Codec::Pcmu, 0, Some(101)).await;
    let mut s = setup(a, b).await;
    s.media.record(s.id, file.clone());
    let to_a = s.to_a_leg;
    s.a.send_tone(to_a, 1000.0, -12.0, 150, |_| false).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The call is still up: nothing was finalised.
    let r = hound::WavReader::open(&file).expect("a playable file mid-call");
    let samples: Vec<i16> = r.into_samples::<i16>().map(|x| x.unwrap()).collect();
    assert!(
        samples.len() >= 8000 * 2,
        "at least 2 of 3 seconds readable: {}",
        samples.len()
    );
    let level = level_dbfs(&samples[4000..12000], 1000.0);
    assert!(
        (level + 12.0).abs() < 3.0,
        "the caller's tone at {level:.1} dBFS"
    );
    s.media.release(s.id);
    let _ = std::fs::remove_dir_all(&dir);
}
