//! What every HTTP sink shares: the client (rustls, extra CA bundle,
//! proxies from the environment, timeouts), the generic classification of
//! HTTP statuses, `Retry-After`, and gzip.
//!
//! A destination module (splunk_hec.rs, datadog.rs, ...) encodes a batch
//! into its protocol's requests, sends them, and classifies what came back
//! into an [`Outcome`] (the delivery contract, `sinks/contract`).

use std::io::Write;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::contract::Outcome;
use crate::body_limit::read_capped_text;
use crate::http_text::{retry_after_value, with_causes};
use crate::sinks::settings::HttpSinkConfig;

/// Builds the HTTP client of one sink.
pub fn client(config: &HttpSinkConfig) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("claudit/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(config.connect_timeout)
        .timeout(config.request_timeout)
        // A redirect could carry the destination's token to another host.
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = &config.tls_ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read tls_ca_file {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            anyhow::anyhow!(
                "tls_ca_file {} is not a PEM certificate bundle: {e}",
                path.display()
            )
        })?;
        if certs.is_empty() {
            anyhow::bail!("tls_ca_file {} holds no PEM certificate", path.display());
        }
        builder = builder.tls_certs_merge(certs);
    }
    Ok(builder.build()?)
}

/// The largest answer read from a destination (see the constant).
pub use crate::body_limit::MAX_ANSWER_BYTES;

/// A destination's answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

/// Reads `response` under `limit` bytes. `Err` says, in words, why there is
/// no whole answer (too large, connection broken): the caller retries, as
/// an answer it could not read acknowledges nothing.
pub async fn read_answer(
    response: reqwest::Response,
    limit: usize,
    endpoint: &str,
) -> Result<Answer, String> {
    let status = response.status();
    let headers = response.headers().clone();
    let text = read_capped_text(response, limit, endpoint)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Answer {
        status,
        headers,
        text,
    })
}

/// Sends `body` (gzipped, with `Content-Encoding: gzip`, when `compress`)
/// and reads the whole answer under [`MAX_ANSWER_BYTES`]. `Err` is a
/// transport failure or an unreadable answer, in words, without the URL.
pub async fn send_body(
    request: reqwest::RequestBuilder,
    body: &[u8],
    compress: bool,
    endpoint: &str,
) -> Result<Answer, String> {
    let request = if compress {
        request
            .header(reqwest::header::CONTENT_ENCODING, "gzip")
            .body(gzip(body))
    } else {
        request.body(body.to_vec())
    };
    let response = request
        .send()
        .await
        .map_err(|e| format!("{endpoint}: {}", describe(e)))?;
    read_answer(response, MAX_ANSWER_BYTES, endpoint).await
}

/// A transport error in words, with its causes ("connection refused") but
/// without the request URL (which can be a secret, like Sumo's).
pub fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    with_causes(e.to_string(), &e)
}

/// The generic classification of a whole-request HTTP status (vector's
/// default retry strategy, `spec/sinks.md` section 0): 2xx success; 408, 429
/// and 5xx except 501 retry (after `Retry-After` if given); 401 and 403
/// fatal (credentials); other 4xx fatal (the request itself is wrong, so
/// retrying cannot help and dropping would lose data: stop and alert).
/// Destinations with their own rules classify before falling back to this.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> Outcome {
    let code = status.as_u16();
    let detail = format!("HTTP {code}: {}", truncate(body, 512));
    match code {
        200..=299 => Outcome::delivered(),
        408 | 429 => Outcome::Retry {
            after: retry_after(headers),
            reason: detail,
        },
        501 => Outcome::Fatal { reason: detail },
        500..=599 => Outcome::Retry {
            after: retry_after(headers),
            reason: detail,
        },
        401 | 403 => Outcome::Fatal {
            reason: format!("{detail} (check the sink's token or key)"),
        },
        _ => Outcome::Fatal { reason: detail },
    }
}

/// `Retry-After` in seconds or as an HTTP date, if present and sane.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    retry_after_value(
        value,
        chrono::Utc::now(),
        3600.0,
        Some(Duration::from_secs(3600)),
    )
}

/// gzip-compresses a request body.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4 + 64), Compression::fast());
    encoder
        .write_all(body)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// The first `max` bytes of a response body, for messages and dead letters.
pub use crate::http_text::truncate;

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(retry: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(r) = retry {
            h.insert(reqwest::header::RETRY_AFTER, r.parse().unwrap());
        }
        h
    }

    #[test]
    fn classification_follows_the_generic_rules() {
        let c = |code: u16| classify(StatusCode::from_u16(code).unwrap(), &headers(None), "body");
        assert_eq!(c(200), Outcome::delivered());
        assert_eq!(c(204), Outcome::delivered());
        for code in [408, 429, 500, 502, 503, 504, 529] {
            assert!(matches!(c(code), Outcome::Retry { .. }), "{code}");
        }
        for code in [400, 401, 403, 404, 413, 501] {
            assert!(matches!(c(code), Outcome::Fatal { .. }), "{code}");
        }
        let with_delay = classify(StatusCode::TOO_MANY_REQUESTS, &headers(Some("7")), "");
        assert_eq!(
            with_delay,
            Outcome::Retry {
                after: Some(Duration::from_secs(7)),
                reason: "HTTP 429: ".into()
            }
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(
            retry_after(&headers(Some("2.5"))),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(retry_after(&headers(Some("garbage"))), None);
        assert_eq!(retry_after(&headers(None)), None);
        let past = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(retry_after(&headers(Some(past))), Some(Duration::ZERO));
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let body = b"{\"a\":1}\n".repeat(1000);
        let packed = gzip(&body);
        assert!(packed.len() < body.len() / 10);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
    }
}
