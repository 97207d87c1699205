//! Set-up shared by the integration tests.

pub mod config;
pub mod daemon;
pub mod elasticsearch;
pub mod journal_fixture;
pub mod mmdb;
pub mod process_env;
pub mod sinks;
pub mod wait;
