//! A finding: what a rule concluded, from which activities, identified by a
//! deterministic uid; rendered as an OCSF 1.8.0 Detection Finding (class
//! 2004) for OCSF sinks, or as claudit's plain JSON finding for raw sinks.
//!
//! The uid is a function of the rule id, the group key and the anchor
//! activity (the one whose window completed the finding): re-evaluating
//! the same activities after a crash, a sweep re-read or a replay derives
//! the same uid, so the journal keeps the finding once.

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::rule::{Attack, Kind, Severity};
use crate::ocsf::JournalContext;

/// At most this many activities are listed in a finding (the count says
/// how many there were); the anchor is always among them.
pub const MAX_RELATED: usize = 100;

/// `finding_info.types` entry of a finding derived from old history (a
/// backfill, or an activity that arrived later than the late-arrival
/// allowance): a SOC may route these apart from live detections.
pub const TYPE_RETROSPECTIVE: &str = "Retrospective";

/// What a finding keeps of one activity.
#[derive(Debug, Clone)]
pub struct ActivityRef {
    pub id: Arc<str>,
    /// Activity types, organization ids and window values repeat across
    /// the activities a window holds: each is kept once
    /// ([`super::engine::Strings`]).
    pub activity_type: Arc<str>,
    pub created_ms: i64,
    pub organization_id: Option<Arc<str>>,
    pub organization_uuid: Option<Arc<str>>,
    /// The raw `actor` object, as compact JSON text. Windows keep an
    /// activity reference for every activity a stateful rule matched (a
    /// day of them for `multi-ip-user`), and only a finding reads the
    /// actor: as a `Value` tree it was the larger part of each reference.
    pub actor_json: Option<Box<str>>,
    /// The enrichment the journal kept with it.
    pub context: Arc<JournalContext>,
    /// Where the activity came from, when GeoIP placed it.
    pub geo: Option<Point>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub lat: f64,
    pub lon: f64,
    pub country: Option<String>,
}

impl ActivityRef {
    pub fn key(&self) -> (i64, Arc<str>) {
        (self.created_ms, Arc::clone(&self.id))
    }

    /// The raw `actor` object (`None` when the activity had none).
    pub fn actor(&self) -> Option<Value> {
        self.actor_json
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
    }
}

/// What an [`ActivityRef`] keeps of a raw `actor`: its compact JSON text,
/// when it is an object.
pub fn actor_json(actor: Option<&Value>) -> Option<Box<str>> {
    actor
        .filter(|a| a.is_object())
        .map(|a| a.to_string().into_boxed_str())
}

/// The rule as a finding names it.
#[derive(Debug, Clone)]
pub struct FindingRule {
    pub id: String,
    pub title: String,
    pub description: String,
    /// After the operator's override.
    pub severity: Severity,
    pub kind: Kind,
    pub attacks: Vec<Attack>,
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub uid: String,
    pub rule: Arc<FindingRule>,
    /// The group key: (field, value) per group-by field.
    pub group: Vec<(String, String)>,
    /// The activity whose window completed the finding.
    pub anchor: Arc<ActivityRef>,
    /// The activities behind it, oldest first, at most [`MAX_RELATED`].
    pub related: Vec<Arc<ActivityRef>>,
    pub related_count: usize,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// When the journal received the activity whose evaluation fired it.
    pub detected_ms: i64,
    pub retrospective: bool,
}

/// The uid of the finding of `rule_id` for `group` anchored at `anchor_id`.
pub fn finding_uid(rule_id: &str, group: &[(String, String)], anchor_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"claudit finding v1\0");
    hasher.update(rule_id.as_bytes());
    hasher.update(b"\0");
    for (field, value) in group {
        hasher.update(field.as_bytes());
        hasher.update(b"=");
        hasher.update(value.as_bytes());
        hasher.update(b"\0");
    }
    hasher.update(b"\0");
    hasher.update(anchor_id.as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("claudit_finding_{hex}")
}

/// The mapper of the anchors' actors, shared by every finding: a mapper
/// remembers which mapping rule each activity type takes, which a new one
/// per finding would look up again among every rule's patterns.
static ANCHOR_MAPPER: LazyLock<crate::ocsf::Mapper> = LazyLock::new(crate::ocsf::Mapper::default);

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn attack_json(attack: &Attack) -> Value {
    let mut a = Map::new();
    if let Some((uid, name)) = attack.tactic {
        a.insert("tactic".into(), json!({"uid": uid, "name": name}));
    }
    if let Some(technique) = &attack.technique {
        match technique.split_once('.') {
            Some((main, _)) => {
                a.insert("technique".into(), json!({"uid": main}));
                a.insert("sub_technique".into(), json!({"uid": technique}));
            }
            None => {
                a.insert("technique".into(), json!({"uid": technique}));
            }
        }
    }
    Value::Object(a)
}

