//! Sumo Logic hosted HTTP Logs source (`spec/sinks.md` section 3): NDJSON
//! bodies of at most 1 MB uncompressed POSTed to the source's URL, with the
//! `X-Sumo-*` metadata headers and optional gzip.
//!
//! The URL is the credential (its path holds the source's code), so it is
//! never logged or put in an error: messages say "the sumo URL". A 429 means
//! Sumo dropped the request's data, so it is a retry like any other.
//!
//! One batch may need several requests; the records Sumo accepted are
//! remembered until the batch is delivered, so a retry re-sends only the
//! rest.

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

use super::contract::{BatchProgress, BoxFuture, Destination, Outcome, Rejected};
use super::http;
use super::registry::{OpenContext, SinkSettings, SinkType, opened};
use crate::model::BatchRecord;
use crate::redact::Redactor;
use crate::sinks::settings::HttpSinkConfig;

/// At most this many uncompressed bytes per POST ("up to but not exceeding
/// 1MB of uncompressed data").
pub const MAX_REQUEST_BYTES: usize = 1_000_000;

pub struct SumoSink {
    client: reqwest::Client,
    url: SecretString,
    headers: HeaderMap,
    compression: bool,
    /// Records of the batch in progress that Sumo accepted.
    progress: BatchProgress,
}

/// One POST: its records and uncompressed NDJSON body.
#[derive(Debug)]
pub struct Request<'a> {
    pub records: Vec<&'a BatchRecord>,
    pub body: Vec<u8>,
}

/// A batch as Sumo requests, and the records too large to send at all.
#[derive(Debug)]
pub struct Encoded<'a> {
    pub requests: Vec<Request<'a>>,
    pub rejected: Vec<Rejected>,
}

impl SumoSink {
    pub fn new(config: &SumoSinkConfig) -> anyhow::Result<SumoSink> {
        let mut headers = HeaderMap::new();
        let fields = config
            .fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let values = [
            ("x-sumo-category", config.category.clone()),
            ("x-sumo-name", config.source_name.clone()),
            ("x-sumo-host", config.source_host.clone()),
            ("x-sumo-fields", (!fields.is_empty()).then_some(fields)),
        ];
        for (name, value) in values {
            if let Some(value) = value {
                let value = HeaderValue::from_str(&value).map_err(|_| {
                    anyhow::anyhow!(
                        "the value for {name} contains characters not allowed in an HTTP header; \
                         use printable ASCII"
                    )
                })?;
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        Ok(SumoSink {
            client: http::client(&config.http)?,
            url: config.url.clone(),
            headers,
            compression: config.http.compression,
            progress: BatchProgress::default(),
        })
    }

    /// Encodes records as NDJSON requests of at most [`MAX_REQUEST_BYTES`];
    /// a record larger than that alone is rejected, never truncated.
    pub fn encode<'a>(&self, records: impl IntoIterator<Item = &'a BatchRecord>) -> Encoded<'a> {
        let mut requests = Vec::new();
        let mut rejected = Vec::new();
        let mut body = Vec::new();
        let mut current: Vec<&'a BatchRecord> = Vec::new();
        for record in records {
            let len = record.payload.len() + 1;
            if len > MAX_REQUEST_BYTES {
                rejected.push(Rejected {
                    seq: record.seq,
                    activity_id: record.activity_id.clone(),
                    reason: format!(
                        "event of {len} bytes exceeds Sumo Logic's {MAX_REQUEST_BYTES}-byte request limit"
                    ),
                    response: String::new(),
                });
                continue;
            }
            if body.len() + len > MAX_REQUEST_BYTES {
                requests.push(Request {
                    records: std::mem::take(&mut current),
                    body: std::mem::take(&mut body),
                });
            }
            body.extend_from_slice(record.payload.as_bytes());
            body.push(b'\n');
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

    /// Sends one batch, skipping records accepted by an earlier attempt at
    /// the same batch.
    pub async fn send(&mut self, records: &[BatchRecord]) -> Outcome {
        self.progress.begin(records);
        let encoded = self.encode(self.progress.pending(records));
        for r in encoded.rejected {
            self.progress.rejected(r);
        }
        for request in &encoded.requests {
            let outcome = match self.post(&request.body).await {
                Ok(answer) => classify(answer.status, &answer.headers, &answer.text),
                Err(reason) => Outcome::Retry {
                    after: None,
                    reason,
                },
            };
            match outcome {
                Outcome::Delivered { .. } => self
                    .progress
                    .acknowledged_all(request.records.iter().copied()),
                other => return other,
            }
        }
        self.progress.finish()
    }

    /// POSTs one body; `Err` is a transport failure, described without the URL.
    async fn post(&self, body: &[u8]) -> Result<http::Answer, String> {
        let request = self
            .client
            .post(self.url.expose_secret())
            .headers(self.headers.clone());
        http::send_body(request, body, self.compression, "POST the sumo URL")
            .await
            .map_err(|e| format!("sending to the sumo URL: {e}"))
    }

    /// `claudit check --connect`: an empty POST, which Sumo answers like any
    /// other (200, or 401 for a wrong URL) and which holds no message to ingest.
    pub async fn healthcheck(&self) -> Result<String, String> {
        let answer = self.post(b"").await?;
        match classify(answer.status, &answer.headers, &answer.text) {
            Outcome::Delivered { .. } => {
                Ok("the sumo URL accepted an empty test request".to_string())
            }
            Outcome::Retry { reason, .. } | Outcome::Fatal { reason } => Err(reason),
        }
    }
}

/// Classifies a reply of an HTTP source (`spec/sinks.md` section 3), then by
/// the generic HTTP rules. No reason ever contains the URL.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> Outcome {
    let detail = format!("HTTP {}: {}", status.as_u16(), http::truncate(body, 512));
    match status.as_u16() {
        200..=299 => Outcome::delivered(),
        // Over the account's burst rate: Sumo dropped this request's data.
        429 => Outcome::Retry {
            after: http::retry_after(headers),
            reason: format!("{detail} (Sumo dropped the request's data; sending it again)"),
        },
        // Timed out while processing: part of it may be in Sumo already.
        408 => Outcome::Retry {
            after: http::retry_after(headers),
            reason: format!("{detail} (Sumo may have kept part of it; sending it all again)"),
        },
        401 | 403 | 404 => Outcome::Fatal {
            reason: format!(
                "{detail}; Sumo refused the sumo URL: copy the HTTP source's URL again \
                 (the source may have been deleted or its URL regenerated)"
            ),
        },
        _ => http::classify(status, headers, body),
    }
}

impl Destination for SumoSink {
    fn deliver<'a>(&'a mut self, records: &'a [BatchRecord]) -> BoxFuture<'a, Outcome> {
        Box::pin(self.send(records))
    }

