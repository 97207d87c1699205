//! The simulator's directory endpoints (spec/compliance-api.md §1.2, §5.2):
//! organizations, their users, roles and role permissions, groups and group
//! members, with the real semantics: `page`/`next_page` tokens (opaque,
//! bound to the last item's sort key, so a change between pages neither
//! skips nor repeats an item), `limit` (default 500, 1000 for
//! organizations; 1..=1000, else 400), 403 for Admin API keys (they read
//! the feed only), 404 for an unknown organization, group or role.
//!
//! The directory is consistent with the feed: it starts from a fixed state
//! derived from the seed (every simulated user in their organization, with
//! an organization role, a join date and a few groups) and then follows
//! every directory-change activity of the feed up to the simulator's now
//! (removals and deleted accounts, group memberships, role changes, group
//! deletions), so a removed user disappears from the users list at the time
//! the feed says, while the activities they made stay in the feed and the
//! generator keeps making new ones for them (departed users whose
//! activities remain).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use base64::Engine as _;
use chrono::SecondsFormat;
use serde_json::{Value, json};

use super::Shared;
use super::clock::to_datetime;
use super::generate::pools::World;
use super::generate::type_table;
use super::ids::activity_id;
use super::rng::{Rng, STREAM_ENTITY, hash_str, hash3};
use super::server::{Answer, error_answer};

const ORGS_PATH: &str = "/v1/compliance/organizations";
const GROUPS_PATH: &str = "/v1/compliance/groups";
/// Groups and roles: the pools the generator draws `group_id` and
/// `role_id` from, so the feed's ids are the directory's.
pub(crate) const GROUPS: u64 = 60;
pub(crate) const ROLES: u64 = 30;

const GROUP_NAMES: &[&str] = &[
    "Admins",
    "Engineering",
    "Finance",
    "Security",
    "Legal",
    "Research",
    "Sales",
    "Support",
    "Design",
    "Data",
    "Marketing",
    "People",
];
const ROLE_NAMES: &[&str] = &[
    "Auditor",
    "Project admin",
    "Billing viewer",
    "Connector manager",
    "Workspace admin",
    "Read only",
];
/// Organization roles of the simulated members, with weights.
const ORG_ROLES: &[(&str, u64)] = &[
    ("user", 80),
    ("developer", 6),
    ("claude_code_user", 4),
    ("billing", 3),
    ("admin", 4),
    ("owner", 2),
    ("membership_admin", 1),
];
/// 2025-01-01T00:00:00Z: the simulated organizations are older than any
/// backlog.
const EPOCH_MICROS: i64 = 1_735_689_600_000_000;
const DAY_MICROS: i64 = 86_400_000_000;

pub(crate) fn is_directory_path(path: &str) -> bool {
    path == ORGS_PATH
        || path == GROUPS_PATH
        || path.starts_with("/v1/compliance/organizations/")
        || path.starts_with("/v1/compliance/groups/")
}

