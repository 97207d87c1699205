//! Plausible values for type-specific fields, chosen by field name.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::pools::{FILENAMES, ROLES, SCOPES, TITLES, World, any_ip};
use crate::sim::ids::{request_id, uuid_from};
use crate::sim::rng::Rng;

/// What a field value may depend on besides its name.
pub(crate) struct FieldCtx<'a> {
    pub world: &'a World,
    pub type_name: &'a str,
    pub created_at: DateTime<Utc>,
    /// The actor's API key, if the actor is an API key.
    pub actor_api_key: Option<&'a str>,
    /// The method of the call whose `url` was just generated.
    pub request_method: Option<&'static str>,
    pub rng: &'a mut Rng,
}

/// Id prefixes by field name; the rest use `<name without _id>_01…`.
const ID_PREFIXES: &[(&str, &str, u64)] = &[
    // (field, prefix, pool size: how many distinct entities exist)
    ("claude_chat_id", "claude_chat_", 40_000),
    ("claude_project_id", "claude_proj_", 3_000),
    ("claude_file_id", "claude_file_", 20_000),
    ("claude_artifact_id", "claude_artifact_", 10_000),
    (
        "claude_artifact_version_id",
        "claude_artifact_version_",
        20_000,
    ),
    ("claude_project_document_id", "claude_proj_doc_", 8_000),
    ("claude_chat_snapshot_id", "claude_chat_snapshot_", 2_000),
    (
        "claude_published_artifact_id",
        "claude_published_artifact_",
        500,
    ),
    ("claude_notebook_id", "claude_notebook_", 500),
    ("api_key_id", "apikey_", 60),
    ("admin_api_key_id", "apikey_", 20),
    ("service_key_id", "apikey_", 20),
    ("workspace_id", "wrkspc_", 40),
    ("session_id", "cse_", 20_000),
    ("agent_id", "cagt_", 200),
    ("group_id", "group_", 60),
    ("role_id", "role_", 30),
    ("skill_id", "skill_", 300),
    ("plugin_id", "plugin_", 200),
    ("file_id", "file_", 5_000),
    ("invite_id", "invite_", 2_000),
    ("mcp_server_id", "mcpsrv_", 80),
    ("tunnel_id", "tunnel_", 20),
    ("service_account_id", "svcacct_", 20),
    ("federation_issuer_id", "fdis_", 10),
    ("federation_rule_id", "fdrl_", 20),
    ("integration_id", "integration_", 50),
    ("marketplace_id", "marketplace_", 20),
    ("scan_id", "scan_", 1_000),
    ("resource_id", "claude_proj_", 3_000),
];

/// Fields that hold a user id.
const USER_ID_FIELDS: &[&str] = &[
    "user_id",
    "invitee_user_id",
    "deleted_user_id",
    "new_owner_id",
    "previous_owner_id",
    "account_id",
    "target_id",
    "principal_id",
];

const BOOL_FIELDS: &[&str] = &[
    "enabled",
    "is_enabled",
    "approved",
    "preview_only",
    "failed",
    "ignore",
    "is_service_created",
    "compliance_api_enabled",
    "magic_link_enabled",
    "magic_link_toggled",
    "primary_email_set",
    "deleted_with_profile",
    "billing_name_updated",
    "billing_address_updated",
    "shipping_name_updated",
    "shipping_address_updated",
    "idp_saml_config_updated",
];

const MONEY_FIELDS: &[&str] = &[
    "amount",
    "limit_usd",
    "new_limit_usd",
    "per_review_limit_usd",
    "target_amount",
    "threshold_amount",
];

const COUNT_FIELDS: &[&str] = &[
    "added_seats",
    "seat_count",
    "new_quantity",
    "previous_quantity",
    "resolved_count",
    "to_email_count",
    "cc_email_count",
    "channel_count",
    "previous_channel_count",
    "deleted_credential_count",
    "version",
    "retention_days",
];

