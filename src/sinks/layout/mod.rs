//! Vendor layouts: the exact shape each SIEM vendor's own Claude Compliance
//! content expects (`spec/vendor-content.md`), chosen per sink with
//! `layout = "..."`. One file per vendor:
//!
//! | layout | sink | what the destination receives |
//! |---|---|---|
//! | `splunk_app` | `splunk_hec` | the flattened object the Splunk add-on indexes, sourcetype `anthropic:compliance:activity` ([`splunk_app`]) |
//! | `sentinel_bluevoyant` | `sentinel` | the raw activity with `TimeGenerated`, typed to the BlueVoyant DCR's columns ([`sentinel_bluevoyant`]) |
//! | `elastic_integration` | `elasticsearch` | the raw activity as a string in `message` of `logs-anthropic.audit-*` ([`elastic_integration`]) |
//!
//! Every layout is computed from the raw activity, so a sink with a layout
//! reads `format = "raw"` (the default when a layout is set); any other
//! format is refused by the configuration check. Where a vendor's schema
//! cannot hold a field as the API sent it, the layout says so
//! ([`FieldReport`]): a metric with the sink, the field and what was done,
//! and one log line the first time.

pub mod elastic_integration;
pub mod sentinel_bluevoyant;
pub mod splunk_app;

use std::collections::HashSet;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tracing::warn;

use crate::metrics::FieldLabels;
use crate::sinks::settings::{Format, SinkKind};

/// A vendor layout of a sink (`layout = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `splunk_hec`: the Splunk add-on `TA-anthropic_claude_enterprise`.
    SplunkApp,
    /// `sentinel`: BlueVoyant's "Anthropic ClaudeCompliance" solution.
    SentinelBlueVoyant,
    /// `elasticsearch`: Elastic's `anthropic` integration (`audit` data stream).
    ElasticIntegration,
}

impl Layout {
    /// The value of the `layout` key.
    pub fn name(self) -> &'static str {
        match self {
            Layout::SplunkApp => "splunk_app",
            Layout::SentinelBlueVoyant => "sentinel_bluevoyant",
            Layout::ElasticIntegration => "elastic_integration",
        }
    }

    /// The layout `text` names for a sink of type `sink_type`, or the
    /// problem and its fix.
    pub fn parse(sink_type: &str, text: &str) -> Result<Layout, String> {
        let own = match sink_type {
            "splunk_hec" => Layout::SplunkApp,
            "sentinel" => Layout::SentinelBlueVoyant,
            _ => Layout::ElasticIntegration,
        };
        if text == own.name() {
            return Ok(own);
        }
        Err(format!(
            "unknown layout {text:?} for a {sink_type} sink; write layout = \"{}\" ({}), or \
             remove the key for claudit's own shape",
            own.name(),
            own.vendor_content()
        ))
    }

    /// What the layout is for, in words.
    fn vendor_content(self) -> &'static str {
        match self {
            Layout::SplunkApp => "the Splunk add-on's dashboards and searches",
            Layout::SentinelBlueVoyant => {
                "BlueVoyant's Sentinel solution: its DCR, table and ASIM parser"
            }
            Layout::ElasticIntegration => {
                "Elastic's anthropic integration: its pipeline, dashboards and rules"
            }
        }
    }

    /// A layout is computed from the raw activity: `format` must be `raw`.
    pub fn check_format(self, format: Format) -> Result<(), String> {
        let given = match format {
            Format::Raw => return Ok(()),
            Format::Ocsf => "ocsf",
            Format::RawWithContext => "raw+claudit",
        };
        Err(format!(
            "format = \"{given}\" does not go with layout = \"{}\": {} read the activity as the \
             API sends it; remove format (a layout sends the raw activity), or remove layout to \
             send {given}",
            self.name(),
            self.vendor_content()
        ))
    }
}

/// The layout of a sink, if it has one.
pub fn of(kind: &SinkKind) -> Option<Layout> {
    kind.settings().layout()
}

