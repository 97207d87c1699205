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

//! The detections that need the directory (spec/detections.md §4), as
//! checks of one activity and its directory context. Each is a rule of the
//! pack (`rules/departed-user-activity.yml`, ...: metadata, the Sigma
//! detection that selects its candidate activities, suppression) whose
//! `stage: {type: directory, check: NAME}` hands every match to [`judge`]
//! with the journal row's directory context; a [`Hit`] is a finding, its
//! group key the rule's suppression group.
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
//! is not "departed" nor "not an admin", without any verified domain no
//! invite is "outside", and a row of a source without a directory (or a
//! `claudit rules test` record without a `directory`) is not judged.

use serde::Deserialize;
use serde_json::{Value, json};

use super::enrich::{DirectoryContext, Identity};
use crate::model::Activity;

/// The directory checks a rule's `stage: {type: directory}` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    DepartedUser,
    PrivilegedByNonAdmin,
    InviteOutsideVerifiedDomains,
}

impl Check {
    pub const ALL: [Check; 3] = [
        Check::DepartedUser,
        Check::PrivilegedByNonAdmin,
        Check::InviteOutsideVerifiedDomains,
    ];

    /// The name a rule file gives (`check:`); the built-in rule of the
    /// same id uses it.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::DepartedUser => "departed-user",
            Check::PrivilegedByNonAdmin => "privileged-by-non-admin",
            Check::InviteOutsideVerifiedDomains => "invite-outside-verified-domains",
        }
    }

    pub fn parse(name: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The fields of the group key of its hits (the rule's suppression
    /// group), in order.
    pub fn group_by(self) -> &'static [&'static str] {
        match self {
            Check::DepartedUser | Check::PrivilegedByNonAdmin => &["actor.user_id"],
            Check::InviteOutsideVerifiedDomains => &["invited_domain"],
        }
    }
}

/// What the directory says about one journal row: its context (actor and
/// subject as of the activity's time, as known when it was journaled) and
/// the organization's verified domains then (plus the configured ones,
/// lower case).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryFacts {
    #[serde(default)]
    pub actor: Option<Identity>,
    #[serde(default)]
    pub user: Option<Identity>,
    #[serde(default)]
    pub verified_domains: Vec<String>,
}

impl DirectoryFacts {
    pub fn new(context: Option<DirectoryContext>, verified_domains: Vec<String>) -> Self {
        let context = context.unwrap_or_default();
        DirectoryFacts {
            actor: context.actor,
            user: context.user,
            verified_domains,
        }
    }
}

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
pub const REMOVAL_TYPES: &[&str] = &[
    "org_user_deleted",
    "scim_user_deleted",
    "org_user_left",
    "account_deleted",
];

/// Invitations and the field that holds the invited address.
pub const INVITE_TYPES: &[(&str, &str)] = &[
    ("org_user_invite_sent", "invited_email"),
    ("org_user_invite_re_sent", "invited_email"),
    ("end_user_invite_requested", "invitee_email"),
];

/// A check that held for one activity.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub check: Check,
    /// The finding's group key: (field, value), the fields of
    /// [`Check::group_by`].
    pub group: Vec<(String, String)>,
    /// What made it hold.
    pub evidence: Value,
}

/// Whether `check` holds for the activity (`activity_type`, `created_at_ms`,
/// the raw JSON `activity`) given what the directory says of its row.
pub fn judge(
    check: Check,
    activity_type: &str,
    created_at_ms: i64,
    activity: &Value,
    facts: &DirectoryFacts,
) -> Option<Hit> {
    let t = activity_type;
    let actor = facts.actor.as_ref();
    match check {
        Check::DepartedUser => {
            let actor = actor?;
            let own_removal =
                REMOVAL_TYPES.contains(&t) && actor.departed_time == Some(created_at_ms);
            if !actor.departed || own_removal {
                return None;
            }
            Some(Hit {
                check,
                group: vec![("actor.user_id".into(), actor.user_id.to_string())],
                evidence: json!({
                    "user_id": &*actor.user_id,
                    "email": actor.email.as_deref(),
                    "departed_time": actor.departed_time,
                    "activity_type": t,
                }),
            })
        }
        Check::PrivilegedByNonAdmin => {
            let actor = actor?;
            if actor.departed || actor.admin || !PRIVILEGED_TYPES.contains(&t) {
                return None;
            }
            Some(Hit {
                check,
                group: vec![("actor.user_id".into(), actor.user_id.to_string())],
                evidence: json!({
                    "user_id": &*actor.user_id,
                    "email": actor.email.as_deref(),
                    "organization_role": actor.organization_role.as_deref(),
                    "groups": actor.groups.iter().map(|g| g.name.as_deref().unwrap_or(&g.uid)).collect::<Vec<_>>(),
                    "roles": role_names(actor),
                    "activity_type": t,
                }),
            })
        }
        Check::InviteOutsideVerifiedDomains => {
            let verified = &facts.verified_domains;
            let (_, field) = INVITE_TYPES.iter().find(|(ty, _)| *ty == t)?;
            let email = activity.get(*field).and_then(Value::as_str)?;
            let domain = domain_of(email)?;
            if verified.is_empty() || verified.iter().any(|v| within(&domain, v)) {
                return None;
            }
            Some(Hit {
                check,
                group: vec![("invited_domain".into(), domain.clone())],
                evidence: json!({
                    "invited_email": email,
                    "invited_domain": domain,
                    "invited_role": activity.get("invited_role"),
                    "verified_domains": verified,
                }),
            })
        }
    }
}