/// Fields inferred for catalogued types whose fields are unknown, by the
/// type's name prefix (e.g. every `claude_chat_*` record names its chat).
const INFERRED_BY_PREFIX: &[(&str, &[&str])] = &[
    ("claude_chat_sync_source_", &["claude_chat_sync_source_id"]),
    ("claude_chat_", &["claude_chat_id"]),
    (
        "claude_project_document_",
        &["claude_project_id", "claude_project_document_id"],
    ),
    (
        "claude_project_file_",
        &["claude_project_id", "claude_file_id"],
    ),
    ("claude_project_sync_source_", &["claude_project_id"]),
    ("claude_project_", &["claude_project_id"]),
    ("claude_file_", &["claude_file_id", "filename"]),
    ("claude_artifact_", &["claude_artifact_id"]),
    ("claude_plugin_", &["plugin_id", "plugin_name"]),
    ("design_project_", &["design_project_id"]),
    ("group_", &["group_id"]),
    ("lti_", &["lti_platform_id"]),
    ("mcp_", &["mcp_server_id"]),
    ("tunnel_", &["tunnel_id"]),
    ("desktop_extension_", &["desktop_extension_id"]),
    ("marketplace_webhook_", &["marketplace_id"]),
    ("gitlab_configuration_", &["gitlab_configuration_id"]),
    (
        "github_app_installation_",
        &["installation_id", "repo_owner"],
    ),
    ("platform_oauth_app_", &["oauth_app_id"]),
    ("platform_agent_session_", &["session_id", "agent_id"]),
    ("platform_agent_deployment_", &["deployment_id", "agent_id"]),
    ("platform_agent_", &["agent_id"]),
    ("platform_memory_store_", &["memory_store_id"]),
    ("platform_memory_", &["memory_id"]),
    ("platform_dream_", &["dream_id"]),
    (
        "platform_service_account_",
        &["service_account_id", "workspace_id"],
    ),
    ("platform_federation_rule_", &["federation_rule_id"]),
    ("platform_federation_issuer_", &["federation_issuer_id"]),
    ("platform_workspace_", &["workspace_id"]),
    ("workspace_", &["workspace_id"]),
    ("org_external_key_", &["key_name"]),
    ("inference_hooks_", &["config_id"]),
    ("claude_code_security_", &["scan_project_id"]),
    ("rbac_role_", &["role_id"]),
    ("org_invite_link_", &["link_id"]),
    ("org_join_request", &["user_id"]),
    ("pending_share_", &["share_id"]),
];

pub(crate) fn inferred_fields(type_name: &str) -> &'static [&'static str] {
    INFERRED_BY_PREFIX
        .iter()
        .find(|(prefix, _)| type_name.starts_with(prefix))
        .map(|(_, f)| *f)
        .unwrap_or(&[])
}

