//! `claudit status`: what the state database says, readable while the daemon
//! runs (WAL readers never block the writer).

use serde::Serialize;

use crate::config::Config;
use crate::source::{fmt_ms, load_progress};
use crate::store::{Store, WindowRow};

#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub state_path: String,
    pub journal_rows: i64,
    pub journal_head_seq: i64,
    pub sources: Vec<SourceStatus>,
    pub sinks: Vec<SinkStatus>,
    pub detections: DetectionStatus,
}

/// The detection task: where it is, and what it found in the last 24 h.
#[derive(Debug, Serialize)]
pub struct DetectionStatus {
    pub enabled: bool,
    /// Last journal seq evaluated.
    pub cursor_seq: i64,
    /// Journal rows not evaluated yet.
    pub events_behind: i64,
    pub evaluated: i64,
    /// Rows no rule could see (not a JSON object).
    pub errors: i64,
    /// The last failed evaluation step, until a step committed (the task
    /// retries from its cursor).
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// Findings journaled in the last 24 hours, by rule, most first.
    pub findings_24h: Vec<crate::store::FindingCount>,
}

#[derive(Debug, Serialize)]
pub struct SourceStatus {
    pub name: String,
    pub watermark: Option<String>,
    /// Seconds between now and the watermark.
    pub lag_seconds: Option<i64>,
    pub journaled: i64,
    pub late_arrivals: i64,
    /// Windows whose page walk is in progress, with how far down the walk
    /// has read: "live 2026-...Z..2026-...Z: 3 pages read, down to 2026-...Z (40%)".
    pub pending_windows: Vec<String>,
    /// A window stuck on a paging fault (the API's answers cannot move it
    /// on): which, since when, how many attempts, and the last answer.
    pub paging_fault: Option<String>,
    /// Unfinished backfill ranges: how much is read and what it cost.
    pub backfills: Vec<String>,
    pub last_success: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// The source's directory context (`[sources.directory]`), when on or synced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<crate::directory::show::DirectoryStatus>,
    /// The source's last directory snapshot (the directory stream), when
    /// one was made: its time and the entries it journaled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory_snapshot: Option<SnapshotStatus>,
}

/// A source's last directory snapshot.
#[derive(Debug, Serialize)]
pub struct SnapshotStatus {
    /// The time it describes (when it was due).
    pub at: String,
    /// Entries it journaled (members and changes).
    pub entries: i64,
    pub journaled_at: String,
}

#[derive(Debug, Serialize)]
pub struct SinkStatus {
    pub name: String,
    /// Whether the sink receives activities (`streams`); when it does not,
    /// its activity cursor never moves and the counts below are 0.
    pub activities: bool,
    pub cursor_seq: i64,
    pub events_behind: i64,
    /// created_at of the oldest record not yet delivered.
    pub oldest_undelivered: Option<String>,
    pub delivered: i64,
    pub last_success: Option<String>,
    /// The error of the last failed attempt, cleared by the next success.
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub dead_letters: i64,
    /// The sink's findings stream (`<sink>.findings`), when it receives findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<FindingStreamStatus>,
    /// The sink's directory stream (`<sink>.directory`), when it receives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectoryStreamStatus>,
}

/// A sink's directory stream: its cursor over the inventory entries.
#[derive(Debug, Serialize)]
pub struct DirectoryStreamStatus {
    pub cursor_seq: i64,
    pub entries_behind: i64,
    pub delivered: i64,
    pub last_error: Option<String>,
    pub dead_letters: i64,
}

/// A sink's findings stream: its cursor over the findings.
#[derive(Debug, Serialize)]
pub struct FindingStreamStatus {
    pub cursor_seq: i64,
    pub findings_behind: i64,
    pub delivered: i64,
    pub last_error: Option<String>,
    pub dead_letters: i64,
}

/// "live 2026-...Z..2026-...Z: 3 pages read, down to 2026-...Z (40%)": a
/// window's walk reads newest first, so what is left is below `read_from`.
fn window_line(w: &WindowRow) -> String {
    let read = match w.read_from_ms {
        Some(from) => format!(
            ", down to {} ({:.0}%)",
            fmt_ms(from),
            (100.0 * w.read_ratio()).floor()
        ),
        None => String::new(),
    };
    format!(
        "{} {}..{}: {} pages read{read}",
        w.kind.as_str(),
        fmt_ms(w.start_ms),
        fmt_ms(w.end_ms),
        w.pages
    )
}

