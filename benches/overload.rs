//! Overload: the money path (digest, reservations, settlements on SQLite) offered twice
//! what the switch carries, with overload control off and on, in the same run. First the
//! capacity is measured (calls/s completed at `FREECALL_BENCH_OVERLOAD_RATE` offered, the
//! better of two runs);
//! then twice that is offered for `FREECALL_BENCH_OVERLOAD_SECS`, followed at once by a
//! quiet phase at half the capacity for 5 s (does the switch recover as soon as the load
//! drops?). Capacity and goodput are calls completed per second of the offered window
//! (stragglers count, however late, but do not stretch the window); of the calls that
//! failed, those refused at once as overloaded are told apart from calls the switch took
//! on and lost, and the datagrams the kernel dropped for a full receive buffer are
//! counted at each party's socket (switch, generator, carrier).

use super::*;

pub(crate) async fn overload_bench(rate: u64, secs: u64, hold: Duration) {
    // At twice the load the generator spends twice the CPU: sharing the cores, that would
    // come out of the switch's share and the ratio would measure the generator. So the
    // switch runs on a CPU of its own, as with load from another box (FREECALL_BENCH_PIN=0:
    // shared, as the other scenarios run).
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let was_pinned = pinned();
    let pin_here = std::env::var("FREECALL_BENCH_PIN").map_or(cores >= 2, |v| v != "0");
    if pin_here != was_pinned {
        pin(pin_here);
    }
    println!(
        "\n== overload: {}",
        if pin_here {
            "the switch on CPU 0, generator and carrier on CPU 1"
        } else {
            "generator, carrier and switch sharing the machine's CPUs"
        }
    );
    let max_calls = rate * 4 * (hold.as_secs() + 3) + 1000;
    let dir = std::env::temp_dir().join(format!("freecall-bench-overload-{}", std::process::id()));
    let db = |n: usize| {
        let d = dir.join(n.to_string());
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.join("bench.db").display().to_string()
    };
    // Capacity: the better of two runs, each on a fresh switch and database (a first run
    // on a cold machine reads low, and a low capacity would flatter the ratio below).
    let mut best: Option<(f64, MoneyRun)> = None;
    for n in 0..2 {
        let run = money_phases(&db(10 + n), &[(rate, rate * secs)], hold, max_calls, &[]).await;
        let cps = goodput(&run.r, rate, rate * secs);
        println!(
            "capacity run {}: {cps:.0} calls/s; failed: {:?}; dropped by the kernel: switch {}, generator {}, carrier {}",
            n + 1,
            run.r.why,
            run.switch_drops,
            run.r.drops,
            run.trunk_drops
        );
        if best.as_ref().is_none_or(|(b, _)| cps > *b) {
            best = Some((cps, run));
        }
    }
    let Some((capacity, capacity_run)) = best else {
        return;
    };
    let offered = (2.0 * capacity).round().max(1.0) as u64;
    let quiet = (capacity / 2.0).round().max(1.0) as u64;
    println!(
        "the money path on SQLite; capacity {capacity:.0} calls/s ({} of {} completed at {rate}/s offered), then {offered} calls/s offered for {secs} s and {quiet}/s for 5 s after",
        capacity_run.r.completed, capacity_run.r.attempted
    );
    println!(
        "{:<14}{:>10}{:>10}{:>10}{:>8}{:>13}{:>10}{:>7}{:>9}{:>9}{:>10}{:>16}",
        "control",
        "attempted",
        "completed",
        "calls/s",
        "of cap",
        "refused 503",
        "unheard",
        "lost",
        "p50 ms",
        "p99 ms",
        "peak MiB",
        "after: done/of"
    );
    for (n, (name, env)) in [
        (
            "off",
            vec![
                ("FREECALL__LIMITS__OVERLOAD_QUEUE_MS", "0"),
                ("FREECALL__LIMITS__MAX_PENDING_AUTHORIZATIONS", "100000000"),
            ],
        ),
        ("on (defaults)", vec![]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut m = money_phases(
            &db(n + 1),
            &[(offered, offered * secs), (quiet, quiet * 5)],
            hold,
            max_calls,
            &env,
        )
        .await;
        let cps = goodput(&m.r, offered, offered * secs);
        let r = &mut m.r;
        let (p50, p99) = (
            percentile(&mut r.latencies_us, 0.5),
            percentile(&mut r.latencies_us, 0.99),
        );
        let after = &m.later[0];
        println!(
            "{name:<14}{:>10}{:>10}{:>10.0}{:>7.0}%{:>13}{:>10}{:>7}{:>9.1}{:>9.1}{:>10.0}{:>10}/{:<5}",
            r.attempted,
            r.completed,
            cps,
            100.0 * cps / capacity,
            r.shed,
            r.unheard,
            r.failed - r.shed - r.unheard,
            p50,
            p99,
            m.peak_mib,
            after.completed,
            after.attempted
        );
        println!("  failed: {:?}; after: {:?}", r.why, after.why);
        println!(
            "  datagrams dropped by the kernel (receive buffer full): switch {}, generator {}, carrier {}; requests the generator sent again, unanswered in time: {}",
            m.switch_drops,
            r.drops + after.drops,
            m.trunk_drops,
            r.retransmitted + after.retransmitted
        );
        if m.open != 0 || m.problems != 0 {
            println!(
                "  open reservations: {}, accounts whose ledger does not add up: {}",
                m.open, m.problems
            );
        }
    }
    println!(
        "(unheard: calls the switch never answered, retransmissions included; lost: calls it took on — answered 100, 407 or more — that then failed or went unanswered for 8 s)"
    );
    let _ = std::fs::remove_dir_all(&dir);
    if pin_here != was_pinned {
        pin(was_pinned);
    }
}
