use std::sync::Arc;

use serde_json::json;
use serde_json::value::RawValue;

use super::*;
use crate::enrich::{Asn, DeviceType, IpClass, IpInfo, Location, UserAgentInfo};

fn map(record: Value) -> Value {
    let a = Activity::from_json(&record.to_string()).unwrap();
    Mapper::default().map(&a, &MapContext::default())
}

fn labels(e: &Value) -> Vec<&str> {
    e["metadata"]["labels"]
        .as_array()
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn user_actor() -> Value {
    json!({"type": "user_actor", "email_address": "a@example.com", "user_id": "user_1",
           "ip_address": "192.0.2.4", "user_agent": "curl/8.5.0"})
}

#[test]
fn fallback_keeps_ids_and_unmapped_fields() {
    let e = map(json!({
        "id": "activity_9", "type": "brand_new_thing_created", "created_at": "2026-04-10T08:09:10Z",
        "organization_id": "org_1", "organization_uuid": "u1", "actor": user_actor(),
        "new_field": {"x": [1, 2]}
    }));
    assert_eq!(e["class_uid"], 6003);
    assert_eq!(e["activity_id"], 1);
    assert_eq!(e["type_uid"], 600301);
    assert_eq!(e["time"], 1775808550000i64);
    assert_eq!(e["api"]["operation"], "brand_new_thing_created");
    assert_eq!(e["metadata"]["uid"], "activity_9");
    assert_eq!(e["metadata"]["original_event_uid"], "activity_9");
    assert_eq!(e["metadata"]["event_code"], "brand_new_thing_created");
    assert_eq!(e["metadata"]["tenant_uid"], "org_1");
    assert_eq!(e["src_endpoint"]["ip"], "192.0.2.4");
    assert_eq!(e["http_request"]["user_agent"], "curl/8.5.0");
    assert_eq!(e["unmapped"]["new_field"]["x"][1], 2);
    assert_eq!(e["unmapped"]["organization_uuid"], "u1");
    assert_eq!(e["unmapped"]["actor"], json!({"type": "user_actor"}));
    assert_eq!(labels(&e), vec![LABEL_FALLBACK]);
}

#[test]
fn no_actor_ip_gives_base_event_with_host_profile() {
    let e = map(
        json!({"id": "a", "type": "something_new", "created_at": "2026-04-10T08:09:10Z",
                       "actor": {"type": "anthropic_actor", "email_address": null}}),
    );
    assert_eq!(e["class_uid"], 0);
    assert_eq!(e["category_uid"], 0);
    assert_eq!(e["activity_id"], 99);
    assert_eq!(e["activity_name"], "something_new");
    assert_eq!(e["metadata"]["profiles"], json!(["host"]));
    assert_eq!(e["actor"]["app_name"], "anthropic_actor");
    assert_eq!(e["unmapped"]["actor"]["email_address"], Value::Null);
    assert!(e.get("src_endpoint").is_none());
}

#[test]
fn self_generated_label_and_compliance_api_fields() {
    let a = Activity::from_json(
        &json!({"id": "a", "type": "compliance_api_accessed", "created_at": "2026-04-10T08:09:10Z",
                "actor": {"type": "api_actor", "api_key_id": "k", "ip_address": "2001:db8::1"},
                "request_id": "req_1", "request_method": "GET", "status_code": 200,
                "url": "https://api.anthropic.com/v1/compliance/activities?limit=10"})
        .to_string(),
    )
    .unwrap();
    let ctx = MapContext {
        processed_ms: 0,
        self_generated: true,
        enrichment: None,
    };
    let e = Mapper::default().map(&a, &ctx);
    assert!(labels(&e).contains(&LABEL_SELF));
    assert_eq!(e["class_uid"], 6003);
    assert_eq!(e["activity_id"], 2);
    assert_eq!(e["status_id"], 1);
    assert_eq!(e["actor"]["app_uid"], "k");
    assert_eq!(e["actor"]["user"]["type_id"], 4);
    assert_eq!(e["api"]["operation"], "GET /v1/compliance/activities");
    assert_eq!(e["api"]["request"]["uid"], "req_1");
    assert_eq!(e["api"]["response"]["code"], 200);
    assert_eq!(e["http_request"]["http_method"], "GET");
    assert_eq!(e["http_request"]["url"]["query_string"], "limit=10");
    assert_eq!(e["http_response"]["code"], 200);
    // The actor variant is kept for SIEM rules written against it.
    assert_eq!(e["unmapped"], json!({"actor": {"type": "api_actor"}}));
}

#[test]
fn missing_required_inputs_degrade_instead_of_inventing() {
    // Authentication needs a user; an unauthenticated actor without an
    // e-mail names no one.
    let e = map(
        json!({"id": "a", "type": "sso_login_failed", "created_at": "2026-05-05T21:33:29Z",
                       "actor": {"type": "unauthenticated_user_actor", "ip_address": "192.168.1.1"}}),
    );
    assert_eq!(e["class_uid"], 6003);
    assert_eq!(e["api"]["operation"], "sso_login_failed");
    assert_eq!(e["status_id"], 2);
    assert_eq!(labels(&e), vec![LABEL_DEGRADED]);
    // A deleted user without the deleted user's id or e-mail: no IP either.
    let e = map(
        json!({"id": "b", "type": "org_user_deleted", "created_at": "2026-05-05T21:33:29Z",
                       "actor": {"type": "scim_directory_sync_actor", "directory_id": "d1"}}),
    );
    assert_eq!(e["class_uid"], 0);
    assert_eq!(e["actor"]["user"]["uid"], "d1");
    assert_eq!(labels(&e), vec![LABEL_DEGRADED]);
}

#[test]
fn degraded_builders_return_their_fields_to_unmapped() {
    // role_assignment_granted without a role: the target id read by the
    // builder must not be lost when the event degrades.
    let e = map(
        json!({"id": "a", "type": "role_assignment_granted", "created_at": "2026-05-05T21:33:29Z",
                       "target_id": "user_2", "resource_id": "r", "actor": user_actor()}),
    );
    assert_eq!(e["class_uid"], 6003);
    assert_eq!(e["unmapped"]["target_id"], "user_2");
    assert_eq!(e["unmapped"]["resource_id"], "r");
}

#[test]
fn class_specific_objects() {
    let e = map(
        json!({"id": "a", "type": "role_assignment_granted", "created_at": "2026-05-05T21:33:29Z",
                       "target_id": "user_2", "target_type": "organization_member", "role": "chat_project:owner",
                       "resource_type": "chat_project", "resource_id": "claude_proj_1", "actor": user_actor()}),
    );
    assert_eq!(e["class_uid"], 3005);
    assert_eq!(e["user"]["uid"], "user_2");
    assert_eq!(e["privileges"], json!(["chat_project:owner"]));
    assert_eq!(
        e["resources"],
        json!([{"uid": "claude_proj_1", "type": "chat_project"}])
    );
    assert_eq!(e["severity_id"], 3);
    assert_eq!(e["unmapped"]["target_type"], "organization_member");

    let e = map(
        json!({"id": "a", "type": "rbac_role_assigned", "created_at": "2026-05-05T21:33:29Z",
                       "role_id": "role_1", "principal_type": "group", "principal_id": "group_1",
                       "actor": user_actor()}),
    );
    assert_eq!(e["class_uid"], 3006);
    assert_eq!(e["activity_id"], 1);
    assert_eq!(e["group"]["uid"], "group_1");

    let e = map(
        json!({"id": "a", "type": "claude_file_uploaded", "created_at": "2026-05-05T21:33:29Z",
                       "claude_file_id": "f1", "filename": "x.png", "claude_project_id": "p1",
                       "actor": user_actor()}),
    );
    assert_eq!(e["class_uid"], 6001);
    assert_eq!(e["metadata"]["profiles"], json!(["host"]));
    assert_eq!(
        e["web_resources"],
        json!([{"type": "claude_file", "uid": "f1", "name": "x.png"}, {"type": "claude_project", "uid": "p1"}])
    );

    let e = map(
        json!({"id": "a", "type": "platform_signing_key_rotated", "created_at": "2026-05-05T21:33:29Z",
                       "old_signing_key_id": "k_old", "new_signing_key_id": "k_new", "actor": user_actor()}),
    );
    assert_eq!(e["class_uid"], 3004);
    assert_eq!(e["activity_id"], 3);
    assert_eq!(e["entity"]["uid"], "k_new");
    assert_eq!(e["entity"]["type"], "platform_signing_key");
    assert_eq!(e["unmapped"]["old_signing_key_id"], "k_old");

    // An entity with no id of its own is named by its organization.
    let e = map(
        json!({"id": "a", "type": "org_cowork_enabled", "created_at": "2026-05-05T21:33:29Z",
                       "organization_id": "org_1", "actor": user_actor()}),
    );
    assert_eq!(e["activity_id"], 8);
    assert_eq!(
        e["entity"],
        json!({"type_id": 99, "type": "org_cowork", "org": {"uid": "org_1"}})
    );

    let e = map(
        json!({"id": "a", "type": "org_sso_toggled", "created_at": "2026-05-05T21:33:29Z",
                       "organization_id": "org_1", "is_enabled": false, "actor": user_actor()}),
    );
    assert_eq!(e["activity_id"], 9);
    assert_eq!(e["severity_id"], 3);
    assert_eq!(e["unmapped"]["is_enabled"], false);

    let e = map(
        json!({"id": "a", "type": "social_login_succeeded", "created_at": "2026-05-05T21:33:29Z",
                       "provider": "google", "actor": user_actor()}),
    );
    assert_eq!(e["class_uid"], 3002);
    assert_eq!(e["auth_protocol_id"], 4);
    assert_eq!(e["actor"]["idp"]["name"], "google");
    assert_eq!(e["user"]["uid"], "user_1");
    assert_eq!(e["service"]["name"], "Claude");
    assert!(e.get("unmapped").unwrap().get("provider").is_none());
}

#[test]
fn key_updates_to_archived_are_disables() {
    let e = map(
        json!({"id": "a", "type": "platform_api_key_updated", "created_at": "2026-05-05T21:33:29Z",
                       "api_key_id": "k", "updates": [{"type": "status", "previous_value": "active", "current_value": "archived"}],
                       "actor": user_actor()}),
    );
    assert_eq!(e["class_uid"], 3004);
    assert_eq!(e["activity_id"], 9);
    assert_eq!(e["entity"]["uid"], "k");
}

#[test]
fn compliance_logging_disabled_is_high_and_overridable() {
    let record = json!({"id": "a", "type": "org_compliance_api_settings_updated", "created_at": "2026-05-05T21:33:29Z",
                        "organization_id": "org_1", "compliance_api_enabled": true,
                        "compliance_api_logging_enabled": false, "actor": user_actor()});
    let e = map(record.clone());
    assert_eq!(e["severity_id"], 4);
    assert_eq!(e["severity"], "High");
    assert_eq!(e["entity"]["type_id"], 4);
    assert_eq!(e["entity"]["uid"], "org_1");

    let mut config = OcsfConfig::default();
    config
        .severity
        .insert("org_compliance_api_settings_updated".into(), 5);
    config.severity.insert("claude_chat_viewed".into(), 42);
    let mapper = Mapper::new(&config);
    let a = Activity::from_json(&record.to_string()).unwrap();
    let e = mapper.map(&a, &MapContext::default());
    assert_eq!(e["severity_id"], 5);
    assert_eq!(e["severity"], "Critical");
    assert!(!mapper.severity_overrides.contains_key("claude_chat_viewed"));
}

#[test]
fn unknown_actor_types_are_other_with_the_raw_type() {
    let e = map(
        json!({"id": "a", "type": "claude_chat_viewed", "created_at": "2026-05-05T21:33:29Z",
                       "claude_chat_id": "c", "actor": {"type": "robot_actor", "user_id": "r1", "ip_address": "192.0.2.1"}}),
    );
    assert_eq!(e["actor"]["user"]["type_id"], 99);
    assert_eq!(e["actor"]["user"]["type"], "robot_actor");
    assert!(labels(&e).contains(&LABEL_UNKNOWN_ACTOR));
}

/// A public address with every GeoIP field, and a scripted client.
fn paris_curl() -> Enrichment {
    Enrichment {
        ip: Some(IpInfo {
            class: IpClass::Public,
            location: Some(Location {
                city: Some("Paris".into()),
                country: Some("FR".into()),
                region: Some("Ile-de-France".into()),
                continent: Some("Europe".into()),
                postal_code: Some("75001".into()),
                lat: Some(48.86),
                long: Some(2.35),
            }),
            asn: Some(Asn {
                number: 3215,
                name: Some("Orange".into()),
            }),
        }),
        user_agent: Some(Arc::new(UserAgentInfo {
            name: Some("curl".into()),
            version: Some("8.5.0".into()),
            os_name: Some("Linux".into()),
            os_version: None,
            device_type: DeviceType::Server,
            automated: true,
        })),
    }
}

#[test]
fn enrichment_goes_to_schema_homes() {
    let a = Activity::from_json(
        &json!({"id": "a", "type": "claude_chat_viewed", "created_at": "2026-05-05T21:33:29Z",
                "claude_chat_id": "c", "actor": user_actor()})
        .to_string(),
    )
    .unwrap();
    let enrichment = paris_curl();
    let ctx = MapContext {
        processed_ms: 0,
        enrichment: Some(&enrichment),
        self_generated: false,
    };
    let e = Mapper::default().map(&a, &ctx);
    let ep = &e["src_endpoint"];
    assert_eq!(ep["location"]["city"], "Paris");
    assert_eq!(ep["location"]["lat"], 48.86);
    assert_eq!(
        ep["autonomous_system"],
        json!({"number": 3215, "name": "Orange"})
    );
    assert_eq!(
        ep["os"],
        json!({"name": "Linux", "type_id": 200, "type": "Linux"})
    );
    assert_eq!(ep["type_id"], 1);
    assert_eq!(ep["type"], "Server");
    assert_eq!(
        e["unmapped"]["claudit"]["user_agent"],
        json!({"name": "curl", "version": "8.5.0", "automated": true})
    );
    assert!(labels(&e).contains(&LABEL_AUTOMATED));

    // A private address: labelled, not located.
    let private = Enrichment {
        ip: Some(IpInfo {
            class: IpClass::Private,
            location: None,
            asn: None,
        }),
        user_agent: None,
    };
    let e = Mapper::default().map(
        &a,
        &MapContext {
            processed_ms: 0,
            enrichment: Some(&private),
            self_generated: false,
        },
    );
    assert!(labels(&e).contains(&"claudit:ip_private"));
    assert!(e["src_endpoint"].get("location").is_none());
}

#[test]
fn raw_data_on_request() {
    let config = OcsfConfig {
        include_raw_data: true,
        ..OcsfConfig::default()
    };
    let json = r#"{"id":"a","type":"x","created_at":"2026-05-05T21:33:29Z"}"#;
    let a = Activity::from_json(json).unwrap();
    let e = Mapper::new(&config).map(&a, &MapContext::default());
    assert_eq!(e["raw_data"], json);
    assert_eq!(e["raw_data_size"], json.len());
}

#[test]
fn synthesized_ids_and_times_are_degraded_and_kept() {
    let e = map(
        json!({"type": "claude_chat_viewed", "created_at": "yesterday", "claude_chat_id": "c",
                       "id": 17, "actor": user_actor()}),
    );
    assert!(labels(&e).contains(&LABEL_DEGRADED));
    assert_eq!(e["metadata"]["original_time"], "yesterday");
    assert!(e["metadata"].get("original_event_uid").is_none());
    assert_eq!(e["unmapped"]["id"], 17);
}

/// The journal keeps the raw activity and its context; the event a sink
/// renders from them must be the event mapped at ingest, byte for byte, for
/// every catalogued type, actor variant and edge case.
#[test]
fn a_journaled_row_renders_the_event_mapped_at_ingest() {
    let now = chrono::DateTime::from_timestamp_millis(1_800_000_000_123).unwrap();
    let enrichment = paris_curl();
    let mut mapped = 0;
    for mapper in [
        Mapper::default(),
        Mapper::new(&crate::config::OcsfConfig {
            include_raw_data: true,
            ..Default::default()
        }),
    ] {
        for fixture in [
            include_str!("../../fixtures/activities/catalogue.ndjson"),
            include_str!("../../fixtures/activities/actors.ndjson"),
            include_str!("../../fixtures/activities/edge.ndjson"),
        ] {
            for line in fixture.lines().filter(|l| !l.trim().is_empty()) {
                let activity =
                    Activity::parse(RawValue::from_string(line.to_string()).unwrap(), now);
                for (enrichment, self_generated) in [(None, false), (Some(&enrichment), true)] {
                    let at_ingest = mapper.map_json(
                        &activity,
                        &MapContext {
                            enrichment,
                            self_generated,
                            processed_ms: 42,
                        },
                    );
                    let context = JournalContext {
                        self_generated,
                        enrichment: enrichment.cloned(),
                    };
                    let rendered = mapper.render_journaled(
                        line,
                        Some(&context.to_json()),
                        activity.created_at_ms(),
                        42,
                    );
                    assert_eq!(rendered, at_ingest, "{line}");
                    mapped += 1;
                }
            }
        }
    }
    assert!(mapped > 400, "{mapped}");
}

#[test]
fn an_unreadable_context_renders_the_event_without_enrichment() {
    let raw = r#"{"id":"a","type":"claude_chat_viewed","created_at":"2026-05-05T21:33:29Z","claude_chat_id":"c"}"#;
    let mapper = Mapper::default();
    let plain = mapper.render_journaled(raw, None, 0, 7);
    assert_eq!(mapper.render_journaled(raw, Some("{not json"), 0, 7), plain);
    assert_eq!(mapper.render_journaled(raw, Some("{}"), 0, 7), plain);
}

#[test]
fn parsed_contexts_are_kept_and_shared_by_clones_of_the_mapper() {
    let mapper = Mapper::default();
    let text = JournalContext {
        self_generated: true,
        enrichment: Some(paris_curl()),
    }
    .to_json();
    let first = mapper.contexts.parse(&text);
    assert!(first.self_generated);
    assert_eq!(
        first.enrichment.as_ref().and_then(|e| e.ip.clone()),
        paris_curl().ip
    );
    assert!(Arc::ptr_eq(&first, &mapper.contexts.parse(&text)));
    assert!(Arc::ptr_eq(&first, &mapper.clone().contexts.parse(&text)));
}
