//! The directory sync of one source: what the directory endpoints say,
//! read through the source's own client and limiter, turned into facts
//! (`crate::directory`).
//!
//! Refresh policy: a full sync (organizations and groups, then each
//! organization's users and roles, each role's permissions and each group's
//! members) when none has completed yet and `refresh` after the previous
//! one; between them, targeted runs that walk again only the lists an
//! activity said changed (`feed.rs`), at most [`DEBOUNCE`] after it was
//! journaled, so a burst of changes is one walk. Every request goes through
//! the source's client and limiter.
//!
//! Resume: each page is committed with its items (staged) and the token of
//! the next page; a list's last page is committed with the facts the list
//! yields, in one transaction. A run interrupted at any instant (SIGKILL)
//! resumes at the page it stopped at: nothing walked is asked again.
//!
//! A key that cannot read the directory (an Admin API key, or 401/403) is
//! reported once, in words that name the scopes; the feed goes on without
//! directory context and the sync does not ask again until the daemon is
//! restarted or reloaded (every refused call is itself an audit event, and
//! some SOCs alert on them).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

mod client;

use crate::directory::feed::{self, PageNotes, UnknownActors};
use crate::directory::metrics::DirectoryMetrics;
use crate::directory::model::{Key, Kind, List, NoAttrs, PermissionsAttrs, attrs_text};
use crate::directory::settings::DirectoryConfig;
use crate::directory::store::{self, ListRow, SeenItem, Writer};
use crate::source::client::{ComplianceClient, KeyKind, Page};
use crate::source::{OwnRequests, SourceConfig};
use crate::store::{SharedStore, Store, StoreError, now_ms};
use client::{DirectoryClient, DirectoryError};

/// Refresh requests wait this long, so a burst of changes is one walk.
pub const DEBOUNCE: Duration = Duration::from_secs(10);
/// How often an idle sync looks for refresh requests.
const IDLE_CHECK: Duration = Duration::from_secs(5);
/// Backoff after a failed page: doubles from the first to the last.
const ERROR_BACKOFF: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(600));
/// A list longer than this many pages (100 million items at the largest
/// page) is a server that never stops paging: the walk fails rather than
/// take a partial list as complete (which would end everyone not listed).
const MAX_PAGES_PER_LIST: i64 = 100_000;

/// Where the first full sync of a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstSync {
    Pending,
    Done,
    /// The key cannot read the directory (also set when a key that could
    /// is refused later): nothing is recorded for the source.
    Unavailable,
}

/// What the source task holds of its directory sync.
pub struct DirectorySync {
    source: String,
    store: SharedStore,
    first: watch::Receiver<FirstSync>,
    initial_wait: Duration,
    recheck_ms: i64,
    unknown: Arc<Mutex<UnknownActors>>,
}

/// Starts the directory sync of `config` if it is enabled, counting in
/// `metrics` (`Metrics::directory`). It stops with `cancel`.
pub fn start(
    config: &SourceConfig,
    api: Arc<ComplianceClient>,
    store: SharedStore,
    metrics: DirectoryMetrics,
    own: Arc<Mutex<OwnRequests>>,
    cancel: CancellationToken,
) -> Option<DirectorySync> {
    let dc = &config.directory;
    if !dc.enabled {
        return None;
    }
    // An Admin API key never reads the directory: known before any request.
    let initial = if api.key_kind() == KeyKind::Admin {
        FirstSync::Unavailable
    } else {
        FirstSync::Pending
    };
    let (first_tx, first_rx) = watch::channel(initial);
    let task = SyncTask {
        source: config.name.clone(),
        config: dc.clone(),
        client: DirectoryClient::new(api, dc.page_size),
        store: store.clone(),
        own,
        metrics,
        first: first_tx,
    };
    // Inside the source's span: the sync's log lines carry `source = ...`.
    tokio::spawn(tracing::Instrument::in_current_span(task.run(cancel)));
    Some(DirectorySync {
        source: config.name.clone(),
        store,
        first: first_rx,
        initial_wait: dc.initial_sync_wait,
        recheck_ms: dc.refresh.as_millis() as i64,
        unknown: Arc::default(),
    })
}

