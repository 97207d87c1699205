//! The file sink: NDJSON, one event per line, size-based rotation, flushed
//! and fsynced before its cursor advances.
//!
//! # Reconciliation
//!
//! The cursor row stores, with the last acknowledged record, the file's
//! length after it: the committed length. Whenever the file may hold bytes
//! that no commit accounts for, the sink reconciles the file with its cursor
//! before it writes again: at start-up (a batch cut short by a kill), and
//! after every write, fsync or rotation that failed (a full disk, an I/O
//! error), however many times in a row. One rule serves all of them:
//!
//! - Bytes past the committed length can only be a prefix of the lines the
//!   sink would write next. Whole lines that match are taken as written: they
//!   are fsynced and committed, never written twice. A last line that matches
//!   only in part (a write cut short) is cut off and written again whole, so
//!   no line is ever torn.
//!   Bytes that match nothing are not ours to delete: they are left in place,
//!   reported, and written after; except a run of NUL bytes, which is what a
//!   file system shows for data that never reached the disk, and is cut.
//! - After a failed fsync, nothing written since the last successful one is
//!   known to be on disk, whatever it reads back as: Linux reports a
//!   writeback error once and may mark the failed pages clean, so a later
//!   fsync succeeds without writing them. When the file holds exactly the
//!   bytes this process appended past the committed length, they are cut and
//!   written again; otherwise the first rule applies.
//! - After any failure the file is opened again from its path, so a rotation
//!   that stopped half-way (the file renamed, the new one not created yet) or
//!   a file rotated by someone else is found as it is. A file that is not
//!   the one the committed length was measured on (another inode, or shorter
//!   than that length) is reconciled from its start.
//!
//! The sink task commits what reconciliation found (the records found
//! written and the new length) before it writes anything else, so the
//! committed length always describes the file being written.
//!
//! What this cannot know: bytes whose fsync failed, when the process dies
//! before reconciling them (within one retry delay). At the next start they
//! look like a batch cut short by a kill, and their whole lines are kept
//! although the disk may never get them (a power loss later leaves NULs
//! there). Nor can it do better than the file system's fsync: one that
//! reports success for data it did not store loses committed lines on a
//! power loss.

mod destination;
mod disk;
#[cfg(test)]
pub(crate) mod faults;
mod settings;
#[cfg(test)]
mod tests;

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

use crate::model::BatchRecord;
pub use destination::FileDestination;
pub use disk::{AppendFile, Disk, FileId, RealDisk};
pub use settings::{FileSinkConfig, TYPE};

pub struct FileSink {
    disk: Arc<dyn Disk>,
    path: PathBuf,
    max_bytes: u64,
    max_files: u32,
    file: Box<dyn AppendFile>,
    /// Which file `file` is, to notice when its path names another one.
    file_id: FileId,
    /// The file's length after the last batch written (the length the sink
    /// task commits with its cursor).
    offset: u64,
    /// Set while the file may hold bytes past `offset` that no commit
    /// accounts for: nothing is written until they are reconciled.
    unreconciled: Option<Unreconciled>,
    /// The batch being written, kept between batches: a fresh buffer of a
    /// few MB per batch costs a page fault and a zeroed page per 4 KiB.
    buf: Vec<u8>,
    /// One line read back during reconciliation.
    line: Vec<u8>,
}

/// Why the file must be reconciled before the next write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unreconciled {
    /// Open the file again from its path first (after a failure or a
    /// rotation).
    reopen: bool,
    /// Bytes this process appended past `offset` before an fsync failed:
    /// what they read back as proves nothing about the disk.
    unsynced: u64,
}

/// What reconciliation found past the committed length.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Leading records of the next batch already in the file, whole.
    pub already_written: usize,
    /// Bytes cut off: a torn line, bytes whose fsync failed, or NULs.
    pub truncated_bytes: u64,
    /// Bytes that matched nothing we would write (left in place).
    pub foreign_bytes: u64,
}

