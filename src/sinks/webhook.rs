//! Webhook: batches of events POSTed as a JSON array over HTTPS, signed the
//! Standard Webhooks way (v1, <https://www.standardwebhooks.com/>), for
//! pipelines glued together with HTTP endpoints.
//!
//! Every request carries
//!
//! - `webhook-id`: `<id_prefix>-<first seq>-<last seq>`, the journal
//!   sequences of the first and last event in the body. It stays the same
//!   when the request is sent again (a retry after a 5xx, a timeout, a lost
//!   answer), so a receiver deduplicates on it;
//! - `webhook-timestamp`: the time of this attempt, in Unix seconds
//!   (receivers refuse one more than a few minutes off, against replays);
//! - `webhook-signature`: `v1,<base64 HMAC-SHA256 of
//!   "<webhook-id>.<webhook-timestamp>.<body>">` under the key of the
//!   `whsec_` secret (base64 after the prefix).
//!
//! The signature covers the body as sent before any gzip (`compression`,
//! off by default): a receiver verifies the JSON it parses.
//!
//! HMAC-SHA256 comes from RustCrypto's `hmac` and `sha2`: the one Rust
//! crate of the Standard Webhooks project has had a single release (2024)
//! and would add a second `base64` and the `time` crate for fifteen lines.
//! The signatures are checked against the specification's published example
//! here and against the project's Python library in the integration tests.
//!
//! Responses are classified like the other HTTP sinks: 2xx delivered; 408,
//! 429 and 5xx (not 501) retried, after `Retry-After` when given; 413 splits
//! the request (a single event refused as too large is dead-lettered);
//! 401, 403 and other 4xx stop the sink with the answer, nothing discarded.
//! The URL may carry a credential (many endpoints are secret URLs), so it is
//! never logged: messages say "the webhook URL".

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use secrecy::{ExposeSecret as _, SecretBox, SecretString};
use sha2::Sha256;

use super::contract::{ArrayPacker, ArrayRequest, BoxFuture, Destination, Outcome, Rejected};
use super::http;
use super::registry::{OpenContext, SinkSettings, SinkType, opened};
use crate::model::BatchRecord;
use crate::redact::Redactor;
use crate::sinks::settings::{HttpSinkConfig, SinkKind};

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// A signing key's length in bytes, as the specification recommends.
pub const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// `type = "webhook"`.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The endpoint. It can hold a credential: never printed.
    pub url: SecretString,
    /// `whsec_<base64 key>`.
    pub secret: SecretString,
    /// The start of every `webhook-id`; distinct per daemon and sink when
    /// several send to one receiver.
    pub id_prefix: String,
    /// The largest request body (uncompressed); a batch above it is split.
    pub max_request_bytes: usize,
    pub http: HttpSinkConfig,
}

/// The key of a `whsec_` secret, or what is wrong with it (never quoting it).
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let fix = "write the secret as whsec_ followed by the base64 of 24 to 64 random bytes, \
               e.g. the output of: echo \"whsec_$(openssl rand -base64 32)\"";
    let Some(encoded) = secret.trim().strip_prefix(SECRET_PREFIX) else {
        return Err(format!(
            "the secret does not start with {SECRET_PREFIX}; {fix}"
        ));
    };
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| format!("the secret is not base64 after {SECRET_PREFIX}; {fix}"))?;
    if !KEY_BYTES.contains(&key.len()) {
        return Err(format!(
            "the secret's key is {} bytes; it must be {} to {}; {fix}",
            key.len(),
            KEY_BYTES.start(),
            KEY_BYTES.end()
        ));
    }
    Ok(key)
}

/// The `webhook-signature` value of one request.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-id` of a request carrying the events `first..=last`.
pub fn message_id(prefix: &str, first: i64, last: i64) -> String {
    format!("{prefix}-{first}-{last}")
}

/// One request: its records, in order, the body a JSON array of their
/// payloads as they are.
type Request<'r> = ArrayRequest<'r>;

pub struct WebhookSink {
    client: reqwest::Client,
    url: SecretString,
    key: SecretBox<Vec<u8>>,
    id_prefix: String,
    max_request_bytes: usize,
    compression: bool,
    /// The requests a failed attempt at the current batch planned, by
    /// their (first, last) seq: a retry sends the same records under the
    /// same `webhook-id`, even when the batch has grown since.
    planned: Vec<(i64, i64)>,
    /// Requests of the current batch the receiver acknowledged.
    acknowledged: HashSet<(i64, i64)>,
}