impl DirectorySync {
    /// On a source whose directory was never synced, waits (at most
    /// `initial_sync_wait`) for the first full sync, so the activities
    /// journaled next are enriched.
    pub async fn wait_for_first_sync(&self, cancel: &CancellationToken) -> Result<(), StoreError> {
        let source = self.source.clone();
        let state = self
            .store
            .call(move |s| store::sync_state(s, &source))
            .await?;
        if state.last_full_ms.is_some() || self.initial_wait.is_zero() {
            return Ok(());
        }
        info!(
            wait_secs = self.initial_wait.as_secs(),
            "first start: waiting for the first directory sync before journaling, so the initial lookback has directory context"
        );
        let mut first = self.first.clone();
        tokio::select! {
            _ = cancel.cancelled() => {}
            waited = tokio::time::timeout(self.initial_wait, first.wait_for(|s| *s != FirstSync::Pending)) => {
                if waited.is_err() {
                    warn!(wait_secs = self.initial_wait.as_secs(),
                        "the first directory sync is still running: activities journaled until it completes have no directory context (raise [sources.directory] initial_sync_wait to wait longer)");
                }
            }
        }
        Ok(())
    }

    /// Records what a page about to be journaled says about the directory
    /// (`feed.rs`). Call it before the page is committed. Nothing is
    /// recorded while the key cannot read the directory: its events are
    /// delivered without directory context.
    pub async fn observe_page(&self, page: &Page) -> Result<(), StoreError> {
        if *self.first.borrow() == FirstSync::Unavailable {
            return Ok(());
        }
        let notes = PageNotes::read(&page.activities, Utc::now());
        if notes.is_empty() {
            return Ok(());
        }
        let (source, unknown, recheck) =
            (self.source.clone(), self.unknown.clone(), self.recheck_ms);
        self.store
            .call(move |s| {
                let mut unknown = unknown.lock().unwrap_or_else(|p| p.into_inner());
                feed::record(s, &source, &notes, &mut unknown, recheck, now_ms())
            })
            .await?;
        Ok(())
    }
}

struct SyncTask {
    source: String,
    config: DirectoryConfig,
    client: DirectoryClient,
    store: SharedStore,
    own: Arc<Mutex<OwnRequests>>,
    metrics: DirectoryMetrics,
    first: watch::Sender<FirstSync>,
}

/// Why a step of the sync stopped.
enum Stop {
    Cancelled,
    /// The key cannot read the directory.
    Refused(String),
    /// A failure worth retrying later.
    Failed(String),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Stop {
        Stop::Failed(e.to_string())
    }
}

