//! The settings every sink shares, whatever its type: its name, format,
//! batching and the type's own settings (`SinkKind`), the keys of every
//! HTTP destination, and the readers of keys several sink types have.
//! `config` names them in `Config`; each type's keys are read in its file.

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::sinks::registry::SinkSettings;
use crate::toml_reader::keys::{SecretUrl, check_secret_url, secs, t_error, text_error};
use crate::toml_reader::{Ctx, Got, Table, Text};

/// What a sink writes: the OCSF event, the activity exactly as received, or
/// that with its directory context added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ocsf,
    Raw,
    /// `raw+claudit`: the activity as received, with a top-level `claudit`
    /// object (its directory context) added after its own fields.
    RawWithContext,
}

#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub name: String,
    pub format: Format,
    pub batch: BatchConfig,
    pub kind: SinkKind,
    /// What the sink receives (`streams`).
    pub streams: Streams,
}

/// The streams a sink receives: the activities, the findings of
/// `[detections]`, and the directory's snapshots (opt-in). Each is
/// delivered from its own cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streams {
    pub activities: bool,
    pub findings: bool,
    /// The directory as OCSF inventory events (`<sink>.directory`).
    pub directory: bool,
}

impl Streams {
    /// Activities only (the archive, and every sink when detections are off).
    pub const ACTIVITIES: Streams = Streams {
        activities: true,
        findings: false,
        directory: false,
    };
    /// Activities and findings (the default of every sink but the archive
    /// when detections run).
    pub const BOTH: Streams = Streams {
        activities: true,
        findings: true,
        directory: false,
    };
}

/// The suffix of a sink's findings stream: `<sink>.findings` names its
/// cursor, dead letters and metrics (a sink name cannot hold a dot), and a
/// file sink's findings file is `<stem>.findings.<extension>` beside its
/// activities file.
pub use crate::store::FINDINGS_SUFFIX;

/// The suffix of a sink's directory stream: `<sink>.directory` names its
/// cursor, dead letters and metrics, and a file sink's directory file is
/// `<stem>.directory.<extension>` beside its activities file.
pub use crate::store::DIRECTORY_SUFFIX;

impl SinkConfig {
    /// Whether this is the findings stream of a sink (`findings_stream`).
    pub fn is_findings_stream(&self) -> bool {
        self.name.ends_with(&format!(".{FINDINGS_SUFFIX}"))
    }

    /// Whether this is the directory stream of a sink (`directory_stream`).
    pub fn is_directory_stream(&self) -> bool {
        self.name.ends_with(&format!(".{DIRECTORY_SUFFIX}"))
    }

    /// The sink that delivers this sink's findings: the same destination
    /// and settings under the name `<name>.findings`, adapted by its type
    /// where the findings need a place or name of their own
    /// (`SinkSettings::for_stream`: a file sink's findings file, a
    /// webhook's ids).
    pub fn findings_stream(&self) -> SinkConfig {
        self.derived_stream(
            FINDINGS_SUFFIX,
            Streams {
                activities: false,
                findings: true,
                directory: false,
            },
        )
    }

    /// The sink that delivers this sink's directory stream (the inventory
    /// snapshots), as [`SinkConfig::findings_stream`] does the findings:
    /// `<name>.directory`, a file sink's `<stem>.directory.<ext>`.
    pub fn directory_stream(&self) -> SinkConfig {
        self.derived_stream(
            DIRECTORY_SUFFIX,
            Streams {
                activities: false,
                findings: false,
                directory: true,
            },
        )
    }

    fn derived_stream(&self, suffix: &str, streams: Streams) -> SinkConfig {
        let kind = self
            .kind
            .settings()
            .for_stream(suffix)
            .unwrap_or_else(|| self.kind.clone());
        SinkConfig {
            name: format!("{}.{suffix}", self.name),
            format: self.format,
            batch: self.batch.clone(),
            kind,
            streams,
        }
    }
}

/// `events.ocsf.ndjson` -> `events.ocsf.findings.ndjson`; `events` ->
/// `events.findings`.
pub fn findings_path(path: &std::path::Path) -> PathBuf {
    stream_path(path, FINDINGS_SUFFIX)
}

/// The file of a sink's stream `suffix` beside its activities file:
/// `events.ocsf.ndjson` -> `events.ocsf.<suffix>.ndjson`; `events` ->
/// `events.<suffix>`.
pub fn stream_path(path: &std::path::Path, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let renamed = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.{suffix}.{ext}"),
        _ => format!("{name}.{suffix}"),
    };
    path.with_file_name(renamed)
}

#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// At most this many events per batch.
    pub max_events: usize,
    /// At most this many uncompressed bytes per batch.
    pub max_bytes: usize,
    /// Wait at most this long for a batch to fill before sending it.
    pub linger: Duration,
}