impl WebhookSink {
    pub fn new(config: &WebhookConfig) -> anyhow::Result<WebhookSink> {
        let key = decode_secret(config.secret.expose_secret()).map_err(anyhow::Error::msg)?;
        Ok(WebhookSink {
            client: http::client(&config.http)?,
            url: config.url.clone(),
            key: SecretBox::new(Box::new(key)),
            id_prefix: config.id_prefix.clone(),
            max_request_bytes: config.max_request_bytes,
            compression: config.http.compression,
            planned: Vec::new(),
            acknowledged: HashSet::new(),
        })
    }

    /// The requests for `records`: first the ones a failed attempt planned
    /// (same records, same id), then the rest in bodies of at most
    /// `max_request_bytes`. An event larger than that alone is rejected.
    fn plan<'r>(&self, records: &'r [BatchRecord]) -> (VecDeque<Request<'r>>, Vec<Rejected>) {
        let mut rejected = Vec::new();
        let mut sendable = Vec::new();
        for r in records {
            // `[` + event + `]`
            let len = r.payload.len() + 2;
            if len > self.max_request_bytes {
                rejected.push(Rejected {
                    seq: r.seq,
                    activity_id: r.activity_id.clone(),
                    reason: format!(
                        "event of {} bytes does not fit the webhook's max_request_bytes ({}); \
                         raise max_request_bytes (and the receiver's body limit) to send it, \
                         then replay it",
                        r.payload.len(),
                        self.max_request_bytes
                    ),
                    response: String::new(),
                });
            } else {
                sendable.push(r);
            }
        }
        let mut requests = VecDeque::new();
        let carried_to = self.planned.last().map(|&(_, last)| last);
        for &(first, last) in &self.planned {
            let mut request = Request::default();
            for r in sendable.iter().filter(|r| (first..=last).contains(&r.seq)) {
                request.records.push(r);
                request.items.push(r.payload.as_str().into());
            }
            if !request.records.is_empty() {
                requests.push_back(request);
            }
        }
        let mut packer = ArrayPacker::new(self.max_request_bytes, usize::MAX);
        for r in sendable
            .into_iter()
            .filter(|r| carried_to.is_none_or(|to| r.seq > to))
        {
            packer.push(r, r.payload.as_str().into());
        }
        requests.extend(packer.finish());
        (requests, rejected)
    }

    /// Sends one batch; on a failure, remembers which requests were
    /// planned and which acknowledged, for the retry.
    pub async fn send(&mut self, records: &[BatchRecord]) -> Outcome {
        // Another batch (the cursor moved, or a restart of the task): start over.
        let first = records.first().map(|r| r.seq);
        if self.planned.first().map(|&(f, _)| f) != first {
            self.planned.clear();
            self.acknowledged.clear();
        }
        let (mut queue, mut rejected) = self.plan(records);
        self.planned = queue.iter().map(Request::seq_range).collect();
        while let Some(request) = queue.pop_front() {
            let range = request.seq_range();
            if self.acknowledged.contains(&range) {
                continue;
            }
            let answer = match self.post(&request, range).await {
                Ok(answer) => answer,
                Err(reason) => {
                    return Outcome::Retry {
                        after: None,
                        reason,
                    };
                }
            };
            if answer.status.as_u16() == 413 {
                // A limit lower than ours (a proxy): halves, with their own ids.
                let index = self.planned.iter().position(|&p| p == range);
                match request.halve("the webhook receiver", &answer.text) {
                    Ok((first, second)) => {
                        if let Some(i) = index {
                            self.planned
                                .splice(i..=i, [first.seq_range(), second.seq_range()]);
                        }
                        queue.push_front(second);
                        queue.push_front(first);
                    }
                    Err(too_large) => {
                        if let Some(i) = index {
                            self.planned.remove(i);
                        }
                        rejected.push(too_large);
                    }
                }
                continue;
            }
            match http::classify(answer.status, &answer.headers, &answer.text) {
                Outcome::Delivered { .. } => {
                    self.acknowledged.insert(range);
                }
                Outcome::Retry { after, reason } => {
                    return Outcome::Retry {
                        after,
                        reason: format!("the webhook URL answered {reason}"),
                    };
                }
                Outcome::Fatal { reason } => {
                    return Outcome::Fatal {
                        reason: format!(
                            "the webhook URL refused the request: {reason}; check the URL and \
                             that the receiver accepts Standard Webhooks JSON batches"
                        ),
                    };
                }
            }
        }
        self.planned.clear();
        self.acknowledged.clear();
        rejected.sort_by_key(|r| r.seq);
        Outcome::Delivered { rejected }
    }

    async fn post(
        &self,
        request: &Request<'_>,
        (first, last): (i64, i64),
    ) -> Result<http::Answer, String> {
        let id = message_id(&self.id_prefix, first, last);
        self.post_body(&id, &request.body()).await
    }

    /// POSTs `body` signed under `id`, now. `Err` is a transport failure,
    /// described without the URL.
    async fn post_body(&self, id: &str, body: &[u8]) -> Result<http::Answer, String> {
        let timestamp = chrono::Utc::now().timestamp();
        let signature = signature(self.key.expose_secret(), id, timestamp, body);
        let header = |v: &str| {
            HeaderValue::from_str(v).map_err(|_| format!("{v:?} cannot be an HTTP header value"))
        };
        let request = self
            .client
            .post(self.url.expose_secret())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", header(id)?)
            .header("webhook-timestamp", header(&timestamp.to_string())?)
            .header("webhook-signature", header(&signature)?);
        http::send_body(request, body, self.compression, "POST the webhook URL")
            .await
            .map_err(|e| format!("sending to the webhook URL: {e}"))
    }

    /// `claudit check --connect`: a signed empty batch (`[]`), with the id
    /// `<id_prefix>-check-<unix time>`, which a receiver stores nothing for.
    pub async fn healthcheck(&self) -> Result<String, String> {
        let id = format!(
            "{}-check-{}",
            self.id_prefix,
            chrono::Utc::now().timestamp()
        );
        let answer = self.post_body(&id, b"[]").await?;
        match http::classify(answer.status, &answer.headers, &answer.text) {
            Outcome::Delivered { .. } => Ok(format!(
                "the webhook URL accepted a signed empty batch (HTTP {})",
                answer.status.as_u16()
            )),
            Outcome::Retry { reason, .. } | Outcome::Fatal { reason } => {
                Err(format!("the webhook URL answered {reason}"))
            }
        }
    }
}

