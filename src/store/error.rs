//! Why the state database could not be used, worded for the operator: every
//! message names the database file, says what is wrong and what to do.
//!
//! Every SQLite error leaves the store through [`StoreError::sqlite`]
//! (`.in_db(path)` on a rusqlite result), which names the file and sorts
//! the error into damage (the file is not what claudit wrote: restarting
//! will not help), access (the daemon's user may not write it: a deployment
//! fix) or anything else.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;
use rusqlite::types::Type;

/// Why the state database could not be used. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "state database {path} was written by a newer claudit (schema version {found}, this binary knows up to {known}); run the newer claudit, or point [state] path at a new file"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// The file is not what claudit wrote: a damaged page, a value of the
    /// wrong type, not SQLite at all. Nothing was modified.
    #[error("state database {path} is damaged: {what}. It was not modified. {fix}")]
    Damaged {
        path: PathBuf,
        what: String,
        fix: String,
    },
    /// Committed content is missing, and the files beside the database show
    /// it: no claudit tables in a database that was used, or a write-ahead
    /// log shorter than its index says (cut off or deleted after a crash).
    /// Going on would re-read and deliver again what was lost (everything
    /// since `initial_lookback` for an empty database), so it is refused.
    #[error("state database {path} {what}. It was not modified. {fix}")]
    Lost {
        path: PathBuf,
        what: String,
        fix: String,
    },
    /// The daemon's user may not write where the state lives.
    #[error("{problem}. {fix}")]
    Access { problem: String, fix: String },
    #[error(
        "cannot open state database {path}: {reason}; check that the directory exists and is writable by the claudit user"
    )]
    Open { path: PathBuf, reason: String },
    /// Any other SQLite error (busy, disk full, I/O), with the file.
    /// A write that would break one of the journal's invariants (a
    /// finding naming an activity the journal does not hold); nothing of
    /// the transaction was committed.
    #[error(
        "state database {path}: refused to commit {what}; nothing was written. This is a defect in claudit: report it with the log"
    )]
    Invariant { path: PathBuf, what: String },
    #[error("state database {path}: {error}")]
    Sqlite {
        path: PathBuf,
        // Not a `source`: the message already holds it, and a chain
        // printer would repeat it.
        error: rusqlite::Error,
    },
}

/// What kind of problem a [`StoreError`] is, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The data cannot be used as it is; a restart would meet it again.
    Damaged,
    /// Ownership, permissions, a read-only file system: a deployment fix.
    Access,
    /// Anything else; a restart may help.
    Other,
}

impl StoreError {
    /// An SQLite error on the database at `path`, sorted and worded.
    pub fn sqlite(path: &Path, error: rusqlite::Error) -> StoreError {
        if let rusqlite::Error::FromSqlConversionFailure(_, _, inner) = &error
            && let Some(value) = inner.downcast_ref::<UnreadableValue>()
        {
            return StoreError::damaged_row(path, value);
        }
        match &error {
            rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::NotADatabase => {
                StoreError::damaged(
                    path,
                    format!("it is not a usable SQLite database (SQLite says \"{error}\")"),
                )
            }
            rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::DatabaseCorrupt => {
                StoreError::damaged(path, format!("SQLite says \"{error}\""))
            }
            rusqlite::Error::SqliteFailure(e, _)
                if matches!(
                    e.code,
                    ErrorCode::ReadOnly | ErrorCode::PermissionDenied | ErrorCode::CannotOpen
                ) =>
            {
                access_problem(path, &error.to_string())
            }
            rusqlite::Error::InvalidColumnType(_, column, found) => StoreError::damaged(
                path,
                format!(
                    "column {column} holds {} where claudit wrote another type",
                    a(found)
                ),
            ),
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::Utf8Error(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::damaged(
                path,
                format!("a stored value cannot be read back ({error})"),
            ),
            _ => StoreError::Sqlite {
                path: path.to_path_buf(),
                error,
            },
        }
    }

    /// The whole file is damaged: the recovery steps for a file.
    pub fn damaged(path: &Path, what: String) -> StoreError {
        let p = path.display();
        StoreError::Damaged {
            path: path.to_path_buf(),
            what,
            fix: format!(
                "Stop here and keep a copy of {p} (with any {p}-wal beside it). Then restore the last good backup; \
                 or salvage what SQLite can read (`sqlite3 {p} .recover | sqlite3 {p}.recovered`, check it with \
                 `sqlite3 {p}.recovered \"PRAGMA integrity_check\"`, and point [state] path at it); or start over \
                 deliberately with `claudit run --reset-state`, which sets the damaged file aside (it is never \
                 deleted) and re-reads every source's initial_lookback (each sink receives those events again)"
            ),
        }
    }

    /// One journal row holds a value of the wrong type: the recovery steps
    /// for that row.
    fn damaged_row(path: &Path, value: &UnreadableValue) -> StoreError {
        let p = path.display();
        let seq = value.seq;
        StoreError::Damaged {
            path: path.to_path_buf(),
            what: value.to_string(),
            fix: format!(
                "Stop here and keep a copy of {p}. Check the whole file with `sqlite3 {p} \"PRAGMA integrity_check\"`: \
                 if more is damaged, see \"state database is damaged\" in the README. If only this row is, remove it \
                 with `sqlite3 {p} \"DELETE FROM journal WHERE seq = {seq}\"` and start claudit again; the sinks that \
                 had not delivered it never will, unless `claudit backfill` over its time range reads it from the API \
                 again (sinks that had delivered it then receive it twice)"
            ),
        }
    }

    /// What kind of problem this is.
    pub fn problem(&self) -> Problem {
        match self {
            StoreError::Damaged { .. }
            | StoreError::Lost { .. }
            | StoreError::NewerSchema { .. } => Problem::Damaged,
            StoreError::Access { .. } => Problem::Access,
            StoreError::Open { .. } | StoreError::Invariant { .. } | StoreError::Sqlite { .. } => {
                Problem::Other
            }
        }
    }
}

/// Names the database in an SQLite error: how every rusqlite result leaves
/// the store.
pub(crate) trait InDatabase<T> {
    fn in_db(self, path: &Path) -> Result<T, StoreError>;
}

impl<T> InDatabase<T> for rusqlite::Result<T> {
    fn in_db(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::sqlite(path, e))
    }
}

