//! One task per configured source: asks the window state machine what to
//! read, fetches that page from the Compliance API, normalizes and enriches
//! its records, and commits them with the window's new position in one
//! transaction.

pub mod client;
pub mod directory_sync;
pub mod limiter;
pub mod paging;
pub mod settings;
pub mod sizing;
pub mod window;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::enrich::Enricher;
use crate::metrics::{Metrics, SourceMetrics};
use crate::model::{Activity, ActivityHead};
pub use crate::model::{fmt_ms, utc};
use crate::ocsf::{JournalContext, may_turn_compliance_logging_off, turns_compliance_logging_off};
use crate::store::{
    JournalRecord, PageCommit, SharedStore, Store, StoreError, WindowKind, WindowRow, now_ms,
};
use client::{ComplianceClient, FetchError, Page, PageQuery};
pub use settings::SourceConfig;
use window::{Progress, Step, WindowPolicy, next_step};

/// How long a source whose key was refused waits before asking again.
const AUTH_RECHECK: Duration = Duration::from_secs(300);
/// How long to wait after an error that is not the API's fault to retry.
const ERROR_RETRY: Duration = Duration::from_secs(30);

/// What a source needs to run.
pub struct SourceTask {
    pub config: SourceConfig,
    pub store: SharedStore,
    pub enricher: Arc<Enricher>,
    /// Bumped after every commit that journaled something, to wake the sinks.
    pub journal_head: watch::Sender<u64>,
    /// Only drain backfill ranges, and stop when none is left (`claudit backfill`).
    pub backfill_only: bool,
    /// The process's metrics (`Default::default()` where nobody scrapes them).
    pub metrics: Arc<Metrics>,
}

/// Counts for logs and the demo summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct SourceStats {
    pub pages: u64,
    pub journaled: u64,
    pub duplicates: u64,
    pub late: u64,
}

impl SourceTask {
    /// Runs until `cancel`. Every log line of the task carries the source's
    /// name from its span (`source = ...`).
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<SourceStats> {
        let span = tracing::info_span!("source", source = %self.config.name);
        tracing::Instrument::instrument(self.run_in_span(cancel), span).await
    }

