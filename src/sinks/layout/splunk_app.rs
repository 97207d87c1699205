//! `layout = "splunk_app"`: what Splunk's add-on for Claude Compliance
//! (`TA-anthropic_claude_enterprise` 1.2.4) indexes, so its dashboards,
//! event types, tags and saved searches work on events claudit sends
//! (`spec/vendor-content.md` section 1).
//!
//! The add-on has no HEC input: it polls the API and indexes, under
//! sourcetype [`SOURCETYPE`], a flattened object of each activity:
//!
//! ```text
//! activity_id=id, created_at, event_type=type, type=type, organization_id, organization_uuid,
//! actor_type, actor_user_id, actor_email (first non-empty of actor.email_address, email,
//! invited_email, invitee_email), actor_ip_address, actor_user_agent, claude_chat_id,
//! claude_project_id, file_id, is_authentication_event, is_change_event, vendor="anthropic",
//! product="claude_enterprise", source_type_category="compliance_activity",
//! [actor_api_key_id (api_actor only)], [event_info], [entity_info], [entity_email],
//! [target_email (top-level email_address or email, when actor_email is still empty)]
//! ```
//!
//! Keys whose value is null are left out, in this order. [`event`] makes
//! exactly that object, with the add-on's rules (Python truthiness where it
//! uses `or`). Every other field of the activity is not in it, as with the
//! add-on itself: the journal, the archive and any `format = "raw"` sink
//! keep them. Splunk's `TRUNCATE = 65536` for the sourcetype would cut a
//! longer event into invalid JSON, so such an event is refused (dead-
//! lettered), never truncated.

use serde_json::{Map, Value};

use super::truthy;

/// The add-on's activity sourcetype; its event types, tags and searches key
/// on it.
pub const SOURCETYPE: &str = "anthropic:compliance:activity";
/// The add-on's source is `anthropic:compliance:activities:<account>`;
/// nothing searches on it. claudit's default account part.
pub const DEFAULT_SOURCE: &str = "anthropic:compliance:activities:claudit";
/// `TRUNCATE` of the sourcetype in the add-on's props.conf.
pub const MAX_EVENT_BYTES: usize = 65_536;

/// `constants.py` `AUTH_EVENT_TYPES`: `is_authentication_event`.
const AUTH_EVENT_TYPES: &[&str] = &[
    "user_signed_in_sso",
    "user_signed_in_google",
    "user_signed_in_apple",
    "user_signed_out",
    "user_signed_in_magic_link",
    "user_signed_in_phone_code",
    "claude_chat_created",
    "conversation_created",
];

/// `constants.py` `CHANGE_EVENT_TYPES`: `is_change_event`.
const CHANGE_EVENT_TYPES: &[&str] = &[
    "org_sso_toggled",
    "org_sso_add_initiated",
    "org_sso_connection_activated",
    "org_sso_connection_deactivated",
    "org_sso_connection_deleted",
    "org_jit_toggled",
    "org_domain_add_initiated",
    "org_domain_verified",
    "org_data_export_started",
    "org_data_export_completed",
    "project_created",
    "project_deleted",
    "project_renamed",
    "project_visibility_changed",
    "project_document_created",
    "project_document_deleted",
    "org_user_invite_sent",
    "org_user_invite_accepted",
    "org_user_invite_rejected",
    "org_user_invite_deleted",
    "org_user_invite_re_sent",
    "org_user_deleted",
    "user_name_changed",
    "conversation_renamed",
    "conversation_deleted",
];

/// The explicit `sourcetype` of a sink with this layout must be the
/// add-on's: its event types, tags and searches find nothing else.
pub fn check_sourcetype(sourcetype: &str) -> Result<(), String> {
    if sourcetype == SOURCETYPE {
        return Ok(());
    }
    Err(format!(
        "sourcetype {sourcetype:?} does not go with layout = \"splunk_app\": the add-on's event \
         types, tags and saved searches all search sourcetype=\"{SOURCETYPE}\"; remove sourcetype \
         (the layout sets it) or remove layout"
    ))
}

