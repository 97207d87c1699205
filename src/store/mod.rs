//! The SQLite state database: the journal (the durable queue between the API
//! and every sink), per-source window state, per-sink cursors, dead letters and
//! the daemon's own request ids.
//!
//! rusqlite is synchronous: a [`Store`] is one connection, owned by one task
//! and used through [`SharedStore::call`], which runs it on the blocking pool.
//! Every task opens its own connection; WAL lets readers and the writer
//! proceed side by side.

mod error;
pub mod findings;
pub mod integrity;
mod lock;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::ocsf::Mapper;

pub use error::{Problem, StoreError};
pub use findings::{
    DetectionCommit, DetectionCursor, DetectionRow, FindingCount, NewFinding, StoredFinding,
};
pub use lock::InstanceLock;
pub use schema::SCHEMA_VERSION;

pub(crate) use error::InDatabase;
use error::UnreadableValue;

/// What kind of window a row of `windows` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Steady-state and catch-up polling; completing it advances the watermark.
    Live,
    /// The late-arrival sweep over the trailing horizon.
    Sweep,
    /// A chunk of a `claudit backfill` range.
    Backfill,
}

impl WindowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::Live => "live",
            WindowKind::Sweep => "sweep",
            WindowKind::Backfill => "backfill",
        }
    }
}

/// A window being drained: `[start_ms, end_ms)`, and where the page walk is.
///
/// The feed is newest-first, so a walk reads a window from its end down:
/// after some pages, every record created in `[read_from_ms, end_ms)` has
/// been read and what is left is `[start_ms, read_from_ms)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRow {
    pub kind: WindowKind,
    pub start_ms: i64,
    /// Completing the window moves its position here (watermark, backfill
    /// progress).
    pub end_ms: i64,
    /// `after_id` for the next page; `None` = the first page of the walk.
    pub cursor: Option<String>,
    /// `created_at.lt` of the walk's requests (a cursor belongs to its
    /// query): `end_ms`, or `read_from_ms` after the API refused a cursor
    /// and the walk started again below what it had read.
    pub walk_end_ms: i64,
    /// Every record created in `[read_from_ms, end_ms)` has been read
    /// (`None`: no record of the window yet).
    pub read_from_ms: Option<i64>,
    /// When the first page was requested (`None` until a page is committed).
    /// A sweep's is its start, which bounds the next sweep.
    pub opened_ms: Option<i64>,
    pub pages: i64,
    pub records: i64,
    /// The API's answer to the window's last request broke the paging
    /// protocol (`source::paging`); cleared by the next page committed.
    pub fault: Option<String>,
    /// When the first of the window's consecutive faults happened.
    pub fault_since_ms: Option<i64>,
    /// Consecutive faults; sets the backoff before the next attempt.
    pub faults: i64,
}

impl WindowRow {
    /// A window whose walk has not started.
    pub fn fresh(kind: WindowKind, start_ms: i64, end_ms: i64) -> WindowRow {
        WindowRow {
            kind,
            start_ms,
            end_ms,
            cursor: None,
            walk_end_ms: end_ms,
            read_from_ms: None,
            opened_ms: None,
            pages: 0,
            records: 0,
            fault: None,
            fault_since_ms: None,
            faults: 0,
        }
    }

    /// The part of the window read so far, as a fraction of its span.
    pub fn read_ratio(&self) -> f64 {
        let span = (self.end_ms - self.start_ms).max(1) as f64;
        let read = self.end_ms - self.read_from_ms.unwrap_or(self.end_ms);
        (read as f64 / span).clamp(0.0, 1.0)
    }
}

/// Per-source state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceState {
    /// Every activity created before this has been read at least once.
    pub watermark_ms: Option<i64>,
    /// When the last completed sweep started (first start counts as one).
    pub last_sweep_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
    pub journaled: i64,
    pub late: i64,
    /// Span of the next catch-up window, learned from the density of the
    /// last live window (`None`: unknown, the whole remaining range).
    pub catchup_span_ms: Option<i64>,
}

/// One activity ready for the journal.
#[derive(Debug, Clone)]
pub struct JournalRecord {
    pub activity_id: String,
    pub created_at_ms: i64,
    pub activity_type: String,
    /// The activity exactly as the API sent it.
    pub raw: String,
    /// What rendering its OCSF event needs besides `raw`: JSON of
    /// [`crate::ocsf::JournalContext`] (the enrichment found at ingest).
    pub context: Option<String>,
    /// An OCSF event stored as is, served instead of rendering one. The
    /// poller leaves it `None` (sinks render the event from `raw` and
    /// `context` when they read the row); journals written before schema 2
    /// hold one in every row, and tests use it to control payloads exactly.
    pub ocsf: Option<String>,
}

/// The form a sink reads journal records in (its `format`).
#[derive(Debug, Clone)]
pub enum Payload {
    /// The activity as received.
    Raw,
    /// The OCSF event, rendered by this mapper unless the row stores one.
    Ocsf(Arc<Mapper>),
    /// The activity as received plus a `claudit` object with its
    /// directory context (from this mapper's directory), when it has one.
    RawWithContext(Arc<Mapper>),
    /// Findings (from the findings table, by their seq), in the form they
    /// were journaled in: the OCSF Detection Finding for OCSF sinks, the
    /// plain JSON finding for raw ones.
    Findings(FindingForm),
}

/// The form of a finding a sink reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingForm {
    Ocsf,
    Plain,
}

impl Payload {
    /// The table the form reads: the journal, or the findings.
    fn table(&self) -> &'static str {
        match self {
            Payload::Findings(_) => "findings",
            _ => "journal",
        }
    }
}

/// A page to commit: its records and the window position it justifies, in
/// one transaction (invariant 1).
#[derive(Debug)]
pub struct PageCommit<'a> {
    pub source: &'a str,
    pub window: &'a WindowRow,
    /// `after_id` for the next page; ignored when `done`.
    pub next_cursor: Option<String>,
    /// The window's `read_from_ms` with this page.
    pub read_from_ms: Option<i64>,
    /// `has_more` was false: the window is drained.
    pub done: bool,
    /// When `done`: the span of the next window of this kind (a live
    /// window's sets the next catch-up window's, a backfill window's the
    /// next of its range), from the density of this one.
    pub next_span_ms: Option<i64>,
    pub records: &'a [JournalRecord],
    /// Request ids of this page's calls (failed attempts included).
    pub request_ids: &'a [String],
    /// When this page was requested.
    pub now_ms: i64,
}

