//! GeoIP lookups on MaxMind DB files (GeoIP2 / GeoLite2 City and ASN, or any
//! database with the same record layout, such as DB-IP's City Lite).
//!
//! - Addresses are classified first; private, loopback, link-local and
//!   reserved addresses are marked and never looked up.
//! - Databases are read into memory (never memory-mapped: an updater that
//!   rewrites the file under a mapping makes reads undefined, RUSTSEC-2025-0132).
//! - [`GeoIp::reload_if_changed`] compares each file's size, mtime and inode
//!   with the loaded copy and swaps in a new reader (arc-swap) when it
//!   changed, so `geoipupdate` runs take effect without a restart. A reload
//!   that fails keeps the old reader.
//! - Results are cached per address; the cache belongs to one set of readers
//!   and is replaced with them on reload, so it never serves stale data.

use std::fs::File;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use maxminddb::{Reader, WithinOptions};
use serde::Deserialize;

use super::{Asn, IpClass, IpInfo, Location};

/// Addresses whose lookup result is cached. Actor addresses repeat heavily
/// (the same people and services), so a small cache absorbs most lookups.
const LOOKUP_CACHE_ENTRIES: usize = 16_384;

/// How many records of a freshly opened database are inspected to check it is
/// the kind of database it was configured as.
const PROBE_RECORDS: usize = 16;

/// Which of the two databases a file is; decides the check at open and the
/// wording of errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbKind {
    City,
    Asn,
}

impl DbKind {
    fn label(self) -> &'static str {
        match self {
            DbKind::City => "GeoIP City database",
            DbKind::Asn => "GeoIP ASN database",
        }
    }

    fn setting(self) -> &'static str {
        match self {
            DbKind::City => "enrich.geoip_city_db",
            DbKind::Asn => "enrich.geoip_asn_db",
        }
    }

    fn expected(self) -> &'static str {
        match self {
            DbKind::City => "a GeoIP2/GeoLite2 City database (e.g. GeoLite2-City.mmdb)",
            DbKind::Asn => "a GeoIP2/GeoLite2 ASN database (e.g. GeoLite2-ASN.mmdb)",
        }
    }
}

/// What identifies one version of a database file on disk. `geoipupdate`
/// writes a new file and renames it over the old one, which changes the
/// inode; an in-place rewrite changes size or mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    dev: u64,
    ino: u64,
}

impl FileStamp {
    fn of(metadata: &std::fs::Metadata) -> FileStamp {
        #[cfg(unix)]
        let (dev, ino) = {
            use std::os::unix::fs::MetadataExt;
            (metadata.dev(), metadata.ino())
        };
        #[cfg(not(unix))]
        let (dev, ino) = (0, 0);
        FileStamp {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            dev,
            ino,
        }
    }
}

/// One database as loaded from disk.
struct LoadedDb {
    reader: Reader<Vec<u8>>,
    stamp: FileStamp,
}

impl LoadedDb {
    /// Reads and checks the file at `path`. Every problem is an error naming
    /// the path and the fix.
    fn load(path: &Path, kind: DbKind) -> anyhow::Result<LoadedDb> {
        let fix = format!(
            "download it (e.g. with geoipupdate), fix the path, or remove `{}` from the configuration",
            kind.setting()
        );
        // Stamp and bytes come from the same open file, so a rename between
        // the two cannot pair one file's stamp with another file's content.
        let mut file = File::open(path).with_context(|| {
            format!("{} {}: cannot open it; {fix}", kind.label(), path.display())
        })?;
        let metadata = file.metadata().with_context(|| {
            format!("{} {}: cannot stat it; {fix}", kind.label(), path.display())
        })?;
        if !metadata.is_file() {
            bail!(
                "{} {}: not a regular file; {fix}",
                kind.label(),
                path.display()
            );
        }
        let mut bytes = Vec::with_capacity(metadata.len().try_into().unwrap_or(0));
        file.read_to_end(&mut bytes).with_context(|| {
            format!("{} {}: cannot read it; {fix}", kind.label(), path.display())
        })?;
        let corrupt = |detail: String| {
            anyhow::anyhow!(
                "{} {} is not a valid MaxMind DB file ({detail}); replace it with {} \
                 (re-run geoipupdate) or remove `{}` from the configuration",
                kind.label(),
                path.display(),
                kind.expected(),
                kind.setting()
            )
        };
        // Equivalent to `Reader::open_readfile`, on the bytes read above.
        let reader = Reader::from_source(bytes).map_err(|e| corrupt(e.to_string()))?;
        // A full structural check, so that a damaged file is refused here
        // rather than failing (quietly) on lookups for months.
        reader.verify().map_err(|e| corrupt(e.to_string()))?;
        check_kind(&reader, kind).map_err(|detail| {
            anyhow::anyhow!(
                "{} {} is not {} ({detail}, database_type {:?}); point `{}` at the right file",
                kind.label(),
                path.display(),
                kind.expected(),
                reader.metadata().database_type,
                kind.setting()
            )
        })?;
        Ok(LoadedDb {
            reader,
            stamp: FileStamp::of(&metadata),
        })
    }
}

