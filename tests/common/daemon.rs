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
    assert!(
        answers_options(sip, || false),
        "the switch did not answer OPTIONS on {sip}"
    );
}

impl Daemon {
    /// Start a daemon on a free SIP port: `conf(port)` is its configuration file. A port
    /// found free can be taken by another test before the daemon binds it; the daemon
    /// then exits at once, and another port is tried (three in all). The daemon and its
    /// SIP address, once it answers OPTIONS.
    pub fn spawn_ready(
        conf: impl Fn(u16) -> String,
        env: &[(&str, String)],
    ) -> (Daemon, SocketAddr) {
        for _ in 0..3 {
            let port = free_port();
            let mut d = Daemon::spawn(&conf(port), env);
            let sip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            if answers_options(sip, || matches!(d.0.try_wait(), Ok(Some(_)))) {
                return (d, sip);
            }
            assert!(
                matches!(d.0.try_wait(), Ok(Some(_))),
                "the switch did not answer OPTIONS on {sip}"
            );
        }
        panic!("the switch could not start on three free ports");
    }
}

/// Poll `sip` with OPTIONS until it answers 200 (true), `gone()` says the process ended, or
/// 15 s have passed (false).
fn answers_options(sip: SocketAddr, mut gone: impl FnMut() -> bool) -> bool {
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
            return true;
        }
        if gone() {
            return false;
        }
    }
    false
}