impl Finding {
    /// claudit's plain JSON finding, for sinks in `raw` format (README,
    /// Detections, "The plain JSON finding").
    pub fn to_plain_json(&self) -> Value {
        let group: Map<String, Value> = self
            .group
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut out = json!({
            "record": "claudit.finding",
            "version": 1,
            "uid": self.uid,
            "rule": {
                "id": self.rule.id,
                "title": self.rule.title,
                "kind": self.rule.kind.as_str(),
                "severity": self.rule.severity.as_str(),
                "attacks": self.rule.attacks.iter().map(attack_json).collect::<Vec<_>>(),
            },
            "description": self.rule.description,
            "group": group,
            "anchor": {
                "id": &*self.anchor.id,
                "type": &*self.anchor.activity_type,
                "created_at": rfc3339(self.anchor.created_ms),
            },
            "activity_ids": self.related.iter().map(|a| &*a.id).collect::<Vec<_>>(),
            "activity_count": self.related_count,
            "first_seen": rfc3339(self.first_seen_ms),
            "last_seen": rfc3339(self.last_seen_ms),
            "detected_at": rfc3339(self.detected_ms),
            "retrospective": self.retrospective,
        });
        if let Value::Object(o) = &mut out {
            if let Some(org) = &self.anchor.organization_id {
                o.insert("organization_id".into(), Value::String(org.to_string()));
            }
            if let Some(actor) = self.anchor.actor() {
                o.insert("actor".into(), actor);
            }
        }
        out
    }

    /// The OCSF 1.8.0 Detection Finding. The actor and source endpoint are
    /// those of the anchor activity, mapped as its own OCSF event maps them
    /// (with the enrichment the journal kept).
    pub fn to_ocsf(&self) -> Value {
        let mut finding_info = json!({
            "uid": self.uid,
            "title": self.rule.title,
            "desc": self.rule.description,
            "analytic": {
                "uid": self.rule.id,
                "name": self.rule.title,
                "type_id": 1,
                "type": "Rule",
            },
            "related_events": self.related.iter().map(|a| json!({
                "uid": &*a.id,
                "type": &*a.activity_type,
            })).collect::<Vec<_>>(),
            "related_events_count": self.related_count,
            "first_seen_time": self.first_seen_ms,
            "last_seen_time": self.last_seen_ms,
            "data_sources": ["Anthropic Compliance API"],
        });
        if let Value::Object(info) = &mut finding_info {
            if !self.rule.attacks.is_empty() {
                info.insert(
                    "attacks".into(),
                    Value::Array(self.rule.attacks.iter().map(attack_json).collect()),
                );
            }
            if self.retrospective {
                info.insert("types".into(), json!([TYPE_RETROSPECTIVE]));
            }
        }
        let mut metadata = json!({
            "version": crate::ocsf::OCSF_VERSION,
            "product": {
                "name": "claudit",
                "vendor_name": "claudit",
                "version": env!("CARGO_PKG_VERSION"),
            },
            "uid": self.uid,
            "event_code": self.rule.id,
            "log_name": "claudit_findings",
            "log_provider": "claudit",
        });
        if let (Value::Object(m), Some(org)) = (
            &mut metadata,
            self.anchor
                .organization_id
                .as_ref()
                .or(self.anchor.organization_uuid.as_ref()),
        ) {
            m.insert("tenant_uid".into(), Value::String(org.to_string()));
        }
        let group: Map<String, Value> = self
            .group
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut event = json!({
            "class_uid": 2004,
            "category_uid": 2,
            "activity_id": 1,
            "activity_name": "Create",
            "type_uid": 200401,
            "time": self.detected_ms,
            "start_time": self.first_seen_ms,
            "end_time": self.last_seen_ms,
            "severity_id": self.rule.severity.ocsf_id(),
            "severity": self.rule.severity.caption(),
            "status_id": 1,
            "status": "New",
            "is_alert": true,
            "finding_info": finding_info,
            "metadata": metadata,
            "unmapped": {
                "claudit": {
                    "rule_kind": self.rule.kind.as_str(),
                    "group": group,
                    "anchor_activity_id": &*self.anchor.id,
                }
            },
        });
        // The actor at the top (the host profile carries it in this
        // class), and the anchor activity as the evidence: its actor and
        // source endpoint (a Detection Finding has no src_endpoint of its own).
        let (actor, src_endpoint) = self.anchor_objects();
        let mut evidence = Map::new();
        evidence.insert("uid".into(), Value::String(self.anchor.id.to_string()));
        evidence.insert(
            "name".into(),
            Value::String(self.anchor.activity_type.to_string()),
        );
        if let Some(actor) = &actor {
            evidence.insert("actor".into(), actor.clone());
        }
        if let Some(src) = src_endpoint {
            evidence.insert("src_endpoint".into(), src);
        }
        if let Value::Object(e) = &mut event {
            if let Some(actor) = actor {
                e.insert("actor".into(), actor);
                if let Some(Value::Object(m)) = e.get_mut("metadata") {
                    m.insert("profiles".into(), json!(["host"]));
                }
            }
            if evidence.contains_key("actor") || evidence.contains_key("src_endpoint") {
                e.insert(
                    "evidences".into(),
                    Value::Array(vec![Value::Object(evidence)]),
                );
            }
        }
        event
    }

