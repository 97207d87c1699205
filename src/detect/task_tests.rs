//! The detection task against a real state database: findings journaled
//! once with the cursor, windows rebuilt after a crash, late and
//! backfilled activity, and the journal's invariants for findings.

use serde_json::{Value, json};

use super::*;
use crate::detect::cli::only_rule;
use crate::detect::load::load_all;
use crate::detect::settings::DetectionSettings;
use crate::store::{JournalRecord, NewFinding, PageCommit, Retained, WindowKind, WindowRow};

const MIN: i64 = 60_000;
/// 2026-12-01T00:00:00Z
const T0: i64 = 1_796_083_200_000;

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db")).unwrap();
    (dir, store)
}

fn engine(rule: &str) -> Detector {
    let mut set = load_all(&[]).unwrap();
    only_rule(&mut set, rule).unwrap();
    Detector::new(Engine::new(&set, &DetectionSettings::default()).unwrap())
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A failed SSO sign-in of `who` at `created_ms`.
fn failure(id: &str, who: &str, created_ms: i64) -> JournalRecord {
    let raw = json!({
        "id": id,
        "type": "sso_login_failed",
        "created_at": rfc3339(created_ms),
        "organization_id": "org_1",
        "actor": {"type": "user_actor", "email_address": who, "ip_address": "203.0.113.7"},
    });
    JournalRecord {
        activity_id: id.to_string(),
        created_at_ms: created_ms,
        activity_type: "sso_login_failed".into(),
        raw: raw.to_string(),
        context: None,
        ocsf: None,
    }
}

/// Journals `records` as one drained page of a `kind` window read at `now`.
fn journal(store: &mut Store, kind: WindowKind, records: &[JournalRecord], now: i64) {
    let start = records.iter().map(|r| r.created_at_ms).min().unwrap();
    let end = records.iter().map(|r| r.created_at_ms).max().unwrap() + 1;
    if kind == WindowKind::Backfill {
        store.add_backfill("src", start, end).unwrap();
    }
    let window = WindowRow::fresh(kind, start, end);
    store
        .commit_page(&PageCommit {
            source: "src",
            window: &window,
            next_cursor: None,
            read_from_ms: None,
            done: true,
            next_span_ms: None,
            records,
            request_ids: &[],
            now_ms: now,
        })
        .unwrap();
}

fn failures(prefix: &str, who: &str, from: i64, n: usize) -> Vec<JournalRecord> {
    (0..n)
        .map(|i| failure(&format!("{prefix}{i}"), who, from + i as i64 * MIN))
        .collect()
}

fn findings(store: &Store) -> Vec<crate::store::StoredFinding> {
    store.read_findings(0, 1000).unwrap()
}

#[test]
fn findings_are_journaled_with_the_cursor_and_kept_once() {
    let (_dir, mut store) = open();
    journal(
        &mut store,
        WindowKind::Live,
        &failures("a", "ann@example.com", T0, 5),
        T0 + 10 * MIN,
    );
    let mut e = engine("auth-failure-burst");
    rebuild(&mut store, &mut e, T0 + 10 * MIN).unwrap();
    let done = step(&mut store, &mut e, 0, BATCH_ROWS, T0 + 10 * MIN).unwrap();
    assert_eq!((done.rows, done.journaled.len(), done.repeated), (5, 1, 0));
    assert_eq!(store.detection_cursor().unwrap().seq, done.cursor);
    let stored = findings(&store);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].rule_id, "auth-failure-burst");
    let ocsf: Value = serde_json::from_str(&stored[0].ocsf).unwrap();
    assert_eq!(ocsf["class_uid"], 2004);
    let related = ocsf["finding_info"]["related_events"].as_array().unwrap();
    assert_eq!(related.len(), 5);
    for r in related {
        assert!(store.is_journaled(r["uid"].as_str().unwrap()).unwrap());
    }
    assert!(
        ocsf["finding_info"].get("types").is_none(),
        "a live finding"
    );

    // Nothing after the cursor: nothing evaluated again.
    let again = step(&mut store, &mut e, done.cursor, BATCH_ROWS, T0 + 11 * MIN).unwrap();
    assert_eq!(again.rows, 0);

    // A crash between evaluation and commit means the rows are evaluated
    // again from the old cursor by a fresh engine: same uid, kept once.
    let mut fresh = engine("auth-failure-burst");
    let redo = step(&mut store, &mut fresh, 0, BATCH_ROWS, T0 + 12 * MIN).unwrap();
    assert_eq!((redo.journaled.len(), redo.repeated), (0, 1));
    assert_eq!(findings(&store).len(), 1);
}

