//! `claudit archive verify`: recomputes every hash, walks the manifest's
//! chain, re-reads every segment in the range, and compares the archive with
//! the journal rows still kept. Stops at the first break and names it: the
//! manifest line, the segment, the check, what was expected and found.
//!
//! Checks, in order, for each manifest line: it parses (`manifest line
//! format`); its `prev` is the hash of the line before (`hash chain`); its
//! hours are valid (`hours`); an `hour` segment's source-hour has no earlier
//! `hour` segment (`hour coverage`) and a `late` segment's hours all have
//! one (`late hours`). For a line whose hours overlap the range: the segment
//! exists (`segment present`), its length and SHA-256 match (`segment size`,
//! `segment sha256`), it decompresses into JSON activities (`segment
//! format`), each in one of the line's hours (`record hour`) and in no other
//! segment (`duplicate activity`), as many as listed (`record count`), with
//! the listed first and last created_at (`created_at bounds`). Then: the
//! manifest has at least as many lines as the state database recorded with
//! the sink's cursor (`manifest length`), and every journal row at or
//! before the cursor, created in the range, is archived (`missing
//! activity`) with exactly its journaled bytes (`record bytes`).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{BufRead, BufReader, Read};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::manifest::{
    self, GENESIS, HOUR_MS, ManifestEntry, SegmentKind, format_hour, format_ms, hour_of,
};
use super::{Backend, ManifestLine};
use crate::model::Activity;
use crate::store::{Store, StoreError};

/// The created_at range to check: `[from_ms, to_ms)`; `None` = unbounded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Range {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

impl Range {
    pub fn contains(&self, ms: i64) -> bool {
        self.from_ms.is_none_or(|f| ms >= f) && self.to_ms.is_none_or(|t| ms < t)
    }

    /// Whether the hour starting at `hour_ms` overlaps the range.
    pub fn overlaps_hour(&self, hour_ms: i64) -> bool {
        self.from_ms.is_none_or(|f| hour_ms + HOUR_MS > f) && self.to_ms.is_none_or(|t| hour_ms < t)
    }
}

/// The first thing found wrong.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Break {
    /// Manifest line (`manifest.ndjson line 7`), or where else.
    pub location: String,
    pub segment: Option<String>,
    /// Which check failed (see the module documentation).
    pub check: &'static str,
    pub expected: String,
    pub found: String,
}

/// What a verification saw.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub sink: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub manifest_lines: u64,
    /// SHA-256 of the last manifest line: pins the manifest as verified.
    pub manifest_head: String,
    pub segments_checked: u64,
    pub records_checked: u64,
    pub journal_rows_checked: u64,
    /// Why the journal comparison was limited or skipped, if it was.
    pub journal_note: Option<String>,
    /// Segment files the manifest does not list (left by a crash between
    /// the segment write and the manifest append; never evidence).
    pub unlisted_segments: Vec<String>,
    pub first_break: Option<Break>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.first_break.is_none()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let range = match (&self.from, &self.to) {
            (None, None) => "everything".to_string(),
            (from, to) => format!(
                "created_at from {} to {}",
                from.as_deref().unwrap_or("the start"),
                to.as_deref().unwrap_or("the end")
            ),
        };
        writeln!(f, "archive sink {}: {range}", self.sink)?;
        writeln!(
            f,
            "  manifest: {} lines, head {}",
            self.manifest_lines, self.manifest_head
        )?;
        writeln!(
            f,
            "  segments checked: {}, records: {}, journal rows compared: {}",
            self.segments_checked, self.records_checked, self.journal_rows_checked
        )?;
        if let Some(note) = &self.journal_note {
            writeln!(f, "  note: {note}")?;
        }
        if !self.unlisted_segments.is_empty() {
            writeln!(
                f,
                "  note: {} segment file(s) not in the manifest (left by an interrupted flush; not evidence): {}",
                self.unlisted_segments.len(),
                self.unlisted_segments.join(", ")
            )?;
        }
        match &self.first_break {
            None => writeln!(
                f,
                "OK: every hash, the chain, every count and the journal comparison hold"
            ),
            Some(b) => {
                writeln!(f, "FAILED: {} at {}", b.check, b.location)?;
                if let Some(segment) = &b.segment {
                    writeln!(f, "  segment:  {segment}")?;
                }
                writeln!(f, "  expected: {}", b.expected)?;
                writeln!(f, "  found:    {}", b.found)
            }
        }
    }
}

