//! `layout = "sentinel_bluevoyant"`: rows for the DCR of BlueVoyant's
//! "Anthropic ClaudeCompliance" Sentinel solution (3.0.1), so its table
//! `BV_ClaudeCompliance_ComplianceActivities_CL` and the ASIM AgentEvent
//! parser work on events claudit sends (`spec/vendor-content.md` section 2).
//!
//! The solution's own poller posts each activity unchanged to the stream
//! [`STREAM`], whose transform renames `id`, `type` and `title` to
//! `id_CF`, `type_CF`, `title_CF`. A row is therefore the raw activity with
//! `TimeGenerated` = now (ingest time, as the poller's rows have), under the
//! API's own names.
//!
//! The stream declares 159 columns ([`DECLARED`]) with types, and Azure
//! drops whatever a row carries outside them. The data does not always fit:
//! `limit_usd` is declared `long` and can be fractional, `current_value` /
//! `previous_value` are `boolean` and can be strings, `per_review_limit_usd`
//! is `string` and is a number, and the API serves field names the stream
//! does not declare. Each value is written so that nothing is lost:
//!
//! | value vs. column | sent as | action |
//! |---|---|---|
//! | fits the type | itself | — |
//! | number or boolean for a `string` column | its JSON text, `"12.5"` | `stringified` |
//! | whole number written `100.0` for `long`/`int` | `100` | `to_integer` |
//! | anything else the type cannot hold | column left out, value kept in the overflow | `moved` |
//! | field not declared | value kept in the overflow | `undeclared` |
//!
//! The overflow is an object at `actor.claudit_overflow`: `actor` is the
//! stream's one `dynamic` column every activity has (the parser reads named
//! keys of it, so one more key changes nothing it reads), and a dynamic
//! column keeps any JSON. Query it with
//! `BV_ClaudeCompliance_ComplianceActivities_CL | extend o = actor.claudit_overflow`.
//! Every action is counted per field (`claudit_sink_layout_fields_total`)
//! and logged the first time ([`super::FieldReport`]).

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use super::{FieldAction, FieldReport, Layout};

/// The DCR's input (and output) stream.
pub const STREAM: &str = "Custom-BV_ClaudeCompliance_ComplianceActivities_CL";
/// The key under `actor` that holds what the columns cannot.
pub const OVERFLOW_KEY: &str = "claudit_overflow";
/// Azure Monitor truncates a field value larger than this, so a row with
/// one is refused (dead-lettered) instead.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// A Log Analytics column type of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// `string`
    Text,
    Datetime,
    Dynamic,
    Boolean,
    Int,
    Long,
}

use Column::*;

