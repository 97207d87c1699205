//! The `archive` sink: audit evidence. Every journaled activity's raw JSON,
//! byte-for-byte as received, in gzip NDJSON segments listed by a
//! hash-chained manifest, on a local directory or S3 (with Object Lock).
//!
//! # Design
//!
//! **Groups and sealing.** A segment holds one source's records of one hour
//! of `created_at`. Source S's hour H is *sealed* once S's watermark is at
//! or past H's end: every record of H visible by then is journaled
//! (a page and the watermark it justifies commit together). Records of H
//! journaled after H's segment was written (sweep late arrivals,
//! backfills) go into a *late* segment of S whose manifest entry lists the
//! hours it covers; an hour with no segment yet gets an ordinary one.
//!
//! **Flushes and the cursor.** A flush reads the journal in seq order from
//! the sink's cursor, in batches, and routes each record to its group's
//! segment writer (gzip into a temp file: a segment is never held in
//! memory). It stops at the first record of a not-yet-sealed group (or
//! before opening more than [`MAX_GROUPS`] segments), so the cursor is
//! always "everything up to here is archived", and records after the stop
//! wait in the journal (held by the cursor) until their hour seals. The
//! archive therefore trails the live feed by about an hour plus the
//! source's settle lag; a source whose watermark stops advancing holds back
//! the records journaled after its first unsealed one.
//!
//! **Commit order.** Segments are stored first (local: temp + fsync +
//! rename + directory fsync; S3: one PUT each, with Object Lock), then the
//! manifest lines are appended (local: one write + fsync; S3: one object
//! per flush), then the cursor advances together with the manifest length
//! (kept in the cursor's `file_offset` column, which `verify` uses to
//! detect a truncated manifest).
//!
//! **Restart reconciliation.** A crash after the manifest append but before
//! the cursor moved leaves listed segments past the cursor. Each manifest
//! entry carries its source, hours and journal seq range, and a record is
//! archived iff an entry of its source has its hour and a range containing
//! its seq (within a flush a group's records go to exactly one segment, and
//! flushes cover disjoint seq ranges). On startup the entries ending past
//! the cursor are kept aside, and the next flush skips the records they
//! hold: a flush cut short is redone without archiving anything twice.
//! Segment names are a pure function of the records (source, hour, seq
//! range) and the gzip output is deterministic, so a rewritten segment
//! either has the name and bytes of the unlisted file it replaces or a new
//! name; it never shadows a listed segment.
//!
//!
//! The format itself (manifest, hash chain, segments, the two backends)
//! is `archive/`'s, shared with `claudit archive verify` and `export`.

mod settings;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::archive::manifest::{
    self, GENESIS, HOUR_MS, ManifestEntry, SegmentKind, format_hour, format_ms, hour_of,
};
use crate::archive::segment::{FinishedSegment, SegmentWriter};
use crate::archive::{Backend, ManifestLine};
use crate::sinks::settings::SinkConfig;
use crate::store::{ArchiveRow, SharedStore, now_ms};
use crate::wake::{self, Wake};
pub use settings::{ArchiveSinkConfig, TYPE};

use super::{RetryBackoff, SinkStats, record_error_and_wait};

/// Segments open at once in one flush; the flush ends before the record
/// that would open one more (the next flush goes on from there).
pub const MAX_GROUPS: usize = 32;
/// Journal rows read per batch.
const READ_BATCH: usize = 2000;
/// How often a waiting archive re-checks whether its next hour sealed.
const SEAL_POLL: Duration = Duration::from_secs(2);

/// What the sink knows from the manifest.
struct ManifestState {
    lines: u64,
    /// Hash of the last line (the next line's `prev`).
    head: String,
    /// Source-hours that have an `hour` segment.
    hour_segments: HashSet<(String, i64)>,
    /// Entries past the cursor: their records are archived already.
    pending: Vec<ManifestEntry>,
    next_flush: u64,
}

impl ManifestState {
    fn load(lines: &[ManifestLine], cursor_seq: i64, sink: &str) -> anyhow::Result<ManifestState> {
        let mut state = ManifestState {
            lines: 0,
            head: GENESIS.to_string(),
            hour_segments: HashSet::new(),
            pending: Vec::new(),
            next_flush: 1,
        };
        for line in lines {
            let entry = ManifestEntry::parse(&line.bytes).map_err(|e| {
                anyhow::anyhow!(
                    "sink {sink}: {} is damaged ({e}); the sink does not append to a damaged \
                     manifest. Run `claudit archive verify --sink {sink}` for the details and restore \
                     the manifest from a copy",
                    line.location
                )
            })?;
            let hours = entry.hour_starts().ok_or_else(|| {
                anyhow::anyhow!(
                    "sink {sink}: {} has an invalid hour list; run `claudit archive verify --sink {sink}`",
                    line.location
                )
            })?;
            if entry.kind == SegmentKind::Hour {
                for h in hours {
                    state.hour_segments.insert((entry.source.clone(), h));
                }
            }
            state.next_flush = state.next_flush.max(entry.flush + 1);
            state.head = manifest::line_hash(&line.bytes);
            state.lines += 1;
            if entry.seq_last > cursor_seq {
                state.pending.push(entry);
            }
        }
        Ok(state)
    }

