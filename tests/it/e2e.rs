//! End-to-end: the release binary against the embedded simulator, with live
//! generation and late arrivals; then the same run killed with SIGKILL at
//! random moments. Every activity visible before the end must be in the
//! file sinks exactly once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use claudit::sim::{SimConfig, Simulator};
use claudit::store::Store;

use crate::support::config::{ConfigFile, sink, source};
use crate::support::daemon::{self, Daemon};
use crate::support::wait::Wait;

const API_KEY: &str = "sk-ant-api01-e2e-secret-key-0123456789";
const LATE_MAX: Duration = Duration::from_secs(90);
const SETTLE_LAG_SECS: u64 = 5;

struct Run {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Run {
    fn new(sim: &Simulator) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let config = ConfigFile::new(&d.join("state.db"))
            .state("retention", "7d")
            .source(
                source("e2e")
                    .set("base_url", sim.base_url())
                    .set("api_key", "${E2E_COMPLIANCE_KEY}")
                    .set("requests_per_minute", 500)
                    .set("window", "5s")
                    // Small windows: the catch-up is split and sized by what it holds.
                    .set("max_window_pages", 4)
                    .set("settle_lag", format!("{SETTLE_LAG_SECS}s"))
                    .set("sweep_horizon", "5m")
                    .set("sweep_interval", "10s")
                    .set("initial_lookback", "3h")
                    .set("poll_interval", "1s"),
            )
            .sink(
                sink("raw", "file")
                    .path("path", &d.join("out/events.raw.ndjson"))
                    .set("format", "raw")
                    .set("max_bytes", "0")
                    .set("batch_max_events", 2000)
                    .set("batch_linger", "200ms"),
            )
            .sink(
                sink("ocsf", "file")
                    .path("path", &d.join("out/events.ocsf.ndjson"))
                    .set("format", "ocsf")
                    .set("max_bytes", "0")
                    .set("batch_max_events", 500)
                    .set("batch_linger", "100ms"),
            )
            .write(&d.join("claudit.toml"));
        Run { dir, config }
    }

    fn spawn(&self, n: usize) -> Daemon {
        let mut command = daemon::run_command(&self.config);
        command
            .env("E2E_COMPLIANCE_KEY", API_KEY)
            .env("RUST_LOG", "info");
        Daemon::spawn(command, &self.dir.path().join(format!("daemon-{n}.log")))
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    /// Waits until the sweep has covered everything created before
    /// `stop_ms` (all of it visible by `stop_ms + LATE_MAX`) and both sinks
    /// have delivered the whole journal.
    fn wait_caught_up(&self, stop_ms: i64, limit: Duration) {
        let settled = stop_ms + LATE_MAX.as_millis() as i64 + (SETTLE_LAG_SECS as i64) * 1000;
        let what = format!(
            "the daemon to catch up; logs in {}",
            self.dir.path().display()
        );
        Wait::up_to(limit)
            .every(Duration::from_millis(500))
            .until_blocking(&what, || {
                let Ok(store) = Store::open_readonly(&self.db()) else {
                    return false;
                };
                let state = store.source_state("e2e").unwrap();
                let head = store.head_seq().unwrap();
                let sinks_done = ["raw", "ocsf"]
                    .iter()
                    .all(|s| store.sink_cursor(s).unwrap().seq >= head);
                state.last_sweep_ms.is_some_and(|t| t > settled)
                    && state.watermark_ms.is_some_and(|w| w > stop_ms)
                    && sinks_done
            });
    }

    fn delivered(
        &self,
        file: &str,
        id_of: fn(&serde_json::Value) -> String,
    ) -> HashMap<String, usize> {
        let text = std::fs::read_to_string(self.dir.path().join("out").join(file)).unwrap();
        let mut counts = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{file}:{} is not JSON ({e}): {line}", i + 1));
            *counts.entry(id_of(&v)).or_default() += 1;
        }
        counts
    }

    fn logs(&self) -> String {
        daemon::logs_in(self.dir.path())
    }
}

fn sim_config(seed: u64) -> SimConfig {
    SimConfig {
        api_key: API_KEY.into(),
        backlog: 50_000,
        backlog_span: Duration::from_secs(2 * 3600),
        live_per_second: 40.0,
        visibility_delay: Duration::from_secs(2),
        late_fraction: 0.02,
        late_max_delay: LATE_MAX,
        seed,
        ..SimConfig::default()
    }
}

