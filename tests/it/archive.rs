//! The archive sink (local backend), `claudit archive verify` and
//! `claudit archive export`: sealed hours archived once each, late arrivals
//! in late segments, restart reconciliation, every kind of tampering named,
//! and the release binary against the simulator (including SIGKILLs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use claudit::archive::verify::{self, Range};
use claudit::config::{self, Config};
use claudit::sim::{SimConfig, Simulator};
use claudit::store::{JournalRecord, SharedStore, Store, WindowKind};

use crate::support::archive::{export_sink, verify_sink};
use crate::support::config::{ConfigFile, sink, source};
use crate::support::daemon::{self, Daemon};
use crate::support::journal::{self, Journal, Page};
use crate::support::sink_task::SinkTasks;
use crate::support::wait::Wait;

/// 2026-01-02T00:00:00Z.
const H0: i64 = 1_767_312_000_000;
const HOUR: i64 = 3_600_000;

struct Archive {
    dir: tempfile::TempDir,
}

impl Archive {
    fn new() -> Archive {
        let a = Archive {
            dir: tempfile::tempdir().unwrap(),
        };
        a.write_config("claudit.toml", &a.root());
        a
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("archive")
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    /// A configuration whose archive sink `arch` writes to `root`.
    fn write_config(&self, file: &str, root: &Path) -> PathBuf {
        ConfigFile::new(&self.db())
            .source(source("s1").set("api_key", "sk-ant-api01-unused"))
            .sink(
                sink("arch", "archive")
                    .set("backend", "local")
                    .path("path", root),
            )
            .write(&self.dir.path().join(file))
    }

    fn config(&self, file: &str) -> Config {
        config::load(&self.dir.path().join(file)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Journals `records` (id, created_at_ms) of source `s1` as one page of
    /// a window of `kind` over `[start, end)`; a live window moves the
    /// watermark to `end`.
    fn journal(&self, kind: WindowKind, start: i64, end: i64, records: &[(String, i64)]) {
        let recs: Vec<JournalRecord> = records
            .iter()
            .map(|(id, at)| {
                // Odd spacing and key order: the archive keeps bytes, not values.
                let raw = format!(
                    r#"{{"type": "claude_chat_created","id":"{id}",  "created_at":"{}","n":[1, 2]}}"#,
                    chrono::DateTime::from_timestamp_millis(*at)
                        .unwrap()
                        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                );
                journal::record(id, *at, raw)
            })
            .collect();
        let page = Page {
            source: "s1",
            kind,
            start_ms: start,
            end_ms: end,
            now_ms: end,
            ..Page::default()
        };
        Journal::at(&self.db()).commit(&page, &recs);
    }

    fn cursor(&self) -> i64 {
        Store::open_readonly(&self.db())
            .unwrap()
            .sink_cursor("arch")
            .unwrap()
            .seq
    }

    fn set_cursor(&self, seq: i64) {
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        conn.execute(
            "UPDATE sink_cursors SET seq = ?1 WHERE sink = 'arch'",
            [seq],
        )
        .unwrap();
    }

    /// seq of a journaled activity.
    fn seq_of(&self, id: &str) -> i64 {
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        conn.query_row(
            "SELECT seq FROM journal WHERE activity_id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// (activity_id, raw) of journal rows created in `[from, to)`.
    fn journal_raw(&self, from: i64, to: i64) -> Vec<(String, String)> {
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        let mut stmt = conn
            .prepare("SELECT activity_id, raw FROM journal WHERE created_at_ms >= ?1 AND created_at_ms < ?2")
            .unwrap();
        let mut rows: Vec<(String, String)> = stmt
            .query_map([from, to], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.sort();
        rows
    }

    fn manifest(&self) -> Vec<serde_json::Value> {
        manifest_of(&self.root())
    }

    /// Records the manifest lists, skipping a torn last line (which the
    /// sink cuts at start).
    fn records_listed(&self) -> u64 {
        std::fs::read_to_string(self.root().join("manifest.ndjson"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|e| e["records"].as_u64().unwrap())
            .sum()
    }

    /// Runs the archive sink until its cursor reaches `seq`, then stops it.
    async fn run_until(&self, seq: i64) {
        let config = self.config("claudit.toml");
        let archived_before = self.records_listed();
        let metrics = std::sync::Arc::new(claudit::metrics::Metrics::new());
        let store = SharedStore::open(&self.db()).unwrap();
        let mut task =
            SinkTasks::start_with_metrics(&store, vec![config.sinks[0].clone()], metrics.clone());
        let head = task.head.clone();
        task.until(
            &format!("the archive cursor to reach {seq}"),
            Wait::up_to(Duration::from_secs(30)).every(Duration::from_millis(20)),
            async || {
                let cursor = self.cursor();
                if cursor >= seq {
                    return Ok(());
                }
                let _ = head.send(seq as u64);
                Err(format!("archive cursor stuck at {cursor}"))
            },
        )
        .await;
        task.stop().await;
        assert_eq!(
            self.cursor(),
            seq,
            "the cursor went past the sealed records"
        );
        // The sink's Prometheus counter counts what this run archived.
        let archived = self.records_listed() - archived_before;
        let scrape = metrics.encode();
        let delivered =
            format!("claudit_sink_events_delivered_total{{sink=\"arch\"}} {archived}\n");
        assert!(scrape.contains(&delivered), "{delivered} not in\n{scrape}");
    }
}

fn manifest_of(root: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(root.join("manifest.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids(prefix: &str, n: usize, start: i64, step: i64) -> Vec<(String, i64)> {
    (0..n)
        .map(|i| (format!("{prefix}-{i:03}"), start + i as i64 * step))
        .collect()
}

/// Hours H0 and H1 sealed and archived; H2 journaled but not sealed.
async fn two_sealed_hours() -> Archive {
    let a = Archive::new();
    let mut first = ids("h0", 10, H0 + 1, 300_000);
    first.extend(ids("h1", 12, H0 + HOUR, 250_000));
    a.journal(WindowKind::Live, H0, H0 + 2 * HOUR, &first);
    a.journal(
        WindowKind::Live,
        H0 + 2 * HOUR,
        H0 + 2 * HOUR + 1_800_000,
        &ids("h2", 5, H0 + 2 * HOUR, 1000),
    );
    a.run_until(a.seq_of("h1-011")).await;
    a
}

/// Then late arrivals for H0 (a sweep) and H2 sealed.
async fn with_late_segment() -> Archive {
    let a = two_sealed_hours().await;
    add_late_arrivals_and_seal_h2(&a).await;
    a
}

/// Journals three late arrivals for H0 and seals H2, then archives them.
async fn add_late_arrivals_and_seal_h2(a: &Archive) {
    a.journal(
        WindowKind::Sweep,
        H0 - HOUR,
        H0 + 2 * HOUR,
        &ids("late", 3, H0 + 7, 60_000),
    );
    a.journal(
        WindowKind::Live,
        H0 + 2 * HOUR + 1_800_000,
        H0 + 3 * HOUR,
        &[],
    );
    a.run_until(a.seq_of("late-002")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_hours_are_archived_once_and_late_arrivals_get_a_late_segment() {
    let a = two_sealed_hours().await;
    let m = a.manifest();
    assert_eq!(m.len(), 2, "{m:?}");
    assert_eq!(m[0]["kind"], "hour");
    assert_eq!(m[0]["hours"][0], "2026-01-02T00:00:00Z");
    assert_eq!(m[0]["records"], 10);
    assert_eq!(m[0]["prev"], "0".repeat(64));
    assert_eq!(m[1]["hours"][0], "2026-01-02T01:00:00Z");
    assert_eq!(m[1]["records"], 12);
    assert_eq!(m[1]["first_created_at"], "2026-01-02T01:00:00.000Z");

    // Same journal, now with late arrivals and H2 sealed.
    add_late_arrivals_and_seal_h2(&a).await;
    let m = a.manifest();
    assert_eq!(m.len(), 4, "{m:?}");
    assert_eq!(
        (m[2]["kind"].as_str(), m[2]["records"].as_u64()),
        (Some("hour"), Some(5))
    );
    assert_eq!(m[3]["kind"], "late");
    assert_eq!(m[3]["hours"], serde_json::json!(["2026-01-02T00:00:00Z"]));
    assert_eq!(m[3]["records"], 3);
    assert!(m.iter().all(|e| e["flush"].as_u64().is_some()));

    let config = a.config("claudit.toml");
    let report = verify_sink(&config, "arch", Range::default(), None)
        .await
        .unwrap();
    assert!(report.ok(), "{report}");
    assert_eq!(report.records_checked, 30);
    assert_eq!(report.journal_rows_checked, 30);
    assert_eq!(report.segments_checked, 4);

    // Export of H0: its ten records and the three late ones, byte for byte.
    let out = a.dir.path().join("h0.ndjson");
    let range = Range {
        from_ms: Some(H0),
        to_ms: Some(H0 + HOUR),
    };
    let summary = export_sink(&config, "arch", range, &out).await.unwrap();
    assert!(summary.verification.ok());
    assert_eq!(summary.records, 13);
    let mut exported: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    exported.sort();
    let mut journaled: Vec<String> = a
        .journal_raw(H0, H0 + HOUR)
        .into_iter()
        .map(|(_, raw)| raw)
        .collect();
    journaled.sort();
    assert_eq!(exported, journaled);
    let side: serde_json::Value = serde_json::from_slice(
        &std::fs::read(claudit::archive::export::summary_path(&out)).unwrap(),
    )
    .unwrap();
    assert_eq!(side["records"], 13);
    assert_eq!(side["verification"]["first_break"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_redone_after_a_crash_archives_nothing_twice() {
    let a = with_late_segment().await;
    let before = a.manifest();
    // The manifest was appended but the cursor never moved (a kill between
    // the two), and the last append was torn mid-line.
    a.set_cursor(a.seq_of("h1-011"));
    let manifest = a.root().join("manifest.ndjson");
    let mut bytes = std::fs::read(&manifest).unwrap();
    bytes.extend_from_slice(br#"{"segment":"s1/2026-01-02/s1-late-"#);
    std::fs::write(&manifest, bytes).unwrap();
    // And a segment file a kill left unlisted.
    std::fs::write(
        a.root()
            .join("segments/s1/2026-01-02/s1-late-99-99.ndjson.gz"),
        b"x",
    )
    .unwrap();

    let report = verify_sink(&a.config("claudit.toml"), "arch", Range::default(), None)
        .await
        .unwrap();
    assert_eq!(
        report.first_break.as_ref().unwrap().check,
        "manifest line format",
        "{report}"
    );

    a.journal(
        WindowKind::Live,
        H0 + 3 * HOUR,
        H0 + 4 * HOUR,
        &ids("h3", 2, H0 + 3 * HOUR, 1000),
    );
    a.run_until(a.seq_of("h3-001")).await;
    let after = a.manifest();
    assert_eq!(after[..4], before[..], "listed lines are never rewritten");
    assert_eq!(after.len(), 5, "only the new hour: {after:?}");
    assert_eq!(after[4]["hours"][0], "2026-01-02T03:00:00Z");
    let report = verify_sink(&a.config("claudit.toml"), "arch", Range::default(), None)
        .await
        .unwrap();
    assert!(report.ok(), "{report}");
    assert_eq!(report.records_checked, 32);
    assert_eq!(
        report.unlisted_segments,
        vec!["s1/2026-01-02/s1-late-99-99.ndjson.gz"]
    );
}

/// Verifies a tampered copy of the archive: the first break's check and
/// location.
async fn tampered(a: &Archive, case: &str, tamper: impl FnOnce(&Path)) -> verify::Break {
    let copy = a.dir.path().join(format!("copy-{case}"));
    copy_dir(&a.root(), &copy);
    tamper(&copy);
    let file = format!("{case}.toml");
    a.write_config(&file, &copy);
    let report = verify_sink(&a.config(&file), "arch", Range::default(), None)
        .await
        .unwrap();
    let b = report
        .first_break
        .clone()
        .unwrap_or_else(|| panic!("{case}: verify passed:\n{report}"));
    // The binary says the same, with exit 1.
    let out = Command::new(daemon::CLAUDIT)
        .args(["archive", "verify", "--sink", "arch", "--config"])
        .arg(a.dir.path().join(&file))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{case}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("FAILED: {} at {}", b.check, b.location)),
        "{case}: {text}"
    );
    b
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn rewrite_manifest(root: &Path, edit: impl FnOnce(&mut Vec<String>)) {
    let path = root.join("manifest.ndjson");
    let mut lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    edit(&mut lines);
    std::fs::write(
        &path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_every_kind_of_tampering() {
    let a = with_late_segment().await;
    let config = a.config("claudit.toml");
    let report = verify_sink(&config, "arch", Range::default(), None)
        .await
        .unwrap();
    assert!(report.ok(), "{report}");
    let m = a.manifest();
    let segment = |i: usize| m[i]["segment"].as_str().unwrap().to_string();

    let seg1 = segment(1);
    let b = tampered(&a, "byte", |root| {
        let path = root.join("segments").join(&seg1);
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
    })
    .await;
    assert_eq!(
        (b.check, b.location.as_str()),
        ("segment sha256", "manifest.ndjson line 2")
    );
    assert_eq!(b.segment.as_deref(), Some(seg1.as_str()));
    assert_eq!(b.expected, m[1]["sha256"].as_str().unwrap());

    let seg2 = segment(2);
    let b = tampered(&a, "deleted-segment", |root| {
        std::fs::remove_file(root.join("segments").join(&seg2)).unwrap();
    })
    .await;
    assert_eq!(
        (b.check, b.location.as_str()),
        ("segment present", "manifest.ndjson line 3")
    );
    assert_eq!(b.segment.as_deref(), Some(seg2.as_str()));

    let b = tampered(&a, "reordered", |root| {
        rewrite_manifest(root, |l| l.swap(1, 2))
    })
    .await;
    assert_eq!(
        (b.check, b.location.as_str()),
        ("hash chain", "manifest.ndjson line 2")
    );

    let b = tampered(&a, "deleted-line", |root| {
        rewrite_manifest(root, |l| {
            l.remove(1);
        })
    })
    .await;
    assert_eq!(
        (b.check, b.location.as_str()),
        ("hash chain", "manifest.ndjson line 2")
    );
    assert_eq!(b.segment.as_deref(), Some(segment(2).as_str()));

    // The last line removed leaves a valid chain: the state database knows
    // the manifest's length.
    let b = tampered(&a, "deleted-last-line", |root| {
        rewrite_manifest(root, |l| {
            l.pop();
        })
    })
    .await;
    assert_eq!(b.check, "manifest length");

    // A record count edited together with a re-chained manifest still
    // fails on the segment itself.
    let b = tampered(&a, "count", |root| {
        rewrite_manifest(root, |l| {
            let mut prev = "0".repeat(64);
            for line in l.iter_mut() {
                let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
                if v["records"] == 12 {
                    v["records"] = 11.into();
                }
                v["prev"] = prev.clone().into();
                *line = claudit::archive::manifest::ManifestEntry::parse(v.to_string().as_bytes())
                    .map(|e| String::from_utf8(e.to_line()).unwrap())
                    .unwrap();
                prev = claudit::archive::manifest::line_hash(line.as_bytes());
            }
        })
    })
    .await;
    assert_eq!(
        (b.check, b.location.as_str()),
        ("record count", "manifest.ndjson line 2")
    );
}

#[test]
fn archive_config_is_validated() {
    let load = |sink: &str| {
        let text = format!(
            "[state]\npath = \"/tmp/x.db\"\n[[sources]]\nname = \"s\"\napi_key = \"k\"\n[[sinks]]\nname = \"a\"\ntype = \"archive\"\n{sink}"
        );
        config::load_str(&text, Path::new("t.toml"), &|_| None)
    };
    let cfg = load("backend = \"local\"\npath = \"/var/lib/claudit/archive\"\n").unwrap();
    assert_eq!(cfg.sinks[0].format, config::Format::Raw);
    let err = load("backend = \"local\"\npath = \"/a\"\nformat = \"ocsf\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("byte-for-byte"), "{err}");
    let err = load("backend = \"tape\"\n").unwrap_err().to_string();
    assert!(err.contains("unknown archive backend"), "{err}");
    let err = load("backend = \"s3\"\n").unwrap_err().to_string();
    assert!(err.contains("bucket"), "{err}");
    let err = load("backend = \"s3\"\nbucket = \"b-1\"\nretention = \"7y\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("object_lock_mode"), "{err}");
    let err = load("backend = \"s3\"\nbucket = \"b-1\"\nobject_lock_mode = \"forever\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("compliance"), "{err}");
    let cfg = load(
        "backend = \"s3\"\nbucket = \"audit-bucket\"\nprefix = \"claudit\"\nregion = \"eu-west-1\"\n\
         endpoint = \"http://127.0.0.1:9000\"\nobject_lock_mode = \"governance\"\nretention = \"1d\"\n",
    )
    .unwrap();
    let Some(a) = cfg.sinks[0]
        .kind
        .get::<claudit::config::ArchiveSinkConfig>()
    else {
        panic!()
    };
    let config::ArchiveBackend::S3(s3) = &a.backend else {
        panic!()
    };
    assert_eq!(s3.prefix, "claudit/");
    assert_eq!(
        s3.object_lock.unwrap().retention,
        Duration::from_secs(86_400)
    );
}

// ---- the release binary against the simulator ----------------------------

const API_KEY: &str = "sk-ant-api01-archive-test-0123456789";

fn sim_config(seed: u64) -> SimConfig {
    SimConfig {
        api_key: API_KEY.into(),
        backlog: 12_000,
        backlog_span: Duration::from_secs(3 * 3600),
        live_per_second: 20.0,
        visibility_delay: Duration::from_secs(1),
        late_fraction: 0.0,
        seed,
        ..SimConfig::default()
    }
}

struct Run {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Run {
    fn new(sim: &Simulator) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let config = ConfigFile::new(&d.join("state.db"))
            .source(
                source("sim")
                    .set("base_url", sim.base_url())
                    .set("api_key", "${ARCHIVE_TEST_KEY}")
                    .set("requests_per_minute", 600)
                    .set("window", "5s")
                    .set("settle_lag", "2s")
                    .set("sweep_horizon", "1m")
                    .set("sweep_interval", "1h")
                    .set("initial_lookback", "4h")
                    .set("poll_interval", "1s"),
            )
            .sink(
                sink("arch", "archive")
                    .set("backend", "local")
                    .path("path", &d.join("archive")),
            )
            .write(&d.join("claudit.toml"));
        Run { dir, config }
    }

    fn spawn(&self, n: usize) -> Daemon {
        let mut command = daemon::run_command(&self.config);
        command.env("ARCHIVE_TEST_KEY", API_KEY);
        Daemon::spawn(command, &self.dir.path().join(format!("daemon-{n}.log")))
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    /// Waits until the watermark is past `until_ms` and the archive's
    /// cursor is at the first record of an unsealed hour (or the head).
    fn wait_archived(&self, until_ms: i64, limit: Duration) -> i64 {
        let what = format!(
            "the sealed hours archived; logs in {}",
            self.dir.path().display()
        );
        Wait::up_to(limit)
            .every(Duration::from_millis(200))
            .until_blocking(&what, || {
                let store = Store::open_readonly(&self.db()).ok()?;
                let state = store.source_state("sim").ok()?;
                let w = state.watermark_ms.filter(|w| *w > until_ms)?;
                let cursor = store.sink_cursor("arch").unwrap().seq;
                let conn = rusqlite::Connection::open(self.db()).unwrap();
                let before_first_unsealed: i64 = conn
                    .query_row(
                        "SELECT COUNT(*) FROM journal WHERE seq > ?1 AND seq < COALESCE(
                           (SELECT MIN(seq) FROM journal WHERE created_at_ms >= ?2), 1 << 62)",
                        [cursor, w - w.rem_euclid(HOUR)],
                        |r| r.get(0),
                    )
                    .unwrap();
                (before_first_unsealed == 0 && cursor > 0).then_some(w)
            })
    }

    /// Every archived line's activity id, with its count; checks that
    /// archived = journal rows up to the cursor, exactly once, byte for byte.
    fn assert_archived_exactly_once(&self, sim: &Simulator, watermark: i64) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let env = |name: &str| (name == "ARCHIVE_TEST_KEY").then(|| API_KEY.to_string());
        let config = config::load_str(&text, &self.config, &env).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut archived: HashMap<String, usize> = HashMap::new();
        let mut record = |line: &[u8], _: i64| -> anyhow::Result<()> {
            let v: serde_json::Value = serde_json::from_slice(line)?;
            *archived
                .entry(v["id"].as_str().unwrap().to_string())
                .or_default() += 1;
            Ok(())
        };
        let report = rt
            .block_on(verify_sink(
                &config,
                "arch",
                Range::default(),
                Some(&mut record),
            ))
            .unwrap();
        assert!(report.ok(), "{report}");
        let dups: Vec<_> = archived.iter().filter(|(_, n)| **n > 1).take(5).collect();
        assert!(dups.is_empty(), "archived more than once: {dups:?}");
        // Every activity of a sealed hour the simulator made is archived.
        let sealed_end = watermark - watermark.rem_euclid(HOUR);
        let expected: Vec<String> = sim
            .activities()
            .iter()
            .filter(|a| a.created_at.timestamp_millis() < sealed_end)
            .map(|a| a.id.clone())
            .collect();
        assert!(
            expected.len() > 5000,
            "sealed activities: {}",
            expected.len()
        );
        let missing: Vec<_> = expected
            .iter()
            .filter(|id| !archived.contains_key(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "{} of {} not archived, e.g. {:?}; watermark {watermark}, manifest {:?}",
            missing.len(),
            expected.len(),
            &missing[..missing.len().min(3)],
            manifest_of(&self.dir.path().join("archive"))
                .iter()
                .map(|e| format!("{} {} {}", e["hours"], e["records"], e["kind"]))
                .collect::<Vec<_>>()
        );
        // And nothing of the unsealed hour.
        assert!(archived.len() >= expected.len());
        let out = Command::new(daemon::CLAUDIT)
            .args(["archive", "verify", "--sink", "arch", "--config"])
            .arg(&self.config)
            .env("ARCHIVE_TEST_KEY", API_KEY)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_archives_every_sealed_activity_exactly_once() {
    let sim = Simulator::start(sim_config(3)).await.unwrap();
    let run = Run::new(&sim);
    let mut daemon = run.spawn(0);
    let started = chrono::Utc::now().timestamp_millis();
    let r = &run;
    let watermark =
        tokio::task::block_in_place(|| r.wait_archived(started - 60_000, Duration::from_secs(120)));
    let status = tokio::task::block_in_place(|| daemon.stop(Duration::from_secs(30)));
    assert_eq!(status.code(), Some(0));
    tokio::task::block_in_place(|| run.assert_archived_exactly_once(&sim, watermark));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_during_archiving_lose_nothing_and_duplicate_nothing() {
    let mut cfg = sim_config(5);
    cfg.backlog = 30_000;
    let sim = Simulator::start(cfg).await.unwrap();
    let run = Run::new(&sim);
    let mut rng = 0x9E3779B97F4A7C15u64;
    for n in 0..8 {
        let mut daemon = run.spawn(n);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        tokio::time::sleep(Duration::from_millis(300 + rng % 1200)).await;
        daemon.kill(); // SIGKILL
    }
    let mut daemon = run.spawn(99);
    let started = chrono::Utc::now().timestamp_millis();
    let r = &run;
    let watermark =
        tokio::task::block_in_place(|| r.wait_archived(started - 60_000, Duration::from_secs(120)));
    daemon.kill();
    let manifest = manifest_of(&run.dir.path().join("archive"));
    assert!(manifest.len() >= 3, "{} manifest lines", manifest.len());
    tokio::task::block_in_place(|| run.assert_archived_exactly_once(&sim, watermark));
    sim.shutdown().await;
}
