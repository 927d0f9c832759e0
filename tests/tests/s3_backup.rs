//! s3-backup end to end: the real bootstrap (as the template's IAM policy) finds the gateway, runs
//! the backup script through SSM (run for real on this machine) with pre-signed URLs for exactly its
//! objects, reads the result back, locks and records it, and keeps the month's first under monthly/.
//! Then a taken-over gateway attacks its backups (`a_taken_over_gateway_...`).

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
    /// The gateway's data volume: what its backups are filed under.
    volume: String,
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
        let zone = run.instances()[0].placement().and_then(|p| p.availability_zone()).unwrap().to_owned();
        let volume_tags = TagSpecification::builder()
            .resource_type(ResourceType::Volume)
            .tags(Tag::builder().key("Name").value("openclaw-gateway-data").build())
            .tags(Tag::builder().key("openclaw:role").value("gateway").build())
            .build();
        let volume =
            ec2.create_volume().availability_zone(zone).size(20).tag_specifications(volume_tags).send().await.unwrap();
        let volume = volume.volume_id().unwrap().to_owned();
        ec2.attach_volume().volume_id(&volume).instance_id(&instance).device("/dev/sdf").send().await.unwrap();
        // The machine plays the gateway; its instance role holds exactly stacks/gateway.yaml's
        // GatewayRole: nothing on the backup bucket.
        let instance_role = gateway_instance_role(&emulator).await.unwrap();
        let mut env = serde_json::Map::new();
        for (k, v) in emulator.function_env(&instance_role.keys) {
            env.insert(k, json!(v));
        }
        for (k, v) in instance_env {
            env.insert((*k).to_owned(), json!(v));
        }
        emulator.register_instance(&instance, env).await.unwrap();

        let principal = Principal::for_function(&emulator, LOGICAL_ID, &stack).await.unwrap();
        Bed { emulator, principal, instance_role, s3, volume, topic_arn, queue_url, state: state_dir(name), key_id }
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

    /// `openclaw/daily/<volume>/2026/11/25/openclaw-gateway-20261125T023000Z` + `suffix`.
    fn scheduled_key(&self, suffix: &str) -> String {
        format!("openclaw/daily/{}/2026/11/25/openclaw-gateway-20261125T023000Z{suffix}", self.volume)
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
    assert_eq!(done["archive_key"], bed.scheduled_key(".tar.gz"));
    assert!(done["files"].as_u64().unwrap() >= 6);
    let monthly = format!("openclaw/monthly/{}/2026/11/openclaw-gateway-20261125T023000Z", bed.volume);
    assert_eq!(done["monthly_copy"], format!("{monthly}.tar.gz"));
    assert_eq!(done["record"], bed.scheduled_key(".verified-schedule.json"));
    assert_eq!(done["retain_until"], "2026-12-25T02:30:00Z", "locked for the daily retention (30 days)");
    assert_eq!(report["drift"], json!([]), "the bucket is as the template makes it");
    // The freshness alarm watches BackupAgeHours: it must be declared as a CloudWatch metric.
    let emf: Value = function
        .settled_output()
        .await
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("_aws").is_some())
        .expect("an EMF line");
    assert_eq!(emf["_aws"]["CloudWatchMetrics"][0]["Metrics"], json!([{"Name": "BackupAgeHours", "Unit": "None"}]));
    assert_eq!(emf["BackupAgeHours"], 0.0);
    let keys = bed.keys().await;
    for key in [
        format!("{monthly}.manifest.json"),
        format!("{monthly}.verified-monthly.json"),
        bed.scheduled_key(".verified-schedule.json"),
    ] {
        assert!(keys.contains(&key), "{key} in {keys:?}");
    }
    // Exactly the verified versions are locked: the daily ones for 30 days, the monthly copy a year.
    for (key, until) in
        [(bed.scheduled_key(".tar.gz"), "2026-12-25T02:30:00Z"), (format!("{monthly}.tar.gz"), "2027-11-25T02:30:00Z")]
    {
        // (moto answers GetObjectRetention with the object: the lock is read from HeadObject)
        let head = bed.s3.head_object().bucket(BUCKET).key(&key).send().await.unwrap();
        assert_eq!(head.object_lock_mode().unwrap().as_str(), "GOVERNANCE", "{key}");
        let date = head
            .object_lock_retain_until_date()
            .unwrap()
            .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
            .unwrap();
        assert_eq!(date, until, "{key}");
    }

    // The same event again: a verified scheduled backup of the date exists, so nothing runs.
    let again = function.invoke(&scheduled()).await.unwrap().response();
    assert_eq!(again["backed_up"], json!([]));
    assert_eq!(again["plan"]["already_done"][0]["gateway"], "openclaw-gateway");
    assert_eq!(bed.sent_commands().await, 1);

    // The next day: a new backup, and no second copy for the month.
    let next_day = function.invoke(&scheduled_at("2026-11-26T02:30:00Z")).await.unwrap().response();
    assert_eq!(next_day["backed_up"].as_array().unwrap().len(), 1, "{next_day}");
    assert_eq!(next_day["backed_up"][0]["monthly_copy"], Value::Null, "the month already has its copy");

    // Before an upgrade, by hand: always a new backup.
    let manual = function.invoke(&json!({"action": "backup", "reason": "before upgrade"})).await.unwrap().response();
    assert_eq!(manual["reason"], "before upgrade");
    assert_eq!(manual["backed_up"].as_array().unwrap().len(), 1);
    assert_eq!(bed.sent_commands().await, 3);

    // The instance made no AWS call of its own but its SSM agent's (testbed/fake_ssm_agent.py), all
    // allowed by the role: its uploads were the function's pre-signed PUTs.
    let role_calls = bed.emulator.calls_by(&bed.instance_role.keys).await.unwrap();
    assert!(role_calls.iter().all(|c| c.allowed), "{role_calls:?}");
    let services: std::collections::BTreeSet<&str> =
        role_calls.iter().map(|c| c.action.split(':').next().unwrap_or_default()).collect();
    assert_eq!(services, ["ec2messages", "ssm", "ssmmessages"].into(), "{role_calls:?}");
    assert!(role_calls.iter().all(|c| !c.action.starts_with("ssm:") || c.action == "ssm:UpdateInstanceInformation"));

    // Least privilege: everything used was granted; of the grants, only the key goes unused
    // (S3 and SNS use it on the function's behalf), Publish (nothing failed) and reading a named
    // version (a restore's).
    let calls = bed.emulator.calls_by(&bed.principal.keys).await.unwrap();
    assert!(calls.iter().all(|c| c.allowed), "{calls:?}");
    assert_eq!(
        calls.iter().filter(|c| c.presigned && c.action == "s3:PutObject").count(),
        6,
        "three runs, two objects each"
    );
    let used: BTreeSet<String> = calls.into_iter().map(|c| c.action).collect();
    let unused: BTreeSet<String> = bed.principal.granted.difference(&used).cloned().collect();
    assert_eq!(
        unused,
        BTreeSet::from([
            "kms:Decrypt".to_owned(),
            "kms:GenerateDataKey".to_owned(),
            "s3:GetObjectVersion".to_owned(),
            "sns:Publish".to_owned()
        ])
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
        json!({"action": "restore", "gateway": "openclaw-gateway", "backup": format!("openclaw/daily/{}/2020/01/01/openclaw-gateway-20200101T000000Z.tar.gz", bed.volume)}),
        json!({"action": "restore", "gateway": "no-such-gateway", "backup": "latest"}),
        json!({"action": "restore", "gateway": "openclaw-gateway", "backup": "../elsewhere/x.tar.gz"}),
    ] {
        let (error_type, message) = function.invoke(&bad).await.unwrap().error();
        assert_eq!(error_type, "InputError", "{message}");
    }
    assert_eq!(bed.sent_commands().await, sent_before);

    // The newest archive's recorded version is gone (an administrator holding the governance bypass
    // deleted it): "latest" passes over it to the newest one that verifies. Without the bypass even
    // the administrator cannot.
    let version = bed.s3.head_object().bucket(BUCKET).key(&newer_key).send().await.unwrap().version_id.unwrap();
    let locked = bed.s3.delete_object().bucket(BUCKET).key(&newer_key).version_id(&version).send().await;
    assert!(locked.is_err(), "a locked version is not deleted without the bypass");
    bed.s3
        .delete_object()
        .bucket(BUCKET)
        .key(&newer_key)
        .version_id(&version)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap();
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
    assert!(message.contains("no verified backup of openclaw-gateway"), "{message}");
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
    assert!(function.settled_output().await.contains(r#""BucketDrift":2"#), "EMF counts the findings");
    let notes = integration_tests::account::drain(&bed.emulator.admin().await, &bed.queue_url).await.unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["severity"], "warning");
    assert!(notes[0]["title"].as_str().unwrap().contains("differs from the template"));
    assert!(notes[0]["fields"]["versioning 1"].as_str().unwrap().contains("Suspended"));
    assert!(notes[0]["fields"]["lifecycle 2"].as_str().unwrap().contains("never expired"));
}

