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
//! uses `or`).
//!
//! The add-on drops every other field of the activity (the invited
//! address, the role granted, the file name...). claudit does not: the
//! fields the object has no key for are carried, unchanged, in one more key
//! at the end, [`UNMAPPED_KEY`] (`{"claudit_unmapped": {"role": ...,
//! "actor": {"unauthenticated_email_address": ...}}}`). HEC takes any
//! object as the event and the add-on's props, event types, tags,
//! searches and dashboards read only their own keys by name, so one more
//! key changes nothing they find; `KV_MODE = json` makes the carried fields
//! searchable as `claudit_unmapped.<field>`. Each carried field is counted
//! (`claudit_sink_layout_fields_total{action="carried"}`) and logged the
//! first time ([`FieldReport`]).
//!
//! Splunk's `TRUNCATE = 65536` for the sourcetype would cut a longer event
//! into invalid JSON. When only the carried fields make the event that
//! long, it is sent without them and each is counted as `not_in_layout`,
//! with the fix in the log line (a second sink with `format = "raw"`); the
//! journal and the archive keep them. An event too long even without them
//! (only with a huge user agent) is refused (dead-lettered), never
//! truncated.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use serde_json::value::RawValue;

use super::{FieldAction, FieldReport, Layout, truthy};

/// The add-on's activity sourcetype; its event types, tags and searches key
/// on it.
pub const SOURCETYPE: &str = "anthropic:compliance:activity";
/// The add-on's source is `anthropic:compliance:activities:<account>`;
/// nothing searches on it. claudit's default account part.
pub const DEFAULT_SOURCE: &str = "anthropic:compliance:activities:claudit";
/// `TRUNCATE` of the sourcetype in the add-on's props.conf.
pub const MAX_EVENT_BYTES: usize = 65_536;
/// The key, last in the event, holding unchanged the fields of the activity
/// that the add-on's object has no key for.
pub const UNMAPPED_KEY: &str = "claudit_unmapped";
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

/// The add-on's flattened object of one raw activity, as JSON text, with
/// the fields it has no key for under [`UNMAPPED_KEY`] (or, when they would
/// make the event longer than the sourcetype's `TRUNCATE`, without them).
/// What became of those fields is reported to `report` when given (the
/// first attempt at a batch, so that a retry does not count them twice).
pub fn event(raw: &str, report: Option<&mut FieldReport>) -> Result<String, String> {
    let activity = Members::parse(raw)
        .map_err(|e| format!("the activity is not a JSON object ({e}); not sent"))?;
    let flat = flatten(&activity);
    let mut text = serde_json::to_string(&Flattened(flat.pairs)).expect("JSON values serialize");
    if text.len() > MAX_EVENT_BYTES {
        return Err(format!(
            "the flattened event is {} bytes, over the {MAX_EVENT_BYTES}-byte TRUNCATE of \
             sourcetype {SOURCETYPE} (Splunk would cut it into invalid JSON); not sent",
            text.len()
        ));
    }
    if flat.unmapped.is_empty() {
        return Ok(text);
    }
    let carried = unmapped_member(&flat.unmapped);
    let action = if text.len() + carried.len() <= MAX_EVENT_BYTES {
        text.pop();
        text.push_str(&carried);
        text.push('}');
        FieldAction::Carried
    } else {
        FieldAction::NotInLayout
    };
    if let Some(report) = report {
        for field in &flat.unmapped {
            report.record(&field.label(), action, Layout::SplunkApp);
        }
    }
    Ok(text)
}

/// `,"claudit_unmapped":{...}`: the unmapped fields, each value exactly as
/// the API sent it, the actor's fields inside an `actor` object.
fn unmapped_member(unmapped: &[Unmapped]) -> String {
    fn member(out: &mut String, name: &str, value: &str) {
        if !out.ends_with('{') {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(name).expect("a string serializes"));
        out.push(':');
        out.push_str(value);
    }
    let mut actor = String::from("{");
    let mut out = String::from(",");
    out.push_str(&serde_json::to_string(UNMAPPED_KEY).expect("a string serializes"));
    out.push_str(":{");
    for field in unmapped {
        match field {
            Unmapped::Top(name, value) => member(&mut out, name, value.get()),
            Unmapped::WholeActor(value) => member(&mut out, "actor", value.get()),
            Unmapped::Actor(name, value) => member(&mut actor, name, value.get()),
        }
    }
    if actor.len() > 1 {
        actor.push('}');
        member(&mut out, "actor", &actor);
    }
    out.push('}');
    out
}

