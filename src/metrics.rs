//! Prometheus metrics: one registry per process (it outlives a pipeline
//! restart), updated where things happen (the source and sink tasks hold
//! cheap handles to their counters) and, for state (lag, backlog, database
//! size), refreshed from the state database when `/metrics` is scraped.
//!
//! Labels are bounded: `source` and `sink` are names from the configuration,
//! `class` one of five status classes. No label or value carries a secret.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::health::{StateSnapshot, Targets};
use crate::store::{WindowKind, now_ms};

/// The media type of [`Metrics::encode`]'s output (OpenMetrics text, which
/// Prometheus negotiates and parses).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

/// A source and a kind of window (`live`, `sweep`, `backfill`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WindowLabels {
    pub source: String,
    pub window: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    pub sink: String,
}

/// A field a sink's vendor layout changed, and what it did
/// (`sinks::layout::FieldAction`). `field` is bounded per sink
/// (`sinks::layout::MAX_REPORTED_FIELDS`, then `(other)`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FieldLabels {
    pub sink: String,
    pub field: String,
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub source: String,
    pub class: StatusClass,
}

/// What one Compliance API request ended with.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum StatusClass {
    Success,
    ClientError,
    RateLimited,
    ServerError,
    /// No HTTP answer: connection, TLS or timeout.
    Transport,
    /// An answer whose body passed the size cap (`body_limit`): refused
    /// unread, whatever its status.
    TooLarge,
}

impl StatusClass {
    pub fn of_status(status: u16) -> StatusClass {
        match status {
            429 => StatusClass::RateLimited,
            200..=399 => StatusClass::Success,
            400..=499 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Success => "2xx",
            StatusClass::ClientError => "4xx",
            StatusClass::RateLimited => "429",
            StatusClass::ServerError => "5xx",
            StatusClass::Transport => "error",
            StatusClass::TooLarge => "too_large",
        }
    }

    const ALL: [StatusClass; 6] = [
        StatusClass::Success,
        StatusClass::ClientError,
        StatusClass::RateLimited,
        StatusClass::ServerError,
        StatusClass::Transport,
        StatusClass::TooLarge,
    ];
}

impl EncodeLabelValue for StatusClass {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

type SecondsGauge = Gauge<f64, AtomicU64>;
type RatioGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionCloseLabels {
    pub reason: ConnectionClose,
}

/// Why the operations endpoint closed a connection before its request
/// was answered.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ConnectionClose {
    /// At the cap with every connection busy: closed at once.
    OverCap,
    /// At the cap: closed to make room, having sent no request headers yet.
    Evicted,
    /// No complete request headers within the header read timeout.
    HeaderTimeout,
    /// Still open at the connection deadline.
    Deadline,
}

impl ConnectionClose {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionClose::OverCap => "over_cap",
            ConnectionClose::Evicted => "evicted",
            ConnectionClose::HeaderTimeout => "header_timeout",
            ConnectionClose::Deadline => "deadline",
        }
    }

    const ALL: [ConnectionClose; 4] = [
        ConnectionClose::OverCap,
        ConnectionClose::Evicted,
        ConnectionClose::HeaderTimeout,
        ConnectionClose::Deadline,
    ];
}

