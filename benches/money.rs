//! The money path: members, digest calls reserved and settled, with and without records.

use super::*;

/// What a money-path run gave.
pub(crate) struct MoneyRun {
    /// The first phase's calls.
    pub(crate) r: UacReport,
    /// The later phases' calls (`money_phases`), on the same switch.
    pub(crate) later: Vec<UacReport>,
    /// Datagrams the kernel dropped at the switch's SIP socket and at the carrier's (the
    /// generator's own are in each report).
    pub(crate) switch_drops: u64,
    pub(crate) trunk_drops: u64,
    /// The switch's peak resident memory over the run, MiB.
    pub(crate) peak_mib: f64,
    pub(crate) hold: Duration,
    pub(crate) cpu: f64,
    pub(crate) debits: u64,
    pub(crate) open: i64,
    pub(crate) problems: usize,
}

impl MoneyRun {
    pub(crate) fn print(&mut self, name: &str, bare_cps: f64) {
        let hold = self.hold;
        let cps = |r: &UacReport| calls_per_sec(r, hold);
        let r = &mut self.r;
        let (p50, p99) = (
            percentile(&mut r.latencies_us, 0.5),
            percentile(&mut r.latencies_us, 0.99),
        );
        println!(
            "{name:<22}{:>10}{:>10}{:>8}{:>12.1}{:>9.2}{:>9.2}{:>10.2}{:>10.1}%{:>9}{:>10}",
            r.attempted,
            r.completed,
            r.failed,
            cps(r),
            p50,
            p99,
            self.cpu,
            100.0 * cps(r) / bare_cps,
            self.debits,
            if self.problems == 0 && self.open == 0 {
                "yes"
            } else {
                "NO"
            }
        );
        if self.open != 0 || self.problems != 0 {
            println!(
                "  open reservations: {}, accounts whose ledger does not add up: {}",
                self.open, self.problems
            );
        }
    }
}

/// The money path on the database at `url`: members signed up, `total` calls at `rate`
/// through a switch started with `env`, then the ledger checked.
pub(crate) async fn money_run(
    url: &str,
    rate: u64,
    total: u64,
    hold: Duration,
    max_calls: u64,
    env: &[(&str, &str)],
) -> MoneyRun {
    money_phases(url, &[(rate, total)], hold, max_calls, env).await
}

