//! Configuration loading: the example loads, defaults apply, `${VAR}`,
//! `*_file` secrets and `CLAUDIT_*` overrides work, and every kind of bad
//! configuration gives a message naming the file, the key and the fix,
//! without ever showing a secret.

use std::path::{Path, PathBuf};
use std::time::Duration;

use claudit::config::{
    self, Config, ConfigError, ConfigErrors, FileSinkConfig, Format, SinkConfig,
};
use secrecy::ExposeSecret;

const FILE: &str = "/etc/claudit/claudit.toml";
const SECRET: &str = "sk-ant-api01-TOPSECRET-do-not-print-0123456789";

/// A valid configuration with only the required keys.
const MINIMAL: &str = r#"
[state]
path = "/var/lib/claudit/state.db"

[[sources]]
name = "acme"
api_key = "${ANTHROPIC_COMPLIANCE_API_KEY}"

[[sinks]]
name = "archive"
type = "file"
path = "/var/log/claudit/events.ndjson"
"#;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An environment holding exactly `pairs`.
fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

fn load_ok(text: &str, env: &[(&str, &str)]) -> Config {
    match config::load_str(text, Path::new(FILE), &env_of(env)) {
        Ok(config) => config,
        Err(errors) => panic!("expected the config to load, got:\n{errors}"),
    }
}

fn load_err(text: &str, env: &[(&str, &str)]) -> ConfigErrors {
    match config::load_str(text, Path::new(FILE), &env_of(env)) {
        Ok(config) => panic!("expected errors, the config loaded: {config:?}"),
        Err(errors) => errors,
    }
}

/// With the API key in the environment.
fn key_env() -> Vec<(&'static str, &'static str)> {
    vec![("ANTHROPIC_COMPLIANCE_API_KEY", SECRET)]
}

/// The one problem reported for `key`; checks that its printed line names
/// the file and the key, and that its message contains every fragment.
fn problem<'e>(errors: &'e ConfigErrors, key: &str, fragments: &[&str]) -> &'e ConfigError {
    let found: Vec<&ConfigError> = errors.0.iter().filter(|e| e.key == key).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one problem for {key:?}, got:\n{errors}"
    );
    let error = found[0];
    let printed = error.to_string();
    assert!(printed.starts_with(FILE), "file not named: {printed}");
    assert!(printed.contains(key), "key not named: {printed}");
    for fragment in fragments {
        assert!(
            error.message.contains(fragment),
            "message for {key} lacks {fragment:?}: {printed}"
        );
    }
    error
}

/// The settings of a file sink.
#[allow(irrefutable_let_patterns)] // `file` is the only sink type so far
fn file_sink(sink: &SinkConfig) -> &FileSinkConfig {
    let Some(file) = sink.kind.get::<claudit::config::FileSinkConfig>() else {
        panic!("sink {} is not a file sink", sink.name)
    };
    file
}

/// MINIMAL with `extra` lines appended to the `[[sources]]` table.
fn with_source_keys(extra: &str) -> String {
    MINIMAL.replace(
        "api_key = \"${ANTHROPIC_COMPLIANCE_API_KEY}\"\n",
        &format!("api_key = \"${{ANTHROPIC_COMPLIANCE_API_KEY}}\"\n{extra}\n"),
    )
}

/// MINIMAL with `extra` lines appended to the `[[sinks]]` table.
fn with_sink_keys(extra: &str) -> String {
    format!("{MINIMAL}{extra}\n")
}

// ---------------------------------------------------------------- good configs

