//! Reading the journal: batches after a sink's cursor, each row handed to
//! the reader's `RowRenderer`, the archive's raw rows, and the damage report
//! of a row SQLite cannot read.

use super::error::UnreadableValue;
use super::*;

impl Store {
    // ---- journal reads (sinks) -------------------------------------------

    /// The highest seq in the journal (0 if empty).
    pub fn head_seq(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM journal", [], |r| {
                r.get(0)
            })
            .in_db(&self.path)
    }

    /// Whether an activity is already in the journal (the source checks the
    /// few records it raises an alert or counts a metric for, so a re-read
    /// by the sweep is not reported twice).
    pub fn is_journaled(&self, activity_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM journal WHERE activity_id = ?1",
                params![activity_id],
                |_| Ok(()),
            )
            .optional()
            .in_db(&self.path)?
            .is_some())
    }

    pub fn journal_rows(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM journal", [], |r| r.get(0))
            .in_db(&self.path)
    }

    /// Up to `max_events` records after `after_seq`, stopping before the
    /// batch would exceed `max_bytes` (but always at least one record).
    pub fn read_batch(
        &self,
        after_seq: i64,
        max_events: usize,
        max_bytes: usize,
        form: &dyn RowRenderer,
    ) -> Result<Vec<BatchRecord>, StoreError> {
        self.read_after(after_seq, form, |batch, bytes, next| {
            batch.len() < max_events && (batch.is_empty() || bytes + next <= max_bytes)
        })
    }

    /// Journal records after `after_seq`, in order, until their NDJSON lines
    /// reach at least `min_bytes` (or the journal ends). The file sink's crash
    /// recovery uses it: the bytes past the committed length are a prefix of
    /// exactly these lines, and the last of them may be torn, so the record
    /// that crosses `min_bytes` must be included (unlike `read_batch`, which
    /// stops before a record that would exceed its limit).
    pub fn read_covering(
        &self,
        after_seq: i64,
        min_bytes: usize,
        form: &dyn RowRenderer,
    ) -> Result<Vec<BatchRecord>, StoreError> {
        self.read_after(after_seq, form, |_, bytes, _| bytes < min_bytes)
    }

    /// Records after `after_seq` in seq order, each as one payload (raw or
    /// OCSF), while `more(batch so far, its NDJSON bytes, the next line's
    /// bytes)` holds. Rows are read lazily, so the stop rule bounds the work.
    fn read_after(
        &self,
        after_seq: i64,
        form: &dyn RowRenderer,
        mut more: impl FnMut(&[BatchRecord], usize, usize) -> bool,
    ) -> Result<Vec<BatchRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM {} WHERE seq > ?1 ORDER BY seq",
            self.payload_columns(form),
            form.columns().table()
        );
        let mut stmt = self.conn.prepare_cached(&sql).in_db(&self.path)?;
        let mut rows = stmt.query(params![after_seq]).in_db(&self.path)?;
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        while let Some(r) = rows.next().in_db(&self.path)? {
            let record = batch_record(form, r).in_db(&self.path)?;
            let line = record.payload.len() + 1;
            if !more(&batch, bytes, line) {
                break;
            }
            bytes += line;
            batch.push(record);
        }
        Ok(batch)
    }

    /// Journal records in a created_at range (for `replay`), after `after_seq`.
    pub fn read_range(
        &self,
        since_ms: i64,
        until_ms: i64,
        after_seq: i64,
        limit: usize,
        form: &dyn RowRenderer,
    ) -> Result<Vec<BatchRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM {}
             WHERE seq > ?1 AND created_at_ms >= ?2 AND created_at_ms < ?3 ORDER BY seq LIMIT ?4",
            self.payload_columns(form),
            form.columns().table()
        );
        let mut stmt = self.conn.prepare_cached(&sql).in_db(&self.path)?;
        let rows = stmt
            .query_map(params![after_seq, since_ms, until_ms, limit as i64], |r| {
                batch_record(form, r)
            })
            .in_db(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().in_db(&self.path)
    }

    /// Records after `seq` (what a sink still has to deliver).
    pub fn count_after(&self, seq: i64) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM journal WHERE seq > ?1",
                params![seq],
                |r| r.get(0),
            )
            .in_db(&self.path)
    }

    /// created_at of the oldest record after `seq`, if any.
    pub fn oldest_after(&self, seq: i64) -> Result<Option<i64>, StoreError> {
        self.conn.query_row(
            "SELECT MIN(created_at_ms) FROM (SELECT created_at_ms FROM journal WHERE seq > ?1 ORDER BY seq LIMIT 10000)",
            params![seq],
            |r| r.get(0),
        ).in_db(&self.path)
    }

    /// `journaled_at_ms` of the oldest row after `seq` of a stream's own
    /// table (`findings`, `directory_stream`), if any: the age of what its
    /// deliveries still have to send. The first 10,000 rows are enough, as
    /// for [`Store::oldest_after`].
    pub(super) fn oldest_journaled_after(
        &self,
        table: &'static str,
        seq: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT MIN(journaled_at_ms) FROM
                       (SELECT journaled_at_ms FROM {table} WHERE seq > ?1 ORDER BY seq LIMIT 10000)"
                ),
                params![seq],
                |r| r.get(0),
            )
            .in_db(&self.path)
    }

    // ---- archive sink reads -----------------------------------------------

    /// Up to `limit` journal rows after `after_seq`, with their source, for
    /// the archive sink (which groups by source and hour of created_at).
    pub fn read_archive_batch(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<ArchiveRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, activity_id, source, created_at_ms, raw FROM journal
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .in_db(&self.path)?;
        let rows = stmt
            .query_map(params![after_seq, limit as i64], archive_row)
            .in_db(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().in_db(&self.path)
    }

    /// Journal rows with `after_seq < seq <= up_to_seq` and created_at in
    /// `[since_ms, until_ms)`, up to `limit`, for `claudit archive verify`
    /// (every one must be in the archive).
    pub fn read_archived_range(
        &self,
        after_seq: i64,
        up_to_seq: i64,
        since_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<ArchiveRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, activity_id, source, created_at_ms, raw FROM journal
             WHERE seq > ?1 AND seq <= ?2 AND created_at_ms >= ?3 AND created_at_ms < ?4
             ORDER BY seq LIMIT ?5",
            )
            .in_db(&self.path)?;
        let rows = stmt
            .query_map(
                params![after_seq, up_to_seq, since_ms, until_ms, limit as i64],
                archive_row,
            )
            .in_db(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().in_db(&self.path)
    }

    // ---- end of archive sink reads -------------------------------------------

    /// The journal record at `seq` in a sink's format, unless pruned.
    pub fn journal_record(
        &self,
        seq: i64,
        form: &dyn RowRenderer,
    ) -> Result<Option<BatchRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM {} WHERE seq = ?1",
            self.payload_columns(form),
            form.columns().table()
        );
        self.conn
            .query_row(&sql, params![seq], |r| batch_record(form, r))
            .optional()
            .in_db(&self.path)
    }
}

