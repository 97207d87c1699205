//! The claudit schema: which keys exist, their defaults, and the checks
//! across keys.

use super::reader::keys::*;
use super::reader::{Ctx, Got, Table, Text};
use super::*;
use toml::de::DeTable;

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";
/// The most `requests_per_minute` accepts, and only for a loopback
/// `base_url` (benchmarks against the simulator); the API allows 600.
pub(crate) const MAX_LOOPBACK_REQUESTS_PER_MINUTE: i64 = 1_000_000;
pub(crate) const DEFAULT_RETENTION: Duration = secs(7 * DAY);
pub(crate) const DEFAULT_SERVER_LISTEN: &str = "127.0.0.1:9464";

pub(super) fn read_config(cx: &mut Ctx, doc: &DeTable) -> Config {
    let mut root = Table::root(doc, ENV_PREFIX);

    let mut state_table = root.subtable(cx, "state");
    let state_path = state_table.required_path(cx, "path", "\"/var/lib/claudit/state.db\"");
    let mut places = Vec::new();
    if let Some(path) = &state_path {
        places.push(places::Place {
            key: state_table.key_path("path"),
            line: state_table.line_of_key(cx, "path"),
            path: path.clone(),
            kind: places::Kind::State,
        });
    }
    let retention = state_table.duration(cx, "retention", DEFAULT_RETENTION);
    let retention_line = state_table.line_of_key(cx, "retention");
    let retention_key = state_table.key_path("retention");
    state_table.finish(cx);

    let mut sources = Vec::new();
    let mut sweep_reach = Vec::new();
    let source_tables = root.array_of_tables(cx, "sources");
    if source_tables.as_ref().is_some_and(Vec::is_empty) {
        cx.error(
            "sources",
            None,
            "no source configured; add a [[sources]] table with name = \"...\" and \
             api_key = \"${ANTHROPIC_COMPLIANCE_API_KEY}\" (see config/claudit.example.toml)",
        );
    }
    for mut t in source_tables.unwrap_or_default() {
        let (source, needs) = read_source(cx, &mut t);
        if let Some(first) = sources
            .iter()
            .position(|s: &SourceConfig| !s.name.is_empty() && s.name == source.name)
        {
            let line = t.line_of_key(cx, "name");
            cx.error(
                t.key_path("name"),
                line,
                format!(
                    "duplicate source name {:?} (also sources[{first}]); give each source a unique name",
                    source.name
                ),
            );
        }
        t.finish(cx);
        sweep_reach.push(needs);
        sources.push(source);
    }

    let mut sinks: Vec<SinkConfig> = Vec::new();
    let mut sink_names: Vec<String> = Vec::new();
    let sink_tables = root.array_of_tables(cx, "sinks");
    if sink_tables.as_ref().is_some_and(Vec::is_empty) {
        cx.error(
            "sinks",
            None,
            "no sink configured; add a [[sinks]] table, e.g. name = \"archive\", type = \"file\", \
             path = \"/var/log/claudit/events.ndjson\" (see config/claudit.example.toml)",
        );
    }
    // Per sink: whether `streams` was written, and where (the default and
    // the findings file are settled once `[detections]` is read).
    let mut stream_keys: Vec<StreamKeys> = Vec::new();
    for mut t in sink_tables.unwrap_or_default() {
        let explicit = t.has_key("streams");
        let (name, sink) = read_sink(cx, &mut t);
        if sink.is_some() {
            stream_keys.push(StreamKeys {
                explicit,
                key: t.key_path("streams"),
                line: t.line_of_key(cx, "streams"),
                path_key: t.key_path("path"),
                path_line: t.line_of_key(cx, "path"),
            });
        }
        if let Some(first) = sink_names.iter().position(|n| !n.is_empty() && *n == name) {
            let line = t.line_of_key(cx, "name");
            cx.error(
                t.key_path("name"),
                line,
                format!("duplicate sink name {name:?} (also sinks[{first}]); give each sink a unique name"),
            );
        }
        if let Some(sink) = &sink
            && let Some(place) =
                places::of_sink(sink, t.key_path("path"), t.line_of_key(cx, "path"))
        {
            places.push(place);
        }
        if let Some(sink) = &sink {
            super::directory::check_sink_format(cx, &t, sink.format, &sources);
            super::directory::check_sink_streams(cx, &t, sink, &sources);
        }
        sink_names.push(name);
        sinks.extend(sink);
    }

    let enrich = read_enrich(cx, &mut root);
    let ocsf = read_ocsf(cx, &mut root);
    let server = read_server(cx, &mut root);
    let detections = crate::detect::settings::read(cx, &mut root);
    root.finish(cx);
    settle_streams(
        cx,
        &mut sinks,
        &stream_keys,
        detections.enabled,
        &mut places,
    );
    places::check(cx, &places);

    // Dedup of late re-reads needs the journal rows still present when the
    // sweep reads them again.
    if let Some(retention) = retention {
        for (source, needs) in sources.iter().zip(&sweep_reach) {
            let Some(needs) = needs else { continue };
            if retention <= *needs {
                let days = needs.as_secs() / DAY + 1;
                cx.error(
                    retention_key.clone(),
                    retention_line,
                    format!(
                        "retention {} must be longer than sweep_horizon + settle_lag of source {:?} \
                         ({}), or a late re-read could journal an event twice after its first copy \
                         was pruned; write retention = \"{}d\"",
                        reader::format_duration(retention),
                        source.name,
                        reader::format_duration(*needs),
                        days.max(7)
                    ),
                );
            }
        }
    }

    Config {
        file: cx.file().to_path_buf(),
        state: StateConfig {
            path: state_path.unwrap_or_default(),
            retention: retention.unwrap_or(DEFAULT_RETENTION),
        },
        sources,
        sinks,
        enrich,
        ocsf,
        server,
        detections,
        notices: std::mem::take(&mut cx.notices),
    }
}

