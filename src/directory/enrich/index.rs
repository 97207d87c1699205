//! The facts of the directory in memory, indexed for the questions
//! rendering asks: each entity's versions with their valid time and the
//! journal seq they became known at, looked up by the ids an activity
//! carries.

use std::collections::HashMap;
use std::sync::Arc;

use crate::directory::model::{
    GroupAttrs, Kind, MemberAttrs, OrgAttrs, PermissionsAttrs, RoleAttrs, parse_attrs,
};
use crate::directory::store::Fact;

/// One version of an entity, as the index keeps it.
#[derive(Debug, Clone)]
pub(super) struct Version {
    pub(super) attrs: Attrs,
    pub(super) from: Option<i64>,
    pub(super) to: Option<i64>,
    pub(super) learned_seq: i64,
    pub(super) superseded_seq: Option<i64>,
}

impl Version {
    pub(super) fn visible(&self, seq: i64, t: i64) -> bool {
        self.known_to(seq) && self.from.is_none_or(|f| f <= t) && self.to.is_none_or(|to| t < to)
    }

    pub(super) fn known_to(&self, seq: i64) -> bool {
        self.learned_seq < seq && self.superseded_seq.is_none_or(|s| seq <= s)
    }
}

#[derive(Debug, Clone)]
pub(super) enum Attrs {
    Org {
        name: Option<Arc<str>>,
    },
    Member {
        name: Option<Arc<str>>,
        email: Option<Arc<str>>,
        role: Option<Arc<str>>,
    },
    Group {
        name: Option<Arc<str>>,
        source_type: Option<Arc<str>>,
        roles: Vec<Arc<str>>,
    },
    Role {
        name: Option<Arc<str>>,
    },
    Permissions(Vec<Arc<str>>),
    None,
}

fn arc(s: Option<String>) -> Option<Arc<str>> {
    s.map(Arc::from)
}

impl Attrs {
    pub(super) fn parse(kind: Kind, text: &str) -> Attrs {
        match kind {
            Kind::Org => {
                let a: OrgAttrs = parse_attrs(text);
                Attrs::Org { name: arc(a.name) }
            }
            Kind::Member => {
                let a: MemberAttrs = parse_attrs(text);
                Attrs::Member {
                    name: arc(a.name),
                    email: arc(a.email),
                    role: arc(a.role),
                }
            }
            Kind::Group => {
                let a: GroupAttrs = parse_attrs(text);
                Attrs::Group {
                    name: arc(a.name),
                    source_type: arc(a.source_type),
                    roles: a.roles.into_iter().map(Arc::from).collect(),
                }
            }
            Kind::Role => {
                let a: RoleAttrs = parse_attrs(text);
                Attrs::Role { name: arc(a.name) }
            }
            Kind::RolePermissions => {
                let a: PermissionsAttrs = parse_attrs(text);
                Attrs::Permissions(a.permissions.into_iter().map(Arc::from).collect())
            }
            Kind::GroupMember | Kind::UserRole | Kind::Domain => Attrs::None,
        }
    }
}

/// The versions of one entity, as known to some journal rows.
pub(super) type Versions = Vec<Version>;

/// The version holding at `t`, as known to row `seq`.
pub(super) fn holding(versions: &[Version], seq: i64, t: i64) -> Option<&Version> {
    versions.iter().find(|v| v.visible(seq, t))
}

/// The entry of `key` in a short list of `(key, versions)`, added if missing.
fn entry<'v>(list: &'v mut Vec<(Arc<str>, Versions)>, key: &str) -> &'v mut Versions {
    let i = match list.iter().position(|(k, _)| &**k == key) {
        Some(i) => i,
        None => {
            list.push((key.into(), Vec::new()));
            list.len() - 1
        }
    };
    &mut list[i].1
}

