//! The detections that need the directory (spec/detections.md §4), as
//! functions of one activity and its directory context, for the detection
//! engine to register beside its Sigma rules (a finding per [`Hit`], with
//! the rule's metadata; the group key makes the finding's uid).
//!
//! - `departed-user-activity`: an activity by an identity after it was
//!   removed from the organization (no vendor ships it: the feed alone
//!   cannot tell).
//! - `privileged-action-by-non-admin`: an admin-only action by a user the
//!   directory knows, who held no admin-class role or group at the time.
//! - `invite-outside-verified-domains`: an invitation to an address outside
//!   the organization's verified domains (Elastic: "invite events do not
//!   carry verified organization domains").
//!
//! Each judges only what the directory knows: an actor it has never listed
//! is not "departed" nor "not an admin", and without any verified domain
//! no invite is "outside".

use serde_json::{Value, json};

use super::enrich::{DirectoryContext, Identity};
use crate::model::Activity;

/// A detection rule's metadata, in the detection engine's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryRule {
    pub id: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// Sigma level: `informational` .. `critical`.
    pub level: &'static str,
    /// Sigma tags (ATT&CK).
    pub tags: &'static [&'static str],
    pub falsepositives: &'static [&'static str],
}

pub const DEPARTED_USER_ACTIVITY: DirectoryRule = DirectoryRule {
    id: "departed-user-activity",
    title: "Activity by a user who had left the organization",
    description: "A user acted after their membership ended (org_user_deleted, scim_user_deleted, org_user_left, or no longer listed by the directory): a session or credential that outlived offboarding.",
    level: "high",
    tags: &["attack.persistence", "attack.t1078"],
    falsepositives: &[
        "Activities of the removal itself, or logged a few seconds after it by sessions being closed",
        "A user re-invited after leaving, before the next directory sync",
    ],
};

pub const PRIVILEGED_ACTION_BY_NON_ADMIN: DirectoryRule = DirectoryRule {
    id: "privileged-action-by-non-admin",
    title: "Admin action by a user without an admin-class role or group",
    description: "An action only administrators should take (keys, SSO, IP restrictions, roles, members, Compliance API settings) by a user the directory lists without an admin-class organization role, custom role or admin group at the time.",
    level: "high",
    tags: &["attack.privilege_escalation", "attack.t1078"],
    falsepositives: &[
        "A custom role that grants the action but whose name is not in [sources.directory] admin_roles",
        "A role granted minutes before the action, after the last directory refresh",
    ],
};

pub const INVITE_OUTSIDE_VERIFIED_DOMAINS: DirectoryRule = DirectoryRule {
    id: "invite-outside-verified-domains",
    title: "Invitation to an address outside the organization's verified domains",
    description: "An organization invite was sent to an e-mail domain that is neither verified by the organization (org_domain_verified) nor listed in [sources.directory] verified_domains.",
    level: "medium",
    tags: &["attack.persistence", "attack.t1136.003"],
    falsepositives: &["Contractors and partners invited on purpose"],
};

pub const RULES: &[DirectoryRule] = &[
    DEPARTED_USER_ACTIVITY,
    PRIVILEGED_ACTION_BY_NON_ADMIN,
    INVITE_OUTSIDE_VERIFIED_DOMAINS,
];

/// Activity types only administrators should perform (successful ones).
pub const PRIVILEGED_TYPES: &[&str] = &[
    "admin_api_key_created",
    "admin_api_key_deleted",
    "admin_api_key_updated",
    "api_key_created",
    "claude_user_role_updated",
    "group_created",
    "group_deleted",
    "group_member_added",
    "group_member_removed",
    "org_compliance_api_settings_updated",
    "org_domain_removed",
    "org_domain_verified",
    "org_ip_restriction_created",
    "org_ip_restriction_deleted",
    "org_ip_restriction_updated",
    "org_magic_link_second_factor_toggled",
    "org_sso_connection_activated",
    "org_sso_connection_deactivated",
    "org_sso_connection_deleted",
    "org_sso_group_role_mappings_updated",
    "org_sso_provisioning_mode_changed",
    "org_sso_toggled",
    "org_user_deleted",
    "primary_owner_transferred",
    "rbac_role_assigned",
    "rbac_role_created",
    "rbac_role_deleted",
    "rbac_role_permission_added",
    "role_assignment_granted",
];

