//! The directory as a stream of OCSF events, for SIEMs that want a join
//! table rather than (or besides) the context on every event.
//!
//! Class: **User Inventory Info (5003)**. It is OCSF's class for "a user's
//! record as an inventory source reports it", with `user` as its required
//! object, so the same `user` attributes the activity events carry
//! (`full_name`, `email_addr`, `groups`, `type_id`, `org`) land where a
//! SIEM's identity tables already read them. Account Change (3001) would
//! say a change was *made* at that time by an actor, which a snapshot is not;
//! Entity Management (3004) has no `user`. A snapshot is activity 2
//! Collect (every member at the snapshot time), each change since the
//! previous snapshot activity 1 Log (`unmapped.claudit.directory.change` =
//! `joined`, `left` or `changed`).
//!
//! Every event's `metadata.uid` is a function of the source, the user, the
//! kind and the time it describes, so a snapshot produced again (after a
//! crash, or later with more known) replaces rather than duplicates it in a
//! SIEM that keys on it. The events are built from the directory as known
//! when they are built.

use std::time::Duration;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{OCSF_VERSION, is_email};
use crate::directory::enrich::{Change, Directory, Identity};
use crate::model::format_time;

const LOG_NAME: &str = "claude_compliance_directory";

/// When the next snapshot of a source is due: at once if none was made,
/// else `interval` after the last.
pub fn next_due(last_snapshot_ms: Option<i64>, interval: Duration) -> i64 {
    match last_snapshot_ms {
        None => i64::MIN,
        Some(last) => last + interval.as_millis() as i64,
    }
}

/// The time the snapshot to make now describes, if one is due at `now_ms`:
/// `now_ms` for a source's first, else the latest time one was due
/// (`next_due`, then every `interval`) up to `now_ms`. A daemon that was
/// down for several intervals makes one snapshot, at the last time due,
/// with the changes since the previous one. A function of the last
/// snapshot's time: made again after a crash within the same interval,
/// it describes the same time, so its entries have the same uids.
pub fn snapshot_time(
    last_snapshot_ms: Option<i64>,
    interval: Duration,
    now_ms: i64,
) -> Option<i64> {
    let Some(last) = last_snapshot_ms else {
        return Some(now_ms);
    };
    let every = (interval.as_millis() as i64).max(1);
    if now_ms < next_due(Some(last), interval) {
        return None;
    }
    Some(last + (now_ms - last) / every * every)
}

/// One entry of the stream: a user's record in a snapshot, or how it
/// changed since the previous one, in both the forms a sink can receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `metadata.uid` of the event, `uid` of the plain record ([`uid`]).
    pub uid: String,
    /// `snapshot`, or the change: `joined`, `left`, `changed`.
    pub kind: &'static str,
    /// The OCSF User Inventory Info event (JSON).
    pub ocsf: String,
    /// claudit's plain JSON record, for raw-format sinks:
    /// `{"record":"claudit.directory","version":1,"uid","source","kind",
    /// "change" (changes only),"at","at_ms","user":{...}}` where `user` is
    /// the identity as `raw+claudit` writes it.
    pub plain: String,
}

/// The name of the plain record (`"record"`), and its version.
pub const PLAIN_RECORD: &str = "claudit.directory";
pub const PLAIN_VERSION: u32 = 1;

/// The entries of a snapshot of `source` at `at_ms`, preceded by those of
/// the changes since the previous snapshot (`previous_ms`): what the
/// daemon journals when a snapshot is due, and what `claudit directory
/// snapshot` prints.
pub fn entries(
    directory: &Directory,
    source: &str,
    previous_ms: Option<i64>,
    at_ms: i64,
) -> Vec<Entry> {
    let mut out = Vec::new();
    if let Some(previous) = previous_ms.filter(|p| *p < at_ms) {
        for (change, id) in directory.changes_between(source, previous, at_ms) {
            out.push(entry(source, &id, Kind::Change(change), at_ms));
        }
    }
    for id in directory.members_at(source, at_ms) {
        out.push(entry(source, &id, Kind::Snapshot, at_ms));
    }
    out
}

