//! What the feed says about the directory.
//!
//! Before a page is journaled, its directory-change activities (the types
//! in [`DIRECTORY_CHANGE_TYPES`], taken from the catalogue's "Members,
//! invites & accounts", "Groups", "Roles (RBAC)", "SSO, directory sync &
//! SCIM" and "Domains" sections) are written as facts dated by their
//! `created_at`: a removal, a group membership, a role change, a verified
//! domain. They are written in their own transaction just before the
//! page's, so the page's records (and everything after) already see them,
//! and rows journaled earlier never do. A crash between the two is
//! harmless: the page is read again and the facts, keyed by entity and
//! dated by the activity, are the same.
//!
//! Each such activity, and an actor the directory has never listed, also
//! asks the sync to walk the lists it touched again (a targeted refresh).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::model::{Key, Kind, List, MemberAttrs, NoAttrs, attrs_text, parse_attrs};
use super::store::Writer;
use crate::model::Activity;
use crate::store::{Store, StoreError};

/// Activity types that say the directory changed, or may have.
pub const DIRECTORY_CHANGE_TYPES: &[&str] = &[
    // Members, invites & accounts
    "account_deleted",
    "claude_user_role_updated",
    "org_join_proposal_decided",
    "org_join_request_approved",
    "org_join_request_instant_approved",
    "org_user_deleted",
    "org_user_invite_accepted",
    "org_user_left",
    "primary_owner_transferred",
    // SSO, directory sync & SCIM
    "org_directory_resync_completed",
    "org_sso_group_role_mappings_updated",
    "scim_user_created",
    "scim_user_deleted",
    "scim_user_updated",
    // Groups
    "group_created",
    "group_deleted",
    "group_member_added",
    "group_member_removed",
    "group_updated",
    "group_visibility_updated",
    // Roles (RBAC)
    "rbac_role_assigned",
    "rbac_role_created",
    "rbac_role_deleted",
    "rbac_role_grant_updated",
    "rbac_role_permission_added",
    "rbac_role_permission_removed",
    "rbac_role_unassigned",
    "rbac_role_updated",
    "role_assignment_granted",
    "role_assignment_revoked",
    // Domains
    "org_domain_removed",
    "org_domain_verified",
];

pub fn is_directory_change(activity_type: &str) -> bool {
    DIRECTORY_CHANGE_TYPES.contains(&activity_type)
}

/// The few fields read from every record of a page.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    actor: Option<HeadActor<'a>>,
}

#[derive(Deserialize)]
struct HeadActor<'a> {
    #[serde(borrow, default)]
    user_id: Option<std::borrow::Cow<'a, str>>,
}

/// What a page says about the directory.
#[derive(Debug, Default)]
pub struct PageNotes {
    /// Its directory-change activities, parsed whole.
    pub changes: Vec<Activity>,
    /// The user ids of its actors.
    pub actors: BTreeSet<String>,
}

impl PageNotes {
    /// Reads a page's records: the type and actor of each (records whose
    /// head does not parse are skipped here; the journal still takes them).
    pub fn read(records: &[Box<RawValue>], now: DateTime<Utc>) -> PageNotes {
        let mut notes = PageNotes::default();
        for raw in records {
            let Ok(head) = serde_json::from_str::<Head>(raw.get()) else {
                continue;
            };
            if let Some(user) = head.actor.and_then(|a| a.user_id)
                && !user.is_empty()
                && user.len() <= 256
            {
                notes.actors.insert(user.into_owned());
            }
            if head.kind.as_deref().is_some_and(is_directory_change) {
                notes
                    .changes
                    .push(Activity::parse_journaled(raw.get(), now));
            }
        }
        notes
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.actors.is_empty()
    }
}

/// When the source last asked for a user the directory did not list: an
/// actor missing from the users list is looked for again at most once per
/// `recheck_ms`, not on every page.
#[derive(Debug, Default)]
pub struct UnknownActors {
    asked: HashMap<String, i64>,
}

impl UnknownActors {
    const CAPACITY: usize = 10_000;

    fn should_ask(&mut self, user: &str, now_ms: i64, recheck_ms: i64) -> bool {
        match self.asked.get(user) {
            Some(at) if now_ms - at < recheck_ms => false,
            _ => {
                if self.asked.len() >= Self::CAPACITY {
                    self.asked.retain(|_, at| now_ms - *at < recheck_ms);
                    if self.asked.len() >= Self::CAPACITY {
                        return false;
                    }
                }
                self.asked.insert(user.to_string(), now_ms);
                true
            }
        }
    }
}

/// What recording a page did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Facts changed.
    pub changed: bool,
    /// Refreshes asked for.
    pub refreshes: usize,
}

