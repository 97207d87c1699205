//! The webhook sink against a receiver that fails every request once (500)
//! and then accepts it (200), deduplicating by `webhook-id` as the README
//! tells receivers to. Every signature is then checked by an independent
//! implementation: the Standard Webhooks project's Python library
//! (`standardwebhooks`, installed by `.ci/run` in `target/webhook-venv`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::config::{sink, sink_config};
use crate::support::journal::{Journal, Page, activity, record};
use crate::support::sink_task::SinkTasks;
use crate::support::wait::Wait;

/// A test secret (24 random bytes, base64).
const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// One request as received.
#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    status: u16,
}

#[derive(Default)]
struct HookState {
    deliveries: Vec<Delivery>,
    /// Ids answered 500 once already.
    failed_once: HashSet<String>,
    /// The receiver's store: one body per webhook-id (later copies dropped).
    stored: HashMap<String, Vec<u8>>,
}

#[derive(Clone, Default)]
struct Hook(Arc<Mutex<HookState>>);

impl Respond for Hook {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let header = |name: &str| {
            req.headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        assert_eq!(header("content-type"), "application/json");
        let id = header("webhook-id");
        let mut state = self.0.lock().unwrap();
        let status = if id.contains("-check-") {
            200
        } else if state.failed_once.insert(id.clone()) {
            500
        } else {
            state
                .stored
                .entry(id.clone())
                .or_insert_with(|| req.body.clone());
            200
        };
        state.deliveries.push(Delivery {
            id,
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            body: req.body.clone(),
            status,
        });
        ResponseTemplate::new(status).set_body_string(if status == 500 {
            "temporarily unavailable"
        } else {
            "ok"
        })
    }
}

/// The Python with `standardwebhooks`: `target/webhook-venv` (what `.ci/run`
/// makes), or a `python3` that has it.
fn python_with_standardwebhooks() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/webhook-venv/bin/python");
    for python in [venv, PathBuf::from("python3")] {
        let ok = std::process::Command::new(&python)
            .args(["-c", "import standardwebhooks"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return python;
        }
    }
    panic!(
        "the Python package standardwebhooks is needed to check the signatures independently; \
         run: python3 -m venv target/webhook-venv && target/webhook-venv/bin/pip install \
         standardwebhooks (.ci/run does this)"
    );
}

const VERIFIER: &str = r#"
import base64, json, sys
from standardwebhooks.webhooks import Webhook

secret, path = sys.argv[1], sys.argv[2]
wh = Webhook(secret)
bad = 0
requests = json.load(open(path))
for r in requests:
    headers = {"webhook-id": r["id"], "webhook-timestamp": r["timestamp"],
               "webhook-signature": r["signature"]}
    body = base64.b64decode(r["body"])
    try:
        wh.verify(body, headers)
    except Exception as e:
        print("signature refused:", r["id"], e)
        bad += 1
    try:
        wh.verify(body + b" ", headers)
        print("a changed body was accepted:", r["id"])
        bad += 1
    except Exception:
        pass
print(f"standardwebhooks verified {len(requests) - bad} of {len(requests)} requests")
sys.exit(1 if bad else 0)
"#;

