//! The Datadog sink against a wiremock intake that enforces the Logs API v2
//! rules of `spec/sinks.md` section 2: `DD-API-KEY` (401 absent, 403
//! unknown), `POST /api/v2/logs`, JSON content type, gzip, a JSON array of
//! at most 1000 items and 5,000,000 decompressed bytes (413 above), 202 on
//! success; faults (429, 503, 413) injected in front.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use claudit::sinks::contract::Outcome;
use claudit::sinks::datadog::{DatadogSink, STALE_AFTER_MS};
use claudit::store::BatchRecord;
use serde_json::Value;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::config::{self, Table, sink, sink_config};
use crate::support::http;
use crate::support::journal::{self, Journal};
use crate::support::sink_task::run_until_caught_up;

const KEY: &str = "dd-api-key-0123456789abcdef-secret";

#[derive(Clone, Default)]
struct Intake {
    /// Items accepted, in order.
    received: Arc<Mutex<Vec<Value>>>,
    /// When each request arrived.
    arrivals: Arc<Mutex<Vec<Instant>>>,
    /// Answers to give before behaving (faults).
    faults: Arc<Mutex<VecDeque<ResponseTemplate>>>,
    /// A lower request limit than Datadog's (a proxy), for 413 tests.
    max_bytes: Arc<Mutex<Option<usize>>>,
}

impl Respond for Intake {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.arrivals.lock().unwrap().push(Instant::now());
        match request
            .headers
            .get("dd-api-key")
            .map(|v| v.to_str().unwrap())
        {
            None => return ResponseTemplate::new(401),
            Some(k) if k != KEY => {
                return ResponseTemplate::new(403)
                    .set_body_string(r#"{"errors":[{"status":"403","title":"Forbidden"}]}"#);
            }
            _ => {}
        }
        if let Some(fault) = self.faults.lock().unwrap().pop_front() {
            return fault;
        }
        let content_type = request
            .headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(content_type, "application/json");
        let body = http::decoded_body(request);
        let limit = self.max_bytes.lock().unwrap().unwrap_or(5_000_000);
        if body.len() > limit {
            return ResponseTemplate::new(413);
        }
        let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&body) else {
            return ResponseTemplate::new(400);
        };
        if items.len() > 1000 {
            return ResponseTemplate::new(400);
        }
        for item in &items {
            assert!(item["message"].is_string(), "message must be a string");
            assert!(item["ddsource"].is_string());
            assert!(item["timestamp"].is_i64());
        }
        self.received.lock().unwrap().extend(items);
        ResponseTemplate::new(202).set_body_string("{}")
    }
}

