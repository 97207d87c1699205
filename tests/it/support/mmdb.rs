//! Builds small GeoIP2-layout City and ASN MaxMind DB files at test time
//! (with the `maxminddb-writer` crate), so no MaxMind database needs to be
//! downloaded or vendored. Used by `tests/enrich.rs` and `benches/enrich.rs`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use maxminddb_writer::Database;
use maxminddb_writer::metadata::IpVersion;
use maxminddb_writer::paths::IpAddrWithMask;
use serde::Serialize;

/// One network of a City database, in the fields claudit reads.
#[derive(Debug, Clone, Default)]
pub struct CityRow {
    /// "81.2.69.0/24" or "2001:218::/32".
    pub network: String,
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// (code, English name), e.g. ("EU", "Europe").
    pub continent: Option<(String, String)>,
    /// (ISO 3166-2 code without the country, English name), e.g. ("ENG", "England").
    pub subdivision: Option<(String, String)>,
    pub postal: Option<String>,
    pub lat_long: Option<(f64, f64)>,
}

/// One network of an ASN database.
#[derive(Debug, Clone)]
pub struct AsnRow {
    pub network: String,
    pub number: u32,
    pub organization: String,
}

#[derive(Serialize)]
struct Names {
    names: BTreeMap<&'static str, String>,
}

fn names(en: &str) -> Names {
    // A second language, as real databases carry several.
    let mut names = BTreeMap::from([("en", en.to_string())]);
    names.insert("de", format!("{en} (de)"));
    Names { names }
}

