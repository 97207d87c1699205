//! A destination whose answers are hostile (a gzip bomb, an endless body)
//! does not take the sink down: each such answer is refused at the cap, the
//! batch is retried (it never counts as acknowledged), and once the
//! destination answers properly everything is delivered. Real sockets, a
//! real journal and the real `SinkTask`.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::config::load_with_sink;
use crate::support::journal::{Journal, activity};
use claudit::sinks::SinkTask;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The first two requests get a hostile answer (a gzip bomb, then an
/// endless chunked body); the rest a proper one from `good`.
async fn hostile_then_good(good: fn(&[u8]) -> (u16, String)) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(answer(conn, seen.clone(), good));
        }
    });
    (url, count)
}

async fn answer(mut conn: TcpStream, count: Arc<AtomicUsize>, good: fn(&[u8]) -> (u16, String)) {
    let mut buf = Vec::new();
    let mut piece = [0u8; 16 << 10];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match conn.read(&mut piece).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&piece[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match conn.read(&mut piece).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&piece[..n]),
        }
    }
    let n = count.fetch_add(1, Ordering::SeqCst);
    match n {
        0 => {
            // 64 MiB of spaces in about 64 KB of gzip.
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(&vec![b' '; 64 << 20]).unwrap();
            let bomb = e.finish().unwrap();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n",
                bomb.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(&bomb).await;
        }
        1 => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                        transfer-encoding: chunked\r\nconnection: close\r\n\r\n";
            if conn.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let mut chunk = format!("{:x}\r\n", 1 << 16).into_bytes();
            chunk.extend_from_slice(&[b'z'; 1 << 16]);
            chunk.extend_from_slice(b"\r\n");
            // Until the sink hangs up (at most 4 GiB).
            for _ in 0..(1u64 << 16) {
                if conn.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        }
        _ => {
            let (status, body) = good(&buf[head_end..]);
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
        }
    }
    let _ = conn.shutdown().await;
}

/// A `_bulk` answer creating every document of the request.
fn bulk_created(body: &[u8]) -> (u16, String) {
    let items: Vec<serde_json::Value> = String::from_utf8_lossy(body)
        .lines()
        .step_by(2)
        .map(|action| {
            let id =
                serde_json::from_str::<serde_json::Value>(action).unwrap()["create"]["_id"].clone();
            serde_json::json!({"create": {"_id": id, "status": 201}})
        })
        .collect();
    (
        200,
        serde_json::json!({"took": 1, "errors": false, "items": items}).to_string(),
    )
}

fn hec_success(_: &[u8]) -> (u16, String) {
    (200, r#"{"text":"Success","code":0}"#.to_string())
}

/// Runs the sink until it delivered everything; the errors it recorded on
/// the way.
async fn deliver_through_hostile_answers(sink_toml: &str, env: &[(&str, &str)]) -> Vec<String> {
    let records: Vec<(String, i64, String)> = (0..30)
        .map(|i| {
            let id = format!("activity_{i:03}");
            let raw = activity(&id, 400);
            (id, 1_778_400_000_000 + i, raw)
        })
        .collect();
    let journal = Journal::with_activities(&records);
    let store = journal.shared();
    let config = load_with_sink(sink_toml, env).unwrap().sinks.remove(0);
    let name = config.name.clone();
    let task = SinkTask {
        config,
        store: store.clone(),
        journal_head: tokio::sync::watch::channel(0u64).1,
        metrics: Default::default(),
        mapper: Default::default(),
    };
    let cancel = CancellationToken::new();
    let handle = tokio::spawn(task.run(cancel.clone()));
    let head = store.call(|s| s.head_seq()).await.unwrap();
    // (when, error) of every error recorded, once each.
    let mut errors: Vec<(i64, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(!handle.is_finished(), "the sink task stopped");
        let n = name.clone();
        let cursor = store.call(move |s| s.sink_cursor(&n)).await.unwrap();
        if let (Some(e), Some(at)) = (cursor.last_error, cursor.last_error_ms)
            && errors.last().is_none_or(|(last, _)| *last != at)
        {
            errors.push((at, e));
        }
        if cursor.seq >= head {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered; errors: {errors:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    handle.await.unwrap().unwrap();
    let n = name.clone();
    assert_eq!(
        store.call(move |s| s.dead_letter_count(&n)).await.unwrap(),
        0
    );
    errors.into_iter().map(|(_, e)| e).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_answers_are_refused_retried_and_never_acknowledge() {
    let (es_url, es_requests) = hostile_then_good(bulk_created).await;
    let es = format!(
        "[[sinks]]\nname = \"es\"\ntype = \"elasticsearch\"\nurl = \"{es_url}\"\nindex = \"x\"\n\
         api_key = \"${{ES_KEY}}\"\ncompression = false\nbatch_linger = \"0s\"\n"
    );
    let (hec_url, hec_requests) = hostile_then_good(hec_success).await;
    let hec = format!(
        "[[sinks]]\nname = \"hec\"\ntype = \"splunk_hec\"\nurl = \"{hec_url}\"\n\
         token = \"${{HEC_TOKEN}}\"\ncompression = false\nbatch_linger = \"0s\"\n"
    );
    let env = [
        ("ES_KEY", "aG9zdGlsZTphbnN3ZXJz"),
        ("HEC_TOKEN", "11111111-2222-3333-4444-555555555555"),
    ];
    let (es_errors, hec_errors) = tokio::join!(
        deliver_through_hostile_answers(&es, &env),
        deliver_through_hostile_answers(&hec, &env)
    );
    for (sink, errors, requests, endpoint) in [
        ("es", es_errors, &es_requests, "POST /_bulk"),
        (
            "hec",
            hec_errors,
            &hec_requests,
            "POST /services/collector/event",
        ),
    ] {
        // Both hostile answers were refused at the cap, naming the endpoint
        // and the limit, and the batch was sent again each time.
        let capped: Vec<&String> = errors
            .iter()
            .filter(|e| e.contains("larger than claudit's limit"))
            .collect();
        assert_eq!(capped.len(), 2, "{sink}: {errors:?}");
        for e in capped {
            assert!(e.contains(endpoint) && e.contains("MiB"), "{sink}: {e}");
        }
        assert!(
            requests.load(Ordering::SeqCst) >= 3,
            "{sink}: the batch was retried"
        );
    }
}
