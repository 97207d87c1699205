//! The HTTP side: one handler for every request, record creation (backlog,
//! live, self activities) and page rendering.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use chrono::SecondsFormat;
use tokio_util::sync::CancellationToken;

use super::clock::{duration_micros, to_datetime};
use super::generate::{ActorPlan, Generator, type_table};
use super::ids::{
    CursorValue, Key, activity_id, decode_cursor, encode_cursor, request_id, tagged_id,
};
use super::json::ObjWriter;
use super::query::{FeedQuery, parse_feed_query};
use super::ratelimit::RateStatus;
use super::rng::{Rng, STREAM_ID, STREAM_REQUEST, STREAM_SELF, STREAM_VISIBILITY, hash_str};
use super::store::{Anchor, Filter, NO_ORG, NO_USER, Order, Page, Rec, Selection, Store};
use super::{Fault, Shared, SimActivity, SimConfig, SimRequest, lock};

const FEED_PATH: &str = "/v1/compliance/activities";

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// When a record created at `created` becomes visible (spec §4.4: usually
/// within the documented lag, sometimes later). Lateness is always relative
/// to `created_at`, as in the real feed: a backlog record created hours ago
/// was visible long before the simulator started.
fn visible_at(config: &SimConfig, rng: &mut Rng, created: i64) -> i64 {
    let delay = duration_micros(config.visibility_delay);
    if rng.chance(config.late_fraction) {
        let max = duration_micros(config.late_max_delay).max(delay);
        created + rng.between(delay, max)
    } else {
        created + rng.between(0, delay)
    }
}

fn generated_rec(generator: &Generator, config: &SimConfig, index: u64, created: i64) -> Rec {
    let seed = config.seed;
    let plan = generator.plan(index);
    let mut vis_rng = Rng::for_item(seed, STREAM_VISIBILITY, index);
    vis_rng.next_u64(); // the first draw placed `created` in time
    Rec {
        created,
        suffix: Rng::for_item(seed, STREAM_ID, index).next_u64(),
        visible: visible_at(config, &mut vis_rng, created),
        payload: index as u32,
        stored: false,
        type_idx: plan.type_idx,
        org: plan.org.unwrap_or(NO_ORG),
        user: match plan.actor {
            ActorPlan::User(u) => u,
            _ => NO_USER,
        },
    }
}

/// The backlog: `created_at` spread evenly (with jitter) over the span
/// ending at `start`. Only the late records near its end are still
/// invisible at start.
pub(crate) fn build_backlog(generator: &Generator, config: &SimConfig, start: i64) -> Store {
    let n = config.backlog;
    let span = duration_micros(config.backlog_span) as f64;
    let begin = start as f64 - span;
    let recs = (0..n as u64)
        .map(|i| {
            let jitter = Rng::for_item(config.seed, STREAM_VISIBILITY, i).unit();
            let created = (begin + span * (i as f64 + jitter) / n as f64) as i64;
            generated_rec(generator, config, i, created.min(start))
        })
        .collect();
    let mut store = Store::from_records(recs);
    if config.attack_sequences {
        add_attack_sequences(&mut store, generator, config, start);
    }
    store
}

