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

use std::collections::{BTreeSet, HashMap};
use std::hint::black_box;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use claudit::config::EnrichConfig;
use claudit::detect::event::ActivityEvent;
use claudit::detect::{DetectionSettings, Engine, Input};
use claudit::enrich::Enricher;
use claudit::ocsf::{JournalContext, Mapper};
use claudit::sim::generate::Generator;
use rsigma_eval::event::{Event, EventValue};

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
    // rsigma-eval's matching alone (its own candidate index on): every
    // rule's detections, as the engine gives them to it, against every
    // parsed row; no windows, no findings.
    let inputs: Vec<_> = set
        .iter()
        .flat_map(|def| def.inputs.iter())
        .enumerate()
        .map(|(i, input)| {
            // As the engine gives it to rsigma-eval: the rule under a key.
            let mut rule = input.clone();
            rule.id = Some(format!("claudit:{i}"));
            rule
        })
        .collect();
    let mut sigma = rsigma_eval::Engine::new();
    for input in &inputs {
        sigma.add_rule(input).unwrap();
    }
    let no_embargo = |_: &str| false;
    group.bench_function("part: rsigma-eval matching alone (rows parsed)", |b| {
        b.iter(|| {
            let mut matched = 0;
            for (activity, context) in &parsed {
                let event = ActivityEvent::new(activity, context, &no_embargo);
                matched += sigma.evaluate(&event).len();
            }
            black_box(matched)
        })
    });
    // The crate's best case, twice over: every field a rule asks for
    // resolved before the timing (a table lookup per field), and each row
    // matched only against the detections that match some row of its type
    // in this data (an oracle: a dispatch by type that is sound has at
    // least these). What is left is rsigma-eval's own work for the matches
    // (the pack's correlation rules match nearly every activity).
    let asked = fields_asked(&sigma, &parsed);
    let resolved: Vec<Resolved> = parsed
        .iter()
        .map(|(activity, context)| {
            let event = ActivityEvent::new(activity, context, &no_embargo);
            Resolved::new(&event, &asked, activity)
        })
        .collect();
    let type_of = |v: &serde_json::Value| v["type"].as_str().unwrap_or_default().to_string();
    let mut by_type: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, input) in inputs.iter().enumerate() {
        let mut alone = rsigma_eval::Engine::new();
        alone.add_rule(input).unwrap();
        for (event, (activity, _)) in resolved.iter().zip(&parsed) {
            if !alone.evaluate(event).is_empty() {
                let rules = by_type.entry(type_of(activity)).or_default();
                if !rules.contains(&i) {
                    rules.push(i);
                }
            }
        }
    }
    let dispatch: HashMap<String, rsigma_eval::Engine> = by_type
        .iter()
        .map(|(t, rules)| {
            let mut engine = rsigma_eval::Engine::new();
            for i in rules {
                engine.add_rule(&inputs[*i]).unwrap();
            }
            (t.clone(), engine)
        })
        .collect();
    let types: Vec<String> = parsed.iter().map(|(a, _)| type_of(a)).collect();
    let matches: usize = resolved.iter().map(|e| sigma.evaluate(e).len()).sum();
    eprintln!(
        "rsigma-eval: {:.2} matches per activity; oracle dispatch: {:.1} detections per type ({} types, {} detections)",
        matches as f64 / parsed.len() as f64,
        by_type.values().map(Vec::len).sum::<usize>() as f64 / by_type.len().max(1) as f64,
        by_type.len(),
        inputs.len(),
    );
    group.bench_function(
        "part: rsigma-eval matching, fields resolved, oracle dispatch by type",
        |b| {
            b.iter(|| {
                let mut matched = 0;
                for (event, t) in resolved.iter().zip(&types) {
                    if let Some(engine) = dispatch.get(t) {
                        matched += engine.evaluate(event).len();
                    }
                }
                black_box(matched)
            })
        },
    );
    group.finish();
}

