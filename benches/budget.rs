//! API budget benchmark: how many Compliance API requests claudit spends to
//! read a range, counted at the embedded simulator, next to the SDK's way of
//! reading the same range on the same simulator (one query with the range's
//! bounds and `after_id` paging in pages of 5,000, until `has_more` is
//! false: about `ceil(N / 5,000)` requests).
//!
//! `cargo bench --bench budget`. For each range (1 day, 30 days, 400 days,
//! 6 years) and density (low and high: a number of activities spread evenly
//! over the range), a simulator holds exactly that backlog, the release
//! binary runs `claudit backfill --since <range start> --until <range end>`
//! with its limiter lifted (a loopback simulator), and the requests the
//! simulator answered are counted; then the SDK's walk reads the same range.
//! A last row reads a first start over 100 days (`claudit run` with
//! `initial_lookback` covering them), counted until the watermark passes the
//! backlog's end. Every run checks that the journal holds each activity once.
//!
//! Settings (environment):
//! - `CLAUDIT_BUDGET_LOW`, `CLAUDIT_BUDGET_HIGH`: activities per range at low
//!   and high density (default 20000 and 1000000);
//! - `CLAUDIT_BUDGET_DAYS`: range lengths in days (default `1,30,400,2191`);
//! - `CLAUDIT_BUDGET_FIRST_START`: `0` skips the first-start row;
//! - `CLAUDIT_BUDGET_SPLIT_PAGES`: `max_window_pages` of a last row, the
//!   six-year range at high density read in windows split that small, to
//!   show what splitting costs (default 20; `0` skips it, as for a build
//!   that does not know the key);
//! - `CLAUDIT_BUDGET_BIN`: the claudit binary to measure (default: this
//!   build's), to measure an earlier build the same way.

#[path = "../tests/it/support/sdk_walk.rs"]
mod sdk_walk;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use claudit::sim::{SimConfig, Simulator};
use claudit::store::Store;

const API_KEY: &str = "sk-ant-api01-budget-bench";
const DAY: u64 = 24 * 3600;
/// What the real API allows claudit by default.
const REQUESTS_PER_MINUTE: f64 = 500.0;

fn env_numbers(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: {s:?} is not a number"))
        })
        .collect()
}

fn binary() -> String {
    std::env::var("CLAUDIT_BUDGET_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_claudit").into())
}

/// A simulator holding exactly `activities` spread over the `days` before now.
async fn simulator(activities: usize, days: u64) -> Simulator {
    Simulator::start(SimConfig {
        api_key: API_KEY.into(),
        backlog: activities,
        backlog_span: Duration::from_secs(days * DAY),
        live_per_second: 0.0,
        visibility_delay: Duration::ZERO,
        late_fraction: 0.0,
        rate_limit_per_minute: None,
        self_activity: false,
        seed: days ^ activities as u64,
        ..SimConfig::default()
    })
    .await
    .expect("start the simulator")
}

fn write_config(dir: &Path, base_url: &str, extra: &str) -> PathBuf {
    let path = dir.join("claudit.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[state]
path = "{d}/state.db"

[[sources]]
name = "bench"
base_url = "{base_url}"
api_key = "${{CLAUDIT_BUDGET_KEY}}"
requests_per_minute = 1000000
{extra}

[[sinks]]
name = "out"
type = "file"
path = "{d}/out.ndjson"
"#,
            d = dir.display()
        ),
    )
    .unwrap();
    path
}

/// Journal rows, and whether every activity id in it is distinct (the
/// journal's unique key makes it so; checked anyway).
fn journal(dir: &Path) -> usize {
    let store = Store::open_readonly(&dir.join("state.db")).expect("state database");
    store.journal_rows().expect("journal rows") as usize
}

/// Requests `claudit backfill` spends on `[since, until)`, with `extra`
/// source settings.
async fn claudit_backfill(
    sim: &Simulator,
    since: &str,
    until: &str,
    extra: &str,
) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.base_url(), extra);
    let before = sim.requests().len();
    let (since, until) = (since.to_string(), until.to_string());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(binary())
            .args(["backfill", "--config"])
            .arg(&config)
            .args(["--source", "bench", "--since", &since, "--until", &until])
            .args(["--progress-every", "1h"])
            .env("CLAUDIT_BUDGET_KEY", API_KEY)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run claudit backfill")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "claudit backfill failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (sim.requests().len() - before, journal(dir.path()))
}

/// Requests a first start spends reading `initial_lookback`, until its
/// watermark passes `end_ms` (the backlog's end).
async fn claudit_first_start(sim: &Simulator, lookback_days: u64, end_ms: i64) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &sim.base_url(),
        &format!(
            "initial_lookback = \"{lookback_days}d\"\nsettle_lag = \"1s\"\nwindow = \"5s\"\npoll_interval = \"1s\""
        ),
    );
    let before = sim.requests().len();
    let mut child = Command::new(binary())
        .args(["run", "--config"])
        .arg(&config)
        .env("CLAUDIT_BUDGET_KEY", API_KEY)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run claudit");
    let db = dir.path().join("state.db");
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        assert!(Instant::now() < deadline, "first start did not finish");
        let done = Store::open_readonly(&db)
            .ok()
            .and_then(|s| s.source_state("bench").ok())
            .and_then(|s| s.watermark_ms)
            .is_some_and(|w| w > end_ms);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let requests = sim.requests().len() - before;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    (requests, journal(dir.path()))
}

