//! What /healthz and /readyz check, as plain functions of a snapshot of the
//! state database and the clock (the HTTP side is `server.rs`).
//!
//! Ready means the data flows: every source polled the Compliance API
//! successfully within the time its schedule allows and none of its windows
//! is stuck on a paging fault (an answer that cannot move it on), and no
//! sink is stuck
//! (undelivered records older than `ready_max_sink_delay` and no successful
//! delivery for as long). A sink that is working through a backlog is not
//! stuck; its lag shows in `claudit_sink_behind_seconds` instead.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::store::{BackfillRow, Store, StoreError, WindowRow};

/// What the checks need from the configuration.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub state_path: PathBuf,
    pub sources: Vec<SourceTarget>,
    pub sinks: Vec<SinkTarget>,
    pub ready_max_sink_delay: Duration,
    /// When the pipeline started (epoch ms): the clock of every check
    /// starts no earlier, so a restart is not reported as a stall.
    pub started_ms: i64,
}

/// One delivery the checks follow: a sink's stream, by its delivery name
/// (`siem`, `siem.findings`, `siem.directory`), with its own cursor.
#[derive(Debug, Clone)]
pub struct SinkTarget {
    pub name: String,
    pub stream: Stream,
    /// Allowed on top of `ready_max_sink_delay`: an archive sink holds each
    /// hour back until every source's watermark passed it, by design.
    pub holds_back: Duration,
}

/// What a delivery reads: the journal's activities, the findings, or the
/// directory stream's entries. Each has its own table, so its own count of
/// what is left and its own age of the oldest undelivered record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Activities,
    Findings,
    Directory,
}

#[derive(Debug, Clone)]
pub struct SourceTarget {
    pub name: String,
    /// The longest a healthy source goes without a successful poll.
    pub max_poll_gap: Duration,
    pub no_data_after: Duration,
}