/// Every field name the engine asks of the rows.
fn fields_asked(
    sigma: &rsigma_eval::Engine,
    parsed: &[(serde_json::Value, Arc<JournalContext>)],
) -> Vec<String> {
    struct Recording<'a> {
        event: ActivityEvent<'a>,
        asked: &'a std::cell::RefCell<BTreeSet<String>>,
    }
    impl Event for Recording<'_> {
        fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
            self.asked.borrow_mut().insert(path.to_string());
            self.event.get_field(path)
        }
        fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
            self.event.any_string_value(pred)
        }
        fn all_string_values(&self) -> Vec<std::borrow::Cow<'_, str>> {
            self.event.all_string_values()
        }
        fn to_json(&self) -> serde_json::Value {
            self.event.to_json()
        }
    }
    let asked = std::cell::RefCell::new(BTreeSet::new());
    let no_embargo = |_: &str| false;
    for (activity, context) in parsed {
        let event = Recording {
            event: ActivityEvent::new(activity, context, &no_embargo),
            asked: &asked,
        };
        black_box(sigma.evaluate(&event));
    }
    asked.into_inner().into_iter().collect()
}

/// An activity with every field the engine asks for resolved beforehand.
struct Resolved {
    fields: HashMap<String, EventValue<'static>>,
    raw: rsigma_eval::event::JsonEvent<'static>,
}

impl Resolved {
    fn new(event: &ActivityEvent, asked: &[String], raw: &serde_json::Value) -> Resolved {
        Resolved {
            fields: asked
                .iter()
                .filter_map(|name| Some((name.clone(), owned(event.get_field(name)?))))
                .collect(),
            raw: rsigma_eval::event::JsonEvent::owned(raw.clone()),
        }
    }
}

fn owned(value: EventValue<'_>) -> EventValue<'static> {
    use std::borrow::Cow;
    match value {
        EventValue::Str(s) => EventValue::Str(Cow::Owned(s.into_owned())),
        EventValue::Int(i) => EventValue::Int(i),
        EventValue::Float(f) => EventValue::Float(f),
        EventValue::Bool(b) => EventValue::Bool(b),
        EventValue::Null => EventValue::Null,
        EventValue::Array(items) => EventValue::Array(items.into_iter().map(owned).collect()),
        EventValue::Map(pairs) => EventValue::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), owned(v)))
                .collect(),
        ),
    }
}

fn borrowed<'a>(value: &'a EventValue<'static>) -> EventValue<'a> {
    use std::borrow::Cow;
    match value {
        EventValue::Str(s) => EventValue::Str(Cow::Borrowed(s.as_ref())),
        other => other.clone(),
    }
}

impl Event for Resolved {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        self.fields.get(path).map(borrowed)
    }
    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.raw.any_string_value(pred)
    }
    fn all_string_values(&self) -> Vec<std::borrow::Cow<'_, str>> {
        self.raw.all_string_values()
    }
    fn to_json(&self) -> serde_json::Value {
        self.raw.to_json()
    }
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

/// What a finding costs to render as the journal keeps it (the plain JSON
/// and the OCSF Detection Finding, `Finding::to_journal`), over the findings
/// the whole pack gives on the rows of `detect`.
fn render_findings(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let rows = rows(dir.path(), RECORDS, 37);
    let settings = DetectionSettings::default();
    let set = settings.load_rules().unwrap();
    let mut engine = Engine::new(&set, &settings).unwrap();
    let mut findings = Vec::new();
    for r in &rows {
        let activity: serde_json::Value = serde_json::from_str(&r.raw).unwrap();
        let context: Arc<JournalContext> = Arc::new(serde_json::from_str(&r.context_json).unwrap());
        findings.extend(engine.evaluate(&Input {
            id: &r.id,
            created_at_ms: r.created_ms,
            activity: &activity,
            context: &context,
            journaled_at_ms: r.created_ms,
            backfill: false,
            replay: false,
        }));
    }
    let mut group = c.benchmark_group("findings");
    group.throughput(Throughput::Elements(findings.len() as u64));
    group.sample_size(20);
    group.bench_function("render for the journal (plain JSON and OCSF)", |b| {
        b.iter(|| {
            for f in &findings {
                black_box(f.to_journal());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, detect, detect_backlog, render_findings);
criterion_main!(benches);
