//! Model test of the window state machine: the real planner, the real page
//! handling (`commit_page`: paging check, window split, commit) and a real
//! SQLite store, against a reference feed with newest-first cursor paging.
//! The feed has random densities: clusters of activity and empty stretches
//! over two days, so catch-up and backfill windows are sized, split and
//! grown by what they hold. Pages have random sizes; some activities become
//! visible late; requests fail, answers break the paging protocol, cursors
//! go stale, the process dies before committing a page it fetched, and
//! restarts (the store reopened, in-memory state lost).
//!
//! Invariant 1: every activity created between the initial watermark and
//! the final watermark, and every activity of the backfill range, is
//! journaled. Invariant 2: none twice.

use std::collections::HashMap;
use std::sync::Mutex;

use proptest::prelude::*;
use serde_json::value::RawValue;

use claudit::enrich::Enricher;
use claudit::sinks::render::Payload;
use claudit::source::client::Page;
use claudit::source::window::{Progress, Step, WindowPolicy, next_step};
use claudit::source::{OwnRequests, PageResult, commit_page, load_progress};
use claudit::store::{Store, WindowRow};

const SEC: i64 = 1000;
const START: i64 = 1_800_000_000_000;
/// The initial lookback: the live windows read from `START - LOOKBACK`.
const LOOKBACK: i64 = 6 * 3600 * SEC;
/// The backfill range, before the lookback.
const BACKFILL: (i64, i64) = (START - 48 * 3600 * SEC, START - LOOKBACK);

#[derive(Debug, Clone)]
struct Activity {
    id: String,
    created: i64,
    visible: i64,
}

/// The reference feed: newest-first by (created, id), `after_id` = the
/// last (created, id) of the previous page, only rows visible at `now`,
/// within the walk's bounds `[start, walk_end)`.
fn page(feed: &[Activity], w: &WindowRow, limit: usize, now: i64) -> Page {
    let mut rows: Vec<&Activity> = feed
        .iter()
        .filter(|a| a.visible <= now && a.created >= w.start_ms && a.created < w.walk_end_ms)
        .collect();
    rows.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
    let from = match &w.cursor {
        None => 0,
        Some(cursor) => {
            let (c_created, c_id) = cursor
                .split_once('|')
                .map(|(c, i)| (c.parse::<i64>().unwrap(), i))
                .unwrap();
            rows.iter()
                .position(|a| (a.created, a.id.as_str()) < (c_created, c_id))
                .unwrap_or(rows.len())
        }
    };
    let slice = &rows[from..(from + limit).min(rows.len())];
    let has_more = from + limit < rows.len();
    let cursor = |a: &Activity| format!("{}|{}", a.created, a.id);
    Page {
        activities: slice
            .iter()
            .map(|a| {
                let t = claudit::model::format_time(claudit::source::utc(a.created));
                RawValue::from_string(format!(
                    r#"{{"id":"{}","type":"claude_chat_viewed","created_at":"{t}"}}"#,
                    a.id
                ))
                .unwrap()
            })
            .collect(),
        has_more,
        first_id: slice.first().map(|a| cursor(a)),
        last_id: slice.last().map(|a| cursor(a)),
        request_id: Some("req_model".into()),
        attempt_request_ids: vec![],
    }
}

#[derive(Debug, Clone)]
enum Action {
    /// Plan and read one page of this size.
    Read(usize),
    /// The request fails (5xx, timeout): nothing is committed.
    FailedRequest,
    /// The process dies after fetching a page, before committing it.
    CrashBeforeCommit(usize),
    /// The API answers a page of this size whose paging cannot move the
    /// window on: its `last_id` repeats the cursor sent, or is missing.
    BrokenPaging(usize, bool),
    /// The API rejects the saved cursor: the walk starts again below what
    /// it has read.
    StaleCursor,
    /// The process restarts: the store is reopened.
    Restart,
    /// Time passes.
    Advance(i64),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        8 => (1usize..40).prop_map(Action::Read),
        1 => Just(Action::FailedRequest),
        1 => (1usize..40).prop_map(Action::CrashBeforeCommit),
        1 => (1usize..40, any::<bool>()).prop_map(|(n, repeat)| Action::BrokenPaging(n, repeat)),
        1 => Just(Action::StaleCursor),
        1 => Just(Action::Restart),
        3 => (1i64..90).prop_map(|s| Action::Advance(s * SEC)),
    ]
}

