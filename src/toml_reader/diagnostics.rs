//! The diagnostics of one load: the file and its lines, every problem and
//! notice with its key path, the environment asked, and the "did you mean"
//! of a misspelt name.

use std::fmt;

use super::*;

/// Shared state of one load: where problems go, and what the environment
/// answered.
pub(crate) struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    pub errors: Vec<ConfigError>,
    /// Settings accepted without effect (`Config::notices`).
    pub notices: Vec<ConfigError>,
    /// Every `CLAUDIT_*` override name looked up, to catch unused ones.
    pub overrides_seen: BTreeSet<String>,
    /// Check the paths against the file system (see `load_inner`).
    pub probe_files: bool,
}

impl<'a> Ctx<'a> {
    pub fn new(file: &'a Path, text: &'a str, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Ctx {
            file,
            text,
            env,
            errors: Vec::new(),
            notices: Vec::new(),
            overrides_seen: BTreeSet::new(),
            probe_files: false,
        }
    }

    pub fn file(&self) -> &Path {
        self.file
    }

    /// 1-based line of a byte offset in the text.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub fn error(
        &mut self,
        key: impl Into<String>,
        line: Option<usize>,
        message: impl Into<String>,
    ) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            key: key.into(),
            message: message.into(),
            line,
        });
    }

    /// A setting accepted without effect, and what to do about it.
    pub fn notice(
        &mut self,
        key: impl Into<String>,
        line: Option<usize>,
        message: impl Into<String>,
    ) {
        self.notices.push(ConfigError {
            file: self.file.to_path_buf(),
            key: key.into(),
            message: message.into(),
            line,
        });
    }

    /// A path from the file; relative ones are taken from the file's directory.
    pub fn resolve_path(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        match self.file.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }

    pub(super) fn lookup(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }
}

/// The candidate closest to `name` by edit distance, if close enough to
/// be a likely typo.
pub(crate) fn closest<'c>(
    name: &str,
    candidates: impl Iterator<Item = &'c str>,
) -> Option<&'c str> {
    let name = name.to_ascii_lowercase();
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .map(|c| (edit_distance(&name, &c.to_ascii_lowercase()), c))
        .filter(|&(d, c)| {
            let c = c.to_ascii_lowercase();
            let prefix =
                name.len().min(c.len()) >= 3 && (name.starts_with(&c) || c.starts_with(&name));
            (d <= limit && d < c.len()) || prefix
        })
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration file.
    pub file: PathBuf,
    /// Where in the file: `sources[1].window`, `state.retention`, or the
    /// name of an environment variable; empty for a syntax error.
    pub key: String,
    /// What is wrong and what to write instead.
    pub message: String,
    /// 1-based line in the file, when the problem is at a place in it.
    pub line: Option<usize>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration, not just the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
