//! `claudit demo`: the embedded Compliance API simulator on 127.0.0.1, the
//! real pipeline against it with a temporary state database, and OCSF and
//! raw NDJSON files as output. No credentials, no network.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::config::{
    BatchConfig, Config, DirectoryConfig, EnrichConfig, FileSinkConfig, Format, OcsfConfig,
    SinkConfig, SinkKind, SourceConfig, StateConfig,
};
use crate::sim::{SimActivity, SimConfig, Simulator};

mod geoip;
use crate::store::Store;

pub struct DemoOptions {
    pub out: PathBuf,
    /// Activities in the simulator's backlog.
    pub events: usize,
    /// How long live activities are generated after the backlog.
    pub live_for: Duration,
}

/// How late a late arrival can be in the demo (seconds, not minutes, so the
/// demo finishes quickly while still exercising the sweep).
const DEMO_LATE_MAX: Duration = Duration::from_secs(6);
const DEMO_SETTLE_LAG: Duration = Duration::from_secs(2);

pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&options.out).map_err(|e| {
        anyhow::anyhow!(
            "cannot create --out directory {}: {e}",
            options.out.display()
        )
    })?;
    let ocsf_path = options.out.join("events.ocsf.ndjson");
    let raw_path = options.out.join("events.raw.ndjson");
    let findings_paths = [
        crate::config::findings_path(&ocsf_path),
        crate::config::findings_path(&raw_path),
    ];
    for p in [&ocsf_path, &raw_path]
        .into_iter()
        .chain(findings_paths.iter())
    {
        if p.exists() {
            std::fs::remove_file(p)?;
        }
    }
    let state_dir = tempfile::tempdir()?;

    let api_key = "sk-ant-api01-demo-simulator-key";
    let sim = Simulator::start(SimConfig {
        api_key: api_key.into(),
        backlog: options.events,
        backlog_span: Duration::from_secs(24 * 3600),
        live_per_second: 25.0,
        visibility_delay: Duration::from_secs(1),
        late_fraction: 0.02,
        late_max_delay: DEMO_LATE_MAX,
        attack_sequences: true,
        ..SimConfig::default()
    })
    .await?;
    println!(
        "simulator listening on {} with a backlog of {} activities",
        sim.base_url(),
        options.events
    );

    let mut config = demo_config(
        &sim.base_url(),
        api_key,
        state_dir.path(),
        &ocsf_path,
        &raw_path,
    );
    // Where the attack addresses are, so the impossible travel is found.
    config.enrich.geoip_city_db = Some(geoip::write_city_db(state_dir.path())?);
    let cancel = CancellationToken::new();
    let daemon = tokio::spawn(crate::daemon::run(
        config.clone(),
        crate::daemon::StartOptions::default(),
        cancel.clone(),
    ));

    tokio::time::sleep(options.live_for).await;
    sim.stop_live();
    let stop_ms = chrono::Utc::now().timestamp_millis();
    // Everything created before `stop_ms` is visible by `stop_ms + late max`;
    // wait for a sweep that started after that, then for both sinks.
    let settled_ms = stop_ms + (DEMO_LATE_MAX + DEMO_SETTLE_LAG).as_millis() as i64;
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        if daemon.is_finished() {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!("demo did not finish within 45 s after live generation stopped");
        }
        let done = {
            let store = Store::open_readonly(&config.state.path)?;
            let state = store.source_state("demo")?;
            let head = store.head_seq()?;
            state.last_sweep_ms.is_some_and(|t| t > settled_ms)
                && state.watermark_ms.is_some_and(|w| w > stop_ms)
                && ["ocsf", "raw"]
                    .iter()
                    .all(|s| store.sink_cursor(s).map(|c| c.seq >= head).unwrap_or(false))
                && store.detection_cursor()?.seq >= head
                && ["ocsf", "raw"].iter().all(|s| {
                    store.finding_cursor(s).unwrap_or(0) >= store.head_finding_seq().unwrap_or(0)
                })
        };
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    cancel.cancel();
    daemon.await??;

    let store = Store::open_readonly(&config.state.path)?;
    let late = store.source_state("demo")?.late;
    let findings = store.read_findings(0, usize::MAX >> 1)?;
    let expected: HashMap<String, SimActivity> = sim
        .activities()
        .into_iter()
        .filter(|a| a.created_at.timestamp_millis() < stop_ms)
        .map(|a| (a.id.clone(), a))
        .collect();
    sim.shutdown().await;
    let departed = print_summary(&ocsf_path, &raw_path, &expected, late, started.elapsed())?;
    print_findings(
        &findings,
        (&findings_paths[0], &findings_paths[1]),
        departed,
    )
}

