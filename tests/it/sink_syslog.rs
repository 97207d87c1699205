//! The syslog sink against a real receiver over TLS: rsyslogd where it is
//! installed (`.ci/run` installs it), else the in-process octet-counting
//! receiver (`support::syslog`); each test says which it used. Events are
//! checked one by one: every id there, every message whole (its body is the
//! journal's payload byte for byte), duplicates within the documented bound.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use claudit::config::SinkConfig;
use claudit::store::JournalRecord;

use crate::support::config::{ConfigFile, Table, sink, sink_config, source};
use crate::support::daemon::{Daemon, run_command};
use crate::support::journal::{Journal, Page, activity, record};
use crate::support::sink_task::{SinkTasks, run_until_caught_up};
use crate::support::syslog::{FallbackReceiver, Pki, Received, SyslogReceiver};
use crate::support::wait::Wait;

/// The sink's default `resend_window`.
const RESEND_WINDOW: usize = 8 << 20;

/// Records `act-00000`.. with raw activities of about 300 bytes.
fn rows(range: std::ops::Range<usize>) -> Vec<JournalRecord> {
    range
        .map(|i| {
            let id = format!("act-{i:05}");
            record(&id, 1_746_864_000_000 + i as i64, activity(&id, 300))
        })
        .collect()
}

/// A syslog sink table to the receiver on `port`, trusting the test CA,
/// sending the raw activities.
fn syslog_table(name: &str, port: u16, pki: &Pki) -> Table {
    sink(name, "syslog")
        .set("address", format!("127.0.0.1:{port}"))
        .path("tls_ca_file", &pki.ca)
        .set("format", "raw")
        .set("batch_linger", "0s")
}

fn syslog_sink(name: &str, port: u16, pki: &Pki, batch_max_events: i64) -> SinkConfig {
    sink_config(
        syslog_table(name, port, pki).set("batch_max_events", batch_max_events),
        &[],
    )
}

/// What a receiver holds against the journal: (missing ids, extra copies
/// and their bytes), after checking every message is one of the journal's
/// events, whole, with its id and seq in the structured data.
fn tally(received: &[Received], expected: &[JournalRecord]) -> (Vec<String>, usize, usize) {
    let by_id: HashMap<&str, (usize, &JournalRecord)> = expected
        .iter()
        .enumerate()
        .map(|(i, r)| (r.activity_id.as_str(), (i, r)))
        .collect();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let (mut extra, mut extra_bytes) = (0, 0);
    for m in received {
        // A daemon with detections on sends its findings too, as their own
        // stream (MSGID "finding", the plain JSON finding): each is a
        // finding, and none counts as an activity.
        if m.msgid == "finding" {
            let finding: serde_json::Value = serde_json::from_str(&m.msg)
                .unwrap_or_else(|e| panic!("a finding message that is not JSON ({e}): {m:?}"));
            assert_eq!(finding["record"], "claudit.finding", "{m:?}");
            continue;
        }
        let id = m
            .sd_param("id")
            .unwrap_or_else(|| panic!("a message without the id parameter: {m:?}"));
        let Some(&(i, record)) = by_id.get(id.as_str()) else {
            panic!("a message for an id the journal does not have: {m:?}");
        };
        assert_eq!(m.msgid, "raw", "{m:?}");
        assert_eq!(m.sd_param("seq"), Some((i + 1).to_string()), "{m:?}");
        assert_eq!(m.msg, record.raw, "message of {id} is not the event, whole");
        let count = seen.entry(record.activity_id.as_str()).or_default();
        *count += 1;
        if *count > 1 {
            extra += 1;
            extra_bytes += m.msg.len() + m.structured_data.len() + 80;
        }
    }
    let missing = expected
        .iter()
        .filter(|r| !seen.contains_key(r.activity_id.as_str()))
        .map(|r| r.activity_id.clone())
        .collect();
    (missing, extra, extra_bytes)
}

/// 50,000 events through a receiver that is restarted while they flow:
/// every event arrives whole, none is lost, and what came twice is within
/// the resend window the sink documents. rsyslog where installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_events_over_tls_arrive_whole_through_a_receiver_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("pki"));
    let receiver = SyslogReceiver::start(dir.path(), &pki).await;
    fifty_thousand_through_a_restart(receiver, &pki).await;
}

