//! A strict Elasticsearch `_bulk` emulator for wiremock, following
//! `spec/sinks.md` section 5 (shared by the Elasticsearch, independence and
//! dead-letter tests). It enforces the auth header, the path, the content
//! type, gzip, NDJSON pairs each ending in `\n`, `create` actions with
//! `_index` and `_id`, and an `@timestamp` in each document; a request that
//! breaks a rule is answered 400 and recorded as a violation, so a test can
//! assert there were none. Documents are stored with `create` semantics: a
//! second `create` of an `_id` answers 409 per item.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex};

use claudit::store::JournalRecord;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const INDEX: &str = "logs-claudit.ocsf-test";

#[derive(Default)]
pub struct EsState {
    /// Documents stored, in the order they were created: (`_id`, source).
    pub docs: Vec<(String, Value)>,
    pub ids: HashSet<String>,
    /// Every `_id` in every well-formed request, in order (duplicates too).
    pub received: Vec<String>,
    /// Items answered 409 because the document was already there.
    pub conflicts: usize,
    /// Well-formed `_bulk` requests.
    pub requests: usize,
    /// Raw (uncompressed) sizes of the bulk bodies.
    pub body_sizes: Vec<usize>,
    /// Ids answered 400 mapper_parsing_exception.
    pub reject_ids: HashSet<String>,
    /// Ids answered 429 (per item) this many more times.
    pub busy_ids: HashMap<String, usize>,
    /// When set, every bulk request is answered with this status.
    pub down: Option<u16>,
    /// `Retry-After` sent with `down`.
    pub retry_after: Option<String>,
    /// Protocol violations seen (must stay empty).
    pub violations: Vec<String>,
    /// Authorization headers that were refused.
    pub refused_auth: usize,
    /// The `_index` every action must name; `None` = [`INDEX`].
    pub index: Option<String>,
}

#[derive(Clone)]
pub struct Es {
    pub state: Arc<Mutex<EsState>>,
    /// The exact `Authorization` header value required.
    pub authorization: String,
}

impl Es {
    pub fn state(&self) -> std::sync::MutexGuard<'_, EsState> {
        self.state.lock().unwrap()
    }

    pub fn stored_ids(&self) -> Vec<String> {
        self.state().docs.iter().map(|(id, _)| id.clone()).collect()
    }
}

fn es_error(status: u16, ty: &str, reason: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {"root_cause": [{"type": ty, "reason": reason}], "type": ty, "reason": reason},
        "status": status
    }))
}

impl Es {
    fn violation(&self, what: String) -> ResponseTemplate {
        self.state().violations.push(what.clone());
        es_error(400, "illegal_argument_exception", &what)
    }
}

