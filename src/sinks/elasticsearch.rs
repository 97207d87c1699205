//! Elasticsearch / OpenSearch `_bulk` sink (`spec/sinks.md` section 5).
//!
//! Every event is sent as a `create` action with `_id` = the activity id, so
//! re-delivery is idempotent: a document that is already there answers 409
//! (`version_conflict_engine_exception`), which counts as delivered. That
//! makes every retry safe, including one after an answer that never came.
//!
//! Each document gets an `@timestamp` (the activity's `created_at`, RFC 3339
//! in UTC with milliseconds) as its first field; data streams require it.
//! The rest of the event is left exactly as journaled, in both formats: an
//! OCSF event keeps its OCSF fields, a raw activity keeps the fields the API
//! sent, at the top level (no wrapping), so searches work on the same names
//! as in the API documentation.
//!
//! A `_bulk` answer is judged per item: 2xx and 409 are delivered; 429 and
//! 5xx items are re-sent alone on the next attempt (the sink remembers which
//! items of the batch are done); other 4xx items (mapping errors) are dead-
//! lettered with the item's error. An item refused for credentials or a
//! missing index stops the sink (`Fatal`): dead-lettering every event for a
//! configuration problem would only move the backlog elsewhere.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::contract::{BatchProgress, BoxFuture, Destination, Outcome, Rejected};
use super::http;
use super::layout::{Layout, elastic_integration};
use super::registry::{OpenContext, SinkSettings, SinkType, opened};
use crate::model::BatchRecord;
use crate::redact::Redactor;
use crate::sinks::settings::HttpSinkConfig;

/// Elasticsearch refuses longer `_id`s.
pub const MAX_ID_BYTES: usize = 512;

/// Turns records into `_bulk` request bodies of at most `max_request_bytes`
/// (uncompressed).
#[derive(Debug, Clone)]
pub struct BulkEncoder {
    /// `{"create":{"_index":"<index>","_id":` — everything before the id.
    action_prefix: Vec<u8>,
    max_request_bytes: usize,
    /// `layout = "elastic_integration"`: the data stream's namespace; each
    /// document is the integration's (`sinks::layout::elastic_integration`).
    integration_namespace: Option<String>,
}

/// One `_bulk` request body and the records it carries, in order.
#[derive(Debug)]
pub struct BulkRequest {
    /// NDJSON: action line, document line, each ending in `\n`.
    pub body: Vec<u8>,
    /// Indices into the records given to [`BulkEncoder::encode`].
    pub items: Vec<usize>,
}

/// A batch as requests, plus the records that cannot be sent at all.
#[derive(Debug, Default)]
pub struct Encoded {
    pub requests: Vec<BulkRequest>,
    pub rejected: Vec<Rejected>,
}

impl BulkEncoder {
    pub fn new(index: &str, max_request_bytes: usize) -> BulkEncoder {
        let mut action_prefix = b"{\"create\":{\"_index\":".to_vec();
        serde_json::to_writer(&mut action_prefix, index).expect("writing to a Vec cannot fail");
        action_prefix.extend_from_slice(b",\"_id\":");
        BulkEncoder {
            action_prefix,
            max_request_bytes,
            integration_namespace: None,
        }
    }

    /// An encoder of documents for Elastic's `anthropic` integration in
    /// `index` (`logs-anthropic.audit-<namespace>`).
    pub fn for_integration(index: &str, max_request_bytes: usize) -> Result<BulkEncoder, String> {
        let namespace = elastic_integration::namespace_of(index)?.to_string();
        Ok(BulkEncoder {
            integration_namespace: Some(namespace),
            ..BulkEncoder::new(index, max_request_bytes)
        })
    }

