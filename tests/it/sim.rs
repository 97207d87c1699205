//! The Compliance API simulator, driven over HTTP as the daemon drives it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use claudit::sim::generate::Generator;
use claudit::sim::{Fault, SimActivity, SimConfig, Simulator};
use serde_json::Value;

const KEY: &str = "sk-ant-api01-simulator";

/// A quiet simulator: a fixed backlog, nothing live, nothing late, no
/// throttling, no self activities. Tests switch on what they exercise.
fn quiet(backlog: usize) -> SimConfig {
    SimConfig {
        backlog,
        backlog_span: Duration::from_secs(6 * 3600),
        live_per_second: 0.0,
        visibility_delay: Duration::from_secs(1),
        late_fraction: 0.0,
        rate_limit_per_minute: None,
        self_activity: false,
        seed: 42,
        ..SimConfig::default()
    }
}

struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }

    fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

async fn get_with(sim: &Simulator, query: &str, key: Option<&str>, version: Option<&str>) -> Resp {
    let mut req = reqwest::Client::new()
        .get(format!(
            "{}/v1/compliance/activities?{query}",
            sim.base_url()
        ))
        .header("user-agent", "claudit-test/1.0");
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    if let Some(v) = version {
        req = req.header("anthropic-version", v);
    }
    let r = req.send().await.expect("request reaches the simulator");
    Resp {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

async fn get(sim: &Simulator, query: &str) -> Resp {
    get_with(sim, query, Some(KEY), Some("2023-06-01")).await
}

fn ts(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v["created_at"].as_str().unwrap())
        .unwrap()
        .into()
}

fn enc(cursor: &str) -> String {
    // Cursors are base64url and ids alphanumeric: nothing to escape, but a
    // client must not rely on that.
    cursor
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

/// Pages through `query` with `after_id` until `has_more` is false,
/// checking each page's envelope; returns the records in order.
async fn walk(sim: &Simulator, query: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("{query}&limit={limit}&after_id={}", enc(c)),
            None => format!("{query}&limit={limit}"),
        };
        let r = get(sim, &q).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.json();
        let data = page["data"].as_array().unwrap().clone();
        let has_more = page["has_more"].as_bool().unwrap();
        assert!(data.len() <= limit);
        if data.is_empty() {
            assert!(page["first_id"].is_null() && page["last_id"].is_null());
            assert!(!has_more);
        } else {
            assert!(page["first_id"].is_string() && page["last_id"].is_string());
        }
        if has_more {
            assert_eq!(data.len(), limit, "only the last page may be short");
        }
        out.extend(data);
        if !has_more {
            return out;
        }
        cursor = Some(page["last_id"].as_str().unwrap().to_string());
    }
}

fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn assert_newest_first(records: &[Value]) {
    for w in records.windows(2) {
        let (a, b) = (
            (ts(&w[0]), w[0]["id"].as_str().unwrap()),
            (ts(&w[1]), w[1]["id"].as_str().unwrap()),
        );
        assert!(a > b, "not newest-first: {a:?} then {b:?}");
    }
}

