//! Where the daemon will write, checked with the rest of the configuration
//! so that `claudit check` and `claudit run` refuse the same things (exit
//! 78) instead of the daemon failing at start-up (exit 1, which systemd
//! restarts every 10 s) or, worse, running: a file sink writing into
//! `state.db-wal` "delivers" events that SQLite erases at its next
//! checkpoint.
//!
//! No sink may write over the state database or the files beside it
//! (`-wal`, `-shm`, `-journal`, `.lock`), the configuration file, another
//! sink's file or rotated files, or into an archive sink's directory; two
//! archives may not share or nest directories. Paths are compared as the
//! file system resolves them (symlinks, `..`): the path itself when it
//! exists, else its nearest existing directory with the rest appended.
//!
//! With `probe_files` (`config::load`, not the hermetic `load_str`), the
//! state directory must exist and the state path must not be a directory,
//! and sink paths must be of the right kind where they exist.

use std::path::{Component, Path, PathBuf};

use super::SinkConfig;
use super::reader::Ctx;
use crate::sinks::registry::LocalPlace;

/// A path the configuration gives, with where it gives it.
pub(super) struct Place {
    /// `state.path`, `sinks[2].path`.
    pub key: String,
    pub line: Option<usize>,
    pub path: PathBuf,
    pub kind: Kind,
}

pub(super) enum Kind {
    State,
    /// A file sink's file; `rotated` of them are kept beside it
    /// (`<path>.1` ..), none when it never rotates.
    File {
        sink: String,
        rotated: u32,
    },
    Archive {
        sink: String,
    },
}

/// The place a sink writes to, if it writes to the local file system.
pub(super) fn of_sink(sink: &SinkConfig, key: String, line: Option<usize>) -> Option<Place> {
    let (path, kind) = match sink.kind.settings().local_place()? {
        LocalPlace::File { path, rotated } => (
            path,
            Kind::File {
                sink: sink.name.clone(),
                rotated,
            },
        ),
        LocalPlace::Directory { path } => (
            path,
            Kind::Archive {
                sink: sink.name.clone(),
            },
        ),
    };
    Some(Place {
        key,
        line,
        path,
        kind,
    })
}

/// A file someone owns, as the file system resolves it.
struct Claim {
    path: PathBuf,
    /// What the path is already, after "is already": "the state
    /// database's write-ahead log (...)", "written by sink \"a\"".
    what: String,
}

/// The state database and the files SQLite and claudit keep beside it.
fn state_claims(db: &Path) -> Vec<Claim> {
    let db = resolve(db);
    let beside = |suffix: &str, what: &str| Claim {
        path: with_suffix(&db, suffix),
        what: what.to_string(),
    };
    vec![
        beside("", "the state database"),
        beside(
            "-wal",
            "the state database's write-ahead log (SQLite resets it after each checkpoint: \
             events written there would vanish)",
        ),
        beside("-shm", "the state database's shared-memory index"),
        beside("-journal", "the state database's rollback journal"),
        beside(".lock", "the state database's lock file"),
    ]
}

/// A file sink's file and its rotated files.
fn file_claims(path: &Path, sink: &str, rotated: u32) -> Vec<Claim> {
    let path = resolve(path);
    let mut claims = vec![Claim {
        path: path.clone(),
        what: format!("written by sink {sink:?}"),
    }];
    for n in 1..=rotated {
        claims.push(Claim {
            path: with_suffix(&path, &format!(".{n}")),
            what: format!("a rotated file of sink {sink:?}"),
        });
    }
    claims
}

/// Reports every place that collides with another, or (with
/// `probe_files`) is not what it must be on this machine.
pub(super) fn check(cx: &mut Ctx, places: &[Place]) {
    let config_file = Claim {
        path: resolve(cx.file()),
        what: "the configuration file".to_string(),
    };
    let config_path = config_file.path.clone();
    let mut owned: Vec<Claim> = vec![];
    for place in places {
        if let Kind::State = place.kind {
            owned.extend(state_claims(&place.path));
        }
    }
    owned.push(config_file);
    // Archive directories seen so far: (directory, sink).
    let mut archives: Vec<(PathBuf, &str)> = Vec::new();
    let all_archives: Vec<(PathBuf, &str)> = places
        .iter()
        .filter_map(|p| match &p.kind {
            Kind::Archive { sink } => Some((resolve(&p.path), sink.as_str())),
            _ => None,
        })
        .collect();
    for place in places {
        let problem = match &place.kind {
            Kind::State if resolve(&place.path) == config_path => Some(format!(
                "{} is the configuration file; write the path of the database file, e.g. path = \"/var/lib/claudit/state.db\"",
                place.path.display()
            )),
            Kind::State => cx.probe_files.then(|| state_problem(&place.path)).flatten(),
            Kind::File { sink, rotated } => {
                let mine = file_claims(&place.path, sink, *rotated);
                let problem = file_problem(&mine, &owned, &all_archives, place, cx.probe_files);
                owned.extend(mine);
                problem
            }
            Kind::Archive { sink } => {
                let dir = resolve(&place.path);
                let problem = archive_problem(&dir, &owned, &archives, place, cx.probe_files);
                archives.push((dir, sink));
                problem
            }
        };
        if let Some(message) = problem {
            cx.error(place.key.clone(), place.line, message);
        }
    }
}

