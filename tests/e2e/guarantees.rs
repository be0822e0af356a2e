//! docs/testing.md names, for each guarantee, the tests that prove it: each named test must
//! exist, and each end-to-end file must be named, so the table cannot drift from the tests.

use std::path::Path;

/// What is wrong with the guarantees table of `doc`, against the tests under `tests`.
fn problems(doc: &str, tests: &Path) -> Vec<String> {
    let Some((_, section)) = doc.split_once("## Guarantees") else { return vec!["no Guarantees section".into()] };
    let section = section.split("\n## ").next().unwrap_or_default();
    let mut problems = Vec::new();
    let mut files = std::collections::BTreeSet::new();
    for cited in section.split('`').filter(|part| part.contains(".rs::")) {
        let Some((file, name)) = cited.split_once("::") else { continue };
        files.insert(file.to_string());
        match std::fs::read_to_string(tests.join(file)) {
            Ok(code) if code.contains(&format!("fn {name}(")) => {}
            Ok(_) => problems.push(format!("{cited}: no such test")),
            Err(_) => problems.push(format!("{cited}: no file tests/{file}")),
        }
    }
    let e2e = std::fs::read_dir(tests.join("e2e")).map(|dir| dir.flatten().collect::<Vec<_>>()).unwrap_or_default();
    for entry in e2e {
        let file = format!("e2e/{}", entry.file_name().to_string_lossy());
        let infrastructure = ["e2e/main.rs", "e2e/asl.rs", "e2e/guarantees.rs"].contains(&file.as_str());
        if !infrastructure && !files.contains(&file) {
            problems.push(format!("{file} proves no guarantee the table names"));
        }
    }
    problems
}

#[test]
fn every_test_the_guarantees_name_exists() {
    let root = refresh_tests::repo_root();
    let doc = std::fs::read_to_string(root.join("docs/testing.md")).unwrap();
    assert_eq!(problems(&doc, &root.join("tests")), Vec::<String>::new());
}

#[test]
fn a_missing_test_or_an_unnamed_file_is_found() {
    let tests = refresh_tests::repo_root().join("tests");
    let doc = "## Guarantees\n| a | `e2e/fleet.rs::no_such_test`, `e2e/nowhere.rs::x` |\n## Tests\n`e2e/clone.rs::clone_never_available`";
    let found = problems(doc, &tests);
    assert!(found.contains(&"e2e/fleet.rs::no_such_test: no such test".to_string()), "{found:?}");
    assert!(found.contains(&"e2e/nowhere.rs::x: no file tests/e2e/nowhere.rs".to_string()), "{found:?}");
    assert!(
        found.contains(&"e2e/clone.rs proves no guarantee the table names".to_string()),
        "outside the section: {found:?}"
    );
    assert!(!found.iter().any(|p| p.starts_with("e2e/fleet.rs ")), "{found:?}");
}