/// Where a sink's `streams` is (or would be) in the file.
struct StreamKeys {
    explicit: bool,
    key: String,
    line: Option<usize>,
    path_key: String,
    path_line: Option<usize>,
}

/// The streams of sinks without `streams`: both when detections run
/// (activities only for an archive or a vendor layout), activities
/// otherwise. A sink that receives findings writes them somewhere too (a
/// file sink's findings file), checked with every other place.
fn settle_streams(
    cx: &mut Ctx,
    sinks: &mut [SinkConfig],
    keys: &[StreamKeys],
    detections: bool,
    places: &mut Vec<places::Place>,
) {
    for (sink, keys) in sinks.iter_mut().zip(keys) {
        if !keys.explicit {
            sink.streams = if detections && findings_refused(sink).is_none() {
                Streams::BOTH
            } else {
                Streams::ACTIVITIES
            };
        } else if sink.streams.findings && !detections {
            cx.notice(
                keys.key.clone(),
                keys.line,
                "has \"findings\" but [detections] enabled = false: the sink receives none \
                 until detections are enabled",
            );
        }
        // A sink whose own place is taken already is reported there; its
        // findings and directory files would only repeat that.
        let own_taken = places::of_sink(sink, String::new(), None)
            .is_some_and(|own| places.iter().filter(|p| p.path == own.path).count() > 1);
        let mut streams = Vec::new();
        if sink.streams.findings && detections {
            streams.push(sink.findings_stream());
        }
        if sink.streams.directory {
            streams.push(sink.directory_stream());
        }
        for stream in streams.iter().filter(|_| !own_taken) {
            if let Some(place) = places::of_sink(stream, keys.path_key.clone(), keys.path_line) {
                places.push(place);
            }
        }
    }
}

/// Why `sink` cannot receive findings, if it cannot.
fn findings_refused(sink: &SinkConfig) -> Option<String> {
    derived_refused(sink, "findings", "a finding")
}