    /// Splits `records` into requests within the size limit, in order. A
    /// record that alone exceeds the limit, has an over-long id, or whose
    /// payload is not a JSON object is rejected (dead-lettered), never
    /// truncated.
    pub fn encode(&self, records: &[&BatchRecord]) -> Encoded {
        let mut out = Encoded::default();
        let mut current = BulkRequest {
            body: Vec::new(),
            items: Vec::new(),
        };
        let mut item = Vec::new();
        for (i, record) in records.iter().enumerate() {
            item.clear();
            if let Err(reason) = self.encode_item(record, &mut item) {
                out.rejected.push(reject(record, reason));
                continue;
            }
            if item.len() > self.max_request_bytes {
                let reason = format!(
                    "event of {} bytes (with its bulk action line) exceeds max_request_bytes = {}; \
                     raise max_request_bytes (below the cluster's http.max_content_length) and \
                     replay it with claudit dlq replay",
                    item.len(),
                    self.max_request_bytes
                );
                out.rejected.push(reject(record, reason));
                continue;
            }
            if current.body.len() + item.len() > self.max_request_bytes {
                let full = std::mem::replace(
                    &mut current,
                    BulkRequest {
                        body: Vec::new(),
                        items: Vec::new(),
                    },
                );
                out.requests.push(full);
            }
            current.body.extend_from_slice(&item);
            current.items.push(i);
        }
        if !current.items.is_empty() {
            out.requests.push(current);
        }
        out
    }

    /// The action line and the document line of one record.
    fn encode_item(&self, record: &BatchRecord, out: &mut Vec<u8>) -> Result<(), String> {
        if record.activity_id.len() > MAX_ID_BYTES {
            return Err(format!(
                "activity id of {} bytes exceeds Elasticsearch's {MAX_ID_BYTES}-byte _id limit",
                record.activity_id.len()
            ));
        }
        let doc = record.payload.trim();
        if !(doc.starts_with('{') && doc.ends_with('}')) {
            return Err("the journaled event is not a JSON object".to_string());
        }
        out.extend_from_slice(&self.action_prefix);
        serde_json::to_writer(&mut *out, &record.activity_id)
            .expect("writing to a Vec cannot fail");
        out.extend_from_slice(b"}}\n");
        let start = out.len();
        if let Some(namespace) = &self.integration_namespace {
            let mut timestamp = Vec::with_capacity(24);
            write_timestamp(record.created_at_ms, &mut timestamp);
            let timestamp = String::from_utf8(timestamp).expect("an RFC 3339 time is ASCII");
            // The activity exactly as journaled, as the integration's input sends it.
            elastic_integration::document(&record.payload, &timestamp, namespace, out);
        } else if has_top_level_timestamp(doc) {
            out.extend_from_slice(doc.as_bytes());
        } else {
            out.extend_from_slice(b"{\"@timestamp\":\"");
            write_timestamp(record.created_at_ms, out);
            out.push(b'"');
            let rest = doc[1..].trim_start();
            if rest != "}" {
                out.push(b',');
            }
            out.extend_from_slice(rest.as_bytes());
        }
        // NDJSON: a line break can only be whitespace between JSON tokens
        // (inside strings it is escaped), so a space keeps the meaning.
        for b in &mut out[start..] {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
        out.push(b'\n');
        Ok(())
    }
}

fn reject(record: &BatchRecord, reason: String) -> Rejected {
    Rejected::of(record, reason, "")
}

/// The event already has its own top-level `@timestamp` (a second one would
/// make Elasticsearch reject the document as a duplicate field).
fn has_top_level_timestamp(doc: &str) -> bool {
    doc.contains("\"@timestamp\"")
        && serde_json::from_str::<HashMap<String, serde::de::IgnoredAny>>(doc)
            .is_ok_and(|m| m.contains_key("@timestamp"))
}

/// `2026-05-10T08:00:00.123Z`.
fn write_timestamp(ms: i64, out: &mut Vec<u8>) {
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    write!(out, "{}", t.format("%Y-%m-%dT%H:%M:%S%.3fZ")).expect("writing to a Vec cannot fail");
}

/// What one item of a `_bulk` answer means for its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemResult {
    /// Created, or already there (409 on `create`).
    Done,
    /// 429 or 5xx: send this record again.
    Retry(String),
    /// A deterministic refusal of this document: dead-letter it.
    Rejected { reason: String, response: String },
    /// Credentials or a missing index: stop the sink.
    Fatal(String),
}