#[derive(Serialize)]
struct Continent {
    code: String,
    geoname_id: u32,
    names: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Country {
    iso_code: String,
    geoname_id: u32,
    names: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Subdivision {
    iso_code: String,
    geoname_id: u32,
    names: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Postal {
    code: String,
}

#[derive(Serialize)]
struct Coordinates {
    accuracy_radius: u16,
    latitude: f64,
    longitude: f64,
    time_zone: &'static str,
}

/// The GeoIP2 City record layout (a subset: what claudit reads plus a few
/// fields it must skip).
#[derive(Serialize)]
struct CityRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    city: Option<Names>,
    #[serde(skip_serializing_if = "Option::is_none")]
    continent: Option<Continent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<Country>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registered_country: Option<Country>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subdivisions: Vec<Subdivision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    postal: Option<Postal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<Coordinates>,
}

#[derive(Serialize)]
struct AsnRecord {
    autonomous_system_number: u32,
    autonomous_system_organization: String,
}

fn country(iso: &str) -> Country {
    Country {
        iso_code: iso.to_string(),
        geoname_id: 1,
        names: names(iso).names,
    }
}

/// An IPv6 database (as MaxMind ships them); IPv4 networks go to the
/// `::/96` subtree, where readers look IPv4 addresses up.
fn tree_path(network: &str) -> IpAddrWithMask {
    let (addr, len) = network
        .split_once('/')
        .unwrap_or_else(|| panic!("network {network} needs a prefix length"));
    let addr: IpAddr = addr.parse().expect("network address");
    let len: u8 = len.parse().expect("prefix length");
    match addr {
        IpAddr::V4(v4) => {
            assert!(len <= 32, "{network}");
            IpAddrWithMask::new(IpAddr::V6(v4.to_ipv6_compatible()), 96 + len)
        }
        IpAddr::V6(v6) => {
            assert!(len <= 128, "{network}");
            IpAddrWithMask::new(IpAddr::V6(v6), len)
        }
    }
}

fn new_database(database_type: &str) -> Database {
    let mut db = Database::default();
    db.metadata.ip_version = IpVersion::V6;
    db.metadata.database_type = database_type.to_string();
    db.metadata.binary_format_major_version = 2;
    db.metadata.binary_format_minor_version = 0;
    db.metadata.languages = vec!["en".to_string(), "de".to_string()];
    db.metadata.build_epoch = 1_767_225_600;
    db.metadata
        .description
        .insert("en".to_string(), format!("claudit test {database_type}"));
    db
}

fn to_bytes(db: &Database) -> Vec<u8> {
    db.write_to(Vec::new())
        .expect("serialize the test database")
}

/// A GeoIP2-layout City database with `rows`.
pub fn city_db(rows: &[CityRow]) -> Vec<u8> {
    city_db_typed("GeoLite2-City", rows)
}

/// Like [`city_db`] with another `database_type` in the metadata.
pub fn city_db_typed(database_type: &str, rows: &[CityRow]) -> Vec<u8> {
    let mut db = new_database(database_type);
    for row in rows {
        let record = CityRecord {
            city: row.city.as_deref().map(names),
            continent: row.continent.as_ref().map(|(code, name)| Continent {
                code: code.clone(),
                geoname_id: 2,
                names: names(name).names,
            }),
            country: row.country.as_deref().map(country),
            registered_country: row.country.as_deref().map(country),
            subdivisions: row
                .subdivision
                .iter()
                .map(|(code, name)| Subdivision {
                    iso_code: code.clone(),
                    geoname_id: 3,
                    names: names(name).names,
                })
                .collect(),
            postal: row.postal.clone().map(|code| Postal { code }),
            location: row.lat_long.map(|(latitude, longitude)| Coordinates {
                accuracy_radius: 50,
                latitude,
                longitude,
                time_zone: "Etc/UTC",
            }),
        };
        let data = db.insert_value(&record).expect("serialize a City record");
        db.insert_node(tree_path(&row.network), data);
    }
    to_bytes(&db)
}

/// A GeoIP2-layout ASN database with `rows`.
pub fn asn_db(rows: &[AsnRow]) -> Vec<u8> {
    let mut db = new_database("GeoLite2-ASN");
    for row in rows {
        let record = AsnRecord {
            autonomous_system_number: row.number,
            autonomous_system_organization: row.organization.clone(),
        };
        let data = db.insert_value(&record).expect("serialize an ASN record");
        db.insert_node(tree_path(&row.network), data);
    }
    to_bytes(&db)
}

/// Shorthand for a City row with every field set.
#[allow(clippy::too_many_arguments)]
pub fn city_row(
    network: &str,
    city: &str,
    country: &str,
    continent: (&str, &str),
    subdivision: (&str, &str),
    postal: &str,
    lat_long: (f64, f64),
) -> CityRow {
    CityRow {
        network: network.to_string(),
        city: Some(city.to_string()),
        country: Some(country.to_string()),
        continent: Some((continent.0.to_string(), continent.1.to_string())),
        subdivision: Some((subdivision.0.to_string(), subdivision.1.to_string())),
        postal: Some(postal.to_string()),
        lat_long: Some(lat_long),
    }
}

pub fn asn_row(network: &str, number: u32, organization: &str) -> AsnRow {
    AsnRow {
        network: network.to_string(),
        number,
        organization: organization.to_string(),
    }
}

/// Writes a City and an ASN database covering `networks` (every network
/// the same made-up city and AS) into `dir`; returns their paths. For the
/// benchmarks, which need every lookup to hit.
#[allow(dead_code)] // not every including crate uses it
pub fn write_uniform_dbs(
    networks: &[String],
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let city: Vec<_> = networks
        .iter()
        .enumerate()
        .map(|(i, n)| {
            city_row(
                n,
                "Springfield",
                ["US", "GB", "DE"][i % 3],
                ("NA", "North America"),
                ("WA", "Washington"),
                "98101",
                (47.6, -122.3),
            )
        })
        .collect();
    let asn: Vec<_> = networks
        .iter()
        .map(|n| asn_row(n, 64_512, "Example Networks Inc."))
        .collect();
    let (city_path, asn_path) = (dir.join("City.mmdb"), dir.join("ASN.mmdb"));
    std::fs::write(&city_path, city_db(&city)).unwrap();
    std::fs::write(&asn_path, asn_db(&asn)).unwrap();
    (city_path, asn_path)
}

/// The IPv4 /24 networks of the `actor.ip_address` of `records` (activity
/// JSON), for [`write_uniform_dbs`]: databases on which every lookup of
/// those records hits.
#[allow(dead_code)] // not every including crate uses it
pub fn networks_of(records: &[String]) -> Vec<String> {
    let mut nets = std::collections::BTreeSet::new();
    for r in records {
        let v: serde_json::Value = serde_json::from_str(r).unwrap();
        if let Some(ip) = v["actor"]["ip_address"]
            .as_str()
            .and_then(|s| s.parse::<std::net::Ipv4Addr>().ok())
        {
            let o = ip.octets();
            nets.insert(format!("{}.{}.{}.0/24", o[0], o[1], o[2]));
        }
    }
    nets.into_iter().collect()
}
