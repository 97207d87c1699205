//! The Microsoft Sentinel sink: the Azure Monitor Logs Ingestion API
//! (`spec/sinks.md` section 4), not the retired HTTP Data Collector API.
//!
//! `POST {endpoint}/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01`
//! with a Microsoft Entra client-credentials bearer token. The body is a
//! JSON array of rows with exactly the columns of [`COLUMNS`], which
//! `deploy/sentinel/` declares in the DCR stream and the custom table:
//!
//! | column | type | value |
//! |---|---|---|
//! | `TimeGenerated` | datetime | the activity's `created_at`, RFC 3339 with ms |
//! | `ActivityId` | string | the activity id (dedup key: no server-side dedup) |
//! | `ActivityType` | string | `type` of a raw activity, `metadata.event_code` of an OCSF event |
//! | `Event` | dynamic | the event itself (OCSF or raw), as a JSON object |
//!
//! Limits: 1 MB per call, compressed or not, so requests are cut at 1 MB
//! uncompressed; field values over 64 KB are truncated by Azure, so an
//! event whose `Event` value is larger is dead-lettered instead. Azure
//! replaces a `TimeGenerated` older than two days with the ingestion time:
//! such events are sent, counted and warned about.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tracing::{info, warn};

use super::contract::{ArrayPacker, BatchProgress, BoxFuture, Destination, Outcome, Rejected};
use super::http;
use super::layout::{FieldReport, Layout, sentinel_bluevoyant};
use super::registry::{OpenContext, SinkSettings, SinkType, opened};
use crate::model::BatchRecord;
use crate::redact::Redactor;
use crate::sinks::settings::HttpSinkConfig;

pub const API_VERSION: &str = "2023-01-01";
/// The columns of every row, with their Log Analytics types, in order.
pub const COLUMNS: &[(&str, &str)] = &[
    ("TimeGenerated", "datetime"),
    ("ActivityId", "string"),
    ("ActivityType", "string"),
    ("Event", "dynamic"),
];
/// At most this many bytes per call (the limit holds for the uncompressed
/// body too).
pub const MAX_REQUEST_BYTES: usize = 1_000_000;
/// Azure truncates field values larger than this.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Azure replaces older `TimeGenerated` values with the ingestion time.
pub const STALE_AFTER_MS: i64 = 2 * 86_400 * 1000;

/// How errors about an answer name the request (the URLs are long).
const INGEST_ENDPOINT: &str = "POST the Logs Ingestion stream";
const TOKEN_ENDPOINT: &str = "POST the Entra token endpoint";

/// Where the sink reads the time for token expiry (injectable for tests).
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

struct Token {
    value: SecretString,
    refresh_at: Instant,
}

pub struct SentinelSink {
    client: reqwest::Client,
    ingest_url: String,
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    scope: String,
    compression: bool,
    token: Option<Token>,
    clock: Clock,
    progress: BatchProgress,
    /// Counts stale events (`claudit_sink_stale_events_total` in the sink task).
    stale_events: Counter,
    /// `layout = "sentinel_bluevoyant"`: rows for BlueVoyant's DCR.
    layout: Option<Layout>,
    /// What the layout had to change to fit the DCR's columns.
    field_report: FieldReport,
}

/// One call's worth of rows: a JSON array of rows.
pub type Request<'r> = super::contract::ArrayRequest<'r>;
/// A batch encoded into calls.
pub type Encoded<'r> = super::contract::ArrayBatch<'r>;

/// The activity type of an OCSF event (`metadata.event_code`) or of a raw
/// activity (`type`), read without building the whole document.
#[derive(Deserialize)]
struct TypePeek<'a> {
    #[serde(rename = "type", borrow, default)]
    activity_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    metadata: Option<MetadataPeek<'a>>,
}

#[derive(Deserialize)]
struct MetadataPeek<'a> {
    #[serde(borrow, default)]
    event_code: Option<Cow<'a, str>>,
}

