//! Service manager integration: the sd_notify protocol (`READY=1`,
//! `RELOADING=1`, `STOPPING=1`, `WATCHDOG=1`, `STATUS=`), the watchdog
//! interval, and the SIGHUP stream that asks for a reload.
//!
//! The protocol is one datagram of `KEY=value` lines sent to the Unix socket
//! named by `$NOTIFY_SOCKET` (a path, or `@name` for the abstract
//! namespace). It is small enough that std's `UnixDatagram` does it without
//! a crate. Without `$NOTIFY_SOCKET` (not under systemd, or `Type=simple`)
//! every notification is a no-op, so callers never need to ask.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Sends notifications to the service manager, if there is one.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("enabled", &self.target.is_some())
            .finish()
    }
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`. An unusable value is logged once and
    /// notifications are disabled: a daemon that cannot tell systemd it is
    /// ready is killed at `TimeoutStartSec`, which the log then explains.
    pub fn from_env() -> Notifier {
        match std::env::var_os("NOTIFY_SOCKET") {
            None => Notifier::disabled(),
            Some(value) => match Notifier::new(&value.to_string_lossy()) {
                Ok(n) => n,
                Err(e) => {
                    warn!(error = %e, "NOTIFY_SOCKET is set but unusable; not notifying the service manager");
                    Notifier::disabled()
                }
            },
        }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier { target: None }
    }

    /// For the socket named as in `$NOTIFY_SOCKET`: an absolute path, or
    /// `@name` for a Linux abstract-namespace socket.
    pub fn new(socket: &str) -> io::Result<Notifier> {
        let addr = if let Some(name) = socket.strip_prefix('@') {
            abstract_addr(name.as_bytes())?
        } else if socket.starts_with('/') {
            SocketAddr::from_pathname(socket)?
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("NOTIFY_SOCKET {socket:?} is neither an absolute path nor @abstract-name"),
            ));
        };
        let socket = UnixDatagram::unbound()?;
        // A full socket buffer must never stall the daemon.
        socket.set_nonblocking(true)?;
        Ok(Notifier {
            target: Some((socket, addr)),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one datagram of `KEY=value` lines. Failures are returned for
    /// tests; the helpers below log them instead.
    pub fn send(&self, state: &str) -> io::Result<()> {
        match &self.target {
            None => Ok(()),
            Some((socket, addr)) => socket.send_to_addr(state.as_bytes(), addr).map(|_| ()),
        }
    }

    fn send_logged(&self, state: &str) {
        if let Err(e) = self.send(state) {
            warn!(error = %e, "could not notify the service manager");
        } else if self.is_enabled() {
            debug!(state = %state.replace('\n', " "), "service manager notified");
        }
    }

    /// Started (or reloaded) and running, with a one-line status.
    pub fn ready(&self, status: &str) {
        self.send_logged(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// A reload has begun; `READY=1` follows when it is over (applied or
    /// refused). `MONOTONIC_USEC` is required by `Type=notify-reload`.
    pub fn reloading(&self) {
        self.send_logged(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading the configuration",
            monotonic_usec()
        ));
    }

    /// Shutdown has begun.
    pub fn stopping(&self) {
        self.send_logged("STOPPING=1\nSTATUS=finishing the work in flight");
    }

    /// Updates the status line `systemctl status` shows.
    pub fn status(&self, status: &str) {
        self.send_logged(&format!("STATUS={}", one_line(status)));
    }

    /// Tells the watchdog the process is alive.
    pub fn watchdog(&self) {
        self.send_logged("WATCHDOG=1");
    }
}

#[cfg(target_os = "linux")]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_addr(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract-namespace sockets exist only on Linux",
    ))
}

/// A status must stay one line: a newline would start a new assignment.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares
/// `MONOTONIC_USEC` with.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC` (as sd_notify(3)
/// recommends), if the watchdog is enabled for this process
/// (`$WATCHDOG_PID`, when set, names it).
pub fn watchdog_interval_from_env() -> Option<Duration> {
    watchdog_interval(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

/// [`watchdog_interval_from_env`] on given values.
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(own_pid)
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Sends `WATCHDOG=1` every `every` until `cancel`. It runs on the daemon's
/// runtime, so a wedged runtime stops the pings and systemd restarts it.
pub async fn watchdog_loop(
    notifier: std::sync::Arc<Notifier>,
    every: Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => notifier.watchdog(),
        }
    }
}

/// The SIGHUP stream: each signal asks for a reload.
pub fn reload_signals() -> io::Result<Signal> {
    signal(SignalKind::hangup())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    fn bound() -> (tempfile::TempDir, UnixDatagram, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (dir, socket, path.display().to_string())
    }

    #[test]
    fn sends_each_state_to_a_path_socket() {
        let (_dir, socket, path) = bound();
        let n = Notifier::new(&path).unwrap();
        assert!(n.is_enabled());
        n.ready("running: 1 source,\n2 sinks");
        assert_eq!(recv(&socket), "READY=1\nSTATUS=running: 1 source, 2 sinks");
        let before = monotonic_usec();
        n.reloading();
        let msg = recv(&socket);
        let lines: Vec<&str> = msg.lines().collect();
        assert_eq!(lines[0], "RELOADING=1");
        let usec: u64 = lines[1]
            .strip_prefix("MONOTONIC_USEC=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(usec >= before && usec <= monotonic_usec());
        assert_eq!(lines[2], "STATUS=reloading the configuration");
        n.watchdog();
        assert_eq!(recv(&socket), "WATCHDOG=1");
        n.status("catching up");
        assert_eq!(recv(&socket), "STATUS=catching up");
        n.stopping();
        assert_eq!(
            recv(&socket),
            "STOPPING=1\nSTATUS=finishing the work in flight"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("claudit-test-{}-{}", std::process::id(), monotonic_usec());
        let socket =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let n = Notifier::new(&format!("@{name}")).unwrap();
        n.ready("up");
        assert_eq!(recv(&socket), "READY=1\nSTATUS=up");
    }

    #[test]
    fn rejects_a_relative_socket_and_reports_a_missing_one() {
        let err = Notifier::new("notify.sock").unwrap_err();
        assert!(
            err.to_string().contains("neither an absolute path"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let gone = Notifier::new(&dir.path().join("absent.sock").display().to_string()).unwrap();
        assert!(gone.send("READY=1").is_err());
        // The logging helpers never fail the caller.
        gone.ready("up");
    }

    #[test]
    fn disabled_sends_nothing_and_succeeds() {
        let n = Notifier::disabled();
        assert!(!n.is_enabled());
        n.send("READY=1").unwrap();
        assert_eq!(format!("{n:?}"), "Notifier { enabled: false }");
    }

    #[test]
    fn watchdog_interval_is_half_the_timeout_for_this_process_only() {
        assert_eq!(
            watchdog_interval(Some("60000000"), None, 42),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_interval(Some("60000000"), Some("42"), 42),
            Some(Duration::from_secs(30))
        );
        assert_eq!(watchdog_interval(Some("60000000"), Some("41"), 42), None);
        assert_eq!(watchdog_interval(None, Some("42"), 42), None);
        assert_eq!(watchdog_interval(Some("0"), None, 42), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 42), None);
    }

    #[tokio::test(start_paused = true)]
    async fn watchdog_loop_pings_every_interval_until_cancelled() {
        let (_dir, socket, path) = bound();
        socket.set_nonblocking(true).unwrap();
        let n = std::sync::Arc::new(Notifier::new(&path).unwrap());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(watchdog_loop(n, Duration::from_secs(10), cancel.clone()));
        // The first tick is immediate, then one per interval.
        tokio::time::sleep(Duration::from_secs(25)).await;
        cancel.cancel();
        task.await.unwrap();
        let mut pings = 0;
        let mut buf = [0u8; 64];
        while let Ok(len) = socket.recv(&mut buf) {
            assert_eq!(&buf[..len], b"WATCHDOG=1");
            pings += 1;
        }
        assert_eq!(pings, 3);
    }
}