fn raw_id(v: &serde_json::Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

fn ocsf_id(v: &serde_json::Value) -> String {
    v["metadata"]["original_event_uid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every activity created before `stop_ms` is delivered exactly once to both
/// sinks; nothing is delivered that the simulator did not create.
fn assert_exactly_once(run: &Run, sim: &Simulator, stop_ms: i64) {
    let all = sim.activities();
    let known: std::collections::HashSet<&str> = all.iter().map(|a| a.id.as_str()).collect();
    let expected: Vec<&str> = all
        .iter()
        .filter(|a| a.created_at.timestamp_millis() < stop_ms)
        .map(|a| a.id.as_str())
        .collect();
    assert!(
        expected.len() > 50_000,
        "backlog plus live: {}",
        expected.len()
    );
    for (file, id_of) in [
        ("events.raw.ndjson", raw_id as fn(&_) -> _),
        ("events.ocsf.ndjson", ocsf_id),
    ] {
        let delivered = run.delivered(file, id_of);
        let missing: Vec<_> = expected
            .iter()
            .filter(|id| !delivered.contains_key(**id))
            .take(5)
            .collect();
        assert!(
            missing.is_empty(),
            "{file}: {} missing, e.g. {missing:?}",
            expected
                .iter()
                .filter(|id| !delivered.contains_key(**id))
                .count()
        );
        let dups: Vec<_> = delivered.iter().filter(|(_, n)| **n > 1).take(5).collect();
        assert!(
            dups.is_empty(),
            "{file}: delivered more than once: {dups:?}"
        );
        let invented: Vec<_> = delivered
            .keys()
            .filter(|id| !known.contains(id.as_str()))
            .take(5)
            .collect();
        assert!(
            invented.is_empty(),
            "{file}: ids the simulator never created: {invented:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catches_up_and_delivers_everything_exactly_once() {
    let sim = Simulator::start(sim_config(7)).await.unwrap();
    let run = Run::new(&sim);
    let mut daemon = run.spawn(0);
    tokio::time::sleep(Duration::from_secs(20)).await;
    sim.stop_live();
    let stop_ms = chrono::Utc::now().timestamp_millis();
    let wait_run = &run;
    tokio::task::block_in_place(|| wait_run.wait_caught_up(stop_ms, Duration::from_secs(240)));

    // Graceful shutdown on SIGTERM: exit 0, well within 30 s.
    let started = Instant::now();
    let status = tokio::task::block_in_place(|| daemon.stop(Duration::from_secs(30)));
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    assert!(started.elapsed() < Duration::from_secs(30));

    assert_exactly_once(&run, &sim, stop_ms);
    let store = Store::open_readonly(&run.db()).unwrap();
    assert!(
        store.source_state("e2e").unwrap().late > 0,
        "the sweep caught late arrivals"
    );
    let logs = run.logs();
    daemon::assert_no_secret("the daemon's logs", &logs, &[API_KEY]);
    daemon::json_lines(&logs);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_25_sigkills_without_loss_or_duplicates() {
    let sim = Simulator::start(sim_config(11)).await.unwrap();
    let run = Run::new(&sim);
    let mut rng_state = 0x2545F4914F6CDD1Du64;
    let mut next = move || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    let mut live_stop_ms = None;
    for n in 0..25 {
        let mut daemon = run.spawn(n);
        let pause = Duration::from_millis(150 + next() % 1850);
        tokio::time::sleep(pause).await;
        daemon.kill();
        if n == 12 {
            sim.stop_live();
            live_stop_ms = Some(chrono::Utc::now().timestamp_millis());
        }
    }
    let stop_ms = live_stop_ms.unwrap();
    let mut daemon = run.spawn(99);
    let wait_run = &run;
    tokio::task::block_in_place(|| wait_run.wait_caught_up(stop_ms, Duration::from_secs(300)));
    daemon.kill();
    // The file sinks reconcile a batch cut short by a kill, so even the
    // batch in flight is not duplicated.
    assert_exactly_once(&run, &sim, stop_ms);
    daemon::assert_no_secret("the daemon's logs", &run.logs(), &[API_KEY]);
    sim.shutdown().await;
}
