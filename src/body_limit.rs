//! Reading an HTTP answer's body under a size cap. Every body claudit reads
//! from the network goes through [`read_capped`]: Compliance API pages,
//! every destination's answers, `claudit check --connect` and
//! `claudit healthcheck`.
//!
//! reqwest decompresses gzip as the body streams, so the bytes counted here
//! are the decompressed ones: an answer of 1 MB that gunzips to 1 GiB stops
//! at the cap, having held at most the cap in memory. A declared
//! `Content-Length` above the cap is refused before a byte is read. reqwest
//! hides the `Content-Length` of a compressed answer; its compressed bytes
//! are then bounded by the request's total timeout, which every client sets
//! (`connect_timeout` plus `request_timeout`, which covers the body too).

use std::fmt;

use reqwest::header::HeaderMap;

/// Headers that carry a request id, in order of preference: the Compliance
/// API's, then the common ones of proxies, S3 and Azure.
const REQUEST_ID_HEADERS: [&str; 4] = [
    "request-id",
    "x-request-id",
    "x-amz-request-id",
    "x-ms-request-id",
];
/// A request id longer than this is not one: it is cut (it comes from the
/// network and goes into messages).
const MAX_REQUEST_ID_CHARS: usize = 128;

/// The largest answer read from a destination (the archive's S3 bucket
/// too), decompressed, in bytes.
/// The largest legitimate one is an Elasticsearch `_bulk` answer, one
/// result per document: 244 bytes for a document created in a data stream,
/// 450 to 700 with a mapping error, so a full batch of 5,000 documents
/// answers 1.2 to 3.5 MB (the Elasticsearch sink raises the cap with its
/// `max_request_bytes`). The others answer a few hundred bytes. An answer
/// over the cap is not read further and the batch is retried: it never
/// counts as an acknowledgement.
pub const MAX_ANSWER_BYTES: usize = 16 << 20;

/// Why an answer's body was not read whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// More bytes than the limit, declared or (decompressed) received.
    #[error(
        "the answer of {endpoint} is larger than claudit's limit of {} ({}){}; it was not read further",
        Bytes(*limit),
        match declared {
            Some(n) => format!("Content-Length declares {}", Bytes(*n as usize)),
            None => format!("more than {} arrived, after decompression", Bytes(*limit)),
        },
        rid(request_id)
    )]
    TooLarge {
        /// What was asked, without query or secret: "GET /v1/compliance/activities".
        endpoint: String,
        limit: usize,
        /// The `Content-Length` the server declared, when that is what gave it away.
        declared: Option<u64>,
        request_id: Option<String>,
    },
    /// The connection broke, timed out, or the encoding was invalid.
    #[error(
        "the answer of {endpoint} could not be read: {reason}{}",
        rid(request_id)
    )]
    Unreadable {
        endpoint: String,
        reason: String,
        request_id: Option<String>,
    },
}

impl BodyError {
    pub fn is_too_large(&self) -> bool {
        matches!(self, BodyError::TooLarge { .. })
    }
}

fn rid(request_id: &Option<String>) -> String {
    request_id
        .as_deref()
        .map(|id| format!(" (request-id {id})"))
        .unwrap_or_default()
}

/// A byte count in the unit an operator reads best: "32 MiB", "1.5 MiB", "812 bytes".
struct Bytes(usize);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIB: usize = 1 << 20;
        const KIB: usize = 1 << 10;
        let n = self.0;
        if n >= MIB && n.is_multiple_of(MIB) {
            write!(f, "{} MiB", n / MIB)
        } else if n >= MIB {
            write!(f, "{:.1} MiB", n as f64 / MIB as f64)
        } else if n >= KIB && n.is_multiple_of(KIB) {
            write!(f, "{} KiB", n / KIB)
        } else {
            write!(f, "{n} bytes")
        }
    }
}

/// The request id an answer carries, if any, cut to printable ASCII of a
/// sane length.
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    REQUEST_ID_HEADERS.iter().find_map(|name| {
        let value = headers.get(*name)?.to_str().ok()?.trim();
        let value: String = value
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(MAX_REQUEST_ID_CHARS)
            .collect();
        (!value.is_empty()).then_some(value)
    })
}

