//! `claudit backfill`: reads a historical range into the journal; the sinks
//! then deliver it. The range and its progress live in the state database,
//! so an interrupted backfill resumes where it stopped when rerun.
//!
//! If no daemon holds the state database, the backfill reads the range
//! itself; if the daemon is running, it registers the range and the
//! daemon's source reads it (sharing that source's rate limiter, so the
//! parent organization's budget is never exceeded by two processes) while
//! this command reports progress.
//!
//! Progress: a bar with ETA (indicatif) when stderr is a terminal, a log
//! line every `--progress-every` otherwise. Windows are sized by what they
//! hold, so one window may span most of the range; the walk reads it newest
//! first, and the progress counts what it has read so far (from the oldest
//! created_at read in the open window up to its end) on top of the windows
//! completed, with the requests spent. Ctrl-C stops after the page in
//! flight and prints the command that resumes the same range (from the
//! open window's cursor).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Config;
use crate::enrich::Enricher;
use crate::source::{SourceTask, fmt_ms};
use crate::store::{InstanceLock, SharedStore, Store, WindowKind};

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

/// How a backfill command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The whole range is in the journal.
    Complete { records: i64 },
    /// Stopped (Ctrl-C, SIGTERM) with `[since, read_up_to_ms)` read; the
    /// same range given again resumes from there.
    Interrupted { read_up_to_ms: i64 },
}

/// Reads `[since, until)` of `source_name` into the journal (or follows the
/// running daemon reading it), reporting progress: a bar with ETA when
/// stderr is a terminal, otherwise a log line every `progress_every`.
pub async fn run(
    config: &Config,
    source_name: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    progress_every: Duration,
    cancel: CancellationToken,
) -> anyhow::Result<Outcome> {
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
    let (row, open) = store
        .call(move |s| -> Result<_, crate::store::StoreError> {
            let row = s.add_backfill(&name, since_ms, until_ms)?;
            Ok((row, s.open_window(&name, WindowKind::Backfill)?))
        })
        .await?;
    if row.requests > 0 || row.next_ms > since_ms {
        println!(
            "resuming backfill of {source_name}: {:.0}% already read ({} new records, {} requests)",
            (100.0 * row.read_ratio(open.as_ref())).floor(),
            row.records,
            row.requests
        );
    }
    let reporter = Reporter {
        path: config.state.path.clone(),
        source: source.name.clone(),
        since_ms,
        until_ms,
        every: progress_every,
    };

    let daemon_reads = match InstanceLock::acquire(&config.state.path) {
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
                enricher: Arc::new(Enricher::new(&config.enrich)?),
                journal_head: head,
                backfill_only: true,
                metrics: Default::default(),
            };
            let progress_done = CancellationToken::new();
            let progress = tokio::spawn(reporter.clone().run(progress_done.clone()));
            let result = task.run(cancel.clone()).await;
            progress_done.cancel();
            progress.await??;
            result?;
            false
        }
        Err(_) => {
            println!(
                "the daemon is running on this state database: it reads the range; following its progress"
            );
            reporter.clone().run(cancel.clone()).await?;
            true
        }
    };
    let store = Store::open_readonly(&config.state.path)?;
    let row = store
        .backfill(source_name, since_ms, until_ms)?
        .expect("registered above");
    let open = store.open_window(source_name, WindowKind::Backfill)?;
    let percent = (100.0 * row.read_ratio(open.as_ref())).floor();
    if row.next_ms >= until_ms {
        println!(
            "backfill complete: {} new records journaled with {} requests; the sinks deliver them",
            row.records, row.requests
        );
        Ok(Outcome::Complete {
            records: row.records,
        })
    } else if daemon_reads {
        println!(
            "stopped following at {percent}% read; the daemon keeps reading the range (claudit status shows it)"
        );
        Ok(Outcome::Interrupted {
            read_up_to_ms: row.next_ms,
        })
    } else {
        // The same range, in absolute times: a relative `--since 7d` given
        // again later would be another range and start over.
        println!(
            "backfill stopped with {percent}% read ({} new records, {} requests; a window in progress resumes from its cursor); to resume, run: claudit backfill --config {} --source {source_name} --since {} --until {}",
            row.records,
            row.requests,
            config.file.display(),
            fmt_ms(since_ms),
            fmt_ms(until_ms)
        );
        Ok(Outcome::Interrupted {
            read_up_to_ms: row.next_ms,
        })
    }
}

