//! Cross-sink acceptance tests over one real journal:
//! - independence (invariant 3): three Elasticsearch sinks, one of them down
//!   (503) for a while; the other two deliver everything meanwhile, and the
//!   failed one delivers everything, in order, once it recovers;
//! - ambiguous delivery (invariant 4): a destination that stores a batch but
//!   drops the connection before answering duplicates at most that batch on
//!   the wire, and nothing in Elasticsearch (`create` + `_id`: the second
//!   attempt gets 409 per item, counted as delivered).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use claudit::config::SinkConfig;
use claudit::store::SharedStore;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::config::{ConfigFile, sink, source};
use crate::support::elasticsearch as es;
use crate::support::journal::{Journal, Page};
use crate::support::sink_task::SinkTasks;
use crate::support::wait::Wait;

const API_KEY: &str = "c2luay1pbmRlcGVuZGVuY2U6dGVzdC1rZXk=";

fn es_sink(name: &str, url: &str) -> SinkConfig {
    ConfigFile::new(std::path::Path::new("/tmp/unused.db"))
        .source(source("acme").set("api_key", "sk-ant-api01-unused"))
        .sink(
            sink(name, "elasticsearch")
                .set("url", url)
                .set("index", es::INDEX)
                .set("api_key", API_KEY)
                .set("batch_max_events", 10)
                .set("batch_linger", "0s"),
        )
        .load(&[])
        .unwrap()
        .sinks
        .remove(0)
}

/// Waits (bounded, so a bug fails instead of hanging) until `done` holds.
async fn wait_until(tasks: &mut SinkTasks, what: &str, done: impl AsyncFnMut() -> bool) {
    tasks
        .until(what, Wait::up_to(Duration::from_secs(60)), done)
        .await
}

