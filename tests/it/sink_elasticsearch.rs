//! The Elasticsearch sink against a strict `_bulk` emulator (wiremock):
//! configuration, encoding, per-item results (201, 409, 429, 400),
//! whole-request statuses (401, 503 with Retry-After), request splitting,
//! gzip, basic auth, the health check, the index template, and the secret
//! never showing up anywhere.

use std::path::Path;
use std::time::Duration;

use claudit::config::{self, Config, ElasticsearchAuth, Format, SinkConfig};
use claudit::sinks::contract::Outcome;
use claudit::sinks::elasticsearch::{BulkEncoder, ElasticsearchSink};
use claudit::store::BatchRecord;
use serde_json::Value;

use crate::support::elasticsearch as es;
use crate::support::journal::{Journal, Page};
use crate::support::sink_task::SinkTasks;
use crate::support::wait::Wait;

const API_KEY: &str = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==";
const PASSWORD: &str = "hunter2-TOPSECRET";

fn config_text(url: &str, extra: &str) -> String {
    format!(
        r#"
[state]
path = "/tmp/claudit-es-test.db"

[[sources]]
name = "acme"
api_key = "${{ANTHROPIC_COMPLIANCE_API_KEY}}"

[[sinks]]
name = "es"
type = "elasticsearch"
url = "{url}"
index = "{index}"
{extra}
"#,
        index = es::INDEX
    )
}

fn env(name: &str) -> Option<String> {
    match name {
        "ANTHROPIC_COMPLIANCE_API_KEY" => Some("sk-ant-api01-x".into()),
        "ES_KEY" => Some(API_KEY.into()),
        "ES_PASSWORD" => Some(PASSWORD.into()),
        _ => None,
    }
}

fn load(text: &str) -> Result<Config, String> {
    config::load_str(text, Path::new("/etc/claudit/claudit.toml"), &env).map_err(|e| e.to_string())
}

fn sink_config(url: &str, extra: &str) -> SinkConfig {
    let config = load(&config_text(
        url,
        &format!("api_key = \"${{ES_KEY}}\"\n{extra}"),
    ))
    .unwrap();
    config.sinks[0].clone()
}

fn es_config(sink: &SinkConfig) -> &claudit::config::ElasticsearchSinkConfig {
    match sink.kind.get::<claudit::config::ElasticsearchSinkConfig>() {
        Some(c) => c,
        None => panic!("{:?}", sink.kind),
    }
}

fn records(range: std::ops::Range<usize>) -> Vec<BatchRecord> {
    range
        .map(|n| {
            let r = es::journal_record(n);
            BatchRecord {
                seq: n as i64 + 1,
                activity_id: r.activity_id,
                created_at_ms: r.created_at_ms,
                payload: r.ocsf.expect("journal_record stores an OCSF payload"),
            }
        })
        .collect()
}

fn api_key_header() -> String {
    format!("ApiKey {API_KEY}")
}