/// At most this many distinct (field, action) label pairs per sink; the
/// rest are counted under the field name `(other)` (field names come from
/// the network, so the label set must stay bounded).
pub const MAX_REPORTED_FIELDS: usize = 256;

/// What a layout did to one field of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldAction {
    /// A number or boolean sent as text to a string column (lossless).
    Stringified,
    /// A whole number written as `1.0` sent as an integer (lossless).
    ToInteger,
    /// A value the column's type cannot hold: moved, unchanged, to the
    /// layout's overflow object.
    Moved,
    /// A field the vendor's schema does not declare: moved, unchanged, to
    /// the layout's overflow object.
    Undeclared,
    /// A field the vendor's object has no key for: sent, unchanged, in the
    /// layout's extra key (`splunk_app`: `claudit_unmapped`).
    Carried,
    /// A field the vendor's object has no key for and that could not be
    /// carried (`splunk_app`: the event would pass the sourcetype's
    /// `TRUNCATE`): not in the event sent; the journal and the archive keep it.
    NotInLayout,
}

impl FieldAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldAction::Stringified => "stringified",
            FieldAction::ToInteger => "to_integer",
            FieldAction::Moved => "moved",
            FieldAction::Undeclared => "undeclared",
            FieldAction::Carried => "carried",
            FieldAction::NotInLayout => "not_in_layout",
        }
    }
}

/// Reports what a layout changed: `claudit_sink_layout_fields_total{sink,
/// field, action}` counts events, and the first time a (field, action)
/// pair is seen a warning names it.
pub struct FieldReport {
    sink: String,
    family: Family<FieldLabels, Counter>,
    seen: HashSet<(String, FieldAction)>,
    /// The highest journal seq whose fields were reported: a record sent
    /// again (a retry, a batch grown since) is not counted twice.
    reported_through: i64,
}

impl FieldReport {
    pub fn new(sink: &str, family: Family<FieldLabels, Counter>) -> FieldReport {
        FieldReport {
            sink: sink.to_string(),
            family,
            seen: HashSet::new(),
            reported_through: i64::MIN,
        }
    }

    /// A report nobody scrapes (replay, tests).
    pub fn unscraped(sink: &str) -> FieldReport {
        FieldReport::new(sink, Family::default())
    }

    /// This report for the fields of the record `seq` the first time that
    /// record is encoded, `None` after (records are encoded in seq order).
    pub fn first_time(&mut self, seq: i64) -> Option<&mut FieldReport> {
        if seq <= self.reported_through {
            return None;
        }
        self.reported_through = seq;
        Some(self)
    }

    /// Records that `action` was done to `field` in one event.
    pub fn record(&mut self, field: &str, action: FieldAction, layout: Layout) {
        let key = (field.to_string(), action);
        let label = if self.seen.contains(&key) {
            field
        } else if self.seen.len() < MAX_REPORTED_FIELDS {
            warn!(sink = %self.sink, layout = layout.name(), field = %field, action = action.as_str(),
                "{}", explain(action));
            self.seen.insert(key);
            field
        } else {
            "(other)"
        };
        self.family
            .get_or_create(&FieldLabels {
                sink: self.sink.clone(),
                field: label.to_string(),
                action: action.as_str().to_string(),
            })
            .inc();
    }

    /// How many events had `field` changed by `action` (tests).
    pub fn count(&self, field: &str, action: FieldAction) -> u64 {
        self.family
            .get_or_create(&FieldLabels {
                sink: self.sink.clone(),
                field: field.to_string(),
                action: action.as_str().to_string(),
            })
            .get()
    }
}

