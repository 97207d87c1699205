//! The Sentinel sink against two wiremock servers enforcing the rules of
//! `spec/sinks.md` section 4: an Entra token endpoint
//! (`POST /{tenant}/oauth2/v2.0/token`, client credentials, scope checked,
//! short `expires_in`) and a Logs Ingestion endpoint (DCR path, stream,
//! `api-version`, the current bearer token, JSON array of rows with exactly
//! the declared columns, at most 1 MB on the wire and decompressed, 204 on
//! success), with 401, 429 and 413 injection. Also checks the sink's rows
//! against `deploy/sentinel/`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use claudit::sinks::contract::Outcome;
use claudit::sinks::sentinel::{COLUMNS, MAX_FIELD_BYTES, SentinelSink, row};
use claudit::store::BatchRecord;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::config::{self, Table, sink, sink_config};
use crate::support::http;
use crate::support::journal::{self, Journal};
use crate::support::sink_task::run_until_caught_up;

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const SECRET: &str = "entra~client~secret~0123456789";
const DCR: &str = "dcr-000a00a000a00000a000000aa000a0aa";
const STREAM: &str = "Custom-ClaudeCompliance_CL";

#[derive(Clone, Default)]
struct Entra {
    issued: Arc<Mutex<Vec<String>>>,
    expires_in: Arc<Mutex<u64>>,
}

impl Respond for Entra {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let form: Vec<(String, String)> = reqwest::Url::parse(&format!(
            "http://x/?{}",
            String::from_utf8_lossy(&request.body)
        ))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            request.headers.get("content-type").unwrap(),
            "application/x-www-form-urlencoded"
        );
        if get("grant_type") != Some("client_credentials")
            || get("scope") != Some("https://monitor.azure.com//.default")
        {
            return ResponseTemplate::new(400).set_body_string(r#"{"error":"invalid_scope"}"#);
        }
        if get("client_id") != Some(CLIENT) || get("client_secret") != Some(SECRET) {
            return ResponseTemplate::new(401).set_body_string(
                r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x"}"#,
            );
        }
        let mut issued = self.issued.lock().unwrap();
        let token = format!("token-{}", issued.len() + 1);
        issued.push(token.clone());
        let expires_in = *self.expires_in.lock().unwrap();
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "expires_in": expires_in, "access_token": token
        }))
    }
}

#[derive(Clone, Default)]
struct Ingestion {
    entra: Entra,
    rows: Arc<Mutex<Vec<Value>>>,
    /// (arrival, token) of every call.
    calls: Arc<Mutex<Vec<(Instant, String)>>>,
    /// Tokens the endpoint no longer accepts (revoked or expired).
    revoked: Arc<Mutex<Vec<String>>>,
    faults: Arc<Mutex<VecDeque<ResponseTemplate>>>,
    max_bytes: Arc<Mutex<Option<usize>>>,
}

impl Respond for Ingestion {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        assert_eq!(request.url.query(), Some("api-version=2023-01-01"));
        let token = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("")
            .to_string();
        self.calls
            .lock()
            .unwrap()
            .push((Instant::now(), token.clone()));
        let known = self.entra.issued.lock().unwrap().contains(&token);
        if !known || self.revoked.lock().unwrap().contains(&token) {
            return ResponseTemplate::new(401)
                .set_body_string(r#"{"error":{"code":"InvalidToken"}}"#);
        }
        if let Some(fault) = self.faults.lock().unwrap().pop_front() {
            return fault;
        }
        assert_eq!(
            request.headers.get("content-type").unwrap(),
            "application/json"
        );
        let limit = self.max_bytes.lock().unwrap().unwrap_or(1_000_000);
        let body = http::decoded_body(request);
        if request.body.len() > limit || body.len() > limit {
            return ResponseTemplate::new(413);
        }
        let Ok(Value::Array(rows)) = serde_json::from_slice::<Value>(&body) else {
            return ResponseTemplate::new(400).set_body_string("body must be a JSON array");
        };
        for r in &rows {
            let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
            keys.sort();
            let mut declared: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
            declared.sort();
            if keys != declared || !r["Event"].is_object() || !r["TimeGenerated"].is_string() {
                return ResponseTemplate::new(400).set_body_string("columns do not match");
            }
        }
        self.rows.lock().unwrap().extend(rows);
        ResponseTemplate::new(204)
    }
}