#[test]
fn config_reads_the_elasticsearch_keys_and_reports_mistakes() {
    let sink = sink_config(
        "https://es.example.com:9200/",
        "max_request_bytes = \"1MB\"",
    );
    let es = es_config(&sink);
    assert_eq!(es.url, "https://es.example.com:9200");
    assert_eq!(es.index, es::INDEX);
    assert_eq!(es.max_request_bytes, 1_000_000);
    assert!(matches!(es.auth, ElasticsearchAuth::ApiKey(_)));
    assert_eq!(sink.batch.max_events, 1000);
    assert_eq!(sink.batch.max_bytes, 5_000_000);
    assert!(es.http.compression);
    assert!(
        !format!("{sink:?}").contains(API_KEY),
        "Debug shows the key"
    );

    let basic = load(&config_text(
        "https://es.example.com",
        "username = \"claudit\"\npassword = \"${ES_PASSWORD}\"",
    ))
    .unwrap();
    match &es_config(&basic.sinks[0]).auth {
        ElasticsearchAuth::Basic { username, .. } => assert_eq!(username, "claudit"),
        other => panic!("{other:?}"),
    }
    assert!(!format!("{basic:?}").contains(PASSWORD));

    let cases: &[(&str, &str, &str)] = &[
        (
            "http://es.example.com:9200",
            "api_key = \"${ES_KEY}\"",
            "plain http is allowed only",
        ),
        (
            "https://u:p@es.example.com",
            "api_key = \"${ES_KEY}\"",
            "must not carry credentials",
        ),
        ("https://es.example.com", "", "sinks[0].api_key: missing"),
        (
            "https://es.example.com",
            "api_key = \"${ES_KEY}\"\nusername = \"claudit\"\npassword = \"${ES_PASSWORD}\"",
            "both api_key and username",
        ),
        (
            "https://es.example.com",
            "username = \"claudit\"",
            "sinks[0].password: missing",
        ),
        (
            "https://es.example.com",
            "api_key = \"${ES_KEY}\"\nmax_request_bytes = \"1KB\"",
            "max_request_bytes: 1KB is out of range",
        ),
        (
            "https://es.example.com",
            "api_key = \"${ES_KEY}\"\nindx = \"x\"",
            "indx",
        ),
    ];
    for (url, extra, expected) in cases {
        let err = load(&config_text(url, extra)).unwrap_err();
        assert!(err.contains(expected), "{url} {extra}: {err}");
        assert!(!err.contains(API_KEY) && !err.contains(PASSWORD), "{err}");
    }
    let bad_index = load(
        &config_text("https://es.example.com", "api_key = \"${ES_KEY}\"")
            .replace(es::INDEX, "Logs*Claudit"),
    )
    .unwrap_err();
    assert!(bad_index.contains("sinks[0].index"), "{bad_index}");
    assert!(bad_index.contains("lowercase"), "{bad_index}");
}

#[tokio::test]
async fn a_valid_batch_is_created_with_ids_timestamps_gzip_and_api_key() {
    let (server, state) = es::start(&api_key_header()).await;
    let sink = sink_config(&server.uri(), "");
    let mut es = ElasticsearchSink::new(es_config(&sink)).unwrap();
    let batch = records(0..50);
    assert_eq!(es.send(&batch).await, Outcome::delivered());
    // gzip really was used on the wire.
    let received = &server.received_requests().await.unwrap();
    let bulk = received.iter().find(|r| r.url.path() == "/_bulk").unwrap();
    assert_eq!(bulk.headers.get("content-encoding").unwrap(), "gzip");
    let st = state.state();
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    assert_eq!(st.requests, 1);
    let ids: Vec<String> = st.docs.iter().map(|(id, _)| id.clone()).collect();
    let expected: Vec<String> = batch.iter().map(|r| r.activity_id.clone()).collect();
    assert_eq!(ids, expected);
    let (_, first) = &st.docs[0];
    assert_eq!(first["@timestamp"], "2026-05-10T08:00:00.000Z");
    assert_eq!(first["metadata"]["uid"], "activity_00000");
}

#[tokio::test]
async fn basic_auth_and_uncompressed_bodies_work() {
    use base64::Engine;
    let header = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("claudit:{PASSWORD}"))
    );
    let (server, state) = es::start(&header).await;
    let config = load(&config_text(
        &server.uri(),
        "username = \"claudit\"\npassword = \"${ES_PASSWORD}\"\ncompression = false",
    ))
    .unwrap();
    let mut es = ElasticsearchSink::new(es_config(&config.sinks[0])).unwrap();
    assert_eq!(es.send(&records(0..3)).await, Outcome::delivered());
    assert_eq!(state.stored_ids().len(), 3);
    assert!(state.state().violations.is_empty());
}

