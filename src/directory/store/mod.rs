//! The directory's tables in the state database: facts with their valid
//! time and the journal seq they became known at (the model is explained in
//! `directory/mod.rs`), the sync's progress, and refresh requests.
//!
//! Facts are never updated in place. Changing what is known about an entity
//! marks the versions it replaces as superseded at the writer's
//! `learned_seq` and inserts the new versions, known from `learned_seq`: a
//! journal row with seq `s` sees the versions with `learned_seq < s` that
//! were not superseded before it (`superseded_seq` null or `>= s`). Every
//! write goes through one [`Writer`] (an IMMEDIATE transaction), which
//! reads `learned_seq` inside the transaction: no journal row can be
//! inserted between that read and the commit, so a row never sees a fact
//! that was committed after it was. The sync's own bookkeeping (its run,
//! lists, staged pages, refresh requests) is written through a `Writer` too,
//! in the same transaction as the facts a page yields.
//!
//! Every SQLite error leaves this module as a [`StoreError`] naming the
//! database (`.in_db(path)`), as in the rest of the store.

use std::path::PathBuf;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::model::{Key, Kind};
use crate::store::{InDatabase, Store, StoreError};

mod runs;
pub use runs::{
    ListRow, SeenItem, SyncState, begin_run, finish_run, oldest_refresh_request, pending_lists,
    record_error, record_page, restart_list, sync_state, take_refresh_requests,
};

/// The state database's schema version that added the directory's tables
/// (`store/schema.rs`, migration 4).
pub const SINCE_SCHEMA: i64 = 4;

/// One stored version of what is known about an entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub id: i64,
    pub source: String,
    pub key: Key,
    /// Canonical JSON of the kind's attributes (`model.rs`).
    pub attrs: String,
    /// When it became true; `None` = before anything claudit knows.
    pub valid_from_ms: Option<i64>,
    /// When it stopped being true; `None` = still true as far as known.
    pub valid_to_ms: Option<i64>,
    /// Journal rows with a greater seq see this version...
    pub learned_seq: i64,
    /// ...which was written at this time (for `claudit directory show`).
    pub learned_ms: i64,
    /// ...until rows after this seq, which see what replaced it.
    pub superseded_seq: Option<i64>,
    /// What established it: `sync` or the id of the activity that said so.
    pub evidence: String,
}

impl Fact {
    /// Whether the journal row with this seq knows of this version.
    pub fn known_to(&self, seq: i64) -> bool {
        self.learned_seq < seq && self.superseded_seq.is_none_or(|s| seq <= s)
    }

    /// Whether the version holds at `t` (epoch ms).
    pub fn holds_at(&self, t: i64) -> bool {
        self.valid_from_ms.is_none_or(|f| f <= t) && self.valid_to_ms.is_none_or(|to| t < to)
    }
}

const FACT_COLUMNS: &str = "id, source, kind, scope, entity, item, attrs, valid_from_ms, valid_to_ms, learned_seq, learned_ms, superseded_seq, evidence";

fn fact_row(r: &rusqlite::Row) -> rusqlite::Result<Fact> {
    let kind: String = r.get(2)?;
    Ok(Fact {
        id: r.get(0)?,
        source: r.get(1)?,
        key: Key {
            // Only this module writes the column.
            kind: Kind::parse(&kind).unwrap_or(Kind::Org),
            scope: r.get(3)?,
            entity: r.get(4)?,
            item: r.get(5)?,
        },
        attrs: r.get(6)?,
        valid_from_ms: r.get(7)?,
        valid_to_ms: r.get(8)?,
        learned_seq: r.get(9)?,
        learned_ms: r.get(10)?,
        superseded_seq: r.get(11)?,
        evidence: r.get(12)?,
    })
}

/// The highest journal seq ever assigned (pruned rows included): rows
/// journaled later get a greater one.
fn journal_sequence(conn: &Connection) -> rusqlite::Result<i64> {
    Ok(conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'journal'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// The directory's change counter (bumped by every write that changed a
/// fact) and the journal sequence, read in one statement so both describe
/// the same moment: a cache loaded then is complete for journal rows up to
/// that sequence (`enrich.rs`).
pub fn version_and_sequence(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        "SELECT (SELECT version FROM directory_version WHERE id = 1),
                COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'journal'), 0)",
        [],
        |r| Ok((r.get::<_, Option<i64>>(0)?.unwrap_or(0), r.get(1)?)),
    )
}

/// Every fact, for building the in-memory index (on the index's own
/// connection; its caller names the database in errors).
pub fn all_facts(conn: &Connection) -> rusqlite::Result<Vec<Fact>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {FACT_COLUMNS} FROM directory_facts ORDER BY id"
    ))?;
    let rows = stmt.query_map([], fact_row)?;
    rows.collect()
}

