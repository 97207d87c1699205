//! `claudit rules list` and `claudit rules test`.
//!
//! `rules test` reads NDJSON: each line a raw activity as the API serves
//! it, or `{"activity": {...}, "context": {...}, "arrived_at": "..."}` to
//! give the enrichment claudit would have found (`ocsf::JournalContext`:
//! GeoIP, user agent, self-generated) and when the activity arrived
//! (default: its `created_at`, so the output is reproducible). A line
//! `{"case": "name", "expect": N}` starts a new case: the rules start
//! afresh, and the case must produce N findings (of `--rule` when given,
//! else of every rule); a mismatch is reported and the command exits 1.
//! This is the format of the pack's own tests (`rules/tests/*.ndjson`).
//!
//! The command reads no state database, so it has no directory: the
//! directory rules (`kind: directory`) judge only records that give one,
//! `{"activity": {...}, "directory": {"actor": IDENTITY, "user": IDENTITY,
//! "verified_domains": [...]}}` (an identity as `unmapped.claudit.directory`
//! shows it), and stay silent on the others, which the command says.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufRead;
use std::sync::Arc;

use serde_json::Value;

use super::engine::{Engine, Input};
use super::finding::Finding;
use super::load::RuleSet;
use super::rule::Kind;
use super::settings::DetectionSettings;
use crate::directory::detect::DirectoryFacts;
use crate::enrich::Enricher;
use crate::model::{Activity, parse_time};
use crate::ocsf::JournalContext;

/// The rows of `claudit rules list`. `directory_sources`: the sources
/// with `[sources.directory]` (without one, the directory rules judge
/// nothing, and the list says so).
pub fn list(
    set: &RuleSet,
    settings: &DetectionSettings,
    directory_sources: &[String],
) -> Result<String, String> {
    let engine = Engine::new(set, settings)?;
    let mut out = String::new();
    let rows: Vec<[String; 6]> = engine
        .rules()
        .iter()
        .map(|r| {
            let state = if !settings.enabled {
                "off ([detections] enabled = false)".to_string()
            } else if r.enabled && r.meta.kind == Kind::Directory && directory_sources.is_empty() {
                "inactive (no source has [sources.directory])".to_string()
            } else if r.enabled {
                "enabled".to_string()
            } else {
                "disabled".to_string()
            };
            let mut tuned = r.tuned.join(",");
            if !tuned.is_empty() {
                tuned = format!(" (tuned: {tuned})");
            }
            [
                r.meta.id.clone(),
                format!("{state}{tuned}"),
                r.severity.to_string(),
                r.meta.kind.to_string(),
                r.meta.origin.to_string(),
                r.meta.title.clone(),
            ]
        })
        .collect();
    let header = ["RULE", "STATE", "SEVERITY", "KIND", "SOURCE", "TITLE"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: [&str; 6]| {
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                let _ = writeln!(out, "{cell}");
            } else {
                let _ = write!(out, "{cell:<width$}  ", width = widths[i]);
            }
        }
    };
    line(header);
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
    Ok(out)
}

/// Keeps only the rule `id` (`rules test --rule`).
pub fn only_rule(set: &mut RuleSet, id: &str) -> Result<(), String> {
    if set.get(id).is_none() {
        let hint = crate::toml_reader::closest(id, set.ids())
            .map(|near| format!("did you mean {near}? "))
            .unwrap_or_default();
        return Err(format!(
            "no such rule; {hint}(claudit rules list shows every rule)"
        ));
    }
    set.retain(|r| r.meta.id == id);
    Ok(())
}

/// How the README names a vendor of a rule's `vendors`.
fn vendor_name(vendor: &str) -> &str {
    match vendor {
        "elastic" => "Elastic",
        "panther" => "Panther",
        "datadog" => "Datadog",
        "sumo_logic" => "Sumo Logic",
        "splunk" => "Splunk",
        "claude_audit_dashboard" => "claude-audit-dashboard",
        other => other,
    }
}

/// The README's table of the built-in rules (README, Detections; a test
/// keeps it current).
pub fn markdown_table(set: &RuleSet) -> String {
    let mut out = String::from(
        "| id | title | severity | kind | logic | vendors |\n|---|---|---|---|---|---|\n",
    );
    for rule in set.iter() {
        let m = &rule.meta;
        let vendors: Vec<&str> = m.vendors.iter().map(|v| vendor_name(v)).collect();
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            m.id,
            m.title.replace('|', "\\|"),
            m.severity,
            m.kind,
            m.logic.replace('|', "\\|"),
            vendors.join(", ")
        );
    }
    out
}

/// What `rules test` prints for each finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// OCSF Detection Findings (as an OCSF sink receives them).
    Ocsf,
    /// claudit's plain JSON findings (as a raw sink receives them).
    Plain,
}

/// One case whose finding count was not the expected one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub case: String,
    /// Line of the case header.
    pub line: usize,
    pub expected: usize,
    pub got: usize,
}

/// The outcome of running one NDJSON input.
#[derive(Debug, Default)]
pub struct TestRun {
    pub findings: Vec<Finding>,
    pub cases: usize,
    pub mismatches: Vec<Mismatch>,
    pub activities: usize,
    /// Activities given without a `"directory"` (the directory rules did
    /// not judge them: the command reads no directory).
    pub without_directory: usize,
}

