//! The `claudit` command line. Each subcommand turns raw arguments into
//! validated settings, then calls one module:
//! `run` → `daemon::run`, `check` → `config::load` (+ `check::connect`),
//! `status` → `status::report`, `backfill` → `backfill::run`,
//! `demo` → `demo::run`, `map` → `ocsf::Mapper`, `dlq` and `replay` →
//! `dlq`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use claudit::config::{self, Config};
use claudit::telemetry::{self, LogFormat};

/// Exit code for a configuration error, or a state the daemon's user may
/// not write (sysexits EX_CONFIG): restarting will not help.
const EXIT_CONFIG: u8 = 78;
/// Exit code for a damaged state database (sysexits EX_DATAERR): restarting
/// will not help either; the message says how to recover.
const EXIT_DAMAGED: u8 = 65;

#[derive(Parser)]
#[command(
    name = "claudit",
    version,
    about = "Pulls the Anthropic Compliance API activity feed, normalizes it to OCSF, and delivers it to SIEMs and files",
    long_about = None
)]
struct Cli {
    /// Log format: json when stderr is not a terminal, text on a terminal (auto), or forced.
    #[arg(long, value_enum, default_value = "auto", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: poll every source, journal, deliver to every sink (stops on SIGTERM/SIGINT).
    Run {
        /// Configuration file (TOML).
        #[arg(long, short, env = "CLAUDIT_CONFIG")]
        config: PathBuf,
        /// If the state database is damaged or its content was lost, set its files aside
        /// (renamed with a timestamp, never deleted) and start over, re-reading every source's
        /// initial_lookback. Does nothing to a sound database.
        #[arg(long)]
        reset_state: bool,
    },
    /// Validate the configuration without network access; exit 0 if valid, 78 listing every problem otherwise.
    Check {
        #[arg(long, short, env = "CLAUDIT_CONFIG")]
        config: PathBuf,
        /// Also check each source's key against the API with one cheap request.
        #[arg(long)]
        connect: bool,
    },
    /// Show watermarks, lag, pending windows, sink cursors and dead letters from the state database.
    Status {
        #[arg(long, short, env = "CLAUDIT_CONFIG")]
        config: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Read a historical range into the journal (sinks then deliver it); rerun to resume.
    Backfill {
        #[arg(long, short, env = "CLAUDIT_CONFIG")]
        config: PathBuf,
        /// The source (its `name` in the configuration).
        #[arg(long)]
        source: String,
        /// Start of the range: RFC 3339 time, date (2026-01-01), or duration ago (7d).
        #[arg(long)]
        since: String,
        /// End of the range, exclusive (default: now).
        #[arg(long)]
        until: Option<String>,
        /// How often to log progress when stderr is not a terminal (a terminal gets a progress bar).
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        progress_every: Duration,
    },
    /// Inspect, replay or purge a sink's dead letters (events its destination rejected).
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Re-send the journal records created in a time range through one sink (its cursor does not move).
    Replay {
        #[arg(long, short, env = "CLAUDIT_CONFIG")]
        config: PathBuf,
        /// The sink (its `name` in the configuration; `NAME.findings` for the findings it receives, `NAME.directory` for its directory stream).
        #[arg(long)]
        sink: String,
        /// Start of the range (created_at): RFC 3339 time, date (2026-01-01), or duration ago (7d).
        #[arg(long)]
        since: String,
        /// End of the range, exclusive (default: now).
        #[arg(long)]
        until: Option<String>,
    },
    /// What claudit knows of a source's directory (who the actors are), or of one identity, and since when.
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// Verify an archive sink (hashes, hash chain, counts, journal) or export a range of it.
    Archive {
        #[command(subcommand)]
        command: ArchiveCommand,
    },
    /// Run the built-in Compliance API simulator through the real pipeline into OCSF and raw NDJSON files.
    Demo {
        /// Output directory for events.ocsf.ndjson and events.raw.ndjson.
        #[arg(long, default_value = "demo-out")]
        out: PathBuf,
        /// Activities in the simulator's backlog.
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        /// Seconds of live activity generation after the backlog.
        #[arg(long, default_value_t = 6)]
        live_secs: u64,
    },
    /// List the detection rules, or run them over raw activities offline.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Normalize raw activities (NDJSON files, or stdin) to OCSF NDJSON on stdout.
    Map {
        /// NDJSON files of activities as the API serves them; none = stdin.
        inputs: Vec<PathBuf>,
    },
    /// Check a running daemon's health endpoint: exit 0 on HTTP 200, 1 with a one-line reason otherwise (for container HEALTHCHECKs).
    Healthcheck {
        /// The health endpoint (the daemon's `[server] listen` address plus /healthz).
        #[arg(long, default_value = claudit::healthcheck::DEFAULT_URL)]
        url: String,
        /// Give up after this long (e.g. 3s).
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Run the Compliance API simulator standalone (for benchmarks and trying other clients).
    #[command(hide = true)]
    Simulate {
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: std::net::SocketAddr,
        #[arg(long, default_value_t = 100_000)]
        backlog: usize,
        #[arg(long, default_value = "sk-ant-api01-simulator")]
        api_key: String,
        /// Requests per minute before 429 (0 = unthrottled).
        #[arg(long, default_value_t = 600)]
        rate_limit: u32,
    },
}

// ---- claudit directory ----

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Print the source's directory (last sync, counts, last error), and with --user every fact known about one identity: memberships, groups, roles, departure, each with its time span and since when claudit knows it.
    Show {
        #[arg(long, short, env = "CLAUDIT_CONFIG")]
        config: PathBuf,
        /// The source (its `name` in the configuration).
        #[arg(long)]
        source: String,
        /// A user id (user_...) or an e-mail address.
        #[arg(long)]
        user: Option<String>,
    },
    /// Print the source's directory as OCSF User Inventory Info events (NDJSON on stdout): every member at --at, preceded by who joined, left or changed since --changes-since.
    Snapshot {
        #[arg(long, short, env = "CLAUDIT_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        source: String,
        /// The time the snapshot describes: RFC 3339 time, date, or duration ago (default: now).
        #[arg(long)]
        at: Option<String>,
        /// Also the changes since this time (RFC 3339 time, date, or duration ago).
        #[arg(long)]
        changes_since: Option<String>,
    },
}

// ---- claudit archive ----

#[derive(Subcommand)]
enum ArchiveCommand {
    /// Recompute every hash, walk the manifest's chain, check counts and compare with the journal; exit 0 only if all holds, 1 naming the first break.
    Verify {
        #[arg(long, short, env = "CLAUDIT_CONFIG")]
        config: PathBuf,
        /// The archive sink (its `name` in the configuration).
        #[arg(long)]
        sink: String,
        /// Only segments and records created from this time: RFC 3339 time, date (2026-01-01), or duration ago (7d).
        #[arg(long)]
        from: Option<String>,
        /// Only those created before this time.
        #[arg(long)]
        to: Option<String>,
    },
    /// Write the raw records created in a range, as archived, to FILE, with a verification summary in FILE.verification.json.
    Export {
        #[arg(long, short, env = "CLAUDIT_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        sink: String,
        /// Start of the range (created_at): RFC 3339 time, date, or duration ago.
        #[arg(long)]
        from: String,
        /// End of the range, exclusive.
        #[arg(long)]
        to: String,
        /// The NDJSON file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `claudit archive ...`: 0 verified, 1 a break (or the archive could not
/// be read), 78 a configuration or argument problem.
async fn archive(command: ArchiveCommand) -> anyhow::Result<ExitCode> {
    use claudit::archive::verify::Range;
    let (path, sink, from, to) = match &command {
        ArchiveCommand::Verify {
            config,
            sink,
            from,
            to,
        } => (config, sink, from.clone(), to.clone()),
        ArchiveCommand::Export {
            config,
            sink,
            from,
            to,
            ..
        } => (config, sink, Some(from.clone()), Some(to.clone())),
    };
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let archive_sink = match config.archive_sink(sink) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let now = chrono::Utc::now();
    let parse = |flag: &str, arg: Option<String>| -> Result<Option<i64>, String> {
        arg.map(|a| {
            claudit::backfill::parse_time_arg(&a, now)
                .map(|t| t.timestamp_millis())
                .map_err(|e| format!("{flag}: {e}"))
        })
        .transpose()
    };
    let range = match (parse("--from", from), parse("--to", to)) {
        (Ok(from_ms), Ok(to_ms)) => Range { from_ms, to_ms },
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    if let (Some(f), Some(t)) = (range.from_ms, range.to_ms)
        && f >= t
    {
        eprintln!("error: --from must be before --to");
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    // `archive/` knows neither the configuration nor the sinks: it is
    // handed the archive opened for reading and the state database.
    let reader = claudit::archive::Backend::open_reader(&archive_sink.backend)?;
    let journal = claudit::store::Store::open_readonly(&config.state.path);
    let ok = match command {
        ArchiveCommand::Verify { sink, .. } => {
            let report =
                claudit::archive::verify::verify(&reader, journal.as_ref(), &sink, range, None)
                    .await?;
            print!("{report}");
            report.ok()
        }
        ArchiveCommand::Export { sink, out, .. } => {
            let summary =
                claudit::archive::export::export(&reader, journal.as_ref(), &sink, range, &out)
                    .await?;
            println!(
                "wrote {} records to {} (SHA-256 {}); summary in {}",
                summary.records,
                out.display(),
                summary.sha256,
                claudit::archive::export::summary_path(&out).display()
            );
            print!("{}", summary.verification);
            summary.verification.ok()
        }
    };
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

// ---- end of claudit archive ----

// ---- claudit rules ----

#[derive(Subcommand)]
enum RulesCommand {
    /// Every rule (built-in and from [detections] rule_dirs) with its state, severity, kind and source.
    List {
        /// Apply this configuration's [detections] (rule directories, tuning); default: the built-in pack as shipped.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run the rules over raw activities (NDJSON files, or stdin) and print the findings as NDJSON.
    Test {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Only this rule.
        #[arg(long)]
        rule: Option<String>,
        /// ocsf (Detection Findings, as an OCSF sink receives them) or plain (as a raw sink receives them).
        #[arg(long, value_enum, default_value = "ocsf")]
        format: FindingFormat,
        /// NDJSON files of activities as the API serves them (see README, Detections); none = stdin.
        inputs: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FindingFormat {
    Ocsf,
    Plain,
}

/// `claudit rules ...`: 0 done, 1 a case's expectation failed or an input
/// is unreadable, 78 a configuration or rule problem.
fn rules(command: RulesCommand) -> anyhow::Result<ExitCode> {
    use claudit::detect::{DetectionSettings, cli};
    let config_path = match &command {
        RulesCommand::List { config } | RulesCommand::Test { config, .. } => config.clone(),
    };
    // Validated whole, but not against this machine's paths: a rule
    // author tests with a copy of the production file.
    let (settings, enrich, directory_sources) = match config_path {
        Some(path) => match config::load_settings_only(&path) {
            Ok(c) => {
                let directory_sources: Vec<String> = c
                    .directories()
                    .filter(|(_, d)| d.enabled)
                    .map(|(name, _)| name.to_string())
                    .collect();
                (c.detections, Some(c.enrich), directory_sources)
            }
            Err(errors) => {
                eprintln!("{errors}");
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
        },
        None => (DetectionSettings::default(), None, Vec::new()),
    };
    let mut set = match settings.load_rules() {
        Ok(set) => set,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    match command {
        RulesCommand::List { .. } => {
            print!(
                "{}",
                cli::list(&set, &settings, &directory_sources).map_err(anyhow::Error::msg)?
            );
            Ok(ExitCode::SUCCESS)
        }
        RulesCommand::Test {
            rule,
            format,
            inputs,
            ..
        } => {
            if let Some(id) = &rule
                && let Err(e) = cli::only_rule(&mut set, id)
            {
                eprintln!("error: --rule {id}: {e}");
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
            let enricher = match &enrich {
                Some(e) => claudit::enrich::Enricher::new(e)?,
                None => claudit::enrich::Enricher::without_geoip(),
            };
            let output = match format {
                FindingFormat::Ocsf => cli::Output::Ocsf,
                FindingFormat::Plain => cli::Output::Plain,
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut failed = false;
            let mut total = Vec::new();
            let mut run_one = |name: &str, reader: Box<dyn BufRead>| -> anyhow::Result<()> {
                let run = cli::run(name, reader, &set, &settings, &enricher, rule.as_deref())
                    .map_err(anyhow::Error::msg)?;
                for finding in &run.findings {
                    writeln!(out, "{}", cli::render(finding, output))?;
                }
                if let Some(note) = cli::directory_note(&set, &settings, &run) {
                    eprintln!("{name}: {note}");
                }
                for m in &run.mismatches {
                    failed = true;
                    eprintln!(
                        "{name}:{}: case {:?}: expected {} finding(s), got {}",
                        m.line, m.case, m.expected, m.got
                    );
                }
                if run.cases > 0 {
                    eprintln!(
                        "{name}: {} cases, {} passed, {} failed",
                        run.cases,
                        run.cases - run.mismatches.len(),
                        run.mismatches.len()
                    );
                }
                total.extend(run.findings);
                Ok(())
            };
            if inputs.is_empty() {
                run_one("stdin", Box::new(std::io::BufReader::new(std::io::stdin())))?;
            }
            for path in &inputs {
                let file = std::fs::File::open(path)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                run_one(
                    &path.display().to_string(),
                    Box::new(std::io::BufReader::new(file)),
                )?;
            }
            out.flush()?;
            eprintln!("{} findings ({})", total.len(), cli::summary(&total));
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

// ---- end of claudit rules ----

#[derive(Subcommand)]
enum DlqCommand {
    /// One line per dead letter: id, journal seq, activity id, time, reason.
    List {
        #[arg(long, short, env = "CLAUDIT_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        sink: String,
    },
    /// One dead letter in full: the destination's answer and the journaled payload.
    Show {
        #[arg(long, short, env = "CLAUDIT_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        sink: String,
        #[arg(long)]
        id: i64,
    },
    /// Re-send dead letters (all, or --id N) once; accepted ones are removed, rejected ones kept with the new answer.
    Replay {
        #[arg(long, short, env = "CLAUDIT_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        sink: String,
        #[arg(long)]
        id: Option<i64>,
    },
    /// Delete dead letters (all, or --id N) for good.
    Purge {
        #[arg(long, short, env = "CLAUDIT_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        sink: String,
        #[arg(long)]
        id: Option<i64>,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

/// Blocks of 4 MiB and more (an unusually large answer or record, a bomb
/// stopped at its cap) get a mapping of their own, given back to the
/// system when freed. By default glibc raises that threshold to the largest
/// block freed so far (up to 32 MiB), after which such blocks are carved
/// from per-thread arenas and stay resident: a burst of large answers would
/// keep the process at its peak, and peaks of different threads would add
/// up. Everyday blocks (a 3 MB page, a batch) stay below it.
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; no thread has
    // started yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

fn main() -> ExitCode {
    return_large_blocks_to_the_system();
    let cli = Cli::parse();
    let json_logs = telemetry::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The daemon's JSON logs stay one JSON object per line, its fatal error
    // included; the other commands talk to a person on a terminal.
    let daemon_json = json_logs && matches!(cli.command, Command::Run { .. });
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) if daemon_json => {
            tracing::error!(error = %format!("{e:#}"), "claudit stopped");
            exit_code_of(&e)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            exit_code_of(&e)
        }
    }
}

/// The exit code of a failure: 65 for a damaged state database and 78 for
/// a state the daemon's user may not write (systemd's unit does not restart
/// on either: the same start would fail the same way), 1 otherwise.
fn exit_code_of(error: &anyhow::Error) -> ExitCode {
    use claudit::store::{Problem, StoreError};
    let problem = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<StoreError>())
        .map(StoreError::problem);
    match problem {
        Some(Problem::Damaged) => ExitCode::from(EXIT_DAMAGED),
        Some(Problem::Access) => ExitCode::from(EXIT_CONFIG),
        Some(Problem::Other) | None => ExitCode::FAILURE,
    }
}

fn load_config(path: &std::path::Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(EXIT_CONFIG)
    })
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run {
            config,
            reset_state,
        } => {
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let cancel = shutdown_on_signals();
            let start = claudit::daemon::StartOptions { reset_state };
            claudit::daemon::run(config, start, cancel).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config, connect } => {
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            println!(
                "{}: valid ({} sources, {} sinks)",
                config.file.display(),
                config.sources.len(),
                config.sinks.len()
            );
            for notice in &config.notices {
                println!("note: {notice}");
            }
            if connect {
                let ok = claudit::check::connect(&config).await;
                return Ok(if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { config, json } => {
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let report = claudit::status::report(&config, chrono::Utc::now().timestamp_millis())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Backfill {
            config,
            source,
            since,
            until,
            progress_every,
        } => {
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let now = chrono::Utc::now();
            let since = claudit::backfill::parse_time_arg(&since, now)
                .map_err(|e| anyhow::anyhow!("--since: {e}"))?;
            let until = match until {
                Some(u) => claudit::backfill::parse_time_arg(&u, now)
                    .map_err(|e| anyhow::anyhow!("--until: {e}"))?,
                None => now,
            };
            let outcome = claudit::backfill::run(
                &config,
                &source,
                since,
                until,
                progress_every,
                shutdown_on_signals(),
            )
            .await?;
            Ok(match outcome {
                claudit::backfill::Outcome::Complete { .. } => ExitCode::SUCCESS,
                // 128 + SIGINT, as a shell reports an interrupted command.
                claudit::backfill::Outcome::Interrupted { .. } => ExitCode::from(130),
            })
        }
        Command::Dlq { command } => dlq(command).await,
        Command::Directory {
            command:
                DirectoryCommand::Snapshot {
                    config,
                    source,
                    at,
                    changes_since,
                },
        } => {
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let now = chrono::Utc::now();
            let time = |flag: &str, arg: Option<String>| -> Result<Option<i64>, String> {
                arg.map(|a| {
                    claudit::backfill::parse_time_arg(&a, now)
                        .map(|t| t.timestamp_millis())
                        .map_err(|e| format!("{flag}: {e}"))
                })
                .transpose()
            };
            let (at, since) = match (time("--at", at), time("--changes-since", changes_since)) {
                (Ok(at), Ok(since)) => (at.unwrap_or(now.timestamp_millis()), since),
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(EXIT_CONFIG));
                }
            };
            let directory = config
                .source(&source)
                .filter(|s| s.directory.enabled)
                .map(|_| {
                    claudit::directory::Directory::open(&config.state.path, config.directories())
                })
                .transpose()?
                .flatten();
            let Some(directory) = directory else {
                eprintln!(
                    "error: source {source:?} has no directory context in {}; add a [sources.directory] table to it",
                    config.file.display()
                );
                return Ok(ExitCode::from(EXIT_CONFIG));
            };
            let mut out = std::io::stdout().lock();
            for line in claudit::ocsf::inventory::events(&directory, &source, since, at) {
                writeln!(out, "{line}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Directory {
            command:
                DirectoryCommand::Show {
                    config,
                    source,
                    user,
                },
        } => {
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let Some(source_config) = config.source(&source) else {
                let names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
                eprintln!(
                    "error: no source named {source:?} in {}; configured sources: {}",
                    config.file.display(),
                    names.join(", ")
                );
                return Ok(ExitCode::from(EXIT_CONFIG));
            };
            print!(
                "{}",
                claudit::directory::show::show(
                    &config.state.path,
                    &source_config.name,
                    &source_config.directory,
                    user.as_deref()
                )?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Archive { command } => archive(command).await,
        Command::Replay {
            config,
            sink,
            since,
            until,
        } => {
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let now = chrono::Utc::now();
            let since = claudit::backfill::parse_time_arg(&since, now)
                .map_err(|e| anyhow::anyhow!("--since: {e}"))?;
            let until = match until {
                Some(u) => claudit::backfill::parse_time_arg(&u, now)
                    .map_err(|e| anyhow::anyhow!("--until: {e}"))?,
                None => now,
            };
            let done =
                claudit::dlq::replay_range(&config, &sink, since, until, shutdown_on_signals())
                    .await?;
            println!(
                "sink {sink}: replayed {} records from {since} to {until}: {} accepted, {} rejected (now dead letters)",
                done.delivered + done.rejected,
                done.delivered,
                done.rejected
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            out,
            events,
            live_secs,
        } => {
            claudit::demo::run(claudit::demo::DemoOptions {
                out,
                events,
                live_for: Duration::from_secs(live_secs),
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules { command } => rules(command),
        Command::Map { inputs } => {
            map_files(&inputs)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Healthcheck { url, timeout } => {
            match claudit::healthcheck::check(&url, timeout).await {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(reason) => {
                    eprintln!("unhealthy: {reason}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Simulate {
            listen,
            backlog,
            api_key,
            rate_limit,
        } => {
            let sim = claudit::sim::Simulator::start_on(
                listen,
                claudit::sim::SimConfig {
                    api_key,
                    backlog,
                    rate_limit_per_minute: (rate_limit > 0).then_some(rate_limit),
                    ..Default::default()
                },
            )
            .await?;
            eprintln!("simulator listening on {}", sim.base_url());
            shutdown_on_signals().cancelled().await;
            sim.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `claudit dlq ...`.
async fn dlq(command: DlqCommand) -> anyhow::Result<ExitCode> {
    let path = match &command {
        DlqCommand::List { config, .. }
        | DlqCommand::Show { config, .. }
        | DlqCommand::Replay { config, .. }
        | DlqCommand::Purge { config, .. } => config.clone(),
    };
    let config = match load_config(&path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    match command {
        DlqCommand::List { sink, .. } => print!("{}", claudit::dlq::list(&config, &sink)?),
        DlqCommand::Show { sink, id, .. } => print!("{}", claudit::dlq::show(&config, &sink, id)?),
        DlqCommand::Replay { sink, id, .. } => {
            let done = claudit::dlq::replay_dead_letters(&config, &sink, id).await?;
            println!(
                "sink {sink}: {} delivered and removed, {} rejected again (kept), {} no longer in the journal, {} not settled",
                done.delivered, done.rejected, done.missing, done.failed
            );
            if let Some(error) = done.error {
                eprintln!(
                    "error: sink {sink}: {error}; the dead letters are kept, try again later"
                );
                return Ok(ExitCode::FAILURE);
            }
            if done.rejected > 0 || done.missing > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        DlqCommand::Purge { sink, id, yes, .. } => {
            if !yes {
                anyhow::bail!(
                    "purging deletes dead letters for good (their events were never delivered to {sink}); \
                     add --yes to confirm"
                );
            }
            let n = claudit::dlq::purge(&config, &sink, id)?;
            println!("sink {sink}: {n} dead letter(s) purged");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `claudit map`: raw activity NDJSON to OCSF NDJSON. A line that is not
/// JSON is an error naming the file and line; nothing is skipped silently.
fn map_files(inputs: &[PathBuf]) -> anyhow::Result<()> {
    let mapper = claudit::ocsf::Mapper::default();
    let enricher = claudit::enrich::Enricher::without_geoip();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut map_reader = |name: &str, reader: Box<dyn BufRead>| -> anyhow::Result<()> {
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let activity = claudit::model::Activity::from_json(&line)
                .map_err(|e| anyhow::anyhow!("{name}:{}: not a JSON activity: {e}", i + 1))?;
            let enrichment = activity
                .actor
                .as_ref()
                .map(|a| enricher.enrich(a.ip_address.as_deref(), a.user_agent.as_deref()));
            let mut line = Vec::with_capacity(2 * activity.raw.len());
            let ctx = claudit::ocsf::MapContext {
                enrichment: enrichment.as_ref(),
                self_generated: false,
                processed_ms: chrono::Utc::now().timestamp_millis(),
            };
            mapper.write_json(&activity, &ctx, &mut line);
            out.write_all(&line)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    };
    if inputs.is_empty() {
        map_reader("stdin", Box::new(std::io::BufReader::new(std::io::stdin())))?;
    }
    for path in inputs {
        let file = std::fs::File::open(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        map_reader(
            &path.display().to_string(),
            Box::new(std::io::BufReader::new(file)),
        )?;
    }
    out.flush()?;
    Ok(())
}

/// A token cancelled on the first SIGTERM or SIGINT. A second signal exits
/// at once (an operator who presses Ctrl-C twice means it).
fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::info!("signal received: shutting down (send again to exit at once)");
        t.cancel();
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        std::process::exit(130);
    });
    token
}
