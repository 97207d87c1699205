//! Detection cost per activity: the whole built-in pack (every rule
//! enabled, GeoIP-enriched contexts so the geo rules work) beside the
//! baseline measured in the same run, rendering the same journal rows to
//! OCSF as a sink does (`Mapper::render_journaled`). The budget:
//! detection adds at most 20% to the CPU per activity.
//!
//! `cargo bench --bench detect`. Records come from the simulator's
//! generator (every catalogued type, all actor variants), 37 ms apart, so
//! windows hold realistic numbers of activities.
//!
//! The second group, `detect-backlog`, is what a first start over a day of
//! history costs: `CLAUDIT_BENCH_DETECT_BACKLOG` records (default 20,000)
//! spread over 24 hours and evaluated newest first, as the journal holds a
//! backlog read from the newest-first feed (every activity lands before
//! the ones a window already holds, the costliest order for windows),
//! every row journaled a minute after the newest (as a first start
//! journals its backlog: all of it within a window's reach of arrival).

#[path = "../tests/it/support/mmdb.rs"]
#[allow(dead_code)]
mod mmdb;

use std::collections::BTreeSet;
use std::hint::black_box;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use claudit::config::EnrichConfig;
use claudit::detect::{DetectionSettings, Engine, Input};
use claudit::enrich::Enricher;
use claudit::ocsf::{JournalContext, Mapper};
use claudit::sim::generate::Generator;

const RECORDS: usize = 10_000;

/// A journal row: raw text, context JSON, created_at ms, and what the
/// detection task would parse from them.
struct Row {
    id: String,
    raw: String,
    context_json: String,
    created_ms: i64,
}

fn rows(dir: &std::path::Path, count: usize, apart_ms: i64) -> Vec<Row> {
    let mut generator = Generator::new(11);
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let records: Vec<(String, String, i64)> = (0..count)
        .map(|i| {
            let created = start + Duration::milliseconds(i as i64 * apart_ms);
            let id = format!("activity_bench{i:08}");
            let raw = generator.activity(&id, created).to_string();
            (id, raw, created.timestamp_millis())
        })
        .collect();
    let mut nets = BTreeSet::new();
    for (_, r, _) in &records {
        let v: serde_json::Value = serde_json::from_str(r).unwrap();
        if let Some(ip) = v["actor"]["ip_address"]
            .as_str()
            .and_then(|s| s.parse::<std::net::Ipv4Addr>().ok())
        {
            let o = ip.octets();
            nets.insert(format!("{}.{}.{}.0/24", o[0], o[1], o[2]));
        }
    }
    let nets: Vec<String> = nets.into_iter().collect();
    let (city, asn) = mmdb::write_uniform_dbs(&nets, dir);
    let enricher = Enricher::new(&EnrichConfig {
        geoip_city_db: Some(city),
        geoip_asn_db: Some(asn),
        user_agent_cache_size: 10_000,
    })
    .unwrap();
    records
        .into_iter()
        .map(|(id, raw, created_ms)| {
            let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
            let actor = &v["actor"];
            let context = JournalContext {
                self_generated: false,
                enrichment: Some(
                    enricher.enrich(actor["ip_address"].as_str(), actor["user_agent"].as_str()),
                ),
            };
            Row {
                id,
                raw,
                context_json: context.to_json(),
                created_ms,
            }
        })
        .collect()
}

