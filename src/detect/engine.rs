//! The engine: every enabled rule's detections compiled into one
//! rsigma-eval engine, an activity matched once against all of them, and
//! each match handed to its rule (allow-lists first, then the rule's
//! single-event, window or stage logic; `window.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rsigma_eval::event::Event;
use serde_json::Value;

use super::allow::AllowList;
use super::event::ActivityEvent;
use super::finding::{
    ActivityRef, Finding, FindingRule, FiredAnchor, MAX_RELATED, Point, finding_uid,
};
use super::load::{Also, Logic, Params, RuleSet};
use super::rule::{Kind, RuleMeta, Severity};
use super::settings::DetectionSettings;
use super::window::{Entry, Group, Reach};
use crate::directory::detect::{DirectoryFacts, judge};
use crate::ocsf::JournalContext;

/// Groups untouched for this many evaluations are swept for expired state.
const SWEEP_EVERY: u64 = 4096;

/// One activity to evaluate, as the journal holds it.
pub struct Input<'a> {
    /// The journal's activity id (the uid of related events).
    pub id: &'a str,
    /// The journal's `created_at` (ms), which also stands in for a
    /// missing one.
    pub created_at_ms: i64,
    /// The raw activity.
    pub activity: &'a Value,
    /// The enrichment the journal kept with it (shared: the findings of
    /// the activity keep it, as the detection task's cache of parsed
    /// contexts does).
    pub context: &'a Arc<JournalContext>,
    /// When the journal received it (the detection time of its findings).
    pub journaled_at_ms: i64,
    /// It came from a backfill: its findings are retrospective.
    pub backfill: bool,
    /// Re-fed at start-up to rebuild the windows (the activity was
    /// evaluated before the restart): it fills windows, fires nothing and
    /// records no suppression (the journal's findings, given to
    /// [`Engine::restore`], are the suppression state).
    pub replay: bool,
}

/// A rule as the engine runs it, and how `claudit rules list` shows it.
#[derive(Debug, Clone)]
pub struct RuleState {
    pub meta: Arc<RuleMeta>,
    pub enabled: bool,
    /// After the operator's override.
    pub severity: Severity,
    /// After the operator's overrides.
    pub params: Params,
    /// Set by `[[detections.rules]]` (what it changed).
    pub tuned: Vec<&'static str>,
}

struct ActiveRule {
    state: RuleState,
    finding_rule: Arc<FindingRule>,
    logic: Logic,
    allow: AllowList,
    /// Fields whose values an entry keeps (distinct fields, `also` fields).
    value_fields: Vec<String>,
    groups: HashMap<String, Group>,
}

impl ActiveRule {
    fn reach(&self, allowance_ms: i64) -> Reach {
        Reach {
            window_ms: duration_ms(self.state.params.window),
            suppress_ms: duration_ms(self.state.params.suppress),
            allowance_ms,
            threshold: self.state.params.threshold,
        }
    }
}

pub struct Engine {
    sigma: rsigma_eval::Engine,
    /// rsigma rule id of each compiled detection -> (rule index, step).
    inputs: HashMap<String, Vec<(usize, usize)>>,
    rules: Vec<ActiveRule>,
    /// Every rule, enabled or not (for listing).
    listing: Vec<RuleState>,
    allow: AllowList,
    embargoed: HashSet<String>,
    allowance_ms: i64,
    evaluations: u64,
    strings: Strings,
}

/// The strings the windows keep (activity types, organization ids, the
/// values of distinct-count fields), each kept once: a day of activities
/// repeats a few hundred types, a handful of organizations and, per
/// identity, the same few addresses, countries and clients.
#[derive(Default)]
pub struct Strings(HashSet<Arc<str>>);

impl Strings {
    /// Past this many, the set starts over: strings already shared stay
    /// shared, new ones are shared from then on, and the set stays bounded
    /// whatever the feed (every address distinct, say).
    const CAPACITY: usize = 65_536;
    /// Longer strings are not kept in the set (each is its own copy, as
    /// before): the set outlives the windows that used a string, so with
    /// this bound it holds at most about 20 MB whatever the feed sends.
    const LONGEST: usize = 256;