/// Why `sink` cannot receive a stream claudit derives (`what`: findings,
/// the directory; `one`: one of its entries), if it cannot.
fn derived_refused(sink: &SinkConfig, what: &str, one: &str) -> Option<String> {
    if sink.kind.settings().activities_only() {
        return Some(format!(
            "an archive sink keeps only activities (it is evidence of what Anthropic served); \
             write streams = [\"activities\"] or remove the key, and send {what} to another sink"
        ));
    }
    crate::sinks::layout::of(&sink.kind).map(|layout| {
        format!(
            "a sink with layout = {:?} sends that vendor's shape of an activity, which {one} \
             does not have; write streams = [\"activities\"] or remove the key, and send {what} \
             to a sink without a layout",
            layout.name()
        )
    })
}

/// One entry of `streams`.
fn stream_name(text: &Text) -> Option<String> {
    match text.value.as_str() {
        "activities" | "findings" | "directory" => None,
        _ => Some(format!(
            "unknown stream {}; a sink receives \"activities\" (every activity), \"findings\" \
             (the detections' findings), \"directory\" (snapshots of the directory, with \
             [sources.directory]) or several: write streams = [\"activities\", \"findings\"]",
            text.shown()
        )),
    }
}

/// `streams`: which of "activities", "findings" and "directory" a sink receives;
/// `None` when absent (the default depends on `[detections]`) or invalid
/// (reported).
fn read_streams(cx: &mut Ctx, t: &mut Table) -> Option<Streams> {
    let example = "[\"activities\", \"findings\"]";
    let list = match t.string_list(cx, "streams", example, stream_name) {
        Got::Value(list) => list,
        Got::Absent | Got::Invalid => return None,
    };
    let line = t.line_of_key(cx, "streams");
    if list.is_empty() {
        t_error(
            cx,
            t,
            "streams",
            line,
            format!(
                "is empty: a sink receives at least one stream; write streams = {example}, or remove the sink"
            ),
        );
        return None;
    }
    Some(Streams {
        activities: list.iter().any(|s| s == "activities"),
        findings: list.iter().any(|s| s == "findings"),
        directory: list.iter().any(|s| s == "directory"),
    })
}

// ---- [server] ----------------------------------------------------------

/// `[server]`: present (or `listen` set by an override) turns the
/// endpoint on, at 127.0.0.1:9464 unless `listen` says otherwise.
pub(crate) fn read_server(cx: &mut Ctx, root: &mut Table) -> ServerConfig {
    let mut t = root.subtable(cx, "server");
    let present = t.line.is_some();
    let listen = match t.text(cx, "listen") {
        Got::Absent if present => Some(DEFAULT_SERVER_LISTEN.parse().ok()),
        Got::Absent => Some(None),
        Got::Invalid => None,
        Got::Value(text) => match text.value.trim().parse::<std::net::SocketAddr>() {
            Ok(addr) => Some(Some(addr)),
            Err(_) => {
                let msg = format!(
                    "{} is not an address and port; write listen = \"{DEFAULT_SERVER_LISTEN}\" \
                     (or \"0.0.0.0:9464\" to be scraped from other hosts)",
                    text.shown()
                );
                text_error(cx, &t, "listen", &text, msg);
                None
            }
        },
    };
    let delay = duration_at_least(
        cx,
        &mut t,
        "ready_max_sink_delay",
        secs(15 * MINUTE),
        secs(1),
    );
    t.finish(cx);
    ServerConfig {
        listen: listen.flatten(),
        ready_max_sink_delay: delay.unwrap_or(secs(15 * MINUTE)),
    }
}

