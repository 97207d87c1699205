//! Enrichment: GeoIP on databases built at test time, and user-agent parsing
//! over `fixtures/useragents.txt`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use claudit::config::EnrichConfig;
use claudit::enrich::geoip::GeoIp;
use claudit::enrich::useragent::{MAX_USER_AGENT_BYTES, UserAgentParser};
use claudit::enrich::{Asn, DeviceType, Enricher, IpClass, IpInfo, Location, UserAgentInfo};

use crate::support::mmdb::{self, asn_db, asn_row, city_db, city_row};

// ---------------------------------------------------------------- GeoIP

fn london() -> mmdb::CityRow {
    city_row(
        "81.2.69.0/24",
        "London",
        "GB",
        ("EU", "Europe"),
        ("ENG", "England"),
        "SW1A",
        (51.5142, -0.0931),
    )
}

fn tokyo_v6() -> mmdb::CityRow {
    city_row(
        "2001:218::/32",
        "Tokyo",
        "JP",
        ("AS", "Asia"),
        ("13", "Tokyo"),
        "100-0001",
        (35.6893, 139.6899),
    )
}

fn london_location() -> Location {
    Location {
        city: Some("London".into()),
        country: Some("GB".into()),
        region: Some("GB-ENG".into()),
        continent: Some("Europe".into()),
        postal_code: Some("SW1A".into()),
        lat: Some(51.5142),
        long: Some(-0.0931),
    }
}

