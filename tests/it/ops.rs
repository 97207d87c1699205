//! Operations, at the binary level: the release daemon against the embedded
//! simulator and an Elasticsearch `_bulk` endpoint this test controls.
//! `/metrics` moves as events are journaled, delivered, retried and
//! dead-lettered; `/readyz` turns red while the sink fails and green again
//! once it recovers; the JSON logs are one object per line and carry no
//! secret. A second daemon on the same state database is refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

use claudit::sim::{SimConfig, Simulator};

use crate::support::config::{ConfigFile, Table, sink, source};
use crate::support::daemon::{self, Daemon};
use crate::support::wait::Wait;

const SOURCE_KEY: &str = "sk-ant-api01-ops-test-secret-0123456789";
const ES_KEY: &str = "T3BzVGVzdEtleTpzM2NyM3QtZXMta2V5LTk4NzY1";

/// The Elasticsearch `_bulk` endpoint: answers 503 while `failing`, else
/// indexes every item except the very first one it ever sees, which it
/// refuses with a mapping error (a dead letter).
#[derive(Default)]
struct Bulk {
    failing: AtomicBool,
    rejected_one: AtomicBool,
    requests: AtomicU64,
}

async fn bulk(State(es): State<Arc<Bulk>>, body: String) -> (axum::http::StatusCode, String) {
    es.requests.fetch_add(1, Ordering::Relaxed);
    if es.failing.load(Ordering::Relaxed) {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            r#"{"error":"unavailable"}"#.into(),
        );
    }
    let items: Vec<Value> = body
        .lines()
        .step_by(2)
        .map(|action| {
            let id = serde_json::from_str::<Value>(action).unwrap()["create"]["_id"].clone();
            if !es.rejected_one.swap(true, Ordering::Relaxed) {
                json!({"create": {"_id": id, "status": 400,
                    "error": {"type": "mapper_parsing_exception", "reason": "failed to parse field"}}})
            } else {
                json!({"create": {"_id": id, "status": 201}})
            }
        })
        .collect();
    let errors = items.iter().any(|i| i["create"]["status"] != 201);
    (
        axum::http::StatusCode::OK,
        json!({"took": 1, "errors": errors, "items": items}).to_string(),
    )
}

async fn start_bulk() -> (Arc<Bulk>, String) {
    let es = Arc::new(Bulk::default());
    let app = Router::new()
        .route("/_bulk", post(bulk))
        .with_state(es.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (es, url)
}

fn write_config(dir: &Path, api_url: &str, es_url: &str) -> PathBuf {
    ConfigFile::new(&dir.join("state.db"))
        .source(
            source("acme")
                .set("base_url", api_url)
                .set("api_key", "${OPS_TEST_SOURCE_KEY}")
                .set("window", "1s")
                .set("settle_lag", "1s")
                .set("poll_interval", "1s")
                .set("sweep_horizon", "30s")
                .set("sweep_interval", "5s")
                .set("initial_lookback", "10m")
                .set("no_data_after", "1h"),
        )
        .sink(
            sink("siem", "elasticsearch")
                .set("url", es_url)
                .set("index", "claudit-ops")
                .set("api_key", "${OPS_TEST_ES_KEY}")
                .set("compression", false)
                .set("batch_linger", "100ms")
                // The emulator refuses the first item it receives, which the
                // metrics below expect to be an activity: the findings
                // stream (a second delivery to the same cluster) stays off.
                .set("streams", vec!["activities"]),
        )
        .table(
            "server",
            Table::default()
                .set("listen", "127.0.0.1:0")
                .set("ready_max_sink_delay", "2s"),
        )
        .write(&dir.join("claudit.toml"))
}

fn spawn(config: &Path, log: &Path) -> Daemon {
    let mut command = daemon::run_command(config);
    command
        .env("OPS_TEST_SOURCE_KEY", SOURCE_KEY)
        .env("OPS_TEST_ES_KEY", ES_KEY)
        .env("RUST_LOG", "info,claudit=debug");
    Daemon::spawn(command, log)
}

/// Every log line, each parsed as one JSON object.
fn log_lines(log: &Path) -> Vec<Value> {
    let lines = daemon::json_lines(&std::fs::read_to_string(log).unwrap());
    for v in &lines {
        assert!(v.is_object(), "log line is not an object: {v}");
    }
    lines
}

/// The value of one sample (`name{labels}`) in a scrape, if present.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split(' ').next()?.parse().ok()
    })
}