/// The findings the detection task journaled from the simulated data,
/// by rule, then the simulator's attack sequences as the rules saw them.
/// `departed_events`: delivered events whose actor had left the
/// organization (each is one for `departed-user-activity`).
fn print_findings(
    findings: &[crate::store::StoredFinding],
    paths: (&Path, &Path),
    departed_events: usize,
) -> anyhow::Result<()> {
    let plain: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| serde_json::from_str(&f.plain))
        .collect::<Result<_, _>>()?;
    let mut by_rule: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for f in findings {
        *by_rule
            .entry((f.rule_id.as_str(), f.severity.as_str()))
            .or_default() += 1;
    }
    let mut rules: Vec<_> = by_rule.into_iter().collect();
    rules.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!();
    println!(
        "findings: {} from {} rules (journaled by the detection task, delivered to both sinks)",
        findings.len(),
        rules.len()
    );
    println!("  {}", paths.0.display());
    println!("  {}", paths.1.display());
    for ((rule, severity), n) in &rules {
        println!("  {rule:<44} {severity:<13} {n:>5}");
    }
    println!();
    println!("the simulator's attack sequences, as found:");
    let mut not_found = Vec::new();
    let mut show = |label: &str, rule: &str, pick: &dyn Fn(&serde_json::Value) -> bool| match plain
        .iter()
        .find(|f| f["rule"]["id"] == rule && pick(f))
    {
        Some(f) => println!(
            "  {label}: {rule} ({}, {} activities, {} .. {}) {}",
            f["rule"]["severity"].as_str().unwrap_or("?"),
            f["activity_count"],
            f["first_seen"].as_str().unwrap_or("?"),
            f["last_seen"].as_str().unwrap_or("?"),
            f["uid"].as_str().unwrap_or("?"),
        ),
        None => {
            println!("  {label}: {rule}: not found");
            not_found.push(label.to_string());
        }
    };
    show("brute force", "auth-failure-burst", &|f| {
        f["actor"]["ip_address"] == "185.220.101.34"
    });
    // The sequence fires once per organization per day, at the first
    // sensitive action after logging went off: an everyday key or export in
    // the attacker's organization may come before the attacker's own admin
    // key (it depends on the time of day the demo runs) and take the
    // finding. What is checked is the sequence that starts at the attacker's
    // logging-off (from the attacker's address).
    let attackers_logging_off = plain
        .iter()
        .find(|f| {
            f["rule"]["id"] == "compliance-logging-disabled"
                && f["actor"]["ip_address"] == "45.155.205.233"
        })
        .and_then(|f| f["anchor"]["id"].as_str());
    show(
        "admin key at night after logging was turned off",
        "logging-disabled-then-sensitive-action",
        &|f| {
            attackers_logging_off.is_some_and(|id| {
                f["activity_ids"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|a| a == id))
            })
        },
    );
    show("impossible travel", "impossible-travel-login", &|_| true);
    // The simulator's departed users keep acting after their removal; the
    // directory rule sees those activities when the directory context does.
    if departed_events > 0 {
        show(
            "activity by a user who had left",
            "departed-user-activity",
            &|_| true,
        );
    } else {
        println!(
            "  activity by a user who had left: departed-user-activity: no departed user acted in this run"
        );
    }
    if !not_found.is_empty() {
        anyhow::bail!(
            "demo check failed: the detections did not find {}",
            not_found.join(", ")
        );
    }
    Ok(())
}