fn activity_type(payload: &str) -> String {
    match serde_json::from_str::<TypePeek>(payload) {
        Ok(peek) => peek
            .activity_type
            .or(peek.metadata.and_then(|m| m.event_code))
            .map(Cow::into_owned)
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

impl SentinelSink {
    pub fn new(config: &SentinelSinkConfig) -> anyhow::Result<SentinelSink> {
        Ok(SentinelSink {
            client: http::client(&config.http)?,
            ingest_url: format!(
                "{}/dataCollectionRules/{}/streams/{}?api-version={API_VERSION}",
                config.endpoint, config.dcr_immutable_id, config.stream
            ),
            token_url: format!(
                "{}/{}/oauth2/v2.0/token",
                config.authority, config.tenant_id
            ),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            scope: config.scope.clone(),
            compression: config.http.compression,
            token: None,
            clock: Arc::new(Instant::now),
            progress: BatchProgress::default(),
            stale_events: Counter::default(),
            layout: config.layout,
            field_report: FieldReport::unscraped(""),
        })
    }

    /// Where the layout reports the fields it changed (the sink's metric).
    pub fn with_field_report(mut self, report: FieldReport) -> SentinelSink {
        self.field_report = report;
        self
    }

    /// What the layout changed so far (tests).
    pub fn field_report(&self) -> &FieldReport {
        &self.field_report
    }

    /// The access token in use, if any: a secret obtained at run time,
    /// which the sink's redaction must learn (a destination may echo it).
    pub fn session_secrets(&self) -> Vec<String> {
        self.token
            .iter()
            .map(|t| t.value.expose_secret().to_string())
            .collect()
    }

    /// Replaces the clock that decides when the token needs refreshing.
    pub fn with_clock(mut self, clock: Clock) -> SentinelSink {
        self.clock = clock;
        self
    }

    /// Events sent with a `TimeGenerated` older than two days, since start.
    pub fn stale_events(&self) -> Counter {
        self.stale_events.clone()
    }

    /// Counts stale events in `counter` (the sink's own metric).
    pub fn counting_stale_events_in(mut self, counter: Counter) -> SentinelSink {
        self.stale_events = counter;
        self
    }

    /// Encodes records into calls of at most 1 MB.
    pub fn encode<'r>(&self, records: &[&'r BatchRecord], now_ms: i64) -> Encoded<'r> {
        encode_rows(self.layout, records, now_ms, None)
    }

    /// Sends one batch, as several calls when it exceeds 1 MB.
    pub async fn send(&mut self, records: &[BatchRecord]) -> Outcome {
        let first_attempt = self.progress.begin(records);
        let pending = self.progress.pending(records);
        let now_ms = chrono::Utc::now().timestamp_millis();
        let encoded = encode_rows(self.layout, &pending, now_ms, Some(&mut self.field_report));
        self.send_encoded(first_attempt, encoded).await
    }

    async fn send_encoded(&mut self, first_attempt: bool, encoded: Encoded<'_>) -> Outcome {
        if first_attempt && encoded.stale > 0 {
            self.stale_events.inc_by(encoded.stale as u64);
            warn!(
                count = encoded.stale,
                "events older than two days sent to Azure Monitor: it replaces their TimeGenerated \
                 with the ingestion time (the Event column keeps the real time)"
            );
        }
        for r in encoded.rejected {
            self.progress.rejected(r);
        }
        let mut queue: VecDeque<Request> = encoded.requests.into();
        while let Some(request) = queue.pop_front() {
            let http::Answer {
                status,
                headers,
                text: body,
            } = match self.post_refreshing(&request).await {
                Ok(answer) => answer,
                Err(outcome) => return outcome,
            };
            match status.as_u16() {
                200..=299 => {
                    for r in &request.records {
                        self.progress.acknowledged(r.seq);
                    }
                }
                413 => {
                    request.halve_or_reject(&mut queue, &mut self.progress, "Azure Monitor", &body)
                }
                code => {
                    return ingestion_failure(
                        code,
                        status,
                        &headers,
                        &body,
                        &self.ingest_url,
                        self.layout,
                    );
                }
            }
        }
        self.progress.finish()
    }

    /// Posts one call; on a 401 gets a new token and posts once more.
    async fn post_refreshing(&mut self, request: &Request<'_>) -> Result<http::Answer, Outcome> {
        let body = request.body();
        let body = if self.compression {
            http::gzip(&body)
        } else {
            body
        };
        let mut refreshed = false;
        loop {
            let token = self.token().await?;
            let mut builder = self
                .client
                .post(&self.ingest_url)
                .bearer_auth(token.expose_secret())
                .header(reqwest::header::CONTENT_TYPE, "application/json");
            if self.compression {
                builder = builder.header(reqwest::header::CONTENT_ENCODING, "gzip");
            }
            let response = builder
                .body(body.clone())
                .send()
                .await
                .map_err(|e| Outcome::Retry {
                    after: None,
                    reason: format!("sending to {}: {}", self.ingest_url, http::describe(e)),
                })?;
            let answer = http::read_answer(response, http::MAX_ANSWER_BYTES, INGEST_ENDPOINT)
                .await
                .map_err(|reason| Outcome::Retry {
                    after: None,
                    reason,
                })?;
            if answer.status == StatusCode::UNAUTHORIZED && !refreshed {
                info!("Azure Monitor answered 401; getting a new token and trying once more");
                self.token = None;
                refreshed = true;
                continue;
            }
            return Ok(answer);
        }
    }

    /// The cached token, or a new one when it is missing or near expiry.
    async fn token(&mut self) -> Result<SecretString, Outcome> {
        let now = (self.clock)();
        if let Some(t) = &self.token
            && now < t.refresh_at
        {
            return Ok(t.value.clone());
        }
        let token = self.fetch_token().await?;
        let value = token.value.clone();
        self.token = Some(token);
        Ok(value)
    }

    /// POST to the Entra token endpoint (client credentials).
    async fn fetch_token(&self) -> Result<Token, Outcome> {
        let form = {
            let mut url = reqwest::Url::parse("http://form.invalid/").expect("a valid URL");
            url.query_pairs_mut()
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &self.client_id)
                .append_pair("client_secret", self.client_secret.expose_secret())
                .append_pair("scope", &self.scope);
            url.query().unwrap_or_default().to_string()
        };
        let requested = (self.clock)();
        let response = self
            .client
            .post(&self.token_url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send()
            .await
            .map_err(|e| Outcome::Retry {
                after: None,
                reason: format!(
                    "getting a token from {}: {}",
                    self.token_url,
                    http::describe(e)
                ),
            })?;
        let http::Answer {
            status,
            headers,
            text,
        } = http::read_answer(response, http::MAX_ANSWER_BYTES, TOKEN_ENDPOINT)
            .await
            .map_err(|reason| Outcome::Retry {
                after: None,
                reason,
            })?;
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if !status.is_success() {
            let code = status.as_u16();
            let error = json["error"].as_str().unwrap_or("");
            // The first line of error_description: "AADSTS7000215: Invalid client secret provided..."
            let description = json["error_description"]
                .as_str()
                .and_then(|d| d.lines().next())
                .unwrap_or("");
            let detail = if error.is_empty() {
                http::truncate(&text, 256)
            } else {
                format!("{error}: {description}")
            };
            return Err(match code {
                408 | 429 | 500..=599 => Outcome::Retry {
                    after: http::retry_after(&headers),
                    reason: format!(
                        "token endpoint {} answered HTTP {code}: {detail}",
                        self.token_url
                    ),
                },
                _ => Outcome::Fatal {
                    reason: format!(
                        "Microsoft Entra ID refused the client credentials (HTTP {code}: {detail}); \
                         check tenant_id, client_id, client_secret (not expired?) and scope"
                    ),
                },
            });
        }
        let access_token = json["access_token"].as_str().unwrap_or("");
        // expires_in is a number, or a string on some older endpoints.
        let expires_in = json["expires_in"]
            .as_u64()
            .or_else(|| json["expires_in"].as_str().and_then(|s| s.parse().ok()));
        let (false, Some(expires_in)) = (access_token.is_empty(), expires_in) else {
            return Err(Outcome::Retry {
                after: None,
                reason: format!(
                    "token endpoint {} answered HTTP {} without access_token and expires_in",
                    self.token_url,
                    status.as_u16()
                ),
            });
        };
        let lifetime = Duration::from_secs(expires_in);
        Ok(Token {
            value: SecretString::from(access_token.to_string()),
            refresh_at: requested + lifetime - refresh_margin(lifetime),
        })
    }

    /// Gets a token, then posts an empty array: checks the credentials, the
    /// endpoint, the DCR, the stream and the role without ingesting a row.
    pub async fn healthcheck(&mut self) -> Result<String, String> {
        let describe = |o: Outcome| match o {
            Outcome::Retry { reason, .. } | Outcome::Fatal { reason } => reason,
            Outcome::Delivered { .. } => String::new(),
        };
        self.token = None;
        let empty = Request {
            records: Vec::new(),
            items: Vec::new(),
        };
        let http::Answer {
            status,
            headers,
            text: body,
        } = self.post_refreshing(&empty).await.map_err(describe)?;
        match status.as_u16() {
            200..=299 => Ok(format!(
                "token issued and the stream accepts data at {}",
                self.ingest_url
            )),
            code => Err(describe(ingestion_failure(
                code,
                status,
                &headers,
                &body,
                &self.ingest_url,
                self.layout,
            ))),
        }
    }
}

