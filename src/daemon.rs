//! `claudit run`: wires sources, the journal and sinks together, and shuts
//! them down gracefully.
//!
//! Record flow: `source::SourceTask` (poll, normalize, enrich, commit to the
//! journal) → `store` (SQLite) → `sinks::SinkTask` (one per sink, own cursor).
//!
//! SIGHUP reloads: `run` validates the file again, stops the pipeline
//! (`start_pipeline`'s tasks finish their page or batch in flight) and
//! starts it with the new configuration, holding the instance lock and the
//! process throughout.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{self, Config};
use crate::detect::Engine;
use crate::detect::load::RuleSet;
use crate::detect::task::DetectionTask;
use crate::enrich::Enricher;
use crate::health::Targets;
use crate::metrics::Metrics;
use crate::ocsf::Mapper;
use crate::service::{self, Notifier};
use crate::sinks::SinkTask;
use crate::source::SourceTask;
use crate::store::{InstanceLock, Retained, SharedStore, integrity, now_ms};

/// The longest a shutdown waits for in-flight work before giving up.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);
/// How often the journal is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// How often the GeoIP database files are checked for replacement
/// (geoipupdate renames a new file over the old one).
const GEOIP_CHECK_EVERY: Duration = Duration::from_secs(60);

/// How `claudit run` starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// `--reset-state`: set a damaged or emptied state database aside and
    /// start over (see [`integrity::open_at_startup`]).
    pub reset_state: bool,
}

