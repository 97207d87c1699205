//! The directory context of one journal row: who its actor (and the user
//! it acted on) was at the activity's `created_at`, as known when the row
//! was journaled (`directory/mod.rs`).
//!
//! Rendering asks for it per event, so it is answered from memory: an index
//! of every fact, shared by the sinks of a process, loaded from the state
//! database in one read transaction together with the directory's change
//! counter and the journal's sequence `H`. A row with seq `s <= H` needs
//! only facts written before `H` was assigned, which that read saw; for a
//! row past `H` the counter is read again (one small query) and the index
//! reloaded only if a fact changed. Facts written after a row was journaled
//! are invisible to it anyway, so an index newer than a row is harmless.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod index;

use super::detect::DirectoryFacts;
use super::settings::DirectoryConfig;
use super::store::{all_facts, version_and_sequence};
use crate::model::Activity;
use crate::store::{InDatabase, StoreError};
use index::{Attrs, Index, OrgRole, SourceIndex, ended_before, holding, push_unique};

/// Who someone was at the time of an activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub user_id: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<OrgRef>,
    /// The organization role (`user`, `admin`, `owner`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_role: Option<Arc<str>>,
    /// Holds an admin-class role, or is in an admin group.
    #[serde(default)]
    pub admin: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupRef>,
    /// Custom roles, assigned directly or through a group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleRef>,
    /// When the membership holding at the time began (epoch ms), if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_since: Option<i64>,
    /// The user had left the organization before the activity.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub departed: bool,
    /// When they left (epoch ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub departed_time: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgRef {
    pub uid: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Arc<str>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRef {
    pub uid: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Arc<str>>,
    /// `direct` or `scim`.
    #[serde(skip_serializing_if = "Option::is_none", rename = "type")]
    pub source_type: Option<Arc<str>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRef {
    pub uid: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<Arc<str>>,
}

/// The directory context of one activity.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DirectoryContext {
    /// The actor, when it is a user the directory knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<Identity>,
    /// The user the activity is about (removed, invited, granted a role,
    /// added to a group), when the directory knows them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Identity>,
}

impl DirectoryContext {
    pub fn is_empty(&self) -> bool {
        self.actor.is_none() && self.user.is_none()
    }
}

/// What makes a user admin-class, per source: names compared without
/// case (the sets hold them lower-cased).
#[derive(Debug, Clone, Default)]
struct Policy {
    admin_roles: HashSet<String>,
    admin_groups: HashSet<String>,
    /// `verified_domains` of the configuration (lower case).
    verified_domains: Vec<String>,
}

impl Policy {
    fn is_admin_role(&self, name: &str) -> bool {
        contains_caseless(&self.admin_roles, name)
    }

    fn is_admin_group(&self, name: &str) -> bool {
        contains_caseless(&self.admin_groups, name)
    }
}

/// Whether the lower-cased `set` holds `name` in any case; without
/// allocating for the ASCII names roles and groups mostly have.
fn contains_caseless(set: &HashSet<String>, name: &str) -> bool {
    if name.is_ascii() {
        set.iter().any(|n| n.eq_ignore_ascii_case(name))
    } else {
        set.contains(&name.to_lowercase())
    }
}

