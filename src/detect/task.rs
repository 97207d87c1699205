//! The detection task: one per daemon, it reads the journal after its own
//! durable cursor, evaluates the rules, and journals the findings with the
//! cursor that justifies them, in one transaction
//! ([`crate::store::Store::commit_detections`]).
//!
//! - **Once.** A finding's uid is a function of its rule, group key and
//!   anchor activity; the findings table keeps a uid once, and a journal
//!   row is read once (the journal keeps an activity id once), so a sweep
//!   re-read, a restart or a replay never produces a second finding.
//! - **Crash safety.** Correlation state lives in memory. At start-up
//!   ([`rebuild`]) the findings that suppression needs are restored, and
//!   the journal rows a window may still need (created within the longest
//!   window, suppression and late-arrival allowance of the next rows to
//!   evaluate, or journaled within it, as a backfill's old history is) are
//!   evaluated again with firing disabled (`replay`). A window cut by a
//!   crash is therefore completed, and fires, exactly as it would have;
//!   one that had fired is suppressed by its journaled finding.
//! - **Late and backfilled activity.** Windows are on `created_at`: a row
//!   a sweep journaled late is evaluated when it arrives and completes the
//!   window it belongs to. Rows a backfill window read give retrospective
//!   findings (`finding_info.types`), as do rows that arrive later than the
//!   late-arrival allowance.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::engine::{Engine, Input};
use super::finding::{Finding, FiredAnchor};
use super::load::RuleSet;
use super::metrics::DetectionMetrics;
use super::settings::DetectionSettings;
use crate::directory::Directory;
use crate::directory::detect::DirectoryFacts;
use crate::model::Activity;
use crate::ocsf::JournalContext;
use crate::store::{DetectionCommit, DetectionRow, SharedStore, Store, StoreError, now_ms};
use crate::wake::{self, Wake};

/// Journal rows evaluated per transaction.
pub const BATCH_ROWS: usize = 512;
/// Rows re-fed per read at start-up.
const REBUILD_ROWS: usize = 4096;
/// How far apart two rows' `journaled_at` may be out of seq order
/// (sources commit concurrently, each with the time its page was asked
/// for); the start-up rebuild reaches this much further back.
const ARRIVAL_MARGIN_MS: i64 = 10 * 60 * 1000;
/// The task looks at the journal this often even without a notification.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// The engine and what evaluating journal rows needs besides it.
pub struct Detector {
    pub engine: Engine,
    /// The directory of the sources that have one (the directory rules
    /// judge their rows with it, as of each activity's time).
    directory: Option<Arc<Directory>>,
    /// Parsed enrichment contexts by their JSON text: an organization's
    /// activities repeat a few hundred (its people's addresses and clients).
    contexts: HashMap<String, Arc<JournalContext>>,
}

/// Contexts kept parsed; the cache starts over when full.
const CONTEXTS_KEPT: usize = 4096;

impl Detector {
    pub fn new(engine: Engine) -> Detector {
        Detector {
            engine,
            directory: None,
            contexts: HashMap::new(),
        }
    }

    /// Rows of the sources `directory` covers are judged by the directory
    /// rules.
    pub fn with_directory(mut self, directory: Option<Arc<Directory>>) -> Detector {
        self.directory = directory;
        self
    }

    /// What the directory says of `row`, when its source has a directory
    /// and an enabled rule asks, beside the row's `activity` handed back:
    /// the directory reads the row's typed projection (actor, subject),
    /// built from the fields already parsed rather than from the text again.
    fn directory_facts(
        &self,
        row: &DetectionRow,
        activity: Value,
    ) -> (Value, Option<DirectoryFacts>) {
        let Some(directory) = self.directory.as_ref().filter(|d| d.covers(&row.source)) else {
            return (activity, None);
        };
        if !self.engine.needs_directory() {
            return (activity, None);
        }
        let Value::Object(fields) = activity else {
            return (activity, None);
        };
        let created =
            chrono::DateTime::from_timestamp_millis(row.created_at_ms).unwrap_or_default();
        let typed = Activity::from_fields(fields, row.raw.as_str().into(), created);
        let facts = directory.facts(&row.source, row.seq, &typed);
        (Value::Object(typed.fields), facts)
    }

