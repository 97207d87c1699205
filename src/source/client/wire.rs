//! The feed's wire types: a page request, a page, and the envelopes the
//! API answers in (read leniently: unknown fields are ignored).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

/// One page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    pub created_gte: DateTime<Utc>,
    pub created_lt: DateTime<Utc>,
    /// The previous page's `last_id` (walks older in the default order).
    pub after_id: Option<String>,
    /// 1..=5000.
    pub limit: u32,
}

/// One page of the feed.
#[derive(Debug)]
pub struct Page {
    /// Each element's bytes exactly as received.
    pub activities: Vec<Box<RawValue>>,
    pub has_more: bool,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    /// `request-id` of the successful response.
    pub request_id: Option<String>,
    /// Request ids of every attempt, failed ones included: Anthropic logs each
    /// call as a `compliance_api_accessed` activity.
    pub attempt_request_ids: Vec<String>,
}

/// The response envelope; unknown fields are ignored.
#[derive(Deserialize)]
pub(super) struct Envelope {
    pub(super) data: Vec<Box<RawValue>>,
    #[serde(default)]
    pub(super) has_more: bool,
    #[serde(default)]
    pub(super) first_id: Option<String>,
    #[serde(default)]
    pub(super) last_id: Option<String>,
}

/// The error envelope, parsed leniently: `{"error": {"type", "message"}, "request_id"}`.
#[derive(Deserialize, Default)]
pub(super) struct ErrorEnvelope {
    #[serde(default)]
    pub(super) error: Option<ErrorBody>,
    #[serde(default)]
    pub(super) request_id: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct ErrorBody {
    #[serde(default, rename = "type")]
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) message: Option<String>,
}

impl ErrorEnvelope {
    pub(super) fn parse(body: &[u8]) -> ErrorEnvelope {
        serde_json::from_slice(body).unwrap_or_default()
    }
}
