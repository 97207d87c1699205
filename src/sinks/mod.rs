//! Delivery: one task per sink, reading the journal from its own cursor and
//! advancing it only after the destination acknowledged a batch
//! (invariant 3). A sink that fails retries with backoff forever: the
//! journal holds the data, so waiting loses nothing, and no other sink or
//! source waits for it.

pub mod archive;
pub mod contract;
pub mod datadog;
pub mod elasticsearch;
pub mod file;
pub mod http;
pub mod layout;
pub mod registry;
pub mod render;
pub mod sentinel;
pub mod settings;
pub mod splunk_hec;
pub mod sumo;
pub mod syslog;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::metrics::Metrics;
use crate::model::BatchRecord;
use crate::ocsf::Mapper;
use crate::redact::Redactor;
use crate::sinks::settings::SinkConfig;
use crate::store::{NewDeadLetter, SharedStore, StoreError, now_ms};
use crate::wake::{self, Wake};
use contract::{BoxFuture, Destination, JournalPosition, Outcome, Prepared, SinkJournal};
use file::{Disk, RealDisk};
use registry::OpenContext;
use render::Payload;

/// How often a sink with nothing to do re-reads the journal even without a
/// wake-up (a `claudit backfill` in another process writes it too).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// After a fatal failure (bad token, unknown index) the sink re-checks this
/// often at first, doubling up to `FATAL_RECHECK_MAX`.
const FATAL_RECHECK: Duration = Duration::from_secs(30);
const FATAL_RECHECK_MAX: Duration = Duration::from_secs(300);

/// Counts for logs and the demo summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct SinkStats {
    pub batches: u64,
    pub delivered: u64,
    pub dead_lettered: u64,
}

pub struct SinkTask {
    pub config: SinkConfig,
    pub store: SharedStore,
    /// Changes whenever a source journaled something.
    pub journal_head: watch::Receiver<u64>,
    /// The process's metrics (`Default::default()` where nobody scrapes them).
    pub metrics: Arc<Metrics>,
    /// Renders each record's OCSF event when the sink reads it (`[ocsf]`).
    pub mapper: Arc<Mapper>,
}

