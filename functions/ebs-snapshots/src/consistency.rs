//! Application-consistent snapshots of the gateway's data volume: what is decided (pure, here) and
//! how it is carried out ([`hook`]: the SSM commands around `CreateSnapshot`).
//!
//! Before the data volume's snapshot, an SSM command on the gateway checkpoints its SQLite
//! databases' write-ahead logs as their owner and freezes the volume's filesystem (`fsfreeze`), with
//! a timer that thaws it at `FREEZE_LIMIT_SECONDS` whatever happens; the snapshot is started (its
//! point in time is fixed when `CreateSnapshot` returns); a second command thaws. When any of that
//! cannot be done, the snapshot is taken crash-consistent, and the reason is reported. Every daily
//! snapshot carries `openclaw:consistency = app | crash` from its creation.

pub mod hook;

use std::time::Duration;

use openclaw_ops_shared::backup::owner::{OPEN_DIR_PY, run_as_owner};
use openclaw_ops_shared::backup::script::quote;
use openclaw_ops_shared::snapshot::SnapshotSource;
use serde::{Deserialize, Serialize};

/// The tag every daily snapshot carries from its creation.
pub const TAG: &str = "openclaw:consistency";

/// The line the hook prints last, followed by its result as JSON.
pub const RESULT_MARKER: &str = "OPENCLAW_FREEZE_RESULT ";

const HOOK_SH: &str = include_str!("consistency/hook.sh");
const CHECKPOINT_SH: &str = include_str!("consistency/checkpoint.sh");

/// How a snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consistency {
    /// The filesystem was frozen (the databases checkpointed first) when `CreateSnapshot` returned.
    App,
    /// As a power cut would leave the volume.
    Crash,
}

impl Consistency {
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::App => "app",
            Consistency::Crash => "crash",
        }
    }
}

/// `SNAPSHOT_CONSISTENCY`, the freeze's hard limit and where the gateway keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `app` (the default) freezes the data volume when its instance is managed by SSM; `crash` never.
    pub wanted: Consistency,
    /// EC2's device name of the gateway's data volume (`DATA_DEVICE`, the template's `GatewayDataDevice`).
    pub data_device: String,
    /// The state directory on the data volume (`STATE_DIR`): its databases are checkpointed, as its owner.
    pub state_dir: String,
    /// The freeze's hard limit (`FREEZE_LIMIT_SECONDS`): the script thaws at it on its own.
    pub freeze_limit: Duration,
}

/// What SSM says of an instance's agent (`DescribeInstanceInformation`'s `PingStatus`); an instance
/// it does not list is not managed at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agent {
    Online,
    /// `ConnectionLost`, `Inactive`...: registered, but not answering now.
    Offline(String),
}

/// The decision for one snapshot to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "consistency", rename_all = "kebab-case")]
pub enum Choice {
    /// Freeze the data volume's filesystem on its instance around the snapshot.
    App { instance_id: String, device: String },
    /// Take it crash-consistent. `warn` when the gateway should have had it app-consistent.
    Crash { reason: String, warn: bool },
}

/// The instances whose SSM agent the decision needs: those of data volumes about to be snapshotted,
/// when app-consistency is wanted. None is the usual case of a run with nothing to create.
pub fn instances_to_check(create: &[SnapshotSource], settings: &Settings) -> Vec<String> {
    if settings.wanted == Consistency::Crash {
        return Vec::new();
    }
    let mut ids: Vec<String> =
        create.iter().filter(|s| is_data_volume(s, settings)).filter_map(|s| s.instance_id.clone()).collect();
    ids.sort();
    ids.dedup();
    ids
}

fn is_data_volume(source: &SnapshotSource, settings: &Settings) -> bool {
    source.device.as_deref() == Some(settings.data_device.as_str()) && source.instance_id.is_some()
}

/// How one snapshot is to be taken, from what was observed: only the gateway's data volume is ever
/// frozen, and only on an instance whose SSM agent is online.
pub fn decide(source: &SnapshotSource, settings: &Settings, agents: &[(String, Agent)]) -> Choice {
    let crash = |reason: String, warn: bool| Choice::Crash { reason, warn };
    if settings.wanted == Consistency::Crash {
        return crash("SNAPSHOT_CONSISTENCY is crash".into(), false);
    }
    let (Some(instance_id), Some(device)) = (&source.instance_id, &source.device) else {
        return crash("not attached: nothing runs on it to freeze".into(), false);
    };
    if device != &settings.data_device {
        return crash(
            format!("not the gateway's data volume ({device}, not {}): only that one is frozen", settings.data_device),
            false,
        );
    }
    match agents.iter().find(|(id, _)| id == instance_id).map(|(_, agent)| agent) {
        Some(Agent::Online) => Choice::App { instance_id: instance_id.clone(), device: device.clone() },
        Some(Agent::Offline(status)) => {
            crash(format!("{instance_id}'s SSM agent is {status}: the filesystem could not be frozen"), true)
        }
        // The documented default for a gateway without the agent, not something gone wrong.
        None => crash(format!("{instance_id} is not managed by SSM (no SSM agent registered)"), false),
    }
}

