//! The dependency rules of ARCHITECTURE.md ("Architecture invariants"),
//! read from the source: every `crate::` path in the code that ships (test
//! modules and test-only files left out). A broken rule fails naming the
//! file and line of the import that breaks it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One use of another module of the crate.
#[derive(Debug, Clone)]
struct Import {
    /// The file, relative to `src/` (`sinks/datadog.rs`).
    file: String,
    line: usize,
    /// The path after `crate::` (`store::SharedStore`).
    path: String,
}

impl Import {
    /// The top-level module it reaches (`store`).
    fn target(&self) -> &str {
        self.path.split("::").next().unwrap_or_default()
    }
}

/// The top-level module a file belongs to (`sinks` for `sinks/file/mod.rs`,
/// `daemon` for `daemon.rs`).
fn module_of(file: &str) -> &str {
    let first = file.split('/').next().unwrap_or_default();
    first.strip_suffix(".rs").unwrap_or(first)
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/`, relative to it.
fn source_files() -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut files = Vec::new();
    walk(&src_dir(), &src_dir(), &mut files);
    files.sort();
    files
}

/// The files a `#[cfg(test)] mod name;` declares (test-only files).
fn test_only_files(files: &[String]) -> BTreeSet<String> {
    let mut test_only = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(src_dir().join(file)).unwrap();
        let dir = match file.rsplit_once('/') {
            Some((dir, "mod.rs")) => format!("{dir}/"),
            Some((dir, name)) => format!("{dir}/{}/", name.trim_end_matches(".rs")),
            None if file == "lib.rs" || file == "main.rs" => String::new(),
            None => format!("{}/", file.trim_end_matches(".rs")),
        };
        let mut cfg_test = false;
        for line in text.lines().map(str::trim) {
            if line == "#[cfg(test)]" {
                cfg_test = true;
                continue;
            }
            if cfg_test
                && let Some(name) = line
                    .strip_suffix(';')
                    .and_then(|l| l.rsplit_once("mod "))
                    .map(|(_, name)| name)
            {
                test_only.insert(format!("{dir}{name}.rs"));
                test_only.insert(format!("{dir}{name}/mod.rs"));
            }
            if !line.starts_with("#[") {
                cfg_test = false;
            }
        }
    }
    test_only
}

/// The `crate::` paths of the code that ships: everything but test-only
/// files, `#[cfg(test)]` items (up to their closing brace) and comments.
fn imports() -> Vec<Import> {
    let files = source_files();
    let test_only = test_only_files(&files);
    let mut out = Vec::new();
    for file in &files {
        if test_only.contains(file) || file == "lib.rs" || file == "main.rs" {
            continue;
        }
        let text = std::fs::read_to_string(src_dir().join(file)).unwrap();
        let mut skip_depth: Option<i64> = None;
        let mut cfg_test = false;
        // `use crate::{a, b::c};` spread over lines: the group being read.
        let mut group: Option<(usize, String)> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if let Some(depth) = skip_depth.as_mut() {
                *depth += line.matches('{').count() as i64 - line.matches('}').count() as i64;
                if *depth <= 0 {
                    skip_depth = None;
                }
                continue;
            }
            if line == "#[cfg(test)]" {
                cfg_test = true;
                continue;
            }
            if cfg_test && !line.starts_with("#[") {
                cfg_test = false;
                let opens = line.matches('{').count() as i64 - line.matches('}').count() as i64;
                if opens > 0 {
                    skip_depth = Some(opens);
                }
                continue;
            }
            if line.starts_with("//") {
                continue;
            }
            let code = line.split(" //").next().unwrap_or_default();
            if let Some((start, text)) = group.as_mut() {
                text.push_str(code);
                if code.contains(';') {
                    for top in group_names(text) {
                        out.push(Import {
                            file: file.clone(),
                            line: *start,
                            path: top,
                        });
                    }
                    group = None;
                }
                continue;
            }
            if let Some(rest) = code
                .strip_prefix("use crate::{")
                .or_else(|| code.strip_prefix("pub use crate::{"))
                .or_else(|| code.strip_prefix("pub(crate) use crate::{"))
            {
                if rest.contains(';') {
                    for top in group_names(rest) {
                        out.push(Import {
                            file: file.clone(),
                            line: i + 1,
                            path: top,
                        });
                    }
                } else {
                    group = Some((i + 1, rest.to_string()));
                }
                continue;
            }
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                let tail = &rest[at + "crate::".len()..];
                let end = tail
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(tail.len());
                let path = tail[..end].trim_end_matches(':').to_string();
                // `$crate::` in macros and `claudit::` are other things.
                let before = &rest[..at];
                if !before.ends_with('$') && !before.ends_with("claudit::") && !path.is_empty() {
                    out.push(Import {
                        file: file.clone(),
                        line: i + 1,
                        path,
                    });
                }
                rest = &tail[end..];
            }
        }
    }
    out
}

