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
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{
    AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadHalf, WriteHalf,
};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tracing::warn;

mod settings;

use super::contract::{BoxFuture, Destination, Outcome, Rejected};
use crate::model::BatchRecord;
pub use settings::TYPE;

/// Frames delivered this long before a connection was lost are sent again
/// on the next one; older ones are taken as processed by the receiver.
pub const RESEND_AGE: Duration = Duration::from_secs(60);

/// How long a close waits for the receiver's own close (its `close_notify`
/// or FIN) after claudit's.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The RFC 5424 field limits (§6): printable US-ASCII, at most this long.
pub const MAX_HOSTNAME: usize = 255;
pub const MAX_APP_NAME: usize = 48;
pub const MAX_SD_NAME: usize = 32;

/// The smallest message every receiver must accept (RFC 5424 §6.1).
pub const MIN_MESSAGE_BYTES: usize = 480;

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

/// The syslog facility codes of RFC 5424 §6.2.1, by the names collectors use.
pub const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("ntp", 12),
    ("audit", 13),
    ("alert", 14),
    ("clock", 15),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// The severities of RFC 5424 §6.2.1.
pub const SEVERITIES: &[(&str, u8)] = &[
    ("emerg", 0),
    ("alert", 1),
    ("crit", 2),
    ("err", 3),
    ("warning", 4),
    ("notice", 5),
    ("info", 6),
    ("debug", 7),
];

/// What is wrong with an RFC 5424 header field (`PRINTUSASCII`, 1 to `max`
/// characters), or `None`.
pub fn header_field_problem(value: &str, max: usize) -> Option<String> {
    if value.is_empty() {
        return Some("is empty".to_string());
    }
    if value.len() > max {
        return Some(format!("is longer than {max} characters"));
    }
    if let Some(c) = value.chars().find(|c| !('!'..='~').contains(c)) {
        return Some(format!(
            "contains {c:?}; RFC 5424 allows only printable ASCII without spaces here"
        ));
    }
    None
}

/// What is wrong with an SD-ID (`name` or `name@<enterprise number>`), or `None`.
pub fn sd_id_problem(value: &str) -> Option<String> {
    if let Some(problem) = header_field_problem(value, MAX_SD_NAME) {
        return Some(problem);
    }
    if let Some(c) = value.chars().find(|c| matches!(c, '=' | ']' | '"')) {
        return Some(format!("contains {c:?}, which an SD-ID cannot hold"));
    }
    match value.split_once('@') {
        None => Some(
            "has no @<enterprise number>: names without one are reserved for IANA; write e.g. \
             \"claudit@32473\" with your organization's enterprise number"
                .to_string(),
        ),
        Some((name, number)) => {
            if name.is_empty() || name.contains('@') {
                Some("must be name@<enterprise number>".to_string())
            } else if number.is_empty()
                || !number
                    .split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            {
                Some(format!(
                    "{number:?} after @ is not an enterprise number (digits, e.g. 32473)"
                ))
            } else {
                None
            }
        }
    }
}

/// Writes the RFC 5424 messages of one sink.
#[derive(Debug, Clone)]
pub struct Formatter {
    /// `<PRI>1`
    head: String,
    /// ` HOSTNAME APP-NAME - MSGID `
    middle: String,
    sd_id: Option<String>,
}

impl Formatter {
    /// `msgid` names the body's shape (`ocsf`, `raw`).
    pub fn new(config: &SyslogConfig, msgid: &str) -> Formatter {
        let pri = u16::from(config.facility) * 8 + u16::from(config.severity);
        let hostname = config.hostname.clone().unwrap_or_else(local_hostname);
        Formatter {
            head: format!("<{pri}>1"),
            middle: format!(" {hostname} {} - {msgid} ", config.app_name),
            sd_id: config.structured_data_id.clone(),
        }
    }

