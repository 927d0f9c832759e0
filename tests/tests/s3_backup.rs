//! s3-backup end to end: the real bootstrap (as the template's IAM policy) finds the gateway, runs
//! the backup script through SSM (run for real on this machine), reads the result back, and keeps the
//! month's first under monthly/.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use integration_tests::account::ops_topic_with_capture;
use integration_tests::backup_bucket::{configure_like_the_template, gateway_instance_role};
use integration_tests::emulator::Emulator;
use integration_tests::iam::Principal;
use integration_tests::openclaw_state::{StateDir, files_under, state_dir, untar};
use integration_tests::runtime::Function;
use integration_tests::stack::Stack;
use serde_json::{Value, json};

const BUCKET: &str = "openclaw-backups-e2e";
const LOGICAL_ID: &str = "S3BackupFunction";

struct Bed {
    emulator: Emulator,
    principal: Principal,
    instance_role: Principal,
    s3: aws_sdk_s3::Client,
    topic_arn: String,
    queue_url: String,
    state: StateDir,
    key_id: String,
}

impl Bed {
    async fn start(name: &str) -> Bed {
        Self::start_with(name, &[]).await
    }

    /// With more environment for the instance's scripts (a `PATH` with a stand-in tool, say).
    async fn start_with(name: &str, instance_env: &[(&str, String)]) -> Bed {
        let emulator = Emulator::start().await.unwrap();
        let admin = emulator.admin().await;
        let s3 = aws_sdk_s3::Client::new(&admin);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        let stack = Stack::new(&emulator).await.unwrap().bucket("BackupBucket", BUCKET);
        let key_id = stack.attr("OpsKey.Arn").unwrap().to_owned();
        configure_like_the_template(&s3, BUCKET, &key_id).await.unwrap();
        let (topic_arn, queue_url) = ops_topic_with_capture(&admin).await.unwrap();
        let stack = stack.topic("OpsTopic", &topic_arn);

        let ec2 = aws_sdk_ec2::Client::new(&admin);
        let image =
            ec2.describe_images().owners("amazon").send().await.unwrap().images.unwrap()[0].image_id.clone().unwrap();
        let tags = TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .tags(Tag::builder().key("Name").value("openclaw-gateway").build())
            .tags(Tag::builder().key("openclaw:role").value("gateway").build())
            .build();
        let run = ec2
            .run_instances()
            .image_id(image)
            .min_count(1)
            .max_count(1)
            .tag_specifications(tags)
            .send()
            .await
            .unwrap();
        let instance = run.instances()[0].instance_id().unwrap().to_owned();
        // The machine plays the gateway; its instance role holds exactly GatewayBackupPolicy (its S3
        // resources resolved: moto evaluates those, so a write outside the prefix is refused).
        let instance_role = gateway_instance_role(&emulator, &stack).await.unwrap();
        let mut env = serde_json::Map::new();
        for (k, v) in emulator.function_env(&instance_role.keys) {
            env.insert(k, json!(v));
        }
        for (k, v) in instance_env {
            env.insert((*k).to_owned(), json!(v));
        }
        emulator.register_instance(&instance, env).await.unwrap();

        let principal = Principal::for_function(&emulator, LOGICAL_ID, &stack).await.unwrap();
        Bed { emulator, principal, instance_role, s3, topic_arn, queue_url, state: state_dir(name), key_id }
    }

    async fn function(&self, state_dir: &str) -> Function {
        let mut env = self.emulator.function_env(&self.principal.keys);
        env.extend([
            ("NOTIFY_TOPIC_ARN".to_owned(), self.topic_arn.clone()),
            ("BACKUP_BUCKET".to_owned(), BUCKET.to_owned()),
            ("BACKUP_KMS_KEY_ID".to_owned(), self.key_id.clone()),
            ("STATE_DIR".to_owned(), state_dir.to_owned()),
        ]);
        Function::start("s3-backup", &env).await.unwrap()
    }

