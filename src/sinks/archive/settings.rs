//! The settings of `type = "archive"`: its row in the registry, its own
//! task, and the reader of its keys.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ArchiveTask;
use crate::archive::{ArchiveBackend, ArchiveS3Config, ObjectLock, ObjectLockMode};
use crate::redact::Redactor;
use crate::sinks::contract::{BoxFuture, Destination};
use crate::sinks::registry::{LocalPlace, OpenContext, SinkSettings, SinkType};
use crate::sinks::settings::SinkConfig;
use crate::sinks::{SinkStats, SinkTask, redactor_for};

/// `type = "archive"`: the audit-evidence archive (gzip NDJSON hour segments
/// and a hash-chained manifest), always of the raw activities.
#[derive(Debug, Clone)]
pub struct ArchiveSinkConfig {
    pub backend: ArchiveBackend,
}

/// `type = "archive"` in the registry (`sinks::registry`). Batches are the
/// journal reads of a flush (it streams whole sealed hours into segments;
/// these only size the reads).
pub const TYPE: SinkType = SinkType {
    name: "archive",
    batch: (5000, 16_000_000, Duration::from_secs(0)),
    raw_only: true,
    read: keys::read_archive_sink,
};

impl SinkSettings for ArchiveSinkConfig {
    /// Evidence of what Anthropic served: never a finding.
    fn activities_only(&self) -> bool {
        true
    }

    fn add_secrets(&self, redactor: &mut Redactor) {
        match &self.backend {
            ArchiveBackend::Local { .. } => {}
            // Credentials come from the environment or a credentials
            // service; the backend adds the ones it signs with
            // (`S3Backend::session_secrets`).
            ArchiveBackend::S3(_) => {
                for name in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
                    if let Ok(value) = std::env::var(name) {
                        redactor.add(&value);
                    }
                }
            }
        }
    }

    fn open<'a>(
        &'a self,
        cx: OpenContext<'a>,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn Destination>>> {
        Box::pin(async move {
            anyhow::bail!(
                "sink {} is an archive sink, which replay does not write to: its segments hold \
                 sealed hours once each. Use `claudit archive export` to read a range from it",
                cx.sink.name
            )
        })
    }

    fn check<'a>(
        &'a self,
        sink: &'a SinkConfig,
    ) -> BoxFuture<'a, (Result<String, String>, Vec<String>)> {
        Box::pin(crate::archive::backend::check(&sink.name, &self.backend))
    }

    /// An archive moves its cursor over whole sealed hours, not batches.
    fn own_task(
        &self,
        task: SinkTask,
        cancel: CancellationToken,
    ) -> Result<BoxFuture<'static, anyhow::Result<SinkStats>>, SinkTask> {
        let archive = ArchiveTask {
            archive: self.clone(),
            redactor: redactor_for(&task.config),
            counters: task.metrics.sink(&task.config.name),
            config: task.config,
            store: task.store,
            journal_head: task.journal_head,
        };
        Ok(Box::pin(archive.run(cancel)))
    }

    fn local_place(&self) -> Option<LocalPlace> {
        match &self.backend {
            ArchiveBackend::Local { path } => Some(LocalPlace::Directory { path: path.clone() }),
            ArchiveBackend::S3(_) => None,
        }
    }

    fn seals_hours(&self) -> bool {
        true
    }
}

/// The keys of `type = "archive"`: every problem is reported, with its
/// line and the fix.
mod keys {
    use super::*;
    use crate::sinks::settings::SinkKind;
    use crate::toml_reader::keys::*;
    use crate::toml_reader::{Ctx, Got, Table};

