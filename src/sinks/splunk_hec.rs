//! Splunk HTTP Event Collector (`spec/sinks.md` section 1): JSON envelopes
//! concatenated into `POST /services/collector/event` requests of at most
//! 1 MB uncompressed, `Authorization: Splunk <token>`, a channel GUID on
//! every request, optional indexer acknowledgement, and the HEC reply codes
//! classified before the generic HTTP rules.
//!
//! One batch may need several requests. The records HEC accepted (and, with
//! `ack = true`, indexed) are remembered until the batch is delivered, so a
//! retry of the same batch re-sends only what was not acknowledged.

use std::collections::VecDeque;
use std::io::Write;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tracing::warn;

use super::contract::{BatchProgress, BoxFuture, Destination, Outcome, Rejected};
use super::http;
use super::layout::{FieldReport, Layout, splunk_app};
use super::registry::{OpenContext, SinkSettings, SinkType, opened};
use crate::model::BatchRecord;
use crate::redact::Redactor;
use crate::sinks::settings::HttpSinkConfig;

/// At most this many uncompressed bytes per request: Splunk's old
/// `max_content_length` default and what Vector batches to. Servers accept
/// more by default (800 MB) but operators lower it; a 413 splits further.
pub const MAX_REQUEST_BYTES: usize = 1_000_000;

pub const EVENT_PATH: &str = "/services/collector/event";
pub const ACK_PATH: &str = "/services/collector/ack";
pub const HEALTH_PATH: &str = "/services/collector/health/1.0";
pub const CHANNEL_HEADER: &str = "X-Splunk-Request-Channel";

pub struct SplunkHecSink {
    client: reqwest::Client,
    base_url: String,
    /// `Splunk <token>`, marked sensitive so it never shows in `Debug`.
    authorization: HeaderValue,
    channel: HeaderValue,
    compression: bool,
    ack: Option<AckSettings>,
    encoder: Encoder,
    /// What the layout did with the fields its object has no key for.
    field_report: FieldReport,
    /// Records of the batch in progress that HEC acknowledged or that HEC
    /// (or the size limit) rejected.
    progress: BatchProgress,
    /// The token turned out to have acknowledgement off (warned once).
    ack_unavailable: bool,
}

/// Makes the HEC envelopes of records.
struct Encoder {
    /// Everything of an envelope after `"time":<t>` up to the event:
    /// `,"host":..,"source":..,"sourcetype":..[,"index":..][,"fields":{..}],"event":`.
    envelope: Vec<u8>,
    /// `layout = "splunk_app"`: the event is the add-on's flattened object.
    layout: Option<Layout>,
}

#[derive(Debug, Clone, Copy)]
struct AckSettings {
    poll_interval: Duration,
    timeout: Duration,
}

/// One `/services/collector/event` request: its records and uncompressed body.
#[derive(Debug)]
pub struct Request<'a> {
    pub records: Vec<&'a BatchRecord>,
    pub body: Vec<u8>,
}

/// A batch as HEC requests, and the records too large to send at all.
#[derive(Debug)]
pub struct Encoded<'a> {
    pub requests: Vec<Request<'a>>,
    pub rejected: Vec<Rejected>,
}

/// What one HEC reply means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// HTTP 200 code 0, with the `ackId` when the token has acknowledgement on.
    Accepted { ack_id: Option<u64> },
    /// 400 code 6/12/13: an event of the request is malformed; `index` is
    /// HEC's `invalid-event-number` (0-based) when it said which.
    BadEvent {
        index: Option<usize>,
        detail: String,
    },
    /// 413: the request is over the server's `max_content_length`.
    TooLarge { detail: String },
    /// Anything else: retry or fatal.
    Failed(Outcome),
}

#[derive(Debug, Default, Deserialize)]
struct HecBody {
    text: Option<String>,
    code: Option<i64>,
    #[serde(rename = "invalid-event-number")]
    invalid_event_number: Option<i64>,
    #[serde(rename = "ackId")]
    ack_id: Option<u64>,
}

