//! The rule table of `spec/ocsf-mapping.md` 4.2 as data: an ordered list of
//! activity-type patterns, first match wins. A new activity type is one more
//! line (or one more pattern on an existing line).
//!
//! Each line names the spec row it implements (`A1`, `K3`, ...; `X` marks a
//! row the spec does not have, for types its table does not cover) and a
//! [`Target`]: the class, how the activity id is chosen, how the status is
//! chosen, and which class-specific objects are built from which fields.
//! Types no line matches take the section 5 fallback.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use super::classes::Class;

/// One line of the rule table.
#[derive(Debug)]
pub struct Rule {
    /// The row of `spec/ocsf-mapping.md` 4.2 this line implements, or `X`.
    pub spec: &'static str,
    /// Activity-type patterns; `*` matches any text (also none).
    pub patterns: &'static [&'static str],
    pub target: Target,
}

/// What a matched activity becomes.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub class: Class,
    pub activity: Act,
    pub status: StatusRule,
    pub objects: Objects,
}

/// How the activity id is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// From the type's verb suffix, through the class's own verb table.
    Verb,
    /// Always this id.
    Fixed(u8),
    /// `*_toggled` types: `enabled` (or `is_enabled`) true -> Enable, false ->
    /// Disable, absent -> the verb (Update).
    Toggle,
    /// Key updates: the verb, except that an `updates[]` entry of type
    /// `status` moving to `archived`/`inactive`/`disabled` is a Disable and
    /// one moving to `active`/`enabled` an Enable.
    KeyStatus,
    /// `compliance_api_accessed`: from `request_method`.
    RequestMethod,
}

/// How `status_id` is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusRule {
    /// From the type's suffix (section 4.1).
    Suffix,
    /// The type itself reports a failure (`ghe_webhook_signature_invalid`).
    Failure,
    /// A field whose value `failed`/`rejected`/`error`/`denied` means Failure.
    ResultField(&'static str),
    /// A field that, when present and not null, carries an error.
    ErrorField(&'static str),
    /// `status_code`: 2xx/3xx Success, 4xx/5xx Failure, absent Unknown.
    HttpStatusCode,
}

/// The class-specific objects and where their values come from.
#[derive(Debug, Clone, Copy)]
pub enum Objects {
    /// 3002: `user` (required), `service` (required by constraint), protocol.
    Auth { protocol: Protocol, user: UserFrom },
    /// 3001: `user` (required).
    Account { user: UserFrom },
    /// 3005 (or 3006 when the principal is a group): `user`, `privileges`.
    Privileges {
        target: Ids,
        /// A field naming the principal's kind (`target_type`, ...).
        kind_field: Option<&'static str>,
        roles: Roles,
    },
    /// 3006: `group` (required), `user`.
    Group(GroupFrom),
    /// 3004: `entity` (required).
    Entity(Entity),
    /// 6001: `web_resources` (required).
    Web(Web),
    /// 6003 for `compliance_api_accessed`: `api`, `http_request`, `http_response`.
    ComplianceApi,
    /// 6003 with `api.operation` = the type.
    Api,
    /// 6001 for Access Transparency records: the resource in `resource_details`.
    AccessTransparency,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    None,
    Saml,
    OpenId,
    /// `auth_protocol_id` 99 with this name.
    Other(&'static str),
}

/// Source fields naming a user: ids first, then e-mail addresses.
#[derive(Debug, Clone, Copy)]
pub struct Ids {
    pub uid: &'static [&'static str],
    pub email: &'static [&'static str],
}

/// Where an IAM event's `user` (the subject of the change) comes from.
#[derive(Debug, Clone, Copy)]
pub enum UserFrom {
    /// The actor acted on their own account.
    Actor,
    /// Fields of the record; the event degrades without them (using the
    /// actor instead would name the wrong person).
    Target(Ids),
    /// Fields of the record, else the actor (self-service types).
    TargetOrActor(Ids),
}

