//! The cost of directory context per event: journal rows rendered to OCSF
//! (and read as a sink reads them, `raw` and `raw+claudit` too) with a
//! directory of 10,000 users and 500 groups, beside the same rows without
//! it, in the same run.
//!
//! `cargo bench --bench directory`. Records come from the simulator's
//! generator, their user actors renamed to the directory's users; every
//! user is in 3 groups, every group holds one of 20 custom roles with 3
//! permissions each; the GeoIP databases are built here, as in the
//! normalize bench, so the rows carry the same enrichment context.

#[path = "../tests/it/support/mmdb.rs"]
#[allow(dead_code)]
mod mmdb;

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;

use claudit::config::{Config, EnrichConfig};
use claudit::directory::Directory;
use claudit::directory::model::{GroupAttrs, Key, MemberAttrs, OrgAttrs, RoleAttrs, attrs_text};
use claudit::directory::store::Writer;
use claudit::enrich::Enricher;
use claudit::model::ActivityHead;
use claudit::ocsf::{JournalContext, Mapper};
use claudit::sim::generate::Generator;
use claudit::sinks::render::Payload;
use claudit::store::{JournalRecord, PageCommit, Store, WindowKind, WindowRow};

const RECORDS: usize = 10_000;
const USERS: usize = 10_000;
const GROUPS: usize = 500;
const GROUPS_PER_USER: usize = 3;
const ROLES: usize = 20;
const ORG: &str = "5c1f0a8e-0d6b-4b8e-9c1a-2f3e4d5c6b7a";
const SOURCE: &str = "acme";

fn user_id(i: usize) -> String {
    format!("user_bench{i:05}")
}

fn config(dir: &Path) -> Config {
    let text = format!(
        "[state]\npath = {:?}\n[[sources]]\nname = {SOURCE:?}\napi_key = \"sk-ant-api01-bench\"\n\
         [sources.directory]\nadmin_groups = [\"Group 0\"]\n\
         [[sinks]]\nname = \"f\"\ntype = \"file\"\npath = {:?}\n",
        dir.join("state.db"),
        dir.join("out.ndjson")
    );
    claudit::config::load_str(&text, &dir.join("claudit.toml"), &|_| None).unwrap()
}