/// Writes what a page's activities say about the directory of `source`,
/// and asks for the refreshes they call for. `recheck_ms` bounds how often
/// an unknown actor asks for a refresh.
pub fn record(
    store: &mut Store,
    source: &str,
    notes: &PageNotes,
    unknown: &mut UnknownActors,
    recheck_ms: i64,
    now_ms: i64,
) -> Result<Recorded, StoreError> {
    let mut recorded = Recorded::default();
    if notes.is_empty() {
        return Ok(recorded);
    }
    let mut refresh: Vec<(List, String)> = Vec::new();
    let mut w = Writer::begin(store, source, now_ms)?;
    let mut known_orgs: Vec<String> = w
        .open_in_scope(Kind::Org, "")?
        .into_iter()
        .map(|f| f.key.entity)
        .collect();
    known_orgs.dedup();
    for activity in &notes.changes {
        apply(&mut w, activity, &known_orgs, &mut refresh)?;
    }
    if !known_orgs.is_empty() {
        for user in &notes.actors {
            if !w.knows_member(user)? && unknown.should_ask(user, now_ms, recheck_ms) {
                for org in &known_orgs {
                    refresh.push((List::Users(org.clone()), "unknown actor".to_string()));
                }
            }
        }
    }
    for (list, reason) in &refresh {
        w.request_refresh(list, reason)?;
    }
    recorded.refreshes = refresh.len();
    recorded.changed = w.commit()?;
    Ok(recorded)
}

