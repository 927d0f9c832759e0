//! The suite's main job on the embedded emulator: seeds a small OpenClaw account and runs
//! ebs-snapshots over simulated days — a dry run first, then for real, then through a stretch of
//! failing days — printing what happened each day; then s3-backup backs up a live state directory,
//! and restores it after a bad update; spot-recovery replaces a reclaimed Spot gateway; cost-check
//! compares a month with the seed's estimate; and
//! telegram-notify shows what reached the phone. Run it with scripts/demo.sh.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{NaiveDate, TimeDelta};
use integration_tests::account::{AZ, OpenClawAccount, tag_value};
use integration_tests::backup_bucket::{configure_like_the_template, gateway_instance_role};
use integration_tests::costs::{full_with_nat_overrun, groups};
use integration_tests::emulator::Emulator;
use integration_tests::iam::Principal;
use integration_tests::openclaw_state::state_dir;
use integration_tests::runtime::{Function, Outcome};
use integration_tests::schedule::{day, scheduled_at, scheduled_event};
use integration_tests::stack::Stack;
use serde_json::{Value, json};

const DAYS: u32 = 10;
const FAILING_DAYS: u32 = 6;
/// The emulator's second region: where ebs-snapshots copies to.
const DR_REGION: &str = "us-west-2";

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
    aws_sdk_s3::Client::new(&admin).create_bucket().bucket("telegram-deliveries").send().await?;
    let stack = Stack::new(&demo.emulator)
        .await?
        .resource("TelegramSecret", &secret, &[])
        .resource(
            "TelegramDeadLetterQueue",
            "telegram-dlq",
            &[("Arn", "arn:aws:sqs:us-east-1:123456789012:telegram-dlq")],
        )
        .bucket("TelegramDeliveryRecordBucket", "telegram-deliveries");
    let principal = Principal::for_function(&demo.emulator, "TelegramNotifyFunction", &stack).await?;
    let mut env = demo.emulator.function_env(&principal.keys);
    env.extend([
        ("TELEGRAM_DELIVERY_BUCKET".to_owned(), "telegram-deliveries".to_owned()),
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
    // The last failing day's snapshot note, the restore, the cost overrun and the alarm.
    let shown: Vec<Value> = records.iter().rev().take(4).rev().cloned().collect();
    println!("telegram-notify: the ops topic held {} messages; the last four, as a phone shows them:", records.len());
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

const BACKUP_BUCKET: &str = "openclaw-backups-demo";

/// s3-backup on the gateway (this machine plays it, through SSM Run Command): the daily backup of a
/// state directory whose database is being written to, a duplicate delivery, then a restore after an
/// update mangled the config.
async fn show_backup(demo: &Demo) -> anyhow::Result<()> {
    println!("s3-backup: OpenClaw's state, backed up, verified, and restored after a bad update");
    // The function runs on the emulator's clock (the snapshot scenario's days): the pre-signed
    // uploads it hands the instance are checked against that clock, as S3 checks them against AWS's.
    let clock: Value = reqwest::get(format!("{}/_testbed/clock", demo.emulator.url)).await?.json().await?;
    let now =
        chrono::DateTime::parse_from_rfc3339(clock["now"].as_str().unwrap_or_default())?.with_timezone(&chrono::Utc);
    let admin = &demo.account.admin;
    let s3 = aws_sdk_s3::Client::new(admin);
    s3.create_bucket().bucket(BACKUP_BUCKET).send().await?;
    let stack = Stack::new(&demo.emulator)
        .await?
        .bucket("BackupBucket", BACKUP_BUCKET)
        .topic("OpsTopic", &demo.account.topic_arn);
    let key_arn = stack.attr("OpsKey.Arn").context("key arn")?.to_owned();
    configure_like_the_template(&s3, BACKUP_BUCKET, &key_arn).await?;
    let state = state_dir("demo");
    let role = gateway_instance_role(&demo.emulator).await?;
    let instance_env: serde_json::Map<String, Value> =
        demo.emulator.function_env(&role.keys).into_iter().map(|(k, v)| (k, json!(v))).collect();
    demo.emulator.register_instance(&demo.account.instance_id, instance_env).await?;

    let principal = Principal::for_function(&demo.emulator, "S3BackupFunction", &stack).await?;
    let mut env = demo.emulator.function_env(&principal.keys);
    env.extend([
        ("NOTIFY_TOPIC_ARN".to_owned(), demo.account.topic_arn.clone()),
        ("BACKUP_BUCKET".to_owned(), BACKUP_BUCKET.to_owned()),
        ("BACKUP_KMS_KEY_ID".to_owned(), key_arn),
        ("STATE_DIR".to_owned(), state.root.to_string_lossy().into_owned()),
        ("RUST_LOG".to_owned(), "off".to_owned()),
    ]);
    let function = Function::start_at("s3-backup", &env, now).await?;
    let today = now.format("%Y-%m-%dT02:30:00Z").to_string();
    let event = json!({"version": "0", "id": "demo", "detail-type": "Scheduled Event", "source": "aws.events",
                       "account": "123456789012", "time": today, "region": "us-east-1", "resources": [], "detail": {}});
    let report = function.invoke(&event).await?.response();
    let done = &report["backed_up"][0];
    println!("  daily backup     {}", done["archive_key"].as_str().unwrap_or_default());
    println!(
        "                   {} files, {} bytes, read back and verified (SHA-256 {}…)",
        done["files"],
        done["size"],
        done["sha256"].as_str().unwrap_or_default().get(..12).unwrap_or_default()
    );
    println!(
        "                   uploaded through two write-once pre-signed URLs; locked until {}; recorded as verified",
        done["retain_until"].as_str().unwrap_or("(Object Lock off)")
    );
    if let Some(monthly) = done["monthly_copy"].as_str() {
        println!("  month's first    also kept for a year as {monthly}");
    }
    println!(
        "  bucket drift     {} finding(s): versioning, encryption and lifecycle as the template set them",
        count(&report, "drift")
    );
    let again = function.invoke(&event).await?.response();
    println!("  same event again already done ({} backup made)", count(&again, "backed_up"));

    let config = state.root.join("openclaw.json");
    let before = std::fs::read(&config)?;
    std::fs::write(&config, b"{ this is not JSON: an update went wrong")?;
    println!("  an update mangles openclaw.json; the operator asks for a restore of the latest verified backup:");
    let restore = json!({"action": "restore", "gateway": "openclaw-gateway", "backup": "latest"});
    let restored = function.invoke(&restore).await?.response();
    let target = std::path::PathBuf::from(restored["target_dir"].as_str().unwrap_or_default());
    println!(
        "  restored         {} files into {} (the live state untouched)",
        restored["restored"]["files"],
        target.display()
    );
    let same = std::fs::read(target.join("openclaw.json"))? == before;
    println!("  openclaw.json there is the one from before the update: {}", if same { "yes" } else { "NO" });
    println!("  to switch over:");
    for step in restored["switch_over"].as_array().into_iter().flatten() {
        println!("    {}", step.as_str().unwrap_or_default());
    }
    std::fs::remove_dir_all(&target)?;
    println!();
    Ok(())
}

/// spot-recovery, in an account of its own: the gateway runs as Spot from a launch template with its
/// data volume and Elastic IP; EC2 warns, then reclaims it; the function replaces it.
async fn show_spot_recovery() -> anyhow::Result<()> {
    use aws_sdk_ec2::types::{
        DomainType, InstanceMarketOptionsRequest, LaunchTemplateSpecification, MarketType, RequestLaunchTemplateData,
        ResourceType, Tag, TagSpecification,
    };
    println!("spot-recovery: EC2 reclaims the Spot gateway; the suite brings it back");
    let emulator = Emulator::start().await?;
    // EC2 takes its time to reclaim an instance (30 s); the demo's bed time runs ten times faster.
    emulator.set_time_scale(10.0).await?;
    let admin = emulator.admin().await;
    let ec2 = aws_sdk_ec2::Client::new(&admin);
    let image = ec2.describe_images().owners("amazon").send().await?;
    let image = image.images().first().and_then(|i| i.image_id()).context("an AMI")?.to_owned();
    let template = ec2
        .create_launch_template()
        .launch_template_name("openclaw-gateway")
        .launch_template_data(RequestLaunchTemplateData::builder().image_id(image).build())
        .send()
        .await?;
    let template_id = template.launch_template.and_then(|t| t.launch_template_id).context("template id")?;
    let tags = |kind: ResourceType, pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .fold(TagSpecification::builder().resource_type(kind), |b, (k, v)| {
                b.tags(Tag::builder().key(*k).value(*v).build())
            })
            .build()
    };
    let gateway = ec2
        .run_instances()
        .launch_template(LaunchTemplateSpecification::builder().launch_template_id(&template_id).build())
        .min_count(1)
        .max_count(1)
        .placement(aws_sdk_ec2::types::Placement::builder().availability_zone(AZ).build())
        .instance_market_options(InstanceMarketOptionsRequest::builder().market_type(MarketType::Spot).build())
        .tag_specifications(tags(ResourceType::Instance, &[("Name", "openclaw-gateway"), ("openclaw:role", "gateway")]))
        .send()
        .await?;
    let gateway = gateway.instances().first().and_then(|i| i.instance_id()).context("instance id")?.to_owned();
    let volume = OpenClawAccount::volume(
        &ec2,
        &[("Name", "openclaw-data"), ("openclaw:snapshot", "daily"), ("openclaw:role", "gateway")],
    )
    .await?;
    ec2.attach_volume().volume_id(&volume).instance_id(&gateway).device("/dev/sdf").send().await?;
    let address = ec2.allocate_address().domain(DomainType::Vpc).send().await?.allocation_id.context("EIP")?;
    ec2.associate_address().allocation_id(&address).instance_id(&gateway).send().await?;
    let (topic_arn, _) = integration_tests::account::ops_topic_with_capture(&admin).await?;

    let stack = Stack::new(&emulator)
        .await?
        .topic("OpsTopic", &topic_arn)
        .param("SpotLaunchTemplateId", &template_id)
        .param("GatewayElasticIpAllocationId", &address)
        .bucket("BackupBucket", "openclaw-backups-demo-spot")
        .with_spot_follow_up(&emulator)
        .await?;
    let principal = Principal::for_function(&emulator, "SpotRecoveryFunction", &stack).await?;
    let mut env = emulator.function_env(&principal.keys);
    env.extend([
        ("NOTIFY_TOPIC_ARN".to_owned(), topic_arn),
        ("LAUNCH_TEMPLATE_ID".to_owned(), template_id),
        ("ELASTIC_IP_ALLOCATION_ID".to_owned(), address),
        ("RUST_LOG".to_owned(), "off".to_owned()),
    ]);
    let function = Function::start("spot-recovery", &env).await?;
    let event = |detail_type: &str, detail: Value| {
        json!({"version": "0", "id": format!("demo-{detail_type}"), "detail-type": detail_type, "source": "aws.ec2",
               "account": "123456789012", "time": chrono::Utc::now().to_rfc3339(), "region": "us-east-1",
               "resources": [format!("arn:aws:ec2:us-east-1:123456789012:instance/{gateway}")], "detail": detail})
    };
    println!("  gateway {gateway} (Spot) in {AZ}, data volume {volume} at /dev/sdf, an Elastic IP");
    let warned = function
        .invoke(&event(
            "EC2 Spot Instance Interruption Warning",
            json!({"instance-id": gateway, "instance-action": "terminate"}),
        ))
        .await?
        .response();
    println!(
        "  the two-minute warning: final snapshot {}",
        warned["outcome"]["snapshot_id"].as_str().unwrap_or("(none)")
    );
    emulator.spot_interruption(&gateway, "terminate").await?;
    let state_change =
        event("EC2 Instance State-change Notification", json!({"instance-id": gateway, "state": "terminated"}));
    let replaced = function.invoke(&state_change).await?.response();
    println!("  terminated; the recovery timeline:");
    for step in replaced["outcome"]["timeline"].as_array().into_iter().flatten() {
        println!("    {}", step["what"].as_str().unwrap_or_default());
    }
    let again = function.invoke(&state_change).await?.response();
    println!(
        "  the same event again (EventBridge is at-least-once): {} (no second replacement)",
        again["plan"]["action"].as_str().unwrap_or_default()
    );
    println!();
    Ok(())
}

/// cost-check on the 2nd of the month: last month against the seed's full-tier estimate, line by
/// line, with the NAT Gateway running over.
async fn show_cost(demo: &Demo) -> anyhow::Result<()> {
    // Cost Explorer answers only for periods up to its "today" (the emulator's clock, which the
    // demo has moved): the check runs as on that day, for the month before it.
    let clock: Value = reqwest::get(format!("{}/_testbed/clock", demo.emulator.url)).await?.json().await?;
    let today = chrono::DateTime::parse_from_rfc3339(clock["now"].as_str().unwrap_or_default())?.date_naive();
    demo.emulator.queue_cost_and_usage(vec![groups(&full_with_nat_overrun())]).await?;
    let stack = Stack::new(&demo.emulator).await?.topic("OpsTopic", &demo.account.topic_arn);
    let principal = Principal::for_function(&demo.emulator, "CostCheckFunction", &stack).await?;
    let mut env = demo.emulator.function_env(&principal.keys);
    env.extend([
        ("NOTIFY_TOPIC_ARN".to_owned(), demo.account.topic_arn.clone()),
        ("COST_TIER".to_owned(), "full".to_owned()),
        ("RUST_LOG".to_owned(), "off".to_owned()),
    ]);
    let function = Function::start("cost-check", &env).await?;
    let report = function.invoke(&json!({"check": "monthly", "as_of": today.to_string()})).await?.response();
    println!(
        "cost-check: {} against the seed's full-tier estimate ({} Cost Explorer request(s)):",
        report["comparison"]["period_start"].as_str().unwrap_or_default(),
        report["requests"]
    );
    let text = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
    for line in report["comparison"]["lines"].as_array().into_iter().flatten() {
        println!(
            "  {:<52} estimate {:>7}  actual {:>7}  {:>8} %  {}",
            text(&line["name"]),
            text(&line["estimate"]),
            text(&line["actual"]),
            text(&line["pct"]).replace("null", "—"),
            text(&line["status"])
        );
    }
    let drivers: Vec<String> =
        report["comparison"]["drivers"].as_array().into_iter().flatten().map(|d| text(&d["name"])).collect();
    println!("  driving the overrun: {}\n", drivers.join("; "));
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

    // The stack copies snapshots to a DR region (the emulator's us-west-2, its key made there); only
    // the `copier` below is configured to, so the other runs show the home region alone.
    let dr_admin = demo.emulator.admin_in(DR_REGION).await;
    let dr_key = aws_sdk_kms::Client::new(&dr_admin).create_key().description("openclaw-ops DR (demo)").send().await?;
    let dr_key = dr_key.key_metadata.and_then(|k| k.arn).context("the DR key's ARN")?;
    let stack = Stack::new(&demo.emulator)
        .await?
        .topic("OpsTopic", &demo.account.topic_arn)
        .param("SnapshotCopyRegion", DR_REGION)
        .param("SnapshotCopyKmsKeyId", &dr_key);
    let principal = Principal::for_function(&demo.emulator, "EbsSnapshotsFunction", &stack).await?;
    let mut env = demo.emulator.function_env(&principal.keys);
    env.push(("NOTIFY_TOPIC_ARN".into(), demo.account.topic_arn.clone()));
    env.push(("RUST_LOG".into(), "off".into()));
    // The functions run on the scenario's clock: ebs-snapshots refuses a scheduled event that its
    // own clock says no genuine delivery carries.
    let function = Function::start_at("ebs-snapshots", &env, scheduled_at(1)).await?;
    let mut dry_env = env.clone();
    dry_env.push(("DRY_RUN".into(), "true".into()));
    let dry = Function::start_at("ebs-snapshots", &dry_env, scheduled_at(1)).await?;
    let mut guarded_env = env.clone();
    guarded_env.push(("MAX_DELETES".into(), "1".into()));
    let guarded = Function::start_at("ebs-snapshots", &guarded_env, scheduled_at(1)).await?;
    let mut copier_env = env.clone();
    copier_env.push(("SNAPSHOT_COPY_REGION".into(), DR_REGION.into()));
    copier_env.push(("SNAPSHOT_COPY_KMS_KEY_ID".into(), dr_key.clone()));
    let copier = Function::start_at("ebs-snapshots", &copier_env, scheduled_at(1)).await?;
    let set_clocks = async |now| -> anyhow::Result<()> {
        demo.emulator.set_clock(now).await?;
        for f in [&function, &dry, &guarded, &copier] {
            f.set_clock(now)?;
        }
        Ok(())
    };

    set_clocks(scheduled_at(1)).await?;
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
        set_clocks(scheduled_at(n) + TimeDelta::seconds(2)).await?;
        let outcome = function.invoke(&scheduled_event(n)).await?;
        demo.print_day(n, outcome).await?;
    }
    let again = function.invoke(&scheduled_event(DAYS)).await?.response();
    println!(
        "Same event again (EventBridge is at-least-once): created {}, already present {}.\n",
        count(&again, "created"),
        count(&again, "already_present")
    );

    set_clocks(scheduled_at(DAYS) + TimeDelta::hours(6)).await?;
    let copied = copier.invoke(&json!({})).await?.response();
    let again = copier.invoke(&json!({})).await?.response();
    println!(
        "Off-region copy to {DR_REGION} (SnapshotCopyRegion, a manual run once day {}'s snapshots completed): copied {} \
         snapshot(s), encrypted with the DR key, pruned there by the same plan; the same run again: copied {}.\n",
        DAYS,
        copied["dr"]["copied"].as_array().map_or(0, Vec::len),
        again["dr"]["copied"].as_array().map_or(0, Vec::len)
    );

    let breaker_day = DAYS + 1;
    println!(
        "Circuit breaker: day {} with MaxDeletesPerRun=1 (default 20), so the day's 2 deletions trip it:",
        day(breaker_day)
    );
    set_clocks(scheduled_at(breaker_day) + TimeDelta::seconds(2)).await?;
    let held = guarded.invoke(&scheduled_event(breaker_day)).await?.response();
    let note = demo.account.notifications().await?.pop().unwrap_or_default();
    println!(
        "  created {}, deleted {}, held {} (limit {}); notified {}: {}",
        count(&held, "created"),
        count(&held, "deleted"),
        count(&held, "held_by_breaker"),
        held["circuit_breaker"]["limit"],
        note["severity"].as_str().unwrap_or("nobody"),
        note["title"].as_str().unwrap_or_default()
    );
    set_clocks(scheduled_at(breaker_day) + TimeDelta::hours(1)).await?;
    let plan = guarded.invoke(&json!({"dry_run": true})).await?.response();
    let confirm = plan["circuit_breaker"]["would_delete"].as_u64().unwrap_or_default();
    let wrong = guarded.invoke(&json!({"action": "prune", "confirm_deletes": confirm + 1})).await?;
    let refused = match wrong {
        Outcome::Error { error_message, .. } => error_message,
        Outcome::Response(r) => format!("not refused: {r}"),
    };
    println!("  {{\"action\":\"prune\",\"confirm_deletes\":{}}} -> refused: {refused}", confirm + 1);
    let pruned = guarded.invoke(&json!({"action": "prune", "confirm_deletes": confirm})).await?.response();
    println!("  {{\"action\":\"prune\",\"confirm_deletes\":{confirm}}} -> deleted {}\n", count(&pruned, "deleted"));

    println!("{FAILING_DAYS} days on which CreateSnapshot is denied (say, a broken permission boundary):");
    principal.deny(&demo.emulator, &["ec2:CreateSnapshot"]).await?;
    header();
    for n in breaker_day + 1..=breaker_day + FAILING_DAYS {
        set_clocks(scheduled_at(n) + TimeDelta::seconds(2)).await?;
        let outcome = function.invoke(&scheduled_event(n)).await?;
        demo.print_day(n, outcome).await?;
    }
    println!("Each failing day published a critical notification and failed the invocation (so Lambda retries");
    println!("it and the Errors alarm fires); the floor kept the newest 3 snapshots of each volume.\n");

    show_backup(&demo).await?;
    show_spot_recovery().await?;
    show_cost(&demo).await?;
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
