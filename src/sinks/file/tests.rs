use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;

use super::faults::{Fault, FaultyDisk, Schedule};
use super::*;

fn rec(seq: i64, payload: &str) -> BatchRecord {
    BatchRecord {
        seq,
        activity_id: format!("a{seq}"),
        created_at_ms: 0,
        payload: payload.into(),
    }
}

fn config(dir: &Path, max_bytes: u64) -> FileSinkConfig {
    FileSinkConfig {
        path: dir.join("out/events.ndjson"),
        max_bytes,
        max_files: 2,
    }
}

/// Reconciles until the sink is ready to write, as the sink task does;
/// `records` are all the records after the cursor.
fn settle(sink: &mut FileSink, records: &[BatchRecord]) -> Recovery {
    let mut total = Recovery::default();
    let mut done = 0;
    while sink.unreconciled().unwrap().is_some() {
        let r = sink.reconcile(&records[done..]).unwrap();
        done += r.already_written;
        total.already_written += r.already_written;
        total.truncated_bytes += r.truncated_bytes;
        total.foreign_bytes += r.foreign_bytes;
    }
    total
}

#[test]
fn writes_lines_and_reports_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = FileSink::open(&config(dir.path(), 0), None).unwrap();
    settle(&mut sink, &[]);
    assert_eq!(
        sink.write_batch(&[rec(1, "{\"a\":1}"), rec(2, "{\"b\":2}")])
            .unwrap(),
        16
    );
    assert_eq!(
        std::fs::read_to_string(sink.path()).unwrap(),
        "{\"a\":1}\n{\"b\":2}\n"
    );
}

#[test]
fn nothing_is_written_before_the_file_is_reconciled() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = FileSink::open(&config(dir.path(), 0), None).unwrap();
    assert!(sink.write_batch(&[rec(1, "{}")]).is_err());
    assert_eq!(std::fs::read(sink.path()).unwrap(), b"");
}

#[test]
fn recovery_takes_whole_lines_and_cuts_a_torn_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 0);
    std::fs::create_dir_all(cfg.path.parent().unwrap()).unwrap();
    // Committed: 8 bytes. Then a crash after line 2 whole and 3 bytes of line 3.
    std::fs::write(&cfg.path, "{\"a\":1}\n{\"b\":2}\n{\"c").unwrap();
    let mut sink = FileSink::open(&cfg, Some(8)).unwrap();
    assert_eq!(sink.unreconciled().unwrap(), Some(11));
    let next = [
        rec(2, "{\"b\":2}"),
        rec(3, "{\"c\":3}"),
        rec(4, "{\"d\":4}"),
    ];
    let r = sink.reconcile(&next).unwrap();
    assert_eq!(
        r,
        Recovery {
            already_written: 1,
            truncated_bytes: 3,
            foreign_bytes: 0
        }
    );
    assert_eq!(sink.offset(), 16);
    assert_eq!(sink.unreconciled().unwrap(), None);
    sink.write_batch(&next[1..]).unwrap();
    assert_eq!(
        std::fs::read_to_string(&cfg.path).unwrap(),
        "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n{\"d\":4}\n"
    );
}

#[test]
fn recovery_leaves_foreign_bytes_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 0);
    std::fs::create_dir_all(cfg.path.parent().unwrap()).unwrap();
    std::fs::write(&cfg.path, "{\"a\":1}\nsomeone else\n").unwrap();
    let mut sink = FileSink::open(&cfg, Some(8)).unwrap();
    let r = sink.reconcile(&[rec(2, "{\"b\":2}")]).unwrap();
    assert_eq!(
        r,
        Recovery {
            already_written: 0,
            truncated_bytes: 0,
            foreign_bytes: 13
        }
    );
    assert_eq!(sink.offset(), 21);
}