/// The OCSF events of [`entries`], one JSON text each.
pub fn events(
    directory: &Directory,
    source: &str,
    previous_ms: Option<i64>,
    at_ms: i64,
) -> Vec<String> {
    entries(directory, source, previous_ms, at_ms)
        .into_iter()
        .map(|e| e.ocsf)
        .collect()
}

fn entry(source: &str, id: &Identity, kind: Kind, at_ms: i64) -> Entry {
    let kind_name = kind.name();
    let uid = uid(source, &id.user_id, kind_name, at_ms);
    let mut plain = Map::new();
    plain.insert("record".into(), json!(PLAIN_RECORD));
    plain.insert("version".into(), json!(PLAIN_VERSION));
    plain.insert("uid".into(), json!(uid));
    plain.insert("source".into(), json!(source));
    plain.insert("kind".into(), json!(kind_name));
    if let Kind::Change(c) = kind {
        plain.insert("change".into(), json!(c.as_str()));
    }
    plain.insert(
        "at".into(),
        json!(chrono::DateTime::from_timestamp_millis(at_ms).map(format_time)),
    );
    plain.insert("at_ms".into(), json!(at_ms));
    // Strings, booleans and numbers: serializing cannot fail.
    plain.insert(
        "user".into(),
        serde_json::to_value(id).unwrap_or(Value::Null),
    );
    Entry {
        ocsf: event(source, id, kind, at_ms).to_string(),
        plain: Value::Object(plain).to_string(),
        uid,
        kind: kind_name,
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Snapshot,
    Change(Change),
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Snapshot => "snapshot",
            Kind::Change(c) => c.as_str(),
        }
    }
}

/// The stable uid of one entry of the stream.
pub fn uid(source: &str, user_id: &str, kind: &str, at_ms: i64) -> String {
    let mut h = Sha256::new();
    h.update(b"claudit directory v1\0");
    for part in [source, user_id, kind] {
        h.update(part.as_bytes());
        h.update(b"\0");
    }
    h.update(at_ms.to_be_bytes());
    let hex: String = h
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("claudit_directory_{hex}")
}