    fn context(&mut self, text: Option<&str>) -> Arc<JournalContext> {
        let Some(text) = text else {
            return Arc::default();
        };
        if let Some(hit) = self.contexts.get(text) {
            return Arc::clone(hit);
        }
        // An unreadable context (a damaged row) evaluates without
        // enrichment: the geo and user-agent fields are absent.
        let parsed: Arc<JournalContext> = Arc::new(serde_json::from_str(text).unwrap_or_default());
        if self.contexts.len() >= CONTEXTS_KEPT {
            self.contexts.clear();
        }
        self.contexts.insert(text.to_string(), Arc::clone(&parsed));
        parsed
    }
}

pub struct DetectionTask {
    /// The rules and settings an engine is built from: at start-up, and
    /// again after a failure (the engine's windows are then rebuilt from
    /// the journal, as after a crash).
    pub rules: RuleSet,
    pub settings: DetectionSettings,
    pub store: SharedStore,
    /// Bumped by the sources when they journal new rows.
    pub journal_head: watch::Receiver<u64>,
    /// Bumped here when findings are journaled (sinks of findings wait on it).
    pub findings_head: watch::Sender<u64>,
    pub metrics: DetectionMetrics,
    /// The directory opened beside the sinks' (see [`Detector`]).
    pub directory: Option<Arc<Directory>>,
}

/// What the start-up rebuild did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// The cursor evaluation resumes after.
    pub cursor: i64,
    /// Findings restored for suppression.
    pub restored: usize,
    /// Journal rows re-fed with firing disabled.
    pub replayed: usize,
}

/// What one evaluation step did.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// The cursor after it.
    pub cursor: i64,
    /// Rows evaluated (0: the journal has nothing after the cursor).
    pub rows: usize,
    /// Rows that could not be evaluated.
    pub errors: usize,
    /// Findings new to the journal.
    pub journaled: Vec<Finding>,
    /// Findings produced again (already journaled).
    pub repeated: usize,
    /// How long ago the oldest row still to evaluate was journaled (0
    /// when none is left).
    pub lag_ms: i64,
}

/// After a failed step the task waits this long first, doubling up to
/// `RETRY_MAX`, then starts over from the committed cursor.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

impl DetectionTask {
    /// Evaluates the journal until `cancel`. A step that fails (the state
    /// database busy, full or refusing a write) is never the end of
    /// detection: the error is logged, counted
    /// (`claudit_detection_failures_total`, `claudit_detection_failing`)
    /// and kept for `status`, and after a backoff the task starts over
    /// from its committed cursor with windows rebuilt from the journal,
    /// exactly as after a crash (the failed step's evaluation was in
    /// memory only, and its findings are derived again with the same
    /// uids). Only an engine that cannot be built ends the task (the
    /// rules were checked when the configuration was loaded).
    pub async fn run(mut self, cancel: CancellationToken) -> anyhow::Result<()> {
        let mut retry = RETRY_FIRST;
        loop {
            let engine = Engine::new(&self.rules, &self.settings)
                .map_err(|e| anyhow::anyhow!("detection rules: {e}"))?;
            let error = match self.evaluate(engine, &cancel, &mut retry).await {
                Ok(()) => {
                    self.stopped();
                    return Ok(());
                }
                Err(error) => error,
            };
            self.metrics.failed();
            let reason = error.to_string();
            warn!(error = %reason, retry_in_secs = retry.as_secs(),
                "detection failed; nothing is lost: it starts over from its committed cursor, \
                 with its windows rebuilt from the journal");
            let (text, at) = (reason.clone(), now_ms());
            if let Err(e) = self
                .store
                .call(move |s| s.record_detection_error(&text, at))
                .await
            {
                warn!(error = %e, "could not record the detection error for status");
            }
            tokio::select! {
                _ = cancel.cancelled() => {
                    self.stopped();
                    return Ok(());
                }
                _ = tokio::time::sleep(retry) => {}
            }
            retry = (retry * 2).min(RETRY_MAX);
        }
    }