#[test]
fn example_config_loads() {
    let path = manifest_dir().join("config/claudit.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = config::load_str(&text, &path, &env_of(&key_env()))
        .unwrap_or_else(|e| panic!("the example must load:\n{e}"));

    assert_eq!(config.file, path);
    assert_eq!(
        config.state.path,
        PathBuf::from("/var/lib/claudit/state.db")
    );
    assert_eq!(config.state.retention, Duration::from_secs(7 * 86_400));
    let acme = config.source("acme").expect("source acme");
    assert_eq!(acme.api_key.expose_secret(), SECRET);
    assert_eq!(acme.exclude_activity_types, vec!["claude_chat_viewed"]);
    let archive = config.sink("archive").expect("sink archive");
    assert_eq!(archive.format, Format::Ocsf);
    let file = file_sink(archive);
    assert_eq!(file.path, PathBuf::from("/var/log/claudit/events.ndjson"));
    assert_eq!(
        config.enrich.geoip_city_db,
        Some(PathBuf::from("/var/lib/GeoIP/GeoLite2-City.mmdb"))
    );
    assert_eq!(config.ocsf.severity.get("claude_chat_deleted"), Some(&2));
    assert!(!config.ocsf.include_raw_data);
}

#[test]
fn example_config_documents_every_key() {
    // Every key the loader accepts appears in the example with a comment
    // above it (commented-out alternatives count).
    let text = std::fs::read_to_string(manifest_dir().join("config/claudit.example.toml")).unwrap();
    let keys = [
        "path",
        "retention",
        "name",
        "base_url",
        "api_key",
        "api_key_file",
        "anthropic_version",
        "requests_per_minute",
        "window",
        "max_window_pages",
        "settle_lag",
        "sweep_horizon",
        "sweep_interval",
        "initial_lookback",
        "poll_interval",
        "page_size",
        "connect_timeout",
        "request_timeout",
        "activity_types",
        "exclude_activity_types",
        "organization_ids",
        "type",
        "format",
        "max_bytes",
        "max_files",
        "batch_max_events",
        "batch_max_bytes",
        "batch_linger",
        "geoip_city_db",
        "geoip_asn_db",
        "user_agent_cache_size",
        "include_raw_data",
        "no_data_after",
        "listen",
        "ready_max_sink_delay",
        // syslog
        "address",
        "transport",
        "tls_ca_file",
        "tls_client_cert_file",
        "tls_client_key_file",
        "tls_server_name",
        "facility",
        "severity",
        "hostname",
        "app_name",
        "structured_data_id",
        "max_message_bytes",
        "resend_window",
        "write_timeout",
        // webhook
        "url",
        "url_file",
        "secret",
        "secret_file",
        "id_prefix",
        "max_request_bytes",
        "compression",
        // vendor layouts (splunk_hec, sentinel, elasticsearch)
        "layout",
        // [sources.directory]
        "enabled",
        "refresh",
        "initial_sync_wait",
        "admin_roles",
        "admin_groups",
        "verified_domains",
    ];
    let lines: Vec<&str> = text.lines().collect();
    for key in keys {
        let at = lines
            .iter()
            .position(|l| {
                let l = l.trim_start_matches("# ");
                l.starts_with(&format!("{key} = "))
            })
            .unwrap_or_else(|| panic!("{key} is not in the example"));
        assert!(
            lines[at - 1].starts_with('#'),
            "{key} has no comment above it in the example"
        );
    }
}

#[test]
fn defaults_apply() {
    let config = load_ok(MINIMAL, &key_env());
    let min = |m: u64| Duration::from_secs(60 * m);

    assert_eq!(config.state.retention, Duration::from_secs(7 * 86_400));
    let s = &config.sources[0];
    assert_eq!(s.name, "acme");
    assert_eq!(s.base_url, "https://api.anthropic.com");
    assert_eq!(s.anthropic_version, "2023-06-01");
    assert_eq!(s.requests_per_minute, 500);
    assert_eq!(s.window, min(5));
    assert_eq!(s.max_window_pages, 1000);
    assert_eq!(s.settle_lag, min(2));
    assert_eq!(s.sweep_horizon, min(60));
    assert_eq!(s.sweep_interval, min(10));
    assert_eq!(s.initial_lookback, min(24 * 60));
    assert_eq!(s.poll_interval, min(1));
    assert_eq!(s.page_size, 5000);
    assert_eq!(s.connect_timeout, Duration::from_secs(10));
    assert_eq!(s.request_timeout, Duration::from_secs(60));
    assert!(s.activity_types.is_empty());
    assert!(s.exclude_activity_types.is_empty());
    assert!(s.organization_ids.is_empty());

    let k = &config.sinks[0];
    assert_eq!(k.format, Format::Ocsf);
    assert_eq!(k.batch.max_events, 1000);
    assert_eq!(k.batch.max_bytes, 4_000_000);
    assert_eq!(k.batch.linger, Duration::from_secs(1));
    let file = file_sink(k);
    assert_eq!(file.max_bytes, 100_000_000);
    assert_eq!(file.max_files, 10);

    assert_eq!(config.enrich.geoip_city_db, None);
    assert_eq!(config.enrich.geoip_asn_db, None);
    assert_eq!(config.enrich.user_agent_cache_size, 10_000);
    assert!(config.ocsf.severity.is_empty());
    assert!(!config.ocsf.include_raw_data);
}

#[test]
fn durations_and_sizes_in_every_spelling() {
    let text = with_source_keys("window = \"1h 30m\"\nsettle_lag = \"90s\"")
        .replace(
            "[[sinks]]",
            "[[sinks]]\nbatch_max_bytes = \"4MiB\"\nmax_bytes = 0\nbatch_linger = \"250ms\"",
        )
        .replace("[state]", "[state]\nretention = \"30d\"");
    let config = load_ok(&text, &key_env());
    let s = &config.sources[0];
    assert_eq!(s.window, Duration::from_secs(5400));
    assert_eq!(s.settle_lag, Duration::from_secs(90));
    assert_eq!(config.state.retention, Duration::from_secs(30 * 86_400));
    let k = &config.sinks[0];
    assert_eq!(k.batch.max_bytes, 4 * 1024 * 1024);
    assert_eq!(k.batch.linger, Duration::from_millis(250));
    let file = file_sink(k);
    assert_eq!(file.max_bytes, 0, "\"0\" means never rotate");

    let text = MINIMAL.replace(
        "[[sinks]]",
        "[[sinks]]\nmax_bytes = \"0\"\nbatch_max_bytes = 65536",
    );
    let config = load_ok(&text, &key_env());
    assert_eq!(config.sinks[0].batch.max_bytes, 65536);
    let file = file_sink(&config.sinks[0]);
    assert_eq!(file.max_bytes, 0);
}

#[test]
fn env_vars_expand_in_any_string_and_double_dollar_escapes() {
    let text = MINIMAL
        .replace("/var/lib/claudit/state.db", "${STATE_DIR}/state.db")
        .replace("name = \"archive\"", "name = \"${SINK_NAME}\"")
        .replace(
            "/var/log/claudit/events.ndjson",
            "/var/log/$${literal}/$HOME/e.ndjson",
        );
    let mut env = key_env();
    env.push(("STATE_DIR", "/srv/claudit"));
    env.push(("SINK_NAME", "archive"));
    let config = load_ok(&text, &env);
    assert_eq!(config.state.path, PathBuf::from("/srv/claudit/state.db"));
    assert_eq!(config.sinks[0].name, "archive");
    let file = file_sink(&config.sinks[0]);
    assert_eq!(
        file.path,
        PathBuf::from("/var/log/${literal}/$HOME/e.ndjson")
    );
}

#[test]
fn unset_env_var_names_the_variable_and_the_key() {
    let errors = load_err(MINIMAL, &[]);
    problem(
        &errors,
        "sources[0].api_key",
        &["ANTHROPIC_COMPLIANCE_API_KEY is not set", "set it"],
    );
    assert_eq!(errors.0.len(), 1, "{errors}");
}

#[test]
fn api_key_file_is_read_and_its_trailing_newline_trimmed() {
    // Through `load`, from a fixture whose paths are relative to its directory.
    let path = manifest_dir().join("fixtures/config/key-file.toml");
    let config = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let acme = config.source("acme").unwrap();
    assert_eq!(
        acme.api_key.expose_secret(),
        "sk-ant-api01-fixture-file-key-0000"
    );
    assert_eq!(
        config.state.path,
        manifest_dir().join("fixtures/config/claudit.db")
    );
    let file = file_sink(config.sink("archive").unwrap());
    assert_eq!(
        file.path,
        manifest_dir().join("fixtures/config/out/events.ndjson")
    );
}

#[test]
fn api_key_file_path_may_use_env_vars() {
    let dir = manifest_dir().join("fixtures/config/secrets");
    let text = MINIMAL.replace(
        "api_key = \"${ANTHROPIC_COMPLIANCE_API_KEY}\"",
        "api_key_file = \"${CREDENTIALS_DIRECTORY}/compliance_api_key\"",
    );
    let config = load_ok(&text, &[("CREDENTIALS_DIRECTORY", dir.to_str().unwrap())]);
    assert_eq!(
        config.sources[0].api_key.expose_secret(),
        "sk-ant-api01-fixture-file-key-0000"
    );
}

#[test]
fn missing_config_file_is_reported() {
    let path = manifest_dir().join("fixtures/config/does-not-exist.toml");
    let errors = config::load(&path).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    let printed = errors.to_string();
    assert!(printed.contains("does-not-exist.toml"), "{printed}");
    assert!(
        printed.contains("cannot read the configuration file"),
        "{printed}"
    );
}

#[test]
fn env_overrides_replace_scalar_settings() {
    let mut env = key_env();
    env.extend([
        ("CLAUDIT_STATE__RETENTION", "14d"),
        ("CLAUDIT_STATE__PATH", "/data/state.db"),
        ("CLAUDIT_SOURCES__ACME__REQUESTS_PER_MINUTE", "300"),
        ("CLAUDIT_SOURCES__ACME__WINDOW", "10m"),
        ("CLAUDIT_SINKS__ARCHIVE__FORMAT", "raw"),
        ("CLAUDIT_ENRICH__USER_AGENT_CACHE_SIZE", "5"),
        ("CLAUDIT_OCSF__INCLUDE_RAW_DATA", "true"),
    ]);
    let config = load_ok(MINIMAL, &env);
    assert_eq!(config.state.retention, Duration::from_secs(14 * 86_400));
    assert_eq!(config.state.path, PathBuf::from("/data/state.db"));
    assert_eq!(config.sources[0].requests_per_minute, 300);
    assert_eq!(config.sources[0].window, Duration::from_secs(600));
    assert_eq!(config.sinks[0].format, Format::Raw);
    assert_eq!(config.enrich.user_agent_cache_size, 5);
    assert!(config.ocsf.include_raw_data);
}

#[test]
fn env_override_names_use_the_entry_name_with_dashes_as_underscores() {
    let text = MINIMAL.replace("name = \"acme\"", "name = \"acme-eu\"");
    let mut env = key_env();
    env.push(("CLAUDIT_SOURCES__ACME_EU__PAGE_SIZE", "100"));
    assert_eq!(load_ok(&text, &env).sources[0].page_size, 100);
}

#[test]
fn bad_env_override_names_the_variable_and_the_key() {
    let mut env = key_env();
    env.push(("CLAUDIT_SOURCES__ACME__REQUESTS_PER_MINUTE", "lots"));
    env.push(("CLAUDIT_STATE__RETENTION", "a week"));
    let errors = load_err(MINIMAL, &env);
    problem(
        &errors,
        "sources[0].requests_per_minute",
        &[
            "CLAUDIT_SOURCES__ACME__REQUESTS_PER_MINUTE",
            "integer from 1 to 600",
        ],
    );
    problem(
        &errors,
        "state.retention",
        &["CLAUDIT_STATE__RETENTION", "not a duration", "\"7d\""],
    );
    assert!(
        !errors.to_string().contains("a week"),
        "env values are not echoed"
    );
}

#[test]
fn line_numbers_point_at_the_value() {
    let text = with_source_keys("window = \"5 minuets\"");
    let line = 1 + text.lines().position(|l| l.starts_with("window")).unwrap();
    let errors = load_err(&text, &key_env());
    let error = problem(&errors, "sources[0].window", &[]);
    assert_eq!(error.line, Some(line));
    assert!(
        error
            .to_string()
            .starts_with(&format!("{FILE}:{line}: sources[0].window: "))
    );
}

#[test]
fn lookup_by_name() {
    let text = format!(
        "{MINIMAL}\n[[sources]]\nname = \"beta\"\napi_key = \"x\"\n\n[[sinks]]\nname = \"raw\"\ntype = \"file\"\nformat = \"raw\"\npath = \"/tmp/raw.ndjson\"\n"
    );
    let config = load_ok(&text, &key_env());
    assert_eq!(config.source("beta").unwrap().api_key.expose_secret(), "x");
    assert_eq!(config.sink("raw").unwrap().format, Format::Raw);
    assert!(config.source("gamma").is_none());
    assert!(config.sink("gamma").is_none());
}

#[test]
fn http_base_url_only_for_localhost_and_trailing_slash_is_dropped() {
    let text = with_source_keys("base_url = \"http://127.0.0.1:8080/\"");
    let config = load_ok(&text, &key_env());
    assert_eq!(config.sources[0].base_url, "http://127.0.0.1:8080");
    let config = load_ok(
        &with_source_keys("base_url = \"http://localhost:9000\""),
        &key_env(),
    );
    assert_eq!(config.sources[0].base_url, "http://localhost:9000");

    let errors = load_err(
        &with_source_keys("base_url = \"http://api.anthropic.com\""),
        &key_env(),
    );
    problem(
        &errors,
        "sources[0].base_url",
        &[
            "only for 127.0.0.1 or localhost",
            "base_url = \"https://api.anthropic.com\"",
        ],
    );
    let errors = load_err(
        &with_source_keys("base_url = \"api.anthropic.com\""),
        &key_env(),
    );
    problem(
        &errors,
        "sources[0].base_url",
        &["not a URL", "https://api.anthropic.com"],
    );
}

// ----------------------------------------------------------------- bad configs

#[test]
fn unknown_key_suggests_the_closest_valid_key() {
    let errors = load_err(&with_source_keys("windw = \"5m\""), &key_env());
    problem(
        &errors,
        "sources[0].windw",
        &["unknown key", "did you mean window?"],
    );

    let text = MINIMAL.replace("[state]", "[state]\nretension = \"7d\"");
    let errors = load_err(&text, &key_env());
    problem(&errors, "state.retension", &["did you mean retention?"]);
}

#[test]
fn unknown_key_far_from_any_lists_the_valid_ones() {
    let text = MINIMAL.replace("[state]", "[state]\ncolour = \"blue\"");
    let errors = load_err(&text, &key_env());
    problem(
        &errors,
        "state.colour",
        &["unknown key", "valid keys here: path, retention"],
    );
}

#[test]
fn unknown_section_suggests_the_closest() {
    let text = format!("{MINIMAL}\n[enrichment]\ngeoip_city_db = \"x\"\n");
    let errors = load_err(&text, &key_env());
    problem(&errors, "enrichment", &["did you mean enrich?"]);
}

#[test]
fn unknown_key_of_a_sink_type() {
    let errors = load_err(&with_sink_keys("max_file = 3"), &key_env());
    problem(&errors, "sinks[0].max_file", &["did you mean max_files?"]);
}

#[test]
fn wrong_type_says_what_to_write() {
    let errors = load_err(
        &with_source_keys("page_size = \"5000\"\ninclude = 1"),
        &key_env(),
    );
    problem(
        &errors,
        "sources[0].page_size",
        &[
            "expected an integer, found a string",
            "page_size = 5000 without quotes",
        ],
    );

    let text = MINIMAL.replace("[[sinks]]", "[[sinks]]\nmax_files = 2.5");
    let errors = load_err(&text, &key_env());
    problem(
        &errors,
        "sinks[0].max_files",
        &["found a float", "max_files = 10"],
    );

    let text = format!("{MINIMAL}\n[ocsf]\ninclude_raw_data = \"yes\"\n");
    let errors = load_err(&text, &key_env());
    problem(
        &errors,
        "ocsf.include_raw_data",
        &["expected true or false", "include_raw_data = false"],
    );

    let text = MINIMAL.replace("name = \"archive\"", "name = 7");
    let errors = load_err(&text, &key_env());
    problem(
        &errors,
        "sinks[0].name",
        &["expected a string", "double quotes"],
    );
}

#[test]
fn sources_as_a_single_table_says_to_use_double_brackets() {
    let text = MINIMAL.replace("[[sources]]", "[sources]");
    let errors = load_err(&text, &key_env());
    problem(
        &errors,
        "sources",
        &["expected an array of tables", "[[sources]]"],
    );
}

#[test]
fn wrong_type_on_api_key_does_not_echo_the_value() {
    let text = MINIMAL.replace(
        "api_key = \"${ANTHROPIC_COMPLIANCE_API_KEY}\"",
        &format!("api_key = [\"{SECRET}\"]"),
    );
    let errors = load_err(&text, &[]);
    problem(
        &errors,
        "sources[0].api_key",
        &["expected a string, found an array"],
    );
    assert!(!errors.to_string().contains("TOPSECRET"), "{errors}");
    assert!(!format!("{errors:?}").contains("TOPSECRET"));

    let text = MINIMAL.replace(
        "api_key = \"${ANTHROPIC_COMPLIANCE_API_KEY}\"",
        "api_key = 123456789987654321",
    );
    let errors = load_err(&text, &[]);
    problem(&errors, "sources[0].api_key", &["found an integer"]);
    assert!(
        !errors.to_string().contains("123456789987654321"),
        "{errors}"
    );
}

#[test]
fn syntax_error_does_not_echo_the_line() {
    // An unterminated string: the TOML parser's full message would quote
    // the line, secret included.
    let text = MINIMAL.replace(
        "api_key = \"${ANTHROPIC_COMPLIANCE_API_KEY}\"",
        &format!("api_key = \"{SECRET}"),
    );
    let errors = load_err(&text, &[]);
    assert_eq!(errors.0.len(), 1);
    let error = &errors.0[0];
    assert!(error.message.starts_with("not valid TOML"), "{error}");
    assert_eq!(error.line, Some(7));
    assert!(!errors.to_string().contains("TOPSECRET"), "{errors}");
}

#[test]
fn secret_from_env_in_a_wrong_key_is_not_echoed() {
    // The key's variable used by mistake where a duration belongs.
    let text = with_source_keys("window = \"${ANTHROPIC_COMPLIANCE_API_KEY}\"");
    let errors = load_err(&text, &key_env());
    problem(
        &errors,
        "sources[0].window",
        &["not a duration", "window = \"5m\""],
    );
    assert!(!errors.to_string().contains("TOPSECRET"), "{errors}");
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let config = load_ok(MINIMAL, &key_env());
    let debug = format!("{config:?}");
    assert!(!debug.contains("TOPSECRET"), "{debug}");
    assert!(debug.contains("REDACTED"), "{debug}");

    let path = manifest_dir().join("fixtures/config/key-file.toml");
    let debug = format!("{:?}", config::load(&path).unwrap());
    assert!(!debug.contains("fixture-file-key"), "{debug}");
}

#[test]
fn missing_required_keys() {
    let text = MINIMAL.replace("path = \"/var/log/claudit/events.ndjson\"\n", "");
    let errors = load_err(&text, &key_env());
    problem(
        &errors,
        "sinks[0].path",
        &[
            "missing required key",
            "path = \"/var/log/claudit/events.ndjson\"",
        ],
    );

    let text = MINIMAL.replace("path = \"/var/lib/claudit/state.db\"\n", "");
    let errors = load_err(&text, &key_env());
    problem(
        &errors,
        "state.path",
        &[
            "missing required key",
            "path = \"/var/lib/claudit/state.db\"",
        ],
    );

    let text = MINIMAL.replace("name = \"acme\"\n", "");
    let errors = load_err(&text, &key_env());
    problem(
        &errors,
        "sources[0].name",
        &["missing required key", "name = \"acme\""],
    );

    let text = MINIMAL.replace("type = \"file\"\n", "");
    let errors = load_err(&text, &key_env());
    problem(
        &errors,
        "sinks[0].type",
        &["missing required key", "type = \"file\""],
    );
}

#[test]
fn missing_state_section_names_the_key_to_add() {
    let text = MINIMAL.replace("[state]\npath = \"/var/lib/claudit/state.db\"\n", "");
    let errors = load_err(&text, &key_env());
    problem(&errors, "state.path", &["missing required key"]);
}

#[test]
fn bad_duration() {
    let errors = load_err(&with_source_keys("window = \"5 minuets\""), &key_env());
    problem(
        &errors,
        "sources[0].window",
        &[
            "\"5 minuets\" is not a duration",
            "window = \"5m\"",
            "1h 30m",
        ],
    );

    let errors = load_err(&with_source_keys("settle_lag = 120"), &key_env());
    problem(
        &errors,
        "sources[0].settle_lag",
        &["needs a unit", "settle_lag = \"120s\""],
    );

    let errors = load_err(&with_source_keys("poll_interval = \"0s\""), &key_env());
    problem(
        &errors,
        "sources[0].poll_interval",
        &["too short", "poll_interval = \"1s\""],
    );
}

#[test]
fn bad_size() {
    let errors = load_err(&with_sink_keys("max_bytes = \"100 MBB\""), &key_env());
    problem(
        &errors,
        "sinks[0].max_bytes",
        &[
            "\"100 MBB\" is not a size",
            "unknown unit",
            "max_bytes = \"100MB\"",
        ],
    );

    let errors = load_err(&with_sink_keys("batch_max_bytes = -5"), &key_env());
    problem(
        &errors,
        "sinks[0].batch_max_bytes",
        &["negative", "batch_max_bytes = \"4MB\""],
    );

    let errors = load_err(&with_sink_keys("batch_max_bytes = \"10B\""), &key_env());
    problem(
        &errors,
        "sinks[0].batch_max_bytes",
        &["out of range", "1KB to 1GiB"],
    );
}

#[test]
fn duplicate_source_name() {
    let text = format!("{MINIMAL}\n[[sources]]\nname = \"acme\"\napi_key = \"other\"\n");
    let errors = load_err(&text, &key_env());
    problem(
        &errors,
        "sources[1].name",
        &[
            "duplicate source name \"acme\"",
            "sources[0]",
            "unique name",
        ],
    );
}

#[test]
fn duplicate_sink_name() {
    let text = format!(
        "{MINIMAL}\n[[sinks]]\nname = \"archive\"\ntype = \"file\"\npath = \"/tmp/other.ndjson\"\n"
    );
    let errors = load_err(&text, &key_env());
    problem(
        &errors,
        "sinks[1].name",
        &["duplicate sink name \"archive\"", "sinks[0]", "unique name"],
    );
}

#[test]
fn two_file_sinks_on_one_path() {
    let text = format!(
        "{MINIMAL}\n[[sinks]]\nname = \"copy\"\ntype = \"file\"\nformat = \"raw\"\npath = \"/var/log/claudit/events.ndjson\"\n"
    );
    let errors = load_err(&text, &key_env());
    problem(
        &errors,
        "sinks[1].path",
        &["already written by sink \"archive\"", "its own path"],
    );
}

#[test]
fn invalid_name() {
    let text = MINIMAL.replace("name = \"acme\"", "name = \"Acme Corp\"");
    let errors = load_err(&text, &key_env());
    problem(
        &errors,
        "sources[0].name",
        &["not a valid name", "a-z, 0-9", "name = \"acme_corp\""],
    );
}

#[test]
fn unreadable_secret_file_names_file_key_and_os_error() {
    let missing = manifest_dir().join("fixtures/config/secrets/no-such-key");
    let text = MINIMAL.replace(
        "api_key = \"${ANTHROPIC_COMPLIANCE_API_KEY}\"",
        &format!("api_key_file = \"{}\"", missing.display()),
    );
    let errors = load_err(&text, &[]);
    problem(
        &errors,
        "sources[0].api_key_file",
        &[
            "cannot read secret file",
            missing.to_str().unwrap(),
            "No such file or directory",
            "check api_key_file",
        ],
    );

    // A directory is not readable as a file either.
    let dir = manifest_dir().join("fixtures/config/secrets");
    let text = MINIMAL.replace(
        "api_key = \"${ANTHROPIC_COMPLIANCE_API_KEY}\"",
        &format!("api_key_file = \"{}\"", dir.display()),
    );
    let errors = load_err(&text, &[]);
    problem(
        &errors,
        "sources[0].api_key_file",
        &["cannot read secret file", "directory"],
    );
}

#[test]
fn empty_secret_file() {
    let empty = manifest_dir().join("fixtures/config/secrets/empty");
    let text = MINIMAL.replace(
        "api_key = \"${ANTHROPIC_COMPLIANCE_API_KEY}\"",
        &format!("api_key_file = \"{}\"", empty.display()),
    );
    let errors = load_err(&text, &[]);
    problem(
        &errors,
        "sources[0].api_key_file",
        &["is empty", empty.to_str().unwrap(), "write the key into it"],
    );
}

#[test]
fn api_key_and_api_key_file_together() {
    let errors = load_err(
        &with_source_keys("api_key_file = \"/run/secrets/claude\""),
        &key_env(),
    );
    problem(
        &errors,
        "sources[0].api_key",
        &["both api_key and api_key_file", "keep exactly one"],
    );
}

#[test]
fn neither_api_key_nor_api_key_file() {
    let text = MINIMAL.replace("api_key = \"${ANTHROPIC_COMPLIANCE_API_KEY}\"\n", "");
    let errors = load_err(&text, &[]);
    problem(
        &errors,
        "sources[0].api_key",
        &[
            "missing",
            "api_key = \"${ANTHROPIC_COMPLIANCE_API_KEY}\"",
            "api_key_file = \"/run/secrets/claude\"",
        ],
    );
}

#[test]
fn empty_api_key() {
    let errors = load_err(MINIMAL, &[("ANTHROPIC_COMPLIANCE_API_KEY", "")]);
    problem(&errors, "sources[0].api_key", &["is empty", "api_key_file"]);
}

#[test]
fn activity_types_with_exclude_activity_types() {
    let errors = load_err(
        &with_source_keys(
            "activity_types = [\"claude_chat_created\"]\nexclude_activity_types = [\"claude_chat_viewed\"]",
        ),
        &key_env(),
    );
    problem(
        &errors,
        "sources[0].exclude_activity_types",
        &[
            "both set",
            "keep activity_types",
            "or exclude_activity_types",
        ],
    );
}

#[test]
fn activity_type_lists() {
    let config = load_ok(
        &with_source_keys(
            "activity_types = [\"claude_chat_created\", \"a_type_from_next_month\"]\norganization_ids = [\"org_123abc\"]",
        ),
        &key_env(),
    );
    assert_eq!(
        config.sources[0].activity_types,
        vec!["claude_chat_created", "a_type_from_next_month"]
    );
    assert_eq!(config.sources[0].organization_ids, vec!["org_123abc"]);

    let errors = load_err(&with_source_keys("activity_types = []"), &key_env());
    problem(
        &errors,
        "sources[0].activity_types",
        &["fetch nothing", "remove the key"],
    );

    let errors = load_err(
        &with_source_keys("activity_types = [\"Claude Chat Created\", 3]"),
        &key_env(),
    );
    problem(
        &errors,
        "sources[0].activity_types[0]",
        &["not an activity type name"],
    );
    problem(
        &errors,
        "sources[0].activity_types[1]",
        &["expected a string"],
    );

    let errors = load_err(
        &with_source_keys("organization_ids = \"org_1\""),
        &key_env(),
    );
    problem(
        &errors,
        "sources[0].organization_ids",
        &[
            "expected an array of strings",
            "organization_ids = [\"org_...\"]",
        ],
    );
}

#[test]
fn retention_shorter_than_sweep_horizon_plus_settle_lag() {
    let text = with_source_keys("sweep_horizon = \"2d\"")
        .replace("[state]", "[state]\nretention = \"2d\"");
    let errors = load_err(&text, &key_env());
    problem(
        &errors,
        "state.retention",
        &[
            "retention 2d must be longer than sweep_horizon + settle_lag of source \"acme\"",
            "(2d 2m)",
            "retention = \"7d\"",
        ],
    );

    // Equal is not enough either; the suggestion covers long horizons.
    let text = with_source_keys("sweep_horizon = \"9d\"\nsettle_lag = \"1d\"")
        .replace("[state]", "[state]\nretention = \"10d\"");
    let errors = load_err(&text, &key_env());
    problem(&errors, "state.retention", &["retention = \"11d\""]);
}

#[test]
fn the_retired_catchup_window_is_accepted_with_a_notice_to_remove_it() {
    // Configurations written for earlier versions keep working: the key is
    // ignored (windows are sized by what they hold), and `check` and the
    // daemon say so, with its line.
    let text = with_source_keys("window = \"10m\"\ncatchup_window = \"5m\"");
    let config = load_ok(&text, &key_env());
    assert_eq!(config.notices.len(), 1, "{:?}", config.notices);
    let notice = config.notices[0].to_string();
    assert!(notice.contains("sources[0].catchup_window"), "{notice}");
    assert!(notice.contains("retired"), "{notice}");
    assert!(notice.contains("remove the key"), "{notice}");
    assert!(config.notices[0].line.is_some());
    assert!(load_ok(MINIMAL, &key_env()).notices.is_empty());
    // A bad page budget is an error like any other.
    let errors = load_err(&with_source_keys("max_window_pages = 0"), &key_env());
    problem(
        &errors,
        "sources[0].max_window_pages",
        &["max_window_pages = 1000"],
    );
}

#[test]
fn out_of_range_numbers() {
    let errors = load_err(
        &with_source_keys("requests_per_minute = 601\npage_size = 0"),
        &key_env(),
    );
    problem(
        &errors,
        "sources[0].requests_per_minute",
        &[
            "601 is out of range",
            "from 1 to 600",
            "600 requests/min budget",
            "requests_per_minute = 500",
        ],
    );
    problem(
        &errors,
        "sources[0].page_size",
        &["0 is out of range", "from 1 to 5000", "page_size = 5000"],
    );

    let errors = load_err(
        &with_sink_keys("max_files = 0\nbatch_max_events = 99999999"),
        &key_env(),
    );
    problem(&errors, "sinks[0].max_files", &["from 1 to 1000"]);
    problem(&errors, "sinks[0].batch_max_events", &["from 1 to 1000000"]);

    let text = format!(
        "{MINIMAL}\n[ocsf.severity]\nclaude_chat_deleted = 7\nclaude_chat_created = \"high\"\n"
    );
    let errors = load_err(&text, &key_env());
    problem(
        &errors,
        "ocsf.severity.claude_chat_deleted",
        &["0 to 6 or 99", "4 high"],
    );
    problem(
        &errors,
        "ocsf.severity.claude_chat_created",
        &["expected an integer"],
    );

    let text = format!("{MINIMAL}\n[ocsf.severity]\nclaude_chat_deleted = 99\n");
    assert_eq!(
        load_ok(&text, &key_env()).ocsf.severity["claude_chat_deleted"],
        99
    );
}

#[test]
fn unknown_sink_type_lists_the_valid_ones() {
    let text = MINIMAL.replace("type = \"file\"", "type = \"splunk\"");
    let errors = load_err(&text, &key_env());
    problem(
        &errors,
        "sinks[0].type",
        &[
            "unknown sink type \"splunk\"",
            "valid types: \"file\"",
            "type = \"file\"",
        ],
    );
    // The type's own keys are not reported as unknown on top of that.
    assert_eq!(errors.0.len(), 1, "{errors}");
}

#[test]
fn unknown_format() {
    let errors = load_err(&with_sink_keys("format = \"json\""), &key_env());
    problem(
        &errors,
        "sinks[0].format",
        &[
            "unknown format \"json\"",
            "format = \"ocsf\"",
            "format = \"raw\"",
        ],
    );
}

#[test]
fn no_sources() {
    let text = MINIMAL.replace(
        "[[sources]]\nname = \"acme\"\napi_key = \"${ANTHROPIC_COMPLIANCE_API_KEY}\"\n",
        "",
    );
    let errors = load_err(&text, &[]);
    problem(
        &errors,
        "sources",
        &["no source configured", "add a [[sources]] table"],
    );
}

#[test]
fn no_sinks() {
    let text = MINIMAL.replace(
        "[[sinks]]\nname = \"archive\"\ntype = \"file\"\npath = \"/var/log/claudit/events.ndjson\"\n",
        "",
    );
    let errors = load_err(&text, &key_env());
    problem(
        &errors,
        "sinks",
        &[
            "no sink configured",
            "add a [[sinks]] table",
            "type = \"file\"",
        ],
    );
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let text = r#"
[state]
retention = "forever"

[[sources]]
name = "acme"
api_key = "${MISSING_VAR}"
window = "5 minuets"
page_size = 0
windw = "5m"

[[sources]]
name = "acme"
api_key = "k"
api_key_file = "/run/secrets/claude"

[[sinks]]
name = "archive"
type = "file"
format = "json"
max_bytes = "lots"

[[sinks]]
name = "siem"
type = "splunk"
"#;
    let errors = load_err(text, &[]);
    let keys: Vec<&str> = errors.0.iter().map(|e| e.key.as_str()).collect();
    for key in [
        "state.path",
        "state.retention",
        "sources[0].api_key",
        "sources[0].window",
        "sources[0].page_size",
        "sources[0].windw",
        "sources[1].api_key",
        "sources[1].name",
        "sinks[0].format",
        "sinks[0].path",
        "sinks[0].max_bytes",
        "sinks[1].type",
    ] {
        assert!(keys.contains(&key), "{key} not reported; got:\n{errors}");
    }
    assert_eq!(errors.0.len(), 12, "{errors}");
    // One problem per line, each naming the file.
    let printed = errors.to_string();
    assert_eq!(printed.lines().count(), 12);
    assert!(printed.lines().all(|l| l.starts_with(FILE)), "{printed}");
}

// ---------------------------------------------------------------- [server] and the watchdog

#[test]
fn server_is_off_without_its_section_and_defaults_when_present() {
    let config = load_ok(MINIMAL, &key_env());
    assert_eq!(config.server.listen, None);
    assert_eq!(
        config.server.ready_max_sink_delay,
        Duration::from_secs(15 * 60)
    );
    assert_eq!(
        config.sources[0].no_data_after,
        Duration::from_secs(6 * 3600)
    );

    let config = load_ok(&format!("{MINIMAL}\n[server]\n"), &key_env());
    assert_eq!(
        config.server.listen,
        Some("127.0.0.1:9464".parse().unwrap())
    );

    let text = format!(
        "{}\n[server]\nlisten = \"0.0.0.0:9100\"\nready_max_sink_delay = \"5m\"\n",
        with_source_keys("no_data_after = \"30m\"")
    );
    let config = load_ok(&text, &key_env());
    assert_eq!(config.server.listen, Some("0.0.0.0:9100".parse().unwrap()));
    assert_eq!(
        config.server.ready_max_sink_delay,
        Duration::from_secs(5 * 60)
    );
    assert_eq!(
        config.sources[0].no_data_after,
        Duration::from_secs(30 * 60)
    );

    // An override alone turns the endpoint on.
    let mut env = key_env();
    env.push(("CLAUDIT_SERVER__LISTEN", "127.0.0.1:0"));
    let config = load_ok(MINIMAL, &env);
    assert_eq!(config.server.listen, Some("127.0.0.1:0".parse().unwrap()));
}

#[test]
fn bad_server_and_watchdog_settings_say_what_to_write() {
    let text = format!(
        "{}\n[server]\nlisten = \"localhost\"\nready_max_sink_delay = \"0s\"\nport = 9464\n",
        with_source_keys("no_data_after = \"soon\"")
    );
    let errors = load_err(&text, &key_env());
    problem(
        &errors,
        "server.listen",
        &[
            "\"localhost\" is not an address and port",
            "listen = \"127.0.0.1:9464\"",
        ],
    );
    problem(
        &errors,
        "server.ready_max_sink_delay",
        &["too short", "ready_max_sink_delay = \"1s\""],
    );
    problem(&errors, "server.port", &["unknown key"]);
    problem(&errors, "sources[0].no_data_after", &[]);
    assert_eq!(errors.0.len(), 4, "{errors}");
}

// ------------------------------------------- `check` and `run` agree (binary)

/// Exit code of a configuration error: systemd does not restart on it.
const EXIT_CONFIG: i32 = 78;
const BINARY_KEY: &str = "sk-ant-api01-check-run-secret-0123456789";

/// A directory holding `claudit.toml` (state in `state/`, events in `out/`)
/// for the release binary.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        Setup { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// A config whose state path and sink tables are given; relative paths
    /// are taken from the config's directory.
    fn write(&self, state_path: &str, sinks: &str) -> PathBuf {
        let text = format!(
            r#"[state]
path = "{state_path}"

[[sources]]
name = "acme"
base_url = "http://127.0.0.1:9"
api_key = "${{CHECK_RUN_KEY}}"
{sinks}"#
        );
        let config = self.path("claudit.toml");
        std::fs::write(&config, text).unwrap();
        config
    }

    /// The 1-based line of the last line of the config containing `needle`
    /// (sinks come after the state table).
    fn line_of(&self, needle: &str) -> usize {
        let text = std::fs::read_to_string(self.path("claudit.toml")).unwrap();
        text.lines()
            .collect::<Vec<_>>()
            .iter()
            .rposition(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} is not in the config:\n{text}"))
            + 1
    }
}

