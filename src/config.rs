//! Configuration: the TOML schema, `${VAR}` and `*_file` secret resolution,
//! `CLAUDIT_*` environment overrides, and validation into the settings the
//! rest of the daemon uses.
//!
//! The file is parsed with the `toml` crate into a spanned document and then
//! read key by key (`reader`), rather than through serde structs or the
//! `config` crate: serde stops at the first problem, while `claudit check` has
//! to list every problem at once, each with its file, line, key path
//! (`sources[1].window`) and the fix, and without ever echoing a secret.
//! Each reader remembers the keys it asked for, so whatever is left over in a
//! table is an unknown key (reported with the closest valid one).
//!
//! Relative paths in the file are resolved against the directory of the file,
//! so `claudit check` and the daemon agree whatever their working directory.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

mod directory;
mod places;
pub use directory::{DEFAULT_ADMIN_ROLES, DirectoryConfig};

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from (for messages).
    pub file: PathBuf,
    pub state: StateConfig,
    pub sources: Vec<SourceConfig>,
    pub sinks: Vec<SinkConfig>,
    pub enrich: EnrichConfig,
    pub ocsf: OcsfConfig,
    pub server: ServerConfig,
    /// `[detections]`: rules over every activity (`src/detect/settings.rs`).
    pub detections: crate::detect::DetectionSettings,
    /// Settings accepted but without effect (retired keys), each with what
    /// to do: `claudit check` prints them, the daemon logs them at start.
    pub notices: Vec<ConfigError>,
}

// ---- [server]: /metrics, /healthz, /readyz ---------------------------------

/// The operations endpoint (`src/server.rs`).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where /metrics, /healthz and /readyz listen; `None` (no `[server]`
    /// section and no `listen`) serves nothing.
    pub listen: Option<std::net::SocketAddr>,
    /// /readyz fails when a sink has had undelivered records older than this
    /// and no successful delivery for as long.
    pub ready_max_sink_delay: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: None,
            ready_max_sink_delay: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StateConfig {
    /// SQLite state database.
    pub path: PathBuf,
    /// Journal rows are kept this long after every sink delivered them.
    pub retention: Duration,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    /// e.g. `https://api.anthropic.com` (no trailing slash).
    pub base_url: String,
    pub api_key: SecretString,
    /// Sent as `anthropic-version`.
    pub anthropic_version: String,
    /// This daemon's share of the 600/min parent-organization budget.
    pub requests_per_minute: u32,
    /// Steady-state window length.
    pub window: Duration,
    /// A catch-up or backfill window whose first page shows it would need
    /// more pages than this is split (windows are sized by what they hold).
    pub max_window_pages: u32,
    /// `end` of a window never comes closer to now than this.
    pub settle_lag: Duration,
    /// How far behind the watermark the late-arrival sweep re-reads.
    pub sweep_horizon: Duration,
    /// How often the sweep runs.
    pub sweep_interval: Duration,
    /// First start reads back this far.
    pub initial_lookback: Duration,
    /// How often to look for a new window once caught up.
    pub poll_interval: Duration,
    /// `limit` per page, 1..=5000.
    pub page_size: u32,
    pub activity_types: Vec<String>,
    pub exclude_activity_types: Vec<String>,
    pub organization_ids: Vec<String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// No-data watchdog: warn (and `claudit_source_no_data` = 1) when the
    /// source has journaled nothing for this long.
    pub no_data_after: Duration,
    /// `[sources.directory]`: who the actors are (`src/directory/`).
    pub directory: DirectoryConfig,
}

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

/// The streams a sink receives: the activities, and the findings of
/// `[detections]`. Each is delivered from its own cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streams {
    pub activities: bool,
    pub findings: bool,
}

impl Streams {
    /// Activities only (the archive, and every sink when detections are off).
    pub const ACTIVITIES: Streams = Streams {
        activities: true,
        findings: false,
    };
    /// Both (the default of every sink but the archive when detections run).
    pub const BOTH: Streams = Streams {
        activities: true,
        findings: true,
    };
}

/// The suffix of a sink's findings stream: `<sink>.findings` names its
/// cursor, dead letters and metrics (a sink name cannot hold a dot), and a
/// file sink's findings file is `<stem>.findings.<extension>` beside its
/// activities file.
pub const FINDINGS_SUFFIX: &str = "findings";

impl SinkConfig {
    /// Whether this is the findings stream of a sink (`findings_stream`).
    pub fn is_findings_stream(&self) -> bool {
        self.name.ends_with(&format!(".{FINDINGS_SUFFIX}"))
    }

    /// The sink that delivers this sink's findings: the same destination
    /// and settings under the name `<name>.findings`; a file sink writes
    /// them to `<stem>.findings.<extension>` beside its file, a webhook
    /// sink starts their `webhook-id` with `<id_prefix>-findings`.
    pub fn findings_stream(&self) -> SinkConfig {
        let mut kind = self.kind.clone();
        match &mut kind {
            SinkKind::File(f) => f.path = findings_path(&f.path),
            SinkKind::Webhook(w) => w.id_prefix = format!("{}-{FINDINGS_SUFFIX}", w.id_prefix),
            _ => {}
        }
        SinkConfig {
            name: format!("{}.{FINDINGS_SUFFIX}", self.name),
            format: self.format,
            batch: self.batch.clone(),
            kind,
            streams: Streams {
                activities: false,
                findings: true,
            },
        }
    }
}

/// `events.ocsf.ndjson` -> `events.ocsf.findings.ndjson`; `events` ->
/// `events.findings`.
pub fn findings_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let renamed = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.{FINDINGS_SUFFIX}.{ext}"),
        _ => format!("{name}.{FINDINGS_SUFFIX}"),
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

#[derive(Debug, Clone)]
pub enum SinkKind {
    File(FileSinkConfig),
    SplunkHec(SplunkHecSinkConfig),
    Sumo(SumoSinkConfig),
    Datadog(DatadogSinkConfig),
    Sentinel(SentinelSinkConfig),
    Elasticsearch(ElasticsearchSinkConfig),
    Archive(ArchiveSinkConfig),
    Syslog(crate::sinks::syslog::SyslogConfig),
    Webhook(crate::sinks::webhook::WebhookConfig),
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

/// `type = "elasticsearch"`: Elasticsearch or OpenSearch `_bulk`.
#[derive(Debug, Clone)]
pub struct ElasticsearchSinkConfig {
    /// The cluster's base URL (`https://es.example.com:9200`), no trailing
    /// slash; `_bulk` and the health check are requests below it.
    pub url: String,
    /// Index, alias or data stream every event is created in.
    pub index: String,
    pub auth: ElasticsearchAuth,
    /// Uncompressed bytes per `_bulk` request; a batch above it is split.
    pub max_request_bytes: usize,
    pub http: HttpSinkConfig,
}

/// How an Elasticsearch sink authenticates. `Debug` never shows a secret.
#[derive(Debug, Clone)]
pub enum ElasticsearchAuth {
    /// `Authorization: ApiKey <encoded>`, the `encoded` value that
    /// `POST /_security/api_key` returns (base64 of `id:api_key`).
    ApiKey(SecretString),
    /// HTTP basic authentication.
    Basic {
        username: String,
        password: SecretString,
    },
}

#[derive(Debug, Clone)]
pub struct FileSinkConfig {
    pub path: PathBuf,
    /// Rotate when the file reaches this size; 0 = never.
    pub max_bytes: u64,
    /// Rotated files kept (`events.ndjson.1` .. `.N`).
    pub max_files: u32,
}

// ---- archive sink settings (type = "archive") ----------------------------

/// `type = "archive"`: the audit-evidence archive (gzip NDJSON hour segments
/// and a hash-chained manifest), always of the raw activities.
#[derive(Debug, Clone)]
pub struct ArchiveSinkConfig {
    pub backend: ArchiveBackend,
}

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

// ---- end of archive sink settings ------------------------------------------

/// `type = "datadog"`: the Datadog Logs intake (HTTP API v2).
#[derive(Debug, Clone)]
pub struct DatadogSinkConfig {
    /// Where logs go: `https://http-intake.logs.<site>/api/v2/logs`, or
    /// `<url>/api/v2/logs` when `url` is set.
    pub intake_url: String,
    /// The API-key check: `https://api.<site>/api/v1/validate`, or
    /// `<url>/api/v1/validate` when `url` is set.
    pub validate_url: String,
    /// `DD-API-KEY` (`api_key` / `api_key_file`).
    pub api_key: SecretString,
    /// `ddsource`; default "claude-compliance-logs" (Datadog's own Claude
    /// Compliance pipeline keys on it).
    pub ddsource: String,
    /// `service`; default "claudit".
    pub service: String,
    /// `ddtags`, comma-separated `key:value`; empty = none sent.
    pub ddtags: String,
    /// `hostname`; `None` = not sent.
    pub hostname: Option<String>,
    pub http: HttpSinkConfig,
}

/// `type = "sentinel"`: Microsoft Sentinel through the Azure Monitor Logs
/// Ingestion API (a DCR and its stream), with a Microsoft Entra client
/// credentials token.
#[derive(Debug, Clone)]
pub struct SentinelSinkConfig {
    /// The DCE or the DCR's own logs-ingestion endpoint, no trailing slash.
    pub endpoint: String,
    /// `dcr-...`: the data collection rule's immutable id.
    pub dcr_immutable_id: String,
    /// The DCR input stream, e.g. `Custom-ClaudeCompliance_CL`.
    pub stream: String,
    pub tenant_id: String,
    pub client_id: String,
    /// `client_secret` / `client_secret_file`.
    pub client_secret: SecretString,
    /// Entra authority host, no trailing slash; default
    /// `https://login.microsoftonline.com`. The token endpoint is
    /// `{authority}/{tenant_id}/oauth2/v2.0/token`.
    pub authority: String,
    /// Token scope; default `https://monitor.azure.com//.default`.
    pub scope: String,
    pub http: HttpSinkConfig,
}

/// `type = "splunk_hec"`: Splunk HTTP Event Collector, `/services/collector/event`.
#[derive(Debug, Clone)]
pub struct SplunkHecSinkConfig {
    /// Base URL of HEC without the `/services/collector` path, e.g.
    /// `https://splunk.example.com:8088` or `https://http-inputs-acme.splunkcloud.com`.
    pub url: String,
    /// The HEC token (a GUID), sent as `Authorization: Splunk <token>`.
    pub token: SecretString,
    /// `host` of every event; `None` = this machine's hostname.
    pub host: Option<String>,
    /// `source` of every event.
    pub source: String,
    /// `sourcetype` of every event.
    pub sourcetype: String,
    /// `index` of every event; `None` = the token's default index.
    pub index: Option<String>,
    /// Indexed fields added to every event (`fields`), in file order.
    pub fields: Vec<(String, String)>,
    /// Wait for indexer acknowledgement (`useACK` on the token) before
    /// advancing the cursor.
    pub ack: bool,
    /// How often to ask `/services/collector/ack` about a pending request.
    pub ack_poll_interval: Duration,
    /// A request not acknowledged within this long is sent again.
    pub ack_timeout: Duration,
    pub http: HttpSinkConfig,
}

/// `type = "sumo"`: a Sumo Logic hosted HTTP Logs source.
#[derive(Debug, Clone)]
pub struct SumoSinkConfig {
    /// The HTTP source URL. Its path holds the source's credential, so it is
    /// a secret: never printed, logged only as "the sumo URL".
    pub url: SecretString,
    /// `X-Sumo-Category` (source category override).
    pub category: Option<String>,
    /// `X-Sumo-Name` (source name override).
    pub source_name: Option<String>,
    /// `X-Sumo-Host` (source host override).
    pub source_host: Option<String>,
    /// `X-Sumo-Fields` (`k1=v1,k2=v2`), in file order.
    pub fields: Vec<(String, String)>,
    pub http: HttpSinkConfig,
}

#[derive(Debug, Clone, Default)]
pub struct EnrichConfig {
    pub geoip_city_db: Option<PathBuf>,
    pub geoip_asn_db: Option<PathBuf>,
    /// Entries in the user-agent cache.
    pub user_agent_cache_size: usize,
}

#[derive(Debug, Clone, Default)]
pub struct OcsfConfig {
    /// Per-type severity overrides: activity type -> OCSF severity_id (0..=6, 99).
    pub severity: HashMap<String, u8>,
    /// Include the original record in `raw_data`.
    pub include_raw_data: bool,
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration file.
    pub file: PathBuf,
    /// Where in the file: `sources[1].window`, `state.retention`, or the
    /// name of an environment variable; empty for a syntax error.
    pub key: String,
    /// What is wrong and what to write instead.
    pub message: String,
    /// 1-based line in the file, when the problem is at a place in it.
    pub line: Option<usize>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration, not just the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// The source with this name.
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// The sink with this name.
    pub fn sink(&self, name: &str) -> Option<&SinkConfig> {
        self.sinks.iter().find(|s| s.name == name)
    }

    /// A sink by the name its cursor and dead letters go by: a configured
    /// sink, or `<sink>.findings`, the findings stream of one that receives
    /// findings (while detections run).
    pub fn delivery(&self, name: &str) -> Option<SinkConfig> {
        if let Some(sink) = self.sink(name) {
            return Some(sink.clone());
        }
        let base = name.strip_suffix(&format!(".{FINDINGS_SUFFIX}"))?;
        self.sink(base)
            .filter(|s| s.streams.findings && self.detections.enabled)
            .map(SinkConfig::findings_stream)
    }
}

/// Prefix of the environment variables that override settings:
/// `CLAUDIT_STATE__RETENTION`, `CLAUDIT_SOURCES__ACME__WINDOW`, ...
pub const ENV_PREFIX: &str = "CLAUDIT_";

/// Loads and validates the configuration file at `path`, expanding `${VAR}`
/// and applying `CLAUDIT_*` overrides from the process environment.
///
/// A `CLAUDIT_<SECTION>__<KEY>` variable that matches no setting is an error,
/// so a typo in an override cannot be silently ignored.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_file(path, true)
}

/// Loads and validates the configuration file as [`load`] does, without
/// the checks of where the daemon writes on this machine (the state
/// directory exists, a sink path is not a directory): for the offline
/// commands that only read settings (`claudit rules list/test --config`),
/// which must work on a workstation that has a copy of the file.
pub fn load_settings_only(path: &Path) -> Result<Config, ConfigErrors> {
    load_file(path, false)
}

fn load_file(path: &Path, probe_files: bool) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            key: String::new(),
            message: format!(
                "cannot read the configuration file: {e}; check the path \
                 (start from config/claudit.example.toml)"
            ),
            line: None,
        }])
    })?;
    let env = |name: &str| std::env::var(name).ok();
    let override_names: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with(ENV_PREFIX) && name.contains("__"))
        .collect();
    load_inner(&text, path, &env, &override_names, probe_files)
}

/// Loads and validates configuration text, as if read from `file`, with an
/// explicit environment (`env` answers `${VAR}` and `CLAUDIT_*` look-ups).
/// Hermetic: it reads nothing but the `*_file` secrets the text names, and
/// does not check that the state directory exists (`load` does; see
/// `places`). Paths are still compared after resolving what exists of them.
pub fn load_str(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    load_inner(text, file, env, &[], false)
}

