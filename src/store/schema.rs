//! Schema creation and versioned migrations (`PRAGMA user_version`).

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rusqlite::Connection;

use super::StoreError;
use super::error::InDatabase;
use super::integrity::not_a_database;

/// The schema version this binary writes. Each entry of `MIGRATIONS` moves
/// the database from version `i` to `i + 1`.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const MIGRATIONS: &[&str] = &[
    // 1: the journal, windows, cursors, dead letters, request ids, backfills.
    r#"
    CREATE TABLE journal (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        activity_id     TEXT    NOT NULL UNIQUE,
        source          TEXT    NOT NULL,
        created_at_ms   INTEGER NOT NULL,
        activity_type   TEXT    NOT NULL,
        raw             TEXT    NOT NULL,
        ocsf            TEXT    NOT NULL,
        late            INTEGER NOT NULL DEFAULT 0,
        journaled_at_ms INTEGER NOT NULL
    );
    CREATE INDEX journal_created_at ON journal (created_at_ms);

    CREATE TABLE source_state (
        source          TEXT PRIMARY KEY,
        watermark_ms    INTEGER,
        last_sweep_ms   INTEGER,
        last_success_ms INTEGER,
        last_error      TEXT,
        last_error_ms   INTEGER,
        journaled       INTEGER NOT NULL DEFAULT 0,
        late            INTEGER NOT NULL DEFAULT 0
    );

    CREATE TABLE windows (
        source   TEXT    NOT NULL,
        kind     TEXT    NOT NULL CHECK (kind IN ('live', 'sweep', 'backfill')),
        start_ms INTEGER NOT NULL,
        end_ms   INTEGER NOT NULL,
        cursor   TEXT,
        opened_ms INTEGER NOT NULL,
        pages    INTEGER NOT NULL DEFAULT 0,
        records  INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (source, kind, start_ms)
    );

    CREATE TABLE backfills (
        source   TEXT    NOT NULL,
        since_ms INTEGER NOT NULL,
        until_ms INTEGER NOT NULL,
        next_ms  INTEGER NOT NULL,
        records  INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (source, since_ms, until_ms)
    );

    CREATE TABLE sink_cursors (
        sink            TEXT PRIMARY KEY,
        seq             INTEGER NOT NULL DEFAULT 0,
        file_offset     INTEGER,
        delivered       INTEGER NOT NULL DEFAULT 0,
        last_success_ms INTEGER,
        last_error      TEXT,
        last_error_ms   INTEGER
    );

    CREATE TABLE dead_letters (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        sink        TEXT    NOT NULL,
        seq         INTEGER NOT NULL,
        activity_id TEXT    NOT NULL,
        reason      TEXT    NOT NULL,
        response    TEXT    NOT NULL,
        at_ms       INTEGER NOT NULL
    );
    CREATE INDEX dead_letters_sink ON dead_letters (sink, id);

    CREATE TABLE request_ids (
        request_id TEXT PRIMARY KEY,
        source     TEXT    NOT NULL,
        at_ms      INTEGER NOT NULL
    );
    CREATE INDEX request_ids_at ON request_ids (at_ms);
    "#,
    // 2: the journal keeps each activity's enrichment context (JSON) and
    // leaves `ocsf` empty; sinks render the OCSF event when they read the
    // row. Rows written before keep their stored event and are served as is.
    r#"
    ALTER TABLE journal ADD COLUMN context TEXT;
    "#,
    // 3: windows sized by what they hold. A window's walk may run on a
    // lower `created_at.lt` than its end after a cursor was refused
    // (`walk_end_ms`), and records how far down it has read
    // (`read_from_ms`) and whether its paging is stuck on a fault. The
    // span of the next catch-up window and of a backfill range's next
    // window is learned from the density of the previous one; a backfill
    // range counts the requests it spent.
    r#"
    ALTER TABLE windows ADD COLUMN walk_end_ms INTEGER;
    ALTER TABLE windows ADD COLUMN read_from_ms INTEGER;
    ALTER TABLE windows ADD COLUMN fault TEXT;
    ALTER TABLE windows ADD COLUMN fault_since_ms INTEGER;
    ALTER TABLE windows ADD COLUMN faults INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE source_state ADD COLUMN catchup_span_ms INTEGER;
    ALTER TABLE backfills ADD COLUMN window_span_ms INTEGER;
    ALTER TABLE backfills ADD COLUMN requests INTEGER NOT NULL DEFAULT 0;
    "#,
    // 4: the directory (organizations, members, groups, roles) as facts
    // with a valid-time interval (when it was true) and the journal seq it
    // became known at (`src/directory/mod.rs` explains the model), the
    // progress of the sync that walks the directory endpoints, and the
    // refreshes activities asked for. Written to run again harmlessly (a
    // database whose version was set back keeps these tables).
    r#"
    CREATE TABLE IF NOT EXISTS directory_facts (
        id             INTEGER PRIMARY KEY,
        source         TEXT    NOT NULL,
        kind           TEXT    NOT NULL,
        scope          TEXT    NOT NULL,
        entity         TEXT    NOT NULL,
        item           TEXT    NOT NULL DEFAULT '',
        attrs          TEXT    NOT NULL,
        valid_from_ms  INTEGER,
        valid_to_ms    INTEGER,
        learned_seq    INTEGER NOT NULL,
        learned_ms     INTEGER NOT NULL,
        superseded_seq INTEGER,
        evidence       TEXT    NOT NULL
    );
    CREATE INDEX IF NOT EXISTS directory_facts_key ON directory_facts (source, kind, scope, entity, item);
    CREATE INDEX IF NOT EXISTS directory_facts_entity ON directory_facts (source, entity);

    CREATE TABLE IF NOT EXISTS directory_version (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO directory_version (id, version) VALUES (1, 0);

    CREATE TABLE IF NOT EXISTS directory_sync (
        source           TEXT PRIMARY KEY,
        run_id           INTEGER NOT NULL DEFAULT 0,
        run_kind         TEXT,
        run_started_ms   INTEGER,
        last_full_ms     INTEGER,
        last_full_duration_ms INTEGER,
        last_run_ms      INTEGER,
        last_error       TEXT,
        last_error_ms    INTEGER,
        requests         INTEGER NOT NULL DEFAULT 0
    );

    CREATE TABLE IF NOT EXISTS directory_sync_lists (
        source     TEXT    NOT NULL,
        run_id     INTEGER NOT NULL,
        position   INTEGER NOT NULL,
        list       TEXT    NOT NULL,
        page_token TEXT,
        pages      INTEGER NOT NULL DEFAULT 0,
        done       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (source, run_id, position)
    );

    CREATE TABLE IF NOT EXISTS directory_sync_seen (
        source     TEXT    NOT NULL,
        run_id     INTEGER NOT NULL,
        list       TEXT    NOT NULL,
        entity     TEXT    NOT NULL,
        attrs      TEXT    NOT NULL,
        created_ms INTEGER,
        PRIMARY KEY (source, run_id, list, entity)
    );

    CREATE TABLE IF NOT EXISTS directory_refresh_requests (
        source       TEXT    NOT NULL,
        list         TEXT    NOT NULL,
        reason       TEXT    NOT NULL,
        requested_ms INTEGER NOT NULL,
        PRIMARY KEY (source, list)
    );
    "#,
    // 5: detections. A journal row says whether a backfill window read it
    // (its findings are retrospective). Findings are journal entries of
    // their own: unique by uid (a re-evaluation keeps one), kept in the
    // plain JSON and OCSF forms they were produced in, with the ids of the
    // activities behind them (every one in the journal when committed).
    // `created_at_ms` is the anchor activity's (a replay by time range
    // selects findings by it). The detection task's cursor over the
    // journal moves in the transaction that journals its findings; a sink
    // receiving findings has a second cursor row, `<sink>.findings`, over
    // the findings' seq.
    r#"
    ALTER TABLE journal ADD COLUMN backfill INTEGER NOT NULL DEFAULT 0;

    CREATE TABLE findings (
        seq               INTEGER PRIMARY KEY AUTOINCREMENT,
        uid               TEXT    NOT NULL UNIQUE,
        rule_id           TEXT    NOT NULL,
        severity          TEXT    NOT NULL,
        anchor_id         TEXT    NOT NULL,
        created_at_ms     INTEGER NOT NULL,
        first_seen_ms     INTEGER NOT NULL,
        last_seen_ms      INTEGER NOT NULL,
        detected_ms       INTEGER NOT NULL,
        retrospective     INTEGER NOT NULL,
        related           TEXT    NOT NULL,
        plain             TEXT    NOT NULL,
        ocsf              TEXT    NOT NULL,
        journaled_at_ms   INTEGER NOT NULL
    );
    CREATE INDEX findings_journaled_at ON findings (journaled_at_ms);

    CREATE TABLE detection_cursor (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        seq         INTEGER NOT NULL DEFAULT 0,
        evaluated   INTEGER NOT NULL DEFAULT 0,
        errors      INTEGER NOT NULL DEFAULT 0,
        last_run_ms INTEGER,
        -- The last failure of an evaluation step, until a step commits.
        last_error    TEXT,
        last_error_ms INTEGER
    );
    "#,
    // 6: the directory as a stream. Each source's inventory snapshots (and
    // the changes between them) are journal entries of their own: unique
    // by uid (a snapshot made again keeps each entry once), kept in the
    // plain JSON and OCSF forms they were made in, `created_at_ms` the
    // snapshot time they describe (a replay by time range selects by it).
    // A snapshot's entries are committed with the source's row in
    // `directory_snapshots` (the time of its last snapshot); a sink
    // receiving the stream has a cursor row `<sink>.directory` over their
    // seq. Written to run again harmlessly, like 4.
    r#"
    CREATE TABLE IF NOT EXISTS directory_stream (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        uid             TEXT    NOT NULL UNIQUE,
        source          TEXT    NOT NULL,
        kind            TEXT    NOT NULL,
        created_at_ms   INTEGER NOT NULL,
        plain           TEXT    NOT NULL,
        ocsf            TEXT    NOT NULL,
        journaled_at_ms INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS directory_stream_created_at ON directory_stream (created_at_ms);

    CREATE TABLE IF NOT EXISTS directory_snapshots (
        source          TEXT PRIMARY KEY,
        last_at_ms      INTEGER NOT NULL,
        entries         INTEGER NOT NULL,
        journaled_at_ms INTEGER NOT NULL
    );
    "#,
];

/// Creates the database file with mode 0600 if it does not exist, so the
/// journal (which holds user emails and IPs) is never world-readable, not
/// even for a moment.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(|_| ())
}

/// Reads the schema version, mapping "not a database" to a clear error.
fn read_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let corrupt = |e: rusqlite::Error| not_a_database(path, e);
    // Touching sqlite_master is what detects a file that is not SQLite.
    conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(corrupt)?;
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(corrupt)
}

pub fn check_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let version = read_version(conn, path)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    Ok(version)
}

/// Applies every migration the database has not seen, each in its own
/// transaction with its version bump.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let version = check_version(conn, path)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().in_db(path)?;
        tx.execute_batch(sql).in_db(path)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .in_db(path)?;
        tx.commit().in_db(path)?;
    }
    Ok(())
}
