//! The operations endpoint under a flood, at the binary level: the release
//! daemon, started with a soft descriptor limit of 1,024 (as systemd and
//! many container runtimes start services) and a higher hard limit, gets
//! 1,100 TCP connections on `[server] listen` that never finish their
//! request headers. Meanwhile the source must keep polling the simulator,
//! the file sink must keep delivering, `/healthz` must answer, and the idle
//! connections must be closed after the header timeout.
//!
//! The pipeline needs new descriptors while the flood lasts, as it does in
//! production: the API is reached through a front end that closes idle
//! connections (load balancers do), so polls open new sockets, and the file
//! sink rotates its file every few batches.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use claudit::sim::{SimConfig, Simulator};
use claudit::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "sk-ant-api01-flood-test-secret-0123456789";
/// Idle connections the flood opens: more than 1,024 descriptors.
const FLOOD: usize = 1_100;
/// The daemon's soft descriptor limit at start.
const DAEMON_SOFT_NOFILE: u64 = 1_024;
/// Descriptors this test needs: the flood, the simulator's sockets, probes.
const TEST_NOFILE: u64 = 4_096;

fn nofile() -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    limit
}

/// Raises this process's descriptor limit to what the flood needs (raising
/// the hard limit too when allowed). Returns the hard limit, or why the
/// environment cannot run the test.
fn raise_own_nofile() -> Result<u64, String> {
    let current = nofile();
    let wanted = libc::rlimit {
        rlim_cur: current.rlim_max.max(TEST_NOFILE),
        rlim_max: current.rlim_max.max(TEST_NOFILE),
    };
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } != 0 {
        let fallback = libc::rlimit {
            rlim_cur: current.rlim_max,
            rlim_max: current.rlim_max,
        };
        // SAFETY: as above.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &fallback) };
    }
    let now = nofile();
    if now.rlim_cur < TEST_NOFILE || now.rlim_max <= DAEMON_SOFT_NOFILE {
        return Err(format!(
            "the descriptor limit is {}/{} (soft/hard) and cannot be raised to {TEST_NOFILE}: \
             run as root or with a hard RLIMIT_NOFILE of at least {TEST_NOFILE}",
            now.rlim_cur, now.rlim_max
        ));
    }
    Ok(now.rlim_max)
}

fn write_config(dir: &Path, api_url: &str) -> PathBuf {
    let d = dir.display();
    let path = dir.join("claudit.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[state]
path = "{d}/state.db"

[[sources]]
name = "acme"
base_url = "{api_url}"
api_key = "${{FLOOD_TEST_KEY}}"
window = "1s"
settle_lag = "1s"
poll_interval = "1s"
sweep_horizon = "30s"
sweep_interval = "5s"
initial_lookback = "15m"
no_data_after = "1h"

[[sinks]]
name = "file"
type = "file"
path = "{d}/out/events.ndjson"
batch_linger = "100ms"
max_bytes = "100KB"
max_files = 2

[server]
listen = "127.0.0.1:0"
"#
        ),
    )
    .unwrap();
    path
}

/// Starts the daemon with a soft descriptor limit of 1,024 and the hard
/// limit `hard`, as a service manager would.
fn spawn(config: &Path, log: &Path, hard: u64) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_claudit"));
    command
        .args(["--log-format", "json", "run", "--config"])
        .arg(config)
        .env("FLOOD_TEST_KEY", KEY)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    // SAFETY: only setrlimit, which is async-signal-safe, runs between fork
    // and exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: DAEMON_SOFT_NOFILE,
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().expect("start claudit")
}

/// The soft and hard "Max open files" of a running process.
fn process_nofile(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One GET on a new connection; the status code, or why there was none.
fn get(address: SocketAddr, path: &str) -> Result<u16, String> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&address, timeout).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.set_write_timeout(Some(timeout)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: claudit\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("reading the answer: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no HTTP answer ({} bytes)", answer.len()))
}