impl Encoder {
    /// Appends the envelope of one record, followed by a newline; `Err`
    /// when the record cannot take the sink's layout (nothing appended).
    fn write_event(
        &self,
        record: &BatchRecord,
        out: &mut Vec<u8>,
        report: Option<&mut FieldReport>,
    ) -> Result<(), String> {
        let flattened = match self.layout {
            Some(Layout::SplunkApp) => Some(splunk_app::event(&record.payload, report)?),
            _ => None,
        };
        let event = flattened.as_deref().unwrap_or(&record.payload);
        let ms = record.created_at_ms;
        out.extend_from_slice(b"{\"time\":");
        // Epoch seconds with millisecond precision, as Splunk's `time` takes it.
        let _ = write!(out, "{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000));
        out.extend_from_slice(&self.envelope);
        out.extend_from_slice(event.as_bytes());
        out.extend_from_slice(b"}\n");
        Ok(())
    }

    /// Encodes records into requests of at most [`MAX_REQUEST_BYTES`]; a
    /// record whose envelope alone is larger is rejected, never truncated.
    /// What the layout did to the fields of a record is reported to
    /// `report` when given, the first time the record is encoded.
    fn encode<'a>(
        &self,
        records: impl IntoIterator<Item = &'a BatchRecord>,
        mut report: Option<&mut FieldReport>,
    ) -> Encoded<'a> {
        let mut requests = Vec::new();
        let mut rejected = Vec::new();
        let mut body = Vec::new();
        let mut current: Vec<&'a BatchRecord> = Vec::new();
        for record in records {
            let start = body.len();
            let first_time = report.as_deref_mut().and_then(|r| r.first_time(record.seq));
            if let Err(reason) = self.write_event(record, &mut body, first_time) {
                rejected.push(Rejected {
                    seq: record.seq,
                    activity_id: record.activity_id.clone(),
                    reason,
                    response: String::new(),
                });
                continue;
            }
            let len = body.len() - start;
            if len > MAX_REQUEST_BYTES {
                body.truncate(start);
                rejected.push(Rejected {
                    seq: record.seq,
                    activity_id: record.activity_id.clone(),
                    reason: format!(
                        "event of {len} bytes in its HEC envelope exceeds the {MAX_REQUEST_BYTES}-byte request limit"
                    ),
                    response: String::new(),
                });
                continue;
            }
            if body.len() > MAX_REQUEST_BYTES {
                let tail = body.split_off(start);
                requests.push(Request {
                    records: std::mem::take(&mut current),
                    body: std::mem::replace(&mut body, tail),
                });
            }
            current.push(record);
        }
        if !current.is_empty() {
            requests.push(Request {
                records: current,
                body,
            });
        }
        Encoded { requests, rejected }
    }
}

