//! The manifest: one JSON line per segment, append-only, hash-chained.
//!
//! Each line's `prev` is the SHA-256 (lowercase hex) of the previous line's
//! exact bytes, without its trailing newline; the first line's `prev` is
//! [`GENESIS`] (64 zeros). Changing, removing, inserting or reordering a line
//! therefore breaks the chain at the first line after the change.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `prev` of the first manifest line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One hour in milliseconds: the segment granularity.
pub const HOUR_MS: i64 = 3_600_000;

/// What a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    /// Every record of one source-hour known when the hour was sealed.
    Hour,
    /// Records of already archived hours that were journaled later (sweep
    /// late arrivals, backfills); `hours` lists the hours they belong to.
    Late,
}

/// One manifest line. Field order is the serialized order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// Segment name, relative to the archive's `segments/`.
    pub segment: String,
    pub source: String,
    pub kind: SegmentKind,
    /// Start of every hour the records belong to (RFC 3339, UTC).
    pub hours: Vec<String>,
    pub records: u64,
    /// Smallest and largest `created_at` of the records (RFC 3339, ms, UTC).
    pub first_created_at: String,
    pub last_created_at: String,
    /// SHA-256 (hex) and length of the compressed segment file.
    pub sha256: String,
    pub bytes: u64,
    /// Journal seq of the first and last record (restart reconciliation:
    /// a record is archived iff some entry of its source has its hour and
    /// a seq range containing its seq).
    pub seq_first: i64,
    pub seq_last: i64,
    /// Number of the flush (one pass over sealed journal records) that
    /// wrote the segment.
    pub flush: u64,
    /// SHA-256 of the previous manifest line.
    pub prev: String,
}

impl ManifestEntry {
    /// The line's bytes, without a newline.
    pub fn to_line(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest entry always serializes")
    }

    pub fn parse(line: &[u8]) -> Result<ManifestEntry, String> {
        serde_json::from_slice(line).map_err(|e| format!("not a manifest entry: {e}"))
    }

    /// The hours as epoch milliseconds (`None` if one is not an RFC 3339
    /// hour start).
    pub fn hour_starts(&self) -> Option<Vec<i64>> {
        self.hours
            .iter()
            .map(|h| parse_time_ms(h).filter(|ms| ms.rem_euclid(HOUR_MS) == 0))
            .collect()
    }

    /// Whether the record (`hour`, `seq`) of this entry's source is in it.
    pub fn covers(&self, hour_ms: i64, seq: i64) -> bool {
        seq >= self.seq_first
            && seq <= self.seq_last
            && self
                .hour_starts()
                .is_some_and(|hours| hours.contains(&hour_ms))
    }
}

/// SHA-256 hex of a manifest line's bytes (the next line's `prev`).
pub fn line_hash(line: &[u8]) -> String {
    hex(&Sha256::digest(line))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The hour `created_at_ms` falls in.
pub fn hour_of(created_at_ms: i64) -> i64 {
    created_at_ms - created_at_ms.rem_euclid(HOUR_MS)
}

/// RFC 3339 with milliseconds, UTC (`2026-01-02T03:04:05.678Z`).
pub fn format_ms(ms: i64) -> String {
    let t: DateTime<Utc> = Utc
        .timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An hour start as written in `hours` (`2026-01-02T03:00:00Z`).
pub fn format_hour(hour_ms: i64) -> String {
    let t: DateTime<Utc> = Utc
        .timestamp_millis_opt(hour_ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn parse_time_ms(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Splits manifest bytes into lines. A final line without a newline is
/// returned separately: it may be torn by a crash mid-append.
pub fn split_lines(bytes: &[u8]) -> (Vec<&[u8]>, Option<&[u8]>) {
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // `split` yields an empty last piece after a final newline.
    let tail = lines.pop().filter(|t| !t.is_empty());
    (lines, tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> ManifestEntry {
        ManifestEntry {
            segment: "s/2026-01-02/s-20260102T03-1-9.ndjson.gz".into(),
            source: "s".into(),
            kind: SegmentKind::Hour,
            hours: vec!["2026-01-02T03:00:00Z".into()],
            records: 3,
            first_created_at: "2026-01-02T03:00:00.000Z".into(),
            last_created_at: "2026-01-02T03:59:59.999Z".into(),
            sha256: GENESIS.into(),
            bytes: 10,
            seq_first: 1,
            seq_last: 9,
            flush: 1,
            prev: GENESIS.into(),
        }
    }

    #[test]
    fn a_line_round_trips_and_rejects_unknown_fields() {
        let e = entry();
        let line = e.to_line();
        assert_eq!(ManifestEntry::parse(&line).unwrap(), e);
        let mut v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        v["extra"] = 1.into();
        assert!(ManifestEntry::parse(v.to_string().as_bytes()).is_err());
    }

    #[test]
    fn covers_needs_the_hour_and_the_seq_range() {
        let e = entry();
        let hour = parse_time_ms("2026-01-02T03:00:00Z").unwrap();
        assert!(e.covers(hour, 1) && e.covers(hour, 9));
        assert!(!e.covers(hour, 10));
        assert!(!e.covers(hour + HOUR_MS, 5));
    }

    #[test]
    fn hours_and_times_format_in_utc() {
        let ms = parse_time_ms("2026-01-02T03:04:05.678+01:00").unwrap();
        assert_eq!(format_ms(ms), "2026-01-02T02:04:05.678Z");
        assert_eq!(format_hour(hour_of(ms)), "2026-01-02T02:00:00Z");
        assert_eq!(hour_of(-1), -HOUR_MS);
    }

    #[test]
    fn a_final_line_without_newline_is_a_tail() {
        assert_eq!(split_lines(b"a\nb\n"), (vec![&b"a"[..], b"b"], None));
        assert_eq!(split_lines(b"a\nb"), (vec![&b"a"[..]], Some(&b"b"[..])));
        assert_eq!(split_lines(b""), (vec![], None));
    }
}
