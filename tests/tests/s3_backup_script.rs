//! s3-backup's script, run for real: SSM Run Command in the emulator runs it under bash on this
//! machine (playing the gateway), with the real AWS CLI pointed at the emulator, over a sample state
//! directory whose SQLite database is being written to the whole time.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use integration_tests::emulator::Emulator;
use integration_tests::openclaw_state::{files_under, state_dir, state_dir_seeded, untar};
use integration_tests::template::Template;
use integration_tests::workspace_root;
use openclaw_ops_shared::backup::restore::{Restore, switch_over_steps};
use openclaw_ops_shared::backup::script::{Backup, parse_result};
use openclaw_ops_shared::backup::store::Version;
use s3_backup::aws::Store;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const BUCKET: &str = "openclaw-backups-test";

fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bucket as the functions use it, signing as the emulator's administrator.
async fn store(emulator: &Emulator, kms_key_id: Option<String>) -> Store {
    Store::new(aws_sdk_s3::Client::new(&emulator.admin().await), BUCKET.into(), kms_key_id, None)
}

/// The backup of `state_dir` a function would ask for, with pre-signed URLs for its two keys.
async fn backup_for(store: &Store, state_dir: &str, keys: (&str, &str), instance: &str, trigger: &str) -> Backup {
    let lifetime = Duration::from_secs(600);
    Backup {
        state_dir: state_dir.into(),
        archive_key: keys.0.into(),
        manifest_key: keys.1.into(),
        archive_upload: store.upload_url(keys.0, "application/gzip", lifetime).await.unwrap(),
        manifest_upload: store.upload_url(keys.1, "application/json", lifetime).await.unwrap(),
        trigger: trigger.into(),
        instance_id: instance.into(),
        gateway: "gw".into(),
        include_logs_and_media: false,
    }
}

/// The restore of `backup` into `target_dir`, with pre-signed GETs of its two keys.
async fn restore_for(store: &Store, backup: &Backup, target_dir: &str, switch_over: Vec<String>) -> Restore {
    let lifetime = Duration::from_secs(600);
    let url = |key: &str| Version { key: key.into(), version_id: None };
    Restore {
        state_dir: backup.state_dir.clone(),
        archive_url: store.download_url(&url(&backup.archive_key), lifetime).await.unwrap(),
        manifest_url: store.download_url(&url(&backup.manifest_key), lifetime).await.unwrap(),
        target_dir: target_dir.into(),
        switch_over,
    }
}

async fn run_backup(emulator: &Emulator, instance: &str, backup: &Backup) -> Result<Value, (String, String)> {
    let (out, err) = emulator.run_shell(instance, backup.script()).await?;
    Ok(serde_json::to_value(parse_result(&out).unwrap_or_else(|| panic!("no result line in {out:?} / {err:?}")))
        .unwrap())
}

/// An emulator with the backup bucket and a key, and this machine registered as the gateway
/// instance; the backup of `state_dir` it would be asked for.
async fn backup_bed(state_dir: &std::path::Path) -> (Emulator, aws_sdk_s3::Client, Backup) {
    let emulator = Emulator::start().await.unwrap();
    let admin = emulator.admin().await;
    let s3 = aws_sdk_s3::Client::new(&admin);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let key = aws_sdk_kms::Client::new(&admin).create_key().send().await.unwrap().key_metadata.unwrap().key_id;
    let instance = "i-0123456789abcdef0";
    let mut env = serde_json::Map::new();
    env.insert("AWS_ENDPOINT_URL".into(), json!(emulator.url));
    env.insert("AWS_DEFAULT_REGION".into(), json!(emulator.region));
    for (k, v) in emulator.function_env(&emulator.admin_keys()) {
        env.insert(k, json!(v));
    }
    emulator.register_instance(instance, env).await.unwrap();
    let keys = (
        "openclaw/daily/vol-1/2026/11/25/gw-20261125T023000Z.tar.gz",
        "openclaw/daily/vol-1/2026/11/25/gw-20261125T023000Z.manifest.json",
    );
    let backup =
        backup_for(&store(&emulator, Some(key)).await, &state_dir.to_string_lossy(), keys, instance, "manual").await;
    (emulator, s3, backup)
}

