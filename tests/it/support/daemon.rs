//! The release binary as the tests run it: `claudit run` as a child process
//! with its JSON logs in a file, stopped with a deadline (SIGTERM, then
//! SIGKILL), never left running after a test; and the one scan of logs and
//! outputs for secrets.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The release binary built for these tests.
pub const CLAUDIT: &str = env!("CARGO_BIN_EXE_claudit");

/// `claudit --log-format json run --config <config>`, stdout discarded; add
/// environment variables, then [`Daemon::spawn`] it.
pub fn run_command(config: &Path) -> Command {
    let mut command = Command::new(CLAUDIT);
    command
        .args(["--log-format", "json", "run", "--config"])
        .arg(config)
        .stdout(Stdio::null());
    command
}

/// A running daemon. Dropping it kills it (SIGKILL) if it still runs, so a
/// failed assertion leaves no process behind.
pub struct Daemon {
    child: Child,
    /// Where its stderr (the log) goes.
    pub log: PathBuf,
}

impl Daemon {
    /// Spawns `command` with its stderr written to `log` (created anew).
    pub fn spawn(mut command: Command, log: &Path) -> Daemon {
        let file = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let child = command
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Daemon {
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` (SIGHUP, SIGTERM, ...).
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on the pid of our own child, which has not been
        // reaped yet (so the pid cannot have been reused).
        assert_eq!(
            unsafe { libc::kill(self.pid(), signal) },
            0,
            "kill({signal})"
        );
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for it to exit; after `limit`, kills it (SIGKILL) and fails.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!(
                    "the daemon did not exit within {limit:?}; killed it; log in {}",
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A graceful shutdown: SIGTERM, then [`Daemon::wait`] up to `limit`.
    pub fn stop(&mut self, limit: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait(limit)
    }

    /// SIGKILL (what a crash or the OOM killer does), then reaps it.
    pub fn kill(&mut self) {
        if self.try_wait().is_none() {
            self.child.kill().unwrap();
            self.child.wait().unwrap();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The text of every `*.log` file in `dir` (one per daemon started there).
pub fn logs_in(dir: &Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            all.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    all
}

/// Each line of a JSON log, parsed; fails on a line that is not JSON.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"))
        })
        .collect()
}

/// Fails if any of `secrets` occurs in `text` (logs, output, a scrape),
/// naming `place` and the line, with the secret itself masked so the
/// failure message does not leak it either.
pub fn assert_no_secret(place: &str, text: &str, secrets: &[&str]) {
    for (i, secret) in secrets.iter().enumerate() {
        assert!(!secret.is_empty(), "secret #{i} is empty");
        if !text.contains(secret) {
            continue;
        }
        let mask = format!("<secret #{i}>");
        match text.lines().enumerate().find(|(_, l)| l.contains(secret)) {
            Some((n, line)) => panic!(
                "{place}: line {} contains secret #{i}: {}",
                n + 1,
                line.replace(secret, &mask)
            ),
            None => panic!("{place} contains secret #{i} (split across lines)"),
        }
    }
}
