//! The weighted table the generator draws activity types from: the
//! catalogue (`crate::catalogue`) and types no catalogue knows yet.

use std::collections::HashMap;
use std::sync::OnceLock;

pub use crate::catalogue::{CatalogueField, CatalogueType, catalogue};
use crate::sim::rng::Rng;

/// Types that no catalogue knows yet: the feed is open-ended, and a consumer
/// must pass them through (spec §0.6). Each carries a few fields of its own.
pub(crate) const FUTURE_TYPES: &[(&str, &[&str])] = &[
    ("claude_notebook_created", &["claude_notebook_id", "title"]),
    (
        "claude_notebook_shared",
        &["claude_notebook_id", "audience"],
    ),
    (
        "org_retention_override_applied",
        &["retention_days", "reason"],
    ),
    (
        "claude_voice_session_started",
        &["voice_session_id", "surface"],
    ),
];

/// Relative frequencies of the everyday types. Every other catalogued type
/// gets `BASE_WEIGHT`, so over a large backlog all of them appear.
const COMMON_WEIGHTS: &[(&str, u64)] = &[
    ("claude_chat_viewed", 9000),
    ("claude_chat_created", 5000),
    ("claude_chat_updated", 1500),
    ("claude_project_viewed", 2000),
    ("claude_file_viewed", 1500),
    ("claude_file_uploaded", 1200),
    ("claude_artifact_viewed", 1200),
    ("claude_artifact_created", 600),
    ("claude_project_document_viewed", 600),
    ("claude_chat_snapshot_viewed", 200),
    ("claude_chat_deleted", 300),
    ("claude_project_created", 200),
    ("claude_chat_settings_updated", 200),
    ("sso_login_initiated", 1000),
    ("sso_login_succeeded", 900),
    ("magic_link_login_initiated", 400),
    ("magic_link_login_succeeded", 350),
    ("social_login_succeeded", 300),
    ("user_logged_out", 400),
    ("sso_login_failed", 80),
    ("magic_link_login_failed", 60),
    ("session_revoked", 50),
    ("compliance_api_accessed", 600),
    ("ccr_session_created", 150),
    ("ccr_session_updated", 150),
    ("cowork_session_updated", 150),
    ("claude_skill_enabled", 60),
    ("org_users_listed", 40),
    ("claude_project_sharing_updated", 40),
    ("claude_artifact_sharing_updated", 40),
];
const BASE_WEIGHT: u64 = 8;
const FUTURE_WEIGHT: u64 = 4;

/// Catalogue types followed by `FUTURE_TYPES`, indexed by `u16`.
pub(crate) struct TypeTable {
    names: Vec<&'static str>,
    fields: Vec<TypeFields>,
    cumulative: Vec<u64>,
    index: HashMap<&'static str, u16>,
}

#[derive(Clone, Copy)]
pub(crate) enum TypeFields {
    Catalogued(&'static [CatalogueField]),
    Future(&'static [&'static str]),
}

pub(crate) fn type_table() -> &'static TypeTable {
    static TABLE: OnceLock<TypeTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut names = Vec::new();
        let mut fields = Vec::new();
        let mut weights = Vec::new();
        let common: HashMap<&str, u64> = COMMON_WEIGHTS.iter().copied().collect();
        for t in catalogue() {
            names.push(t.name.as_str());
            fields.push(TypeFields::Catalogued(&t.fields));
            weights.push(common.get(t.name.as_str()).copied().unwrap_or(BASE_WEIGHT));
        }
        for (name, f) in FUTURE_TYPES {
            names.push(*name);
            fields.push(TypeFields::Future(f));
            weights.push(FUTURE_WEIGHT);
        }
        let mut total = 0;
        let cumulative = weights
            .iter()
            .map(|w| {
                total += w;
                total
            })
            .collect();
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, i as u16))
            .collect();
        TypeTable {
            names,
            fields,
            cumulative,
            index,
        }
    })
}

impl TypeTable {
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    pub(crate) fn name(&self, idx: u16) -> &'static str {
        self.names[idx as usize]
    }

    pub(crate) fn fields(&self, idx: u16) -> TypeFields {
        self.fields[idx as usize]
    }

    pub(crate) fn index_of(&self, name: &str) -> Option<u16> {
        self.index.get(name).copied()
    }

    /// A type drawn by weight.
    pub(crate) fn pick(&self, rng: &mut Rng) -> u16 {
        let total = *self.cumulative.last().unwrap_or(&1);
        let x = rng.below(total);
        self.cumulative.partition_point(|c| *c <= x) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_parses_with_all_518_types() {
        let c = catalogue();
        assert_eq!(c.len(), 518);
        assert_eq!(c.iter().filter(|t| t.in_enum).count(), 514);
        let reason = c.iter().find(|t| t.name == "anthropic_access").unwrap();
        let codes = reason
            .fields
            .iter()
            .find(|f| f.name == "reason_code")
            .unwrap();
        assert!(codes.values.contains(&"safety_review".to_string()));
    }

    #[test]
    fn weighted_names_and_future_types_are_consistent() {
        let table = type_table();
        for (name, _) in COMMON_WEIGHTS {
            assert!(table.index_of(name).is_some(), "{name} is not catalogued");
        }
        for (name, _) in FUTURE_TYPES {
            let idx = table.index_of(name).unwrap();
            assert!(
                idx as usize >= catalogue().len(),
                "{name} must not be catalogued"
            );
        }
        assert_eq!(table.len(), catalogue().len() + FUTURE_TYPES.len());
    }

    #[test]
    fn pick_prefers_common_types() {
        let table = type_table();
        let mut rng = Rng::new(3);
        let viewed = table.index_of("claude_chat_viewed").unwrap();
        let hits = (0..10_000)
            .filter(|_| table.pick(&mut rng) == viewed)
            .count();
        // 9000 of ~45k weight: about 20 %.
        assert!((1_000..3_000).contains(&hits), "{hits}");
    }
}
