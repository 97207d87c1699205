//! The sink types this build supports. Each row names a type (`type = ...`
//! of a `[[sinks]]` table), the batch defaults that suit its protocol, and
//! the reader of its own keys, which builds its [`SinkSettings`]. The
//! settings open the destination, check it, and list its secrets, so
//! nothing else in claudit matches on the sink type.
//!
//! Adding a destination type is one file (its settings, its key reader,
//! its [`Destination`](super::contract::Destination)) and one line in
//! [`sink_types`].

use std::any::Any;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::contract::{BoxFuture, Destination, SinkJournal};
use super::file::Disk;
use super::{SinkStats, SinkTask};
use crate::metrics::SinkMetrics;
use crate::redact::Redactor;
use crate::sinks::settings::{SinkConfig, SinkKind};
use crate::toml_reader::{Ctx, Table};

#[cfg(test)]
mod memory;

/// One sink type: its name, its batch defaults and its key reader.
pub struct SinkType {
    /// The `type = "..."` of its `[[sinks]]` tables.
    pub name: &'static str,
    /// Defaults of `batch_max_events`, `batch_max_bytes`, `batch_linger`.
    pub batch: (i64, u64, Duration),
    /// The sink keeps the activities exactly as received: `format` can
    /// only be "raw" (the archive).
    pub raw_only: bool,
    /// Reads the type's own keys from the sink's table, reporting every
    /// problem to `Ctx`; `None` when any was found.
    pub(crate) read: fn(&mut Ctx, &mut Table) -> Option<SinkKind>,
}

/// Every sink type, in the order `claudit check` lists them.
pub fn sink_types() -> &'static [SinkType] {
    static TYPES: OnceLock<Vec<SinkType>> = OnceLock::new();
    TYPES.get_or_init(|| {
        let types = vec![
            super::file::TYPE,
            super::datadog::TYPE,
            super::sentinel::TYPE,
            super::splunk_hec::TYPE,
            super::sumo::TYPE,
            super::elasticsearch::TYPE,
            super::syslog::TYPE,
            super::webhook::TYPE,
            super::archive::TYPE,
        ];
        #[cfg(test)]
        let types = {
            let mut types = types;
            types.push(memory::TYPE);
            types
        };
        types
    })
}

/// What a sink type's settings do besides holding its keys.
pub trait SinkSettings: Any + Debug + Send + Sync {
    /// Adds every secret the sink is configured with to `redactor`, in
    /// the forms its destination could echo it in (see `redact`).
    fn add_secrets(&self, _redactor: &mut Redactor) {}

    /// Opens the destination of `cx.sink`: for its sink task (with the
    /// sink's journal), or outside one for `claudit replay` and `claudit
    /// check` (no journal). A type that cannot deliver outside its task
    /// says why.
    fn open<'a>(
        &'a self,
        cx: OpenContext<'a>,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn Destination>>>;

    /// `claudit check --connect`: one cheap request that checks the
    /// address and the credentials, and the secrets learned doing it.
    /// By default: the destination's own health check.
    fn check<'a>(
        &'a self,
        sink: &'a SinkConfig,
    ) -> BoxFuture<'a, (Result<String, String>, Vec<String>)> {
        Box::pin(async move {
            let opened = self
                .open(OpenContext {
                    sink,
                    journal: None,
                    disk: Arc::new(super::file::RealDisk),
                    counters: SinkMetrics::default(),
                })
                .await;
            match opened {
                Ok(mut destination) => {
                    let checked = destination.healthcheck().await;
                    (checked, destination.session_secrets())
                }
                Err(e) => (Err(format!("{e:#}")), Vec::new()),
            }
        })
    }

    /// A sink that does not deliver in batches runs its own task instead
    /// of the batch loop (the archive: whole sealed hours). Gives the task
    /// back otherwise.
    fn own_task(
        &self,
        task: SinkTask,
        _cancel: tokio_util::sync::CancellationToken,
    ) -> Result<BoxFuture<'static, anyhow::Result<SinkStats>>, SinkTask> {
        Err(task)
    }

    /// The local file or directory the sink writes, for the checks that
    /// no two writers share one.
    fn local_place(&self) -> Option<LocalPlace> {
        None
    }

    /// The vendor layout the sink sends in (`layout = ...`, `sinks::layout`),
    /// if its type has them and one is set: the sink then reads the raw
    /// activity (the configuration refuses any other `format`).
    fn layout(&self) -> Option<super::layout::Layout> {
        None
    }

    /// The sink keeps the activities only, never the findings of
    /// `[detections]` nor the directory stream (the archive: evidence of
    /// what Anthropic served).
    fn activities_only(&self) -> bool {
        false
    }

    /// The settings the sink's stream `suffix` (`<sink>.findings`,
    /// `<sink>.directory`: a second sink task) delivers with: `None` for
    /// the sink's own. A type whose destination has a place or a name of
    /// its own gives the stream theirs (a file sink: its findings file).
    fn for_stream(&self, _suffix: &str) -> Option<SinkKind> {
        None
    }

    /// The sink delivers an hour only once it is sealed, so it stays
    /// about an hour behind the journal's head by design (`/readyz`).
    fn seals_hours(&self) -> bool {
        false
    }
}

/// A destination made without waiting (most types: from their settings
/// alone), as `SinkSettings::open` returns it.
pub fn opened<D: Destination + 'static>(
    made: anyhow::Result<D>,
) -> BoxFuture<'static, anyhow::Result<Box<dyn Destination>>> {
    Box::pin(std::future::ready(
        made.map(|d| Box::new(d) as Box<dyn Destination>),
    ))
}

/// What a destination is opened with.
pub struct OpenContext<'a> {
    pub sink: &'a SinkConfig,
    /// The sink's journal, inside its sink task.
    pub journal: Option<&'a dyn SinkJournal>,
    /// The file system a file destination writes through (tests put
    /// faults in it).
    pub disk: Arc<dyn Disk>,
    /// The sink's metrics, for the counters only a destination can count
    /// (stale events).
    pub counters: SinkMetrics,
}

/// A local place a sink writes.
#[derive(Debug, Clone)]
pub enum LocalPlace {
    /// A file, and how many rotated copies of it (`.1` .. `.N`) it keeps.
    File { path: PathBuf, rotated: u32 },
    /// A directory the sink owns whole.
    Directory { path: PathBuf },
}