/// The columns of [`STREAM`] in BlueVoyant's DCR (3.0.1), besides
/// `TimeGenerated`, which claudit sets.
pub const DECLARED: &[(&str, Column)] = &[
    ("id", Text),
    ("type", Text),
    ("created_at", Datetime),
    ("organization_id", Text),
    ("organization_uuid", Text),
    ("actor", Dynamic),
    ("claude_artifact_id", Text),
    ("claude_chat_id", Text),
    ("claude_file_id", Text),
    ("claude_project_id", Text),
    ("filename", Text),
    ("request_id", Text),
    ("request_method", Text),
    ("status_code", Int),
    ("url", Text),
    ("user_id", Text),
    ("requester_user_id", Text),
    ("workspace_id", Text),
    ("group_id", Text),
    ("group_name", Text),
    ("role", Text),
    ("role_id", Text),
    ("role_name", Text),
    ("principal_type", Text),
    ("principal_id", Text),
    ("service_account_id", Text),
    ("api_key_id", Text),
    ("api_key_name", Text),
    ("admin_api_key_id", Text),
    ("session_id", Text),
    ("invitee_email", Text),
    ("invited_email", Text),
    ("invited_role", Text),
    ("user_email", Text),
    ("deleted_user_email", Text),
    ("deleted_user_id", Text),
    ("current_role", Text),
    ("previous_role", Text),
    ("new_owner_id", Text),
    ("previous_owner_id", Text),
    ("member_ids", Dynamic),
    ("decision", Text),
    ("action", Text),
    ("status", Text),
    ("reason", Text),
    ("approved", Boolean),
    ("enabled", Boolean),
    ("is_enabled", Boolean),
    ("auth_method", Text),
    ("mfa_method", Text),
    ("provider", Text),
    ("grant_type", Text),
    ("max_permission", Text),
    ("access_level", Text),
    ("scopes", Dynamic),
    ("magic_link_enabled", Boolean),
    ("magic_link_toggled", Boolean),
    ("idp_saml_config_updated", Boolean),
    ("abuse_session_id", Text),
    ("domain", Text),
    ("signing_key_id", Text),
    ("service_key_id", Text),
    ("key_name", Text),
    ("certificate_id", Text),
    ("certificate_fingerprint", Text),
    ("token_id", Text),
    ("token_name", Text),
    ("federation_issuer_id", Text),
    ("federation_rule_id", Text),
    ("connection_id", Text),
    ("connection_type", Text),
    ("mcp_server_id", Text),
    ("mcp_server_name", Text),
    ("integration_id", Text),
    ("integration_type", Text),
    ("extension_id", Text),
    ("plugin_id", Text),
    ("plugin_name", Text),
    ("skill_id", Text),
    ("skill_name", Text),
    ("webhook_id", Text),
    ("ghe_configuration_id", Text),
    ("repo_name", Text),
    ("repo_owner", Text),
    ("repository_name", Text),
    ("config_id", Text),
    ("scan_id", Text),
    ("scan_project_id", Text),
    ("claude_published_artifact_id", Text),
    ("target_id", Text),
    ("target_type", Text),
    ("resource_id", Text),
    ("resource_type", Text),
    ("entity_id", Text),
    ("entity_type", Text),
    ("spend_limit_id", Text),
    ("invite_id", Text),
    ("updates", Dynamic),
    ("updated_fields", Dynamic),
    ("export_type", Text),
    ("new_mode", Text),
    ("previous_mode", Text),
    ("share_id", Text),
    ("algorithm", Text),
    ("is_service_created", Boolean),
    ("key_backing_type", Text),
    ("key_group_identifier", Text),
    ("new_signing_key_id", Text),
    ("old_signing_key_id", Text),
    ("service_name", Text),
    ("tunnel_id", Text),
    ("tunnel_token_id", Text),
    ("account_id", Text),
    ("consent_id", Text),
    ("consent_type", Text),
    ("limit_action", Text),
    ("limit_usd", Long),
    ("new_limit_usd", Long),
    ("artifact_type", Text),
    ("audience", Dynamic),
    ("claude_artifact_version_id", Text),
    ("claude_chat_snapshot_id", Text),
    ("claude_project_document_id", Text),
    ("claude_project_sync_source_id", Text),
    ("current_value", Boolean),
    ("design_project_id", Text),
    ("file_id", Text),
    ("from_date", Text),
    ("previous_value", Boolean),
    ("title", Text),
    ("to_date", Text),
    ("cli_name", Text),
    ("folder_id", Text),
    ("github_webhook_id", Long),
    ("installation_preference", Text),
    ("marketplace_id", Text),
    ("op_name", Text),
    ("organization_name", Text),
    ("resolved_count", Long),
    ("tool_name", Text),
    ("trigger_mode", Text),
    ("version", Text),
    ("cadence", Text),
    ("compliance_api_enabled", Boolean),
    ("compliance_api_logging_enabled", Boolean),
    ("environment_id", Text),
    ("new_otlp_endpoint", Text),
    ("new_otlp_protocol", Text),
    ("new_otlp_resource_attributes", Text),
    ("otlp_headers_change", Text),
    ("per_review_limit_usd", Text),
    ("previous_enabled", Boolean),
    ("previous_environment_id", Text),
    ("previous_otlp_endpoint", Text),
    ("previous_otlp_protocol", Text),
    ("previous_otlp_resource_attributes", Text),
    ("previous_per_review_limit_usd", Text),
    ("scans_cancelled", Long),
];