/// `money_run` in phases, one after the other on the same switch: `(rate, total)` each
/// (a phase starts when the last one's calls have ended or failed).
pub(crate) async fn money_phases(
    url: &str,
    phases: &[(u64, u64)],
    hold: Duration,
    max_calls: u64,
    env: &[(&str, &str)],
) -> MoneyRun {
    let rate = phases.iter().map(|p| p.0).max().unwrap_or(1);
    let members = (rate * (hold.as_secs() + 2)).clamp(100, 5000);
    let store = freecall::store::Store::open(url, 4).expect("bench store");
    store.migrate().expect("migrate");
    for i in 0..members {
        store
            .create_member(
                &freecall::store::shop::NewMember {
                    login: format!("m{i}"),
                    password_hash: "-".into(),
                    name: format!("Member {i}"),
                    address: String::new(),
                    job: String::new(),
                    phone: String::new(),
                    email: String::new(),
                    sip_ha1: freecall::auth::ha1(&format!("m{i}"), "freecall", "pw"),
                },
                1_000_000_000,
            )
            .expect("bench member");
    }
    let uas_sip = Arc::new(udp("127.0.0.1:0"));
    let stop = Arc::new(AtomicBool::new(false));
    let (mtx, _mrx) = tokio::sync::mpsc::unbounded_channel();
    let uas_task = tokio::spawn(uas(
        uas_sip.clone(),
        vec![uas_sip.local_addr().unwrap()],
        mtx,
        stop.clone(),
    ));
    let switch = Switch::start_with(
        uas_sip.local_addr().unwrap(),
        max_calls,
        Some(url),
        "",
        "",
        env,
    );
    let cpu0 = switch.cpu_seconds();
    let mut reports = Vec::new();
    for (n, (rate, total)) in phases.iter().enumerate() {
        let run = if n == 0 {
            "money".to_string()
        } else {
            format!("money{n}")
        };
        reports.push(
            uac(
                switch.sip,
                *rate,
                *total,
                hold,
                vec!["127.0.0.1:9".parse().unwrap()],
                None,
                None,
                &run,
                Some(members),
            )
            .await,
        );
    }
    let r = reports.remove(0);
    // Settlements trail the last BYE: wait (bounded) until none is open.
    for _ in 0..300 {
        if store.open_reservations().map(|n| n == 0).unwrap_or(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cpu = switch.cpu_seconds() - cpu0;
    let peak_mib = switch.peak_mib();
    let switch_drops = udp_drops(switch.sip.port());
    let trunk_drops = uas_sip
        .local_addr()
        .map(|a| udp_drops(a.port()))
        .unwrap_or(0);
    drop(switch);
    stop.store(true, Ordering::Relaxed);
    let _ = uas_task.await;
    let open = store.open_reservations().unwrap_or(-1);
    let problems = store.audit().map(|p| p.len()).unwrap_or(usize::MAX);
    let debits: u64 = (0..members.min(5000))
        .map(|i| {
            store
                .ledger(i as i64 + 1, 0, 100_000)
                .map(|e| e.iter().filter(|e| e.kind == "debit").count() as u64)
                .unwrap_or(0)
        })
        .sum();
    MoneyRun {
        r,
        later: reports,
        switch_drops,
        trunk_drops,
        peak_mib,
        hold,
        cpu,
        debits,
        open,
        problems,
    }
}

/// 4. Call records and metrics: the money path with them, then without, on SQLite.
pub(crate) async fn records_bench(rate: u64, secs: u64, hold: Duration) {
    let max_calls = rate * (hold.as_secs() + 3) + 1000;
    println!(
        "\n== records and metrics: the money path at {rate} calls/s for {secs} s on SQLite, with and without call records and metrics"
    );
    println!(
        "{:<22}{:>10}{:>10}{:>8}{:>12}{:>9}{:>9}{:>10}{:>11}{:>9}{:>10}",
        "run",
        "attempted",
        "completed",
        "failed",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "switch s",
        "vs off",
        "debits",
        "balanced"
    );
    let mut runs = Vec::new();
    for (name, env) in [
        (
            "off",
            vec![
                ("FREECALL__CDR__ENABLED", "false"),
                ("FREECALL__API__METRICS", "false"),
            ],
        ),
        ("records + metrics", vec![]),
    ] {
        let dir = std::env::temp_dir().join(format!(
            "freecall-bench-rec-{}-{}",
            std::process::id(),
            runs.len()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = dir.join("bench.db").display().to_string();
        let m = money_run(&url, rate, rate * secs, hold, max_calls, &env).await;
        let records = freecall::store::Store::open(&url, 1)
            .and_then(|s| s.count_cdrs(&Default::default()))
            .unwrap_or(-1);
        runs.push((name, m, records));
        let _ = std::fs::remove_dir_all(&dir);
    }
    let cps = |r: &UacReport| calls_per_sec(r, hold);
    let off_cps = cps(&runs[0].1.r);
    let off_cpu = runs[0].1.cpu / runs[0].1.r.completed.max(1) as f64;
    for (name, m, _) in runs.iter_mut() {
        m.print(name, off_cps);
    }
    let on = &runs[1];
    let on_cpu = on.1.cpu / on.1.r.completed.max(1) as f64;
    println!(
        "records written: {} (off: {}); calls/s with / without = {:.3}; switch CPU per call {:.0} µs with, {:.0} µs without ({:+.1} %)",
        on.2,
        runs[0].2,
        cps(&on.1.r) / off_cps,
        1e6 * on_cpu,
        1e6 * off_cpu,
        100.0 * (on_cpu / off_cpu - 1.0)
    );
}
