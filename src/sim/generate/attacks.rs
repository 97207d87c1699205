//! Attack sequences the simulator can add to its backlog, so the demo and
//! the detection tests have something real to find among the everyday
//! records: a brute force on one person's sign-in, an Admin API key created
//! in the small hours right after Compliance logging was turned off, and an
//! impossible journey between two sign-ins.
//!
//! Each record is placed relative to the backlog's end (`start`) and
//! rendered whole (the simulator stores it as is); ids are the simulator's
//! own, from the record's position.

use serde_json::{Value, json};

use super::pools::World;

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;

/// One record of an attack sequence.
pub(crate) struct AttackRecord {
    /// `created_at`, microseconds since the epoch.
    pub created: i64,
    pub type_name: &'static str,
    /// Index of the record's organization in the world, if it has one.
    pub org: Option<u8>,
    /// Index of the acting user (user actors only).
    pub user: Option<u32>,
    /// Every field but `id`, `created_at`, `organization_id` and
    /// `organization_uuid`, which the simulator adds.
    pub fields: Value,
}

/// The sequences, all within the last `span` before `start` (at least 12 h
/// of backlog: shorter backlogs get none).
pub(crate) fn attack_sequences(world: &World, start: i64, span: i64) -> Vec<AttackRecord> {
    if span < 12 * HOUR || world.users.len() < 3 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let victim = &world.users[1];
    let admin_index = 2u32;
    let admin = &world.users[admin_index as usize];
    let traveller_index = 0u32;
    let traveller = &world.users[traveller_index as usize];

    // 1. Brute force: 12 failed magic-link sign-ins for one person from one
    // address in 9 minutes, four hours before the end.
    let brute = start - 4 * HOUR;
    for i in 0..12 {
        out.push(AttackRecord {
            created: brute + i * 45_000_000,
            type_name: "magic_link_login_failed",
            org: None,
            user: None,
            fields: json!({
                "type": "magic_link_login_failed",
                "actor": {
                    "type": "unauthenticated_user_actor",
                    "ip_address": "185.220.101.34",
                    "user_agent": "python-requests/2.32.3",
                    "unauthenticated_email_address": victim.email,
                }
            }),
        });
    }

    // 2. Compliance logging off, then an Admin API key created 35 minutes
    // later, in the small hours (01:00-04:00 UTC): the latest such minute
    // at least two hours before the end, which is less than 23 hours
    // before it, so inside any span of 24 hours.
    let night = small_hours_before(start - 2 * HOUR);
    let admin_actor = json!({
        "type": "user_actor",
        "email_address": admin.email,
        "user_id": admin.id,
        "ip_address": "45.155.205.233",
        "user_agent": "curl/8.7.1",
    });
    out.push(AttackRecord {
        created: night,
        type_name: "org_compliance_api_settings_updated",
        org: Some(admin.org),
        user: Some(admin_index),
        fields: json!({
            "type": "org_compliance_api_settings_updated",
            "actor": admin_actor,
            "compliance_api_enabled": true,
            "compliance_api_logging_enabled": false,
        }),
    });
    out.push(AttackRecord {
        created: night + 35 * MINUTE,
        type_name: "admin_api_key_created",
        org: Some(admin.org),
        user: Some(admin_index),
        fields: json!({
            "type": "admin_api_key_created",
            "actor": admin_actor,
            "admin_api_key_id": "apikey_01ZAttackerAdminKey00000",
            "scopes": ["admin:write"],
        }),
    });

    // 3. Impossible travel: a sign-in from New York, then one from Tokyo
    // 50 minutes later (10,800 km).
    let travel = start - 2 * HOUR;
    for (offset, ip) in [(0, "24.39.0.1"), (50 * MINUTE, "133.242.0.1")] {
        out.push(AttackRecord {
            created: travel + offset,
            type_name: "sso_login_succeeded",
            org: None,
            user: Some(traveller_index),
            fields: json!({
                "type": "sso_login_succeeded",
                "actor": {
                    "type": "user_actor",
                    "email_address": traveller.email,
                    "user_id": traveller.id,
                    "ip_address": ip,
                    "user_agent": traveller.user_agent,
                }
            }),
        });
    }
    out
}

/// The latest minute at or before `t` whose time of day is within
/// 01:00-04:00 UTC (at most 21 hours before `t`).
fn small_hours_before(t: i64) -> i64 {
    let day = 24 * HOUR;
    let midnight = t.div_euclid(day) * day;
    let latest = match t - midnight {
        tod if tod < HOUR => midnight - day + 4 * HOUR,
        tod if tod <= 4 * HOUR => t,
        _ => midnight + 4 * HOUR,
    };
    latest.div_euclid(MINUTE) * MINUTE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_small_hours_are_within_21_hours_before_any_time() {
        let day = 24 * HOUR;
        let base = 1_796_083_200_000_000; // 2026-12-01T00:00:00Z, µs
        for minute in 0..(day / MINUTE) {
            let t = base + minute * MINUTE + 17_000_000;
            let night = small_hours_before(t);
            let tod = night.rem_euclid(day);
            assert!((HOUR..=4 * HOUR).contains(&tod), "{minute}");
            assert!(night <= t && t - night <= 21 * HOUR, "{minute}");
        }
    }
}
