//! The splunk_hec sink against a strict HEC emulator (wiremock with a
//! stateful responder): it enforces `Authorization: Splunk <token>`, the
//! path, the content type, gzip, the 1 MB request limit, the envelope of
//! every concatenated event, the channel GUID when acknowledgement is on,
//! and answers with HEC's JSON bodies and codes (`spec/sinks.md` section 1).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use claudit::config::{HttpSinkConfig, SinkKind, SplunkHecSinkConfig};
use claudit::sinks::contract::Outcome;
use claudit::sinks::splunk_hec::{MAX_REQUEST_BYTES, SplunkHecSink};
use claudit::store::BatchRecord;
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::http;
use crate::support::journal::{Journal, ocsf_event};
use crate::support::logs::Logs;
use crate::support::metrics::layout_field_count;
use crate::support::sink_task::{run_sink_until, sink_settings};

const TOKEN: &str = "5f1c2a9e-7b3d-4e8f-9a10-2b3c4d5e6f70";

/// Emulator state, shared with the test.
#[derive(Default)]
struct HecState {
    /// Token has `useACK` on: a channel is required and 200s carry an ackId.
    ack: bool,
    /// Indexes the token may write; empty = any.
    allowed_indexes: Vec<String>,
    /// Events indexed, in order.
    events: Vec<Value>,
    /// Every event request: (uncompressed size, number of events, channel, arrival).
    requests: Vec<(usize, usize, Option<String>, Instant)>,
    /// Replies to give (after authentication) instead of processing.
    script: VecDeque<ResponseTemplate>,
    /// Events whose `event.metadata.uid` HEC treats as malformed.
    bad_uids: Vec<String>,
    /// Whether code 6 replies name the bad event.
    name_bad_event: bool,
    /// ackId -> events of that request, pending until polled `ack_after` times.
    pending: HashMap<u64, (Vec<Value>, u32)>,
    ack_after: u32,
    /// Acks are never confirmed.
    ack_lost: bool,
    next_ack: u64,
    ack_polls: usize,
    /// Every event request, including the refused ones.
    attempts: usize,
}

#[derive(Clone, Default)]
struct Hec(Arc<Mutex<HecState>>);

fn reply(status: u16, code: i64, text: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"text": text, "code": code}))
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

impl Hec {
    fn state(&self) -> std::sync::MutexGuard<'_, HecState> {
        self.0.lock().unwrap()
    }

    fn authenticate(req: &Request) -> Option<ResponseTemplate> {
        let Some(auth) = req.headers.get("authorization") else {
            return Some(reply(401, 2, "Token is required"));
        };
        let auth = auth.to_str().unwrap_or_default();
        let Some(token) = auth.strip_prefix("Splunk ") else {
            return Some(reply(401, 3, "Invalid authorization"));
        };
        (token != TOKEN).then(|| reply(403, 4, "Invalid token"))
    }

    fn channel(&self, req: &Request) -> Result<Option<String>, Box<ResponseTemplate>> {
        let channel = req
            .headers
            .get("x-splunk-request-channel")
            .map(|v| v.to_str().unwrap_or_default().to_string());
        if self.state().ack {
            match &channel {
                None => return Err(Box::new(reply(400, 10, "Data channel is missing"))),
                Some(c) if !is_guid(c) => {
                    return Err(Box::new(reply(400, 11, "Invalid data channel")));
                }
                _ => {}
            }
        }
        Ok(channel)
    }

    fn event(&self, req: &Request) -> ResponseTemplate {
        if req.method.as_str() != "POST" {
            return ResponseTemplate::new(405);
        }
        self.state().attempts += 1;
        if let Some(r) = Self::authenticate(req) {
            return r;
        }
        let channel = match self.channel(req) {
            Ok(c) => c,
            Err(r) => return *r,
        };
        let content_type = req
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap_or_default());
        assert_eq!(
            content_type,
            Some("application/json"),
            "HEC events are JSON"
        );
        let body = http::decoded_body(req);
        if body.len() > MAX_REQUEST_BYTES {
            return ResponseTemplate::new(413)
                .set_body_string("Content-Length exceeds max_content_length");
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return reply(400, 5, "No data");
        }
        let mut state = self.state();
        // Concatenated JSON objects, each a full HEC envelope.
        let mut events = Vec::new();
        for (i, item) in serde_json::Deserializer::from_slice(&body)
            .into_iter::<Value>()
            .enumerate()
        {
            let bad = |code: i64, text: &str| {
                ResponseTemplate::new(400)
                    .set_body_json(json!({"text": text, "code": code, "invalid-event-number": i}))
            };
            let Ok(envelope) = item else {
                return bad(6, "Invalid data format");
            };
            let Some(ev) = envelope.get("event") else {
                return bad(12, "Event field is required");
            };
            if ev.as_object().is_none_or(|o| o.is_empty()) {
                return bad(13, "Event field cannot be blank");
            }
            let time = envelope["time"]
                .as_f64()
                .expect("time is epoch seconds as a number");
            assert!(
                time > 1.0e9 && time < 1.0e10,
                "time {time} is not epoch seconds"
            );
            for key in ["host", "source", "sourcetype"] {
                assert!(envelope[key].is_string(), "{key} missing in {envelope}");
            }
            if let Some(index) = envelope.get("index").and_then(Value::as_str)
                && !state.allowed_indexes.is_empty()
                && !state.allowed_indexes.iter().any(|i| i == index)
            {
                return bad(7, "Incorrect index");
            }
            if let Some(fields) = envelope.get("fields") {
                let flat = fields
                    .as_object()
                    .is_some_and(|f| f.values().all(Value::is_string));
                if !flat {
                    return bad(15, "Error in handling indexed fields");
                }
            }
            let uid = ev["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if state.bad_uids.contains(&uid) {
                return if state.name_bad_event {
                    bad(6, "Invalid data format")
                } else {
                    reply(400, 6, "Invalid data format")
                };
            }
            events.push(envelope);
        }
        state
            .requests
            .push((body.len(), events.len(), channel, Instant::now()));
        if let Some(scripted) = state.script.pop_front() {
            return scripted;
        }
        if state.ack {
            let id = state.next_ack;
            state.next_ack += 1;
            let after = state.ack_after;
            state.pending.insert(id, (events, after));
            ResponseTemplate::new(200)
                .set_body_json(json!({"text": "Success", "code": 0, "ackId": id}))
        } else {
            state.events.extend(events);
            reply(200, 0, "Success")
        }
    }

    fn ack(&self, req: &Request) -> ResponseTemplate {
        if let Some(r) = Self::authenticate(req) {
            return r;
        }
        if !self.state().ack {
            return reply(400, 14, "ACK is disabled");
        }
        if let Err(r) = self.channel(req) {
            return *r;
        }
        let body: Value = serde_json::from_slice(&req.body).expect("ack body is JSON");
        let mut state = self.state();
        state.ack_polls += 1;
        let lost = state.ack_lost;
        let mut acks = serde_json::Map::new();
        for id in body["acks"].as_array().expect("{\"acks\":[...]}") {
            let id = id.as_u64().unwrap();
            let done = match state.pending.get_mut(&id) {
                Some((_, remaining)) if *remaining > 0 => {
                    *remaining -= 1;
                    false
                }
                Some(_) if !lost => true,
                _ => false,
            };
            if done {
                let (events, _) = state.pending.remove(&id).unwrap();
                state.events.extend(events);
            }
            acks.insert(id.to_string(), Value::Bool(done));
        }
        ResponseTemplate::new(200).set_body_json(json!({ "acks": acks }))
    }
}

