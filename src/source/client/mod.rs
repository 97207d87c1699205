//! The Compliance API client: one page of `GET /v1/compliance/activities`,
//! retried until it succeeds, fails for a reason retrying cannot fix, or the
//! caller cancels.
//!
//! Retrying without a cap is safe because nothing advances until a page is
//! journaled; the caller decides when to give up by cancelling. 401/403 are
//! never retried (they need a person), 404 only a few times.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use backon::{ExponentialBuilder, Retryable as _};
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret as _, SecretString};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::body_limit::{self, BodyError};
use crate::model::format_time;
use crate::redact::Redactor;
use crate::source::SourceConfig;

pub use super::limiter::RateState;
use super::limiter::{Clock, RateHeaders, RateLimiter};
#[cfg(test)]
use keys::*;
pub use keys::{KeyCheck, KeyKind};
use keys::{redact_anthropic_keys, unauthorized_hint};
use wire::{Envelope, ErrorEnvelope};
pub use wire::{Page, PageQuery};

mod keys;
mod wire;
use crate::metrics::{RequestCounters, StatusClass};

/// The feed's path under `base_url`.
const ACTIVITIES_PATH: &str = "/v1/compliance/activities";
/// How errors about a page's body name the request (no query: it is long).
const FEED_ENDPOINT: &str = "GET /v1/compliance/activities";
/// The feed's largest page.
pub const MAX_PAGE_SIZE: u32 = 5000;
/// The largest answer read from the feed, decompressed, in bytes. The
/// largest legitimate page is 5,000 records: 2.9 MB with the simulator's
/// mix of activity types (records of 0.26 to 0.87 KB, median 0.6 KB,
/// measured), and records are metadata, not content, so even records
/// three times larger make a page of about 10 MB. 32 MiB is three times
/// that, eleven times the measured page, and leaves a single odd record of
/// up to about 30 MB readable. An answer that passes it is refused unread
/// and the page is asked again after a backoff: the cap, not the network,
/// decides how much memory a page can take.
pub const MAX_PAGE_BYTES: usize = 32 << 20;
/// A 404 on the feed itself is retried this many times in all, then reported.
const NOT_FOUND_ATTEMPTS: u32 = 3;
/// `check_key` gives up on transient failures after this many attempts.
const CHECK_KEY_ATTEMPTS: u32 = 4;
/// Request ids kept for `take_request_ids` when nobody collects them.
const REQUEST_ID_LOG_CAP: usize = 10_000;
/// Longest error message kept from a response body.
const MAX_MESSAGE_CHARS: usize = 500;

/// Backoff between retries: 1 s doubling to 30 s, each delay plus up to 100 %
/// jitter, so delays fall between 1 s and 60 s. No cap on the number of tries.
/// (A paging fault is backed off on the same schedule: `paging::backoff`.)
pub(super) fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(30))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
}

/// Why a page could not be fetched. Messages come from the API; any API key
/// in them is redacted.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// 401/403: the key is wrong, revoked or lacks the scope. Not retried.
    #[error(
        "the Compliance API refused the key (HTTP {status} {error_type}): {message}{}. Likely cause: {hint}",
        rid(request_id)
    )]
    Unauthorized {
        status: u16,
        error_type: String,
        message: String,
        request_id: Option<String>,
        hint: &'static str,
    },
    /// 400 about the `after_id` cursor: restart the window walk.
    #[error(
        "the Compliance API rejected the page cursor: {message}{}",
        rid(request_id)
    )]
    BadCursor {
        message: String,
        request_id: Option<String>,
    },
    /// Any other 400, or a status that points at the configuration (wrong
    /// `base_url`, a proxy, too many filter values).
    #[error(
        "the Compliance API rejected the request: {message}{}. Check the source's base_url, activity_types, exclude_activity_types and organization_ids",
        rid(request_id)
    )]
    BadRequest {
        message: String,
        request_id: Option<String>,
    },
    /// 404 on the feed endpoint, retried `attempts` times.
    #[error(
        "the Compliance API answered 404 Not Found {attempts} times for {ACTIVITIES_PATH}{}. Check base_url; if it is right, the feed may be temporarily unavailable",
        rid(request_id)
    )]
    NotFound {
        attempts: u32,
        request_id: Option<String>,
    },
    /// A server error the API marked as not worth retrying (`x-should-retry: false`).
    #[error(
        "the Compliance API failed with HTTP {status} and asked not to retry: {message}{}",
        rid(request_id)
    )]
    Server {
        status: u16,
        message: String,
        request_id: Option<String>,
    },
    /// Only from `check_key`, which retries transient failures a few times.
    #[error(
        "the Compliance API could not be reached after {attempts} attempts: {message}{}",
        rid(request_id)
    )]
    GaveUp {
        attempts: u32,
        message: String,
        request_id: Option<String>,
    },
    #[error("cancelled")]
    Cancelled,
}

