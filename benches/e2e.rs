//! End-to-end benchmark: the real `claudit run` against the simulator, one
//! core, durable journal, into (a) the file sink and (b) a local HEC-compatible
//! endpoint; beside it, in the same run, the serde_json floor, the
//! normalize-only figure and the Python SDK peer (`bench/peer-sdk.sh`).
//!
//! `cargo bench --bench e2e`. Settings (environment):
//! - `CLAUDIT_BENCH_SIZES`: backlog sizes, default `10000,100000,1000000`;
//! - `CLAUDIT_BENCH_RUNS`: runs per figure (the median is reported), default 3;
//! - `CLAUDIT_BENCH_SINKS`: `file`, `hec` or both (default `file,hec`); with
//!   `file`, the file-sink runs are repeated with `[detections]` on (the
//!   whole built-in pack, findings delivered), the others having it off;
//! - `CLAUDIT_BENCH_PEER`: `0` skips the Python SDK peer (default `1`);
//! - `CLAUDIT_BENCH_PREFILL`: rows pre-filled into the journal for the
//!   degradation check (default 5000000; `0` skips it);
//! - `CLAUDIT_BENCH_PREFILL_SIZES`: backlogs read on top of it (default
//!   `100000,1000000`, only those also in `CLAUDIT_BENCH_SIZES`);
//! - `CLAUDIT_BENCH_RULES_OFF`: rule ids turned off in the detections-on
//!   runs (comma-separated; `*` for every built-in rule, which measures
//!   the detection task's own floor: reading, parsing, committing), for
//!   experiments; unset, the whole pack runs.
//!
//! Smoke mode: `CLAUDIT_BENCH_SIZES=2000 CLAUDIT_BENCH_RUNS=1
//! CLAUDIT_BENCH_PREFILL=20000 CLAUDIT_BENCH_PREFILL_SIZES=2000 cargo bench --bench e2e`.
//!
//! What is measured, and how:
//! - claudit runs as its own process pinned to CPU 0 (`sched_setaffinity`),
//!   every thread included; the simulator (`claudit simulate --rate-limit 0`,
//!   a separate process), the HEC endpoint, the floor and this harness run on
//!   CPU 1, so only claudit's own work is on claudit's core;
//! - a run starts when the process is spawned (empty state database) and ends
//!   when the state database (read-only) shows the watermark past the end of
//!   the backlog and every sink's cursor at the journal head; CPU seconds
//!   (utime + stime) and peak RSS (VmHWM) are read from /proc at that moment;
//! - production durability: WAL with `synchronous = FULL`, the file sink
//!   fsyncs every batch, the HEC sink gzips (its default); sink batches keep
//!   their default sizes, only `batch_linger` is 0 so a run's tail is not a
//!   timer;
//! - the source's limiter is lifted (`requests_per_minute` above 600 is
//!   accepted only for a loopback simulator): the real API caps a source at
//!   600 pages of 5,000 a minute (50,000 activities/s), and what is measured
//!   here is how far above that ceiling claudit can go.

#[path = "../tests/it/support/mmdb.rs"]
#[allow(dead_code)]
mod mmdb;

// The integration tests' configuration builder.
#[path = "../tests/it/support/config.rs"]
#[allow(dead_code)]
mod config_file;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;
use serde_json::value::RawValue;

use claudit::config::EnrichConfig;
use claudit::enrich::Enricher;
use claudit::model::Activity;
use claudit::ocsf::{JournalContext, MapContext, Mapper};
use claudit::store::Store;
use config_file::{ConfigFile, Table};

const CLAUDIT: &str = env!("CARGO_BIN_EXE_claudit");
const API_KEY: &str = "sk-ant-api01-simulator";
const HEC_TOKEN: &str = "11111111-2222-3333-4444-555555555555";
/// The CPU claudit (and the peer) run on; everything else runs on `HELPER_CPU`.
const MEASURED_CPU: usize = 0;
const HELPER_CPU: usize = 1;
const PAGE: usize = 5000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sink {
    File,
    Hec,
}

impl Sink {
    fn name(self) -> &'static str {
        match self {
            Sink::File => "file",
            Sink::Hec => "hec",
        }
    }
}

struct Options {
    sizes: Vec<usize>,
    runs: usize,
    sinks: Vec<Sink>,
    peer: bool,
    prefill: usize,
    prefill_sizes: Vec<usize>,
    dir: PathBuf,
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| s.trim().replace('_', ""))
        .filter(|s| !s.is_empty())
        .collect()
}