impl Respond for Hec {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        match req.url.path() {
            "/services/collector/event" => self.event(req),
            "/services/collector/ack" => self.ack(req),
            "/services/collector/health/1.0" => match Self::authenticate(req) {
                Some(r) => r,
                None => reply(200, 17, "HEC is healthy"),
            },
            _ => ResponseTemplate::new(404),
        }
    }
}

async fn emulator(state: HecState) -> (MockServer, Hec) {
    let server = MockServer::start().await;
    let hec = Hec(Arc::new(Mutex::new(state)));
    Mock::given(any())
        .respond_with(hec.clone())
        .mount(&server)
        .await;
    (server, hec)
}

fn config(url: &str) -> SplunkHecSinkConfig {
    SplunkHecSinkConfig {
        url: url.to_string(),
        token: TOKEN.to_string().into(),
        host: Some("collector-1".into()),
        source: "claudit".into(),
        sourcetype: "anthropic:claude:compliance".into(),
        index: Some("audit".into()),
        fields: vec![("org".into(), "acme".into())],
        ack: false,
        ack_poll_interval: Duration::from_millis(10),
        ack_timeout: Duration::from_secs(2),
        layout: None,
        http: HttpSinkConfig {
            tls_ca_file: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            compression: true,
        },
    }
}

fn records(n: usize, pad: usize) -> Vec<BatchRecord> {
    (0..n)
        .map(|i| BatchRecord {
            seq: i as i64 + 1,
            activity_id: format!("activity_{i}"),
            created_at_ms: 1_746_864_000_007 + i as i64,
            payload: ocsf_event(&format!("activity_{i}"), pad),
        })
        .collect()
}

/// A local URL nothing listens on (wiremock pools its servers, so a dropped
/// MockServer's port may be serving another test).
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

fn uids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event"]["metadata"]["uid"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_valid_batch_is_indexed_with_the_hec_envelope() {
    let (server, hec) = emulator(HecState::default()).await;
    let mut sink = SplunkHecSink::new(&config(&server.uri())).unwrap();
    let batch = records(50, 100);
    assert_eq!(sink.send(&batch).await, Outcome::delivered());
    let state = hec.state();
    assert_eq!(state.requests.len(), 1, "50 small events fit one request");
    assert_eq!(state.events.len(), 50);
    let first = &state.events[0];
    assert_eq!(first["time"].as_f64(), Some(1746864000.007));
    assert_eq!(state.events[1]["time"].as_f64(), Some(1746864000.008));
    assert_eq!(first["sourcetype"], "anthropic:claude:compliance");
    assert_eq!(first["source"], "claudit");
    assert_eq!(first["host"], "collector-1");
    assert_eq!(first["index"], "audit");
    assert_eq!(first["fields"], json!({"org": "acme"}));
    let sent: Value = serde_json::from_str(&batch[0].payload).unwrap();
    assert_eq!(first["event"], sent, "the event is the payload, unchanged");
}