    pub fn get(&mut self, text: &str) -> Arc<str> {
        if text.len() > Self::LONGEST {
            return Arc::from(text);
        }
        if let Some(shared) = self.0.get(text) {
            return Arc::clone(shared);
        }
        if self.0.len() >= Self::CAPACITY {
            self.0.clear();
        }
        let shared: Arc<str> = Arc::from(text);
        self.0.insert(Arc::clone(&shared));
        shared
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

impl Engine {
    /// An engine running every rule of `set` that `settings` leaves enabled,
    /// with the operator's tuning applied.
    pub fn new(set: &RuleSet, settings: &DetectionSettings) -> Result<Engine, String> {
        let mut sigma = rsigma_eval::Engine::new();
        let mut inputs: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        let mut rules = Vec::new();
        let mut listing = Vec::new();
        for def in set.iter() {
            let tuning = settings.tuning(&def.meta.id);
            let mut params = def.params.clone();
            let mut tuned = Vec::new();
            let mut severity = def.meta.severity;
            let mut enabled = true;
            let mut allow = AllowList::default();
            if let Some(t) = tuning {
                if let Some(e) = t.enabled {
                    enabled = e;
                    tuned.push("enabled");
                }
                if let Some(s) = t.severity {
                    severity = s;
                    tuned.push("severity");
                }
                if let Some(n) = t.threshold {
                    params.threshold = n;
                    tuned.push("threshold");
                }
                if let Some(w) = t.window {
                    params.window = w;
                    tuned.push("window");
                }
                if let Some(s) = t.suppress {
                    params.suppress = s;
                    tuned.push("suppress");
                }
                if !t.allow.is_empty() {
                    allow = t.allow.clone();
                    tuned.push("allow");
                }
            }
            let meta = Arc::new(def.meta.clone());
            let state = RuleState {
                meta: Arc::clone(&meta),
                enabled,
                severity,
                params,
                tuned,
            };
            listing.push(state.clone());
            if !enabled || !settings.enabled {
                continue;
            }
            let index = rules.len();
            for (step, input) in def.inputs.iter().enumerate() {
                let mut rule = input.clone();
                let key = format!("claudit:{index}:{step}");
                rule.id = Some(key.clone());
                sigma
                    .add_rule(&rule)
                    .map_err(|e| format!("rule {}: {e}", meta.id))?;
                inputs.entry(key).or_default().push((index, step));
            }
            let value_fields = match &def.logic {
                Logic::Distinct { fields, also } => fields
                    .iter()
                    .cloned()
                    .chain(also.iter().map(|a| match a {
                        Also::Distinct { field, .. } | Also::AnyOf { field, .. } => field.clone(),
                    }))
                    .collect(),
                _ => Vec::new(),
            };
            rules.push(ActiveRule {
                finding_rule: Arc::new(FindingRule {
                    id: meta.id.clone(),
                    title: meta.title.clone(),
                    description: meta.description.clone(),
                    severity,
                    kind: meta.kind,
                    attacks: meta.attacks.clone(),
                }),
                state,
                logic: def.logic.clone(),
                allow,
                value_fields,
                groups: HashMap::new(),
            });
        }
        Ok(Engine {
            sigma,
            inputs,
            rules,
            listing,
            allow: settings.allow.clone(),
            embargoed: settings
                .embargoed_countries
                .iter()
                .map(|c| c.to_ascii_uppercase())
                .collect(),
            allowance_ms: duration_ms(settings.late_arrival_allowance),
            evaluations: 0,
            strings: Strings::default(),
        })
    }

    /// Every loaded rule with its effective state.
    pub fn rules(&self) -> &[RuleState] {
        &self.listing
    }

    /// How far before its cursor a restarted detection task must re-feed
    /// the journal (activities, and findings for suppression) so that every
    /// window and suppression is as it was: the longest window or
    /// suppression of an enabled rule, plus the late-arrival allowance.
    pub fn rebuild_horizon(&self) -> Duration {
        let longest = self
            .rules
            .iter()
            .map(|r| r.state.params.window.max(r.state.params.suppress))
            .max()
            .unwrap_or_default();
        longest + Duration::from_millis(self.allowance_ms.max(0) as u64)
    }

    /// Restores a finding the journal holds, so that suppression after a
    /// restart is what it was (a rule no longer enabled is ignored).
    pub fn restore(&mut self, fired: &FiredAnchor) {
        let Some(rule) = self
            .rules
            .iter_mut()
            .find(|r| r.state.meta.id == fired.rule_id)
        else {
            return;
        };
        let group: Option<Vec<(String, String)>> = rule
            .state
            .params
            .group_by
            .iter()
            .map(|f| {
                fired
                    .group
                    .iter()
                    .find(|(k, _)| k == f)
                    .map(|(k, v)| (k.clone(), v.clone()))
            })
            .collect();
        let Some(group) = group else { return };
        let key = group_key(&group);
        rule.groups.entry(key).or_default().restore_fired(
            (fired.anchor_created_ms, Arc::from(fired.anchor_id.as_str())),
            fired.journaled_at_ms,
        );
    }

    /// Evaluates one activity against every enabled rule; returns the
    /// findings it completes, in rule order. The directory rules judge
    /// nothing (see [`Engine::evaluate_with_directory`]).
    pub fn evaluate(&mut self, input: &Input) -> Vec<Finding> {
        self.evaluate_with_directory(input, None)
    }

    /// Whether an enabled rule needs the directory context of the rows
    /// (a caller without a directory may skip computing it).
    pub fn needs_directory(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.logic, Logic::Directory { .. }))
    }