impl SplunkHecSink {
    pub fn new(config: &SplunkHecSinkConfig) -> anyhow::Result<SplunkHecSink> {
        let mut authorization =
            HeaderValue::from_str(&format!("Splunk {}", config.token.expose_secret().trim()))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "the HEC token contains characters not allowed in an HTTP header; \
                         copy the token (a GUID) again"
                    )
                })?;
        authorization.set_sensitive(true);
        let host = config.host.clone().unwrap_or_else(local_hostname);
        let mut envelope = Vec::with_capacity(256);
        envelope.extend_from_slice(b",\"host\":");
        serde_json::to_writer(&mut envelope, &host)?;
        envelope.extend_from_slice(b",\"source\":");
        serde_json::to_writer(&mut envelope, &config.source)?;
        envelope.extend_from_slice(b",\"sourcetype\":");
        serde_json::to_writer(&mut envelope, &config.sourcetype)?;
        if let Some(index) = &config.index {
            envelope.extend_from_slice(b",\"index\":");
            serde_json::to_writer(&mut envelope, index)?;
        }
        if !config.fields.is_empty() {
            let fields: serde_json::Map<String, serde_json::Value> = config
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            envelope.extend_from_slice(b",\"fields\":");
            serde_json::to_writer(&mut envelope, &fields)?;
        }
        envelope.extend_from_slice(b",\"event\":");
        Ok(SplunkHecSink {
            client: http::client(&config.http)?,
            base_url: config.url.trim_end_matches('/').to_string(),
            authorization,
            channel: HeaderValue::from_str(&new_channel()).expect("a GUID is a valid header"),
            compression: config.http.compression,
            ack: config.ack.then_some(AckSettings {
                poll_interval: config.ack_poll_interval,
                timeout: config.ack_timeout,
            }),
            encoder: Encoder {
                envelope,
                layout: config.layout,
            },
            field_report: FieldReport::unscraped(""),
            progress: BatchProgress::default(),
            ack_unavailable: false,
        })
    }

    /// The channel GUID sent as `X-Splunk-Request-Channel`.
    pub fn channel(&self) -> &str {
        self.channel.to_str().unwrap_or_default()
    }

    /// Where the layout reports the fields its object has no key for (the
    /// sink's metric).
    pub fn with_field_report(mut self, report: FieldReport) -> SplunkHecSink {
        self.field_report = report;
        self
    }

    /// What the layout reported so far (tests).
    pub fn field_report(&self) -> &FieldReport {
        &self.field_report
    }

    /// Encodes records into requests of at most [`MAX_REQUEST_BYTES`]; a
    /// record whose envelope alone is larger is rejected, never truncated.
    pub fn encode<'a>(&self, records: impl IntoIterator<Item = &'a BatchRecord>) -> Encoded<'a> {
        self.encoder.encode(records, None)
    }

    /// Sends one batch: every request it needs, skipping the records already
    /// acknowledged by an earlier attempt at the same batch.
    pub async fn send(&mut self, records: &[BatchRecord]) -> Outcome {
        self.progress.begin(records);
        let encoded = self
            .encoder
            .encode(self.progress.pending(records), Some(&mut self.field_report));
        for r in encoded.rejected {
            self.progress.rejected(r);
        }
        let mut queue: VecDeque<Request> = encoded.requests.into();
        while let Some(request) = queue.pop_front() {
            let reply = match self.post_event(&request.body).await {
                Ok(answer) => classify(answer.status, &answer.headers, &answer.text),
                Err(reason) => {
                    return Outcome::Retry {
                        after: None,
                        reason,
                    };
                }
            };
            match reply {
                Reply::Accepted { ack_id } => {
                    if let Err(outcome) = self.confirm(ack_id).await {
                        return outcome;
                    }
                    self.progress
                        .acknowledged_all(request.records.iter().copied());
                }
                Reply::BadEvent {
                    index: Some(i),
                    detail,
                } if i < request.records.len() => {
                    // HEC names the bad event. The others are sent again:
                    // HEC stops at the bad event, and whether it indexed the
                    // ones before it is not documented, so a possible
                    // duplicate is preferred to a possible loss.
                    let bad = request.records[i];
                    self.progress
                        .rejected(rejected(bad, "HEC rejected the event", &detail));
                    let rest = request
                        .records
                        .iter()
                        .enumerate()
                        .filter(|&(j, _)| j != i)
                        .map(|(_, r)| *r);
                    for r in self.encode(rest).requests.into_iter().rev() {
                        queue.push_front(r);
                    }
                }
                Reply::BadEvent { detail, .. } | Reply::TooLarge { detail }
                    if request.records.len() == 1 =>
                {
                    let reason = "HEC rejected the event alone in its request";
                    self.progress
                        .rejected(rejected(request.records[0], reason, &detail));
                }
                Reply::BadEvent { .. } | Reply::TooLarge { .. } => {
                    // Which event is unknown (or the server's size limit is
                    // lower than ours): halve the request until the bad event
                    // is alone.
                    let (left, right) = request.records.split_at(request.records.len() / 2);
                    for half in [right, left] {
                        for r in self.encode(half.iter().copied()).requests.into_iter().rev() {
                            queue.push_front(r);
                        }
                    }
                }
                Reply::Failed(outcome) => return outcome,
            }
        }
        self.progress.finish()
    }

    /// After a 200: with acknowledgement on, waits until HEC says the
    /// request was indexed.
    async fn confirm(&mut self, ack_id: Option<u64>) -> Result<(), Outcome> {
        let Some(settings) = self.ack else {
            return Ok(());
        };
        if self.ack_unavailable {
            return Ok(());
        }
        let Some(ack_id) = ack_id else {
            self.ack_off_on_token();
            return Ok(());
        };
        let deadline = Instant::now() + settings.timeout;
        loop {
            tokio::time::sleep(settings.poll_interval).await;
            let problem = match self.query_ack(ack_id).await {
                Ok(AckStatus::Indexed) => return Ok(()),
                Ok(AckStatus::Pending) => "HEC reported the request as not yet indexed".to_string(),
                Ok(AckStatus::Disabled) => {
                    self.ack_off_on_token();
                    return Ok(());
                }
                Ok(AckStatus::Failed(Outcome::Fatal { reason })) => {
                    return Err(Outcome::Fatal { reason });
                }
                Ok(AckStatus::Failed(other)) => format!("{other:?}"),
                Err(reason) => reason,
            };
            if Instant::now() >= deadline {
                return Err(Outcome::Retry {
                    after: None,
                    reason: format!(
                        "Splunk did not confirm indexing of ackId {ack_id} within {}s ({problem}); \
                         the request is sent again (Splunk may then hold a duplicate)",
                        settings.timeout.as_secs_f64()
                    ),
                });
            }
        }
    }

    fn ack_off_on_token(&mut self) {
        if !self.ack_unavailable {
            self.ack_unavailable = true;
            warn!(
                "ack = true, but the HEC token has indexer acknowledgement disabled; delivery now \
                 counts on HTTP 200 alone. Enable it on the token (and restart) or set ack = false"
            );
        }
    }

    async fn query_ack(&self, ack_id: u64) -> Result<AckStatus, String> {
        let body = format!("{{\"acks\":[{ack_id}]}}");
        let response = self
            .client
            .post(format!("{}{ACK_PATH}", self.base_url))
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CHANNEL_HEADER, self.channel.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("querying HEC acknowledgements: {}", http::describe(e)))?;
        let http::Answer {
            status,
            headers,
            text,
        } = http::read_answer(
            response,
            http::MAX_ANSWER_BYTES,
            &format!("POST {ACK_PATH}"),
        )
        .await?;
        if status.is_success() {
            #[derive(Deserialize)]
            struct Acks {
                acks: std::collections::HashMap<String, bool>,
            }
            return match serde_json::from_str::<Acks>(&text) {
                Ok(a) if a.acks.get(&ack_id.to_string()) == Some(&true) => Ok(AckStatus::Indexed),
                Ok(_) => Ok(AckStatus::Pending),
                Err(_) => Err(format!(
                    "HEC answered the ack query with an unexpected body: {}",
                    http::truncate(&text, 256)
                )),
            };
        }
        let parsed: HecBody = serde_json::from_str(&text).unwrap_or_default();
        if parsed.code == Some(14) {
            return Ok(AckStatus::Disabled);
        }
        Ok(match classify(status, &headers, &text) {
            Reply::Failed(outcome) => AckStatus::Failed(outcome),
            other => AckStatus::Failed(Outcome::Retry {
                after: None,
                reason: format!("unexpected ack reply {other:?}"),
            }),
        })
    }

    /// POSTs one body to `/services/collector/event`; `Err` is a transport
    /// failure (retryable), in words.
    async fn post_event(&self, body: &[u8]) -> Result<http::Answer, String> {
        let request = self
            .client
            .post(format!("{}{EVENT_PATH}", self.base_url))
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CHANNEL_HEADER, self.channel.clone())
            .header(CONTENT_TYPE, "application/json");
        http::send_body(
            request,
            body,
            self.compression,
            &format!("POST {EVENT_PATH}"),
        )
        .await
        .map_err(|e| format!("sending to Splunk HEC: {e}"))
    }

    /// `claudit check --connect`: HEC's health endpoint, then an empty POST
    /// to the event endpoint, which HEC answers with code 5 "No data" when
    /// the token is valid and indexes nothing.
    pub async fn healthcheck(&self) -> Result<String, String> {
        let response = self
            .client
            .get(format!("{}{HEALTH_PATH}", self.base_url))
            .header(AUTHORIZATION, self.authorization.clone())
            .send()
            .await
            .map_err(|e| {
                format!(
                    "cannot reach HEC at {}: {}",
                    self.base_url,
                    http::describe(e)
                )
            })?;
        let health = http::read_answer(
            response,
            http::MAX_ANSWER_BYTES,
            &format!("GET {HEALTH_PATH}"),
        )
        .await
        .map_err(|e| format!("HEC health at {}: {e}", self.base_url))?;
        if !health.status.is_success() {
            return Err(format!(
                "HEC health at {} answered {}: {}",
                self.base_url,
                health.status,
                http::truncate(&health.text, 256)
            ));
        }
        let http::Answer {
            status,
            headers,
            text,
        } = self.post_event(b"").await?;
        let parsed: HecBody = serde_json::from_str(&text).unwrap_or_default();
        if parsed.code == Some(5) || status.is_success() {
            return Ok(format!(
                "HEC at {} is healthy and accepts the token",
                self.base_url
            ));
        }
        match classify(status, &headers, &text) {
            Reply::Failed(Outcome::Fatal { reason } | Outcome::Retry { reason, .. }) => Err(reason),
            other => Err(format!("unexpected HEC reply {other:?}")),
        }
    }
}

