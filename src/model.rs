//! The Activity: typed common fields projected from the raw JSON, with the raw
//! bytes kept exactly as the Compliance API served them.
//!
//! The API's set of activity types, actor types and fields is open-ended, so
//! nothing here rejects an unknown value: only `id`, `type` and `created_at`
//! are needed to journal a record, and even those degrade instead of failing
//! (a record is never dropped because a field looks odd).

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// One activity from the feed.
#[derive(Debug, Clone)]
pub struct Activity {
    /// The activity id (the dedupe key). Synthesized from a hash of the raw
    /// bytes if the API ever sends a record without one (see `id_synthesized`).
    pub id: String,
    /// The raw `type`, or `"unknown"` if absent.
    pub activity_type: String,
    /// `created_at` parsed; if it was missing or unparseable, the time the
    /// record was read (and `created_at_fallback` is set).
    pub created_at: DateTime<Utc>,
    pub created_at_fallback: bool,
    pub id_synthesized: bool,
    pub organization_id: Option<String>,
    pub organization_uuid: Option<String>,
    /// The actor object, if present and an object.
    pub actor: Option<Actor>,
    /// The whole record as a JSON object (all fields, known and unknown).
    pub fields: Map<String, Value>,
    /// The record's bytes exactly as received: JSON from the API's page, or
    /// from the journal, which stored them.
    pub raw: Box<str>,
}

/// The actor union, projected. `kind` keeps the raw discriminator so that new
/// actor types pass through untouched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actor {
    /// Raw `actor.type` (`user_actor`, `api_actor`, ...); empty if absent.
    pub kind: String,
    pub email_address: Option<String>,
    pub unauthenticated_email_address: Option<String>,
    pub user_id: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub api_key_id: Option<String>,
    pub admin_api_key_id: Option<String>,
    pub service_account_id: Option<String>,
}

impl Activity {
    /// Parses one element of a page's `data[]`. Never fails: `now` stands in
    /// for a missing or unparseable `created_at`, a hash of the bytes for a
    /// missing `id`, and an element that is not an object is kept whole under
    /// `fields["value"]`, so the record is still journaled and delivered.
    pub fn parse(raw: Box<RawValue>, now: DateTime<Utc>) -> Activity {
        Activity::parse_text(raw.into(), now)
    }

    /// [`Activity::parse`] for a record's text as the journal kept it: the
    /// same bytes that arrived as JSON, so they are not validated again.
    pub fn parse_journaled(raw: &str, now: DateTime<Utc>) -> Activity {
        Activity::parse_text(raw.into(), now)
    }

    fn parse_text(raw: Box<str>, now: DateTime<Utc>) -> Activity {
        let fields = match serde_json::from_str::<Value>(&raw) {
            Ok(Value::Object(fields)) => fields,
            Ok(other) => Map::from_iter([("value".to_string(), other)]),
            // Only text that was not JSON to begin with; keep it regardless.
            Err(_) => Map::from_iter([("value".to_string(), Value::String(raw.to_string()))]),
        };
        // One pass over the fields rather than a map lookup per projected
        // field: this runs for every record the daemon reads.
        let (mut id, mut activity_type, mut created_at_text) = (None, None, None);
        let (mut organization_id, mut organization_uuid, mut actor) = (None, None, None);
        for (key, value) in &fields {
            match key.as_str() {
                "id" => id = value.as_str(),
                "type" => activity_type = value.as_str(),
                "created_at" => created_at_text = value.as_str(),
                "organization_id" => organization_id = value.as_str().map(str::to_string),
                "organization_uuid" => organization_uuid = value.as_str().map(str::to_string),
                "actor" => actor = value.as_object().map(Actor::from_fields),
                _ => {}
            }
        }
        let (id, id_synthesized) = match id {
            Some(id) if !id.is_empty() => (id.to_string(), false),
            _ => (synthetic_id(&raw), true),
        };
        let activity_type = activity_type
            .filter(|t| !t.is_empty())
            .unwrap_or("unknown")
            .to_string();
        let (created_at, created_at_fallback) = match created_at_text.and_then(parse_time) {
            Some(t) => (t, false),
            None => (now, true),
        };
        Activity {
            id,
            activity_type,
            created_at,
            created_at_fallback,
            id_synthesized,
            organization_id,
            organization_uuid,
            actor,
            fields,
            raw,
        }
    }