#[derive(Debug, Clone, Copy)]
pub enum Roles {
    /// The first present field's value.
    Fields(&'static [&'static str]),
    /// A privilege the type itself names (`primary_owner_transferred`).
    Fixed(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupFrom {
    /// `group_id`/`group_name`; a single `member_ids` entry is the user.
    Group,
    /// A workspace as the group (`workspace_id`); `user_id` or
    /// `service_account_id` is the member.
    Workspace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noun {
    /// The type without its verb suffix (`mcp_server_deleted` -> `mcp_server`).
    Derived,
    Fixed(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    /// `type_id` 99 with `type` = the noun.
    Other,
    /// `type_id` 4: the organization itself (`uid` = the org id).
    Organization,
    /// `type_id` 5 with a `policy` object of type = the noun.
    Policy,
}

#[derive(Debug, Clone, Copy)]
pub struct Entity {
    pub noun: Noun,
    pub kind: EntityKind,
    /// Fields holding the entity's id, tried first; then any `<noun tail>_id`.
    pub uid: &'static [&'static str],
    /// Fields holding its name, tried first; then any `<noun tail>_name`.
    pub name: &'static [&'static str],
}

#[derive(Debug, Clone, Copy)]
pub struct Web {
    pub noun: Noun,
    pub uid: &'static [&'static str],
    pub name: &'static [&'static str],
    /// Further resources named by the record: (field, resource type).
    pub parents: &'static [(&'static str, &'static str)],
    /// A view or export of an organization-wide list: without an id of its
    /// own, the resource is identified by the organization.
    pub org_scoped: bool,
}

/// The containers a Claude content object can name besides itself.
const CONTENT_PARENTS: &[(&str, &str)] = &[
    ("claude_project_id", "claude_project"),
    ("claude_chat_id", "claude_chat"),
    ("claude_artifact_id", "claude_artifact"),
];

const fn ids(uid: &'static [&'static str], email: &'static [&'static str]) -> Ids {
    Ids { uid, email }
}

const fn rule(spec: &'static str, patterns: &'static [&'static str], target: Target) -> Rule {
    Rule {
        spec,
        patterns,
        target,
    }
}

const fn target(class: Class, objects: Objects) -> Target {
    Target {
        class,
        activity: Act::Verb,
        status: StatusRule::Suffix,
        objects,
    }
}

/// 3002, Logon unless `.fixed()` says otherwise, user = the actor.
const fn auth(protocol: Protocol) -> Target {
    target(
        Class::Authentication,
        Objects::Auth {
            protocol,
            user: UserFrom::Actor,
        },
    )
    .fixed(1)
}

const fn account(user: UserFrom) -> Target {
    target(Class::AccountChange, Objects::Account { user })
}

const fn privileges(
    activity: u8,
    target_ids: Ids,
    kind_field: Option<&'static str>,
    roles: Roles,
) -> Target {
    target(
        Class::UserAccessManagement,
        Objects::Privileges {
            target: target_ids,
            kind_field,
            roles,
        },
    )
    .fixed(activity)
}

const fn group(from: GroupFrom) -> Target {
    target(Class::GroupManagement, Objects::Group(from))
}

const fn entity_of(kind: EntityKind) -> Target {
    target(
        Class::EntityManagement,
        Objects::Entity(Entity {
            noun: Noun::Derived,
            kind,
            uid: &[],
            name: &[],
        }),
    )
}

/// 3004 with `type_id` 99 and `type` = the noun.
const fn entity() -> Target {
    entity_of(EntityKind::Other)
}

/// 3004 on the organization itself, Update unless `.fixed()` says otherwise.
const fn org() -> Target {
    entity_of(EntityKind::Organization).fixed(3)
}

const fn policy() -> Target {
    entity_of(EntityKind::Policy)
}

const fn web_of(noun: Noun, org_scoped: bool) -> Target {
    target(
        Class::WebResourcesActivity,
        Objects::Web(Web {
            noun,
            uid: &[],
            name: &[],
            parents: CONTENT_PARENTS,
            org_scoped,
        }),
    )
}

/// 6001 on a Claude object of this resource type.
const fn web(noun: &'static str) -> Target {
    web_of(Noun::Fixed(noun), false)
}

/// 6001 on an organization-wide list, report or export.
const fn org_resource(noun: &'static str) -> Target {
    web_of(Noun::Fixed(noun), true)
}

impl Target {
    const fn fixed(mut self, activity: u8) -> Target {
        self.activity = Act::Fixed(activity);
        self
    }

    const fn status(mut self, status: StatusRule) -> Target {
        self.status = status;
        self
    }

    const fn toggle(mut self) -> Target {
        self.activity = Act::Toggle;
        self
    }

    const fn request_method(mut self) -> Target {
        self.activity = Act::RequestMethod;
        self
    }

    const fn key_status(mut self) -> Target {
        self.activity = Act::KeyStatus;
        self
    }

    const fn noun(mut self, noun: &'static str) -> Target {
        match &mut self.objects {
            Objects::Entity(e) => e.noun = Noun::Fixed(noun),
            Objects::Web(w) => w.noun = Noun::Fixed(noun),
            _ => panic!("noun() applies to entity and web targets"),
        }
        self
    }

    const fn uid(mut self, fields: &'static [&'static str]) -> Target {
        match &mut self.objects {
            Objects::Entity(e) => e.uid = fields,
            Objects::Web(w) => w.uid = fields,
            _ => panic!("uid() applies to entity and web targets"),
        }
        self
    }

    const fn name(mut self, fields: &'static [&'static str]) -> Target {
        match &mut self.objects {
            Objects::Entity(e) => e.name = fields,
            Objects::Web(w) => w.name = fields,
            _ => panic!("name() applies to entity and web targets"),
        }
        self
    }

    const fn parents(mut self, parents: &'static [(&'static str, &'static str)]) -> Target {
        match &mut self.objects {
            Objects::Web(w) => w.parents = parents,
            _ => panic!("parents() applies to web targets"),
        }
        self
    }

    const fn user(mut self, from: UserFrom) -> Target {
        match &mut self.objects {
            Objects::Auth { user, .. } | Objects::Account { user } => *user = from,
            _ => panic!("user() applies to auth and account targets"),
        }
        self
    }
}