struct Azure {
    _login: MockServer,
    ingest: MockServer,
    entra: Entra,
    ingestion: Ingestion,
    login_uri: String,
}

async fn azure(expires_in: u64) -> Azure {
    let login = MockServer::start().await;
    let ingest = MockServer::start().await;
    let entra = Entra::default();
    *entra.expires_in.lock().unwrap() = expires_in;
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .respond_with(entra.clone())
        .mount(&login)
        .await;
    let ingestion = Ingestion {
        entra: entra.clone(),
        ..Ingestion::default()
    };
    Mock::given(method("POST"))
        .and(path(format!("/dataCollectionRules/{DCR}/streams/{STREAM}")))
        .respond_with(ingestion.clone())
        .mount(&ingest)
        .await;
    Azure {
        login_uri: login.uri(),
        _login: login,
        ingest,
        entra,
        ingestion,
    }
}

/// The Sentinel sink of these tests: OCSF events to the fake ingestion
/// endpoint, signed in at the fake Entra ID, the secret from `AZ_SECRET`, no
/// linger.
fn sentinel_sink(az: &Azure) -> Table {
    sink("sentinel", "sentinel")
        .set("format", "ocsf")
        .set("endpoint", az.ingest.uri())
        .set("dcr_immutable_id", DCR)
        .set("stream", STREAM)
        .set("tenant_id", TENANT)
        .set("client_id", CLIENT)
        .set("client_secret", "${AZ_SECRET}")
        .set("authority", az.login_uri.as_str())
        .set("batch_linger", "0s")
}

fn sentinel(az: &Azure, secret: &str) -> SentinelSink {
    let config = sink_config(sentinel_sink(az), &[("AZ_SECRET", secret)]);
    let Some(c) = config.kind.get::<claudit::config::SentinelSinkConfig>() else {
        panic!("not a sentinel sink")
    };
    SentinelSink::new(c).unwrap()
}

fn records(n: usize, size: usize) -> Vec<BatchRecord> {
    let now = claudit::store::now_ms();
    (0..n)
        .map(|i| BatchRecord {
            seq: i as i64 + 1,
            activity_id: format!("activity_{i}"),
            created_at_ms: now,
            payload: journal::activity(&format!("activity_{i}"), size),
        })
        .collect()
}

fn no_secret(outcome: &Outcome) {
    let text = format!("{outcome:?}");
    assert!(!text.contains(SECRET), "the secret leaked: {text}");
    assert!(!text.contains("token-"), "a token leaked: {text}");
}

