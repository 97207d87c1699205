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

use std::collections::HashSet;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use super::http::{self, Outcome, Rejected};
use crate::config::SumoSinkConfig;
use crate::store::BatchRecord;

/// At most this many uncompressed bytes per POST ("up to but not exceeding
/// 1MB of uncompressed data").
pub const MAX_REQUEST_BYTES: usize = 1_000_000;

pub struct SumoSink {
    client: reqwest::Client,
    url: SecretString,
    headers: HeaderMap,
    compression: bool,
    /// Records of the batch in progress that Sumo accepted.
    accepted: HashSet<i64>,
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
            accepted: HashSet::new(),
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
        let in_batch: HashSet<i64> = records.iter().map(|r| r.seq).collect();
        self.accepted.retain(|s| in_batch.contains(s));
        let encoded = self.encode(records.iter().filter(|r| !self.accepted.contains(&r.seq)));
        for request in &encoded.requests {
            let outcome = match self.post(&request.body).await {
                Ok(answer) => classify(answer.status, &answer.headers, &answer.text),
                Err(reason) => Outcome::Retry {
                    after: None,
                    reason,
                },
            };
            match outcome {
                Outcome::Delivered { .. } => {
                    self.accepted.extend(request.records.iter().map(|r| r.seq))
                }
                other => return other,
            }
        }
        self.accepted.clear();
        Outcome::Delivered {
            rejected: encoded.rejected,
        }
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
