//! The file sink: NDJSON, one event per line, size-based rotation, flushed
//! and fsynced before its cursor advances.
//!
//! Crash recovery: the cursor row stores the file length after the last
//! acknowledged batch. Bytes past that length on startup were written by a
//! batch whose commit never happened. They can only be a prefix of the lines
//! the sink would write next, so the sink compares them with those lines:
//! whole lines that match are taken as delivered (no duplicate), and a torn
//! last line (a write cut short by the kill) is cut off. Bytes that match
//! nothing are left alone and reported: they are not ours to delete.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::config::FileSinkConfig;
use crate::store::BatchRecord;

pub struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    max_files: u32,
    file: File,
    /// Length of the file after the last batch written.
    offset: u64,
    /// The batch being written, kept between batches: a fresh buffer of a
    /// few MB per batch costs a page fault and a zeroed page per 4 KiB.
    buf: Vec<u8>,
}

/// What startup found past the committed offset.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Leading records of the next batch already in the file, whole.
    pub already_written: usize,
    /// Bytes of a torn line that were cut off.
    pub truncated_bytes: u64,
    /// Bytes that matched nothing we would write (left in place).
    pub foreign_bytes: u64,
}

impl FileSink {
    /// Opens (creating) the file for appending. `committed_offset` is the
    /// length recorded with the sink's cursor, if any.
    pub fn open(
        config: &FileSinkConfig,
        committed_offset: Option<i64>,
    ) -> std::io::Result<FileSink> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = open_append(&config.path)?;
        let len = file.metadata()?.len();
        let offset = match committed_offset {
            Some(off) if (off as u64) <= len => off as u64,
            Some(off) => {
                // Rotated since the last commit (by us just before a crash, or
                // by logrotate): reconcile the new file from its start.
                info!(path = %config.path.display(), committed = off, length = len,
                    "file is shorter than the committed offset (rotated or truncated); reconciling from its start");
                0
            }
            None => len,
        };
        Ok(FileSink {
            path: config.path.clone(),
            max_bytes: config.max_bytes,
            max_files: config.max_files,
            file,
            offset,
            buf: Vec::new(),
        })
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reconciles bytes past the committed offset with `next`, the records
    /// the sink would write next (their lines, in order).
    pub fn recover(&mut self, next: &[BatchRecord]) -> std::io::Result<Recovery> {
        let len = self.file.metadata()?.len();
        if len <= self.offset {
            return Ok(Recovery::default());
        }
        let mut tail = Vec::with_capacity((len - self.offset) as usize);
        let mut reader = File::open(&self.path)?;
        reader.seek(SeekFrom::Start(self.offset))?;
        reader.read_to_end(&mut tail)?;
        let mut rest: &[u8] = &tail;
        let mut recovery = Recovery::default();
        for record in next {
            let line_len = record.payload.len() + 1;
            if rest.len() >= line_len
                && &rest[..record.payload.len()] == record.payload.as_bytes()
                && rest[record.payload.len()] == b'\n'
            {
                recovery.already_written += 1;
                self.offset += line_len as u64;
                rest = &rest[line_len..];
                continue;
            }
            let mut expected = record.payload.as_bytes().to_vec();
            expected.push(b'\n');
            if !rest.is_empty() && rest.len() < expected.len() && expected.starts_with(rest) {
                // A torn write of exactly this line: cut it off.
                recovery.truncated_bytes = rest.len() as u64;
                self.file.set_len(self.offset)?;
                self.file.sync_all()?;
                rest = &[];
            }
            break;
        }
        if !rest.is_empty() {
            recovery.foreign_bytes = rest.len() as u64;
            warn!(path = %self.path.display(), bytes = rest.len(),
                "file has bytes past the last committed batch that claudit did not write; leaving them and appending after them");
            self.offset = len - recovery.truncated_bytes;
        }
        Ok(recovery)
    }