/// What a page commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageOutcome {
    /// Records new to the journal.
    pub inserted: usize,
    /// Records already journaled (re-read by a sweep, retry or restart).
    pub duplicates: usize,
}

/// A journal row as a sink reads it.
#[derive(Debug, Clone)]
pub struct BatchRecord {
    pub seq: i64,
    pub activity_id: String,
    pub created_at_ms: i64,
    /// The OCSF event or the raw activity, as the sink's format asks.
    pub payload: String,
}

/// A journal row as the archive sink reads it: the raw activity and the
/// source it came from.
#[derive(Debug, Clone)]
pub struct ArchiveRow {
    pub seq: i64,
    pub activity_id: String,
    pub source: String,
    pub created_at_ms: i64,
    pub raw: String,
}

/// A sink's position in the journal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkCursor {
    /// Last journal seq the destination acknowledged.
    pub seq: i64,
    /// File sinks: the file length after that batch (for crash recovery).
    pub file_offset: Option<i64>,
    pub delivered: i64,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
}

/// A record a destination rejected deterministically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub sink: String,
    pub seq: i64,
    pub activity_id: String,
    pub reason: String,
    pub response: String,
    pub at_ms: i64,
}

/// A backfill range and its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillRow {
    pub source: String,
    pub since_ms: i64,
    pub until_ms: i64,
    /// Everything in `[since_ms, next_ms)` has been read.
    pub next_ms: i64,
    pub records: i64,
    /// Span of the range's next window, learned from the density of the
    /// previous one (`None`: unknown, the whole rest of the range).
    pub window_span_ms: Option<i64>,
    /// Requests answered for this range so far.
    pub requests: i64,
}

impl BackfillRow {
    /// How much of the range has been read, in milliseconds of created_at:
    /// everything before `next_ms`, and the part of `open` (the source's open
    /// backfill window, if it is this range's) that its walk has read.
    pub fn read_ms(&self, open: Option<&WindowRow>) -> i64 {
        let mut read = self.next_ms - self.since_ms;
        if let Some(w) =
            open.filter(|w| w.kind == WindowKind::Backfill && w.start_ms == self.next_ms)
        {
            read += w.end_ms - w.read_from_ms.unwrap_or(w.end_ms);
        }
        read.clamp(0, self.until_ms - self.since_ms)
    }

    /// The part of the range read so far, from 0 to 1.
    pub fn read_ratio(&self, open: Option<&WindowRow>) -> f64 {
        let span = (self.until_ms - self.since_ms).max(1);
        self.read_ms(open) as f64 / span as f64
    }
}

/// The page size of a new state database (see `Store::configure`).
const PAGE_SIZE: i64 = 65_536;

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// The database's schema version: `SCHEMA_VERSION`, except for a
    /// read-only open of a database the daemon has not migrated yet (reads
    /// then stand in defaults for the columns it lacks).
    version: i64,
}

