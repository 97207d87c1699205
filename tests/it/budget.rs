//! The API budget, at the binary level: the release daemon and `claudit
//! backfill` against the embedded simulator, every request counted where it
//! is answered. Reading a range must cost about what the SDK's single
//! query costs (`ceil(N / 5,000)` pages), whatever the range's length: a
//! first start over 100 days and a six-year backfill of a sparse
//! organization each take at most twice the SDK's requests plus 20, and
//! journal every activity once. A backfill killed (SIGKILL) in the middle
//! of a large window resumes from the window's cursor: fewer requests than
//! reading the window again, nothing lost, nothing twice.

use crate::support::sdk_walk;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use claudit::sim::{SimConfig, Simulator};
use claudit::sinks::render::Payload;
use claudit::store::{Store, WindowKind};
use sdk_walk::sdk_walk;

const KEY: &str = "sk-ant-api01-budget-test-secret-key";
const DAY: u64 = 24 * 3600;

async fn simulator(backlog: usize, days: u64) -> Simulator {
    Simulator::start(SimConfig {
        api_key: KEY.into(),
        backlog,
        backlog_span: Duration::from_secs(days * DAY),
        live_per_second: 0.0,
        late_fraction: 0.0,
        rate_limit_per_minute: None,
        seed: days,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn write_config(dir: &Path, base_url: &str, source_keys: &str) -> PathBuf {
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
api_key = "${{BUDGET_TEST_KEY}}"
{source_keys}

[[sinks]]
name = "events"
type = "file"
format = "raw"
path = "{d}/events.ndjson"
batch_linger = "100ms"
"#,
            d = dir.display()
        ),
    )
    .unwrap();
    path
}

fn claudit(args: &[&str], config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_claudit"));
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .env("BUDGET_TEST_KEY", KEY)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    cmd
}

/// A child process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    claudit::model::format_time(t)
}

/// Ids of the simulator's activities created in `[since, until)`.
fn created_in(sim: &Simulator, since: i64, until: i64) -> BTreeSet<String> {
    sim.activities()
        .into_iter()
        .filter(|a| (since..until).contains(&a.created_at.timestamp_millis()))
        .map(|a| a.id)
        .collect()
}

/// Journal rows per activity id.
fn journaled(db: &Path) -> HashMap<String, usize> {
    let rows = Store::open_readonly(db)
        .unwrap()
        .read_batch(0, 10_000_000, usize::MAX, &Payload::Raw)
        .unwrap();
    let mut ids = HashMap::new();
    for r in rows {
        *ids.entry(r.activity_id).or_default() += 1;
    }
    ids
}

