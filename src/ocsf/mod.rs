//! OCSF 1.8.0 normalization (`spec/ocsf-mapping.md`).
//!
//! Every activity becomes one OCSF event: the rule table (`rules.rs`) picks
//! the class and how its objects are filled (`builders.rs`); the envelope
//! (`envelope.rs`) adds the actor, the source endpoint and the enrichment;
//! every source field the mapping did not place goes to `unmapped` under its
//! source name (`source.rs`). Nothing is dropped and mapping never fails:
//! an unknown type takes the section 5 fallback (`claude_compliance:fallback`),
//! a known type whose record lacks what its class requires is downgraded the
//! same way (`claude_compliance:degraded`) rather than given invented values.

mod builders;
pub mod classes;
mod envelope;
pub mod rules;
mod severity;
mod source;

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::config::OcsfConfig;
use crate::enrich::Enrichment;
use crate::model::Activity;

pub use classes::Class;
pub use rules::{RULES, Rule, rule_for};

use builders::{Draft, Inputs};
use classes::{severity_caption, split_verb, status_caption, status_from_suffix};
use source::Source;

pub const OCSF_VERSION: &str = "1.8.0";
/// No rule matches the activity type: section 5 fallback.
pub const LABEL_FALLBACK: &str = "claude_compliance:fallback";
/// A rule matched but the record lacked what its class requires (or the
/// record itself lacked an id or a parseable `created_at`).
pub const LABEL_DEGRADED: &str = "claude_compliance:degraded";
/// A `compliance_api_accessed` caused by this daemon's own polling.
pub const LABEL_SELF: &str = "claudit:self";
/// `actor.type` is not one of the documented variants.
pub const LABEL_UNKNOWN_ACTOR: &str = "claude_compliance:unknown_actor";
/// The user agent is a script, library or CLI rather than a person.
pub const LABEL_AUTOMATED: &str = "claudit:automated_client";

const LOG_NAME: &str = "claude_compliance_activities";
const LOG_PROVIDER: &str = "Anthropic Compliance API";

/// Per-activity facts the mapper needs beyond the activity itself.
#[derive(Debug, Default)]
pub struct MapContext<'a> {
    pub enrichment: Option<&'a Enrichment>,
    /// The activity is a `compliance_api_accessed` caused by this daemon.
    pub self_generated: bool,
}

/// Maps activities to OCSF events. Built once from the config.
#[derive(Debug, Clone, Default)]
pub struct Mapper {
    severity_overrides: HashMap<String, u8>,
    include_raw_data: bool,
}

impl Mapper {
    pub fn new(config: &OcsfConfig) -> Mapper {
        let mut severity_overrides = HashMap::with_capacity(config.severity.len());
        for (activity_type, &id) in &config.severity {
            if classes::is_valid_severity(id) {
                severity_overrides.insert(activity_type.clone(), id);
            } else {
                // The config layer validates this; a value that still gets
                // here would make every such event invalid OCSF.
                tracing::warn!(
                    activity_type = %activity_type,
                    severity = id,
                    "ignoring OCSF severity override: severity_id must be 0..=6 or 99"
                );
            }
        }
        Mapper {
            severity_overrides,
            include_raw_data: config.include_raw_data,
        }
    }

