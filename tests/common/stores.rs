//! The two stores every money test runs against: an SQLite file and a database in a
//! throw-away PostgreSQL cluster (one cluster per test binary, one database per test).
#![allow(dead_code)]

use freecall::store::Store;
use freecall_testkit::pg::PgCluster;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
static SEQ: AtomicU32 = AtomicU32::new(0);

pub fn cluster() -> &'static PgCluster {
    CLUSTER.get_or_init(PgCluster::start)
}

/// A fresh SQLite database URL (a file under the temp folder).
pub fn sqlite_url() -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("freecall-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("freecall.db").display().to_string()
}

/// A fresh PostgreSQL database URL.
pub fn pg_url() -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    cluster().create_db(&format!("t{}_{n}", std::process::id()))
}

pub fn open(url: &str) -> Store {
    let store = Store::open(url, 8).expect("open the store");
    store.migrate().expect("migrate");
    store
}

/// Run one test body against both backends, as two #[test]s.
#[macro_export]
macro_rules! on_both_stores {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn sqlite() {
                let url = $crate::common::stores::sqlite_url();
                ($body)($crate::common::stores::open(&url), url)
            }
            #[test]
            fn postgres() {
                let url = $crate::common::stores::pg_url();
                ($body)($crate::common::stores::open(&url), url)
            }
        }
    };
}

/// Every call record in `store` (a test's few), oldest first.
pub fn records(store: &Store) -> Vec<freecall::cdr::CallRecord> {
    store
        .cdrs(&freecall::store::cdrs::CdrQuery {
            limit: 1000,
            ..Default::default()
        })
        .expect("read call records")
}

/// The record of call `id`, once it is stored (bounded: 5 s), or `None`.
pub async fn wait_record(store: &Store, id: &str) -> Option<freecall::cdr::CallRecord> {
    for _ in 0..50 {
        if let Some(r) = records(store).into_iter().find(|r| r.call_id == id) {
            return Some(r);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}