impl Store {
    /// Opens (creating if needed, mode 0600) and migrates the state database.
    /// Refused before anything is written: a database the daemon's user
    /// cannot write, or one whose content was lost (see [`integrity`]).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        integrity::check_writable(path)?;
        integrity::refuse_lost_content(path, integrity::Writer::Unknown)?;
        schema::create_private_file(path).map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let conn = Connection::open(path).in_db(path)?;
        if conn.is_readonly(rusqlite::MAIN_DB).in_db(path)? {
            return Err(error::access_problem(
                path,
                "SQLite could open it only read-only",
            ));
        }
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            version: SCHEMA_VERSION,
        };
        store.configure()?;
        schema::migrate(&mut store.conn, path)?;
        Ok(store)
    }

    /// Opens an existing database read-only (for `status` while the daemon runs).
    pub fn open_readonly(path: &Path) -> Result<Store, StoreError> {
        integrity::refuse_lost_content(path, integrity::Writer::Unknown)?;
        if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) == 0 {
            return Err(StoreError::Open {
                path: path.to_path_buf(),
                reason: "no such file, or an empty one (has the daemon run yet?)".into(),
            });
        }
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).in_db(path)?;
        conn.busy_timeout(Duration::from_secs(10)).in_db(path)?;
        let version = schema::check_version(&conn, path)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            version,
        })
    }

    fn configure(&mut self) -> Result<(), StoreError> {
        // 64 KiB pages (SQLite's largest) for a new database: journal rows
        // are 2-3 kB each, and every page costs a WAL frame write, a
        // checkpoint read and write, and a checksum; with 4 KiB pages those
        // per-page costs were half of claudit's CPU time at catch-up speed
        // (BENCHMARKS.md, "End to end"). SQLite ignores this for a database
        // that already has tables (its page size stays what it was).
        self.conn
            .pragma_update(None, "page_size", PAGE_SIZE)
            .in_db(&self.path)?;
        let mode: String = self
            .conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(|e| integrity::not_a_database(&self.path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Open {
                path: self.path.clone(),
                reason: format!(
                    "SQLite refused WAL mode (got {mode}); put the state database on a local filesystem"
                ),
            });
        }
        // FULL: a committed page survives power loss, not just a process crash.
        self.conn
            .pragma_update(None, "synchronous", "FULL")
            .in_db(&self.path)?;
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .in_db(&self.path)?;
        self.conn
            .busy_timeout(Duration::from_secs(10))
            .in_db(&self.path)?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for modules that keep their own tables in the state
    /// database (the directory: `src/directory/store.rs`).
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The database's schema version (below [`SCHEMA_VERSION`] only for a
    /// read-only open of a database the daemon has not migrated yet).
    pub fn schema_version(&self) -> i64 {
        self.version
    }

    // ---- sources and windows -------------------------------------------

    pub fn source_state(&self, source: &str) -> Result<SourceState, StoreError> {
        let span = if self.version >= 3 {
            "catchup_span_ms"
        } else {
            "NULL"
        };
        let sql = format!(
            "SELECT watermark_ms, last_sweep_ms, last_success_ms, last_error, last_error_ms, journaled, late, {span}
             FROM source_state WHERE source = ?1"
        );
        let state = self
            .conn
            .query_row(&sql, params![source], |r| {
                Ok(SourceState {
                    watermark_ms: r.get(0)?,
                    last_sweep_ms: r.get(1)?,
                    last_success_ms: r.get(2)?,
                    last_error: r.get(3)?,
                    last_error_ms: r.get(4)?,
                    journaled: r.get(5)?,
                    late: r.get(6)?,
                    catchup_span_ms: r.get(7)?,
                })
            })
            .optional()
            .in_db(&self.path)?;
        Ok(state.unwrap_or_default())
    }

    /// The window of this kind whose page walk is in progress, if any.
    pub fn open_window(
        &self,
        source: &str,
        kind: WindowKind,
    ) -> Result<Option<WindowRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM windows WHERE source = ?1 AND kind = ?2 ORDER BY start_ms LIMIT 1",
            self.window_columns()
        );
        self.conn
            .query_row(&sql, params![source, kind.as_str()], window_row)
            .optional()
            .in_db(&self.path)
    }

    /// Commits one page: its records, its request ids, and the window's new
    /// position, atomically. When the window is drained, its completion
    /// (watermark, sweep time, backfill progress) lands in the same
    /// transaction.
    pub fn commit_page(&mut self, page: &PageCommit) -> Result<PageOutcome, StoreError> {
        let tx = self.conn.transaction().in_db(&self.path)?;
        let mut outcome = PageOutcome::default();
        let late = page.window.kind == WindowKind::Sweep;
        let backfill = page.window.kind == WindowKind::Backfill;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO journal (activity_id, source, created_at_ms, activity_type, raw, ocsf, context, late, journaled_at_ms, backfill)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT(activity_id) DO NOTHING",
            ).in_db(&self.path)?;
            for r in page.records {
                let n = insert
                    .execute(params![
                        r.activity_id,
                        page.source,
                        r.created_at_ms,
                        r.activity_type,
                        r.raw,
                        r.ocsf.as_deref().unwrap_or(""),
                        r.context,
                        late,
                        page.now_ms,
                        backfill
                    ])
                    .in_db(&self.path)?;
                if n == 1 {
                    outcome.inserted += 1;
                } else {
                    outcome.duplicates += 1;
                }
            }
        }
        insert_request_ids(&tx, page.source, page.request_ids, page.now_ms).in_db(&self.path)?;
        let w = page.window;
        let kind = w.kind.as_str();
        if page.done {
            tx.execute(
                "DELETE FROM windows WHERE source = ?1 AND kind = ?2 AND start_ms = ?3",
                params![page.source, kind, w.start_ms],
            )
            .in_db(&self.path)?;
        } else {
            // A committed page clears the window's fault: the paging moved.
            tx.execute(
                "INSERT INTO windows (source, kind, start_ms, end_ms, cursor, opened_ms, pages, records,
                   walk_end_ms, read_from_ms, fault, fault_since_ms, faults)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL, NULL, 0)
                 ON CONFLICT(source, kind, start_ms) DO UPDATE SET
                   end_ms = excluded.end_ms, cursor = excluded.cursor,
                   pages = excluded.pages, records = excluded.records,
                   walk_end_ms = excluded.walk_end_ms, read_from_ms = excluded.read_from_ms,
                   fault = NULL, fault_since_ms = NULL, faults = 0",
                params![
                    page.source,
                    kind,
                    w.start_ms,
                    w.end_ms,
                    page.next_cursor,
                    w.opened_ms.unwrap_or(page.now_ms),
                    w.pages + 1,
                    w.records + page.records.len() as i64,
                    w.walk_end_ms,
                    page.read_from_ms
                ],
            ).in_db(&self.path)?;
        }
        tx.execute(
            "INSERT INTO source_state (source, last_success_ms, journaled, late) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(source) DO UPDATE SET last_success_ms = excluded.last_success_ms,
               journaled = journaled + excluded.journaled, late = late + excluded.late,
               last_error = NULL, last_error_ms = NULL",
            params![
                page.source,
                page.now_ms,
                outcome.inserted as i64,
                if late { outcome.inserted as i64 } else { 0 }
            ],
        ).in_db(&self.path)?;
        if w.kind == WindowKind::Backfill {
            // The chunk being read always starts at its range's `next_ms`.
            tx.execute(
                "UPDATE backfills SET records = records + ?2, requests = requests + 1
                 WHERE source = ?1 AND next_ms = ?3",
                params![page.source, outcome.inserted as i64, w.start_ms],
            )
            .in_db(&self.path)?;
        }
        if page.done {
            match w.kind {
                WindowKind::Live => {
                    tx.execute(
                        "UPDATE source_state SET watermark_ms = MAX(COALESCE(watermark_ms, ?2), ?2),
                           catchup_span_ms = COALESCE(?3, catchup_span_ms)
                         WHERE source = ?1",
                        params![page.source, w.end_ms, page.next_span_ms],
                    ).in_db(&self.path)?;
                }
                WindowKind::Sweep => {
                    // The sweep's start, not its end: a record that became
                    // visible while it ran must fall in the next sweep.
                    tx.execute(
                        "UPDATE source_state SET last_sweep_ms = ?2 WHERE source = ?1",
                        params![page.source, w.opened_ms.unwrap_or(page.now_ms)],
                    )
                    .in_db(&self.path)?;
                }
                WindowKind::Backfill => {
                    tx.execute(
                        "UPDATE backfills SET next_ms = ?2, window_span_ms = COALESCE(?4, window_span_ms)
                         WHERE source = ?1 AND next_ms = ?3",
                        params![page.source, w.end_ms, w.start_ms, page.next_span_ms],
                    ).in_db(&self.path)?;
                }
            }
        }
        tx.commit().in_db(&self.path)?;
        Ok(outcome)
    }

    /// Forgets a window's cursor (the API refused it): the walk starts
    /// again without one, below what it has read, `[start, read_from)`
    /// (the feed is newest-first, so nothing above was left unread). Only
    /// records of the millisecond `read_from - 1` are read a second time
    /// (the journal ignores them; pruning keeps them while the window is
    /// open). With nothing read yet, the walk restarts from the window's end.
    pub fn restart_walk(&mut self, source: &str, window: &WindowRow) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE windows SET cursor = NULL, walk_end_ms = COALESCE(read_from_ms, walk_end_ms, end_ms)
             WHERE source = ?1 AND kind = ?2 AND start_ms = ?3",
            params![source, window.kind.as_str(), window.start_ms],
        ).in_db(&self.path)?;
        Ok(())
    }

    /// A window's first page showed it holds far more than a window should
    /// (`source::sizing`): nothing of it is kept, the next window of its
    /// kind is planned `span_ms` long, and the request is accounted for.
    pub fn split_window(
        &mut self,
        source: &str,
        window: &WindowRow,
        span_ms: i64,
        request_ids: &[String],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction().in_db(&self.path)?;
        insert_request_ids(&tx, source, request_ids, now_ms).in_db(&self.path)?;
        match window.kind {
            WindowKind::Live => {
                tx.execute(
                    "UPDATE source_state SET catchup_span_ms = ?2 WHERE source = ?1",
                    params![source, span_ms],
                )
                .in_db(&self.path)?;
            }
            WindowKind::Backfill => {
                tx.execute(
                    "UPDATE backfills SET window_span_ms = ?2, requests = requests + 1
                     WHERE source = ?1 AND next_ms = ?3",
                    params![source, span_ms, window.start_ms],
                )
                .in_db(&self.path)?;
            }
            WindowKind::Sweep => {}
        }
        // A row is left only by a fault on the first page.
        tx.execute(
            "DELETE FROM windows WHERE source = ?1 AND kind = ?2 AND start_ms = ?3",
            params![source, window.kind.as_str(), window.start_ms],
        )
        .in_db(&self.path)?;
        tx.execute(
            "UPDATE source_state SET last_success_ms = ?2, last_error = NULL, last_error_ms = NULL
             WHERE source = ?1",
            params![source, now_ms],
        )
        .in_db(&self.path)?;
        tx.commit().in_db(&self.path)?;
        Ok(())
    }

    /// Records that the answer to a request for `window` broke the paging
    /// protocol: nothing of it is committed and the window keeps its
    /// position; the fault stays on the window (shown by `status` and
    /// `/readyz`) until one of its pages is committed. Returns the window's
    /// consecutive faults, this one included.
    pub fn record_paging_fault(
        &mut self,
        source: &str,
        window: &WindowRow,
        message: &str,
        request_ids: &[String],
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let tx = self.conn.transaction().in_db(&self.path)?;
        insert_request_ids(&tx, source, request_ids, now_ms).in_db(&self.path)?;
        let kind = window.kind.as_str();
        tx.execute(
            "INSERT INTO windows (source, kind, start_ms, end_ms, cursor, opened_ms, pages, records,
               walk_end_ms, read_from_ms, fault, fault_since_ms, faults)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 1)
             ON CONFLICT(source, kind, start_ms) DO UPDATE SET
               fault = excluded.fault,
               fault_since_ms = COALESCE(windows.fault_since_ms, excluded.fault_since_ms),
               faults = windows.faults + 1",
            params![
                source,
                kind,
                window.start_ms,
                window.end_ms,
                window.cursor,
                window.opened_ms.unwrap_or(now_ms),
                window.pages,
                window.records,
                window.walk_end_ms,
                window.read_from_ms,
                message,
                now_ms
            ],
        ).in_db(&self.path)?;
        if window.kind == WindowKind::Backfill {
            tx.execute(
                "UPDATE backfills SET requests = requests + 1 WHERE source = ?1 AND next_ms = ?2",
                params![source, window.start_ms],
            )
            .in_db(&self.path)?;
        }
        tx.execute(
            "INSERT INTO source_state (source, last_error, last_error_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(source) DO UPDATE SET last_error = excluded.last_error, last_error_ms = excluded.last_error_ms",
            params![source, message, now_ms],
        ).in_db(&self.path)?;
        let faults = tx
            .query_row(
                "SELECT faults FROM windows WHERE source = ?1 AND kind = ?2 AND start_ms = ?3",
                params![source, kind, window.start_ms],
                |r| r.get(0),
            )
            .in_db(&self.path)?;
        tx.commit().in_db(&self.path)?;
        Ok(faults)
    }

    /// Sets the watermark of a source that has never run (initial
    /// lookback). First start counts as a sweep that started `now_ms`:
    /// nothing read before it can have been missed.
    pub fn init_watermark(
        &mut self,
        source: &str,
        watermark_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO source_state (source, watermark_ms, last_sweep_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(source) DO UPDATE SET watermark_ms = COALESCE(watermark_ms, excluded.watermark_ms),
               last_sweep_ms = COALESCE(last_sweep_ms, excluded.last_sweep_ms)",
            params![source, watermark_ms, now_ms],
        ).in_db(&self.path)?;
        Ok(())
    }

    pub fn record_source_error(
        &mut self,
        source: &str,
        error: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO source_state (source, last_error, last_error_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(source) DO UPDATE SET last_error = excluded.last_error, last_error_ms = excluded.last_error_ms",
            params![source, error, now_ms],
        ).in_db(&self.path)?;
        Ok(())
    }

    /// Recent request ids of the daemon's own calls (to tag its own
    /// `compliance_api_accessed` activities).
    pub fn recent_request_ids(&self, since_ms: i64) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT request_id FROM request_ids WHERE at_ms >= ?1")
            .in_db(&self.path)?;
        let rows = stmt
            .query_map(params![since_ms], |r| r.get(0))
            .in_db(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().in_db(&self.path)
    }

    pub fn pending_windows(&self, source: &str) -> Result<Vec<WindowRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM windows WHERE source = ?1 ORDER BY kind, start_ms",
            self.window_columns()
        );
        let mut stmt = self.conn.prepare(&sql).in_db(&self.path)?;
        let rows = stmt
            .query_map(params![source], window_row)
            .in_db(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().in_db(&self.path)
    }

    // ---- backfill ---------------------------------------------------------

    /// Registers a backfill range (idempotent for the same range) and returns
    /// its progress row.
    pub fn add_backfill(
        &mut self,
        source: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<BackfillRow, StoreError> {
        self.conn.execute(
            "INSERT INTO backfills (source, since_ms, until_ms, next_ms, records) VALUES (?1, ?2, ?3, ?2, 0)
             ON CONFLICT(source, since_ms, until_ms) DO NOTHING",
            params![source, since_ms, until_ms],
        ).in_db(&self.path)?;
        Ok(self
            .backfill(source, since_ms, until_ms)?
            .expect("the range was registered just above"))
    }

    /// Backfill ranges of a source that are not finished, oldest first.
    pub fn open_backfills(&self, source: &str) -> Result<Vec<BackfillRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {} FROM backfills
             WHERE source = ?1 AND next_ms < until_ms ORDER BY since_ms",
                self.backfill_columns()
            ))
            .in_db(&self.path)?;
        let rows = stmt
            .query_map(params![source], backfill_row)
            .in_db(&self.path)?;
        rows.collect::<Result<_, _>>().in_db(&self.path)
    }

    pub fn backfill(
        &self,
        source: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Option<BackfillRow>, StoreError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {} FROM backfills WHERE source = ?1 AND since_ms = ?2 AND until_ms = ?3",
                    self.backfill_columns()
                ),
                params![source, since_ms, until_ms],
                backfill_row,
            )
            .optional()
            .in_db(&self.path)
    }

    // ---- journal reads (sinks) -------------------------------------------

    /// The highest seq in the journal (0 if empty).
    pub fn head_seq(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM journal", [], |r| {
                r.get(0)
            })
            .in_db(&self.path)
    }

    /// Whether an activity is already in the journal (the source checks the
    /// few records it raises an alert or counts a metric for, so a re-read
    /// by the sweep is not reported twice).
    pub fn is_journaled(&self, activity_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM journal WHERE activity_id = ?1",
                params![activity_id],
                |_| Ok(()),
            )
            .optional()
            .in_db(&self.path)?
            .is_some())
    }

    pub fn journal_rows(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM journal", [], |r| r.get(0))
            .in_db(&self.path)
    }

    /// Up to `max_events` records after `after_seq`, stopping before the
    /// batch would exceed `max_bytes` (but always at least one record).
    pub fn read_batch(
        &self,
        after_seq: i64,
        max_events: usize,
        max_bytes: usize,
        form: &Payload,
    ) -> Result<Vec<BatchRecord>, StoreError> {
        self.read_after(after_seq, form, |batch, bytes, next| {
            batch.len() < max_events && (batch.is_empty() || bytes + next <= max_bytes)
        })
    }

    /// Journal records after `after_seq`, in order, until their NDJSON lines
    /// reach at least `min_bytes` (or the journal ends). The file sink's crash
    /// recovery uses it: the bytes past the committed length are a prefix of
    /// exactly these lines, and the last of them may be torn, so the record
    /// that crosses `min_bytes` must be included (unlike `read_batch`, which
    /// stops before a record that would exceed its limit).
    pub fn read_covering(
        &self,
        after_seq: i64,
        min_bytes: usize,
        form: &Payload,
    ) -> Result<Vec<BatchRecord>, StoreError> {
        self.read_after(after_seq, form, |_, bytes, _| bytes < min_bytes)
    }

    /// Records after `after_seq` in seq order, each as one payload (raw or
    /// OCSF), while `more(batch so far, its NDJSON bytes, the next line's
    /// bytes)` holds. Rows are read lazily, so the stop rule bounds the work.
    fn read_after(
        &self,
        after_seq: i64,
        form: &Payload,
        mut more: impl FnMut(&[BatchRecord], usize, usize) -> bool,
    ) -> Result<Vec<BatchRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM {} WHERE seq > ?1 ORDER BY seq",
            self.payload_columns(form),
            form.table()
        );
        let mut stmt = self.conn.prepare_cached(&sql).in_db(&self.path)?;
        let mut rows = stmt.query(params![after_seq]).in_db(&self.path)?;
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        while let Some(r) = rows.next().in_db(&self.path)? {
            let record = batch_record(form, r).in_db(&self.path)?;
            let line = record.payload.len() + 1;
            if !more(&batch, bytes, line) {
                break;
            }
            bytes += line;
            batch.push(record);
        }
        Ok(batch)
    }

    /// Journal records in a created_at range (for `replay`), after `after_seq`.
    pub fn read_range(
        &self,
        since_ms: i64,
        until_ms: i64,
        after_seq: i64,
        limit: usize,
        form: &Payload,
    ) -> Result<Vec<BatchRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM {}
             WHERE seq > ?1 AND created_at_ms >= ?2 AND created_at_ms < ?3 ORDER BY seq LIMIT ?4",
            self.payload_columns(form),
            form.table()
        );
        let mut stmt = self.conn.prepare_cached(&sql).in_db(&self.path)?;
        let rows = stmt
            .query_map(params![after_seq, since_ms, until_ms, limit as i64], |r| {
                batch_record(form, r)
            })
            .in_db(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().in_db(&self.path)
    }

    /// Records after `seq` (what a sink still has to deliver).
    pub fn count_after(&self, seq: i64) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM journal WHERE seq > ?1",
                params![seq],
                |r| r.get(0),
            )
            .in_db(&self.path)
    }

    /// created_at of the oldest record after `seq`, if any.
    pub fn oldest_after(&self, seq: i64) -> Result<Option<i64>, StoreError> {
        self.conn.query_row(
            "SELECT MIN(created_at_ms) FROM (SELECT created_at_ms FROM journal WHERE seq > ?1 ORDER BY seq LIMIT 10000)",
            params![seq],
            |r| r.get(0),
        ).in_db(&self.path)
    }

    // ---- archive sink reads -----------------------------------------------

    /// Up to `limit` journal rows after `after_seq`, with their source, for
    /// the archive sink (which groups by source and hour of created_at).
    pub fn read_archive_batch(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<ArchiveRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, activity_id, source, created_at_ms, raw FROM journal
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .in_db(&self.path)?;
        let rows = stmt
            .query_map(params![after_seq, limit as i64], archive_row)
            .in_db(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().in_db(&self.path)
    }

    /// Journal rows with `after_seq < seq <= up_to_seq` and created_at in
    /// `[since_ms, until_ms)`, up to `limit`, for `claudit archive verify`
    /// (every one must be in the archive).
    pub fn read_archived_range(
        &self,
        after_seq: i64,
        up_to_seq: i64,
        since_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<ArchiveRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, activity_id, source, created_at_ms, raw FROM journal
             WHERE seq > ?1 AND seq <= ?2 AND created_at_ms >= ?3 AND created_at_ms < ?4
             ORDER BY seq LIMIT ?5",
            )
            .in_db(&self.path)?;
        let rows = stmt
            .query_map(
                params![after_seq, up_to_seq, since_ms, until_ms, limit as i64],
                archive_row,
            )
            .in_db(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().in_db(&self.path)
    }

    // ---- end of archive sink reads -------------------------------------------

    // ---- sink cursors and dead letters ---------------------------------

    pub fn sink_cursor(&self, sink: &str) -> Result<SinkCursor, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq, file_offset, delivered, last_success_ms, last_error, last_error_ms
                 FROM sink_cursors WHERE sink = ?1",
                params![sink],
                |r| {
                    Ok(SinkCursor {
                        seq: r.get(0)?,
                        file_offset: r.get(1)?,
                        delivered: r.get(2)?,
                        last_success_ms: r.get(3)?,
                        last_error: r.get(4)?,
                        last_error_ms: r.get(5)?,
                    })
                },
            )
            .optional()
            .in_db(&self.path)?
            .unwrap_or_default())
    }

    /// Advances a sink's cursor after its destination acknowledged a batch
    /// ending at `seq` (invariant 3). Dead letters of the batch are written in
    /// the same transaction, so a rejected record is never both skipped and
    /// unrecorded.
    pub fn advance_sink(
        &mut self,
        sink: &str,
        seq: i64,
        file_offset: Option<i64>,
        delivered: i64,
        dead: &[NewDeadLetter],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction().in_db(&self.path)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO dead_letters (sink, seq, activity_id, reason, response, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            ).in_db(&self.path)?;
            for d in dead {
                insert
                    .execute(params![
                        sink,
                        d.seq,
                        d.activity_id,
                        d.reason,
                        d.response,
                        now_ms
                    ])
                    .in_db(&self.path)?;
            }
        }
        tx.execute(
            "INSERT INTO sink_cursors (sink, seq, file_offset, delivered, last_success_ms) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(sink) DO UPDATE SET seq = MAX(seq, excluded.seq), file_offset = excluded.file_offset,
               delivered = delivered + excluded.delivered, last_success_ms = excluded.last_success_ms,
               last_error = NULL, last_error_ms = NULL",
            params![sink, seq, file_offset, delivered, now_ms],
        ).in_db(&self.path)?;
        tx.commit().in_db(&self.path)?;
        Ok(())
    }

    /// Records the file length a file sink's next batch starts at, before
    /// that batch is written: the length of a file it has never written to
    /// (otherwise a crash after the first batch was written but before its
    /// commit would leave lines recovery cannot tell from someone else's, and
    /// they would be written again), or 0 just after it rotated.
    pub fn record_file_offset(&mut self, sink: &str, offset: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO sink_cursors (sink, seq, file_offset, delivered) VALUES (?1, 0, ?2, 0)
             ON CONFLICT(sink) DO UPDATE SET file_offset = excluded.file_offset",
                params![sink, offset],
            )
            .in_db(&self.path)?;
        Ok(())
    }

    pub fn record_sink_error(
        &mut self,
        sink: &str,
        error: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO sink_cursors (sink, seq, last_error, last_error_ms) VALUES (?1, 0, ?2, ?3)
             ON CONFLICT(sink) DO UPDATE SET last_error = excluded.last_error, last_error_ms = excluded.last_error_ms",
            params![sink, error, now_ms],
        ).in_db(&self.path)?;
        Ok(())
    }

    pub fn dead_letter_count(&self, sink: &str) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM dead_letters WHERE sink = ?1",
                params![sink],
                |r| r.get(0),
            )
            .in_db(&self.path)
    }

    /// A sink's dead letters, oldest first; only the one with `id` when given.
    pub fn dead_letters(&self, sink: &str, id: Option<i64>) -> Result<Vec<DeadLetter>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, sink, seq, activity_id, reason, response, at_ms FROM dead_letters
             WHERE sink = ?1 AND (?2 IS NULL OR id = ?2) ORDER BY id",
            )
            .in_db(&self.path)?;
        let rows = stmt
            .query_map(params![sink, id], |r| {
                Ok(DeadLetter {
                    id: r.get(0)?,
                    sink: r.get(1)?,
                    seq: r.get(2)?,
                    activity_id: r.get(3)?,
                    reason: r.get(4)?,
                    response: r.get(5)?,
                    at_ms: r.get(6)?,
                })
            })
            .in_db(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().in_db(&self.path)
    }

    /// The journal record at `seq` in a sink's format, unless pruned.
    pub fn journal_record(
        &self,
        seq: i64,
        form: &Payload,
    ) -> Result<Option<BatchRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM {} WHERE seq = ?1",
            self.payload_columns(form),
            form.table()
        );
        self.conn
            .query_row(&sql, params![seq], |r| batch_record(form, r))
            .optional()
            .in_db(&self.path)
    }

    /// After a dead-letter replay: removes the dead letters the destination
    /// now accepted and records the new answer on the ones it rejected
    /// again, in one transaction. Returns the number removed.
    pub fn settle_dead_letters(
        &mut self,
        sink: &str,
        delivered: &[i64],
        rejected_again: &[(i64, String, String)],
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        let tx = self.conn.transaction().in_db(&self.path)?;
        let mut removed = 0;
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM dead_letters WHERE sink = ?1 AND id = ?2")
                .in_db(&self.path)?;
            for id in delivered {
                removed += delete.execute(params![sink, id]).in_db(&self.path)?;
            }
            let mut update = tx.prepare_cached(
                "UPDATE dead_letters SET reason = ?3, response = ?4, at_ms = ?5 WHERE sink = ?1 AND id = ?2",
            ).in_db(&self.path)?;
            for (id, reason, response) in rejected_again {
                update
                    .execute(params![sink, id, reason, response, now_ms])
                    .in_db(&self.path)?;
            }
        }
        tx.commit().in_db(&self.path)?;
        Ok(removed)
    }

    /// Records rejections without moving the sink's cursor (`claudit
    /// replay`); a record already dead-lettered for the sink gets the new
    /// answer instead of a second row.
    pub fn add_dead_letters(
        &mut self,
        sink: &str,
        dead: &[NewDeadLetter],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction().in_db(&self.path)?;
        {
            let mut update = tx.prepare_cached(
                "UPDATE dead_letters SET reason = ?3, response = ?4, at_ms = ?5 WHERE sink = ?1 AND seq = ?2",
            ).in_db(&self.path)?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO dead_letters (sink, seq, activity_id, reason, response, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            ).in_db(&self.path)?;
            for d in dead {
                if update
                    .execute(params![sink, d.seq, d.reason, d.response, now_ms])
                    .in_db(&self.path)?
                    == 0
                {
                    insert
                        .execute(params![
                            sink,
                            d.seq,
                            d.activity_id,
                            d.reason,
                            d.response,
                            now_ms
                        ])
                        .in_db(&self.path)?;
                }
            }
        }
        tx.commit().in_db(&self.path)?;
        Ok(())
    }

    /// Deletes a sink's dead letters (all, or the one with `id`). Returns
    /// how many.
    pub fn purge_dead_letters(&mut self, sink: &str, id: Option<i64>) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "DELETE FROM dead_letters WHERE sink = ?1 AND (?2 IS NULL OR id = ?2)",
                params![sink, id],
            )
            .in_db(&self.path)
    }

    // ---- pruning ---------------------------------------------------------

    /// Deletes journal rows every listed sink has passed and whose
    /// created_at is older than `older_than_ms`, except rows a dead letter
    /// refers to (they stay replayable until the dead letter is replayed or
    /// purged) and rows an open window may read again (those of the
    /// millisecond just below what its walk has read, which a walk
    /// restarted after a refused cursor reads again). Returns rows deleted.
    /// Deletes in bounded chunks so a large prune never holds the write lock
    /// for long.
    pub fn prune(&mut self, sinks: &[&str], older_than_ms: i64) -> Result<usize, StoreError> {
        self.prune_retained(
            &Retained {
                sinks,
                finding_sinks: &[],
                detection: false,
            },
            older_than_ms,
        )
    }

    /// Prunes as [`Store::prune`] does, keeping what `retained` still
    /// needs: rows the detection task has not evaluated (when it runs),
    /// and the activities of every finding kept. Findings go with the
    /// activities they started from (first seen before `older_than_ms`).
    pub fn prune_retained(
        &mut self,
        retained: &Retained,
        older_than_ms: i64,
    ) -> Result<usize, StoreError> {
        let sinks = retained.sinks;
        let mut min_seq = i64::MAX;
        for sink in sinks {
            min_seq = min_seq.min(self.sink_cursor(sink)?.seq);
        }
        if sinks.is_empty() {
            return Ok(0);
        }
        let mut older_than_ms = older_than_ms;
        if self.has_findings() {
            if retained.detection {
                min_seq = min_seq.min(self.detection_cursor()?.seq);
            }
            let mut delivered = i64::MAX;
            for sink in retained.finding_sinks {
                delivered = delivered.min(self.finding_cursor(sink)?);
            }
            self.conn
                .execute(
                    "DELETE FROM findings WHERE first_seen_ms < ?1 AND seq <= ?2
                       AND seq NOT IN (SELECT seq FROM dead_letters WHERE sink LIKE '%.findings')",
                    params![older_than_ms, delivered],
                )
                .in_db(&self.path)?;
            let oldest_kept: Option<i64> = self
                .conn
                .query_row("SELECT MIN(first_seen_ms) FROM findings", [], |r| r.get(0))
                .in_db(&self.path)?;
            if let Some(oldest) = oldest_kept {
                older_than_ms = older_than_ms.min(oldest);
            }
        }
        let mut total = 0;
        loop {
            let n = self
                .conn
                .execute(
                    "DELETE FROM journal WHERE seq IN (
                   SELECT seq FROM journal WHERE seq <= ?1 AND created_at_ms < ?2
                     AND seq NOT IN (SELECT seq FROM dead_letters)
                     AND NOT EXISTS (SELECT 1 FROM windows w WHERE w.read_from_ms IS NOT NULL
                       AND journal.created_at_ms >= w.read_from_ms - 1
                       AND journal.created_at_ms < w.read_from_ms)
                   LIMIT 10000)",
                    params![min_seq, older_than_ms],
                )
                .in_db(&self.path)?;
            total += n;
            if n < 10000 {
                break;
            }
        }
        self.conn
            .execute(
                "DELETE FROM request_ids WHERE at_ms < ?1",
                params![older_than_ms],
            )
            .in_db(&self.path)?;
        Ok(total)
    }
}

