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

/// BlueVoyant's stream (`spec/vendor-content.md` section 2).
const BV_STREAM: &str = "Custom-BV_ClaudeCompliance_ComplianceActivities_CL";

/// The stream's columns that are not `string`, as the solution's DCR
/// (3.0.1) declares them (`spec/vendor-content.md` section 2).
const BV_TYPED: &[(&str, &str)] = &[
    ("TimeGenerated", "datetime"),
    ("created_at", "datetime"),
    ("actor", "dynamic"),
    ("status_code", "int"),
    ("member_ids", "dynamic"),
    ("scopes", "dynamic"),
    ("updates", "dynamic"),
    ("updated_fields", "dynamic"),
    ("audience", "dynamic"),
    ("approved", "boolean"),
    ("enabled", "boolean"),
    ("is_enabled", "boolean"),
    ("magic_link_enabled", "boolean"),
    ("magic_link_toggled", "boolean"),
    ("idp_saml_config_updated", "boolean"),
    ("is_service_created", "boolean"),
    ("current_value", "boolean"),
    ("previous_value", "boolean"),
    ("compliance_api_enabled", "boolean"),
    ("compliance_api_logging_enabled", "boolean"),
    ("previous_enabled", "boolean"),
    ("limit_usd", "long"),
    ("new_limit_usd", "long"),
    ("github_webhook_id", "long"),
    ("resolved_count", "long"),
    ("scans_cancelled", "long"),
];

/// A strict stand-in for BlueVoyant's DCR behind the Logs Ingestion API:
/// the bearer token, the stream in the path, a JSON array of rows, each
/// with a `TimeGenerated` datetime, every column declared and every value
/// of its declared type (a violation is recorded and answered 400, where
/// Azure would drop the field silently); then the DCR's transform
/// (`project-rename id_CF = id, type_CF = type, title_CF = title`) and the
/// rows stored as the table holds them.
#[derive(Clone, Default)]
struct BlueVoyantDcr {
    entra: Entra,
    table: Arc<Mutex<Vec<serde_json::Map<String, Value>>>>,
    violations: Arc<Mutex<Vec<String>>>,
}

fn bv_type(column: &str) -> Option<&'static str> {
    if let Some((_, t)) = BV_TYPED.iter().find(|(n, _)| *n == column) {
        return Some(t);
    }
    claudit::sinks::layout::sentinel_bluevoyant::column(column).map(|_| "string")
}

fn fits(value: &Value, ty: &str) -> bool {
    match ty {
        _ if value.is_null() => true,
        "datetime" => value
            .as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
        "dynamic" => true,
        "boolean" => value.is_boolean(),
        "int" => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        "long" => value.is_i64(),
        _ => value.is_string(),
    }
}

impl Respond for BlueVoyantDcr {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let token = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !self.entra.issued.lock().unwrap().iter().any(|t| t == token) {
            return ResponseTemplate::new(401);
        }
        let body = http::decoded_body(request);
        let Ok(Value::Array(rows)) = serde_json::from_slice::<Value>(&body) else {
            return ResponseTemplate::new(400).set_body_string("body must be a JSON array");
        };
        let mut violations = Vec::new();
        let mut table = Vec::new();
        for row in rows {
            let Value::Object(mut row) = row else {
                violations.push("a row that is not an object".to_string());
                continue;
            };
            if !row.contains_key("TimeGenerated") {
                violations.push("a row without TimeGenerated".to_string());
            }
            for (column, value) in &row {
                match bv_type(column) {
                    None => violations.push(format!("{column} is not declared: dropped")),
                    Some(ty) if !fits(value, ty) => {
                        violations.push(format!("{column} = {value} does not fit {ty}"))
                    }
                    Some(_) => {}
                }
            }
            for name in ["id", "type", "title"] {
                if let Some(v) = row.remove(name) {
                    row.insert(format!("{name}_CF"), v);
                }
            }
            table.push(row);
        }
        if !violations.is_empty() {
            self.violations.lock().unwrap().extend(violations);
            return ResponseTemplate::new(400).set_body_string("rows do not match the stream");
        }
        self.table.lock().unwrap().extend(table);
        ResponseTemplate::new(204)
    }
}

