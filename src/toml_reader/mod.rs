//! The generic spanned-TOML reader: it knows nothing of claudit's keys.
//! Reading a spanned TOML document key by key (`Table`), collecting every
//! problem with its key path and line (`diagnostics.rs`); the syntax of the
//! values themselves is in `syntax.rs`.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

mod diagnostics;
pub(crate) mod keys;
mod syntax;

#[cfg(test)]
pub(crate) use diagnostics::edit_distance;
pub use diagnostics::{ConfigError, ConfigErrors};
pub(crate) use diagnostics::{Ctx, closest};
use syntax::FoundSecret;
pub(crate) use syntax::{
    Text, expand, format_duration, format_size, header_value_problem, parse_size,
};

/// A value that may be absent, present, or present but wrong (already
/// reported).
pub(crate) enum Got<T> {
    Absent,
    Value(T),
    Invalid,
}

/// A scalar as found: in the file, or in a `CLAUDIT_*` override.
enum Raw<'t, 'i> {
    File(&'t Spanned<DeValue<'i>>),
    Env { var: String, text: String },
}

/// One TOML table being read. Remembers the keys asked for, so that what
/// is left over is reported as unknown.
pub(crate) struct Table<'t, 'i> {
    entries: Option<&'t DeTable<'i>>,
    /// Key path of this table: "", "state", "sources[0]".
    pub path: String,
    /// Line of the table header, for problems about missing keys.
    pub line: Option<usize>,
    /// `CLAUDIT_..._` prefix of overrides for this table's scalars, if any.
    env_prefix: Option<String>,
    known: Vec<String>,
}

impl<'t, 'i> Table<'t, 'i> {
    /// The document's top-level table; its scalars can be overridden by
    /// environment variables named `<env_prefix><KEY>`.
    pub fn root(doc: &'t DeTable<'i>, env_prefix: &str) -> Self {
        Table {
            entries: Some(doc),
            path: String::new(),
            line: None,
            env_prefix: Some(env_prefix.to_string()),
            known: Vec::new(),
        }
    }

    /// The full key path of one of this table's keys.
    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Enables `CLAUDIT_*` overrides for this table's scalars.
    pub fn set_env_prefix(&mut self, prefix: String) {
        self.env_prefix = Some(prefix);
    }

    /// Line of a key's value, else of the table.
    pub fn line_of_key(&self, cx: &Ctx, key: &str) -> Option<usize> {
        match self.entries.and_then(|e| e.get(key)) {
            Some(v) => Some(cx.line_of(v.span().start)),
            None => self.line,
        }
    }

    fn mark(&mut self, key: &str) {
        if !self.known.iter().any(|k| k == key) {
            self.known.push(key.to_string());
        }
    }

    fn raw(&mut self, cx: &mut Ctx, key: &str) -> Option<Raw<'t, 'i>> {
        self.mark(key);
        if let Some(prefix) = &self.env_prefix {
            let var = format!("{prefix}{}", key.to_uppercase());
            let found = cx.lookup(&var);
            cx.overrides_seen.insert(var.clone());
            if let Some(text) = found {
                return Some(Raw::Env { var, text });
            }
        }
        self.entries.and_then(|e| e.get(key)).map(Raw::File)
    }

    /// Records a problem with `key`; `var` names the override it came from.
    fn problem(
        &self,
        cx: &mut Ctx,
        key: &str,
        line: Option<usize>,
        var: Option<&str>,
        message: String,
    ) {
        let message = match var {
            Some(var) => format!("(set by {var}) {message}"),
            None => message,
        };
        cx.error(self.key_path(key), line, message);
    }

    /// A string, `${VAR}` expanded. Type errors never show the value.
    pub fn text(&mut self, cx: &mut Ctx, key: &str) -> Got<Text> {
        match self.raw(cx, key) {
            None => Got::Absent,
            Some(Raw::Env { var, text }) => Got::Value(Text {
                value: text,
                line: None,
                uses_env: true,
                set_by: Some(var),
            }),
            Some(Raw::File(v)) => {
                let line = Some(cx.line_of(v.span().start));
                match v.get_ref() {
                    DeValue::String(s) => self.expand_value(cx, key, s, line),
                    other => {
                        let msg = format!(
                            "expected a string, found {}; put the value in double quotes",
                            a(other.type_str())
                        );
                        self.problem(cx, key, line, None, msg);
                        Got::Invalid
                    }
                }
            }
        }
    }

