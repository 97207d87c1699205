//! The operations endpoint on `[server] listen`: `/metrics` (Prometheus),
//! `/healthz` (the pipeline's tasks run) and `/readyz` (sources poll, sinks
//! deliver). Each request reads the state database through its own
//! read-only connection, so it never waits on the journal writer.
//! Connections are accepted within limits (`connections`): capped, timed
//! out, one request each.

mod connections;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use connections::{CONNECTION_DEADLINE, HEADER_READ_TIMEOUT, Limits, MAX_CONNECTIONS};

use crate::health::{self, Check, Report, StateSnapshot};
use crate::metrics::{CONTENT_TYPE, Metrics};
use crate::store::{Store, now_ms};

/// Binds the listener, with an error that says what to change.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {addr} for /metrics, /healthz and /readyz: {e}; \
             pick a free address and port in [server] listen, or remove [server] to serve nothing"
        )
    })?;
    Ok(listener)
}

struct Shared {
    metrics: Arc<Metrics>,
    /// Opened on first use (the daemon creates the database first).
    store: Mutex<Option<Store>>,
}

/// Serves until `cancel` fires.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    limits: Limits,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    let server_metrics = metrics.server();
    let shared = Arc::new(Shared {
        metrics,
        store: Mutex::new(None),
    });
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(shared);
    info!(
        %address,
        max_connections = limits.max_connections,
        header_read_timeout_secs = limits.header_read_timeout.as_secs(),
        connection_deadline_secs = limits.connection_deadline.as_secs(),
        "serving /metrics, /healthz and /readyz"
    );
    connections::serve(listener, app, limits, server_metrics, cancel).await;
    Ok(())
}

/// Reads the state, sets the state gauges, and evaluates readiness.
fn refresh(shared: &Shared) -> Report {
    let targets = shared.metrics.targets();
    let now = now_ms();
    let mut slot = shared.store.lock().unwrap_or_else(|p| p.into_inner());
    let read = match slot.as_ref() {
        Some(store) => StateSnapshot::read(store, &targets),
        None => Store::open_readonly(&targets.state_path).and_then(|store| {
            let snapshot = StateSnapshot::read(&store, &targets);
            *slot = Some(store);
            snapshot
        }),
    };
    match read {
        Ok(snapshot) => {
            let report = health::readiness(&snapshot, &targets, now);
            shared.metrics.apply(&snapshot, report.ok(), now);
            report
        }
        Err(e) => {
            // A broken connection is reopened on the next request.
            *slot = None;
            warn!(error = %e, state = %targets.state_path.display(),
                "cannot read the state database for /metrics or /readyz; check the file and its permissions");
            Report {
                status: "failing",
                checks: vec![Check {
                    name: "state database".into(),
                    ok: false,
                    detail: e.to_string(),
                }],
            }
        }
    }
}

async fn metrics_handler(State(shared): State<Arc<Shared>>) -> Response {
    let text = tokio::task::spawn_blocking(move || {
        refresh(&shared);
        shared.metrics.encode()
    })
    .await;
    match text {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    match tokio::task::spawn_blocking(move || refresh(&shared)).await {
        Ok(report) => json(report),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    json(health::liveness(&shared.metrics.tasks()))
}

fn json(report: Report) -> Response {
    let status = if report.ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}
