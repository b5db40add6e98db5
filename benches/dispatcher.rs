//! Calls through Kamailio's dispatcher (the recipe in `deploy/kamailio/`, as shipped) to
//! one, two and three switches, beside the same load sent straight to one switch: what the
//! dispatcher costs and what more nodes buy on this machine.

use super::*;

/// Kamailio, ended with SIGTERM (which ends its worker processes too).
struct Kamailio(Child);

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kamailio(dir: &std::path::Path, nodes: &[SocketAddr]) -> (Kamailio, SocketAddr) {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let list = dir.join("nodes.list");
    let lines: String = nodes.iter().map(|n| format!("1 sip:{n}\n")).collect();
    std::fs::write(&list, lines).unwrap();
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let child = Command::new("kamailio")
        .args([
            "-f",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kamailio/kamailio.cfg"),
        ])
        .args(["-DD", "-E", "-m", "256", "-M", "16"])
        .args(["-A", &format!("LISTEN=udp:127.0.0.1:{port}")])
        .args(["-A", &format!("DISPATCHER_LIST=\"{}\"", list.display())])
        .args(["-Y", &run.display().to_string()])
        .args(["-P", &dir.join("kamailio.pid").display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kamailio (Debian's package)");
    (
        Kamailio(child),
        format!("127.0.0.1:{port}").parse().unwrap(),
    )
}

/// CPU seconds of process `pid` and of every process whose parent it is.
fn tree_cpu(pid: u32) -> f64 {
    let mut total = cpu_of(pid);
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(pid) {
                total += cpu_of(child);
            }
        }
    }
    total
}

/// `rate` calls/s for `secs` s, each held `hold`: straight to one switch, then through
/// the dispatcher to 1, 2 and 3 switches (bare B2BUAs, each its own process).
pub(crate) async fn dispatcher_bench(rate: u64, secs: u64, hold: Duration) {
    println!(
        "\n== through Kamailio's dispatcher (deploy/kamailio/): {rate} calls/s offered for {secs} s, held {} ms",
        hold.as_millis()
    );
    println!(
        "{:<22}{:>10}{:>10}{:>8}{:>10}{:>9}{:>9}{:>12}{:>13}{:>10}",
        "path",
        "attempted",
        "completed",
        "failed",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "switches s",
        "kamailio s",
        "vs direct"
    );
    let dir = std::env::temp_dir().join(format!("freecall-bench-ds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let uas_sip = Arc::new(udp("127.0.0.1:0"));
    let stop = Arc::new(AtomicBool::new(false));
    let (mtx, _mrx) = tokio::sync::mpsc::unbounded_channel();
    let uas_task = tokio::spawn(uas(
        uas_sip.clone(),
        vec![uas_sip.local_addr().unwrap()],
        mtx,
        stop.clone(),
    ));
    let trunk = uas_sip.local_addr().unwrap();
    let max_calls = rate * (hold.as_secs() + 3) + 1000;
    let mut direct_cps = 0.0;
    for nodes in [0usize, 1, 2, 3] {
        // Each switch its own database, node id and RTP ports.
        let switches: Vec<Switch> = (0..nodes.max(1))
            .map(|i| {
                let db = dir
                    .join(format!("node{nodes}-{i}.db"))
                    .display()
                    .to_string();
                let (lo, hi) = (20000 + 13000 * i, 20000 + 13000 * i + 12999);
                let (node, lo, hi) = (format!("bench-{i}"), lo.to_string(), hi.to_string());
                Switch::start_with(
                    trunk,
                    max_calls,
                    None,
                    "",
                    "",
                    &[
                        ("FREECALL__DATABASE__URL", &db),
                        ("FREECALL__BILLING__NODE_ID", &node),
                        ("FREECALL__MEDIA__PORT_MIN", &lo),
                        ("FREECALL__MEDIA__PORT_MAX", &hi),
                    ],
                )
            })
            .collect();
        let addrs: Vec<SocketAddr> = switches.iter().map(|s| s.sip).collect();
        let ds = (nodes > 0).then(|| kamailio(&dir, &addrs));
        if ds.is_some() {
            // Its first probes answered.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        let target = ds.as_ref().map(|(_, a)| *a).unwrap_or(addrs[0]);
        let cpu0: f64 = switches.iter().map(|s| s.cpu_seconds()).sum();
        let kam0 = ds.as_ref().map(|(k, _)| tree_cpu(k.0.id())).unwrap_or(0.0);
        let mut r = uac(
            target,
            rate,
            rate * secs,
            hold,
            vec!["127.0.0.1:9".parse().unwrap()],
            None,
            None,
            &format!("ds{nodes}"),
            None,
        )
        .await;
        let sw_cpu = switches.iter().map(|s| s.cpu_seconds()).sum::<f64>() - cpu0;
        let kam_cpu = ds.as_ref().map(|(k, _)| tree_cpu(k.0.id())).unwrap_or(0.0) - kam0;
        let cps = calls_per_sec(&r, hold);
        if nodes == 0 {
            direct_cps = cps;
        }
        let (p50, p99) = (
            percentile(&mut r.latencies_us, 0.5),
            percentile(&mut r.latencies_us, 0.99),
        );
        let name = match nodes {
            0 => "direct, 1 switch".to_string(),
            n => format!("dispatcher, {n} switch{}", if n > 1 { "es" } else { "" }),
        };
        println!(
            "{name:<22}{:>10}{:>10}{:>8}{:>10.1}{:>9.2}{:>9.2}{:>12.2}{:>13.2}{:>10.3}",
            r.attempted,
            r.completed,
            r.failed,
            cps,
            p50,
            p99,
            sw_cpu,
            kam_cpu,
            cps / direct_cps.max(1e-9)
        );
        drop(ds);
        drop(switches);
    }
    println!(
        "(generator, Kamailio and every switch share this machine's cores: past one switch, more nodes add processes competing for the same CPU, not capacity)"
    );
    stop.store(true, Ordering::Relaxed);
    let _ = uas_task.await;
    let _ = std::fs::remove_dir_all(&dir);
}
