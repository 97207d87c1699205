//! The directory as a stream: the inventory entries of each source's
//! snapshots (and of the changes between them) as journal entries of their
//! own, delivered by the `<sink>.directory` streams of the sinks that ask
//! for them.
//!
//! A snapshot is committed in one transaction with the source's snapshot
//! time ([`Store::commit_directory_snapshot`]): every entry has a uid that
//! is a function of the source, the user, the kind and the snapshot time,
//! and the table keeps a uid once, so a snapshot made again (a crash, a
//! restart that finds it due again) adds nothing. The snapshot time is the
//! time it was due, not the time it was made, so the same snapshot gets the
//! same uids whenever it is made.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{InDatabase, Store, StoreError};

/// The suffix of a sink's directory stream: `<sink>.directory` names the
/// cursor, dead letters and metrics of the inventory entries a sink
/// delivers (a sink name cannot hold a dot).
pub const DIRECTORY_SUFFIX: &str = "directory";

/// One entry of a snapshot to journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDirectoryEntry {
    /// The entry's stable uid (`ocsf::inventory::uid`).
    pub uid: String,
    /// `snapshot`, or the change: `joined`, `left`, `changed`.
    pub kind: String,
    /// claudit's plain JSON record (raw-format sinks).
    pub plain: String,
    /// The OCSF User Inventory Info event (OCSF sinks).
    pub ocsf: String,
}

/// A journaled entry, as `status` and the tests read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDirectoryEntry {
    pub seq: i64,
    pub uid: String,
    pub source: String,
    pub kind: String,
    /// The snapshot time the entry describes (epoch ms).
    pub at_ms: i64,
    pub plain: String,
    pub ocsf: String,
    pub journaled_at_ms: i64,
}

/// The last snapshot of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotState {
    /// The time the last snapshot describes (the time it was due).
    pub at_ms: i64,
    /// Entries that snapshot journaled (changes included; 0 when every one
    /// was journaled before).
    pub entries: i64,
    /// When it was committed.
    pub journaled_at_ms: i64,
}

/// What committing a snapshot did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotCommit {
    /// Journaled: this many entries were new (the others were kept already).
    Journaled { inserted: usize },
    /// The source already has a snapshot at or after this time: nothing was
    /// written.
    AlreadyMade { at_ms: i64 },
}

impl Store {
    /// Whether this database has the directory stream's tables (a
    /// read-only open of a database the daemon has not migrated yet does
    /// not).
    pub fn has_directory_stream(&self) -> bool {
        self.version >= 6
    }

    /// The last snapshot of `source`, if one was made.
    pub fn directory_snapshot(&self, source: &str) -> Result<Option<SnapshotState>, StoreError> {
        if !self.has_directory_stream() {
            return Ok(None);
        }
        self.conn
            .query_row(
                "SELECT last_at_ms, entries, journaled_at_ms FROM directory_snapshots WHERE source = ?1",
                params![source],
                |r| {
                    Ok(SnapshotState {
                        at_ms: r.get(0)?,
                        entries: r.get(1)?,
                        journaled_at_ms: r.get(2)?,
                    })
                },
            )
            .optional()
            .in_db(&self.path)
    }