impl Destination for WebhookSink {
    fn deliver<'a>(&'a mut self, records: &'a [BatchRecord]) -> BoxFuture<'a, Outcome> {
        Box::pin(self.send(records))
    }

    fn healthcheck(&mut self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(WebhookSink::healthcheck(self))
    }
}

// ---- settings (type = "webhook") ----

/// `type = "webhook"` in the registry (`sinks::registry`).
pub const TYPE: SinkType = SinkType {
    name: "webhook",
    batch: (1000, 1_000_000, Duration::from_secs(1)),
    raw_only: false,
    read: keys::read_webhook_sink,
};

impl SinkSettings for WebhookConfig {
    /// Findings and directory entries are numbered apart from the
    /// activities: their `webhook-id` starts `<id_prefix>-findings` or
    /// `<id_prefix>-directory`, so a receiver deduplicating by id never
    /// takes one for an activity of the same seq.
    fn for_stream(&self, suffix: &str) -> Option<SinkKind> {
        let mut stream = self.clone();
        stream.id_prefix = format!("{}-{suffix}", self.id_prefix);
        Some(SinkKind::new(stream))
    }

    fn add_secrets(&self, redactor: &mut Redactor) {
        let secret = self.secret.expose_secret();
        redactor.add(secret);
        if let Some(key) = secret.trim().strip_prefix(SECRET_PREFIX) {
            redactor.add_base64_credential(key);
        }
        redactor.add_secret_url(self.url.expose_secret());
    }

    fn open<'a>(
        &'a self,
        cx: OpenContext<'a>,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn Destination>>> {
        opened(WebhookSink::new(self).map_err(|e| anyhow::anyhow!("sink {}: {e:#}", cx.sink.name)))
    }
}

/// The keys of `type = "webhook"`: every problem is reported, with its line
/// and the fix.
mod keys {
    use crate::sinks::settings::SinkKind;
    use crate::sinks::settings::*;
    use crate::toml_reader::keys::*;
    use crate::toml_reader::{Ctx, Got, Table};

    /// The keys of `type = "webhook"`.
    pub(super) fn read_webhook_sink(cx: &mut Ctx, t: &mut Table) -> Option<SinkKind> {
        use crate::sinks::webhook::{self, WebhookConfig};
        use secrecy::ExposeSecret;
        let url = t.secret(cx, "url", "WEBHOOK_URL", "/run/secrets/webhook_url");
        let url = url.and_then(|url| match check_webhook_url(url.expose_secret()) {
            Ok(()) => Some(url),
            Err(msg) => {
                // The URL can be a credential: the message never shows it.
                let line = t.line_of_key(cx, "url");
                t_error(cx, t, "url", line, msg);
                None
            }
        });
        let secret = t.secret(
            cx,
            "secret",
            "WEBHOOK_SECRET",
            "/run/secrets/webhook_secret",
        );
        let secret = secret.and_then(|s| match webhook::decode_secret(s.expose_secret()) {
            Ok(_) => Some(secrecy::SecretString::from(
                s.expose_secret().trim().to_string(),
            )),
            Err(msg) => {
                let line = t.line_of_key(cx, "secret");
                t_error(cx, t, "secret", line, msg);
                None
            }
        });
        // The sink's name keeps two sinks' ids apart at one receiver.
        let name = match t.text(cx, "name") {
            Got::Value(text) => text.value,
            _ => String::new(),
        };
        let id_prefix = match t.text(cx, "id_prefix") {
            Got::Absent => Some(format!("claudit-{name}")),
            Got::Invalid => None,
            Got::Value(text) => {
                let ok = !text.value.is_empty()
                    && text.value.len() <= 64
                    && text
                        .value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                if ok {
                    Some(text.value)
                } else {
                    let msg = "must be 1 to 64 of A-Z, a-z, 0-9, _, - and .; write e.g. \
                               id_prefix = \"claudit-eu1\""
                        .to_string();
                    text_error(cx, t, "id_prefix", &text, msg);
                    None
                }
            }
        };
        let max_request_bytes = sized(cx, t, "max_request_bytes", 1_000_000, 1_000..=1 << 30);
        let http = read_http_with(cx, t, false);
        Some(SinkKind::new(WebhookConfig {
            url: url?,
            secret: secret?,
            id_prefix: id_prefix?,
            max_request_bytes: max_request_bytes? as usize,
            http: http?,
        }))
    }