/// Every version of the entities of `source` whose entity id is `entity`
/// (any kind), oldest first: what `claudit directory show --user` prints.
pub fn facts_about(store: &Store, source: &str, entity: &str) -> Result<Vec<Fact>, StoreError> {
    let query = || -> rusqlite::Result<Vec<Fact>> {
        let mut stmt = store.conn().prepare(&format!(
            "SELECT {FACT_COLUMNS} FROM directory_facts WHERE source = ?1 AND (entity = ?2 OR item = ?2)
             ORDER BY kind, scope, entity, item, id"
        ))?;
        let rows = stmt.query_map(params![source, entity], fact_row)?;
        rows.collect()
    };
    query().in_db(store.path())
}

/// The current (not superseded) versions of one kind in a source.
pub fn current_of_kind(store: &Store, source: &str, kind: Kind) -> Result<Vec<Fact>, StoreError> {
    let query = || -> rusqlite::Result<Vec<Fact>> {
        let mut stmt = store.conn().prepare_cached(&format!(
            "SELECT {FACT_COLUMNS} FROM directory_facts
             WHERE source = ?1 AND kind = ?2 AND superseded_seq IS NULL ORDER BY id"
        ))?;
        let rows = stmt.query_map(params![source, kind.as_str()], fact_row)?;
        rows.collect()
    };
    query().in_db(store.path())
}

/// A write to the directory of one source: every version it writes becomes
/// known to journal rows journaled after it commits.
pub struct Writer<'c> {
    tx: Transaction<'c>,
    /// The database, for errors.
    path: PathBuf,
    source: String,
    learned_seq: i64,
    now_ms: i64,
    changed: bool,
}

