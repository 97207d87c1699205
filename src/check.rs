//! `claudit check --connect`: one cheap request per source to check its key
//! against the API, and a writability check per file sink. One line each,
//! in plain words; the key itself is never printed.

use crate::config::Config;
use crate::source::client::{ComplianceClient, FetchError};

/// Returns true if every source and sink checked out.
pub async fn connect(config: &Config) -> bool {
    let mut ok = true;
    for source in &config.sources {
        let client = match ComplianceClient::new(source) {
            Ok(c) => c,
            Err(e) => {
                println!("source {}: FAILED: {e:#}", source.name);
                ok = false;
                continue;
            }
        };
        match client.check_key().await {
            Ok(check) => {
                let seen = if check.sees_activities {
                    "the feed returned activities"
                } else {
                    "the feed is empty so far"
                };
                println!(
                    "source {}: ok: {} accepted by {}; {seen}",
                    source.name, check.key_kind, source.base_url
                );
            }
            Err(FetchError::Unauthorized {
                status,
                message,
                hint,
                ..
            }) => {
                println!(
                    "source {}: FAILED: the API answered {status} ({message}); {hint}",
                    source.name
                );
                ok = false;
            }
            Err(e) => {
                println!("source {}: FAILED: {e}", source.name);
                ok = false;
            }
        }
    }
    for sink in &config.sinks {
        // A file sink checks that its directory is writable; the others
        // send one request, its answer passed through the sink's redaction.
        if let Some(checked) = crate::sinks::check_connection(sink).await {
            ok &= report_sink(&sink.name, checked);
        }
    }
    ok
}

/// Prints one line for an HTTP sink's health check; true if it passed.
fn report_sink(name: &str, result: Result<String, String>) -> bool {
    match result {
        Ok(msg) => {
            println!("sink {name}: ok: {msg}");
            true
        }
        Err(e) => {
            println!("sink {name}: FAILED: {e}");
            false
        }
    }
}