    /// What is wrong with a webhook URL, in words that never quote it.
    fn check_webhook_url(url: &str) -> Result<(), String> {
        let fix = "write the receiver's https URL, e.g. url = \"${WEBHOOK_URL}\"";
        let parsed = reqwest::Url::parse(url.trim())
            .map_err(|_| format!("the webhook URL is not a valid URL; {fix}"))?;
        let local = matches!(
            parsed.host_str().unwrap_or_default(),
            "127.0.0.1" | "localhost" | "[::1]"
        );
        match parsed.scheme() {
            "https" => Ok(()),
            "http" if local => Ok(()),
            _ => Err(format!(
                "the webhook URL must use https (plain http only to 127.0.0.1 or localhost): \
                 the events and their signatures would cross the network readable; {fix}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (and of its
    /// libraries' tests).
    #[test]
    fn the_signature_matches_the_specifications_example() {
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_must_be_whsec_base64_of_24_to_64_bytes() {
        let raw = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert!(decode_secret(&format!("whsec_{raw}")).is_ok());
        for bad in [
            raw.to_string(),
            "whsec_***".into(),
            format!("whsec_{}", STANDARD.encode([1u8; 16])),
        ] {
            let err = decode_secret(&bad).unwrap_err();
            assert!(!err.contains(raw) && !err.contains("***"), "{err}");
            assert!(err.contains("whsec_"), "{err}");
        }
    }

    fn sink(max_request_bytes: usize) -> WebhookSink {
        WebhookSink::new(&WebhookConfig {
            url: SecretString::from("https://hooks.example.com/claudit"),
            secret: SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            id_prefix: "claudit-hook".into(),
            max_request_bytes,
            http: HttpSinkConfig {
                tls_ca_file: None,
                connect_timeout: std::time::Duration::from_secs(1),
                request_timeout: std::time::Duration::from_secs(1),
                compression: false,
            },
        })
        .unwrap()
    }

    fn records(sizes: &[usize]) -> Vec<BatchRecord> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| BatchRecord {
                seq: 10 + i as i64,
                activity_id: format!("a{i}"),
                created_at_ms: 0,
                payload: format!("\"{}\"", "x".repeat(n - 2)),
            })
            .collect()
    }

    #[test]
    fn a_batch_is_split_by_size_and_an_oversize_event_rejected() {
        let s = sink(100);
        let batch = records(&[40, 40, 40, 120, 10]);
        let (requests, rejected) = s.plan(&batch);
        let ranges: Vec<_> = requests.iter().map(Request::seq_range).collect();
        assert_eq!(ranges, [(10, 11), (12, 14)]);
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].seq, 13);
        for r in &requests {
            let body = r.body();
            assert!(body.len() <= 100, "{}", body.len());
            let parsed: Vec<String> = serde_json::from_slice(&body).unwrap();
            assert_eq!(parsed.len(), r.records.len());
        }
        assert_eq!(message_id("claudit-hook", 10, 11), "claudit-hook-10-11");
    }

    /// A retry of a batch that has grown since its failed attempt sends the
    /// records of the first attempt under the same ids, then the new ones.
    #[test]
    fn a_retried_batch_keeps_its_request_ids() {
        let mut s = sink(100);
        let first = records(&[40, 40, 40]);
        let (requests, _) = s.plan(&first);
        s.planned = requests.iter().map(Request::seq_range).collect();
        assert_eq!(s.planned, [(10, 11), (12, 12)]);
        let grown = records(&[40, 40, 40, 10, 10]);
        let (requests, _) = s.plan(&grown);
        let ranges: Vec<_> = requests.iter().map(Request::seq_range).collect();
        assert_eq!(ranges, [(10, 11), (12, 12), (13, 14)]);
    }
}
