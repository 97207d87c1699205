//! The embedded Compliance API simulator (to be written).