    /// The function on a time scale: its deadline (template.yaml's `Timeout`) `scale` times sooner.
    async fn function_scaled(&self, state_dir: &str, scale: f64) -> Function {
        let mut env = self.emulator.function_env(&self.principal.keys);
        env.extend([
            ("NOTIFY_TOPIC_ARN".to_owned(), self.topic_arn.clone()),
            ("BACKUP_BUCKET".to_owned(), BUCKET.to_owned()),
            ("BACKUP_KMS_KEY_ID".to_owned(), self.key_id.clone()),
            ("STATE_DIR".to_owned(), state_dir.to_owned()),
        ]);
        Function::start_scaled("s3-backup", &env, scale).await.unwrap()
    }

    async fn keys(&self) -> Vec<String> {
        let out = self.s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
        out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
    }

    async fn sent_commands(&self) -> usize {
        let calls = self.emulator.calls_by(&self.principal.keys).await.unwrap();
        calls.iter().filter(|c| c.action == "ssm:SendCommand").count()
    }
}

fn scheduled() -> Value {
    json!({"version": "0", "id": "e-1", "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012",
           "time": "2026-11-25T02:30:00Z", "region": "us-east-1", "resources": [], "detail": {}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_are_verified_once_a_day_and_the_months_first_is_kept_monthly() {
    let bed = Bed::start("e2e").await;
    let function = bed.function(&bed.state.root.to_string_lossy()).await;

    let report = function.invoke(&scheduled()).await.unwrap().response();
    let done = &report["backed_up"][0];
    assert_eq!(done["gateway"], "openclaw-gateway");
    assert_eq!(done["archive_key"], "openclaw/daily/openclaw-gateway/2026/11/25/openclaw-20261125T023000Z.tar.gz");
    assert!(done["files"].as_u64().unwrap() >= 6);
    assert_eq!(done["monthly_copy"], "openclaw/monthly/openclaw-gateway/2026/11/openclaw-20261125T023000Z.tar.gz");
    assert_eq!(report["drift"], json!([]), "the bucket is as the template makes it");
    // The freshness alarm watches BackupAgeHours: it must be declared as a CloudWatch metric.
    let emf: Value = function
        .output()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("_aws").is_some())
        .expect("an EMF line");
    assert_eq!(emf["_aws"]["CloudWatchMetrics"][0]["Metrics"], json!([{"Name": "BackupAgeHours", "Unit": "None"}]));
    assert_eq!(emf["BackupAgeHours"], 0.0);
    let keys = bed.keys().await;
    assert!(
        keys.contains(&"openclaw/monthly/openclaw-gateway/2026/11/openclaw-20261125T023000Z.manifest.json".to_owned())
    );

    // The same event again: a verified scheduled backup of the date exists, so nothing runs.
    let again = function.invoke(&scheduled()).await.unwrap().response();
    assert_eq!(again["backed_up"], json!([]));
    assert_eq!(again["plan"]["already_done"][0]["gateway"], "openclaw-gateway");
    assert_eq!(bed.sent_commands().await, 1);

    // A corrupt archive does not count: the next delivery replaces it.
    bed.s3
        .put_object()
        .bucket(BUCKET)
        .key("openclaw/daily/openclaw-gateway/2026/11/25/openclaw-20261125T023000Z.tar.gz")
        .body(b"not the archive".to_vec().into())
        .send()
        .await
        .unwrap();
    let replaced = function.invoke(&scheduled()).await.unwrap().response();
    assert_eq!(replaced["backed_up"].as_array().unwrap().len(), 1, "{replaced}");
    assert_eq!(replaced["backed_up"][0]["monthly_copy"], Value::Null, "the month already has its copy");
    assert_eq!(bed.sent_commands().await, 2);

    // Before an upgrade, by hand: always a new backup.
    let manual = function.invoke(&json!({"action": "backup", "reason": "before upgrade"})).await.unwrap().response();
    assert_eq!(manual["reason"], "before upgrade");
    assert_eq!(manual["backed_up"].as_array().unwrap().len(), 1);

    // The instance role wrote only what it may, and can write nothing outside the backup prefix.
    let role_calls = bed.emulator.calls_by(&bed.instance_role.keys).await.unwrap();
    assert!(role_calls.iter().all(|c| c.allowed), "{role_calls:?}");
    assert!(role_calls.iter().any(|c| c.action == "s3:PutObject"));
    let as_instance = aws_sdk_s3::Client::new(&bed.emulator.sdk_config(&bed.instance_role.keys).await);
    let outside = as_instance.put_object().bucket(BUCKET).key("elsewhere/x").body(b"x".to_vec().into()).send().await;
    let refused = outside.expect_err("the instance role may not write outside its prefix");
    assert_eq!(refused.as_service_error().and_then(|e| e.meta().code()), Some("AccessDenied"), "{refused:?}");

    // Least privilege: everything used was granted; of the grants, only the key goes unused
    // (S3 and SNS use it on the function's behalf) and Publish (nothing failed).
    let calls = bed.emulator.calls_by(&bed.principal.keys).await.unwrap();
    assert!(calls.iter().all(|c| c.allowed), "{calls:?}");
    let used: BTreeSet<String> = calls.into_iter().map(|c| c.action).collect();
    let unused: BTreeSet<String> = bed.principal.granted.difference(&used).cloned().collect();
    assert_eq!(
        unused,
        BTreeSet::from(["kms:Decrypt".to_owned(), "kms:GenerateDataKey".to_owned(), "sns:Publish".to_owned()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_command_fails_the_run_and_tells_why() {
    let bed = Bed::start("fail").await;
    let function = bed.function("/nonexistent/openclaw").await;
    let (error_type, message) = function.invoke(&scheduled()).await.unwrap().error();
    assert_eq!(error_type, "IncompleteRun");
    assert!(message.contains("ended Failed (exit 3)"), "{message}");
    let notes = integration_tests::account::drain(&bed.emulator.admin().await, &bed.queue_url).await.unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["severity"], "critical");
    assert!(
        notes[0]["fields"]["openclaw-gateway stderr"]
            .as_str()
            .unwrap()
            .contains("state directory /nonexistent/openclaw not found")
    );
    assert!(bed.keys().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_any_aws_call() {
    let bed = Bed::start("bad").await;
    let function = bed.function(&bed.state.root.to_string_lossy()).await;
    for bad in [json!({"action": "backup", "bucket": "x"}), json!({"action": "wipe"}), json!([])] {
        let (error_type, _) = function.invoke(&bad).await.unwrap().error();
        assert_eq!(error_type, "InputError");
    }
    assert!(bed.emulator.calls_by(&bed.principal.keys).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_brings_back_the_newest_verified_backup_beside_the_live_state() {
    let bed = Bed::start("restore").await;
    let state = bed.state.root.to_string_lossy().into_owned();
    let function = bed.function(&state).await;

    let older = function.invoke(&json!({"action": "backup", "reason": "first"})).await.unwrap().response();
    let older_key = older["backed_up"][0]["archive_key"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // keys are per second
    let newer = function.invoke(&json!({"action": "backup", "reason": "second"})).await.unwrap().response();
    let newer_key = newer["backed_up"][0]["archive_key"].as_str().unwrap().to_owned();
    assert!(newer_key > older_key);
    let sent_before = bed.sent_commands().await;

    // A named key that is not in the bucket, or a gateway that does not exist: refused, nothing run.
    for bad in [
        json!({"action": "restore", "gateway": "openclaw-gateway", "backup": "openclaw/daily/openclaw-gateway/2020/01/01/openclaw-20200101T000000Z.tar.gz"}),
        json!({"action": "restore", "gateway": "no-such-gateway", "backup": "latest"}),
        json!({"action": "restore", "gateway": "openclaw-gateway", "backup": "../elsewhere/x.tar.gz"}),
    ] {
        let (error_type, message) = function.invoke(&bad).await.unwrap().error();
        assert_eq!(error_type, "InputError", "{message}");
    }
    assert_eq!(bed.sent_commands().await, sent_before);

    // The newest archive is damaged: "latest" passes over it to the newest one that verifies.
    let damaged = bed.s3.get_object().bucket(BUCKET).key(&newer_key).send().await.unwrap();
    let mut bytes = damaged.body.collect().await.unwrap().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    bed.s3.put_object().bucket(BUCKET).key(&newer_key).body(bytes.into()).send().await.unwrap();
    let before: Vec<String> = files_under(&bed.state.root).unwrap().into_keys().collect();
    let report = function
        .invoke(&json!({"action": "restore", "gateway": "openclaw-gateway", "backup": "latest"}))
        .await
        .unwrap()
        .response();
    assert_eq!(report["backup"], older_key.replace(".tar.gz", ".manifest.json"), "{report}");
    assert_eq!(report["rejected"][0]["manifest_key"], newer_key.replace(".tar.gz", ".manifest.json"));
    let target = std::path::PathBuf::from(report["restored"]["target_dir"].as_str().unwrap());
    assert_eq!(report["target_dir"], target.to_string_lossy().as_ref());
    assert!(target.to_string_lossy().starts_with(&format!("{state}.restored-")), "{target:?}");

    // Byte for byte what the archive holds, and what the live directory held (but its database,
    // which kept changing, and the logs and media a backup leaves out).
    let archive = bed.s3.get_object().bucket(BUCKET).key(&older_key).send().await.unwrap();
    let archive = archive.body.collect().await.unwrap().to_vec();
    let unpacked = std::env::temp_dir().join(format!("openclaw-restore-expected-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&unpacked);
    untar(&archive, &unpacked).unwrap();
    let restored = files_under(&target).unwrap();
    let expected = files_under(&unpacked).unwrap();
    assert_eq!(restored.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (path, content) in &expected {
        assert!(restored[path] == *content, "{path} differs from the archive");
    }
    let live = files_under(&bed.state.root).unwrap();
    for (path, content) in &live {
        if path.starts_with("logs/") || path.starts_with("media/") || path.contains(".sqlite") {
            continue;
        }
        assert_eq!(restored.get(path), Some(content), "{path}");
    }
    assert!(restored.contains_key("state/openclaw.sqlite"));
    let check = std::process::Command::new("sqlite3")
        .arg(target.join("state/openclaw.sqlite"))
        .arg("pragma integrity_check; select count(*) > 100 from events;")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&check.stdout), "ok\n1\n");
    // The live state is left as it was (its database still being written).
    let after: Vec<String> = files_under(&bed.state.root).unwrap().into_keys().collect();
    assert_eq!(
        before.iter().filter(|p| !p.contains(".sqlite")).collect::<Vec<_>>(),
        after.iter().filter(|p| !p.contains(".sqlite")).collect::<Vec<_>>()
    );

    // The switch-over steps name the real directories; the operator is told.
    let steps: Vec<&str> = report["switch_over"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(steps[0], "sudo systemctl stop openclaw-gateway");
    assert_eq!(steps[2], format!("sudo mv -T '{}' '{state}'", target.display()));
    let notes = integration_tests::account::drain(&bed.emulator.admin().await, &bed.queue_url).await.unwrap();
    let note =
        notes.iter().find(|n| n["title"].as_str().unwrap().starts_with("Backup restored")).expect("a restore note");
    assert!(note["fields"]["switch over"].as_str().unwrap().contains("openclaw doctor"));

    // Restoring the damaged one by name fails loudly and restores nothing.
    let (error_type, message) = function
        .invoke(&json!({"action": "restore", "gateway": "openclaw-gateway", "backup": newer_key}))
        .await
        .unwrap()
        .error();
    assert_eq!(error_type, "IncompleteRun");
    assert!(message.contains("no backup of openclaw-gateway verifies"), "{message}");
    let siblings = std::fs::read_dir(bed.state.root.parent().unwrap())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("{}.restored-", bed.state.root.file_name().unwrap().to_string_lossy()))
        })
        .count();
    assert_eq!(siblings, 1, "only the first restore made a directory");

    std::fs::remove_dir_all(&target).unwrap();
    std::fs::remove_dir_all(&unpacked).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_edited_bucket_is_reported_and_the_backup_still_made() {
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    let bed = Bed::start("drift").await;
    let function = bed.function(&bed.state.root.to_string_lossy()).await;
    // Someone "cleans up": versioning suspended, the lifecycle rules deleted.
    let suspended = VersioningConfiguration::builder().status(BucketVersioningStatus::Suspended).build();
    bed.s3.put_bucket_versioning().bucket(BUCKET).versioning_configuration(suspended).send().await.unwrap();
    bed.s3.delete_bucket_lifecycle().bucket(BUCKET).send().await.unwrap();

    let report = function.invoke(&scheduled()).await.unwrap().response();
    assert_eq!(report["backed_up"].as_array().unwrap().len(), 1, "{report}");
    let drift: Vec<&str> = report["drift"].as_array().unwrap().iter().map(|d| d["setting"].as_str().unwrap()).collect();
    assert_eq!(drift, ["versioning", "lifecycle"], "{report}");
    assert!(function.output().contains(r#""BucketDrift":2"#), "EMF counts the findings");
    let notes = integration_tests::account::drain(&bed.emulator.admin().await, &bed.queue_url).await.unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["severity"], "warning");
    assert!(notes[0]["title"].as_str().unwrap().contains("differs from the template"));
    assert!(notes[0]["fields"]["versioning 1"].as_str().unwrap().contains("Suspended"));
    assert!(notes[0]["fields"]["lifecycle 2"].as_str().unwrap().contains("never expired"));
}

/// An `aws` that damages every archive on its way up (a flipped byte), as a bad disk, a broken proxy
/// or a buggy client would; everything else goes to the real AWS CLI.
const CORRUPTING_AWS: &str = r#"#!/bin/bash
if [ "$1 $2" = "s3 cp" ] && [[ "$3" == *.tar.gz ]]; then
  damaged=$(mktemp); cp "$3" "$damaged"
  printf '\xff' | dd of="$damaged" bs=1 seek=100 count=1 conv=notrunc status=none
  set -- "$1" "$2" "$damaged" "${@:4}"
fi
exec "$REAL_AWS" "$@"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_upload_is_caught_by_reading_it_back() {
    let bin = std::env::temp_dir().join(format!("openclaw-corrupting-aws-{}", std::process::id()));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("aws"), CORRUPTING_AWS).unwrap();
    std::fs::set_permissions(bin.join("aws"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let real_aws = integration_tests::workspace_root().join(".venv-instance/bin/aws");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let bed = Bed::start_with("corrupt", &[("PATH", path), ("REAL_AWS", real_aws.display().to_string())]).await;
    let function = bed.function(&bed.state.root.to_string_lossy()).await;

    let (error_type, message) = function.invoke(&scheduled()).await.unwrap().error();
    assert_eq!(error_type, "IncompleteRun");
    assert!(message.contains("does not verify"), "{message}");
    assert!(message.contains("the manifest says"), "{message}");
    let notes = integration_tests::account::drain(&bed.emulator.admin().await, &bed.queue_url).await.unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["severity"], "critical");
    // Nothing unverified is promoted to monthly/, and no freshness is claimed.
    assert!(bed.keys().await.iter().all(|k| !k.contains("/monthly/")));
    assert!(!function.output().contains("BackupAgeHours"));
    std::fs::remove_dir_all(&bin).unwrap();
}

/// An `aws` whose archive upload takes 15 s (a slow link); everything else goes to the real AWS CLI.
const SLOW_AWS: &str = r#"#!/bin/bash
if [ "$1 $2" = "s3 cp" ] && [[ "$3" == *.tar.gz ]]; then sleep 15; fi
exec "$REAL_AWS" "$@"
"#;

/// s3-backup's work does not fit in its time: the backup is still uploading when the run must stop
/// (its `Timeout` of 900 s, here on a time scale of 30: 30 s, of which it keeps 20 to report). The
/// run ends incomplete in time and says the command is still running; the command goes on on the
/// instance, and Lambda's retry finds the verified backup and sends nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_still_running_at_the_deadline_is_reported_unfinished_and_not_sent_twice() {
    let bin = std::env::temp_dir().join(format!("openclaw-slow-aws-{}", std::process::id()));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("aws"), SLOW_AWS).unwrap();
    std::fs::set_permissions(bin.join("aws"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let real_aws = integration_tests::workspace_root().join(".venv-instance/bin/aws");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let bed = Bed::start_with("slow", &[("PATH", path), ("REAL_AWS", real_aws.display().to_string())]).await;
    let function = bed.function_scaled(&bed.state.root.to_string_lossy(), 30.0).await;
    assert_eq!(function.timeout(), std::time::Duration::from_secs(900), "template.yaml's Timeout");

    let started = std::time::Instant::now();
    let (error_type, message) = function.invoke(&scheduled()).await.unwrap().error();
    assert_eq!(error_type, "IncompleteRun", "ended by the function, not by Lambda's timeout: {message}");
    assert!(started.elapsed() < function.deadline(), "{:?}", started.elapsed());
    assert!(message.contains("still InProgress when the function had to stop"), "{message}");
    let notes = integration_tests::account::drain(&bed.emulator.admin().await, &bed.queue_url).await.unwrap();
    assert_eq!(notes[0]["severity"], "critical", "{notes:?}");
    assert!(!function.output().contains("BackupAgeHours"), "no freshness claimed");

    // The command goes on on the instance and lands.
    let manifest = "openclaw/daily/openclaw-gateway/2026/11/25/openclaw-20261125T023000Z.manifest.json".to_owned();
    for _ in 0..120 {
        if bed.keys().await.contains(&manifest) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(bed.keys().await.contains(&manifest), "the backup never landed");
    let again = function.invoke(&scheduled()).await.unwrap().response();
    assert_eq!(again["plan"]["already_done"][0]["gateway"], "openclaw-gateway", "{again}");
    assert_eq!(bed.sent_commands().await, 1);
    std::fs::remove_dir_all(&bin).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_ssm_cannot_reach_is_refused_at_the_send_and_the_others_are_backed_up() {
    let bed = Bed::start("no-agent").await;
    // A second gateway whose SSM agent never registered (its instance profile lacks the policy).
    let ec2 = aws_sdk_ec2::Client::new(&bed.emulator.admin().await);
    let image =
        ec2.describe_images().owners("amazon").send().await.unwrap().images.unwrap()[0].image_id.clone().unwrap();
    let tags = TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .tags(Tag::builder().key("Name").value("openclaw-gateway-2").build())
        .tags(Tag::builder().key("openclaw:role").value("gateway").build())
        .build();
    ec2.run_instances().image_id(image).min_count(1).max_count(1).tag_specifications(tags).send().await.unwrap();
    let function = bed.function(&bed.state.root.to_string_lossy()).await;

    let (error_type, message) = function.invoke(&scheduled()).await.unwrap().error();
    assert_eq!(error_type, "IncompleteRun");
    assert!(message.contains("openclaw-gateway-2"), "{message}");
    assert!(message.contains("InvalidInstanceId") && message.contains("AmazonSSMManagedInstanceCore"), "{message}");
    // The reachable gateway's backup was made and verified all the same.
    let keys = bed.keys().await;
    assert!(keys.iter().any(|k| k.starts_with("openclaw/daily/openclaw-gateway/")), "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains("openclaw-gateway-2")), "{keys:?}");
}
