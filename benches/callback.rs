//! Scenario 5, call-backs end to end: `FREECALL_BENCH_CALLBACK_RATE` (200) requests/s
//! for `FREECALL_BENCH_CALLBACK_SECS` (10) s over REST (`POST /v1/cards/{id}/callbacks`);
//! the bench's own UAS is the trunk behind which both phones answer: the issuer's
//! accepts with a SIP INFO digit 1 as soon as it has answered, the visitor's hangs up
//! after the hold. Setup is request → the visitor's leg answered (bridged). Reported
//! beside the inbound money-path call rate of the same run, on the same kind of store
//! (SQLite).

use super::{Switch, calls_per_sec, env_or, money_run, now, percentile, response, udp};
use freecall::sip::parse_datagram;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the phones saw, by visitor number.
#[derive(Default)]
struct Seen {
    requested: HashMap<String, Instant>,
    bridged_us: Vec<u64>,
    completed: u64,
    refused: u64,
    http_failed: u64,
}

/// A visitor's BYE, due at a time: (when, Call-ID, to, bytes).
type DueBye = (Instant, String, SocketAddr, Vec<u8>);

/// The trunk: issuer numbers (`0109…`) answer and press 1 (INFO); visitor numbers
/// (`02…`) answer, then send BYE after `hold`; BYEs from the switch get 200.
async fn phones(
    sock: Arc<tokio::net::UdpSocket>,
    hold: Duration,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) {
    let me = sock.local_addr().unwrap();
    let mut buf = vec![0u8; 65536];
    let mut answered: HashMap<String, Vec<u8>> = HashMap::new();
    let mut byes: BinaryHeap<Reverse<DueBye>> = BinaryHeap::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        while let Some(Reverse((at, _, _, _))) = byes.peek() {
            if *at > now() {
                break;
            }
            let Reverse((_, _, to, bye)) = byes.pop().unwrap();
            let _ = sock.send_to(&bye, to).await;
        }
        let got = tokio::time::timeout(Duration::from_millis(5), sock.recv_from(&mut buf)).await;
        let Ok(Ok((len, from))) = got else { continue };
        let Ok(m) = parse_datagram(&buf[..len]) else {
            continue;
        };
        match m.method().map(|x| x.as_str()) {
            Some("INVITE") if m.to_tag.is_none() => {
                if let Some(ok) = answered.get(&m.call_id) {
                    let _ = sock.send_to(ok, from).await;
                    continue;
                }
                n += 1;
                let tag = format!("p{n}");
                let sdp = super::sdp("phone", SocketAddr::from(([127, 0, 0, 1], 9)));
                let ok = response(&m, 200, "OK", &tag, Some(&sdp), me);
                let _ = sock.send_to(&ok, from).await;
                answered.insert(m.call_id.clone(), ok);
                let user = m.uri_user.clone().unwrap_or_default();
                let local = format!("{};tag={tag}", m.to);
                if user.starts_with("0109") {
                    // The issuer accepts at once: digit 1 as SIP INFO in the new dialog.
                    let body = "Signal=1\r\nDuration=100\r\n";
                    let info = format!(
                        "INFO sip:freecall@{from} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKinfo{n}\r\nMax-Forwards: 70\r\n\
From: {local}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 2 INFO\r\nContent-Type: application/dtmf-relay\r\n\
Content-Length: {}\r\n\r\n{body}",
                        m.from,
                        m.call_id,
                        body.len()
                    );
                    let _ = sock.send_to(info.as_bytes(), from).await;
                } else {
                    if let Ok(mut s) = seen.lock()
                        && let Some(t0) = s.requested.get(&user).copied()
                    {
                        s.bridged_us
                            .push(now().saturating_duration_since(t0).as_micros() as u64);
                    }
                    let bye = format!(
                        "BYE sip:freecall@{from} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKbye{n}\r\nMax-Forwards: 70\r\n\
From: {local}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n",
                        m.from, m.call_id
                    );
                    byes.push(Reverse((
                        now() + hold,
                        m.call_id.clone(),
                        from,
                        bye.into_bytes(),
                    )));
                }
            }
            Some("BYE") => {
                let ok = response(&m, 200, "OK", "x", None, me);
                let _ = sock.send_to(&ok, from).await;
                answered.remove(&m.call_id);
            }
            Some("ACK") | Some(_) => {}
            None if m.cseq_method.as_str() == "BYE" && m.status() == Some(200) => {
                if answered.remove(&m.call_id).is_some()
                    && let Ok(mut s) = seen.lock()
                {
                    s.completed += 1;
                }
            }
            None => {}
        }
    }
}

