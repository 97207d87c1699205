//! A segment being written: raw activity lines streamed through a gzip
//! encoder into a temp file, hashing the compressed bytes on the way, so no
//! segment is ever held in memory.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use super::manifest::{SegmentKind, format_hour, hour_of};

/// Counts and hashes what passes through to the file.
struct HashingWriter {
    inner: BufWriter<File>,
    sha256: Sha256,
    bytes: u64,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha256.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// An open segment of one group (a source-hour, or a source's late records).
pub struct SegmentWriter {
    pub source: String,
    pub kind: SegmentKind,
    encoder: GzEncoder<HashingWriter>,
    file: NamedTempFile,
    hours: BTreeSet<i64>,
    records: u64,
    first_created_at: i64,
    last_created_at: i64,
    seq_first: i64,
    seq_last: i64,
}

/// A segment whose file is complete and fsynced, not yet in the archive.
pub struct FinishedSegment {
    pub source: String,
    pub kind: SegmentKind,
    pub file: NamedTempFile,
    pub sha256: [u8; 32],
    pub bytes: u64,
    pub hours: Vec<i64>,
    pub records: u64,
    pub first_created_at: i64,
    pub last_created_at: i64,
    pub seq_first: i64,
    pub seq_last: i64,
}

impl SegmentWriter {
    /// A new segment in a temp file under `tmp_dir` (which must be on the
    /// same filesystem as the archive for the local backend's rename).
    pub fn create(tmp_dir: &Path, source: &str, kind: SegmentKind) -> io::Result<SegmentWriter> {
        let file = NamedTempFile::new_in(tmp_dir)?;
        let writer = HashingWriter {
            inner: BufWriter::with_capacity(256 * 1024, file.as_file().try_clone()?),
            sha256: Sha256::new(),
            bytes: 0,
        };
        // No file name and mtime 0 in the header: the same records give
        // the same bytes, so a segment rewritten after a crash is identical.
        let encoder = flate2::GzBuilder::new().write(writer, Compression::new(6));
        Ok(SegmentWriter {
            source: source.to_string(),
            kind,
            encoder,
            file,
            hours: BTreeSet::new(),
            records: 0,
            first_created_at: i64::MAX,
            last_created_at: i64::MIN,
            seq_first: i64::MAX,
            seq_last: i64::MIN,
        })
    }

    /// Appends one raw activity as an NDJSON line, byte for byte.
    pub fn push(&mut self, seq: i64, created_at_ms: i64, raw: &str) -> io::Result<()> {
        self.encoder.write_all(raw.as_bytes())?;
        self.encoder.write_all(b"\n")?;
        self.hours.insert(hour_of(created_at_ms));
        self.records += 1;
        self.first_created_at = self.first_created_at.min(created_at_ms);
        self.last_created_at = self.last_created_at.max(created_at_ms);
        self.seq_first = self.seq_first.min(seq);
        self.seq_last = self.seq_last.max(seq);
        Ok(())
    }

    /// Ends the gzip stream and fsyncs the file.
    pub fn finish(self) -> io::Result<FinishedSegment> {
        let mut writer = self.encoder.finish()?;
        writer.flush()?;
        let HashingWriter {
            inner,
            sha256,
            bytes,
        } = writer;
        let inner = inner.into_inner().map_err(|e| e.into_error())?;
        inner.sync_all()?;
        Ok(FinishedSegment {
            source: self.source,
            kind: self.kind,
            file: self.file,
            sha256: sha256.finalize().into(),
            bytes,
            hours: self.hours.into_iter().collect(),
            records: self.records,
            first_created_at: self.first_created_at,
            last_created_at: self.last_created_at,
            seq_first: self.seq_first,
            seq_last: self.seq_last,
        })
    }
}

impl FinishedSegment {
    /// The segment's name, a pure function of what it holds: the same
    /// records always get the same name (and, being deterministic gzip, the
    /// same bytes), and different records never share a name, so a segment
    /// rewritten after a crash can never shadow a listed one with other
    /// content. `<source>/<date>/<source>-<hour>-<seq_first>-<seq_last>.ndjson.gz`,
    /// or `...-late-<seq_first>-<seq_last>.ndjson.gz` for late records.
    pub fn name(&self) -> String {
        let first_hour = self.hours.first().copied().unwrap_or_default();
        let hour = format_hour(first_hour); // 2026-01-02T03:00:00Z
        let date = &hour[..10];
        let compact: String = hour[..13].chars().filter(|c| *c != '-').collect(); // 20260102T03
        match self.kind {
            SegmentKind::Hour => format!(
                "{src}/{date}/{src}-{compact}-{}-{}.ndjson.gz",
                self.seq_first,
                self.seq_last,
                src = self.source
            ),
            SegmentKind::Late => format!(
                "{src}/{date}/{src}-late-{}-{}.ndjson.gz",
                self.seq_first,
                self.seq_last,
                src = self.source
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_same_records_give_the_same_bytes_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let write = || {
            let mut w = SegmentWriter::create(dir.path(), "src", SegmentKind::Hour).unwrap();
            w.push(5, 1_767_323_045_678, r#"{"id":"a"}"#).unwrap();
            w.push(9, 1_767_323_000_000, r#"{"id":"b", "x" : 1}"#)
                .unwrap();
            w.finish().unwrap()
        };
        let (a, b) = (write(), write());
        assert_eq!(a.sha256, b.sha256);
        assert_eq!(a.name(), "src/2026-01-02/src-20260102T03-5-9.ndjson.gz");
        assert_eq!(a.records, 2);
        assert_eq!(a.first_created_at, 1_767_323_000_000);
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(a.file.path()).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"id\":\"a\"}\n{\"id\":\"b\", \"x\" : 1}\n");
        assert_eq!(std::fs::metadata(a.file.path()).unwrap().len(), a.bytes);
    }
}
