//! A disk that fails on a schedule, for tests: real files in a directory,
//! with chosen operations failing the way a full or broken disk makes them
//! fail, and a model of what is durable, so a test can also pull the plug.
//!
//! The durability model follows Linux: bytes are durable up to a file's
//! length at its last successful fsync. An fsync that fails with EIO marks
//! the pages it could not write clean: they still read back as written, but
//! no later fsync writes them, so a power loss leaves NULs there unless they
//! were written again (`Fault::Io` on an fsync). Or the failed pages are
//! dropped from the cache and read back as NULs at once
//! (`Fault::SyncLosesPages`). Directory operations are taken as durable.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::disk::{AppendFile, Disk, FileId, RealDisk};

/// What goes wrong with one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// A write takes this many bytes (at most all but one), and the write
    /// after it fails with ENOSPC: what a write(2) that fills the disk does.
    /// Any other operation fails with ENOSPC.
    ShortWrite(usize),
    /// The operation fails with ENOSPC, doing nothing.
    Full,
    /// The operation fails with EIO, doing nothing; on an fsync, the bytes
    /// written since the last successful one will never reach the disk
    /// unless written again.
    Io,
    /// An fsync fails with EIO and the bytes written since the last
    /// successful one are lost from the page cache: they read back as NULs.
    /// Any other operation fails with EIO.
    SyncLosesPages,
}

/// What the disk holds durably of one file.
#[derive(Debug)]
struct Durable {
    /// Where the file is (followed through renames).
    path: PathBuf,
    /// Its length at its last successful fsync.
    synced: u64,
    /// Bytes a failed fsync left unwritable (start, end).
    unwritable: Option<(u64, u64)>,
}

/// Which operations fail: the n-th operation (counted from 0 over the disk
/// and every file it opened) gets `faults[n]`.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    faults: BTreeMap<u64, Fault>,
    ops: u64,
    /// Faults that happened so far.
    injected: u64,
    files: HashMap<FileId, Durable>,
    /// Bytes the disk can still take (None: unlimited). A write takes what
    /// fits; once nothing does, writes fail with ENOSPC.
    room: Option<u64>,
}

impl Schedule {
    pub fn new(faults: impl IntoIterator<Item = (u64, Fault)>) -> Schedule {
        Schedule {
            faults: faults.into_iter().collect(),
            ..Schedule::default()
        }
    }

    /// The fault for the operation being done now, if any.
    fn next(&mut self) -> Option<Fault> {
        let n = self.ops;
        self.ops += 1;
        let fault = self.faults.remove(&n);
        if fault.is_some() {
            self.injected += 1;
        }
        fault
    }

    /// Schedules ENOSPC for the operation after the current one.
    fn full_next(&mut self) {
        self.faults.entry(self.ops).or_insert(Fault::Full);
    }
}

fn error(fault: Fault) -> io::Error {
    match fault {
        Fault::ShortWrite(_) | Fault::Full => io::Error::from_raw_os_error(libc::ENOSPC),
        Fault::Io | Fault::SyncLosesPages => io::Error::from_raw_os_error(libc::EIO),
    }
}

#[derive(Clone)]
pub(crate) struct FaultyDisk {
    schedule: Arc<Mutex<Schedule>>,
}

impl FaultyDisk {
    pub fn new(schedule: Schedule) -> FaultyDisk {
        FaultyDisk {
            schedule: Arc::new(Mutex::new(schedule)),
        }
    }

    /// Makes the `n`-th operation from now (0 = the next one) fail.
    pub fn fail_in(&self, n: u64, fault: Fault) {
        let mut schedule = self.lock();
        let at = schedule.ops + n;
        schedule.faults.insert(at, fault);
    }

    /// Limits what writes can still append, in bytes (None: no limit).
    pub fn set_room(&self, room: Option<u64>) {
        self.lock().room = room;
    }

