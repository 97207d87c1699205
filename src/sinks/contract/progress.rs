//! What part of a batch a destination already settled, for destinations
//! that send one batch as several requests or learn per record what was
//! accepted (Splunk HEC, Datadog, Sumo, Sentinel, Elasticsearch).
//!
//! When the third of four requests fails with a retryable error, the sink
//! task retries the whole batch. The records the first two requests carried
//! were acknowledged, and the records found too large were already judged;
//! sending them again would duplicate them. `BatchProgress` remembers both
//! for as long as the same batch comes back.

use std::collections::HashMap;

use super::{Outcome, Rejected};
use crate::model::BatchRecord;

#[derive(Debug, Default)]
pub struct BatchProgress {
    /// First seq of the batch this progress belongs to. The runner re-reads
    /// a retried batch from the same cursor, so the same first seq means the
    /// same batch (possibly grown by records journaled since).
    batch: Option<i64>,
    /// Settled records: `None` = acknowledged, `Some` = rejected.
    settled: HashMap<i64, Option<Rejected>>,
}

impl BatchProgress {
    /// Starts (or resumes) `records`. Returns true when this is the first
    /// attempt of the batch, false for a retry of the same batch.
    pub fn begin(&mut self, records: &[BatchRecord]) -> bool {
        let first = records.first().map(|r| r.seq);
        if self.batch == first {
            return false;
        }
        self.batch = first;
        self.settled.clear();
        true
    }

    /// The records of the batch still to send.
    pub fn pending<'r>(&self, records: &'r [BatchRecord]) -> Vec<&'r BatchRecord> {
        records
            .iter()
            .filter(|r| !self.settled.contains_key(&r.seq))
            .collect()
    }

    pub fn acknowledged(&mut self, seq: i64) {
        self.settled.insert(seq, None);
    }

    /// Every record of one accepted request.
    pub fn acknowledged_all<'r>(&mut self, records: impl IntoIterator<Item = &'r BatchRecord>) {
        for r in records {
            self.acknowledged(r.seq);
        }
    }

    pub fn rejected(&mut self, rejected: Rejected) {
        self.settled.insert(rejected.seq, Some(rejected));
    }

    /// Every record is settled: the outcome for the whole batch, in seq
    /// order; the progress is forgotten.
    pub fn finish(&mut self) -> Outcome {
        let mut rejected: Vec<Rejected> = self.settled.drain().filter_map(|(_, r)| r).collect();
        rejected.sort_by_key(|r| r.seq);
        self.batch = None;
        Outcome::Delivered { rejected }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: i64) -> BatchRecord {
        BatchRecord {
            seq,
            activity_id: format!("a{seq}"),
            created_at_ms: 0,
            payload: "{}".into(),
        }
    }

    #[test]
    fn a_retried_batch_skips_what_was_settled_and_a_new_batch_starts_clean() {
        let batch: Vec<_> = (1..=4).map(rec).collect();
        let mut p = BatchProgress::default();
        assert!(p.begin(&batch));
        p.acknowledged(1);
        p.rejected(Rejected {
            seq: 2,
            activity_id: "a2".into(),
            reason: "too large".into(),
            response: String::new(),
        });
        assert!(!p.begin(&batch), "same batch again is a retry");
        let grown: Vec<_> = (1..=5).map(rec).collect();
        assert!(!p.begin(&grown), "a retry that grew is still a retry");
        assert_eq!(p.pending(&grown).len(), 3);
        let left: Vec<i64> = p.pending(&batch).iter().map(|r| r.seq).collect();
        assert_eq!(left, [3, 4]);
        p.acknowledged(3);
        p.acknowledged(4);
        match p.finish() {
            Outcome::Delivered { rejected } => {
                assert_eq!(rejected.len(), 1);
                assert_eq!(rejected[0].seq, 2);
            }
            other => panic!("{other:?}"),
        }
        let next: Vec<_> = (5..=6).map(rec).collect();
        assert!(p.begin(&next));
        assert_eq!(p.pending(&next).len(), 2);
        // The same batch after finish is a new attempt (a crash-free resend
        // cannot happen, but nothing stale may leak into it).
        assert!(p.begin(&batch));
        assert_eq!(p.pending(&batch).len(), 4);
    }
}