/// Reads one `[[sources]]` table. Also returns sweep_horizon + settle_lag
/// when both are valid, for the retention check.
pub(crate) fn read_source(cx: &mut Ctx, t: &mut Table) -> (SourceConfig, Option<Duration>) {
    let name = read_name(cx, t, "acme", "SOURCES");

    let base_url = match t.text(cx, "base_url") {
        Got::Absent => Some(DEFAULT_BASE_URL.to_string()),
        Got::Invalid => None,
        Got::Value(text) => check_base_url(&text)
            .map_err(|msg| text_error(cx, t, "base_url", &text, msg))
            .ok(),
    };
    let api_key = t.header_secret(
        cx,
        "api_key",
        "ANTHROPIC_COMPLIANCE_API_KEY",
        "/run/secrets/claude",
    );
    let anthropic_version = match t.text(cx, "anthropic_version") {
        Got::Absent => Some(DEFAULT_ANTHROPIC_VERSION.to_string()),
        Got::Invalid => None,
        Got::Value(text) => {
            let v = &text.value;
            let looks_like_date = v.len() == 10
                && v.char_indices().all(|(i, c)| {
                    if i == 4 || i == 7 {
                        c == '-'
                    } else {
                        c.is_ascii_digit()
                    }
                });
            if looks_like_date {
                Some(text.value.clone())
            } else {
                let msg = format!(
                    "{} is not an API version date; write anthropic_version = \"{DEFAULT_ANTHROPIC_VERSION}\"",
                    text.shown()
                );
                text_error(cx, t, "anthropic_version", &text, msg);
                None
            }
        }
    };
    // Above the API's 600/min only against a loopback simulator (benchmarks).
    let max_requests_per_minute = match &base_url {
        Some(url) if is_loopback_url(url) => MAX_LOOPBACK_REQUESTS_PER_MINUTE,
        _ => 600,
    };
    let requests_per_minute = t.integer(
        cx,
        "requests_per_minute",
        1..=max_requests_per_minute,
        500,
        "this daemon's share of the 600 requests/min budget of the parent organization",
    );

    let window = duration_at_least(cx, t, "window", secs(5 * MINUTE), secs(1));
    // Retired: catch-up and backfill windows are sized by what they
    // hold. Still accepted, so configurations written for earlier
    // versions keep working; `check` and the daemon say to remove it.
    if t.has_key("catchup_window") {
        let line = t.line_of_key(cx, "catchup_window");
        cx.notice(
            t.key_path("catchup_window"),
            line,
            "retired, and ignored: catch-up and backfill windows are now sized by what they \
             hold (about one request per page_size activities, however long the range; \
             max_window_pages bounds one window); remove the key",
        );
    }
    let _ = t.duration(cx, "catchup_window", secs(HOUR));
    let max_window_pages = t.integer(
        cx,
        "max_window_pages",
        1..=1_000_000,
        1000,
        "pages a catch-up or backfill window may need before it is split",
    );
    let settle_lag = duration_at_least(cx, t, "settle_lag", secs(2 * MINUTE), secs(1));
    let sweep_horizon = duration_at_least(cx, t, "sweep_horizon", secs(HOUR), secs(1));
    let sweep_interval = duration_at_least(cx, t, "sweep_interval", secs(10 * MINUTE), secs(1));
    let initial_lookback = t.duration(cx, "initial_lookback", secs(DAY));
    let poll_interval = duration_at_least(cx, t, "poll_interval", secs(MINUTE), secs(1));
    let page_size = t.integer(cx, "page_size", 1..=5000, 5000, "the API's limit per page");
    // 6 h: longer than a quiet night in a small organization, short
    // enough to notice a disabled feed or revoked key within a shift.
    let no_data_after = duration_at_least(cx, t, "no_data_after", secs(6 * HOUR), secs(1));
    let connect_timeout =
        duration_at_least(cx, t, "connect_timeout", secs(10), Duration::from_millis(1));
    let request_timeout =
        duration_at_least(cx, t, "request_timeout", secs(60), Duration::from_millis(1));

    let type_example = "[\"claude_chat_created\", \"claude_file_uploaded\"]";
    let activity_types = t.string_list(cx, "activity_types", type_example, check_type_name);
    let exclude_activity_types =
        t.string_list(cx, "exclude_activity_types", type_example, check_type_name);
    let present = |got: &Got<Vec<String>>| !matches!(got, Got::Absent);
    if present(&activity_types) && present(&exclude_activity_types) {
        let line = t.line_of_key(cx, "exclude_activity_types");
        t_error(
            cx,
            t,
            "exclude_activity_types",
            line,
            "activity_types and exclude_activity_types are both set, and the API accepts only one; \
             keep activity_types to fetch only those types, or exclude_activity_types to fetch \
             everything else"
                .to_string(),
        );
    }
    if let Got::Value(list) = &activity_types
        && list.is_empty()
    {
        let line = t.line_of_key(cx, "activity_types");
        t_error(
            cx,
            t,
            "activity_types",
            line,
            "activity_types = [] would fetch nothing; remove the key to fetch every type"
                .to_string(),
        );
    }
    let organization_ids = t.string_list(cx, "organization_ids", "[\"org_...\"]", |id: &Text| {
        id.value
            .trim()
            .is_empty()
            .then(|| "is empty; write an org_... id or an organization UUID".to_string())
    });
    let list = |got: Got<Vec<String>>| match got {
        Got::Value(list) => list,
        _ => Vec::new(),
    };
    let activity_types = list(activity_types);
    let exclude_activity_types = list(exclude_activity_types);
    let organization_ids = list(organization_ids);

    let directory = super::directory::read(cx, t);

    let needs = match (sweep_horizon, settle_lag) {
        (Some(h), Some(l)) => Some(h + l),
        _ => None,
    };
    let source = SourceConfig {
        name: name.unwrap_or_default(),
        base_url: base_url.unwrap_or_default(),
        api_key: api_key.unwrap_or_else(|| SecretString::from(String::new())),
        anthropic_version: anthropic_version.unwrap_or_default(),
        requests_per_minute: requests_per_minute.unwrap_or_default() as u32,
        window: window.unwrap_or_default(),
        max_window_pages: max_window_pages.unwrap_or_default() as u32,
        settle_lag: settle_lag.unwrap_or_default(),
        sweep_horizon: sweep_horizon.unwrap_or_default(),
        sweep_interval: sweep_interval.unwrap_or_default(),
        initial_lookback: initial_lookback.unwrap_or_default(),
        poll_interval: poll_interval.unwrap_or_default(),
        page_size: page_size.unwrap_or_default() as u32,
        activity_types,
        exclude_activity_types,
        organization_ids,
        connect_timeout: connect_timeout.unwrap_or_default(),
        request_timeout: request_timeout.unwrap_or_default(),
        no_data_after: no_data_after.unwrap_or_default(),
        directory,
    };
    (source, needs)
}

