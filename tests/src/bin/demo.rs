//! The suite's main job on the embedded emulator: seeds a small OpenClaw account and runs
//! ebs-snapshots over simulated days — a dry run first, then for real, then through a stretch of
//! failing days — printing what happened each day. Run it with scripts/demo.sh.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use integration_tests::account::{OpenClawAccount, tag_value};
use integration_tests::emulator::Emulator;
use integration_tests::iam::Principal;
use integration_tests::runtime::{Function, Outcome};
use serde_json::{Value, json};

const DAYS: u32 = 10;
const FAILING_DAYS: u32 = 6;

fn day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 1).unwrap() + TimeDelta::days(i64::from(n) - 1)
}

fn scheduled_at(n: u32) -> DateTime<Utc> {
    day(n).and_hms_opt(3, 0, 0).unwrap().and_utc()
}

fn scheduled_event(n: u32) -> Value {
    json!({
        "version": "0", "id": format!("demo-day-{n}"), "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": scheduled_at(n).to_rfc3339(), "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/EbsSnapshotsDaily"], "detail": {}
    })
}

fn count(report: &Value, field: &str) -> usize {
    report[field].as_array().map_or(0, Vec::len)
}

struct Demo {
    emulator: Emulator,
    account: OpenClawAccount,
    names: BTreeMap<String, &'static str>,
}

impl Demo {
    /// Snapshots of ours per volume name.
    async fn held(&self) -> anyhow::Result<BTreeMap<&'static str, Vec<NaiveDate>>> {
        let mut out: BTreeMap<&'static str, Vec<NaiveDate>> = self.names.values().map(|n| (*n, Vec::new())).collect();
        for s in self.account.snapshots().await? {
            if tag_value(&s, "openclaw:managed-by") != Some("openclaw-ops") {
                continue;
            }
            let volume = tag_value(&s, "openclaw:volume-id").unwrap_or_default();
            let name = self.names.get(volume).copied().unwrap_or("other");
            let date = tag_value(&s, "openclaw:date").and_then(|d| d.parse().ok()).unwrap_or(NaiveDate::MIN);
            out.entry(name).or_default().push(date);
        }
        out.values_mut().for_each(|v| v.sort());
        Ok(out)
    }

    async fn foreign(&self) -> anyhow::Result<usize> {
        Ok(self.account.snapshots().await?.iter().filter(|s| tag_value(s, "openclaw:managed-by").is_none()).count())
    }

    async fn print_day(&self, n: u32, outcome: Outcome) -> anyhow::Result<()> {
        let held = self.held().await?;
        let (created, deleted, floor, note) = match &outcome {
            Outcome::Response(r) => {
                (count(r, "created"), count(r, "deleted"), count(r, "kept_by_floor"), String::new())
            }
            // A failed run answers with its error; its counts are in the notification it published.
            Outcome::Error { error_message, .. } => {
                let notes = self.account.notifications().await?;
                let fields = notes.last().map(|n| n["fields"].clone()).unwrap_or_default();
                let field = |k: &str| fields[k].as_str().and_then(|v| v.parse().ok()).unwrap_or(0);
                let what = if error_message.contains("create") { "snapshots could not be created" } else { "failed" };
                (
                    field("created"),
                    field("deleted"),
                    field("kept by floor"),
                    format!("invocation failed: {what}; notified"),
                )
            }
        };
        let cells: Vec<String> = held.values().map(|d| d.len().to_string()).collect();
        println!(
            "{}  {:>7}  {:>7}  {:>13}  {:>14}  {:>14}  {:>7}  {note}",
            day(n),
            created,
            deleted,
            floor,
            cells[0],
            cells[1],
            cells[2]
        );
        Ok(())
    }
}

