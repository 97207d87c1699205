//! Waiting for a condition: poll it until it holds or a deadline passes, and
//! fail with a message naming what was awaited (and, where the check says,
//! what it saw last), never hang.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// What a check returns: done (with a value), or not yet.
///
/// `bool` and `Option<T>` say only whether it is done; `Result<T, E>` also
/// says what it saw instead (`Err`), which the timeout message repeats.
pub trait Check<T> {
    fn outcome(self) -> Result<T, Option<String>>;
}

impl Check<()> for bool {
    fn outcome(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Check<T> for Option<T> {
    fn outcome(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Display> Check<T> for Result<T, E> {
    fn outcome(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// How long to wait for a condition, and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    limit: Duration,
    every: Duration,
}

impl Wait {
    /// Up to `limit`, looking every 50 ms.
    pub const fn up_to(limit: Duration) -> Wait {
        Wait {
            limit,
            every: Duration::from_millis(50),
        }
    }

    /// Looks every `every` instead (for checks that cost something, such
    /// as opening a state database a daemon is writing).
    pub const fn every(self, every: Duration) -> Wait {
        Wait { every, ..self }
    }

    /// Polls `check` on the async runtime until it is done; panics after the
    /// limit, naming `what`.
    pub async fn until<T, C: Check<T>>(self, what: &str, mut check: impl AsyncFnMut() -> C) -> T {
        let deadline = Instant::now() + self.limit;
        loop {
            let seen = match check().await.outcome() {
                Ok(value) => return value,
                Err(seen) => seen,
            };
            if Instant::now() >= deadline {
                self.timed_out(what, seen);
            }
            tokio::time::sleep(self.every).await;
        }
    }

    /// The same for a check that blocks (no runtime needed); inside a
    /// multi-threaded runtime, call it in `tokio::task::block_in_place`.
    pub fn until_blocking<T, C: Check<T>>(self, what: &str, mut check: impl FnMut() -> C) -> T {
        let deadline = Instant::now() + self.limit;
        loop {
            let seen = match check().outcome() {
                Ok(value) => return value,
                Err(seen) => seen,
            };
            if Instant::now() >= deadline {
                self.timed_out(what, seen);
            }
            std::thread::sleep(self.every);
        }
    }

    fn timed_out(&self, what: &str, seen: Option<String>) -> ! {
        match seen {
            Some(seen) => panic!(
                "timed out after {:?} waiting for {what}; last seen: {seen}",
                self.limit
            ),
            None => panic!("timed out after {:?} waiting for {what}", self.limit),
        }
    }
}
