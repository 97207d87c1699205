//! How long a catch-up or backfill window is: sized by what it holds, so
//! that reading a range costs about one request per `page_size` activities
//! (plus a few), whatever the range's length. Every request spends the
//! parent organization's budget, which other tools share: an empty hour must
//! not cost one.
//!
//! - A range whose density is unknown is read as one window: the whole rest
//!   of it (at most [`MAX_SPAN_MS`], the feed's six-year retention).
//! - The feed is newest-first, so a window's first page shows the density
//!   near its end. If at that density the window would need more than
//!   `max_window_pages` pages (minutes of budget in one walk), it is split
//!   before anything of it is committed: the page is dropped and the window
//!   planned again, about `max_window_pages / 2` pages long. A split costs
//!   one request; nothing read is kept, so nothing is read twice into the
//!   journal.
//! - A completed window sets the span of the next one (of the source's
//!   catch-up, or of its backfill range) from its own density, aiming at
//!   `max_window_pages / 2` pages: empty and sparse windows grow the next
//!   one, dense ones shrink it.
//!
//! Steady-state live windows (`poll_interval`, at most `window`) and sweeps
//! are not sized here: their spans are set by the configuration.

use super::window::WindowPolicy;
use crate::store::{WindowKind, WindowRow};

/// The longest window: the feed keeps six years, so no range is longer.
pub const MAX_SPAN_MS: i64 = 2_200 * 24 * 3_600_000;
/// The shortest window a density can ask for.
pub const MIN_SPAN_MS: i64 = 1_000;

/// Whether `window` was sized by what it holds: a backfill window, or a
/// live window longer than a steady-state one (catching up).
pub fn is_sized(policy: &WindowPolicy, window: &WindowRow) -> bool {
    match window.kind {
        WindowKind::Backfill => true,
        WindowKind::Live => window.end_ms - window.start_ms > policy.window_ms,
        WindowKind::Sweep => false,
    }
}

/// Whether the next page of `window` may split it: the first page of a sized
/// window (nothing of it committed yet).
pub fn may_split(policy: &WindowPolicy, window: &WindowRow) -> bool {
    is_sized(policy, window) && window.pages == 0 && window.cursor.is_none()
}

/// How many records a window is planned to hold.
fn target_records(policy: &WindowPolicy) -> f64 {
    (policy.max_window_pages as f64 / 2.0).max(1.0) * policy.page_size.max(1) as f64
}

/// The span that holds about the target number of records, at a density of
/// `records` per `span_ms`.
fn span_at(policy: &WindowPolicy, records: i64, span_ms: i64) -> i64 {
    if records <= 0 {
        return MAX_SPAN_MS;
    }
    let span = span_ms.max(1) as f64 * target_records(policy) / records as f64;
    (span.min(MAX_SPAN_MS as f64) as i64).clamp(MIN_SPAN_MS, MAX_SPAN_MS)
}

/// After the first page of a sized window, which held `records` records of
/// the window, the oldest created at `oldest_ms`, with more to come: the
/// span to plan the window again with, if it must be split.
pub fn split(
    policy: &WindowPolicy,
    window: &WindowRow,
    records: i64,
    oldest_ms: Option<i64>,
) -> Option<i64> {
    if !may_split(policy, window) || records <= 0 {
        return None;
    }
    let oldest = oldest_ms?;
    // The page holds every record of the window's newest `read` ms.
    let read = (window.end_ms - oldest).max(1);
    let span = window.end_ms - window.start_ms;
    let pages = span as f64 / read as f64 * records as f64 / policy.page_size.max(1) as f64;
    if pages <= policy.max_window_pages as f64 {
        return None;
    }
    // At most half the window: a split must make progress (and a window
    // already as short as a window may be is read whole).
    let shorter = span_at(policy, records, read).min((span / 2).max(MIN_SPAN_MS));
    (shorter < span).then_some(shorter)
}