impl SinkTask {
    /// Runs until `cancel`; a batch in flight is finished first. An error
    /// that stops the task has the sink's secrets removed.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<SinkStats> {
        self.run_on(Arc::new(RealDisk), cancel).await
    }

    /// `run`, with a file sink's file operations going through `disk`.
    /// Every log line of the task, its destination's included, carries the
    /// sink's name from its span (`sink = ...`).
    async fn run_on(
        self,
        disk: Arc<dyn Disk>,
        cancel: CancellationToken,
    ) -> anyhow::Result<SinkStats> {
        let redactor = redactor_for(&self.config);
        let span = tracing::info_span!("sink", sink = %self.config.name);
        let run = self.run_until_cancelled(disk, cancel);
        tracing::Instrument::instrument(run, span)
            .await
            .map_err(|e| {
                // A state database error names only the database: kept as it
                // is, so the daemon's exit code still says what failed.
                if e.chain().any(|c| c.downcast_ref::<StoreError>().is_some()) {
                    e
                } else {
                    anyhow::anyhow!(redactor.redact(&format!("{e:#}")))
                }
            })
    }

    async fn run_until_cancelled(
        self,
        disk: Arc<dyn Disk>,
        cancel: CancellationToken,
    ) -> anyhow::Result<SinkStats> {
        // A sink that does not deliver in batches (the archive: whole
        // sealed hours) runs its own task.
        let kind = self.config.kind.clone();
        let mut this = match kind.settings().own_task(self, cancel.clone()) {
            Ok(own) => return own.await,
            Err(task) => task,
        };
        this.run_batches(disk, cancel).await
    }

    /// The batch loop: read from the cursor, deliver, commit, repeat.
    async fn run_batches(
        &mut self,
        disk: Arc<dyn Disk>,
        cancel: CancellationToken,
    ) -> anyhow::Result<SinkStats> {
        let name = self.config.name.clone();
        let mut redactor = redactor_for(&self.config);
        let form = self.payload_form();
        let batch = self.config.batch.clone();
        let mut stats = SinkStats::default();
        // Counts when the sink last caught up, for the summary line.
        let mut cycle_start = stats;
        let counters = self.metrics.sink(&name);
        let journal = self.journal();
        let mut destination = self
            .config
            .kind
            .settings()
            .open(OpenContext {
                sink: &self.config,
                journal: Some(&journal),
                disk,
                counters: counters.clone(),
            })
            .await?;
        info!("sink started");
        let mut backoff = RetryBackoff::new();
        let mut fatal_wait = FATAL_RECHECK;
        let mut lingered = false;
        loop {
            let cursor = {
                let name = name.clone();
                self.store.call(move |s| s.sink_cursor(&name)).await?
            };
            let records = {
                let form = form.clone();
                self.store
                    .call(move |s| {
                        s.read_batch(cursor.seq, batch.max_events, batch.max_bytes, &form)
                    })
                    .await?
            };
            if records.is_empty() {
                if stats.batches > cycle_start.batches {
                    // Caught up with the journal: one line per delivery cycle.
                    info!(
                        batches = stats.batches - cycle_start.batches,
                        count = stats.delivered - cycle_start.delivered,
                        dead_lettered = stats.dead_lettered - cycle_start.dead_lettered,
                        cursor = cursor.seq,
                        "caught up with the journal"
                    );
                    cycle_start = stats;
                }
                if wake::next(&mut self.journal_head, IDLE_POLL, &cancel).await == Wake::Shutdown {
                    break;
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
            let outcome = match destination.before_batch(&journal, &records).await? {
                // Records of the batch were found delivered: read it again.
                Prepared::ReadAgain => continue,
                Prepared::Ready => deliver(destination.as_mut(), &mut redactor, &records).await,
                Prepared::Wait(failed) => failed,
            };
            let wait = match outcome {
                Outcome::Delivered { rejected } => {
                    let dead: Vec<NewDeadLetter> = rejected
                        .into_iter()
                        .map(|r| NewDeadLetter {
                            seq: r.seq,
                            activity_id: r.activity_id,
                            reason: r.reason,
                            response: r.response,
                        })
                        .collect();
                    for d in &dead {
                        warn!(activity_id = %d.activity_id, reason = %d.reason,
                            "the destination rejected an event; it is in the dead-letter table (claudit dlq list)");
                    }
                    let delivered = (records.len() - dead.len()) as i64;
                    let dead_seqs: std::collections::HashSet<i64> =
                        dead.iter().map(|d| d.seq).collect();
                    let offset = destination.position();
                    let (n, now, dead_count) = (name.clone(), now_ms(), dead.len());
                    self.store
                        .call(move |s| s.advance_sink(&n, last_seq, offset, delivered, &dead, now))
                        .await?;
                    stats.batches += 1;
                    stats.delivered += delivered as u64;
                    stats.dead_lettered += dead_count as u64;
                    counters.batches.inc();
                    counters.delivered.inc_by(delivered as u64);
                    counters.dead_lettered.inc_by(dead_count as u64);
                    counters.bytes.inc_by(
                        records
                            .iter()
                            .filter(|r| !dead_seqs.contains(&r.seq))
                            .map(|r| r.payload.len() as u64)
                            .sum(),
                    );
                    backoff.reset();
                    fatal_wait = FATAL_RECHECK;
                    debug!(
                        count = records.len(),
                        dead_lettered = dead_count,
                        last_seq,
                        "batch delivered"
                    );
                    None
                }
                Outcome::Retry { after, reason } => {
                    let computed = backoff.next_delay();
                    // The server's delay is a floor, never shortened by our backoff.
                    let delay = after.map_or(computed, |a| a.max(computed));
                    warn!(error = %reason, retry_in_ms = delay.as_millis() as u64,
                        "delivery failed; the batch stays in the journal and is retried");
                    Some((reason, delay))
                }
                Outcome::Fatal { reason } => {
                    let delay = fatal_wait;
                    fatal_wait = (fatal_wait * 2).min(FATAL_RECHECK_MAX);
                    error!(error = %reason, recheck_in_secs = delay.as_secs(),
                        "the destination refused the request; fix the sink's configuration. Nothing is discarded: delivery resumes from the same record");
                    Some((reason, delay))
                }
            };
            if let Some((reason, delay)) = wait {
                counters.retries.inc();
                if record_error_and_wait(&self.store, &name, reason, delay, &cancel).await? {
                    break;
                }
            }
            if cancel.is_cancelled() {
                break;
            }
        }
        destination.close().await;
        info!(
            batches = stats.batches,
            delivered = stats.delivered,
            "sink stopped"
        );
        Ok(stats)
    }

    /// What the sink's `format` asks the journal for.
    fn payload_form(&self) -> Payload {
        Payload::of(&self.config, &self.mapper)
    }

    /// The sink's journal as its destination sees it.
    fn journal(&self) -> TaskJournal {
        TaskJournal {
            store: self.store.clone(),
            name: self.config.name.clone(),
            form: self.payload_form(),
        }
    }
}

/// [`SinkJournal`] over the state database, for one sink.
struct TaskJournal {
    store: SharedStore,
    name: String,
    form: Payload,
}

impl SinkJournal for TaskJournal {
    fn position(&self) -> BoxFuture<'_, anyhow::Result<JournalPosition>> {
        Box::pin(async move {
            let name = self.name.clone();
            let cursor = self.store.call(move |s| s.sink_cursor(&name)).await?;
            Ok(JournalPosition {
                seq: cursor.seq,
                file_offset: cursor.file_offset,
            })
        })
    }

    fn read_covering(
        &self,
        after_seq: i64,
        bytes: usize,
    ) -> BoxFuture<'_, anyhow::Result<Vec<BatchRecord>>> {
        Box::pin(async move {
            let form = self.form.clone();
            Ok(self
                .store
                .call(move |s| s.read_covering(after_seq, bytes, &form))
                .await?)
        })
    }

    fn commit_found(
        &self,
        last_seq: i64,
        offset: i64,
        count: i64,
    ) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let (name, now) = (self.name.clone(), now_ms());
            self.store
                .call(move |s| s.advance_sink(&name, last_seq, Some(offset), count, &[], now))
                .await?;
            Ok(())
        })
    }

    fn commit_offset(&self, offset: i64) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let name = self.name.clone();
            self.store
                .call(move |s| s.record_file_offset(&name, offset))
                .await?;
            Ok(())
        })
    }
}

