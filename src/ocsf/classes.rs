//! The OCSF 1.8.0 classes the mapper emits, their activity enums, and the
//! verb table that turns an activity type's suffix into a class's activity id.
//!
//! The activity numbers differ between classes (Delete is 6 in Account
//! Change, 5 in Group Management, 4 elsewhere), so every class has its own
//! verb -> activity_id table here rather than one shared guess.

/// An OCSF event class used by the mapping (`spec/ocsf-mapping.md` 2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Base Event (0): the fail-open fallback when no actor IP is known.
    Base,
    AccountChange,
    Authentication,
    EntityManagement,
    UserAccessManagement,
    GroupManagement,
    WebResourcesActivity,
    ApiActivity,
}

impl Class {
    pub const fn uid(self) -> u32 {
        match self {
            Class::Base => 0,
            Class::AccountChange => 3001,
            Class::Authentication => 3002,
            Class::EntityManagement => 3004,
            Class::UserAccessManagement => 3005,
            Class::GroupManagement => 3006,
            Class::WebResourcesActivity => 6001,
            Class::ApiActivity => 6003,
        }
    }

    pub const fn category_uid(self) -> u32 {
        self.uid() / 1000
    }

    /// Whether the class (without profiles) has `src_endpoint` and
    /// `http_request`. Base Event has neither.
    pub const fn has_network_fields(self) -> bool {
        !matches!(self, Class::Base)
    }

    /// Classes where `actor` exists only through the `host` profile
    /// (section 1, trap 1), so `metadata.profiles` must list it.
    pub const fn needs_host_profile(self) -> bool {
        matches!(self, Class::Base | Class::WebResourcesActivity)
    }

    /// The caption of an activity id in this class (the value `activity_name`
    /// must carry). `None` for 99 Other, whose name is the source's own value.
    pub fn activity_caption(self, id: u8) -> Option<&'static str> {
        let caption = match (self, id) {
            (_, 0) => "Unknown",
            (_, 99) => return None,
            (Class::AccountChange, 1) => "Create",
            (Class::AccountChange, 2) => "Enable",
            (Class::AccountChange, 3) => "Password Change",
            (Class::AccountChange, 4) => "Password Reset",
            (Class::AccountChange, 5) => "Disable",
            (Class::AccountChange, 6) => "Delete",
            (Class::AccountChange, 7) => "Attach Policy",
            (Class::AccountChange, 8) => "Detach Policy",
            (Class::AccountChange, 9) => "Lock",
            (Class::AccountChange, 10) => "MFA Factor Enable",
            (Class::AccountChange, 11) => "MFA Factor Disable",
            (Class::AccountChange, 12) => "Unlock",
            (Class::Authentication, 1) => "Logon",
            (Class::Authentication, 2) => "Logoff",
            (Class::Authentication, 3) => "Authentication Ticket",
            (Class::Authentication, 4) => "Service Ticket Request",
            (Class::Authentication, 5) => "Service Ticket Renew",
            (Class::Authentication, 6) => "Preauth",
            (Class::Authentication, 7) => "Account Switch",
            (Class::EntityManagement, 1) => "Create",
            (Class::EntityManagement, 2) => "Read",
            (Class::EntityManagement, 3) => "Update",
            (Class::EntityManagement, 4) => "Delete",
            (Class::EntityManagement, 5) => "Move",
            (Class::EntityManagement, 6) => "Enroll",
            (Class::EntityManagement, 7) => "Unenroll",
            (Class::EntityManagement, 8) => "Enable",
            (Class::EntityManagement, 9) => "Disable",
            (Class::EntityManagement, 10) => "Activate",
            (Class::EntityManagement, 11) => "Deactivate",
            (Class::EntityManagement, 12) => "Suspend",
            (Class::EntityManagement, 13) => "Resume",
            (Class::UserAccessManagement, 1) => "Assign Privileges",
            (Class::UserAccessManagement, 2) => "Revoke Privileges",
            (Class::GroupManagement, 1) => "Assign Privileges",
            (Class::GroupManagement, 2) => "Revoke Privileges",
            (Class::GroupManagement, 3) => "Add User",
            (Class::GroupManagement, 4) => "Remove User",
            (Class::GroupManagement, 5) => "Delete",
            (Class::GroupManagement, 6) => "Create",
            (Class::GroupManagement, 7) => "Add Subgroup",
            (Class::GroupManagement, 8) => "Remove Subgroup",
            (Class::WebResourcesActivity, 1) => "Create",
            (Class::WebResourcesActivity, 2) => "Read",
            (Class::WebResourcesActivity, 3) => "Update",
            (Class::WebResourcesActivity, 4) => "Delete",
            (Class::WebResourcesActivity, 5) => "Search",
            (Class::WebResourcesActivity, 6) => "Import",
            (Class::WebResourcesActivity, 7) => "Export",
            (Class::WebResourcesActivity, 8) => "Share",
            (Class::ApiActivity, 1) => "Create",
            (Class::ApiActivity, 2) => "Read",
            (Class::ApiActivity, 3) => "Update",
            (Class::ApiActivity, 4) => "Delete",
            _ => return None,
        };
        Some(caption)
    }

    /// The activity id a verb means in this class; 99 Other when the class
    /// has no matching activity.
    pub fn activity_for(self, verb: Verb) -> u8 {
        use Verb::*;
        match self {
            Class::Base | Class::Authentication => 99,
            Class::AccountChange => match verb {
                Create | Add => 1,
                Enable | Activate => 2,
                Disable | Deactivate | Suspend => 5,
                Delete | Remove => 6,
                _ => 99,
            },
            Class::EntityManagement => match verb {
                Create | Upload | Add => 1,
                Read => 2,
                Update => 3,
                Delete | Remove | Revoke => 4,
                Enroll => 6,
                Unenroll => 7,
                Enable => 8,
                Disable | Archive => 9,
                Activate => 10,
                Deactivate => 11,
                Suspend => 12,
                Resume => 13,
                _ => 99,
            },
            Class::UserAccessManagement => match verb {
                Grant | Assign | Add => 1,
                Revoke | Unassign | Remove => 2,
                _ => 99,
            },
            Class::GroupManagement => match verb {
                Grant | Assign => 1,
                Revoke | Unassign => 2,
                Add => 3,
                Remove => 4,
                Delete => 5,
                Create => 6,
                _ => 99,
            },
            Class::WebResourcesActivity => match verb {
                Create | Upload | Add => 1,
                Read => 2,
                Update | Archive => 3,
                Delete | Remove => 4,
                Search => 5,
                Import => 6,
                Export => 7,
                Share => 8,
                _ => 99,
            },
            Class::ApiActivity => match verb {
                Create | Upload | Add => 1,
                Read => 2,
                Update => 3,
                Delete | Remove | Revoke => 4,
                _ => 99,
            },
        }
    }
}

