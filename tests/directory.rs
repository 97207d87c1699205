//! Directory context at the binary level: the release binary against the
//! embedded simulator, whose directory endpoints follow its feed.
//!
//! - every activity of a user in two groups carries both, with the name and
//!   the organization, and the events pass `validate.py --strict`;
//! - a user removed mid-run is `departed` on the activities after the
//!   removal and not before, and a re-read of every row after the
//!   directory changed renders the bytes the sink wrote;
//! - an Admin API key gets one clear message naming the scopes, no
//!   directory request, and the feed delivered without context;
//! - a sync killed with SIGKILL resumes without a second full pass (counted
//!   at the simulator);
//! - the directory's requests and the feed's together stay within the
//!   source's `requests_per_minute` (timestamps at the simulator).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use claudit::sim::{SimConfig, SimRequest, Simulator};
use claudit::store::{Payload, Store};
use serde_json::Value;

const KEY: &str = "sk-ant-api01-directory-test-key-0123456789";
const ADMIN_KEY: &str = "sk-ant-admin01-directory-test-key-0123456789";
const FEED_PATH: &str = "/v1/compliance/activities";

struct Daemon {
    dir: tempfile::TempDir,
    config: PathBuf,
    child: Option<Child>,
    starts: usize,
}

impl Daemon {
    /// A configuration with one source against `sim` (its `[sources]`
    /// extra keys and `[sources.directory]` table given) and one OCSF file
    /// sink.
    fn new(sim: &Simulator, source_keys: &str, directory: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("claudit.toml");
        let d = dir.path().display();
        std::fs::write(
            &config,
            format!(
                r#"
[state]
path = "{d}/state.db"

[[sources]]
name = "acme"
base_url = "{url}"
api_key = "${{DIRECTORY_TEST_KEY}}"
window = "5s"
catchup_window = "1h"
settle_lag = "1s"
sweep_horizon = "1m"
sweep_interval = "5s"
initial_lookback = "3h"
poll_interval = "1s"
{source_keys}
{directory}

[[sinks]]
name = "ocsf"
type = "file"
path = "{d}/out/events.ocsf.ndjson"
max_bytes = "0"
batch_linger = "100ms"
"#,
                url = sim.base_url()
            ),
        )
        .unwrap();
        Daemon {
            dir,
            config,
            child: None,
            starts: 0,
        }
    }

    fn start(&mut self, key: &str) {
        self.starts += 1;
        let log =
            std::fs::File::create(self.dir.path().join(format!("daemon-{}.log", self.starts)))
                .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_claudit"))
            .args(["--log-format", "json", "run", "--config"])
            .arg(&self.config)
            .env("DIRECTORY_TEST_KEY", key)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start claudit");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            child.wait().unwrap();
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    fn ocsf_path(&self) -> PathBuf {
        self.dir.path().join("out/events.ocsf.ndjson")
    }

    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.ocsf_path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn logs(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                std::fs::read_to_string(self.dir.path().join(format!("daemon-{n}.log")))
                    .unwrap_or_default()
            })
            .collect()
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

