//! Sumo Logic encoder throughput: 1,000-event batches of realistic OCSF
//! events (the activity catalogue fixture through the mapper) to request
//! bodies, uncompressed and gzipped. `cargo bench --bench sink_sumo`.

use std::hint::black_box;
use std::time::Duration;

use claudit::config::{HttpSinkConfig, OcsfConfig, SumoSinkConfig};
use claudit::model::Activity;
use claudit::ocsf::{MapContext, Mapper};
use claudit::sinks::http::gzip;
use claudit::sinks::sumo::SumoSink;
use claudit::store::BatchRecord;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// 1,000 OCSF events, cycling through the catalogue.
fn batch() -> Vec<BatchRecord> {
    let text = include_str!("../fixtures/activities/catalogue.ndjson");
    let mapper = Mapper::new(&OcsfConfig::default());
    let events: Vec<(String, i64, String)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let a = Activity::from_json(l).expect("catalogue line");
            let json = mapper.map_json(&a, &MapContext::default());
            (a.id.clone(), a.created_at_ms(), json)
        })
        .collect();
    (0..1000)
        .map(|i| {
            let (id, at, payload) = &events[i % events.len()];
            BatchRecord {
                seq: i as i64 + 1,
                activity_id: id.clone(),
                created_at_ms: *at,
                payload: payload.clone(),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let sink = SumoSink::new(&SumoSinkConfig {
        url: "https://collectors.sumologic.com/receiver/v1/http/CODE"
            .to_string()
            .into(),
        category: Some("security/claude".into()),
        source_name: None,
        source_host: None,
        fields: Vec::new(),
        http: HttpSinkConfig {
            tls_ca_file: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            compression: true,
        },
    })
    .unwrap();
    let records = batch();
    let bytes: usize = sink
        .encode(&records)
        .requests
        .iter()
        .map(|r| r.body.len())
        .sum();
    println!("1,000 events -> {bytes} bytes of NDJSON requests");
    let mut group = c.benchmark_group("sumo_encode");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("1000_events", |b| {
        b.iter(|| black_box(sink.encode(black_box(&records))))
    });
    group.bench_function("1000_events_gzip", |b| {
        b.iter(|| {
            let encoded = sink.encode(black_box(&records));
            let packed: Vec<Vec<u8>> = encoded.requests.iter().map(|r| gzip(&r.body)).collect();
            black_box(packed)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
