//! Detections in the daemon, through the release binary and the simulator:
//! a threshold window cut by SIGKILL fires exactly once; a late arrival
//! found by the sweep completes its window; sweep re-reads and `claudit
//! replay` add no finding; suppression holds under a burst of 10,000
//! failures; a raw and an OCSF file sink receive the findings. Every finding these tests produce is written (OCSF) under
//! `target/tmp/detect-findings/` for `.ci/run` to validate strictly.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use claudit::sim::{SimConfig, Simulator};
use claudit::store::{Store, StoredFinding};

use crate::support::config::{ConfigFile, sink, source};
use crate::support::daemon::{self, Daemon};
use crate::support::elasticsearch as es;
use crate::support::wait::Wait;

const API_KEY: &str = "sk-ant-api01-detect-daemon-key-0123456789";
const RULE: &str = "auth-failure-burst";

struct Setup {
    _logs: LogsOnFailure,
    dir: tempfile::TempDir,
    sim: Simulator,
    config: PathBuf,
    /// An Elasticsearch emulator behind the sink `es`, when asked for.
    es: Option<(wiremock::MockServer, es::Es)>,
}

/// The Elasticsearch sink's key (the emulator requires it).
const ES_KEY: &str = "ZGV0ZWN0LWRhZW1vbjpzZWNyZXQ=";

impl Setup {
    async fn new() -> Setup {
        Setup::with(false).await
    }

    /// With an Elasticsearch sink `es` (OCSF, both streams) besides the
    /// two file sinks: `claudit replay` writes to it (never to a file
    /// sink, which the daemon owns), and it stores a document id once.
    async fn with_elasticsearch() -> Setup {
        Setup::with(true).await
    }

