//! The Compliance API source (to be written).