    fn expand_value(&self, cx: &mut Ctx, key: &str, s: &str, line: Option<usize>) -> Got<Text> {
        match expand(s, &|name| cx.lookup(name)) {
            Ok((value, uses_env)) => Got::Value(Text {
                value,
                line,
                uses_env,
                set_by: None,
            }),
            Err(msg) => {
                self.problem(cx, key, line, None, msg);
                Got::Invalid
            }
        }
    }

    /// A string that must be present; `example` is what to write.
    pub fn required_text(&mut self, cx: &mut Ctx, key: &str, example: &str) -> Option<Text> {
        match self.text(cx, key) {
            Got::Value(t) => Some(t),
            Got::Invalid => None,
            Got::Absent => {
                let msg = format!("missing required key; add {key} = {example}");
                self.problem(cx, key, self.line, None, msg);
                None
            }
        }
    }

    /// A non-empty path, resolved against the file's directory.
    pub fn path(&mut self, cx: &mut Ctx, key: &str) -> Got<PathBuf> {
        match self.text(cx, key) {
            Got::Value(t) if t.value.is_empty() => {
                self.problem(
                    cx,
                    key,
                    t.line,
                    None,
                    "is empty; write a file path".to_string(),
                );
                Got::Invalid
            }
            Got::Value(t) => Got::Value(cx.resolve_path(&t.value)),
            Got::Absent => Got::Absent,
            Got::Invalid => Got::Invalid,
        }
    }

    /// A required path; `example` is what to write.
    pub fn required_path(&mut self, cx: &mut Ctx, key: &str, example: &str) -> Option<PathBuf> {
        match self.path(cx, key) {
            Got::Value(p) => Some(p),
            Got::Invalid => None,
            Got::Absent => {
                let msg = format!("missing required key; add {key} = {example}");
                self.problem(cx, key, self.line, None, msg);
                None
            }
        }
    }

    /// A duration like "5m", "1h 30m", "7d"; `default` when absent.
    pub fn duration(&mut self, cx: &mut Ctx, key: &str, default: Duration) -> Option<Duration> {
        let example = format_duration(default);
        let (text, var) = match self.raw(cx, key) {
            None => return Some(default),
            Some(Raw::Env { var, text }) => (
                Text {
                    value: text,
                    line: None,
                    uses_env: true,
                    set_by: None,
                },
                Some(var),
            ),
            Some(Raw::File(v)) => {
                let line = Some(cx.line_of(v.span().start));
                match v.get_ref() {
                    DeValue::String(s) => match self.expand_value(cx, key, s, line) {
                        Got::Value(t) => (t, None),
                        _ => return None,
                    },
                    DeValue::Integer(i) => {
                        let msg = format!(
                            "a duration needs a unit; write {key} = \"{i}s\" for seconds \
                             (or \"5m\", \"1h 30m\", \"7d\")"
                        );
                        self.problem(cx, key, line, None, msg);
                        return None;
                    }
                    other => {
                        let msg = format!(
                            "expected a duration string, found {}; write {key} = \"{example}\"",
                            a(other.type_str())
                        );
                        self.problem(cx, key, line, None, msg);
                        return None;
                    }
                }
            }
        };
        match humantime::parse_duration(text.value.trim()) {
            Ok(d) => Some(d),
            Err(e) => {
                // humantime's message quotes parts of the input: only for file text.
                let detail = if text.uses_env {
                    String::new()
                } else {
                    let e = e.to_string();
                    // Keep "unknown time unit \"minuets\"", not the list after it.
                    let e = e.split(", supported units").next().unwrap_or_default();
                    format!(" ({e})")
                };
                let msg = format!(
                    "{} is not a duration{detail}; write e.g. {key} = \"{example}\" \
                     (units: s, m, h, d; combine like \"1h 30m\")",
                    text.shown()
                );
                self.problem(cx, key, text.line, var.as_deref(), msg);
                None
            }
        }
    }

