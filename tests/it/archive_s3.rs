//! The archive sink's S3 backend against a real S3-compatible server:
//! moto (`moto[server]` from PyPI, which implements Object Lock). `.ci/run`
//! starts it and sets `CLAUDIT_TEST_S3_ENDPOINT`; without that variable
//! each test starts its own from `target/moto-venv` (creating the venv with
//! pip if it is missing). A second S3 client, boto3 from the same venv,
//! inspects what was written.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use claudit::archive::verify::Range;
use claudit::config::{self, Config};
use claudit::sinks::SinkTask;
use claudit::store::{JournalRecord, SharedStore};
use tokio_util::sync::CancellationToken;

use crate::support::archive::verify_sink;
use crate::support::config::{ConfigFile, sink, source};
use crate::support::daemon;
use crate::support::journal::{self, Journal, Page};
use crate::support::sink_task::SinkTasks;
use crate::support::wait::Wait;

/// 2026-01-02T00:00:00Z.
const H0: i64 = 1_767_312_000_000;
const HOUR: i64 = 3_600_000;

/// A moto server: the one `.ci/run` started, or our own (killed on drop).
struct Moto {
    endpoint: String,
    child: Option<Child>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn venv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/moto-venv")
}

impl Moto {
    fn start() -> Moto {
        // The credentials moto accepts are in the environment from the
        // start (support::process_env), for the sink, verify and the binary.
        if let Ok(endpoint) = std::env::var("CLAUDIT_TEST_S3_ENDPOINT") {
            return Moto {
                endpoint,
                child: None,
            };
        }
        let venv = venv();
        // The tests of this binary run in parallel: one installs, the
        // others wait for it instead of racing pip into the same venv.
        static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _installing = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
        if !venv.join("bin/moto_server").exists() {
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .unwrap()
                .success()
                && Command::new(venv.join("bin/pip"))
                    .args(["install", "--quiet", "moto[server]"])
                    .status()
                    .unwrap()
                    .success();
            assert!(ok, "could not install moto[server] into {}", venv.display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Wait::up_to(Duration::from_secs(30))
            .every(Duration::from_millis(100))
            .until_blocking(&format!("moto to listen on port {port}"), || {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
        Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child: Some(child),
        }
    }

    /// Runs a boto3 command (see `BOTO`) and returns its output.
    fn boto(&self, args: &[&str]) -> String {
        let out = Command::new(venv().join("bin/python"))
            .arg("-c")
            .arg(BOTO)
            .args(args)
            .env("S3_ENDPOINT", &self.endpoint)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "boto3 {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

const BOTO: &str = r#"
import boto3, json, os, sys
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
cmd, bucket = sys.argv[1], sys.argv[2]
if cmd == "create":
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=(sys.argv[3] == "lock"))
elif cmd == "versions":
    out = []
    for v in s3.list_object_versions(Bucket=bucket).get("Versions", []):
        # HeadObject, not GetObjectRetention: moto answers the latter with 500.
        h = s3.head_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
        out.append({"key": v["Key"], "version": v["VersionId"], "mode": h.get("ObjectLockMode"),
                    "until": h["ObjectLockRetainUntilDate"].isoformat()})
    print(json.dumps(out))
elif cmd == "delete":
    try:
        s3.delete_object(Bucket=bucket, Key=sys.argv[3], VersionId=sys.argv[4])
        print("deleted")
    except Exception as e:
        print("refused " + e.response["Error"]["Code"])
elif cmd == "overwrite":
    s3.put_object(Bucket=bucket, Key=sys.argv[3], Body=b"not the archived bytes")
"#;

struct Fixture {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Fixture {
    fn new(moto: &Moto, bucket: &str, lock: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = sink("arch", "archive")
            .set("backend", "s3")
            .set("bucket", bucket)
            .set("prefix", "claudit/")
            .set("region", "us-east-1")
            .set("endpoint", moto.endpoint.as_str());
        if lock {
            archive = archive
                .set("object_lock_mode", "governance")
                .set("retention", "2d");
        }
        let config = ConfigFile::new(&dir.path().join("state.db"))
            .source(source("s1").set("api_key", "sk-ant-api01-unused"))
            .sink(archive)
            .write(&dir.path().join("claudit.toml"));
        Fixture { dir, config }
    }

    fn config(&self) -> Config {
        config::load(&self.config).unwrap_or_else(|e| panic!("{e}"))
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    /// Journals `n` records per hour for `hours` hours from H0 and seals them.
    fn journal(&self, hours: i64, n: i64) {
        let records: Vec<JournalRecord> = (0..hours * n)
            .map(|i| {
                let at = H0 + (i / n) * HOUR + (i % n) * 1000;
                let raw = format!(
                    r#"{{"id":"act-{i:04}", "created_at":"{}"}}"#,
                    chrono::DateTime::from_timestamp_millis(at)
                        .unwrap()
                        .to_rfc3339()
                );
                journal::record(&format!("act-{i:04}"), at, raw)
            })
            .collect();
        let page = Page {
            source: "s1",
            start_ms: H0,
            end_ms: H0 + hours * HOUR,
            now_ms: H0 + hours * HOUR,
            ..Page::default()
        };
        Journal::at(&self.db()).commit(&page, &records);
    }

    fn task(&self) -> SinkTask {
        let (_tx, rx) = tokio::sync::watch::channel(0u64);
        SinkTask {
            config: self.config().sinks[0].clone(),
            store: SharedStore::open(&self.db()).unwrap(),
            journal_head: rx,
            metrics: Default::default(),
            mapper: Default::default(),
        }
    }

    /// Runs the sink until the whole journal is archived.
    async fn archive_all(&self) {
        let journal = Journal::at(&self.db());
        let head = journal.head();
        let mut task = SinkTasks::start(&journal.shared(), vec![self.config().sinks[0].clone()]);
        task.until(
            "the whole journal archived",
            Wait::up_to(Duration::from_secs(60)),
            async || {
                let cursor = journal.cursor("arch");
                (cursor.seq >= head)
                    .then_some(())
                    .ok_or(format!("{cursor:?}"))
            },
        )
        .await;
        task.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_locked_deletes_refused_and_verify_reads_the_bucket() {
    let moto = Moto::start();
    let bucket = "claudit-archive-locked";
    moto.boto(&["create", bucket, "lock"]);
    let f = Fixture::new(&moto, bucket, true);
    f.journal(3, 40);
    let started = chrono::Utc::now();
    f.archive_all().await;

    // Three hour segments and one manifest object (one flush), each with
    // the configured mode and a retention two days from the write.
    let versions: Vec<serde_json::Value> =
        serde_json::from_str(&moto.boto(&["versions", bucket])).unwrap();
    let keys: Vec<&str> = versions
        .iter()
        .map(|v| v["key"].as_str().unwrap())
        .collect();
    assert_eq!(versions.len(), 4, "{keys:?}");
    assert!(
        keys.contains(&"claudit/manifest/000000000001.ndjson"),
        "{keys:?}"
    );
    assert_eq!(
        keys.iter()
            .filter(|k| k.starts_with("claudit/segments/s1/2026-01-02/"))
            .count(),
        3
    );
    for v in &versions {
        assert_eq!(v["mode"], "GOVERNANCE", "{v}");
        let until = chrono::DateTime::parse_from_rfc3339(v["until"].as_str().unwrap()).unwrap();
        let days = (until.with_timezone(&chrono::Utc) - started).num_hours();
        assert!(
            (47..=49).contains(&days),
            "retain until {until}: {days} h from the write"
        );
    }
    // Deleting a locked version is refused.
    let v = &versions[0];
    let answer = moto.boto(&[
        "delete",
        bucket,
        v["key"].as_str().unwrap(),
        v["version"].as_str().unwrap(),
    ]);
    assert!(answer.starts_with("refused AccessDenied"), "{answer}");

    let config = f.config();
    let report = verify_sink(&config, "arch", Range::default(), None)
        .await
        .unwrap();
    assert!(report.ok(), "{report}");
    assert_eq!(
        (
            report.records_checked,
            report.journal_rows_checked,
            report.manifest_lines
        ),
        (120, 120, 3)
    );

    // A new version over a segment (what an overwrite leaves: the locked
    // original stays, but readers get the new bytes) is caught.
    let segment = keys.iter().find(|k| k.contains("/segments/")).unwrap();
    moto.boto(&["overwrite", bucket, segment]);
    let report = verify_sink(&config, "arch", Range::default(), None)
        .await
        .unwrap();
    let b = report
        .first_break
        .clone()
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        matches!(b.check, "segment size" | "segment sha256"),
        "{report}"
    );
    assert_eq!(
        Some(segment.trim_start_matches("claudit/segments/")),
        b.segment.as_deref()
    );
    assert!(
        b.location.starts_with("manifest/000000000001.ndjson line "),
        "{report}"
    );

    // The binary reads the bucket too.
    let out = Command::new(daemon::CLAUDIT)
        .args(["archive", "verify", "--sink", "arch", "--config"])
        .arg(&f.config)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_without_object_lock_is_refused_when_the_sink_asks_for_it() {
    let moto = Moto::start();
    let bucket = "claudit-archive-unlocked";
    moto.boto(&["create", bucket, "plain"]);
    let f = Fixture::new(&moto, bucket, true);
    f.journal(1, 5);
    let err = f.task().run(CancellationToken::new()).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("does not have Object Lock enabled"), "{msg}");

    // Without Object Lock in the sink, the same bucket is fine.
    let f = Fixture::new(&moto, bucket, false);
    f.journal(2, 5);
    f.archive_all().await;
    let report = verify_sink(&f.config(), "arch", Range::default(), None)
        .await
        .unwrap();
    assert!(report.ok(), "{report}");
    assert_eq!(report.records_checked, 10);
}
