//! THREAT_MODEL.md stays true: every test it names as proof exists (and runs: an integration test must sit in a
//! module of `tests/it/main.rs`), every threat row names one, and every component of the platform has its section. A row whose proof is still `PENDING` fails too: a threat without a test is
//! written under "Residual risk", not as a row.

use std::collections::HashMap;
use std::path::Path;

/// Every component and trust boundary the model must cover: a `##` heading starting with each.
const COMPONENTS: &[&str] = &[
    "TLS listener",
    "Pages",
    "Customer journey",
    "Authorization server",
    "Gateway",
    "Bank calls",
    "Webhooks",
    "CLI and files",
    "Backups and snapshots",
];

const PENDING: &str = "PENDING";

/// The integration-test binary whose modules hold every integration test.
const INTEGRATION_MAIN: &str = "tests/it/main.rs";

/// How many lines above a `fn` its `#[test]` attribute may stand (other attributes and comments between).
const ATTRIBUTE_REACH: usize = 4;

#[test]
fn the_threat_model_names_only_tests_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("THREAT_MODEL.md")).expect("THREAT_MODEL.md at the top level");
    let problems = check(&text, root);
    assert!(problems.is_empty(), "THREAT_MODEL.md is not true:\n  {}", problems.join("\n  "));
}

/// The checker itself: it must catch each kind of untruth, or the test above proves nothing.
#[test]
fn the_checker_catches_missing_tests_rows_without_proof_pending_rows_and_missing_sections() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut text = String::new();
    for component in COMPONENTS.iter().skip(1) {
        text.push_str(&format!(
            "## {component}\n\n| STRIDE | Threat | Mitigation | Proved by |\n|---|---|---|---|\n\
             | S | a threat | a mitigation | `tests/it/threat_model.rs::the_threat_model_names_only_tests_that_exist` |\n\n"
        ));
    }
    assert_eq!(check(&text, root), ["no section for the component \"TLS listener\""]);

    let bad = format!(
        "{text}## TLS listener\n\n| STRIDE | Threat | Mitigation | Proved by |\n|---|---|---|---|\n\
         | S | unproved | none | |\n\
         | T | helper, not a test | x | `tests/it/threat_model.rs::check` |\n\
         | I | no such test | x | `tests/it/threat_model.rs::no_such_test` |\n\
         | D | no such file | x | `tests/it/no_such_file.rs::a_test` |\n\
         | D | a separate test binary | x | `tests/threat_model.rs::the_threat_model_names_only_tests_that_exist` |\n\
         | D | not a module of the binary | x | `tests/it/main.rs::the_threat_model_names_only_tests_that_exist` |\n\
         | E | outside the tree | x | `src/../Cargo.toml.rs::a_test` |\n\
         | E | later | x | {PENDING} |\n\
         | X | not a STRIDE letter | x | `tests/it/threat_model.rs::the_threat_model_names_only_tests_that_exist` |\n\n\
         Prose names `tests/it/threat_model.rs::not_here`; a placeholder `tests/it/<file>.rs::<name>` is no reference.\n"
    );
    let problems = check(&bad, root);
    let expected = [
        "names no test",
        "has no test named check",
        "has no test named no_such_test",
        "there is no file tests/it/no_such_file.rs",
        "integration tests are modules of tests/it/main.rs",
        "tests/it/main.rs declares no module main",
        "is not a reference",
        "still PENDING",
        "STRIDE cell \"X\"",
        "has no test named not_here",
    ];
    for needle in expected {
        assert!(problems.iter().any(|p| p.contains(needle)), "{needle:?} not reported in {problems:#?}");
    }
    assert_eq!(problems.len(), 10, "{problems:#?}");
}

/// Every untruth found in `text`, a threat model for the repository at `root`, one line each.
fn check(text: &str, root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut sources = Sources::new(root);
    let mut section: Option<String> = None;
    let mut rows_per_section: HashMap<String, usize> = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let at = index + 1;
        if let Some(heading) = line.strip_prefix("## ") {
            section = Some(heading.trim().to_string());
            rows_per_section.entry(heading.trim().to_string()).or_default();
            continue;
        }
        if !line.trim_start().starts_with('|') {
            // Prose may name tests too; those must exist as well (placeholders such as `tests/it/<file>.rs::<name>` are
            // not references).
            for span in backticked(line).into_iter().filter(|span| reference(span).is_some()) {
                if let Err(problem) = sources.test_exists(span) {
                    problems.push(format!("line {at}: {problem}"));
                }
            }
            continue;
        }
        let cells = cells(line);
        if is_header_or_rule(&cells) {
            continue;
        }
        if let Some(name) = &section {
            *rows_per_section.entry(name.clone()).or_default() += 1;
        }
        if cells.len() != 4 {
            problems.push(format!(
                "line {at}: a row needs 4 cells (STRIDE, threat, mitigation, proved by), has {}",
                cells.len()
            ));
            continue;
        }
        let (stride, threat, proved_by) = (cells[0].as_str(), cells[1].as_str(), cells[3].as_str());
        if stride.is_empty()
            || !stride.split([',', ' ', '/']).filter(|l| !l.is_empty()).all(|l| "STRIDE".contains(l) && l.len() == 1)
        {
            problems.push(format!("line {at}: STRIDE cell {stride:?} is not letters of S, T, R, I, D, E"));
        }
        let threat = threat.chars().take(60).collect::<String>();
        let pending = proved_by.contains(PENDING);
        if pending {
            problems.push(format!("line {at}: {threat:?} is still {PENDING}: name the test that proves it"));
        }
        let references = backticked(proved_by);
        if references.is_empty() && !pending {
            problems.push(format!("line {at}: {threat:?} names no test that proves it"));
        }
        for reference in references {
            if let Err(problem) = sources.test_exists(reference) {
                problems.push(format!("line {at}: {problem}"));
            }
        }
    }
    for component in COMPONENTS {
        let lower = component.to_lowercase();
        match rows_per_section.iter().find(|(heading, _)| heading.to_lowercase().starts_with(&lower)) {
            None => problems.push(format!("no section for the component {component:?}")),
            Some((heading, 0)) => problems.push(format!("the section {heading:?} has no threat rows")),
            Some(_) => {}
        }
    }
    problems
}