/// What pruning must keep besides the retention (see
/// [`Store::prune_retained`]).
#[derive(Debug, Clone, Copy)]
pub struct Retained<'a> {
    /// Sinks whose cursors hold journal rows.
    pub sinks: &'a [&'a str],
    /// Sinks that receive findings: a finding is kept until each of them
    /// has it.
    pub finding_sinks: &'a [&'a str],
    /// The detection task runs: rows after its cursor are kept.
    pub detection: bool,
}

/// A dead letter to record with a cursor advance.
#[derive(Debug, Clone)]
pub struct NewDeadLetter {
    pub seq: i64,
    pub activity_id: String,
    pub reason: String,
    pub response: String,
}

/// Stores the request ids of a page's calls (Anthropic logs each call as a
/// `compliance_api_accessed` activity, which is then tagged as the daemon's own).
fn insert_request_ids(
    tx: &rusqlite::Transaction,
    source: &str,
    ids: &[String],
    now_ms: i64,
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO request_ids (request_id, source, at_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT(request_id) DO NOTHING",
    )?;
    for id in ids {
        insert.execute(params![id, source, now_ms])?;
    }
    Ok(())
}

fn window_row(r: &rusqlite::Row) -> rusqlite::Result<WindowRow> {
    let kind: String = r.get(0)?;
    let end_ms: i64 = r.get(2)?;
    Ok(WindowRow {
        kind: match kind.as_str() {
            "sweep" => WindowKind::Sweep,
            "backfill" => WindowKind::Backfill,
            _ => WindowKind::Live,
        },
        start_ms: r.get(1)?,
        end_ms,
        cursor: r.get(3)?,
        opened_ms: r.get(4)?,
        pages: r.get(5)?,
        records: r.get(6)?,
        walk_end_ms: r.get::<_, Option<i64>>(7)?.unwrap_or(end_ms),
        read_from_ms: r.get(8)?,
        fault: r.get(9)?,
        fault_since_ms: r.get(10)?,
        faults: r.get(11)?,
    })
}

