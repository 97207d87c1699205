//! The window state machine, as a pure function of the stored state and the
//! clock: which window to read a page of next, or how long to wait.
//!
//! Priorities: an open live window first (its cursor is bound to its bounds,
//! so it is always resumed exactly), then a new live window when one is due,
//! then the late-arrival sweep, then backfill windows. The source reads one
//! page per step, so a sweep or backfill yields to live polling between pages.
//!
//! Steady-state live windows are `poll_interval` long (at most `window`);
//! catch-up and backfill windows are sized by what they hold (`sizing`).

use super::sizing::MAX_SPAN_MS;

const HOUR_MS: i64 = 3_600_000;
use crate::store::{BackfillRow, SourceState, WindowKind, WindowRow};

/// The timing settings of a source, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPolicy {
    /// Once caught up, a new live window starts when this much has settled
    /// past the watermark (`poll_interval`, at most `window`).
    pub poll_ms: i64,
    /// The longest steady-state window.
    pub window_ms: i64,
    pub settle_lag_ms: i64,
    pub sweep_horizon_ms: i64,
    pub sweep_interval_ms: i64,
    pub initial_lookback_ms: i64,
    /// Records per page (`page_size`).
    pub page_size: i64,
    /// A catch-up or backfill window found to need more pages than this is
    /// split (`max_window_pages`).
    pub max_window_pages: i64,
}

impl WindowPolicy {
    pub fn from_config(c: &crate::source::SourceConfig) -> WindowPolicy {
        let ms = |d: std::time::Duration| d.as_millis() as i64;
        WindowPolicy {
            poll_ms: ms(c.poll_interval).min(ms(c.window)).max(1),
            window_ms: ms(c.window).max(1),
            settle_lag_ms: ms(c.settle_lag),
            sweep_horizon_ms: ms(c.sweep_horizon),
            sweep_interval_ms: ms(c.sweep_interval).max(1),
            initial_lookback_ms: ms(c.initial_lookback),
            page_size: i64::from(c.page_size).max(1),
            max_window_pages: i64::from(c.max_window_pages).max(1),
        }
    }
}

/// What the stored state says is in progress.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub state: SourceState,
    pub open_live: Option<WindowRow>,
    pub open_sweep: Option<WindowRow>,
    pub open_backfill: Option<WindowRow>,
    /// Unfinished backfill ranges, oldest first.
    pub backfills: Vec<BackfillRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Set the watermark of a source that never ran to `now - initial_lookback`.
    InitWatermark(i64),
    /// Read the next page of this window.
    Read(WindowRow),
    /// Nothing to read before this time (epoch ms).
    WaitUntil(i64),
}

fn fresh(kind: WindowKind, start_ms: i64, end_ms: i64) -> WindowRow {
    WindowRow::fresh(kind, start_ms, end_ms)
}