#[tokio::test]
async fn redelivery_is_idempotent_409_counts_as_delivered() {
    let (server, state) = es::start(&api_key_header()).await;
    let sink = sink_config(&server.uri(), "");
    let mut es = ElasticsearchSink::new(es_config(&sink)).unwrap();
    let batch = records(0..10);
    assert_eq!(es.send(&batch).await, Outcome::delivered());
    // A second sink instance (as after a crash before the cursor commit).
    let mut again = ElasticsearchSink::new(es_config(&sink)).unwrap();
    assert_eq!(again.send(&batch).await, Outcome::delivered());
    let st = state.state();
    assert_eq!(st.docs.len(), 10, "no duplicate document");
    assert_eq!(st.conflicts, 10);
}

#[tokio::test]
async fn busy_items_are_resent_alone_and_rejected_items_dead_lettered() {
    let (server, state) = es::start(&api_key_header()).await;
    {
        let mut st = state.state();
        st.busy_ids.insert("activity_00002".into(), 2);
        st.busy_ids.insert("activity_00007".into(), 1);
        st.reject_ids.insert("activity_00005".into());
    }
    let sink = sink_config(&server.uri(), "");
    let mut es = ElasticsearchSink::new(es_config(&sink)).unwrap();
    let batch = records(0..10);
    // First attempt: 7 created, 1 rejected, 2 busy.
    match es.send(&batch).await {
        Outcome::Retry { reason, .. } => assert!(reason.contains("2 of 10"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Second attempt sends only the two busy ones; 00002 is busy again.
    assert!(matches!(es.send(&batch).await, Outcome::Retry { .. }));
    let third = es.send(&batch).await;
    let Outcome::Delivered { rejected } = third else {
        panic!("{third:?}")
    };
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].activity_id, "activity_00005");
    assert_eq!(rejected[0].seq, 6);
    assert!(rejected[0].reason.contains("mapper_parsing_exception"));
    assert!(rejected[0].response.contains("failed to parse field"));
    let st = state.state();
    assert_eq!(
        st.received.len(),
        10 + 2 + 1,
        "only the busy items were sent again: {:?}",
        st.received
    );
    assert_eq!(st.docs.len(), 9);
    assert_eq!(st.conflicts, 0);
}

#[tokio::test]
async fn oversize_batches_are_split_and_oversize_events_dead_lettered() {
    let (server, state) = es::start(&api_key_header()).await;
    let sink = sink_config(&server.uri(), "max_request_bytes = \"10KB\"");
    let mut es = ElasticsearchSink::new(es_config(&sink)).unwrap();
    let mut batch = records(0..200);
    batch[50].payload = format!(r#"{{"pad":"{}"}}"#, "x".repeat(20_000));
    let outcome = es.send(&batch).await;
    let Outcome::Delivered { rejected } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].activity_id, "activity_00050");
    assert!(rejected[0].reason.contains("max_request_bytes"));
    let st = state.state();
    assert!(st.requests > 2, "{} requests", st.requests);
    assert!(
        st.body_sizes.iter().all(|&n| n <= 10_000),
        "{:?}",
        st.body_sizes
    );
    assert_eq!(st.docs.len(), 199);
    assert!(st.violations.is_empty());
}

#[tokio::test]
async fn a_failed_request_in_a_split_batch_resends_only_the_unacknowledged_requests() {
    let (server, state) = es::start(&api_key_header()).await;
    let sink = sink_config(&server.uri(), "max_request_bytes = \"10KB\"");
    let mut es = ElasticsearchSink::new(es_config(&sink)).unwrap();
    let batch = records(0..200);
    let encoded = BulkEncoder::new(es::INDEX, 10_000).encode(&batch.iter().collect::<Vec<_>>());
    let first_request_items = encoded.requests[0].items.len();
    // Make every item after the first request busy once: a whole first
    // request acknowledged, the rest retried.
    {
        let mut st = state.state();
        for r in &batch[first_request_items..] {
            st.busy_ids.insert(r.activity_id.clone(), 1);
        }
    }
    assert!(matches!(es.send(&batch).await, Outcome::Retry { .. }));
    assert_eq!(es.send(&batch).await, Outcome::delivered());
    let st = state.state();
    assert_eq!(st.docs.len(), 200);
    assert_eq!(st.conflicts, 0, "nothing acknowledged was sent again");
    assert_eq!(st.received.len(), 200 + (200 - first_request_items));
}

