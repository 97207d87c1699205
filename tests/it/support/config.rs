//! A `claudit.toml` built from typed parts: `[state]`, `[[sources]]`,
//! `[[sinks]]` and single tables such as `[server]`, whose values are
//! rendered by the `toml` crate, so quoting is always right. `text()` is exactly what the loader
//! reads. Tests of the configuration language itself keep their literal
//! TOML; this is for tests that need *a* configuration.
//!
//! Also compiled into benches (`#[path]`): it uses only claudit and
//! external crates, nothing else of `support`.

use std::path::{Path, PathBuf};

use claudit::config::{Config, SinkConfig};

/// One table's keys, in the order they were set.
#[derive(Debug, Clone, Default)]
pub struct Table(Vec<(String, toml::Value)>);

impl Table {
    /// Sets `key`, replacing an earlier value of the same key in place.
    pub fn set(mut self, key: &str, value: impl Into<toml::Value>) -> Table {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key.to_string(), value)),
        }
        self
    }

    /// Sets `key` to a path.
    pub fn path(self, key: &str, path: &Path) -> Table {
        self.set(key, path.to_str().expect("a UTF-8 path"))
    }

    /// The table as an inline table value, for a sub-table of a source or
    /// sink: `directory = { ... }` reads as `[sources.directory]`.
    pub fn inline(&self) -> toml::Value {
        toml::Value::Table(self.0.iter().cloned().collect())
    }

    fn render(&self, header: &str, out: &mut String) {
        out.push_str(header);
        out.push('\n');
        for (key, value) in &self.0 {
            out.push_str(&format!("{key} = {value}\n"));
        }
        out.push('\n');
    }
}

/// A `[[sources]]` table named `name`.
pub fn source(name: &str) -> Table {
    Table::default().set("name", name)
}

/// A source named `name` against `base_url` whose key is `${key_var}`,
/// polling every second with short windows, so a test sees its activities
/// within seconds.
pub fn quick_source(name: &str, base_url: &str, key_var: &str) -> Table {
    source(name)
        .set("base_url", base_url)
        .set("api_key", format!("${{{key_var}}}"))
        .set("window", "5s")
        .set("settle_lag", "1s")
        .set("sweep_horizon", "1m")
        .set("sweep_interval", "5s")
        .set("initial_lookback", "3h")
        .set("poll_interval", "1s")
}

/// A `[[sinks]]` table named `name` of type `kind`.
pub fn sink(name: &str, kind: &str) -> Table {
    Table::default().set("name", name).set("type", kind)
}

/// A whole configuration file.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    state: Table,
    sources: Vec<Table>,
    sinks: Vec<Table>,
    /// `[server]`, `[enrich]`, ...: (name, table).
    tables: Vec<(String, Table)>,
}

impl ConfigFile {
    /// `[state] path = <state>` and nothing else yet.
    pub fn new(state: &Path) -> ConfigFile {
        ConfigFile {
            state: Table::default().path("path", state),
            sources: Vec::new(),
            sinks: Vec::new(),
            tables: Vec::new(),
        }
    }

    /// Another `[state]` key (`retention`, ...).
    pub fn state(mut self, key: &str, value: impl Into<toml::Value>) -> ConfigFile {
        self.state = self.state.set(key, value);
        self
    }

    pub fn source(mut self, source: Table) -> ConfigFile {
        self.sources.push(source);
        self
    }

    pub fn sink(mut self, sink: Table) -> ConfigFile {
        self.sinks.push(sink);
        self
    }

    /// A single table, `[name]` (`server`, `enrich`, ...).
    pub fn table(mut self, name: &str, table: Table) -> ConfigFile {
        self.tables.push((name.to_string(), table));
        self
    }

    /// The TOML text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.state.render("[state]", &mut out);
        for source in &self.sources {
            source.render("[[sources]]", &mut out);
        }
        for sink in &self.sinks {
            sink.render("[[sinks]]", &mut out);
        }
        for (name, table) in &self.tables {
            table.render(&format!("[{name}]"), &mut out);
        }
        out
    }

    /// Writes the text to `path` and returns the path.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.text())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path.to_path_buf()
    }

    /// Loads the text with the real loader, as if read from
    /// `/etc/claudit/claudit.toml`, with `env` answering `${VAR}`.
    pub fn load(&self, env: &[(&str, &str)]) -> Result<Config, String> {
        load_text(&self.text(), env)
    }
}

/// Loads configuration text with the real loader, as if read from
/// `/etc/claudit/claudit.toml`, with exactly `env` answering `${VAR}`.
pub fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Config, String> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    claudit::config::load_str(text, Path::new("/etc/claudit/claudit.toml"), &lookup)
        .map_err(|e| e.to_string())
}

/// The state and the one source of the sink suites' configurations; the
/// source's key comes from `TEST_SOURCE_KEY`, which [`with_test_key`]
/// answers.
fn test_source() -> ConfigFile {
    ConfigFile::new(Path::new("/tmp/claudit-sink-test.db"))
        .source(source("test").set("api_key", "${TEST_SOURCE_KEY}"))
}

fn with_test_key<'a>(env: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = env.to_vec();
    env.push(("TEST_SOURCE_KEY", "sk-ant-admin01-test"));
    env
}

/// Loads the test source and `sink_toml` (a `[[sinks]]` table as text, for
/// tests of a sink's keys), with `env` answering `${VAR}`.
pub fn load_with_sink(sink_toml: &str, env: &[(&str, &str)]) -> Result<Config, String> {
    let text = format!("{}{sink_toml}\n", test_source().text());
    load_text(&text, &with_test_key(env))
}

/// The settings of `sink`, loaded beside the test source, with `env`
/// answering `${VAR}`.
pub fn sink_config(sink: Table, env: &[(&str, &str)]) -> SinkConfig {
    test_source()
        .sink(sink)
        .load(&with_test_key(env))
        .unwrap_or_else(|e| panic!("the test configuration does not load:\n{e}"))
        .sinks
        .remove(0)
}
