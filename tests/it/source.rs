//! The source task against a mock Compliance API: a stale cursor restarts
//! the window without losing or duplicating records; a refused key stops
//! polling after one request instead of hammering the API.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use claudit::config::Config;
use claudit::enrich::Enricher;
use claudit::sinks::render::Payload;
use claudit::source::SourceTask;
use claudit::store::{SharedStore, Store};

use crate::support::config::{ConfigFile, sink, source};

const KEY: &str = "sk-ant-api01-source-test-secret";

fn config(dir: &std::path::Path, base_url: &str) -> Config {
    ConfigFile::new(&dir.join("state.db"))
        .source(
            source("s")
                .set("base_url", base_url)
                .set("api_key", "${KEY}")
                .set("page_size", 2)
                .set("window", "5m")
                .set("initial_lookback", "10m")
                .set("settle_lag", "1m")
                .set("sweep_interval", "1h"),
        )
        .sink(sink("f", "file").path("path", &dir.join("out.ndjson")))
        .load(&[("KEY", KEY)])
        .unwrap_or_else(|e| panic!("{e}"))
}

fn activity(id: &str, minutes_ago: i64) -> serde_json::Value {
    let t = chrono::Utc::now() - chrono::Duration::minutes(minutes_ago);
    serde_json::json!({
        "id": id, "type": "claude_chat_created", "created_at": claudit::model::format_time(t),
        "organization_id": "org_1", "organization_uuid": "u",
        "actor": {"type": "user_actor", "email_address": "a@example.com", "user_id": "user_1", "ip_address": "192.0.2.1", "user_agent": "curl/8.5.0"},
        "claude_chat_id": "claude_chat_1"
    })
}

/// Pages of the first window: [a1, a2] then [a3]. The first time the
/// second page is asked for, its cursor is "stale" (400).
struct StaleOnce {
    calls: AtomicUsize,
    stale_sent: AtomicUsize,
}

impl Respond for StaleOnce {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let after = req
            .url
            .query_pairs()
            .find(|(k, _)| k == "after_id")
            .map(|(_, v)| v.to_string());
        let gte = req
            .url
            .query_pairs()
            .find(|(k, _)| k == "created_at.gte")
            .map(|(_, v)| v.to_string())
            .unwrap();
        let gte = claudit::model::parse_time(&gte).unwrap();
        // Only the first window (which starts 10 minutes ago) has records.
        let first_window = chrono::Utc::now() - gte > chrono::Duration::minutes(9);
        let body = match (first_window, after.as_deref()) {
            (false, _) => {
                serde_json::json!({"data": [], "has_more": false, "first_id": null, "last_id": null})
            }
            (true, None) => {
                serde_json::json!({"data": [activity("a1", 6), activity("a2", 7)], "has_more": true, "first_id": "c0", "last_id": "c1"})
            }
            (true, Some("c1")) if self.stale_sent.fetch_add(1, Ordering::SeqCst) == 0 => {
                return ResponseTemplate::new(400).insert_header("request-id", "req_stale").set_body_json(serde_json::json!({
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "Invalid `after_id`. No activity found for `after_id` c1."}
                }));
            }
            (true, Some("c1")) => {
                serde_json::json!({"data": [activity("a3", 8)], "has_more": false, "first_id": "c2", "last_id": "c3"})
            }
            (true, Some(other)) => panic!("unexpected cursor {other}"),
        };
        ResponseTemplate::new(200)
            .insert_header(
                "request-id",
                format!("req_{}", self.calls.load(Ordering::SeqCst)),
            )
            .set_body_json(body)
    }
}