/// The directory as rendering reads it: one per process, shared by every
/// sink (through the OCSF mapper).
pub struct Directory {
    policies: HashMap<String, Policy>,
    /// The state database, for errors.
    path: PathBuf,
    conn: Mutex<Connection>,
    index: ArcSwap<Index>,
    /// A failed read was logged (once per process).
    warned: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("sources", &self.policies.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// The directory of the sources (name, `[sources.directory]`; see
    /// `Config::directories`) that have it enabled, read from the state
    /// database at `path`; `None` when none has.
    pub fn open<'a>(
        path: &Path,
        sources: impl IntoIterator<Item = (&'a str, &'a DirectoryConfig)>,
    ) -> Result<Option<Arc<Directory>>, StoreError> {
        let policies: HashMap<String, Policy> = sources
            .into_iter()
            .filter(|(_, d)| d.enabled)
            .map(|(name, d)| {
                let lower = |v: &[String]| v.iter().map(|x| x.trim().to_lowercase()).collect();
                (
                    name.to_string(),
                    Policy {
                        admin_roles: lower(&d.admin_roles),
                        admin_groups: lower(&d.admin_groups),
                        verified_domains: lower(&d.verified_domains).into_iter().collect(),
                    },
                )
            })
            .collect();
        if policies.is_empty() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .in_db(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .in_db(path)?;
        let directory = Directory {
            policies,
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            index: ArcSwap::from_pointee(Index {
                version: -1,
                complete_through: -1,
                sources: Arc::default(),
            }),
            warned: Default::default(),
        };
        Ok(Some(Arc::new(directory)))
    }

    /// Whether `source` has directory context.
    pub fn covers(&self, source: &str) -> bool {
        self.policies.contains_key(source)
    }

    /// The index, complete for journal row `seq`.
    fn index_for(&self, seq: i64) -> Arc<Index> {
        let index = self.index.load_full();
        if seq <= index.complete_through {
            return index;
        }
        if let Err(e) = self.refresh(seq).in_db(&self.path)
            && !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            // Only a damaged database, or one the daemon has not migrated
            // yet, gets here; events are delivered with the directory as
            // last read.
            tracing::warn!(error = %e, "cannot read the directory from the state database; events keep the directory as last read (start the daemon once to migrate the database)");
        }
        self.index.load_full()
    }