/// Whether the server has closed this connection (EOF or reset), without
/// blocking.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 512];
    match stream.read(&mut byte) {
        Ok(0) => true,
        // The server answered something (an error status) and may close next.
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

fn journal_rows(db: &Path) -> i64 {
    Store::open_readonly(db)
        .and_then(|s| s.journal_rows())
        .unwrap_or(0)
}

/// Events the file sink has delivered (its cursor's count).
fn delivered(db: &Path) -> i64 {
    Store::open_readonly(db)
        .and_then(|s| s.sink_cursor("file"))
        .map(|c| c.delivered)
        .unwrap_or(0)
}

/// How long the API front end keeps a connection nobody uses.
const FRONT_END_IDLE: Duration = Duration::from_millis(300);

/// A TCP front end to `upstream` that closes a connection once it has been
/// idle for [`FRONT_END_IDLE`]. Returns its `http://` address.
async fn idle_closing_front_end(upstream: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let upstream = upstream.trim_start_matches("http://").to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                pipe_until_idle(client, server).await;
            });
        }
    });
    format!("http://{address}")
}

async fn pipe_until_idle(mut a: tokio::net::TcpStream, mut b: tokio::net::TcpStream) {
    let (mut from_a, mut from_b) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        tokio::select! {
            n = a.read(&mut from_a) => match n {
                Ok(n) if n > 0 && b.write_all(&from_a[..n]).await.is_ok() => {}
                _ => return,
            },
            n = b.read(&mut from_b) => match n {
                Ok(n) if n > 0 && a.write_all(&from_b[..n]).await.is_ok() => {}
                _ => return,
            },
            _ = tokio::time::sleep(FRONT_END_IDLE) => return,
        }
    }
}