    /// The task ends: its windows are freed, so their series go (a reload
    /// that keeps detections on sets them again after its rebuild; one that
    /// turns detections off would otherwise leave the last values).
    fn stopped(&self) {
        self.metrics.windows::<&str>(&[]);
    }

    /// Rebuilds `engine`'s windows, then evaluates the journal until
    /// `cancel` (`Ok`) or a store error. A committed step resets `retry`.
    async fn evaluate(
        &mut self,
        engine: Engine,
        cancel: &CancellationToken,
        retry: &mut Duration,
    ) -> Result<(), StoreError> {
        let directory = self.directory.clone();
        let (mut engine, rebuilt, held) = self
            .store
            .call(move |s| {
                let mut engine = Detector::new(engine).with_directory(directory);
                let rebuilt = rebuild(s, &mut engine, now_ms());
                let held = held_by_rule(&engine);
                (engine, rebuilt, held)
            })
            .await;
        let rebuilt = rebuilt?;
        self.metrics.windows(&held);
        info!(
            cursor = rebuilt.cursor,
            restored = rebuilt.restored,
            replayed = rebuilt.replayed,
            "detections running: windows rebuilt from the journal"
        );
        let mut cursor = rebuilt.cursor;
        loop {
            if cancel.is_cancelled() {
                free_in_background(engine);
                return Ok(());
            }
            self.journal_head.borrow_and_update();
            let (back, result, held) = self
                .store
                .call(move |s| {
                    let mut engine = engine;
                    let result = step(s, &mut engine, cursor, BATCH_ROWS, now_ms());
                    let held =
                        matches!(&result, Ok(done) if done.rows > 0).then(|| held_by_rule(&engine));
                    (engine, result, held)
                })
                .await;
            engine = back;
            let done = result?;
            cursor = done.cursor;
            *retry = RETRY_FIRST;
            self.metrics.record(&done);
            if let Some(held) = held {
                self.metrics.windows(&held);
            }
            if !done.journaled.is_empty() {
                self.findings_head.send_modify(|h| *h += 1);
            }
            if done.rows < BATCH_ROWS
                && wake::next(&mut self.journal_head, IDLE_CHECK, cancel).await == Wake::Shutdown
            {
                free_in_background(engine);
                return Ok(());
            }
        }
    }
}

/// What each stateful rule's windows hold (for the metrics), counted where
/// the engine is, off the async threads: the walk is over every group.
fn held_by_rule(detector: &Detector) -> Vec<(String, usize)> {
    detector
        .engine
        .held_by_rule()
        .into_iter()
        .map(|(rule, count)| (rule.to_string(), count))
        .collect()
}

/// Drops `value` on a thread of its own. A stopping detection task holds a
/// day of windows, many small allocations: freeing them after a
/// 100,000-activity backlog took about 1.4 CPU seconds (BENCHMARKS.md,
/// Detection), which a shutdown or a reload would otherwise wait for (a
/// reload's new engine fills its windows meanwhile, so memory briefly holds
/// both). At exit the process ends without waiting for the thread. If no
/// thread can be started, `value` is dropped here.
fn free_in_background<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new()
        .name("detect-free".into())
        .spawn(move || drop(value));
}

