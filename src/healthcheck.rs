//! `claudit healthcheck`: one HTTP GET against the daemon's `/healthz`, for
//! container runtimes whose image has no curl (Docker `HEALTHCHECK`).
//! Healthy means a 200 answer; anything else is one line saying why.

use std::time::Duration;

/// The daemon's health endpoint with the default `[server] listen`.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9464/healthz";
/// The daemon answers `/healthz` with a few lines per source and sink; a
/// longer answer is not its own.
const MAX_BODY_BYTES: usize = 64 << 10;

/// `Ok` on a 200 answer from `url` within `timeout`; otherwise the reason
/// in one line (status and the start of the body, or the connection error).
pub async fn check(url: &str, timeout: Duration) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        // A probe of the local daemon must never go through HTTP(S)_PROXY.
        .no_proxy()
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", describe(&e)))?;
    let status = response.status();
    if status == reqwest::StatusCode::OK {
        return Ok(());
    }
    let body = crate::body_limit::read_capped_text(response, MAX_BODY_BYTES, "GET /healthz")
        .await
        .unwrap_or_else(|e| e.to_string());
    let body: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let body: String = body.chars().take(200).collect();
    if body.is_empty() {
        Err(format!("{url}: HTTP {status}"))
    } else {
        Err(format!("{url}: HTTP {status}: {body}"))
    }
}

/// A reqwest error with its causes on one line ("connection refused" sits
/// at the bottom of the chain).
fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else if err.is_builder() {
        "invalid URL"
    } else {
        "request failed"
    };
    let causes = crate::http_text::causes(err);
    match causes.last() {
        Some(root) => format!("{kind}: {root}"),
        None => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A real HTTP/1.1 server on a free port answering every request with
    /// `status` and `body`.
    async fn serve(status: &'static str, body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut read = 0;
                    while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf[read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n,
                        }
                    }
                    assert!(buf.starts_with(b"GET /healthz HTTP/1.1\r\n"));
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    conn.write_all(answer.as_bytes()).await.unwrap();
                });
            }
        });
        format!("http://{addr}/healthz")
    }

    #[tokio::test]
    async fn healthy_on_200() {
        let url = serve("200 OK", "ok").await;
        check(&url, Duration::from_secs(5)).await.unwrap();
    }

    #[tokio::test]
    async fn unhealthy_on_503_with_status_and_body() {
        let url = serve("503 Service Unavailable", "source main:\n  unhealthy (401)").await;
        let err = check(&url, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(
            err,
            format!("{url}: HTTP 503 Service Unavailable: source main: unhealthy (401)")
        );
    }

    #[tokio::test]
    async fn unhealthy_on_a_closed_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = format!("http://{addr}/healthz");
        let err = check(&url, Duration::from_secs(5)).await.unwrap_err();
        assert!(err.starts_with(&format!("{url}: cannot connect")), "{err}");
        assert!(err.to_lowercase().contains("refused"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[tokio::test]
    async fn unhealthy_on_a_bad_url() {
        let err = check("not a url", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.starts_with("not a url: invalid URL"), "{err}");
    }
}