use Protocol as P;
use StatusRule as S;
use UserFrom as U;

/// The ordered rule table. First match wins, so specific lines come before
/// the families that would also match them.
pub static RULES: &[Rule] = &[
    // ---- 6003 API Activity ----
    rule(
        "P1",
        &["compliance_api_accessed"],
        target(Class::ApiActivity, Objects::ComplianceApi)
            .status(S::HttpStatusCode)
            .request_method(),
    ),
    rule(
        "X",
        &["inference_hooks_request_*"],
        target(Class::ApiActivity, Objects::Api),
    ),
    // ---- 3002 Authentication ----
    rule("A1", &["sso_login_*"], auth(P::Saml)),
    rule("A1", &["social_login_*"], auth(P::OpenId)),
    rule(
        "A1",
        &["magic_link_login_*", "sso_second_factor_*"],
        auth(P::Other("magic_link")),
    ),
    rule(
        "A1",
        &[
            "anonymous_mobile_login_attempted",
            "platform_app_attest_authentication",
        ],
        auth(P::None),
    ),
    // Workload identity federation: an OIDC token from an external issuer.
    rule(
        "A1",
        &["platform_federated_authentication"],
        auth(P::OpenId),
    ),
    rule("A1", &["lti_launch_*"], auth(P::Other("lti"))),
    rule("A2", &["user_logged_out"], auth(P::None).fixed(2)),
    rule(
        "A2",
        &["session_revoked"],
        auth(P::None).fixed(2).user(U::TargetOrActor(ids(
            &["user_id", "target_id"],
            &["user_email"],
        ))),
    ),
    rule(
        "A3",
        &[
            "phone_code_*",
            "age_verified",
            "step_up_authentication_*",
            "abuse_decision_received",
        ],
        auth(P::None).fixed(99),
    ),
    // ---- 3005 User Access Management (3006 when the principal is a group) ----
    rule(
        "R1",
        &["role_assignment_granted"],
        privileges(
            1,
            ids(&["target_id"], &[]),
            Some("target_type"),
            Roles::Fields(&["role"]),
        ),
    ),
    rule(
        "R2",
        &["role_assignment_revoked"],
        privileges(
            2,
            ids(&["target_id"], &[]),
            Some("target_type"),
            Roles::Fields(&["role"]),
        ),
    ),
    rule(
        "R1",
        &["rbac_role_assigned"],
        privileges(
            1,
            ids(&["principal_id"], &[]),
            Some("principal_type"),
            Roles::Fields(&["role_name", "role_id"]),
        ),
    ),
    rule(
        "R2",
        &["rbac_role_unassigned"],
        privileges(
            2,
            ids(&["principal_id"], &[]),
            Some("principal_type"),
            Roles::Fields(&["role_name", "role_id"]),
        ),
    ),
    rule(
        "R1",
        &["claude_user_role_updated"],
        privileges(
            1,
            ids(&["user_id"], &["user_email"]),
            None,
            Roles::Fields(&["current_role"]),
        ),
    ),
    rule(
        "R1",
        &["primary_owner_transferred"],
        privileges(
            1,
            ids(&["new_owner_id"], &[]),
            None,
            Roles::Fixed("primary_owner"),
        ),
    ),
    // ---- 3006 Group Management ----
    rule(
        "G1",
        &[
            "group_created",
            "group_deleted",
            "group_updated",
            "group_visibility_updated",
        ],
        group(GroupFrom::Group),
    ),
    rule(
        "G2",
        &[
            "group_member_added",
            "group_member_addition_failed",
            "group_member_removed",
            "group_member_removal_failed",
            "group_project_shares_revoked",
            "group_skill_shares_revoked",
        ],
        group(GroupFrom::Group),
    ),
    rule(
        "G2",
        &[
            "platform_workspace_member_added",
            "platform_workspace_member_removed",
            "platform_workspace_member_updated",
            "platform_service_account_workspace_member_*",
        ],
        group(GroupFrom::Workspace),
    ),
    // ---- 6001 Web Resources Activity: Claude content (C1) ----
    rule(
        "C1",
        &["claude_chat_snapshot_*"],
        web("claude_chat_snapshot"),
    ),
    rule(
        "C1",
        &["claude_chat_sync_source_*"],
        web("claude_chat_sync_source"),
    ),
    rule("C1", &["claude_chat_*"], web("claude_chat")),
    rule(
        "C1",
        &["claude_project_document_*"],
        web("claude_project_document").name(&["filename"]),
    ),
    rule(
        "C1",
        &["claude_project_file_*"],
        web("claude_project_file")
            .uid(&["claude_file_id"])
            .name(&["filename"]),
    ),
    rule(
        "C1",
        &["claude_project_sync_source_*"],
        web("claude_project_sync_source"),
    ),
    rule("C1", &["claude_project_*"], web("claude_project")),
    rule(
        "C1",
        &["claude_file_*"],
        web("claude_file").name(&["filename"]),
    ),
    rule(
        "C1",
        &["claude_artifact_published", "claude_published_artifact_*"],
        web("claude_published_artifact")
            .uid(&["claude_published_artifact_id"])
            .name(&["title"]),
    ),
    // An organization's sharing policy for artifacts, not one artifact.
    rule(
        "K4",
        &["claude_artifact_external_sharing_permission_updated"],
        policy(),
    ),
    rule(
        "C1",
        &[
            "claude_artifact_invite_created",
            "claude_artifact_invite_role_updated",
        ],
        web("claude_artifact").fixed(8),
    ),
    rule(
        "C1",
        &["claude_artifact_invite_*"],
        web("claude_artifact").fixed(99),
    ),
    rule(
        "C1",
        &["claude_artifact_*"],
        web("claude_artifact").name(&["title"]),
    ),
    rule(
        "C1",
        &["claude_skill_security_scan_*"],
        web("claude_skill_security_scan")
            .uid(&["scan_id"])
            .parents(&[("skill_id", "claude_skill")]),
    ),
    rule("C1", &["claude_skill_*"], web("claude_skill")),
    rule("C1", &["claude_command_*"], web("claude_command")),
    rule(
        "C1",
        &["session_share_created"],
        web("session_share").fixed(8),
    ),
    rule("C1", &["session_share_*"], web("session_share")),
    rule(
        "C1",
        &["pending_share_created"],
        web("pending_share").fixed(8),
    ),
    rule("C1", &["pending_share_*"], web("pending_share")),
    rule(
        "C1",
        &[
            "design_project_member_added",
            "design_project_member_role_updated",
            "design_project_sharing_updated",
            "design_project_published",
            "design_project_artifact_published",
        ],
        web("design_project").fixed(8),
    ),
    rule(
        "C1",
        &[
            "design_project_member_removed",
            "design_project_unpublished",
        ],
        web("design_project").fixed(99),
    ),
    rule("C1", &["design_project_*"], web("design_project")),
    rule(
        "C1",
        &["ccr_session_*"],
        web("ccr_session").uid(&["session_id"]),
    ),
    rule(
        "C1",
        &["cowork_session_*"],
        web("cowork_session").uid(&["session_id"]),
    ),
    rule(
        "C1",
        &[
            "platform_agent_session_resource_*",
            "platform_agent_session_thread_*",
        ],
        web("platform_agent_session").uid(&["session_id"]).fixed(3),
    ),
    rule(
        "C1",
        &["platform_agent_session_*"],
        web("platform_agent_session").uid(&["session_id"]),
    ),
    rule(
        "C1",
        &["platform_memory_store_*"],
        web("platform_memory_store"),
    ),
    rule("C1", &["platform_memory_*"], web("platform_memory")),
    rule(
        "C1",
        &["platform_file_*"],
        web("platform_file").name(&["filename"]),
    ),
    rule(
        "C1",
        &["platform_skill_version_*"],
        web("platform_skill_version")
            .name(&["version"])
            .parents(&[("skill_id", "platform_skill")]),
    ),
    rule(
        "C1",
        &[
            "org_sync_synchronized_files_deleted",
            "org_sync_deleting_synchronized_files_started",
        ],
        org_resource("org_synchronized_files").fixed(4),
    ),
    // Access Transparency: Anthropic staff read (or preserved) a resource.
    rule(
        "X",
        &["anthropic_access"],
        target(Class::WebResourcesActivity, Objects::AccessTransparency).fixed(2),
    ),
    rule(
        "X",
        &["cmek_preserve"],
        target(Class::WebResourcesActivity, Objects::AccessTransparency).fixed(99),
    ),
    // ---- 6001: exports (C2) and organization-wide reads (C3) ----
    rule(
        "C2",
        &["audit_log_export_*"],
        org_resource("audit_log_export"),
    ),
    rule(
        "C2",
        &["org_data_export_*"],
        org_resource("org_data_export"),
    ),
    rule("C2", &["org_members_exported"], org_resource("org_members")),
    rule("C3", &["org_users_listed"], org_resource("org_users")),
    rule("C3", &["org_invites_listed"], org_resource("org_invites")),
    rule("C3", &["group_list_viewed"], org_resource("groups")),
    rule(
        "C3",
        &["*usage_report*_viewed", "*cost_report*_viewed"],
        web_of(Noun::Derived, true),
    ),
    rule(
        "C3",
        &["org_parent_search_performed"],
        org_resource("organization"),
    ),
    rule(
        "C3",
        &["org_user_viewed"],
        web("org_user").uid(&["user_id"]),
    ),
    rule(
        "C3",
        &["org_invite_viewed"],
        web("org_invite").uid(&["invite_id"]),
    ),
    rule(
        "C3",
        &["group_viewed", "group_member_list_viewed"],
        web("group").uid(&["group_id"]),
    ),
    rule(
        "C3",
        &["platform_workspace_member_viewed"],
        web("workspace_member")
            .uid(&["user_id"])
            .parents(&[("workspace_id", "workspace")]),
    ),
    rule(
        "C3",
        &["platform_workspace_members_listed"],
        web("workspace").uid(&["workspace_id"]),
    ),
    // ---- 3001 Account Change ----
    rule(
        "U1",
        &["org_user_invite_sent"],
        account(U::Target(ids(&[], &["invited_email"]))).fixed(1),
    ),
    rule(
        "U1",
        &[
            "org_user_invite_accepted",
            "org_join_request_instant_approved",
        ],
        account(U::Actor).fixed(1),
    ),
    rule(
        "U1",
        &["org_user_invite_re_sent"],
        account(U::Target(ids(&[], &["invited_email"]))).fixed(99),
    ),
    rule(
        "U1",
        &["end_user_invite_requested"],
        account(U::Target(ids(&["invitee_user_id"], &["invitee_email"]))).fixed(99),
    ),
    rule(
        "U1",
        &["org_join_request_created"],
        account(U::Actor).fixed(99),
    ),
    rule(
        "U1",
        &["scim_user_*"],
        account(U::Target(ids(&["user_id"], &["user_email", "email"]))),
    ),
    rule(
        "U2",
        &["org_user_deleted"],
        account(U::Target(ids(
            &["deleted_user_id"],
            &["deleted_user_email"],
        ))),
    ),
    rule(
        "U2",
        &["account_deleted"],
        account(U::TargetOrActor(ids(&["user_id"], &["user_email"]))),
    ),
    rule("U2", &["org_user_left"], account(U::Actor).fixed(6)),
    rule(
        "U4",
        &["step_up_credential_enrolled"],
        account(U::Actor).fixed(10),
    ),
    rule(
        "U4",
        &[
            "claude_user_settings_updated",
            "claude_code_user_*",
            "user_consent_*",
            "integration_user_*",
            "ghe_user_*",
        ],
        account(U::Actor).fixed(99),
    ),
    rule(
        "U4",
        &["github_token_import"],
        account(U::Actor).fixed(99).status(S::ResultField("result")),
    ),
    rule(
        "U4",
        &[
            "claude_user_seat_tier_updated",
            "org_user_trusted_devices_revoked",
            "org_user_shares_retained",
            "owned_projects_access_restored",
        ],
        account(U::Target(ids(&["user_id", "target_id"], &["user_email"]))).fixed(99),
    ),
    rule(
        "U3",
        &[
            "*user*_suspended",
            "*user*_deactivated",
            "*user*_disabled",
            "*user*_reactivated",
            "*user*_enabled",
        ],
        account(U::Target(ids(&["user_id", "target_id"], &["user_email"]))),
    ),
    // ---- 3004 Entity Management ----
    // K1: keys and credentials.
    rule("K1", &["admin_api_key_*"], entity().key_status()),
    rule(
        "K1",
        &["api_key_*", "platform_api_key_*"],
        entity().uid(&["api_key_id"]).key_status(),
    ),
    rule(
        "K1",
        &["scoped_api_key_*"],
        entity().name(&["api_key_name"]).key_status(),
    ),
    rule("K1", &["service_key_*"], entity().name(&["key_name"])),
    rule(
        "K1",
        &["platform_signing_key_*"],
        entity().uid(&["new_signing_key_id"]).name(&["key_name"]),
    ),
    rule("K1", &["platform_oauth_app_*"], entity()),
    // Roles: a change to a role's permissions or grants updates the role.
    rule(
        "X",
        &["rbac_role_permission_*", "rbac_role_grant_*"],
        entity().noun("rbac_role").fixed(3),
    ),
    rule("X", &["rbac_role_*"], entity()),
    rule(
        "K1",
        &["service_created", "service_deleted"],
        entity().name(&["service_name"]),
    ),
    rule("K1", &["trusted_device_*"], entity().noun("trusted_device")),
    // K2: workspaces, service accounts, federation, managed agents.
    rule(
        "K2",
        &["platform_workspace_rate_limit_*"],
        entity().noun("workspace").uid(&["workspace_id"]).fixed(3),
    ),
    // A workspace setting switched on or off: the setting, of that workspace.
    rule(
        "K2",
        &[
            "platform_workspace_*_enabled",
            "platform_workspace_*_disabled",
        ],
        entity().uid(&["workspace_id"]),
    ),
    rule(
        "K2",
        &["platform_workspace_*"],
        entity().noun("workspace").uid(&["workspace_id"]),
    ),
    rule(
        "K2",
        &["platform_federation_rule_workspace_*"],
        entity().noun("platform_federation_rule").fixed(3),
    ),
    rule(
        "K2",
        &[
            "platform_clearance_workspace_program_request_*",
            "platform_federation_*",
            "platform_service_account_*",
            "platform_agent_*",
            "platform_dream_*",
            "platform_plugin_directory_submission_*",
            "environment_*",
        ],
        entity(),
    ),
    // K3: SSO, SCIM, directory sync, domains.
    rule(
        "K3",
        &[
            "org_sso_toggled",
            "org_sso_*_toggled",
            "org_magic_link_second_factor_toggled",
        ],
        entity().toggle(),
    ),
    rule(
        "K8",
        &["org_directory_resync_*"],
        entity().uid(&["resync_uuid"]),
    ),
    rule(
        "K3",
        &[
            "org_sso_*",
            "org_directory_sync_*",
            "claude_pubsec_identity_*",
            "org_discoverability_*",
            "org_connector_domain_guard_*",
        ],
        entity(),
    ),
    rule(
        "K3",
        &["org_domain_*", "domain_claim_*"],
        entity().name(&["domain"]),
    ),
    // K4: policies.
    rule(
        "K4",
        &[
            "org_ip_restriction_*",
            "ip_restriction_policy_*",
            "mcp_tool_policy_*",
            "cli_plugin_exec_policy_*",
        ],
        policy(),
    ),
    // K5: the organization itself.
    rule(
        "K5",
        &[
            "org_deleted",
            "organization_deleted",
            "org_deleted_via_bulk",
            "org_bulk_delete_initiated",
        ],
        org().fixed(4),
    ),
    rule("K5", &["org_deletion_requested"], org().fixed(99)),
    rule(
        "K5",
        &["org_creation_blocked"],
        entity().fixed(99).status(S::Failure),
    ),
    rule(
        "K5",
        &[
            "claude_organization_settings_updated",
            "org_compliance_api_settings_updated",
            "org_analytics_api_capability_updated",
            "org_capability_grant_*",
            "org_data_residency_updated",
            "org_model_default_updated",
            "org_taint_*",
            "organization_icon_*",
            "organization_address_updated",
        ],
        org(),
    ),
    // K6: billing and spend.
    rule(
        "K6",
        &[
            "billing_*",
            "claude_enterprise_upgrade_credit_*",
            "extra_usage_*",
            "invoice_*",
            "managed_organization_setup_*",
            "payment_method_*",
            "prepaid_*",
            "seat_tier*",
            "subscription_*",
            "*spend_limit*",
        ],
        entity(),
    ),
    rule(
        "K6",
        &["platform_billing_*"],
        entity().noun("platform_billing"),
    ),
    // K7: MCP servers, connectors, tunnels, integrations, plugins.
    rule(
        "K7",
        &["admin_connector_request_resolved"],
        entity().noun("mcp_server").fixed(99),
    ),
    rule(
        "K7",
        &["mcp_server_managed_auth_token_*"],
        entity().status(S::ErrorField("error_type")),
    ),
    rule("K7", &["mcp_server_*"], entity().noun("mcp_server")),
    rule("K7", &["mcp_*"], entity()),
    rule(
        "K7",
        &["tunnel_token_revealed"],
        entity().noun("tunnel").uid(&["tunnel_id"]),
    ),
    rule("K7", &["tunnel_token_*"], entity().noun("tunnel_token")),
    rule("K7", &["tunnel_*"], entity()),
    rule(
        "K7",
        &["ghe_webhook_signature_invalid"],
        entity()
            .noun("ghe_configuration")
            .fixed(99)
            .status(S::Failure),
    ),
    rule(
        "K7",
        &[
            "claude_gdrive_integration_*",
            "claude_github_integration_*",
            "ghe_configuration_*",
            "github_app_installation_*",
            "gitlab_configuration_*",
        ],
        entity().name(&["repository_name"]),
    ),
    rule("K7", &["claude_plugin_*"], entity().noun("claude_plugin")),
    rule(
        "K7",
        &[
            "desktop_extension_*",
            "marketplace_*",
            "plugin_installation_preference_*",
            "lti_platform_*",
        ],
        entity(),
    ),
    rule(
        "K7",
        &["claude_code_runner_pool_secret_*"],
        entity().uid(&["jti"]),
    ),
    rule(
        "K7",
        &["claude_code_*"],
        entity().name(&["display_name", "repo_name"]),
    ),
    rule(
        "K7",
        &["ccr_agent_proxy_anthropic_oidc_token_*"],
        entity().noun("ccr_agent").fixed(99),
    ),
    // A Slack binding or channel manager is part of the agent's configuration.
    rule(
        "K7",
        &["ccr_agent_slack_*", "ccr_channel_manager_*"],
        entity().noun("ccr_agent").fixed(3),
    ),
    rule("K7", &["ccr_*"], entity().name(&["display_name"])),
    rule(
        "K7",
        &["slack_workspace_*"],
        entity().uid(&["slack_team_id"]),
    ),
    // Memberships, invitations and join requests as objects of their own.
    rule(
        "X",
        &["org_user_invite_*"],
        entity().noun("org_user_invite").uid(&["invite_id"]),
    ),
    rule(
        "X",
        &[
            "org_join_request*",
            "org_join_proposal_*",
            "org_parent_join_proposal_*",
            "org_invite_link_*",
            "org_member_invites_*",
            "admin_request_*",
            "admin_setup_checklist_*",
        ],
        entity(),
    ),
    // Organization features switched on or off, and other org settings.
    rule(
        "K5",
        &[
            "org_*_enabled",
            "org_*_disabled",
            "org_cowork_*",
            "org_external_key_*",
        ],
        entity(),
    ),
    rule(
        "X",
        &["org_security_control_attestation_*"],
        entity().name(&["control"]),
    ),
    rule("X", &["verification_*", "inference_hooks_*"], entity()),
];