#[tokio::test]
async fn uncompressed_requests_are_accepted_too() {
    let (server, hec) = emulator(HecState::default()).await;
    let mut c = config(&server.uri());
    c.http.compression = false;
    c.index = None;
    let mut sink = SplunkHecSink::new(&c).unwrap();
    assert_eq!(sink.send(&records(3, 10)).await, Outcome::delivered());
    let received = server.received_requests().await.unwrap();
    assert!(received[0].headers.get("content-encoding").is_none());
    assert!(hec.state().events[0].get("index").is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn oversize_batches_split_and_an_oversize_event_is_dead_lettered() {
    let (server, hec) = emulator(HecState::default()).await;
    // 12 events of ~300 KB (about 3 per request) and one of 1.2 MB.
    let mut input: Vec<(String, String)> = (0..12)
        .map(|i| (format!("act_{i}"), ocsf_event(&format!("act_{i}"), 300_000)))
        .collect();
    input.insert(5, ("act_huge".into(), ocsf_event("act_huge", 1_200_000)));
    let j = Journal::with_payloads(&input);
    let head = j.head();
    let kind = SinkKind::new(config(&server.uri()));
    run_sink_until(&j, sink_settings("splunk", kind, 1000, 10_000_000), |j| {
        j.cursor("splunk").seq == head
    })
    .await;
    let state = hec.state();
    let want: Vec<String> = (0..12).map(|i| format!("act_{i}")).collect();
    assert_eq!(
        uids(&state.events),
        want,
        "every other event once, in order"
    );
    assert!(
        state.requests.len() >= 4,
        "{} requests",
        state.requests.len()
    );
    for (size, _, _, _) in &state.requests {
        assert!(*size <= MAX_REQUEST_BYTES, "request of {size} bytes");
    }
    let dead = j.dead_letters("splunk");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, "act_huge");
    assert!(dead[0].1.contains("exceeds"), "{}", dead[0].1);
    assert_eq!(j.cursor("splunk").delivered, 12);
}

#[tokio::test]
async fn busy_and_internal_errors_retry_with_the_servers_delay() {
    for (status, code, text) in [
        (503, 9, "Server is busy"),
        (500, 8, "Internal server error"),
    ] {
        let (server, hec) = emulator(HecState::default()).await;
        hec.state()
            .script
            .push_back(reply(status, code, text).insert_header("Retry-After", "1"));
        let mut sink = SplunkHecSink::new(&config(&server.uri())).unwrap();
        let batch = records(5, 10);
        match sink.send(&batch).await {
            Outcome::Retry { after, reason } => {
                assert_eq!(after, Some(Duration::from_secs(1)), "{code}");
                assert!(reason.contains(text), "{reason}");
            }
            other => panic!("code {code}: expected Retry, got {other:?}"),
        }
        assert!(hec.state().events.is_empty());
        assert_eq!(sink.send(&batch).await, Outcome::delivered());
        assert_eq!(hec.state().events.len(), 5);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_sink_task_waits_at_least_retry_after_then_delivers_once() {
    let (server, hec) = emulator(HecState::default()).await;
    hec.state()
        .script
        .push_back(reply(503, 9, "Server is busy").insert_header("Retry-After", "1"));
    let input: Vec<(String, String)> = (0..20)
        .map(|i| (format!("a{i}"), ocsf_event(&format!("a{i}"), 50)))
        .collect();
    let j = Journal::with_payloads(&input);
    let head = j.head();
    let kind = SinkKind::new(config(&server.uri()));
    run_sink_until(&j, sink_settings("splunk", kind, 1000, 1_000_000), |j| {
        j.cursor("splunk").seq == head
    })
    .await;
    let state = hec.state();
    assert_eq!(state.events.len(), 20, "delivered once after the retry");
    assert_eq!(state.requests.len(), 2);
    let gap = state.requests[1].3 - state.requests[0].3;
    assert!(
        gap >= Duration::from_secs(1),
        "retried after {gap:?}, before Retry-After"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn token_and_index_errors_are_fatal_and_discard_nothing() {
    // Wrong token (403 code 4), then an index the token may not use (400 code 7).
    for case in ["token", "index"] {
        let (server, hec) = emulator(HecState {
            allowed_indexes: vec!["main".into()],
            ..HecState::default()
        })
        .await;
        let mut c = config(&server.uri());
        let secret = "deadbeef-0000-4000-8000-00000000cafe";
        if case == "token" {
            c.token = secret.to_string().into();
            c.index = Some("main".into());
        }
        let mut sink = SplunkHecSink::new(&c).unwrap();
        let outcome = sink.send(&records(3, 10)).await;
        let Outcome::Fatal { reason } = outcome else {
            panic!("{case}: expected Fatal, got {outcome:?}");
        };
        let expected = if case == "token" {
            "Invalid token"
        } else {
            "Incorrect index"
        };
        assert!(reason.contains(expected), "{reason}");
        assert!(!reason.contains(secret) && !reason.contains(TOKEN));
        assert!(hec.state().events.is_empty());

        // Through the task: the cursor stays, nothing is dead-lettered.
        let logs = Logs::default();
        let _guard = logs.capture();
        let j = Journal::with_payloads(&[("x1".into(), ocsf_event("x1", 10))]);
        run_sink_until(
            &j,
            sink_settings("splunk", SinkKind::new(c), 1000, 1_000_000),
            |j| j.cursor("splunk").last_error.is_some(),
        )
        .await;
        assert_eq!(j.cursor("splunk").seq, 0);
        assert!(j.dead_letters("splunk").is_empty());
        let text = logs.text();
        assert!(text.contains(expected), "{text}");
        for place in [text, j.all_text()] {
            assert!(!place.contains(secret) && !place.contains(TOKEN));
        }
    }
}

#[tokio::test]
async fn a_bad_event_named_by_hec_is_dead_lettered_and_the_rest_delivered() {
    let (server, hec) = emulator(HecState {
        bad_uids: vec!["activity_3".into()],
        name_bad_event: true,
        ..HecState::default()
    })
    .await;
    let mut sink = SplunkHecSink::new(&config(&server.uri())).unwrap();
    let Outcome::Delivered { rejected } = sink.send(&records(8, 10)).await else {
        panic!("expected Delivered");
    };
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].activity_id, "activity_3");
    assert!(rejected[0].response.contains("code 6"), "{:?}", rejected[0]);
    let mut got = uids(&hec.state().events);
    got.sort();
    let want: Vec<String> = [0, 1, 2, 4, 5, 6, 7]
        .iter()
        .map(|i| format!("activity_{i}"))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        hec.state().attempts,
        2,
        "one refused request, one with the rest"
    );
}

#[tokio::test]
async fn an_unnamed_bad_event_is_isolated_by_halving() {
    let (server, hec) = emulator(HecState {
        bad_uids: vec!["activity_5".into()],
        name_bad_event: false,
        ..HecState::default()
    })
    .await;
    let mut sink = SplunkHecSink::new(&config(&server.uri())).unwrap();
    let Outcome::Delivered { rejected } = sink.send(&records(16, 10)).await else {
        panic!("expected Delivered");
    };
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].activity_id, "activity_5");
    let got = uids(&hec.state().events);
    assert_eq!(got.len(), 15);
    assert!(!got.contains(&"activity_5".to_string()));
    // 16 -> 8 -> 4 -> 2 -> 1: a few requests, not one per event.
    assert_eq!(hec.state().attempts, 9);
}