impl<'c> Writer<'c> {
    /// Starts the write (takes the database's write lock).
    pub fn begin(
        store: &'c mut Store,
        source: &str,
        now_ms: i64,
    ) -> Result<Writer<'c>, StoreError> {
        let path = store.path().to_path_buf();
        let tx = store
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .in_db(&path)?;
        let learned_seq = journal_sequence(&tx).in_db(&path)?;
        Ok(Writer {
            tx,
            path,
            source: source.to_string(),
            learned_seq,
            now_ms,
            changed: false,
        })
    }

    pub fn learned_seq(&self) -> i64 {
        self.learned_seq
    }

    /// Commits; returns whether any fact changed.
    pub fn commit(self) -> Result<bool, StoreError> {
        if self.changed {
            self.tx
                .execute(
                    "UPDATE directory_version SET version = version + 1 WHERE id = 1",
                    [],
                )
                .in_db(&self.path)?;
        }
        self.tx.commit().in_db(&self.path)?;
        Ok(self.changed)
    }

    /// Runs `sql` with `params`, naming the database in an error.
    fn execute(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize, StoreError> {
        self.tx.execute(sql, params).in_db(&self.path)
    }

    /// The facts `sql` selects (it selects `FACT_COLUMNS`).
    fn facts(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Fact>, StoreError> {
        let query = || -> rusqlite::Result<Vec<Fact>> {
            let mut stmt = self.tx.prepare_cached(sql)?;
            let rows = stmt.query_map(params, fact_row)?;
            rows.collect()
        };
        query().in_db(&self.path)
    }

    /// The current versions of one entity, earliest first (unknown start first).
    pub fn current(&self, key: &Key) -> Result<Vec<Fact>, StoreError> {
        self.facts(
            &format!(
                "SELECT {FACT_COLUMNS} FROM directory_facts
                 WHERE source = ?1 AND kind = ?2 AND scope = ?3 AND entity = ?4 AND item = ?5
                   AND superseded_seq IS NULL
                 ORDER BY COALESCE(valid_from_ms, -9223372036854775807), id"
            ),
            params![
                self.source,
                key.kind.as_str(),
                key.scope,
                key.entity,
                key.item
            ],
        )
    }

    /// The current open versions (still true) of one kind within a scope.
    pub fn open_in_scope(&self, kind: Kind, scope: &str) -> Result<Vec<Fact>, StoreError> {
        self.facts(
            &format!(
                "SELECT {FACT_COLUMNS} FROM directory_facts
                 WHERE source = ?1 AND kind = ?2 AND scope = ?3
                   AND superseded_seq IS NULL AND valid_to_ms IS NULL
                 ORDER BY entity, item"
            ),
            params![self.source, kind.as_str(), scope],
        )
    }

    /// The current open versions of one kind whose entity is `entity`, in
    /// any scope (a user's group memberships, an org's...).
    pub fn open_of_entity(&self, kind: Kind, entity: &str) -> Result<Vec<Fact>, StoreError> {
        self.facts(
            &format!(
                "SELECT {FACT_COLUMNS} FROM directory_facts
                 WHERE source = ?1 AND kind = ?2 AND entity = ?3
                   AND superseded_seq IS NULL AND valid_to_ms IS NULL
                 ORDER BY scope, item"
            ),
            params![self.source, kind.as_str(), entity],
        )
    }

    /// Whether the source has ever had `user` as a member of any
    /// organization (any version, current or not).
    pub fn knows_member(&self, user: &str) -> Result<bool, StoreError> {
        self.tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM directory_facts
                 WHERE source = ?1 AND entity = ?2 AND kind = 'member')",
            )
            .and_then(|mut stmt| stmt.query_row(params![self.source, user], |r| r.get(0)))
            .in_db(&self.path)
    }

    fn supersede(&mut self, fact: &Fact) -> Result<(), StoreError> {
        self.execute(
            "UPDATE directory_facts SET superseded_seq = ?2 WHERE id = ?1",
            params![fact.id, self.learned_seq],
        )?;
        self.changed = true;
        Ok(())
    }

    fn insert(
        &mut self,
        key: &Key,
        attrs: &str,
        from: Option<i64>,
        to: Option<i64>,
        evidence: &str,
    ) -> Result<(), StoreError> {
        if let (Some(f), Some(t)) = (from, to)
            && t <= f
        {
            // An empty interval says nothing.
            return Ok(());
        }
        self.execute(
            "INSERT INTO directory_facts (source, kind, scope, entity, item, attrs, valid_from_ms,
               valid_to_ms, learned_seq, learned_ms, evidence)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                self.source,
                key.kind.as_str(),
                key.scope,
                key.entity,
                key.item,
                attrs,
                from,
                to,
                self.learned_seq,
                self.now_ms,
                evidence
            ],
        )?;
        self.changed = true;
        Ok(())
    }

    /// The sync saw the entity, with these attributes, at `t`. `claimed_from`
    /// is when the API says it began (a join date), used when the entity is
    /// new to claudit and that time is not after `t`.
    ///
    /// An observation never rewrites what is known after it: a version
    /// that starts, or a removal dated, after `t` wins (the page was read
    /// before a change the feed already reported).
    pub fn present(
        &mut self,
        key: &Key,
        attrs: &str,
        claimed_from: Option<i64>,
        t: i64,
        evidence: &str,
    ) -> Result<(), StoreError> {
        let current = self.current(key)?;
        if let Some(open) = current.iter().find(|f| f.valid_to_ms.is_none()) {
            if open.valid_from_ms.is_some_and(|from| from > t) || open.attrs == attrs {
                return Ok(());
            }
            let open = open.clone();
            self.supersede(&open)?;
            self.insert(
                key,
                &open.attrs,
                open.valid_from_ms,
                Some(t),
                &open.evidence,
            )?;
            return self.insert(key, attrs, Some(t), None, evidence);
        }
        let last_end = current.iter().filter_map(|f| f.valid_to_ms).max();
        if last_end.is_some_and(|end| end > t) {
            return Ok(());
        }
        let mut from = claimed_from.filter(|c| *c <= t).unwrap_or(t);
        if let Some(end) = last_end {
            from = from.max(end);
        }
        self.insert(key, attrs, Some(from), None, evidence)
    }

    /// The sync did not see the entity at `t`: it ended then (unless what
    /// is known starts after `t`).
    pub fn absent(&mut self, key: &Key, t: i64) -> Result<(), StoreError> {
        let current = self.current(key)?;
        if let Some(open) = current.iter().find(|f| f.valid_to_ms.is_none())
            && open.valid_from_ms.is_none_or(|from| from <= t)
        {
            let open = open.clone();
            self.supersede(&open)?;
            self.insert(
                key,
                &open.attrs,
                open.valid_from_ms,
                Some(t),
                &open.evidence,
            )?;
        }
        Ok(())
    }

    /// An activity says the entity ended at `t` (a user removed, a group
    /// deleted). The version holding at `t` is cut there; an entity claudit
    /// never saw is recorded as having ended at `t` with `fallback_attrs`
    /// and an unknown start (so later activities of a removed user are
    /// known to come after the removal).
    pub fn ended_at(
        &mut self,
        key: &Key,
        t: i64,
        fallback_attrs: &str,
        evidence: &str,
    ) -> Result<(), StoreError> {
        let current = self.current(key)?;
        if let Some(v) = current.iter().find(|f| f.holds_at(t)) {
            let v = v.clone();
            self.supersede(&v)?;
            return self.insert(key, &v.attrs, v.valid_from_ms, Some(t), evidence);
        }
        if current.is_empty() {
            self.insert(key, fallback_attrs, None, Some(t), evidence)?;
        }
        Ok(())
    }

    /// An activity says the entity began at `t` (a member added to a
    /// group). A version the sync observed later is extended back to `t`
    /// (unless the entity ended in between).
    pub fn started_at(
        &mut self,
        key: &Key,
        t: i64,
        attrs: &str,
        evidence: &str,
    ) -> Result<(), StoreError> {
        let current = self.current(key)?;
        if current.iter().any(|f| f.holds_at(t)) {
            return Ok(());
        }
        let next = current
            .iter()
            .filter(|f| f.valid_from_ms.is_some_and(|from| from > t))
            .min_by_key(|f| f.valid_from_ms);
        if let Some(next) = next {
            let ended_between = current.iter().any(|f| {
                f.valid_to_ms
                    .is_some_and(|to| to > t && Some(to) <= next.valid_from_ms)
            });
            if !ended_between {
                let next = next.clone();
                self.supersede(&next)?;
                self.insert(key, &next.attrs, Some(t), next.valid_to_ms, evidence)?;
            }
            return Ok(());
        }
        self.insert(key, attrs, Some(t), None, evidence)
    }

    /// An activity says the entity's attributes changed at `t` (a role
    /// change): the version holding at `t` is split there, the later part
    /// with `change(old attrs)`.
    pub fn changed_at(
        &mut self,
        key: &Key,
        t: i64,
        change: impl FnOnce(&str) -> String,
        evidence: &str,
    ) -> Result<(), StoreError> {
        let current = self.current(key)?;
        let Some(v) = current.iter().find(|f| f.holds_at(t)).cloned() else {
            return Ok(());
        };
        let new = change(&v.attrs);
        if new == v.attrs {
            return Ok(());
        }
        self.supersede(&v)?;
        self.insert(key, &v.attrs, v.valid_from_ms, Some(t), &v.evidence)?;
        self.insert(key, &new, Some(t), v.valid_to_ms, evidence)
    }
}