/// Encodes records into calls of at most 1 MB: claudit's four columns, or
/// with `layout = "sentinel_bluevoyant"` the activity typed to BlueVoyant's
/// DCR (its field changes reported to `report` when given, the first time
/// each record is encoded, so a retry does not count them twice).
fn encode_rows<'r>(
    layout: Option<Layout>,
    records: &[&'r BatchRecord],
    now_ms: i64,
    mut report: Option<&mut FieldReport>,
) -> Encoded<'r> {
    let now = chrono::DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut rejected = Vec::new();
    let mut stale = 0;
    let mut packer = ArrayPacker::new(MAX_REQUEST_BYTES, usize::MAX);
    for &record in records {
        let reject = |reason: String| Rejected {
            seq: record.seq,
            activity_id: record.activity_id.clone(),
            reason,
            response: String::new(),
        };
        let row = match layout {
            // TimeGenerated is the time sent, so nothing is stale.
            Some(_) => match sentinel_bluevoyant::row(
                &record.payload,
                &now,
                report.as_deref_mut().and_then(|r| r.first_time(record.seq)),
            ) {
                Ok(row) => row,
                Err(reason) => {
                    rejected.push(reject(reason));
                    continue;
                }
            },
            None => {
                if now_ms - record.created_at_ms > STALE_AFTER_MS {
                    stale += 1;
                }
                if record.payload.len() > MAX_FIELD_BYTES {
                    rejected.push(reject(format!(
                        "the event is {} bytes, over Azure Monitor's limit of {MAX_FIELD_BYTES} \
                         bytes per field value (Azure would truncate it); not sent",
                        record.payload.len()
                    )));
                    continue;
                }
                row(record)
            }
        };
        packer.push(record, row.into());
    }
    Encoded {
        requests: packer.finish(),
        rejected,
        stale,
    }
}