#[tokio::test]
async fn a_server_limit_below_ours_splits_on_413() {
    let (server, hec) = emulator(HecState::default()).await;
    hec.state().script.push_back(
        ResponseTemplate::new(413).set_body_string("Content-Length exceeds max_content_length"),
    );
    let mut sink = SplunkHecSink::new(&config(&server.uri())).unwrap();
    assert_eq!(sink.send(&records(10, 10)).await, Outcome::delivered());
    assert_eq!(hec.state().events.len(), 10);
    assert_eq!(hec.state().requests.len(), 3, "the whole, then two halves");
}

#[tokio::test]
async fn indexer_acknowledgement_confirms_before_delivery() {
    let (server, hec) = emulator(HecState {
        ack: true,
        ack_after: 2,
        ..HecState::default()
    })
    .await;
    let mut c = config(&server.uri());
    c.ack = true;
    let mut sink = SplunkHecSink::new(&c).unwrap();
    assert_eq!(sink.send(&records(5, 10)).await, Outcome::delivered());
    let channel = {
        let state = hec.state();
        assert_eq!(state.events.len(), 5, "indexed once acknowledged");
        assert!(
            state.ack_polls >= 3,
            "polled until true: {}",
            state.ack_polls
        );
        state.requests[0].2.clone().expect("channel header")
    };
    assert_eq!(channel, sink.channel());
    // Every ack query carried the same channel and the token.
    for req in server.received_requests().await.unwrap() {
        assert_eq!(
            req.headers["x-splunk-request-channel"].to_str().unwrap(),
            channel
        );
        assert_eq!(
            req.headers["authorization"].to_str().unwrap(),
            format!("Splunk {TOKEN}")
        );
    }
}

#[tokio::test]
async fn an_unconfirmed_ack_times_out_into_a_retry() {
    let (server, hec) = emulator(HecState {
        ack: true,
        ack_lost: true,
        ..HecState::default()
    })
    .await;
    let mut c = config(&server.uri());
    c.ack = true;
    c.ack_timeout = Duration::from_millis(100);
    let mut sink = SplunkHecSink::new(&c).unwrap();
    let batch = records(4, 10);
    match sink.send(&batch).await {
        Outcome::Retry { reason, .. } => assert!(reason.contains("ackId 0"), "{reason}"),
        other => panic!("expected Retry, got {other:?}"),
    }
    // The retry sends the request again; this time HEC confirms it.
    hec.state().ack_lost = false;
    assert_eq!(sink.send(&batch).await, Outcome::delivered());
    assert_eq!(hec.state().requests.len(), 2);
    assert_eq!(hec.state().events.len(), 4);
}