/// The paths of a `use crate::{...}` group, as written at its top level.
fn group_names(group: &str) -> Vec<String> {
    let mut names = Vec::new();
    let (mut depth, mut current) = (0, String::new());
    for c in group.chars() {
        match c {
            '{' => {
                depth += 1;
                current.push(c);
            }
            '}' if depth == 0 => break,
            '}' => {
                depth -= 1;
                current.push(c);
            }
            ',' if depth == 0 => {
                names.push(std::mem::take(&mut current));
            }
            c if !c.is_whitespace() => current.push(c),
            _ => {}
        }
    }
    names.push(current);
    names
        .into_iter()
        .map(|n| n.trim_end_matches(';').to_string())
        .filter(|n| !n.is_empty() && n != "self")
        .collect()
}

/// A rule: code in `files` (a module, or a file or folder path under
/// `src/`) does not import any of `forbidden` (module paths).
struct Rule {
    what: &'static str,
    files: &'static [&'static str],
    /// Files under `files` the rule does not cover, with the reason in
    /// ARCHITECTURE.md.
    except: &'static [&'static str],
    forbidden: &'static [&'static str],
}

fn covers(patterns: &[&str], file: &str) -> bool {
    patterns.iter().any(|p| {
        file == *p
            || file.starts_with(&format!("{}/", p.trim_end_matches('/')))
            || file == format!("{p}.rs")
    })
}

fn reaches(import: &Import, forbidden: &str) -> bool {
    import.path == forbidden || import.path.starts_with(&format!("{forbidden}::"))
}

const RULES: &[Rule] = &[
    Rule {
        what: "the store knows rows, not events nor where they go",
        files: &["store"],
        except: &[],
        forbidden: &[
            "ocsf",
            "sinks",
            "source",
            "detect",
            "directory",
            "enrich",
            "config",
            "daemon",
        ],
    },
    Rule {
        what: "destinations never touch the store (the sink task and the archive task do)",
        files: &[
            "sinks/contract",
            "sinks/http.rs",
            "sinks/datadog.rs",
            "sinks/elasticsearch.rs",
            "sinks/sentinel.rs",
            "sinks/splunk_hec.rs",
            "sinks/sumo.rs",
            "sinks/syslog",
            "sinks/webhook.rs",
            "sinks/file",
        ],
        except: &[],
        forbidden: &["store"],
    },
    Rule {
        what: "the delivery contract depends on no destination",
        files: &["sinks/contract"],
        except: &[],
        forbidden: &[
            "sinks::http",
            "sinks::datadog",
            "sinks::elasticsearch",
            "sinks::sentinel",
            "sinks::splunk_hec",
            "sinks::sumo",
            "sinks::syslog",
            "sinks::webhook",
            "sinks::file",
            "sinks::archive",
            "config",
        ],
    },
    Rule {
        what: "the archive format knows neither the sink that writes it nor the configuration \
               (the archive task and `claudit archive` hand it the opened backend and the store)",
        files: &["archive"],
        except: &[],
        forbidden: &["sinks", "config", "daemon"],
    },
    Rule {
        what: "detections do not deliver",
        files: &["detect"],
        except: &[],
        forbidden: &["sinks", "daemon"],
    },
    Rule {
        what: "OCSF mapping is pure: no journal, no delivery, no polling",
        files: &["ocsf"],
        except: &[],
        forbidden: &["store", "sinks", "source", "daemon"],
    },
    Rule {
        what: "the model is the bottom layer",
        files: &[
            "model.rs",
            "catalogue.rs",
            "body_limit.rs",
            "redact.rs",
            "toml_reader",
        ],
        except: &[],
        forbidden: &[
            "store",
            "sinks",
            "source",
            "daemon",
            "config",
            "ocsf",
            "detect",
            "directory",
            "enrich",
            "sim",
        ],
    },
    Rule {
        what: "the directory knows no API (its sync is source/directory_sync/)",
        files: &["directory"],
        except: &[],
        forbidden: &["source", "sinks", "daemon"],
    },
    Rule {
        what: "the configuration is above the sections it names",
        files: &[
            "source",
            "directory",
            "enrich",
            "ocsf",
            "health.rs",
            "detect",
            "sinks",
            "metrics.rs",
            "store",
            "toml_reader",
        ],
        except: &[],
        forbidden: &["config"],
    },
];