/// Refresh this long before expiry: a tenth of the lifetime, at least a
/// minute, at most half the lifetime (short-lived tokens).
fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10)
        .max(Duration::from_secs(60))
        .min(lifetime / 2)
}

/// A non-2xx, non-413 answer of the ingestion endpoint.
fn ingestion_failure(
    code: u16,
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    url: &str,
    layout: Option<Layout>,
) -> Outcome {
    let body = http::truncate(body, 512);
    let columns = match layout {
        Some(_) => {
            "the DCR must be BlueVoyant's, with the stream declaration of its solution (3.0.1), \
             whose columns the layout sends"
        }
        None => {
            "the DCR's stream declaration must have exactly the columns TimeGenerated, \
             ActivityId, ActivityType, Event (see deploy/sentinel/)"
        }
    };
    match code {
        401 => Outcome::Fatal {
            reason: format!(
                "HTTP 401 from {url} even with a new token: {body}; check that scope matches the \
                 cloud (https://monitor.azure.com//.default for Azure public cloud)"
            ),
        },
        // Role assignments take up to 30 minutes to apply: the slow re-check
        // of a fatal outcome picks delivery up once they do.
        403 => Outcome::Fatal {
            reason: format!(
                "HTTP 403 from {url}: {body}; grant the app registration the Monitoring Metrics \
                 Publisher role on the data collection rule (it can take 30 minutes to apply)"
            ),
        },
        404 => Outcome::Fatal {
            reason: format!(
                "HTTP 404 from {url}: {body}; check endpoint, dcr_immutable_id and stream (the \
                 stream must be declared in the DCR)"
            ),
        },
        400 => Outcome::Fatal {
            reason: format!("HTTP 400 from {url}: {body}; {columns}"),
        },
        _ => http::classify(status, headers, &body),
    }
}