#[tokio::test(flavor = "current_thread")]
async fn with_ack_the_cursor_advances_only_after_indexing() {
    let (server, hec) = emulator(HecState {
        ack: true,
        ack_lost: true,
        ..HecState::default()
    })
    .await;
    let mut c = config(&server.uri());
    c.ack = true;
    c.ack_timeout = Duration::from_millis(50);
    let input: Vec<(String, String)> = (0..3)
        .map(|i| (format!("k{i}"), ocsf_event(&format!("k{i}"), 10)))
        .collect();
    let j = Journal::with_payloads(&input);
    let head = j.head();
    let kind = SinkKind::new(c);
    run_sink_until(
        &j,
        sink_settings("splunk", kind.clone(), 1000, 1_000_000),
        |j| j.cursor("splunk").last_error.is_some(),
    )
    .await;
    assert_eq!(
        j.cursor("splunk").seq,
        0,
        "accepted but never indexed: not delivered"
    );
    hec.state().ack_lost = false;
    run_sink_until(&j, sink_settings("splunk", kind, 1000, 1_000_000), |j| {
        j.cursor("splunk").seq == head
    })
    .await;
    assert_eq!(uids(&hec.state().events), ["k0", "k1", "k2"]);
}

#[tokio::test]
async fn a_token_without_ack_falls_back_to_http_200() {
    let (server, hec) = emulator(HecState::default()).await;
    let mut c = config(&server.uri());
    c.ack = true;
    let mut sink = SplunkHecSink::new(&c).unwrap();
    assert_eq!(sink.send(&records(2, 10)).await, Outcome::delivered());
    assert_eq!(hec.state().events.len(), 2);
    assert_eq!(hec.state().ack_polls, 0);
}

#[tokio::test]
async fn a_retry_does_not_resend_acknowledged_requests() {
    let (server, hec) = emulator(HecState::default()).await;
    {
        let mut s = hec.state();
        // First request accepted, second refused with 503.
        s.script.push_back(reply(200, 0, "Success"));
        s.script.push_back(reply(503, 9, "Server is busy"));
    }
    let mut sink = SplunkHecSink::new(&config(&server.uri())).unwrap();
    // ~3 events of 300 KB per request: 9 events = 3 requests.
    let batch = records(9, 300_000);
    assert!(matches!(sink.send(&batch).await, Outcome::Retry { .. }));
    assert_eq!(hec.state().requests.len(), 2);
    let first_request = hec.state().requests[0].1;
    assert_eq!(sink.send(&batch).await, Outcome::delivered());
    let state = hec.state();
    // Scripted replies skip storing, so count what the retry sent: the
    // events of the accepted first request are not among them.
    let resent: usize = state.requests[2..].iter().map(|r| r.1).sum();
    assert_eq!(
        resent,
        9 - first_request,
        "only unacknowledged events re-sent"
    );
    assert_eq!(state.events.len(), 9 - first_request);
}

#[tokio::test]
async fn healthcheck_reports_health_and_token() {
    let (server, _hec) = emulator(HecState::default()).await;
    let sink = SplunkHecSink::new(&config(&server.uri())).unwrap();
    let ok = sink.healthcheck().await.unwrap();
    assert!(ok.contains("healthy"), "{ok}");
    let mut c = config(&server.uri());
    let secret = "deadbeef-0000-4000-8000-00000000cafe";
    c.token = secret.to_string().into();
    let err = SplunkHecSink::new(&c)
        .unwrap()
        .healthcheck()
        .await
        .unwrap_err();
    assert!(
        err.contains("Invalid token") && !err.contains(secret),
        "{err}"
    );
    let paths: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_string())
        .collect();
    assert!(paths.contains(&"/services/collector/health/1.0".to_string()));
}

#[tokio::test]
async fn an_unreachable_hec_is_a_retry() {
    let mut sink = SplunkHecSink::new(&config(&closed_port_url())).unwrap();
    let outcome = sink.send(&records(1, 10)).await;
    assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
}

// ------------------------------------------------------------ configuration

mod config_keys {
    use std::path::Path;

    use claudit::config::{self, ConfigErrors, SplunkHecSinkConfig};
    use secrecy::ExposeSecret;

    use super::TOKEN;

    const FILE: &str = "/etc/claudit/claudit.toml";

