//! OCSF 1.8.0 normalization.
//!
//! First cut: every activity takes the fail-open fallback of
//! `spec/ocsf-mapping.md` section 5 (API Activity 6003 when the actor has an
//! IP, Base Event 0 otherwise), with the section 4.1 envelope. Every source
//! field not placed in the event is kept in `unmapped`.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::config::OcsfConfig;
use crate::enrich::Enrichment;
use crate::model::Activity;

pub const OCSF_VERSION: &str = "1.8.0";
pub const LABEL_FALLBACK: &str = "claude_compliance:fallback";
pub const LABEL_DEGRADED: &str = "claude_compliance:degraded";
pub const LABEL_SELF: &str = "claudit:self";

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
        Mapper {
            severity_overrides: config.severity.clone(),
            include_raw_data: config.include_raw_data,
        }
    }

    /// The OCSF event for one activity. Never fails: anything the mapping
    /// does not understand degrades to the fallback, tagged.
    pub fn map(&self, activity: &Activity, ctx: &MapContext) -> Value {
        let mut labels: Vec<&str> = vec![LABEL_FALLBACK];
        if ctx.self_generated {
            labels.push(LABEL_SELF);
        }
        if activity.created_at_fallback || activity.id_synthesized {
            labels.push(LABEL_DEGRADED);
        }
        let actor_ip = activity
            .actor
            .as_ref()
            .and_then(|a| a.ip_address.as_deref())
            .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
        let (class_uid, activity_id) = match actor_ip {
            Some(_) => (6003, verb_activity_id(&activity.activity_type)),
            None => (0, 99),
        };
        let status_id = status_id(&activity.activity_type);
        let severity_id = self
            .severity_overrides
            .get(&activity.activity_type)
            .copied()
            .unwrap_or(1);

        let mut metadata = json!({
            "version": OCSF_VERSION,
            "product": {"name": "Claude", "vendor_name": "Anthropic", "feature": {"name": "Compliance API"}},
            "uid": activity.id,
            "original_event_uid": activity.id,
            "event_code": activity.activity_type,
            "log_name": "claude_compliance_activities",
            "log_provider": "Anthropic Compliance API",
            "labels": labels,
        });
        if let Some(raw_time) = activity.fields.get("created_at").and_then(Value::as_str) {
            metadata["original_time"] = json!(raw_time);
        }
        if let Some(tenant) = activity
            .organization_id
            .as_ref()
            .or(activity.organization_uuid.as_ref())
        {
            metadata["tenant_uid"] = json!(tenant);
        }
        if class_uid == 0 {
            metadata["profiles"] = json!(["host"]);
        }

        let activity_name = if activity_id == 99 {
            activity.activity_type.clone()
        } else {
            caption(activity_id).to_string()
        };
        let mut event = json!({
            "class_uid": class_uid,
            "category_uid": class_uid / 1000,
            "activity_id": activity_id,
            "activity_name": activity_name,
            "type_uid": class_uid * 100 + activity_id as i64,
            "time": activity.created_at_ms(),
            "timezone_offset": 0,
            "severity_id": severity_id,
            "status_id": status_id,
            "metadata": metadata,
        });

        // Consumed source fields; everything else goes to `unmapped`.
        let mut unmapped: Map<String, Value> = activity.fields.clone();
        for key in ["id", "type", "created_at", "organization_id"] {
            unmapped.remove(key);
        }
        if let Some(actor) = &activity.actor {
            let mut actor_obj = Map::new();
            let mut user = Map::new();
            if let Some(uid) = &actor.user_id {
                user.insert("uid".into(), json!(uid));
            }
            if let Some(email) = actor
                .email_address
                .as_ref()
                .or(actor.unauthenticated_email_address.as_ref())
            {
                user.insert("email_addr".into(), json!(email));
                user.insert("name".into(), json!(email));
            }
            let key_id = actor
                .api_key_id
                .as_ref()
                .or(actor.admin_api_key_id.as_ref())
                .or(actor.service_account_id.as_ref());
            if let Some(key) = key_id {
                actor_obj.insert("app_uid".into(), json!(key));
            }
            if !user.is_empty() {
                actor_obj.insert("user".into(), Value::Object(user));
            }
            if actor_obj.is_empty() {
                // at_least_one of user/app_uid/...: name the actor by its type.
                let kind = if actor.kind.is_empty() {
                    "unknown_actor"
                } else {
                    &actor.kind
                };
                actor_obj.insert("app_name".into(), json!(kind));
            }
            event["actor"] = Value::Object(actor_obj);
            if let (Some(ip), Some(Value::Object(src_actor))) =
                (actor_ip, unmapped.get_mut("actor"))
            {
                event["src_endpoint"] = json!({"ip": ip});
                src_actor.remove("ip_address");
            }
            if let Some(Value::Object(src_actor)) = unmapped.get_mut("actor") {
                for key in ["user_id", "email_address", "unauthenticated_email_address"] {
                    src_actor.remove(key);
                }
                if key_id.is_some() {
                    for key in ["api_key_id", "admin_api_key_id", "service_account_id"] {
                        if src_actor.get(key).and_then(Value::as_str) == key_id.map(String::as_str)
                        {
                            src_actor.remove(key);
                            break;
                        }
                    }
                }
                if let Some(ua) = actor.user_agent.as_deref().filter(|u| !u.is_empty()) {
                    event["http_request"] = json!({"user_agent": ua});
                    src_actor.remove("user_agent");
                }
            }
        }
        if class_uid == 6003 {
            event["api"] = json!({"operation": activity.activity_type});
        }
        if let Some(status_code) = activity.fields.get("status_code").and_then(Value::as_i64) {
            let _ = status_code; // kept in unmapped in the first cut
        }
        if !unmapped.is_empty() {
            event["unmapped"] = Value::Object(unmapped);
        }
        if self.include_raw_data {
            event["raw_data"] = json!(activity.raw.get());
        }
        event
    }
}

