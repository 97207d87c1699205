//! Splunk HEC encoder throughput: 1,000-event batches of realistic OCSF
//! events (the activity catalogue fixture through the mapper) to request
//! bodies, uncompressed and gzipped. `cargo bench --bench sink_splunk_hec`.

use std::hint::black_box;
use std::time::Duration;

use claudit::config::{HttpSinkConfig, OcsfConfig, SplunkHecSinkConfig};
use claudit::model::Activity;
use claudit::ocsf::{MapContext, Mapper};
use claudit::sinks::http::gzip;
use claudit::sinks::splunk_hec::SplunkHecSink;
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
    let sink = SplunkHecSink::new(&SplunkHecSinkConfig {
        url: "https://splunk.example.com:8088".into(),
        token: "00000000-0000-4000-8000-000000000000".to_string().into(),
        host: Some("collector-1".into()),
        source: "claudit".into(),
        sourcetype: "anthropic:claude:compliance".into(),
        index: Some("audit".into()),
        fields: vec![("org".into(), "acme".into())],
        ack: false,
        ack_poll_interval: Duration::from_secs(5),
        ack_timeout: Duration::from_secs(300),
        layout: None,
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
    println!("1,000 events -> {bytes} bytes of HEC requests");
    let mut group = c.benchmark_group("splunk_hec_encode");
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
