//! The severity policy of `spec/ocsf-mapping.md` 4.4. Detection belongs in
//! the SIEM; only a short, explicit list is raised above Informational, and
//! `OcsfConfig.severity` overrides any type.

use serde_json::{Map, Value};

use super::classes::{Class, status_from_suffix};

pub const INFORMATIONAL: u8 = 1;
pub const LOW: u8 = 2;
pub const MEDIUM: u8 = 3;
pub const HIGH: u8 = 4;

/// Whether the activity switches the Compliance API or its activity logging
/// off: the feed goes silent after it, so the daemon also raises it in its
/// logs and metrics (`claudit_compliance_logging_disabled_total`).
pub fn turns_compliance_logging_off(activity_type: &str, fields: &Map<String, Value>) -> bool {
    let is_false = |k: &str| fields.get(k).and_then(Value::as_bool) == Some(false);
    may_turn_compliance_logging_off(activity_type)
        && (is_false("compliance_api_logging_enabled") || is_false("compliance_api_enabled"))
}

/// Whether an activity of this type can switch logging off (its fields
/// decide): the poller reads only these records whole to check.
pub fn may_turn_compliance_logging_off(activity_type: &str) -> bool {
    activity_type == "org_compliance_api_settings_updated"
}

/// The default severity of an activity. `rule_class` is the class its rule
/// maps to (before any degradation), `None` for unknown types.
pub fn severity(activity_type: &str, fields: &Map<String, Value>, rule_class: Option<Class>) -> u8 {
    let str_field = |k: &str| fields.get(k).and_then(Value::as_str);
    let is_false = |k: &str| fields.get(k).and_then(Value::as_bool) == Some(false);
    match activity_type {
        // The organization deleted, or its deletion under way.
        "org_deleted"
        | "organization_deleted"
        | "org_deleted_via_bulk"
        | "org_deletion_requested"
        | "org_bulk_delete_initiated" => HIGH,
        // Audit logging switched off: the highest-severity signal of the source.
        "org_compliance_api_settings_updated"
            if turns_compliance_logging_off(activity_type, fields) =>
        {
            HIGH
        }
        "admin_api_key_created" => MEDIUM,
        "api_key_created" if has_compliance_scope(fields) => MEDIUM,
        "role_assignment_granted" if str_field("role").is_some_and(is_privileged_role) => MEDIUM,
        "claude_user_role_updated" if str_field("current_role").is_some_and(is_privileged_role) => {
            MEDIUM
        }
        "org_user_invite_sent" if str_field("invited_role").is_some_and(is_privileged_role) => {
            MEDIUM
        }
        "primary_owner_transferred" => MEDIUM,
        "org_sso_connection_deleted"
        | "org_sso_connection_deactivated"
        | "org_directory_sync_deleted" => MEDIUM,
        "org_sso_toggled" | "org_magic_link_second_factor_toggled"
            if is_false("enabled") || is_false("is_enabled") =>
        {
            MEDIUM
        }
        "org_ip_restriction_deleted" | "ip_restriction_policy_deleted" => MEDIUM,
        "org_data_export_started"
        | "org_data_export_accessed"
        | "audit_log_export_started"
        | "audit_log_export_accessed" => MEDIUM,
        // A Compliance API call refused for its credentials is a failed
        // authentication against the API.
        "compliance_api_accessed"
            if matches!(
                fields.get("status_code").and_then(Value::as_i64),
                Some(401 | 403)
            ) =>
        {
            LOW
        }
        t if t.ends_with("_access_failed") => LOW,
        t if rule_class == Some(Class::Authentication) && status_from_suffix(t) == 2 => LOW,
        _ => INFORMATIONAL,
    }
}

/// An owner or admin role: a `:`/`_`-separated part of the role name is
/// `owner` or `admin` (`admin`, `primary_owner`, `chat_project:owner`).
fn is_privileged_role(role: &str) -> bool {
    role.split([':', '_'])
        .any(|part| part.eq_ignore_ascii_case("owner") || part.eq_ignore_ascii_case("admin"))
}

/// A key that can read the Compliance API (a Compliance Access Key).
fn has_compliance_scope(fields: &Map<String, Value>) -> bool {
    fields
        .get("scopes")
        .and_then(Value::as_array)
        .is_some_and(|scopes| {
            scopes.iter().filter_map(Value::as_str).any(|s| {
                s.starts_with("read:compliance")
                    || s.starts_with("delete:compliance")
                    || s == "read:org_audit"
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn policy_table() {
        let none = Map::new();
        assert_eq!(
            severity(
                "claude_chat_viewed",
                &none,
                Some(Class::WebResourcesActivity)
            ),
            1
        );
        assert_eq!(
            severity("sso_login_failed", &none, Some(Class::Authentication)),
            2
        );
        assert_eq!(severity("claude_chat_access_failed", &none, None), 2);
        assert_eq!(severity("admin_api_key_created", &none, None), 3);
        assert_eq!(severity("org_deleted_via_bulk", &none, None), 4);
        let logging_off =
            f(json!({"compliance_api_enabled": true, "compliance_api_logging_enabled": false}));
        assert_eq!(
            severity("org_compliance_api_settings_updated", &logging_off, None),
            4
        );
        let api_off = f(json!({"compliance_api_enabled": false}));
        assert_eq!(
            severity("org_compliance_api_settings_updated", &api_off, None),
            4
        );
        let on = f(json!({"compliance_api_enabled": true, "compliance_api_logging_enabled": true}));
        assert_eq!(
            severity("org_compliance_api_settings_updated", &on, None),
            1
        );
        let owner = f(json!({"role": "chat_project:owner"}));
        assert_eq!(severity("role_assignment_granted", &owner, None), 3);
        let viewer = f(json!({"role": "chat_project:viewer"}));
        assert_eq!(severity("role_assignment_granted", &viewer, None), 1);
        let compliance_key = f(json!({"scopes": ["read:compliance_activities"]}));
        assert_eq!(severity("api_key_created", &compliance_key, None), 3);
        assert_eq!(severity("api_key_created", &none, None), 1);
        let sso_off = f(json!({"is_enabled": false}));
        assert_eq!(severity("org_sso_toggled", &sso_off, None), 3);
        let denied = f(json!({"status_code": 403}));
        assert_eq!(severity("compliance_api_accessed", &denied, None), 2);
    }
}
