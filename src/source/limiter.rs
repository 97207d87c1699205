//! The request limiter for one Compliance API budget.
//!
//! Anthropic allows 600 requests per minute per parent organization, shared by
//! every key and every `/v1/compliance/*` endpoint. Two things keep claudit
//! inside it:
//!
//! - a local GCRA limiter (governor) at the configured `requests_per_minute`
//!   with a small burst, sized so that no sliding minute ever holds more than
//!   `requests_per_minute` requests;
//! - the server's own view, from the `anthropic-ratelimit-requests-*` headers
//!   of every response: when `remaining` is zero or nearly so, requests wait
//!   until `reset`; a 429 pauses every request for its `retry-after`.
//!
//! All waiting goes through [`Clock`], which is tokio's clock in the daemon and
//! a [`VirtualClock`] in tests (tokio's paused clock cannot be used while real
//! HTTP requests are in flight: it jumps to the next timer, usually reqwest's
//! request timeout, as soon as the runtime is idle waiting for the network).

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::Quota;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use reqwest::header::HeaderMap;

/// Where the limiter and the retry loop get the time and sleep.
#[derive(Clone, Debug)]
pub enum Clock {
    /// tokio's clock (follows `tokio::time::pause()` when there is no I/O).
    Tokio { origin: tokio::time::Instant },
    /// A virtual clock that only moves when something sleeps on it.
    Virtual(Arc<VirtualClock>),
}

impl Clock {
    pub fn tokio() -> Clock {
        Clock::Tokio {
            origin: tokio::time::Instant::now(),
        }
    }

    /// Monotonic time since this clock was created.
    pub fn elapsed(&self) -> Duration {
        match self {
            Clock::Tokio { origin } => origin.elapsed(),
            Clock::Virtual(v) => v.elapsed(),
        }
    }

    /// Wall-clock time, used to read the server's `reset` and HTTP-date headers.
    pub fn utc_now(&self) -> DateTime<Utc> {
        match self {
            Clock::Tokio { .. } => Utc::now(),
            Clock::Virtual(v) => v.utc_now(),
        }
    }

    pub async fn sleep(&self, duration: Duration) {
        match self {
            Clock::Tokio { .. } => tokio::time::sleep(duration).await,
            Clock::Virtual(v) => v.sleep(duration).await,
        }
    }
}

impl governor::clock::Clock for Clock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.elapsed()
    }
}

/// A clock for tests: time stands still until something sleeps on it, then
/// jumps forward by exactly the requested duration. Every sleep is recorded.
///
/// Sleeps of concurrent tasks add up rather than overlap, so it models one
/// caller at a time (which is how the client tests use it). `hold()` makes
/// every later sleep pend forever, to test cancellation during a backoff.
#[derive(Debug)]
pub struct VirtualClock {
    start_utc: DateTime<Utc>,
    state: Mutex<VirtualState>,
    held_sleeps: tokio::sync::watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct VirtualState {
    elapsed: Duration,
    sleeps: Vec<Duration>,
    hold: bool,
}

impl VirtualClock {
    /// A clock whose wall time starts at `start_utc`.
    pub fn new(start_utc: DateTime<Utc>) -> Arc<VirtualClock> {
        Arc::new(VirtualClock {
            start_utc,
            state: Mutex::new(VirtualState::default()),
            held_sleeps: tokio::sync::watch::channel(0).0,
        })
    }

    pub fn elapsed(&self) -> Duration {
        self.lock().elapsed
    }

    pub fn utc_now(&self) -> DateTime<Utc> {
        self.start_utc + chrono::Duration::from_std(self.elapsed()).unwrap_or(chrono::Duration::MAX)
    }

    /// Every completed sleep so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.lock().sleeps.clone()
    }

    /// From now on, sleeps never complete.
    pub fn hold(&self) {
        self.lock().hold = true;
    }

