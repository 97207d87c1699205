//! Detections through the release binary as an operator uses them:
//! `claudit check` on rule files and `[detections]` (exit 78, file, line
//! and fix), `claudit rules list`, `claudit rules test`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::daemon;

fn claudit(args: &[&str]) -> Output {
    claudit_with_input(args, None)
}

fn claudit_with_input(args: &[&str], input: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(daemon::CLAUDIT)
        .args(["--log-format", "text"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run claudit");
    let mut stdin = child.stdin.take().unwrap();
    if let Some(input) = input {
        stdin.write_all(input.as_bytes()).unwrap();
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A configuration whose `[detections]` is `detections`.
fn config(dir: &Path, detections: &str) -> PathBuf {
    let path = dir.join("claudit.toml");
    std::fs::write(
        &path,
        format!(
            r#"[state]
path = "{d}/state.db"

[[sources]]
name = "acme"
api_key = "sk-ant-api01-detect-cli-test"

[[sinks]]
name = "archive"
type = "file"
path = "{d}/events.ndjson"

{detections}
"#,
            d = dir.display()
        ),
    )
    .unwrap();
    path
}

const GOOD_RULE: &str = "title: Chat deleted by the CEO\nid: ceo-chat-deleted\nlogsource: {product: claude, service: compliance}\ndetection:\n  sel:\n    type: claude_chat_deleted\n    actor.email_address: ceo@example.com\n  condition: sel\nlevel: high\n";

#[test]
fn check_names_the_rule_file_line_and_fix_and_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    // Line 7: a misspelt field; a second file with a Sigma syntax error.
    std::fs::write(
        rules.join("typo.yml"),
        "title: t\nid: typo-rule\nlogsource: {product: claude}\ndetection:\n  sel:\n    type: claude_chat_deleted\n    actor.emial_address: ceo@example.com\n  condition: sel\nlevel: low\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("syntax.yml"),
        "title: t\nid: syntax-rule\nlogsource: {product: claude}\ndetection:\n  sel:\n    type|startswithh: claude_\n  condition: sel\nlevel: low\n",
    )
    .unwrap();
    let cfg = config(dir.path(), "[detections]\nrule_dirs = [\"rules\"]\n");
    let out = claudit(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    let err = stderr(&out);
    let typo = format!(
        "{}:7: typo-rule: unknown field \"actor.emial_address\"",
        rules.join("typo.yml").display()
    );
    assert!(err.contains(&typo), "{err}");
    assert!(err.contains("did you mean actor.email_address?"), "{err}");
    let syntax = format!(
        "{}:6: syntax-rule: Unknown modifier 'startswithh'",
        rules.join("syntax.yml").display()
    );
    assert!(err.contains(&syntax), "{err}");
    assert!(err.contains("fix the spelling"), "{err}");
}

#[test]
fn check_rejects_tuning_a_rule_that_does_not_exist_or_has_no_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "[detections]\n\n[[detections.rules]]\nid = \"auth-failure-burts\"\nthreshold = 3\n\n[[detections.rules]]\nid = \"sso-disabled\"\nthreshold = 2\n",
    );
    let out = claudit(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(":16: detections.rules[0].id: no rule has the id \"auth-failure-burts\"; did you mean \"auth-failure-burst\"?"),
        "{err}"
    );
    assert!(
        err.contains("\"sso-disabled\" is a single rule and has no threshold"),
        "{err}"
    );
}

#[test]
fn rules_list_shows_every_rule_with_its_state_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("ceo.yml"), GOOD_RULE).unwrap();
    let cfg = config(
        dir.path(),
        "[detections]\nrule_dirs = [\"rules\"]\n\n[[detections.rules]]\nid = \"org-user-invite-sent\"\nenabled = false\n\n[[detections.rules]]\nid = \"auth-failure-burst\"\nseverity = \"high\"\n",
    );
    let out = claudit(&["rules", "list", "--config", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("{id} not listed:\n{text}"))
            .to_string()
    };
    assert!(line("ceo-chat-deleted").contains(&rules.join("ceo.yml").display().to_string()));
    assert!(line("org-user-invite-sent").contains("disabled (tuned: enabled)"));
    assert!(line("auth-failure-burst").contains("high"));
    assert!(
        line("compliance-logging-disabled")
            .contains("built-in (rules/compliance-logging-disabled.yml)")
    );
    // Without a source with [sources.directory], the directory rules say
    // why they judge nothing.
    for id in [
        "departed-user-activity",
        "privileged-action-by-non-admin",
        "invite-outside-verified-domains",
    ] {
        let l = line(id);
        assert!(
            l.contains("inactive (no source has [sources.directory])") && l.contains("directory"),
            "{l}"
        );
    }
    // 59 built-in rules and the operator's one, plus the header.
    assert_eq!(text.lines().count(), 61, "{text}");
}

