//! Syslog receivers for the syslog sink's tests: a real `rsyslogd` (Debian's
//! `rsyslog` and `rsyslog-gnutls`, started on a loopback port with its own
//! configuration, work directory, pid file and output file), or, where
//! rsyslog is not installed, a small octet-counting TLS receiver in this
//! process. Both discard a frame cut by the end of a connection, as rsyslog
//! does ("Incomplete frame at end of stream"), so a torn message never
//! shows up as a message. Also the certificates they use (openssl CLI).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A test CA, a server certificate for 127.0.0.1 and localhost, a client
/// certificate, and a second CA that signed neither.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub other_ca: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (install the openssl package): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// Writes the certificates into `dir` (openssl CLI, EC P-256, 2 days).
    pub fn generate(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        for ca in ["ca", "other-ca"] {
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN=claudit test {ca}"),
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            );
        }
        let leaves = [
            (
                "server",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
            ),
            (
                "client",
                "subjectAltName=DNS:claudit-client\nextendedKeyUsage=clientAuth\n",
            ),
        ];
        for (serial, (name, ext)) in leaves.into_iter().enumerate() {
            std::fs::write(
                dir.join(format!("{name}.ext")),
                format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n{ext}"),
            )
            .unwrap();
            openssl(
                dir,
                &[
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    &format!("/CN=claudit test {name}"),
                ],
            );
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-set_serial",
                    &format!("{}", 1000 + serial),
                    "-days",
                    "2",
                    "-out",
                    &format!("{name}.pem"),
                    "-extfile",
                    &format!("{name}.ext"),
                ],
            );
        }
        Pki {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            other_ca: dir.join("other-ca.pem"),
        }
    }
}

/// One message as a receiver wrote it down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub msgid: String,
    /// The STRUCTURED-DATA field as sent (escapes kept).
    pub structured_data: String,
    pub msg: String,
}

impl Received {
    /// The value of `name` in the structured data, unescaped.
    pub fn sd_param(&self, name: &str) -> Option<String> {
        let start = self.structured_data.find(&format!(" {name}=\""))? + name.len() + 3;
        let mut out = String::new();
        let mut chars = self.structured_data[start..].chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?),
                '"' => return Some(out),
                c => out.push(c),
            }
        }
        None
    }
}

/// Splits an RFC 5424 SYSLOG-MSG into (MSGID, STRUCTURED-DATA, MSG); `None`
/// if it is not one.
pub fn parse_rfc5424(message: &str) -> Option<Received> {
    // PRI+VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, then SD.
    let mut rest = message;
    let mut fields = Vec::new();
    for _ in 0..6 {
        let (field, after) = rest.split_once(' ')?;
        fields.push(field);
        rest = after;
    }
    if !fields[0].starts_with('<') || !fields[0].ends_with(">1") {
        return None;
    }
    let sd_end = if rest.starts_with('-') {
        1
    } else {
        // Elements until the first `]` not escaped and not followed by `[`.
        let bytes = rest.as_bytes();
        let (mut i, mut in_value) = (0, false);
        loop {
            match *bytes.get(i)? {
                b'\\' if in_value => i += 1,
                b'"' => in_value = !in_value,
                b']' if !in_value && bytes.get(i + 1) != Some(&b'[') => break i + 1,
                _ => {}
            }
            i += 1;
        }
    };
    let structured_data = rest[..sd_end].to_string();
    let msg = rest[sd_end..].strip_prefix(' ').unwrap_or("").to_string();
    Some(Received {
        msgid: fields[5].to_string(),
        structured_data,
        msg,
    })
}

/// A syslog receiver over TLS on 127.0.0.1.
pub enum SyslogReceiver {
    Rsyslog(Rsyslog),
    Fallback(FallbackReceiver),
}

