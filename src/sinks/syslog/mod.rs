//! Syslog: RFC 5424 messages, framed by octet counting (RFC 6587 §3.4.1),
//! over TLS (RFC 5425, rustls) or plain TCP, to a collector such as
//! rsyslog, syslog-ng or a managed SOC's log collector.
//!
//! # The message
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [claudit@32473 id="…" seq="…"] MSG
//! ```
//!
//! - PRI is `facility * 8 + severity`, both set per sink (default `audit`,
//!   13, and `info`, 6: every event has the same priority; the OCSF
//!   severity is in the body).
//! - TIMESTAMP is the activity's `created_at` in UTC with milliseconds, not
//!   the time of sending, so a replay or a backfill keeps event times.
//! - PROCID is the NILVALUE `-`: the daemon's process id says nothing about
//!   the event.
//! - MSGID names the body's shape, `ocsf`, `raw` or `raw+claudit`, so a collector can route
//!   on it without parsing the body.
//! - One SD-ELEMENT (unless `structured_data_id` is empty) carries the
//!   activity id (`id`, the key to deduplicate on) and the journal sequence
//!   (`seq`, in delivery order). Its SD-ID needs an IANA enterprise number;
//!   the default uses 32473, the number RFC 5612 reserves for examples.
//!   Values escape `"`, `\` and `]` with a backslash (RFC 5424 §6.3.3).
//! - MSG is the event's JSON exactly as the journal renders it, UTF-8
//!   without a byte-order mark (a BOM would end up in front of the JSON in
//!   most collectors' output and break its parsing).
//!
//! A message longer than `max_message_bytes` is never truncated (a cut JSON
//! document is a lost event): it is dead-lettered with the reason, and can be
//! replayed once the collector's limit and the sink's are raised.
//!
//! # What "delivered" means
//!
//! Syslog has no acknowledgement: a TCP write only means the bytes reached
//! this machine's kernel. The sink makes the strongest promise the protocol
//! allows:
//!
//! 1. A batch counts as delivered (and the cursor moves) once its frames are
//!    written, flushed, and acknowledged by the receiver's TCP: the socket's
//!    send queue is empty (`SIOCOUTQ`), so every byte is on the receiving
//!    host. A receiver that does not acknowledge within `write_timeout`
//!    fails the batch, which is sent again.
//! 2. Bytes the receiving host acknowledged can still be lost: its
//!    application restarts or crashes with them unread in its socket buffer
//!    or unwritten in its memory. So the sink keeps the frames it delivered
//!    last, up to `resend_window` bytes. When a connection ends in any way
//!    but the sink's own close (a reset, a TLS alert, the receiver's close,
//!    a failed write, no acknowledgement in time), the frames it delivered
//!    in the [`RESEND_AGE`] before that moment are sent again, first thing
//!    on the next connection, until a connection acknowledges them. A window at least as large as the
//!    receiver's socket receive buffer (Linux: at most `net.ipv4.tcp_rmem`'s
//!    third value, 6 MiB by default) covers what such a receiver can lose
//!    unread; the minute covers what it had read but not yet written.
//! 3. Frames older than that minute at the loss are taken as processed: a
//!    receiver or load balancer closing idle connections after more than a
//!    minute costs no duplicates (a shorter idle timeout: the last minute's
//!    frames before each idle close come again once).
//! 4. The sink closes its connections itself with a TLS `close_notify`
//!    (RFC 5425 §4.4) and waits for the receiver's close. It reads
//!    everything the receiver sends for the whole life of the connection
//!    (TLS 1.3 session tickets arrive after the handshake): a socket closed
//!    with unread data would make this kernel reset the connection, and the
//!    receiver's kernel then discards what its application had not read yet.
//!
//! Duplicates are bounded: at most `resend_window` bytes (and a minute) of
//! frames per lost connection, and at most one batch per crash of claudit (a
//! batch acknowledged by TCP whose cursor was not yet committed). Each
//! carries the activity id in its structured data and body to deduplicate
//! on. What remains possible is a loss that needs two failures at once:
//! claudit killed (the window lives in memory) while the receiver loses data
//! its TCP had acknowledged; the receiver losing the same frames again right
//! after they were sent again; or a receiver holding more than
//! `resend_window` bytes, or more than a minute of data, unprocessed.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt as _;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tracing::warn;

mod connection;
mod format;
mod settings;

use super::contract::{BoxFuture, Destination, Outcome, Rejected};
use crate::model::BatchRecord;
use connection::Connection;
pub use format::{
    FACILITIES, Formatter, MAX_APP_NAME, MAX_HOSTNAME, MAX_SD_NAME, MIN_MESSAGE_BYTES, SEVERITIES,
    escape_sd_value, header_field_problem, push_frame, sd_id_problem,
};
pub use settings::TYPE;

