//! Transcoded calls (PCMU ⇄ Opus) against a bare libopus loop.

use super::*;

/// The lower bound: the codec work of `calls` calls with nothing else — the same audio,
/// the same Opus settings the switch uses (shipped defaults, no FEC: the bench phone does
/// not ask for it), one codec state per call and direction, interleaved frame by frame as
/// the switch meets them. Per call and 20 ms: PCMU → PCM → Opus one way, Opus → PCM →
/// PCMU the other. CPU seconds for `frames` frames of every call.
pub(crate) fn bare_codec_loop(
    calls: usize,
    frames: usize,
    settings: freecall::media::codec::OpusSettings,
) -> f64 {
    use freecall::media::codec::{Codec, Decoder, Encoder, OpusFmtp};
    let pcmu = BenchCodec::Pcmu.frames();
    let opus = BenchCodec::Opus.frames();
    struct Pair {
        dec_u: Decoder,
        enc_o: Encoder,
        dec_o: Decoder,
        enc_u: Encoder,
    }
    let mut pairs: Vec<Pair> = (0..calls)
        .map(|_| Pair {
            dec_u: Decoder::new(Codec::Pcmu).unwrap(),
            enc_o: Encoder::new(Codec::Opus, settings, OpusFmtp::default()).unwrap(),
            dec_o: Decoder::new(Codec::Opus).unwrap(),
            enc_u: Encoder::new(Codec::Pcmu, settings, OpusFmtp::default()).unwrap(),
        })
        .collect();
    let mut pcm = [0i16; 960];
    let mut out = [0u8; 1500];
    let mut bytes = 0usize;
    let c0 = own_cpu_seconds();
    for i in 0..frames {
        for p in pairs.iter_mut() {
            let n = p.dec_u.decode(&pcmu[i % 50], &mut pcm).unwrap();
            bytes += p.enc_o.encode(&pcm[..n], &mut out).unwrap();
            let n = p.dec_o.decode(&opus[i % 50], &mut pcm).unwrap();
            bytes += p.enc_u.encode(&pcm[..n], &mut out).unwrap();
        }
    }
    let cpu = own_cpu_seconds() - c0;
    assert!(bytes > 0);
    cpu
}

/// 3. Transcoding: calls whose caller speaks PCMU and whose trunk speaks only Opus.
pub(crate) async fn transcode_bench() {
    let calls = env_or("FREECALL_BENCH_TRANSCODE_CALLS", 200);
    let secs = env_or("FREECALL_BENCH_TRANSCODE_SECS", 20);
    // The shipped Opus settings, unless FREECALL_BENCH_OPUS_COMPLEXITY says otherwise.
    let mut settings = freecall::media::codec::OpusSettings::default();
    settings.complexity =
        env_or("FREECALL_BENCH_OPUS_COMPLEXITY", settings.complexity as u64) as u8;
    // As many codec states as calls (at least 20 000 frames in all), measured twice: on an
    // idle machine, and with the other core kept busy — as it is while the switch runs
    // (the load generator shares the machine). On this kind of machine a busy sibling
    // core slows the codec itself down by up to 2×, so the second is the comparable bound.
    let frames = (20_000 / calls as usize).max(200);
    let per_call = |cpu: f64| cpu / (calls as f64 * frames as f64 / 50.0);
    let bare_idle = per_call(bare_codec_loop(calls as usize, frames, settings));
    let spin = Arc::new(AtomicBool::new(true));
    let spinning = {
        let spin = spin.clone();
        std::thread::spawn(move || {
            let mut x = 0u64;
            while spin.load(Ordering::Relaxed) {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
            }
        })
    };
    let bare_per_call = per_call(bare_codec_loop(calls as usize, frames, settings));
    spin.store(false, Ordering::Relaxed);
    let _ = spinning.join();
    let uas_sip = Arc::new(udp("127.0.0.1:0"));
    let switch = Switch::start(
        uas_sip.local_addr().unwrap(),
        calls + 100,
        None,
        "\"opus\"",
        &format!("opus.complexity = {}", settings.complexity),
    );
    let r = media_run(
        Some(switch.sip),
        uas_sip,
        calls,
        secs,
        "tc",
        BenchCodec::Opus,
        Some(switch.child.id()),
    )
    .await;
    let peak = switch.peak_mib();
    drop(switch);
    println!(
        "\n== transcoding: {calls} concurrent calls, PCMU phone ⇄ Opus-only trunk, 20 ms frames both ways for {secs} s \
(Opus {} b/s, complexity {}, narrowband from 8 kHz, FEC off: the far end did not ask for it)",
        settings.bitrate, settings.complexity
    );
    let pct = |a: u64, b: u64| {
        if b == 0 {
            f64::NAN
        } else {
            100.0 * a as f64 / b as f64
        }
    };
    println!(
        "{:<8}{:>12}{:>12}{:>10}{:>10}",
        "dir", "sent", "received", "loss %", "late %"
    );
    for (name, (sent, got), late) in [("A→B", r.a_to_b, r.late.0), ("B→A", r.b_to_a, r.late.1)]
    {
        println!(
            "{name:<8}{sent:>12}{got:>12}{:>10.3}{:>10.3}",
            pct(sent.saturating_sub(got), sent),
            pct(late, got)
        );
    }
    let per_call = r.media_cpu / (r.calls_up.max(1) as f64 * r.seconds);
    println!(
        "calls up: {}/{calls}; switch CPU while media flowed: {:.2} s over {:.1} s ({:.1} % of one core); peak RSS {peak:.1} MiB",
        r.calls_up,
        r.media_cpu,
        r.seconds,
        100.0 * r.media_cpu / r.seconds
    );
    println!(
        "per call: switch {:.0} µs CPU per second of call → {:.0} transcoded calls per core",
        1e6 * per_call,
        1.0 / per_call,
    );
    println!(
        "bare codec loop ({calls} codec states interleaved): {:.0} µs per second of call with the other core busy \
(switch / bare = {:.2}); {:.0} µs on an idle machine (switch / bare = {:.2})",
        1e6 * bare_per_call,
        per_call / bare_per_call,
        1e6 * bare_idle,
        per_call / bare_idle
    );
}