    async fn run_in_span(self, cancel: CancellationToken) -> anyhow::Result<SourceStats> {
        let mut client = ComplianceClient::new(&self.config)?;
        let counters = self.metrics.source(&self.config.name);
        client.count_requests(counters.requests.clone());
        let client = Arc::new(client);
        let policy = WindowPolicy::from_config(&self.config);
        let name = self.config.name.clone();
        let own_requests = {
            // The daemon's own calls whose activities a coming read may
            // journal: those since the oldest created_at still to read
            // (the watermark, or the next sweep's start), with an hour's margin.
            let (n, horizon) = (name.clone(), policy.sweep_horizon_ms);
            let ids = self
                .store
                .call(move |s| -> Result<_, StoreError> {
                    let state = s.source_state(&n)?;
                    let unread = state
                        .watermark_ms
                        .into_iter()
                        .chain(state.last_sweep_ms.map(|t| t - horizon))
                        .min();
                    s.recent_request_ids(unread.map_or(i64::MIN, |t| t - 3_600_000))
                })
                .await?;
            Arc::new(std::sync::Mutex::new(OwnRequests::new(ids)))
        };
        // The directory sync draws on this source's client and limiter.
        let directory = if self.backfill_only || !self.config.directory.enabled {
            None
        } else {
            directory_sync::start(
                &self.config,
                client.clone(),
                self.store.clone(),
                self.metrics.directory(&self.config.name),
                own_requests.clone(),
                cancel.clone(),
            )
        };
        if let Some(directory) = &directory {
            directory.wait_for_first_sync(&cancel).await?;
        }
        let mut stats = SourceStats::default();
        // Counts at the end of the previous poll cycle, for the summary line.
        let mut cycle_start = stats;
        let mut unhealthy_since: Option<DateTime<Utc>> = None;
        let mut prefetched: Option<Prefetch> = None;
        info!("source started");
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let progress = {
                let name = name.clone();
                self.store.call(move |s| load_progress(s, &name)).await?
            };
            let mut progress = progress;
            if self.backfill_only {
                // Only backfill: hide live and sweep work from the planner.
                if progress.backfills.is_empty() && progress.open_backfill.is_none() {
                    break;
                }
                progress.open_live = None;
                progress.open_sweep = None;
                progress.state.watermark_ms = Some(i64::MAX / 4);
                progress.state.last_sweep_ms = Some(i64::MAX / 4);
            }
            let now = now_ms();
            let window = match next_step(&policy, &progress, now) {
                Step::InitWatermark(w) => {
                    let name2 = name.clone();
                    self.store
                        .call(move |s| s.init_watermark(&name2, w, now))
                        .await?;
                    info!(watermark = %fmt_ms(w), "first start: reading back the initial lookback");
                    continue;
                }
                Step::WaitUntil(t) => {
                    let wait = Duration::from_millis((t - now).clamp(1, 3_600_000) as u64);
                    if stats.pages > cycle_start.pages {
                        // Caught up: one line per poll cycle.
                        let watermark = progress.state.watermark_ms.unwrap_or(now);
                        info!(pages = stats.pages - cycle_start.pages,
                            count = stats.journaled - cycle_start.journaled,
                            duplicates = stats.duplicates - cycle_start.duplicates,
                            late = stats.late - cycle_start.late,
                            watermark = %fmt_ms(watermark), lag_secs = (now - watermark) / 1000,
                            next_poll_in_ms = wait.as_millis() as u64, "poll cycle done");
                        cycle_start = stats;
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(wait) => continue,
                    }
                }
                Step::Read(w) => w,
            };

            let query = PageQuery {
                created_gte: utc(window.start_ms),
                created_lt: utc(window.walk_end_ms),
                after_id: window.cursor.clone(),
                limit: self.config.page_size,
            };
            // The page's time is taken before the request: a record that
            // becomes visible after this instant may be missing from it.
            let (requested_at, fetched) = match prefetched.take() {
                Some(next) if next.query == query => match next.task.await {
                    Ok(fetched) => (next.requested_at, fetched),
                    // The prefetch panicked or was aborted: ask again.
                    Err(_) => (Utc::now(), client.fetch_page(&query, &cancel).await),
                },
                other => {
                    // Planned for a window the planner did not pick (a live
                    // window came due first): that page is read again later.
                    if let Some(next) = other {
                        next.task.abort();
                    }
                    (Utc::now(), client.fetch_page(&query, &cancel).await)
                }
            };
            if let Some(remaining) = client.rate_state().remaining {
                counters.ratelimit_remaining.set(remaining.into());
            }
            let page = match fetched {
                Ok(page) => page,
                Err(FetchError::Cancelled) => break,
                Err(err) => {
                    let wait = self.handle_fetch_error(&err, &window).await?;
                    if unhealthy_since.is_none() {
                        unhealthy_since = Some(Utc::now());
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(wait) => continue,
                    }
                }
            };

            // The window's next page is requested now and received while this
            // one is normalized and committed, so the API's time to answer
            // overlaps claudit's work. It is used only if the planner asks
            // for exactly that page next (this commit stores its cursor);
            // positions still advance one committed page at a time. Not
            // after a page that cannot move the window on (a paging fault),
            // nor after the first page of a window it may split.
            if page.has_more
                && let Some(last_id) = &page.last_id
                && paging::check(query.after_id.as_deref(), &page).is_ok()
                && !sizing::may_split(&policy, &window)
            {
                let next = PageQuery {
                    after_id: Some(last_id.clone()),
                    ..query.clone()
                };
                let (client, cancel, query) = (client.clone(), cancel.clone(), next.clone());
                prefetched = Some(Prefetch {
                    query: next,
                    requested_at: Utc::now(),
                    task: tokio::spawn(async move { client.fetch_page(&query, &cancel).await }),
                });
            }

            let request_id = page.request_id.clone().unwrap_or_default();
            // What the page says about the directory is known before its
            // records are journaled (`directory/feed.rs`); not from a page
            // that breaks the paging protocol (nothing of it is kept).
            if let Some(directory) = &directory
                && paging::check(query.after_id.as_deref(), &page).is_ok()
            {
                directory.observe_page(&page).await?;
            }
            // Parse, enrich and commit on the blocking pool: a 5,000-record
            // page is CPU work that must not stall the runtime.
            let result = {
                let store = self.store.clone();
                let enricher = self.enricher.clone();
                let own = own_requests.clone();
                let name = name.clone();
                let window = window.clone();
                let counters = counters.clone();
                store
                    .call(move |s| {
                        commit_page(
                            s,
                            &policy,
                            requested_at,
                            &name,
                            &window,
                            page,
                            &enricher,
                            &own,
                            &counters,
                        )
                    })
                    .await?
            };
            counters.page_read(window.kind);
            let outcome = match result {
                PageResult::Committed(outcome) => outcome,
                PageResult::Split { span_ms } => {
                    info!(kind = window.kind.as_str(), window_start = %fmt_ms(window.start_ms),
                        window_end = %fmt_ms(window.end_ms), next_window_secs = span_ms / 1000,
                        max_window_pages = policy.max_window_pages, request_id = %request_id,
                        "window split: its first page shows it holds more than max_window_pages pages; reading it in shorter windows");
                    if let Some(since) = unhealthy_since.take() {
                        info!(unhealthy_since = %since, "source healthy again");
                    }
                    continue;
                }
                PageResult::Fault { fault, faults } => {
                    counters.paging_faults.inc();
                    let wait = paging::backoff(faults);
                    error!(request_id = %fault.request_id().unwrap_or(""),
                        kind = window.kind.as_str(), window_start = %fmt_ms(window.start_ms),
                        window_end = %fmt_ms(window.end_ms), attempts = faults,
                        retry_in_ms = wait.as_millis() as u64, error = %fault,
                        "paging fault: nothing of the page is kept; the window is asked again from its last committed page after a backoff");
                    if unhealthy_since.is_none() {
                        unhealthy_since = Some(Utc::now());
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(wait) => continue,
                    }
                }
            };
            if let Some(since) = unhealthy_since.take() {
                info!(unhealthy_since = %since, "source healthy again");
            }
            counters.journaled.inc_by(outcome.inserted as u64);
            stats.pages += 1;
            stats.journaled += outcome.inserted as u64;
            stats.duplicates += outcome.duplicates as u64;
            if window.kind == WindowKind::Sweep {
                stats.late += outcome.inserted as u64;
                counters.late.inc_by(outcome.inserted as u64);
                if outcome.inserted > 0 {
                    info!(late = outcome.inserted, window_start = %fmt_ms(window.start_ms),
                        window_end = %fmt_ms(window.end_ms), "late arrivals caught by the sweep");
                }
            }
            debug!(kind = window.kind.as_str(), window_start = %fmt_ms(window.start_ms),
                window_end = %fmt_ms(window.end_ms), inserted = outcome.inserted,
                duplicates = outcome.duplicates, done = outcome.done, request_id = %request_id,
                "page committed");
            if outcome.done {
                debug!(kind = window.kind.as_str(), window_start = %fmt_ms(window.start_ms),
                    window_end = %fmt_ms(window.end_ms), pages = window.pages + 1, "window drained");
            }
            if outcome.inserted > 0 {
                self.journal_head.send_modify(|h| *h += 1);
                self.metrics.journaled_now(&name);
            }
        }
        if let Some(next) = prefetched {
            next.task.abort();
        }
        info!(
            pages = stats.pages,
            journaled = stats.journaled,
            "source stopped"
        );
        Ok(stats)
    }

    /// Logs an error once, in words an operator can act on, records it for
    /// `status`, and says how long to wait before trying again.
    async fn handle_fetch_error(
        &self,
        err: &FetchError,
        window: &WindowRow,
    ) -> anyhow::Result<Duration> {
        let name = self.config.name.clone();
        let text = err.to_string();
        let wait = match err {
            FetchError::Unauthorized { .. } => {
                error!(error = %text, recheck_in_secs = AUTH_RECHECK.as_secs(),
                    "the Compliance API refused the key; nothing is lost, polling resumes once the key works");
                AUTH_RECHECK
            }
            FetchError::BadCursor { .. } => {
                warn!(error = %text, window_start = %fmt_ms(window.start_ms),
                    read_from = %window.read_from_ms.map_or("nothing yet".to_string(), fmt_ms),
                    "the API rejected the saved cursor; reading on without it, below what this window has read (records read again are deduplicated)");
                let (n, w) = (name.clone(), window.clone());
                self.store.call(move |s| s.restart_walk(&n, &w)).await?;
                Duration::ZERO
            }
            FetchError::NotFound { .. } => {
                error!(error = %text, "the activity feed answered 404; check base_url, retrying");
                ERROR_RETRY
            }
            _ => {
                error!(error = %text, "request failed; check the configuration, retrying");
                ERROR_RETRY
            }
        };
        let now = now_ms();
        self.store
            .call(move |s| s.record_source_error(&name, &text, now))
            .await?;
        Ok(wait)
    }
}