fn archive_row(r: &rusqlite::Row) -> rusqlite::Result<ArchiveRow> {
    journal_row(r, |r| {
        Ok(ArchiveRow {
            seq: r.get(0)?,
            activity_id: r.get(1)?,
            source: r.get(2)?,
            created_at_ms: r.get(3)?,
            raw: r.get(4)?,
        })
    })
}

impl Store {
    /// The columns `payload` reads, after seq, activity_id and created_at_ms.
    fn payload_columns(&self, form: &dyn RowRenderer) -> &'static str {
        match (form.columns(), self.version >= 2) {
            (Columns::Raw, _) => "seq, activity_id, created_at_ms, raw",
            (Columns::Findings(FindingForm::Ocsf), _) => "seq, uid, created_at_ms, ocsf",
            (Columns::Findings(FindingForm::Plain), _) => "seq, uid, created_at_ms, plain",
            (Columns::Directory(FindingForm::Ocsf), _) => "seq, uid, created_at_ms, ocsf",
            (Columns::Directory(FindingForm::Plain), _) => "seq, uid, created_at_ms, plain",
            (Columns::RawAndOrigin, _) => {
                "seq, activity_id, created_at_ms, raw, NULL, NULL, journaled_at_ms, source"
            }
            (Columns::All, true) => {
                "seq, activity_id, created_at_ms, raw, ocsf, context, journaled_at_ms, source"
            }
            (Columns::All, false) => {
                "seq, activity_id, created_at_ms, raw, ocsf, NULL, journaled_at_ms, source"
            }
        }
    }
}