/// Types that end a membership: the departure's own activity is not an
/// activity after it.
const REMOVAL_TYPES: &[&str] = &[
    "org_user_deleted",
    "scim_user_deleted",
    "org_user_left",
    "account_deleted",
];

/// Invitations and the field that holds the invited address.
const INVITE_TYPES: &[(&str, &str)] = &[
    ("org_user_invite_sent", "invited_email"),
    ("org_user_invite_re_sent", "invited_email"),
    ("end_user_invite_requested", "invitee_email"),
];

/// A rule that matched one activity.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub rule: &'static DirectoryRule,
    /// The finding's group key: (field, value).
    pub group: Vec<(String, String)>,
    /// What made it match, for the finding's evidence.
    pub evidence: Value,
}

/// Evaluates the directory rules on one activity. `context` is the
/// directory context of its journal row; `verified_domains` the domains
/// verified at its time plus those configured (lower case).
pub fn evaluate(
    activity: &Activity,
    context: Option<&DirectoryContext>,
    verified_domains: &[String],
) -> Vec<Hit> {
    let mut hits = Vec::new();
    let t = activity.activity_type.as_str();
    let actor = context.and_then(|c| c.actor.as_ref());
    if let Some(actor) = actor
        && actor.departed
        && !(REMOVAL_TYPES.contains(&t) && actor.departed_time == Some(activity.created_at_ms()))
    {
        hits.push(Hit {
            rule: &DEPARTED_USER_ACTIVITY,
            group: vec![("actor.user_id".into(), actor.user_id.to_string())],
            evidence: json!({
                "user_id": &*actor.user_id,
                "email": actor.email.as_deref(),
                "departed_time": actor.departed_time,
                "activity_type": t,
            }),
        });
    }
    if let Some(actor) = actor
        && !actor.departed
        && !actor.admin
        && PRIVILEGED_TYPES.contains(&t)
    {
        hits.push(Hit {
            rule: &PRIVILEGED_ACTION_BY_NON_ADMIN,
            group: vec![("actor.user_id".into(), actor.user_id.to_string())],
            evidence: json!({
                "user_id": &*actor.user_id,
                "email": actor.email.as_deref(),
                "organization_role": actor.organization_role.as_deref(),
                "groups": actor.groups.iter().map(|g| g.name.as_deref().unwrap_or(&g.uid)).collect::<Vec<_>>(),
                "roles": role_names(actor),
                "activity_type": t,
            }),
        });
    }
    if let Some((_, field)) = INVITE_TYPES.iter().find(|(ty, _)| *ty == t)
        && let Some(email) = activity.fields.get(*field).and_then(Value::as_str)
        && let Some(domain) = domain_of(email)
        && !verified_domains.is_empty()
        && !verified_domains.iter().any(|v| within(&domain, v))
    {
        hits.push(Hit {
            rule: &INVITE_OUTSIDE_VERIFIED_DOMAINS,
            group: vec![("invited_domain".into(), domain.clone())],
            evidence: json!({
                "invited_email": email,
                "invited_domain": domain,
                "invited_role": activity.fields.get("invited_role"),
                "verified_domains": verified_domains,
            }),
        });
    }
    hits
}

fn role_names(id: &Identity) -> Vec<&str> {
    id.roles
        .iter()
        .map(|r| r.name.as_deref().unwrap_or(&r.uid))
        .collect()
}

/// The lower-cased domain of an address.
fn domain_of(email: &str) -> Option<String> {
    let (_, domain) = email.trim().rsplit_once('@')?;
    let domain = domain.trim_end_matches('.').to_lowercase();
    (!domain.is_empty()).then_some(domain)
}