    /// A byte size: "100MB", "4MiB", "0", or a plain integer; `default` when absent.
    pub fn size(&mut self, cx: &mut Ctx, key: &str, default: u64) -> Option<u64> {
        let (text, var) = match self.raw(cx, key) {
            None => return Some(default),
            Some(Raw::Env { var, text }) => (
                Text {
                    value: text,
                    line: None,
                    uses_env: true,
                    set_by: None,
                },
                Some(var),
            ),
            Some(Raw::File(v)) => {
                let line = Some(cx.line_of(v.span().start));
                match v.get_ref() {
                    DeValue::String(s) => match self.expand_value(cx, key, s, line) {
                        Got::Value(t) => (t, None),
                        _ => return None,
                    },
                    DeValue::Integer(i) => match integer_value(i) {
                        Some(n) if n >= 0 => return Some(n as u64),
                        _ => {
                            let msg = format!(
                                "a size cannot be negative; write e.g. {key} = \"{}\"",
                                format_size(default)
                            );
                            self.problem(cx, key, line, None, msg);
                            return None;
                        }
                    },
                    other => {
                        let msg = format!(
                            "expected a size string, found {}; write e.g. {key} = \"{}\"",
                            a(other.type_str()),
                            format_size(default)
                        );
                        self.problem(cx, key, line, None, msg);
                        return None;
                    }
                }
            }
        };
        match parse_size(&text.value) {
            Ok(n) => Some(n),
            Err(e) => {
                let detail = if text.uses_env {
                    String::new()
                } else {
                    format!(" ({e})")
                };
                let msg = format!(
                    "{} is not a size{detail}; write e.g. {key} = \"{}\" \
                     (units: B, KB, MB, GB, KiB, MiB, GiB) or a plain number of bytes",
                    text.shown(),
                    format_size(default)
                );
                self.problem(cx, key, text.line, var.as_deref(), msg);
                None
            }
        }
    }

    /// An integer in `range`; `default` when absent. `note` explains the range.
    pub fn integer(
        &mut self,
        cx: &mut Ctx,
        key: &str,
        range: RangeInclusive<i64>,
        default: i64,
        note: &str,
    ) -> Option<i64> {
        // `shown` is how the value appears in a message: the number from
        // the file, nothing from the environment.
        let (n, shown, line, var) = match self.raw(cx, key) {
            None => return Some(default),
            Some(Raw::Env { var, text }) => match text.trim().parse::<i64>() {
                Ok(n) => (n, "the value".to_string(), None, Some(var)),
                Err(_) => {
                    let msg = format!(
                        "expected an integer from {} to {}; set it to e.g. {default}",
                        range.start(),
                        range.end()
                    );
                    self.problem(cx, key, None, Some(&var), msg);
                    return None;
                }
            },
            Some(Raw::File(v)) => {
                let line = Some(cx.line_of(v.span().start));
                match v.get_ref() {
                    // Beyond i64 is out of any range; i64::MAX stands for it.
                    DeValue::Integer(i) => (
                        integer_value(i).unwrap_or(i64::MAX),
                        i.to_string(),
                        line,
                        None,
                    ),
                    other => {
                        let quoted = if other.is_str() {
                            " without quotes"
                        } else {
                            ""
                        };
                        let msg = format!(
                            "expected an integer, found {}; write {key} = {default}{quoted}",
                            a(other.type_str())
                        );
                        self.problem(cx, key, line, None, msg);
                        return None;
                    }
                }
            }
        };
        if range.contains(&n) {
            Some(n)
        } else {
            let note = if note.is_empty() {
                String::new()
            } else {
                format!(" ({note})")
            };
            let msg = format!(
                "{shown} is out of range; write a number from {} to {}{note}, e.g. {key} = {default}",
                range.start(),
                range.end()
            );
            self.problem(cx, key, line, var.as_deref(), msg);
            None
        }
    }