/// Checks that the first records of `reader` have the layout `kind` needs, so
/// an ASN file configured as the City database (or a database with another
/// vendor's layout) is refused at startup instead of yielding nothing.
fn check_kind(reader: &Reader<Vec<u8>>, kind: DbKind) -> Result<(), String> {
    let networks = reader
        .networks(WithinOptions::default().skip_empty_values())
        .map_err(|e| e.to_string())?;
    let mut seen = 0;
    for network in networks.take(PROBE_RECORDS) {
        let result = network.map_err(|e| e.to_string())?;
        seen += 1;
        let fits = match kind {
            DbKind::City => result
                .decode::<CityRecord>()
                .map_err(|e| format!("records do not have the GeoIP2 City layout: {e}"))?
                .is_some_and(|r| r.has_location()),
            DbKind::Asn => result
                .decode::<AsnRecord>()
                .map_err(|e| format!("records do not have the GeoIP2 ASN layout: {e}"))?
                .is_some_and(|r| r.autonomous_system_number.is_some()),
        };
        if fits {
            return Ok(());
        }
    }
    if seen == 0 {
        Err("it holds no records".to_string())
    } else {
        Err(format!(
            "none of its first {seen} records has the expected fields"
        ))
    }
}

/// The part of a GeoIP2 City record that claudit uses. Strings borrow from
/// the database buffer; unused fields are skipped by the decoder.
#[derive(Deserialize)]
struct CityRecord<'a> {
    #[serde(borrow, default)]
    city: Option<Named<'a>>,
    #[serde(borrow, default)]
    continent: Option<Named<'a>>,
    #[serde(borrow, default)]
    country: Option<Coded<'a>>,
    #[serde(borrow, default)]
    subdivisions: Option<Vec<Coded<'a>>>,
    #[serde(borrow, default)]
    postal: Option<Postal<'a>>,
    #[serde(default)]
    location: Option<Coordinates>,
}

impl CityRecord<'_> {
    fn has_location(&self) -> bool {
        self.city.is_some()
            || self.continent.is_some()
            || self.country.is_some()
            || self.subdivisions.as_ref().is_some_and(|s| !s.is_empty())
            || self.postal.is_some()
            || self.location.is_some()
    }

    fn into_location(self) -> Option<Location> {
        let country = self.country.and_then(|c| c.iso_code).map(str::to_owned);
        // OCSF `location.region` is the ISO 3166-2 code of the principal
        // subdivision ("US-WA"); MaxMind stores the part after the dash.
        let region = self
            .subdivisions
            .as_ref()
            .and_then(|s| s.first())
            .and_then(|s| match (country.as_deref(), s.iso_code) {
                (Some(country), Some(code)) => Some(format!("{country}-{code}")),
                _ => s.names.as_ref().and_then(|n| n.en).map(str::to_owned),
            });
        let location = Location {
            city: english(self.city.as_ref()),
            country,
            region,
            continent: english(self.continent.as_ref()),
            postal_code: self.postal.and_then(|p| p.code).map(str::to_owned),
            lat: self.location.as_ref().and_then(|l| l.latitude),
            long: self.location.as_ref().and_then(|l| l.longitude),
        };
        (location != Location::default()).then_some(location)
    }
}

fn english(named: Option<&Named<'_>>) -> Option<String> {
    named
        .and_then(|n| n.names.as_ref())
        .and_then(|n| n.en)
        .map(str::to_owned)
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    names: Option<EnglishName<'a>>,
}