/// Reads one `[[sinks]]` table: its name (empty when missing or invalid),
/// and the sink when its type is known.
pub(crate) fn read_sink(cx: &mut Ctx, t: &mut Table) -> (String, Option<SinkConfig>) {
    let name = read_name(cx, t, "archive", "SINKS");
    let sink_type = match t.required_text(cx, "type", "\"file\"") {
        None => None,
        Some(ty) => {
            let types = crate::sinks::registry::sink_types();
            let found = types.iter().find(|s| s.name == ty.value);
            if found.is_none() {
                let valid: Vec<String> = types.iter().map(|s| format!("{:?}", s.name)).collect();
                let msg = format!(
                    "unknown sink type {}; valid types: {} (write e.g. type = \"file\")",
                    ty.shown(),
                    valid.join(", ")
                );
                text_error(cx, t, "type", &ty, msg);
            }
            found
        }
    };
    // An archive keeps the activities exactly as received: raw only.
    let raw_only = sink_type.filter(|s| s.raw_only);
    let format = match t.text(cx, "format") {
        Got::Absent if raw_only.is_some() => Some(Format::Raw),
        Got::Value(text) if raw_only.is_some() && text.value != "raw" => {
            let msg = format!(
                "format {} is not possible for an {} sink: it keeps the activities \
                 byte-for-byte as received; remove the key or write format = \"raw\" \
                 (add a file sink for OCSF)",
                text.shown(),
                raw_only.map_or("", |s| s.name)
            );
            text_error(cx, t, "format", &text, msg);
            None
        }
        Got::Absent => Some(Format::Ocsf),
        Got::Invalid => None,
        Got::Value(text) => match text.value.as_str() {
            "ocsf" => Some(Format::Ocsf),
            "raw" => Some(Format::Raw),
            "raw+claudit" => Some(Format::RawWithContext),
            _ => {
                let msg = format!(
                    "unknown format {}; write format = \"ocsf\" (OCSF 1.8.0 events), \
                     format = \"raw\" (activities as received) or format = \"raw+claudit\" \
                     (activities as received plus a claudit object with their directory context)",
                    text.shown()
                );
                text_error(cx, t, "format", &text, msg);
                None
            }
        },
    };
    // Without a known type there are no defaults and no list of valid
    // keys; the type error above is the one to fix first.
    let Some(sink_type) = sink_type else {
        return (name.unwrap_or_default(), None);
    };
    let (events, bytes, linger) = sink_type.batch;
    let max_events = t.integer(cx, "batch_max_events", 1..=1_000_000, events, "");
    let max_bytes = t.size(cx, "batch_max_bytes", bytes);
    let max_bytes = match max_bytes {
        Some(n) if !(1_000..=1 << 30).contains(&n) => {
            let line = t.line_of_key(cx, "batch_max_bytes");
            let msg = format!(
                "{} is out of range; write a size from 1KB to 1GiB, e.g. batch_max_bytes = \"{}\"",
                reader::format_size(n),
                reader::format_size(bytes)
            );
            t_error(cx, t, "batch_max_bytes", line, msg);
            None
        }
        other => other,
    };
    let linger = t.duration(cx, "batch_linger", linger);
    if let Some(l) = linger
        && l > secs(HOUR)
    {
        let line = t.line_of_key(cx, "batch_linger");
        let msg = format!(
            "{} is too long (at most 1h); write e.g. batch_linger = \"1s\"",
            reader::format_duration(l)
        );
        t_error(cx, t, "batch_linger", line, msg);
    }
    let format_line = t.has_key("format").then(|| t.line_of_key(cx, "format"));
    let kind = (sink_type.read)(cx, t);
    // A vendor layout is made from the raw activity (sinks::layout): an
    // absent format means raw, any other format is refused.
    let layout = kind.as_ref().and_then(crate::sinks::layout::of);
    let format = match (layout, format, format_line) {
        (Some(_), Some(_), None) => Some(Format::Raw),
        (Some(l), Some(f), Some(line)) => l
            .check_format(f)
            .map_err(|msg| t_error(cx, t, "format", line, msg))
            .ok()
            .map(|()| f),
        (_, format, _) => format,
    };
    let streams = read_streams(cx, t);
    t.finish(cx);
    let sink = match (name.clone(), format, max_events, max_bytes, linger, kind) {
        (Some(name), Some(format), Some(max_events), Some(max_bytes), Some(linger), Some(kind)) => {
            Some(SinkConfig {
                name,
                format,
                batch: BatchConfig {
                    max_events: max_events as usize,
                    max_bytes: max_bytes as usize,
                    linger,
                },
                kind,
                // Absent: settled once `[detections]` is read (`settle_streams`).
                streams: streams.unwrap_or(Streams::ACTIVITIES),
            })
        }
        _ => None,
    };
    // A sink that cannot take findings or the directory says so where
    // `streams` asks for them.
    let refused = sink.as_ref().and_then(|sink| {
        let findings = sink.streams.findings.then(|| findings_refused(sink));
        let directory = sink
            .streams
            .directory
            .then(|| derived_refused(sink, "the directory", "a directory entry"));
        findings.flatten().or(directory.flatten())
    });
    if let Some(why) = refused {
        let line = t.line_of_key(cx, "streams");
        t_error(cx, t, "streams", line, why);
        return (name.unwrap_or_default(), None);
    }
    (name.unwrap_or_default(), sink)
}

