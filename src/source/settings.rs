//! `[[sources]]`: one Compliance API feed, its key, its pace and its
//! windows (read by `config/schema.rs`, validated there with the rest of
//! the file).

use std::time::Duration;

use secrecy::SecretString;

use crate::directory::settings::DirectoryConfig;

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    /// e.g. `https://api.anthropic.com` (no trailing slash).
    pub base_url: String,
    pub api_key: SecretString,
    /// Sent as `anthropic-version`.
    pub anthropic_version: String,
    /// This daemon's share of the 600/min parent-organization budget.
    pub requests_per_minute: u32,
    /// Steady-state window length.
    pub window: Duration,
    /// A catch-up or backfill window whose first page shows it would need
    /// more pages than this is split (windows are sized by what they hold).
    pub max_window_pages: u32,
    /// `end` of a window never comes closer to now than this.
    pub settle_lag: Duration,
    /// How far behind the watermark the late-arrival sweep re-reads.
    pub sweep_horizon: Duration,
    /// How often the sweep runs.
    pub sweep_interval: Duration,
    /// First start reads back this far.
    pub initial_lookback: Duration,
    /// How often to look for a new window once caught up.
    pub poll_interval: Duration,
    /// `limit` per page, 1..=5000.
    pub page_size: u32,
    pub activity_types: Vec<String>,
    pub exclude_activity_types: Vec<String>,
    pub organization_ids: Vec<String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// No-data watchdog: warn (and `claudit_source_no_data` = 1) when the
    /// source has journaled nothing for this long.
    pub no_data_after: Duration,
    /// `[sources.directory]`: who the actors are (`src/directory/`).
    pub directory: DirectoryConfig,
}