/// Every check that holds for one activity (tests, and callers outside
/// the engine).
pub fn evaluate(activity: &Activity, facts: &DirectoryFacts) -> Vec<Hit> {
    let raw = Value::Object(activity.fields.clone());
    Check::ALL
        .into_iter()
        .filter_map(|c| {
            judge(
                c,
                &activity.activity_type,
                activity.created_at_ms(),
                &raw,
                facts,
            )
        })
        .collect()
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
        hits.iter().map(|h| h.check.as_str()).collect()
    }

    fn with_actor(id: Identity) -> DirectoryFacts {
        DirectoryFacts {
            actor: Some(id),
            ..DirectoryFacts::default()
        }
    }

    fn domains(verified: &[String]) -> DirectoryFacts {
        DirectoryFacts {
            verified_domains: verified.to_vec(),
            ..DirectoryFacts::default()
        }
    }

    #[test]
    fn checks_are_named_and_grouped() {
        for c in Check::ALL {
            assert_eq!(Check::parse(c.as_str()), Some(c));
        }
        assert_eq!(Check::parse("departed"), None);
    }

    /// The pack's rules select (with Sigma) exactly the activities their
    /// checks judge, so no candidate is filtered out before its check.
    #[test]
    fn the_pack_rules_select_what_their_checks_judge() {
        let rule = |name: &str| {
            crate::detect::builtin_files()
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, text)| *text)
                .unwrap()
        };
        let privileged = rule("privileged-action-by-non-admin.yml");
        let listed: Vec<&str> = privileged
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- "))
            .filter(|v| !v.starts_with('"'))
            .collect();
        assert_eq!(listed, PRIVILEGED_TYPES);
        assert!(privileged.contains("check: privileged-by-non-admin"));
        let invite = rule("invite-outside-verified-domains.yml");
        for (t, _) in INVITE_TYPES {
            assert!(invite.contains(t), "{t}");
        }
        assert!(invite.contains("check: invite-outside-verified-domains"));
        assert!(rule("departed-user-activity.yml").contains("check: departed-user"));
    }

    #[test]
    fn departed_users_are_flagged_after_their_removal_only() {
        let gone = with_actor(identity(false, Some(1_000)));
        let hits = evaluate(&activity("claude_chat_created", 2_000, ""), &gone);
        assert_eq!(ids(&hits), ["departed-user"]);
        assert_eq!(hits[0].group, [("actor.user_id".into(), "user_1".into())]);
        assert_eq!(hits[0].evidence["departed_time"], 1_000);
        // Their own leaving, at the time it ended the membership: not after it.
        assert!(evaluate(&activity("org_user_left", 1_000, ""), &gone).is_empty());
        // A member, or someone the directory does not know: nothing.
        let here = with_actor(identity(false, None));
        assert!(evaluate(&activity("claude_chat_created", 2_000, ""), &here).is_empty());
        assert!(
            evaluate(
                &activity("claude_chat_created", 2_000, ""),
                &DirectoryFacts::default()
            )
            .is_empty()
        );
    }

    #[test]
    fn admin_actions_by_non_admins_are_flagged() {
        let user = with_actor(identity(false, None));
        let admin = with_actor(identity(true, None));
        let hits = evaluate(
            &activity("org_sso_toggled", 5, r#","enabled":false"#),
            &user,
        );
        assert_eq!(ids(&hits), ["privileged-by-non-admin"]);
        assert_eq!(hits[0].evidence["groups"], json!(["Finance"]));
        assert!(evaluate(&activity("org_sso_toggled", 5, ""), &admin).is_empty());
        assert!(evaluate(&activity("claude_chat_created", 5, ""), &user).is_empty());
        // Unknown actor: no judgement.
        assert!(
            evaluate(
                &activity("org_sso_toggled", 5, ""),
                &DirectoryFacts::default()
            )
            .is_empty()
        );
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
        let hits = evaluate(&invite("eve@gmail.example"), &domains(&verified));
        assert_eq!(ids(&hits), ["invite-outside-verified-domains"]);
        assert_eq!(
            hits[0].group,
            [("invited_domain".into(), "gmail.example".into())]
        );
        assert_eq!(hits[0].evidence["invited_role"], "admin");
        for inside in ["bob@acme.example", "Bob@EU.Acme.Example", "x@acme.example."] {
            assert!(
                evaluate(&invite(inside), &domains(&verified)).is_empty(),
                "{inside}"
            );
        }
        assert!(
            !evaluate(&invite("x@notacme.example"), &domains(&verified)).is_empty(),
            "a suffix that is not a subdomain is outside"
        );
        // No verified domain known: no judgement.
        assert!(evaluate(&invite("eve@gmail.example"), &DirectoryFacts::default()).is_empty());
    }
}
