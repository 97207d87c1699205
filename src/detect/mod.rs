//! Detections: Sigma rules over every activity, producing findings.
//!
//! - `rule.rs`: what a rule is (id, title, severity, ATT&CK, vendors, kind).
//! - `load.rs`: the built-in pack (`rules/`, compiled in by `pack.rs`) and
//!   the operator's `rule_dirs`, parsed with rsigma-parser and checked.
//! - `event.rs`: what a rule sees of an activity: the raw fields and the
//!   `claudit.*` namespace, computed field by field from the journal's
//!   enrichment context when a rule asks.
//! - `engine.rs`: one rsigma-eval engine for every enabled rule's
//!   detections; a match goes through the allow-lists to its rule.
//! - `window.rs`: correlation (counts, distinct counts, sequences) and the
//!   claudit stages (geo-velocity, first-seen) over `created_at`, with
//!   suppression (the directory stage judges the row's directory context,
//!   `directory/detect.rs`, then fires like a single-event rule); why not rsigma-eval's correlation engine is explained
//!   there.
//! - `finding.rs`: the finding, its deterministic uid, its OCSF Detection
//!   Finding and plain JSON forms.
//! - `settings.rs`, `allow.rs`: `[detections]`.
//! - `cli.rs`: `claudit rules list` and `claudit rules test`.
//! - `task.rs`: the daemon's detection task: reads the journal after its
//!   cursor, evaluates, journals the findings with the cursor in one
//!   transaction, and at start-up rebuilds windows and suppression from the
//!   journal ([`Engine::restore`] with the journaled findings, then
//!   [`Engine::evaluate`] with `replay: true` over [`Engine::rebuild_horizon`]
//!   before the cursor). A crash between evaluation and commit re-evaluates:
//!   same inputs in the same order give the same findings with the same
//!   uids, which the journal keeps once.
//! - `metrics.rs`: findings by rule and severity, evaluations, errors, lag.

pub mod allow;
pub mod cli;
pub mod engine;
pub mod event;
pub mod finding;
pub mod load;
pub mod metrics;
mod pack;
pub mod rule;
pub mod settings;
pub mod task;
pub mod window;

pub use engine::{Engine, Input, RuleState};
pub use finding::{Finding, FiredAnchor};
pub use load::{LoadError, RuleSet};
pub use rule::{Kind, Severity};
pub use settings::DetectionSettings;

/// The built-in rule files (name, YAML), for documentation and tests.
pub fn builtin_files() -> &'static [(&'static str, &'static str)] {
    pack::PACK
}

#[cfg(test)]
mod tests;