/// Runs `claudit <command> --config <config>` and returns (exit code, output).
/// `run` must exit at once on a configuration error; one that is still
/// running after 10 s is stopped and reported.
fn claudit_with(config: &Path, command: &str, key: &str) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_claudit"))
        .args(["--log-format", "json", command, "--config"])
        .arg(config)
        .env("CHECK_RUN_KEY", key)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "claudit {command} accepted the configuration and kept running: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// `check` and `run` both exit 78 with a line naming the config file, the
/// line, the key and containing every fragment (the problem and its fix).
fn both_refuse(setup: &Setup, key: &str, line: usize, fragments: &[&str]) {
    both_refuse_with(setup, BINARY_KEY, key, line, fragments)
}

fn both_refuse_with(setup: &Setup, api_key: &str, key: &str, line: usize, fragments: &[&str]) {
    let config = setup.path("claudit.toml");
    let place = format!("{}:{line}: {key}: ", config.display());
    for command in ["check", "run"] {
        let (code, text) = claudit_with(&config, command, api_key);
        let found = text
            .lines()
            .find(|l| l.starts_with(&place))
            .unwrap_or_else(|| {
                panic!("claudit {command} did not report {place:?} (exit {code:?}):\n{text}")
            });
        for fragment in fragments {
            assert!(
                found.contains(fragment),
                "claudit {command}: {key} lacks {fragment:?}: {found}"
            );
        }
        assert_eq!(code, Some(EXIT_CONFIG), "claudit {command}:\n{text}");
        assert!(!text.contains(BINARY_KEY), "a secret in the output: {text}");
    }
    // Refused before anything was created.
    assert!(
        !setup.path("state/state.db").exists(),
        "run created the state database"
    );
}

