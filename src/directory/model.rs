//! What the directory holds: the kinds of entity, their attributes as
//! stored (canonical JSON, so two observations compare as text), and the
//! lists the sync walks.

use serde::{Deserialize, Serialize};

/// A kind of directory entity. Each is identified by `(scope, entity,
/// item)`, whose meaning depends on the kind (see [`Key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A linked organization: `("", org_uuid, "")`.
    Org,
    /// A user's membership of an organization, with their name, e-mail and
    /// organization role: `(org_uuid, user_id, "")`.
    Member,
    /// A group (RBAC or SCIM; parent-level): `("", group_id, "")`.
    Group,
    /// A user's membership of a group: `(group_id, user_id, "")`.
    GroupMember,
    /// A custom RBAC role of an organization: `(org_uuid, role_id, "")`.
    Role,
    /// The permissions of a role: `(org_uuid, role_id, "")`.
    RolePermissions,
    /// A role assigned to a user directly (only the feed says so:
    /// `rbac_role_assigned` to a user): `(org_uuid, user_id, role_id)`.
    UserRole,
    /// A verified e-mail domain of an organization (from the feed's
    /// `org_domain_verified`): `(org_uuid, domain, "")`.
    Domain,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Org,
        Kind::Member,
        Kind::Group,
        Kind::GroupMember,
        Kind::Role,
        Kind::RolePermissions,
        Kind::UserRole,
        Kind::Domain,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Org => "org",
            Kind::Member => "member",
            Kind::Group => "group",
            Kind::GroupMember => "group_member",
            Kind::Role => "role",
            Kind::RolePermissions => "role_permissions",
            Kind::UserRole => "user_role",
            Kind::Domain => "domain",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// Which entity a fact is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub kind: Kind,
    pub scope: String,
    pub entity: String,
    pub item: String,
}

impl Key {
    pub fn org(org_uuid: &str) -> Key {
        Key::new(Kind::Org, "", org_uuid, "")
    }
    pub fn member(org_uuid: &str, user_id: &str) -> Key {
        Key::new(Kind::Member, org_uuid, user_id, "")
    }
    pub fn group(group_id: &str) -> Key {
        Key::new(Kind::Group, "", group_id, "")
    }
    pub fn group_member(group_id: &str, user_id: &str) -> Key {
        Key::new(Kind::GroupMember, group_id, user_id, "")
    }
    pub fn role(org_uuid: &str, role_id: &str) -> Key {
        Key::new(Kind::Role, org_uuid, role_id, "")
    }
    pub fn role_permissions(org_uuid: &str, role_id: &str) -> Key {
        Key::new(Kind::RolePermissions, org_uuid, role_id, "")
    }
    pub fn user_role(org_uuid: &str, user_id: &str, role_id: &str) -> Key {
        Key::new(Kind::UserRole, org_uuid, user_id, role_id)
    }
    pub fn domain(org_uuid: &str, domain: &str) -> Key {
        Key::new(Kind::Domain, org_uuid, &domain.to_ascii_lowercase(), "")
    }

    pub fn new(kind: Kind, scope: &str, entity: &str, item: &str) -> Key {
        Key {
            kind,
            scope: scope.to_string(),
            entity: entity.to_string(),
            item: item.to_string(),
        }
    }
}

/// An organization as `/v1/compliance/organizations` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgAttrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A member as `/organizations/{uuid}/users` lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAttrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `organization_role` (`user`, `admin`, `owner`, ...; an open set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// A group as `/v1/compliance/groups` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupAttrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `direct` (created in Claude) or `scim` (pushed by the identity provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    /// The group's roles: role ids, or role names where the API gives no id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// A custom RBAC role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAttrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One permission of a role, as `action resource_type:resource_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionsAttrs {
    /// Sorted, so the same set always compares equal.
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// Attributes of kinds that have none (group members, user roles, domains).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoAttrs {}

/// Serializes attributes to the canonical text stored and compared.
pub fn attrs_text<T: Serialize>(attrs: &T) -> String {
    // Structs of strings and lists: serializing cannot fail.
    serde_json::to_string(attrs).unwrap_or_else(|_| "{}".to_string())
}

/// Reads stored attributes; anything unreadable reads as the default (the
/// fact still says the entity existed).
pub fn parse_attrs<T: for<'de> Deserialize<'de> + Default>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_default()
}

