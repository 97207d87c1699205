//! A hostile Compliance API for tests: a raw HTTP/1.1 server in front of
//! the embedded simulator. In `Mode::Proxy` it forwards each request to the
//! simulator and returns its answer; the other modes answer what a broken
//! proxy or an attacker would: a gzip bomb, an endless body, or a page with
//! one enormous record. Every request is recorded with its time and mode.

#![allow(dead_code)]

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The simulator's answer, as is.
    Proxy,
    /// 200 with `Content-Encoding: gzip`: about 1 MB that gunzips to 1 GiB.
    GzipBomb,
    /// 200 with a chunked body that never ends (not compressed).
    Endless,
    /// The simulator's answer, with one record of `BIG_RECORD_BYTES` added
    /// to the first page that has data (once).
    BigRecord,
}

/// The size of the string in the record `Mode::BigRecord` adds.
pub const BIG_RECORD_BYTES: usize = 20_000_000;
/// The id of that record.
pub const BIG_RECORD_ID: &str = "activity_big_record_20mb";

/// One request the server answered.
#[derive(Debug, Clone)]
pub struct Served {
    pub at: Instant,
    pub mode: Mode,
    pub request_id: String,
}

struct State {
    mode: Mutex<Mode>,
    upstream: String,
    served: Mutex<Vec<Served>>,
    big_record_sent: AtomicBool,
    next_id: AtomicU64,
    http: reqwest::Client,
}

pub struct HostileApi {
    pub url: String,
    state: Arc<State>,
}

impl HostileApi {
    /// Starts the server on a free port, in front of `upstream` (the
    /// simulator's base URL).
    pub async fn start(upstream: String, mode: Mode) -> HostileApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            mode: Mutex::new(mode),
            upstream,
            served: Mutex::new(Vec::new()),
            big_record_sent: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            http: reqwest::Client::builder().no_gzip().build().unwrap(),
        });
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(answer(st.clone(), conn));
            }
        });
        HostileApi { url, state }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn served(&self) -> Vec<Served> {
        self.state.served.lock().unwrap().clone()
    }

    pub fn served_in(&self, mode: Mode) -> Vec<Served> {
        self.served()
            .into_iter()
            .filter(|s| s.mode == mode)
            .collect()
    }

    pub fn big_record_sent(&self) -> bool {
        self.state.big_record_sent.load(Ordering::SeqCst)
    }
}

/// About 1 MB of gzip that decompresses to 1 GiB of spaces (made once).
pub fn gzip_bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| {
        let mut encoder =
            flate2::write::GzEncoder::new(Vec::with_capacity(1 << 21), flate2::Compression::best());
        let block = vec![b' '; 1 << 20];
        encoder.write_all(b"{\"data\":[").unwrap();
        for _ in 0..1024 {
            encoder.write_all(&block).unwrap();
        }
        encoder.finish().unwrap()
    })
}

async fn answer(state: Arc<State>, mut conn: TcpStream) {
    let Some(head) = read_head(&mut conn).await else {
        return;
    };
    let mode = *state.mode.lock().unwrap();
    let request_id = format!(
        "req_hostile_{}",
        state.next_id.fetch_add(1, Ordering::SeqCst)
    );
    state.served.lock().unwrap().push(Served {
        at: Instant::now(),
        mode,
        request_id: request_id.clone(),
    });
    match mode {
        Mode::GzipBomb => {
            let bomb = gzip_bomb();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n\
                 content-length: {}\r\nrequest-id: {request_id}\r\nconnection: close\r\n\r\n",
                bomb.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(bomb).await;
        }
        Mode::Endless => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                 transfer-encoding: chunked\r\nrequest-id: {request_id}\r\nconnection: close\r\n\r\n"
            );
            if conn.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let mut chunk = format!("{:x}\r\n", 1 << 16).into_bytes();
            chunk.extend_from_slice(&[b'a'; 1 << 16]);
            chunk.extend_from_slice(b"\r\n");
            let _ = conn.write_all(b"a\r\n{\"data\":[\"\r\n").await;
            // Until the client hangs up, at most 4 GiB.
            for _ in 0..(1u64 << 16) {
                if conn.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        }
        Mode::Proxy | Mode::BigRecord => {
            let Some((status, headers, mut body)) = forward(&state, &head).await else {
                let _ = conn
                    .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                return;
            };
            if mode == Mode::BigRecord && status == 200 {
                body = with_big_record(&state, body);
            }
            let mut out = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
            for (name, value) in headers {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
            out.push_str("connection: close\r\n\r\n");
            let _ = conn.write_all(out.as_bytes()).await;
            let _ = conn.write_all(&body).await;
        }
    }
    let _ = conn.shutdown().await;
}

/// The request head, up to the blank line.
async fn read_head(conn: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(4096);
    let mut piece = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut piece).await.ok()?;
        if n == 0 || buf.len() > 64 << 10 {
            return None;
        }
        buf.extend_from_slice(&piece[..n]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Sends the request to the simulator; its status, the headers worth
/// passing on, and its body.
async fn forward(state: &State, head: &str) -> Option<(u16, Vec<(String, String)>, Vec<u8>)> {
    let mut lines = head.lines();
    let target = lines.next()?.split_whitespace().nth(1)?.to_string();
    let mut request = state.http.get(format!("{}{target}", state.upstream));
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            if name == "x-api-key" || name == "anthropic-version" {
                request = request.header(name, value.trim());
            }
        }
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            name == "content-type"
                || name == "request-id"
                || name == "retry-after"
                || name.starts_with("anthropic-ratelimit")
        })
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = response.bytes().await.ok()?.to_vec();
    Some((status, headers, body))
}

/// The page with one record of [`BIG_RECORD_BYTES`] added, the first time
/// a page has data; other pages as they are.
fn with_big_record(state: &State, body: Vec<u8>) -> Vec<u8> {
    let Ok(mut page) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return body;
    };
    let Some(data) = page["data"].as_array_mut() else {
        return body;
    };
    let Some(first) = data.first().cloned() else {
        return body;
    };
    if state.big_record_sent.swap(true, Ordering::SeqCst) {
        return body;
    }
    let mut big = first;
    big["id"] = BIG_RECORD_ID.into();
    big["big_field"] = "b".repeat(BIG_RECORD_BYTES).into();
    data.insert(1, big);
    serde_json::to_vec(&page).unwrap()
}

/// The daemon's memory, from /proc: (VmHWM, VmRSS) in MiB.
pub fn memory_mib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb / 1024)
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}