    /// How many scheduled faults happened.
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    /// The machine loses power: every file keeps only what is durable
    /// (open handles must be dropped first).
    pub fn power_loss(&self) {
        let mut schedule = self.lock();
        for (id, durable) in &mut schedule.files {
            let Ok(m) = std::fs::metadata(&durable.path) else {
                continue;
            };
            if (m.dev(), m.ino()) != *id {
                continue;
            }
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&durable.path)
                .unwrap();
            file.set_len(durable.synced.min(m.len())).unwrap();
            if let Some((start, end)) = durable.unwritable.take() {
                let end = end.min(durable.synced);
                if start < end {
                    file.write_all_at(&vec![0; (end - start) as usize], start)
                        .unwrap();
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self) -> io::Result<()> {
        match self.lock().next() {
            Some(fault) => Err(error(fault)),
            None => Ok(()),
        }
    }
}

impl Disk for FaultyDisk {
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        self.check()?;
        let inner = RealDisk.open_append(path)?;
        let id = inner.id()?;
        let len = inner.size()?;
        self.lock().files.entry(id).or_insert(Durable {
            path: path.to_path_buf(),
            synced: len,
            unwritable: None,
        });
        Ok(Box::new(FaultyFile {
            inner,
            id,
            disk: self.clone(),
        }))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.check()?;
        RealDisk.exists(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check()?;
        let id = file_id(from);
        RealDisk.rename(from, to)?;
        if let Some(id) = id
            && let Some(durable) = self.lock().files.get_mut(&id)
        {
            durable.path = to.to_path_buf();
        }
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.check()?;
        let id = file_id(path);
        RealDisk.remove(path)?;
        if let Some(id) = id {
            self.lock().files.remove(&id);
        }
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.check()?;
        RealDisk.sync_dir(path)
    }
}

struct FaultyFile {
    inner: Box<dyn AppendFile>,
    id: FileId,
    disk: FaultyDisk,
}

impl AppendFile for FaultyFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut schedule = self.disk.lock();
        match schedule.next() {
            Some(Fault::ShortWrite(k)) if buf.len() > 1 => {
                schedule.full_next();
                drop(schedule);
                self.inner.append(&buf[..k.clamp(1, buf.len() - 1)])
            }
            Some(fault) => Err(error(fault)),
            None => match schedule.room {
                Some(0) => Err(error(Fault::Full)),
                Some(room) => {
                    let n = self.inner.append(&buf[..buf.len().min(room as usize)])?;
                    schedule.room = Some(room - n as u64);
                    Ok(n)
                }
                None => {
                    drop(schedule);
                    self.inner.append(buf)
                }
            },
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut schedule = self.disk.lock();
        let fault = schedule.next();
        let len = self.inner.size()?;
        let durable = schedule
            .files
            .get_mut(&self.id)
            .expect("opened through this disk");
        match fault {
            None => {
                self.inner.sync()?;
                durable.synced = len;
                Ok(())
            }
            Some(Fault::Io) => {
                if len > durable.synced {
                    let (start, end) = durable.unwritable.unwrap_or((durable.synced, len));
                    durable.unwritable = Some((start.min(durable.synced), end.max(len)));
                }
                Err(error(Fault::Io))
            }
            Some(Fault::SyncLosesPages) => {
                if len > durable.synced {
                    write_nul(&durable.path, self.id, durable.synced, len)?;
                }
                Err(error(Fault::SyncLosesPages))
            }
            Some(fault) => Err(error(fault)),
        }
    }

    fn size(&self) -> io::Result<u64> {
        self.disk.check()?;
        self.inner.size()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.disk.check()?;
        self.inner.read_at(buf, offset)
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.disk.check()?;
        self.inner.truncate(len)?;
        let mut schedule = self.disk.lock();
        let durable = schedule
            .files
            .get_mut(&self.id)
            .expect("opened through this disk");
        durable.synced = durable.synced.min(len);
        durable.unwritable = durable
            .unwritable
            .map(|(start, end)| (start, end.min(len)))
            .filter(|(start, end)| start < end);
        Ok(())
    }

    fn id(&self) -> io::Result<FileId> {
        self.disk.check()?;
        self.inner.id()
    }
}

fn file_id(path: &Path) -> Option<FileId> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino()))
}

/// Overwrites `start..end` of the file `id` with NULs (pages dropped from
/// the cache), if it is still at `path`.
fn write_nul(path: &Path, id: FileId, start: u64, end: u64) -> io::Result<()> {
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    let m = file.metadata()?;
    if (m.dev(), m.ino()) == id {
        file.write_all_at(&vec![0; (end - start) as usize], start)?;
    }
    Ok(())
}