    /// `true` or `false`; `default` when absent.
    pub fn boolean(&mut self, cx: &mut Ctx, key: &str, default: bool) -> Option<bool> {
        match self.raw(cx, key) {
            None => Some(default),
            Some(Raw::Env { var, text }) => match text.trim() {
                "true" => Some(true),
                "false" => Some(false),
                _ => {
                    let msg = "expected true or false".to_string();
                    self.problem(cx, key, None, Some(&var), msg);
                    None
                }
            },
            Some(Raw::File(v)) => match v.get_ref() {
                DeValue::Boolean(b) => Some(*b),
                other => {
                    let line = Some(cx.line_of(v.span().start));
                    let msg = format!(
                        "expected true or false, found {}; write {key} = {default} (no quotes)",
                        a(other.type_str())
                    );
                    self.problem(cx, key, line, None, msg);
                    None
                }
            },
        }
    }

    /// An array of strings (`${VAR}` expanded), each passed to `check`,
    /// which returns what is wrong with it. Not overridable from the
    /// environment. `example` is what to write.
    pub fn string_list(
        &mut self,
        cx: &mut Ctx,
        key: &str,
        example: &str,
        check: fn(&Text) -> Option<String>,
    ) -> Got<Vec<String>> {
        self.mark(key);
        let Some(v) = self.entries.and_then(|e| e.get(key)) else {
            return Got::Absent;
        };
        let line = Some(cx.line_of(v.span().start));
        let DeValue::Array(items) = v.get_ref() else {
            let msg = format!(
                "expected an array of strings, found {}; write {key} = {example}",
                a(v.get_ref().type_str())
            );
            self.problem(cx, key, line, None, msg);
            return Got::Invalid;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            let item_line = Some(cx.line_of(item.span().start));
            match item.get_ref() {
                DeValue::String(s) => match self.expand_value(cx, &item_key, s, item_line) {
                    Got::Value(t) => match check(&t) {
                        None => out.push(t.value),
                        Some(msg) => {
                            self.problem(cx, &item_key, item_line, None, msg);
                            ok = false;
                        }
                    },
                    _ => ok = false,
                },
                other => {
                    let msg = format!(
                        "expected a string, found {}; write {key} = {example}",
                        a(other.type_str())
                    );
                    self.problem(cx, &item_key, item_line, None, msg);
                    ok = false;
                }
            }
        }
        if ok { Got::Value(out) } else { Got::Invalid }
    }

    /// A secret given inline as `key` (usually `"${VAR}"`) or read from the
    /// file named by `<key>_file`; exactly one of the two. Messages never
    /// contain the secret. `env_example` / `file_example` show what to write.
    pub fn secret(
        &mut self,
        cx: &mut Ctx,
        key: &str,
        env_example: &str,
        file_example: &str,
    ) -> Option<SecretString> {
        self.secret_from(cx, key, env_example, file_example)
            .map(|found| found.secret)
    }

    /// A secret sent as an HTTP header value (an API key, a token),
    /// read like [`Table::secret`]. Surrounding whitespace (a trailing
    /// newline from `echo` or an editor) is removed, as the clients do;
    /// a line break or another control character inside it is an error
    /// naming the key it came from, since no header can carry it and
    /// every request would fail.
    pub fn header_secret(
        &mut self,
        cx: &mut Ctx,
        key: &str,
        env_example: &str,
        file_example: &str,
    ) -> Option<SecretString> {
        use secrecy::ExposeSecret;
        let found = self.secret_from(cx, key, env_example, file_example)?;
        let value = found.secret.expose_secret().trim();
        let Some(what) = header_value_problem(value) else {
            return Some(SecretString::from(value.to_string()));
        };
        let origin = match (&found.file, found.uses_env) {
            (Some(file), _) => format!("the file {}", file.display()),
            (None, true) => "the environment variable's value".to_string(),
            (None, false) => "the value".to_string(),
        };
        let msg = format!(
            "contains {what}, which an HTTP header cannot carry, so every request would fail; \
             the key is one line of printable characters: remove the {what} from {origin}"
        );
        self.problem(cx, &found.key, found.line, None, msg);
        None
    }