#[tokio::test]
async fn a_journal_is_delivered_in_calls_of_at_most_1mb_and_big_events_are_dead_lettered() {
    let az = azure(3600).await;
    let now = claudit::store::now_ms();
    let mut rows: Vec<(String, i64, String)> = (0..1500)
        .map(|i| {
            let id = format!("activity_{i:04}");
            let raw = journal::activity(&id, 2000);
            (id, now - 1000 + i, raw)
        })
        .collect();
    rows[42].2 = journal::activity(&rows[42].0, MAX_FIELD_BYTES + 1);
    let journal = Journal::with_activities(&rows);
    // format = "raw" here, so Event is the activity as received; no gzip,
    // so the 1 MB cut shows on the wire too.
    let config = sink_config(
        sentinel_sink(&az)
            .set("compression", false)
            .set("batch_max_bytes", "4MB")
            .set("format", "raw"),
        &[("AZ_SECRET", SECRET)],
    );
    let (seq, head, dead) = run_until_caught_up(&journal, config).await;
    assert_eq!((seq, dead), (head, 1));
    let received = az.ingestion.rows.lock().unwrap();
    assert_eq!(received.len(), 1499);
    assert_eq!(received[0]["ActivityId"], "activity_0000");
    assert_eq!(received[0]["ActivityType"], "claude_chat_created");
    assert_eq!(received[0]["Event"]["id"], "activity_0000");
    assert!(
        received[0]["TimeGenerated"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let calls = az.ingestion.calls.lock().unwrap().len();
    assert!(
        calls >= 3,
        "3 MB of rows need at least three calls, saw {calls}"
    );
    assert_eq!(
        az.entra.issued.lock().unwrap().len(),
        1,
        "one token, cached"
    );
}

#[tokio::test]
async fn the_token_is_cached_and_refreshed_before_it_expires() {
    let az = azure(10).await;
    let base = Instant::now();
    let offset = Arc::new(AtomicU64::new(0));
    let clock_offset = offset.clone();
    let mut s = sentinel(&az, SECRET).with_clock(Arc::new(move || {
        base + Duration::from_secs(clock_offset.load(Ordering::SeqCst))
    }));
    assert_eq!(s.send(&records(3, 300)).await, Outcome::delivered());
    offset.store(4, Ordering::SeqCst);
    let second = records(2, 300)
        .into_iter()
        .map(|mut r| {
            r.seq += 10;
            r
        })
        .collect::<Vec<_>>();
    assert_eq!(s.send(&second).await, Outcome::delivered());
    assert_eq!(
        az.entra.issued.lock().unwrap().len(),
        1,
        "still fresh at 4 s of 10"
    );
    // Past the refresh point (10 s minus a 5 s margin): a new token before
    // the call, not after a 401.
    offset.store(6, Ordering::SeqCst);
    let third = records(2, 300)
        .into_iter()
        .map(|mut r| {
            r.seq += 20;
            r
        })
        .collect::<Vec<_>>();
    assert_eq!(s.send(&third).await, Outcome::delivered());
    assert_eq!(az.entra.issued.lock().unwrap().len(), 2);
    let tokens: Vec<String> = az
        .ingestion
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.1.clone())
        .collect();
    assert_eq!(tokens, ["token-1", "token-1", "token-2"]);
}

#[tokio::test]
async fn a_401_refreshes_the_token_once_then_is_fatal() {
    let az = azure(3600).await;
    let mut s = sentinel(&az, SECRET);
    assert_eq!(s.send(&records(1, 300)).await, Outcome::delivered());
    // The endpoint stops accepting token-1: one refresh, and the call goes
    // through with token-2.
    az.ingestion.revoked.lock().unwrap().push("token-1".into());
    let batch: Vec<_> = records(2, 300)
        .into_iter()
        .map(|mut r| {
            r.seq += 10;
            r
        })
        .collect();
    assert_eq!(s.send(&batch).await, Outcome::delivered());
    assert_eq!(az.entra.issued.lock().unwrap().len(), 2);
    // Every token refused: exactly one refresh, then Fatal.
    az.ingestion
        .revoked
        .lock()
        .unwrap()
        .extend(["token-2".to_string(), "token-3".to_string()]);
    let before = az.ingestion.calls.lock().unwrap().len();
    let batch: Vec<_> = records(2, 300)
        .into_iter()
        .map(|mut r| {
            r.seq += 20;
            r
        })
        .collect();
    let outcome = s.send(&batch).await;
    no_secret(&outcome);
    assert!(
        matches!(&outcome, Outcome::Fatal { reason } if reason.contains("401")),
        "{outcome:?}"
    );
    assert_eq!(az.ingestion.calls.lock().unwrap().len() - before, 2);
    assert_eq!(az.entra.issued.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn token_endpoint_refusals_are_fatal_and_never_show_the_secret() {
    let az = azure(3600).await;
    let mut s = sentinel(&az, "not-the-secret-xyz");
    let outcome = s.send(&records(1, 300)).await;
    let Outcome::Fatal { reason } = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        reason.contains("invalid_client") && reason.contains("AADSTS7000215"),
        "{reason}"
    );
    assert!(!reason.contains("not-the-secret-xyz") && !reason.contains("Trace ID"));
    let err = s.healthcheck().await.unwrap_err();
    assert!(err.contains("invalid_client") && !err.contains("not-the-secret-xyz"));
    let ok = sentinel(&az, SECRET).healthcheck().await.unwrap();
    assert!(ok.contains("accepts data"), "{ok}");
    assert!(
        az.ingestion.rows.lock().unwrap().is_empty(),
        "the check ingests nothing"
    );
}

#[tokio::test]
async fn statuses_429_413_403_and_5xx_are_handled() {
    let az = azure(3600).await;
    let mut s = sentinel(&az, SECRET);
    az.ingestion
        .faults
        .lock()
        .unwrap()
        .push_back(ResponseTemplate::new(429).insert_header("retry-after", "1"));
    let batch = records(4, 300);
    let outcome = s.send(&batch).await;
    assert!(
        matches!(outcome, Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(1)),
        "{outcome:?}"
    );
    assert_eq!(s.send(&batch).await, Outcome::delivered());
    // A lower limit in front (413): halves until rows fit; a single row
    // still too large is dead-lettered.
    *az.ingestion.max_bytes.lock().unwrap() = Some(1_000);
    let batch: Vec<_> = records(6, 300)
        .into_iter()
        .map(|mut r| {
            r.seq += 10;
            r
        })
        .collect();
    assert_eq!(s.send(&batch).await, Outcome::delivered());
    let big: Vec<_> = records(1, 3_000)
        .into_iter()
        .map(|mut r| {
            r.seq += 20;
            r
        })
        .collect();
    match s.send(&big).await {
        Outcome::Delivered { rejected } => assert_eq!(rejected.len(), 1),
        other => panic!("{other:?}"),
    }
    *az.ingestion.max_bytes.lock().unwrap() = None;
    assert_eq!(az.ingestion.rows.lock().unwrap().len(), 10);
    for (code, retry) in [
        (403, false),
        (404, false),
        (400, false),
        (500, true),
        (503, true),
    ] {
        az.ingestion
            .faults
            .lock()
            .unwrap()
            .push_back(ResponseTemplate::new(code));
        let batch: Vec<_> = records(1, 300)
            .into_iter()
            .map(|mut r| {
                r.seq += 100 + i64::from(code);
                r
            })
            .collect();
        let outcome = s.send(&batch).await;
        no_secret(&outcome);
        match (retry, &outcome) {
            (true, Outcome::Retry { .. }) | (false, Outcome::Fatal { .. }) => {}
            _ => panic!("HTTP {code}: {outcome:?}"),
        }
        assert_eq!(s.send(&batch).await, Outcome::delivered());
    }
}

#[tokio::test]
async fn a_429_is_retried_by_the_sink_task_no_sooner_than_retry_after() {
    let az = azure(3600).await;
    az.ingestion
        .faults
        .lock()
        .unwrap()
        .push_back(ResponseTemplate::new(429).insert_header("retry-after", "1"));
    let now = claudit::store::now_ms();
    let rows: Vec<_> = (0..5)
        .map(|i| {
            (
                format!("activity_{i}"),
                now,
                journal::activity(&format!("activity_{i}"), 400),
            )
        })
        .collect();
    let journal = Journal::with_activities(&rows);
    let config = sink_config(sentinel_sink(&az), &[("AZ_SECRET", SECRET)]);
    let (seq, head, dead) = run_until_caught_up(&journal, config).await;
    assert_eq!((seq, dead), (head, 0));
    let calls = az.ingestion.calls.lock().unwrap();
    assert_eq!(calls.len(), 2);
    assert!(calls[1].0 - calls[0].0 >= Duration::from_secs(1));
    // format = "ocsf": Event is the OCSF event, ActivityType its event_code.
    let rows = az.ingestion.rows.lock().unwrap();
    assert_eq!(rows[0]["ActivityType"], "claude_chat_created");
    assert_eq!(rows[0]["Event"]["metadata"]["uid"], "activity_0");
}

/// The DCR stream declaration and the table in `deploy/sentinel/` have
/// exactly the columns, types and order the sink sends.
#[test]
fn deploy_files_match_the_rows_the_sink_sends() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dcr: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/deploy/sentinel/dcr.json")).unwrap(),
    )
    .unwrap();
    let table: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/deploy/sentinel/table.json")).unwrap(),
    )
    .unwrap();
    let columns = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().into(),
                    c["type"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let expected: Vec<(String, String)> = COLUMNS
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    let props = &dcr["resources"][0]["properties"];
    assert_eq!(
        columns(&props["streamDeclarations"][STREAM]["columns"]),
        expected
    );
    assert_eq!(columns(&table["properties"]["schema"]["columns"]), expected);
    let flow = &props["dataFlows"][0];
    assert_eq!(flow["streams"][0], STREAM);
    assert_eq!(flow["transformKql"], "source", "rows land unchanged");
    assert_eq!(
        flow["outputStream"],
        format!(
            "Custom-{}",
            table["properties"]["schema"]["name"].as_str().unwrap()
        )
    );
    // A row's keys, in order, and JSON types that fit the declared types.
    let record = &records(1, 300)[0];
    let row: Value = serde_json::from_str(&row(record)).unwrap();
    let obj = row.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    let mut declared: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
    declared.sort();
    assert_eq!(keys, declared);
    for (name, ty) in COLUMNS {
        let v = &obj[*name];
        match *ty {
            "datetime" => {
                assert!(chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).is_ok())
            }
            "string" => assert!(v.is_string()),
            "dynamic" => assert!(v.is_object()),
            other => panic!("unexpected type {other}"),
        }
    }
}