fn rid(request_id: &Option<String>) -> String {
    request_id
        .as_deref()
        .map(|id| format!(" (request-id {id})"))
        .unwrap_or_default()
}

/// The Compliance API client of one source.
pub struct ComplianceClient {
    source_name: String,
    /// `base_url`, under which every endpoint's path goes.
    base_url: reqwest::Url,
    activities_url: reqwest::Url,
    api_key: SecretString,
    /// Removes the key, in every encoding, from text that came from the network.
    redactor: Redactor,
    key_kind: KeyKind,
    anthropic_version: HeaderValue,
    /// Filters sent with every page request, in order.
    filters: Vec<(&'static str, String)>,
    http: reqwest::Client,
    limiter: Arc<RateLimiter>,
    request_ids: Mutex<VecDeque<String>>,
    /// Counts every HTTP attempt by status class (`claudit_source_requests_total`).
    requests: RequestCounters,
}

impl std::fmt::Debug for ComplianceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComplianceClient")
            .field("source", &self.source_name)
            .field("activities_url", &self.activities_url.as_str())
            .field("key_kind", &self.key_kind)
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

/// A successful answer of an endpoint other than the feed
/// ([`ComplianceClient::get_json`]).
#[derive(Debug)]
pub struct Fetched<T> {
    pub body: T,
    /// `request-id` of the successful response.
    pub request_id: Option<String>,
    /// Request ids of every attempt, failed ones included.
    pub attempt_request_ids: Vec<String>,
}

/// One request as the retry loop makes it.
struct Call<'a> {
    url: &'a reqwest::Url,
    /// What errors name: "GET /v1/compliance/activities" (no query).
    endpoint: &'a str,
    params: &'a [(&'a str, String)],
    /// Give up on transient failures after this many attempts (`None` = never).
    max_attempts: Option<u32>,
    /// A 404 is asked this many times in all before it is reported.
    not_found_attempts: u32,
}

/// What one attempt can end with, besides a page.
#[derive(Debug)]
enum Failure {
    /// Worth retrying after a backoff (never sooner than `retry_after`).
    Transient {
        status: Option<u16>,
        request_id: Option<String>,
        retry_after: Option<Duration>,
        reason: String,
    },
    /// 404: retried a few times only.
    NotFound { request_id: Option<String> },
    /// Retrying cannot help.
    Final(FetchError),
}

impl ComplianceClient {
    /// A client with its own limiter at the source's `requests_per_minute`.
    pub fn new(source: &SourceConfig) -> anyhow::Result<ComplianceClient> {
        let limiter = Arc::new(RateLimiter::new(source.requests_per_minute, Clock::tokio()));
        Self::with_limiter(source, limiter)
    }

