//! Parsing and validating the Activity Feed's query string (spec §1.3).
//!
//! Strictness matters more than convenience here: the daemon is tested
//! against this, so every malformed value gets the 400 the real API gives
//! (naming the parameter and echoing the value), and query strings are
//! decoded with form rules (`+` is a space), so an unencoded `+01:00`
//! offset fails exactly as it would against the real API.

use chrono::DateTime;

use crate::sim::store::Order;

/// A validated feed query. Cursors and filters are still strings: they are
/// resolved against the records by the server.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FeedQuery {
    pub limit: usize,
    pub order: Option<Order>,
    pub after_id: Option<String>,
    pub before_id: Option<String>,
    /// Inclusive lower bound, microseconds.
    pub from: Option<i64>,
    /// Exclusive upper bound, microseconds.
    pub until: Option<i64>,
    pub activity_types: Vec<String>,
    pub exclude_activity_types: Vec<String>,
    pub organization_ids: Vec<String>,
    /// `actor_ids[]` and its alias `user_ids[]`, merged.
    pub actor_ids: Vec<String>,
}

pub(crate) const DEFAULT_LIMIT: usize = 100;

/// Decodes one `application/x-www-form-urlencoded` component.
fn form_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    // A lone `%` is kept literally, as lenient decoders do.
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| {
        format!("The query string component '{s}' is not valid UTF-8 once percent-decoded.")
    })
}

/// The query's `(name, value)` pairs, decoded, in order.
pub(crate) fn pairs(raw: &str) -> Result<Vec<(String, String)>, String> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((form_decode(k)?, form_decode(v)?))
        })
        .collect()
}

/// Microseconds of an RFC 3339 date-time (offset required), or the 400
/// message naming the parameter.
fn parse_time(name: &str, value: &str) -> Result<i128, String> {
    match DateTime::parse_from_rfc3339(value) {
        Ok(t) => {
            Ok(i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos()))
        }
        Err(_) => {
            let hint = if value.contains(' ') {
                " A '+' in a query string decodes to a space: percent-encode the offset's '+' as %2B."
            } else {
                ""
            };
            Err(format!(
                "Invalid `{name}`: '{value}' is not an RFC 3339 date-time with a time zone offset \
                 (for example 2026-04-10T08:09:10Z).{hint}"
            ))
        }
    }
}

fn ceil_div(a: i128, b: i128) -> i128 {
    a.div_euclid(b) + i128::from(a.rem_euclid(b) != 0)
}