    fn healthcheck(&mut self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(SumoSink::healthcheck(self))
    }
}

// ---- settings (type = "sumo") ----

/// `type = "sumo"`: a Sumo Logic hosted HTTP Logs source.
#[derive(Debug, Clone)]
pub struct SumoSinkConfig {
    /// The HTTP source URL. Its path holds the source's credential, so it is
    /// a secret: never printed, logged only as "the sumo URL".
    pub url: SecretString,
    /// `X-Sumo-Category` (source category override).
    pub category: Option<String>,
    /// `X-Sumo-Name` (source name override).
    pub source_name: Option<String>,
    /// `X-Sumo-Host` (source host override).
    pub source_host: Option<String>,
    /// `X-Sumo-Fields` (`k1=v1,k2=v2`), in file order.
    pub fields: Vec<(String, String)>,
    pub http: HttpSinkConfig,
}

/// `type = "sumo"` in the registry (`sinks::registry`).
pub const TYPE: SinkType = SinkType {
    name: "sumo",
    batch: (1000, 1_000_000, Duration::from_secs(1)),
    raw_only: false,
    read: keys::read_sumo_sink,
};

impl SinkSettings for SumoSinkConfig {
    fn add_secrets(&self, redactor: &mut Redactor) {
        redactor.add_secret_url(self.url.expose_secret());
    }

    fn open<'a>(
        &'a self,
        _cx: OpenContext<'a>,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn Destination>>> {
        opened(SumoSink::new(self))
    }
}

/// The keys of `type = "sumo"`: every problem is reported, with its line
/// and the fix.
mod keys {
    use super::*;
    use crate::sinks::settings::SinkKind;
    use crate::sinks::settings::*;
    use crate::toml_reader::keys::*;
    use crate::toml_reader::{Ctx, Table};

    /// The keys of `type = "sumo"`.
    pub(super) fn read_sumo_sink(cx: &mut Ctx, t: &mut Table) -> Option<SinkKind> {
        let url = t.secret(cx, "url", "SUMO_HTTP_SOURCE_URL", "/run/secrets/sumo_url");
        let url = url.and_then(|url| {
            use secrecy::ExposeSecret;
            match check_sumo_url(url.expose_secret()) {
                Ok(()) => Some(url),
                Err(msg) => {
                    // The URL is the credential: the message never shows it.
                    let line = t.line_of_key(cx, "url");
                    t_error(cx, t, "url", line, msg);
                    None
                }
            }
        });
        let category = optional_label(cx, t, "category");
        let source_name = optional_label(cx, t, "source_name");
        let source_host = optional_label(cx, t, "source_host");
        // X-Sumo-Fields is "k1=v1,k2=v2": "," and "=" cannot be escaped.
        let fields = read_string_fields(cx, t, |s| {
            s.contains([',', '=']).then(|| {
                "must not contain \",\" or \"=\" (X-Sumo-Fields is k1=v1,k2=v2)".to_string()
            })
        });
        let http = read_http(cx, t);
        Some(SinkKind::new(SumoSinkConfig {
            url: url?,
            category: category?,
            source_name: source_name?,
            source_host: source_host?,
            fields: fields?,
            http: http?,
        }))
    }

    /// What is wrong with a Sumo HTTP source URL, in words that never quote it.
    fn check_sumo_url(url: &str) -> Result<(), String> {
        let fix = "copy the URL again from the HTTP source's settings in Sumo Logic \
                   (https://collectors.<deployment>.sumologic.com/receiver/v1/http/...)";
        let parsed = reqwest::Url::parse(url.trim())
            .map_err(|_| format!("the sumo URL is not a valid URL; {fix}"))?;
        let local = matches!(
            parsed.host_str().unwrap_or_default(),
            "127.0.0.1" | "localhost" | "[::1]"
        );
        match parsed.scheme() {
            "https" => Ok(()),
            "http" if local => Ok(()),
            _ => Err(format!(
                "the sumo URL must use https (it carries the source's credential); {fix}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let h = HeaderMap::new();
        let c = |s: u16| classify(StatusCode::from_u16(s).unwrap(), &h, "");
        assert_eq!(c(200), Outcome::delivered());
        for s in [408, 429, 500, 503, 504] {
            assert!(matches!(c(s), Outcome::Retry { .. }), "{s}");
        }
        for s in [400, 401, 403, 404, 501] {
            assert!(matches!(c(s), Outcome::Fatal { .. }), "{s}");
        }
    }
}
