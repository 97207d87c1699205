//! What /healthz and /readyz hold a configuration to (`health::Targets`):
//! made here, where every section is known, so the checks themselves know
//! no configuration.

use std::time::Duration;

use super::{Config, SourceConfig};
use crate::health::{SinkTarget, SourceTarget, Targets};

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
            sinks: config
                .sinks
                .iter()
                .map(|s| SinkTarget {
                    name: s.name.clone(),
                    holds_back: if s.kind.settings().seals_hours() {
                        let settle = config.sources.iter().map(|s| s.settle_lag + s.window);
                        Duration::from_secs(3600) + settle.max().unwrap_or_default()
                    } else {
                        Duration::ZERO
                    },
                })
                .collect(),
            ready_max_sink_delay: config.server.ready_max_sink_delay,
            started_ms,
        }
    }
}

/// `2 x poll interval + settle_lag`, where the poll interval is the shorter
/// of `poll_interval` and `window`: once caught up, a source reads a new
/// window as soon as that much has settled past its watermark.
fn max_poll_gap(s: &SourceConfig) -> Duration {
    2 * s.poll_interval.min(s.window) + s.settle_lag
}