/// The facts of one source, indexed for the questions rendering asks. Every
/// lookup goes by borrowed ids (no key is built per event): the maps are
/// keyed by the id a question starts from, and a user's memberships are a
/// short list beside it.
#[derive(Debug, Default)]
pub(super) struct SourceIndex {
    /// org → its versions.
    pub(super) orgs: HashMap<Arc<str>, Versions>,
    /// user → (org, their membership's versions).
    pub(super) members: HashMap<Arc<str>, Vec<(Arc<str>, Versions)>>,
    /// group → its versions.
    pub(super) groups: HashMap<Arc<str>, Versions>,
    /// user → (group, their membership's versions).
    pub(super) group_members: HashMap<Arc<str>, Vec<(Arc<str>, Versions)>>,
    /// org → role → the role's versions.
    pub(super) roles: HashMap<Arc<str>, HashMap<Arc<str>, Versions>>,
    /// org → role → the versions of its permissions.
    pub(super) permissions: HashMap<Arc<str>, HashMap<Arc<str>, Versions>>,
    /// user → ((org, role), versions) of roles assigned to them directly.
    pub(super) user_roles: HashMap<Arc<str>, Vec<(OrgRole, Versions)>>,
    /// lower-cased e-mail → users that had it.
    pub(super) by_email: HashMap<String, Vec<Arc<str>>>,
    /// org → (verified domain, versions).
    pub(super) domains: HashMap<Arc<str>, Vec<(Arc<str>, Versions)>>,
}

impl SourceIndex {
    pub(super) fn add(&mut self, fact: &Fact) {
        let key = &fact.key;
        let attrs = Attrs::parse(key.kind, &fact.attrs);
        if let (
            Kind::Member,
            Attrs::Member {
                email: Some(email), ..
            },
        ) = (key.kind, &attrs)
        {
            push_unique(
                self.by_email.entry(email.to_lowercase()).or_default(),
                key.entity.as_str().into(),
            );
        }
        let version = Version {
            attrs,
            from: fact.valid_from_ms,
            to: fact.valid_to_ms,
            learned_seq: fact.learned_seq,
            superseded_seq: fact.superseded_seq,
        };
        let (scope, entity) = (key.scope.as_str(), key.entity.as_str());
        let versions = match key.kind {
            Kind::Org => self.orgs.entry(entity.into()).or_default(),
            Kind::Member => entry(self.members.entry(entity.into()).or_default(), scope),
            Kind::Group => self.groups.entry(entity.into()).or_default(),
            Kind::GroupMember => entry(self.group_members.entry(entity.into()).or_default(), scope),
            Kind::Role => self
                .roles
                .entry(scope.into())
                .or_default()
                .entry(entity.into())
                .or_default(),
            Kind::RolePermissions => self
                .permissions
                .entry(scope.into())
                .or_default()
                .entry(entity.into())
                .or_default(),
            Kind::UserRole => {
                let list = self.user_roles.entry(entity.into()).or_default();
                let role: OrgRole = (scope.into(), key.item.as_str().into());
                let i = match list.iter().position(|(r, _)| *r == role) {
                    Some(i) => i,
                    None => {
                        list.push((role, Vec::new()));
                        list.len() - 1
                    }
                };
                &mut list[i].1
            }
            Kind::Domain => entry(self.domains.entry(scope.into()).or_default(), entity),
        };
        versions.push(version);
    }

    pub(super) fn org(&self, org: &str, seq: i64, t: i64) -> Option<&Version> {
        holding(self.orgs.get(org)?, seq, t)
    }

    pub(super) fn group(&self, group: &str, seq: i64, t: i64) -> Option<&Version> {
        holding(self.groups.get(group)?, seq, t)
    }

    pub(super) fn role(&self, org: &str, role: &str, seq: i64, t: i64) -> Option<&Version> {
        holding(self.roles.get(org)?.get(role)?, seq, t)
    }

    pub(super) fn permissions(&self, org: &str, role: &str, seq: i64, t: i64) -> Option<&Version> {
        holding(self.permissions.get(org)?.get(role)?, seq, t)
    }
}

/// The latest version that ended at or before `t`, as known to row `seq`.
pub(super) fn ended_before(versions: &[Version], seq: i64, t: i64) -> Option<&Version> {
    versions
        .iter()
        .filter(|v| v.known_to(seq) && v.to.is_some_and(|to| to <= t))
        .max_by_key(|v| v.to)
}

/// A role id within its organization.
pub(super) type OrgRole = (Arc<str>, Arc<str>);

pub(super) fn push_unique<T: PartialEq>(v: &mut Vec<T>, item: T) {
    if !v.contains(&item) {
        v.push(item);
    }
}

/// Every source's index, and for which journal rows it is complete.
#[derive(Debug, Default)]
pub(super) struct Index {
    pub(super) version: i64,
    /// Complete for journal rows up to this seq.
    pub(super) complete_through: i64,
    pub(super) sources: Arc<HashMap<String, SourceIndex>>,
}