fn policy(max_window_pages: i64) -> WindowPolicy {
    WindowPolicy {
        // Shorter than the window, as in the default configuration.
        poll_ms: 10 * SEC,
        window_ms: 30 * SEC,
        settle_lag_ms: 10 * SEC,
        sweep_horizon_ms: 300 * SEC,
        sweep_interval_ms: 60 * SEC,
        initial_lookback_ms: LOOKBACK,
        page_size: 10,
        max_window_pages,
    }
}

/// Activities from two days before START to 20 min after: clusters of
/// random place, width and size (dense bursts to sparse trickles, with
/// empty stretches between) and a thin uniform background. Most become
/// visible within 5 s, some late by up to 4 min (inside the sweep horizon).
fn feed() -> impl Strategy<Value = Vec<Activity>> {
    let span = (START + 1200 * SEC) - BACKFILL.0;
    let cluster = (0..span, 1i64..7200 * SEC, 0usize..80);
    let delay = prop_oneof![8 => 0i64..5, 1 => 5i64..240];
    (
        prop::collection::vec(cluster, 1..6),
        prop::collection::vec((0..span, delay.clone()), 0..40),
        prop::collection::vec(delay, 400),
    )
        .prop_map(move |(clusters, background, delays)| {
            let mut created: Vec<(i64, i64)> = background
                .into_iter()
                .map(|(at, d)| (BACKFILL.0 + at, d))
                .collect();
            for (i, (center, width, count)) in clusters.into_iter().enumerate() {
                for k in 0..count {
                    let offset = (k as i64 * 7919 + i as i64 * 104_729) % width - width / 2;
                    let at =
                        (BACKFILL.0 + center + offset).clamp(BACKFILL.0, START + 1200 * SEC - 1);
                    created.push((at, delays[(i * 80 + k) % delays.len()]));
                }
            }
            created
                .into_iter()
                .enumerate()
                .map(|(i, (at, delay_s))| Activity {
                    id: format!("activity_{i:05}"),
                    created: at,
                    visible: at + delay_s * SEC,
                })
                .collect()
        })
}

struct Driver {
    dir: tempfile::TempDir,
    store: Store,
    now: i64,
    policy: WindowPolicy,
    enricher: Enricher,
    own: Mutex<OwnRequests>,
}

impl Driver {
    fn plan(&self) -> Step {
        let progress: Progress = load_progress(&self.store, "s").unwrap();
        next_step(&self.policy, &progress, self.now)
    }

    fn commit(&mut self, w: &WindowRow, p: Page) -> PageResult {
        commit_page(
            &mut self.store,
            &self.policy,
            claudit::source::utc(self.now),
            "s",
            w,
            p,
            &self.enricher,
            &self.own,
            &Default::default(),
        )
        .unwrap()
    }

    /// One planner step; reads a page of `limit` if there is one to read.
    fn step(&mut self, feed: &[Activity], limit: usize, commit: bool) {
        match self.plan() {
            Step::InitWatermark(w) => {
                self.store.init_watermark("s", w, self.now).unwrap();
                // The auditor's backfill, registered at first start.
                self.store
                    .add_backfill("s", BACKFILL.0, BACKFILL.1)
                    .unwrap();
            }
            Step::WaitUntil(t) => self.now = self.now.max(t),
            Step::Read(w) => {
                let p = page(feed, &w, limit, self.now);
                if commit {
                    self.commit(&w, p);
                }
            }
        }
    }

    /// A page whose paging is broken: nothing of it may be committed.
    fn broken_step(&mut self, feed: &[Activity], limit: usize, repeat: bool) {
        let Step::Read(w) = self.plan() else {
            return;
        };
        let mut p = page(feed, &w, limit, self.now);
        p.has_more = true;
        p.last_id = if repeat { w.cursor.clone() } else { None };
        let journal_before = self.store.journal_rows().unwrap();
        let state_before = self.store.source_state("s").unwrap();
        let backfill_before = self.store.open_backfills("s").unwrap();
        let result = self.commit(&w, p);
        assert!(
            matches!(result, PageResult::Fault { .. }),
            "a broken page was taken: {result:?}"
        );
        assert_eq!(self.store.journal_rows().unwrap(), journal_before);
        let state = self.store.source_state("s").unwrap();
        assert_eq!(state.watermark_ms, state_before.watermark_ms);
        assert_eq!(state.last_sweep_ms, state_before.last_sweep_ms);
        let backfills = self.store.open_backfills("s").unwrap();
        assert_eq!(
            backfills.iter().map(|b| b.next_ms).collect::<Vec<_>>(),
            backfill_before
                .iter()
                .map(|b| b.next_ms)
                .collect::<Vec<_>>()
        );
        // The window keeps its position and shows the fault.
        let again = self
            .store
            .open_window("s", w.kind)
            .unwrap()
            .expect("the faulted window stays open");
        assert_eq!(
            (again.start_ms, again.cursor.clone(), again.walk_end_ms),
            (w.start_ms, w.cursor.clone(), w.walk_end_ms)
        );
        assert!(again.fault.is_some() && again.faults >= 1, "{again:?}");
    }
}

