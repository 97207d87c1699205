//! The simulator's clock: wall-clock time at start, advanced by a monotonic
//! clock, plus an offset tests can push forward.
//!
//! The monotonic part is `tokio::time::Instant`, so a test runtime with
//! paused time (`tokio::time::pause`, needs tokio's `test-util`) drives the
//! simulator too; `advance` works in any runtime.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

pub(crate) struct SimClock {
    anchor_micros: i64,
    anchor: Instant,
    offset_micros: AtomicI64,
}

impl SimClock {
    pub(crate) fn new() -> SimClock {
        SimClock {
            anchor_micros: Utc::now().timestamp_micros(),
            anchor: Instant::now(),
            offset_micros: AtomicI64::new(0),
        }
    }

    /// Microseconds since the epoch.
    pub(crate) fn now_micros(&self) -> i64 {
        let elapsed = i64::try_from(self.anchor.elapsed().as_micros()).unwrap_or(i64::MAX / 2);
        self.anchor_micros + elapsed + self.offset_micros.load(Ordering::SeqCst)
    }

    pub(crate) fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX / 4);
        self.offset_micros.fetch_add(micros, Ordering::SeqCst);
    }
}

pub(crate) fn to_datetime(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub(crate) fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_the_clock_forward() {
        let c = SimClock::new();
        let before = c.now_micros();
        assert!((before - Utc::now().timestamp_micros()).abs() < 5_000_000);
        c.advance(Duration::from_secs(3600));
        assert!(c.now_micros() - before >= 3_600_000_000);
    }
}