#[derive(Deserialize)]
struct Coded<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
    #[serde(borrow, default)]
    names: Option<EnglishName<'a>>,
}

#[derive(Deserialize)]
struct EnglishName<'a> {
    #[serde(borrow, default)]
    en: Option<&'a str>,
}

#[derive(Deserialize)]
struct Postal<'a> {
    #[serde(borrow, default)]
    code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Coordinates {
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
}

#[derive(Deserialize)]
struct AsnRecord<'a> {
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(borrow, default)]
    autonomous_system_organization: Option<&'a str>,
}

/// The readers in use and the lookup cache that belongs to them. Replaced as
/// a whole on reload.
struct Snapshot {
    city: Option<Arc<LoadedDb>>,
    asn: Option<Arc<LoadedDb>>,
    cache: quick_cache::sync::Cache<IpAddr, IpInfo>,
}

impl Snapshot {
    fn new(city: Option<Arc<LoadedDb>>, asn: Option<Arc<LoadedDb>>) -> Snapshot {
        // No cache without databases: classification alone is cheaper.
        let entries = if city.is_some() || asn.is_some() {
            LOOKUP_CACHE_ENTRIES
        } else {
            1
        };
        Snapshot {
            city,
            asn,
            cache: quick_cache::sync::Cache::new(entries),
        }
    }
}

/// GeoIP enrichment: address classification plus optional City and ASN
/// databases.
pub struct GeoIp {
    city_path: Option<PathBuf>,
    asn_path: Option<PathBuf>,
    current: ArcSwap<Snapshot>,
    /// Serializes reloads; lookups never take it.
    reload_lock: Mutex<()>,
}

impl GeoIp {
    /// Opens the configured databases. A configured database that is
    /// missing, unreadable, corrupt or of the wrong kind is an error naming
    /// the path and the fix.
    pub fn open(city: Option<&Path>, asn: Option<&Path>) -> anyhow::Result<GeoIp> {
        let city_db = city
            .map(|p| LoadedDb::load(p, DbKind::City).map(Arc::new))
            .transpose()?;
        let asn_db = asn
            .map(|p| LoadedDb::load(p, DbKind::Asn).map(Arc::new))
            .transpose()?;
        Ok(GeoIp {
            city_path: city.map(Path::to_path_buf),
            asn_path: asn.map(Path::to_path_buf),
            current: ArcSwap::from_pointee(Snapshot::new(city_db, asn_db)),
            reload_lock: Mutex::new(()),
        })
    }

    /// Classification only, no databases.
    pub fn disabled() -> GeoIp {
        GeoIp {
            city_path: None,
            asn_path: None,
            current: ArcSwap::from_pointee(Snapshot::new(None, None)),
            reload_lock: Mutex::new(()),
        }
    }

    /// Classifies `ip` and, for a public address, looks it up in the
    /// configured databases. Never fails: an unparseable string is
    /// [`IpClass::Invalid`], an address the databases do not know has no
    /// location or ASN.
    pub fn lookup(&self, ip: &str) -> IpInfo {
        let Some(addr) = parse_ip(ip) else {
            return IpInfo::bare(IpClass::Invalid);
        };
        let (class, addr) = classify(addr);
        if class != IpClass::Public {
            return IpInfo::bare(class);
        }
        let snapshot = self.current.load();
        if snapshot.city.is_none() && snapshot.asn.is_none() {
            return IpInfo::bare(IpClass::Public);
        }
        if let Some(hit) = snapshot.cache.get(&addr) {
            return hit;
        }
        let info = IpInfo {
            class: IpClass::Public,
            location: snapshot
                .city
                .as_ref()
                .and_then(|db| lookup_city(&db.reader, addr)),
            asn: snapshot
                .asn
                .as_ref()
                .and_then(|db| lookup_asn(&db.reader, addr)),
        };
        snapshot.cache.insert(addr, info.clone());
        info
    }

