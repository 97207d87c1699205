//! `[detections]`: whether rules run, extra rule directories, per-rule
//! tuning, suppression, allow-lists and the embargo list; read with the
//! configuration's own reader (file, line, key and fix for every problem),
//! and every rule (built-in and the operator's) loaded and checked at the
//! same time, so `claudit check` reports a broken rule file as it reports a
//! broken setting.

use std::path::PathBuf;
use std::time::Duration;

use crate::toml_reader::{ConfigError, Ctx, Got, Table, Text, closest, format_duration};

use super::allow::{AllowList, parse_network};
use super::load::{self, RuleSet};
use super::rule::Severity;

/// The default embargo list: the jurisdictions under comprehensive US
/// sanctions administered by OFAC (31 CFR Parts 510 North Korea, 515 Cuba,
/// 560 Iran) as ISO 3166-1 alpha-2 codes. Syria's program ended on
/// 2025-07-01 (Executive Order 14312), and the occupied regions of Ukraine
/// (Crimea, so-called DNR and LNR) are regions, not countries, so a
/// country code cannot express them; add "SY", "RU" or others if your
/// policy needs them.
pub const DEFAULT_EMBARGOED_COUNTRIES: &[&str] = &["CU", "IR", "KP"];

/// How far behind the newest activity a late one may arrive and still be
/// counted with its neighbours: the default sweep horizon (60 min) plus
/// settle lag and margin.
pub const DEFAULT_LATE_ARRIVAL_ALLOWANCE: Duration = Duration::from_secs(2 * 3600);

#[derive(Debug, Clone)]
pub struct DetectionSettings {
    pub enabled: bool,
    /// Directories of operator rules (`*.yml`, `*.yaml`).
    pub rule_dirs: Vec<PathBuf>,
    /// ISO country codes for `claudit.geo.embargoed`.
    pub embargoed_countries: Vec<String>,
    pub late_arrival_allowance: Duration,
    /// Applies to every rule.
    pub allow: AllowList,
    /// Per-rule tuning (`[[detections.rules]]`), in file order.
    pub rules: Vec<RuleTuning>,
}

impl Default for DetectionSettings {
    fn default() -> DetectionSettings {
        DetectionSettings {
            enabled: true,
            rule_dirs: Vec::new(),
            embargoed_countries: DEFAULT_EMBARGOED_COUNTRIES
                .iter()
                .map(|c| c.to_string())
                .collect(),
            late_arrival_allowance: DEFAULT_LATE_ARRIVAL_ALLOWANCE,
            allow: AllowList::default(),
            rules: Vec::new(),
        }
    }
}

impl DetectionSettings {
    /// The tuning of one rule, if any.
    pub fn tuning(&self, rule_id: &str) -> Option<&RuleTuning> {
        self.rules.iter().find(|t| t.id == rule_id)
    }

    /// Every rule, built-in and from `rule_dirs` (an operator rule with a
    /// built-in rule's id replaces it).
    pub fn load_rules(&self) -> Result<RuleSet, Vec<load::LoadError>> {
        load::load_all(&self.rule_dirs)
    }
}

/// One `[[detections.rules]]` entry.
#[derive(Debug, Clone, Default)]
pub struct RuleTuning {
    /// The rule id (`claudit rules list`).
    pub id: String,
    pub enabled: Option<bool>,
    pub severity: Option<Severity>,
    /// Count or distinct-count threshold (fires at or above it).
    pub threshold: Option<u64>,
    /// Window of a count, distinct count, sequence or travel rule; history
    /// of a first-seen rule.
    pub window: Option<Duration>,
    /// One finding per rule and group key per this long; "0s" turns it off.
    pub suppress: Option<Duration>,
    /// Applies to this rule only, in addition to `[detections.allow]`.
    pub allow: AllowList,
}