/// The next step for a source at `now_ms`.
pub fn next_step(policy: &WindowPolicy, progress: &Progress, now_ms: i64) -> Step {
    let Some(watermark) = progress.state.watermark_ms else {
        return Step::InitWatermark(now_ms - policy.initial_lookback_ms);
    };
    if let Some(open) = &progress.open_live {
        return Step::Read(open.clone());
    }
    // The newest instant a window may end at: rows need time to become visible.
    let settled = now_ms - policy.settle_lag_ms;
    let behind = settled - watermark;
    if behind >= policy.poll_ms.min(policy.window_ms) {
        if behind <= 2 * policy.window_ms {
            return Step::Read(fresh(
                WindowKind::Live,
                watermark,
                (watermark + policy.window_ms).min(settled),
            ));
        }
        // Catching up (first start, after downtime): a window sized by what
        // the last one held, the whole way to now if that is unknown, but
        // not into the hour still open. A walk journals its window's newest
        // records first, and an archive seals hours by the watermark: a
        // window reaching into the open hour would hold back the archiving
        // of everything it read until that hour is sealed.
        let size = progress.state.catchup_span_ms.unwrap_or(MAX_SPAN_MS);
        let mut end = watermark.saturating_add(size).min(settled);
        let open_hour = settled - settled.rem_euclid(HOUR_MS);
        if end > open_hour && open_hour > watermark {
            end = open_hour;
        }
        return Step::Read(fresh(WindowKind::Live, watermark, end));
    }
    let next_live_at = watermark + policy.poll_ms.min(policy.window_ms) + policy.settle_lag_ms;

    if let Some(open) = &progress.open_sweep {
        return Step::Read(open.clone());
    }
    // The sweep re-reads from the previous sweep's start minus the horizon:
    // a record missed because it became visible after its page was read has
    // `created_at > visible_at - horizon > previous sweep start - horizon`,
    // however long the daemon was down or busy catching up in between.
    let last_sweep = progress.state.last_sweep_ms.unwrap_or(now_ms);
    let sweep_due_at = last_sweep + policy.sweep_interval_ms;
    let sweep_start = last_sweep - policy.sweep_horizon_ms;
    let sweep_enabled = policy.sweep_horizon_ms > 0 && sweep_start < watermark;
    if sweep_enabled && now_ms >= sweep_due_at {
        return Step::Read(fresh(WindowKind::Sweep, sweep_start, watermark));
    }

    if let Some(open) = &progress.open_backfill {
        return Step::Read(open.clone());
    }
    if let Some(range) = progress.backfills.first() {
        let span = range.window_span_ms.unwrap_or(MAX_SPAN_MS);
        let end = range.next_ms.saturating_add(span).min(range.until_ms);
        return Step::Read(fresh(WindowKind::Backfill, range.next_ms, end));
    }

    let mut wake = next_live_at;
    if sweep_enabled {
        wake = wake.min(sweep_due_at);
    }
    Step::WaitUntil(wake.max(now_ms + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn policy() -> WindowPolicy {
        WindowPolicy {
            poll_ms: 5 * MIN,
            window_ms: 5 * MIN,
            settle_lag_ms: 2 * MIN,
            sweep_horizon_ms: 60 * MIN,
            sweep_interval_ms: 10 * MIN,
            initial_lookback_ms: 24 * 60 * MIN,
            page_size: 5_000,
            max_window_pages: 1_000,
        }
    }

    fn at(watermark: i64, last_sweep: i64) -> Progress {
        Progress {
            state: SourceState {
                watermark_ms: Some(watermark),
                last_sweep_ms: Some(last_sweep),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn first_start_reads_back_the_initial_lookback() {
        let now = 1_000 * 24 * 60 * MIN;
        assert_eq!(
            next_step(&policy(), &Progress::default(), now),
            Step::InitWatermark(now - 24 * 60 * MIN)
        );
    }

    #[test]
    fn catch_up_windows_are_sized_by_what_they_hold_and_never_pass_the_settle_lag() {
        let now = 100 * 60 * MIN + 30 * MIN;
        // Density unknown: the whole way to the hour now - settle_lag is in.
        let step = next_step(&policy(), &at(now - 24 * 60 * MIN, now), now);
        assert_eq!(
            step,
            Step::Read(fresh(WindowKind::Live, now - 24 * 60 * MIN, now - 30 * MIN))
        );
        // Then the rest: past that hour's start, up to now - settle_lag.
        assert_eq!(
            next_step(&policy(), &at(now - 30 * MIN, now), now),
            Step::Read(fresh(WindowKind::Live, now - 30 * MIN, now - 2 * MIN))
        );
        // Learned from the last window: that span.
        let mut p = at(now - 24 * 60 * MIN, now);
        p.state.catchup_span_ms = Some(60 * MIN);
        assert_eq!(
            next_step(&policy(), &p, now),
            Step::Read(fresh(
                WindowKind::Live,
                now - 24 * 60 * MIN,
                now - 23 * 60 * MIN
            ))
        );
        // A little behind: steady-state windows, one full window at a time.
        let step = next_step(&policy(), &at(now - 8 * MIN, now), now);
        assert_eq!(
            step,
            Step::Read(fresh(WindowKind::Live, now - 8 * MIN, now - 3 * MIN))
        );
        // Catch-up windows stop at now - settle_lag.
        let step = next_step(&policy(), &at(now - 25 * MIN, now), now);
        assert_eq!(
            step,
            Step::Read(fresh(WindowKind::Live, now - 25 * MIN, now - 2 * MIN))
        );
    }

    #[test]
    fn steady_state_waits_for_a_full_window() {
        let now = 100 * 60 * MIN;
        let step = next_step(&policy(), &at(now - 5 * MIN, now), now);
        assert_eq!(step, Step::WaitUntil(now + 2 * MIN));
    }

    #[test]
    fn a_shorter_poll_interval_reads_what_has_settled_every_poll() {
        let policy = WindowPolicy {
            poll_ms: MIN,
            ..policy()
        };
        let now = 100 * 60 * MIN;
        // Less than a poll interval has settled: wait for it.
        assert_eq!(
            next_step(&policy, &at(now - 2 * MIN - 30_000, now), now),
            Step::WaitUntil(now + 30_000)
        );
        // One interval settled: read exactly it, not a whole `window` later.
        assert_eq!(
            next_step(&policy, &at(now - 3 * MIN, now), now),
            Step::Read(fresh(WindowKind::Live, now - 3 * MIN, now - 2 * MIN))
        );
        // Further behind: windows are still at most `window` long.
        assert_eq!(
            next_step(&policy, &at(now - 9 * MIN, now), now),
            Step::Read(fresh(WindowKind::Live, now - 9 * MIN, now - 4 * MIN))
        );
    }

    #[test]
    fn an_open_live_window_is_resumed_exactly() {
        let now = 100 * 60 * MIN;
        let mut p = at(now - 60 * MIN, now);
        let open = WindowRow {
            cursor: Some("c".into()),
            pages: 3,
            ..fresh(WindowKind::Live, 1, 2)
        };
        p.open_live = Some(open.clone());
        assert_eq!(next_step(&policy(), &p, now), Step::Read(open));
    }

    #[test]
    fn sweep_runs_when_due_and_yields_to_live() {
        let now = 100 * 60 * MIN;
        let w = now - 3 * MIN;
        let p = at(w, now - 11 * MIN);
        assert_eq!(
            next_step(&policy(), &p, now),
            Step::Read(fresh(WindowKind::Sweep, now - 71 * MIN, w))
        );
        // Live due as well: live first, even with a sweep open.
        let mut p = at(now - 10 * MIN, now - 11 * MIN);
        p.open_sweep = Some(fresh(WindowKind::Sweep, 0, 1));
        assert!(matches!(
            next_step(&policy(), &p, now),
            Step::Read(WindowRow {
                kind: WindowKind::Live,
                ..
            })
        ));
    }

    #[test]
    fn after_downtime_the_sweep_reaches_back_to_the_last_sweep() {
        // Down for 5 hours, caught up since: the sweep covers everything read
        // since an hour before the last sweep, not just the last hour.
        let now = 100 * 60 * MIN;
        let last_sweep = now - 5 * 60 * MIN;
        let p = at(now - 3 * MIN, last_sweep);
        assert_eq!(
            next_step(&policy(), &p, now),
            Step::Read(fresh(
                WindowKind::Sweep,
                last_sweep - 60 * MIN,
                now - 3 * MIN
            ))
        );
    }

    #[test]
    fn no_sweep_while_the_watermark_is_behind_the_sweep_range() {
        let now = 100 * 60 * MIN;
        // Catching up from far behind: live windows, never an empty sweep.
        let p = at(now - 10 * 60 * MIN, now - 20 * MIN);
        assert!(matches!(
            next_step(&policy(), &p, now),
            Step::Read(WindowRow {
                kind: WindowKind::Live,
                ..
            })
        ));
    }

    #[test]
    fn backfill_windows_come_last_and_are_sized_by_what_they_hold() {
        let now = 100 * 60 * MIN;
        let mut p = at(now - 3 * MIN, now);
        let range = BackfillRow {
            source: "s".into(),
            since_ms: 0,
            until_ms: 90 * MIN,
            next_ms: 60 * MIN,
            records: 0,
            window_span_ms: None,
            requests: 0,
        };
        // Density unknown: the rest of the range.
        p.backfills = vec![range.clone()];
        assert_eq!(
            next_step(&policy(), &p, now),
            Step::Read(fresh(WindowKind::Backfill, 60 * MIN, 90 * MIN))
        );
        // Learned: that span.
        p.backfills = vec![BackfillRow {
            window_span_ms: Some(10 * MIN),
            ..range
        }];
        assert_eq!(
            next_step(&policy(), &p, now),
            Step::Read(fresh(WindowKind::Backfill, 60 * MIN, 70 * MIN))
        );
        // A live window due comes first.
        let mut due = p.clone();
        due.state.watermark_ms = Some(now - 8 * MIN);
        assert!(matches!(
            next_step(&policy(), &due, now),
            Step::Read(WindowRow {
                kind: WindowKind::Live,
                ..
            })
        ));
    }
}