#[test]
fn a_window_cut_by_a_crash_fires_once_after_the_rebuild() {
    let (_dir, mut store) = open();
    let who = "bob@example.com";
    journal(
        &mut store,
        WindowKind::Live,
        &failures("a", who, T0, 3),
        T0 + 5 * MIN,
    );
    let mut e = engine("auth-failure-burst");
    let done = step(&mut store, &mut e, 0, BATCH_ROWS, T0 + 5 * MIN).unwrap();
    assert_eq!((done.rows, done.journaled.len()), (3, 0));
    drop(e); // kill -9: the three counted failures live only in the journal

    let mut e = engine("auth-failure-burst");
    let rebuilt = rebuild(&mut store, &mut e, T0 + 6 * MIN).unwrap();
    assert_eq!(
        rebuilt,
        Rebuilt {
            cursor: done.cursor,
            restored: 0,
            replayed: 3
        }
    );
    journal(
        &mut store,
        WindowKind::Live,
        &failures("b", who, T0 + 3 * MIN, 2),
        T0 + 7 * MIN,
    );
    let done = step(&mut store, &mut e, rebuilt.cursor, BATCH_ROWS, T0 + 7 * MIN).unwrap();
    assert_eq!(
        done.journaled.len(),
        1,
        "the fifth failure completes the window"
    );
    assert_eq!(done.journaled[0].related_count, 5);
    drop(e);

    // Killed again: the journaled finding suppresses a repeat, the window
    // is rebuilt, and a sixth failure within the suppression fires nothing.
    let mut e = engine("auth-failure-burst");
    let rebuilt = rebuild(&mut store, &mut e, T0 + 8 * MIN).unwrap();
    assert_eq!((rebuilt.restored, rebuilt.replayed), (1, 5));
    journal(
        &mut store,
        WindowKind::Live,
        &failures("c", who, T0 + 6 * MIN, 1),
        T0 + 9 * MIN,
    );
    let done = step(&mut store, &mut e, rebuilt.cursor, BATCH_ROWS, T0 + 9 * MIN).unwrap();
    assert_eq!((done.rows, done.journaled.len()), (1, 0));
    assert_eq!(findings(&store).len(), 1);
}

#[test]
fn a_late_activity_completes_its_window_and_a_re_read_counts_nothing() {
    let (_dir, mut store) = open();
    let who = "cy@example.com";
    // Four failures at minutes 0, 1, 3, 4; the one at minute 2 is late.
    let mut on_time = failures("a", who, T0, 5);
    let late = on_time.remove(2);
    journal(&mut store, WindowKind::Live, &on_time, T0 + 6 * MIN);
    let mut e = engine("auth-failure-burst");
    let done = step(&mut store, &mut e, 0, BATCH_ROWS, T0 + 6 * MIN).unwrap();
    assert!(done.journaled.is_empty());
    // The sweep re-reads two of them and finds the late one.
    journal(
        &mut store,
        WindowKind::Sweep,
        &[on_time[0].clone(), late, on_time[3].clone()],
        T0 + 40 * MIN,
    );
    let done = step(&mut store, &mut e, done.cursor, BATCH_ROWS, T0 + 40 * MIN).unwrap();
    assert_eq!(done.rows, 1, "re-read ids are not journaled again");
    assert_eq!(done.journaled.len(), 1);
    assert_eq!(done.journaled[0].related_count, 5);
    // Anchored at the newest activity of the window it completed.
    assert_eq!(&*done.journaled[0].anchor.id, "a4");
    assert!(
        !done.journaled[0].retrospective,
        "within the late-arrival allowance"
    );
}