/// The span of the next window after `window` completed having read
/// `records` records: `None` for windows not sized by what they hold.
pub fn next_span(policy: &WindowPolicy, window: &WindowRow, records: i64) -> Option<i64> {
    match window.kind {
        WindowKind::Live | WindowKind::Backfill => {
            Some(span_at(policy, records, window.end_ms - window.start_ms))
        }
        WindowKind::Sweep => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const DAY: i64 = 24 * 60 * MIN;

    fn policy() -> WindowPolicy {
        WindowPolicy {
            poll_ms: MIN,
            window_ms: 5 * MIN,
            settle_lag_ms: 2 * MIN,
            sweep_horizon_ms: 60 * MIN,
            sweep_interval_ms: 10 * MIN,
            initial_lookback_ms: DAY,
            page_size: 5_000,
            max_window_pages: 1_000,
        }
    }

    #[test]
    fn only_catch_up_and_backfill_windows_are_sized() {
        let p = policy();
        assert!(is_sized(&p, &WindowRow::fresh(WindowKind::Backfill, 0, 1)));
        assert!(is_sized(&p, &WindowRow::fresh(WindowKind::Live, 0, DAY)));
        assert!(!is_sized(
            &p,
            &WindowRow::fresh(WindowKind::Live, 0, 5 * MIN)
        ));
        assert!(!is_sized(&p, &WindowRow::fresh(WindowKind::Sweep, 0, DAY)));
        // Once a page of it is committed, a window is read to its end.
        let started = WindowRow {
            pages: 1,
            cursor: Some("c".into()),
            ..WindowRow::fresh(WindowKind::Backfill, 0, DAY)
        };
        assert!(!may_split(&p, &started));
    }

    #[test]
    fn a_window_that_would_need_too_many_pages_is_split_to_half_the_budget() {
        let p = policy();
        let w = WindowRow::fresh(WindowKind::Backfill, 0, 400 * DAY);
        // 5,000 records in the newest hour: 9,600 pages at that density.
        let span = split(&p, &w, 5_000, Some(400 * DAY - 60 * MIN)).unwrap();
        // 500 pages of 5,000 at 5,000 an hour: 500 hours.
        assert_eq!(span, 500 * 60 * MIN);
        // 5,000 in the newest 100 days: 4 pages, no split.
        assert_eq!(split(&p, &w, 5_000, Some(300 * DAY)), None);
        // Records all in one millisecond: at least a second, and a window
        // that short is read whole.
        let short = WindowRow::fresh(WindowKind::Backfill, 0, 1_500);
        assert_eq!(split(&p, &short, 5_000, Some(1_499)), Some(MIN_SPAN_MS));
        let shortest = WindowRow::fresh(WindowKind::Backfill, 0, MIN_SPAN_MS);
        assert_eq!(split(&p, &shortest, 5_000, Some(MIN_SPAN_MS - 1)), None);
        let dense = WindowRow::fresh(WindowKind::Backfill, 0, 10 * MIN);
        let span = split(&p, &dense, 5_000, Some(10 * MIN - 1)).unwrap();
        assert_eq!(span, MIN_SPAN_MS);
        // No record of the window in the page: nothing to estimate from.
        assert_eq!(split(&p, &w, 0, None), None);
    }

    #[test]
    fn the_next_window_grows_after_sparse_ones_and_shrinks_after_dense_ones() {
        let p = policy();
        let w = WindowRow::fresh(WindowKind::Live, 0, DAY);
        // Empty: as long as a window may be.
        assert_eq!(next_span(&p, &w, 0), Some(MAX_SPAN_MS));
        // 2,500,000 records in a day: exactly the target.
        assert_eq!(next_span(&p, &w, 2_500_000), Some(DAY));
        // Twice as dense: half as long.
        assert_eq!(next_span(&p, &w, 5_000_000), Some(DAY / 2));
        // Sparse: longer, up to the cap.
        assert_eq!(next_span(&p, &w, 10), Some(MAX_SPAN_MS));
        assert_eq!(
            next_span(&p, &WindowRow::fresh(WindowKind::Sweep, 0, DAY), 10),
            None
        );
    }
}
