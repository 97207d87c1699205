//! The built-in pack against its own test records, and the engine's
//! promises: deterministic uids, late arrivals, duplicates, suppression,
//! restart rebuild, allow-lists and tuning.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use super::cli;
use super::engine::{Engine, Input};
use super::finding::{Finding, FiredAnchor};
use super::load::load_all;
use super::settings::{DetectionSettings, RuleTuning};
use crate::enrich::Enricher;
use crate::ocsf::JournalContext;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every rule has a test file with a matching and a non-matching case,
/// and every case gives the findings it expects, with only that rule on.
#[test]
fn every_built_in_rule_passes_its_test_records() {
    let set = load_all(&[]).unwrap();
    let settings = DetectionSettings::default();
    let enricher = Enricher::without_geoip();
    let mut failures = Vec::new();
    for rule in set.iter() {
        let id = &rule.meta.id;
        let path = manifest().join(format!("rules/tests/{id}.ndjson"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}: every rule needs test records", path.display()));
        let mut only = set.clone();
        only.retain(|r| &r.meta.id == id);
        let run = cli::run(
            &path.display().to_string(),
            text.as_bytes(),
            &only,
            &settings,
            &enricher,
            Some(id),
        )
        .unwrap();
        let expectations: Vec<u64> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v.get("expect").and_then(Value::as_u64))
            .collect();
        assert!(
            expectations.iter().any(|&n| n > 0) && expectations.contains(&0),
            "{id}: needs at least one matching and one non-matching case"
        );
        for m in run.mismatches {
            failures.push(format!(
                "{}:{}: {id}: case {:?} expected {} got {}",
                path.display(),
                m.line,
                m.case,
                m.expected,
                m.got
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `pack.rs` lists exactly the files of `rules/`.
#[test]
fn the_pack_is_every_file_of_the_rules_directory() {
    let mut on_disk: Vec<String> = std::fs::read_dir(manifest().join("rules"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml"))
        .collect();
    on_disk.sort();
    let mut packed: Vec<String> = super::pack::PACK
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    packed.sort();
    assert_eq!(packed, on_disk, "update src/detect/pack.rs");
}

/// Every activity type a built-in rule names is in the catalogue (a typo
/// would never match), but for the one the catalogue lists as Elastic-only.
#[test]
fn built_in_rules_name_catalogued_activity_types() {
    let known: std::collections::HashSet<&str> = crate::sim::generate::Generator::catalogue()
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    let allowed_unknown = ["environment_created"];
    for (name, text) in super::pack::PACK {
        for line in text.lines() {
            let trimmed = line.trim();
            let values: Vec<&str> = if let Some(rest) = trimmed.strip_prefix("type: [") {
                rest.trim_end_matches(']')
                    .split(',')
                    .map(str::trim)
                    .collect()
            } else if let Some(rest) = trimmed.strip_prefix("type: ") {
                vec![rest.trim()]
            } else {
                continue;
            };
            for v in values {
                if matches!(
                    v,
                    "event_count"
                        | "value_count"
                        | "temporal_ordered"
                        | "first-seen"
                        | "geo-velocity"
                ) {
                    continue;
                }
                assert!(
                    known.contains(v) || allowed_unknown.contains(&v),
                    "rules/{name}: activity type {v} is not in the catalogue"
                );
            }
        }
    }
}

// ---- the engine's promises, on hand-made activities ----

struct Feed {
    engine: Engine,
}

const T0: i64 = 1_778_148_000_000; // 2026-05-07T10:00:00Z

fn failure(n: usize, minute: i64) -> (String, i64, Value) {
    let created = T0 + minute * 60_000;
    let id = format!("activity_{n:04}");
    let activity = json!({
        "id": id,
        "type": "sso_login_failed",
        "created_at": chrono::DateTime::from_timestamp_millis(created).unwrap().to_rfc3339(),
        "actor": {"type": "unauthenticated_user_actor", "unauthenticated_email_address": "alice@example.com", "ip_address": "203.0.113.5"}
    });
    (id, created, activity)
}

impl Feed {
    fn new(settings: &DetectionSettings, only: &str) -> Feed {
        let mut set = load_all(&settings.rule_dirs).unwrap();
        set.retain(|r| r.meta.id == only);
        Feed {
            engine: Engine::new(&set, settings).unwrap(),
        }
    }

    fn feed(&mut self, item: &(String, i64, Value), arrived: i64) -> Vec<Finding> {
        self.evaluate(item, arrived, false)
    }

    fn replay(&mut self, item: &(String, i64, Value)) -> Vec<Finding> {
        self.evaluate(item, item.1, true)
    }

    fn evaluate(
        &mut self,
        item: &(String, i64, Value),
        arrived: i64,
        replay: bool,
    ) -> Vec<Finding> {
        let context = JournalContext::default();
        self.engine.evaluate(&Input {
            id: &item.0,
            created_at_ms: item.1,
            activity: &item.2,
            context: &context,
            journaled_at_ms: arrived,
            backfill: false,
            replay,
        })
    }
}

fn uids(findings: &[Finding]) -> Vec<String> {
    findings.iter().map(|f| f.uid.clone()).collect()
}

#[test]
fn same_activities_in_the_same_order_give_the_same_findings() {
    let settings = DetectionSettings::default();
    let activities: Vec<_> = (0..40).map(|i| failure(i, i as i64 * 7)).collect();
    let run = || {
        let mut feed = Feed::new(&settings, "auth-failure-burst");
        let mut out = Vec::new();
        for a in &activities {
            out.extend(feed.feed(a, a.1));
        }
        uids(&out)
    };
    let first = run();
    assert!(first.len() >= 2, "{first:?}");
    assert_eq!(first, run());
}

#[test]
fn a_duplicate_never_counts_twice() {
    let settings = DetectionSettings::default();
    let mut feed = Feed::new(&settings, "auth-failure-burst");
    let a = failure(1, 0);
    for _ in 0..10 {
        assert!(feed.feed(&a, a.1).is_empty());
    }
    assert_eq!(feed.engine.held(), 1);
}

#[test]
fn a_late_arrival_that_completes_a_window_fires_anchored_in_its_window() {
    let settings = DetectionSettings::default();
    let mut feed = Feed::new(&settings, "auth-failure-burst");
    let all: Vec<_> = (0..5).map(|i| failure(i, i as i64 * 10)).collect();
    for (i, a) in all.iter().enumerate() {
        if i != 1 {
            assert!(feed.feed(a, a.1).is_empty());
        }
    }
    // The second failure arrives 50 minutes late: the window [0, 40] is
    // complete now, anchored at the newest activity of that window.
    let findings = feed.feed(&all[1], T0 + 90 * 60_000);
    assert_eq!(findings.len(), 1);
    let f = &findings[0];
    assert_eq!(&*f.anchor.id, "activity_0004");
    assert_eq!(f.related_count, 5);
    assert!(!f.retrospective);
    // In arrival order the same five give the same uid.
    let mut in_order = Feed::new(&settings, "auth-failure-burst");
    let mut got = Vec::new();
    for a in &all {
        got.extend(in_order.feed(a, a.1));
    }
    assert_eq!(uids(&got), uids(&findings));
}

#[test]
fn suppression_turns_a_burst_into_one_finding_per_window() {
    let settings = DetectionSettings::default();
    let mut feed = Feed::new(&settings, "auth-failure-burst");
    let mut findings = Vec::new();
    // 10,000 failures in 100 minutes (one every 0.6 s).
    for i in 0..10_000 {
        let created = T0 + i as i64 * 600;
        let mut a = failure(i, 0);
        a.1 = created;
        findings.extend(feed.feed(&a, created));
    }
    // Suppress 1 h: a finding at the fifth failure, the next one an hour later.
    assert_eq!(findings.len(), 2, "{:?}", uids(&findings));
}

#[test]
fn a_restart_rebuilt_from_the_journal_does_not_fire_twice() {
    let settings = DetectionSettings::default();
    // A failure every 4 minutes for 100 minutes: 5 in an hour at the 5th
    // (minute 16), suppressed for an hour, again at minute 76.
    let all: Vec<_> = (0..25).map(|i| failure(i, i as i64 * 4)).collect();
    let mut whole = Feed::new(&settings, "auth-failure-burst");
    let mut expected = Vec::new();
    for a in &all {
        expected.extend(whole.feed(a, a.1));
    }
    let anchors: Vec<&str> = expected.iter().map(|f| &*f.anchor.id).collect();
    assert_eq!(anchors, ["activity_0004", "activity_0019"]);
    // Killed after the 8th activity (cursor there, the first finding
    // journaled). The restart restores the journal's findings and re-feeds
    // a history cut mid-burst (from the 4th activity): the cut window
    // completes at the 8th, which must neither fire nor suppress.
    let mut restarted = Feed::new(&settings, "auth-failure-burst");
    for f in &expected[..1] {
        let journaled = f.to_plain_json();
        restarted
            .engine
            .restore(&FiredAnchor::from_plain_json(&journaled, f.detected_ms).unwrap());
    }
    for a in &all[3..8] {
        assert!(restarted.replay(a).is_empty());
    }
    let mut after = Vec::new();
    for a in &all[8..] {
        after.extend(restarted.feed(a, a.1));
    }
    assert_eq!(uids(&after), uids(&expected[1..]));
}

#[test]
fn findings_from_old_history_are_retrospective() {
    let settings = DetectionSettings::default();
    let mut feed = Feed::new(&settings, "auth-failure-burst");
    let mut findings = Vec::new();
    for i in 0..5 {
        let a = failure(i, i as i64);
        findings.extend(feed.feed(&a, a.1 + 30 * 86_400_000));
    }
    assert_eq!(findings.len(), 1);
    assert!(findings[0].retrospective);
    assert_eq!(
        findings[0].to_ocsf()["finding_info"]["types"],
        json!(["Retrospective"])
    );
}

#[test]
fn allow_lists_and_tuning_apply_before_the_rule_fires() {
    let mut settings = DetectionSettings::default();
    settings.rules.push(RuleTuning {
        id: "auth-failure-burst".into(),
        threshold: Some(3),
        window: Some(Duration::from_secs(600)),
        ..Default::default()
    });
    let mut feed = Feed::new(&settings, "auth-failure-burst");
    let mut findings = Vec::new();
    for i in 0..3 {
        let a = failure(i, i as i64);
        findings.extend(feed.feed(&a, a.1));
    }
    assert_eq!(findings.len(), 1, "threshold 3 in 10 minutes");

    settings.allow.networks = vec!["203.0.113.0/24".parse().unwrap()];
    let mut feed = Feed::new(&settings, "auth-failure-burst");
    for i in 0..10 {
        let a = failure(i, i as i64);
        assert!(feed.feed(&a, a.1).is_empty(), "allowed network");
    }
    assert_eq!(feed.engine.held(), 0);
}

#[test]
fn state_is_forgotten_once_no_window_needs_it() {
    let settings = DetectionSettings::default();
    let mut feed = Feed::new(&settings, "auth-failure-burst");
    // One failure a day for 30 days: never a burst, and old ones go.
    for i in 0..30 {
        let a = failure(i, i as i64 * 1440);
        feed.feed(&a, a.1);
    }
    assert!(feed.engine.held() <= 2, "held {}", feed.engine.held());
}

#[test]
fn the_rebuild_horizon_covers_the_longest_window() {
    let settings = DetectionSettings::default();
    let set = load_all(&[]).unwrap();
    let engine = Engine::new(&set, &settings).unwrap();
    // First-seen rules look back 14 days.
    assert!(engine.rebuild_horizon() >= Duration::from_secs(14 * 86_400));
}

/// An operator rule file: loaded, tuned and listed with its source.
#[test]
fn operator_rules_load_from_a_directory_and_replace_built_ins_by_id() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mine.yml"),
        "title: Chat deleted\nid: my-chat-deleted\nlogsource: {product: claude}\ndetection:\n  sel:\n    type: claude_chat_deleted\n  condition: sel\nlevel: low\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("override.yml"),
        "title: Admin key (ours)\nid: admin-api-key-created\nlogsource: {product: claude}\ndetection:\n  sel:\n    type: admin_api_key_created\n  condition: sel\nlevel: critical\n",
    )
    .unwrap();
    let dirs = vec![dir.path().to_path_buf()];
    let set = load_all(&dirs).unwrap();
    let mine = set.get("my-chat-deleted").unwrap();
    assert_eq!(
        mine.meta.origin.to_string(),
        dir.path().join("mine.yml").display().to_string()
    );
    let replaced = set.get("admin-api-key-created").unwrap();
    assert_eq!(replaced.meta.title, "Admin key (ours)");
    assert_eq!(
        set.ids()
            .filter(|id| *id == "admin-api-key-created")
            .count(),
        1
    );
}