/// Classifies one item of a `_bulk` response (`{"create":{"status":..}}`).
pub fn classify_item(item: &Value) -> ItemResult {
    let Some(body) = item.as_object().and_then(|o| o.values().next()) else {
        return ItemResult::Retry(format!(
            "unreadable bulk item {}",
            http::truncate(&item.to_string(), 256)
        ));
    };
    let status = body.get("status").and_then(Value::as_u64).unwrap_or(0);
    let error_type = body
        .pointer("/error/type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let error_reason = body
        .pointer("/error/reason")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let detail = format!("item status {status}: {error_type}: {error_reason}");
    match status {
        200..=299 | 409 => ItemResult::Done,
        401 | 403 => ItemResult::Fatal(format!(
            "{detail} (the credentials may not write to this index: give the API key or user \
             the create_doc privilege on it)"
        )),
        404 if error_type == "index_not_found_exception" => ItemResult::Fatal(format!(
            "{detail} (create the index or data stream, or install the index template from \
             deploy/elasticsearch/ so it is created automatically)"
        )),
        429 | 500..=599 => ItemResult::Retry(detail),
        400..=499 => ItemResult::Rejected {
            reason: format!("Elasticsearch refused the document: {error_type}: {error_reason}"),
            response: http::truncate(&item.to_string(), 4096),
        },
        _ => ItemResult::Retry(detail),
    }
}

pub struct ElasticsearchSink {
    client: reqwest::Client,
    url: String,
    bulk_url: String,
    /// Marked sensitive: never printed by `Debug`.
    authorization: HeaderValue,
    compression: bool,
    encoder: BulkEncoder,
    /// The largest `_bulk` answer read (see [`answer_limit`]).
    answer_limit: usize,
    /// Which records of the batch in flight are settled, so a retry of the
    /// same batch re-sends only the others.
    progress: BatchProgress,
}

impl ElasticsearchSink {
    pub fn new(config: &ElasticsearchSinkConfig) -> anyhow::Result<ElasticsearchSink> {
        let credentials = match &config.auth {
            ElasticsearchAuth::ApiKey(key) => format!("ApiKey {}", key.expose_secret().trim()),
            ElasticsearchAuth::Basic { username, password } => {
                let pair = format!("{username}:{}", password.expose_secret());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
        };
        let mut authorization = HeaderValue::from_str(&credentials).map_err(|_| {
            anyhow::anyhow!(
                "the Elasticsearch credentials contain characters that cannot go in an HTTP header; \
                 check api_key (the base64 `encoded` value) or username/password"
            )
        })?;
        authorization.set_sensitive(true);
        Ok(ElasticsearchSink {
            client: http::client(&config.http)?,
            url: config.url.clone(),
            bulk_url: format!("{}/_bulk", config.url),
            authorization,
            compression: config.http.compression,
            encoder: match config.layout {
                Some(Layout::ElasticIntegration) => {
                    BulkEncoder::for_integration(&config.index, config.max_request_bytes)
                        .map_err(|e| anyhow::anyhow!(e))?
                }
                _ => BulkEncoder::new(&config.index, config.max_request_bytes),
            },
            answer_limit: answer_limit(config.max_request_bytes),
            progress: BatchProgress::default(),
        })
    }

    /// Sends one batch. Records already settled by an earlier attempt at the
    /// same batch are not sent again.
    pub async fn send(&mut self, records: &[BatchRecord]) -> Outcome {
        if records.is_empty() {
            return Outcome::delivered();
        }
        self.progress.begin(records);
        let pending = self.progress.pending(records);
        let encoded = self.encoder.encode(&pending);
        for rejected in encoded.rejected {
            self.progress.rejected(rejected);
        }
        let mut to_retry = 0usize;
        let mut first_retry_reason = String::new();
        for request in &encoded.requests {
            let items = match self.post_bulk(&request.body).await {
                Ok(items) => items,
                Err(outcome) => return outcome,
            };
            if items.len() != request.items.len() {
                return Outcome::Retry {
                    after: None,
                    reason: format!(
                        "the bulk answer lists {} items for {} sent; sending again (create with _id \
                         makes that safe)",
                        items.len(),
                        request.items.len()
                    ),
                };
            }
            for (&i, item) in request.items.iter().zip(&items) {
                let record = pending[i];
                match classify_item(item) {
                    ItemResult::Done => self.progress.acknowledged(record.seq),
                    ItemResult::Retry(reason) => {
                        if to_retry == 0 {
                            first_retry_reason = reason;
                        }
                        to_retry += 1;
                    }
                    ItemResult::Rejected { reason, response } => {
                        self.progress
                            .rejected(Rejected::of(record, reason, response));
                    }
                    ItemResult::Fatal(reason) => return Outcome::Fatal { reason },
                }
            }
        }
        if to_retry > 0 {
            return Outcome::Retry {
                after: None,
                reason: format!(
                    "{to_retry} of {} events were not accepted yet ({first_retry_reason}); only those \
                     are sent again",
                    records.len()
                ),
            };
        }
        self.progress.finish()
    }

    /// POSTs one `_bulk` body; the per-item results on a 2xx answer, the
    /// outcome of the whole batch otherwise.
    async fn post_bulk(&self, body: &[u8]) -> Result<Vec<Value>, Outcome> {
        let mut request = self
            .client
            .post(&self.bulk_url)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, "application/x-ndjson");
        request = if self.compression {
            request
                .header(CONTENT_ENCODING, "gzip")
                .body(http::gzip(body))
        } else {
            request.body(body.to_vec())
        };
        let response = request.send().await.map_err(|e| Outcome::Retry {
            after: None,
            reason: format!("POST {}: {}", self.bulk_url, http::describe(e)),
        })?;
        let http::Answer {
            status,
            headers,
            text,
        } = http::read_answer(response, self.answer_limit, "POST /_bulk")
            .await
            .map_err(|reason| Outcome::Retry {
                after: None,
                reason: format!("{reason}; the batch is sent again"),
            })?;
        if !status.is_success() {
            return Err(classify_request(status, &headers, &text, body.len()));
        }
        let answer: Value = serde_json::from_str(&text).map_err(|e| Outcome::Retry {
            after: None,
            reason: format!(
                "the bulk answer (HTTP {status}) is not JSON ({e}): {}; sending again",
                http::truncate(&text, 256)
            ),
        })?;
        match answer.get("items").and_then(Value::as_array) {
            Some(items) => Ok(items.clone()),
            None => Err(Outcome::Retry {
                after: None,
                reason: format!(
                    "the bulk answer (HTTP {status}) has no items: {}; sending again",
                    http::truncate(&text, 256)
                ),
            }),
        }
    }

    /// `GET /`: the cluster answers with its name and version when it is
    /// reachable and accepts the credentials.
    pub async fn healthcheck(&self) -> Result<String, String> {
        let url = format!("{}/", self.url);
        let response = self
            .client
            .get(&url)
            .header(AUTHORIZATION, self.authorization.clone())
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", http::describe(e)))?;
        let http::Answer { status, text, .. } =
            http::read_answer(response, http::MAX_ANSWER_BYTES, "GET /").await?;
        match status.as_u16() {
            200..=299 => {
                let info: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let product = match info
                    .pointer("/version/distribution")
                    .and_then(Value::as_str)
                {
                    Some("opensearch") => "OpenSearch",
                    _ => "Elasticsearch",
                };
                let version = info
                    .pointer("/version/number")
                    .and_then(Value::as_str)
                    .unwrap_or("(version unknown)");
                let cluster = info
                    .get("cluster_name")
                    .and_then(Value::as_str)
                    .unwrap_or("(unnamed)");
                Ok(format!(
                    "{product} {version}, cluster {cluster}, at {} accepted the credentials",
                    self.url
                ))
            }
            401 => Err(format!(
                "{url} refused the credentials (HTTP 401); check api_key (the base64 `encoded` value \
                 of POST /_security/api_key) or username/password"
            )),
            403 => Err(format!(
                "{url} accepted the credentials but refused GET / (HTTP 403); give the API key or \
                 role the `monitor` cluster privilege so the health check can run"
            )),
            code => Err(format!(
                "GET {url} answered HTTP {code}: {}",
                http::truncate(&text, 256)
            )),
        }
    }
}

/// The largest `_bulk` answer read: [`http::MAX_ANSWER_BYTES`], or three
/// times the largest request when that is more. An answer has one result
/// per document sent, at most about 700 bytes (an error with its reason),
/// and the smallest document line with its action line is about 250 bytes.
fn answer_limit(max_request_bytes: usize) -> usize {
    http::MAX_ANSWER_BYTES.max(max_request_bytes.saturating_mul(3))
}

/// A whole `_bulk` request that was not answered with 2xx.
fn classify_request(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
    sent_bytes: usize,
) -> Outcome {
    match status.as_u16() {
        401 | 403 => Outcome::Fatal {
            reason: format!(
                "HTTP {}: {} (check api_key or username/password, and that they may write to \
                 the index)",
                status.as_u16(),
                http::truncate(body, 512)
            ),
        },
        413 => Outcome::Fatal {
            reason: format!(
                "the cluster refused a {sent_bytes}-byte bulk request as too large (HTTP 413); \
                 lower max_request_bytes below its http.max_content_length"
            ),
        },
        _ => http::classify(status, headers, body),
    }
}

impl Destination for ElasticsearchSink {
    fn deliver<'a>(&'a mut self, records: &'a [BatchRecord]) -> BoxFuture<'a, Outcome> {
        Box::pin(self.send(records))
    }

    fn healthcheck(&mut self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(ElasticsearchSink::healthcheck(self))
    }
}

// ---- settings (type = "elasticsearch") ----

/// `type = "elasticsearch"`: Elasticsearch or OpenSearch `_bulk`.
#[derive(Debug, Clone)]
pub struct ElasticsearchSinkConfig {
    /// The cluster's base URL (`https://es.example.com:9200`), no trailing
    /// slash; `_bulk` and the health check are requests below it.
    pub url: String,
    /// Index, alias or data stream every event is created in.
    pub index: String,
    pub auth: ElasticsearchAuth,
    /// Uncompressed bytes per `_bulk` request; a batch above it is split.
    pub max_request_bytes: usize,
    /// `layout = "elastic_integration"`: documents for Elastic's `anthropic`
    /// integration (`sinks::layout`); `None` = the event as it is.
    pub layout: Option<Layout>,
    pub http: HttpSinkConfig,
}

/// How an Elasticsearch sink authenticates. `Debug` never shows a secret.
#[derive(Debug, Clone)]
pub enum ElasticsearchAuth {
    /// `Authorization: ApiKey <encoded>`, the `encoded` value that
    /// `POST /_security/api_key` returns (base64 of `id:api_key`).
    ApiKey(SecretString),
    /// HTTP basic authentication.
    Basic {
        username: String,
        password: SecretString,
    },
}

/// `type = "elasticsearch"` in the registry (`sinks::registry`).
pub const TYPE: SinkType = SinkType {
    name: "elasticsearch",
    batch: (1000, 5_000_000, Duration::from_secs(1)),
    raw_only: false,
    read: keys::read_elasticsearch_sink,
};

impl SinkSettings for ElasticsearchSinkConfig {
    fn add_secrets(&self, redactor: &mut Redactor) {
        match &self.auth {
            ElasticsearchAuth::ApiKey(key) => redactor.add_base64_credential(key.expose_secret()),
            ElasticsearchAuth::Basic { username, password } => {
                redactor.add_basic_auth(username, password.expose_secret())
            }
        }
        if let Some(password) = reqwest::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.password().map(str::to_string))
        {
            redactor.add(&password);
        }
    }

    fn open<'a>(
        &'a self,
        cx: OpenContext<'a>,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn Destination>>> {
        opened(
            ElasticsearchSink::new(self)
                .map_err(|e| anyhow::anyhow!("sink {}: {e:#}", cx.sink.name)),
        )
    }

    fn layout(&self) -> Option<Layout> {
        self.layout
    }
}

