//! Compliance API client (placeholder; replaced by the full client).

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use crate::config::SourceConfig;

pub struct ComplianceClient {
    http: reqwest::Client,
    base_url: String,
    key: secrecy::SecretString,
    version: String,
}

pub struct PageQuery {
    pub created_gte: DateTime<Utc>,
    pub created_lt: DateTime<Utc>,
    pub after_id: Option<String>,
    pub limit: u32,
}

pub struct Page {
    pub activities: Vec<Box<RawValue>>,
    pub has_more: bool,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub request_id: Option<String>,
    pub attempt_request_ids: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("unauthorized ({status}): {message}")]
    Unauthorized {
        status: u16,
        error_type: String,
        message: String,
        request_id: Option<String>,
        hint: &'static str,
    },
    #[error("bad cursor: {message}")]
    BadCursor {
        message: String,
        request_id: Option<String>,
    },
    #[error("bad request: {message}")]
    BadRequest {
        message: String,
        request_id: Option<String>,
    },
    #[error("not found after {attempts} attempts")]
    NotFound {
        attempts: u32,
        request_id: Option<String>,
    },
    #[error("cancelled")]
    Cancelled,
}

#[derive(Deserialize)]
struct Envelope {
    data: Vec<Box<RawValue>>,
    #[serde(default)]
    has_more: bool,
    first_id: Option<String>,
    last_id: Option<String>,
}

impl ComplianceClient {
    pub fn new(source: &SourceConfig) -> anyhow::Result<ComplianceClient> {
        Ok(ComplianceClient {
            http: reqwest::Client::new(),
            base_url: source.base_url.clone(),
            key: source.api_key.clone(),
            version: source.anthropic_version.clone(),
        })
    }

    pub async fn fetch_page(
        &self,
        q: &PageQuery,
        cancel: &CancellationToken,
    ) -> Result<Page, FetchError> {
        loop {
            if cancel.is_cancelled() {
                return Err(FetchError::Cancelled);
            }
            let mut params = vec![
                ("created_at.gte", crate::model::format_time(q.created_gte)),
                ("created_at.lt", crate::model::format_time(q.created_lt)),
                ("limit", q.limit.to_string()),
            ];
            if let Some(a) = &q.after_id {
                params.push(("after_id", a.clone()));
            }
            let resp = self
                .http
                .get(format!("{}/v1/compliance/activities", self.base_url))
                .header("x-api-key", self.key.expose_secret())
                .header("anthropic-version", &self.version)
                .query(&params)
                .send()
                .await;
            let Ok(resp) = resp else {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            };
            let rid = resp
                .headers()
                .get("request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let status = resp.status().as_u16();
            let body = resp.bytes().await.unwrap_or_default();
            match status {
                200 => match serde_json::from_slice::<Envelope>(&body) {
                    Ok(env) => {
                        return Ok(Page {
                            activities: env.data,
                            has_more: env.has_more,
                            first_id: env.first_id,
                            last_id: env.last_id,
                            attempt_request_ids: rid.iter().cloned().collect(),
                            request_id: rid,
                        });
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
                },
                401 | 403 => {
                    return Err(FetchError::Unauthorized {
                        status,
                        error_type: String::new(),
                        message: String::from_utf8_lossy(&body).into(),
                        request_id: rid,
                        hint: "",
                    });
                }
                400 => {
                    return Err(FetchError::BadCursor {
                        message: String::from_utf8_lossy(&body).into(),
                        request_id: rid,
                    });
                }
                _ => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
            }
        }
    }
}
