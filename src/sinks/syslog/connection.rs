//! One connection to a syslog receiver: TCP or TLS (rustls, the CA file,
//! a client certificate), the task that reads whatever the receiver sends
//! until it closes, how it closed, and the receiver's TCP acknowledgement
//! of what was written (`SIOCOUTQ`).

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::SyslogConfig;
use crate::sinks::contract::Outcome;

/// The stream under a connection: TLS or plain TCP.
pub(super) trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Stream for T {}

/// How the receiver ended a connection, as its reader saw it.
#[derive(Debug, Clone)]
pub(super) struct PeerClose {
    /// When the reader saw it.
    pub(super) at: Instant,
    /// A close_notify or a FIN (no reset, no TLS alert).
    pub(super) clean: bool,
    pub(super) what: String,
}

/// One connection to the receiver. Its reader task reads whatever the
/// receiver sends (TLS session tickets, alerts) until it closes.
pub(super) struct Connection {
    pub(super) writer: WriteHalf<Box<dyn Stream>>,
    #[cfg(target_os = "linux")]
    fd: std::os::fd::RawFd,
    pub(super) closed: watch::Receiver<Option<PeerClose>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Connection {
    pub(super) fn peer_close(&self) -> Option<PeerClose> {
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
    pub(super) async fn acknowledged(&self, deadline: tokio::time::Instant) -> Result<(), String> {
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

/// Connects to the receiver (TCP, then the TLS handshake when `tls` is
/// set) and starts the reader of the connection.
pub(super) async fn connect(
    config: &SyslogConfig,
    tls: Option<&(TlsConnector, ServerName<'static>)>,
) -> Result<Connection, Outcome> {
    let address = &config.address;
    let retry = |reason: String| Outcome::Retry {
        after: None,
        reason: format!("syslog {address}: {reason}"),
    };
    let tcp =
        match tokio::time::timeout(config.connect_timeout, TcpStream::connect(address.as_str()))
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
    let stream: Box<dyn Stream> = match tls {
        None => Box::new(tcp),
        Some((connector, name)) => {
            match tokio::time::timeout(config.connect_timeout, connector.connect(name.clone(), tcp))
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
pub(super) fn tls_connector(
    config: &SyslogConfig,
) -> anyhow::Result<(TlsConnector, ServerName<'static>)> {
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
