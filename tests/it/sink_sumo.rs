//! The sumo sink against a strict HTTP source emulator (wiremock with a
//! stateful responder): the credential is the URL path (401 otherwise),
//! bodies are NDJSON of at most 1 MB uncompressed, gzip is decoded per
//! `Content-Encoding`, the `X-Sumo-*` headers are recorded, and 429 drops
//! the request's data, as the real service does (`spec/sinks.md` section 3).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use claudit::config::{HttpSinkConfig, SinkKind, SumoSinkConfig};
use claudit::sinks::contract::Outcome;
use claudit::sinks::sumo::{MAX_REQUEST_BYTES, SumoSink};
use claudit::store::BatchRecord;
use serde_json::Value;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::http;
use crate::support::journal::{Journal, ocsf_event};
use crate::support::logs::Logs;
use crate::support::sink_task::{run_sink_until, sink_settings};

/// The source's code: the secret part of the URL.
const CODE: &str = "ZaVnC4dhaV3uTKlva1GBWBGxg5Kh7UoGEkfAR7eOvqPFM1JqlUo0sC55eKRJ8sR3sbtKR0lyXCLiT9A0cM2dVyPJzOh3nbHJ5erN2cBkzcs5T4h2qNG6A==";

/// One POST as received: (uncompressed size, lines, X-Sumo-* headers).
type Post = (usize, usize, Vec<(String, String)>);

#[derive(Default)]
struct SumoState {
    /// Messages ingested (one per line), in order.
    messages: Vec<Value>,
    /// Every POST.
    requests: Vec<Post>,
    /// Replies to give instead of ingesting; 429 and 503 drop the data.
    script: VecDeque<ResponseTemplate>,
}

#[derive(Clone, Default)]
struct Sumo(Arc<Mutex<SumoState>>);

impl Sumo {
    fn state(&self) -> std::sync::MutexGuard<'_, SumoState> {
        self.0.lock().unwrap()
    }
}

impl Respond for Sumo {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        if req.method.as_str() != "POST" || req.url.path() != format!("/receiver/v1/http/{CODE}") {
            return ResponseTemplate::new(401).set_body_string("Unauthorized");
        }
        let body = http::decoded_body(req);
        // Strict mode: Sumo asks for at most 1 MB uncompressed per POST.
        assert!(
            body.len() <= MAX_REQUEST_BYTES,
            "POST of {} bytes",
            body.len()
        );
        let text = String::from_utf8(body).expect("UTF-8 body");
        let mut lines = Vec::new();
        for line in text.lines() {
            lines.push(serde_json::from_str::<Value>(line).expect("one JSON event per line"));
        }
        let headers = req
            .headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-sumo-"))
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let mut state = self.state();
        state.requests.push((text.len(), lines.len(), headers));
        if let Some(scripted) = state.script.pop_front() {
            return scripted;
        }
        state.messages.extend(lines);
        ResponseTemplate::new(200)
    }
}

async fn emulator() -> (MockServer, Sumo) {
    let server = MockServer::start().await;
    let sumo = Sumo::default();
    Mock::given(any())
        .respond_with(sumo.clone())
        .mount(&server)
        .await;
    (server, sumo)
}

fn config(server: &MockServer) -> SumoSinkConfig {
    SumoSinkConfig {
        url: format!("{}/receiver/v1/http/{CODE}", server.uri()).into(),
        category: Some("security/claude".into()),
        source_name: Some("claude-compliance".into()),
        source_host: Some("collector-1".into()),
        fields: vec![("org".into(), "acme".into()), ("env".into(), "prod".into())],
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
            created_at_ms: 1_746_864_000_000,
            payload: ocsf_event(&format!("activity_{i}"), pad),
        })
        .collect()
}

