//! The journal fixture: a real state database (SQLite, the production
//! schema) with records committed the way the poller commits them, one page
//! of a window at a time, and read back the way `claudit status` reads it.

use std::path::{Path, PathBuf};

use claudit::store::{
    JournalRecord, PageCommit, SharedStore, SinkCursor, Store, WindowKind, WindowRow,
};

/// A state database: in a temporary directory of its own ([`Journal::temp`])
/// or at a path a test chose ([`Journal::at`]).
pub struct Journal {
    dir: Option<tempfile::TempDir>,
    pub path: PathBuf,
}

/// The window a page of records is committed in, and what the commit says
/// about it. The default: source `test`, a live window `[0, 2e12)` that the
/// page completes, committed at 1 ms.
#[derive(Debug, Clone)]
pub struct Page {
    pub source: &'static str,
    pub kind: WindowKind,
    pub start_ms: i64,
    pub end_ms: i64,
    /// The cursor to the next page, when the window is not done.
    pub next_cursor: Option<String>,
    /// Whether this page completes the window (a live window moves the
    /// source's watermark to its end).
    pub done: bool,
    pub now_ms: i64,
}

impl Default for Page {
    fn default() -> Page {
        Page {
            source: "test",
            kind: WindowKind::Live,
            start_ms: 0,
            end_ms: 2_000_000_000_000,
            next_cursor: None,
            done: true,
            now_ms: 1,
        }
    }
}

impl Page {
    /// A page of a live window that stays open (more pages follow), so a
    /// test can journal more records later.
    pub fn open() -> Page {
        Page {
            end_ms: i64::MAX,
            next_cursor: Some("next".into()),
            done: false,
            ..Page::default()
        }
    }
}

/// A `claude_chat_created` record with `raw` as the activity received and no
/// stored OCSF event (a sink renders one from `raw`).
pub fn record(id: &str, created_at_ms: i64, raw: impl Into<String>) -> JournalRecord {
    JournalRecord {
        activity_id: id.to_string(),
        created_at_ms,
        activity_type: "claude_chat_created".into(),
        raw: raw.into(),
        context: None,
        ocsf: None,
    }
}

/// An OCSF-like event of about `pad` extra bytes, `metadata.uid` = `id`.
pub fn ocsf_event(id: &str, pad: usize) -> String {
    format!(
        r#"{{"class_uid":3002,"metadata":{{"uid":"{id}","product":{{"name":"Claude"}}}},"time":1746864000007,"pad":"{}"}}"#,
        "x".repeat(pad)
    )
}

/// The published sample activities (`fixtures/samples/activities.ndjson`)
/// as `(activity_id, created_at_ms, raw activity)`, for
/// [`Journal::with_activities`]. The samples share one placeholder id, so
/// each gets its own (`sample_<n>`); every other field is as published.
pub fn sample_activities() -> Vec<(String, i64, String)> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/samples/activities.ndjson"),
    )
    .unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = format!("sample_{i}");
            v["id"] = serde_json::Value::String(id.clone());
            let at = v["created_at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map_or(1_746_864_000_007, |t| t.timestamp_millis());
            (id, at, v.to_string())
        })
        .collect()
}

/// A raw activity of about `size` bytes.
pub fn activity(id: &str, size: usize) -> String {
    let pad = size.saturating_sub(120);
    format!(
        r#"{{"id":"{id}","type":"claude_chat_created","created_at":"2026-05-10T08:00:00Z","actor":{{"type":"user_actor"}},"pad":"{}"}}"#,
        "p".repeat(pad)
    )
}

impl Journal {
    /// A new, empty state database in a temporary directory of its own.
    pub fn temp() -> Journal {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        Journal {
            dir: Some(dir),
            path,
        }
    }

    /// The state database at `path` (created by the first commit).
    pub fn at(path: &Path) -> Journal {
        Journal {
            dir: None,
            path: path.to_path_buf(),
        }
    }