fn assert_within_budget(what: &str, claudit: usize, sdk: usize) {
    println!("{what}: claudit {claudit} requests, the SDK {sdk}");
    assert!(
        claudit <= 2 * sdk + 20,
        "{what}: claudit spent {claudit} requests, more than twice the SDK's {sdk} plus 20"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_over_100_days_costs_about_the_sdks_requests() {
    let sim = simulator(30_000, 100).await;
    let backlog_end = sim.now();
    let since = backlog_end - chrono::Duration::days(101);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &sim.base_url(),
        r#"initial_lookback = "101d"
window = "5s"
settle_lag = "1s"
poll_interval = "1s"
sweep_interval = "1h""#,
    );
    let before = sim.requests().len();
    let daemon = Process(
        claudit(&["--log-format", "json", "run"], &config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("daemon.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    // Until the watermark passes the backlog's end and the sink delivered
    // everything journaled.
    let db = dir.path().join("state.db");
    let deadline = Instant::now() + Duration::from_secs(120);
    let spent = loop {
        assert!(Instant::now() < deadline, "the first start did not finish");
        let spent = sim.requests().len() - before;
        // (The database may exist before its tables do.)
        let done = Store::open_readonly(&db).ok().is_some_and(|s| {
            let past = s.source_state("acme").ok().and_then(|s| s.watermark_ms);
            let delivered = s.sink_cursor("events").ok().map(|c| c.seq);
            past.is_some_and(|w| w > backlog_end.timestamp_millis())
                && delivered >= s.head_seq().ok()
        });
        if done {
            break spent;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(daemon);

    let sdk = sdk_walk(&sim, KEY, &rfc3339(since), &rfc3339(backlog_end)).await;
    assert_eq!(sdk.activities, 30_000);
    assert_within_budget("first start over 100 days", spent, sdk.requests);

    // Every activity of the range delivered, once.
    let expected = created_in(
        &sim,
        since.timestamp_millis(),
        backlog_end.timestamp_millis(),
    );
    assert_eq!(expected.len(), 30_000);
    let text = std::fs::read_to_string(dir.path().join("events.ndjson")).unwrap();
    let mut delivered: HashMap<String, usize> = HashMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        *delivered
            .entry(v["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert!(delivered.values().all(|n| *n == 1), "duplicates delivered");
    let missing = expected
        .iter()
        .filter(|id| !delivered.contains_key(*id))
        .count();
    assert_eq!(missing, 0, "activities not delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_six_year_backfill_of_a_sparse_org_costs_about_the_sdks_requests() {
    let sim = simulator(20_000, 2191).await;
    let until = sim.now();
    let since = until - chrono::Duration::days(2191) - chrono::Duration::hours(1);
    let (since, until) = (rfc3339(since), rfc3339(until));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.base_url(), "");
    let before = sim.requests().len();
    let out = claudit(&["backfill"], &config)
        .args(["--source", "acme", "--since", &since, "--until", &until])
        .output()
        .unwrap();
    let spent = sim.requests().len() - before;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("backfill complete"), "{stdout}");

    let sdk = sdk_walk(&sim, KEY, &since, &until).await;
    assert_eq!(sdk.activities, 20_000);
    assert_within_budget("backfill of six years", spent, sdk.requests);
    assert!(
        stdout.contains(&format!("with {spent} requests")),
        "the requests spent are reported: {stdout}"
    );

    let journal = journaled(&dir.path().join("state.db"));
    assert_eq!(journal.len(), 20_000);
    assert!(journal.values().all(|n| *n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_during_a_large_backfill_window_resumes_from_its_cursor() {
    // 20,000 activities in pages of 100: one window of 200 pages, read at
    // 3,000 requests a minute so the kill lands in the middle of it.
    let sim = simulator(20_000, 2191).await;
    let until = sim.now();
    let since = until - chrono::Duration::days(2192);
    let (since_ms, until_ms) = (since.timestamp_millis(), until.timestamp_millis());
    let (since, until) = (rfc3339(since), rfc3339(until));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &sim.base_url(),
        "page_size = 100\nrequests_per_minute = 3000",
    );
    let db = dir.path().join("state.db");
    let backfill = move || {
        let mut cmd = claudit(&["backfill"], &config);
        cmd.args(["--source", "acme", "--since", &since, "--until", &until])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        cmd
    };

    let mut first = Process(backfill().spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let open = loop {
        assert!(
            Instant::now() < deadline,
            "the backfill window never got far"
        );
        let open = Store::open_readonly(&db)
            .ok()
            .and_then(|s| s.open_window("acme", WindowKind::Backfill).ok().flatten());
        if let Some(w) = open.filter(|w| w.pages >= 50) {
            break w;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // SIGKILL: no chance to finish the page in flight or to clean up.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let spent_first = sim.requests().len();
    // The window was one: the whole range, read newest first.
    assert_eq!((open.start_ms, open.end_ms), (since_ms, until_ms));
    let after_kill = Store::open_readonly(&db)
        .unwrap()
        .open_window("acme", WindowKind::Backfill)
        .unwrap()
        .expect("the window is still open, with its cursor");
    assert!(after_kill.cursor.is_some() && after_kill.pages < 200);

    let out = tokio::task::spawn_blocking(move || backfill().output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("resuming backfill of acme"), "{stdout}");
    assert!(stdout.contains("backfill complete"), "{stdout}");
    let spent_second = sim.requests().len() - spent_first;
    let left = 200 - after_kill.pages as usize;
    println!(
        "killed after {} pages ({spent_first} requests); the resumed run spent {spent_second} for the {left} pages left",
        after_kill.pages
    );
    // From the cursor: the pages left (and the last one's `has_more`
    // check), not the 200 of the whole window again.
    assert!(
        spent_second <= left + 1,
        "resumed with {spent_second} requests for {left} pages left"
    );

    let journal = journaled(&db);
    assert!(
        journal.values().all(|n| *n == 1),
        "an activity journaled twice"
    );
    let expected = created_in(&sim, since_ms, until_ms);
    assert_eq!(expected.len(), 20_000);
    assert_eq!(
        journal.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "exactly the range"
    );
}