    /// The keys of `type = "archive"`.
    pub(super) fn read_archive_sink(cx: &mut Ctx, t: &mut Table) -> Option<SinkKind> {
        let backend = match t.required_text(cx, "backend", "\"local\" (or \"s3\")") {
            None => None,
            Some(b) if b.value == "local" || b.value == "s3" => Some(b.value),
            Some(b) => {
                let msg = format!(
                    "unknown archive backend {}; write backend = \"local\" (a directory, with path = ...) \
                     or backend = \"s3\" (with bucket = ...)",
                    b.shown()
                );
                text_error(cx, t, "backend", &b, msg);
                None
            }
        };
        match backend.as_deref() {
            Some("local") => {
                // Keys of the other backend are left unread: `finish` reports them.
                let path = t.required_path(cx, "path", "\"/var/lib/claudit/archive\"");
                Some(SinkKind::new(ArchiveSinkConfig {
                    backend: ArchiveBackend::Local { path: path? },
                }))
            }
            Some(_) => {
                let bucket = t.required_text(cx, "bucket", "\"example-claudit-archive\"");
                let bucket = bucket.and_then(|b| {
                    let ok = (3..=63).contains(&b.value.len())
                        && b.value.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'
                        });
                    if ok {
                        Some(b.value)
                    } else {
                        let msg = format!(
                            "{} is not a valid bucket name: 3 to 63 of a-z, 0-9, \"-\" and \".\"",
                            b.shown()
                        );
                        text_error(cx, t, "bucket", &b, msg);
                        None
                    }
                });
                let prefix = match t.text(cx, "prefix") {
                    Got::Absent => Some(String::new()),
                    Got::Invalid => None,
                    Got::Value(p) if p.value.starts_with('/') => {
                        let msg = format!(
                            "prefix {} must not start with \"/\"; write e.g. prefix = \"claudit/\"",
                            p.shown()
                        );
                        text_error(cx, t, "prefix", &p, msg);
                        None
                    }
                    Got::Value(p) if p.value.is_empty() || p.value.ends_with('/') => Some(p.value),
                    Got::Value(p) => Some(format!("{}/", p.value)),
                };
                let region = match t.text(cx, "region") {
                    Got::Absent => Some(
                        std::env::var("AWS_REGION")
                            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                            .unwrap_or_else(|_| "us-east-1".to_string()),
                    ),
                    Got::Invalid => None,
                    Got::Value(r) => Some(r.value),
                };
                let endpoint = match t.text(cx, "endpoint") {
                    Got::Absent => Some(None),
                    Got::Invalid => None,
                    Got::Value(e) => match reqwest::Url::parse(e.value.trim()) {
                        Ok(u) if matches!(u.scheme(), "http" | "https") => {
                            Some(Some(e.value.trim().trim_end_matches('/').to_string()))
                        }
                        _ => {
                            let msg = format!(
                                "endpoint {} is not an http(s) URL; write e.g. endpoint = \"https://minio.example.com:9000\"",
                                e.shown()
                            );
                            text_error(cx, t, "endpoint", &e, msg);
                            None
                        }
                    },
                };
                let mode = match t.text(cx, "object_lock_mode") {
                    Got::Absent => Some(None),
                    Got::Invalid => None,
                    Got::Value(m) => match m.value.as_str() {
                        "compliance" => Some(Some(ObjectLockMode::Compliance)),
                        "governance" => Some(Some(ObjectLockMode::Governance)),
                        _ => {
                            let msg = format!(
                                "unknown object_lock_mode {}; write \"compliance\" (nobody can delete \
                                 before retention ends) or \"governance\" (special permission can)",
                                m.shown()
                            );
                            text_error(cx, t, "object_lock_mode", &m, msg);
                            None
                        }
                    },
                };
                let has_retention = t.has_key("retention");
                let retention = t.duration(cx, "retention", secs(7 * 365 * DAY));
                let object_lock = match (mode, retention) {
                    (Some(Some(mode)), Some(retention)) if !retention.is_zero() => {
                        Some(Some(ObjectLock { mode, retention }))
                    }
                    (Some(Some(_)), Some(_)) => {
                        let line = t.line_of_key(cx, "retention");
                        t_error(
                            cx,
                            t,
                            "retention",
                            line,
                            "must be longer than 0; write e.g. retention = \"7y\"".to_string(),
                        );
                        None
                    }
                    (Some(None), Some(_)) if has_retention => {
                        let line = t.line_of_key(cx, "retention");
                        t_error(cx, t, "retention", line, "retention needs object_lock_mode; add \
                            object_lock_mode = \"compliance\" (or \"governance\"), or remove retention".to_string());
                        None
                    }
                    (Some(None), Some(_)) => Some(None),
                    _ => None,
                };
                Some(SinkKind::new(ArchiveSinkConfig {
                    backend: ArchiveBackend::S3(ArchiveS3Config {
                        bucket: bucket?,
                        prefix: prefix?,
                        region: region?,
                        endpoint: endpoint?,
                        object_lock: object_lock?,
                    }),
                }))
            }
            None => None,
        }
    }
}
