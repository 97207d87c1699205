//! The sync's bookkeeping in the state database: its runs, the lists a
//! run walks and the pages staged from them, the items a list has seen,
//! the directory requests made, and refresh requests. Written through the
//! facts' [`Writer`] where it must commit with the facts a page yields.

use rusqlite::{OptionalExtension, params};

use super::Writer;
use crate::directory::model::List;
use crate::store::{InDatabase, Store, StoreError};

/// What the sync of one source has done, and is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    /// The current run, or the last one when `run_kind` is `None`.
    pub run_id: i64,
    /// `full` or `targeted` while a run is in progress.
    pub run_kind: Option<String>,
    pub run_started_ms: Option<i64>,
    /// When the last full sync completed, and how long it took.
    pub last_full_ms: Option<i64>,
    pub last_full_duration_ms: Option<i64>,
    /// When the last run (of either kind) completed.
    pub last_run_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
    /// Directory requests made, ever.
    pub requests: i64,
}

pub fn sync_state(store: &Store, source: &str) -> Result<SyncState, StoreError> {
    let state = store
        .conn()
        .query_row(
            "SELECT run_id, run_kind, run_started_ms, last_full_ms, last_full_duration_ms,
                    last_run_ms, last_error, last_error_ms, requests
             FROM directory_sync WHERE source = ?1",
            params![source],
            |r| {
                Ok(SyncState {
                    run_id: r.get(0)?,
                    run_kind: r.get(1)?,
                    run_started_ms: r.get(2)?,
                    last_full_ms: r.get(3)?,
                    last_full_duration_ms: r.get(4)?,
                    last_run_ms: r.get(5)?,
                    last_error: r.get(6)?,
                    last_error_ms: r.get(7)?,
                    requests: r.get(8)?,
                })
            },
        )
        .optional()
        .in_db(store.path())?;
    Ok(state.unwrap_or_default())
}

/// One list of a run and how far its walk got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRow {
    pub position: i64,
    pub list: List,
    /// The `page` token for the next page; `None` = the first page.
    pub page_token: Option<String>,
    pub pages: i64,
}

/// The lists of a run still to walk, in order.
pub fn pending_lists(store: &Store, source: &str, run_id: i64) -> Result<Vec<ListRow>, StoreError> {
    let query = || -> rusqlite::Result<Vec<Option<ListRow>>> {
        let mut stmt = store.conn().prepare_cached(
            "SELECT position, list, page_token, pages FROM directory_sync_lists
             WHERE source = ?1 AND run_id = ?2 AND done = 0 ORDER BY position",
        )?;
        let rows = stmt.query_map(params![source, run_id], |r| {
            let list: String = r.get(1)?;
            let row = ListRow {
                position: r.get(0)?,
                list: List::Orgs,
                page_token: r.get(2)?,
                pages: r.get(3)?,
            };
            // A list name this binary cannot read is skipped, not fatal.
            Ok(List::parse(&list).map(|list| ListRow { list, ..row }))
        })?;
        rows.collect()
    };
    Ok(query().in_db(store.path())?.into_iter().flatten().collect())
}

/// Starts a run of `kind` over `lists`; returns its id. A run in progress
/// is abandoned (its staged items are deleted).
pub fn begin_run(
    store: &mut Store,
    source: &str,
    kind: &str,
    lists: &[List],
    now_ms: i64,
) -> Result<i64, StoreError> {
    let w = Writer::begin(store, source, now_ms)?;
    let previous: i64 =
        w.tx.query_row(
            "SELECT run_id FROM directory_sync WHERE source = ?1",
            params![source],
            |r| r.get(0),
        )
        .optional()
        .in_db(&w.path)?
        .unwrap_or(0);
    let run_id = previous + 1;
    w.execute(
        "DELETE FROM directory_sync_lists WHERE source = ?1",
        params![source],
    )?;
    w.execute(
        "DELETE FROM directory_sync_seen WHERE source = ?1",
        params![source],
    )?;
    w.execute(
        "INSERT INTO directory_sync (source, run_id, run_kind, run_started_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(source) DO UPDATE SET run_id = excluded.run_id, run_kind = excluded.run_kind,
           run_started_ms = excluded.run_started_ms",
        params![source, run_id, kind, now_ms],
    )?;
    w.append_lists(run_id, lists)?;
    w.commit()?;
    Ok(run_id)
}

