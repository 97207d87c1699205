//! The file sink's crash recovery through the real `SinkTask` and a real
//! SQLite journal: whatever a killed batch left past the committed file
//! length (whole lines, then possibly one torn line) must end up as every
//! record exactly once, each on its own line.

use std::path::Path;

use claudit::config::{FileSinkConfig, SinkKind};
use claudit::store::Store;

use crate::support::journal::{Journal, ocsf_event};
use crate::support::sink_task::{run_sink_until, sink_settings};

fn file_sink(path: &Path) -> SinkKind {
    SinkKind::File(FileSinkConfig {
        path: path.to_path_buf(),
        max_bytes: 0,
        max_files: 0,
    })
}

/// Each line's `metadata.uid`, failing on a line that is not JSON.
fn uids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            v["metadata"]["uid"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Journals five records, writes `whole` of their lines plus `torn` bytes of
/// the next one past a committed length of 0 (what a SIGKILL during a write
/// leaves), then runs the sink to the head of the journal.
async fn recover_after(whole: usize, torn: usize) -> Vec<String> {
    let records: Vec<(String, String)> = (0..5)
        .map(|i| (format!("a{i}"), ocsf_event(&format!("a{i}"), 40 + i * 7)))
        .collect();
    let j = Journal::with_payloads(&records);
    let out = j.dir().join("events.ndjson");
    let mut bytes = Vec::new();
    for (_, payload) in &records[..whole] {
        bytes.extend_from_slice(payload.as_bytes());
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(&records[whole].1.as_bytes()[..torn]);
    std::fs::write(&out, &bytes).unwrap();
    // The cursor as the previous run committed it: nothing delivered, file
    // length 0.
    Store::open(&j.path)
        .unwrap()
        .advance_sink("file", 0, Some(0), 0, &[], 1)
        .unwrap();

    let head = j.head();
    run_sink_until(
        &j,
        sink_settings("file", file_sink(&out), 2, 1 << 20),
        |j| j.cursor("file").seq == head,
    )
    .await;
    uids(&out)
}

#[tokio::test]
async fn a_torn_line_after_whole_lines_is_cut_and_rewritten_once() {
    // The torn record is the third: the lines before it are kept, and it is
    // the one that crosses the file's tail (the case a byte-limited read
    // missed, leaving a torn line in the middle of the file).
    let expected: Vec<String> = (0..5).map(|i| format!("a{i}")).collect();
    assert_eq!(recover_after(2, 30).await, expected);
}

#[tokio::test]
async fn a_torn_first_line_is_cut_and_rewritten_once() {
    let expected: Vec<String> = (0..5).map(|i| format!("a{i}")).collect();
    assert_eq!(recover_after(0, 10).await, expected);
}

#[tokio::test]
async fn whole_lines_of_an_uncommitted_batch_are_not_written_twice() {
    let expected: Vec<String> = (0..5).map(|i| format!("a{i}")).collect();
    assert_eq!(recover_after(3, 0).await, expected);
}
