//! The embedded Compliance API simulator: `GET /v1/compliance/activities`
//! with the real API's semantics (spec/compliance-api.md §1, §2, §4), for
//! `claudit demo`, end-to-end tests and benchmarks.
//!
//! What it implements, and where it chooses:
//! - auth by `x-api-key` (401 before the rate limiter; a `forbidden_key`
//!   gets 403 after using one unit of budget), `anthropic-version` required;
//! - newest-first order (`order=asc` too), ties broken by id; `limit`,
//!   `created_at.{gte,gt,lte,lt}`, type/org/actor filters, 400s that name the
//!   parameter; unknown parameters ignored;
//! - opaque cursors (base64url JSON of a position and the time it was
//!   issued); raw activity ids are accepted as cursors too;
//! - visibility: each record becomes visible some time after `created_at`,
//!   a fraction of them late, so late records appear behind cursors and
//!   windows already read;
//! - a fixed one-minute rate-limit window (see `ratelimit`), with
//!   `anthropic-ratelimit-*` headers on every response (when a limit is set)
//!   and `retry-after` on 429;
//! - every authenticated call logs its own `compliance_api_accessed`
//!   activity carrying the response's `request-id`;
//! - injected faults for the next requests (`Simulator::inject`);
//! - the directory endpoints (organizations, users, roles, permissions,
//!   groups, members), consistent with the feed's directory changes
//!   (`directory.rs`).
//!
//! Records are rendered on demand from `(seed, index)` (see `generate`), so
//! a million-record backlog costs about 40 MB.

mod clock;
mod directory;
pub mod generate;
mod ids;
mod json;
mod query;
mod ratelimit;
mod rng;
mod server;
mod store;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use directory::{SimDirectory, SimGroup, SimMember, SimRole};

use clock::SimClock;
use generate::Generator;
use ratelimit::FixedWindow;
use store::Store;

/// How the simulator behaves. `Default` is a small, realistic org.
#[derive(Clone)]
pub struct SimConfig {
    /// The only accepted `x-api-key`.
    pub api_key: String,
    /// A valid key that lacks `read:compliance_activities`: 403.
    pub forbidden_key: Option<String>,
    /// More accepted keys besides `api_key` (a key rotation in progress).
    pub extra_api_keys: Vec<String>,
    /// Activities generated at start, `created_at` spread over
    /// `backlog_span` ending at the start time.
    pub backlog: usize,
    pub backlog_span: Duration,
    /// New activities per second while live generation runs (0 = none).
    pub live_per_second: f64,
    /// Every record becomes visible `U(0, visibility_delay)` after `created_at`.
    pub visibility_delay: Duration,
    /// Fraction of records (live and backlog) that are late.
    pub late_fraction: f64,
    /// Late records become visible `U(visibility_delay, late_max_delay)`
    /// after `created_at` (backlog records too, so only those near the
    /// backlog's end are still invisible at start).
    pub late_max_delay: Duration,
    /// Requests per minute; `None` = unthrottled (and no rate-limit headers).
    pub rate_limit_per_minute: Option<u32>,
    /// The largest accepted `limit`.
    pub max_limit: u32,
    /// Cursors issued longer ago than this are rejected with 400.
    pub cursor_ttl: Option<Duration>,
    /// Every authenticated call creates its own `compliance_api_accessed`.
    pub self_activity: bool,
    /// Add the attack sequences of `generate/attacks.rs` (a brute force, an
    /// off-hours Admin API key after logging was turned off, an impossible
    /// journey) to a backlog of at least 12 hours.
    pub attack_sequences: bool,
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            api_key: "sk-ant-api01-simulator".into(),
            forbidden_key: None,
            extra_api_keys: Vec::new(),
            backlog: 10_000,
            backlog_span: Duration::from_secs(24 * 3600),
            live_per_second: 1.0,
            visibility_delay: Duration::from_secs(1),
            late_fraction: 0.01,
            late_max_delay: Duration::from_secs(10 * 60),
            rate_limit_per_minute: Some(600),
            max_limit: 5000,
            cursor_ttl: None,
            self_activity: true,
            attack_sequences: false,
            seed: 1,
        }
    }
}