/// One row: `{"TimeGenerated":..,"ActivityId":..,"ActivityType":..,"Event":{..}}`.
pub fn row(record: &BatchRecord) -> String {
    let time = chrono::DateTime::from_timestamp_millis(record.created_at_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let ty = activity_type(&record.payload);
    let mut out = Vec::with_capacity(record.payload.len() + 160);
    out.extend_from_slice(b"{\"TimeGenerated\":\"");
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b"\",\"ActivityId\":");
    serde_json::to_writer(&mut out, record.activity_id.as_str()).expect("writing to a Vec");
    out.extend_from_slice(b",\"ActivityType\":");
    serde_json::to_writer(&mut out, ty.as_str()).expect("writing to a Vec");
    out.extend_from_slice(b",\"Event\":");
    // The payload is one JSON object (the journal stores it that way).
    out.extend_from_slice(record.payload.as_bytes());
    out.push(b'}');
    String::from_utf8(out).expect("JSON text is UTF-8")
}

impl Destination for SentinelSink {
    fn deliver<'a>(&'a mut self, records: &'a [BatchRecord]) -> BoxFuture<'a, Outcome> {
        Box::pin(self.send(records))
    }

    fn healthcheck(&mut self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(SentinelSink::healthcheck(self))
    }

    fn session_secrets(&self) -> Vec<String> {
        SentinelSink::session_secrets(self)
    }
}

// ---- settings (type = "sentinel") ----

/// `type = "sentinel"`: Microsoft Sentinel through the Azure Monitor Logs
/// Ingestion API (a DCR and its stream), with a Microsoft Entra client
/// credentials token.
#[derive(Debug, Clone)]
pub struct SentinelSinkConfig {
    /// The DCE or the DCR's own logs-ingestion endpoint, no trailing slash.
    pub endpoint: String,
    /// `dcr-...`: the data collection rule's immutable id.
    pub dcr_immutable_id: String,
    /// The DCR input stream, e.g. `Custom-ClaudeCompliance_CL`.
    pub stream: String,
    pub tenant_id: String,
    pub client_id: String,
    /// `client_secret` / `client_secret_file`.
    pub client_secret: SecretString,
    /// Entra authority host, no trailing slash; default
    /// `https://login.microsoftonline.com`. The token endpoint is
    /// `{authority}/{tenant_id}/oauth2/v2.0/token`.
    pub authority: String,
    /// Token scope; default `https://monitor.azure.com//.default`.
    pub scope: String,
    /// `layout = "sentinel_bluevoyant"`: rows for BlueVoyant's DCR
    /// (`sinks::layout`); `None` = claudit's four columns.
    pub layout: Option<Layout>,
    pub http: HttpSinkConfig,
}

/// `type = "sentinel"` in the registry (`sinks::registry`).
pub const TYPE: SinkType = SinkType {
    name: "sentinel",
    batch: (1000, 800_000, Duration::from_secs(1)),
    raw_only: false,
    read: keys::read_sentinel_sink,
};

impl SinkSettings for SentinelSinkConfig {
    fn add_secrets(&self, redactor: &mut Redactor) {
        redactor.add(self.client_secret.expose_secret());
    }

    fn open<'a>(
        &'a self,
        cx: OpenContext<'a>,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn Destination>>> {
        let fields = FieldReport::new(&cx.sink.name, cx.counters.layout_fields.clone());
        opened(SentinelSink::new(self).map(|sink| {
            sink.counting_stale_events_in(cx.counters.stale_events.clone())
                .with_field_report(fields)
        }))
    }

    fn layout(&self) -> Option<Layout> {
        self.layout
    }
}

/// The keys of `type = "sentinel"`: every problem is reported, with its line
/// and the fix.
mod keys {
    use super::*;
    use crate::sinks::settings::SinkKind;
    use crate::sinks::settings::*;
    use crate::toml_reader::keys::*;
    use crate::toml_reader::{Ctx, Got, Table};

