//! Values as they are written in the file: `${VAR}` expansion, sizes and
//! durations in their units, header-safe text, and the text and secret a
//! key gave (never shown when it came from the environment).

use super::*;

/// A string value after `${VAR}` expansion. Not `Debug`: it may be a secret.
pub(crate) struct Text {
    pub value: String,
    pub line: Option<usize>,
    /// Some part of the value came from the environment.
    pub uses_env: bool,
    /// The `CLAUDIT_*` override that supplied the whole value, if any.
    pub set_by: Option<String>,
}

impl Text {
    /// The value for a message: quoted when it was written in the file,
    /// never shown when any of it came from the environment (it could be a
    /// secret that ended up in the wrong key).
    pub fn shown(&self) -> String {
        if self.uses_env {
            "the value from the environment".to_string()
        } else {
            format!("{:?}", self.value)
        }
    }
}

/// A secret as read, with where it came from (for messages about it).
/// Not `Debug`: it holds the secret.
pub(super) struct FoundSecret {
    /// `api_key` or `api_key_file`: the key that gave it.
    pub key: String,
    pub line: Option<usize>,
    /// Some of it came from the environment.
    pub uses_env: bool,
    /// The file it was read from (`<key>_file`).
    pub file: Option<PathBuf>,
    pub secret: SecretString,
}

/// What makes `value` impossible as an HTTP header value, if anything:
/// a byte below 0x20 other than tab, or DEL (RFC 9110 field values).
pub(crate) fn header_value_problem(value: &str) -> Option<&'static str> {
    value.bytes().find_map(|b| match b {
        b'\n' | b'\r' => Some("a line break"),
        b'\t' => None,
        0..=31 | 127 => Some("a control character"),
        _ => None,
    })
}

/// Expands `${VAR}` from `env`; `$${` is a literal `${`. Returns the text
/// and whether any variable was used. Messages name the variable, never
/// its value.
pub(crate) fn expand(
    s: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, bool), String> {
    let mut out = String::with_capacity(s.len());
    let mut used = false;
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                return Err(
                    "\"${\" without a closing \"}\"; write ${NAME}, or $${ for a literal \"${\""
                        .to_string(),
                );
            };
            let name = &after[..end];
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "\"${{{name}}}\" is not a valid variable name; use letters, digits and \"_\", \
                     or write $${{ for a literal \"${{\""
                ));
            }
            match env(name) {
                Some(value) => out.push_str(&value),
                None => {
                    return Err(format!(
                        "environment variable {name} is not set; set it in claudit's \
                         environment (systemd Environment=/EnvironmentFile=, container env), \
                         or write $${{ for a literal \"${{\""
                    ));
                }
            }
            used = true;
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok((out, used))
}

/// Parses "100MB" (SI), "4MiB" (binary), "0", or a plain number of bytes.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(digits_end);
    if digits.is_empty() {
        return Err("expected a number followed by an optional unit".to_string());
    }
    let n: u64 = digits.parse().map_err(|_| "number too large".to_string())?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        other => return Err(format!("unknown unit {other:?}")),
    };
    n.checked_mul(multiplier)
        .ok_or_else(|| "size too large".to_string())
}

/// A duration as it is written in the file: "7d", "1h 30m", "250ms".
pub(crate) fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let parts = [
        (secs / 86_400, "d"),
        (secs / 3600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
        (u64::from(d.subsec_millis()), "ms"),
    ];
    let out: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if out.is_empty() {
        "0s".to_string()
    } else {
        out.join(" ")
    }
}

/// The shortest exact spelling of a size: "4MB", "4MiB", or bytes.
pub(crate) fn format_size(n: u64) -> String {
    const UNITS: [(u64, &str); 6] = [
        (1 << 30, "GiB"),
        (1_000_000_000, "GB"),
        (1 << 20, "MiB"),
        (1_000_000, "MB"),
        (1 << 10, "KiB"),
        (1_000, "KB"),
    ];
    for (size, unit) in UNITS {
        if n != 0 && n.is_multiple_of(size) {
            return format!("{}{unit}", n / size);
        }
    }
    n.to_string()
}
