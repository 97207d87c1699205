//! Configuration: the TOML schema, `${VAR}` and `*_file` secret resolution,
//! `CLAUDIT_*` environment overrides, and validation into the settings the
//! rest of the daemon uses.
//!
//! The file is parsed with the `toml` crate into a spanned document and then
//! read key by key (`reader`, the generic `toml_reader`), rather than through serde structs or the
//! `config` crate: serde stops at the first problem, while `claudit check` has
//! to list every problem at once, each with its file, line, key path
//! (`sources[1].window`) and the fix, and without ever echoing a secret.
//! Each reader remembers the keys it asked for, so whatever is left over in a
//! table is an unknown key (reported with the closest valid one).
//!
//! Relative paths in the file are resolved against the directory of the file,
//! so `claudit check` and the daemon agree whatever their working directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

mod directory;
mod places;
mod targets;

/// The settings types of the sections, where the rest of the
/// configuration is: each is defined beside the code it sets up.
pub use crate::directory::settings::{DEFAULT_ADMIN_ROLES, DirectoryConfig};
pub use crate::enrich::EnrichConfig;
pub use crate::ocsf::OcsfConfig;
pub use crate::source::settings::SourceConfig;
pub use crate::toml_reader::{ConfigError, ConfigErrors};

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

/// The settings types of the sinks claudit ships, where the rest of the
/// configuration is.
pub use crate::archive::{ArchiveBackend, ArchiveS3Config, ObjectLock, ObjectLockMode};
pub use crate::sinks::archive::ArchiveSinkConfig;
pub use crate::sinks::datadog::DatadogSinkConfig;
pub use crate::sinks::elasticsearch::{ElasticsearchAuth, ElasticsearchSinkConfig};
pub use crate::sinks::file::FileSinkConfig;
pub use crate::sinks::sentinel::SentinelSinkConfig;
pub use crate::sinks::settings::{
    BatchConfig, DIRECTORY_SUFFIX, FINDINGS_SUFFIX, Format, HttpSinkConfig, SinkConfig, SinkKind,
    Streams, findings_path, stream_path,
};
pub use crate::sinks::splunk_hec::SplunkHecSinkConfig;
pub use crate::sinks::sumo::SumoSinkConfig;

impl Config {
    /// The source with this name.
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// Each source's name and `[sources.directory]` settings.
    pub fn directories(&self) -> impl Iterator<Item = (&str, &DirectoryConfig)> {
        self.sources.iter().map(|s| (s.name.as_str(), &s.directory))
    }

    /// The sink with this name.
    pub fn sink(&self, name: &str) -> Option<&SinkConfig> {
        self.sinks.iter().find(|s| s.name == name)
    }

    /// The archive sink named `name` (for `claudit archive verify` and
    /// `export`), or a message naming the archive sinks there are.
    pub fn archive_sink(&self, name: &str) -> Result<&ArchiveSinkConfig, String> {
        let archives: Vec<&str> = self
            .sinks
            .iter()
            .filter(|s| s.kind.get::<ArchiveSinkConfig>().is_some())
            .map(|s| s.name.as_str())
            .collect();
        let archives = if archives.is_empty() {
            "none".to_string()
        } else {
            archives.join(", ")
        };
        match self.sink(name).map(|s| s.kind.get::<ArchiveSinkConfig>()) {
            Some(Some(a)) => Ok(a),
            Some(None) => Err(format!(
                "sink {name} is not an archive sink (type = \"archive\"); archive sinks in {}: {archives}",
                self.file.display(),
            )),
            None => Err(format!(
                "no sink named {name} in {}; archive sinks there: {archives}",
                self.file.display(),
            )),
        }
    }

    /// A sink by the name its cursor and dead letters go by: a configured
    /// sink, `<sink>.findings`, the findings stream of one that receives
    /// findings (while detections run), or `<sink>.directory`, the
    /// directory stream of one that receives it.
    pub fn delivery(&self, name: &str) -> Option<SinkConfig> {
        if let Some(sink) = self.sink(name) {
            return Some(sink.clone());
        }
        if let Some(base) = name.strip_suffix(&format!(".{DIRECTORY_SUFFIX}")) {
            return self
                .sink(base)
                .filter(|s| s.streams.directory)
                .map(SinkConfig::directory_stream);
        }
        let base = name.strip_suffix(&format!(".{FINDINGS_SUFFIX}"))?;
        self.sink(base)
            .filter(|s| s.streams.findings && self.detections.enabled)
            .map(SinkConfig::findings_stream)
    }

    /// The names of every delivery (see [`Config::delivery`]): each sink,
    /// and the streams of its own it receives.
    pub fn deliveries(&self) -> Vec<String> {
        let mut names = Vec::new();
        for s in &self.sinks {
            names.push(s.name.clone());
            if s.streams.findings && self.detections.enabled {
                names.push(s.findings_stream().name);
            }
            if s.streams.directory {
                names.push(s.directory_stream().name);
            }
        }
        names
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

/// The generic spanned-TOML reader, under the name the readers of every
/// section use.
pub(crate) use crate::toml_reader as reader;

pub(crate) mod schema;

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