/// `probe_files`: also check what the paths are on this machine (the state
/// directory exists, the state path is not a directory, ...): what `run`
/// would otherwise find out at start-up.
fn load_inner(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    override_names: &[String],
    probe_files: bool,
) -> Result<Config, ConfigErrors> {
    let mut cx = reader::Ctx::new(file, text, env);
    cx.probe_files = probe_files;
    let (doc, syntax_errors) = toml::de::DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        // Every syntax error, but no validation of a document the parser had
        // to guess at. Only the parser's message and position: its full
        // Display quotes the offending line, which may hold a secret.
        for e in syntax_errors {
            let line = e.span().map(|s| cx.line_of(s.start));
            cx.error(
                "",
                line,
                format!("not valid TOML: {}", e.message().trim_end()),
            );
        }
        return Err(ConfigErrors(cx.errors));
    }
    let config = schema::read_config(&mut cx, doc.get_ref());
    for name in override_names {
        if !cx.overrides_seen.contains(name) {
            let hint = match reader::closest(name, cx.overrides_seen.iter().map(String::as_str)) {
                Some(near) => format!("did you mean {near}?"),
                None => format!(
                    "overrides are named {ENV_PREFIX}<SECTION>__<KEY>, e.g. \
                     {ENV_PREFIX}STATE__RETENTION or {ENV_PREFIX}SOURCES__<NAME>__WINDOW"
                ),
            };
            cx.error(
                name.clone(),
                None,
                format!("environment variable matches no setting; {hint}"),
            );
        }
    }
    if cx.errors.is_empty() {
        Ok(config)
    } else {
        // In file order, as an editor shows them; those without a line last.
        cx.errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        Err(ConfigErrors(cx.errors))
    }
}

/// Reading a spanned TOML document key by key, collecting every problem with
/// its key path and line.
pub(crate) mod reader {
    use super::*;
    use toml::Spanned;
    use toml::de::{DeTable, DeValue};

