//! The file operations the file sink performs, behind two small traits so
//! that a test can make any one of them fail the way a full or failing disk
//! does (a short write, then ENOSPC; EIO; an fsync that fails), while the
//! daemon uses the real file system (`RealDisk`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Which file a handle or a path refers to: (device, inode).
pub type FileId = (u64, u64);

/// An open file, written only at its end.
pub trait AppendFile: Send {
    /// One write(2) at the end of the file: how many bytes of `buf` it took
    /// (fewer than asked when the disk fills up).
    fn append(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// fdatasync(2).
    fn sync(&mut self) -> io::Result<()>;
    /// The file's length.
    fn size(&self) -> io::Result<u64>;
    /// Reads at `offset` into `buf`; fewer bytes at the end of the file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Cuts the file to `len` bytes (ftruncate(2)).
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    fn id(&self) -> io::Result<FileId>;
}

/// The directory operations of opening and rotating the file.
pub trait Disk: Send + Sync {
    /// Opens `path` for appending, creating it (mode 0640) if needed; a
    /// created file's directory is fsynced so the file survives power loss.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>>;
    fn exists(&self, path: &Path) -> io::Result<bool>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// fsyncs the directory holding `path`, so renames in it are durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealDisk;

impl Disk for RealDisk {
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let existed = path.try_exists()?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .mode(0o640)
            .open(path)?;
        if !existed {
            self.sync_dir(path)?;
        }
        Ok(Box::new(file))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(dir)?.sync_all()
    }
}

impl AppendFile for File {
    fn append(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write(buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }

    fn id(&self) -> io::Result<FileId> {
        let m = self.metadata()?;
        Ok((m.dev(), m.ino()))
    }
}
