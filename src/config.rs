//! Configuration: the TOML schema, `${VAR}` and `*_file` secret resolution,
//! and validation into the settings the rest of the daemon uses.
//!
//! Raw TOML is deserialized into `raw::*` structs (serde, deny_unknown_fields),
//! then validated into the types below. Every problem found is collected, so
//! `claudit check` lists them all at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from (for messages).
    pub file: PathBuf,
    pub state: StateConfig,
    pub sources: Vec<SourceConfig>,
    pub sinks: Vec<SinkConfig>,
    pub enrich: EnrichConfig,
    pub ocsf: OcsfConfig,
}

#[derive(Debug, Clone)]
pub struct StateConfig {
    /// SQLite state database.
    pub path: PathBuf,
    /// Journal rows are kept this long after every sink delivered them.
    pub retention: Duration,
}

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
    /// Window length while catching up after downtime or during backfill.
    pub catchup_window: Duration,
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
}

/// What a sink writes: the OCSF event or the activity exactly as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ocsf,
    Raw,
}

#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub name: String,
    pub format: Format,
    pub batch: BatchConfig,
    pub kind: SinkKind,
}

#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// At most this many events per batch.
    pub max_events: usize,
    /// At most this many uncompressed bytes per batch.
    pub max_bytes: usize,
    /// Wait at most this long for a batch to fill before sending it.
    pub linger: Duration,
}

#[derive(Debug, Clone)]
pub enum SinkKind {
    File(FileSinkConfig),
}

#[derive(Debug, Clone)]
pub struct FileSinkConfig {
    pub path: PathBuf,
    /// Rotate when the file reaches this size; 0 = never.
    pub max_bytes: u64,
    /// Rotated files kept (`events.ndjson.1` .. `.N`).
    pub max_files: u32,
}

#[derive(Debug, Clone, Default)]
pub struct EnrichConfig {
    pub geoip_city_db: Option<PathBuf>,
    pub geoip_asn_db: Option<PathBuf>,
    /// Entries in the user-agent cache.
    pub user_agent_cache_size: usize,
}

#[derive(Debug, Clone, Default)]
pub struct OcsfConfig {
    /// Per-type severity overrides: activity type -> OCSF severity_id (0..=6, 99).
    pub severity: HashMap<String, u8>,
    /// Include the original record in `raw_data`.
    pub include_raw_data: bool,
}