/// Wait until the REST API accepts connections (bounded: 15 s): the switch answers SIP a
/// moment before its HTTP listeners are bound.
pub fn wait_api(api: SocketAddr) {
    for _ in 0..150 {
        if std::net::TcpStream::connect_timeout(&api, Duration::from_millis(100)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the API did not listen on {api}");
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

/// Run the independent client's call test (`tests/interop/pjsua_call.py`, pjsua2) with
/// `args`; fails the test unless pjsua2 is installed and the call passed. Its JSON report.
pub fn pjsua_call(args: &[&str]) -> serde_json::Value {
    let probe = Command::new("python3")
        .args(["-c", "import pjsua2"])
        .status();
    assert!(
        matches!(probe, Ok(s) if s.success()),
        "pjsua2 is missing: install it with `pip install pjsua2-python` (.ci/run does)"
    );
    let out = Command::new("python3")
        .arg("tests/interop/pjsua_call.py")
        .args(args)
        .current_dir(ROOT)
        .output()
        .expect("run pjsua2");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pjsua2 call failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(report["ok"], serde_json::Value::Bool(true), "{report}");
    report
}

/// `freecall apikey create` with `scope` for the database at `db`; the key.
pub fn api_key(conf: &str, db: &str, scope: &str, name: &str) -> String {
    let out = Command::new(BIN)
        .args([
            "apikey", "create", "--config", conf, "--scope", scope, "--name", name,
        ])
        .env("FREECALL__DATABASE__URL", db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The shipped `conf/freecall.toml` with a test's ports: SIP on `sip`, the trunk `pstn` at
/// `trunk`, the API on `api`, RTP on `media_min` and the 999 ports above; then each
/// (from, to) of `replace`, every one of which must match.
pub fn shipped_config(
    sip: u16,
    trunk: &str,
    api: u16,
    media_min: u16,
    replace: &[(&str, String)],
) -> String {
    let shipped = std::fs::read_to_string(format!("{ROOT}/conf/freecall.toml")).unwrap();
    let mut conf = shipped
        .replace(
            "listen = \"127.0.0.1:5060\"",
            &format!("listen = \"127.0.0.1:{sip}\""),
        )
        .replace(
            "address = \"127.0.0.1:5080\"",
            &format!("address = \"{trunk}\""),
        )
        .replace(
            "listen = \"127.0.0.1:8080\"",
            &format!("listen = \"127.0.0.1:{api}\""),
        )
        .replace("port_min = 20000", &format!("port_min = {media_min}"))
        .replace(
            "port_max = 29999",
            &format!("port_max = {}", media_min + 999),
        );
    for (from, to) in replace {
        assert!(
            conf.contains(from),
            "the shipped configuration has no '{from}'"
        );
        conf = conf.replace(from, to);
    }
    conf
}

/// A node's configuration file in `dir`: SIP on `port`, RTP from `media` (400 ports), every
/// number to the trunk at `trunk`, calls from 127.0.0.3 trusted (charged by header),
/// heartbeats every second; `billing_extra` lines are added to `[billing]`.
#[allow(clippy::too_many_arguments)]
pub fn node_config(
    dir: &std::path::Path,
    name: &str,
    port: u16,
    media: u16,
    trunk: SocketAddr,
    db: &str,
    node: &str,
    billing_extra: &str,
) -> String {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
[sip]
listen = "127.0.0.1:{port}"
shutdown_grace_secs = 1
[media]
address = "127.0.0.1"
port_min = {media}
port_max = {media_max}
[[peers]]
name = "proxy"
address = "127.0.0.3"
billing = "header"
[[trunks]]
name = "pstn"
address = "{trunk}"
[[routes]]
prefix = ""
trunks = ["pstn"]
[database]
url = "{db}"
[billing]
node_id = "{node}"
heartbeat_secs = 1
max_call_secs = 60
nonce_secret = "shared by the nodes"
{billing_extra}
[[tariffs]]
account = "mileage"
destination = "mobile"
per_minute = 60
increment = "1/1"
[api]
listen = "off"
"#,
            media_max = media + 398
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// A fresh folder for one test's files.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("freecall-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A member who calls with SIP digest (`login`, password "pw", realm "freecall") and
/// `balance` points: the account's id.
pub fn sip_member(store: &freecall::store::Store, login: &str, balance: i64) -> i64 {
    sip_member_with(store, login, "pw", balance)
}

/// A member `login` whose SIP password is `password`, with `balance` points: its account.
pub fn sip_member_with(
    store: &freecall::store::Store,
    login: &str,
    password: &str,
    balance: i64,
) -> i64 {
    store
        .create_member(
            &freecall::store::shop::NewMember {
                login: login.into(),
                password_hash: "x".into(),
                name: "Test Member".into(),
                address: "".into(),
                job: "".into(),
                phone: "".into(),
                email: "".into(),
                sip_ha1: freecall::auth::ha1(login, "freecall", password),
            },
            balance,
        )
        .unwrap()
        .account_id
}

/// `login`'s call to a mobile number sent to `via` (a node, or a dispatcher in front):
/// challenged, answered with the password, connected and ACKed. The leg, with the route
/// set the answer named.
pub async fn digest_call(
    caller: &freecall_testkit::Phone,
    via: SocketAddr,
    login: &str,
    wait: Duration,
) -> freecall_testkit::Leg {
    use freecall_testkit::Phone;
    let sdp = caller.sdp("sendrecv");
    let (invite, mut leg) = caller.invite(via, "01012345678", &sdp);
    caller.send(via, &invite).await;
    let challenge = caller.expect_status(&[407], wait).await;
    caller
        .send(via, &caller.ack_failure(&leg, &challenge))
        .await;
    caller
        .send(
            via,
            &caller.invite_with_credentials(&mut leg, &challenge, &sdp, login, "pw"),
        )
        .await;
    let ok = expect_answer(caller, &leg.call_id, "INVITE", &[200], wait).await;
    Phone::update_leg(&mut leg, &ok);
    caller.send(via, &caller.ack(&leg, leg.cseq)).await;
    leg
}

/// The final answer (one of `codes`) to this phone's `method` in call `call_id`; anything
/// else that arrives meanwhile (a late answer of an earlier call) is passed over.
/// Panics after `wait`.
pub async fn expect_answer(
    phone: &freecall_testkit::Phone,
    call_id: &str,
    method: &str,
    codes: &[u16],
    wait: Duration,
) -> freecall::sip::Message {
    let clock = freecall::clock::Clock::system();
    let deadline = clock.now() + wait;
    loop {
        let left = deadline.saturating_duration_since(clock.now());
        match phone.recv(left).await {
            Some((m, _))
                if m.call_id == call_id
                    && m.cseq_method.as_str() == method
                    && m.status().is_some_and(|c| codes.contains(&c)) =>
            {
                return m;
            }
            Some((m, _)) if m.call_id == call_id && m.status().is_some_and(|c| c >= 300) => {
                panic!(
                    "{method} in {call_id}: expected {codes:?}, got {:?}",
                    m.status()
                )
            }
            Some(_) => continue,
            None => panic!("{method} in {call_id}: no {codes:?} within {wait:?}"),
        }
    }
}

/// A daemon on the shipped configuration (with `replace` applied, see `shipped_config`)
/// and the REST API on, its database in `dir` with an admin key made for it.
pub struct Shipped {
    pub daemon: Daemon,
    pub sip: SocketAddr,
    pub api: SocketAddr,
    /// Where its trunk `pstn` is to answer.
    pub trunk_port: u16,
    pub key: String,
}

pub fn shipped_with_api(
    dir: &std::path::Path,
    media_min: u16,
    replace: &[(&str, String)],
) -> Shipped {
    let (sip_port, trunk_port, api_port) = (free_port(), free_port(), free_port());
    let db = dir.join("freecall.db").display().to_string();
    let conf = shipped_config(
        sip_port,
        &format!("127.0.0.1:{trunk_port}"),
        api_port,
        media_min,
        replace,
    );
    let conf_path = dir.join("freecall.toml");
    std::fs::write(&conf_path, conf).unwrap();
    let conf_path = conf_path.display().to_string();
    let env = [
        ("FREECALL__DATABASE__URL", db.clone()),
        ("FREECALL__API__LISTEN", format!("127.0.0.1:{api_port}")),
    ];
    let key = api_key(&conf_path, &db, "admin", "shop");
    let daemon = Daemon::spawn(&conf_path, &env);
    let sip: SocketAddr = format!("127.0.0.1:{sip_port}").parse().unwrap();
    wait_ready(sip);
    let api: SocketAddr = format!("127.0.0.1:{api_port}").parse().unwrap();
    wait_api(api);
    Shipped {
        daemon,
        sip,
        api,
        trunk_port,
        key,
    }
}

/// Whether this is the run of test `name` inside a private network namespace (its
/// messages name addresses of this host; nothing can leave the namespace). If it is not,
/// the test binary runs that one test again under `unshare -n` with loopback up and `flag`
/// set, and fails if it failed; the caller then returns.
pub fn inside_private_netns(name: &str, flag: &str) -> bool {
    if std::env::var(flag).is_ok() {
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("unshare")
        .args([
            "-n",
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ])
        .arg(&exe)
        .args([name, "--exact", "--nocapture"])
        .env(flag, "1")
        .status()
        .expect("unshare (util-linux) runs the test in a private network namespace");
    assert!(status.success(), "the test inside the namespace failed");
    false
}

/// The middle of a test's configuration file: every number to the trunk `pstn` at
/// `trunk`, the database at `db`, members' realm "freecall", mileage at 60 a minute to
/// landlines.
pub fn pstn_and_money(trunk: &str, db: &str) -> String {
    format!(
        r#"[[trunks]]
name = "pstn"
address = "{trunk}"
[[routes]]
prefix = ""
trunks = ["pstn"]
[database]
url = "{db}"
[billing]
realm = "freecall"
[[tariffs]]
account = "mileage"
destination = "landline"
per_minute = 60
"#
    )
}