async fn cursor(store: &SharedStore, sink: &'static str) -> i64 {
    store.call(move |s| s.sink_cursor(sink)).await.unwrap().seq
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| es::journal_record(n).activity_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_delays_no_other_and_catches_up_in_order() {
    let auth = format!("ApiKey {API_KEY}");
    let (server_a, a) = es::start(&auth).await;
    let (server_b, b) = es::start(&auth).await;
    let (server_c, c) = es::start(&auth).await;
    c.state().down = Some(503);

    let journal = Journal::temp();
    let first: Vec<_> = (0..50).map(es::journal_record).collect();
    journal.commit(&Page::open(), &first);
    let store = journal.shared();
    let mut running = SinkTasks::start(
        &store,
        vec![
            es_sink("a", &server_a.uri()),
            es_sink("b", &server_b.uri()),
            es_sink("c", &server_c.uri()),
        ],
    );

    wait_until(&mut running, "a and b deliver the first 50", async || {
        a.stored_ids().len() == 50 && b.stored_ids().len() == 50
    })
    .await;
    // More records arrive while c is still down: a and b take them too.
    let second: Vec<_> = (50..100).map(es::journal_record).collect();
    journal.commit(&Page::open(), &second);
    running.head.send(100).unwrap();
    wait_until(&mut running, "a and b deliver all 100", async || {
        cursor(&store, "a").await == 100 && cursor(&store, "b").await == 100
    })
    .await;
    assert_eq!(a.stored_ids(), ids(0..100));
    assert_eq!(b.stored_ids(), ids(0..100));
    // c was tried (and refused) all along, and has delivered nothing.
    assert!(c.state().docs.is_empty());
    assert_eq!(cursor(&store, "c").await, 0);
    let c_attempts = server_c.received_requests().await.unwrap().len();
    assert!(c_attempts >= 1);
    let c_status = store.call(|s| s.sink_cursor("c")).await.unwrap();
    assert!(c_status.last_error.unwrap().contains("503"));

    // c recovers: everything, in journal order, exactly once.
    c.state().down = None;
    wait_until(&mut running, "c catches up", async || {
        cursor(&store, "c").await == 100
    })
    .await;
    let stats = running.stop().await;
    assert_eq!(c.stored_ids(), ids(0..100));
    for emulator in [&a, &b, &c] {
        let st = emulator.state();
        assert!(st.violations.is_empty(), "{:?}", st.violations);
        assert_eq!(st.conflicts, 0, "nothing delivered twice");
        assert_eq!(st.received.len(), 100, "nothing sent twice");
    }
    for s in stats {
        assert_eq!((s.delivered, s.dead_lettered), (100, 0));
    }
    for sink in ["a", "b", "c"] {
        let dead = store
            .call(move |s| s.dead_letter_count(sink))
            .await
            .unwrap();
        assert_eq!(dead, 0);
    }
}

/// What the dropping server saw.
#[derive(Default)]
struct Dropping {
    /// Every `_id` of every request, in order (what a destination without
    /// idempotency would have stored).
    received: Vec<String>,
    /// Documents stored with `create` semantics.
    stored: Vec<String>,
    stored_set: HashSet<String>,
    conflicts: usize,
    requests: usize,
    /// Ids of the request whose connection was dropped.
    dropped_batch: Vec<String>,
}

/// A minimal HTTP/1.1 `_bulk` server over raw TCP: it reads each request in
/// full and stores its documents; the first request's connection is then
/// closed without any response, later ones are answered normally.
async fn dropping_server(state: Arc<Mutex<Dropping>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let Some((headers, body)) = read_request(&mut conn).await else {
                    return;
                };
                let body = if headers.get("content-encoding").map(String::as_str) == Some("gzip") {
                    let mut out = Vec::new();
                    flate2::read::GzDecoder::new(&body[..])
                        .read_to_end(&mut out)
                        .unwrap();
                    out
                } else {
                    body
                };
                let text = String::from_utf8(body).unwrap();
                let lines: Vec<&str> = text.split_terminator('\n').collect();
                let mut items = Vec::new();
                let drop_it;
                {
                    let mut st = state.lock().unwrap();
                    st.requests += 1;
                    drop_it = st.requests == 1;
                    for pair in lines.chunks(2) {
                        let action: Value = serde_json::from_str(pair[0]).unwrap();
                        let id = action["create"]["_id"].as_str().unwrap().to_string();
                        st.received.push(id.clone());
                        if drop_it {
                            st.dropped_batch.push(id.clone());
                        }
                        if st.stored_set.insert(id.clone()) {
                            st.stored.push(id.clone());
                            items.push(json!({"create": {"_id": id, "status": 201}}));
                        } else {
                            st.conflicts += 1;
                            items.push(json!({"create": {"_id": id, "status": 409,
                                "error": {"type": "version_conflict_engine_exception",
                                          "reason": "document already exists"}}}));
                        }
                    }
                }
                if drop_it {
                    // Stored, but the answer never leaves.
                    drop(conn);
                    return;
                }
                let answer = json!({"took": 1, "errors": items.iter().any(|i| i["create"]["status"] != 201), "items": items}).to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

/// Reads one HTTP/1.1 request with a content-length body.
async fn read_request(
    conn: &mut tokio::net::TcpStream,
) -> Option<(HashMap<String, String>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = buf[header_end..].to_vec();
    while body.len() < length {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((headers, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_duplicates_at_most_one_batch_and_nothing_in_elasticsearch() {
    let state = Arc::new(Mutex::new(Dropping::default()));
    let url = dropping_server(state.clone()).await;
    let journal = Journal::temp();
    let records: Vec<_> = (0..30).map(es::journal_record).collect();
    journal.commit(&Page::open(), &records);
    let store = journal.shared();
    let mut running = SinkTasks::start(&store, vec![es_sink("es", &url)]);
    wait_until(&mut running, "the sink delivers all 30", async || {
        cursor(&store, "es").await == 30
    })
    .await;
    let stats = running.stop().await;
    let dead = store.call(|s| s.dead_letter_count("es")).await.unwrap();
    assert_eq!(dead, 0);

    let st = state.lock().unwrap();
    // The first batch (10 records) was stored, its answer lost, and sent again.
    assert_eq!(st.dropped_batch, ids(0..10));
    // On the wire: at most that one batch twice (what a destination without
    // idempotent writes would have stored).
    let mut seen = HashSet::new();
    let duplicates: Vec<&String> = st.received.iter().filter(|id| !seen.insert(*id)).collect();
    assert!(duplicates.len() <= 10, "{duplicates:?}");
    assert!(duplicates.iter().all(|id| st.dropped_batch.contains(id)));
    assert_eq!(duplicates.len(), 10, "the lost batch was re-sent");
    // In Elasticsearch: each document once, in order; the re-sent ones
    // answered 409 and counted as delivered.
    assert_eq!(st.stored, ids(0..30));
    assert_eq!(st.conflicts, 10);
    assert_eq!(stats[0].delivered, 30);
    assert_eq!(stats[0].dead_lettered, 0);
}
