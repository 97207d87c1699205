//! A sink's format: how a journal row becomes the payload a destination
//! sends. The store hands out rows ([`JournalRow`]); rendering them (the
//! raw activity, raw+claudit, the OCSF event) is the sinks' business.

use std::sync::Arc;

use crate::ocsf::Mapper;
use crate::sinks::settings::{Format, SinkConfig};
use crate::store::{Columns, FindingForm, JournalRow, RowRenderer};

/// The form a sink reads journal records in (its `format`).
#[derive(Debug, Clone)]
pub enum Payload {
    /// The activity as received.
    Raw,
    /// The OCSF event, rendered by this mapper unless the row stores one.
    Ocsf(Arc<Mapper>),
    /// The activity as received plus a `claudit` object with its
    /// directory context (from this mapper's directory), when it has one.
    RawWithContext(Arc<Mapper>),
    /// Findings (the findings table), in the form the detection task
    /// journaled them in: the OCSF Detection Finding for an OCSF sink, the
    /// plain JSON finding for a raw one.
    Findings(FindingForm),
    /// The directory stream's inventory entries, in the form the snapshot
    /// task journaled them in: the OCSF User Inventory Info event for an
    /// OCSF sink, the plain JSON record (`claudit.directory`) for a raw one.
    Directory(FindingForm),
}

impl Payload {
    /// The payload form of a sink: its `format`, for its activities or,
    /// for its findings stream (`<sink>.findings`), its findings, and for
    /// its directory stream (`<sink>.directory`), the inventory entries.
    pub fn of(sink: &SinkConfig, mapper: &Arc<Mapper>) -> Payload {
        let derived = match sink.format {
            Format::Ocsf => FindingForm::Ocsf,
            Format::Raw | Format::RawWithContext => FindingForm::Plain,
        };
        if sink.is_findings_stream() {
            return Payload::Findings(derived);
        }
        if sink.is_directory_stream() {
            return Payload::Directory(derived);
        }
        Payload::of_format(sink.format, mapper)
    }

    /// The payload form of activities in `format`.
    pub fn of_format(format: Format, mapper: &Arc<Mapper>) -> Payload {
        match format {
            Format::Raw => Payload::Raw,
            Format::Ocsf => Payload::Ocsf(mapper.clone()),
            Format::RawWithContext => Payload::RawWithContext(mapper.clone()),
        }
    }
}

impl RowRenderer for Payload {
    fn columns(&self) -> Columns {
        match self {
            Payload::Raw => Columns::Raw,
            Payload::RawWithContext(_) => Columns::RawAndOrigin,
            Payload::Ocsf(_) => Columns::All,
            Payload::Findings(form) => Columns::Findings(*form),
            Payload::Directory(form) => Columns::Directory(*form),
        }
    }

    fn render(&self, row: &JournalRow<'_>) -> String {
        match self {
            Payload::Raw | Payload::Findings(_) | Payload::Directory(_) => row.raw.to_string(),
            Payload::RawWithContext(mapper) => crate::directory::enrich::raw_with_context(
                mapper.directory().map(|d| &**d),
                row.raw,
                row.created_at_ms,
                (row.source, row.seq),
            ),
            Payload::Ocsf(mapper) => {
                if !row.stored_ocsf.is_empty() {
                    return row.stored_ocsf.to_string();
                }
                mapper.render_journaled_row(
                    row.raw,
                    row.context,
                    row.created_at_ms,
                    row.journaled_at_ms,
                    Some((row.source, row.seq)),
                )
            }
        }
    }
}