    /// [`Engine::evaluate`] with what the directory says of the row
    /// (`None`: its source has no directory, and the directory rules judge
    /// nothing).
    pub fn evaluate_with_directory(
        &mut self,
        input: &Input,
        directory: Option<&DirectoryFacts>,
    ) -> Vec<Finding> {
        self.evaluations += 1;
        if self.evaluations.is_multiple_of(SWEEP_EVERY) {
            self.sweep(input.journaled_at_ms);
        }
        if self.rules.is_empty() || self.allow.allows(input.activity) {
            return Vec::new();
        }
        let embargoed_set = &self.embargoed;
        let embargoed = |c: &str| embargoed_set.contains(c);
        let event = ActivityEvent::new(input.activity, input.context, &embargoed);
        let mut matched: Vec<(usize, usize)> = self
            .sigma
            .evaluate(&event)
            .iter()
            .filter_map(|m| m.header.rule_id.as_deref())
            .filter_map(|id| self.inputs.get(id))
            .flatten()
            .copied()
            .collect();
        if matched.is_empty() {
            return Vec::new();
        }
        matched.sort_unstable();
        matched.dedup();
        let activity = Arc::new(activity_ref(input, &mut self.strings));
        let mut findings = Vec::new();
        let mut key = String::new();
        let mut key_value = String::new();
        for (index, step) in matched {
            let allowance_ms = self.allowance_ms;
            let rule = &mut self.rules[index];
            if rule.allow.allows(input.activity) {
                continue;
            }
            let reach = rule.reach(allowance_ms);
            // The group key; a stateful rule does not count an activity
            // that lacks a group-by value (as Elastic's rules drop it).
            // Written into one buffer: the (field, value) pairs a finding
            // names are built only when it fires.
            key.clear();
            let mut complete = true;
            for (i, field) in rule.state.params.group_by.iter().enumerate() {
                if i > 0 {
                    key.push(KEY_SEPARATOR);
                }
                complete &= push_field_text(&event, field, &mut key);
            }
            let mut directory_group = None;
            let kind = rule.state.meta.kind;
            // The directory stage: its check of the row's directory context
            // decides, and its hit names the group.
            if let Logic::Directory { check } = rule.logic {
                let hit = directory.and_then(|facts| {
                    judge(
                        check,
                        &activity.activity_type,
                        input.created_at_ms,
                        input.activity,
                        facts,
                    )
                });
                match hit {
                    Some(hit) => {
                        key = group_key(&hit.group);
                        directory_group = Some(hit.group);
                        complete = true;
                    }
                    None => continue,
                }
            }
            if !complete && kind != Kind::Single {
                continue;
            }
            if kind == Kind::GeoVelocity && activity.geo.is_none() {
                continue;
            }
            let group_state = match rule.groups.get_mut(key.as_str()) {
                Some(g) => g,
                None => rule.groups.entry(key.clone()).or_default(),
            };
            let fires = if matches!(kind, Kind::Single | Kind::Directory) {
                group_state
                    .single(
                        Arc::clone(&activity),
                        input.journaled_at_ms,
                        reach,
                        input.replay,
                    )
                    .into_iter()
                    .collect()
            } else {
                let strings = &mut self.strings;
                let values: Arc<[Option<Arc<str>>]> = rule
                    .value_fields
                    .iter()
                    .map(|f| {
                        key_value.clear();
                        push_field_text(&event, f, &mut key_value).then(|| strings.get(&key_value))
                    })
                    .collect();
                group_state.insert(
                    Entry {
                        activity: Arc::clone(&activity),
                        step,
                        values,
                        arrived_ms: input.journaled_at_ms,
                    },
                    &rule.logic,
                    reach,
                    input.replay,
                )
            };
            if fires.is_empty() {
                continue;
            }
            let group: Vec<(String, String)> = directory_group.unwrap_or_else(|| {
                rule.state
                    .params
                    .group_by
                    .iter()
                    .map(|f| (f.clone(), field_text(&event, f).unwrap_or_default()))
                    .collect()
            });
            for fire in fires {
                let mut members = fire.members;
                members.sort_by_key(|a| a.key());
                let related_count = members.len();
                let first_seen_ms = members
                    .first()
                    .map_or(fire.anchor.created_ms, |a| a.created_ms);
                let last_seen_ms = members
                    .last()
                    .map_or(fire.anchor.created_ms, |a| a.created_ms);
                if members.len() > MAX_RELATED {
                    // Keep the most recent ones; the anchor is the last.
                    members.drain(..members.len() - MAX_RELATED);
                }
                let lag_ms = input.journaled_at_ms - fire.anchor.created_ms;
                findings.push(Finding {
                    uid: finding_uid(&rule.state.meta.id, &group, &fire.anchor.id),
                    rule: Arc::clone(&rule.finding_rule),
                    group: group.clone(),
                    anchor: fire.anchor,
                    related: members,
                    related_count,
                    first_seen_ms,
                    last_seen_ms,
                    detected_ms: input.journaled_at_ms,
                    retrospective: input.backfill || lag_ms > reach.allowance_ms,
                });
            }
        }
        findings
    }

