//! Loading rules: the built-in pack (compiled in) and the operator's
//! `rule_dirs`, each file parsed as Sigma YAML (one or more documents) with
//! `rsigma-parser`, checked (Sigma syntax, unknown modifiers, conditions
//! naming no selection, unknown fields, regular expressions that do not
//! compile, claudit's own attributes), and turned into [`RuleDef`]s. Every
//! problem names the file, the line and the fix.
//!
//! A file's rules: every correlation document, and every detection
//! document no correlation of the same file refers to (a correlation's
//! inputs are not rules of their own). claudit's additions live in a
//! `claudit:` mapping of the rule's document:
//!
//! ```yaml
//! claudit:
//!   vendors: [elastic, panther]        # whose published logic this restates
//!   logic: type is sso_login_failed     # one line for `claudit rules list`
//!   suppress: 1h                        # one finding per group key per 1 h
//!   group-by: [claudit.actor.key]       # single-event rules: the suppression key
//!   known-fields: [new_field]           # fields the activity catalogue does not list yet
//!   also:                               # value_count: further conditions on the window
//!     - {field: actor.user_agent, distinct-gte: 2}
//!     - {field: type, any-of: [claude_chat_created]}
//!   stage:                              # a claudit stage after the detection
//!     type: geo-velocity                # or first-seen, or directory (check: NAME)
//!     group-by: [claudit.actor.key]
//!     timespan: 24h
//!     min-distance-km: 1000
//!     min-speed-kmh: 800
//!     min-countries: 0
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use rsigma_parser::{
    ConditionOperator, CorrelationCondition, CorrelationRule, CorrelationType, Detection,
    SigmaRule, WindowMode,
};
use serde::Deserialize;

use super::event::CLAUDIT_FIELDS;
use super::pack::PACK;
use super::rule::{Kind, Origin, RuleMeta, Severity, attacks_from_tags};

/// One problem in a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The rule file (`rules/<name>` for the built-in pack).
    pub file: PathBuf,
    /// 1-based line in the file.
    pub line: Option<usize>,
    /// The rule id, when known.
    pub rule: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, ": rule {rule}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What a rule decides on after its detection matched.
#[derive(Debug, Clone, PartialEq)]
pub enum Logic {
    Single,
    Count,
    Distinct {
        fields: Vec<String>,
        also: Vec<Also>,
    },
    Sequence {
        ordered: bool,
        /// The number of detections, in order.
        steps: usize,
    },
    GeoVelocity {
        min_distance_km: f64,
        min_speed_kmh: f64,
        min_countries: usize,
    },
    FirstSeen {
        fields: Vec<String>,
    },
    /// A check of the row's directory context (`directory/detect.rs`).
    Directory {
        check: crate::directory::detect::Check,
    },
}

/// A further condition of a distinct-count rule, over the same window.
#[derive(Debug, Clone, PartialEq)]
pub enum Also {
    /// At least this many distinct values of the field.
    Distinct { field: String, at_least: u64 },
    /// The field takes one of these values in at least one activity.
    AnyOf { field: String, values: Vec<String> },
}

/// A rule's tunable parameters as the rule file sets them.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Fires at or above this count (count and distinct rules; 1 otherwise).
    pub threshold: u64,
    /// Window (history for first-seen); zero for single-event rules.
    pub window: Duration,
    /// One finding per group key per this long; zero = every match.
    pub suppress: Duration,
    /// Fields whose values form the group key, in order.
    pub group_by: Vec<String>,
}

/// One loaded rule.
#[derive(Debug, Clone)]
pub struct RuleDef {
    pub meta: RuleMeta,
    /// The detections feeding the rule, in step order (one for all kinds
    /// but sequences).
    pub inputs: Vec<SigmaRule>,
    pub logic: Logic,
    pub params: Params,
}

/// Every loaded rule, in a stable order (built-in pack by file name, then
/// the operator's directories in configuration order, files by name).
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<RuleDef>,
}

