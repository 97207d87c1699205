//! The directory as a stream: one snapshot task per source with directory
//! context, while a sink receives the `directory` stream.
//!
//! The task waits for a full directory sync that is not overdue (the
//! source's first, or one within `refresh`) and for the time the next
//! snapshot is due (`ocsf::inventory::snapshot_time`: at once for the
//! first, then every `snapshot_every` after the previous one), builds the
//! entries (`ocsf::inventory::entries`: who joined, left or changed since
//! the previous snapshot, then every member at the snapshot time) and
//! journals them with the snapshot time in one transaction
//! (`Store::commit_directory_snapshot`). Then it wakes the sinks' directory
//! streams (`<sink>.directory`), which deliver from their own cursors like
//! the findings streams.
//!
//! The snapshot time is the time the snapshot was due, not the time it was
//! made: a crash before the commit leaves nothing, a restart makes the same
//! snapshot again (same time, same uids), and one after the commit finds
//! it made. The task never ends on an error: it logs it and tries again
//! after a backoff.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, warn};

use crate::directory::Directory;
use crate::model::format_time;
use crate::ocsf::inventory;
use crate::store::{NewDirectoryEntry, SharedStore, SnapshotCommit, StoreError, now_ms};

/// How often the task looks again while it waits for a directory sync.
const SYNC_POLL: Duration = Duration::from_secs(2);
/// The longest single sleep before a due time: a wall clock that jumps
/// is noticed within this.
const MAX_SLEEP: Duration = Duration::from_secs(300);
/// Backoff after a failed snapshot: doubles from the first to the last.
const ERROR_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));

/// The snapshots of one source.
pub struct SnapshotTask {
    pub source: String,
    /// `[sources.directory] snapshot_every`.
    pub every: Duration,
    /// `[sources.directory] refresh`: a sync older than this is overdue.
    pub refresh: Duration,
    pub store: SharedStore,
    pub directory: Arc<Directory>,
    /// Set to the directory stream's head seq after each snapshot.
    pub head: watch::Sender<u64>,
}

/// What one look at the source's state found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// No full sync yet, or the last one is overdue.
    WaitForSync { last_full_ms: Option<i64> },
    /// The next snapshot is due then.
    NotDue { due_ms: i64 },
    /// A snapshot was committed (or found made).
    Made {
        at_ms: i64,
        entries: usize,
        commit: SnapshotCommit,
    },
}

impl SnapshotTask {
    /// Runs until `cancel`. Its log lines carry `source = ...`.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let span = tracing::info_span!("directory_snapshots", source = %self.source);
        self.run_until_cancelled(cancel).instrument(span).await
    }

    async fn run_until_cancelled(self, cancel: CancellationToken) -> anyhow::Result<()> {
        info!(
            every_secs = self.every.as_secs(),
            "directory snapshots started"
        );
        // Wake the streams once: entries journaled before a restart.
        self.publish_head().await;
        let mut backoff = ERROR_BACKOFF.0;
        let mut said_waiting = false;
        let mut said_due = None;
        loop {
            let wait = match self.step().await {
                Ok(Step::Made {
                    at_ms,
                    entries,
                    commit,
                }) => {
                    backoff = ERROR_BACKOFF.0;
                    said_waiting = false;
                    match commit {
                        SnapshotCommit::Journaled { inserted } => info!(
                            at = %fmt(at_ms),
                            entries,
                            journaled = inserted,
                            "directory snapshot journaled"
                        ),
                        SnapshotCommit::AlreadyMade { at_ms } => info!(
                            at = %fmt(at_ms),
                            "directory snapshot already made"
                        ),
                    }
                    self.publish_head().await;
                    Duration::ZERO
                }
                Ok(Step::NotDue { due_ms }) => {
                    backoff = ERROR_BACKOFF.0;
                    said_waiting = false;
                    if said_due != Some(due_ms) {
                        said_due = Some(due_ms);
                        info!(due = %fmt(due_ms), "next directory snapshot due");
                    }
                    let left = u64::try_from(due_ms.saturating_sub(now_ms())).unwrap_or(0);
                    Duration::from_millis(left).min(MAX_SLEEP)
                }
                Ok(Step::WaitForSync { last_full_ms }) => {
                    backoff = ERROR_BACKOFF.0;
                    // Said once per stretch of waiting, again after a snapshot
                    // or a due time: snapshots that stop must not stop quietly.
                    if !said_waiting {
                        said_waiting = true;
                        match last_full_ms {
                            None => {
                                info!("directory snapshots wait for the first full directory sync")
                            }
                            Some(last) => warn!(
                                last_full_sync = %fmt(last),
                                "directory snapshots are held: the last full directory sync is \
                                 older than refresh (see the directory sync's errors in \
                                 `claudit status`); no stale directory is published"
                            ),
                        }
                    }
                    SYNC_POLL
                }
                Err(e) => {
                    let delay = backoff;
                    backoff = (backoff * 2).min(ERROR_BACKOFF.1);
                    warn!(error = %format!("{e:#}"), retry_in_ms = delay.as_millis() as u64,
                        "directory snapshot failed; nothing of it was journaled, it is made again");
                    delay
                }
            };
            if wait.is_zero() {
                if cancel.is_cancelled() {
                    return Ok(());
                }
                continue;
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Looks at the source's sync and last snapshot, and makes the snapshot
    /// if one is due.
    async fn step(&self) -> Result<Step, StoreError> {
        let source = self.source.clone();
        let (last_full_ms, last) = self
            .store
            .call(move |s| -> Result<_, StoreError> {
                let sync = crate::directory::store::sync_state(s, &source)?;
                Ok((sync.last_full_ms, s.directory_snapshot(&source)?))
            })
            .await?;
        let now = now_ms();
        let refresh_ms = i64::try_from(self.refresh.as_millis()).unwrap_or(i64::MAX);
        let synced = last_full_ms.is_some_and(|t| t >= now.saturating_sub(refresh_ms));
        if !synced {
            return Ok(Step::WaitForSync { last_full_ms });
        }
        let previous = last.map(|l| l.at_ms);
        let Some(at_ms) = inventory::snapshot_time(previous, self.every, now) else {
            return Ok(Step::NotDue {
                due_ms: inventory::next_due(previous, self.every),
            });
        };
        let (directory, source) = (self.directory.clone(), self.source.clone());
        let entries: Vec<NewDirectoryEntry> = tokio::task::spawn_blocking(move || {
            inventory::entries(&directory, &source, previous, at_ms)
                .into_iter()
                .map(|e| NewDirectoryEntry {
                    uid: e.uid,
                    kind: e.kind.to_string(),
                    plain: e.plain,
                    ocsf: e.ocsf,
                })
                .collect()
        })
        .await
        .expect("building a directory snapshot panicked");
        let count = entries.len();
        let source = self.source.clone();
        let commit = self
            .store
            .call(move |s| s.commit_directory_snapshot(&source, at_ms, &entries, now_ms()))
            .await?;
        Ok(Step::Made {
            at_ms,
            entries: count,
            commit,
        })
    }

    /// Tells the directory streams where the head is.
    async fn publish_head(&self) {
        match self.store.call(|s| s.head_directory_seq()).await {
            Ok(head) => {
                self.head.send_replace(u64::try_from(head).unwrap_or(0));
            }
            Err(e) => warn!(error = %e, "cannot read the directory stream's head"),
        }
    }
}

fn fmt(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(format_time)
        .unwrap_or_else(|| ms.to_string())
}
