//! Destination answers never leak a sink's credentials. The release daemon
//! runs every HTTP sink type (the webhook's too) against a destination that echoes the request
//! (credential headers, path, query, body) in its error answers: 400, 401,
//! 403, 413, 500, per-item refusals, a failing token endpoint
//! (`support/echo_destination.rs`). Each secret is a canary; the daemon's
//! logs, the output of `check --connect`, `status`, `status --json`,
//! `dlq list`, `dlq show`, `dlq replay`, and every table of the state
//! database (and its files' bytes) are scanned for each canary in every
//! encoding it could travel in.

use crate::support::echo_destination as echo;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use claudit::sim::{SimConfig, Simulator};
use claudit::store::Store;

const API_KEY: &str = "sk-ant-api01-sink-secrets-test-0123456789";
const HEC_TOKEN: &str = "c4a9e2d1-7b3f-4e8a-9c6d-0f1e2d3c4b5a";
const DD_API_KEY: &str = "ddc4na7y5e6f7a8b9c0d1e2f3a4b5c6d";
const SUMO_CODE: &str = "SumoCanary8dhaV3uTKlva1GBWBGxg5Kh7UoGEkfAR7eOvq==";
const SENTINEL_SECRET: &str = "Az8Q~canary.Secret_value-1234~x";
const ES_USER: &str = "elastic";
const ES_PASSWORD: &str = "es-Canary/pa55+word\"q";
/// Base64 of `canaryKeyId:canaryApiKeySecret123`, as Elasticsearch issues it.
const ES_API_KEY_DECODED: &str = "canaryKeyId:canaryApiKeySecret123";
/// A webhook URL's secret path segment, and the signing secret (never sent).
const WEBHOOK_TOKEN: &str = "HookCanaryT0ken9f8e7d6c5b4a3";
const WEBHOOK_SECRET: &str = "whsec_Q2FuYXJ5V2ViaG9va1NlY3JldEtleTEyMzQ1Njc4";
const AWS_SECRET: &str = "awsCanarySecret/Key+wJalrXUtnFEMIK7MDENG";
const AWS_SESSION_TOKEN: &str = "awsCanarySessionToken//FwoGZXIvYXdzEBYaDH+abc=";

/// One canary: the sink type it belongs to, its name, and the secret.
struct Canary {
    sink_type: &'static str,
    name: &'static str,
    secret: String,
}

fn canaries() -> Vec<Canary> {
    let c = |sink_type, name, secret: &str| Canary {
        sink_type,
        name,
        secret: secret.to_string(),
    };
    vec![
        c("splunk_hec", "token", HEC_TOKEN),
        c("datadog", "api_key", DD_API_KEY),
        c("sumo", "url code", SUMO_CODE),
        c("sentinel", "client_secret", SENTINEL_SECRET),
        c("sentinel", "access token", echo::ACCESS_TOKEN),
        c("elasticsearch", "password", ES_PASSWORD),
        c(
            "elasticsearch",
            "api_key",
            &STANDARD.encode(ES_API_KEY_DECODED),
        ),
        c("elasticsearch", "api_key secret", "canaryApiKeySecret123"),
        c("webhook", "url token", WEBHOOK_TOKEN),
        c("webhook", "secret", WEBHOOK_SECRET),
        c("archive (s3)", "secret access key", AWS_SECRET),
        c("archive (s3)", "session token", AWS_SESSION_TOKEN),
    ]
}