/// A database of real size (tens of MB) that the gateway writes to all the time: SQLite's backup
/// API, stepped as the sqlite3 shell's `.backup` steps it (100 pages at a time), starts over at every
/// write from another connection and never ends; the copy must come from one read transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_database_written_all_the_time_is_copied_in_one_consistent_read() {
    let seed = std::env::temp_dir().join(format!("openclaw-large-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&seed);
    let made = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys\n\
             db = sqlite3.connect(sys.argv[1]); db.execute('pragma journal_mode=wal')\n\
             db.execute('create table events (id integer primary key, body text)')\n\
             db.executemany('insert into events (body) values (?)', (('x' * 200,) for _ in range(400000))); db.commit()\n",
        )
        .arg(&seed)
        .status()
        .unwrap();
    assert!(made.success());
    let state = state_dir_seeded("large", Some(&seed));
    let (emulator, s3, backup) = backup_bed(&state.root).await;
    let started = std::time::Instant::now();
    let result = run_backup(&emulator, &backup.instance_id, &backup).await;
    result.unwrap_or_else(|e| panic!("the backup did not finish ({:?}): {e:?}", started.elapsed()));

    // The copy is whole: every seeded row and the writer's, consistent.
    let archive = s3.get_object().bucket(BUCKET).key(&backup.archive_key).send().await.unwrap();
    let archive = archive.body.collect().await.unwrap().to_vec();
    let restored = std::env::temp_dir().join(format!("openclaw-restored-large-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&restored);
    untar(&archive, &restored).unwrap();
    let check = Command::new("sqlite3")
        .arg(restored.join("state/openclaw.sqlite"))
        .arg("pragma integrity_check; select count(*) >= 400000 from events;")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&check.stdout), "ok\n1\n");
    std::fs::remove_dir_all(&restored).unwrap();
    std::fs::remove_file(&seed).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_live_state_directory_lands_complete_consistent_and_verifiable() {
    let state = state_dir("roundtrip");
    let (emulator, s3, backup) = backup_bed(&state.root).await;
    let instance = backup.instance_id.as_str();
    let result = run_backup(&emulator, instance, &backup).await.expect("the backup command succeeds");

    // Read back: the manifest and archive agree with each other and with what the script reported.
    let get = |key: String| {
        let s3 = s3.clone();
        async move { s3.get_object().bucket(BUCKET).key(key).send().await.unwrap().body.collect().await.unwrap().to_vec() }
    };
    let archive = get(backup.archive_key.clone()).await;
    let manifest: Value = serde_json::from_slice(&get(backup.manifest_key.clone()).await).unwrap();
    assert_eq!(manifest["archive"]["sha256"], sha256(&archive));
    assert_eq!(manifest["archive"]["size"], archive.len());
    assert_eq!(result["sha256"], sha256(&archive));
    assert_eq!(manifest["trigger"], "manual");
    assert_eq!(manifest["instance_id"], instance);
    let head = s3.head_object().bucket(BUCKET).key(&backup.archive_key).send().await.unwrap();
    assert_eq!(head.server_side_encryption().map(|s| s.as_str()), Some("aws:kms"));

    // Unpacked: every file but the live database is byte for byte the original; logs and media and
    // SQLite's side files are left out; the database copy is whole and consistent.
    let restored = std::env::temp_dir().join(format!("openclaw-restored-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&restored);
    untar(&archive, &restored).unwrap();
    let got = files_under(&restored).unwrap();
    let original = files_under(&state.root).unwrap();
    for (path, content) in &original {
        if path.starts_with("logs/") || path.starts_with("media/") || path.contains(".sqlite") {
            assert!(!got.contains_key(path) || path == "state/openclaw.sqlite", "{path} should not be in the archive");
            continue;
        }
        assert_eq!(got.get(path), Some(content), "{path}");
    }
    let listed: BTreeMap<String, String> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap().to_owned(), f["sha256"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(listed.keys().cloned().collect::<Vec<_>>(), got.keys().cloned().collect::<Vec<_>>());
    for (path, content) in &got {
        assert_eq!(listed[path], sha256(content), "{path}");
    }
    let db = restored.join("state/openclaw.sqlite");
    let check = Command::new("sqlite3")
        .arg(&db)
        .arg("pragma integrity_check; select count(*) > 100 from events;")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&check.stdout), "ok\n1\n");
    std::fs::remove_dir_all(&restored).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backup_reports_why() {
    let emulator = Emulator::start().await.unwrap();
    let instance = "i-0fedcba9876543210";
    let mut env = serde_json::Map::new();
    env.insert("AWS_ENDPOINT_URL".into(), json!(emulator.url));
    emulator.register_instance(instance, env).await.unwrap();
    let backup = backup_for(
        &store(&emulator, None).await,
        "/nonexistent/openclaw",
        ("a.tar.gz", "a.manifest.json"),
        instance,
        "schedule",
    )
    .await;
    let (status, stderr) = run_backup(&emulator, instance, &backup).await.unwrap_err();
    assert_eq!(status, "Failed");
    assert!(stderr.contains("state directory /nonexistent/openclaw not found"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_never_writes_over_anything() {
    let emulator = Emulator::start().await.unwrap();
    let instance = "i-0aaaabbbbccccdddd";
    let mut env = serde_json::Map::new();
    env.insert("AWS_ENDPOINT_URL".into(), json!(emulator.url));
    emulator.register_instance(instance, env).await.unwrap();
    let state = state_dir("no-overwrite");
    let live = state.root.to_string_lossy().into_owned();
    let existing = std::env::temp_dir().join(format!("openclaw-existing-{}", std::process::id()));
    std::fs::create_dir_all(&existing).unwrap();
    std::fs::write(existing.join("keep"), b"mine").unwrap();
    let cases = [
        (live.clone(), "is the live state directory or inside it"),
        (format!("{live}/restored"), "is the live state directory or inside it"),
        (existing.to_string_lossy().into_owned(), "already exists"),
        ("relative/dir".to_owned(), "is not an absolute path"),
    ];
    for (target, why) in cases {
        let backup =
            backup_for(&store(&emulator, None).await, &live, ("k.tar.gz", "k.manifest.json"), instance, "manual").await;
        let restore = restore_for(&store(&emulator, None).await, &backup, &target, vec![]).await.script();
        let (status, stderr) = emulator.run_shell(instance, restore).await.unwrap_err();
        assert_eq!(status, "Failed");
        assert!(stderr.contains(why), "{target}: {stderr}");
    }
    assert_eq!(std::fs::read(existing.join("keep")).unwrap(), b"mine");
    assert!(!state.root.join("restored").exists());
    std::fs::remove_dir_all(&existing).unwrap();
}

/// The OpenClaw release the gateway stack installs (stacks/gateway.yaml's default).
fn pinned_openclaw() -> String {
    let gateway = Template::load_file("stacks/gateway.yaml").unwrap();
    gateway.doc["Parameters"]["OpenClawVersion"]["Default"].as_str().unwrap().to_owned()
}

/// PATH entries for the real OpenClaw CLI (Node 24 and the pinned release, installed once under
/// target/ by testbed/openclaw_cli.sh).
fn real_openclaw() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let out = Command::new(workspace_root().join("testbed/openclaw_cli.sh"))
            .arg(workspace_root().join("target/gateway-boot"))
            .arg(pinned_openclaw())
            .output()
            .unwrap();
        assert!(out.status.success(), "testbed/openclaw_cli.sh: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    })
}

/// A stand-in for OpenClaw's CLI that fails as with a bad config, for the fallback path only (the
/// real CLI makes the backups otherwise).
const FAILING_OPENCLAW: &str = r#"#!/bin/bash
if [ "${1:-}" = "--version" ]; then echo "OpenClaw 2026.11.2"; exit 0; fi
if [ "${1:-} ${2:-} ${3:-}" = "backup create --help" ]; then echo "Usage: openclaw backup create [options]"; exit 0; fi
echo "Config invalid: openclaw.json line 1" >&2
exit 1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openclaws_own_backup_command_is_used_where_the_cli_has_it_and_a_failure_falls_back() {
    let emulator = Emulator::start().await.unwrap();
    let admin = emulator.admin().await;
    let s3 = aws_sdk_s3::Client::new(&admin);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let path = real_openclaw();
    let database = workspace_root().join(format!("target/gateway-boot/openclaw-state-{}.sqlite", pinned_openclaw()));
    let state = state_dir_seeded("cli", Some(&database));
    let bin = std::env::temp_dir().join(format!("openclaw-failing-cli-{}", std::process::id()));
    std::fs::create_dir_all(&bin).unwrap();
    let cli = bin.join("openclaw");
    std::fs::write(&cli, FAILING_OPENCLAW).unwrap();
    std::fs::set_permissions(&cli, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // The HOME `openclaw doctor` runs with here, on the test's side (SSM gives its scripts none).
    let home = std::env::temp_dir().join(format!("openclaw-cli-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let version = pinned_openclaw();

    for (instance, path, method) in [
        ("i-0c11c11c11c11c11c", path.to_owned(), "openclaw-cli"),
        ("i-0fa11fa11fa11fa11", bin.display().to_string(), "sqlite-backup"),
    ] {
        let mut env = serde_json::Map::new();
        env.insert("AWS_ENDPOINT_URL".into(), json!(emulator.url));
        env.insert("AWS_DEFAULT_REGION".into(), json!(emulator.region));
        env.insert("PATH".into(), json!(format!("{path}:{}", integration_tests::emulator::INSTANCE_PATH)));
        for (k, v) in emulator.function_env(&emulator.admin_keys()) {
            env.insert(k, json!(v));
        }
        emulator.register_instance(instance, env).await.unwrap();
        let archive_key = format!("openclaw/daily/{instance}/a.tar.gz");
        let manifest_key = format!("openclaw/daily/{instance}/a.manifest.json");
        let mut backup = backup_for(
            &store(&emulator, None).await,
            &state.root.to_string_lossy(),
            (&archive_key, &manifest_key),
            instance,
            "manual",
        )
        .await;
        backup.gateway = instance.into();
        let (out, err) = emulator.run_shell(instance, backup.script()).await.expect("the backup succeeds");
        assert!(parse_result(&out).is_some(), "{out}");
        assert_eq!(method == "sqlite-backup", err.contains("'openclaw backup create --verify' failed"), "{err}");
        let get = |key: String| {
            let s3 = s3.clone();
            async move {
                s3.get_object().bucket(BUCKET).key(key).send().await.unwrap().body.collect().await.unwrap().to_vec()
            }
        };
        let manifest: Value = serde_json::from_slice(&get(backup.manifest_key.clone()).await).unwrap();
        assert_eq!(manifest["method"], method, "{err}");
        let reported = manifest["openclaw_version"].as_str().unwrap();
        match method {
            "openclaw-cli" => assert!(reported.starts_with(&format!("OpenClaw {version}")), "{reported}"),
            _ => assert_eq!(reported, "OpenClaw 2026.11.2"),
        }

        // The same layout either way: the state directory's files at the archive's root, unchanged.
        // OpenClaw's own backup decides what its state is (2026.9.6 leaves the 2026.8 layout's
        // agents/*/sessions/*.jsonl out); the configuration and credentials are always there.
        let unpacked = std::env::temp_dir().join(format!("openclaw-cli-{instance}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&unpacked);
        untar(&get(backup.archive_key.clone()).await, &unpacked).unwrap();
        let got = files_under(&unpacked).unwrap();
        let original = files_under(&state.root).unwrap();
        for path in ["openclaw.json", ".env", "credentials/telegram.json"] {
            assert_eq!(got.get(path), original.get(path), "{method}: {path}");
        }
        for (path, content) in &original {
            if path.starts_with("logs/") || path.starts_with("media/") || path.contains(".sqlite") {
                continue;
            }
            if method == "sqlite-backup" || got.contains_key(path) {
                assert_eq!(got.get(path), Some(content), "{method}: {path}");
            }
        }
        assert!(
            got.keys().all(|p| !p.starts_with("logs/") && !p.starts_with("media/") && !p.ends_with("-wal")),
            "{method}: {:?}",
            got.keys().collect::<Vec<_>>()
        );
        let check = Command::new("sqlite3")
            .arg(unpacked.join("state/openclaw.sqlite"))
            .arg("pragma integrity_check; select count(*) > 100 from events;")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&check.stdout), "ok\n1\n", "{method}");
        std::fs::remove_dir_all(&unpacked).unwrap();

        if method == "openclaw-cli" {
            // Restored beside the live state, then the switch-over's `openclaw doctor` for real, on
            // the restored directory (non-interactive, as SSM would run it).
            let target = std::env::temp_dir().join(format!("openclaw-restored-cli-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&target);
            let target_dir = target.to_string_lossy().into_owned();
            let steps = switch_over_steps(&backup.state_dir, &target_dir, "20261125T023000Z");
            assert!(steps.iter().any(|s| s.ends_with("openclaw doctor")), "{steps:?}");
            let restore = restore_for(&store(&emulator, None).await, &backup, &target_dir, steps).await;
            let (out, err) = emulator.run_shell(instance, restore.script()).await.expect("the restore succeeds");
            assert!(out.contains("openclaw doctor"), "{out} {err}");
            let doctor = Command::new("openclaw")
                .args(["doctor", "--non-interactive"])
                .env("PATH", format!("{path}:{}", std::env::var("PATH").unwrap()))
                .env("HOME", &home)
                .env("OPENCLAW_STATE_DIR", &target)
                .output()
                .unwrap();
            assert!(
                doctor.status.success(),
                "openclaw doctor on the restored state: {}\n{}",
                String::from_utf8_lossy(&doctor.stdout),
                String::from_utf8_lossy(&doctor.stderr)
            );
            std::fs::remove_dir_all(&target).unwrap();
        }
    }
    std::fs::remove_dir_all(&bin).unwrap();
    let _ = std::fs::remove_dir_all(&home);
}