    /// A client drawing on a shared limiter (one per parent-organization
    /// budget), whose clock also times the retries.
    pub fn with_limiter(
        source: &SourceConfig,
        limiter: Arc<RateLimiter>,
    ) -> anyhow::Result<ComplianceClient> {
        let base = source.base_url.trim_end_matches('/');
        let activities_url = reqwest::Url::parse(&format!("{base}{ACTIVITIES_PATH}"))
            .with_context(|| {
                format!(
                    "source {:?}: base_url {:?} is not a valid URL",
                    source.name, source.base_url
                )
            })?;
        anyhow::ensure!(
            matches!(activities_url.scheme(), "https" | "http"),
            "source {:?}: base_url {:?} must be an https:// URL",
            source.name,
            source.base_url
        );
        let host = activities_url.host_str().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if activities_url.scheme() == "http" && !loopback {
            tracing::warn!(
                source = %source.name,
                base_url = %source.base_url,
                "base_url is plain http: the API key would cross the network unencrypted"
            );
        }
        let anthropic_version = HeaderValue::from_str(source.anthropic_version.trim())
            .with_context(|| {
                format!(
                    "source {:?}: anthropic_version {:?} is not a valid header value",
                    source.name, source.anthropic_version
                )
            })?;
        // Checked here so a bad key fails at start-up, not on every request.
        HeaderValue::from_str(source.api_key.expose_secret().trim()).map_err(|_| {
            anyhow::anyhow!(
                "source {:?}: api_key contains characters not allowed in an HTTP header",
                source.name
            )
        })?;

        let mut default_headers = HeaderMap::new();
        default_headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .user_agent(concat!("claudit/", env!("CARGO_PKG_VERSION")))
            .default_headers(default_headers)
            .connect_timeout(source.connect_timeout)
            .timeout(source.request_timeout)
            // The key travels in a custom header that reqwest would carry
            // across a redirect to another host: never follow redirects.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the HTTP client")?;

        let mut filters = Vec::new();
        filters.extend(
            source
                .activity_types
                .iter()
                .map(|t| ("activity_types[]", t.clone())),
        );
        filters.extend(
            source
                .exclude_activity_types
                .iter()
                .map(|t| ("exclude_activity_types[]", t.clone())),
        );
        filters.extend(
            source
                .organization_ids
                .iter()
                .map(|o| ("organization_ids[]", o.clone())),
        );

        let base_url = reqwest::Url::parse(base).with_context(|| {
            format!(
                "source {:?}: base_url {:?} is not a valid URL",
                source.name, source.base_url
            )
        })?;
        Ok(ComplianceClient {
            source_name: source.name.clone(),
            base_url,
            activities_url,
            api_key: source.api_key.clone(),
            redactor: {
                let mut redactor = Redactor::new();
                redactor.add(source.api_key.expose_secret());
                redactor
            },
            key_kind: KeyKind::of(&source.api_key),
            anthropic_version,
            filters,
            http,
            limiter,
            request_ids: Mutex::new(VecDeque::new()),
            requests: RequestCounters::default(),
        })
    }

    /// The kind of the configured key, from its prefix.
    pub fn key_kind(&self) -> KeyKind {
        self.key_kind
    }

    /// Counts this client's requests into `counters` from now on.
    pub fn count_requests(&mut self, counters: RequestCounters) {
        self.requests = counters;
    }

    /// Last seen `anthropic-ratelimit-*` values, for metrics and status.
    pub fn rate_state(&self) -> RateState {
        self.limiter.state()
    }

    /// Request ids of every call since the last `take_request_ids` (at most
    /// the newest 10 000), failed and cancelled fetches included.
    pub fn take_request_ids(&self) -> Vec<String> {
        self.request_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect()
    }

    /// One page, retried until it succeeds, a non-retryable error occurs, or `cancel` fires.
    pub async fn fetch_page(
        &self,
        query: &PageQuery,
        cancel: &CancellationToken,
    ) -> Result<Page, FetchError> {
        if query.limit == 0 || query.limit > MAX_PAGE_SIZE {
            return Err(FetchError::BadRequest {
                message: format!("page limit {} is outside 1..={MAX_PAGE_SIZE}", query.limit),
                request_id: None,
            });
        }
        if query.created_gte >= query.created_lt {
            return Err(FetchError::BadRequest {
                message: format!(
                    "empty window: created_at.gte {} is not before created_at.lt {}",
                    format_time(query.created_gte),
                    format_time(query.created_lt)
                ),
                request_id: None,
            });
        }
        let mut params: Vec<(&str, String)> = vec![
            ("created_at.gte", format_time(query.created_gte)),
            ("created_at.lt", format_time(query.created_lt)),
        ];
        if let Some(after_id) = &query.after_id {
            params.push(("after_id", after_id.clone()));
        }
        params.push(("limit", query.limit.to_string()));
        params.extend(self.filters.iter().map(|(k, v)| (*k, v.clone())));
        let call = Call {
            url: &self.activities_url,
            endpoint: FEED_ENDPOINT,
            params: &params,
            max_attempts: None,
            not_found_attempts: NOT_FOUND_ATTEMPTS,
        };
        let fetched = self.fetch_retrying::<Envelope>(&call, cancel).await?;
        Ok(Page {
            activities: fetched.body.data,
            has_more: fetched.body.has_more,
            first_id: fetched.body.first_id,
            last_id: fetched.body.last_id,
            request_id: fetched.request_id,
            attempt_request_ids: fetched.attempt_request_ids,
        })
    }

