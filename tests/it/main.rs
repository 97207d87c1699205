//! claudit's integration tests: one test binary (one link of claudit,
//! rusqlite, reqwest, object_store and axum instead of one per file), one
//! module per subject, and `support/` for the set-up they share.
//!
//! `cargo test --release --test it` runs them all; `cargo test --release
//! --test it sink_datadog::` one module.

mod support;

mod api_client;
mod architecture;
mod archive;
mod archive_s3;
mod backfill;
mod budget;
mod cli;
mod config;
mod deploy;
mod detect_cli;
mod detect_daemon;
mod detect_sim;
mod directory;
mod directory_stream;
mod dlq;
mod e2e;
mod enrich;
mod hostile_api;
mod ocsf;
mod ops;
mod ops_flood;
mod paging_faults;
mod service;
mod sim;
mod sink_datadog;
mod sink_elasticsearch;
mod sink_file;
mod sink_hostile_answer;
mod sink_independence;
mod sink_secrets;
mod sink_sentinel;
mod sink_splunk_hec;
mod sink_sumo;
mod sink_syslog;
mod sink_webhook;
mod source;
mod state_damage;
mod window_model;