impl FileSink {
    /// Opens (creating) the file for appending. `committed_offset` is the
    /// length recorded with the sink's cursor, if any. The file is
    /// reconciled before the first batch.
    pub fn open(config: &FileSinkConfig, committed_offset: Option<i64>) -> io::Result<FileSink> {
        FileSink::open_on(Arc::new(RealDisk), config, committed_offset)
    }

    /// `open`, with every file operation going through `disk`.
    pub fn open_on(
        disk: Arc<dyn Disk>,
        config: &FileSinkConfig,
        committed_offset: Option<i64>,
    ) -> io::Result<FileSink> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = disk.open_append(&config.path)?;
        let file_id = file.id()?;
        let offset = match committed_offset {
            Some(off) => off.max(0) as u64,
            // A new sink starts after whatever the file holds.
            None => file.size()?,
        };
        Ok(FileSink {
            disk,
            path: config.path.clone(),
            max_bytes: config.max_bytes,
            max_files: config.max_files,
            file,
            file_id,
            offset,
            unreconciled: Some(Unreconciled {
                reopen: false,
                unsynced: 0,
            }),
            buf: Vec::new(),
            line: Vec::new(),
        })
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether bytes whose fsync failed wait to be reconciled (a crash now
    /// is the limit named in the module docs).
    #[cfg(test)]
    pub(crate) fn holds_unsynced_bytes(&self) -> bool {
        self.unreconciled.is_some_and(|s| s.unsynced > 0)
    }

    /// How many bytes past the committed length wait to be reconciled, or
    /// None when the file is ready for the next batch. Opens the file again
    /// first when a failure or a rotation asked for it.
    pub fn unreconciled(&mut self) -> io::Result<Option<u64>> {
        let Some(mut state) = self.unreconciled else {
            return Ok(None);
        };
        if state.reopen {
            let file = self.disk.open_append(&self.path)?;
            let id = file.id()?;
            if id != self.file_id {
                // Renamed away (our rotation, or logrotate): the committed
                // length was another file's. The rename is made durable
                // before the new file's length is committed.
                self.disk.sync_dir(&self.path)?;
                info!(path = %self.path.display(),
                    "the file was replaced since it was opened (rotated); reconciling the new one from its start");
                self.offset = 0;
                state.unsynced = 0;
            }
            self.file = file;
            self.file_id = id;
            state.reopen = false;
            self.unreconciled = Some(state);
        }
        let len = self.file.size()?;
        if len < self.offset {
            // Rotated since the last commit (by us just before a crash, or
            // by logrotate), or truncated: reconcile it from its start.
            info!(path = %self.path.display(), committed = self.offset, length = len,
                "file is shorter than the committed offset (rotated or truncated); reconciling from its start");
            self.offset = 0;
            self.unreconciled = Some(Unreconciled {
                reopen: false,
                unsynced: 0,
            });
        }
        Ok(Some(len - self.offset))
    }

    /// Reconciles the bytes past the committed length (module docs) with
    /// `next`: the records after the cursor, in order, whose lines cover at
    /// least the bytes `unreconciled` reported, or a batch's worth of them.
    /// When every record of `next` was found written and bytes remain, the
    /// file stays unreconciled: commit, and call again with the records
    /// after those.
    pub fn reconcile(&mut self, next: &[BatchRecord]) -> io::Result<Recovery> {
        let result = self.reconcile_tail(next);
        if result.is_err()
            && let Some(state) = &mut self.unreconciled
        {
            // Start again from a fresh handle and what the file holds then.
            state.reopen = true;
        }
        result
    }

    fn reconcile_tail(&mut self, next: &[BatchRecord]) -> io::Result<Recovery> {
        let Some(tail) = self.unreconciled()? else {
            return Ok(Recovery::default());
        };
        let len = self.offset + tail;
        let unsynced = self.unreconciled.map_or(0, |s| s.unsynced);
        if unsynced > 0 && tail == unsynced {
            // Everything past the committed length is what this process
            // appended before an fsync failed: written again, whatever it
            // reads back as.
            self.cut(self.offset)?;
            self.unreconciled = None;
            warn!(path = %self.path.display(), bytes = tail,
                "an fsync failed: cut the bytes written since the last commit, to write them again");
            return Ok(Recovery {
                truncated_bytes: tail,
                ..Recovery::default()
            });
        }

        let mut recovery = Recovery::default();
        let mut pos = self.offset;
        // Whether the bytes at `pos` are neither a whole line nor a torn one.
        let mut mismatch = false;
        for record in next {
            if pos == len {
                break;
            }
            let payload = record.payload.as_bytes();
            let line_len = payload.len() as u64 + 1;
            let want = (len - pos).min(line_len) as usize;
            let got = self.read_line_at(pos, want)?;
            let line = &self.line[..got];
            if got as u64 == line_len && &line[..payload.len()] == payload && line[got - 1] == b'\n'
            {
                recovery.already_written += 1;
                pos += line_len;
                continue;
            }
            if (got as u64) < line_len && pos + got as u64 == len && line == &payload[..got] {
                // A write of exactly this line, cut short.
                recovery.truncated_bytes = len - pos;
            } else {
                mismatch = true;
            }
            break;
        }
        // Bytes left after every given record matched: more records may
        // match them (a long tail is reconciled a batch at a time), unless
        // there are no more.
        let undecided = pos < len && !mismatch && recovery.truncated_bytes == 0;
        if undecided && next.is_empty() {
            mismatch = true;
        }
        if mismatch {
            if self.all_nul(pos, len)? {
                recovery.truncated_bytes = len - pos;
            } else {
                recovery.foreign_bytes = len - pos;
            }
        }
        if recovery.truncated_bytes > 0 {
            self.file.truncate(pos)?;
        }
        if (recovery.already_written > 0 || recovery.truncated_bytes > 0)
            && let Err(e) = self.file.sync()
        {
            self.unreconciled = Some(Unreconciled {
                reopen: true,
                unsynced: pos - self.offset,
            });
            return Err(e);
        }
        if recovery.foreign_bytes > 0 {
            warn!(path = %self.path.display(), bytes = recovery.foreign_bytes,
                "file has bytes past the last committed batch that claudit did not write; leaving them and appending after them");
            self.offset = len;
            self.unreconciled = None;
        } else if undecided && !next.is_empty() {
            self.offset = pos;
            self.unreconciled = Some(Unreconciled {
                reopen: false,
                unsynced: 0,
            });
        } else {
            self.offset = pos;
            self.unreconciled = None;
        }
        Ok(recovery)
    }

    /// Reads up to `want` bytes at `pos` into `self.line`; how many it got.
    fn read_line_at(&mut self, pos: u64, want: usize) -> io::Result<usize> {
        self.line.resize(want, 0);
        let mut got = 0;
        while got < want {
            match self.file.read_at(&mut self.line[got..], pos + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }

    /// Whether the bytes from `pos` to `len` are all NUL.
    fn all_nul(&mut self, mut pos: u64, len: u64) -> io::Result<bool> {
        while pos < len {
            let got = self.read_line_at(pos, (len - pos).min(64 << 10) as usize)?;
            if got == 0 || self.line[..got].iter().any(|b| *b != 0) {
                return Ok(false);
            }
            pos += got as u64;
        }
        Ok(true)
    }

    /// Cuts the file to `len` bytes, durably.
    fn cut(&mut self, len: u64) -> io::Result<()> {
        self.file.truncate(len)?;
        self.file.sync()
    }

    /// Moves the file away (to `path.1`, the older ones one number up) if
    /// this batch would take it past `max_bytes`. Returns true if it did:
    /// the file is then unreconciled, so the sink task commits the new
    /// file's length (0) before anything is written into it, and after a
    /// crash recovery compares the new file's bytes with the batch, never
    /// with the old file's length. A rotation that fails half-way is found
    /// as it stopped by the reconciliation that follows.
    pub fn rotate_if_needed(&mut self, batch_bytes: u64) -> io::Result<bool> {
        if self.unreconciled.is_some()
            || self.max_bytes == 0
            || self.offset == 0
            || self.offset + batch_bytes <= self.max_bytes
        {
            return Ok(false);
        }
        self.unreconciled = Some(Unreconciled {
            reopen: true,
            unsynced: 0,
        });
        if self.max_files == 0 {
            self.disk.remove(&self.path)?;
        } else {
            self.shift_rotated()?;
            self.disk.rename(&self.path, &self.numbered(1))?;
        }
        info!(path = %self.path.display(), "rotated");
        Ok(true)
    }

    /// Frees `path.1`: moves `path.1 .. path.(n-1)` one number up, where
    /// `path.n` is the first that does not exist; when all `max_files` exist
    /// the oldest is removed first. Stopping at the first gap means that a
    /// rotation that failed half-way, done again, removes nothing more.
    fn shift_rotated(&self) -> io::Result<()> {
        let mut top = None;
        for n in 1..=self.max_files {
            if !self.disk.exists(&self.numbered(n))? {
                top = Some(n);
                break;
            }
        }
        let top = match top {
            Some(n) => n,
            None => {
                self.disk.remove(&self.numbered(self.max_files))?;
                self.max_files
            }
        };
        for n in (1..top).rev() {
            self.disk.rename(&self.numbered(n), &self.numbered(n + 1))?;
        }
        Ok(())
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut s = self.path.as_os_str().to_owned();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    /// Appends the batch as NDJSON and makes it durable. Returns the new
    /// file length, to be committed with the cursor. After a failure the
    /// file is unreconciled: the next batch waits for `reconcile`.
    pub fn write_batch(&mut self, batch: &[BatchRecord]) -> io::Result<u64> {
        if self.unreconciled.is_some() {
            return Err(io::Error::other(
                "the file has not been reconciled with the sink's cursor yet",
            ));
        }
        let size: usize = batch.iter().map(|r| r.payload.len() + 1).sum();
        let buf = &mut self.buf;
        buf.clear();
        buf.reserve(size);
        for r in batch {
            buf.extend_from_slice(r.payload.as_bytes());
            buf.push(b'\n');
        }
        let mut written = 0;
        while written < buf.len() {
            match self.file.append(&buf[written..]) {
                Ok(0) => {
                    self.unreconciled = Some(Unreconciled {
                        reopen: true,
                        unsynced: 0,
                    });
                    return Err(ErrorKind::WriteZero.into());
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // What was written is in the page cache; the fsync
                    // after reconciliation makes whole lines of it durable.
                    self.unreconciled = Some(Unreconciled {
                        reopen: true,
                        unsynced: 0,
                    });
                    return Err(e);
                }
            }
        }
        if let Err(e) = self.file.sync() {
            self.unreconciled = Some(Unreconciled {
                reopen: true,
                unsynced: written as u64,
            });
            return Err(e);
        }
        self.offset += written as u64;
        Ok(self.offset)
    }
}

/// A failed file operation as the sink's error: the operation, the file,
/// the system's words, and what to do (shown in logs, `status`, `/readyz`).
pub fn describe_error(action: &str, path: &Path, e: &io::Error) -> String {
    let advice = match e.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
            "the file system is full: free space on it (or lower max_bytes or max_files); \
             the batch stays in the journal and is written once there is room, \
             with no line torn or written twice"
        }
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            "claudit may not write there: fix the permissions or the mount, or move path \
             (under systemd only /var/lib/claudit and /var/log/claudit are writable)"
        }
        _ => "retried with backoff; the batch stays in the journal meanwhile",
    };
    format!("{action} {}: {e}; {advice}", path.display())
}
