//! The backup and restore scripts as the gateway's user, run for real through the test bed's SSM
//! (as root, as SSM runs them): they drop to the state directory's owner, never read the tree
//! through a symlink however it changes under them, and a restore lands on the data volume, where
//! its printed switch-over works on a real mount point laid out as the gateway stack lays it out.
//!
//! Needs root (a user of its own, chown, a loop-mounted filesystem).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use integration_tests::emulator::Emulator;
use integration_tests::gateway_stack::{tier, user_data};
use integration_tests::openclaw_state::{files_under, untar};
use integration_tests::state_owner::{self, owner};
use openclaw_ops_shared::backup::restore::{Restore, switch_over_steps};
use openclaw_ops_shared::backup::script::{Backup, parse_result};
use openclaw_ops_shared::backup::store::Version;
use s3_backup::aws::Store;
use serde_json::json;

const BUCKET: &str = "openclaw-backups-owner-test";
const ARCHIVE_KEY: &str = "openclaw/daily/vol-1/2026/11/25/gw-20261125T023000Z.tar.gz";
const MANIFEST_KEY: &str = "openclaw/daily/vol-1/2026/11/25/gw-20261125T023000Z.manifest.json";

/// The bucket as the functions use it, signing as the emulator's administrator.
async fn store(emulator: &Emulator) -> Store {
    Store::new(aws_sdk_s3::Client::new(&emulator.admin().await), BUCKET.into(), None, None)
}

/// The backup the function would ask for, with pre-signed URLs for its two keys (the one place a
/// test here builds one).
async fn backup(emulator: &Emulator, state_dir: &Path, instance: &str) -> Backup {
    let store = store(emulator).await;
    let lifetime = Duration::from_secs(600);
    Backup {
        state_dir: state_dir.to_string_lossy().into_owned(),
        archive_key: ARCHIVE_KEY.into(),
        manifest_key: MANIFEST_KEY.into(),
        archive_upload: store.upload_url(ARCHIVE_KEY, "application/gzip", lifetime).await.unwrap(),
        manifest_upload: store.upload_url(MANIFEST_KEY, "application/json", lifetime).await.unwrap(),
        trigger: "manual".into(),
        instance_id: instance.into(),
        gateway: "gw".into(),
        include_logs_and_media: false,
    }
}

/// The restore of that backup into `target`, through pre-signed GETs (the one place a test here
/// builds one).
async fn restore(emulator: &Emulator, state_dir: &Path, target: &str, switch_over: Vec<String>) -> Restore {
    let store = store(emulator).await;
    let lifetime = Duration::from_secs(600);
    let latest = |key: &str| Version { key: key.into(), version_id: None };
    Restore {
        state_dir: state_dir.to_string_lossy().into_owned(),
        archive_url: store.download_url(&latest(ARCHIVE_KEY), lifetime).await.unwrap(),
        manifest_url: store.download_url(&latest(MANIFEST_KEY), lifetime).await.unwrap(),
        target_dir: target.into(),
        switch_over,
    }
}

/// An emulator with the bucket, and this machine registered as the gateway instance (`env` on top
/// of the AWS settings: a PATH with stand-ins, what they need).
async fn bed(instance: &str, env: &[(&str, String)]) -> (Emulator, aws_sdk_s3::Client) {
    let emulator = Emulator::start().await.unwrap();
    let s3 = aws_sdk_s3::Client::new(&emulator.admin().await);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let mut registered = serde_json::Map::new();
    registered.insert("AWS_ENDPOINT_URL".into(), json!(emulator.url));
    registered.insert("AWS_DEFAULT_REGION".into(), json!(emulator.region));
    for (k, v) in emulator.function_env(&emulator.admin_keys()) {
        registered.insert(k, json!(v));
    }
    for (k, v) in env {
        registered.insert((*k).to_owned(), json!(v));
    }
    emulator.register_instance(instance, registered).await.unwrap();
    (emulator, s3)
}

async fn archive_files(s3: &aws_sdk_s3::Client, into: &Path) -> BTreeMap<String, Vec<u8>> {
    let archive = s3.get_object().bucket(BUCKET).key(ARCHIVE_KEY).send().await.unwrap();
    let archive = archive.body.collect().await.unwrap().to_vec();
    let _ = std::fs::remove_dir_all(into);
    untar(&archive, into).unwrap();
    let files = files_under(into).unwrap();
    std::fs::remove_dir_all(into).unwrap();
    files
}