fn to_micros(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

pub(crate) fn parse_feed_query(raw: &str, max_limit: u32) -> Result<FeedQuery, String> {
    let mut q = FeedQuery {
        limit: DEFAULT_LIMIT.min(max_limit as usize),
        ..FeedQuery::default()
    };
    let mut from: Option<i128> = None; // nanoseconds, inclusive
    let mut until: Option<i128> = None; // nanoseconds, exclusive
    for (name, value) in pairs(raw)? {
        match name.as_str() {
            "limit" => {
                let n: i64 = value.trim().parse().map_err(|_| {
                    format!("Invalid `limit`: '{value}' is not an integer. `limit` must be between 1 and {max_limit}, inclusive.")
                })?;
                if n < 1 || n > i64::from(max_limit) {
                    return Err(format!(
                        "`limit` must be between 1 and {max_limit}, inclusive. Got {n}."
                    ));
                }
                q.limit = n as usize;
            }
            "order" => {
                q.order = Some(match value.as_str() {
                    "asc" => Order::Asc,
                    "desc" => Order::Desc,
                    _ => {
                        return Err(format!(
                            "Invalid `order`: '{value}'. Expected 'asc' or 'desc'."
                        ));
                    }
                })
            }
            "after_id" => q.after_id = Some(value),
            "before_id" => q.before_id = Some(value),
            // Bounds become a half-open interval [from, until) in
            // nanoseconds, then microseconds (rounded so nothing in range is
            // lost and nothing outside is let in).
            "created_at.gte" => {
                let t = parse_time(&name, &value)?;
                from = Some(from.map_or(t, |f| f.max(t)));
            }
            "created_at.gt" => {
                // created > t  <=>  created >= next microsecond after t.
                let t = (parse_time(&name, &value)?.div_euclid(1_000) + 1) * 1_000;
                from = Some(from.map_or(t, |f| f.max(t)));
            }
            "created_at.lte" => {
                let t = (parse_time(&name, &value)?.div_euclid(1_000) + 1) * 1_000;
                until = Some(until.map_or(t, |u| u.min(t)));
            }
            "created_at.lt" => {
                let t = parse_time(&name, &value)?;
                until = Some(until.map_or(t, |u| u.min(t)));
            }
            "activity_types[]" => q.activity_types.push(value),
            "exclude_activity_types[]" => q.exclude_activity_types.push(value),
            "organization_ids[]" => q.organization_ids.push(value),
            "actor_ids[]" | "user_ids[]" => q.actor_ids.push(value),
            // Unknown parameters are ignored, as by the real API.
            _ => {}
        }
    }
    q.from = from.map(|f| to_micros(ceil_div(f, 1_000)));
    q.until = until.map(|u| to_micros(ceil_div(u, 1_000)));
    if q.after_id.is_some() && q.before_id.is_some() {
        return Err("Only one of `after_id` and `before_id` may be given.".into());
    }
    if !q.activity_types.is_empty() && !q.exclude_activity_types.is_empty() {
        return Err("`activity_types[]` and `exclude_activity_types[]` cannot be used together; pass one of them.".into());
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    #[test]
    fn defaults_and_arrays() {
        let q = parse_feed_query("", 5000).unwrap();
        assert_eq!(q.limit, 100);
        assert_eq!(q.order, None);
        let q = parse_feed_query(
            "limit=5000&order=asc&activity_types%5B%5D=a&activity_types[]=b&organization_ids[]=org_1&actor_ids[]=user_1&user_ids[]=user_2&bogus=1",
            5000,
        )
        .unwrap();
        assert_eq!(q.limit, 5000);
        assert_eq!(q.order, Some(Order::Asc));
        assert_eq!(q.activity_types, ["a", "b"]);
        assert_eq!(q.organization_ids, ["org_1"]);
        assert_eq!(q.actor_ids, ["user_1", "user_2"]);
    }

    #[test]
    fn limit_bounds() {
        for bad in ["limit=0", "limit=5001", "limit=-1", "limit=abc", "limit="] {
            let e = parse_feed_query(bad, 5000).unwrap_err();
            assert!(e.contains("between 1 and 5000"), "{bad}: {e}");
        }
        assert!(
            parse_feed_query("limit=5001", 5000)
                .unwrap_err()
                .contains("Got 5001")
        );
        assert_eq!(parse_feed_query("limit=1", 5000).unwrap().limit, 1);
    }

    #[test]
    fn time_bounds_become_a_half_open_microsecond_interval() {
        let q = parse_feed_query(
            "created_at.gte=2026-01-01T00:00:00Z&created_at.lt=2026-01-02T00:00:00%2B01:00",
            5000,
        )
        .unwrap();
        assert_eq!(q.from, Some(micros("2026-01-01T00:00:00Z")));
        assert_eq!(q.until, Some(micros("2026-01-01T23:00:00Z")));
        let q = parse_feed_query(
            "created_at.gt=2026-01-01T00:00:00.000001Z&created_at.lte=2026-01-01T00:00:05Z",
            5000,
        )
        .unwrap();
        assert_eq!(q.from, Some(micros("2026-01-01T00:00:00.000002Z")));
        assert_eq!(q.until, Some(micros("2026-01-01T00:00:05.000001Z")));
        // Sub-microsecond bounds round outward only as far as they must.
        let q = parse_feed_query("created_at.gte=2026-01-01T00:00:00.0000005Z&created_at.lt=2026-01-01T00:00:00.0000015Z", 5000).unwrap();
        assert_eq!(q.from, Some(micros("2026-01-01T00:00:00.000001Z")));
        assert_eq!(q.until, Some(micros("2026-01-01T00:00:00.000002Z")));
        // Several bounds of one side: the tightest wins.
        let q = parse_feed_query(
            "created_at.gte=2026-01-01T00:00:00Z&created_at.gt=2026-01-03T00:00:00Z",
            5000,
        )
        .unwrap();
        assert_eq!(q.from, Some(micros("2026-01-03T00:00:00.000001Z")));
    }

    #[test]
    fn bad_times_name_the_parameter_and_echo_the_value() {
        let e = parse_feed_query("created_at.gte=yesterday", 5000).unwrap_err();
        assert!(
            e.contains("`created_at.gte`") && e.contains("'yesterday'"),
            "{e}"
        );
        let e = parse_feed_query("created_at.lt=2026-01-01", 5000).unwrap_err();
        assert!(e.contains("`created_at.lt`"), "{e}");
        let e = parse_feed_query("created_at.lte=2026-01-01T00:00:00", 5000).unwrap_err();
        assert!(e.contains("offset"), "{e}");
        // An unencoded '+' is a space.
        let e = parse_feed_query("created_at.gt=2026-01-01T00:00:00+01:00", 5000).unwrap_err();
        assert!(e.contains("%2B"), "{e}");
    }

    #[test]
    fn exclusive_parameters() {
        assert!(
            parse_feed_query("after_id=a&before_id=b", 5000)
                .unwrap_err()
                .contains("after_id")
        );
        assert!(
            parse_feed_query("activity_types[]=a&exclude_activity_types[]=b", 5000)
                .unwrap_err()
                .contains("exclude_activity_types[]")
        );
        assert!(
            parse_feed_query("order=newest", 5000)
                .unwrap_err()
                .contains("'newest'")
        );
    }
}