/// The same through the in-process receiver, whose restart drops its
/// connections with what it had not read yet (the kernel resets them): the
/// events lost with them come again from the resend window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_events_survive_a_receiver_dropping_unread_data() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("pki"));
    eprintln!("syslog receiver: the in-process receiver (resets its connections on restart)");
    let receiver = SyslogReceiver::Fallback(FallbackReceiver::start(&pki, false).await);
    fifty_thousand_through_a_restart(receiver, &pki).await;
}

async fn fifty_thousand_through_a_restart(mut receiver: SyslogReceiver, pki: &Pki) {
    let all = rows(0..50_000);
    let journal = Journal::temp();
    journal.commit(&Page::open(), &all[..30_000]);
    let config = syslog_sink("syslog", receiver.port(), pki, 1000);
    let started = Instant::now();
    let metrics = std::sync::Arc::new(claudit::metrics::Metrics::default());
    let mut tasks = SinkTasks::start_with_metrics(&journal.shared(), vec![config], metrics.clone());

    tasks
        .until(
            "10,000 events at the receiver",
            Wait::up_to(Duration::from_secs(60)).every(Duration::from_millis(5)),
            async || {
                let n = receiver.messages().len();
                (n >= 10_000).then_some(()).ok_or(format!("{n} received"))
            },
        )
        .await;
    let cursor_at_restart = journal.cursor("syslog").seq;
    receiver.restart().await;
    journal.commit(&Page::open(), &all[30_000..]);
    tasks.head.send_replace(1);
    tasks
        .until(
            "every event at the receiver",
            Wait::up_to(Duration::from_secs(120)).every(Duration::from_millis(100)),
            async || {
                let (missing, _, _) = tally(&receiver.messages(), &all);
                let cursor = journal.cursor("syslog").seq;
                (missing.is_empty() && cursor == 50_000)
                    .then_some(())
                    .ok_or(format!("{} missing, cursor at {cursor}", missing.len()))
            },
        )
        .await;
    tasks.stop().await;
    let elapsed = started.elapsed();

    let received = receiver.messages();
    let (missing, extra, extra_bytes) = tally(&received, &all);
    eprintln!(
        "{}: {} messages for 50,000 events in {elapsed:?}; restarted with the cursor at \
         {cursor_at_restart}; {extra} sent twice ({extra_bytes} bytes); {} failed attempts",
        receiver.name(),
        received.len(),
        metrics.sink("syslog").retries.get()
    );
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert!(
        extra_bytes <= RESEND_WINDOW,
        "{extra} duplicates ({extra_bytes} bytes) exceed the resend window"
    );
    assert_eq!(journal.dead_letter_count("syslog"), 0);
}

/// `claudit run` (the release binary) SIGKILLed while it sends: after a
/// restart every event is at the receiver, whole, and at most one batch
/// came twice (the one acknowledged by TCP whose cursor was not committed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_stream_sends_at_most_one_batch_twice() {
    const BATCH: i64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("pki"));
    let receiver = SyslogReceiver::start(dir.path(), &pki).await;
    let db = dir.path().join("state.db");
    let journal = Journal::at(&db);
    let all = rows(0..50_000);
    // The window is complete up to 2033: the source has nothing to read.
    journal.commit(&Page::default(), &all);
    // Nothing listens on the source's address: it never gets a page.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = ConfigFile::new(&db)
        .source(
            source("test")
                .set("api_key", "${SYSLOG_TEST_KEY}")
                .set("base_url", format!("http://127.0.0.1:{closed_port}")),
        )
        .sink(syslog_table("syslog", receiver.port(), &pki).set("batch_max_events", BATCH))
        .table("server", Table::default().set("listen", "127.0.0.1:0"))
        .write(&dir.path().join("claudit.toml"));
    let start = |n: usize| {
        let mut command = run_command(&config);
        command.env("SYSLOG_TEST_KEY", "sk-ant-admin01-syslog-test");
        Daemon::spawn(command, &dir.path().join(format!("daemon-{n}.log")))
    };

    let mut daemon = start(1);
    let cursor = |db: &Path| {
        claudit::store::Store::open_readonly(db)
            .ok()
            .and_then(|s| s.sink_cursor("syslog").ok())
            .map_or(0, |c| c.seq)
    };
    Wait::up_to(Duration::from_secs(60))
        .every(Duration::from_millis(2))
        .until("the daemon to deliver 2,000 events", async || {
            let seq = cursor(&db);
            (seq >= 2_000)
                .then_some(())
                .ok_or(format!("cursor at {seq}"))
        })
        .await;
    daemon.kill();
    let killed_at = cursor(&db);
    assert!(
        killed_at < 50_000,
        "the daemon delivered everything before the SIGKILL; the test did not test a crash"
    );

    let mut daemon = start(2);
    Wait::up_to(Duration::from_secs(120))
        .every(Duration::from_millis(100))
        .until(
            "every event at the receiver after the restart",
            async || {
                let (missing, _, _) = tally(&receiver.messages(), &all);
                let seq = cursor(&db);
                (missing.is_empty() && seq == 50_000)
                    .then_some(())
                    .ok_or(format!("{} missing, cursor at {seq}", missing.len()))
            },
        )
        .await;
    daemon.stop(Duration::from_secs(30));

    let received = receiver.messages();
    let (missing, extra, _) = tally(&received, &all);
    eprintln!(
        "{}: killed with the cursor at {killed_at}; {} messages for 50,000 events, {extra} \
         sent twice",
        receiver.name(),
        received.len()
    );
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert!(
        extra as i64 <= BATCH,
        "{extra} duplicates after one SIGKILL; at most one batch ({BATCH}) may come twice"
    );
}