/// A member of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMember {
    pub user_id: String,
    pub full_name: String,
    pub email: String,
    pub organization_role: String,
    pub joined_micros: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimGroup {
    pub id: String,
    pub name: String,
    pub source_type: &'static str,
    pub roles: Vec<String>,
    pub created_micros: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRole {
    pub id: String,
    pub name: String,
    pub permissions: Vec<(String, String, String)>,
    pub created_micros: i64,
}

/// The directory at one instant.
#[derive(Debug, Clone, Default)]
pub struct SimDirectory {
    /// (uuid, name, created) per organization index.
    pub orgs: Vec<(String, String, i64)>,
    /// Members per organization index, by user id.
    pub members: Vec<BTreeMap<String, SimMember>>,
    pub groups: BTreeMap<String, SimGroup>,
    /// (group, user) → when added.
    pub group_members: BTreeMap<(String, String), i64>,
    /// Roles per organization index, by role id.
    pub roles: Vec<BTreeMap<String, SimRole>>,
}

impl SimDirectory {
    /// The groups `user` is in.
    pub fn groups_of(&self, user: &str) -> Vec<&SimGroup> {
        self.group_members
            .keys()
            .filter(|(_, u)| u == user)
            .filter_map(|(g, _)| self.groups.get(g))
            .collect()
    }

    /// The organization index of a uuid (or `org_…` id).
    fn org_index(&self, world: &World, id: &str) -> Option<usize> {
        world.org_index(id).map(usize::from)
    }
}

/// The fixed starting state of a seed.
fn initial(world: &World) -> SimDirectory {
    let seed = world.seed;
    let group_id = |k: u64| world.entity_id("group_", k);
    let role_id = |k: u64| world.entity_id("role_", k);
    let mut d = SimDirectory {
        orgs: world
            .orgs
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let name = super::generate::pools::ORG_NAMES[i].to_string();
                (o.uuid.clone(), name, EPOCH_MICROS + i as i64 * DAY_MICROS)
            })
            .collect(),
        members: vec![BTreeMap::new(); world.orgs.len()],
        roles: vec![BTreeMap::new(); world.orgs.len()],
        ..SimDirectory::default()
    };
    for k in 0..ROLES {
        let org = (k % world.orgs.len() as u64) as usize;
        let mut rng = Rng::for_item(seed, STREAM_ENTITY, hash3(1, hash_str("sim-role"), k));
        let permissions = (0..1 + rng.below(3))
            .map(|_| {
                (
                    rng.pick_str(&["project", "chat", "connector", "workspace"])
                        .to_string(),
                    "*".to_string(),
                    rng.pick_str(&["read", "write", "manage"]).to_string(),
                )
            })
            .collect();
        d.roles[org].insert(
            role_id(k),
            SimRole {
                id: role_id(k),
                name: format!("{} {}", ROLE_NAMES[k as usize % ROLE_NAMES.len()], k + 1),
                permissions,
                created_micros: EPOCH_MICROS + (10 + k as i64) * DAY_MICROS,
            },
        );
    }
    for k in 0..GROUPS {
        let base = GROUP_NAMES[k as usize % GROUP_NAMES.len()];
        let name = if (k as usize) < GROUP_NAMES.len() {
            base.to_string()
        } else {
            format!("{base} {}", k as usize / GROUP_NAMES.len() + 1)
        };
        d.groups.insert(
            group_id(k),
            SimGroup {
                id: group_id(k),
                name,
                source_type: if k % 2 == 0 { "scim" } else { "direct" },
                roles: vec![role_id(k % ROLES)],
                created_micros: EPOCH_MICROS + (20 + k as i64) * DAY_MICROS,
            },
        );
    }
    for (u, user) in world.users.iter().enumerate() {
        let mut rng = Rng::for_item(
            seed,
            STREAM_ENTITY,
            hash3(2, hash_str("sim-member"), u as u64),
        );
        let total: u64 = ORG_ROLES.iter().map(|(_, w)| w).sum();
        let mut x = rng.below(total);
        let mut role = "user";
        for (r, w) in ORG_ROLES {
            if x < *w {
                role = r;
                break;
            }
            x -= w;
        }
        // The first user of each organization owns it.
        let first_of_org = world.users[..u].iter().all(|o| o.org != user.org);
        if first_of_org {
            role = "primary_owner";
        }
        let joined = EPOCH_MICROS + (60 + rng.below(300) as i64) * DAY_MICROS;
        d.members[user.org as usize].insert(
            user.id.clone(),
            SimMember {
                user_id: user.id.clone(),
                full_name: user.name.clone(),
                email: user.email.clone(),
                organization_role: role.to_string(),
                joined_micros: joined,
            },
        );
        // One to three groups; admins are in Admins.
        let mut groups = vec![rng.below(GROUPS)];
        for _ in 0..rng.below(3) {
            groups.push(rng.below(GROUPS));
        }
        if matches!(role, "admin" | "owner" | "primary_owner") {
            groups.push(0);
        } else {
            groups.retain(|g| *g != 0);
            if groups.is_empty() {
                groups.push(1 + rng.below(GROUPS - 1));
            }
        }
        for g in groups {
            d.group_members
                .insert((group_id(g), user.id.clone()), joined + DAY_MICROS);
        }
    }
    d
}

/// The directory at `now`: the starting state, then every directory-change
/// activity of the feed created up to `now`, in order.
pub(crate) fn at(shared: &Shared, now: i64) -> SimDirectory {
    let world = shared.generator.world();
    let mut d = initial(world);
    let table = type_table();
    let changes: Vec<Option<u16>> = CHANGE_TYPES.iter().map(|t| table.index_of(t)).collect();
    // Collect the records first, render them without the lock.
    let records: Vec<(super::store::Rec, Option<std::sync::Arc<str>>)> = {
        let store = shared
            .store
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        store
            .records()
            .iter()
            .filter(|r| r.created <= now && changes.contains(&Some(r.type_idx)))
            .map(|r| {
                let body = if r.stored {
                    store.stored_body(r.payload)
                } else {
                    None
                };
                (*r, body)
            })
            .collect()
    };
    for (rec, body) in records {
        let text = match body {
            Some(b) => b.to_string(),
            None => {
                let mut s = String::new();
                shared.generator.render(
                    u64::from(rec.payload),
                    &activity_id(rec.key()),
                    to_datetime(rec.created),
                    &mut s,
                );
                s
            }
        };
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            apply(&mut d, world, &v, rec.created);
        }
    }
    d
}

