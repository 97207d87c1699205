//! `[sources.directory]`: the directory context of one source (read by
//! `config/directory.rs`).

use std::time::Duration;

/// The organization roles (and custom role names) that make a user an
/// admin by default: the privileged roles of the detection catalogue.
pub const DEFAULT_ADMIN_ROLES: &[&str] = &["admin", "owner", "primary_owner", "membership_admin"];

/// `snapshot_every` by default: a daily join table.
pub const DEFAULT_SNAPSHOT_EVERY: Duration = Duration::from_secs(24 * 3600);
/// The shortest `snapshot_every`: each snapshot journals every member.
pub const MIN_SNAPSHOT_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryConfig {
    /// Sync the directory and put it on events. Off unless the source has
    /// a `[sources.directory]` table.
    pub enabled: bool,
    /// A full sync runs at start and this long after the previous one.
    pub refresh: Duration,
    /// The directory stream (`streams = [.., "directory"]` on a sink): a
    /// snapshot of every member this long after the previous one.
    pub snapshot_every: Duration,
    /// `limit` of each directory page, 1..=1000.
    pub page_size: u32,
    /// On a source's first start, the poller waits at most this long for
    /// the first full sync, so the initial lookback is enriched.
    pub initial_sync_wait: Duration,
    /// Organization roles and custom role names that are admin-class
    /// (compared case-insensitively).
    pub admin_roles: Vec<String>,
    /// Group names whose members are admin-class.
    pub admin_groups: Vec<String>,
    /// E-mail domains of the organization, besides those the feed reports
    /// verified (`org_domain_verified`): an invite to any other domain is
    /// outside the organization.
    pub verified_domains: Vec<String>,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            enabled: false,
            refresh: Duration::from_secs(4 * 3600),
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            page_size: 1000,
            initial_sync_wait: Duration::from_secs(120),
            admin_roles: DEFAULT_ADMIN_ROLES.iter().map(|r| r.to_string()).collect(),
            admin_groups: Vec::new(),
            verified_domains: Vec::new(),
        }
    }
}
