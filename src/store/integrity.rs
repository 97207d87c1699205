//! Whether the state database may be used, checked before claudit writes
//! to it: the daemon's user can write where it lives; a database without
//! claudit's tables is new, not one whose content was lost; and, at daemon
//! start-up, SQLite's `PRAGMA quick_check` finds no damage within a time
//! bound. A database that fails is refused, never reset; `--reset-state`
//! sets it aside (renamed, never deleted) so the daemon can start over.
//!
//! The lost-content probe runs before SQLite opens the file for writing:
//! SQLite deletes a write-ahead log beside an empty main file when it opens
//! it, and checkpoints and deletes it when the last writer closes, which
//! would erase the evidence, and the next start would look like a first
//! one. The probe reads with a read-only connection, which does neither.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::error::{InDatabase, access_problem, directory_problem};
use super::{Store, StoreError};

/// How long start-up lets `PRAGMA quick_check` run. It reads every page
/// (about 1 GB/s from a warm SSD); past the bound start-up goes on with a
/// warning rather than keep a large journal's daemon from starting (systemd
/// gives a service 90 s to report ready).
pub const QUICK_CHECK_BUDGET: Duration = Duration::from_secs(20);

/// `<db><suffix>`: the files SQLite keeps beside a database.
pub fn companion(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The suffixes of the files SQLite and claudit keep beside the database.
pub const COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Refuses, before anything is opened for writing, a database the daemon's
/// user cannot write: the file itself, then its directory (SQLite creates
/// `-wal` and `-shm` there).
pub fn check_writable(path: &Path) -> Result<(), StoreError> {
    if path.exists()
        && let Err(e) = access(path, libc::W_OK)
    {
        return Err(access_problem(
            path,
            &format!("the file is read-only for this user ({e})"),
        ));
    }
    let dir = directory_of(path);
    if let Err(e) = access(dir, libc::W_OK | libc::X_OK) {
        return Err(directory_problem(
            dir,
            path,
            &format!("the directory is read-only for this user ({e})"),
        ));
    }
    Ok(())
}

/// Who may be writing the database while [`refuse_lost_content`] looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// The caller holds the instance lock: nobody else writes (the daemon
    /// at start-up).
    Us,
    /// Unknown. If a daemon holds the instance lock, it checked at its own
    /// start and its log may be mid-write: nothing is checked.
    Unknown,
}

/// Refuses a database whose committed content is gone although the files
/// beside it show it existed: a write-ahead log shorter than its index
/// (`-shm`) says, or no claudit tables in a database that was used. Reads
/// only, before SQLite opens the database (which would rebuild the index
/// from what is left of the log, or delete the log, erasing the evidence).
pub fn refuse_lost_content(path: &Path, writer: Writer) -> Result<(), StoreError> {
    if writer == Writer::Unknown && daemon_running(path) {
        return Ok(());
    }
    refuse_truncated_wal(path)?;
    refuse_lost_schema(path)
}

/// Whether a daemon holds the instance lock of `path` (`<db>.lock`).
fn daemon_running(path: &Path) -> bool {
    use std::os::unix::io::AsRawFd;
    let Ok(file) = std::fs::File::open(companion(path, ".lock")) else {
        return false;
    };
    // SAFETY: flock on a descriptor we own; released when `file` closes.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
}

/// The wal-index header (the first 136 bytes of `-shm`), as SQLite's WAL
/// format document describes it: two copies of the index header (48 bytes
/// each, native byte order) and the checkpoint information.
struct WalIndex {
    /// Frames of the log that hold committed transactions.
    max_frame: u32,
    /// Of those, the frames already copied into the database file.
    backfilled: u32,
    page_size: u64,
    /// The log's salt (bytes 16..24 of its header), copied as bytes.
    salt: [u8; 8],
}

impl WalIndex {
    /// Reads a consistent, initialized header; `None` when there is none
    /// (no file, too short, being rewritten): nothing can be concluded.
    fn read(shm: &Path) -> Option<WalIndex> {
        let mut header = [0u8; 136];
        let mut file = std::fs::File::open(shm).ok()?;
        std::io::Read::read_exact(&mut file, &mut header).ok()?;
        let u32_at = |at: usize| u32::from_ne_bytes(header[at..at + 4].try_into().unwrap());
        let initialized = header[12] == 1;
        if header[..48] != header[48..96] || !initialized || u32_at(0) != 3_007_000 {
            return None;
        }
        let size = u16::from_ne_bytes([header[14], header[15]]) as u64;
        Some(WalIndex {
            max_frame: u32_at(16),
            backfilled: u32_at(96),
            // 65,536 is stored as 1.
            page_size: (size & 0xfe00) + ((size & 1) << 16),
            salt: header[32..40].try_into().unwrap(),
        })
    }
}