fn archive_row(r: &rusqlite::Row) -> rusqlite::Result<ArchiveRow> {
    journal_row(r, |r| {
        Ok(ArchiveRow {
            seq: r.get(0)?,
            activity_id: r.get(1)?,
            source: r.get(2)?,
            created_at_ms: r.get(3)?,
            raw: r.get(4)?,
        })
    })
}

fn backfill_row(r: &rusqlite::Row) -> rusqlite::Result<BackfillRow> {
    Ok(BackfillRow {
        source: r.get(0)?,
        since_ms: r.get(1)?,
        until_ms: r.get(2)?,
        next_ms: r.get(3)?,
        records: r.get(4)?,
        window_span_ms: r.get(5)?,
        requests: r.get(6)?,
    })
}

impl Store {
    /// The columns `window_row` reads, in its order.
    fn window_columns(&self) -> &'static str {
        if self.version >= 3 {
            "kind, start_ms, end_ms, cursor, opened_ms, pages, records, \
             walk_end_ms, read_from_ms, fault, fault_since_ms, faults"
        } else {
            "kind, start_ms, end_ms, cursor, opened_ms, pages, records, NULL, NULL, NULL, NULL, 0"
        }
    }

    /// The columns `backfill_row` reads, in its order.
    fn backfill_columns(&self) -> &'static str {
        if self.version >= 3 {
            "source, since_ms, until_ms, next_ms, records, window_span_ms, requests"
        } else {
            "source, since_ms, until_ms, next_ms, records, NULL, 0"
        }
    }

    /// The columns `payload` reads, after seq, activity_id and created_at_ms.
    fn payload_columns(&self, form: &Payload) -> &'static str {
        match (form, self.version >= 2) {
            (Payload::Findings(FindingForm::Ocsf), _) => "seq, uid, created_at_ms, ocsf",
            (Payload::Findings(FindingForm::Plain), _) => "seq, uid, created_at_ms, plain",
            (Payload::Raw, _) => "seq, activity_id, created_at_ms, raw",
            (Payload::RawWithContext(_), _) => {
                "seq, activity_id, created_at_ms, raw, NULL, NULL, journaled_at_ms, source"
            }
            (Payload::Ocsf(_), true) => {
                "seq, activity_id, created_at_ms, raw, ocsf, context, journaled_at_ms, source"
            }
            (Payload::Ocsf(_), false) => {
                "seq, activity_id, created_at_ms, raw, ocsf, NULL, journaled_at_ms, source"
            }
        }
    }
}