    /// Journals the entries of `source`'s snapshot at `at_ms` and makes it
    /// the source's last snapshot, in one transaction. An entry whose uid is
    /// journaled already is kept once; a snapshot at or before the source's
    /// last one writes nothing.
    pub fn commit_directory_snapshot(
        &mut self,
        source: &str,
        at_ms: i64,
        entries: &[NewDirectoryEntry],
        now_ms: i64,
    ) -> Result<SnapshotCommit, StoreError> {
        // IMMEDIATE: it reads before it writes (a deferred transaction
        // would lose the lock upgrade to a concurrent writer at once).
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .in_db(&self.path)?;
        let last: Option<i64> = tx
            .query_row(
                "SELECT last_at_ms FROM directory_snapshots WHERE source = ?1",
                params![source],
                |r| r.get(0),
            )
            .optional()
            .in_db(&self.path)?;
        if let Some(last) = last.filter(|l| *l >= at_ms) {
            return Ok(SnapshotCommit::AlreadyMade { at_ms: last });
        }
        let mut inserted = 0;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO directory_stream (uid, source, kind, created_at_ms, plain, ocsf, journaled_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT(uid) DO NOTHING",
                )
                .in_db(&self.path)?;
            for e in entries {
                inserted += insert
                    .execute(params![
                        e.uid, source, e.kind, at_ms, e.plain, e.ocsf, now_ms
                    ])
                    .in_db(&self.path)?;
            }
        }
        tx.execute(
            "INSERT INTO directory_snapshots (source, last_at_ms, entries, journaled_at_ms)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(source) DO UPDATE SET last_at_ms = excluded.last_at_ms,
               entries = excluded.entries, journaled_at_ms = excluded.journaled_at_ms",
            params![source, at_ms, inserted as i64, now_ms],
        )
        .in_db(&self.path)?;
        tx.commit().in_db(&self.path)?;
        Ok(SnapshotCommit::Journaled { inserted })
    }

    /// The last entry's seq (0 for none).
    pub fn head_directory_seq(&self) -> Result<i64, StoreError> {
        if !self.has_directory_stream() {
            return Ok(0);
        }
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM directory_stream",
                [],
                |r| r.get(0),
            )
            .in_db(&self.path)
    }

    /// When the oldest entry after `seq` was journaled, if any (the age of
    /// what a directory stream still has to deliver).
    pub fn oldest_directory_after(&self, seq: i64) -> Result<Option<i64>, StoreError> {
        if !self.has_directory_stream() {
            return Ok(None);
        }
        self.oldest_journaled_after("directory_stream", seq)
    }

    /// Entries after `seq` (what a directory stream still has to deliver).
    pub fn count_directory_after(&self, seq: i64) -> Result<i64, StoreError> {
        if !self.has_directory_stream() {
            return Ok(0);
        }
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM directory_stream WHERE seq > ?1",
                params![seq],
                |r| r.get(0),
            )
            .in_db(&self.path)
    }

    /// Up to `limit` entries after `after_seq`, in seq order.
    pub fn read_directory_entries(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<StoredDirectoryEntry>, StoreError> {
        if !self.has_directory_stream() {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, uid, source, kind, created_at_ms, plain, ocsf, journaled_at_ms
                 FROM directory_stream WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .in_db(&self.path)?;
        let rows = stmt
            .query_map(params![after_seq, limit as i64], |r| {
                Ok(StoredDirectoryEntry {
                    seq: r.get(0)?,
                    uid: r.get(1)?,
                    source: r.get(2)?,
                    kind: r.get(3)?,
                    at_ms: r.get(4)?,
                    plain: r.get(5)?,
                    ocsf: r.get(6)?,
                    journaled_at_ms: r.get(7)?,
                })
            })
            .in_db(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().in_db(&self.path)
    }

    /// Deletes the entries of snapshots older than `older_than_ms` that
    /// every directory stream in `sinks` (their cursor rows,
    /// `<sink>.directory`) has delivered, except those a dead letter refers
    /// to (replayable until replayed or purged). Returns entries deleted.
    pub fn prune_directory_stream(
        &mut self,
        sinks: &[&str],
        older_than_ms: i64,
    ) -> Result<usize, StoreError> {
        if !self.has_directory_stream() {
            return Ok(0);
        }
        let mut delivered = i64::MAX;
        for sink in sinks {
            delivered = delivered.min(self.sink_cursor(&format!("{sink}.{DIRECTORY_SUFFIX}"))?.seq);
        }
        let mut total = 0;
        loop {
            let n = self
                .conn
                .execute(
                    "DELETE FROM directory_stream WHERE seq IN (
                       SELECT seq FROM directory_stream WHERE created_at_ms < ?1 AND seq <= ?2
                         AND seq NOT IN (SELECT seq FROM dead_letters WHERE sink LIKE '%.directory')
                       LIMIT 10000)",
                    params![older_than_ms, delivered],
                )
                .in_db(&self.path)?;
            total += n;
            if n < 10000 {
                break;
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Columns, FindingForm, JournalRow, NewDeadLetter, RowRenderer};
    use super::*;

    /// Reads the directory stream in one form, as a sink's format does.
    struct Form(FindingForm);

    impl RowRenderer for Form {
        fn columns(&self) -> Columns {
            Columns::Directory(self.0)
        }
        fn render(&self, row: &JournalRow<'_>) -> String {
            row.raw.to_string()
        }
    }

    fn entry(uid: &str, kind: &str) -> NewDirectoryEntry {
        NewDirectoryEntry {
            uid: uid.into(),
            kind: kind.into(),
            plain: format!(r#"{{"uid":"{uid}"}}"#),
            ocsf: format!(r#"{{"metadata":{{"uid":"{uid}"}}}}"#),
        }
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn a_snapshot_is_journaled_once_with_its_time() {
        let (_dir, mut store) = open();
        assert_eq!(store.directory_snapshot("acme").unwrap(), None);
        let first = [entry("u1", "snapshot"), entry("u2", "snapshot")];
        assert_eq!(
            store
                .commit_directory_snapshot("acme", 1_000, &first, 5)
                .unwrap(),
            SnapshotCommit::Journaled { inserted: 2 }
        );
        assert_eq!(
            store.directory_snapshot("acme").unwrap(),
            Some(SnapshotState {
                at_ms: 1_000,
                entries: 2,
                journaled_at_ms: 5
            })
        );
        // Made again (a restart that found it due): nothing is written.
        assert_eq!(
            store
                .commit_directory_snapshot("acme", 1_000, &first, 6)
                .unwrap(),
            SnapshotCommit::AlreadyMade { at_ms: 1_000 }
        );
        assert_eq!(
            store
                .commit_directory_snapshot("acme", 900, &first, 6)
                .unwrap(),
            SnapshotCommit::AlreadyMade { at_ms: 1_000 }
        );
        // A later snapshot whose entries were journaled already keeps each
        // uid once; another source's snapshots are its own.
        let later = [entry("u2", "snapshot"), entry("u3", "joined")];
        assert_eq!(
            store
                .commit_directory_snapshot("acme", 2_000, &later, 7)
                .unwrap(),
            SnapshotCommit::Journaled { inserted: 1 }
        );
        assert_eq!(
            store
                .commit_directory_snapshot("other", 1_000, &[entry("o1", "snapshot")], 7)
                .unwrap(),
            SnapshotCommit::Journaled { inserted: 1 }
        );
        let stored = store.read_directory_entries(0, 10).unwrap();
        assert_eq!(store.head_directory_seq().unwrap(), stored[3].seq);
        assert_eq!(store.count_directory_after(stored[0].seq).unwrap(), 3);
        let uids: Vec<(&str, &str, i64)> = stored
            .iter()
            .map(|e| (e.uid.as_str(), e.source.as_str(), e.at_ms))
            .collect();
        assert_eq!(
            uids,
            [
                ("u1", "acme", 1_000),
                ("u2", "acme", 1_000),
                ("u3", "acme", 2_000),
                ("o1", "other", 1_000)
            ]
        );
        assert_eq!(stored[2].kind, "joined");
        // A sink reads each form as a batch: the uid as the record's id,
        // the snapshot time as its time.
        let ocsf = store
            .read_batch(stored[0].seq, 10, 1 << 20, &Form(FindingForm::Ocsf))
            .unwrap();
        assert_eq!(ocsf.len(), 3);
        assert_eq!(ocsf[0].activity_id, "u2");
        assert_eq!(ocsf[0].created_at_ms, 1_000);
        assert_eq!(ocsf[0].payload, r#"{"metadata":{"uid":"u2"}}"#);
        let plain = store
            .read_range(2_000, 2_001, 0, 10, &Form(FindingForm::Plain))
            .unwrap();
        assert_eq!(plain.len(), 1);
        assert_eq!(plain[0].payload, r#"{"uid":"u3"}"#);
    }

    #[test]
    fn entries_are_pruned_once_old_and_delivered_by_every_stream() {
        let (_dir, mut store) = open();
        let entries: Vec<_> = (0..4)
            .map(|i| entry(&format!("u{i}"), "snapshot"))
            .collect();
        store
            .commit_directory_snapshot("acme", 1_000, &entries[..2], 5)
            .unwrap();
        store
            .commit_directory_snapshot("acme", 5_000, &entries[2..], 6)
            .unwrap();
        // `a` delivered everything but dead-lettered seq 1; `b` has seq 1 only.
        let dead = [NewDeadLetter {
            seq: 1,
            activity_id: "u0".into(),
            reason: "too big".into(),
            response: "413".into(),
        }];
        store
            .advance_sink("a.directory", 4, None, 3, &dead, 7)
            .unwrap();
        store
            .advance_sink("b.directory", 1, None, 1, &[], 7)
            .unwrap();
        // Nothing older than the cutoff that both passed but the dead letter.
        assert_eq!(store.prune_directory_stream(&["a", "b"], 2_000).unwrap(), 0);
        store
            .advance_sink("b.directory", 4, None, 3, &[], 8)
            .unwrap();
        assert_eq!(store.prune_directory_stream(&["a", "b"], 2_000).unwrap(), 1);
        let left: Vec<String> = store
            .read_directory_entries(0, 10)
            .unwrap()
            .into_iter()
            .map(|e| e.uid)
            .collect();
        assert_eq!(
            left,
            ["u0", "u2", "u3"],
            "the dead letter and the newer snapshot stay"
        );
        // The snapshot state stays: the next snapshot is still due from it.
        assert_eq!(
            store.directory_snapshot("acme").unwrap().unwrap().at_ms,
            5_000
        );
    }

    #[test]
    fn a_schema_5_database_gets_the_directory_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(Store::open(&path).unwrap());
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "DROP TABLE directory_stream; DROP TABLE directory_snapshots;
                 PRAGMA user_version = 5;",
            )
            .unwrap();
        }
        // `status` of a new binary while the old daemon runs: no stream yet.
        let old = Store::open_readonly(&path).unwrap();
        assert!(!old.has_directory_stream());
        assert_eq!(old.directory_snapshot("acme").unwrap(), None);
        assert_eq!(old.head_directory_seq().unwrap(), 0);
        assert_eq!(old.count_directory_after(0).unwrap(), 0);
        assert!(old.read_directory_entries(0, 10).unwrap().is_empty());
        drop(old);
        // The daemon's open migrates.
        let mut store = Store::open(&path).unwrap();
        assert!(store.has_directory_stream());
        assert_eq!(store.schema_version(), super::super::SCHEMA_VERSION);
        store
            .commit_directory_snapshot("acme", 1, &[entry("u", "snapshot")], 2)
            .unwrap();
        assert_eq!(store.head_directory_seq().unwrap(), 1);
    }
}
