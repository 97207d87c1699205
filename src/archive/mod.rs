//! `claudit archive verify` and `claudit archive export`: reading an
//! archive sink's manifest and segments (local directory or S3), checking
//! them, and extracting a range for an auditor. The sink that writes the
//! archive is `sinks::archive`.

pub mod export;
pub mod verify;

use std::path::PathBuf;

use crate::config::{ArchiveBackend, ArchiveSinkConfig, Config};
use crate::sinks::archive::s3::S3Backend;
use crate::sinks::archive::{ManifestLine, local, local_manifest_lines};

/// An archive opened for reading.
pub enum ArchiveReader {
    Local(PathBuf),
    S3(Box<S3Backend>),
}

/// A problem with the command line or the configuration (exit 78), as
/// opposed to a verification failure (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The archive sink named `sink`, or a usage error naming the archive sinks.
pub fn archive_sink<'c>(
    config: &'c Config,
    sink: &str,
) -> Result<&'c ArchiveSinkConfig, UsageError> {
    let archives: Vec<&str> = config
        .sinks
        .iter()
        .filter(|s| s.kind.get::<ArchiveSinkConfig>().is_some())
        .map(|s| s.name.as_str())
        .collect();
    match config.sink(sink).map(|s| s.kind.get::<ArchiveSinkConfig>()) {
        Some(Some(a)) => Ok(a),
        Some(_) => Err(UsageError(format!(
            "sink {sink} is not an archive sink (type = \"archive\"); archive sinks in {}: {}",
            config.file.display(),
            if archives.is_empty() {
                "none".to_string()
            } else {
                archives.join(", ")
            }
        ))),
        None => Err(UsageError(format!(
            "no sink named {sink} in {}; archive sinks there: {}",
            config.file.display(),
            if archives.is_empty() {
                "none".to_string()
            } else {
                archives.join(", ")
            }
        ))),
    }
}

impl ArchiveReader {
    pub fn open(config: &ArchiveSinkConfig) -> anyhow::Result<ArchiveReader> {
        Ok(match &config.backend {
            ArchiveBackend::Local { path } => ArchiveReader::Local(path.clone()),
            ArchiveBackend::S3(cfg) => ArchiveReader::S3(Box::new(S3Backend::connect(cfg, None)?)),
        })
    }

    /// The manifest's complete lines, and a final line without newline
    /// (local only: an S3 manifest object is written whole).
    pub async fn manifest(&self) -> anyhow::Result<(Vec<ManifestLine>, Option<ManifestLine>)> {
        match self {
            ArchiveReader::Local(root) => {
                let path = root.join(local::MANIFEST);
                let bytes = match std::fs::read(&path) {
                    Ok(b) => b,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                    Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
                };
                Ok(local_manifest_lines(&bytes))
            }
            ArchiveReader::S3(s3) => Ok((s3.manifest_lines().await?, None)),
        }
    }

    /// A segment's file, positioned at its start; `None` if it is absent.
    pub async fn segment(&self, name: &str) -> anyhow::Result<Option<std::fs::File>> {
        match self {
            ArchiveReader::Local(root) => {
                // A name from a tampered manifest must not leave the archive.
                if name.split('/').any(|part| part == ".." || part.is_empty()) {
                    return Ok(None);
                }
                match std::fs::File::open(local::segment_path(root, name)) {
                    Ok(f) => Ok(Some(f)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => anyhow::bail!("cannot read segment {name}: {e}"),
                }
            }
            ArchiveReader::S3(s3) => s3.fetch_segment(name).await,
        }
    }

    /// Every stored segment name.
    pub async fn segment_names(&self) -> anyhow::Result<Vec<String>> {
        match self {
            ArchiveReader::Local(root) => Ok(local::list_segments(root)?),
            ArchiveReader::S3(s3) => s3.segment_names().await,
        }
    }
}
