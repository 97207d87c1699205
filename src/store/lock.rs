//! One daemon per state database: a second instance polling with the same
//! watermarks would double the API budget and race on cursors.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// An exclusive `flock` on `<state.db>.lock`, held for the life of the
/// process. The kernel releases it when the process dies, even by SIGKILL,
/// so a crash never leaves a stale lock behind.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    pub path: PathBuf,
}

impl InstanceLock {
    pub fn acquire(db_path: &Path) -> anyhow::Result<InstanceLock> {
        let mut name = db_path.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EACCES | libc::EPERM | libc::EROFS) => {
                    anyhow::Error::new(super::error::access_problem(&path, &e.to_string()))
                }
                _ => anyhow::anyhow!("cannot open lock file {}: {e}", path.display()),
            })?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                anyhow::bail!(
                    "another claudit is already running on state database {} (lock {} is held); \
                     run one daemon per state database: stop the other one, or give this one its own [state] path",
                    db_path.display(),
                    path.display()
                );
            }
            anyhow::bail!("cannot lock {}: {err}", path.display());
        }
        Ok(InstanceLock { _file: file, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_same_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let first = InstanceLock::acquire(&db).unwrap();
        let err = InstanceLock::acquire(&db).unwrap_err().to_string();
        assert!(err.contains("another claudit is already running"), "{err}");
        drop(first);
        InstanceLock::acquire(&db).unwrap();
    }
}
