//! The request budget: a fixed one-minute window, as the API's
//! `anthropic-ratelimit-requests-reset` header (the time the whole budget
//! is restored) implies (spec §4.3). A window opens with the first request
//! counted after the previous one ended.

const WINDOW_MICROS: i64 = 60_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateStatus {
    pub limit: u32,
    pub remaining: u32,
    /// When the full budget is restored, microseconds.
    pub reset_micros: i64,
}

#[derive(Debug)]
pub(crate) struct FixedWindow {
    limit: u32,
    window_start: Option<i64>,
    used: u32,
}

impl FixedWindow {
    pub(crate) fn new(limit: u32) -> FixedWindow {
        FixedWindow {
            limit,
            window_start: None,
            used: 0,
        }
    }

    fn roll(&mut self, now: i64) {
        if self.window_start.is_some_and(|s| now >= s + WINDOW_MICROS) {
            self.window_start = None;
            self.used = 0;
        }
    }

    /// Counts one request, or returns the seconds to wait (`retry-after`).
    pub(crate) fn acquire(&mut self, now: i64) -> Result<(), u64> {
        self.roll(now);
        if self.used >= self.limit {
            let reset = self.window_start.map_or(now, |s| s + WINDOW_MICROS);
            let wait = (reset - now).max(0);
            let secs = (wait + 999_999) / 1_000_000;
            return Err(secs.max(1) as u64);
        }
        if self.window_start.is_none() {
            self.window_start = Some(now);
        }
        self.used += 1;
        Ok(())
    }

    pub(crate) fn status(&mut self, now: i64) -> RateStatus {
        self.roll(now);
        RateStatus {
            limit: self.limit,
            remaining: self.limit.saturating_sub(self.used),
            reset_micros: self.window_start.map_or(now, |s| s + WINDOW_MICROS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_resets_a_minute_after_the_window_opened() {
        let mut w = FixedWindow::new(3);
        let t0 = 1_000_000_000;
        assert_eq!(w.status(t0).remaining, 3);
        for i in 0..3 {
            assert_eq!(w.acquire(t0 + i * 1_000_000), Ok(()));
        }
        let s = w.status(t0 + 10_000_000);
        assert_eq!((s.remaining, s.reset_micros), (0, t0 + 60_000_000));
        assert_eq!(w.acquire(t0 + 10_000_000), Err(50));
        assert_eq!(w.acquire(t0 + 59_500_000), Err(1));
        assert_eq!(w.acquire(t0 + 60_000_000), Ok(()));
        assert_eq!(w.status(t0 + 60_000_000).remaining, 2);
    }
}