/// Frames delivered this long before a connection was lost are sent again
/// on the next one; older ones are taken as processed by the receiver.
pub const RESEND_AGE: Duration = Duration::from_secs(60);

/// How long a close waits for the receiver's own close (its `close_notify`
/// or FIN) after claudit's.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// `type = "syslog"`: where and how the events go.
#[derive(Debug, Clone)]
pub struct SyslogConfig {
    /// `host:port` of the collector (`[v6]:port` for an IPv6 literal).
    pub address: String,
    /// The host part of `address`, without brackets.
    pub host: String,
    pub transport: Transport,
    pub tls: TlsFiles,
    pub facility: u8,
    pub severity: u8,
    /// HOSTNAME; `None` = this machine's name.
    pub hostname: Option<String>,
    /// APP-NAME, default `claudit`.
    pub app_name: String,
    /// The SD-ID of the element carrying `id` and `seq`; `None` = no
    /// structured data (NILVALUE).
    pub structured_data_id: Option<String>,
    /// The largest SYSLOG-MSG sent (the frame's length prefix not counted).
    pub max_message_bytes: usize,
    /// Bytes of delivered frames kept to send again after a lost connection.
    pub resend_window: usize,
    pub connect_timeout: Duration,
    /// Writing a batch and its acknowledgement by the receiver's TCP.
    pub write_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RFC 5425 (port 6514).
    Tls,
    /// Plain TCP (RFC 6587): the events cross the network readable.
    Tcp,
}

/// The TLS settings of a syslog sink.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// CA certificates (PEM) trusted besides the system store.
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM) for collectors that require one.
    pub client_cert_file: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub client_key_file: Option<PathBuf>,
    /// The name the receiver's certificate must carry, when it is not the
    /// host of `address`.
    pub server_name: Option<String>,
}

/// A batch as frames, and the records too large to send.
#[derive(Debug, Default)]
pub struct Encoded {
    /// One octet-counted frame per record sent, in order.
    pub frames: Vec<Vec<u8>>,
    pub rejected: Vec<Rejected>,
}

/// The frames delivered last, with when the receiver's TCP acknowledged
/// them, newest last, at most `limit` bytes.
#[derive(Debug, Default)]
struct ResendWindow {
    frames: VecDeque<(Instant, Vec<u8>)>,
    bytes: usize,
    limit: usize,
}

impl ResendWindow {
    fn push(&mut self, acknowledged: Instant, frame: Vec<u8>) {
        self.bytes += frame.len();
        self.frames.push_back((acknowledged, frame));
        while self.bytes > self.limit {
            match self.frames.pop_front() {
                Some((_, old)) => self.bytes -= old.len(),
                None => break,
            }
        }
    }

    /// Forgets the frames acknowledged before `time`.
    fn forget_before(&mut self, time: Instant) {
        while let Some((at, frame)) = self.frames.front() {
            if *at >= time {
                break;
            }
            self.bytes -= frame.len();
            self.frames.pop_front();
        }
    }

    fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }
}

pub struct SyslogSink {
    config: SyslogConfig,
    formatter: Formatter,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    connection: Option<Connection>,
    window: ResendWindow,
    /// The window must go out again before anything new: the connection it
    /// was sent on was lost. Only the frames of the minute before the loss
    /// are kept then, however long it takes to reconnect.
    resend_pending: bool,
    /// Frames sent again after lost connections, since the sink started.
    resent: u64,
}

impl SyslogSink {
    /// `msgid` names the body's shape (the sink's format). Reads the TLS
    /// files; an error names the key and the file.
    pub fn new(config: &SyslogConfig, msgid: &str) -> anyhow::Result<SyslogSink> {
        let tls = match config.transport {
            Transport::Tcp => None,
            Transport::Tls => Some(connection::tls_connector(config)?),
        };
        Ok(SyslogSink {
            formatter: Formatter::new(config, msgid),
            window: ResendWindow {
                limit: config.resend_window,
                ..ResendWindow::default()
            },
            config: config.clone(),
            tls,
            connection: None,
            resend_pending: false,
            resent: 0,
        })
    }

    /// Frames sent again after lost connections since the sink started
    /// (each a possible duplicate at the receiver).
    pub fn resent(&self) -> u64 {
        self.resent
    }

