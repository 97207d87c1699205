//! The directory as a stream, through the release binary and the embedded
//! simulator's directory:
//!
//! - a sink with `streams = [.., "directory"]` receives one snapshot with
//!   every simulated member exactly once, as OCSF User Inventory Info in an
//!   OCSF sink (valid under `validate.py --strict`, and kept under
//!   `target/tmp/directory-stream/` for `.ci/run`) and as the plain record
//!   in a raw sink, each in its own file beside the sink's activities;
//! - a restart inside the interval makes no second snapshot;
//! - once the interval has passed, the next snapshot starts with who left
//!   (and joined) since the previous one, then lists every member again
//!   under new uids (valid OCSF too);
//! - a SIGKILL between journaling and delivery (the destination down) loses
//!   nothing and sends no second copy: once it is back, Elasticsearch
//!   receives every entry once; `claudit replay --sink es.directory`
//!   re-sends the stream, which Elasticsearch stores once;
//! - `claudit check` refuses the stream without a source that has a
//!   directory (exit 78, naming the sink, the key and the fix).

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use claudit::sim::{SimConfig, Simulator};
use claudit::store::{SnapshotState, Store, StoredDirectoryEntry};
use serde_json::Value;

use crate::support::config::{ConfigFile, Table, quick_source, sink, source};
use crate::support::daemon::{Daemon, logs_in, run_command};
use crate::support::elasticsearch as es;
use crate::support::wait::Wait;

const KEY: &str = "sk-ant-api01-directory-stream-key-0123456789";
const KEY_VAR: &str = "DIRECTORY_STREAM_TEST_KEY";
const ES_KEY: &str = "ZGlyZWN0b3J5LXN0cmVhbTpzZWNyZXQ=";
const ES_KEY_VAR: &str = "DIRECTORY_STREAM_ES_KEY";
/// What the snapshot task logs once it found the next snapshot not due.
const NOT_DUE: &str = "next directory snapshot due";

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    starts: usize,
}