#[test]
fn backfilled_history_gives_retrospective_findings() {
    let (_dir, mut store) = open();
    let old = T0 - 30 * 24 * 60 * MIN;
    journal(
        &mut store,
        WindowKind::Backfill,
        &failures("h", "dee@example.com", old, 5),
        T0,
    );
    let mut e = engine("auth-failure-burst");
    let done = step(&mut store, &mut e, 0, BATCH_ROWS, T0).unwrap();
    assert_eq!(done.journaled.len(), 1);
    let stored = findings(&store);
    let ocsf: Value = serde_json::from_str(&stored[0].ocsf).unwrap();
    assert_eq!(ocsf["finding_info"]["types"], json!(["Retrospective"]));
    let plain: Value = serde_json::from_str(&stored[0].plain).unwrap();
    assert_eq!(plain["retrospective"], true);
    assert!(stored[0].retrospective);

    // A restart mid-backfill re-feeds the backfilled rows (journaled
    // recently, created long ago) so their windows are not lost.
    journal(
        &mut store,
        WindowKind::Backfill,
        &failures("i", "eve@example.com", old, 3),
        T0 + MIN,
    );
    let done = step(&mut store, &mut e, done.cursor, BATCH_ROWS, T0 + MIN).unwrap();
    assert!(done.journaled.is_empty());
    let mut e = engine("auth-failure-burst");
    let rebuilt = rebuild(&mut store, &mut e, T0 + 2 * MIN).unwrap();
    assert_eq!(rebuilt.replayed, 8);
    journal(
        &mut store,
        WindowKind::Backfill,
        &failures("j", "eve@example.com", old + 3 * MIN, 2),
        T0 + 3 * MIN,
    );
    let done = step(&mut store, &mut e, rebuilt.cursor, BATCH_ROWS, T0 + 3 * MIN).unwrap();
    assert_eq!(done.journaled.len(), 1);
    assert!(done.journaled[0].retrospective);
}

#[test]
fn a_finding_naming_an_activity_not_in_the_journal_is_refused() {
    let (_dir, mut store) = open();
    journal(
        &mut store,
        WindowKind::Live,
        &failures("a", "fay@example.com", T0, 1),
        T0,
    );
    let finding = NewFinding {
        uid: "claudit_finding_x".into(),
        rule_id: "r".into(),
        severity: "low".into(),
        anchor_id: "a0".into(),
        anchor_created_ms: T0,
        first_seen_ms: T0,
        last_seen_ms: T0,
        detected_ms: T0,
        retrospective: false,
        related: vec!["a0".into(), "missing".into()],
        plain: "{}".into(),
        ocsf: "{}".into(),
    };
    let err = store
        .commit_detections(&DetectionCommit {
            cursor_seq: 1,
            evaluated: 1,
            errors: 0,
            findings: &[finding],
            now_ms: T0,
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("missing is not in the journal"),
        "{err}"
    );
    assert_eq!(
        store.detection_cursor().unwrap().seq,
        0,
        "nothing committed"
    );
    assert!(findings(&store).is_empty());
}

#[test]
fn pruning_keeps_unevaluated_rows_and_the_activities_of_kept_findings() {
    let (_dir, mut store) = open();
    journal(
        &mut store,
        WindowKind::Live,
        &failures("z", "zed@example.com", T0 - 10 * MIN, 2),
        T0,
    );
    journal(
        &mut store,
        WindowKind::Live,
        &failures("a", "gus@example.com", T0, 5),
        T0,
    );
    journal(
        &mut store,
        WindowKind::Live,
        &failures("b", "hal@example.com", T0 + 60 * MIN, 2),
        T0,
    );
    store.advance_sink("file", 9, None, 9, &[], T0).unwrap();
    let mut e = engine("auth-failure-burst");
    let done = step(&mut store, &mut e, 0, 7, T0).unwrap();
    assert_eq!(done.journaled.len(), 1);
    let retained = Retained {
        sinks: &["file"],
        finding_sinks: &["file"],
        detection: true,
    };
    // The finding is not delivered yet: it stays, and so do its five
    // activities, though they are past the cutoff; the two rows detection
    // has not evaluated stay too.
    assert_eq!(store.prune_retained(&retained, T0 + 120 * MIN).unwrap(), 2);
    assert_eq!(store.journal_rows().unwrap(), 7);
    assert_eq!(findings(&store).len(), 1);
    // Delivered: the finding goes with its activities.
    store
        .conn()
        .execute(
            "INSERT INTO sink_cursors (sink, seq) VALUES ('file.findings', 1)",
            [],
        )
        .unwrap();
    assert_eq!(store.prune_retained(&retained, T0 + 120 * MIN).unwrap(), 5);
    assert!(findings(&store).is_empty());
    assert_eq!(store.journal_rows().unwrap(), 2);
    // Evaluated: they go too.
    step(&mut store, &mut e, done.cursor, BATCH_ROWS, T0).unwrap();
    assert_eq!(store.prune_retained(&retained, T0 + 120 * MIN).unwrap(), 2);
}

#[test]
fn findings_evaluations_errors_and_lag_reach_the_metrics() {
    let (_dir, mut store) = open();
    let mut rows = failures("a", "ivy@example.com", T0, 5);
    rows.push(JournalRecord {
        activity_id: "not-an-object".into(),
        created_at_ms: T0 + 5 * MIN,
        activity_type: "unknown".into(),
        raw: "[1, 2]".into(),
        context: None,
        ocsf: None,
    });
    rows.extend(failures("b", "jon@example.com", T0, 1));
    journal(&mut store, WindowKind::Live, &rows, T0 + 10 * MIN);
    let mut e = engine("auth-failure-burst");
    let done = step(&mut store, &mut e, 0, 6, T0 + 15 * MIN).unwrap();
    assert_eq!((done.rows, done.errors, done.journaled.len()), (6, 1, 1));
    assert_eq!(
        done.lag_ms,
        5 * MIN,
        "one row journaled 5 minutes ago waits"
    );
    // The families as the process registry holds them (`metrics.rs`).
    let families = crate::detect::metrics::DetectionMetrics::default();
    let mut registry = prometheus_client::registry::Registry::default();
    families.register(&mut registry);
    // The task's handles: a clone, counting into the registered families.
    let handles = families.clone();
    handles.record(&done);
    // The count rule's windows hold the 5 failures the step evaluated
    // (its 6 rows end with the unreadable one).
    assert_eq!(e.engine.held_by_rule(), vec![("auth-failure-burst", 5)]);
    handles.windows(&e.engine.held_by_rule());
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        r#"claudit_detection_window_activities{rule="auth-failure-burst"} 5"#,
        r#"claudit_findings_total{rule="auth-failure-burst",severity="medium"} 1"#,
        "claudit_detection_evaluated_total 5",
        "claudit_detection_errors_total 1",
        "claudit_detection_findings_repeated_total 0",
        "claudit_detection_lag_seconds 300.0",
        "claudit_detection_failing 0",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    let cursor = store.detection_cursor().unwrap();
    assert_eq!((cursor.evaluated, cursor.errors), (5, 1));
    // A reload that turns the rule off drops its series.
    handles.windows::<&str>(&[]);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        !text.contains("claudit_detection_window_activities{"),
        "{text}"
    );
}

