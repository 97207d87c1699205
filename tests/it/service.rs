//! `claudit run` under a service manager, at the binary level: sd_notify
//! over `$NOTIFY_SOCKET` (READY, RELOADING, STOPPING), SIGHUP reload (a
//! refused one keeps the old configuration; an accepted one picks up a
//! rotated `api_key_file` and a new sink), and `claudit healthcheck`'s exit
//! codes.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use claudit::sim::{SimConfig, Simulator};
use claudit::store::Store;
use tokio::net::UnixDatagram;

use crate::support::config::{ConfigFile, sink, source};
use crate::support::daemon::{self, Daemon};
use crate::support::wait::Wait;

const KEY_OLD: &str = "sk-ant-api01-service-test-old-key-0123";
const KEY_NEW: &str = "sk-ant-api01-service-test-new-key-4567";
const BACKLOG: usize = 2_000;

/// The state database, the source reading the simulator with the key from
/// `compliance-key`, and a raw file sink per name in `sinks`.
fn config(dir: &Path, state: &str, base_url: &str, sinks: &[&str]) -> ConfigFile {
    let mut config = ConfigFile::new(&dir.join(state)).source(
        source("main")
            .set("base_url", base_url)
            .path("api_key_file", &dir.join("compliance-key"))
            .set("window", "1s")
            .set("settle_lag", "1s")
            .set("sweep_horizon", "1m")
            .set("sweep_interval", "5s")
            .set("initial_lookback", "2h")
            .set("poll_interval", "1s"),
    );
    for name in sinks {
        config = config.sink(
            sink(name, "file")
                .path("path", &dir.join(format!("out/{name}.ndjson")))
                .set("format", "raw")
                .set("batch_linger", "100ms"),
        );
    }
    config
}

