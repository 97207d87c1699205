//! Accepting connections to the operations endpoint within limits. The
//! endpoint must listen on 0.0.0.0 in a container, so any peer on the
//! network can connect, and a connection costs a file descriptor the
//! pipeline also needs. So:
//!
//! - at most [`Limits::max_connections`] are open at once (a share of the
//!   descriptor limit, leaving the rest to the pipeline);
//! - a connection has [`Limits::header_read_timeout`] to send its request
//!   headers, and each serves one request (`Connection: close`), so none
//!   sits idle between requests;
//! - a connection is closed [`Limits::connection_deadline`] after it was
//!   accepted, whatever it is doing (a slow reader of `/metrics`);
//! - at the cap, a new connection takes the place of the one that has
//!   waited longest for its request headers (a client that opens
//!   connections and sends nothing cannot lock out the kubelet's or
//!   Prometheus' requests, which arrive at once); when every open
//!   connection is busy with a request, the new one is closed at once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::metrics::{ConnectionClose, ServerMetrics};

/// Connections open at once at most, whatever the descriptor limit: far
/// more than scrapers and probes need.
pub const MAX_CONNECTIONS: usize = 256;
/// The endpoint takes at most this fraction (1/N) of the descriptor limit.
const DESCRIPTOR_SHARE: u64 = 4;
/// Fewest connections allowed, even under a tiny descriptor limit.
const MIN_CONNECTIONS: usize = 8;
/// Time to send the request headers (probes and scrapers send them at once).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time from accepting a connection to the end of its response.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);
/// The most a request's headers may take, in bytes.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Pause after a failed accept (out of descriptors): the error is not
/// retried in a busy loop.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// At most one warning per this period about connections closed early.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The limits of the operations endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub connection_deadline: Duration,
}

impl Limits {
    /// The limits for a process whose soft descriptor limit is `soft`: a
    /// quarter of it for the endpoint, at most [`MAX_CONNECTIONS`].
    pub fn for_descriptors(soft: u64) -> Limits {
        let share = usize::try_from(soft / DESCRIPTOR_SHARE).unwrap_or(usize::MAX);
        Limits {
            max_connections: share.clamp(MIN_CONNECTIONS, MAX_CONNECTIONS),
            header_read_timeout: HEADER_READ_TIMEOUT,
            connection_deadline: CONNECTION_DEADLINE,
        }
    }
}

/// The open connections: those still waiting for their request headers
/// (in accept order, each with the token that evicts it) and those busy
/// with a request.
#[derive(Default)]
struct Table {
    waiting: BTreeMap<u64, CancellationToken>,
    busy: usize,
    next_id: u64,
}

impl Table {
    fn open(&self) -> usize {
        self.waiting.len() + self.busy
    }
}

/// One admitted connection's place in the table; leaving it frees the
/// place (unless it was evicted, which freed it already).
struct Slot {
    id: u64,
    evicted: CancellationToken,
    table: Arc<Mutex<Table>>,
    /// Counted in `Table::busy` (set once, read on drop).
    busy: AtomicBool,
}