    /// Parses one activity from JSON text (fixtures, `claudit map`).
    pub fn from_json(json: &str) -> Result<Activity, serde_json::Error> {
        let raw = RawValue::from_string(json.to_string())?;
        Ok(Activity::parse(raw, Utc::now()))
    }

    /// `created_at` in epoch milliseconds.
    pub fn created_at_ms(&self) -> i64 {
        self.created_at.timestamp_millis()
    }
}

impl Actor {
    /// Projects the record's `actor` object (one pass over its fields).
    fn from_fields(fields: &Map<String, Value>) -> Actor {
        let mut actor = Actor::default();
        for (key, value) in fields {
            let Some(text) = value.as_str() else {
                continue;
            };
            if key == "type" {
                actor.kind = text.to_string();
                continue;
            }
            let slot = match key.as_str() {
                "email_address" => &mut actor.email_address,
                "unauthenticated_email_address" => &mut actor.unauthenticated_email_address,
                "user_id" => &mut actor.user_id,
                "ip_address" => &mut actor.ip_address,
                "user_agent" => &mut actor.user_agent,
                "api_key_id" => &mut actor.api_key_id,
                "admin_api_key_id" => &mut actor.admin_api_key_id,
                "service_account_id" => &mut actor.service_account_id,
                _ => continue,
            };
            *slot = Some(text.to_string());
        }
        actor
    }
}

/// Parses an RFC 3339 timestamp with 0 to 9 fractional digits.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Formats a time the way the API's filters want it: RFC 3339, UTC, with
/// microseconds (the API's own precision), `Z` suffix.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A stable id for a record that came without one: the same bytes always
/// give the same id, so a re-read still deduplicates.
fn synthetic_id(raw: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(raw.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("claudit_synthetic_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_fields_and_keeps_raw_bytes() {
        let json = r#"{"id":"activity_1","type":"claude_chat_created","created_at":"2026-05-08T12:18:11.000538Z","organization_id":null,"organization_uuid":"u","actor":{"type":"user_actor","email_address":"a@b.c","user_id":"user_1","ip_address":"192.0.2.1","user_agent":"curl/8"},"claude_chat_id":"c1"}"#;
        let a = Activity::from_json(json).unwrap();
        assert_eq!(a.id, "activity_1");
        assert_eq!(a.activity_type, "claude_chat_created");
        assert_eq!(a.created_at_ms(), 1778242691000);
        assert!(!a.created_at_fallback);
        assert_eq!(a.organization_id, None);
        assert_eq!(a.organization_uuid.as_deref(), Some("u"));
        let actor = a.actor.unwrap();
        assert_eq!(actor.kind, "user_actor");
        assert_eq!(actor.ip_address.as_deref(), Some("192.0.2.1"));
        assert_eq!(&*a.raw, json);
    }

    #[test]
    fn degrades_instead_of_failing() {
        let a = Activity::from_json(r#"{"created_at":"not a time"}"#).unwrap();
        assert!(a.id.starts_with("claudit_synthetic_"));
        assert!(a.id_synthesized);
        assert!(a.created_at_fallback);
        assert_eq!(a.activity_type, "unknown");
        assert!(a.actor.is_none());
        // Same bytes, same synthetic id.
        let b = Activity::from_json(r#"{"created_at":"not a time"}"#).unwrap();
        assert_eq!(a.id, b.id);
    }

    #[test]
    fn keeps_non_objects_instead_of_dropping_them() {
        let a = Activity::from_json("[1,2]").unwrap();
        assert!(a.id_synthesized && a.created_at_fallback);
        assert_eq!(a.fields["value"], serde_json::json!([1, 2]));
        assert_eq!(&*a.raw, "[1,2]");
        assert!(Activity::from_json("{not json").is_err());
    }

    #[test]
    fn time_formats_round_trip() {
        let t = parse_time("2026-04-10T08:09:10Z").unwrap();
        assert_eq!(format_time(t), "2026-04-10T08:09:10.000000Z");
        assert!(parse_time("2026-05-08T12:18:11.123456789+02:00").is_some());
    }
}