/// `POST path` with a JSON body; the status (0 when the connection failed).
async fn post(api: SocketAddr, path: &str, body: &str) -> u16 {
    let Ok(Ok(mut s)) =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(api)).await
    else {
        return 0;
    };
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\nContent-Type: application/json\r\n\
Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return 0;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

pub async fn callback_bench(hold: Duration) {
    let rate = env_or("FREECALL_BENCH_CALLBACK_RATE", 200);
    let secs = env_or("FREECALL_BENCH_CALLBACK_SECS", 10);
    let total = rate * secs;
    let dir = std::env::temp_dir().join(format!("freecall-bench-cb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // The inbound money path at the same rate, on the same kind of store.
    let inbound_db = dir.join("inbound.db").display().to_string();
    let max_calls = rate * (hold.as_secs() + 5) * 2 + 200;
    let mut inbound = money_run(&inbound_db, rate, total, hold, max_calls, &[]).await;

    let url = dir.join("callbacks.db").display().to_string();
    let store = freecall::store::Store::open(&url, 4).expect("bench store");
    store.migrate().expect("migrate");
    let cards = 100u64;
    for i in 0..cards {
        let issuer = store
            .create_issuer(
                &freecall::store::cards::NewIssuer {
                    login: format!("issuer{i}"),
                    password_hash: "-".into(),
                    name: format!("Issuer {i}"),
                    company: String::new(),
                },
                1_000_000_000,
            )
            .unwrap();
        store
            .create_card(&freecall::store::cards::NewCard {
                issuer_id: issuer.id,
                language: "en".into(),
                name: format!("Issuer {i}"),
                title: String::new(),
                company: String::new(),
                text: String::new(),
                image_url: String::new(),
                video_url: String::new(),
                design: String::new(),
                phones: format!(r#"[{{"kind":"mobile","number":"0109{i:07}","callback":true}}]"#),
                quota: 1_000_000,
                callback_countries: String::new(),
            })
            .unwrap();
    }
    let sock = Arc::new(udp("127.0.0.1:0"));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let phones_task = tokio::spawn(phones(sock.clone(), hold, seen.clone(), stop.clone()));
    let api_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api: SocketAddr = format!("127.0.0.1:{api_port}").parse().unwrap();
    let listen = api.to_string();
    // The shipped prompts: the issuer hears the announcement, as in production.
    let prompts = format!("prompts_dir = \"{}/prompts\"", env!("CARGO_MANIFEST_DIR"));
    let switch = Switch::start_with(
        sock.local_addr().unwrap(),
        max_calls,
        Some(&url),
        "",
        &prompts,
        &[
            ("FREECALL__API__LISTEN", listen.as_str()),
            // The bench is one client at the rate under test: the API's own fences off.
            ("FREECALL__API__REQUESTS_PER_ADDRESS", "0"),
            ("FREECALL__API__MAX_CONCURRENT_REQUESTS", "0"),
            ("FREECALL__CALLBACKS__PER_ADDRESS_PER_MINUTE", "0"),
            ("FREECALL__CALLBACKS__PER_CARD_CONCURRENT", "0"),
            ("FREECALL__CALLBACKS__PER_CARD_DAILY", "0"),
            ("FREECALL__CALLBACKS__PER_NUMBER_DAILY", "0"),
            ("FREECALL__CALLBACKS__PER_ISSUER_DAILY", "0"),
        ],
    );
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(api).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cpu0 = switch.cpu_seconds();
    let start = now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        // Seoul landlines 02-3000-0000 onwards, one per request.
        let visitor = format!("02{}", 30_000_000 + i);
        if let Ok(mut s) = seen.lock() {
            s.requested.insert(visitor.clone(), now());
        }
        let (seen, card) = (seen.clone(), i % cards + 1);
        tasks.push(tokio::spawn(async move {
            let body = format!(r#"{{"number":"{visitor}"}}"#);
            let status = post(api, &format!("/v1/cards/{card}/callbacks"), &body).await;
            if let Ok(mut s) = seen.lock() {
                match status {
                    202 => {}
                    0 => s.http_failed += 1,
                    _ => s.refused += 1,
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    // Bounded wait for the last calls to end.
    let deadline = now() + hold + Duration::from_secs(20);
    while now() < deadline {
        let done = seen
            .lock()
            .map(|s| s.completed + s.refused + s.http_failed)
            .unwrap_or(0);
        if done >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = now().saturating_duration_since(start);
    for _ in 0..100 {
        if store.open_reservations().map(|n| n == 0).unwrap_or(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cpu = switch.cpu_seconds() - cpu0;
    drop(switch);
    stop.store(true, Ordering::Relaxed);
    let _ = phones_task.await;
    let mut s = seen
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .unwrap_or_default();
    let open = store.open_reservations().unwrap_or(-1);
    let problems = store.audit().map(|p| p.len()).unwrap_or(usize::MAX);
    let records = store
        .count_cdrs(&freecall::store::cdrs::CdrQuery {
            limit: 1,
            ..Default::default()
        })
        .unwrap_or(-1);
    let cbps = s.completed as f64 / (elapsed.as_secs_f64() - hold.as_secs_f64()).max(0.001);
    let inbound_cps = calls_per_sec(&inbound.r, hold);
    let (p50, p99) = (
        percentile(&mut s.bridged_us, 0.5),
        percentile(&mut s.bridged_us, 0.99),
    );
    let (ip50, ip99) = (
        percentile(&mut inbound.r.latencies_us, 0.5),
        percentile(&mut inbound.r.latencies_us, 0.99),
    );
    println!(
        "\n== call-backs: {rate} requests/s offered for {secs} s over REST, held {} ms; issuer accepts at once (INFO 1), visitor hangs up",
        hold.as_millis()
    );
    println!(
        "{:<24}{:>10}{:>10}{:>9}{:>11}{:>10}{:>10}{:>11}",
        "", "offered", "completed", "refused", "per sec", "p50 ms", "p99 ms", "switch s"
    );
    println!(
        "{:<24}{:>10}{:>10}{:>9}{:>11.1}{:>10.2}{:>10.2}{:>11.2}",
        "call-backs (2 legs)",
        total,
        s.completed,
        s.refused + s.http_failed,
        cbps,
        p50,
        p99,
        cpu
    );
    println!(
        "{:<24}{:>10}{:>10}{:>9}{:>11.1}{:>10.2}{:>10.2}{:>11.2}",
        "inbound member calls",
        inbound.r.attempted,
        inbound.r.completed,
        inbound.r.failed,
        inbound_cps,
        ip50,
        ip99,
        inbound.cpu
    );
    println!(
        "call-backs/s vs inbound calls/s = {:.3}; setup = request → visitor answered (call-backs), INVITE → 200 (inbound); \
{:.0} µs switch CPU per call-back; records {records}, open reservations {open}, ledgers that do not add up {problems}",
        cbps / inbound_cps,
        1e6 * cpu / s.completed.max(1) as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
}
