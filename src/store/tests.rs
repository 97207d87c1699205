use super::*;
use crate::ocsf::Mapper;
use crate::sinks::render::Payload;

fn record(id: &str, created_at_ms: i64) -> JournalRecord {
    JournalRecord {
        activity_id: id.to_string(),
        created_at_ms,
        activity_type: "claude_chat_created".into(),
        raw: format!(r#"{{"id":"{id}"}}"#),
        context: None,
        ocsf: Some(format!(r#"{{"metadata":{{"uid":"{id}"}}}}"#)),
    }
}

fn live(start_ms: i64, end_ms: i64) -> WindowRow {
    WindowRow::fresh(WindowKind::Live, start_ms, end_ms)
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db")).unwrap();
    (dir, store)
}

#[test]
fn file_is_private_and_in_wal_mode() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, store) = open();
    let mode = std::fs::metadata(dir.path().join("state.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let jm: String = store
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(jm, "wal");
    let sync: i64 = store
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "synchronous=FULL");
}

#[test]
fn page_commit_is_atomic_with_window_position_and_dedupes() {
    let (_dir, mut store) = open();
    let w = live(0, 1000);
    let recs = vec![record("a", 900), record("b", 800)];
    let out = store
        .commit_page(&PageCommit {
            source: "s",
            window: &w,
            next_cursor: Some("cur1".into()),
            read_from_ms: None,
            done: false,
            next_span_ms: None,
            records: &recs,
            request_ids: &["req_1".into()],
            now_ms: 5,
        })
        .unwrap();
    assert_eq!(
        out,
        PageOutcome {
            inserted: 2,
            duplicates: 0
        }
    );
    let open = store.open_window("s", WindowKind::Live).unwrap().unwrap();
    assert_eq!(open.cursor.as_deref(), Some("cur1"));
    assert_eq!((open.pages, open.records), (1, 2));
    assert_eq!(store.source_state("s").unwrap().watermark_ms, None);

    // The last page re-delivers "b" (overlap) and brings "c"; the window closes.
    let recs2 = vec![record("b", 800), record("c", 100)];
    let out = store
        .commit_page(&PageCommit {
            source: "s",
            window: &open,
            next_cursor: None,
            read_from_ms: None,
            done: true,
            next_span_ms: None,
            records: &recs2,
            request_ids: &["req_2".into()],
            now_ms: 6,
        })
        .unwrap();
    assert_eq!(
        out,
        PageOutcome {
            inserted: 1,
            duplicates: 1
        }
    );
    assert!(store.open_window("s", WindowKind::Live).unwrap().is_none());
    let state = store.source_state("s").unwrap();
    assert_eq!(state.watermark_ms, Some(1000));
    assert_eq!(state.journaled, 3);
    assert_eq!(store.journal_rows().unwrap(), 3);
    let mut ids = store.recent_request_ids(0).unwrap();
    ids.sort();
    assert_eq!(ids, vec!["req_1", "req_2"]);
}

#[test]
fn sweep_counts_only_new_records_as_late() {
    let (_dir, mut store) = open();
    let w = live(0, 1000);
    store
        .commit_page(&PageCommit {
            source: "s",
            window: &w,
            next_cursor: None,
            read_from_ms: None,
            done: true,
            next_span_ms: None,
            records: &[record("a", 10)],
            request_ids: &[],
            now_ms: 1,
        })
        .unwrap();
    let sweep = WindowRow {
        kind: WindowKind::Sweep,
        ..live(0, 1000)
    };
    let out = store
        .commit_page(&PageCommit {
            source: "s",
            window: &sweep,
            next_cursor: None,
            read_from_ms: None,
            done: true,
            next_span_ms: None,
            records: &[record("a", 10), record("late", 20)],
            request_ids: &[],
            now_ms: 2,
        })
        .unwrap();
    assert_eq!(out.inserted, 1);
    let state = store.source_state("s").unwrap();
    assert_eq!(state.late, 1);
    assert_eq!(
        state.last_sweep_ms,
        Some(2),
        "a one-page sweep started when its page was requested"
    );
    assert_eq!(
        state.watermark_ms,
        Some(1000),
        "a sweep never moves the watermark"
    );
}

#[test]
fn sink_cursor_batches_dead_letters_and_prune() {
    let (_dir, mut store) = open();
    let w = live(0, 1000);
    let recs: Vec<_> = (0..10).map(|i| record(&format!("r{i}"), i * 10)).collect();
    store
        .commit_page(&PageCommit {
            source: "s",
            window: &w,
            next_cursor: None,
            read_from_ms: None,
            done: true,
            next_span_ms: None,
            records: &recs,
            request_ids: &[],
            now_ms: 1,
        })
        .unwrap();
    let batch = store.read_batch(0, 4, 1 << 20, &Payload::Raw).unwrap();
    assert_eq!(batch.len(), 4);
    assert_eq!(batch[0].payload, r#"{"id":"r0"}"#);
    // Byte limit: each raw payload is 11 bytes + newline.
    assert_eq!(
        store.read_batch(0, 100, 30, &Payload::Raw).unwrap().len(),
        2
    );
    // Always at least one record, even if alone over the limit.
    assert_eq!(store.read_batch(0, 100, 1, &Payload::Raw).unwrap().len(), 1);
    // Covering read: includes the record that crosses the byte count (a
    // torn line past a file sink's committed length is part of that record).
    assert_eq!(store.read_covering(0, 24, &Payload::Raw).unwrap().len(), 2);
    assert_eq!(store.read_covering(0, 25, &Payload::Raw).unwrap().len(), 3);
    assert_eq!(store.read_covering(0, 0, &Payload::Raw).unwrap().len(), 0);
    assert_eq!(
        store
            .read_covering(0, 1 << 20, &Payload::Raw)
            .unwrap()
            .len(),
        10
    );

    let dead = [NewDeadLetter {
        seq: batch[1].seq,
        activity_id: "r1".into(),
        reason: "too big".into(),
        response: "413".into(),
    }];
    store
        .advance_sink("file", batch[3].seq, Some(44), 3, &dead, 7)
        .unwrap();
    let cursor = store.sink_cursor("file").unwrap();
    assert_eq!(
        (cursor.seq, cursor.file_offset, cursor.delivered),
        (batch[3].seq, Some(44), 3)
    );
    assert_eq!(store.dead_letter_count("file").unwrap(), 1);
    assert_eq!(store.count_after(cursor.seq).unwrap(), 6);

    // Only rows every sink passed AND older than the cutoff go.
    store
        .advance_sink("other", batch[1].seq, None, 2, &[], 7)
        .unwrap();
    // A findings stream's dead letter names a finding's seq, not a journal
    // row's: it keeps no activity (here r0's seq).
    store
        .advance_sink(
            "file.findings",
            1,
            None,
            0,
            &[NewDeadLetter {
                seq: batch[0].seq,
                activity_id: "claudit_finding_0".into(),
                reason: "refused".into(),
                response: "400".into(),
            }],
            7,
        )
        .unwrap();
    // r1 (seq 2) is dead-lettered by "file": kept for `dlq replay`.
    assert_eq!(store.prune(&["file", "other"], 1_000_000).unwrap(), 1);
    assert_eq!(store.prune(&["file", "other"], 1_000_000).unwrap(), 0);
    assert_eq!(store.journal_rows().unwrap(), 9);
}

#[test]
fn backfill_progress_resumes() {
    let (_dir, mut store) = open();
    let row = store.add_backfill("s", 0, 3000).unwrap();
    assert_eq!(row.next_ms, 0);
    let chunk = WindowRow {
        kind: WindowKind::Backfill,
        ..live(0, 1000)
    };
    store
        .commit_page(&PageCommit {
            source: "s",
            window: &chunk,
            next_cursor: None,
            read_from_ms: None,
            done: true,
            next_span_ms: None,
            records: &[record("x", 5)],
            request_ids: &[],
            now_ms: 1,
        })
        .unwrap();
    // Registering the same range again is idempotent and shows progress.
    let row = store.add_backfill("s", 0, 3000).unwrap();
    assert_eq!((row.next_ms, row.records), (1000, 1));
    assert_eq!(store.open_backfills("s").unwrap().len(), 1);
}

#[test]
fn newer_schema_and_garbage_files_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(Store::open(&path).unwrap());
    {
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let err = Store::open(&path).err().unwrap().to_string();
    assert!(err.contains("newer claudit"), "{err}");

    let garbage = dir.path().join("garbage.db");
    std::fs::write(
        &garbage,
        b"this is not a database at all, not even close; 0123456789abcdef",
    )
    .unwrap();
    let before = std::fs::read(&garbage).unwrap();
    let err = Store::open(&garbage).err().unwrap().to_string();
    assert!(err.contains("not a usable SQLite database"), "{err}");
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        before,
        "a corrupt file is never reset"
    );
}

#[test]
fn new_databases_get_large_pages_and_old_ones_keep_theirs() {
    let (_dir, store) = open();
    let size: i64 = store
        .conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!(size, PAGE_SIZE);

    // A database created with SQLite's default 4 KiB pages (an older claudit)
    // opens, keeps its page size, and takes pages as before.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let mut conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "page_size", 4096).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        schema::migrate(&mut conn, &path).unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    let size: i64 = store
        .conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!(size, 4096);
    let window = live(0, 1000);
    let records = [record("a", 10), record("b", 20)];
    let outcome = store
        .commit_page(&PageCommit {
            source: "s",
            window: &window,
            next_cursor: None,
            read_from_ms: None,
            done: true,
            next_span_ms: None,
            records: &records,
            request_ids: &[],
            now_ms: 5,
        })
        .unwrap();
    assert_eq!(outcome.inserted, 2);
    assert_eq!(store.head_seq().unwrap(), 2);
}

/// One page holding a row as the poller writes it (raw and context, no
/// stored event) and a row as schema 1 wrote it (a stored OCSF event).
fn journal_both_forms(store: &mut Store) -> (JournalRecord, JournalRecord) {
    let context = crate::ocsf::JournalContext {
        self_generated: true,
        enrichment: None,
    };
    let new = JournalRecord {
        activity_id: "activity_new".into(),
        created_at_ms: 1_778_000_000_000,
        activity_type: "claude_chat_created".into(),
        raw: r#"{"id":"activity_new","type":"claude_chat_created","created_at":"2026-05-05T16:53:20Z","claude_chat_id":"c1"}"#.into(),
        context: Some(context.to_json()),
        ocsf: None,
    };
    let legacy = JournalRecord {
        ocsf: Some(r#"{"metadata":{"uid":"activity_old"},"stored":true}"#.into()),
        context: None,
        ..record("activity_old", 1_778_000_000_001)
    };
    store
        .commit_page(&PageCommit {
            source: "s",
            window: &live(0, 2_000_000_000_000),
            next_cursor: None,
            read_from_ms: None,
            done: true,
            next_span_ms: None,
            records: &[new.clone(), legacy.clone()],
            request_ids: &[],
            now_ms: 1_778_000_000_500,
        })
        .unwrap();
    (new, legacy)
}

#[test]
fn ocsf_reads_render_new_rows_and_serve_stored_events_as_they_are() {
    let (_dir, mut store) = open();
    let (new, legacy) = journal_both_forms(&mut store);
    let mapper = Arc::new(Mapper::default());
    let ocsf = Payload::Ocsf(mapper.clone());
    let expected = mapper.render_journaled(
        &new.raw,
        new.context.as_deref(),
        new.created_at_ms,
        1_778_000_000_500,
    );
    let event: serde_json::Value = serde_json::from_str(&expected).unwrap();
    assert_eq!(event["metadata"]["uid"], "activity_new");
    assert_eq!(event["metadata"]["processed_time"], 1_778_000_000_500i64);
    assert!(expected.contains(crate::ocsf::LABEL_SELF), "{expected}");

    let batch = store.read_batch(0, 10, 1 << 20, &ocsf).unwrap();
    let payloads: Vec<&str> = batch.iter().map(|r| r.payload.as_str()).collect();
    assert_eq!(
        payloads,
        [expected.as_str(), legacy.ocsf.as_deref().unwrap()]
    );
    // Every read path gives the same payloads.
    let covering = store.read_covering(0, 1, &ocsf).unwrap();
    assert_eq!(covering[0].payload, expected);
    let range = store
        .read_range(0, i64::MAX, 0, 10, &ocsf)
        .unwrap()
        .into_iter()
        .map(|r| r.payload)
        .collect::<Vec<_>>();
    assert_eq!(range, payloads);
    let one = store.journal_record(batch[0].seq, &ocsf).unwrap().unwrap();
    assert_eq!(one.payload, expected);
    // Raw reads are the activity as received, whatever the row's form.
    let raw = store.read_batch(0, 10, 1 << 20, &Payload::Raw).unwrap();
    assert_eq!(raw[0].payload, new.raw);
    assert_eq!(raw[1].payload, legacy.raw);
    // Rendering is a function of the row: reading again gives the same bytes.
    assert_eq!(
        store.read_batch(0, 10, 1 << 20, &ocsf).unwrap()[0].payload,
        expected
    );
}

#[test]
fn a_schema_1_database_is_readable_before_and_after_its_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let mut store = Store::open(&path).unwrap();
        journal_both_forms(&mut store);
    }
    // Back to schema 1: no context column; its rows stored their events.
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute("DELETE FROM journal WHERE ocsf = ''", [])
            .unwrap();
        conn.execute_batch(
            "ALTER TABLE journal DROP COLUMN context;
             ALTER TABLE journal DROP COLUMN backfill;
             DROP TABLE findings;
             DROP TABLE detection_cursor;
             ALTER TABLE windows DROP COLUMN walk_end_ms;
             ALTER TABLE windows DROP COLUMN read_from_ms;
             ALTER TABLE windows DROP COLUMN fault;
             ALTER TABLE windows DROP COLUMN fault_since_ms;
             ALTER TABLE windows DROP COLUMN faults;
             ALTER TABLE source_state DROP COLUMN catchup_span_ms;
             ALTER TABLE backfills DROP COLUMN window_span_ms;
             ALTER TABLE backfills DROP COLUMN requests;
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let ocsf = Payload::Ocsf(Arc::new(Mapper::default()));
    // `status` or `dlq show` from a new binary while the old daemon runs.
    let readonly = Store::open_readonly(&path).unwrap();
    assert_eq!(readonly.source_state("s").unwrap().catchup_span_ms, None);
    assert!(readonly.pending_windows("s").unwrap().is_empty());
    assert!(readonly.open_backfills("s").unwrap().is_empty());
    let batch = readonly.read_batch(0, 10, 1 << 20, &ocsf).unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(
        batch[0].payload,
        r#"{"metadata":{"uid":"activity_old"},"stored":true}"#
    );
    drop(readonly);
    // The daemon's open migrates, and the old row is still served as stored.
    let store = Store::open(&path).unwrap();
    let version: i64 = store
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(
        store.read_batch(0, 10, 1 << 20, &ocsf).unwrap()[0].payload,
        batch[0].payload
    );
}

#[test]
fn a_refused_cursor_restarts_the_walk_below_what_the_window_has_read() {
    let (_dir, mut store) = open();
    let w = WindowRow::fresh(WindowKind::Backfill, 0, 1000);
    store.add_backfill("s", 0, 1000).unwrap();
    store
        .commit_page(&PageCommit {
            source: "s",
            window: &w,
            next_cursor: Some("cur1".into()),
            read_from_ms: Some(701),
            done: false,
            next_span_ms: None,
            records: &[record("a", 900), record("b", 700)],
            request_ids: &[],
            now_ms: 5,
        })
        .unwrap();
    let open = store
        .open_window("s", WindowKind::Backfill)
        .unwrap()
        .unwrap();
    assert_eq!(
        (open.cursor.as_deref(), open.walk_end_ms, open.read_from_ms),
        (Some("cur1"), 1000, Some(701))
    );
    // What a progress report shows: the window's top 30% read.
    assert!((open.read_ratio() - 0.299).abs() < 1e-9);
    let range = store.backfill("s", 0, 1000).unwrap().unwrap();
    assert_eq!((range.read_ms(Some(&open)), range.requests), (299, 1));

    store.restart_walk("s", &open).unwrap();
    let restarted = store
        .open_window("s", WindowKind::Backfill)
        .unwrap()
        .unwrap();
    assert_eq!(restarted.cursor, None);
    // Only [0, 701) is asked for again; the window still ends at 1000.
    assert_eq!(
        (
            restarted.walk_end_ms,
            restarted.end_ms,
            restarted.read_from_ms
        ),
        (701, 1000, Some(701))
    );

    // Pruning keeps the records of the millisecond below `read_from`,
    // which the restarted walk reads again, and nothing else.
    store.advance_sink("f", 2, None, 2, &[], 6).unwrap();
    assert_eq!(store.prune(&["f"], i64::MAX).unwrap(), 1);
    assert!(store.is_journaled("b").unwrap());
    assert!(!store.is_journaled("a").unwrap());
}

#[test]
fn a_split_keeps_nothing_and_sizes_the_next_window() {
    let (_dir, mut store) = open();
    store.init_watermark("s", 0, 1).unwrap();
    store.add_backfill("s", 0, 1000).unwrap();
    // A fault on the first page left a row; the split removes it.
    let first = WindowRow::fresh(WindowKind::Backfill, 0, 1000);
    let faults = store
        .record_paging_fault("s", &first, "no cursor", &["req_f".into()], 2)
        .unwrap();
    assert_eq!(faults, 1);
    store
        .split_window("s", &first, 100, &["req_s".into()], 3)
        .unwrap();
    assert!(
        store
            .open_window("s", WindowKind::Backfill)
            .unwrap()
            .is_none()
    );
    let range = store.backfill("s", 0, 1000).unwrap().unwrap();
    assert_eq!(
        (range.next_ms, range.window_span_ms, range.requests),
        (0, Some(100), 2)
    );
    assert_eq!(store.journal_rows().unwrap(), 0);
    let live = WindowRow::fresh(WindowKind::Live, 0, 1000);
    store.split_window("s", &live, 250, &[], 4).unwrap();
    let state = store.source_state("s").unwrap();
    assert_eq!(state.catchup_span_ms, Some(250));
    assert_eq!(state.last_success_ms, Some(4));
    let mut ids = store.recent_request_ids(0).unwrap();
    ids.sort();
    assert_eq!(ids, vec!["req_f", "req_s"]);

    // A completed window sets the next window's span.
    store
        .commit_page(&PageCommit {
            source: "s",
            window: &WindowRow::fresh(WindowKind::Backfill, 0, 100),
            next_cursor: None,
            read_from_ms: Some(51),
            done: true,
            next_span_ms: Some(400),
            records: &[record("x", 50)],
            request_ids: &[],
            now_ms: 5,
        })
        .unwrap();
    let range = store.backfill("s", 0, 1000).unwrap().unwrap();
    assert_eq!(
        (range.next_ms, range.window_span_ms, range.requests),
        (100, Some(400), 3)
    );
}

#[test]
fn a_paging_fault_keeps_the_position_until_a_page_is_committed() {
    let (_dir, mut store) = open();
    let w = live(0, 1000);
    store
        .commit_page(&PageCommit {
            source: "s",
            window: &w,
            next_cursor: Some("cur1".into()),
            read_from_ms: Some(901),
            done: false,
            next_span_ms: None,
            records: &[record("a", 900)],
            request_ids: &[],
            now_ms: 5,
        })
        .unwrap();
    let open = store.open_window("s", WindowKind::Live).unwrap().unwrap();
    for (attempt, now) in [(1, 10), (2, 20)] {
        let faults = store
            .record_paging_fault("s", &open, "last_id repeats the cursor", &[], now)
            .unwrap();
        assert_eq!(faults, attempt);
    }
    let stuck = store.open_window("s", WindowKind::Live).unwrap().unwrap();
    assert_eq!(stuck.cursor.as_deref(), Some("cur1"));
    assert_eq!(
        (stuck.fault.as_deref(), stuck.fault_since_ms, stuck.faults),
        (Some("last_id repeats the cursor"), Some(10), 2)
    );
    assert_eq!((stuck.pages, stuck.records), (1, 1));
    let state = store.source_state("s").unwrap();
    assert_eq!(
        state.last_error.as_deref(),
        Some("last_id repeats the cursor")
    );
    assert_eq!(state.watermark_ms, None);

    // The next page that moves on clears it.
    store
        .commit_page(&PageCommit {
            source: "s",
            window: &stuck,
            next_cursor: Some("cur2".into()),
            read_from_ms: Some(801),
            done: false,
            next_span_ms: None,
            records: &[record("b", 800)],
            request_ids: &[],
            now_ms: 30,
        })
        .unwrap();
    let moving = store.open_window("s", WindowKind::Live).unwrap().unwrap();
    assert_eq!(
        (moving.fault, moving.fault_since_ms, moving.faults),
        (None, None, 0)
    );
    assert_eq!(moving.cursor.as_deref(), Some("cur2"));
    assert_eq!(store.source_state("s").unwrap().last_error, None);
}

#[test]
fn a_database_whose_content_is_gone_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    // An empty file with a log beside it: SQLite writes the first page
    // before any log exists, so its pages were lost.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    std::fs::write(dir.path().join("empty.db-wal"), b"").unwrap();
    let err = Store::open(&empty).err().unwrap();
    assert_eq!(err.problem(), Problem::Damaged);
    let text = err.to_string();
    assert!(
        text.contains("has no claudit tables") && text.contains("empty.db-wal (0 bytes)"),
        "{text}"
    );
    assert!(
        dir.path().join("empty.db-wal").exists(),
        "the evidence stays"
    );
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);

    // A used database without tables (its pages lost another way).
    let used = dir.path().join("used.db");
    Connection::open(&used)
        .unwrap()
        .pragma_update(None, "user_version", 7)
        .unwrap();
    let before = std::fs::read(&used).unwrap();
    let text = Store::open(&used).err().unwrap().to_string();
    assert!(
        text.contains("has no claudit tables, but the file holds"),
        "{text}"
    );
    assert!(text.contains("--reset-state"), "{text}");
    let text = Store::open_readonly(&used).err().unwrap().to_string();
    assert!(text.contains("has no claudit tables"), "{text}");
    assert_eq!(std::fs::read(&used).unwrap(), before);

    // A new database is an empty file with nothing beside it.
    let new = dir.path().join("new.db");
    std::fs::write(&new, b"").unwrap();
    Store::open(&new).unwrap();
}