enum AckStatus {
    Indexed,
    Pending,
    Disabled,
    Failed(Outcome),
}

/// Classifies a reply of `/services/collector/event` by HEC's code table
/// (`spec/sinks.md` section 1), then by the generic HTTP rules.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> Reply {
    let parsed: HecBody = serde_json::from_str(body).unwrap_or_default();
    let detail = match (&parsed.code, &parsed.text) {
        (Some(code), Some(text)) => format!("HTTP {} code {code}: {text}", status.as_u16()),
        _ => format!("HTTP {}: {}", status.as_u16(), http::truncate(body, 512)),
    };
    let fatal = |fix: &str| {
        Reply::Failed(Outcome::Fatal {
            reason: format!("{detail}; {fix}"),
        })
    };
    if status.is_success() && parsed.code.is_none_or(|c| c == 0) {
        return Reply::Accepted {
            ack_id: parsed.ack_id,
        };
    }
    match parsed.code {
        Some(1 | 22) => fatal(
            "the HEC token is disabled; enable it in Splunk (Settings > Data inputs > HTTP Event Collector)",
        ),
        Some(4 | 21) => fatal("Splunk does not know this HEC token; check token / token_file"),
        Some(2 | 3) => fatal(
            "Splunk refused the Authorization header; check token / token_file (the token alone, a GUID)",
        ),
        Some(5) => fatal("HEC received no data (a bug: claudit never sends an empty batch)"),
        Some(6 | 12 | 13) => Reply::BadEvent {
            index: parsed
                .invalid_event_number
                .and_then(|n| usize::try_from(n).ok()),
            detail,
        },
        Some(7) => fatal(
            "the index is not allowed for this token; fix index, or add it to the token's allowed indexes",
        ),
        Some(10 | 11) => fatal("HEC refused the request channel; report this as a claudit bug"),
        Some(15) => fatal("HEC refused the indexed fields; fix the sink's fields table"),
        Some(16) => fatal(
            "query-string authorization is off for this token; claudit sends the Authorization header, check the url",
        ),
        Some(8 | 9 | 18 | 19 | 20) => Reply::Failed(Outcome::Retry {
            after: http::retry_after(headers),
            reason: detail,
        }),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => Reply::TooLarge { detail },
        _ => Reply::Failed(http::classify(status, headers, body)),
    }
}

