//! The file sink's crash recovery through the real `SinkTask` and a real
//! SQLite journal: whatever a killed batch left past the committed file
//! length (whole lines, then possibly one torn line) must end up as every
//! record exactly once, each on its own line.

use std::path::Path;

use claudit::config::{FileSinkConfig, SinkKind};
use claudit::store::Store;

use crate::support::journal::{Journal, ocsf_event};
use crate::support::sink_task::{run_sink_until, sink_settings};

fn file_sink(path: &Path) -> SinkKind {
    SinkKind::new(FileSinkConfig {
        path: path.to_path_buf(),
        max_bytes: 0,
        max_files: 0,
    })
}

/// Each line's `metadata.uid`, failing on a line that is not JSON.
fn uids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            v["metadata"]["uid"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Journals five records, writes `whole` of their lines plus `torn` bytes of
/// the next one past a committed length of 0 (what a SIGKILL during a write
/// leaves), then runs the sink to the head of the journal.
async fn recover_after(whole: usize, torn: usize) -> Vec<String> {
    let records: Vec<(String, String)> = (0..5)
        .map(|i| (format!("a{i}"), ocsf_event(&format!("a{i}"), 40 + i * 7)))
        .collect();
    let j = Journal::with_payloads(&records);
    let out = j.dir().join("events.ndjson");
    let mut bytes = Vec::new();
    for (_, payload) in &records[..whole] {
        bytes.extend_from_slice(payload.as_bytes());
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(&records[whole].1.as_bytes()[..torn]);
    std::fs::write(&out, &bytes).unwrap();
    // The cursor as the previous run committed it: nothing delivered, file
    // length 0.
    Store::open(&j.path)
        .unwrap()
        .advance_sink("file", 0, Some(0), 0, &[], 1)
        .unwrap();

    let head = j.head();
    run_sink_until(
        &j,
        sink_settings("file", file_sink(&out), 2, 1 << 20),
        |j| j.cursor("file").seq == head,
    )
    .await;
    uids(&out)
}

#[tokio::test]
async fn a_torn_line_after_whole_lines_is_cut_and_rewritten_once() {
    // The torn record is the third: the lines before it are kept, and it is
    // the one that crosses the file's tail (the case a byte-limited read
    // missed, leaving a torn line in the middle of the file).
    let expected: Vec<String> = (0..5).map(|i| format!("a{i}")).collect();
    assert_eq!(recover_after(2, 30).await, expected);
}

#[tokio::test]
async fn a_torn_first_line_is_cut_and_rewritten_once() {
    let expected: Vec<String> = (0..5).map(|i| format!("a{i}")).collect();
    assert_eq!(recover_after(0, 10).await, expected);
}

#[tokio::test]
async fn whole_lines_of_an_uncommitted_batch_are_not_written_twice() {
    let expected: Vec<String> = (0..5).map(|i| format!("a{i}")).collect();
    assert_eq!(recover_after(3, 0).await, expected);
}

/// The release daemon writes its file sink on a 2 MiB tmpfs that fills up
/// in the middle of a batch. While the disk is full the sink reports the
/// error (`/readyz` 503 naming it, `status`, `claudit_sink_retries_total`,
/// a warning per attempt) and each retry first reconciles the file;
/// once space is freed every journaled activity is in the file exactly once,
/// in journal order, with no torn line, and the committed length is the
/// file's length. Needs root to mount the tmpfs; skipped otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_mid_batch_neither_tears_nor_duplicates() {
    use claudit::sim::{SimConfig, Simulator};

    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("disk")) else {
        return;
    };
    // About 300 KB stay free: a few batches fit, then one is cut short.
    let filler = disk.path.join("filler");
    fill_leaving(&filler, &disk.path, 300 << 10);

    let sim = Simulator::start(SimConfig {
        api_key: DISK_TEST_KEY.into(),
        backlog: 3_000,
        backlog_span: std::time::Duration::from_secs(30 * 60),
        live_per_second: 0.0,
        late_fraction: 0.0,
        rate_limit_per_minute: None,
        self_activity: false,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let out = disk.path.join("events.ndjson");
    let config = dir.path().join("claudit.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[state]
path = "{state}/state.db"

[[sources]]
name = "acme"
base_url = "{api}"
api_key = "${{DISK_TEST_KEY}}"
window = "1s"
settle_lag = "1s"
poll_interval = "1s"
initial_lookback = "1h"

[[sinks]]
name = "file"
type = "file"
path = "{out}"
format = "raw"
max_bytes = "0"
batch_max_events = 200
batch_linger = "0s"
# The small disk holds the activities of this test; findings would fill it.
streams = ["activities"]

[server]
listen = "127.0.0.1:0"
ready_max_sink_delay = "1s"
"#,
            state = dir.path().display(),
            api = sim.base_url(),
            out = out.display(),
        ),
    )
    .unwrap();
    let log = dir.path().join("daemon.log");
    let daemon = Daemon::spawn(&config, &log);
    let ops = daemon.ops().await;

    // 1. The disk fills in the middle of a batch: the sink retries, and
    // says why everywhere an operator looks.
    let retries = "claudit_sink_retries_total{sink=\"file\"}";
    wait_until("two failed writes", 30, async || {
        (ops.metric(retries).await? >= 2.0).then_some(())
    })
    .await;
    let detail = wait_until("/readyz to fail on the sink", 30, async || {
        let (status, body) = ops.get("/readyz").await;
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let check = body["checks"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == "sink file")?
            .clone();
        (status == 503 && check["ok"] == false).then(|| check["detail"].to_string())
    })
    .await;
    eprintln!("/readyz while the disk is full: {detail}");
    assert!(detail.contains("No space left on device"), "{detail}");
    assert!(detail.contains(&out.display().to_string()), "{detail}");
    let status = claudit_status(&config);
    assert!(status.contains("No space left on device"), "{status}");

    // 2. Space is freed: the sink catches up by itself.
    std::fs::remove_file(&filler).unwrap();
    let db = dir.path().join("state.db");
    wait_until("the sink to deliver the backlog", 60, async || {
        let store = Store::open_readonly(&db).ok()?;
        let head = store.head_seq().ok()?;
        (head >= 3_000 && store.sink_cursor("file").ok()?.seq == head).then_some(())
    })
    .await;
    wait_until("/readyz to recover", 30, async || {
        (ops.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    daemon.stop();
    let logs: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(logs.iter().any(|v| {
        v["sink"] == "file"
            && v["level"] == "WARN"
            && v["message"] == "delivery failed; the batch stays in the journal and is retried"
            && v["error"]
                .as_str()
                .is_some_and(|e| e.contains("No space left on device"))
    }));
    assert!(
        logs.iter().any(|v| v["sink"] == "file"
            && v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("reconciled the file with the cursor"))),
        "the retry reconciled the file first"
    );

    // 3. The file holds the journal exactly once, in order, whole lines.
    let store = Store::open_readonly(&db).unwrap();
    let cursor = store.sink_cursor("file").unwrap();
    let journal_ids = journal_ids(&db, cursor.seq);
    let bytes = std::fs::read(&out).unwrap();
    let mut ids = Vec::new();
    let mut torn = 0;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let whole = line.ends_with(b"\n");
        match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(v) if whole => ids.push(v["id"].as_str().unwrap().to_string()),
            _ => torn += 1,
        }
    }
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    let duplicates = ids.len() - distinct.len();
    eprintln!(
        "file sink after a full disk: {} lines, {duplicates} duplicate lines, {torn} torn lines, {} journaled",
        ids.len() + torn,
        journal_ids.len()
    );
    assert_eq!((duplicates, torn), (0, 0), "duplicate and torn lines");
    assert_eq!(ids, journal_ids, "the file holds the journal in order");
    assert_eq!(cursor.file_offset, Some(bytes.len() as i64));
    sim.shutdown().await;
}

const DISK_TEST_KEY: &str = "sk-ant-api01-disk-full-test-0123456789";

/// A 2 MiB tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    /// Mounts it at `path`, or prints why not and returns None.
    fn mount(path: &Path) -> Option<SmallDisk> {
        std::fs::create_dir_all(path).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m,mode=0755", "claudit-test"])
            .arg(path)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallDisk {
                path: path.to_path_buf(),
            }),
            Ok(o) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// Writes `file` so that about `leave` bytes stay free on `mount`.
fn fill_leaving(file: &Path, mount: &Path, leave: u64) {
    let c = std::ffi::CString::new(mount.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs fills the struct it is given; the path is NUL-terminated.
    let free = unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        assert_eq!(libc::statvfs(c.as_ptr(), &mut s), 0);
        s.f_bavail as u64 * s.f_frsize as u64
    };
    std::fs::write(file, vec![b'.'; free.saturating_sub(leave) as usize]).unwrap();
}

/// The activity ids of the journal up to `seq`, in journal order.
fn journal_ids(db: &Path, up_to: i64) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT activity_id FROM journal WHERE seq <= ?1 ORDER BY seq")
        .unwrap();
    stmt.query_map([up_to], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// `claudit status` for `config`: its standard output.
fn claudit_status(config: &Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_claudit"))
        .args(["status", "--config"])
        .arg(config)
        .env("DISK_TEST_KEY", DISK_TEST_KEY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The release daemon, stopped with SIGTERM when the test is done.
struct Daemon {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Daemon {
    fn spawn(config: &Path, log: &Path) -> Daemon {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_claudit"))
            .args(["--log-format", "json", "run", "--config"])
            .arg(config)
            .env("DISK_TEST_KEY", DISK_TEST_KEY)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start claudit");
        Daemon {
            child,
            log: log.to_path_buf(),
        }
    }

    /// The operations endpoint, once the daemon logs its address.
    async fn ops(&self) -> Ops {
        let address = wait_until("the listening address in the log", 10, async || {
            let text = std::fs::read_to_string(&self.log).ok()?;
            text.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["message"] == "serving /metrics, /healthz and /readyz")
                .map(|v| v["address"].as_str().unwrap().to_string())
        })
        .await;
        Ops {
            http: reqwest::Client::new(),
            base: format!("http://{address}"),
        }
    }

    fn stop(mut self) {
        // SAFETY: signalling the child process this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "daemon did not stop on SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Ops {
    http: reqwest::Client,
    base: String,
}

impl Ops {
    /// Status and body of a GET.
    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// One sample (`name{labels}`) of a scrape.
    async fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = self.get("/metrics").await;
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
            rest.split(' ').next()?.parse().ok()
        })
    }
}

/// Polls `check` every 100 ms until it returns `Some`; fails after `secs`.
async fn wait_until<T>(what: &str, secs: u64, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