/// A sink type's own settings (see `sinks::registry`): what the sink's
/// type reads from its table, and what opens, checks and redacts its
/// destination.
#[derive(Debug, Clone)]
pub struct SinkKind(Arc<dyn SinkSettings>);

impl SinkKind {
    pub fn new(settings: impl SinkSettings) -> SinkKind {
        SinkKind(Arc::new(settings))
    }

    /// The settings, if the sink is of the type whose settings are `T`.
    pub fn get<T: SinkSettings>(&self) -> Option<&T> {
        let any: &dyn Any = &*self.0;
        any.downcast_ref()
    }

    /// The settings to change, if the sink is of the type whose settings
    /// are `T` (a copy of its own when they are shared).
    pub fn get_mut<T: SinkSettings + Clone>(&mut self) -> Option<&mut T> {
        let own = self.get::<T>()?.clone();
        self.0 = Arc::new(own);
        let any: &mut dyn Any = Arc::get_mut(&mut self.0)?;
        any.downcast_mut()
    }

    pub fn settings(&self) -> &dyn SinkSettings {
        &*self.0
    }
}

/// Settings every HTTP sink shares (`tls_ca_file`, timeouts, compression).
/// Proxies come from `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`.
#[derive(Debug, Clone)]
pub struct HttpSinkConfig {
    /// Extra CA certificates (PEM) trusted besides the system store.
    pub tls_ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// gzip request bodies where the destination accepts it.
    pub compression: bool,
}

/// The optional `layout` key of a sink of `sink_type` (`sinks::layout`):
/// `Some(None)` when absent, `None` when invalid (reported).
pub(crate) fn read_layout(
    cx: &mut Ctx,
    t: &mut Table,
    sink_type: &str,
) -> Option<Option<crate::sinks::layout::Layout>> {
    match t.text(cx, "layout") {
        Got::Absent => Some(None),
        Got::Invalid => None,
        Got::Value(v) => match crate::sinks::layout::Layout::parse(sink_type, &v.value) {
            Ok(layout) => Some(Some(layout)),
            Err(msg) => {
                text_error(cx, t, "layout", &v, msg);
                None
            }
        },
    }
}

/// A sink's base URL: https (plain http only to 127.0.0.1 or localhost,
/// since a key travels with every request), no credentials, query or
/// fragment. Returned without a trailing slash.
pub(crate) fn check_sink_url(text: &Text, key: &str, example: &str) -> Result<String, String> {
    let fix = format!("write e.g. {key} = {example}");
    let value = text.value.trim();
    check_secret_url(
        text,
        value,
        &SecretUrl {
            key,
            fix: &fix,
            plain_http: "plain http is allowed only for 127.0.0.1 or localhost (tests), since a \
                         key or token travels in every request; use https,",
            credentials_go: " (credentials go in the sink's key, token or password settings)",
        },
    )?;
    Ok(value.trim_end_matches('/').to_string())
}

/// The optional `[sinks.fields]` table of string values; `check` says
/// what is wrong with a key or value.
pub(crate) fn read_string_fields(
    cx: &mut Ctx,
    t: &mut Table,
    check: fn(&str) -> Option<String>,
) -> Option<Vec<(String, String)>> {
    let mut table = t.subtable(cx, "fields");
    let entries = table.string_entries(cx, "\"value\"");
    let mut ok = entries.is_some();
    let mut out = Vec::new();
    for (key, value, line) in entries.unwrap_or_default() {
        let problem = if key.is_empty() || value.is_empty() {
            Some("field names and values cannot be empty".to_string())
        } else {
            check(&key).or_else(|| check(&value))
        };
        match problem {
            Some(msg) => {
                t_error(cx, &table, &key, line, msg);
                ok = false;
            }
            None => out.push((key, value)),
        }
    }
    table.finish(cx);
    ok.then_some(out)
}

/// The keys every HTTP sink shares: `tls_ca_file`, `connect_timeout`,
/// `request_timeout`, `compression`.
pub(crate) fn read_http(cx: &mut Ctx, t: &mut Table) -> Option<HttpSinkConfig> {
    read_http_with(cx, t, true)
}

/// [`read_http`] with the sink type's default for `compression`.
pub(crate) fn read_http_with(
    cx: &mut Ctx,
    t: &mut Table,
    compression_default: bool,
) -> Option<HttpSinkConfig> {
    let tls_ca_file = t.path(cx, "tls_ca_file");
    let connect_timeout = t.duration(cx, "connect_timeout", secs(10));
    let request_timeout = t.duration(cx, "request_timeout", secs(30));
    let compression = t.boolean(cx, "compression", compression_default);
    Some(HttpSinkConfig {
        tls_ca_file: match tls_ca_file {
            Got::Value(p) => Some(p),
            Got::Absent => None,
            Got::Invalid => return None,
        },
        connect_timeout: connect_timeout?,
        request_timeout: request_timeout?,
        compression: compression?,
    })
}
