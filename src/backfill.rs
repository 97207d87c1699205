//! `claudit backfill`: reads a historical range into the journal; the sinks
//! then deliver it. The range and its progress live in the state database,
//! so an interrupted backfill resumes where it stopped when rerun.
//!
//! If no daemon holds the state database, the backfill reads the range
//! itself; if the daemon is running, it registers the range and the
//! daemon's source reads it (sharing that source's rate limiter, so the
//! parent organization's budget is never exceeded by two processes) while
//! this command reports progress.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::enrich::Enricher;
use crate::ocsf::Mapper;
use crate::source::{SourceTask, fmt_ms};
use crate::store::{InstanceLock, SharedStore, Store};

/// Parses `--since`/`--until`: RFC 3339 (`2026-01-01T00:00:00Z`), a date
/// (`2026-01-01`, midnight UTC), or a duration meaning that long ago (`7d`).
pub fn parse_time_arg(arg: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Some(t) = crate::model::parse_time(arg) {
        return Ok(t);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(arg, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    if let Ok(ago) = humantime::parse_duration(arg) {
        return chrono::Duration::from_std(ago)
            .map(|d| now - d)
            .map_err(|e| e.to_string());
    }
    Err(format!(
        "cannot read time {arg:?}: write an RFC 3339 time (2026-01-01T00:00:00Z), a date (2026-01-01), or a duration ago (7d, 36h)"
    ))
}

pub async fn run(
    config: &Config,
    source_name: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let source = config.source(source_name).ok_or_else(|| {
        let names: Vec<_> = config.sources.iter().map(|s| s.name.as_str()).collect();
        anyhow::anyhow!(
            "no source named {source_name:?} in {}; configured sources: {}",
            config.file.display(),
            names.join(", ")
        )
    })?;
    if since >= until {
        anyhow::bail!("--since ({since}) must be before --until ({until})");
    }
    let (since_ms, until_ms) = (since.timestamp_millis(), until.timestamp_millis());
    let store = SharedStore::open(&config.state.path)?;
    let name = source.name.clone();
    let row = store
        .call(move |s| s.add_backfill(&name, since_ms, until_ms))
        .await?;
    if row.next_ms > since_ms {
        println!(
            "resuming backfill of {source_name}: {} already read",
            fmt_ms(row.next_ms)
        );
    }

    match InstanceLock::acquire(&config.state.path) {
        Ok(_lock) => {
            println!(
                "backfilling {source_name} from {} to {} (no daemon running: reading here)",
                fmt_ms(since_ms),
                fmt_ms(until_ms)
            );
            let (head, _rx) = watch::channel(0);
            let task = SourceTask {
                config: source.clone(),
                store: store.clone(),
                mapper: Arc::new(Mapper::new(&config.ocsf)),
                enricher: Arc::new(Enricher::new(&config.enrich)?),
                journal_head: head,
                backfill_only: true,
                metrics: Default::default(),
            };
            let progress = tokio::spawn(report_progress(
                config.state.path.clone(),
                source.name.clone(),
                since_ms,
                until_ms,
                cancel.clone(),
            ));
            let result = task.run(cancel.clone()).await;
            progress.abort();
            result?;
        }
        Err(_) => {
            println!(
                "the daemon is running on this state database: it reads the range; following its progress"
            );
            report_progress(
                config.state.path.clone(),
                source.name.clone(),
                since_ms,
                until_ms,
                cancel.clone(),
            )
            .await?;
        }
    }
    let store = Store::open_readonly(&config.state.path)?;
    let row = store
        .backfill(source_name, since_ms, until_ms)?
        .expect("registered above");
    if row.next_ms >= until_ms {
        println!(
            "backfill complete: {} new records journaled; the sinks deliver them",
            row.records
        );
    } else {
        println!(
            "backfill stopped at {}; run the same command again to resume",
            fmt_ms(row.next_ms)
        );
    }
    Ok(())
}

/// Prints progress every few seconds until the range is read or `cancel`.
async fn report_progress(
    path: std::path::PathBuf,
    source: String,
    since_ms: i64,
    until_ms: i64,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let row = Store::open_readonly(&path)?.backfill(&source, since_ms, until_ms)?;
        if let Some(row) = &row {
            let pct = 100 * (row.next_ms - since_ms) / (until_ms - since_ms).max(1);
            println!(
                "backfill {source}: {pct}% (read up to {}), {} new records",
                fmt_ms(row.next_ms),
                row.records
            );
            if row.next_ms >= until_ms {
                return Ok(());
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}
