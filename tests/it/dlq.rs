//! Dead letters end to end: an Elasticsearch sink task dead-letters the
//! documents a (wiremock) cluster rejects with 400; `claudit status` counts
//! them; `claudit dlq list|show` shows them; `claudit dlq replay` keeps them
//! while the cluster still rejects them and removes them once it accepts;
//! `claudit replay` re-sends a time range without moving the cursor;
//! `claudit dlq purge` needs --yes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::config::{ConfigFile, sink, source};
use crate::support::daemon;
use crate::support::elasticsearch as es;
use crate::support::journal::{Journal, Page};
use crate::support::sink_task::SinkTasks;
use crate::support::wait::Wait;

const API_KEY: &str = "ZGxxLXRlc3Q6c2VjcmV0LWtleS12YWx1ZQ==";

fn write_config(dir: &Path, url: &str) -> PathBuf {
    ConfigFile::new(&dir.join("state.db"))
        .source(source("acme").set("api_key", "${DLQ_TEST_COMPLIANCE_KEY}"))
        .sink(
            sink("es", "elasticsearch")
                .set("url", url)
                .set("index", es::INDEX)
                .set("api_key", "${DLQ_TEST_ES_KEY}")
                .set("batch_linger", "0s"),
        )
        .write(&dir.join("claudit.toml"))
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn claudit(config: &Path, args: &[&str]) -> Out {
    let out = tokio::process::Command::new(daemon::CLAUDIT)
        .args(["--log-format", "json"])
        .args(args)
        .arg("--config")
        .arg(config)
        .env("DLQ_TEST_COMPLIANCE_KEY", "sk-ant-api01-unused")
        .env("DLQ_TEST_ES_KEY", API_KEY)
        .env_remove("CLAUDIT_CONFIG")
        .output()
        .await
        .unwrap();
    let out = Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    daemon::assert_no_secret("stdout", &out.stdout, &[API_KEY]);
    daemon::assert_no_secret("stderr", &out.stderr, &[API_KEY]);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_counted_replayed_and_purged() {
    let (server, emulator) = es::start(&format!("ApiKey {API_KEY}")).await;
    {
        let mut st = emulator.state();
        st.reject_ids.insert("activity_00002".into());
        st.reject_ids.insert("activity_00004".into());
    }
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &server.uri());
    let journal = Journal::at(&dir.path().join("state.db"));
    let records: Vec<_> = (0..6).map(es::journal_record).collect();
    journal.commit(&Page::open(), &records);

    // The daemon's sink task delivers 4 and dead-letters 2.
    let config = claudit::config::load_str(
        &std::fs::read_to_string(&config_path).unwrap(),
        &config_path,
        &|name| match name {
            "DLQ_TEST_COMPLIANCE_KEY" => Some("sk-ant-api01-unused".into()),
            "DLQ_TEST_ES_KEY" => Some(API_KEY.into()),
            _ => None,
        },
    )
    .unwrap();
    let store = journal.shared();
    let mut task = SinkTasks::start(&store, vec![config.sinks[0].clone()]);
    task.until(
        "the sink at the journal head",
        Wait::up_to(Duration::from_secs(30)),
        async || store.call(|s| s.sink_cursor("es")).await.unwrap().seq == 6,
    )
    .await;
    let stats = task.stop().await.remove(0);
    assert_eq!((stats.delivered, stats.dead_lettered), (4, 2));
    assert_eq!(emulator.stored_ids().len(), 4);

    // Visible in status.
    let status = claudit(&config_path, &["status"]).await;
    assert!(status.ok, "{}", status.stderr);
    assert!(
        status.stdout.contains("dead letters:    2"),
        "{}",
        status.stdout
    );

    // Listed, and shown in full with the payload.
    let list = claudit(&config_path, &["dlq", "list", "--sink", "es"]).await;
    assert!(list.ok, "{}", list.stderr);
    assert!(list.stdout.contains("activity_00002") && list.stdout.contains("activity_00004"));
    assert!(
        list.stdout.contains("mapper_parsing_exception"),
        "{}",
        list.stdout
    );
    let dead = store.call(|s| s.dead_letters("es", None)).await.unwrap();
    assert_eq!(dead.len(), 2);
    let first_id = dead[0].id.to_string();
    let show = claudit(
        &config_path,
        &["dlq", "show", "--sink", "es", "--id", &first_id],
    )
    .await;
    assert!(show.ok, "{}", show.stderr);
    assert!(
        show.stdout.contains("failed to parse field"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout
            .contains(r#""metadata":{"uid":"activity_00002"}"#),
        "{}",
        show.stdout
    );
    let missing = claudit(
        &config_path,
        &["dlq", "show", "--sink", "es", "--id", "999"],
    )
    .await;
    assert!(!missing.ok && missing.stderr.contains("no dead letter with id 999"));

    // Replayed while the cluster still rejects them: kept, with the new answer.
    let again = claudit(&config_path, &["dlq", "replay", "--sink", "es"]).await;
    assert!(!again.ok);
    assert!(
        again
            .stdout
            .contains("0 delivered and removed, 2 rejected again"),
        "{}",
        again.stdout
    );
    assert_eq!(store.call(|s| s.dead_letter_count("es")).await.unwrap(), 2);

    // The mapping is fixed: replayed, removed, delivered once.
    emulator.state().reject_ids.clear();
    let fixed = claudit(&config_path, &["dlq", "replay", "--sink", "es"]).await;
    assert!(fixed.ok, "{} {}", fixed.stdout, fixed.stderr);
    assert!(
        fixed.stdout.contains("2 delivered and removed"),
        "{}",
        fixed.stdout
    );
    assert_eq!(store.call(|s| s.dead_letter_count("es")).await.unwrap(), 0);
    let mut stored = emulator.stored_ids();
    stored.sort();
    assert_eq!(
        stored,
        (0..6)
            .map(|n| es::journal_record(n).activity_id)
            .collect::<Vec<_>>()
    );
    let status = claudit(&config_path, &["status"]).await;
    assert!(
        status.stdout.contains("dead letters:    0"),
        "{}",
        status.stdout
    );
    let list = claudit(&config_path, &["dlq", "list", "--sink", "es"]).await;
    assert!(list.stdout.contains("no dead letters"), "{}", list.stdout);

    // `claudit replay` re-sends a created_at range; the cursor stays put.
    let cursor_before = store.call(|s| s.sink_cursor("es")).await.unwrap();
    let conflicts_before = emulator.state().conflicts;
    let replay = claudit(
        &config_path,
        &[
            "replay",
            "--sink",
            "es",
            "--since",
            "2026-05-10T08:00:00Z",
            "--until",
            "2026-05-10T08:00:03Z",
        ],
    )
    .await;
    assert!(replay.ok, "{}", replay.stderr);
    assert!(
        replay.stdout.contains("replayed 3 records"),
        "{}",
        replay.stdout
    );
    assert_eq!(
        emulator.state().conflicts,
        conflicts_before + 3,
        "409: already there"
    );
    assert_eq!(emulator.stored_ids().len(), 6);
    let cursor_after = store.call(|s| s.sink_cursor("es")).await.unwrap();
    assert_eq!(cursor_after.seq, cursor_before.seq);
    assert_eq!(cursor_after.delivered, cursor_before.delivered);

    // A replayed record the cluster rejects becomes a dead letter.
    emulator.state().reject_ids.insert("activity_00005".into());
    let replay = claudit(
        &config_path,
        &[
            "replay",
            "--sink",
            "es",
            "--since",
            "2026-05-10T08:00:05Z",
            "--until",
            "2026-05-10T08:00:06Z",
        ],
    )
    .await;
    assert!(replay.ok, "{}", replay.stderr);
    assert!(replay.stdout.contains("1 rejected"), "{}", replay.stdout);
    assert_eq!(store.call(|s| s.dead_letter_count("es")).await.unwrap(), 1);

    // Purging needs --yes.
    let refused = claudit(&config_path, &["dlq", "purge", "--sink", "es"]).await;
    assert!(
        !refused.ok && refused.stderr.contains("--yes"),
        "{}",
        refused.stderr
    );
    assert_eq!(store.call(|s| s.dead_letter_count("es")).await.unwrap(), 1);
    let purged = claudit(&config_path, &["dlq", "purge", "--sink", "es", "--yes"]).await;
    assert!(purged.ok, "{}", purged.stderr);
    assert!(purged.stdout.contains("1 dead letter(s) purged"));
    assert_eq!(store.call(|s| s.dead_letter_count("es")).await.unwrap(), 0);

    let unknown = claudit(&config_path, &["dlq", "list", "--sink", "nope"]).await;
    assert!(!unknown.ok && unknown.stderr.contains("no sink named \"nope\""));
}