/// Follows a backfill's row in the state database until the range is read
/// or `stop`: an indicatif bar with ETA on a terminal, log lines otherwise.
#[derive(Clone)]
struct Reporter {
    path: std::path::PathBuf,
    source: String,
    since_ms: i64,
    until_ms: i64,
    every: Duration,
}

impl Reporter {
    async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        use std::io::IsTerminal;
        let total = (self.until_ms - self.since_ms).max(1) as u64;
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "backfill {prefix} [{bar:40}] {percent:>3}% {msg} (ETA {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(self.source.clone());
            Some(bar)
        } else {
            None
        };
        // The bar redraws often; log lines come every `every`.
        let every = if bar.is_some() {
            Duration::from_millis(500)
        } else {
            self.every
        };
        let started = std::time::Instant::now();
        let mut first_ms = None;
        loop {
            let store = Store::open_readonly(&self.path)?;
            let row = store.backfill(&self.source, self.since_ms, self.until_ms)?;
            let open = store.open_window(&self.source, WindowKind::Backfill)?;
            drop(store);
            let finished = stop.is_cancelled();
            if let Some(row) = &row {
                let done = row.read_ms(open.as_ref()).clamp(0, total as i64) as u64;
                let first = *first_ms.get_or_insert(done);
                // The window being read, and how far down its walk is.
                let reading = open
                    .as_ref()
                    .filter(|w| w.start_ms == row.next_ms && row.next_ms < row.until_ms);
                let position = match reading {
                    Some(w) => format!(
                        "reading {}..{} down to {}",
                        fmt_ms(w.start_ms),
                        fmt_ms(w.end_ms),
                        fmt_ms(w.read_from_ms.unwrap_or(w.end_ms))
                    ),
                    None => format!("read up to {}", fmt_ms(row.next_ms.min(self.until_ms))),
                };
                match &bar {
                    Some(bar) => {
                        bar.set_position(done);
                        bar.set_message(format!(
                            "{position}, {} new records, {} requests",
                            row.records, row.requests
                        ));
                    }
                    None => {
                        let eta = eta(started.elapsed(), done - first, total - done);
                        info!(
                            source = %self.source,
                            percent = 100 * done / total,
                            read_up_to = %fmt_ms(row.next_ms.min(self.until_ms)),
                            reading = %reading.map_or(String::new(), |w| format!(
                                "{}..{} down to {}",
                                fmt_ms(w.start_ms),
                                fmt_ms(w.end_ms),
                                fmt_ms(w.read_from_ms.unwrap_or(w.end_ms))
                            )),
                            records = row.records,
                            requests = row.requests,
                            eta = %eta.map_or("unknown".to_string(), |d| humantime::format_duration(d).to_string()),
                            "backfill progress"
                        );
                    }
                }
                if done >= total {
                    break;
                }
            }
            if finished {
                break;
            }
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
        if let Some(bar) = bar {
            bar.abandon();
        }
        Ok(())
    }
}

/// Time left at the rate of this run so far: `elapsed` took `done` units;
/// `None` before any progress.
fn eta(elapsed: Duration, done: u64, remaining: u64) -> Option<Duration> {
    if done == 0 {
        return None;
    }
    let secs = elapsed.as_secs_f64() * remaining as f64 / done as f64;
    Some(Duration::from_secs(secs.ceil() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_extrapolates_this_runs_rate() {
        assert_eq!(eta(Duration::from_secs(10), 0, 100), None);
        assert_eq!(
            eta(Duration::from_secs(10), 25, 75),
            Some(Duration::from_secs(30))
        );
        assert_eq!(eta(Duration::from_secs(3), 100, 0), Some(Duration::ZERO));
    }

    #[test]
    fn time_arguments() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-03-10T12:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            parse_time_arg("2026-01-01", now).unwrap().to_rfc3339(),
            "2026-01-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_time_arg("2d", now).unwrap().to_rfc3339(),
            "2026-03-08T12:00:00+00:00"
        );
        let err = parse_time_arg("yesterday", now).unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
    }
}