fn detect(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let rows = rows(dir.path(), RECORDS, 37);
    let mapper = Mapper::default();
    let settings = DetectionSettings::default();
    let set = settings.load_rules().unwrap();

    let mut group = c.benchmark_group("detect");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.sample_size(20);
    group.bench_function("baseline: render the journal row to OCSF", |b| {
        b.iter(|| {
            for r in &rows {
                black_box(mapper.render_journaled(
                    &r.raw,
                    Some(&r.context_json),
                    r.created_ms,
                    r.created_ms,
                ));
            }
        })
    });
    group.bench_function("detection: parse the row, evaluate the whole pack", |b| {
        b.iter_batched(
            || Engine::new(&set, &settings).unwrap(),
            |mut engine| {
                (
                    black_box(evaluate_rows(&mut engine, rows.iter(), None)),
                    engine,
                )
            },
            BatchSize::PerIteration,
        )
    });
    // Where the time goes: the parse of the row alone, and the evaluation
    // of rows parsed beforehand.
    group.bench_function("part: parse the row and its context", |b| {
        b.iter(|| {
            for r in &rows {
                let activity: serde_json::Value = serde_json::from_str(&r.raw).unwrap();
                let context: JournalContext = serde_json::from_str(&r.context_json).unwrap();
                black_box((activity, context));
            }
        })
    });
    let parsed: Vec<(serde_json::Value, Arc<JournalContext>)> = rows
        .iter()
        .map(|r| {
            (
                serde_json::from_str(&r.raw).unwrap(),
                Arc::new(serde_json::from_str(&r.context_json).unwrap()),
            )
        })
        .collect();
    group.bench_function("part: evaluate the whole pack (rows parsed)", |b| {
        b.iter_batched(
            || Engine::new(&set, &settings).unwrap(),
            |mut engine| {
                let mut findings = 0;
                for (r, (activity, context)) in rows.iter().zip(&parsed) {
                    findings += engine
                        .evaluate(&Input {
                            id: &r.id,
                            created_at_ms: r.created_ms,
                            activity,
                            context,
                            journaled_at_ms: r.created_ms,
                            backfill: false,
                            replay: false,
                        })
                        .len();
                }
                black_box(findings)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Parses a row and evaluates it, as the detection task does; a row
/// arrives when it was created, or at `arrived_ms` (a backlog journaled
/// at once).
fn evaluate_rows<'a>(
    engine: &mut Engine,
    rows: impl Iterator<Item = &'a Row>,
    arrived_ms: Option<i64>,
) -> usize {
    let mut findings = 0;
    for r in rows {
        let activity: serde_json::Value = serde_json::from_str(&r.raw).unwrap();
        let context: Arc<JournalContext> = Arc::new(serde_json::from_str(&r.context_json).unwrap());
        findings += engine
            .evaluate(&Input {
                id: &r.id,
                created_at_ms: r.created_ms,
                activity: &activity,
                context: &context,
                journaled_at_ms: arrived_ms.unwrap_or(r.created_ms),
                backfill: false,
                replay: false,
            })
            .len();
    }
    findings
}

fn detect_backlog(c: &mut Criterion) {
    let count: usize = std::env::var("CLAUDIT_BENCH_DETECT_BACKLOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let apart_ms = (24 * 3600 * 1000 / count.max(1)) as i64;
    let rows = rows(dir.path(), count, apart_ms);
    // The backlog is journaled within a minute of its newest activity.
    let arrived = rows.last().map(|r| r.created_ms + 60_000);
    let settings = DetectionSettings::default();
    let set = settings.load_rules().unwrap();

    let mut group = c.benchmark_group("detect-backlog");
    group.throughput(Throughput::Elements(count as u64));
    group.sample_size(10);
    group.bench_function("baseline: parse the row and its context", |b| {
        b.iter(|| {
            for r in rows.iter().rev() {
                let activity: serde_json::Value = serde_json::from_str(&r.raw).unwrap();
                let context: JournalContext = serde_json::from_str(&r.context_json).unwrap();
                black_box((activity, context));
            }
        })
    });
    group.bench_function("whole pack, newest first", |b| {
        b.iter_batched(
            || Engine::new(&set, &settings).unwrap(),
            // The engine is returned so that freeing its windows is not timed.
            |mut engine| {
                (
                    black_box(evaluate_rows(&mut engine, rows.iter().rev(), arrived)),
                    engine,
                )
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("whole pack, oldest first", |b| {
        b.iter_batched(
            || Engine::new(&set, &settings).unwrap(),
            |mut engine| {
                (
                    black_box(evaluate_rows(&mut engine, rows.iter(), arrived)),
                    engine,
                )
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, detect, detect_backlog);
criterion_main!(benches);