/// A field of the activity that the add-on's object has no key for.
enum Unmapped<'a> {
    /// A top-level field.
    Top(String, &'a RawValue),
    /// A field of the actor object.
    Actor(String, &'a RawValue),
    /// An actor that is not an object (never seen from the API).
    WholeActor(&'a RawValue),
}

impl Unmapped<'_> {
    /// The field's name in the metric and the log: `role`, `actor.x`.
    fn label(&self) -> String {
        match self {
            Unmapped::Top(name, _) => name.clone(),
            Unmapped::Actor(name, _) => format!("actor.{name}"),
            Unmapped::WholeActor(_) => "actor".to_string(),
        }
    }
}

/// A JSON object of the activity (the activity itself or its actor), its
/// members as sent, and which of them the add-on's object took.
struct Members<'a> {
    members: BTreeMap<String, &'a RawValue>,
    taken: RefCell<BTreeSet<&'static str>>,
}

impl<'a> Members<'a> {
    fn parse(text: &'a str) -> serde_json::Result<Members<'a>> {
        Ok(Members {
            members: serde_json::from_str(text)?,
            taken: RefCell::default(),
        })
    }

    fn empty() -> Members<'a> {
        Members {
            members: BTreeMap::new(),
            taken: RefCell::default(),
        }
    }

    /// The value of `key` (null when absent), not marked as taken.
    fn peek(&self, key: &str) -> Value {
        self.members
            .get(key)
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or(Value::Null)
    }

    /// The value of `key`, marked as taken by the object.
    fn take(&self, key: &'static str) -> Value {
        self.taken.borrow_mut().insert(key);
        self.peek(key)
    }

    /// Python's `a or b`: the value of `a` when truthy, else that of `b`,
    /// with the key it came from (to mark it taken when it is used).
    fn or(&self, a: &'static str, b: &'static str) -> (&'static str, Value) {
        let first = self.peek(a);
        if truthy(&first) {
            (a, first)
        } else {
            (b, self.peek(b))
        }
    }