/// A page requested ahead of its turn (see `SourceTask::run`).
struct Prefetch {
    query: PageQuery,
    requested_at: DateTime<Utc>,
    task: tokio::task::JoinHandle<Result<Page, FetchError>>,
}

pub fn load_progress(store: &Store, source: &str) -> Result<Progress, StoreError> {
    Ok(Progress {
        state: store.source_state(source)?,
        open_live: store.open_window(source, WindowKind::Live)?,
        open_sweep: store.open_window(source, WindowKind::Sweep)?,
        open_backfill: store.open_window(source, WindowKind::Backfill)?,
        backfills: store.open_backfills(source)?,
    })
}

#[derive(Debug, Clone, Copy)]
pub struct CommitOutcome {
    pub inserted: usize,
    pub duplicates: usize,
    pub done: bool,
}

/// What became of a page.
#[derive(Debug, Clone)]
pub enum PageResult {
    /// Its records and the window's new position were committed.
    Committed(CommitOutcome),
    /// The window's first page showed it holds more than a window should:
    /// nothing was kept, the next window of its kind is `span_ms` long.
    Split { span_ms: i64 },
    /// The page's paging fields cannot move the window on: nothing was
    /// kept, the fault is recorded on the window (its `faults`-th in a row).
    Fault {
        fault: paging::PagingFault,
        faults: i64,
    },
}