/// A run of NULs past the committed length is data that never reached the
/// disk (a failed fsync, a power loss), not someone else's bytes: cut.
#[test]
fn nul_bytes_past_the_committed_length_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 0);
    std::fs::create_dir_all(cfg.path.parent().unwrap()).unwrap();
    std::fs::write(&cfg.path, b"{\"a\":1}\n\0\0\0\0\0\0\0\0\0\0").unwrap();
    let mut sink = FileSink::open(&cfg, Some(8)).unwrap();
    let next = [rec(2, "{\"b\":2}")];
    let r = settle(&mut sink, &next);
    assert_eq!(r.truncated_bytes, 10, "{r:?}");
    sink.write_batch(&next).unwrap();
    assert_eq!(
        std::fs::read_to_string(&cfg.path).unwrap(),
        "{\"a\":1}\n{\"b\":2}\n"
    );
}

/// A tail longer than the records given is reconciled in steps: the sink
/// stays unreconciled until the records after the matched ones decide.
#[test]
fn a_long_tail_is_reconciled_a_batch_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 0);
    std::fs::create_dir_all(cfg.path.parent().unwrap()).unwrap();
    std::fs::write(&cfg.path, "{\"a\":1}\n{\"b\":2}\n{\"c").unwrap();
    let mut sink = FileSink::open(&cfg, Some(0)).unwrap();
    let next = [
        rec(1, "{\"a\":1}"),
        rec(2, "{\"b\":2}"),
        rec(3, "{\"c\":3}"),
    ];
    let r = sink.reconcile(&next[..1]).unwrap();
    assert_eq!((r.already_written, sink.offset()), (1, 8));
    assert_eq!(sink.unreconciled().unwrap(), Some(11));
    let r = sink.reconcile(&next[1..]).unwrap();
    assert_eq!((r.already_written, r.truncated_bytes), (1, 3));
    assert_eq!(sink.unreconciled().unwrap(), None);
}

/// ENOSPC after a short write: the retry writes neither the whole lines
/// again nor after the torn one.
#[test]
fn a_write_cut_short_by_a_full_disk_is_reconciled_before_the_retry() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 0);
    let disk = FaultyDisk::new(Schedule::default());
    let mut sink = FileSink::open_on(Arc::new(disk.clone()), &cfg, None).unwrap();
    settle(&mut sink, &[]);
    disk.fail_in(0, Fault::ShortWrite(11));
    let batch = [
        rec(1, "{\"a\":1}"),
        rec(2, "{\"b\":2}"),
        rec(3, "{\"c\":3}"),
    ];
    let e = sink.write_batch(&batch).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StorageFull);
    assert_eq!(disk.injected(), 2, "a short write, then ENOSPC");
    assert_eq!(
        std::fs::read_to_string(&cfg.path).unwrap(),
        "{\"a\":1}\n{\"b"
    );
    assert!(sink.write_batch(&batch).is_err(), "not reconciled yet");
    let r = settle(&mut sink, &batch);
    assert_eq!((r.already_written, r.truncated_bytes), (1, 3));
    sink.write_batch(&batch[1..]).unwrap();
    assert_eq!(
        std::fs::read_to_string(&cfg.path).unwrap(),
        "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n"
    );
}

/// After a failed fsync the bytes of the batch are written again even
/// though they read back as NULs (the pages were dropped).
#[test]
fn after_a_failed_fsync_the_batch_is_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 0);
    let disk = FaultyDisk::new(Schedule::default());
    let mut sink = FileSink::open_on(Arc::new(disk.clone()), &cfg, None).unwrap();
    settle(&mut sink, &[]);
    // The write, then its fsync.
    disk.fail_in(1, Fault::SyncLosesPages);
    let batch = [rec(1, "{\"a\":1}"), rec(2, "{\"b\":2}")];
    assert!(sink.write_batch(&batch).is_err());
    assert_eq!(std::fs::read(&cfg.path).unwrap(), vec![0; 16]);
    let r = settle(&mut sink, &batch);
    assert_eq!((r.already_written, r.truncated_bytes), (0, 16));
    assert_eq!(sink.write_batch(&batch).unwrap(), 16);
    assert_eq!(
        std::fs::read_to_string(&cfg.path).unwrap(),
        "{\"a\":1}\n{\"b\":2}\n"
    );
}