struct Ops {
    http: reqwest::Client,
    base: String,
}

impl Ops {
    async fn scrape(&self) -> String {
        let r = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        r.text().await.unwrap()
    }

    async fn value(&self, series: &str) -> f64 {
        sample(&self.scrape().await, series).unwrap_or(0.0)
    }

    async fn probe(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_readiness_follow_a_failing_then_recovering_sink() {
    let sim = Simulator::start(SimConfig {
        api_key: SOURCE_KEY.into(),
        backlog: 200,
        backlog_span: Duration::from_secs(5 * 60),
        live_per_second: 5.0,
        visibility_delay: Duration::from_millis(200),
        late_fraction: 0.0,
        rate_limit_per_minute: None,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let (es, es_url) = start_bulk().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.base_url(), &es_url);
    let log = dir.path().join("daemon.log");
    let mut daemon = spawn(&config, &log);

    // The endpoint listens on a free port, named in the log.
    let address = Wait::up_to(Duration::from_secs(10))
        .until("the listening address in the log", async || {
            let text = std::fs::read_to_string(&log).ok()?;
            text.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|v| v["message"] == "serving /metrics, /healthz and /readyz")
                .map(|v| v["address"].as_str().unwrap().to_string())
        })
        .await;
    let ops = Ops {
        http: reqwest::Client::new(),
        base: format!("http://{address}"),
    };
    let siem = "{sink=\"siem\"}";
    let acme = "{source=\"acme\"}";

    // 1. Healthy: the backlog is journaled and delivered, one event is
    // dead-lettered, /readyz and /healthz are green.
    Wait::up_to(Duration::from_secs(15))
        .until("the backlog delivered", async || {
            let s = ops.scrape().await;
            let delivered = sample(&s, &format!("claudit_sink_events_delivered_total{siem}"))?;
            // The daemon's own first request is journaled by a later live
            // window (its activity is created after the first window's end).
            let own = sample(
                &s,
                &format!("claudit_source_self_generated_events_total{acme}"),
            )?;
            (delivered >= 200.0
                && own >= 1.0
                && sample(&s, &format!("claudit_sink_events_behind{siem}")) == Some(0.0))
            .then_some(())
        })
        .await;
    let s = ops.scrape().await;
    let journaled = sample(&s, &format!("claudit_source_events_journaled_total{acme}")).unwrap();
    assert!(journaled >= 201.0, "{s}");
    assert!(
        sample(
            &s,
            "claudit_source_requests_total{source=\"acme\",class=\"2xx\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        sample(&s, &format!("claudit_sink_dead_lettered_total{siem}")),
        Some(1.0)
    );
    assert_eq!(
        sample(&s, &format!("claudit_sink_dead_letters{siem}")),
        Some(1.0)
    );
    assert!(sample(&s, &format!("claudit_sink_batches_total{siem}")).unwrap() >= 1.0);
    assert!(sample(&s, &format!("claudit_sink_payload_bytes_total{siem}")).unwrap() > 0.0);
    assert!(sample(&s, "claudit_journal_rows").unwrap() >= journaled);
    assert!(sample(&s, "claudit_database_bytes").unwrap() > 0.0);
    assert!(
        sample(
            &s,
            &format!("claudit_source_self_generated_events_total{acme}")
        )
        .unwrap()
            >= 1.0
    );
    assert!(sample(&s, &format!("claudit_source_since_last_poll_seconds{acme}")).unwrap() < 5.0);
    assert_eq!(
        sample(&s, &format!("claudit_source_no_data{acme}")),
        Some(0.0)
    );
    assert_eq!(
        sample(&s, &format!("claudit_sink_retries_total{siem}")),
        Some(0.0)
    );
    let (status, body) = ops.probe("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    let (status, body) = ops.probe("/healthz").await;
    assert_eq!(status, 200, "{body}");
    let tasks: Vec<&str> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        tasks.contains(&"task source acme") && tasks.contains(&"task sink siem"),
        "{body}"
    );

    // 2. The sink fails every request: retries grow, events pile up, and
    // /readyz fails, naming the sink, once the oldest undelivered event and
    // the last delivery are older than ready_max_sink_delay (2 s).
    es.failing.store(true, Ordering::Relaxed);
    let body = Wait::up_to(Duration::from_secs(15))
        .until("/readyz to fail", async || {
            let (status, body) = ops.probe("/readyz").await;
            (status == 503).then_some(body)
        })
        .await;
    assert_eq!(body["status"], "failing");
    let sink_check = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sink siem")
        .unwrap()
        .clone();
    assert_eq!(sink_check["ok"], false, "{body}");
    assert!(
        sink_check["detail"].as_str().unwrap().contains("503"),
        "{body}"
    );
    let source_check = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "source acme")
        .unwrap()
        .clone();
    assert_eq!(source_check["ok"], true, "the source still polls: {body}");
    let s = ops.scrape().await;
    assert!(
        sample(&s, &format!("claudit_sink_retries_total{siem}")).unwrap() >= 1.0,
        "{s}"
    );
    assert!(
        sample(&s, &format!("claudit_sink_events_behind{siem}")).unwrap() >= 1.0,
        "{s}"
    );
    assert!(
        sample(&s, &format!("claudit_sink_behind_seconds{siem}")).unwrap() > 2.0,
        "{s}"
    );
    assert_eq!(sample(&s, "claudit_ready"), Some(0.0));

    // 3. The sink recovers: the backlog drains and /readyz is green again;
    // nothing more was dead-lettered.
    let delivered_before = ops
        .value(&format!("claudit_sink_events_delivered_total{siem}"))
        .await;
    es.failing.store(false, Ordering::Relaxed);
    Wait::up_to(Duration::from_secs(20))
        .until("/readyz to recover", async || {
            (ops.probe("/readyz").await.0 == 200).then_some(())
        })
        .await;
    let s = ops.scrape().await;
    assert!(
        sample(&s, &format!("claudit_sink_events_delivered_total{siem}")).unwrap()
            > delivered_before
    );
    assert_eq!(
        sample(&s, &format!("claudit_sink_dead_lettered_total{siem}")),
        Some(1.0)
    );
    daemon::assert_no_secret("/metrics", &s, &[ES_KEY, SOURCE_KEY]);
    assert!(es.requests.load(Ordering::Relaxed) >= 3);

    daemon.stop(Duration::from_secs(30));

    // Logs: one JSON object per line, the summary lines present, no secret.
    let lines = log_lines(&log);
    assert!(lines.len() > 10);
    let raw = std::fs::read_to_string(&log).unwrap();
    daemon::assert_no_secret("the daemon's log", &raw, &[SOURCE_KEY, ES_KEY]);
    let has = |message: &str| lines.iter().any(|v| v["message"] == message);
    assert!(has("batch delivered") && has("page committed") && has("stopped"));
    // One info summary per cycle: a source's poll cycle, a sink catching up.
    let info = |message: &str| {
        lines
            .iter()
            .any(|v| v["message"] == message && v["level"] == "INFO")
    };
    assert!(info("poll cycle done"), "no poll cycle summary");
    assert!(info("caught up with the journal"), "no sink cycle summary");
    assert!(
        lines.iter().any(|v| v["message"] == "page committed"
            && v["request_id"].as_str().is_some_and(|r| !r.is_empty())),
        "page lines carry the API's request id"
    );
    assert!(lines.iter().any(|v| v["sink"] == "siem"
        && v["level"] == "WARN"
        && v["message"].as_str().unwrap().contains("dead-letter")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_state_database_exits_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing answers on port 9: the first daemon runs, failing to poll.
    let config = write_config(dir.path(), "http://127.0.0.1:9", "http://127.0.0.1:9");
    let first_log = dir.path().join("first.log");
    let mut first = spawn(&config, &first_log);
    Wait::up_to(Duration::from_secs(10))
        .until("the first daemon to run", async || {
            let text = std::fs::read_to_string(&first_log).ok()?;
            text.contains("claudit running").then_some(())
        })
        .await;

    let second_log = dir.path().join("second.log");
    let mut second = spawn(&config, &second_log);
    let status = Wait::up_to(Duration::from_secs(10))
        .until("the second daemon to exit", async || second.try_wait())
        .await;
    assert!(!status.success());
    let lines = log_lines(&second_log);
    let error = lines
        .iter()
        .find(|v| v["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no error line: {lines:?}"));
    let text = error["error"].as_str().unwrap();
    assert!(
        text.contains("another claudit is already running"),
        "{text}"
    );
    assert!(text.contains("state.db"), "{text}");

    first.stop(Duration::from_secs(30));
}

/// Every metric the shipped alert rules name (in `expr` and in annotation
/// queries) is one the daemon exports: the names are taken from a real
/// registry's scrape, not from a list kept by hand.
#[test]
fn alert_rules_name_only_exported_metrics() {
    use claudit::health::{SinkSnapshot, SourceSnapshot, StateSnapshot};

    let metrics = claudit::metrics::Metrics::new();
    let source = metrics.source("acme");
    source.journaled.inc();
    metrics.sink("siem").delivered.inc();
    metrics.set_no_data("acme", false);
    metrics.configure(claudit::health::Targets {
        sources: vec![claudit::health::SourceTarget {
            name: "acme".into(),
            max_poll_gap: Duration::from_secs(60),
            no_data_after: Duration::from_secs(3600),
        }],
        ..Default::default()
    });
    metrics.apply(
        &StateSnapshot {
            sources: vec![SourceSnapshot {
                name: "acme".into(),
                watermark_ms: Some(0),
                last_success_ms: Some(0),
                last_error: None,
                windows: Vec::new(),
                backfills: Vec::new(),
            }],
            sinks: vec![SinkSnapshot {
                name: "siem".into(),
                events_behind: 1,
                oldest_undelivered_ms: Some(0),
                last_success_ms: Some(0),
                last_error: None,
                dead_letters: 0,
            }],
            journal_rows: 1,
            database_bytes: 1,
        },
        true,
        1_000,
    );
    let exported: std::collections::BTreeSet<String> = metrics
        .encode()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect();
    assert!(exported.len() >= 20, "{exported:?}");

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/claudit-rules.yaml");
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let names_in = |text: &str| -> Vec<String> {
        let mut names = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("claudit_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.push(tail[..end].to_string());
            rest = &tail[end..];
        }
        names
    };
    let mut alerts = Vec::new();
    for group in doc["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let alert = rule["alert"].as_str().expect("every rule is an alert");
            let expr = rule["expr"].as_str().unwrap();
            let in_expr = names_in(expr);
            assert!(
                !in_expr.is_empty(),
                "{alert}: expr names no claudit metric: {expr}"
            );
            let mut all = in_expr;
            for (_, v) in rule["annotations"].as_mapping().unwrap() {
                all.extend(names_in(v.as_str().unwrap()));
            }
            for name in all {
                assert!(
                    exported.contains(&name),
                    "{alert} uses {name}, which the daemon does not export; exported: {exported:?}"
                );
            }
            for key in ["summary", "description", "runbook"] {
                assert!(
                    rule["annotations"][key].as_str().is_some(),
                    "{alert} lacks the {key} annotation"
                );
            }
            alerts.push(alert.to_string());
        }
    }
    for expected in [
        "ClauditNotReady",
        "ClauditSourceLagging",
        "ClauditSourceNoData",
        "ClauditSinkFailing",
        "ClauditDeadLettersGrowing",
    ] {
        assert!(alerts.iter().any(|a| a == expected), "{expected} missing");
    }
}