    fn text(sink_keys: &str) -> String {
        format!(
            r#"
[state]
path = "/var/lib/claudit/state.db"

[[sources]]
name = "acme"
api_key = "${{API_KEY}}"

[[sinks]]
name = "splunk"
type = "splunk_hec"
{sink_keys}
"#
        )
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "API_KEY" => Some("sk-ant-api01-xyz".into()),
            "SPLUNK_HEC_TOKEN" => Some(TOKEN.into()),
            _ => None,
        }
    }

    fn load(sink_keys: &str) -> Result<SplunkHecSinkConfig, ConfigErrors> {
        let config = config::load_str(&text(sink_keys), Path::new(FILE), &env)?;
        let Some(c) = config.sinks[0]
            .kind
            .get::<claudit::config::SplunkHecSinkConfig>()
            .cloned()
        else {
            panic!("not a splunk_hec sink");
        };
        assert_eq!(config.sinks[0].batch.max_bytes, 1_000_000);
        Ok(c)
    }

    fn errors(sink_keys: &str) -> String {
        let e = load(sink_keys).expect_err("expected errors").to_string();
        assert!(!e.contains(TOKEN), "the token leaked: {e}");
        e
    }

    #[test]
    fn defaults_and_every_key() {
        let c = load("url = \"https://splunk.example.com:8088/\"\ntoken = \"${SPLUNK_HEC_TOKEN}\"")
            .unwrap();
        assert_eq!(c.url, "https://splunk.example.com:8088");
        assert_eq!(c.token.expose_secret(), TOKEN);
        assert_eq!(c.sourcetype, "anthropic:claude:compliance");
        assert_eq!(c.source, "claudit");
        assert_eq!((c.host, c.index, c.ack), (None, None, false));
        assert!(c.fields.is_empty() && c.http.compression);

        let c = load(
            r#"url = "https://http-inputs-acme.splunkcloud.com"
token = "${SPLUNK_HEC_TOKEN}"
host = "h1"
source = "s1"
sourcetype = "st"
index = "audit"
ack = true
ack_poll_interval = "2s"
ack_timeout = "1m"
compression = false
fields = { org = "acme", region = "eu" }"#,
        )
        .unwrap();
        assert_eq!(c.host.as_deref(), Some("h1"));
        assert_eq!(c.index.as_deref(), Some("audit"));
        assert!(c.ack && !c.http.compression);
        assert_eq!(c.ack_timeout.as_secs(), 60);
        assert_eq!(
            c.fields,
            vec![
                ("org".to_string(), "acme".to_string()),
                ("region".into(), "eu".into())
            ]
        );
    }

    #[test]
    fn bad_values_name_the_key_and_the_fix() {
        let e = errors("token = \"${SPLUNK_HEC_TOKEN}\"");
        assert!(
            e.contains("sinks[0].url") && e.contains("missing required key"),
            "{e}"
        );
        let e = errors(
            "url = \"https://splunk:8088/services/collector/event\"\ntoken = \"${SPLUNK_HEC_TOKEN}\"",
        );
        assert!(
            e.contains("must not include the /services/collector path"),
            "{e}"
        );
        let e = errors("url = \"http://splunk.example.com:8088\"\ntoken = \"${SPLUNK_HEC_TOKEN}\"");
        assert!(e.contains("plain http"), "{e}");
        let e = errors(&format!(
            "url = \"https://s:8088\"\ntoken = \"{TOKEN}\"\ntoken_file = \"/run/t\""
        ));
        assert!(e.contains("both token and token_file"), "{e}");
        let e = errors("url = \"https://s:8088\"");
        assert!(
            e.contains("sinks[0].token") && e.contains("SPLUNK_HEC_TOKEN"),
            "{e}"
        );
        let e =
            errors("url = \"https://s:8088\"\ntoken = \"${SPLUNK_HEC_TOKEN}\"\nfields = { n = 3 }");
        assert!(
            e.contains("sinks[0].fields.n") && e.contains("expected a string"),
            "{e}"
        );
        let e = errors("url = \"https://s:8088\"\ntoken = \"${SPLUNK_HEC_TOKEN}\"\nindex = \"\"");
        assert!(
            e.contains("sinks[0].index") && e.contains("is empty"),
            "{e}"
        );
        let e = errors("url = \"https://s:8088\"\ntoken = \"${SPLUNK_HEC_TOKEN}\"\nacks = true");
        assert!(e.contains("did you mean ack"), "{e}");
    }
}

