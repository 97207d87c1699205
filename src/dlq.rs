//! Dead letters and replays: `claudit dlq list|show|replay|purge` and
//! `claudit replay`.
//!
//! A dead letter is a journal record a destination rejected deterministically
//! (per-event 4xx, too large). It stays in the `dead_letters` table with the
//! destination's answer until it is replayed successfully or purged. Its
//! payload is read from the journal, so a replay after a fix (a mapping, a
//! size limit) sends exactly what was journaled, as long as the record is
//! within the journal's retention (`state.retention`); after that, `show`
//! and `replay` say it is gone.
//!
//! `claudit replay` re-sends a created_at range of the journal through one
//! sink (a new SIEM, a re-indexed index) without moving that sink's cursor.
//! Both go through the sink's own destination code, so the same encoding,
//! limits and classification apply; neither works for file sinks (see
//! [`Replayer`]).

use std::fmt::Write as _;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, SinkConfig};
use crate::directory::Directory;
use crate::ocsf::Mapper;
use crate::sinks::Replayer;
use crate::sinks::contract::Outcome;
use crate::sinks::render::Payload;
use crate::store::{
    BatchRecord, DeadLetter, NewDeadLetter, SharedStore, Store, StoreError, now_ms,
};

/// Attempts per batch in `claudit replay` before giving up on a retryable
/// failure (the run can simply be started again).
const REPLAY_ATTEMPTS: usize = 5;

fn find_sink(config: &Config, name: &str) -> anyhow::Result<SinkConfig> {
    config.delivery(name).ok_or_else(|| {
        let names = config.deliveries();
        anyhow::anyhow!(
            "no sink named {name:?} in {}; configured sinks: {}",
            config.file.display(),
            names.join(", ")
        )
    })
}

/// The mapper the daemon renders with: `config`'s `[ocsf]` settings and
/// the directory of the sources that have one.
fn mapper(config: &Config) -> Result<Arc<Mapper>, StoreError> {
    let directory = Directory::open(&config.state.path, config.directories())?;
    Ok(Arc::new(
        Mapper::new(&config.ocsf).with_directory(directory),
    ))
}

/// The form `sink` reads journal records in, rendered by `mapper` as the
/// daemon would.
fn payload_form(sink: &SinkConfig, mapper: &Arc<Mapper>) -> Payload {
    Payload::of(sink, mapper)
}

fn fmt_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

/// `claudit dlq list`: one line per dead letter.
pub fn list(config: &Config, sink: &str) -> anyhow::Result<String> {
    let sink = find_sink(config, sink)?;
    let store = Store::open_readonly(&config.state.path)?;
    let dead = store.dead_letters(&sink.name, None)?;
    let mut out = String::new();
    if dead.is_empty() {
        writeln!(out, "sink {}: no dead letters", sink.name)?;
        return Ok(out);
    }
    writeln!(
        out,
        "{:>6}  {:>10}  {:<36}  {:<20}  REASON",
        "ID", "SEQ", "ACTIVITY ID", "TIME"
    )?;
    for d in &dead {
        writeln!(
            out,
            "{:>6}  {:>10}  {:<36}  {:<20}  {}",
            d.id,
            d.seq,
            d.activity_id,
            fmt_ms(d.at_ms),
            d.reason
        )?;
    }
    writeln!(
        out,
        "{} dead letter(s); `claudit dlq show --sink {} --id N` shows one, `claudit dlq replay --sink {}` re-sends them",
        dead.len(),
        sink.name,
        sink.name
    )?;
    Ok(out)
}

/// `claudit dlq show`: the full answer and the journaled payload.
pub fn show(config: &Config, sink: &str, id: i64) -> anyhow::Result<String> {
    let sink = find_sink(config, sink)?;
    let store = Store::open_readonly(&config.state.path)?;
    let d = one(&store, &sink.name, id)?;
    let mut out = String::new();
    writeln!(out, "id:          {}", d.id)?;
    writeln!(out, "sink:        {}", d.sink)?;
    writeln!(out, "seq:         {}", d.seq)?;
    writeln!(out, "activity id: {}", d.activity_id)?;
    writeln!(out, "rejected at: {}", fmt_ms(d.at_ms))?;
    writeln!(out, "reason:      {}", d.reason)?;
    writeln!(out, "response:    {}", d.response)?;
    match store.journal_record(d.seq, &payload_form(&sink, &mapper(config)?))? {
        Some(r) => writeln!(out, "payload:     {}", r.payload)?,
        None => writeln!(
            out,
            "payload:     (no longer in the journal; it cannot be replayed)"
        )?,
    }
    Ok(out)
}