/// A sink's destination outside its sink task, for `claudit replay` and
/// `claudit dlq replay`: sends records without reading or moving the sink's
/// cursor. File sinks are excluded: the running daemon owns the file and its
/// committed length, and a second writer would break crash recovery.
pub struct Replayer {
    destination: Box<dyn Destination>,
    redactor: Redactor,
}

impl Replayer {
    pub async fn open(config: &SinkConfig) -> anyhow::Result<Replayer> {
        let destination = config
            .kind
            .settings()
            .open(OpenContext {
                sink: config,
                journal: None,
                disk: Arc::new(RealDisk),
                counters: Default::default(),
            })
            .await?;
        Ok(Replayer {
            destination,
            redactor: redactor_for(config),
        })
    }

    /// Sends one batch through the destination, as the sink task would.
    pub async fn send(&mut self, records: &[BatchRecord]) -> Outcome {
        deliver(self.destination.as_mut(), &mut self.redactor, records).await
    }

    /// Closes the destination's connection the way its protocol asks
    /// (a syslog receiver gets its TLS close_notify).
    pub async fn close(mut self) {
        self.destination.close().await;
    }
}

/// `claudit check --connect` for a sink that talks to a service: one cheap
/// request that checks the address and the credentials, in one line, with
/// the sink's secrets removed (a file sink: whether its directory is
/// writable). `None` when the sink's type has nothing to check.
pub async fn check_connection(config: &SinkConfig) -> Option<Result<String, String>> {
    let mut redactor = redactor_for(config);
    let (checked, session) = config.kind.settings().check(config).await;
    redactor.learn_session_secrets(session);
    Some(match checked {
        Ok(text) => Ok(redactor.redact(&text)),
        Err(text) => Err(redactor.redact(&text)),
    })
}