impl Slot {
    /// Its request headers arrived: no longer evictable.
    fn request_started(&self) {
        let mut table = lock(&self.table);
        if table.waiting.remove(&self.id).is_some() {
            table.busy += 1;
            self.busy.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = lock(&self.table);
        if table.waiting.remove(&self.id).is_none() && self.busy.load(Ordering::Relaxed) {
            table.busy -= 1;
        }
    }
}

fn lock(table: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(|p| p.into_inner())
}

/// Admits a new connection: a free place, or the place of the connection
/// that has waited longest for its headers (evicted). `None` when every
/// open connection is busy with a request.
fn admit(table: &Arc<Mutex<Table>>, limits: &Limits, metrics: &ServerMetrics) -> Option<Slot> {
    let mut t = lock(table);
    if t.open() >= limits.max_connections {
        let (_, oldest) = t.waiting.pop_first()?;
        oldest.cancel();
        metrics.closed(ConnectionClose::Evicted);
    }
    let id = t.next_id;
    t.next_id += 1;
    let evicted = CancellationToken::new();
    t.waiting.insert(id, evicted.clone());
    Some(Slot {
        id,
        evicted,
        table: table.clone(),
        busy: AtomicBool::new(false),
    })
}

/// Logs connections closed early at most once per [`WARN_EVERY`].
struct Warnings {
    last: Mutex<Option<Instant>>,
}

impl Warnings {
    fn due(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let due = last.is_none_or(|t| t.elapsed() >= WARN_EVERY);
        if due {
            *last = Some(Instant::now());
        }
        due
    }
}

/// Accepts and serves connections until `cancel` fires.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    metrics: ServerMetrics,
    cancel: CancellationToken,
) {
    let table = Arc::new(Mutex::new(Table::default()));
    let warnings = Arc::new(Warnings {
        last: Mutex::new(None),
    });
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (EMFILE, ENFILE) or a connection reset
                // before it was accepted: try again shortly.
                if warnings.due() {
                    warn!(error = %e, "the operations endpoint cannot accept a connection; retrying");
                }
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let slot = admit(&table, &limits, &metrics);
        {
            let open = lock(&table).open();
            metrics.set_open(open);
        }
        let Some(slot) = slot else {
            drop(stream);
            metrics.closed(ConnectionClose::OverCap);
            if warnings.due() {
                warn!(
                    max_connections = limits.max_connections,
                    "the operations endpoint is at its connection cap with every connection busy; \
                     new connections are closed at once (claudit_server_connections_closed_total)"
                );
            }
            continue;
        };
        let (app, metrics, cancel, warnings, table) = (
            app.clone(),
            metrics.clone(),
            cancel.clone(),
            warnings.clone(),
            table.clone(),
        );
        tokio::spawn(async move {
            let closed = serve_connection(stream, app, &slot, limits, cancel).await;
            if let Some(reason) = closed {
                metrics.closed(reason);
                if warnings.due() {
                    warn!(
                        reason = reason.as_str(),
                        max_connections = limits.max_connections,
                        "the operations endpoint closed a connection that did not complete its \
                         request in time (a client that connects and sends nothing, or a slow one); \
                         see claudit_server_connections_closed_total"
                    );
                }
            }
            drop(slot);
            metrics.set_open(lock(&table).open());
        });
    }
}

/// Serves one request on `stream`; why it was cut short, if it was.
async fn serve_connection(
    stream: TcpStream,
    app: Router,
    slot: &Slot,
    limits: Limits,
    cancel: CancellationToken,
) -> Option<ConnectionClose> {
    let app = TowerToHyperService::new(app);
    let service = hyper::service::service_fn(|request| {
        slot.request_started();
        hyper::service::Service::call(&app, request)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(false)
        .max_buf_size(MAX_HEADER_BYTES);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let deadline = tokio::time::sleep(limits.connection_deadline);
    tokio::pin!(deadline);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = slot.evicted.cancelled() => return None,
        _ = &mut deadline => return Some(ConnectionClose::Deadline),
        _ = cancel.cancelled() => {
            // Shutting down: finish the response in flight, if any.
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                result = connection.as_mut() => result,
                _ = &mut deadline => return Some(ConnectionClose::Deadline),
            }
        }
    };
    match result {
        Err(e) if e.is_timeout() => Some(ConnectionClose::HeaderTimeout),
        // Closed by the client, or not HTTP: nothing to report.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_a_quarter_of_the_descriptors_within_bounds() {
        assert_eq!(Limits::for_descriptors(1_024).max_connections, 256);
        assert_eq!(Limits::for_descriptors(524_288).max_connections, 256);
        assert_eq!(Limits::for_descriptors(256).max_connections, 64);
        assert_eq!(Limits::for_descriptors(0).max_connections, MIN_CONNECTIONS);
    }

    #[test]
    fn at_the_cap_the_longest_waiting_connection_gives_way_and_busy_ones_do_not() {
        let metrics = crate::metrics::Metrics::new();
        let metrics = metrics.server();
        let limits = Limits {
            max_connections: 2,
            ..Limits::for_descriptors(1_024)
        };
        let table = Arc::new(Mutex::new(Table::default()));
        let first = admit(&table, &limits, &metrics).unwrap();
        let second = admit(&table, &limits, &metrics).unwrap();
        // The third takes the first's place.
        let third = admit(&table, &limits, &metrics).unwrap();
        assert!(first.evicted.is_cancelled());
        assert!(!second.evicted.is_cancelled());
        assert_eq!(lock(&table).open(), 2);
        drop(first);
        assert_eq!(lock(&table).open(), 2, "an evicted slot was freed already");
        // Both open connections busy with a request: a new one is refused.
        second.request_started();
        third.request_started();
        assert!(admit(&table, &limits, &metrics).is_none());
        drop(second);
        assert_eq!(lock(&table).open(), 1);
        let fourth = admit(&table, &limits, &metrics).unwrap();
        assert!(!fourth.evicted.is_cancelled());
        drop((third, fourth));
        assert_eq!(lock(&table).open(), 0);
    }
}