fn write(path: &Path, content: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn executable(path: &Path, script: &str) {
    write(path, script);
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

fn which(program: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(format!("command -v {program}")).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn sqlite(db: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3").arg(db).arg(sql).output().unwrap();
    assert!(out.status.success(), "sqlite3 {}: {}", db.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The gateway's user swapping directories of its state tree for symlinks to a world-readable
/// directory elsewhere, at the two moments that matter, made certain by stand-ins for the tools the
/// script runs as that user: `sqlite3`, which the walk runs for the top-level database before it
/// descends into any directory, swaps `swapped-during-walk` (listed, not yet entered); `tar`, which
/// packs the archive, swaps `swapped-during-archiving` (read already). Meanwhile a third directory,
/// `flapping`, is swapped back and forth the whole time. Nothing from outside is ever archived, and
/// every tool ran as the owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_swapped_for_a_symlink_is_never_followed_during_the_walk_or_the_archiving() {
    const FILES: usize = 200;
    const SECRET: &str = "OUTSIDE-THE-STATE-DIRECTORY";
    let pid = std::process::id();
    let base = std::env::temp_dir().join(format!("openclaw-race-{pid}"));
    let outside = std::env::temp_dir().join(format!("openclaw-outside-{pid}"));
    let bin = std::env::temp_dir().join(format!("openclaw-race-bin-{pid}"));
    for dir in [&base, &outside, &bin] {
        let _ = std::fs::remove_dir_all(dir);
    }
    // World-readable, outside the state directory: what a swapped directory would lead to.
    write(&outside.join("secret.txt"), SECRET);
    for i in 0..FILES {
        write(&outside.join(format!("file-{i:03}.txt")), format!("{SECRET} {i}"));
    }
    let state = base.join("state");
    write(&state.join("openclaw.json"), r#"{"gateway": {"port": 18789}}"#);
    write(&state.join("credentials/telegram.json"), r#"{"bot": "123:abc"}"#);
    sqlite(&state.join("a.sqlite"), "create table t (x); insert into t values (1);");
    for dir in ["flapping", "swapped-during-archiving", "swapped-during-walk"] {
        for i in 0..FILES {
            write(&state.join(dir).join(format!("file-{i:03}.txt")), format!("{dir} {i}"));
        }
    }
    state_owner::give(&base);
    let log = base.join("tools.log");
    let swap = |name: &str, moment: &str| {
        format!(
            "if [ ! -e \"$RACE_BASE/{moment}\" ]; then\n  mv \"$RACE_BASE/state/{name}\" \"$RACE_BASE/{name}-original\"\n  \
             ln -s \"$RACE_OUTSIDE\" \"$RACE_BASE/state/{name}\"\n  touch \"$RACE_BASE/{moment}\"\nfi\n"
        )
    };
    executable(
        &bin.join("sqlite3"),
        &format!(
            "#!/bin/bash\necho \"sqlite3 $(id -u)\" >> \"$RACE_BASE/tools.log\"\n{}exec {} \"$@\"\n",
            swap("swapped-during-walk", "walk-swapped"),
            which("sqlite3")
        ),
    );
    executable(
        &bin.join("tar"),
        &format!(
            "#!/bin/bash\necho \"tar $(id -u)\" >> \"$RACE_BASE/tools.log\"\n{}exec {} \"$@\"\n",
            swap("swapped-during-archiving", "archiving-swapped"),
            which("tar")
        ),
    );
    let instance = "i-0ace0ace0ace0ace0";
    let path = format!("{}:{}", bin.display(), integration_tests::emulator::INSTANCE_PATH);
    let env =
        [("PATH", path), ("RACE_BASE", base.display().to_string()), ("RACE_OUTSIDE", outside.display().to_string())];
    let (emulator, s3) = bed(instance, &env).await;

    // `flapping`: a directory one moment, a symlink to outside the next, all through the backup.
    let stop = Arc::new(AtomicBool::new(false));
    let flapper = {
        let (stop, state, base, outside) = (stop.clone(), state.clone(), base.clone(), outside.clone());
        std::thread::spawn(move || {
            let (live, aside) = (state.join("flapping"), base.join("flapping-aside"));
            let mut flips = 0u64;
            while !stop.load(Ordering::Relaxed) {
                std::fs::rename(&live, &aside).unwrap();
                std::os::unix::fs::symlink(&outside, &live).unwrap();
                std::thread::sleep(Duration::from_micros(300));
                std::fs::remove_file(&live).unwrap();
                std::fs::rename(&aside, &live).unwrap();
                std::thread::sleep(Duration::from_micros(300));
                flips += 1;
            }
            flips
        })
    };
    let result = emulator.run_shell(instance, backup(&emulator, &state, instance).await.script()).await;
    stop.store(true, Ordering::Relaxed);
    let flips = flapper.join().unwrap();
    let (out, err) = result.expect("the backup succeeds");
    assert!(parse_result(&out).is_some(), "{out} {err}");
    assert!(flips > 20, "the swapper ran only {flips} times");

    // Both swaps happened, each as the owner, and every tool ran as the owner.
    for moment in ["walk-swapped", "archiving-swapped"] {
        assert!(base.join(moment).exists(), "{moment}: {err}");
    }
    let tools = std::fs::read_to_string(&log).unwrap();
    assert!(tools.contains("sqlite3 ") && tools.contains("tar "), "{tools}");
    for line in tools.lines() {
        assert!(line.ends_with(&format!(" {}", owner().uid)), "not run as the owner (uid {}): {line}", owner().uid);
    }

    let files = archive_files(&s3, &base.join("unpacked")).await;
    for (path, content) in &files {
        assert!(!String::from_utf8_lossy(content).contains(SECRET), "{path} came from outside the state directory");
    }
    // Swapped before the walk entered it: left out. Swapped after it was read: as it was.
    assert!(files.keys().all(|p| !p.starts_with("swapped-during-walk")), "{:?}", files.keys());
    for i in 0..FILES {
        let path = format!("swapped-during-archiving/file-{i:03}.txt");
        assert_eq!(
            files.get(&path).map(|c| String::from_utf8_lossy(c).into_owned()),
            Some(format!("swapped-during-archiving {i}"))
        );
        // The flapping directory is in whole or in part, never from outside.
        if let Some(content) = files.get(&format!("flapping/file-{i:03}.txt")) {
            assert_eq!(String::from_utf8_lossy(content), format!("flapping {i}"));
        }
    }
    assert_eq!(files.get("openclaw.json").map(Vec::as_slice), Some(&br#"{"gateway": {"port": 18789}}"#[..]));
    assert!(files.contains_key("a.sqlite"), "{:?}", files.keys());
    for dir in [&base, &outside, &bin] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// Root never reads the tree: a state directory root owns is refused, as is one reached through a
/// symlink, by the backup and the restore alike, before anything in it is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_directory_root_owns_or_behind_a_symlink_is_refused() {
    let pid = std::process::id();
    let base = std::env::temp_dir().join(format!("openclaw-refused-{pid}"));
    let _ = std::fs::remove_dir_all(&base);
    let root_owned = base.join("root-owned");
    write(&root_owned.join("openclaw.json"), "{}");
    let real = base.join("real");
    write(&real.join("state/openclaw.json"), "{}");
    state_owner::give(&real);
    std::os::unix::fs::symlink(&real, base.join("link")).unwrap();
    let behind_link = base.join("link/state");
    let instance = "i-0bad0bad0bad0bad0";
    let (emulator, _s3) = bed(instance, &[]).await;

    for (state, why) in [
        (&root_owned, "belongs to root; refusing to read it as root"),
        (&behind_link, "a component of its path is a symbolic link"),
    ] {
        let target = format!("{}.restored", state.display());
        for script in [
            backup(&emulator, state, instance).await.script(),
            restore(&emulator, state, &target, vec![]).await.script(),
        ] {
            let (status, stderr) = emulator.run_shell(instance, script).await.unwrap_err();
            assert_eq!(status, "Failed", "{stderr}");
            assert!(stderr.contains(why), "{}: {stderr}", state.display());
        }
        assert!(!Path::new(&target).exists());
    }
    std::fs::remove_dir_all(&base).unwrap();
}

/// Where the gateway stack's user data mounts the data volume and keeps the state directory, read
/// from the user data itself (its openclaw-data-volume script): the state directory's path and the
/// mount point its fstab line names.
fn stack_layout() -> (String, String) {
    let script = user_data(&tier("full"), &BTreeMap::new());
    let start = script.find("cat > /usr/local/libexec/openclaw-data-volume <<'EOF'").expect("the data volume's script");
    let volume_script = &script[start..];
    let volume_script = &volume_script[..volume_script.find("\nEOF").unwrap()];
    let assignments: Vec<&str> =
        volume_script.lines().filter(|l| l.starts_with("state_dir=") || l.starts_with("data_dir=")).collect();
    let fstab = volume_script.lines().find(|l| l.contains("echo \"UUID=$uuid ")).expect("the fstab line");
    let mount_word = fstab.split_whitespace().nth(2).expect("the fstab line's mount point");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("{}\nprintf '%s\\n%s\\n' \"$state_dir\" {mount_word}", assignments.join("\n")))
        .output()
        .unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    let mut lines = out.lines().map(str::to_owned);
    (lines.next().unwrap(), lines.next().unwrap())
}

/// A loop-mounted filesystem image, unmounted and removed again however the test ends.
struct Volume {
    image: PathBuf,
    mount: PathBuf,
    root: PathBuf,
}

impl Volume {
    fn new(image: PathBuf, mount: PathBuf, root: PathBuf) -> Volume {
        std::fs::File::create(&image).unwrap().set_len(64 << 20).unwrap();
        let volume = Volume { image, mount, root };
        let made = Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&volume.image).output().unwrap();
        assert!(made.status.success(), "mkfs.ext4: {}", String::from_utf8_lossy(&made.stderr));
        std::fs::create_dir_all(&volume.mount).unwrap();
        let mounted =
            Command::new("mount").arg("-o").arg("loop").arg(&volume.image).arg(&volume.mount).output().unwrap();
        assert!(mounted.status.success(), "mount: {}", String::from_utf8_lossy(&mounted.stderr));
        volume
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.mount).status().map(|s| s.success()).unwrap_or(false);
        if !unmounted {
            let _ = Command::new("umount").arg("--lazy").arg(&self.mount).status();
        }
        let _ = std::fs::remove_dir_all(&self.root);
        let _ = std::fs::remove_file(&self.image);
    }
}

/// The restore and its printed switch-over on the deployed layout: a real filesystem, mounted where
/// the gateway stack's user data mounts the data volume (under a scratch root, so the state
/// directory's path is the stack's below it), the state directory in it as the stack lays it out.
/// A backup, then the live state changes, then the restore through SSM lands beside the state
/// directory on that filesystem, and the steps it printed, run as a script (stand-ins for
/// `systemctl`, `openclaw doctor` and the health check), put the backup in place and keep the
/// state it replaced, file for file, on the volume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_lands_on_the_data_volume_and_its_printed_switch_over_works_there() {
    let (stack_state_dir, stack_mount) = stack_layout();
    assert!(stack_state_dir.starts_with('/') && stack_mount.starts_with('/'), "{stack_state_dir} {stack_mount}");
    let pid = std::process::id();
    // Under the owner's home: the switch-over names the owner from the path (`/home/<user>/...`).
    let root = Path::new(&owner().home).join(format!("switch-over-{pid}"));
    let _ = Command::new("umount").arg(root.join(stack_mount.trim_start_matches('/'))).output();
    let _ = std::fs::remove_dir_all(&root);
    let image = std::env::temp_dir().join(format!("openclaw-volume-{pid}.img"));
    let volume = Volume::new(image, root.join(stack_mount.trim_start_matches('/')), root.clone());
    let state = root.join(stack_state_dir.trim_start_matches('/'));

    // As the user data lays it out: the mount point and the state directory, the owner's alone.
    std::fs::create_dir_all(&state).unwrap();
    for dir in [&volume.mount, &state] {
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    }
    let original: [(&str, &[u8]); 4] = [
        ("openclaw.json", br#"{"gateway": {"port": 18789, "mode": "local"}}"#),
        ("credentials/telegram.json", br#"{"bot": "123:abc"}"#),
        ("agents/main/sessions/2026-11-24.jsonl", b"{\"role\":\"user\",\"text\":\"hi\"}\n"),
        (".env", b"ANTHROPIC_API_KEY=sk-test\n"),
    ];
    for (path, content) in original {
        write(&state.join(path), content);
    }
    let db = state.join("state/openclaw.sqlite");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    sqlite(
        &db,
        "create table events (id integer primary key, body text); insert into events (body) values ('a'), ('b');",
    );
    state_owner::give(&volume.mount);

    let instance = "i-0b0b0b0b0b0b0b0b0";
    let (emulator, _s3) = bed(instance, &[]).await;
    let (out, err) =
        emulator.run_shell(instance, backup(&emulator, &state, instance).await.script()).await.expect("the backup");
    assert!(parse_result(&out).is_some(), "{out} {err}");

    // The gateway goes on after the backup: a changed file, a new one, more rows.
    write(&state.join("openclaw.json"), r#"{"changed": true}"#);
    write(&state.join("after-the-backup.txt"), "new");
    sqlite(&db, "insert into events (body) values ('c');");
    state_owner::give(&state);

    // The restore, where s3-backup puts it: beside the state directory.
    let now = "2026-11-25T09:30:00Z".parse().unwrap();
    let target = s3_backup::restore::target(&state.to_string_lossy(), now);
    let steps = switch_over_steps(&state.to_string_lossy(), &target.dir, &target.stamp);
    let (out, err) = emulator
        .run_shell(instance, restore(&emulator, &state, &target.dir, steps).await.script())
        .await
        .expect("the restore");
    let restored = std::fs::metadata(&target.dir).unwrap();
    let device = std::fs::metadata(&volume.mount).unwrap().dev();
    assert_eq!(restored.dev(), device, "the restore is not on the data volume");
    assert_eq!(restored.uid(), owner().uid, "the restore was not made by the owner");

    // The switch-over as printed, run as a script: systemctl, OpenClaw's CLI (at /usr/local/bin,
    // where the stack installs it) and curl are stand-ins, in a mount namespace of its own.
    let printed: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "To switch over:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| &l[2..])
        .collect();
    assert!(printed.len() >= 6, "{out} {err}");
    let standins = root.join("standins");
    let log = root.join("switch-over.log");
    write(&log, "");
    std::fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let log_path = log.display();
    executable(&standins.join("systemctl"), &format!("#!/bin/bash\necho \"systemctl $*\" >> {log_path}\n"));
    executable(
        &standins.join("openclaw"),
        &format!(
            "#!/bin/bash\necho \"openclaw $* as $(id -u) in $OPENCLAW_STATE_DIR: $(cat \"$OPENCLAW_STATE_DIR/openclaw.json\")\" >> {log_path}\n"
        ),
    );
    executable(
        &standins.join("curl"),
        &format!(
            "#!/bin/bash\necho \"curl $*\" >> {log_path}\ngrep systemctl {log_path} | tail -n 1 | grep -q start\n"
        ),
    );
    let script = root.join("switch-over.sh");
    write(&script, format!("set -eu\n{}\n", printed.join("\n")));
    let ran = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "bash", "-c"])
        .arg(format!("mount --bind {} /usr/local/bin && exec bash {}", standins.display(), script.display()))
        .env("PATH", "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    let switched = std::fs::read_to_string(&log).unwrap();
    assert!(
        ran.status.success(),
        "the printed switch-over failed:\n{}\n{}\n{}\nlog:\n{switched}",
        printed.join("\n"),
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
    let expected_doctor = format!(
        "openclaw doctor as {} in {}: {}",
        owner().uid,
        state.display(),
        String::from_utf8_lossy(original[0].1)
    );
    assert_eq!(
        switched.lines().collect::<Vec<_>>(),
        [
            "systemctl stop openclaw-gateway",
            expected_doctor.as_str(),
            "systemctl start openclaw-gateway",
            "curl -fsS http://127.0.0.1:18789/healthz"
        ],
        "{switched}"
    );

    // In place: the backup's files, every one; kept beside it on the volume: the state it replaced.
    let now_live = files_under(&state).unwrap();
    let mut want: BTreeMap<String, Vec<u8>> = original.iter().map(|(p, c)| ((*p).to_owned(), c.to_vec())).collect();
    want.insert("state/openclaw.sqlite".into(), now_live.get("state/openclaw.sqlite").cloned().unwrap_or_default());
    assert_eq!(now_live, want);
    assert_eq!(sqlite(&db, "pragma integrity_check; select group_concat(body) from events;"), "ok\na,b\n");
    let kept = PathBuf::from(openclaw_ops_shared::backup::restore::kept_dir(&state.to_string_lossy(), &target.stamp));
    let kept_files = files_under(&kept).unwrap();
    assert_eq!(kept_files.get("openclaw.json").map(Vec::as_slice), Some(&br#"{"changed": true}"#[..]));
    assert_eq!(kept_files.get("after-the-backup.txt").map(Vec::as_slice), Some(&b"new"[..]));
    assert_eq!(sqlite(&kept.join("state/openclaw.sqlite"), "select count(*) from events;"), "3\n");
    assert!(!Path::new(&target.dir).exists());
    for dir in [&state, &kept] {
        let meta = std::fs::metadata(dir).unwrap();
        assert_eq!((meta.dev(), meta.uid()), (device, owner().uid), "{}", dir.display());
    }
    drop(volume);
    assert!(!root.exists());
}