/// Records visible at `t` according to the simulator's own bookkeeping.
fn visible_at(acts: &[SimActivity], t: DateTime<Utc>) -> BTreeSet<String> {
    acts.iter()
        .filter(|a| a.visible_at <= t)
        .map(|a| a.id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_id_walk_returns_every_visible_record_once_newest_first() {
    let sim = Simulator::start(quiet(12_345)).await.unwrap();
    sim.advance_clock(Duration::from_secs(5)); // everything visible
    let records = walk(&sim, "", 1000).await;
    let got = ids(&records);
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "no record twice");
    let expected = visible_at(&sim.activities(), sim.now());
    assert_eq!(expected.len(), 12_345);
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_newest_first(&records);
    // Past the end: an empty page with null cursors.
    let last = records.last().unwrap()["id"].as_str().unwrap();
    let r = get(&sim, &format!("after_id={last}")).await;
    let page = r.json();
    assert_eq!(page["data"].as_array().unwrap().len(), 0);
    assert_eq!(page["has_more"], false);
    assert!(page["first_id"].is_null() && page["last_id"].is_null());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asc_order_and_before_id_walk_back() {
    let sim = Simulator::start(quiet(3_000)).await.unwrap();
    sim.advance_clock(Duration::from_secs(5));
    let desc = walk(&sim, "", 700).await;
    let asc = walk(&sim, "order=asc", 700).await;
    let mut reversed = ids(&desc);
    reversed.reverse();
    assert_eq!(ids(&asc), reversed, "asc is exactly desc reversed");

    // Page 3 of the desc walk, then before_id=its first_id: page 2 again.
    let p1 = get(&sim, "limit=500").await.json();
    let p2 = get(
        &sim,
        &format!(
            "limit=500&after_id={}",
            enc(p1["last_id"].as_str().unwrap())
        ),
    )
    .await
    .json();
    let p3 = get(
        &sim,
        &format!(
            "limit=500&after_id={}",
            enc(p2["last_id"].as_str().unwrap())
        ),
    )
    .await
    .json();
    let back = get(
        &sim,
        &format!(
            "limit=500&before_id={}",
            enc(p3["first_id"].as_str().unwrap())
        ),
    )
    .await
    .json();
    assert_eq!(
        ids(back["data"].as_array().unwrap()),
        ids(p2["data"].as_array().unwrap())
    );
    assert_eq!(back["has_more"], true);
    let top = get(
        &sim,
        &format!(
            "limit=500&before_id={}",
            enc(p2["first_id"].as_str().unwrap())
        ),
    )
    .await
    .json();
    assert_eq!(
        ids(top["data"].as_array().unwrap()),
        ids(p1["data"].as_array().unwrap())
    );
    assert_eq!(top["has_more"], false, "nothing newer than the newest page");

    // A raw activity id works as a cursor, like the cursor itself.
    let raw_id = p1["data"][499]["id"].as_str().unwrap();
    let by_id = get(&sim, &format!("limit=500&after_id={raw_id}"))
        .await
        .json();
    assert_eq!(
        ids(by_id["data"].as_array().unwrap()),
        ids(p2["data"].as_array().unwrap())
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_filters_select_the_window_and_reject_bad_values() {
    let sim = Simulator::start(quiet(4_000)).await.unwrap();
    sim.advance_clock(Duration::from_secs(5));
    let acts = sim.activities();
    let lo = acts[1000].created_at;
    let hi = acts[3000].created_at;
    let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let in_window = |gte: bool, lte: bool| -> BTreeSet<String> {
        acts.iter()
            .filter(|a| {
                if gte {
                    a.created_at >= lo
                } else {
                    a.created_at > lo
                }
            })
            .filter(|a| {
                if lte {
                    a.created_at <= hi
                } else {
                    a.created_at < hi
                }
            })
            .map(|a| a.id.clone())
            .collect()
    };
    for (gte, lte) in [(true, false), (false, true), (true, true), (false, false)] {
        let q = format!(
            "created_at.{}={}&created_at.{}={}",
            if gte { "gte" } else { "gt" },
            fmt(lo),
            if lte { "lte" } else { "lt" },
            fmt(hi)
        );
        let got = walk(&sim, &q, 5000).await;
        assert_eq!(
            ids(&got).into_iter().collect::<BTreeSet<_>>(),
            in_window(gte, lte),
            "{q}"
        );
    }
    // An offset other than Z, percent-encoded, means the same instant.
    let plus_two = (lo + chrono::Duration::hours(2))
        .format("%Y-%m-%dT%H:%M:%S%.6f%%2B02:00")
        .to_string();
    let got = walk(
        &sim,
        &format!("created_at.gte={plus_two}&created_at.lt={}", fmt(hi)),
        5000,
    )
    .await;
    assert_eq!(
        ids(&got).into_iter().collect::<BTreeSet<_>>(),
        in_window(true, false)
    );

    for (q, param, echo) in [
        ("created_at.gte=yesterday", "created_at.gte", "yesterday"),
        ("created_at.lt=2026-01-01", "created_at.lt", "2026-01-01"),
        (
            "created_at.gt=2026-01-01T00:00:00",
            "created_at.gt",
            "2026-01-01T00:00:00",
        ),
        (
            "created_at.lte=2026-01-01T00:00:00+01:00",
            "created_at.lte",
            "2026-01-01T00:00:00 01:00",
        ),
    ] {
        let r = get(&sim, q).await;
        assert_eq!(r.status, 400, "{q}");
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
        let m = r.error_message();
        assert!(m.contains(param) && m.contains(echo), "{q}: {m}");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_bounds() {
    let sim = Simulator::start(SimConfig {
        max_limit: 5000,
        ..quiet(6_000)
    })
    .await
    .unwrap();
    sim.advance_clock(Duration::from_secs(5));
    assert_eq!(
        get(&sim, "").await.json()["data"].as_array().unwrap().len(),
        100,
        "default limit"
    );
    assert_eq!(
        get(&sim, "limit=1").await.json()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        get(&sim, "limit=5000").await.json()["data"]
            .as_array()
            .unwrap()
            .len(),
        5000
    );
    for (q, got) in [
        ("limit=0", "0"),
        ("limit=5001", "5001"),
        ("limit=-3", "-3"),
        ("limit=ten", "ten"),
    ] {
        let r = get(&sim, q).await;
        assert_eq!(r.status, 400, "{q}");
        let m = r.error_message();
        assert!(
            m.contains("between 1 and 5000") && m.contains(got),
            "{q}: {m}"
        );
    }
    sim.shutdown().await;

    let small = Simulator::start(SimConfig {
        max_limit: 50,
        ..quiet(10)
    })
    .await
    .unwrap();
    let r = get(&small, "limit=51").await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("between 1 and 50"),
        "{}",
        r.error_message()
    );
    small.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_org_and_actor_filters() {
    let sim = Simulator::start(quiet(5_000)).await.unwrap();
    sim.advance_clock(Duration::from_secs(5));
    let all = walk(&sim, "", 5000).await;
    let count = |f: &dyn Fn(&Value) -> bool| all.iter().filter(|r| f(r)).count();

    let views = walk(
        &sim,
        "activity_types[]=claude_chat_viewed&activity_types%5B%5D=sso_login_succeeded",
        5000,
    )
    .await;
    assert!(
        views
            .iter()
            .all(|r| r["type"] == "claude_chat_viewed" || r["type"] == "sso_login_succeeded")
    );
    assert_eq!(
        views.len(),
        count(&|r| r["type"] == "claude_chat_viewed" || r["type"] == "sso_login_succeeded")
    );
    assert!(!views.is_empty());

    let rest = walk(&sim, "exclude_activity_types[]=claude_chat_viewed", 5000).await;
    assert!(rest.iter().all(|r| r["type"] != "claude_chat_viewed"));
    assert_eq!(rest.len(), count(&|r| r["type"] != "claude_chat_viewed"));

    let r = get(&sim, "activity_types[]=a&exclude_activity_types[]=b").await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("exclude_activity_types[]"));

    // Organizations by tagged id or by UUID.
    let sample = all
        .iter()
        .find(|r| r["organization_id"].is_string())
        .unwrap();
    let (org_id, org_uuid) = (
        sample["organization_id"].as_str().unwrap(),
        sample["organization_uuid"].as_str().unwrap(),
    );
    let expected = count(&|r| r["organization_id"] == org_id);
    let by_id = walk(&sim, &format!("organization_ids[]={org_id}"), 5000).await;
    let by_uuid = walk(&sim, &format!("organization_ids[]={org_uuid}"), 5000).await;
    assert_eq!(by_id.len(), expected);
    assert_eq!(ids(&by_id), ids(&by_uuid));
    assert!(by_id.iter().all(|r| r["organization_uuid"] == org_uuid));

    // Actors by user id (actor_ids[] and its alias user_ids[] merge).
    let users: Vec<&str> = all
        .iter()
        .filter_map(|r| r["actor"]["user_id"].as_str())
        .take(2)
        .collect();
    let got = walk(
        &sim,
        &format!("actor_ids[]={}&user_ids[]={}", users[0], users[1]),
        5000,
    )
    .await;
    assert_eq!(
        got.len(),
        count(&|r| r["actor"]["user_id"] == users[0] || r["actor"]["user_id"] == users[1])
    );
    assert!(
        got.iter()
            .all(|r| users.contains(&r["actor"]["user_id"].as_str().unwrap()))
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_garbage_and_unknown_cursors_are_400() {
    let sim = Simulator::start(SimConfig {
        cursor_ttl: Some(Duration::from_secs(3600)),
        ..quiet(500)
    })
    .await
    .unwrap();
    sim.advance_clock(Duration::from_secs(5));
    let page = get(&sim, "limit=10").await.json();
    let cursor = page["last_id"].as_str().unwrap().to_string();
    assert_eq!(
        get(&sim, &format!("after_id={}", enc(&cursor)))
            .await
            .status,
        200
    );

    for (q, needle) in [
        ("after_id=not-a-cursor".to_string(), "Invalid `after_id`"),
        (
            "before_id=eyJub3BlIjp0cnVlfQ".to_string(),
            "Invalid `before_id`",
        ),
        // Well-formed, but no such activity.
        (
            "after_id=activity_0100000000000000000000000A".to_string(),
            "No activity found for `after_id`",
        ),
        (
            format!("after_id={}&before_id={}", enc(&cursor), enc(&cursor)),
            "Only one of",
        ),
    ] {
        let r = get(&sim, &q).await;
        assert_eq!(r.status, 400, "{q}");
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
        assert!(
            r.error_message().contains(needle),
            "{q}: {}",
            r.error_message()
        );
    }

    sim.advance_clock(Duration::from_secs(3601));
    let r = get(&sim, &format!("after_id={}", enc(&cursor))).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("Invalid `after_id`") && r.error_message().contains("expired")
    );
    // A raw activity id carries no issue time, so it never goes stale.
    let raw = page["data"][9]["id"].as_str().unwrap();
    assert_eq!(get(&sim, &format!("after_id={raw}")).await.status, 200);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_permission_and_version_errors() {
    let forbidden = "sk-ant-api01-no-scope";
    let sim = Simulator::start(SimConfig {
        forbidden_key: Some(forbidden.into()),
        ..quiet(10)
    })
    .await
    .unwrap();
    for key in [None, Some(""), Some("sk-ant-api03-wrong")] {
        let r = get_with(&sim, "", key, Some("2023-06-01")).await;
        assert_eq!(r.status, 401, "{key:?}");
        let body = r.json();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "authentication_error");
        assert_eq!(
            body["error"]["message"],
            "The API key provided is invalid or has been revoked."
        );
        let rid = r.header("request-id").unwrap();
        assert!(rid.starts_with("req_"));
        assert_eq!(body["request_id"], rid.as_str());
    }
    let r = get_with(&sim, "", Some(forbidden), Some("2023-06-01")).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["type"], "permission_error");
    let m = r.error_message();
    assert!(
        m.starts_with("Missing required scopes. Got: [")
            && m.contains("Needed: ['read:compliance_activities']"),
        "{m}"
    );

    let r = get_with(&sim, "", Some(KEY), None).await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("anthropic-version"));
    let r = get_with(&sim, "", Some(KEY), Some("latest")).await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("'latest'"));

    let r = reqwest::Client::new()
        .get(format!("{}/v1/compliance/nope", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "not_found_error");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_429_with_retry_after_then_recovers() {
    let forbidden = "sk-ant-api01-no-scope";
    let sim = Simulator::start(SimConfig {
        rate_limit_per_minute: Some(5),
        forbidden_key: Some(forbidden.into()),
        ..quiet(10)
    })
    .await
    .unwrap();
    let mut remaining = Vec::new();
    for i in 0..4 {
        let r = get(&sim, "limit=1").await;
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(
            r.header("anthropic-ratelimit-requests-limit").as_deref(),
            Some("5")
        );
        let reset = r.header("anthropic-ratelimit-requests-reset").unwrap();
        assert!(DateTime::parse_from_rfc3339(&reset).is_ok(), "{reset}");
        remaining.push(r.header("anthropic-ratelimit-requests-remaining").unwrap());
        // Unauthenticated requests are rejected before the limiter.
        let bad = get_with(&sim, "", Some("wrong"), Some("2023-06-01")).await;
        assert_eq!(bad.status, 401);
    }
    assert_eq!(remaining, ["4", "3", "2", "1"]);
    // A key without the scope uses one unit before its 403.
    let r = get_with(&sim, "", Some(forbidden), Some("2023-06-01")).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("anthropic-ratelimit-requests-remaining")
            .as_deref(),
        Some("0")
    );

    let r = get(&sim, "limit=1").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        r.header("anthropic-ratelimit-requests-remaining")
            .as_deref(),
        Some("0")
    );
    assert!(r.error_message().contains("5 requests per minute"));

    sim.advance_clock(Duration::from_secs(retry));
    let r = get(&sim, "limit=1").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("anthropic-ratelimit-requests-remaining")
            .as_deref(),
        Some("4")
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_in_order() {
    let sim = Simulator::start(quiet(50)).await.unwrap();
    sim.advance_clock(Duration::from_secs(5));
    sim.inject(vec![
        Fault::Status {
            status: 503,
            retry_after: Some(7),
            should_retry: Some(true),
        },
        Fault::Status {
            status: 500,
            retry_after: None,
            should_retry: Some(false),
        },
        Fault::Status {
            status: 529,
            retry_after: None,
            should_retry: None,
        },
        Fault::Status {
            status: 404,
            retry_after: None,
            should_retry: None,
        },
        Fault::TruncatedBody,
    ]);
    let r = get(&sim, "").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after").as_deref(), Some("7"));
    assert_eq!(r.header("x-should-retry").as_deref(), Some("true"));
    assert_eq!(r.json()["error"]["type"], "overloaded_error");
    let r = get(&sim, "").await;
    assert_eq!(r.status, 500);
    assert_eq!(r.header("x-should-retry").as_deref(), Some("false"));
    assert_eq!(r.json()["error"]["type"], "api_error");
    assert_eq!(
        r.json()["request_id"],
        r.header("request-id").unwrap().as_str()
    );
    let r = get(&sim, "").await;
    assert_eq!(
        (r.status, r.json()["error"]["type"].clone()),
        (529, Value::from("overloaded_error"))
    );
    let r = get(&sim, "").await;
    assert_eq!(
        (r.status, r.json()["error"]["type"].clone()),
        (404, Value::from("not_found_error"))
    );

    let r = get(&sim, "limit=20").await;
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("{\"data\":[{"), "{}", &r.body[..40]);
    assert!(
        serde_json::from_str::<Value>(&r.body).is_err(),
        "a truncated body is not JSON"
    );

    // Faults used up: normal service, same data as before the faults.
    let r = get(&sim, "limit=20").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 20);
    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 500, 529, 404, 200, 200]);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_fault_trips_a_client_timeout() {
    let sim = Simulator::start(quiet(10)).await.unwrap();
    sim.inject(vec![Fault::Delay(Duration::from_secs(30))]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = client
        .get(format!("{}/v1/compliance/activities", sim.base_url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // The next request is not delayed.
    assert_eq!(get(&sim, "").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_records_stay_invisible_until_their_time() {
    let sim = Simulator::start(SimConfig {
        late_fraction: 0.2,
        visibility_delay: Duration::from_millis(500),
        late_max_delay: Duration::from_secs(2 * 3600),
        ..quiet(5_000)
    })
    .await
    .unwrap();
    let start = sim.now();
    let window = format!(
        "created_at.gte={}&created_at.lt={}",
        (start - chrono::Duration::hours(7)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        start.to_rfc3339().replace('+', "%2B")
    );
    let acts = sim.activities();
    let late: HashSet<&str> = acts
        .iter()
        .filter(|a| a.visible_at > a.created_at + chrono::Duration::milliseconds(500))
        .map(|a| a.id.as_str())
        .collect();
    assert!(
        (800..1200).contains(&late.len()),
        "about 20 % late: {}",
        late.len()
    );
    // Lateness is relative to created_at, as in the real feed: bounded by
    // late_max_delay, so only late records near the backlog's end are still
    // invisible at start.
    for a in acts.iter().filter(|a| late.contains(a.id.as_str())) {
        assert!(a.visible_at <= a.created_at + chrono::Duration::hours(2));
    }
    assert!(
        acts.iter().any(|a| a.visible_at > start),
        "some late records are still invisible at start"
    );

    sim.advance_clock(Duration::from_secs(60));
    let t_before = sim.now();
    let first = ids(&walk(&sim, &window, 5000).await);
    let t_after = sim.now();
    let first: BTreeSet<String> = first.into_iter().collect();
    // Everything visible when the walk began is there; nothing that only
    // became visible after it ended is.
    assert!(visible_at(&acts, t_before).is_subset(&first));
    assert!(first.is_subset(&visible_at(&acts, t_after)));
    assert!(
        first.len() < 5_000,
        "late records are missing from the first read"
    );

    // Two hours later the same window, already read, has grown: the late
    // records appeared behind it. That is what the daemon's sweep is for.
    sim.advance_clock(Duration::from_secs(2 * 3600));
    let second: BTreeSet<String> = ids(&walk(&sim, &window, 5000).await).into_iter().collect();
    assert_eq!(second.len(), 5_000);
    assert!(first.is_subset(&second));
    assert!(
        second
            .difference(&first)
            .all(|id| late.contains(id.as_str()))
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_authenticated_call_logs_its_own_activity() {
    let sim = Simulator::start(SimConfig {
        self_activity: true,
        visibility_delay: Duration::ZERO,
        ..quiet(20)
    })
    .await
    .unwrap();
    let ok = get(&sim, "limit=5&organization_ids[]=org_x").await;
    assert_eq!(ok.status, 200);
    let bad = get(&sim, "limit=0").await;
    assert_eq!(bad.status, 400);
    let unauth = get_with(&sim, "", Some("wrong"), Some("2023-06-01")).await;
    assert_eq!(unauth.status, 401);

    let page = get(&sim, "activity_types[]=compliance_api_accessed&limit=100")
        .await
        .json();
    let by_request: HashMap<&str, &Value> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["request_id"].as_str().unwrap(), r))
        .collect();
    let own = by_request[ok.header("request-id").unwrap().as_str()];
    assert_eq!(own["type"], "compliance_api_accessed");
    assert_eq!(own["actor"]["type"], "api_actor");
    assert_eq!(own["actor"]["ip_address"], "127.0.0.1");
    assert_eq!(own["actor"]["user_agent"], "claudit-test/1.0");
    let key_id = own["actor"]["api_key_id"].as_str().unwrap();
    assert!(
        key_id.starts_with("apikey_") && !key_id.contains("simulator"),
        "no key material: {key_id}"
    );
    assert_eq!(own["api_key_id"], key_id);
    assert_eq!(own["request_method"], "GET");
    assert_eq!(own["status_code"], 200);
    assert!(
        own["url"]
            .as_str()
            .unwrap()
            .ends_with("/v1/compliance/activities?limit=5&organization_ids[]=org_x")
    );
    assert!(own["organization_id"].is_null());
    assert!(own["request_body"].is_null());
    let failed = by_request[bad.header("request-id").unwrap().as_str()];
    assert_eq!(failed["status_code"], 400);
    assert!(
        !by_request.contains_key(unauth.header("request-id").unwrap().as_str()),
        "401s are not logged"
    );
    assert!(
        sim.activities()
            .iter()
            .filter(|a| a.activity_type == "compliance_api_accessed")
            .count()
            >= 3
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_generation_follows_the_clock_and_stops() {
    let sim = Simulator::start(SimConfig {
        live_per_second: 100.0,
        ..quiet(0)
    })
    .await
    .unwrap();
    sim.advance_clock(Duration::from_secs(10));
    // The generator catches up on its next tick (every 10 ms).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sim.activities().len() < 1_000 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let acts = sim.activities();
    assert!(acts.len() >= 1_000, "{}", acts.len());
    assert!(acts.iter().all(|a| a.created_at <= sim.now()));
    let unique: HashSet<&str> = acts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(unique.len(), acts.len());
    sim.stop_live();
    tokio::time::sleep(Duration::from_millis(50)).await; // let a tick observe the stop
    let n = sim.activities().len();
    sim.advance_clock(Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sim.activities().len(), n, "no live records after stop_live");
    sim.shutdown().await;
}

#[test]
fn generator_covers_the_catalogue_and_every_actor_variant() {
    let mut g = Generator::new(7);
    let t0: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-05-08T12:18:11.000538Z")
        .unwrap()
        .into();
    let mut types = HashSet::new();
    let mut actors = HashSet::new();
    let mut agents = HashSet::new();
    let (
        mut v4_public,
        mut v4_private,
        mut v6,
        mut unicode_email,
        mut logging_off,
        mut extra_fields,
    ) = (0, 0, 0, 0, 0, 0);
    let known_fields: HashMap<&str, HashSet<&str>> = Generator::catalogue()
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.fields.iter().map(|f| f.name.as_str()).collect(),
            )
        })
        .collect();
    for i in 0..150_000u64 {
        let r = g.activity(
            &format!("activity_{i}"),
            t0 + chrono::Duration::microseconds(i as i64),
        );
        let ty = r["type"].as_str().unwrap().to_string();
        let actor = &r["actor"];
        actors.insert(actor["type"].as_str().unwrap().to_string());
        if let Some(ip) = actor["ip_address"].as_str() {
            match ip.parse::<std::net::IpAddr>().unwrap() {
                std::net::IpAddr::V4(a) if a.is_private() => v4_private += 1,
                std::net::IpAddr::V4(_) => v4_public += 1,
                std::net::IpAddr::V6(_) => v6 += 1,
            }
        }
        if let Some(ua) = actor["user_agent"].as_str() {
            agents.insert(ua.to_string());
        }
        if actor["email_address"]
            .as_str()
            .is_some_and(|e| !e.is_ascii())
        {
            unicode_email += 1;
        }
        if ty == "org_compliance_api_settings_updated"
            && r["compliance_api_logging_enabled"] == false
        {
            logging_off += 1;
        }
        if let Some(known) = known_fields.get(ty.as_str()) {
            let common = [
                "id",
                "type",
                "created_at",
                "organization_id",
                "organization_uuid",
                "actor",
            ];
            if !known.is_empty()
                && r.as_object()
                    .unwrap()
                    .keys()
                    .any(|k| !common.contains(&k.as_str()) && !known.contains(k.as_str()))
            {
                extra_fields += 1;
            }
        }
        let created = r["created_at"].as_str().unwrap();
        assert_eq!(
            created.len(),
            "2026-05-08T12:18:11.000538Z".len(),
            "microseconds: {created}"
        );
        types.insert(ty);
    }
    for t in Generator::catalogue() {
        assert!(types.contains(&t.name), "{} never generated", t.name);
    }
    let unknown_types: Vec<&String> = types
        .iter()
        .filter(|t| !Generator::catalogue().iter().any(|c| &c.name == *t))
        .collect();
    assert!(!unknown_types.is_empty(), "some future activity types");
    for a in [
        "user_actor",
        "api_actor",
        "admin_api_key_actor",
        "unauthenticated_user_actor",
        "anthropic_actor",
        "scim_directory_sync_actor",
        "system_actor",
        "service_account_actor",
        "federated_identity_actor",
    ] {
        assert!(actors.contains(a), "{a} never generated");
    }
    assert!(
        actors.len() > 9,
        "an unknown future actor type too: {actors:?}"
    );
    assert!(
        v4_public > 0 && v4_private > 0 && v6 > 0,
        "{v4_public} {v4_private} {v6}"
    );
    assert!(unicode_email > 0 && logging_off > 0 && extra_fields > 0);
    for family in [
        "Chrome/",
        "Firefox/",
        "Version/18.6 Safari",
        "Edg/",
        "iPhone",
        "Android",
        "Claude/1.",
        "claude-cli/2.",
        "python-requests/",
        "python-httpx/",
        "aiohttp/",
        "Go-http-client/",
        "okhttp/",
        "axios/",
        "node-fetch/",
        "curl/",
        "Java-http-client/",
        "bot",
    ] {
        assert!(
            agents.iter().any(|a| a.contains(family)),
            "no {family} user agent"
        );
    }
}

#[test]
fn generator_is_deterministic_per_seed() {
    let t0: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .into();
    let run = |seed: u64| {
        let mut g = Generator::new(seed);
        (0..500)
            .map(|i| g.activity(&format!("activity_{i}"), t0))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_feed() {
    let a = Simulator::start(quiet(300)).await.unwrap();
    let b = Simulator::start(quiet(300)).await.unwrap();
    let (ta, tb) = (a.activities(), b.activities());
    // Times are anchored at start; types and count match exactly.
    assert_eq!(ta.len(), tb.len());
    assert!(
        ta.iter()
            .zip(&tb)
            .all(|(x, y)| x.activity_type == y.activity_type)
    );
    a.shutdown().await;
    b.shutdown().await;
}
