//! The RFC 5424 message of a record and its octet-counted frame (RFC 6587
//! §3.4.1), and the rules of the header fields the settings are checked
//! against.

use super::SyslogConfig;
use crate::model::BatchRecord;

/// The RFC 5424 field limits (§6): printable US-ASCII, at most this long.
pub const MAX_HOSTNAME: usize = 255;
pub const MAX_APP_NAME: usize = 48;
pub const MAX_SD_NAME: usize = 32;

/// The smallest message every receiver must accept (RFC 5424 §6.1).
pub const MIN_MESSAGE_BYTES: usize = 480;

/// The syslog facility codes of RFC 5424 §6.2.1, by the names collectors use.
pub const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("ntp", 12),
    ("audit", 13),
    ("alert", 14),
    ("clock", 15),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// The severities of RFC 5424 §6.2.1.
pub const SEVERITIES: &[(&str, u8)] = &[
    ("emerg", 0),
    ("alert", 1),
    ("crit", 2),
    ("err", 3),
    ("warning", 4),
    ("notice", 5),
    ("info", 6),
    ("debug", 7),
];

/// What is wrong with an RFC 5424 header field (`PRINTUSASCII`, 1 to `max`
/// characters), or `None`.
pub fn header_field_problem(value: &str, max: usize) -> Option<String> {
    if value.is_empty() {
        return Some("is empty".to_string());
    }
    if value.len() > max {
        return Some(format!("is longer than {max} characters"));
    }
    if let Some(c) = value.chars().find(|c| !('!'..='~').contains(c)) {
        return Some(format!(
            "contains {c:?}; RFC 5424 allows only printable ASCII without spaces here"
        ));
    }
    None
}

/// What is wrong with an SD-ID (`name` or `name@<enterprise number>`), or `None`.
pub fn sd_id_problem(value: &str) -> Option<String> {
    if let Some(problem) = header_field_problem(value, MAX_SD_NAME) {
        return Some(problem);
    }
    if let Some(c) = value.chars().find(|c| matches!(c, '=' | ']' | '"')) {
        return Some(format!("contains {c:?}, which an SD-ID cannot hold"));
    }
    match value.split_once('@') {
        None => Some(
            "has no @<enterprise number>: names without one are reserved for IANA; write e.g. \
             \"claudit@32473\" with your organization's enterprise number"
                .to_string(),
        ),
        Some((name, number)) => {
            if name.is_empty() || name.contains('@') {
                Some("must be name@<enterprise number>".to_string())
            } else if number.is_empty()
                || !number
                    .split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            {
                Some(format!(
                    "{number:?} after @ is not an enterprise number (digits, e.g. 32473)"
                ))
            } else {
                None
            }
        }
    }
}

/// Writes the RFC 5424 messages of one sink.
#[derive(Debug, Clone)]
pub struct Formatter {
    /// `<PRI>1`
    head: String,
    /// ` HOSTNAME APP-NAME - MSGID `
    middle: String,
    sd_id: Option<String>,
}

impl Formatter {
    /// `msgid` names the body's shape (`ocsf`, `raw`).
    pub fn new(config: &SyslogConfig, msgid: &str) -> Formatter {
        let pri = u16::from(config.facility) * 8 + u16::from(config.severity);
        let hostname = config.hostname.clone().unwrap_or_else(local_hostname);
        Formatter {
            head: format!("<{pri}>1"),
            middle: format!(" {hostname} {} - {msgid} ", config.app_name),
            sd_id: config.structured_data_id.clone(),
        }
    }

    /// The SYSLOG-MSG of one record.
    pub fn message(&self, record: &BatchRecord) -> Vec<u8> {
        let mut out = Vec::with_capacity(record.payload.len() + 160);
        out.extend_from_slice(self.head.as_bytes());
        out.push(b' ');
        out.extend_from_slice(timestamp(record.created_at_ms).as_bytes());
        out.extend_from_slice(self.middle.as_bytes());
        match &self.sd_id {
            None => out.push(b'-'),
            Some(sd_id) => {
                out.push(b'[');
                out.extend_from_slice(sd_id.as_bytes());
                out.extend_from_slice(b" id=\"");
                out.extend_from_slice(escape_sd_value(&record.activity_id).as_bytes());
                out.extend_from_slice(b"\" seq=\"");
                out.extend_from_slice(record.seq.to_string().as_bytes());
                out.extend_from_slice(b"\"]");
            }
        }
        out.push(b' ');
        out.extend_from_slice(record.payload.as_bytes());
        out
    }
}