fn env_sizes(name: &str, default: &str) -> Vec<usize> {
    env_list(name, default)
        .iter()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("{name}: {s:?} is not a number"))
        })
        .collect()
}

impl Options {
    fn from_env() -> Options {
        let sinks = env_list("CLAUDIT_BENCH_SINKS", "file,hec")
            .iter()
            .map(|s| match s.as_str() {
                "file" => Sink::File,
                "hec" => Sink::Hec,
                other => panic!("CLAUDIT_BENCH_SINKS: unknown sink {other:?} (file, hec)"),
            })
            .collect();
        let sizes = env_sizes("CLAUDIT_BENCH_SIZES", "10000,100000,1000000");
        let prefill_sizes = env_sizes("CLAUDIT_BENCH_PREFILL_SIZES", "100000,1000000")
            .into_iter()
            .filter(|s| sizes.contains(s))
            .collect();
        // target/release/deps/e2e-<hash> → target/release/e2e-bench
        let exe = std::env::current_exe().expect("current_exe");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .map(|p| p.join("e2e-bench"))
            .unwrap_or_else(|| std::env::temp_dir().join("claudit-e2e-bench"));
        Options {
            sizes,
            runs: env_sizes("CLAUDIT_BENCH_RUNS", "3")[0].max(1),
            sinks,
            peer: std::env::var("CLAUDIT_BENCH_PEER").map_or(true, |v| v != "0"),
            prefill: env_sizes("CLAUDIT_BENCH_PREFILL", "5000000")[0],
            prefill_sizes,
            dir,
        }
    }
}

// ---- processes, CPUs, /proc ------------------------------------------------

/// CPUs online (not `available_parallelism`, which shrinks once pinned).
fn cpu_count() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize
}

fn cpu_set(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET only write into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        set
    }
}

