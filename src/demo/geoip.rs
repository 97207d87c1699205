//! The demo's GeoIP City database: the simulator's attack addresses placed
//! where its story puts them (a sign-in from New York, then one from Tokyo
//! 50 minutes later), written as a GeoIP2-layout MaxMind DB so the real
//! enricher and the geo-velocity rules run unchanged. Every other address
//! is unknown to it, as an address missing from a real database is.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb_writer::Database;
use maxminddb_writer::metadata::IpVersion;
use maxminddb_writer::paths::IpAddrWithMask;
use serde::Serialize;

/// (network, city, ISO country, latitude, longitude).
const PLACES: &[(&str, &str, &str, f64, f64)] = &[
    ("24.39.0.0/16", "New York", "US", 40.71, -74.01),
    ("133.242.0.0/16", "Tokyo", "JP", 35.69, 139.69),
    ("185.220.101.0/24", "Frankfurt am Main", "DE", 50.11, 8.68),
    ("45.155.205.0/24", "Amsterdam", "NL", 52.37, 4.90),
];

#[derive(Serialize)]
struct Names {
    names: std::collections::BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Country {
    iso_code: String,
    names: std::collections::BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Location {
    latitude: f64,
    longitude: f64,
    accuracy_radius: u16,
}

#[derive(Serialize)]
struct CityRecord {
    city: Names,
    country: Country,
    location: Location,
}

fn names(en: &str) -> std::collections::BTreeMap<&'static str, String> {
    std::collections::BTreeMap::from([("en", en.to_string())])
}

/// Writes the database into `dir`; returns its path.
pub fn write_city_db(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut db = Database::default();
    db.metadata.ip_version = IpVersion::V6;
    db.metadata.database_type = "GeoLite2-City".to_string();
    db.metadata.binary_format_major_version = 2;
    db.metadata.binary_format_minor_version = 0;
    db.metadata.languages = vec!["en".to_string()];
    db.metadata
        .description
        .insert("en".to_string(), "claudit demo places".to_string());
    for (network, city, country, latitude, longitude) in PLACES {
        let record = CityRecord {
            city: Names { names: names(city) },
            country: Country {
                iso_code: country.to_string(),
                names: names(country),
            },
            location: Location {
                latitude: *latitude,
                longitude: *longitude,
                accuracy_radius: 20,
            },
        };
        let data = db
            .insert_value(&record)
            .map_err(|e| anyhow::anyhow!("demo GeoIP record: {e:?}"))?;
        let (addr, len) = network.split_once('/').unwrap_or((network, "32"));
        let (addr, len): (IpAddr, u8) = (addr.parse()?, len.parse()?);
        // An IPv6 database, as MaxMind ships them: IPv4 under ::/96.
        let path = match addr {
            IpAddr::V4(v4) => IpAddrWithMask::new(IpAddr::V6(v4.to_ipv6_compatible()), 96 + len),
            IpAddr::V6(_) => IpAddrWithMask::new(addr, len),
        };
        db.insert_node(path, data);
    }
    let bytes = db
        .write_to(Vec::new())
        .map_err(|e| anyhow::anyhow!("demo GeoIP database: {e:?}"))?;
    let path = dir.join("demo-city.mmdb");
    std::fs::write(&path, bytes)?;
    Ok(path)
}
