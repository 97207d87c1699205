//! The Datadog sink: Logs intake HTTP API v2 (`POST /api/v2/logs`,
//! `spec/sinks.md` section 2).
//!
//! Each event becomes one log item:
//! `{"ddsource", "service", "ddtags", "hostname", "timestamp", "message"}`,
//! where `message` is the event (OCSF or raw activity) as a JSON string;
//! Datadog parses a JSON message into attributes, and with
//! `ddsource = "claude-compliance-logs"` and `format = "raw"` its own Claude
//! Compliance pipeline applies. `timestamp` is the activity's `created_at`
//! in epoch milliseconds, so the log lands at the time it happened.
//!
//! Limits, enforced before sending: 1000 items and 5 MB (uncompressed) per
//! request, 1 MB per item. Datadog silently truncates a larger item and
//! answers 202, so such an event is dead-lettered here instead. Events
//! older than 18 hours are sent, counted and warned about: Datadog does not
//! index them normally.

use std::collections::VecDeque;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use tracing::warn;

use super::contract::{ArrayPacker, BatchProgress, BoxFuture, Destination, Outcome, Rejected};
use super::http;
use super::registry::{OpenContext, SinkSettings, SinkType, opened};
use crate::model::BatchRecord;
use crate::redact::Redactor;
use crate::sinks::settings::HttpSinkConfig;

/// At most this many log items per request.
pub const MAX_ITEMS_PER_REQUEST: usize = 1000;
/// At most this many uncompressed bytes per request (the JSON array).
pub const MAX_REQUEST_BYTES: usize = 5_000_000;
/// At most this many bytes per log item; Datadog truncates larger ones.
pub const MAX_ITEM_BYTES: usize = 1_000_000;
/// The header that carries the API key.
const API_KEY_HEADER: &str = "DD-API-KEY";
/// Datadog does not index logs whose timestamp is older than this.
pub const STALE_AFTER_MS: i64 = 18 * 3600 * 1000;

pub struct DatadogSink {
    client: reqwest::Client,
    intake_url: String,
    validate_url: String,
    /// The `DD-API-KEY` header value, marked sensitive so it never shows in
    /// `Debug` output (and HTTP/2 never indexes it).
    api_key: HeaderValue,
    compression: bool,
    /// The part every item shares: `{"ddsource":..,"service":..,` etc.
    item_prefix: String,
    progress: BatchProgress,
    /// Counts stale events (`claudit_sink_stale_events_total` in the sink task).
    stale_events: Counter,
}

/// One request's worth of a batch: a JSON array of log items.
pub type Request<'r> = super::contract::ArrayRequest<'r>;
/// A batch encoded for the intake.
pub type Encoded<'r> = super::contract::ArrayBatch<'r>;

impl DatadogSink {
    pub fn new(config: &DatadogSinkConfig) -> anyhow::Result<DatadogSink> {
        let mut prefix = String::from("{");
        let mut field = |key: &str, value: &str| {
            prefix.push_str(&serde_json::to_string(key).expect("a string serializes"));
            prefix.push(':');
            prefix.push_str(&serde_json::to_string(value).expect("a string serializes"));
            prefix.push(',');
        };
        field("ddsource", &config.ddsource);
        field("service", &config.service);
        if !config.ddtags.is_empty() {
            field("ddtags", &config.ddtags);
        }
        if let Some(host) = &config.hostname {
            field("hostname", host);
        }
        let mut api_key =
            HeaderValue::from_str(config.api_key.expose_secret().trim()).map_err(|_| {
                anyhow::anyhow!(
                    "the Datadog api_key contains characters not allowed in an HTTP header; \
                     copy the key (32 hexadecimal characters) again"
                )
            })?;
        api_key.set_sensitive(true);
        Ok(DatadogSink {
            client: http::client(&config.http)?,
            intake_url: config.intake_url.clone(),
            validate_url: config.validate_url.clone(),
            api_key,
            compression: config.http.compression,
            item_prefix: prefix,
            progress: BatchProgress::default(),
            stale_events: Counter::default(),
        })
    }