fn state_problem(path: &Path) -> Option<String> {
    let p = path.display();
    if path.is_dir() {
        return Some(format!(
            "{p} is a directory; write the path of the database file in it, e.g. path = \"{}\"",
            path.join("state.db").display()
        ));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let d = dir.display();
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => None,
        Ok(_) => Some(format!(
            "{d} is not a directory; point path at a file in a directory, e.g. \"/var/lib/claudit/state.db\""
        )),
        Err(_) => Some(format!(
            "directory {d} does not exist; create it, owned by the user claudit runs as \
             (`install -d -m 0700 -o <user> {d}`), or point path at an existing directory; \
             under systemd, StateDirectory=claudit creates /var/lib/claudit for the service"
        )),
    }
}

fn file_problem(
    mine: &[Claim],
    owned: &[Claim],
    archives: &[(PathBuf, &str)],
    place: &Place,
    probe_files: bool,
) -> Option<String> {
    let p = place.path.display();
    let fix = "give the sink its own path, e.g. path = \"/var/log/claudit/events.ndjson\"";
    for claim in mine {
        if let Some(other) = owned.iter().find(|o| o.path == claim.path) {
            let whose = if claim.path == mine[0].path {
                format!("{p} is already {}", other.what)
            } else {
                format!(
                    "this sink's rotated file {} is already {}",
                    claim.path.display(),
                    other.what
                )
            };
            return Some(format!("{whose}; two writers cannot share a file: {fix}"));
        }
    }
    let file = &mine[0].path;
    if let Some((dir, sink)) = archives.iter().find(|(dir, _)| file.starts_with(dir)) {
        return Some(format!(
            "{p} is inside the archive directory of sink {sink:?} ({}), which the archive owns: {fix}",
            dir.display()
        ));
    }
    if probe_files && place.path.is_dir() {
        return Some(format!(
            "{p} is a directory; write the path of a file in it, e.g. path = \"{}\"",
            place.path.join("events.ndjson").display()
        ));
    }
    None
}

fn archive_problem(
    dir: &Path,
    owned: &[Claim],
    earlier: &[(PathBuf, &str)],
    place: &Place,
    probe_files: bool,
) -> Option<String> {
    let p = place.path.display();
    let fix = "give each archive sink its own directory, e.g. path = \"/var/lib/claudit/archive\"";
    if let Some(other) = owned.iter().find(|o| o.path == dir) {
        return Some(format!("{p} is {}; {fix}", other.what));
    }
    for (other, sink) in earlier {
        let relation = if other == dir {
            "is the directory of"
        } else if dir.starts_with(other) {
            "is inside the directory of"
        } else if other.starts_with(dir) {
            "contains the directory of"
        } else {
            continue;
        };
        return Some(format!(
            "{p} {relation} archive sink {sink:?} ({}); two archives in one tree would mix their \
             manifests and segments: {fix}",
            other.display()
        ));
    }
    if probe_files && place.path.exists() && !place.path.is_dir() {
        return Some(format!(
            "{p} is a file; an archive needs a directory: {fix}"
        ));
    }
    None
}

/// `path` as the file system resolves it: canonical if it exists, else its
/// nearest existing ancestor canonicalized with the rest appended and `.`
/// and `..` resolved.
fn resolve(path: &Path) -> PathBuf {
    if let Ok(real) = std::fs::canonicalize(path) {
        return real;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let normal = normalize(&absolute);
    let mut existing = normal.as_path();
    let mut rest = Vec::new();
    while let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) {
        rest.push(name.to_owned());
        existing = parent;
        if let Ok(real) = std::fs::canonicalize(existing) {
            let mut resolved = real;
            for name in rest.iter().rev() {
                resolved.push(name);
            }
            return resolved;
        }
    }
    normal
}

/// `.` and `..` resolved without the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `<path><suffix>` (`state.db` + `-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_resolves_through_its_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(real.join("state")).unwrap();
        std::os::unix::fs::symlink(real.join("state"), real.join("link")).unwrap();
        let expected = real.join("state/state.db-wal");
        assert_eq!(resolve(&real.join("link/state.db-wal")), expected);
        assert_eq!(resolve(&real.join("state/../state/state.db-wal")), expected);
        assert_eq!(
            resolve(&real.join("missing/../state/state.db-wal")),
            expected
        );
        assert_eq!(
            resolve(&real.join("missing/deeper/x")),
            real.join("missing/deeper/x")
        );
    }
}