impl FieldCtx<'_> {
    fn user_id(&mut self) -> String {
        let n = self.world.users.len() as u64;
        self.world.users[self.rng.below(n) as usize].id.clone()
    }

    fn email(&mut self) -> String {
        let n = self.world.users.len() as u64;
        self.world.users[self.rng.below(n) as usize].email.clone()
    }

    fn person_name(&mut self) -> String {
        let n = self.world.users.len() as u64;
        self.world.users[self.rng.below(n) as usize].name.clone()
    }

    pub(crate) fn entity(&mut self, prefix: &str, pool: u64) -> String {
        let k = self.rng.below(pool);
        self.world.entity_id(prefix, k)
    }

    fn id_field(&mut self, name: &str) -> Value {
        if USER_ID_FIELDS.contains(&name) {
            return Value::String(self.user_id());
        }
        if name == "api_key_id"
            && let Some(key) = self.actor_api_key
        {
            return Value::String(key.to_string());
        }
        if let Some((_, prefix, pool)) = ID_PREFIXES.iter().find(|(f, _, _)| *f == name) {
            return Value::String(self.entity(prefix, *pool));
        }
        let stem = name.strip_suffix("_id").unwrap_or(name);
        Value::String(self.entity(&format!("{stem}_"), 1_000))
    }

    fn timestamp(&self, back: Duration) -> String {
        (self.created_at - back).to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    fn pick(&mut self, items: &[&str]) -> Value {
        Value::String(self.rng.pick(items).to_string())
    }

    /// An `updates` array of `{type, previous_value, current_value}`.
    fn updates(&mut self) -> Value {
        // Keys change name or status; other objects change more things.
        const KEY_KINDS: &[(&str, &[&str])] = &[
            ("name", &["ci-export", "SIEM forwarder", "clé d'audit"]),
            ("status", &["active", "inactive"]),
        ];
        const KINDS: &[(&str, &[&str])] = &[
            (
                "name",
                &["Research", "Recherche ✨", "研究チーム", "Legacy"],
            ),
            ("status", &["active", "inactive", "archived"]),
            (
                "description",
                &[
                    "",
                    "Shared with finance",
                    "Données clients — ne pas partager",
                ],
            ),
            ("role", &["user", "admin", "developer"]),
            ("visibility", &["private", "organization", "public"]),
            (
                "default_model",
                &["claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"],
            ),
            ("web_search_enabled", &["true", "false"]),
        ];
        let kinds = if self.type_name.contains("key") {
            KEY_KINDS
        } else {
            KINDS
        };
        let n = 1 + self.rng.below(2) as usize;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let (kind, values) = *self.rng.pick(kinds);
            let prev = *self.rng.pick(values);
            let mut cur = *self.rng.pick(values);
            if cur == prev {
                cur = values
                    [(values.iter().position(|v| *v == prev).unwrap_or(0) + 1) % values.len()];
            }
            out.push(json!({"type": kind, "previous_value": prev, "current_value": cur}));
        }
        Value::Array(out)
    }

    /// An `audience` array: who a project or artifact is shared with.
    fn audience(&mut self) -> Value {
        let mut out = Vec::new();
        for _ in 0..1 + self.rng.below(3) {
            let entry = match self.rng.below(5) {
                0 | 1 => {
                    json!({"type": "user", "user_id": self.user_id(), "role": *self.rng.pick(&["viewer", "editor", "admin"])})
                }
                2 => {
                    json!({"type": "group", "group_id": self.entity("group_", 60), "role": "viewer"})
                }
                3 => json!({"type": "organization"}),
                _ => json!({"type": "anyone_with_link"}),
            };
            out.push(entry);
        }
        Value::Array(out)
    }

    /// The URL of someone's Compliance API call; remembers its method for
    /// the `request_method` field that follows it.
    fn url(&mut self) -> String {
        const PATHS: &[&str] = &[
            "/v1/compliance/activities?limit=5000",
            "/v1/compliance/activities?limit=1000&created_at.gte=2026-09-01T00:00:00Z",
            "/v1/compliance/apps/chats?user_ids[]=",
            "/v1/compliance/organizations",
            "/v1/compliance/groups",
            "/v1/compliance/apps/projects?limit=20",
            "/v1/compliance/apps/chats/",
        ];
        let path = self.rng.pick_str(PATHS);
        self.request_method = Some("GET");
        if path.ends_with('=') {
            format!("https://api.anthropic.com{path}{}", self.user_id())
        } else if path.ends_with('/') {
            // Deleting a chat: the one write the audit trail should show.
            self.request_method = Some("DELETE");
            format!(
                "https://api.anthropic.com{path}{}",
                self.entity("claude_chat_", 40_000)
            )
        } else {
            format!("https://api.anthropic.com{path}")
        }
    }

    /// The value of field `name` (`values` = the documented enum, if any).
    pub(crate) fn value(&mut self, name: &str, values: &[String]) -> Value {
        if !values.is_empty() {
            return Value::String(self.rng.pick(values).clone());
        }
        match name {
            "compliance_api_logging_enabled" => {
                // Audit logging switched off is exactly what detections look for.
                Value::Bool(!self.rng.chance(0.3))
            }
            "compliance_api_enabled" => Value::Bool(!self.rng.chance(0.1)),
            "updates" => self.updates(),
            "audience" => self.audience(),
            "scopes" => {
                let n = 1 + self.rng.below(SCOPES.len() as u64) as usize;
                Value::Array(SCOPES[..n].iter().map(|s| json!(s)).collect())
            }
            "member_ids" => Value::Array(
                (0..1 + self.rng.below(4))
                    .map(|_| json!(self.user_id()))
                    .collect(),
            ),
            "alert_emails" => Value::Array(
                (0..1 + self.rng.below(3))
                    .map(|_| json!(self.email()))
                    .collect(),
            ),
            "alerted_roles" => json!(["admin", "billing"]),
            "item_allocations" => {
                json!([{"seat_tier": "premium", "quantity": 1 + self.rng.below(20)}, {"seat_tier": "standard", "quantity": 1 + self.rng.below(200)}])
            }
            "sync_destinations" => json!(["claude_ai", "console"]),
            "updated_fields" => json!(["name", "instructions"]),
            "resource_details" => json!({
                "type": "message",
                "id": self.entity("claude_chat_msg_", 100_000),
                "parent": self.entity("claude_chat_", 40_000),
            }),
            "accessed_at" => {
                let back = Duration::minutes(self.rng.between(30, 48 * 60));
                Value::String(self.timestamp(back))
            }
            "from_date" => Value::String(self.timestamp(Duration::days(30))[..10].to_string()),
            "to_date" | "review_date" => {
                Value::String(self.timestamp(Duration::zero())[..10].to_string())
            }
            "accessor_department" => {
                self.pick(&["Safeguards", "Trust & Safety", "Security Engineering"])
            }
            "request_id" => Value::String(request_id(self.rng.next_u64())),
            "url" => Value::String(self.url()),
            "request_method" => {
                Value::String(self.request_method.take().unwrap_or("GET").to_string())
            }
            "request_body" => Value::Null,
            "status_code" => json!(*self.rng.pick(&[
                200, 200, 200, 200, 200, 200, 200, 200, 400, 401, 403, 404, 429
            ])),
            "domain" => self.pick(&[
                "acme-corp.com",
                "acme.co.uk",
                "acme-research.example",
                "bücher.example",
            ]),
            "model" => self.pick(&["claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"]),
            "provider" => self.pick(&["google", "apple", "microsoft"]),
            "method" => self.pick(&["passkey", "totp", "magic_link"]),
            "role" | "previous_role" | "current_role" | "invited_role" => self.pick(ROLES),
            "status" => self.pick(&["active", "inactive", "pending", "lapsed"]),
            "plan_type" | "old_plan" | "new_plan" => {
                self.pick(&["team", "enterprise", "pro", "max"])
            }
            "billing_interval" => self.pick(&["monthly", "annual"]),
            "algorithm" => self.pick(&["RS256", "ES256"]),
            "key_backing_type" => self.pick(&["hsm", "software"]),
            "action" => self.pick(&[
                "created", "updated", "deleted", "enabled", "disabled", "added", "removed",
            ]),
            "limit_type" => self.pick(&["organization", "user"]),
            "limit_action" => self.pick(&["notify", "block"]),
            "limiter_type" => self.pick(&[
                "requests_per_minute",
                "input_tokens_per_minute",
                "output_tokens_per_minute",
            ]),
            "model_group" => self.pick(&["claude-sonnet", "claude-opus", "claude-haiku"]),
            "reason" => self.pick(&["user_requested", "device_lost", "admin_action", "policy"]),
            "credential_type" => self.pick(&["oauth_token", "api_key", "ssh_key"]),
            "integration_type" => self.pick(&["github", "google_drive", "gitlab", "slack"]),
            "trigger_mode" => self.pick(&["manual", "on_pull_request", "always"]),
            "surface" => self.pick(&["web", "desktop", "mobile"]),
            "enrollment_method" => self.pick(&["passkey", "mdm", "manual"]),
            "connection_type" => self.pick(&["OktaSAML", "AzureSAML", "GoogleSAML", "GenericSAML"]),
            "consent_type" => self.pick(&["data_sharing", "marketing", "terms_of_service"]),
            "principal_type" | "target_type" => self.pick(&["user", "group"]),
            "resource_type" => self.pick(&["project", "organization", "workspace"]),
            "taint" => self.pick(&["export_restricted", "legal_hold"]),
            "new_collection_method" => self.pick(&["charge_automatically", "send_invoice"]),
            "previous_mode" | "new_mode" => self.pick(&["jit", "scim", "manual"]),
            "previous_seat_tier" | "current_seat_tier" => {
                if self.rng.chance(0.2) {
                    Value::Null
                } else {
                    self.pick(&["standard", "premium"])
                }
            }
            "step" => self.pick(&[
                "configure_sso",
                "verify_domain",
                "invite_members",
                "enable_compliance_api",
            ]),
            "control" => self.pick(&["mfa_enforced", "sso_required", "data_retention_policy"]),
            "request_type" => {
                self.pick(&["seat_upgrade", "connector_access", "spend_limit_increase"])
            }
            "tool_name" => self.pick(&["create_issue", "search_repositories", "send_message"]),
            "max_permission" => self.pick(&["allow", "ask", "deny"]),
            "cli_name" => Value::String("claude".into()),
            "op_name" => self.pick(&["install", "update", "exec"]),
            "program_slug" => self.pick(&["education", "nonprofit", "startup"]),
            "value" => json!(self.rng.between(50, 20_000)),
            "jti" | "resync_uuid" => Value::String(uuid_from(self.rng.next_u64())),
            "transparency_log_leaf_index" => json!(self.rng.between(1_000_000, 90_000_000)),
            "filename" => self.pick(FILENAMES),
            "title" => self.pick(TITLES),
            "repo_owner" => self.pick(&["acme-corp", "acme-labs", "zoë-müller"]),
            "repo_name" | "repository_name" => {
                self.pick(&["infra", "web-app", "data-pipeline", "docs"])
            }
            "folder_id" => Value::String(format!(
                "1{}",
                &uuid_from(self.rng.next_u64()).replace('-', "")[..32]
            )),
            "slack_team_id" => Value::String(format!(
                "T0{}",
                &uuid_from(self.rng.next_u64()).replace('-', "")[..9].to_uppercase()
            )),
            "slack_channel_id" => Value::String(format!(
                "C0{}",
                &uuid_from(self.rng.next_u64()).replace('-', "")[..9].to_uppercase()
            )),
            "token_id" | "tunnel_token_id" => Value::String(self.entity("tuntok_", 100)),
            "link_id" => Value::String(self.entity("link_", 100)),
            "share_id" => Value::String(self.entity("share_", 1_000)),
            "certificate_id" => Value::String(self.entity("cert_", 50)),
            "abuse_session_id" => Value::String(uuid_from(self.rng.next_u64())),
            "reference_id" => Value::String(format!("hook-{}", self.rng.below(1_000_000))),
            "retention_days" => json!(*self.rng.pick(&[30, 90, 365, 2190])),
            _ => self.by_shape(name),
        }
    }

    /// Fields not named above: guess from the name's shape.
    fn by_shape(&mut self, name: &str) -> Value {
        if name.ends_with("_id") {
            return self.id_field(name);
        }
        if BOOL_FIELDS.contains(&name) || name.starts_with("is_") || name.ends_with("_enabled") {
            return Value::Bool(self.rng.chance(0.6));
        }
        if MONEY_FIELDS.contains(&name) {
            let dollars = *self.rng.pick(&[50, 100, 250, 500, 1_000, 5_000, 25_000]);
            return if self.rng.chance(0.3) {
                json!(dollars as f64 + 0.5)
            } else {
                json!(dollars)
            };
        }
        if COUNT_FIELDS.contains(&name) || name.ends_with("_count") {
            return json!(self.rng.between(0, 250));
        }
        if name.ends_with("_email") || name == "email" {
            return Value::String(self.email());
        }
        if name == "organization_name" {
            return self.pick(super::pools::ORG_NAMES);
        }
        if name.ends_with("_name") || name == "display_name" {
            return match name {
                "skill_name" => self.pick(&[
                    "pdf-extractor",
                    "brand-guidelines",
                    "Relatório financeiro",
                    "データ整形",
                ]),
                "plugin_name" => self.pick(&["github", "linear", "security-review", "jira-helper"]),
                "mcp_server_name" => self.pick(&["GitHub", "Linear", "Notion", "Internal Wiki"]),
                "command_name" => self.pick(&["/deploy", "/review", "/triage"]),
                "service_name" => self.pick(&["billing-sync", "siem-export", "ci-bot"]),
                "group_name" => self.pick(&["Engineering", "Finanzen", "法務", "Security"]),
                _ => Value::String(self.person_name()),
            };
        }
        if name.ends_with("_uuid") {
            return Value::String(uuid_from(self.rng.next_u64()));
        }
        if name.ends_with("_ip") || name == "ip_address" {
            return Value::String(any_ip(self.rng));
        }
        // Unknown shape: a short token, clearly synthetic but well-formed.
        Value::String(format!("{}-{}", name, self.rng.below(10_000)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::generate::catalogue::catalogue;

    fn ctx<'a>(world: &'a World, rng: &'a mut Rng, type_name: &'a str) -> FieldCtx<'a> {
        FieldCtx {
            world,
            type_name,
            created_at: DateTime::parse_from_rfc3339("2026-05-08T12:18:11.000538Z")
                .unwrap()
                .into(),
            actor_api_key: None,
            request_method: None,
            rng,
        }
    }

    #[test]
    fn values_have_the_right_shapes() {
        let world = World::new(1);
        let mut rng = Rng::new(2);
        let mut c = ctx(&world, &mut rng, "claude_chat_created");
        assert!(
            c.value("claude_chat_id", &[])
                .as_str()
                .unwrap()
                .starts_with("claude_chat_01")
        );
        assert!(
            c.value("claude_project_id", &[])
                .as_str()
                .unwrap()
                .starts_with("claude_proj_01")
        );
        assert!(
            c.value("user_id", &[])
                .as_str()
                .unwrap()
                .starts_with("user_01")
        );
        assert!(c.value("enabled", &[]).is_boolean());
        assert!(c.value("amount", &[]).is_number());
        assert!(c.value("to_email_count", &[]).is_u64());
        assert!(
            c.value("invited_email", &[])
                .as_str()
                .unwrap()
                .contains('@')
        );
        let updates = c.value("updates", &[]);
        for u in updates.as_array().unwrap() {
            assert!(
                u["type"].is_string()
                    && u["previous_value"].is_string()
                    && u["current_value"].is_string()
            );
            assert_ne!(u["previous_value"], u["current_value"]);
        }
        let audience = c.value("audience", &[]);
        assert!(
            audience
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["type"].is_string())
        );
        let e = c.value("decision", &["blocked".to_string()]);
        assert_eq!(e, json!("blocked"));
        let accessed = c.value("accessed_at", &[]);
        assert!(DateTime::parse_from_rfc3339(accessed.as_str().unwrap()).is_ok());
    }

    #[test]
    fn compliance_call_method_matches_its_url() {
        let world = World::new(1);
        let mut rng = Rng::new(5);
        let mut deletes = 0;
        for _ in 0..500 {
            let mut c = ctx(&world, &mut rng, "compliance_api_accessed");
            let url = c.value("url", &[]);
            let method = c.value("request_method", &[]);
            let is_chat = url.as_str().unwrap().contains("/apps/chats/claude_chat_01");
            assert_eq!(method == "DELETE", is_chat, "{method} {url}");
            deletes += usize::from(is_chat);
        }
        assert!(deletes > 0);
    }

    #[test]
    fn every_catalogued_field_gets_a_value() {
        let world = World::new(1);
        let mut rng = Rng::new(2);
        for t in catalogue() {
            let mut c = ctx(&world, &mut rng, &t.name);
            for f in &t.fields {
                let v = c.value(&f.name, &f.values);
                if !f.subkeys.is_empty() {
                    for k in &f.subkeys {
                        assert!(v.get(k).is_some(), "{}.{} lacks {k}", t.name, f.name);
                    }
                }
            }
        }
    }
}
