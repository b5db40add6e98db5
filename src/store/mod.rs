//! The store: accounts, ledger, shop, cards, reservations, API keys — in SQLite (the
//! embedded default, one file in WAL mode) or PostgreSQL (shared by several nodes).
//!
//! Every operation is written once and compiled for both backends (`on_conn!`/`in_tx!`
//! expand the same diesel code for each connection type). Calls are blocking; async code
//! goes through `Store::run`, which moves the work to tokio's blocking pool, bounded by the
//! connection pool's size, so database work never runs on a SIP or RTP task.
//!
//! Files: `accounts.rs` (accounts, ledger, credits, idempotency, API keys), `shop.rs`
//! (members, products, purchases), `cards.rs` (issuers, cards), `calls.rs` (reservation;
//! answer, settlement, heartbeat and recovery in `settle.rs`; its types in `reservation.rs`, shared with
//! `pg_fast.rs`, PostgreSQL's server-side functions, a leaf), `placed.rs` (reservations for the calls the
//! switch places: both legs at once, with the daily limits), `registrar.rs` (where members'
//! softphones are registered), `cdrs.rs` (call records), `phonebook.rs` (members' phone
//! books), `bookings.rs` (calls booked for a set time: claim, dial once, retry).

pub mod accounts;
pub mod bookings;
pub mod calls;
pub mod cards;
pub mod cdrs;
pub mod greetings;
pub mod nodes;
mod pg_fast;
pub mod phonebook;
pub mod placed;
pub mod rate_deck;
pub mod recordings;
pub mod registrar;
pub mod reservation;
pub mod schema;
pub mod settle;
pub mod shop;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool as R2d2Pool};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::sync::Arc;
use std::time::Duration;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("sql/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("sql/postgres");

pub(crate) enum Pool {
    Sqlite(R2d2Pool<ConnectionManager<SqliteConnection>>),
    Pg(R2d2Pool<ConnectionManager<PgConnection>>),
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Arc<Pool>,
    /// Bounds blocking tasks to the pool's size so a burst of calls queues here instead of
    /// parking hundreds of threads on the pool.
    permits: Arc<tokio::sync::Semaphore>,
    /// SQLite has one writer at a time; queueing writers here, in the process, is far
    /// cheaper than SQLite's busy handler, which sleeps and polls.
    pub(crate) sqlite_writer: Arc<std::sync::Mutex<()>>,
    /// The switch's clock: every time the store writes (ledger, reservations, heartbeats,
    /// bookings) is read from it.
    clock: crate::clock::Clock,
}

/// What went wrong, and whether retrying could help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid: {0}")]
    Invalid(String),
    /// The same Idempotency-Key was used with a different request.
    #[error("the Idempotency-Key was already used with a different request")]
    IdempotencyMismatch,
    /// The call may not go ahead (no money, no quota, destination not allowed…).
    #[error("{0}")]
    Refused(crate::billing::Refusal),
    /// The database cannot be reached or failed: retryable, nothing was written.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => StoreError::NotFound("row"),
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                StoreError::Conflict(info.message().to_string())
            }
            Error::DatabaseError(DatabaseErrorKind::CheckViolation, info) => {
                StoreError::Invalid(info.message().to_string())
            }
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

impl From<diesel::r2d2::PoolError> for StoreError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Run `$body` with `$c` bound to a pooled connection of whichever backend this is.
macro_rules! on_conn {
    ($store:expr, $c:ident => $body:expr) => {
        match &*$store.pool {
            $crate::store::Pool::Sqlite(p) => {
                let mut guard = p.get()?;
                let $c: &mut diesel::sqlite::SqliteConnection = &mut guard;
                $body
            }
            $crate::store::Pool::Pg(p) => {
                let mut guard = p.get()?;
                let $c: &mut diesel::pg::PgConnection = &mut guard;
                $body
            }
        }
    };
}

/// Run `$body` in a transaction. SQLite's is `BEGIN IMMEDIATE`: taking the write lock up
/// front means a read-then-write transaction never fails half-way on a lock upgrade.
macro_rules! in_tx {
    ($store:expr, $c:ident => $body:expr) => {
        match &*$store.pool {
            $crate::store::Pool::Sqlite(p) => {
                let mut guard = p.get()?;
                let _writer = $store
                    .sqlite_writer
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let conn: &mut diesel::sqlite::SqliteConnection = &mut guard;
                conn.immediate_transaction(|$c| $body)
            }
            $crate::store::Pool::Pg(p) => {
                let mut guard = p.get()?;
                let conn: &mut diesel::pg::PgConnection = &mut guard;
                conn.transaction(|$c| $body)
            }
        }
    };
}
pub(crate) use {in_tx, on_conn};