fn file_sink_table(name: &str, path: &str) -> String {
    format!("\n[[sinks]]\nname = \"{name}\"\ntype = \"file\"\npath = \"{path}\"\n")
}

fn archive_sink_table(name: &str, path: &str) -> String {
    format!(
        "\n[[sinks]]\nname = \"{name}\"\ntype = \"archive\"\nbackend = \"local\"\npath = \"{path}\"\n"
    )
}

#[test]
fn a_state_path_that_is_a_directory_or_in_a_missing_directory_is_refused_by_check_and_run() {
    let setup = Setup::new();
    setup.write("state", &file_sink_table("events", "out/events.ndjson"));
    let line = setup.line_of("path = \"state\"");
    both_refuse(
        &setup,
        "state.path",
        line,
        &["is a directory", "path = \"", "state.db"],
    );

    setup.write(
        "missing/state.db",
        &file_sink_table("events", "out/events.ndjson"),
    );
    let missing = setup.path("missing");
    both_refuse(
        &setup,
        "state.path",
        setup.line_of("missing/state.db"),
        &[
            &format!("directory {} does not exist", missing.display()),
            "create it",
            "StateDirectory=",
        ],
    );
    assert!(!missing.exists(), "check or run created the directory");
}

#[test]
fn an_api_key_with_a_byte_not_allowed_in_a_header_is_refused_by_check_and_run() {
    let setup = Setup::new();
    setup.write(
        "state/state.db",
        &file_sink_table("events", "out/events.ndjson"),
    );
    let line = setup.line_of("api_key = ");
    for (bad, what) in [
        ("sk-ant-api01-check-run\nsecret-0123456789", "a line break"),
        (
            "sk-ant-api01-check-run\u{7}secret-0123456789",
            "a control character",
        ),
    ] {
        both_refuse_with(
            &setup,
            bad,
            "sources[0].api_key",
            line,
            &[what, "HTTP header", "one line"],
        );
        let (_, text) = claudit_with(&setup.path("claudit.toml"), "check", bad);
        assert!(
            !text.contains("secret-0123456789"),
            "the key was shown: {text}"
        );
    }
    // Surrounding whitespace (a trailing newline from `echo`) is not part
    // of the key: accepted, as the client strips it.
    let (code, text) = claudit_with(
        &setup.path("claudit.toml"),
        "check",
        "sk-ant-api01-check-run-secret-0123456789\n",
    );
    assert_eq!(code, Some(0), "{text}");

    // The same through api_key_file.
    std::fs::write(setup.path("key"), "sk-ant-api01-check\r\nrun-secret\n").unwrap();
    let text = std::fs::read_to_string(setup.path("claudit.toml"))
        .unwrap()
        .replace("api_key = \"${CHECK_RUN_KEY}\"", "api_key_file = \"key\"");
    std::fs::write(setup.path("claudit.toml"), text).unwrap();
    both_refuse(
        &setup,
        "sources[0].api_key_file",
        setup.line_of("api_key_file"),
        &["a line break", "HTTP header", "key"],
    );
}

