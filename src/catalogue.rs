//! The catalogue of activity types (fixtures/activity-types.json, a copy of
//! shared/spec/activity-types.json, itself spec/compliance-api.md §3.3 as
//! data): what the simulator generates and what detection rules are checked
//! against.

use std::sync::OnceLock;

use serde::Deserialize;

const CATALOGUE_JSON: &str = include_str!("../fixtures/activity-types.json");

/// One catalogued activity type.
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogueType {
    /// The activity `type` string.
    #[serde(rename = "type")]
    pub name: String,
    /// The spec's grouping (e.g. "Authentication & sessions").
    pub category: String,
    /// Known type-specific fields (often incomplete; empty when unknown).
    pub fields: Vec<CatalogueField>,
    /// Whether the type is in the API reference's `activity_types` enum.
    pub in_enum: bool,
    /// Retired types are no longer emitted but old records may remain.
    pub retired: bool,
}

/// One known field of a catalogued type.
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogueField {
    pub name: String,
    /// The documented values, when the field is an enum.
    #[serde(default, rename = "enum")]
    pub values: Vec<String>,
    /// The keys of an object-valued field.
    #[serde(default)]
    pub subkeys: Vec<String>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Deserialize)]
struct CatalogueFile {
    types: Vec<CatalogueType>,
}

/// Every catalogued type, parsed once from the embedded fixture.
pub fn catalogue() -> &'static [CatalogueType] {
    static CATALOGUE: OnceLock<Vec<CatalogueType>> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        // The fixture is compiled in; a parse failure is a build defect that
        // every test of this module reports at once.
        let file: CatalogueFile = serde_json::from_str(CATALOGUE_JSON)
            .expect("fixtures/activity-types.json is valid (embedded at build time)");
        file.types
    })
}