fn one(store: &Store, sink: &str, id: i64) -> anyhow::Result<DeadLetter> {
    store.dead_letters(sink, Some(id))?.pop().ok_or_else(|| {
        anyhow::anyhow!(
            "sink {sink} has no dead letter with id {id}; see `claudit dlq list --sink {sink}`"
        )
    })
}

/// What `claudit dlq replay` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DlqReplay {
    /// Accepted by the destination and removed from the table.
    pub delivered: usize,
    /// Rejected again (kept, with the new answer).
    pub rejected: usize,
    /// Not sent: the journal no longer has the payload.
    pub missing: usize,
    /// Not settled: the destination failed (retryable or fatal); kept as is.
    pub failed: usize,
    /// Why the destination failed, if it did.
    pub error: Option<String>,
}

/// `claudit dlq replay`: sends the sink's dead letters (all, or one) through
/// its destination once. Accepted ones are removed; rejected ones stay with
/// the new answer; on a retryable or fatal failure nothing changes.
pub async fn replay_dead_letters(
    config: &Config,
    sink: &str,
    id: Option<i64>,
) -> anyhow::Result<DlqReplay> {
    let sink = find_sink(config, sink)?;
    let store = SharedStore::open(&config.state.path)?;
    let name = sink.name.clone();
    let dead = store.call(move |s| s.dead_letters(&name, id)).await?;
    if let (Some(id), true) = (id, dead.is_empty()) {
        anyhow::bail!(
            "sink {} has no dead letter with id {id}; see `claudit dlq list --sink {}`",
            sink.name,
            sink.name
        );
    }
    let mapper = mapper(config)?;
    let form = payload_form(&sink, &mapper);
    let mut summary = DlqReplay::default();
    // Payloads from the journal; one dead letter per record (the oldest id
    // wins if a record was dead-lettered twice).
    let mut pending: Vec<(DeadLetter, BatchRecord)> = Vec::new();
    for d in dead {
        let seq = d.seq;
        let form = form.clone();
        match store.call(move |s| s.journal_record(seq, &form)).await? {
            Some(record) if !pending.iter().any(|(p, _)| p.seq == seq) => pending.push((d, record)),
            Some(_) => {}
            None => summary.missing += 1,
        }
    }
    if pending.is_empty() {
        return Ok(summary);
    }
    let mut replayer = Replayer::open(&sink).await?;
    for range in batches(pending.iter().map(|(_, r)| r.payload.len()), &sink) {
        let chunk = &pending[range];
        let records: Vec<BatchRecord> = chunk.iter().map(|(_, r)| r.clone()).collect();
        match replayer.send(&records).await {
            Outcome::Delivered { rejected } => {
                let mut delivered = Vec::new();
                let mut again = Vec::new();
                for (d, r) in chunk {
                    match rejected.iter().find(|x| x.seq == r.seq) {
                        Some(x) => again.push((d.id, x.reason.clone(), x.response.clone())),
                        None => delivered.push(d.id),
                    }
                }
                summary.delivered += delivered.len();
                summary.rejected += again.len();
                let (n, now) = (sink.name.clone(), now_ms());
                store
                    .call(move |s| s.settle_dead_letters(&n, &delivered, &again, now))
                    .await?;
            }
            Outcome::Retry { reason, .. } | Outcome::Fatal { reason } => {
                summary.failed += chunk.len();
                summary.error.get_or_insert(reason);
            }
        }
    }
    replayer.close().await;
    Ok(summary)
}

