//! The no-data watchdog: a source that has journaled nothing for its
//! `no_data_after` is flagged (`claudit_source_no_data` = 1) and logged at
//! warn, again every further `no_data_after` while it lasts. Silence usually
//! means the feed stopped, not that the organization went quiet: the
//! daemon's own requests are logged as `compliance_api_accessed` activities,
//! so a working feed is rarely empty for hours.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::health::SourceTarget;
use crate::metrics::Metrics;
use crate::store::now_ms;

/// A change the watchdog reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// Nothing journaled for `silent_ms` (logged once per `no_data_after`).
    Silent { source: String, silent_ms: i64 },
    /// Data again after an alert.
    Resumed { source: String },
}

/// Which sources are silent, and when each was last reported.
pub struct Watchdog {
    sources: Vec<SourceTarget>,
    reported_at: HashMap<String, i64>,
}

impl Watchdog {
    pub fn new(sources: Vec<SourceTarget>) -> Watchdog {
        Watchdog {
            sources,
            reported_at: HashMap::new(),
        }
    }

    /// Checks every source at `now_ms`; `last_event_ms` says when a source
    /// last journaled something. Sets the no-data gauge and returns what to log.
    pub fn check(&mut self, metrics: &Metrics, now_ms: i64) -> Vec<Alert> {
        let mut alerts = Vec::new();
        for s in &self.sources {
            let limit = s.no_data_after.as_millis() as i64;
            let Some(last) = metrics.last_event_ms(&s.name) else {
                continue;
            };
            let silent_ms = now_ms - last;
            let silent = silent_ms > limit;
            metrics.set_no_data(&s.name, silent);
            if silent {
                let due = self
                    .reported_at
                    .get(&s.name)
                    .is_none_or(|at| now_ms - at >= limit);
                if due {
                    self.reported_at.insert(s.name.clone(), now_ms);
                    alerts.push(Alert::Silent {
                        source: s.name.clone(),
                        silent_ms,
                    });
                }
            } else if self.reported_at.remove(&s.name).is_some() {
                alerts.push(Alert::Resumed {
                    source: s.name.clone(),
                });
            }
        }
        alerts
    }

    /// How often to check: often enough to be late by a fraction of the
    /// shortest period, at most once a minute.
    fn interval(&self) -> Duration {
        self.sources
            .iter()
            .map(|s| s.no_data_after / 4)
            .min()
            .unwrap_or(Duration::from_secs(60))
            .clamp(Duration::from_millis(250), Duration::from_secs(60))
    }
}

/// Runs the watchdog until `cancel`.
pub async fn run(
    metrics: Arc<Metrics>,
    sources: Vec<SourceTarget>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut watchdog = Watchdog::new(sources);
    let every = watchdog.interval();
    loop {
        for alert in watchdog.check(&metrics, now_ms()) {
            match alert {
                Alert::Silent { source, silent_ms } => warn!(
                    source = %source,
                    silent_secs = silent_ms / 1000,
                    "no data: the source has journaled nothing for longer than no_data_after. \
                     Check that the Compliance API and its activity logging are still enabled \
                     for the organization (an org_compliance_api_settings_updated event turns them off), \
                     that the key was not rotated or revoked (claudit check --connect), and whether \
                     the organization is simply idle"
                ),
                Alert::Resumed { source } => {
                    info!(source = %source, "data again: the source journaled new events")
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Targets;

    const H: i64 = 3_600_000;

    #[test]
    fn flags_a_silent_source_once_per_period_and_reports_recovery() {
        let metrics = Metrics::new();
        let target = SourceTarget {
            name: "acme".into(),
            max_poll_gap: Duration::from_secs(600),
            no_data_after: Duration::from_secs(6 * 3600),
        };
        metrics.configure(Targets {
            sources: vec![target.clone()],
            ..Targets::default()
        });
        let start = metrics.last_event_ms("acme").unwrap();
        let mut w = Watchdog::new(vec![target]);
        let gauge = |m: &Metrics| m.encode();

        assert!(w.check(&metrics, start + 5 * H).is_empty());
        assert!(gauge(&metrics).contains("claudit_source_no_data{source=\"acme\"} 0"));

        let alerts = w.check(&metrics, start + 7 * H);
        assert_eq!(
            alerts,
            vec![Alert::Silent {
                source: "acme".into(),
                silent_ms: 7 * H
            }]
        );
        assert!(gauge(&metrics).contains("claudit_source_no_data{source=\"acme\"} 1"));
        // Still silent: not repeated within the period, repeated after it.
        assert!(w.check(&metrics, start + 8 * H).is_empty());
        assert_eq!(w.check(&metrics, start + 13 * H).len(), 1);

        // An event arrives: recovery is reported once, the gauge drops.
        metrics.journaled_now("acme");
        let now = metrics.last_event_ms("acme").unwrap();
        assert_eq!(
            w.check(&metrics, now + 1),
            vec![Alert::Resumed {
                source: "acme".into()
            }]
        );
        assert!(w.check(&metrics, now + 2).is_empty());
        assert!(gauge(&metrics).contains("claudit_source_no_data{source=\"acme\"} 0"));
    }

    #[test]
    fn checks_often_enough_for_the_shortest_period() {
        let t = |secs| SourceTarget {
            name: "s".into(),
            max_poll_gap: Duration::ZERO,
            no_data_after: Duration::from_secs(secs),
        };
        assert_eq!(
            Watchdog::new(vec![t(6 * 3600)]).interval(),
            Duration::from_secs(60)
        );
        assert_eq!(
            Watchdog::new(vec![t(6 * 3600), t(20)]).interval(),
            Duration::from_secs(5)
        );
    }
}
