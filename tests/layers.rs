//! The source's layering, checked from its `use` paths: which layers may name which, and no
//! two modules that need each other.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module of `src/` (`cli::bench::faults`) with its source up to its unit tests.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, found: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, found);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(root).unwrap().with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or_default()
                .to_owned();
            found.insert(parts.join("::"), code);
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = BTreeMap::new();
    walk(&root, &root, &mut found);
    found
}

/// The modules a module names through `crate::` or `super::` paths, resolved to the longest
/// module that exists.
fn dependencies(name: &str, code: &str, known: &BTreeMap<String, String>) -> BTreeSet<String> {
    let parent: Vec<&str> = {
        let mut parts: Vec<&str> = name.split("::").collect();
        parts.pop();
        parts
    };
    let mut found = BTreeSet::new();
    for (index, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        let rest = &code[index..];
        let path: Vec<&str> = rest
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .next()
            .unwrap_or_default()
            .split("::")
            .filter(|p| !p.is_empty())
            .collect();
        let full: Vec<&str> = match path.first() {
            Some(&"crate") => path[1..].to_vec(),
            Some(&"super") => parent
                .iter()
                .copied()
                .chain(path[1..].iter().copied())
                .collect(),
            _ => continue,
        };
        if let Some(module) = (1..=full.len())
            .rev()
            .map(|n| full[..n].join("::"))
            .find(|candidate| known.contains_key(candidate))
        {
            if module != name {
                found.insert(module);
            }
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let known = modules();
    known
        .iter()
        .map(|(name, code)| (name.clone(), dependencies(name, code, &known)))
        .collect()
}

fn layer(module: &str) -> &str {
    module.split("::").next().unwrap_or_default()
}

#[test]
fn each_layer_names_only_the_layers_below_it() {
    let rules: &[(&str, &[&str])] = &[
        // Pure types and rules: nothing but each other.
        ("domain", &["domain"]),
        ("wire", &["wire", "proto", "domain"]),
        ("store", &["store", "domain"]),
    ];
    let mut wrong = Vec::new();
    for (module, uses) in graph() {
        if layer(&module) != "cli" {
            for used in uses.iter().filter(|u| layer(u) == "cli") {
                wrong.push(format!("{module} imports {used}: nothing below cli may"));
            }
        }
        for (layer_name, allowed) in rules {
            if layer(&module) != *layer_name {
                continue;
            }
            for used in uses.iter().filter(|u| !allowed.contains(&layer(u))) {
                wrong.push(format!("{module} imports {used}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_two_modules_need_each_other() {
    let graph = graph();
    // A module on a cycle reaches itself.
    let reaches = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = graph[from].iter().map(String::as_str).collect();
        while let Some(next) = todo.pop() {
            if seen.insert(next.to_owned()) {
                todo.extend(graph.get(next).into_iter().flatten().map(String::as_str));
            }
        }
        seen
    };
    let cyclic: Vec<&String> = graph
        .keys()
        .filter(|module| reaches(module).contains(*module))
        .collect();
    assert!(cyclic.is_empty(), "modules on a cycle: {cyclic:?}");
}
