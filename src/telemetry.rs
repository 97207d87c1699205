//! Logging: structured key/value logs with tracing; JSON when stderr is not a
//! terminal (journald, Kubernetes), human-readable on a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal, text when it is.
    Auto,
    Json,
    Text,
}

/// Installs the global subscriber. The filter comes from `RUST_LOG`
/// (e.g. `info`, `claudit=debug`), default `info`. Returns whether logs are
/// JSON, so that a fatal error is one JSON line too.
pub fn init(format: LogFormat) -> bool {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: a second call (tests, demo inside another command) is harmless.
    let _ = if json {
        builder.json().event_format(FlatJson::default()).try_init()
    } else {
        builder.with_target(false).try_init()
    };
    json
}

/// JSON lines with the fields of the spans an event is in (`sink = ...`,
/// `source = ...` of a task's span) after the event's own, at the top
/// level: `{"timestamp":..,"level":..,"message":..,"sink":"siem"}`. A field
/// of the event wins over a span's of the same name.
struct FlatJson {
    inner: tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Json>,
}

impl Default for FlatJson {
    fn default() -> Self {
        FlatJson {
            inner: tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false),
        }
    }
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for FlatJson
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use serde_json::Value;
        let mut line = String::new();
        self.inner.format_event(
            ctx,
            tracing_subscriber::fmt::format::Writer::new(&mut line),
            event,
        )?;
        let line = line.trim_end();
        let (Some(scope), Ok(Value::Object(mut seen)), Some(body)) = (
            ctx.event_scope(),
            serde_json::from_str::<Value>(line),
            line.strip_suffix('}'),
        ) else {
            return writeln!(writer, "{line}");
        };
        // The spans' fields go after the event's own, which keep their
        // place and win over a span's field of the same name.
        let mut added = String::new();
        for span in scope.from_root() {
            let extensions = span.extensions();
            let Some(formatted) = extensions.get::<tracing_subscriber::fmt::FormattedFields<N>>()
            else {
                continue;
            };
            let Ok(Value::Object(own)) = serde_json::from_str::<Value>(formatted) else {
                continue;
            };
            for (key, value) in own {
                if !seen.contains_key(&key) {
                    added.push(',');
                    added.push_str(&Value::String(key.clone()).to_string());
                    added.push(':');
                    added.push_str(&value.to_string());
                    seen.insert(key, value);
                }
            }
        }
        writeln!(writer, "{body}{added}}}")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A line logged inside a task's span carries the span's fields at the
    /// top level, as if written on the line itself; the line's own field
    /// of the same name wins.
    #[test]
    fn json_lines_carry_the_fields_of_their_spans() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .json()
            .event_format(FlatJson::default())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("sink", sink = "siem");
            let _entered = span.enter();
            tracing::warn!(error = "HTTP 503", "delivery failed");
            tracing::info!(sink = "other", "own field");
        });
        tracing::subscriber::with_default(
            tracing_subscriber::fmt()
                .with_writer({
                    let writer = buffer.clone();
                    move || writer.clone()
                })
                .json()
                .event_format(FlatJson::default())
                .finish(),
            || tracing::info!("outside any span"),
        );
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0]["sink"], "siem");
        assert_eq!(lines[0]["error"], "HTTP 503");
        assert_eq!(lines[0]["message"], "delivery failed");
        assert_eq!(lines[0]["level"], "WARN");
        assert_eq!(lines[1]["sink"], "other");
        assert_eq!(lines[2]["message"], "outside any span");
        assert!(lines[2].get("sink").is_none());
        // The event's own fields keep their order; the span's come last.
        let first = text.lines().next().unwrap();
        assert!(first.starts_with(r#"{"timestamp":"#), "{first}");
        assert!(first.ends_with(r#","sink":"siem"}"#), "{first}");
    }
}