    /// The members the object did not take, null values left out (as the
    /// add-on leaves them out).
    fn rest(&self) -> impl Iterator<Item = (&String, &'a RawValue)> + '_ {
        let taken = self.taken.borrow().clone();
        self.members
            .iter()
            .filter(move |(k, v)| !taken.contains(k.as_str()) && v.get() != "null")
            .map(|(k, v)| (k, *v))
    }
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

/// The add-on's object and the fields of the activity it has no key for.
struct Flat<'a> {
    pairs: Vec<(&'static str, Value)>,
    unmapped: Vec<Unmapped<'a>>,
}

/// `events.py` `normalize_activity`, then `write_json_event`'s removal of
/// null values; every field read into the object is marked taken, and the
/// others are returned as unmapped (top-level fields, then the actor's).
fn flatten<'a>(activity: &Members<'a>) -> Flat<'a> {
    let actor_raw = activity.members.get("actor").copied();
    let actor = match actor_raw {
        Some(raw) if raw.get().starts_with('{') => {
            activity.take("actor");
            Members::parse(raw.get()).unwrap_or_else(|_| Members::empty())
        }
        _ => Members::empty(),
    };
    let (event_type_key, event_type) = activity.or("type", "event");
    activity.take(event_type_key);
    let is_in = |list: &[&str]| event_type.as_str().is_some_and(|t| list.contains(&t));
    let actor_email = match extract_email(|k| actor.peek(k)) {
        Some((key, email)) => {
            actor.take(key);
            Value::String(email)
        }
        None => Value::Null,
    };
    let mut out: Vec<(&'static str, Value)> = vec![
        ("activity_id", activity.take("id")),
        ("created_at", activity.take("created_at")),
        ("event_type", event_type.clone()),
        ("type", event_type.clone()),
        ("organization_id", activity.take("organization_id")),
        ("organization_uuid", activity.take("organization_uuid")),
        ("actor_type", actor.take("type")),
        ("actor_user_id", actor.take("user_id")),
        ("actor_email", actor_email),
        ("actor_ip_address", actor.take("ip_address")),
        ("actor_user_agent", actor.take("user_agent")),
        ("claude_chat_id", activity.take("claude_chat_id")),
        ("claude_project_id", activity.take("claude_project_id")),
        ("file_id", activity.take("file_id")),
        (
            "is_authentication_event",
            Value::Bool(is_in(AUTH_EVENT_TYPES)),
        ),
        ("is_change_event", Value::Bool(is_in(CHANGE_EVENT_TYPES))),
        ("vendor", Value::from("anthropic")),
        ("product", Value::from("claude_enterprise")),
        ("source_type_category", Value::from("compliance_activity")),
    ];
    let api_key_id = actor.peek("api_key_id");
    if actor.peek("type").as_str() == Some("api_actor") && truthy(&api_key_id) {
        actor.take("api_key_id");
        out.push(("actor_api_key_id", api_key_id));
    }
    let (key, event_info) = activity.or("event_info", "eventInfo");
    if truthy(&event_info) {
        activity.take(key);
        out.push(("event_info", event_info));
    }
    let (key, entity_info) = activity.or("entity_info", "entityInfo");
    if truthy(&entity_info) {
        activity.take(key);
        let entity_email = entity_info
            .as_object()
            .and_then(|o| extract_email(|k| o.get(k).cloned().unwrap_or(Value::Null)));
        out.push(("entity_info", entity_info));
        if let Some((_, email)) = entity_email {
            set_actor_email_if_empty(&mut out, &Value::String(email.clone()));
            out.push(("entity_email", Value::String(email)));
        }
    }
    let (key, target_email) = activity.or("email_address", "email");
    if truthy(&target_email) && !actor_email_set(&out) {
        activity.take(key);
        set_actor_email_if_empty(&mut out, &target_email);
        out.push(("target_email", target_email));
    }
    out.retain(|(_, v)| !v.is_null());
    let mut unmapped: Vec<Unmapped<'a>> = activity
        .rest()
        .map(|(k, v)| match k.as_str() {
            "actor" => Unmapped::WholeActor(v),
            _ => Unmapped::Top(k.clone(), v),
        })
        .collect();
    unmapped.extend(actor.rest().map(|(k, v)| Unmapped::Actor(k.clone(), v)));
    Flat {
        pairs: out,
        unmapped,
    }
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

/// `_extract_email`: the first non-blank string of these keys, trimmed,
/// with the key it came from.
fn extract_email(get: impl Fn(&str) -> Value) -> Option<(&'static str, String)> {
    ["email_address", "email", "invited_email", "invitee_email"]
        .into_iter()
        .find_map(|k| {
            let v = get(k);
            let trimmed = v.as_str()?.trim();
            (!trimmed.is_empty()).then(|| (k, trimmed.to_string()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(raw: &str) -> Value {
        serde_json::from_str(&event(raw, None).unwrap()).unwrap()
    }

    /// The object the add-on indexes for the documentation's example
    /// activity, key by key and in the add-on's order, and then the field
    /// it has no key for.
    #[test]
    fn a_user_activity_becomes_the_add_ons_object_in_its_order() {
        let raw = r#"{"id":"activity_01","created_at":"2026-05-22T15:21:54.358426Z",
            "organization_id":"org_01","organization_uuid":"0000-1","type":"claude_chat_created",
            "claude_chat_id":"claude_chat_01","actor":{"type":"user_actor","user_id":"user_01",
            "email_address":" user@example.com ","ip_address":"192.0.2.1","user_agent":"UA/1"},
            "extra_field":"not in the add-on's object"}"#;
        let mut report = FieldReport::unscraped("s");
        let text = event(raw, Some(&mut report)).unwrap();
        assert_eq!(
            text,
            "{\"activity_id\":\"activity_01\",\"created_at\":\"2026-05-22T15:21:54.358426Z\",\
             \"event_type\":\"claude_chat_created\",\"type\":\"claude_chat_created\",\
             \"organization_id\":\"org_01\",\"organization_uuid\":\"0000-1\",\
             \"actor_type\":\"user_actor\",\"actor_user_id\":\"user_01\",\
             \"actor_email\":\"user@example.com\",\"actor_ip_address\":\"192.0.2.1\",\
             \"actor_user_agent\":\"UA/1\",\"claude_chat_id\":\"claude_chat_01\",\
             \"is_authentication_event\":true,\"is_change_event\":false,\"vendor\":\"anthropic\",\
             \"product\":\"claude_enterprise\",\"source_type_category\":\"compliance_activity\",\
             \"claudit_unmapped\":{\"extra_field\":\"not in the add-on's object\"}}"
        );
        assert_eq!(report.count("extra_field", FieldAction::Carried), 1);
    }

    fn sample(activity_type: &str) -> &'static str {
        include_str!("../../../fixtures/samples/activities.ndjson")
            .lines()
            .find(|l| l.contains(&format!("\"type\":\"{activity_type}\"")))
            .unwrap_or_else(|| panic!("no {activity_type} sample"))
    }

    /// Where the add-on's object puts a field of the activity, if it has
    /// a key for it (`actor.x` for the actor's fields).
    fn mapped_key(field: &str) -> Option<&'static str> {
        Some(match field {
            "id" => "activity_id",
            "created_at" => "created_at",
            "type" => "event_type",
            "organization_id" => "organization_id",
            "organization_uuid" => "organization_uuid",
            "claude_chat_id" => "claude_chat_id",
            "claude_project_id" => "claude_project_id",
            "file_id" => "file_id",
            "actor.type" => "actor_type",
            "actor.user_id" => "actor_user_id",
            "actor.email_address" => "actor_email",
            "actor.ip_address" => "actor_ip_address",
            "actor.user_agent" => "actor_user_agent",
            "actor.api_key_id" => "actor_api_key_id",
            _ => return None,
        })
    }

    /// Every non-null field of `raw` is in `event`: under the add-on's key
    /// for it with the same value (an address trimmed), or unchanged under
    /// `claudit_unmapped`. Returns the fields found there.
    fn assert_nothing_lost(raw: &str, event: &Value) -> Vec<String> {
        let raw: Value = serde_json::from_str(raw).unwrap();
        let mut fields: Vec<(String, &Value)> = Vec::new();
        for (k, v) in raw.as_object().unwrap() {
            match (k.as_str(), v.as_object()) {
                ("actor", Some(actor)) => {
                    fields.extend(actor.iter().map(|(k, v)| (format!("actor.{k}"), v)))
                }
                _ => fields.push((k.clone(), v)),
            }
        }
        let unmapped = event.get(UNMAPPED_KEY);
        let mut carried = Vec::new();
        for (field, value) in fields.into_iter().filter(|(_, v)| !v.is_null()) {
            let at_key = mapped_key(&field).and_then(|k| event.get(k));
            let same = |v: &Value| v == value || v.as_str() == value.as_str().map(str::trim);
            if at_key.is_some_and(same) {
                continue;
            }
            let path: Vec<&str> = field.splitn(2, '.').collect();
            let kept = path
                .iter()
                .try_fold(unmapped, |v, k| v.map(|v| v.get(*k)))
                .flatten();
            assert_eq!(kept, Some(value), "{field} lost in {event}");
            carried.push(field);
        }
        carried
    }

    /// A type-specific activity (a role granted to a user): the add-on's
    /// object has no key for the role, the target or the resource, so they
    /// travel under `claudit_unmapped`, each counted once per event.
    #[test]
    fn type_specific_fields_are_carried_unchanged_and_counted() {
        let raw = sample("role_assignment_granted");
        let mut report = FieldReport::unscraped("s");
        let text = event(raw, Some(&mut report)).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["event_type"], "role_assignment_granted");
        let mut carried = assert_nothing_lost(raw, &v);
        carried.sort();
        assert_eq!(
            carried,
            [
                "resource_id",
                "resource_type",
                "role",
                "target_id",
                "target_type"
            ]
        );
        for field in &carried {
            assert_eq!(report.count(field, FieldAction::Carried), 1, "{field}");
        }
        // The add-on's keys come first; the carried fields are the last key.
        assert!(
            text.ends_with('}') && text.rfind(UNMAPPED_KEY) > text.rfind("compliance_activity")
        );
        // An actor field the object has no key for stays in an actor object.
        let sso = sample("sso_login_initiated");
        let v: Value = serde_json::from_str(&event(sso, Some(&mut report)).unwrap()).unwrap();
        assert_eq!(
            assert_nothing_lost(sso, &v),
            ["actor.unauthenticated_email_address"]
        );
        assert!(v[UNMAPPED_KEY]["actor"]["unauthenticated_email_address"].is_string());
        assert_eq!(
            report.count("actor.unauthenticated_email_address", FieldAction::Carried),
            1
        );
        // No report given (a retry): nothing counted again.
        event(raw, None).unwrap();
        assert_eq!(report.count("role", FieldAction::Carried), 1);
    }

    /// Every published sample activity loses no field.
    #[test]
    fn every_sample_activity_keeps_every_field() {
        let samples = include_str!("../../../fixtures/samples/activities.ndjson");
        let mut carried = 0;
        for line in samples.lines().filter(|l| !l.trim().is_empty()) {
            carried += assert_nothing_lost(line, &flat(line)).len();
        }
        assert!(carried >= 40, "{carried} fields carried");
    }

    /// What the add-on's rules read but did not use is carried too: the
    /// `event` fallback beside a `type`, a top-level address when the actor
    /// has one, the actor's other addresses, an actor that is not an
    /// object; null values are left out, as the add-on leaves them out.
    #[test]
    fn what_the_add_ons_rules_pass_over_is_carried() {
        let raw = r#"{"id":"a","type":"t","event":"e","email_address":"top@example.com",
            "actor":{"type":"user_actor","email_address":"a@example.com","invited_email":"i@example.com",
            "api_key_id":"k"},"gone":null,"event_info":""}"#;
        let v = flat(raw);
        let mut carried = assert_nothing_lost(raw, &v);
        carried.sort();
        assert_eq!(
            carried,
            [
                "actor.api_key_id",
                "actor.invited_email",
                "email_address",
                "event",
                "event_info"
            ]
        );
        assert!(v[UNMAPPED_KEY].get("gone").is_none());
        let odd = r#"{"id":"a","type":"t","actor":"not an object"}"#;
        let v = flat(odd);
        assert_eq!(v[UNMAPPED_KEY]["actor"], "not an object");
        assert_eq!(assert_nothing_lost(odd, &v), ["actor"]);
        // Nothing to carry: no extra key.
        let plain = flat(r#"{"id":"a","type":"t","actor":{"type":"user_actor"}}"#);
        assert!(plain.get(UNMAPPED_KEY).is_none());
    }

    /// Fields that would push the event past the sourcetype's TRUNCATE are
    /// left out of it and counted as such; the add-on's object is sent.
    #[test]
    fn fields_over_the_truncate_are_reported_not_in_layout() {
        let raw = format!(
            r#"{{"id":"a","type":"org_user_invite_sent","actor":{{"type":"user_actor"}},
            "invited_email":"n@example.com","note":"{}"}}"#,
            "x".repeat(MAX_EVENT_BYTES)
        );
        let mut report = FieldReport::unscraped("s");
        let text = event(&raw, Some(&mut report)).unwrap();
        assert!(text.len() <= MAX_EVENT_BYTES && !text.contains(UNMAPPED_KEY));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["event_type"], "org_user_invite_sent");
        for field in ["note", "invited_email"] {
            assert_eq!(report.count(field, FieldAction::NotInLayout), 1, "{field}");
            assert_eq!(report.count(field, FieldAction::Carried), 0, "{field}");
        }
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
        assert!(event("[1,2]", None).is_err());
        assert!(event("not json", None).is_err());
    }

    #[test]
    fn an_event_over_the_sourcetype_truncate_is_refused() {
        let raw = format!(
            r#"{{"id":"a","type":"t","actor":{{"type":"user_actor","user_agent":"{}"}}}}"#,
            "x".repeat(MAX_EVENT_BYTES)
        );
        let err = event(&raw, None).unwrap_err();
        assert!(err.contains("TRUNCATE"), "{err}");
    }

    #[test]
    fn only_the_add_ons_sourcetype_is_accepted() {
        assert!(check_sourcetype(SOURCETYPE).is_ok());
        let err = check_sourcetype("anthropic:claude:compliance").unwrap_err();
        assert!(err.contains("remove sourcetype"), "{err}");
    }
}
