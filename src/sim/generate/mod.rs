//! Deterministic, realistic activity records.
//!
//! Record `i` of seed `s` is a pure function of `(s, i, id, created_at)`: the
//! simulator keeps only a few bytes per record and renders the JSON again
//! whenever a page is served, so a backlog of a million records costs tens
//! of megabytes, not gigabytes.
//!
//! Coverage: every catalogued type (common ones weighted up), a few future
//! types the catalogue does not know, all nine actor variants of spec §2.3
//! plus an unknown future actor type, unknown extra fields, public and
//! private IPv4, IPv6, real user agents, Unicode names and addresses.

pub(crate) mod attacks;
mod catalogue;
mod fields;
pub(crate) mod pools;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

pub use catalogue::{CatalogueField, CatalogueType};
pub(crate) use catalogue::{TypeFields, type_table};

use crate::sim::json::ObjWriter;
use crate::sim::rng::{Rng, STREAM_CONTENT, mix};
use fields::{FieldCtx, inferred_fields};
use pools::{BOT_USER_AGENTS, HUMAN_USER_AGENTS, PROGRAM_USER_AGENTS, World, any_ip};

/// The actor variants (spec §2.3) plus one the spec does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActorPlan {
    User(u32),
    Api(u16),
    AdminApiKey(u16),
    Unauthenticated,
    Anthropic,
    ScimDirectorySync,
    System,
    ServiceAccount,
    FederatedIdentity,
    /// A future actor type: consumers must pass it through.
    Unknown,
}

/// The part of a record the simulator indexes for filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub type_idx: u16,
    pub org: Option<u8>,
    pub actor: ActorPlan,
}

/// The actor type string an unknown future actor carries.
pub(crate) const UNKNOWN_ACTOR_TYPE: &str = "delegated_agent_actor";

