//! What /healthz and /readyz hold a configuration to (`health::Targets`):
//! made here, where every section is known, so the checks themselves know
//! no configuration.

use std::time::Duration;

use super::{Config, SourceConfig};
use crate::health::{SinkTarget, SourceTarget, Stream, Targets};

impl Targets {
    pub fn from_config(config: &Config, started_ms: i64) -> Targets {
        Targets {
            state_path: config.state.path.clone(),
            sources: config
                .sources
                .iter()
                .map(|s| SourceTarget {
                    name: s.name.clone(),
                    max_poll_gap: max_poll_gap(s),
                    no_data_after: s.no_data_after,
                })
                .collect(),
            sinks: sink_targets(config),
            ready_max_sink_delay: config.server.ready_max_sink_delay,
            started_ms,
        }
    }
}

/// Every delivery the daemon runs, as `daemon::start_pipeline` starts them:
/// a sink's activities when it takes them, its findings when detections
/// are on, its directory stream when a source has a directory. A stream the
/// daemon does not deliver is not followed: its cursor never moves, and
/// /readyz would call the sink stuck.
fn sink_targets(config: &Config) -> Vec<SinkTarget> {
    let detections = config.detections.enabled;
    let directory = config.sources.iter().any(|s| s.directory.enabled);
    let mut targets = Vec::new();
    for s in &config.sinks {
        if s.streams.activities {
            targets.push(SinkTarget {
                name: s.name.clone(),
                stream: Stream::Activities,
                holds_back: if s.kind.settings().seals_hours() {
                    let settle = config.sources.iter().map(|s| s.settle_lag + s.window);
                    Duration::from_secs(3600) + settle.max().unwrap_or_default()
                } else {
                    Duration::ZERO
                },
            });
        }
        if s.streams.findings && detections {
            targets.push(SinkTarget {
                name: s.findings_stream().name,
                stream: Stream::Findings,
                holds_back: Duration::ZERO,
            });
        }
        if s.streams.directory && directory {
            targets.push(SinkTarget {
                name: s.directory_stream().name,
                stream: Stream::Directory,
                holds_back: Duration::ZERO,
            });
        }
    }
    targets
}

/// `2 x poll interval + settle_lag`, where the poll interval is the shorter
/// of `poll_interval` and `window`: once caught up, a source reads a new
/// window as soon as that much has settled past its watermark.
fn max_poll_gap(s: &SourceConfig) -> Duration {
    2 * s.poll_interval.min(s.window) + s.settle_lag
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn targets(text: &str) -> Vec<(String, Stream)> {
        let config = load_str(text, std::path::Path::new("/etc/claudit.toml"), &|_| None).unwrap();
        Targets::from_config(&config, 0)
            .sinks
            .into_iter()
            .map(|t| (t.name, t.stream))
            .collect()
    }

    const SOURCE: &str = r#"
[state]
path = "/tmp/claudit-test.db"

[[sources]]
name = "acme"
api_key = "sk-ant-api01-x"
[sources.directory]
"#;

    #[test]
    fn readiness_follows_each_stream_the_daemon_delivers_and_no_other() {
        let text = format!(
            r#"{SOURCE}
[detections]
enabled = true

[[sinks]]
name = "siem"
type = "file"
path = "/tmp/claudit-siem.ndjson"
streams = ["activities", "findings", "directory"]

[[sinks]]
name = "inventory"
type = "file"
path = "/tmp/claudit-inventory.ndjson"
streams = ["directory"]
"#
        );
        assert_eq!(
            targets(&text),
            vec![
                ("siem".to_string(), Stream::Activities),
                ("siem.findings".to_string(), Stream::Findings),
                ("siem.directory".to_string(), Stream::Directory),
                // A sink without activities has no activity cursor to
                // follow: it was reported stuck once it fell behind.
                ("inventory.directory".to_string(), Stream::Directory),
            ]
        );
        // Detections off: no findings stream is delivered, none followed.
        let off = text.replace("enabled = true", "enabled = false");
        assert_eq!(
            targets(&off)
                .iter()
                .filter(|(_, s)| *s == Stream::Findings)
                .count(),
            0
        );
    }
}