    /// The SYSLOG-MSG of one record.
    pub fn message(&self, record: &BatchRecord) -> Vec<u8> {
        let mut out = Vec::with_capacity(record.payload.len() + 160);
        out.extend_from_slice(self.head.as_bytes());
        out.push(b' ');
        out.extend_from_slice(timestamp(record.created_at_ms).as_bytes());
        out.extend_from_slice(self.middle.as_bytes());
        match &self.sd_id {
            None => out.push(b'-'),
            Some(sd_id) => {
                out.push(b'[');
                out.extend_from_slice(sd_id.as_bytes());
                out.extend_from_slice(b" id=\"");
                out.extend_from_slice(escape_sd_value(&record.activity_id).as_bytes());
                out.extend_from_slice(b"\" seq=\"");
                out.extend_from_slice(record.seq.to_string().as_bytes());
                out.extend_from_slice(b"\"]");
            }
        }
        out.push(b' ');
        out.extend_from_slice(record.payload.as_bytes());
        out
    }
}

/// This machine's name as RFC 5424 allows it, or the NILVALUE.
fn local_hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = name.trim();
    match header_field_problem(name, MAX_HOSTNAME) {
        None => name.to_string(),
        Some(_) => "-".to_string(),
    }
}

/// An RFC 3339 timestamp in UTC with milliseconds, or the NILVALUE for a
/// time chrono cannot represent.
fn timestamp(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => "-".to_string(),
    }
}