#[test]
fn a_sink_writing_over_the_state_database_or_its_companions_is_refused_by_check_and_run() {
    let setup = Setup::new();
    for (target, what) in [
        ("state/state.db", "the state database"),
        ("state/state.db-wal", "write-ahead log"),
        ("state/state.db-shm", "shared-memory index"),
        ("state/state.db-journal", "rollback journal"),
        ("state/state.db.lock", "lock file"),
        ("claudit.toml", "configuration file"),
    ] {
        setup.write("state/state.db", &file_sink_table("events", target));
        both_refuse(
            &setup,
            "sinks[0].path",
            setup.line_of(&format!("path = \"{target}\"")),
            &[what, "give the sink its own path"],
        );
    }
    // Spelled differently, it is still the same file: through a symlinked
    // directory, and with `..`.
    std::os::unix::fs::symlink(setup.path("state"), setup.path("link")).unwrap();
    for target in ["link/state.db-wal", "out/../state/state.db-wal"] {
        setup.write("state/state.db", &file_sink_table("events", target));
        both_refuse(
            &setup,
            "sinks[0].path",
            setup.line_of(&format!("path = \"{target}\"")),
            &["write-ahead log"],
        );
    }
}

#[test]
fn sinks_writing_the_same_files_are_refused_by_check_and_run() {
    let setup = Setup::new();
    std::os::unix::fs::symlink(setup.path("out"), setup.path("also-out")).unwrap();
    // The same file through a symlinked directory.
    setup.write(
        "state/state.db",
        &format!(
            "{}{}",
            file_sink_table("a", "out/events.ndjson"),
            file_sink_table("b", "also-out/events.ndjson")
        ),
    );
    both_refuse(
        &setup,
        "sinks[1].path",
        setup.line_of("also-out/events.ndjson"),
        &["sink \"a\"", "give the sink its own path"],
    );
    // One sink's path is another's rotated file.
    setup.write(
        "state/state.db",
        &format!(
            "{}{}",
            file_sink_table("a", "out/events.ndjson"),
            file_sink_table("b", "out/events.ndjson.1")
        ),
    );
    both_refuse(
        &setup,
        "sinks[1].path",
        setup.line_of("events.ndjson.1"),
        &["rotated", "sink \"a\""],
    );
    // Two archives in one directory, and a file sink inside an archive.
    setup.write(
        "state/state.db",
        &format!(
            "{}{}{}",
            archive_sink_table("evidence", "out/archive"),
            archive_sink_table("copy", "out/archive/"),
            file_sink_table("events", "out/archive/manifest.ndjson")
        ),
    );
    both_refuse(
        &setup,
        "sinks[1].path",
        setup.line_of("out/archive/\""),
        &["archive", "sink \"evidence\""],
    );
    both_refuse(
        &setup,
        "sinks[2].path",
        setup.line_of("manifest.ndjson"),
        &["inside the archive directory of sink \"evidence\""],
    );
}