/// Called with each archived record in the range, in manifest order
/// (`claudit archive export`).
pub type RecordSink<'a> = &'a mut dyn FnMut(&[u8], i64) -> anyhow::Result<()>;

/// Verifies the archive of sink `sink`, opened for reading, over `range`,
/// and compares it with the state database `journal` (opened read-only;
/// if it could not be, the report says the comparison was skipped). `Err`
/// is for failures to read (I/O, network); a verification failure is `Ok`
/// with `first_break`.
pub async fn verify(
    reader: &Backend,
    journal: Result<&Store, &StoreError>,
    sink: &str,
    range: Range,
    mut on_record: Option<RecordSink<'_>>,
) -> anyhow::Result<Report> {
    let mut report = Report {
        sink: sink.to_string(),
        from: range.from_ms.map(format_ms),
        to: range.to_ms.map(format_ms),
        manifest_head: GENESIS.to_string(),
        ..Report::default()
    };
    let (lines, torn) = reader.manifest().await?;
    report.manifest_lines = lines.len() as u64;

    let mut expected_prev = GENESIS.to_string();
    let mut hour_segments: HashMap<(String, i64), String> = HashMap::new();
    // Activity id -> (SHA-256 of the archived line, segment) for the range.
    let mut archived: HashMap<String, ([u8; 32], usize)> = HashMap::new();
    let mut segment_names: Vec<String> = Vec::new();
    let mut listed: HashSet<String> = HashSet::new();

    for line in &lines {
        let fail =
            |check: &'static str, segment: Option<&str>, expected: String, found: String| Break {
                location: line.location.clone(),
                segment: segment.map(str::to_string),
                check,
                expected,
                found,
            };
        let entry = match ManifestEntry::parse(&line.bytes) {
            Ok(e) => e,
            Err(e) => {
                report.first_break = Some(fail(
                    "manifest line format",
                    None,
                    "a JSON manifest entry".into(),
                    e,
                ));
                return Ok(report);
            }
        };
        let name = entry.segment.as_str();
        if entry.prev != expected_prev {
            report.first_break = Some(fail(
                "hash chain",
                Some(name),
                format!("prev = {expected_prev} (SHA-256 of the previous line)"),
                format!("prev = {}", entry.prev),
            ));
            return Ok(report);
        }
        expected_prev = manifest::line_hash(&line.bytes);
        report.manifest_head = expected_prev.clone();
        listed.insert(entry.segment.clone());
        let Some(hours) = entry.hour_starts().filter(|h| !h.is_empty()) else {
            report.first_break = Some(fail(
                "hours",
                Some(name),
                "a non-empty list of RFC 3339 hour starts".into(),
                format!("{:?}", entry.hours),
            ));
            return Ok(report);
        };
        match entry.kind {
            SegmentKind::Hour => {
                let key = (entry.source.clone(), hours[0]);
                if hours.len() != 1 {
                    report.first_break = Some(fail(
                        "hours",
                        Some(name),
                        "one hour for an hour segment".into(),
                        format!("{} hours", hours.len()),
                    ));
                    return Ok(report);
                }
                if let Some(earlier) = hour_segments.get(&key) {
                    report.first_break = Some(fail(
                        "hour coverage",
                        Some(name),
                        format!(
                            "one hour segment for source {} hour {}",
                            entry.source,
                            format_hour(hours[0])
                        ),
                        format!("a second one; the first is {earlier}"),
                    ));
                    return Ok(report);
                }
                hour_segments.insert(key, line.location.clone());
            }
            SegmentKind::Late => {
                if let Some(h) = hours
                    .iter()
                    .find(|h| !hour_segments.contains_key(&(entry.source.clone(), **h)))
                {
                    report.first_break = Some(fail(
                        "late hours",
                        Some(name),
                        format!(
                            "an earlier hour segment of source {} for {}",
                            entry.source,
                            format_hour(*h)
                        ),
                        "none".into(),
                    ));
                    return Ok(report);
                }
            }
        }
        if !hours.iter().any(|h| range.overlaps_hour(*h)) {
            continue;
        }
        let segment_index = segment_names.len();
        segment_names.push(entry.segment.clone());
        if let Some(b) = check_segment(
            reader,
            &entry,
            &hours,
            range,
            segment_index,
            &segment_names,
            &mut archived,
            &mut report,
            &mut on_record,
        )
        .await?
        {
            report.first_break = Some(Break {
                location: line.location.clone(),
                ..b
            });
            return Ok(report);
        }
        report.segments_checked += 1;
    }
    if let Some(tail) = torn {
        report.first_break = Some(Break {
            location: tail.location,
            segment: None,
            check: "manifest line format",
            expected: "a line ending in a newline".into(),
            found: "a final line without newline (an append cut short; the sink cuts it when it starts)".into(),
        });
        return Ok(report);
    }
    if let Some(b) = compare_journal(
        journal,
        sink,
        range,
        &lines,
        &archived,
        &segment_names,
        &mut report,
    )? {
        report.first_break = Some(b);
        return Ok(report);
    }
    report.unlisted_segments = reader
        .segment_names()
        .await?
        .into_iter()
        .filter(|n| !listed.contains(n))
        .collect();
    Ok(report)
}