/// The directory: one organization, its users, groups, memberships and
/// roles, as a full sync at time 0 records them.
fn write_directory(store: &mut Store) {
    let mut w = Writer::begin(store, SOURCE, 0).unwrap();
    let sync = "sync";
    let org = OrgAttrs {
        name: Some("House Stark".into()),
    };
    w.present(&Key::org(ORG), &attrs_text(&org), Some(0), 0, sync)
        .unwrap();
    for r in 0..ROLES {
        let role = RoleAttrs {
            name: Some(format!("Role {r}")),
            description: None,
        };
        let id = format!("role_bench{r:02}");
        w.present(&Key::role(ORG, &id), &attrs_text(&role), Some(0), 0, sync)
            .unwrap();
        let permissions =
            format!(r#"{{"permissions":["manage project:*","read chat:*","use connector:c{r}"]}}"#);
        w.present(
            &Key::role_permissions(ORG, &id),
            &permissions,
            Some(0),
            0,
            sync,
        )
        .unwrap();
    }
    for g in 0..GROUPS {
        let group = GroupAttrs {
            name: Some(format!("Group {g}")),
            description: None,
            source_type: Some("scim".into()),
            roles: vec![format!("role_bench{:02}", g % ROLES)],
        };
        let id = format!("group_bench{g:03}");
        w.present(&Key::group(&id), &attrs_text(&group), Some(0), 0, sync)
            .unwrap();
    }
    for u in 0..USERS {
        let member = MemberAttrs {
            name: Some(format!("User {u}")),
            email: Some(format!("user{u}@stark.example")),
            role: Some(if u % 50 == 0 { "admin" } else { "user" }.into()),
        };
        let id = user_id(u);
        w.present(
            &Key::member(ORG, &id),
            &attrs_text(&member),
            Some(0),
            0,
            sync,
        )
        .unwrap();
        for k in 0..GROUPS_PER_USER {
            let g = (u * 7 + k * 131) % GROUPS;
            let group = format!("group_bench{g:03}");
            w.present(&Key::group_member(&group, &id), "{}", Some(0), 0, sync)
                .unwrap();
        }
    }
    w.commit().unwrap();
}

/// Generated activities, their user actors renamed to directory users.
fn records() -> Vec<String> {
    let mut generator = Generator::new(7);
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    (0..RECORDS)
        .map(|i| {
            let created = start + Duration::milliseconds(i as i64 * 37);
            let mut v = generator.activity(&format!("activity_bench{i:08}"), created);
            if v["actor"]["type"] == "user_actor" {
                v["actor"]["user_id"] = Value::from(user_id(i * 7919 % USERS));
            }
            v["organization_uuid"] = Value::from(ORG);
            v.to_string()
        })
        .collect()
}

fn enricher_for(records: &[String], dir: &Path) -> Enricher {
    let (city, asn) = mmdb::write_uniform_dbs(&mmdb::networks_of(records), dir);
    Enricher::new(&EnrichConfig {
        geoip_city_db: Some(city),
        geoip_asn_db: Some(asn),
        user_agent_cache_size: 10_000,
    })
    .unwrap()
}

/// A journal row as rendering reads it: raw, context, created_at, seq.
type Row = (String, String, i64, i64);

/// Journals the records, after the directory (every row sees it); returns
/// the rows.
fn journal(store: &mut Store, records: &[String], enricher: &Enricher) -> Vec<Row> {
    let now = Utc::now();
    let rows: Vec<JournalRecord> = records
        .iter()
        .map(|r| {
            let raw = serde_json::value::RawValue::from_string(r.clone()).unwrap();
            let head = ActivityHead::read(raw, now);
            let enrichment = head
                .actor
                .as_ref()
                .map(|(ip, ua)| enricher.enrich(ip.as_deref(), ua.as_deref()));
            JournalRecord {
                activity_id: head.id.clone(),
                created_at_ms: head.created_at_ms,
                activity_type: head.activity_type.clone(),
                raw: r.clone(),
                context: Some(
                    JournalContext {
                        self_generated: false,
                        enrichment,
                    }
                    .to_json(),
                ),
                ocsf: None,
            }
        })
        .collect();
    let window = WindowRow::fresh(WindowKind::Live, 0, i64::MAX / 4);
    store
        .commit_page(&PageCommit {
            source: SOURCE,
            window: &window,
            next_cursor: None,
            read_from_ms: None,
            done: true,
            next_span_ms: None,
            records: &rows,
            request_ids: &[],
            now_ms: 1,
        })
        .unwrap();
    let seqs = store
        .read_batch(0, usize::MAX, usize::MAX, &Payload::Raw)
        .unwrap();
    assert_eq!(seqs.len(), rows.len());
    rows.into_iter()
        .zip(seqs)
        .map(|(row, read)| {
            assert_eq!(row.activity_id, read.activity_id);
            (row.raw, row.context.unwrap(), row.created_at_ms, read.seq)
        })
        .collect()
}

fn directory(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let records = records();
    let enricher = enricher_for(&records, dir.path());
    let mut store = Store::open(&config.state.path).unwrap();
    write_directory(&mut store);
    let rows = journal(&mut store, &records, &enricher);

    let plain = Arc::new(Mapper::new(&config.ocsf));
    let open = || {
        Directory::open(&config.state.path, config.directories())
            .unwrap()
            .unwrap()
    };
    let with_directory = Arc::new(Mapper::new(&config.ocsf).with_directory(Some(open())));
    // How many rows get an actor from the directory (the rest are API
    // keys, services and unauthenticated actors).
    let enriched = rows
        .iter()
        .filter(|(raw, context, created, seq)| {
            with_directory
                .render_journaled_row(raw, Some(context), *created, 1, Some((SOURCE, *seq)))
                .contains("\"full_name\"")
        })
        .count();
    eprintln!(
        "{enriched} of {} rows have a user actor the directory knows",
        rows.len()
    );

    let mut group = c.benchmark_group("directory");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.sample_size(20);
    group.bench_function("render: journal row to OCSF", |b| {
        b.iter(|| {
            for (raw, context, created, seq) in &rows {
                black_box(plain.render_journaled_row(
                    raw,
                    Some(context),
                    *created,
                    1,
                    Some((SOURCE, *seq)),
                ));
            }
        })
    });
    group.bench_function("render: journal row to OCSF + directory context", |b| {
        b.iter(|| {
            for (raw, context, created, seq) in &rows {
                black_box(with_directory.render_journaled_row(
                    raw,
                    Some(context),
                    *created,
                    1,
                    Some((SOURCE, *seq)),
                ));
            }
        })
    });
    for (name, form) in [
        ("sink read: ocsf", Payload::Ocsf(plain.clone())),
        (
            "sink read: ocsf + directory context",
            Payload::Ocsf(with_directory.clone()),
        ),
        ("sink read: raw", Payload::Raw),
        (
            "sink read: raw+claudit",
            Payload::RawWithContext(with_directory.clone()),
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(store.read_batch(0, usize::MAX, usize::MAX, &form).unwrap()))
        });
    }
    group.finish();

    // Loading the index (every fact, once per process and after each
    // directory change): one element per fact.
    let mut load = c.benchmark_group("directory index");
    load.sample_size(10);
    load.bench_function("load: open + index every fact", |b| {
        let (raw, context, created, seq) = &rows[0];
        b.iter(|| {
            let mapper = Mapper::new(&config.ocsf).with_directory(Some(open()));
            black_box(mapper.render_journaled_row(
                raw,
                Some(context),
                *created,
                1,
                Some((SOURCE, *seq)),
            ))
        })
    });
    load.finish();
}

criterion_group!(benches, directory);
criterion_main!(benches);
