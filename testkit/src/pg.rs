//! A throw-away PostgreSQL cluster for tests and benchmarks, started with the machine's
//! `initdb`/`pg_ctl` (PostgreSQL 15 from Debian) on a free loopback port.
//!
//! initdb refuses to run as root, so under root the cluster runs as the `postgres` system
//! user (via `runuser`). A watcher process stops the cluster when the process that
//! started it exits, even if it never runs destructors (tests keep the cluster in a static).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub struct PgCluster {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    as_postgres: bool,
}

fn pg_bin() -> PathBuf {
    for dir in [
        "/usr/lib/postgresql/15/bin",
        "/usr/lib/postgresql/16/bin",
        "/usr/lib/postgresql/17/bin",
    ] {
        if Path::new(dir).join("initdb").exists() {
            return PathBuf::from(dir);
        }
    }
    // On PATH, then.
    PathBuf::new()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl PgCluster {
    /// initdb + pg_ctl start; panics with the tool's output if either fails.
    pub fn start() -> PgCluster {
        let as_postgres = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let dir = std::env::temp_dir().join(format!(
            "freecall-pg-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cluster folder");
        let cluster = PgCluster {
            dir,
            port: free_port(),
            bin: pg_bin(),
            as_postgres,
        };
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&cluster.dir)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "chown of the cluster folder to postgres");
        }
        let data = cluster.dir.join("data");
        cluster.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        cluster.start_server();
        // Stop the cluster when this process goes away, however it goes.
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {prefix}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            prefix = if as_postgres {
                "runuser -u postgres -- "
            } else {
                ""
            },
            pg_ctl = cluster.bin.join("pg_ctl").display(),
            data = data.display(),
            dir = cluster.dir.display(),
        );
        let _ = Command::new("sh")
            .args(["-c", &stop])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        cluster
    }

    /// `pg_ctl start` (again, after `stop`).
    pub fn start_server(&self) {
        let data = self.dir.join("data");
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("{tool} could not be started ({e}); PostgreSQL's server binaries are needed")
            });
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Create a fresh database; its URL.
    pub fn create_db(&self, name: &str) -> String {
        self.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                name,
            ],
        );
        self.url(name)
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Stop now (a test that checks what happens when the database goes away).
    pub fn stop(&self) {
        let data = self.dir.join("data");
        self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
        );
    }
}
