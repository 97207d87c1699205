//! What a key is, told by its prefix, and what to say when the API refuses
//! it; the removal of any `sk-ant-` token from text the API sent.

use secrecy::{ExposeSecret as _, SecretString};

use super::RateState;

/// The kind of key, told by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `sk-ant-api01-…`, created in claude.ai organization settings.
    ComplianceAccess,
    /// `sk-ant-admin01-…`, created in the Claude Console.
    Admin,
    /// `sk-ant-api03-…`: a Claude API key, which the Compliance API rejects.
    ClaudeApi,
    /// Some other `sk-ant-` key.
    OtherAnthropic,
    /// Not an Anthropic key format at all.
    Unrecognized,
}

impl KeyKind {
    pub fn of(key: &SecretString) -> KeyKind {
        let key = key.expose_secret().trim();
        if key.starts_with("sk-ant-api01-") {
            KeyKind::ComplianceAccess
        } else if key.starts_with("sk-ant-admin01-") {
            KeyKind::Admin
        } else if key.starts_with("sk-ant-api03-") {
            KeyKind::ClaudeApi
        } else if key.starts_with("sk-ant-") {
            KeyKind::OtherAnthropic
        } else {
            KeyKind::Unrecognized
        }
    }

    /// Whether the Compliance API can accept this kind of key at all.
    pub fn can_read_feed(self) -> bool {
        matches!(self, KeyKind::ComplianceAccess | KeyKind::Admin)
    }
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyKind::ComplianceAccess => "Compliance Access Key (sk-ant-api01-…)",
            KeyKind::Admin => "Admin API key (sk-ant-admin01-…)",
            KeyKind::ClaudeApi => {
                "Claude API key (sk-ant-api03-…), which the Compliance API does not accept"
            }
            KeyKind::OtherAnthropic => "Anthropic key of an unknown type (sk-ant-…)",
            KeyKind::Unrecognized => "unrecognized key format (Anthropic keys start with sk-ant-)",
        })
    }
}

/// What `check_key` found when the key was accepted.
#[derive(Debug, Clone)]
pub struct KeyCheck {
    pub key_kind: KeyKind,
    /// `request-id` of the successful call.
    pub request_id: Option<String>,
    /// Whether the feed returned at least one activity.
    pub sees_activities: bool,
    pub rate: RateState,
}

pub(super) const HINT_401_CLAUDE_API_KEY: &str = "this is a Claude API key (sk-ant-api03-…), which the Compliance API always rejects: create a Compliance Access Key (sk-ant-api01-…) with the read:compliance_activities scope in claude.ai > Organization settings > API, or an Admin API key (sk-ant-admin01-…) in the Claude Console";
pub(super) const HINT_401_UNKNOWN_KEY: &str = "the key is not a Compliance Access Key (sk-ant-api01-…) or an Admin API key (sk-ant-admin01-…), the only kinds the Compliance API accepts (a Claude API key sk-ant-api03-… is rejected); also check that the whole key was copied";
pub(super) const HINT_401_REJECTED: &str = "the key is invalid, revoked or deleted, or is not a Compliance Access Key (sk-ant-api01-…) or Admin API key (sk-ant-admin01-…) (a Claude API key sk-ant-api03-… is rejected): create a new key and update the source's api_key";
pub(super) const HINT_403_SCOPE: &str = "the key lacks the read:compliance_activities scope (the message lists the scopes it has, 'Got', and those needed); scopes cannot be changed, so create a new key with that scope";
pub(super) const HINT_403_ADMIN: &str = "an Admin API key carries read:compliance_activities only if it was created after the Compliance API was enabled, so create a new Admin key (or use a Compliance Access Key); or the Compliance API is disabled for the organization";
pub(super) const HINT_403_OTHER: &str = "the key lacks the read:compliance_activities scope (see 'Got'/'Needed' in the message), or it is an Admin API key created before the Compliance API was enabled, or the Compliance API is disabled for the organization";

pub(super) fn unauthorized_hint(status: u16, key_kind: KeyKind, message: &str) -> &'static str {
    let mentions_scope = message.to_ascii_lowercase().contains("scope");
    match (status, key_kind) {
        (401, KeyKind::ClaudeApi) => HINT_401_CLAUDE_API_KEY,
        // Older API revisions answered a missing scope with 401.
        (401, _) if mentions_scope => HINT_403_SCOPE,
        (401, KeyKind::OtherAnthropic | KeyKind::Unrecognized) => HINT_401_UNKNOWN_KEY,
        (401, _) => HINT_401_REJECTED,
        (_, KeyKind::Admin) => HINT_403_ADMIN,
        _ if mentions_scope => HINT_403_SCOPE,
        _ => HINT_403_OTHER,
    }
}

/// Replaces every `sk-ant-…` token with its prefix and `[REDACTED]`.
pub(super) fn redact_anthropic_keys(text: &str) -> String {
    const MARK: &str = "sk-ant-";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let after = &rest[at + MARK.len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(after.len());
        out.push_str(MARK);
        out.push_str("[REDACTED]");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}
