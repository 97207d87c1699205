//! Directory context at the binary level: the release binary against the
//! embedded simulator, whose directory endpoints follow its feed.
//!
//! - every activity of a user in two groups carries both, with the name and
//!   the organization, in the OCSF sink and in the `raw+claudit` sink (whose
//!   lines keep the activity's own bytes); the OCSF events and the inventory
//!   snapshot pass `validate.py --strict`;
//! - a user removed mid-run is `departed` on the activities after the
//!   removal and not before, and a re-read of every row after the
//!   directory changed renders the bytes each sink wrote;
//! - an Admin API key gets one clear message naming the scopes, no
//!   directory request, and the feed delivered without context;
//! - a sync killed with SIGKILL resumes without a second full pass (counted
//!   at the simulator);
//! - the directory's requests and the feed's together stay within the
//!   source's `requests_per_minute` (timestamps at the simulator);
//! - a hostile directory answer (a gzip bomb) is refused at the body cap,
//!   named in the log, with the daemon's memory bounded, and the sync
//!   completes once the answers are sound again;
//! - activities of a user after their removal give one `departed-user-activity`
//!   finding (one suppression group), none for the activity before it, and
//!   the findings pass `validate.py --strict` (kept for `.ci/run` too).

use crate::support::config::{ConfigFile, Table, quick_source, sink};
use crate::support::daemon::{CLAUDIT, Daemon, assert_no_secret, logs_in, run_command};
use crate::support::hostile_api::{HostileApi, Mode, memory_mib};
use crate::support::wait::Wait;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use claudit::sim::{SimConfig, SimRequest, Simulator};
use claudit::sinks::render::Payload;
use claudit::store::Store;
use serde_json::Value;

const KEY: &str = "sk-ant-api01-directory-test-key-0123456789";
const ADMIN_KEY: &str = "sk-ant-admin01-directory-test-key-0123456789";
const FEED_PATH: &str = "/v1/compliance/activities";
/// The variable the configurations read the key from.
const KEY_VAR: &str = "DIRECTORY_TEST_KEY";
/// Peak RSS the daemon must stay under, whatever the directory answers.
const PEAK_RSS_LIMIT_MIB: u64 = 200;

/// A daemon's directory: its configuration, state, sinks and logs.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    key: &'static str,
    daemon: Option<Daemon>,
    starts: usize,
}

