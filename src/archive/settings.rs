//! Where an archive lives, as the configuration says (the archive sink's
//! keys are read in `sinks/archive/settings.rs`).

use std::path::PathBuf;
use std::time::Duration;

/// Where the archive is written.
#[derive(Debug, Clone)]
pub enum ArchiveBackend {
    /// A local directory (`path`): `manifest.ndjson` and `segments/`.
    Local {
        path: PathBuf,
    },
    S3(ArchiveS3Config),
}

/// An S3 bucket or an S3-compatible store. Credentials come from the
/// standard AWS environment and files, never from this file.
#[derive(Debug, Clone)]
pub struct ArchiveS3Config {
    pub bucket: String,
    /// Key prefix, empty or ending in "/".
    pub prefix: String,
    pub region: String,
    /// For MinIO and other S3-compatible stores (path-style requests).
    pub endpoint: Option<String>,
    /// Object Lock settings every object is written with; `None` = none.
    pub object_lock: Option<ObjectLock>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectLockMode {
    Compliance,
    Governance,
}

impl ObjectLockMode {
    /// The value of `x-amz-object-lock-mode`.
    pub fn as_header(self) -> &'static str {
        match self {
            ObjectLockMode::Compliance => "COMPLIANCE",
            ObjectLockMode::Governance => "GOVERNANCE",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ObjectLock {
    pub mode: ObjectLockMode,
    /// Each object is retained until its write time plus this.
    pub retention: Duration,
}
