//! The directory endpoints (spec/compliance-api.md §1.2, §5.2), one page at
//! a time, through the source's own [`ComplianceClient`]: the same key,
//! HTTP client, retries, request-id log and rate limiter as the feed (the
//! 600/min budget is shared by every endpoint).
//!
//! Answers are read leniently and bounded: the body under the feed's cap
//! ([`MAX_PAGE_BYTES`], counted while it streams, decompressed), an item
//! without an id skipped, text fields cut to a few hundred characters and
//! cleared of the source's key (the redactor of the source's client: a
//! hostile or broken answer never puts the key in the state database or an
//! event), at most twice the asked `limit` of items per page. A page is
//! asked at most [`PAGE_ATTEMPTS`] times; then the sync records the error
//! (`status`) and backs off.

use std::sync::Arc;

use chrono::DateTime;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::directory::model::{
    GroupAttrs, List, MemberAttrs, NoAttrs, OrgAttrs, RoleAttrs, attrs_text,
};
use crate::directory::store::SeenItem;
#[cfg(doc)]
use crate::source::client::MAX_PAGE_BYTES;
use crate::source::client::{ComplianceClient, FetchError, KeyKind};

/// The longest name, e-mail or role kept from an answer.
const MAX_TEXT_CHARS: usize = 256;
/// The longest description kept.
const MAX_DESCRIPTION_CHARS: usize = 1024;
/// Attempts of one page (transient failures: 5xx, 429, a cut or oversized
/// body) before the sync gives up for now and backs off (`mod.rs`).
pub const PAGE_ATTEMPTS: u32 = 4;
/// The longest `next_page` token followed (and stored).
const MAX_TOKEN_CHARS: usize = 1024;

/// One page of a list.
#[derive(Debug)]
pub struct ListPage {
    pub items: Vec<SeenItem>,
    /// The token of the next page; `None` = the list is complete.
    pub next_page: Option<String>,
    /// Request ids of the page's calls (failed attempts included).
    pub request_ids: Vec<String>,
}

/// Why a directory page could not be read. Messages name the fix.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// 401/403: the key cannot read the directory.
    #[error(
        "the Compliance API refused {endpoint} (HTTP {status}: {message}); directory context needs a Compliance Access Key (sk-ant-api01-...) with the read:compliance_org_data and read:compliance_user_data scopes ({key_hint}). Events are delivered without directory context; create such a key and set it as the source's api_key, or set [sources.directory] enabled = false"
    )]
    MissingScope {
        endpoint: String,
        status: u16,
        message: String,
        key_hint: String,
    },
    /// 404: the organization, group or role is not (or no longer) known.
    #[error("{endpoint} answered 404 Not Found{}", rid(.request_id))]
    NotFound {
        endpoint: String,
        request_id: Option<String>,
    },
    /// 400 about the page token: the walk of the list starts over.
    #[error("{endpoint} refused the page token: {message}")]
    BadToken { endpoint: String, message: String },
    /// The answer's `next_page` cannot be followed: nothing of the page is
    /// kept, and the list is asked again after a backoff.
    #[error("{endpoint} answered a next_page token claudit cannot follow: {problem}{}; the page is asked again later", rid(.request_id))]
    BadNextPage {
        endpoint: String,
        problem: &'static str,
        request_id: Option<String>,
    },
    #[error("{endpoint}: {source}")]
    Api {
        endpoint: String,
        source: FetchError,
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

/// The page envelope of the directory endpoints; unknown fields ignored.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Vec<Value>,
    #[serde(default)]
    has_more: Option<bool>,
    #[serde(default)]
    next_page: Option<String>,
}

/// Reads directory lists through a source's client.
#[derive(Debug, Clone)]
pub struct DirectoryClient {
    api: Arc<ComplianceClient>,
    page_size: u32,
}

impl DirectoryClient {
    pub fn new(api: Arc<ComplianceClient>, page_size: u32) -> DirectoryClient {
        DirectoryClient {
            api,
            page_size: page_size.clamp(1, 1000),
        }
    }

    pub fn key_kind(&self) -> KeyKind {
        self.api.key_kind()
    }