/// A `curl` that damages every archive on its way up (a flipped byte), as a bad disk, a broken proxy
/// or a buggy client would; everything else goes to the real curl.
const CORRUPTING_CURL: &str = r#"#!/bin/bash
args=()
while [ $# -gt 0 ]; do
  if [ "$1" = --upload-file ] && [[ "$2" == *.tar.gz ]]; then
    damaged=$(mktemp); cp "$2" "$damaged"
    printf '\xff' | dd of="$damaged" bs=1 seek=100 count=1 conv=notrunc status=none
    args+=("$1" "$damaged"); shift 2; continue
  fi
  args+=("$1"); shift
done
exec /usr/bin/curl "${args[@]}"
"#;

/// A directory holding `curl` as `script`, for the instance's PATH.
fn stand_in_curl(name: &str, script: &str) -> (std::path::PathBuf, String) {
    let bin = std::env::temp_dir().join(format!("openclaw-{name}-curl-{}", std::process::id()));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("curl"), script).unwrap();
    std::fs::set_permissions(bin.join("curl"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), integration_tests::emulator::INSTANCE_PATH);
    (bin, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_upload_is_caught_by_reading_it_back() {
    let (bin, path) = stand_in_curl("corrupting", CORRUPTING_CURL);
    let bed = Bed::start_with("corrupt", &[("PATH", path)]).await;
    let function = bed.function(&bed.state.root.to_string_lossy()).await;

    let (error_type, message) = function.invoke(&scheduled()).await.unwrap().error();
    assert_eq!(error_type, "IncompleteRun");
    assert!(message.contains("does not verify"), "{message}");
    assert!(message.contains("the manifest says"), "{message}");
    let notes = integration_tests::account::drain(&bed.emulator.admin().await, &bed.queue_url).await.unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["severity"], "critical");
    // Nothing unverified is recorded or promoted to monthly/, and no freshness is claimed.
    assert!(bed.keys().await.iter().all(|k| !k.contains("/monthly/") && !k.contains(".verified-")));
    assert!(!function.settled_output().await.contains("BackupAgeHours"));
    std::fs::remove_dir_all(&bin).unwrap();
}

/// A `curl` whose archive upload takes 15 s (a slow link); everything else goes to the real curl.
const SLOW_CURL: &str = r#"#!/bin/bash
for arg in "$@"; do
  if [[ "$arg" == *archive.tar.gz ]]; then sleep 15; break; fi
done
exec /usr/bin/curl "$@"
"#;

/// s3-backup's work does not fit in its time: the backup is still uploading when the run must stop
/// (its `Timeout` of 900 s, here on a time scale of 30: 30 s, of which it keeps 20 to report). The
/// run ends incomplete in time and says the command is still running; the command goes on on the
/// instance, and Lambda's retry finds the verified backup and sends nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_still_running_at_the_deadline_is_reported_unfinished_and_not_sent_twice() {
    let (bin, path) = stand_in_curl("slow", SLOW_CURL);
    let bed = Bed::start_with("slow", &[("PATH", path)]).await;
    let function = bed.function_scaled(&bed.state.root.to_string_lossy(), 30.0).await;
    assert_eq!(function.timeout(), std::time::Duration::from_secs(900), "template.yaml's Timeout");

    let started = std::time::Instant::now();
    let (error_type, message) = function.invoke(&scheduled()).await.unwrap().error();
    assert_eq!(error_type, "IncompleteRun", "ended by the function, not by Lambda's timeout: {message}");
    assert!(started.elapsed() < function.deadline(), "{:?}", started.elapsed());
    assert!(message.contains("still InProgress when the function had to stop"), "{message}");
    let notes = integration_tests::account::drain(&bed.emulator.admin().await, &bed.queue_url).await.unwrap();
    assert_eq!(notes[0]["severity"], "critical", "{notes:?}");
    assert!(!function.settled_output().await.contains("BackupAgeHours"), "no freshness claimed");

    // The command goes on on the instance and lands.
    let manifest = bed.scheduled_key(".manifest.json");
    for _ in 0..120 {
        if bed.keys().await.contains(&manifest) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(bed.keys().await.contains(&manifest), "the backup never landed");
    // Lambda's retry of the same event finds the earlier attempt's upload, reads it back and records
    // it; nothing is sent to the instance again. A third delivery finds it done.
    let retried = function.invoke(&scheduled()).await.unwrap().response();
    assert_eq!(retried["plan"]["backups"][0]["landed"], true, "{retried}");
    assert_eq!(retried["backed_up"][0]["record"], bed.scheduled_key(".verified-schedule.json"), "{retried}");
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
    assert!(keys.iter().any(|k| k.starts_with(&format!("openclaw/daily/{}/", bed.volume))), "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains("/openclaw-gateway-2-")), "{keys:?}");
}

/// Issue 15, point 3: a standby spot-recovery started early (tagged `openclaw:role=standby` over the
/// launch template's `gateway`, with the gateway's name plus `-standby`) is not a gateway to back up:
/// only the gateway is backed up, and no command goes to the standby.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_is_never_backed_up_as_the_gateway() {
    let bed = Bed::start("standby").await;
    let admin = bed.emulator.admin().await;
    let ec2 = aws_sdk_ec2::Client::new(&admin);
    let out = ec2.describe_instances().send().await.unwrap();
    let gateway = out.reservations()[0].instances()[0].clone();
    let (gateway_id, zone) = (
        gateway.instance_id().unwrap().to_owned(),
        gateway.placement().and_then(|p| p.availability_zone()).unwrap().to_owned(),
    );
    let standby = integration_tests::account::launch_standby(&admin, &gateway_id, &zone).await.unwrap();
    let function = bed.function(&bed.state.root.to_string_lossy()).await;

    // Taken for a gateway, the standby (no SSM agent here) would fail the run with InvalidInstanceId.
    let report = function.invoke(&scheduled()).await.unwrap().response();
    let backed_up = report["backed_up"].as_array().unwrap();
    assert_eq!(backed_up.len(), 1, "{report}");
    assert!(backed_up[0]["archive_key"].as_str().unwrap().starts_with(&format!("openclaw/daily/{}/", bed.volume)));
    assert!(!report.to_string().contains(&standby.instance_id), "the standby is not even mentioned: {report}");
    let keys = bed.keys().await;
    assert!(!keys.iter().any(|k| k.contains("standby") || k.contains(&standby.instance_id)), "{keys:?}");
    let calls = bed.emulator.calls_by(&bed.principal.keys).await.unwrap();
    let sent: Vec<_> = calls.iter().filter(|c| c.action == "ssm:SendCommand").collect();
    assert_eq!(sent.len(), 1, "one command, to the gateway");
    assert!(calls.iter().all(|c| c.allowed), "{calls:?}");
}

// --- A taken-over gateway ------------------------------------------------------------------------

/// A scheduled event of another day.
fn scheduled_at(time: &str) -> Value {
    let mut event = scheduled();
    event["time"] = json!(time);
    event
}

/// What the attacker on the instance keeps: every URL (and its headers) the function handed to the
/// script, taken from a `curl` that writes its arguments down before it runs.
fn spying_curl(log: &std::path::Path) -> String {
    format!(
        "#!/bin/bash\n{{ for arg in \"$@\"; do printf '%s\\x1f' \"$arg\"; done; printf '\\n'; }} >> '{}'\nexec /usr/bin/curl \"$@\"\n",
        log.display()
    )
}

/// Each upload the script made: (URL, headers).
fn uploads_seen(log: &std::path::Path) -> Vec<(String, Vec<(String, String)>)> {
    let text = std::fs::read_to_string(log).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let args: Vec<&str> = line.split('\x1f').filter(|a| !a.is_empty()).collect();
        if !args.contains(&"PUT") {
            continue;
        }
        let url = args.iter().find(|a| a.starts_with("http")).unwrap().to_string();
        let headers = args
            .windows(2)
            .filter(|w| w[0] == "-H")
            .map(|w| {
                let (name, value) = w[1].split_once(": ").unwrap();
                (name.to_owned(), value.to_owned())
            })
            .collect();
        out.push((url, headers));
    }
    out
}