/// The next notification, or a failure naming what was awaited.
async fn next_notification(socket: &UnixDatagram, waiting_for: &str) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), socket.recv(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no notification within 20 s while waiting for {waiting_for}"))
        .unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

/// Polls the state database until `done` holds (each check opens it
/// read-only, as `claudit status` does).
async fn wait_for(db: &Path, what: &str, mut done: impl FnMut(&Store) -> bool) {
    Wait::up_to(Duration::from_secs(25))
        .every(Duration::from_millis(200))
        .until(what, async || {
            Store::open_readonly(db).is_ok_and(|store| done(&store))
        })
        .await
}

fn sink_caught_up(store: &Store, sink: &str, at_least: i64) -> bool {
    let head = store.head_seq().unwrap();
    head >= at_least && store.sink_cursor(sink).unwrap().seq >= head
}

/// `api_key_id` of every journaled activity created after `after_ms` that
/// logs one of the daemon's own calls to the simulator (the generated
/// backlog has `compliance_api_accessed` records of other keys too).
fn self_activity_key_ids(store: &Store, sim: &Simulator, after_ms: i64) -> Vec<String> {
    let own: HashSet<String> = sim.requests().into_iter().map(|r| r.request_id).collect();
    store
        .read_batch(
            0,
            10_000_000,
            usize::MAX,
            &claudit::sinks::render::Payload::Raw,
        )
        .unwrap()
        .into_iter()
        .filter(|r| r.created_at_ms > after_ms)
        .filter_map(|r| {
            let v: serde_json::Value = serde_json::from_str(&r.payload).unwrap();
            let request_id = v["request_id"].as_str().unwrap_or_default();
            (v["type"] == "compliance_api_accessed" && own.contains(request_id))
                .then(|| v["api_key_id"].as_str().unwrap().to_string())
        })
        .collect()
}

fn file_ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifies_and_reloads_rotated_key_and_new_sink_on_sighup() {
    let sim = Simulator::start(SimConfig {
        api_key: KEY_OLD.into(),
        extra_api_keys: vec![KEY_NEW.into()],
        backlog: BACKLOG,
        backlog_span: Duration::from_secs(3600),
        live_per_second: 5.0,
        visibility_delay: Duration::from_millis(200),
        late_fraction: 0.0,
        rate_limit_per_minute: None,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config_path = d.join("claudit.toml");
    let db = d.join("state.db");
    std::fs::write(d.join("compliance-key"), format!("{KEY_OLD}\n")).unwrap();
    config(d, "state.db", &sim.base_url(), &["first"]).write(&config_path);
    let notify_path = d.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let log_path = d.join("daemon.log");
    let mut command = daemon::run_command(&config_path);
    command
        .env("NOTIFY_SOCKET", &notify_path)
        .env_remove("WATCHDOG_USEC")
        .env("RUST_LOG", "info");
    let mut daemon = Daemon::spawn(command, &log_path);

    let ready = next_notification(&notify, "READY=1 at start").await;
    assert_eq!(ready, "READY=1\nSTATUS=running: 1 sources, 1 sinks");
    wait_for(&db, "the backlog in sink first", |s| {
        sink_caught_up(s, "first", BACKLOG as i64)
    })
    .await;

    // A reload that moves the state database is refused; the daemon keeps
    // running the old configuration and says so in its status.
    let good_before = std::fs::read_to_string(&config_path).unwrap();
    config(d, "moved.db", &sim.base_url(), &["first"]).write(&config_path);
    daemon.signal(libc::SIGHUP);
    let msg = next_notification(&notify, "RELOADING=1 (refused reload)").await;
    assert!(msg.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{msg}");
    let msg = next_notification(&notify, "READY=1 after the refused reload").await;
    assert_eq!(
        msg,
        "READY=1\nSTATUS=running: 1 sources, 1 sinks (last reload refused; see the log)"
    );
    assert!(!d.join("moved.db").exists());
    std::fs::write(&config_path, good_before).unwrap();

    // Rotate the key file and add a sink, then reload.
    wait_for(&db, "self activities made with the old key", |s| {
        !self_activity_key_ids(s, &sim, 0).is_empty()
    })
    .await;
    let old_key_ids: BTreeSet<String> =
        self_activity_key_ids(&Store::open_readonly(&db).unwrap(), &sim, 0)
            .into_iter()
            .collect();
    assert_eq!(old_key_ids.len(), 1, "{old_key_ids:?}");
    std::fs::write(d.join("compliance-key"), format!("{KEY_NEW}\n")).unwrap();
    config(d, "state.db", &sim.base_url(), &["first", "second"]).write(&config_path);
    daemon.signal(libc::SIGHUP);
    let msg = next_notification(&notify, "RELOADING=1").await;
    assert!(msg.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{msg}");
    let msg = next_notification(&notify, "READY=1 after the reload").await;
    assert_eq!(msg, "READY=1\nSTATUS=running: 1 sources, 2 sinks");
    let reloaded_ms = chrono::Utc::now().timestamp_millis();

    // Every call after the reload uses the new key: the API logs each call
    // with the key's id, and those activities come back through the feed.
    wait_for(&db, "self activities made with the new key", |s| {
        !self_activity_key_ids(s, &sim, reloaded_ms).is_empty()
    })
    .await;
    let after = self_activity_key_ids(&Store::open_readonly(&db).unwrap(), &sim, reloaded_ms);
    assert!(
        after.iter().all(|id| !old_key_ids.contains(id)),
        "calls after the reload used the old key: {after:?}"
    );
    let head = Store::open_readonly(&db).unwrap().head_seq().unwrap();
    wait_for(&db, "both sinks caught up", |s| {
        sink_caught_up(s, "first", head) && sink_caught_up(s, "second", head)
    })
    .await;

    daemon.signal(libc::SIGTERM);
    let msg = next_notification(&notify, "STOPPING=1").await;
    assert!(msg.starts_with("STOPPING=1\n"), "{msg}");
    let status = tokio::task::spawn_blocking(move || daemon.wait(Duration::from_secs(30)))
        .await
        .unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("reload refused") && log.contains("[state] path changed"),
        "{log}"
    );
    assert!(log.contains("configuration reloaded"), "{log}");
    daemon::assert_no_secret("the daemon's log", &log, &[KEY_OLD, KEY_NEW]);

    // The journal holds each activity once; the new sink received the whole
    // journal up to its cursor (everything from before the reload too), each
    // record once; the first sink lost and repeated nothing across the reload.
    let store = Store::open_readonly(&db).unwrap();
    let journal = store
        .read_batch(
            0,
            10_000_000,
            usize::MAX,
            &claudit::sinks::render::Payload::Raw,
        )
        .unwrap();
    let unique: HashSet<&str> = journal.iter().map(|r| r.activity_id.as_str()).collect();
    assert_eq!(unique.len(), journal.len(), "duplicates in the journal");
    assert!(journal.len() > BACKLOG);
    for sink in ["first", "second"] {
        let cursor = store.sink_cursor(sink).unwrap().seq;
        assert!(cursor >= head, "{sink} at {cursor}, head was {head}");
        let expected: Vec<String> = journal
            .iter()
            .filter(|r| r.seq <= cursor)
            .map(|r| r.activity_id.clone())
            .collect();
        let delivered = file_ids(&d.join("out").join(format!("{sink}.ndjson")));
        assert_eq!(delivered, expected, "sink {sink}: journal order, each once");
    }
    sim.shutdown().await;
}

fn healthcheck(url: &str) -> std::process::Output {
    Command::new(daemon::CLAUDIT)
        .args(["healthcheck", "--url", url, "--timeout", "5s"])
        .output()
        .unwrap()
}

/// A one-connection-at-a-time HTTP server answering `status` with `body`.
fn serve(status: &'static str, body: &'static str) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let mut conn = conn.unwrap();
            let mut buf = [0u8; 2048];
            let _ = conn.read(&mut buf);
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(answer.as_bytes());
        }
    });
    format!("http://{addr}/healthz")
}

#[test]
fn healthcheck_exit_codes() {
    let out = healthcheck(&serve("200 OK", "ok"));
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");

    let url = serve("503 Service Unavailable", "sink siem: failing");
    let out = healthcheck(&url);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("unhealthy: {url}: HTTP 503 Service Unavailable: sink siem: failing\n")
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/healthz", closed.local_addr().unwrap());
    drop(closed);
    let out = healthcheck(&url);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("unhealthy: {url}: cannot connect")),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