    /// The OCSF event for one activity. Never fails: anything the mapping
    /// does not understand degrades to the fallback, tagged.
    pub fn map(&self, activity: &Activity, ctx: &MapContext) -> Value {
        let fields = &activity.fields;
        let t = activity.activity_type.as_str();
        let mut src = Source::new(fields);
        let mut labels: Vec<&'static str> = Vec::with_capacity(4);

        // Common fields (section 4.1).
        let source_id = src
            .peek_str("id")
            .filter(|id| !activity.id_synthesized && *id == activity.id);
        if source_id.is_some() {
            src.consume("id");
        }
        let source_type = src.str("type");
        let original_time = src.str("created_at");
        let org_uid = src
            .str("organization_id")
            .or_else(|| src.str("organization_uuid"));
        let mut actor = envelope::actor(&mut src, org_uid);
        let has_actor = actor.is_some();
        let actor_ip = actor.as_ref().and_then(|a| a.ip);

        // Class-specific objects from the rule table, with the section 4.3
        // guards; the section 5 fallback for unknown types.
        let rule = rules::rule_for(t);
        let checkpoint = src.checkpoint();
        let built = rule.and_then(|r| {
            let inputs = Inputs {
                activity_type: t,
                org_uid,
                actor_user: actor
                    .as_ref()
                    .and_then(|a| a.object.get("user"))
                    .and_then(Value::as_object),
                has_actor,
            };
            builders::build(&r.target, &mut src, &inputs)
        });
        // API Activity requires an actor and a source endpoint.
        let built = built.filter(|d| d.class != Class::ApiActivity || actor_ip.is_some());
        let draft = match built {
            Some(draft) => draft,
            None => {
                src.rollback(checkpoint);
                labels.push(if rule.is_some() {
                    LABEL_DEGRADED
                } else {
                    LABEL_FALLBACK
                });
                fallback(t, actor_ip.is_some())
            }
        };
        let class = draft.class;
        if activity.created_at_fallback || activity.id_synthesized {
            push_once(&mut labels, LABEL_DEGRADED);
        }
        if ctx.self_generated {
            labels.push(LABEL_SELF);
        }

        // Actor, source endpoint, user agent.
        if let Some(a) = actor.as_mut() {
            if a.unknown_kind {
                labels.push(LABEL_UNKNOWN_ACTOR);
            }
            if let Some(provider) = draft.idp_name {
                let idp = a
                    .object
                    .entry("idp")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(idp) = idp.as_object_mut()
                    && !idp.contains_key("name")
                {
                    idp.insert("name".into(), json!(provider));
                    src.consume("provider");
                }
            }
        }
        let mut src_endpoint = None;
        let mut http_request = draft.http_request;
        if class.has_network_fields()
            && let Some(a) = &actor
        {
            if let Some(ip) = a.ip {
                src.nested_str("actor", "ip_address");
                let mut ep = Map::new();
                ep.insert("ip".into(), json!(ip));
                src_endpoint = Some(ep);
            }
            if let Some(ua) = a.user_agent {
                src.nested_str("actor", "user_agent");
                http_request
                    .get_or_insert_with(Map::new)
                    .insert("user_agent".into(), json!(ua));
            }
        }
        let mut claudit = Map::new();
        if let Some(enrichment) = ctx.enrichment {
            envelope::place_enrichment(
                enrichment,
                src_endpoint.as_mut(),
                &mut claudit,
                &mut labels,
            );
        }

        let severity_id = self
            .severity_overrides
            .get(t)
            .copied()
            .unwrap_or_else(|| severity::severity(t, fields, rule.map(|r| r.target.class)));

        // Assemble.
        let mut event = draft.objects;
        event.insert("class_uid".into(), json!(class.uid()));
        event.insert("category_uid".into(), json!(class.category_uid()));
        event.insert("activity_id".into(), json!(draft.activity_id));
        let activity_name = class.activity_caption(draft.activity_id).or(source_type);
        if let Some(name) = activity_name {
            event.insert("activity_name".into(), json!(name));
        }
        event.insert(
            "type_uid".into(),
            json!(u64::from(class.uid()) * 100 + u64::from(draft.activity_id)),
        );
        event.insert("time".into(), json!(activity.created_at_ms()));
        event.insert("timezone_offset".into(), json!(0));
        event.insert("severity_id".into(), json!(severity_id));
        if let Some(caption) = severity_caption(severity_id) {
            event.insert("severity".into(), json!(caption));
        }
        event.insert("status_id".into(), json!(draft.status_id));
        event.insert("status".into(), json!(status_caption(draft.status_id)));
        if let Some(detail) = draft.status_detail {
            event.insert("status_detail".into(), json!(detail));
        }

        let mut metadata = Map::new();
        metadata.insert("version".into(), json!(OCSF_VERSION));
        metadata.insert(
            "product".into(),
            json!({"name": "Claude", "vendor_name": "Anthropic", "feature": {"name": "Compliance API"}}),
        );
        metadata.insert("uid".into(), json!(activity.id));
        if let Some(id) = source_id {
            metadata.insert("original_event_uid".into(), json!(id));
        }
        if let Some(time) = original_time {
            metadata.insert("original_time".into(), json!(time));
        }
        if let Some(code) = source_type {
            metadata.insert("event_code".into(), json!(code));
        }
        metadata.insert("log_name".into(), json!(LOG_NAME));
        metadata.insert("log_provider".into(), json!(LOG_PROVIDER));
        if let Some(tenant) = org_uid {
            metadata.insert("tenant_uid".into(), json!(tenant));
        }
        if class.needs_host_profile() {
            metadata.insert("profiles".into(), json!(["host"]));
        }
        if !labels.is_empty() {
            metadata.insert("labels".into(), json!(labels));
        }
        metadata.insert(
            "processed_time".into(),
            json!(chrono::Utc::now().timestamp_millis()),
        );
        event.insert("metadata".into(), Value::Object(metadata));

        let mut observables = Vec::new();
        if let Some(ip) = src_endpoint.as_ref().and_then(|ep| ep.get("ip")) {
            observables.push(json!({"name": "src_endpoint.ip", "type_id": 2, "value": ip}));
        }
        if let Some(a) = actor {
            if let Some(email) = a.object.get("user").and_then(|u| u.get("email_addr")) {
                observables
                    .push(json!({"name": "actor.user.email_addr", "type_id": 5, "value": email}));
            }
            event.insert("actor".into(), Value::Object(a.object));
        }
        if !observables.is_empty() {
            event.insert("observables".into(), Value::Array(observables));
        }
        if let Some(ep) = src_endpoint {
            event.insert("src_endpoint".into(), Value::Object(ep));
        }
        if let Some(http) = http_request {
            event.insert("http_request".into(), Value::Object(http));
        }

        let mut unmapped = src.unmapped();
        if !claudit.is_empty() {
            // The daemon's own additions; a source field of the same name
            // keeps its place.
            let mut key = String::from("claudit");
            while unmapped.contains_key(&key) {
                key.insert(0, '_');
            }
            unmapped.insert(key, Value::Object(claudit));
        }
        if !unmapped.is_empty() {
            event.insert("unmapped".into(), Value::Object(unmapped));
        }
        if self.include_raw_data {
            let raw = activity.raw.get();
            event.insert("raw_data".into(), json!(raw));
            event.insert("raw_data_size".into(), json!(raw.len()));
        }
        Value::Object(event)
    }
}

/// Section 5: API Activity (with `api.operation` = the type) when the actor
/// has an IP address, Base Event otherwise; the activity from the verb.
fn fallback<'a>(activity_type: &str, has_ip: bool) -> Draft<'a> {
    let class = if has_ip {
        Class::ApiActivity
    } else {
        Class::Base
    };
    let mut objects = Map::new();
    if has_ip {
        objects.insert("api".into(), json!({"operation": activity_type}));
    }
    Draft {
        class,
        activity_id: class.activity_for(split_verb(activity_type).0),
        status_id: status_from_suffix(activity_type),
        status_detail: None,
        objects,
        http_request: None,
        idp_name: None,
    }
}

fn push_once(labels: &mut Vec<&'static str>, label: &'static str) {
    if !labels.contains(&label) {
        labels.push(label);
    }
}

#[cfg(test)]
mod tests;
