//! `claudit backfill` off a terminal, at the binary level: periodic progress
//! log lines, then Ctrl-C (SIGINT) stops it cleanly with the command that
//! resumes, and that command completes the range without duplicates.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use claudit::sim::{Fault, SimConfig, Simulator};
use claudit::store::Store;

use crate::support::config::{ConfigFile, sink, source};
use crate::support::daemon;

const KEY: &str = "sk-ant-api01-backfill-test-secret-key";

fn write_config(dir: &std::path::Path, base_url: &str) -> std::path::PathBuf {
    ConfigFile::new(&dir.join("state.db"))
        .source(
            source("acme")
                .set("base_url", base_url)
                .set("api_key", "${BACKFILL_TEST_KEY}")
                .set("page_size", 100),
        )
        .sink(sink("archive", "file").path("path", &dir.join("events.ndjson")))
        .write(&dir.join("claudit.toml"))
}

fn backfill(args: &[String]) -> Command {
    let mut cmd = Command::new(daemon::CLAUDIT);
    cmd.args(["--log-format", "json", "backfill"])
        .args(args)
        .args(["--progress-every", "100ms"])
        .env("BACKFILL_TEST_KEY", KEY)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// The `backfill progress` log lines in `stderr`, as JSON.
fn progress_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "backfill progress")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_progress_stops_on_sigint_and_resumes_without_duplicates() {
    let sim = Simulator::start(SimConfig {
        api_key: KEY.into(),
        backlog: 4_000,
        backlog_span: Duration::from_secs(4 * 3600),
        live_per_second: 0.0,
        late_fraction: 0.0,
        self_activity: false,
        rate_limit_per_minute: None,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    // Slow pages, so the first run is still reading when it is interrupted
    // (the second run uses up what is left of them).
    sim.inject(vec![Fault::Delay(Duration::from_millis(150)); 24]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.base_url());
    let now = chrono::Utc::now();
    let since = claudit::model::format_time(now - chrono::Duration::hours(3));
    let args: Vec<String> = [
        "--config",
        config.to_str().unwrap(),
        "--source",
        "acme",
        "--since",
        &since,
    ]
    .map(String::from)
    .to_vec();

    // First run: wait for a progress line past 0% (a chunk of the range
    // read, so an ETA is known), then Ctrl-C.
    let mut child = backfill(&args).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let first_stderr = tokio::task::spawn_blocking(move || {
        let mut seen = String::new();
        let mut lines = BufReader::new(stderr).lines();
        let mut interrupted = false;
        for line in lines.by_ref() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            let progressed = progress_lines(&line)
                .first()
                .is_some_and(|v| v["percent"].as_u64().unwrap() > 0);
            if progressed && !interrupted {
                // SAFETY: kill(2) on our own child's pid.
                assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
                interrupted = true;
            }
        }
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        (child.wait().unwrap(), stdout, seen)
    });
    let (status, stdout, stderr) = first_stderr.await.unwrap();
    assert_eq!(status.code(), Some(130), "{stdout}{stderr}");
    let lines = progress_lines(&stderr);
    assert!(lines.len() >= 2, "periodic progress lines: {stderr}");
    for line in &lines {
        let f = line;
        assert_eq!(f["source"], "acme", "{line}");
        assert!(f["percent"].as_u64().unwrap() <= 100, "{line}");
        assert!(
            f["read_up_to"].is_string() && f["eta"].is_string(),
            "{line}"
        );
    }
    let last = lines.last().unwrap();
    assert!(last["percent"].as_u64().unwrap() < 100, "{last}");
    assert!(
        lines.iter().any(|l| l["eta"] != "unknown"),
        "an ETA once progress is made: {stderr}"
    );
    let resume = stdout
        .lines()
        .find_map(|l| l.split_once("to resume, run: claudit backfill "))
        .unwrap_or_else(|| panic!("no resume command: {stdout}"))
        .1
        .to_string();
    daemon::assert_no_secret("backfill's stdout", &stdout, &[KEY]);
    daemon::assert_no_secret("backfill's stderr", &stderr, &[KEY]);

    // Second run: exactly the printed command.
    let resume_args: Vec<String> = resume.split(' ').map(String::from).collect();
    let until = resume_args[resume_args.iter().position(|a| a == "--until").unwrap() + 1].clone();
    let out = tokio::task::spawn_blocking(move || backfill(&resume_args).output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("resuming backfill of acme"), "{stdout}");
    assert!(stdout.contains("backfill complete"), "{stdout}");
    let last = progress_lines(&stderr).pop().expect("progress lines");
    assert_eq!(last["percent"], 100, "{last}");

    // The range is in the journal exactly once: nothing missing, nothing twice.
    let since_ms = claudit::model::parse_time(&since)
        .unwrap()
        .timestamp_millis();
    let journal = Store::open_readonly(&dir.path().join("state.db"))
        .unwrap()
        .read_batch(
            0,
            1_000_000,
            usize::MAX,
            &claudit::sinks::render::Payload::Raw,
        )
        .unwrap();
    let ids: BTreeSet<&str> = journal.iter().map(|r| r.activity_id.as_str()).collect();
    assert_eq!(ids.len(), journal.len(), "duplicates in the journal");
    let until_ms = claudit::model::parse_time(&until)
        .unwrap()
        .timestamp_millis();
    let expected: BTreeSet<String> = sim
        .activities()
        .into_iter()
        .filter(|a| (since_ms..until_ms).contains(&a.created_at.timestamp_millis()))
        .map(|a| a.id)
        .collect();
    assert!(expected.len() > 2_500, "{}", expected.len());
    assert_eq!(
        ids,
        expected.iter().map(String::as_str).collect(),
        "exactly the range"
    );
}
