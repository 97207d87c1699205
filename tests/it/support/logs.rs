//! Log lines written inside this process, captured for assertions: per
//! thread while a guard lives, or process-wide by the test binary's one
//! global subscriber.

use std::sync::{Arc, Mutex, OnceLock};

/// A buffer of formatted log lines.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Captures the log lines (DEBUG and up) of the current thread while the
    /// guard lives: use a current-thread runtime so the tasks under test log
    /// here too.
    pub fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || logs.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Every thread's log output (claudit at TRACE, dependencies at WARN) that
/// no [`Logs::capture`] takes, from the first call on.
///
/// The test binary's only global subscriber, installed before the first
/// test that needs it creates anything that logs: tracing caches each call
/// site's interest process-wide, so a per-test (thread-local) subscriber can
/// miss events of tasks on other threads when tests run in parallel.
pub fn global() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn,claudit=trace"))
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        logs
    })
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}
