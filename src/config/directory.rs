//! `[sources.directory]`: the directory context of one source (who an
//! actor is, as of the time it acted; `src/directory/`). Writing the table
//! turns it on; `enabled = false` in it turns it off again.

use std::time::Duration;

use super::reader::keys::duration_at_least;
use super::reader::{Ctx, Got, Table, Text};
use super::{Format, SinkConfig, SourceConfig};
use crate::directory::settings::{DirectoryConfig, MIN_SNAPSHOT_EVERY};

/// Reads `[sources.directory]` of one source table.
pub(super) fn read(cx: &mut Ctx, source: &mut Table) -> DirectoryConfig {
    let defaults = DirectoryConfig::default();
    let mut t = source.subtable(cx, "directory");
    let present = t.line.is_some();
    let enabled = t.boolean(cx, "enabled", present).unwrap_or(false);
    let refresh = duration_at_least(
        cx,
        &mut t,
        "refresh",
        defaults.refresh,
        Duration::from_secs(60),
    );
    let snapshot_every = duration_at_least(
        cx,
        &mut t,
        "snapshot_every",
        defaults.snapshot_every,
        MIN_SNAPSHOT_EVERY,
    );
    let page_size = t.integer(
        cx,
        "page_size",
        1..=1000,
        1000,
        "the directory endpoints' limit per page",
    );
    let initial_sync_wait = t.duration(cx, "initial_sync_wait", defaults.initial_sync_wait);
    let name_example = "[\"admin\", \"owner\"]";
    let list = |got: Got<Vec<String>>, default: Vec<String>| match got {
        Got::Value(list) => list,
        _ => default,
    };
    let admin_roles = t.string_list(cx, "admin_roles", name_example, not_blank);
    let admin_groups = t.string_list(cx, "admin_groups", "[\"Security admins\"]", not_blank);
    let verified_domains = t.string_list(cx, "verified_domains", "[\"example.com\"]", check_domain);
    t.finish(cx);
    DirectoryConfig {
        enabled,
        refresh: refresh.unwrap_or(defaults.refresh),
        snapshot_every: snapshot_every.unwrap_or(defaults.snapshot_every),
        page_size: page_size.unwrap_or(1000) as u32,
        initial_sync_wait: initial_sync_wait.unwrap_or(defaults.initial_sync_wait),
        admin_roles: list(admin_roles, defaults.admin_roles),
        admin_groups: list(admin_groups, Vec::new()),
        verified_domains: list(verified_domains, Vec::new())
            .into_iter()
            .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
            .collect(),
    }
}

/// A `raw+claudit` sink needs a source with directory context: without
/// one it would deliver the activities exactly as `raw` does.
pub(super) fn check_sink_format(
    cx: &mut Ctx,
    sink: &Table,
    format: Format,
    sources: &[SourceConfig],
) {
    if format != Format::RawWithContext || sources.iter().any(|s| s.directory.enabled) {
        return;
    }
    let line = sink.line_of_key(cx, "format");
    cx.error(
        sink.key_path("format"),
        line,
        "format \"raw+claudit\" adds each activity's directory context, but no source has a \
         [sources.directory] table; add one to a source (README \"Directory context\"), or write \
         format = \"raw\"",
    );
}

/// A sink with the `directory` stream needs a source with directory
/// context: without one there is no snapshot to send.
pub(super) fn check_sink_streams(
    cx: &mut Ctx,
    sink: &Table,
    config: &SinkConfig,
    sources: &[SourceConfig],
) {
    if !config.streams.directory || sources.iter().any(|s| s.directory.enabled) {
        return;
    }
    let line = sink.line_of_key(cx, "streams");
    cx.error(
        sink.key_path("streams"),
        line,
        format!(
            "sink {:?} asks for the \"directory\" stream (snapshots of the directory), but no \
             source has a [sources.directory] table; add one to a source (README \"Directory \
             context\"), or remove \"directory\" from streams",
            config.name
        ),
    );
}