/// The most time, after the freeze was sent, during which the filesystem is certainly still frozen:
/// the timer starts after the command reaches the instance, so it cannot thaw before `limit` has
/// passed since the send. A margin covers the two clocks' rates and the scheduling of the timer.
pub fn frozen_window(limit: Duration) -> Duration {
    limit.saturating_sub(CLOCK_MARGIN)
}

/// Slack between the function's and the instance's measure of the limit.
pub const CLOCK_MARGIN: Duration = Duration::from_secs(2);

/// The least time left in the frozen window for `CreateSnapshot` to be sent: less, and the snapshot
/// is taken crash-consistent rather than tagged `app` without the freeze certainly holding.
pub const CREATE_BUDGET: Duration = Duration::from_secs(5);

/// Whether `CreateSnapshot` may still be sent as an app-consistent one, `elapsed` after the freeze
/// was sent.
pub fn can_still_snapshot(elapsed: Duration, limit: Duration) -> bool {
    elapsed + CREATE_BUDGET <= frozen_window(limit)
}

/// One run of the hook: which volume, which mode, which token ties the thaw to its freeze.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script<'a> {
    pub mode: Mode,
    pub volume_id: &'a str,
    pub device: &'a str,
    pub state_dir: &'a str,
    pub limit: Duration,
    /// Letters, digits and `-`: names the freeze on the instance, so a thaw undoes only its own.
    pub token: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Freeze,
    Thaw,
}

impl Script<'_> {
    /// The bash script SSM runs as root: settings as single-quoted words, the checkpoint as the
    /// state directory's owner ([`run_as_owner`]), the rest from `consistency/hook.sh`.
    pub fn text(&self) -> String {
        let mode = match self.mode {
            Mode::Freeze => "freeze",
            Mode::Thaw => "thaw",
        };
        let owners_part =
            format!("STATE_DIR={}\n{}", quote(self.state_dir), CHECKPOINT_SH.replace("{open_dir}", OPEN_DIR_PY));
        format!(
            "#!/bin/bash\nMODE={mode}\nVOLUME_ID={volume}\nDEVICE={device}\nSTATE_DIR={state}\nLIMIT={limit}\nTOKEN={token}\n\
             checkpoint() (\n{as_owner})\n{hook}",
            mode = quote(mode),
            volume = quote(self.volume_id),
            device = quote(self.device),
            state = quote(self.state_dir),
            limit = quote(&self.limit.as_secs().to_string()),
            token = quote(self.token),
            as_owner = run_as_owner("openclaw-freeze", &owners_part),
            hook = HOOK_SH.replace("{open_dir}", OPEN_DIR_PY),
        )
    }
}

/// A database's checkpoint, as SQLite answered `PRAGMA wal_checkpoint(TRUNCATE)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub database: String,
    /// A reader kept part of the log from being copied: the rest is in the snapshot's log, flushed.
    pub busy: bool,
    pub log: i64,
    pub checkpointed: i64,
}

/// What the freeze reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Frozen {
    pub mount: String,
    pub checkpoints: Vec<Checkpoint>,
}

/// The last result line of a hook's output, as its fields.
fn result_fields(stdout: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(RESULT_MARKER))
        .ok_or_else(|| format!("no result line in the hook's output: {:?}", tail(stdout)))?;
    serde_json::from_str(line).map_err(|e| format!("the hook's result line is not JSON ({e}): {line}"))
}

fn field<'a>(fields: &'a serde_json::Map<String, serde_json::Value>, name: &str) -> Result<&'a str, String> {
    fields.get(name).and_then(|v| v.as_str()).ok_or_else(|| format!("the hook's result has no {name}"))
}

/// Reads a freeze's output.
pub fn parse_frozen(stdout: &str) -> Result<Frozen, String> {
    let fields = result_fields(stdout)?;
    let checkpoints = serde_json::from_str(field(&fields, "checkpoints")?)
        .map_err(|e| format!("the hook's checkpoints are not understood: {e}"))?;
    Ok(Frozen { mount: field(&fields, "mount")?.to_owned(), checkpoints })
}

/// Reads a thaw's output: how it found the filesystem (`thawed`, `not-frozen-by-this-run`: its
/// limit thawed it already or the freeze never happened, `was-not-frozen: …`).
pub fn parse_thawed(stdout: &str) -> Result<String, String> {
    Ok(field(&result_fields(stdout)?, "thawed")?.to_owned())
}