impl Respond for Es {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let header = |name: &str| {
            req.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if header("authorization").as_deref() != Some(self.authorization.as_str()) {
            self.state().refused_auth += 1;
            return es_error(
                401,
                "security_exception",
                "unable to authenticate with provided credentials",
            );
        }
        {
            let st = self.state();
            if let Some(status) = st.down {
                let mut t = es_error(status, "unavailable", "cluster unavailable");
                if let Some(after) = &st.retry_after {
                    t = t.insert_header("retry-after", after.as_str());
                }
                return t;
            }
        }
        if !header("content-type").is_some_and(|c| c.starts_with("application/x-ndjson")) {
            return self.violation(format!(
                "content-type must be application/x-ndjson, got {:?}",
                header("content-type")
            ));
        }
        let body = match header("content-encoding").as_deref() {
            Some("gzip") => {
                let mut out = Vec::new();
                if flate2::read::GzDecoder::new(&req.body[..])
                    .read_to_end(&mut out)
                    .is_err()
                {
                    return self.violation("content-encoding gzip but body is not gzip".into());
                }
                out
            }
            None => req.body.clone(),
            Some(other) => return self.violation(format!("unexpected content-encoding {other}")),
        };
        let Ok(text) = String::from_utf8(body) else {
            return self.violation("body is not UTF-8".into());
        };
        if !text.ends_with('\n') {
            return self.violation("the bulk body must end with a newline".into());
        }
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        let index = self
            .state()
            .index
            .clone()
            .unwrap_or_else(|| INDEX.to_string());
        if !lines.len().is_multiple_of(2) {
            return self.violation("bulk body lines must come in action/document pairs".into());
        }
        let mut pairs = Vec::new();
        for pair in lines.chunks(2) {
            let Ok(action) = serde_json::from_str::<Value>(pair[0]) else {
                return self.violation(format!("action line is not JSON: {}", pair[0]));
            };
            let Some(create) = action.get("create").and_then(Value::as_object) else {
                return self.violation(format!("action must be create: {}", pair[0]));
            };
            if create.get("_index").and_then(Value::as_str) != Some(index.as_str()) {
                return self.violation(format!("wrong or missing _index: {}", pair[0]));
            }
            let Some(id) = create.get("_id").and_then(Value::as_str) else {
                return self.violation(format!("missing _id: {}", pair[0]));
            };
            pairs.push((id.to_string(), pair[1]));
        }
        let mut st = self.state();
        st.requests += 1;
        st.body_sizes.push(text.len());
        let mut items = Vec::new();
        let mut errors = false;
        for (id, doc) in pairs {
            st.received.push(id.clone());
            let item = |status: u16, error: Option<(&str, &str)>| {
                let mut body = json!({"_index": index, "_id": id, "status": status});
                if let Some((ty, reason)) = error {
                    body["error"] = json!({"type": ty, "reason": reason});
                }
                json!({ "create": body })
            };
            let parsed: Option<Value> = serde_json::from_str(doc).ok();
            let has_timestamp = parsed
                .as_ref()
                .and_then(|d| d.get("@timestamp"))
                .and_then(Value::as_str)
                .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok());
            if let Some(n) = st.busy_ids.get_mut(&id).filter(|n| **n > 0) {
                *n -= 1;
                errors = true;
                items.push(item(
                    429,
                    Some(("es_rejected_execution_exception", "rejected execution")),
                ));
            } else if st.reject_ids.contains(&id) {
                errors = true;
                items.push(item(
                    400,
                    Some((
                        "mapper_parsing_exception",
                        "failed to parse field [time] of type [date]",
                    )),
                ));
            } else if !has_timestamp {
                errors = true;
                st.violations
                    .push(format!("document without @timestamp: {doc}"));
                items.push(item(
                    400,
                    Some(("document_parsing_exception", "missing @timestamp")),
                ));
            } else if st.ids.contains(&id) {
                errors = true;
                st.conflicts += 1;
                items.push(item(
                    409,
                    Some((
                        "version_conflict_engine_exception",
                        "document already exists",
                    )),
                ));
            } else {
                st.ids.insert(id.clone());
                st.docs.push((id.clone(), parsed.unwrap()));
                items.push(item(201, None));
            }
        }
        ResponseTemplate::new(200)
            .set_body_json(json!({"took": 3, "errors": errors, "items": items}))
    }
}

/// Starts an emulator requiring `authorization` (the exact header value).
pub async fn start(authorization: &str) -> (MockServer, Es) {
    let server = MockServer::start().await;
    let es = Es {
        state: Arc::default(),
        authorization: authorization.to_string(),
    };
    Mock::given(method("POST"))
        .and(path("/_bulk"))
        .respond_with(es.clone())
        .mount(&server)
        .await;
    let auth = authorization.to_string();
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(move |req: &Request| {
            let ok = req
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                == Some(auth.as_str());
            if ok {
                ResponseTemplate::new(200).set_body_json(json!({
                    "name": "node-1", "cluster_name": "audit",
                    "version": {"number": "8.15.0", "build_flavor": "default"},
                    "tagline": "You Know, for Search"
                }))
            } else {
                es_error(
                    401,
                    "security_exception",
                    "missing authentication credentials",
                )
            }
        })
        .mount(&server)
        .await;
    (server, es)
}

/// A journal record with a small OCSF payload.
pub fn journal_record(n: usize) -> JournalRecord {
    let id = format!("activity_{n:05}");
    JournalRecord {
        activity_id: id.clone(),
        created_at_ms: 1_778_400_000_000 + n as i64 * 1000,
        activity_type: "claude_chat_created".into(),
        raw: format!(r#"{{"id":"{id}","type":"claude_chat_created"}}"#),
        context: None,
        ocsf: Some(format!(
            r#"{{"class_uid":6001,"metadata":{{"uid":"{id}"}},"time":{}}}"#,
            1_778_400_000_000 + n as i64 * 1000
        )),
    }
}