/// Checks a page's paging, maps its records and commits them with the
/// window's next position (or splits the window, or records a paging
/// fault). `now` is the clock reading for this commit (the time of a
/// completed sweep, and the stand-in for a record without `created_at`).
#[allow(clippy::too_many_arguments)]
pub fn commit_page(
    store: &mut Store,
    policy: &WindowPolicy,
    now: DateTime<Utc>,
    source: &str,
    window: &WindowRow,
    page: Page,
    enricher: &Enricher,
    own: &std::sync::Mutex<OwnRequests>,
    counters: &SourceMetrics,
) -> Result<PageResult, StoreError> {
    let mut own = own.lock().unwrap_or_else(|p| p.into_inner());
    for id in &page.attempt_request_ids {
        own.insert(id.clone());
    }
    if let Err(fault) = paging::check(window.cursor.as_deref(), &page) {
        drop(own);
        let faults = store.record_paging_fault(
            source,
            window,
            &fault.to_string(),
            &page.attempt_request_ids,
            now.timestamp_millis(),
        )?;
        return Ok(PageResult::Fault { fault, faults });
    }
    // Records counted or alerted on once they are journaled: (self-generated,
    // a logging-off notice) for the few new ones.
    let mut notable: Vec<(String, bool, Option<String>)> = Vec::new();
    let records: Vec<JournalRecord> = page
        .activities
        .into_iter()
        .map(|raw| {
            let head = ActivityHead::read(raw, now);
            let self_generated = head.activity_type == "compliance_api_accessed"
                && head
                    .request_id
                    .as_deref()
                    .is_some_and(|id| own.contains(id));
            // Only a settings change can switch logging off, and its fields
            // say whether it did: those few records are read whole.
            let settings = may_turn_compliance_logging_off(&head.activity_type)
                .then(|| Activity::parse_journaled(&head.raw, now));
            let logging_off = settings
                .as_ref()
                .is_some_and(|a| turns_compliance_logging_off(&a.activity_type, &a.fields));
            if self_generated || logging_off {
                notable.push((
                    head.id.clone(),
                    self_generated,
                    settings
                        .as_ref()
                        .filter(|_| logging_off)
                        .map(logging_off_notice),
                ));
            }
            let enrichment = head
                .actor
                .as_ref()
                .map(|(ip, ua)| enricher.enrich(ip.as_deref(), ua.as_deref()));
            // The OCSF event is rendered from this when a sink reads the row
            // (`Mapper::render_journaled`), not stored: a third of the bytes.
            let context = JournalContext {
                self_generated,
                enrichment,
            };
            JournalRecord {
                created_at_ms: head.created_at_ms,
                context: Some(context.to_json()),
                ocsf: None,
                activity_id: head.id,
                activity_type: head.activity_type,
                raw: head.raw.into(),
            }
        })
        .collect();
    drop(own);
    // The walk reads newest first: after this page, everything of the
    // window created from the oldest record read (its millisecond may hold
    // more, unread) up to the window's end has been read.
    let in_window: Vec<i64> = records
        .iter()
        .map(|r| r.created_at_ms)
        .filter(|t| (window.start_ms..window.end_ms).contains(t))
        .collect();
    let oldest = in_window.iter().min().copied();
    if page.has_more
        && let Some(span_ms) = sizing::split(policy, window, in_window.len() as i64, oldest)
    {
        store.split_window(
            source,
            window,
            span_ms,
            &page.attempt_request_ids,
            now.timestamp_millis(),
        )?;
        return Ok(PageResult::Split { span_ms });
    }
    let read_from_ms = match (window.read_from_ms, oldest.map(|t| t + 1)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    // `paging::check` passed: `has_more` false is the only end of a window.
    let done = !page.has_more;
    let next_span_ms = done
        .then(|| sizing::next_span(policy, window, window.records + records.len() as i64))
        .flatten();
    // Only records new to the journal count: a sweep re-reads many.
    let mut new_notable = Vec::new();
    for (id, self_generated, notice) in notable {
        if !store.is_journaled(&id)? {
            new_notable.push((self_generated, notice));
        }
    }
    let outcome = store.commit_page(&PageCommit {
        source,
        window,
        next_cursor: page.last_id.clone(),
        read_from_ms,
        done,
        next_span_ms,
        records: &records,
        request_ids: &page.attempt_request_ids,
        now_ms: now.timestamp_millis(),
    })?;
    for (self_generated, notice) in new_notable {
        if self_generated {
            counters.self_generated.inc();
        }
        if let Some(notice) = notice {
            counters.logging_disabled.inc();
            error!(source = %counters.name, "{notice}");
        }
    }
    Ok(PageResult::Committed(CommitOutcome {
        inserted: outcome.inserted,
        duplicates: outcome.duplicates,
        done,
    }))
}

/// The error line for an activity that turned the Compliance API or its
/// logging off: after it the feed goes silent, so it is raised here too.
fn logging_off_notice(activity: &Activity) -> String {
    let actor = activity
        .actor
        .as_ref()
        .and_then(|a| {
            a.email_address
                .clone()
                .or_else(|| a.user_id.clone())
                .or_else(|| a.api_key_id.clone())
                .or_else(|| a.admin_api_key_id.clone())
                .or_else(|| a.service_account_id.clone())
        })
        .unwrap_or_else(|| "an unknown actor".to_string());
    let org = activity
        .organization_id
        .as_deref()
        .or(activity.organization_uuid.as_deref())
        .unwrap_or("(no organization id)");
    let what = |key: &str| activity.fields.get(key).and_then(|v| v.as_bool());
    format!(
        "COMPLIANCE LOGGING DISABLED: organization {org}: {actor} changed the Compliance API settings \
         at {} (compliance_api_enabled = {}, compliance_api_logging_enabled = {}; activity {}). \
         No further activity will arrive until it is turned back on; confirm the change with the actor \
         and your security team",
        crate::model::format_time(activity.created_at),
        what("compliance_api_enabled").map_or("unchanged".to_string(), |b| b.to_string()),
        what("compliance_api_logging_enabled").map_or("unchanged".to_string(), |b| b.to_string()),
        activity.id
    )
}

/// Request ids of this daemon's own calls, bounded (oldest forgotten first).
pub struct OwnRequests {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl OwnRequests {
    const CAPACITY: usize = 200_000;

    pub fn new(ids: Vec<String>) -> OwnRequests {
        let mut own = OwnRequests {
            set: HashSet::new(),
            order: VecDeque::new(),
        };
        for id in ids {
            own.insert(id);
        }
        own
    }

    pub(crate) fn insert(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > Self::CAPACITY
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }
}