impl SyncTask {
    async fn run(self, cancel: CancellationToken) {
        if self.client.key_kind() == KeyKind::Admin {
            self.refused(
                "this source uses an Admin API key (sk-ant-admin01-...), which reads the activity feed only: directory context needs a Compliance Access Key (sk-ant-api01-...) with the read:compliance_org_data and read:compliance_user_data scopes. Events are delivered without directory context; use such a key as the source's api_key, or set [sources.directory] enabled = false"
                    .to_string(),
            )
            .await;
            cancel.cancelled().await;
            return;
        }
        let mut backoff = ERROR_BACKOFF.0;
        loop {
            let wait = match self.step(&cancel).await {
                Ok(None) => {
                    backoff = ERROR_BACKOFF.0;
                    continue;
                }
                Ok(Some(idle)) => idle,
                Err(Stop::Cancelled) => return,
                Err(Stop::Refused(message)) => {
                    self.refused(message).await;
                    cancel.cancelled().await;
                    return;
                }
                Err(Stop::Failed(message)) => {
                    warn!(error = %message, retry_in_secs = backoff.as_secs(),
                        "directory sync failed; it resumes where it stopped. Events meanwhile get the directory as last synced");
                    self.record_error(message).await;
                    let wait = backoff;
                    backoff = (backoff * 2).min(ERROR_BACKOFF.1);
                    wait
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Reports a key that cannot read the directory, once.
    async fn refused(&self, message: String) {
        error!("directory context is off for this source: {message}");
        self.record_error(message).await;
        self.first.send_replace(FirstSync::Unavailable);
    }

    async fn record_error(&self, message: String) {
        let source = self.source.clone();
        let result = self
            .store
            .call(move |s| store::record_error(s, &source, &message, now_ms()))
            .await;
        if let Err(e) = result {
            warn!(error = %e, "cannot record the directory sync's error");
        }
    }

    /// Runs or resumes one run if one is due; `Some(wait)` when idle.
    async fn step(&self, cancel: &CancellationToken) -> Result<Option<Duration>, Stop> {
        let source = self.source.clone();
        let state = self
            .store
            .call(move |s| store::sync_state(s, &source))
            .await?;
        let now = now_ms();
        let refresh_ms = self.config.refresh.as_millis() as i64;
        let (run_id, full) = if let Some(kind) = &state.run_kind {
            info!(run = state.run_id, kind = %kind,
                "resuming the directory sync where it stopped");
            (state.run_id, kind == "full")
        } else if state.last_full_ms.is_none_or(|t| now >= t + refresh_ms) {
            info!("directory full sync started");
            let source = self.source.clone();
            let run = self
                .store
                .call(move |s| {
                    store::begin_run(s, &source, "full", &[List::Orgs, List::Groups], now)
                })
                .await?;
            (run, true)
        } else {
            let debounce = DEBOUNCE.as_millis() as i64;
            let source = self.source.clone();
            let oldest = self
                .store
                .call(move |s| store::oldest_refresh_request(s, &source))
                .await?;
            let due = oldest.filter(|t| *t <= now - debounce);
            if due.is_none() {
                let until_full = state
                    .last_full_ms
                    .map_or(0, |t| (t + refresh_ms - now).max(0));
                let wait = Duration::from_millis(until_full as u64).min(IDLE_CHECK);
                return Ok(Some(wait.max(Duration::from_millis(100))));
            }
            let source = self.source.clone();
            let run = self
                .store
                .call(move |s| -> Result<Option<i64>, StoreError> {
                    let requests = store::take_refresh_requests(s, &source, now - debounce)?;
                    if requests.is_empty() {
                        return Ok(None);
                    }
                    let lists: Vec<List> = requests.iter().map(|(l, _)| l.clone()).collect();
                    let reasons: Vec<&str> = requests.iter().map(|(_, r)| r.as_str()).collect();
                    info!(lists = lists.len(), reasons = %reasons.join(","),
                        "directory refresh started");
                    store::begin_run(s, &source, "targeted", &lists, now).map(Some)
                })
                .await?;
            match run {
                Some(run) => (run, false),
                None => return Ok(None),
            }
        };
        let started = std::time::Instant::now();
        loop {
            let source = self.source.clone();
            let next = self
                .store
                .call(move |s| store::pending_lists(s, &source, run_id))
                .await?
                .into_iter()
                .next();
            let Some(row) = next else { break };
            self.walk_list(run_id, row, full, cancel).await?;
        }
        let source = self.source.clone();
        let counts = self
            .store
            .call(move |s| -> Result<_, StoreError> {
                store::finish_run(s, &source, now_ms())?;
                store::current_counts(s, &source)
            })
            .await?;
        self.metrics.run_completed(full, started.elapsed(), &counts);
        if full {
            let members = counts
                .iter()
                .find(|(k, _, _)| *k == Kind::Member)
                .map_or(0, |c| c.1);
            let groups = counts
                .iter()
                .find(|(k, _, _)| *k == Kind::Group)
                .map_or(0, |c| c.1);
            info!(
                members,
                groups,
                duration_ms = started.elapsed().as_millis() as u64,
                "directory full sync completed"
            );
            self.first.send_replace(FirstSync::Done);
        }
        Ok(None)
    }

    /// Walks one list from where it stands to its end.
    async fn walk_list(
        &self,
        run_id: i64,
        mut row: ListRow,
        full: bool,
        cancel: &CancellationToken,
    ) -> Result<(), Stop> {
        loop {
            let fetched = self
                .client
                .page(&row.list, row.page_token.as_deref(), cancel)
                .await;
            let page = match fetched {
                Ok(page) => page,
                Err(DirectoryError::Cancelled) => return Err(Stop::Cancelled),
                Err(e @ DirectoryError::MissingScope { .. }) => {
                    self.metrics.request(false);
                    return Err(Stop::Refused(e.to_string()));
                }
                Err(e @ DirectoryError::NotFound { .. }) => {
                    self.metrics.request(false);
                    if matches!(row.list, List::Orgs | List::Groups) {
                        return Err(Stop::Failed(e.to_string()));
                    }
                    // Gone since its parent was listed: the next listing of
                    // the parent decides.
                    warn!(error = %e, "directory list skipped");
                    let (source, r) = (self.source.clone(), row.clone());
                    self.store
                        .call(move |s| skip_list(s, &source, run_id, &r))
                        .await?;
                    return Ok(());
                }
                Err(e @ DirectoryError::BadToken { .. }) => {
                    self.metrics.request(false);
                    warn!(error = %e, "restarting the directory list from its first page");
                    let (source, r) = (self.source.clone(), row.clone());
                    self.store
                        .call(move |s| store::restart_list(s, &source, run_id, &r))
                        .await?;
                    row.page_token = None;
                    row.pages = 0;
                    continue;
                }
                Err(e) => {
                    self.metrics.request(false);
                    return Err(Stop::Failed(e.to_string()));
                }
            };
            self.metrics.request(true);
            {
                let mut own = self.own.lock().unwrap_or_else(|p| p.into_inner());
                for id in &page.request_ids {
                    own.insert(id.clone());
                }
            }
            if page.next_page.is_some() && row.pages + 1 >= MAX_PAGES_PER_LIST {
                return Err(Stop::Failed(format!(
                    "{} still has more after {MAX_PAGES_PER_LIST} pages; the list is not taken as complete",
                    row.list.describe()
                )));
            }
            let last = page.next_page.is_none();
            let (source, r) = (self.source.clone(), row.clone());
            let now = now_ms();
            if last {
                self.store
                    .call(move |s| {
                        complete_list(
                            s,
                            &source,
                            run_id,
                            &r,
                            &page.items,
                            &page.request_ids,
                            full,
                            now,
                        )
                    })
                    .await?;
                return Ok(());
            }
            let next = page.next_page.clone();
            self.store
                .call(move |s| {
                    store::record_page(
                        s,
                        &source,
                        run_id,
                        &r,
                        next.as_deref(),
                        &page.items,
                        &page.request_ids,
                        now,
                    )
                })
                .await?;
            row.page_token = page.next_page;
            row.pages += 1;
        }
    }
}

/// Marks a list done without facts (its parent vanished meanwhile).
fn skip_list(s: &mut Store, source: &str, run_id: i64, row: &ListRow) -> Result<(), StoreError> {
    let w = Writer::begin(s, source, now_ms())?;
    w.finish_list(run_id, row)?;
    w.commit()?;
    Ok(())
}

/// Stores a list's last page and turns the whole list into facts observed
/// at `t`, with the lists it leads to, in one transaction.
#[allow(clippy::too_many_arguments)]
pub fn complete_list(
    s: &mut Store,
    source: &str,
    run_id: i64,
    row: &ListRow,
    last_items: &[SeenItem],
    request_ids: &[String],
    full: bool,
    t: i64,
) -> Result<(), StoreError> {
    let mut w = Writer::begin(s, source, t)?;
    let mut items = w.seen_items(run_id, &row.list)?;
    items.extend(last_items.iter().cloned());
    items.sort_by(|a, b| a.entity.cmp(&b.entity));
    items.dedup_by(|later, earlier| later.entity == earlier.entity);
    w.record_requests(request_ids)?;
    let next = apply_list(&mut w, &row.list, &items, full, t)?;
    w.finish_list(run_id, row)?;
    w.append_lists(run_id, &next)?;
    w.commit()?;
    Ok(())
}

/// The facts a complete list yields, observed at `t`: every item is
/// present, every entity of its scope not listed has ended. Returns the
/// lists to walk next.
fn apply_list(
    w: &mut Writer,
    list: &List,
    items: &[SeenItem],
    full: bool,
    t: i64,
) -> Result<Vec<List>, StoreError> {
    const SYNC: &str = "sync";
    let no_attrs = attrs_text(&NoAttrs {});
    let listed = |entity: &str| {
        items
            .binary_search_by(|i| i.entity.as_str().cmp(entity))
            .is_ok()
    };
    let mut next = Vec::new();
    match list {
        List::Orgs => {
            for f in w.open_in_scope(Kind::Org, "")? {
                if !listed(&f.key.entity) {
                    end_org(w, &f.key.entity, t)?;
                }
            }
            for i in items {
                w.present(&Key::org(&i.entity), &i.attrs, i.created_ms, t, SYNC)?;
                next.push(List::Users(i.entity.clone()));
                next.push(List::Roles(i.entity.clone()));
            }
        }
        List::Users(org) => {
            for f in w.open_in_scope(Kind::Member, org)? {
                if !listed(&f.key.entity) {
                    w.absent(&f.key, t)?;
                }
            }
            for i in items {
                w.present(
                    &Key::member(org, &i.entity),
                    &i.attrs,
                    i.created_ms,
                    t,
                    SYNC,
                )?;
            }
        }
        List::Roles(org) => {
            for f in w.open_in_scope(Kind::Role, org)? {
                if !listed(&f.key.entity) {
                    w.absent(&f.key, t)?;
                    w.absent(&Key::role_permissions(org, &f.key.entity), t)?;
                }
            }
            for i in items {
                w.present(&Key::role(org, &i.entity), &i.attrs, i.created_ms, t, SYNC)?;
                next.push(List::Permissions(org.clone(), i.entity.clone()));
            }
        }
        List::Permissions(org, role) => {
            let permissions = PermissionsAttrs {
                permissions: items.iter().map(|i| i.entity.clone()).collect(),
            };
            // Permissions first seen are taken to be the role's since it
            // was created (the API keeps no history of them).
            let role_since = w
                .current(&Key::role(org, role))?
                .iter()
                .find(|f| f.valid_to_ms.is_none())
                .and_then(|f| f.valid_from_ms);
            w.present(
                &Key::role_permissions(org, role),
                &attrs_text(&permissions),
                role_since,
                t,
                SYNC,
            )?;
        }
        List::Groups => {
            let before: Vec<String> = w
                .open_in_scope(Kind::Group, "")?
                .into_iter()
                .map(|f| f.key.entity)
                .collect();
            for g in &before {
                if !listed(g) {
                    w.absent(&Key::group(g), t)?;
                    for m in w.open_in_scope(Kind::GroupMember, g)? {
                        w.absent(&m.key, t)?;
                    }
                }
            }
            for i in items {
                w.present(&Key::group(&i.entity), &i.attrs, i.created_ms, t, SYNC)?;
                if full || !before.contains(&i.entity) {
                    next.push(List::Members(i.entity.clone()));
                }
            }
        }
        List::Members(group) => {
            for f in w.open_in_scope(Kind::GroupMember, group)? {
                if !listed(&f.key.entity) {
                    w.absent(&f.key, t)?;
                }
            }
            for i in items {
                w.present(
                    &Key::group_member(group, &i.entity),
                    &no_attrs,
                    i.created_ms,
                    t,
                    SYNC,
                )?;
            }
        }
    }
    Ok(next)
}

/// An organization no longer listed: it and everything in it ended at `t`.
fn end_org(w: &mut Writer, org: &str, t: i64) -> Result<(), StoreError> {
    w.absent(&Key::org(org), t)?;
    for kind in [
        Kind::Member,
        Kind::Role,
        Kind::RolePermissions,
        Kind::UserRole,
    ] {
        for f in w.open_in_scope(kind, org)? {
            w.absent(&f.key, t)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::model::{MemberAttrs, attrs_text};
    use crate::directory::store::{all_facts, begin_run, pending_lists};

    fn item(entity: &str, attrs: &str, created: Option<i64>) -> SeenItem {
        SeenItem {
            entity: entity.into(),
            attrs: attrs.into(),
            created_ms: created,
        }
    }

    #[test]
    fn a_full_run_walks_orgs_then_their_lists_and_ends_what_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.db")).unwrap();
        let run = begin_run(&mut s, "src", "full", &[List::Orgs, List::Groups], 0).unwrap();
        let rows = pending_lists(&s, "src", run).unwrap();
        complete_list(
            &mut s,
            "src",
            run,
            &rows[0],
            &[item("org_a", "{}", Some(1))],
            &[],
            true,
            100,
        )
        .unwrap();
        let lists: Vec<List> = pending_lists(&s, "src", run)
            .unwrap()
            .into_iter()
            .map(|r| r.list)
            .collect();
        assert_eq!(
            lists,
            [
                List::Groups,
                List::Users("org_a".into()),
                List::Roles("org_a".into())
            ]
        );
        let users = pending_lists(&s, "src", run).unwrap()[1].clone();
        let ada = attrs_text(&MemberAttrs {
            name: Some("Ada".into()),
            ..MemberAttrs::default()
        });
        // The first page staged, the last one completes the list.
        store::record_page(
            &mut s,
            "src",
            run,
            &users,
            Some("p2"),
            &[item("user_1", &ada, Some(50))],
            &[],
            90,
        )
        .unwrap();
        complete_list(
            &mut s,
            "src",
            run,
            &users,
            &[item("user_2", "{}", None)],
            &[],
            true,
            100,
        )
        .unwrap();
        let members: Vec<(String, Option<i64>)> = all_facts(s.conn())
            .unwrap()
            .into_iter()
            .filter(|f| f.key.kind == Kind::Member)
            .map(|f| (f.key.entity, f.valid_from_ms))
            .collect();
        assert_eq!(
            members,
            [("user_1".into(), Some(50)), ("user_2".into(), Some(100))]
        );

        // A second run no longer lists org_a: it and its members end.
        let run = begin_run(&mut s, "src", "full", &[List::Orgs], 200).unwrap();
        let rows = pending_lists(&s, "src", run).unwrap();
        complete_list(&mut s, "src", run, &rows[0], &[], &[], true, 300).unwrap();
        let open: Vec<String> = all_facts(s.conn())
            .unwrap()
            .into_iter()
            .filter(|f| f.superseded_seq.is_none() && f.valid_to_ms.is_none())
            .map(|f| f.key.entity)
            .collect();
        assert!(open.is_empty(), "{open:?}");
    }

    #[test]
    fn permissions_become_one_sorted_fact_of_the_role() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.db")).unwrap();
        let list = List::Permissions("org".into(), "role_1".into());
        let run = begin_run(&mut s, "src", "targeted", &[list], 0).unwrap();
        let row = pending_lists(&s, "src", run).unwrap()[0].clone();
        complete_list(
            &mut s,
            "src",
            run,
            &row,
            &[
                item("write project:*", "{}", None),
                item("read chat:*", "{}", None),
            ],
            &[],
            false,
            10,
        )
        .unwrap();
        let f = &all_facts(s.conn()).unwrap()[0];
        assert_eq!(f.key, Key::role_permissions("org", "role_1"));
        assert_eq!(
            f.attrs,
            r#"{"permissions":["read chat:*","write project:*"]}"#
        );
    }
}
