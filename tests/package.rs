//! The Debian package, as an operator on a single box gets it: `cargo deb` builds it (from
//! the binary this test run built, so no second build), `dpkg -i` installs it, and the
//! daemon starts from the installed paths as the `freecall` user — configuration in
//! /etc/freecall (a conffile), prompts in /usr/share/freecall, its database created and
//! migrated under /var/lib/freecall — answers SIP and HTTP, and drains on SIGTERM.
//!
//! It installs a package on this machine, so it needs root and `cargo deb` (cargo-deb
//! 3.8, which the README's test command and `.ci/run` install), and `dpkg-shlibdeps`.

mod common;

use common::daemon::{BIN, Daemon, ROOT, free_port, temp_dir, wait_ready};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} could not be started: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// The package's configuration is the shipped one with the installed paths, and nothing
/// else: the two cannot drift apart.
#[test]
fn the_packaged_configuration_is_the_shipped_one_with_installed_paths() {
    let shipped = std::fs::read_to_string(format!("{ROOT}/conf/freecall.toml")).unwrap();
    let packaged = std::fs::read_to_string(format!("{ROOT}/debian/freecall.toml")).unwrap();
    let expected = [
        (
            "prompts_dir = \"prompts\"",
            "prompts_dir = \"/usr/share/freecall/prompts\"",
        ),
        (
            "recordings_dir = \"data/recordings\"",
            "recordings_dir = \"/var/lib/freecall/recordings\"",
        ),
        (
            "url = \"data/freecall.db\"",
            "url = \"/var/lib/freecall/freecall.db\"",
        ),
        (
            "spool_file = \"data/unsettled-calls.jsonl\"",
            "spool_file = \"/var/lib/freecall/unsettled-calls.jsonl\"",
        ),
        (
            "data_dir = \"data/web\"",
            "data_dir = \"/var/lib/freecall/web\"",
        ),
        (
            "file = \"data/cdr/calls.jsonl\"",
            "file = \"/var/lib/freecall/cdr/calls.jsonl\"",
        ),
    ]
    .iter()
    .fold(shipped.clone(), |text, (from, to)| {
        assert!(shipped.contains(from), "conf/freecall.toml has {from}");
        text.replacen(from, to, 1)
    });
    assert!(
        packaged == expected,
        "debian/freecall.toml must be conf/freecall.toml with the installed paths (see this test)"
    );
}