#[test]
fn what_a_stopping_task_frees_is_freed_on_another_thread() {
    struct Probe(std::sync::mpsc::Sender<std::thread::ThreadId>);
    impl Drop for Probe {
        fn drop(&mut self) {
            let _ = self.0.send(std::thread::current().id());
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    free_in_background(Probe(tx));
    let dropped_on = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the value is dropped");
    assert_ne!(dropped_on, std::thread::current().id());
}

/// At shutdown the sources stop first, so the detection task's wake-up
/// channel is closed and it falls back to polling every `IDLE_CHECK`. The
/// shutdown still ends that wait at once: with the clock paused (it moves
/// only to the next timer when the runtime idles), no time passes between
/// the cancellation and the task's end.
#[tokio::test(start_paused = true)]
async fn a_task_whose_sources_stopped_ends_at_once_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(Store::open(&path).unwrap());
    let mut rules = load_all(&[]).unwrap();
    only_rule(&mut rules, "auth-failure-burst").unwrap();
    let metrics = DetectionMetrics::default();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let window_series = || {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text.lines()
            .filter(|l| l.starts_with("claudit_detection_window_activities{"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let task = DetectionTask {
        rules,
        settings: DetectionSettings::default(),
        store: SharedStore::open(&path).unwrap(),
        // Every source is gone: `changed()` fails at once.
        journal_head: watch::channel(0).1,
        findings_head: watch::channel(0).0,
        metrics: metrics.clone(),
        directory: None,
    };
    let cancel = CancellationToken::new();
    let run = tokio::spawn(task.run(cancel.clone()));
    // Several polling rounds: the task is waiting in its fallback.
    tokio::time::sleep(IDLE_CHECK * 3 + Duration::from_millis(1500)).await;
    assert_eq!(
        window_series(),
        [r#"claudit_detection_window_activities{rule="auth-failure-burst"} 0"#],
        "set after the start-up rebuild"
    );
    let cancelled_at = tokio::time::Instant::now();
    cancel.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(cancelled_at.elapsed(), Duration::ZERO);
    // Its windows are gone with it (a reload turning detections off must
    // not leave the last values).
    assert!(window_series().is_empty(), "{:?}", window_series());
}