#[test]
fn rotates_at_batch_boundaries_and_keeps_max_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 20);
    let mut sink = FileSink::open(&cfg, None).unwrap();
    settle(&mut sink, &[]);
    for i in 0..4 {
        let batch = [rec(i, "0123456789abcdef")];
        let rotated = sink.rotate_if_needed(17).unwrap();
        assert_eq!(rotated, i > 0);
        if rotated {
            // The new file, empty: its length is committed before writing.
            assert_eq!(sink.unreconciled().unwrap(), Some(0));
            assert_eq!(settle(&mut sink, &batch), Recovery::default());
            assert_eq!(sink.offset(), 0);
        }
        sink.write_batch(&batch).unwrap();
    }
    let p = |s: &str| dir.path().join(format!("out/events.ndjson{s}"));
    assert!(p("").exists() && p(".1").exists() && p(".2").exists());
    assert!(!p(".3").exists(), "only max_files rotated files are kept");
}

/// A rotation that stopped after moving `.1` to `.2` removes nothing when
/// it is done again: it fills the gap instead of shifting past it.
#[test]
fn a_rotation_that_failed_half_way_removes_no_file_when_done_again() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 20);
    let p = |s: &str| dir.path().join(format!("out/events.ndjson{s}"));
    std::fs::create_dir_all(p("").parent().unwrap()).unwrap();
    std::fs::write(p(".1"), "one\n").unwrap();
    std::fs::write(p(".2"), "two\n").unwrap();
    std::fs::write(p(""), "0123456789abcdef\n").unwrap();
    let disk = FaultyDisk::new(Schedule::default());
    let mut sink = FileSink::open_on(Arc::new(disk.clone()), &cfg, Some(17)).unwrap();
    settle(&mut sink, &[]);
    // Rotation: exists .1, exists .2 (both: the oldest is removed), remove
    // .2, rename .1 to .2, then the rename of the file to .1 fails.
    disk.fail_in(4, Fault::Io);
    assert!(sink.rotate_if_needed(17).is_err());
    assert!(!p(".1").exists());
    // Reconciled: the same file, nothing to commit; then rotated again.
    assert_eq!(settle(&mut sink, &[]), Recovery::default());
    assert_eq!(sink.offset(), 17);
    assert!(sink.rotate_if_needed(17).unwrap());
    settle(&mut sink, &[]);
    sink.write_batch(&[rec(1, "new")]).unwrap();
    let read = |s: &str| std::fs::read_to_string(p(s)).unwrap();
    assert_eq!(
        (read(".2"), read(".1"), read("")),
        ("one\n".into(), "0123456789abcdef\n".into(), "new\n".into())
    );
}

/// The part of the sink task (sinks/mod.rs) that drives a file sink, with
/// the cursor in memory: reconcile and commit before each batch, rotate,
/// write, commit after it; retry whatever failed.
struct Driver<'a> {
    records: &'a [BatchRecord],
    /// Records delivered (the cursor's seq) and the committed length.
    delivered: usize,
    committed: Option<i64>,
    batch_events: usize,
    batch_bytes: u64,
}

impl Driver<'_> {
    /// The records after the cursor whose lines cover `bytes`
    /// (`Store::read_covering`).
    fn covering(&self, bytes: u64) -> Vec<BatchRecord> {
        let mut out = Vec::new();
        let mut size = 0;
        for r in &self.records[self.delivered..] {
            if size >= bytes {
                break;
            }
            size += r.payload.len() as u64 + 1;
            out.push(r.clone());
        }
        out
    }

    /// Reconciles and commits until the file is ready; how many records it
    /// found written.
    fn reconcile(&mut self, sink: &mut FileSink) -> io::Result<usize> {
        let mut found = 0;
        while let Some(tail) = sink.unreconciled()? {
            let next = self.covering(tail.min(self.batch_bytes));
            let r = sink.reconcile(&next)?;
            self.delivered += r.already_written;
            self.committed = Some(sink.offset() as i64);
            found += r.already_written;
        }
        Ok(found)
    }

    /// One turn of the sink task's loop. Errors are retried by the caller.
    fn step(&mut self, sink: &mut FileSink) -> io::Result<()> {
        if self.reconcile(sink)? > 0 {
            return Ok(());
        }
        let end = (self.delivered + self.batch_events).min(self.records.len());
        let batch = &self.records[self.delivered..end];
        let bytes = batch.iter().map(|r| r.payload.len() as u64 + 1).sum();
        if sink.rotate_if_needed(bytes)? && self.reconcile(sink)? > 0 {
            return Ok(());
        }
        let offset = sink.write_batch(batch)?;
        self.delivered = end;
        self.committed = Some(offset as i64);
        Ok(())
    }
}

