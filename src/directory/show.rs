//! `claudit directory show` and the directory part of `claudit status`:
//! what claudit knows about a source's directory, or about one identity,
//! and since when.

use std::path::Path;

use serde::Serialize;

use super::model::{GroupAttrs, Kind, MemberAttrs, OrgAttrs, RoleAttrs, parse_attrs};
use super::settings::DirectoryConfig;
use super::store::{self, Fact};
use crate::model::fmt_ms;
use crate::store::{Store, StoreError};

/// A source's directory, for `claudit status`.
#[derive(Debug, Serialize)]
pub struct DirectoryStatus {
    pub enabled: bool,
    pub last_full_sync: Option<String>,
    pub last_full_sync_seconds: Option<f64>,
    pub last_refresh: Option<String>,
    /// "full" or "targeted" while a run is in progress.
    pub sync_in_progress: Option<String>,
    pub organizations: i64,
    pub members: i64,
    pub departed: i64,
    pub groups: i64,
    pub roles: i64,
    pub requests: i64,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

/// The directory of `source` as the state database has it; `None` when the
/// directory is off and nothing was ever synced (or the database predates
/// the directory: a new binary's `status` while the old daemon runs).
pub fn status(
    store: &Store,
    source: &str,
    enabled: bool,
) -> Result<Option<DirectoryStatus>, StoreError> {
    if store.schema_version() < store::SINCE_SCHEMA {
        return Ok(None);
    }
    let state = store::sync_state(store, source)?;
    let counts = store::current_counts(store, source)?;
    if !enabled && state == store::SyncState::default() && counts.is_empty() {
        return Ok(None);
    }
    let count = |kind: Kind| {
        counts
            .iter()
            .find(|c| c.0 == kind)
            .map_or((0, 0), |c| (c.1, c.2))
    };
    Ok(Some(DirectoryStatus {
        enabled,
        last_full_sync: state.last_full_ms.map(fmt_ms),
        last_full_sync_seconds: state.last_full_duration_ms.map(|ms| ms as f64 / 1000.0),
        last_refresh: state.last_run_ms.map(fmt_ms),
        sync_in_progress: state.run_kind,
        organizations: count(Kind::Org).0,
        members: count(Kind::Member).0,
        departed: count(Kind::Member).1,
        groups: count(Kind::Group).0,
        roles: count(Kind::Role).0,
        requests: state.requests,
        last_error: state.last_error,
        last_error_at: state.last_error_ms.map(fmt_ms),
    }))
}

impl std::fmt::Display for DirectoryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or = |v: &Option<String>, d: &'static str| v.clone().unwrap_or_else(|| d.to_string());
        let took = self
            .last_full_sync_seconds
            .map(|s| format!(" (took {s:.1} s)"))
            .unwrap_or_default();
        writeln!(
            f,
            "  directory:       {}{}",
            if self.enabled {
                "on"
            } else {
                "off (data from an earlier run)"
            },
            self.sync_in_progress
                .as_deref()
                .map(|k| format!(", {k} sync in progress"))
                .unwrap_or_default()
        )?;
        writeln!(
            f,
            "    last full sync: {}{took}; last refresh {}",
            or(&self.last_full_sync, "never"),
            or(&self.last_refresh, "never")
        )?;
        writeln!(
            f,
            "    known:          {} organizations, {} members ({} departed), {} groups, {} roles; {} requests made",
            self.organizations, self.members, self.departed, self.groups, self.roles, self.requests
        )?;
        if let Some(e) = &self.last_error {
            writeln!(
                f,
                "    last error:     {} ({e})",
                or(&self.last_error_at, "?")
            )?;
        }
        Ok(())
    }
}

/// `claudit directory show --source NAME [--user ID|EMAIL]`.
/// `directory` is the source's `[sources.directory]`, `state` the state
/// database.
pub fn show(
    state: &Path,
    source: &str,
    directory: &DirectoryConfig,
    user: Option<&str>,
) -> anyhow::Result<String> {
    let store = Store::open_readonly(state)?;
    let mut out = String::new();
    let enabled = directory.enabled;
    match status(&store, source, enabled)? {
        None => {
            out.push_str(&format!(
                "source {source}: directory context is off and nothing was synced; add a [sources.directory] table to the source to turn it on\n"
            ));
            return Ok(out);
        }
        Some(st) => {
            out.push_str(&format!("source {source}\n{st}"));
        }
    }
    let Some(user) = user else {
        return Ok(out);
    };
    let ids = resolve_user(&store, source, user)?;
    if ids.is_empty() {
        out.push_str(&format!(
            "\nno member {user:?} is known in source {source} (ids look like user_...; e-mail addresses match case-insensitively)\n"
        ));
        return Ok(out);
    }
    let names = Names::load(&store, source)?;
    for id in ids {
        out.push('\n');
        out.push_str(&describe_user(&store, source, &id, &names)?);
    }
    Ok(out)
}