fn explain(action: FieldAction) -> &'static str {
    match action {
        FieldAction::Stringified => {
            "the vendor's schema declares this field as a string and the API sent another type: \
             sent as its JSON text (nothing lost); counted in claudit_sink_layout_fields_total"
        }
        FieldAction::ToInteger => {
            "a whole number written with a fraction was sent as an integer for the vendor's \
             integer column (nothing lost); counted in claudit_sink_layout_fields_total"
        }
        FieldAction::Moved => {
            "the vendor's column type cannot hold this value as the API sent it: the column is \
             left empty and the value is kept, unchanged, in the layout's overflow object; \
             counted in claudit_sink_layout_fields_total"
        }
        FieldAction::Undeclared => {
            "the vendor's schema does not declare this field (its DCR would drop it): the value \
             is kept, unchanged, in the layout's overflow object; counted in \
             claudit_sink_layout_fields_total"
        }
        FieldAction::Carried => {
            "the vendor's object has no key for this field (the vendor's own collector drops \
             it): it is sent unchanged under claudit_unmapped, which the vendor's searches and \
             dashboards do not read (search it as claudit_unmapped.<field>); counted in \
             claudit_sink_layout_fields_total"
        }
        FieldAction::NotInLayout => {
            "the vendor's object has no key for this field and carrying it under \
             claudit_unmapped would make the event longer than the sourcetype's TRUNCATE of \
             65536 bytes: the event is sent without it (the journal and the archive keep it); \
             to have every field in Splunk, add a second splunk_hec sink with format = \"raw\" \
             and its own sourcetype; counted in claudit_sink_layout_fields_total"
        }
    }
}

/// Python's truthiness of a JSON value (what the vendors' `a or b` reads).
pub(crate) fn truthy(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sink_type_takes_only_its_own_layout() {
        assert_eq!(
            Layout::parse("splunk_hec", "splunk_app"),
            Ok(Layout::SplunkApp)
        );
        assert_eq!(
            Layout::parse("sentinel", "sentinel_bluevoyant"),
            Ok(Layout::SentinelBlueVoyant)
        );
        assert_eq!(
            Layout::parse("elasticsearch", "elastic_integration"),
            Ok(Layout::ElasticIntegration)
        );
        let err = Layout::parse("splunk_hec", "elastic_integration").unwrap_err();
        assert!(err.contains("layout = \"splunk_app\""), "{err}");
    }

    #[test]
    fn a_layout_needs_the_raw_activity() {
        for layout in [
            Layout::SplunkApp,
            Layout::SentinelBlueVoyant,
            Layout::ElasticIntegration,
        ] {
            assert!(layout.check_format(Format::Raw).is_ok());
            let err = layout.check_format(Format::Ocsf).unwrap_err();
            assert!(err.contains("remove format"), "{err}");
            assert!(layout.check_format(Format::RawWithContext).is_err());
        }
    }

    #[test]
    fn the_field_report_counts_every_event_and_bounds_its_labels() {
        let mut report = FieldReport::unscraped("s");
        report.record("limit_usd", FieldAction::Moved, Layout::SentinelBlueVoyant);
        report.record("limit_usd", FieldAction::Moved, Layout::SentinelBlueVoyant);
        assert_eq!(report.count("limit_usd", FieldAction::Moved), 2);
        for i in 0..MAX_REPORTED_FIELDS + 10 {
            report.record(
                &format!("f{i}"),
                FieldAction::Undeclared,
                Layout::SentinelBlueVoyant,
            );
        }
        assert_eq!(report.seen.len(), MAX_REPORTED_FIELDS);
        assert!(report.count("(other)", FieldAction::Undeclared) >= 10);
    }

    #[test]
    fn a_record_is_reported_the_first_time_it_is_encoded_only() {
        let mut report = FieldReport::unscraped("s");
        assert!(report.first_time(1).is_some());
        assert!(report.first_time(2).is_some());
        assert!(report.first_time(2).is_none(), "a retry");
        assert!(report.first_time(1).is_none(), "a retry from the start");
        assert!(report.first_time(3).is_some(), "a batch grown since");
    }
}