    /// Events sent with a timestamp older than 18 hours, since start (for
    /// metrics).
    pub fn stale_events(&self) -> Counter {
        self.stale_events.clone()
    }

    /// Counts stale events in `counter` (the sink's own metric).
    pub fn counting_stale_events_in(mut self, counter: Counter) -> DatadogSink {
        self.stale_events = counter;
        self
    }

    /// Encodes records into requests within the intake's limits; `now_ms`
    /// decides which events are stale.
    pub fn encode<'r>(&self, records: &[&'r BatchRecord], now_ms: i64) -> Encoded<'r> {
        let mut rejected = Vec::new();
        let mut stale = 0;
        let mut packer = ArrayPacker::new(MAX_REQUEST_BYTES, MAX_ITEMS_PER_REQUEST);
        for &record in records {
            if now_ms - record.created_at_ms > STALE_AFTER_MS {
                stale += 1;
            }
            let item = self.item(record);
            if item.len() > MAX_ITEM_BYTES {
                rejected.push(Rejected {
                    seq: record.seq,
                    activity_id: record.activity_id.clone(),
                    reason: format!(
                        "the log item is {} bytes, over Datadog's limit of {MAX_ITEM_BYTES} bytes per \
                         log (Datadog would truncate it); not sent",
                        item.len()
                    ),
                    response: String::new(),
                });
                continue;
            }
            packer.push(record, item.into());
        }
        Encoded {
            requests: packer.finish(),
            rejected,
            stale,
        }
    }

    /// One log item: the shared fields, the timestamp, and the event as the
    /// `message` string.
    fn item(&self, record: &BatchRecord) -> String {
        let mut item =
            String::with_capacity(self.item_prefix.len() + record.payload.len() * 9 / 8 + 48);
        item.push_str(&self.item_prefix);
        item.push_str("\"timestamp\":");
        item.push_str(&record.created_at_ms.to_string());
        item.push_str(",\"message\":");
        let mut bytes = item.into_bytes();
        push_json_string(&mut bytes, &record.payload);
        bytes.push(b'}');
        String::from_utf8(bytes).expect("JSON text is UTF-8")
    }

    /// Sends one batch, as several requests when the limits ask for it.
    pub async fn send(&mut self, records: &[BatchRecord]) -> Outcome {
        let first_attempt = self.progress.begin(records);
        let pending = self.progress.pending(records);
        let encoded = self.encode(&pending, chrono::Utc::now().timestamp_millis());
        if first_attempt && encoded.stale > 0 {
            self.stale_events.inc_by(encoded.stale as u64);
            warn!(
                count = encoded.stale,
                "events older than 18 hours sent to Datadog: Datadog does not index logs that old \
                 normally, so they may not be searchable; catch up sooner or use a file sink for \
                 the backlog"
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
            } = match self.post(&request).await {
                Ok(answer) => answer,
                Err(e) => {
                    return Outcome::Retry {
                        after: None,
                        reason: format!("sending to {}: {e}", self.intake_url),
                    };
                }
            };
            match status.as_u16() {
                200..=299 => {
                    for r in &request.records {
                        self.progress.acknowledged(r.seq);
                    }
                }
                // Our own limits keep requests under 5 MB; a proxy may have
                // a lower one.
                413 => request.halve_or_reject(&mut queue, &mut self.progress, "the intake", &body),
                // The body is a JSON array we built, so a 400 is not about
                // one event: a proxy or the intake refuses the request shape.
                // Stop and alert rather than dead-letter every event.
                400 => {
                    return Outcome::Fatal {
                        reason: format!(
                            "HTTP 400 from {}: {}; the intake refused the request format (a proxy \
                             in between?)",
                            self.intake_url,
                            http::truncate(&body, 512)
                        ),
                    };
                }
                401 | 403 => {
                    return Outcome::Fatal {
                        reason: format!(
                            "HTTP {} from {}: {}; the API key is missing or not valid for this \
                             Datadog site: check api_key and site",
                            status.as_u16(),
                            self.intake_url,
                            http::truncate(&body, 512)
                        ),
                    };
                }
                _ => return http::classify(status, &headers, &body),
            }
        }
        self.progress.finish()
    }

    async fn post(&self, request: &Request<'_>) -> Result<http::Answer, String> {
        let body = request.body();
        let builder = self
            .client
            .post(&self.intake_url)
            .header(API_KEY_HEADER, self.api_key.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("DD-EVP-ORIGIN", "claudit")
            .header("DD-EVP-ORIGIN-VERSION", env!("CARGO_PKG_VERSION"));
        http::send_body(builder, &body, self.compression, "POST /api/v2/logs").await
    }

    /// `GET /api/v1/validate`: is the API key valid for this site?
    pub async fn healthcheck(&self) -> Result<String, String> {
        let response = self
            .client
            .get(&self.validate_url)
            .header(API_KEY_HEADER, self.api_key.clone())
            .send()
            .await
            .map_err(|e| format!("cannot reach {}: {}", self.validate_url, http::describe(e)))?;
        let answer = http::read_answer(response, http::MAX_ANSWER_BYTES, "GET /api/v1/validate")
            .await
            .map_err(|e| format!("{}: {e}", self.validate_url))?;
        let (status, body) = (answer.status.as_u16(), answer.text);
        match status {
            200..=299 => Ok(format!(
                "API key accepted by {}; logs go to {}",
                self.validate_url, self.intake_url
            )),
            401 | 403 => Err(format!(
                "{} refused the API key (HTTP {status}); check api_key, and that site matches the \
                 Datadog site the key belongs to",
                self.validate_url
            )),
            _ => Err(format!(
                "{} answered HTTP {status}: {}",
                self.validate_url,
                http::truncate(&body, 256)
            )),
        }
    }
}