/// Splits items of these payload sizes into consecutive batches within the
/// sink's `batch_max_events` and `batch_max_bytes`, as the sink task reads
/// the journal (a single oversize item is a batch of its own).
fn batches(sizes: impl IntoIterator<Item = usize>, sink: &SinkConfig) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes, mut end) = (0, 0, 0);
    for (i, size) in sizes.into_iter().enumerate() {
        let len = size + 1;
        let count = i - start;
        if count > 0 && (count >= sink.batch.max_events || bytes + len > sink.batch.max_bytes) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += len;
        end = i + 1;
    }
    if start < end {
        out.push(start..end);
    }
    out
}

/// `claudit dlq purge`: deletes dead letters for good. Returns how many.
pub fn purge(config: &Config, sink: &str, id: Option<i64>) -> anyhow::Result<usize> {
    let sink = find_sink(config, sink)?;
    let mut store = Store::open(&config.state.path)?;
    if let Some(id) = id {
        one(&store, &sink.name, id)?;
    }
    Ok(store.purge_dead_letters(&sink.name, id)?)
}

/// What `claudit replay` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RangeReplay {
    /// Records in the range that were sent and acknowledged.
    pub delivered: usize,
    /// Records the destination rejected (now dead letters of the sink).
    pub rejected: usize,
}

/// `claudit replay`: re-sends the journal records created in `[since,
/// until)` through the sink, in journal order, without touching its cursor.
/// Retryable failures are retried with backoff a few times, then the replay
/// stops with an error saying how far it got (rerunning it is safe for
/// Elasticsearch, and a bounded duplicate elsewhere).
pub async fn replay_range(
    config: &Config,
    sink: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    cancel: CancellationToken,
) -> anyhow::Result<RangeReplay> {
    let sink = find_sink(config, sink)?;
    if until <= since {
        anyhow::bail!("--until ({until}) must be after --since ({since})");
    }
    let store = SharedStore::open(&config.state.path)?;
    let mapper = mapper(config)?;
    let form = payload_form(&sink, &mapper);
    let mut replayer = Replayer::open(&sink).await?;
    let (since_ms, until_ms) = (since.timestamp_millis(), until.timestamp_millis());
    let mut after = 0i64;
    let mut summary = RangeReplay::default();
    loop {
        if cancel.is_cancelled() {
            anyhow::bail!(
                "interrupted after {} records; rerun the same command to finish",
                summary.delivered + summary.rejected
            );
        }
        let limit = sink.batch.max_events;
        let records = store
            .call({
                let form = form.clone();
                move |s| s.read_range(since_ms, until_ms, after, limit, &form)
            })
            .await?;
        let Some(range) = batches(records.iter().map(|r| r.payload.len()), &sink)
            .into_iter()
            .next()
        else {
            break;
        };
        let batch = &records[range];
        after = batch.last().map(|r| r.seq).unwrap_or(after);
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_secs(1))
            .with_max_delay(Duration::from_secs(30))
            .with_jitter()
            .build();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match replayer.send(batch).await {
                Outcome::Delivered { rejected } => {
                    summary.rejected += rejected.len();
                    summary.delivered += batch.len() - rejected.len();
                    if !rejected.is_empty() {
                        let dead: Vec<NewDeadLetter> = rejected
                            .into_iter()
                            .map(|r| NewDeadLetter {
                                seq: r.seq,
                                activity_id: r.activity_id,
                                reason: r.reason,
                                response: r.response,
                            })
                            .collect();
                        let (n, now) = (sink.name.clone(), now_ms());
                        store
                            .call(move |s| s.add_dead_letters(&n, &dead, now))
                            .await?;
                    }
                    break;
                }
                Outcome::Retry {
                    after: wait,
                    reason,
                } if attempt < REPLAY_ATTEMPTS => {
                    let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                    let delay = wait.map_or(delay, |w| w.max(delay));
                    tracing::warn!(sink = %sink.name, error = %reason, retry_in_ms = delay.as_millis() as u64,
                        "replay batch failed; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                Outcome::Retry { reason, .. } | Outcome::Fatal { reason } => {
                    anyhow::bail!(
                        "sink {}: {reason}; {} records were sent before this failure; rerun the \
                         same command once the destination is back",
                        sink.name,
                        summary.delivered + summary.rejected
                    );
                }
            }
        }
    }
    replayer.close().await;
    Ok(summary)
}