/// The end of a command's output, for a message.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn settings(wanted: Consistency) -> Settings {
        Settings {
            wanted,
            data_device: "/dev/sdf".into(),
            state_dir: "/home/openclaw/data/openclaw".into(),
            freeze_limit: Duration::from_secs(30),
        }
    }

    fn source(volume: &str, device: Option<&str>) -> SnapshotSource {
        SnapshotSource {
            volume_id: volume.into(),
            name: None,
            instance_id: device.map(|_| "i-1".into()),
            device: device.map(str::to_owned),
        }
    }

    #[test]
    fn only_the_data_volume_of_an_online_instance_is_frozen() {
        let s = settings(Consistency::App);
        let online = [("i-1".to_owned(), Agent::Online)];
        let data = source("vol-data", Some("/dev/sdf"));
        assert_eq!(decide(&data, &s, &online), Choice::App { instance_id: "i-1".into(), device: "/dev/sdf".into() });

        let root = decide(&source("vol-root", Some("/dev/xvda")), &s, &online);
        assert!(
            matches!(&root, Choice::Crash { reason, warn: false } if reason.contains("not the gateway's data volume"))
        );
        let loose = decide(&source("vol-loose", None), &s, &online);
        assert!(matches!(loose, Choice::Crash { warn: false, .. }));
    }

    #[test]
    fn without_the_agent_it_is_crash_consistent_and_a_lost_agent_warns() {
        let s = settings(Consistency::App);
        let data = source("vol-data", Some("/dev/sdf"));
        let unmanaged = decide(&data, &s, &[]);
        assert_eq!(
            unmanaged,
            Choice::Crash { reason: "i-1 is not managed by SSM (no SSM agent registered)".into(), warn: false }
        );
        let lost = decide(&data, &s, &[("i-1".into(), Agent::Offline("ConnectionLost".into()))]);
        assert!(matches!(&lost, Choice::Crash { reason, warn: true } if reason.contains("ConnectionLost")), "{lost:?}");
    }

    #[test]
    fn crash_by_configuration_asks_ssm_nothing() {
        let s = settings(Consistency::Crash);
        let create = [source("vol-data", Some("/dev/sdf"))];
        assert!(instances_to_check(&create, &s).is_empty());
        let choice = decide(&create[0], &s, &[("i-1".into(), Agent::Online)]);
        assert_eq!(choice, Choice::Crash { reason: "SNAPSHOT_CONSISTENCY is crash".into(), warn: false });
        let wanted = settings(Consistency::App);
        let both = [source("vol-data", Some("/dev/sdf")), source("vol-root", Some("/dev/xvda"))];
        assert_eq!(instances_to_check(&both, &wanted), ["i-1"]);
        assert!(instances_to_check(&[], &wanted).is_empty(), "nothing to create: no SSM call");
    }

    #[test]
    fn the_snapshot_is_app_consistent_only_well_inside_the_limit() {
        let limit = Duration::from_secs(30);
        assert_eq!(frozen_window(limit), Duration::from_secs(28));
        assert!(can_still_snapshot(Duration::from_secs(3), limit));
        assert!(can_still_snapshot(Duration::from_secs(23), limit));
        assert!(!can_still_snapshot(Duration::from_secs(24), limit));
        assert!(!can_still_snapshot(Duration::ZERO, Duration::from_secs(6)), "a limit too short for any snapshot");
    }

    #[test]
    fn the_script_carries_its_settings_as_quoted_words_and_checkpoints_as_the_owner() {
        let script = Script {
            mode: Mode::Freeze,
            volume_id: "vol-0123",
            device: "/dev/sdf",
            state_dir: "/home/o'claw/data/openclaw",
            limit: Duration::from_secs(30),
            token: "run-1",
        }
        .text();
        assert!(script.starts_with("#!/bin/bash\nMODE='freeze'\nVOLUME_ID='vol-0123'\n"), "{script}");
        assert!(script.contains(r"STATE_DIR='/home/o'\''claw/data/openclaw'"), "{script}");
        assert!(script.contains("LIMIT='30'\nTOKEN='run-1'\n"));
        assert!(script.contains("exec runuser -u \"$user\""), "the checkpoint drops to the owner");
        assert!(script.contains("PRAGMA wal_checkpoint(TRUNCATE)"));
        assert!(!script.contains("{open_dir}"), "every placeholder filled");
        // The timer starts before the freeze.
        assert!(script.find("openclaw-thaw-timer").unwrap() < script.find("fsfreeze -f \"$MNT\"").unwrap());
    }

    #[test]
    fn results_are_read_from_the_last_marker_line() {
        let out = "noise\nOPENCLAW_FREEZE_RESULT {\"mount\": \"/data\", \"limit\": \"30\", \"timer\": \"9\", \"checkpoints\": \
                   \"[{\\\"database\\\": \\\"a.sqlite\\\", \\\"busy\\\": false, \\\"log\\\": 0, \\\"checkpointed\\\": 0}]\"}\n";
        let frozen = parse_frozen(out).unwrap();
        assert_eq!(frozen.mount, "/data");
        assert_eq!(frozen.checkpoints[0].database, "a.sqlite");
        assert!(parse_frozen("no marker").unwrap_err().contains("no result line"));
        let thawed = parse_thawed("OPENCLAW_FREEZE_RESULT {\"mount\": \"/data\", \"thawed\": \"thawed\"}").unwrap();
        assert_eq!(thawed, "thawed");
    }
}
