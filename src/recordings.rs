//! Recordings once their files are closed: each gets its row's length, size and state
//! (`store::recordings`), failures and dropped audio are counted, and a sweep deletes
//! files and rows past the retention period. Nothing here can touch a call: the media
//! side only sends a note when a file closes.

use crate::media::RecordingDone;
use crate::store::Store;
use crate::store::recordings::{Recording, RecordingClosed};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

#[derive(Clone)]
pub struct Keeper {
    pub store: Store,
    pub node: String,
    /// Recordings older than this are deleted (`None`: kept).
    pub retention: Option<Duration>,
}

impl Keeper {
    /// Take closed files' notes until the media side stops, and sweep once an hour.
    pub fn spawn(
        self,
        mut rx: mpsc::UnboundedReceiver<RecordingDone>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut sweep = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tokio::select! {
                    done = rx.recv() => match done {
                        Some(done) => self.closed(done).await,
                        None => break,
                    },
                    _ = sweep.tick() => {
                        if let Err(e) = self.sweep(self.store.clock().unix_ms()).await {
                            warn!(error = %e, "recordings sweep failed; trying again in an hour");
                        }
                    }
                }
            }
        })
    }

    /// A recording's file was closed: its row gets the file's length and size.
    pub async fn closed(&self, done: RecordingDone) {
        crate::telemetry::recording_closed(done.failed, done.dropped);
        let Some(call_id) = done
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
        else {
            return;
        };
        let closed = RecordingClosed {
            call_id,
            path: done.path.display().to_string(),
            duration_ms: done.duration_ms(),
            bytes: done.bytes as i64,
            failed: done.failed,
        };
        if done.failed {
            warn!(call = %closed.call_id, file = %closed.path, "recording failed: the call went on without it");
        }
        // Retried while the database is away: the file stays whatever happens.
        for wait in [0u64, 1, 5, 30] {
            tokio::time::sleep(Duration::from_secs(wait)).await;
            let (row, node) = (closed.clone(), self.node.clone());
            let now = self.store.clock().unix_ms();
            if self
                .store
                .run(move |s| s.recording_closed(&node, &row, now))
                .await
                .is_ok()
            {
                return;
            }
        }
        error!(call = %closed.call_id, "the recording's length and size could not be stored");
    }

    /// Delete this node's recordings started before the retention period: files, then
    /// rows. Returns how many went.
    pub async fn sweep(&self, now_ms: i64) -> Result<usize, crate::store::StoreError> {
        let Some(keep) = self.retention else {
            return Ok(0);
        };
        let before = now_ms - keep.as_millis() as i64;
        let mut gone = 0;
        loop {
            let node = self.node.clone();
            let batch = self
                .store
                .run(move |s| s.expired_recordings(&node, before, 500))
                .await?;
            if batch.is_empty() {
                break;
            }
            for r in batch {
                delete(&self.store, &r).await?;
                gone += 1;
            }
        }
        if gone > 0 {
            info!(
                recordings = gone,
                "recordings past the retention period deleted"
            );
            crate::telemetry::recordings_deleted("retention", gone as u64);
        }
        Ok(gone)
    }
}

/// Delete one recording: its file (if this node has it), then its row.
pub async fn delete(store: &Store, r: &Recording) -> Result<(), crate::store::StoreError> {
    remove_file(Path::new(&r.path));
    let id = r.call_id.clone();
    store.run(move |s| s.delete_recording(&id)).await?;
    Ok(())
}

fn remove_file(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!(file = %path.display(), error = %e, "recording's file not deleted"),
    }
}