/// `status_id` from the type's suffix (section 4.1).
pub fn status_id(activity_type: &str) -> u8 {
    if activity_type.ends_with("_failed") {
        2
    } else if activity_type.ends_with("_initiated") || activity_type.ends_with("_attempted") {
        0
    } else {
        1
    }
}

/// Create/Read/Update/Delete/Other from the verb suffix (section 5 step 3),
/// for classes whose activity ids are 1..4 = Create/Read/Update/Delete.
fn verb_activity_id(activity_type: &str) -> u8 {
    let ends = |suffixes: &[&str]| suffixes.iter().any(|s| activity_type.ends_with(s));
    if ends(&["_created", "_added", "_uploaded"]) {
        1
    } else if ends(&["_viewed", "_accessed", "_listed", "_downloaded"]) {
        2
    } else if ends(&["_updated", "_changed", "_replaced", "_renamed", "_rotated"]) {
        3
    } else if ends(&["_deleted", "_removed", "_revoked"]) {
        4
    } else {
        99
    }
}

fn caption(activity_id: u8) -> &'static str {
    match activity_id {
        1 => "Create",
        2 => "Read",
        3 => "Update",
        4 => "Delete",
        _ => "Other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_keeps_ids_and_unmapped_fields() {
        let a = Activity::from_json(r#"{"id":"activity_9","type":"brand_new_thing_created","created_at":"2026-04-10T08:09:10Z","organization_id":"org_1","organization_uuid":"u1","actor":{"type":"user_actor","email_address":"a@example.com","user_id":"user_1","ip_address":"192.0.2.4","user_agent":"curl/8.5.0"},"new_field":{"x":[1,2]}}"#).unwrap();
        let e = Mapper::default().map(&a, &MapContext::default());
        assert_eq!(e["class_uid"], 6003);
        assert_eq!(e["activity_id"], 1);
        assert_eq!(e["type_uid"], 600301);
        assert_eq!(e["time"], 1775808550000i64);
        assert_eq!(e["metadata"]["uid"], "activity_9");
        assert_eq!(e["metadata"]["original_event_uid"], "activity_9");
        assert_eq!(e["src_endpoint"]["ip"], "192.0.2.4");
        assert_eq!(e["unmapped"]["new_field"]["x"][1], 2);
        assert_eq!(e["unmapped"]["organization_uuid"], "u1");
        assert_eq!(e["unmapped"]["actor"]["type"], "user_actor");
        assert!(
            e["metadata"]["labels"]
                .as_array()
                .unwrap()
                .contains(&json!(LABEL_FALLBACK))
        );
    }

    #[test]
    fn no_actor_ip_gives_base_event_with_host_profile() {
        let a = Activity::from_json(r#"{"id":"a","type":"anthropic_access","created_at":"2026-04-10T08:09:10Z","actor":{"type":"anthropic_actor","email_address":null}}"#).unwrap();
        let e = Mapper::default().map(
            &a,
            &MapContext {
                self_generated: false,
                enrichment: None,
            },
        );
        assert_eq!(e["class_uid"], 0);
        assert_eq!(e["activity_id"], 99);
        assert_eq!(e["activity_name"], "anthropic_access");
        assert_eq!(e["metadata"]["profiles"], json!(["host"]));
        assert_eq!(e["actor"]["app_name"], "anthropic_actor");
    }

    #[test]
    fn self_generated_label() {
        let a = Activity::from_json(r#"{"id":"a","type":"compliance_api_accessed","created_at":"2026-04-10T08:09:10Z","actor":{"type":"api_actor","api_key_id":"k","ip_address":"2001:db8::1"},"request_id":"req_1"}"#).unwrap();
        let e = Mapper::default().map(
            &a,
            &MapContext {
                self_generated: true,
                enrichment: None,
            },
        );
        assert!(
            e["metadata"]["labels"]
                .as_array()
                .unwrap()
                .contains(&json!(LABEL_SELF))
        );
        assert_eq!(e["actor"]["app_uid"], "k");
    }
}