/// Deletes what no journal row can see any more: versions superseded
/// before the oldest row still in the journal, and versions that ended
/// before the oldest `created_at` still in it (except a member's last
/// version: it says the user left, which later activities still need).
/// Returns the number of facts deleted. Bumps the directory's version so
/// every process reloads its index.
///
/// `snapshot_sources` are the sources whose directory snapshots are being
/// made (a sink takes the directory stream): versions that ended after the
/// oldest of their last snapshots also stay, since the next snapshot lists
/// the changes since then. A source whose snapshots stopped (its directory
/// or the stream turned off, the source removed) holds nothing back.
pub fn prune(store: &mut Store, snapshot_sources: &[&str]) -> Result<usize, StoreError> {
    let path = store.path().to_path_buf();
    prune_facts(store.conn_mut(), snapshot_sources).in_db(&path)
}

fn prune_facts(conn: &mut Connection, snapshot_sources: &[&str]) -> rusqlite::Result<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (min_seq, min_created): (Option<i64>, Option<i64>) = tx.query_row(
        "SELECT MIN(seq), MIN(created_at_ms) FROM journal",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    // The next directory snapshot reports the changes since the previous
    // one (`ocsf::inventory`), so versions that ended after it stay even
    // when the journal no longer reaches back that far (a retention shorter
    // than `snapshot_every`): without them a changed member would be
    // reported as having joined. Only the sources whose snapshots are being
    // made count: a stale snapshot row would otherwise hold versions back
    // for ever.
    let mut last_snapshot: Option<i64> = None;
    for source in snapshot_sources {
        let at: Option<i64> = tx
            .query_row(
                "SELECT last_at_ms FROM directory_snapshots WHERE source = ?1",
                params![source],
                |r| r.get(0),
            )
            .optional()?;
        last_snapshot = match (last_snapshot, at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let min_created = match (min_created, last_snapshot) {
        (Some(created), Some(snapshot)) => Some(created.min(snapshot)),
        (created, _) => created,
    };
    // With an empty journal, every row to come is journaled after now.
    let min_seq = match min_seq {
        Some(s) => s,
        None => journal_sequence(&tx)? + 1,
    };
    let mut deleted = tx.execute(
        "DELETE FROM directory_facts WHERE superseded_seq IS NOT NULL AND superseded_seq < ?1",
        params![min_seq],
    )?;
    if let Some(min_created) = min_created {
        deleted += tx.execute(
            "DELETE FROM directory_facts AS f
             WHERE f.valid_to_ms IS NOT NULL AND f.valid_to_ms < ?1
               AND NOT (f.kind = 'member' AND NOT EXISTS (
                 SELECT 1 FROM directory_facts AS g
                 WHERE g.source = f.source AND g.kind = f.kind AND g.scope = f.scope
                   AND g.entity = f.entity AND g.item = f.item AND g.id <> f.id
                   AND g.superseded_seq IS NULL
                   AND COALESCE(g.valid_from_ms, -9223372036854775807)
                       >= COALESCE(f.valid_from_ms, -9223372036854775807)))",
            params![min_created],
        )?;
    }
    if deleted > 0 {
        tx.execute(
            "UPDATE directory_version SET version = version + 1 WHERE id = 1",
            [],
        )?;
    }
    tx.commit()?;
    Ok(deleted)
}

/// Counts per kind: entities true now, and entities no version of which
/// is (a departed member, a deleted group), for `status` and metrics.
pub fn current_counts(store: &Store, source: &str) -> Result<Vec<(Kind, i64, i64)>, StoreError> {
    let query = || -> rusqlite::Result<Vec<(String, i64, i64)>> {
        let mut stmt = store.conn().prepare_cached(
            "SELECT kind, SUM(open > 0), SUM(open = 0) FROM (
               SELECT kind, SUM(valid_to_ms IS NULL) AS open FROM directory_facts
               WHERE source = ?1 AND superseded_seq IS NULL GROUP BY kind, scope, entity, item)
             GROUP BY kind",
        )?;
        let rows = stmt.query_map(params![source], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect()
    };
    Ok(query()
        .in_db(store.path())?
        .into_iter()
        .filter_map(|(kind, open, ended)| Some((Kind::parse(&kind)?, open, ended)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::model::List;
    use crate::store::Store;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        (dir, store)
    }

    /// Journals `n` dummy rows (to move the journal's seq on).
    fn journal(store: &mut Store, n: usize) {
        let conn = store.conn_mut();
        for _ in 0..n {
            conn.execute(
                "INSERT INTO journal (activity_id, source, created_at_ms, activity_type, raw, ocsf, journaled_at_ms)
                 VALUES (lower(hex(randomblob(8))), 's', 0, 't', '{}', '', 0)",
                [],
            )
            .unwrap();
        }
    }

    fn facts(store: &Store, key: &Key) -> Vec<Fact> {
        all_facts(store.conn())
            .unwrap()
            .into_iter()
            .filter(|f| &f.key == key)
            .collect()
    }

    /// What a journal row with `seq` knows holds at `t`: the attrs.
    fn known(store: &Store, key: &Key, seq: i64, t: i64) -> Option<String> {
        facts(store, key)
            .into_iter()
            .find(|f| f.known_to(seq) && f.holds_at(t))
            .map(|f| f.attrs)
    }

    #[test]
    fn observations_version_the_past_and_never_change_what_earlier_rows_saw() {
        let (_d, mut s) = store();
        let k = Key::member("org", "user_1");
        journal(&mut s, 3); // rows 1..=3 exist before anything is known
        let mut w = Writer::begin(&mut s, "src", 1_000).unwrap();
        assert_eq!(w.learned_seq(), 3);
        // First seen at t=100 with a join date of 50.
        w.present(&k, "{\"role\":\"user\"}", Some(50), 100, "sync")
            .unwrap();
        assert!(w.commit().unwrap());
        journal(&mut s, 2); // rows 4, 5
        assert_eq!(known(&s, &k, 3, 60), None, "row 3 was journaled before");
        assert_eq!(known(&s, &k, 4, 60).as_deref(), Some("{\"role\":\"user\"}"));
        assert_eq!(known(&s, &k, 4, 40), None, "before the join date");

        // The same observation again changes nothing.
        let mut w = Writer::begin(&mut s, "src", 2_000).unwrap();
        w.present(&k, "{\"role\":\"user\"}", Some(50), 200, "sync")
            .unwrap();
        assert!(!w.commit().unwrap());

        // A role change observed at t=300, then the user gone at t=400.
        let mut w = Writer::begin(&mut s, "src", 3_000).unwrap();
        w.present(&k, "{\"role\":\"admin\"}", Some(50), 300, "sync")
            .unwrap();
        w.commit().unwrap();
        journal(&mut s, 1); // row 6
        let mut w = Writer::begin(&mut s, "src", 4_000).unwrap();
        w.absent(&k, 400).unwrap();
        w.commit().unwrap();
        journal(&mut s, 1); // row 7

        // Row 5 still sees what it saw: a user, still a member at 350.
        assert_eq!(
            known(&s, &k, 5, 350).as_deref(),
            Some("{\"role\":\"user\"}")
        );
        // Row 6 knows of the change but not of the removal.
        assert_eq!(
            known(&s, &k, 6, 350).as_deref(),
            Some("{\"role\":\"admin\"}")
        );
        assert_eq!(
            known(&s, &k, 6, 450).as_deref(),
            Some("{\"role\":\"admin\"}")
        );
        // Row 7 knows both.
        assert_eq!(
            known(&s, &k, 7, 250).as_deref(),
            Some("{\"role\":\"user\"}")
        );
        assert_eq!(
            known(&s, &k, 7, 350).as_deref(),
            Some("{\"role\":\"admin\"}")
        );
        assert_eq!(known(&s, &k, 7, 450), None);
    }

    #[test]
    fn a_removal_from_the_feed_is_dated_by_the_activity_and_refines_the_sync() {
        let (_d, mut s) = store();
        let k = Key::member("org", "user_1");
        let mut w = Writer::begin(&mut s, "src", 0).unwrap();
        w.present(&k, "{}", Some(10), 100, "sync").unwrap();
        w.commit().unwrap();
        // The sync notices the absence at 500 before the feed's activity arrives.
        let mut w = Writer::begin(&mut s, "src", 0).unwrap();
        w.absent(&k, 500).unwrap();
        w.commit().unwrap();
        // The feed then says the removal happened at 420.
        let mut w = Writer::begin(&mut s, "src", 0).unwrap();
        w.ended_at(&k, 420, "{}", "activity_1").unwrap();
        w.commit().unwrap();
        journal(&mut s, 1);
        let seq = 1;
        assert!(known(&s, &k, seq, 419).is_some());
        assert!(known(&s, &k, seq, 420).is_none());
        let current: Vec<Fact> = facts(&s, &k)
            .into_iter()
            .filter(|f| f.superseded_seq.is_none())
            .collect();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0].valid_to_ms, Some(420));
        assert_eq!(current[0].evidence, "activity_1");

        // A removal of a user claudit never saw: known to have ended then.
        let unknown = Key::member("org", "user_2");
        let mut w = Writer::begin(&mut s, "src", 0).unwrap();
        w.ended_at(&unknown, 300, "{\"email\":\"x@y.z\"}", "activity_2")
            .unwrap();
        w.commit().unwrap();
        let f = &facts(&s, &unknown)[0];
        assert_eq!((f.valid_from_ms, f.valid_to_ms), (None, Some(300)));
    }

    #[test]
    fn stale_observations_do_not_undo_what_the_feed_said() {
        let (_d, mut s) = store();
        let k = Key::group_member("group_1", "user_1");
        // The feed: added at 200, removed at 300.
        let mut w = Writer::begin(&mut s, "src", 0).unwrap();
        w.started_at(&k, 200, "{}", "a1").unwrap();
        w.ended_at(&k, 300, "{}", "a2").unwrap();
        w.commit().unwrap();
        // A members page read at 250 (before the removal) is applied later.
        let mut w = Writer::begin(&mut s, "src", 0).unwrap();
        w.present(&k, "{}", None, 250, "sync").unwrap();
        assert!(!w.commit().unwrap());
        // The sync observed a membership from 500; the feed says it began at 450.
        let k2 = Key::group_member("group_1", "user_2");
        let mut w = Writer::begin(&mut s, "src", 0).unwrap();
        w.present(&k2, "{}", None, 500, "sync").unwrap();
        w.started_at(&k2, 450, "{}", "a3").unwrap();
        w.commit().unwrap();
        journal(&mut s, 1);
        assert!(known(&s, &k2, 1, 460).is_some());
        assert!(known(&s, &k2, 1, 440).is_none());
    }

    #[test]
    fn a_role_change_splits_the_version_at_its_time() {
        let (_d, mut s) = store();
        let k = Key::member("org", "user_1");
        let mut w = Writer::begin(&mut s, "src", 0).unwrap();
        w.present(&k, "{\"role\":\"user\"}", Some(0), 100, "sync")
            .unwrap();
        w.changed_at(&k, 150, |_| "{\"role\":\"owner\"}".to_string(), "a1")
            .unwrap();
        w.commit().unwrap();
        journal(&mut s, 1);
        assert_eq!(
            known(&s, &k, 1, 149).as_deref(),
            Some("{\"role\":\"user\"}")
        );
        assert_eq!(
            known(&s, &k, 1, 150).as_deref(),
            Some("{\"role\":\"owner\"}")
        );
        // The sync then sees the new role: nothing to change.
        let mut w = Writer::begin(&mut s, "src", 0).unwrap();
        w.present(&k, "{\"role\":\"owner\"}", Some(0), 200, "sync")
            .unwrap();
        assert!(!w.commit().unwrap());
    }

    #[test]
    fn prune_keeps_what_remaining_rows_can_see_and_a_members_last_version() {
        let (_d, mut s) = store();
        let member = Key::member("org", "gone");
        let group = Key::group_member("g", "gone");
        let mut w = Writer::begin(&mut s, "src", 0).unwrap();
        w.present(&member, "{\"role\":\"user\"}", Some(0), 10, "sync")
            .unwrap();
        w.present(&group, "{}", Some(0), 10, "sync").unwrap();
        w.commit().unwrap();
        let mut w = Writer::begin(&mut s, "src", 0).unwrap();
        w.absent(&member, 50).unwrap();
        w.absent(&group, 50).unwrap();
        w.commit().unwrap();
        // One row remains, created after the removal, journaled after it.
        s.conn_mut()
            .execute(
                "INSERT INTO journal (activity_id, source, created_at_ms, activity_type, raw, ocsf, journaled_at_ms)
                 VALUES ('a', 's', 100, 't', '{}', '', 0)",
                [],
            )
            .unwrap();
        let (v0, _) = version_and_sequence(s.conn()).unwrap();
        let deleted = prune(&mut s, &["src"]).unwrap();
        // The superseded open versions (2) and the group membership that
        // ended before the oldest row (1) go; the member's end stays.
        assert_eq!(deleted, 3);
        assert_eq!(facts(&s, &member).len(), 1);
        assert_eq!(facts(&s, &member)[0].valid_to_ms, Some(50));
        assert!(facts(&s, &group).is_empty());
        assert!(version_and_sequence(s.conn()).unwrap().0 > v0);
    }

    /// A group membership from 0 that ended at 50, one journal row created
    /// at 100, and a directory snapshot of the source made at 40.
    fn ended_after_the_last_snapshot() -> (tempfile::TempDir, Store, Key) {
        let (d, mut s) = store();
        let group = Key::group_member("g", "gone");
        let mut w = Writer::begin(&mut s, "src", 0).unwrap();
        w.present(&group, "{}", Some(0), 10, "sync").unwrap();
        w.commit().unwrap();
        let mut w = Writer::begin(&mut s, "src", 0).unwrap();
        w.absent(&group, 50).unwrap();
        w.commit().unwrap();
        s.conn_mut()
            .execute_batch(
                "INSERT INTO journal (activity_id, source, created_at_ms, activity_type, raw, ocsf, journaled_at_ms)
                 VALUES ('a', 's', 100, 't', '{}', '', 0);
                 INSERT INTO directory_snapshots (source, last_at_ms, entries, journaled_at_ms)
                 VALUES ('src', 40, 1, 40);",
            )
            .unwrap();
        (d, s, group)
    }

    #[test]
    fn prune_keeps_what_the_next_directory_snapshot_compares_with() {
        let (_d, mut s, group) = ended_after_the_last_snapshot();
        // The next snapshot compares with the one made at 40, before the
        // membership ended: the ended version stays although no journal
        // row is that old.
        prune(&mut s, &["src"]).unwrap();
        let kept: Vec<Fact> = facts(&s, &group)
            .into_iter()
            .filter(|f| f.superseded_seq.is_none())
            .collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].valid_to_ms, Some(50));
        // Once the snapshot has moved past the end, the version goes.
        s.conn_mut()
            .execute("UPDATE directory_snapshots SET last_at_ms = 60", [])
            .unwrap();
        prune(&mut s, &["src"]).unwrap();
        assert!(facts(&s, &group).is_empty());
    }

    #[test]
    fn a_source_whose_snapshots_stopped_holds_nothing_back() {
        let (_d, mut s, group) = ended_after_the_last_snapshot();
        // The stream was turned off (or the source removed): its last
        // snapshot row stays, and must not keep versions for ever.
        prune(&mut s, &[]).unwrap();
        assert!(facts(&s, &group).is_empty());
    }

    #[test]
    fn runs_stage_pages_and_resume_where_they_stopped() {
        let (_d, mut s) = store();
        let run = begin_run(&mut s, "src", "full", &[List::Orgs, List::Groups], 5).unwrap();
        let lists = pending_lists(&s, "src", run).unwrap();
        assert_eq!(lists.len(), 2);
        record_page(
            &mut s,
            "src",
            run,
            &lists[0],
            Some("page_2"),
            &[SeenItem {
                entity: "org_a".into(),
                attrs: "{}".into(),
                created_ms: Some(1),
            }],
            &["req_1".into()],
            6,
        )
        .unwrap();
        // What a restart finds.
        let state = sync_state(&s, "src").unwrap();
        assert_eq!(
            (state.run_id, state.run_kind.as_deref()),
            (run, Some("full"))
        );
        assert_eq!(state.requests, 1);
        let lists = pending_lists(&s, "src", run).unwrap();
        assert_eq!(lists[0].page_token.as_deref(), Some("page_2"));
        assert_eq!(lists[0].pages, 1);
        assert_eq!(s.recent_request_ids(0).unwrap(), vec!["req_1".to_string()]);
        let mut w = Writer::begin(&mut s, "src", 7).unwrap();
        assert_eq!(w.seen_items(run, &List::Orgs).unwrap().len(), 1);
        w.append_lists(run, &[List::Users("org_a".into()), List::Groups])
            .unwrap();
        w.finish_list(run, &lists[0]).unwrap();
        w.present(&Key::org("org_a"), "{}", Some(1), 7, "sync")
            .unwrap();
        w.commit().unwrap();
        let lists = pending_lists(&s, "src", run).unwrap();
        assert_eq!(
            lists.iter().map(|l| l.list.clone()).collect::<Vec<_>>(),
            vec![List::Groups, List::Users("org_a".into())]
        );
        finish_run(&mut s, "src", 20).unwrap();
        let state = sync_state(&s, "src").unwrap();
        assert_eq!(state.run_kind, None);
        assert_eq!(
            (state.last_full_ms, state.last_full_duration_ms),
            (Some(20), Some(15))
        );
        assert!(pending_lists(&s, "src", run).unwrap().is_empty());
    }

    #[test]
    fn refresh_requests_are_deduplicated_and_taken_once() {
        let (_d, mut s) = store();
        let users = List::Users("org".into());
        let request = |s: &mut Store, list: &List, reason: &str, at: i64| {
            let w = Writer::begin(s, "src", at).unwrap();
            w.request_refresh(list, reason).unwrap();
            w.commit().unwrap();
        };
        request(&mut s, &users, "org_user_invite_accepted", 10);
        request(&mut s, &users, "scim_user_created", 11);
        request(&mut s, &List::Groups, "group_created", 30);
        assert_eq!(oldest_refresh_request(&s, "src").unwrap(), Some(10));
        let taken = take_refresh_requests(&mut s, "src", 20).unwrap();
        assert_eq!(taken, vec![(users, "org_user_invite_accepted".to_string())]);
        assert_eq!(take_refresh_requests(&mut s, "src", 20).unwrap(), vec![]);
        assert_eq!(take_refresh_requests(&mut s, "src", 40).unwrap().len(), 1);
    }

    #[test]
    fn a_schema_3_database_is_read_without_a_directory_and_migrates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let config = crate::config::load_str(
            &format!(
                "[state]\npath = {path:?}\n[[sources]]\nname = \"src\"\napi_key = \"sk-ant-api01-x\"\n\
                 [sources.directory]\n[[sinks]]\nname = \"f\"\ntype = \"file\"\npath = {:?}\n",
                dir.path().join("out.ndjson")
            ),
            &dir.path().join("c.toml"),
            &|_| None,
        )
        .unwrap();
        // A database as the release before the directory left it.
        {
            let mut s = Store::open(&path).unwrap();
            journal(&mut s, 1);
            s.conn()
                .execute_batch(
                    "DROP TABLE directory_facts; DROP TABLE directory_version;
                     DROP TABLE directory_sync; DROP TABLE directory_sync_lists;
                     DROP TABLE directory_sync_seen; DROP TABLE directory_refresh_requests;
                     ALTER TABLE journal DROP COLUMN backfill;
                     DROP TABLE findings; DROP TABLE detection_cursor;
                     PRAGMA user_version = 3;",
                )
                .unwrap();
        }
        let raw = r#"{"id":"a","actor":{"type":"user_actor","user_id":"u1"}}"#;
        let activity = crate::model::Activity::from_json(raw).unwrap();
        // `status` of a new binary while the old daemon runs: no directory
        // yet, and no error; rendering goes on without context.
        let old = Store::open_readonly(&path).unwrap();
        assert_eq!(old.schema_version(), 3);
        assert!(
            crate::directory::show::status(&old, "src", true)
                .unwrap()
                .is_none()
        );
        let d = crate::directory::Directory::open(&path, config.directories())
            .unwrap()
            .unwrap();
        assert_eq!(d.context("src", 2, &activity), None);
        drop(old);
        // The daemon's open migrates; the directory then works.
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version(), crate::store::SCHEMA_VERSION);
        const { assert!(SINCE_SCHEMA <= crate::store::SCHEMA_VERSION) };
        let mut w = Writer::begin(&mut s, "src", 0).unwrap();
        w.present(
            &Key::member("org", "u1"),
            r#"{"name":"Ada"}"#,
            None,
            0,
            "sync",
        )
        .unwrap();
        w.commit().unwrap();
        journal(&mut s, 1);
        let d = crate::directory::Directory::open(&path, config.directories())
            .unwrap()
            .unwrap();
        assert_eq!(d.context("src", 1, &activity), None, "journaled before");
        let context = d.context("src", 2, &activity).unwrap();
        assert_eq!(context.actor.unwrap().name.as_deref(), Some("Ada"));
        assert!(
            crate::directory::show::status(&s, "src", true)
                .unwrap()
                .is_some()
        );
    }
}