/// The declared type of `name`, if the stream declares it.
pub fn column(name: &str) -> Option<Column> {
    DECLARED.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// The explicit `stream` of a sink with this layout must be the solution's.
pub fn check_stream(stream: &str) -> Result<(), String> {
    if stream == STREAM {
        return Ok(());
    }
    Err(format!(
        "stream {stream:?} does not go with layout = \"sentinel_bluevoyant\": BlueVoyant's DCR \
         declares the stream {STREAM:?} (it fills the table BV_ClaudeCompliance_ComplianceActivities_CL \
         that the solution's parser reads); remove stream (the layout sets it) or remove layout"
    ))
}

/// What one value becomes for its column.
enum Fit<'a> {
    Keep(&'a str),
    Changed(String, FieldAction),
    Moved,
}

fn fit(raw: &RawValue, column: Column) -> Fit<'_> {
    let text = raw.get();
    let kind = text.as_bytes().first().copied().unwrap_or(b'n');
    let is_number = kind == b'-' || kind.is_ascii_digit();
    if kind == b'n' {
        return Fit::Keep(text);
    }
    match column {
        Dynamic => Fit::Keep(text),
        Text if kind == b'"' => Fit::Keep(text),
        // A number or a boolean reads back the same from its text.
        Text if is_number || kind == b't' || kind == b'f' => Fit::Changed(
            serde_json::to_string(text).expect("a string serializes"),
            FieldAction::Stringified,
        ),
        Boolean if kind == b't' || kind == b'f' => Fit::Keep(text),
        Datetime if kind == b'"' => {
            let parsed: Option<String> = serde_json::from_str(text).ok();
            match parsed {
                Some(s) if chrono::DateTime::parse_from_rfc3339(&s).is_ok() => Fit::Keep(text),
                _ => Fit::Moved,
            }
        }
        Int | Long if is_number => {
            let range = if column == Int {
                i64::from(i32::MIN)..=i64::from(i32::MAX)
            } else {
                i64::MIN..=i64::MAX
            };
            if let Ok(n) = text.parse::<i64>() {
                return if range.contains(&n) {
                    Fit::Keep(text)
                } else {
                    Fit::Moved
                };
            }
            match text.parse::<f64>() {
                Ok(f) if f.fract() == 0.0 && f.abs() < 9.0e15 && range.contains(&(f as i64)) => {
                    Fit::Changed((f as i64).to_string(), FieldAction::ToInteger)
                }
                _ => Fit::Moved,
            }
        }
        _ => Fit::Moved,
    }
}

/// One row of the stream for a raw activity: the activity's fields under
/// their own names, typed to the columns, `TimeGenerated` = `now` (RFC 3339),
/// and what the columns cannot hold in `actor.claudit_overflow`. Field
/// changes are reported to `report` when given (the first time the record
/// is encoded, so that a retry does not count them twice).
pub fn row(raw: &str, now: &str, mut report: Option<&mut FieldReport>) -> Result<String, String> {
    let fields: BTreeMap<String, &RawValue> = serde_json::from_str(raw)
        .map_err(|e| format!("the activity is not a JSON object ({e}); not sent"))?;
    let mut out = String::with_capacity(raw.len() + 64);
    out.push_str("{\"TimeGenerated\":");
    out.push_str(&serde_json::to_string(now).expect("a string serializes"));
    let mut overflow: Vec<(&str, &str)> = Vec::new();
    let mut note = |field: &str, action: FieldAction| {
        if let Some(r) = report.as_deref_mut() {
            r.record(field, action, Layout::SentinelBlueVoyant);
        }
    };
    for (name, value) in &fields {
        if name == "actor" {
            continue;
        }
        let Some(column) = column(name) else {
            note(name.as_str(), FieldAction::Undeclared);
            overflow.push((name.as_str(), value.get()));
            continue;
        };
        let written = match fit(value, column) {
            Fit::Keep(text) => text.to_string(),
            Fit::Changed(text, action) => {
                note(name.as_str(), action);
                text
            }
            Fit::Moved => {
                note(name.as_str(), FieldAction::Moved);
                overflow.push((name.as_str(), value.get()));
                continue;
            }
        };
        push_member(&mut out, name, &written)?;
    }
    let actor = fields.get("actor").map(|a| a.get());
    match (actor, overflow.is_empty()) {
        (Some(actor), true) => push_member(&mut out, "actor", actor)?,
        (None, true) => {}
        (actor, false) => {
            let actor = actor_with_overflow(actor, &overflow, &mut note)?;
            push_member(&mut out, "actor", &actor)?;
        }
    }
    out.push('}');
    Ok(out)
}

