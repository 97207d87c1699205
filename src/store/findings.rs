//! Findings as journal entries, and the detection task's cursor over the
//! journal.
//!
//! The detection task reads the journal after its cursor, evaluates the
//! rules and commits the findings it produced together with its new cursor
//! ([`Store::commit_detections`]): a crash before the commit re-evaluates
//! the same rows, which derive the same finding uids, and the table keeps a
//! uid once. Every activity a finding names is checked to be in the journal
//! in that transaction; pruning keeps the activities of every finding it
//! keeps (`Store::prune_retained`).

use rusqlite::{OptionalExtension, params};

use super::{InDatabase, Store, StoreError};

/// The suffix of a sink's findings stream: `<sink>.findings` names the
/// cursor, dead letters and metrics of the findings a sink delivers (a
/// sink name cannot hold a dot).
pub const FINDINGS_SUFFIX: &str = "findings";

/// A journal row as the detection task reads it.
#[derive(Debug, Clone)]
pub struct DetectionRow {
    pub seq: i64,
    pub activity_id: String,
    pub created_at_ms: i64,
    /// The activity as the API sent it.
    pub raw: String,
    /// The enrichment context (JSON of `ocsf::JournalContext`).
    pub context: Option<String>,
    pub journaled_at_ms: i64,
    /// A backfill window read it.
    pub backfill: bool,
    /// The source that journaled it (whose directory describes it).
    pub source: String,
}

/// The detection task's position in the journal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectionCursor {
    /// Last journal seq evaluated (its findings are committed).
    pub seq: i64,
    /// Activities evaluated since the database was created.
    pub evaluated: i64,
    /// Rows that could not be evaluated (not JSON).
    pub errors: i64,
    pub last_run_ms: Option<i64>,
    /// The last failed evaluation step, until a step committed.
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
}

/// A finding to journal.
#[derive(Debug, Clone)]
pub struct NewFinding {
    pub uid: String,
    pub rule_id: String,
    pub severity: String,
    pub anchor_id: String,
    pub anchor_created_ms: i64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub detected_ms: i64,
    pub retrospective: bool,
    /// Ids of the activities it names (`related_events`).
    pub related: Vec<String>,
    /// claudit's plain JSON finding.
    pub plain: String,
    /// The OCSF Detection Finding.
    pub ocsf: String,
}

/// A finding as the journal holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFinding {
    pub seq: i64,
    pub uid: String,
    pub rule_id: String,
    pub severity: String,
    pub anchor_created_ms: i64,
    pub first_seen_ms: i64,
    pub retrospective: bool,
    pub plain: String,
    pub ocsf: String,
    pub journaled_at_ms: i64,
}

/// What one evaluation step commits: the findings and the cursor after the
/// rows it evaluated.
#[derive(Debug)]
pub struct DetectionCommit<'a> {
    pub cursor_seq: i64,
    pub evaluated: i64,
    pub errors: i64,
    pub findings: &'a [NewFinding],
    pub now_ms: i64,
}

/// Findings of one rule and severity (for `status`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FindingCount {
    pub rule_id: String,
    pub severity: String,
    pub count: i64,
}

const DETECTION_COLUMNS: &str =
    "seq, activity_id, created_at_ms, raw, context, journaled_at_ms, backfill, source";

fn detection_row(r: &rusqlite::Row) -> rusqlite::Result<DetectionRow> {
    Ok(DetectionRow {
        seq: r.get(0)?,
        activity_id: r.get(1)?,
        created_at_ms: r.get(2)?,
        raw: r.get(3)?,
        context: r.get(4)?,
        journaled_at_ms: r.get(5)?,
        backfill: r.get(6)?,
        source: r.get(7)?,
    })
}

const FINDING_COLUMNS: &str = "seq, uid, rule_id, severity, created_at_ms, first_seen_ms, \
     retrospective, plain, ocsf, journaled_at_ms";

fn stored_finding(r: &rusqlite::Row) -> rusqlite::Result<StoredFinding> {
    Ok(StoredFinding {
        seq: r.get(0)?,
        uid: r.get(1)?,
        rule_id: r.get(2)?,
        severity: r.get(3)?,
        anchor_created_ms: r.get(4)?,
        first_seen_ms: r.get(5)?,
        retrospective: r.get(6)?,
        plain: r.get(7)?,
        ocsf: r.get(8)?,
        journaled_at_ms: r.get(9)?,
    })
}