/// The redaction of everything `config`'s destination answers: every secret
/// the sink is configured with, in the forms it can be echoed in (see
/// `redact`; each type's settings list their own).
pub fn redactor_for(config: &SinkConfig) -> Redactor {
    let mut r = Redactor::new();
    config.kind.settings().add_secrets(&mut r);
    r
}

/// Sends one batch and says what became of it. Every text of the outcome
/// (reasons, the destination's answers for dead letters) passes through
/// the sink's `redactor` here, before anything logs, stores or prints it:
/// this is the one way an outcome leaves a destination.
async fn deliver(
    destination: &mut dyn Destination,
    redactor: &mut Redactor,
    records: &[BatchRecord],
) -> Outcome {
    let outcome = destination.deliver(records).await;
    redactor.learn_session_secrets(destination.session_secrets());
    outcome.redacted(redactor)
}

/// After a failed delivery or flush: records the error on the sink's cursor
/// row (for `status`), then waits `delay`. Returns true if `cancel` fired
/// meanwhile.
async fn record_error_and_wait(
    store: &SharedStore,
    sink: &str,
    reason: String,
    delay: Duration,
    cancel: &CancellationToken,
) -> anyhow::Result<bool> {
    let (sink, now) = (sink.to_string(), now_ms());
    store
        .call(move |s| s.record_sink_error(&sink, &reason, now))
        .await?;
    Ok(tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(delay) => false,
    })
}

/// The longest wait between two retries of a delivery.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// The backoff between retries of a delivery, the sink task's and the
/// archive's: exponential with jitter from 1 s to [`MAX_RETRY_DELAY`] and
/// no retry cap (the journal makes waiting safe), started over after a
/// success. What counts as a failure to retry is each caller's own.
pub(crate) struct RetryBackoff(ExponentialBackoff);

