//! The accounting service: carries the call layer's billing requests to the store, off
//! the signalling task, and brings the answers back.
//!
//! - `Authorize` → verify a member's digest proof against the stored HA1, then reserve
//!   (one conditional statement). Answered with a `BillingReply`.
//! - `Answered` → persist the answer time (what crash recovery bills from), in batches.
//! - `Settle` → debit and release once, in batches (group commit); retried with back-off
//!   while the database is away,
//!   so a short outage loses nothing (and what a long one leaves open, recovery settles).
//! - A heartbeat every `billing.heartbeat_secs` renews this node's lease: after a crash,
//!   open calls are billed up to the last one — by the node itself when it starts again, or
//!   by a survivor once the lease (`billing.node_lease_secs`) has run out: each heartbeat
//!   also takes over the calls of nodes whose lease ran out (`Store::take_over`). A node
//!   that finds itself fenced (taken over while it was cut off) says so (`fenced`) and
//!   takes no more calls.

use crate::auth;
use crate::billing::{
    Authorization, AuthorizeRequest, BillingReply, BillingRequest, Payer, Refusal, Settlement,
    Tariffs,
};
use crate::cdr::CallRecord;
use crate::store::calls::{Charge, ReserveItem, Settled};
use crate::store::{Store, StoreError};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

mod lease;
/// How long answer times and settlements wait to be written together.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Most settlements in one statement.
const MAX_BATCH: usize = 500;
/// Most authorizations in one batch.
const MAX_AUTH_BATCH: usize = 200;
/// At shutdown, how long the writer keeps trying a database that is away before it
/// spools the settlements to a file.
const SHUTDOWN_WRITE_LIMIT: Duration = Duration::from_secs(10);

/// What the accounting service needs; `tariffs` may be swapped at run time (reload).
#[derive(Clone)]
pub struct Accounting {
    pub store: Store,
    pub tariffs: Arc<RwLock<Arc<Tariffs>>>,
    pub node: String,
    pub heartbeat: Duration,
    /// How long after its last heartbeat a node counts as dead, its calls taken over.
    pub lease: Duration,
    /// This incarnation of the node (set by `recover`; its heartbeats carry it).
    epoch: Arc<AtomicI64>,
    /// Set, with the survivor's name, when this node has been fenced.
    fenced: Arc<tokio::sync::watch::Sender<Option<String>>>,
    /// A takeover pass is running (one at a time).
    taking_over: Arc<AtomicBool>,
    /// When this node last renewed its lease (the store's clock, ms), and whether any other
    /// node shares its store (someone who could take this node's calls over).
    renewed_ms: Arc<AtomicI64>,
    peers: Arc<AtomicBool>,
    /// The database is not renewing the lease: the last heartbeat failed, or the one in
    /// flight started at this time (ms) and has not come back (0: none in flight).
    beat_failed: Arc<AtomicBool>,
    beat_since_ms: Arc<AtomicI64>,
    /// Where settlements go when the service stops with the database away.
    pub spool: std::path::PathBuf,
    /// The JSON-lines export of this node's call records, and its size limit.
    pub cdr_file: Option<(std::path::PathBuf, u64)>,
}

impl Accounting {
    pub fn new(
        store: Store,
        tariffs: Tariffs,
        node: String,
        heartbeat: Duration,
        spool: std::path::PathBuf,
    ) -> Accounting {
        Accounting {
            store,
            tariffs: Arc::new(RwLock::new(Arc::new(tariffs))),
            node,
            heartbeat,
            lease: heartbeat * 4,
            epoch: Arc::new(AtomicI64::new(0)),
            fenced: Arc::new(tokio::sync::watch::channel(None).0),
            taking_over: Arc::new(AtomicBool::new(false)),
            renewed_ms: Arc::new(AtomicI64::new(0)),
            peers: Arc::new(AtomicBool::new(false)),
            beat_failed: Arc::new(AtomicBool::new(false)),
            beat_since_ms: Arc::new(AtomicI64::new(0)),
            spool,
            cdr_file: None,
        }
    }

    /// Count another node dead `lease` after its last heartbeat (at least two heartbeats).
    pub fn with_lease(mut self, lease: Duration) -> Accounting {
        self.lease = lease.max(self.heartbeat * 2);
        self
    }