/// A value that is not of its column's type, met while reading a journal
/// row. Carried inside a rusqlite error out of the row-reading closures,
/// and turned into [`StoreError::Damaged`] with the row's recovery steps.
#[derive(Debug)]
pub(crate) struct UnreadableValue {
    pub seq: i64,
    pub column: String,
    pub found: Type,
    /// The value is TEXT but not UTF-8.
    pub not_utf8: bool,
}

impl fmt::Display for UnreadableValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.not_utf8 {
            write!(
                f,
                "journal row seq {}: column {} holds text that is not UTF-8",
                self.seq, self.column
            )
        } else {
            write!(
                f,
                "journal row seq {}: column {} holds {} where claudit wrote another type",
                self.seq,
                self.column,
                a(&self.found)
            )
        }
    }
}

impl std::error::Error for UnreadableValue {}

/// "a BLOB", "an INTEGER", ... as SQLite names its types.
fn a(t: &Type) -> &'static str {
    match t {
        Type::Null => "NULL",
        Type::Integer => "an INTEGER",
        Type::Real => "a REAL",
        Type::Text => "TEXT",
        Type::Blob => "a BLOB",
    }
}

/// The daemon's user may not write `path` (the database, its lock, or the
/// directory they live in): who the daemon runs as, who owns it, and how to
/// fix it. `what` is the underlying error.
pub fn access_problem(path: &Path, what: &str) -> StoreError {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    access_problem_in(path, what, dir)
}

/// [`access_problem`], where `state_dir` is the directory to give to the
/// daemon's user.
fn access_problem_in(path: &Path, what: &str, state_dir: &Path) -> StoreError {
    let p = path.display();
    let owner = std::fs::metadata(path)
        .map(|m| {
            format!(
                "; it belongs to uid {} with mode {:o}",
                m.uid(),
                m.mode() & 0o7777
            )
        })
        .unwrap_or_default();
    StoreError::Access {
        problem: format!(
            "cannot write {p}: {what}; claudit runs as uid {} (gid {}){owner}",
            current_uid(),
            current_gid()
        ),
        fix: format!(
            "The state directory and everything in it must belong to the user claudit runs as: \
             `chown -R <that user> {}`. Under systemd (DynamicUser=yes) keep [state] path under \
             /var/lib/claudit, which StateDirectory=claudit creates for the service's user (ProtectSystem=strict \
             makes the rest of the file system read-only); in a container, make the volume writable by the \
             image's user",
            state_dir.display()
        ),
    }
}

/// The directory of `db` must be writable: SQLite creates `<db>-wal` and
/// `<db>-shm` beside the database.
pub fn directory_problem(dir: &Path, db: &Path, what: &str) -> StoreError {
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut error = access_problem_in(dir, what, dir);
    if let StoreError::Access { problem, .. } = &mut error {
        problem.push_str(&format!(
            ", and SQLite must create {name}-wal and {name}-shm in it beside {name}"
        ));
    }
    error
}

pub fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

fn current_gid() -> u32 {
    // SAFETY: getgid has no preconditions and cannot fail.
    unsafe { libc::getgid() }
}