fn rejected(record: &BatchRecord, reason: &str, response: &str) -> Rejected {
    Rejected::of(record, reason, http::truncate(response, 1024))
}

/// This machine's hostname, for events without a configured `host`.
fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "claudit".to_string())
}

/// A random version-4 GUID for `X-Splunk-Request-Channel`. std's
/// `RandomState` is seeded from the operating system's random source.
fn new_channel() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl Destination for SplunkHecSink {
    fn deliver<'a>(&'a mut self, records: &'a [BatchRecord]) -> BoxFuture<'a, Outcome> {
        Box::pin(self.send(records))
    }

    fn healthcheck(&mut self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(SplunkHecSink::healthcheck(self))
    }
}

// ---- settings (type = "splunk_hec") ----

/// `type = "splunk_hec"`: Splunk HTTP Event Collector, `/services/collector/event`.
#[derive(Debug, Clone)]
pub struct SplunkHecSinkConfig {
    /// Base URL of HEC without the `/services/collector` path, e.g.
    /// `https://splunk.example.com:8088` or `https://http-inputs-acme.splunkcloud.com`.
    pub url: String,
    /// The HEC token (a GUID), sent as `Authorization: Splunk <token>`.
    pub token: SecretString,
    /// `host` of every event; `None` = this machine's hostname.
    pub host: Option<String>,
    /// `source` of every event.
    pub source: String,
    /// `sourcetype` of every event.
    pub sourcetype: String,
    /// `index` of every event; `None` = the token's default index.
    pub index: Option<String>,
    /// Indexed fields added to every event (`fields`), in file order.
    pub fields: Vec<(String, String)>,
    /// Wait for indexer acknowledgement (`useACK` on the token) before
    /// advancing the cursor.
    pub ack: bool,
    /// How often to ask `/services/collector/ack` about a pending request.
    pub ack_poll_interval: Duration,
    /// A request not acknowledged within this long is sent again.
    pub ack_timeout: Duration,
    /// `layout = "splunk_app"`: the Splunk add-on's flattened object
    /// (`sinks::layout`); `None` = the event as it is.
    pub layout: Option<Layout>,
    pub http: HttpSinkConfig,
}

