//! The command line as an operator uses it: help for every command, `check`
//! exit codes, `status` text and JSON, `backfill` (resumable), `map`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use claudit::sim::{SimConfig, Simulator};
use claudit::store::Store;

use crate::support::config::{ConfigFile, sink, source};
use crate::support::daemon;

const KEY: &str = "sk-ant-api01-cli-test-secret-key";

fn claudit(args: &[&str]) -> Output {
    Command::new(daemon::CLAUDIT)
        .args(["--log-format", "json"])
        .args(args)
        .env("CLI_TEST_KEY", KEY)
        .output()
        .expect("run claudit")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write_config(dir: &Path, base_url: &str) -> std::path::PathBuf {
    ConfigFile::new(&dir.join("state.db"))
        .source(
            source("acme")
                .set("base_url", base_url)
                .set("api_key", "${CLI_TEST_KEY}"),
        )
        .sink(sink("archive", "file").path("path", &dir.join("events.ndjson")))
        .write(&dir.join("claudit.toml"))
}

#[test]
fn every_command_has_help() {
    let out = claudit(&["--help"]);
    assert!(out.status.success());
    let top = text(&out);
    for cmd in ["run", "check", "status", "backfill", "demo", "map"] {
        assert!(top.contains(cmd), "top-level help lists {cmd}");
        let out = claudit(&[cmd, "--help"]);
        assert!(out.status.success(), "{cmd} --help");
        assert!(text(&out).contains("Usage:"), "{cmd} --help");
    }
    let backfill = text(&claudit(&["backfill", "--help"]));
    for flag in ["--config", "--source", "--since", "--until"] {
        assert!(backfill.contains(flag), "backfill --help documents {flag}");
    }
}

#[test]
fn bad_arguments_name_the_problem() {
    let out = claudit(&["run"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--config"), "{}", text(&out));
    let out = claudit(&["frobnicate"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("unrecognized subcommand"),
        "{}",
        text(&out)
    );
}

#[test]
fn check_exits_0_when_valid_and_78_listing_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_config(dir.path(), "http://127.0.0.1:9");
    let out = claudit(&["check", "--config", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("valid (1 sources, 1 sinks)"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        r#"
[state]
path = "/tmp/x.db"
retension = "7d"

[[sources]]
name = "acme"
api_key = "${CLI_TEST_KEY}"
window = "five minutes"

[[sinks]]
name = "archive"
type = "fiel"
path = "/tmp/x.ndjson"
"#,
    )
    .unwrap();
    let out = claudit(&["check", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let msg = text(&out);
    for expected in [
        "retension",
        "retention",
        "sources[0].window",
        "sinks[0].type",
        "file",
    ] {
        assert!(
            msg.contains(expected),
            "check output names {expected}: {msg}"
        );
    }
    daemon::assert_no_secret("check's output", &msg, &[KEY]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_reads_a_range_and_resumes_and_status_reports_it() {
    let sim = Simulator::start(SimConfig {
        api_key: KEY.into(),
        backlog: 3_000,
        backlog_span: Duration::from_secs(6 * 3600),
        live_per_second: 0.0,
        late_fraction: 0.0,
        self_activity: false,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.base_url());
    let cfg = config.to_str().unwrap().to_string();
    let now = chrono::Utc::now();
    let since = claudit::model::format_time(now - chrono::Duration::hours(5));
    let until = claudit::model::format_time(now - chrono::Duration::hours(1));

    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            claudit(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
    };
    let args = vec![
        "backfill".into(),
        "--config".into(),
        cfg.clone(),
        "--source".into(),
        "acme".into(),
        "--since".into(),
        since.clone(),
        "--until".into(),
        until.clone(),
    ];
    let out = run(args.clone()).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("backfill complete"), "{}", text(&out));

    let (since_ms, until_ms) = (
        claudit::model::parse_time(&since)
            .unwrap()
            .timestamp_millis(),
        claudit::model::parse_time(&until)
            .unwrap()
            .timestamp_millis(),
    );
    let expected: std::collections::BTreeSet<String> = sim
        .activities()
        .into_iter()
        .filter(|a| (since_ms..until_ms).contains(&a.created_at.timestamp_millis()))
        .map(|a| a.id)
        .collect();
    let journaled: std::collections::BTreeSet<String> =
        Store::open_readonly(&dir.path().join("state.db"))
            .unwrap()
            .read_batch(
                0,
                1_000_000,
                usize::MAX,
                &claudit::sinks::render::Payload::Raw,
            )
            .unwrap()
            .into_iter()
            .map(|r| r.activity_id)
            .collect();
    assert!(expected.len() > 1_500, "{}", expected.len());
    assert_eq!(journaled, expected, "exactly the range, nothing outside it");

    // A rerun of the same range resumes: already complete, nothing new.
    let out = run(args).await.unwrap();
    assert!(
        text(&out).contains("backfill complete: ")
            && text(&out).contains(&format!("{} new records", expected.len())),
        "{}",
        text(&out)
    );

    // Status (text and JSON) reads the same database.
    let out = run(vec!["status".into(), "--config".into(), cfg.clone()])
        .await
        .unwrap();
    let status = text(&out);
    assert!(out.status.success(), "{status}");
    assert!(
        status.contains("source acme") && status.contains("sink archive"),
        "{status}"
    );
    assert!(
        status.contains(&format!("{} events behind", expected.len())),
        "the sink has not run yet: {status}"
    );
    let out = run(vec![
        "status".into(),
        "--config".into(),
        cfg,
        "--json".into(),
    ])
    .await
    .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["journal_rows"], expected.len() as i64);
    assert_eq!(json["sinks"][0]["dead_letters"], 0);
    daemon::assert_no_secret("status --json", &text(&out), &[KEY]);
    sim.shutdown().await;
}

#[test]
fn backfill_rejects_bad_times_with_the_accepted_forms() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9");
    let out = claudit(&[
        "backfill",
        "--config",
        config.to_str().unwrap(),
        "--source",
        "acme",
        "--since",
        "last tuesday",
    ]);
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("--since") && msg.contains("RFC 3339") && msg.contains("7d"),
        "{msg}"
    );
    let out = claudit(&[
        "backfill",
        "--config",
        config.to_str().unwrap(),
        "--source",
        "nope",
        "--since",
        "1d",
    ]);
    assert!(
        text(&out).contains("no source named \"nope\"") && text(&out).contains("acme"),
        "{}",
        text(&out)
    );
}

#[test]
fn map_turns_activities_into_ocsf_and_names_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(
        &input,
        r#"{"id":"activity_1","type":"sso_login_succeeded","created_at":"2026-04-10T08:09:10Z","organization_id":null,"organization_uuid":null,"actor":{"type":"user_actor","email_address":"a@example.com","user_id":"user_1","ip_address":"192.0.2.34","user_agent":"Mozilla/5.0"}}
"#,
    )
    .unwrap();
    let out = claudit(&["map", input.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let event: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(event["class_uid"], 3002);
    assert_eq!(event["metadata"]["original_event_uid"], "activity_1");

    std::fs::write(&input, "{\"id\":\"a\"}\nnot json\n").unwrap();
    let out = claudit(&["map", input.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("in.ndjson:2"), "{}", text(&out));
}

/// A vendor layout combined with what would break the vendor's content:
/// `claudit check` names each key with its fix and exits 78.
#[test]
fn check_refuses_a_vendor_layout_the_vendors_content_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = ConfigFile::new(&dir.path().join("state.db"))
        .source(source("acme").set("api_key", "${CLI_TEST_KEY}"))
        .sink(
            sink("splunk", "splunk_hec")
                .set("url", "https://splunk.example.com:8088")
                .set("token", "t")
                .set("layout", "splunk_app")
                .set("format", "ocsf"),
        )
        .sink(
            sink("sentinel", "sentinel")
                .set("layout", "sentinel_bluevoyant")
                .set("endpoint", "https://dce.eastus-1.ingest.monitor.azure.com")
                .set("dcr_immutable_id", "dcr-0")
                .set("stream", "Custom-ClaudeCompliance_CL")
                .set("tenant_id", "t")
                .set("client_id", "c")
                .set("client_secret", "s"),
        )
        .sink(
            sink("elastic", "elasticsearch")
                .set("url", "https://es.example.com:9200")
                .set("api_key", "k")
                .set("layout", "elastic_integration")
                .set("index", "logs-claudit.ocsf-default"),
        )
        .write(&dir.path().join("claudit.toml"));
    let out = claudit(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let msg = text(&out);
    for expected in [
        "sinks[0].format",
        "sinks[1].stream",
        "Custom-BV_ClaudeCompliance_ComplianceActivities_CL",
        "sinks[2].index",
        "logs-anthropic.audit-",
    ] {
        assert!(
            msg.contains(expected),
            "check output names {expected}: {msg}"
        );
    }
}