#[test]
fn config_reports_mistakes_without_the_secret() {
    let load = |extra: &str| {
        config::load_with_sink(
            &format!(
                "[[sinks]]\nname = \"s\"\ntype = \"sentinel\"\nclient_secret = \"${{S}}\"\n{extra}"
            ),
            &[("S", SECRET)],
        )
    };
    let err = load("").unwrap_err();
    for key in [
        "endpoint",
        "dcr_immutable_id",
        "stream",
        "tenant_id",
        "client_id",
    ] {
        assert!(err.contains(&format!("sinks[0].{key}")), "{key}: {err}");
    }
    assert!(!err.contains(SECRET));
    let ok = load(&format!(
        "endpoint = \"https://dce.eastus-1.ingest.monitor.azure.com/\"\ndcr_immutable_id = \"{DCR}\"\n\
         stream = \"{STREAM}\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\""
    ))
    .unwrap();
    let Some(c) = ok.sinks[0]
        .kind
        .get::<claudit::config::SentinelSinkConfig>()
    else {
        unreachable!()
    };
    assert_eq!(c.endpoint, "https://dce.eastus-1.ingest.monitor.azure.com");
    assert_eq!(c.authority, "https://login.microsoftonline.com");
    assert_eq!(c.scope, "https://monitor.azure.com//.default");
    assert!(!format!("{c:?}").contains(SECRET));
    let err = load(&format!(
        "endpoint = \"http://dce.example.com\"\ndcr_immutable_id = \"dcr/x\"\n\
         stream = \"{STREAM}\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\""
    ))
    .unwrap_err();
    assert!(
        err.contains("plain http") && err.contains("dcr_immutable_id"),
        "{err}"
    );
}