/// The networks of every special-purpose class, with data, to prove such
/// addresses are classified and never looked up.
fn special_purpose_rows() -> Vec<mmdb::CityRow> {
    [
        "10.0.0.0/8",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "0.0.0.0/8",
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "fc00::/7",
        "fe80::/10",
        "2001:db8::/32",
        "ff00::/8",
        "::1/128",
    ]
    .iter()
    .map(|network| {
        city_row(
            network,
            "Should Not Be Looked Up",
            "ZZ",
            ("AN", "Antarctica"),
            ("X", "Nowhere"),
            "0",
            (0.0, 0.0),
        )
    })
    .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Replaces `path` the way geoipupdate does: write a new file, rename it over.
fn replace_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn standard_dbs(dir: &Path) -> (PathBuf, PathBuf) {
    let mut rows = vec![london(), tokyo_v6()];
    rows.extend(special_purpose_rows());
    rows.push(mmdb::CityRow {
        network: "1.128.0.0/11".into(),
        country: Some("AU".into()),
        continent: Some(("OC".into(), "Oceania".into())),
        ..Default::default()
    });
    let city = write(dir, "City.mmdb", &city_db(&rows));
    let asn = write(
        dir,
        "ASN.mmdb",
        &asn_db(&[
            asn_row("81.2.69.0/24", 20712, "Andrews & Arnold Ltd"),
            asn_row("1.128.0.0/11", 1221, "Telstra Pty Ltd"),
            asn_row("2001:218::/32", 2914, "NTT America, Inc."),
            asn_row("10.0.0.0/8", 64512, "Should Not Be Looked Up"),
        ]),
    );
    (city, asn)
}

#[test]
fn ipv4_lookup_fills_location_and_asn() {
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = standard_dbs(dir.path());
    let geoip = GeoIp::open(Some(&city), Some(&asn)).unwrap();
    let expected = IpInfo {
        class: IpClass::Public,
        location: Some(london_location()),
        asn: Some(Asn {
            number: 20712,
            name: Some("Andrews & Arnold Ltd".into()),
        }),
    };
    assert_eq!(geoip.lookup("81.2.69.160"), expected);
    // The second lookup comes from the cache and must be identical.
    assert_eq!(geoip.lookup("81.2.69.160"), expected);
    // IPv4-mapped IPv6 is the same address.
    assert_eq!(geoip.lookup("::ffff:81.2.69.160"), expected);
}

#[test]
fn ipv6_lookup_fills_location_and_asn() {
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = standard_dbs(dir.path());
    let geoip = GeoIp::open(Some(&city), Some(&asn)).unwrap();
    assert_eq!(
        geoip.lookup("2001:218:1:2::3"),
        IpInfo {
            class: IpClass::Public,
            location: Some(Location {
                city: Some("Tokyo".into()),
                country: Some("JP".into()),
                region: Some("JP-13".into()),
                continent: Some("Asia".into()),
                postal_code: Some("100-0001".into()),
                lat: Some(35.6893),
                long: Some(139.6899),
            }),
            asn: Some(Asn {
                number: 2914,
                name: Some("NTT America, Inc.".into()),
            }),
        }
    );
}

#[test]
fn partial_record_and_misses() {
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = standard_dbs(dir.path());
    let geoip = GeoIp::open(Some(&city), Some(&asn)).unwrap();
    // Country-level record: only what the database has.
    assert_eq!(
        geoip.lookup("1.128.0.1"),
        IpInfo {
            class: IpClass::Public,
            location: Some(Location {
                country: Some("AU".into()),
                continent: Some("Oceania".into()),
                ..Default::default()
            }),
            asn: Some(Asn {
                number: 1221,
                name: Some("Telstra Pty Ltd".into()),
            }),
        }
    );
    // Public addresses the databases do not know.
    for ip in ["8.8.8.8", "2a00:1450:4001::1", "81.2.70.1"] {
        assert_eq!(
            geoip.lookup(ip),
            IpInfo {
                class: IpClass::Public,
                location: None,
                asn: None
            },
            "{ip}"
        );
    }
}

#[test]
fn special_purpose_addresses_are_classified_and_not_looked_up() {
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = standard_dbs(dir.path());
    let geoip = GeoIp::open(Some(&city), Some(&asn)).unwrap();
    for (ip, class) in [
        ("10.1.2.3", IpClass::Private),
        ("172.20.0.1", IpClass::Private),
        ("192.168.1.1", IpClass::Private),
        ("fd00::1", IpClass::Private),
        ("::ffff:10.0.0.1", IpClass::Private),
        ("127.0.0.1", IpClass::Loopback),
        ("::1", IpClass::Loopback),
        ("::ffff:127.0.0.1", IpClass::Loopback),
        ("169.254.169.254", IpClass::LinkLocal),
        ("fe80::1", IpClass::LinkLocal),
        ("fe80::1%eth0", IpClass::LinkLocal),
        ("100.64.0.1", IpClass::Reserved),
        ("0.0.0.0", IpClass::Reserved),
        ("::", IpClass::Reserved),
        ("192.0.2.1", IpClass::Reserved),
        ("198.51.100.1", IpClass::Reserved),
        ("203.0.113.1", IpClass::Reserved),
        ("2001:db8::1", IpClass::Reserved),
        ("224.0.0.251", IpClass::Reserved),
        ("ff02::fb", IpClass::Reserved),
        ("240.1.2.3", IpClass::Reserved),
        ("255.255.255.255", IpClass::Reserved),
    ] {
        assert_eq!(
            geoip.lookup(ip),
            IpInfo {
                class,
                location: None,
                asn: None
            },
            "{ip}"
        );
    }
}

#[test]
fn unparseable_addresses_are_invalid() {
    let geoip = GeoIp::disabled();
    for ip in [
        "",
        "unknown",
        "81.2.69",
        "81.2.69.160:443",
        "2001:db8::g",
        "🙂",
    ] {
        assert_eq!(geoip.lookup(ip).class, IpClass::Invalid, "{ip}");
    }
    assert_eq!(geoip.lookup(&"9".repeat(1 << 20)).class, IpClass::Invalid);
}

#[test]
fn either_database_alone_works() {
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = standard_dbs(dir.path());
    let city_only = GeoIp::open(Some(&city), None).unwrap();
    let info = city_only.lookup("81.2.69.160");
    assert_eq!(info.location, Some(london_location()));
    assert_eq!(info.asn, None);
    let asn_only = GeoIp::open(None, Some(&asn)).unwrap();
    let info = asn_only.lookup("81.2.69.160");
    assert_eq!(info.location, None);
    assert_eq!(info.asn.map(|a| a.number), Some(20712));
}

#[test]
fn reload_picks_up_a_replaced_file() {
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = standard_dbs(dir.path());
    let geoip = GeoIp::open(Some(&city), Some(&asn)).unwrap();
    assert_eq!(
        geoip
            .lookup("81.2.69.160")
            .location
            .unwrap()
            .city
            .as_deref(),
        Some("London")
    );
    assert!(!geoip.reload_if_changed().unwrap(), "nothing changed yet");

    // geoipupdate: new file renamed over the old one.
    let mut moved = london();
    moved.city = Some("Manchester".into());
    moved.subdivision = Some(("ENG".into(), "England".into()));
    replace_atomically(&city, &city_db(&[moved]));
    assert!(geoip.reload_if_changed().unwrap());
    let info = geoip.lookup("81.2.69.160");
    assert_eq!(
        info.location.unwrap().city.as_deref(),
        Some("Manchester"),
        "the cached London result must not survive the reload"
    );
    assert_eq!(info.asn.map(|a| a.number), Some(20712), "ASN database kept");
    assert!(!geoip.reload_if_changed().unwrap(), "reloaded only once");

    // An in-place rewrite (same inode, different size) is seen too.
    std::fs::write(
        &asn,
        asn_db(&[asn_row(
            "81.2.69.0/24",
            65000,
            "A Much Longer Organization Name Ltd",
        )]),
    )
    .unwrap();
    assert!(geoip.reload_if_changed().unwrap());
    assert_eq!(
        geoip.lookup("81.2.69.160").asn,
        Some(Asn {
            number: 65000,
            name: Some("A Much Longer Organization Name Ltd".into())
        })
    );
}

#[test]
fn failed_reload_keeps_the_old_reader_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = standard_dbs(dir.path());
    let geoip = GeoIp::open(Some(&city), Some(&asn)).unwrap();

    // A corrupt replacement: error naming the file, old data still served.
    replace_atomically(&city, b"this is not a MaxMind database");
    let err = format!("{:#}", geoip.reload_if_changed().unwrap_err());
    assert!(err.contains(&city.display().to_string()), "{err}");
    assert!(err.contains("keeping the database loaded earlier"), "{err}");
    assert_eq!(
        geoip.lookup("81.2.69.160").location,
        Some(london_location())
    );
    // Still broken: still an error (retried), still the old data.
    assert!(geoip.reload_if_changed().is_err());
    assert_eq!(
        geoip.lookup("81.2.69.160").location,
        Some(london_location())
    );

    // A truncated copy of a real database is refused as well.
    let good = city_db(&[london()]);
    replace_atomically(&city, &good[..good.len() / 2]);
    assert!(geoip.reload_if_changed().is_err());
    assert_eq!(
        geoip.lookup("81.2.69.160").location,
        Some(london_location())
    );

    // The file disappears: error, old data kept.
    std::fs::remove_file(&city).unwrap();
    let err = format!("{:#}", geoip.reload_if_changed().unwrap_err());
    assert!(err.contains("cannot stat"), "{err}");
    assert!(geoip.lookup("81.2.69.160").location.is_some());

    // A good file again: loaded.
    let mut fixed = london();
    fixed.city = Some("Leeds".into());
    replace_atomically(&city, &city_db(&[fixed]));
    assert!(geoip.reload_if_changed().unwrap());
    assert_eq!(
        geoip
            .lookup("81.2.69.160")
            .location
            .unwrap()
            .city
            .as_deref(),
        Some("Leeds")
    );
}