async fn run_source(config: &Config, for_how_long: Duration) {
    let (head, _rx) = watch::channel(0);
    let task = SourceTask {
        config: config.sources[0].clone(),
        store: SharedStore::open(&config.state.path).unwrap(),
        enricher: Arc::new(Enricher::without_geoip()),
        journal_head: head,
        backfill_only: false,
        metrics: Default::default(),
    };
    let cancel = CancellationToken::new();
    let handle = tokio::spawn(task.run(cancel.clone()));
    tokio::time::sleep(for_how_long).await;
    cancel.cancel();
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn stale_cursor_restarts_the_window_without_loss_or_duplicates() {
    let server = MockServer::start().await;
    let responder = StaleOnce {
        calls: AtomicUsize::new(0),
        stale_sent: AtomicUsize::new(0),
    };
    Mock::given(method("GET"))
        .and(path("/v1/compliance/activities"))
        .and(header("x-api-key", KEY))
        .and(header("anthropic-version", "2023-06-01"))
        .respond_with(responder)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &server.uri());
    run_source(&config, Duration::from_secs(2)).await;

    let store = Store::open_readonly(&config.state.path).unwrap();
    let ids: Vec<String> = store
        .read_batch(0, 100, usize::MAX, &Payload::Raw)
        .unwrap()
        .into_iter()
        .map(|r| r.activity_id)
        .collect();
    assert_eq!(
        ids,
        vec!["a1", "a2", "a3"],
        "every record once, the re-read page deduplicated"
    );
    let state = store.source_state("s").unwrap();
    assert!(state.watermark_ms.is_some());
    assert!(
        store
            .open_window("s", claudit::store::WindowKind::Live)
            .unwrap()
            .is_none(),
        "the window completed"
    );
    let requests = server.received_requests().await.unwrap();
    let afters: Vec<Option<String>> = requests
        .iter()
        .take(4)
        .map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "after_id")
                .map(|(_, v)| v.to_string())
        })
        .collect();
    assert_eq!(
        afters,
        vec![None, Some("c1".into()), None, Some("c1".into())],
        "restarted from the first page"
    );
}

#[tokio::test]
async fn refused_key_is_reported_once_and_not_hammered() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403).set_body_json(serde_json::json!({
            "type": "error",
            "error": {"type": "permission_error", "message": "Missing required scopes. Got: ['read:compliance_user_data'] Needed: ['read:compliance_activities']"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &server.uri());
    run_source(&config, Duration::from_secs(3)).await;

    let store = Store::open_readonly(&config.state.path).unwrap();
    let state = store.source_state("s").unwrap();
    let error = state.last_error.expect("the error is recorded for status");
    assert!(error.contains("read:compliance_activities"), "{error}");
    assert!(!error.contains(KEY));
    assert_eq!(state.last_success_ms, None);
    // `expect(1)` is verified when the server drops: one request in 3 s.
}

/// A logging-off settings change is counted (and logged) once, when first
/// journaled, not again when the sweep re-reads it; so is a self-generated
/// access event.
#[test]
fn logging_off_and_self_generated_events_are_counted_once() {
    use claudit::source::client::Page;
    use claudit::source::{OwnRequests, commit_page};
    use claudit::store::{WindowKind, WindowRow};

    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("state.db")).unwrap();
    let metrics = claudit::metrics::Metrics::new();
    let counters = metrics.source("s");
    let own = std::sync::Mutex::new(OwnRequests::new(vec!["req_own".into()]));
    let now = chrono::Utc::now();
    let t = claudit::model::format_time(now - chrono::Duration::minutes(5));
    let records = [
        format!(
            r#"{{"id":"a1","type":"org_compliance_api_settings_updated","created_at":"{t}","organization_id":"org_1","compliance_api_enabled":true,"compliance_api_logging_enabled":false,"actor":{{"type":"user_actor","email_address":"admin@example.com"}}}}"#
        ),
        format!(
            r#"{{"id":"a2","type":"compliance_api_accessed","created_at":"{t}","request_id":"req_own"}}"#
        ),
        format!(
            r#"{{"id":"a3","type":"org_compliance_api_settings_updated","created_at":"{t}","compliance_api_logging_enabled":true}}"#
        ),
    ];
    let page = || Page {
        activities: records
            .iter()
            .map(|r| serde_json::value::RawValue::from_string(r.clone()).unwrap())
            .collect(),
        has_more: false,
        first_id: None,
        last_id: None,
        request_id: None,
        attempt_request_ids: vec![],
    };
    let start = (now - chrono::Duration::minutes(10)).timestamp_millis();
    let end = now.timestamp_millis();
    let window = |kind| WindowRow::fresh(kind, start, end);
    let enricher = Enricher::without_geoip();
    let policy = claudit::source::window::WindowPolicy::from_config(
        &config(dir.path(), "http://127.0.0.1:1").sources[0],
    );
    for kind in [WindowKind::Live, WindowKind::Sweep] {
        commit_page(
            &mut store,
            &policy,
            now,
            "s",
            &window(kind),
            page(),
            &enricher,
            &own,
            &counters,
        )
        .unwrap();
    }
    let text = metrics.encode();
    assert!(
        text.contains("claudit_compliance_logging_disabled_total{source=\"s\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("claudit_source_self_generated_events_total{source=\"s\"} 1"),
        "{text}"
    );
}