impl SyslogReceiver {
    /// rsyslog where it is installed, the in-process receiver otherwise;
    /// says which on stderr.
    pub async fn start(dir: &Path, pki: &Pki) -> SyslogReceiver {
        match Rsyslog::missing() {
            None => {
                eprintln!("syslog receiver: rsyslogd (gtls driver) on 127.0.0.1");
                SyslogReceiver::Rsyslog(Rsyslog::start(dir, pki))
            }
            Some(why) => {
                eprintln!(
                    "syslog receiver: the in-process fallback receiver ({why}; install rsyslog \
                     and rsyslog-gnutls to test against rsyslogd)"
                );
                SyslogReceiver::Fallback(FallbackReceiver::start(pki, false).await)
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            SyslogReceiver::Rsyslog(_) => "rsyslogd",
            SyslogReceiver::Fallback(_) => "fallback receiver",
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            SyslogReceiver::Rsyslog(r) => r.port,
            SyslogReceiver::Fallback(r) => r.port,
        }
    }

    /// Stops the receiver (rsyslog: SIGTERM; the fallback: every connection
    /// dropped with whatever it had not read yet) and starts it again on
    /// the same port.
    pub async fn restart(&mut self) {
        match self {
            // Blocking waits for the process: off the runtime's workers.
            SyslogReceiver::Rsyslog(r) => tokio::task::block_in_place(|| r.restart()),
            SyslogReceiver::Fallback(r) => r.restart().await,
        }
    }

    /// Every message written down so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        match self {
            SyslogReceiver::Rsyslog(r) => r.messages(),
            SyslogReceiver::Fallback(r) => r.messages(),
        }
    }
}

/// `rsyslogd -n` with its own configuration: imtcp with the gtls driver
/// (TLS, anonymous client authentication) on a loopback port, and every
/// message from APP-NAME `claudit` written as `MSGID SD MSG` lines.
pub struct Rsyslog {
    dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
    out: PathBuf,
}

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";
const GTLS_MODULE: &str = "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so";

impl Rsyslog {
    /// Why rsyslog cannot be used here, or `None`.
    pub fn missing() -> Option<String> {
        if !Path::new(RSYSLOGD).exists() {
            return Some(format!("{RSYSLOGD} is not installed"));
        }
        if !Path::new(GTLS_MODULE).exists() {
            return Some(format!("{GTLS_MODULE} (rsyslog-gnutls) is not installed"));
        }
        None
    }

    pub fn start(dir: &Path, pki: &Pki) -> Rsyslog {
        let dir = dir.join("rsyslog");
        std::fs::create_dir_all(dir.join("work")).unwrap();
        let port = free_port();
        let out = dir.join("received.log");
        let conf = format!(
            r#"global(
  workDirectory="{work}"
  maxMessageSize="64k"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile="{ca}"
  defaultNetstreamDriverCertFile="{cert}"
  defaultNetstreamDriverKeyFile="{key}"
)
main_queue(queue.timeoutShutdown="30000" queue.timeoutActionCompletion="30000")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="received" type="string" string="%msgid% %structured-data% %msg%\n")
if $app-name == "claudit" then {{
  action(type="omfile" file="{out}" template="received" flushOnTXEnd="on" asyncWriting="off")
}} else {{
  action(type="omfile" file="{internal}")
}}
"#,
            work = dir.join("work").display(),
            ca = pki.ca.display(),
            cert = pki.server_cert.display(),
            key = pki.server_key.display(),
            out = out.display(),
            internal = dir.join("internal.log").display(),
        );
        std::fs::write(dir.join("rsyslog.conf"), conf).unwrap();
        let mut r = Rsyslog {
            dir,
            port,
            child: None,
            out,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("stderr.log"))
            .unwrap();
        let child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {RSYSLOGD}: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "rsyslogd exited with {status} before listening: {}{}",
                    std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default(),
                    std::fs::read_to_string(self.dir.join("internal.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not listen on {} within 20 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM (rsyslog empties its queue to the file first) and a new start.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(40);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("rsyslogd did not stop within 40 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn messages(&self) -> Vec<Received> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            // Only whole lines: the last one may still be being written.
            .take(text.matches('\n').count())
            .map(|line| {
                let (msgid, rest) = line.split_once(' ').unwrap_or((line, ""));
                // The SD ends at the first `] ` (the test's ids need no escapes there).
                let (sd, msg) = match rest.strip_prefix("- ") {
                    Some(msg) => ("-".to_string(), msg.to_string()),
                    None => match rest.find("] ") {
                        Some(i) => (rest[..=i].to_string(), rest[i + 2..].to_string()),
                        None => (rest.to_string(), String::new()),
                    },
                };
                Received {
                    msgid: msgid.to_string(),
                    structured_data: sd,
                    msg: msg.trim_start().to_string(),
                }
            })
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Default)]
struct FallbackState {
    messages: Vec<Received>,
    /// Frames cut by the end of their connection (discarded).
    torn: usize,
    /// Connections that sent something that is not octet-counted RFC 5424.
    malformed: Vec<String>,
}