/// What the Splunk add-on's content reads of one indexed activity
/// (`spec/vendor-content.md` section 1): its event types, tags and searches
/// key on the sourcetype and `event_type`; props.conf parses the event as
/// JSON (`KV_MODE = json`, cut at `TRUNCATE = 65536`) and takes `_time`
/// after `"created_at":"`; the field aliases read `actor_email`,
/// `actor_ip_address`, `actor_user_agent`; the dashboards read `event_type,
/// actor_type, actor_email, target_email, actor_ip_address, actor_user_id,
/// actor_api_key_id, claude_chat_id, claude_project_id, organization_id`.
/// Returns every way the envelope would fail that content.
fn splunk_app_problems(envelope: &Value, raw: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    check(
        envelope["sourcetype"] == "anthropic:compliance:activity",
        format!("sourcetype {}", envelope["sourcetype"]),
    );
    let Some(event) = envelope["event"].as_object() else {
        return vec![format!("event is not an object: {}", envelope["event"])];
    };
    let text = serde_json::to_string(event).unwrap();
    check(
        text.len() <= 65_536,
        format!("event of {} bytes", text.len()),
    );
    let created = raw["created_at"].as_str().unwrap_or_default();
    check(
        text.contains(&format!("\"created_at\":\"{created}\"")),
        "no created_at for TIME_PREFIX".into(),
    );
    let created_ms = chrono::DateTime::parse_from_rfc3339(created)
        .unwrap()
        .timestamp_millis();
    check(
        envelope["time"].as_f64() == Some(created_ms as f64 / 1000.0),
        format!("time {} for created_at {created}", envelope["time"]),
    );
    check(
        event.values().all(|v| !v.is_null()),
        "a null value (KV_MODE would index \"null\")".into(),
    );
    let field = |k: &str| event.get(k).cloned().unwrap_or(Value::Null);
    check(field("event_type") == raw["type"], "event_type".into());
    check(field("type") == raw["type"], "type".into());
    check(field("activity_id") == raw["id"], "activity_id".into());
    let actor = &raw["actor"];
    for (flat, nested) in [
        ("actor_type", "type"),
        ("actor_user_id", "user_id"),
        ("actor_ip_address", "ip_address"),
        ("actor_user_agent", "user_agent"),
    ] {
        check(
            field(flat) == actor[nested],
            format!("{flat} vs actor.{nested}"),
        );
    }
    let email = ["email_address", "email", "invited_email", "invitee_email"]
        .iter()
        .filter_map(|k| actor[*k].as_str())
        .map(str::trim)
        .find(|s| !s.is_empty());
    match email {
        Some(e) => check(
            field("actor_email") == e,
            format!("actor_email, expected {e}"),
        ),
        None => {
            let top = ["email_address", "email"]
                .iter()
                .filter_map(|k| raw[*k].as_str())
                .find(|s| !s.is_empty());
            check(
                field("actor_email") == field("target_email")
                    && field("target_email") == top.map_or(Value::Null, Value::from),
                "actor_email / target_email from the top-level address".into(),
            );
        }
    }
    let api_key = if actor["type"] == "api_actor" {
        actor["api_key_id"].clone()
    } else {
        Value::Null
    };
    check(
        field("actor_api_key_id") == api_key,
        "actor_api_key_id".into(),
    );
    for k in [
        "claude_chat_id",
        "claude_project_id",
        "organization_id",
        "file_id",
    ] {
        check(field(k) == raw[k], k.to_string());
    }
    for k in ["is_authentication_event", "is_change_event"] {
        check(field(k).is_boolean(), format!("{k} not a boolean"));
    }
    check(
        field("vendor") == "anthropic"
            && field("product") == "claude_enterprise"
            && field("source_type_category") == "compliance_activity",
        "vendor / product / source_type_category".into(),
    );
    problems
}

/// Every non-null field of the activity `raw` is in the add-on's `event`:
/// under the add-on's own key for it, or unchanged under
/// `claudit_unmapped` (the actor's fields in its `actor` object). Returns
/// the fields found there (`actor.x` for the actor's).
fn fields_carried(event: &Value, raw: &Value) -> Vec<String> {
    let mapped = |field: &str| match field {
        "id" => Some("activity_id"),
        "type" => Some("event_type"),
        "created_at" | "organization_id" | "organization_uuid" | "claude_chat_id"
        | "claude_project_id" | "file_id" => Some(""),
        "actor.type" => Some("actor_type"),
        "actor.user_id" => Some("actor_user_id"),
        "actor.email_address" => Some("actor_email"),
        "actor.ip_address" => Some("actor_ip_address"),
        "actor.user_agent" => Some("actor_user_agent"),
        "actor.api_key_id" => Some("actor_api_key_id"),
        _ => None,
    };
    let mut fields: Vec<(String, Value)> = Vec::new();
    for (k, v) in raw.as_object().unwrap() {
        match (k.as_str(), v.as_object()) {
            ("actor", Some(actor)) => {
                fields.extend(actor.iter().map(|(k, v)| (format!("actor.{k}"), v.clone())))
            }
            _ => fields.push((k.clone(), v.clone())),
        }
    }
    let mut carried = Vec::new();
    for (field, value) in fields.into_iter().filter(|(_, v)| !v.is_null()) {
        let in_its_key = mapped(&field)
            .map(|k| if k.is_empty() { field.as_str() } else { k })
            .and_then(|k| event.get(k))
            .is_some_and(|v| *v == value || v.as_str() == value.as_str().map(str::trim));
        if in_its_key {
            continue;
        }
        let kept = match field.split_once('.') {
            Some((outer, inner)) => &event["claudit_unmapped"][outer][inner],
            None => &event["claudit_unmapped"][&field],
        };
        assert_eq!(kept, &value, "{field} lost in {event}");
        carried.push(field);
    }
    carried
}