/// An SD-PARAM value: `"`, `\` and `]` escaped with a backslash (RFC 5424
/// §6.3.3); everything else, UTF-8 included, as it is.
pub fn escape_sd_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Appends one octet-counted frame, `MSG-LEN SP SYSLOG-MSG` (RFC 6587
/// §3.4.1; RFC 5425 §4.3).
pub fn push_frame(out: &mut Vec<u8>, message: &[u8]) {
    out.extend_from_slice(message.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(message);
}

/// A batch as frames, and the records too large to send.
#[derive(Debug, Default)]
pub struct Encoded {
    /// One octet-counted frame per record sent, in order.
    pub frames: Vec<Vec<u8>>,
    pub rejected: Vec<Rejected>,
}

/// The stream under a connection: TLS or plain TCP.
trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Stream for T {}

/// How the receiver ended a connection, as its reader saw it.
#[derive(Debug, Clone)]
struct PeerClose {
    /// When the reader saw it.
    at: Instant,
    /// A close_notify or a FIN (no reset, no TLS alert).
    clean: bool,
    what: String,
}

/// One connection to the receiver. Its reader task reads whatever the
/// receiver sends (TLS session tickets, alerts) until it closes.
struct Connection {
    writer: WriteHalf<Box<dyn Stream>>,
    #[cfg(target_os = "linux")]
    fd: std::os::fd::RawFd,
    closed: watch::Receiver<Option<PeerClose>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Connection {
    fn peer_close(&self) -> Option<PeerClose> {
        self.closed.borrow().clone()
    }

    /// Bytes written that the receiver's TCP has not acknowledged yet.
    fn unacknowledged(&self) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        {
            let mut queued: libc::c_int = 0;
            // SAFETY: `fd` is the connection's open socket; TIOCOUTQ
            // (SIOCOUTQ for a TCP socket) writes one c_int.
            let rc = unsafe { libc::ioctl(self.fd, libc::TIOCOUTQ, &mut queued) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(queued.max(0) as usize)
        }
        #[cfg(not(target_os = "linux"))]
        {
            Ok(0)
        }
    }

    /// Waits until the receiver's TCP acknowledged every byte written, the
    /// connection breaks, or `deadline`.
    async fn acknowledged(&self, deadline: tokio::time::Instant) -> Result<(), String> {
        let mut pause = Duration::from_millis(1);
        loop {
            let queued = self
                .unacknowledged()
                .map_err(|e| format!("reading the socket's send queue: {e}"))?;
            if queued == 0 {
                return Ok(());
            }
            if let Some(close) = self.peer_close() {
                return Err(format!(
                    "{} with {queued} bytes not yet acknowledged",
                    close.what
                ));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "the receiver did not acknowledge {queued} bytes in time (write_timeout)"
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

/// Reads what the receiver sends until it closes the connection, and says
/// how it did. Syslog receivers send no application data; anything they
/// send is read and dropped, never logged (it is untrusted).
async fn read_until_closed(
    mut reader: ReadHalf<Box<dyn Stream>>,
    closed: watch::Sender<Option<PeerClose>>,
) {
    let mut buf = vec![0u8; 8192];
    let close = loop {
        match reader.read(&mut buf).await {
            Ok(0) => {
                break PeerClose {
                    at: Instant::now(),
                    clean: true,
                    what: "the receiver closed the connection".to_string(),
                };
            }
            Ok(_) => continue,
            // TLS: a FIN without close_notify. Still no reset.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                break PeerClose {
                    at: Instant::now(),
                    clean: true,
                    what: "the receiver closed the connection without a TLS close_notify"
                        .to_string(),
                };
            }
            Err(e) => {
                break PeerClose {
                    at: Instant::now(),
                    clean: false,
                    what: broken(&e),
                };
            }
        }
    };
    closed.send_replace(Some(close));
}

/// A broken connection in words; a TLS alert from the receiver with what
/// usually causes it (TLS 1.3 refuses a missing client certificate only
/// after the client finished its handshake, so it shows up here).
fn broken(e: &io::Error) -> String {
    let alert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match alert {
        Some(rustls::Error::AlertReceived(alert)) => format!(
            "the receiver ended the TLS session with the alert {alert:?}; if it requires a \
             client certificate, set tls_client_cert_file and tls_client_key_file (signed by a \
             CA it trusts)"
        ),
        _ => format!("the connection broke: {e}"),
    }
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
            Transport::Tls => Some(tls_connector(config)?),
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
        let address = &self.config.address;
        let retry = |reason: String| Outcome::Retry {
            after: None,
            reason: format!("syslog {address}: {reason}"),
        };
        let tcp = match tokio::time::timeout(
            self.config.connect_timeout,
            TcpStream::connect(address.as_str()),
        )
        .await
        {
            Err(_) => return Err(retry("connecting timed out (connect_timeout)".into())),
            Ok(Err(e)) => return Err(retry(format!("connecting failed: {e}"))),
            Ok(Ok(tcp)) => tcp,
        };
        tcp.set_nodelay(true)
            .map_err(|e| retry(format!("setting TCP_NODELAY: {e}")))?;
        #[cfg(target_os = "linux")]
        let fd = std::os::fd::AsRawFd::as_raw_fd(&tcp);
        let stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(tcp),
            Some((connector, name)) => {
                match tokio::time::timeout(
                    self.config.connect_timeout,
                    connector.connect(name.clone(), tcp),
                )
                .await
                {
                    Err(_) => {
                        return Err(retry(
                            "the TLS handshake timed out (connect_timeout)".into(),
                        ));
                    }
                    Ok(Err(e)) => return Err(handshake_failure(address, e)),
                    Ok(Ok(tls)) => Box::new(tls),
                }
            }
        };
        let (reader, writer) = tokio::io::split(stream);
        let (tx, closed) = watch::channel(None);
        let reader = tokio::spawn(read_until_closed(reader, tx));
        Ok(Connection {
            writer,
            #[cfg(target_os = "linux")]
            fd,
            closed,
            reader,
        })
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

/// A failed TLS handshake: a certificate problem or a refusal by the
/// receiver is configuration (fatal, re-checked slowly); anything else is
/// retried.
fn handshake_failure(address: &str, e: io::Error) -> Outcome {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(why)) => Outcome::Fatal {
            reason: format!(
                "syslog {address}: the receiver's certificate is not trusted ({why:?}); set \
                 tls_ca_file to the CA that signed it, or tls_server_name to the name it carries"
            ),
        },
        Some(rustls::Error::AlertReceived(alert)) => Outcome::Fatal {
            reason: format!(
                "syslog {address}: the receiver refused the TLS handshake ({alert:?}); if it \
                 requires a client certificate, set tls_client_cert_file and tls_client_key_file"
            ),
        },
        Some(other) => Outcome::Fatal {
            reason: format!("syslog {address}: TLS handshake failed: {other}"),
        },
        None => Outcome::Retry {
            after: None,
            reason: format!("syslog {address}: TLS handshake failed: {e}"),
        },
    }
}

/// The TLS client of a sink: the system's CA store plus `tls_ca_file`, and
/// the client certificate when one is configured.
fn tls_connector(config: &SyslogConfig) -> anyhow::Result<(TlsConnector, ServerName<'static>)> {
    let tls = &config.tls;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot use is skipped, as reqwest does.
        let _ = roots.add(cert);
    }
    if let Some(path) = &tls.ca_file {
        let certs = read_certificates(path, "tls_ca_file")?;
        for cert in certs {
            roots.add(cert).map_err(|e| {
                anyhow::anyhow!(
                    "tls_ca_file {}: a certificate is not usable as a CA: {e}",
                    path.display()
                )
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let client = match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certificates(cert, "tls_client_cert_file")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                anyhow::anyhow!(
                    "tls_client_key_file {}: no usable PEM private key ({e}); write the key \
                     as PEM (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)",
                    key.display()
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                anyhow::anyhow!(
                    "tls_client_cert_file and tls_client_key_file do not make a usable client \
                     certificate: {e}"
                )
            })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => anyhow::bail!(
            "tls_client_cert_file and tls_client_key_file go together: set both or neither"
        ),
    };
    let name = tls.server_name.as_deref().unwrap_or(&config.host);
    let server_name = ServerName::try_from(name.to_string()).map_err(|_| {
        anyhow::anyhow!("{name:?} is not a host name or IP address to check the certificate for")
    })?;
    Ok((TlsConnector::from(Arc::new(client)), server_name))
}

fn read_certificates(
    path: &std::path::Path,
    key: &str,
) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow::anyhow!("cannot read {key} {}: {e}", path.display()))?
        .collect();
    let certs = certs.map_err(|e| anyhow::anyhow!("{key} {} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{key} {} holds no PEM certificate", path.display());
    }
    Ok(certs)
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

    fn config() -> SyslogConfig {
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

    fn record(seq: i64, id: &str, payload: &str) -> BatchRecord {
        BatchRecord {
            seq,
            activity_id: id.into(),
            created_at_ms: 1_746_864_000_007,
            payload: payload.into(),
        }
    }

    #[test]
    fn a_message_has_every_rfc5424_field() {
        let f = Formatter::new(&config(), "ocsf");
        let msg = f.message(&record(42, "activity_01", r#"{"a":1}"#));
        assert_eq!(
            String::from_utf8(msg).unwrap(),
            r#"<110>1 2025-05-10T08:00:00.007Z collector-01 claudit - ocsf [claudit@32473 id="activity_01" seq="42"] {"a":1}"#
        );
    }

    #[test]
    fn without_structured_data_the_field_is_the_nilvalue() {
        let mut c = config();
        c.structured_data_id = None;
        c.facility = 16;
        c.severity = 4;
        let msg = Formatter::new(&c, "raw").message(&record(1, "x", "{}"));
        assert_eq!(
            String::from_utf8(msg).unwrap(),
            "<132>1 2025-05-10T08:00:00.007Z collector-01 claudit - raw - {}"
        );
    }

    #[test]
    fn a_time_out_of_range_is_the_nilvalue() {
        assert_eq!(timestamp(i64::MAX), "-");
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn sd_param_values_escape_quote_backslash_and_bracket() {
        assert_eq!(escape_sd_value(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
        assert_eq!(escape_sd_value("é=[x] y"), r#"é=[x\] y"#);
        let f = Formatter::new(&config(), "ocsf");
        let msg = f.message(&record(7, r#"evil"] [x@1 y="z"#, "{}"));
        assert_eq!(
            String::from_utf8(msg).unwrap(),
            r#"<110>1 2025-05-10T08:00:00.007Z collector-01 claudit - ocsf [claudit@32473 id="evil\"\] [x@1 y=\"z" seq="7"] {}"#
        );
    }

    #[test]
    fn frames_are_octet_counted_in_bytes() {
        let mut out = Vec::new();
        push_frame(&mut out, "héllo\nworld".as_bytes());
        push_frame(&mut out, b"");
        assert_eq!(out, "12 héllo\nworld0 ".as_bytes());
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

    #[test]
    fn header_fields_and_sd_ids_follow_rfc5424() {
        assert_eq!(header_field_problem("claudit", 48), None);
        assert!(header_field_problem("two words", 48).is_some());
        assert!(header_field_problem(&"a".repeat(49), 48).is_some());
        assert!(header_field_problem("", 48).is_some());
        assert!(header_field_problem("é", 48).is_some());
        assert_eq!(sd_id_problem("claudit@32473"), None);
        assert_eq!(sd_id_problem("audit@1.2.3"), None);
        assert!(sd_id_problem("claudit").is_some());
        assert!(sd_id_problem("claudit@x").is_some());
        assert!(sd_id_problem("a=b@1").is_some());
        assert!(sd_id_problem(&format!("{}@1", "n".repeat(31))).is_some());
    }
}
