//! The release daemon against a Compliance API whose paging is broken: a
//! cursor that does not advance (`has_more: true` with `last_id` equal to
//! the `after_id` just sent) and a page that has more but no cursor
//! (`has_more: true`, `last_id: null`). Each must be a visible protocol
//! fault (an error log line with the request id, a metric, `status`,
//! `/readyz`), retried on the normal backoff schedule from the window's last
//! committed position and never taken as the end of the window; once the
//! feed pages correctly again, every activity is delivered exactly once.

use crate::support::faulty_feed;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use faulty_feed::{FaultyFeed, Paging};

const KEY: &str = "sk-ant-api01-paging-faults-secret-key";
/// Activities in the feed, 100 per page.
const RECORDS: usize = 300;
/// How long the feed stays broken while requests are counted.
const OBSERVED: Duration = Duration::from_secs(8);

fn records() -> Vec<(String, chrono::DateTime<chrono::Utc>)> {
    let now = chrono::Utc::now();
    (0..RECORDS)
        .map(|i| {
            // Spread over 10 to 50 minutes ago: inside the initial lookback.
            let ago = chrono::Duration::milliseconds(600_000 + (i as i64) * 8_000);
            (format!("activity_faulty_{i:04}"), now - ago)
        })
        .collect()
}

fn write_config(dir: &Path, base_url: &str) -> PathBuf {
    let d = dir.display();
    let path = dir.join("claudit.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[state]
path = "{d}/state.db"

[[sources]]
name = "acme"
base_url = "{base_url}"
api_key = "${{PAGING_FAULTS_KEY}}"
page_size = 100
window = "5s"
settle_lag = "1s"
poll_interval = "1s"
sweep_horizon = "1m"
sweep_interval = "1h"
initial_lookback = "1h"

[[sinks]]
name = "events"
type = "file"
format = "raw"
path = "{d}/events.ndjson"
batch_linger = "100ms"

[server]
listen = "127.0.0.1:0"
"#
        ),
    )
    .unwrap();
    path
}

/// The daemon, killed when the test ends (also when it fails).
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(config: &Path, log: &Path) -> Daemon {
    let child = Command::new(env!("CARGO_BIN_EXE_claudit"))
        .args(["--log-format", "json", "run", "--config"])
        .arg(config)
        .env("PAGING_FAULTS_KEY", KEY)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start claudit");
    Daemon(child)
}

fn log_lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Polls `check` every 100 ms until it returns `Some`, or fails after `limit`.
async fn wait_for<T>(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The most requests the client's retry schedule allows in `period` after
/// a first failed one: waits of at least 1 s doubling up to 30 s (jitter only
/// lengthens them).
fn retry_schedule_allows(period: Duration) -> usize {
    let (mut at, mut wait, mut attempts) = (Duration::ZERO, Duration::from_secs(1), 1);
    loop {
        at += wait;
        if at > period {
            return attempts;
        }
        attempts += 1;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

fn status(config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_claudit"))
        .args(["status", "--config"])
        .arg(config)
        .env("PAGING_FAULTS_KEY", KEY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the daemon against a feed broken as `paging`; checks the fault is
/// visible and backed off, then repairs the feed and checks delivery.
async fn broken_paging_is_a_visible_fault_then_recovers(paging: Paging) {
    let feed = FaultyFeed::start(KEY, records()).await;
    feed.set_paging(paging);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &feed.base_url);
    let log = dir.path().join("daemon.log");
    let daemon = spawn(&config, &log);

    // Requests while the feed is broken, from the first faulty answer on.
    let first_faulty = wait_for("a faulty answer", Duration::from_secs(20), async || {
        feed.served()
            .iter()
            .find(|s| paging == Paging::NullCursor || s.after_id.is_some())
            .map(|s| s.at)
    })
    .await;
    tokio::time::sleep_until((first_faulty + OBSERVED).into()).await;
    let faulty = feed
        .served()
        .iter()
        .filter(|s| s.paging == paging && s.at >= first_faulty && s.at <= first_faulty + OBSERVED)
        .count();
    println!(
        "{paging:?}: {faulty} requests in the {} s after the first faulty answer ({:.0} per minute)",
        OBSERVED.as_secs(),
        faulty as f64 * 60.0 / OBSERVED.as_secs_f64()
    );
    assert!(
        faulty <= retry_schedule_allows(OBSERVED),
        "{faulty} requests in {OBSERVED:?}: more than the retry schedule allows ({})",
        retry_schedule_allows(OBSERVED)
    );

    // The fault is visible: an error line naming a faulty request id,
    // status, /readyz and /metrics.
    let lines = log_lines(&log);
    let fault_line = lines
        .iter()
        .find(|l| l["level"] == "ERROR" && l["message"].as_str().unwrap_or("").contains("paging"))
        .unwrap_or_else(|| panic!("no error line about the paging fault in {}", log.display()));
    assert!(
        fault_line["request_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("req_faulty_")),
        "{fault_line}"
    );
    let text = status(&config);
    assert!(text.contains("paging fault"), "{text}");
    assert!(text.contains("req_faulty_"), "{text}");
    let address = lines
        .iter()
        .find(|v| v["message"] == "serving /metrics, /healthz and /readyz")
        .and_then(|v| v["address"].as_str())
        .expect("the listening address in the log")
        .to_string();
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("http://{address}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    let check = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "source acme")
        .unwrap()
        .clone();
    assert_eq!(check["ok"], false, "{body}");
    assert!(
        check["detail"].as_str().unwrap().contains("paging fault"),
        "{body}"
    );
    let metrics = http
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let faults = metrics
        .lines()
        .find_map(|l| l.strip_prefix("claudit_source_paging_faults_total{source=\"acme\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no paging fault counter in\n{metrics}"));
    assert!(faults >= 1.0, "{faults}");

    // Repaired: every activity arrives, once; /readyz is green again.
    feed.set_paging(Paging::Healthy);
    let events = dir.path().join("events.ndjson");
    let delivered = wait_for(
        "every activity delivered",
        Duration::from_secs(90),
        async || {
            let text = std::fs::read_to_string(&events).ok()?;
            let mut ids: HashMap<String, usize> = HashMap::new();
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                *ids.entry(v["id"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
            (ids.len() >= RECORDS).then_some(ids)
        },
    )
    .await;
    assert_eq!(delivered.len(), RECORDS);
    assert!(
        delivered.values().all(|n| *n == 1),
        "duplicates: {delivered:?}"
    );
    wait_for("/readyz green again", Duration::from_secs(20), async || {
        let r = http
            .get(format!("http://{address}/readyz"))
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    assert!(!status(&config).contains("paging fault"));
    assert!(!std::fs::read_to_string(&log).unwrap().contains(KEY));
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_that_does_not_advance_is_a_visible_fault_retried_with_backoff() {
    broken_paging_is_a_visible_fault_then_recovers(Paging::RepeatsCursor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_pages_without_a_cursor_is_a_visible_fault_not_the_end_of_the_window() {
    broken_paging_is_a_visible_fault_then_recovers(Paging::NullCursor).await;
}
