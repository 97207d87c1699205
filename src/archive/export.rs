//! `claudit archive export`: the raw records of a created_at range, for an
//! auditor, as NDJSON exactly as archived (manifest order, then segment
//! order), with a verification summary beside it (`<out>.verification.json`).
//! The range is verified in the same pass (hashes, chain, counts, journal
//! comparison); a failed verification still writes both files, and says so.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Backend;
use super::manifest::hex;
use super::verify::{self, Range, Report};
use crate::store::{Store, StoreError};

/// The summary written beside the export.
#[derive(Debug, Serialize)]
pub struct ExportSummary {
    pub export_file: String,
    pub records: u64,
    /// SHA-256 of the export file.
    pub sha256: String,
    pub verification: Report,
}

/// Where the summary of `out` goes.
pub fn summary_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".verification.json");
    out.with_file_name(name)
}

/// Exports `range` of the archive of sink `sink`, opened for reading, to
/// `out`, verifying it against the state database `journal` (see
/// [`verify::verify`]).
pub async fn export(
    reader: &Backend,
    journal: Result<&Store, &StoreError>,
    sink: &str,
    range: Range,
    out: &Path,
) -> anyhow::Result<ExportSummary> {
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| anyhow::anyhow!("cannot write in {}: {e}", dir.display()))?;
    let mut sha = Sha256::new();
    let mut records = 0u64;
    let report = {
        let mut writer = std::io::BufWriter::new(tmp.as_file_mut());
        let mut write = |line: &[u8], _created: i64| -> anyhow::Result<()> {
            writer.write_all(line)?;
            writer.write_all(b"\n")?;
            sha.update(line);
            sha.update(b"\n");
            records += 1;
            Ok(())
        };
        let report = verify::verify(reader, journal, sink, range, Some(&mut write)).await?;
        writer.flush()?;
        report
    };
    tmp.as_file().sync_all()?;
    tmp.persist(out)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", out.display(), e.error))?;
    let summary = ExportSummary {
        export_file: out.display().to_string(),
        records,
        sha256: hex(&sha.finalize()),
        verification: report,
    };
    let path = summary_path(out);
    std::fs::write(&path, serde_json::to_vec_pretty(&summary)?)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(summary)
}