fn event(source: &str, id: &Identity, kind: Kind, at_ms: i64) -> Value {
    let (activity_id, activity_name, kind_name) = match kind {
        Kind::Snapshot => (2, "Collect", "snapshot"),
        Kind::Change(c) => (1, "Log", c.as_str()),
    };
    let mut user = Map::new();
    user.insert("uid".into(), json!(&*id.user_id));
    if let Some(email) = &id.email {
        user.insert("name".into(), json!(&**email));
        if is_email(email) {
            user.insert("email_addr".into(), json!(&**email));
        }
    }
    if let Some(name) = &id.name {
        user.insert("full_name".into(), json!(&**name));
    }
    let (type_id, type_name) = if id.admin { (2, "Admin") } else { (1, "User") };
    user.insert("type_id".into(), json!(type_id));
    user.insert("type".into(), json!(type_name));
    if !id.groups.is_empty() {
        let groups: Vec<Value> = id
            .groups
            .iter()
            .map(|g| {
                let mut o = Map::new();
                o.insert("uid".into(), json!(&*g.uid));
                if let Some(n) = &g.name {
                    o.insert("name".into(), json!(&**n));
                }
                if let Some(t) = &g.source_type {
                    o.insert("type".into(), json!(&**t));
                }
                Value::Object(o)
            })
            .collect();
        user.insert("groups".into(), Value::Array(groups));
    }
    if let Some(org) = &id.org {
        let mut o = Map::new();
        o.insert("uid".into(), json!(&*org.uid));
        if let Some(n) = &org.name {
            o.insert("name".into(), json!(&**n));
        }
        user.insert("org".into(), Value::Object(o));
    }
    let mut extras = Map::new();
    extras.insert("source".into(), json!(source));
    extras.insert("kind".into(), json!(kind_name));
    if let Kind::Change(c) = kind {
        extras.insert("change".into(), json!(c.as_str()));
    }
    extras.insert("snapshot_time".into(), json!(at_ms));
    if let Some(role) = &id.organization_role {
        extras.insert("organization_role".into(), json!(&**role));
    }
    if !id.roles.is_empty() {
        extras.insert("roles".into(), json!(id.roles));
    }
    if let Some(since) = id.member_since {
        extras.insert("member_since".into(), json!(since));
    }
    if id.departed {
        extras.insert("departed".into(), json!(true));
        extras.insert("departed_time".into(), json!(id.departed_time));
    }
    let mut metadata = json!({
        "version": OCSF_VERSION,
        "product": {"name": "Claude", "vendor_name": "Anthropic", "feature": {"name": "Compliance API"}},
        "uid": uid(source, &id.user_id, kind_name, at_ms),
        "log_name": LOG_NAME,
        "log_provider": "Anthropic Compliance API",
        "original_time": chrono::DateTime::from_timestamp_millis(at_ms).map(format_time),
    });
    if let Some(org) = &id.org {
        metadata["tenant_uid"] = json!(&*org.uid);
    }
    let mut event = json!({
        "class_uid": 5003,
        "category_uid": 5,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": 500_300 + activity_id,
        "time": at_ms,
        "timezone_offset": 0,
        "severity_id": 1,
        "severity": "Informational",
        "status_id": 1,
        "status": "Success",
        "metadata": metadata,
        "user": Value::Object(user),
        "unmapped": {"claudit": {"directory": Value::Object(extras)}},
    });
    if let Some(email) = id.email.as_deref().filter(|e| is_email(e)) {
        event["observables"] = json!([{"name": "user.email_addr", "type_id": 5, "value": email}]);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::model::{GroupAttrs, Key, MemberAttrs, attrs_text};
    use crate::directory::store::Writer;
    use crate::store::Store;

    #[test]
    fn snapshots_list_members_and_changes_with_stable_uids() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[state]\npath = \"{d}/s.db\"\n[[sources]]\nname = \"src\"\napi_key = \"sk-ant-api01-x\"\n[sources.directory]\n[[sinks]]\nname = \"f\"\ntype = \"file\"\npath = \"{d}/o\"\n",
            d = dir.path().display()
        );
        let cfg = crate::config::load_str(&text, &dir.path().join("c.toml"), &|_| None).unwrap();
        let mut store = Store::open(&cfg.state.path).unwrap();
        let member = |name: &str, role: &str| {
            attrs_text(&MemberAttrs {
                name: Some(name.into()),
                email: Some(format!("{}@acme.example", name.to_lowercase())),
                role: Some(role.into()),
            })
        };
        let mut w = Writer::begin(&mut store, "src", 0).unwrap();
        w.present(&Key::org("org"), r#"{"name":"Acme"}"#, Some(0), 10, "sync")
            .unwrap();
        w.present(
            &Key::member("org", "user_a"),
            &member("Ada", "owner"),
            Some(0),
            10,
            "sync",
        )
        .unwrap();
        w.present(
            &Key::member("org", "user_b"),
            &member("Bob", "user"),
            Some(0),
            10,
            "sync",
        )
        .unwrap();
        let admins = attrs_text(&GroupAttrs {
            name: Some("Admins".into()),
            ..GroupAttrs::default()
        });
        w.present(&Key::group("g"), &admins, Some(0), 10, "sync")
            .unwrap();
        w.present(&Key::group_member("g", "user_a"), "{}", Some(0), 10, "sync")
            .unwrap();
        // Bob leaves at 150; Cy joins at 120.
        w.ended_at(&Key::member("org", "user_b"), 150, "{}", "a1")
            .unwrap();
        w.present(
            &Key::member("org", "user_c"),
            &member("Cy", "user"),
            Some(120),
            200,
            "sync",
        )
        .unwrap();
        w.commit().unwrap();
        let d = Directory::open(&cfg.state.path, cfg.directories())
            .unwrap()
            .unwrap();

        let first = events(&d, "src", None, 100);
        let users: Vec<Value> = first
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        assert_eq!(users.len(), 2);
        assert!(
            users
                .iter()
                .all(|e| e["class_uid"] == 5003 && e["activity_id"] == 2)
        );
        assert_eq!(users[0]["user"]["full_name"], "Ada");
        assert_eq!(users[0]["user"]["type_id"], 2);
        assert_eq!(users[0]["user"]["groups"][0]["name"], "Admins");
        assert_eq!(users[1]["user"]["type_id"], 1);

        let second = events(&d, "src", Some(100), 300);
        let second: Vec<Value> = second
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        let changes: Vec<(String, String)> = second
            .iter()
            .filter(|e| e["activity_id"] == 1)
            .map(|e| {
                (
                    e["user"]["uid"].as_str().unwrap().to_string(),
                    e["unmapped"]["claudit"]["directory"]["change"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect();
        assert_eq!(
            changes,
            [
                ("user_b".into(), "left".into()),
                ("user_c".into(), "joined".into())
            ]
        );
        let left = second
            .iter()
            .find(|e| e["user"]["uid"] == "user_b")
            .unwrap();
        assert_eq!(
            left["unmapped"]["claudit"]["directory"]["departed_time"],
            150
        );
        assert_eq!(second.iter().filter(|e| e["activity_id"] == 2).count(), 2);
        // The same snapshot built again has the same uids.
        assert_eq!(events(&d, "src", Some(100), 300).len(), second.len());
        assert_eq!(
            serde_json::from_str::<Value>(&events(&d, "src", None, 100)[0]).unwrap()["metadata"]["uid"],
            users[0]["metadata"]["uid"]
        );
        assert_ne!(
            uid("src", "user_a", "snapshot", 100),
            uid("src", "user_a", "snapshot", 101)
        );
        assert_eq!(next_due(None, Duration::from_secs(1)), i64::MIN);
        assert_eq!(next_due(Some(5), Duration::from_secs(1)), 1005);
        let day = Duration::from_secs(86_400);
        let day_ms = 86_400_000;
        assert_eq!(snapshot_time(None, day, 42), Some(42));
        assert_eq!(snapshot_time(Some(1_000), day, 1_000 + day_ms - 1), None);
        assert_eq!(
            snapshot_time(Some(1_000), day, 1_000 + day_ms),
            Some(1_000 + day_ms)
        );
        // Down for three and a half days: one snapshot, at the last time due.
        assert_eq!(
            snapshot_time(Some(1_000), day, 1_000 + 3 * day_ms + day_ms / 2),
            Some(1_000 + 3 * day_ms)
        );

        // Each entry has both forms under one uid; the plain record names
        // the user as raw+claudit does.
        let both = entries(&d, "src", Some(100), 300);
        assert_eq!(both.len(), 4);
        for e in &both {
            let ocsf: Value = serde_json::from_str(&e.ocsf).unwrap();
            let plain: Value = serde_json::from_str(&e.plain).unwrap();
            assert_eq!(ocsf["metadata"]["uid"], e.uid.as_str());
            assert_eq!(plain["uid"], e.uid.as_str());
            assert_eq!(plain["record"], "claudit.directory");
            assert_eq!(plain["version"], 1);
            assert_eq!(plain["source"], "src");
            assert_eq!(plain["kind"], e.kind);
            assert_eq!(plain["at_ms"], 300);
            assert_eq!(plain["at"], "1970-01-01T00:00:00.300000Z");
            assert_eq!(plain["user"]["user_id"], ocsf["user"]["uid"]);
            assert_eq!(plain["change"].is_null(), e.kind == "snapshot");
        }
        let left = both.iter().find(|e| e.kind == "left").unwrap();
        let plain: Value = serde_json::from_str(&left.plain).unwrap();
        assert_eq!(plain["user"]["departed"], true);
        assert_eq!(plain["user"]["name"], "Bob");
    }
}
