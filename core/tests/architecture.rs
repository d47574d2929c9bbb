//! The shape of the core, checked on its source: imports among the top modules only go down (no
//! cycle), no file is over 600 lines without its tests, and no function of the capabilities
//! (transfer, messaging) is over 80 lines. A change that breaks one says where.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The most lines a file of `core/src` may have before its tests.
const MAX_FILE_LINES: usize = 600;
/// The most lines a function of `transfer` or `messaging` may have.
const MAX_FN_LINES: usize = 80;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("readable source dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The top module a file of `core/src` belongs to (`transfer` for `transfer/download/sink.rs`).
fn top_module(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib").then(|| name.to_string())
}

/// The lines of a file before its `#[cfg(test)]` module, comments dropped.
fn code_lines(text: &str) -> Vec<&str> {
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect()
}

/// The leading identifier of `text`.
fn head(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The first segment of every item of a `{…}` group at its own level (`a::B, c::{self, D}` gives
/// `a`, `c`).
fn group_heads(group: &str) -> Vec<String> {
    let mut items = Vec::new();
    let (mut depth, mut item) = (0usize, String::new());
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => items.push(std::mem::take(&mut item)),
            c if depth == 0 => item.push(c),
            _ => {}
        }
    }
    items.push(item);
    items
        .iter()
        .map(|i| head(i.trim()))
        .filter(|h| !h.is_empty())
        .collect()
}

/// The top modules named by `crate::…` paths in `line`, grouped imports included
/// (`use crate::{net::Net, store::Store}`).
fn crate_refs(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => out.extend(group_heads(group)),
            None => out.push(head(rest)),
        }
    }
    out
}

/// Which top module imports which.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = rust_files(&src());
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = top_module(file) else {
            continue;
        };
        let text = fs::read_to_string(file).expect("readable source");
        let targets = graph.entry(from.clone()).or_default();
        for line in code_lines(&text) {
            for to in crate_refs(line) {
                if to != from && modules.contains(&to) {
                    targets.insert(to);
                }
            }
        }
    }
    graph
}

/// A cycle in `graph`, as the modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|start| visit(start, graph, &mut Vec::new(), &mut done))
}

#[test]
fn imports_among_the_top_modules_only_go_down() {
    let graph = import_graph();
    assert!(
        graph.get("transfer").is_some_and(|t| t.contains("net")),
        "the graph is read: transfer imports net ({graph:?})"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("imports run in a circle: {}", cycle.join(" -> "));
    }
}

#[test]
fn a_cycle_is_found_and_named() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph
        .entry("net".into())
        .or_default()
        .insert("store".into());
    graph
        .entry("transfer".into())
        .or_default()
        .insert("net".into());
    assert_eq!(find_cycle(&graph), None);
    graph
        .entry("store".into())
        .or_default()
        .insert("transfer".into());
    let cycle = find_cycle(&graph).expect("a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4, "{cycle:?}");
    assert_eq!(
        crate_refs("use crate::{net::Net, store::{self, Store}}; crate::error::Error"),
        ["net", "store", "error"]
    );
}

#[test]
fn no_file_is_over_600_lines_without_its_tests() {
    let long: Vec<String> = rust_files(&src())
        .into_iter()
        .filter_map(|f| {
            let text = fs::read_to_string(&f).expect("readable source");
            let n = text
                .lines()
                .take_while(|l| l.trim() != "#[cfg(test)]")
                .count();
            (n > MAX_FILE_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these files: {long:?}");
}

/// The functions of a file longer than `max` lines: `(name, first line, lines)`.
fn long_functions(text: &str, max: usize) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text
        .lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(at) = trimmed.find("fn ") else {
            continue;
        };
        let before = &trimmed[..at];
        let is_item = before.split_whitespace().all(|w| {
            [
                "pub",
                "pub(crate)",
                "pub(super)",
                "async",
                "const",
                "unsafe",
            ]
            .contains(&w)
        });
        if !is_item || trimmed.ends_with(';') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let closing = " ".repeat(indent) + "}";
        let Some(len) = lines[i..].iter().position(|l| *l == closing) else {
            continue;
        };
        let name: String = trimmed[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if len + 1 > max {
            out.push((name, i + 1, len + 1));
        }
    }
    out
}

#[test]
fn no_function_of_the_capabilities_is_over_80_lines() {
    let mut long = Vec::new();
    for capability in ["transfer", "messaging"] {
        for file in rust_files(&src().join(capability)) {
            let text = fs::read_to_string(&file).expect("readable source");
            for (name, at, n) in long_functions(&text, MAX_FN_LINES) {
                long.push(format!("{}:{at} {name} ({n} lines)", file.display()));
            }
        }
    }
    assert!(long.is_empty(), "split these functions: {long:?}");
}

#[test]
fn function_lengths_are_measured_from_signature_to_closing_brace() {
    let text = "fn short() {\n    one();\n}\n\n    pub(crate) async fn long(\n        a: u8,\n    ) {\n        x();\n        y();\n    }\n";
    assert_eq!(long_functions(text, 3), vec![("long".to_string(), 5, 6)]);
    assert!(long_functions(text, 6).is_empty());
}