/// An octet-counting RFC 5425 receiver: rustls, optionally requiring a
/// client certificate from the test CA; it answers a close_notify with its
/// own, and parses every frame as RFC 5424.
pub struct FallbackReceiver {
    pub port: u16,
    acceptor: TlsAcceptor,
    state: Arc<Mutex<FallbackState>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    listener: Option<JoinHandle<()>>,
}

impl FallbackReceiver {
    pub async fn start(pki: &Pki, require_client_cert: bool) -> FallbackReceiver {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
                roots.add(cert.unwrap()).unwrap();
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let certs: Vec<_> = CertificateDer::pem_file_iter(&pki.server_cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
        // TLS 1.3 session tickets go out right after the handshake (rustls
        // sends them by default), as rsyslog's GnuTLS does.
        let config = builder.with_single_cert(certs, key).unwrap();
        let mut r = FallbackReceiver {
            port: 0,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            state: Arc::default(),
            tasks: Arc::default(),
            listener: None,
        };
        r.listen(TcpListener::bind("127.0.0.1:0").await.unwrap());
        r
    }

    fn listen(&mut self, listener: TcpListener) {
        self.port = listener.local_addr().unwrap().port();
        let (acceptor, state, tasks) = (
            self.acceptor.clone(),
            self.state.clone(),
            self.tasks.clone(),
        );
        self.listener = Some(tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, state) = (acceptor.clone(), state.clone());
                let task = tokio::spawn(async move {
                    // A refused handshake (no client certificate) just ends.
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        receive(tls, state).await;
                    }
                });
                tasks.lock().unwrap().push(task);
            }
        }));
    }

    /// Drops every connection at once, unread data and all (the kernel
    /// resets them), and listens again on the same port.
    pub async fn restart(&mut self) {
        if let Some(listener) = self.listener.take() {
            listener.abort();
            let _ = listener.await;
        }
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.listen(listener);
    }

    pub fn messages(&self) -> Vec<Received> {
        let state = self.state.lock().unwrap();
        assert!(
            state.malformed.is_empty(),
            "the receiver got frames that are not octet-counted RFC 5424: {:?}",
            state.malformed
        );
        state.messages.clone()
    }

    /// Frames cut by the end of their connection, discarded.
    pub fn torn(&self) -> usize {
        self.state.lock().unwrap().torn
    }
}

impl Drop for FallbackReceiver {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.take() {
            listener.abort();
        }
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

/// Reads octet-counted frames until the sender closes, then answers with
/// a close_notify (RFC 5425 §4.4).
async fn receive(
    mut tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    state: Arc<Mutex<FallbackState>>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match tls.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut start = 0;
        loop {
            let rest = &buf[start..];
            let Some(space) = rest.iter().position(|&b| b == b' ') else {
                break;
            };
            let len_text = std::str::from_utf8(&rest[..space]).unwrap_or("");
            let valid = !len_text.is_empty()
                && len_text.bytes().all(|b| b.is_ascii_digit())
                && !(len_text.len() > 1 && len_text.starts_with('0'));
            if !valid || space > 10 {
                state.lock().unwrap().malformed.push(format!(
                    "bad MSG-LEN {:?}",
                    String::from_utf8_lossy(&rest[..space.min(20)])
                ));
                return;
            }
            let len: usize = len_text.parse().unwrap();
            if rest.len() < space + 1 + len {
                break;
            }
            let frame = String::from_utf8_lossy(&rest[space + 1..space + 1 + len]).into_owned();
            let mut s = state.lock().unwrap();
            match parse_rfc5424(&frame) {
                Some(received) => s.messages.push(received),
                None => s.malformed.push(frame.chars().take(200).collect()),
            }
            drop(s);
            start += space + 1 + len;
        }
        buf.drain(..start);
    }
    if !buf.is_empty() {
        state.lock().unwrap().torn += 1;
    }
    let _ = tls.shutdown().await;
}
