//! RTP load: calls with media both ways through the switch, loss per direction.

use super::*;

/// What a bench phone sends: PCMU (payload type 0) or Opus (111), 20 ms frames of a tone.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum BenchCodec {
    Pcmu,
    Opus,
}

impl BenchCodec {
    pub(crate) fn pt(self) -> u8 {
        match self {
            BenchCodec::Pcmu => 0,
            BenchCodec::Opus => 111,
        }
    }
    pub(crate) fn ticks(self) -> u32 {
        match self {
            BenchCodec::Pcmu => 160,
            BenchCodec::Opus => 960,
        }
    }
    /// One second of a 1 kHz tone (with a slow 5 Hz warble, so frames differ), encoded.
    pub(crate) fn frames(self) -> Vec<Vec<u8>> {
        use freecall::media::codec::{Codec, Encoder, OpusFmtp, OpusSettings};
        let codec = match self {
            BenchCodec::Pcmu => Codec::Pcmu,
            BenchCodec::Opus => Codec::Opus,
        };
        let mut enc = Encoder::new(codec, OpusSettings::default(), OpusFmtp::default()).unwrap();
        (0..50)
            .map(|i| {
                let pcm = bench_audio(i);
                let mut out = [0u8; 400];
                let n = enc.encode(&pcm, &mut out).unwrap();
                out[..n].to_vec()
            })
            .collect()
    }
}

/// Frame `i` (20 ms, 8 kHz) of the bench audio: 1 kHz at −12 dBFS, warbling at 5 Hz.
pub(crate) fn bench_audio(i: usize) -> Vec<i16> {
    (0..160)
        .map(|k| {
            let t = (i * 160 + k) as f64 / 8000.0;
            let f = 1000.0 + 50.0 * (2.0 * std::f64::consts::PI * 5.0 * t).sin();
            (8000.0 * (2.0 * std::f64::consts::PI * f * t).sin()) as i16
        })
        .collect()
}