/// What the state database says, read for one scrape or probe.
#[derive(Debug, Clone, Default)]
pub struct StateSnapshot {
    pub sources: Vec<SourceSnapshot>,
    pub sinks: Vec<SinkSnapshot>,
    pub journal_rows: i64,
    pub database_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct SourceSnapshot {
    pub name: String,
    pub watermark_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<String>,
    /// Open windows: how far their walks have read, and their faults.
    pub windows: Vec<WindowRow>,
    /// Unfinished backfill ranges.
    pub backfills: Vec<BackfillRow>,
}

#[derive(Debug, Clone)]
pub struct SinkSnapshot {
    pub name: String,
    pub events_behind: i64,
    pub oldest_undelivered_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<String>,
    pub dead_letters: i64,
}

impl StateSnapshot {
    pub fn read(store: &Store, targets: &Targets) -> Result<StateSnapshot, StoreError> {
        let mut snapshot = StateSnapshot {
            journal_rows: store.journal_rows()?,
            database_bytes: database_bytes(&targets.state_path),
            ..StateSnapshot::default()
        };
        for s in &targets.sources {
            let state = store.source_state(&s.name)?;
            snapshot.sources.push(SourceSnapshot {
                name: s.name.clone(),
                watermark_ms: state.watermark_ms,
                last_success_ms: state.last_success_ms,
                last_error: state.last_error,
                windows: store.pending_windows(&s.name)?,
                backfills: store.open_backfills(&s.name)?,
            });
        }
        for target in &targets.sinks {
            let name = &target.name;
            let cursor = store.sink_cursor(name)?;
            let seq = cursor.seq;
            let events_behind = match target.stream {
                Stream::Activities => store.count_after(seq)?,
                Stream::Findings => store.count_findings_after(seq)?,
                Stream::Directory => store.count_directory_after(seq)?,
            };
            // Activities are aged from their `created_at` (a source's lag
            // counts); findings and directory entries from when they were
            // journaled, the earliest they could be delivered.
            let oldest_undelivered_ms = if events_behind == 0 {
                None
            } else {
                match target.stream {
                    Stream::Activities => store.oldest_after(seq)?,
                    Stream::Findings => store.oldest_finding_after(seq)?,
                    Stream::Directory => store.oldest_directory_after(seq)?,
                }
            };
            snapshot.sinks.push(SinkSnapshot {
                name: name.clone(),
                events_behind,
                oldest_undelivered_ms,
                last_success_ms: cursor.last_success_ms,
                last_error: cursor.last_error,
                dead_letters: store.dead_letter_count(name)?,
            });
        }
        Ok(snapshot)
    }
}

/// The database file and its write-ahead log, in bytes.
fn database_bytes(path: &Path) -> u64 {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    size(path) + size(Path::new(&wal))
}

/// The JSON body of /healthz and /readyz.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    /// "ok" or "failing".
    pub status: &'static str,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Report {
    fn new(checks: Vec<Check>) -> Report {
        let ok = checks.iter().all(|c| c.ok);
        Report {
            status: if ok { "ok" } else { "failing" },
            checks,
        }
    }

    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

/// /healthz: the pipeline's tasks are running.
pub fn liveness(tasks: &[(String, bool)]) -> Report {
    let mut checks: Vec<Check> = tasks
        .iter()
        .map(|(name, alive)| Check {
            name: format!("task {name}"),
            ok: *alive,
            detail: if *alive { "running" } else { "stopped" }.to_string(),
        })
        .collect();
    if checks.is_empty() {
        checks.push(Check {
            name: "pipeline".into(),
            ok: false,
            detail: "no task running (starting, or stopping)".into(),
        });
    }
    Report::new(checks)
}

/// /readyz: sources poll and sinks deliver.
pub fn readiness(snapshot: &StateSnapshot, targets: &Targets, now_ms: i64) -> Report {
    let mut checks = Vec::new();
    for (target, s) in targets.sources.iter().zip(&snapshot.sources) {
        let allowed = target.max_poll_gap.as_millis() as i64;
        let since = s
            .last_success_ms
            .unwrap_or(i64::MIN)
            .max(targets.started_ms);
        let age = now_ms - since;
        let stuck = s.windows.iter().find(|w| w.fault.is_some());
        let ok = age <= allowed && stuck.is_none();
        let mut detail = match s.last_success_ms {
            Some(t) => format!(
                "last successful poll {} ago (allowed {})",
                human(now_ms - t),
                human(allowed)
            ),
            None => format!(
                "no successful poll yet, started {} ago (allowed {})",
                human(age),
                human(allowed)
            ),
        };
        if let Some(w) = stuck {
            detail.push_str(&format!("; {}", fault_text(w, now_ms)));
        } else if !ok && let Some(e) = &s.last_error {
            detail.push_str(&format!("; last error: {e}"));
        }
        checks.push(Check {
            name: format!("source {}", s.name),
            ok,
            detail,
        });
    }
    for s in &snapshot.sinks {
        let holds_back = targets
            .sinks
            .iter()
            .find(|t| t.name == s.name)
            .map_or(Duration::ZERO, |t| t.holds_back);
        let allowed = (targets.ready_max_sink_delay + holds_back).as_millis() as i64;
        let (ok, detail) = match s.oldest_undelivered_ms {
            None => (true, "nothing to deliver".to_string()),
            Some(oldest) => {
                let behind = now_ms - oldest;
                let since = s
                    .last_success_ms
                    .unwrap_or(i64::MIN)
                    .max(targets.started_ms);
                let stalled = now_ms - since;
                let ok = behind <= allowed || stalled <= allowed;
                let mut detail = format!(
                    "{} events behind, the oldest created {} ago; {} (allowed {})",
                    s.events_behind,
                    human(behind),
                    match s.last_success_ms {
                        Some(t) => format!("last delivery {} ago", human(now_ms - t)),
                        None => "nothing delivered yet".to_string(),
                    },
                    human(allowed)
                );
                if !ok && let Some(e) = &s.last_error {
                    detail.push_str(&format!("; last error: {e}"));
                }
                (ok, detail)
            }
        };
        checks.push(Check {
            name: format!("sink {}", s.name),
            ok,
            detail,
        });
    }
    Report::new(checks)
}

/// "paging fault on the live window for 3m (5 attempts): ..." for a
/// window stuck on a fault (`status` says the same).
pub fn fault_text(w: &WindowRow, now_ms: i64) -> String {
    format!(
        "paging fault on the {} window for {} ({} attempts): {}",
        w.kind.as_str(),
        human(now_ms - w.fault_since_ms.unwrap_or(now_ms)),
        w.faults,
        w.fault.as_deref().unwrap_or("")
    )
}

/// "95s", "12m", "3h" for details.
fn human(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn targets() -> Targets {
        Targets {
            state_path: PathBuf::from("/nonexistent/state.db"),
            sources: vec![SourceTarget {
                name: "acme".into(),
                max_poll_gap: Duration::from_secs(12 * 60),
                no_data_after: Duration::from_secs(6 * 3600),
            }],
            sinks: vec![SinkTarget {
                name: "siem".into(),
                stream: Stream::Activities,
                holds_back: Duration::ZERO,
            }],
            ready_max_sink_delay: Duration::from_secs(15 * 60),
            started_ms: 0,
        }
    }

    fn snapshot(poll: Option<i64>, oldest: Option<i64>, delivered: Option<i64>) -> StateSnapshot {
        StateSnapshot {
            sources: vec![SourceSnapshot {
                name: "acme".into(),
                watermark_ms: None,
                last_success_ms: poll,
                last_error: Some("HTTP 403: scope".into()),
                windows: Vec::new(),
                backfills: Vec::new(),
            }],
            sinks: vec![SinkSnapshot {
                name: "siem".into(),
                events_behind: oldest.map_or(0, |_| 5),
                oldest_undelivered_ms: oldest,
                last_success_ms: delivered,
                last_error: Some("HTTP 503".into()),
                dead_letters: 0,
            }],
            ..StateSnapshot::default()
        }
    }

    #[test]
    fn ready_when_polling_and_delivering() {
        let now = 100 * MIN;
        let r = readiness(&snapshot(Some(now - MIN), None, Some(0)), &targets(), now);
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.checks[1].detail, "nothing to deliver");
    }