impl Store {
    /// Whether this database has the findings tables (a read-only open of a
    /// database the daemon has not migrated yet does not).
    pub fn has_findings(&self) -> bool {
        self.version >= 5
    }

    pub fn detection_cursor(&self) -> Result<DetectionCursor, StoreError> {
        if !self.has_findings() {
            return Ok(DetectionCursor::default());
        }
        Ok(self
            .conn
            .query_row(
                "SELECT seq, evaluated, errors, last_run_ms, last_error, last_error_ms
                 FROM detection_cursor WHERE id = 1",
                [],
                |r| {
                    Ok(DetectionCursor {
                        seq: r.get(0)?,
                        evaluated: r.get(1)?,
                        errors: r.get(2)?,
                        last_run_ms: r.get(3)?,
                        last_error: r.get(4)?,
                        last_error_ms: r.get(5)?,
                    })
                },
            )
            .optional()
            .in_db(&self.path)?
            .unwrap_or_default())
    }

    /// Up to `limit` journal rows after `after_seq`, in seq order.
    pub fn read_for_detection(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<DetectionRow>, StoreError> {
        let sql =
            format!("SELECT {DETECTION_COLUMNS} FROM journal WHERE seq > ?1 ORDER BY seq LIMIT ?2");
        let mut stmt = self.conn.prepare_cached(&sql).in_db(&self.path)?;
        let rows = stmt
            .query_map(params![after_seq, limit as i64], detection_row)
            .in_db(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().in_db(&self.path)
    }

    /// Where a restarted detection task starts re-feeding the journal
    /// (rows after the returned seq, through its cursor), and which of them
    /// it re-feeds: rows created at or after `created_from_ms`, and every
    /// row from the returned journaled-since seq on (rows that arrived
    /// within the horizon, such as a backfill's old history, whatever
    /// their `created_at`). `journaled_from_ms` is found by bisecting on
    /// seq: `journaled_at_ms` grows with seq up to the few seconds between
    /// concurrent sources' commits, which the caller's margin covers.
    pub fn rebuild_bounds(
        &self,
        created_from_ms: i64,
        journaled_from_ms: i64,
    ) -> Result<(i64, i64), StoreError> {
        let by_created: Option<i64> = self
            .conn
            .query_row(
                "SELECT MIN(seq) FROM journal WHERE created_at_ms >= ?1",
                params![created_from_ms],
                |r| r.get(0),
            )
            .in_db(&self.path)?;
        let journaled_from_seq = self.first_seq_journaled_since(journaled_from_ms)?;
        let first = by_created.unwrap_or(i64::MAX).min(journaled_from_seq);
        Ok((first.saturating_sub(1), journaled_from_seq))
    }

    /// The first seq journaled at or after `ms` (past the head when none).
    fn first_seq_journaled_since(&self, ms: i64) -> Result<i64, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, journaled_at_ms FROM journal WHERE seq >= ?1 ORDER BY seq LIMIT 1",
            )
            .in_db(&self.path)?;
        let mut at = |seq: i64| -> Result<Option<(i64, i64)>, StoreError> {
            stmt.query_row(params![seq], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .in_db(&self.path)
        };
        let head = self.head_seq()?;
        let (mut low, mut high) = (0i64, head + 1);
        // Invariant: rows before `low` were journaled before `ms`; the row
        // at or after `high` (if any) at or after it.
        while low < high {
            let mid = low + (high - low) / 2;
            match at(mid)? {
                Some((seq, journaled)) if journaled < ms => low = seq + 1,
                Some(_) => high = mid,
                None => high = mid,
            }
        }
        Ok(low.max(1))
    }

    /// Rows to re-feed at start-up (see [`Store::rebuild_bounds`]): after
    /// `after_seq` and through `through_seq`, created at or after
    /// `created_from_ms` or at or after seq `journaled_from_seq`; at most
    /// `limit`, in seq order.
    pub fn read_for_rebuild(
        &self,
        after_seq: i64,
        through_seq: i64,
        created_from_ms: i64,
        journaled_from_seq: i64,
        limit: usize,
    ) -> Result<Vec<DetectionRow>, StoreError> {
        let sql = format!(
            "SELECT {DETECTION_COLUMNS} FROM journal
             WHERE seq > ?1 AND seq <= ?2 AND (created_at_ms >= ?3 OR seq >= ?4)
             ORDER BY seq LIMIT ?5"
        );
        let mut stmt = self.conn.prepare_cached(&sql).in_db(&self.path)?;
        let rows = stmt
            .query_map(
                params![
                    after_seq,
                    through_seq,
                    created_from_ms,
                    journaled_from_seq,
                    limit as i64
                ],
                detection_row,
            )
            .in_db(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().in_db(&self.path)
    }

    /// When the first row after `seq` was journaled, if there is one.
    pub fn journaled_at_after(&self, seq: i64) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT journaled_at_ms FROM journal WHERE seq > ?1 ORDER BY seq LIMIT 1",
                params![seq],
                |r| r.get(0),
            )
            .optional()
            .in_db(&self.path)
    }

