//! The settings of `type = "syslog"`: its row in the registry, what opens
//! its destination, and the reader of its keys.

use std::time::Duration;

use super::{SyslogConfig, SyslogSink};
use crate::sinks::contract::{BoxFuture, Destination};
use crate::sinks::registry::{OpenContext, SinkSettings, SinkType};
use crate::sinks::settings::{Format, SinkConfig};

/// `type = "syslog"` in the registry (`sinks::registry`). One write of
/// frames per batch, acknowledged by the receiver's TCP before the cursor
/// moves.
pub const TYPE: SinkType = SinkType {
    name: "syslog",
    batch: (1000, 1_000_000, Duration::from_secs(1)),
    raw_only: false,
    read: keys::read_syslog_sink,
};

// The client key stays in its file; nothing of it reaches a message, so
// there is no secret to add to the redaction.
impl SinkSettings for SyslogConfig {
    fn open<'a>(
        &'a self,
        cx: OpenContext<'a>,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn Destination>>> {
        Box::pin(async move {
            let sink = SyslogSink::new(self, msgid(cx.sink))
                .map_err(|e| anyhow::anyhow!("sink {}: {e:#}", cx.sink.name))?;
            Ok(Box::new(sink) as Box<dyn Destination>)
        })
    }
}

/// The syslog MSGID of a sink's events: the shape of the body (a findings
/// stream's: `ocsf-finding`, the OCSF Detection Finding, or `finding`, the
/// plain JSON finding; a directory stream's: `ocsf-inventory`, the OCSF
/// User Inventory Info, or `directory`, the plain JSON record).
fn msgid(sink: &SinkConfig) -> &'static str {
    if sink.is_directory_stream() {
        return match sink.format {
            Format::Ocsf => "ocsf-inventory",
            Format::Raw | Format::RawWithContext => "directory",
        };
    }
    match (sink.is_findings_stream(), sink.format) {
        (true, Format::Ocsf) => "ocsf-finding",
        (true, Format::Raw | Format::RawWithContext) => "finding",
        (false, Format::Ocsf) => "ocsf",
        (false, Format::Raw) => "raw",
        (false, Format::RawWithContext) => "raw+claudit",
    }
}

/// The keys of `type = "syslog"`: every problem is reported, with its line
/// and the fix.
mod keys {
    use std::time::Duration;

    use crate::sinks::settings::SinkKind;
    use crate::toml_reader::keys::*;
    use crate::toml_reader::{Ctx, Got, Table};