/// Pins the calling thread (and the threads it spawns later) to `cpu`.
fn pin_current_thread(cpu: usize) {
    if cpu_count() < 2 {
        return;
    }
    let set = cpu_set(cpu);
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t.
    unsafe {
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// A command whose process runs pinned to `cpu` from its first instruction.
fn pinned(program: &str, cpu: usize) -> Command {
    let mut cmd = Command::new(program);
    if cpu_count() >= 2 {
        // SAFETY: sched_setaffinity is async-signal-safe and touches only
        // the child's own affinity.
        unsafe {
            cmd.pre_exec(move || {
                let set = cpu_set(cpu);
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd
}

/// utime + stime of every thread of `pid`, in seconds.
/// Writes back every dirty page before a measured run, so that no run pays
/// for the writeback of the files the one before it (or the pre-fill) left.
fn settle_page_cache() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // Fields after "(comm)": state is the first, utime the 12th, stime the 13th.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

/// Peak resident set size (VmHWM) of `pid`, in kB.
fn proc_peak_rss_kb(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// SIGTERM, then SIGKILL if it has not stopped within 30 s.
fn stop(child: &mut Child) {
    // SAFETY: kill with a pid we own.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

// ---- the simulator ------------------------------------------------------------

struct Simulator {
    child: Child,
    base_url: String,
    /// At or after the end of the backlog (the simulator's start).
    backlog_end_ms: i64,
}

impl Simulator {
    fn start(backlog: usize) -> Simulator {
        let mut child = pinned(CLAUDIT, HELPER_CPU)
            .args(["simulate", "--listen", "127.0.0.1:0", "--api-key", API_KEY])
            .args(["--backlog", &backlog.to_string(), "--rate-limit", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn claudit simulate");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let base_url = loop {
            line.clear();
            if stderr.read_line(&mut line).unwrap() == 0 {
                panic!("the simulator exited before listening");
            }
            if let Some(url) = line.trim().strip_prefix("simulator listening on ") {
                break url.to_string();
            }
        };
        let backlog_end_ms = now_ms();
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Simulator {
            child,
            base_url,
            backlog_end_ms,
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Every page of the backlog, newest first, as served.
fn fetch_pages(rt: &tokio::runtime::Runtime, base_url: &str) -> Vec<Vec<u8>> {
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut pages = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut req = client
                .get(format!("{base_url}/v1/compliance/activities"))
                .header("x-api-key", API_KEY)
                .header("anthropic-version", "2023-06-01")
                .query(&[("limit", PAGE.to_string())]);
            if let Some(a) = &after {
                req = req.query(&[("after_id", a)]);
            }
            let resp = req.send().await.expect("simulator request");
            assert!(resp.status().is_success(), "simulator: {}", resp.status());
            let body = resp.bytes().await.expect("simulator body").to_vec();
            let head: PageHead = serde_json::from_slice(&body).expect("page JSON");
            pages.push(body);
            match (head.has_more, head.last_id) {
                (true, Some(last)) => after = Some(last),
                _ => break,
            }
        }
        pages
    })
}

#[derive(serde::Deserialize)]
struct PageHead {
    has_more: bool,
    last_id: Option<String>,
}

#[derive(serde::Deserialize)]
struct RawPage {
    data: Vec<Box<RawValue>>,
}

// ---- floor and normalization ---------------------------------------------------

/// Per-record figures of the in-process baselines, over the same pages.
struct InProcess {
    records: usize,
    /// serde_json: page bytes → Value → bytes.
    floor_secs: f64,
    /// claudit: page bytes → raw records → Activity → enrich → OCSF bytes.
    normalize_secs: f64,
}

/// The networks the GeoIP databases cover: every /16 of public-range IPv4
/// (1.0.0.0 to 223.255.0.0 without 10/8 and 127/8), so every actor address
/// the simulator generates is found. The set is the same at every backlog
/// size: a database that grew with the backlog would make memory and lookup
/// cost grow with it, which a real (fixed) GeoLite2 database does not.
fn networks() -> Vec<String> {
    let mut nets = Vec::new();
    for a in (1..=223u8).filter(|a| *a != 10 && *a != 127) {
        for b in 0..=255u8 {
            nets.push(format!("{a}.{b}.0.0/16"));
        }
    }
    nets
}

fn in_process(pages: &[Vec<u8>], geoip: &(PathBuf, PathBuf)) -> InProcess {
    let enricher = Enricher::new(&EnrichConfig {
        geoip_city_db: Some(geoip.0.clone()),
        geoip_asn_db: Some(geoip.1.clone()),
        user_agent_cache_size: 10_000,
    })
    .unwrap();
    let mapper = Mapper::default();
    let now = Utc::now();
    let mut records = 0;
    let started = Instant::now();
    for page in pages {
        let v: Value = serde_json::from_slice(page).unwrap();
        records += v["data"].as_array().map_or(0, Vec::len);
        std::hint::black_box(serde_json::to_vec(&v).unwrap());
    }
    let floor_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for page in pages {
        let page: RawPage = serde_json::from_slice(page).unwrap();
        for raw in page.data {
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
            std::hint::black_box(mapper.map_json(&activity, &ctx));
        }
    }
    InProcess {
        records,
        floor_secs,
        normalize_secs: started.elapsed().as_secs_f64(),
    }
}

/// Realistic journal payloads (raw, context, type) for the pre-filled
/// journal, as the poller writes them.
fn sample_payloads(pages: &[Vec<u8>], n: usize) -> Vec<(String, String, String)> {
    let enricher = Enricher::without_geoip();
    let now = Utc::now();
    let mut out = Vec::new();
    for page in pages {
        let page: RawPage = serde_json::from_slice(page).unwrap();
        for raw in page.data {
            if out.len() == n {
                return out;
            }
            let activity = Activity::parse(raw, now);
            let enrichment = activity
                .actor
                .as_ref()
                .map(|a| enricher.enrich(a.ip_address.as_deref(), a.user_agent.as_deref()));
            let context = JournalContext {
                self_generated: false,
                enrichment,
            };
            out.push((
                activity.raw.to_string(),
                context.to_json(),
                activity.activity_type,
            ));
        }
    }
    out
}

// ---- the HEC-compatible endpoint -------------------------------------------------

#[derive(Default)]
struct HecCounters {
    requests: AtomicU64,
    body_bytes: AtomicU64,
    refused: AtomicU64,
}

/// `POST /services/collector/event`: checks the token, reads the whole body,
/// answers HEC's success. Nothing heavy: it must not compete with claudit.
fn start_hec(rt: &tokio::runtime::Runtime) -> (String, Arc<HecCounters>) {
    use axum::extract::{DefaultBodyLimit, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, post};

    async fn event(
        State(c): State<Arc<HecCounters>>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> (StatusCode, &'static str) {
        let expected = format!("Splunk {HEC_TOKEN}");
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&expected) {
            c.refused.fetch_add(1, Ordering::Relaxed);
            return (
                StatusCode::UNAUTHORIZED,
                r#"{"text":"Invalid token","code":4}"#,
            );
        }
        c.requests.fetch_add(1, Ordering::Relaxed);
        c.body_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        (StatusCode::OK, r#"{"text":"Success","code":0}"#)
    }
    async fn health() -> &'static str {
        r#"{"text":"HEC is healthy","code":17}"#
    }

    let counters = Arc::new(HecCounters::default());
    let app = axum::Router::new()
        .route("/services/collector/event", post(event))
        .route("/services/collector/health/1.0", get(health))
        .layer(DefaultBodyLimit::disable())
        .with_state(counters.clone());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await });
    (url, counters)
}

// ---- one claudit run ---------------------------------------------------------------

#[derive(Clone, Copy, Debug, Default)]
struct Figures {
    activities: u64,
    wall_secs: f64,
    cpu_secs: f64,
    peak_rss_kb: u64,
}

impl Figures {
    /// One run's figures, as each run's line prints them.
    fn line(&self) -> String {
        format!(
            "{} activities in {:.2} s = {:.0}/s, {:.3} CPU s/100k, peak RSS {:.1} MB",
            self.activities,
            self.wall_secs,
            self.per_sec(),
            self.cpu_per_100k(),
            mb(self.peak_rss_kb)
        )
    }

    fn per_sec(&self) -> f64 {
        self.activities as f64 / self.wall_secs
    }
    fn cpu_per_100k(&self) -> f64 {
        self.cpu_secs / self.activities as f64 * 100_000.0
    }
}

/// The median of each figure over the runs, taken separately.
fn median(runs: &[Figures]) -> Figures {
    fn mid<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    }
    Figures {
        activities: mid(runs.iter().map(|r| r.activities).collect()),
        wall_secs: mid(runs.iter().map(|r| r.wall_secs).collect()),
        cpu_secs: mid(runs.iter().map(|r| r.cpu_secs).collect()),
        peak_rss_kb: mid(runs.iter().map(|r| r.peak_rss_kb).collect()),
    }
}

fn config_text(
    run_dir: &Path,
    state: &Path,
    sim: &Simulator,
    sink: Sink,
    hec_url: &str,
    geoip: &(PathBuf, PathBuf),
    detections: bool,
) -> String {
    let out = match sink {
        Sink::File => config_file::sink("out", "file")
            .path("path", &run_dir.join("events.ndjson"))
            .set("max_bytes", "0")
            .set("batch_linger", "0s"),
        Sink::Hec => config_file::sink("out", "splunk_hec")
            .set("url", hec_url)
            .set("token", HEC_TOKEN)
            .set("batch_linger", "0s"),
    };
    ConfigFile::new(state)
        .source(
            config_file::source("bench")
                .set("base_url", sim.base_url.as_str())
                .set("api_key", API_KEY)
                // Loopback only: lifts the local limiter to measure claudit,
                // not the budget.
                .set("requests_per_minute", 1_000_000)
                .set("window", "1s")
                .set("settle_lag", "1s")
                .set("sweep_interval", "1h")
                .set("initial_lookback", "30h")
                .set("poll_interval", "1s")
                .set("page_size", PAGE as i64),
        )
        .sink(out)
        .table(
            "enrich",
            Table::default()
                .path("geoip_city_db", &geoip.0)
                .path("geoip_asn_db", &geoip.1),
        )
        // The whole built-in pack when on; the sink then also receives the
        // findings (its default streams).
        .table("detections", Table::default().set("enabled", detections))
        .text()
        + &if detections {
            rules_off()
        } else {
            String::new()
        }
}

/// `[[detections.rules]]` turning off the rules `CLAUDIT_BENCH_RULES_OFF`
/// names (see the module docs).
fn rules_off() -> String {
    let Ok(list) = std::env::var("CLAUDIT_BENCH_RULES_OFF") else {
        return String::new();
    };
    let ids: Vec<String> = if list.trim() == "*" {
        let set = claudit::detect::DetectionSettings::default()
            .load_rules()
            .expect("the built-in pack loads");
        set.iter().map(|r| r.meta.id.clone()).collect()
    } else {
        list.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    ids.iter()
        .map(|id| format!("\n[[detections.rules]]\nid = \"{id}\"\nenabled = false\n"))
        .collect()
}

/// One `claudit run` from spawn to caught up. `state` may hold a pre-filled
/// journal; only rows journaled by this run count.
fn run_claudit(
    run_dir: &Path,
    state: &Path,
    sim: &Simulator,
    sink: Sink,
    hec: &(String, Arc<HecCounters>),
    geoip: &(PathBuf, PathBuf),
    detections: bool,
) -> Figures {
    std::fs::create_dir_all(run_dir).unwrap();
    let base_seq = if state.exists() {
        Store::open_readonly(state).unwrap().head_seq().unwrap()
    } else {
        0
    };
    let config = run_dir.join("claudit.toml");
    std::fs::write(
        &config,
        config_text(run_dir, state, sim, sink, &hec.0, geoip, detections),
    )
    .unwrap();
    let log = std::fs::File::create(run_dir.join("claudit.log")).unwrap();
    let hec_before = hec.1.requests.load(Ordering::Relaxed);
    settle_page_cache();
    let started = Instant::now();
    let mut child = pinned(CLAUDIT, MEASURED_CPU)
        .args(["--log-format", "json", "run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn claudit run");
    let pid = child.id();
    let deadline = started + Duration::from_secs(600);
    let mut store: Option<Store> = None;
    let figures = loop {
        std::thread::sleep(Duration::from_millis(10));
        if let Some(status) = child.try_wait().unwrap() {
            let mut text = String::new();
            std::fs::File::open(run_dir.join("claudit.log"))
                .and_then(|mut f| f.read_to_string(&mut text))
                .unwrap();
            panic!("claudit exited early ({status}); log:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "claudit did not catch up within 600 s"
        );
        if store.is_none() {
            store = Store::open_readonly(state).ok();
        }
        let Some(s) = &store else { continue };
        if detections && !s.has_findings() {
            // Opened before the daemon's migrations reached the findings
            // tables: a store reads its schema version once, so this one
            // would never see the detection cursor. Open it again.
            store = None;
            continue;
        }
        let caught_up = (|| -> Result<Option<i64>, claudit::store::StoreError> {
            let state = s.source_state("bench")?;
            if state.watermark_ms.is_none_or(|w| w < sim.backlog_end_ms) {
                return Ok(None);
            }
            let head = s.head_seq()?;
            // `journaled` counts rows this run inserted (the source's state
            // is new in every run); seqs also advance on ignored duplicates.
            // With detections, also every activity evaluated and every
            // finding delivered.
            let detected = !detections
                || (s.detection_cursor()?.seq >= head
                    && s.finding_cursor("out")? >= s.head_finding_seq()?);
            Ok(
                (s.sink_cursor("out")?.seq >= head && head > base_seq && detected)
                    .then_some(state.journaled),
            )
        })();
        if let Ok(Some(journaled)) = caught_up {
            break Figures {
                activities: journaled as u64,
                wall_secs: started.elapsed().as_secs_f64(),
                cpu_secs: proc_cpu_seconds(pid),
                peak_rss_kb: proc_peak_rss_kb(pid),
            };
        }
    };
    drop(store);
    stop(&mut child);
    // What the destination holds agrees with the journal.
    match sink {
        Sink::File => {
            let lines = count_lines(&run_dir.join("events.ndjson"));
            assert!(
                lines >= figures.activities,
                "file sink: {lines} lines for {} journaled activities",
                figures.activities
            );
        }
        Sink::Hec => {
            let requests = hec.1.requests.load(Ordering::Relaxed) - hec_before;
            assert!(requests > 0, "the HEC endpoint received nothing");
            assert_eq!(
                hec.1.refused.load(Ordering::Relaxed),
                0,
                "HEC token refused"
            );
        }
    }
    figures
}

fn count_lines(path: &Path) -> u64 {
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0;
    loop {
        let got = f.read(&mut buf).unwrap();
        if got == 0 {
            return n;
        }
        n += buf[..got].iter().filter(|b| **b == b'\n').count() as u64;
    }
}

// ---- the Python SDK peer ----------------------------------------------------------

fn run_peer(sim: &Simulator, out: &Path) -> Option<Figures> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/peer-sdk.sh");
    settle_page_cache();
    let output = Command::new(&script)
        .arg(&sim.base_url)
        .arg(out)
        .env("PEER_CPU", MEASURED_CPU.to_string())
        .stderr(Stdio::inherit())
        .output()
        .expect("run bench/peer-sdk.sh");
    let _ = std::fs::remove_file(out);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(line) = stdout.lines().find(|l| l.starts_with("PEER_RESULT ")) else {
        eprintln!(
            "bench/peer-sdk.sh failed ({}); no peer figures. Output:\n{stdout}",
            output.status
        );
        return None;
    };
    let field = |name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("PEER_RESULT without {name}: {line}"))
    };
    Some(Figures {
        activities: field("activities") as u64,
        wall_secs: field("wall_s"),
        cpu_secs: field("cpu_s"),
        peak_rss_kb: field("peak_rss_kb") as u64,
    })
}

// ---- the pre-filled journal ---------------------------------------------------------

/// Crockford base32, as the simulator's ids: ids sort by time.
fn base32(mut v: u64, chars: usize) -> String {
    const A: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut s = vec![b'0'; chars];
    for c in s.iter_mut().rev() {
        *c = A[(v & 31) as usize];
        v >>= 5;
    }
    String::from_utf8(s).unwrap()
}

/// A state database whose journal holds `rows` delivered records created
/// 2-3 days ago (inside the default 7-day retention, so the pruner keeps
/// them), with real payloads, through the production schema.
fn prefill(path: &Path, rows: usize, payloads: &[(String, String, String)]) {
    drop(Store::open(path).unwrap());
    let mut conn = rusqlite::Connection::open(path).unwrap();
    // Bulk load: no journal, no fsync; WAL again before claudit opens it.
    conn.pragma_update(None, "journal_mode", "OFF").unwrap();
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    let first_us = (now_ms() - 3 * 86_400_000) * 1000;
    let step_us = (86_400_000_000 / rows.max(1)) as i64;
    let mut suffix: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in (0..rows).collect::<Vec<_>>().chunks(100_000) {
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO journal (activity_id, source, created_at_ms, activity_type, raw, ocsf, context, late, journaled_at_ms)
                     VALUES (?1, 'bench', ?2, ?3, ?4, '', ?5, 0, ?6)",
                )
                .unwrap();
            for &i in chunk {
                let created_us = first_us + i as i64 * step_us;
                suffix = suffix
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let id = format!(
                    "activity_01{}{}",
                    base32(created_us as u64, 11),
                    base32(suffix, 13)
                );
                let (raw, context, kind) = &payloads[i % payloads.len()];
                insert
                    .execute(rusqlite::params![
                        id,
                        created_us / 1000,
                        kind,
                        raw,
                        context,
                        created_us / 1000
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    conn.execute(
        "INSERT INTO sink_cursors (sink, seq, delivered) VALUES ('out', ?1, ?1)",
        [rows as i64],
    )
    .unwrap();
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

/// Before a run on the pre-filled journal: back to the `rows` pre-filled
/// records (a previous run's records would make this run's reads
/// duplicates), the source starts afresh, the sink's cursor is at the head
/// (everything before was delivered), and it writes a new file.
fn reset_for_run(path: &Path, rows: usize) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute("DELETE FROM journal WHERE seq > ?1", [rows as i64])
        .unwrap();
    conn.execute_batch(
        "DELETE FROM source_state; DELETE FROM windows; DELETE FROM request_ids;
         UPDATE sink_cursors SET seq = (SELECT MAX(seq) FROM journal), file_offset = NULL;
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
}

// ---- report --------------------------------------------------------------------------

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{model}, {} CPUs; load average before the run: {}",
        cpu_count(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

struct SizeReport {
    size: usize,
    in_process: InProcess,
    claudit: Vec<(Sink, Figures)>,
    peer: Option<Figures>,
    /// The file sink with detections off and on.
    detection: Option<(Figures, Figures)>,
}

fn main() {
    let options = Options::from_env();
    // This harness, and every thread it starts, stays off claudit's CPU.
    pin_current_thread(HELPER_CPU);
    std::fs::create_dir_all(&options.dir).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let hec = start_hec(&rt);
    println!("claudit end-to-end benchmark");
    println!("machine: {}", machine());
    println!(
        "claudit pinned to CPU {MEASURED_CPU}; simulator, HEC endpoint and harness on CPU {HELPER_CPU}; {} run(s) per figure, median",
        options.runs
    );
    let mut reports = Vec::new();
    let mut prefill_reports: Vec<(usize, Figures, Figures)> = Vec::new();
    let largest = options.sizes.iter().copied().max().unwrap_or(0);
    let mut payloads = Vec::new();
    for &size in &options.sizes {
        let sim = Simulator::start(size);
        let size_dir = options.dir.join(format!("n{size}"));
        let _ = std::fs::remove_dir_all(&size_dir);
        std::fs::create_dir_all(&size_dir).unwrap();
        let pages = fetch_pages(&rt, &sim.base_url);
        let geoip = mmdb::write_uniform_dbs(&networks(), &size_dir);
        let in_process = in_process(&pages, &geoip);
        if size == largest {
            payloads = sample_payloads(&pages, 2000);
        }
        drop(pages);
        println!(
            "\n== {size} activities: floor {:.0}/s, claudit normalize {:.0}/s ({:.2}x the floor's cost)",
            in_process.records as f64 / in_process.floor_secs,
            in_process.records as f64 / in_process.normalize_secs,
            in_process.normalize_secs / in_process.floor_secs
        );
        let mut claudit = Vec::new();
        for &sink in &options.sinks {
            let mut runs = Vec::new();
            for run in 0..options.runs {
                let run_dir = size_dir.join(format!("{}-{run}", sink.name()));
                let f = run_claudit(
                    &run_dir,
                    &run_dir.join("state.db"),
                    &sim,
                    sink,
                    &hec,
                    &geoip,
                    false,
                );
                println!("  claudit -> {:<4} run {run}: {}", sink.name(), f.line());
                let _ = std::fs::remove_dir_all(&run_dir);
                runs.push(f);
            }
            claudit.push((sink, median(&runs)));
        }
        // The same file-sink runs with the whole detection pack on, in this
        // run of the bench: what detections cost per activity.
        let mut detection = None;
        if options.sinks.contains(&Sink::File) {
            let mut runs = Vec::new();
            for run in 0..options.runs {
                let run_dir = size_dir.join(format!("detect-{run}"));
                let f = run_claudit(
                    &run_dir,
                    &run_dir.join("state.db"),
                    &sim,
                    Sink::File,
                    &hec,
                    &geoip,
                    true,
                );
                // How many findings the run journaled (what the findings
                // stream delivered besides the activities).
                let findings = Store::open_readonly(&run_dir.join("state.db"))
                    .and_then(|s| s.count_findings_after(0))
                    .map_or_else(|e| format!("? ({e})"), |n| n.to_string());
                println!(
                    "  claudit -> file, detections on, run {run}: {}, {findings} findings",
                    f.line()
                );
                let _ = std::fs::remove_dir_all(&run_dir);
                runs.push(f);
            }
            let off = claudit
                .iter()
                .find(|(s, _)| *s == Sink::File)
                .map(|(_, f)| *f)
                .unwrap_or_default();
            detection = Some((off, median(&runs)));
        }
        let mut peer = None;
        if options.peer {
            let mut runs = Vec::new();
            for run in 0..options.runs {
                let Some(f) = run_peer(&sim, &size_dir.join("peer.ndjson")) else {
                    break;
                };
                println!("  python sdk  run {run}: {}", f.line());
                runs.push(f);
            }
            peer = (!runs.is_empty()).then(|| median(&runs));
        }
        if options.prefill > 0 && options.prefill_sizes.contains(&size) {
            let state = options.dir.join("prefilled.db");
            if !state.exists() {
                let _ = std::fs::remove_file(options.dir.join("prefilled.db-wal"));
                let sample = if payloads.is_empty() {
                    let pages = fetch_pages(&rt, &sim.base_url);
                    sample_payloads(&pages, 2000)
                } else {
                    payloads.clone()
                };
                let t = Instant::now();
                prefill(&state, options.prefill, &sample);
                println!(
                    "  pre-filled a journal with {} rows in {:.1} s ({:.1} GB)",
                    options.prefill,
                    t.elapsed().as_secs_f64(),
                    std::fs::metadata(&state).map_or(0, |m| m.len()) as f64 / 1e9
                );
            }
            let mut runs = Vec::new();
            for run in 0..options.runs {
                reset_for_run(&state, options.prefill);
                let run_dir = size_dir.join(format!("prefilled-{run}"));
                let before = Store::open_readonly(&state)
                    .unwrap()
                    .journal_rows()
                    .unwrap();
                let f = run_claudit(&run_dir, &state, &sim, Sink::File, &hec, &geoip, false);
                println!(
                    "  claudit -> file on a journal of {before} rows, run {run}: {}",
                    f.line()
                );
                let _ = std::fs::remove_dir_all(&run_dir);
                runs.push(f);
            }
            let empty = claudit
                .iter()
                .find(|(s, _)| *s == Sink::File)
                .map(|(_, f)| *f)
                .unwrap_or_default();
            prefill_reports.push((size, empty, median(&runs)));
        }
        reports.push(SizeReport {
            size,
            in_process,
            claudit,
            peer,
            detection,
        });
        drop(sim);
    }
    let _ = std::fs::remove_file(options.dir.join("prefilled.db"));
    let _ = std::fs::remove_file(options.dir.join("prefilled.db-wal"));
    let _ = std::fs::remove_file(options.dir.join("prefilled.db-shm"));
    print_summary(&reports, &prefill_reports, options.prefill);
    let _ = std::io::stdout().flush();
}

fn print_summary(
    reports: &[SizeReport],
    prefill: &[(usize, Figures, Figures)],
    prefill_rows: usize,
) {
    println!("\n== summary (medians)\n");
    println!(
        "| backlog | pipeline | activities/s | CPU s per 100k | peak RSS MB | vs SDK (activities/s) | vs floor (CPU per record) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in reports {
        let floor_cpu_100k = r.in_process.floor_secs / r.in_process.records as f64 * 100_000.0;
        let norm_cpu_100k = r.in_process.normalize_secs / r.in_process.records as f64 * 100_000.0;
        println!(
            "| {} | floor: serde_json parse + serialize (in process) | {:.0} | {:.3} | | | 1.00x |",
            r.size,
            r.in_process.records as f64 / r.in_process.floor_secs,
            floor_cpu_100k
        );
        println!(
            "| {} | claudit normalize only (parse, enrich, map, serialize; in process) | {:.0} | {:.3} | | | {:.2}x |",
            r.size,
            r.in_process.records as f64 / r.in_process.normalize_secs,
            norm_cpu_100k,
            norm_cpu_100k / floor_cpu_100k
        );
        if let Some(p) = &r.peer {
            println!(
                "| {} | Python SDK → NDJSON | {:.0} | {:.3} | {:.1} | 1.00x | {:.2}x |",
                r.size,
                p.per_sec(),
                p.cpu_per_100k(),
                mb(p.peak_rss_kb),
                p.cpu_per_100k() / floor_cpu_100k
            );
        }
        for (sink, f) in &r.claudit {
            let vs_peer = r.peer.as_ref().map_or("—".to_string(), |p| {
                format!("{:.2}x", f.per_sec() / p.per_sec())
            });
            println!(
                "| {} | **claudit → {}** (durable journal) | {:.0} | {:.3} | {:.1} | {vs_peer} | {:.2}x |",
                r.size,
                sink.name(),
                f.per_sec(),
                f.cpu_per_100k(),
                mb(f.peak_rss_kb),
                f.cpu_per_100k() / floor_cpu_100k
            );
        }
    }
    if reports.iter().any(|r| r.detection.is_some()) {
        println!(
            "\n| backlog | claudit → file, detections off | detections on (56 rules, findings delivered) | CPU per activity, on / off |"
        );
        println!("|---|---|---|---|");
        for r in reports {
            let Some((off, on)) = &r.detection else {
                continue;
            };
            println!(
                "| {} | {:.0}/s, {:.3} CPU s/100k, {:.1} MB | {:.0}/s, {:.3} CPU s/100k, {:.1} MB | {:.2}x |",
                r.size,
                off.per_sec(),
                off.cpu_per_100k(),
                mb(off.peak_rss_kb),
                on.per_sec(),
                on.cpu_per_100k(),
                mb(on.peak_rss_kb),
                on.cpu_per_100k() / off.cpu_per_100k()
            );
        }
    }
    if !prefill.is_empty() {
        println!(
            "\n| backlog | claudit → file on an empty journal | on a journal of {prefill_rows}+ rows | ratio |"
        );
        println!("|---|---|---|---|");
        for (size, empty, full) in prefill {
            println!(
                "| {size} | {:.0}/s, {:.3} CPU s/100k, {:.1} MB | {:.0}/s, {:.3} CPU s/100k, {:.1} MB | {:.2}x |",
                empty.per_sec(),
                empty.cpu_per_100k(),
                mb(empty.peak_rss_kb),
                full.per_sec(),
                full.cpu_per_100k(),
                mb(full.peak_rss_kb),
                full.per_sec() / empty.per_sec()
            );
        }
    }
}
