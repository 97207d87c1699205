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

/// A journal record as a destination receives it: rendered in the sink's
/// format, with what the delivery contract needs to settle it.
#[derive(Debug, Clone)]
pub struct BatchRecord {
    pub seq: i64,
    pub activity_id: String,
    pub created_at_ms: i64,
    /// The OCSF event or the raw activity, as the sink's format asks.
    pub payload: String,
}

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
        Activity::from_fields(fields, raw, now)
    }

    /// An activity from its top-level fields, already parsed from `raw`
    /// (the detection task parses a journal row once, for the rules and
    /// for the directory's view of it).
    pub fn from_fields(fields: Map<String, Value>, raw: Box<str>, now: DateTime<Utc>) -> Activity {
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

/// What the poller reads from every record before journaling it: the
/// dedupe key, the time, what to enrich and what to tag. The whole record is
/// only parsed when a sink renders its OCSF event; reading these few fields
/// straight from the bytes (unknown fields are skipped, not built) is most
/// of what ingest costs otherwise. Each field means exactly what it means on
/// [`Activity`]: a record this fast path does not take (a field of an
/// unexpected JSON type, a duplicate key) is read through
/// [`Activity::parse`] instead.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityHead {
    pub id: String,
    pub activity_type: String,
    pub created_at_ms: i64,
    /// `actor.ip_address` and `actor.user_agent`, when `actor` is an object
    /// (`None` inside when absent); `None` without an actor object.
    pub actor: Option<(Option<String>, Option<String>)>,
    /// The record's top-level `request_id` (on `compliance_api_accessed`,
    /// the API call it logs).
    pub request_id: Option<String>,
    pub raw: Box<str>,
}

/// The fields of [`ActivityHead`] as they appear in the JSON; every other
/// key is skipped.
#[derive(serde::Deserialize)]
struct HeadFields<'a> {
    #[serde(borrow, default)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    created_at: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    request_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    actor: Option<HeadActor<'a>>,
}

#[derive(serde::Deserialize)]
struct HeadActor<'a> {
    #[serde(borrow, default)]
    ip_address: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    user_agent: Option<std::borrow::Cow<'a, str>>,
}

impl ActivityHead {
    /// Reads a record as [`Activity::parse`] would, for the poller.
    pub fn read(raw: Box<RawValue>, now: DateTime<Utc>) -> ActivityHead {
        let raw: Box<str> = raw.into();
        let Ok(f) = serde_json::from_str::<HeadFields>(&raw) else {
            let activity = Activity::parse_text(raw.clone(), now);
            return ActivityHead {
                id: activity.id.clone(),
                activity_type: activity.activity_type.clone(),
                created_at_ms: activity.created_at_ms(),
                actor: activity
                    .actor
                    .as_ref()
                    .map(|a| (a.ip_address.clone(), a.user_agent.clone())),
                request_id: activity
                    .fields
                    .get("request_id")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                raw,
            };
        };
        let id = match f.id.as_deref() {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => synthetic_id(&raw),
        };
        let activity_type = f
            .kind
            .as_deref()
            .filter(|t| !t.is_empty())
            .unwrap_or("unknown")
            .to_string();
        let created_at = f.created_at.as_deref().and_then(parse_time).unwrap_or(now);
        ActivityHead {
            id,
            activity_type,
            created_at_ms: created_at.timestamp_millis(),
            actor: f.actor.map(|a| {
                (
                    a.ip_address.map(|s| s.into_owned()),
                    a.user_agent.map(|s| s.into_owned()),
                )
            }),
            request_id: f.request_id.map(|s| s.into_owned()),
            raw,
        }
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

/// The time of an epoch-milliseconds value (the epoch for one out of range).
pub fn utc(ms: i64) -> DateTime<Utc> {
    chrono::TimeZone::timestamp_millis_opt(&Utc, ms)
        .single()
        .unwrap_or_default()
}

/// An epoch-milliseconds value as [`format_time`] writes it.
pub fn fmt_ms(ms: i64) -> String {
    format_time(utc(ms))
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

    /// The poller's fast read agrees with the full parse on every fixture
    /// record and on records built to miss the fast path.
    #[test]
    fn the_head_of_a_record_is_what_the_full_parse_says() {
        let now = DateTime::from_timestamp_millis(1_800_000_000_123).unwrap();
        let odd = [
            r#"{"type":"claude_chat_created","created_at":"2026-05-05T16:53:20Z"}"#,
            r#"{"id":"","type":"","created_at":"yesterday","actor":null}"#,
            r#"{"id":7,"type":"claude_chat_created","created_at":1778000000}"#,
            r#"{"id":"a","id":"b","type":"claude_chat_created"}"#,
            r#"{"id":"a","type":"compliance_api_accessed","request_id":"req_1","actor":{"type":"api_actor","ip_address":"192.0.2.1","user_agent":7}}"#,
            r#"{"id":"a\u0062","type":"claude_chat_created","actor":{"ip_address":"2001:db8::1","user_agent":"curl/8 \"x\""}}"#,
            r#"{"id":"a","type":"org_compliance_api_settings_updated","compliance_api_logging_enabled":false}"#,
            r#"{"id":"a","actor":"someone"}"#,
            r#"[1,2]"#,
            r#""text""#,
        ];
        let fixtures = [
            include_str!("../fixtures/activities/catalogue.ndjson"),
            include_str!("../fixtures/activities/actors.ndjson"),
            include_str!("../fixtures/activities/edge.ndjson"),
        ];
        let lines = fixtures
            .iter()
            .flat_map(|f| f.lines())
            .chain(odd)
            .filter(|l| !l.trim().is_empty());
        for line in lines {
            let raw = || RawValue::from_string(line.to_string()).unwrap();
            let head = ActivityHead::read(raw(), now);
            let full = Activity::parse(raw(), now);
            assert_eq!(head.id, full.id, "{line}");
            assert_eq!(head.activity_type, full.activity_type, "{line}");
            assert_eq!(head.created_at_ms, full.created_at_ms(), "{line}");
            assert_eq!(
                head.actor,
                full.actor
                    .as_ref()
                    .map(|a| (a.ip_address.clone(), a.user_agent.clone())),
                "{line}"
            );
            assert_eq!(
                head.request_id.as_deref(),
                full.fields.get("request_id").and_then(Value::as_str),
                "{line}"
            );
            assert_eq!(&*head.raw, line);
        }
    }
}