/// Rebuilds the engine's windows and suppression from the journal (see
/// the module docs); returns where evaluation resumes.
pub fn rebuild(
    store: &mut Store,
    detector: &mut Detector,
    now_ms: i64,
) -> Result<Rebuilt, StoreError> {
    let cursor = store.detection_cursor()?.seq;
    let mut rebuilt = Rebuilt {
        cursor,
        ..Rebuilt::default()
    };
    let horizon_ms =
        i64::try_from(detector.engine.rebuild_horizon().as_millis()).unwrap_or(i64::MAX / 4);
    let (newest, next) = store.detection_span(cursor)?;
    let Some(newest) = newest else {
        return Ok(rebuilt);
    };
    let created_from = next
        .unwrap_or(newest)
        .min(newest)
        .saturating_sub(horizon_ms);
    let journaled_from = now_ms
        .saturating_sub(horizon_ms)
        .saturating_sub(ARRIVAL_MARGIN_MS);
    for stored in store.findings_for_restore(created_from, journaled_from)? {
        let anchor = serde_json::from_str::<Value>(&stored.plain)
            .ok()
            .and_then(|v| FiredAnchor::from_plain_json(&v, stored.journaled_at_ms));
        match anchor {
            Some(anchor) => {
                detector.engine.restore(&anchor);
                rebuilt.restored += 1;
            }
            None => warn!(finding = %stored.uid,
                "a journaled finding is unreadable and cannot suppress a repeat; the state database may be damaged"),
        }
    }
    if cursor == 0 {
        return Ok(rebuilt);
    }
    let (mut after, journaled_from_seq) = store.rebuild_bounds(created_from, journaled_from)?;
    loop {
        let rows = store.read_for_rebuild(
            after,
            cursor,
            created_from,
            journaled_from_seq,
            REBUILD_ROWS,
        )?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for row in &rows {
            if evaluate_row(detector, row, true).is_some() {
                rebuilt.replayed += 1;
            }
        }
    }
    Ok(rebuilt)
}

/// Evaluates up to `limit` rows after `cursor` and journals their findings
/// with the new cursor, in one transaction.
pub fn step(
    store: &mut Store,
    detector: &mut Detector,
    cursor: i64,
    limit: usize,
    now_ms: i64,
) -> Result<Step, StoreError> {
    let rows = store.read_for_detection(cursor, limit)?;
    let Some(last) = rows.last() else {
        return Ok(Step {
            cursor,
            ..Step::default()
        });
    };
    let new_cursor = last.seq;
    let mut errors = 0;
    let mut findings = Vec::new();
    for row in &rows {
        match evaluate_row(detector, row, false) {
            Some(found) => findings.extend(found),
            None => errors += 1,
        }
    }
    let journal: Vec<_> = findings.iter().map(Finding::to_journal).collect();
    let inserted = store.commit_detections(&DetectionCommit {
        cursor_seq: new_cursor,
        evaluated: (rows.len() - errors) as i64,
        errors: errors as i64,
        findings: &journal,
        now_ms,
    })?;
    let mut step = Step {
        cursor: new_cursor,
        rows: rows.len(),
        errors,
        lag_ms: store
            .journaled_at_after(new_cursor)?
            .map_or(0, |at| (now_ms - at).max(0)),
        ..Step::default()
    };
    for (finding, new) in findings.into_iter().zip(inserted) {
        if new {
            step.journaled.push(finding);
        } else {
            step.repeated += 1;
        }
    }
    Ok(step)
}

/// Evaluates one journal row; `None` when the row is not a JSON object
/// (counted as an evaluation error; the row stays in the journal and is
/// delivered as it is).
fn evaluate_row(detector: &mut Detector, row: &DetectionRow, replay: bool) -> Option<Vec<Finding>> {
    let activity: Value = match serde_json::from_str(&row.raw) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            if !replay {
                warn!(seq = row.seq, activity = %row.activity_id,
                    "journal row is not a JSON object; it is delivered but no rule sees it");
            }
            return None;
        }
    };
    let context = detector.context(row.context.as_deref());
    let (activity, facts) = detector.directory_facts(row, activity);
    Some(detector.engine.evaluate_with_directory(
        &Input {
            id: &row.activity_id,
            created_at_ms: row.created_at_ms,
            activity: &activity,
            context: &context,
            journaled_at_ms: row.journaled_at_ms,
            backfill: row.backfill,
            replay,
        },
        facts.as_ref(),
    ))
}

#[cfg(test)]
#[path = "task_tests.rs"]
mod tests;
