//! The simulator's attack sequences, through the real pipeline: `claudit
//! demo` (simulator, daemon, raw file sink), then `claudit rules test` on
//! the raw records it delivered finds the attacks. The demo's directory
//! stream is checked here too: one snapshot, each member once, in the OCSF
//! and the plain form.
//!
//! The simulated backlog is placed relative to the wall clock, and so is the
//! attack (the admin key comes in the small hours before the end), so which
//! everyday records fall near the attack depends on the time of day the test
//! runs. The sequence rule fires once per organization per day (`suppress:
//! 24h`) at the first sensitive action after logging went off: an everyday
//! key or export in the same organization can take that place, and the
//! attack's own key then adds no second finding. So the test runs the pack
//! twice: as shipped (some finding of the sequence in the attacker's
//! organization within a day of the attack), and with the sequence's
//! suppression tuned down to a second, where the attack's key must be found
//! as its own finding whatever lies around it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::daemon;

#[test]
fn the_demo_data_holds_attacks_the_rules_find() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("demo");
    let demo = Command::new(daemon::CLAUDIT)
        .args([
            "--log-format",
            "text",
            "demo",
            "--events",
            "3000",
            "--live-secs",
            "1",
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    // The daemon's own findings, delivered beside the activities: the
    // three attack sequences (the demo fails when one is missing).
    let stdout = String::from_utf8_lossy(&demo.stdout);
    for line in [
        "brute force: auth-failure-burst",
        "logging was turned off: logging-disabled-then-sensitive-action",
        "impossible travel: impossible-travel-login",
    ] {
        assert!(stdout.contains(line), "{line}:\n{stdout}");
    }
    let delivered: Vec<serde_json::Value> =
        std::fs::read_to_string(out_dir.join("events.raw.findings.ndjson"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    for rule in [
        "auth-failure-burst",
        "logging-disabled-then-sensitive-action",
        "impossible-travel-login",
    ] {
        assert!(
            delivered.iter().any(|f| f["rule"]["id"] == rule),
            "{rule} not delivered"
        );
    }
    directory_stream_holds_one_snapshot(&out_dir, &stdout);
    let raw = out_dir.join("events.raw.ndjson");
    let findings = rules_test(&raw, None);
    let config = untuned_sequence_config(dir.path());
    let unsuppressed = rules_test(&raw, Some(&config));
    let of = |rule: &str| -> Vec<&serde_json::Value> {
        findings
            .iter()
            .filter(|f| f["rule"]["id"] == rule)
            .collect()
    };
    // The brute force: 12 failures of one person from one address.
    let burst: Vec<_> = of("auth-failure-burst")
        .into_iter()
        .filter(|f| f["actor"]["ip_address"] == "185.220.101.34")
        .collect();
    assert_eq!(burst.len(), 1, "{findings:#?}");
    assert!(burst[0]["activity_count"].as_u64().unwrap() >= 5);
    // Logging turned off, then an Admin API key created at night: found
    // as its own finding when nothing suppresses it...
    let attack: Vec<_> = unsuppressed
        .iter()
        .filter(|f| {
            f["rule"]["id"] == "logging-disabled-then-sensitive-action"
                && f["anchor"]["type"] == "admin_api_key_created"
                && f["actor"]["ip_address"] == "45.155.205.233"
        })
        .collect();
    assert_eq!(attack.len(), 1, "{unsuppressed:#?}");
    // ...and, as shipped, the attacker's organization has the sequence's
    // finding within a day of the attack (the attack's own, or the one that
    // suppressed it).
    let org = &attack[0]["group"]["organization_id"];
    let attack_at = time_of(&attack[0]["last_seen"]);
    let day = 24 * 3600 * 1000;
    let shipped = of("logging-disabled-then-sensitive-action");
    assert!(
        shipped.iter().any(|f| &f["group"]["organization_id"] == org
            && (time_of(&f["last_seen"]) - attack_at).abs() <= day),
        "{shipped:#?}"
    );
    assert!(
        of("admin-api-key-created")
            .iter()
            .any(|f| f["actor"]["ip_address"] == "45.155.205.233")
    );
    assert!(
        of("suspicious-user-agent")
            .iter()
            .any(|f| f["actor"]["user_agent"] == "curl/8.7.1")
    );
}

/// The demo's directory stream: one snapshot, each member once, as OCSF
/// User Inventory Info in `events.ocsf.directory.ndjson` and as the plain
/// record in `events.raw.directory.ndjson`, the same entries under the
/// same uids; the demo's own check (every simulated member at the snapshot
/// time exactly once) passed and says how many it delivered.
fn directory_stream_holds_one_snapshot(out_dir: &Path, stdout: &str) {
    let read = |name: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(out_dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let ocsf = read("events.ocsf.directory.ndjson");
    let plain = read("events.raw.directory.ndjson");
    assert!(ocsf.len() > 10, "{} entries", ocsf.len());
    assert_eq!(ocsf.len(), plain.len());
    for (name, n) in [
        ("events.ocsf.directory.ndjson", ocsf.len()),
        ("events.raw.directory.ndjson", plain.len()),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(name) && l.ends_with(&format!(": {n} entries"))),
            "{name}: {n} entries:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("expected exactly once in each file") && stdout.contains("problems 0"),
        "{stdout}"
    );
    let at = &plain[0]["at_ms"];
    let mut users = HashSet::new();
    let mut uids = HashSet::new();
    for r in &plain {
        assert_eq!(r["record"], "claudit.directory", "{r}");
        assert_eq!(r["source"], "demo", "{r}");
        assert_eq!(r["kind"], "snapshot", "{r}");
        assert_eq!(&r["at_ms"], at, "one snapshot: {r}");
        let user = r["user"]["user_id"].as_str().expect("a user id");
        assert!(users.insert(user), "{user} twice");
        assert!(uids.insert(r["uid"].as_str().expect("a uid")), "{r}");
    }
    let mut ocsf_users = HashSet::new();
    let mut ocsf_uids = HashSet::new();
    for e in &ocsf {
        assert_eq!(e["class_uid"], 5003, "{e}");
        assert_eq!(e["activity_id"], 2, "a snapshot entry: {e}");
        assert_eq!(&e["time"], at, "{e}");
        ocsf_users.insert(e["user"]["uid"].as_str().expect("a user uid"));
        ocsf_uids.insert(e["metadata"]["uid"].as_str().expect("a uid"));
    }
    assert_eq!(ocsf_users, users);
    assert_eq!(ocsf_uids, uids);
}

/// `claudit rules test --format plain` over `raw`, with `config` if given.
fn rules_test(raw: &Path, config: Option<&Path>) -> Vec<serde_json::Value> {
    let mut command = Command::new(daemon::CLAUDIT);
    command.args(["--log-format", "text", "rules", "test", "--format", "plain"]);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let test = command.arg(raw).output().unwrap();
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stderr)
    );
    String::from_utf8_lossy(&test.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A configuration whose only change to the pack is the sequence rule's
/// suppression, down to one second.
fn untuned_sequence_config(dir: &Path) -> PathBuf {
    let path = dir.join("claudit.toml");
    std::fs::write(
        &path,
        format!(
            r#"[state]
path = "{d}/state.db"

[[sources]]
name = "acme"
api_key = "sk-ant-api01-detect-sim-test"

[[sinks]]
name = "archive"
type = "file"
path = "{d}/events.ndjson"

[[detections.rules]]
id = "logging-disabled-then-sensitive-action"
suppress = "1s"
"#,
            d = dir.display()
        ),
    )
    .unwrap();
    path
}

/// Milliseconds since the epoch of an RFC 3339 time in a finding.
fn time_of(value: &serde_json::Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(value.as_str().expect("a time"))
        .expect("an RFC 3339 time")
        .timestamp_millis()
}
