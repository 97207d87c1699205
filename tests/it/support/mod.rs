//! Set-up shared by the integration tests: real processes, real files, real
//! sockets; nothing here asserts what a test is about, only that its set-up
//! worked (with a message naming what did not).
//!
//! - [`daemon`]: the release binary: `claudit run` spawned with its log in a
//!   file, stopped with a deadline (SIGTERM, then SIGKILL); the one scan of
//!   logs and outputs for secrets;
//! - [`archive`]: `claudit archive verify` and `export` as `main.rs` calls them;
//! - [`config`]: a `claudit.toml` from typed tables, as the loader reads it;
//! - [`journal`]: the journal fixture, a real state database with pages
//!   committed as the poller commits them;
//! - [`sink_task`]: real `SinkTask`s over a journal, started, awaited and
//!   stopped;
//! - [`wait`]: poll a condition until a deadline, failing with what was
//!   awaited;
//! - [`elasticsearch`], [`http`]: the fake destinations several suites share;
//! - [`echo_destination`]: a destination that echoes credentials back (secret scans);
//! - [`faulty_feed`]: a Compliance API whose paging is broken (a cursor that does not advance, more pages without a cursor);
//! - [`sdk_walk`]: the community SDK's walk of a range (one query, `after_id` paging), the request baseline;
//! - [`syslog`]: rsyslogd or an in-process octet-counting TLS receiver, and the certificates they use;
//! - [`hostile_api`]: a hostile Compliance API in front of the simulator (gzip bombs, endless bodies);
//! - [`logs`]: log lines written inside this process;
//! - [`mmdb`]: MaxMind databases written at test time;
//! - [`process_env`]: the environment, set once before any test runs.
//!
//! `config.rs` and `mmdb.rs` are also compiled into benches with `#[path]`,
//! so they use only claudit and external crates, never `super::`.

pub mod archive;
pub mod config;
pub mod daemon;
pub mod echo_destination;
pub mod elasticsearch;
pub mod faulty_feed;
pub mod hostile_api;
pub mod http;
pub mod journal;
pub mod logs;
pub mod mmdb;
pub mod process_env;
pub mod sdk_walk;
pub mod sink_task;
pub mod syslog;
pub mod wait;

mod tests;