async fn intake() -> (MockServer, Intake) {
    let server = MockServer::start().await;
    let intake = Intake::default();
    Mock::given(method("POST"))
        .and(path("/api/v2/logs"))
        .respond_with(intake.clone())
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/validate"))
        .and(header("dd-api-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"valid":true}"#))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/validate"))
        .respond_with(ResponseTemplate::new(403).set_body_string(r#"{"errors":["Forbidden"]}"#))
        .mount(&server)
        .await;
    (server, intake)
}

/// The Datadog sink of these tests: raw activities to `url`, the key from
/// `DD_KEY`, no linger.
fn datadog_sink(url: &str) -> Table {
    sink("dd", "datadog")
        .set("format", "raw")
        .set("url", url)
        .set("api_key", "${DD_KEY}")
        .set("batch_linger", "0s")
}

fn datadog(url: &str, key: &str) -> DatadogSink {
    let config = sink_config(datadog_sink(url), &[("DD_KEY", key)]);
    let Some(dd) = config.kind.get::<claudit::config::DatadogSinkConfig>() else {
        panic!("not a datadog sink")
    };
    DatadogSink::new(dd).unwrap()
}

fn records(n: usize, size: usize, created_at_ms: i64) -> Vec<BatchRecord> {
    (0..n)
        .map(|i| BatchRecord {
            seq: i as i64 + 1,
            activity_id: format!("activity_{i}"),
            created_at_ms,
            payload: journal::activity(&format!("activity_{i}"), size),
        })
        .collect()
}

fn no_secret(outcome: &Outcome) {
    let text = format!("{outcome:?}");
    assert!(!text.contains(KEY), "the API key leaked: {text}");
}

#[tokio::test]
async fn a_journal_is_delivered_through_the_sink_task_and_oversize_events_are_dead_lettered() {
    let (server, intake) = intake().await;
    let now = claudit::store::now_ms();
    let mut rows: Vec<(String, i64, String)> = (0..40)
        .map(|i| {
            let id = format!("activity_{i:03}");
            let raw = journal::activity(&id, 700);
            (id, now - i, raw)
        })
        .collect();
    // One activity of 1.2 MB: over Datadog's 1 MB per log.
    rows[17].2 = journal::activity(&rows[17].0, 1_200_000);
    let journal = Journal::with_activities(&rows);
    let config = sink_config(datadog_sink(&server.uri()), &[("DD_KEY", KEY)]);
    let (seq, head, dead) = run_until_caught_up(&journal, config).await;
    assert_eq!(seq, head, "the cursor reached the head");
    assert_eq!(dead, 1, "the 1.2 MB event is dead-lettered");
    let received = intake.received.lock().unwrap().clone();
    assert_eq!(received.len(), 39);
    let ids: Vec<String> = received
        .iter()
        .map(|item| {
            let message: Value = serde_json::from_str(item["message"].as_str().unwrap()).unwrap();
            message["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(!ids.contains(&rows[17].0));
    assert_eq!(ids[0], rows[0].0, "the raw activity rides in message");
    assert_eq!(received[0]["ddsource"], "claude-compliance-logs");
    assert_eq!(received[0]["service"], "claudit");
    assert_eq!(received[0]["timestamp"], rows[0].1);
    // gzip was on (the default): wiremock saw compressed bodies.
    let requests = server.received_requests().await.unwrap();
    let posts: Vec<_> = requests
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .collect();
    assert!(
        posts
            .iter()
            .all(|r| r.headers.get("content-encoding").unwrap() == "gzip")
    );
}

#[tokio::test]
async fn a_batch_over_1000_events_is_split_and_a_retry_resends_only_what_was_not_acknowledged() {
    let (server, intake) = intake().await;
    let mut dd = datadog(&server.uri(), KEY);
    let batch = records(2500, 300, claudit::store::now_ms());
    // The first request is acknowledged (an injected 202, so its items are
    // not recorded), the second meets a 503.
    intake.faults.lock().unwrap().extend([
        ResponseTemplate::new(202),
        ResponseTemplate::new(503).insert_header("retry-after", "2"),
    ]);
    let outcome = dd.send(&batch).await;
    assert_eq!(
        outcome,
        Outcome::Retry {
            after: Some(Duration::from_secs(2)),
            reason: "HTTP 503: ".into()
        }
    );
    assert_eq!(intake.arrivals.lock().unwrap().len(), 2);
    let outcome = dd.send(&batch).await;
    assert_eq!(outcome, Outcome::delivered());
    // Requests 2 and 3 only: 1000 + 500 items; request 1 was acknowledged
    // (by the injected 202) and not sent again.
    assert_eq!(intake.arrivals.lock().unwrap().len(), 4);
    let received = intake.received.lock().unwrap();
    assert_eq!(received.len(), 1500);
    let first: Value = serde_json::from_str(received[0]["message"].as_str().unwrap()).unwrap();
    assert_eq!(first["id"], "activity_1000");
}

#[tokio::test]
async fn a_429_is_retried_by_the_sink_task_no_sooner_than_retry_after() {
    let (server, intake) = intake().await;
    intake
        .faults
        .lock()
        .unwrap()
        .push_back(ResponseTemplate::new(429).insert_header("retry-after", "1"));
    let now = claudit::store::now_ms();
    let rows: Vec<_> = (0..5)
        .map(|i| {
            (
                format!("activity_{i}"),
                now,
                journal::activity(&format!("activity_{i}"), 400),
            )
        })
        .collect();
    let journal = Journal::with_activities(&rows);
    let config = sink_config(datadog_sink(&server.uri()), &[("DD_KEY", KEY)]);
    let (seq, head, dead) = run_until_caught_up(&journal, config).await;
    assert_eq!((seq, dead), (head, 0));
    let arrivals = intake.arrivals.lock().unwrap();
    assert_eq!(arrivals.len(), 2);
    assert!(arrivals[1] - arrivals[0] >= Duration::from_secs(1));
    assert_eq!(intake.received.lock().unwrap().len(), 5);
}

#[tokio::test]
async fn statuses_are_classified_and_413_halves_down_to_one_event() {
    let (server, intake) = intake().await;
    let mut dd = datadog(&server.uri(), KEY);
    let batch = records(10, 50_000, claudit::store::now_ms());
    // A proxy with a 120 KB limit: 10 x 50 KB halves to pairs.
    *intake.max_bytes.lock().unwrap() = Some(120_000);
    assert_eq!(dd.send(&batch).await, Outcome::delivered());
    assert_eq!(intake.received.lock().unwrap().len(), 10);
    // A single event over the proxy limit is dead-lettered with the answer.
    *intake.max_bytes.lock().unwrap() = Some(10_000);
    let one = records(1, 50_000, claudit::store::now_ms());
    match dd.send(&one).await {
        Outcome::Delivered { rejected } => {
            assert_eq!(rejected.len(), 1);
            assert!(rejected[0].response.starts_with("HTTP 413"));
        }
        other => panic!("{other:?}"),
    }
    *intake.max_bytes.lock().unwrap() = None;
    for (code, retry) in [
        (500, true),
        (502, true),
        (408, true),
        (400, false),
        (404, false),
    ] {
        intake
            .faults
            .lock()
            .unwrap()
            .push_back(ResponseTemplate::new(code).set_body_string("{\"errors\":[\"x\"]}"));
        let batch = records(3, 100, claudit::store::now_ms());
        let outcome = dd.send(&batch).await;
        no_secret(&outcome);
        match (retry, &outcome) {
            (true, Outcome::Retry { .. }) | (false, Outcome::Fatal { .. }) => {}
            _ => panic!("HTTP {code}: {outcome:?}"),
        }
        // Clear the progress of this batch.
        assert_eq!(dd.send(&batch).await, Outcome::delivered());
    }
}

#[tokio::test]
async fn a_wrong_key_is_fatal_and_never_shown() {
    let (server, _intake) = intake().await;
    let wrong = "dd-wrong-key-fedcba9876543210";
    let mut dd = datadog(&server.uri(), wrong);
    let outcome = dd.send(&records(2, 100, 0)).await;
    let Outcome::Fatal { reason } = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        reason.contains("403") && reason.contains("api_key"),
        "{reason}"
    );
    assert!(!reason.contains(wrong));
    let err = dd.healthcheck().await.unwrap_err();
    assert!(
        err.contains("refused the API key") && !err.contains(wrong),
        "{err}"
    );
    let ok = datadog(&server.uri(), KEY).healthcheck().await.unwrap();
    assert!(!ok.contains(KEY), "{ok}");
}

#[tokio::test]
async fn stale_events_are_counted_once_per_batch() {
    let (server, intake) = intake().await;
    let mut dd = datadog(&server.uri(), KEY);
    let counter = dd.stale_events();
    let old = claudit::store::now_ms() - STALE_AFTER_MS - 60_000;
    let mut batch = records(6, 100, old);
    batch[0].created_at_ms = claudit::store::now_ms();
    intake
        .faults
        .lock()
        .unwrap()
        .push_back(ResponseTemplate::new(503));
    assert!(matches!(dd.send(&batch).await, Outcome::Retry { .. }));
    assert_eq!(dd.send(&batch).await, Outcome::delivered());
    assert_eq!(counter.get(), 5, "a retry does not count again");
    assert_eq!(
        intake.received.lock().unwrap().len(),
        6,
        "stale events are still sent"
    );
}

#[test]
fn config_maps_sites_and_reports_mistakes() {
    let dd = |extra: &str| {
        config::load_with_sink(
            &format!("[[sinks]]\nname = \"dd\"\ntype = \"datadog\"\napi_key = \"${{K}}\"\n{extra}"),
            &[("K", KEY)],
        )
    };
    let intake_of = |extra: &str| {
        let c = dd(extra).unwrap().sinks[0]
            .kind
            .get::<claudit::config::DatadogSinkConfig>()
            .cloned()
            .unwrap();
        (c.intake_url.clone(), c.validate_url.clone())
    };
    assert_eq!(
        intake_of("site = \"EU1\""),
        (
            "https://http-intake.logs.datadoghq.eu/api/v2/logs".into(),
            "https://api.datadoghq.eu/api/v1/validate".into()
        )
    );
    assert_eq!(
        intake_of("site = \"us1-fed\"").0,
        "https://http-intake.logs.ddog-gov.com/api/v2/logs"
    );
    assert_eq!(
        intake_of("site = \"us5.datadoghq.com\"").0,
        "https://http-intake.logs.us5.datadoghq.com/api/v2/logs"
    );
    for (extra, expected) in [
        ("", "missing; add site = \"US1\""),
        ("site = \"EU2\"", "unknown Datadog site \"EU2\""),
        (
            "site = \"US1\"\nurl = \"https://x\"",
            "both site and url are set",
        ),
        (
            "url = \"http://proxy.example.com\"",
            "plain http is allowed only",
        ),
    ] {
        let err = dd(extra).unwrap_err();
        assert!(err.contains(expected), "{extra}: {err}");
        assert!(err.contains("claudit.toml"), "names the file: {err}");
        assert!(!err.contains(KEY));
    }
    let c = dd("site = \"US3\"\nddsource = \"claudit\"\nddtags = \"env:prod\"\nhostname = \"vm1\"")
        .unwrap();
    let Some(c) = c.sinks[0].kind.get::<claudit::config::DatadogSinkConfig>() else {
        unreachable!()
    };
    assert_eq!(
        (c.ddsource.as_str(), c.ddtags.as_str()),
        ("claudit", "env:prod")
    );
    assert_eq!(c.hostname.as_deref(), Some("vm1"));
    assert!(!format!("{c:?}").contains(KEY), "Debug hides the key");
}

/// The destination's own counter (stale events) reaches `/metrics` with the
/// sink's label, counted by the real sink task.
#[tokio::test]
async fn stale_events_are_exported_on_metrics_with_the_sink_label() {
    use crate::support::sink_task::SinkTasks;
    use crate::support::wait::Wait;

    let (server, intake) = intake().await;
    let now = claudit::store::now_ms();
    let old = now - STALE_AFTER_MS - 60_000;
    let journal = Journal::with_activities(&[
        ("a".into(), old, r#"{"id":"a"}"#.into()),
        ("b".into(), old, r#"{"id":"b"}"#.into()),
        ("c".into(), now, r#"{"id":"c"}"#.into()),
    ]);
    let config = sink_config(datadog_sink(&server.uri()), &[("DD_KEY", KEY)]);
    let metrics = Arc::new(claudit::metrics::Metrics::new());
    let mut tasks = SinkTasks::start_with_metrics(&journal.shared(), vec![config], metrics.clone());
    tasks
        .until(
            "the datadog sink to deliver the journal",
            Wait::up_to(Duration::from_secs(60)),
            async || {
                let seq = journal.cursor("dd").seq;
                (seq >= 3).then_some(()).ok_or(format!("cursor at {seq}"))
            },
        )
        .await;
    tasks.stop().await;
    assert_eq!(intake.received.lock().unwrap().len(), 3);
    let scrape = metrics.encode();
    let stale = "claudit_sink_stale_events_total{sink=\"dd\"} 2\n";
    assert!(scrape.contains(stale), "{stale} not in\n{scrape}");
}
