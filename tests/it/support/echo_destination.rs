//! A hostile destination for tests: a raw HTTP/1.1 server that echoes what
//! it was sent (the credential headers first, then the path, the query, the
//! other headers and the body) in its error answers, as a careless proxy
//! or a debugging endpoint does. The first segment of the request path
//! picks the answer, so one server plays many destinations:
//!
//! | mode | answer |
//! |---|---|
//! | `s400`, `s401`, `s403`, `s413`, `s500` | that status, the echo as JSON (400, 413) or text |
//! | `item` | per-item refusals: Elasticsearch `_bulk` items of status 400, or HEC code 6, each with the echo |
//! | `tokfail` | (Entra token endpoint) 400 `invalid_client` with the echo of the form body |
//!
//! Entra token requests (`.../oauth2/v2.0/token`) in other modes get
//! [`ACCESS_TOKEN`]: a secret the destination hands out, which claudit
//! then sends back as `Authorization: Bearer`.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The access token every successful token request gets.
pub const ACCESS_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJjYW5hcnkiOiJ0b2tlbi1hYmMxMjMifQ.Y2FuYXJ5LXRva2VuLXNpZ25hdHVyZS14eXo5ODc";

/// Headers that carry credentials: echoed first, so a truncated message
/// still holds them.
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "dd-api-key", "x-amz-security-token"];

pub struct EchoDestination {
    pub url: String,
    /// Every request line received ("POST /s401/_bulk").
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl EchoDestination {
    pub async fn start() -> EchoDestination {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(conn, seen.clone()));
            }
        });
        EchoDestination { url, requests }
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn serve(mut conn: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    // Keep-alive: answer requests until the client closes.
    let mut buffered = Vec::new();
    while let Some(request) = read_request(&mut conn, &mut buffered).await {
        seen.lock()
            .unwrap()
            .push(format!("{} {}", request.method, request.path));
        let (status, content_type, body) = respond(&request);
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        if conn.write_all(head.as_bytes()).await.is_err()
            || conn.write_all(body.as_bytes()).await.is_err()
        {
            return;
        }
    }
}

async fn read_request(conn: &mut TcpStream, buffered: &mut Vec<u8>) -> Option<Request> {
    let mut piece = [0u8; 16 << 10];
    let head_end = loop {
        if let Some(at) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = conn.read(&mut piece).await.ok()?;
        if n == 0 {
            return None;
        }
        buffered.extend_from_slice(&piece[..n]);
    };
    let head = String::from_utf8_lossy(&buffered[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buffered.len() < head_end + length {
        let n = conn.read(&mut piece).await.ok()?;
        if n == 0 {
            return None;
        }
        buffered.extend_from_slice(&piece[..n]);
    }
    let body = buffered[head_end..head_end + length].to_vec();
    buffered.drain(..head_end + length);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Some(Request {
        method,
        path,
        query,
        headers,
        body,
    })
}

/// The echo as `name=value` text: credential headers, path, query, the
/// other headers, the start of the body.
fn echo_text(r: &Request) -> String {
    let mut out = String::from("echo");
    for name in CREDENTIAL_HEADERS {
        for (n, v) in &r.headers {
            if n == name {
                out.push_str(&format!(" {n}={v}"));
            }
        }
    }
    out.push_str(&format!(" path={} query={}", r.path, r.query));
    for (n, v) in &r.headers {
        if !CREDENTIAL_HEADERS.contains(&n.as_str()) {
            out.push_str(&format!(" {n}={v}"));
        }
    }
    let body = String::from_utf8_lossy(&r.body);
    out.push_str(&format!(
        " body={}",
        body.chars().take(300).collect::<String>()
    ));
    out
}

/// The echo as a JSON object, the credential headers first.
fn echo_json(r: &Request) -> serde_json::Value {
    let mut echo = serde_json::Map::new();
    for name in CREDENTIAL_HEADERS {
        for (n, v) in &r.headers {
            if n == name {
                echo.insert(n.clone(), v.clone().into());
            }
        }
    }
    echo.insert("path".into(), r.path.clone().into());
    echo.insert("query".into(), r.query.clone().into());
    for (n, v) in &r.headers {
        echo.entry(n.clone()).or_insert_with(|| v.clone().into());
    }
    let body = String::from_utf8_lossy(&r.body);
    echo.insert(
        "body".into(),
        body.chars().take(300).collect::<String>().into(),
    );
    serde_json::json!({ "echo": echo, "error": {"type": "echoed", "reason": "see echo"} })
}

fn respond(r: &Request) -> (u16, &'static str, String) {
    let mode = r
        .path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
        .trim_end_matches("-auth")
        .to_string();
    let json = "application/json";
    if r.path.ends_with("/oauth2/v2.0/token") {
        if mode == "tokfail" {
            let answer = serde_json::json!({
                "error": "invalid_client",
                "error_description": format!("AADSTS7000215: Invalid client secret provided. {}", echo_text(r)),
            });
            return (400, json, answer.to_string());
        }
        let answer = serde_json::json!({
            "token_type": "Bearer", "expires_in": 3600, "access_token": ACCESS_TOKEN
        });
        return (200, json, answer.to_string());
    }
    match mode.as_str() {
        "item" if r.path.ends_with("/_bulk") => {
            let text = String::from_utf8_lossy(&r.body);
            let items: Vec<serde_json::Value> = text
                .lines()
                .step_by(2)
                .map(|action| {
                    let id = serde_json::from_str::<serde_json::Value>(action)
                        .map(|a| a["create"]["_id"].clone())
                        .unwrap_or_default();
                    serde_json::json!({"create": {"_id": id, "status": 400, "error": {
                        "type": "mapper_parsing_exception", "reason": echo_text(r)}}})
                })
                .collect();
            let answer = serde_json::json!({"took": 1, "errors": true, "items": items});
            (200, json, answer.to_string())
        }
        "item" => {
            let answer = serde_json::json!({
                "text": echo_text(r), "code": 6, "invalid-event-number": 0
            });
            (400, json, answer.to_string())
        }
        "s400" | "s413" => {
            let status = if mode == "s400" { 400 } else { 413 };
            (status, json, echo_json(r).to_string())
        }
        "s401" => (401, "text/plain", echo_text(r)),
        "s403" => (403, "text/plain", echo_text(r)),
        "s500" => (500, "text/plain", echo_text(r)),
        "s3" => {
            // An S3-compatible store refusing everything, echoing in its
            // XML error's Message.
            let answer = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>\
                 <Message>{}</Message></Error>",
                echo_text(r).replace('&', "&amp;").replace('<', "&lt;")
            );
            (403, "application/xml", answer)
        }
        _ => (
            404,
            "text/plain",
            format!("unknown mode {mode}; {}", echo_text(r)),
        ),
    }
}