    /// Resolves once some task is stuck in a held sleep.
    pub async fn wait_for_held_sleep(&self) {
        let mut rx = self.held_sleeps.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|n| *n > 0).await;
    }

    pub async fn sleep(&self, duration: Duration) {
        let hold = {
            let mut state = self.lock();
            if !state.hold {
                state.elapsed += duration;
                state.sleeps.push(duration);
            }
            state.hold
        };
        if hold {
            self.held_sleeps.send_modify(|n| *n += 1);
            std::future::pending::<()>().await;
        }
        // Let other tasks run, as a real sleep would.
        tokio::task::yield_now().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VirtualState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The last rate-limit facts seen from the server, for metrics and `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateState {
    /// `anthropic-ratelimit-requests-limit`: the budget per minute.
    pub limit: Option<u32>,
    /// `anthropic-ratelimit-requests-remaining`.
    pub remaining: Option<u32>,
    /// `anthropic-ratelimit-requests-reset`: when the full budget is back.
    pub reset: Option<DateTime<Utc>>,
    /// `retry-after` of the last 429.
    pub last_retry_after: Option<Duration>,
    /// When the last response carrying any of these headers arrived.
    pub observed_at: Option<DateTime<Utc>>,
    /// Requests are held back until then (server-imposed pause), if in the future.
    pub paused_until: Option<DateTime<Utc>>,
    /// 429 responses seen since start.
    pub rate_limited_total: u64,
}

/// The rate-limit headers of one response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    pub reset: Option<DateTime<Utc>>,
}

impl RateHeaders {
    pub fn from_headers(headers: &HeaderMap) -> RateHeaders {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        RateHeaders {
            limit: text("anthropic-ratelimit-requests-limit").and_then(|v| v.parse().ok()),
            remaining: text("anthropic-ratelimit-requests-remaining").and_then(|v| v.parse().ok()),
            reset: text("anthropic-ratelimit-requests-reset")
                .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none() && self.reset.is_none()
    }
}

/// Never wait longer than this for a `reset`: the budget is per minute, so a
/// reset further away means clock skew or a misread header.
const MAX_RESET_WAIT: Duration = Duration::from_secs(65);
/// Burst of the local limiter: a few requests may go back to back.
const MAX_BURST: u32 = 10;

type Gcra = governor::RateLimiter<NotKeyed, InMemoryState, Clock, NoOpMiddleware<Duration>>;

/// One limiter per rate budget; share it (`Arc`) between every client that
/// draws on the same parent organization.
pub struct RateLimiter {
    gcra: Gcra,
    clock: Clock,
    requests_per_minute: u32,
    state: Mutex<LimiterState>,
}

#[derive(Debug, Default)]
struct LimiterState {
    /// Clock time (`Clock::elapsed`) before which no request may start.
    paused_until: Duration,
    seen: RateState,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("requests_per_minute", &self.requests_per_minute)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter allowing at most `requests_per_minute` requests in any
    /// sliding minute (0 is treated as 1).
    pub fn new(requests_per_minute: u32, clock: Clock) -> RateLimiter {
        let rpm = requests_per_minute.max(1);
        let burst = (rpm / 10).clamp(1, MAX_BURST);
        // GCRA with burst b and period T lets ceil(60s/T) + b - 1 requests
        // into a 60 s window; with T = 60s / (rpm - b + 1) that is exactly rpm.
        // Rounded up: a period a nanosecond short would let one extra
        // request into some minute.
        let cells = u64::from(rpm - burst + 1);
        let period = Duration::from_nanos(60_000_000_000_u64.div_ceil(cells));
        let quota = Quota::with_period(period)
            .expect("period is positive: rpm is bounded by u32")
            .allow_burst(NonZeroU32::new(burst).expect("burst >= 1"));
        RateLimiter {
            gcra: Gcra::direct_with_clock(quota, clock.clone()),
            clock,
            requests_per_minute: rpm,
            state: Mutex::new(LimiterState::default()),
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn requests_per_minute(&self) -> u32 {
        self.requests_per_minute
    }

    /// Waits until one request may be sent.
    pub async fn acquire(&self) {
        loop {
            let now = self.clock.elapsed();
            let paused_until = self.lock().paused_until;
            if paused_until > now {
                self.clock.sleep(paused_until - now).await;
                continue;
            }
            match self.gcra.check() {
                Ok(()) => return,
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.clock.elapsed());
                    self.clock.sleep(wait).await;
                }
            }
        }
    }

    /// Takes in the rate-limit headers of a response: when the budget is spent
    /// or nearly so, later requests wait until `reset`.
    pub fn observe(&self, headers: &RateHeaders) {
        if headers.is_empty() {
            return;
        }
        let now_utc = self.clock.utc_now();
        let pause = match (headers.remaining, headers.reset) {
            (Some(remaining), Some(reset)) if remaining < low_water(headers.limit) => {
                let wait = (reset - now_utc).to_std().unwrap_or(Duration::ZERO);
                Some(wait.min(MAX_RESET_WAIT))
            }
            _ => None,
        };
        let mut state = self.lock();
        let seen = &mut state.seen;
        seen.limit = headers.limit.or(seen.limit);
        seen.remaining = headers.remaining;
        seen.reset = headers.reset;
        seen.observed_at = Some(now_utc);
        drop(state);
        if let Some(wait) = pause.filter(|w| !w.is_zero()) {
            tracing::debug!(
                remaining = headers.remaining,
                wait_ms = wait.as_millis() as u64,
                "rate budget nearly spent: holding requests until it resets"
            );
            self.pause_for(wait);
        }
    }

    /// A 429: no request may start for `retry_after`.
    pub fn rate_limited(&self, retry_after: Option<Duration>) {
        {
            let mut state = self.lock();
            state.seen.rate_limited_total += 1;
            if retry_after.is_some() {
                state.seen.last_retry_after = retry_after;
            }
        }
        if let Some(wait) = retry_after {
            self.pause_for(wait);
        }
    }

    /// Holds every request back for `wait` from now (never shortens a pause).
    pub fn pause_for(&self, wait: Duration) {
        let until = self.clock.elapsed() + wait;
        let mut state = self.lock();
        state.paused_until = state.paused_until.max(until);
    }

    pub fn state(&self) -> RateState {
        let state = self.lock();
        let mut seen = state.seen.clone();
        let now = self.clock.elapsed();
        seen.paused_until = (state.paused_until > now).then(|| {
            self.clock.utc_now()
                + chrono::Duration::from_std(state.paused_until - now)
                    .unwrap_or(chrono::Duration::zero())
        });
        seen
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LimiterState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Below this many remaining requests the budget counts as spent: 1 % of the
/// limit, at least 1 (so `remaining: 0` always pauses).
fn low_water(limit: Option<u32>) -> u32 {
    limit.map_or(1, |l| (l / 100).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest number of timestamps inside any half-open window of `width`.
    fn max_in_window(times: &[Duration], width: Duration) -> usize {
        let mut sorted = times.to_vec();
        sorted.sort();
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..sorted.len() {
            while sorted[hi] - sorted[lo] >= width {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_never_exceed_the_budget_in_any_minute() {
        let limiter = Arc::new(RateLimiter::new(600, Clock::tokio()));
        let times = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let limiter = limiter.clone();
            let times = times.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..250 {
                    limiter.acquire().await;
                    times.lock().unwrap().push(limiter.clock().elapsed());
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let times = times.lock().unwrap().clone();
        assert_eq!(times.len(), 2000);
        let busiest = max_in_window(&times, Duration::from_secs(60));
        assert!(busiest <= 600, "{busiest} requests in one minute");
        // And the budget is used, not wasted: 2000 requests need a bit over
        // 3 minutes at 600/min (the first 10 are a burst).
        let last = times.iter().max().unwrap();
        assert!(*last < Duration::from_secs(205), "took {last:?}");
        assert!(*last > Duration::from_secs(195), "took {last:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn small_budgets_hold_too() {
        for rpm in [1, 5, 59, 61, 1000] {
            let limiter = RateLimiter::new(rpm, Clock::tokio());
            let mut times = Vec::new();
            for _ in 0..(rpm * 3) {
                limiter.acquire().await;
                times.push(limiter.clock().elapsed());
            }
            let busiest = max_in_window(&times, Duration::from_secs(60));
            assert!(busiest <= rpm as usize, "rpm {rpm}: {busiest} in a minute");
        }
    }

    #[tokio::test]
    async fn spent_budget_waits_until_reset() {
        let start = DateTime::parse_from_rfc3339("2026-04-21T14:38:00Z")
            .unwrap()
            .to_utc();
        let clock = VirtualClock::new(start);
        let limiter = RateLimiter::new(600, Clock::Virtual(clock.clone()));
        limiter.acquire().await;
        limiter.observe(&RateHeaders {
            limit: Some(600),
            remaining: Some(0),
            reset: Some(start + chrono::Duration::seconds(25)),
        });
        assert_eq!(limiter.state().remaining, Some(0));
        assert!(limiter.state().paused_until.is_some());
        limiter.acquire().await;
        assert_eq!(clock.elapsed(), Duration::from_secs(25));
        // Plenty left: no pause.
        limiter.observe(&RateHeaders {
            limit: Some(600),
            remaining: Some(500),
            reset: Some(clock.utc_now() + chrono::Duration::seconds(30)),
        });
        limiter.acquire().await;
        assert_eq!(clock.elapsed(), Duration::from_secs(25));
    }

    #[tokio::test]
    async fn nearly_spent_budget_also_waits_and_far_resets_are_capped() {
        let start = Utc::now();
        let clock = VirtualClock::new(start);
        let limiter = RateLimiter::new(600, Clock::Virtual(clock.clone()));
        limiter.observe(&RateHeaders {
            limit: Some(600),
            remaining: Some(3),
            reset: Some(start + chrono::Duration::hours(2)),
        });
        limiter.acquire().await;
        assert_eq!(clock.elapsed(), MAX_RESET_WAIT);
    }

    #[tokio::test]
    async fn a_reset_in_the_past_does_not_wait() {
        let start = Utc::now();
        let clock = VirtualClock::new(start);
        let limiter = RateLimiter::new(600, Clock::Virtual(clock.clone()));
        limiter.observe(&RateHeaders {
            limit: None,
            remaining: Some(0),
            reset: Some(start - chrono::Duration::seconds(5)),
        });
        limiter.acquire().await;
        assert_eq!(clock.elapsed(), Duration::ZERO);
    }

    #[tokio::test]
    async fn rate_limited_pauses_for_retry_after_and_never_shortens() {
        let clock = VirtualClock::new(Utc::now());
        let limiter = RateLimiter::new(600, Clock::Virtual(clock.clone()));
        limiter.rate_limited(Some(Duration::from_secs(25)));
        limiter.rate_limited(Some(Duration::from_secs(3)));
        let state = limiter.state();
        assert_eq!(state.rate_limited_total, 2);
        assert_eq!(state.last_retry_after, Some(Duration::from_secs(3)));
        limiter.acquire().await;
        assert_eq!(clock.elapsed(), Duration::from_secs(25));
        assert_eq!(limiter.state().paused_until, None);
    }

    #[test]
    fn parses_rate_headers_leniently() {
        let mut h = HeaderMap::new();
        h.insert("anthropic-ratelimit-requests-limit", "600".parse().unwrap());
        h.insert(
            "anthropic-ratelimit-requests-remaining",
            " 12 ".parse().unwrap(),
        );
        h.insert(
            "anthropic-ratelimit-requests-reset",
            "2026-04-21T14:38:25Z".parse().unwrap(),
        );
        let r = RateHeaders::from_headers(&h);
        assert_eq!(r.limit, Some(600));
        assert_eq!(r.remaining, Some(12));
        assert_eq!(r.reset.unwrap().to_rfc3339(), "2026-04-21T14:38:25+00:00");
        h.insert(
            "anthropic-ratelimit-requests-reset",
            "soon".parse().unwrap(),
        );
        h.insert(
            "anthropic-ratelimit-requests-remaining",
            "-1".parse().unwrap(),
        );
        let r = RateHeaders::from_headers(&h);
        assert_eq!((r.remaining, r.reset), (None, None));
        assert!(RateHeaders::from_headers(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn low_water_is_one_percent_of_the_limit() {
        assert_eq!(low_water(None), 1);
        assert_eq!(low_water(Some(600)), 6);
        assert_eq!(low_water(Some(50)), 1);
    }
}