#[tokio::test]
async fn unauthorized_is_fatal_and_never_shows_the_key() {
    let (server, state) = es::start("ApiKey some-other-key").await;
    let sink = sink_config(&server.uri(), "");
    let mut es = ElasticsearchSink::new(es_config(&sink)).unwrap();
    let outcome = es.send(&records(0..3)).await;
    let Outcome::Fatal { reason } = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(reason.contains("401"), "{reason}");
    assert!(!reason.contains(API_KEY));
    assert_eq!(state.state().refused_auth, 1);
    let health = es.healthcheck().await.unwrap_err();
    assert!(
        health.contains("401") && !health.contains(API_KEY),
        "{health}"
    );
}

#[tokio::test]
async fn unavailable_is_retried_after_the_servers_delay() {
    let (server, state) = es::start(&api_key_header()).await;
    {
        let mut st = state.state();
        st.down = Some(503);
        st.retry_after = Some("1".into());
    }
    let sink = sink_config(&server.uri(), "");
    let mut es = ElasticsearchSink::new(es_config(&sink)).unwrap();
    match es.send(&records(0..3)).await {
        Outcome::Retry { after, reason } => {
            assert_eq!(after, Some(Duration::from_secs(1)));
            assert!(reason.contains("503"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    state.state().down = Some(429);
    assert!(matches!(
        es.send(&records(0..3)).await,
        Outcome::Retry { after: Some(_), .. }
    ));
    state.state().down = None;
    assert_eq!(es.send(&records(0..3)).await, Outcome::delivered());
}

#[tokio::test]
async fn healthcheck_names_the_cluster() {
    let (server, _state) = es::start(&api_key_header()).await;
    let sink = sink_config(&server.uri(), "");
    let es = ElasticsearchSink::new(es_config(&sink)).unwrap();
    let msg = es.healthcheck().await.unwrap();
    assert!(
        msg.contains("Elasticsearch 8.15.0") && msg.contains("audit"),
        "{msg}"
    );
}

/// Through a real sink task over a real store: the cursor reaches the head,
/// the rejected record is in the dead-letter table, nothing is duplicated.
#[tokio::test]
async fn sink_task_advances_the_cursor_and_dead_letters_rejections() {
    let (server, state) = es::start(&api_key_header()).await;
    state.state().reject_ids.insert("activity_00003".into());
    state.state().busy_ids.insert("activity_00010".into(), 1);
    let journal = Journal::temp();
    let journaled: Vec<_> = (0..25).map(es::journal_record).collect();
    journal.commit(&Page::open(), &journaled);
    let store = journal.shared();
    let mut sink = sink_config(
        &server.uri(),
        "batch_max_events = 10\nbatch_linger = \"0s\"",
    );
    sink.format = Format::Ocsf;
    let mut task = SinkTasks::start(&store, vec![sink]);
    task.until(
        "the sink at the journal head",
        Wait::up_to(Duration::from_secs(30)),
        async || store.call(|s| s.sink_cursor("es")).await.unwrap().seq == 25,
    )
    .await;
    let stats = task.stop().await.remove(0);
    assert_eq!(stats.delivered, 24);
    assert_eq!(stats.dead_lettered, 1);
    let dead = store.call(|s| s.dead_letter_count("es")).await.unwrap();
    assert_eq!(dead, 1);
    let ids = state.stored_ids();
    assert_eq!(ids.len(), 24);
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 24);
    assert!(!ids.contains(&"activity_00003".to_string()));
    assert!(state.state().violations.is_empty());
}

/// The raw format gets `@timestamp` too, added beside the activity's own
/// fields.
#[tokio::test]
async fn raw_events_get_a_timestamp_beside_their_fields() {
    let (server, state) = es::start(&api_key_header()).await;
    let sink = sink_config(&server.uri(), "format = \"raw\"");
    assert_eq!(sink.format, Format::Raw);
    let mut es = ElasticsearchSink::new(es_config(&sink)).unwrap();
    let raw = es::journal_record(1);
    let batch = vec![BatchRecord {
        seq: 1,
        activity_id: raw.activity_id.clone(),
        created_at_ms: raw.created_at_ms,
        payload: raw.raw.clone(),
    }];
    assert_eq!(es.send(&batch).await, Outcome::delivered());
    let st = state.state();
    let doc: &Value = &st.docs[0].1;
    assert_eq!(doc["id"], "activity_00001");
    assert_eq!(doc["type"], "claude_chat_created");
    assert_eq!(doc["@timestamp"], "2026-05-10T08:00:01.000Z");
}

/// The index template in deploy/elasticsearch/ maps every field the sink
/// emits for the OCSF events of the whole activity catalogue (everything
/// outside `unmapped`, which is `flattened`), with a type each value fits.
#[test]
fn the_index_template_maps_every_field_the_sink_emits() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text =
        std::fs::read_to_string(root.join("deploy/elasticsearch/claudit-ocsf.index-template.json"))
            .unwrap();
    let template: Value = serde_json::from_str(&text).unwrap();
    let patterns: Vec<&str> = template["index_patterns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        template.get("data_stream").is_some(),
        "a data stream template"
    );
    // The index of the example configuration matches the pattern.
    assert!(patterns.iter().any(|p| {
        let prefix = p.trim_end_matches('*');
        "logs-claudit.ocsf-default".starts_with(prefix)
    }));
    let properties = &template["template"]["mappings"]["properties"];
    let field_type = |path: &str| -> Option<String> {
        let mut node = properties;
        for part in path.split('.') {
            let next = node.get(part)?;
            if next.get("type").and_then(Value::as_str) == Some("flattened") {
                return Some("flattened".into());
            }
            node = next.get("properties").unwrap_or(next);
        }
        node.get("type").and_then(Value::as_str).map(str::to_string)
    };
    for (path, ty) in [
        ("@timestamp", "date"),
        ("time", "date"),
        ("metadata.uid", "keyword"),
        ("metadata.original_event_uid", "keyword"),
        ("actor.user.uid", "keyword"),
        ("user.uid", "keyword"),
        ("src_endpoint.ip", "ip"),
        ("unmapped", "flattened"),
        ("class_uid", "integer"),
    ] {
        assert_eq!(field_type(path).as_deref(), Some(ty), "{path}");
    }

    let mapper = claudit::ocsf::Mapper::default();
    let enricher = claudit::enrich::Enricher::without_geoip();
    let catalogue =
        std::fs::read_to_string(root.join("fixtures/activities/catalogue.ndjson")).unwrap();
    let mut records = Vec::new();
    for (i, line) in catalogue
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
    {
        let activity = claudit::model::Activity::from_json(line).unwrap();
        let enrichment = activity
            .actor
            .as_ref()
            .map(|a| enricher.enrich(a.ip_address.as_deref(), a.user_agent.as_deref()));
        let ctx = claudit::ocsf::MapContext {
            processed_ms: 0,
            enrichment: enrichment.as_ref(),
            self_generated: false,
        };
        records.push(BatchRecord {
            seq: i as i64 + 1,
            activity_id: activity.id.clone(),
            created_at_ms: 1_778_400_000_000,
            payload: mapper.map_json(&activity, &ctx),
        });
    }
    assert!(records.len() > 100);
    let refs: Vec<&BatchRecord> = records.iter().collect();
    let encoded = BulkEncoder::new("logs-claudit.ocsf-default", 100_000_000).encode(&refs);
    assert!(encoded.rejected.is_empty());
    let mut unmapped_paths = std::collections::BTreeSet::new();
    let mut mismatches = Vec::new();
    let mut checked = 0usize;
    for request in &encoded.requests {
        let body = std::str::from_utf8(&request.body).unwrap();
        for doc in body.split_terminator('\n').skip(1).step_by(2) {
            let doc: Value = serde_json::from_str(doc).unwrap();
            let mut leaves = Vec::new();
            collect_leaves(&doc, String::new(), &mut leaves);
            for (path, value) in leaves {
                checked += 1;
                let Some(ty) = field_type(&path) else {
                    unmapped_paths.insert(path);
                    continue;
                };
                if !fits(&ty, &value) {
                    mismatches.push(format!("{path}: {ty} cannot hold {value}"));
                }
            }
        }
    }
    assert!(checked > 1000);
    assert!(
        unmapped_paths.is_empty(),
        "fields missing from the template: {unmapped_paths:?}"
    );
    assert!(mismatches.is_empty(), "{mismatches:?}");
}

fn collect_leaves(value: &Value, path: String, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if p == "unmapped" {
                    out.push((p, v.clone()));
                } else {
                    collect_leaves(v, p, out);
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                collect_leaves(v, path.clone(), out);
            }
        }
        other => out.push((path, other.clone())),
    }
}