/// A table row's cells, trimmed, without the outer pipes.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

fn is_header_or_rule(cells: &[String]) -> bool {
    let rule = cells.iter().all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')));
    let header = cells.first().is_some_and(|c| c == "STRIDE");
    rule || header
}

/// The contents of each `backticked` span of a line.
fn backticked(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// The repository's source files, read once each.
struct Sources<'a> {
    root: &'a Path,
    files: HashMap<String, Option<String>>,
}

impl<'a> Sources<'a> {
    fn new(root: &'a Path) -> Self {
        Sources { root, files: HashMap::new() }
    }

    /// Whether `span` (`tests/it/FILE.rs::name` or `src/PATH.rs::name`) is a test function in this repository that
    /// `cargo test` runs: an integration test must sit in a module of the one integration-test binary.
    fn test_exists(&mut self, span: &str) -> Result<(), String> {
        let Some((path, name)) = reference(span) else {
            return Err(format!("`{span}` is not a reference of the form `tests/it/FILE.rs::test_name`"));
        };
        let module = match path.strip_prefix("tests/") {
            None => None,
            Some(in_tests) => match in_tests.strip_prefix("it/").and_then(|file| file.strip_suffix(".rs")) {
                Some(module) => Some(module),
                None => {
                    return Err(format!(
                        "`{span}`: integration tests are modules of {INTEGRATION_MAIN}, not files of tests/"
                    ));
                }
            },
        };
        let declared = module.is_none_or(|module| {
            self.source(INTEGRATION_MAIN)
                .unwrap_or_default()
                .lines()
                .any(|line| line.trim() == format!("mod {module};"))
        });
        let Some(source) = self.source(path) else {
            return Err(format!("`{span}`: there is no file {path}"));
        };
        if let Some(module) = module.filter(|_| !declared) {
            return Err(format!("`{span}`: {INTEGRATION_MAIN} declares no module {module}, so nothing runs it"));
        }
        if is_test_fn(source, name) {
            Ok(())
        } else {
            Err(format!("`{span}`: {path} has no test named {name} (`fn {name}(` under #[test] or #[tokio::test])"))
        }
    }

    /// The text of the file at `path` (relative to the repository), if there is one.
    fn source(&mut self, path: &str) -> Option<&str> {
        let root = self.root;
        self.files.entry(path.to_string()).or_insert_with(|| std::fs::read_to_string(root.join(path)).ok()).as_deref()
    }
}

/// The file and test name of a reference `tests/it/FILE.rs::name` or `src/PATH.rs::name`, a relative path inside the
/// repository.
fn reference(span: &str) -> Option<(&str, &str)> {
    let (path, name) = span.split_once("::")?;
    let well_formed = (path.starts_with("tests/") || path.starts_with("src/"))
        && path.ends_with(".rs")
        && !path.split('/').any(|part| part.is_empty() || part == "." || part == "..")
        && path.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '.' | '-'))
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    well_formed.then_some((path, name))
}

/// Whether `source` declares `fn name(` under a `#[test]` or `#[tokio::test…]` attribute: looking up from the
/// declaration through attributes and comments only, a few lines at most.
fn is_test_fn(source: &str, name: &str) -> bool {
    let declaration = format!("fn {name}(");
    let lines: Vec<&str> = source.lines().collect();
    lines.iter().enumerate().any(|(i, line)| {
        let mut rest = line.trim_start();
        for prefix in ["pub ", "async "] {
            rest = rest.strip_prefix(prefix).unwrap_or(rest);
        }
        rest.starts_with(&declaration)
            && lines[..i]
                .iter()
                .rev()
                .take(ATTRIBUTE_REACH)
                .map(|above| above.trim_start())
                .take_while(|above| above.starts_with("#[") || above.starts_with("//"))
                .any(|above| above.starts_with("#[test]") || above.starts_with("#[tokio::test"))
    })
}