    /// Changes to `Some(why)` when this node must stop carrying calls (and start again, as
    /// a new incarnation): another node has taken its calls over, or it has been cut off
    /// from the database so long that another node may be doing so.
    pub fn fenced(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.fenced.subscribe()
    }

    /// Also export this node's call records, as they are stored, to a JSON-lines file
    /// that rotates past `max_bytes` and at each new day.
    pub fn with_cdr_file(mut self, path: std::path::PathBuf, max_bytes: u64) -> Accounting {
        self.cdr_file = Some((path, max_bytes));
        self
    }

    /// The export: reads this node's records in the order they were stored and appends
    /// them to the file, remembering the last one exported next to it (`<file>.pos`), so
    /// a restart resumes where the last run stopped.
    async fn exporter(
        self,
        path: std::path::PathBuf,
        max_bytes: u64,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let pos_file = path.with_extension("pos");
        let mut after: i64 = std::fs::read_to_string(&pos_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        let file = Arc::new(std::sync::Mutex::new(crate::cdr::CdrFile::new(
            &path, max_bytes,
        )));
        loop {
            let stopping = *stop.borrow();
            let q = crate::store::cdrs::CdrQuery {
                after,
                node: Some(self.node.clone()),
                limit: 1000,
                ..Default::default()
            };
            let (f, pf) = (file.clone(), pos_file.clone());
            let done = self
                .store
                .run(move |s| {
                    let batch = s.cdrs(&q)?;
                    let Some(last) = batch.last().map(|r| r.id) else {
                        return Ok((0, after));
                    };
                    let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
                    if let Err(e) = f.append(&batch, s.clock().unix_ms()) {
                        warn!(error = %e, "call records not written to the file");
                        return Ok((0, after));
                    }
                    let _ = std::fs::write(&pf, last.to_string());
                    Ok((batch.len(), last))
                })
                .await;
            let more = match done {
                Ok((n, last)) => {
                    after = last;
                    n == 1000
                }
                Err(e) => {
                    warn!(error = %e, "call records not exported");
                    false
                }
            };
            if more {
                continue;
            }
            if stopping {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Replace the tariff table; calls already reserved keep the tariff they were priced at.
    /// The rate deck in force stays.
    pub fn set_tariffs(&self, tariffs: Tariffs) {
        if let Ok(mut t) = self.tariffs.write() {
            *t = Arc::new(tariffs.with_deck(t.deck().clone()));
        }
    }

    /// Price with the deck in the store if it is not the one in force (at start, and on
    /// each heartbeat: a deck loaded through another node reaches this one within one).
    pub async fn refresh_deck(&self) -> Result<bool, StoreError> {
        let have = self.tariffs().deck().version;
        let newest = self.store.run(|s| s.rate_deck_version()).await?;
        // Only a newer deck is taken (a database restored from an older backup does not
        // make every heartbeat read the whole deck again for nothing).
        if newest <= have {
            return Ok(false);
        }
        let deck = self.store.run(|s| s.rate_deck()).await?;
        info!(
            version = deck.version,
            rates = deck.len(),
            "rate deck in force"
        );
        crate::billing::put_deck(&self.tariffs, deck);
        Ok(true)
    }

    fn tariffs(&self) -> Arc<Tariffs> {
        self.tariffs
            .read()
            .map(|t| t.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Start the service: requests in, replies out. The task ends when the request
    /// channel closes and every settlement has been written (or spooled).
    pub fn spawn(
        self,
    ) -> (
        mpsc::UnboundedSender<BillingRequest>,
        mpsc::UnboundedReceiver<BillingReply>,
        tokio::task::JoinHandle<()>,
    ) {
        let (req_tx, mut req_rx) = mpsc::unbounded_channel::<BillingRequest>();
        let (reply_tx, reply_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut beat = tokio::time::interval(self.heartbeat);
            let watchdog = tokio::spawn(self.clone().lease_watchdog());
            let (write_tx, write_rx) = mpsc::unbounded_channel::<Write>();
            let writer = tokio::spawn(self.clone().writer(write_rx));
            let (auth_tx, auth_rx) = mpsc::unbounded_channel::<(u64, AuthorizeRequest)>();
            let authorizer = tokio::spawn(self.clone().authorizer(auth_rx, reply_tx.clone()));
            let (export_stop, export_rx) = tokio::sync::watch::channel(false);
            let exporter = self
                .cdr_file
                .clone()
                .map(|(path, max)| tokio::spawn(self.clone().exporter(path, max, export_rx)));
            loop {
                tokio::select! {
                    req = req_rx.recv() => match req {
                        Some(BillingRequest::Authorize { key, request }) => {
                            let _ = auth_tx.send((key, request));
                        }
                        Some(BillingRequest::Answered { reservation, answered_ms }) => {
                            let _ = write_tx.send(Write::Answered(reservation, answered_ms));
                        }
                        Some(BillingRequest::Settle(s)) => {
                            let _ = write_tx.send(Write::Settle(s));
                        }
                        Some(BillingRequest::Record(r)) => {
                            let _ = write_tx.send(Write::Record(r));
                        }
                        Some(BillingRequest::Recording(r)) => {
                            let (store, node) = (self.store.clone(), self.node.clone());
                            tokio::spawn(async move {
                                // Retried while the database is away; the file is kept
                                // whatever happens here.
                                for wait in [0u64, 1, 5, 30] {
                                    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                                    let (row, node) = (r.clone(), node.clone());
                                    if store.run(move |s| s.recording_started(&node, &row)).await.is_ok() {
                                        return;
                                    }
                                }
                                error!(call = %r.call_id, "the recording's row could not be written");
                            });
                        }
                        Some(BillingRequest::Register { key, request }) => {
                            let (me, reply) = (self.clone(), reply_tx.clone());
                            tokio::spawn(async move {
                                let result = me.register(*request).await;
                                let _ = reply.send(BillingReply::Registered { key, result });
                            });
                        }
                        Some(BillingRequest::Locate { key, user }) => {
                            let (store, reply) = (self.store.clone(), reply_tx.clone());
                            tokio::spawn(async move {
                                let bindings = store
                                    .run(move |s| s.bindings(&user, s.clock().unix_ms()))
                                    .await
                                    .ok();
                                let _ = reply.send(BillingReply::Located { key, bindings });
                            });
                        }
                        None => break,
                    },
                    _ = beat.tick() => {
                        let up = self.beat().await;
                        let _ = reply_tx.send(BillingReply::Store { up });
                        // Bounded, like the heartbeat: requests keep flowing.
                        if let Ok(Ok(held)) = tokio::time::timeout(self.heartbeat, self.store.run(|s| s.reserved_total())).await {
                            crate::telemetry::reserved_balance(held);
                        }
                        match tokio::time::timeout(self.heartbeat, self.refresh_deck()).await {
                            Ok(Err(e)) => warn!(error = %e, "rate deck not checked"),
                            Err(_) => warn!("rate deck not checked: no answer in time"),
                            Ok(Ok(_)) => {}
                        }
                    }
                }
            }
            watchdog.abort();
            // Shutting down: authorizations in flight finish, the writer writes (or spools)
            // what is queued, then a last heartbeat.
            drop(auth_tx);
            let _ = authorizer.await;
            drop(write_tx);
            let _ = writer.await;
            // Every record is stored: export the last ones to the file.
            let _ = export_stop.send(true);
            if let Some(e) = exporter {
                let _ = e.await;
            }
            let (node, epoch) = (self.node.clone(), self.epoch.load(Ordering::SeqCst));
            let _ = self
                .store
                .run(move |s| s.heartbeat(&node, epoch, s.clock().unix_ms()))
                .await;
            info!("accounting stopped");
        });
        (req_tx, reply_rx, task)
    }

    /// The one writer of answer times and settlements. They are written in batches (group
    /// commit: one transaction, on PostgreSQL one statement, per batch), sorted by
    /// reservation so concurrent writers can never deadlock, and only one batch is in
    /// flight. Nothing is dropped: while the database is away the queue is kept and retried
    /// with back-off; when the service stops with the database still away, settlements are
    /// spooled to a file that the next start applies first.
    async fn writer(self, mut rx: mpsc::UnboundedReceiver<Write>) {
        let mut q = Queues::default();
        let mut closed = false;
        let mut closed_at: Option<std::time::Instant> = None;
        let mut backoff = Duration::from_millis(100);
        loop {
            if !closed {
                if q.is_empty() {
                    match rx.recv().await {
                        Some(w) => q.push(w),
                        None => closed = true,
                    }
                }
                // Let a batch gather (bounded), then take everything queued.
                tokio::time::sleep(FLUSH_EVERY).await;
                loop {
                    match rx.try_recv() {
                        Ok(w) => q.push(w),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                }
            }
            if closed && q.is_empty() {
                return;
            }
            if closed && closed_at.is_none() {
                closed_at = Some(self.store.clock().now());
            }
            match self.write(&mut q).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    if let Some(at) = closed_at
                        && self.store.clock().now().duration_since(at) > SHUTDOWN_WRITE_LIMIT
                    {
                        self.spool_out(&q.settles, &q.records);
                        return;
                    }
                    warn!(settlements = q.settles.len(), answers = q.answers.len(), records = q.records.len(), error = %e, ?backoff, "database unavailable: writes postponed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(15));
                }
            }
        }
    }

    /// Write what is queued. Written items leave the queues; on `Err` (database
    /// unavailable) what could not be written stays queued.
    async fn write(&self, q: &mut Queues) -> Result<(), StoreError> {
        let Queues {
            answers,
            settles,
            records,
        } = q;
        if !records.is_empty() {
            let n = records.len().min(MAX_BATCH);
            let batch: Vec<CallRecord> = records[..n].to_vec();
            match self.store.run(move |s| s.record_calls(&batch)).await {
                Ok(()) => {
                    records.drain(..n);
                }
                Err(StoreError::Unavailable(e)) => return Err(StoreError::Unavailable(e)),
                Err(e) => {
                    error!(calls = n, error = %e, "call records refused");
                    records.drain(..n);
                }
            }
        }
        if !answers.is_empty() {
            answers.sort_unstable();
            let batch = answers.clone();
            match self.store.run(move |s| s.mark_answered_many(&batch)).await {
                Ok(()) => answers.clear(),
                Err(StoreError::Unavailable(e)) => return Err(StoreError::Unavailable(e)),
                Err(e) => {
                    error!(calls = answers.len(), error = %e, "answer times not written");
                    answers.clear();
                }
            }
        }
        settles.sort_by_key(|s| s.reservation);
        while !settles.is_empty() {
            let n = settles.len().min(MAX_BATCH);
            let batch: Vec<Settlement> = settles[..n].to_vec();
            let b = batch.clone();
            match self.store.run(move |st| st.settle_many(&b)).await {
                Ok(results) => {
                    for (s, r) in batch.iter().zip(results) {
                        log_settled(s, r);
                    }
                    settles.drain(..n);
                }
                Err(StoreError::Unavailable(e)) => {
                    // On PostgreSQL a failing row fails its whole statement: find it by
                    // writing the batch one at a time before calling the database gone.
                    if n > 1 && self.store.backend() == "postgres" {
                        for s in batch {
                            let one = s.clone();
                            match self.store.run(move |st| st.settle(&one)).await {
                                Err(StoreError::Unavailable(e)) => {
                                    return Err(StoreError::Unavailable(e));
                                }
                                r => log_settled(&s, r),
                            }
                            settles.remove(0);
                        }
                        continue;
                    }
                    return Err(StoreError::Unavailable(e));
                }
                Err(e) => {
                    error!(calls = n, error = %e, "settlement batch refused");
                    settles.drain(..n);
                }
            }
        }
        Ok(())
    }

    fn spool_out(&self, settles: &[Settlement], records: &[CallRecord]) {
        if settles.is_empty() && records.is_empty() {
            return;
        }
        use std::io::Write as _;
        if let Some(dir) = self.spool.parent()
            && !dir.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(dir);
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spool);
        match file {
            Ok(mut f) => {
                for s in settles {
                    let line = serde_json::json!({
                        "reservation": s.reservation,
                        "call_id": s.call_id,
                        "answered_ms": s.answered_ms,
                        "ended_ms": s.ended_ms,
                        "cause": s.cause,
                        "record": s.record,
                        "legs": s.legs.iter().map(|l| serde_json::json!({
                            "reservation": l.reservation,
                            "call_id": l.call_id,
                            "answered_ms": l.answered_ms,
                            "ended_ms": l.ended_ms,
                        })).collect::<Vec<_>>(),
                    });
                    let _ = writeln!(f, "{line}");
                }
                for r in records {
                    let _ = writeln!(f, "{}", serde_json::json!({ "record": r }));
                }
                let _ = f.sync_all();
                error!(calls = settles.len(), spool = %self.spool.display(), "database unavailable at shutdown: settlements spooled for the next start");
            }
            Err(e) => {
                error!(calls = settles.len(), error = %e, "settlements could not be spooled: recovery bills them up to the last heartbeat");
            }
        }
    }

    /// Authorizations, batched opportunistically: whatever queued while the previous batch
    /// was in the database goes in the next one (no added wait at low load; under load
    /// the calls share statements and commits). One batch at a time.
    async fn authorizer(
        self,
        mut rx: mpsc::UnboundedReceiver<(u64, AuthorizeRequest)>,
        reply: mpsc::UnboundedSender<BillingReply>,
    ) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_AUTH_BATCH {
                match rx.try_recv() {
                    Ok(x) => batch.push(x),
                    Err(_) => break,
                }
            }
            let keys: Vec<u64> = batch.iter().map(|(k, _)| *k).collect();
            let requests: Vec<AuthorizeRequest> = batch.into_iter().map(|(_, r)| r).collect();
            let results = self.authorize_many(requests).await;
            for (key, r) in keys.into_iter().zip(results) {
                let _ = reply.send(match r {
                    Ok(auth) => BillingReply::Authorized { key, auth },
                    Err(refusal) => BillingReply::Refused { key, refusal },
                });
            }
        }
    }

    /// A REGISTER: the digest against the member's stored HA1, then the bindings.
    async fn register(
        &self,
        r: crate::registrar::RegisterRequest,
    ) -> Result<Vec<crate::registrar::Binding>, crate::registrar::RegisterRefusal> {
        use crate::registrar::RegisterRefusal;
        let node = self.node.clone();
        let result = self
            .store
            .run(move |s| {
                let creds = s.sip_credentials_many(std::slice::from_ref(&r.user))?;
                match creds.get(&r.user) {
                    Some((_, ha1)) if auth::verify(ha1, &r.proof) => {}
                    _ => return Ok(Err(RegisterRefusal::BadCredentials)),
                }
                let registration = crate::store::registrar::Registration {
                    user: r.user.clone(),
                    contacts: r.contacts.clone(),
                    remove_all: r.remove_all,
                    source: r.source.clone(),
                    node,
                    call_id: r.call_id.clone(),
                    cseq: i64::from(r.cseq),
                    max_bindings: r.max_bindings,
                };
                match s.register(&registration, s.clock().unix_ms()) {
                    Ok(bindings) => Ok(Ok(bindings)),
                    Err(StoreError::Invalid(why))
                        if why == crate::store::registrar::TOO_MANY_CONTACTS =>
                    {
                        Ok(Err(RegisterRefusal::TooManyContacts))
                    }
                    Err(e) => Err(e),
                }
            })
            .await;
        match result {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "registration not written");
                Err(RegisterRefusal::Unavailable)
            }
        }
    }