async fn put(url: &str, headers: &[(String, String)], body: &'static [u8]) -> u16 {
    let mut request = reqwest::Client::new().put(url).body(body);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    request.send().await.unwrap().status().as_u16()
}

/// The attacker holds the instance role (nothing on the bucket) and every URL the function gave the
/// script. Reusing a URL, stripping its If-None-Match, pointing it at another key, writing or deleting
/// as the role: all refused. Objects someone else plants (a future-dated backup, a schedule manifest
/// for the next day, the next month's monthly key) are ignored and named; the next restore of "latest"
/// brings back the last genuinely verified backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_over_gateway_cannot_rewrite_plant_or_delete_its_backups() {
    let log = std::env::temp_dir().join(format!("openclaw-spy-curl-{}.log", std::process::id()));
    std::fs::write(&log, "").unwrap();
    std::fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let (bin, path) = stand_in_curl("spying", &spying_curl(&log));
    let bed = Bed::start_with("adversary", &[("PATH", path)]).await;
    let state = bed.state.root.to_string_lossy().into_owned();
    let function = bed.function(&state).await;
    let first = function.invoke(&scheduled()).await.unwrap().response();
    assert_eq!(first["backed_up"].as_array().unwrap().len(), 1, "{first}");
    let archive_key = bed.scheduled_key(".tar.gz");
    let genuine = bed.s3.get_object().bucket(BUCKET).key(&archive_key).send().await.unwrap();
    let genuine_version = genuine.version_id.clone().unwrap();

    // Every URL the script used, with its headers: If-None-Match is signed, so it cannot be left out.
    let uploads = uploads_seen(&log);
    assert_eq!(uploads.len(), 2, "the archive and the manifest");
    for (url, headers) in &uploads {
        assert!(url.contains("if-none-match"), "If-None-Match is among the signed headers: {url}");
        assert_eq!(put(url, headers, b"rewritten").await, 412, "a second use of {url}");
        let stripped: Vec<(String, String)> =
            headers.iter().filter(|(n, _)| !n.eq_ignore_ascii_case("if-none-match")).cloned().collect();
        assert_eq!(put(url, &stripped, b"rewritten").await, 403, "without its If-None-Match");
        let elsewhere = url.replace("/2026/11/25/", "/2099/01/01/");
        assert_eq!(put(&elsewhere, headers, b"planted").await, 403, "for another key");
    }

    // The instance role: no write, no delete, no read.
    let as_instance = aws_sdk_s3::Client::new(&bed.emulator.sdk_config(&bed.instance_role.keys).await);
    let denied = |r: Option<&str>| assert_eq!(r, Some("AccessDenied"));
    let future = format!("openclaw/daily/{}/2099/01/01/openclaw-gateway-20990101T000000Z.tar.gz", bed.volume);
    let planted = as_instance.put_object().bucket(BUCKET).key(&future).body(b"x".to_vec().into()).send().await;
    denied(planted.unwrap_err().as_service_error().and_then(|e| e.meta().code()));
    let deleted =
        as_instance.delete_object().bucket(BUCKET).key(&archive_key).version_id(&genuine_version).send().await;
    denied(deleted.unwrap_err().as_service_error().and_then(|e| e.meta().code()));
    let read = as_instance.get_object().bucket(BUCKET).key(&archive_key).send().await;
    denied(read.unwrap_err().as_service_error().and_then(|e| e.meta().code()));
    // The genuine version is still there, untouched, and locked against anyone without the bypass.
    let still = bed.s3.get_object().bucket(BUCKET).key(&archive_key).version_id(&genuine_version).send().await.unwrap();
    let genuine_bytes = still.body.collect().await.unwrap().to_vec();
    let unlocked = bed.s3.delete_object().bucket(BUCKET).key(&archive_key).version_id(&genuine_version).send().await;
    assert!(unlocked.is_err(), "a verified version is locked");

    // Someone with write access plants: a future-dated backup that verifies against its own manifest,
    // the next day's "schedule" backup, and December's monthly key.
    let plant = |key: String, body: Vec<u8>| {
        let s3 = bed.s3.clone();
        async move { s3.put_object().bucket(BUCKET).key(key).body(body.into()).send().await.unwrap() }
    };
    let fake_archive = b"not a backup".to_vec();
    let sha: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&fake_archive).iter().map(|b| format!("{b:02x}")).collect()
    };
    let fake_manifest = |key: &str| {
        serde_json::to_vec(
            &json!({"archive": {"key": key, "size": fake_archive.len(), "sha256": sha}, "trigger": "schedule",
                                   "time": "2099-01-01T00:00:00Z", "files": []}),
        )
        .unwrap()
    };
    let mut planted_keys = Vec::new();
    for stem in [
        format!("openclaw/daily/{}/2099/01/01/openclaw-gateway-20990101T000000Z", bed.volume),
        format!("openclaw/daily/{}/2026/11/26/openclaw-gateway-20261126T023000Z", bed.volume),
        format!("openclaw/monthly/{}/2026/12/openclaw-gateway-20261201T023000Z", bed.volume),
    ] {
        plant(format!("{stem}.tar.gz"), fake_archive.clone()).await;
        plant(format!("{stem}.manifest.json"), fake_manifest(&format!("{stem}.tar.gz"))).await;
        planted_keys.extend([format!("{stem}.tar.gz"), format!("{stem}.manifest.json")]);
    }
    integration_tests::account::drain(&bed.emulator.admin().await, &bed.queue_url).await.unwrap();

    // The next day's run is not fooled by the planted "schedule" backup, and names what it ignored.
    let next_day = function.invoke(&scheduled_at("2026-11-26T02:30:00Z")).await.unwrap().response();
    assert_eq!(next_day["backed_up"].as_array().unwrap().len(), 1, "{next_day}");
    let ignored: Vec<&str> =
        next_day["plan"]["unverified"].as_array().unwrap().iter().map(|u| u["key"].as_str().unwrap()).collect();
    for key in &planted_keys {
        assert!(ignored.contains(&key.as_str()), "{key} is not named in {ignored:?}");
    }
    assert!(function.settled_output().await.contains(r#""UnverifiedObjects":6"#));
    let notes = integration_tests::account::drain(&bed.emulator.admin().await, &bed.queue_url).await.unwrap();
    let note =
        notes.iter().find(|n| n["title"].as_str().unwrap().starts_with("Unverified object found")).expect("a note");
    assert_eq!(note["severity"], "warning");
    assert!(serde_json::to_string(&note["fields"]).unwrap().contains("2099/01/01"), "{note}");
    // The planted monthly key does not stop December's copy.
    let december = function.invoke(&scheduled_at("2026-12-01T02:30:00Z")).await.unwrap().response();
    let monthly = december["backed_up"][0]["monthly_copy"].as_str().expect("December's copy");
    assert!(monthly.starts_with(&format!("openclaw/monthly/{}/2026/12/", bed.volume)), "{monthly}");
    let newest = december["backed_up"][0]["archive_key"].as_str().unwrap().to_owned();

    // "latest" is the last genuinely verified backup, byte for byte; the 2099 one is named, unused.
    let report = function
        .invoke(&json!({"action": "restore", "gateway": "openclaw-gateway", "backup": "latest"}))
        .await
        .unwrap()
        .response();
    assert_eq!(report["backup"], newest.replace(".tar.gz", ".manifest.json"), "{report}");
    assert!(serde_json::to_string(&report["unverified"]).unwrap().contains("2099"), "{report}");
    let target = std::path::PathBuf::from(report["restored"]["target_dir"].as_str().unwrap());
    let archive =
        bed.s3.get_object().bucket(BUCKET).key(&newest).send().await.unwrap().body.collect().await.unwrap().to_vec();
    let unpacked = std::env::temp_dir().join(format!("openclaw-adversary-expected-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&unpacked);
    untar(&archive, &unpacked).unwrap();
    assert_eq!(files_under(&target).unwrap(), files_under(&unpacked).unwrap());
    // And the first genuine backup is still there as it was.
    let first_again =
        bed.s3.get_object().bucket(BUCKET).key(&archive_key).version_id(&genuine_version).send().await.unwrap();
    assert_eq!(first_again.body.collect().await.unwrap().to_vec(), genuine_bytes);

    std::fs::remove_dir_all(&target).unwrap();
    std::fs::remove_dir_all(&unpacked).unwrap();
    std::fs::remove_dir_all(&bin).unwrap();
    let _ = std::fs::remove_file(&log);
}
