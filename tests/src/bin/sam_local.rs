//! `sam local invoke` of every function with every sample event (events/<function>/*.json), against
//! the test bed's emulator, in a Docker container as SAM CLI runs it. Run by scripts/sam-test.sh after
//! `sam build` (which also makes the stand-in base image and starts Docker); it prints one line per
//! invocation and `N passed, N failed`, and exits non-zero when any failed.
//!
//! Each function runs as the IAM user holding its template policy, with testbed/sam/env-vars.json's
//! placeholders filled with the emulator's resources. A sample named `bad-*` must fail, with the very
//! error the same bootstrap gives through the integration tests' local Runtime API; every other one
//! must succeed, and some must leave their mark (snapshots, a backup, a message to Telegram).
//!
//! SAM CLI puts the container on Docker's default bridge (its `--docker-network host` does not give
//! the container the host's network namespace), so the emulator and the fake Telegram are reached at
//! this machine's address on that bridge (`OPENCLAW_SAM_HOST_ADDRESS`, e.g. 172.17.0.1): the fake
//! Telegram listens there, and a relay forwards that address to the emulator on loopback.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow, bail};
use integration_tests::account::OpenClawAccount;
use integration_tests::backup_bucket::{configure_like_the_template, gateway_instance_role};
use integration_tests::costs::{FULL_ON_BUDGET, groups};
use integration_tests::emulator::{Emulator, Keys};
use integration_tests::iam::Principal;
use integration_tests::openclaw_state::state_dir;
use integration_tests::runtime::{Function, Outcome};
use integration_tests::stack::Stack;
use integration_tests::workspace_root;
use serde_json::{Value, json};

/// The functions: logical id in template.yaml, crate (and events/ folder).
const FUNCTIONS: [(&str, &str); 5] = [
    ("EbsSnapshotsFunction", "ebs-snapshots"),
    ("S3BackupFunction", "s3-backup"),
    ("TelegramNotifyFunction", "telegram-notify"),
    ("CostCheckFunction", "cost-check"),
    ("SpotRecoveryFunction", "spot-recovery"),
];

/// The stand-in for AWS's base image (testbed/sam/base-image.sh builds it).
const BASE_IMAGE: &str = "openclaw-ops/lambda-base:local-2";
const BUCKET: &str = "openclaw-ops-backups";
/// The delivery records of telegram-notify (TelegramDeliveryRecordBucket).
const DELIVERY_RECORDS: &str = "openclaw-ops-telegram-deliveries";
const CHAT: &str = "111";

/// The Telegram Bot API as far as telegram-notify uses it: every sendMessage is taken and kept.
async fn fake_telegram(address: &str) -> anyhow::Result<(String, Arc<Mutex<Vec<Value>>>)> {
    use axum::routing::post;
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
    let listener = tokio::net::TcpListener::bind((address, 0)).await.with_context(|| format!("binding {address}"))?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, received))
}

/// A TCP relay from `address` (the Docker bridge side of this machine) to the emulator on loopback.
async fn relay(address: &str, emulator_url: &str) -> anyhow::Result<String> {
    let target = emulator_url.trim_start_matches("http://").to_owned();
    let listener = tokio::net::TcpListener::bind((address, 0)).await.with_context(|| format!("binding {address}"))?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    Ok(url)
}