/// Appends `text` as a JSON string. Copies runs of plain bytes at once: an
/// event is mostly plain text with many quotes, and this is the encoder's
/// hot loop.
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + bytes.len() / 8 + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escaped);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

impl Destination for DatadogSink {
    fn deliver<'a>(&'a mut self, records: &'a [BatchRecord]) -> BoxFuture<'a, Outcome> {
        Box::pin(self.send(records))
    }

    fn healthcheck(&mut self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(DatadogSink::healthcheck(self))
    }
}

// ---- settings (type = "datadog") ----

/// `type = "datadog"`: the Datadog Logs intake (HTTP API v2).
#[derive(Debug, Clone)]
pub struct DatadogSinkConfig {
    /// Where logs go: `https://http-intake.logs.<site>/api/v2/logs`, or
    /// `<url>/api/v2/logs` when `url` is set.
    pub intake_url: String,
    /// The API-key check: `https://api.<site>/api/v1/validate`, or
    /// `<url>/api/v1/validate` when `url` is set.
    pub validate_url: String,
    /// `DD-API-KEY` (`api_key` / `api_key_file`).
    pub api_key: SecretString,
    /// `ddsource`; default "claude-compliance-logs" (Datadog's own Claude
    /// Compliance pipeline keys on it).
    pub ddsource: String,
    /// `service`; default "claudit".
    pub service: String,
    /// `ddtags`, comma-separated `key:value`; empty = none sent.
    pub ddtags: String,
    /// `hostname`; `None` = not sent.
    pub hostname: Option<String>,
    pub http: HttpSinkConfig,
}

/// `type = "datadog"` in the registry (`sinks::registry`).
pub const TYPE: SinkType = SinkType {
    name: "datadog",
    batch: (1000, 4_000_000, Duration::from_secs(1)),
    raw_only: false,
    read: keys::read_datadog_sink,
};

impl SinkSettings for DatadogSinkConfig {
    fn add_secrets(&self, redactor: &mut Redactor) {
        redactor.add(self.api_key.expose_secret());
    }

    fn open<'a>(
        &'a self,
        cx: OpenContext<'a>,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn Destination>>> {
        opened(
            DatadogSink::new(self)
                .map(|sink| sink.counting_stale_events_in(cx.counters.stale_events.clone())),
        )
    }
}

/// The keys of `type = "datadog"`: every problem is reported, with its line
/// and the fix.
mod keys {
    use super::*;
    use crate::sinks::settings::SinkKind;
    use crate::sinks::settings::*;
    use crate::toml_reader::keys::*;
    use crate::toml_reader::{Ctx, Got, Table};