/// Sends one 20 ms packet per call every 20 ms (spread over the 20 ms), counting packets
/// sent; stops when `stop` is set.
pub(crate) async fn rtp_sender(
    socks: Vec<Arc<UdpSocket>>,
    mut targets: tokio::sync::mpsc::UnboundedReceiver<(String, SocketAddr)>,
    sent: Arc<AtomicU64>,
    go: tokio::sync::watch::Receiver<bool>,
    stop: Arc<AtomicBool>,
    codec: BenchCodec,
) {
    let frames = codec.frames();
    let mut streams: Vec<(SocketAddr, u16, u32)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n: u64 = 0;
    let mut pkt = Vec::with_capacity(200);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        while let Ok((_, t)) = targets.try_recv() {
            streams.push((t, 0, 0));
        }
        if !*go.borrow() {
            continue;
        }
        let slot = (n % 20) as usize;
        n += 1;
        for (i, (dest, seq, ts)) in streams.iter_mut().enumerate() {
            if i % 20 != slot {
                continue;
            }
            pkt.clear();
            pkt.extend_from_slice(&[0x80, codec.pt()]);
            pkt.extend_from_slice(&seq.to_be_bytes());
            pkt.extend_from_slice(&ts.to_be_bytes());
            pkt.extend_from_slice(&(i as u32 + 1).to_be_bytes());
            pkt.extend_from_slice(&frames[*seq as usize % frames.len()]);
            *seq = seq.wrapping_add(1);
            *ts = ts.wrapping_add(codec.ticks());
            let s = &socks[i % socks.len()];
            if s.send_to(&pkt, *dest).await.is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Counts packets received, and those late: more than 60 ms (a jitter buffer's worth)
/// behind the fastest packet of their stream, judged by RTP timestamp against arrival.
pub(crate) async fn rtp_counter(
    sock: Arc<UdpSocket>,
    got: Arc<AtomicU64>,
    late: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = [0u8; 2048];
    let t0 = now();
    // SSRC → least (arrival − timestamp) seen, in microseconds.
    let mut best: HashMap<u32, i64> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(100), sock.recv_from(&mut buf)).await
        {
            got.fetch_add(1, Ordering::Relaxed);
            if n < 12 {
                continue;
            }
            let clock: i64 = if buf[1] & 0x7f == 111 { 48_000 } else { 8_000 };
            let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as i64;
            let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
            let arrival = now().duration_since(t0).as_micros() as i64;
            let transit = arrival - ts * 1_000_000 / clock;
            let b = best.entry(ssrc).or_insert(transit);
            *b = (*b).min(transit);
            if transit - *b > 60_000 {
                late.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

pub(crate) struct MediaReport {
    pub(crate) calls_up: u64,
    pub(crate) a_to_b: (u64, u64),
    pub(crate) b_to_a: (u64, u64),
    /// Packets more than 60 ms late, A→B and B→A.
    pub(crate) late: (u64, u64),
    pub(crate) seconds: f64,
    /// CPU seconds the switch used while media flowed (with `switch_pid`).
    pub(crate) media_cpu: f64,
}

/// `calls` concurrent calls through `target` (the switch, or the UAS directly) carrying
/// RTP both ways for `secs`.
pub(crate) async fn media_run(
    target: Option<SocketAddr>,
    uas_sip: Arc<UdpSocket>,
    calls: u64,
    secs: u64,
    run: &str,
    uas_codec: BenchCodec,
    switch_pid: Option<u32>,
) -> MediaReport {
    let uac_rtp: Vec<Arc<UdpSocket>> = (0..4).map(|_| Arc::new(udp("127.0.0.1:0"))).collect();
    let uas_rtp: Vec<Arc<UdpSocket>> = (0..4).map(|_| Arc::new(udp("127.0.0.1:0"))).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let (a_sent, a_got, b_sent, b_got) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let (a_late, b_late) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (uas_media_tx, uas_media_rx) = tokio::sync::mpsc::unbounded_channel();
    let (uac_media_tx, uac_media_rx) = tokio::sync::mpsc::unbounded_channel();
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let uas_stop = Arc::new(AtomicBool::new(false));
    let uas_task = tokio::spawn(uas(
        uas_sip.clone(),
        uas_rtp.iter().map(|s| s.local_addr().unwrap()).collect(),
        uas_media_tx,
        uas_stop.clone(),
    ));
    for s in &uac_rtp {
        tokio::spawn(rtp_counter(
            s.clone(),
            b_got.clone(),
            b_late.clone(),
            stop.clone(),
        ));
    }
    for s in &uas_rtp {
        tokio::spawn(rtp_counter(
            s.clone(),
            a_got.clone(),
            a_late.clone(),
            stop.clone(),
        ));
    }
    tokio::spawn(rtp_sender(
        uac_rtp.clone(),
        uac_media_rx,
        a_sent.clone(),
        go_rx.clone(),
        stop.clone(),
        BenchCodec::Pcmu,
    ));
    tokio::spawn(rtp_sender(
        uas_rtp.clone(),
        uas_media_rx,
        b_sent.clone(),
        go_rx.clone(),
        stop.clone(),
        uas_codec,
    ));
    let sip_target = target.unwrap_or(uas_sip.local_addr().unwrap());
    let uac_addrs: Vec<SocketAddr> = uac_rtp.iter().map(|s| s.local_addr().unwrap()).collect();
    let run = run.to_string();
    let uac_task = tokio::spawn(async move {
        uac(
            sip_target,
            100,
            calls,
            Duration::from_millis(1),
            uac_addrs,
            Some(uac_media_tx),
            Some(release_rx),
            &run,
            None,
        )
        .await
    });
    // Let every call come up (100 calls/s), then carry media.
    tokio::time::sleep(Duration::from_secs_f64(calls as f64 / 100.0 + 2.0)).await;
    let _ = go_tx.send(true);
    let t0 = now();
    let cpu0 = switch_pid.map(cpu_of).unwrap_or(0.0);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let _ = go_tx.send(false);
    let media_cpu = switch_pid.map(cpu_of).unwrap_or(0.0) - cpu0;
    let seconds = now().duration_since(t0).as_secs_f64();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = release_tx.send(true);
    let report = uac_task.await.unwrap();
    uas_stop.store(true, Ordering::Relaxed);
    let _ = uas_task.await;
    MediaReport {
        calls_up: report.latencies_us.len() as u64,
        a_to_b: (
            a_sent.load(Ordering::Relaxed),
            a_got.load(Ordering::Relaxed),
        ),
        b_to_a: (
            b_sent.load(Ordering::Relaxed),
            b_got.load(Ordering::Relaxed),
        ),
        late: (
            a_late.load(Ordering::Relaxed),
            b_late.load(Ordering::Relaxed),
        ),
        seconds,
        media_cpu,
    }
}