/// Every request signed as Standard Webhooks verifies it; a receiver that
/// answers each request 500 first and 200 next stores every event exactly
/// once when it deduplicates by `webhook-id`, also for a batch that grew
/// between its attempts.
#[tokio::test]
async fn signed_batches_verify_independently_and_dedupe_by_webhook_id() {
    let python = python_with_standardwebhooks();
    let hook = Hook::default();
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(hook.clone())
        .mount(&server)
        .await;
    let config = sink_config(
        sink("hook", "webhook")
            .set("url", format!("{}/claudit", server.uri()))
            .set("secret", SECRET)
            .set("format", "raw")
            .set("batch_max_events", 100)
            .set("batch_linger", "0s"),
        &[],
    );
    let checked = claudit::sinks::check_connection(&config).await.unwrap();
    assert!(checked.is_ok(), "{checked:?}");

    let all: Vec<_> = (0..400)
        .map(|i| {
            let id = format!("act-{i:03}");
            record(&id, 1_746_864_000_000 + i, activity(&id, 200))
        })
        .collect();
    let journal = Journal::temp();
    journal.commit(&Page::open(), &all[..150]);
    let mut tasks = SinkTasks::start(&journal.shared(), vec![config]);
    // The second batch (101..=150) is refused once; more events arrive
    // before its retry, which carries them too.
    tasks
        .until(
            "the first attempt at the second batch",
            Wait::up_to(Duration::from_secs(30)),
            async || {
                let state = hook.0.lock().unwrap();
                state
                    .deliveries
                    .iter()
                    .any(|d| d.id == "claudit-hook-101-150")
            },
        )
        .await;
    journal.commit(&Page::open(), &all[150..]);
    tasks.head.send_replace(1);
    tasks
        .until(
            "the cursor at the journal's head",
            Wait::up_to(Duration::from_secs(60)),
            async || journal.cursor("hook").seq == 400,
        )
        .await;
    tasks.stop().await;

    let state = hook.0.lock().unwrap();
    // Each id was sent twice (500, then 200) with the same events.
    let mut attempts: HashMap<&str, Vec<&Delivery>> = HashMap::new();
    for d in state
        .deliveries
        .iter()
        .filter(|d| !d.id.contains("-check-"))
    {
        attempts.entry(&d.id).or_default().push(d);
    }
    for (id, tries) in &attempts {
        let statuses: Vec<u16> = tries.iter().map(|d| d.status).collect();
        assert_eq!(statuses, [500, 200], "{id}");
        assert_eq!(
            tries[0].body, tries[1].body,
            "{id}: a retry carried other events"
        );
    }
    assert!(
        attempts.contains_key("claudit-hook-101-150"),
        "{:?}",
        attempts.keys()
    );
    // After deduplication by id, every event is stored exactly once.
    let mut stored: Vec<String> = Vec::new();
    for (id, body) in &state.stored {
        let events: Vec<serde_json::Value> = serde_json::from_slice(body).unwrap();
        let (first, last) = id
            .strip_prefix("claudit-hook-")
            .and_then(|r| r.split_once('-'))
            .unwrap();
        assert_eq!(
            (
                first.parse::<usize>().unwrap(),
                last.parse::<usize>().unwrap()
            ),
            (
                events[0]["id"].as_str().unwrap()[4..]
                    .parse::<usize>()
                    .unwrap()
                    + 1,
                events[events.len() - 1]["id"].as_str().unwrap()[4..]
                    .parse::<usize>()
                    .unwrap()
                    + 1
            ),
            "the id names the journal seqs of its first and last event"
        );
        stored.extend(events.iter().map(|e| e["id"].as_str().unwrap().to_string()));
    }
    stored.sort();
    let expected: Vec<String> = all.iter().map(|r| r.activity_id.clone()).collect();
    assert_eq!(stored, expected);
    eprintln!(
        "{} requests for {} batches; every event stored once after deduplication",
        state.deliveries.len(),
        state.stored.len()
    );

    // The independent check of every signature, the health check's too.
    let dir = tempfile::tempdir().unwrap();
    let requests: Vec<serde_json::Value> = state
        .deliveries
        .iter()
        .map(|d| {
            serde_json::json!({
                "id": d.id, "timestamp": d.timestamp, "signature": d.signature,
                "body": base64::engine::general_purpose::STANDARD.encode(&d.body),
            })
        })
        .collect();
    let dump = dir.path().join("requests.json");
    std::fs::write(&dump, serde_json::to_vec(&requests).unwrap()).unwrap();
    let script = dir.path().join("verify.py");
    std::fs::write(&script, VERIFIER).unwrap();
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(SECRET)
        .arg(&dump)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}");
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains(&format!("verified {n} of {n}", n = requests.len())),
        "{report}"
    );
}
