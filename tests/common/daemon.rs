//! The real `freecall` binary, started and stopped by tests (only the processes a test
//! started are ever signalled).
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_freecall");
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

static DAEMONS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Ends the daemon we started (and only it) if a test fails half-way.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Daemon {
    pub fn spawn(config: &str, env: &[(&str, String)]) -> Daemon {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--config", config])
            .current_dir(ROOT)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // Each daemon gets its own database (and node name) unless the test says otherwise.
        let n = DAEMONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let db = std::env::temp_dir().join(format!(
            "freecall-daemon-{}-{n}/freecall.db",
            std::process::id()
        ));
        cmd.env("FREECALL__DATABASE__URL", db.display().to_string())
            .env("FREECALL__BILLING__NODE_ID", format!("daemon-test-{n}"))
            .env("FREECALL__API__LISTEN", "off");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon(cmd.spawn().expect("start freecall"))
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "signal {sig}");
    }

    /// Wait (bounded) for the process to exit; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let steps = limit.as_millis() / 50;
        for _ in 0..steps {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// Poll with OPTIONS until the switch answers (bounded: 15 s).
pub fn wait_ready(sip: SocketAddr) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let me = sock.local_addr().unwrap();
    for i in 0..75 {
        let options = format!(
            "OPTIONS sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKready{i}\r\nMax-Forwards: 70\r\n\
From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:{sip}>\r\nCall-ID: ready{i}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = sock.send_to(options.as_bytes(), sip);
        let mut buf = [0u8; 4096];
        if let Ok((n, _)) = sock.recv_from(&mut buf)
            && buf[..n].starts_with(b"SIP/2.0 200")
        {
            return;
        }
    }
    panic!("the switch did not answer OPTIONS on {sip}");
}

pub fn free_port() -> u16 {
    // UDP and TCP must both be free: bind both and release them.
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