/// Runs until `cancel` fires (SIGTERM/SIGINT) or a task fails for good.
/// SIGHUP reloads the configuration (see [`reload`]) without a restart;
/// the service manager hears of each step through `$NOTIFY_SOCKET`.
pub async fn run(
    config: Config,
    start: StartOptions,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let descriptors = raise_descriptor_limit();
    // The lock is held across reloads: the process stays the one owner.
    let _lock = InstanceLock::acquire(&config.state.path)?;
    check_state_database(&config.state.path, start.reset_state).await?;
    let notifier = Arc::new(Notifier::from_env());
    let mut hangups = service::reload_signals()?;
    if let Some(every) = service::watchdog_interval_from_env() {
        tokio::spawn(service::watchdog_loop(
            notifier.clone(),
            every,
            cancel.clone(),
        ));
    }
    let mut config = config;
    let mut enricher = Arc::new(Enricher::new(&config.enrich)?);
    // One metrics registry and one HTTP server for the life of the process:
    // counters survive reloads, and the listen address is bound once.
    let metrics = Arc::new(Metrics::new());
    let mut server = match config.server.listen {
        Some(addr) => {
            let listener = crate::server::bind(addr).await?;
            let (metrics, cancel) = (metrics.clone(), cancel.clone());
            let limits = crate::server::Limits::for_descriptors(descriptors);
            Some(tokio::spawn(crate::server::serve(
                listener, metrics, limits, cancel,
            )))
        }
        None => None,
    };
    let mut failure = None;
    loop {
        // Reload stops the pipeline through this child token; shutdown
        // stops it through the parent.
        let pipeline = cancel.child_token();
        metrics.configure(Targets::from_config(&config, now_ms()));
        let mut tasks = start_pipeline(&config, enricher.clone(), &metrics, pipeline.clone())?;
        let summary = format!(
            "running: {} sources, {} sinks",
            config.sources.len(),
            config.sinks.len()
        );
        info!(sources = config.sources.len(), sinks = config.sinks.len(), state = %config.state.path.display(), "claudit running");
        for notice in &config.notices {
            warn!(notice = %notice, "configuration setting without effect");
        }
        notifier.ready(&summary);

        let next = loop {
            tokio::select! {
                // Biased: once shutdown has begun, tasks returning is expected, not a failure.
                biased;
                _ = cancel.cancelled() => break None,
                Some(done) = tasks.join_next() => {
                    // A task that ends before shutdown has failed: stop
                    // everything rather than run half a pipeline silently.
                    let (name, result) = done?;
                    let err = result.err().unwrap_or_else(|| anyhow::anyhow!("{name} stopped unexpectedly"));
                    error!(task = %name, error = %format!("{err:#}"), "a task failed; shutting down");
                    failure = Some(err.context(name));
                    cancel.cancel();
                    break None;
                }
                Some(result) = async {
                    match server.as_mut() {
                        Some(handle) => Some(handle.await),
                        None => None,
                    }
                }, if server.is_some() => {
                    server = None;
                    let err = match result {
                        Ok(Ok(())) => anyhow::anyhow!("the metrics server stopped unexpectedly"),
                        Ok(Err(err)) => err,
                        Err(join) => anyhow::anyhow!("the metrics server panicked: {join}"),
                    };
                    error!(error = %format!("{err:#}"), "the metrics server failed; shutting down");
                    failure = Some(err.context("metrics server"));
                    cancel.cancel();
                    break None;
                }
                _ = hangups.recv() => {
                    notifier.reloading();
                    match reload(&config).await {
                        Ok(new) => break Some(new),
                        Err(why) => {
                            error!(file = %config.file.display(), "reload refused, still running the previous configuration: {why}");
                            notifier.ready(&format!("{summary} (last reload refused; see the log)"));
                        }
                    }
                }
            }
        };
        match next {
            Some(_) => info!("reloading: finishing the page and batches in flight"),
            None => {
                notifier.stopping();
                info!("shutting down: finishing the page and batches in flight");
            }
        }
        pipeline.cancel();
        drain(tasks).await;
        match next {
            Some((new_config, new_enricher)) => {
                info!(file = %new_config.file.display(), "configuration reloaded");
                config = new_config;
                enricher = new_enricher;
            }
            None => break,
        }
    }
    info!("stopped");
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Raises the soft descriptor limit to the hard one and logs the figure;
/// returns the soft limit the process has.
fn raise_descriptor_limit() -> u64 {
    match crate::fdlimit::raise_to_hard_limit() {
        Ok(limit) if limit.soft > limit.before => {
            info!(
                soft = limit.soft,
                hard = limit.hard,
                before = limit.before,
                "descriptor limit raised to the hard limit"
            );
            limit.soft
        }
        Ok(limit) => {
            info!(soft = limit.soft, hard = limit.hard, "descriptor limit");
            limit.soft
        }
        Err((limit, e)) => {
            warn!(soft = limit.soft, hard = limit.hard, error = %e,
                "cannot raise the descriptor limit to the hard limit; raise the soft limit \
                 (systemd LimitNOFILE=, ulimit -n) if connections fail with \"Too many open files\"");
            limit.soft
        }
    }
}

/// Opens and checks the state database before anything runs (see
/// [`integrity::open_at_startup`]): a damaged or emptied database stops
/// start-up with its recovery steps, unless `reset` sets it aside.
async fn check_state_database(path: &std::path::Path, reset: bool) -> anyhow::Result<()> {
    let path = path.to_path_buf();
    let startup = tokio::task::spawn_blocking(move || {
        integrity::open_at_startup(&path, reset, integrity::QUICK_CHECK_BUDGET)
    })
    .await??;
    let state = startup.store.path().display().to_string();
    if let Some((refusal, moved)) = &startup.set_aside {
        let moved: Vec<String> = moved
            .iter()
            .map(|(from, to)| format!("{} -> {}", from.display(), to.display()))
            .collect();
        warn!(%state, refusal = %refusal, moved = %moved.join(", "),
            "--reset-state: the state database was set aside and a new one created; every source \
             re-reads its initial_lookback and every sink receives those events again");
    }
    if startup.reset_not_needed {
        warn!(%state, "--reset-state: the state database passed its checks, nothing was set aside; \
            remove the flag from the command line");
    }
    match startup.quick_check {
        integrity::QuickCheck::Passed { took } => {
            info!(%state, took_ms = took.as_millis() as u64, "state database checked (quick_check)");
        }
        integrity::QuickCheck::Unfinished { after } => {
            warn!(%state, after_secs = after.as_secs(),
                "quick_check of the state database did not finish within its time bound; start-up \
                 goes on. Check it offline when convenient: stop claudit, then \
                 sqlite3 <state.db> \"PRAGMA quick_check\"");
        }
    }
    Ok(())
}

/// Re-reads and validates the configuration file, re-reading the `*_file`
/// secrets it names and the GeoIP databases. `${VAR}` values come from the
/// environment, which is fixed at process start. Every problem is returned
/// in one message; the caller keeps the old configuration then.
async fn reload(current: &Config) -> Result<(Config, Arc<Enricher>), String> {
    let file = current.file.clone();
    let state = current.state.path.clone();
    let listen = current.server.listen;
    tokio::task::spawn_blocking(move || {
        let new = config::load(&file).map_err(|errors| errors.to_string())?;
        if new.server.listen != listen {
            warn!("[server] listen changed; the metrics server keeps its address until a restart");
        }
        if new.state.path != state {
            return Err(format!(
                "[state] path changed from {} to {}; the state database cannot move while the daemon runs: restart to use the new path",
                state.display(),
                new.state.path.display()
            ));
        }
        let enricher = Enricher::new(&new.enrich)
            .map_err(|e| format!("cannot load the GeoIP databases: {e:#}"))?;
        Ok((new, Arc::new(enricher)))
    })
    .await
    .map_err(|e| format!("reload task failed: {e}"))?
}

/// The tasks of one pipeline run: a source task per source, a sink task per
/// sink, the no-data watchdog, the pruner and the GeoIP reloader, all
/// stopped by `cancel`.
/// Restarting them is safe: every position they hold is in SQLite.
pub fn start_pipeline(
    config: &Config,
    enricher: Arc<Enricher>,
    metrics: &Arc<Metrics>,
    cancel: CancellationToken,
) -> anyhow::Result<JoinSet<(String, anyhow::Result<()>)>> {
    let store = SharedStore::open(&config.state.path)?;
    let directory = crate::directory::Directory::open(&config.state.path, config.directories())?;
    let mapper = Arc::new(Mapper::new(&config.ocsf).with_directory(directory.clone()));
    let (head_tx, head_rx) = watch::channel(0u64);
    let (findings_tx, findings_rx) = watch::channel(0u64);
    let (directory_tx, directory_rx) = watch::channel(0u64);
    let detection = detection_rules(config)?;
    // How long the detection task may still need a journal row.
    let detection_horizon_ms = detection
        .as_ref()
        .map(|(_, e)| i64::try_from(e.rebuild_horizon().as_millis()).unwrap_or(i64::MAX / 4));

    let mut tasks: JoinSet<(String, anyhow::Result<()>)> = JoinSet::new();
    for source in &config.sources {
        let task = SourceTask {
            config: source.clone(),
            store: SharedStore::open(&config.state.path)?,
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
    // The directory as a stream: a snapshot task per source with a
    // directory, while a sink receives the stream.
    let directory_stream = directory.is_some() && config.sinks.iter().any(|s| s.streams.directory);
    if let Some(directory) = directory.as_ref().filter(|_| directory_stream) {
        for source in config.sources.iter().filter(|s| s.directory.enabled) {
            let task = crate::directory_stream::SnapshotTask {
                source: source.name.clone(),
                every: source.directory.snapshot_every,
                refresh: source.directory.refresh,
                store: SharedStore::open(&config.state.path)?,
                directory: directory.clone(),
                head: directory_tx.clone(),
            };
            let (name, cancel) = (
                format!("directory snapshots {}", source.name),
                cancel.clone(),
            );
            let alive = metrics.task_alive(&name);
            tasks.spawn(async move {
                let _alive = alive;
                (name, task.run(cancel).await)
            });
        }
    }
    // One delivery task per stream a sink receives: its activities from
    // its cursor over the journal, its findings from `<sink>.findings`,
    // the directory's snapshots from `<sink>.directory`.
    let mut deliveries = Vec::new();
    for sink in &config.sinks {
        if sink.streams.activities {
            deliveries.push((sink.clone(), head_rx.clone()));
        }
        if sink.streams.findings && detection.is_some() {
            deliveries.push((sink.findings_stream(), findings_rx.clone()));
        }
        if sink.streams.directory && directory_stream {
            deliveries.push((sink.directory_stream(), directory_rx.clone()));
        }
    }
    for (sink, head) in deliveries {
        let (name, cancel) = (format!("sink {}", sink.name), cancel.clone());
        let task = SinkTask {
            config: sink,
            store: SharedStore::open(&config.state.path)?,
            journal_head: head,
            metrics: metrics.clone(),
            mapper: mapper.clone(),
        };
        let alive = metrics.task_alive(&name);
        tasks.spawn(async move {
            let _alive = alive;
            (name, task.run(cancel).await.map(|_| ()))
        });
    }
    if let Some((rules, _)) = detection {
        let task = DetectionTask {
            rules,
            settings: config.detections.clone(),
            store: SharedStore::open(&config.state.path)?,
            journal_head: head_rx.clone(),
            findings_head: findings_tx,
            metrics: metrics
                .families(crate::detect::metrics::DetectionMetrics::register)
                .as_ref()
                .clone(),
            directory: directory.clone(),
        };
        let (name, cancel) = ("detections".to_string(), cancel.clone());
        let alive = metrics.task_alive(&name);
        tasks.spawn(async move {
            let _alive = alive;
            (name, task.run(cancel).await)
        });
    }
    {
        let targets = Targets::from_config(config, now_ms()).sources;
        let (metrics, cancel) = (metrics.clone(), cancel.clone());
        tasks.spawn(async move {
            let result = crate::watchdog::run(metrics, targets, cancel).await;
            ("no-data watchdog".into(), result)
        });
    }
    {
        let sinks: Vec<String> = config
            .sinks
            .iter()
            .filter(|s| s.streams.activities)
            .map(|s| s.name.clone())
            .collect();
        let finding_sinks: Vec<String> = config
            .sinks
            .iter()
            .filter(|s| s.streams.findings && detection_horizon_ms.is_some())
            .map(|s| s.name.clone())
            .collect();
        let directory_sinks: Vec<String> = config
            .sinks
            .iter()
            .filter(|s| s.streams.directory)
            .map(|s| s.name.clone())
            .collect();
        let sources: Vec<(String, i64)> = config
            .sources
            .iter()
            .map(|s| (s.name.clone(), s.sweep_horizon.as_millis() as i64))
            .collect();
        // The sources whose directory snapshots are made (see above).
        let snapshot_sources: Vec<String> = config
            .sources
            .iter()
            .filter(|s| directory_stream && s.directory.enabled)
            .map(|s| s.name.clone())
            .collect();
        let retention_ms = config.state.retention.as_millis() as i64;
        let cancel = cancel.clone();
        tasks.spawn(async move {
            let result = prune_loop(
                store,
                (sinks, finding_sinks, directory_sinks),
                sources,
                snapshot_sources,
                retention_ms,
                detection_horizon_ms,
                cancel,
            )
            .await;
            ("pruner".into(), result)
        });
    }
    {
        let cancel = cancel.clone();
        tasks.spawn(async move {
            (
                "geoip reloader".into(),
                reload_geoip_loop(enricher, cancel).await,
            )
        });
    }
    Ok(tasks)
}

/// Waits for stopped tasks to finish their page and batches in flight, up
/// to [`SHUTDOWN_GRACE`]; what is still running then is abandoned (it is
/// retried on the next start: every position is durable).
async fn drain(mut tasks: JoinSet<(String, anyhow::Result<()>)>) {
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(done) = tasks.join_next().await {
            if let Ok((name, Err(err))) = done {
                warn!(task = %name, error = %format!("{err:#}"), "task ended with an error while stopping");
            }
        }
    })
    .await;
    if drained.is_err() {
        warn!("grace period over; abandoning work in flight (it is retried on the next start)");
        tasks.abort_all();
    }
}

/// The rules `claudit run` evaluates, when `[detections]` is enabled, and
/// an engine built from them (checked once here, before anything runs).
fn detection_rules(config: &Config) -> anyhow::Result<Option<(RuleSet, Engine)>> {
    if !config.detections.enabled {
        return Ok(None);
    }
    let rules = config.detections.load_rules().map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        anyhow::anyhow!("detection rules: {}", lines.join("; "))
    })?;
    let engine = Engine::new(&rules, &config.detections)
        .map_err(|e| anyhow::anyhow!("detection rules: {e}"))?;
    Ok(Some((rules, engine)))
}

