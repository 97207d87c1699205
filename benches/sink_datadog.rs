//! Datadog encoder throughput: 1,000-event batches of OCSF events (the
//! fixtures' activities through the mapper) to request bodies.
//! `cargo bench --bench sink_datadog`; target at least 200,000 events/s.

// The integration tests' configuration builder (it uses nothing else of
// their support module).
#[path = "../tests/it/support/config.rs"]
#[allow(dead_code)]
mod config_file;

use std::hint::black_box;

use claudit::model::Activity;
use claudit::ocsf::{MapContext, Mapper};
use claudit::sinks::datadog::DatadogSink;
use claudit::store::BatchRecord;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn batch() -> Vec<BatchRecord> {
    let mapper = Mapper::new(&Default::default());
    let lines: Vec<&str> = include_str!("../fixtures/activities/catalogue.ndjson")
        .lines()
        .collect();
    (0..1000)
        .map(|i| {
            let activity = Activity::from_json(lines[i % lines.len()]).unwrap();
            BatchRecord {
                seq: i as i64 + 1,
                activity_id: activity.id.clone(),
                created_at_ms: activity.created_at_ms(),
                payload: mapper.map_json(&activity, &MapContext::default()),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let config = config_file::sink_config(
        config_file::sink("dd", "datadog")
            .set("site", "US1")
            .set("api_key", "${K}"),
        &[("K", "bench-key")],
    );
    let Some(cfg) = config.kind.get::<claudit::config::DatadogSinkConfig>() else {
        unreachable!()
    };
    let sink = DatadogSink::new(cfg).unwrap();
    let records = batch();
    let refs: Vec<&BatchRecord> = records.iter().collect();
    let now = claudit::store::now_ms();
    let mut group = c.benchmark_group("datadog");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("encode_1000_ocsf_events", |b| {
        b.iter(|| {
            let encoded = sink.encode(black_box(&refs), now);
            encoded
                .requests
                .iter()
                .map(|r| r.body().len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