    fn is_archived(&self, row: &ArchiveRow) -> bool {
        let hour = hour_of(row.created_at_ms);
        self.pending
            .iter()
            .any(|e| e.source == row.source && e.covers(hour, row.seq))
    }
}

/// Which segment a record goes to. Ordered so a flush's segments and
/// manifest lines come out sorted by source, then hour, late last.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    Hour(String, i64),
    Late(String),
}

impl Group {
    fn source(&self) -> &str {
        match self {
            Group::Hour(s, _) | Group::Late(s) => s,
        }
    }
}

/// Sorts `Late` after every `Hour` of the same source.
fn group_order(g: &Group) -> (String, u8, i64) {
    match g {
        Group::Hour(s, h) => (s.clone(), 0, *h),
        Group::Late(s) => (s.clone(), 1, 0),
    }
}

/// The archive sink's task: its own loop instead of `SinkTask`'s batches,
/// because its cursor only moves over whole sealed hours.
pub struct ArchiveTask {
    pub config: SinkConfig,
    pub archive: ArchiveSinkConfig,
    pub store: SharedStore,
    pub journal_head: watch::Receiver<u64>,
    /// The sink's Prometheus counters: a flush counts as a batch, its
    /// records as delivered, a failed flush as a retry.
    pub counters: crate::metrics::SinkMetrics,
    /// Removes the sink's secrets from every error before it is logged or
    /// stored (`sinks::redactor_for`).
    pub redactor: crate::redact::Redactor,
}

/// What the last flushes saw of the journal past the cursor (in memory;
/// a restart begins with a full scan).
#[derive(Default)]
struct Scan {
    /// Every record in `(cursor, scanned]` is archived or in an unsealed
    /// hour; `None` = scan again from the cursor.
    scanned: Option<i64>,
    /// The first record of an unsealed hour in that range.
    first_unsealed: Option<i64>,
    /// Per source, the earliest end of an unsealed hour seen: once the
    /// watermark reaches it, the scan starts again from the cursor.
    awaiting: HashMap<String, i64>,
}

/// The outcome of one flush.
enum Flushed {
    /// Nothing new could be archived.
    Nothing,
    Archived {
        records: u64,
        segments: usize,
    },
    Cancelled,
}

impl ArchiveTask {
    pub async fn run(mut self, cancel: CancellationToken) -> anyhow::Result<SinkStats> {
        let name = self.config.name.clone();
        let state_dir = state_dir(&self.store).await;
        let (mut backend, lines) =
            Backend::open_writer(&name, &self.archive.backend, &state_dir).await?;
        let cursor = {
            let n = name.clone();
            self.store.call(move |s| s.sink_cursor(&n)).await?
        };
        let mut manifest = ManifestState::load(&lines, cursor.seq, &name)?;
        info!(
            manifest_lines = manifest.lines,
            reconciled_segments = manifest.pending.len(),
            "archive sink started"
        );
        let mut stats = SinkStats::default();
        let mut scan = Scan::default();
        let mut backoff = RetryBackoff::new();
        loop {
            if cancel.is_cancelled() {
                break;
            }
            match self
                .flush(&mut backend, &mut manifest, &mut scan, &cancel)
                .await
            {
                Ok(Flushed::Cancelled) => break,
                Ok(Flushed::Archived { records, segments }) => {
                    stats.batches += 1;
                    stats.delivered += records;
                    self.counters.batches.inc();
                    self.counters.delivered.inc_by(records);
                    backoff.reset();
                    debug!(records, segments, "archive flush committed");
                }
                Ok(Flushed::Nothing) => {
                    backoff.reset();
                    self.wait_for_work(&scan.awaiting, &cancel).await;
                }
                Err(e) => {
                    // Whatever the failed flush wrote is unlisted or listed
                    // past the cursor: start over from the cursor.
                    scan = Scan::default();
                    self.counters.retries.inc();
                    let delay = backoff.next_delay();
                    self.redactor
                        .learn_session_secrets(backend.session_secrets());
                    let reason = self.redactor.redact(&format!("{e:#}"));
                    warn!(error = %reason, retry_in_ms = delay.as_millis() as u64,
                        "archiving failed; the records stay in the journal and the flush is redone");
                    if record_error_and_wait(&self.store, &name, reason, delay, &cancel).await? {
                        break;
                    }
                }
            }
        }
        info!(
            flushes = stats.batches,
            archived = stats.delivered,
            "archive sink stopped"
        );
        Ok(stats)
    }

