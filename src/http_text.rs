//! What every HTTP client of claudit (the Compliance API and directory
//! client, the destinations, the container health check) says about its
//! requests in the same words: an error with its causes, a `Retry-After`
//! value, a bounded excerpt of an answer.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// `head` followed by each cause of `error` after ": " ("connection
/// refused" sits at the bottom of a reqwest error's chain).
pub fn with_causes(head: impl Into<String>, error: &dyn std::error::Error) -> String {
    let mut out = head.into();
    let mut cause = error.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// The causes of `error`, without the error's own text.
pub fn causes(error: &dyn std::error::Error) -> Vec<String> {
    let mut out = Vec::new();
    let mut cause = error.source();
    while let Some(c) = cause {
        out.push(c.to_string());
        cause = c.source();
    }
    out
}

/// A `Retry-After` value (seconds, possibly fractional, or an HTTP date)
/// as a delay from `now`: seconds at most `max_seconds`, a date at most
/// `max_date` ahead when given. `None` for anything else.
pub fn retry_after_value(
    value: &str,
    now: DateTime<Utc>,
    max_seconds: f64,
    max_date: Option<Duration>,
) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(max_seconds)));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    let wait = (at - now).to_std().unwrap_or(Duration::ZERO);
    Some(max_date.map_or(wait, |max| wait.min(max)))
}

/// The first `max` bytes of an answer, for messages and dead letters, with
/// its length when cut.
pub fn truncate(body: &str, max: usize) -> String {
    if body.len() <= max {
        return body.to_string();
    }
    let mut end = max;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &body[..end], body.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates_under_their_caps() {
        let now = Utc::now();
        let read = |v: &str| retry_after_value(v, now, 60.0, Some(Duration::from_secs(30)));
        assert_eq!(read(" 2.5 "), Some(Duration::from_millis(2500)));
        assert_eq!(read("600"), Some(Duration::from_secs(60)));
        assert_eq!(read("-1"), None);
        assert_eq!(read("garbage"), None);
        assert_eq!(read("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        let later = (now + chrono::Duration::hours(2)).to_rfc2822();
        assert_eq!(read(&later), Some(Duration::from_secs(30)));
        assert!(retry_after_value(&later, now, 60.0, None).unwrap() > Duration::from_secs(7000));
    }

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("error sending request")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn causes_follow_the_chain() {
        let outer = Outer(std::io::Error::other("connection refused"));
        assert_eq!(causes(&outer), ["connection refused"]);
        assert_eq!(
            with_causes("request failed", &outer),
            "request failed: connection refused"
        );
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h... (6 bytes)");
        assert_eq!(truncate("ok", 10), "ok");
    }
}