    fn secret_from(
        &mut self,
        cx: &mut Ctx,
        key: &str,
        env_example: &str,
        file_example: &str,
    ) -> Option<FoundSecret> {
        let file_key = format!("{key}_file");
        let inline = self.text(cx, key);
        let from_file = self.text(cx, &file_key);
        match (inline, from_file) {
            (Got::Invalid, _) | (_, Got::Invalid) => None,
            (Got::Value(t), Got::Value(_)) => {
                let msg = format!("both {key} and {file_key} are set; keep exactly one of them");
                self.problem(cx, key, t.line, None, msg);
                None
            }
            (Got::Absent, Got::Absent) => {
                let msg = format!(
                    "missing; add {key} = \"${{{env_example}}}\" (and set {env_example}) \
                     or {file_key} = \"{file_example}\""
                );
                self.problem(cx, key, self.line, None, msg);
                None
            }
            (Got::Value(t), Got::Absent) => {
                if t.value.is_empty() {
                    let msg = format!(
                        "is empty; set it to \"${{{env_example}}}\" with {env_example} set to the \
                         key, or use {file_key}"
                    );
                    self.problem(cx, key, t.line, None, msg);
                    None
                } else {
                    Some(FoundSecret {
                        key: key.to_string(),
                        line: t.line,
                        uses_env: t.uses_env,
                        file: None,
                        secret: SecretString::from(t.value),
                    })
                }
            }
            (Got::Absent, Got::Value(t)) => {
                let path = cx.resolve_path(&t.value);
                let fail = |why: String| {
                    format!(
                        "cannot read secret file {}: {why}; check {file_key} and that \
                         claudit may read the file",
                        path.display()
                    )
                };
                let secret = match std::fs::read(&path) {
                    Err(e) => Err(fail(e.to_string())),
                    Ok(bytes) => match String::from_utf8(bytes) {
                        Err(_) => Err(fail("not UTF-8 text".to_string())),
                        Ok(s) => {
                            let trimmed = s.trim_end_matches(['\n', '\r']);
                            if trimmed.is_empty() {
                                Err(format!(
                                    "secret file {} is empty; write the key into it",
                                    path.display()
                                ))
                            } else {
                                Ok(SecretString::from(trimmed.to_string()))
                            }
                        }
                    },
                };
                match secret {
                    Ok(secret) => Some(FoundSecret {
                        key: file_key,
                        line: t.line,
                        uses_env: false,
                        file: Some(path),
                        secret,
                    }),
                    Err(msg) => {
                        self.problem(cx, &file_key, t.line, None, msg);
                        None
                    }
                }
            }
        }
    }

    /// A sub-table such as `[state]`; an absent one reads as empty.
    pub fn subtable(&mut self, cx: &mut Ctx, key: &str) -> Table<'t, 'i> {
        self.mark(key);
        let mut child = Table {
            entries: None,
            path: self.key_path(key),
            line: None,
            env_prefix: self
                .env_prefix
                .as_ref()
                .map(|p| format!("{p}{}__", key.to_uppercase())),
            known: Vec::new(),
        };
        if let Some(v) = self.entries.and_then(|e| e.get(key)) {
            child.line = Some(cx.line_of(v.span().start));
            match v.get_ref() {
                DeValue::Table(t) => child.entries = Some(t),
                other => {
                    let msg = format!(
                        "expected a table, found {}; write a [{}] section",
                        a(other.type_str()),
                        child.path
                    );
                    self.problem(cx, key, child.line, None, msg);
                }
            }
        }
        child
    }

