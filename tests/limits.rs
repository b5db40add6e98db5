//! `[limits]` on a running switch over real sockets: a flood of TCP connections from one
//! address, connections that never say anything, a message with too many header fields and an oversized datagram are refused,
//! and each refusal shows in the metrics the NOC scrapes.

mod common;

use common::{WAIT, config_with, start};
use freecall_testkit::Phone;
use std::io::Read;
use std::time::Duration;

#[tokio::test]
async fn connections_headers_and_sizes_over_the_limits_are_refused_and_counted() {
    let metrics = freecall::telemetry::install().expect("the metrics recorder");
    let mut cfg = config_with("", "", "", "127.0.0.1");
    cfg.limits.max_tcp_per_address = 2;
    cfg.limits.max_headers = 20;
    cfg.limits.max_message_bytes = 1500;
    cfg.limits.tcp_first_message_secs = 1;
    let switch = start(&cfg).await;
    let sip = switch.sip_addr;

    // Two connections from 127.0.0.1 stay open; the third is closed at once.
    let (kept, third) = tokio::task::spawn_blocking(move || {
        let kept: Vec<std::net::TcpStream> = (0..2)
            .map(|_| std::net::TcpStream::connect(sip).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut third = std::net::TcpStream::connect(sip).unwrap();
        third.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = [0u8; 16];
        (kept, third.read(&mut buf))
    })
    .await
    .unwrap();
    let closed = match &third {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    };
    assert!(closed, "the third connection is closed at once: {third:?}");
    for c in &kept {
        c.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 16];
        let open =
            matches!((&*c).read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        assert!(open, "the first two stay open");
    }
    // They send nothing: a second on (limits.tcp_first_message_secs) both are closed.
    let silent = tokio::task::spawn_blocking(move || {
        kept.into_iter()
            .map(|c| {
                c.set_nonblocking(false).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = [0u8; 16];
                matches!((&c).read(&mut buf), Ok(0))
                    || matches!((&c).read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
            })
            .collect::<Vec<bool>>()
    })
    .await
    .unwrap();
    assert_eq!(silent, [true, true], "silent connections are closed");

    let phone = Phone::bind("flood").await;
    let padding: String = (0..25).map(|i| format!("X-Pad-{i}: {i}\r\n")).collect();
    let text = format!(
        "OPTIONS sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKpad;rport\r\nMax-Forwards: 70\r\n\
From: <sip:flood@127.0.0.1>;tag=f\r\nTo: <sip:{sip}>\r\nCall-ID: pad@flood\r\nCSeq: 1 OPTIONS\r\n{padding}Content-Length: 0\r\n\r\n",
        me = phone.addr
    );
    phone.send(sip, text.as_bytes()).await;
    let refused = phone.expect_status(&[400], WAIT).await;
    assert!(
        refused
            .header("Reason")
            .unwrap()
            .contains("too many header fields")
    );
    let big = text.replace(&padding, &format!("X-Big: {}\r\n", "a".repeat(2000)));
    phone.send(sip, big.as_bytes()).await;
    phone.expect_silence(Duration::from_millis(300)).await;
    // The switch still answers what is within the limits.
    assert_eq!(phone.options(sip).await.status(), Some(200));

    let text = metrics.render();
    for (limit, n) in [
        ("tcp_per_address", 1),
        ("tcp_first_message", 2),
        ("headers", 1),
        ("message_bytes", 1),
    ] {
        let line = format!("freecall_limit_refusals_total{{limit=\"{limit}\"}} {n}");
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
    switch.stop(freecall::driver::Stop::Now);
}