/// What an activity type's suffix says was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Create,
    Upload,
    Add,
    Read,
    Update,
    Delete,
    Remove,
    Revoke,
    Enable,
    Disable,
    Activate,
    Deactivate,
    Archive,
    Suspend,
    Resume,
    Share,
    Export,
    Import,
    Search,
    Enroll,
    Unenroll,
    Grant,
    Assign,
    Unassign,
    Other,
}

/// Suffixes of more than one word, checked before the last word alone
/// (`claude_chat_access_failed` is a failed Read, not a "failed").
const PHRASES: &[(&str, Verb)] = &[
    ("_removed_from_allowlist", Verb::Disable),
    ("_sharing_updated", Verb::Share),
    ("_access_failed", Verb::Read),
    ("_deletion_failed", Verb::Delete),
    ("_addition_failed", Verb::Add),
    ("_removal_failed", Verb::Remove),
    ("_add_initiated", Verb::Add),
    ("_delete_initiated", Verb::Delete),
    ("_export_started", Verb::Export),
    ("_export_completed", Verb::Export),
    ("_export_accessed", Verb::Read),
    ("_content_downloaded", Verb::Read),
    ("_search_performed", Verb::Search),
];

/// The verb a type's last word means.
fn word_verb(word: &str) -> Verb {
    match word {
        "created" | "generated" | "minted" | "provisioned" | "duplicated" | "registered"
        | "installed" => Verb::Create,
        "uploaded" => Verb::Upload,
        "added" => Verb::Add,
        "viewed" | "accessed" | "listed" | "downloaded" | "revealed" => Verb::Read,
        "updated" | "changed" | "replaced" | "renamed" | "rotated" | "edited" | "modified"
        | "configured" | "regenerated" | "restored" | "toggled" | "set" | "upgraded"
        | "downgraded" => Verb::Update,
        "deleted" => Verb::Delete,
        "removed" => Verb::Remove,
        "revoked" => Verb::Revoke,
        "enabled" | "allowlisted" | "unblocked" => Verb::Enable,
        "disabled" | "blocklisted" => Verb::Disable,
        "activated" | "reactivated" => Verb::Activate,
        "deactivated" => Verb::Deactivate,
        "archived" => Verb::Archive,
        "paused" | "suspended" => Verb::Suspend,
        "unpaused" | "resumed" => Verb::Resume,
        "shared" | "published" => Verb::Share,
        "exported" => Verb::Export,
        "imported" => Verb::Import,
        "searched" => Verb::Search,
        "enrolled" => Verb::Enroll,
        "unenrolled" => Verb::Unenroll,
        "granted" => Verb::Grant,
        "assigned" => Verb::Assign,
        "unassigned" => Verb::Unassign,
        _ => Verb::Other,
    }
}