    /// Sleeps until new records are journaled, an awaited hour seals, or
    /// shutdown.
    async fn wait_for_work(&mut self, awaiting: &HashMap<String, i64>, cancel: &CancellationToken) {
        loop {
            match wake::next(&mut self.journal_head, SEAL_POLL, cancel).await {
                Wake::Shutdown | Wake::Look => return,
                Wake::Poll => {}
            }
            match self.sealed_since(awaiting).await {
                Ok(false) => {}
                // A seal, or a journal `claudit backfill` wrote from
                // another process (no wake-up): look again.
                Ok(true) | Err(_) => return,
            }
        }
    }

    /// Whether a source's watermark reached an awaited hour end.
    async fn sealed_since(&self, awaiting: &HashMap<String, i64>) -> anyhow::Result<bool> {
        for (source, hour_end) in awaiting {
            let (source, hour_end) = (source.clone(), *hour_end);
            let watermark = self
                .store
                .call(move |s| s.source_state(&source).map(|st| st.watermark_ms))
                .await?;
            if watermark.is_some_and(|w| w >= hour_end) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One pass: archive the sealed records after the cursor that are not
    /// archived yet, and move the cursor to just before the first record
    /// of an unsealed hour. Scans only the new records unless an awaited
    /// hour sealed.
    async fn flush(
        &mut self,
        backend: &mut Backend,
        manifest: &mut ManifestState,
        scan: &mut Scan,
        cancel: &CancellationToken,
    ) -> anyhow::Result<Flushed> {
        let name = self.config.name.clone();
        let cursor = {
            let n = name.clone();
            self.store.call(move |s| s.sink_cursor(&n)).await?.seq
        };
        // One watermark snapshot per flush, taken before deciding what to
        // scan: a record is judged sealed or not against the same values
        // as the awaited hours, so no hour is split by a watermark moving
        // mid-flush.
        let mut watermarks: HashMap<String, i64> = HashMap::new();
        for source in scan.awaiting.keys() {
            let s2 = source.clone();
            let w = self
                .store
                .call(move |s| s.source_state(&s2))
                .await?
                .watermark_ms
                .unwrap_or(i64::MIN);
            watermarks.insert(source.clone(), w);
        }
        let sealed = scan
            .awaiting
            .iter()
            .any(|(source, end)| watermarks.get(source).is_some_and(|w| w >= end));
        let full = match scan.scanned {
            None => true,
            Some(scanned) => scanned < cursor || sealed,
        };
        let mut next = if full {
            Scan {
                scanned: Some(cursor),
                first_unsealed: None,
                awaiting: HashMap::new(),
            }
        } else {
            Scan {
                scanned: scan.scanned,
                first_unsealed: scan.first_unsealed,
                awaiting: scan.awaiting.clone(),
            }
        };
        let mut after = next.scanned.unwrap_or(cursor);
        let mut groups: BTreeMap<Group, SegmentWriter> = BTreeMap::new();
        let mut archived = 0u64;
        let tmp_dir = backend.tmp_dir();
        loop {
            let batch = self
                .store
                .call(move |s| s.read_archive_batch(after, READ_BATCH))
                .await?;
            if batch.is_empty() {
                break;
            }
            for row in &batch {
                if !watermarks.contains_key(&row.source) {
                    let source = row.source.clone();
                    let w = self
                        .store
                        .call(move |s| s.source_state(&source))
                        .await?
                        .watermark_ms
                        .unwrap_or(i64::MIN);
                    watermarks.insert(row.source.clone(), w);
                }
            }
            // Compressing a batch takes milliseconds: like the other sinks'
            // gzip, it runs inline.
            let routed = route(
                &batch,
                manifest,
                &watermarks,
                &mut groups,
                &mut next,
                &tmp_dir,
            )?;
            archived += routed.archived;
            after = next.scanned.unwrap_or(after);
            if routed.full {
                break;
            }
            if cancel.is_cancelled() {
                // Temp files are deleted on drop; nothing was listed.
                return Ok(Flushed::Cancelled);
            }
        }
        let scanned = next.scanned.unwrap_or(cursor);
        let new_cursor = next.first_unsealed.map_or(scanned, |f| f - 1).max(cursor);

        let flush = manifest.next_flush;
        let mut ordered: Vec<(Group, SegmentWriter)> = groups.into_iter().collect();
        ordered.sort_by_key(|(g, _)| group_order(g));
        let finished = ordered
            .into_iter()
            .map(|(_, w)| w.finish())
            .collect::<std::io::Result<Vec<FinishedSegment>>>()?;
        if finished.is_empty() && new_cursor == cursor {
            *scan = next;
            return Ok(Flushed::Nothing);
        }
        let mut lines = Vec::with_capacity(finished.len());
        let mut entries = Vec::with_capacity(finished.len());
        let mut head = manifest.head.clone();
        let segment_count = finished.len();
        for segment in finished {
            let entry = ManifestEntry {
                segment: segment.name(),
                source: segment.source.clone(),
                kind: segment.kind,
                hours: segment.hours.iter().map(|h| format_hour(*h)).collect(),
                records: segment.records,
                first_created_at: format_ms(segment.first_created_at),
                last_created_at: format_ms(segment.last_created_at),
                sha256: manifest::hex(&segment.sha256),
                bytes: segment.bytes,
                seq_first: segment.seq_first,
                seq_last: segment.seq_last,
                flush,
                prev: head.clone(),
            };
            let line = entry.to_line();
            head = manifest::line_hash(&line);
            backend.store_segment(&entry.segment, segment).await?;
            lines.push(line);
            entries.push(entry);
        }
        if !lines.is_empty() {
            backend.append_manifest(flush, &lines).await?;
        }
        let manifest_lines = manifest.lines + lines.len() as u64;
        let (n, now) = (name.clone(), now_ms());
        self.store
            .call(move |s| {
                s.advance_sink(
                    &n,
                    new_cursor,
                    Some(manifest_lines as i64),
                    archived as i64,
                    &[],
                    now,
                )
            })
            .await?;
        manifest.lines = manifest_lines;
        manifest.head = head;
        if !lines.is_empty() {
            manifest.next_flush += 1;
        }
        for e in entries {
            if e.kind == SegmentKind::Hour {
                for h in e.hour_starts().unwrap_or_default() {
                    manifest.hour_segments.insert((e.source.clone(), h));
                }
            }
            manifest.pending.push(e);
        }
        // Entries wholly at or before the cursor cannot match a record
        // read again.
        manifest.pending.retain(|e| e.seq_last > new_cursor);
        *scan = next;
        Ok(Flushed::Archived {
            records: archived,
            segments: segment_count,
        })
    }
}

/// What routing one batch did.
struct Routed {
    archived: u64,
    /// The flush has [`MAX_GROUPS`] segments open and stopped before a
    /// record that needs one more.
    full: bool,
}

/// Routes a batch into segment writers in seq order: a sealed record not
/// yet archived goes to its group's segment, an unsealed one is noted in
/// `scan` (it holds the cursor back).
fn route(
    batch: &[ArchiveRow],
    manifest: &ManifestState,
    watermarks: &HashMap<String, i64>,
    groups: &mut BTreeMap<Group, SegmentWriter>,
    scan: &mut Scan,
    tmp_dir: &Path,
) -> std::io::Result<Routed> {
    let mut routed = Routed {
        archived: 0,
        full: false,
    };
    for row in batch {
        let hour = hour_of(row.created_at_ms);
        let watermark = watermarks.get(&row.source).copied().unwrap_or(i64::MIN);
        if watermark < hour + HOUR_MS {
            scan.first_unsealed.get_or_insert(row.seq);
            let end = scan.awaiting.entry(row.source.clone()).or_insert(i64::MAX);
            *end = (*end).min(hour + HOUR_MS);
            scan.scanned = Some(row.seq);
            continue;
        }
        if manifest.is_archived(row) {
            scan.scanned = Some(row.seq);
            continue;
        }
        let group = if manifest.hour_segments.contains(&(row.source.clone(), hour)) {
            Group::Late(row.source.clone())
        } else {
            Group::Hour(row.source.clone(), hour)
        };
        if !groups.contains_key(&group) {
            if groups.len() >= MAX_GROUPS {
                routed.full = true;
                return Ok(routed);
            }
            let kind = match group {
                Group::Hour(..) => SegmentKind::Hour,
                Group::Late(_) => SegmentKind::Late,
            };
            let writer = SegmentWriter::create(tmp_dir, group.source(), kind)?;
            groups.insert(group.clone(), writer);
        }
        groups.get_mut(&group).expect("inserted above").push(
            row.seq,
            row.created_at_ms,
            &row.raw,
        )?;
        scan.scanned = Some(row.seq);
        routed.archived += 1;
    }
    Ok(routed)
}

/// The directory of the state database (S3 segments are staged there).
async fn state_dir(store: &SharedStore) -> PathBuf {
    store
        .call(|s| {
            s.path()
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."))
        })
        .await
}