    /// Drops expired state of every group.
    fn sweep(&mut self, now_arrived_ms: i64) {
        let allowance_ms = self.allowance_ms;
        for rule in &mut self.rules {
            let reach = rule.reach(allowance_ms);
            let logic = &rule.logic;
            rule.groups.retain(|_, g| {
                g.sweep(reach, now_arrived_ms, logic);
                !g.is_empty()
            });
        }
    }

    /// Activities each stateful rule's windows hold, in rule order (the
    /// single-event and directory rules keep only the anchors they fired
    /// at, and are not listed): what detection's memory grows with.
    pub fn held_by_rule(&self) -> Vec<(&str, usize)> {
        self.rules
            .iter()
            .filter(|r| !matches!(r.state.meta.kind, Kind::Single | Kind::Directory))
            .map(|r| {
                (
                    r.state.meta.id.as_str(),
                    r.groups.values().map(Group::len).sum(),
                )
            })
            .collect()
    }

    /// Activities held in windows, all rules together (for tests).
    pub fn held(&self) -> usize {
        self.held_by_rule().iter().map(|(_, held)| held).sum()
    }
}

/// Separates the values of a group key.
const KEY_SEPARATOR: char = '\u{1f}';

fn group_key(group: &[(String, String)]) -> String {
    let mut key = String::new();
    for (i, (_, v)) in group.iter().enumerate() {
        if i > 0 {
            key.push(KEY_SEPARATOR);
        }
        key.push_str(v);
    }
    key
}

/// Appends the text of `field` (see [`field_text`]) to `out`; false when
/// there is none (nothing is appended).
fn push_field_text(event: &ActivityEvent, field: &str, out: &mut String) -> bool {
    use rsigma_eval::event::EventValue;
    let Some(value) = event.get_field(field) else {
        return false;
    };
    let scalar = match &value {
        EventValue::Array(items) => items.iter().find_map(|v| v.as_str()),
        other => other.as_str(),
    };
    match scalar.filter(|s| !s.is_empty()) {
        Some(s) => {
            out.push_str(&s);
            true
        }
        None => false,
    }
}

/// A field's value as text (numbers and booleans spelled out; arrays by
/// their first scalar); `None` when absent, null or empty.
fn field_text(event: &ActivityEvent, field: &str) -> Option<String> {
    let mut text = String::new();
    push_field_text(event, field, &mut text).then_some(text)
}

fn activity_ref(input: &Input, strings: &mut Strings) -> ActivityRef {
    let mut text = |k: &str| {
        input
            .activity
            .get(k)
            .and_then(Value::as_str)
            .map(|s| strings.get(s))
    };
    let geo = input
        .context
        .enrichment
        .as_ref()
        .and_then(|e| e.ip.as_ref())
        .and_then(|ip| ip.location.as_ref())
        .and_then(|l| {
            Some(Point {
                lat: l.lat?,
                lon: l.long?,
                country: l.country.clone(),
            })
        });
    ActivityRef {
        id: Arc::from(input.id),
        activity_type: text("type").unwrap_or_else(|| Arc::from("unknown")),
        created_ms: input.created_at_ms,
        organization_id: text("organization_id"),
        organization_uuid: text("organization_uuid"),
        actor_json: super::finding::actor_json(input.activity.get("actor")),
        context: Arc::clone(input.context),
        geo,
    }
}

#[cfg(test)]
mod tests {
    use super::Strings;
    use std::sync::Arc;

    #[test]
    fn repeated_strings_are_kept_once_and_the_set_stays_bounded() {
        let mut strings = Strings::default();
        let a = strings.get("203.0.113.7");
        let b = strings.get("203.0.113.7");
        assert!(Arc::ptr_eq(&a, &b), "the same text is shared");
        let long = "x".repeat(Strings::LONGEST + 1);
        let (c, d) = (strings.get(&long), strings.get(&long));
        assert_eq!((&*c, &*d), (long.as_str(), long.as_str()));
        assert!(!Arc::ptr_eq(&c, &d), "a long string is not kept");
        for i in 0..Strings::CAPACITY + 10 {
            assert_eq!(&*strings.get(&format!("v{i}")), format!("v{i}"));
        }
        assert!(strings.0.len() <= Strings::CAPACITY);
        // Still the same text after the set started over.
        assert_eq!(&*strings.get("203.0.113.7"), "203.0.113.7");
    }
}