/// Generates activity records for one seed.
pub struct Generator {
    world: World,
    next_index: u64,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        Generator {
            world: World::new(seed),
            next_index: 0,
        }
    }

    /// The next record of this generator's sequence, with the given id and
    /// time. Same seed, same calls: same records.
    pub fn activity(&mut self, id: &str, created_at: DateTime<Utc>) -> Value {
        let index = self.next_index;
        self.next_index += 1;
        let mut out = String::with_capacity(768);
        self.render(index, id, created_at, &mut out);
        serde_json::from_str(&out).expect("rendered records are valid JSON")
    }

    /// Like [`Generator::activity`], of a given type (catalogued or not).
    pub fn activity_of_type(
        &mut self,
        activity_type: &str,
        id: &str,
        created_at: DateTime<Utc>,
    ) -> Value {
        let index = self.next_index;
        self.next_index += 1;
        let mut rng = Rng::for_item(self.world.seed, STREAM_CONTENT, index);
        let type_idx = type_table().index_of(activity_type);
        let actor = self.actor_for(activity_type, &mut rng);
        let org = self.org_for(activity_type, actor, &mut rng);
        let mut out = String::with_capacity(768);
        self.render_planned(
            activity_type,
            type_idx,
            org,
            actor,
            rng,
            id,
            created_at,
            &mut out,
        );
        serde_json::from_str(&out).expect("rendered records are valid JSON")
    }

    /// The catalogue of known activity types.
    pub fn catalogue() -> &'static [CatalogueType] {
        catalogue::catalogue()
    }

    pub(crate) fn world(&self) -> &World {
        &self.world
    }

    /// Type, org and actor of record `index` (cheap: no rendering).
    pub(crate) fn plan(&self, index: u64) -> Plan {
        self.plan_with_rng(index).0
    }

    fn plan_with_rng(&self, index: u64) -> (Plan, Rng) {
        let mut rng = Rng::for_item(self.world.seed, STREAM_CONTENT, index);
        let type_idx = type_table().pick(&mut rng);
        let name = type_table().name(type_idx);
        let actor = self.actor_for(name, &mut rng);
        let org = self.org_for(name, actor, &mut rng);
        (
            Plan {
                type_idx,
                org,
                actor,
            },
            rng,
        )
    }

    /// Appends record `index` as JSON to `out`.
    pub(crate) fn render(&self, index: u64, id: &str, created_at: DateTime<Utc>, out: &mut String) {
        let (plan, rng) = self.plan_with_rng(index);
        let name = type_table().name(plan.type_idx);
        self.render_planned(
            name,
            Some(plan.type_idx),
            plan.org,
            plan.actor,
            rng,
            id,
            created_at,
            out,
        );
    }

    fn actor_for(&self, type_name: &str, rng: &mut Rng) -> ActorPlan {
        let users = self.world.users.len() as u64;
        let keys = self.world.api_keys.len() as u64;
        let user = |rng: &mut Rng| ActorPlan::User(rng.below(users) as u32);
        let api = |rng: &mut Rng| ActorPlan::Api(rng.below(keys) as u16);
        let admin = |rng: &mut Rng| ActorPlan::AdminApiKey(rng.below(keys) as u16);
        let t = type_name;
        if t == "anthropic_access" || t == "cmek_preserve" {
            return ActorPlan::Anthropic;
        }
        if t == "compliance_api_accessed" {
            return api(rng);
        }
        if t.starts_with("admin_api_key_") {
            // The schema allows only user_actor here (A715).
            return user(rng);
        }
        if matches!(
            t,
            "sso_login_initiated"
                | "magic_link_login_initiated"
                | "anonymous_mobile_login_attempted"
                | "phone_code_sent"
                | "phone_code_verified"
                | "age_verified"
        ) {
            return ActorPlan::Unauthenticated;
        }
        if t.ends_with("_login_failed") {
            return if rng.chance(0.5) {
                ActorPlan::Unauthenticated
            } else {
                user(rng)
            };
        }
        if t.starts_with("scim_") || t.contains("directory_sync") || t.contains("directory_resync")
        {
            return if rng.chance(0.8) {
                ActorPlan::ScimDirectorySync
            } else {
                user(rng)
            };
        }
        if t.starts_with("org_user_") || t.starts_with("group_member") {
            return if rng.chance(0.15) {
                ActorPlan::ScimDirectorySync
            } else {
                user(rng)
            };
        }
        if t.starts_with("platform_") {
            return match rng.below(20) {
                0..=4 => api(rng),
                5..=8 => admin(rng),
                9..=11 => ActorPlan::ServiceAccount,
                12..=14 => ActorPlan::FederatedIdentity,
                _ => user(rng),
            };
        }
        if t == "org_security_control_attestation_updated"
            || t.ends_with("_security_scan_completed")
            || t.starts_with("inference_hooks_circuit")
            || t == "abuse_decision_received"
            || t == "subscription_renewed"
            || t.starts_with("prepaid_auto_recharge")
        {
            return if rng.chance(0.7) {
                ActorPlan::System
            } else {
                user(rng)
            };
        }
        if t.starts_with("claude_") && !t.starts_with("claude_code_") {
            // The claude.ai apps: people, with the odd future actor type.
            return match rng.below(1000) {
                0..=2 => ActorPlan::Unknown,
                3..=4 => ActorPlan::System,
                _ => user(rng),
            };
        }
        // Everything else: people, with some automation.
        match rng.below(1000) {
            0..=14 => api(rng),
            15..=24 => admin(rng),
            25..=29 => ActorPlan::System,
            30..=32 => ActorPlan::ServiceAccount,
            33..=34 => ActorPlan::FederatedIdentity,
            35..=36 => ActorPlan::ScimDirectorySync,
            37..=39 => ActorPlan::Unknown,
            _ => user(rng),
        }
    }

    /// Sign-in, sign-out and Compliance API calls are not tied to an org
    /// (spec §2.2); everything else belongs to the actor's org or a random one.
    fn org_for(&self, type_name: &str, actor: ActorPlan, rng: &mut Rng) -> Option<u8> {
        let t = type_name;
        if actor == ActorPlan::Unauthenticated
            || t.contains("login")
            || t == "user_logged_out"
            || t.starts_with("phone_code")
            || t == "age_verified"
            || t == "compliance_api_accessed"
        {
            return None;
        }
        Some(match actor {
            ActorPlan::User(u) => self.world.users[u as usize].org,
            _ => [0u8, 0, 1, 2][rng.below(4) as usize],
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn render_planned(
        &self,
        type_name: &str,
        type_idx: Option<u16>,
        org: Option<u8>,
        actor: ActorPlan,
        mut rng: Rng,
        id: &str,
        created_at: DateTime<Utc>,
        out: &mut String,
    ) {
        let world = &self.world;
        let mut w = ObjWriter::new(out);
        w.str("id", id);
        w.str(
            "created_at",
            &created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        );
        let org = org.map(|o| &world.orgs[o as usize]);
        w.opt_str("organization_id", org.map(|o| o.id.as_str()));
        w.opt_str("organization_uuid", org.map(|o| o.uuid.as_str()));
        w.object("actor", |a| write_actor(a, world, actor, &mut rng));
        w.str("type", type_name);

        let actor_api_key = match actor {
            ActorPlan::Api(k) => Some(world.api_keys[k as usize].as_str()),
            _ => None,
        };
        let mut ctx = FieldCtx {
            world,
            type_name,
            created_at,
            actor_api_key,
            request_method: None,
            rng: &mut rng,
        };
        let fields = type_idx.map(|i| type_table().fields(i));
        match fields {
            Some(TypeFields::Catalogued(fields)) if !fields.is_empty() => {
                let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
                let chat_project = chat_and_project(&mut ctx, &names);
                for f in fields {
                    match (&chat_project, f.name.as_str()) {
                        (Some((chat, _)), "claude_chat_id") => w.str("claude_chat_id", chat),
                        (Some((_, project)), "claude_project_id") => {
                            w.opt_str("claude_project_id", project.as_deref())
                        }
                        _ => w.value(&f.name, &ctx.value(&f.name, &f.values)),
                    }
                }
            }
            Some(TypeFields::Future(names)) => {
                for name in names {
                    w.value(name, &ctx.value(name, &[]));
                }
                w.int("schema_version", 2);
            }
            _ => {
                for name in inferred_fields(type_name) {
                    w.value(name, &ctx.value(name, &[]));
                }
            }
        }
        // Now and then a field no catalogue knows (the API adds fields freely).
        if ctx.rng.chance(0.02) {
            match ctx.rng.below(4) {
                0 => w.str(
                    "client_platform",
                    ctx.rng.pick_str(&[
                        "web",
                        "desktop_macos",
                        "desktop_windows",
                        "ios",
                        "android",
                    ]),
                ),
                1 => w.value(
                    "experiment_flags",
                    &serde_json::json!(["fast_path", "new_sidebar"]),
                ),
                2 => w.raw(
                    "risk_assessment",
                    r#"{"score":0.12,"model":"v3","signals":[]}"#,
                ),
                _ => w.raw(
                    "session_context",
                    r#"{"surface":"web","locale":"de-DE","trace":null}"#,
                ),
            }
        }
        w.finish();
    }
}

/// A chat and the project it belongs to (or none), consistently: the same
/// chat always lives in the same project.
fn chat_and_project(ctx: &mut FieldCtx<'_>, names: &[&str]) -> Option<(String, Option<String>)> {
    if !(names.contains(&"claude_chat_id") && names.contains(&"claude_project_id")) {
        return None;
    }
    let k = ctx.rng.below(40_000);
    let chat = ctx.world.entity_id("claude_chat_", k);
    let h = mix(k ^ ctx.world.seed);
    let project = (h % 10 < 6).then(|| ctx.world.entity_id("claude_proj_", (h >> 8) % 3_000));
    Some((chat, project))
}

fn write_actor(a: &mut ObjWriter<'_>, world: &World, actor: ActorPlan, rng: &mut Rng) {
    match actor {
        ActorPlan::User(u) => {
            let user = &world.users[u as usize];
            a.str("type", "user_actor");
            a.str("email_address", &user.email);
            a.str("user_id", &user.id);
            let ip = if rng.chance(0.85) {
                user.ip.clone()
            } else {
                any_ip(rng)
            };
            a.str("ip_address", &ip);
            let ua = if rng.chance(0.8) {
                user.user_agent
            } else {
                rng.pick_str(HUMAN_USER_AGENTS)
            };
            a.str("user_agent", ua);
        }
        ActorPlan::Api(k) => {
            a.str("type", "api_actor");
            a.str("api_key_id", &world.api_keys[k as usize]);
            a.str("ip_address", &any_ip(rng));
            a.str("user_agent", rng.pick_str(PROGRAM_USER_AGENTS));
        }
        ActorPlan::AdminApiKey(k) => {
            a.str("type", "admin_api_key_actor");
            a.str("admin_api_key_id", &world.api_keys[k as usize]);
            a.str("ip_address", &any_ip(rng));
            a.str("user_agent", rng.pick_str(PROGRAM_USER_AGENTS));
        }
        ActorPlan::Unauthenticated => {
            a.str("type", "unauthenticated_user_actor");
            a.str("ip_address", &any_ip(rng));
            let ua = if rng.chance(0.05) {
                rng.pick_str(BOT_USER_AGENTS)
            } else {
                rng.pick_str(HUMAN_USER_AGENTS)
            };
            a.str("user_agent", ua);
            // Optional in the schema: sometimes absent, sometimes null.
            match rng.below(10) {
                0 | 1 => {}
                2 => a.null("unauthenticated_email_address"),
                _ => {
                    let u = rng.below(world.users.len() as u64) as usize;
                    a.str("unauthenticated_email_address", &world.users[u].email);
                }
            }
        }
        ActorPlan::Anthropic => {
            a.str("type", "anthropic_actor");
            a.null("email_address");
        }
        ActorPlan::ScimDirectorySync => {
            a.str("type", "scim_directory_sync_actor");
            a.str(
                "workos_event_id",
                &world.entity_id("event_", rng.next_u64()),
            );
            a.str("directory_id", &world.entity_id("directory_", rng.below(2)));
            match rng.below(3) {
                0 => a.str("idp_connection_type", "OktaSCIMV2"),
                1 => a.str("idp_connection_type", "AzureSCIMV2"),
                _ => a.null("idp_connection_type"),
            }
        }
        ActorPlan::System => {
            a.str("type", "system_actor");
            if rng.chance(0.7) {
                a.str(
                    "service",
                    rng.pick_str(&[
                        "security_posture_monitor",
                        "billing_renewal",
                        "retention_enforcer",
                    ]),
                );
            }
        }
        ActorPlan::ServiceAccount => {
            a.str("type", "service_account_actor");
            a.str("ip_address", &any_ip(rng));
            a.str(
                "service_account_id",
                &world.entity_id("svcacct_", rng.below(20)),
            );
            a.str("user_agent", rng.pick_str(PROGRAM_USER_AGENTS));
        }
        ActorPlan::FederatedIdentity => {
            a.str("type", "federated_identity_actor");
            a.str(
                "issuer",
                rng.pick_str(&[
                    "https://token.actions.githubusercontent.com",
                    "https://gitlab.com",
                    "https://sts.windows.net/3f2a9c1e-1b7d-4c4e-9a43-0d7c2b1f5e21/",
                ]),
            );
            a.str(
                "subject",
                rng.pick_str(&[
                    "repo:acme-corp/infra:ref:refs/heads/main",
                    "project_path:acme/data-pipeline:ref_type:branch:ref:main",
                    "system:serviceaccount:ml:batch-runner",
                ]),
            );
            a.value(
                "audience",
                &serde_json::json!(["https://api.anthropic.com"]),
            );
            a.str("ip_address", &any_ip(rng));
            a.str("user_agent", rng.pick_str(PROGRAM_USER_AGENTS));
        }
        ActorPlan::Unknown => {
            a.str("type", UNKNOWN_ACTOR_TYPE);
            a.str("agent_id", &world.entity_id("cagt_", rng.below(200)));
            let u = rng.below(world.users.len() as u64) as usize;
            a.str("on_behalf_of_user_id", &world.users[u].id);
            a.str("ip_address", &any_ip(rng));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-05-08T12:18:11.000538Z")
            .unwrap()
            .into()
    }

    #[test]
    fn records_have_the_common_fields_and_microsecond_times() {
        let mut g = Generator::new(1);
        for i in 0..500 {
            let v = g.activity(&format!("activity_{i}"), t0());
            assert_eq!(v["id"], format!("activity_{i}"));
            assert_eq!(v["created_at"], "2026-05-08T12:18:11.000538Z");
            assert!(v["type"].is_string());
            assert!(v["actor"]["type"].is_string());
            assert!(v.get("organization_id").is_some() && v.get("organization_uuid").is_some());
            if v["organization_id"].is_string() {
                assert!(v["organization_id"].as_str().unwrap().starts_with("org_01"));
            }
        }
    }

    #[test]
    fn plan_matches_rendered_record() {
        let g = Generator::new(5);
        for i in 0..2_000 {
            let plan = g.plan(i);
            let mut s = String::new();
            g.render(i, "activity_x", t0(), &mut s);
            let v: Value = serde_json::from_str(&s).unwrap();
            assert_eq!(v["type"], type_table().name(plan.type_idx));
            match plan.actor {
                ActorPlan::User(u) => {
                    assert_eq!(v["actor"]["user_id"], g.world().users[u as usize].id)
                }
                _ => assert!(v["actor"].get("user_id").is_none()),
            }
            match plan.org {
                Some(o) => assert_eq!(v["organization_id"], g.world().orgs[o as usize].id),
                None => assert!(v["organization_id"].is_null()),
            }
        }
    }

    #[test]
    fn activity_of_type_renders_that_type_even_if_unknown() {
        let mut g = Generator::new(2);
        let v = g.activity_of_type("org_compliance_api_settings_updated", "activity_a", t0());
        assert_eq!(v["type"], "org_compliance_api_settings_updated");
        assert!(v["compliance_api_logging_enabled"].is_boolean());
        let v = g.activity_of_type("something_brand_new", "activity_b", t0());
        assert_eq!(v["type"], "something_brand_new");
        assert_eq!(
            v["actor"]["type"].as_str().map(|s| s.ends_with("_actor")),
            Some(true)
        );
    }

    #[test]
    fn chats_stay_in_their_project() {
        let mut g = Generator::new(3);
        let mut seen = std::collections::HashMap::new();
        for i in 0..20_000 {
            let v = g.activity_of_type("claude_chat_created", &format!("a{i}"), t0());
            let chat = v["claude_chat_id"].as_str().unwrap().to_string();
            let project = v["claude_project_id"].clone();
            if let Some(prev) = seen.insert(chat, project.clone()) {
                assert_eq!(prev, project);
            }
        }
        assert!(
            seen.values().any(Value::is_null),
            "some chats are outside any project"
        );
    }
}