/// An event over `max_message_bytes` is dead-lettered with the reason, not
/// truncated; the events around it are delivered.
#[tokio::test]
async fn an_oversize_event_is_dead_lettered_never_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("pki"));
    let receiver = FallbackReceiver::start(&pki, false).await;
    let mut records = rows(0..3);
    records[1].raw = activity("act-00001", 9_000);
    let journal = Journal::temp();
    journal.commit(&Page::default(), &records);
    let (seq, head, dead) =
        run_until_caught_up(&journal, syslog_sink("syslog", receiver.port, &pki, 10)).await;
    assert_eq!((seq, head, dead), (3, 3, 1));
    let letters = journal.dead_letters("syslog");
    assert_eq!(letters[0].0, "act-00001");
    assert!(
        letters[0].1.contains("max_message_bytes (8192)"),
        "{}",
        letters[0].1
    );
    let received = receiver.messages();
    let ids: Vec<_> = received.iter().filter_map(|m| m.sd_param("id")).collect();
    assert_eq!(ids, ["act-00000", "act-00002"]);
    assert_eq!(received[0].msg, records[0].raw);
    assert_eq!(receiver.torn(), 0);
}

/// A receiver that requires a client certificate gets one from
/// `tls_client_cert_file`; `check --connect` names what to set when the
/// certificate is missing or the receiver's CA is not trusted.
#[tokio::test]
async fn client_certificates_and_untrusted_receivers() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("pki"));
    eprintln!("syslog receiver: the in-process receiver, requiring a client certificate");
    let receiver = FallbackReceiver::start(&pki, true).await;
    let with_cert = sink_config(
        syslog_table("syslog", receiver.port, &pki)
            .path("tls_client_cert_file", &pki.client_cert)
            .path("tls_client_key_file", &pki.client_key),
        &[],
    );
    let checked = claudit::sinks::check_connection(&with_cert).await.unwrap();
    assert!(
        checked
            .as_ref()
            .is_ok_and(|c| c.contains("certificate verified")),
        "{checked:?}"
    );
    let journal = Journal::temp();
    let records = rows(0..10);
    journal.commit(&Page::default(), &records);
    let (seq, _, dead) = run_until_caught_up(&journal, with_cert).await;
    assert_eq!((seq, dead), (10, 0));
    let (missing, extra, _) = tally(&receiver.messages(), &records);
    assert!(missing.is_empty() && extra == 0, "{missing:?} {extra}");

    let without = sink_config(syslog_table("syslog", receiver.port, &pki), &[]);
    let checked = claudit::sinks::check_connection(&without).await.unwrap();
    let error = checked.unwrap_err();
    assert!(error.contains("tls_client_cert_file"), "{error}");

    let untrusted = sink_config(
        syslog_table("syslog", receiver.port, &pki).path("tls_ca_file", &pki.other_ca),
        &[],
    );
    let error = claudit::sinks::check_connection(&untrusted)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        error.contains("not trusted") && error.contains("tls_ca_file"),
        "{error}"
    );
}