    /// The newest `created_at` in the journal, and the oldest of the next
    /// rows after `seq` (what a restarted task evaluates first).
    pub fn detection_span(&self, seq: i64) -> Result<(Option<i64>, Option<i64>), StoreError> {
        let newest = self
            .conn
            .query_row("SELECT MAX(created_at_ms) FROM journal", [], |r| r.get(0))
            .in_db(&self.path)?;
        Ok((newest, self.oldest_after(seq)?))
    }

    /// Journals the findings of one evaluation step and moves the cursor
    /// past the rows it evaluated, in one transaction. A finding already
    /// journaled (same uid) is kept once. Refused, with nothing written, if
    /// a finding names an activity the journal does not hold. Returns,
    /// per finding, whether it was new.
    pub fn commit_detections(&mut self, commit: &DetectionCommit) -> Result<Vec<bool>, StoreError> {
        let path = self.path.clone();
        // IMMEDIATE: the transaction reads (the related activities) before
        // it writes, and a deferred one that read while a source committed
        // could not take the write lock afterwards (SQLITE_BUSY at once,
        // the busy timeout does not apply); taking the lock first waits
        // for the source's commit like every other writer.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .in_db(&path)?;
        let mut inserted = Vec::with_capacity(commit.findings.len());
        {
            let mut exists = tx
                .prepare_cached("SELECT 1 FROM journal WHERE activity_id = ?1")
                .in_db(&path)?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO findings (uid, rule_id, severity, anchor_id, created_at_ms,
                       first_seen_ms, last_seen_ms, detected_ms, retrospective, related, plain, ocsf,
                       journaled_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                     ON CONFLICT(uid) DO NOTHING",
                )
                .in_db(&path)?;
            for f in commit.findings {
                for id in &f.related {
                    let found = exists
                        .query_row(params![id], |_| Ok(()))
                        .optional()
                        .in_db(&path)?;
                    if found.is_none() {
                        return Err(StoreError::Invariant {
                            path,
                            what: format!(
                                "finding {} of rule {}: its activity {id} is not in the journal",
                                f.uid, f.rule_id
                            ),
                        });
                    }
                }
                let related = serde_json::to_string(&f.related).unwrap_or_else(|_| "[]".into());
                let n = insert
                    .execute(params![
                        f.uid,
                        f.rule_id,
                        f.severity,
                        f.anchor_id,
                        f.anchor_created_ms,
                        f.first_seen_ms,
                        f.last_seen_ms,
                        f.detected_ms,
                        f.retrospective,
                        related,
                        f.plain,
                        f.ocsf,
                        commit.now_ms
                    ])
                    .in_db(&path)?;
                inserted.push(n == 1);
            }
        }
        tx.execute(
            "INSERT INTO detection_cursor (id, seq, evaluated, errors, last_run_ms)
             VALUES (1, ?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET seq = excluded.seq,
               evaluated = evaluated + excluded.evaluated, errors = errors + excluded.errors,
               last_run_ms = excluded.last_run_ms, last_error = NULL, last_error_ms = NULL",
            params![
                commit.cursor_seq,
                commit.evaluated,
                commit.errors,
                commit.now_ms
            ],
        )
        .in_db(&path)?;
        tx.commit().in_db(&path)?;
        Ok(inserted)
    }

    /// Records why an evaluation step failed, for `status`, until the next
    /// step commits.
    pub fn record_detection_error(&mut self, error: &str, now_ms: i64) -> Result<(), StoreError> {
        if !self.has_findings() {
            return Ok(());
        }
        self.conn
            .execute(
                "INSERT INTO detection_cursor (id, last_error, last_error_ms) VALUES (1, ?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET last_error = excluded.last_error,
                   last_error_ms = excluded.last_error_ms",
                params![error, now_ms],
            )
            .in_db(&self.path)?;
        Ok(())
    }

    /// Findings a restarted task restores for suppression: anchored at or
    /// after `anchor_from_ms`, or journaled at or after `journaled_from_ms`.
    pub fn findings_for_restore(
        &self,
        anchor_from_ms: i64,
        journaled_from_ms: i64,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        if !self.has_findings() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {FINDING_COLUMNS} FROM findings
             WHERE created_at_ms >= ?1 OR journaled_at_ms >= ?2 ORDER BY seq"
        );
        let mut stmt = self.conn.prepare_cached(&sql).in_db(&self.path)?;
        let rows = stmt
            .query_map(params![anchor_from_ms, journaled_from_ms], stored_finding)
            .in_db(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().in_db(&self.path)
    }

    /// Up to `limit` findings after `after_seq`, in seq order.
    pub fn read_findings(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        if !self.has_findings() {
            return Ok(Vec::new());
        }
        let sql =
            format!("SELECT {FINDING_COLUMNS} FROM findings WHERE seq > ?1 ORDER BY seq LIMIT ?2");
        let mut stmt = self.conn.prepare_cached(&sql).in_db(&self.path)?;
        let rows = stmt
            .query_map(params![after_seq, limit as i64], stored_finding)
            .in_db(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().in_db(&self.path)
    }

    /// The last finding the findings stream of `sink` (its cursor row
    /// `<sink>.findings`) acknowledged; 0 for none.
    pub fn finding_cursor(&self, sink: &str) -> Result<i64, StoreError> {
        Ok(self.sink_cursor(&format!("{sink}.{FINDINGS_SUFFIX}"))?.seq)
    }

    /// Findings after `seq` (what a findings stream still has to deliver).
    pub fn count_findings_after(&self, seq: i64) -> Result<i64, StoreError> {
        if !self.has_findings() {
            return Ok(0);
        }
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM findings WHERE seq > ?1",
                params![seq],
                |r| r.get(0),
            )
            .in_db(&self.path)
    }

    /// When the oldest finding after `seq` was journaled, if any (the age
    /// of what a findings stream still has to deliver).
    pub fn oldest_finding_after(&self, seq: i64) -> Result<Option<i64>, StoreError> {
        if !self.has_findings() {
            return Ok(None);
        }
        self.oldest_journaled_after("findings", seq)
    }

    /// The last finding's seq (0 for none).
    pub fn head_finding_seq(&self) -> Result<i64, StoreError> {
        if !self.has_findings() {
            return Ok(0);
        }
        self.conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM findings", [], |r| {
                r.get(0)
            })
            .in_db(&self.path)
    }

    /// Findings journaled at or after `since_ms`, by rule and severity,
    /// most first.
    pub fn finding_counts_since(&self, since_ms: i64) -> Result<Vec<FindingCount>, StoreError> {
        if !self.has_findings() {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT rule_id, severity, COUNT(*) FROM findings WHERE journaled_at_ms >= ?1
                 GROUP BY rule_id, severity ORDER BY COUNT(*) DESC, rule_id",
            )
            .in_db(&self.path)?;
        let rows = stmt
            .query_map(params![since_ms], |r| {
                Ok(FindingCount {
                    rule_id: r.get(0)?,
                    severity: r.get(1)?,
                    count: r.get(2)?,
                })
            })
            .in_db(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().in_db(&self.path)
    }
}
