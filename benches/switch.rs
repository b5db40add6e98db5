//! The switch under test: a real `freecall` process with a bench configuration, and its CPU and memory.

use super::*;

pub(crate) struct Switch {
    pub(crate) child: Child,
    pub sip: SocketAddr,
    pub(crate) dir: std::path::PathBuf,
}

impl Switch {
    /// `money`: `None` runs the switch as a bare B2BUA for the 127.0.0.1 peer (unbilled);
    /// `Some(url)` runs the full money path on that database: callers must authenticate
    /// as members (digest), calls are classified, reserved and settled.
    /// `trunk_codecs`: the trunk's `codecs` list ("" for none); `media_extra`: lines for
    /// `[media]`.
    pub(crate) fn start(
        trunk: SocketAddr,
        max_calls: u64,
        money: Option<&str>,
        trunk_codecs: &str,
        media_extra: &str,
    ) -> Switch {
        Switch::start_with(trunk, max_calls, money, trunk_codecs, media_extra, &[])
    }

    /// `start`, with `env` (configuration overrides: `FREECALL__SECTION__KEY`).
    pub(crate) fn start_with(
        trunk: SocketAddr,
        max_calls: u64,
        money: Option<&str>,
        trunk_codecs: &str,
        media_extra: &str,
        env: &[(&str, &str)],
    ) -> Switch {
        let port = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap().port()
        };
        let dir = std::env::temp_dir().join(format!("freecall-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("bench.toml");
        let mut f = std::fs::File::create(&conf).unwrap();
        let (db, peers) = match money {
            Some(url) => (url.to_string(), String::new()),
            None => (
                dir.join("unused.db").display().to_string(),
                "[[peers]]\nname = \"bench\"\naddress = \"127.0.0.1\"\n".to_string(),
            ),
        };
        // The load generator is one address standing for thousands of phones: no flood
        // gate (limits.requests_per_address = 0).
        write!(
            f,
            "[sip]\nlisten = \"127.0.0.1:{port}\"\nmax_calls = {max_calls}\n\
[media]\naddress = \"127.0.0.1\"\nport_min = 20000\nport_max = 60000\nrtp_timeout_secs = 120\n{media_extra}\n\
{peers}\
[[trunks]]\nname = \"uas\"\naddress = \"{trunk}\"\ncodecs = [{trunk_codecs}]\n[[routes]]\nprefix = \"\"\ntrunks = [\"uas\"]\n\
[database]\nurl = \"{db}\"\n\
[billing]\nnode_id = \"bench\"\nnonce_secret = \"bench\"\nmax_call_secs = 600\n\
[[tariffs]]\naccount = \"mileage\"\ndestination = \"landline\"\nper_minute = 10\nincrement = \"1/1\"\n\
[[tariffs]]\naccount = \"guild\"\ndestination = \"landline\"\nper_minute = 30\nincrement = \"1/1\"\n\
[[tariffs]]\naccount = \"guild\"\ndestination = \"mobile\"\nper_minute = 120\nincrement = \"1/1\"\n\
[api]\nlisten = \"off\"\n\
[limits]\nrequests_per_address = 0\n\
[log]\nlevel = \"warn\"\n"
        )
        .unwrap();
        // FREECALL_BENCH_PIN: the switch on CPU 0 alone, the generator on the other (see main).
        let mut cmd = match pinned() {
            true => {
                let mut c = Command::new("taskset");
                c.args(["-c", "0", env!("CARGO_BIN_EXE_freecall")]);
                c
            }
            false => Command::new(env!("CARGO_BIN_EXE_freecall")),
        };
        let child = cmd
            .args(["serve", "--config", conf.to_str().unwrap()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start freecall");
        let sip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // From here on Drop ends the process, whatever happens.
        let switch = Switch { child, sip, dir };
        // Ready when it answers OPTIONS (bounded: 10 s).
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let me = probe.local_addr().unwrap();
        for i in 0..100 {
            let m = format!(
                "OPTIONS sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKb{i}\r\nMax-Forwards: 70\r\n\
From: <sip:b@127.0.0.1>;tag=b\r\nTo: <sip:{sip}>\r\nCall-ID: ready{i}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = probe.send_to(m.as_bytes(), sip);
            let mut buf = [0u8; 2048];
            if probe.recv_from(&mut buf).is_ok() {
                return switch;
            }
        }
        panic!("switch did not start");
    }

    /// CPU seconds (user + system) the switch has used so far.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        cpu_of(self.child.id())
    }

    /// Peak resident memory (VmHWM) in MiB.
    pub(crate) fn peak_mib(&self) -> f64 {
        peak_of(self.child.id())
    }
}

/// CPU seconds (user + system) process `pid` has used so far.
pub(crate) fn cpu_of(pid: u32) -> f64 {
    {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        // Fields 14 and 15 of /proc/PID/stat; index 11 and 12 after the command name.
        let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
            + fields
                .get(12)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
        ticks / 100.0
    }
}

/// Peak resident memory (VmHWM) of process `pid` in MiB.
pub(crate) fn peak_of(pid: u32) -> f64 {
    {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn own_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    (f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0))
        / 100.0
}