/// The note `rules test` prints when directory rules are on and some
/// records carry no directory context; `None` otherwise.
pub fn directory_note(
    set: &RuleSet,
    settings: &DetectionSettings,
    run: &TestRun,
) -> Option<String> {
    if run.without_directory == 0 || !settings.enabled {
        return None;
    }
    let ids: Vec<&str> = set
        .iter()
        .filter(|r| r.meta.kind == Kind::Directory)
        .filter(|r| settings.tuning(&r.meta.id).and_then(|t| t.enabled) != Some(false))
        .map(|r| r.meta.id.as_str())
        .collect();
    if ids.is_empty() {
        return None;
    }
    Some(format!(
        "no directory: rules test reads no state database, so the directory rules ({}) judged none of the {} record(s) without a \"directory\" context; give one as {{\"activity\": {{...}}, \"directory\": {{\"actor\": {{...}}, \"verified_domains\": [...]}}}} (see rules/tests/departed-user-activity.ndjson)",
        ids.join(", "),
        run.without_directory
    ))
}

/// Runs the rules over one NDJSON input (see the module docs). `rule`
/// restricts the expectations of cases to that rule's findings.
pub fn run(
    name: &str,
    reader: impl BufRead,
    set: &RuleSet,
    settings: &DetectionSettings,
    enricher: &Enricher,
    rule: Option<&str>,
) -> Result<TestRun, String> {
    let mut run = TestRun::default();
    let mut engine = Engine::new(set, settings)?;
    // (name, header line, expected, findings so far)
    let mut case: Option<(String, usize, usize, usize)> = None;
    let close = |case: Option<(String, usize, usize, usize)>, run: &mut TestRun| {
        if let Some((name, line, expected, got)) = case
            && expected != got
        {
            run.mismatches.push(Mismatch {
                case: name,
                line,
                expected,
                got,
            });
        }
    };
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| format!("{name}: cannot read line {n}: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line)
            .map_err(|e| format!("{name}:{n}: not JSON: {e}; write one JSON object per line"))?;
        if let Some(case_name) = value.get("case").and_then(Value::as_str) {
            let expected = value.get("expect").and_then(Value::as_u64).ok_or_else(|| {
                format!("{name}:{n}: a case line needs \"expect\": the number of findings, e.g. {{\"case\": \"{case_name}\", \"expect\": 1}}")
            })?;
            close(case.take(), &mut run);
            engine = Engine::new(set, settings)?;
            run.cases += 1;
            case = Some((case_name.to_string(), n, expected as usize, 0));
            continue;
        }
        let (activity_json, context, arrived, directory) = match value.get("activity") {
            Some(activity) if value.get("type").is_none() => {
                let directory = match value.get("directory") {
                    Some(d) => Some(serde_json::from_value::<DirectoryFacts>(d.clone()).map_err(
                        |e| {
                            format!(
                                "{name}:{n}: \"directory\" is not a directory context ({{\"actor\": identity, \"user\": identity, \"verified_domains\": [...]}}): {e}"
                            )
                        },
                    )?),
                    None => None,
                };
                let context = match value.get("context") {
                    Some(c) => {
                        serde_json::from_value::<JournalContext>(c.clone()).map_err(|e| {
                            format!("{name}:{n}: \"context\" is not an enrichment context: {e}")
                        })?
                    }
                    None => JournalContext::default(),
                };
                let arrived = match value.get("arrived_at") {
                    Some(t) => Some(t.as_str().and_then(parse_time).ok_or_else(|| {
                        format!("{name}:{n}: \"arrived_at\" must be an RFC 3339 time")
                    })?),
                    None => None,
                };
                (activity.to_string(), Some(context), arrived, directory)
            }
            _ => (line.clone(), None, None, None),
        };
        if directory.is_none() {
            run.without_directory += 1;
        }
        let activity = Activity::from_json(&activity_json)
            .map_err(|e| format!("{name}:{n}: not a JSON activity: {e}"))?;
        let context = Arc::new(context.unwrap_or_else(|| {
            JournalContext {
                self_generated: false,
                enrichment: activity
                    .actor
                    .as_ref()
                    .map(|a| enricher.enrich(a.ip_address.as_deref(), a.user_agent.as_deref())),
            }
        }));
        let created_at_ms = activity.created_at_ms();
        let journaled_at_ms = arrived.map_or(created_at_ms, |t| t.timestamp_millis());
        let id = activity.id.clone();
        let fields = Value::Object(activity.fields);
        let findings = engine.evaluate_with_directory(
            &Input {
                id: &id,
                created_at_ms,
                activity: &fields,
                context: &context,
                journaled_at_ms,
                backfill: false,
                replay: false,
            },
            directory.as_ref(),
        );
        run.activities += 1;
        if let Some((_, _, _, got)) = case.as_mut() {
            *got += findings
                .iter()
                .filter(|f| rule.is_none_or(|r| f.rule.id == r))
                .count();
        }
        run.findings.extend(findings);
    }
    close(case, &mut run);
    Ok(run)
}

/// A finding as `rules test` prints it.
pub fn render(finding: &Finding, output: Output) -> String {
    match output {
        Output::Ocsf => finding.to_ocsf().to_string(),
        Output::Plain => finding.to_plain_json().to_string(),
    }
}

/// Findings per rule id, for a summary line.
pub fn summary(findings: &[Finding]) -> String {
    let mut per_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for f in findings {
        *per_rule.entry(&f.rule.id).or_default() += 1;
    }
    per_rule
        .iter()
        .map(|(rule, n)| format!("{rule}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