impl Setup {
    /// One source with a directory against `sim`, and `sinks`.
    fn new(sim: &Simulator, sinks: impl FnOnce(ConfigFile, &Path) -> ConfigFile) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let acme = quick_source("acme", &sim.base_url(), KEY_VAR)
            .set("requests_per_minute", 100_000)
            .set("directory", Table::default().inline());
        let config = sinks(ConfigFile::new(&d.join("state.db")).source(acme), d)
            .write(&d.join("claudit.toml"));
        Setup {
            dir,
            config,
            starts: 0,
        }
    }

    fn start(&mut self) -> Daemon {
        self.starts += 1;
        let mut command = run_command(&self.config);
        command
            .env(KEY_VAR, KEY)
            .env(ES_KEY_VAR, ES_KEY)
            .env("RUST_LOG", "info");
        Daemon::spawn(command, &self.log(self.starts))
    }

    fn log(&self, start: usize) -> PathBuf {
        self.dir.path().join(format!("daemon-{start}.log"))
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    /// The whole lines of an output file.
    fn lines(&self, name: &str) -> Vec<Value> {
        let text =
            std::fs::read_to_string(self.dir.path().join("out").join(name)).unwrap_or_default();
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        whole
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The journaled entries of the directory stream and the source's last
    /// snapshot (none before the database exists).
    fn journaled(&self) -> (Vec<StoredDirectoryEntry>, Option<SnapshotState>) {
        let Ok(store) = Store::open_readonly(&self.db()) else {
            return (Vec::new(), None);
        };
        (
            store
                .read_directory_entries(0, 1_000_000)
                .unwrap_or_default(),
            store.directory_snapshot("acme").ok().flatten(),
        )
    }

    /// Waits until the daemon of start `start` logged that the next
    /// snapshot is not due (it looked, and found the snapshot made).
    async fn wait_not_due(&self, start: usize) {
        let log = self.log(start);
        Wait::up_to(Duration::from_secs(60))
            .until(
                "the snapshot task to find the next snapshot not due",
                async || {
                    std::fs::read_to_string(&log)
                        .unwrap_or_default()
                        .contains(NOT_DUE)
                },
            )
            .await;
    }
}

fn sim_config() -> SimConfig {
    SimConfig {
        api_key: KEY.into(),
        backlog: 500,
        backlog_span: Duration::from_secs(2 * 3600),
        live_per_second: 0.0,
        late_fraction: 0.0,
        visibility_delay: Duration::ZERO,
        rate_limit_per_minute: None,
        ..SimConfig::default()
    }
}

/// Every member of the simulated directory now.
fn members(sim: &Simulator) -> BTreeSet<String> {
    sim.directory()
        .members
        .iter()
        .flat_map(|m| m.keys().cloned())
        .collect()
}

/// The user ids of `events`, failing on one listed twice.
fn users_once(events: &[Value], user: impl Fn(&Value) -> &Value) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for e in events {
        let id = user(e)
            .as_str()
            .unwrap_or_else(|| panic!("no user id in {e}"));
        assert!(seen.insert(id.to_string()), "{id} twice");
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_with_the_directory_stream_receives_one_snapshot_of_every_member() {
    let sim = Simulator::start(sim_config()).await.unwrap();
    let mut setup = Setup::new(&sim, |config, d| {
        config
            .sink(
                sink("ocsf", "file")
                    .path("path", &d.join("out/events.ndjson"))
                    .set("streams", vec!["activities", "directory"])
                    .set("batch_linger", "100ms"),
            )
            .sink(
                sink("raw", "file")
                    .path("path", &d.join("out/raw.ndjson"))
                    .set("format", "raw")
                    .set("streams", vec!["directory"])
                    .set("batch_linger", "100ms"),
            )
    });
    let expected = members(&sim);
    assert!(expected.len() > 10, "{} members", expected.len());
    let mut daemon = setup.start();
    Wait::up_to(Duration::from_secs(90))
        .until("both sinks to receive the snapshot", async || {
            let (ocsf, raw) = (
                setup.lines("events.directory.ndjson"),
                setup.lines("raw.directory.ndjson"),
            );
            if ocsf.len() >= expected.len() && raw.len() >= expected.len() {
                Ok(())
            } else {
                Err(format!("{} and {} entries", ocsf.len(), raw.len()))
            }
        })
        .await;
    setup.wait_not_due(1).await;
    assert!(daemon.try_wait().is_none(), "the daemon exited");
    let status = daemon.stop(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    let (journaled, snapshot) = setup.journaled();
    let snapshot = snapshot.expect("the snapshot is recorded");

    // OCSF: one User Inventory Info event per member, of one snapshot.
    let ocsf = setup.lines("events.directory.ndjson");
    assert_eq!(users_once(&ocsf, |e| &e["user"]["uid"]), expected);
    for e in &ocsf {
        assert_eq!(e["class_uid"], 5003, "{e}");
        assert_eq!(e["activity_id"], 2, "a snapshot entry: {e}");
        assert_eq!(e["time"], snapshot.at_ms, "{e}");
        assert_eq!(e["unmapped"]["claudit"]["directory"]["source"], "acme");
    }
    let uids: HashSet<&str> = ocsf
        .iter()
        .map(|e| e["metadata"]["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids.len(), ocsf.len(), "one uid per entry");
    let journaled_uids: HashSet<&str> = journaled.iter().map(|e| e.uid.as_str()).collect();
    assert_eq!(uids, journaled_uids);
    assert_eq!(snapshot.entries as usize, journaled.len());
    // Someone's name and organization, as the activity events carry them.
    assert!(
        ocsf.iter()
            .any(|e| e["user"]["full_name"].is_string() && e["user"]["org"]["uid"].is_string())
    );
    // The activities still go to the sink's own file.
    assert!(!setup.lines("events.ndjson").is_empty());

    // Raw: the plain record, the same entries under the same uids.
    let raw = setup.lines("raw.directory.ndjson");
    assert_eq!(users_once(&raw, |e| &e["user"]["user_id"]), expected);
    for r in &raw {
        assert_eq!(r["record"], "claudit.directory", "{r}");
        assert_eq!(r["version"], 1);
        assert_eq!(r["source"], "acme");
        assert_eq!(r["kind"], "snapshot");
        assert_eq!(r["at_ms"], snapshot.at_ms);
        assert!(uids.contains(r["uid"].as_str().unwrap()), "{r}");
    }

    // Valid OCSF 1.8.0, here and again in `.ci/run`.
    let file = setup.dir.path().join("out/events.directory.ndjson");
    crate::directory::validate_ocsf(&file);
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("directory-stream");
    std::fs::create_dir_all(&keep).unwrap();
    std::fs::copy(&file, keep.join("snapshot.ocsf.ndjson")).unwrap();

    // A restart inside the interval makes no second snapshot.
    let mut daemon = setup.start();
    setup.wait_not_due(2).await;
    let status = daemon.stop(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    let (again, snapshot_again) = setup.journaled();
    assert_eq!(again, journaled, "nothing journaled again");
    assert_eq!(snapshot_again, Some(snapshot));
    assert_eq!(setup.lines("events.directory.ndjson"), ocsf);
    assert_eq!(setup.lines("raw.directory.ndjson"), raw);

    // `status`: the source's last snapshot, and each sink's stream caught up.
    let status = std::process::Command::new(crate::support::daemon::CLAUDIT)
        .args(["status", "--config"])
        .arg(&setup.config)
        .env(KEY_VAR, KEY)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    let n = journaled.len();
    assert!(
        text.contains("last snapshot:") && text.contains(&format!("({n} entries")),
        "{text}"
    );
    let caught_up = format!(
        "directory:       seq {} (0 behind), {n} delivered, 0 dead letters",
        journaled[n - 1].seq
    );
    assert_eq!(text.matches(&caught_up).count(), 2, "{text}");
    // The sink that takes only the directory stream has no activity
    // cursor to report (it never moves): not thousands of events behind.
    assert!(
        text.contains("sink raw\n  activities:      not received (its streams)\n"),
        "{text}"
    );
    assert!(text.contains("sink ocsf\n  cursor:"), "{text}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_next_snapshot_starts_with_the_changes_since_the_previous_one() {
    let sim = Simulator::start(sim_config()).await.unwrap();
    let mut setup = Setup::new(&sim, |config, d| {
        config.sink(
            sink("ocsf", "file")
                .path("path", &d.join("out/events.ndjson"))
                .set("streams", vec!["activities", "directory"])
                .set("batch_linger", "100ms"),
        )
    });
    let before = members(&sim);
    let mut daemon = setup.start();
    Wait::up_to(Duration::from_secs(90))
        .until("the first snapshot", async || {
            setup.lines("events.directory.ndjson").len() >= before.len()
        })
        .await;
    setup.wait_not_due(1).await;
    // A plain member leaves; their removal reaches the journal.
    let dir = sim.directory();
    let leaver = dir
        .members
        .iter()
        .flat_map(|m| m.values())
        .find(|m| m.organization_role == "user")
        .expect("a plain member")
        .user_id
        .clone();
    let removal = sim.remove_user(&leaver).unwrap();
    let db = setup.db();
    Wait::up_to(Duration::from_secs(30))
        .until("the removal journaled", async || {
            Store::open_readonly(&db)
                .ok()
                .and_then(|s| s.is_journaled(&removal).ok())
                .unwrap_or(false)
        })
        .await;
    let status = daemon.stop(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    let first = setup.lines("events.directory.ndjson");
    let (_, snapshot) = setup.journaled();
    let first_at = snapshot.unwrap().at_ms;

    // The interval (a day) has passed since the last snapshot: as if the
    // clock had moved on, it is put a day and a second before now, so the
    // next one is due a second ago, after the removal.
    let day_ms = 86_400_000;
    let last = chrono::Utc::now().timestamp_millis() - day_ms - 1_000;
    assert!(last + day_ms > first_at);
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute(
            "UPDATE directory_snapshots SET last_at_ms = ?1 WHERE source = 'acme'",
            [last],
        )
        .unwrap();
    }
    let after = members(&sim);
    assert!(!after.contains(&leaver));
    let mut daemon = setup.start();
    Wait::up_to(Duration::from_secs(60))
        .until("the second snapshot", async || {
            let n = setup.lines("events.directory.ndjson").len() - first.len();
            if n > after.len() {
                Ok(())
            } else {
                Err(format!("{n} entries"))
            }
        })
        .await;
    setup.wait_not_due(2).await;
    let status = daemon.stop(Duration::from_secs(30));
    assert!(status.success(), "{status}");

    let all = setup.lines("events.directory.ndjson");
    let second = &all[first.len()..];
    let (_, snapshot) = setup.journaled();
    let second_at = snapshot.unwrap().at_ms;
    assert_eq!(second_at, last + day_ms, "the time it was due");
    // The changes come first (activity Log), then every member (Collect).
    let changes: Vec<&Value> = second.iter().filter(|e| e["activity_id"] == 1).collect();
    let snapshot: Vec<Value> = second
        .iter()
        .filter(|e| e["activity_id"] == 2)
        .cloned()
        .collect();
    assert_eq!(changes.len() + snapshot.len(), second.len());
    assert!(
        second[..changes.len()]
            .iter()
            .all(|e| e["activity_id"] == 1)
    );
    let left = changes
        .iter()
        .find(|e| e["user"]["uid"] == leaver.as_str())
        .expect("the leaver's change");
    let extras = &left["unmapped"]["claudit"]["directory"];
    assert_eq!(extras["change"], "left", "{left}");
    assert!(extras["departed_time"].is_i64(), "{left}");
    assert_eq!(users_once(&snapshot, |e| &e["user"]["uid"]), after);
    for e in second {
        assert_eq!(e["time"], second_at, "{e}");
    }
    // Every entry of both snapshots under its own uid.
    let uids: HashSet<&str> = all
        .iter()
        .map(|e| e["metadata"]["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids.len(), all.len());
    let file = setup.dir.path().join("out/events.directory.ndjson");
    crate::directory::validate_ocsf(&file);
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("directory-stream");
    std::fs::create_dir_all(&keep).unwrap();
    std::fs::copy(&file, keep.join("changes.ocsf.ndjson")).unwrap();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_between_journaling_and_delivery_loses_nothing_and_sends_nothing_twice() {
    let sim = Simulator::start(sim_config()).await.unwrap();
    let (server, es) = es::start(&format!("ApiKey {ES_KEY}")).await;
    es.state().down = Some(503);
    let mut setup = Setup::new(&sim, |config, d| {
        config
            .sink(
                sink("file", "file")
                    .path("path", &d.join("out/events.ndjson"))
                    .set("batch_linger", "100ms"),
            )
            .sink(
                sink("es", "elasticsearch")
                    .set("url", server.uri())
                    .set("index", es::INDEX)
                    .set("api_key", format!("${{{ES_KEY_VAR}}}"))
                    .set("streams", vec!["directory"])
                    .set("batch_linger", "0s"),
            )
    });
    let expected = members(&sim);
    let mut daemon = setup.start();
    let db = setup.db();
    // Journaled, and the destination refused it (503): the entries are in
    // the state database only.
    Wait::up_to(Duration::from_secs(90))
        .until(
            "the snapshot journaled and a delivery refused",
            async || {
                let (entries, _) = setup.journaled();
                let error = Store::open_readonly(&db)
                    .ok()
                    .and_then(|s| s.sink_cursor("es.directory").ok())
                    .and_then(|c| c.last_error);
                if !entries.is_empty() && error.is_some() {
                    Ok(())
                } else {
                    Err(format!("{} entries, error {error:?}", entries.len()))
                }
            },
        )
        .await;
    daemon.kill();
    let (journaled, snapshot) = setup.journaled();
    assert!(es.stored_ids().is_empty(), "nothing delivered while down");

    es.state().down = None;
    let mut daemon = setup.start();
    Wait::up_to(Duration::from_secs(60))
        .until("every entry in Elasticsearch", async || {
            let stored = es.stored_ids().len();
            if stored >= journaled.len() {
                Ok(())
            } else {
                Err(format!("{stored} of {}", journaled.len()))
            }
        })
        .await;
    setup.wait_not_due(2).await;
    let status = daemon.stop(Duration::from_secs(30));
    assert!(status.success(), "{status}");

    // Every journaled entry once, none twice, and no second snapshot.
    let (after, snapshot_after) = setup.journaled();
    assert_eq!(after, journaled, "the restart journaled nothing");
    assert_eq!(snapshot_after, snapshot);
    {
        let state = es.state();
        assert!(state.violations.is_empty(), "{:?}", state.violations);
        assert_eq!(state.conflicts, 0, "no entry sent twice");
        let received: Vec<&str> = state.received.iter().map(String::as_str).collect();
        let unique: HashSet<&str> = received.iter().copied().collect();
        assert_eq!(unique.len(), received.len(), "no entry sent twice");
        let journaled_uids: HashSet<&str> = journaled.iter().map(|e| e.uid.as_str()).collect();
        assert_eq!(unique, journaled_uids);
        let users: BTreeSet<String> = state
            .docs
            .iter()
            .map(|(_, doc)| doc["user"]["uid"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(users, expected);
    }
    // `claudit replay` re-sends the stream by its name; Elasticsearch keeps
    // each entry once (a second `create` of a uid is a conflict).
    let replay = std::process::Command::new(crate::support::daemon::CLAUDIT)
        .args(["--log-format", "text", "replay", "--sink", "es.directory"])
        .args(["--since", "1d", "--config"])
        .arg(&setup.config)
        .env(KEY_VAR, KEY)
        .env(ES_KEY_VAR, ES_KEY)
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    {
        let state = es.state();
        assert_eq!(state.conflicts, journaled.len(), "each entry sent again");
        assert_eq!(state.docs.len(), journaled.len(), "and stored once");
    }
    assert!(
        !logs_in(setup.dir.path()).contains(ES_KEY),
        "the Elasticsearch key in a log"
    );
    sim.shutdown().await;
}

#[test]
fn check_refuses_the_stream_without_a_source_that_has_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = |directory: Option<Table>| {
        let acme = source("acme").set("api_key", KEY);
        let acme = match directory {
            Some(t) => acme.set("directory", t.inline()),
            None => acme,
        };
        ConfigFile::new(&d.join("state.db"))
            .source(acme)
            .sink(
                sink("siem", "file")
                    .path("path", &d.join("events.ndjson"))
                    .set("streams", vec!["activities", "directory"]),
            )
            .write(&d.join("claudit.toml"))
    };
    let check = |path: &Path| {
        std::process::Command::new(crate::support::daemon::CLAUDIT)
            .args(["check", "--config"])
            .arg(path)
            .output()
            .unwrap()
    };
    let out = check(&config(None));
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{text}");
    for expected in [
        "sinks[0].streams",
        "sink \"siem\"",
        "no source has a [sources.directory] table",
        "remove \"directory\" from streams",
    ] {
        assert!(text.contains(expected), "{expected} missing from {text}");
    }
    let out = check(&config(Some(Table::default())));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
