//! Small readers and checks built on [`Table`] that several sections
//! share: optional and required words, sizes in a range, a shortest
//! duration, and the errors that name the override which set a value.

use std::ops::RangeInclusive;
use std::time::Duration;

use super::{Ctx, Got, Table, Text, format_duration, format_size};

pub(crate) const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
pub(crate) const MINUTE: u64 = 60;
pub(crate) const HOUR: u64 = 3600;
pub(crate) const DAY: u64 = 86_400;

/// An optional string; `default` when absent.
pub(crate) fn optional_text(
    cx: &mut Ctx,
    t: &mut Table,
    key: &str,
    default: &str,
) -> Option<String> {
    match t.text(cx, key) {
        Got::Absent => Some(default.to_string()),
        Got::Invalid => None,
        Got::Value(v) => Some(v.value),
    }
}

/// A required identifier that goes into a URL path: non-empty, no
/// spaces, slashes, `?` or `#`.
pub(crate) fn required_word(
    cx: &mut Ctx,
    t: &mut Table,
    key: &str,
    example: &str,
) -> Option<String> {
    let text = t.required_text(cx, key, example)?;
    let ok = !text.value.is_empty()
        && text
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Some(text.value)
    } else {
        let msg = format!(
            "{} is not valid here (letters, digits, \"-\", \"_\" and \".\" only); write e.g. {key} = {example}",
            text.shown()
        );
        text_error(cx, t, key, &text, msg);
        None
    }
}

/// A size in `range`, `default` when absent.
pub(crate) fn sized(
    cx: &mut Ctx,
    t: &mut Table,
    key: &str,
    default: u64,
    range: RangeInclusive<u64>,
) -> Option<u64> {
    match t.size(cx, key, default) {
        Some(n) if !range.contains(&n) => {
            let line = t.line_of_key(cx, key);
            let msg = format!(
                "{} is out of range; write a size from {} to {}, e.g. {key} = \"{}\"",
                format_size(n),
                format_size(*range.start()),
                format_size(*range.end()),
                format_size(default)
            );
            t_error(cx, t, key, line, msg);
            None
        }
        other => other,
    }
}

/// A base URL on this machine (127.0.0.1, localhost, [::1]): the simulator.
pub(crate) fn is_loopback_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| {
        matches!(
            u.host_str().unwrap_or_default(),
            "127.0.0.1" | "localhost" | "[::1]"
        )
    })
}

/// What differs between the checks of the URLs a secret travels to (a
/// sink's endpoint, the Compliance API's base URL).
pub(crate) struct SecretUrl<'a> {
    /// The key, as messages name it (`url`, `base_url`).
    pub key: &'a str,
    /// The fix every message ends with (`write e.g. url = "https://..."`).
    pub fix: &'a str,
    /// Why plain http is refused, with its own punctuation before the fix.
    pub plain_http: &'a str,
    /// Where credentials go instead (` (the token goes in token)`), or "".
    pub credentials_go: &'a str,
}

/// A URL a key or token travels to with every request: https (plain http
/// only to 127.0.0.1 or localhost), a host, no credentials, query or
/// fragment. `value` is what is parsed (the text's value, trimmed or not).
pub(crate) fn check_secret_url(
    text: &Text,
    value: &str,
    rules: &SecretUrl,
) -> Result<reqwest::Url, String> {
    let fix = rules.fix;
    let url = reqwest::Url::parse(value)
        .map_err(|e| format!("{} is not a URL ({e}); {fix}", text.shown()))?;
    let host = url.host_str().unwrap_or_default();
    match url.scheme() {
        "https" => {}
        "http" if matches!(host, "127.0.0.1" | "localhost" | "[::1]") => {}
        "http" => return Err(format!("{} {fix}", rules.plain_http)),
        scheme => return Err(format!("scheme {scheme:?} is not supported; {fix}")),
    }
    if host.is_empty() {
        return Err(format!("{} has no host; {fix}", text.shown()));
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(format!(
            "{} must not carry credentials, a query or a fragment{}; {fix}",
            rules.key, rules.credentials_go
        ));
    }
    Ok(url)
}

/// An optional non-empty string key.
pub(crate) fn optional_label(cx: &mut Ctx, t: &mut Table, key: &str) -> Option<Option<String>> {
    match t.text(cx, key) {
        Got::Absent => Some(None),
        Got::Invalid => None,
        Got::Value(text) if text.value.trim().is_empty() => {
            let msg = format!("is empty; remove {key} or give it a value");
            text_error(cx, t, key, &text, msg);
            None
        }
        Got::Value(text) => Some(Some(text.value)),
    }
}

/// A duration, `default` when absent, that must be at least `min`.
pub(crate) fn duration_at_least(
    cx: &mut Ctx,
    t: &mut Table,
    key: &str,
    default: Duration,
    min: Duration,
) -> Option<Duration> {
    let value = t.duration(cx, key, default);
    at_least(cx, t, key, value, min)
}

/// A duration that must be at least `min`.
fn at_least(
    cx: &mut Ctx,
    t: &Table,
    key: &str,
    value: Option<Duration>,
    min: Duration,
) -> Option<Duration> {
    let value = value?;
    if value >= min {
        return Some(value);
    }
    let line = t.line_of_key(cx, key);
    let msg = format!(
        "{} is too short; write at least {key} = \"{}\"",
        format_duration(value),
        format_duration(min)
    );
    t_error(cx, t, key, line, msg);
    None
}

/// A problem with a string value, naming the override that set it.
pub(crate) fn text_error(cx: &mut Ctx, t: &Table, key: &str, text: &Text, message: String) {
    let message = match &text.set_by {
        Some(var) => format!("(set by {var}) {message}"),
        None => message,
    };
    cx.error(t.key_path(key), text.line, message);
}

pub(crate) fn t_error(cx: &mut Ctx, t: &Table, key: &str, line: Option<usize>, message: String) {
    cx.error(t.key_path(key), line, message);
}
