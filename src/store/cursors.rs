//! Each sink's cursor (the last record its destination acknowledged, and a
//! file sink's committed length) and its dead letters: advanced together in
//! one transaction.

use super::*;

impl Store {
    // ---- sink cursors and dead letters ---------------------------------

    pub fn sink_cursor(&self, sink: &str) -> Result<SinkCursor, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq, file_offset, delivered, last_success_ms, last_error, last_error_ms
                 FROM sink_cursors WHERE sink = ?1",
                params![sink],
                |r| {
                    Ok(SinkCursor {
                        seq: r.get(0)?,
                        file_offset: r.get(1)?,
                        delivered: r.get(2)?,
                        last_success_ms: r.get(3)?,
                        last_error: r.get(4)?,
                        last_error_ms: r.get(5)?,
                    })
                },
            )
            .optional()
            .in_db(&self.path)?
            .unwrap_or_default())
    }

    /// Advances a sink's cursor after its destination acknowledged a batch
    /// ending at `seq` (invariant 3). Dead letters of the batch are written in
    /// the same transaction, so a rejected record is never both skipped and
    /// unrecorded.
    pub fn advance_sink(
        &mut self,
        sink: &str,
        seq: i64,
        file_offset: Option<i64>,
        delivered: i64,
        dead: &[NewDeadLetter],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction().in_db(&self.path)?;
        for d in dead {
            insert_dead_letter(&tx, &self.path, sink, d, now_ms)?;
        }
        tx.execute(
            "INSERT INTO sink_cursors (sink, seq, file_offset, delivered, last_success_ms) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(sink) DO UPDATE SET seq = MAX(seq, excluded.seq), file_offset = excluded.file_offset,
               delivered = delivered + excluded.delivered, last_success_ms = excluded.last_success_ms,
               last_error = NULL, last_error_ms = NULL",
            params![sink, seq, file_offset, delivered, now_ms],
        ).in_db(&self.path)?;
        tx.commit().in_db(&self.path)?;
        Ok(())
    }

    /// Records the file length a file sink's next batch starts at, before
    /// that batch is written: the length of a file it has never written to
    /// (otherwise a crash after the first batch was written but before its
    /// commit would leave lines recovery cannot tell from someone else's, and
    /// they would be written again), or 0 just after it rotated.
    pub fn record_file_offset(&mut self, sink: &str, offset: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO sink_cursors (sink, seq, file_offset, delivered) VALUES (?1, 0, ?2, 0)
             ON CONFLICT(sink) DO UPDATE SET file_offset = excluded.file_offset",
                params![sink, offset],
            )
            .in_db(&self.path)?;
        Ok(())
    }

    pub fn record_sink_error(
        &mut self,
        sink: &str,
        error: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO sink_cursors (sink, seq, last_error, last_error_ms) VALUES (?1, 0, ?2, ?3)
             ON CONFLICT(sink) DO UPDATE SET last_error = excluded.last_error, last_error_ms = excluded.last_error_ms",
            params![sink, error, now_ms],
        ).in_db(&self.path)?;
        Ok(())
    }

    pub fn dead_letter_count(&self, sink: &str) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM dead_letters WHERE sink = ?1",
                params![sink],
                |r| r.get(0),
            )
            .in_db(&self.path)
    }

    /// A sink's dead letters, oldest first; only the one with `id` when given.
    pub fn dead_letters(&self, sink: &str, id: Option<i64>) -> Result<Vec<DeadLetter>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, sink, seq, activity_id, reason, response, at_ms FROM dead_letters
             WHERE sink = ?1 AND (?2 IS NULL OR id = ?2) ORDER BY id",
            )
            .in_db(&self.path)?;
        let rows = stmt
            .query_map(params![sink, id], |r| {
                Ok(DeadLetter {
                    id: r.get(0)?,
                    sink: r.get(1)?,
                    seq: r.get(2)?,
                    activity_id: r.get(3)?,
                    reason: r.get(4)?,
                    response: r.get(5)?,
                    at_ms: r.get(6)?,
                })
            })
            .in_db(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().in_db(&self.path)
    }

    /// After a dead-letter replay: removes the dead letters the destination
    /// now accepted and records the new answer on the ones it rejected
    /// again, in one transaction. Returns the number removed.
    pub fn settle_dead_letters(
        &mut self,
        sink: &str,
        delivered: &[i64],
        rejected_again: &[(i64, String, String)],
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        let tx = self.conn.transaction().in_db(&self.path)?;
        let mut removed = 0;
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM dead_letters WHERE sink = ?1 AND id = ?2")
                .in_db(&self.path)?;
            for id in delivered {
                removed += delete.execute(params![sink, id]).in_db(&self.path)?;
            }
            let mut update = tx.prepare_cached(
                "UPDATE dead_letters SET reason = ?3, response = ?4, at_ms = ?5 WHERE sink = ?1 AND id = ?2",
            ).in_db(&self.path)?;
            for (id, reason, response) in rejected_again {
                update
                    .execute(params![sink, id, reason, response, now_ms])
                    .in_db(&self.path)?;
            }
        }
        tx.commit().in_db(&self.path)?;
        Ok(removed)
    }

    /// Records rejections without moving the sink's cursor (`claudit
    /// replay`); a record already dead-lettered for the sink gets the new
    /// answer instead of a second row.
    pub fn add_dead_letters(
        &mut self,
        sink: &str,
        dead: &[NewDeadLetter],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction().in_db(&self.path)?;
        {
            let mut update = tx.prepare_cached(
                "UPDATE dead_letters SET reason = ?3, response = ?4, at_ms = ?5 WHERE sink = ?1 AND seq = ?2",
            ).in_db(&self.path)?;
            for d in dead {
                if update
                    .execute(params![sink, d.seq, d.reason, d.response, now_ms])
                    .in_db(&self.path)?
                    == 0
                {
                    insert_dead_letter(&tx, &self.path, sink, d, now_ms)?;
                }
            }
        }
        tx.commit().in_db(&self.path)?;
        Ok(())
    }

    /// Deletes a sink's dead letters (all, or the one with `id`). Returns
    /// how many.
    pub fn purge_dead_letters(&mut self, sink: &str, id: Option<i64>) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "DELETE FROM dead_letters WHERE sink = ?1 AND (?2 IS NULL OR id = ?2)",
                params![sink, id],
            )
            .in_db(&self.path)
    }
}

/// Writes one dead letter of `sink` inside `tx`, the transaction of the
/// caller's cursor move or replay: the one place a dead letter is inserted.
fn insert_dead_letter(
    tx: &rusqlite::Transaction,
    path: &Path,
    sink: &str,
    d: &NewDeadLetter,
    now_ms: i64,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO dead_letters (sink, seq, activity_id, reason, response, at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .in_db(path)?
    .execute(params![
        sink,
        d.seq,
        d.activity_id,
        d.reason,
        d.response,
        now_ms
    ])
    .in_db(path)?;
    Ok(())
}