#[test]
fn a_flood_of_idle_connections_starves_neither_the_pipeline_nor_healthz() {
    let hard = match raise_own_nofile() {
        Ok(hard) => hard,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime
        .block_on(Simulator::start(SimConfig {
            api_key: KEY.into(),
            backlog: 1_000,
            backlog_span: Duration::from_secs(10 * 60),
            live_per_second: 20.0,
            visibility_delay: Duration::from_millis(200),
            late_fraction: 0.0,
            rate_limit_per_minute: None,
            ..SimConfig::default()
        }))
        .unwrap();
    let api = runtime.block_on(idle_closing_front_end(sim.base_url()));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &api);
    let log = dir.path().join("daemon.log");
    let db = dir.path().join("state.db");
    let mut daemon = spawn(&config, &log, hard);

    let address: SocketAddr = wait_for(
        "the listening address in the log",
        Duration::from_secs(15),
        || {
            let text = std::fs::read_to_string(&log).ok()?;
            text.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["message"] == "serving /metrics, /healthz and /readyz")
                .and_then(|v| v["address"].as_str()?.parse().ok())
        },
    );
    wait_for("the backlog delivered", Duration::from_secs(30), || {
        (journal_rows(&db) >= 1_000 && delivered(&db) >= 1_000).then_some(())
    });

    // Start-up raised the soft limit to the hard one and said so.
    let (soft, daemon_hard) = process_nofile(daemon.id());
    eprintln!("daemon descriptor limit: soft {soft}, hard {daemon_hard}");

    // The flood: connections that start a request and never finish its headers.
    let flood_started = Instant::now();
    let requests_before = sim.requests().len();
    let rows_before = journal_rows(&db);
    let delivered_before = delivered(&db);
    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        match TcpStream::connect_timeout(&address, Duration::from_secs(2)) {
            Ok(mut stream) => {
                // Ignored: the server may already have closed it (over the cap).
                let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: flood\r\n");
                flood.push(stream);
            }
            Err(e) => panic!("the flood could not connect: {e}"),
        }
    }
    let flood_opened = flood_started.elapsed();

    // Observe until everything that must hold has been seen, or 30 s.
    let mut healthz_ok = 0;
    let mut healthz_failed = Vec::new();
    let mut first_healthz_ok = None;
    let mut closed_within_2s = None;
    let mut all_closed_after = None;
    let mut requests_at_20s = None;
    let deadline = flood_started + Duration::from_secs(30);
    loop {
        let elapsed = flood_started.elapsed();
        match get(address, "/healthz") {
            Ok(200) => {
                healthz_ok += 1;
                first_healthz_ok.get_or_insert(elapsed);
            }
            Ok(other) => healthz_failed.push(format!("{other}")),
            Err(e) => healthz_failed.push(e),
        }
        let closed = flood
            .iter_mut()
            .map(|s| closed_by_server(s) as usize)
            .sum::<usize>();
        if elapsed >= Duration::from_secs(2) && closed_within_2s.is_none() {
            closed_within_2s = Some(closed);
        }
        if closed == flood.len() && all_closed_after.is_none() {
            all_closed_after = Some(elapsed);
        }
        if elapsed >= Duration::from_secs(20) && requests_at_20s.is_none() {
            requests_at_20s = Some(sim.requests().len() - requests_before);
        }
        let requests = sim.requests().len() - requests_before;
        let rows = journal_rows(&db) - rows_before;
        let events = delivered(&db) - delivered_before;
        // The sink keeps up: at most a few seconds of events behind.
        let sink_keeps_up = events > 0 && events + 100 >= rows;
        let done = requests >= 5
            && rows > 0
            && sink_keeps_up
            && first_healthz_ok.is_some()
            && all_closed_after.is_some();
        if done || Instant::now() > deadline {
            eprintln!(
                "flood of {FLOOD} opened in {flood_opened:?}; after {elapsed:?}: {requests} API requests \
                 (in the first 20 s: {requests_at_20s:?}), {rows} activities journaled, {events} events \
                 delivered by the file sink; /healthz answered 200 {healthz_ok} times (first after \
                 {first_healthz_ok:?}), failed {} times (e.g. {:?}); flood connections closed by the \
                 server: {closed_within_2s:?} within 2 s, all after {all_closed_after:?}",
                healthz_failed.len(),
                healthz_failed.first()
            );
            assert!(requests >= 5, "the source stopped polling during the flood");
            assert!(rows > 0, "nothing was journaled during the flood");
            assert!(
                sink_keeps_up,
                "the file sink fell behind during the flood: {events} of {rows} delivered"
            );
            let first = first_healthz_ok.expect("/healthz never answered during the flood");
            assert!(
                first < Duration::from_secs(5),
                "/healthz answered only after {first:?}, once the flood had timed out"
            );
            let all_closed = all_closed_after.expect("idle connections were never closed");
            assert!(
                all_closed >= Duration::from_secs(5),
                "idle connections below the cap were closed after {all_closed:?}, before the header timeout"
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // The connections above the cap were closed at once, not left waiting.
    assert!(
        closed_within_2s.unwrap_or(0) >= FLOOD / 2,
        "only {closed_within_2s:?} of {FLOOD} flood connections were closed at once"
    );
    // The fix under test: the soft limit was raised to the hard one.
    assert_eq!(
        soft, daemon_hard,
        "the daemon kept a soft descriptor limit of {soft}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("descriptor limit") && text.contains(&daemon_hard.to_string()),
        "the log names the descriptor limit: {text}"
    );
    let scrape = wait_for("/metrics", Duration::from_secs(5), || {
        let mut stream = TcpStream::connect(address).ok()?;
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: claudit\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut body = String::new();
        stream.read_to_string(&mut body).ok()?;
        Some(body)
    });
    assert!(
        scrape.contains("claudit_server_connections_closed_total{reason=\"header_timeout\"}"),
        "{scrape}"
    );

    // SAFETY: signalling our own child process.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let status = wait_for("the daemon to stop", Duration::from_secs(30), || {
        daemon.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0));
    drop(flood);
    runtime.block_on(sim.shutdown());
}
