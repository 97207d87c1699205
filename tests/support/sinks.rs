//! Shared set-up of the HTTP sink tests: a configuration read by the real
//! loader, a real SQLite journal, and a real `SinkTask` run until it caught
//! up.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use claudit::config::{Config, SinkConfig};
use claudit::sinks::SinkTask;
use claudit::store::{JournalRecord, PageCommit, SharedStore, Store, WindowKind, WindowRow};
use tokio_util::sync::CancellationToken;

/// Loads a configuration made of one test source and `sink_toml` (a
/// `[[sinks]]` table), with `env` answering `${VAR}`.
pub fn load(sink_toml: &str, env: &[(&str, &str)]) -> Result<Config, String> {
    let text = format!(
        r#"
[state]
path = "/tmp/claudit-sink-test.db"

[[sources]]
name = "test"
api_key = "${{TEST_SOURCE_KEY}}"

{sink_toml}
"#
    );
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("TEST_SOURCE_KEY".into(), "sk-ant-admin01-test".into())])
        .collect();
    let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    claudit::config::load_str(&text, Path::new("/etc/claudit/claudit.toml"), &lookup)
        .map_err(|e| e.to_string())
}

pub fn sink(sink_toml: &str, env: &[(&str, &str)]) -> SinkConfig {
    load(sink_toml, env).unwrap().sinks.remove(0)
}

/// A journal holding `records` (id, created_at ms, raw activity JSON).
pub fn journal(dir: &Path, records: &[(String, i64, String)]) -> SharedStore {
    let path = dir.join("state.db");
    let mut store = Store::open(&path).unwrap();
    let rows: Vec<JournalRecord> = records
        .iter()
        .map(|(id, at, raw)| JournalRecord {
            activity_id: id.clone(),
            created_at_ms: *at,
            activity_type: "claude_chat_created".into(),
            raw: raw.clone(),
            context: None,
            ocsf: Some(format!(
                r#"{{"metadata":{{"uid":"{id}","event_code":"claude_chat_created"}}}}"#
            )),
        })
        .collect();
    let window = WindowRow::fresh(WindowKind::Live, 0, i64::MAX / 2);
    store
        .commit_page(&PageCommit {
            source: "test",
            window: &window,
            next_cursor: None,
            read_from_ms: None,
            done: true,
            next_span_ms: None,
            records: &rows,
            request_ids: &[],
            now_ms: 0,
        })
        .unwrap();
    drop(store);
    SharedStore::open(&path).unwrap()
}

/// A raw activity of about `size` bytes.
pub fn activity(id: &str, size: usize) -> String {
    let pad = size.saturating_sub(120);
    format!(
        r#"{{"id":"{id}","type":"claude_chat_created","created_at":"2026-05-10T08:00:00Z","actor":{{"type":"user_actor"}},"pad":"{}"}}"#,
        "p".repeat(pad)
    )
}

/// Runs the sink task until its cursor reaches the journal head (or 60 s
/// pass), then stops it. Returns (cursor seq, head seq, dead letters).
pub async fn run_until_caught_up(config: SinkConfig, store: SharedStore) -> (i64, i64, i64) {
    let (_tx, rx) = tokio::sync::watch::channel(0u64);
    let name = config.name.clone();
    let task = SinkTask {
        config,
        store: store.clone(),
        journal_head: rx,
        metrics: Default::default(),
        mapper: Default::default(),
    };
    let cancel = CancellationToken::new();
    let handle = tokio::spawn(task.run(cancel.clone()));
    let head = store.call(|s| s.head_seq()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seq = 0;
    while Instant::now() < deadline {
        let n = name.clone();
        seq = store.call(move |s| s.sink_cursor(&n)).await.unwrap().seq;
        if seq >= head {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    handle.await.unwrap().unwrap();
    let n = name.clone();
    let dead = store.call(move |s| s.dead_letter_count(&n)).await.unwrap();
    (seq, head, dead)
}

/// The body of a request, gunzipped when it says so.
pub fn decoded_body(request: &wiremock::Request) -> Vec<u8> {
    let gzip = request
        .headers
        .get("content-encoding")
        .is_some_and(|v| v.to_str().unwrap_or("") == "gzip");
    if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&request.body[..])
            .read_to_end(&mut out)
            .expect("a gzip body");
        out
    } else {
        request.body.clone()
    }
}