    /// Reloads the index if the directory changed since it was read, and
    /// extends the rows it is complete for either way.
    fn refresh(&self, seq: i64) -> rusqlite::Result<()> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.index.load_full();
        if seq <= current.complete_through {
            return Ok(()); // another thread did it
        }
        // One read transaction: the counter, the sequence and the facts
        // describe the same moment.
        let tx = conn.transaction()?;
        let (version, sequence) = version_and_sequence(&tx)?;
        let sources = if version == current.version {
            current.sources.clone()
        } else {
            let mut sources: HashMap<String, SourceIndex> = HashMap::new();
            for fact in all_facts(&tx)? {
                if self.policies.contains_key(&fact.source) {
                    sources.entry(fact.source.clone()).or_default().add(&fact);
                }
            }
            Arc::new(sources)
        };
        tx.finish()?;
        self.index.store(Arc::new(Index {
            version,
            complete_through: sequence,
            sources,
        }));
        Ok(())
    }

    /// The context of the journal row `seq` of `source`, holding `activity`.
    /// `None` when the source has no directory or nobody in the activity is
    /// known.
    pub fn context(&self, source: &str, seq: i64, activity: &Activity) -> Option<DirectoryContext> {
        let policy = self.policies.get(source)?;
        let index = self.index_for(seq);
        let source_index = index.sources.get(source)?;
        let lookup = Lookup {
            index: source_index,
            policy,
            seq,
            t: activity.created_at_ms(),
            org_hints: [
                activity.organization_uuid.as_deref(),
                activity.organization_id.as_deref(),
            ],
        };
        let actor = activity
            .actor
            .as_ref()
            .and_then(|a| a.user_id.as_deref())
            .and_then(|u| lookup.identity(u));
        let user = subject(activity).and_then(|s| match s {
            Subject::Id(id) => lookup.identity(id),
            Subject::Email(email) => lookup.by_email(email),
        });
        let context = DirectoryContext { actor, user };
        (!context.is_empty()).then_some(context)
    }

    /// What the directory says of journal row `seq` of `source` for the
    /// directory detections: its context and the verified domains; `None`
    /// when the source has no directory (its rows are not judged).
    pub fn facts(&self, source: &str, seq: i64, activity: &Activity) -> Option<DirectoryFacts> {
        self.policies.get(source)?;
        Some(DirectoryFacts::new(
            self.context(source, seq, activity),
            self.verified_domains(source, seq, activity.created_at_ms()),
        ))
    }

    /// The verified domains of `source` known to row `seq` at `t` (those
    /// the feed reported verified, and the configured ones), for the
    /// invite detection.
    pub fn verified_domains(&self, source: &str, seq: i64, t: i64) -> Vec<String> {
        let mut out: Vec<String> = self
            .policies
            .get(source)
            .map(|p| p.verified_domains.clone())
            .unwrap_or_default();
        let index = self.index_for(seq);
        let Some(s) = index.sources.get(source) else {
            out.sort();
            out.dedup();
            return out;
        };
        for domains in s.domains.values() {
            for (domain, versions) in domains {
                if holding(versions, seq, t).is_some() {
                    out.push(domain.to_string());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// A raw activity with its directory context added as a top-level
/// `claudit` object (`{"directory": {"actor": ..., "user": ...}}`) after
/// its own fields, for `raw+claudit` sinks; the activity's bytes are kept
/// as they are, and an activity without context (or that is not a JSON
/// object, or already has a `claudit` field) is returned unchanged. A pure
/// function of the row, like the OCSF rendering.
pub fn raw_with_context(
    directory: Option<&Directory>,
    raw: &str,
    created_at_ms: i64,
    (source, seq): (&str, i64),
) -> String {
    let Some(directory) = directory.filter(|d| d.covers(source)) else {
        return raw.to_string();
    };
    let now = chrono::DateTime::from_timestamp_millis(created_at_ms).unwrap_or_default();
    let activity = Activity::parse_journaled(raw, now);
    let context = match directory.context(source, seq, &activity) {
        Some(c) if !activity.fields.contains_key("claudit") => c,
        _ => return raw.to_string(),
    };
    let body = raw.trim_end();
    let Some(open) = body.strip_suffix('}') else {
        return raw.to_string();
    };
    let open = open.trim_end();
    let separator = if open.ends_with('{') { "" } else { "," };
    // Strings, booleans and numbers: serializing cannot fail.
    let context = serde_json::to_string(&context).unwrap_or_else(|_| "{}".to_string());
    format!("{open}{separator}\"claudit\":{{\"directory\":{context}}}}}")
}

/// How a user's entry changed between two times (the inventory stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Joined,
    Left,
    /// Name, e-mail, roles, groups or admin-class changed.
    Changed,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Joined => "joined",
            Change::Left => "left",
            Change::Changed => "changed",
        }
    }
}

impl Directory {
    /// Every user who was a member in `source` at `t`, as known now,
    /// ordered by user id (the inventory snapshot).
    pub fn members_at(&self, source: &str, t: i64) -> Vec<Identity> {
        self.now(source, |users, at| {
            users
                .iter()
                .filter_map(|u| at(u, t))
                .filter(|id| !id.departed)
                .collect()
        })
    }

    /// The users whose entry changed after `from` up to `to`, as known now,
    /// with their entry at `to` (a departed one for those who left).
    pub fn changes_between(&self, source: &str, from: i64, to: i64) -> Vec<(Change, Identity)> {
        self.now(source, |users, at| {
            let mut out = Vec::new();
            for user in users {
                let before = at(user, from).filter(|id| !id.departed);
                let after = at(user, to);
                let change = match (&before, &after) {
                    (None, Some(a)) if !a.departed => Change::Joined,
                    (Some(_), Some(a)) if a.departed => Change::Left,
                    (Some(b), Some(a)) if !same_entry(b, a) => Change::Changed,
                    _ => continue,
                };
                if let Some(a) = after {
                    out.push((change, a));
                }
            }
            out
        })
    }

    /// Runs `f` over the users of `source` (sorted) and a function giving a
    /// user's entry at a time, with everything known now.
    fn now<R: Default>(
        &self,
        source: &str,
        f: impl FnOnce(&[Arc<str>], &dyn Fn(&str, i64) -> Option<Identity>) -> R,
    ) -> R {
        let index = self.index_for(i64::MAX);
        let (Some(policy), Some(source_index)) =
            (self.policies.get(source), index.sources.get(source))
        else {
            return R::default();
        };
        let mut users: Vec<Arc<str>> = source_index.members.keys().cloned().collect();
        users.sort();
        let at = |user: &str, t: i64| {
            Lookup {
                index: source_index,
                policy,
                seq: i64::MAX,
                t,
                org_hints: [None, None],
            }
            .identity(user)
        };
        f(&users, &at)
    }
}

/// Two entries of the same user say the same (ignoring `member_since`).
fn same_entry(a: &Identity, b: &Identity) -> bool {
    a.name == b.name
        && a.email == b.email
        && a.org == b.org
        && a.organization_role == b.organization_role
        && a.admin == b.admin
        && a.groups == b.groups
        && a.roles == b.roles
}

/// The user an activity is about, besides its actor.
enum Subject<'a> {
    Id(&'a str),
    Email(&'a str),
}

/// Fields naming the user an activity acts on, in the order they are
/// tried; a `*_type` field beside them must say it is a user.
const SUBJECT_ID_FIELDS: &[(&str, Option<&str>)] = &[
    ("deleted_user_id", None),
    ("user_id", None),
    ("target_id", Some("target_type")),
    ("principal_id", Some("principal_type")),
    ("new_owner_id", None),
    ("invitee_user_id", None),
];
const SUBJECT_EMAIL_FIELDS: &[&str] = &[
    "deleted_user_email",
    "user_email",
    "invited_email",
    "invitee_email",
];

fn subject(a: &Activity) -> Option<Subject<'_>> {
    let str_field = |k: &str| {
        a.fields
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    for (field, kind_field) in SUBJECT_ID_FIELDS {
        if let Some(id) = str_field(field) {
            let is_user = kind_field
                .and_then(str_field)
                .is_none_or(|k| k.contains("user"));
            if is_user {
                return Some(Subject::Id(id));
            }
        }
    }
    if let Some(Value::Array(members)) = a.fields.get("member_ids")
        && let [Value::String(one)] = members.as_slice()
    {
        return Some(Subject::Id(one));
    }
    SUBJECT_EMAIL_FIELDS
        .iter()
        .find_map(|f| str_field(f))
        .map(Subject::Email)
}

/// One row's questions to one source's index.
struct Lookup<'a> {
    index: &'a SourceIndex,
    policy: &'a Policy,
    seq: i64,
    t: i64,
    org_hints: [Option<&'a str>; 2],
}

impl Lookup<'_> {
    fn by_email(&self, email: &str) -> Option<Identity> {
        let users = self.index.by_email.get(&email.to_lowercase())?;
        users.iter().find_map(|u| self.identity(u))
    }

    /// Who `user` was at `t`: their membership holding then, or the last
    /// one that ended before (departed).
    fn identity(&self, user: &str) -> Option<Identity> {
        let ix = self.index;
        let (seq, t) = (self.seq, self.t);
        let memberships = ix.members.get(user)?;
        // The activity's own organization first, then any other.
        let hinted = |o: &str| {
            self.org_hints
                .iter()
                .flatten()
                .any(|h| h.eq_ignore_ascii_case(o))
        };
        let ordered = || {
            let first = memberships.iter().filter(|(o, _)| hinted(o));
            first.chain(memberships.iter().filter(|(o, _)| !hinted(o)))
        };
        let present = ordered().find_map(|(org, vs)| Some((org, holding(vs, seq, t)?)));
        let (org, version, departed_time) = match present {
            Some((org, v)) => (org, v, None),
            None => {
                let (org, v) = ordered()
                    .filter_map(|(org, vs)| Some((org, ended_before(vs, seq, t)?)))
                    .max_by_key(|(_, v)| v.to)?;
                (org, v, v.to)
            }
        };
        let Attrs::Member { name, email, role } = &version.attrs else {
            return None;
        };
        let org_name = match ix.org(org, seq, t).map(|v| &v.attrs) {
            Some(Attrs::Org { name }) => name.clone(),
            _ => None,
        };
        let mut groups = Vec::new();
        let mut role_ids: Vec<OrgRole> = Vec::new();
        for (group, vs) in ix.group_members.get(user).into_iter().flatten() {
            if holding(vs, seq, t).is_none() {
                continue;
            }
            let (name, source_type, roles) = match ix.group(group, seq, t).map(|v| &v.attrs) {
                Some(Attrs::Group {
                    name,
                    source_type,
                    roles,
                }) => (name.clone(), source_type.clone(), roles.as_slice()),
                _ => (None, None, &[][..]),
            };
            for r in roles {
                push_unique(&mut role_ids, (org.clone(), r.clone()));
            }
            groups.push(GroupRef {
                uid: group.clone(),
                name,
                source_type,
            });
        }
        groups.sort_by(|a, b| a.uid.cmp(&b.uid));
        for (role, vs) in ix.user_roles.get(user).into_iter().flatten() {
            if holding(vs, seq, t).is_some() {
                push_unique(&mut role_ids, role.clone());
            }
        }
        let mut roles: Vec<RoleRef> = role_ids
            .into_iter()
            .map(|(role_org, r)| {
                let name = match ix.role(&role_org, &r, seq, t).map(|v| &v.attrs) {
                    Some(Attrs::Role { name }) => name.clone(),
                    _ => None,
                };
                let permissions = match ix.permissions(&role_org, &r, seq, t).map(|v| &v.attrs) {
                    Some(Attrs::Permissions(p)) => p.clone(),
                    _ => Vec::new(),
                };
                RoleRef {
                    uid: r,
                    name,
                    permissions,
                }
            })
            .collect();
        roles.sort_by(|a, b| a.uid.cmp(&b.uid));
        let admin = role
            .as_deref()
            .is_some_and(|r| self.policy.is_admin_role(r))
            || roles.iter().any(|r| {
                self.policy.is_admin_role(&r.uid)
                    || r.name
                        .as_deref()
                        .is_some_and(|n| self.policy.is_admin_role(n))
            })
            || groups.iter().any(|g| {
                g.name
                    .as_deref()
                    .is_some_and(|n| self.policy.is_admin_group(n))
            });
        Some(Identity {
            user_id: user.into(),
            name: name.clone(),
            email: email.clone(),
            org: Some(OrgRef {
                uid: org.clone(),
                name: org_name,
            }),
            organization_role: role.clone(),
            admin,
            groups,
            roles,
            member_since: version.from,
            departed: departed_time.is_some(),
            departed_time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::directory::model::{GroupAttrs, Key, MemberAttrs, attrs_text};
    use crate::directory::store::Writer;
    use crate::store::Store;

    fn config(dir: &Path) -> Config {
        let text = format!(
            r#"
[state]
path = "{}/s.db"
[[sources]]
name = "src"
api_key = "sk-ant-api01-x"
[sources.directory]
admin_groups = ["Admins"]
[[sinks]]
name = "f"
type = "file"
path = "{}/out.ndjson"
"#,
            dir.display(),
            dir.display()
        );
        crate::config::load_str(&text, &dir.join("c.toml"), &|_| None).unwrap()
    }

    fn journal(store: &mut Store, id: &str) -> i64 {
        store
            .conn_mut()
            .execute(
                "INSERT INTO journal (activity_id, source, created_at_ms, activity_type, raw, ocsf, journaled_at_ms)
                 VALUES (?1, 'src', 0, 't', '{}', '', 0)",
                [id],
            )
            .unwrap();
        store.conn().last_insert_rowid()
    }

    fn activity(t_ms: i64, actor: &str, extra: &str) -> Activity {
        let created = chrono::DateTime::from_timestamp_millis(t_ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        Activity::from_json(&format!(
            r#"{{"id":"a","type":"claude_chat_created","created_at":"{created}","organization_uuid":"org-1","actor":{{"type":"user_actor","user_id":"{actor}"}}{extra}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn context_is_the_directory_at_the_activity_as_known_when_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let mut store = Store::open(&cfg.state.path).unwrap();
        let before = journal(&mut store, "before");
        let mut w = Writer::begin(&mut store, "src", 0).unwrap();
        w.present(
            &Key::org("org-1"),
            r#"{"name":"House Stark"}"#,
            Some(0),
            1000,
            "sync",
        )
        .unwrap();
        let jon = attrs_text(&MemberAttrs {
            name: Some("Jon Snow".into()),
            email: Some("jon@stark.example".into()),
            role: Some("user".into()),
        });
        w.present(
            &Key::member("org-1", "user_jon"),
            &jon,
            Some(100),
            1000,
            "sync",
        )
        .unwrap();
        for (g, name) in [("group_a", "Admins"), ("group_f", "Finance")] {
            let attrs = attrs_text(&GroupAttrs {
                name: Some(name.into()),
                source_type: Some("scim".into()),
                roles: vec!["role_1".into()],
                ..GroupAttrs::default()
            });
            w.present(&Key::group(g), &attrs, Some(0), 1000, "sync")
                .unwrap();
            w.present(
                &Key::group_member(g, "user_jon"),
                "{}",
                Some(200),
                1000,
                "sync",
            )
            .unwrap();
        }
        w.present(
            &Key::role("org-1", "role_1"),
            r#"{"name":"Auditor"}"#,
            Some(0),
            1000,
            "sync",
        )
        .unwrap();
        w.present(
            &Key::role_permissions("org-1", "role_1"),
            r#"{"permissions":["read audit:*"]}"#,
            Some(0),
            1000,
            "sync",
        )
        .unwrap();
        w.commit().unwrap();
        let after = journal(&mut store, "after");
        let d = Directory::open(&cfg.state.path, cfg.directories())
            .unwrap()
            .unwrap();

        // A row journaled before the facts were written has no context.
        assert_eq!(
            d.context("src", before, &activity(500, "user_jon", "")),
            None
        );
        let c = d
            .context("src", after, &activity(500, "user_jon", ""))
            .unwrap();
        let jon = c.actor.unwrap();
        assert_eq!(jon.name.as_deref(), Some("Jon Snow"));
        assert_eq!(
            jon.org.as_ref().unwrap().name.as_deref(),
            Some("House Stark")
        );
        let names: Vec<_> = jon
            .groups
            .iter()
            .map(|g| g.name.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["Admins", "Finance"]);
        assert!(jon.admin, "member of an admin group");
        assert_eq!(jon.roles.len(), 1);
        assert_eq!(jon.roles[0].permissions[0].as_ref(), "read audit:*");
        assert!(!jon.departed);
        // Before joining the groups: a member without groups, not an admin.
        let c = d
            .context("src", after, &activity(150, "user_jon", ""))
            .unwrap();
        assert!(c.actor.as_ref().unwrap().groups.is_empty());
        assert!(!c.actor.unwrap().admin);
        // Before joining the organization: unknown.
        assert_eq!(d.context("src", after, &activity(50, "user_jon", "")), None);

        // Jon is removed at 2000 (the feed says so); rows after that know.
        let mut w = Writer::begin(&mut store, "src", 0).unwrap();
        w.ended_at(&Key::member("org-1", "user_jon"), 2000, "{}", "a1")
            .unwrap();
        w.commit().unwrap();
        let later = journal(&mut store, "later");
        let gone = d
            .context("src", later, &activity(2500, "user_jon", ""))
            .unwrap()
            .actor
            .unwrap();
        assert!(gone.departed);
        assert_eq!(gone.departed_time, Some(2000));
        assert_eq!(gone.email.as_deref(), Some("jon@stark.example"));
        // The row journaled before the removal still says he was a member.
        let still = d
            .context("src", after, &activity(2500, "user_jon", ""))
            .unwrap()
            .actor
            .unwrap();
        assert!(!still.departed);
        // The subject of a removal, by id or by e-mail.
        let c = d
            .context(
                "src",
                later,
                &activity(2000, "user_admin", r#","deleted_user_id":"user_jon""#),
            )
            .unwrap();
        assert!(c.actor.is_none());
        assert!(c.user.unwrap().departed);
        let c = d
            .context(
                "src",
                later,
                &activity(1500, "user_x", r#","invited_email":"JON@stark.example""#),
            )
            .unwrap();
        assert_eq!(c.user.unwrap().user_id.as_ref(), "user_jon");
        // Another source has no directory.
        assert_eq!(
            d.context("other", later, &activity(500, "user_jon", "")),
            None
        );
    }

    #[test]
    fn raw_with_context_appends_a_claudit_object_and_keeps_the_activity_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let mut store = Store::open(&cfg.state.path).unwrap();
        let raw = r#"{"id":"a1","type":"claude_chat_created","created_at":"1970-01-01T00:00:00.500Z","organization_uuid":"org-1","actor":{"type":"user_actor","user_id":"user_jon"},"extra":{"b":2,"a":1}}"#;
        let before = journal(&mut store, "before");
        let mut w = Writer::begin(&mut store, "src", 0).unwrap();
        let jon = attrs_text(&MemberAttrs {
            name: Some("Jon Snow".into()),
            email: Some("jon@stark.example".into()),
            role: Some("owner".into()),
        });
        w.present(
            &Key::member("org-1", "user_jon"),
            &jon,
            Some(0),
            1000,
            "sync",
        )
        .unwrap();
        w.commit().unwrap();
        let row = journal(&mut store, "row");
        let d = Directory::open(&cfg.state.path, cfg.directories())
            .unwrap()
            .unwrap();

        let out = raw_with_context(Some(&d), raw, 500, ("src", row));
        // The activity's own bytes, in their order, then the claudit object.
        let open = &raw[..raw.len() - 1];
        assert!(out.starts_with(open), "{out}");
        assert!(out[open.len()..].starts_with(r#","claudit":{"directory":{"actor":"#));
        let v: Value = serde_json::from_str(&out).unwrap();
        let actor = &v["claudit"]["directory"]["actor"];
        assert_eq!(actor["name"], "Jon Snow");
        assert_eq!(actor["email"], "jon@stark.example");
        assert_eq!(actor["admin"], true, "owner is admin-class by default");
        assert_eq!(actor["org"]["uid"], "org-1");

        // Without context, the raw activity exactly: a row journaled before
        // anything was known, another source, no directory at all, an
        // activity that has its own `claudit` field, and one that is not an
        // object.
        assert_eq!(raw_with_context(Some(&d), raw, 500, ("src", before)), raw);
        assert_eq!(raw_with_context(Some(&d), raw, 500, ("other", row)), raw);
        assert_eq!(raw_with_context(None, raw, 500, ("src", row)), raw);
        let own = r#"{"id":"a2","actor":{"type":"user_actor","user_id":"user_jon"},"claudit":1}"#;
        assert_eq!(raw_with_context(Some(&d), own, 500, ("src", row)), own);
        let list = r#"[{"actor":{"type":"user_actor","user_id":"user_jon"}}]"#;
        assert_eq!(raw_with_context(Some(&d), list, 500, ("src", row)), list);

        // Jon leaves; the row keeps rendering the bytes it rendered (the
        // file sink's recovery compares them), a later row knows.
        let mut w = Writer::begin(&mut store, "src", 0).unwrap();
        w.ended_at(&Key::member("org-1", "user_jon"), 400, "{}", "a9")
            .unwrap();
        w.commit().unwrap();
        let later = journal(&mut store, "later");
        assert_eq!(raw_with_context(Some(&d), raw, 500, ("src", row)), out);
        let gone: Value =
            serde_json::from_str(&raw_with_context(Some(&d), raw, 500, ("src", later))).unwrap();
        assert_eq!(gone["claudit"]["directory"]["actor"]["departed"], true);
        assert_eq!(gone["claudit"]["directory"]["actor"]["departed_time"], 400);
    }
}