    /// The records as frames; a message over `max_message_bytes` is
    /// rejected whole.
    pub fn encode(&self, records: &[BatchRecord]) -> Encoded {
        let mut encoded = Encoded::default();
        for record in records {
            let message = self.formatter.message(record);
            if message.len() > self.config.max_message_bytes {
                encoded.rejected.push(Rejected {
                    seq: record.seq,
                    activity_id: record.activity_id.clone(),
                    reason: format!(
                        "syslog message of {} bytes exceeds max_message_bytes ({}); it is not \
                         truncated: raise the collector's maximum message size (rsyslog: \
                         global(maxMessageSize=...)) and the sink's max_message_bytes together, \
                         then replay it",
                        message.len(),
                        self.config.max_message_bytes
                    ),
                    response: String::new(),
                });
                continue;
            }
            let mut frame = Vec::with_capacity(message.len() + 8);
            push_frame(&mut frame, &message);
            encoded.frames.push(frame);
        }
        encoded
    }

    /// Sends one batch: delivered once the receiver's TCP acknowledged all
    /// of it (see the module documentation).
    pub async fn send(&mut self, records: &[BatchRecord]) -> Outcome {
        let encoded = self.encode(records);
        if encoded.frames.is_empty() {
            return Outcome::Delivered {
                rejected: encoded.rejected,
            };
        }
        match self.write(&encoded.frames).await {
            Ok(()) => {
                let now = Instant::now();
                for frame in encoded.frames {
                    self.window.push(now, frame);
                }
                Outcome::Delivered {
                    rejected: encoded.rejected,
                }
            }
            Err(outcome) => {
                // Whatever the receiver kept of this connection is unknown.
                self.connection = None;
                self.lost(Instant::now());
                outcome
            }
        }
    }

    async fn write(&mut self, frames: &[Vec<u8>]) -> Result<(), Outcome> {
        self.retire_closed_connection();
        if self.connection.is_none() {
            self.connection = Some(self.connect().await?);
        }
        let resend: Vec<u8> = if self.resend_pending {
            self.window
                .frames
                .iter()
                .flat_map(|(_, frame)| frame)
                .copied()
                .collect()
        } else {
            Vec::new()
        };
        let batch: Vec<u8> = frames.iter().flatten().copied().collect();
        let connection = self.connection.as_mut().expect("connected above");
        let deadline = tokio::time::Instant::now() + self.config.write_timeout;
        let written = tokio::time::timeout_at(deadline, async {
            connection.writer.write_all(&resend).await?;
            connection.writer.write_all(&batch).await?;
            connection.writer.flush().await
        })
        .await;
        let retry = |reason: String| Outcome::Retry {
            after: None,
            reason: format!("syslog {}: {reason}", self.config.address),
        };
        match written {
            Err(_) => {
                return Err(retry(
                    "the receiver did not take the batch in time (write_timeout)".into(),
                ));
            }
            Ok(Err(e)) => {
                let why = connection
                    .peer_close()
                    .map(|c| c.what)
                    .unwrap_or_else(|| e.to_string());
                return Err(retry(format!("writing failed: {why}")));
            }
            Ok(Ok(())) => {}
        }
        connection.acknowledged(deadline).await.map_err(retry)?;
        if self.resend_pending {
            let frames = self.window.frames.len();
            self.resent += frames as u64;
            self.resend_pending = false;
            warn!(address = %self.config.address, frames, bytes = resend.len(),
                "sent the last frames of the lost connection again (resend_window); the receiver may hold some of them twice: deduplicate on the id in the structured data");
        }
        Ok(())
    }

    /// The connection the window went out on was lost at `at`: the frames
    /// of the minute before go out again first on the next connection. A
    /// loss while a resend is pending keeps what the first loss kept.
    fn lost(&mut self, at: Instant) {
        if !self.resend_pending {
            if let Some(since) = at.checked_sub(RESEND_AGE) {
                self.window.forget_before(since);
            }
            self.resend_pending = !self.window.frames.is_empty();
        }
    }

    /// Drops a connection the receiver has ended; its last minute's frames
    /// go out again (a clean close says the receiver read them, not that
    /// it wrote them anywhere).
    fn retire_closed_connection(&mut self) {
        let Some(close) = self.connection.as_ref().and_then(Connection::peer_close) else {
            return;
        };
        warn!(address = %self.config.address, "{}; reconnecting", close.what);
        self.connection = None;
        self.lost(close.at);
    }

    async fn connect(&self) -> Result<Connection, Outcome> {
        connection::connect(&self.config, self.tls.as_ref()).await
    }