/// Every form a secret may be written in, lower-cased (the scan ignores
/// ASCII case).
fn encodings(secret: &str) -> Vec<String> {
    let percent = |form: bool| {
        secret
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric()
                    || matches!(b, b'-' | b'.' | b'_')
                    || (!form && b == b'~')
                {
                    (b as char).to_string()
                } else if form && b == b' ' {
                    "+".to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    let json = serde_json::to_string(secret).unwrap();
    let json = json[1..json.len() - 1].to_string();
    let mut forms = vec![
        secret.to_string(),
        percent(false),
        percent(true),
        json.clone(),
        json.replace('/', "\\/"),
        STANDARD.encode(secret),
        STANDARD_NO_PAD.encode(secret),
        URL_SAFE.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
    ];
    if secret == ES_PASSWORD {
        let pair = format!("{ES_USER}:{ES_PASSWORD}");
        forms.push(STANDARD.encode(&pair));
        forms.push(URL_SAFE_NO_PAD.encode(&pair));
    }
    forms.sort();
    forms.dedup();
    forms.into_iter().map(|f| f.to_ascii_lowercase()).collect()
}

fn sink(name: &str, kind: &str, keys: &str) -> String {
    format!(
        "\n[[sinks]]\nname = \"{name}\"\ntype = \"{kind}\"\nformat = \"raw\"\ncompression = false\n\
         batch_max_events = 50\nbatch_linger = \"0s\"\n{keys}\n"
    )
}

/// Every HTTP sink type, each in each hostile mode it has an answer for.
fn sinks(echo: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |name: String, toml: String| out.push((name, toml));
    for mode in ["s401", "item", "s500"] {
        let name = format!("hec_{mode}");
        let keys = format!("url = \"{echo}/{mode}\"\ntoken = \"${{HEC_TOKEN}}\"");
        add(name.clone(), sink(&name, "splunk_hec", &keys));
    }
    for mode in ["s400", "s403", "s413", "s500"] {
        let name = format!("dd_{mode}");
        let keys = format!("url = \"{echo}/{mode}\"\napi_key = \"${{DD_KEY}}\"");
        add(name.clone(), sink(&name, "datadog", &keys));
    }
    for mode in ["s400", "s401", "s500"] {
        let name = format!("sumo_{mode}");
        let keys = format!("url = \"{echo}/{mode}/receiver/v1/http/${{SUMO_CODE}}\"");
        add(name.clone(), sink(&name, "sumo", &keys));
    }
    for mode in ["tokfail", "s401", "s413", "s500"] {
        let name = format!("sentinel_{mode}");
        let keys = format!(
            "endpoint = \"{echo}/{mode}\"\nauthority = \"{echo}/{mode}-auth\"\n\
             dcr_immutable_id = \"dcr-00000000000000000000000000000000\"\n\
             stream = \"Custom-Canary_CL\"\n\
             tenant_id = \"00000000-0000-0000-0000-000000000000\"\n\
             client_id = \"11111111-1111-1111-1111-111111111111\"\n\
             client_secret = \"${{SENTINEL_SECRET}}\""
        );
        add(name.clone(), sink(&name, "sentinel", &keys));
    }
    for mode in ["s400", "s401", "s413", "s500"] {
        let name = format!("hook_{mode}");
        let keys = format!(
            "url = \"{echo}/{mode}/hook/${{WEBHOOK_TOKEN}}\"\nsecret = \"${{WEBHOOK_SECRET}}\""
        );
        add(name.clone(), sink(&name, "webhook", &keys));
    }
    for mode in ["s401", "item", "s500"] {
        let name = format!("es_basic_{mode}");
        let keys = format!(
            "url = \"{echo}/{mode}\"\nindex = \"canary\"\nusername = \"{ES_USER}\"\npassword = \"${{ES_PASSWORD}}\""
        );
        add(name.clone(), sink(&name, "elasticsearch", &keys));
        let name = format!("es_key_{mode}");
        let keys =
            format!("url = \"{echo}/{mode}\"\nindex = \"canary\"\napi_key = \"${{ES_API_KEY}}\"");
        add(name.clone(), sink(&name, "elasticsearch", &keys));
    }
    out
}

fn write_config(dir: &Path, api_url: &str, sinks_toml: &str) -> PathBuf {
    let d = dir.display();
    let path = dir.join("claudit.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[state]
path = "{d}/state.db"

[[sources]]
name = "canary"
base_url = "{api_url}"
api_key = "${{CANARY_API_KEY}}"
window = "1m"
settle_lag = "1s"
poll_interval = "1s"
sweep_interval = "1h"
initial_lookback = "30m"
no_data_after = "1h"
{sinks_toml}
"#
        ),
    )
    .unwrap();
    path
}

fn claudit() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_claudit"));
    cmd.env("CANARY_API_KEY", API_KEY)
        .env("HEC_TOKEN", HEC_TOKEN)
        .env("DD_KEY", DD_API_KEY)
        .env("SUMO_CODE", SUMO_CODE)
        .env("SENTINEL_SECRET", SENTINEL_SECRET)
        .env("WEBHOOK_TOKEN", WEBHOOK_TOKEN)
        .env("WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("ES_PASSWORD", ES_PASSWORD)
        .env("ES_API_KEY", STANDARD.encode(ES_API_KEY_DECODED))
        .env("AWS_ACCESS_KEY_ID", "AKIACANARYKEYID00000")
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .env("AWS_SESSION_TOKEN", AWS_SESSION_TOKEN)
        .env("RUST_LOG", "info")
        .arg("--log-format")
        .arg("json");
    cmd
}

/// Runs a CLI command to the end; its stdout and stderr together.
fn output(config: &Path, args: &[&str]) -> String {
    let out = claudit()
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Kills the daemon when dropped, so a failed assertion leaves none behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every value of every row of every table, as text, one line per row
/// ("table: values"), plus the raw bytes of the database's files.
fn database_text(db: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = String::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            out.push_str(&table);
            out.push(':');
            for i in 0..columns {
                let value: rusqlite::types::Value = row.get(i).unwrap();
                let text = match value {
                    rusqlite::types::Value::Text(t) => t,
                    rusqlite::types::Value::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
                    other => format!("{other:?}"),
                };
                out.push(' ');
                out.push_str(&text);
            }
            out.push('\n');
        }
    }
    for suffix in ["", "-wal"] {
        let file = PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(bytes) = std::fs::read(&file) {
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    out
}

/// The canaries found in `text`: (sink type, canary name, where).
fn leaks(outputs: &[(String, String)]) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for canary in canaries() {
        let forms = encodings(&canary.secret);
        for (place, text) in outputs {
            let text = text.to_ascii_lowercase();
            if forms.iter().any(|f| text.contains(f.as_str())) {
                found.push((
                    canary.sink_type.to_string(),
                    canary.name.to_string(),
                    place.clone(),
                ));
            }
        }
    }
    found
}

fn report(found: &[(String, String, String)]) -> String {
    let mut per_type: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for (t, name, _) in found {
        per_type.entry(t).or_default().insert(name);
    }
    let mut out = format!("{} leaks\n", found.len());
    for (t, names) in &per_type {
        out.push_str(&format!(
            "  {t}: {} canaries leaked: {names:?}\n",
            names.len()
        ));
    }
    for (t, name, place) in found {
        out.push_str(&format!("  {t} {name} in {place}\n"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoed_credentials_never_reach_logs_output_or_the_database() {
    let sim = Simulator::start(SimConfig {
        api_key: API_KEY.into(),
        backlog: 300,
        backlog_span: Duration::from_secs(20 * 60),
        live_per_second: 0.0,
        late_fraction: 0.0,
        rate_limit_per_minute: None,
        seed: 5,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let echo = echo::EchoDestination::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sinks = sinks(&echo.url);
    let toml: String = sinks.iter().map(|(_, t)| t.as_str()).collect();
    let config = write_config(dir.path(), &sim.base_url(), &toml);
    let db = dir.path().join("state.db");

    let log = dir.path().join("daemon.log");
    let mut daemon = KillOnDrop(
        claudit()
            .arg("run")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );

    // Every sink has met its hostile answer: an error on record, or dead letters.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        assert!(
            daemon.0.try_wait().unwrap().is_none(),
            "the daemon exited: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        let pending: Vec<&str> = match Store::open_readonly(&db) {
            Ok(store) => sinks
                .iter()
                .map(|(name, _)| name.as_str())
                .filter(|name| {
                    let errored = store
                        .sink_cursor(name)
                        .is_ok_and(|c| c.last_error.is_some());
                    let dead = store.dead_letter_count(name).unwrap_or(0) > 0;
                    !(errored || dead)
                })
                .collect(),
            Err(_) => vec!["(no database yet)"],
        };
        if pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sinks without an error or dead letter: {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let mut outputs: Vec<(String, String)> = Vec::new();
    outputs.push(("status".into(), output(&config, &["status"])));
    outputs.push((
        "status --json".into(),
        output(&config, &["status", "--json"]),
    ));
    outputs.push((
        "check --connect".into(),
        output(&config, &["check", "--connect"]),
    ));
    let dead: Vec<(i64, String)> = {
        let conn =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        let mut stmt = conn
            .prepare("SELECT min(id), sink FROM dead_letters GROUP BY sink")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    for kind in [
        "hec_item",
        "dd_s413",
        "sentinel_s413",
        "es_basic_item",
        "es_key_item",
        "hook_s413",
    ] {
        assert!(
            dead.iter().any(|(_, sink)| sink == kind),
            "no dead letter for {kind}: {dead:?}"
        );
    }
    for (id, sink) in &dead {
        let id = id.to_string();
        outputs.push((
            format!("dlq list --sink {sink}"),
            output(&config, &["dlq", "list", "--sink", sink]),
        ));
        outputs.push((
            format!("dlq show --sink {sink}"),
            output(&config, &["dlq", "show", "--sink", sink, "--id", &id]),
        ));
    }
    outputs.push((
        "dlq replay --sink dd_s413".into(),
        output(&config, &["dlq", "replay", "--sink", "dd_s413"]),
    ));
    drop(daemon);
    outputs.push(("daemon logs".into(), std::fs::read_to_string(&log).unwrap()));
    outputs.push(("state database".into(), database_text(&db)));

    // The S3 archive: a store that refuses and echoes. The daemon stops
    // on an archive it cannot open; its error and `check --connect` are
    // scanned.
    let s3_dir = tempfile::tempdir().unwrap();
    let s3_sink = format!(
        "\n[[sinks]]\nname = \"archive\"\ntype = \"archive\"\nbackend = \"s3\"\nbucket = \"canary-bucket\"\n\
         region = \"us-east-1\"\nendpoint = \"{}/s3\"\nobject_lock_mode = \"governance\"\nretention = \"1d\"\n",
        echo.url
    );
    let s3_config = write_config(s3_dir.path(), &sim.base_url(), &s3_sink);
    let run = claudit()
        .arg("run")
        .arg("--config")
        .arg(&s3_config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!run.status.success(), "the archive cannot open");
    let s3_run = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(s3_run.contains("HTTP 403"), "{s3_run}");
    outputs.push(("archive run".into(), s3_run));
    outputs.push((
        "archive check --connect".into(),
        output(&s3_config, &["check", "--connect"]),
    ));
    outputs.push((
        "archive state database".into(),
        database_text(&s3_dir.path().join("state.db")),
    ));

    // The echo did happen: the destinations saw (and answered with) every
    // credential, so a clean scan means redaction, not silence.
    let requests = echo.requests.lock().unwrap().clone();
    for prefix in [
        "POST /s401/services/collector/event",
        "POST /item/_bulk",
        "POST /s413/api/v2/logs",
        "POST /tokfail-auth/",
        "POST /s500/receiver/v1/http/",
        "GET /s3/canary-bucket",
    ] {
        assert!(
            requests.iter().any(|r| r.starts_with(prefix)),
            "no request {prefix}: {requests:?}"
        );
    }
    let found = leaks(&outputs);
    eprintln!("sink secrets scan: {}", report(&found));
    assert!(found.is_empty(), "{}", report(&found));
    let stored = &outputs
        .iter()
        .find(|(p, _)| p == "state database")
        .unwrap()
        .1;
    assert!(
        stored.contains("[REDACTED]"),
        "the echoes are stored, redacted"
    );
    sim.shutdown().await;
}
