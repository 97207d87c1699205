//! Delivery: one task per sink, reading the journal from its own cursor and
//! advancing it only after the destination acknowledged a batch
//! (invariant 3). A sink that fails retries with backoff forever: the
//! journal holds the data, so waiting loses nothing, and no other sink or
//! source waits for it.

pub mod archive;
pub mod datadog;
pub mod elasticsearch;
pub mod file;
pub mod http;
pub mod progress;
pub mod sentinel;
pub mod splunk_hec;
pub mod sumo;
pub mod syslog;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use secrecy::ExposeSecret as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::{ArchiveBackend, ElasticsearchAuth, Format, SinkConfig, SinkKind};
use crate::metrics::Metrics;
use crate::ocsf::Mapper;
use crate::redact::Redactor;
use crate::store::{
    BatchRecord, FindingForm, NewDeadLetter, Payload, SharedStore, StoreError, now_ms,
};
use datadog::DatadogSink;
use elasticsearch::ElasticsearchSink;
use file::{Disk, FileSink, RealDisk};
use http::Outcome;
use sentinel::SentinelSink;
use splunk_hec::SplunkHecSink;
use sumo::SumoSink;
use syslog::SyslogSink;
use webhook::WebhookSink;

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

/// What a sink reads, by its `format`: journal rows as received, rendered
/// to OCSF by `mapper`, or with their directory context; for the findings
/// stream of a sink, the findings in the OCSF or plain JSON form.
pub fn payload_form(sink: &SinkConfig, mapper: &Arc<Mapper>) -> Payload {
    if sink.is_findings_stream() {
        return Payload::Findings(match sink.format {
            Format::Ocsf => FindingForm::Ocsf,
            Format::Raw | Format::RawWithContext => FindingForm::Plain,
        });
    }
    match sink.format {
        Format::Raw => Payload::Raw,
        Format::Ocsf => Payload::Ocsf(mapper.clone()),
        Format::RawWithContext => Payload::RawWithContext(mapper.clone()),
    }
}