    /// Closes the connection the way RFC 5425 §4.4 asks: `close_notify`,
    /// then the receiver's close awaited (reading meanwhile). A clean close
    /// by the receiver confirms it read everything: the window is emptied.
    /// `Err` says how the receiver ended it otherwise.
    pub async fn close(&mut self) -> Result<(), String> {
        let Some(mut connection) = self.connection.take() else {
            return Ok(());
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, connection.writer.shutdown()).await;
        let mut closed = connection.closed.clone();
        let close = tokio::time::timeout(CLOSE_TIMEOUT, closed.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|r| r.ok().and_then(|c| c.clone()));
        let clean = close.as_ref().is_some_and(|c| c.clean);
        if clean {
            self.window.clear();
            self.resend_pending = false;
            Ok(())
        } else {
            // Unconfirmed: a next connection sends the window again.
            self.lost(Instant::now());
            let what = close.map_or_else(
                || {
                    format!(
                        "the receiver did not answer claudit's close_notify with its own close \
                         within {}s (RFC 5425 §4.4)",
                        CLOSE_TIMEOUT.as_secs()
                    )
                },
                |c| c.what,
            );
            warn!(address = %self.config.address, "closing the syslog connection: {what}");
            Err(what)
        }
    }

    /// `claudit check --connect`: a connection (and TLS handshake with the
    /// certificate checks), then a clean close.
    pub async fn healthcheck(&mut self) -> Result<String, String> {
        let connection = self.connect().await.map_err(|o| match o {
            Outcome::Retry { reason, .. } | Outcome::Fatal { reason } => reason,
            Outcome::Delivered { .. } => unreachable!("connect never delivers"),
        })?;
        self.connection = Some(connection);
        let closed = self.close().await;
        let how = match self.config.transport {
            Transport::Tls => "over TLS (certificate verified)",
            Transport::Tcp => "over plain TCP",
        };
        match closed {
            Ok(()) => Ok(format!(
                "connected to {} {how}; the receiver answered the close cleanly",
                self.config.address
            )),
            Err(what) => Err(format!(
                "connected to {} {how}, then: {what}",
                self.config.address
            )),
        }
    }
}

impl Destination for SyslogSink {
    fn deliver<'a>(&'a mut self, records: &'a [BatchRecord]) -> BoxFuture<'a, Outcome> {
        Box::pin(self.send(records))
    }

    fn healthcheck(&mut self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(SyslogSink::healthcheck(self))
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {
            // A receiver that did not close cleanly is logged by the sink.
            let _ = SyslogSink::close(self).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn config() -> SyslogConfig {
        SyslogConfig {
            address: "127.0.0.1:6514".into(),
            host: "127.0.0.1".into(),
            transport: Transport::Tcp,
            tls: TlsFiles::default(),
            facility: 13,
            severity: 6,
            hostname: Some("collector-01".into()),
            app_name: "claudit".into(),
            structured_data_id: Some("claudit@32473".into()),
            max_message_bytes: 8192,
            resend_window: 1 << 20,
            connect_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
        }
    }

    pub(super) fn record(seq: i64, id: &str, payload: &str) -> BatchRecord {
        BatchRecord {
            seq,
            activity_id: id.into(),
            created_at_ms: 1_746_864_000_007,
            payload: payload.into(),
        }
    }

    #[test]
    fn an_oversize_message_is_rejected_whole_and_the_rest_is_framed() {
        let mut c = config();
        c.max_message_bytes = 600;
        let sink = SyslogSink::new(&c, "ocsf").unwrap();
        let small = record(1, "a", &"x".repeat(100));
        let big = record(2, "b", &"y".repeat(600));
        let encoded = sink.encode(&[small.clone(), big, small]);
        assert_eq!(encoded.frames.len(), 2);
        assert_eq!(encoded.rejected.len(), 1);
        assert_eq!(encoded.rejected[0].activity_id, "b");
        assert!(
            encoded.rejected[0]
                .reason
                .contains("max_message_bytes (600)"),
            "{}",
            encoded.rejected[0].reason
        );
        let frame = String::from_utf8(encoded.frames[0].clone()).unwrap();
        let (len, msg) = frame.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
    }

    #[test]
    fn the_window_keeps_the_newest_frames_within_its_limit() {
        let mut w = ResendWindow {
            limit: 10,
            ..ResendWindow::default()
        };
        let t0 = Instant::now();
        for (i, frame) in ["aaaa", "bbbb", "cccc"].into_iter().enumerate() {
            w.push(
                t0 + Duration::from_secs(i as u64),
                frame.as_bytes().to_vec(),
            );
        }
        assert_eq!(w.bytes, 8);
        let frames = |w: &ResendWindow| -> Vec<Vec<u8>> {
            w.frames.iter().map(|(_, f)| f.clone()).collect()
        };
        assert_eq!(frames(&w), [b"bbbb".to_vec(), b"cccc".to_vec()]);
        w.forget_before(t0 + Duration::from_secs(2));
        assert_eq!((frames(&w), w.bytes), (vec![b"cccc".to_vec()], 4));
        let mut none = ResendWindow::default();
        none.push(t0, b"x".to_vec());
        assert!(none.frames.is_empty());
    }
}