    /// Re-reads each configured database whose file changed on disk (size,
    /// mtime or inode) and swaps it in. Returns whether anything was
    /// reloaded. A file that cannot be read or checked keeps its old reader
    /// and makes this return an error (for the caller to log); it is retried
    /// on the next call. Does blocking file I/O and a full check of a changed
    /// file (about 0.1 s for 50,000 networks): call it from a blocking
    /// context (`spawn_blocking`), every minute or so.
    ///
    /// A same-size rewrite in place within one file-system clock tick keeps
    /// size, mtime and inode and is not seen; updaters that write a new file
    /// and rename it over the old one (as geoipupdate does) always are.
    pub fn reload_if_changed(&self) -> anyhow::Result<bool> {
        let _guard = self
            .reload_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let old = self.current.load_full();
        let mut errors = Vec::new();
        let city = reload_one(
            self.city_path.as_deref(),
            old.city.as_ref(),
            DbKind::City,
            &mut errors,
        );
        let asn = reload_one(
            self.asn_path.as_deref(),
            old.asn.as_ref(),
            DbKind::Asn,
            &mut errors,
        );
        let changed = !same_db(&city, &old.city) || !same_db(&asn, &old.asn);
        if changed {
            self.current.store(Arc::new(Snapshot::new(city, asn)));
        }
        match errors.len() {
            0 => Ok(changed),
            1 => Err(errors.remove(0)),
            _ => Err(anyhow::anyhow!(
                "{}",
                errors
                    .iter()
                    .map(|e| format!("{e:#}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }
}

fn same_db(a: &Option<Arc<LoadedDb>>, b: &Option<Arc<LoadedDb>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// The database to use from now on for one configured path: the old one if
/// the file is unchanged or the new one cannot be loaded, else the new one.
fn reload_one(
    path: Option<&Path>,
    old: Option<&Arc<LoadedDb>>,
    kind: DbKind,
    errors: &mut Vec<anyhow::Error>,
) -> Option<Arc<LoadedDb>> {
    let path = path?;
    let unchanged = match std::fs::metadata(path) {
        Ok(metadata) => old.is_some_and(|db| db.stamp == FileStamp::of(&metadata)),
        Err(e) => {
            errors.push(anyhow::anyhow!(
                "{} {}: cannot stat it ({e}); keeping the database loaded earlier",
                kind.label(),
                path.display()
            ));
            return old.cloned();
        }
    };
    if unchanged {
        return old.cloned();
    }
    match LoadedDb::load(path, kind) {
        Ok(db) => Some(Arc::new(db)),
        Err(e) => {
            errors.push(e.context(format!(
                "reloading {} {} failed; keeping the database loaded earlier",
                kind.label(),
                path.display()
            )));
            old.cloned()
        }
    }
}

fn lookup_city(reader: &Reader<Vec<u8>>, addr: IpAddr) -> Option<Location> {
    if addr.is_ipv6() && reader.metadata().ip_version == 4 {
        return None;
    }
    match reader.lookup(addr).and_then(|r| r.decode::<CityRecord>()) {
        Ok(record) => record.and_then(CityRecord::into_location),
        Err(e) => {
            // `verify` at load makes this unexpected; the record is still
            // delivered, only without a location.
            tracing::warn!(ip = %addr, error = %e, "GeoIP City lookup failed");
            None
        }
    }
}

fn lookup_asn(reader: &Reader<Vec<u8>>, addr: IpAddr) -> Option<Asn> {
    if addr.is_ipv6() && reader.metadata().ip_version == 4 {
        return None;
    }
    match reader.lookup(addr).and_then(|r| r.decode::<AsnRecord>()) {
        Ok(record) => record.and_then(|r| {
            Some(Asn {
                number: r.autonomous_system_number?,
                name: r.autonomous_system_organization.map(str::to_owned),
            })
        }),
        Err(e) => {
            tracing::warn!(ip = %addr, error = %e, "GeoIP ASN lookup failed");
            None
        }
    }
}

impl IpInfo {
    fn bare(class: IpClass) -> IpInfo {
        IpInfo {
            class,
            location: None,
            asn: None,
        }
    }
}

/// Parses an address as it appears in an activity: surrounding whitespace and
/// an IPv6 zone index (`fe80::1%eth0`) are tolerated.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if text.len() > 64 {
        return None;
    }
    if let Ok(addr) = text.parse() {
        return Some(addr);
    }
    let (addr, zone) = text.split_once('%')?;
    if zone.is_empty() {
        return None;
    }
    addr.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// The class of `addr`, and the address to look up: IPv6 forms that embed an
/// IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) are
/// classified and looked up as that IPv4 address.
pub fn classify(addr: IpAddr) -> (IpClass, IpAddr) {
    match addr {
        IpAddr::V4(v4) => (classify_v4(v4), addr),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return (classify_v4(v4), IpAddr::V4(v4));
            }
            (classify_v6(v6), addr)
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> IpClass {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (127, _, _) => IpClass::Loopback,
        (10, _, _) => IpClass::Private,
        (172, 16..=31, _) => IpClass::Private,
        (192, 168, _) => IpClass::Private,
        (169, 254, _) => IpClass::LinkLocal,
        // "This network" (RFC 791), including the unspecified 0.0.0.0.
        (0, _, _) => IpClass::Reserved,
        // Shared address space for carrier-grade NAT (RFC 6598).
        (100, 64..=127, _) => IpClass::Reserved,
        // IETF protocol assignments (RFC 6890).
        (192, 0, 0) => IpClass::Reserved,
        // Documentation: TEST-NET-1, -2, -3 (RFC 5737).
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => IpClass::Reserved,
        // 6to4 relay anycast (RFC 7526, deprecated).
        (192, 88, 99) => IpClass::Reserved,
        // Benchmarking (RFC 2544).
        (198, 18..=19, _) => IpClass::Reserved,
        // Multicast (224/4), reserved (240/4) and broadcast.
        (224..=255, _, _) => IpClass::Reserved,
        _ => IpClass::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> IpClass {
    let s = ip.segments();
    if ip.is_loopback() {
        return IpClass::Loopback;
    }
    match s[0] {
        // Unspecified, IPv4-compatible (deprecated) and the rest of ::/8.
        0x0000..=0x00ff => IpClass::Reserved,
        // Discard-only prefix 100::/64 (RFC 6666) and the rest of 0100::/8.
        0x0100..=0x01ff => IpClass::Reserved,
        // Unique local addresses fc00::/7 (RFC 4193).
        0xfc00..=0xfdff => IpClass::Private,
        // Link-local fe80::/10.
        0xfe80..=0xfebf => IpClass::LinkLocal,
        // Site-local fec0::/10 (deprecated, RFC 3879): private by intent.
        0xfec0..=0xfeff => IpClass::Private,
        // Multicast ff00::/8.
        0xff00..=0xffff => IpClass::Reserved,
        // Global unicast 2000::/3, less its special-purpose blocks.
        0x2000..=0x3fff => {
            // IETF protocol assignments 2001::/23 (RFC 2928), incl. Teredo.
            let ietf = s[0] == 0x2001 && s[1] < 0x0200;
            // Documentation 2001:db8::/32 (RFC 3849) and 3fff::/20 (RFC 9637).
            let documentation =
                (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] == 0x3fff && s[1] < 0x1000);
            if ietf || documentation {
                IpClass::Reserved
            } else {
                IpClass::Public
            }
        }
        // 5f00::/16 (SRv6 SIDs) and everything else outside 2000::/3 is
        // not allocated for global unicast.
        _ => IpClass::Reserved,
    }
}

/// The IPv4 address embedded in an IPv4-mapped (`::ffff:0:0/96`) or
/// well-known-prefix NAT64 (`64:ff9b::/96`, RFC 6052) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., a, b, c, d] = ip.octets();
        return Some(Ipv4Addr::new(a, b, c, d));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(ip: &str) -> IpClass {
        classify(ip.parse().unwrap()).0
    }

    #[test]
    fn ipv4_classes() {
        for (ip, expected) in [
            ("8.8.8.8", IpClass::Public),
            ("81.2.69.160", IpClass::Public),
            ("100.63.255.255", IpClass::Public),
            ("100.128.0.1", IpClass::Public),
            ("172.15.255.255", IpClass::Public),
            ("172.32.0.1", IpClass::Public),
            ("223.255.255.255", IpClass::Public),
            ("192.0.1.1", IpClass::Public),
            ("10.1.2.3", IpClass::Private),
            ("172.16.0.1", IpClass::Private),
            ("172.31.255.254", IpClass::Private),
            ("192.168.1.1", IpClass::Private),
            ("127.0.0.1", IpClass::Loopback),
            ("127.255.0.9", IpClass::Loopback),
            ("169.254.169.254", IpClass::LinkLocal),
            ("0.0.0.0", IpClass::Reserved),
            ("0.1.2.3", IpClass::Reserved),
            ("100.64.0.1", IpClass::Reserved),
            ("100.127.255.255", IpClass::Reserved),
            ("192.0.0.8", IpClass::Reserved),
            ("192.0.2.1", IpClass::Reserved),
            ("198.51.100.7", IpClass::Reserved),
            ("203.0.113.200", IpClass::Reserved),
            ("192.88.99.1", IpClass::Reserved),
            ("198.18.0.1", IpClass::Reserved),
            ("198.19.255.255", IpClass::Reserved),
            ("224.0.0.1", IpClass::Reserved),
            ("239.255.255.250", IpClass::Reserved),
            ("240.0.0.1", IpClass::Reserved),
            ("255.255.255.255", IpClass::Reserved),
        ] {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn ipv6_classes() {
        for (ip, expected) in [
            ("2001:4860:4860::8888", IpClass::Public),
            ("2a00:1450:4001::1", IpClass::Public),
            ("2002:c000:0204::1", IpClass::Public),
            ("2001:200::1", IpClass::Public),
            ("::1", IpClass::Loopback),
            ("::", IpClass::Reserved),
            ("::1.2.3.4", IpClass::Reserved),
            ("100::1", IpClass::Reserved),
            ("2001::1", IpClass::Reserved),
            ("2001:db8::1", IpClass::Reserved),
            ("2001:db8:ffff::1", IpClass::Reserved),
            ("3fff::1", IpClass::Reserved),
            ("3fff:fff::1", IpClass::Reserved),
            ("3fff:1000::1", IpClass::Public),
            ("3ff0::1", IpClass::Public),
            ("5f00::1", IpClass::Reserved),
            ("4000::1", IpClass::Reserved),
            ("ff02::1", IpClass::Reserved),
            ("fc00::1", IpClass::Private),
            ("fd12:3456::1", IpClass::Private),
            ("fec0::1", IpClass::Private),
            ("fe80::1", IpClass::LinkLocal),
            ("febf::1", IpClass::LinkLocal),
        ] {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn embedded_ipv4_takes_the_class_and_address_of_the_ipv4() {
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(classify(mapped).0, IpClass::Private);
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(classify(mapped).0, IpClass::Loopback);
        let mapped: IpAddr = "::ffff:81.2.69.160".parse().unwrap();
        assert_eq!(
            classify(mapped),
            (IpClass::Public, "81.2.69.160".parse().unwrap())
        );
        let nat64: IpAddr = "64:ff9b::192.168.0.1".parse().unwrap();
        assert_eq!(classify(nat64).0, IpClass::Private);
        let nat64: IpAddr = "64:ff9b::8.8.8.8".parse().unwrap();
        assert_eq!(
            classify(nat64),
            (IpClass::Public, "8.8.8.8".parse().unwrap())
        );
    }

    #[test]
    fn parsing_tolerates_whitespace_and_zone_index_only() {
        assert_eq!(parse_ip(" 8.8.8.8 "), Some("8.8.8.8".parse().unwrap()));
        assert_eq!(parse_ip("fe80::1%eth0"), Some("fe80::1".parse().unwrap()));
        for bad in [
            "",
            "not an ip",
            "1.2.3",
            "256.1.1.1",
            "1.2.3.4:443",
            "[::1]",
            "fe80::1%",
            "1.2.3.4%eth0",
            &"1".repeat(10_000),
        ] {
            assert_eq!(parse_ip(bad), None, "{bad:.40}");
        }
    }

    #[test]
    fn lookup_without_databases_only_classifies() {
        let geoip = GeoIp::disabled();
        assert_eq!(geoip.lookup("8.8.8.8"), IpInfo::bare(IpClass::Public));
        assert_eq!(geoip.lookup("10.0.0.1"), IpInfo::bare(IpClass::Private));
        assert_eq!(geoip.lookup("garbage"), IpInfo::bare(IpClass::Invalid));
        assert!(!geoip.reload_if_changed().unwrap());
    }
}