    /// The keys of `type = "sentinel"`.
    pub(super) fn read_sentinel_sink(cx: &mut Ctx, t: &mut Table) -> Option<SinkKind> {
        let endpoint = t
            .required_text(
                cx,
                "endpoint",
                "\"https://my-dce-abcd.eastus-1.ingest.monitor.azure.com\"",
            )
            .and_then(|u| {
                check_sink_url(
                    &u,
                    "endpoint",
                    "\"https://my-dce-abcd.eastus-1.ingest.monitor.azure.com\"",
                )
                .map_err(|msg| text_error(cx, t, "endpoint", &u, msg))
                .ok()
            });
        let dcr_immutable_id = required_word(
            cx,
            t,
            "dcr_immutable_id",
            "\"dcr-000a00a000a00000a000000aa000a0aa\" (the DCR's immutableId, in its JSON view)",
        );
        let layout = read_layout(cx, t, "sentinel");
        // BlueVoyant's DCR has one input stream: its own, by default.
        let stream = match layout {
            Some(Some(_)) if !t.has_key("stream") => Some(sentinel_bluevoyant::STREAM.to_string()),
            _ => required_word(
                cx,
                t,
                "stream",
                "\"Custom-ClaudeCompliance_CL\" (a streamDeclarations name of the DCR)",
            ),
        };
        let stream = match (layout, stream) {
            (Some(Some(_)), Some(s)) => {
                let checked = sentinel_bluevoyant::check_stream(&s);
                let line = t.line_of_key(cx, "stream");
                checked
                    .map_err(|msg| t_error(cx, t, "stream", line, msg))
                    .ok()
                    .map(|()| s)
            }
            (_, stream) => stream,
        };
        let tenant_id = required_word(
            cx,
            t,
            "tenant_id",
            "\"00000000-0000-0000-0000-000000000000\" (Directory (tenant) ID of the app registration)",
        );
        let client_id = required_word(
            cx,
            t,
            "client_id",
            "\"00000000-0000-0000-0000-000000000000\" (Application (client) ID of the app registration)",
        );
        let client_secret = t.secret(
            cx,
            "client_secret",
            "AZURE_CLIENT_SECRET",
            "/run/secrets/azure_client_secret",
        );
        let authority = match t.text(cx, "authority") {
            Got::Absent => Some("https://login.microsoftonline.com".to_string()),
            Got::Invalid => None,
            Got::Value(u) => {
                check_sink_url(&u, "authority", "\"https://login.microsoftonline.com\"")
                    .map_err(|msg| text_error(cx, t, "authority", &u, msg))
                    .ok()
            }
        };
        let scope = optional_text(cx, t, "scope", "https://monitor.azure.com//.default");
        let http = read_http(cx, t);
        Some(SinkKind::new(SentinelSinkConfig {
            endpoint: endpoint?,
            dcr_immutable_id: dcr_immutable_id?,
            stream: stream?,
            tenant_id: tenant_id?,
            client_id: client_id?,
            client_secret: client_secret?,
            authority: authority?,
            scope: scope?,
            layout: layout?,
            http: http?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: i64, payload: &str, created_at_ms: i64) -> BatchRecord {
        BatchRecord {
            seq,
            activity_id: format!("activity_{seq}"),
            created_at_ms,
            payload: payload.to_string(),
        }
    }

    #[test]
    fn rows_carry_the_declared_columns_and_the_activity_type() {
        let raw = rec(
            1,
            r#"{"id":"a","type":"claude_chat_created"}"#,
            1_778_400_000_123,
        );
        let v: serde_json::Value = serde_json::from_str(&row(&raw)).unwrap();
        assert_eq!(v["TimeGenerated"], "2026-05-10T08:00:00.123Z");
        assert_eq!(v["ActivityId"], "activity_1");
        assert_eq!(v["ActivityType"], "claude_chat_created");
        assert_eq!(v["Event"]["id"], "a");
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut declared: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
        declared.sort();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort();
        assert_eq!(keys_sorted, declared);
        let ocsf = rec(
            2,
            r#"{"class_uid":3005,"metadata":{"event_code":"user_deleted"}}"#,
            0,
        );
        let v: serde_json::Value = serde_json::from_str(&row(&ocsf)).unwrap();
        assert_eq!(v["ActivityType"], "user_deleted");
        // A payload without either field, or with a non-string type, still
        // makes a row.
        let odd = rec(3, r#"{"type":7}"#, 0);
        let v: serde_json::Value = serde_json::from_str(&row(&odd)).unwrap();
        assert_eq!(v["ActivityType"], "");
        assert_eq!(v["Event"]["type"], 7);
    }

    #[test]
    fn refresh_margin_is_a_tenth_within_bounds() {
        assert_eq!(
            refresh_margin(Duration::from_secs(3599)),
            Duration::from_millis(359_900)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(300)),
            Duration::from_secs(60)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(10)),
            Duration::from_secs(5)
        );
    }
}