/// One item of a list page, staged until its list is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenItem {
    pub entity: String,
    pub attrs: String,
    /// When the API says the item began (a join date), if it says.
    pub created_ms: Option<i64>,
}

/// The sync's bookkeeping, in the transaction of a [`Writer`] (so a list's
/// last page, the facts it yields and the lists it leads to commit
/// together).
impl Writer<'_> {
    /// Adds lists at the end of a run (those already in it are not added twice).
    pub fn append_lists(&self, run_id: i64, lists: &[List]) -> Result<(), StoreError> {
        let source = &self.source;
        let mut next: i64 = self
            .tx
            .query_row(
                "SELECT COALESCE(MAX(position), -1) + 1 FROM directory_sync_lists WHERE source = ?1 AND run_id = ?2",
                params![source, run_id],
                |r| r.get(0),
            )
            .in_db(&self.path)?;
        for list in lists {
            let text = list.to_text();
            let exists = self
                .tx
                .query_row(
                    "SELECT 1 FROM directory_sync_lists WHERE source = ?1 AND run_id = ?2 AND list = ?3",
                    params![source, run_id, text],
                    |_| Ok(()),
                )
                .optional()
                .in_db(&self.path)?
                .is_some();
            if !exists {
                self.execute(
                    "INSERT INTO directory_sync_lists (source, run_id, position, list) VALUES (?1, ?2, ?3, ?4)",
                    params![source, run_id, next, text],
                )?;
                next += 1;
            }
        }
        Ok(())
    }

    /// Counts directory requests and keeps their request ids (so the
    /// activities they cause are tagged as claudit's own).
    pub fn record_requests(&self, request_ids: &[String]) -> Result<(), StoreError> {
        for id in request_ids {
            self.execute(
                "INSERT INTO request_ids (request_id, source, at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(request_id) DO NOTHING",
                params![id, self.source, self.now_ms],
            )?;
        }
        self.execute(
            "INSERT INTO directory_sync (source, requests) VALUES (?1, ?2)
             ON CONFLICT(source) DO UPDATE SET requests = requests + excluded.requests",
            params![self.source, request_ids.len().max(1) as i64],
        )?;
        Ok(())
    }

    /// The staged items of a list.
    pub fn seen_items(&self, run_id: i64, list: &List) -> Result<Vec<SeenItem>, StoreError> {
        let query = || -> rusqlite::Result<Vec<SeenItem>> {
            let mut stmt = self.tx.prepare_cached(
                "SELECT entity, attrs, created_ms FROM directory_sync_seen
                 WHERE source = ?1 AND run_id = ?2 AND list = ?3 ORDER BY entity",
            )?;
            let rows = stmt.query_map(params![self.source, run_id, list.to_text()], |r| {
                Ok(SeenItem {
                    entity: r.get(0)?,
                    attrs: r.get(1)?,
                    created_ms: r.get(2)?,
                })
            })?;
            rows.collect()
        };
        query().in_db(&self.path)
    }

    /// Marks a list walked and drops its staged items.
    pub fn finish_list(&self, run_id: i64, row: &ListRow) -> Result<(), StoreError> {
        self.execute(
            "UPDATE directory_sync_lists SET done = 1, page_token = NULL
             WHERE source = ?1 AND run_id = ?2 AND position = ?3",
            params![self.source, run_id, row.position],
        )?;
        self.execute(
            "DELETE FROM directory_sync_seen WHERE source = ?1 AND run_id = ?2 AND list = ?3",
            params![self.source, run_id, row.list.to_text()],
        )?;
        Ok(())
    }

    /// Asks the sync to walk `list` again soon (an activity said it changed).
    pub fn request_refresh(&self, list: &List, reason: &str) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO directory_refresh_requests (source, list, reason, requested_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(source, list) DO NOTHING",
            params![self.source, list.to_text(), reason, self.now_ms],
        )?;
        Ok(())
    }
}