/// Whether Elasticsearch would index `value` into a field of type `ty`.
fn fits(ty: &str, value: &Value) -> bool {
    match ty {
        "keyword" => value.is_string() || value.is_number() || value.is_boolean(),
        "text" => value.is_string(),
        "integer" => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        "long" => value.is_i64() || value.is_u64(),
        "float" => value.is_number(),
        "ip" => value
            .as_str()
            .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
        "date" => {
            value.is_i64()
                || value
                    .as_str()
                    .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
        }
        "flattened" => value.is_object(),
        _ => false,
    }
}

/// The top-level fields of the activity that the `anthropic` integration's
/// ingest pipeline reads out of `message` (`spec/vendor-content.md`
/// section 3), and the `actor` fields it reads.
const PIPELINE_READS: &[&str] = &[
    "id",
    "type",
    "created_at",
    "organization_id",
    "actor",
    "request_method",
    "request_id",
    "status_code",
    "url",
    "invited_email",
    "deleted_user_email",
    "user_email",
    "invitee_email",
    "user_id",
    "deleted_user_id",
    "requester_user_id",
    "principal_id",
    "principal_type",
    "target_id",
    "target_type",
    "filename",
    "reason",
    "organization_name",
    "role",
];
const PIPELINE_ACTOR_READS: &[&str] = &[
    "ip_address",
    "user_agent",
    "email_address",
    "user_id",
    "unauthenticated_email_address",
    "type",
];

