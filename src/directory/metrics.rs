//! The directory's metric families: requests, sync runs and their duration,
//! and what the directory holds. Labels are bounded: the source name, the
//! run kind, the outcome and the entity kind.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::model::Kind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub source: String,
    /// `ok` or `error`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub source: String,
    /// `full` or `targeted`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EntityLabels {
    pub source: String,
    /// `member`, `group`, `group_member`, `role`, ...
    pub kind: &'static str,
    /// `current` (true now) or `ended` (departed users, deleted groups...).
    pub state: &'static str,
}

type SecondsGauge = Gauge<f64, AtomicU64>;

/// Every directory family, registered once per process.
#[derive(Default)]
pub struct DirectoryFamilies {
    requests: Family<OutcomeLabels, Counter>,
    runs: Family<RunLabels, Counter>,
    duration: Family<RunLabels, SecondsGauge>,
    entities: Family<EntityLabels, Gauge>,
}

impl DirectoryFamilies {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "claudit_directory_requests",
            "Directory page requests (retries included in one), by outcome",
            self.requests.clone(),
        );
        r.register(
            "claudit_directory_syncs",
            "Directory sync runs completed (full, or targeted by a change in the feed)",
            self.runs.clone(),
        );
        r.register_with_unit(
            "claudit_directory_sync_duration",
            "How long the last completed directory sync run took",
            Unit::Seconds,
            self.duration.clone(),
        );
        r.register(
            "claudit_directory_entities",
            "Directory entities known: true now (current) or ended (departed users, deleted groups...)",
            self.entities.clone(),
        );
    }

    pub fn source(&self, name: &str) -> DirectoryMetrics {
        let outcome = |outcome| OutcomeLabels {
            source: name.to_string(),
            outcome,
        };
        DirectoryMetrics {
            source: name.to_string(),
            ok: self.requests.get_or_create_owned(&outcome("ok")),
            failed: self.requests.get_or_create_owned(&outcome("error")),
            runs: self.runs.clone(),
            duration: self.duration.clone(),
            entities: self.entities.clone(),
        }
    }
}

/// The handles one source's sync updates.
#[derive(Clone)]
pub struct DirectoryMetrics {
    source: String,
    ok: Counter,
    failed: Counter,
    runs: Family<RunLabels, Counter>,
    duration: Family<RunLabels, SecondsGauge>,
    entities: Family<EntityLabels, Gauge>,
}

impl DirectoryMetrics {
    pub fn request(&self, ok: bool) {
        if ok { &self.ok } else { &self.failed }.inc();
    }

    /// A run completed: its kind, duration, and the counts it left.
    pub fn run_completed(&self, full: bool, took: Duration, counts: &[(Kind, i64, i64)]) {
        let labels = RunLabels {
            source: self.source.clone(),
            kind: if full { "full" } else { "targeted" },
        };
        self.runs.get_or_create(&labels).inc();
        self.duration.get_or_create(&labels).set(took.as_secs_f64());
        for kind in Kind::ALL {
            let (current, ended) = counts
                .iter()
                .find(|(k, _, _)| *k == kind)
                .map_or((0, 0), |(_, c, e)| (*c, *e));
            for (state, n) in [("current", current), ("ended", ended)] {
                self.entities
                    .get_or_create(&EntityLabels {
                        source: self.source.clone(),
                        kind: kind.as_str(),
                        state,
                    })
                    .set(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::metrics::Metrics;

    use super::*;

    #[test]
    fn requests_runs_and_entities_are_exported_per_source() {
        let metrics = Metrics::new();
        let acme = metrics.directory("acme");
        acme.request(true);
        acme.request(true);
        acme.request(false);
        acme.run_completed(
            true,
            Duration::from_millis(1500),
            &[(Kind::Member, 10_000, 3), (Kind::Group, 500, 0)],
        );
        let text = metrics.encode();
        for line in [
            r#"claudit_directory_requests_total{source="acme",outcome="ok"} 2"#,
            r#"claudit_directory_requests_total{source="acme",outcome="error"} 1"#,
            r#"claudit_directory_syncs_total{source="acme",kind="full"} 1"#,
            r#"claudit_directory_sync_duration_seconds{source="acme",kind="full"} 1.5"#,
            r#"claudit_directory_entities{source="acme",kind="member",state="current"} 10000"#,
            r#"claudit_directory_entities{source="acme",kind="member",state="ended"} 3"#,
            r#"claudit_directory_entities{source="acme",kind="group",state="current"} 500"#,
            r#"claudit_directory_entities{source="acme",kind="role",state="current"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
