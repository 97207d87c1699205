//! The SQLite state database: the journal (the durable queue between the API
//! and every sink), per-source window state, per-sink cursors, dead letters and
//! the daemon's own request ids.
//!
//! rusqlite is synchronous: a [`Store`] is one connection, owned by one task
//! and used through [`SharedStore::call`], which runs it on the blocking pool.
//! Every task opens its own connection; WAL lets readers and the writer
//! proceed side by side.

mod cursors;
pub mod directory_stream;
mod error;
pub mod findings;
pub mod integrity;
mod journal;
mod lock;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

pub use directory_stream::{
    DIRECTORY_SUFFIX, NewDirectoryEntry, SnapshotCommit, SnapshotState, StoredDirectoryEntry,
};
pub use error::{Problem, StoreError};
pub use findings::{
    DetectionCommit, DetectionCursor, DetectionRow, FINDINGS_SUFFIX, FindingCount, NewFinding,
    StoredFinding,
};
pub use lock::InstanceLock;
pub use schema::SCHEMA_VERSION;

pub(crate) use error::InDatabase;

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

/// The columns of the journal a reader renders its payloads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    /// The activity as received, nothing else.
    Raw,
    /// The activity, when it was journaled and its source.
    RawAndOrigin,
    /// Besides those, the OCSF event stored with the row (journals written
    /// before schema 2) and the enrichment context found at ingest.
    All,
    /// Not the journal but the findings table (schema 5): each finding in
    /// the form the detection task journaled it in, as the row's `raw`
    /// (its `seq` the finding's, its activity id the finding's uid, its
    /// `created_at_ms` that of the activity that completed it).
    Findings(FindingForm),
    /// Not the journal but the directory stream (schema 6): each inventory
    /// entry in the form it was journaled in (`Ocsf`: the User Inventory
    /// Info event; `Plain`: claudit's plain JSON record), as the row's
    /// `raw` (its activity id the entry's uid, its `created_at_ms` the
    /// snapshot time).
    Directory(FindingForm),
}

/// The form of a finding (or a directory entry) a reader asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingForm {
    /// The OCSF Detection Finding.
    Ocsf,
    /// claudit's plain JSON finding.
    Plain,
}

impl Columns {
    /// The table these columns are read from.
    fn table(self) -> &'static str {
        match self {
            Columns::Findings(_) => "findings",
            Columns::Directory(_) => "directory_stream",
            _ => "journal",
        }
    }
}

/// One journal row as a reader sees it: the columns its [`Columns`] asked
/// for (the others empty). A row whose OCSF event was stored with it
/// (journals written before schema 2) carries only that event.
#[derive(Debug, Clone, Copy)]
pub struct JournalRow<'r> {
    pub seq: i64,
    pub created_at_ms: i64,
    /// The activity exactly as the API sent it.
    pub raw: &'r str,
    /// The OCSF event stored with the row, or "".
    pub stored_ocsf: &'r str,
    /// JSON of the enrichment context found at ingest, if any.
    pub context: Option<&'r str>,
    pub journaled_at_ms: i64,
    /// The source that journaled the row.
    pub source: &'r str,
}

/// What a reader of the journal makes of each row: which columns it needs
/// and the payload it renders from them. The store knows rows, not events:
/// the sinks' formats (raw, OCSF, raw+claudit) are in `sinks::render`.
pub trait RowRenderer: Send + Sync {
    fn columns(&self) -> Columns;
    fn render(&self, row: &JournalRow<'_>) -> String;
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

pub use crate::model::BatchRecord;

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

    // ---- pruning ---------------------------------------------------------

    /// Deletes journal rows every listed sink has passed and whose
    /// created_at is older than `older_than_ms`, except rows a dead letter
    /// of an activity stream refers to (they stay replayable until the dead
    /// letter is replayed or purged; a `NAME.findings` or `NAME.directory`
    /// dead letter names a seq of its own table, and sink names have no
    /// dot) and rows an open window may read again (those of the
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
                     AND seq NOT IN (SELECT seq FROM dead_letters WHERE sink NOT LIKE '%.%')
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