    #[test]
    fn a_source_without_a_poll_for_longer_than_allowed_fails_with_its_last_error() {
        let now = 100 * MIN;
        let r = readiness(&snapshot(Some(now - 13 * MIN), None, None), &targets(), now);
        assert!(!r.ok());
        assert_eq!(r.status, "failing");
        assert!(!r.checks[0].ok);
        assert!(r.checks[0].detail.contains("13m ago"), "{r:?}");
        assert!(r.checks[0].detail.contains("HTTP 403"), "{r:?}");
        // Right after a restart the clock starts at the pipeline's start.
        let mut t = targets();
        t.started_ms = now - MIN;
        assert!(readiness(&snapshot(Some(now - 13 * MIN), None, None), &t, now).ok());
    }

    #[test]
    fn a_window_stuck_on_a_paging_fault_fails_at_once_and_names_it() {
        let now = 100 * MIN;
        let mut state = snapshot(Some(now - MIN), None, Some(0));
        state.sources[0].windows = vec![crate::store::WindowRow {
            fault: Some("has_more without a cursor (request-id req_9)".into()),
            fault_since_ms: Some(now - 3 * MIN),
            faults: 5,
            ..crate::store::WindowRow::fresh(crate::store::WindowKind::Backfill, 0, MIN)
        }];
        let r = readiness(&state, &targets(), now);
        assert!(!r.checks[0].ok, "{r:?}");
        assert!(
            r.checks[0]
                .detail
                .contains("paging fault on the backfill window for 3m (5 attempts): has_more without a cursor (request-id req_9)"),
            "{r:?}"
        );
        // The fault cleared: ready again.
        state.sources[0].windows[0].fault = None;
        assert!(readiness(&state, &targets(), now).ok());
    }