fn push_member(out: &mut String, name: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(format!(
            "the value of {name} is {} bytes in the row, over Azure Monitor's limit of \
             {MAX_VALUE_BYTES} bytes per field value (Azure would truncate it); not sent",
            value.len()
        ));
    }
    out.push(',');
    out.push_str(&serde_json::to_string(name).expect("a string serializes"));
    out.push(':');
    out.push_str(value);
    Ok(())
}

/// `actor` with the overflow object added as its `claudit_overflow` key.
/// An actor that is not an object (never seen from the API) is kept under
/// `actor.value`.
fn actor_with_overflow(
    actor: Option<&str>,
    overflow: &[(&str, &str)],
    note: &mut impl FnMut(&str, FieldAction),
) -> Result<String, String> {
    let owned_actor: Option<Box<RawValue>>;
    let mut members: BTreeMap<String, &RawValue> = BTreeMap::new();
    match actor {
        None => {}
        Some(text) if text.trim_start().starts_with('{') => {
            members = serde_json::from_str(text)
                .map_err(|e| format!("the activity's actor is not a JSON object ({e})"))?;
        }
        Some(text) => {
            owned_actor = Some(
                RawValue::from_string(text.to_string())
                    .map_err(|e| format!("the activity's actor is not JSON ({e})"))?,
            );
            note("actor", FieldAction::Moved);
            members.insert(
                "value".to_string(),
                owned_actor.as_deref().expect("just set"),
            );
        }
    }
    let mut object = String::from("{");
    for (name, value) in &members {
        if name == OVERFLOW_KEY {
            // The API's own key of that name (never seen) stays inside the
            // overflow, so nothing is overwritten.
            continue;
        }
        if object.len() > 1 {
            object.push(',');
        }
        object.push_str(&serde_json::to_string(name).expect("a string serializes"));
        object.push(':');
        object.push_str(value.get());
    }
    if object.len() > 1 {
        object.push(',');
    }
    object.push_str(&serde_json::to_string(OVERFLOW_KEY).expect("a string serializes"));
    object.push_str(":{");
    let mut first = true;
    let own = members
        .get(OVERFLOW_KEY)
        .map(|v| ("actor.claudit_overflow", v.get()));
    for (name, value) in overflow.iter().copied().chain(own) {
        if !first {
            object.push(',');
        }
        first = false;
        object.push_str(&serde_json::to_string(name).expect("a string serializes"));
        object.push(':');
        object.push_str(value);
    }
    object.push_str("}}");
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const NOW: &str = "2026-12-07T10:00:00.000Z";

    fn row_of(raw: &str, report: &mut FieldReport) -> Value {
        serde_json::from_str(&row(raw, NOW, Some(report)).unwrap()).unwrap()
    }

    #[test]
    fn a_declared_activity_is_sent_unchanged_with_the_time_it_was_sent() {
        let mut report = FieldReport::unscraped("s");
        let raw = r#"{"id":"activity_1","type":"claude_chat_created","title":"t",
            "created_at":"2026-05-22T15:21:54.358426Z","organization_id":"org_1",
            "actor":{"type":"user_actor","email_address":"u@example.com","ip_address":"192.0.2.1"},
            "claude_chat_id":"claude_chat_1","status_code":200,"scopes":["a"],"approved":true}"#;
        let v = row_of(raw, &mut report);
        let raw: Value = serde_json::from_str(raw).unwrap();
        let o = v.as_object().unwrap();
        assert_eq!(o["TimeGenerated"], NOW);
        for (k, value) in raw.as_object().unwrap() {
            assert_eq!(&o[k], value, "{k}");
        }
        assert_eq!(o.len(), raw.as_object().unwrap().len() + 1);
        assert!(o.get("id_CF").is_none(), "the DCR renames id itself");
    }

    /// The mismatches the DCR's declared types have with the data.
    #[test]
    fn values_the_columns_cannot_hold_are_kept_in_the_overflow_and_reported() {
        let mut report = FieldReport::unscraped("s");
        let raw = r#"{"id":"a","type":"admin_api_key_updated","actor":{"type":"user_actor"},
            "limit_usd":12.5,"new_limit_usd":100.0,"per_review_limit_usd":7.25,
            "current_value":"active","previous_value":"archived","status_code":"ok",
            "deleted_user_email":"d@example.com","not_declared":{"x":[1,2]}}"#;
        let v = row_of(raw, &mut report);
        let o = v.as_object().unwrap();
        assert!(
            !o.contains_key("limit_usd"),
            "a long column cannot hold 12.5"
        );
        assert_eq!(o["new_limit_usd"], 100);
        assert_eq!(o["per_review_limit_usd"], "7.25");
        assert!(!o.contains_key("current_value") && !o.contains_key("not_declared"));
        assert_eq!(o["deleted_user_email"], "d@example.com");
        let overflow = &o["actor"][OVERFLOW_KEY];
        assert_eq!(overflow["limit_usd"], 12.5);
        assert_eq!(overflow["current_value"], "active");
        assert_eq!(overflow["previous_value"], "archived");
        assert_eq!(overflow["status_code"], "ok");
        assert_eq!(overflow["not_declared"]["x"][1], 2);
        assert_eq!(o["actor"]["type"], "user_actor");
        for (field, action) in [
            ("limit_usd", FieldAction::Moved),
            ("new_limit_usd", FieldAction::ToInteger),
            ("per_review_limit_usd", FieldAction::Stringified),
            ("current_value", FieldAction::Moved),
            ("previous_value", FieldAction::Moved),
            ("not_declared", FieldAction::Undeclared),
        ] {
            assert_eq!(report.count(field, action), 1, "{field}");
        }
        // Every value of the activity is somewhere in the row.
        let raw: Value = serde_json::from_str(raw).unwrap();
        for (k, value) in raw.as_object().unwrap() {
            let found = o.get(k).is_some() || overflow.get(k) == Some(value);
            assert!(found, "{k} lost");
        }
    }

    #[test]
    fn an_activity_without_actor_still_keeps_its_overflow() {
        let mut report = FieldReport::unscraped("s");
        let v = row_of(r#"{"id":"a","brand_new_field":1}"#, &mut report);
        assert_eq!(v["actor"][OVERFLOW_KEY]["brand_new_field"], 1);
        let v = row_of(r#"{"id":"a","actor":"odd","x":1}"#, &mut report);
        assert_eq!(v["actor"]["value"], "odd");
        assert_eq!(v["actor"][OVERFLOW_KEY]["x"], 1);
        let v = row_of(
            r#"{"id":"a","actor":{"type":"t","claudit_overflow":5},"x":1}"#,
            &mut report,
        );
        assert_eq!(v["actor"][OVERFLOW_KEY]["actor.claudit_overflow"], 5);
        assert_eq!(v["actor"][OVERFLOW_KEY]["x"], 1);
        assert!(row("[]", NOW, None).is_err());
        let big = format!(
            r#"{{"id":"a","filename":"{}"}}"#,
            "x".repeat(MAX_VALUE_BYTES)
        );
        assert!(row(&big, NOW, None).unwrap_err().contains("filename"));
    }

    /// Every published sample activity makes a row whose every column is
    /// declared with a type its value fits, and loses nothing.
    #[test]
    fn every_sample_activity_fits_the_declared_columns() {
        let samples = include_str!("../../../fixtures/samples/activities.ndjson");
        let mut report = FieldReport::unscraped("s");
        for line in samples.lines().filter(|l| !l.trim().is_empty()) {
            let v = row_of(line, &mut report);
            let raw: Value = serde_json::from_str(line).unwrap();
            let o = v.as_object().unwrap();
            let overflow = o["actor"].get(OVERFLOW_KEY).cloned().unwrap_or_default();
            for (k, value) in o {
                if k == "TimeGenerated" {
                    continue;
                }
                let ty = column(k).unwrap_or_else(|| panic!("{k} undeclared in a row"));
                let fits = match ty {
                    Text => value.is_string(),
                    Datetime => value.is_string(),
                    Dynamic => true,
                    Boolean => value.is_boolean(),
                    Int | Long => value.is_i64(),
                };
                assert!(fits || value.is_null(), "{k}: {value}");
            }
            for (k, value) in raw.as_object().unwrap() {
                let kept = k == "actor" || o.contains_key(k) || overflow.get(k) == Some(value);
                assert!(kept, "{k} lost in {line}");
            }
        }
    }

    #[test]
    fn only_the_solutions_stream_is_accepted() {
        assert!(check_stream(STREAM).is_ok());
        assert!(check_stream("Custom-ClaudeCompliance_CL").is_err());
        assert_eq!(DECLARED.len(), 158);
    }
}
