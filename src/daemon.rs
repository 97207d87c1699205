//! `claudit run`: wires sources, the journal and sinks together, and shuts
//! them down gracefully.
//!
//! Record flow: `source::SourceTask` (poll, normalize, enrich, commit to the
//! journal) → `store` (SQLite) → `sinks::SinkTask` (one per sink, own cursor).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::enrich::Enricher;
use crate::health::Targets;
use crate::metrics::Metrics;
use crate::ocsf::Mapper;
use crate::sinks::SinkTask;
use crate::source::SourceTask;
use crate::store::{InstanceLock, SharedStore, now_ms};

/// The longest a shutdown waits for in-flight work before giving up.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);
/// How often the journal is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// How often the GeoIP database files are checked for replacement
/// (geoipupdate renames a new file over the old one).
const GEOIP_CHECK_EVERY: Duration = Duration::from_secs(60);

/// Runs until `cancel` fires (SIGTERM/SIGINT) or a task fails for good.
pub async fn run(config: Config, cancel: CancellationToken) -> anyhow::Result<()> {
    let _lock = InstanceLock::acquire(&config.state.path)?;
    let store = SharedStore::open(&config.state.path)?;
    let enricher = Arc::new(Enricher::new(&config.enrich)?);
    let mapper = Arc::new(Mapper::new(&config.ocsf));
    let (head_tx, head_rx) = watch::channel(0u64);
    // ---- operations: metrics registry (one per process), /metrics /healthz /readyz, watchdog
    let metrics = Arc::new(Metrics::new());
    metrics.configure(Targets::from_config(&config, now_ms()));
    let listener = match config.server.listen {
        Some(addr) => Some(crate::server::bind(addr).await?),
        None => None,
    };
    // ---- end operations

    let mut tasks: JoinSet<(String, anyhow::Result<()>)> = JoinSet::new();
    for source in &config.sources {
        let task = SourceTask {
            config: source.clone(),
            store: SharedStore::open(&config.state.path)?,
            mapper: mapper.clone(),
            enricher: enricher.clone(),
            journal_head: head_tx.clone(),
            backfill_only: false,
            metrics: metrics.clone(),
        };
        let (name, cancel) = (format!("source {}", source.name), cancel.clone());
        let alive = metrics.task_alive(&name);
        tasks.spawn(async move {
            let _alive = alive;
            (name, task.run(cancel).await.map(|_| ()))
        });
    }
    for sink in &config.sinks {
        let task = SinkTask {
            config: sink.clone(),
            store: SharedStore::open(&config.state.path)?,
            journal_head: head_rx.clone(),
            metrics: metrics.clone(),
        };
        let (name, cancel) = (format!("sink {}", sink.name), cancel.clone());
        let alive = metrics.task_alive(&name);
        tasks.spawn(async move {
            let _alive = alive;
            (name, task.run(cancel).await.map(|_| ()))
        });
    }
    // ---- operations tasks
    if let Some(listener) = listener {
        let (metrics, cancel) = (metrics.clone(), cancel.clone());
        tasks.spawn(async move {
            let result = crate::server::serve(listener, metrics, cancel).await;
            ("metrics server".into(), result)
        });
    }
    {
        let targets = Targets::from_config(&config, now_ms()).sources;
        let (metrics, cancel) = (metrics.clone(), cancel.clone());
        tasks.spawn(async move {
            let result = crate::watchdog::run(metrics, targets, cancel).await;
            ("no-data watchdog".into(), result)
        });
    }
    // ---- end operations tasks
    {
        let sinks: Vec<String> = config.sinks.iter().map(|s| s.name.clone()).collect();
        let sources: Vec<(String, i64)> = config
            .sources
            .iter()
            .map(|s| (s.name.clone(), s.sweep_horizon.as_millis() as i64))
            .collect();
        let retention_ms = config.state.retention.as_millis() as i64;
        let (store, cancel) = (store.clone(), cancel.clone());
        tasks.spawn(async move {
            let result = prune_loop(store, sinks, sources, retention_ms, cancel).await;
            ("pruner".into(), result)
        });
    }
    {
        let (enricher, cancel) = (enricher.clone(), cancel.clone());
        tasks.spawn(async move {
            (
                "geoip reloader".into(),
                reload_geoip_loop(enricher, cancel).await,
            )
        });
    }
    info!(sources = config.sources.len(), sinks = config.sinks.len(), state = %config.state.path.display(), "claudit running");

    // A task that ends before shutdown has failed: stop everything rather
    // than run half a pipeline silently.
    let mut failure = None;
    tokio::select! {
        // Biased: once shutdown has begun, tasks returning is expected, not a failure.
        biased;
        _ = cancel.cancelled() => {}
        Some(done) = tasks.join_next() => {
            let (name, result) = done?;
            if !cancel.is_cancelled() {
                let err = result.err().unwrap_or_else(|| anyhow::anyhow!("{name} stopped unexpectedly"));
                error!(task = %name, error = %format!("{err:#}"), "a task failed; shutting down");
                failure = Some(err.context(name));
                cancel.cancel();
            }
        }
    }
    info!("shutting down: finishing the page and batches in flight");
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(done) = tasks.join_next().await {
            if let Ok((name, Err(err))) = done {
                warn!(task = %name, error = %format!("{err:#}"), "task ended with an error during shutdown");
            }
        }
    })
    .await;
    if drained.is_err() {
        warn!(
            "shutdown grace period over; abandoning work in flight (it is retried on the next start)"
        );
        tasks.abort_all();
    }
    info!("stopped");
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Prunes delivered journal rows older than the retention, but never rows a
/// coming sweep may re-read (created after a source's last sweep start minus
/// its horizon): the journal's unique ids are what makes a re-read harmless.
/// After a long outage the journal therefore keeps more until the first
/// sweep has run.
async fn prune_loop(
    store: SharedStore,
    sinks: Vec<String>,
    sources: Vec<(String, i64)>,
    retention_ms: i64,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let (sinks, sources) = (sinks.clone(), sources.clone());
        let pruned = store
            .call(move |s| -> Result<usize, crate::store::StoreError> {
                let mut cutoff = now_ms() - retention_ms;
                for (name, horizon) in &sources {
                    if let Some(last_sweep) = s.source_state(name)?.last_sweep_ms {
                        cutoff = cutoff.min(last_sweep - horizon);
                    }
                }
                s.prune(
                    &sinks.iter().map(String::as_str).collect::<Vec<_>>(),
                    cutoff,
                )
            })
            .await?;
        if pruned > 0 {
            info!(rows = pruned, "journal pruned");
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}

/// Reloads the GeoIP databases when their files change. A bad new file is
/// logged and the old databases stay in use: enrichment never stops.
async fn reload_geoip_loop(
    enricher: Arc<Enricher>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(GEOIP_CHECK_EVERY) => {}
        }
        let e = enricher.clone();
        match tokio::task::spawn_blocking(move || e.reload_if_changed()).await? {
            Ok(true) => info!("GeoIP databases reloaded"),
            Ok(false) => {}
            Err(err) => {
                warn!(error = %format!("{err:#}"), "GeoIP database changed but could not be loaded; still using the previous one")
            }
        }
    }
}