/// One list the sync walks page by page, named as stored in
/// `directory_sync_lists.list`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum List {
    /// `GET /v1/compliance/organizations`
    Orgs,
    /// `GET /v1/compliance/organizations/{org}/users`
    Users(String),
    /// `GET /v1/compliance/organizations/{org}/roles`
    Roles(String),
    /// `GET /v1/compliance/organizations/{org}/roles/{role}/permissions`
    Permissions(String, String),
    /// `GET /v1/compliance/groups`
    Groups,
    /// `GET /v1/compliance/groups/{group}/members`
    Members(String),
}

/// Separates the parts of a stored list name (ids never contain it).
const SEP: char = '\u{1f}';

impl List {
    pub fn to_text(&self) -> String {
        match self {
            List::Orgs => "orgs".to_string(),
            List::Users(org) => format!("users{SEP}{org}"),
            List::Roles(org) => format!("roles{SEP}{org}"),
            List::Permissions(org, role) => format!("permissions{SEP}{org}{SEP}{role}"),
            List::Groups => "groups".to_string(),
            List::Members(group) => format!("members{SEP}{group}"),
        }
    }

    pub fn parse(text: &str) -> Option<List> {
        let mut parts = text.split(SEP);
        let kind = parts.next()?;
        let a = parts.next().map(str::to_string);
        let b = parts.next().map(str::to_string);
        Some(match (kind, a, b) {
            ("orgs", None, None) => List::Orgs,
            ("groups", None, None) => List::Groups,
            ("users", Some(org), None) => List::Users(org),
            ("roles", Some(org), None) => List::Roles(org),
            ("members", Some(group), None) => List::Members(group),
            ("permissions", Some(org), Some(role)) => List::Permissions(org, role),
            _ => return None,
        })
    }

    /// The endpoint, for logs and errors.
    pub fn describe(&self) -> String {
        match self {
            List::Orgs => "GET /v1/compliance/organizations".to_string(),
            List::Users(org) => format!("GET /v1/compliance/organizations/{org}/users"),
            List::Roles(org) => format!("GET /v1/compliance/organizations/{org}/roles"),
            List::Permissions(org, role) => {
                format!("GET /v1/compliance/organizations/{org}/roles/{role}/permissions")
            }
            List::Groups => "GET /v1/compliance/groups".to_string(),
            List::Members(group) => format!("GET /v1/compliance/groups/{group}/members"),
        }
    }

    /// The path segments below `base_url`.
    pub fn path_segments(&self) -> Vec<&str> {
        let mut s = vec!["v1", "compliance"];
        match self {
            List::Orgs => s.push("organizations"),
            List::Users(org) => s.extend(["organizations", org, "users"]),
            List::Roles(org) => s.extend(["organizations", org, "roles"]),
            List::Permissions(org, role) => {
                s.extend(["organizations", org, "roles", role, "permissions"])
            }
            List::Groups => s.push("groups"),
            List::Members(group) => s.extend(["groups", group, "members"]),
        }
        s
    }

    /// Which scope the API needs for this list.
    pub fn scope_needed(&self) -> &'static str {
        match self {
            List::Users(_) | List::Members(_) => "read:compliance_user_data",
            _ => "read:compliance_org_data",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_names_round_trip() {
        for list in [
            List::Orgs,
            List::Groups,
            List::Users("3f2a".into()),
            List::Roles("3f2a".into()),
            List::Permissions("3f2a".into(), "role_1".into()),
            List::Members("group_1".into()),
        ] {
            assert_eq!(List::parse(&list.to_text()), Some(list.clone()));
        }
        assert_eq!(List::parse("users"), None);
        assert_eq!(List::parse("nonsense\u{1f}x"), None);
    }

    #[test]
    fn kinds_round_trip_and_attrs_are_canonical() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        let a = MemberAttrs {
            name: Some("Ada".into()),
            email: None,
            role: Some("admin".into()),
        };
        assert_eq!(attrs_text(&a), r#"{"name":"Ada","role":"admin"}"#);
        assert_eq!(parse_attrs::<MemberAttrs>(&attrs_text(&a)), a);
        assert_eq!(
            parse_attrs::<MemberAttrs>("not json"),
            MemberAttrs::default()
        );
    }
}
