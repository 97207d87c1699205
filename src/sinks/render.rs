//! A sink's format: how a journal row becomes the payload a destination
//! sends. The store hands out rows ([`JournalRow`]); rendering them (the
//! raw activity, raw+claudit, the OCSF event) is the sinks' business.

use std::sync::Arc;

use crate::ocsf::Mapper;
use crate::sinks::settings::Format;
use crate::store::{Columns, JournalRow, RowRenderer};

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
}

impl Payload {
    /// The payload form of a sink's `format`.
    pub fn of(format: Format, mapper: &Arc<Mapper>) -> Payload {
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
        }
    }

    fn render(&self, row: &JournalRow<'_>) -> String {
        match self {
            Payload::Raw => row.raw.to_string(),
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