    /// The keys of `type = "syslog"`.
    pub(super) fn read_syslog_sink(cx: &mut Ctx, t: &mut Table) -> Option<SinkKind> {
        use crate::sinks::syslog::{self, SyslogConfig, TlsFiles, Transport};
        let address = t
            .required_text(cx, "address", "\"collector.example.com:6514\"")
            .and_then(|text| match check_syslog_address(&text.value) {
                Ok(host) => Some((text.value.trim().to_string(), host)),
                Err(msg) => {
                    text_error(cx, t, "address", &text, msg);
                    None
                }
            });
        let transport = match t.text(cx, "transport") {
            Got::Absent => Some(Transport::Tls),
            Got::Invalid => None,
            Got::Value(text) => match text.value.as_str() {
                "tls" => Some(Transport::Tls),
                "tcp" => Some(Transport::Tcp),
                _ => {
                    let msg = format!(
                        "unknown transport {}; write transport = \"tls\" (RFC 5425, the \
                         default) or transport = \"tcp\" (plain, readable on the network)",
                        text.shown()
                    );
                    text_error(cx, t, "transport", &text, msg);
                    None
                }
            },
        };
        let path = |cx: &mut Ctx, t: &mut Table, key: &str| match t.path(cx, key) {
            Got::Value(p) => Some(Some(p)),
            Got::Absent => Some(None),
            Got::Invalid => None,
        };
        let ca_file = path(cx, t, "tls_ca_file");
        let client_cert_file = path(cx, t, "tls_client_cert_file");
        let client_key_file = path(cx, t, "tls_client_key_file");
        let server_name = optional_label(cx, t, "tls_server_name");
        let tls = match (ca_file, client_cert_file, client_key_file, server_name) {
            (Some(ca_file), Some(client_cert_file), Some(client_key_file), Some(server_name)) => {
                let mut ok = true;
                if client_cert_file.is_some() != client_key_file.is_some() {
                    let key = if client_cert_file.is_some() {
                        "tls_client_key_file"
                    } else {
                        "tls_client_cert_file"
                    };
                    let line = t.line_of_key(cx, "tls_client_cert_file");
                    let msg = "missing: tls_client_cert_file and tls_client_key_file go \
                               together (the certificate chain and its private key, PEM)"
                        .to_string();
                    t_error(cx, t, key, line, msg);
                    ok = false;
                }
                let tls = TlsFiles {
                    ca_file,
                    client_cert_file,
                    client_key_file,
                    server_name,
                };
                let set = [
                    ("tls_ca_file", tls.ca_file.is_some()),
                    ("tls_client_cert_file", tls.client_cert_file.is_some()),
                    ("tls_client_key_file", tls.client_key_file.is_some()),
                    ("tls_server_name", tls.server_name.is_some()),
                ];
                if transport == Some(Transport::Tcp)
                    && let Some((key, _)) = set.iter().find(|(_, on)| *on)
                {
                    let line = t.line_of_key(cx, key);
                    let msg =
                        format!("{key} applies only to transport = \"tls\"; remove it or use TLS");
                    t_error(cx, t, key, line, msg);
                    ok = false;
                }
                ok.then_some(tls)
            }
            _ => None,
        };
        let facility = syslog_code(cx, t, "facility", syslog::FACILITIES, "audit");
        let severity = syslog_code(cx, t, "severity", syslog::SEVERITIES, "info");
        let hostname = optional_label(cx, t, "hostname").and_then(|h| match h {
            Some(name) => match syslog::header_field_problem(&name, syslog::MAX_HOSTNAME) {
                None => Some(Some(name)),
                Some(problem) => {
                    let line = t.line_of_key(cx, "hostname");
                    t_error(
                        cx,
                        t,
                        "hostname",
                        line,
                        format!("{problem}; write e.g. hostname = \"claudit-01\""),
                    );
                    None
                }
            },
            None => Some(None),
        });
        let app_name = optional_label(cx, t, "app_name").and_then(|a| {
            let name = a.unwrap_or_else(|| "claudit".to_string());
            match syslog::header_field_problem(&name, syslog::MAX_APP_NAME) {
                None => Some(name),
                Some(problem) => {
                    let line = t.line_of_key(cx, "app_name");
                    t_error(
                        cx,
                        t,
                        "app_name",
                        line,
                        format!("{problem}; write e.g. app_name = \"claudit\""),
                    );
                    None
                }
            }
        });
        let structured_data_id = match t.text(cx, "structured_data_id") {
            Got::Absent => Some(Some("claudit@32473".to_string())),
            Got::Invalid => None,
            Got::Value(text) if text.value.is_empty() => Some(None),
            Got::Value(text) => match syslog::sd_id_problem(&text.value) {
                None => Some(Some(text.value)),
                Some(problem) => {
                    let msg = format!(
                        "{problem}; write e.g. structured_data_id = \"claudit@32473\", or \"\" for \
                         no structured data"
                    );
                    text_error(cx, t, "structured_data_id", &text, msg);
                    None
                }
            },
        };
        let max_message_bytes = sized(
            cx,
            t,
            "max_message_bytes",
            8192,
            syslog::MIN_MESSAGE_BYTES as u64..=64 << 20,
        );
        let resend_window = sized(cx, t, "resend_window", 8 << 20, 0..=1 << 30);
        let connect_timeout =
            duration_at_least(cx, t, "connect_timeout", secs(10), Duration::from_millis(1));
        let write_timeout =
            duration_at_least(cx, t, "write_timeout", secs(30), Duration::from_millis(1));
        let (address, host) = address?;
        Some(SinkKind::new(SyslogConfig {
            address,
            host,
            transport: transport?,
            tls: tls?,
            facility: facility?,
            severity: severity?,
            hostname: hostname?,
            app_name: app_name?,
            structured_data_id: structured_data_id?,
            max_message_bytes: max_message_bytes? as usize,
            resend_window: resend_window? as usize,
            connect_timeout: connect_timeout?,
            write_timeout: write_timeout?,
        }))
    }

    /// `host:port` (`[v6]:port`) of a syslog collector: the host part, or
    /// what is wrong.
    fn check_syslog_address(value: &str) -> Result<String, String> {
        let fix = "write host:port, e.g. address = \"collector.example.com:6514\" (6514 is \
                   syslog over TLS, RFC 5425)";
        let value = value.trim();
        let Some((host, port)) = value.rsplit_once(':') else {
            return Err(format!("has no port; {fix}"));
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty()
            || host.contains(['/', ' '])
            || (host.contains(':') && !value.starts_with('['))
        {
            return Err(format!("is not a host and a port; {fix}"));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => Ok(host.to_string()),
            _ => Err(format!("{port:?} is not a port number; {fix}")),
        }
    }

    /// A facility or severity by its name, `default` when absent.
    fn syslog_code(
        cx: &mut Ctx,
        t: &mut Table,
        key: &str,
        names: &[(&str, u8)],
        default: &str,
    ) -> Option<u8> {
        let find = |name: &str| names.iter().find(|(n, _)| *n == name).map(|&(_, c)| c);
        match t.text(cx, key) {
            Got::Absent => find(default),
            Got::Invalid => None,
            Got::Value(text) => match find(&text.value) {
                Some(code) => Some(code),
                None => {
                    let valid: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                    let msg = format!(
                        "unknown {key} {}; write one of {} (e.g. {key} = \"{default}\")",
                        text.shown(),
                        valid.join(", ")
                    );
                    text_error(cx, t, key, &text, msg);
                    None
                }
            },
        }
    }
}