fn open_error(city: Option<&Path>, asn: Option<&Path>) -> String {
    match GeoIp::open(city, asn) {
        Ok(_) => panic!("opening {city:?} / {asn:?} should fail"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn missing_or_corrupt_database_is_a_clear_error_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (good_city, good_asn) = standard_dbs(dir.path());

    let missing = dir.path().join("GeoLite2-City.mmdb");
    let err = open_error(Some(&missing), Some(&good_asn));
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("cannot open"), "{err}");
    assert!(err.contains("enrich.geoip_city_db"), "{err}");

    let garbage = write(dir.path(), "garbage.mmdb", &[0xab; 4096]);
    let err = open_error(Some(&good_city), Some(&garbage));
    assert!(err.contains(&garbage.display().to_string()), "{err}");
    assert!(err.contains("not a valid MaxMind DB file"), "{err}");
    assert!(err.contains("geoipupdate"), "{err}");
    assert!(err.contains("enrich.geoip_asn_db"), "{err}");

    let empty = write(dir.path(), "empty.mmdb", b"");
    let err = open_error(Some(&empty), None);
    assert!(err.contains("not a valid MaxMind DB file"), "{err}");

    let bytes = city_db(&[london()]);
    let truncated = write(dir.path(), "truncated.mmdb", &bytes[..bytes.len() - 40]);
    let err = open_error(Some(&truncated), None);
    assert!(err.contains("not a valid MaxMind DB file"), "{err}");

    // Damage inside the search tree, metadata intact: caught by the full
    // check at open, not at lookup time.
    let mut damaged = bytes.clone();
    for byte in damaged.iter_mut().take(64) {
        *byte = 0xff;
    }
    let damaged = write(dir.path(), "damaged.mmdb", &damaged);
    let err = open_error(Some(&damaged), None);
    assert!(err.contains("not a valid MaxMind DB file"), "{err}");

    let directory = dir.path().join("a-directory");
    std::fs::create_dir(&directory).unwrap();
    let err = open_error(Some(&directory), None);
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn database_of_the_wrong_kind_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = standard_dbs(dir.path());
    // Swapped paths.
    let err = open_error(Some(&asn), None);
    assert!(
        err.contains("is not a GeoIP2/GeoLite2 City database"),
        "{err}"
    );
    assert!(err.contains("GeoLite2-ASN"), "{err}");
    let err = open_error(None, Some(&city));
    assert!(
        err.contains("is not a GeoIP2/GeoLite2 ASN database"),
        "{err}"
    );
    // A database with no records at all is not a valid database.
    let empty = write(dir.path(), "no-records.mmdb", &city_db(&[]));
    let err = open_error(Some(&empty), None);
    assert!(err.contains("not a valid MaxMind DB file"), "{err}");
}

#[test]
fn enricher_uses_the_configured_databases() {
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = standard_dbs(dir.path());
    let enricher = Enricher::new(&EnrichConfig {
        geoip_city_db: Some(city.clone()),
        geoip_asn_db: Some(asn),
        user_agent_cache_size: 100,
    })
    .unwrap();
    let enrichment = enricher.enrich(Some("81.2.69.160"), Some("curl/8.5.0"));
    assert_eq!(enrichment.ip.unwrap().location, Some(london_location()));
    assert_eq!(enrichment.user_agent.unwrap().name.as_deref(), Some("curl"));
    let nothing = enricher.enrich(Some(""), Some("   "));
    assert!(nothing.ip.is_none() && nothing.user_agent.is_none());
    assert!(!enricher.reload_if_changed().unwrap());

    let missing = Enricher::new(&EnrichConfig {
        geoip_city_db: Some(dir.path().join("nope.mmdb")),
        geoip_asn_db: None,
        user_agent_cache_size: 100,
    });
    let err = format!("{:#}", missing.err().expect("missing database"));
    assert!(err.contains("nope.mmdb"), "{err}");
}

// ---------------------------------------------------------- User agents

struct Case {
    line: usize,
    user_agent: String,
    expected: UserAgentInfo,
}

fn optional(field: &str) -> Option<String> {
    (field != "-").then(|| field.to_string())
}

fn fixture_cases() -> Vec<Case> {
    let text = include_str!("../../fixtures/useragents.txt");
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|(index, line)| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 7, "line {}: {line}", index + 1);
            let device_type = match fields[5] {
                "Unknown" => DeviceType::Unknown,
                "Desktop" => DeviceType::Desktop,
                "Mobile" => DeviceType::Mobile,
                "Tablet" => DeviceType::Tablet,
                "Server" => DeviceType::Server,
                other => panic!("line {}: device type {other}", index + 1),
            };
            Case {
                line: index + 1,
                user_agent: fields[0].to_string(),
                expected: UserAgentInfo {
                    name: optional(fields[1]),
                    version: optional(fields[2]),
                    os_name: optional(fields[3]),
                    os_version: optional(fields[4]),
                    device_type,
                    automated: fields[6].parse().expect("automated is true or false"),
                },
            }
        })
        .collect()
}