pub fn report(config: &Config, now_ms: i64) -> anyhow::Result<StatusReport> {
    let store = Store::open_readonly(&config.state.path)?;
    let mut sources = Vec::new();
    for source in &config.sources {
        let p = load_progress(&store, &source.name)?;
        let windows = store.pending_windows(&source.name)?;
        sources.push(SourceStatus {
            name: source.name.clone(),
            watermark: p.state.watermark_ms.map(fmt_ms),
            lag_seconds: p.state.watermark_ms.map(|w| (now_ms - w) / 1000),
            journaled: p.state.journaled,
            late_arrivals: p.state.late,
            pending_windows: windows.iter().map(window_line).collect(),
            paging_fault: windows
                .iter()
                .find(|w| w.fault.is_some())
                .map(|w| crate::health::fault_text(w, now_ms)),
            backfills: p
                .backfills
                .iter()
                .map(|b| {
                    let pct = (100.0 * b.read_ratio(p.open_backfill.as_ref())).floor();
                    format!(
                        "{}..{}: {pct}% read, {} records, {} requests",
                        fmt_ms(b.since_ms),
                        fmt_ms(b.until_ms),
                        b.records,
                        b.requests
                    )
                })
                .collect(),
            last_success: p.state.last_success_ms.map(fmt_ms),
            last_error: p.state.last_error,
            last_error_at: p.state.last_error_ms.map(fmt_ms),
            directory: crate::directory::show::status(
                &store,
                &source.name,
                source.directory.enabled,
            )?,
            directory_snapshot: store
                .directory_snapshot(&source.name)?
                .map(|s| SnapshotStatus {
                    at: fmt_ms(s.at_ms),
                    entries: s.entries,
                    journaled_at: fmt_ms(s.journaled_at_ms),
                }),
        });
    }
    let mut sinks = Vec::new();
    for sink in &config.sinks {
        let c = store.sink_cursor(&sink.name)?;
        let activities = sink.streams.activities;
        sinks.push(SinkStatus {
            name: sink.name.clone(),
            activities,
            cursor_seq: c.seq,
            events_behind: if activities {
                store.count_after(c.seq)?
            } else {
                0
            },
            oldest_undelivered: if activities {
                store.oldest_after(c.seq)?.map(fmt_ms)
            } else {
                None
            },
            delivered: c.delivered,
            last_success: c.last_success_ms.map(fmt_ms),
            last_error: c.last_error,
            last_error_at: c.last_error_ms.map(fmt_ms),
            dead_letters: store.dead_letter_count(&sink.name)?,
            findings: if sink.streams.findings && config.detections.enabled {
                let stream = sink.findings_stream().name;
                let c = store.sink_cursor(&stream)?;
                Some(FindingStreamStatus {
                    cursor_seq: c.seq,
                    findings_behind: store.count_findings_after(c.seq)?,
                    delivered: c.delivered,
                    last_error: c.last_error,
                    dead_letters: store.dead_letter_count(&stream)?,
                })
            } else {
                None
            },
            directory: if sink.streams.directory {
                let stream = sink.directory_stream().name;
                let c = store.sink_cursor(&stream)?;
                Some(DirectoryStreamStatus {
                    cursor_seq: c.seq,
                    entries_behind: store.count_directory_after(c.seq)?,
                    delivered: c.delivered,
                    last_error: c.last_error,
                    dead_letters: store.dead_letter_count(&stream)?,
                })
            } else {
                None
            },
        });
    }
    let cursor = store.detection_cursor()?;
    let detections = DetectionStatus {
        enabled: config.detections.enabled,
        cursor_seq: cursor.seq,
        events_behind: store.count_after(cursor.seq)?,
        evaluated: cursor.evaluated,
        errors: cursor.errors,
        last_error: cursor.last_error,
        last_error_at: cursor.last_error_ms.map(fmt_ms),
        findings_24h: store.finding_counts_since(now_ms - 24 * 3600 * 1000)?,
    };
    Ok(StatusReport {
        detections,
        state_path: config.state.path.display().to_string(),
        journal_rows: store.journal_rows()?,
        journal_head_seq: store.head_seq()?,
        sources,
        sinks,
    })
}

