//! The file sink as a [`Destination`]: the crash protocol's side that talks
//! to the sink's cursor (see the module docs of `sinks/file`).
//!
//! Before each batch the file is brought in line with the cursor (after a
//! start, and after a failed write, fsync or rotation), then rotated if the
//! batch would take it past `max_bytes`, and the new file's length (0) is
//! committed before anything is written into it: after a crash, recovery
//! then compares the new file's bytes with the batch, never with the old
//! file's length.

use std::path::Path;
use std::sync::Arc;

use tracing::warn;

use super::{Disk, FileSink, FileSinkConfig, describe_error};
use crate::model::BatchRecord;
use crate::sinks::contract::{BoxFuture, Destination, Outcome, Prepared, SinkJournal};

pub struct FileDestination {
    sink: FileSink,
    /// A tail longer than a batch is reconciled a batch at a time.
    max_batch_bytes: usize,
}

impl FileDestination {
    /// Opens the file at the committed length. A new file sink commits where
    /// it starts in the file first, so that a batch written before a crash
    /// is recognised as its own instead of someone else's.
    pub async fn open(
        name: &str,
        config: &FileSinkConfig,
        max_batch_bytes: usize,
        disk: Arc<dyn Disk>,
        journal: &dyn SinkJournal,
    ) -> anyhow::Result<FileDestination> {
        let position = journal.position().await?;
        let sink = FileSink::open_on(disk, config, position.file_offset).map_err(|e| {
            anyhow::anyhow!(
                "sink {name}: cannot open {}: {e}; check that the directory exists and is writable",
                config.path.display()
            )
        })?;
        if position.file_offset.is_none() {
            journal.commit_offset(sink.offset() as i64).await?;
        }
        Ok(FileDestination {
            sink,
            max_batch_bytes,
        })
    }

    /// The file sink underneath.
    pub fn sink(&mut self) -> &mut FileSink {
        &mut self.sink
    }

    /// Reconciles, rotates if the batch needs it, and reconciles the new
    /// file (see the module docs).
    async fn prepare(
        &mut self,
        journal: &dyn SinkJournal,
        records: &[BatchRecord],
    ) -> anyhow::Result<Prepared> {
        match self.reconcile(journal).await? {
            Ok(0) => {}
            Ok(_) => return Ok(Prepared::ReadAgain),
            Err(failed) => return Ok(Prepared::Wait(failed)),
        }
        let bytes: u64 = records.iter().map(|r| r.payload.len() as u64 + 1).sum();
        match self.sink.rotate_if_needed(bytes) {
            Ok(false) => Ok(Prepared::Ready),
            Ok(true) => Ok(match self.reconcile(journal).await? {
                Ok(0) => Prepared::Ready,
                Ok(_) => Prepared::ReadAgain,
                Err(failed) => Prepared::Wait(failed),
            }),
            Err(e) => Ok(Prepared::Wait(file_retry("rotating", self.sink.path(), &e))),
        }
    }

    /// Reconciles the file with the cursor until it is ready for the next
    /// batch, committing what each step found: the records already written
    /// and the file's new length. Returns how many records were found
    /// written, or the outcome to wait on.
    async fn reconcile(
        &mut self,
        journal: &dyn SinkJournal,
    ) -> anyhow::Result<Result<usize, Outcome>> {
        let sink = &mut self.sink;
        let mut found = 0;
        loop {
            let tail = match sink.unreconciled() {
                Ok(None) => return Ok(Ok(found)),
                Ok(Some(tail)) => tail,
                Err(e) => return Ok(Err(file_retry("opening", sink.path(), &e))),
            };
            let position = journal.position().await?;
            let covering = tail.min(self.max_batch_bytes as u64) as usize;
            let next = if tail == 0 {
                Vec::new()
            } else {
                journal.read_covering(position.seq, covering).await?
            };
            let recovery = match sink.reconcile(&next) {
                Ok(recovery) => recovery,
                Err(e) => return Ok(Err(file_retry("reconciling", sink.path(), &e))),
            };
            let offset = sink.offset() as i64;
            if recovery.already_written > 0 {
                let last = next[recovery.already_written - 1].seq;
                let count = recovery.already_written as i64;
                journal.commit_found(last, offset, count).await?;
            } else if position.file_offset != Some(offset) {
                journal.commit_offset(offset).await?;
            }
            if recovery.already_written > 0 || recovery.truncated_bytes > 0 {
                warn!(
                    already_written = recovery.already_written,
                    truncated_bytes = recovery.truncated_bytes,
                    "reconciled the file with the cursor after an interrupted batch: whole lines kept, a torn or unsynced tail cut off"
                );
            }
            found += recovery.already_written;
        }
    }
}

impl Destination for FileDestination {
    fn deliver<'a>(&'a mut self, records: &'a [BatchRecord]) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match self.sink.write_batch(records) {
                Ok(_) => Outcome::delivered(),
                // Disk full, permissions, I/O errors: the operator can fix
                // them, and the journal keeps the batch until then. The file
                // is reconciled before the retry (`before_batch`).
                Err(e) => file_retry("writing", self.sink.path(), &e),
            }
        })
    }

    /// Nothing to connect to: the file was opened for appending.
    fn healthcheck(&mut self) -> BoxFuture<'_, Result<String, String>> {
        let text = format!(
            "{} is open for appending at byte {}",
            self.sink.path().display(),
            self.sink.offset()
        );
        Box::pin(async move { Ok(text) })
    }

    fn before_batch<'a>(
        &'a mut self,
        journal: &'a dyn SinkJournal,
        records: &'a [BatchRecord],
    ) -> BoxFuture<'a, anyhow::Result<Prepared>> {
        Box::pin(self.prepare(journal, records))
    }

    fn position(&self) -> Option<i64> {
        Some(self.sink.offset() as i64)
    }
}

/// A failed file operation: retried with backoff, reconciled first.
fn file_retry(action: &str, path: &Path, e: &std::io::Error) -> Outcome {
    Outcome::Retry {
        after: None,
        reason: describe_error(action, path, e),
    }
}
