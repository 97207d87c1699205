//! The detection task's metric families: findings journaled by rule and
//! severity, activities evaluated, rows no rule could see, findings derived
//! again (a re-evaluation that the journal kept once), and the detection
//! lag. Labels are bounded: rule ids come from the loaded rule set and
//! severities are five words.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::task::Step;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    pub rule: String,
    pub severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabel {
    pub rule: String,
}

type SecondsGauge = Gauge<f64, AtomicU64>;

/// Every detection family: registered once per process (the process
/// keeps one, see `Metrics::families`), and the handles the detection task
/// updates (a clone shares the same counters).
#[derive(Clone, Default)]
pub struct DetectionMetrics {
    findings: Family<FindingLabels, Counter>,
    evaluated: Counter,
    errors: Counter,
    repeated: Counter,
    lag: SecondsGauge,
    failures: Counter,
    failing: Gauge,
    window_activities: Family<RuleLabel, Gauge>,
    /// The rules `window_activities` has a series for (a reload may drop one).
    window_rules: Arc<Mutex<Vec<String>>>,
}

impl DetectionMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "claudit_findings",
            "Findings journaled, by rule and severity",
            self.findings.clone(),
        );
        r.register(
            "claudit_detection_evaluated",
            "Activities the detection task evaluated",
            self.evaluated.clone(),
        );
        r.register(
            "claudit_detection_errors",
            "Journal rows the rules could not evaluate (not a JSON object); they are still delivered",
            self.errors.clone(),
        );
        r.register(
            "claudit_detection_findings_repeated",
            "Findings derived again and kept once (a re-evaluation after a restart)",
            self.repeated.clone(),
        );
        r.register(
            "claudit_detection_failures",
            "Evaluation steps that failed (the state database busy, full or refusing a write); \
             each is retried from the committed cursor",
            self.failures.clone(),
        );
        r.register(
            "claudit_detection_failing",
            "1 while the detection task is retrying after a failure, 0 once a step committed",
            self.failing.clone(),
        );
        r.register(
            "claudit_detection_window_activities",
            "Activities a stateful rule's windows hold (detection's memory grows with them), by rule",
            self.window_activities.clone(),
        );
        r.register_with_unit(
            "claudit_detection_lag",
            "How long ago the oldest activity not yet evaluated was journaled (0 when detection is caught up)",
            Unit::Seconds,
            self.lag.clone(),
        );
    }

    /// A step failed; the task retries.
    pub fn failed(&self) {
        self.failures.inc();
        self.failing.set(1);
    }

    /// What each stateful rule's windows hold now
    /// ([`super::Engine::held_by_rule`]); a rule no longer listed (turned
    /// off by a reload) loses its series.
    pub fn windows<R: AsRef<str>>(&self, held: &[(R, usize)]) {
        let mut shown = self
            .window_rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (rule, count) in held {
            self.window_activities
                .get_or_create(&RuleLabel {
                    rule: rule.as_ref().to_string(),
                })
                .set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
        shown.retain(|rule| {
            let listed = held.iter().any(|(r, _)| r.as_ref() == rule);
            if !listed {
                self.window_activities
                    .remove(&RuleLabel { rule: rule.clone() });
            }
            listed
        });
        for (rule, _) in held {
            if !shown.iter().any(|r| r == rule.as_ref()) {
                shown.push(rule.as_ref().to_string());
            }
        }
    }

    /// One evaluation step committed.
    pub fn record(&self, step: &Step) {
        self.evaluated
            .inc_by((step.rows - step.errors.min(step.rows)) as u64);
        self.errors.inc_by(step.errors as u64);
        self.repeated.inc_by(step.repeated as u64);
        for f in &step.journaled {
            self.findings
                .get_or_create(&FindingLabels {
                    rule: f.rule.id.clone(),
                    severity: f.rule.severity.as_str().to_string(),
                })
                .inc();
        }
        self.lag.set(step.lag_ms as f64 / 1000.0);
        self.failing.set(0);
    }
}
