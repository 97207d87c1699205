//! The local-directory backend:
//!
//! ```text
//! <path>/manifest.ndjson                  hash-chained, append-only
//! <path>/segments/<source>/<date>/<name>  gzip NDJSON, never rewritten in place
//! <path>/.tmp/                            segments being written
//! ```
//!
//! Order of a flush: each segment is written to `.tmp/`, fsynced, renamed
//! into `segments/` and its directory fsynced; then the manifest lines are
//! appended in one write and fsynced; only then does the caller advance the
//! cursor. A crash before the manifest append leaves at most an unlisted
//! segment file (rewritten with the same name and bytes, or left as an
//! orphan that `verify` lists); a crash during it at most a torn final line,
//! which [`LocalBackend::open`] cuts off.
//!
//! Opened for reading ([`LocalBackend::reader`], `claudit archive verify`
//! and `export`), it creates, cuts and writes nothing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use super::segment::FinishedSegment;

pub const MANIFEST: &str = "manifest.ndjson";
pub const SEGMENTS: &str = "segments";
const TMP: &str = ".tmp";

pub struct LocalBackend {
    root: PathBuf,
    /// The manifest opened for appending; `None` when opened for reading.
    manifest: Option<File>,
}

impl LocalBackend {
    /// Creates the layout if needed, cuts a torn final manifest line, and
    /// returns the backend with the manifest's bytes.
    pub fn open(root: &Path) -> anyhow::Result<(LocalBackend, Vec<u8>)> {
        let fail = |what: &str, e: io::Error| {
            anyhow::anyhow!(
                "archive directory {}: cannot {what}: {e}; create it and give the claudit user write access",
                root.display()
            )
        };
        fs::create_dir_all(root.join(SEGMENTS)).map_err(|e| fail("create segments/", e))?;
        let tmp = root.join(TMP);
        // Leftover temp files were never renamed, so never listed: drop them.
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(|e| fail("create .tmp/", e))?;
        let path = root.join(MANIFEST);
        let manifest = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| fail("open manifest.ndjson", e))?;
        sync_dir(root).map_err(|e| fail("sync", e))?;
        let mut bytes = fs::read(&path).map_err(|e| fail("read manifest.ndjson", e))?;
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            // Only a final line without its newline is a torn append; any
            // other damage is left for `claudit archive verify` to report.
            let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            warn!(manifest = %path.display(), cut_bytes = bytes.len() - keep,
                "cutting a torn final manifest line left by an interrupted append; its segment is rewritten");
            manifest
                .set_len(keep as u64)
                .and_then(|_| manifest.sync_all())
                .map_err(|e| fail("truncate the torn manifest line", e))?;
            bytes.truncate(keep);
        }
        Ok((
            LocalBackend {
                root: root.to_path_buf(),
                manifest: Some(manifest),
            },
            bytes,
        ))
    }

    /// The archive at `root`, for reading only: nothing is created or cut.
    pub fn reader(root: &Path) -> LocalBackend {
        LocalBackend {
            root: root.to_path_buf(),
            manifest: None,
        }
    }

    /// The manifest's bytes as they are (empty if there is no manifest).
    pub fn read_manifest(&self) -> anyhow::Result<Vec<u8>> {
        let path = self.root.join(MANIFEST);
        match fs::read(&path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        }
    }

    /// A segment's file, positioned at its start; `None` if it is absent.
    pub fn open_segment(&self, name: &str) -> anyhow::Result<Option<File>> {
        // A name from a tampered manifest must not leave the archive.
        if name.split('/').any(|part| part == ".." || part.is_empty()) {
            return Ok(None);
        }
        match File::open(segment_path(&self.root, name)) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => anyhow::bail!("cannot read segment {name}: {e}"),
        }
    }

    /// Every file under `segments/`, as segment names (for orphan reports).
    pub fn segment_names(&self) -> io::Result<Vec<String>> {
        list_segments(&self.root)
    }

    /// Where segments are written before their rename.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join(TMP)
    }

    /// Moves a finished segment to its final name, durably.
    pub fn store_segment(&self, name: &str, segment: FinishedSegment) -> io::Result<()> {
        let target = segment_path(&self.root, name);
        let dir = target.parent().expect("a segment name has directories");
        fs::create_dir_all(dir)?;
        segment.file.persist(&target).map_err(|e| e.error)?;
        // The rename and any new directories must survive power loss
        // before the manifest names the segment.
        sync_dir(dir)?;
        if let Some(date_parent) = dir.parent() {
            sync_dir(date_parent)?;
        }
        sync_dir(&self.root.join(SEGMENTS))?;
        Ok(())
    }

    /// Appends whole lines in one write, then fsyncs.
    pub fn append_manifest(&mut self, lines: &[Vec<u8>]) -> io::Result<()> {
        let Some(manifest) = self.manifest.as_mut() else {
            return Err(io::Error::other("the archive was opened for reading"));
        };
        let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for line in lines {
            buf.extend_from_slice(line);
            buf.push(b'\n');
        }
        manifest.write_all(&buf)?;
        manifest.sync_all()
    }
}

fn segment_path(root: &Path, name: &str) -> PathBuf {
    root.join(SEGMENTS).join(name)
}

fn list_segments(root: &Path) -> io::Result<Vec<String>> {
    let base = root.join(SEGMENTS);
    let mut out = Vec::new();
    let mut stack = vec![base.clone()];
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(&base) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
