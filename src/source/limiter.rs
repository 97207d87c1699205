//! Rate limiter (placeholder).