/// User ids matching an id or an e-mail address.
fn resolve_user(store: &Store, source: &str, query: &str) -> Result<Vec<String>, StoreError> {
    if !query.contains('@') {
        return Ok(vec![query.to_string()]);
    }
    let mut ids: Vec<String> = store::current_of_kind(store, source, Kind::Member)?
        .into_iter()
        .filter(|f| {
            parse_attrs::<MemberAttrs>(&f.attrs)
                .email
                .is_some_and(|e| e.eq_ignore_ascii_case(query.trim()))
        })
        .map(|f| f.key.entity)
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Names of organizations, groups and roles, to print beside their ids.
struct Names {
    orgs: Vec<(String, String)>,
    groups: Vec<(String, String)>,
    roles: Vec<(String, String)>,
}

impl Names {
    fn load(store: &Store, source: &str) -> Result<Names, StoreError> {
        let latest = |kind: Kind,
                      name: fn(&str) -> Option<String>|
         -> Result<Vec<(String, String)>, StoreError> {
            let mut out = Vec::new();
            for f in store::current_of_kind(store, source, kind)? {
                if let Some(n) = name(&f.attrs) {
                    out.push((f.key.entity, n));
                }
            }
            Ok(out)
        };
        Ok(Names {
            orgs: latest(Kind::Org, |a| parse_attrs::<OrgAttrs>(a).name)?,
            groups: latest(Kind::Group, |a| parse_attrs::<GroupAttrs>(a).name)?,
            roles: latest(Kind::Role, |a| parse_attrs::<RoleAttrs>(a).name)?,
        })
    }

    fn of(list: &[(String, String)], id: &str) -> String {
        match list.iter().rev().find(|(i, _)| i == id) {
            Some((_, name)) => format!("{name} ({id})"),
            None => id.to_string(),
        }
    }
}

fn interval(f: &Fact) -> String {
    let from = f
        .valid_from_ms
        .map_or("(start unknown)".to_string(), fmt_ms);
    let to = f.valid_to_ms.map_or("now".to_string(), fmt_ms);
    let source = if f.evidence == "sync" {
        "the directory sync".to_string()
    } else {
        format!("activity {}", f.evidence)
    };
    format!(
        "{from} .. {to}; known since {} (from {source})",
        fmt_ms(f.learned_ms)
    )
}

fn describe_user(
    store: &Store,
    source: &str,
    user: &str,
    names: &Names,
) -> Result<String, StoreError> {
    // What is known now: the versions nothing has superseded.
    let facts: Vec<Fact> = store::facts_about(store, source, user)?
        .into_iter()
        .filter(|f| f.superseded_seq.is_none())
        .collect();
    let mut out = String::new();
    let member: Vec<&Fact> = facts
        .iter()
        .filter(|f| f.key.kind == Kind::Member)
        .collect();
    let latest = member
        .iter()
        .max_by_key(|f| f.valid_from_ms)
        .map(|f| parse_attrs::<MemberAttrs>(&f.attrs));
    let title = match &latest {
        Some(a) => format!(
            "{user}: {} <{}>",
            a.name.as_deref().unwrap_or("(no name)"),
            a.email.as_deref().unwrap_or("no e-mail")
        ),
        None => format!("{user}: never listed as a member"),
    };
    out.push_str(&title);
    out.push('\n');
    for f in &member {
        let a: MemberAttrs = parse_attrs(&f.attrs);
        out.push_str(&format!(
            "  member of {}, role {}: {}\n",
            Names::of(&names.orgs, &f.key.scope),
            a.role.as_deref().unwrap_or("(unknown)"),
            interval(f)
        ));
    }
    if let Some(end) = member.iter().filter_map(|f| f.valid_to_ms).max()
        && member.iter().all(|f| f.valid_to_ms.is_some())
    {
        out.push_str(&format!(
            "  departed: {} (activities after this carry departed: true)\n",
            fmt_ms(end)
        ));
    }
    for f in facts.iter().filter(|f| f.key.kind == Kind::GroupMember) {
        out.push_str(&format!(
            "  in group {}: {}\n",
            Names::of(&names.groups, &f.key.scope),
            interval(f)
        ));
    }
    for f in facts.iter().filter(|f| f.key.kind == Kind::UserRole) {
        out.push_str(&format!(
            "  role {} (assigned directly): {}\n",
            Names::of(&names.roles, &f.key.item),
            interval(f)
        ));
    }
    Ok(out)
}