#[test]
fn every_dependency_rule_holds() {
    let imports = imports();
    assert!(
        imports
            .iter()
            .any(|i| i.file == "sinks/mod.rs" && i.target() == "store"),
        "the reader found no import at all: it is broken, not the code"
    );
    let mut broken = Vec::new();
    for rule in RULES {
        for import in &imports {
            if !covers(rule.files, &import.file) || covers(rule.except, &import.file) {
                continue;
            }
            if let Some(f) = rule.forbidden.iter().find(|f| reaches(import, f)) {
                broken.push(format!(
                    "src/{}:{}: crate::{} breaks \"{}\" ({} must not import {f})",
                    import.file,
                    import.line,
                    import.path,
                    rule.what,
                    rule.files.join(", ")
                ));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// The archive format has one home and one backend type: the writer
/// (`sinks/archive/`) and `claudit archive verify`/`export` both go through
/// `archive::Backend`, and nothing outside `archive/` reaches a backend
/// (`archive::local`, `archive::s3`) itself.
#[test]
fn the_archive_sink_writes_through_the_archive_format() {
    assert!(
        imports()
            .iter()
            .any(|i| i.file.starts_with("sinks/archive/") && i.target() == "archive"),
        "the archive sink no longer writes through archive/"
    );
    let mut direct = Vec::new();
    for file in source_files() {
        if module_of(&file) == "archive" {
            continue;
        }
        let text = std::fs::read_to_string(src_dir().join(&file)).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.trim();
            if code.starts_with("//") {
                continue;
            }
            for backend in ["LocalBackend", "S3Backend", "archive::local", "archive::s3"] {
                if code.contains(backend) {
                    direct.push(format!("src/{file}:{}: {backend}", i + 1));
                }
            }
        }
    }
    assert!(
        direct.is_empty(),
        "only archive/ may reach a backend; go through archive::Backend:\n{}",
        direct.join("\n")
    );
}

/// `sim/` (the simulated Compliance API) is for `claudit demo`, tests and
/// benches only: the daemon never links its answers into real data.
#[test]
fn the_simulator_is_used_only_by_the_demo() {
    let users: Vec<String> = imports()
        .into_iter()
        .filter(|i| i.target() == "sim" && !matches!(module_of(&i.file), "sim" | "demo"))
        .map(|i| format!("src/{}:{}: crate::{}", i.file, i.line, i.path))
        .collect();
    assert!(
        users.is_empty(),
        "only demo.rs (and tests and benches) may use sim/:\n{}",
        users.join("\n")
    );
}

/// The dependency graph between top-level modules, as module -> (module ->
/// first import).
fn module_graph(imports: &[Import]) -> BTreeMap<String, BTreeMap<String, Import>> {
    let mut graph: BTreeMap<String, BTreeMap<String, Import>> = BTreeMap::new();
    for import in imports {
        let from = module_of(&import.file).to_string();
        let to = import.target().to_string();
        if from != to {
            graph
                .entry(from)
                .or_default()
                .entry(to)
                .or_insert_with(|| import.clone());
        }
    }
    graph
}

/// The module edges that take part in an import cycle: an edge a -> b is
/// on a cycle when b reaches a.
fn cycle_edges(graph: &BTreeMap<String, BTreeMap<String, Import>>) -> BTreeMap<String, Import> {
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(m) = stack.pop() {
            if m == to {
                return true;
            }
            if seen.insert(m.clone())
                && let Some(next) = graph.get(&m)
            {
                stack.extend(next.keys().cloned());
            }
        }
        false
    };
    let mut edges = BTreeMap::new();
    for (from, tos) in graph {
        for (to, import) in tos {
            if reaches(to, from) {
                edges.insert(format!("{from} -> {to}"), import.clone());
            }
        }
    }
    edges
}

/// Import cycles between top-level modules allowed to remain: none. The
/// list only shrinks: a new cycle fails here naming the import that closed
/// it (move the shared thing to the lower module instead).
const KNOWN_CYCLE_EDGES: &[&str] = &[];

#[test]
fn no_new_import_cycle_between_top_level_modules() {
    let imports = imports();
    let edges = cycle_edges(&module_graph(&imports));
    let known: BTreeSet<&str> = KNOWN_CYCLE_EDGES.iter().copied().collect();
    let new: Vec<String> = edges
        .iter()
        .filter(|(edge, _)| !known.contains(edge.as_str()))
        .map(|(edge, i)| format!("{edge}: src/{}:{}: crate::{}", i.file, i.line, i.path))
        .collect();
    let gone: Vec<&str> = known
        .iter()
        .filter(|edge| !edges.contains_key(**edge))
        .copied()
        .collect();
    assert!(
        new.is_empty(),
        "imports that close a cycle between top-level modules:\n{}",
        new.join("\n")
    );
    assert!(
        gone.is_empty(),
        "these cycle edges are gone: remove them from KNOWN_CYCLE_EDGES: {gone:?}"
    );
}

/// The reader itself: groups, inline paths, comments and test modules.
#[test]
fn the_import_reader_reads_groups_and_skips_tests() {
    assert_eq!(
        group_names("store::{A, B}, ocsf::Mapper, self};"),
        ["store::{A,B}", "ocsf::Mapper"]
    );
    let imports = imports();
    assert!(
        !imports.iter().any(|i| i.file.ends_with("/tests.rs")),
        "test-only files are left out"
    );
}