/// The data-loss case: SQLite resets its write-ahead log after each
/// checkpoint, so events "delivered" into `state.db-wal` vanish. Refused
/// before the daemon opens anything; the database is never created.
#[test]
fn a_file_sink_pointed_at_the_wal_is_refused_before_anything_is_written() {
    let setup = Setup::new();
    setup.write(
        "state/state.db",
        &file_sink_table("events", "state/state.db-wal"),
    );
    let config = setup.path("claudit.toml");
    let (code, text) = claudit_with(&config, "run", BINARY_KEY);
    assert_eq!(code, Some(EXIT_CONFIG), "{text}");
    assert!(text.contains("write-ahead log"), "{text}");
    for companion in ["state.db", "state.db-wal", "state.db-shm", "state.db.lock"] {
        assert!(
            !setup.path("state").join(companion).exists(),
            "{companion} was created"
        );
    }
}

/// A second sink, `[[sinks]]` of `kind` named "extra", with `keys`.
fn with_extra_sink(kind: &str, keys: &str) -> String {
    format!("{MINIMAL}\n[[sinks]]\nname = \"extra\"\ntype = \"{kind}\"\n{keys}\n")
}

#[test]
fn syslog_and_webhook_sinks_load_with_their_defaults() {
    let text = with_extra_sink("syslog", "address = \"collector.example.com:6514\"");
    let config = load_ok(&text, &key_env());
    let Some(s) = config
        .sink("extra")
        .unwrap()
        .kind
        .get::<claudit::sinks::syslog::SyslogConfig>()
    else {
        panic!("not a syslog sink")
    };
    assert_eq!(
        (s.address.as_str(), s.host.as_str()),
        ("collector.example.com:6514", "collector.example.com")
    );
    assert_eq!((s.facility, s.severity), (13, 6));
    assert_eq!(s.structured_data_id.as_deref(), Some("claudit@32473"));
    assert_eq!((s.max_message_bytes, s.resend_window), (8192, 8 << 20));
    let v6 = load_ok(
        &with_extra_sink("syslog", "address = \"[::1]:6514\""),
        &key_env(),
    );
    let Some(s) = v6
        .sink("extra")
        .unwrap()
        .kind
        .get::<claudit::sinks::syslog::SyslogConfig>()
    else {
        panic!("not a syslog sink")
    };
    assert_eq!(s.host, "::1");

    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let text = with_extra_sink(
        "webhook",
        "url = \"${HOOK_URL}\"\nsecret = \"${HOOK_SECRET}\"",
    );
    let mut env = key_env();
    env.extend([
        ("HOOK_URL", "https://hooks.example.com/in/t0ken"),
        ("HOOK_SECRET", secret),
    ]);
    let config = load_ok(&text, &env);
    let Some(w) = config
        .sink("extra")
        .unwrap()
        .kind
        .get::<claudit::sinks::webhook::WebhookConfig>()
    else {
        panic!("not a webhook sink")
    };
    assert_eq!(w.id_prefix, "claudit-extra");
    assert_eq!(w.max_request_bytes, 1_000_000);
    assert!(!w.http.compression);
    assert!(!format!("{config:?}").contains("t0ken") && !format!("{config:?}").contains(secret));
}

