//! The accounting service: carries the call layer's billing requests to the store, off
//! the signalling task, and brings the answers back.
//!
//! - `Authorize` → verify a member's digest proof against the stored HA1, then reserve
//!   (one conditional statement). Answered with a `BillingReply`.
//! - `Answered` → persist the answer time (what crash recovery bills from), in batches.
//! - `Settle` → debit and release once, in batches (group commit); retried with back-off
//!   while the database is away,
//!   so a short outage loses nothing (and what a long one leaves open, recovery settles).
//! - A heartbeat every `billing.heartbeat_secs`: after a crash, open calls are billed up
//!   to the last one.

use crate::auth;
use crate::billing::{
    Authorization, AuthorizeRequest, BillingReply, BillingRequest, Payer, Refusal, Settlement,
    Tariffs,
};
use crate::clock;
use crate::store::calls::{Charge, Settled};
use crate::store::{Store, StoreError};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

/// How long answer times and settlements wait to be written together.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// A batch is written at once when it reaches this size.
const MAX_BATCH: usize = 500;

/// What the accounting service needs; `tariffs` may be swapped at run time (reload).
#[derive(Clone)]
pub struct Accounting {
    pub store: Store,
    pub tariffs: Arc<RwLock<Arc<Tariffs>>>,
    pub node: String,
    pub heartbeat: Duration,
}

impl Accounting {
    pub fn new(store: Store, tariffs: Tariffs, node: String, heartbeat: Duration) -> Accounting {
        Accounting {
            store,
            tariffs: Arc::new(RwLock::new(Arc::new(tariffs))),
            node,
            heartbeat,
        }
    }

    /// Replace the tariff table; calls already reserved keep the tariff they were priced at.
    pub fn set_tariffs(&self, tariffs: Tariffs) {
        if let Ok(mut t) = self.tariffs.write() {
            *t = Arc::new(tariffs);
        }
    }

