//! Least privilege, both ways, over every test of a run: reads the test bed's decision logs
//! (`OPENCLAW_IAM_DECISIONS`, one JSON line per request) and, for each function and the gateway's
//! instance policy, compares the template's statements with what the tests used.
//!
//! - every statement of the template allowed at least one call in some test, or is listed in the
//!   README's table of grants that AWS uses on the caller's behalf and the bed cannot exercise
//!   (between the `iam-not-exercisable` markers); a listed statement that *was* used is an error too;
//! - the calls each principal made, and the statements that allowed them, are printed.
//!
//! Exits non-zero with the names of the unused grants. The test command runs it after `cargo test`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use integration_tests::template::Template;
use integration_tests::workspace_root;
use serde_json::Value;

const PRINCIPALS: &[&str] = &[
    "EbsSnapshotsFunction",
    "TelegramNotifyFunction",
    "CostCheckFunction",
    "S3BackupFunction",
    "SpotRecoveryFunction",
];

fn main() -> anyhow::Result<()> {
    let dir =
        std::env::var("OPENCLAW_IAM_DECISIONS").context("OPENCLAW_IAM_DECISIONS names the decision logs' folder")?;
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut calls: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut lines = 0usize;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let path = entry?.path();
        for line in std::fs::read_to_string(&path)?.lines() {
            lines += 1;
            let call: Value = serde_json::from_str(line).with_context(|| format!("{}: {line}", path.display()))?;
            let Some(user) = call["principal"].as_str().and_then(|p| p.rsplit('/').next()) else { continue };
            if call["allowed"] == true {
                calls
                    .entry(user.to_owned())
                    .or_default()
                    .insert(call["action"].as_str().unwrap_or_default().to_owned());
            }
            for authorization in call["authorizations"].as_array().into_iter().flatten() {
                if authorization["allowed"] != true {
                    continue;
                }
                for statement in authorization["statements"].as_array().into_iter().flatten() {
                    if let Some(sid) = statement.as_str().and_then(|s| s.strip_prefix("template/")) {
                        used.entry(user.to_owned()).or_default().insert(sid.to_owned());
                    }
                }
            }
        }
    }
    if lines == 0 {
        bail!("no decisions in {dir}: run the integration tests with OPENCLAW_IAM_DECISIONS set first");
    }

    let exempt = not_exercisable()?;
    let template = Template::load()?;
    let mut problems = Vec::new();
    for principal in PRINCIPALS {
        let statements = template.function_statements(principal)?;
        let sids: Vec<String> =
            statements.iter().enumerate().map(|(i, s)| s.sid.clone().unwrap_or_else(|| format!("#{i}"))).collect();
        let empty = BTreeSet::new();
        let principal_used = used.get(*principal).unwrap_or(&empty);
        let principal_exempt = exempt.get(*principal).unwrap_or(&empty);
        println!("{principal}");
        println!(
            "  calls made: {}",
            calls.get(*principal).unwrap_or(&empty).iter().cloned().collect::<Vec<_>>().join(", ")
        );
        for sid in &sids {
            let state = match (principal_used.contains(sid), principal_exempt.contains(sid)) {
                (true, false) => "used",
                (false, true) => "required, not exercisable here (README)",
                (false, false) => {
                    problems.push(format!("{principal}/{sid}: granted, used by no test"));
                    "UNUSED"
                }
                (true, true) => {
                    problems.push(format!("{principal}/{sid}: listed as not exercisable, but a test used it"));
                    "used, yet listed as not exercisable"
                }
            };
            println!("  {sid:<48} {state}");
        }
        for sid in principal_exempt.difference(&sids.iter().cloned().collect()) {
            problems.push(format!("{principal}/{sid}: listed in the README, not in the template"));
        }
    }
    if !problems.is_empty() {
        bail!("least privilege:\n  {}", problems.join("\n  "));
    }
    println!("every grant of the template was used by a test or is listed as not exercisable ({lines} decisions read)");
    Ok(())
}

/// `| Principal | Sid | ... |` rows between `<!-- iam-not-exercisable -->` and `<!-- /iam-not-exercisable -->`.
fn not_exercisable() -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md"))?;
    let start = readme.find("<!-- iam-not-exercisable -->").context("README: no iam-not-exercisable table")?;
    let end = readme.find("<!-- /iam-not-exercisable -->").context("README: iam-not-exercisable table not closed")?;
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in readme[start..end].lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 2 || cells[0] == "Principal" || cells[0].starts_with("---") {
            continue;
        }
        out.entry(cells[0].trim_matches('`').to_owned()).or_default().insert(cells[1].trim_matches('`').to_owned());
    }
    Ok(out)
}