/// Reads `[detections]` and checks every rule it enables.
pub(crate) fn read(cx: &mut Ctx, root: &mut Table) -> DetectionSettings {
    let mut t = root.subtable(cx, "detections");
    let defaults = DetectionSettings::default();
    let enabled = t.boolean(cx, "enabled", true).unwrap_or(true);
    let rule_dirs = match t.string_list(cx, "rule_dirs", "[\"/etc/claudit/rules\"]", not_empty) {
        Got::Value(dirs) => dirs.iter().map(|d| cx.resolve_path(d)).collect(),
        _ => Vec::new(),
    };
    let embargoed_countries = match t.string_list(
        cx,
        "embargoed_countries",
        "[\"CU\", \"IR\", \"KP\"]",
        country_code,
    ) {
        Got::Value(codes) => codes
            .iter()
            .map(|c| c.trim().to_ascii_uppercase())
            .collect(),
        Got::Absent | Got::Invalid => defaults.embargoed_countries.clone(),
    };
    let late_arrival_allowance = t
        .duration(cx, "late_arrival_allowance", DEFAULT_LATE_ARRIVAL_ALLOWANCE)
        .unwrap_or(DEFAULT_LATE_ARRIVAL_ALLOWANCE);
    let mut allow_table = t.subtable(cx, "allow");
    let allow = read_allow(cx, &mut allow_table);
    allow_table.finish(cx);

    let mut rules = Vec::new();
    let mut lines = Vec::new();
    for mut rt in t.array_of_tables(cx, "rules").unwrap_or_default() {
        let line = rt.line;
        let id_line = rt.line_of_key(cx, "id");
        let id_key = rt.key_path("id");
        let id = rt
            .required_text(cx, "id", "\"auth-failure-burst\"")
            .map(|t| t.value);
        let tuning_enabled = rt.boolean(cx, "enabled", true);
        let severity = match rt.text(cx, "severity") {
            Got::Value(text) => match Severity::parse(&text.value) {
                Some(s) => Some(s),
                None => {
                    let key = rt.key_path("severity");
                    cx.error(
                        key,
                        text.line,
                        format!(
                            "{} is not a severity; write one of informational, low, medium, high, critical",
                            text.shown()
                        ),
                    );
                    None
                }
            },
            _ => None,
        };
        let threshold = rt
            .has_key("threshold")
            .then(|| rt.integer(cx, "threshold", 1..=1_000_000, 5, ""))
            .flatten()
            .map(|n| n as u64);
        let window = rt
            .has_key("window")
            .then(|| rt.duration(cx, "window", Duration::from_secs(3600)))
            .flatten();
        let suppress = rt
            .has_key("suppress")
            .then(|| rt.duration(cx, "suppress", Duration::from_secs(3600)))
            .flatten();
        let mut allow_table = rt.subtable(cx, "allow");
        let rule_allow = read_allow(cx, &mut allow_table);
        allow_table.finish(cx);
        if window == Some(Duration::ZERO) {
            let key = rt.key_path("window");
            let line = rt.line_of_key(cx, "window");
            cx.error(
                key,
                line,
                "a window cannot be empty; write e.g. window = \"1h\"",
            );
        }
        let enabled_set = rt.has_key("enabled");
        rt.finish(cx);
        if let Some(id) = id {
            lines.push((id_key, id_line.or(line)));
            rules.push(RuleTuning {
                id,
                enabled: if enabled_set { tuning_enabled } else { None },
                severity,
                threshold,
                window,
                suppress,
                allow: rule_allow,
            });
        }
    }
    t.finish(cx);

    let settings = DetectionSettings {
        enabled,
        rule_dirs,
        embargoed_countries,
        late_arrival_allowance,
        allow,
        rules,
    };
    // Rules are checked even when detections are off: a broken file should
    // not wait for the day someone turns them on.
    match settings.load_rules() {
        Ok(set) => check_tuning(cx, &settings, &set, &lines),
        Err(errors) => {
            for e in errors {
                cx.errors.push(ConfigError {
                    file: e.file,
                    key: e.rule.unwrap_or_default(),
                    message: e.message,
                    line: e.line,
                });
            }
        }
    }
    settings
}

/// Each tuning names a rule that exists and sets only what that rule has.
fn check_tuning(
    cx: &mut Ctx,
    settings: &DetectionSettings,
    set: &RuleSet,
    lines: &[(String, Option<usize>)],
) {
    for (i, (tuning, (key, line))) in settings.rules.iter().zip(lines).enumerate() {
        if let Some(first) = settings.rules[..i].iter().position(|t| t.id == tuning.id) {
            cx.error(
                key.clone(),
                *line,
                format!(
                    "rule {:?} is already tuned by detections.rules[{first}]; merge the two entries",
                    tuning.id
                ),
            );
            continue;
        }
        let Some(rule) = set.get(&tuning.id) else {
            let hint = match closest(&tuning.id, set.ids()) {
                Some(near) => format!("did you mean {near:?}?"),
                None => "run claudit rules list to see every rule id".to_string(),
            };
            cx.error(
                key.clone(),
                *line,
                format!("no rule has the id {:?}; {hint}", tuning.id),
            );
            continue;
        };
        let kind = rule.meta.kind;
        if tuning.threshold.is_some() && !kind.has_threshold() {
            cx.error(
                key.replace(".id", ".threshold"),
                *line,
                format!(
                    "rule {:?} is a {kind} rule and has no threshold; remove threshold (only count and distinct rules have one)",
                    tuning.id
                ),
            );
        }
        if tuning.window.is_some() && !kind.has_window() {
            cx.error(
                key.replace(".id", ".window"),
                *line,
                format!(
                    "rule {:?} is a single-event rule and has no window; remove window (suppress = \"{}\" limits how often it fires)",
                    tuning.id,
                    format_duration(Duration::from_secs(3600))
                ),
            );
        }
    }
}

fn read_allow(cx: &mut Ctx, t: &mut Table) -> AllowList {
    let identities = match t.string_list(
        cx,
        "identities",
        "[\"ci-bot@example.com\", \"apikey_01...\"]",
        not_empty,
    ) {
        Got::Value(v) => v,
        _ => Vec::new(),
    };
    let networks = match t.string_list(cx, "networks", "[\"10.0.0.0/8\"]", network) {
        Got::Value(v) => v.iter().filter_map(|n| parse_network(n).ok()).collect(),
        _ => Vec::new(),
    };
    let user_agents = match t.string_list(cx, "user_agents", "[\"okhttp/\"]", not_empty) {
        Got::Value(v) => v,
        _ => Vec::new(),
    };
    AllowList {
        identities,
        networks,
        user_agents,
    }
}

fn not_empty(text: &Text) -> Option<String> {
    text.value
        .trim()
        .is_empty()
        .then(|| "is empty; remove it or write a value".to_string())
}

fn network(text: &Text) -> Option<String> {
    parse_network(&text.value).err()
}

fn country_code(text: &Text) -> Option<String> {
    let code = text.value.trim();
    let ok = code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic());
    (!ok).then(|| {
        format!(
            "{} is not an ISO 3166-1 alpha-2 country code; write two letters like \"KP\"",
            text.shown()
        )
    })
}