/// This machine's name as RFC 5424 allows it, or the NILVALUE.
fn local_hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = name.trim();
    match header_field_problem(name, MAX_HOSTNAME) {
        None => name.to_string(),
        Some(_) => "-".to_string(),
    }
}

/// An RFC 3339 timestamp in UTC with milliseconds, or the NILVALUE for a
/// time chrono cannot represent.
fn timestamp(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => "-".to_string(),
    }
}

/// An SD-PARAM value: `"`, `\` and `]` escaped with a backslash (RFC 5424
/// §6.3.3); everything else, UTF-8 included, as it is.
pub fn escape_sd_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Appends one octet-counted frame, `MSG-LEN SP SYSLOG-MSG` (RFC 6587
/// §3.4.1; RFC 5425 §4.3).
pub fn push_frame(out: &mut Vec<u8>, message: &[u8]) {
    out.extend_from_slice(message.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(message);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::syslog::tests::{config, record};

    #[test]
    fn a_message_has_every_rfc5424_field() {
        let f = Formatter::new(&config(), "ocsf");
        let msg = f.message(&record(42, "activity_01", r#"{"a":1}"#));
        assert_eq!(
            String::from_utf8(msg).unwrap(),
            r#"<110>1 2025-05-10T08:00:00.007Z collector-01 claudit - ocsf [claudit@32473 id="activity_01" seq="42"] {"a":1}"#
        );
    }

    #[test]
    fn without_structured_data_the_field_is_the_nilvalue() {
        let mut c = config();
        c.structured_data_id = None;
        c.facility = 16;
        c.severity = 4;
        let msg = Formatter::new(&c, "raw").message(&record(1, "x", "{}"));
        assert_eq!(
            String::from_utf8(msg).unwrap(),
            "<132>1 2025-05-10T08:00:00.007Z collector-01 claudit - raw - {}"
        );
    }

    #[test]
    fn a_time_out_of_range_is_the_nilvalue() {
        assert_eq!(timestamp(i64::MAX), "-");
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn sd_param_values_escape_quote_backslash_and_bracket() {
        assert_eq!(escape_sd_value(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
        assert_eq!(escape_sd_value("é=[x] y"), r#"é=[x\] y"#);
        let f = Formatter::new(&config(), "ocsf");
        let msg = f.message(&record(7, r#"evil"] [x@1 y="z"#, "{}"));
        assert_eq!(
            String::from_utf8(msg).unwrap(),
            r#"<110>1 2025-05-10T08:00:00.007Z collector-01 claudit - ocsf [claudit@32473 id="evil\"\] [x@1 y=\"z" seq="7"] {}"#
        );
    }

    #[test]
    fn frames_are_octet_counted_in_bytes() {
        let mut out = Vec::new();
        push_frame(&mut out, "héllo\nworld".as_bytes());
        push_frame(&mut out, b"");
        assert_eq!(out, "12 héllo\nworld0 ".as_bytes());
    }

    #[test]
    fn header_fields_and_sd_ids_follow_rfc5424() {
        assert_eq!(header_field_problem("claudit", 48), None);
        assert!(header_field_problem("two words", 48).is_some());
        assert!(header_field_problem(&"a".repeat(49), 48).is_some());
        assert!(header_field_problem("", 48).is_some());
        assert!(header_field_problem("é", 48).is_some());
        assert_eq!(sd_id_problem("claudit@32473"), None);
        assert_eq!(sd_id_problem("audit@1.2.3"), None);
        assert!(sd_id_problem("claudit").is_some());
        assert!(sd_id_problem("claudit@x").is_some());
        assert!(sd_id_problem("a=b@1").is_some());
        assert!(sd_id_problem(&format!("{}@1", "n".repeat(31))).is_some());
    }
}