    /// Shared state of one load: where problems go, and what the environment
    /// answered.
    pub(crate) struct Ctx<'a> {
        file: &'a Path,
        text: &'a str,
        env: &'a dyn Fn(&str) -> Option<String>,
        pub errors: Vec<ConfigError>,
        /// Settings accepted without effect (`Config::notices`).
        pub notices: Vec<ConfigError>,
        /// Every `CLAUDIT_*` override name looked up, to catch unused ones.
        pub overrides_seen: BTreeSet<String>,
        /// Check the paths against the file system (see `load_inner`).
        pub probe_files: bool,
    }

    impl<'a> Ctx<'a> {
        pub fn new(file: &'a Path, text: &'a str, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
            Ctx {
                file,
                text,
                env,
                errors: Vec::new(),
                notices: Vec::new(),
                overrides_seen: BTreeSet::new(),
                probe_files: false,
            }
        }

        pub fn file(&self) -> &Path {
            self.file
        }

        /// 1-based line of a byte offset in the text.
        pub fn line_of(&self, offset: usize) -> usize {
            let end = offset.min(self.text.len());
            self.text.as_bytes()[..end]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1
        }

        pub fn error(
            &mut self,
            key: impl Into<String>,
            line: Option<usize>,
            message: impl Into<String>,
        ) {
            self.errors.push(ConfigError {
                file: self.file.to_path_buf(),
                key: key.into(),
                message: message.into(),
                line,
            });
        }

        /// A setting accepted without effect, and what to do about it.
        pub fn notice(
            &mut self,
            key: impl Into<String>,
            line: Option<usize>,
            message: impl Into<String>,
        ) {
            self.notices.push(ConfigError {
                file: self.file.to_path_buf(),
                key: key.into(),
                message: message.into(),
                line,
            });
        }

        /// A path from the file; relative ones are taken from the file's directory.
        pub fn resolve_path(&self, path: &str) -> PathBuf {
            let path = Path::new(path);
            match self.file.parent() {
                Some(dir) if path.is_relative() => dir.join(path),
                _ => path.to_path_buf(),
            }
        }

        fn lookup(&self, name: &str) -> Option<String> {
            (self.env)(name)
        }
    }

    /// A string value after `${VAR}` expansion. Not `Debug`: it may be a secret.
    pub(crate) struct Text {
        pub value: String,
        pub line: Option<usize>,
        /// Some part of the value came from the environment.
        pub uses_env: bool,
        /// The `CLAUDIT_*` override that supplied the whole value, if any.
        pub set_by: Option<String>,
    }

    impl Text {
        /// The value for a message: quoted when it was written in the file,
        /// never shown when any of it came from the environment (it could be a
        /// secret that ended up in the wrong key).
        pub fn shown(&self) -> String {
            if self.uses_env {
                "the value from the environment".to_string()
            } else {
                format!("{:?}", self.value)
            }
        }
    }

    /// A secret as read, with where it came from (for messages about it).
    /// Not `Debug`: it holds the secret.
    pub(super) struct FoundSecret {
        /// `api_key` or `api_key_file`: the key that gave it.
        pub key: String,
        pub line: Option<usize>,
        /// Some of it came from the environment.
        pub uses_env: bool,
        /// The file it was read from (`<key>_file`).
        pub file: Option<PathBuf>,
        pub secret: SecretString,
    }

    /// What makes `value` impossible as an HTTP header value, if anything:
    /// a byte below 0x20 other than tab, or DEL (RFC 9110 field values).
    pub(super) fn header_value_problem(value: &str) -> Option<&'static str> {
        value.bytes().find_map(|b| match b {
            b'\n' | b'\r' => Some("a line break"),
            b'\t' => None,
            0..=31 | 127 => Some("a control character"),
            _ => None,
        })
    }

    /// A value that may be absent, present, or present but wrong (already
    /// reported).
    pub(crate) enum Got<T> {
        Absent,
        Value(T),
        Invalid,
    }

    /// A scalar as found: in the file, or in a `CLAUDIT_*` override.
    enum Raw<'t, 'i> {
        File(&'t Spanned<DeValue<'i>>),
        Env { var: String, text: String },
    }

    /// One TOML table being read. Remembers the keys asked for, so that what
    /// is left over is reported as unknown.
    pub(crate) struct Table<'t, 'i> {
        entries: Option<&'t DeTable<'i>>,
        /// Key path of this table: "", "state", "sources[0]".
        pub path: String,
        /// Line of the table header, for problems about missing keys.
        pub line: Option<usize>,
        /// `CLAUDIT_..._` prefix of overrides for this table's scalars, if any.
        env_prefix: Option<String>,
        known: Vec<String>,
    }

    impl<'t, 'i> Table<'t, 'i> {
        pub fn root(doc: &'t DeTable<'i>) -> Self {
            Table {
                entries: Some(doc),
                path: String::new(),
                line: None,
                env_prefix: Some(ENV_PREFIX.to_string()),
                known: Vec::new(),
            }
        }

        /// The full key path of one of this table's keys.
        pub fn key_path(&self, key: &str) -> String {
            if self.path.is_empty() {
                key.to_string()
            } else {
                format!("{}.{key}", self.path)
            }
        }

        /// Enables `CLAUDIT_*` overrides for this table's scalars.
        pub fn set_env_prefix(&mut self, prefix: String) {
            self.env_prefix = Some(prefix);
        }

        /// Line of a key's value, else of the table.
        pub fn line_of_key(&self, cx: &Ctx, key: &str) -> Option<usize> {
            match self.entries.and_then(|e| e.get(key)) {
                Some(v) => Some(cx.line_of(v.span().start)),
                None => self.line,
            }
        }

        fn mark(&mut self, key: &str) {
            if !self.known.iter().any(|k| k == key) {
                self.known.push(key.to_string());
            }
        }

        fn raw(&mut self, cx: &mut Ctx, key: &str) -> Option<Raw<'t, 'i>> {
            self.mark(key);
            if let Some(prefix) = &self.env_prefix {
                let var = format!("{prefix}{}", key.to_uppercase());
                let found = cx.lookup(&var);
                cx.overrides_seen.insert(var.clone());
                if let Some(text) = found {
                    return Some(Raw::Env { var, text });
                }
            }
            self.entries.and_then(|e| e.get(key)).map(Raw::File)
        }

        /// Records a problem with `key`; `var` names the override it came from.
        fn problem(
            &self,
            cx: &mut Ctx,
            key: &str,
            line: Option<usize>,
            var: Option<&str>,
            message: String,
        ) {
            let message = match var {
                Some(var) => format!("(set by {var}) {message}"),
                None => message,
            };
            cx.error(self.key_path(key), line, message);
        }

        /// A string, `${VAR}` expanded. Type errors never show the value.
        pub fn text(&mut self, cx: &mut Ctx, key: &str) -> Got<Text> {
            match self.raw(cx, key) {
                None => Got::Absent,
                Some(Raw::Env { var, text }) => Got::Value(Text {
                    value: text,
                    line: None,
                    uses_env: true,
                    set_by: Some(var),
                }),
                Some(Raw::File(v)) => {
                    let line = Some(cx.line_of(v.span().start));
                    match v.get_ref() {
                        DeValue::String(s) => self.expand_value(cx, key, s, line),
                        other => {
                            let msg = format!(
                                "expected a string, found {}; put the value in double quotes",
                                a(other.type_str())
                            );
                            self.problem(cx, key, line, None, msg);
                            Got::Invalid
                        }
                    }
                }
            }
        }

        fn expand_value(&self, cx: &mut Ctx, key: &str, s: &str, line: Option<usize>) -> Got<Text> {
            match expand(s, &|name| cx.lookup(name)) {
                Ok((value, uses_env)) => Got::Value(Text {
                    value,
                    line,
                    uses_env,
                    set_by: None,
                }),
                Err(msg) => {
                    self.problem(cx, key, line, None, msg);
                    Got::Invalid
                }
            }
        }

        /// A string that must be present; `example` is what to write.
        pub fn required_text(&mut self, cx: &mut Ctx, key: &str, example: &str) -> Option<Text> {
            match self.text(cx, key) {
                Got::Value(t) => Some(t),
                Got::Invalid => None,
                Got::Absent => {
                    let msg = format!("missing required key; add {key} = {example}");
                    self.problem(cx, key, self.line, None, msg);
                    None
                }
            }
        }

        /// A non-empty path, resolved against the file's directory.
        pub fn path(&mut self, cx: &mut Ctx, key: &str) -> Got<PathBuf> {
            match self.text(cx, key) {
                Got::Value(t) if t.value.is_empty() => {
                    self.problem(
                        cx,
                        key,
                        t.line,
                        None,
                        "is empty; write a file path".to_string(),
                    );
                    Got::Invalid
                }
                Got::Value(t) => Got::Value(cx.resolve_path(&t.value)),
                Got::Absent => Got::Absent,
                Got::Invalid => Got::Invalid,
            }
        }

        /// A required path; `example` is what to write.
        pub fn required_path(&mut self, cx: &mut Ctx, key: &str, example: &str) -> Option<PathBuf> {
            match self.path(cx, key) {
                Got::Value(p) => Some(p),
                Got::Invalid => None,
                Got::Absent => {
                    let msg = format!("missing required key; add {key} = {example}");
                    self.problem(cx, key, self.line, None, msg);
                    None
                }
            }
        }

        /// A duration like "5m", "1h 30m", "7d"; `default` when absent.
        pub fn duration(&mut self, cx: &mut Ctx, key: &str, default: Duration) -> Option<Duration> {
            let example = format_duration(default);
            let (text, var) = match self.raw(cx, key) {
                None => return Some(default),
                Some(Raw::Env { var, text }) => (
                    Text {
                        value: text,
                        line: None,
                        uses_env: true,
                        set_by: None,
                    },
                    Some(var),
                ),
                Some(Raw::File(v)) => {
                    let line = Some(cx.line_of(v.span().start));
                    match v.get_ref() {
                        DeValue::String(s) => match self.expand_value(cx, key, s, line) {
                            Got::Value(t) => (t, None),
                            _ => return None,
                        },
                        DeValue::Integer(i) => {
                            let msg = format!(
                                "a duration needs a unit; write {key} = \"{i}s\" for seconds \
                                 (or \"5m\", \"1h 30m\", \"7d\")"
                            );
                            self.problem(cx, key, line, None, msg);
                            return None;
                        }
                        other => {
                            let msg = format!(
                                "expected a duration string, found {}; write {key} = \"{example}\"",
                                a(other.type_str())
                            );
                            self.problem(cx, key, line, None, msg);
                            return None;
                        }
                    }
                }
            };
            match humantime::parse_duration(text.value.trim()) {
                Ok(d) => Some(d),
                Err(e) => {
                    // humantime's message quotes parts of the input: only for file text.
                    let detail = if text.uses_env {
                        String::new()
                    } else {
                        let e = e.to_string();
                        // Keep "unknown time unit \"minuets\"", not the list after it.
                        let e = e.split(", supported units").next().unwrap_or_default();
                        format!(" ({e})")
                    };
                    let msg = format!(
                        "{} is not a duration{detail}; write e.g. {key} = \"{example}\" \
                         (units: s, m, h, d; combine like \"1h 30m\")",
                        text.shown()
                    );
                    self.problem(cx, key, text.line, var.as_deref(), msg);
                    None
                }
            }
        }

        /// A byte size: "100MB", "4MiB", "0", or a plain integer; `default` when absent.
        pub fn size(&mut self, cx: &mut Ctx, key: &str, default: u64) -> Option<u64> {
            let (text, var) = match self.raw(cx, key) {
                None => return Some(default),
                Some(Raw::Env { var, text }) => (
                    Text {
                        value: text,
                        line: None,
                        uses_env: true,
                        set_by: None,
                    },
                    Some(var),
                ),
                Some(Raw::File(v)) => {
                    let line = Some(cx.line_of(v.span().start));
                    match v.get_ref() {
                        DeValue::String(s) => match self.expand_value(cx, key, s, line) {
                            Got::Value(t) => (t, None),
                            _ => return None,
                        },
                        DeValue::Integer(i) => match integer_value(i) {
                            Some(n) if n >= 0 => return Some(n as u64),
                            _ => {
                                let msg = format!(
                                    "a size cannot be negative; write e.g. {key} = \"{}\"",
                                    format_size(default)
                                );
                                self.problem(cx, key, line, None, msg);
                                return None;
                            }
                        },
                        other => {
                            let msg = format!(
                                "expected a size string, found {}; write e.g. {key} = \"{}\"",
                                a(other.type_str()),
                                format_size(default)
                            );
                            self.problem(cx, key, line, None, msg);
                            return None;
                        }
                    }
                }
            };
            match parse_size(&text.value) {
                Ok(n) => Some(n),
                Err(e) => {
                    let detail = if text.uses_env {
                        String::new()
                    } else {
                        format!(" ({e})")
                    };
                    let msg = format!(
                        "{} is not a size{detail}; write e.g. {key} = \"{}\" \
                         (units: B, KB, MB, GB, KiB, MiB, GiB) or a plain number of bytes",
                        text.shown(),
                        format_size(default)
                    );
                    self.problem(cx, key, text.line, var.as_deref(), msg);
                    None
                }
            }
        }

        /// An integer in `range`; `default` when absent. `note` explains the range.
        pub fn integer(
            &mut self,
            cx: &mut Ctx,
            key: &str,
            range: RangeInclusive<i64>,
            default: i64,
            note: &str,
        ) -> Option<i64> {
            // `shown` is how the value appears in a message: the number from
            // the file, nothing from the environment.
            let (n, shown, line, var) = match self.raw(cx, key) {
                None => return Some(default),
                Some(Raw::Env { var, text }) => match text.trim().parse::<i64>() {
                    Ok(n) => (n, "the value".to_string(), None, Some(var)),
                    Err(_) => {
                        let msg = format!(
                            "expected an integer from {} to {}; set it to e.g. {default}",
                            range.start(),
                            range.end()
                        );
                        self.problem(cx, key, None, Some(&var), msg);
                        return None;
                    }
                },
                Some(Raw::File(v)) => {
                    let line = Some(cx.line_of(v.span().start));
                    match v.get_ref() {
                        // Beyond i64 is out of any range; i64::MAX stands for it.
                        DeValue::Integer(i) => (
                            integer_value(i).unwrap_or(i64::MAX),
                            i.to_string(),
                            line,
                            None,
                        ),
                        other => {
                            let quoted = if other.is_str() {
                                " without quotes"
                            } else {
                                ""
                            };
                            let msg = format!(
                                "expected an integer, found {}; write {key} = {default}{quoted}",
                                a(other.type_str())
                            );
                            self.problem(cx, key, line, None, msg);
                            return None;
                        }
                    }
                }
            };
            if range.contains(&n) {
                Some(n)
            } else {
                let note = if note.is_empty() {
                    String::new()
                } else {
                    format!(" ({note})")
                };
                let msg = format!(
                    "{shown} is out of range; write a number from {} to {}{note}, e.g. {key} = {default}",
                    range.start(),
                    range.end()
                );
                self.problem(cx, key, line, var.as_deref(), msg);
                None
            }
        }

        /// `true` or `false`; `default` when absent.
        pub fn boolean(&mut self, cx: &mut Ctx, key: &str, default: bool) -> Option<bool> {
            match self.raw(cx, key) {
                None => Some(default),
                Some(Raw::Env { var, text }) => match text.trim() {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => {
                        let msg = "expected true or false".to_string();
                        self.problem(cx, key, None, Some(&var), msg);
                        None
                    }
                },
                Some(Raw::File(v)) => match v.get_ref() {
                    DeValue::Boolean(b) => Some(*b),
                    other => {
                        let line = Some(cx.line_of(v.span().start));
                        let msg = format!(
                            "expected true or false, found {}; write {key} = {default} (no quotes)",
                            a(other.type_str())
                        );
                        self.problem(cx, key, line, None, msg);
                        None
                    }
                },
            }
        }

        /// An array of strings (`${VAR}` expanded), each passed to `check`,
        /// which returns what is wrong with it. Not overridable from the
        /// environment. `example` is what to write.
        pub fn string_list(
            &mut self,
            cx: &mut Ctx,
            key: &str,
            example: &str,
            check: fn(&Text) -> Option<String>,
        ) -> Got<Vec<String>> {
            self.mark(key);
            let Some(v) = self.entries.and_then(|e| e.get(key)) else {
                return Got::Absent;
            };
            let line = Some(cx.line_of(v.span().start));
            let DeValue::Array(items) = v.get_ref() else {
                let msg = format!(
                    "expected an array of strings, found {}; write {key} = {example}",
                    a(v.get_ref().type_str())
                );
                self.problem(cx, key, line, None, msg);
                return Got::Invalid;
            };
            let mut out = Vec::new();
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                let item_key = format!("{key}[{i}]");
                let item_line = Some(cx.line_of(item.span().start));
                match item.get_ref() {
                    DeValue::String(s) => match self.expand_value(cx, &item_key, s, item_line) {
                        Got::Value(t) => match check(&t) {
                            None => out.push(t.value),
                            Some(msg) => {
                                self.problem(cx, &item_key, item_line, None, msg);
                                ok = false;
                            }
                        },
                        _ => ok = false,
                    },
                    other => {
                        let msg = format!(
                            "expected a string, found {}; write {key} = {example}",
                            a(other.type_str())
                        );
                        self.problem(cx, &item_key, item_line, None, msg);
                        ok = false;
                    }
                }
            }
            if ok { Got::Value(out) } else { Got::Invalid }
        }

        /// A secret given inline as `key` (usually `"${VAR}"`) or read from the
        /// file named by `<key>_file`; exactly one of the two. Messages never
        /// contain the secret. `env_example` / `file_example` show what to write.
        pub fn secret(
            &mut self,
            cx: &mut Ctx,
            key: &str,
            env_example: &str,
            file_example: &str,
        ) -> Option<SecretString> {
            self.secret_from(cx, key, env_example, file_example)
                .map(|found| found.secret)
        }

        /// A secret sent as an HTTP header value (an API key, a token),
        /// read like [`Table::secret`]. Surrounding whitespace (a trailing
        /// newline from `echo` or an editor) is removed, as the clients do;
        /// a line break or another control character inside it is an error
        /// naming the key it came from, since no header can carry it and
        /// every request would fail.
        pub fn header_secret(
            &mut self,
            cx: &mut Ctx,
            key: &str,
            env_example: &str,
            file_example: &str,
        ) -> Option<SecretString> {
            use secrecy::ExposeSecret;
            let found = self.secret_from(cx, key, env_example, file_example)?;
            let value = found.secret.expose_secret().trim();
            let Some(what) = header_value_problem(value) else {
                return Some(SecretString::from(value.to_string()));
            };
            let origin = match (&found.file, found.uses_env) {
                (Some(file), _) => format!("the file {}", file.display()),
                (None, true) => "the environment variable's value".to_string(),
                (None, false) => "the value".to_string(),
            };
            let msg = format!(
                "contains {what}, which an HTTP header cannot carry, so every request would fail; \
                 the key is one line of printable characters: remove the {what} from {origin}"
            );
            self.problem(cx, &found.key, found.line, None, msg);
            None
        }

        fn secret_from(
            &mut self,
            cx: &mut Ctx,
            key: &str,
            env_example: &str,
            file_example: &str,
        ) -> Option<FoundSecret> {
            let file_key = format!("{key}_file");
            let inline = self.text(cx, key);
            let from_file = self.text(cx, &file_key);
            match (inline, from_file) {
                (Got::Invalid, _) | (_, Got::Invalid) => None,
                (Got::Value(t), Got::Value(_)) => {
                    let msg =
                        format!("both {key} and {file_key} are set; keep exactly one of them");
                    self.problem(cx, key, t.line, None, msg);
                    None
                }
                (Got::Absent, Got::Absent) => {
                    let msg = format!(
                        "missing; add {key} = \"${{{env_example}}}\" (and set {env_example}) \
                         or {file_key} = \"{file_example}\""
                    );
                    self.problem(cx, key, self.line, None, msg);
                    None
                }
                (Got::Value(t), Got::Absent) => {
                    if t.value.is_empty() {
                        let msg = format!(
                            "is empty; set it to \"${{{env_example}}}\" with {env_example} set to the \
                             key, or use {file_key}"
                        );
                        self.problem(cx, key, t.line, None, msg);
                        None
                    } else {
                        Some(FoundSecret {
                            key: key.to_string(),
                            line: t.line,
                            uses_env: t.uses_env,
                            file: None,
                            secret: SecretString::from(t.value),
                        })
                    }
                }
                (Got::Absent, Got::Value(t)) => {
                    let path = cx.resolve_path(&t.value);
                    let fail = |why: String| {
                        format!(
                            "cannot read secret file {}: {why}; check {file_key} and that \
                             claudit may read the file",
                            path.display()
                        )
                    };
                    let secret = match std::fs::read(&path) {
                        Err(e) => Err(fail(e.to_string())),
                        Ok(bytes) => match String::from_utf8(bytes) {
                            Err(_) => Err(fail("not UTF-8 text".to_string())),
                            Ok(s) => {
                                let trimmed = s.trim_end_matches(['\n', '\r']);
                                if trimmed.is_empty() {
                                    Err(format!(
                                        "secret file {} is empty; write the key into it",
                                        path.display()
                                    ))
                                } else {
                                    Ok(SecretString::from(trimmed.to_string()))
                                }
                            }
                        },
                    };
                    match secret {
                        Ok(secret) => Some(FoundSecret {
                            key: file_key,
                            line: t.line,
                            uses_env: false,
                            file: Some(path),
                            secret,
                        }),
                        Err(msg) => {
                            self.problem(cx, &file_key, t.line, None, msg);
                            None
                        }
                    }
                }
            }
        }

        /// A sub-table such as `[state]`; an absent one reads as empty.
        pub fn subtable(&mut self, cx: &mut Ctx, key: &str) -> Table<'t, 'i> {
            self.mark(key);
            let mut child = Table {
                entries: None,
                path: self.key_path(key),
                line: None,
                env_prefix: self
                    .env_prefix
                    .as_ref()
                    .map(|p| format!("{p}{}__", key.to_uppercase())),
                known: Vec::new(),
            };
            if let Some(v) = self.entries.and_then(|e| e.get(key)) {
                child.line = Some(cx.line_of(v.span().start));
                match v.get_ref() {
                    DeValue::Table(t) => child.entries = Some(t),
                    other => {
                        let msg = format!(
                            "expected a table, found {}; write a [{}] section",
                            a(other.type_str()),
                            child.path
                        );
                        self.problem(cx, key, child.line, None, msg);
                    }
                }
            }
            child
        }

        /// An array of tables such as `[[sources]]`; absent reads as empty,
        /// `None` when it is something else (reported).
        pub fn array_of_tables(&mut self, cx: &mut Ctx, key: &str) -> Option<Vec<Table<'t, 'i>>> {
            self.mark(key);
            let Some(v) = self.entries.and_then(|e| e.get(key)) else {
                return Some(Vec::new());
            };
            let line = Some(cx.line_of(v.span().start));
            let DeValue::Array(items) = v.get_ref() else {
                let msg = format!(
                    "expected an array of tables, found {}; write [[{key}]] (double brackets) \
                     before each entry",
                    a(v.get_ref().type_str())
                );
                self.problem(cx, key, line, None, msg);
                return None;
            };
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let item_line = Some(cx.line_of(item.span().start));
                match item.get_ref() {
                    DeValue::Table(t) => out.push(Table {
                        entries: Some(t),
                        path: format!("{}[{i}]", self.key_path(key)),
                        line: item_line,
                        env_prefix: None,
                        known: Vec::new(),
                    }),
                    other => {
                        let msg = format!(
                            "expected a table, found {}; write [[{key}]] followed by its keys",
                            a(other.type_str())
                        );
                        self.problem(cx, &format!("{key}[{i}]"), item_line, None, msg);
                    }
                }
            }
            Some(out)
        }

        /// Every entry of a table whose keys are data (e.g. `[ocsf.severity]`),
        /// as integers: (key, value, line). Non-integers are reported.
        pub fn integer_entries(
            &mut self,
            cx: &mut Ctx,
            example: &str,
        ) -> Vec<(String, i64, Option<usize>)> {
            let mut out = Vec::new();
            let Some(entries) = self.entries else {
                return out;
            };
            for (k, v) in entries.iter() {
                let key = k.get_ref().to_string();
                self.mark(&key);
                let line = Some(cx.line_of(v.span().start));
                match v.get_ref() {
                    DeValue::Integer(i) => {
                        out.push((key, integer_value(i).unwrap_or(i64::MAX), line))
                    }
                    other => {
                        let msg = format!(
                            "expected an integer, found {}; write {key} = {example}",
                            a(other.type_str())
                        );
                        self.problem(cx, &key, line, None, msg);
                    }
                }
            }
            out
        }

        /// Every entry of a table whose keys are data (e.g. `[sinks.fields]`),
        /// as strings (`${VAR}` expanded): (key, value, line). `None` when
        /// any entry is not a string (reported).
        pub fn string_entries(
            &mut self,
            cx: &mut Ctx,
            example: &str,
        ) -> Option<Vec<(String, String, Option<usize>)>> {
            let mut out = Vec::new();
            let Some(entries) = self.entries else {
                return Some(out);
            };
            let mut ok = true;
            for (k, v) in entries.iter() {
                let key = k.get_ref().to_string();
                self.mark(&key);
                let line = Some(cx.line_of(v.span().start));
                match v.get_ref() {
                    DeValue::String(s) => match self.expand_value(cx, &key, s, line) {
                        Got::Value(t) => out.push((key, t.value, line)),
                        _ => ok = false,
                    },
                    other => {
                        let msg = format!(
                            "expected a string, found {}; write {key} = {example}",
                            a(other.type_str())
                        );
                        self.problem(cx, &key, line, None, msg);
                        ok = false;
                    }
                }
            }
            ok.then_some(out)
        }

        /// Whether the table sets `key` (archive sink: `retention` without
        /// `object_lock_mode` is an error, not the default).
        pub fn has_key(&self, key: &str) -> bool {
            self.entries.is_some_and(|e| e.get(key).is_some())
        }

        /// Reports every key of this table that no reader asked for.
        pub fn finish(&self, cx: &mut Ctx) {
            let Some(entries) = self.entries else {
                return;
            };
            for (k, _) in entries.iter() {
                let key = k.get_ref().as_ref();
                if self.known.iter().any(|known| known == key) {
                    continue;
                }
                let hint = match closest(key, self.known.iter().map(String::as_str)) {
                    Some(near) => format!("did you mean {near}?"),
                    None => format!("valid keys here: {}", self.known.join(", ")),
                };
                let line = Some(cx.line_of(k.span().start));
                cx.error(self.key_path(key), line, format!("unknown key; {hint}"));
            }
        }
    }

    /// "an integer", "a string", ...
    fn a(type_name: &str) -> String {
        match type_name.chars().next() {
            Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {type_name}"),
            _ => format!("a {type_name}"),
        }
    }

    fn integer_value(i: &toml::de::DeInteger<'_>) -> Option<i64> {
        i64::from_str_radix(i.as_str(), i.radix()).ok()
    }

    /// Expands `${VAR}` from `env`; `$${` is a literal `${`. Returns the text
    /// and whether any variable was used. Messages name the variable, never
    /// its value.
    pub(super) fn expand(
        s: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(String, bool), String> {
        let mut out = String::with_capacity(s.len());
        let mut used = false;
        let mut rest = s;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let tail = &rest[pos..];
            if let Some(after) = tail.strip_prefix("$${") {
                out.push_str("${");
                rest = after;
            } else if let Some(after) = tail.strip_prefix("${") {
                let Some(end) = after.find('}') else {
                    return Err("\"${\" without a closing \"}\"; write ${NAME}, or $${ for a literal \"${\""
                        .to_string());
                };
                let name = &after[..end];
                let valid = !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(format!(
                        "\"${{{name}}}\" is not a valid variable name; use letters, digits and \"_\", \
                         or write $${{ for a literal \"${{\""
                    ));
                }
                match env(name) {
                    Some(value) => out.push_str(&value),
                    None => {
                        return Err(format!(
                            "environment variable {name} is not set; set it in claudit's \
                             environment (systemd Environment=/EnvironmentFile=, container env), \
                             or write $${{ for a literal \"${{\""
                        ));
                    }
                }
                used = true;
                rest = &after[end + 1..];
            } else {
                out.push('$');
                rest = &tail[1..];
            }
        }
        out.push_str(rest);
        Ok((out, used))
    }

    /// Parses "100MB" (SI), "4MiB" (binary), "0", or a plain number of bytes.
    pub(super) fn parse_size(s: &str) -> Result<u64, String> {
        let s = s.trim();
        let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(digits_end);
        if digits.is_empty() {
            return Err("expected a number followed by an optional unit".to_string());
        }
        let n: u64 = digits.parse().map_err(|_| "number too large".to_string())?;
        let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "tib" => 1 << 40,
            other => return Err(format!("unknown unit {other:?}")),
        };
        n.checked_mul(multiplier)
            .ok_or_else(|| "size too large".to_string())
    }

    /// A duration as it is written in the file: "7d", "1h 30m", "250ms".
    pub(crate) fn format_duration(d: Duration) -> String {
        let secs = d.as_secs();
        let parts = [
            (secs / 86_400, "d"),
            (secs / 3600 % 24, "h"),
            (secs / 60 % 60, "m"),
            (secs % 60, "s"),
            (u64::from(d.subsec_millis()), "ms"),
        ];
        let out: Vec<String> = parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, unit)| format!("{n}{unit}"))
            .collect();
        if out.is_empty() {
            "0s".to_string()
        } else {
            out.join(" ")
        }
    }

    /// The shortest exact spelling of a size: "4MB", "4MiB", or bytes.
    pub(super) fn format_size(n: u64) -> String {
        const UNITS: [(u64, &str); 6] = [
            (1 << 30, "GiB"),
            (1_000_000_000, "GB"),
            (1 << 20, "MiB"),
            (1_000_000, "MB"),
            (1 << 10, "KiB"),
            (1_000, "KB"),
        ];
        for (size, unit) in UNITS {
            if n != 0 && n.is_multiple_of(size) {
                return format!("{}{unit}", n / size);
            }
        }
        n.to_string()
    }

    /// The candidate closest to `name` by edit distance, if close enough to
    /// be a likely typo.
    pub(crate) fn closest<'c>(
        name: &str,
        candidates: impl Iterator<Item = &'c str>,
    ) -> Option<&'c str> {
        let name = name.to_ascii_lowercase();
        let limit = (name.chars().count() / 3).max(2);
        candidates
            .map(|c| (edit_distance(&name, &c.to_ascii_lowercase()), c))
            .filter(|&(d, c)| {
                let c = c.to_ascii_lowercase();
                let prefix =
                    name.len().min(c.len()) >= 3 && (name.starts_with(&c) || c.starts_with(&name));
                (d <= limit && d < c.len()) || prefix
            })
            .min_by_key(|&(d, _)| d)
            .map(|(_, c)| c)
    }

    /// Levenshtein distance.
    pub(super) fn edit_distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1; b.len() + 1];
            for (j, &cb) in b.iter().enumerate() {
                let substitute = prev[j] + usize::from(ca != cb);
                cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    }
}

