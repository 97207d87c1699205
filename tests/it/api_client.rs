//! The Compliance API client against a mock API (wiremock).
//!
//! Waits (backoff, rate limiting) run on a `VirtualClock` that jumps forward by
//! exactly what the client sleeps: tokio's paused clock would also jump to
//! reqwest's request timeout while a real request is in flight.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use chrono::{DateTime, Utc};
use claudit::config::SourceConfig;
use claudit::source::client::{ComplianceClient, FetchError, KeyKind, PageQuery};
use claudit::source::limiter::{Clock, RateLimiter, VirtualClock};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::logs;

const KEY: &str = "sk-ant-api01-TESTKEYdoNotLeak_0123456789abcdefABCDEF";

fn start_utc() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-04-21T14:38:00Z")
        .unwrap()
        .to_utc()
}

fn source(base_url: &str, key: &str) -> SourceConfig {
    SourceConfig {
        name: "test-org".to_string(),
        base_url: base_url.to_string(),
        api_key: SecretString::from(key.to_string()),
        anthropic_version: "2023-06-01".to_string(),
        requests_per_minute: 600,
        window: Duration::from_secs(300),
        max_window_pages: 1000,
        settle_lag: Duration::from_secs(120),
        sweep_horizon: Duration::from_secs(3600),
        sweep_interval: Duration::from_secs(600),
        initial_lookback: Duration::from_secs(86_400),
        poll_interval: Duration::from_secs(30),
        page_size: 5000,
        activity_types: vec![],
        exclude_activity_types: vec![],
        organization_ids: vec![],
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(30),
        no_data_after: Duration::from_secs(6 * 3600),
        directory: Default::default(),
    }
}

/// A client whose waits run on a fresh virtual clock.
fn client_for(source: &SourceConfig) -> (ComplianceClient, Arc<VirtualClock>) {
    logs::global();
    let clock = VirtualClock::new(start_utc());
    let limiter = Arc::new(RateLimiter::new(
        source.requests_per_minute,
        Clock::Virtual(clock.clone()),
    ));
    (
        ComplianceClient::with_limiter(source, limiter).unwrap(),
        clock,
    )
}

fn client(server: &MockServer) -> (ComplianceClient, Arc<VirtualClock>) {
    client_for(&source(&server.uri(), KEY))
}

fn query() -> PageQuery {
    PageQuery {
        created_gte: start_utc() - chrono::Duration::minutes(5),
        created_lt: start_utc(),
        after_id: None,
        limit: 5000,
    }
}

fn page_json(ids: &[&str], has_more: bool) -> String {
    let data: Vec<String> = ids
        .iter()
        .map(|id| {
            format!(
                r#"{{"id":"{id}","type":"claude_chat_viewed","created_at":"2026-04-21T14:35:00Z"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"data":[{}],"has_more":{has_more},"first_id":{},"last_id":{}}}"#,
        data.join(","),
        ids.first()
            .map_or("null".to_string(), |i| format!("\"{i}\"")),
        ids.last()
            .map_or("null".to_string(), |i| format!("\"{i}\"")),
    )
}

fn ok(request_id: &str, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("request-id", request_id)
        .insert_header("content-type", "application/json")
        .set_body_string(body)
}

fn api_error(status: u16, request_id: &str, kind: &str, message: &str) -> ResponseTemplate {
    let body = serde_json::json!({"type": "error", "error": {"type": kind, "message": message}});
    ResponseTemplate::new(status)
        .insert_header("request-id", request_id)
        .set_body_json(body)
}

/// Answers with each template in turn, then repeats the last one.
struct Sequence(Mutex<VecDeque<ResponseTemplate>>);

impl Sequence {
    fn new(templates: Vec<ResponseTemplate>) -> Sequence {
        Sequence(Mutex::new(templates.into()))
    }
}

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut queue = self.0.lock().unwrap();
        if queue.len() > 1 {
            queue.pop_front().unwrap()
        } else {
            queue.front().unwrap().clone()
        }
    }
}

async fn mount(
    server: &MockServer,
    responses: Vec<ResponseTemplate>,
    expected_calls: impl Into<wiremock::Times>,
) {
    Mock::given(method("GET"))
        .and(path("/v1/compliance/activities"))
        .respond_with(Sequence::new(responses))
        .expect(expected_calls)
        .mount(server)
        .await;
}