/// Checks one segment against its manifest entry. `Some(break)` (without
/// location) when a check fails.
#[allow(clippy::too_many_arguments)]
async fn check_segment(
    reader: &Backend,
    entry: &ManifestEntry,
    hours: &[i64],
    range: Range,
    segment_index: usize,
    segment_names: &[String],
    archived: &mut HashMap<String, ([u8; 32], usize)>,
    report: &mut Report,
    on_record: &mut Option<RecordSink<'_>>,
) -> anyhow::Result<Option<Break>> {
    let name = entry.segment.as_str();
    let fail = |check: &'static str, expected: String, found: String| {
        Some(Break {
            location: String::new(),
            segment: Some(name.to_string()),
            check,
            expected,
            found,
        })
    };
    let Some(mut file) = reader.segment(name).await? else {
        return Ok(fail(
            "segment present",
            "the segment file".into(),
            "no such file or object".into(),
        ));
    };
    // Pass 1: the compressed bytes.
    let mut sha = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        size += n as u64;
    }
    if size != entry.bytes {
        return Ok(fail(
            "segment size",
            format!("{} bytes", entry.bytes),
            format!("{size} bytes"),
        ));
    }
    let digest = manifest::hex(&sha.finalize());
    if digest != entry.sha256 {
        return Ok(fail("segment sha256", entry.sha256.clone(), digest));
    }
    // Pass 2: the records.
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(0))?;
    let mut lines = BufReader::new(flate2::read::GzDecoder::new(file));
    let (mut count, mut first, mut last, mut fallback) = (0u64, i64::MAX, i64::MIN, false);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = match lines.read_until(b'\n', &mut line) {
            Ok(n) => n,
            Err(e) => {
                return Ok(fail(
                    "segment format",
                    "gzip NDJSON".into(),
                    format!("after {count} records: {e}"),
                ));
            }
        };
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        count += 1;
        let activity = std::str::from_utf8(&line)
            .ok()
            .and_then(|s| Activity::from_json(s).ok());
        let Some(activity) = activity else {
            return Ok(fail(
                "segment format",
                "one JSON activity per line".into(),
                format!("line {count} is not JSON"),
            ));
        };
        let created = activity.created_at_ms();
        if activity.created_at_fallback {
            // No parseable created_at: the journal placed it by read time.
            fallback = true;
        } else {
            if !hours.contains(&hour_of(created)) {
                return Ok(fail(
                    "record hour",
                    format!("created_at in {}", entry.hours.join(", ")),
                    format!(
                        "line {count} (activity {}) created {}",
                        activity.id,
                        format_ms(created)
                    ),
                ));
            }
            first = first.min(created);
            last = last.max(created);
        }
        if !range.contains(created) {
            continue;
        }
        let line_sha: [u8; 32] = Sha256::digest(&line).into();
        if let Some((_, other)) = archived.insert(activity.id.clone(), (line_sha, segment_index)) {
            return Ok(fail(
                "duplicate activity",
                format!("activity {} archived once", activity.id),
                format!("also in segment {}", segment_names[other]),
            ));
        }
        report.records_checked += 1;
        if let Some(f) = on_record.as_mut() {
            f(&line, created)?;
        }
    }
    if count != entry.records {
        return Ok(fail(
            "record count",
            format!("{} records", entry.records),
            format!("{count} records"),
        ));
    }
    if !fallback
        && (format_ms(first) != entry.first_created_at || format_ms(last) != entry.last_created_at)
    {
        return Ok(fail(
            "created_at bounds",
            format!("{} .. {}", entry.first_created_at, entry.last_created_at),
            format!("{} .. {}", format_ms(first), format_ms(last)),
        ));
    }
    Ok(None)
}

