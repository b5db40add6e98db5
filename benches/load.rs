//! Load harness: the project's own load UAC and UAS drive calls through a real `freecall`
//! process, and — in the same run — directly from UAC to UAS as the baseline.
//!
//! Prints figures; asserts nothing about speed (machines are shared and noisy).
//!
//! Scenarios (override with environment variables):
//! 1. signalling: `FREECALL_BENCH_RATE` calls/s (1000) for `FREECALL_BENCH_SECS` (30) s,
//!    each call held `FREECALL_BENCH_HOLD_MS` (1000) ms; INVITE/200/ACK … BYE/200.
//! 2. media: `FREECALL_BENCH_RTP_CALLS` (500) concurrent calls with RTP at 50 packets/s
//!    each way for `FREECALL_BENCH_RTP_SECS` (20) s; loss per direction.
//! 3. transcode: `FREECALL_BENCH_TRANSCODE_CALLS` (200) calls PCMU ⇄ Opus for
//!    `FREECALL_BENCH_TRANSCODE_SECS` (20) s against a bare libopus loop.
//! 4. records: the money path at `FREECALL_BENCH_RECORDS_RATE` (1000) calls/s for
//!    `FREECALL_BENCH_RECORDS_SECS` (20) s with and without call records and metrics.
//!
//! 5. callback: `FREECALL_BENCH_CALLBACK_RATE` (200) card call-backs/s over REST for
//!    `FREECALL_BENCH_CALLBACK_SECS` (10) s, both legs answered by the bench's phones,
//!    beside the inbound money path at the same rate (`callback.rs`).
//! 6. dispatcher: `FREECALL_BENCH_DS_RATE` (500) calls/s for `FREECALL_BENCH_DS_SECS` (10)
//!    s through Debian's Kamailio with the shipped recipe to 1, 2 and 3 switches, beside
//!    the same load straight to one switch (`dispatcher.rs`).
//!
//! 7. overload: the money path's capacity at `FREECALL_BENCH_OVERLOAD_RATE` (2500) offered,
//!    then twice that for `FREECALL_BENCH_OVERLOAD_SECS` (10) s with overload control off
//!    and on, and half of it after (`overload.rs`).
//!
//! `FREECALL_BENCH_ONLY=signalling|media|transcode|records|callback|dispatcher|overload` runs one of them.
//!
//! Every loop is bounded in count and time; traffic stays on 127.0.0.1.

mod callback;
mod dispatcher;
mod media;
mod money;
mod overload;
mod switch;
mod transcode;
mod uac;
mod uas;

use media::*;
use money::*;
use switch::*;
use transcode::*;
use uac::*;
use uas::*;

use freecall::sip::{Message, parse_datagram};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether the switch and the load generator each run on a CPU of their own (`pin`).
static PINNED: AtomicBool = AtomicBool::new(false);

fn pinned() -> bool {
    PINNED.load(Ordering::Relaxed)
}

/// As if the load came from another box: the generator and carrier (every thread of this
/// process) keep to CPU 1 and the switches started from now on to CPU 0 (`Switch::start`),
/// so what the generator spends does not come out of the switch's share; `false` gives
/// both CPUs back. FREECALL_BENCH_PIN=1 pins every scenario; the overload scenario pins
/// itself unless FREECALL_BENCH_PIN=0.
fn pin(on: bool) {
    // Given back: every CPU the machine has online ("0-1").
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "0-1".into());
    let cpus = if on { "1" } else { online.as_str() };
    let ok = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "pinning needs taskset (util-linux) and 2 CPUs");
    PINNED.store(on, Ordering::Relaxed);
}

fn now() -> Instant {
    freecall::clock::Clock::system().now()
}

fn udp(addr: &str) -> UdpSocket {
    let addr: SocketAddr = addr.parse().unwrap();
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    // Bursts must not be lost in our own receive buffer (rmem_max allows 4 MiB here).
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_nonblocking(true).unwrap();
    s.bind(&addr.into()).unwrap();
    UdpSocket::from_std(s.into()).unwrap()
}

