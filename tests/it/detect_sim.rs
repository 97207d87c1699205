//! The simulator's attack sequences, through the real pipeline: `claudit
//! demo` (simulator, daemon, raw file sink), then `claudit rules test` on
//! the raw records it delivered finds the attacks.

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
    let test = Command::new(daemon::CLAUDIT)
        .args(["--log-format", "text", "rules", "test", "--format", "plain"])
        .arg(out_dir.join("events.raw.ndjson"))
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stderr)
    );
    let findings: Vec<serde_json::Value> = String::from_utf8_lossy(&test.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
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
    // Logging turned off, then an Admin API key created at night.
    let sequence: Vec<_> = of("logging-disabled-then-sensitive-action")
        .into_iter()
        .filter(|f| f["anchor"]["type"] == "admin_api_key_created")
        .collect();
    assert!(
        !sequence.is_empty(),
        "{:#?}",
        of("logging-disabled-then-sensitive-action")
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
