//! Delivery: one task per sink, reading the journal from its own cursor and
//! advancing it only after the destination acknowledged a batch
//! (invariant 3). A sink that fails retries with backoff forever: the
//! journal holds the data, so waiting loses nothing, and no other sink or
//! source waits for it.

pub mod file;

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::{Format, SinkConfig, SinkKind};
use crate::store::{BatchRecord, SharedStore, now_ms};
use file::FileSink;

/// How often a sink with nothing to do re-reads the journal even without a
/// wake-up (a `claudit backfill` in another process writes it too).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Counts for logs and the demo summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct SinkStats {
    pub batches: u64,
    pub delivered: u64,
}

/// The destination behind a sink. One variant per sink type.
enum Destination {
    File(FileSink),
}

pub struct SinkTask {
    pub config: SinkConfig,
    pub store: SharedStore,
    /// Changes whenever a source journaled something.
    pub journal_head: watch::Receiver<u64>,
}

impl SinkTask {
    /// Runs until `cancel`; a batch in flight is finished first.
    pub async fn run(mut self, cancel: CancellationToken) -> anyhow::Result<SinkStats> {
        let name = self.config.name.clone();
        let raw = self.config.format == Format::Raw;
        let batch = self.config.batch.clone();
        let mut stats = SinkStats::default();
        let mut destination = self.open_destination().await?;
        info!(sink = %name, "sink started");
        let mut backoff = retry_policy().build();
        let mut lingered = false;
        loop {
            let cursor = {
                let name = name.clone();
                self.store.call(move |s| s.sink_cursor(&name)).await?
            };
            let records = self
                .store
                .call(move |s| s.read_batch(cursor.seq, batch.max_events, batch.max_bytes, raw))
                .await?;
            if records.is_empty() {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    changed = self.journal_head.changed() => {
                        if changed.is_err() {
                            // No source left to wake us: fall back to polling.
                            tokio::time::sleep(IDLE_POLL).await;
                        }
                    }
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
                continue;
            }
            // A partial batch waits once, up to `linger`, for more records.
            if records.len() < batch.max_events
                && !batch.linger.is_zero()
                && !lingered
                && !cancel.is_cancelled()
            {
                lingered = true;
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(batch.linger) => {}
                }
                continue;
            }
            lingered = false;
            let last_seq = records.last().map(|r| r.seq).unwrap_or(cursor.seq);
            match deliver(&mut destination, &records) {
                Ok(offset) => {
                    let (n, count) = (name.clone(), records.len() as i64);
                    let now = now_ms();
                    self.store
                        .call(move |s| s.advance_sink(&n, last_seq, offset, count, &[], now))
                        .await?;
                    stats.batches += 1;
                    stats.delivered += records.len() as u64;
                    backoff = retry_policy().build();
                    debug!(sink = %name, count = records.len(), last_seq, "batch delivered");
                }
                Err(err) => {
                    let delay = backoff.next().unwrap_or(Duration::from_secs(60));
                    let text = format!("{err}");
                    error!(sink = %name, error = %text, retry_in_ms = delay.as_millis() as u64,
                        "delivery failed; the batch stays in the journal and is retried");
                    let (n, now) = (name.clone(), now_ms());
                    self.store
                        .call(move |s| s.record_sink_error(&n, &text, now))
                        .await?;
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
            if cancel.is_cancelled() {
                break;
            }
        }
        info!(sink = %name, batches = stats.batches, delivered = stats.delivered, "sink stopped");
        Ok(stats)
    }

    /// Opens the destination and, for a file, reconciles what a crash left
    /// past the committed offset.
    async fn open_destination(&mut self) -> anyhow::Result<Destination> {
        let name = self.config.name.clone();
        let raw = self.config.format == Format::Raw;
        match &self.config.kind {
            SinkKind::File(cfg) => {
                let n = name.clone();
                let cursor = self.store.call(move |s| s.sink_cursor(&n)).await?;
                let mut sink = FileSink::open(cfg, cursor.file_offset).map_err(|e| {
                    anyhow::anyhow!(
                        "sink {name}: cannot open {}: {e}; check that the directory exists and is writable",
                        cfg.path.display()
                    )
                })?;
                let tail = std::fs::metadata(&cfg.path)
                    .map(|m| m.len())
                    .unwrap_or(0)
                    .saturating_sub(sink.offset());
                if tail > 0 {
                    let seq = cursor.seq;
                    let next = self
                        .store
                        .call(move |s| s.read_batch(seq, 1_000_000, tail as usize + 1, raw))
                        .await?;
                    let recovery = sink.recover(&next)?;
                    if recovery.already_written > 0 || recovery.truncated_bytes > 0 {
                        let last = next[..recovery.already_written]
                            .last()
                            .map(|r| r.seq)
                            .unwrap_or(seq);
                        let (n, off, count, now) = (
                            name.clone(),
                            sink.offset() as i64,
                            recovery.already_written as i64,
                            now_ms(),
                        );
                        self.store
                            .call(move |s| s.advance_sink(&n, last, Some(off), count, &[], now))
                            .await?;
                        warn!(sink = %name, already_written = recovery.already_written,
                            truncated_bytes = recovery.truncated_bytes,
                            "recovered from an interrupted batch: whole lines kept, a torn line cut off");
                    }
                }
                Ok(Destination::File(sink))
            }
        }
    }
}

/// Sends a batch. Returns the file offset to commit (file sinks).
fn deliver(destination: &mut Destination, records: &[BatchRecord]) -> std::io::Result<Option<i64>> {
    match destination {
        Destination::File(sink) => {
            let bytes: u64 = records.iter().map(|r| r.payload.len() as u64 + 1).sum();
            sink.rotate_if_needed(bytes)?;
            Ok(Some(sink.write_batch(records)? as i64))
        }
    }
}

/// Exponential backoff with jitter from 1 s to 60 s and no retry cap: the
/// journal makes waiting safe.
fn retry_policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(60))
        .with_jitter()
        .without_max_times()
}