    /// An array of tables such as `[[sources]]`; absent reads as empty,
    /// `None` when it is something else (reported).
    pub fn array_of_tables(&mut self, cx: &mut Ctx, key: &str) -> Option<Vec<Table<'t, 'i>>> {
        self.mark(key);
        let Some(v) = self.entries.and_then(|e| e.get(key)) else {
            return Some(Vec::new());
        };
        let line = Some(cx.line_of(v.span().start));
        let DeValue::Array(items) = v.get_ref() else {
            let msg = format!(
                "expected an array of tables, found {}; write [[{key}]] (double brackets) \
                 before each entry",
                a(v.get_ref().type_str())
            );
            self.problem(cx, key, line, None, msg);
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_line = Some(cx.line_of(item.span().start));
            match item.get_ref() {
                DeValue::Table(t) => out.push(Table {
                    entries: Some(t),
                    path: format!("{}[{i}]", self.key_path(key)),
                    line: item_line,
                    env_prefix: None,
                    known: Vec::new(),
                }),
                other => {
                    let msg = format!(
                        "expected a table, found {}; write [[{key}]] followed by its keys",
                        a(other.type_str())
                    );
                    self.problem(cx, &format!("{key}[{i}]"), item_line, None, msg);
                }
            }
        }
        Some(out)
    }

    /// Every entry of a table whose keys are data (e.g. `[ocsf.severity]`),
    /// as integers: (key, value, line). Non-integers are reported.
    pub fn integer_entries(
        &mut self,
        cx: &mut Ctx,
        example: &str,
    ) -> Vec<(String, i64, Option<usize>)> {
        let mut out = Vec::new();
        let Some(entries) = self.entries else {
            return out;
        };
        for (k, v) in entries.iter() {
            let key = k.get_ref().to_string();
            self.mark(&key);
            let line = Some(cx.line_of(v.span().start));
            match v.get_ref() {
                DeValue::Integer(i) => out.push((key, integer_value(i).unwrap_or(i64::MAX), line)),
                other => {
                    let msg = format!(
                        "expected an integer, found {}; write {key} = {example}",
                        a(other.type_str())
                    );
                    self.problem(cx, &key, line, None, msg);
                }
            }
        }
        out
    }

    /// Every entry of a table whose keys are data (e.g. `[sinks.fields]`),
    /// as strings (`${VAR}` expanded): (key, value, line). `None` when
    /// any entry is not a string (reported).
    pub fn string_entries(
        &mut self,
        cx: &mut Ctx,
        example: &str,
    ) -> Option<Vec<(String, String, Option<usize>)>> {
        let mut out = Vec::new();
        let Some(entries) = self.entries else {
            return Some(out);
        };
        let mut ok = true;
        for (k, v) in entries.iter() {
            let key = k.get_ref().to_string();
            self.mark(&key);
            let line = Some(cx.line_of(v.span().start));
            match v.get_ref() {
                DeValue::String(s) => match self.expand_value(cx, &key, s, line) {
                    Got::Value(t) => out.push((key, t.value, line)),
                    _ => ok = false,
                },
                other => {
                    let msg = format!(
                        "expected a string, found {}; write {key} = {example}",
                        a(other.type_str())
                    );
                    self.problem(cx, &key, line, None, msg);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// Whether the table sets `key` (archive sink: `retention` without
    /// `object_lock_mode` is an error, not the default).
    pub fn has_key(&self, key: &str) -> bool {
        self.entries.is_some_and(|e| e.get(key).is_some())
    }

    /// Reports every key of this table that no reader asked for.
    pub fn finish(&self, cx: &mut Ctx) {
        let Some(entries) = self.entries else {
            return;
        };
        for (k, _) in entries.iter() {
            let key = k.get_ref().as_ref();
            if self.known.iter().any(|known| known == key) {
                continue;
            }
            let hint = match closest(key, self.known.iter().map(String::as_str)) {
                Some(near) => format!("did you mean {near}?"),
                None => format!("valid keys here: {}", self.known.join(", ")),
            };
            let line = Some(cx.line_of(k.span().start));
            cx.error(self.key_path(key), line, format!("unknown key; {hint}"));
        }
    }
}

/// "an integer", "a string", ...
fn a(type_name: &str) -> String {
    match type_name.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}

fn integer_value(i: &toml::de::DeInteger<'_>) -> Option<i64> {
    i64::from_str_radix(i.as_str(), i.radix()).ok()
}