/// `rules test` has no directory: the directory rules judge only records
/// that carry one, and the command says so for the others.
#[test]
fn rules_test_says_the_directory_rules_need_a_directory() {
    let activity = r#"{"id":"activity_1","type":"claude_chat_created","created_at":"2026-05-07T10:00:00Z","actor":{"type":"user_actor","email_address":"a@example.com","user_id":"user_1"}}"#;
    let out = claudit_with_input(
        &["rules", "test", "--rule", "departed-user-activity"],
        Some(&format!("{activity}\n")),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "silent without a directory");
    assert!(
        stderr(&out).contains("no directory: rules test reads no state database")
            && stderr(&out).contains("departed-user-activity"),
        "{}",
        stderr(&out)
    );
    // The same activity with a directory context that shows the actor gone.
    let with = format!(
        r#"{{"activity": {activity}, "directory": {{"actor": {{"user_id": "user_1", "admin": false, "departed": true, "departed_time": 1778140000000}}}}}}"#
    );
    let out = claudit_with_input(
        &["rules", "test", "--rule", "departed-user-activity"],
        Some(&format!("{with}\n")),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let finding: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap();
    assert_eq!(
        finding["finding_info"]["analytic"]["uid"],
        "departed-user-activity"
    );
    assert!(!stderr(&out).contains("no directory"), "{}", stderr(&out));
}

#[test]
fn rules_test_prints_findings_and_checks_case_expectations() {
    let burst: String = (0..5)
        .map(|i| {
            format!(
                "{{\"id\":\"activity_{i}\",\"type\":\"magic_link_login_failed\",\"created_at\":\"2026-05-07T10:0{i}:00Z\",\"actor\":{{\"type\":\"unauthenticated_user_actor\",\"unauthenticated_email_address\":\"a@example.com\",\"ip_address\":\"203.0.113.9\"}}}}\n"
            )
        })
        .collect();
    let out = claudit_with_input(
        &["rules", "test", "--rule", "auth-failure-burst"],
        Some(&burst),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let findings: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0]["class_uid"], 2004);
    assert_eq!(
        findings[0]["finding_info"]["analytic"]["uid"],
        "auth-failure-burst"
    );
    assert_eq!(findings[0]["finding_info"]["related_events_count"], 5);
    // The same input gives the same finding (uid included).
    let again = claudit_with_input(
        &["rules", "test", "--rule", "auth-failure-burst"],
        Some(&burst),
    );
    assert_eq!(stdout(&again), stdout(&out));

    // Plain JSON, and a case whose expectation fails: exit 1 naming it.
    let cases = format!("{{\"case\": \"five failures\", \"expect\": 2}}\n{burst}");
    let out = claudit_with_input(
        &[
            "rules",
            "test",
            "--rule",
            "auth-failure-burst",
            "--format",
            "plain",
        ],
        Some(&cases),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("stdin:1: case \"five failures\": expected 2 finding(s), got 1"),
        "{}",
        stderr(&out)
    );
    let plain: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap();
    assert_eq!(plain["record"], "claudit.finding");
    assert_eq!(plain["activity_count"], 5);

    let out = claudit_with_input(&["rules", "test", "--rule", "auth-failure-brust"], Some(""));
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("did you mean auth-failure-burst?"),
        "{}",
        stderr(&out)
    );
}

/// The example configuration's `[detections]` loads and documents each key
/// with a comment above it.
#[test]
fn the_example_configuration_documents_detections() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/claudit.example.toml");
    // Its state directory (/var/lib/claudit) is one this machine lacks: an
    // offline command validates the settings, not this machine's paths.
    let out = Command::new(daemon::CLAUDIT)
        .args(["--log-format", "text", "rules", "list", "--config"])
        .arg(&example)
        .env("ANTHROPIC_COMPLIANCE_API_KEY", "sk-ant-api01-example")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("auth-failure-burst "));
    let text = std::fs::read_to_string(&example).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| *l == "[detections]").unwrap();
    for key in [
        "enabled",
        "rule_dirs",
        "embargoed_countries",
        "late_arrival_allowance",
        "identities",
        "networks",
        "user_agents",
        "id",
        "severity",
        "threshold",
        "window",
        "suppress",
    ] {
        let at = lines[start..]
            .iter()
            .position(|l| l.trim_start_matches("# ").starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} is not in the example's [detections]"))
            + start;
        assert!(
            lines[at - 1].starts_with('#'),
            "{key} has no comment above it"
        );
    }
}