    /// Verify who pays and reserve, for a batch of calls: one answer each, in order.
    pub async fn authorize_many(
        &self,
        requests: Vec<AuthorizeRequest>,
    ) -> Vec<Result<Authorization, Refusal>> {
        let n = requests.len();
        let tariffs = self.tariffs();
        let node = self.node.clone();
        let result = self
            .store
            .run(move |s| {
                let users: Vec<String> = requests
                    .iter()
                    .filter_map(|r| match &r.payer {
                        Payer::Member { username, .. } => Some(username.clone()),
                        _ => None,
                    })
                    .collect();
                let creds = s.sip_credentials_many(&users)?;
                let mut refused: Vec<Option<Refusal>> = vec![None; requests.len()];
                let mut items = Vec::new();
                let mut index = Vec::new();
                for (i, r) in requests.iter().enumerate() {
                    let charge = match &r.payer {
                        Payer::Member { username, proof } => match creds.get(username) {
                            Some((account, ha1)) if auth::verify(ha1, proof) => {
                                Charge::Account(*account)
                            }
                            _ => {
                                refused[i] = Some(Refusal::BadCredentials);
                                continue;
                            }
                        },
                        Payer::Account(a) => Charge::Account(*a),
                        Payer::Card(c) => Charge::Card(*c),
                    };
                    index.push(i);
                    items.push(ReserveItem {
                        call_id: r.call_id.clone(),
                        number: r.number.clone(),
                        destination: r.destination,
                        charge,
                    });
                }
                let reserved = s.reserve_many(&node, &items, &tariffs)?;
                let mut out: Vec<Result<Authorization, Refusal>> = refused
                    .into_iter()
                    .map(|r| Err(r.unwrap_or(Refusal::Unavailable)))
                    .collect();
                for (i, r) in index.into_iter().zip(reserved) {
                    out[i] = match r {
                        Ok(a) => Ok(a),
                        Err(StoreError::Refused(r)) => Err(r),
                        Err(StoreError::NotFound(_)) => Err(Refusal::UnknownAccount),
                        Err(e) => {
                            error!(error = %e, "cannot reserve: refusing the call");
                            Err(Refusal::Unavailable)
                        }
                    };
                }
                Ok(out)
            })
            .await;
        match result {
            Ok(v) => v,
            Err(e) => {
                error!(error = %e, calls = n, "cannot reserve: refusing the calls");
                (0..n).map(|_| Err(Refusal::Unavailable)).collect()
            }
        }
    }
}

