//! `claudit archive verify` and `export` called as `main.rs` calls them:
//! the archive sink of a configuration opened for reading, and its state
//! database opened read-only.

use std::path::Path;

use claudit::archive::Backend;
use claudit::archive::export::{self, ExportSummary};
use claudit::archive::verify::{self, Range, RecordSink, Report};
use claudit::config::Config;
use claudit::store::Store;

/// `claudit archive verify --sink <sink>` over `range`, with `on_record`
/// called for each archived record in it.
pub async fn verify_sink(
    config: &Config,
    sink: &str,
    range: Range,
    on_record: Option<RecordSink<'_>>,
) -> anyhow::Result<Report> {
    let archive = config.archive_sink(sink).map_err(anyhow::Error::msg)?;
    let reader = Backend::open_reader(&archive.backend)?;
    let journal = Store::open_readonly(&config.state.path);
    verify::verify(&reader, journal.as_ref(), sink, range, on_record).await
}

/// `claudit archive export --sink <sink> --out <out>` over `range`.
pub async fn export_sink(
    config: &Config,
    sink: &str,
    range: Range,
    out: &Path,
) -> anyhow::Result<ExportSummary> {
    let archive = config.archive_sink(sink).map_err(anyhow::Error::msg)?;
    let reader = Backend::open_reader(&archive.backend)?;
    let journal = Store::open_readonly(&config.state.path);
    export::export(&reader, journal.as_ref(), sink, range, out).await
}