struct Row {
    what: String,
    activities: usize,
    claudit: usize,
    sdk: usize,
}

impl Row {
    fn per_100k(requests: usize, activities: usize) -> f64 {
        requests as f64 * 100_000.0 / activities.max(1) as f64
    }

    fn line(&self) -> String {
        let minutes = self.claudit as f64 / REQUESTS_PER_MINUTE;
        format!(
            "| {} | {} | {} | {:.1} | {} | {:.1} | {:.2}x | {} |",
            self.what,
            self.activities,
            self.claudit,
            Row::per_100k(self.claudit, self.activities),
            self.sdk,
            Row::per_100k(self.sdk, self.activities),
            self.claudit as f64 / self.sdk.max(1) as f64,
            if minutes < 1.0 {
                format!("{:.0} s", minutes * 60.0)
            } else {
                format!("{minutes:.1} min")
            }
        )
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is understood.
    let low = env_numbers("CLAUDIT_BUDGET_LOW", "20000")[0] as usize;
    let high = env_numbers("CLAUDIT_BUDGET_HIGH", "1000000")[0] as usize;
    let days = env_numbers("CLAUDIT_BUDGET_DAYS", "1,30,400,2191");
    let first_start = std::env::var("CLAUDIT_BUDGET_FIRST_START").map_or(true, |v| v != "0");
    let split_pages = env_numbers("CLAUDIT_BUDGET_SPLIT_PAGES", "20")[0];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("claudit binary: {}", binary());
    let mut rows = Vec::new();
    rt.block_on(async {
        for &d in &days {
            for n in [low, high] {
                let sim = simulator(n, d).await;
                let until = sim.now();
                let since = until - chrono::Duration::seconds((d * DAY) as i64 + 60);
                let (since, until) = (
                    claudit::model::format_time(since),
                    claudit::model::format_time(until),
                );
                let started = Instant::now();
                let (claudit, journaled) = claudit_backfill(&sim, &since, &until, "").await;
                let took = started.elapsed();
                let sdk = sdk_walk::sdk_walk(&sim, API_KEY, &since, &until).await;
                assert_eq!(sdk.activities, n, "the SDK walk reads the whole backlog");
                let sdk = sdk.requests;
                assert_eq!(journaled, n, "claudit journals every activity once");
                let row = Row {
                    what: format!("backfill, {d} days"),
                    activities: n,
                    claudit,
                    sdk,
                };
                println!("{} (claudit took {:.1} s)", row.line(), took.as_secs_f64());
                rows.push(row);
                sim.shutdown().await;
            }
        }
        if split_pages > 0 {
            let d = *days.last().unwrap();
            let sim = simulator(high, d).await;
            let until = sim.now();
            let since = until - chrono::Duration::seconds((d * DAY) as i64 + 60);
            let (since, until) = (
                claudit::model::format_time(since),
                claudit::model::format_time(until),
            );
            let extra = format!("max_window_pages = {split_pages}");
            let (claudit, journaled) = claudit_backfill(&sim, &since, &until, &extra).await;
            let sdk = sdk_walk::sdk_walk(&sim, API_KEY, &since, &until).await;
            assert_eq!(journaled, high, "claudit journals every activity once");
            let row = Row {
                what: format!("backfill, {d} days, windows of at most {split_pages} pages"),
                activities: high,
                claudit,
                sdk: sdk.requests,
            };
            println!("{}", row.line());
            rows.push(row);
            sim.shutdown().await;
        }
        if first_start {
            let n = 30_000;
            let sim = simulator(n, 100).await;
            let end_ms = sim.now().timestamp_millis();
            let since = claudit::model::format_time(sim.now() - chrono::Duration::days(101));
            let until = claudit::model::format_time(sim.now());
            let (claudit, journaled) = claudit_first_start(&sim, 101, end_ms).await;
            let sdk = sdk_walk::sdk_walk(&sim, API_KEY, &since, &until)
                .await
                .requests;
            assert_eq!(journaled, n, "claudit journals every activity once");
            let row = Row {
                what: "first start, 100 days".into(),
                activities: n,
                claudit,
                sdk,
            };
            println!("{}", row.line());
            rows.push(row);
            sim.shutdown().await;
        }
    });
    println!();
    println!(
        "| range read | activities | claudit requests | per 100k | SDK requests | per 100k | claudit / SDK | claudit at 500 req/min |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in &rows {
        println!("{}", row.line());
    }
}