/// Work for the writer.
enum Write {
    Answered(i64, i64),
    Settle(Settlement),
    Record(Box<CallRecord>),
}

/// What the writer has yet to write.
#[derive(Default)]
struct Queues {
    answers: Vec<(i64, i64)>,
    settles: Vec<Settlement>,
    records: Vec<CallRecord>,
}

impl Queues {
    fn push(&mut self, w: Write) {
        match w {
            Write::Answered(r, at) => self.answers.push((r, at)),
            Write::Settle(s) => self.settles.push(s),
            Write::Record(r) => self.records.push(*r),
        }
    }
    fn is_empty(&self) -> bool {
        self.answers.is_empty() && self.settles.is_empty() && self.records.is_empty()
    }
}

fn log_settled(s: &Settlement, r: Result<Settled, StoreError>) {
    match r {
        Ok(Settled::Done {
            billed_secs,
            cost,
            released,
        }) => info!(call = %s.call_id, billed_secs, cost, released, "call settled"),
        Ok(Settled::Already) => {}
        Err(e) => {
            error!(call = %s.call_id, reservation = s.reservation, error = %e, "settlement failed")
        }
    }
}

/// Settlements a previous run spooled (unreadable lines are reported and skipped).
fn read_spool(path: &std::path::Path) -> (Vec<Settlement>, Vec<CallRecord>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (Vec::new(), Vec::new());
    };
    let mut out = Vec::new();
    let mut records = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                error!(error = %e, "unreadable line in the settlement spool");
                continue;
            }
        };
        let (Some(reservation), Some(ended_ms)) =
            (v["reservation"].as_i64(), v["ended_ms"].as_i64())
        else {
            // A record of a call nobody paid for.
            match serde_json::from_value::<CallRecord>(v["record"].clone()) {
                Ok(r) => records.push(r),
                Err(_) => error!(%line, "incomplete line in the settlement spool"),
            }
            continue;
        };
        out.push(Settlement {
            reservation,
            call_id: v["call_id"].as_str().unwrap_or_default().to_string(),
            answered_ms: v["answered_ms"].as_i64(),
            ended_ms,
            cause: v["cause"].as_str().unwrap_or("spooled").to_string(),
            record: serde_json::from_value(v["record"].clone())
                .ok()
                .map(Box::new),
            legs: v["legs"]
                .as_array()
                .map(|legs| {
                    legs.iter()
                        .filter_map(|l| {
                            Some(crate::billing::LegSettlement {
                                reservation: l["reservation"].as_i64()?,
                                call_id: l["call_id"].as_str()?.to_string(),
                                answered_ms: l["answered_ms"].as_i64(),
                                ended_ms: l["ended_ms"].as_i64(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    (out, records)
}