impl Setup {
    /// One source against `base_url` (with what `keys` adds, and
    /// `[sources.directory]` as `directory`), an OCSF file sink and a
    /// `raw+claudit` file sink.
    fn new(
        base_url: &str,
        key: &'static str,
        keys: impl FnOnce(Table) -> Table,
        directory: Table,
    ) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let acme = quick_source("acme", base_url, KEY_VAR);
        let acme = keys(acme).set("directory", directory.inline());
        let config = ConfigFile::new(&d.join("state.db"))
            .source(acme)
            .sink(
                sink("ocsf", "file")
                    .path("path", &d.join("out/events.ocsf.ndjson"))
                    .set("max_bytes", "0")
                    .set("batch_linger", "100ms"),
            )
            .sink(
                sink("raw", "file")
                    .set("format", "raw+claudit")
                    .path("path", &d.join("out/events.raw.ndjson"))
                    .set("max_bytes", "0")
                    .set("batch_linger", "100ms"),
            )
            .write(&d.join("claudit.toml"));
        Setup {
            dir,
            config,
            key,
            daemon: None,
            starts: 0,
        }
    }

    fn start(&mut self) {
        self.starts += 1;
        let mut command = run_command(&self.config);
        command.env(KEY_VAR, self.key).env("RUST_LOG", "info");
        let log = self.dir.path().join(format!("daemon-{}.log", self.starts));
        self.daemon = Some(Daemon::spawn(command, &log));
    }

    fn daemon(&mut self) -> &mut Daemon {
        self.daemon.as_mut().expect("the daemon was started")
    }

    fn stop(&mut self) {
        let status = self.daemon().stop(Duration::from_secs(30));
        assert!(status.success(), "the daemon exited with {status}");
    }

    /// `claudit <args> --config <config>`, with the key in the environment.
    fn claudit(&self, args: &[&str]) -> std::process::Output {
        Command::new(CLAUDIT)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env(KEY_VAR, self.key)
            .output()
            .unwrap()
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    fn out(&self, sink: &str) -> PathBuf {
        self.dir.path().join(format!("out/events.{sink}.ndjson"))
    }

    /// The sink's whole lines (a line the daemon is still writing is left
    /// for the next look).
    fn lines(&self, sink: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.out(sink)).unwrap_or_default();
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        whole.lines().map(str::to_string).collect()
    }

    fn events(&self) -> Vec<Value> {
        self.lines("ocsf")
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn logs(&self) -> String {
        logs_in(self.dir.path())
    }

    /// When the source's last full directory sync completed, if ever.
    fn last_full_sync(&self) -> Option<i64> {
        let conn = rusqlite::Connection::open_with_flags(
            self.db(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .ok()?;
        conn.query_row(
            "SELECT last_full_ms FROM directory_sync WHERE source = 'acme'",
            [],
            |r| r.get::<_, Option<i64>>(0),
        )
        .ok()
        .flatten()
    }

    /// The delivered OCSF event of an activity.
    fn event(&self, activity_id: &str) -> Option<Value> {
        self.events()
            .into_iter()
            .find(|e| e["metadata"]["uid"] == activity_id)
    }

    /// Every journal row in the form `payload`, read as a sink reads it, by
    /// a mapper built from the configuration now.
    fn reread(&self, payload: impl Fn(Arc<claudit::ocsf::Mapper>) -> Payload) -> Vec<String> {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let env = |name: &str| (name == KEY_VAR).then(|| self.key.to_string());
        let config =
            claudit::config::load_str(&text, &self.config, &env).unwrap_or_else(|e| panic!("{e}"));
        let directory =
            claudit::directory::Directory::open(&config.state.path, config.directories()).unwrap();
        let mapper = claudit::ocsf::Mapper::new(&config.ocsf).with_directory(directory);
        let store = Store::open_readonly(&self.db()).unwrap();
        store
            .read_batch(0, usize::MAX, usize::MAX, &payload(Arc::new(mapper)))
            .unwrap()
            .into_iter()
            .map(|r| r.payload)
            .collect()
    }
}

fn sim_config(key: &str) -> SimConfig {
    SimConfig {
        api_key: key.into(),
        backlog: 2_000,
        backlog_span: Duration::from_secs(2 * 3600),
        live_per_second: 0.0,
        late_fraction: 0.0,
        visibility_delay: Duration::ZERO,
        rate_limit_per_minute: None,
        ..SimConfig::default()
    }
}

/// The uuid of the organization `user` is in.
fn org_of(sim: &Simulator, user: &str) -> String {
    let d = sim.directory();
    let i = d.members.iter().position(|m| m.contains_key(user)).unwrap();
    d.orgs[i].0.clone()
}

fn is_directory(r: &SimRequest) -> bool {
    r.path != FEED_PATH
}

/// `python3 ../shared/ocsf/validate.py --strict file`: the OCSF 1.8.0
/// validator beside the project, as CI runs it.
pub(crate) fn validate_ocsf(file: &Path) {
    let validator = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/ocsf/validate.py");
    assert!(
        validator.exists(),
        "{} is missing: the tests run with shared/ beside the project, as CI does",
        validator.display()
    );
    let out = Command::new("python3")
        .arg(&validator)
        .arg("--strict")
        .arg(file)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "validate.py --strict failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_on_every_event_departed_after_a_removal_and_re_reads_unchanged() {
    let sim = Simulator::start(sim_config(KEY)).await.unwrap();
    let start_dir = sim.directory();
    let backlog_start = (sim.now() - chrono::Duration::hours(2)).timestamp_micros();
    // Members since before the backlog (never removed and re-added in it).
    let members: Vec<_> = start_dir
        .members
        .iter()
        .flat_map(|m| m.values())
        .filter(|m| m.joined_micros < backlog_start)
        .cloned()
        .collect();
    // A user in at least two groups since before the backlog, and another
    // user to remove.
    let in_two = members
        .iter()
        .find(|m| {
            let since: Vec<i64> = start_dir
                .group_members
                .iter()
                .filter(|((_, u), _)| *u == m.user_id)
                .map(|(_, added)| *added)
                .collect();
            since.len() >= 2 && since.iter().all(|t| *t < backlog_start)
        })
        .expect("a user in two groups")
        .clone();
    let groups: HashSet<String> = start_dir
        .groups_of(&in_two.user_id)
        .iter()
        .map(|g| g.name.clone())
        .collect();
    let leaver = members
        .iter()
        .find(|m| m.user_id != in_two.user_id && m.organization_role == "user")
        .unwrap()
        .clone();
    let before = sim.act_as(&leaver.user_id).unwrap();
    for _ in 0..3 {
        sim.act_as(&in_two.user_id).unwrap();
    }

    let mut setup = started_after_the_first_sync_and(&sim, &before).await;
    let users_path = format!(
        "/v1/compliance/organizations/{}/users",
        org_of(&sim, &leaver.user_id)
    );
    let removed_at = sim.now();
    let removal = sim.remove_user(&leaver.user_id).unwrap();
    let after = sim.act_as(&leaver.user_id).unwrap();
    Wait::up_to(Duration::from_secs(30))
        .until("the activity after the removal", async || {
            setup.event(&after).is_some()
        })
        .await;
    // The directory changes again after these rows were delivered: the
    // removal asks for the organization's users list again, and the
    // refresh completes (it records its end).
    Wait::up_to(Duration::from_secs(40))
        .until(
            "a refresh of the users list after the removal",
            async || {
                sim.requests()
                    .iter()
                    .any(|r| r.path == users_path && r.at > removed_at)
            },
        )
        .await;
    Wait::up_to(Duration::from_secs(20))
        .until("the refresh to complete", async || {
            let out = setup.claudit(&["status"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if text.contains("directory:") && !text.contains("sync in progress") {
                Ok(())
            } else {
                Err(text)
            }
        })
        .await;
    setup.stop();

    let events = setup.events();
    // Every event of the user in two groups carries both, and who they are.
    let theirs: Vec<&Value> = events
        .iter()
        .filter(|e| e["actor"]["user"]["uid"] == in_two.user_id.as_str())
        .collect();
    assert!(theirs.len() >= 3, "{} events", theirs.len());
    for e in &theirs {
        let user = &e["actor"]["user"];
        let names: HashSet<String> = user["groups"]
            .as_array()
            .unwrap_or_else(|| panic!("no groups on {e}"))
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_string())
            .collect();
        assert!(
            names.is_superset(&groups),
            "{names:?} lacks some of {groups:?}"
        );
        assert_eq!(user["full_name"], in_two.full_name.as_str());
        assert!(user["org"]["name"].is_string(), "{user}");
        assert!(e["unmapped"]["claudit"]["directory"]["actor"]["departed"].is_null());
    }
    // Departed after the removal, not before.
    let before_event = setup.event(&before).unwrap();
    assert_eq!(
        before_event["actor"]["user"]["full_name"],
        leaver.full_name.as_str()
    );
    assert!(before_event["unmapped"]["claudit"]["directory"]["actor"]["departed"].is_null());
    let after_event = setup.event(&after).unwrap();
    let extras = &after_event["unmapped"]["claudit"]["directory"]["actor"];
    assert_eq!(extras["departed"], true, "{after_event}");
    let removal_event = setup.event(&removal).unwrap();
    assert_eq!(
        extras["departed_time"], removal_event["time"],
        "departed at the removal's time"
    );
    // The removal's subject is the departed user too.
    assert_eq!(
        removal_event["user"]["full_name"],
        leaver.full_name.as_str()
    );
    assert_eq!(
        removal_event["unmapped"]["claudit"]["directory"]["user"]["departed"],
        true
    );

    // The raw+claudit sink: each line is the activity's own bytes with the
    // context appended; the same people, groups and departure.
    let raw = setup.reread(|_| Payload::Raw);
    let with_context = setup.lines("raw");
    assert_eq!(raw.len(), with_context.len());
    let mut enriched = 0;
    for (raw, line) in raw.iter().zip(&with_context) {
        let open = raw.trim_end().strip_suffix('}').unwrap();
        assert!(line.starts_with(open), "{line} does not keep {raw}");
        let v: Value = serde_json::from_str(line).unwrap();
        let actor = &v["claudit"]["directory"]["actor"];
        if v["actor"]["user_id"] == in_two.user_id.as_str() {
            let names: HashSet<&str> = actor["groups"]
                .as_array()
                .unwrap_or_else(|| panic!("no groups on {line}"))
                .iter()
                .map(|g| g["name"].as_str().unwrap())
                .collect();
            assert!(groups.iter().all(|g| names.contains(g.as_str())), "{line}");
            assert_eq!(actor["name"], in_two.full_name.as_str());
        }
        if v["id"] == after.as_str() {
            assert_eq!(actor["departed"], true, "{line}");
        }
        if v["id"] == before.as_str() {
            assert!(actor["departed"].is_null(), "{line}");
        }
        enriched += usize::from(!actor.is_null());
    }
    assert!(enriched >= 4, "{enriched} lines with an actor's context");

    // Re-reading the journal now renders exactly the bytes each sink wrote,
    // although the directory changed after most rows were delivered.
    for (sink, lines) in [
        ("ocsf", setup.reread(Payload::Ocsf)),
        ("raw", setup.reread(Payload::RawWithContext)),
    ] {
        let written = setup.lines(sink);
        assert_eq!(lines.len(), written.len(), "{sink}");
        for (n, (row, line)) in lines.iter().zip(&written).enumerate() {
            assert_eq!(row, line, "{sink}: row {} renders differently", n + 1);
        }
    }
    validate_ocsf(&setup.out("ocsf"));

    // The directory as a stream: a snapshot now, with the changes since
    // before the removal, as valid OCSF User Inventory Info events.
    let since = (removed_at - chrono::Duration::seconds(1)).to_rfc3339();
    let snapshot = setup.claudit(&[
        "directory",
        "snapshot",
        "--source",
        "acme",
        "--changes-since",
        &since,
    ]);
    assert!(snapshot.status.success(), "{snapshot:?}");
    let path = setup.dir.path().join("snapshot.ndjson");
    std::fs::write(&path, &snapshot.stdout).unwrap();
    validate_ocsf(&path);
    let inventory: Vec<Value> = String::from_utf8(snapshot.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let left = inventory
        .iter()
        .find(|e| e["user"]["uid"] == leaver.user_id.as_str())
        .expect("the removed user is in the changes");
    assert_eq!(left["unmapped"]["claudit"]["directory"]["change"], "left");
    let entry = inventory
        .iter()
        .find(|e| e["user"]["uid"] == in_two.user_id.as_str() && e["activity_id"] == 2)
        .expect("the user in two groups is in the snapshot");
    assert!(entry["user"]["groups"].as_array().unwrap().len() >= 2);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_key_gets_one_clear_message_and_unenriched_events() {
    let sim = Simulator::start(sim_config(ADMIN_KEY)).await.unwrap();
    let mut setup = Setup::new(&sim.base_url(), ADMIN_KEY, |t| t, Table::default());
    setup.start();
    Wait::up_to(Duration::from_secs(60))
        .until("the backlog delivered", async || {
            setup.events().len() >= 2_000
        })
        .await;
    setup.stop();
    let logs = setup.logs();
    let refusals: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("directory context is off for this source"))
        .collect();
    assert_eq!(refusals.len(), 1, "{logs}");
    for words in [
        "Admin API key",
        "read:compliance_org_data",
        "read:compliance_user_data",
        "enabled = false",
    ] {
        assert!(
            refusals[0].contains(words),
            "{words} missing: {}",
            refusals[0]
        );
    }
    assert_no_secret("the daemon's log", &logs, &[ADMIN_KEY]);
    // No directory request was made: every one would be a 403 in the
    // organization's audit log.
    assert_eq!(sim.requests().iter().filter(|r| is_directory(r)).count(), 0);
    let events = setup.events();
    assert!(
        events
            .iter()
            .all(|e| e["actor"]["user"]["full_name"].is_null()
                && e["unmapped"]["claudit"]["directory"].is_null()),
        "an event has directory context"
    );
    // The raw+claudit sink delivers the activities as received.
    assert!(
        setup
            .lines("raw")
            .iter()
            .all(|l| !l.contains("\"claudit\"")),
        "a raw line has directory context"
    );
    // `status` says why.
    let status = setup.claudit(&["status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("directory:"), "{status}");
    assert!(status.contains("read:compliance_org_data"), "{status}");
    sim.shutdown().await;
}

/// Directory requests of one full pass over the simulator's directory with
/// pages of `page_size` items.
fn full_pass_requests(sim: &Simulator, page_size: usize) -> usize {
    let d = sim.directory();
    let pages = |n: usize| n.div_ceil(page_size).max(1);
    let orgs = pages(d.orgs.len());
    let users: usize = d.members.iter().map(|m| pages(m.len())).sum();
    let roles: usize = d.roles.iter().map(|r| pages(r.len())).sum();
    let permissions: usize = d
        .roles
        .iter()
        .flat_map(|r| r.values())
        .map(|r| pages(r.permissions.len()))
        .sum();
    let groups = pages(d.groups.len());
    let members: usize = d
        .groups
        .keys()
        .map(|g| pages(d.group_members.keys().filter(|(gg, _)| gg == g).count()))
        .sum();
    orgs + users + roles + permissions + groups + members
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_killed_mid_run_resumes_without_a_second_full_pass() {
    let sim = Simulator::start(sim_config(KEY)).await.unwrap();
    const PAGE: usize = 20;
    let one_pass = full_pass_requests(&sim, PAGE);
    let mut setup = Setup::new(
        &sim.base_url(),
        KEY,
        |t| t.set("requests_per_minute", 600),
        Table::default()
            .set("page_size", PAGE as i64)
            .set("initial_sync_wait", "0s"),
    );
    setup.start();
    let directory_requests = || sim.requests().iter().filter(|r| is_directory(r)).count();
    Wait::up_to(Duration::from_secs(30))
        .every(Duration::from_millis(10))
        .until("a third of the pass", async || {
            directory_requests() >= one_pass / 3
        })
        .await;
    setup.daemon().kill();
    assert!(
        setup.last_full_sync().is_none(),
        "the pass completed before the kill"
    );
    let at_kill = directory_requests();
    setup.start();
    Wait::up_to(Duration::from_secs(60))
        .until("the full sync to complete", async || {
            setup.last_full_sync().is_some()
        })
        .await;
    setup.stop();
    // Up to the end of the pass: targeted refreshes may follow it.
    let completed = setup.last_full_sync().unwrap();
    let total = sim
        .requests()
        .iter()
        .filter(|r| is_directory(r) && r.at.timestamp_millis() <= completed)
        .count();
    // One pass, plus at most the page in flight when the process died.
    assert!(
        total <= one_pass + 1,
        "{total} directory requests for a pass of {one_pass} ({at_kill} before the kill)"
    );
    assert!(
        setup
            .logs()
            .contains("resuming the directory sync where it stopped")
    );
    // The directory the sync left is the simulator's.
    let show = setup.claudit(&["directory", "show", "--source", "acme"]);
    let show = String::from_utf8_lossy(&show.stdout);
    let members: usize = sim.directory().members.iter().map(|m| m.len()).sum();
    assert!(
        show.contains(&format!("{members} members")),
        "{show} (expected {members} members)"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn directory_and_feed_requests_together_stay_within_requests_per_minute() {
    const RPM: u32 = 120;
    let sim = Simulator::start(SimConfig {
        backlog: 20_000,
        rate_limit_per_minute: Some(RPM),
        ..sim_config(KEY)
    })
    .await
    .unwrap();
    let mut setup = Setup::new(
        &sim.base_url(),
        KEY,
        |t| {
            t.set("requests_per_minute", i64::from(RPM))
                .set("page_size", 100)
        },
        Table::default()
            .set("page_size", 20)
            .set("initial_sync_wait", "0s"),
    );
    setup.start();
    // Enough of both kinds to leave the limiter's burst behind.
    let (directory, feed) = Wait::up_to(Duration::from_secs(60))
        .until("20 directory and 10 feed requests", async || {
            let requests = sim.requests();
            let directory = requests.iter().filter(|r| is_directory(r)).count();
            let feed = requests.len() - directory;
            if directory >= 20 && feed >= 10 {
                Ok((directory, feed))
            } else {
                Err(format!("{directory} directory, {feed} feed requests"))
            }
        })
        .await;
    setup.stop();
    let requests = sim.requests();
    assert!(directory > 0 && feed > 0);
    assert!(
        requests.iter().all(|r| r.status != 429),
        "the simulator's {RPM}/min was exceeded"
    );
    // The source's limiter (burst b, period T = 60 s / (rpm - b + 1)) lets
    // at most b + span / T + 1 requests into any span; two limiters would
    // let twice as many.
    let burst = (RPM / 10).clamp(1, 10) as f64;
    let period = 60.0 / f64::from(RPM - burst as u32 + 1);
    let times: Vec<f64> = requests
        .iter()
        .map(|r| r.at.timestamp_micros() as f64 / 1e6)
        .collect();
    for (i, start) in times.iter().enumerate() {
        for (j, end) in times.iter().enumerate().skip(i) {
            let n = (j - i + 1) as f64;
            let allowed = burst + (end - start) / period + 1.0;
            assert!(
                n <= allowed,
                "{n} requests within {:.2} s (at most {allowed:.1} for {RPM}/min)",
                end - start
            );
        }
        let minute = times
            .iter()
            .skip(i)
            .take_while(|t| **t < start + 60.0)
            .count();
        assert!(minute <= RPM as usize);
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_directory_answer_is_refused_at_the_cap_and_the_sync_recovers() {
    let sim = Simulator::start(sim_config(KEY)).await.unwrap();
    let api = HostileApi::start(sim.base_url(), Mode::GzipBomb).await;
    let mut setup = Setup::new(&api.url, KEY, |t| t, Table::default());
    setup.start();
    // The first directory request meets the bomb: refused at the cap,
    // named in the log, retried after a backoff.
    let warning = Wait::up_to(Duration::from_secs(30))
        .until("the refused directory answer in the log", async || {
            setup.logs().lines().find_map(|line| {
                (line.contains("GET /v1/compliance/organizations")
                    && line.contains("larger than claudit's limit"))
                .then(|| line.to_string())
            })
        })
        .await;
    assert!(warning.contains("32 MiB"), "{warning}");
    assert!(!api.served_in(Mode::GzipBomb).is_empty());
    let pid = setup.daemon().pid() as u32;
    let (peak, _) = memory_mib(pid);
    assert!(
        peak < PEAK_RSS_LIMIT_MIB,
        "peak RSS {peak} MiB after a gzip bomb of 1 GiB"
    );
    // Sound answers again: the sync completes and the events carry context.
    api.set_mode(Mode::Proxy);
    Wait::up_to(Duration::from_secs(60))
        .until("the first full sync", async || {
            setup.last_full_sync().is_some()
        })
        .await;
    Wait::up_to(Duration::from_secs(60))
        .until("an event with directory context", async || {
            setup
                .events()
                .iter()
                .any(|e| e["actor"]["user"]["full_name"].is_string())
        })
        .await;
    assert!(setup.daemon().try_wait().is_none(), "the daemon exited");
    setup.stop();
    assert_no_secret("the daemon's log", &setup.logs(), &[KEY]);
    sim.shutdown().await;
}

/// The journaled findings of the daemon's state database.
fn stored_findings(db: &Path) -> Vec<claudit::store::StoredFinding> {
    Store::open_readonly(db)
        .unwrap()
        .read_findings(0, 1_000_000)
        .unwrap()
}

/// The journal seq of an activity, once journaled.
fn seq_of(db: &Path, activity_id: &str) -> Option<i64> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.query_row(
        "SELECT seq FROM journal WHERE activity_id = ?1",
        [activity_id],
        |r| r.get(0),
    )
    .ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_departed_users_activities_after_the_removal_give_one_finding() {
    let sim = Simulator::start(sim_config(KEY)).await.unwrap();
    let start_dir = sim.directory();
    let backlog_start = (sim.now() - chrono::Duration::hours(2)).timestamp_micros();
    let leaver = start_dir
        .members
        .iter()
        .flat_map(|m| m.values())
        .find(|m| m.joined_micros < backlog_start && m.organization_role == "user")
        .expect("a plain member since before the backlog")
        .clone();
    let before = sim.act_as(&leaver.user_id).unwrap();

    let mut setup = started_after_the_first_sync_and(&sim, &before).await;
    let removal = sim.remove_user(&leaver.user_id).unwrap();
    // Their session outlives the offboarding: three activities after it,
    // within one suppression period (a day).
    let after: Vec<String> = (0..3)
        .map(|_| sim.act_as(&leaver.user_id).unwrap())
        .collect();
    let db = setup.db();
    Wait::up_to(Duration::from_secs(60))
        .until(
            "the activities after the removal to be evaluated",
            async || {
                let cursor = Store::open_readonly(&db)
                    .ok()
                    .and_then(|s| s.detection_cursor().ok())
                    .map_or(0, |c| c.seq);
                let last = after.iter().filter_map(|a| seq_of(&db, a)).max();
                let all = after.iter().all(|a| seq_of(&db, a).is_some());
                if all && last.is_some_and(|l| cursor >= l) {
                    Ok(())
                } else {
                    Err(format!("cursor {cursor}, last {last:?}"))
                }
            },
        )
        .await;
    setup.stop();

    let findings = stored_findings(&setup.db());
    let departed: Vec<Value> = findings
        .iter()
        .filter(|f| f.rule_id == "departed-user-activity")
        .map(|f| serde_json::from_str(&f.plain).unwrap())
        .collect();
    let theirs: Vec<&Value> = departed
        .iter()
        .filter(|f| f["group"]["actor.user_id"] == leaver.user_id.as_str())
        .collect();
    assert_eq!(
        theirs.len(),
        1,
        "one finding per departed user per day: {theirs:?}"
    );
    let finding = theirs[0];
    let anchor = finding["anchor"]["id"].as_str().unwrap();
    assert!(
        after.iter().any(|a| a == anchor),
        "anchored on an activity after the removal: {finding}"
    );
    for id in finding["activity_ids"].as_array().unwrap() {
        assert!(id != before.as_str() && id != removal.as_str(), "{finding}");
    }
    // Every departed-user finding is anchored on a departed actor's
    // activity: the OCSF event of the anchor says so.
    for f in &departed {
        let anchor = setup
            .event(f["anchor"]["id"].as_str().unwrap())
            .unwrap_or_else(|| panic!("the anchor of {f} was delivered"));
        assert_eq!(
            anchor["unmapped"]["claudit"]["directory"]["actor"]["departed"], true,
            "{f}"
        );
    }
    // The findings are valid OCSF Detection Findings; `.ci/run` validates
    // them again with every other finding of the integration tests.
    let lines: String = findings.iter().map(|f| format!("{}\n", f.ocsf)).collect();
    let path = setup.dir.path().join("findings.ocsf.ndjson");
    std::fs::write(&path, &lines).unwrap();
    validate_ocsf(&path);
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("detect-findings");
    std::fs::create_dir_all(&keep).unwrap();
    std::fs::write(keep.join("directory-departed-user.ocsf.ndjson"), lines).unwrap();
    sim.shutdown().await;
}

/// The daemon started against `sim` with a directory, once its first full
/// sync is done and the activity `before` (acted before a removal) has
/// arrived.
async fn started_after_the_first_sync_and(sim: &Simulator, before: &str) -> Setup {
    let mut setup = Setup::new(
        &sim.base_url(),
        KEY,
        |t| t.set("requests_per_minute", 100_000),
        Table::default(),
    );
    setup.start();
    Wait::up_to(Duration::from_secs(60))
        .until(
            "the first sync and the activity before the removal",
            async || setup.last_full_sync().is_some() && setup.event(before).is_some(),
        )
        .await;
    setup
}
