//! What a detection rule is, independent of how it is evaluated: its stable
//! id, title, description, severity, ATT&CK tags, the vendors whose
//! published logic it restates, its kind and where it came from.

use std::fmt;
use std::path::PathBuf;

/// A finding's severity: the Sigma `level` of the rule (or the operator's
/// override), which is also OCSF's `severity_id` scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Informational,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// OCSF `severity_id` (1 Informational … 5 Critical).
    pub fn ocsf_id(self) -> u8 {
        match self {
            Severity::Informational => 1,
            Severity::Low => 2,
            Severity::Medium => 3,
            Severity::High => 4,
            Severity::Critical => 5,
        }
    }

    /// OCSF `severity` caption.
    pub fn caption(self) -> &'static str {
        match self {
            Severity::Informational => "Informational",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        }
    }

    /// The Sigma `level` spelling (also what the configuration takes).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Reads a Sigma level or the configuration's spelling ("info" too).
    pub fn parse(text: &str) -> Option<Severity> {
        match text.trim().to_ascii_lowercase().as_str() {
            "informational" | "info" => Some(Severity::Informational),
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

impl From<rsigma_parser::Level> for Severity {
    fn from(level: rsigma_parser::Level) -> Severity {
        match level {
            rsigma_parser::Level::Informational => Severity::Informational,
            rsigma_parser::Level::Low => Severity::Low,
            rsigma_parser::Level::Medium => Severity::Medium,
            rsigma_parser::Level::High => Severity::High,
            rsigma_parser::Level::Critical => Severity::Critical,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a rule decides to fire (detections.md §0 "Kind").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// One activity matches (Sigma detection rule).
    Single,
    /// At least N matching activities per group in a sliding window (Sigma `event_count`).
    Count,
    /// At least N distinct values per group in a sliding window (Sigma `value_count`).
    Distinct,
    /// Matches of several detections in order within a window (Sigma `temporal_ordered`).
    Sequence,
    /// Two geolocated activities of one identity too far apart for the time between them.
    GeoVelocity,
    /// A value not seen in matching activities over a history ("new terms").
    FirstSeen,
    /// A matching activity for which the directory context, as of its
    /// time, shows a condition (departed actor, non-admin actor, invitee
    /// outside the verified domains).
    Directory,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Single => "single",
            Kind::Count => "count",
            Kind::Distinct => "distinct",
            Kind::Sequence => "sequence",
            Kind::GeoVelocity => "geo-velocity",
            Kind::FirstSeen => "first-seen",
            Kind::Directory => "directory",
        }
    }

    /// Whether the rule has a count threshold the operator may override.
    pub fn has_threshold(self) -> bool {
        matches!(self, Kind::Count | Kind::Distinct)
    }

    /// Whether the rule has a window (or history) the operator may override.
    pub fn has_window(self) -> bool {
        !matches!(self, Kind::Single | Kind::Directory)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a rule was loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The pack compiled into the binary (`rules/<file>` in the repository).
    BuiltIn(&'static str),
    /// A `*.yml` file in one of the operator's `rule_dirs`.
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::BuiltIn(file) => write!(f, "built-in (rules/{file})"),
            Origin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// One MITRE ATT&CK reference from a rule's Sigma tags (`attack.<tactic>`,
/// `attack.t1078`, `attack.t1078.004`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attack {
    /// Tactic id and name, e.g. ("TA0005", "Defense Evasion").
    pub tactic: Option<(&'static str, &'static str)>,
    /// Technique id as tagged, upper-cased ("T1562" or "T1562.008").
    pub technique: Option<String>,
}

/// The ATT&CK Enterprise tactics by their Sigma tag spelling.
const TACTICS: &[(&str, &str, &str)] = &[
    ("reconnaissance", "TA0043", "Reconnaissance"),
    ("resource_development", "TA0042", "Resource Development"),
    ("initial_access", "TA0001", "Initial Access"),
    ("execution", "TA0002", "Execution"),
    ("persistence", "TA0003", "Persistence"),
    ("privilege_escalation", "TA0004", "Privilege Escalation"),
    ("defense_evasion", "TA0005", "Defense Evasion"),
    ("credential_access", "TA0006", "Credential Access"),
    ("discovery", "TA0007", "Discovery"),
    ("lateral_movement", "TA0008", "Lateral Movement"),
    ("collection", "TA0009", "Collection"),
    ("command_and_control", "TA0011", "Command and Control"),
    ("exfiltration", "TA0010", "Exfiltration"),
    ("impact", "TA0040", "Impact"),
];

/// Reads the ATT&CK references of a rule's tags: one entry per tactic,
/// paired with the techniques in tag order (a rule usually names one of
/// each); a technique without a tactic stands alone. Unknown `attack.*`
/// tags are an error naming the tag.
pub fn attacks_from_tags(tags: &[String]) -> Result<Vec<Attack>, String> {
    let mut tactics = Vec::new();
    let mut techniques = Vec::new();
    for tag in tags {
        let Some(rest) = tag.strip_prefix("attack.") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase().replace('-', "_");
        if let Some(&(_, uid, name)) = TACTICS.iter().find(|(tag, _, _)| *tag == rest) {
            tactics.push((uid, name));
        } else if is_technique(&rest) {
            techniques.push(rest.to_ascii_uppercase());
        } else if rest.starts_with('g') || rest.starts_with('s') {
            // Groups (attack.g0016) and software (attack.s0154): not attacks.
            continue;
        } else {
            return Err(format!(
                "tag {tag:?} is neither an ATT&CK tactic (attack.defense_evasion, ...) nor a \
                 technique (attack.t1562, attack.t1562.008)"
            ));
        }
    }
    let mut out = Vec::new();
    let n = tactics.len().max(techniques.len());
    for i in 0..n {
        out.push(Attack {
            tactic: tactics.get(i).copied(),
            technique: techniques.get(i).cloned(),
        });
    }
    Ok(out)
}

fn is_technique(tag: &str) -> bool {
    let Some(digits) = tag.strip_prefix('t') else {
        return false;
    };
    let (main, sub) = match digits.split_once('.') {
        Some((m, s)) => (m, Some(s)),
        None => (digits, None),
    };
    main.len() == 4
        && main.bytes().all(|b| b.is_ascii_digit())
        && sub.is_none_or(|s| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
}

/// Everything about a rule that does not change how it evaluates.
#[derive(Debug, Clone)]
pub struct RuleMeta {
    /// Stable kebab-case id (the ids of detections.md for the built-in pack).
    pub id: String,
    pub title: String,
    pub description: String,
    /// The rule's own severity (before any override).
    pub severity: Severity,
    pub attacks: Vec<Attack>,
    /// Vendors whose published logic the rule restates (elastic, panther, ...).
    pub vendors: Vec<String>,
    /// The logic in one line, for `claudit rules list` and the README table.
    pub logic: String,
    pub kind: Kind,
    pub origin: Origin,
    /// 1-based line of the rule's document in its file.
    pub line: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_pair_tactics_with_techniques() {
        let tags: Vec<String> = ["attack.defense_evasion", "attack.t1562.008", "cve.2024"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let attacks = attacks_from_tags(&tags).unwrap();
        assert_eq!(
            attacks,
            vec![Attack {
                tactic: Some(("TA0005", "Defense Evasion")),
                technique: Some("T1562.008".to_string())
            }]
        );
        let bad = vec!["attack.evasion".to_string()];
        assert!(
            attacks_from_tags(&bad)
                .unwrap_err()
                .contains("attack.evasion")
        );
    }

    #[test]
    fn severities_follow_ocsf_ids_and_sigma_levels() {
        for (i, s) in Severity::ALL.iter().enumerate() {
            assert_eq!(usize::from(s.ocsf_id()), i + 1);
            assert_eq!(Severity::parse(s.as_str()), Some(*s));
        }
        assert_eq!(Severity::parse("Info"), Some(Severity::Informational));
        assert_eq!(Severity::parse("severe"), None);
    }
}
