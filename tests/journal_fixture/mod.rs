//! A real SQLite journal and a real `SinkTask` over it, for the sink
//! integration tests: journal records, run a sink until a condition holds,
//! read its cursor and dead letters, and capture its log lines.

#![allow(dead_code)] // each test file uses a different part

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use claudit::config::{BatchConfig, Format, SinkConfig, SinkKind};
use claudit::sinks::SinkTask;
use claudit::store::{
    JournalRecord, PageCommit, SharedStore, SinkCursor, Store, WindowKind, WindowRow,
};
use tokio_util::sync::CancellationToken;

pub struct Journal {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

/// An OCSF-like event of about `pad` extra bytes, `metadata.uid` = `id`.
pub fn event(id: &str, pad: usize) -> String {
    format!(
        r#"{{"class_uid":3002,"metadata":{{"uid":"{id}","product":{{"name":"Claude"}}}},"time":1746864000007,"pad":"{}"}}"#,
        "x".repeat(pad)
    )
}

/// A journal holding `(activity_id, payload)` records (payload stored as
/// both the raw and the OCSF form), created 1 s apart.
pub fn journal(records: &[(String, String)]) -> Journal {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut store = Store::open(&path).unwrap();
    let recs: Vec<JournalRecord> = records
        .iter()
        .enumerate()
        .map(|(i, (id, payload))| JournalRecord {
            activity_id: id.clone(),
            created_at_ms: 1_746_864_000_007 + i as i64 * 1000,
            activity_type: "claude_chat_created".into(),
            raw: payload.clone(),
            context: None,
            ocsf: Some(payload.clone()),
        })
        .collect();
    let window = WindowRow::fresh(WindowKind::Live, 0, 2_000_000_000_000);
    store
        .commit_page(&PageCommit {
            source: "test",
            window: &window,
            next_cursor: None,
            read_from_ms: None,
            done: true,
            next_span_ms: None,
            records: &recs,
            request_ids: &[],
            now_ms: 1,
        })
        .unwrap();
    Journal { dir, path }
}

impl Journal {
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

    /// Every text column of the state database, for secret scans.
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

    /// Runs a sink over this journal until `done` holds (checked every
    /// 20 ms), then stops it. Panics after 60 s.
    pub async fn run_sink_until(&self, config: SinkConfig, done: impl Fn(&Journal) -> bool) {
        let (_tx, rx) = tokio::sync::watch::channel(0u64);
        let task = SinkTask {
            config,
            store: SharedStore::open(&self.path).unwrap(),
            journal_head: rx,
            metrics: Default::default(),
            mapper: Default::default(),
        };
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(task.run(cancel.clone()));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "sink did not reach the expected state in 60 s"
            );
            if handle.is_finished() {
                panic!("sink task ended early: {:?}", handle.await);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cancel.cancel();
        handle.await.unwrap().unwrap();
    }
}

pub fn sink_config(name: &str, kind: SinkKind, max_events: usize, max_bytes: usize) -> SinkConfig {
    SinkConfig {
        name: name.into(),
        format: Format::Ocsf,
        batch: BatchConfig {
            max_events,
            max_bytes,
            linger: Duration::ZERO,
        },
        kind,
    }
}

/// Log lines written while the guard lives (current thread only: use a
/// current-thread runtime so the sink task logs here too).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || LogWriter(logs.0.clone()))
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