/// Keys are secrets: `Debug` shows only whether they are set.
impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("api_key", &"[REDACTED]")
            .field(
                "forbidden_key",
                &self.forbidden_key.as_ref().map(|_| "[REDACTED]"),
            )
            .field(
                "extra_api_keys",
                &format!("[{} REDACTED]", self.extra_api_keys.len()),
            )
            .field("backlog", &self.backlog)
            .field("backlog_span", &self.backlog_span)
            .field("live_per_second", &self.live_per_second)
            .field("visibility_delay", &self.visibility_delay)
            .field("late_fraction", &self.late_fraction)
            .field("late_max_delay", &self.late_max_delay)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("max_limit", &self.max_limit)
            .field("cursor_ttl", &self.cursor_ttl)
            .field("self_activity", &self.self_activity)
            .field("attack_sequences", &self.attack_sequences)
            .field("seed", &self.seed)
            .finish()
    }
}

impl SimConfig {
    fn validate(&self) -> std::io::Result<()> {
        let invalid = |msg: String| Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, msg));
        if self.api_key.is_empty() {
            return invalid("simulator api_key must not be empty".into());
        }
        if self.extra_api_keys.iter().any(String::is_empty) {
            return invalid("simulator extra_api_keys must not contain an empty key".into());
        }
        if self.max_limit == 0 {
            return invalid("simulator max_limit must be at least 1".into());
        }
        if !(self.live_per_second.is_finite() && self.live_per_second >= 0.0) {
            return invalid(format!(
                "simulator live_per_second must be a finite number >= 0, got {}",
                self.live_per_second
            ));
        }
        if !(0.0..=1.0).contains(&self.late_fraction) {
            return invalid(format!(
                "simulator late_fraction must be within 0..=1, got {}",
                self.late_fraction
            ));
        }
        if self.backlog > u32::MAX as usize / 2 {
            return invalid(format!(
                "simulator backlog {} is too large (max {})",
                self.backlog,
                u32::MAX / 2
            ));
        }
        Ok(())
    }
}

/// One activity the simulator holds (visible or not yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimActivity {
    pub id: String,
    pub activity_type: String,
    pub created_at: DateTime<Utc>,
    pub visible_at: DateTime<Utc>,
}

/// One request the simulator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRequest {
    pub at: DateTime<Utc>,
    /// The path (`/v1/compliance/activities`, `/v1/compliance/groups`, ...).
    pub path: String,
    /// The raw query string (still percent-encoded).
    pub query: String,
    pub status: u16,
    pub request_id: String,
}

/// A failure the next request gets instead of (or on top of) its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// This status with the API's error envelope (type chosen by status:
    /// 400 `invalid_request_error`, 404 `not_found_error`, 429
    /// `rate_limit_error`, 529/503 `overloaded_error`, other 5xx `api_error`,
    /// ...), optional `retry-after` and `x-should-retry` headers. Answered
    /// before authentication, like a failure in front of the API: it uses
    /// no budget and logs no self activity.
    Status {
        status: u16,
        retry_after: Option<u64>,
        should_retry: Option<bool>,
    },
    /// The request is served normally, but a 200's JSON body is cut in the
    /// middle (the HTTP message itself is well-formed).
    TruncatedBody,
    /// Answer normally after this delay (for timeout tests).
    Delay(Duration),
}

pub(crate) struct Shared {
    config: SimConfig,
    clock: SimClock,
    generator: Generator,
    store: RwLock<Store>,
    requests: Mutex<Vec<SimRequest>>,
    faults: Mutex<VecDeque<Fault>>,
    limiter: Option<Mutex<FixedWindow>>,
    base_url: String,
    request_counter: AtomicU64,
    live_stopped: AtomicBool,
}