/// The verb of an activity type and the noun before it
/// (`mcp_server_deleted` -> (Delete, "mcp_server")). A type whose ending is
/// not a known verb is `Other`, with the last word dropped from the noun all
/// the same (`subscription_renewed` -> "subscription").
pub fn split_verb(activity_type: &str) -> (Verb, &str) {
    for (phrase, verb) in PHRASES {
        if let Some(noun) = activity_type.strip_suffix(phrase)
            && !noun.is_empty()
        {
            return (*verb, noun);
        }
    }
    let Some((noun, word)) = activity_type.rsplit_once('_') else {
        return (Verb::Other, activity_type);
    };
    if noun.is_empty() {
        return (Verb::Other, activity_type);
    }
    (word_verb(word), noun)
}

/// `status_id` from the type's suffix (section 4.1): `_failed` is a
/// Failure, `_initiated`/`_attempted` have no outcome yet, the rest
/// succeeded (the feed records what happened).
pub fn status_from_suffix(activity_type: &str) -> u8 {
    if activity_type.ends_with("_failed") {
        2
    } else if activity_type.ends_with("_initiated") || activity_type.ends_with("_attempted") {
        0
    } else {
        1
    }
}

pub fn status_caption(id: u8) -> &'static str {
    match id {
        1 => "Success",
        2 => "Failure",
        _ => "Unknown",
    }
}

/// The caption of a severity id; `None` for ids outside the enum and for 99,
/// whose caption must be the source's own value (there is none).
pub fn severity_caption(id: u8) -> Option<&'static str> {
    Some(match id {
        0 => "Unknown",
        1 => "Informational",
        2 => "Low",
        3 => "Medium",
        4 => "High",
        5 => "Critical",
        6 => "Fatal",
        _ => return None,
    })
}

pub fn is_valid_severity(id: u8) -> bool {
    id <= 6 || id == 99
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_verbs_and_nouns() {
        assert_eq!(
            split_verb("mcp_server_deleted"),
            (Verb::Delete, "mcp_server")
        );
        assert_eq!(
            split_verb("claude_chat_access_failed"),
            (Verb::Read, "claude_chat")
        );
        assert_eq!(
            split_verb("desktop_extension_removed_from_allowlist"),
            (Verb::Disable, "desktop_extension")
        );
        assert_eq!(
            split_verb("subscription_renewed"),
            (Verb::Other, "subscription")
        );
        assert_eq!(split_verb("unknown"), (Verb::Other, "unknown"));
        assert_eq!(split_verb("_created"), (Verb::Other, "_created"));
        assert_eq!(
            split_verb("org_data_export_started"),
            (Verb::Export, "org_data")
        );
    }

    #[test]
    fn delete_differs_per_class() {
        assert_eq!(Class::AccountChange.activity_for(Verb::Delete), 6);
        assert_eq!(Class::GroupManagement.activity_for(Verb::Delete), 5);
        assert_eq!(Class::EntityManagement.activity_for(Verb::Delete), 4);
        assert_eq!(Class::WebResourcesActivity.activity_for(Verb::Delete), 4);
        assert_eq!(Class::ApiActivity.activity_for(Verb::Delete), 4);
        assert_eq!(Class::Base.activity_for(Verb::Delete), 99);
    }

    #[test]
    fn every_mapped_activity_has_a_caption() {
        let classes = [
            Class::AccountChange,
            Class::EntityManagement,
            Class::UserAccessManagement,
            Class::GroupManagement,
            Class::WebResourcesActivity,
            Class::ApiActivity,
        ];
        let verbs = [
            Verb::Create,
            Verb::Upload,
            Verb::Add,
            Verb::Read,
            Verb::Update,
            Verb::Delete,
            Verb::Remove,
            Verb::Revoke,
            Verb::Enable,
            Verb::Disable,
            Verb::Activate,
            Verb::Deactivate,
            Verb::Archive,
            Verb::Suspend,
            Verb::Resume,
            Verb::Share,
            Verb::Export,
            Verb::Import,
            Verb::Search,
            Verb::Enroll,
            Verb::Unenroll,
            Verb::Grant,
            Verb::Assign,
            Verb::Unassign,
            Verb::Other,
        ];
        for class in classes {
            for verb in verbs {
                let id = class.activity_for(verb);
                assert!(
                    id == 99 || class.activity_caption(id).is_some(),
                    "{class:?} {verb:?} -> {id} has no caption"
                );
            }
        }
    }

    #[test]
    fn status_suffixes() {
        assert_eq!(status_from_suffix("sso_login_failed"), 2);
        assert_eq!(status_from_suffix("sso_login_initiated"), 0);
        assert_eq!(status_from_suffix("anonymous_mobile_login_attempted"), 0);
        assert_eq!(status_from_suffix("sso_login_succeeded"), 1);
    }
}