/// Stores one page of a list: its items, the token of the next page, and
/// the request ids of the calls, in one transaction. A restart resumes
/// from `next_token`.
#[allow(clippy::too_many_arguments)]
pub fn record_page(
    store: &mut Store,
    source: &str,
    run_id: i64,
    row: &ListRow,
    next_token: Option<&str>,
    items: &[SeenItem],
    request_ids: &[String],
    now_ms: i64,
) -> Result<(), StoreError> {
    let w = Writer::begin(store, source, now_ms)?;
    let list = row.list.to_text();
    for item in items {
        w.execute(
            "INSERT INTO directory_sync_seen (source, run_id, list, entity, attrs, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(source, run_id, list, entity) DO UPDATE SET attrs = excluded.attrs,
               created_ms = excluded.created_ms",
            params![
                source,
                run_id,
                list,
                item.entity,
                item.attrs,
                item.created_ms
            ],
        )?;
    }
    w.execute(
        "UPDATE directory_sync_lists SET page_token = ?4, pages = pages + 1
         WHERE source = ?1 AND run_id = ?2 AND position = ?3",
        params![source, run_id, row.position, next_token],
    )?;
    w.record_requests(request_ids)?;
    w.commit()?;
    Ok(())
}

/// Forgets a list's walk (its page token was refused): it starts again
/// from its first page.
pub fn restart_list(
    store: &mut Store,
    source: &str,
    run_id: i64,
    row: &ListRow,
) -> Result<(), StoreError> {
    let w = Writer::begin(store, source, 0)?;
    w.execute(
        "UPDATE directory_sync_lists SET page_token = NULL, pages = 0
         WHERE source = ?1 AND run_id = ?2 AND position = ?3",
        params![source, run_id, row.position],
    )?;
    w.execute(
        "DELETE FROM directory_sync_seen WHERE source = ?1 AND run_id = ?2 AND list = ?3",
        params![source, run_id, row.list.to_text()],
    )?;
    w.commit()?;
    Ok(())
}

/// Ends the current run.
pub fn finish_run(store: &mut Store, source: &str, now_ms: i64) -> Result<(), StoreError> {
    let w = Writer::begin(store, source, now_ms)?;
    w.execute(
        "UPDATE directory_sync SET
           last_full_ms = CASE WHEN run_kind = 'full' THEN ?2 ELSE last_full_ms END,
           last_full_duration_ms = CASE WHEN run_kind = 'full' THEN ?2 - run_started_ms ELSE last_full_duration_ms END,
           last_run_ms = ?2, run_kind = NULL, last_error = NULL, last_error_ms = NULL
         WHERE source = ?1",
        params![source, now_ms],
    )?;
    w.execute(
        "DELETE FROM directory_sync_lists WHERE source = ?1",
        params![source],
    )?;
    w.commit()?;
    Ok(())
}

pub fn record_error(
    store: &Store,
    source: &str,
    error: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    store
        .conn()
        .execute(
            "INSERT INTO directory_sync (source, last_error, last_error_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(source) DO UPDATE SET last_error = excluded.last_error, last_error_ms = excluded.last_error_ms",
            params![source, error, now_ms],
        )
        .in_db(store.path())?;
    Ok(())
}

/// Takes the refresh requests made at or before `until_ms`.
pub fn take_refresh_requests(
    store: &mut Store,
    source: &str,
    until_ms: i64,
) -> Result<Vec<(List, String)>, StoreError> {
    let w = Writer::begin(store, source, until_ms)?;
    let query = || -> rusqlite::Result<Vec<(String, String)>> {
        let mut stmt = w.tx.prepare(
            "SELECT list, reason FROM directory_refresh_requests
             WHERE source = ?1 AND requested_ms <= ?2 ORDER BY requested_ms, list",
        )?;
        let rows = stmt.query_map(params![source, until_ms], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    };
    let out = query()
        .in_db(&w.path)?
        .into_iter()
        .filter_map(|(list, reason)| Some((List::parse(&list)?, reason)))
        .collect();
    w.execute(
        "DELETE FROM directory_refresh_requests WHERE source = ?1 AND requested_ms <= ?2",
        params![source, until_ms],
    )?;
    w.commit()?;
    Ok(out)
}

/// The time of the oldest refresh request waiting, if any.
pub fn oldest_refresh_request(store: &Store, source: &str) -> Result<Option<i64>, StoreError> {
    store
        .conn()
        .query_row(
            "SELECT MIN(requested_ms) FROM directory_refresh_requests WHERE source = ?1",
            params![source],
            |r| r.get(0),
        )
        .in_db(store.path())
}
