//! GeoIP lookups (placeholder until the enrichment work lands).

use std::path::Path;

use super::{IpClass, IpInfo};

pub struct GeoIp;

impl GeoIp {
    pub fn open(_city: Option<&Path>, _asn: Option<&Path>) -> anyhow::Result<GeoIp> {
        Ok(GeoIp)
    }
    pub fn disabled() -> GeoIp {
        GeoIp
    }
    pub fn lookup(&self, ip: &str) -> IpInfo {
        let class = match ip.parse::<std::net::IpAddr>() {
            Ok(_) => IpClass::Public,
            Err(_) => IpClass::Invalid,
        };
        IpInfo {
            class,
            location: None,
            asn: None,
        }
    }
    pub fn reload_if_changed(&self) -> anyhow::Result<bool> {
        Ok(false)
    }
}