/// What Elastic's `anthropic` integration needs of one `_bulk` document
/// (`spec/vendor-content.md` section 3): the data stream's constant
/// `data_stream.*` fields matching its name, `event.dataset` and the
/// saved search's `data_stream.dataset`, the Agent's tags, and the raw
/// activity as a JSON string in `message` (the pipeline parses nothing
/// else; fields already parsed at the top level would collide with the
/// ECS fields it writes). Returns the problems found.
fn integration_problems(doc: &Value, namespace: &str, raw: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let obj = doc.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    if keys != ["@timestamp", "data_stream", "event", "message", "tags"] {
        problems.push(format!("top-level fields {keys:?}"));
    }
    if doc["data_stream"]
        != serde_json::json!({"type": "logs", "dataset": "anthropic.audit", "namespace": namespace})
    {
        problems.push(format!("data_stream {}", doc["data_stream"]));
    }
    if doc["event"]["dataset"] != "anthropic.audit" {
        problems.push("event.dataset".into());
    }
    if doc["tags"] != serde_json::json!(["forwarded", "anthropic-audit"]) {
        problems.push(format!("tags {}", doc["tags"]));
    }
    let Some(message) = doc["message"].as_str() else {
        return vec!["message is not a string".into()];
    };
    if message != raw {
        problems.push("message is not the activity as received".into());
    }
    let (parsed, raw): (Value, Value) = (
        serde_json::from_str(message).unwrap_or_default(),
        serde_json::from_str(raw).unwrap(),
    );
    for k in PIPELINE_READS {
        if parsed[*k] != raw[*k] {
            problems.push(format!("message.{k}"));
        }
    }
    for k in PIPELINE_ACTOR_READS {
        if parsed["actor"][*k] != raw["actor"][*k] {
            problems.push(format!("message.actor.{k}"));
        }
    }
    problems
}