/// A row's payload in `form`, from the columns `payload_columns` selects:
/// the raw activity, the stored OCSF event (rows written before schema 2),
/// or the OCSF event rendered from the raw activity and its context.
fn payload(form: &Payload, r: &rusqlite::Row) -> rusqlite::Result<String> {
    match form {
        Payload::Raw | Payload::Findings(_) => r.get(3),
        Payload::RawWithContext(mapper) => Ok(crate::directory::enrich::raw_with_context(
            mapper.directory().map(|d| &**d),
            text(r, 3)?.unwrap_or_default(),
            r.get(2)?,
            (text(r, 7)?.unwrap_or_default(), r.get(0)?),
        )),
        Payload::Ocsf(mapper) => {
            let stored = text(r, 4)?.unwrap_or_default();
            if !stored.is_empty() {
                return Ok(stored.to_string());
            }
            Ok(mapper.render_journaled_row(
                text(r, 3)?.unwrap_or_default(),
                text(r, 5)?,
                r.get(2)?,
                r.get(6)?,
                Some((text(r, 7)?.unwrap_or_default(), r.get(0)?)),
            ))
        }
    }
}

/// Column `i` as text (`None` for NULL). Another type is an
/// `InvalidColumnType` naming the column, which `journal_row` turns into
/// the row's damage report (rusqlite's own `as_str` error names nothing).
fn text<'r>(r: &'r rusqlite::Row, i: usize) -> rusqlite::Result<Option<&'r str>> {
    match r.get_ref(i)? {
        rusqlite::types::ValueRef::Null => Ok(None),
        rusqlite::types::ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .map(Some)
            .map_err(|e| rusqlite::Error::Utf8Error(i, e)),
        other => Err(rusqlite::Error::InvalidColumnType(
            i,
            r.as_ref().column_name(i).unwrap_or("?").to_string(),
            other.data_type(),
        )),
    }
}

