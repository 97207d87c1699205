//! The archive format: gzip NDJSON segments of raw activities listed by a
//! hash-chained manifest ([`manifest`], [`segment`]), on a local directory
//! ([`local`]) or an S3 bucket with Object Lock ([`s3`]), behind one
//! [`Backend`]. The archive sink (`sinks/archive/`) writes through it;
//! `claudit archive verify` ([`verify`]) and `claudit archive export`
//! ([`export`]) read through it. This module knows neither the sink's task
//! nor the configuration file: its callers hand it the opened backend (and
//! the state database to compare with).
//!
//! **Segments.** A segment holds the raw records of one source-hour of
//! `created_at` (an `hour` segment), or records of already archived hours
//! journaled later (a `late` segment, whose manifest entry lists their
//! hours). Its name is a pure function of the records (source, hour, seq
//! range) and its gzip output is deterministic, so a segment rewritten
//! after a crash either has the name and bytes of the unlisted file it
//! replaces or a new name; it never shadows a listed segment.
//!
//! **Hash chain.** Each manifest line's `prev` is the SHA-256 of the
//! previous line's exact bytes (without newline); the first line's is
//! [`manifest::GENESIS`], 64 zeros. `claudit archive verify` walks it.

pub mod backend;
pub mod export;
pub mod local;
pub mod manifest;
pub mod s3;
pub mod segment;
pub mod settings;
pub mod verify;

pub use backend::{Backend, ManifestLine};
pub use settings::{ArchiveBackend, ArchiveS3Config, ObjectLock, ObjectLockMode};