/// The claudit schema: which keys exist, their defaults, and the checks
/// across keys.
mod schema {
    use super::reader::{Ctx, Got, Table, Text};
    use super::*;
    use toml::de::DeTable;

    const fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }
    const MINUTE: u64 = 60;
    const HOUR: u64 = 3600;
    const DAY: u64 = 86_400;

    pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
    pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";
    /// The most `requests_per_minute` accepts, and only for a loopback
    /// `base_url` (benchmarks against the simulator); the API allows 600.
    const MAX_LOOPBACK_REQUESTS_PER_MINUTE: i64 = 1_000_000;
    const DEFAULT_RETENTION: Duration = secs(7 * DAY);
    const DEFAULT_SERVER_LISTEN: &str = "127.0.0.1:9464";

    /// A sink type this build supports. Adding a type is a `SinkKind`
    /// variant, its reader function, and one row in `SINK_TYPES`.
    struct SinkType {
        name: &'static str,
        /// Defaults of `batch_max_events`, `batch_max_bytes`, `batch_linger`.
        batch: (i64, u64, Duration),
        /// Reads the type's own keys from the sink's table.
        read: fn(&mut Ctx, &mut Table) -> Option<SinkKind>,
    }

    const SINK_TYPES: &[SinkType] = &[
        SinkType {
            name: "file",
            batch: (1000, 4_000_000, secs(1)),
            read: read_file_sink,
        },
        // Datadog: at most 1000 logs and 5 MB per request; a batch that
        // encodes larger is split into several requests anyway.
        SinkType {
            name: "datadog",
            batch: (1000, 4_000_000, secs(1)),
            read: read_datadog_sink,
        },
        // Azure Logs Ingestion: 1 MB per call; the wrapper columns add about
        // 120 bytes per event, so 800 KB of events fits one call.
        SinkType {
            name: "sentinel",
            batch: (1000, 800_000, secs(1)),
            read: read_sentinel_sink,
        },
        // Requests stay under 1 MB uncompressed (the encoder splits past it);
        // a batch a little over that costs one extra small request.
        SinkType {
            name: "splunk_hec",
            batch: (1000, 1_000_000, secs(1)),
            read: read_splunk_hec_sink,
        },
        // Sumo: at most 1 MB uncompressed per POST.
        SinkType {
            name: "sumo",
            batch: (1000, 1_000_000, secs(1)),
            read: read_sumo_sink,
        },
        // 1000 events / 5 MB per _bulk request: the size the Elastic tuning
        // guide and the OTel exporter aim for, far below the 100 MB default
        // http.max_content_length.
        SinkType {
            name: "elasticsearch",
            batch: (1000, 5_000_000, secs(1)),
            read: read_elasticsearch_sink,
        },
        // Syslog: one write of frames per batch, acknowledged by the
        // receiver's TCP before the cursor moves.
        SinkType {
            name: "syslog",
            batch: (1000, 1_000_000, secs(1)),
            read: read_syslog_sink,
        },
        // Webhook: one signed request per batch up to max_request_bytes.
        SinkType {
            name: "webhook",
            batch: (1000, 1_000_000, secs(1)),
            read: read_webhook_sink,
        },
        // Archive: batches are the journal reads of a flush (it streams
        // whole sealed hours into segments; these only size the reads).
        SinkType {
            name: "archive",
            batch: (5000, 16_000_000, secs(0)),
            read: read_archive_sink,
        },
    ];

    pub(super) fn read_config(cx: &mut Ctx, doc: &DeTable) -> Config {
        let mut root = Table::root(doc);

        let mut state_table = root.subtable(cx, "state");
        let state_path = state_table.required_path(cx, "path", "\"/var/lib/claudit/state.db\"");
        let mut places = Vec::new();
        if let Some(path) = &state_path {
            places.push(places::Place {
                key: state_table.key_path("path"),
                line: state_table.line_of_key(cx, "path"),
                path: path.clone(),
                kind: places::Kind::State,
            });
        }
        let retention = state_table.duration(cx, "retention", DEFAULT_RETENTION);
        let retention_line = state_table.line_of_key(cx, "retention");
        let retention_key = state_table.key_path("retention");
        state_table.finish(cx);

        let mut sources = Vec::new();
        let mut sweep_reach = Vec::new();
        let source_tables = root.array_of_tables(cx, "sources");
        if source_tables.as_ref().is_some_and(Vec::is_empty) {
            cx.error(
                "sources",
                None,
                "no source configured; add a [[sources]] table with name = \"...\" and \
                 api_key = \"${ANTHROPIC_COMPLIANCE_API_KEY}\" (see config/claudit.example.toml)",
            );
        }
        for mut t in source_tables.unwrap_or_default() {
            let (source, needs) = read_source(cx, &mut t);
            if let Some(first) = sources
                .iter()
                .position(|s: &SourceConfig| !s.name.is_empty() && s.name == source.name)
            {
                let line = t.line_of_key(cx, "name");
                cx.error(
                    t.key_path("name"),
                    line,
                    format!(
                        "duplicate source name {:?} (also sources[{first}]); give each source a unique name",
                        source.name
                    ),
                );
            }
            t.finish(cx);
            sweep_reach.push(needs);
            sources.push(source);
        }

        let mut sinks: Vec<SinkConfig> = Vec::new();
        let mut sink_names: Vec<String> = Vec::new();
        let sink_tables = root.array_of_tables(cx, "sinks");
        if sink_tables.as_ref().is_some_and(Vec::is_empty) {
            cx.error(
                "sinks",
                None,
                "no sink configured; add a [[sinks]] table, e.g. name = \"archive\", type = \"file\", \
                 path = \"/var/log/claudit/events.ndjson\" (see config/claudit.example.toml)",
            );
        }
        // Per sink: whether `streams` was written, and its table's key path
        // and line (the default and the findings file are settled below).
        let mut stream_keys: Vec<StreamKeys> = Vec::new();
        for mut t in sink_tables.unwrap_or_default() {
            let explicit = t.has_key("streams");
            let (name, sink) = read_sink(cx, &mut t);
            if sink.is_some() {
                stream_keys.push(StreamKeys {
                    explicit,
                    key: t.key_path("streams"),
                    line: t.line_of_key(cx, "streams"),
                    path_key: t.key_path("path"),
                    path_line: t.line_of_key(cx, "path"),
                });
            }
            if let Some(first) = sink_names.iter().position(|n| !n.is_empty() && *n == name) {
                let line = t.line_of_key(cx, "name");
                cx.error(
                    t.key_path("name"),
                    line,
                    format!("duplicate sink name {name:?} (also sinks[{first}]); give each sink a unique name"),
                );
            }
            if let Some(sink) = &sink
                && let Some(place) =
                    places::of_sink(sink, t.key_path("path"), t.line_of_key(cx, "path"))
            {
                places.push(place);
            }
            if let Some(sink) = &sink {
                super::directory::check_sink_format(cx, &t, sink.format, &sources);
            }
            sink_names.push(name);
            sinks.extend(sink);
        }

        let enrich = read_enrich(cx, &mut root);
        let ocsf = read_ocsf(cx, &mut root);
        let server = read_server(cx, &mut root);
        let detections = crate::detect::settings::read(cx, &mut root);
        root.finish(cx);
        settle_streams(
            cx,
            &mut sinks,
            &stream_keys,
            detections.enabled,
            &mut places,
        );
        places::check(cx, &places);

        // Dedup of late re-reads needs the journal rows still present when the
        // sweep reads them again.
        if let Some(retention) = retention {
            for (source, needs) in sources.iter().zip(&sweep_reach) {
                let Some(needs) = needs else { continue };
                if retention <= *needs {
                    let days = needs.as_secs() / DAY + 1;
                    cx.error(
                        retention_key.clone(),
                        retention_line,
                        format!(
                            "retention {} must be longer than sweep_horizon + settle_lag of source {:?} \
                             ({}), or a late re-read could journal an event twice after its first copy \
                             was pruned; write retention = \"{}d\"",
                            reader::format_duration(retention),
                            source.name,
                            reader::format_duration(*needs),
                            days.max(7)
                        ),
                    );
                }
            }
        }

        Config {
            file: cx.file().to_path_buf(),
            state: StateConfig {
                path: state_path.unwrap_or_default(),
                retention: retention.unwrap_or(DEFAULT_RETENTION),
            },
            sources,
            sinks,
            enrich,
            ocsf,
            server,
            detections,
            notices: std::mem::take(&mut cx.notices),
        }
    }

    /// Where a sink's `streams` is (or would be) in the file.
    struct StreamKeys {
        explicit: bool,
        key: String,
        line: Option<usize>,
        path_key: String,
        path_line: Option<usize>,
    }

    /// The streams of sinks without `streams`: both when detections run
    /// (activities only for an archive), activities otherwise. A sink that
    /// receives findings writes them somewhere too (a file sink's findings
    /// file), checked with every other place.
    fn settle_streams(
        cx: &mut Ctx,
        sinks: &mut [SinkConfig],
        keys: &[StreamKeys],
        detections: bool,
        places: &mut Vec<places::Place>,
    ) {
        for (sink, keys) in sinks.iter_mut().zip(keys) {
            let is_archive = matches!(sink.kind, SinkKind::Archive(_));
            if !keys.explicit {
                sink.streams = if detections && !is_archive {
                    Streams::BOTH
                } else {
                    Streams::ACTIVITIES
                };
            } else if sink.streams.findings && !detections {
                cx.notice(
                    keys.key.clone(),
                    keys.line,
                    "has \"findings\" but [detections] enabled = false: the sink receives none \
                     until detections are enabled",
                );
            }
            if sink.streams.findings
                && detections
                && let Some(place) = places::of_sink(
                    &sink.findings_stream(),
                    keys.path_key.clone(),
                    keys.path_line,
                )
            {
                places.push(place);
            }
        }
    }

    /// One entry of `streams`.
    fn stream_name(text: &Text) -> Option<String> {
        match text.value.as_str() {
            "activities" | "findings" => None,
            _ => Some(format!(
                "unknown stream {}; a sink receives \"activities\" (every activity), \"findings\" \
                 (the detections' findings) or both: write streams = [\"activities\", \"findings\"]",
                text.shown()
            )),
        }
    }

    // ---- [server] ----------------------------------------------------------

    /// `[server]`: present (or `listen` set by an override) turns the
    /// endpoint on, at 127.0.0.1:9464 unless `listen` says otherwise.
    fn read_server(cx: &mut Ctx, root: &mut Table) -> ServerConfig {
        let mut t = root.subtable(cx, "server");
        let present = t.line.is_some();
        let listen = match t.text(cx, "listen") {
            Got::Absent if present => Some(DEFAULT_SERVER_LISTEN.parse().ok()),
            Got::Absent => Some(None),
            Got::Invalid => None,
            Got::Value(text) => match text.value.trim().parse::<std::net::SocketAddr>() {
                Ok(addr) => Some(Some(addr)),
                Err(_) => {
                    let msg = format!(
                        "{} is not an address and port; write listen = \"{DEFAULT_SERVER_LISTEN}\" \
                         (or \"0.0.0.0:9464\" to be scraped from other hosts)",
                        text.shown()
                    );
                    text_error(cx, &t, "listen", &text, msg);
                    None
                }
            },
        };
        let delay = t.duration(cx, "ready_max_sink_delay", secs(15 * MINUTE));
        let delay = at_least(cx, &t, "ready_max_sink_delay", delay, secs(1));
        t.finish(cx);
        ServerConfig {
            listen: listen.flatten(),
            ready_max_sink_delay: delay.unwrap_or(secs(15 * MINUTE)),
        }
    }

    /// Reads one `[[sources]]` table. Also returns sweep_horizon + settle_lag
    /// when both are valid, for the retention check.
    fn read_source(cx: &mut Ctx, t: &mut Table) -> (SourceConfig, Option<Duration>) {
        let name = read_name(cx, t, "acme", "SOURCES");

        let base_url = match t.text(cx, "base_url") {
            Got::Absent => Some(DEFAULT_BASE_URL.to_string()),
            Got::Invalid => None,
            Got::Value(text) => check_base_url(&text)
                .map_err(|msg| text_error(cx, t, "base_url", &text, msg))
                .ok(),
        };
        let api_key = t.header_secret(
            cx,
            "api_key",
            "ANTHROPIC_COMPLIANCE_API_KEY",
            "/run/secrets/claude",
        );
        let anthropic_version = match t.text(cx, "anthropic_version") {
            Got::Absent => Some(DEFAULT_ANTHROPIC_VERSION.to_string()),
            Got::Invalid => None,
            Got::Value(text) => {
                let v = &text.value;
                let looks_like_date = v.len() == 10
                    && v.char_indices().all(|(i, c)| {
                        if i == 4 || i == 7 {
                            c == '-'
                        } else {
                            c.is_ascii_digit()
                        }
                    });
                if looks_like_date {
                    Some(text.value.clone())
                } else {
                    let msg = format!(
                        "{} is not an API version date; write anthropic_version = \"{DEFAULT_ANTHROPIC_VERSION}\"",
                        text.shown()
                    );
                    text_error(cx, t, "anthropic_version", &text, msg);
                    None
                }
            }
        };
        // Above the API's 600/min only against a loopback simulator (benchmarks).
        let max_requests_per_minute = match &base_url {
            Some(url) if is_loopback_url(url) => MAX_LOOPBACK_REQUESTS_PER_MINUTE,
            _ => 600,
        };
        let requests_per_minute = t.integer(
            cx,
            "requests_per_minute",
            1..=max_requests_per_minute,
            500,
            "this daemon's share of the 600 requests/min budget of the parent organization",
        );

        let window = t.duration(cx, "window", secs(5 * MINUTE));
        let window = at_least(cx, t, "window", window, secs(1));
        // Retired: catch-up and backfill windows are sized by what they
        // hold. Still accepted, so configurations written for earlier
        // versions keep working; `check` and the daemon say to remove it.
        if t.has_key("catchup_window") {
            let line = t.line_of_key(cx, "catchup_window");
            cx.notice(
                t.key_path("catchup_window"),
                line,
                "retired, and ignored: catch-up and backfill windows are now sized by what they \
                 hold (about one request per page_size activities, however long the range; \
                 max_window_pages bounds one window); remove the key",
            );
        }
        let _ = t.duration(cx, "catchup_window", secs(HOUR));
        let max_window_pages = t.integer(
            cx,
            "max_window_pages",
            1..=1_000_000,
            1000,
            "pages a catch-up or backfill window may need before it is split",
        );
        let settle_lag = t.duration(cx, "settle_lag", secs(2 * MINUTE));
        let settle_lag = at_least(cx, t, "settle_lag", settle_lag, secs(1));
        let sweep_horizon = t.duration(cx, "sweep_horizon", secs(HOUR));
        let sweep_horizon = at_least(cx, t, "sweep_horizon", sweep_horizon, secs(1));
        let sweep_interval = t.duration(cx, "sweep_interval", secs(10 * MINUTE));
        let sweep_interval = at_least(cx, t, "sweep_interval", sweep_interval, secs(1));
        let initial_lookback = t.duration(cx, "initial_lookback", secs(DAY));
        let poll_interval = t.duration(cx, "poll_interval", secs(MINUTE));
        let poll_interval = at_least(cx, t, "poll_interval", poll_interval, secs(1));
        let page_size = t.integer(cx, "page_size", 1..=5000, 5000, "the API's limit per page");
        // 6 h: longer than a quiet night in a small organization, short
        // enough to notice a disabled feed or revoked key within a shift.
        let no_data_after = t.duration(cx, "no_data_after", secs(6 * HOUR));
        let no_data_after = at_least(cx, t, "no_data_after", no_data_after, secs(1));
        let connect_timeout = t.duration(cx, "connect_timeout", secs(10));
        let connect_timeout = at_least(
            cx,
            t,
            "connect_timeout",
            connect_timeout,
            Duration::from_millis(1),
        );
        let request_timeout = t.duration(cx, "request_timeout", secs(60));
        let request_timeout = at_least(
            cx,
            t,
            "request_timeout",
            request_timeout,
            Duration::from_millis(1),
        );

        let type_example = "[\"claude_chat_created\", \"claude_file_uploaded\"]";
        let activity_types = t.string_list(cx, "activity_types", type_example, check_type_name);
        let exclude_activity_types =
            t.string_list(cx, "exclude_activity_types", type_example, check_type_name);
        let present = |got: &Got<Vec<String>>| !matches!(got, Got::Absent);
        if present(&activity_types) && present(&exclude_activity_types) {
            let line = t.line_of_key(cx, "exclude_activity_types");
            t_error(
                cx,
                t,
                "exclude_activity_types",
                line,
                "activity_types and exclude_activity_types are both set, and the API accepts only one; \
                 keep activity_types to fetch only those types, or exclude_activity_types to fetch \
                 everything else"
                    .to_string(),
            );
        }
        if let Got::Value(list) = &activity_types
            && list.is_empty()
        {
            let line = t.line_of_key(cx, "activity_types");
            t_error(
                cx,
                t,
                "activity_types",
                line,
                "activity_types = [] would fetch nothing; remove the key to fetch every type"
                    .to_string(),
            );
        }
        let organization_ids =
            t.string_list(cx, "organization_ids", "[\"org_...\"]", |id: &Text| {
                id.value
                    .trim()
                    .is_empty()
                    .then(|| "is empty; write an org_... id or an organization UUID".to_string())
            });
        let list = |got: Got<Vec<String>>| match got {
            Got::Value(list) => list,
            _ => Vec::new(),
        };
        let activity_types = list(activity_types);
        let exclude_activity_types = list(exclude_activity_types);
        let organization_ids = list(organization_ids);

        let directory = super::directory::read(cx, t);

        let needs = match (sweep_horizon, settle_lag) {
            (Some(h), Some(l)) => Some(h + l),
            _ => None,
        };
        let source = SourceConfig {
            name: name.unwrap_or_default(),
            base_url: base_url.unwrap_or_default(),
            api_key: api_key.unwrap_or_else(|| SecretString::from(String::new())),
            anthropic_version: anthropic_version.unwrap_or_default(),
            requests_per_minute: requests_per_minute.unwrap_or_default() as u32,
            window: window.unwrap_or_default(),
            max_window_pages: max_window_pages.unwrap_or_default() as u32,
            settle_lag: settle_lag.unwrap_or_default(),
            sweep_horizon: sweep_horizon.unwrap_or_default(),
            sweep_interval: sweep_interval.unwrap_or_default(),
            initial_lookback: initial_lookback.unwrap_or_default(),
            poll_interval: poll_interval.unwrap_or_default(),
            page_size: page_size.unwrap_or_default() as u32,
            activity_types,
            exclude_activity_types,
            organization_ids,
            connect_timeout: connect_timeout.unwrap_or_default(),
            request_timeout: request_timeout.unwrap_or_default(),
            no_data_after: no_data_after.unwrap_or_default(),
            directory,
        };
        (source, needs)
    }

    /// `streams`: which of "activities" and "findings" a sink receives;
    /// `None` when absent (the default depends on `[detections]`).
    fn read_streams(cx: &mut Ctx, t: &mut Table, is_archive: bool) -> Option<Streams> {
        let example = "[\"activities\", \"findings\"]";
        let list = match t.string_list(cx, "streams", example, stream_name) {
            Got::Value(list) => list,
            Got::Absent | Got::Invalid => return None,
        };
        let line = t.line_of_key(cx, "streams");
        if list.is_empty() {
            t_error(
                cx,
                t,
                "streams",
                line,
                format!(
                    "is empty: a sink receives at least one stream; write streams = {example}, or remove the sink"
                ),
            );
            return None;
        }
        let streams = Streams {
            activities: list.iter().any(|s| s == "activities"),
            findings: list.iter().any(|s| s == "findings"),
        };
        if is_archive && streams.findings {
            t_error(
                cx,
                t,
                "streams",
                line,
                "an archive sink keeps only activities (it is evidence of what Anthropic served); \
                 write streams = [\"activities\"] or remove the key, and send findings to another sink"
                    .to_string(),
            );
            return None;
        }
        Some(streams)
    }

    /// Reads one `[[sinks]]` table: its name (empty when missing or invalid),
    /// and the sink when its type is known.
    fn read_sink(cx: &mut Ctx, t: &mut Table) -> (String, Option<SinkConfig>) {
        let name = read_name(cx, t, "archive", "SINKS");
        let sink_type = match t.required_text(cx, "type", "\"file\"") {
            None => None,
            Some(ty) => {
                let found = SINK_TYPES.iter().find(|s| s.name == ty.value);
                if found.is_none() {
                    let valid: Vec<String> =
                        SINK_TYPES.iter().map(|s| format!("{:?}", s.name)).collect();
                    let msg = format!(
                        "unknown sink type {}; valid types: {} (write e.g. type = \"file\")",
                        ty.shown(),
                        valid.join(", ")
                    );
                    text_error(cx, t, "type", &ty, msg);
                }
                found
            }
        };
        // An archive keeps the activities exactly as received: raw only.
        let is_archive = sink_type.is_some_and(|s| s.name == "archive");
        let format = match t.text(cx, "format") {
            Got::Absent if is_archive => Some(Format::Raw),
            Got::Value(text) if is_archive && text.value != "raw" => {
                let msg = format!(
                    "format {} is not possible for an archive sink: it keeps the activities \
                     byte-for-byte as received; remove the key or write format = \"raw\" \
                     (add a file sink for OCSF)",
                    text.shown()
                );
                text_error(cx, t, "format", &text, msg);
                None
            }
            Got::Absent => Some(Format::Ocsf),
            Got::Invalid => None,
            Got::Value(text) => match text.value.as_str() {
                "ocsf" => Some(Format::Ocsf),
                "raw" => Some(Format::Raw),
                "raw+claudit" => Some(Format::RawWithContext),
                _ => {
                    let msg = format!(
                        "unknown format {}; write format = \"ocsf\" (OCSF 1.8.0 events), \
                         format = \"raw\" (activities as received) or format = \"raw+claudit\" \
                         (activities as received plus a claudit object with their directory context)",
                        text.shown()
                    );
                    text_error(cx, t, "format", &text, msg);
                    None
                }
            },
        };
        // Without a known type there are no defaults and no list of valid
        // keys; the type error above is the one to fix first.
        let Some(sink_type) = sink_type else {
            return (name.unwrap_or_default(), None);
        };
        let (events, bytes, linger) = sink_type.batch;
        let max_events = t.integer(cx, "batch_max_events", 1..=1_000_000, events, "");
        let max_bytes = t.size(cx, "batch_max_bytes", bytes);
        let max_bytes = match max_bytes {
            Some(n) if !(1_000..=1 << 30).contains(&n) => {
                let line = t.line_of_key(cx, "batch_max_bytes");
                let msg = format!(
                    "{} is out of range; write a size from 1KB to 1GiB, e.g. batch_max_bytes = \"{}\"",
                    reader::format_size(n),
                    reader::format_size(bytes)
                );
                t_error(cx, t, "batch_max_bytes", line, msg);
                None
            }
            other => other,
        };
        let linger = t.duration(cx, "batch_linger", linger);
        if let Some(l) = linger
            && l > secs(HOUR)
        {
            let line = t.line_of_key(cx, "batch_linger");
            let msg = format!(
                "{} is too long (at most 1h); write e.g. batch_linger = \"1s\"",
                reader::format_duration(l)
            );
            t_error(cx, t, "batch_linger", line, msg);
        }
        let streams = read_streams(cx, t, is_archive);
        let kind = (sink_type.read)(cx, t);
        t.finish(cx);
        let sink = match (name.clone(), format, max_events, max_bytes, linger, kind) {
            (
                Some(name),
                Some(format),
                Some(max_events),
                Some(max_bytes),
                Some(linger),
                Some(kind),
            ) => Some(SinkConfig {
                name,
                format,
                batch: BatchConfig {
                    max_events: max_events as usize,
                    max_bytes: max_bytes as usize,
                    linger,
                },
                kind,
                // Absent: settled once `[detections]` is read (`settle_streams`).
                streams: streams.unwrap_or(Streams {
                    activities: true,
                    findings: false,
                }),
            }),
            _ => None,
        };
        (name.unwrap_or_default(), sink)
    }

    /// The keys of `type = "file"`.
    fn read_file_sink(cx: &mut Ctx, t: &mut Table) -> Option<SinkKind> {
        let path = t.required_path(cx, "path", "\"/var/log/claudit/events.ndjson\"");
        let max_bytes = t.size(cx, "max_bytes", 100_000_000);
        let max_files = t.integer(cx, "max_files", 1..=1000, 10, "rotated files kept");
        Some(SinkKind::File(FileSinkConfig {
            path: path?,
            max_bytes: max_bytes?,
            max_files: max_files? as u32,
        }))
    }

    // ---- archive sink keys --------------------------------------------------

    /// The keys of `type = "archive"`.
    fn read_archive_sink(cx: &mut Ctx, t: &mut Table) -> Option<SinkKind> {
        let backend = match t.required_text(cx, "backend", "\"local\" (or \"s3\")") {
            None => None,
            Some(b) if b.value == "local" || b.value == "s3" => Some(b.value),
            Some(b) => {
                let msg = format!(
                    "unknown archive backend {}; write backend = \"local\" (a directory, with path = ...) \
                     or backend = \"s3\" (with bucket = ...)",
                    b.shown()
                );
                text_error(cx, t, "backend", &b, msg);
                None
            }
        };
        match backend.as_deref() {
            Some("local") => {
                // Keys of the other backend are left unread: `finish` reports them.
                let path = t.required_path(cx, "path", "\"/var/lib/claudit/archive\"");
                Some(SinkKind::Archive(ArchiveSinkConfig {
                    backend: ArchiveBackend::Local { path: path? },
                }))
            }
            Some(_) => {
                let bucket = t.required_text(cx, "bucket", "\"example-claudit-archive\"");
                let bucket = bucket.and_then(|b| {
                    let ok = (3..=63).contains(&b.value.len())
                        && b.value.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'
                        });
                    if ok {
                        Some(b.value)
                    } else {
                        let msg = format!(
                            "{} is not a valid bucket name: 3 to 63 of a-z, 0-9, \"-\" and \".\"",
                            b.shown()
                        );
                        text_error(cx, t, "bucket", &b, msg);
                        None
                    }
                });
                let prefix = match t.text(cx, "prefix") {
                    Got::Absent => Some(String::new()),
                    Got::Invalid => None,
                    Got::Value(p) if p.value.starts_with('/') => {
                        let msg = format!(
                            "prefix {} must not start with \"/\"; write e.g. prefix = \"claudit/\"",
                            p.shown()
                        );
                        text_error(cx, t, "prefix", &p, msg);
                        None
                    }
                    Got::Value(p) if p.value.is_empty() || p.value.ends_with('/') => Some(p.value),
                    Got::Value(p) => Some(format!("{}/", p.value)),
                };
                let region = match t.text(cx, "region") {
                    Got::Absent => Some(
                        std::env::var("AWS_REGION")
                            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                            .unwrap_or_else(|_| "us-east-1".to_string()),
                    ),
                    Got::Invalid => None,
                    Got::Value(r) => Some(r.value),
                };
                let endpoint = match t.text(cx, "endpoint") {
                    Got::Absent => Some(None),
                    Got::Invalid => None,
                    Got::Value(e) => match reqwest::Url::parse(e.value.trim()) {
                        Ok(u) if matches!(u.scheme(), "http" | "https") => {
                            Some(Some(e.value.trim().trim_end_matches('/').to_string()))
                        }
                        _ => {
                            let msg = format!(
                                "endpoint {} is not an http(s) URL; write e.g. endpoint = \"https://minio.example.com:9000\"",
                                e.shown()
                            );
                            text_error(cx, t, "endpoint", &e, msg);
                            None
                        }
                    },
                };
                let mode = match t.text(cx, "object_lock_mode") {
                    Got::Absent => Some(None),
                    Got::Invalid => None,
                    Got::Value(m) => match m.value.as_str() {
                        "compliance" => Some(Some(ObjectLockMode::Compliance)),
                        "governance" => Some(Some(ObjectLockMode::Governance)),
                        _ => {
                            let msg = format!(
                                "unknown object_lock_mode {}; write \"compliance\" (nobody can delete \
                                 before retention ends) or \"governance\" (special permission can)",
                                m.shown()
                            );
                            text_error(cx, t, "object_lock_mode", &m, msg);
                            None
                        }
                    },
                };
                let has_retention = t.has_key("retention");
                let retention = t.duration(cx, "retention", secs(7 * 365 * DAY));
                let object_lock = match (mode, retention) {
                    (Some(Some(mode)), Some(retention)) if !retention.is_zero() => {
                        Some(Some(ObjectLock { mode, retention }))
                    }
                    (Some(Some(_)), Some(_)) => {
                        let line = t.line_of_key(cx, "retention");
                        t_error(
                            cx,
                            t,
                            "retention",
                            line,
                            "must be longer than 0; write e.g. retention = \"7y\"".to_string(),
                        );
                        None
                    }
                    (Some(None), Some(_)) if has_retention => {
                        let line = t.line_of_key(cx, "retention");
                        t_error(cx, t, "retention", line, "retention needs object_lock_mode; add \
                            object_lock_mode = \"compliance\" (or \"governance\"), or remove retention".to_string());
                        None
                    }
                    (Some(None), Some(_)) => Some(None),
                    _ => None,
                };
                Some(SinkKind::Archive(ArchiveSinkConfig {
                    backend: ArchiveBackend::S3(ArchiveS3Config {
                        bucket: bucket?,
                        prefix: prefix?,
                        region: region?,
                        endpoint: endpoint?,
                        object_lock: object_lock?,
                    }),
                }))
            }
            None => None,
        }
    }

    // ---- end of archive sink keys -------------------------------------------

    /// Datadog sites and their domain (`DD_SITE`); intake is
    /// `http-intake.logs.<domain>`, the API `api.<domain>`.
    const DATADOG_SITES: &[(&str, &str)] = &[
        ("US1", "datadoghq.com"),
        ("US3", "us3.datadoghq.com"),
        ("US5", "us5.datadoghq.com"),
        ("EU1", "datadoghq.eu"),
        ("AP1", "ap1.datadoghq.com"),
        ("AP2", "ap2.datadoghq.com"),
        ("UK1", "uk1.datadoghq.com"),
        ("US1-FED", "ddog-gov.com"),
        ("US2-FED", "us2.ddog-gov.com"),
    ];

    /// The keys of `type = "datadog"`.
    fn read_datadog_sink(cx: &mut Ctx, t: &mut Table) -> Option<SinkKind> {
        let site = t.text(cx, "site");
        let url = t.text(cx, "url");
        let example = "site = \"US1\" (or US3, US5, EU1, AP1, AP2, UK1, US1-FED, US2-FED)";
        let base: Option<(String, String)> = match (site, url) {
            (Got::Invalid, _) | (_, Got::Invalid) => None,
            (Got::Value(s), Got::Value(_)) => {
                text_error(
                    cx,
                    t,
                    "site",
                    &s,
                    "both site and url are set; keep exactly one (url is for a proxy or a test server)"
                        .to_string(),
                );
                None
            }
            (Got::Absent, Got::Absent) => {
                let msg = format!("missing; add {example}, or url = \"https://...\" for a proxy");
                t_error(cx, t, "site", t.line, msg);
                None
            }
            (Got::Value(s), Got::Absent) => {
                let wanted = s.value.trim();
                let found = DATADOG_SITES.iter().find(|(code, domain)| {
                    code.eq_ignore_ascii_case(wanted) || domain.eq_ignore_ascii_case(wanted)
                });
                match found {
                    Some((_, domain)) => Some((
                        format!("https://http-intake.logs.{domain}/api/v2/logs"),
                        format!("https://api.{domain}/api/v1/validate"),
                    )),
                    None => {
                        let msg = format!(
                            "unknown Datadog site {}; write {example}; the site is in your Datadog URL \
                             (app.datadoghq.eu is EU1)",
                            s.shown()
                        );
                        text_error(cx, t, "site", &s, msg);
                        None
                    }
                }
            }
            (Got::Absent, Got::Value(u)) => {
                match check_sink_url(&u, "url", "\"https://logs-proxy.example.com\"") {
                    Ok(base) => Some((
                        format!("{base}/api/v2/logs"),
                        format!("{base}/api/v1/validate"),
                    )),
                    Err(msg) => {
                        text_error(cx, t, "url", &u, msg);
                        None
                    }
                }
            }
        };
        let api_key = t.header_secret(cx, "api_key", "DD_API_KEY", "/run/secrets/datadog_api_key");
        let ddsource = optional_text(cx, t, "ddsource", "claude-compliance-logs");
        let service = optional_text(cx, t, "service", "claudit");
        let ddtags = optional_text(cx, t, "ddtags", "");
        let hostname = optional_text(cx, t, "hostname", "");
        let http = read_http(cx, t);
        let (intake_url, validate_url) = base?;
        Some(SinkKind::Datadog(DatadogSinkConfig {
            intake_url,
            validate_url,
            api_key: api_key?,
            ddsource: ddsource?,
            service: service?,
            ddtags: ddtags?,
            hostname: Some(hostname?).filter(|h| !h.is_empty()),
            http: http?,
        }))
    }

    /// The keys of `type = "sentinel"`.
    fn read_sentinel_sink(cx: &mut Ctx, t: &mut Table) -> Option<SinkKind> {
        let endpoint = t
            .required_text(
                cx,
                "endpoint",
                "\"https://my-dce-abcd.eastus-1.ingest.monitor.azure.com\"",
            )
            .and_then(|u| {
                check_sink_url(
                    &u,
                    "endpoint",
                    "\"https://my-dce-abcd.eastus-1.ingest.monitor.azure.com\"",
                )
                .map_err(|msg| text_error(cx, t, "endpoint", &u, msg))
                .ok()
            });
        let dcr_immutable_id = required_word(
            cx,
            t,
            "dcr_immutable_id",
            "\"dcr-000a00a000a00000a000000aa000a0aa\" (the DCR's immutableId, in its JSON view)",
        );
        let stream = required_word(
            cx,
            t,
            "stream",
            "\"Custom-ClaudeCompliance_CL\" (a streamDeclarations name of the DCR)",
        );
        let tenant_id = required_word(
            cx,
            t,
            "tenant_id",
            "\"00000000-0000-0000-0000-000000000000\" (Directory (tenant) ID of the app registration)",
        );
        let client_id = required_word(
            cx,
            t,
            "client_id",
            "\"00000000-0000-0000-0000-000000000000\" (Application (client) ID of the app registration)",
        );
        let client_secret = t.secret(
            cx,
            "client_secret",
            "AZURE_CLIENT_SECRET",
            "/run/secrets/azure_client_secret",
        );
        let authority = match t.text(cx, "authority") {
            Got::Absent => Some("https://login.microsoftonline.com".to_string()),
            Got::Invalid => None,
            Got::Value(u) => {
                check_sink_url(&u, "authority", "\"https://login.microsoftonline.com\"")
                    .map_err(|msg| text_error(cx, t, "authority", &u, msg))
                    .ok()
            }
        };
        let scope = optional_text(cx, t, "scope", "https://monitor.azure.com//.default");
        let http = read_http(cx, t);
        Some(SinkKind::Sentinel(SentinelSinkConfig {
            endpoint: endpoint?,
            dcr_immutable_id: dcr_immutable_id?,
            stream: stream?,
            tenant_id: tenant_id?,
            client_id: client_id?,
            client_secret: client_secret?,
            authority: authority?,
            scope: scope?,
            http: http?,
        }))
    }

    /// An optional string; `default` when absent.
    fn optional_text(cx: &mut Ctx, t: &mut Table, key: &str, default: &str) -> Option<String> {
        match t.text(cx, key) {
            Got::Absent => Some(default.to_string()),
            Got::Invalid => None,
            Got::Value(v) => Some(v.value),
        }
    }

    /// A required identifier that goes into a URL path: non-empty, no
    /// spaces, slashes, `?` or `#`.
    fn required_word(cx: &mut Ctx, t: &mut Table, key: &str, example: &str) -> Option<String> {
        let text = t.required_text(cx, key, example)?;
        let ok = !text.value.is_empty()
            && text
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Some(text.value)
        } else {
            let msg = format!(
                "{} is not valid here (letters, digits, \"-\", \"_\" and \".\" only); write e.g. {key} = {example}",
                text.shown()
            );
            text_error(cx, t, key, &text, msg);
            None
        }
    }

    /// A sink's base URL: https (plain http only to 127.0.0.1 or localhost,
    /// since a key travels with every request), no credentials, query or
    /// fragment. Returned without a trailing slash.
    fn check_sink_url(text: &Text, key: &str, example: &str) -> Result<String, String> {
        let fix = format!("write e.g. {key} = {example}");
        let url = reqwest::Url::parse(text.value.trim())
            .map_err(|e| format!("{} is not a URL ({e}); {fix}", text.shown()))?;
        let host = url.host_str().unwrap_or_default();
        match url.scheme() {
            "https" => {}
            "http" if matches!(host, "127.0.0.1" | "localhost" | "[::1]") => {}
            "http" => {
                return Err(format!(
                    "plain http is allowed only for 127.0.0.1 or localhost (tests), since a key or \
                     token travels in every request; use https, {fix}"
                ));
            }
            scheme => return Err(format!("scheme {scheme:?} is not supported; {fix}")),
        }
        if host.is_empty() {
            return Err(format!("{} has no host; {fix}", text.shown()));
        }
        if url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(format!(
                "{key} must not carry credentials, a query or a fragment (credentials go in the \
                 sink's key, token or password settings); {fix}"
            ));
        }
        Ok(text.value.trim().trim_end_matches('/').to_string())
    }

    /// The keys of `type = "splunk_hec"`.
    fn read_splunk_hec_sink(cx: &mut Ctx, t: &mut Table) -> Option<SinkKind> {
        let example = "\"https://splunk.example.com:8088\"";
        let url =
            t.required_text(cx, "url", example)
                .and_then(|text| match check_splunk_url(&text) {
                    Ok(url) => Some(url),
                    Err(msg) => {
                        text_error(cx, t, "url", &text, msg);
                        None
                    }
                });
        let token = t.header_secret(
            cx,
            "token",
            "SPLUNK_HEC_TOKEN",
            "/run/secrets/splunk_hec_token",
        );
        let host = optional_label(cx, t, "host");
        let source = optional_label(cx, t, "source");
        let sourcetype = optional_label(cx, t, "sourcetype");
        let index = optional_label(cx, t, "index");
        let fields = read_string_fields(cx, t, |_| None);
        let ack = t.boolean(cx, "ack", false);
        let ack_poll_interval = t.duration(cx, "ack_poll_interval", secs(5));
        let ack_poll_interval = at_least(
            cx,
            t,
            "ack_poll_interval",
            ack_poll_interval,
            Duration::from_millis(1),
        );
        let ack_timeout = t.duration(cx, "ack_timeout", secs(5 * MINUTE));
        let ack_timeout = at_least(cx, t, "ack_timeout", ack_timeout, Duration::from_millis(1));
        let http = read_http(cx, t);
        Some(SinkKind::SplunkHec(SplunkHecSinkConfig {
            url: url?,
            token: token?,
            host: host?,
            source: source?.unwrap_or_else(|| "claudit".to_string()),
            sourcetype: sourcetype?.unwrap_or_else(|| "anthropic:claude:compliance".to_string()),
            index: index?,
            fields: fields?,
            ack: ack?,
            ack_poll_interval: ack_poll_interval?,
            ack_timeout: ack_timeout?,
            http: http?,
        }))
    }

    /// `url` of a splunk_hec sink: http(s), no credentials, query or the
    /// `/services/collector` path (claudit adds the endpoint paths itself).
    fn check_splunk_url(text: &Text) -> Result<String, String> {
        let fix = "write the base URL, e.g. url = \"https://splunk.example.com:8088\" \
                   (Splunk Cloud: \"https://http-inputs-<stack>.splunkcloud.com\")";
        let url = reqwest::Url::parse(text.value.trim())
            .map_err(|e| format!("{} is not a URL ({e}); {fix}", text.shown()))?;
        let host = url.host_str().unwrap_or_default();
        match url.scheme() {
            "https" => {}
            "http" if matches!(host, "127.0.0.1" | "localhost" | "[::1]") => {}
            "http" => {
                return Err(format!(
                    "plain http is allowed only for 127.0.0.1 or localhost, since the HEC token \
                     travels in every request; enable SSL on HEC (the default) and use https, or \
                     trust its certificate with tls_ca_file; {fix}"
                ));
            }
            scheme => return Err(format!("scheme {scheme:?} is not supported; {fix}")),
        }
        if host.is_empty() {
            return Err(format!("{} has no host; {fix}", text.shown()));
        }
        if url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(format!(
                "url must not carry credentials, a query or a fragment (the token goes in token \
                 or token_file); {fix}"
            ));
        }
        let base = text.value.trim().trim_end_matches('/');
        if url.path().contains("/services/collector") {
            return Err(format!(
                "url must not include the /services/collector path (claudit adds \
                 /services/collector/event, /ack and /health itself); {fix}"
            ));
        }
        Ok(base.to_string())
    }

    /// The keys of `type = "sumo"`.
    fn read_sumo_sink(cx: &mut Ctx, t: &mut Table) -> Option<SinkKind> {
        let url = t.secret(cx, "url", "SUMO_HTTP_SOURCE_URL", "/run/secrets/sumo_url");
        let url = url.and_then(|url| {
            use secrecy::ExposeSecret;
            match check_sumo_url(url.expose_secret()) {
                Ok(()) => Some(url),
                Err(msg) => {
                    // The URL is the credential: the message never shows it.
                    let line = t.line_of_key(cx, "url");
                    t_error(cx, t, "url", line, msg);
                    None
                }
            }
        });
        let category = optional_label(cx, t, "category");
        let source_name = optional_label(cx, t, "source_name");
        let source_host = optional_label(cx, t, "source_host");
        // X-Sumo-Fields is "k1=v1,k2=v2": "," and "=" cannot be escaped.
        let fields = read_string_fields(cx, t, |s| {
            s.contains([',', '=']).then(|| {
                "must not contain \",\" or \"=\" (X-Sumo-Fields is k1=v1,k2=v2)".to_string()
            })
        });
        let http = read_http(cx, t);
        Some(SinkKind::Sumo(SumoSinkConfig {
            url: url?,
            category: category?,
            source_name: source_name?,
            source_host: source_host?,
            fields: fields?,
            http: http?,
        }))
    }

    /// The keys of `type = "syslog"`.
    fn read_syslog_sink(cx: &mut Ctx, t: &mut Table) -> Option<SinkKind> {
        use crate::sinks::syslog::{self, SyslogConfig, TlsFiles, Transport};
        let address = t
            .required_text(cx, "address", "\"collector.example.com:6514\"")
            .and_then(|text| match check_syslog_address(&text.value) {
                Ok(host) => Some((text.value.trim().to_string(), host)),
                Err(msg) => {
                    text_error(cx, t, "address", &text, msg);
                    None
                }
            });
        let transport = match t.text(cx, "transport") {
            Got::Absent => Some(Transport::Tls),
            Got::Invalid => None,
            Got::Value(text) => match text.value.as_str() {
                "tls" => Some(Transport::Tls),
                "tcp" => Some(Transport::Tcp),
                _ => {
                    let msg = format!(
                        "unknown transport {}; write transport = \"tls\" (RFC 5425, the \
                         default) or transport = \"tcp\" (plain, readable on the network)",
                        text.shown()
                    );
                    text_error(cx, t, "transport", &text, msg);
                    None
                }
            },
        };
        let path = |cx: &mut Ctx, t: &mut Table, key: &str| match t.path(cx, key) {
            Got::Value(p) => Some(Some(p)),
            Got::Absent => Some(None),
            Got::Invalid => None,
        };
        let ca_file = path(cx, t, "tls_ca_file");
        let client_cert_file = path(cx, t, "tls_client_cert_file");
        let client_key_file = path(cx, t, "tls_client_key_file");
        let server_name = optional_label(cx, t, "tls_server_name");
        let tls = match (ca_file, client_cert_file, client_key_file, server_name) {
            (Some(ca_file), Some(client_cert_file), Some(client_key_file), Some(server_name)) => {
                let mut ok = true;
                if client_cert_file.is_some() != client_key_file.is_some() {
                    let key = if client_cert_file.is_some() {
                        "tls_client_key_file"
                    } else {
                        "tls_client_cert_file"
                    };
                    let line = t.line_of_key(cx, "tls_client_cert_file");
                    let msg = "missing: tls_client_cert_file and tls_client_key_file go \
                               together (the certificate chain and its private key, PEM)"
                        .to_string();
                    t_error(cx, t, key, line, msg);
                    ok = false;
                }
                let tls = TlsFiles {
                    ca_file,
                    client_cert_file,
                    client_key_file,
                    server_name,
                };
                let set = [
                    ("tls_ca_file", tls.ca_file.is_some()),
                    ("tls_client_cert_file", tls.client_cert_file.is_some()),
                    ("tls_client_key_file", tls.client_key_file.is_some()),
                    ("tls_server_name", tls.server_name.is_some()),
                ];
                if transport == Some(Transport::Tcp)
                    && let Some((key, _)) = set.iter().find(|(_, on)| *on)
                {
                    let line = t.line_of_key(cx, key);
                    let msg =
                        format!("{key} applies only to transport = \"tls\"; remove it or use TLS");
                    t_error(cx, t, key, line, msg);
                    ok = false;
                }
                ok.then_some(tls)
            }
            _ => None,
        };
        let facility = syslog_code(cx, t, "facility", syslog::FACILITIES, "audit");
        let severity = syslog_code(cx, t, "severity", syslog::SEVERITIES, "info");
        let hostname = optional_label(cx, t, "hostname").and_then(|h| match h {
            Some(name) => match syslog::header_field_problem(&name, syslog::MAX_HOSTNAME) {
                None => Some(Some(name)),
                Some(problem) => {
                    let line = t.line_of_key(cx, "hostname");
                    t_error(
                        cx,
                        t,
                        "hostname",
                        line,
                        format!("{problem}; write e.g. hostname = \"claudit-01\""),
                    );
                    None
                }
            },
            None => Some(None),
        });
        let app_name = optional_label(cx, t, "app_name").and_then(|a| {
            let name = a.unwrap_or_else(|| "claudit".to_string());
            match syslog::header_field_problem(&name, syslog::MAX_APP_NAME) {
                None => Some(name),
                Some(problem) => {
                    let line = t.line_of_key(cx, "app_name");
                    t_error(
                        cx,
                        t,
                        "app_name",
                        line,
                        format!("{problem}; write e.g. app_name = \"claudit\""),
                    );
                    None
                }
            }
        });
        let structured_data_id = match t.text(cx, "structured_data_id") {
            Got::Absent => Some(Some("claudit@32473".to_string())),
            Got::Invalid => None,
            Got::Value(text) if text.value.is_empty() => Some(None),
            Got::Value(text) => match syslog::sd_id_problem(&text.value) {
                None => Some(Some(text.value)),
                Some(problem) => {
                    let msg = format!(
                        "{problem}; write e.g. structured_data_id = \"claudit@32473\", or \"\" for \
                         no structured data"
                    );
                    text_error(cx, t, "structured_data_id", &text, msg);
                    None
                }
            },
        };
        let max_message_bytes = sized(
            cx,
            t,
            "max_message_bytes",
            8192,
            syslog::MIN_MESSAGE_BYTES as u64..=64 << 20,
        );
        let resend_window = sized(cx, t, "resend_window", 8 << 20, 0..=1 << 30);
        let connect_timeout = t.duration(cx, "connect_timeout", secs(10));
        let connect_timeout = at_least(
            cx,
            t,
            "connect_timeout",
            connect_timeout,
            Duration::from_millis(1),
        );
        let write_timeout = t.duration(cx, "write_timeout", secs(30));
        let write_timeout = at_least(
            cx,
            t,
            "write_timeout",
            write_timeout,
            Duration::from_millis(1),
        );
        let (address, host) = address?;
        Some(SinkKind::Syslog(SyslogConfig {
            address,
            host,
            transport: transport?,
            tls: tls?,
            facility: facility?,
            severity: severity?,
            hostname: hostname?,
            app_name: app_name?,
            structured_data_id: structured_data_id?,
            max_message_bytes: max_message_bytes? as usize,
            resend_window: resend_window? as usize,
            connect_timeout: connect_timeout?,
            write_timeout: write_timeout?,
        }))
    }

    /// `host:port` (`[v6]:port`) of a syslog collector: the host part, or
    /// what is wrong.
    fn check_syslog_address(value: &str) -> Result<String, String> {
        let fix = "write host:port, e.g. address = \"collector.example.com:6514\" (6514 is \
                   syslog over TLS, RFC 5425)";
        let value = value.trim();
        let Some((host, port)) = value.rsplit_once(':') else {
            return Err(format!("has no port; {fix}"));
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty()
            || host.contains(['/', ' '])
            || (host.contains(':') && !value.starts_with('['))
        {
            return Err(format!("is not a host and a port; {fix}"));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => Ok(host.to_string()),
            _ => Err(format!("{port:?} is not a port number; {fix}")),
        }
    }

    /// A facility or severity by its name, `default` when absent.
    fn syslog_code(
        cx: &mut Ctx,
        t: &mut Table,
        key: &str,
        names: &[(&str, u8)],
        default: &str,
    ) -> Option<u8> {
        let find = |name: &str| names.iter().find(|(n, _)| *n == name).map(|&(_, c)| c);
        match t.text(cx, key) {
            Got::Absent => find(default),
            Got::Invalid => None,
            Got::Value(text) => match find(&text.value) {
                Some(code) => Some(code),
                None => {
                    let valid: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                    let msg = format!(
                        "unknown {key} {}; write one of {} (e.g. {key} = \"{default}\")",
                        text.shown(),
                        valid.join(", ")
                    );
                    text_error(cx, t, key, &text, msg);
                    None
                }
            },
        }
    }

    /// A size in `range`, `default` when absent.
    fn sized(
        cx: &mut Ctx,
        t: &mut Table,
        key: &str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Option<u64> {
        match t.size(cx, key, default) {
            Some(n) if !range.contains(&n) => {
                let line = t.line_of_key(cx, key);
                let msg = format!(
                    "{} is out of range; write a size from {} to {}, e.g. {key} = \"{}\"",
                    reader::format_size(n),
                    reader::format_size(*range.start()),
                    reader::format_size(*range.end()),
                    reader::format_size(default)
                );
                t_error(cx, t, key, line, msg);
                None
            }
            other => other,
        }
    }

    /// The keys of `type = "webhook"`.
    fn read_webhook_sink(cx: &mut Ctx, t: &mut Table) -> Option<SinkKind> {
        use crate::sinks::webhook::{self, WebhookConfig};
        use secrecy::ExposeSecret;
        let url = t.secret(cx, "url", "WEBHOOK_URL", "/run/secrets/webhook_url");
        let url = url.and_then(|url| match check_webhook_url(url.expose_secret()) {
            Ok(()) => Some(url),
            Err(msg) => {
                // The URL can be a credential: the message never shows it.
                let line = t.line_of_key(cx, "url");
                t_error(cx, t, "url", line, msg);
                None
            }
        });
        let secret = t.secret(
            cx,
            "secret",
            "WEBHOOK_SECRET",
            "/run/secrets/webhook_secret",
        );
        let secret = secret.and_then(|s| match webhook::decode_secret(s.expose_secret()) {
            Ok(_) => Some(secrecy::SecretString::from(
                s.expose_secret().trim().to_string(),
            )),
            Err(msg) => {
                let line = t.line_of_key(cx, "secret");
                t_error(cx, t, "secret", line, msg);
                None
            }
        });
        // The sink's name keeps two sinks' ids apart at one receiver.
        let name = match t.text(cx, "name") {
            Got::Value(text) => text.value,
            _ => String::new(),
        };
        let id_prefix = match t.text(cx, "id_prefix") {
            Got::Absent => Some(format!("claudit-{name}")),
            Got::Invalid => None,
            Got::Value(text) => {
                let ok = !text.value.is_empty()
                    && text.value.len() <= 64
                    && text
                        .value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                if ok {
                    Some(text.value)
                } else {
                    let msg = "must be 1 to 64 of A-Z, a-z, 0-9, _, - and .; write e.g. \
                               id_prefix = \"claudit-eu1\""
                        .to_string();
                    text_error(cx, t, "id_prefix", &text, msg);
                    None
                }
            }
        };
        let max_request_bytes = sized(cx, t, "max_request_bytes", 1_000_000, 1_000..=1 << 30);
        let http = read_http_with(cx, t, false);
        Some(SinkKind::Webhook(WebhookConfig {
            url: url?,
            secret: secret?,
            id_prefix: id_prefix?,
            max_request_bytes: max_request_bytes? as usize,
            http: http?,
        }))
    }

    /// What is wrong with a webhook URL, in words that never quote it.
    fn check_webhook_url(url: &str) -> Result<(), String> {
        let fix = "write the receiver's https URL, e.g. url = \"${WEBHOOK_URL}\"";
        let parsed = reqwest::Url::parse(url.trim())
            .map_err(|_| format!("the webhook URL is not a valid URL; {fix}"))?;
        let local = matches!(
            parsed.host_str().unwrap_or_default(),
            "127.0.0.1" | "localhost" | "[::1]"
        );
        match parsed.scheme() {
            "https" => Ok(()),
            "http" if local => Ok(()),
            _ => Err(format!(
                "the webhook URL must use https (plain http only to 127.0.0.1 or localhost): \
                 the events and their signatures would cross the network readable; {fix}"
            )),
        }
    }

    /// A base URL on this machine (127.0.0.1, localhost, [::1]): the simulator.
    fn is_loopback_url(url: &str) -> bool {
        reqwest::Url::parse(url).is_ok_and(|u| {
            matches!(
                u.host_str().unwrap_or_default(),
                "127.0.0.1" | "localhost" | "[::1]"
            )
        })
    }

    /// What is wrong with a Sumo HTTP source URL, in words that never quote it.
    fn check_sumo_url(url: &str) -> Result<(), String> {
        let fix = "copy the URL again from the HTTP source's settings in Sumo Logic \
                   (https://collectors.<deployment>.sumologic.com/receiver/v1/http/...)";
        let parsed = reqwest::Url::parse(url.trim())
            .map_err(|_| format!("the sumo URL is not a valid URL; {fix}"))?;
        let local = matches!(
            parsed.host_str().unwrap_or_default(),
            "127.0.0.1" | "localhost" | "[::1]"
        );
        match parsed.scheme() {
            "https" => Ok(()),
            "http" if local => Ok(()),
            _ => Err(format!(
                "the sumo URL must use https (it carries the source's credential); {fix}"
            )),
        }
    }

    /// An optional non-empty string key.
    fn optional_label(cx: &mut Ctx, t: &mut Table, key: &str) -> Option<Option<String>> {
        match t.text(cx, key) {
            Got::Absent => Some(None),
            Got::Invalid => None,
            Got::Value(text) if text.value.trim().is_empty() => {
                let msg = format!("is empty; remove {key} or give it a value");
                text_error(cx, t, key, &text, msg);
                None
            }
            Got::Value(text) => Some(Some(text.value)),
        }
    }

    /// The optional `[sinks.fields]` table of string values; `check` says
    /// what is wrong with a key or value.
    fn read_string_fields(
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
    fn read_http(cx: &mut Ctx, t: &mut Table) -> Option<HttpSinkConfig> {
        read_http_with(cx, t, true)
    }

    /// [`read_http`] with the sink type's default for `compression`.
    fn read_http_with(
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

    /// The keys of `type = "elasticsearch"`.
    fn read_elasticsearch_sink(cx: &mut Ctx, t: &mut Table) -> Option<SinkKind> {
        const URL_EXAMPLE: &str = "\"https://es.example.com:9200\"";
        let url = t.required_text(cx, "url", URL_EXAMPLE).and_then(|text| {
            check_sink_url(&text, "url", URL_EXAMPLE)
                .map_err(|msg| text_error(cx, t, "url", &text, msg))
                .ok()
        });
        let index = t
            .required_text(cx, "index", "\"logs-claudit.ocsf-default\"")
            .and_then(|text| match check_index_name(&text.value) {
                None => Some(text.value),
                Some(msg) => {
                    text_error(cx, t, "index", &text, msg);
                    None
                }
            });
        // Basic auth when a username is given, an API key otherwise; never both.
        let auth = match t.text(cx, "username") {
            Got::Invalid => None,
            Got::Value(user) if user.value.is_empty() => {
                let msg = "is empty; write the user name, or remove it and use api_key".to_string();
                text_error(cx, t, "username", &user, msg);
                None
            }
            Got::Value(user) => {
                let key_set = !matches!(t.text(cx, "api_key"), Got::Absent)
                    || !matches!(t.text(cx, "api_key_file"), Got::Absent);
                if key_set {
                    let line = t.line_of_key(cx, "api_key");
                    let msg = "both api_key and username are set; keep api_key (recommended) \
                               or username with password, not both"
                        .to_string();
                    t_error(cx, t, "api_key", line, msg);
                }
                let password = t.secret(
                    cx,
                    "password",
                    "ELASTICSEARCH_PASSWORD",
                    "/etc/claudit/elasticsearch.password",
                );
                match (key_set, password) {
                    (false, Some(password)) => Some(ElasticsearchAuth::Basic {
                        username: user.value,
                        password,
                    }),
                    _ => None,
                }
            }
            Got::Absent => t
                .header_secret(
                    cx,
                    "api_key",
                    "ELASTICSEARCH_API_KEY",
                    "/etc/claudit/elasticsearch.api_key",
                )
                .map(ElasticsearchAuth::ApiKey),
        };
        let max_request_bytes = t.size(cx, "max_request_bytes", 5_000_000);
        let max_request_bytes = match max_request_bytes {
            Some(n) if !(10_000..=1 << 30).contains(&n) => {
                let line = t.line_of_key(cx, "max_request_bytes");
                let msg = format!(
                    "{} is out of range; write a size from 10KB to 1GiB, below the cluster's \
                     http.max_content_length (default 100MB), e.g. max_request_bytes = \"5MB\"",
                    reader::format_size(n)
                );
                t_error(cx, t, "max_request_bytes", line, msg);
                None
            }
            other => other,
        };
        let http = read_http(cx, t);
        Some(SinkKind::Elasticsearch(ElasticsearchSinkConfig {
            url: url?,
            index: index?,
            auth: auth?,
            max_request_bytes: max_request_bytes? as usize,
            http: http?,
        }))
    }

    /// Elasticsearch's index name rules: lowercase, at most 255 bytes, none of
    /// `\ / * ? " < > | , #`, space or `:`, not starting with `-`, `_` or
    /// `+`, not `.` or `..`.
    fn check_index_name(name: &str) -> Option<String> {
        let fix =
            "write e.g. index = \"logs-claudit.ocsf-default\" (a data stream) or \"claudit-ocsf\"";
        let bad_char = name
            .chars()
            .find(|c| c.is_uppercase() || "\\/*?\"<>|,# :".contains(*c));
        let problem = if name.is_empty() {
            Some("is empty".to_string())
        } else if name.len() > 255 {
            Some("is longer than 255 bytes".to_string())
        } else if name == "." || name == ".." {
            Some("cannot be . or ..".to_string())
        } else if name.starts_with(['-', '_', '+']) {
            Some("cannot start with -, _ or +".to_string())
        } else {
            bad_char.map(|c| {
                format!(
                    "contains {c:?} (index names are lowercase, without \\ / * ? \" < > | , # : or spaces)"
                )
            })
        };
        problem.map(|p| format!("index name {name:?} {p}; {fix}"))
    }

    fn read_enrich(cx: &mut Ctx, root: &mut Table) -> EnrichConfig {
        let mut t = root.subtable(cx, "enrich");
        let geoip_city_db = t.path(cx, "geoip_city_db");
        let geoip_asn_db = t.path(cx, "geoip_asn_db");
        let cache = t.integer(
            cx,
            "user_agent_cache_size",
            0..=10_000_000,
            10_000,
            "0 disables the cache",
        );
        t.finish(cx);
        EnrichConfig {
            geoip_city_db: match geoip_city_db {
                Got::Value(p) => Some(p),
                _ => None,
            },
            geoip_asn_db: match geoip_asn_db {
                Got::Value(p) => Some(p),
                _ => None,
            },
            user_agent_cache_size: cache.unwrap_or_default() as usize,
        }
    }

    fn read_ocsf(cx: &mut Ctx, root: &mut Table) -> OcsfConfig {
        let mut t = root.subtable(cx, "ocsf");
        let include_raw_data = t.boolean(cx, "include_raw_data", false);
        let mut severity_table = t.subtable(cx, "severity");
        let mut severity = HashMap::new();
        for (activity_type, id, line) in severity_table.integer_entries(cx, "3") {
            if (0..=6).contains(&id) || id == 99 {
                severity.insert(activity_type, id as u8);
            } else {
                let msg = format!(
                    "OCSF severity_id must be 0 to 6 or 99 (0 unknown, 1 informational, 2 low, \
                     3 medium, 4 high, 5 critical, 6 fatal, 99 other); write e.g. {activity_type} = 3"
                );
                t_error(cx, &severity_table, &activity_type, line, msg);
            }
        }
        severity_table.finish(cx);
        t.finish(cx);
        OcsfConfig {
            severity,
            include_raw_data: include_raw_data.unwrap_or_default(),
        }
    }

    /// The `name` of a source or sink: required, `[a-z0-9_-]+`. Enables
    /// `CLAUDIT_<SECTION>__<NAME>__<KEY>` overrides for the entry.
    fn read_name(cx: &mut Ctx, t: &mut Table, example: &str, section: &str) -> Option<String> {
        let text = t.required_text(cx, "name", &format!("\"{example}\""))?;
        let name = text.value;
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid {
            let mut suggestion: String = name
                .to_ascii_lowercase()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .take(64)
                .collect();
            if suggestion.is_empty() {
                suggestion = example.to_string();
            }
            let msg = format!(
                "{:?} is not a valid name: use 1 to 64 of a-z, 0-9, \"_\" and \"-\"; write e.g. name = {suggestion:?}",
                name
            );
            t_error(cx, t, "name", text.line, msg);
            return None;
        }
        let env_name = name.to_ascii_uppercase().replace('-', "_");
        t.set_env_prefix(format!("{ENV_PREFIX}{section}__{env_name}__"));
        Some(name)
    }

    fn check_base_url(text: &Text) -> Result<String, String> {
        let fix = format!("write e.g. base_url = \"{DEFAULT_BASE_URL}\"");
        let url = reqwest::Url::parse(&text.value)
            .map_err(|e| format!("{} is not a URL ({e}); {fix}", text.shown()))?;
        let host = url.host_str().unwrap_or_default();
        match url.scheme() {
            "https" => {}
            "http" if matches!(host, "127.0.0.1" | "localhost" | "[::1]") => {}
            "http" => {
                return Err(format!(
                    "plain http is allowed only for 127.0.0.1 or localhost (the simulator), since the \
                     API key travels in every request; use https, {fix}"
                ));
            }
            scheme => return Err(format!("scheme {scheme:?} is not supported; {fix}")),
        }
        if host.is_empty() {
            return Err(format!("{} has no host; {fix}", text.shown()));
        }
        if url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(format!(
                "base_url must not carry credentials, a query or a fragment; {fix}"
            ));
        }
        Ok(text.value.trim_end_matches('/').to_string())
    }

    /// Activity type names look like `claude_chat_created`. Unknown names are
    /// allowed (new types appear without notice); malformed ones are not.
    fn check_type_name(item: &Text) -> Option<String> {
        let ok = !item.value.is_empty()
            && item
                .value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        (!ok).then(|| {
            format!(
                "{} is not an activity type name; names look like \"claude_chat_created\"",
                item.shown()
            )
        })
    }

    /// A duration that must be at least `min`.
    fn at_least(
        cx: &mut Ctx,
        t: &Table,
        key: &str,
        value: Option<Duration>,
        min: Duration,
    ) -> Option<Duration> {
        let value = value?;
        if value >= min {
            return Some(value);
        }
        let line = t.line_of_key(cx, key);
        let msg = format!(
            "{} is too short; write at least {key} = \"{}\"",
            reader::format_duration(value),
            reader::format_duration(min)
        );
        t_error(cx, t, key, line, msg);
        None
    }

    /// A problem with a string value, naming the override that set it.
    fn text_error(cx: &mut Ctx, t: &Table, key: &str, text: &Text, message: String) {
        let message = match &text.set_by {
            Some(var) => format!("(set by {var}) {message}"),
            None => message,
        };
        cx.error(t.key_path(key), text.line, message);
    }

    fn t_error(cx: &mut Ctx, t: &Table, key: &str, line: Option<usize>, message: String) {
        cx.error(t.key_path(key), line, message);
    }
}

#[cfg(test)]
mod tests {
    use super::reader::{closest, edit_distance, expand, format_duration, format_size, parse_size};
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/c".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expand_variables_and_escapes() {
        assert_eq!(expand("plain", &env).unwrap(), ("plain".to_string(), false));
        assert_eq!(
            expand("${HOME}/x", &env).unwrap(),
            ("/home/c/x".to_string(), true)
        );
        assert_eq!(
            expand("a${HOME}b${HOME}c", &env).unwrap().0,
            "a/home/cb/home/cc"
        );
        assert_eq!(
            expand("$${HOME}", &env).unwrap(),
            ("${HOME}".to_string(), false)
        );
        // Read left to right: a lone "$", then the "$${" escape.
        assert_eq!(expand("$$${HOME}", &env).unwrap().0, "$${HOME}");
        assert_eq!(
            expand("cost $5 $HOME $", &env).unwrap().0,
            "cost $5 $HOME $"
        );
        assert_eq!(expand("${EMPTY}", &env).unwrap(), (String::new(), true));
        assert!(
            expand("${NOPE}", &env)
                .unwrap_err()
                .contains("NOPE is not set")
        );
        assert!(
            expand("${HOME", &env)
                .unwrap_err()
                .contains("without a closing")
        );
        assert!(
            expand("${}", &env)
                .unwrap_err()
                .contains("not a valid variable name")
        );
        assert!(
            expand("${1X}", &env)
                .unwrap_err()
                .contains("not a valid variable name")
        );
        assert!(
            expand("${A-B}", &env)
                .unwrap_err()
                .contains("not a valid variable name")
        );
    }

    #[test]
    fn expansion_is_not_recursive() {
        let env = |name: &str| (name == "A").then(|| "${B}".to_string());
        assert_eq!(expand("${A}", &env).unwrap().0, "${B}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_size("100 mb"), Ok(100_000_000));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("7B"), Ok(7));
        assert_eq!(parse_size(" 1 TB "), Ok(1_000_000_000_000));
        assert!(parse_size("").is_err());
        assert!(parse_size("MB").is_err());
        assert!(parse_size("1.5MB").unwrap_err().contains("unknown unit"));
        assert!(parse_size("-1").is_err());
        assert!(parse_size("100MBB").unwrap_err().contains("unknown unit"));
        assert!(
            parse_size("99999999999999999999")
                .unwrap_err()
                .contains("too large")
        );
        assert!(parse_size("20000000TiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn sizes_are_shown_as_written() {
        assert_eq!(format_size(100_000_000), "100MB");
        assert_eq!(format_size(4 << 20), "4MiB");
        assert_eq!(format_size(4_000_000), "4MB");
        assert_eq!(format_size(1536), "1536");
        assert_eq!(format_size(3 << 30), "3GiB");
        assert_eq!(format_size(0), "0");
        for n in [0, 1, 999, 1000, 1024, 4 << 20, 100_000_000, 123_456_789] {
            assert_eq!(parse_size(&format_size(n)), Ok(n), "{n}");
        }
    }

    #[test]
    fn durations_are_shown_as_written() {
        let d = |s: &str| humantime::parse_duration(s).unwrap();
        assert_eq!(format_duration(d("7d")), "7d");
        assert_eq!(format_duration(d("1h 30m")), "1h 30m");
        assert_eq!(format_duration(d("2d 2m")), "2d 2m");
        assert_eq!(format_duration(d("250ms")), "250ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        for s in ["5m", "1h 2m 3s", "9d 1s", "1s 5ms"] {
            assert_eq!(d(&format_duration(d(s))), d(s), "{s}");
        }
    }

    #[test]
    fn typo_suggestions() {
        let keys = [
            "window",
            "catchup_window",
            "sweep_horizon",
            "requests_per_minute",
            "sinks",
        ];
        let near = |k: &str| closest(k, keys.iter().copied());
        assert_eq!(near("windw"), Some("window"));
        assert_eq!(near("Window"), Some("window"));
        assert_eq!(near("catchup_windows"), Some("catchup_window"));
        assert_eq!(near("requests_per_min"), Some("requests_per_minute"));
        assert_eq!(near("sink"), Some("sinks"));
        assert_eq!(near("colour"), None);
        assert_eq!(near("x"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    const MINIMAL: &str = r#"
[state]
path = "/var/lib/claudit/state.db"
[[sources]]
name = "acme"
api_key = "k"
[[sinks]]
name = "archive"
type = "file"
path = "/tmp/e.ndjson"
"#;

    #[test]
    fn override_variables_that_match_no_setting_are_errors() {
        // `load` passes the names of the process's CLAUDIT_*__* variables.
        let names = vec![
            "CLAUDIT_STATE__RETENTON".to_string(),
            "CLAUDIT_SOURCES__ACME__WINDOW".to_string(),
            "CLAUDIT_SINKS__NOPE__FORMAT".to_string(),
        ];
        let env = |name: &str| (name == "CLAUDIT_SOURCES__ACME__WINDOW").then(|| "10m".to_string());
        let errors = load_inner(MINIMAL, Path::new("c.toml"), &env, &names, false).unwrap_err();
        let printed = errors.to_string();
        assert_eq!(errors.0.len(), 2, "{printed}");
        assert_eq!(errors.0[0].key, "CLAUDIT_STATE__RETENTON");
        assert!(
            errors.0[0]
                .message
                .contains("did you mean CLAUDIT_STATE__RETENTION?"),
            "{printed}"
        );
        assert_eq!(errors.0[1].key, "CLAUDIT_SINKS__NOPE__FORMAT");
        assert!(
            errors.0[1].message.contains("matches no setting"),
            "{printed}"
        );

        let names = vec!["CLAUDIT_SOURCES__ACME__WINDOW".to_string()];
        let config = load_inner(MINIMAL, Path::new("c.toml"), &env, &names, false).unwrap();
        assert_eq!(config.sources[0].window, Duration::from_secs(600));
    }

    #[test]
    fn every_syntax_error_is_reported_with_its_line() {
        let text = "[state\npath = 1\n[[sources]]\nname = \"a\nwindow = \"5m\"\n";
        let errors = load_str(text, Path::new("c.toml"), &env).unwrap_err();
        let lines: Vec<Option<usize>> = errors.0.iter().map(|e| e.line).collect();
        assert!(lines.contains(&Some(1)), "{errors}");
        assert!(lines.contains(&Some(4)), "{errors}");
        assert!(
            errors
                .0
                .iter()
                .all(|e| e.message.starts_with("not valid TOML"))
        );
    }

    #[test]
    fn display_formats() {
        let e = ConfigError {
            file: PathBuf::from("/etc/c.toml"),
            key: "sources[1].window".to_string(),
            message: "bad".to_string(),
            line: Some(12),
        };
        assert_eq!(e.to_string(), "/etc/c.toml:12: sources[1].window: bad");
        let no_line = ConfigError {
            line: None,
            ..e.clone()
        };
        assert_eq!(no_line.to_string(), "/etc/c.toml: sources[1].window: bad");
        let no_key = ConfigError {
            key: String::new(),
            ..e.clone()
        };
        assert_eq!(no_key.to_string(), "/etc/c.toml:12: bad");
        let all = ConfigErrors(vec![e, no_line]);
        assert_eq!(all.to_string().lines().count(), 2);
    }
}
