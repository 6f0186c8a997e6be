//! kopir — a national Open API & Open Banking platform in one binary. See README.md for the architecture.

pub mod apps;
pub mod audit;
pub mod availability;
pub mod backup;
pub mod bench;
pub mod billing;
pub mod bootstrap;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod consent;
pub mod demo;
pub mod digest;
pub mod docs;
pub mod egress;
pub mod gateway;
pub mod i18n;
pub mod identity;
pub mod kz;
pub mod logging;
pub mod monitoring;
pub mod notify;
pub mod oauth;
pub mod participants;
pub mod pki;
pub mod random;
pub mod refbank;
pub mod reports;
pub mod requests;
pub mod sandbox;
pub mod snapshot;
pub mod standard;
pub mod store;
pub mod trust;
pub mod web;

/// The domains (top-level modules) import one another without cycles: the edge (`web`, which mounts every router and
/// which route modules use for their state and guards) aside, each `crate::X` a module's code names is an edge, and
/// once the known back edges below are set aside the graph must be acyclic. A back edge that disappears must leave the
/// list too, so the list stays the truth.
#[cfg(test)]
mod domain_cycles {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// Back edges still there, each with why (from, to, reason).
    const ALLOWED: &[(&str, &str, &str)] = &[
        (
            "apps",
            "catalog",
            "the application's page lists its API connections (catalogue rows); connections reference applications",
        ),
        (
            "consent",
            "oauth",
            "a consent that ends revokes its tokens in the same transaction, and its sweep purges dead authorization requests",
        ),
        (
            "trust",
            "consent",
            "the customer's journey pages record the customer's refusal of the consent they authorise",
        ),
        ("trust", "oauth", "the customer's journey pages finish the OAuth authorization request they were started by"),
        (
            "catalog",
            "billing",
            "the marketplace shows each API's tariff in force (billing's rows); tariffs belong to APIs",
        ),
        (
            "participants",
            "billing",
            "the console's home page warns of API users' statements overdue beyond billing.suspend_after_days",
        ),
        (
            "requests",
            "billing",
            "a request about a statement line asks billing who the line's parties are; disputes belong to statement lines",
        ),
    ];

    fn edges() -> BTreeMap<String, BTreeSet<String>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut modules = BTreeMap::new();
        for entry in std::fs::read_dir(&src).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            if name == "lib" || name == "main" || name == "web" {
                continue;
            }
            if path.is_dir() || path.extension().is_some_and(|e| e == "rs") {
                modules.insert(name, path);
            }
        }
        let names: BTreeSet<String> = modules.keys().cloned().collect();
        let mut edges = BTreeMap::new();
        for (name, path) in &modules {
            let mut targets = BTreeSet::new();
            for file in files(path) {
                let text = std::fs::read_to_string(&file).unwrap();
                for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                    for (at, _) in line.match_indices("crate::") {
                        let rest = &line[at + "crate::".len()..];
                        let target: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                        if target != *name && names.contains(&target) {
                            targets.insert(target);
                        }
                    }
                }
            }
            edges.insert(name.clone(), targets);
        }
        edges
    }

    fn files(path: &Path) -> Vec<std::path::PathBuf> {
        if path.is_file() {
            return vec![path.to_path_buf()];
        }
        let mut out = Vec::new();
        for entry in std::fs::read_dir(path).unwrap() {
            out.extend(files(&entry.unwrap().path()));
        }
        out
    }

    /// A cycle of `edges`, if there is one (depth-first search).
    fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
        fn visit(
            node: &str,
            edges: &BTreeMap<String, BTreeSet<String>>,
            done: &mut BTreeSet<String>,
            path: &mut Vec<String>,
        ) -> Option<Vec<String>> {
            if let Some(at) = path.iter().position(|n| n == node) {
                let mut found = path[at..].to_vec();
                found.push(node.to_string());
                return Some(found);
            }
            if done.contains(node) {
                return None;
            }
            path.push(node.to_string());
            for next in edges.get(node).into_iter().flatten() {
                if let Some(found) = visit(next, edges, done, path) {
                    return Some(found);
                }
            }
            path.pop();
            done.insert(node.to_string());
            None
        }
        let mut done = BTreeSet::new();
        edges.keys().find_map(|node| visit(node, edges, &mut done, &mut Vec::new()))
    }

    #[test]
    fn domains_import_each_other_without_cycles_but_the_listed_back_edges() {
        let mut edges = edges();
        for (from, to, _) in ALLOWED {
            let removed = edges.get_mut(*from).is_some_and(|targets| targets.remove(*to));
            assert!(removed, "{from} → {to} is gone: take it off the list");
        }
        if let Some(cycle) = cycle(&edges) {
            panic!("an import cycle between domains: {}", cycle.join(" → "));
        }
    }

    #[test]
    fn the_check_finds_a_cycle() {
        let edges: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a")]
            .into_iter()
            .map(|(from, to)| (from.to_string(), BTreeSet::from([to.to_string()])))
            .collect();
        assert_eq!(cycle(&edges).unwrap(), ["a", "b", "c", "a"]);
    }
}