/// `domain` is `verified` or one of its subdomains.
fn within(domain: &str, verified: &str) -> bool {
    domain == verified
        || domain
            .strip_suffix(verified)
            .is_some_and(|rest| rest.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::directory::enrich::{GroupRef, OrgRef};

    fn identity(admin: bool, departed_time: Option<i64>) -> Identity {
        Identity {
            user_id: Arc::from("user_1"),
            name: Some(Arc::from("Ada")),
            email: Some(Arc::from("ada@acme.example")),
            org: Some(OrgRef {
                uid: Arc::from("org"),
                name: None,
            }),
            organization_role: Some(Arc::from(if admin { "admin" } else { "user" })),
            admin,
            groups: vec![GroupRef {
                uid: Arc::from("group_1"),
                name: Some(Arc::from("Finance")),
                source_type: None,
            }],
            roles: vec![],
            member_since: Some(0),
            departed: departed_time.is_some(),
            departed_time,
        }
    }

    fn activity(t: &str, created_ms: i64, extra: &str) -> Activity {
        let created = chrono::DateTime::from_timestamp_millis(created_ms)
            .unwrap()
            .to_rfc3339();
        Activity::from_json(&format!(
            r#"{{"id":"a","type":"{t}","created_at":"{created}","actor":{{"type":"user_actor","user_id":"user_1"}}{extra}}}"#
        ))
        .unwrap()
    }

    fn ids(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|h| h.rule.id).collect()
    }

    fn with_actor(id: Identity) -> DirectoryContext {
        DirectoryContext {
            actor: Some(id),
            user: None,
        }
    }

    #[test]
    fn departed_users_are_flagged_after_their_removal_only() {
        let gone = with_actor(identity(false, Some(1_000)));
        let hits = evaluate(
            &activity("claude_chat_created", 2_000, ""),
            Some(&gone),
            &[],
        );
        assert_eq!(ids(&hits), ["departed-user-activity"]);
        assert_eq!(hits[0].group, [("actor.user_id".into(), "user_1".into())]);
        assert_eq!(hits[0].evidence["departed_time"], 1_000);
        // Their own leaving, at the time it ended the membership: not after it.
        assert!(evaluate(&activity("org_user_left", 1_000, ""), Some(&gone), &[]).is_empty());
        // A member, or someone the directory does not know: nothing.
        let here = with_actor(identity(false, None));
        assert!(
            evaluate(
                &activity("claude_chat_created", 2_000, ""),
                Some(&here),
                &[]
            )
            .is_empty()
        );
        assert!(evaluate(&activity("claude_chat_created", 2_000, ""), None, &[]).is_empty());
    }

    #[test]
    fn admin_actions_by_non_admins_are_flagged() {
        let user = with_actor(identity(false, None));
        let admin = with_actor(identity(true, None));
        let hits = evaluate(
            &activity("org_sso_toggled", 5, r#","enabled":false"#),
            Some(&user),
            &[],
        );
        assert_eq!(ids(&hits), ["privileged-action-by-non-admin"]);
        assert_eq!(hits[0].evidence["groups"], json!(["Finance"]));
        assert!(evaluate(&activity("org_sso_toggled", 5, ""), Some(&admin), &[]).is_empty());
        assert!(evaluate(&activity("claude_chat_created", 5, ""), Some(&user), &[]).is_empty());
        // Unknown actor: no judgement.
        assert!(evaluate(&activity("org_sso_toggled", 5, ""), None, &[]).is_empty());
        for t in PRIVILEGED_TYPES {
            assert!(
                crate::catalogue::catalogue().iter().any(|c| c.name == *t),
                "{t} is not in the catalogue"
            );
        }
    }

    #[test]
    fn invites_outside_verified_domains_are_flagged() {
        let verified = vec!["acme.example".to_string()];
        let invite = |email: &str| {
            activity(
                "org_user_invite_sent",
                5,
                &format!(r#","invited_email":"{email}","invited_role":"admin""#),
            )
        };
        let hits = evaluate(&invite("eve@gmail.example"), None, &verified);
        assert_eq!(ids(&hits), ["invite-outside-verified-domains"]);
        assert_eq!(
            hits[0].group,
            [("invited_domain".into(), "gmail.example".into())]
        );
        assert_eq!(hits[0].evidence["invited_role"], "admin");
        for inside in ["bob@acme.example", "Bob@EU.Acme.Example", "x@acme.example."] {
            assert!(
                evaluate(&invite(inside), None, &verified).is_empty(),
                "{inside}"
            );
        }
        assert!(
            !evaluate(&invite("x@notacme.example"), None, &verified).is_empty(),
            "a suffix that is not a subdomain is outside"
        );
        // No verified domain known: no judgement.
        assert!(evaluate(&invite("eve@gmail.example"), None, &[]).is_empty());
    }
}