impl EncodeLabelValue for ConnectionClose {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// Every metric family of the daemon.
pub struct Metrics {
    registry: Registry,
    // Sources, updated by the source task.
    source_requests: Family<RequestLabels, Counter>,
    source_journaled: Family<SourceLabels, Counter>,
    source_late: Family<SourceLabels, Counter>,
    source_self_generated: Family<SourceLabels, Counter>,
    logging_disabled: Family<SourceLabels, Counter>,
    source_ratelimit_remaining: Family<SourceLabels, Gauge>,
    source_pages: Family<WindowLabels, Counter>,
    source_paging_faults: Family<SourceLabels, Counter>,
    // Sources, state (refreshed at scrape time or by the watchdog).
    source_window_read: Family<WindowLabels, RatioGauge>,
    source_window_pages: Family<WindowLabels, Gauge>,
    backfill_read: Family<SourceLabels, RatioGauge>,
    backfill_requests: Family<SourceLabels, Gauge>,
    source_watermark_lag: Family<SourceLabels, SecondsGauge>,
    source_since_poll: Family<SourceLabels, SecondsGauge>,
    source_since_event: Family<SourceLabels, SecondsGauge>,
    source_no_data: Family<SourceLabels, Gauge>,
    // Sinks, updated by the sink task.
    sink_delivered: Family<SinkLabels, Counter>,
    sink_batches: Family<SinkLabels, Counter>,
    sink_bytes: Family<SinkLabels, Counter>,
    sink_retries: Family<SinkLabels, Counter>,
    sink_dead_lettered: Family<SinkLabels, Counter>,
    sink_layout_fields: Family<FieldLabels, Counter>,
    sink_stale_events: Family<SinkLabels, Counter>,
    // Sinks, state.
    sink_dead_letters: Family<SinkLabels, Gauge>,
    sink_behind: Family<SinkLabels, Gauge>,
    sink_seconds_behind: Family<SinkLabels, SecondsGauge>,
    sink_since_success: Family<SinkLabels, SecondsGauge>,
    // Process.
    journal_rows: Gauge,
    database_bytes: Gauge,
    ready: Gauge,
    // The operations endpoint.
    server_connections_open: Gauge,
    server_connections_closed: Family<ConnectionCloseLabels, Counter>,
    /// When each source last journaled a new event (epoch ms); starts at the
    /// time the source was configured in this process.
    last_event_ms: Mutex<HashMap<String, i64>>,
    /// The pipeline's tasks and whether each is still running (/healthz).
    tasks: Mutex<BTreeMap<String, bool>>,
    /// What /readyz checks, set from the configuration at each pipeline start.
    targets: RwLock<Targets>,
    /// The directory sync's families (`src/directory/metrics.rs`).
    directory: crate::directory::metrics::DirectoryFamilies,
    /// Families of modules this one does not know (the detection task's,
    /// `src/detect/metrics.rs`), each in a registry of its own, encoded
    /// after the rest; see [`Metrics::families`].
    extensions: Mutex<Vec<Extension>>,
}

/// One module's families, registered once per process.
struct Extension {
    families: Arc<dyn std::any::Any + Send + Sync>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry holding every family (empty until tasks report).
    pub fn new() -> Metrics {
        let mut r = Registry::default();
        let m = Metrics {
            source_requests: Family::default(),
            source_journaled: Family::default(),
            source_late: Family::default(),
            source_self_generated: Family::default(),
            logging_disabled: Family::default(),
            source_ratelimit_remaining: Family::default(),
            source_pages: Family::default(),
            source_paging_faults: Family::default(),
            source_window_read: Family::default(),
            source_window_pages: Family::default(),
            backfill_read: Family::default(),
            backfill_requests: Family::default(),
            source_watermark_lag: Family::default(),
            source_since_poll: Family::default(),
            source_since_event: Family::default(),
            source_no_data: Family::default(),
            sink_delivered: Family::default(),
            sink_batches: Family::default(),
            sink_bytes: Family::default(),
            sink_retries: Family::default(),
            sink_dead_lettered: Family::default(),
            sink_layout_fields: Family::default(),
            sink_stale_events: Family::default(),
            sink_dead_letters: Family::default(),
            sink_behind: Family::default(),
            sink_seconds_behind: Family::default(),
            sink_since_success: Family::default(),
            journal_rows: Gauge::default(),
            database_bytes: Gauge::default(),
            ready: Gauge::default(),
            server_connections_open: Gauge::default(),
            server_connections_closed: Family::default(),
            last_event_ms: Mutex::new(HashMap::new()),
            tasks: Mutex::new(BTreeMap::new()),
            targets: RwLock::new(Targets::default()),
            directory: Default::default(),
            extensions: Mutex::new(Vec::new()),
            registry: Registry::default(),
        };
        m.directory.register(&mut r);
        // Counters get their `_total` suffix from the encoder.
        r.register(
            "claudit_source_requests",
            "Compliance API requests by status class (2xx, 4xx, 429, 5xx, error = no answer, too_large = body over the size cap, refused)",
            m.source_requests.clone(),
        );
        r.register(
            "claudit_source_events_journaled",
            "Activities journaled for the first time",
            m.source_journaled.clone(),
        );
        r.register(
            "claudit_source_late_arrivals",
            "Activities first journaled by the late-arrival sweep",
            m.source_late.clone(),
        );
        r.register(
            "claudit_source_self_generated_events",
            "compliance_api_accessed activities caused by this daemon's own requests, journaled",
            m.source_self_generated.clone(),
        );
        r.register(
            "claudit_compliance_logging_disabled",
            "Journaled org_compliance_api_settings_updated activities that turned the Compliance API or its logging off",
            m.logging_disabled.clone(),
        );
        r.register(
            "claudit_source_ratelimit_remaining",
            "anthropic-ratelimit-requests-remaining of the last response",
            m.source_ratelimit_remaining.clone(),
        );
        r.register(
            "claudit_source_pages",
            "Pages the Compliance API answered, by the kind of window read (live, sweep, backfill): what reading costs in requests",
            m.source_pages.clone(),
        );
        r.register(
            "claudit_source_paging_faults",
            "Answers whose paging could not move a window on (has_more with a repeated or missing last_id); nothing of them is kept and the window is retried after a backoff",
            m.source_paging_faults.clone(),
        );
        r.register(
            "claudit_source_window_read_ratio",
            "Part of each open window's span (by created_at) read so far; absent when no window of that kind is open",
            m.source_window_read.clone(),
        );
        r.register(
            "claudit_source_window_pages",
            "Pages read so far in each open window",
            m.source_window_pages.clone(),
        );
        r.register(
            "claudit_backfill_read_ratio",
            "Part of the span of the unfinished backfill ranges read so far; absent when none is registered",
            m.backfill_read.clone(),
        );
        r.register(
            "claudit_backfill_requests",
            "Requests spent so far on the unfinished backfill ranges",
            m.backfill_requests.clone(),
        );
        r.register_with_unit(
            "claudit_source_watermark_lag",
            "Now minus the watermark (every activity created before it has been read)",
            Unit::Seconds,
            m.source_watermark_lag.clone(),
        );
        r.register_with_unit(
            "claudit_source_since_last_poll",
            "Time since the last successful Compliance API poll",
            Unit::Seconds,
            m.source_since_poll.clone(),
        );
        r.register_with_unit(
            "claudit_source_since_last_event",
            "Time since the source last journaled a new activity (or since it was started)",
            Unit::Seconds,
            m.source_since_event.clone(),
        );
        r.register(
            "claudit_source_no_data",
            "1 when the source has journaled nothing for longer than its no_data_after",
            m.source_no_data.clone(),
        );
        r.register(
            "claudit_sink_events_delivered",
            "Events the destination acknowledged",
            m.sink_delivered.clone(),
        );
        r.register(
            "claudit_sink_batches",
            "Batches the destination acknowledged",
            m.sink_batches.clone(),
        );
        r.register_with_unit(
            "claudit_sink_payload",
            "Bytes of acknowledged events (uncompressed payloads)",
            Unit::Bytes,
            m.sink_bytes.clone(),
        );
        r.register(
            "claudit_sink_retries",
            "Failed delivery attempts (the batch stays in the journal and is sent again)",
            m.sink_retries.clone(),
        );
        r.register(
            "claudit_sink_dead_lettered",
            "Events the destination rejected, moved to the dead-letter table",
            m.sink_dead_lettered.clone(),
        );
        r.register(
            "claudit_sink_layout_fields",
            "Events whose field a vendor layout had to change or carry outside the vendor's \
             schema, by field and action (stringified, to_integer, moved, undeclared, carried, \
             not_in_layout: left out of the event, kept in the journal and the archive)",
            m.sink_layout_fields.clone(),
        );
        r.register(
            "claudit_sink_stale_events",
            "Events delivered although older than the destination indexes normally \
             (Datadog: 18 hours; Azure Monitor: 2 days): sent anyway, but may not be searchable",
            m.sink_stale_events.clone(),
        );
        r.register(
            "claudit_sink_dead_letters",
            "Events in the dead-letter table now (claudit dlq list)",
            m.sink_dead_letters.clone(),
        );
        r.register(
            "claudit_sink_events_behind",
            "Journaled events not yet delivered",
            m.sink_behind.clone(),
        );
        r.register_with_unit(
            "claudit_sink_behind",
            "Age (by created_at) of the oldest undelivered event; 0 when none",
            Unit::Seconds,
            m.sink_seconds_behind.clone(),
        );
        r.register_with_unit(
            "claudit_sink_since_last_success",
            "Time since the destination last acknowledged a batch (absent if never)",
            Unit::Seconds,
            m.sink_since_success.clone(),
        );
        r.register(
            "claudit_journal_rows",
            "Rows in the journal",
            m.journal_rows.clone(),
        );
        r.register_with_unit(
            "claudit_database",
            "Size of the state database with its write-ahead log",
            Unit::Bytes,
            m.database_bytes.clone(),
        );
        r.register("claudit_ready", "1 when /readyz passes", m.ready.clone());
        r.register(
            "claudit_server_connections_open",
            "Connections to the operations endpoint open now",
            m.server_connections_open.clone(),
        );
        r.register(
            "claudit_server_connections_closed",
            "Connections to the operations endpoint closed before their request was answered, by reason \
             (over_cap, evicted, header_timeout, deadline)",
            m.server_connections_closed.clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// Points the health checks at a (new) configuration and forgets the
    /// tasks of a previous pipeline. Called at each pipeline start.
    pub fn configure(&self, targets: Targets) {
        let now = now_ms();
        {
            let mut last = lock(&self.last_event_ms);
            for s in &targets.sources {
                last.entry(s.name.clone()).or_insert(now);
            }
        }
        lock(&self.tasks).clear();
        *self.targets.write().unwrap_or_else(|p| p.into_inner()) = targets;
    }

    pub fn targets(&self) -> Targets {
        self.targets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The counters one source updates.
    pub fn source(&self, name: &str) -> SourceMetrics {
        let l = SourceLabels {
            source: name.to_string(),
        };
        let requests = StatusClass::ALL.map(|class| {
            self.source_requests.get_or_create_owned(&RequestLabels {
                source: name.to_string(),
                class,
            })
        });
        let pages = [WindowKind::Live, WindowKind::Sweep, WindowKind::Backfill].map(|kind| {
            self.source_pages.get_or_create_owned(&WindowLabels {
                source: name.to_string(),
                window: kind.as_str().to_string(),
            })
        });
        SourceMetrics {
            name: name.to_string(),
            requests: RequestCounters { by_class: requests },
            pages,
            paging_faults: self.source_paging_faults.get_or_create_owned(&l),
            journaled: self.source_journaled.get_or_create_owned(&l),
            late: self.source_late.get_or_create_owned(&l),
            self_generated: self.source_self_generated.get_or_create_owned(&l),
            logging_disabled: self.logging_disabled.get_or_create_owned(&l),
            ratelimit_remaining: self.source_ratelimit_remaining.get_or_create_owned(&l),
        }
    }

    /// The process's families of type `T`, registered by `register` the
    /// first time they are asked for (a module above this one keeps its
    /// families in its own file and names this module, not the other way
    /// round). Later calls, after a reload too, return the same families,
    /// so their counters go on counting.
    pub fn families<T: Default + Send + Sync + 'static>(
        &self,
        register: impl FnOnce(&T, &mut Registry),
    ) -> Arc<T> {
        let mut extensions = lock(&self.extensions);
        for e in extensions.iter() {
            if let Ok(found) = Arc::clone(&e.families).downcast::<T>() {
                return found;
            }
        }
        let families = Arc::new(T::default());
        let mut registry = Registry::default();
        register(&families, &mut registry);
        extensions.push(Extension {
            families: Arc::clone(&families) as Arc<dyn std::any::Any + Send + Sync>,
            registry,
        });
        families
    }

    /// The handles one source's directory sync updates.
    pub fn directory(&self, source: &str) -> crate::directory::metrics::DirectoryMetrics {
        self.directory.source(source)
    }

    /// The handles the operations endpoint updates.
    pub fn server(&self) -> ServerMetrics {
        ServerMetrics {
            open: self.server_connections_open.clone(),
            closed: ConnectionClose::ALL.map(|reason| {
                self.server_connections_closed
                    .get_or_create_owned(&ConnectionCloseLabels { reason })
            }),
        }
    }

    /// The counters one sink updates.
    pub fn sink(&self, name: &str) -> SinkMetrics {
        let l = SinkLabels {
            sink: name.to_string(),
        };
        SinkMetrics {
            delivered: self.sink_delivered.get_or_create_owned(&l),
            batches: self.sink_batches.get_or_create_owned(&l),
            bytes: self.sink_bytes.get_or_create_owned(&l),
            retries: self.sink_retries.get_or_create_owned(&l),
            dead_lettered: self.sink_dead_lettered.get_or_create_owned(&l),
            stale_events: self.sink_stale_events.get_or_create_owned(&l),
            layout_fields: self.sink_layout_fields.clone(),
        }
    }

    /// Records that `source` journaled new events now.
    pub fn journaled_now(&self, source: &str) {
        lock(&self.last_event_ms).insert(source.to_string(), now_ms());
    }

    /// When `source` last journaled a new event (or was configured).
    pub fn last_event_ms(&self, source: &str) -> Option<i64> {
        lock(&self.last_event_ms).get(source).copied()
    }

    /// The no-data watchdog's verdict for a source.
    pub fn set_no_data(&self, source: &str, no_data: bool) {
        self.source_no_data
            .get_or_create(&SourceLabels {
                source: source.to_string(),
            })
            .set(no_data as i64);
    }

    /// Marks a pipeline task as running until the guard is dropped.
    pub fn task_alive(self: &std::sync::Arc<Self>, name: &str) -> TaskAlive {
        lock(&self.tasks).insert(name.to_string(), true);
        TaskAlive {
            metrics: self.clone(),
            name: name.to_string(),
        }
    }

    /// Each registered task and whether it still runs.
    pub fn tasks(&self) -> Vec<(String, bool)> {
        lock(&self.tasks)
            .iter()
            .map(|(n, a)| (n.clone(), *a))
            .collect()
    }

    /// Sets the state gauges from a snapshot of the state database.
    pub fn apply(&self, snapshot: &StateSnapshot, ready: bool, now_ms: i64) {
        let secs = |ms: i64| (ms.max(0) as f64) / 1000.0;
        for family in [
            &self.source_watermark_lag,
            &self.source_since_poll,
            &self.source_since_event,
        ] {
            family.clear();
        }
        self.source_window_read.clear();
        self.source_window_pages.clear();
        self.backfill_read.clear();
        self.backfill_requests.clear();
        for s in &snapshot.sources {
            let l = SourceLabels {
                source: s.name.clone(),
            };
            for w in &s.windows {
                let wl = WindowLabels {
                    source: s.name.clone(),
                    window: w.kind.as_str().to_string(),
                };
                self.source_window_read
                    .get_or_create(&wl)
                    .set(w.read_ratio());
                self.source_window_pages.get_or_create(&wl).set(w.pages);
            }
            if !s.backfills.is_empty() {
                let open = s.windows.iter().find(|w| w.kind == WindowKind::Backfill);
                let span: i64 = s.backfills.iter().map(|b| b.until_ms - b.since_ms).sum();
                let read: i64 = s.backfills.iter().map(|b| b.read_ms(open)).sum();
                self.backfill_read
                    .get_or_create(&l)
                    .set(read as f64 / span.max(1) as f64);
                self.backfill_requests
                    .get_or_create(&l)
                    .set(s.backfills.iter().map(|b| b.requests).sum());
            }
            if let Some(w) = s.watermark_ms {
                self.source_watermark_lag
                    .get_or_create(&l)
                    .set(secs(now_ms - w));
            }
            if let Some(t) = s.last_success_ms {
                self.source_since_poll
                    .get_or_create(&l)
                    .set(secs(now_ms - t));
            }
            if let Some(t) = self.last_event_ms(&s.name) {
                self.source_since_event
                    .get_or_create(&l)
                    .set(secs(now_ms - t));
            }
        }
        for family in [&self.sink_seconds_behind, &self.sink_since_success] {
            family.clear();
        }
        self.sink_dead_letters.clear();
        self.sink_behind.clear();
        for s in &snapshot.sinks {
            let l = SinkLabels {
                sink: s.name.clone(),
            };
            self.sink_dead_letters.get_or_create(&l).set(s.dead_letters);
            self.sink_behind.get_or_create(&l).set(s.events_behind);
            let behind = s.oldest_undelivered_ms.map_or(0, |t| now_ms - t);
            self.sink_seconds_behind.get_or_create(&l).set(secs(behind));
            if let Some(t) = s.last_success_ms {
                self.sink_since_success
                    .get_or_create(&l)
                    .set(secs(now_ms - t));
            }
        }
        self.journal_rows.set(snapshot.journal_rows);
        self.database_bytes.set(snapshot.database_bytes as i64);
        self.ready.set(ready as i64);
    }

    /// The registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        encode_registry(&mut out, &self.registry).expect("writing to a String cannot fail");
        for e in lock(&self.extensions).iter() {
            encode_registry(&mut out, &e.registry).expect("writing to a String cannot fail");
        }
        encode_eof(&mut out).expect("writing to a String cannot fail");
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks its task as ended when dropped (returned, failed or aborted).
pub struct TaskAlive {
    metrics: std::sync::Arc<Metrics>,
    name: String,
}

impl Drop for TaskAlive {
    fn drop(&mut self) {
        if let Some(alive) = lock(&self.metrics.tasks).get_mut(&self.name) {
            *alive = false;
        }
    }
}

/// Compliance API requests of one source, by status class.
#[derive(Clone, Debug, Default)]
pub struct RequestCounters {
    by_class: [Counter; 6],
}

impl RequestCounters {
    pub fn count(&self, class: StatusClass) {
        let i = StatusClass::ALL
            .iter()
            .position(|c| *c == class)
            .expect("every class is listed");
        self.by_class[i].inc();
    }
}

/// What one source task updates.
#[derive(Clone, Debug, Default)]
pub struct SourceMetrics {
    pub name: String,
    pub requests: RequestCounters,
    /// Pages answered, by kind of window: live, sweep, backfill.
    pub pages: [Counter; 3],
    pub paging_faults: Counter,
    pub journaled: Counter,
    pub late: Counter,
    pub self_generated: Counter,
    pub logging_disabled: Counter,
    pub ratelimit_remaining: Gauge,
}

impl SourceMetrics {
    /// Counts a page answered for a window of `kind`.
    pub fn page_read(&self, kind: WindowKind) {
        let i = match kind {
            WindowKind::Live => 0,
            WindowKind::Sweep => 1,
            WindowKind::Backfill => 2,
        };
        self.pages[i].inc();
    }
}

/// The operations endpoint's connection gauge and counters.
#[derive(Clone, Debug)]
pub struct ServerMetrics {
    open: Gauge,
    /// In the order of `ConnectionClose::ALL`.
    closed: [Counter; 4],
}

impl ServerMetrics {
    pub fn set_open(&self, n: usize) {
        self.open.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn closed(&self, reason: ConnectionClose) {
        let i = ConnectionClose::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("every reason is in ALL");
        self.closed[i].inc();
    }
}

/// What one sink task updates.
#[derive(Clone, Debug, Default)]
pub struct SinkMetrics {
    pub delivered: Counter,
    pub batches: Counter,
    pub bytes: Counter,
    pub retries: Counter,
    pub dead_lettered: Counter,
    /// Events older than the destination indexes normally, counted by the
    /// destinations that know such a limit (Datadog, Sentinel).
    pub stale_events: Counter,
    /// The family a vendor layout reports the fields it changed in
    /// (`sinks::layout::FieldReport`, labelled with the sink's name).
    pub layout_fields: Family<FieldLabels, Counter>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{SinkSnapshot, SourceSnapshot};

    #[test]
    fn families_encode_with_conventional_names_and_bounded_labels() {
        let m = Metrics::new();
        let s = m.source("acme");
        s.requests.count(StatusClass::of_status(200));
        s.requests.count(StatusClass::of_status(429));
        s.requests.count(StatusClass::Transport);
        s.journaled.inc_by(3);
        s.page_read(WindowKind::Backfill);
        s.paging_faults.inc();
        let k = m.sink("siem");
        k.retries.inc();
        k.dead_lettered.inc();
        m.apply(
            &StateSnapshot {
                sources: vec![SourceSnapshot {
                    name: "acme".into(),
                    watermark_ms: Some(1_000),
                    last_success_ms: Some(61_000),
                    last_error: None,
                    windows: vec![crate::store::WindowRow {
                        read_from_ms: Some(75),
                        pages: 3,
                        ..crate::store::WindowRow::fresh(WindowKind::Backfill, 0, 100)
                    }],
                    backfills: vec![crate::store::BackfillRow {
                        source: "acme".into(),
                        since_ms: -100,
                        until_ms: 100,
                        next_ms: 0,
                        records: 10,
                        window_span_ms: None,
                        requests: 4,
                    }],
                }],
                sinks: vec![SinkSnapshot {
                    name: "siem".into(),
                    events_behind: 7,
                    oldest_undelivered_ms: Some(31_000),
                    last_success_ms: None,
                    last_error: None,
                    dead_letters: 1,
                }],
                journal_rows: 42,
                database_bytes: 4096,
            },
            true,
            121_000,
        );
        let text = m.encode();
        for line in [
            "claudit_source_requests_total{source=\"acme\",class=\"2xx\"} 1",
            "claudit_source_requests_total{source=\"acme\",class=\"429\"} 1",
            "claudit_source_requests_total{source=\"acme\",class=\"error\"} 1",
            "claudit_source_requests_total{source=\"acme\",class=\"5xx\"} 0",
            "claudit_source_events_journaled_total{source=\"acme\"} 3",
            "claudit_source_pages_total{source=\"acme\",window=\"backfill\"} 1",
            "claudit_source_pages_total{source=\"acme\",window=\"live\"} 0",
            "claudit_source_paging_faults_total{source=\"acme\"} 1",
            "claudit_source_window_read_ratio{source=\"acme\",window=\"backfill\"} 0.25",
            "claudit_source_window_pages{source=\"acme\",window=\"backfill\"} 3",
            "claudit_backfill_read_ratio{source=\"acme\"} 0.625",
            "claudit_backfill_requests{source=\"acme\"} 4",
            "claudit_source_watermark_lag_seconds{source=\"acme\"} 120.0",
            "claudit_source_since_last_poll_seconds{source=\"acme\"} 60.0",
            "claudit_sink_retries_total{sink=\"siem\"} 1",
            "claudit_sink_dead_lettered_total{sink=\"siem\"} 1",
            "claudit_sink_dead_letters{sink=\"siem\"} 1",
            "claudit_sink_events_behind{sink=\"siem\"} 7",
            "claudit_sink_behind_seconds{sink=\"siem\"} 90.0",
            "claudit_journal_rows 42",
            "claudit_database_bytes 4096",
            "claudit_ready 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        // Never delivered: no made-up "seconds since success".
        assert!(!text.contains("claudit_sink_since_last_success_seconds{"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_task_guard_marks_its_task_ended_and_configure_forgets_old_tasks() {
        let m = std::sync::Arc::new(Metrics::new());
        let guard = m.task_alive("sink siem");
        assert_eq!(m.tasks(), vec![("sink siem".to_string(), true)]);
        drop(guard);
        assert_eq!(m.tasks(), vec![("sink siem".to_string(), false)]);
        m.configure(Targets::default());
        assert!(m.tasks().is_empty());
    }
}