    /// Rotates first if this batch would take the file past `max_bytes`.
    /// Returns true if it rotated (the sink task commits offset 0 before writing).
    pub fn rotate_if_needed(&mut self, batch_bytes: u64) -> std::io::Result<bool> {
        if self.max_bytes == 0 || self.offset == 0 || self.offset + batch_bytes <= self.max_bytes {
            return Ok(false);
        }
        let numbered = |n: u32| {
            let mut s = self.path.as_os_str().to_owned();
            s.push(format!(".{n}"));
            PathBuf::from(s)
        };
        if self.max_files == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(numbered(self.max_files));
            for n in (1..self.max_files).rev() {
                let from = numbered(n);
                if from.exists() {
                    std::fs::rename(&from, numbered(n + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        self.file = open_append(&self.path)?;
        sync_dir(&self.path)?;
        self.offset = 0;
        info!(path = %self.path.display(), "rotated");
        Ok(true)
    }

    /// Appends the batch as NDJSON and makes it durable. Returns the new
    /// file length, to be committed with the cursor.
    pub fn write_batch(&mut self, batch: &[BatchRecord]) -> std::io::Result<u64> {
        let size: usize = batch.iter().map(|r| r.payload.len() + 1).sum();
        let buf = &mut self.buf;
        buf.clear();
        buf.reserve(size);
        for r in batch {
            buf.extend_from_slice(r.payload.as_bytes());
            buf.push(b'\n');
        }
        self.file.write_all(buf)?;
        self.file.sync_data()?;
        self.offset += buf.len() as u64;
        Ok(self.offset)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    let existed = path.exists();
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)?;
    if !existed {
        sync_dir(path)?;
    }
    Ok(file)
}

/// fsync the directory so a created or renamed file survives power loss.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: i64, payload: &str) -> BatchRecord {
        BatchRecord {
            seq,
            activity_id: format!("a{seq}"),
            created_at_ms: 0,
            payload: payload.into(),
        }
    }

    fn config(dir: &Path, max_bytes: u64) -> FileSinkConfig {
        FileSinkConfig {
            path: dir.join("out/events.ndjson"),
            max_bytes,
            max_files: 2,
        }
    }

    #[test]
    fn writes_lines_and_reports_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FileSink::open(&config(dir.path(), 0), None).unwrap();
        assert_eq!(
            sink.write_batch(&[rec(1, "{\"a\":1}"), rec(2, "{\"b\":2}")])
                .unwrap(),
            16
        );
        assert_eq!(
            std::fs::read_to_string(sink.path()).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n"
        );
    }

    #[test]
    fn recovery_takes_whole_lines_and_cuts_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), 0);
        std::fs::create_dir_all(cfg.path.parent().unwrap()).unwrap();
        // Committed: 8 bytes. Then a crash after line 2 whole and 3 bytes of line 3.
        std::fs::write(&cfg.path, "{\"a\":1}\n{\"b\":2}\n{\"c").unwrap();
        let mut sink = FileSink::open(&cfg, Some(8)).unwrap();
        let next = [
            rec(2, "{\"b\":2}"),
            rec(3, "{\"c\":3}"),
            rec(4, "{\"d\":4}"),
        ];
        let r = sink.recover(&next).unwrap();
        assert_eq!(
            r,
            Recovery {
                already_written: 1,
                truncated_bytes: 3,
                foreign_bytes: 0
            }
        );
        assert_eq!(sink.offset(), 16);
        sink.write_batch(&next[1..]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&cfg.path).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n{\"d\":4}\n"
        );
    }

    #[test]
    fn recovery_leaves_foreign_bytes_alone() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), 0);
        std::fs::create_dir_all(cfg.path.parent().unwrap()).unwrap();
        std::fs::write(&cfg.path, "{\"a\":1}\nsomeone else\n").unwrap();
        let mut sink = FileSink::open(&cfg, Some(8)).unwrap();
        let r = sink.recover(&[rec(2, "{\"b\":2}")]).unwrap();
        assert_eq!(
            r,
            Recovery {
                already_written: 0,
                truncated_bytes: 0,
                foreign_bytes: 13
            }
        );
        assert_eq!(sink.offset(), 21);
    }

    #[test]
    fn rotates_at_batch_boundaries_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), 20);
        let mut sink = FileSink::open(&cfg, None).unwrap();
        for i in 0..4 {
            let batch = [rec(i, "0123456789abcdef")];
            let rotated = sink.rotate_if_needed(17).unwrap();
            assert_eq!(rotated, i > 0);
            sink.write_batch(&batch).unwrap();
        }
        let p = |s: &str| dir.path().join(format!("out/events.ndjson{s}"));
        assert!(p("").exists() && p(".1").exists() && p(".2").exists());
        assert!(!p(".3").exists(), "only max_files rotated files are kept");
    }
}
