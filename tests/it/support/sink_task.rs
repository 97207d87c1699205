//! Sink tasks run in this process as the daemon runs them (the real
//! `SinkTask`, its cursor and dead letters in a real journal), started,
//! awaited and stopped with deadlines.

use std::sync::Arc;
use std::time::Duration;

use claudit::config::{BatchConfig, Format, SinkConfig, SinkKind};
use claudit::metrics::Metrics;
use claudit::sinks::{SinkStats, SinkTask};
use claudit::store::SharedStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::journal::Journal;
use super::wait::{Check, Wait};

/// Sink tasks over one journal, sharing one cancellation and one
/// journal-head channel (what a source sends after each commit).
pub struct SinkTasks {
    /// Wakes the sinks, as a source does after journaling.
    pub head: watch::Sender<u64>,
    cancel: CancellationToken,
    handles: Vec<JoinHandle<anyhow::Result<SinkStats>>>,
}

impl SinkTasks {
    /// Starts one task per sink, with metrics nobody scrapes.
    pub fn start(store: &SharedStore, sinks: Vec<SinkConfig>) -> SinkTasks {
        SinkTasks::start_with_metrics(store, sinks, Default::default())
    }

    /// Starts one task per sink, counting into `metrics`.
    pub fn start_with_metrics(
        store: &SharedStore,
        sinks: Vec<SinkConfig>,
        metrics: Arc<Metrics>,
    ) -> SinkTasks {
        let (head, _) = watch::channel(0u64);
        let cancel = CancellationToken::new();
        let handles = sinks
            .into_iter()
            .map(|config| {
                let task = SinkTask {
                    config,
                    store: store.clone(),
                    journal_head: head.subscribe(),
                    metrics: metrics.clone(),
                    mapper: Default::default(),
                };
                tokio::spawn(task.run(cancel.clone()))
            })
            .collect();
        SinkTasks {
            head,
            cancel,
            handles,
        }
    }

    /// Polls `check` until it is done (see [`Wait::until`]); fails at once,
    /// with the task's result, if a sink task ends before.
    pub async fn until<T, C: Check<T>>(
        &mut self,
        what: &str,
        wait: Wait,
        mut check: impl AsyncFnMut() -> C,
    ) -> T {
        let handles = &mut self.handles;
        wait.until(what, async || {
            if let Some(ended) = handles.iter_mut().find(|h| h.is_finished()) {
                panic!(
                    "a sink task ended while waiting for {what}: {:?}",
                    ended.await
                );
            }
            check().await
        })
        .await
    }

    /// Cancels every task (a batch in flight is finished first) and returns
    /// their statistics, in the order they were started.
    pub async fn stop(self) -> Vec<SinkStats> {
        self.cancel.cancel();
        let mut stats = Vec::new();
        for handle in self.handles {
            stats.push(handle.await.unwrap().unwrap());
        }
        stats
    }
}

/// Runs the sink `config` over `journal` until its cursor reaches the journal's head
/// (60 s at most), then stops it. Returns (cursor seq, head seq, dead
/// letters).
pub async fn run_until_caught_up(journal: &Journal, config: SinkConfig) -> (i64, i64, i64) {
    run_until_caught_up_counting(journal, config, Default::default()).await
}

/// [`run_until_caught_up`], counting into `metrics` (read them with
/// `metrics.encode()` and [`super::metrics`]).
pub async fn run_until_caught_up_counting(
    journal: &Journal,
    config: SinkConfig,
    metrics: Arc<Metrics>,
) -> (i64, i64, i64) {
    let name = config.name.clone();
    let head = journal.head();
    let mut tasks = SinkTasks::start_with_metrics(&journal.shared(), vec![config], metrics);
    tasks
        .until(
            &format!("sink {name} to reach the journal head {head}"),
            Wait::up_to(Duration::from_secs(60)),
            async || {
                let seq = journal.cursor(&name).seq;
                (seq >= head)
                    .then_some(())
                    .ok_or(format!("cursor at {seq}"))
            },
        )
        .await;
    tasks.stop().await;
    let seq = journal.cursor(&name).seq;
    (seq, head, journal.dead_letter_count(&name))
}

/// Runs `config` over `journal` until `done` holds (checked every 20 ms,
/// 60 s at most), then stops it.
pub async fn run_sink_until(
    journal: &Journal,
    config: SinkConfig,
    done: impl Fn(&Journal) -> bool,
) {
    let mut tasks = SinkTasks::start(&journal.shared(), vec![config]);
    tasks
        .until(
            "the sink to reach the expected state",
            Wait::up_to(Duration::from_secs(60)).every(Duration::from_millis(20)),
            async || done(journal),
        )
        .await;
    tasks.stop().await;
}

/// A sink's settings built directly (no TOML): OCSF, batches of at most
/// `max_events` and `max_bytes`, no linger.
pub fn sink_settings(
    name: &str,
    kind: SinkKind,
    max_events: usize,
    max_bytes: usize,
) -> SinkConfig {
    SinkConfig {
        name: name.into(),
        format: Format::Ocsf,
        batch: BatchConfig {
            max_events,
            max_bytes,
            linger: Duration::ZERO,
        },
        kind,
        streams: claudit::config::Streams::ACTIVITIES,
    }
}
