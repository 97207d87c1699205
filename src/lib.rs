//! claudit: pulls the Anthropic Compliance API activity feed into a durable
//! SQLite journal, normalizes it to OCSF, enriches it, and delivers it to
//! SIEMs and files. `main.rs` is the entry point; `daemon` wires the parts.

pub mod archive;
pub mod backfill;
pub mod body_limit;
pub mod catalogue;
pub mod check;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod detect;
pub mod directory;
pub mod directory_stream;
pub mod dlq;
pub mod enrich;
pub mod fdlimit;
pub mod health;
pub mod healthcheck;
pub mod http_text;
pub mod metrics;
pub mod model;
pub mod ocsf;
pub mod redact;
pub mod server;
pub mod service;
pub mod sim;
pub mod sinks;
pub mod source;
pub mod status;
pub mod store;
pub mod telemetry;
pub(crate) mod toml_reader;
pub mod wake;
pub mod watchdog;