#[test]
fn the_debian_package_installs_and_the_daemon_runs_from_its_paths() {
    let uid = run(Command::new("id").arg("-u"));
    assert_eq!(uid.trim(), "0", "installing a package needs root");
    let version = Command::new("cargo").args(["deb", "--version"]).output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "cargo-deb is needed: cargo install --locked cargo-deb --version 3.8.0 (the README's test command does)"
    );

    let installed = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "freecall"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("installed"))
        .unwrap_or(false);
    assert!(
        !installed,
        "freecall is installed on this machine: this test installs, starts and purges its own package, so it runs only where none is"
    );
    let _purge = Purge;

    // The binary this run built, where cargo-deb looks for a release build.
    let dir = temp_dir("package");
    std::fs::create_dir_all(dir.join("release")).unwrap();
    let bin = dir.join("release/freecall");
    if std::fs::hard_link(BIN, &bin).is_err() {
        std::fs::copy(BIN, &bin).unwrap();
    }
    let deb = dir.join("freecall.deb");
    run(Command::new("cargo")
        .args(["deb", "--no-build", "--fast", "--output"])
        .arg(&deb)
        .env("CARGO_TARGET_DIR", &dir)
        .current_dir(ROOT));

    let info = run(Command::new("dpkg-deb").arg("--info").arg(&deb));
    let size = std::fs::metadata(&deb).unwrap().len();
    let depends = info
        .lines()
        .find(|l| l.trim_start().starts_with("Depends:"));
    eprintln!(
        "built {} ({:.1} MB); {}",
        deb.display(),
        size as f64 / 1e6,
        depends.unwrap_or("no Depends").trim()
    );
    for field in [
        "Package: freecall",
        "Section: net",
        "libopus0",
        "libsqlite3-0",
    ] {
        assert!(info.contains(field), "the package says {field}:\n{info}");
    }
    run(Command::new("dpkg")
        .args(["-i", "--force-confnew"])
        .arg(&deb)
        .env("DEBIAN_FRONTEND", "noninteractive"));

    if std::path::Path::new("/run/systemd/system").exists() {
        // A machine run by systemd started the unit: the test starts its own.
        let _ = Command::new("systemctl")
            .args(["stop", "freecall"])
            .status();
    }
    let files = run(Command::new("dpkg").args(["-L", "freecall"]));
    for path in [
        "/usr/bin/freecall",
        "/etc/freecall/freecall.toml",
        "/usr/share/freecall/prompts/callback-request.wav",
        "/usr/share/freecall/prompts/callback-request.ko.wav",
        "/usr/lib/sysusers.d/freecall.conf",
        "/freecall.service",
        "/usr/share/doc/freecall/kamailio/kamailio.cfg",
    ] {
        assert!(
            files.contains(path),
            "the package installs {path}:\n{files}"
        );
    }
    let conffiles = run(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "freecall"]));
    assert!(
        conffiles.contains("/etc/freecall/freecall.toml"),
        "the configuration is a conffile (edits survive upgrades): {conffiles}"
    );
    let user = run(Command::new("getent").args(["passwd", "freecall"]));
    assert!(user.contains("/var/lib/freecall"), "{user}");
    let owner = run(Command::new("stat").args(["-c", "%U %a", "/var/lib/freecall"]));
    assert_eq!(owner.trim(), "freecall 750");
    let conf = run(Command::new("stat").args(["-c", "%G %a", "/etc/freecall/freecall.toml"]));
    assert_eq!(conf.trim(), "freecall 640", "readable by the service only");

    // The installed binary checks the installed configuration, as ExecStartPre does.
    run(Command::new("/usr/bin/freecall").args([
        "serve",
        "--config",
        "/etc/freecall/freecall.toml",
        "--check-config",
    ]));

    // Started as the unit starts it (its user, its working directory), on free ports.
    let sip: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let media = 47000 + (std::process::id() % 20) as u16 * 100;
    let child = Command::new("setpriv")
        .args([
            "--reuid=freecall",
            "--regid=freecall",
            "--init-groups",
            "/usr/bin/freecall",
            "serve",
            "--config",
            "/etc/freecall/freecall.toml",
        ])
        .current_dir("/var/lib/freecall")
        .env("RUST_LOG", "info")
        .env("FREECALL__SIP__LISTEN", sip.to_string())
        .env("FREECALL__API__LISTEN", api.to_string())
        .env("FREECALL__MEDIA__PORT_MIN", media.to_string())
        .env("FREECALL__MEDIA__PORT_MAX", (media + 99).to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the installed freecall");
    let mut daemon = Daemon(child);
    wait_ready(sip);
    let mut health = None;
    for _ in 0..50 {
        health = std::net::TcpStream::connect(api)
            .is_ok()
            .then(|| common::http::request(api, "GET", "/readyz", &[], None))
            .filter(|r| r.status == 200)
            .map(|r| r.text());
        if health.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let health = health.expect("the installed daemon is ready: its database answers");
    assert!(health.contains("\"ready\""), "{health}");
    let page = common::http::request(api, "GET", "/login", &[], None);
    assert_eq!(
        page.status,
        200,
        "the web pages are served from the binary: {}",
        page.text()
    );
    let db = run(Command::new("stat").args(["-c", "%U", "/var/lib/freecall/freecall.db"]));
    assert_eq!(
        db.trim(),
        "freecall",
        "the database was created (and migrated) by the service user"
    );

    daemon.signal("-TERM");
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(30)),
        Some(0),
        "SIGTERM drains and stops cleanly"
    );
    drop(daemon);
    drop(_purge);
    assert!(!std::path::Path::new("/usr/bin/freecall").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whatever happens, the test's package leaves the machine with the test: purged, with
/// the data it made.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "freecall"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all("/var/lib/freecall");
    }
}