/// The table columns the solution's ASIM AgentEvent parser reads
/// (`spec/vendor-content.md` section 2), and where each comes from in the
/// activity.
const ASIM_READS: &[(&str, &str)] = &[
    ("type_CF", "type"),
    ("id_CF", "id"),
    ("created_at", "created_at"),
    ("user_id", "user_id"),
    ("claude_project_id", "claude_project_id"),
    ("claude_chat_id", "claude_chat_id"),
    ("claude_file_id", "claude_file_id"),
    ("claude_artifact_id", "claude_artifact_id"),
    ("mcp_server_name", "mcp_server_name"),
    ("plugin_name", "plugin_name"),
    ("skill_name", "skill_name"),
    ("group_name", "group_name"),
    ("service_name", "service_name"),
    ("url", "url"),
    ("status_code", "status_code"),
    ("request_id", "request_id"),
    ("request_method", "request_method"),
    ("organization_id", "organization_id"),
    ("organization_uuid", "organization_uuid"),
    ("workspace_id", "workspace_id"),
    ("group_id", "group_id"),
    ("role_id", "role_id"),
    ("session_id", "session_id"),
    ("action", "action"),
    ("decision", "decision"),
    ("reason", "reason"),
];

const ASIM_ACTOR_READS: &[&str] = &[
    "ip_address",
    "type",
    "user_agent",
    "api_key_id",
    "user_id",
    "email_address",
    "unauthenticated_email_address",
    "service_account_id",
];

