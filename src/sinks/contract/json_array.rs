//! Requests whose body is a JSON array of encoded events (Datadog log
//! items, Sentinel rows, webhook batches): packing a batch into such
//! requests under a byte limit and an item count ([`ArrayPacker`]), and
//! halving one that a limit lower than ours refused with 413
//! ([`ArrayRequest::halve`]), down to a single event, which is rejected
//! (dead-lettered), never truncated.

use std::borrow::Cow;
use std::collections::VecDeque;

use super::{BatchProgress, Rejected};
use crate::http_text::truncate;
use crate::model::BatchRecord;

/// One request whose body is a JSON array of encoded items, with the
/// records it carries in the same order. An item is the encoded event
/// (owned), or the record's payload itself (borrowed) when the event is
/// sent as it is.
#[derive(Debug, Default)]
pub struct ArrayRequest<'r> {
    pub records: Vec<&'r BatchRecord>,
    pub items: Vec<Cow<'r, str>>,
}

impl<'r> ArrayRequest<'r> {
    /// The request body: the items as a JSON array, uncompressed.
    pub fn body(&self) -> Vec<u8> {
        let len = self.items.iter().map(|i| i.len() + 1).sum::<usize>() + 2;
        let mut body = Vec::with_capacity(len);
        body.push(b'[');
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(item.as_bytes());
        }
        body.push(b']');
        body
    }

    /// The first and last seq of the records it carries ((0, 0) for none).
    pub fn seq_range(&self) -> (i64, i64) {
        (
            self.records.first().map_or(0, |r| r.seq),
            self.records.last().map_or(0, |r| r.seq),
        )
    }

    /// After a 413 from a limit lower than ours (a proxy, a changed service
    /// limit): the two halves of a request with more than one item, to send
    /// in its place, or the rejection of its single item as too large.
    /// `refused_by` names the destination ("the intake"), `answer` is its
    /// answer's body.
    pub fn halve(mut self, refused_by: &str, answer: &str) -> Result<(Self, Self), Rejected> {
        if self.items.len() > 1 {
            let mid = self.items.len() / 2;
            let items = self.items.split_off(mid);
            let records = self.records.split_off(mid);
            return Ok((self, ArrayRequest { records, items }));
        }
        Err(Rejected::of(
            self.records[0],
            format!("{refused_by} refused this single event as too large (HTTP 413)"),
            format!("HTTP 413: {}", truncate(answer, 1024)),
        ))
    }

    /// [`ArrayRequest::halve`] for a sink that sends a queue of requests
    /// and settles records in `progress`: both halves go back to the front
    /// of the queue, or the single item is rejected.
    pub fn halve_or_reject(
        self,
        queue: &mut VecDeque<ArrayRequest<'r>>,
        progress: &mut BatchProgress,
        refused_by: &str,
        answer: &str,
    ) {
        match self.halve(refused_by, answer) {
            Ok((first, second)) => {
                queue.push_front(second);
                queue.push_front(first);
            }
            Err(rejected) => progress.rejected(rejected),
        }
    }
}

/// A batch encoded into JSON-array requests.
#[derive(Debug)]
pub struct ArrayBatch<'r> {
    pub requests: Vec<ArrayRequest<'r>>,
    /// Records that cannot be sent whole (over a per-event limit).
    pub rejected: Vec<Rejected>,
    /// Records older than the destination indexes normally (still sent).
    pub stale: usize,
}

/// Packs encoded items, in order, into requests whose body (brackets,
/// items and the commas between them) is at most `max_bytes`, with at
/// most `max_items` items each. An item too large for a request of its own
/// still gets one: the caller rejects what is over its per-event limit
/// before pushing it.
#[derive(Debug)]
pub struct ArrayPacker<'r> {
    max_bytes: usize,
    max_items: usize,
    requests: Vec<ArrayRequest<'r>>,
    current: ArrayRequest<'r>,
    /// The body length of `current`.
    current_bytes: usize,
}