/// Reads the whole body of `response`, or stops as soon as it is known to
/// exceed `limit` bytes (decompressed). `endpoint` names what was asked in
/// the error ("POST /_bulk"): never a URL with a query or a secret in it.
///
/// On an error the rest of the body is not read and the connection is
/// closed, never reused.
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
    endpoint: &str,
) -> Result<Vec<u8>, BodyError> {
    let request_id = request_id(response.headers());
    let too_large = |declared: Option<u64>| BodyError::TooLarge {
        endpoint: endpoint.to_string(),
        limit,
        declared,
        request_id: request_id.clone(),
    };
    let declared = response.content_length();
    if let Some(n) = declared
        && n > limit as u64
    {
        return Err(too_large(Some(n)));
    }
    // Sized up front when the length is known (no regrowth copies);
    // otherwise it doubles as chunks arrive, to at most twice the limit
    // briefly.
    let mut body = Vec::with_capacity(declared.unwrap_or(0) as usize);
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(BodyError::Unreadable {
                    endpoint: endpoint.to_string(),
                    reason: describe(e),
                    request_id,
                });
            }
        };
        if chunk.len() > limit - body.len() {
            return Err(too_large(None));
        }
        body.extend_from_slice(&chunk);
    }
}

/// [`read_capped`], as text (invalid UTF-8 replaced).
pub async fn read_capped_text(
    response: reqwest::Response,
    limit: usize,
    endpoint: &str,
) -> Result<String, BodyError> {
    let body = read_capped(response, limit, endpoint).await?;
    Ok(match String::from_utf8(body) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// A transport error with its causes, without the URL (which can be a
/// secret, like a Sumo Logic source's).
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_decode() {
        "invalid encoding"
    } else {
        "connection broken"
    };
    let e = e.without_url();
    crate::http_text::with_causes(format!("{kind}: {e}"), &e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A real HTTP/1.1 server on a free port that answers every request
    /// with `head` (status line and headers, without the blank line) and
    /// then the `body` pieces, each written as it is (a chunked body's
    /// framing included), and keeps the connection open afterwards.
    async fn serve(head: String, body: Vec<Vec<u8>>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                let (head, body) = (head.clone(), body.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut read = 0;
                    while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf[read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n,
                        }
                    }
                    let _ = conn.write_all(format!("{head}\r\n\r\n").as_bytes()).await;
                    for piece in body {
                        if conn.write_all(&piece).await.is_err() {
                            return;
                        }
                    }
                    // Hold the connection: the reader must not wait for it.
                    let _ = conn.read(&mut buf).await;
                });
            }
        });
        format!("http://{addr}/v1/thing?secret=no")
    }

    async fn read(url: &str, limit: usize) -> Result<Vec<u8>, BodyError> {
        let response = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap();
        read_capped(response, limit, "GET /v1/thing").await
    }

    fn sized(n: usize) -> String {
        format!("HTTP/1.1 200 OK\r\nrequest-id: req_42\r\ncontent-length: {n}")
    }

    fn chunked() -> String {
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked".to_string()
    }

    /// `data` as chunks of `size` bytes in chunked framing, with the end.
    fn chunks(data: &[u8], size: usize) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = data
            .chunks(size)
            .map(|c| {
                let mut piece = format!("{:x}\r\n", c.len()).into_bytes();
                piece.extend_from_slice(c);
                piece.extend_from_slice(b"\r\n");
                piece
            })
            .collect();
        out.push(b"0\r\n\r\n".to_vec());
        out
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[tokio::test]
    async fn a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_refused() {
        let body = vec![b'x'; 1000];
        let url = serve(sized(1000), vec![body.clone()]).await;
        assert_eq!(read(&url, 1000).await.unwrap(), body);

        let url = serve(sized(1001), vec![vec![b'x'; 1001]]).await;
        let err = read(&url, 1000).await.unwrap_err();
        assert_eq!(
            err,
            BodyError::TooLarge {
                endpoint: "GET /v1/thing".into(),
                limit: 1000,
                declared: Some(1001),
                request_id: Some("req_42".into()),
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("GET /v1/thing")
                && text.contains("1000 bytes")
                && text.contains("req_42")
                && !text.contains("secret"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        // 10 GB declared, nothing sent: waiting for the body would hang
        // until the timeout.
        let url = serve(sized(10_000_000_000), Vec::new()).await;
        let started = std::time::Instant::now();
        let err = read(&url, 1 << 20).await.unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(matches!(
            err,
            BodyError::TooLarge {
                declared: Some(10_000_000_000),
                ..
            }
        ));
        assert!(err.to_string().contains("Content-Length declares"), "{err}");
    }

    #[tokio::test]
    async fn a_chunked_body_is_counted_as_it_streams() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let url = serve(chunked(), chunks(&data, 333)).await;
        assert_eq!(read(&url, 5000).await.unwrap(), data);

        // An endless chunked body stops at the limit.
        let endless: Vec<Vec<u8>> = (0..100_000)
            .map(|_| {
                let mut piece = b"400\r\n".to_vec();
                piece.extend_from_slice(&[b'y'; 0x400]);
                piece.extend_from_slice(b"\r\n");
                piece
            })
            .collect();
        let url = serve(chunked(), endless).await;
        let err = read(&url, 4999).await.unwrap_err();
        assert!(
            matches!(
                err,
                BodyError::TooLarge {
                    declared: None,
                    limit: 4999,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("after decompression"), "{err}");
    }

    #[tokio::test]
    async fn gzip_is_counted_decompressed() {
        let data = vec![0u8; 64 << 10];
        let packed = gzip(&data);
        assert!(packed.len() < 1000);
        let head =
            |n: usize| format!("HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: {n}");
        let url = serve(head(packed.len()), vec![packed.clone()]).await;
        assert_eq!(read(&url, 64 << 10).await.unwrap(), data);

        let url = serve(head(packed.len()), vec![packed.clone()]).await;
        let err = read(&url, (64 << 10) - 1).await.unwrap_err();
        assert!(
            matches!(err, BodyError::TooLarge { declared: None, .. }),
            "{err}"
        );

        // A bomb: 1 MiB compressed per 1 GiB, streamed chunked, stops at
        // the limit long before its end.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        let url = serve(
            "HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked".into(),
            chunks(&bomb, 4096),
        )
        .await;
        let err = read(&url, 1 << 20).await.unwrap_err();
        assert!(err.is_too_large(), "{err}");
    }

    #[tokio::test]
    async fn a_broken_body_is_unreadable_not_short() {
        // Declares 1000 bytes, sends 10, then closes.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789")
                .await;
        });
        let err = read(&format!("http://{addr}/"), 1 << 20).await.unwrap_err();
        assert!(matches!(err, BodyError::Unreadable { .. }), "{err}");
    }

    #[test]
    fn request_ids_come_from_the_usual_headers_and_are_bounded() {
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        assert_eq!(
            request_id(&headers(&[
                ("request-id", "req_1"),
                ("x-request-id", "req_2")
            ]))
            .as_deref(),
            Some("req_1")
        );
        assert_eq!(
            request_id(&headers(&[("x-request-id", "req_2")])).as_deref(),
            Some("req_2")
        );
        assert_eq!(
            request_id(&headers(&[("x-amz-request-id", "ABC")])).as_deref(),
            Some("ABC")
        );
        assert_eq!(request_id(&HeaderMap::new()), None);
        let long = "r".repeat(1000);
        assert_eq!(
            request_id(&headers(&[("request-id", &long)])).map(|id| id.len()),
            Some(MAX_REQUEST_ID_CHARS)
        );
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(Bytes(32 << 20).to_string(), "32 MiB");
        assert_eq!(Bytes(64 << 10).to_string(), "64 KiB");
        assert_eq!(Bytes(1000).to_string(), "1000 bytes");
        assert_eq!(Bytes(3 << 19).to_string(), "1.5 MiB");
    }
}
