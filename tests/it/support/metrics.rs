//! Series read from the Prometheus text `/metrics` serves
//! (`Metrics::encode`).

/// The value of `claudit_sink_layout_fields_total{sink, field, action}`
/// (how often a destination's layout moved, stringified, dropped or
/// carried a field); fails naming the series and showing `text` when the
/// series is absent.
pub fn layout_field_count(text: &str, sink: &str, field: &str, action: &str) -> u64 {
    let series = format!(
        "claudit_sink_layout_fields_total{{sink=\"{sink}\",field=\"{field}\",action=\"{action}\"}} "
    );
    let value = text
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .unwrap_or_else(|| panic!("{series} not in\n{text}"));
    value
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{series}{value}: not a count ({e})"))
}