proptest! {
    // The regressions file stays beside this file (by default it would go
    // to tests/proptest-regressions/, tests/it/ having a main.rs).
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn windows_lose_nothing_and_journal_each_activity_once(
        feed in feed(),
        max_window_pages in 1i64..6,
        actions in prop::collection::vec(action(), 1..150),
    ) {
        // tmpfs where available: the store fsyncs every commit, and the
        // property is about ordering and atomicity, not the disk.
        let dir = match std::path::Path::new("/dev/shm").is_dir() {
            true => tempfile::tempdir_in("/dev/shm").unwrap(),
            false => tempfile::tempdir().unwrap(),
        };
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        let mut d = Driver {
            store,
            dir,
            now: START,
            policy: policy(max_window_pages),
            enricher: Enricher::without_geoip(),
            own: Mutex::new(OwnRequests::new(vec![])),
        };
        let mut initial = None;
        for action in &actions {
            if initial.is_none() {
                initial = d.store.source_state("s").unwrap().watermark_ms;
            }
            match action {
                Action::Read(n) => d.step(&feed, *n, true),
                Action::FailedRequest => {}
                Action::CrashBeforeCommit(n) => d.step(&feed, *n, false),
                Action::BrokenPaging(n, repeat) => d.broken_step(&feed, *n, *repeat),
                Action::StaleCursor => {
                    if let Step::Read(w) = d.plan() {
                        d.store.restart_walk("s", &w).unwrap();
                    }
                }
                Action::Restart => {
                    let path = d.dir.path().join("state.db");
                    d.store = Store::open(&path).unwrap();
                    d.own = Mutex::new(OwnRequests::new(vec![]));
                }
                Action::Advance(ms) => d.now += ms,
            }
        }
        // Let time run until every activity is visible, a sweep has
        // covered it, the backfill is done and no walk is left half-way,
        // reading with a fixed page size.
        let last_visible = feed.iter().map(|a| a.visible).max().unwrap_or(START);
        let mut guard = 0;
        if initial.is_none() {
            d.step(&feed, 7, true);
            initial = d.store.source_state("s").unwrap().watermark_ms;
        }
        loop {
            let state = d.store.source_state("s").unwrap();
            let swept = state.last_sweep_ms.is_some_and(|t| t > last_visible + d.policy.settle_lag_ms);
            let caught_up = state.watermark_ms.is_some_and(|w| w > last_visible);
            let backfilled = d.store.open_backfills("s").unwrap().is_empty();
            // Every walk finished, faulted ones included.
            let drained = d.store.pending_windows("s").unwrap().is_empty();
            if swept && caught_up && backfilled && drained {
                break;
            }
            d.step(&feed, 7, true);
            guard += 1;
            prop_assert!(guard < 100_000, "the planner made no progress");
        }

        let initial_watermark = initial.expect("the first step sets the watermark");
        let watermark = d.store.source_state("s").unwrap().watermark_ms.unwrap();
        let journaled: HashMap<String, i64> = {
            let rows = d.store.read_batch(0, 1_000_000, usize::MAX, &Payload::Raw).unwrap();
            let mut m = HashMap::new();
            for r in rows {
                *m.entry(r.activity_id).or_insert(0) += 1;
            }
            m
        };
        let backfill = d.store.backfill("s", BACKFILL.0, BACKFILL.1).unwrap().unwrap();
        prop_assert_eq!(backfill.next_ms, BACKFILL.1);
        for a in &feed {
            let live = a.created >= initial_watermark && a.created < watermark;
            let backfilled = a.created >= BACKFILL.0 && a.created < BACKFILL.1;
            if live || backfilled {
                prop_assert!(journaled.contains_key(&a.id), "lost {:?} (watermark {})", a, watermark);
            }
        }
        // Invariant 2: the journal holds each id once (the read gives one row per seq).
        prop_assert!(journaled.values().all(|n| *n == 1));
    }
}