/// The journal side: the manifest is not shorter than the state database
/// says, and every row the sink's cursor passed is archived, byte for byte.
fn compare_journal(
    journal: Result<&Store, &StoreError>,
    sink: &str,
    range: Range,
    lines: &[ManifestLine],
    archived: &HashMap<String, ([u8; 32], usize)>,
    segment_names: &[String],
    report: &mut Report,
) -> anyhow::Result<Option<Break>> {
    let store = match journal {
        Ok(s) => s,
        Err(e) => {
            report.journal_note = Some(format!("no journal comparison: {e}"));
            return Ok(None);
        }
    };
    let cursor = store.sink_cursor(sink)?;
    if let Some(committed) = cursor.file_offset
        && (lines.len() as i64) < committed
    {
        return Ok(Some(Break {
            location: "end of the manifest".into(),
            segment: None,
            check: "manifest length",
            expected: format!(
                "at least {committed} lines (recorded in the state database with the sink's cursor)"
            ),
            found: format!("{} lines: lines were removed from the end", lines.len()),
        }));
    }
    let (since, until) = (
        range.from_ms.unwrap_or(i64::MIN),
        range.to_ms.unwrap_or(i64::MAX),
    );
    let mut after = 0i64;
    loop {
        let rows = store.read_archived_range(after, cursor.seq, since, until, 5000)?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for row in &rows {
            report.journal_rows_checked += 1;
            let expected_hour = format_hour(hour_of(row.created_at_ms));
            match archived.get(&row.activity_id) {
                None => {
                    return Ok(Some(Break {
                        location: format!("journal seq {}", row.seq),
                        segment: None,
                        check: "missing activity",
                        expected: format!(
                            "activity {} (source {}, created {}) in a segment of hour {expected_hour}: \
                             the sink's cursor (seq {}) passed it",
                            row.activity_id,
                            row.source,
                            format_ms(row.created_at_ms),
                            cursor.seq
                        ),
                        found: "in no segment".into(),
                    }));
                }
                Some((sha, segment)) => {
                    let journaled: [u8; 32] = Sha256::digest(row.raw.as_bytes()).into();
                    if journaled != *sha {
                        return Ok(Some(Break {
                            location: format!("journal seq {}", row.seq),
                            segment: Some(segment_names[*segment].clone()),
                            check: "record bytes",
                            expected: format!(
                                "activity {} exactly as journaled (SHA-256 {})",
                                row.activity_id,
                                manifest::hex(&journaled)
                            ),
                            found: format!("different bytes (SHA-256 {})", manifest::hex(sha)),
                        }));
                    }
                }
            }
        }
    }
    if cursor.seq == 0 {
        report.journal_note = Some("the sink has archived nothing yet (cursor at 0)".into());
    }
    Ok(None)
}