    /// One GET of another Compliance API endpoint (`segments` below
    /// `base_url`, each percent-encoded; `endpoint` names it in errors),
    /// retried like a feed page through the same limiter, at most
    /// `max_attempts` times; the body read under the same cap
    /// ([`MAX_PAGE_BYTES`]) and parsed as `T`. A 404 is reported at once:
    /// on these endpoints it names an unknown organization, group or role.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        segments: &[&str],
        params: &[(&str, String)],
        max_attempts: u32,
        cancel: &CancellationToken,
    ) -> Result<Fetched<T>, FetchError> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| FetchError::BadRequest {
                message: format!("base_url {} cannot take a path", self.base_url),
                request_id: None,
            })?
            .pop_if_empty()
            .extend(segments);
        let call = Call {
            url: &url,
            endpoint,
            params,
            max_attempts: Some(max_attempts),
            not_found_attempts: 1,
        };
        self.fetch_retrying(&call, cancel).await
    }

    /// One cheap request (limit=1) to check the key: used by `claudit check --connect`.
    pub async fn check_key(&self) -> Result<KeyCheck, FetchError> {
        let mut params: Vec<(&str, String)> = vec![("limit", "1".to_string())];
        params.extend(self.filters.iter().map(|(k, v)| (*k, v.clone())));
        let call = Call {
            url: &self.activities_url,
            endpoint: FEED_ENDPOINT,
            params: &params,
            max_attempts: Some(CHECK_KEY_ATTEMPTS),
            not_found_attempts: NOT_FOUND_ATTEMPTS,
        };
        let page = self
            .fetch_retrying::<Envelope>(&call, &CancellationToken::new())
            .await?;
        Ok(KeyCheck {
            key_kind: self.key_kind,
            request_id: page.request_id,
            sees_activities: !page.body.data.is_empty(),
            rate: self.rate_state(),
        })
    }

    async fn fetch_retrying<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        cancel: &CancellationToken,
    ) -> Result<Fetched<T>, FetchError> {
        let max_attempts = call.max_attempts;
        // Atomics and a mutex rather than cells: the future must stay `Send`.
        let attempt_ids = Mutex::new(Vec::new());
        let attempts = AtomicU32::new(0);
        let not_found = AtomicU32::new(0);
        let clock = self.limiter.clock().clone();

        let retrying = (|| async {
            attempts.fetch_add(1, Ordering::Relaxed);
            self.attempt::<T>(call, &attempt_ids).await
        })
        .retry(backoff())
        .sleep(move |d| {
            let clock = clock.clone();
            async move { clock.sleep(d).await }
        })
        .when(|failure| match failure {
            Failure::Final(_) => false,
            Failure::NotFound { .. } => {
                not_found.fetch_add(1, Ordering::Relaxed) + 1 < call.not_found_attempts
            }
            Failure::Transient { .. } => {
                max_attempts.is_none_or(|max| attempts.load(Ordering::Relaxed) < max)
            }
        })
        .adjust(|failure, delay| match failure {
            // `retry-after` is a floor, never a ceiling.
            Failure::Transient {
                retry_after: Some(floor),
                ..
            } => delay.map(|d| d.max(*floor)),
            _ => delay,
        })
        .notify(|failure, delay| {
            let (status, request_id, reason) = match failure {
                Failure::Transient {
                    status,
                    request_id,
                    reason,
                    ..
                } => (*status, request_id.as_deref(), reason.as_str()),
                Failure::NotFound { request_id } => {
                    (Some(404), request_id.as_deref(), "404 Not Found")
                }
                Failure::Final(_) => (None, None, ""),
            };
            tracing::warn!(
                source = %self.source_name,
                endpoint = call.endpoint,
                status,
                request_id,
                attempt = attempts.load(Ordering::Relaxed),
                delay_ms = delay.as_millis() as u64,
                reason,
                "Compliance API request failed; retrying"
            );
        });

        let outcome = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(FetchError::Cancelled),
            outcome = retrying => outcome,
        };
        match outcome {
            Ok((body, request_id)) => Ok(Fetched {
                body,
                request_id,
                attempt_request_ids: attempt_ids.into_inner().unwrap_or_else(|e| e.into_inner()),
            }),
            Err(Failure::Final(error)) => Err(error),
            Err(Failure::NotFound { request_id }) => Err(FetchError::NotFound {
                attempts: not_found.load(Ordering::Relaxed),
                request_id,
            }),
            Err(Failure::Transient {
                status,
                request_id,
                reason,
                ..
            }) => Err(FetchError::GaveUp {
                attempts: attempts.load(Ordering::Relaxed),
                message: match status {
                    Some(status) => format!("HTTP {status}: {reason}"),
                    None => reason,
                },
                request_id,
            }),
        }
    }

    /// One HTTP request, after waiting for the limiter.
    async fn attempt<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        attempt_ids: &Mutex<Vec<String>>,
    ) -> Result<(T, Option<String>), Failure> {
        self.limiter.acquire().await;

        let mut key = HeaderValue::from_str(self.api_key.expose_secret().trim())
            .expect("checked in ComplianceClient::with_limiter");
        key.set_sensitive(true);
        let sent = self
            .http
            .get(call.url.clone())
            .query(call.params)
            .header("x-api-key", key)
            .header("anthropic-version", self.anthropic_version.clone())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                self.requests.count(StatusClass::Transport);
                return Err(Failure::Transient {
                    status: None,
                    request_id: None,
                    retry_after: None,
                    reason: self.redact(&describe_reqwest_error(&e)),
                });
            }
        };

        let status = response.status();
        let headers = response.headers().clone();
        self.limiter.observe(&RateHeaders::from_headers(&headers));
        // Network text that goes into messages and the journal: redacted too.
        let header_request_id = body_limit::request_id(&headers).map(|id| self.redact(&id));
        let body = body_limit::read_capped(response, MAX_PAGE_BYTES, call.endpoint).await;
        if let Err(too_large @ BodyError::TooLarge { .. }) = &body {
            // Retried like any unreadable page: nothing of it is kept, and
            // nothing advances until a page is read whole.
            self.requests.count(StatusClass::TooLarge);
            self.record_request_id(header_request_id.as_deref(), attempt_ids);
            return Err(Failure::Transient {
                status: Some(status.as_u16()),
                request_id: header_request_id,
                retry_after: retry_after(&headers, self.limiter.clock().utc_now()),
                reason: self.redact(&too_large.to_string()),
            });
        }
        self.requests.count(StatusClass::of_status(status.as_u16()));

        if status.is_success() {
            self.record_request_id(header_request_id.as_deref(), attempt_ids);
            let body = body.map_err(|e| Failure::Transient {
                status: Some(status.as_u16()),
                request_id: header_request_id.clone(),
                retry_after: None,
                reason: self.redact(&e.to_string()),
            })?;
            return match serde_json::from_slice::<T>(&body) {
                Ok(envelope) => Ok((envelope, header_request_id)),
                Err(e) => Err(Failure::Transient {
                    status: Some(status.as_u16()),
                    request_id: header_request_id,
                    retry_after: None,
                    reason: format!(
                        "the answer of {} is not a complete page ({e}; {} bytes)",
                        call.endpoint,
                        body.len()
                    ),
                }),
            };
        }

        let body = body.unwrap_or_default();
        let error = ErrorEnvelope::parse(&body);
        let request_id = header_request_id.or(error.request_id);
        self.record_request_id(request_id.as_deref(), attempt_ids);
        let body_error = error.error.unwrap_or_default();
        let error_type = body_error.kind.unwrap_or_default();
        let message = self.redact(&match body_error.message {
            Some(message) => message,
            None => body_excerpt(&body),
        });
        let should_retry = headers
            .get("x-should-retry")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase());
        let code = status.as_u16();

        if code == 429 {
            let retry_after = retry_after(&headers, self.limiter.clock().utc_now());
            self.limiter.rate_limited(retry_after);
            if should_retry.as_deref() != Some("false") {
                return Err(Failure::Transient {
                    status: Some(code),
                    request_id,
                    retry_after,
                    reason: message,
                });
            }
        }
        match status {
            StatusCode::BAD_REQUEST => {
                let lowered = message.to_ascii_lowercase();
                Err(Failure::Final(
                    if ["after_id", "before_id", "cursor"]
                        .iter()
                        .any(|w| lowered.contains(w))
                    {
                        FetchError::BadCursor {
                            message,
                            request_id,
                        }
                    } else {
                        FetchError::BadRequest {
                            message,
                            request_id,
                        }
                    },
                ))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(Failure::Final(FetchError::Unauthorized {
                    status: code,
                    hint: unauthorized_hint(code, self.key_kind, &message),
                    error_type: if error_type.is_empty() {
                        status.canonical_reason().unwrap_or("error").to_string()
                    } else {
                        error_type
                    },
                    message,
                    request_id,
                }))
            }
            StatusCode::NOT_FOUND => Err(Failure::NotFound { request_id }),
            _ if is_retryable_status(code) => {
                if should_retry.as_deref() == Some("false") {
                    Err(Failure::Final(FetchError::Server {
                        status: code,
                        message,
                        request_id,
                    }))
                } else {
                    Err(Failure::Transient {
                        status: Some(code),
                        request_id,
                        retry_after: retry_after(&headers, self.limiter.clock().utc_now()),
                        reason: message,
                    })
                }
            }
            _ if status.is_redirection() => {
                let location = headers
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("nowhere");
                Err(Failure::Final(FetchError::BadRequest {
                    message: format!(
                        "HTTP {code} redirect to {location}; claudit does not follow redirects"
                    ),
                    request_id,
                }))
            }
            _ => Err(Failure::Final(FetchError::BadRequest {
                message: format!("unexpected HTTP {code}: {message}"),
                request_id,
            })),
        }
    }

    fn record_request_id(&self, request_id: Option<&str>, attempt_ids: &Mutex<Vec<String>>) {
        let Some(id) = request_id else { return };
        attempt_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id.to_string());
        let mut log = self.request_ids.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() >= REQUEST_ID_LOG_CAP {
            log.pop_front();
        }
        log.push_back(id.to_string());
    }

    /// Removes the configured key, anything shaped like an Anthropic key,
    /// then the configured key in its other encodings, from text that came
    /// from the network. The redactor comes last: it recognises the key by
    /// its first characters, which other Anthropic keys share.
    pub(crate) fn redact(&self, text: &str) -> String {
        let key = self.api_key.expose_secret().trim();
        let text = if key.len() >= 8 {
            text.replace(key, "[REDACTED]")
        } else {
            text.to_string()
        };
        self.redactor.redact(&redact_anthropic_keys(&text))
    }
}

/// 408, 409, 429 and every 5xx (529 is "overloaded") are worth retrying.
fn is_retryable_status(code: u16) -> bool {
    matches!(code, 408 | 409 | 429 | 500..=599)
}

/// The longer of `retry-after` (seconds or an HTTP date) and `retry-after-ms`.
fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let seconds = text("retry-after")
        .and_then(|v| crate::http_text::retry_after_value(v, now, 86_400.0, None));
    let millis = text("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .map(|ms| Duration::from_secs_f64(ms.min(86_400_000.0) / 1000.0));
    seconds.into_iter().chain(millis).max()
}

fn describe_reqwest_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "the response body was cut off or undecodable"
    } else {
        "request failed"
    };
    // The URL in the message carries the query only; the key is a header.
    crate::http_text::with_causes(format!("{kind}: {error}"), error)
}

/// The start of a non-JSON error body, on one line.
fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return "(empty body)".to_string();
    }
    let mut excerpt: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
    if excerpt.len() < text.len() {
        excerpt.push('…');
    }
    excerpt
}

#[cfg(test)]
mod tests;