#[test]
fn syslog_and_webhook_keys_are_checked_with_their_fix() {
    let syslog = |keys: &str| load_err(&with_extra_sink("syslog", keys), &key_env());
    let key = |k: &str| format!("sinks[1].{k}");
    let ok_address = "address = \"c.example.com:6514\"";
    problem(
        &syslog("address = \"c.example.com\""),
        &key("address"),
        &["has no port", "6514"],
    );
    problem(
        &syslog(&format!("{ok_address}\ntransport = \"udp\"")),
        &key("transport"),
        &["\"tls\"", "\"tcp\""],
    );
    problem(
        &syslog(&format!(
            "{ok_address}\ntransport = \"tcp\"\ntls_ca_file = \"/ca.pem\""
        )),
        &key("tls_ca_file"),
        &["only to transport = \"tls\""],
    );
    problem(
        &syslog(&format!("{ok_address}\ntls_client_cert_file = \"/c.pem\"")),
        &key("tls_client_key_file"),
        &["go together"],
    );
    problem(
        &syslog(&format!("{ok_address}\nfacility = \"local9\"")),
        &key("facility"),
        &["local7"],
    );
    problem(
        &syslog(&format!("{ok_address}\napp_name = \"two words\"")),
        &key("app_name"),
        &["printable ASCII"],
    );
    problem(
        &syslog(&format!("{ok_address}\nstructured_data_id = \"claudit\"")),
        &key("structured_data_id"),
        &["enterprise number"],
    );
    problem(
        &syslog(&format!("{ok_address}\nmax_message_bytes = \"100\"")),
        &key("max_message_bytes"),
        &["out of range"],
    );

    let hidden = "http://hooks.example.com/in/t0ken";
    let mut env = key_env();
    env.extend([("HOOK_URL", hidden), ("HOOK_SECRET", "not-whsec-t0psecret")]);
    let errors = load_err(
        &with_extra_sink(
            "webhook",
            "url = \"${HOOK_URL}\"\nsecret = \"${HOOK_SECRET}\"\nid_prefix = \"a b\"",
        ),
        &env,
    );
    problem(&errors, &key("url"), &["must use https"]);
    problem(&errors, &key("secret"), &["whsec_"]);
    problem(&errors, &key("id_prefix"), &["claudit-eu1"]);
    let printed = errors.to_string();
    assert!(
        !printed.contains("t0ken") && !printed.contains("t0psecret"),
        "{printed}"
    );
}