fn header() {
    println!(
        "{:<10}  {:>7}  {:>7}  {:>13}  {:>14}  {:>14}  {:>7}",
        "day", "created", "deleted", "kept-by-floor", "openclaw-data", "openclaw-root", "scratch"
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    println!("openclaw-ops demo: ebs-snapshots on the embedded AWS emulator\n");
    let emulator = Emulator::start().await.context("starting the emulator (run scripts/demo.sh)")?;
    let account = OpenClawAccount::seed(&emulator).await?;
    let names: BTreeMap<String, &'static str> = [
        (account.data_volume.clone(), "openclaw-data"),
        (account.root_volume.clone(), "openclaw-root"),
        (account.untagged_volume.clone(), "scratch"),
    ]
    .into_iter()
    .collect();
    let demo = Demo { emulator, account, names };

    println!("Seeded a small OpenClaw account:");
    println!("  gateway instance  {}", demo.account.instance_id);
    println!("  openclaw-data     {}  tagged openclaw:snapshot=daily (the gateway's state)", demo.account.data_volume);
    println!("  openclaw-root     {}  tagged openclaw:snapshot=daily", demo.account.root_volume);
    println!("  scratch           {}  untagged: must never be snapshotted", demo.account.untagged_volume);
    println!(
        "  {} snapshots that belong to somebody else (the emulator's own): must never be touched\n",
        demo.foreign().await?
    );

    let principal = Principal::for_function(&demo.emulator, "EbsSnapshotsFunction").await?;
    let mut env = demo.emulator.function_env(&principal.keys);
    env.push(("NOTIFY_TOPIC_ARN".into(), demo.account.topic_arn.clone()));
    env.push(("RUST_LOG".into(), "off".into()));
    let function = Function::start("ebs-snapshots", &env).await?;
    let mut dry_env = env.clone();
    dry_env.push(("DRY_RUN".into(), "true".into()));
    let dry = Function::start("ebs-snapshots", &dry_env).await?;

    demo.emulator.set_clock(scheduled_at(1)).await?;
    let preview = dry.invoke(&scheduled_event(1)).await?.response();
    println!(
        "Dry run for {}: would create {} snapshot(s), would delete {}; changed nothing ({} of ours exist).\n",
        day(1),
        count(&preview, "would_create"),
        count(&preview, "would_delete"),
        demo.held().await?.values().map(Vec::len).sum::<usize>()
    );

    println!("{DAYS} scheduled days (retention 7 days, floor 3), then a second delivery of the last day's event:");
    header();
    for n in 1..=DAYS {
        demo.emulator.set_clock(scheduled_at(n) + TimeDelta::seconds(2)).await?;
        let outcome = function.invoke(&scheduled_event(n)).await?;
        demo.print_day(n, outcome).await?;
    }
    let again = function.invoke(&scheduled_event(DAYS)).await?.response();
    println!(
        "Same event again (EventBridge is at-least-once): created {}, already present {}.\n",
        count(&again, "created"),
        count(&again, "already_present")
    );

    println!("{FAILING_DAYS} days on which CreateSnapshot is denied (say, a broken permission boundary):");
    principal.deny(&demo.emulator, &["ec2:CreateSnapshot"]).await?;
    header();
    for n in DAYS + 1..=DAYS + FAILING_DAYS {
        demo.emulator.set_clock(scheduled_at(n) + TimeDelta::seconds(2)).await?;
        let outcome = function.invoke(&scheduled_event(n)).await?;
        demo.print_day(n, outcome).await?;
    }
    println!("Each failing day published a critical notification and failed the invocation (so Lambda retries");
    println!("it and the Errors alarm fires); the floor kept the newest 3 snapshots of each volume.\n");

    println!("Result:");
    for (name, dates) in demo.held().await? {
        let first = dates.first().map(ToString::to_string).unwrap_or_else(|| "-".into());
        let last = dates.last().map(ToString::to_string).unwrap_or_else(|| "-".into());
        println!("  {name:<14} {} snapshot(s)  {first} .. {last}", dates.len());
    }
    println!("  snapshots that are not ours: {} (untouched)", demo.foreign().await?);
    Ok(())
}