/// Reads a journal row with `read`. A value that is not of its column's
/// type (what SQLite returns from a damaged record) comes out as an
/// [`UnreadableValue`] naming the row's seq and the column, which
/// `StoreError::sqlite` turns into the recovery steps for that row.
fn journal_row<T>(
    r: &rusqlite::Row,
    read: impl FnOnce(&rusqlite::Row) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    read(r).map_err(|e| {
        let (index, found, not_utf8) = match &e {
            rusqlite::Error::InvalidColumnType(i, _, found) => (*i, *found, false),
            rusqlite::Error::Utf8Error(i, _) => (*i, rusqlite::types::Type::Text, true),
            _ => return e,
        };
        let Ok(seq) = r.get::<_, i64>(0) else {
            return e;
        };
        let column = r
            .as_ref()
            .column_name(index)
            .map(str::to_string)
            .unwrap_or_else(|_| format!("#{index}"));
        rusqlite::Error::FromSqlConversionFailure(
            index,
            found,
            Box::new(UnreadableValue {
                seq,
                column,
                found,
                not_utf8,
            }),
        )
    })
}

fn batch_record(form: &Payload, r: &rusqlite::Row) -> rusqlite::Result<BatchRecord> {
    journal_row(r, |r| {
        Ok(BatchRecord {
            seq: r.get(0)?,
            activity_id: r.get(1)?,
            created_at_ms: r.get(2)?,
            payload: payload(form, r)?,
        })
    })
}

/// A [`Store`] usable from async code: each call runs on the blocking pool.
#[derive(Clone)]
pub struct SharedStore(Arc<Mutex<Store>>);

impl SharedStore {
    pub fn open(path: &Path) -> Result<SharedStore, StoreError> {
        Ok(SharedStore(Arc::new(Mutex::new(Store::open(path)?))))
    }

    pub async fn call<R, F>(&self, f: F) -> R
    where
        F: FnOnce(&mut Store) -> R + Send + 'static,
        R: Send + 'static,
    {
        let inner = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = inner.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut store)
        })
        .await
        .expect("state database task panicked")
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests;