/// `layout = "splunk_app"` from the configuration file, through the sink
/// task, on every published sample activity: each event is what the
/// Splunk add-on would have indexed itself, and every field the add-on's
/// object has no key for travels unchanged under `claudit_unmapped`,
/// counted once per event even though the first request is refused and
/// the batch sent again.
#[tokio::test]
async fn the_splunk_app_layout_feeds_the_add_ons_content() {
    let (server, hec) = emulator(HecState::default()).await;
    hec.state()
        .script
        .push_back(reply(503, 9, "Server is busy"));
    let mut samples = crate::support::journal::sample_activities();
    // Its note would push the event past the sourcetype's TRUNCATE.
    let long = json!({
        "id": "long_1", "type": "org_user_invite_sent",
        "created_at": "2026-05-22T15:21:54.358426Z", "organization_id": "org_1",
        "actor": {"type": "user_actor", "email_address": "u@example.com"},
        "invited_email": "new@example.com", "note": "x".repeat(70_000)
    });
    samples.push(("long_1".into(), 1_779_463_314_358, long.to_string()));
    let journal = crate::support::journal::Journal::with_activities(&samples);
    let config = crate::support::config::sink_config(
        crate::support::config::sink("splunk", "splunk_hec")
            .set("url", server.uri())
            .set("token", "${HEC}")
            .set("layout", "splunk_app")
            .set("batch_linger", "0s"),
        &[("HEC", TOKEN)],
    );
    assert_eq!(config.format, claudit::config::Format::Raw);
    let metrics = Arc::new(claudit::metrics::Metrics::new());
    let (_, _, dead_letters) =
        crate::support::sink_task::run_until_caught_up_counting(&journal, config, metrics.clone())
            .await;
    assert_eq!(dead_letters, 0);
    let state = hec.state();
    assert!(
        state.requests.len() >= 2,
        "the refused request was sent again"
    );
    assert_eq!(state.events.len(), samples.len());
    let mut carried: HashMap<String, usize> = HashMap::new();
    for (envelope, (_, _, raw)) in state.events.iter().zip(&samples) {
        let raw: Value = serde_json::from_str(raw).unwrap();
        let problems = splunk_app_problems(envelope, &raw);
        assert!(problems.is_empty(), "{problems:?} in {envelope}");
        assert_eq!(
            envelope["source"],
            "anthropic:compliance:activities:claudit"
        );
        if raw["id"] == "long_1" {
            assert!(envelope["event"].get("claudit_unmapped").is_none());
            continue;
        }
        for field in fields_carried(&envelope["event"], &raw) {
            *carried.entry(field).or_default() += 1;
        }
    }
    // The add-on's saved searches find what they look for.
    let types: Vec<&str> = state
        .events
        .iter()
        .filter_map(|e| e["event"]["event_type"].as_str())
        .collect();
    assert!(types.contains(&"claude_chat_created"));
    assert!(
        state
            .events
            .iter()
            .any(|e| e["event"]["is_change_event"] == true)
    );
    // Each carried field counted once per event that carried it.
    let text = metrics.encode();
    assert!(carried["role"] >= 2 && carried["actor.admin_api_key_id"] >= 1);
    for (field, n) in &carried {
        let counted = layout_field_count(&text, "splunk", field, "carried");
        assert_eq!(counted as usize, *n, "{field} carried");
    }
    for field in ["invited_email", "note"] {
        assert_eq!(
            layout_field_count(&text, "splunk", field, "not_in_layout"),
            1,
            "{field} not in the layout"
        );
    }
}

#[test]
fn the_splunk_app_layout_refuses_what_would_break_the_add_on() {
    let load = |extra: &str| {
        crate::support::config::load_with_sink(
            &format!(
                "[[sinks]]\nname = \"s\"\ntype = \"splunk_hec\"\nurl = \"https://splunk.example.com:8088\"\n\
                 token = \"${{HEC}}\"\nlayout = \"splunk_app\"\n{extra}"
            ),
            &[("HEC", TOKEN)],
        )
    };
    let err = load("format = \"ocsf\"").unwrap_err();
    assert!(
        err.contains("sinks[0].format") && err.contains("remove format"),
        "{err}"
    );
    let err = load("sourcetype = \"anthropic:claude:compliance\"").unwrap_err();
    assert!(
        err.contains("sinks[0].sourcetype") && err.contains("anthropic:compliance:activity"),
        "{err}"
    );
    assert!(load("").is_ok());
    let ok = load("format = \"raw\"\nsource = \"anthropic:compliance:activities:acme\"").unwrap();
    let c = ok.sinks[0]
        .kind
        .get::<SplunkHecSinkConfig>()
        .expect("a splunk_hec sink");
    assert_eq!(c.sourcetype, "anthropic:compliance:activity");
    assert_eq!(c.source, "anthropic:compliance:activities:acme");
    let err = crate::support::config::load_with_sink(
        "[[sinks]]\nname = \"s\"\ntype = \"splunk_hec\"\nurl = \"https://splunk.example.com:8088\"\n\
         token = \"t\"\nlayout = \"sentinel_bluevoyant\"",
        &[],
    )
    .unwrap_err();
    assert!(err.contains("splunk_app"), "{err}");
}