/// fsync costs nothing on tmpfs, which keeps hundreds of cases fast.
fn scratch_dir() -> tempfile::TempDir {
    match tempfile::tempdir_in("/dev/shm") {
        Ok(dir) => dir,
        Err(_) => tempfile::tempdir().unwrap(),
    }
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        (1usize..300).prop_map(Fault::ShortWrite),
        Just(Fault::Full),
        Just(Fault::Io),
        Just(Fault::SyncLosesPages),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any schedule of disk faults (short writes then ENOSPC, EIO, fsyncs
    /// that fail and leave their pages unwritable or lose them, failures
    /// while reconciling or rotating), of process crashes and of power
    /// losses between steps: every event ends up in the files exactly once,
    /// in order, with no torn line, and the committed length is the file's
    /// length, also after a final power loss (what was committed is on disk).
    #[test]
    fn any_schedule_of_disk_faults_keeps_every_event_once_and_whole(
        faults in prop::collection::vec((0u64..150, fault()), 1..10),
        crashes in prop::collection::btree_map(0u32..120, any::<bool>(), 0..4),
        batch_events in 1usize..8,
        rotate_at in prop_oneof![Just(0u64), 200u64..1500],
    ) {
        let dir = scratch_dir();
        let cfg = FileSinkConfig {
            path: dir.path().join("events.ndjson"),
            max_bytes: rotate_at,
            max_files: 1000,
        };
        let records: Vec<BatchRecord> = (1..=40)
            .map(|i| rec(i, &format!("{{\"id\":\"e{i}\",\"pad\":\"{}\"}}", "x".repeat((i as usize * 37) % 150))))
            .collect();
        let disk = FaultyDisk::new(Schedule::new(faults));
        let mut driver = Driver {
            records: &records,
            delivered: 0,
            committed: None,
            batch_events,
            batch_bytes: 400,
        };
        let mut sink: Option<FileSink> = None;
        // A crash due, and whether the power goes with it.
        let mut crash: Option<bool> = None;
        for step in 0..2_000u32 {
            if driver.delivered == records.len() {
                break;
            }
            if let Some(power) = crashes.get(&step) {
                crash = Some(crash.unwrap_or(false) || *power);
            }
            // Between a failed fsync and the reconciliation after it, a
            // crash hits the limit named in the module docs: it waits.
            if let Some(power) = crash
                && !sink.as_ref().is_some_and(FileSink::holds_unsynced_bytes)
            {
                sink = None;
                if power {
                    disk.power_loss();
                }
                crash = None;
            }
            let s = match &mut sink {
                Some(s) => s,
                None => match FileSink::open_on(Arc::new(disk.clone()), &cfg, driver.committed) {
                    Ok(s) => {
                        driver.committed.get_or_insert(s.offset() as i64);
                        sink.insert(s)
                    }
                    Err(_) => continue,
                },
            };
            let _ = driver.step(s);
        }
        prop_assert_eq!(driver.delivered, records.len(), "every record delivered");
        drop(sink);
        disk.power_loss();

        let mut text = String::new();
        for n in (1..=1000).rev() {
            let mut p = cfg.path.as_os_str().to_owned();
            p.push(format!(".{n}"));
            if let Ok(t) = std::fs::read_to_string(&p) {
                text.push_str(&t);
            }
        }
        let current = std::fs::read_to_string(&cfg.path).unwrap();
        text.push_str(&current);
        let expected: String = records.iter().map(|r| format!("{}\n", r.payload)).collect();
        prop_assert_eq!(text, expected, "each event once, in order, whole lines");
        prop_assert_eq!(driver.committed, Some(current.len() as i64), "committed length is the file's");
    }
}