pub(crate) fn read_enrich(cx: &mut Ctx, root: &mut Table) -> EnrichConfig {
    let mut t = root.subtable(cx, "enrich");
    let geoip_city_db = t.path(cx, "geoip_city_db");
    let geoip_asn_db = t.path(cx, "geoip_asn_db");
    let cache = t.integer(
        cx,
        "user_agent_cache_size",
        0..=10_000_000,
        10_000,
        "0 disables the cache",
    );
    t.finish(cx);
    EnrichConfig {
        geoip_city_db: match geoip_city_db {
            Got::Value(p) => Some(p),
            _ => None,
        },
        geoip_asn_db: match geoip_asn_db {
            Got::Value(p) => Some(p),
            _ => None,
        },
        user_agent_cache_size: cache.unwrap_or_default() as usize,
    }
}

pub(crate) fn read_ocsf(cx: &mut Ctx, root: &mut Table) -> OcsfConfig {
    let mut t = root.subtable(cx, "ocsf");
    let include_raw_data = t.boolean(cx, "include_raw_data", false);
    let mut severity_table = t.subtable(cx, "severity");
    let mut severity = HashMap::new();
    for (activity_type, id, line) in severity_table.integer_entries(cx, "3") {
        if (0..=6).contains(&id) || id == 99 {
            severity.insert(activity_type, id as u8);
        } else {
            let msg = format!(
                "OCSF severity_id must be 0 to 6 or 99 (0 unknown, 1 informational, 2 low, \
                 3 medium, 4 high, 5 critical, 6 fatal, 99 other); write e.g. {activity_type} = 3"
            );
            t_error(cx, &severity_table, &activity_type, line, msg);
        }
    }
    severity_table.finish(cx);
    t.finish(cx);
    OcsfConfig {
        severity,
        include_raw_data: include_raw_data.unwrap_or_default(),
    }
}