/// The keys of `type = "elasticsearch"`: every problem is reported, with its line
/// and the fix.
mod keys {
    use super::*;
    use crate::sinks::settings::SinkKind;
    use crate::sinks::settings::*;
    use crate::toml_reader::keys::*;
    use crate::toml_reader::{self as reader, Ctx, Got, Table};

    /// The keys of `type = "elasticsearch"`.
    pub(super) fn read_elasticsearch_sink(cx: &mut Ctx, t: &mut Table) -> Option<SinkKind> {
        const URL_EXAMPLE: &str = "\"https://es.example.com:9200\"";
        let url = t.required_text(cx, "url", URL_EXAMPLE).and_then(|text| {
            check_sink_url(&text, "url", URL_EXAMPLE)
                .map_err(|msg| text_error(cx, t, "url", &text, msg))
                .ok()
        });
        let layout = read_layout(cx, t, "elasticsearch");
        // The integration's data stream is logs-anthropic.audit-<namespace>.
        let index = match layout {
            Some(Some(_)) => match t.text(cx, "index") {
                Got::Absent => Some(elastic_integration::DEFAULT_INDEX.to_string()),
                Got::Invalid => None,
                Got::Value(text) => match elastic_integration::namespace_of(&text.value) {
                    Ok(_) => Some(text.value),
                    Err(msg) => {
                        text_error(cx, t, "index", &text, msg);
                        None
                    }
                },
            },
            _ => t
                .required_text(cx, "index", "\"logs-claudit.ocsf-default\"")
                .and_then(|text| match check_index_name(&text.value) {
                    None => Some(text.value),
                    Some(msg) => {
                        text_error(cx, t, "index", &text, msg);
                        None
                    }
                }),
        };
        // Basic auth when a username is given, an API key otherwise; never both.
        let auth = match t.text(cx, "username") {
            Got::Invalid => None,
            Got::Value(user) if user.value.is_empty() => {
                let msg = "is empty; write the user name, or remove it and use api_key".to_string();
                text_error(cx, t, "username", &user, msg);
                None
            }
            Got::Value(user) => {
                let key_set = !matches!(t.text(cx, "api_key"), Got::Absent)
                    || !matches!(t.text(cx, "api_key_file"), Got::Absent);
                if key_set {
                    let line = t.line_of_key(cx, "api_key");
                    let msg = "both api_key and username are set; keep api_key (recommended) \
                               or username with password, not both"
                        .to_string();
                    t_error(cx, t, "api_key", line, msg);
                }
                let password = t.secret(
                    cx,
                    "password",
                    "ELASTICSEARCH_PASSWORD",
                    "/etc/claudit/elasticsearch.password",
                );
                match (key_set, password) {
                    (false, Some(password)) => Some(ElasticsearchAuth::Basic {
                        username: user.value,
                        password,
                    }),
                    _ => None,
                }
            }
            Got::Absent => t
                .header_secret(
                    cx,
                    "api_key",
                    "ELASTICSEARCH_API_KEY",
                    "/etc/claudit/elasticsearch.api_key",
                )
                .map(ElasticsearchAuth::ApiKey),
        };
        let max_request_bytes = t.size(cx, "max_request_bytes", 5_000_000);
        let max_request_bytes = match max_request_bytes {
            Some(n) if !(10_000..=1 << 30).contains(&n) => {
                let line = t.line_of_key(cx, "max_request_bytes");
                let msg = format!(
                    "{} is out of range; write a size from 10KB to 1GiB, below the cluster's \
                     http.max_content_length (default 100MB), e.g. max_request_bytes = \"5MB\"",
                    reader::format_size(n)
                );
                t_error(cx, t, "max_request_bytes", line, msg);
                None
            }
            other => other,
        };
        let http = read_http(cx, t);
        Some(SinkKind::new(ElasticsearchSinkConfig {
            url: url?,
            index: index?,
            auth: auth?,
            max_request_bytes: max_request_bytes? as usize,
            layout: layout?,
            http: http?,
        }))
    }