impl std::fmt::Display for StatusReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or = |v: &Option<String>, d: &'static str| v.clone().unwrap_or_else(|| d.to_string());
        writeln!(
            f,
            "state: {} ({} journal rows, head seq {})",
            self.state_path, self.journal_rows, self.journal_head_seq
        )?;
        for s in &self.sources {
            writeln!(f, "source {}", s.name)?;
            let lag = s
                .lag_seconds
                .map(|l| format!(" ({l} s behind now)"))
                .unwrap_or_default();
            writeln!(
                f,
                "  watermark:       {}{lag}",
                or(&s.watermark, "none yet (first poll pending)")
            )?;
            writeln!(
                f,
                "  journaled:       {} ({} late arrivals caught)",
                s.journaled, s.late_arrivals
            )?;
            writeln!(f, "  last success:    {}", or(&s.last_success, "never"))?;
            for w in &s.pending_windows {
                writeln!(f, "  pending window:  {w}")?;
            }
            if let Some(fault) = &s.paging_fault {
                writeln!(f, "  stuck:           {fault}")?;
            }
            for b in &s.backfills {
                writeln!(f, "  backfill:        {b}")?;
            }
            if let Some(e) = &s.last_error {
                writeln!(f, "  last error:      {} ({e})", or(&s.last_error_at, "?"))?;
            }
            if let Some(d) = &s.directory {
                write!(f, "{d}")?;
            }
            if let Some(snap) = &s.directory_snapshot {
                writeln!(
                    f,
                    "  last snapshot:   {} ({} entries, journaled {})",
                    snap.at, snap.entries, snap.journaled_at
                )?;
            }
        }
        for s in &self.sinks {
            writeln!(f, "sink {}", s.name)?;
            if s.activities {
                writeln!(
                    f,
                    "  cursor:          seq {} ({} events behind)",
                    s.cursor_seq, s.events_behind
                )?;
                if let Some(o) = &s.oldest_undelivered {
                    writeln!(f, "  oldest pending:  {o}")?;
                }
                writeln!(f, "  delivered:       {}", s.delivered)?;
                writeln!(f, "  last success:    {}", or(&s.last_success, "never"))?;
                writeln!(f, "  dead letters:    {}", s.dead_letters)?;
                if let Some(e) = &s.last_error {
                    writeln!(f, "  last error:      {} ({e})", or(&s.last_error_at, "?"))?;
                }
            } else {
                writeln!(f, "  activities:      not received (its streams)")?;
            }
            if let Some(fs) = &s.findings {
                writeln!(
                    f,
                    "  findings:        seq {} ({} behind), {} delivered, {} dead letters",
                    fs.cursor_seq, fs.findings_behind, fs.delivered, fs.dead_letters
                )?;
                if let Some(e) = &fs.last_error {
                    writeln!(f, "  findings error:  {e}")?;
                }
            }
            if let Some(ds) = &s.directory {
                writeln!(
                    f,
                    "  directory:       seq {} ({} behind), {} delivered, {} dead letters",
                    ds.cursor_seq, ds.entries_behind, ds.delivered, ds.dead_letters
                )?;
                if let Some(e) = &ds.last_error {
                    writeln!(f, "  directory error: {e}")?;
                }
            }
        }
        let d = &self.detections;
        if d.enabled || d.evaluated > 0 {
            writeln!(
                f,
                "detections{}",
                if d.enabled { "" } else { " (disabled)" }
            )?;
            writeln!(
                f,
                "  cursor:          seq {} ({} events behind)",
                d.cursor_seq, d.events_behind
            )?;
            writeln!(
                f,
                "  evaluated:       {} ({} unreadable rows)",
                d.evaluated, d.errors
            )?;
            if let Some(e) = &d.last_error {
                writeln!(
                    f,
                    "  last error:      {} ({e}; retrying from the cursor)",
                    or(&d.last_error_at, "?")
                )?;
            }
            let total: i64 = d.findings_24h.iter().map(|c| c.count).sum();
            writeln!(f, "  findings (24 h): {total}")?;
            for c in &d.findings_24h {
                writeln!(f, "    {:<44} {:<13} {}", c.rule_id, c.severity, c.count)?;
            }
        }
        Ok(())
    }
}
