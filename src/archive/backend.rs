//! An archive opened on its backend, a local directory or an S3 bucket:
//! the one type the writer (the archive sink's task) appends through and
//! `claudit archive verify` and `export` read through.

use std::path::{Path, PathBuf};

use super::local::{self, LocalBackend};
use super::manifest;
use super::s3::S3Backend;
use super::segment::FinishedSegment;
use super::settings::ArchiveBackend;
use crate::redact::Redactor;

/// Where the archive is, opened.
pub enum Backend {
    Local(LocalBackend),
    S3(Box<S3Backend>),
}

/// One manifest line and where it is (for reports).
#[derive(Debug, Clone)]
pub struct ManifestLine {
    /// e.g. `manifest.ndjson line 7` or `manifest/000000000003.ndjson line 2`.
    pub location: String,
    /// 1-based position in the whole manifest.
    pub number: u64,
    pub bytes: Vec<u8>,
}

impl Backend {
    /// Opens the archive of sink `sink` for appending (creating the local
    /// layout and cutting a torn final manifest line, or checking the
    /// bucket's Object Lock and staging segments under `state_dir`) and
    /// reads the manifest.
    pub async fn open_writer(
        sink: &str,
        config: &ArchiveBackend,
        state_dir: &Path,
    ) -> anyhow::Result<(Backend, Vec<ManifestLine>)> {
        match config {
            ArchiveBackend::Local { path } => {
                let (backend, bytes) =
                    LocalBackend::open(path).map_err(|e| anyhow::anyhow!("sink {sink}: {e:#}"))?;
                let lines = local_manifest_lines(&bytes).0;
                Ok((Backend::Local(backend), lines))
            }
            ArchiveBackend::S3(cfg) => {
                let backend = S3Backend::open(cfg, sink, state_dir)
                    .await
                    .map_err(|e| anyhow::anyhow!("sink {sink}: {e:#}"))?;
                let lines = backend.manifest_lines().await.map_err(|e| {
                    let mut redactor = Redactor::new();
                    redactor.learn_session_secrets(backend.session_secrets());
                    anyhow::anyhow!(redactor.redact(&format!("{e:#}")))
                })?;
                Ok((Backend::S3(Box::new(backend)), lines))
            }
        }
    }

    /// Opens the archive for reading (`claudit archive verify`, `export`):
    /// nothing is created, cut or checked.
    pub fn open_reader(config: &ArchiveBackend) -> anyhow::Result<Backend> {
        Ok(match config {
            ArchiveBackend::Local { path } => Backend::Local(LocalBackend::reader(path)),
            ArchiveBackend::S3(cfg) => Backend::S3(Box::new(S3Backend::connect(cfg, None)?)),
        })
    }

    /// The manifest's complete lines, and a final line without newline
    /// (local only: an S3 manifest object is written whole).
    pub async fn manifest(&self) -> anyhow::Result<(Vec<ManifestLine>, Option<ManifestLine>)> {
        match self {
            Backend::Local(b) => Ok(local_manifest_lines(&b.read_manifest()?)),
            Backend::S3(b) => Ok((b.manifest_lines().await?, None)),
        }
    }

    /// A segment's file, positioned at its start; `None` if it is absent.
    pub async fn segment(&self, name: &str) -> anyhow::Result<Option<std::fs::File>> {
        match self {
            Backend::Local(b) => b.open_segment(name),
            Backend::S3(b) => b.fetch_segment(name).await,
        }
    }

    /// Every stored segment name.
    pub async fn segment_names(&self) -> anyhow::Result<Vec<String>> {
        match self {
            Backend::Local(b) => Ok(b.segment_names()?),
            Backend::S3(b) => b.segment_names().await,
        }
    }

    /// Where segments are written before they are stored.
    pub fn tmp_dir(&self) -> PathBuf {
        match self {
            Backend::Local(b) => b.tmp_dir(),
            Backend::S3(b) => b.tmp_dir(),
        }
    }

    /// Credentials obtained at run time (S3's), for the redaction.
    pub fn session_secrets(&self) -> Vec<String> {
        match self {
            Backend::Local(_) => Vec::new(),
            Backend::S3(b) => b.session_secrets(),
        }
    }

    /// Stores a finished segment under its name, durably.
    pub async fn store_segment(
        &mut self,
        name: &str,
        segment: FinishedSegment,
    ) -> anyhow::Result<()> {
        match self {
            Backend::Local(b) => {
                // A rename and a few fsyncs: brief, like the file sink's.
                b.store_segment(name, segment)
                    .map_err(|e| anyhow::anyhow!("storing segment {name}: {e}"))
            }
            Backend::S3(b) => b.put_segment(name, segment).await,
        }
    }

    /// Appends one flush's manifest lines, durably.
    pub async fn append_manifest(&mut self, flush: u64, lines: &[Vec<u8>]) -> anyhow::Result<()> {
        match self {
            Backend::Local(b) => b
                .append_manifest(lines)
                .map_err(|e| anyhow::anyhow!("appending to the manifest: {e}")),
            Backend::S3(b) => b.put_manifest(flush, lines).await,
        }
    }
}

/// The complete lines of a local manifest, and a final line without
/// newline if there is one.
fn local_manifest_lines(bytes: &[u8]) -> (Vec<ManifestLine>, Option<ManifestLine>) {
    let (lines, tail) = manifest::split_lines(bytes);
    let make = |i: usize, l: &[u8]| ManifestLine {
        location: format!("{} line {}", local::MANIFEST, i + 1),
        number: i as u64 + 1,
        bytes: l.to_vec(),
    };
    let n = lines.len();
    (
        lines.iter().enumerate().map(|(i, l)| make(i, l)).collect(),
        tail.map(|t| make(n, t)),
    )
}

/// `claudit check --connect` of the archive of sink `sink`: the directory
/// is writable, or the bucket is reachable (and has Object Lock when the
/// sink asks for it). Also returns the credentials the check signed with,
/// for the redaction of its text.
pub async fn check(sink: &str, config: &ArchiveBackend) -> (Result<String, String>, Vec<String>) {
    match config {
        ArchiveBackend::Local { path } => {
            let probe = || -> std::io::Result<()> {
                std::fs::create_dir_all(path)?;
                let file = path.join(format!(".claudit-check-{}", std::process::id()));
                std::fs::write(&file, b"")?;
                std::fs::remove_file(&file)
            };
            let checked = probe()
                .map(|_| format!("{} is writable", path.display()))
                .map_err(|e| {
                    format!(
                        "cannot write in {}: {e}; create it and give the claudit user write access",
                        path.display()
                    )
                });
            (checked, Vec::new())
        }
        ArchiveBackend::S3(cfg) => {
            let backend = match S3Backend::connect(cfg, None) {
                Ok(backend) => backend,
                Err(e) => return (Err(format!("{e:#}")), Vec::new()),
            };
            backend.learn_credentials().await;
            let checked = async {
                if cfg.object_lock.is_some() {
                    backend
                        .check_object_lock()
                        .await
                        .map_err(|e| format!("{e:#}"))?;
                }
                let lines = backend
                    .manifest_lines()
                    .await
                    .map_err(|e| format!("sink {sink}: {e:#}"))?;
                Ok(format!(
                    "bucket {} reachable{}, {} manifest lines",
                    cfg.bucket,
                    if cfg.object_lock.is_some() {
                        ", Object Lock enabled"
                    } else {
                        ""
                    },
                    lines.len()
                ))
            }
            .await;
            (checked, backend.session_secrets())
        }
    }
}