/// The destination behind a sink. One variant per sink type.
enum Destination {
    File(FileSink),
    Datadog(DatadogSink),
    Sentinel(SentinelSink),
    SplunkHec(SplunkHecSink),
    Sumo(SumoSink),
    Elasticsearch(ElasticsearchSink),
    Syslog(Box<SyslogSink>),
    Webhook(WebhookSink),
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
    async fn run_on(
        self,
        disk: Arc<dyn Disk>,
        cancel: CancellationToken,
    ) -> anyhow::Result<SinkStats> {
        let redactor = redactor_for(&self.config);
        self.run_until_cancelled(disk, cancel).await.map_err(|e| {
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
        mut self,
        disk: Arc<dyn Disk>,
        cancel: CancellationToken,
    ) -> anyhow::Result<SinkStats> {
        // An archive moves its cursor over whole sealed hours, not batches:
        // it has its own loop (sinks/archive/mod.rs).
        if let SinkKind::Archive(archive) = &self.config.kind {
            let counters = self.metrics.sink(&self.config.name);
            let task = archive::ArchiveTask {
                archive: archive.clone(),
                redactor: redactor_for(&self.config),
                config: self.config,
                store: self.store,
                journal_head: self.journal_head,
                counters,
            };
            return task.run(cancel).await;
        }
        let name = self.config.name.clone();
        let mut redactor = redactor_for(&self.config);
        let form = self.payload_form();
        let batch = self.config.batch.clone();
        let mut stats = SinkStats::default();
        // Counts when the sink last caught up, for the summary line.
        let mut cycle_start = stats;
        let counters = self.metrics.sink(&name);
        let mut destination = self.open_destination(disk).await?;
        info!(sink = %name, "sink started");
        let mut backoff = retry_policy().build();
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
                    info!(sink = %name, batches = stats.batches - cycle_start.batches,
                        count = stats.delivered - cycle_start.delivered,
                        dead_lettered = stats.dead_lettered - cycle_start.dead_lettered,
                        cursor = cursor.seq, "caught up with the journal");
                    cycle_start = stats;
                }
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
            let outcome = match self.prepare_file(&mut destination, &records).await? {
                // Records of the batch were found in the file: read it again.
                Ok(true) => continue,
                Ok(false) => deliver(&mut destination, &mut redactor, &records).await,
                Err(failed) => failed,
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
                        warn!(sink = %name, activity_id = %d.activity_id, reason = %d.reason,
                            "the destination rejected an event; it is in the dead-letter table (claudit dlq list)");
                    }
                    let delivered = (records.len() - dead.len()) as i64;
                    let dead_seqs: std::collections::HashSet<i64> =
                        dead.iter().map(|d| d.seq).collect();
                    let offset = destination.offset();
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
                    backoff = retry_policy().build();
                    fatal_wait = FATAL_RECHECK;
                    debug!(sink = %name, count = records.len(), dead_lettered = dead_count, last_seq, "batch delivered");
                    None
                }
                Outcome::Retry { after, reason } => {
                    let computed = backoff.next().unwrap_or(Duration::from_secs(60));
                    // The server's delay is a floor, never shortened by our backoff.
                    let delay = after.map_or(computed, |a| a.max(computed));
                    warn!(sink = %name, error = %reason, retry_in_ms = delay.as_millis() as u64,
                        "delivery failed; the batch stays in the journal and is retried");
                    Some((reason, delay))
                }
                Outcome::Fatal { reason } => {
                    let delay = fatal_wait;
                    fatal_wait = (fatal_wait * 2).min(FATAL_RECHECK_MAX);
                    error!(sink = %name, error = %reason, recheck_in_secs = delay.as_secs(),
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
        info!(sink = %name, batches = stats.batches, delivered = stats.delivered, "sink stopped");
        Ok(stats)
    }

    /// Before each batch a file sink brings its file in line with its cursor
    /// (after a start, and after a failed write, fsync or rotation: see
    /// `sinks/file`), then rotates if the batch would take the file past
    /// `max_bytes`, and commits the new file's length (0) before writing
    /// into it: after a crash, recovery then compares the new file's bytes
    /// with the batch, never with the old file's length. Returns whether
    /// records were found already written (the batch must be read again),
    /// or the outcome to wait on when the file could not be reconciled or
    /// rotated.
    async fn prepare_file(
        &self,
        destination: &mut Destination,
        records: &[BatchRecord],
    ) -> anyhow::Result<Result<bool, Outcome>> {
        let Destination::File(sink) = destination else {
            return Ok(Ok(false));
        };
        match self.reconcile_file(sink).await? {
            Ok(0) => {}
            Ok(_) => return Ok(Ok(true)),
            Err(failed) => return Ok(Err(failed)),
        }
        let bytes: u64 = records.iter().map(|r| r.payload.len() as u64 + 1).sum();
        match sink.rotate_if_needed(bytes) {
            Ok(false) => Ok(Ok(false)),
            Ok(true) => Ok(self.reconcile_file(sink).await?.map(|found| found > 0)),
            Err(e) => Ok(Err(file_retry("rotating", sink.path(), &e))),
        }
    }

    /// Reconciles a file sink's file with the cursor until it is ready for
    /// the next batch, committing what each step found: the records already
    /// written and the file's new length. Returns how many records were
    /// found written, or the outcome to wait on.
    async fn reconcile_file(&self, sink: &mut FileSink) -> anyhow::Result<Result<usize, Outcome>> {
        let name = self.config.name.clone();
        let mut found = 0;
        loop {
            let tail = match sink.unreconciled() {
                Ok(None) => return Ok(Ok(found)),
                Ok(Some(tail)) => tail,
                Err(e) => return Ok(Err(file_retry("opening", sink.path(), &e))),
            };
            let cursor = {
                let name = name.clone();
                self.store.call(move |s| s.sink_cursor(&name)).await?
            };
            // A tail longer than a batch is reconciled a batch at a time.
            let covering = tail.min(self.config.batch.max_bytes as u64) as usize;
            let next = if tail == 0 {
                Vec::new()
            } else {
                let (form, seq) = (self.payload_form(), cursor.seq);
                self.store
                    .call(move |s| s.read_covering(seq, covering, &form))
                    .await?
            };
            let recovery = match sink.reconcile(&next) {
                Ok(recovery) => recovery,
                Err(e) => return Ok(Err(file_retry("reconciling", sink.path(), &e))),
            };
            let offset = sink.offset() as i64;
            let (n, now) = (name.clone(), now_ms());
            if recovery.already_written > 0 {
                let last = next[recovery.already_written - 1].seq;
                let count = recovery.already_written as i64;
                self.store
                    .call(move |s| s.advance_sink(&n, last, Some(offset), count, &[], now))
                    .await?;
            } else if cursor.file_offset != Some(offset) {
                self.store
                    .call(move |s| s.record_file_offset(&n, offset))
                    .await?;
            }
            if recovery.already_written > 0 || recovery.truncated_bytes > 0 {
                warn!(sink = %name, already_written = recovery.already_written,
                    truncated_bytes = recovery.truncated_bytes,
                    "reconciled the file with the cursor after an interrupted batch: whole lines kept, a torn or unsynced tail cut off");
            }
            found += recovery.already_written;
        }
    }

    /// What the sink's `format` asks the journal for.
    fn payload_form(&self) -> Payload {
        payload_form(&self.config, &self.mapper)
    }

    /// Opens the destination. A file is reconciled with the cursor before
    /// the first batch (`prepare_file`); a new file sink commits where it
    /// starts in the file first, so that a batch written before a crash is
    /// recognised as its own.
    async fn open_destination(&mut self, disk: Arc<dyn Disk>) -> anyhow::Result<Destination> {
        let name = self.config.name.clone();
        match &self.config.kind {
            SinkKind::File(cfg) => {
                let n = name.clone();
                let cursor = self.store.call(move |s| s.sink_cursor(&n)).await?;
                let sink = FileSink::open_on(disk, cfg, cursor.file_offset).map_err(|e| {
                    anyhow::anyhow!(
                        "sink {name}: cannot open {}: {e}; check that the directory exists and is writable",
                        cfg.path.display()
                    )
                })?;
                if cursor.file_offset.is_none() {
                    let (n, off) = (name.clone(), sink.offset() as i64);
                    self.store
                        .call(move |s| s.record_file_offset(&n, off))
                        .await?;
                }
                Ok(Destination::File(sink))
            }
            SinkKind::Datadog(cfg) => Ok(Destination::Datadog(DatadogSink::new(cfg)?)),
            SinkKind::Sentinel(cfg) => Ok(Destination::Sentinel(SentinelSink::new(cfg)?)),
            SinkKind::SplunkHec(cfg) => Ok(Destination::SplunkHec(SplunkHecSink::new(cfg)?)),
            SinkKind::Sumo(cfg) => Ok(Destination::Sumo(SumoSink::new(cfg)?)),
            SinkKind::Elasticsearch(cfg) => Ok(Destination::Elasticsearch(
                ElasticsearchSink::new(cfg).map_err(|e| anyhow::anyhow!("sink {name}: {e:#}"))?,
            )),
            SinkKind::Syslog(cfg) => Ok(Destination::Syslog(Box::new(
                SyslogSink::new(cfg, msgid(&self.config))
                    .map_err(|e| anyhow::anyhow!("sink {name}: {e:#}"))?,
            ))),
            SinkKind::Webhook(cfg) => Ok(Destination::Webhook(
                WebhookSink::new(cfg).map_err(|e| anyhow::anyhow!("sink {name}: {e:#}"))?,
            )),
            SinkKind::Archive(_) => anyhow::bail!(
                "sink {name} is an archive sink, which replay does not write to: its segments hold \
                 sealed hours once each. Use `claudit archive export` to read a range from it"
            ),
        }
    }
}

/// A sink's destination outside its sink task, for `claudit replay` and
/// `claudit dlq replay`: sends records without reading or moving the sink's
/// cursor. File sinks are excluded: the running daemon owns the file and its
/// committed length, and a second writer would break crash recovery.
pub struct Replayer {
    destination: Destination,
    redactor: Redactor,
}

impl Replayer {
    pub async fn open(
        config: &SinkConfig,
        store: SharedStore,
        mapper: Arc<Mapper>,
    ) -> anyhow::Result<Replayer> {
        if matches!(config.kind, SinkKind::File(_)) {
            anyhow::bail!(
                "sink {} is a file sink, which replay does not write to: the daemon owns that file \
                 and its committed length (crash recovery). For another copy, add a second file \
                 sink: it starts from the beginning of the journal",
                config.name
            );
        }
        let (_, journal_head) = watch::channel(0);
        let mut task = SinkTask {
            config: config.clone(),
            store,
            journal_head,
            metrics: Default::default(),
            mapper,
        };
        Ok(Replayer {
            destination: task.open_destination(Arc::new(RealDisk)).await?,
            redactor: redactor_for(config),
        })
    }

    /// Sends one batch through the destination, as the sink task would.
    pub async fn send(&mut self, records: &[BatchRecord]) -> Outcome {
        deliver(&mut self.destination, &mut self.redactor, records).await
    }

    /// Closes the destination's connection the way its protocol asks
    /// (a syslog receiver gets its TLS close_notify).
    pub async fn close(mut self) {
        self.destination.close().await;
    }
}

/// The syslog MSGID of a sink's events: the shape of the body (a findings
/// stream's: `ocsf-finding`, the OCSF Detection Finding, or `finding`, the
/// plain JSON finding).
fn msgid(config: &SinkConfig) -> &'static str {
    match (config.is_findings_stream(), config.format) {
        (true, Format::Ocsf) => "ocsf-finding",
        (true, Format::Raw | Format::RawWithContext) => "finding",
        (false, Format::Ocsf) => "ocsf",
        (false, Format::Raw) => "raw",
        (false, Format::RawWithContext) => "raw+claudit",
    }
}

/// `claudit check --connect` for a sink that talks to a service: one cheap
/// request that checks the address and the credentials, in one line, with
/// the sink's secrets removed. `None` for a file sink (nothing to connect to).
pub async fn check_connection(config: &SinkConfig) -> Option<Result<String, String>> {
    let mut redactor = redactor_for(config);
    let (checked, session) = match &config.kind {
        SinkKind::File(_) => return None,
        SinkKind::Datadog(cfg) => match DatadogSink::new(cfg) {
            Ok(sink) => (sink.healthcheck().await, Vec::new()),
            Err(e) => (Err(format!("{e:#}")), Vec::new()),
        },
        SinkKind::Sentinel(cfg) => match SentinelSink::new(cfg) {
            Ok(mut sink) => {
                let checked = sink.healthcheck().await;
                (checked, sink.session_secrets())
            }
            Err(e) => (Err(format!("{e:#}")), Vec::new()),
        },
        SinkKind::SplunkHec(cfg) => match SplunkHecSink::new(cfg) {
            Ok(sink) => (sink.healthcheck().await, Vec::new()),
            Err(e) => (Err(format!("{e:#}")), Vec::new()),
        },
        SinkKind::Sumo(cfg) => match SumoSink::new(cfg) {
            Ok(sink) => (sink.healthcheck().await, Vec::new()),
            Err(e) => (Err(format!("{e:#}")), Vec::new()),
        },
        SinkKind::Elasticsearch(cfg) => match ElasticsearchSink::new(cfg) {
            Ok(sink) => (sink.healthcheck().await, Vec::new()),
            Err(e) => (Err(format!("{e:#}")), Vec::new()),
        },
        SinkKind::Syslog(cfg) => match SyslogSink::new(cfg, msgid(config)) {
            Ok(mut sink) => (sink.healthcheck().await, Vec::new()),
            Err(e) => (Err(format!("{e:#}")), Vec::new()),
        },
        SinkKind::Webhook(cfg) => match WebhookSink::new(cfg) {
            Ok(sink) => (sink.healthcheck().await, Vec::new()),
            Err(e) => (Err(format!("{e:#}")), Vec::new()),
        },
        SinkKind::Archive(cfg) => archive::check(&config.name, cfg).await,
    };
    redactor.learn_session_secrets(session);
    Some(match checked {
        Ok(text) => Ok(redactor.redact(&text)),
        Err(text) => Err(redactor.redact(&text)),
    })
}

/// The redaction of everything `config`'s destination answers: every secret
/// the sink is configured with, in the forms it can be echoed in (see
/// `redact`). Each sink type lists its secrets here; the compiler asks a new
/// type to do the same.
pub fn redactor_for(config: &SinkConfig) -> Redactor {
    let mut r = Redactor::new();
    match &config.kind {
        SinkKind::File(_) => {}
        SinkKind::SplunkHec(c) => r.add(c.token.expose_secret()),
        SinkKind::Datadog(c) => r.add(c.api_key.expose_secret()),
        SinkKind::Sumo(c) => r.add_secret_url(c.url.expose_secret()),
        SinkKind::Sentinel(c) => r.add(c.client_secret.expose_secret()),
        SinkKind::Elasticsearch(c) => {
            match &c.auth {
                ElasticsearchAuth::ApiKey(key) => r.add_base64_credential(key.expose_secret()),
                ElasticsearchAuth::Basic { username, password } => {
                    r.add_basic_auth(username, password.expose_secret())
                }
            }
            if let Some(password) = reqwest::Url::parse(&c.url)
                .ok()
                .and_then(|u| u.password().map(str::to_string))
            {
                r.add(&password);
            }
        }
        // The client key stays in its file; nothing of it reaches a message.
        SinkKind::Syslog(_) => {}
        SinkKind::Webhook(c) => {
            let secret = c.secret.expose_secret();
            r.add(secret);
            if let Some(key) = secret.trim().strip_prefix(webhook::SECRET_PREFIX) {
                r.add_base64_credential(key);
            }
            r.add_secret_url(c.url.expose_secret());
        }
        SinkKind::Archive(c) => match &c.backend {
            ArchiveBackend::Local { .. } => {}
            // Credentials come from the environment or a credentials
            // service; the backend adds the ones it signs with
            // (`S3Backend::session_secrets`).
            ArchiveBackend::S3(_) => {
                for name in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
                    if let Ok(value) = std::env::var(name) {
                        r.add(&value);
                    }
                }
            }
        },
    }
    r
}

