//! Normalization throughput: parse the raw activity, enrich it (GeoIP City
//! and ASN lookups, cached user-agent parsing), map it to OCSF and serialize
//! the event, beside the floor measured in the same run: parsing the same
//! raw JSON with serde_json and serializing it again.
//!
//! `cargo bench --bench normalize`. Records come from the simulator's
//! generator (every catalogued type, all actor variants); the GeoIP
//! databases are built here and cover the IPv4 /24s those records use.

#[path = "../tests/it/support/mmdb.rs"]
#[allow(dead_code)]
mod mmdb;

use std::hint::black_box;

use chrono::{Duration, TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::value::RawValue;

use claudit::config::EnrichConfig;
use claudit::enrich::Enricher;
use claudit::model::{Activity, ActivityHead};
use claudit::ocsf::{JournalContext, MapContext, Mapper};
use claudit::sim::generate::Generator;

const RECORDS: usize = 10_000;

fn records() -> Vec<String> {
    let mut generator = Generator::new(7);
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    (0..RECORDS)
        .map(|i| {
            let created = start + Duration::milliseconds(i as i64 * 37);
            generator
                .activity(&format!("activity_bench{i:08}"), created)
                .to_string()
        })
        .collect()
}

fn geoip_for(records: &[String], dir: &std::path::Path) -> Enricher {
    let (city_path, asn_path) = mmdb::write_uniform_dbs(&mmdb::networks_of(records), dir);
    Enricher::new(&EnrichConfig {
        geoip_city_db: Some(city_path),
        geoip_asn_db: Some(asn_path),
        user_agent_cache_size: 10_000,
    })
    .unwrap()
}

fn normalize(c: &mut Criterion) {
    let records = records();
    let dir = tempfile::tempdir().unwrap();
    let enricher = geoip_for(&records, dir.path());
    let mapper = Mapper::default();
    let now = Utc::now();

    let mut group = c.benchmark_group("normalize");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.sample_size(20);
    group.bench_function("floor: serde_json parse + serialize", |b| {
        b.iter(|| {
            for r in &records {
                let v: serde_json::Value = serde_json::from_str(r).unwrap();
                black_box(serde_json::to_string(&v).unwrap());
            }
        })
    });
    group.bench_function("claudit: parse + enrich + map + serialize", |b| {
        b.iter(|| {
            for r in &records {
                let raw = RawValue::from_string(r.clone()).unwrap();
                let activity = Activity::parse(raw, now);
                let enrichment = activity
                    .actor
                    .as_ref()
                    .map(|a| enricher.enrich(a.ip_address.as_deref(), a.user_agent.as_deref()));
                let ctx = MapContext {
                    processed_ms: 0,
                    enrichment: enrichment.as_ref(),
                    self_generated: false,
                };
                black_box(mapper.map_json(&activity, &ctx));
            }
        })
    });
    group.bench_function("stage: parse only", |b| {
        b.iter(|| {
            for r in &records {
                let raw = RawValue::from_string(r.clone()).unwrap();
                black_box(Activity::parse(raw, now));
            }
        })
    });
    let parsed: Vec<Activity> = records
        .iter()
        .map(|r| Activity::from_json(r).unwrap())
        .collect();
    group.bench_function("stage: enrich only", |b| {
        b.iter(|| {
            for a in &parsed {
                black_box(
                    a.actor
                        .as_ref()
                        .map(|a| enricher.enrich(a.ip_address.as_deref(), a.user_agent.as_deref())),
                );
            }
        })
    });
    group.bench_function("stage: head only (ActivityHead::read)", |b| {
        b.iter(|| {
            for r in &records {
                let raw = RawValue::from_string(r.clone()).unwrap();
                black_box(ActivityHead::read(raw, now));
            }
        })
    });
    // The two halves of the daemon's per-record work since the journal
    // keeps raw + context: the poller's ingest and a sink's render.
    group.bench_function("ingest: head + enrich + context JSON", |b| {
        b.iter(|| {
            for r in &records {
                let raw = RawValue::from_string(r.clone()).unwrap();
                let head = ActivityHead::read(raw, now);
                let enrichment = head
                    .actor
                    .as_ref()
                    .map(|(ip, ua)| enricher.enrich(ip.as_deref(), ua.as_deref()));
                let context = JournalContext {
                    self_generated: false,
                    enrichment,
                };
                black_box((head, context.to_json()));
            }
        })
    });
    let rows: Vec<(String, String, i64)> = parsed
        .iter()
        .map(|a| {
            let enrichment = a
                .actor
                .as_ref()
                .map(|a| enricher.enrich(a.ip_address.as_deref(), a.user_agent.as_deref()));
            let context = JournalContext {
                self_generated: false,
                enrichment,
            };
            (a.raw.to_string(), context.to_json(), a.created_at_ms())
        })
        .collect();
    group.bench_function("render: journal row to OCSF", |b| {
        b.iter(|| {
            for (raw, context, created_at_ms) in &rows {
                black_box(mapper.render_journaled(raw, Some(context), *created_at_ms, 0));
            }
        })
    });
    group.bench_function("stage: map + serialize only", |b| {
        b.iter(|| {
            for a in &parsed {
                black_box(mapper.map_json(a, &MapContext::default()));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, normalize);
criterion_main!(benches);