// ---------------------------------------------------------------------------- main

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo bench -- --list` and test runners probing for benchmarks.
        return;
    }
    let rate = env_or("FREECALL_BENCH_RATE", 1000);
    let secs = env_or("FREECALL_BENCH_SECS", 30);
    let hold = Duration::from_millis(env_or("FREECALL_BENCH_HOLD_MS", 1000));
    let rtp_calls = env_or("FREECALL_BENCH_RTP_CALLS", 500);
    let rtp_secs = env_or("FREECALL_BENCH_RTP_SECS", 20);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if std::env::var("FREECALL_BENCH_PIN").is_ok_and(|v| v == "1") {
        pin(true);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // FREECALL_BENCH_ONLY=signalling|…|overload runs one scenario.
    let only = std::env::var("FREECALL_BENCH_ONLY").ok();
    let run = move |name: &str| only.as_deref().is_none_or(|o| o == name);
    rt.block_on(async move {
        match pinned() {
            true => println!("freecall load harness: the switch on CPU 0, generator and carrier on CPU 1 (FREECALL_BENCH_PIN)"),
            false => println!("freecall load harness: {cores} cores, generator and switch on the same machine"),
        }

        if run("signalling") {
        // 1. Signalling: through the switch, then directly.
        let uas_sip = Arc::new(udp("127.0.0.1:0"));
        let stop = Arc::new(AtomicBool::new(false));
        let (mtx, _mrx) = tokio::sync::mpsc::unbounded_channel();
        let uas_rtp = vec![uas_sip.local_addr().unwrap()];
        let uas_task = tokio::spawn(uas(uas_sip.clone(), uas_rtp, mtx, stop.clone()));
        let max_calls = rate * (hold.as_secs() + 3) + 1000;
        let switch = Switch::start(uas_sip.local_addr().unwrap(), max_calls, None, "", "");
        let total = rate * secs;
        let cpu0 = switch.cpu_seconds();
        let gen0 = own_cpu_seconds();
        let mut via = uac(switch.sip, rate, total, hold, vec!["127.0.0.1:9".parse().unwrap()], None, None, "sw", None).await;
        let switch_cpu = switch.cpu_seconds() - cpu0;
        let gen_cpu = own_cpu_seconds() - gen0;
        let peak = switch.peak_mib();
        let gen1 = own_cpu_seconds();
        let mut direct = uac(uas_sip.local_addr().unwrap(), rate, total, hold, vec!["127.0.0.1:9".parse().unwrap()], None, None, "direct", None).await;
        let direct_gen_cpu = own_cpu_seconds() - gen1;
        stop.store(true, Ordering::Relaxed);
        let _ = uas_task.await;

        let cps = |r: &UacReport| calls_per_sec(r, hold);
        println!("\n== signalling: {rate} calls/s offered for {secs} s, calls held {} ms (INVITE/100/200/ACK, BYE/200)", hold.as_millis());
        println!("{:<16}{:>10}{:>10}{:>8}{:>12}{:>11}{:>11}{:>14}", "path", "attempted", "completed", "failed", "calls/s", "p50 ms", "p99 ms", "gen CPU s");
        for (name, r, g) in [("via freecall", &mut via, gen_cpu), ("direct", &mut direct, direct_gen_cpu)] {
            let (p50, p99) = (percentile(&mut r.latencies_us, 0.5), percentile(&mut r.latencies_us, 0.99));
            println!("{name:<16}{:>10}{:>10}{:>8}{:>12.1}{:>11.2}{:>11.2}{:>14.2}", r.attempted, r.completed, r.failed, cps(r), p50, p99, g);
        }
        println!(
            "switch: {switch_cpu:.2} CPU s ({:.1} % of one core, {:.0} µs per call), peak RSS {peak:.1} MiB; calls/s ratio via/direct = {:.3}",
            100.0 * switch_cpu / via.elapsed.as_secs_f64(),
            1e6 * switch_cpu / via.completed.max(1) as f64,
            cps(&via) / cps(&direct)
        );
        drop(switch);

        // 1b. The same load through the full money path, on SQLite and on PostgreSQL.
        let bare_cps = cps(&via);
        println!("\n== money path: the same load, every call a member's (digest auth with a cached nonce, classification, reservation, answer time, settlement)");
        println!("{:<22}{:>10}{:>10}{:>8}{:>12}{:>9}{:>9}{:>10}{:>11}{:>9}{:>10}", "store", "attempted", "completed", "failed", "calls/s", "p50 ms", "p99 ms", "switch s", "vs bare", "debits", "balanced");
        let pg = if std::env::var("FREECALL_BENCH_SKIP_PG").is_ok() { None } else { Some(freecall_testkit::pg::PgCluster::start()) };
        let dir = std::env::temp_dir().join(format!("freecall-bench-money-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut urls = vec![("sqlite (WAL)", dir.join("bench.db").display().to_string())];
        if let Some(pg) = &pg {
            urls.push(("postgresql 15", pg.create_db("bench")));
        }
        for (name, url) in urls {
            let mut m = money_run(&url, rate, total, hold, max_calls, &[]).await;
            m.print(name, bare_cps);
        }
        let _ = std::fs::remove_dir_all(&dir);
        drop(pg);

        }
        if run("media") {
        // 2. Media: concurrent calls with RTP both ways, through the switch, then directly.
        let uas_sip = Arc::new(udp("127.0.0.1:0"));
        let switch = Switch::start(uas_sip.local_addr().unwrap(), rtp_calls + 100, None, "", "");
        let cpu0 = switch.cpu_seconds();
        let via = media_run(Some(switch.sip), uas_sip.clone(), rtp_calls, rtp_secs, "rtp", BenchCodec::Pcmu, Some(switch.child.id())).await;
        let media_cpu = switch.cpu_seconds() - cpu0;
        let peak = switch.peak_mib();
        drop(switch);
        let uas_sip = Arc::new(udp("127.0.0.1:0"));
        let direct = media_run(None, uas_sip, rtp_calls, rtp_secs, "rtpdirect", BenchCodec::Pcmu, None).await;
        println!("\n== media: {rtp_calls} concurrent calls, RTP PCMU 20 ms (50 packets/s) each way for {rtp_secs} s");
        println!("{:<16}{:>9}{:>14}{:>14}{:>10}{:>14}{:>14}{:>10}", "path", "calls up", "A→B sent", "A→B recv", "loss %", "B→A sent", "B→A recv", "loss %");
        for (name, r) in [("via freecall", &via), ("direct", &direct)] {
            let loss = |(s, g): (u64, u64)| if s == 0 { f64::NAN } else { 100.0 * (s.saturating_sub(g)) as f64 / s as f64 };
            println!("{name:<16}{:>9}{:>14}{:>14}{:>10.3}{:>14}{:>14}{:>10.3}", r.calls_up, r.a_to_b.0, r.a_to_b.1, loss(r.a_to_b), r.b_to_a.0, r.b_to_a.1, loss(r.b_to_a));
        }
        let pps = (via.a_to_b.1 + via.b_to_a.1) as f64 / via.seconds;
        println!(
            "switch: {media_cpu:.2} CPU s over the run ({:.1} % of one core during set-up, media and tear-down), {pps:.0} packets/s relayed, peak RSS {peak:.1} MiB; \
while media flowed {:.0} µs CPU per second of call",
            100.0 * media_cpu / (via.seconds + rtp_calls as f64 / 100.0 + 3.0),
            1e6 * via.media_cpu / (via.calls_up.max(1) as f64 * via.seconds)
        );
        }
        if run("transcode") {
            transcode_bench().await;
        }
        if run("records") {
            let rate = env_or("FREECALL_BENCH_RECORDS_RATE", 1000);
            let secs = env_or("FREECALL_BENCH_RECORDS_SECS", 20);
            records_bench(rate, secs, hold).await;
        }
        if run("callback") {
            callback::callback_bench(hold).await;
        }
        if run("dispatcher") {
            let rate = env_or("FREECALL_BENCH_DS_RATE", 500);
            let secs = env_or("FREECALL_BENCH_DS_SECS", 10);
            dispatcher::dispatcher_bench(rate, secs, hold).await;
        }
        if run("overload") {
            let rate = env_or("FREECALL_BENCH_OVERLOAD_RATE", 2500);
            let secs = env_or("FREECALL_BENCH_OVERLOAD_SECS", 10);
            overload::overload_bench(rate, secs, hold).await;
        }
    });
}
