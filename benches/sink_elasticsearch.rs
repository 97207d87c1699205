//! Elasticsearch encoder throughput: 1,000 realistic OCSF events (the
//! activity catalogue through the real mapper) to `_bulk` request bodies,
//! with and without gzip. `cargo bench --bench sink_elasticsearch`.

use std::hint::black_box;

use claudit::sinks::elasticsearch::BulkEncoder;
use claudit::sinks::http::gzip;
use claudit::store::BatchRecord;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn batch() -> Vec<BatchRecord> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/activities/catalogue.ndjson"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mapper = claudit::ocsf::Mapper::default();
    let enricher = claudit::enrich::Enricher::without_geoip();
    let events: Vec<(String, i64, String)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let activity = claudit::model::Activity::from_json(line).unwrap();
            let enrichment = activity
                .actor
                .as_ref()
                .map(|a| enricher.enrich(a.ip_address.as_deref(), a.user_agent.as_deref()));
            let ctx = claudit::ocsf::MapContext {
                processed_ms: 0,
                enrichment: enrichment.as_ref(),
                self_generated: false,
            };
            (
                activity.id.clone(),
                activity.created_at.timestamp_millis(),
                mapper.map_json(&activity, &ctx),
            )
        })
        .collect();
    (0..1000)
        .map(|i| {
            let (id, created_at_ms, payload) = &events[i % events.len()];
            BatchRecord {
                seq: i as i64 + 1,
                activity_id: format!("{id}_{i}"),
                created_at_ms: *created_at_ms,
                payload: payload.clone(),
            }
        })
        .collect()
}

fn encoder(c: &mut Criterion) {
    let records = batch();
    let refs: Vec<&BatchRecord> = records.iter().collect();
    let encoder = BulkEncoder::new("logs-claudit.ocsf-default", 5_000_000);
    let mut group = c.benchmark_group("elasticsearch_encode");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("1000_ocsf_events", |b| {
        b.iter(|| black_box(encoder.encode(black_box(&refs))))
    });
    group.bench_function("1000_ocsf_events_gzip", |b| {
        b.iter(|| {
            let encoded = encoder.encode(black_box(&refs));
            for r in &encoded.requests {
                black_box(gzip(&r.body));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, encoder);
criterion_main!(benches);