/// The activity types the simulated directory follows.
const CHANGE_TYPES: &[&str] = &[
    "account_deleted",
    "org_user_deleted",
    "scim_user_deleted",
    "org_user_left",
    "org_user_invite_accepted",
    "scim_user_created",
    "group_member_added",
    "group_member_removed",
    "group_deleted",
    "claude_user_role_updated",
];

fn apply(d: &mut SimDirectory, world: &World, v: &Value, created: i64) {
    let s = |k: &str| v.get(k).and_then(Value::as_str);
    let org = s("organization_uuid")
        .or(s("organization_id"))
        .and_then(|o| d.org_index(world, o));
    let actor = v
        .get("actor")
        .and_then(|a| a.get("user_id"))
        .and_then(Value::as_str);
    let user_of = |id: &str| world.user_index(id).map(|i| &world.users[i as usize]);
    match s("type").unwrap_or("") {
        // The actor deleted their account: they leave every organization.
        "account_deleted" => {
            if let Some(user) = actor {
                for members in &mut d.members {
                    members.remove(user);
                }
            }
        }
        "org_user_deleted" | "scim_user_deleted" | "org_user_left" => {
            let user = match s("type") {
                Some("org_user_deleted") => s("deleted_user_id"),
                Some("scim_user_deleted") => s("user_id"),
                _ => actor,
            };
            if let (Some(org), Some(user)) = (org, user) {
                d.members[org].remove(user);
            }
        }
        "org_user_invite_accepted" | "scim_user_created" => {
            let user = if s("type") == Some("scim_user_created") {
                s("user_id")
            } else {
                actor
            };
            if let (Some(org), Some(u)) = (org, user.and_then(user_of))
                && !d.members[org].contains_key(&u.id)
            {
                d.members[org].insert(
                    u.id.clone(),
                    SimMember {
                        user_id: u.id.clone(),
                        full_name: u.name.clone(),
                        email: u.email.clone(),
                        organization_role: "user".to_string(),
                        joined_micros: created,
                    },
                );
            }
        }
        "claude_user_role_updated" => {
            if let (Some(org), Some(user), Some(role)) = (org, s("user_id"), s("current_role"))
                && let Some(m) = d.members[org].get_mut(user)
            {
                m.organization_role = role.to_string();
            }
        }
        "group_member_added" | "group_member_removed" => {
            let Some(group) = s("group_id").filter(|g| d.groups.contains_key(*g)) else {
                return;
            };
            let members: Vec<&str> = v
                .get("member_ids")
                .and_then(Value::as_array)
                .map(|m| m.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for m in members {
                let key = (group.to_string(), m.to_string());
                if s("type") == Some("group_member_added") {
                    d.group_members.entry(key).or_insert(created);
                } else {
                    d.group_members.remove(&key);
                }
            }
        }
        "group_deleted" => {
            if let Some(group) = s("group_id") {
                d.groups.remove(group);
                d.group_members.retain(|(g, _), _| g != group);
            }
        }
        _ => {}
    }
}

/// The answer of a directory endpoint for an authenticated, rate-counted
/// request. `admin_key`: the key is an Admin API key.
pub(crate) fn answer(
    shared: &Shared,
    path: &str,
    query: &str,
    admin_key: bool,
    request_id: &str,
    now: i64,
) -> Answer {
    let needed = if path.ends_with("/users") || path.ends_with("/members") {
        "read:compliance_user_data"
    } else {
        "read:compliance_org_data"
    };
    if admin_key {
        let msg = format!(
            "Missing required scopes. Got: ['read:compliance_activities'] Needed: ['{needed}']"
        );
        return error_answer(StatusCode::FORBIDDEN, &msg, request_id);
    }
    let params = match Params::parse(query, if path == ORGS_PATH { 1000 } else { 500 }) {
        Ok(p) => p,
        Err(msg) => return error_answer(StatusCode::BAD_REQUEST, &msg, request_id),
    };
    let world = shared.generator.world();
    let d = at(shared, now);
    let segments: Vec<&str> = path
        .trim_start_matches("/v1/compliance/")
        .split('/')
        .collect();
    let not_found = |what: &str| {
        error_answer(
            StatusCode::NOT_FOUND,
            &format!("{what} not found"),
            request_id,
        )
    };
    let time = |micros: i64| to_datetime(micros).to_rfc3339_opts(SecondsFormat::Micros, true);
    // Each list: (sort key, item) in the endpoint's order.
    let items: Vec<(String, Value)> = match segments.as_slice() {
        ["organizations"] => d
            .orgs
            .iter()
            .map(|(uuid, name, created)| {
                (
                    format!("{created:020}{uuid}"),
                    json!({"uuid": uuid, "name": name, "created_at": time(*created)}),
                )
            })
            .collect(),
        ["organizations", org, rest @ ..] => {
            let Some(o) = d.orgs.iter().position(|(uuid, _, _)| uuid == org) else {
                return not_found("Organization");
            };
            match rest {
                ["users"] => d.members[o]
                    .values()
                    .map(|m| {
                        (
                            format!("{:020}{}", m.joined_micros, m.user_id),
                            json!({"id": m.user_id, "full_name": m.full_name, "email": m.email,
                                   "organization_role": m.organization_role,
                                   "created_at": time(m.joined_micros)}),
                        )
                    })
                    .collect(),
                ["roles"] => d.roles[o]
                    .values()
                    .map(|r| {
                        (
                            format!("{:020}{}", r.created_micros, r.id),
                            json!({"id": r.id, "name": r.name, "description": null,
                                   "created_at": time(r.created_micros),
                                   "updated_at": time(r.created_micros)}),
                        )
                    })
                    .collect(),
                ["roles", role, "permissions"] => {
                    let Some(r) = d.roles[o].get(*role) else {
                        return not_found("Role");
                    };
                    r.permissions
                        .iter()
                        .enumerate()
                        .map(|(i, (rt, rid, action))| {
                            (
                                format!("{i:020}"),
                                json!({"resource_type": rt, "resource_id": rid, "action": action}),
                            )
                        })
                        .collect()
                }
                _ => return not_found("Endpoint"),
            }
        }
        ["groups"] => d
            .groups
            .values()
            .map(|g| {
                (
                    format!("{:020}{}", g.created_micros, g.id),
                    json!({"id": g.id, "name": g.name, "description": null,
                           "source_type": g.source_type, "roles": g.roles,
                           "created_at": time(g.created_micros),
                           "updated_at": time(g.created_micros)}),
                )
            })
            .collect(),
        ["groups", group, "members"] => {
            if !d.groups.contains_key(*group) {
                return not_found("Group");
            }
            d.group_members
                .iter()
                .filter(|((g, _), _)| g == group)
                .map(|((_, user), added)| {
                    let email = world
                        .user_index(user)
                        .map(|i| world.users[i as usize].email.clone());
                    (
                        format!("{added:020}{user}"),
                        json!({"user_id": user, "email": email, "created_at": time(*added),
                               "updated_at": time(*added)}),
                    )
                })
                .collect()
        }
        _ => return not_found("Endpoint"),
    };
    let mut items = items;
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let start = match &params.after {
        Some(after) => items.partition_point(|(k, _)| k <= after),
        None => 0,
    };
    let page: Vec<&(String, Value)> = items[start..].iter().take(params.limit).collect();
    let has_more = start + page.len() < items.len();
    let next_page = has_more
        .then(|| page.last().map(|(k, _)| encode_token(k)))
        .flatten();
    let body = json!({
        "data": page.iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "has_more": has_more,
        "next_page": next_page,
    });
    Answer {
        status: StatusCode::OK,
        body: body.to_string(),
        retry_after: None,
        should_retry: None,
    }
}

struct Params {
    limit: usize,
    after: Option<String>,
}

impl Params {
    fn parse(query: &str, default_limit: usize) -> Result<Params, String> {
        let mut p = Params {
            limit: default_limit,
            after: None,
        };
        for (k, v) in super::query::pairs(query)? {
            match k.as_str() {
                "limit" => match v.parse::<usize>() {
                    Ok(n) if (1..=1000).contains(&n) => p.limit = n,
                    _ => {
                        return Err(format!(
                            "Invalid `limit`: '{}'. It must be an integer between 1 and 1000.",
                            v.chars().take(100).collect::<String>()
                        ));
                    }
                },
                "page" => match decode_token(&v) {
                    Some(after) => p.after = Some(after),
                    None => {
                        return Err(format!(
                            "Invalid `page` token '{}': pass `next_page` back exactly as returned.",
                            v.chars().take(100).collect::<String>()
                        ));
                    }
                },
                _ => {}
            }
        }
        Ok(p)
    }
}

fn encode_token(sort_key: &str) -> String {
    format!(
        "page_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sort_key)
    )
}

fn decode_token(token: &str) -> Option<String> {
    let b64 = token.strip_prefix("page_")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Appends the stored activity `fields` (its `type` and type-specific
/// fields, plus `actor` and the org fields) as created now; returns its id.
pub(crate) fn append(shared: &Shared, now: i64, fields: Value) -> String {
    append_at(shared, now, now, fields)
}

/// [`append`] of an activity created at `created` that becomes visible at
/// `visible` (a late arrival when `visible` is later).
pub(crate) fn append_at(shared: &Shared, created: i64, visible: i64, fields: Value) -> String {
    let now = created;
    let world = shared.generator.world();
    let type_name = fields
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string();
    let org = fields
        .get("organization_uuid")
        .and_then(Value::as_str)
        .and_then(|o| world.org_index(o))
        .unwrap_or(super::store::NO_ORG);
    let user = fields
        .get("actor")
        .and_then(|a| a.get("user_id"))
        .and_then(Value::as_str)
        .and_then(|u| world.user_index(u))
        .unwrap_or(super::store::NO_USER);
    let counter = shared
        .request_counter
        .load(std::sync::atomic::Ordering::SeqCst);
    let mut rng = Rng::for_item(
        shared.config.seed,
        super::rng::STREAM_SELF,
        hash3(now as u64, hash_str(&type_name), counter),
    );
    let rec = super::store::Rec {
        created: now,
        suffix: rng.next_u64(),
        // Visible when the caller says: at once, unless a test makes a
        // late arrival.
        visible,
        payload: 0,
        stored: true,
        type_idx: type_table().index_of(&type_name).unwrap_or(0),
        org,
        user,
    };
    let mut id = String::new();
    let mut store = shared
        .store
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    store.insert_stored(rec, |key| {
        id = activity_id(key);
        let mut v = fields.clone();
        if let Value::Object(m) = &mut v {
            m.insert("id".into(), json!(id));
            m.insert(
                "created_at".into(),
                json!(to_datetime(key.created).to_rfc3339_opts(SecondsFormat::Micros, true)),
            );
        }
        v.to_string()
    });
    drop(store);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starting_directory_is_consistent() {
        let world = World::new(1);
        let d = initial(&world);
        let members: usize = d.members.iter().map(BTreeMap::len).sum();
        assert_eq!(members, world.users.len());
        assert_eq!(d.groups.len() as u64, GROUPS);
        for (o, m) in d.members.iter().enumerate() {
            assert_eq!(
                m.values()
                    .filter(|m| m.organization_role == "primary_owner")
                    .count(),
                1,
                "org {o} has one primary owner"
            );
        }
        for user in &world.users {
            let groups = d.groups_of(&user.id);
            assert!(!groups.is_empty());
            let role = &d.members[user.org as usize][&user.id].organization_role;
            let in_admins = groups.iter().any(|g| g.name == "Admins");
            assert_eq!(
                in_admins,
                matches!(role.as_str(), "admin" | "owner" | "primary_owner"),
                "{role}"
            );
        }
        assert!(
            world.users.iter().any(|u| d.groups_of(&u.id).len() >= 2),
            "some users are in two groups"
        );
    }

    #[test]
    fn a_deleted_account_leaves_every_organization() {
        let world = World::new(1);
        let mut d = initial(&world);
        let (gone, stays) = (&world.users[0], &world.users[1]);
        let deleted = json!({
            "type": "account_deleted",
            "actor": {"type": "user_actor", "user_id": gone.id},
        });
        apply(&mut d, &world, &deleted, 1);
        assert!(d.members.iter().all(|m| !m.contains_key(&gone.id)));
        assert!(d.members[stays.org as usize].contains_key(&stays.id));
    }

    #[test]
    fn page_tokens_round_trip_and_bad_ones_are_refused() {
        let t = encode_token("0000123user_1");
        assert_eq!(decode_token(&t).as_deref(), Some("0000123user_1"));
        assert!(Params::parse("page=nonsense", 500).is_err());
        assert!(Params::parse("limit=0", 500).is_err());
        assert!(Params::parse("limit=1001", 500).is_err());
        let p = Params::parse(&format!("limit=2&page={t}"), 500).unwrap();
        assert_eq!((p.limit, p.after.as_deref()), (2, Some("0000123user_1")));
        assert_eq!(Params::parse("", 1000).unwrap().limit, 1000);
    }
}
