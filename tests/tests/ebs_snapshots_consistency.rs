//! App-consistent snapshots of the data volume: the hook script for real, as root, on a
//! loop-mounted filesystem with a SQLite database being written by the gateway's user; then the
//! function against the emulator, the bed's SSM running the script on this machine.
//!
//! The volume id is tied to the loop device the way udev ties it on a Nitro instance
//! (`/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol…`), so the script finds the test's own mount
//! and nothing else. The one test that names another device (the root filesystem's) puts a stand-in
//! `fsfreeze` first on PATH, so even a broken guard could not freeze this machine's `/`.
//!
//! Needs root (loop devices, fsfreeze, a user of its own).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use ebs_snapshots::consistency::{Mode, Script};
use integration_tests::account::{OpenClawAccount, tag_value};
use integration_tests::emulator::Emulator;
use integration_tests::iam::Principal;
use integration_tests::runtime::Function;
use integration_tests::schedule::{scheduled_at, scheduled_event};
use integration_tests::stack::Stack;
use integration_tests::state_owner::{self, owner};
use serde_json::{Value, json};

const BY_ID: &str = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol";

/// A loop-mounted ext4 volume standing in for the data volume `volume_id`, its state directory
/// (the owner's) one level below the mount point; unmounted, detached and unlinked however the
/// test ends (thawed first).
struct DataVolume {
    root: PathBuf,
    mount: PathBuf,
    state_dir: PathBuf,
    loop_device: String,
    link: PathBuf,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl DataVolume {
    fn new(volume_id: &str) -> DataVolume {
        let root = std::env::temp_dir().join(format!(
            "openclaw-freeze-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let image = root.join("volume.img");
        std::fs::File::create(&image).unwrap().set_len(64 << 20).unwrap();
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image));
        let loop_device = run(Command::new("losetup").args(["--find", "--show"]).arg(&image)).trim().to_owned();
        let mount = root.join("data");
        std::fs::create_dir_all(&mount).unwrap();
        let link = PathBuf::from(format!("{BY_ID}{}", volume_id.trim_start_matches("vol-")));
        let volume =
            DataVolume { state_dir: mount.join("openclaw"), root, mount, loop_device: loop_device.clone(), link };
        run(Command::new("mount").arg(&loop_device).arg(&volume.mount));
        std::fs::create_dir_all(&volume.state_dir).unwrap();
        state_owner::give(&volume.mount);
        std::fs::create_dir_all(volume.link.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&volume.link);
        std::os::unix::fs::symlink(&loop_device, &volume.link).unwrap();
        volume
    }
}

impl Drop for DataVolume {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(&self.mount).output();
        let _ = std::fs::remove_file(&self.link);
        if !Command::new("umount").arg(&self.mount).output().is_ok_and(|o| o.status.success()) {
            let _ = Command::new("umount").arg("--lazy").arg(&self.mount).status();
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.loop_device).status();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The gateway: a process of the owner's committing one small transaction after another to a
/// database in WAL mode (`synchronous=NORMAL`), each commit counted on stdout (not on the volume).
struct Writer {
    child: Child,
    commits: Arc<Mutex<u64>>,
}

impl Writer {
    fn start(state_dir: &Path) -> Writer {
        let program = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, body TEXT)")
n = 0
while True:
    db.execute("INSERT INTO messages (body) VALUES (?)", ("message %d" % n,))
    n += 1
    print(n, flush=True)
"#;
        let mut command = Command::new("python3");
        command.arg("-c").arg(program).arg(state_dir.join("gateway.sqlite")).stdout(Stdio::piped());
        let mut child = state_owner::as_owner(&mut command).spawn().unwrap();
        let commits = Arc::new(Mutex::new(0));
        let counter = commits.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(n) = line.trim().parse() {
                    *counter.lock().unwrap() = n;
                }
            }
        });
        let writer = Writer { child, commits };
        writer.wait_for_progress(Duration::from_secs(10)).expect("the writer commits");
        writer
    }

    fn commits(&self) -> u64 {
        *self.commits.lock().unwrap()
    }

    /// Whether a commit lands within `within`.
    fn wait_for_progress(&self, within: Duration) -> Option<Duration> {
        let (start, before) = (Instant::now(), self.commits());
        while start.elapsed() < within {
            if self.commits() > before {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn script(mode: Mode, volume_id: &str, state_dir: &Path, limit: u64, token: &str) -> String {
    Script {
        mode,
        volume_id,
        device: "/dev/sdf",
        state_dir: state_dir.to_str().unwrap(),
        limit: Duration::from_secs(limit),
        token,
    }
    .text()
}

/// Runs a hook script as SSM would (root, the agent's PATH unless `path` says otherwise): exit code,
/// stdout, stderr.
fn hook(text: &str, path: Option<&str>) -> (i32, String, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(text)
        .env_clear()
        .env("PATH", path.unwrap_or(integration_tests::emulator::INSTANCE_PATH))
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A token of this test process's own: the marks a thaw leaves on the machine outlive a run.
fn token(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

fn result(stdout: &str) -> Value {
    let line = stdout.lines().rev().find_map(|l| l.strip_prefix("OPENCLAW_FREEZE_RESULT ")).expect(stdout);
    serde_json::from_str(line).unwrap()
}

fn volume_id() -> String {
    format!("vol-0feed{:08x}{:04x}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst))
}

#[test]
fn a_freeze_holds_the_writers_until_the_thaw_and_checkpoints_as_the_owner() {
    let id = volume_id();
    let volume = DataVolume::new(&id);
    let writer = Writer::start(&volume.state_dir);

    let (code, out, err) = hook(&script(Mode::Freeze, &id, &volume.state_dir, 60, &token("run-a")), None);
    assert_eq!(code, 0, "{err}");
    let frozen = result(&out);
    assert_eq!(frozen["mount"], volume.mount.to_str().unwrap());
    let checkpoints: Value = serde_json::from_str(frozen["checkpoints"].as_str().unwrap()).unwrap();
    assert_eq!(checkpoints[0]["database"], "gateway.sqlite", "{checkpoints}");

    // Frozen: the writer's next commit waits.
    assert_eq!(writer.wait_for_progress(Duration::from_secs(2)), None, "a commit went through the freeze");
    let (code, out, err) = hook(&script(Mode::Thaw, &id, &volume.state_dir, 60, &token("run-a")), None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(result(&out)["thawed"], "thawed");
    assert!(writer.wait_for_progress(Duration::from_secs(5)).is_some(), "the thaw released the writer");

    // The -wal and -shm files the checkpoint touched belong to the owner, not root.
    for entry in std::fs::read_dir(&volume.state_dir).unwrap() {
        let meta = entry.unwrap().metadata().unwrap();
        assert_eq!(meta.uid(), owner().uid, "the checkpoint ran as the databases' owner");
    }
}

#[test]
fn without_its_thaw_the_freeze_ends_at_its_limit_and_a_late_thaw_says_so() {
    let id = volume_id();
    let volume = DataVolume::new(&id);
    let writer = Writer::start(&volume.state_dir);
    let started = Instant::now();
    let (code, _, err) = hook(&script(Mode::Freeze, &id, &volume.state_dir, 3, &token("run-b")), None);
    assert_eq!(code, 0, "{err}");
    // Nobody sends the thaw: the function died. The timer thaws at the limit.
    let resumed = writer.wait_for_progress(Duration::from_secs(10)).expect("thawed at the limit");
    let frozen_for = started.elapsed();
    assert!(frozen_for >= Duration::from_millis(2_500), "thawed after {frozen_for:?}, before its limit");
    assert!(frozen_for < Duration::from_secs(8), "thawed only after {frozen_for:?} ({resumed:?})");
    let (code, out, err) = hook(&script(Mode::Thaw, &id, &volume.state_dir, 3, &token("run-b")), None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(result(&out)["thawed"], "not-frozen-by-this-run");
}

#[test]
fn a_thaw_that_comes_first_keeps_its_freeze_from_ever_happening_and_runs_do_not_thaw_each_other() {
    let id = volume_id();
    let volume = DataVolume::new(&id);
    let (code, out, _) = hook(&script(Mode::Thaw, &id, &volume.state_dir, 30, &token("run-c")), None);
    assert_eq!(code, 0);
    assert_eq!(result(&out)["thawed"], "not-frozen-by-this-run");
    let (code, _, err) = hook(&script(Mode::Freeze, &id, &volume.state_dir, 30, &token("run-c")), None);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("gave up on this freeze"), "{err}");

    // One run's freeze; another's freeze and thaw leave it alone; its own thaw ends it.
    let writer = Writer::start(&volume.state_dir);
    assert_eq!(hook(&script(Mode::Freeze, &id, &volume.state_dir, 30, &token("run-d")), None).0, 0);
    let (code, _, err) = hook(&script(Mode::Freeze, &id, &volume.state_dir, 30, &token("run-e")), None);
    assert_eq!(code, 4);
    assert!(err.contains(&format!("frozen by another run ({})", token("run-d"))), "{err}");
    let (code, _, err) = hook(&script(Mode::Thaw, &id, &volume.state_dir, 30, &token("run-e")), None);
    assert_eq!(code, 4);
    assert!(err.contains(&format!("frozen by another run ({})", token("run-d"))), "{err}");
    assert_eq!(writer.wait_for_progress(Duration::from_secs(1)), None, "still frozen");
    let (code, out, _) = hook(&script(Mode::Thaw, &id, &volume.state_dir, 30, &token("run-d")), None);
    assert_eq!((code, result(&out)["thawed"].clone()), (0, json!("thawed")));
    assert!(writer.wait_for_progress(Duration::from_secs(5)).is_some());
}

/// The guard: nothing but the data volume's own mount is ever frozen. A stand-in `fsfreeze` first
/// on PATH records any call and freezes nothing, so a broken guard fails this test, not the machine.
#[test]
fn the_script_refuses_every_mount_but_the_data_volumes() {
    let id = volume_id();
    let volume = DataVolume::new(&id);
    let bin = volume.root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = volume.root.join("fsfreeze-calls");
    std::fs::write(bin.join("fsfreeze"), format!("#!/bin/sh\necho \"$@\" >> {}\nexit 1\n", calls.display())).unwrap();
    std::fs::set_permissions(bin.join("fsfreeze"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), integration_tests::emulator::INSTANCE_PATH);
    let refused = |text: String, why: &str| {
        let (code, _, err) = hook(&text, Some(&path));
        assert_eq!(code, 4, "{why}: {err}");
        assert!(err.contains(why), "{why}: {err}");
    };

    // The root filesystem's own device, named as the data volume.
    let root_dev = std::fs::metadata("/").unwrap().dev();
    let sys = format!("/sys/dev/block/{}:{}", nix_major(root_dev), nix_minor(root_dev));
    if let Ok(name) = std::fs::read_link(&sys) {
        let root_id = volume_id();
        let link = PathBuf::from(format!("{BY_ID}{}", root_id.trim_start_matches("vol-")));
        let device = Path::new("/dev").join(name.file_name().unwrap());
        std::os::unix::fs::symlink(&device, &link).unwrap();
        let (code, _, err) = hook(
            &script(Mode::Freeze, &root_id, Path::new("/home/openclaw/data/openclaw"), 30, &token("g-1")),
            Some(&path),
        );
        std::fs::remove_file(&link).unwrap();
        assert_eq!(code, 4, "{err}");
        assert!(err.contains("holds the root filesystem"), "{err}");
    } else {
        eprintln!("{sys}: / has no block device here; the other refusals still run");
    }
    // A state directory that is not on the volume (here: on /).
    refused(script(Mode::Freeze, &id, Path::new("/tmp/openclaw-elsewhere"), 30, &token("g-2")), "is not on");
    // A volume with no device here, and a device that is not mounted.
    refused(script(Mode::Freeze, "vol-0000000000000dead", &volume.state_dir, 30, &token("g-3")), "no block device");
    let spare = DataVolume::new(&volume_id());
    let spare_id = format!("vol-{}", spare.link.to_str().unwrap().trim_start_matches(BY_ID));
    run(Command::new("umount").arg(&spare.mount));
    refused(script(Mode::Freeze, &spare_id, &volume.state_dir, 30, &token("g-4")), "is not mounted");
    // Not a volume id at all.
    refused(script(Mode::Freeze, "vol-../../x", &volume.state_dir, 30, &token("g-5")), "is not a volume id");
    // The thaw is guarded the same way.
    refused(script(Mode::Thaw, &id, Path::new("/tmp/openclaw-elsewhere"), 30, &token("g-6")), "is not on");

    assert!(!calls.exists(), "fsfreeze was called: {}", std::fs::read_to_string(&calls).unwrap_or_default());
}

fn nix_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)
}

fn nix_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0xff)
}

/// The function, under exactly its template policy, with the bed's SSM playing the gateway.
struct Bed {
    emulator: Emulator,
    account: OpenClawAccount,
    principal: Principal,
    function: Function,
}

impl Bed {
    async fn start(state_dir: &Path, managed: bool) -> Bed {
        let emulator = Emulator::start().await.unwrap();
        let account = OpenClawAccount::seed(&emulator).await.unwrap();
        let stack = Stack::new(&emulator).await.unwrap().topic("OpsTopic", &account.topic_arn);
        let principal = Principal::for_function(&emulator, "EbsSnapshotsFunction", &stack).await.unwrap();
        let mut env = emulator.function_env(&principal.keys);
        env.push(("NOTIFY_TOPIC_ARN".into(), account.topic_arn.clone()));
        env.push(("STATE_DIR".into(), state_dir.to_str().unwrap().into()));
        if managed {
            emulator.register_instance(&account.instance_id, serde_json::Map::new()).await.unwrap();
        }
        emulator.set_clock(scheduled_at(1)).await.unwrap();
        let function = Function::start_at("ebs-snapshots", &env, scheduled_at(1)).await.unwrap();
        Bed { emulator, account, principal, function }
    }

    async fn run_day_1(&self) -> Value {
        self.emulator.set_clock(scheduled_at(1) + TimeDelta::seconds(2)).await.unwrap();
        self.function.set_clock(scheduled_at(1) + TimeDelta::seconds(2)).unwrap();
        self.function.invoke(&scheduled_event(1)).await.unwrap().response()
    }

    async fn consistency_tags(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .account
            .snapshots()
            .await
            .unwrap()
            .iter()
            .filter(|s| tag_value(s, "openclaw:managed-by") == Some("openclaw-ops"))
            .map(|s| {
                let volume = tag_value(s, "openclaw:volume-id").unwrap().to_owned();
                (volume, tag_value(s, "openclaw:consistency").unwrap_or("none").to_owned())
            })
            .collect();
        out.sort();
        out
    }

    fn expected(&self, data: &str) -> Vec<(String, String)> {
        let mut v = vec![
            (self.account.data_volume.clone(), data.to_owned()),
            (self.account.root_volume.clone(), "crash".to_owned()),
        ];
        v.sort();
        v
    }
}

fn taken<'a>(report: &'a Value, volume: &str) -> &'a Value {
    report["consistency"].as_array().unwrap().iter().find(|t| t["volume_id"] == volume).expect("reported")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_volume_is_snapshotted_frozen_and_tagged_app_the_root_volume_crash() {
    // The data volume's id is only known once the account is seeded: the volume is made after.
    let placeholder = std::env::temp_dir().join(format!("openclaw-freeze-state-{}", std::process::id()));
    let bed = Bed::start(&placeholder, true).await;
    let volume = DataVolume::new(&bed.account.data_volume);
    // The function's STATE_DIR must be the volume's: restart it with the right one.
    drop(bed.function);
    let mut env = bed.emulator.function_env(&bed.principal.keys);
    env.push(("NOTIFY_TOPIC_ARN".into(), bed.account.topic_arn.clone()));
    env.push(("STATE_DIR".into(), volume.state_dir.to_str().unwrap().into()));
    let function = Function::start_at("ebs-snapshots", &env, scheduled_at(1)).await.unwrap();
    let bed = Bed { function, ..bed };
    let writer = Writer::start(&volume.state_dir);

    let report = bed.run_day_1().await;
    let data = taken(&report, &bed.account.data_volume);
    assert_eq!(data["consistency"], "app", "{report}");
    assert_eq!(data["frozen"]["mount"], volume.mount.to_str().unwrap());
    assert_eq!(data["frozen"]["checkpoints"][0]["database"], "gateway.sqlite");
    assert_eq!(data["thawed"], "thawed");
    assert!(data["frozen_ms"].as_u64().unwrap() < 28_000);
    let root = taken(&report, &bed.account.root_volume);
    assert_eq!(root["consistency"], "crash");
    assert!(root["reason"].as_str().unwrap().contains("not the gateway's data volume"), "{root}");
    assert_eq!(bed.consistency_tags().await, bed.expected("app"));
    assert!(writer.wait_for_progress(Duration::from_secs(5)).is_some(), "the gateway writes again");
    assert_eq!(bed.account.notifications().await.unwrap(), Vec::<Value>::new(), "nothing to tell");

    // Every call allowed by the template, the SSM ones included.
    let calls = bed.emulator.calls_by(&bed.principal.keys).await.unwrap();
    assert!(calls.iter().all(|c| c.allowed), "denied: {:?}", calls.iter().filter(|c| !c.allowed).collect::<Vec<_>>());
    for action in ["ssm:DescribeInstanceInformation", "ssm:SendCommand", "ssm:GetCommandInvocation"] {
        assert!(calls.iter().any(|c| c.action == action), "{action} not used");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_hook_leaves_a_crash_snapshot_tagged_so_with_its_reason_and_a_warning() {
    // Managed, but the state directory is not on the data volume (nothing is mounted for it here):
    // the script refuses, the snapshot is crash-consistent.
    let bed = Bed::start(Path::new("/tmp/openclaw-not-on-the-volume"), true).await;
    let report = bed.run_day_1().await;
    let data = taken(&report, &bed.account.data_volume);
    assert_eq!(data["consistency"], "crash", "{report}");
    let reason = data["reason"].as_str().unwrap();
    assert!(reason.starts_with("the freeze failed: ") && reason.contains("refused: no block device"), "{reason}");
    assert_eq!(bed.consistency_tags().await, bed.expected("crash"));
    let note = bed.account.notifications().await.unwrap().pop().expect("a warning");
    assert_eq!(note["severity"], "warning");
    assert!(note["title"].as_str().unwrap().contains("crash-consistent: the freeze failed"), "{note}");
    let output = bed.function.settled_output().await;
    let emf: Vec<Value> = output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(emf.last().unwrap()["ConsistencyHookWarnings"], 1.0, "{output}");
    assert_eq!(emf.last().unwrap()["SnapshotsCrashConsistent"], 2.0, "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_without_the_ssm_agent_gets_crash_snapshots_with_the_reason_and_no_alarm() {
    let bed = Bed::start(Path::new("/home/openclaw/data/openclaw"), false).await;
    let report = bed.run_day_1().await;
    let data = taken(&report, &bed.account.data_volume);
    assert_eq!(data["consistency"], "crash");
    assert_eq!(data["reason"], format!("{} is not managed by SSM (no SSM agent registered)", bed.account.instance_id));
    assert_eq!(bed.consistency_tags().await, bed.expected("crash"));
    assert_eq!(bed.account.notifications().await.unwrap(), Vec::<Value>::new());
    let calls = bed.emulator.calls_by(&bed.principal.keys).await.unwrap();
    assert!(calls.iter().all(|c| c.action != "ssm:SendCommand"), "nothing sent to an unmanaged instance");
}
