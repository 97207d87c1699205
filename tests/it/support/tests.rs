//! The helpers' own promises that other tests rely on without seeing them:
//! a found secret is named but never printed, a timeout says what was
//! awaited, and the configuration builder's text is what the loader reads.

use std::path::Path;
use std::time::Duration;

use super::config::{ConfigFile, Table, sink, source};
use super::daemon::assert_no_secret;
use super::wait::Wait;

/// The message of the panic `f` raises.
fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let payload = std::panic::catch_unwind(f).expect_err("expected a panic");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn a_secret_found_in_a_log_is_named_with_its_line_but_masked() {
    let secret = "sk-ant-api01-support-test-secret";
    let log = format!("{{\"message\":\"started\"}}\n{{\"error\":\"bad key {secret}\"}}\n");
    assert_no_secret("the log", "nothing here\n", &[secret]);
    let message = panic_message(|| assert_no_secret("the log", &log, &["other", secret]));
    assert!(!message.contains(secret), "{message}");
    assert!(
        message.contains("the log: line 2 contains secret #1")
            && message.contains("bad key <secret #1>"),
        "{message}"
    );
}

#[test]
fn a_timeout_names_what_was_awaited_and_what_was_seen_last() {
    let mut polls = 0;
    let message = panic_message(move || {
        Wait::up_to(Duration::from_millis(30))
            .every(Duration::from_millis(5))
            .until_blocking("the answer", || -> Result<(), String> {
                polls += 1;
                Err(format!("{polls} polls, no answer"))
            })
    });
    assert!(
        message.starts_with("timed out after 30ms waiting for the answer; last seen: ")
            && message.ends_with("polls, no answer"),
        "{message}"
    );
    let answer = Wait::up_to(Duration::from_secs(1)).until_blocking("the answer", || Some(42));
    assert_eq!(answer, 42);
}

#[test]
fn the_builders_text_loads_with_every_value_as_written() {
    let path = Path::new("/var/lib/claudit \"quoted\"/state.db");
    let config = ConfigFile::new(path)
        .state("retention", "7d")
        .source(
            source("acme")
                .set("api_key", "${KEY}")
                .set("page_size", 100)
                .set("page_size", 200)
                .set(
                    "directory",
                    Table::default()
                        .set("refresh", "6h")
                        .set("admin_groups", vec!["Admins"])
                        .inline(),
                ),
        )
        .sink(
            sink("out", "file")
                .set("path", "/tmp/a\\b.ndjson")
                .set("format", "raw"),
        );
    let text = config.text();
    assert_eq!(text.matches("page_size").count(), 1, "{text}");
    let loaded = config
        .load(&[("KEY", "sk-ant-api01-builder")])
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(loaded.state.path, path);
    assert_eq!(loaded.state.retention, Duration::from_secs(7 * 86_400));
    assert_eq!(loaded.sources[0].page_size, 200);
    // An inline table reads as the sub-table `[sources.directory]`.
    let directory = &loaded.sources[0].directory;
    assert!(directory.enabled);
    assert_eq!(directory.refresh, Duration::from_secs(6 * 3600));
    assert_eq!(directory.admin_groups, vec!["Admins"]);
    assert_eq!(loaded.sinks[0].format, claudit::config::Format::Raw);
    let Some(file) = loaded.sinks[0]
        .kind
        .get::<claudit::config::FileSinkConfig>()
    else {
        panic!("not a file sink: {:?}", loaded.sinks[0].kind)
    };
    assert_eq!(file.path, Path::new("/tmp/a\\b.ndjson"));
}
