//! The settings of `type = "file"`: its row in the registry, what opens
//! its destination, and the reader of its keys.

use std::path::PathBuf;
use std::time::Duration;

use super::FileDestination;
use crate::sinks::contract::{BoxFuture, Destination};
use crate::sinks::registry::{LocalPlace, OpenContext, SinkSettings, SinkType};
use crate::sinks::settings::{SinkConfig, SinkKind};

#[derive(Debug, Clone)]
pub struct FileSinkConfig {
    pub path: PathBuf,
    /// Rotate when the file reaches this size; 0 = never.
    pub max_bytes: u64,
    /// Rotated files kept (`events.ndjson.1` .. `.N`).
    pub max_files: u32,
}

/// `type = "file"` in the registry (`sinks::registry`).
pub const TYPE: SinkType = SinkType {
    name: "file",
    batch: (1000, 4_000_000, Duration::from_secs(1)),
    raw_only: false,
    read: keys::read_file_sink,
};

impl SinkSettings for FileSinkConfig {
    /// Inside its sink task only: the running daemon owns the file and its
    /// committed length, and a second writer would break crash recovery.
    fn open<'a>(
        &'a self,
        cx: OpenContext<'a>,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn Destination>>> {
        Box::pin(async move {
            let name = &cx.sink.name;
            let Some(journal) = cx.journal else {
                anyhow::bail!(
                    "sink {name} is a file sink, which replay does not write to: the daemon owns that file \
                     and its committed length (crash recovery). For another copy, add a second file \
                     sink: it starts from the beginning of the journal"
                );
            };
            let destination =
                FileDestination::open(name, self, cx.sink.batch.max_bytes, cx.disk, journal)
                    .await?;
            Ok(Box::new(destination) as Box<dyn Destination>)
        })
    }

    /// Nothing to connect to: whether the file's directory is writable.
    fn check<'a>(
        &'a self,
        _sink: &'a SinkConfig,
    ) -> BoxFuture<'a, (Result<String, String>, Vec<String>)> {
        Box::pin(async move {
            let dir = self
                .path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let checked = match writable(dir) {
                Ok(()) => Ok(format!("{} is writable", dir.display())),
                Err(e) => Err(format!(
                    "cannot write in {}: {e}; create it and give the claudit user write access",
                    dir.display()
                )),
            };
            (checked, Vec::new())
        })
    }

    /// Findings and the directory go to their own files beside the
    /// activities': `events.ocsf.ndjson` -> `events.ocsf.findings.ndjson`,
    /// `events.ocsf.directory.ndjson`.
    fn for_stream(&self, suffix: &str) -> Option<SinkKind> {
        let mut stream = self.clone();
        stream.path = crate::sinks::settings::stream_path(&self.path, suffix);
        Some(SinkKind::new(stream))
    }

    fn local_place(&self) -> Option<LocalPlace> {
        Some(LocalPlace::File {
            path: self.path.clone(),
            rotated: if self.max_bytes == 0 {
                0
            } else {
                self.max_files
            },
        })
    }
}

/// Creates `dir` if needed and writes (then removes) a probe file in it.
fn writable(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".claudit-check-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

/// The keys of `type = "file"`: every problem is reported, with its line
/// and the fix.
mod keys {
    use super::FileSinkConfig;
    use crate::sinks::settings::SinkKind;
    use crate::toml_reader::{Ctx, Table};

    /// The keys of `type = "file"`.
    pub(super) fn read_file_sink(cx: &mut Ctx, t: &mut Table) -> Option<SinkKind> {
        let path = t.required_path(cx, "path", "\"/var/log/claudit/events.ndjson\"");
        let max_bytes = t.size(cx, "max_bytes", 100_000_000);
        let max_files = t.integer(cx, "max_files", 1..=1000, 10, "rotated files kept");
        Some(SinkKind::new(FileSinkConfig {
            path: path?,
            max_bytes: max_bytes?,
            max_files: max_files? as u32,
        }))
    }
}
