//! Enrichment of the actor: GeoIP (maxminddb City and ASN databases) on
//! `actor.ip_address`, and user-agent parsing (claudit's own rules for Claude
//! clients and HTTP libraries, then woothee) behind a bounded cache.

pub mod geoip;
pub mod useragent;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use std::path::PathBuf;

/// `[enrich]`: the GeoIP databases and the user-agent cache.
#[derive(Debug, Clone, Default)]
pub struct EnrichConfig {
    pub geoip_city_db: Option<PathBuf>,
    pub geoip_asn_db: Option<PathBuf>,
    /// Entries in the user-agent cache.
    pub user_agent_cache_size: usize,
}

/// What kind of address an IP is. Only `Public` addresses are looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpClass {
    Public,
    Private,
    Loopback,
    LinkLocal,
    /// Documentation, multicast, unspecified, broadcast, CGNAT and other
    /// special-purpose ranges.
    Reserved,
    /// Not parseable as an IP address.
    Invalid,
}

impl IpClass {
    /// A short label for `metadata.labels` (`claudit:ip_private`, ...).
    pub fn label(self) -> Option<&'static str> {
        match self {
            IpClass::Public => None,
            IpClass::Private => Some("claudit:ip_private"),
            IpClass::Loopback => Some("claudit:ip_loopback"),
            IpClass::LinkLocal => Some("claudit:ip_link_local"),
            IpClass::Reserved => Some("claudit:ip_reserved"),
            IpClass::Invalid => Some("claudit:ip_invalid"),
        }
    }
}

/// GeoIP result for one address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpInfo {
    pub class: IpClass,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<Asn>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Location {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Principal subdivision (state, region) as its ISO 3166-2 code
    /// ("US-WA", "GB-ENG"), which is what OCSF `location.region` holds; its
    /// English name when the database has no code for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Continent name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub long: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asn {
    pub number: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What a user-agent string says about the client.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UserAgentInfo {
    /// Browser, app or library name: "Chrome", "Claude Desktop", "Claude Code", "python-requests".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    pub device_type: DeviceType,
    /// A script, library, CLI or crawler rather than a person in a browser or app.
    pub automated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceType {
    #[default]
    Unknown,
    Desktop,
    Mobile,
    Tablet,
    Server,
}

/// Enrichment for one activity's actor. Journaled with the activity (as
/// JSON, inside `ocsf::JournalContext`), so an event rendered later says what
/// the databases said when the activity was read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Enrichment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<Arc<UserAgentInfo>>,
}

/// Holds the GeoIP readers and the user-agent cache. Cheap to share (`Arc`).
pub struct Enricher {
    geoip: geoip::GeoIp,
    user_agents: useragent::UserAgentParser,
}

impl Enricher {
    /// Opens the configured databases. A configured database that is missing
    /// or corrupt is an error here, at startup, never at lookup time.
    pub fn new(config: &EnrichConfig) -> anyhow::Result<Enricher> {
        Ok(Enricher {
            geoip: geoip::GeoIp::open(
                config.geoip_city_db.as_deref(),
                config.geoip_asn_db.as_deref(),
            )?,
            user_agents: useragent::UserAgentParser::new(config.user_agent_cache_size.max(1)),
        })
    }

    /// An enricher with no GeoIP databases (user agents are still parsed).
    pub fn without_geoip() -> Enricher {
        Enricher {
            geoip: geoip::GeoIp::disabled(),
            user_agents: useragent::UserAgentParser::new(10_000),
        }
    }

    pub fn enrich(&self, ip: Option<&str>, user_agent: Option<&str>) -> Enrichment {
        Enrichment {
            ip: ip.filter(|s| !s.is_empty()).map(|ip| self.geoip.lookup(ip)),
            user_agent: user_agent
                .filter(|s| !s.trim().is_empty())
                .map(|ua| self.user_agents.parse(ua)),
        }
    }

    /// Re-opens the GeoIP databases if their files changed on disk.
    pub fn reload_if_changed(&self) -> anyhow::Result<bool> {
        self.geoip.reload_if_changed()
    }
}