/// Prunes delivered journal rows older than the retention, but never rows a
/// coming sweep may re-read (created after a source's last sweep start minus
/// its horizon): the journal's unique ids are what makes a re-read harmless.
/// After a long outage the journal therefore keeps more until the first
/// sweep has run. With detections running, rows the detection task has not
/// evaluated and rows its windows may still hold (`detection_horizon_ms`)
/// stay too, and findings go with their oldest activity (every activity a
/// kept finding names stays in the journal). The directory stream's
/// entries go once older than the retention and delivered by every sink
/// that receives the stream.
async fn prune_loop(
    store: SharedStore,
    (sinks, finding_sinks, directory_sinks): (Vec<String>, Vec<String>, Vec<String>),
    sources: Vec<(String, i64)>,
    snapshot_sources: Vec<String>,
    retention_ms: i64,
    detection_horizon_ms: Option<i64>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let (sinks, finding_sinks, directory_sinks, sources, snapshot_sources) = (
            sinks.clone(),
            finding_sinks.clone(),
            directory_sinks.clone(),
            sources.clone(),
            snapshot_sources.clone(),
        );
        let pruned = store
            .call(move |s| -> Result<usize, crate::store::StoreError> {
                let mut cutoff = now_ms() - retention_ms;
                for (name, horizon) in &sources {
                    if let Some(last_sweep) = s.source_state(name)?.last_sweep_ms {
                        cutoff = cutoff.min(last_sweep - horizon);
                    }
                }
                if let Some(horizon) = detection_horizon_ms {
                    cutoff = cutoff.min(now_ms() - horizon);
                }
                let sinks: Vec<&str> = sinks.iter().map(String::as_str).collect();
                let finding_sinks: Vec<&str> = finding_sinks.iter().map(String::as_str).collect();
                let rows = s.prune_retained(
                    &Retained {
                        sinks: &sinks,
                        finding_sinks: &finding_sinks,
                        detection: detection_horizon_ms.is_some(),
                    },
                    cutoff,
                )?;
                // The directory keeps what the remaining rows can see, and
                // what the next directory snapshot compares with.
                let snapshot_sources: Vec<&str> =
                    snapshot_sources.iter().map(String::as_str).collect();
                crate::directory::store::prune(s, &snapshot_sources)?;
                let directory_sinks: Vec<&str> =
                    directory_sinks.iter().map(String::as_str).collect();
                s.prune_directory_stream(&directory_sinks, now_ms() - retention_ms)?;
                Ok(rows)
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