impl RetryBackoff {
    pub(crate) fn new() -> RetryBackoff {
        RetryBackoff(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_secs(1))
                .with_max_delay(MAX_RETRY_DELAY)
                .with_jitter()
                .without_max_times()
                .build(),
        )
    }

    /// After a success: the next failure waits the shortest delay again.
    pub(crate) fn reset(&mut self) {
        *self = RetryBackoff::new();
    }

    /// How long to wait after this failure.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.0.next().unwrap_or(MAX_RETRY_DELAY)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{BatchConfig, FileSinkConfig, Format, SinkKind};
    use crate::store::{JournalRecord, PageCommit, Store, WindowKind, WindowRow};
    use file::FileDestination;

    pub(crate) fn journal(path: &std::path::Path, ids: &[&str]) {
        let records: Vec<JournalRecord> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| JournalRecord {
                activity_id: id.to_string(),
                created_at_ms: 1_000 + i as i64,
                activity_type: "claude_chat_created".into(),
                raw: format!(r#"{{"id":"{id}"}}"#),
                context: None,
                ocsf: Some(format!(r#"{{"metadata":{{"uid":"{id}"}}}}"#)),
            })
            .collect();
        let window = WindowRow::fresh(WindowKind::Live, 0, 10_000);
        Store::open(path)
            .unwrap()
            .commit_page(&PageCommit {
                source: "s",
                window: &window,
                next_cursor: None,
                read_from_ms: None,
                done: true,
                next_span_ms: None,
                records: &records,
                request_ids: &[],
                now_ms: 1,
            })
            .unwrap();
    }

    fn task(db: &std::path::Path, out: &std::path::Path) -> SinkTask {
        SinkTask {
            config: SinkConfig {
                name: "file".into(),
                format: Format::Raw,
                batch: BatchConfig {
                    max_events: 2,
                    max_bytes: 1 << 20,
                    linger: Duration::ZERO,
                },
                kind: SinkKind::new(FileSinkConfig {
                    path: out.to_path_buf(),
                    max_bytes: 0,
                    max_files: 0,
                }),
                streams: crate::config::Streams::ACTIVITIES,
            },
            store: SharedStore::open(db).unwrap(),
            journal_head: watch::channel(0).1,
            metrics: Default::default(),
            mapper: Default::default(),
        }
    }

    /// The file destination of a file sink's task, opened as the task does.
    async fn open_file(t: &SinkTask) -> FileDestination {
        let cfg = t.config.kind.get::<FileSinkConfig>().unwrap();
        FileDestination::open(
            &t.config.name,
            cfg,
            t.config.batch.max_bytes,
            Arc::new(RealDisk),
            &t.journal(),
        )
        .await
        .unwrap()
    }

    /// A new file sink commits where it starts in the file before its first
    /// batch: if the process dies after writing that batch but before its
    /// commit, the next start recognizes the batch's lines instead of taking
    /// them for someone else's and writing them again.
    #[tokio::test]
    async fn first_batch_written_before_a_crash_is_not_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let (db, out) = (dir.path().join("state.db"), dir.path().join("out.ndjson"));
        journal(&db, &["a", "b", "c"]);
        std::fs::write(&out, "{\"someone\":\"else\"}\n").unwrap();

        let first = task(&db, &out);
        let destination = open_file(&first).await;
        let cursor = Store::open(&db).unwrap().sink_cursor("file").unwrap();
        assert_eq!((cursor.seq, cursor.file_offset), (0, Some(19)));
        // The first batch reaches the file, then the process dies.
        drop(destination);
        let mut f = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
        std::io::Write::write_all(&mut f, b"{\"id\":\"a\"}\n{\"id\":\"b\"}\n").unwrap();

        let cancel = CancellationToken::new();
        let run = tokio::spawn(task(&db, &out).run(cancel.clone()));
        while Store::open(&db).unwrap().sink_cursor("file").unwrap().seq < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cancel.cancel();
        run.await.unwrap().unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"someone\":\"else\"}\n{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"c\"}\n"
        );
    }

    /// After rotating, the new file's length (0) is committed before the
    /// batch is written into it.
    #[tokio::test]
    async fn rotation_commits_the_new_files_offset_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let (db, out) = (dir.path().join("state.db"), dir.path().join("out.ndjson"));
        journal(&db, &["a"]);
        let mut t = task(&db, &out);
        if let Some(cfg) = t.config.kind.get_mut::<FileSinkConfig>() {
            cfg.max_bytes = 20;
            cfg.max_files = 1;
        }
        let mut destination = open_file(&t).await;
        let journal = t.journal();
        let line = BatchRecord {
            seq: 1,
            activity_id: "a".into(),
            created_at_ms: 1,
            payload: "0123456789abcdef".into(),
        };
        let batch = std::slice::from_ref(&line);
        assert!(matches!(
            destination.before_batch(&journal, batch).await.unwrap(),
            Prepared::Ready
        ));
        destination.sink().write_batch(batch).unwrap();
        Store::open(&db)
            .unwrap()
            .advance_sink("file", 1, Some(17), 1, &[], 1)
            .unwrap();
        assert!(matches!(
            destination.before_batch(&journal, batch).await.unwrap(),
            Prepared::Ready
        ));
        let cursor = Store::open(&db).unwrap().sink_cursor("file").unwrap();
        assert_eq!((cursor.seq, cursor.file_offset), (1, Some(0)));
        assert!(dir.path().join("out.ndjson.1").exists());
    }

    /// At shutdown the sources stop first, so a sink's wake-up channel is
    /// closed and it polls every `IDLE_POLL`; the shutdown still ends that
    /// wait at once (the clock is paused: no time passes in between).
    #[tokio::test(start_paused = true)]
    async fn a_caught_up_sink_whose_sources_stopped_ends_at_once_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let (db, out) = (dir.path().join("state.db"), dir.path().join("out.ndjson"));
        journal(&db, &["a"]);
        // `task` gives the sink a closed wake-up channel, as at shutdown.
        let cancel = CancellationToken::new();
        let run = tokio::spawn(task(&db, &out).run(cancel.clone()));
        let store = Store::open(&db).unwrap();
        while store.sink_cursor("file").unwrap().seq < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(IDLE_POLL * 3 + Duration::from_millis(300)).await;
        let cancelled_at = tokio::time::Instant::now();
        cancel.cancel();
        run.await.unwrap().unwrap();
        assert_eq!(cancelled_at.elapsed(), Duration::ZERO);
    }

    /// The sink task over a disk that fills up in the middle of a batch:
    /// while it is full the error is on the cursor row (`status`, `/readyz`)
    /// and counted as a retry; once there is room again, and through a few
    /// more failures (an fsync that loses its pages among them), every record
    /// is in the file once, in order, whole, and the committed length is the
    /// file's length.
    /// Time is paused (it moves on whenever the runtime idles), so the
    /// backoff between retries takes no real time.
    #[tokio::test(start_paused = true)]
    async fn a_full_disk_is_reported_and_leaves_every_record_once_and_whole() {
        use file::faults::{Fault, FaultyDisk, Schedule};

        let dir = tempfile::tempdir().unwrap();
        let (db, out) = (dir.path().join("state.db"), dir.path().join("out.ndjson"));
        let ids: Vec<String> = (0..12).map(|i| format!("a{i:02}")).collect();
        journal(&db, &ids.iter().map(String::as_str).collect::<Vec<_>>());
        let mut t = task(&db, &out);
        t.config.batch.max_events = 4;
        let metrics = t.metrics.clone();
        // Each line is 13 bytes: the first batch fits, the second is cut
        // after one line and two bytes.
        let disk = FaultyDisk::new(Schedule::default());
        disk.set_room(Some(4 * 13 + 15));
        let cancel = CancellationToken::new();
        let run = tokio::spawn(t.run_on(Arc::new(disk.clone()), cancel.clone()));

        let store = Store::open(&db).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let error = loop {
            assert!(std::time::Instant::now() < deadline, "no error recorded");
            if let Some(e) = store.sink_cursor("file").unwrap().last_error {
                break e;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(error.contains("No space left on device"), "{error}");
        assert!(error.contains("free space"), "{error}");
        assert!(error.contains(&out.display().to_string()), "{error}");
        assert!(metrics.sink("file").retries.get() >= 1);
        // The first batch, and the whole line of the second once a retry
        // reconciled the file.
        let seq = store.sink_cursor("file").unwrap().seq;
        assert!(seq == 4 || seq == 5, "{seq}");

        // Room again, and three more failures on whatever the sink does next.
        disk.set_room(None);
        disk.fail_in(2, Fault::SyncLosesPages);
        disk.fail_in(7, Fault::SyncLosesPages);
        disk.fail_in(12, Fault::Io);
        while store.sink_cursor("file").unwrap().seq < 12 {
            let cursor = store.sink_cursor("file").unwrap();
            assert!(
                std::time::Instant::now() < deadline,
                "not caught up: {cursor:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cancel.cancel();
        run.await.unwrap().unwrap();
        assert_eq!(disk.injected(), 3, "every scheduled failure happened");
        let expected: String = ids
            .iter()
            .map(|id| format!("{{\"id\":\"{id}\"}}\n"))
            .collect();
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text, expected);
        let cursor = store.sink_cursor("file").unwrap();
        assert_eq!(cursor.file_offset, Some(text.len() as i64));
        assert_eq!(cursor.last_error, None);
    }
}