/// A row's payload as `form` renders it, from the columns `payload_columns`
/// selects.
fn payload(form: &dyn RowRenderer, r: &rusqlite::Row) -> rusqlite::Result<String> {
    let (seq, created_at_ms) = (r.get(0)?, r.get(2)?);
    if matches!(
        form.columns(),
        Columns::Raw | Columns::Findings(_) | Columns::Directory(_)
    ) {
        let raw: String = r.get(3)?;
        return Ok(form.render(&JournalRow {
            seq,
            created_at_ms,
            raw: &raw,
            stored_ocsf: "",
            context: None,
            journaled_at_ms: 0,
            source: "",
        }));
    }
    let stored_ocsf = if form.columns() == Columns::All {
        text(r, 4)?.unwrap_or_default()
    } else {
        ""
    };
    if !stored_ocsf.is_empty() {
        // A row with its event stored is served as stored: nothing else of
        // it is read.
        return Ok(form.render(&JournalRow {
            seq,
            created_at_ms,
            raw: "",
            stored_ocsf,
            context: None,
            journaled_at_ms: 0,
            source: "",
        }));
    }
    let all = form.columns() == Columns::All;
    let raw = text(r, 3)?.unwrap_or_default();
    let context = if all { text(r, 5)? } else { None };
    let journaled_at_ms = if all { r.get(6)? } else { 0 };
    Ok(form.render(&JournalRow {
        seq,
        created_at_ms,
        raw,
        stored_ocsf,
        context,
        journaled_at_ms,
        source: text(r, 7)?.unwrap_or_default(),
    }))
}

/// Column `i` as text (`None` for NULL). Another type is an
/// `InvalidColumnType` naming the column, which `journal_row` turns into
/// the row's damage report (rusqlite's own `as_str` error names nothing).
fn text<'r>(r: &'r rusqlite::Row, i: usize) -> rusqlite::Result<Option<&'r str>> {
    match r.get_ref(i)? {
        rusqlite::types::ValueRef::Null => Ok(None),
        rusqlite::types::ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .map(Some)
            .map_err(|e| rusqlite::Error::Utf8Error(i, e)),
        other => Err(rusqlite::Error::InvalidColumnType(
            i,
            r.as_ref().column_name(i).unwrap_or("?").to_string(),
            other.data_type(),
        )),
    }
}

/// Reads a journal row with `read`. A value that is not of its column's
/// type (what SQLite returns from a damaged record) comes out as an
/// [`UnreadableValue`] naming the row's seq and the column, which
/// `StoreError::sqlite` turns into the recovery steps for that row.
fn journal_row<T>(
    r: &rusqlite::Row,
    read: impl FnOnce(&rusqlite::Row) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    read(r).map_err(|e| {
        let (index, found, not_utf8) = match &e {
            rusqlite::Error::InvalidColumnType(i, _, found) => (*i, *found, false),
            rusqlite::Error::Utf8Error(i, _) => (*i, rusqlite::types::Type::Text, true),
            _ => return e,
        };
        let Ok(seq) = r.get::<_, i64>(0) else {
            return e;
        };
        let column = r
            .as_ref()
            .column_name(index)
            .map(str::to_string)
            .unwrap_or_else(|_| format!("#{index}"));
        rusqlite::Error::FromSqlConversionFailure(
            index,
            found,
            Box::new(UnreadableValue {
                seq,
                column,
                found,
                not_utf8,
            }),
        )
    })
}

fn batch_record(form: &dyn RowRenderer, r: &rusqlite::Row) -> rusqlite::Result<BatchRecord> {
    journal_row(r, |r| {
        Ok(BatchRecord {
            seq: r.get(0)?,
            activity_id: r.get(1)?,
            created_at_ms: r.get(2)?,
            payload: payload(form, r)?,
        })
    })
}
