//! Every environment variable a function reads is documented: in docs/ARCHITECTURE.md's
//! "Configuration" table and in the README's configuration tables. The names are found in the
//! functions' and shared/'s source (outside their unit tests), where a config reader is handed one:
//! `config::required(env, "NAME")`, `config::optional(env, "NAME")`, `env.get("NAME")`,
//! `std::env::var("NAME")` and the like.

use std::collections::BTreeSet;
use std::path::Path;

use integration_tests::workspace_root;

/// Variables the AWS SDK reads for the functions (no call in our code names them).
const READ_BY_THE_SDK: &[&str] = &["AWS_ENDPOINT_URL"];

/// What comes right before a variable's name when code reads it.
const READERS: &[&str] = &["env, \"", "env.get(\"", "env::var(\"", "env::var_os(\""];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The names read in one file's non-test code (unit tests sit in a trailing `#[cfg(test)]` module).
fn names_read(source: &str) -> BTreeSet<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    let mut names = BTreeSet::new();
    for reader in READERS {
        for (at, _) in code.match_indices(reader) {
            let rest = &code[at + reader.len()..];
            let name: String =
                rest.chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
            if !name.is_empty() && rest[name.len()..].starts_with('"') {
                names.insert(name);
            }
        }
    }
    names
}

fn variables_read_by_the_functions() -> BTreeSet<String> {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root.join("shared/src"), &mut files);
    for function in std::fs::read_dir(root.join("functions")).unwrap() {
        rust_files(&function.unwrap().path().join("src"), &mut files);
    }
    let mut names: BTreeSet<String> = READ_BY_THE_SDK.iter().map(|s| s.to_string()).collect();
    for file in files {
        names.extend(names_read(&std::fs::read_to_string(&file).unwrap()));
    }
    names
}

/// The `NAME`s written in code spans on the table rows (lines starting with `|`) of a markdown text.
fn names_in_tables(markdown: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in markdown.lines().filter(|l| l.trim_start().starts_with('|')) {
        for (i, span) in line.split('`').enumerate() {
            if i % 2 == 1
                && !span.is_empty()
                && span.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                names.insert(span.to_owned());
            }
        }
    }
    names
}

/// The text of one `## ` section of a markdown document.
fn section<'a>(markdown: &'a str, title: &str) -> &'a str {
    let start = markdown.find(&format!("\n## {title}\n")).unwrap_or_else(|| panic!("no section {title:?}"));
    let body = &markdown[start + 1..];
    let end = body[3..].find("\n## ").map_or(body.len(), |i| i + 3);
    &body[..end]
}

#[test]
fn the_scan_finds_the_readers_it_is_meant_to() {
    let found = names_read(
        "let a = config::required(env, \"NOTIFY_TOPIC_ARN\")?;\nlet b = std::env::var(\"HOME\");\n\
         let c = config::parsed(env, \"N\", 7)?; let d = format!(\"env, \\\"lower\");\n\
         #[cfg(test)]\nmod tests { fn t() { config::required(env, \"ONLY_IN_TESTS\"); } }",
    );
    assert_eq!(found, ["HOME", "N", "NOTIFY_TOPIC_ARN"].iter().map(|s| s.to_string()).collect());
    let tables = names_in_tables("| `A_B` | `x` | `C`, `D1` |\ntext `NOT_A_ROW`\n");
    assert_eq!(tables, ["A_B", "C", "D1"].iter().map(|s| s.to_string()).collect());
}

#[test]
fn every_variable_the_functions_read_is_in_the_design_document_and_the_readme() {
    let root = workspace_root();
    let read = variables_read_by_the_functions();
    // Today's code reads 54 names: a scan that finds far fewer has stopped seeing the readers.
    assert!(read.len() >= 25, "the scan found only {read:?}");

    let design = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let documented = names_in_tables(section(&design, "Configuration"));
    let readme = names_in_tables(&std::fs::read_to_string(root.join("README.md")).unwrap());

    let missing_in_design: Vec<_> = read.difference(&documented).collect();
    let missing_in_readme: Vec<_> = read.difference(&readme).collect();
    assert!(
        missing_in_design.is_empty() && missing_in_readme.is_empty(),
        "variables read by the code but not documented:\n  docs/ARCHITECTURE.md \"Configuration\": {missing_in_design:?}\n  README tables: {missing_in_readme:?}"
    );
}
