//! Sinks (to be written).