impl Destination {
    /// Secrets the destination obtained at run time (an access token).
    fn session_secrets(&self) -> Vec<String> {
        match self {
            Destination::Sentinel(sink) => sink.session_secrets(),
            Destination::File(_) | Destination::Datadog(_) | Destination::SplunkHec(_) => {
                Vec::new()
            }
            Destination::Sumo(_) | Destination::Elasticsearch(_) => Vec::new(),
            Destination::Syslog(_) | Destination::Webhook(_) => Vec::new(),
        }
    }

    /// Ends the destination's connection the way its protocol asks.
    async fn close(&mut self) {
        if let Destination::Syslog(sink) = self {
            // A receiver that did not close cleanly is logged by the sink.
            let _ = sink.close().await;
        }
    }

    /// The file length to commit with the cursor (file sinks only).
    fn offset(&self) -> Option<i64> {
        match self {
            Destination::File(sink) => Some(sink.offset() as i64),
            Destination::Datadog(_) | Destination::Sentinel(_) => None,
            Destination::SplunkHec(_) | Destination::Sumo(_) => None,
            Destination::Elasticsearch(_) => None,
            Destination::Syslog(_) | Destination::Webhook(_) => None,
        }
    }
}

/// Sends one batch and says what became of it. Every text of the outcome
/// (reasons, the destination's answers for dead letters) passes through
/// the sink's `redactor` here, before anything logs, stores or prints it:
/// this is the one way an outcome leaves a destination.
async fn deliver(
    destination: &mut Destination,
    redactor: &mut Redactor,
    records: &[BatchRecord],
) -> Outcome {
    let outcome = send_batch(destination, records).await;
    redactor.learn_session_secrets(destination.session_secrets());
    outcome.redacted(redactor)
}