    fn tariffs(&self) -> Arc<Tariffs> {
        self.tariffs
            .read()
            .map(|t| t.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Settle what this node left open when it last stopped (killed, crashed), then write
    /// a first heartbeat. Run before taking calls.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let node = self.node.clone();
        let recovered = self.store.run(move |s| s.recover(&node)).await?;
        for r in &recovered {
            warn!(call = %r.call_id, billed_secs = r.billed_secs, cost = r.cost, "settled a call left open by the last run");
        }
        let node = self.node.clone();
        self.store
            .run(move |s| s.heartbeat(&node, clock::unix_ms()))
            .await?;
        Ok(recovered.len())
    }

    /// Start the service: requests in, replies out. The task ends when the request
    /// channel closes and every settlement in flight has been written.
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
            let mut work = JoinSet::new();
            let mut beat = tokio::time::interval(self.heartbeat);
            // Answer times and settlements are written in batches (group commit): one
            // transaction per batch instead of one per call. Nobody waits for them, and a
            // batch is at most FLUSH_EVERY old, well inside the heartbeat's error bound.
            let mut flush = tokio::time::interval(FLUSH_EVERY);
            flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut answers: Vec<(i64, i64)> = Vec::new();
            let mut settles: Vec<Settlement> = Vec::new();
            loop {
                tokio::select! {
                    req = req_rx.recv() => match req {
                        Some(BillingRequest::Authorize { key, request }) => {
                            let me = self.clone();
                            let reply_tx = reply_tx.clone();
                            work.spawn(async move {
                                let answer = match me.authorize(request).await {
                                    Ok(auth) => BillingReply::Authorized { key, auth },
                                    Err(refusal) => BillingReply::Refused { key, refusal },
                                };
                                let _ = reply_tx.send(answer);
                            });
                        }
                        Some(BillingRequest::Answered { reservation, answered_ms }) => {
                            answers.push((reservation, answered_ms));
                        }
                        Some(BillingRequest::Settle(s)) => {
                            settles.push(s);
                            if settles.len() >= MAX_BATCH {
                                let me = self.clone();
                                let batch = std::mem::take(&mut settles);
                                work.spawn(async move { me.settle_batch(batch).await });
                            }
                        }
                        None => break,
                    },
                    _ = flush.tick() => {
                        if !answers.is_empty() {
                            let me = self.clone();
                            let batch = std::mem::take(&mut answers);
                            work.spawn(async move { me.answered_batch(batch).await });
                        }
                        if !settles.is_empty() {
                            let me = self.clone();
                            let batch = std::mem::take(&mut settles);
                            work.spawn(async move { me.settle_batch(batch).await });
                        }
                    }
                    _ = beat.tick() => {
                        let node = self.node.clone();
                        if let Err(e) = self.store.run(move |s| s.heartbeat(&node, clock::unix_ms())).await {
                            warn!(error = %e, "heartbeat not written");
                        }
                    }
                    Some(_) = work.join_next(), if !work.is_empty() => {}
                }
            }
            // Shutting down: write what is pending, finish what is in flight, then a last
            // heartbeat.
            self.answered_batch(std::mem::take(&mut answers)).await;
            self.settle_batch(std::mem::take(&mut settles)).await;
            while work.join_next().await.is_some() {}
            let node = self.node.clone();
            let _ = self
                .store
                .run(move |s| s.heartbeat(&node, clock::unix_ms()))
                .await;
            info!("accounting stopped");
        });
        (req_tx, reply_rx, task)
    }

    /// Verify who pays and reserve the call's money.
    pub async fn authorize(&self, req: AuthorizeRequest) -> Result<Authorization, Refusal> {
        let tariffs = self.tariffs();
        let node = self.node.clone();
        let result = self
            .store
            .run(move |s| {
                let charge = match &req.payer {
                    Payer::Member { username, proof } => {
                        let Some((_, account, ha1)) = s.sip_credentials(username)? else {
                            return Err(StoreError::Refused(Refusal::BadCredentials));
                        };
                        if !auth::verify(&ha1, proof) {
                            return Err(StoreError::Refused(Refusal::BadCredentials));
                        }
                        Charge::Account(account)
                    }
                    Payer::Account(a) => Charge::Account(*a),
                    Payer::Card(c) => Charge::Card(*c),
                };
                s.reserve(
                    &node,
                    &req.call_id,
                    &req.number,
                    req.destination,
                    charge,
                    &tariffs,
                )
            })
            .await;
        match result {
            Ok(a) => Ok(a),
            Err(StoreError::Refused(r)) => Err(r),
            Err(StoreError::NotFound(_)) => Err(Refusal::UnknownAccount),
            Err(e) => {
                error!(error = %e, "cannot reserve: refusing the call");
                Err(Refusal::Unavailable)
            }
        }
    }

    /// Persist answer times (a few attempts: settlement carries the answer time too, so
    /// this only matters if the switch dies before the call ends).
    async fn answered_batch(&self, batch: Vec<(i64, i64)>) {
        if batch.is_empty() {
            return;
        }
        for attempt in 0..5u32 {
            let b = batch.clone();
            match self.store.run(move |s| s.mark_answered_many(&b)).await {
                Ok(()) => return,
                Err(e) => {
                    warn!(calls = batch.len(), error = %e, "answer times not written yet");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
    }

    /// Settle a batch, retrying while the database is unavailable (up to about ten
    /// minutes; what is still open after that is settled by recovery at the next start).
    async fn settle_batch(&self, batch: Vec<Settlement>) {
        if batch.is_empty() {
            return;
        }
        let mut delay = Duration::from_millis(100);
        for _ in 0..40 {
            let b = batch.clone();
            match self.store.run(move |st| st.settle_many(&b)).await {
                Ok(results) => {
                    for (s, r) in batch.iter().zip(results) {
                        match r {
                            Ok(Settled::Done {
                                billed_secs,
                                cost,
                                released,
                            }) => {
                                info!(call = %s.call_id, billed_secs, cost, released, "call settled");
                            }
                            Ok(Settled::Already) => {}
                            Err(e) => error!(call = %s.call_id, error = %e, "settlement failed"),
                        }
                    }
                    return;
                }
                Err(StoreError::Unavailable(e)) => {
                    warn!(calls = batch.len(), error = %e, ?delay, "settlement postponed");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(15));
                }
                Err(e) => {
                    error!(calls = batch.len(), error = %e, "settlement failed");
                    return;
                }
            }
        }
        error!(
            calls = batch.len(),
            "settlement still failing: recovery settles these at the next start"
        );
    }
}