    /// `(activity_id, payload)` records, the payload stored as both the raw
    /// activity and the OCSF event, created 1 s apart: what the sink suites
    /// that control every byte sent use.
    pub fn with_payloads(records: &[(String, String)]) -> Journal {
        let journal = Journal::temp();
        let rows: Vec<JournalRecord> = records
            .iter()
            .enumerate()
            .map(|(i, (id, payload))| JournalRecord {
                ocsf: Some(payload.clone()),
                ..record(id, 1_746_864_000_007 + i as i64 * 1000, payload.clone())
            })
            .collect();
        journal.commit(&Page::default(), &rows);
        journal
    }

    /// `(activity_id, created_at_ms, raw activity)` records, each with a
    /// small stored OCSF event.
    pub fn with_activities(records: &[(String, i64, String)]) -> Journal {
        let journal = Journal::temp();
        let rows: Vec<JournalRecord> = records
            .iter()
            .map(|(id, at, raw)| JournalRecord {
                ocsf: Some(format!(
                    r#"{{"metadata":{{"uid":"{id}","event_code":"claude_chat_created"}}}}"#
                )),
                ..record(id, *at, raw.clone())
            })
            .collect();
        let page = Page {
            end_ms: i64::MAX / 2,
            now_ms: 0,
            ..Page::default()
        };
        journal.commit(&page, &rows);
        journal
    }

    /// The temporary directory the database is in (for files beside it).
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("a journal made with Journal::temp has a directory")
            .path()
    }

    /// Commits `records` as one page of `page`'s window, as the poller does.
    pub fn commit(&self, page: &Page, records: &[JournalRecord]) {
        let window = WindowRow::fresh(page.kind, page.start_ms, page.end_ms);
        Store::open(&self.path)
            .unwrap()
            .commit_page(&PageCommit {
                source: page.source,
                window: &window,
                next_cursor: page.next_cursor.clone(),
                read_from_ms: None,
                done: page.done,
                next_span_ms: None,
                records,
                request_ids: &[],
                now_ms: page.now_ms,
            })
            .unwrap();
    }

    /// The database as the daemon's tasks use it.
    pub fn shared(&self) -> SharedStore {
        SharedStore::open(&self.path).unwrap()
    }

    pub fn head(&self) -> i64 {
        Store::open_readonly(&self.path)
            .unwrap()
            .head_seq()
            .unwrap()
    }

    pub fn cursor(&self, sink: &str) -> SinkCursor {
        Store::open_readonly(&self.path)
            .unwrap()
            .sink_cursor(sink)
            .unwrap()
    }

    pub fn dead_letter_count(&self, sink: &str) -> i64 {
        Store::open_readonly(&self.path)
            .unwrap()
            .dead_letter_count(sink)
            .unwrap()
    }

    /// (activity_id, reason, response) of each dead letter of `sink`.
    pub fn dead_letters(&self, sink: &str) -> Vec<(String, String, String)> {
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        let mut stmt = conn
            .prepare("SELECT activity_id, reason, response FROM dead_letters WHERE sink = ?1 ORDER BY seq")
            .unwrap();
        stmt.query_map([sink], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// Every text column of the sink tables, for secret scans.
    pub fn all_text(&self) -> String {
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        let mut out = String::new();
        for table in ["sink_cursors", "dead_letters"] {
            let sql = format!("SELECT * FROM {table}");
            let Ok(mut stmt) = conn.prepare(&sql) else {
                continue;
            };
            let n = stmt.column_count();
            let rows = stmt
                .query_map([], |r| {
                    Ok((0..n)
                        .map(|i| {
                            r.get::<_, rusqlite::types::Value>(i)
                                .map(|v| format!("{v:?}"))
                                .unwrap_or_default()
                        })
                        .collect::<Vec<_>>()
                        .join("|"))
                })
                .unwrap();
            for row in rows {
                out.push_str(&row.unwrap());
                out.push('\n');
            }
        }
        out
    }
}