#[test]
fn a_log_shorter_than_its_index_says_is_refused_until_removed_on_purpose() {
    let running = tempfile::tempdir().unwrap();
    let db = running.path().join("state.db");
    let mut store = Store::open(&db).unwrap();
    let commit = |store: &mut Store, id: &str| {
        store
            .commit_page(&PageCommit {
                source: "s",
                window: &live(0, 1000),
                next_cursor: None,
                read_from_ms: None,
                done: true,
                next_span_ms: None,
                records: &[record(id, 900)],
                request_ids: &[],
                now_ms: 1,
            })
            .unwrap();
    };
    // "a" is checkpointed into the database file, "b" only in the log.
    commit(&mut store, "a");
    store
        .conn
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    commit(&mut store, "b");
    // What a crash leaves while the connection is open: the database, its
    // index, and (here) a log cut off to nothing.
    let crashed = tempfile::tempdir().unwrap();
    let copy = crashed.path().join("state.db");
    std::fs::copy(&db, &copy).unwrap();
    std::fs::copy(
        integrity::companion(&db, "-shm"),
        integrity::companion(&copy, "-shm"),
    )
    .unwrap();
    std::fs::write(integrity::companion(&copy, "-wal"), b"").unwrap();
    drop(store);

    for attempt in 0..2 {
        let err = Store::open(&copy).err().unwrap();
        assert_eq!(err.problem(), Problem::Damaged);
        let text = err.to_string();
        assert!(
            text.contains("lost its most recent transactions")
                && text.contains("state.db-wal holds 0 bytes")
                && text.contains("--reset-state"),
            "attempt {attempt}: {text}"
        );
        let text = Store::open_readonly(&copy).err().unwrap().to_string();
        assert!(text.contains("lost its most recent transactions"), "{text}");
    }
    // The operator accepts going on from the last checkpoint.
    std::fs::remove_file(integrity::companion(&copy, "-wal")).unwrap();
    std::fs::remove_file(integrity::companion(&copy, "-shm")).unwrap();
    let store = Store::open(&copy).unwrap();
    assert!(store.is_journaled("a").unwrap() && !store.is_journaled("b").unwrap());
}

