//! The release daemon against a hostile Compliance API (a raw HTTP server
//! in front of the simulator, `support/hostile_api.rs`): a gzip bomb, an
//! endless body and a page with a 20 MB record. The daemon stays up, says
//! what happened (endpoint, limit, request id), retries with backoff,
//! keeps its memory bounded (peak RSS from `/proc/PID/status`), and once
//! the API answers properly again delivers every activity exactly once.

use crate::support::hostile_api;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use claudit::sim::{SimConfig, Simulator};
use claudit::store::Store;
use hostile_api::{BIG_RECORD_BYTES, BIG_RECORD_ID, HostileApi, Mode, memory_mib};

const API_KEY: &str = "sk-ant-api01-hostile-api-secret-0123456789";
/// Peak RSS the daemon must stay under, whatever the API sends.
const PEAK_RSS_LIMIT_MIB: u64 = 200;

struct Daemon {
    dir: tempfile::TempDir,
    child: Child,
}

impl Daemon {
    fn start(api_url: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let config = dir.path().join("claudit.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[state]
path = "{d}/state.db"

[[sources]]
name = "hostile"
base_url = "{api_url}"
api_key = "${{HOSTILE_TEST_KEY}}"
window = "2s"
settle_lag = "2s"
poll_interval = "1s"
sweep_horizon = "2m"
sweep_interval = "1h"
initial_lookback = "30m"
no_data_after = "1h"

[[sinks]]
name = "raw"
type = "file"
path = "{d}/out/raw.ndjson"
format = "raw"
max_bytes = "0"
batch_linger = "100ms"

[[sinks]]
name = "ocsf"
type = "file"
path = "{d}/out/ocsf.ndjson"
format = "ocsf"
max_bytes = "0"
batch_linger = "100ms"
"#
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_claudit"))
            .args(["--log-format", "json", "run", "--config"])
            .arg(&config)
            .env("HOSTILE_TEST_KEY", API_KEY)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start claudit");
        Daemon { dir, child }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap()
    }

    fn assert_alive(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the daemon exited; logs:\n{}",
            self.logs()
        );
    }

    /// (VmHWM, VmRSS) in MiB.
    fn memory(&self) -> (u64, u64) {
        memory_mib(self.child.id())
    }

