//! The construct modules of `src/stack` import one way: the module graph has no cycle,
//! so each construct can be read (and changed) knowing only the ones below it. And no
//! function in the workspace needs `#[allow(clippy::too_many_arguments)]`: constructs
//! take a scope value instead of long argument lists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The sibling modules a module refers to through `super::`. A `super::` path to an
/// item of `mod.rs` itself (not a sibling module) is an edge to `mod`, which imports
/// every module: that makes a cycle, as it should.
fn references(source: &str, siblings: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let code = strip_comments(source);
    let mut rest = code.as_str();
    while let Some(at) = rest.find("super::") {
        rest = &rest[at + "super::".len()..];
        let names: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            group[..end]
                .split(',')
                .map(|part| first_segment(part.trim()))
                .filter(|name| !name.is_empty())
                .collect()
        } else {
            vec![first_segment(rest)]
        };
        for name in names {
            if siblings.contains(&name) {
                out.insert(name);
            } else if name != "self" && name != "super" {
                out.insert("mod".to_string());
            }
        }
    }
    out
}

fn first_segment(path: &str) -> String {
    path.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Source without `//` comments (doc links such as [`super::x`] are not imports).
fn strip_comments(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The non-test part of a module's source: `#[cfg(test)]` modules may import anything.
fn without_tests(source: &str) -> &str {
    match source.find("#[cfg(test)]") {
        Some(i) => &source[..i],
        None => source,
    }
}

fn module_graph(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    let siblings: BTreeSet<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|name| name != "mod")
        .collect();
    files
        .iter()
        .filter(|p| p.file_stem().unwrap() != "mod")
        .map(|p| {
            let source = std::fs::read_to_string(p).unwrap();
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, references(without_tests(&source), &siblings))
        })
        .collect()
}

/// A cycle in `graph` as a path `a -> b -> ... -> a`, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
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
    let mut graph = graph.clone();
    // `mod` (the wiring) uses every construct.
    let all: BTreeSet<String> = graph.keys().cloned().collect();
    graph.insert("mod".to_string(), all);
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn the_construct_modules_import_one_way() {
    let graph = module_graph(&root().join("src/stack"));
    assert!(graph.len() >= 10, "found the construct modules: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("src/stack has an import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    // Proves the check can fail: two modules importing each other, and a module
    // importing an item of mod.rs.
    let siblings: BTreeSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
    let graph = BTreeMap::from([
        ("a".to_string(), references("use super::b::X;", &siblings)),
        (
            "b".to_string(),
            references("use super::{a::Y, b};", &siblings),
        ),
    ]);
    assert_eq!(find_cycle(&graph).unwrap().len(), 3);
    let graph = BTreeMap::from([("a".to_string(), references("use super::Tags;", &siblings))]);
    assert!(find_cycle(&graph).is_some());
    let graph = BTreeMap::from([(
        "a".to_string(),
        references("// see super::b\nuse super::b::Z;", &siblings),
    )]);
    assert!(find_cycle(&graph).is_none());
}

#[test]
fn no_function_allows_too_many_arguments() {
    let mut offenders = Vec::new();
    for dir in ["src", "lambdas", "crates", "codegen"] {
        for entry in walkdir::WalkDir::new(root().join(dir)) {
            let entry = entry.unwrap();
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "rs")
                && std::fs::read_to_string(path)
                    .unwrap()
                    .contains("too_many_arguments")
            {
                offenders.push(path.display().to_string());
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "allow(clippy::too_many_arguments) in: {offenders:?}"
    );
}