    #[test]
    fn a_stuck_sink_fails_but_one_working_through_a_backlog_does_not() {
        let now = 100 * MIN;
        let poll = Some(now - MIN);
        // Oldest undelivered 20 min old, last delivery 16 min ago: stuck.
        let r = readiness(
            &snapshot(poll, Some(now - 20 * MIN), Some(now - 16 * MIN)),
            &targets(),
            now,
        );
        assert!(!r.checks[1].ok, "{r:?}");
        assert!(r.checks[1].detail.contains("HTTP 503"));
        // Never delivered anything since a start long ago: stuck.
        assert!(!readiness(&snapshot(poll, Some(now - 20 * MIN), None), &targets(), now).ok());
        // Old backlog, but delivering: not stuck.
        assert!(
            readiness(
                &snapshot(poll, Some(now - 600 * MIN), Some(now - MIN)),
                &targets(),
                now
            )
            .ok()
        );
        // Failing, but only for a moment: within the allowance.
        assert!(
            readiness(
                &snapshot(poll, Some(now - 2 * MIN), Some(now - 20 * MIN)),
                &targets(),
                now
            )
            .ok()
        );
    }

    #[test]
    fn an_archive_sink_may_hold_an_hour_back() {
        let now = 200 * MIN;
        let poll = Some(now - MIN);
        // Undelivered for 70 minutes, last delivery 55 minutes ago: normal
        // for an archive sealing hours, a stall for any other sink.
        let state = snapshot(poll, Some(now - 70 * MIN), Some(now - 55 * MIN));
        assert!(!readiness(&state, &targets(), now).ok());
        let mut t = targets();
        t.sinks[0].holds_back = Duration::from_secs(3600 + 7 * 60);
        assert!(readiness(&state, &t, now).ok());
        // Still red once it stalls past the hour plus the threshold.
        let stuck = snapshot(poll, Some(now - 90 * MIN), Some(now - 90 * MIN));
        assert!(!readiness(&stuck, &t, now).ok());
    }

    #[test]
    fn liveness_lists_tasks_and_fails_on_a_stopped_one_or_none() {
        let ok = liveness(&[("source acme".into(), true), ("sink siem".into(), true)]);
        assert!(ok.ok());
        let dead = liveness(&[("source acme".into(), true), ("sink siem".into(), false)]);
        assert!(!dead.ok());
        assert_eq!(dead.checks[1].name, "task sink siem");
        assert!(!liveness(&[]).ok());
        let json = serde_json::to_value(&dead).unwrap();
        assert_eq!(json["status"], "failing");
        assert_eq!(json["checks"][1]["ok"], false);
    }

    #[test]
    fn a_findings_stream_is_read_from_the_findings_and_fails_when_stuck() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut store = Store::open(&path).unwrap();
        store
            .conn_mut()
            .execute(
                "INSERT INTO findings (uid, rule_id, severity, anchor_id, created_at_ms,
                   first_seen_ms, last_seen_ms, detected_ms, retrospective, related, plain, ocsf,
                   journaled_at_ms)
                 VALUES ('f1', 'r', 'high', 'a', 0, 0, 0, 0, 0, '[]', '{}', '{}', ?1)",
                [10 * MIN],
            )
            .unwrap();
        let targets = Targets {
            state_path: path.clone(),
            sinks: vec![
                SinkTarget {
                    name: "siem".into(),
                    stream: Stream::Activities,
                    holds_back: Duration::ZERO,
                },
                SinkTarget {
                    name: "siem.findings".into(),
                    stream: Stream::Findings,
                    holds_back: Duration::ZERO,
                },
            ],
            sources: Vec::new(),
            ..targets()
        };
        let snapshot = StateSnapshot::read(&store, &targets).unwrap();
        assert_eq!(snapshot.sinks[0].events_behind, 0);
        assert_eq!(snapshot.sinks[1].events_behind, 1);
        assert_eq!(snapshot.sinks[1].oldest_undelivered_ms, Some(10 * MIN));
        let r = readiness(&snapshot, &targets, 40 * MIN);
        assert!(!r.ok(), "{r:?}");
        assert_eq!(r.checks[1].name, "sink siem.findings");
        assert!(r.checks[1].detail.starts_with("1 events behind"), "{r:?}");
        // Within the allowed delay it is still ready.
        assert!(readiness(&snapshot, &targets, 20 * MIN).ok());
    }
}