#[test]
fn sink_streams_default_to_both_while_detections_run_and_are_checked() {
    let env = [("ANTHROPIC_COMPLIANCE_API_KEY", SECRET)];
    let archive = "\n[[sinks]]\nname = \"evidence\"\ntype = \"archive\"\nbackend = \"local\"\npath = \"/var/lib/claudit/archive\"\n";
    let config = load_ok(&format!("{MINIMAL}{archive}"), &env);
    assert_eq!(config.sinks[0].streams, config::Streams::BOTH);
    assert_eq!(
        config.sinks[1].streams,
        config::Streams::ACTIVITIES,
        "an archive keeps activities only"
    );
    let findings = config.sinks[0].findings_stream();
    assert_eq!(findings.name, "archive.findings");
    assert_eq!(
        file_sink(&findings).path,
        Path::new("/var/log/claudit/events.findings.ndjson")
    );
    assert_eq!(
        config.delivery("archive.findings").map(|s| s.name),
        Some("archive.findings".to_string())
    );
    assert!(config.delivery("evidence.findings").is_none());

    // Detections off: activities only, unless written.
    let off = load_ok(&format!("{MINIMAL}\n[detections]\nenabled = false\n"), &env);
    assert_eq!(off.sinks[0].streams, config::Streams::ACTIVITIES);

    let only = MINIMAL.replace(
        "path = \"/var/log/claudit/events.ndjson\"",
        "path = \"/var/log/claudit/events.ndjson\"\nstreams = [\"findings\"]",
    );
    let only = load_ok(&only, &env);
    assert!(!only.sinks[0].streams.activities && only.sinks[0].streams.findings);

    let unknown = MINIMAL.replace(
        "path = \"/var/log/claudit/events.ndjson\"",
        "path = \"/var/log/claudit/events.ndjson\"\nstreams = [\"activities\", \"alerts\"]",
    );
    let err = load_err(&unknown, &env).to_string();
    assert!(
        err.contains("sinks[0].streams[1]: unknown stream \"alerts\""),
        "{err}"
    );
    let empty = MINIMAL.replace(
        "path = \"/var/log/claudit/events.ndjson\"",
        "path = \"/var/log/claudit/events.ndjson\"\nstreams = []",
    );
    let err = load_err(&empty, &env).to_string();
    assert!(err.contains("sinks[0].streams: is empty"), "{err}");
    let archived = format!("{MINIMAL}{archive}streams = [\"activities\", \"findings\"]\n");
    let err = load_err(&archived, &env).to_string();
    assert!(
        err.contains("an archive sink keeps only activities"),
        "{err}"
    );
}