    /// Waits until the watermark passed `after_ms` and both sinks delivered
    /// the whole journal.
    async fn wait_caught_up(&mut self, after_ms: i64, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            self.assert_alive();
            assert!(
                Instant::now() < deadline,
                "not caught up within {limit:?}; logs:\n{}",
                tail(&self.logs())
            );
            if let Ok(store) = Store::open_readonly(&self.db())
                && let (Ok(state), Ok(head)) = (store.source_state("hostile"), store.head_seq())
                && state.watermark_ms.is_some_and(|w| w > after_ms)
                && ["raw", "ocsf"]
                    .iter()
                    .all(|s| store.sink_cursor(s).is_ok_and(|c| c.seq >= head))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// How many times each activity id is in the raw file sink's output.
    fn delivered(&self) -> HashMap<String, usize> {
        let text = std::fs::read_to_string(self.dir.path().join("out/raw.ndjson")).unwrap();
        let mut counts = HashMap::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            *counts
                .entry(v["id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        counts
    }

    fn stop(self) {}
}

/// A failed assertion must not leave the daemon running.
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(logs: &str) -> String {
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn sim_config(seed: u64) -> SimConfig {
    SimConfig {
        api_key: API_KEY.into(),
        backlog: 3_000,
        backlog_span: Duration::from_secs(20 * 60),
        live_per_second: 20.0,
        visibility_delay: Duration::from_millis(500),
        late_fraction: 0.0,
        rate_limit_per_minute: None,
        seed,
        ..SimConfig::default()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Every activity the simulator created before `stop_ms` was delivered
/// exactly once, and nothing else (but `extra`).
fn assert_exactly_once(daemon: &Daemon, sim: &Simulator, stop_ms: i64, extra: &[&str]) {
    let delivered = daemon.delivered();
    let all = sim.activities();
    let expected: Vec<&str> = all
        .iter()
        .filter(|a| a.created_at.timestamp_millis() < stop_ms)
        .map(|a| a.id.as_str())
        .collect();
    assert!(
        expected.len() > 2_900,
        "the backlog at least: {}",
        expected.len()
    );
    let missing: Vec<_> = expected
        .iter()
        .filter(|id| !delivered.contains_key(**id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let twice: Vec<_> = delivered.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let known: std::collections::HashSet<&str> = all
        .iter()
        .map(|a| a.id.as_str())
        .chain(extra.iter().copied())
        .collect();
    let invented: Vec<_> = delivered
        .keys()
        .filter(|id| !known.contains(id.as_str()))
        .take(5)
        .collect();
    assert!(invented.is_empty(), "ids nobody created: {invented:?}");
}

/// The warnings the client logs for failed attempts whose reason says the
/// answer was over the cap.
fn capped_attempt_logs(logs: &str) -> Vec<serde_json::Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["reason"]
                .as_str()
                .is_some_and(|r| r.contains("larger than claudit's limit"))
        })
        .collect()
}

/// Runs one hostile phase: switches the API to `mode` until it has served
/// `attempts` requests in it, then back to the simulator, and checks that
/// the daemon recovers with everything delivered once. Returns the figures.
async fn hostile_phase(mode: Mode, attempts: usize, seed: u64) -> (u64, u64, u64) {
    let sim = Simulator::start(sim_config(seed)).await.unwrap();
    let api = HostileApi::start(sim.base_url(), Mode::Proxy).await;
    let mut daemon = Daemon::start(&api.url);
    daemon
        .wait_caught_up(now_ms() - 3_000, Duration::from_secs(90))
        .await;
    let (_, baseline_rss) = daemon.memory();

    api.set_mode(mode);
    let deadline = Instant::now() + Duration::from_secs(60);
    while api.served_in(mode).len() < attempts {
        daemon.assert_alive();
        assert!(Instant::now() < deadline, "the daemon stopped asking");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api.set_mode(Mode::Proxy);
    daemon.assert_alive();
    let served = api.served_in(mode);

    // Retried with backoff (at least a second between attempts), never in a loop.
    for pair in served.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(900), "retried after {gap:?}");
    }

    sim.stop_live();
    let stop_ms = now_ms();
    daemon
        .wait_caught_up(stop_ms + 1_000, Duration::from_secs(120))
        .await;
    let (peak, rss) = daemon.memory();
    eprintln!(
        "{mode:?}: {} hostile answers; VmRSS before {baseline_rss} MiB, after {rss} MiB; VmHWM {peak} MiB",
        served.len()
    );

    // The clear error: endpoint, limit, request id, for each attempt.
    let logs = daemon.logs();
    let capped = capped_attempt_logs(&logs);
    assert!(
        capped.len() >= attempts,
        "{} capped attempts logged, {attempts} expected; logs:\n{}",
        capped.len(),
        tail(&logs)
    );
    for line in &capped {
        let reason = line["reason"].as_str().unwrap();
        assert!(reason.contains("GET /v1/compliance/activities"), "{reason}");
        assert!(reason.contains("32 MiB"), "{reason}");
        assert!(reason.contains("request-id req_hostile_"), "{reason}");
        assert_eq!(line["level"], "WARN");
    }
    assert!(!logs.contains(API_KEY), "the API key is in the logs");

    assert_exactly_once(&daemon, &sim, stop_ms, &[]);
    daemon.stop();
    sim.shutdown().await;
    (peak, baseline_rss, rss)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_bomb_is_refused_at_the_cap_and_retried_with_backoff() {
    assert!(
        hostile_api::gzip_bomb().len() < 1_100_000,
        "about 1 MB compressed"
    );
    let (peak, before, after) = hostile_phase(Mode::GzipBomb, 3, 21).await;
    assert!(
        peak < PEAK_RSS_LIMIT_MIB,
        "peak RSS {peak} MiB through a gzip bomb"
    );
    assert!(
        after <= before + 48,
        "VmRSS did not come back down: {before} MiB before, {after} MiB after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_plain_body_is_refused_at_the_cap_and_retried() {
    let (peak, before, after) = hostile_phase(Mode::Endless, 2, 22).await;
    assert!(
        peak < PEAK_RSS_LIMIT_MIB,
        "peak RSS {peak} MiB through an endless body"
    );
    assert!(
        after <= before + 48,
        "VmRSS did not come back down: {before} MiB before, {after} MiB after"
    );
}

/// A record of 20 MB is within the page cap (32 MiB): it is journaled and
/// delivered like any other, exactly once, and memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mb_record_is_delivered_once_within_bounded_memory() {
    let sim = Simulator::start(SimConfig {
        live_per_second: 0.0,
        ..sim_config(23)
    })
    .await
    .unwrap();
    let api = HostileApi::start(sim.base_url(), Mode::BigRecord).await;
    let mut daemon = Daemon::start(&api.url);
    let stop_ms = now_ms();
    daemon
        .wait_caught_up(stop_ms + 1_000, Duration::from_secs(120))
        .await;
    assert!(api.big_record_sent());
    let (peak, rss) = daemon.memory();
    eprintln!("20 MB record: VmHWM {peak} MiB, VmRSS after {rss} MiB");

    let raw = std::fs::read_to_string(daemon.dir.path().join("out/raw.ndjson")).unwrap();
    let big: Vec<&str> = raw.lines().filter(|l| l.contains(BIG_RECORD_ID)).collect();
    assert_eq!(big.len(), 1, "the big record is delivered once");
    assert!(big[0].len() > BIG_RECORD_BYTES);
    let ocsf = std::fs::read_to_string(daemon.dir.path().join("out/ocsf.ndjson")).unwrap();
    assert_eq!(
        ocsf.lines().filter(|l| l.contains(BIG_RECORD_ID)).count(),
        1
    );
    assert_exactly_once(&daemon, &sim, stop_ms, &[BIG_RECORD_ID]);
    assert!(
        peak < PEAK_RSS_LIMIT_MIB,
        "peak RSS {peak} MiB with a 20 MB record"
    );
    daemon.stop();
    sim.shutdown().await;
}