/// The rule for an activity type, `None` for the section 5 fallback.
pub fn rule_for(activity_type: &str) -> Option<&'static Rule> {
    RULES
        .iter()
        .find(|r| r.patterns.iter().any(|p| glob(p, activity_type)))
}

/// Remembers which rule each activity type resolved to: a feed repeats the
/// same few hundred types endlessly, and scanning the table's patterns for
/// every record would cost more than the rest of the mapping.
#[derive(Debug, Default)]
pub struct RuleCache {
    resolved: RwLock<HashMap<String, Option<u16>>>,
}

impl RuleCache {
    /// Beyond this many distinct types (a feed gone wrong), new types are
    /// resolved without being remembered, so memory stays bounded.
    const CAPACITY: usize = 8192;

    pub fn rule_for(&self, activity_type: &str) -> Option<&'static Rule> {
        let cached = self
            .resolved
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(activity_type)
            .copied();
        let index = match cached {
            Some(index) => index,
            None => {
                let index = RULES
                    .iter()
                    .position(|r| r.patterns.iter().any(|p| glob(p, activity_type)))
                    .map(|i| i as u16);
                let mut resolved = self
                    .resolved
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                if resolved.len() < Self::CAPACITY {
                    resolved.insert(activity_type.to_string(), index);
                }
                index
            }
        };
        index.map(|i| &RULES[usize::from(i)])
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let mut parts = parts.peekable();
    if parts.peek().is_none() {
        return rest.is_empty();
    }
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches() {
        assert!(glob("sso_login_*", "sso_login_failed"));
        assert!(!glob("sso_login_*", "sso_logout"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
        assert!(glob("*user*_disabled", "org_user_x_disabled"));
        assert!(!glob("*user*_disabled", "org_usr_disabled"));
        assert!(glob("*spend_limit*", "workspace_spend_limit_created"));
        assert!(glob("a*b*c", "abc"));
        assert!(!glob("a*b*c", "acb"));
        assert!(glob("*", ""));
    }

    /// Every pattern is reachable: an earlier line does not swallow it
    /// (exact types, and globs with `*` standing for a made-up word).
    #[test]
    fn no_line_is_shadowed() {
        for (index, rule) in RULES.iter().enumerate() {
            for pattern in rule.patterns {
                let example = pattern.replace('*', "zz");
                let hit = RULES
                    .iter()
                    .position(|r| r.patterns.iter().any(|p| glob(p, &example)));
                assert_eq!(
                    hit,
                    Some(index),
                    "{pattern} ({example}) is matched by an earlier line"
                );
            }
        }
    }

    #[test]
    fn the_cache_agrees_with_the_table() {
        let cache = RuleCache::default();
        for t in [
            "sso_login_failed",
            "claude_chat_viewed",
            "no_such_type",
            "sso_login_failed",
        ] {
            assert_eq!(
                cache.rule_for(t).map(|r| r as *const Rule),
                rule_for(t).map(|r| r as *const Rule),
                "{t}"
            );
        }
        assert_eq!(cache.resolved.read().unwrap().len(), 3);
    }

    #[test]
    fn first_match_wins() {
        assert_eq!(
            rule_for("claude_chat_snapshot_created").unwrap().patterns,
            &["claude_chat_snapshot_*"]
        );
        assert_eq!(
            rule_for("platform_workspace_member_added")
                .unwrap()
                .target
                .class,
            Class::GroupManagement
        );
        assert_eq!(
            rule_for("platform_workspace_created").unwrap().target.class,
            Class::EntityManagement
        );
        assert!(rule_for("brand_new_thing_created").is_none());
    }
}