fn uids(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["metadata"]["uid"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_valid_batch_is_ingested_as_ndjson_with_the_sumo_headers() {
    let (server, sumo) = emulator().await;
    let mut sink = SumoSink::new(&config(&server)).unwrap();
    let batch = records(40, 100);
    assert_eq!(sink.send(&batch).await, Outcome::delivered());
    {
        let state = sumo.state();
        assert_eq!(state.requests.len(), 1);
        assert_eq!(state.messages.len(), 40);
        let sent: Value = serde_json::from_str(&batch[7].payload).unwrap();
        assert_eq!(state.messages[7], sent);
        let headers = &state.requests[0].2;
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("x-sumo-category"), Some("security/claude"));
        assert_eq!(get("x-sumo-name"), Some("claude-compliance"));
        assert_eq!(get("x-sumo-host"), Some("collector-1"));
        assert_eq!(get("x-sumo-fields"), Some("org=acme,env=prod"));
    }
    let received = server.received_requests().await.unwrap();
    assert_eq!(received[0].headers["content-encoding"], "gzip");
}

#[tokio::test]
async fn optional_headers_are_left_out_and_compression_can_be_off() {
    let (server, sumo) = emulator().await;
    let mut c = config(&server);
    c.category = None;
    c.source_name = None;
    c.source_host = None;
    c.fields.clear();
    c.http.compression = false;
    let mut sink = SumoSink::new(&c).unwrap();
    assert_eq!(sink.send(&records(2, 10)).await, Outcome::delivered());
    assert!(sumo.state().requests[0].2.is_empty());
    let received = server.received_requests().await.unwrap();
    assert!(received[0].headers.get("content-encoding").is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn large_batches_split_under_1mb_and_an_oversize_event_is_dead_lettered() {
    let (server, sumo) = emulator().await;
    let mut input: Vec<(String, String)> = (0..10)
        .map(|i| (format!("s{i}"), ocsf_event(&format!("s{i}"), 250_000)))
        .collect();
    input.insert(3, ("s_huge".into(), ocsf_event("s_huge", 1_000_000)));
    let j = Journal::with_payloads(&input);
    let head = j.head();
    let kind = SinkKind::new(config(&server));
    run_sink_until(&j, sink_settings("sumo", kind, 1000, 20_000_000), |j| {
        j.cursor("sumo").seq == head
    })
    .await;
    let state = sumo.state();
    let want: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    assert_eq!(uids(&state.messages), want);
    assert!(state.requests.len() >= 3, "{}", state.requests.len());
    let dead = j.dead_letters("sumo");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, "s_huge");
}

#[tokio::test]
async fn a_429_drops_the_data_and_the_retry_sends_it_again() {
    for (status, after) in [(429, Some("1")), (503, None), (504, None), (408, Some("1"))] {
        let (server, sumo) = emulator().await;
        let mut reply = ResponseTemplate::new(status)
            .set_body_string("You have temporarily exceeded your Sumo Logic quota");
        if let Some(a) = after {
            reply = reply.insert_header("Retry-After", a);
        }
        sumo.state().script.push_back(reply);
        let mut sink = SumoSink::new(&config(&server)).unwrap();
        let batch = records(6, 10);
        match sink.send(&batch).await {
            Outcome::Retry { after: got, .. } => {
                assert_eq!(got, after.map(|_| Duration::from_secs(1)), "{status}");
            }
            other => panic!("{status}: expected Retry, got {other:?}"),
        }
        assert!(
            sumo.state().messages.is_empty(),
            "{status} dropped the data"
        );
        assert_eq!(sink.send(&batch).await, Outcome::delivered());
        assert_eq!(sumo.state().messages.len(), 6, "{status}: re-sent in full");
    }
}

#[tokio::test]
async fn a_retry_does_not_resend_accepted_requests() {
    let (server, sumo) = emulator().await;
    sumo.state().script.push_back(ResponseTemplate::new(200));
    sumo.state().script.push_back(ResponseTemplate::new(429));
    let mut sink = SumoSink::new(&config(&server)).unwrap();
    let batch = records(9, 300_000);
    assert!(matches!(sink.send(&batch).await, Outcome::Retry { .. }));
    let first = sumo.state().requests[0].1;
    assert_eq!(sink.send(&batch).await, Outcome::delivered());
    let state = sumo.state();
    // The scripted 200 did not store its lines; the retry stored the rest only.
    assert_eq!(state.messages.len(), 9 - first);
    let resent: usize = state.requests[2..].iter().map(|r| r.1).sum();
    assert_eq!(resent, 9 - first);
}

#[tokio::test(flavor = "current_thread")]
async fn a_wrong_url_is_fatal_and_the_url_never_appears() {
    let (server, sumo) = emulator().await;
    let mut c = config(&server);
    let wrong = "WrongCodeWrongCodeWrongCode0123456789==";
    c.url = format!("{}/receiver/v1/http/{wrong}", server.uri()).into();
    let mut sink = SumoSink::new(&c).unwrap();
    let Outcome::Fatal { reason } = sink.send(&records(2, 10)).await else {
        panic!("expected Fatal");
    };
    assert!(
        reason.contains("401") && reason.contains("sumo URL"),
        "{reason}"
    );
    assert!(
        !reason.contains(wrong) && !reason.contains("/receiver/"),
        "{reason}"
    );
    let err = sink.healthcheck().await.unwrap_err();
    assert!(!err.contains(wrong), "{err}");
    assert!(sumo.state().messages.is_empty());

    let logs = Logs::default();
    let _guard = logs.capture();
    let j = Journal::with_payloads(&[("u1".into(), ocsf_event("u1", 10))]);
    run_sink_until(
        &j,
        sink_settings("sumo", SinkKind::new(c), 1000, 1_000_000),
        |j| j.cursor("sumo").last_error.is_some(),
    )
    .await;
    assert_eq!(j.cursor("sumo").seq, 0, "nothing discarded");
    assert!(j.dead_letters("sumo").is_empty());
    let text = logs.text();
    assert!(text.contains("401"), "{text}");
    for place in [text, j.all_text()] {
        assert!(
            !place.contains(wrong) && !place.contains("/receiver/"),
            "{place}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_source_is_a_retry_without_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut c = config(&MockServer::start().await);
    c.url = format!("http://127.0.0.1:{port}/receiver/v1/http/{CODE}").into();
    let mut sink = SumoSink::new(&c).unwrap();
    let Outcome::Retry { reason, .. } = sink.send(&records(1, 10)).await else {
        panic!("expected Retry");
    };
    assert!(
        !reason.contains(CODE) && !reason.contains("/receiver/"),
        "{reason}"
    );
    assert!(reason.contains("the sumo URL"), "{reason}");
    let err = sink.healthcheck().await.unwrap_err();
    assert!(!err.contains(CODE), "{err}");
}

#[tokio::test]
async fn healthcheck_posts_nothing_to_ingest() {
    let (server, sumo) = emulator().await;
    let sink = SumoSink::new(&config(&server)).unwrap();
    let ok = sink.healthcheck().await.unwrap();
    assert!(!ok.contains(CODE), "{ok}");
    let state = sumo.state();
    assert_eq!(state.requests.len(), 1);
    assert_eq!(state.requests[0].1, 0, "an empty body");
    assert!(state.messages.is_empty());
}

// ------------------------------------------------------------ configuration

mod config_keys {
    use std::path::Path;

    use claudit::config::{self, ConfigErrors, SumoSinkConfig};
    use secrecy::ExposeSecret;

    use super::CODE;

    const FILE: &str = "/etc/claudit/claudit.toml";

    fn env(name: &str) -> Option<String> {
        match name {
            "API_KEY" => Some("sk-ant-api01-xyz".into()),
            "SUMO_URL" => Some(format!(
                "https://collectors.sumologic.com/receiver/v1/http/{CODE}"
            )),
            "SUMO_PLAIN" => Some(format!(
                "http://collectors.sumologic.com/receiver/v1/http/{CODE}"
            )),
            "SUMO_GARBAGE" => Some(format!("collectors/{CODE}")),
            _ => None,
        }
    }

    fn load(sink_keys: &str) -> Result<SumoSinkConfig, ConfigErrors> {
        let text = format!(
            r#"
[state]
path = "/var/lib/claudit/state.db"

[[sources]]
name = "acme"
api_key = "${{API_KEY}}"

[[sinks]]
name = "sumo"
type = "sumo"
{sink_keys}
"#
        );
        let config = config::load_str(&text, Path::new(FILE), &env)?;
        let Some(c) = config.sinks[0]
            .kind
            .get::<claudit::config::SumoSinkConfig>()
            .cloned()
        else {
            panic!("not a sumo sink");
        };
        assert_eq!(config.sinks[0].batch.max_bytes, 1_000_000);
        assert!(
            !format!("{config:?}").contains(CODE),
            "the URL shows in Debug"
        );
        Ok(c)
    }

    fn errors(sink_keys: &str) -> String {
        let e = load(sink_keys).expect_err("expected errors").to_string();
        assert!(!e.contains(CODE), "the URL leaked: {e}");
        e
    }

    #[test]
    fn every_key_is_read() {
        let c = load(
            r#"url = "${SUMO_URL}"
category = "security/claude"
source_name = "claude"
source_host = "h1"
compression = false
fields = { team = "sec" }"#,
        )
        .unwrap();
        assert!(c.url.expose_secret().ends_with(CODE));
        assert_eq!(c.category.as_deref(), Some("security/claude"));
        assert_eq!(c.source_name.as_deref(), Some("claude"));
        assert_eq!(c.source_host.as_deref(), Some("h1"));
        assert_eq!(c.fields, vec![("team".to_string(), "sec".to_string())]);
        assert!(!c.http.compression);
        let c = load("url = \"${SUMO_URL}\"").unwrap();
        assert!(c.category.is_none() && c.fields.is_empty() && c.http.compression);
    }

    #[test]
    fn bad_values_never_show_the_url() {
        let e = errors("category = \"x\"");
        assert!(e.contains("sinks[0].url") && e.contains("url_file"), "{e}");
        let e = errors("url = \"${SUMO_PLAIN}\"");
        assert!(
            e.contains("sinks[0].url") && e.contains("must use https"),
            "{e}"
        );
        let e = errors("url = \"${SUMO_GARBAGE}\"");
        assert!(e.contains("the sumo URL is not a valid URL"), "{e}");
        let e = errors("url = \"${SUMO_URL}\"\nfields = { \"a,b\" = \"c\" }");
        assert!(e.contains("must not contain"), "{e}");
        let e = errors("url = \"${SUMO_URL}\"\nfields = { a = \"b=c\" }");
        assert!(e.contains("sinks[0].fields.a"), "{e}");
    }
}