    /// Datadog sites and their domain (`DD_SITE`); intake is
    /// `http-intake.logs.<domain>`, the API `api.<domain>`.
    const DATADOG_SITES: &[(&str, &str)] = &[
        ("US1", "datadoghq.com"),
        ("US3", "us3.datadoghq.com"),
        ("US5", "us5.datadoghq.com"),
        ("EU1", "datadoghq.eu"),
        ("AP1", "ap1.datadoghq.com"),
        ("AP2", "ap2.datadoghq.com"),
        ("UK1", "uk1.datadoghq.com"),
        ("US1-FED", "ddog-gov.com"),
        ("US2-FED", "us2.ddog-gov.com"),
    ];

    /// The keys of `type = "datadog"`.
    pub(super) fn read_datadog_sink(cx: &mut Ctx, t: &mut Table) -> Option<SinkKind> {
        let site = t.text(cx, "site");
        let url = t.text(cx, "url");
        let example = "site = \"US1\" (or US3, US5, EU1, AP1, AP2, UK1, US1-FED, US2-FED)";
        let base: Option<(String, String)> = match (site, url) {
            (Got::Invalid, _) | (_, Got::Invalid) => None,
            (Got::Value(s), Got::Value(_)) => {
                text_error(
                    cx,
                    t,
                    "site",
                    &s,
                    "both site and url are set; keep exactly one (url is for a proxy or a test server)"
                        .to_string(),
                );
                None
            }
            (Got::Absent, Got::Absent) => {
                let msg = format!("missing; add {example}, or url = \"https://...\" for a proxy");
                t_error(cx, t, "site", t.line, msg);
                None
            }
            (Got::Value(s), Got::Absent) => {
                let wanted = s.value.trim();
                let found = DATADOG_SITES.iter().find(|(code, domain)| {
                    code.eq_ignore_ascii_case(wanted) || domain.eq_ignore_ascii_case(wanted)
                });
                match found {
                    Some((_, domain)) => Some((
                        format!("https://http-intake.logs.{domain}/api/v2/logs"),
                        format!("https://api.{domain}/api/v1/validate"),
                    )),
                    None => {
                        let msg = format!(
                            "unknown Datadog site {}; write {example}; the site is in your Datadog URL \
                             (app.datadoghq.eu is EU1)",
                            s.shown()
                        );
                        text_error(cx, t, "site", &s, msg);
                        None
                    }
                }
            }
            (Got::Absent, Got::Value(u)) => {
                match check_sink_url(&u, "url", "\"https://logs-proxy.example.com\"") {
                    Ok(base) => Some((
                        format!("{base}/api/v2/logs"),
                        format!("{base}/api/v1/validate"),
                    )),
                    Err(msg) => {
                        text_error(cx, t, "url", &u, msg);
                        None
                    }
                }
            }
        };
        let api_key = t.header_secret(cx, "api_key", "DD_API_KEY", "/run/secrets/datadog_api_key");
        let ddsource = optional_text(cx, t, "ddsource", "claude-compliance-logs");
        let service = optional_text(cx, t, "service", "claudit");
        let ddtags = optional_text(cx, t, "ddtags", "");
        let hostname = optional_text(cx, t, "hostname", "");
        let http = read_http(cx, t);
        let (intake_url, validate_url) = base?;
        Some(SinkKind::new(DatadogSinkConfig {
            intake_url,
            validate_url,
            api_key: api_key?,
            ddsource: ddsource?,
            service: service?,
            ddtags: ddtags?,
            hostname: Some(hostname?).filter(|h| !h.is_empty()),
            http: http?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HttpSinkConfig;
    use secrecy::SecretString;
    use std::time::Duration;

    fn sink() -> DatadogSink {
        DatadogSink::new(&DatadogSinkConfig {
            intake_url: "http://127.0.0.1:9/api/v2/logs".into(),
            validate_url: "http://127.0.0.1:9/api/v1/validate".into(),
            api_key: SecretString::from("k"),
            ddsource: "claude-compliance-logs".into(),
            service: "claudit".into(),
            ddtags: "env:test".into(),
            hostname: Some("h\"1".into()),
            http: HttpSinkConfig {
                tls_ca_file: None,
                connect_timeout: Duration::from_secs(1),
                request_timeout: Duration::from_secs(1),
                compression: false,
            },
        })
        .unwrap()
    }

    fn rec(seq: i64, payload: String, created_at_ms: i64) -> BatchRecord {
        BatchRecord {
            seq,
            activity_id: format!("activity_{seq}"),
            created_at_ms,
            payload,
        }
    }

    #[test]
    fn an_item_carries_the_event_as_a_json_string_message() {
        let s = sink();
        let r = rec(1, r#"{"id":"a","type":"x"}"#.into(), 1_700_000_000_123);
        let item: serde_json::Value = serde_json::from_str(&s.item(&r)).unwrap();
        assert_eq!(
            item,
            serde_json::json!({
                "ddsource": "claude-compliance-logs",
                "service": "claudit",
                "ddtags": "env:test",
                "hostname": "h\"1",
                "timestamp": 1_700_000_000_123i64,
                "message": r#"{"id":"a","type":"x"}"#,
            })
        );
    }

    #[test]
    fn encoding_splits_on_count_and_bytes_and_rejects_oversize_items() {
        let s = sink();
        let now = 10 * STALE_AFTER_MS;
        // 2500 small events: 1000 + 1000 + 500.
        let small: Vec<_> = (0..2500)
            .map(|i| rec(i, format!(r#"{{"n":{i}}}"#), now))
            .collect();
        let refs: Vec<_> = small.iter().collect();
        let e = s.encode(&refs, now);
        let sizes: Vec<_> = e.requests.iter().map(|r| r.items.len()).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        assert_eq!(e.stale, 0);
        // 600 KB events: eight per request stay under 5 MB; one 1.2 MB event
        // is rejected; events stay in order.
        let big = "x".repeat(600_000);
        let mut records: Vec<_> = (0..20)
            .map(|i| rec(i, format!(r#"{{"b":"{big}"}}"#), now - STALE_AFTER_MS - 1))
            .collect();
        records[5].payload = format!(r#"{{"b":"{}"}}"#, "y".repeat(1_200_000));
        let refs: Vec<_> = records.iter().collect();
        let e = s.encode(&refs, now);
        assert_eq!(e.rejected.len(), 1);
        assert_eq!(e.rejected[0].seq, 5);
        assert!(e.rejected[0].reason.contains("1000000"));
        assert_eq!(e.stale, 20);
        let mut seqs = Vec::new();
        for r in &e.requests {
            assert!(r.body().len() <= MAX_REQUEST_BYTES);
            let parsed: Vec<serde_json::Value> = serde_json::from_slice(&r.body()).unwrap();
            assert_eq!(parsed.len(), r.items.len());
            seqs.extend(r.records.iter().map(|r| r.seq));
        }
        let expected: Vec<i64> = (0..20).filter(|&i| i != 5).collect();
        assert_eq!(seqs, expected);
        assert_eq!(e.requests[0].items.len(), 8);
    }

    #[test]
    fn strings_are_escaped_like_serde_json() {
        for text in [
            "plain",
            "q\"uote\\back",
            "ctl\u{1}\n\r\t\u{1f}",
            "héllo €",
            "",
        ] {
            let mut out = Vec::new();
            push_json_string(&mut out, text);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(text).unwrap()
            );
        }
    }

    #[test]
    fn an_item_of_exactly_the_limit_is_sent() {
        let s = sink();
        let probe = s.item(&rec(1, "\"\"".into(), 5));
        // A JSON string payload grows by its escaping; find a size that
        // lands exactly on the limit.
        let overhead = probe.len() - "\"\\\"\\\"\"".len();
        let payload = format!("\"{}\"", "a".repeat(MAX_ITEM_BYTES - overhead - 6));
        let r = rec(1, payload, 5);
        assert_eq!(s.item(&r).len(), MAX_ITEM_BYTES);
        let e = s.encode(&[&r], 5);
        assert!(e.rejected.is_empty());
        assert_eq!(e.requests.len(), 1);
    }
}