    /// `actor` and `src_endpoint` of the anchor activity's own OCSF event.
    fn anchor_objects(&self) -> (Option<Value>, Option<Value>) {
        let anchor = &self.anchor;
        let mut fields = Map::new();
        fields.insert("id".into(), Value::String(anchor.id.to_string()));
        fields.insert(
            "type".into(),
            Value::String(anchor.activity_type.to_string()),
        );
        fields.insert(
            "created_at".into(),
            Value::String(rfc3339(anchor.created_ms)),
        );
        if let Some(org) = &anchor.organization_id {
            fields.insert("organization_id".into(), Value::String(org.to_string()));
        }
        if let Some(org) = &anchor.organization_uuid {
            fields.insert("organization_uuid".into(), Value::String(org.to_string()));
        }
        let Some(anchor_actor) = anchor.actor() else {
            return (None, None);
        };
        let ip = anchor_actor
            .get("ip_address")
            .and_then(Value::as_str)
            .map(str::to_string);
        fields.insert("actor".into(), anchor_actor);
        let raw = Value::Object(fields).to_string();
        let now = DateTime::<Utc>::from_timestamp_millis(anchor.created_ms).unwrap_or_default();
        let activity = crate::model::Activity::parse_journaled(&raw, now);
        let ctx = crate::ocsf::MapContext {
            enrichment: anchor.context.enrichment.as_ref(),
            self_generated: false,
            processed_ms: self.detected_ms,
        };
        let mut event = ANCHOR_MAPPER.map(&activity, &ctx);
        let actor = event.get_mut("actor").map(Value::take);
        // The source endpoint of classes that have one; the address alone
        // for those that do not (every class of a finding has one).
        let src = event.get_mut("src_endpoint").map(Value::take).or_else(|| {
            actor
                .as_ref()
                .and(ip)
                .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
                .map(|ip| json!({ "ip": ip }))
        });
        (actor, src)
    }
}

impl Finding {
    /// The finding as the journal keeps it: both forms, rendered once.
    pub fn to_journal(&self) -> crate::store::NewFinding {
        crate::store::NewFinding {
            uid: self.uid.clone(),
            rule_id: self.rule.id.clone(),
            severity: self.rule.severity.as_str().to_string(),
            anchor_id: self.anchor.id.to_string(),
            anchor_created_ms: self.anchor.created_ms,
            first_seen_ms: self.first_seen_ms,
            last_seen_ms: self.last_seen_ms,
            detected_ms: self.detected_ms,
            retrospective: self.retrospective,
            related: self.related.iter().map(|a| a.id.to_string()).collect(),
            plain: self.to_plain_json().to_string(),
            ocsf: self.to_ocsf().to_string(),
        }
    }
}

/// What the journal keeps of a finding that suppression needs at start-up
/// (from the plain JSON finding: `rule.id`, `group`, `anchor`).
#[derive(Debug, Clone, PartialEq)]
pub struct FiredAnchor {
    pub rule_id: String,
    pub group: Vec<(String, String)>,
    pub anchor_id: String,
    pub anchor_created_ms: i64,
    /// When the journal received the finding.
    pub journaled_at_ms: i64,
}

impl FiredAnchor {
    /// Reads a plain JSON finding (as [`Finding::to_plain_json`] wrote it).
    pub fn from_plain_json(finding: &Value, journaled_at_ms: i64) -> Option<FiredAnchor> {
        let rule_id = finding.pointer("/rule/id")?.as_str()?.to_string();
        let anchor_id = finding.pointer("/anchor/id")?.as_str()?.to_string();
        let created = finding.pointer("/anchor/created_at")?.as_str()?;
        let anchor_created_ms = crate::model::parse_time(created)?.timestamp_millis();
        let group = finding
            .get("group")?
            .as_object()?
            .iter()
            .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect::<Option<Vec<_>>>()?;
        Some(FiredAnchor {
            rule_id,
            group,
            anchor_id,
            anchor_created_ms,
            journaled_at_ms,
        })
    }
}