/// Refuses a database whose write-ahead log lost frames its index says
/// were committed and not yet copied into the database.
fn refuse_truncated_wal(path: &Path) -> Result<(), StoreError> {
    let Some(index) = WalIndex::read(&companion(path, "-shm")) else {
        return Ok(());
    };
    if index.max_frame <= index.backfilled || index.page_size == 0 {
        return Ok(());
    }
    let wal = companion(path, "-wal");
    let needed = 32 + u64::from(index.max_frame) * (24 + index.page_size);
    let found = match std::fs::read(&wal).ok().filter(|bytes| bytes.len() >= 32) {
        None => std::fs::metadata(&wal).ok().map(|m| m.len()),
        Some(bytes) if bytes[16..24] != index.salt => {
            // Another generation of the log: the index is stale, nothing
            // can be concluded.
            return Ok(());
        }
        Some(bytes) if bytes.len() as u64 >= needed => return Ok(()),
        Some(bytes) => Some(bytes.len() as u64),
    };
    let name = file_name(path);
    let log = match found {
        None => format!("{name}-wal is missing"),
        Some(n) => format!("{name}-wal holds {n} bytes"),
    };
    let p = path.display();
    Err(StoreError::Lost {
        path: path.to_path_buf(),
        what: format!(
            "lost its most recent transactions: its index {name}-shm records {} committed frames of \
             the write-ahead log not yet copied into the database ({needed} bytes of log), but {log}: \
             the log was cut off or deleted after a crash",
            index.max_frame - index.backfilled
        ),
        fix: format!(
            "Stop here and look for a backup of {p} together with its {name}-wal. Without one, either \
             go on from what the database holds (the state of its last checkpoint: the sources read again, \
             and the sinks deliver again, everything after it) by removing {p}-wal and {p}-shm; or start \
             over with `claudit run --reset-state`, which sets these files aside and re-reads every \
             source's initial_lookback (each sink receives those events again)"
        ),
    })
}