fn str_field<'a>(a: &'a Activity, key: &str) -> Option<&'a str> {
    a.fields
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The ids in a field that holds one id or a list of them.
fn ids(a: &Activity, key: &str) -> Vec<String> {
    match a.fields.get(key) {
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .take(1000)
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// The organization an activity belongs to, as the directory names it
/// (the UUID the organizations list gives). The two org fields are tried
/// in turn (one sample has them swapped); else the only org claudit knows.
fn org_of(a: &Activity, known_orgs: &[String]) -> Option<String> {
    let candidates = [a.organization_uuid.as_deref(), a.organization_id.as_deref()];
    if let Some(known) = candidates
        .iter()
        .flatten()
        .find(|c| known_orgs.iter().any(|k| k.eq_ignore_ascii_case(c)))
    {
        return Some(known.to_string());
    }
    if let Some(uuid) = a
        .organization_uuid
        .as_deref()
        .filter(|u| !u.starts_with("org_"))
    {
        return Some(uuid.to_string());
    }
    match known_orgs {
        [only] => Some(only.clone()),
        _ => None,
    }
}

/// Applies one directory-change activity: facts dated by it, and the lists
/// to refresh.
fn apply(
    w: &mut Writer,
    a: &Activity,
    known_orgs: &[String],
    refresh: &mut Vec<(List, String)>,
) -> Result<(), StoreError> {
    let t = a.created_at_ms();
    let evidence = a.id.as_str();
    let kind = a.activity_type.as_str();
    let org = org_of(a, known_orgs);
    let actor_user = a.actor.as_ref().and_then(|x| x.user_id.clone());
    let mut ask = |list: List| refresh.push((list, kind.to_string()));
    let users_of_org = |org: &Option<String>| match org {
        Some(org) => vec![List::Users(org.clone())],
        None => known_orgs.iter().map(|o| List::Users(o.clone())).collect(),
    };
    let no_attrs = attrs_text(&NoAttrs {});
    match kind {
        "org_user_deleted" | "scim_user_deleted" | "org_user_left" | "account_deleted" => {
            let user = match kind {
                "org_user_deleted" => str_field(a, "deleted_user_id").map(str::to_string),
                "scim_user_deleted" => str_field(a, "user_id").map(str::to_string),
                _ => actor_user.clone(),
            };
            if let Some(user) = user {
                let email = str_field(a, "deleted_user_email").or_else(|| {
                    a.actor
                        .as_ref()
                        .filter(|_| kind != "org_user_deleted" && kind != "scim_user_deleted")
                        .and_then(|x| x.email_address.as_deref())
                });
                let fallback = attrs_text(&MemberAttrs {
                    email: email.map(str::to_string),
                    ..MemberAttrs::default()
                });
                let orgs: Vec<String> = match (&org, kind) {
                    // An account deleted leaves every organization.
                    (_, "account_deleted") | (None, _) => w
                        .open_of_entity(Kind::Member, &user)?
                        .into_iter()
                        .map(|f| f.key.scope)
                        .collect(),
                    (Some(org), _) => vec![org.clone()],
                };
                for org in &orgs {
                    w.ended_at(&Key::member(org, &user), t, &fallback, evidence)?;
                }
            }
            for list in users_of_org(&org) {
                ask(list);
            }
        }
        "claude_user_role_updated" => {
            if let (Some(org), Some(user), Some(role)) =
                (&org, str_field(a, "user_id"), str_field(a, "current_role"))
            {
                let role = role.to_string();
                w.changed_at(
                    &Key::member(org, user),
                    t,
                    |old| {
                        let mut attrs: MemberAttrs = parse_attrs(old);
                        attrs.role = Some(role);
                        attrs_text(&attrs)
                    },
                    evidence,
                )?;
            }
            for list in users_of_org(&org) {
                ask(list);
            }
        }
        "org_user_invite_accepted"
        | "org_join_proposal_decided"
        | "org_join_request_approved"
        | "org_join_request_instant_approved"
        | "primary_owner_transferred"
        | "scim_user_created"
        | "scim_user_updated" => {
            for list in users_of_org(&org) {
                ask(list);
            }
        }
        "org_directory_resync_completed" => {
            for list in users_of_org(&org) {
                ask(list);
            }
            ask(List::Groups);
        }
        "group_created"
        | "group_updated"
        | "group_visibility_updated"
        | "org_sso_group_role_mappings_updated" => ask(List::Groups),
        "group_deleted" => {
            if let Some(group) = str_field(a, "group_id") {
                w.ended_at(&Key::group(group), t, &attrs_text(&NoAttrs {}), evidence)?;
                for member in w.open_in_scope(Kind::GroupMember, group)? {
                    w.ended_at(&member.key, t, &no_attrs, evidence)?;
                }
            }
            ask(List::Groups);
        }
        "group_member_added" | "group_member_removed" => {
            if let Some(group) = str_field(a, "group_id") {
                for user in ids(a, "member_ids") {
                    let key = Key::group_member(group, &user);
                    if kind == "group_member_added" {
                        w.started_at(&key, t, &no_attrs, evidence)?;
                    } else {
                        w.ended_at(&key, t, &no_attrs, evidence)?;
                    }
                }
                ask(List::Members(group.to_string()));
            }
        }
        "rbac_role_assigned" | "rbac_role_unassigned" => {
            let principal = str_field(a, "principal_type").unwrap_or("user");
            match (&org, str_field(a, "role_id"), str_field(a, "principal_id")) {
                (Some(org), Some(role), Some(user)) if !principal.contains("group") => {
                    let key = Key::user_role(org, user, role);
                    if kind == "rbac_role_assigned" {
                        w.started_at(&key, t, &no_attrs, evidence)?;
                    } else {
                        w.ended_at(&key, t, &no_attrs, evidence)?;
                    }
                }
                _ => ask(List::Groups),
            }
        }
        "rbac_role_deleted" => {
            if let (Some(org), Some(role)) = (&org, str_field(a, "role_id")) {
                w.ended_at(&Key::role(org, role), t, &no_attrs, evidence)?;
                ask(List::Roles(org.clone()));
            }
        }
        "rbac_role_created" | "rbac_role_updated" | "rbac_role_grant_updated" => {
            if let Some(org) = &org {
                ask(List::Roles(org.clone()));
            }
        }
        "rbac_role_permission_added" | "rbac_role_permission_removed" => {
            if let (Some(org), Some(role)) = (&org, str_field(a, "role_id")) {
                ask(List::Permissions(org.clone(), role.to_string()));
            }
        }
        // Grants on a resource (a project...) are not directory facts; a
        // grant on the organization itself changes who its admins are.
        "role_assignment_granted" | "role_assignment_revoked"
            if str_field(a, "resource_type").is_some_and(|r| r.contains("organization")) =>
        {
            for list in users_of_org(&org) {
                ask(list);
            }
        }
        "org_domain_verified" | "org_domain_removed" => {
            if let Some(domain) = str_field(a, "domain") {
                let scope = org.clone().unwrap_or_default();
                let key = Key::domain(&scope, domain);
                if kind == "org_domain_verified" {
                    w.started_at(&key, t, &no_attrs, evidence)?;
                } else {
                    w.ended_at(&key, t, &no_attrs, evidence)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::store::{self, all_facts};

    fn activity(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_string()).unwrap()
    }

    fn store_with_org() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let mut w = Writer::begin(&mut store, "src", 0).unwrap();
        w.present(&Key::org("uuid-1"), "{}", Some(0), 10, "sync")
            .unwrap();
        w.present(
            &Key::member("uuid-1", "user_a"),
            "{\"role\":\"user\"}",
            Some(0),
            10,
            "sync",
        )
        .unwrap();
        w.commit().unwrap();
        (dir, store)
    }

    #[test]
    fn the_catalogue_has_every_type_listed() {
        let catalogue: Vec<String> = crate::catalogue::catalogue()
            .iter()
            .map(|t| t.name.clone())
            .collect();
        for t in DIRECTORY_CHANGE_TYPES {
            assert!(
                catalogue.iter().any(|c| c == t),
                "{t} is not in the catalogue"
            );
        }
    }

    #[test]
    fn removals_memberships_and_roles_become_facts_dated_by_the_activity() {
        let (_d, mut s) = store_with_org();
        let page = [
            activity(
                r#"{"id":"a1","type":"org_user_deleted","created_at":"2026-01-01T00:00:01Z","organization_uuid":"uuid-1","actor":{"type":"user_actor","user_id":"user_admin"},"deleted_user_id":"user_a","deleted_user_email":"a@x.example"}"#,
            ),
            activity(
                r#"{"id":"a2","type":"group_member_added","created_at":"2026-01-01T00:00:02Z","organization_uuid":"uuid-1","actor":{"type":"user_actor","user_id":"user_admin"},"group_id":"group_1","member_ids":["user_b","user_c"]}"#,
            ),
            activity(
                r#"{"id":"a3","type":"claude_chat_created","created_at":"2026-01-01T00:00:03Z","actor":{"type":"user_actor","user_id":"user_a"}}"#,
            ),
        ];
        let notes = PageNotes::read(&page, Utc::now());
        assert_eq!(notes.changes.len(), 2);
        assert_eq!(
            notes.actors.iter().collect::<Vec<_>>(),
            ["user_a", "user_admin"]
        );
        let mut unknown = UnknownActors::default();
        let r = record(&mut s, "src", &notes, &mut unknown, 60_000, 5).unwrap();
        assert!(r.changed);
        let facts = all_facts(s.conn()).unwrap();
        let end = facts
            .iter()
            .find(|f| f.key == Key::member("uuid-1", "user_a") && f.superseded_seq.is_none())
            .unwrap();
        assert_eq!(end.valid_to_ms, Some(1_767_225_601_000));
        assert_eq!(end.evidence, "a1");
        let added: Vec<_> = facts
            .iter()
            .filter(|f| f.key.kind == Kind::GroupMember)
            .map(|f| (f.key.entity.as_str(), f.valid_from_ms))
            .collect();
        assert_eq!(
            added,
            [
                ("user_b", Some(1_767_225_602_000)),
                ("user_c", Some(1_767_225_602_000))
            ]
        );
        // Refreshes: the org's users (removal), the group's members, and the
        // users again for the unknown actor user_admin (deduplicated).
        let taken = store::take_refresh_requests(&mut s, "src", 10).unwrap();
        let lists: Vec<List> = taken.into_iter().map(|(l, _)| l).collect();
        assert_eq!(
            lists,
            [
                List::Members("group_1".into()),
                List::Users("uuid-1".into())
            ]
        );
        // The unknown actor does not ask again within the recheck period.
        let notes = PageNotes::read(&page[2..], Utc::now());
        let again = PageNotes {
            actors: ["user_admin".to_string()].into(),
            ..notes
        };
        let r = record(&mut s, "src", &again, &mut unknown, 60_000, 6).unwrap();
        assert_eq!(r.refreshes, 0);
        let r = record(&mut s, "src", &again, &mut unknown, 60_000, 70_000).unwrap();
        assert_eq!(r.refreshes, 1);
    }

    #[test]
    fn a_role_change_and_a_verified_domain() {
        let (_d, mut s) = store_with_org();
        let page = [
            activity(
                r#"{"id":"a1","type":"claude_user_role_updated","created_at":"2026-01-01T00:00:01Z","organization_uuid":"uuid-1","actor":{"type":"user_actor","user_id":"user_admin"},"user_id":"user_a","previous_role":"user","current_role":"admin"}"#,
            ),
            activity(
                r#"{"id":"a2","type":"org_domain_verified","created_at":"2026-01-01T00:00:02Z","organization_uuid":"uuid-1","actor":{"type":"user_actor","user_id":"user_a"},"domain":"Stark.Example"}"#,
            ),
        ];
        let notes = PageNotes::read(&page, Utc::now());
        record(&mut s, "src", &notes, &mut UnknownActors::default(), 1, 5).unwrap();
        let facts = all_facts(s.conn()).unwrap();
        let roles: Vec<(Option<i64>, &str)> = facts
            .iter()
            .filter(|f| f.key.kind == Kind::Member && f.superseded_seq.is_none())
            .map(|f| (f.valid_from_ms, f.attrs.as_str()))
            .collect();
        assert_eq!(
            roles,
            [
                (Some(0), "{\"role\":\"user\"}"),
                (Some(1_767_225_601_000), "{\"role\":\"admin\"}")
            ]
        );
        assert!(
            facts
                .iter()
                .any(|f| f.key == Key::domain("uuid-1", "stark.example")
                    && f.valid_from_ms == Some(1_767_225_602_000))
        );
    }
}