#[test]
fn user_agent_fixtures_parse_as_expected() {
    let cases = fixture_cases();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let parser = UserAgentParser::new(1000);
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let got = parser.parse(&case.user_agent);
            (*got != case.expected).then(|| {
                format!(
                    "line {}: {}\n  expected {:?}\n  got      {:?}",
                    case.line, case.user_agent, case.expected, got
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} user agents parsed wrongly:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn user_agent_fixtures_cover_every_kind_of_client() {
    let cases = fixture_cases();
    let count =
        |f: &dyn Fn(&UserAgentInfo) -> bool| cases.iter().filter(|c| f(&c.expected)).count();
    assert!(count(&|e| e.device_type == DeviceType::Desktop && !e.automated) >= 10);
    assert!(count(&|e| matches!(e.device_type, DeviceType::Mobile | DeviceType::Tablet)) >= 5);
    assert!(count(&|e| e.name.as_deref().is_some_and(|n| n.starts_with("Claude "))) >= 5);
    assert!(count(&|e| e.automated && e.device_type == DeviceType::Unknown) >= 15);
    assert!(count(&|e| e.device_type == DeviceType::Server) >= 5);
}

#[test]
fn cached_and_uncached_parses_agree() {
    let parser = UserAgentParser::new(4);
    for case in fixture_cases() {
        let cached = parser.parse(&case.user_agent);
        assert_eq!(*cached, parser.parse_uncached(&case.user_agent));
        assert!(Arc::ptr_eq(&cached, &parser.parse(&case.user_agent)));
    }
}

#[test]
fn overlong_and_garbage_user_agents_are_bounded() {
    let parser = UserAgentParser::new(16);
    // A megabyte of Chrome-like text is parsed from its first kilobyte.
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 ";
    let huge = chrome.repeat((1 << 20) / chrome.len());
    let info = parser.parse(&huge);
    assert_eq!(info.name.as_deref(), Some("Chrome"));
    assert_eq!(
        *info,
        parser.parse_uncached(&huge[..MAX_USER_AGENT_BYTES]),
        "only the bounded prefix is parsed"
    );
    // Same prefix, different tail: the same cache entry.
    let mut other = huge.clone();
    other.push_str("tail");
    assert!(Arc::ptr_eq(&info, &parser.parse(&other)));

    let garbage: String = (0u32..4000)
        .filter_map(|i| char::from_u32((i * 7919) % 0x2fff))
        .collect();
    let info = parser.parse(&garbage);
    assert!(!info.automated);
    for nonsense in [
        "-",
        "\0\0\0",
        "////",
        "Claude/",
        "Claude/x.y",
        "claude-cli/",
        "Anthropic/ 1",
    ] {
        let info = parser.parse(nonsense);
        assert_ne!(info.name.as_deref(), Some("Claude Desktop"), "{nonsense:?}");
        assert!(
            info.version.as_deref().is_none_or(|v| v.len() <= 64),
            "{nonsense:?}"
        );
    }
    assert_eq!(
        parser.parse("claude-cli/").name.as_deref(),
        Some("Claude Code")
    );
    assert_eq!(parser.parse("claude-cli/").version, None);
}