impl<'r> ArrayPacker<'r> {
    pub fn new(max_bytes: usize, max_items: usize) -> ArrayPacker<'r> {
        ArrayPacker {
            max_bytes,
            max_items,
            requests: Vec::new(),
            current: ArrayRequest::default(),
            current_bytes: 2,
        }
    }

    /// Adds the item of `record`, in a new request when the current one
    /// cannot take it.
    pub fn push(&mut self, record: &'r BatchRecord, item: Cow<'r, str>) {
        if !self.current.items.is_empty() {
            let added = item.len() + 1;
            if self.current.items.len() >= self.max_items
                || self.current_bytes + added > self.max_bytes
            {
                self.requests.push(std::mem::take(&mut self.current));
                self.current_bytes = 2;
            }
        }
        self.current_bytes += item.len() + usize::from(!self.current.items.is_empty());
        self.current.records.push(record);
        self.current.items.push(item);
    }

    /// The requests, in order.
    pub fn finish(mut self) -> Vec<ArrayRequest<'r>> {
        if !self.current.items.is_empty() {
            self.requests.push(self.current);
        }
        self.requests
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records with seq 1, 2, ... carrying `payloads`.
    fn numbered(payloads: &[&str]) -> Vec<BatchRecord> {
        (1..)
            .zip(payloads)
            .map(|(seq, payload)| BatchRecord {
                seq,
                activity_id: seq.to_string(),
                created_at_ms: 0,
                payload: payload.to_string(),
            })
            .collect()
    }

    /// Bodies are filled up to the byte limit exactly, never past it, and
    /// to the item count.
    #[test]
    fn requests_are_packed_to_the_byte_limit_and_the_item_count() {
        // Each item is 10 bytes: a body of n items is 2 + 10n + (n - 1).
        let records = numbered(&["\"12345678\""; 7]);
        let pack = |max_bytes: usize, max_items: usize| -> Vec<Vec<i64>> {
            let mut packer = ArrayPacker::new(max_bytes, max_items);
            for r in &records {
                packer.push(r, Cow::Borrowed(r.payload.as_str()));
            }
            packer
                .finish()
                .iter()
                .map(|req| {
                    let body = req.body();
                    assert!(body.len() <= max_bytes.max(12), "{}", body.len());
                    let parsed: Vec<String> = serde_json::from_slice(&body).unwrap();
                    assert_eq!(parsed.len(), req.records.len());
                    req.records.iter().map(|r| r.seq).collect()
                })
                .collect()
        };
        // Three items are exactly 34 bytes.
        assert_eq!(
            pack(34, usize::MAX),
            [vec![1, 2, 3], vec![4, 5, 6], vec![7]]
        );
        assert_eq!(
            pack(33, usize::MAX),
            [vec![1, 2], vec![3, 4], vec![5, 6], vec![7]]
        );
        assert_eq!(pack(1000, 4), [vec![1, 2, 3, 4], vec![5, 6, 7]]);
        // An item over the limit alone still gets a request of its own.
        assert_eq!(pack(5, usize::MAX).len(), 7);
        assert!(ArrayPacker::new(10, 10).finish().is_empty());
    }

    #[test]
    fn a_refused_request_halves_down_to_one_rejected_event() {
        let records = numbered(&["{}"; 3]);
        let mut packer = ArrayPacker::new(1000, 1000);
        for r in &records {
            packer.push(r, Cow::Owned(format!("[{}]", r.seq)));
        }
        let request = packer.finish().pop().unwrap();
        assert_eq!(request.seq_range(), (1, 3));
        let (a, b) = request.halve("the intake", "too big").unwrap();
        assert_eq!((a.seq_range(), b.seq_range()), ((1, 1), (2, 3)));
        assert_eq!(b.body(), b"[[2],[3]]");
        let rejected = a.halve("the intake", "too big").unwrap_err();
        assert_eq!(rejected.seq, 1);
        assert_eq!(
            rejected.reason,
            "the intake refused this single event as too large (HTTP 413)"
        );
        assert_eq!(rejected.response, "HTTP 413: too big");
        let mut queue = VecDeque::new();
        let mut progress = BatchProgress::default();
        b.halve_or_reject(&mut queue, &mut progress, "the intake", "");
        let ranges: Vec<_> = queue.iter().map(ArrayRequest::seq_range).collect();
        assert_eq!(ranges, [(2, 2), (3, 3)]);
    }
}