#[test]
fn quick_check_passes_a_sound_database_and_stops_at_its_time_bound() {
    let (_dir, mut store) = open();
    // Enough cells for SQLite to ask the progress handler.
    let records: Vec<JournalRecord> = (0..2_000).map(|i| record(&format!("a{i}"), 900)).collect();
    store
        .commit_page(&PageCommit {
            source: "s",
            window: &live(0, 1000),
            next_cursor: None,
            read_from_ms: None,
            done: true,
            next_span_ms: None,
            records: &records,
            request_ids: &[],
            now_ms: 1,
        })
        .unwrap();
    assert!(matches!(
        store.quick_check(Duration::from_secs(60)).unwrap(),
        integrity::QuickCheck::Passed { .. }
    ));
    // A bound already passed: SQLite is told to stop at its first check.
    assert!(matches!(
        store.quick_check(Duration::ZERO).unwrap(),
        integrity::QuickCheck::Unfinished { .. }
    ));
    // The connection works normally afterwards.
    assert_eq!(store.journal_rows().unwrap(), 2_000);
}

#[test]
fn every_sqlite_error_names_the_database() {
    let (dir, store) = open();
    let err = store
        .conn
        .execute("INSERT INTO no_such_table VALUES (1)", [])
        .in_db(&store.path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(dir.path().join("state.db").to_str().unwrap()),
        "{err}"
    );
    // The chain printer does not repeat the cause.
    let chained = format!(
        "{:#}",
        anyhow::Error::new(StoreError::sqlite(
            &store.path,
            rusqlite::Error::InvalidColumnType(3, "raw".into(), rusqlite::types::Type::Blob),
        ))
    );
    assert_eq!(chained.matches("BLOB").count(), 1, "{chained}");
}