    /// Waits until `done` holds, failing with the logs after `limit`.
    async fn wait(&self, what: &str, limit: Duration, mut done: impl FnMut(&Daemon) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}; logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The delivered event of an activity.
    fn event(&self, activity_id: &str) -> Option<Value> {
        self.events()
            .into_iter()
            .find(|e| e["metadata"]["uid"] == activity_id)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
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

/// Runs the OCSF validator over `file` when `../shared` is beside the
/// project (CI has it); says why when it is not.
fn validate_ocsf(file: &Path) {
    let validator = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/ocsf/validate.py");
    if !validator.exists() {
        eprintln!(
            "skipping validate.py --strict: {} is missing (CI runs with ../shared beside the project)",
            validator.display()
        );
        return;
    }
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
    // A user in at least two groups since before the backlog, and another
    // user to remove.
    let members: Vec<_> = start_dir
        .members
        .iter()
        .flat_map(|m| m.values())
        .cloned()
        .collect();
    // Members since before the backlog (never removed and re-added in it).
    let members: Vec<_> = members
        .into_iter()
        .filter(|m| m.joined_micros < backlog_start)
        .collect();
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

    let mut daemon = Daemon::new(&sim, "requests_per_minute = 100000", "[sources.directory]");
    daemon.start(KEY);
    daemon
        .wait(
            "the first sync and the activity before the removal",
            Duration::from_secs(60),
            |d| d.last_full_sync().is_some() && d.event(&before).is_some(),
        )
        .await;
    let users_path = format!(
        "/v1/compliance/organizations/{}/users",
        org_of(&sim, &leaver.user_id)
    );
    let removed_at = sim.now();
    let removal = sim.remove_user(&leaver.user_id).unwrap();
    let after = sim.act_as(&leaver.user_id).unwrap();
    daemon
        .wait(
            "the activity after the removal",
            Duration::from_secs(30),
            |d| d.event(&after).is_some(),
        )
        .await;
    // The directory changes again after these rows were delivered: the
    // removal asks for the organization's users list again.
    let refreshed = || {
        sim.requests()
            .iter()
            .any(|r| r.path == users_path && r.at > removed_at)
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    while !refreshed() {
        assert!(
            Instant::now() < deadline,
            "no refresh after the removal; logs:\n{}",
            daemon.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    daemon.stop();

    let events = daemon.events();
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
    let before_event = daemon.event(&before).unwrap();
    assert_eq!(
        before_event["actor"]["user"]["full_name"],
        leaver.full_name.as_str()
    );
    assert!(before_event["unmapped"]["claudit"]["directory"]["actor"]["departed"].is_null());
    let after_event = daemon.event(&after).unwrap();
    let extras = &after_event["unmapped"]["claudit"]["directory"]["actor"];
    assert_eq!(extras["departed"], true, "{after_event}");
    let removal_event = daemon.event(&removal).unwrap();
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

    // Re-reading the journal now renders exactly the bytes the sink wrote,
    // although the directory changed after most rows were delivered.
    let text = std::fs::read_to_string(&daemon.config).unwrap();
    let env = |name: &str| (name == "DIRECTORY_TEST_KEY").then(|| KEY.to_string());
    let config =
        claudit::config::load_str(&text, &daemon.config, &env).unwrap_or_else(|e| panic!("{e}"));
    let directory = claudit::directory::Directory::open(&config.state.path, &config).unwrap();
    let mapper = claudit::ocsf::Mapper::new(&config.ocsf).with_directory(directory);
    let store = Store::open_readonly(&daemon.db()).unwrap();
    let rows = store
        .read_batch(0, usize::MAX, usize::MAX, &Payload::Ocsf(Arc::new(mapper)))
        .unwrap();
    let written = std::fs::read_to_string(daemon.ocsf_path()).unwrap();
    let written: Vec<&str> = written.lines().collect();
    assert_eq!(rows.len(), written.len());
    for (row, line) in rows.iter().zip(&written) {
        assert_eq!(&row.payload, line, "row {} renders differently", row.seq);
    }
    validate_ocsf(&daemon.ocsf_path());

    // The directory as a stream: a snapshot now, with the changes since
    // before the removal, as valid OCSF User Inventory Info events.
    let since = (removed_at - chrono::Duration::seconds(1)).to_rfc3339();
    let snapshot = Command::new(env!("CARGO_BIN_EXE_claudit"))
        .args([
            "directory",
            "snapshot",
            "--source",
            "acme",
            "--changes-since",
        ])
        .arg(&since)
        .arg("--config")
        .arg(&daemon.config)
        .env("DIRECTORY_TEST_KEY", KEY)
        .output()
        .unwrap();
    assert!(snapshot.status.success(), "{snapshot:?}");
    let path = daemon.dir.path().join("snapshot.ndjson");
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
    let mut daemon = Daemon::new(&sim, "", "[sources.directory]");
    daemon.start(ADMIN_KEY);
    daemon
        .wait("the backlog delivered", Duration::from_secs(60), |d| {
            d.events().len() >= 2_000
        })
        .await;
    daemon.stop();
    let logs = daemon.logs();
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
    assert!(!logs.contains(ADMIN_KEY), "the key is in the logs");
    // No directory request was made: every one would be a 403 in the
    // organization's audit log.
    assert_eq!(sim.requests().iter().filter(|r| is_directory(r)).count(), 0);
    let events = daemon.events();
    assert!(
        events
            .iter()
            .all(|e| e["actor"]["user"]["full_name"].is_null()
                && e["unmapped"]["claudit"]["directory"].is_null()),
        "an event has directory context"
    );
    // `status` says why.
    let status = Command::new(env!("CARGO_BIN_EXE_claudit"))
        .args(["status", "--config"])
        .arg(&daemon.config)
        .env("DIRECTORY_TEST_KEY", ADMIN_KEY)
        .output()
        .unwrap();
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
    let mut daemon = Daemon::new(
        &sim,
        "requests_per_minute = 600",
        &format!("[sources.directory]\npage_size = {PAGE}\ninitial_sync_wait = \"0s\""),
    );
    daemon.start(KEY);
    let directory_requests = || sim.requests().iter().filter(|r| is_directory(r)).count();
    let deadline = Instant::now() + Duration::from_secs(30);
    while directory_requests() < one_pass / 3 {
        assert!(Instant::now() < deadline, "the sync did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.kill();
    assert!(
        daemon.last_full_sync().is_none(),
        "the pass completed before the kill"
    );
    let at_kill = directory_requests();
    daemon.start(KEY);
    daemon
        .wait("the full sync to complete", Duration::from_secs(60), |d| {
            d.last_full_sync().is_some()
        })
        .await;
    daemon.stop();
    // Up to the end of the pass: targeted refreshes may follow it.
    let completed = daemon.last_full_sync().unwrap();
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
        daemon
            .logs()
            .contains("resuming the directory sync where it stopped")
    );
    // The directory the sync left is the simulator's.
    let show = Command::new(env!("CARGO_BIN_EXE_claudit"))
        .args(["directory", "show", "--source", "acme", "--config"])
        .arg(&daemon.config)
        .env("DIRECTORY_TEST_KEY", KEY)
        .output()
        .unwrap();
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
    let mut daemon = Daemon::new(
        &sim,
        &format!("requests_per_minute = {RPM}\npage_size = 100"),
        "[sources.directory]\npage_size = 20\ninitial_sync_wait = \"0s\"",
    );
    let started = Instant::now();
    daemon.start(KEY);
    tokio::time::sleep(Duration::from_secs(15)).await;
    daemon.stop();
    let requests = sim.requests();
    let (directory, feed): (Vec<&SimRequest>, Vec<&SimRequest>) =
        requests.iter().partition(|r| is_directory(r));
    assert!(
        directory.len() > 5 && feed.len() > 5,
        "both kinds ran: {} directory, {} feed requests in {:?}",
        directory.len(),
        feed.len(),
        started.elapsed()
    );
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