/// `layout = "sentinel_bluevoyant"` from the configuration file, through
/// the sink task, on every published sample activity and on one with each
/// known disagreement between the DCR's types and the data: every row fits
/// the stream, the table has every column the ASIM parser reads with the
/// activity's value, nothing of an activity is lost, and each change is
/// counted per field.
#[tokio::test]
async fn the_bluevoyant_layout_fills_the_solutions_table() {
    let az = azure(3600).await;
    let dcr = BlueVoyantDcr {
        entra: az.entra.clone(),
        ..BlueVoyantDcr::default()
    };
    Mock::given(method("POST"))
        .and(path(format!(
            "/dataCollectionRules/{DCR}/streams/{BV_STREAM}"
        )))
        .respond_with(dcr.clone())
        .mount(&az.ingest)
        .await;
    let mut samples = crate::support::journal::sample_activities();
    let odd = serde_json::json!({
        "id": "odd_1", "type": "platform_spend_limit_updated",
        "created_at": "2026-05-22T15:21:54.358426Z", "organization_id": "org_1",
        "actor": {"type": "user_actor", "email_address": "u@example.com",
                  "unauthenticated_email_address": "x@example.com"},
        "limit_usd": 12.5, "new_limit_usd": 100, "per_review_limit_usd": 7.25,
        "current_value": "active", "previous_value": "archived",
        "a_field_the_dcr_lacks": {"nested": [1, 2]}
    });
    samples.push(("odd_1".into(), 1_779_463_314_358, odd.to_string()));
    let journal = crate::support::journal::Journal::with_activities(&samples);
    let config = sink_config(
        sink("sentinel", "sentinel")
            .set("layout", "sentinel_bluevoyant")
            .set("endpoint", az.ingest.uri())
            .set("dcr_immutable_id", DCR)
            .set("tenant_id", TENANT)
            .set("client_id", CLIENT)
            .set("client_secret", "${AZ_SECRET}")
            .set("authority", az.login_uri.as_str())
            .set("batch_linger", "0s"),
        &[("AZ_SECRET", SECRET)],
    );
    assert_eq!(config.format, claudit::config::Format::Raw);
    let metrics = std::sync::Arc::new(claudit::metrics::Metrics::new());
    let (_, _, dead_letters) =
        crate::support::sink_task::run_until_caught_up_counting(&journal, config, metrics.clone())
            .await;
    assert_eq!(dead_letters, 0);
    assert!(
        dcr.violations.lock().unwrap().is_empty(),
        "{:?}",
        dcr.violations
    );
    let table = dcr.table.lock().unwrap();
    assert_eq!(table.len(), samples.len());
    for (row, (_, _, raw)) in table.iter().zip(&samples) {
        let raw: Value = serde_json::from_str(raw).unwrap();
        let overflow = row["actor"]
            .get("claudit_overflow")
            .cloned()
            .unwrap_or_default();
        for (column, field) in ASIM_READS {
            let want = &raw[*field];
            let got = row.get(*column).unwrap_or(&Value::Null);
            assert!(
                got == want || (got.is_null() && overflow.get(*field) == Some(want)),
                "{column}: {got} for {want} in {raw}"
            );
        }
        for key in ASIM_ACTOR_READS {
            assert_eq!(row["actor"][*key], raw["actor"][*key], "actor.{key}");
        }
        assert!(
            chrono::DateTime::parse_from_rfc3339(row["TimeGenerated"].as_str().unwrap()).is_ok()
        );
        // Nothing of the activity is lost.
        for (k, v) in raw.as_object().unwrap() {
            let table_name = match k.as_str() {
                "id" | "type" | "title" => format!("{k}_CF"),
                _ => k.clone(),
            };
            let kept = k == "actor"
                || row.get(&table_name) == Some(v)
                || overflow.get(k) == Some(v)
                || (k == "per_review_limit_usd"
                    && row[k].as_str() == serde_json::to_string(v).ok().as_deref());
            assert!(kept, "{k} = {v} lost");
        }
    }
    let odd = table.last().unwrap();
    assert_eq!(odd["actor"]["claudit_overflow"]["limit_usd"], 12.5);
    assert_eq!(odd["actor"]["claudit_overflow"]["current_value"], "active");
    assert_eq!(odd["per_review_limit_usd"], "7.25");
    assert_eq!(odd["new_limit_usd"], 100);
    let text = metrics.encode();
    for (field, action) in [
        ("limit_usd", "moved"),
        ("current_value", "moved"),
        ("previous_value", "moved"),
        ("per_review_limit_usd", "stringified"),
        ("a_field_the_dcr_lacks", "undeclared"),
    ] {
        // The samples hold some of these too: at least the odd activity's.
        crate::support::metrics::layout_field_count(&text, "sentinel", field, action);
    }
}

#[test]
fn the_bluevoyant_layout_refuses_what_would_miss_the_solutions_table() {
    let load = |extra: &str| {
        config::load_with_sink(
            &format!(
                "[[sinks]]\nname = \"s\"\ntype = \"sentinel\"\nlayout = \"sentinel_bluevoyant\"\n\
                 endpoint = \"https://dce.eastus-1.ingest.monitor.azure.com\"\n\
                 dcr_immutable_id = \"{DCR}\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n\
                 client_secret = \"${{S}}\"\n{extra}"
            ),
            &[("S", SECRET)],
        )
    };
    let ok = load("").unwrap();
    let c = ok.sinks[0]
        .kind
        .get::<claudit::config::SentinelSinkConfig>()
        .expect("a sentinel sink");
    assert_eq!(c.stream, BV_STREAM);
    assert_eq!(ok.sinks[0].format, claudit::config::Format::Raw);
    let err = load(&format!("stream = \"{STREAM}\"")).unwrap_err();
    assert!(
        err.contains("sinks[0].stream") && err.contains(BV_STREAM),
        "{err}"
    );
    let err = load("format = \"raw+claudit\"").unwrap_err();
    assert!(err.contains("sinks[0].format"), "{err}");
}