/// A copy of a scheduled-event sample whose `time` is now, in `work`.
fn delivered_now(sample: &Path, work: &Path) -> anyhow::Result<PathBuf> {
    let mut event: serde_json::Value = serde_json::from_slice(&std::fs::read(sample)?)?;
    event["time"] = serde_json::Value::String(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
    let name = sample.file_name().context("a sample has a file name")?;
    let copy = work.join(format!("now-{}", name.to_string_lossy()));
    std::fs::write(&copy, serde_json::to_vec_pretty(&event)?)?;
    Ok(copy)
}

/// testbed/sam/env-vars.json with every `<Output>` placeholder replaced; an unknown one is an error.
fn fill_env_vars(template: &str, values: &BTreeMap<&str, String>) -> anyhow::Result<Value> {
    let mut doc: Value = serde_json::from_str(template).context("testbed/sam/env-vars.json")?;
    for (function, vars) in doc.as_object_mut().context("env-vars.json: an object of functions")? {
        for (name, value) in vars.as_object_mut().with_context(|| format!("{function}: an object"))? {
            let raw = value.as_str().with_context(|| format!("{function}.{name}: a string"))?;
            if let Some(output) = raw.strip_prefix('<').and_then(|r| r.strip_suffix('>')) {
                let filled =
                    values.get(output).with_context(|| format!("{function}.{name}: no value for <{output}>"))?;
                *value = Value::String(filled.clone());
            }
        }
    }
    Ok(doc)
}

/// How `sam local invoke` printed the outcome: the function's response, or Lambda's error shape.
fn outcome_of(stdout: &str) -> anyhow::Result<Outcome> {
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).context("sam printed no response")?;
    let value: Value = serde_json::from_str(last).with_context(|| format!("response is not JSON: {last}"))?;
    // Lambda's error shape: errorType and errorMessage (and perhaps stackTrace), nothing else.
    let error = match (value.get("errorType"), value.get("errorMessage")) {
        (Some(t), Some(m)) if value.as_object().is_some_and(|o| o.len() <= 3) => {
            Some((t.as_str().unwrap_or_default().to_owned(), m.as_str().unwrap_or_default().to_owned()))
        }
        _ => None,
    };
    Ok(match error {
        Some((error_type, error_message)) => Outcome::Error { error_type, error_message },
        None => Outcome::Response(value),
    })
}

struct Run<'a> {
    sam: PathBuf,
    root: &'a Path,
    env_vars: PathBuf,
    overrides: Vec<String>,
}

impl Run<'_> {
    /// The README's command: `sam local invoke <LogicalId> -e <event> --env-vars ... --parameter-overrides ...`.
    fn invoke(&self, logical_id: &str, event: &Path, keys: &Keys) -> anyhow::Result<Outcome> {
        let output = Command::new(&self.sam)
            .current_dir(self.root)
            .args(["local", "invoke", logical_id, "--event"])
            .arg(event)
            .arg("--env-vars")
            .arg(&self.env_vars)
            .arg("--parameter-overrides")
            .args(&self.overrides)
            .args(["--invoke-image", BASE_IMAGE, "--skip-pull-image", "--docker-network", "host"])
            .env("AWS_ACCESS_KEY_ID", &keys.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &keys.secret_access_key)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_REGION", "us-east-1")
            .env("SAM_CLI_TELEMETRY", "0")
            .output()
            .context("running sam")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!("sam local invoke exited with {}:\n{stderr}", output.status);
        }
        outcome_of(&stdout).map_err(|e| anyhow!("{e}\n--- sam's stderr:\n{stderr}"))
    }
}

/// What a successful sample must have done, beyond succeeding.
fn check_response(function: &str, sample: &str, response: &Value, telegram_messages: usize) -> anyhow::Result<()> {
    let count = |field: &str| response[field].as_array().map_or(0, Vec::len);
    match (function, sample) {
        // The gateway's root and data volumes carry the snapshot tag. The manual run makes today's;
        // the schedule, delivered now (a scheduled event must be recent), finds them there.
        ("ebs-snapshots", "manual") if count("created") != 2 => bail!("expected 2 snapshots created, got {response}"),
        ("ebs-snapshots", "scheduled") if count("created") + count("already_present") != 2 => {
            bail!("expected today's 2 snapshots created or present, got {response}")
        }
        ("ebs-snapshots", "manual-dry-run") if count("would_create") != 2 => {
            bail!("expected 2 snapshots planned, got {response}")
        }
        ("s3-backup", "manual-backup" | "scheduled") if count("backed_up") != 1 => {
            bail!("expected the gateway backed up, got {response}")
        }
        ("telegram-notify", _) if telegram_messages == 0 => bail!("nothing reached Telegram: {response}"),
        // The sample's replacement is no instance of the emulator's: gone, so escalated.
        ("spot-recovery", "follow-up") if response["decision"] != "escalate" => {
            bail!("expected the follow-up escalated (its replacement does not exist), got {response}")
        }
        ("cost-check", _) if response["comparison"]["lines"].as_array().is_none_or(Vec::is_empty) => {
            bail!("expected the estimate's lines compared, got {response}")
        }
        _ => Ok(()),
    }
}