/// Refuses a database that has no claudit tables although its files show
/// it was used.
fn refuse_lost_schema(path: &Path) -> Result<(), StoreError> {
    let size = |p: &Path| std::fs::metadata(p).ok().map(|m| m.len());
    let main = size(path).unwrap_or(0);
    let companions: Vec<String> = ["-wal", "-journal"]
        .iter()
        .filter_map(|s| {
            let p = companion(path, s);
            size(&p).map(|n| format!("{} ({n} bytes) is beside it", file_name(&p)))
        })
        .collect();
    if main == 0 && companions.is_empty() {
        // A new database: an empty file with nothing beside it.
        return Ok(());
    }
    if main > 0 {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .in_db(path)?;
        conn.busy_timeout(Duration::from_secs(10)).in_db(path)?;
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| not_a_database(path, e))?;
        if tables > 0 {
            return Ok(());
        }
    }
    // SQLite writes the first page of a new database before any log
    // exists: an empty file with a log beside it, or a used file without
    // tables, lost its pages.
    let mut evidence = if main == 0 {
        "the file is empty".to_string()
    } else {
        format!("the file holds {main} bytes")
    };
    if !companions.is_empty() {
        evidence.push_str(&format!(" and {}", companions.join(", ")));
    }
    let (p, name) = (path.display(), file_name(path));
    Err(StoreError::Lost {
        path: path.to_path_buf(),
        what: format!(
            "has no claudit tables, but {evidence}: the database was used and its content is gone \
             (typically its write-ahead log was cut off or deleted after a crash)"
        ),
        fix: format!(
            "Stop here and look for a backup of {p} together with its {name}-wal; without one, start \
             over with `claudit run --reset-state`, which sets these files aside and re-reads every \
             source's initial_lookback (each sink receives those events again)"
        ),
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reading the first page failed: the file is not SQLite, or is damaged.
pub fn not_a_database(path: &Path, error: rusqlite::Error) -> StoreError {
    match StoreError::sqlite(path, error) {
        StoreError::Sqlite { path, error } => StoreError::damaged(
            &path,
            format!("it is not a usable SQLite database (SQLite says \"{error}\")"),
        ),
        other => other,
    }
}

/// What `PRAGMA quick_check` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuickCheck {
    Passed {
        took: Duration,
    },
    /// Interrupted at the time bound; what it read was sound.
    Unfinished {
        after: Duration,
    },
}

impl Store {
    /// `PRAGMA quick_check`, interrupted once `budget` has passed (SQLite
    /// asks every 100 pages or cells checked whether to go on). Damage is
    /// an error quoting SQLite's first findings.
    pub fn quick_check(&mut self, budget: Duration) -> Result<QuickCheck, StoreError> {
        let started = Instant::now();
        self.conn
            .progress_handler(100, Some(move || started.elapsed() >= budget))
            .in_db(&self.path)?;
        // At most 10 findings: enough to say what is wrong.
        let findings = self
            .conn
            .prepare("PRAGMA quick_check(10)")
            .and_then(|mut stmt| {
                stmt.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            });
        self.conn
            .progress_handler(0, None::<fn() -> bool>)
            .in_db(&self.path)?;
        let took = started.elapsed();
        match findings {
            Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Ok(QuickCheck::Passed { took }),
            Ok(lines) => Err(StoreError::damaged(
                &self.path,
                format!(
                    "`PRAGMA quick_check` found: {}",
                    lines.join("; ").chars().take(600).collect::<String>()
                ),
            )),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::OperationInterrupted =>
            {
                Ok(QuickCheck::Unfinished { after: took })
            }
            Err(e) => Err(match StoreError::sqlite(&self.path, e) {
                StoreError::Damaged { path, what, .. } => StoreError::damaged(
                    &path,
                    format!("`PRAGMA quick_check` could not read it: {what}"),
                ),
                other => other,
            }),
        }
    }
}

/// The daemon's start-up: the database opened, checked, and what was done.
pub struct Startup {
    pub store: Store,
    pub quick_check: QuickCheck,
    /// Set aside by `--reset-state`: (from, to) for each file moved, and the
    /// refusal that made it necessary.
    pub set_aside: Option<(StoreError, Vec<(PathBuf, PathBuf)>)>,
    /// `--reset-state` was given but the database was sound: nothing moved.
    pub reset_not_needed: bool,
}

/// Opens the state database for the daemon and checks it (writable, not
/// emptied, `quick_check` within [`QUICK_CHECK_BUDGET`]). A damaged or
/// emptied database is refused, unless `reset` is set: then its files are
/// renamed aside with a timestamp (`state.db.damaged-20260102T030405Z`, and
/// `...-wal` beside it, so the pair stays readable) and a new database is
/// created. `reset` moves nothing when the database is sound, so the flag
/// left on a command line never discards a working state.
pub fn open_at_startup(path: &Path, reset: bool, budget: Duration) -> Result<Startup, StoreError> {
    // Writable first: even the read-only probe needs to create `-shm`.
    let checked = check_writable(path)
        .and_then(|()| refuse_lost_content(path, Writer::Us))
        .and_then(|()| Store::open(path))
        .and_then(|mut store| {
            let quick_check = store.quick_check(budget)?;
            Ok((store, quick_check))
        });
    match checked {
        Ok((store, quick_check)) => Ok(Startup {
            store,
            quick_check,
            set_aside: None,
            reset_not_needed: reset,
        }),
        Err(refusal) if reset && refusal.may_be_set_aside() => {
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
            let moved = set_aside(path, &stamp).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                reason: format!("--reset-state could not set the damaged files aside: {e}"),
            })?;
            let store = Store::open(path)?;
            Ok(Startup {
                store,
                quick_check: QuickCheck::Passed {
                    took: Duration::ZERO,
                },
                set_aside: Some((refusal, moved)),
                reset_not_needed: false,
            })
        }
        Err(refusal) => Err(refusal),
    }
}

impl StoreError {
    /// Damaged or lost: what `--reset-state` may set aside. A newer schema
    /// is not: the newer binary reads it.
    fn may_be_set_aside(&self) -> bool {
        matches!(self, StoreError::Damaged { .. } | StoreError::Lost { .. })
    }
}

/// Renames the database and its companions to `<db>.damaged-<stamp>` (a
/// counter is added if that exists). Returns what moved where.
fn set_aside(path: &Path, stamp: &str) -> std::io::Result<Vec<(PathBuf, PathBuf)>> {
    let mut base = companion(path, &format!(".damaged-{stamp}"));
    let mut n = 1;
    while base.exists() || COMPANIONS.iter().any(|s| companion(&base, s).exists()) {
        n += 1;
        base = companion(path, &format!(".damaged-{stamp}-{n}"));
    }
    let mut moved = Vec::new();
    for suffix in std::iter::once("").chain(COMPANIONS) {
        let from = companion(path, suffix);
        if from.exists() {
            let to = companion(&base, suffix);
            std::fs::rename(&from, &to)?;
            moved.push((from, to));
        }
    }
    // The renames survive a crash.
    std::fs::File::open(directory_of(path))?.sync_all()?;
    Ok(moved)
}

/// The directory a path is in (`.` for a bare name).
fn directory_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// access(2) for the real user: whether the daemon's user may do `mode`.
fn access(path: &Path, mode: libc::c_int) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated string for the call's duration.
    match unsafe { libc::access(c.as_ptr(), mode) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}