/// The attack sequences (`generate/attacks.rs`), stored whole.
fn add_attack_sequences(store: &mut Store, generator: &Generator, config: &SimConfig, start: i64) {
    let world = generator.world();
    let span = duration_micros(config.backlog_span);
    let attacks = super::generate::attacks::attack_sequences(world, start, span);
    for (i, attack) in attacks.into_iter().enumerate() {
        let mut rng = Rng::for_item(config.seed ^ 0x00a7_7ac4, STREAM_ID, i as u64);
        let rec = Rec {
            created: attack.created,
            suffix: rng.next_u64(),
            // Visible at once: the backlog's attacks are history.
            visible: attack.created,
            payload: 0,
            stored: true,
            type_idx: type_table().index_of(attack.type_name).unwrap_or(0),
            org: attack.org.unwrap_or(NO_ORG),
            user: attack.user.unwrap_or(NO_USER),
        };
        let org = attack.org.map(|o| &world.orgs[o as usize]);
        let body = |key: Key| {
            let mut record = serde_json::Map::new();
            record.insert("id".into(), activity_id(key).into());
            record.insert(
                "created_at".into(),
                to_datetime(key.created)
                    .to_rfc3339_opts(SecondsFormat::Micros, true)
                    .into(),
            );
            record.insert(
                "organization_id".into(),
                org.map_or(serde_json::Value::Null, |o| o.id.clone().into()),
            );
            record.insert(
                "organization_uuid".into(),
                org.map_or(serde_json::Value::Null, |o| o.uuid.clone().into()),
            );
            if let serde_json::Value::Object(fields) = attack.fields {
                record.extend(fields);
            }
            serde_json::Value::Object(record).to_string()
        };
        store.insert_stored(rec, body);
    }
}

/// Adds live records at `live_per_second` until stopped: record `j` is
/// created at `start + (j + jitter) / rate`, once that time has passed.
pub(crate) async fn live_generation(
    shared: Arc<Shared>,
    cancel: CancellationToken,
    start: i64,
    first_index: u64,
) {
    let rate = shared.config.live_per_second;
    let period = std::time::Duration::from_secs_f64((1.0 / rate).clamp(0.01, 0.1));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut made: u64 = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        if shared.live_stopped.load(Ordering::SeqCst) {
            return;
        }
        let now = shared.clock.now_micros();
        let due = ((now - start).max(0) as f64 / 1e6 * rate).floor() as u64;
        if due <= made {
            continue;
        }
        let recs: Vec<Rec> = (made..due)
            .map(|j| {
                let index = first_index + j;
                let jitter = Rng::for_item(shared.config.seed, STREAM_VISIBILITY, index).unit();
                let created = start + ((j as f64 + jitter) / rate * 1e6) as i64;
                generated_rec(&shared.generator, &shared.config, index, created.min(now))
            })
            .collect();
        let mut store = shared
            .store
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for r in recs {
            store.insert(r);
        }
        made = due;
    }
}

pub(crate) fn activities(shared: &Shared) -> Vec<SimActivity> {
    let store = shared
        .store
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    store
        .records()
        .iter()
        .map(|r| SimActivity {
            id: activity_id(r.key()),
            activity_type: type_table().name(r.type_idx).to_string(),
            created_at: to_datetime(r.created),
            visible_at: to_datetime(r.visible),
        })
        .collect()
}

/// An answer before faults are applied.
pub(super) struct Answer {
    pub status: StatusCode,
    pub body: String,
    pub retry_after: Option<u64>,
    pub should_retry: Option<bool>,
}

fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 405 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

fn default_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Invalid request.",
        401 => "The API key provided is invalid or has been revoked.",
        403 => "Missing required scopes. Got: [] Needed: ['read:compliance_activities']",
        404 => "Not found",
        409 => "Conflict.",
        429 => {
            "Compliance API rate limit of 600 requests per minute per parent organization has been exceeded."
        }
        503 | 529 => "Overloaded",
        _ => "Internal server error",
    }
}

