//! A node's life on the shared store: its start (the spool and what its last run left
//! open settled, a new incarnation), its heartbeat (the lease renewed; nodes whose lease
//! ran out taken over), and the lease's own watchdog, which stops the node's calls when
//! it is cut off from the database while other nodes could take them over.

use super::{Accounting, read_spool};
use crate::store::StoreError;
use crate::store::nodes::{Beat, Joined};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tracing::{error, info, warn};

impl Accounting {
    /// Settle what the last run could not write (the spool) and what this node left open
    /// when it last stopped (killed, crashed), then write a first heartbeat. Run before
    /// taking calls.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let (spooled, records) = read_spool(&self.spool);
        if !spooled.is_empty() || !records.is_empty() {
            let n = spooled.len() + records.len();
            self.store.run(move |s| s.record_calls(&records)).await?;
            let results = self.store.run(move |s| s.settle_many(&spooled)).await?;
            for r in results {
                if let Err(e) = r {
                    warn!(error = %e, "a spooled settlement could not be applied");
                }
            }
            let _ = std::fs::remove_file(&self.spool);
            warn!(calls = n, spool = %self.spool.display(), "settled calls spooled by the last run");
        }
        let node = self.node.clone();
        let recovered = self.store.run(move |s| s.recover(&node)).await?;
        for r in &recovered {
            warn!(call = %r.call_id, billed_secs = r.billed_secs, cost = r.cost, "settled a call left open by the last run");
        }
        // A new incarnation; while a survivor is settling an earlier one's calls, wait
        // for it (its claim lasts a lease at most).
        let mut waits = 0u64;
        let epoch = loop {
            let node = self.node.clone();
            match self
                .store
                .run(move |s| {
                    let now = s.clock().unix_ms();
                    Ok((s.join(&node, now)?, now, s.other_nodes(&node)?))
                })
                .await?
            {
                (Joined::Epoch(e), now, others) => {
                    self.renewed_ms.store(now, Ordering::SeqCst);
                    self.peers.store(others > 0, Ordering::SeqCst);
                    break e;
                }
                (Joined::Busy { taker, until_ms }, ..) if waits < self.lease.as_secs() + 5 => {
                    warn!(%taker, until_ms, "another node is settling this node's calls of its last run: waiting");
                    waits += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                (Joined::Busy { taker, .. }, ..) => {
                    return Err(StoreError::Conflict(format!(
                        "node '{}' is being taken over by '{taker}'",
                        self.node
                    )));
                }
            }
        };
        self.epoch.store(epoch, Ordering::SeqCst);
        info!(epoch, "node joined");
        self.refresh_deck().await?;
        Ok(recovered.len())
    }

    /// One heartbeat: renew the lease, then (alive) take over nodes whose lease ran out,
    /// in the background. Whether the node may take calls.
    pub(super) async fn beat(&self) -> bool {
        if self.fenced.borrow().is_some() {
            return false;
        }
        let (node, epoch) = (self.node.clone(), self.epoch.load(Ordering::SeqCst));
        self.beat_since_ms
            .store(self.store.clock().unix_ms(), Ordering::SeqCst);
        // A database that stops answering (rather than refusing) must not hold the beat
        // past its turn.
        let beat = tokio::time::timeout(
            self.heartbeat,
            self.store.run(move |s| {
                let now = s.clock().unix_ms();
                Ok((s.heartbeat(&node, epoch, now)?, now))
            }),
        )
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the heartbeat got no answer in time".into(),
            ))
        });
        self.beat_since_ms.store(0, Ordering::SeqCst);
        self.beat_failed.store(beat.is_err(), Ordering::SeqCst);
        match beat {
            Ok((Beat::Alive, now)) => {
                self.renewed_ms.store(now, Ordering::SeqCst);
                let node = self.node.clone();
                if let Ok(Ok(n)) = tokio::time::timeout(
                    self.heartbeat,
                    self.store.run(move |s| s.other_nodes(&node)),
                )
                .await
                {
                    self.peers.store(n > 0, Ordering::SeqCst);
                }
            }
            Ok((Beat::Fenced { by }, _)) => {
                let by = by.unwrap_or_else(|| "a newer start of this node".into());
                error!(%by, "this node was taken over while it was cut off: its open calls were settled elsewhere; taking no more calls");
                crate::telemetry::fenced();
                self.fenced
                    .send_replace(Some(format!("its calls were taken over by {by}")));
                return false;
            }
            Err(e) => {
                warn!(error = %e, "heartbeat not written");
                return false;
            }
        }
        if !self.taking_over.swap(true, Ordering::SeqCst) {
            let me = self.clone();
            tokio::spawn(async move {
                let (node, lease_ms) = (me.node.clone(), me.lease.as_millis() as i64);
                match me
                    .store
                    .run(move |s| s.take_over(&node, s.clock().unix_ms(), lease_ms))
                    .await
                {
                    Ok(taken) => {
                        for t in taken {
                            warn!(
                                node = %t.node,
                                calls = t.calls.len(),
                                billed_up_to_ms = t.last_heartbeat_ms,
                                bookings_interrupted = t.bookings_interrupted,
                                bookings_released = t.bookings_released,
                                "took over a node whose lease ran out: its open calls settled"
                            );
                            for c in &t.calls {
                                info!(call = %c.call_id, billed_secs = c.billed_secs, cost = c.cost, node = %t.node, "settled a dead node's call");
                            }
                            crate::telemetry::took_over(t.calls.len());
                        }
                    }
                    Err(e) => warn!(error = %e, "dead nodes not checked"),
                }
                me.taking_over.store(false, Ordering::SeqCst);
            });
        }
        true
    }

    /// The lease's own clock, apart from the heartbeat (which may hang on a database that
    /// does not answer): while the database is not renewing the lease and other nodes
    /// share the store, this node stops carrying its calls a heartbeat before any of them
    /// could count its lease as run out — they would bill those calls only up to its last
    /// heartbeat while they went on here. A node alone on its store (no other node ever
    /// joined it) carries on: nobody could take it over.
    pub(super) async fn lease_watchdog(self) {
        let step = (self.heartbeat / 4).max(Duration::from_millis(20));
        let limit = self.lease.saturating_sub(self.heartbeat).as_millis() as i64;
        loop {
            tokio::time::sleep(step).await;
            if self.fenced.borrow().is_some() {
                return;
            }
            let now = self.store.clock().unix_ms();
            let since = self.beat_since_ms.load(Ordering::SeqCst);
            let failing = self.beat_failed.load(Ordering::SeqCst)
                || since > 0 && now - since >= self.heartbeat.as_millis() as i64;
            let renewed = self.renewed_ms.load(Ordering::SeqCst);
            let cut_off = now - renewed;
            if renewed > 0 && failing && self.peers.load(Ordering::SeqCst) && cut_off >= limit {
                error!(
                    cut_off_ms = cut_off,
                    lease_secs = self.lease.as_secs(),
                    "cut off from the database while other nodes may take this node's calls over: hanging up its calls and taking no more"
                );
                crate::telemetry::fenced();
                self.fenced.send_replace(Some(format!(
                    "it was cut off from the database for {:.1} s (other nodes take a node's calls over after {} s)",
                    cut_off as f64 / 1000.0,
                    self.lease.as_secs()
                )));
                return;
            }
        }
    }
}