/// The `name` of a source or sink: required, `[a-z0-9_-]+`. Enables
/// `CLAUDIT_<SECTION>__<NAME>__<KEY>` overrides for the entry.
pub(crate) fn read_name(
    cx: &mut Ctx,
    t: &mut Table,
    example: &str,
    section: &str,
) -> Option<String> {
    let text = t.required_text(cx, "name", &format!("\"{example}\""))?;
    let name = text.value;
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid {
        let mut suggestion: String = name
            .to_ascii_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        if suggestion.is_empty() {
            suggestion = example.to_string();
        }
        let msg = format!(
            "{:?} is not a valid name: use 1 to 64 of a-z, 0-9, \"_\" and \"-\"; write e.g. name = {suggestion:?}",
            name
        );
        t_error(cx, t, "name", text.line, msg);
        return None;
    }
    let env_name = name.to_ascii_uppercase().replace('-', "_");
    t.set_env_prefix(format!("{ENV_PREFIX}{section}__{env_name}__"));
    Some(name)
}

pub(crate) fn check_base_url(text: &Text) -> Result<String, String> {
    let fix = format!("write e.g. base_url = \"{DEFAULT_BASE_URL}\"");
    check_secret_url(
        text,
        &text.value,
        &SecretUrl {
            key: "base_url",
            fix: &fix,
            plain_http: "plain http is allowed only for 127.0.0.1 or localhost (the simulator), \
                         since the API key travels in every request; use https,",
            credentials_go: "",
        },
    )?;
    Ok(text.value.trim_end_matches('/').to_string())
}

/// Activity type names look like `claude_chat_created`. Unknown names are
/// allowed (new types appear without notice); malformed ones are not.
pub(crate) fn check_type_name(item: &Text) -> Option<String> {
    let ok = !item.value.is_empty()
        && item
            .value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    (!ok).then(|| {
        format!(
            "{} is not an activity type name; names look like \"claude_chat_created\"",
            item.shown()
        )
    })
}