    /// Elasticsearch's index name rules: lowercase, at most 255 bytes, none of
    /// `\ / * ? " < > | , #`, space or `:`, not starting with `-`, `_` or
    /// `+`, not `.` or `..`.
    fn check_index_name(name: &str) -> Option<String> {
        let fix =
            "write e.g. index = \"logs-claudit.ocsf-default\" (a data stream) or \"claudit-ocsf\"";
        let bad_char = name
            .chars()
            .find(|c| c.is_uppercase() || "\\/*?\"<>|,# :".contains(*c));
        let problem = if name.is_empty() {
            Some("is empty".to_string())
        } else if name.len() > 255 {
            Some("is longer than 255 bytes".to_string())
        } else if name == "." || name == ".." {
            Some("cannot be . or ..".to_string())
        } else if name.starts_with(['-', '_', '+']) {
            Some("cannot start with -, _ or +".to_string())
        } else {
            bad_char.map(|c| {
                format!(
                    "contains {c:?} (index names are lowercase, without \\ / * ? \" < > | , # : or spaces)"
                )
            })
        };
        problem.map(|p| format!("index name {name:?} {p}; {fix}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(seq: i64, id: &str, payload: &str) -> BatchRecord {
        BatchRecord {
            seq,
            activity_id: id.to_string(),
            created_at_ms: 1_778_400_000_123,
            payload: payload.to_string(),
        }
    }

    fn lines(body: &[u8]) -> Vec<Value> {
        std::str::from_utf8(body)
            .unwrap()
            .split_terminator('\n')
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// `layout = "elastic_integration"` on the published sample
    /// activities: each pair is a `create` in the integration's data stream
    /// with the activity id, and a document carrying the activity, byte for
    /// byte, as a string in `message`.
    #[test]
    fn integration_documents_carry_each_sample_activity_in_message() {
        let samples = include_str!("../../fixtures/samples/activities.ndjson");
        let records: Vec<BatchRecord> = samples
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| record(i as i64 + 1, &format!("activity_{i}"), l))
            .collect();
        let refs: Vec<&BatchRecord> = records.iter().collect();
        let enc = BulkEncoder::for_integration("logs-anthropic.audit-prod", 100_000_000).unwrap();
        let out = enc.encode(&refs);
        assert!(out.rejected.is_empty());
        let lines = lines(&out.requests[0].body);
        assert_eq!(lines.len(), 2 * records.len());
        for (pair, r) in lines.chunks(2).zip(&records) {
            assert_eq!(
                pair[0],
                json!({"create":{"_index":"logs-anthropic.audit-prod","_id":r.activity_id}})
            );
            let doc = &pair[1];
            assert_eq!(doc["message"], r.payload.as_str());
            assert_eq!(doc["@timestamp"], "2026-05-10T08:00:00.123Z");
            assert_eq!(doc["data_stream"]["namespace"], "prod");
            assert_eq!(doc["data_stream"]["dataset"], "anthropic.audit");
            assert_eq!(doc["event"]["dataset"], "anthropic.audit");
            assert!(doc.get("id").is_none(), "nothing pre-parsed");
        }
        assert!(BulkEncoder::for_integration("logs-claudit.ocsf-default", 10_000).is_err());
    }

    #[test]
    fn encodes_create_actions_with_id_and_timestamp() {
        let enc = BulkEncoder::new("logs-claudit.ocsf-default", 1_000_000);
        let a = record(1, "activity_a", r#"{"metadata":{"uid":"activity_a"}}"#);
        let b = record(2, "activity_\"b", "{}");
        let out = enc.encode(&[&a, &b]);
        assert!(out.rejected.is_empty());
        assert_eq!(out.requests.len(), 1);
        let body = &out.requests[0].body;
        assert!(body.ends_with(b"\n"));
        let l = lines(body);
        assert_eq!(
            l[0],
            json!({"create":{"_index":"logs-claudit.ocsf-default","_id":"activity_a"}})
        );
        assert_eq!(
            l[1],
            json!({"@timestamp":"2026-05-10T08:00:00.123Z","metadata":{"uid":"activity_a"}})
        );
        assert_eq!(l[2]["create"]["_id"], "activity_\"b");
        assert_eq!(l[3], json!({"@timestamp":"2026-05-10T08:00:00.123Z"}));
        assert_eq!(out.requests[0].items, vec![0, 1]);
    }

    #[test]
    fn keeps_an_existing_timestamp_and_flattens_line_breaks() {
        let enc = BulkEncoder::new("i", 1_000_000);
        let a = record(
            1,
            "a",
            "{\"@timestamp\":\"2020-01-01T00:00:00Z\",\n\"x\":1}",
        );
        let out = enc.encode(&[&a]);
        let l = lines(&out.requests[0].body);
        assert_eq!(l.len(), 2);
        assert_eq!(l[1], json!({"@timestamp":"2020-01-01T00:00:00Z","x":1}));
    }

    #[test]
    fn splits_by_request_size_and_rejects_what_cannot_fit() {
        let payload = format!(r#"{{"pad":"{}"}}"#, "x".repeat(300));
        let records: Vec<BatchRecord> = (0..10)
            .map(|i| record(i, &format!("id{i}"), &payload))
            .collect();
        let huge = record(10, "huge", &format!(r#"{{"pad":"{}"}}"#, "x".repeat(5000)));
        let long_id = record(11, &"i".repeat(513), "{}");
        let not_object = record(12, "arr", "[1]");
        let mut refs: Vec<&BatchRecord> = records.iter().collect();
        refs.extend([&huge, &long_id, &not_object]);
        let enc = BulkEncoder::new("i", 1200);
        let out = enc.encode(&refs);
        let rejected: Vec<i64> = out.rejected.iter().map(|r| r.seq).collect();
        assert_eq!(rejected, vec![10, 11, 12]);
        assert!(out.rejected[0].reason.contains("max_request_bytes"));
        let mut all: Vec<usize> = Vec::new();
        for r in &out.requests {
            assert!(r.body.len() <= 1200, "{}", r.body.len());
            assert_eq!(lines(&r.body).len(), 2 * r.items.len());
            all.extend(&r.items);
        }
        assert!(out.requests.len() >= 3);
        assert_eq!(all, (0..10).collect::<Vec<usize>>());
    }

    #[test]
    fn items_are_classified_per_the_bulk_rules() {
        let item = |status: u64, ty: &str| json!({"create":{"_id":"x","status":status,"error":{"type":ty,"reason":"why"}}});
        assert_eq!(
            classify_item(&json!({"create":{"status":201}})),
            ItemResult::Done
        );
        assert_eq!(
            classify_item(&item(409, "version_conflict_engine_exception")),
            ItemResult::Done
        );
        for status in [429, 500, 503] {
            assert!(matches!(
                classify_item(&item(status, "e")),
                ItemResult::Retry(_)
            ));
        }
        match classify_item(&item(400, "mapper_parsing_exception")) {
            ItemResult::Rejected { reason, response } => {
                assert!(reason.contains("mapper_parsing_exception: why"));
                assert!(response.contains("\"status\":400"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify_item(&item(404, "index_not_found_exception")),
            ItemResult::Fatal(_)
        ));
        assert!(matches!(
            classify_item(&item(403, "security_exception")),
            ItemResult::Fatal(_)
        ));
        assert!(matches!(
            classify_item(&json!("junk")),
            ItemResult::Retry(_)
        ));
    }

    #[test]
    fn whole_request_statuses() {
        let h = reqwest::header::HeaderMap::new();
        let c = |code: u16| classify_request(StatusCode::from_u16(code).unwrap(), &h, "", 10);
        for code in [401, 403, 413, 400, 404, 501] {
            assert!(matches!(c(code), Outcome::Fatal { .. }), "{code}");
        }
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(matches!(c(code), Outcome::Retry { .. }), "{code}");
        }
    }
}