fn demo_config(base_url: &str, api_key: &str, state_dir: &Path, ocsf: &Path, raw: &Path) -> Config {
    let file_sink = |name: &str, path: &Path, format| SinkConfig {
        name: name.into(),
        format,
        batch: BatchConfig {
            max_events: 5000,
            max_bytes: 8 << 20,
            linger: Duration::from_millis(100),
        },
        kind: SinkKind::new(FileSinkConfig {
            path: path.to_path_buf(),
            max_bytes: 0,
            max_files: 0,
        }),
        // The findings beside the activities: events.*.findings.ndjson.
        streams: crate::config::Streams::BOTH,
    };
    Config {
        file: PathBuf::from("(demo)"),
        state: StateConfig {
            path: state_dir.join("state.db"),
            retention: Duration::from_secs(7 * 86400),
        },
        sources: vec![SourceConfig {
            name: "demo".into(),
            base_url: base_url.into(),
            api_key: SecretString::from(api_key.to_string()),
            anthropic_version: "2023-06-01".into(),
            requests_per_minute: 500,
            window: Duration::from_secs(2),
            max_window_pages: 1000,
            settle_lag: DEMO_SETTLE_LAG,
            sweep_horizon: Duration::from_secs(120),
            sweep_interval: Duration::from_secs(3),
            initial_lookback: Duration::from_secs(25 * 3600),
            poll_interval: Duration::from_secs(1),
            page_size: 5000,
            activity_types: vec![],
            exclude_activity_types: vec![],
            organization_ids: vec![],
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            no_data_after: Duration::from_secs(6 * 3600),
            // Who the actors are, from the simulator's directory.
            directory: DirectoryConfig {
                enabled: true,
                ..DirectoryConfig::default()
            },
        }],
        sinks: vec![
            file_sink("ocsf", ocsf, Format::Ocsf),
            file_sink("raw", raw, Format::Raw),
        ],
        enrich: EnrichConfig {
            user_agent_cache_size: 10_000,
            ..EnrichConfig::default()
        },
        ocsf: OcsfConfig::default(),
        server: Default::default(),
        detections: Default::default(),
        notices: Vec::new(),
    }
}

/// Prints what the sinks received and checks it; returns how many events
/// were of users who had left (the directory context said so).
fn print_summary(
    ocsf_path: &Path,
    raw_path: &Path,
    expected: &HashMap<String, SimActivity>,
    late: i64,
    elapsed: Duration,
) -> anyhow::Result<usize> {
    let mut by_type: HashMap<String, usize> = HashMap::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for line in std::io::BufReader::new(std::fs::File::open(raw_path)?).lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        *by_type
            .entry(v["type"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
        *seen
            .entry(v["id"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    let mut by_class: BTreeMap<(i64, String), usize> = BTreeMap::new();
    let mut ocsf_count = 0;
    // Events of user actors, and those with their directory context.
    let (mut user_events, mut with_directory, mut departed) = (0, 0, 0);
    for line in std::io::BufReader::new(std::fs::File::open(ocsf_path)?).lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        if v["actor"]["user"]["type_id"]
            .as_i64()
            .is_some_and(|t| t == 1 || t == 2)
        {
            user_events += 1;
            if v["actor"]["user"]["full_name"].is_string() {
                with_directory += 1;
            }
            if v["unmapped"]["claudit"]["directory"]["actor"]["departed"] == true {
                departed += 1;
            }
        }
        let class = v["class_uid"].as_i64().unwrap_or(-1);
        *by_class
            .entry((class, class_name(class).to_string()))
            .or_default() += 1;
        ocsf_count += 1;
    }
    let total: usize = by_type.values().sum();
    let missing_examples: Vec<&SimActivity> = expected
        .values()
        .filter(|a| !seen.contains_key(&a.id))
        .collect();
    let missing = missing_examples.len();
    let duplicated = seen.values().filter(|n| **n > 1).count();

    println!();
    println!(
        "delivered {total} activities ({} distinct types) in {:.1} s",
        by_type.len(),
        elapsed.as_secs_f64()
    );
    println!("  {}", ocsf_path.display());
    println!("  {}", raw_path.display());
    println!();
    println!("by OCSF class ({ocsf_count} events):");
    for ((class, name), n) in &by_class {
        println!("  {class:>5} {name:<28} {n:>7}");
    }
    println!();
    let mut types: Vec<_> = by_type.into_iter().collect();
    types.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!("by activity type (top 15 of {}):", types.len());
    for (t, n) in types.iter().take(15) {
        println!("  {t:<48} {n:>7}");
    }
    println!();
    println!("late arrivals caught by the sweep: {late}");
    println!(
        "directory context: {with_directory} of {user_events} events of users carry the actor's name, groups and organization ({departed} by users who had left)"
    );
    println!(
        "check: {} activities created before live generation stopped; missing {missing}, delivered more than once {duplicated}",
        expected.len()
    );
    for a in missing_examples.iter().take(5) {
        println!(
            "  missing: {} {} created {} visible {}",
            a.id, a.activity_type, a.created_at, a.visible_at
        );
    }
    if missing > 0 || duplicated > 0 {
        anyhow::bail!("demo check failed: {missing} missing, {duplicated} duplicated");
    }
    Ok(departed)
}

fn class_name(class_uid: i64) -> &'static str {
    match class_uid {
        0 => "Base Event (fallback)",
        3001 => "Account Change",
        3002 => "Authentication",
        3004 => "Entity Management",
        3005 => "User Access Management",
        3006 => "Group Management",
        6001 => "Web Resources Activity",
        6003 => "API Activity",
        _ => "other",
    }
}
