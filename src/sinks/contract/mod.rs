//! The delivery contract: what every destination promises the sink task,
//! and what the sink task gives it back.
//!
//! A destination (`splunk_hec.rs`, `file/`, ...) turns a batch of journal
//! records into its protocol's requests and says what became of them in an
//! [`Outcome`]. The sink task (`sinks/mod.rs`) owns everything else: the
//! cursor, dead letters, backoff, redaction of what the destination
//! answered, and slow re-checks after fatal failures. A destination never
//! reads or writes the journal itself; the file sink, whose crash protocol
//! commits positions in the file, does it through [`SinkJournal`].
//!
//! Destinations that send one batch as several requests remember what was
//! already settled with [`BatchProgress`], so a retried batch re-sends only
//! what was not accepted. Those whose body is a JSON array of events pack
//! and halve their requests with [`ArrayPacker`] and [`ArrayRequest`].

mod json_array;
mod progress;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::model::BatchRecord;
use crate::redact::Redactor;
pub use json_array::{ArrayBatch, ArrayPacker, ArrayRequest};
pub use progress::BatchProgress;

/// A boxed future: what a [`Destination`]'s asynchronous methods return, so
/// the sink task can hold any destination behind one pointer. One allocation
/// per batch, nothing next to a network round trip.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What became of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destination acknowledged every record of the batch, except the
    /// ones listed as rejected: those go to the dead-letter table in the same
    /// transaction that advances the cursor. An empty list is full success.
    Delivered { rejected: Vec<Rejected> },
    /// Nothing (more) was acknowledged and trying again later may succeed
    /// (timeouts, 429, 5xx). The same batch is sent again, after at least
    /// `after` when the server said so.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// The whole request was refused in a way retrying cannot fix (bad token,
    /// 401/403, unknown index). The sink stops with one clear error and
    /// re-checks slowly; nothing is discarded.
    Fatal { reason: String },
}

/// A record the destination refused deterministically (per-event 4xx, too
/// large): it is dead-lettered, never silently dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub seq: i64,
    pub activity_id: String,
    /// Why, in words: "event of 1.3 MB exceeds Datadog's 1 MB limit".
    pub reason: String,
    /// What the destination answered (status and body, truncated), or "".
    pub response: String,
}

impl Rejected {
    /// `record` rejected for `reason`, with the destination's `response`.
    pub fn of(
        record: &BatchRecord,
        reason: impl Into<String>,
        response: impl Into<String>,
    ) -> Self {
        Rejected {
            seq: record.seq,
            activity_id: record.activity_id.clone(),
            reason: reason.into(),
            response: response.into(),
        }
    }
}

impl Outcome {
    pub fn delivered() -> Outcome {
        Outcome::Delivered {
            rejected: Vec::new(),
        }
    }

    /// The outcome with every text in it (reasons, the destination's
    /// answers) passed through `redactor`.
    pub fn redacted(self, redactor: &Redactor) -> Outcome {
        match self {
            Outcome::Delivered { rejected } => Outcome::Delivered {
                rejected: rejected
                    .into_iter()
                    .map(|r| Rejected {
                        reason: redactor.redact(&r.reason),
                        response: redactor.redact(&r.response),
                        ..r
                    })
                    .collect(),
            },
            Outcome::Retry { after, reason } => Outcome::Retry {
                after,
                reason: redactor.redact(&reason),
            },
            Outcome::Fatal { reason } => Outcome::Fatal {
                reason: redactor.redact(&reason),
            },
        }
    }
}

/// What a destination found before a batch ([`Destination::before_batch`]).
#[derive(Debug)]
pub enum Prepared {
    /// Send the batch.
    Ready,
    /// Records of the batch were found already delivered and committed: the
    /// sink task reads the batch again from the new cursor.
    ReadAgain,
    /// The destination is not ready (a file that could not be reconciled):
    /// the sink task waits on this outcome as if the batch had failed.
    Wait(Outcome),
}

/// A sink's position in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalPosition {
    /// Last journal seq the destination acknowledged.
    pub seq: i64,
    /// File sinks: the file length committed with that seq.
    pub file_offset: Option<i64>,
}

/// The sink task's journal as a destination with a crash protocol of its
/// own (the file sink) sees it: its own cursor, the records after it in the
/// sink's format, and commits of what it found. Nothing else of the store.
pub trait SinkJournal: Send + Sync {
    /// Where the sink's cursor stands.
    fn position(&self) -> BoxFuture<'_, anyhow::Result<JournalPosition>>;
    /// The records after `after_seq` whose payloads (one line each) cover
    /// at least `bytes` bytes, or all there are.
    fn read_covering(
        &self,
        after_seq: i64,
        bytes: usize,
    ) -> BoxFuture<'_, anyhow::Result<Vec<BatchRecord>>>;
    /// Commits `count` records up to `last_seq` as delivered, with the file
    /// length `offset` after them.
    fn commit_found(
        &self,
        last_seq: i64,
        offset: i64,
        count: i64,
    ) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Commits a new file length without moving the cursor.
    fn commit_offset(&self, offset: i64) -> BoxFuture<'_, anyhow::Result<()>>;
}

/// One destination behind a sink: what the sink task and `claudit replay`
/// drive. Constructed by the sink type's entry in the registry.
pub trait Destination: Send {
    /// Sends one batch and says what became of it. A retried batch comes
    /// back starting at the same record (possibly grown); what an earlier
    /// attempt settled must not be sent again ([`BatchProgress`]).
    fn deliver<'a>(&'a mut self, records: &'a [BatchRecord]) -> BoxFuture<'a, Outcome>;

    /// `claudit check --connect`: one cheap request that checks the address
    /// and the credentials, answered in one line.
    fn healthcheck(&mut self) -> BoxFuture<'_, Result<String, String>>;

    /// Runs before every batch, with the sink's journal: a destination with
    /// state of its own to bring in line with the cursor (the file sink's
    /// crash protocol) does it here. Most have nothing to do.
    fn before_batch<'a>(
        &'a mut self,
        _journal: &'a dyn SinkJournal,
        _records: &'a [BatchRecord],
    ) -> BoxFuture<'a, anyhow::Result<Prepared>> {
        Box::pin(async { Ok(Prepared::Ready) })
    }

    /// Secrets the destination obtained at run time (an access token), to
    /// redact from whatever it answers.
    fn session_secrets(&self) -> Vec<String> {
        Vec::new()
    }

    /// Ends the destination's connection the way its protocol asks.
    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// The position to commit with the cursor after a delivered batch (the
    /// file sink's length), if the destination has one.
    fn position(&self) -> Option<i64> {
        None
    }
}