async fn send_batch(destination: &mut Destination, records: &[BatchRecord]) -> Outcome {
    match destination {
        Destination::File(sink) => {
            match sink.write_batch(records) {
                Ok(_) => Outcome::delivered(),
                // Disk full, permissions, I/O errors: the operator can fix
                // them, and the journal keeps the batch until then. The
                // file is reconciled before the retry (`prepare_file`).
                Err(e) => file_retry("writing", sink.path(), &e),
            }
        }
        Destination::Datadog(sink) => sink.send(records).await,
        Destination::Sentinel(sink) => sink.send(records).await,
        Destination::SplunkHec(sink) => sink.send(records).await,
        Destination::Sumo(sink) => sink.send(records).await,
        Destination::Elasticsearch(sink) => sink.send(records).await,
        Destination::Syslog(sink) => sink.send(records).await,
        Destination::Webhook(sink) => sink.send(records).await,
    }
}

/// A failed file operation: retried with backoff, reconciled first.
fn file_retry(action: &str, path: &std::path::Path, e: &std::io::Error) -> Outcome {
    Outcome::Retry {
        after: None,
        reason: file::describe_error(action, path, e),
    }
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

/// Exponential backoff with jitter from 1 s to 60 s and no retry cap: the
/// journal makes waiting safe.
fn retry_policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(60))
        .with_jitter()
        .without_max_times()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BatchConfig, FileSinkConfig};
    use crate::store::{JournalRecord, PageCommit, Store, WindowKind, WindowRow};

    fn journal(path: &std::path::Path, ids: &[&str]) {
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
                kind: SinkKind::File(FileSinkConfig {
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

        let mut first = task(&db, &out);
        let destination = first.open_destination(Arc::new(RealDisk)).await.unwrap();
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
        if let SinkKind::File(cfg) = &mut t.config.kind {
            cfg.max_bytes = 20;
            cfg.max_files = 1;
        }
        let mut destination = t.open_destination(Arc::new(RealDisk)).await.unwrap();
        let line = BatchRecord {
            seq: 1,
            activity_id: "a".into(),
            created_at_ms: 1,
            payload: "0123456789abcdef".into(),
        };
        let batch = std::slice::from_ref(&line);
        assert!(
            !t.prepare_file(&mut destination, batch)
                .await
                .unwrap()
                .unwrap()
        );
        let Destination::File(sink) = &mut destination else {
            unreachable!()
        };
        sink.write_batch(batch).unwrap();
        Store::open(&db)
            .unwrap()
            .advance_sink("file", 1, Some(17), 1, &[], 1)
            .unwrap();
        assert!(
            !t.prepare_file(&mut destination, batch)
                .await
                .unwrap()
                .unwrap()
        );
        let cursor = Store::open(&db).unwrap().sink_cursor("file").unwrap();
        assert_eq!((cursor.seq, cursor.file_offset), (1, Some(0)));
        assert!(dir.path().join("out.ndjson.1").exists());
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