fn ids(page: &claudit::source::client::Page) -> Vec<String> {
    page.activities
        .iter()
        .map(|raw| {
            serde_json::from_str::<serde_json::Value>(raw.get()).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn sends_the_documented_headers_and_query() {
    let server = MockServer::start().await;
    mount(&server, vec![ok("req_1", &page_json(&["a"], false))], 1).await;
    let mut config = source(&server.uri(), KEY);
    config.activity_types = vec!["claude_chat_viewed".into(), "role_assigned".into()];
    config.exclude_activity_types = vec!["x&y=z".into()];
    config.organization_ids = vec![
        "org_1".into(),
        "5f1c6c4e-0000-4000-8000-000000000001".into(),
    ];
    let (client, _) = client_for(&config);
    let mut q = query();
    q.after_id = Some("eyJrIjoiYWN0aXZpdHkifQ==".into());
    q.limit = 1234;

    client
        .fetch_page(&q, &CancellationToken::new())
        .await
        .unwrap();

    let requests = server.received_requests().await.unwrap();
    let request = &requests[0];
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(header("x-api-key"), KEY);
    assert_eq!(header("anthropic-version"), "2023-06-01");
    assert_eq!(
        header("user-agent"),
        format!("claudit/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(header("accept"), "application/json");
    assert!(request.headers.get("authorization").is_none());

    let pairs: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
    let expected: Vec<(String, String)> = [
        ("created_at.gte", "2026-04-21T14:33:00.000000Z"),
        ("created_at.lt", "2026-04-21T14:38:00.000000Z"),
        ("after_id", "eyJrIjoiYWN0aXZpdHkifQ=="),
        ("limit", "1234"),
        ("activity_types[]", "claude_chat_viewed"),
        ("activity_types[]", "role_assigned"),
        ("exclude_activity_types[]", "x&y=z"),
        ("organization_ids[]", "org_1"),
        ("organization_ids[]", "5f1c6c4e-0000-4000-8000-000000000001"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(pairs, expected);
    // Brackets, `&`, `=` and `+` are percent-encoded on the wire.
    let raw = request.url.query().unwrap();
    assert!(
        raw.contains("activity_types%5B%5D=claude_chat_viewed"),
        "{raw}"
    );
    assert!(raw.contains("x%26y%3Dz"), "{raw}");
    assert!(
        raw.contains("after_id=eyJrIjoiYWN0aXZpdHkifQ%3D%3D"),
        "{raw}"
    );
}

#[tokio::test]
async fn keeps_each_activity_byte_for_byte_and_ignores_unknown_envelope_fields() {
    let server = MockServer::start().await;
    let first = r#"{ "id" : "activity_01",  "type":"brand_new_type", "created_at":"2026-04-21T14:35:00.123456Z",
        "actor": {"type":"mystery_actor", "x": [1, 2.50, 1e3]}, "unknown_field": {"nested": null}, "emoji":"\u00e9é" }"#;
    let second = r#"{"id":"activity_02","z":1,"a":2}"#;
    let body = format!(
        r#"{{"data":[{first},
        {second}], "has_more": true, "first_id": "activity_01", "last_id": "activity_02",
        "next_page": null, "total": 99, "extra": {{"a": [1]}} }}"#
    );
    mount(&server, vec![ok("req_raw", &body)], 1).await;
    let (client, _) = client(&server);

    let page = client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap();

    assert_eq!(page.activities.len(), 2);
    assert_eq!(page.activities[0].get(), first);
    assert_eq!(page.activities[1].get(), second);
    assert!(page.has_more);
    assert_eq!(page.first_id.as_deref(), Some("activity_01"));
    assert_eq!(page.last_id.as_deref(), Some("activity_02"));
    assert_eq!(page.request_id.as_deref(), Some("req_raw"));
}

#[tokio::test]
async fn an_empty_page_has_no_cursor_and_no_more() {
    let server = MockServer::start().await;
    mount(
        &server,
        vec![ok("req_e", r#"{"data":[],"first_id":null,"last_id":null}"#)],
        1,
    )
    .await;
    let (client, _) = client(&server);
    let page = client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap();
    assert!(page.activities.is_empty());
    assert!(!page.has_more);
    assert_eq!((page.first_id, page.last_id), (None, None));
}

#[tokio::test]
async fn honors_retry_after_on_429_without_exceeding_it_much() {
    let server = MockServer::start().await;
    let limited = api_error(429, "req_429", "rate_limit_error", "Compliance API rate limit of 600 requests per minute per parent organization has been exceeded")
        .insert_header("retry-after", "25")
        .insert_header("anthropic-ratelimit-requests-limit", "600")
        .insert_header("anthropic-ratelimit-requests-remaining", "0")
        .insert_header("anthropic-ratelimit-requests-reset", "2026-04-21T14:38:20Z");
    mount(
        &server,
        vec![limited, ok("req_ok", &page_json(&["a"], false))],
        2,
    )
    .await;
    let (client, clock) = client(&server);

    let page = client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap();

    assert_eq!(ids(&page), ["a"]);
    let waited = clock.elapsed();
    assert!(
        waited >= Duration::from_secs(25),
        "retried after {waited:?}"
    );
    // The backoff's first delay is below 2 s, so retry-after alone decides.
    assert!(
        waited <= Duration::from_secs(27),
        "retried after {waited:?}"
    );
    assert_eq!(page.attempt_request_ids, ["req_429", "req_ok"]);
    let rate = client.rate_state();
    assert_eq!(rate.rate_limited_total, 1);
    assert_eq!(rate.last_retry_after, Some(Duration::from_secs(25)));
    assert_eq!(rate.limit, Some(600));
}

#[tokio::test]
async fn repeated_429s_wait_at_least_retry_after_each_time() {
    let server = MockServer::start().await;
    let limited = ResponseTemplate::new(429).insert_header("retry-after", "7");
    mount(
        &server,
        vec![
            limited.clone(),
            limited.clone(),
            limited,
            ok("req_ok", &page_json(&["a"], false)),
        ],
        4,
    )
    .await;
    let (client, clock) = client(&server);

    client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap();

    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 3, "{sleeps:?}");
    assert!(
        sleeps.iter().all(|s| *s >= Duration::from_secs(7)),
        "{sleeps:?}"
    );
    // Backoff grows underneath (1-2 s, 2-4 s, 4-8 s), so never far above 7 s.
    assert!(
        sleeps.iter().all(|s| *s <= Duration::from_secs(8)),
        "{sleeps:?}"
    );
}

#[tokio::test]
async fn a_429_without_retry_after_backs_off_exponentially() {
    let server = MockServer::start().await;
    mount(
        &server,
        vec![
            ResponseTemplate::new(429),
            ok("req_ok", &page_json(&[], false)),
        ],
        2,
    )
    .await;
    let (client, clock) = client(&server);
    client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap();
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 1);
    assert!(
        sleeps[0] >= Duration::from_secs(1) && sleeps[0] <= Duration::from_secs(2),
        "{sleeps:?}"
    );
}

#[tokio::test]
async fn a_burst_of_server_errors_then_success() {
    let server = MockServer::start().await;
    mount(
        &server,
        vec![
            api_error(500, "req_1", "api_error", "Internal server error"),
            ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"),
            api_error(503, "req_3", "overloaded_error", "Try again shortly."),
            ResponseTemplate::new(504).insert_header("request-id", "req_4"),
            ok("req_5", &page_json(&["a", "b"], true)),
        ],
        5,
    )
    .await;
    let (client, clock) = client(&server);

    let page = client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap();

    assert_eq!(ids(&page), ["a", "b"]);
    assert_eq!(page.request_id.as_deref(), Some("req_5"));
    // The 502 from a proxy carried no request id.
    assert_eq!(
        page.attempt_request_ids,
        ["req_1", "req_3", "req_4", "req_5"]
    );
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 4, "{sleeps:?}");
    // Exponential with jitter: 1-2 s, 2-4 s, 4-8 s, 8-16 s.
    for (i, sleep) in sleeps.iter().enumerate() {
        let base = Duration::from_secs(1 << i);
        assert!(*sleep >= base && *sleep <= base * 2, "sleep {i}: {sleep:?}");
    }
}

#[tokio::test]
async fn overloaded_529_is_retried() {
    let server = MockServer::start().await;
    let overloaded = api_error(529, "req_529", "overloaded_error", "Overloaded");
    mount(
        &server,
        vec![
            overloaded.clone(),
            overloaded,
            ok("req_ok", &page_json(&["a"], false)),
        ],
        3,
    )
    .await;
    let (client, _) = client(&server);
    let page = client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(page.attempt_request_ids, ["req_529", "req_529", "req_ok"]);
}

#[tokio::test]
async fn x_should_retry_false_stops_at_once() {
    let server = MockServer::start().await;
    let deterministic = api_error(500, "req_500", "internal_error", "too many organizations")
        .insert_header("x-should-retry", "false");
    mount(&server, vec![deterministic], 1).await;
    let (client, clock) = client(&server);

    let error = client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap_err();

    match &error {
        FetchError::Server {
            status,
            message,
            request_id,
        } => {
            assert_eq!(*status, 500);
            assert_eq!(message, "too many organizations");
            assert_eq!(request_id.as_deref(), Some("req_500"));
        }
        other => panic!("expected Server, got {other:?}"),
    }
    assert!(error.to_string().contains("asked not to retry"), "{error}");
    assert!(clock.sleeps().is_empty());
}

#[tokio::test]
async fn a_truncated_or_invalid_body_on_200_is_retried() {
    let server = MockServer::start().await;
    let full = page_json(&["a", "b"], false);
    mount(
        &server,
        vec![
            ok("req_cut", &full[..full.len() / 2]),
            ok("req_html", "<html>maintenance</html>"),
            ok("req_shape", r#"{"items":[]}"#),
            ok("req_ok", &full),
        ],
        4,
    )
    .await;
    let (client, _) = client(&server);
    let page = client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(ids(&page), ["a", "b"]);
    assert_eq!(
        page.attempt_request_ids,
        ["req_cut", "req_html", "req_shape", "req_ok"]
    );
}

/// A body cut off by the connection closing early (fewer bytes than
/// `content-length`) is retried like any transport failure.
#[tokio::test]
async fn a_body_cut_off_in_transit_is_retried() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let full = page_json(&["a"], false);
    let server = tokio::spawn(async move {
        let responses = [
            format!(
                "HTTP/1.1 200 OK\r\nrequest-id: req_cut\r\ncontent-length: {}\r\n\r\n{}",
                full.len() + 100,
                &full[..10]
            ),
            format!(
                "HTTP/1.1 200 OK\r\nrequest-id: req_ok\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{full}",
                full.len()
            ),
        ];
        for response in responses {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "client closed before sending a request");
                request.extend_from_slice(&buf[..n]);
            }
            socket.write_all(response.as_bytes()).await.unwrap();
            socket.shutdown().await.unwrap();
        }
    });
    let (client, clock) = client_for(&source(&base_url, KEY));

    let page = client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap();

    assert_eq!(ids(&page), ["a"]);
    assert_eq!(page.attempt_request_ids, ["req_cut", "req_ok"]);
    assert_eq!(clock.sleeps().len(), 1);
    server.await.unwrap();
}