    async fn with(elasticsearch: bool) -> Setup {
        let sim = Simulator::start(SimConfig {
            api_key: API_KEY.into(),
            backlog: 0,
            live_per_second: 0.0,
            visibility_delay: Duration::ZERO,
            late_fraction: 0.0,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let config = ConfigFile::new(&d.join("state.db"))
            .source(
                source("acme")
                    .set("base_url", sim.base_url())
                    .set("api_key", "${DETECT_COMPLIANCE_KEY}")
                    .set("window", "1s")
                    .set("settle_lag", "1s")
                    .set("sweep_horizon", "5m")
                    .set("sweep_interval", "2s")
                    .set("initial_lookback", "1h")
                    .set("poll_interval", "1s"),
            )
            .sink(
                sink("raw", "file")
                    .path("path", &d.join("out/events.raw.ndjson"))
                    .set("format", "raw")
                    .set("batch_linger", "0s"),
            )
            .sink(
                sink("ocsf", "file")
                    .path("path", &d.join("out/events.ocsf.ndjson"))
                    .set("format", "ocsf")
                    .set("batch_linger", "0s"),
            );
        let es = if elasticsearch {
            Some(es::start(&format!("ApiKey {ES_KEY}")).await)
        } else {
            None
        };
        let config = match &es {
            Some((server, _)) => config.sink(
                sink("es", "elasticsearch")
                    .set("url", server.uri())
                    .set("index", es::INDEX)
                    .set("api_key", "${DETECT_ES_KEY}")
                    .set("batch_linger", "0s"),
            ),
            None => config,
        }
        .text();
        let text = config;
        let config = d.join("claudit.toml");
        std::fs::write(&config, text).unwrap();
        Setup {
            _logs: LogsOnFailure(d.to_path_buf()),
            dir,
            sim,
            config,
            es,
        }
    }

    fn spawn(&self, n: usize) -> Daemon {
        let mut command = daemon::run_command(&self.config);
        command
            .env("DETECT_COMPLIANCE_KEY", API_KEY)
            .env("DETECT_ES_KEY", ES_KEY);
        Daemon::spawn(command, &self.dir.path().join(format!("daemon-{n}.log")))
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    /// A failed magic-link sign-in of `who`, created now.
    fn fail(&self, who: &str) -> String {
        self.sim.append_activity(failure(who))
    }

    /// Waits until every id in `ids` is journaled and the detection task
    /// has evaluated the whole journal.
    fn wait_evaluated(&self, ids: &[String]) {
        let what = format!(
            "{} activities journaled and evaluated; logs in {}",
            ids.len(),
            self.dir.path().display()
        );
        Wait::up_to(Duration::from_secs(60))
            .every(Duration::from_millis(200))
            .until_blocking(&what, || -> Result<(), String> {
                let store = Store::open_readonly(&self.db()).map_err(|e| e.to_string())?;
                let missing = ids
                    .iter()
                    .filter(|id| !store.is_journaled(id).unwrap_or(false))
                    .count();
                let head = store.head_seq().map_err(|e| e.to_string())?;
                let cursor = store.detection_cursor().map_err(|e| e.to_string())?.seq;
                if missing == 0 && cursor >= head {
                    Ok(())
                } else {
                    Err(format!(
                        "{missing} not journaled, detection at {cursor} of {head}"
                    ))
                }
            })
    }

    /// Waits until both sinks' findings streams have every finding, and
    /// returns each findings file's lines (raw: plain JSON, ocsf: OCSF).
    fn delivered_findings(&self) -> (Vec<Value>, Vec<Value>) {
        Wait::up_to(Duration::from_secs(60))
            .every(Duration::from_millis(200))
            .until_blocking("both sinks to deliver every finding", || {
                let store = Store::open_readonly(&self.db()).unwrap();
                let head = store.head_finding_seq().unwrap();
                ["raw", "ocsf"]
                    .iter()
                    .all(|s| store.finding_cursor(s).unwrap() >= head)
            });
        let read = |file: &str| -> Vec<Value> {
            let path = self.dir.path().join("out").join(file);
            std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        (
            read("events.raw.findings.ndjson"),
            read("events.ocsf.findings.ndjson"),
        )
    }

    /// The findings of the burst rule for `who`, as journaled.
    fn findings_of(&self, who: &str) -> Vec<Value> {
        findings(&self.db())
            .iter()
            .map(|f| serde_json::from_str::<Value>(&f.plain).unwrap())
            .filter(|f| f["rule"]["id"] == RULE && f["group"]["claudit.actor.key"] == who)
            .collect()
    }

    /// Writes every finding of the run for `.ci/run`'s OCSF validation.
    fn keep_findings_for_validation(&self, test: &str) {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("detect-findings");
        std::fs::create_dir_all(&dir).unwrap();
        let lines: String = findings(&self.db())
            .iter()
            .map(|f| format!("{}\n", f.ocsf))
            .collect();
        assert!(!lines.is_empty(), "{test}: no finding to validate");
        std::fs::write(dir.join(format!("{test}.ocsf.ndjson")), lines).unwrap();
    }
}

/// Prints the daemons' logs when a test fails (the temporary directory
/// that holds them goes with the test). Dropped before the directory.
struct LogsOnFailure(PathBuf);

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Everything but the routine INFO lines of polling and
            // delivery, and the last lines.
            let logs = daemon::logs_in(&self.0);
            let lines: Vec<&str> = logs.lines().collect();
            let tail = lines.len().saturating_sub(30);
            let shown: Vec<&str> = lines
                .iter()
                .enumerate()
                .filter(|(i, l)| {
                    *i >= tail
                        || !(l.contains("\"poll cycle done\"")
                            || l.contains("\"caught up with the journal\""))
                })
                .map(|(_, l)| *l)
                .collect();
            eprintln!("daemon logs in {}:\n{}", self.0.display(), shown.join("\n"));
        }
    }
}

fn failure(who: &str) -> Value {
    json!({
        "type": "magic_link_login_failed",
        "actor": {
            "type": "unauthenticated_user_actor",
            "unauthenticated_email_address": who,
            "ip_address": "198.51.100.7",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
        },
    })
}

fn findings(db: &Path) -> Vec<StoredFinding> {
    Store::open_readonly(db)
        .unwrap()
        .read_findings(0, 1_000_000)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_window_cut_by_sigkill_fires_exactly_once() {
    let s = Setup::new().await;
    let who = "victim@example.com";
    let mut d = s.spawn(1);
    let first: Vec<String> = (0..3).map(|_| s.fail(who)).collect();
    s.wait_evaluated(&first);
    assert!(s.findings_of(who).is_empty(), "three of five");
    // kill -9 with three failures counted in memory only.
    d.kill();

    let mut d = s.spawn(2);
    let rest: Vec<String> = (0..2).map(|_| s.fail(who)).collect();
    s.wait_evaluated(&rest);
    let found = s.findings_of(who);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["activity_count"], 5);
    let related: Vec<&str> = found[0]["activity_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for id in first.iter().chain(&rest) {
        assert!(related.contains(&id.as_str()), "{id} not in {related:?}");
    }
    d.kill();

    // Killed again after it fired: the rebuild restores the finding, so a
    // sixth failure within the suppression fires nothing.
    let mut d = s.spawn(3);
    let sixth = vec![s.fail(who)];
    s.wait_evaluated(&sixth);
    assert_eq!(s.findings_of(who).len(), 1);

    // Both sinks received it, once, each in its format, from their own
    // findings cursors (the activities went to their own files).
    let uid = found[0]["uid"].as_str().unwrap();
    let (plain, ocsf) = s.delivered_findings();
    let plain: Vec<_> = plain.iter().filter(|f| f["uid"] == uid).collect();
    assert_eq!(plain.len(), 1, "raw sink: {plain:#?}");
    assert_eq!(plain[0]["record"], "claudit.finding");
    let ocsf: Vec<_> = ocsf
        .iter()
        .filter(|f| f["finding_info"]["uid"] == uid)
        .collect();
    assert_eq!(ocsf.len(), 1, "ocsf sink: {ocsf:#?}");
    assert_eq!(ocsf[0]["class_uid"], 2004);
    assert_eq!(ocsf[0]["finding_info"]["related_events_count"], 5);
    let activities = std::fs::read_to_string(s.dir.path().join("out/events.raw.ndjson")).unwrap();
    assert!(!activities.contains("claudit.finding"), "activities only");
    d.stop(Duration::from_secs(20));
    s.keep_findings_for_validation("sigkill");
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_arrival_completes_its_window_and_re_reads_add_nothing() {
    let s = Setup::with_elasticsearch().await;
    let who = "late@example.com";
    let mut d = s.spawn(1);
    let on_time: Vec<String> = (0..4).map(|_| s.fail(who)).collect();
    s.wait_evaluated(&on_time);
    assert!(s.findings_of(who).is_empty());
    // Created 30 s ago, visible only now: the live windows are past it,
    // the sweep finds it.
    let late = s
        .sim
        .append_late_activity(failure(who), Duration::from_secs(30));
    s.wait_evaluated(std::slice::from_ref(&late));
    let store = Store::open_readonly(&s.db()).unwrap();
    assert!(store.source_state("acme").unwrap().late >= 1);
    let found = s.findings_of(who);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["activity_count"], 5);
    assert_eq!(found[0]["retrospective"], false);

    // Two more sweeps re-read all five: nothing new is journaled or found.
    let sweep = store.source_state("acme").unwrap().last_sweep_ms.unwrap();
    Wait::up_to(Duration::from_secs(30))
        .every(Duration::from_millis(200))
        .until_blocking("two more sweeps", || {
            let s = Store::open_readonly(&s.db()).unwrap();
            s.source_state("acme")
                .unwrap()
                .last_sweep_ms
                .is_some_and(|t| t > sweep + 2_000)
        });
    s.wait_evaluated(&[]);
    assert_eq!(s.findings_of(who).len(), 1);

    // A replay re-sends the activities, and another the findings: the
    // journal does not change, so nothing is evaluated again, and the
    // cluster already holds every document (409 for each).
    let emulator = &s.es.as_ref().unwrap().1;
    Wait::up_to(Duration::from_secs(60))
        .every(Duration::from_millis(200))
        .until_blocking("the Elasticsearch sink to deliver both streams", || {
            let store = Store::open_readonly(&s.db()).unwrap();
            store.sink_cursor("es").unwrap().seq >= store.head_seq().unwrap()
                && store.finding_cursor("es").unwrap() >= store.head_finding_seq().unwrap()
        });
    let before = findings(&s.db()).len();
    let finding_uids: Vec<String> = findings(&s.db()).into_iter().map(|f| f.uid).collect();
    let stored_findings = || {
        emulator
            .stored_ids()
            .into_iter()
            .filter(|id| finding_uids.contains(id))
            .count()
    };
    assert_eq!(
        stored_findings(),
        before,
        "every finding reached the cluster"
    );
    let conflicts = emulator.state().conflicts;
    let mut replayed = 0;
    for stream in ["es", "es.findings"] {
        let replay = std::process::Command::new(daemon::CLAUDIT)
            .args([
                "--log-format",
                "text",
                "replay",
                "--sink",
                stream,
                "--since",
                "1h",
                "--config",
            ])
            .arg(&s.config)
            .env("DETECT_COMPLIANCE_KEY", API_KEY)
            .env("DETECT_ES_KEY", ES_KEY)
            .output()
            .unwrap();
        assert!(
            replay.status.success(),
            "{stream}: {}",
            String::from_utf8_lossy(&replay.stderr)
        );
        let said = String::from_utf8_lossy(&replay.stdout);
        let n: usize = said
            .split("replayed ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{stream}: {said}"));
        assert!(n > 0, "{stream}: {said}");
        replayed += n;
    }
    s.wait_evaluated(&[]);
    assert_eq!(findings(&s.db()).len(), before);
    assert_eq!(s.findings_of(who).len(), 1);
    // Every replayed document was in the cluster already.
    assert_eq!(emulator.state().conflicts - conflicts, replayed);
    assert_eq!(
        stored_findings(),
        before,
        "a replay stores no finding twice"
    );
    assert!(
        emulator.state().violations.is_empty(),
        "{:?}",
        emulator.state().violations
    );
    d.stop(Duration::from_secs(20));
    s.keep_findings_for_validation("late");
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppression_holds_under_a_burst_of_10000_failures() {
    let s = Setup::new().await;
    let who = "sprayed@example.com";
    let mut d = s.spawn(1);
    let burst: Vec<String> = (0..10_000).map(|_| s.fail(who)).collect();
    s.wait_evaluated(&burst);
    let found = s.findings_of(who);
    assert_eq!(found.len(), 1, "one finding per suppression window");
    // No rule of the pack as shipped storms: the burst lasts seconds, so
    // every rule it matches (the count, the single-event rules on failures
    // and on unauthenticated actors) fires once within its suppression.
    let mut per_rule = std::collections::BTreeMap::<String, usize>::new();
    for f in findings(&s.db()) {
        let plain: Value = serde_json::from_str(&f.plain).unwrap();
        let rule = plain["rule"]["id"].as_str().unwrap().to_string();
        *per_rule.entry(rule).or_default() += 1;
    }
    for rule in [RULE, "access-failure-any", "unauthenticated-actor-activity"] {
        assert_eq!(per_rule.get(rule), Some(&1), "{rule}: {per_rule:?}");
    }
    assert!(per_rule.values().all(|&n| n == 1), "{per_rule:?}");
    let store = Store::open_readonly(&s.db()).unwrap();
    assert!(store.detection_cursor().unwrap().evaluated >= 10_000);
    d.stop(Duration::from_secs(20));
    s.keep_findings_for_validation("burst");
    s.sim.shutdown().await;
}