struct Guard {
    cancel: CancellationToken,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // The last handle gone: stop serving and generating.
        self.cancel.cancel();
    }
}

/// A running simulator. Cheap to clone; the server stops when the last
/// clone is dropped or on [`Simulator::shutdown`].
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
    guard: Arc<Guard>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Starts on `127.0.0.1` on a free port.
    pub async fn start(config: SimConfig) -> std::io::Result<Simulator> {
        Simulator::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    pub async fn start_on(addr: SocketAddr, config: SimConfig) -> std::io::Result<Simulator> {
        config.validate()?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let clock = SimClock::new();
        let start_micros = clock.now_micros();
        let backlog_config = config.clone();
        let (generator, store) = tokio::task::spawn_blocking(move || {
            let generator = Generator::new(backlog_config.seed);
            let store = server::build_backlog(&generator, &backlog_config, start_micros);
            (generator, store)
        })
        .await
        .map_err(std::io::Error::other)?;
        let limiter = config
            .rate_limit_per_minute
            .map(|l| Mutex::new(FixedWindow::new(l)));
        let live_per_second = config.live_per_second;
        let first_live_index = config.backlog as u64;
        let shared = Arc::new(Shared {
            config,
            clock,
            generator,
            store: RwLock::new(store),
            requests: Mutex::new(Vec::new()),
            faults: Mutex::new(VecDeque::new()),
            limiter,
            base_url: format!("http://{local}"),
            request_counter: AtomicU64::new(0),
            live_stopped: AtomicBool::new(false),
        });
        let cancel = CancellationToken::new();
        if live_per_second > 0.0 {
            tokio::spawn(server::live_generation(
                shared.clone(),
                cancel.clone(),
                start_micros,
                first_live_index,
            ));
        }
        let router = server::router(shared.clone());
        let shutdown = cancel.clone().cancelled_owned();
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(error = %e, "simulator server stopped with an error");
            }
        });
        Ok(Simulator {
            shared,
            guard: Arc::new(Guard {
                cancel,
                server: Mutex::new(Some(server)),
            }),
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Stops generating new live activities (self activities continue).
    pub fn stop_live(&self) {
        self.shared
            .live_stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The next requests get these faults, in order, one per request.
    pub fn inject(&self, faults: Vec<Fault>) {
        lock(&self.shared.faults).extend(faults);
    }

    /// Everything generated so far (including self activities and records
    /// not visible yet), oldest first.
    pub fn activities(&self) -> Vec<SimActivity> {
        server::activities(&self.shared)
    }

    /// Every request served so far, in arrival order.
    pub fn requests(&self) -> Vec<SimRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The directory as the directory endpoints answer it now.
    pub fn directory(&self) -> SimDirectory {
        directory::at(&self.shared, self.shared.clock.now_micros())
    }

    /// The directory as the directory endpoints answered it at `at` (the
    /// changes of the feed created up to then).
    pub fn directory_at(&self, at: DateTime<Utc>) -> SimDirectory {
        directory::at(&self.shared, at.timestamp_micros())
    }

    /// Appends an activity created now and visible at once: `fields` holds
    /// its `type`, `actor`, `organization_id`/`organization_uuid` and
    /// type-specific fields (`id` and `created_at` are set). A
    /// directory-change activity changes the directory too (a removal, a
    /// group membership). Returns its id.
    pub fn append_activity(&self, fields: serde_json::Value) -> String {
        directory::append(&self.shared, self.shared.clock.now_micros(), fields)
    }

    /// Appends an activity created `ago` before now and visible from now:
    /// a late arrival that only a sweep finds once the live windows have
    /// passed its `created_at`. Returns its id.
    pub fn append_late_activity(&self, fields: serde_json::Value, ago: Duration) -> String {
        let now = self.shared.clock.now_micros();
        let created = now - i64::try_from(ago.as_micros()).unwrap_or(i64::MAX / 2);
        directory::append_at(&self.shared, created, now, fields)
    }

    /// Removes `user_id` from its organization now, as an admin would: an
    /// `org_user_deleted` activity (by the organization's primary owner)
    /// that the directory follows. Their activities stay in the feed.
    pub fn remove_user(&self, user_id: &str) -> Option<String> {
        let world = self.shared.generator.world();
        let user = &world.users[world.user_index(user_id)? as usize];
        let org = &world.orgs[user.org as usize];
        let owner = world.users.iter().find(|u| u.org == user.org)?;
        Some(self.append_activity(serde_json::json!({
            "type": "org_user_deleted",
            "organization_id": org.id,
            "organization_uuid": org.uuid,
            "actor": {"type": "user_actor", "email_address": owner.email, "user_id": owner.id,
                      "ip_address": owner.ip, "user_agent": owner.user_agent},
            "deleted_user_id": user.id,
            "deleted_user_email": user.email,
        })))
    }

    /// An activity of `user_id` (a `claude_chat_created`) created now.
    pub fn act_as(&self, user_id: &str) -> Option<String> {
        let world = self.shared.generator.world();
        let user = &world.users[world.user_index(user_id)? as usize];
        let org = &world.orgs[user.org as usize];
        Some(self.append_activity(serde_json::json!({
            "type": "claude_chat_created",
            "organization_id": org.id,
            "organization_uuid": org.uuid,
            "actor": {"type": "user_actor", "email_address": user.email, "user_id": user.id,
                      "ip_address": user.ip, "user_agent": user.user_agent},
            "claude_chat_id": world.entity_id("claude_chat_", 7),
        })))
    }

    /// The simulator's current time (wall clock plus `advance_clock`).
    pub fn now(&self) -> DateTime<Utc> {
        clock::to_datetime(self.shared.clock.now_micros())
    }

    /// Moves the simulator's clock forward: records become visible, cursors
    /// age and rate-limit windows pass without waiting. Live generation
    /// catches up on its next tick.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// Stops the server (in-flight requests may finish) and live generation.
    pub async fn shutdown(self) {
        self.guard.cancel.cancel();
        let handle = lock(&self.guard.server).take();
        if let Some(mut handle) = handle {
            // Graceful shutdown waits for open connections; do not hang on a
            // client that keeps one open.
            if tokio::time::timeout(Duration::from_secs(5), &mut handle)
                .await
                .is_err()
            {
                handle.abort();
            }
        }
    }
}

/// Locks a mutex, recovering from poisoning: the data is plain bookkeeping,
/// and a panicked request must not take the simulator down with it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_is_send_sync_and_debug_hides_keys() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Simulator>();
        let c = SimConfig {
            forbidden_key: Some("sk-ant-api01-secret-forbidden".into()),
            ..SimConfig::default()
        };
        let s = format!("{c:?}");
        assert!(!s.contains("sk-ant"), "{s}");
        assert!(s.contains("REDACTED"));
    }

    #[test]
    fn invalid_configs_are_rejected_with_a_reason() {
        for (c, word) in [
            (
                SimConfig {
                    max_limit: 0,
                    ..SimConfig::default()
                },
                "max_limit",
            ),
            (
                SimConfig {
                    live_per_second: f64::NAN,
                    ..SimConfig::default()
                },
                "live_per_second",
            ),
            (
                SimConfig {
                    late_fraction: 1.5,
                    ..SimConfig::default()
                },
                "late_fraction",
            ),
            (
                SimConfig {
                    api_key: String::new(),
                    ..SimConfig::default()
                },
                "api_key",
            ),
        ] {
            let e = c.validate().unwrap_err();
            assert!(e.to_string().contains(word), "{e}");
        }
    }
}