/// `layout = "elastic_integration"` from the configuration file, through
/// the sink task, on every published sample activity: each is created once
/// in `logs-anthropic.audit-<namespace>` with its activity id, as the
/// integration's pipeline expects it; a second run creates nothing new.
#[tokio::test]
async fn the_elastic_integration_layout_feeds_the_anthropic_data_stream() {
    let (server, state) = es::start(&api_key_header()).await;
    state.state().index = Some("logs-anthropic.audit-prod".into());
    let samples = crate::support::journal::sample_activities();
    let journal = Journal::with_activities(&samples);
    let text = format!(
        r#"
[state]
path = "/tmp/claudit-es-test.db"

[[sources]]
name = "acme"
api_key = "${{ANTHROPIC_COMPLIANCE_API_KEY}}"

[[sinks]]
name = "es"
type = "elasticsearch"
url = "{}"
layout = "elastic_integration"
index = "logs-anthropic.audit-prod"
api_key = "${{ES_KEY}}"
batch_linger = "0s"
"#,
        server.uri()
    );
    let sink = load(&text).unwrap().sinks.remove(0);
    assert_eq!(sink.format, Format::Raw);
    // A second sink over the same journal resends everything: the
    // integration's data stream keeps one document per activity.
    let again = SinkConfig {
        name: "es_again".into(),
        ..sink.clone()
    };
    for config in [sink, again] {
        let (seq, head, dead) =
            crate::support::sink_task::run_until_caught_up(&journal, config).await;
        assert_eq!((seq, dead), (head, 0));
    }
    let st = state.state();
    assert_eq!(st.conflicts, samples.len());
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    assert_eq!(st.docs.len(), samples.len());
    for ((id, doc), (want_id, at, raw)) in st.docs.iter().zip(&samples) {
        assert_eq!(id, want_id, "_id is the activity id");
        let problems = integration_problems(doc, "prod", raw);
        assert!(problems.is_empty(), "{problems:?} in {doc}");
        let ts = chrono::DateTime::parse_from_rfc3339(doc["@timestamp"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        assert_eq!(ts, *at);
    }
}

#[test]
fn the_elastic_integration_layout_refuses_other_indexes_and_formats() {
    let text = |extra: &str| {
        format!(
            "[state]\npath = \"/tmp/claudit-es-test.db\"\n\n[[sources]]\nname = \"acme\"\n\
             api_key = \"${{ANTHROPIC_COMPLIANCE_API_KEY}}\"\n\n[[sinks]]\nname = \"es\"\n\
             type = \"elasticsearch\"\nurl = \"https://es.example.com:9200\"\n\
             layout = \"elastic_integration\"\napi_key = \"${{ES_KEY}}\"\n{extra}"
        )
    };
    let ok = load(&text("")).unwrap();
    assert_eq!(
        es_config(&ok.sinks[0]).index,
        "logs-anthropic.audit-default"
    );
    let err = load(&text("index = \"logs-claudit.ocsf-default\"")).unwrap_err();
    assert!(
        err.contains("sinks[0].index") && err.contains("logs-anthropic.audit-"),
        "{err}"
    );
    let err = load(&text("format = \"ocsf\"")).unwrap_err();
    assert!(err.contains("sinks[0].format"), "{err}");
}
