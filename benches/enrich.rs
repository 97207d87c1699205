//! Enrichment throughput: GeoIP lookups (cache hits, cache misses, special
//! addresses), opening a database (with its full check), and user-agent
//! parsing with and without the cache.
//!
//! `cargo bench --bench enrich`. The databases are built here with the same
//! test-support code as `tests/it/enrich.rs`; the user agents are the fixtures.

#[path = "../tests/it/support/mmdb.rs"]
#[allow(dead_code)]
mod mmdb;

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::path::Path;

use claudit::enrich::geoip::GeoIp;
use claudit::enrich::useragent::UserAgentParser;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// Deterministic pseudo-random numbers (xorshift64*), so every run measures
/// the same addresses.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Distinct public /24 networks, as IPv4 base addresses.
fn public_networks(count: usize) -> Vec<Ipv4Addr> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seen = std::collections::HashSet::new();
    let mut networks = Vec::with_capacity(count);
    while networks.len() < count {
        let n = (rng.next() >> 32) as u32 & 0xffff_ff00;
        let ip = Ipv4Addr::from(n);
        let public = !(ip.is_private()
            || ip.is_loopback()
            || ip.is_link_local()
            || ip.is_multicast()
            || ip.octets()[0] == 0
            || ip.octets()[0] >= 224
            || ip.octets()[0] == 100);
        if public && seen.insert(n) {
            networks.push(ip);
        }
    }
    networks
}

fn build_databases(dir: &Path, networks: &[Ipv4Addr]) -> (std::path::PathBuf, std::path::PathBuf) {
    let city_rows: Vec<_> = networks
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            mmdb::city_row(
                &format!("{ip}/24"),
                &format!("City {}", i % 5000),
                ["US", "GB", "DE", "JP", "BR", "IN"][i % 6],
                ("EU", "Europe"),
                ("ABC", "Some Region"),
                "12345",
                (i as f64 % 90.0, i as f64 % 180.0),
            )
        })
        .collect();
    let asn_rows: Vec<_> = networks
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            mmdb::asn_row(
                &format!("{ip}/24"),
                64_512 + (i as u32 % 1000),
                "Example Networks Inc.",
            )
        })
        .collect();
    let city = dir.join("City.mmdb");
    let asn = dir.join("ASN.mmdb");
    std::fs::write(&city, mmdb::city_db(&city_rows)).unwrap();
    std::fs::write(&asn, mmdb::asn_db(&asn_rows)).unwrap();
    (city, asn)
}

fn geoip(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let networks = public_networks(50_000);
    let (city, asn) = build_databases(dir.path(), &networks);
    let geoip = GeoIp::open(Some(&city), Some(&asn)).unwrap();

    // Addresses inside the networks; far more distinct ones than the lookup
    // cache holds, so nearly every lookup misses it.
    let mut rng = Rng(42);
    let many: Vec<String> = (0..200_000)
        .map(|_| {
            let base = u32::from(networks[(rng.next() % networks.len() as u64) as usize]);
            Ipv4Addr::from(base | (rng.next() as u32 & 0xff)).to_string()
        })
        .collect();
    assert!(geoip.lookup(&many[0]).location.is_some());
    // A working set that fits the cache: the same actors again and again.
    let few: Vec<String> = many[..100].to_vec();

    let mut group = c.benchmark_group("geoip");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("lookup_cache_miss", |b| {
        b.iter(|| {
            i = (i + 1) % many.len();
            black_box(geoip.lookup(black_box(&many[i])))
        })
    });
    let mut j = 0;
    group.bench_function("lookup_cache_hit", |b| {
        b.iter(|| {
            j = (j + 1) % few.len();
            black_box(geoip.lookup(black_box(&few[j])))
        })
    });
    group.bench_function("lookup_private_address", |b| {
        b.iter(|| black_box(geoip.lookup(black_box("10.20.30.40"))))
    });
    group.finish();

    let mut group = c.benchmark_group("geoip_open");
    group.sample_size(10);
    group.bench_function("open_and_verify_50k_networks_city_and_asn", |b| {
        b.iter(|| black_box(GeoIp::open(Some(&city), Some(&asn)).unwrap()))
    });
    group.finish();
}

fn user_agents(c: &mut Criterion) {
    let user_agents: Vec<String> = include_str!("../fixtures/useragents.txt")
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| line.split('\t').next().unwrap().to_string())
        .collect();
    let parser = UserAgentParser::new(10_000);

    let mut group = c.benchmark_group("user_agent");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("parse_uncached", |b| {
        b.iter(|| {
            i = (i + 1) % user_agents.len();
            black_box(parser.parse_uncached(black_box(&user_agents[i])))
        })
    });
    let mut j = 0;
    group.bench_function("parse_cached", |b| {
        b.iter(|| {
            j = (j + 1) % user_agents.len();
            black_box(parser.parse(black_box(&user_agents[j])))
        })
    });
    // A cache too small for the mix: every parse misses and inserts.
    group.throughput(Throughput::Elements(user_agents.len() as u64));
    group.bench_function("parse_cache_thrash", |b| {
        b.iter_batched(
            || UserAgentParser::new(1),
            |small| {
                for ua in &user_agents {
                    black_box(small.parse(ua));
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, geoip, user_agents);
criterion_main!(benches);
