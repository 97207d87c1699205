//! Model test of the window state machine: the real planner, the real
//! page commit and a real SQLite store, against a reference feed with
//! newest-first cursor paging, random page sizes, late arrivals, failed
//! requests, stale cursors and restarts (the store reopened, in-memory state
//! lost). Invariant 1: every activity created after the initial watermark
//! that became visible is journaled. Invariant 2: none twice.

use std::collections::HashMap;
use std::sync::Mutex;

use proptest::prelude::*;
use serde_json::value::RawValue;

use claudit::enrich::Enricher;
use claudit::source::client::Page;
use claudit::source::window::{Progress, Step, WindowPolicy, next_step};
use claudit::source::{OwnRequests, commit_page, load_progress};
use claudit::store::{Payload, Store, WindowRow};

const SEC: i64 = 1000;
const START: i64 = 1_800_000_000_000;

#[derive(Debug, Clone)]
struct Activity {
    id: String,
    created: i64,
    visible: i64,
}

/// The reference feed: newest-first by (created, id), `after_id` = the last
/// id of the previous page, only rows visible at `now`.
fn page(feed: &[Activity], w: &WindowRow, limit: usize, now: i64) -> Page {
    let mut rows: Vec<&Activity> = feed
        .iter()
        .filter(|a| a.visible <= now && a.created >= w.start_ms && a.created < w.end_ms)
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
        request_id: None,
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
    /// The API rejects the saved cursor: the window restarts.
    StaleCursor,
    /// The process restarts: the store is reopened.
    Restart,
    /// Time passes.
    Advance(i64),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (1usize..40).prop_map(Action::Read),
        1 => Just(Action::FailedRequest),
        1 => (1usize..40).prop_map(Action::CrashBeforeCommit),
        1 => Just(Action::StaleCursor),
        1 => Just(Action::Restart),
        3 => (1i64..90).prop_map(|s| Action::Advance(s * SEC)),
    ]
}

fn policy() -> WindowPolicy {
    WindowPolicy {
        // Shorter than the window, as in the default configuration.
        poll_ms: 10 * SEC,
        window_ms: 30 * SEC,
        catchup_window_ms: 600 * SEC,
        settle_lag_ms: 10 * SEC,
        sweep_horizon_ms: 300 * SEC,
        sweep_interval_ms: 60 * SEC,
        initial_lookback_ms: 1800 * SEC,
    }
}

/// Activities: created from 30 min before START to 20 min after; most
/// visible within 5 s, some late by up to 4 min (inside the sweep horizon).
fn feed() -> impl Strategy<Value = Vec<Activity>> {
    prop::collection::vec(
        (-1800i64..1200, prop_oneof![8 => 0i64..5, 1 => 5i64..240]),
        1..250,
    )
    .prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (created_s, delay_s))| {
                let created = START + created_s * SEC + (i as i64 % 1000);
                Activity {
                    id: format!("activity_{i:05}"),
                    created,
                    visible: created + delay_s * SEC,
                }
            })
            .collect()
    })
}

struct Driver {
    dir: tempfile::TempDir,
    store: Store,
    now: i64,
    enricher: Enricher,
    own: Mutex<OwnRequests>,
}

impl Driver {
    fn plan(&self) -> Step {
        let progress: Progress = load_progress(&self.store, "s").unwrap();
        next_step(&policy(), &progress, self.now)
    }

    /// One planner step; reads a page of `limit` if there is one to read.
    fn step(&mut self, feed: &[Activity], limit: usize, commit: bool) {
        match self.plan() {
            Step::InitWatermark(w) => self.store.init_watermark("s", w, self.now).unwrap(),
            Step::WaitUntil(t) => self.now = self.now.max(t),
            Step::Read(w) => {
                let p = page(feed, &w, limit, self.now);
                if commit {
                    commit_page(
                        &mut self.store,
                        claudit::source::utc(self.now),
                        "s",
                        &w,
                        p,
                        &self.enricher,
                        &self.own,
                        &Default::default(),
                    )
                    .unwrap();
                }
            }
        }
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
    fn windows_lose_nothing_and_journal_each_activity_once(feed in feed(), actions in prop::collection::vec(action(), 1..120)) {
        // tmpfs where available: the store fsyncs every commit, and the
        // property is about ordering and atomicity, not the disk.
        let dir = match std::path::Path::new("/dev/shm").is_dir() {
            true => tempfile::tempdir_in("/dev/shm").unwrap(),
            false => tempfile::tempdir().unwrap(),
        };
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        let mut d = Driver { store, dir, now: START, enricher: Enricher::without_geoip(), own: Mutex::new(OwnRequests::new(vec![])) };
        let mut initial = None;
        for action in &actions {
            if initial.is_none() {
                initial = d.store.source_state("s").unwrap().watermark_ms;
            }
            match action {
                Action::Read(n) => d.step(&feed, *n, true),
                Action::FailedRequest => {}
                Action::CrashBeforeCommit(n) => d.step(&feed, *n, false),
                Action::StaleCursor => {
                    if let Step::Read(w) = d.plan() {
                        d.store.restart_window("s", &w).unwrap();
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
        // Let time run until every activity is visible and a sweep has
        // covered it, reading with a fixed page size.
        let last_visible = feed.iter().map(|a| a.visible).max().unwrap();
        let mut guard = 0;
        if initial.is_none() {
            d.step(&feed, 7, true);
            initial = d.store.source_state("s").unwrap().watermark_ms;
        }
        while d.store.source_state("s").unwrap().last_sweep_ms.is_none_or(|t| t <= last_visible + policy().settle_lag_ms)
            || d.store.source_state("s").unwrap().watermark_ms.is_none_or(|w| w <= last_visible)
        {
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
        for a in &feed {
            let in_range = a.created >= initial_watermark && a.created < watermark;
            if in_range {
                prop_assert!(journaled.contains_key(&a.id), "lost {:?} (watermark {})", a, watermark);
            }
        }
        // Invariant 2: the journal holds each id once (the read gives one row per seq).
        prop_assert!(journaled.values().all(|n| *n == 1));
    }
}
