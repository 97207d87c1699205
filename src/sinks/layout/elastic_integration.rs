//! `layout = "elastic_integration"`: documents for Elastic's `anthropic`
//! integration (data stream `audit`), so its ingest pipeline, dashboards
//! and detection rules work on events claudit sends
//! (`spec/vendor-content.md` section 3).
//!
//! The Elastic Agent's input sends each activity as its JSON text in
//! `message`; the integration's pipeline (the data stream's
//! `default_pipeline`, installed with the integration's assets) parses
//! `message` into the ECS and `anthropic.audit.*` fields. A `_bulk` writer
//! gets the same processing by creating, in `logs-anthropic.audit-<namespace>`,
//!
//! ```text
//! {"@timestamp":"<created_at>","message":"<raw activity JSON>",
//!  "data_stream":{"type":"logs","dataset":"anthropic.audit","namespace":"<namespace>"},
//!  "event":{"dataset":"anthropic.audit"},"tags":["forwarded","anthropic-audit"]}
//! ```
//!
//! with `_id` = the activity id (the sink's `create` makes a resend a 409).
//! The activity is not parsed here: the pipeline reads only `message`.

use std::io::Write;

/// The integration's dataset.
pub const DATASET: &str = "anthropic.audit";
/// `logs-anthropic.audit-` + namespace.
pub const INDEX_PREFIX: &str = "logs-anthropic.audit-";
/// The data stream the sink writes to when `index` is not set.
pub const DEFAULT_INDEX: &str = "logs-anthropic.audit-default";
/// The tags the Agent adds (the integration's default `tags` option).
pub const TAGS: &[&str] = &["forwarded", "anthropic-audit"];

/// The namespace of `index`, which must be `logs-anthropic.audit-<namespace>`
/// with a namespace Fleet accepts (lowercase, no `-`, none of
/// `\ / * ? " < > | , # :` or spaces, at most 100 bytes).
pub fn namespace_of(index: &str) -> Result<&str, String> {
    let fix = format!(
        "write index = \"{DEFAULT_INDEX}\" (or another namespace than default, e.g. \
         \"{INDEX_PREFIX}prod\"), or remove index (the layout sets it) or remove layout"
    );
    let Some(namespace) = index.strip_prefix(INDEX_PREFIX) else {
        return Err(format!(
            "index {index:?} does not go with layout = \"elastic_integration\": the integration's \
             pipeline, dashboards and rules are bound to the data streams \
             {INDEX_PREFIX}<namespace>; {fix}"
        ));
    };
    let valid = !namespace.is_empty()
        && namespace.len() <= 100
        && namespace
            .chars()
            .all(|c| !c.is_uppercase() && !c.is_whitespace() && !"-\\/*?\"<>|,#:".contains(c));
    if valid {
        Ok(namespace)
    } else {
        Err(format!(
            "index {index:?}: the namespace {namespace:?} is not one Fleet accepts (lowercase, \
             no \"-\", no spaces or \\ / * ? \" < > | , # :, at most 100 bytes); {fix}"
        ))
    }
}

/// The document line of one raw activity (no trailing newline; JSON
/// escaping leaves no line break in it).
pub fn document(raw: &str, timestamp: &str, namespace: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"@timestamp\":");
    serde_json::to_writer(&mut *out, timestamp).expect("writing to a Vec");
    out.extend_from_slice(b",\"message\":");
    serde_json::to_writer(&mut *out, raw).expect("writing to a Vec");
    out.extend_from_slice(b",\"data_stream\":{\"type\":\"logs\",\"dataset\":\"");
    out.extend_from_slice(DATASET.as_bytes());
    out.extend_from_slice(b"\",\"namespace\":");
    serde_json::to_writer(&mut *out, namespace).expect("writing to a Vec");
    write!(
        out,
        "}},\"event\":{{\"dataset\":\"{DATASET}\"}},\"tags\":{}}}",
        serde_json::to_string(TAGS).expect("strings serialize")
    )
    .expect("writing to a Vec");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn the_document_carries_the_raw_activity_as_a_string_in_message() {
        let raw = "{\"id\":\"activity_1\",\"type\":\"claude_chat_created\",\n\"n\":1.50}";
        let mut out = Vec::new();
        document(raw, "2026-05-22T15:21:54.358Z", "default", &mut out);
        assert!(!out.contains(&b'\n'));
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["message"], raw, "byte for byte, not parsed");
        assert_eq!(v["@timestamp"], "2026-05-22T15:21:54.358Z");
        assert_eq!(
            v["data_stream"],
            serde_json::json!({"type":"logs","dataset":"anthropic.audit","namespace":"default"})
        );
        assert_eq!(v["event"], serde_json::json!({"dataset":"anthropic.audit"}));
        assert_eq!(
            v["tags"],
            serde_json::json!(["forwarded", "anthropic-audit"])
        );
        assert_eq!(v.as_object().unwrap().len(), 5);
    }

    #[test]
    fn only_the_integrations_data_streams_are_accepted() {
        assert_eq!(namespace_of(DEFAULT_INDEX), Ok("default"));
        assert_eq!(namespace_of("logs-anthropic.audit-prod_eu"), Ok("prod_eu"));
        for bad in [
            "logs-claudit.ocsf-default",
            "logs-anthropic.audit-",
            "logs-anthropic.audit-Prod",
            "logs-anthropic.audit-a-b",
        ] {
            assert!(namespace_of(bad).is_err(), "{bad}");
        }
    }
}
