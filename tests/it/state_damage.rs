//! A damaged state database, at the binary level: the release daemon
//! against the embedded simulator and a real SQLite file that the test
//! damages the ways databases get damaged (a page overwritten with garbage;
//! a write-ahead log cut off after a SIGKILL; a row whose stored value is
//! no longer of its column's type; files the daemon's user cannot write).
//! Each start must refuse with the file, what is wrong and what to do, exit
//! with a code systemd does not restart on, and reset nothing: the file
//! keeps its bytes and the Compliance API is not read again.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use claudit::sim::{SimConfig, Simulator};
use claudit::store::Store;

const KEY: &str = "sk-ant-api01-state-damage-secret-0123456789";
const BACKLOG: usize = 3_000;
/// Exit code of a state database that is damaged (EX_DATAERR).
const EXIT_DAMAGED: i32 = 65;
/// Exit code of a configuration or permission problem (EX_CONFIG).
const EXIT_CONFIG: i32 = 78;

struct Fixture {
    sim: Simulator,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Fixture {
    async fn new() -> Fixture {
        let sim = Simulator::start(SimConfig {
            api_key: KEY.into(),
            backlog: BACKLOG,
            backlog_span: Duration::from_secs(3600),
            live_per_second: 0.0,
            late_fraction: 0.0,
            self_activity: false,
            rate_limit_per_minute: None,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("claudit.toml");
        let fixture = Fixture { sim, dir, config };
        fixture.write_config(&["file"]);
        fixture
    }

    /// A config with one file sink per name, each `out/<name>.ndjson`.
    fn write_config(&self, sinks: &[&str]) {
        let d = self.dir.path().display();
        let mut text = format!(
            r#"
[state]
path = "{d}/state.db"

[[sources]]
name = "acme"
base_url = "{url}"
api_key = "${{STATE_TEST_KEY}}"
window = "1s"
settle_lag = "1s"
poll_interval = "1s"
sweep_horizon = "30s"
sweep_interval = "1h"
initial_lookback = "2h"
no_data_after = "1h"
"#,
            url = self.sim.base_url()
        );
        for name in sinks {
            text.push_str(&format!(
                "\n[[sinks]]\nname = \"{name}\"\ntype = \"file\"\npath = \"{d}/out/{name}.ndjson\"\nbatch_linger = \"100ms\"\n"
            ));
        }
        std::fs::write(&self.config, text).unwrap();
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    fn companion(&self, suffix: &str) -> PathBuf {
        self.dir.path().join(format!("state.db{suffix}"))
    }

    fn lines(&self, sink: &str) -> usize {
        std::fs::read_to_string(self.dir.path().join(format!("out/{sink}.ndjson")))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_claudit"));
        command
            .args(["--log-format", "json"])
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("STATE_TEST_KEY", KEY)
            .env("RUST_LOG", "info");
        command
    }

    fn spawn(&self, args: &[&str], log: &str) -> Child {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join(log)).unwrap())
            .spawn()
            .expect("start claudit")
    }

    /// Runs the daemon until the whole backlog is journaled and delivered
    /// to every sink named, then stops it (SIGTERM, or SIGKILL when `kill`).
    fn run_until_delivered(&self, sinks: &[&str], kill: bool) {
        let mut daemon = self.spawn(&["run"], "first.log");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !sinks.iter().all(|s| self.lines(s) >= BACKLOG) {
            if let Some(status) = daemon.try_wait().unwrap() {
                panic!("the daemon exited with {status}: {}", self.log("first.log"));
            }
            assert!(Instant::now() < deadline, "backlog not delivered");
            std::thread::sleep(Duration::from_millis(100));
        }
        if kill {
            daemon.kill().unwrap();
            daemon.wait().unwrap();
        } else {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
            let status = wait(&mut daemon, Duration::from_secs(30)).expect("stops on SIGTERM");
            assert!(status.success());
        }
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// Starts `claudit run` and waits for it to exit (a refused start exits
    /// at once). If it is still running after 20 s it is stopped and the
    /// test fails, reporting what the daemon did meanwhile: how many API
    /// requests it made and how many events it delivered again.
    fn run_expecting_exit(&self, extra: &[&str], log: &str) -> (ExitStatus, String) {
        let requests_before = self.sim.requests().len();
        let lines_before = self.lines("file");
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        let mut daemon = self.spawn(&args, log);
        match wait(&mut daemon, Duration::from_secs(20)) {
            Some(status) => (status, self.log(log)),
            None => {
                daemon.kill().unwrap();
                daemon.wait().unwrap();
                panic!(
                    "claudit run did not refuse the database: in 20 s it made {} API requests and \
                     delivered {} events again to the file sink; log: {}",
                    self.sim.requests().len() - requests_before,
                    self.lines("file") - lines_before,
                    self.log(log)
                );
            }
        }
    }

    fn claudit(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run claudit")
    }
}

fn wait(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The message of the daemon's last error line (JSON logs).
fn fatal_error(log: &str) -> String {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "ERROR")
        .filter_map(|v| v["error"].as_str().map(str::to_string))
        .next_back()
        .unwrap_or_else(|| panic!("no error in the log: {log}"))
}

fn assert_names_all(message: &str, expected: &[&str]) {
    for e in expected {
        assert!(message.contains(e), "the message lacks {e:?}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_garbage_is_refused_at_start_and_nothing_is_reset() {
    let f = Fixture::new().await;
    tokio::task::block_in_place(|| f.run_until_delivered(&["file"], false));
    let db = f.db();
    assert!(
        !f.companion("-wal").exists(),
        "a graceful stop checkpoints and removes the WAL"
    );

    // Overwrite one page in the middle of the file with garbage.
    let mut bytes = std::fs::read(&db).unwrap();
    let page = 65_536;
    let pages = bytes.len() / page;
    assert!(pages >= 8, "{pages} pages");
    let start = pages / 2 * page;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for b in &mut bytes[start..start + page] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&db, &bytes).unwrap();

    let requests_before = f.sim.requests().len();
    let (status, log) = tokio::task::block_in_place(|| f.run_expecting_exit(&[], "damaged.log"));
    let error = fatal_error(&log);
    eprintln!("exit {:?}: {error}", status.code());
    assert_eq!(status.code(), Some(EXIT_DAMAGED), "{log}");
    assert_names_all(
        &error,
        &[
            db.to_str().unwrap(),
            "damaged",
            "quick_check",
            "backup",
            "--reset-state",
        ],
    );
    // Nothing was reset or re-read: the file keeps its (damaged) bytes, the
    // API was not called, nothing was delivered again.
    assert_eq!(
        std::fs::read(&db).unwrap(),
        bytes,
        "the database was modified"
    );
    assert_eq!(
        f.sim.requests().len(),
        requests_before,
        "the API was read again"
    );
    assert_eq!(f.lines("file"), BACKLOG);

    // `--reset-state` sets the damaged file aside (never deletes it) and
    // starts over, reading `initial_lookback` again.
    let mut daemon =
        tokio::task::block_in_place(|| f.spawn(&["run", "--reset-state"], "reset.log"));
    let aside = tokio::task::block_in_place(|| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let aside: Vec<PathBuf> = std::fs::read_dir(f.dir.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .starts_with("state.db.damaged-")
                })
                .collect();
            if !aside.is_empty() && f.lines("file") >= 2 * BACKLOG {
                return aside;
            }
            if let Some(status) = daemon.try_wait().unwrap() {
                panic!("exited with {status}: {}", f.log("reset.log"));
            }
            assert!(Instant::now() < deadline, "{}", f.log("reset.log"));
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let kept: Vec<&PathBuf> = aside
        .iter()
        .filter(|p| {
            !p.to_str().unwrap().ends_with("-wal") && !p.to_str().unwrap().ends_with("-shm")
        })
        .collect();
    assert_eq!(kept.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(kept[0]).unwrap(),
        bytes,
        "set aside byte for byte"
    );
    let log = f.log("reset.log");
    assert!(
        log.contains("set aside") && log.contains("initial_lookback"),
        "{log}"
    );
    f.sim.clone().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wal_cut_off_after_sigkill_is_refused_and_never_read_again() {
    let f = Fixture::new().await;
    tokio::task::block_in_place(|| f.run_until_delivered(&["file"], true));
    let (db, wal) = (f.db(), f.companion("-wal"));
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(wal_len > 0, "after SIGKILL the journal is in the WAL");
    // The WAL is cut off (a copy without it, a lost write): what remains
    // has no schema, only the history of having been used.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .unwrap()
        .set_len(0)
        .unwrap();
    let main_before = std::fs::read(&db).unwrap();
    let requests_before = f.sim.requests().len();

    // `status` says what is wrong, not "no such table".
    let out = tokio::task::block_in_place(|| f.claudit(&["status"]));
    let status_text = text(&out);
    eprintln!("status: exit {:?}: {status_text}", out.status.code());
    assert!(!out.status.success());
    assert!(!status_text.contains("no such table"), "{status_text}");
    assert_names_all(
        &status_text,
        &[
            db.to_str().unwrap(),
            "lost its most recent transactions",
            "state.db-wal",
        ],
    );

    // `run` refuses, twice: the refusal leaves the evidence in place.
    for attempt in ["refused.log", "refused-again.log"] {
        let (status, log) = tokio::task::block_in_place(|| f.run_expecting_exit(&[], attempt));
        let error = fatal_error(&log);
        eprintln!("run: exit {:?}: {error}", status.code());
        assert_eq!(status.code(), Some(EXIT_DAMAGED), "{log}");
        assert_names_all(
            &error,
            &[
                db.to_str().unwrap(),
                "lost its most recent transactions",
                "state.db-wal",
                "--reset-state",
                "initial_lookback",
            ],
        );
        assert!(wal.exists(), "the WAL was removed");
        assert_eq!(std::fs::read(&db).unwrap(), main_before);
    }
    assert_eq!(
        f.sim.requests().len(),
        requests_before,
        "the lookback was read again"
    );
    assert_eq!(f.lines("file"), BACKLOG, "events were delivered again");
    f.sim.clone().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_journal_row_names_the_row_the_file_and_the_fix() {
    let f = Fixture::new().await;
    tokio::task::block_in_place(|| f.run_until_delivered(&["file"], false));
    // SQLite returns what a damaged record's header says: a column of the
    // wrong type. Writing a BLOB where the raw activity (TEXT) belongs
    // reproduces that read exactly; quick_check does not look at types.
    rusqlite::Connection::open(f.db())
        .unwrap()
        .execute("UPDATE journal SET raw = x'00ff00ff' WHERE seq = 10", [])
        .unwrap();
    // A new sink reads the journal from its start and meets the row.
    f.write_config(&["file", "second"]);
    let (status, log) = tokio::task::block_in_place(|| f.run_expecting_exit(&[], "row.log"));
    let error = fatal_error(&log);
    eprintln!("exit {:?}: {error}", status.code());
    assert!(!error.contains("Invalid type: Invalid type"), "{error}");
    assert_names_all(
        &error,
        &[f.db().to_str().unwrap(), "journal", "seq 10", "raw", "BLOB"],
    );
    assert!(
        error.contains("DELETE FROM journal WHERE seq = 10"),
        "{error}"
    );
    assert_eq!(status.code(), Some(EXIT_DAMAGED), "{log}");
    // The row is still there, and so is every other.
    let store = Store::open_readonly(&f.db()).unwrap();
    assert_eq!(store.journal_rows().unwrap(), BACKLOG as i64);
    f.sim.clone().shutdown().await;
}

/// Runs `claudit run` as the unprivileged user `nobody`, whose files the
/// state is not; exit status and log.
fn run_as_nobody(f: &Fixture, log: &str) -> (ExitStatus, String) {
    let mut daemon = f
        .command(&["run"])
        .uid(65534)
        .gid(65534)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(f.dir.path().join(log)).unwrap())
        .spawn()
        .expect("start claudit as nobody");
    let status = wait(&mut daemon, Duration::from_secs(20)).unwrap_or_else(|| {
        daemon.kill().unwrap();
        panic!(
            "claudit ran as nobody on a state it cannot write: {}",
            f.log(log)
        )
    });
    (status, f.log(log))
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown_nobody(path: &Path) {
    std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
}

/// Root ignores file modes, so "read-only" is tested the way it happens in
/// production: the daemon runs as another user (systemd's DynamicUser, a
/// container's user) than the one owning the state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_the_daemon_cannot_write_names_the_path_and_the_fix() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: switching to the user nobody needs root");
        return;
    }
    let f = Fixture::new().await;
    tokio::task::block_in_place(|| f.run_until_delivered(&["file"], false));
    let (dir, db, lock) = (f.dir.path(), f.db(), f.companion(".lock"));
    // Everything is root's; nobody may read the config and the database
    // and enter the directories, but write nothing.
    chmod(dir, 0o755);
    chmod(&f.config, 0o644);
    chmod(&db, 0o644);
    chmod(&lock, 0o644);
    chmod(&dir.join("out"), 0o755);
    let before = std::fs::read(&db).unwrap();
    let requests_before = f.sim.requests().len();

    // 1. The lock file is not writable.
    let (status, log) = tokio::task::block_in_place(|| run_as_nobody(&f, "lock.log"));
    let error = fatal_error(&log);
    eprintln!("lock: exit {:?}: {error}", status.code());
    assert_eq!(status.code(), Some(EXIT_CONFIG), "{log}");
    assert_names_all(
        &error,
        &[lock.to_str().unwrap(), "65534", "chown", "DynamicUser"],
    );

    // 2. The database file is read-only.
    chown_nobody(&lock);
    let (status, log) = tokio::task::block_in_place(|| run_as_nobody(&f, "file.log"));
    let error = fatal_error(&log);
    eprintln!("database: exit {:?}: {error}", status.code());
    assert_eq!(status.code(), Some(EXIT_CONFIG), "{log}");
    assert_names_all(
        &error,
        &[
            db.to_str().unwrap(),
            "read-only",
            "65534",
            "chown",
            "DynamicUser",
        ],
    );

    // 3. The database is writable, its directory is not (SQLite creates
    // state.db-wal and state.db-shm beside it).
    chown_nobody(&db);
    let (status, log) = tokio::task::block_in_place(|| run_as_nobody(&f, "dir.log"));
    let error = fatal_error(&log);
    eprintln!("directory: exit {:?}: {error}", status.code());
    assert_eq!(status.code(), Some(EXIT_CONFIG), "{log}");
    assert_names_all(
        &error,
        &[
            dir.to_str().unwrap(),
            "state.db-wal",
            "65534",
            "chown",
            "DynamicUser",
        ],
    );

    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the database was modified"
    );
    assert_eq!(f.sim.requests().len(), requests_before, "the API was read");
    f.sim.clone().shutdown().await;
}