fn not_blank(item: &Text) -> Option<String> {
    item.value
        .trim()
        .is_empty()
        .then(|| "is empty; write a name, or remove the entry".to_string())
}

fn check_domain(item: &Text) -> Option<String> {
    let d = item.value.trim().trim_start_matches('@');
    let ok = !d.is_empty()
        && d.contains('.')
        && !d.starts_with('.')
        && !d.ends_with('.')
        && !d.contains(char::is_whitespace)
        && !d.contains(['@', '/', ':']);
    (!ok).then(|| {
        format!(
            "{} is not a domain; write a domain like \"example.com\"",
            item.shown()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::{ConfigErrors, load_str};
    use super::*;

    /// One source with `extra` after its keys, and one file sink with
    /// `format`.
    fn load_with(extra: &str, format: &str) -> Result<super::super::Config, ConfigErrors> {
        let file = format!(
            "name = \"f\"\ntype = \"file\"\nformat = \"{format}\"\npath = \"/tmp/claudit-test.ndjson\""
        );
        load_sink(extra, &file)
    }

    fn load(extra: &str) -> Result<super::super::Config, ConfigErrors> {
        load_with(extra, "ocsf")
    }

    #[test]
    fn off_unless_the_table_is_written() {
        let c = load("").unwrap();
        assert_eq!(c.sources[0].directory, DirectoryConfig::default());
        assert!(!c.sources[0].directory.enabled);
        let c = load("[sources.directory]\n").unwrap();
        assert!(c.sources[0].directory.enabled);
        let c = load("[sources.directory]\nenabled = false\n").unwrap();
        assert!(!c.sources[0].directory.enabled);
    }

    #[test]
    fn every_key_is_read_and_checked() {
        let c = load(
            r#"[sources.directory]
refresh = "6h"
snapshot_every = "12h"
page_size = 200
initial_sync_wait = "30s"
admin_roles = ["owner", "Security Admin"]
admin_groups = ["Admins"]
verified_domains = ["Example.com", "@eu.example.com"]
"#,
        )
        .unwrap();
        let d = &c.sources[0].directory;
        assert_eq!(d.refresh, Duration::from_secs(6 * 3600));
        assert_eq!(d.snapshot_every, Duration::from_secs(12 * 3600));
        assert_eq!(d.page_size, 200);
        assert_eq!(d.initial_sync_wait, Duration::from_secs(30));
        assert_eq!(d.admin_roles, vec!["owner", "Security Admin"]);
        assert_eq!(d.admin_groups, vec!["Admins"]);
        assert_eq!(d.verified_domains, vec!["example.com", "eu.example.com"]);

        let errors = load(
            r#"[sources.directory]
refresh = "10s"
snapshot_every = "30m"
page_size = 5000
verified_domains = ["not a domain"]
admin_group = ["typo"]
"#,
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "sources[0].directory.refresh: 10s is too short",
            "sources[0].directory.snapshot_every: 30m is too short; write at least snapshot_every = \"1h\"",
            "sources[0].directory.page_size",
            "sources[0].directory.verified_domains[0]",
            "sources[0].directory.admin_group: unknown key; did you mean admin_groups?",
        ] {
            assert!(
                errors.contains(expected),
                "{expected} missing from:\n{errors}"
            );
        }
    }

    #[test]
    fn snapshots_are_daily_by_default() {
        let c = load("[sources.directory]\n").unwrap();
        assert_eq!(
            c.sources[0].directory.snapshot_every,
            Duration::from_secs(24 * 3600)
        );
        assert!(!c.sinks[0].streams.directory, "the stream is opt-in");
    }

    /// One source with `directory`, and one sink of `sink` (its table's
    /// keys after `[[sinks]]`).
    fn load_sink(directory: &str, sink: &str) -> Result<super::super::Config, ConfigErrors> {
        let text = format!(
            r#"
[state]
path = "/tmp/claudit-test.db"

[[sources]]
name = "acme"
api_key = "sk-ant-api01-x"
{directory}

[[sinks]]
{sink}
"#
        );
        load_str(&text, std::path::Path::new("/etc/claudit.toml"), &|_| None)
    }

    #[test]
    fn a_sink_opts_in_to_the_directory_stream() {
        let file = "name = \"siem\"\ntype = \"file\"\npath = \"/tmp/claudit-test.ndjson\"\n";
        let c = load_sink(
            "[sources.directory]",
            &format!("{file}streams = [\"activities\", \"directory\"]"),
        )
        .unwrap();
        let s = &c.sinks[0];
        assert!(s.streams.activities && s.streams.directory);
        let stream = s.directory_stream();
        assert_eq!(stream.name, "siem.directory");
        assert!(stream.is_directory_stream() && !stream.is_findings_stream());
        assert_eq!(
            stream
                .kind
                .get::<crate::sinks::file::FileSinkConfig>()
                .unwrap()
                .path,
            std::path::Path::new("/tmp/claudit-test.directory.ndjson")
        );
        assert_eq!(c.delivery("siem.directory").unwrap().name, "siem.directory");
        assert_eq!(
            c.deliveries(),
            ["siem", "siem.directory"],
            "the stream's name for dlq and replay"
        );
        // It reads the inventory entries in the sink's format.
        let mapper = std::sync::Arc::new(crate::ocsf::Mapper::default());
        assert!(matches!(
            crate::sinks::render::Payload::of(&stream, &mapper),
            crate::sinks::render::Payload::Directory(crate::store::FindingForm::Ocsf)
        ));
        let mut raw = stream.clone();
        raw.format = Format::Raw;
        assert!(matches!(
            crate::sinks::render::Payload::of(&raw, &mapper),
            crate::sinks::render::Payload::Directory(crate::store::FindingForm::Plain)
        ));
        // Only the stream: the sink's activities are not asked for.
        let c = load_sink(
            "[sources.directory]",
            &format!("{file}streams = [\"directory\"]"),
        )
        .unwrap();
        assert!(!c.sinks[0].streams.activities && c.sinks[0].streams.directory);

        // Without a source that has a directory: refused, naming the sink,
        // the key and the fix.
        for without in ["", "[sources.directory]\nenabled = false"] {
            let error = load_sink(
                without,
                &format!("{file}streams = [\"activities\", \"directory\"]"),
            )
            .unwrap_err()
            .to_string();
            assert!(
                error.contains("sinks[0].streams")
                    && error.contains("sink \"siem\"")
                    && error.contains("no source has a [sources.directory] table")
                    && error.contains("remove \"directory\" from streams"),
                "{error}"
            );
        }
        let c = load_sink("", file).unwrap();
        assert!(c.delivery("siem.directory").is_none());
    }

    #[test]
    fn the_archive_and_vendor_layouts_refuse_the_directory_stream() {
        let archive = "name = \"evidence\"\ntype = \"archive\"\nbackend = \"local\"\npath = \"/tmp/claudit-archive\"\n\
                       streams = [\"activities\", \"directory\"]";
        let error = load_sink("[sources.directory]", archive)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("sinks[0].streams")
                && error.contains("an archive sink keeps only activities")
                && error.contains("streams = [\"activities\"]"),
            "{error}"
        );
    }

    #[test]
    fn a_raw_claudit_sink_needs_a_source_with_directory_context() {
        let c = load_with("[sources.directory]", "raw+claudit").unwrap();
        assert_eq!(c.sinks[0].format, Format::RawWithContext);
        for without in ["", "[sources.directory]\nenabled = false"] {
            let error = load_with(without, "raw+claudit").unwrap_err().to_string();
            assert!(
                error.contains("sinks[0].format")
                    && error.contains("no source has a [sources.directory] table")
                    && error.contains("format = \"raw\""),
                "{error}"
            );
        }
    }
}