/// `type = "splunk_hec"` in the registry (`sinks::registry`).
pub const TYPE: SinkType = SinkType {
    name: "splunk_hec",
    batch: (1000, 1_000_000, Duration::from_secs(1)),
    raw_only: false,
    read: keys::read_splunk_hec_sink,
};

impl SinkSettings for SplunkHecSinkConfig {
    fn layout(&self) -> Option<Layout> {
        self.layout
    }

    fn add_secrets(&self, redactor: &mut Redactor) {
        redactor.add(self.token.expose_secret());
    }

    fn open<'a>(
        &'a self,
        cx: OpenContext<'a>,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn Destination>>> {
        let fields = FieldReport::new(&cx.sink.name, cx.counters.layout_fields.clone());
        opened(SplunkHecSink::new(self).map(|sink| sink.with_field_report(fields)))
    }
}

/// The keys of `type = "splunk_hec"`: every problem is reported, with its line
/// and the fix.
mod keys {
    use super::*;
    use crate::sinks::settings::SinkKind;
    use crate::sinks::settings::*;
    use crate::toml_reader::keys::*;
    use crate::toml_reader::{Ctx, Table, Text};

    /// The keys of `type = "splunk_hec"`.
    pub(super) fn read_splunk_hec_sink(cx: &mut Ctx, t: &mut Table) -> Option<SinkKind> {
        let example = "\"https://splunk.example.com:8088\"";
        let url =
            t.required_text(cx, "url", example)
                .and_then(|text| match check_splunk_url(&text) {
                    Ok(url) => Some(url),
                    Err(msg) => {
                        text_error(cx, t, "url", &text, msg);
                        None
                    }
                });
        let token = t.header_secret(
            cx,
            "token",
            "SPLUNK_HEC_TOKEN",
            "/run/secrets/splunk_hec_token",
        );
        let host = optional_label(cx, t, "host");
        let layout = read_layout(cx, t, "splunk_hec");
        let source = optional_label(cx, t, "source");
        let sourcetype = optional_label(cx, t, "sourcetype");
        // The add-on's searches read one sourcetype: its own, by default.
        let sourcetype = match (layout, sourcetype) {
            (Some(Some(_)), Some(Some(s))) => {
                let checked = splunk_app::check_sourcetype(&s);
                let line = t.line_of_key(cx, "sourcetype");
                checked
                    .map_err(|msg| t_error(cx, t, "sourcetype", line, msg))
                    .ok()
                    .map(|()| Some(s))
            }
            (Some(Some(_)), Some(None)) => Some(Some(splunk_app::SOURCETYPE.to_string())),
            (_, sourcetype) => sourcetype,
        };
        let source = match (layout, source) {
            (Some(Some(_)), Some(None)) => Some(Some(splunk_app::DEFAULT_SOURCE.to_string())),
            (_, source) => source,
        };
        let index = optional_label(cx, t, "index");
        let fields = read_string_fields(cx, t, |_| None);
        let ack = t.boolean(cx, "ack", false);
        let ack_poll_interval = duration_at_least(
            cx,
            t,
            "ack_poll_interval",
            secs(5),
            Duration::from_millis(1),
        );
        let ack_timeout = duration_at_least(
            cx,
            t,
            "ack_timeout",
            secs(5 * MINUTE),
            Duration::from_millis(1),
        );
        let http = read_http(cx, t);
        Some(SinkKind::new(SplunkHecSinkConfig {
            url: url?,
            token: token?,
            host: host?,
            source: source?.unwrap_or_else(|| "claudit".to_string()),
            sourcetype: sourcetype?.unwrap_or_else(|| "anthropic:claude:compliance".to_string()),
            index: index?,
            fields: fields?,
            ack: ack?,
            ack_poll_interval: ack_poll_interval?,
            ack_timeout: ack_timeout?,
            layout: layout?,
            http: http?,
        }))
    }