#[tokio::test]
async fn a_bad_cursor_is_reported_not_retried() {
    let server = MockServer::start().await;
    let bad = api_error(
        400,
        "req_400",
        "invalid_request_error",
        "Invalid `after_id`. No activity found for `after_id` activity_gone.",
    );
    mount(&server, vec![bad], 1).await;
    let (client, _) = client(&server);
    let mut q = query();
    q.after_id = Some("activity_gone".into());

    let error = client
        .fetch_page(&q, &CancellationToken::new())
        .await
        .unwrap_err();

    match error {
        FetchError::BadCursor {
            message,
            request_id,
        } => {
            assert!(message.contains("No activity found"));
            assert_eq!(request_id.as_deref(), Some("req_400"));
        }
        other => panic!("expected BadCursor, got {other:?}"),
    }
}

#[tokio::test]
async fn other_400s_are_bad_requests() {
    let server = MockServer::start().await;
    let bad = api_error(
        400,
        "req_400",
        "invalid_request_error",
        "Invalid value for `created_at.gte`: 'yesterday'",
    );
    mount(&server, vec![bad], 1).await;
    let (client, _) = client(&server);
    let error = client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, FetchError::BadRequest { message, .. } if message.contains("created_at.gte")),
        "{error:?}"
    );
}

#[tokio::test]
async fn unauthorized_401_is_not_retried_and_explains_itself() {
    let server = MockServer::start().await;
    let refused = api_error(
        401,
        "req_401",
        "authentication_error",
        "The API key provided is invalid or has been revoked.",
    );
    mount(&server, vec![refused], 1).await;
    let (client, clock) = client(&server);

    let error = client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap_err();

    match &error {
        FetchError::Unauthorized {
            status,
            error_type,
            message,
            request_id,
            hint,
        } => {
            assert_eq!(*status, 401);
            assert_eq!(error_type, "authentication_error");
            assert!(message.contains("revoked"));
            assert_eq!(request_id.as_deref(), Some("req_401"));
            assert!(
                hint.contains("sk-ant-api01-") && hint.contains("sk-ant-admin01-"),
                "{hint}"
            );
            assert!(hint.contains("revoked"), "{hint}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert!(error.to_string().contains("Likely cause"), "{error}");
    assert!(clock.sleeps().is_empty());
}

#[tokio::test]
async fn a_claude_api_key_gets_a_specific_hint() {
    let server = MockServer::start().await;
    let refused = api_error(
        401,
        "req_401",
        "authentication_error",
        "The API key provided is invalid or has been revoked.",
    );
    mount(&server, vec![refused], 1).await;
    let (client, _) = client_for(&source(&server.uri(), "sk-ant-api03-someclaudeapikey"));
    assert_eq!(client.key_kind(), KeyKind::ClaudeApi);
    let error = client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap_err();
    match error {
        FetchError::Unauthorized { hint, .. } => {
            assert!(hint.contains("Claude API key (sk-ant-api03-"), "{hint}")
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

#[tokio::test]
async fn forbidden_403_quotes_the_scopes_and_is_not_retried() {
    let server = MockServer::start().await;
    let message = "Missing required scopes. Got: ['read:compliance_user_data'] Needed: ['read:compliance_activities']";
    mount(
        &server,
        vec![api_error(403, "req_403", "permission_error", message)],
        1,
    )
    .await;
    let (client, clock) = client(&server);

    let error = client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap_err();

    let text = error.to_string();
    assert!(
        text.contains("Got: ['read:compliance_user_data'] Needed: ['read:compliance_activities']"),
        "{text}"
    );
    match error {
        FetchError::Unauthorized {
            status,
            error_type,
            hint,
            ..
        } => {
            assert_eq!(status, 403);
            assert_eq!(error_type, "permission_error");
            assert!(hint.contains("read:compliance_activities"), "{hint}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert!(clock.sleeps().is_empty());
}

#[tokio::test]
async fn forbidden_403_with_an_admin_key_names_the_enablement_order() {
    let server = MockServer::start().await;
    mount(
        &server,
        vec![api_error(
            403,
            "req_403",
            "permission_error",
            "Missing required scopes. Got: [] Needed: ['read:compliance_activities']",
        )],
        1,
    )
    .await;
    let (client, _) = client_for(&source(&server.uri(), "sk-ant-admin01-someadminkey"));
    let error = client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap_err();
    match error {
        FetchError::Unauthorized { hint, .. } => {
            assert!(
                hint.contains("created after the Compliance API was enabled"),
                "{hint}"
            );
            assert!(hint.contains("disabled for the organization"), "{hint}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

#[tokio::test]
async fn not_found_is_retried_a_few_times_then_reported() {
    let server = MockServer::start().await;
    let missing = ResponseTemplate::new(404).set_body_json(serde_json::json!({
        "type": "error",
        "error": {"type": "not_found_error", "message": "Not found", "details": {"error_visibility": "user_facing"}},
        "request_id": "req_body_404"
    }));
    mount(&server, vec![missing], 3).await;
    let (client, clock) = client(&server);

    let error = client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap_err();

    match error {
        FetchError::NotFound {
            attempts,
            request_id,
        } => {
            assert_eq!(attempts, 3);
            // No header: the id comes from the body.
            assert_eq!(request_id.as_deref(), Some("req_body_404"));
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(clock.sleeps().len(), 2);
    assert_eq!(client.take_request_ids(), ["req_body_404"; 3]);
}

#[tokio::test]
async fn a_passing_404_is_forgiven() {
    let server = MockServer::start().await;
    mount(
        &server,
        vec![
            ResponseTemplate::new(404),
            ok("req_ok", &page_json(&["a"], false)),
        ],
        2,
    )
    .await;
    let (client, _) = client(&server);
    let page = client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(ids(&page), ["a"]);
}

#[tokio::test]
async fn records_the_request_id_of_every_attempt() {
    let server = MockServer::start().await;
    mount(
        &server,
        vec![
            // Body only, header only (x-request-id), both (header wins).
            ResponseTemplate::new(503).set_body_json(serde_json::json!({"request_id": "req_a"})),
            ResponseTemplate::new(429).insert_header("x-request-id", "req_b"),
            api_error(500, "req_c", "api_error", "oops")
                .insert_header("x-request-id", "req_ignored"),
            ok("req_d", &page_json(&["a"], false)),
        ],
        4,
    )
    .await;
    let (client, _) = client(&server);

    let page = client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap();

    assert_eq!(
        page.attempt_request_ids,
        ["req_a", "req_b", "req_c", "req_d"]
    );
    assert_eq!(page.request_id.as_deref(), Some("req_d"));
    assert_eq!(
        client.take_request_ids(),
        ["req_a", "req_b", "req_c", "req_d"]
    );
    assert!(client.take_request_ids().is_empty(), "taken once");
}

#[tokio::test]
async fn cancellation_during_backoff_returns_cancelled_at_once() {
    let server = MockServer::start().await;
    mount(
        &server,
        vec![api_error(503, "req_503", "overloaded_error", "busy")],
        1,
    )
    .await;
    let (client, clock) = client(&server);
    clock.hold();
    let cancel = CancellationToken::new();
    let q = query();
    let mut fetch = pin!(client.fetch_page(&q, &cancel));

    tokio::select! {
        result = &mut fetch => panic!("fetch ended before backing off: {result:?}"),
        () = clock.wait_for_held_sleep() => {}
    }
    cancel.cancel();

    // The very next poll returns: nothing else has to happen first.
    let mut cx = Context::from_waker(Waker::noop());
    match fetch.as_mut().poll(&mut cx) {
        Poll::Ready(Err(FetchError::Cancelled)) => {}
        other => panic!("expected Ready(Cancelled), got {other:?}"),
    }
    assert_eq!(client.take_request_ids(), ["req_503"]);
}

#[tokio::test]
async fn an_already_cancelled_token_sends_nothing() {
    let server = MockServer::start().await;
    mount(&server, vec![ok("req", &page_json(&[], false))], 0).await;
    let (client, _) = client(&server);
    let cancel = CancellationToken::new();
    cancel.cancel();
    let error = client.fetch_page(&query(), &cancel).await.unwrap_err();
    assert!(matches!(error, FetchError::Cancelled));
}

#[tokio::test]
async fn the_key_never_shows_in_errors_or_logs() {
    let echo = format!("The API key {KEY} is invalid");
    let cases: Vec<Vec<ResponseTemplate>> = vec![
        vec![api_error(401, "r", "authentication_error", &echo)],
        vec![api_error(403, "r", "permission_error", &echo)],
        vec![api_error(400, "r", "invalid_request_error", &echo)],
        vec![api_error(
            400,
            "r",
            "invalid_request_error",
            &format!("bad after_id {KEY}"),
        )],
        vec![api_error(500, "r", "api_error", &echo).insert_header("x-should-retry", "false")],
        vec![ResponseTemplate::new(405).set_body_string(format!("<html>{KEY}</html>"))],
        vec![ResponseTemplate::new(404).set_body_string(echo.clone())],
    ];
    let mut errors = Vec::new();
    for responses in cases {
        let server = MockServer::start().await;
        mount(&server, responses, 1..=3).await;
        let (client, _) = client(&server);
        assert!(!format!("{client:?}").contains("TESTKEY"));
        errors.push(
            client
                .fetch_page(&query(), &CancellationToken::new())
                .await
                .unwrap_err(),
        );
    }
    // A retried error with the key in its body goes to the warn log.
    let server = MockServer::start().await;
    mount(
        &server,
        vec![
            api_error(503, "r", "overloaded_error", &echo),
            ok("r2", &page_json(&[], false)),
        ],
        2,
    )
    .await;
    let mut config = source(&server.uri(), KEY);
    config.name = "leak-check".to_string();
    let (client, _) = client_for(&config);
    client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap();

    assert_eq!(errors.len(), 7);
    for error in &errors {
        for text in [error.to_string(), format!("{error:?}")] {
            assert!(!text.contains("TESTKEY"), "key leaked: {text}");
        }
    }
    assert!(
        errors[0]
            .to_string()
            .contains("The API key [REDACTED] is invalid"),
        "{}",
        errors[0]
    );
    // The log holds every test's output so far, not only this one's.
    let logged = logs::global().text();
    assert!(
        logged.lines().any(|l| l.contains("leak-check")
            && l.contains("retrying")
            && l.contains("[REDACTED]")),
        "{logged}"
    );
    assert!(
        !logged.contains("TESTKEY"),
        "key leaked into logs: {logged}"
    );
}

#[tokio::test]
async fn keeps_within_600_requests_in_any_minute() {
    let server = MockServer::start().await;
    mount(&server, vec![ok("req", &page_json(&["a"], false))], 1300).await;
    let (client, clock) = client(&server);

    let mut sent_at = Vec::new();
    for _ in 0..1300 {
        // Time only moves while the limiter waits, so the time a fetch returns
        // is the time its request went out.
        client
            .fetch_page(&query(), &CancellationToken::new())
            .await
            .unwrap();
        sent_at.push(clock.elapsed());
    }

    let mut busiest = 0;
    let mut lo = 0;
    for hi in 0..sent_at.len() {
        while sent_at[hi] - sent_at[lo] >= Duration::from_secs(60) {
            lo += 1;
        }
        busiest = busiest.max(hi - lo + 1);
    }
    assert!(busiest <= 600, "{busiest} requests within one minute");
    // Close to the budget, not far below it: 1290 spaced requests at 591/min.
    let total = *sent_at.last().unwrap();
    assert!(
        total >= Duration::from_secs(130) && total <= Duration::from_secs(132),
        "{total:?}"
    );
}

#[tokio::test]
async fn waits_for_reset_when_the_server_says_the_budget_is_spent() {
    let server = MockServer::start().await;
    let spent = ok("req_1", &page_json(&["a"], false))
        .insert_header("anthropic-ratelimit-requests-limit", "600")
        .insert_header("anthropic-ratelimit-requests-remaining", "0")
        .insert_header("anthropic-ratelimit-requests-reset", "2026-04-21T14:38:30Z");
    mount(
        &server,
        vec![spent, ok("req_2", &page_json(&["b"], false))],
        2,
    )
    .await;
    let (client, clock) = client(&server);

    client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(clock.elapsed(), Duration::ZERO);
    let rate = client.rate_state();
    assert_eq!((rate.limit, rate.remaining), (Some(600), Some(0)));
    assert_eq!(
        rate.paused_until.map(|t| t.to_rfc3339()).as_deref(),
        Some("2026-04-21T14:38:30+00:00")
    );

    client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(clock.elapsed(), Duration::from_secs(30));
}

#[tokio::test]
async fn check_key_sends_one_cheap_request() {
    let server = MockServer::start().await;
    mount(&server, vec![ok("req_check", &page_json(&["a"], true))], 1).await;
    let (client, _) = client(&server);

    let check = client.check_key().await.unwrap();

    assert_eq!(check.key_kind, KeyKind::ComplianceAccess);
    assert_eq!(check.request_id.as_deref(), Some("req_check"));
    assert!(check.sees_activities);
    let requests = server.received_requests().await.unwrap();
    let pairs: Vec<(String, String)> = requests[0].url.query_pairs().into_owned().collect();
    assert_eq!(pairs, [("limit".to_string(), "1".to_string())]);
}

#[tokio::test]
async fn check_key_reports_a_refused_key_with_its_kind() {
    let server = MockServer::start().await;
    mount(
        &server,
        vec![api_error(
            401,
            "r",
            "authentication_error",
            "invalid x-api-key",
        )],
        1,
    )
    .await;
    let (client, _) = client_for(&source(&server.uri(), "sk-ant-api03-abc"));
    let error = client.check_key().await.unwrap_err();
    assert!(matches!(
        error,
        FetchError::Unauthorized { status: 401, .. }
    ));
    assert!(error.to_string().contains("sk-ant-api03-…"));
    assert!(!error.to_string().contains("abc"));
}

#[tokio::test]
async fn check_key_gives_up_on_a_host_that_refuses_connections() {
    // Bind and drop a listener: nothing listens on that port afterwards.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (client, clock) = client_for(&source(&format!("http://127.0.0.1:{port}"), KEY));

    let error = client.check_key().await.unwrap_err();

    match &error {
        FetchError::GaveUp {
            attempts,
            message,
            request_id,
        } => {
            assert_eq!(*attempts, 4);
            assert!(message.contains("could not connect"), "{message}");
            assert_eq!(*request_id, None);
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    assert_eq!(clock.sleeps().len(), 3);
}

#[tokio::test]
async fn a_timeout_is_retried() {
    let server = MockServer::start().await;
    mount(
        &server,
        vec![
            ok("req_slow", &page_json(&[], false)).set_delay(Duration::from_secs(10)),
            ok("req_ok", &page_json(&["a"], false)),
        ],
        2,
    )
    .await;
    let mut config = source(&server.uri(), KEY);
    config.request_timeout = Duration::from_millis(200);
    let (client, clock) = client_for(&config);
    let page = client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(ids(&page), ["a"]);
    // The timed-out attempt never got a response, so no id of its own.
    assert_eq!(page.attempt_request_ids, ["req_ok"]);
    assert_eq!(clock.sleeps().len(), 1);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = MockServer::start().await;
    let moved =
        ResponseTemplate::new(302).insert_header("location", "https://elsewhere.example/steal");
    mount(&server, vec![moved], 1).await;
    let (client, _) = client(&server);
    let error = client
        .fetch_page(&query(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, FetchError::BadRequest { message, .. } if message.contains("redirect to https://elsewhere.example/steal")),
        "{error:?}"
    );
}

#[tokio::test]
async fn impossible_queries_are_refused_before_any_request() {
    let server = MockServer::start().await;
    mount(&server, vec![ok("req", &page_json(&[], false))], 0).await;
    let (client, _) = client(&server);
    for limit in [0, 5001] {
        let mut q = query();
        q.limit = limit;
        let error = client
            .fetch_page(&q, &CancellationToken::new())
            .await
            .unwrap_err();
        assert!(
            matches!(&error, FetchError::BadRequest { message, .. } if message.contains("1..=5000")),
            "{error:?}"
        );
    }
    let mut q = query();
    q.created_lt = q.created_gte;
    let error = client
        .fetch_page(&q, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::BadRequest { .. }));
}

#[test]
fn construction_rejects_bad_settings() {
    for (base_url, key, version) in [
        ("not a url", KEY, "2023-06-01"),
        ("ftp://api.anthropic.com", KEY, "2023-06-01"),
        (
            "https://api.anthropic.com",
            "sk-ant-api01-bad\nkey",
            "2023-06-01",
        ),
        ("https://api.anthropic.com", KEY, "2023\n06"),
    ] {
        let mut config = source(base_url, key);
        config.anthropic_version = version.to_string();
        let error = ComplianceClient::new(&config).unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("test-org"), "{text}");
        assert!(
            !text.contains("bad\nkey") && !text.contains("sk-ant-api01-bad"),
            "{text}"
        );
    }
    let client = ComplianceClient::new(&source("https://api.anthropic.com/", KEY)).unwrap();
    assert!(format!("{client:?}").contains("https://api.anthropic.com/v1/compliance/activities"));
}

#[test]
fn plain_http_to_a_remote_host_is_warned_about() {
    let logs = logs::global();
    ComplianceClient::new(&source("http://compliance.example.net", KEY)).unwrap();
    ComplianceClient::new(&source("http://127.0.0.1:9", KEY)).unwrap();
    let text = logs.text();
    let warned: Vec<&str> = text.lines().filter(|l| l.contains("unencrypted")).collect();
    assert!(
        warned.iter().any(|l| l.contains("compliance.example.net")),
        "{text}"
    );
    assert!(!warned.iter().any(|l| l.contains("127.0.0.1:9")), "{text}");
}

#[test]
fn the_fetch_future_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let client = ComplianceClient::new(&source("https://api.anthropic.com", KEY)).unwrap();
    let cancel = CancellationToken::new();
    let q = query();
    let fetch = client.fetch_page(&q, &cancel);
    assert_send(&fetch);
    let check = client.check_key();
    assert_send(&check);
}