/// The add-on's flattened object of one raw activity, as JSON text.
pub fn event(raw: &str) -> Result<String, String> {
    let activity: Map<String, Value> = serde_json::from_str(raw)
        .map_err(|e| format!("the activity is not a JSON object ({e}); not sent"))?;
    let text =
        serde_json::to_string(&Flattened(flatten(&activity))).expect("JSON values serialize");
    if text.len() > MAX_EVENT_BYTES {
        return Err(format!(
            "the flattened event is {} bytes, over the {MAX_EVENT_BYTES}-byte TRUNCATE of \
             sourcetype {SOURCETYPE} (Splunk would cut it into invalid JSON); not sent",
            text.len()
        ));
    }
    Ok(text)
}

/// Key-value pairs in the add-on's order (a JSON object when serialized).
struct Flattened(Vec<(&'static str, Value)>);

impl serde::Serialize for Flattened {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// `events.py` `normalize_activity`, then `write_json_event`'s removal of
/// null values.
fn flatten(activity: &Map<String, Value>) -> Vec<(&'static str, Value)> {
    let get = |k: &str| activity.get(k).cloned().unwrap_or(Value::Null);
    let or = |a: &str, b: &str| {
        let first = get(a);
        if truthy(&first) { first } else { get(b) }
    };
    let empty = Map::new();
    let actor = match activity.get("actor") {
        Some(Value::Object(a)) => a,
        _ => &empty,
    };
    let actor_get = |k: &str| actor.get(k).cloned().unwrap_or(Value::Null);
    let event_type = or("type", "event");
    let is_in = |list: &[&str]| event_type.as_str().is_some_and(|t| list.contains(&t));
    let mut out: Vec<(&'static str, Value)> = vec![
        ("activity_id", get("id")),
        ("created_at", get("created_at")),
        ("event_type", event_type.clone()),
        ("type", event_type.clone()),
        ("organization_id", get("organization_id")),
        ("organization_uuid", get("organization_uuid")),
        ("actor_type", actor_get("type")),
        ("actor_user_id", actor_get("user_id")),
        (
            "actor_email",
            extract_email(actor).map_or(Value::Null, Value::String),
        ),
        ("actor_ip_address", actor_get("ip_address")),
        ("actor_user_agent", actor_get("user_agent")),
        ("claude_chat_id", get("claude_chat_id")),
        ("claude_project_id", get("claude_project_id")),
        ("file_id", get("file_id")),
        (
            "is_authentication_event",
            Value::Bool(is_in(AUTH_EVENT_TYPES)),
        ),
        ("is_change_event", Value::Bool(is_in(CHANGE_EVENT_TYPES))),
        ("vendor", Value::from("anthropic")),
        ("product", Value::from("claude_enterprise")),
        ("source_type_category", Value::from("compliance_activity")),
    ];
    let api_key_id = actor_get("api_key_id");
    if actor.get("type").and_then(Value::as_str) == Some("api_actor") && truthy(&api_key_id) {
        out.push(("actor_api_key_id", api_key_id));
    }
    let event_info = or("event_info", "eventInfo");
    if truthy(&event_info) {
        out.push(("event_info", event_info));
    }
    let entity_info = or("entity_info", "entityInfo");
    if truthy(&entity_info) {
        let entity_email = entity_info.as_object().and_then(extract_email);
        out.push(("entity_info", entity_info));
        if let Some(email) = entity_email {
            set_actor_email_if_empty(&mut out, &Value::String(email.clone()));
            out.push(("entity_email", Value::String(email)));
        }
    }
    let target_email = or("email_address", "email");
    if truthy(&target_email) && !actor_email_set(&out) {
        set_actor_email_if_empty(&mut out, &target_email);
        out.push(("target_email", target_email));
    }
    out.retain(|(_, v)| !v.is_null());
    out
}

fn actor_email_set(out: &[(&'static str, Value)]) -> bool {
    out.iter().any(|(k, v)| *k == "actor_email" && truthy(v))
}

/// `if not normalized.get("actor_email"): normalized["actor_email"] = ...`
/// (the key keeps its place).
fn set_actor_email_if_empty(out: &mut [(&'static str, Value)], email: &Value) {
    if let Some((_, v)) = out.iter_mut().find(|(k, _)| *k == "actor_email")
        && !truthy(v)
    {
        *v = email.clone();
    }
}

/// `_extract_email`: the first non-blank string of these keys, trimmed.
fn extract_email(record: &Map<String, Value>) -> Option<String> {
    ["email_address", "email", "invited_email", "invitee_email"]
        .iter()
        .filter_map(|k| record.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(raw: &str) -> Value {
        serde_json::from_str(&event(raw).unwrap()).unwrap()
    }

    /// The object the add-on indexes for the documentation's example
    /// activity, key by key and in the add-on's order.
    #[test]
    fn a_user_activity_becomes_the_add_ons_object_in_its_order() {
        let raw = r#"{"id":"activity_01","created_at":"2026-05-22T15:21:54.358426Z",
            "organization_id":"org_01","organization_uuid":"0000-1","type":"claude_chat_created",
            "claude_chat_id":"claude_chat_01","actor":{"type":"user_actor","user_id":"user_01",
            "email_address":" user@example.com ","ip_address":"192.0.2.1","user_agent":"UA/1"},
            "extra_field":"not in the add-on's object"}"#;
        let text = event(raw).unwrap();
        assert_eq!(
            text,
            "{\"activity_id\":\"activity_01\",\"created_at\":\"2026-05-22T15:21:54.358426Z\",\
             \"event_type\":\"claude_chat_created\",\"type\":\"claude_chat_created\",\
             \"organization_id\":\"org_01\",\"organization_uuid\":\"0000-1\",\
             \"actor_type\":\"user_actor\",\"actor_user_id\":\"user_01\",\
             \"actor_email\":\"user@example.com\",\"actor_ip_address\":\"192.0.2.1\",\
             \"actor_user_agent\":\"UA/1\",\"claude_chat_id\":\"claude_chat_01\",\
             \"is_authentication_event\":true,\"is_change_event\":false,\"vendor\":\"anthropic\",\
             \"product\":\"claude_enterprise\",\"source_type_category\":\"compliance_activity\"}"
        );
    }

    /// The two activities of the add-on's own unit tests
    /// (`tests/unit/test_events.py`) and what they expect of them.
    #[test]
    fn the_add_ons_own_test_activities_flatten_as_it_expects() {
        let sso = flat(
            r#"{"id":"activity_123","created_at":"2026-04-10T08:09:10Z","type":"user_signed_in_sso",
            "organization_id":"org_abc","actor":{"type":"user_actor","email_address":"alice@example.com",
            "user_id":"user_123","ip_address":"192.0.2.1"}}"#,
        );
        assert_eq!(sso["activity_id"], "activity_123");
        assert_eq!(sso["event_type"], "user_signed_in_sso");
        assert_eq!(sso["type"], "user_signed_in_sso");
        assert_eq!(sso["actor_email"], "alice@example.com");
        assert_eq!(sso["is_authentication_event"], true);
        assert_eq!(sso["is_change_event"], false);
        let invite = flat(
            r#"{"id":"activity_invite","created_at":"2026-04-10T08:09:10Z","type":"org_user_invite_sent",
            "actor":{"type":"api_actor","api_key_id":"key_123"},
            "entity_info":{"email_address":"invitee@example.com"}}"#,
        );
        assert_eq!(invite["actor_email"], "invitee@example.com");
        assert_eq!(invite["entity_email"], "invitee@example.com");
        assert_eq!(invite["actor_api_key_id"], "key_123");
    }

    /// Every published sample activity flattens, with the fields the
    /// add-on's dashboards read taken from the right places.
    #[test]
    fn every_sample_activity_flattens_with_the_dashboard_fields() {
        let samples = include_str!("../../../fixtures/samples/activities.ndjson");
        let mut n = 0;
        for line in samples.lines().filter(|l| !l.trim().is_empty()) {
            let raw: Value = serde_json::from_str(line).unwrap();
            let v = flat(line);
            assert_eq!(v["event_type"], raw["type"], "{line}");
            assert_eq!(v["activity_id"], raw["id"]);
            assert_eq!(v["actor_type"], raw["actor"]["type"]);
            if let Some(email) = raw["actor"]["email_address"].as_str() {
                assert_eq!(v["actor_email"], email.trim());
            }
            for (flat_key, actor_key) in [
                ("actor_ip_address", "ip_address"),
                ("actor_user_id", "user_id"),
            ] {
                assert_eq!(
                    v.get(flat_key).unwrap_or(&Value::Null),
                    &raw["actor"][actor_key]
                );
            }
            for key in ["claude_chat_id", "claude_project_id", "organization_id"] {
                assert_eq!(v.get(key).unwrap_or(&Value::Null), &raw[key]);
            }
            assert!(v.as_object().unwrap().values().all(|x| !x.is_null()));
            n += 1;
        }
        assert!(n >= 70, "{n} samples");
    }

    #[test]
    fn api_actors_carry_their_key_and_other_actors_do_not() {
        let api = flat(
            r#"{"id":"a","type":"claude_chat_viewed","actor":{"type":"api_actor","api_key_id":"k1"}}"#,
        );
        assert_eq!(api["actor_api_key_id"], "k1");
        let admin = flat(
            r#"{"id":"a","type":"org_users_listed","actor":{"type":"admin_api_key_actor","api_key_id":"k1"}}"#,
        );
        assert!(admin.get("actor_api_key_id").is_none());
        assert_eq!(admin["actor_type"], "admin_api_key_actor");
    }

    #[test]
    fn the_email_falls_back_to_invites_then_to_the_top_level_address() {
        let invited = flat(
            r#"{"id":"a","type":"org_user_invite_sent","actor":{"type":"user_actor","email_address":"","invited_email":"new@example.com"}}"#,
        );
        assert_eq!(invited["actor_email"], "new@example.com");
        assert!(invited.get("target_email").is_none());
        assert_eq!(invited["is_change_event"], true);
        let target = flat(
            r#"{"id":"a","type":"x","actor":{"type":"unauthenticated_user_actor"},"email_address":"t@example.com"}"#,
        );
        assert_eq!(target["actor_email"], "t@example.com");
        assert_eq!(target["target_email"], "t@example.com");
        let keys: Vec<&str> = target
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert!(keys.contains(&"actor_email"));
    }

    #[test]
    fn nulls_are_left_out_and_odd_input_still_flattens() {
        let v = flat(r#"{"id":"a","type":"t","organization_id":null,"actor":"not an object"}"#);
        let o = v.as_object().unwrap();
        assert!(!o.contains_key("organization_id") && !o.contains_key("actor_type"));
        assert_eq!(o["is_authentication_event"], false);
        // `type` missing: the add-on falls back to `event`.
        let v = flat(r#"{"id":"a","event":"user_signed_out"}"#);
        assert_eq!(v["event_type"], "user_signed_out");
        assert_eq!(v["is_authentication_event"], true);
        assert!(event("[1,2]").is_err());
        assert!(event("not json").is_err());
    }

    #[test]
    fn an_event_over_the_sourcetype_truncate_is_refused() {
        let raw = format!(
            r#"{{"id":"a","type":"t","actor":{{"type":"user_actor","user_agent":"{}"}}}}"#,
            "x".repeat(MAX_EVENT_BYTES)
        );
        let err = event(&raw).unwrap_err();
        assert!(err.contains("TRUNCATE"), "{err}");
    }

    #[test]
    fn only_the_add_ons_sourcetype_is_accepted() {
        assert!(check_sourcetype(SOURCETYPE).is_ok());
        let err = check_sourcetype("anthropic:claude:compliance").unwrap_err();
        assert!(err.contains("remove sourcetype"), "{err}");
    }
}