pub(super) fn error_answer(status: StatusCode, message: &str, request_id: &str) -> Answer {
    let mut body = String::with_capacity(160 + message.len());
    let mut w = ObjWriter::new(&mut body);
    w.str("type", "error");
    w.object("error", |e| {
        e.str("type", error_type(status));
        e.str("message", message);
    });
    w.str("request_id", request_id);
    w.finish();
    Answer {
        status,
        body,
        retry_after: None,
        should_retry: None,
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response<Body> {
    let counter = shared.request_counter.fetch_add(1, Ordering::SeqCst);
    let request_id =
        request_id(Rng::for_item(shared.config.seed, STREAM_REQUEST, counter).next_u64());
    let fault = lock(&shared.faults).pop_front();
    let mut truncate = false;
    let answer = match fault {
        Some(Fault::Status {
            status,
            retry_after,
            should_retry,
        }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut a = error_answer(status, default_message(status), &request_id);
            a.retry_after = retry_after;
            a.should_retry = should_retry;
            Some(a)
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            None
        }
        Some(Fault::TruncatedBody) => {
            truncate = true;
            None
        }
        None => None,
    };
    let now = shared.clock.now_micros();
    let answer =
        answer.unwrap_or_else(|| serve(&shared, &method, &uri, &headers, &request_id, now));
    let rate = shared.limiter.as_ref().map(|l| lock(l).status(now));

    let mut body = answer.body;
    if truncate && answer.status == StatusCode::OK {
        let mut cut = body.len() / 2;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
    }
    lock(&shared.requests).push(SimRequest {
        at: to_datetime(now),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        status: answer.status.as_u16(),
        request_id: request_id.clone(),
    });

    let mut response = Response::new(Body::from(body));
    *response.status_mut() = answer.status;
    let h = response.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    insert_header(h, "request-id", &request_id);
    if let Some(rate) = rate {
        insert_header(
            h,
            "anthropic-ratelimit-requests-limit",
            &rate.limit.to_string(),
        );
        insert_header(
            h,
            "anthropic-ratelimit-requests-remaining",
            &rate.remaining.to_string(),
        );
        insert_header(h, "anthropic-ratelimit-requests-reset", &reset_header(rate));
    }
    if let Some(secs) = answer.retry_after {
        insert_header(h, "retry-after", &secs.to_string());
    }
    if let Some(retry) = answer.should_retry {
        insert_header(h, "x-should-retry", if retry { "true" } else { "false" });
    }
    response
}

fn insert_header(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// RFC 3339, whole seconds, rounded up so a client sleeping until the
/// reset does not wake before it.
fn reset_header(rate: RateStatus) -> String {
    let secs = (rate.reset_micros + 999_999).div_euclid(1_000_000);
    to_datetime(secs * 1_000_000).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// What the API answers, given the request (no faults).
fn serve(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    request_id: &str,
    now: i64,
) -> Answer {
    let directory = super::directory::is_directory_path(uri.path());
    if uri.path() != FEED_PATH && !directory {
        return error_answer(StatusCode::NOT_FOUND, "Not found", request_id);
    }
    if method != Method::GET {
        let msg = format!("Method {method} is not allowed on {}; use GET.", uri.path());
        return error_answer(StatusCode::METHOD_NOT_ALLOWED, &msg, request_id);
    }
    let config = &shared.config;
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let forbidden = config
        .forbidden_key
        .as_deref()
        .is_some_and(|f| !f.is_empty() && key == f);
    let accepted = key == config.api_key || config.extra_api_keys.iter().any(|k| k == key);
    if key.is_empty() || (!accepted && !forbidden) {
        // Rejected before the rate limiter: no budget used, nothing logged.
        return error_answer(
            StatusCode::UNAUTHORIZED,
            default_message(StatusCode::UNAUTHORIZED),
            request_id,
        );
    }
    let answer = serve_authenticated(shared, uri, headers, request_id, now, forbidden, key);
    if config.self_activity {
        record_self_activity(shared, uri, headers, request_id, now, key, answer.status);
    }
    answer
}

fn serve_authenticated(
    shared: &Shared,
    uri: &Uri,
    headers: &HeaderMap,
    request_id: &str,
    now: i64,
    forbidden: bool,
    key: &str,
) -> Answer {
    let config = &shared.config;
    if let Some(limiter) = &shared.limiter
        && let Err(secs) = lock(limiter).acquire(now)
    {
        let limit = config.rate_limit_per_minute.unwrap_or(0);
        let msg = format!(
            "Compliance API rate limit of {limit} requests per minute per parent organization has been exceeded. \
                 Retry after {secs} seconds (see the retry-after header)."
        );
        let mut a = error_answer(StatusCode::TOO_MANY_REQUESTS, &msg, request_id);
        a.retry_after = Some(secs);
        return a;
    }
    if forbidden {
        let msg = "Missing required scopes. Got: ['read:compliance_org_data'] Needed: ['read:compliance_activities']";
        return error_answer(StatusCode::FORBIDDEN, msg, request_id);
    }
    match headers
        .get("anthropic-version")
        .map(|v| v.to_str().unwrap_or(""))
    {
        None => {
            let msg =
                "The `anthropic-version` header is required. Send `anthropic-version: 2023-06-01`.";
            return error_answer(StatusCode::BAD_REQUEST, msg, request_id);
        }
        Some(v) if !is_version(v) => {
            let msg = format!(
                "Invalid `anthropic-version` header value '{}': expected a date such as 2023-06-01.",
                truncate_echo(v)
            );
            return error_answer(StatusCode::BAD_REQUEST, &msg, request_id);
        }
        Some(_) => {}
    }
    if uri.path() != FEED_PATH {
        // Admin API keys read the feed only (spec §1.1).
        let admin_key = key.starts_with("sk-ant-admin01-");
        let query = uri.query().unwrap_or("");
        return super::directory::answer(shared, uri.path(), query, admin_key, request_id, now);
    }
    let query = match parse_feed_query(uri.query().unwrap_or(""), config.max_limit) {
        Ok(q) => q,
        Err(msg) => return error_answer(StatusCode::BAD_REQUEST, &msg, request_id),
    };
    match page(shared, &query, now) {
        Ok(body) => Answer {
            status: StatusCode::OK,
            body,
            retry_after: None,
            should_retry: None,
        },
        Err(msg) => error_answer(StatusCode::BAD_REQUEST, &msg, request_id),
    }
}

fn is_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

fn truncate_echo(v: &str) -> String {
    if v.chars().count() > 200 {
        let mut s: String = v.chars().take(200).collect();
        s.push('…');
        s
    } else {
        v.to_string()
    }
}

fn resolve_cursor(
    shared: &Shared,
    store: &Store,
    param: &str,
    value: &str,
    now: i64,
) -> Result<Key, String> {
    let echo = truncate_echo(value);
    let key = match decode_cursor(value) {
        None => {
            return Err(format!(
                "Invalid `{param}`. '{echo}' is neither a cursor returned by this endpoint (`first_id`/`last_id`) \
                 nor an activity id; pass them back exactly as returned."
            ));
        }
        Some(CursorValue::Issued { key, issued_micros }) => {
            if let Some(ttl) = shared.config.cursor_ttl
                && now - issued_micros > duration_micros(ttl)
            {
                return Err(format!(
                    "Invalid `{param}`. The cursor has expired (cursors are valid for {} s); \
                     restart the walk from a `created_at` bound.",
                    ttl.as_secs()
                ));
            }
            key
        }
        Some(CursorValue::RawId(key)) => key,
    };
    if !store.contains(key) {
        return Err(format!(
            "Invalid `{param}`. No activity found for `{param}` '{echo}'."
        ));
    }
    Ok(key)
}

fn filter(shared: &Shared, q: &FeedQuery) -> Filter {
    let table = type_table();
    let world = shared.generator.world();
    let types = if !q.activity_types.is_empty() {
        Some(
            (0..table.len() as u16)
                .map(|i| q.activity_types.iter().any(|t| t == table.name(i)))
                .collect(),
        )
    } else if !q.exclude_activity_types.is_empty() {
        Some(
            (0..table.len() as u16)
                .map(|i| !q.exclude_activity_types.iter().any(|t| t == table.name(i)))
                .collect(),
        )
    } else {
        None
    };
    let orgs = (!q.organization_ids.is_empty()).then(|| {
        q.organization_ids
            .iter()
            .filter_map(|o| world.org_index(o))
            .collect()
    });
    let users = (!q.actor_ids.is_empty()).then(|| {
        q.actor_ids
            .iter()
            .filter_map(|u| world.user_index(u))
            .collect()
    });
    Filter { types, orgs, users }
}

/// Selects and renders one page, or the 400 message for a bad cursor.
fn page(shared: &Shared, q: &FeedQuery, now: i64) -> Result<String, String> {
    let page: Page = {
        let store = shared
            .store
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let anchor = match (&q.after_id, &q.before_id) {
            (Some(a), _) => Some(Anchor::After(resolve_cursor(
                shared, &store, "after_id", a, now,
            )?)),
            (_, Some(b)) => Some(Anchor::Before(resolve_cursor(
                shared,
                &store,
                "before_id",
                b,
                now,
            )?)),
            _ => None,
        };
        let selection = Selection {
            order: q.order.unwrap_or(Order::Desc),
            anchor,
            from: q.from,
            until: q.until,
            limit: q.limit,
            filter: filter(shared, q),
        };
        store.select(&selection, now)
    };
    // Render without holding the lock.
    let mut body = String::with_capacity(64 + page.recs.len() * 700);
    body.push_str("{\"data\":[");
    for (i, (rec, stored)) in page.recs.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        match stored {
            Some(json) => body.push_str(json),
            None => shared.generator.render(
                u64::from(rec.payload),
                &activity_id(rec.key()),
                to_datetime(rec.created),
                &mut body,
            ),
        }
    }
    body.push(']');
    let mut tail = String::new();
    let mut w = ObjWriter::new(&mut tail);
    w.bool("has_more", page.has_more);
    w.opt_str(
        "first_id",
        page.recs
            .first()
            .map(|(r, _)| encode_cursor(r.key(), now))
            .as_deref(),
    );
    w.opt_str(
        "last_id",
        page.recs
            .last()
            .map(|(r, _)| encode_cursor(r.key(), now))
            .as_deref(),
    );
    w.finish();
    // `tail` is `{...}`: splice its members after `data`.
    body.push(',');
    body.push_str(&tail[1..]);
    Ok(body)
}

/// The `compliance_api_accessed` activity this call leaves in the feed
/// (spec §2.4), created now and visible after the usual delay.
fn record_self_activity(
    shared: &Shared,
    uri: &Uri,
    headers: &HeaderMap,
    request_id: &str,
    now: i64,
    key: &str,
    status: StatusCode,
) {
    let config = &shared.config;
    let counter = shared.request_counter.load(Ordering::SeqCst);
    let mut rng = Rng::for_item(config.seed, STREAM_SELF, hash_str(request_id) ^ counter);
    let api_key_id = tagged_id("apikey_", hash_str(key));
    let user_agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let url = format!(
        "{}{}",
        shared.base_url,
        uri.path_and_query().map_or(FEED_PATH, |p| p.as_str())
    );
    let rec = Rec {
        created: now,
        suffix: rng.next_u64(),
        visible: visible_at(config, &mut rng, now),
        payload: 0,
        stored: true,
        type_idx: type_table()
            .index_of("compliance_api_accessed")
            .unwrap_or(0),
        org: NO_ORG,
        user: NO_USER,
    };
    let body = |key: Key| {
        let mut s = String::with_capacity(600);
        let mut w = ObjWriter::new(&mut s);
        w.str("id", &activity_id(key));
        w.str(
            "created_at",
            &to_datetime(key.created).to_rfc3339_opts(SecondsFormat::Micros, true),
        );
        w.null("organization_id");
        w.null("organization_uuid");
        w.object("actor", |a| {
            a.str("type", "api_actor");
            a.str("api_key_id", &api_key_id);
            a.str("ip_address", "127.0.0.1");
            a.opt_str("user_agent", user_agent.as_deref());
        });
        w.str("type", "compliance_api_accessed");
        w.str("request_id", request_id);
        w.str("api_key_id", &api_key_id);
        w.str("url", &url);
        w.str("request_method", "GET");
        w.null("request_body");
        w.int("status_code", i64::from(status.as_u16()));
        w.finish();
        s
    };
    let mut store = shared
        .store
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    store.insert_stored(rec, body);
}
