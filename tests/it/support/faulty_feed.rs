//! A Compliance API activity feed whose paging can be broken on demand: a
//! small, correct newest-first feed (`created_at.gte`/`.lt`, `after_id`,
//! `limit`, `has_more`, `first_id`/`last_id`, a `request-id` on every
//! answer) that a test switches between healthy and two faults seen in the
//! wild:
//!
//! - [`Paging::RepeatsCursor`]: a page asked for with `after_id` answers
//!   the right records but `has_more: true` and `last_id` equal to the
//!   cursor just sent, so a client that follows `last_id` asks for the same
//!   page forever;
//! - [`Paging::NullCursor`]: a page with more after it answers
//!   `has_more: true` and `last_id: null`, so a client that stops on a
//!   null cursor drops the rest of its window.
//!
//! Every request is counted with the paging mode it was answered in.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

/// How the feed pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    Healthy,
    RepeatsCursor,
    NullCursor,
}

impl Paging {
    fn from_u8(v: u8) -> Paging {
        match v {
            1 => Paging::RepeatsCursor,
            2 => Paging::NullCursor,
            _ => Paging::Healthy,
        }
    }
}

/// One request the feed answered.
#[derive(Debug, Clone)]
pub struct Served {
    pub at: Instant,
    pub paging: Paging,
    pub after_id: Option<String>,
}

struct Feed {
    key: String,
    /// (created_at, id), newest first.
    records: Vec<(DateTime<Utc>, String)>,
    paging: AtomicU8,
    served: Mutex<Vec<Served>>,
    counter: AtomicU64,
}

/// A running faulty feed; stops when dropped with the test's runtime.
#[derive(Clone)]
pub struct FaultyFeed {
    feed: Arc<Feed>,
    pub base_url: String,
}

impl FaultyFeed {
    /// Serves `records` (id, created_at) to requests carrying `key`.
    pub async fn start(key: &str, records: Vec<(String, DateTime<Utc>)>) -> FaultyFeed {
        let mut records: Vec<(DateTime<Utc>, String)> =
            records.into_iter().map(|(id, t)| (t, id)).collect();
        records.sort_by(|a, b| b.cmp(a));
        let feed = Arc::new(Feed {
            key: key.to_string(),
            records,
            paging: AtomicU8::new(0),
            served: Mutex::new(Vec::new()),
            counter: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/v1/compliance/activities", axum::routing::get(activities))
            .with_state(feed.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FaultyFeed { feed, base_url }
    }

    pub fn set_paging(&self, paging: Paging) {
        let v = match paging {
            Paging::Healthy => 0,
            Paging::RepeatsCursor => 1,
            Paging::NullCursor => 2,
        };
        self.feed.paging.store(v, Ordering::SeqCst);
    }

    /// Every request answered so far, in order.
    pub fn served(&self) -> Vec<Served> {
        self.feed.served.lock().unwrap().clone()
    }
}

fn param<'q>(pairs: &'q [(String, String)], name: &str) -> Option<&'q str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn activities(
    State(feed): State<Arc<Feed>>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let n = feed.counter.fetch_add(1, Ordering::SeqCst);
    let request_id = format!("req_faulty_{n:04}");
    let reply = |status: StatusCode, body: serde_json::Value| {
        (
            status,
            [("request-id", request_id.clone())],
            axum::Json(body),
        )
            .into_response()
    };
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(feed.key.as_str()) {
        return reply(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}),
        );
    }
    let time = |name: &str| {
        param(&pairs, name).and_then(|v| DateTime::parse_from_rfc3339(v).ok().map(|t| t.to_utc()))
    };
    let (gte, lt) = (time("created_at.gte"), time("created_at.lt"));
    let limit: usize = param(&pairs, "limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let after_id = param(&pairs, "after_id").map(str::to_string);
    let paging = Paging::from_u8(feed.paging.load(Ordering::SeqCst));
    feed.served.lock().unwrap().push(Served {
        at: Instant::now(),
        paging,
        after_id: after_id.clone(),
    });

    let in_range: Vec<&(DateTime<Utc>, String)> = feed
        .records
        .iter()
        .filter(|(t, _)| gte.is_none_or(|g| *t >= g) && lt.is_none_or(|l| *t < l))
        .collect();
    let from = match &after_id {
        None => 0,
        Some(cursor) => match in_range.iter().position(|(_, id)| id == cursor) {
            Some(i) => i + 1,
            None => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"type": "error", "error": {"type": "invalid_request_error",
                        "message": format!("Invalid `after_id`. No activity found for `after_id` {cursor}.")}}),
                );
            }
        },
    };
    let page = &in_range[from.min(in_range.len())..(from + limit).min(in_range.len())];
    let has_more = from + limit < in_range.len();
    let data: Vec<serde_json::Value> = page
        .iter()
        .map(|(t, id)| {
            serde_json::json!({
                "id": id, "type": "claude_chat_created",
                "created_at": claudit::model::format_time(*t),
                "organization_id": "org_faulty", "organization_uuid": "00000000-0000-4000-8000-000000000001",
                "actor": {"type": "user_actor", "email_address": "a@example.com", "user_id": "user_1",
                          "ip_address": "192.0.2.1", "user_agent": "curl/8.5.0"},
                "claude_chat_id": "claude_chat_1"
            })
        })
        .collect();
    let first_id = page.first().map(|(_, id)| id.clone());
    let mut last_id = page.last().map(|(_, id)| id.clone());
    match paging {
        Paging::Healthy => {}
        Paging::RepeatsCursor => {
            if after_id.is_some() {
                last_id = after_id.clone();
                return reply(
                    StatusCode::OK,
                    serde_json::json!({"data": data, "has_more": true, "first_id": first_id, "last_id": last_id}),
                );
            }
        }
        Paging::NullCursor => {
            if has_more {
                last_id = None;
            }
        }
    }
    reply(
        StatusCode::OK,
        serde_json::json!({"data": data, "has_more": has_more, "first_id": first_id, "last_id": last_id}),
    )
}