#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(
        &self,
        conn: &mut SqliteConnection,
    ) -> std::result::Result<(), diesel::r2d2::Error> {
        // busy_timeout first: every later statement (even switching to WAL) then waits
        // for a lock instead of failing with "database is locked".
        conn.batch_execute(
            "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

impl Store {
    /// Connect to `url`: `postgres://…` / `postgresql://…` for PostgreSQL, anything else is
    /// an SQLite file path (`sqlite://` prefix allowed); its folder is created.
    pub fn open(url: &str, pool_size: u32) -> Result<Store> {
        let pool_size = pool_size.max(1);
        // A database that is gone must refuse calls quickly, not after a long wait.
        let timeout = Duration::from_secs(3);
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // No test query on every checkout: a broken connection fails its statement,
            // is dropped by the pool, and the caller's retry (or refusal) handles it.
            let p = R2d2Pool::builder()
                .max_size(pool_size)
                .connection_timeout(timeout)
                .test_on_check_out(false)
                .build(ConnectionManager::<PgConnection>::new(url))?;
            Pool::Pg(p)
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            if let Some(dir) = std::path::Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Unavailable(format!("creating {}: {e}", dir.display()))
                })?;
            }
            // Switch the file to WAL once, alone: the pool opens its connections at the
            // same time, and a journal-mode change racing with them reports "locked".
            {
                use diesel::Connection;
                let mut c = SqliteConnection::establish(path)
                    .map_err(|e| StoreError::Unavailable(format!("{path}: {e}")))?;
                c.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL;")
                    .map_err(|e| StoreError::Unavailable(format!("{path}: {e}")))?;
            }
            let p = R2d2Pool::builder()
                .max_size(pool_size)
                .connection_timeout(timeout)
                .test_on_check_out(false)
                .connection_customizer(Box::new(SqlitePragmas))
                .build(ConnectionManager::<SqliteConnection>::new(path))?;
            Pool::Sqlite(p)
        };
        Ok(Store {
            pool: Arc::new(pool),
            permits: Arc::new(tokio::sync::Semaphore::new(pool_size as usize)),
            sqlite_writer: Arc::new(std::sync::Mutex::new(())),
            clock: crate::clock::Clock::system(),
        })
    }

    /// The same database, read with `clock` (a test's adjustable clock).
    pub fn with_clock(mut self, clock: crate::clock::Clock) -> Store {
        self.clock = clock;
        self
    }

    /// The switch's clock, for everything that holds the store.
    pub fn clock(&self) -> &crate::clock::Clock {
        &self.clock
    }

    pub fn backend(&self) -> &'static str {
        match &*self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Pg(_) => "postgres",
        }
    }

    /// Apply pending migrations; the names of those applied.
    pub fn migrate(&self) -> Result<Vec<String>> {
        let done = on_conn!(self, c => {
            let migrations = match self.backend() {
                "sqlite" => SQLITE_MIGRATIONS,
                _ => PG_MIGRATIONS,
            };
            match c.run_pending_migrations(migrations) {
                Ok(v) => v.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
                Err(e) => return Err(StoreError::Unavailable(format!("migrations: {e}"))),
            }
        });
        Ok(done)
    }

    /// Run blocking store work off the async tasks.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let _permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("store closed".into()))?;
        let store = self.clone();
        let started = crate::clock::Stopwatch::start();
        let result = tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?;
        metrics::histogram!("freecall_db_seconds").record(started.elapsed().as_secs_f64());
        result
    }
}

/// Held while this process acts as a node: a second process with the same node id would
/// settle the first one's live calls as if they had been left open by a crash.
pub enum NodeLock {
    /// A session-level advisory lock, held by its own connection.
    Pg(Box<PgConnection>),
    /// An exclusive lock on a file next to the database.
    File(std::fs::File),
}

impl Store {
    /// Take this node's lock, or say who holds it.
    pub fn lock_node(&self, url: &str, node: &str) -> Result<NodeLock> {
        match &*self.pool {
            Pool::Pg(_) => {
                use diesel::{Connection, RunQueryDsl};
                #[derive(diesel::QueryableByName)]
                struct Got {
                    #[diesel(sql_type = diesel::sql_types::Bool)]
                    locked: bool,
                }
                let mut c = PgConnection::establish(url)
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                let got: Got = diesel::sql_query(
                    "SELECT pg_try_advisory_lock(hashtext('freecall node ' || $1)) AS locked",
                )
                .bind::<diesel::sql_types::Text, _>(node)
                .get_result(&mut c)?;
                if !got.locked {
                    return Err(StoreError::Conflict(format!(
                        "node id '{node}' is in use by another running switch on this database"
                    )));
                }
                Ok(NodeLock::Pg(Box::new(c)))
            }
            Pool::Sqlite(_) => {
                let path = url.strip_prefix("sqlite://").unwrap_or(url);
                let safe: String = node
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let lock_path = format!("{path}.node-{safe}.lock");
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .map_err(|e| StoreError::Unavailable(format!("{lock_path}: {e}")))?;
                match f.try_lock() {
                    Ok(()) => Ok(NodeLock::File(f)),
                    Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Conflict(format!(
                        "node id '{node}' is in use by another running switch on this database"
                    ))),
                    Err(std::fs::TryLockError::Error(e)) => {
                        Err(StoreError::Unavailable(format!("{lock_path}: {e}")))
                    }
                }
            }
        }
    }
}