    /// `url` of a splunk_hec sink: http(s), no credentials, query or the
    /// `/services/collector` path (claudit adds the endpoint paths itself).
    fn check_splunk_url(text: &Text) -> Result<String, String> {
        let fix = "write the base URL, e.g. url = \"https://splunk.example.com:8088\" \
                   (Splunk Cloud: \"https://http-inputs-<stack>.splunkcloud.com\")";
        let value = text.value.trim();
        let url = check_secret_url(
            text,
            value,
            &SecretUrl {
                key: "url",
                fix,
                plain_http: "plain http is allowed only for 127.0.0.1 or localhost, since the \
                             HEC token travels in every request; enable SSL on HEC (the default) \
                             and use https, or trust its certificate with tls_ca_file;",
                credentials_go: " (the token goes in token or token_file)",
            },
        )?;
        if url.path().contains("/services/collector") {
            return Err(format!(
                "url must not include the /services/collector path (claudit adds \
                 /services/collector/event, /ack and /health itself); {fix}"
            ));
        }
        Ok(value.trim_end_matches('/').to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HttpSinkConfig;

    fn config() -> SplunkHecSinkConfig {
        SplunkHecSinkConfig {
            url: "https://splunk.example.com:8088".into(),
            token: "00000000-1111-2222-3333-444444444444".to_string().into(),
            host: Some("collector-1".into()),
            source: "claudit".into(),
            sourcetype: "anthropic:claude:compliance".into(),
            index: Some("audit".into()),
            fields: vec![("org".into(), "acme".into())],
            ack: false,
            ack_poll_interval: Duration::from_millis(10),
            ack_timeout: Duration::from_secs(1),
            layout: None,
            http: HttpSinkConfig {
                tls_ca_file: None,
                connect_timeout: Duration::from_secs(1),
                request_timeout: Duration::from_secs(1),
                compression: false,
            },
        }
    }

    fn record(seq: i64, payload: String) -> BatchRecord {
        BatchRecord {
            seq,
            activity_id: format!("activity_{seq}"),
            created_at_ms: 1_746_864_000_007,
            payload,
        }
    }

    #[test]
    fn envelope_carries_time_metadata_and_the_event() {
        let sink = SplunkHecSink::new(&config()).unwrap();
        let r = record(1, r#"{"metadata":{"uid":"a"}}"#.into());
        let encoded = sink.encode([&r]);
        assert_eq!(encoded.requests.len(), 1);
        let body = String::from_utf8(encoded.requests[0].body.clone()).unwrap();
        assert_eq!(
            body,
            "{\"time\":1746864000.007,\"host\":\"collector-1\",\"source\":\"claudit\",\
             \"sourcetype\":\"anthropic:claude:compliance\",\"index\":\"audit\",\
             \"fields\":{\"org\":\"acme\"},\"event\":{\"metadata\":{\"uid\":\"a\"}}}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["time"].as_f64(), Some(1746864000.007));
    }

    #[test]
    fn the_splunk_app_layout_sends_the_add_ons_object() {
        let mut c = config();
        c.layout = Some(Layout::SplunkApp);
        c.sourcetype = splunk_app::SOURCETYPE.into();
        c.source = splunk_app::DEFAULT_SOURCE.into();
        c.fields.clear();
        let sink = SplunkHecSink::new(&c).unwrap();
        let raw = record(
            1,
            r#"{"id":"activity_1","type":"org_data_export_started","created_at":"2026-05-10T08:00:00.007Z","actor":{"type":"user_actor","email_address":"a@example.com"}}"#.into(),
        );
        let not_json = record(2, "[]".into());
        let encoded = sink.encode([&raw, &not_json]);
        assert_eq!(encoded.rejected.len(), 1);
        assert_eq!(encoded.rejected[0].seq, 2);
        let body = String::from_utf8(encoded.requests[0].body.clone()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["sourcetype"], "anthropic:compliance:activity");
        assert_eq!(v["source"], "anthropic:compliance:activities:claudit");
        assert_eq!(v["event"]["event_type"], "org_data_export_started");
        assert_eq!(v["event"]["actor_email"], "a@example.com");
        assert_eq!(v["event"]["is_change_event"], true);
        assert!(v["event"].get("actor").is_none());
    }

    #[test]
    fn optional_index_and_fields_are_left_out() {
        let mut c = config();
        c.index = None;
        c.fields.clear();
        let sink = SplunkHecSink::new(&c).unwrap();
        let r = record(1, "{}".into());
        let body = String::from_utf8(sink.encode([&r]).requests[0].body.clone()).unwrap();
        assert!(
            !body.contains("\"index\"") && !body.contains("\"fields\""),
            "{body}"
        );
    }

    #[test]
    fn batches_split_under_the_limit_and_oversize_events_are_rejected() {
        let sink = SplunkHecSink::new(&config()).unwrap();
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(400_000));
        let huge = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_REQUEST_BYTES));
        let records: Vec<BatchRecord> = (1..=5)
            .map(|i| record(i, if i == 3 { huge.clone() } else { big.clone() }))
            .collect();
        let encoded = sink.encode(&records);
        assert_eq!(encoded.rejected.len(), 1);
        assert_eq!(encoded.rejected[0].seq, 3);
        let seqs: Vec<Vec<i64>> = encoded
            .requests
            .iter()
            .map(|r| r.records.iter().map(|r| r.seq).collect())
            .collect();
        assert_eq!(seqs, vec![vec![1, 2], vec![4, 5]]);
        for r in &encoded.requests {
            assert!(r.body.len() <= MAX_REQUEST_BYTES);
        }
    }

    #[test]
    fn hec_codes_are_classified() {
        let h = HeaderMap::new();
        let c = |status: u16, body: &str| classify(StatusCode::from_u16(status).unwrap(), &h, body);
        assert_eq!(
            c(200, r#"{"text":"Success","code":0,"ackId":7}"#),
            Reply::Accepted { ack_id: Some(7) }
        );
        assert_eq!(c(200, ""), Reply::Accepted { ack_id: None });
        for (status, code) in [
            (403, 1),
            (401, 2),
            (401, 3),
            (403, 4),
            (400, 5),
            (400, 7),
            (400, 10),
            (400, 11),
            (400, 15),
            (400, 21),
            (400, 22),
        ] {
            let body = format!(r#"{{"text":"t","code":{code}}}"#);
            assert!(
                matches!(c(status, &body), Reply::Failed(Outcome::Fatal { .. })),
                "code {code}"
            );
        }
        for (status, code) in [(500, 8), (503, 9), (503, 18)] {
            let body = format!(r#"{{"text":"t","code":{code}}}"#);
            assert!(
                matches!(c(status, &body), Reply::Failed(Outcome::Retry { .. })),
                "code {code}"
            );
        }
        assert!(matches!(
            c(
                400,
                r#"{"text":"Invalid data format","code":6,"invalid-event-number":2}"#
            ),
            Reply::BadEvent { index: Some(2), .. }
        ));
        assert!(matches!(
            c(400, r#"{"text":"Event field is required","code":12}"#),
            Reply::BadEvent { index: None, .. }
        ));
        assert!(matches!(c(413, "too big"), Reply::TooLarge { .. }));
        assert!(matches!(c(429, ""), Reply::Failed(Outcome::Retry { .. })));
        assert!(matches!(
            c(404, "nope"),
            Reply::Failed(Outcome::Fatal { .. })
        ));
    }

    #[test]
    fn channels_are_v4_guids_and_differ() {
        let a = new_channel();
        let b = new_channel();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(a.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
    }

    #[test]
    fn the_token_never_shows_in_debug() {
        let sink = SplunkHecSink::new(&config()).unwrap();
        assert!(!format!("{:?}", sink.authorization).contains("4444"));
    }
}