impl RuleSet {
    pub fn get(&self, id: &str) -> Option<&RuleDef> {
        self.rules.iter().find(|r| r.meta.id == id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.meta.id.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = &RuleDef> {
        self.rules.iter()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Only the rule with this id (for `claudit rules test --rule`).
    pub fn retain(&mut self, keep: impl Fn(&RuleDef) -> bool) {
        self.rules.retain(keep);
    }
}

/// The built-in pack and every `*.yml`/`*.yaml` file of `dirs`. An
/// operator rule with the id of a built-in rule replaces it; two operator
/// rules with one id are an error.
pub fn load_all(dirs: &[PathBuf]) -> Result<RuleSet, Vec<LoadError>> {
    let mut errors = Vec::new();
    let mut rules: Vec<RuleDef> = Vec::new();
    for (name, text) in PACK {
        match load_text(Origin::BuiltIn(name), text) {
            Ok(defs) => rules.extend(defs),
            Err(e) => errors.extend(e),
        }
    }
    let builtin = rules.len();
    for dir in dirs {
        let files = match rule_files(dir) {
            Ok(files) => files,
            Err(message) => {
                errors.push(LoadError {
                    file: dir.clone(),
                    line: None,
                    rule: None,
                    message,
                });
                continue;
            }
        };
        for path in files {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) => {
                    errors.push(LoadError {
                        file: path.clone(),
                        line: None,
                        rule: None,
                        message: format!(
                            "cannot read the rule file: {e}; check that claudit may read it"
                        ),
                    });
                    continue;
                }
            };
            let defs = match load_text(Origin::File(path.clone()), &text) {
                Ok(defs) => defs,
                Err(e) => {
                    errors.extend(e);
                    continue;
                }
            };
            for def in defs {
                match rules.iter().position(|r| r.meta.id == def.meta.id) {
                    Some(i) if i < builtin => rules[i] = def,
                    Some(i) => errors.push(LoadError {
                        file: path.clone(),
                        line: Some(def.meta.line),
                        rule: Some(def.meta.id.clone()),
                        message: format!(
                            "the id is already used by the rule in {}:{}; give each rule its own id",
                            rules[i].meta.origin, rules[i].meta.line
                        ),
                    }),
                    None => rules.push(def),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(RuleSet { rules })
    } else {
        Err(errors)
    }
}

/// The rule files of a directory, sorted by name.
fn rule_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!("cannot read the rule directory: {e}; check detections.rule_dirs and the directory's permissions")
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|ext| ext == "yml" || ext == "yaml")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// One YAML document of a file: its text and its first line in the file.
struct Document<'t> {
    text: &'t str,
    first_line: usize,
}

fn documents(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_end() == "---" {
            docs.push(Document {
                text: &text[start..offset],
                first_line: start_line,
            });
            start = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    docs.push(Document {
        text: &text[start..],
        first_line: start_line,
    });
    docs.retain(|d| {
        d.text
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    docs
}

/// A parsed document of a file.
enum Parsed {
    Detection(Box<SigmaRule>),
    Correlation(Box<CorrelationRule>),
}

struct ParsedDoc<'t> {
    doc: Document<'t>,
    parsed: Parsed,
}

/// The rules of one file's text.
pub fn load_text(origin: Origin, text: &str) -> Result<Vec<RuleDef>, Vec<LoadError>> {
    let file = match &origin {
        Origin::BuiltIn(name) => PathBuf::from(format!("rules/{name}")),
        Origin::File(path) => path.clone(),
    };
    let mut errors = Vec::new();
    let error =
        |errors: &mut Vec<LoadError>, line: Option<usize>, rule: Option<&str>, msg: String| {
            errors.push(LoadError {
                file: file.clone(),
                line,
                rule: rule.map(str::to_string),
                message: msg,
            })
        };
    let mut parsed_docs = Vec::new();
    for doc in documents(text) {
        match parse_document(&doc) {
            Ok(parsed) => parsed_docs.push(ParsedDoc { doc, parsed }),
            Err(problems) => {
                let id = written_id(&doc);
                for (line, msg) in problems {
                    error(&mut errors, line, id.as_deref(), msg);
                }
            }
        }
    }
    if parsed_docs.is_empty() && errors.is_empty() {
        error(
            &mut errors,
            None,
            None,
            "the file holds no rule; write a Sigma rule (title, id, logsource, detection, level) or remove the file".to_string(),
        );
    }

    // Which detection documents the file's correlations use.
    let mut referenced: HashSet<usize> = HashSet::new();
    let find_detection = |reference: &str| {
        parsed_docs.iter().position(|p| match &p.parsed {
            Parsed::Detection(r) => {
                r.id.as_deref() == Some(reference) || r.name.as_deref() == Some(reference)
            }
            Parsed::Correlation(_) => false,
        })
    };
    for p in &parsed_docs {
        if let Parsed::Correlation(c) = &p.parsed {
            for reference in &c.rules {
                if let Some(i) = find_detection(reference) {
                    referenced.insert(i);
                }
            }
        }
    }

    let mut defs = Vec::new();
    for (i, p) in parsed_docs.iter().enumerate() {
        let result = match &p.parsed {
            Parsed::Detection(_) if referenced.contains(&i) => continue,
            Parsed::Detection(rule) => detection_rule(&origin, &p.doc, rule),
            Parsed::Correlation(corr) => {
                let mut inputs = Vec::new();
                let mut missing = Vec::new();
                for reference in &corr.rules {
                    match find_detection(reference) {
                        Some(j) => {
                            if let Parsed::Detection(r) = &parsed_docs[j].parsed {
                                inputs.push(((**r).clone(), parsed_docs[j].doc.first_line));
                            }
                        }
                        None => missing.push(reference.clone()),
                    }
                }
                if missing.is_empty() {
                    correlation_rule(&origin, &p.doc, corr, inputs, &parsed_docs)
                } else {
                    Err(vec![(
                        line_of(&p.doc, "rules:"),
                        format!(
                            "the correlation refers to {missing:?}, which no detection document of this file has as id or name; \
                             put the detection rule in the same file, separated by ---"
                        ),
                    )])
                }
            }
        };
        match result {
            Ok(def) => {
                if let Some(other) = defs.iter().find(|d: &&RuleDef| d.meta.id == def.meta.id) {
                    error(
                        &mut errors,
                        Some(def.meta.line),
                        Some(&def.meta.id),
                        format!(
                            "the id is already used by the rule at line {}; give each rule its own id",
                            other.meta.line
                        ),
                    );
                } else {
                    defs.push(def);
                }
            }
            Err(problems) => {
                let id = match &p.parsed {
                    Parsed::Detection(r) => r.id.clone(),
                    Parsed::Correlation(c) => c.id.clone(),
                };
                for (line, msg) in problems {
                    error(&mut errors, line, id.as_deref(), msg);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(defs)
    } else {
        Err(errors)
    }
}

type Problems = Vec<(Option<usize>, String)>;

/// Parses one document with rsigma-parser and its linter's errors.
fn parse_document(doc: &Document) -> Result<Parsed, Problems> {
    let mut problems = Vec::new();
    let collection = match rsigma_parser::parse_sigma_yaml(doc.text) {
        Ok(c) => c,
        Err(e) => {
            let message = e.to_string();
            return Err(vec![(
                yaml_error_line(doc, &message),
                format!("not a valid Sigma rule: {message}"),
            )]);
        }
    };
    for message in &collection.errors {
        problems.push((locate_parse_error(doc, message), explain(message)));
    }
    for warning in rsigma_parser::lint_yaml_str(doc.text) {
        if warning.severity == rsigma_parser::Severity::Error {
            let line = warning
                .span
                .map(|s| doc.first_line + s.start_line as usize)
                .or_else(|| line_of(doc, warning.path.trim_start_matches('/')));
            problems.push((line, format!("{} ({})", warning.message, warning.path)));
        }
    }
    if !problems.is_empty() {
        problems.dedup();
        return Err(problems);
    }
    let mut rules = collection.rules;
    let mut correlations = collection.correlations;
    match (rules.len(), correlations.len()) {
        (1, 0) => Ok(Parsed::Detection(Box::new(rules.remove(0)))),
        (0, 1) => Ok(Parsed::Correlation(Box::new(correlations.remove(0)))),
        _ => Err(vec![(
            Some(doc.first_line),
            "expected one detection or correlation rule in this YAML document \
             (filters and action: global documents are not supported); separate rules with ---"
                .to_string(),
        )]),
    }
}

/// A friendlier message for the parser's common complaints.
fn explain(message: &str) -> String {
    if message.starts_with("Unknown modifier") {
        format!(
            "{message}: Sigma modifiers are contains, startswith, endswith, all, re, cidr, \
             exists, cased, windash, base64, base64offset, gt, gte, lt, lte; fix the spelling"
        )
    } else {
        format!("not a valid Sigma rule: {message}")
    }
}

/// The line a parser message points at: "line N" (document-relative) or
/// the quoted token it names.
fn locate_parse_error(doc: &Document, message: &str) -> Option<usize> {
    if let Some(line) = yaml_error_line(doc, message) {
        return Some(line);
    }
    let quoted = message.split('\'').nth(1)?;
    line_of(doc, &format!("|{quoted}")).or_else(|| line_of(doc, quoted))
}

fn yaml_error_line(doc: &Document, message: &str) -> Option<usize> {
    let at = message.find("line ")?;
    let digits: String = message[at + 5..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse::<usize>()
        .ok()
        .map(|n| doc.first_line + n.saturating_sub(1))
}

/// The `id:` a document that did not parse says it has (for messages).
fn written_id(doc: &Document) -> Option<String> {
    doc.text
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
        .filter(|v| !v.is_empty())
}

/// The first line of the document containing `token`.
fn line_of(doc: &Document, token: &str) -> Option<usize> {
    if token.is_empty() {
        return None;
    }
    doc.text
        .lines()
        .position(|l| l.contains(token))
        .map(|i| doc.first_line + i)
}

/// claudit's `claudit:` mapping of a rule document.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ClauditBlock {
    #[serde(default)]
    vendors: Vec<String>,
    #[serde(default)]
    logic: Option<String>,
    #[serde(default)]
    suppress: Option<String>,
    #[serde(default)]
    group_by: Vec<String>,
    #[serde(default)]
    known_fields: Vec<String>,
    #[serde(default)]
    also: Vec<AlsoBlock>,
    #[serde(default)]
    stage: Option<StageBlock>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct AlsoBlock {
    field: String,
    #[serde(default)]
    distinct_gte: Option<u64>,
    #[serde(default)]
    any_of: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    rename_all_fields = "kebab-case",
    deny_unknown_fields
)]
enum StageBlock {
    GeoVelocity {
        group_by: Vec<String>,
        timespan: String,
        min_distance_km: f64,
        min_speed_kmh: f64,
        #[serde(default)]
        min_countries: usize,
    },
    FirstSeen {
        fields: Vec<String>,
        history: String,
    },
    Directory {
        check: String,
    },
}

fn claudit_block(
    doc: &Document,
    attributes: &HashMap<String, impl serde::Serialize>,
) -> Result<ClauditBlock, Problems> {
    let Some(value) = attributes.get("claudit") else {
        return Ok(ClauditBlock::default());
    };
    let line = line_of(doc, "claudit:");
    let json = serde_json::to_value(value)
        .map_err(|e| vec![(line, format!("the claudit: mapping cannot be read: {e}"))])?;
    serde_json::from_value(json).map_err(|e| {
        vec![(
            line,
            format!(
                "the claudit: mapping is not valid: {e}; its keys are vendors, logic, suppress, \
                 group-by, known-fields, also and stage (see README, Detections)"
            ),
        )]
    })
}

fn duration(doc: &Document, key: &str, text: &str) -> Result<Duration, Problems> {
    humantime::parse_duration(text.trim()).map_err(|_| {
        vec![(
            line_of(doc, key),
            format!("{key} {text:?} is not a duration; write e.g. \"15m\", \"1h\", \"14d\""),
        )]
    })
}

/// The stable id every rule needs (tunings and findings name it).
fn rule_id(doc: &Document, id: Option<&str>) -> Result<String, Problems> {
    let Some(id) = id else {
        return Err(vec![(
            Some(doc.first_line),
            "the rule has no id; add id: <kebab-case-name> (lower-case letters, digits and -), \
             which findings, tunings and claudit rules list use"
                .to_string(),
        )]);
    };
    let valid = !id.is_empty()
        && id.len() <= 80
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-');
    if valid {
        Ok(id.to_string())
    } else {
        Err(vec![(
            line_of(doc, "id:"),
            format!(
                "id {id:?} is not a kebab-case name; use lower-case letters, digits and - (at most 80), e.g. my-team-rule"
            ),
        )])
    }
}

fn severity(doc: &Document, level: Option<rsigma_parser::Level>) -> Result<Severity, Problems> {
    level.map(Severity::from).ok_or_else(|| {
        vec![(
            Some(doc.first_line),
            "the rule has no level; add level: informational, low, medium, high or critical"
                .to_string(),
        )]
    })
}

#[allow(clippy::too_many_arguments)]
fn meta(
    origin: &Origin,
    doc: &Document,
    id: String,
    title: &str,
    description: Option<&str>,
    severity: Severity,
    tags: &[String],
    block: &ClauditBlock,
    kind: Kind,
) -> Result<RuleMeta, Problems> {
    let attacks = attacks_from_tags(tags).map_err(|e| vec![(line_of(doc, "tags"), e)])?;
    Ok(RuleMeta {
        title: title.to_string(),
        description: description.unwrap_or(title).trim().to_string(),
        logic: block
            .logic
            .clone()
            .unwrap_or_else(|| description.unwrap_or(title).trim().to_string()),
        id,
        severity,
        attacks,
        vendors: block.vendors.clone(),
        kind,
        origin: origin.clone(),
        line: doc.first_line,
    })
}

fn detection_rule(origin: &Origin, doc: &Document, rule: &SigmaRule) -> Result<RuleDef, Problems> {
    let id = rule_id(doc, rule.id.as_deref())?;
    let severity = severity(doc, rule.level)?;
    let block = claudit_block(doc, &rule.custom_attributes)?;
    let mut problems = check_detection(doc, rule, &block.known_fields);
    let suppress = match &block.suppress {
        Some(text) => duration(doc, "suppress", text)?,
        None => Duration::ZERO,
    };
    let check_fields = |fields: &[String], problems: &mut Problems| {
        for f in fields {
            if let Some(msg) = unknown_field(f, &block.known_fields) {
                problems.push((line_of(doc, f), msg));
            }
        }
    };
    check_fields(&block.group_by, &mut problems);
    let (kind, logic, window, group_by) = match &block.stage {
        None => (
            Kind::Single,
            Logic::Single,
            Duration::ZERO,
            block.group_by.clone(),
        ),
        Some(StageBlock::GeoVelocity {
            group_by,
            timespan,
            min_distance_km,
            min_speed_kmh,
            min_countries,
        }) => {
            check_fields(group_by, &mut problems);
            (
                Kind::GeoVelocity,
                Logic::GeoVelocity {
                    min_distance_km: *min_distance_km,
                    min_speed_kmh: *min_speed_kmh,
                    min_countries: *min_countries,
                },
                duration(doc, "timespan", timespan)?,
                group_by.clone(),
            )
        }
        Some(StageBlock::Directory { check }) => {
            use crate::directory::detect::Check;
            let Some(check) = Check::parse(check) else {
                let names: Vec<&str> = Check::ALL.iter().map(|c| c.as_str()).collect();
                return Err(vec![(
                    line_of(doc, "check"),
                    format!(
                        "directory check {check:?} is unknown; write one of {}",
                        names.join(", ")
                    ),
                )]);
            };
            if !block.group_by.is_empty() {
                problems.push((
                    line_of(doc, "group-by"),
                    format!(
                        "a directory stage groups by its check's key ({}); remove group-by",
                        check.group_by().join(", ")
                    ),
                ));
            }
            (
                Kind::Directory,
                Logic::Directory { check },
                Duration::ZERO,
                check.group_by().iter().map(|f| f.to_string()).collect(),
            )
        }
        Some(StageBlock::FirstSeen { fields, history }) => {
            check_fields(fields, &mut problems);
            if fields.is_empty() {
                problems.push((
                    line_of(doc, "fields"),
                    "a first-seen stage needs fields: [the fields whose values are new]".into(),
                ));
            }
            (
                Kind::FirstSeen,
                Logic::FirstSeen {
                    fields: fields.clone(),
                },
                duration(doc, "history", history)?,
                fields.clone(),
            )
        }
    };
    // A value is new once per history: the feed arrives newest-first, so
    // each older activity of a burst would otherwise find nothing before it
    // and be "first" again. Unless the rule says otherwise, a first-seen
    // rule is suppressed for its history.
    let suppress = match (&block.suppress, &logic) {
        (None, Logic::FirstSeen { .. }) => window,
        _ => suppress,
    };
    if kind.has_window() && window.is_zero() {
        problems.push((
            line_of(doc, "stage"),
            "the stage's window is empty; write e.g. timespan: 24h or history: 14d".into(),
        ));
    }
    if !block.also.is_empty() {
        problems.push((
            line_of(doc, "also"),
            "also: applies to value_count correlations only; remove it".into(),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(RuleDef {
        meta: meta(
            origin,
            doc,
            id,
            &rule.title,
            rule.description.as_deref(),
            severity,
            &rule.tags,
            &block,
            kind,
        )?,
        inputs: vec![rule.clone()],
        logic,
        params: Params {
            threshold: 1,
            window,
            suppress,
            group_by,
        },
    })
}

fn correlation_rule(
    origin: &Origin,
    doc: &Document,
    corr: &CorrelationRule,
    inputs: Vec<(SigmaRule, usize)>,
    all: &[ParsedDoc],
) -> Result<RuleDef, Problems> {
    let id = rule_id(doc, corr.id.as_deref())?;
    let severity = severity(doc, corr.level)?;
    let block = claudit_block(doc, &corr.custom_attributes)?;
    let mut problems = Problems::new();
    // Each input's own checks, at its own lines.
    for (rule, first_line) in &inputs {
        if let Some(p) = all.iter().find(|p| p.doc.first_line == *first_line) {
            problems.extend(check_detection(&p.doc, rule, &block.known_fields));
        }
    }
    for f in &corr.group_by {
        if let Some(msg) = unknown_field(f, &block.known_fields) {
            problems.push((line_of(doc, f), msg));
        }
    }
    if corr.window != WindowMode::Sliding {
        problems.push((
            line_of(doc, "window"),
            format!(
                "window: {} is not supported; claudit's windows slide over created_at (remove window:)",
                corr.window.as_str()
            ),
        ));
    }
    let window = Duration::from_secs(corr.timespan.seconds);
    if window.is_zero() {
        problems.push((
            line_of(doc, "timespan"),
            "timespan is empty; write e.g. timespan: 1h".into(),
        ));
    }
    let threshold_of = |problems: &mut Problems| -> u64 {
        let CorrelationCondition::Threshold { predicates, .. } = &corr.condition else {
            problems.push((
                line_of(doc, "condition"),
                "write the condition as a threshold, e.g. condition: {gte: 5}".into(),
            ));
            return 1;
        };
        let mut threshold = None;
        for (op, n) in predicates {
            match op {
                ConditionOperator::Gte => threshold = Some(*n),
                ConditionOperator::Gt => threshold = Some(n + 1),
                _ => problems.push((
                    line_of(doc, "condition"),
                    "claudit fires when a count reaches a threshold; write the condition with gte or gt"
                        .into(),
                )),
            }
        }
        match threshold {
            Some(n) if n >= 1 => n,
            _ => {
                problems.push((
                    line_of(doc, "condition"),
                    "the threshold must be at least 1; write e.g. condition: {gte: 5}".into(),
                ));
                1
            }
        }
    };
    let (kind, logic, threshold) = match corr.correlation_type {
        CorrelationType::EventCount => (Kind::Count, Logic::Count, threshold_of(&mut problems)),
        CorrelationType::ValueCount => {
            let fields = match &corr.condition {
                CorrelationCondition::Threshold {
                    field: Some(fields),
                    ..
                } if !fields.is_empty() => fields.clone(),
                _ => {
                    problems.push((
                        line_of(doc, "condition"),
                        "a value_count condition needs the field to count, e.g. condition: {field: actor.ip_address, gte: 3}".into(),
                    ));
                    Vec::new()
                }
            };
            for f in &fields {
                if let Some(msg) = unknown_field(f, &block.known_fields) {
                    problems.push((line_of(doc, f), msg));
                }
            }
            let mut also = Vec::new();
            for a in &block.also {
                if let Some(msg) = unknown_field(&a.field, &block.known_fields) {
                    problems.push((line_of(doc, &a.field), msg));
                }
                match (a.distinct_gte, a.any_of.is_empty()) {
                    (Some(n), true) => also.push(Also::Distinct {
                        field: a.field.clone(),
                        at_least: n,
                    }),
                    (None, false) => also.push(Also::AnyOf {
                        field: a.field.clone(),
                        values: a.any_of.clone(),
                    }),
                    _ => problems.push((
                        line_of(doc, &a.field),
                        "each also: entry needs exactly one of distinct-gte: N or any-of: [values]"
                            .into(),
                    )),
                }
            }
            let threshold = threshold_of(&mut problems);
            (Kind::Distinct, Logic::Distinct { fields, also }, threshold)
        }
        CorrelationType::Temporal | CorrelationType::TemporalOrdered => {
            if inputs.len() < 2 {
                problems.push((
                    line_of(doc, "rules:"),
                    "a temporal correlation needs at least two rules".into(),
                ));
            }
            (
                Kind::Sequence,
                Logic::Sequence {
                    ordered: corr.correlation_type == CorrelationType::TemporalOrdered,
                    steps: inputs.len(),
                },
                1,
            )
        }
        other => {
            problems.push((
                line_of(doc, "type:"),
                format!(
                    "correlation type {other:?} is not supported; use event_count, value_count, temporal or temporal_ordered"
                ),
            ));
            (Kind::Count, Logic::Count, 1)
        }
    };
    if kind != Kind::Distinct && !block.also.is_empty() {
        problems.push((
            line_of(doc, "also"),
            "also: applies to value_count correlations only; remove it".into(),
        ));
    }
    if block.stage.is_some() {
        problems.push((
            line_of(doc, "stage"),
            "a correlation cannot have a stage; put the stage on a detection rule".into(),
        ));
    }
    let suppress = match &block.suppress {
        Some(text) => match duration(doc, "suppress", text) {
            Ok(d) => d,
            Err(p) => {
                problems.extend(p);
                Duration::ZERO
            }
        },
        None => Duration::ZERO,
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(RuleDef {
        meta: meta(
            origin,
            doc,
            id,
            &corr.title,
            corr.description.as_deref(),
            severity,
            &corr.tags,
            &block,
            kind,
        )?,
        inputs: inputs.into_iter().map(|(r, _)| r).collect(),
        logic,
        params: Params {
            threshold,
            window,
            suppress,
            group_by: corr.group_by.clone(),
        },
    })
}

/// Field names and regular expressions of a detection rule.
fn check_detection(doc: &Document, rule: &SigmaRule, extra: &[String]) -> Problems {
    let mut problems = Problems::new();
    let mut names = Vec::new();
    for detection in rule.detection.named.values() {
        field_names(detection, &mut names);
    }
    names.sort();
    names.dedup();
    for name in names {
        if let Some(msg) = unknown_field(&name, extra) {
            let line = line_of(doc, &format!("{name}|"))
                .or_else(|| line_of(doc, &format!("{name}:")))
                .or_else(|| line_of(doc, &name));
            problems.push((line, msg));
        }
    }
    if problems.is_empty()
        && let Err(e) = rsigma_eval::compile_rule(rule)
    {
        let message = e.to_string();
        let line = message
            .split('\'')
            .nth(1)
            .and_then(|token| line_of(doc, token))
            .or(Some(doc.first_line));
        problems.push((
            line,
            format!("the rule does not compile: {message}; fix the value (regular expressions use Rust regex syntax)"),
        ));
    }
    problems
}

fn field_names(detection: &Detection, out: &mut Vec<String>) {
    match detection {
        Detection::AllOf(items) => {
            out.extend(items.iter().filter_map(|i| i.field.name.clone()));
        }
        Detection::AnyOf(list) | Detection::And(list) => {
            for d in list {
                field_names(d, out);
            }
        }
        Detection::ArrayMatch { field, .. } => out.push(field.clone()),
        Detection::Keywords(_) | Detection::Conditional { .. } => {}
    }
}

/// The actor fields of every actor variant (compliance-api.md §2.3) plus
/// the two variants third parties report.
const ACTOR_FIELDS: &[&str] = &[
    "type",
    "email_address",
    "unauthenticated_email_address",
    "user_id",
    "ip_address",
    "user_agent",
    "api_key_id",
    "admin_api_key_id",
    "service_account_id",
    "workos_event_id",
    "directory_id",
    "idp_connection_type",
    "service",
    "issuer",
    "subject",
    "audience",
    "provider",
    "external_client_id",
];

/// Fields every activity has.
const COMMON_FIELDS: &[&str] = &[
    "id",
    "type",
    "created_at",
    "organization_id",
    "organization_uuid",
    "actor",
    "request_id",
];

/// Every top-level field the activity catalogue lists for some type.
fn catalogue_fields() -> &'static HashSet<String> {
    static FIELDS: OnceLock<HashSet<String>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        let mut fields: HashSet<String> = COMMON_FIELDS.iter().map(|s| s.to_string()).collect();
        for t in crate::catalogue::catalogue() {
            fields.extend(t.fields.iter().map(|f| f.name.clone()));
        }
        fields
    })
}

/// Why a field name is not one rules can use, with the closest known one.
pub fn unknown_field(name: &str, extra: &[String]) -> Option<String> {
    if extra.iter().any(|e| e == name) {
        return None;
    }
    let (root, rest) = match name.split_once('.') {
        Some((root, rest)) => (root, Some(rest)),
        None => (name, None),
    };
    let suggestion: Option<String>;
    if root == "claudit" {
        if CLAUDIT_FIELDS.contains(&name) {
            return None;
        }
        suggestion = nearest(name, CLAUDIT_FIELDS.iter().copied());
    } else if root == "actor" {
        let sub = rest.map(|r| r.split('.').next().unwrap_or(r));
        match sub {
            None => return None,
            Some(sub) if ACTOR_FIELDS.contains(&sub) => return None,
            Some(sub) => {
                suggestion =
                    nearest(sub, ACTOR_FIELDS.iter().copied()).map(|s| format!("actor.{s}"))
            }
        }
    } else {
        let known = catalogue_fields();
        if known.contains(root) {
            return None;
        }
        suggestion = nearest(root, known.iter().map(String::as_str));
    }
    let hint = match suggestion {
        Some(s) => format!("did you mean {s}?"),
        None => "see the activity catalogue and the claudit.* fields in README, Detections".into(),
    };
    Some(format!(
        "unknown field {name:?}: no activity type has it and it is not a claudit.* field; {hint} \
         (a field the catalogue does not list yet goes in claudit: known-fields: [{name}])"
    ))
}

fn nearest<'c>(name: &str, candidates: impl Iterator<Item = &'c str>) -> Option<String> {
    // A stable answer whatever the set's iteration order.
    let sorted: BTreeMap<&str, ()> = candidates.map(|c| (c, ())).collect();
    crate::toml_reader::closest(name, sorted.keys().copied()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Vec<RuleDef>, Vec<LoadError>> {
        load_text(
            Origin::File(PathBuf::from("/etc/claudit/rules/t.yml")),
            text,
        )
    }

    #[test]
    fn the_built_in_pack_loads() {
        let set = load_all(&[]).unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        assert!(set.len() >= 50, "{} rules", set.len());
    }

    #[test]
    fn a_correlation_uses_its_files_detection_and_hides_it() {
        let defs = load(
            "title: failures\nid: my-failures\nlogsource: {product: claude}\ndetection:\n  sel:\n    type: sso_login_failed\n  condition: sel\nlevel: low\n---\n\
             title: burst\nid: my-burst\ncorrelation:\n  type: event_count\n  rules: [my-failures]\n  group-by: [claudit.actor.key]\n  timespan: 30m\n  condition: {gte: 3}\nlevel: high\nclaudit:\n  suppress: 1h\n",
        )
        .unwrap();
        assert_eq!(defs.len(), 1);
        let def = &defs[0];
        assert_eq!(def.meta.id, "my-burst");
        assert_eq!(def.meta.kind, Kind::Count);
        assert_eq!(def.meta.line, 10);
        assert_eq!(
            def.params,
            Params {
                threshold: 3,
                window: Duration::from_secs(1800),
                suppress: Duration::from_secs(3600),
                group_by: vec!["claudit.actor.key".into()]
            }
        );
    }

    #[test]
    fn problems_name_the_line_and_the_fix() {
        let text = "title: t\nid: t-rule\nlogsource: {product: claude}\ndetection:\n  sel:\n    type: x\n    actor.emial_address|endswith: '@x.com'\n  condition: sel\nlevel: low\n";
        let errors = load(text).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, Some(7));
        assert!(
            errors[0].message.contains("actor.email_address"),
            "{}",
            errors[0].message
        );
        assert_eq!(errors[0].rule.as_deref(), Some("t-rule"));

        let text = "title: t\nid: t-rule\nlogsource: {product: claude}\ndetection:\n  sel:\n    type|containz: x\n  condition: sel\nlevel: low\n";
        let errors = load(text).unwrap_err();
        assert_eq!(errors[0].line, Some(6), "{errors:?}");
        assert!(errors[0].message.contains("containz"));

        let text = "title: t\nid: t-rule\nlogsource: {product: claude}\ndetection:\n  sel:\n    type: x\n  condition: sel and other\nlevel: low\n";
        let errors = load(text).unwrap_err();
        assert_eq!(errors[0].line, Some(7), "{errors:?}");

        let text = "title: t\nid: t-rule\nlogsource: {product: claude}\ndetection:\n  sel:\n    type: x\n   condition: sel\nlevel: low\n";
        let errors = load(text).unwrap_err();
        assert!(
            errors[0].line.is_some_and(|l| (5..=7).contains(&l)),
            "{errors:?}"
        );

        let text = "title: t\nid: T Rule\nlogsource: {product: claude}\ndetection:\n  sel:\n    type: x\n  condition: sel\nlevel: low\n";
        let errors = load(text).unwrap_err();
        assert_eq!(errors[0].line, Some(2), "{errors:?}");
        assert!(errors[0].message.contains("kebab-case"));

        let text = "title: t\nid: t-rule\nlogsource: {product: claude}\ndetection:\n  sel:\n    actor.user_agent|re: '(unclosed'\n  condition: sel\nlevel: low\n";
        let errors = load(text).unwrap_err();
        assert!(errors[0].message.contains("compile"), "{errors:?}");
    }

    #[test]
    fn known_fields_lets_a_rule_use_a_field_the_catalogue_lacks() {
        let text = "title: t\nid: t-rule\nlogsource: {product: claude}\ndetection:\n  sel:\n    brand_new_field: x\n  condition: sel\nlevel: low\n";
        assert!(load(text).is_err());
        let text = format!("{text}claudit:\n  known-fields: [brand_new_field]\n");
        assert!(load(&text).is_ok());
    }

    #[test]
    fn documents_keep_their_line_numbers() {
        let docs = documents("a: 1\n---\n# comment\n---\nb: 2\nc: 3\n");
        let lines: Vec<usize> = docs.iter().map(|d| d.first_line).collect();
        assert_eq!(lines, vec![1, 5]);
    }
}