/// The restore sample names a monthly backup by key: put the backup made by an earlier sample there
/// (archive and manifest, as s3-backup's monthly promotion copies them) with the record s3-backup
/// writes once it read such a copy back (a restore names only recorded backups).
async fn backup_at_the_samples_key(s3: &aws_sdk_s3::Client, sample: &Path, made: Option<&str>) -> anyhow::Result<()> {
    let made = made.context("no earlier sample made a backup to restore")?;
    let event: Value = serde_json::from_slice(&std::fs::read(sample)?)?;
    let key = event["backup"].as_str().context("the sample names no backup key")?;
    let manifest = |archive: &str| archive.replace(".tar.gz", ".manifest.json");
    let mut versions = Vec::new();
    for (from, to) in [(made.to_owned(), key.to_owned()), (manifest(made), manifest(key))] {
        let copied = s3.copy_object().bucket(BUCKET).copy_source(format!("{BUCKET}/{from}")).key(&to).send().await?;
        versions.push(json!({"key": to, "version_id": copied.version_id()}));
    }
    let head = s3.head_object().bucket(BUCKET).key(manifest(key)).send().await?;
    let body = s3.get_object().bucket(BUCKET).key(manifest(key)).send().await?.body.collect().await?.into_bytes();
    let listed: Value = serde_json::from_slice(&body)?;
    let record = json!({
        "schema": "openclaw-ops/verified-backup@1", "gateway_id": "sample", "gateway": "openclaw-gateway",
        "instance_id": "sample", "kind": "monthly", "made_at": "2026-11-01T02:30:00Z",
        "verified_at": "2026-11-01T02:31:00Z", "archive": versions[0], "manifest": versions[1],
        "size": listed["archive"]["size"], "sha256": listed["archive"]["sha256"],
    });
    anyhow::ensure!(head.version_id().is_some(), "the sample's bucket is not versioned");
    let record_key = key.replace(".tar.gz", ".verified-monthly.json");
    s3.put_object().bucket(BUCKET).key(record_key).body(serde_json::to_vec(&record)?.into()).send().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = workspace_root();
    let address = std::env::var("OPENCLAW_SAM_HOST_ADDRESS").context(
        "OPENCLAW_SAM_HOST_ADDRESS (this machine's address on Docker's bridge) is not set: run scripts/sam-test.sh",
    )?;
    let sam = root.join(".venv-sam/bin/sam");
    if !sam.exists() || !root.join(".aws-sam/build/template.yaml").exists() {
        bail!("no SAM CLI in .venv-sam or no .aws-sam/build: run scripts/sam-test.sh (it builds first)");
    }

    let emulator = Emulator::start().await.context("starting the emulator (testbed/setup.sh makes its venv)")?;
    let endpoint = relay(&address, &emulator.url).await?;
    let (telegram_url, telegram) = fake_telegram(&address).await?;
    let account = OpenClawAccount::seed(&emulator).await?;
    let admin = &account.admin;

    // The stack's resources, as the template makes them.
    let s3 = aws_sdk_s3::Client::new(admin);
    s3.create_bucket().bucket(BUCKET).send().await?;
    let stack = Stack::new(&emulator).await?.bucket("BackupBucket", BUCKET).topic("OpsTopic", &account.topic_arn);
    let key_arn = stack.attr("OpsKey.Arn").context("key arn")?.to_owned();
    configure_like_the_template(&s3, BUCKET, &key_arn).await?;
    let secret = aws_sdk_secretsmanager::Client::new(admin)
        .create_secret()
        .name("telegram")
        .secret_string(r#"{"bot_token": "123456:sam-local"}"#)
        .send()
        .await?
        .arn
        .context("secret arn")?;
    let dead_letters = aws_sdk_sqs::Client::new(admin)
        .create_queue()
        .queue_name("telegram-dlq")
        .send()
        .await?
        .queue_url
        .context("queue")?;

    // This machine plays the gateway for s3-backup's SSM command, with the instance role's keys.
    let state = state_dir("sam-local");
    let dead_letters_arn = format!("arn:aws:sqs:{}:123456789012:telegram-dlq", emulator.region);
    s3.create_bucket().bucket(DELIVERY_RECORDS).send().await?;
    let stack = stack
        .bucket("TelegramDeliveryRecordBucket", DELIVERY_RECORDS)
        .resource("TelegramSecret", &secret, &[])
        .resource("TelegramDeadLetterQueue", &dead_letters, &[("Arn", &dead_letters_arn)])
        .param("SpotLaunchTemplateId", "lt-0123456789abcdef0")
        .with_spot_follow_up(&emulator)
        .await?;
    let role = gateway_instance_role(&emulator).await?;
    let instance_env: serde_json::Map<String, Value> =
        emulator.function_env(&role.keys).into_iter().map(|(k, v)| (k, json!(v))).collect();
    emulator.register_instance(&account.instance_id, instance_env).await?;

    // Cost Explorer's answers: a month of the full tier for each check, a forecast for the weekly one.
    emulator.queue_cost_and_usage(vec![groups(FULL_ON_BUDGET); 4]).await?;
    emulator.queue_cost_forecasts(vec![json!({"result": {"Total": {"Amount": "70.00", "Unit": "USD"}}}); 2]).await?;

    let values = BTreeMap::from([
        ("OpsTopicArn", account.topic_arn.clone()),
        ("BackupBucketName", BUCKET.to_owned()),
        ("OpsKeyArn", key_arn.clone()),
        ("TelegramSecretArn", secret.clone()),
        ("TelegramDeadLetterQueueUrl", dead_letters.clone()),
        ("TelegramDeliveryRecordBucketName", DELIVERY_RECORDS.to_owned()),
        ("SpotFollowUpScheduleGroupName", integration_tests::stack::SPOT_FOLLOW_UP_GROUP.to_owned()),
        ("SpotFollowUpSchedulerRoleArn", stack.attr("SpotFollowUpSchedulerRole.Arn").context("role arn")?.to_owned()),
    ]);
    let mut filled = fill_env_vars(&std::fs::read_to_string(root.join("testbed/sam/env-vars.json"))?, &values)?;
    // The emulator and the fake Telegram instead of AWS and Telegram. SAM CLI does not resolve the
    // template's `!If` on LocalAwsEndpointUrl / LocalTelegramApiUrl (it declares the variables blank),
    // so the values come from the env-vars file, as the README says.
    for (logical_id, _) in FUNCTIONS {
        let block = filled[logical_id].as_object_mut().with_context(|| format!("env-vars.json has no {logical_id}"))?;
        block.insert("AWS_ENDPOINT_URL".into(), json!(endpoint));
        if logical_id == "TelegramNotifyFunction" {
            block.insert("TELEGRAM_API_URL".into(), json!(telegram_url));
        }
    }
    let work = root.join("target/sam-local");
    std::fs::create_dir_all(&work)?;
    let env_vars = work.join("env-vars.json");
    std::fs::write(&env_vars, serde_json::to_string_pretty(&filled)?)?;

    let run = Run {
        sam,
        root: &root,
        env_vars,
        overrides: vec![
            "Architecture=x86_64".into(),
            format!("TelegramChats={CHAT}"),
            format!("StateDir={}", state.root.display()),
        ],
    };

    let (mut passed, mut failed) = (0, 0);
    let mut last_backup: Option<String> = None;
    for (logical_id, function) in FUNCTIONS {
        let principal = Principal::for_function(&emulator, logical_id, &stack).await?;
        // The same bootstrap through the integration tests' Runtime API: the reference for bad samples.
        let mut env = emulator.function_env(&principal.keys);
        for (name, value) in filled[logical_id].as_object().into_iter().flatten() {
            if name != "AWS_ENDPOINT_URL" {
                env.push((name.clone(), value.as_str().unwrap_or_default().to_owned()));
            }
        }
        env.extend([("TELEGRAM_CHATS".to_owned(), CHAT.to_owned()), ("RUST_LOG".to_owned(), "off".to_owned())]);
        let reference = Function::start(function, &env).await?;

        let mut samples: Vec<PathBuf> = std::fs::read_dir(root.join("events").join(function))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        samples.sort();
        for path in samples {
            let sample = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            if (function, sample.as_str()) == ("s3-backup", "restore-key-dry-run") {
                backup_at_the_samples_key(&s3, &path, last_backup.as_deref()).await?;
            }
            // ebs-snapshots refuses a scheduled event whose `time` no genuine delivery carries (older
            // than EventBridge's and Lambda's retries): its sample is sent as the schedule sends it now.
            let path = if (function, sample.as_str()) == ("ebs-snapshots", "scheduled") {
                delivered_now(&path, &work)?
            } else {
                path
            };
            let before = telegram.lock().unwrap().len();
            let started = std::time::Instant::now();
            let result = match run.invoke(logical_id, &path, &principal.keys) {
                Err(e) => Err(e),
                Ok(outcome) if sample.starts_with("bad-") => match outcome {
                    Outcome::Response(v) => Err(anyhow!("a bad sample succeeded: {v}")),
                    Outcome::Error { error_message, .. } => {
                        let raw = std::fs::read(&path)?;
                        match reference.invoke_raw(raw).await? {
                            Outcome::Error { error_message: expected, .. } if expected == error_message => Ok(()),
                            other => Err(anyhow!("error {error_message:?}; the Runtime API run gave {other:?}")),
                        }
                    }
                },
                Ok(Outcome::Error { error_type, error_message }) => {
                    Err(anyhow!("failed: {error_type}: {error_message}"))
                }
                Ok(Outcome::Response(response)) => {
                    if let Some(key) = response["backed_up"][0]["archive_key"].as_str() {
                        last_backup = Some(key.to_owned());
                    }
                    let messages = telegram.lock().unwrap().len() - before;
                    check_response(function, &sample, &response, messages)
                }
            };
            let took = started.elapsed().as_secs_f32();
            match result {
                Ok(()) => {
                    passed += 1;
                    println!("ok    {logical_id} events/{function}/{sample}.json ({took:.1} s)");
                }
                Err(e) => {
                    failed += 1;
                    println!("FAIL  {logical_id} events/{function}/{sample}.json ({took:.1} s): {e:#}");
                }
            }
        }
    }
    println!("\nsam local invoke: {passed} passed, {failed} failed");
    if failed > 0 || passed == 0 {
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_unknown_ones_refused() {
        let values = BTreeMap::from([("OpsTopicArn", "arn:topic".to_owned())]);
        let filled = fill_env_vars(r#"{"F": {"A": "<OpsTopicArn>", "B": "plain"}}"#, &values).unwrap();
        assert_eq!(filled, json!({"F": {"A": "arn:topic", "B": "plain"}}));
        assert!(fill_env_vars(r#"{"F": {"A": "<Nope>"}}"#, &values).is_err());
    }

    #[test]
    fn sam_output_is_read_as_lambda_reports_it() {
        let err = outcome_of("log\n{\"errorType\": \"InputError\", \"errorMessage\": \"bad\"}\n").unwrap();
        assert_eq!(err, Outcome::Error { error_type: "InputError".into(), error_message: "bad".into() });
        assert_eq!(outcome_of("{\"created\": []}").unwrap(), Outcome::Response(json!({"created": []})));
        assert!(outcome_of("").is_err());
    }

    #[test]
    fn the_committed_env_vars_file_names_only_variables_the_template_declares() {
        let template = integration_tests::template::Template::load().unwrap();
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(workspace_root().join("testbed/sam/env-vars.json")).unwrap())
                .unwrap();
        for (logical_id, vars) in doc.as_object().unwrap() {
            let declared = template.function_environment(logical_id).unwrap();
            for name in vars.as_object().unwrap().keys() {
                assert!(
                    declared.contains(name),
                    "{logical_id}.{name}: SAM ignores a variable the template does not declare"
                );
            }
        }
    }
}