    /// One page of `list`, from its first page (`token` `None`) or the page
    /// `token` names.
    pub async fn page(
        &self,
        list: &List,
        token: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<ListPage, DirectoryError> {
        let mut params = vec![("limit", self.page_size.to_string())];
        if let Some(token) = token {
            params.push(("page", token.to_string()));
        }
        let fetched = self
            .api
            .get_json::<Envelope>(
                &list.describe(),
                &list.path_segments(),
                &params,
                PAGE_ATTEMPTS,
                cancel,
            )
            .await
            .map_err(|e| self.error(list, token.is_some(), e))?;
        let envelope = fetched.body;
        let mut items = Vec::with_capacity(envelope.data.len());
        let cap = 2 * self.page_size as usize;
        let redact = |text: &str| self.api.redact(text);
        for value in envelope.data.iter().take(cap) {
            items.extend(item(list, value, &redact));
        }
        let next_page = envelope
            .next_page
            .filter(|t| !t.is_empty() && envelope.has_more != Some(false));
        if let Some(next) = &next_page {
            // The token is stored and sent back: it must be one. One that
            // names the page just read would walk it forever; taking it as
            // the end would end everyone not listed yet.
            let problem = if Some(next.as_str()) == token {
                Some("it repeats the token of the page it answers")
            } else if next.len() > MAX_TOKEN_CHARS {
                Some("it is longer than 1024 characters")
            } else if !next.chars().all(|c| c.is_ascii_graphic()) {
                Some("it holds characters a token never has")
            } else if self.api.redact(next) != *next {
                Some("it holds a secret")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(DirectoryError::BadNextPage {
                    endpoint: list.describe(),
                    problem,
                    request_id: fetched.request_id,
                });
            }
        }
        Ok(ListPage {
            items,
            next_page,
            request_ids: fetched.attempt_request_ids,
        })
    }

    fn error(&self, list: &List, had_token: bool, e: FetchError) -> DirectoryError {
        let endpoint = list.describe();
        match e {
            FetchError::Cancelled => DirectoryError::Cancelled,
            FetchError::Unauthorized {
                status, message, ..
            } => DirectoryError::MissingScope {
                endpoint,
                status,
                message,
                key_hint: match self.api.key_kind() {
                    KeyKind::Admin => {
                        "this source uses an Admin API key, which reads the activity feed only"
                            .to_string()
                    }
                    _ => format!("this endpoint needs {}", list.scope_needed()),
                },
            },
            FetchError::NotFound { request_id, .. } => DirectoryError::NotFound {
                endpoint,
                request_id,
            },
            FetchError::BadRequest { message, .. } | FetchError::BadCursor { message, .. }
                if had_token && message.to_ascii_lowercase().contains("page") =>
            {
                DirectoryError::BadToken { endpoint, message }
            }
            other => DirectoryError::Api {
                endpoint,
                source: other,
            },
        }
    }
}

/// Removes the source's key from text of an answer.
type Redact<'a> = &'a dyn Fn(&str) -> String;

/// A string field, cut to `max` characters and redacted; `None` when absent
/// or empty.
fn text(value: &Value, key: &str, max: usize, redact: Redact) -> Option<String> {
    let s = value.get(key)?.as_str()?.trim();
    if s.is_empty() {
        return None;
    }
    let cut: String = s.chars().take(max).collect();
    Some(redact(&cut))
}

fn time_ms(value: &Value, key: &str) -> Option<i64> {
    let s = value.get(key)?.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// An id: a short string without control characters.
fn id(value: &Value, key: &str, redact: Redact) -> Option<String> {
    text(value, key, MAX_TEXT_CHARS, redact).filter(|s| !s.chars().any(char::is_control))
}

/// The staged item of one element of a list's `data`, if it has an id.
fn item(list: &List, v: &Value, redact: Redact) -> Option<SeenItem> {
    let text = |v: &Value, key: &str, max: usize| text(v, key, max, redact);
    let id = |v: &Value, key: &str| id(v, key, redact);
    let (entity, attrs, created_ms) = match list {
        List::Orgs => (
            id(v, "uuid").or_else(|| id(v, "id"))?,
            attrs_text(&OrgAttrs {
                name: text(v, "name", MAX_TEXT_CHARS),
            }),
            time_ms(v, "created_at"),
        ),
        List::Users(_) => (
            id(v, "id").or_else(|| id(v, "user_id"))?,
            attrs_text(&MemberAttrs {
                name: text(v, "full_name", MAX_TEXT_CHARS)
                    .or_else(|| text(v, "name", MAX_TEXT_CHARS)),
                email: text(v, "email", MAX_TEXT_CHARS),
                role: text(v, "organization_role", MAX_TEXT_CHARS),
            }),
            time_ms(v, "created_at"),
        ),
        List::Roles(_) => (
            id(v, "id")?,
            attrs_text(&RoleAttrs {
                name: text(v, "name", MAX_TEXT_CHARS),
                description: text(v, "description", MAX_DESCRIPTION_CHARS),
            }),
            time_ms(v, "created_at"),
        ),
        // Each permission is an item; the list's completion makes them one
        // fact about the role.
        List::Permissions(..) => {
            let part = |k| text(v, k, MAX_TEXT_CHARS).unwrap_or_else(|| "*".to_string());
            let action = text(v, "action", MAX_TEXT_CHARS)?;
            (
                format!("{action} {}:{}", part("resource_type"), part("resource_id")),
                attrs_text(&NoAttrs {}),
                None,
            )
        }
        List::Groups => {
            let roles = v
                .get("roles")
                .and_then(Value::as_array)
                .map(|roles| {
                    let mut out: Vec<String> = roles
                        .iter()
                        .take(100)
                        .filter_map(|r| match r {
                            Value::String(s) => {
                                Some(redact(&s.chars().take(MAX_TEXT_CHARS).collect::<String>()))
                            }
                            Value::Object(_) => id(r, "id").or_else(|| id(r, "name")),
                            _ => None,
                        })
                        .collect();
                    out.sort();
                    out.dedup();
                    out
                })
                .unwrap_or_default();
            (
                id(v, "id")?,
                attrs_text(&GroupAttrs {
                    name: text(v, "name", MAX_TEXT_CHARS),
                    description: text(v, "description", MAX_DESCRIPTION_CHARS),
                    source_type: text(v, "source_type", MAX_TEXT_CHARS),
                    roles,
                }),
                time_ms(v, "created_at"),
            )
        }
        List::Members(_) => (
            id(v, "user_id").or_else(|| id(v, "id"))?,
            attrs_text(&NoAttrs {}),
            time_ms(v, "created_at"),
        ),
    };
    Some(SeenItem {
        entity,
        attrs,
        created_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Redactor;
    use serde_json::json;

    const KEY: &str = "sk-ant-api01-directory-client-test-key";

    fn redactor() -> impl Fn(&str) -> String {
        let mut r = Redactor::new();
        r.add(KEY);
        move |text: &str| r.redact(text)
    }

    #[test]
    fn items_are_read_leniently_bounded_and_redacted() {
        let redact = redactor();
        let users = List::Users("org".into());
        let it = item(
            &users,
            &json!({"id": "user_1", "full_name": "Jon Snow", "email": "jon@stark.example",
                    "organization_role": "owner", "created_at": "2026-01-02T03:04:05Z",
                    "extra": [1, 2]}),
            &redact,
        )
        .unwrap();
        assert_eq!(it.entity, "user_1");
        assert_eq!(
            it.attrs,
            r#"{"name":"Jon Snow","email":"jon@stark.example","role":"owner"}"#
        );
        assert_eq!(it.created_ms, Some(1_767_323_045_000));
        assert!(item(&users, &json!({"full_name": "no id"}), &redact).is_none());
        assert!(item(&users, &json!({"id": "bad\nid"}), &redact).is_none());
        let long = "x".repeat(10_000);
        let it = item(&users, &json!({"id": "u", "full_name": long}), &redact).unwrap();
        assert!(it.attrs.len() < 400);
        // An answer that echoes the key (whole, or cut by the length cap)
        // stores and delivers none of it.
        let echoed = format!("{}{KEY}", "n".repeat(MAX_TEXT_CHARS - 20));
        let it = item(
            &users,
            &json!({"id": "u", "full_name": format!("Eve {KEY}"), "email": echoed}),
            &redact,
        )
        .unwrap();
        assert!(!it.attrs.contains(&KEY[..12]), "{}", it.attrs);
        assert!(it.attrs.contains("Eve [REDACTED]"), "{}", it.attrs);

        let g = item(
            &List::Groups,
            &json!({"id": "group_1", "name": "Admins", "source_type": "scim",
                    "roles": ["role_2", {"id": "role_1", "name": "x"}, {"name": "owner"}, 7]}),
            &redact,
        )
        .unwrap();
        assert_eq!(
            g.attrs,
            r#"{"name":"Admins","source_type":"scim","roles":["owner","role_1","role_2"]}"#
        );
        let p = item(
            &List::Permissions("org".into(), "role_1".into()),
            &json!({"action": "manage", "resource_type": "project"}),
            &redact,
        )
        .unwrap();
        assert_eq!(p.entity, "manage project:*");
    }
}
