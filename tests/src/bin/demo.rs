//! The suite's main job on the embedded emulator: seeds a small OpenClaw account and runs
//! ebs-snapshots over simulated days — a dry run first, then for real, then through a stretch of
//! failing days — printing what happened each day. Run it with scripts/demo.sh.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{NaiveDate, TimeDelta};
use integration_tests::account::{OpenClawAccount, tag_value};
use integration_tests::emulator::Emulator;
use integration_tests::iam::Principal;
use integration_tests::runtime::{Function, Outcome};
use integration_tests::schedule::{day, scheduled_at, scheduled_event};
use serde_json::{Value, json};

const DAYS: u32 = 10;
const FAILING_DAYS: u32 = 6;

fn count(report: &Value, field: &str) -> usize {
    report[field].as_array().map_or(0, Vec::len)
}

struct Demo {
    emulator: Emulator,
    account: OpenClawAccount,
    names: BTreeMap<String, &'static str>,
    /// telegram-notify's queue, subscribed to ops (SNS envelope kept, as the stack does).
    telegram_queue: String,
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

/// The last step: telegram-notify takes what reached the ops topic (the failing days' notifications
/// and a CloudWatch alarm) through its SQS queue, and a fake Telegram shows what a phone would.
async fn show_telegram(demo: &Demo) -> anyhow::Result<()> {
    use axum::routing::post;
    use std::sync::{Arc, Mutex};

    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/{bot}/sendMessage",
        post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or_default());
                ([("content-type", "application/json")], json!({"ok": true, "result": {"message_id": 1}}).to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let telegram_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let admin = demo.emulator.admin().await;
    let secret = aws_sdk_secretsmanager::Client::new(&admin)
        .create_secret()
        .name("telegram")
        .secret_string(r#"{"bot_token": "123456:demo-token"}"#)
        .send()
        .await?
        .arn
        .context("secret arn")?;
    let principal = Principal::for_function(&demo.emulator, "TelegramNotifyFunction").await?;
    let mut env = demo.emulator.function_env(&principal.keys);
    env.extend([
        ("TELEGRAM_SECRET_ARN".to_owned(), secret),
        ("TELEGRAM_CHATS".to_owned(), "111".to_owned()),
        ("TELEGRAM_API_URL".to_owned(), telegram_url),
        ("RUST_LOG".to_owned(), "off".to_owned()),
    ]);
    let function = Function::start("telegram-notify", &env).await?;

    let alarm =
        std::fs::read_to_string(integration_tests::workspace_root().join("events/telegram-notify/sns-alarm-cpu.json"))?;
    let alarm: Value = serde_json::from_str(&alarm)?;
    let sns = aws_sdk_sns::Client::new(&admin);
    sns.publish()
        .topic_arn(&demo.account.topic_arn)
        .subject("ALARM: openclaw-gateway-cpu-high")
        .message(alarm["Records"][0]["Sns"]["Message"].as_str().unwrap_or_default())
        .send()
        .await?;

    let sqs = aws_sdk_sqs::Client::new(&admin);
    let mut records = Vec::new();
    loop {
        let out = sqs.receive_message().queue_url(&demo.telegram_queue).max_number_of_messages(10).send().await?;
        if out.messages().is_empty() {
            break;
        }
        for m in out.messages() {
            records.push(json!({"messageId": m.message_id(), "body": m.body(), "eventSource": "aws:sqs"}));
            sqs.delete_message()
                .queue_url(&demo.telegram_queue)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await?;
        }
    }
    // The last failing day's notification and the alarm: what a phone shows.
    let shown: Vec<Value> = records.iter().rev().take(2).rev().cloned().collect();
    println!("telegram-notify: the ops topic held {} messages; the last two, as a phone shows them:", records.len());
    function.invoke(&json!({ "Records": shown })).await?.response();
    for message in received.lock().unwrap().iter() {
        let text = visible_text(message["text"].as_str().unwrap_or_default());
        let silent = if message["disable_notification"] == true { " (silent)" } else { "" };
        println!("  ┌─ chat {}{silent}", message["chat_id"].as_str().unwrap_or_default());
        for line in text.lines() {
            println!("  │ {line}");
        }
        println!("  └─");
    }
    println!();
    Ok(())
}

/// Telegram HTML as the reader sees it: tags gone, entities back to characters.
fn visible_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&")
}

fn header() {
    println!(
        "{:<10}  {:>7}  {:>7}  {:>13}  {:>14}  {:>14}  {:>7}",
        "day", "created", "deleted", "kept-by-floor", "openclaw-data", "openclaw-root", "scratch"
    );
}

async fn telegram_queue(account: &OpenClawAccount) -> anyhow::Result<String> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let sqs = aws_sdk_sqs::Client::new(&account.admin);
    let url = sqs
        .create_queue()
        .queue_name("telegram")
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await?
        .queue_url
        .context("queue url")?;
    let attrs = sqs.get_queue_attributes().queue_url(&url).attribute_names(QueueAttributeName::QueueArn).send().await?;
    let arn = attrs.attributes().and_then(|a| a.get(&QueueAttributeName::QueueArn)).context("queue arn")?.clone();
    aws_sdk_sns::Client::new(&account.admin)
        .subscribe()
        .topic_arn(&account.topic_arn)
        .protocol("sqs")
        .endpoint(arn)
        .send()
        .await?;
    Ok(url)
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
    let telegram_queue = telegram_queue(&account).await?;
    let demo = Demo { emulator, account, names, telegram_queue };

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

    show_telegram(&demo).await?;

    println!("Result:");
    for (name, dates) in demo.held().await? {
        let first = dates.first().map(ToString::to_string).unwrap_or_else(|| "-".into());
        let last = dates.last().map(ToString::to_string).unwrap_or_else(|| "-".into());
        println!("  {name:<14} {} snapshot(s)  {first} .. {last}", dates.len());
    }
    println!("  snapshots that are not ours: {} (untouched)", demo.foreign().await?);
    Ok(())
}
