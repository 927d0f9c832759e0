//! The policy, as a pure function of the event, what was observed and the configuration: whether
//! to act at all, what to save on a warning, and how to replace an interrupted gateway.

use std::collections::BTreeMap;

use openclaw_ops_shared::backup::layout;
use openclaw_ops_shared::snapshot::{ObservedSnapshot, SnapshotKind, SnapshotSource, State as SnapshotState};
use openclaw_ops_shared::tags::{self, TagFilter};
use serde::Serialize;

use crate::config::{Address, Config};
use crate::event::{Event, InstanceAction};

/// On a replacement: the instance it replaces. Looked up before launching, so a duplicate or
/// reordered event never starts a second one (EC2's ClientToken alone is not enough in the emulator,
/// and a token expires after a while in AWS too).
pub const REPLACES: &str = "openclaw:replaces";
/// On the old instance, once replaced.
pub const REPLACED_BY: &str = "openclaw:replaced-by";
/// The old instance's gateway tag value once its replacement is complete: nothing takes it for the
/// gateway again (s3-backup, this function, EC2 starting a stopped one later).
pub const RETIRED: &str = "replaced";
/// On an instance: when its Spot interruption warning came (RFC 3339).
pub const SPOT_WARNING: &str = "openclaw:spot-warning";
/// On an instance: when its rebalance recommendation came (RFC 3339).
pub const REBALANCE: &str = "openclaw:rebalance";
/// `true` on an instance the operator is working on: never replaced.
pub const MAINTENANCE: &str = "openclaw:maintenance";
/// On a volume restored from a snapshot: which one.
pub const RESTORED_FROM: &str = "openclaw:restored-from";

/// The gateway tag's value on a standby until it takes over (`LaunchOnlyOwnedInstances` in
/// template.yaml lets a launch carry it; the takeover's retag needs `TagOwnedReplacements`).
pub const STANDBY_ROLE: &str = "standby";

/// Tags that describe one instance's history, not the gateway: never carried to a replacement.
const NOT_CARRIED: &[&str] = &[REPLACES, REPLACED_BY, SPOT_WARNING, REBALANCE, tags::MANAGED_BY];

/// State reasons EC2 gives an instance it reclaimed (`Server.SpotInstanceTermination`,
/// `Server.SpotInstanceShutdown`).
const SPOT_REASON_PREFIX: &str = "Server.SpotInstance";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    pub id: String,
    pub state: String,
    /// `InstanceLifecycle: spot`.
    pub spot: bool,
    /// The state reason's code, e.g. `Client.UserInitiatedShutdown`.
    pub state_reason: Option<String>,
    pub az: Option<String>,
    pub subnet_id: Option<String>,
    pub tags: BTreeMap<String, String>,
}

impl Instance {
    pub fn has(&self, filter: &TagFilter) -> bool {
        self.tags.get(&filter.key) == Some(&filter.value)
    }

    /// The gateway's name for backups and messages: its Name tag, else its id.
    pub fn name(&self) -> &str {
        self.tags.get(tags::NAME).map(String::as_str).filter(|n| !n.is_empty()).unwrap_or(&self.id)
    }

    fn is_gone(&self) -> bool {
        matches!(self.state.as_str(), "terminated" | "shutting-down")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub instance_id: String,
    pub device: String,
    /// `attaching`, `attached`, `detaching`.
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub id: String,
    pub az: String,
    /// `available`, `in-use`, `creating`...
    pub state: String,
    pub attachment: Option<Attachment>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subnet {
    pub id: String,
    pub az: String,
}

/// What the function read before deciding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The event's instance; `None` when EC2 does not know it.
    pub instance: Option<Instance>,
    /// Instances tagged as replacing it that are not gone.
    pub replacements: Vec<Instance>,
    /// Volumes carrying the gateway tag.
    pub volumes: Vec<Volume>,
    /// The suite's snapshots.
    pub snapshots: Vec<ObservedSnapshot>,
    /// The configured subnets (`SUBNET_IDS`) and their zones.
    pub subnets: Vec<Subnet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Plan {
    /// Nothing to change; `notify` when a human should still hear of it.
    Ignore { instance_id: String, reason: String, notify: bool },
    /// A warning or rebalance recommendation: save what can be saved, maybe start the replacement.
    Prepare(Prepare),
    /// The gateway was interrupted: move it to a replacement.
    Replace(Replace),
    /// The gateway was interrupted, but a volume of its data is attached to another instance (a
    /// rescue instance, a second replacement): nothing is changed, a human decides.
    Held(Held),
    /// The gateway runs again after a stop or hibernation: the records of the interruption it came
    /// back from are deleted.
    Clear(Clear),
}

/// Left on the instance, an old warning would make the next warning look like a repeated delivery
/// (nothing saved) and would be read as evidence of an interruption that is over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Clear {
    pub instance_id: String,
    pub gateway: String,
    /// The records as observed, key and value: each is deleted only while it still has that value,
    /// so a warning recorded between the read and the delete stays.
    pub tags: Vec<(String, String)>,
}

/// The data volume is held by an instance this function did not pick: replacing now would mean
/// a second copy of the gateway's state (a restore from a snapshot) beside the live one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Held {
    pub old_instance: String,
    pub gateway: String,
    pub volume_id: String,
    pub holder: String,
    /// The attachment's state (`attached`, `attaching`...).
    pub attachment_state: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    Warning(InstanceAction),
    Rebalance,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prepare {
    pub instance_id: String,
    pub gateway: String,
    pub signal: Signal,
    pub at: String,
    /// The tag recording the signal on the instance.
    pub record: (String, String),
    /// The same signal was already recorded: a duplicate delivery; nothing is saved twice.
    pub duplicate: bool,
    pub snapshot: Option<SnapshotSource>,
    pub backup: Option<BackupJob>,
    /// Start the replacement now (rebalance recommendation with `EARLY_REPLACE`).
    pub early_launch: Option<Launch>,
    /// Why a step is left out.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupJob {
    pub gateway: String,
    /// What its backups are filed under: the data volume's id, else the instance's.
    pub gateway_id: String,
    pub archive_key: String,
    pub manifest_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replace {
    pub old_instance: String,
    pub gateway: String,
    /// `terminated` or `stopped` (as decided on).
    pub old_state: String,
    /// What shows it was a Spot interruption.
    pub evidence: String,
    pub warned_at: Option<String>,
    pub replacement: Replacement,
    pub volume: VolumeStep,
    pub address: Address,
    pub alarm_name_prefix: Option<String>,
    /// Set to [`RETIRED`] on the old instance once everything else is done.
    pub gateway_tag_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Replacement {
    /// Found by its tag: launched by an earlier delivery (or early, on a rebalance recommendation,
    /// without the gateway tag until it takes over: `tags` are the gateway's tags it still lacks).
    Existing {
        instance_id: String,
        tags: Vec<(String, String)>,
    },
    Launch(Launch),
    /// Cannot launch (no launch template configured, no zone known).
    Impossible {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Launch {
    pub template_id: String,
    pub template_version: String,
    /// The data volume's zone: EBS volumes cannot cross zones.
    pub az: String,
    pub subnet_id: Option<String>,
    /// Derived from the interrupted instance; the same for the Spot request and the On-Demand one.
    pub client_token: String,
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum VolumeStep {
    /// Wait until the old instance releases it (detaching it first when the old one is only
    /// stopped), then attach it to the replacement.
    Move {
        volume_id: String,
        device: String,
        detach_from: Option<String>,
    },
    /// Already on the replacement.
    Attached {
        volume_id: String,
        device: String,
    },
    /// The data volume is gone (no volume of its lineage exists): a new one from the newest
    /// completed suite snapshot.
    Restore {
        snapshot_id: String,
        /// When the snapshot was started: what it holds is the data as it was then (RFC 3339).
        taken_at: String,
        /// How much older than the interruption its data is, in seconds.
        age_seconds: i64,
        az: String,
        device: String,
        tags: Vec<(String, String)>,
    },
    Missing {
        reason: String,
    },
}

fn ignore(instance_id: &str, reason: impl Into<String>, notify: bool) -> Plan {
    Plan::Ignore { instance_id: instance_id.to_owned(), reason: reason.into(), notify }
}

pub fn plan(event: &Event, observed: &Observed, config: &Config) -> Plan {
    let id = event.instance_id();
    let Some(instance) = &observed.instance else {
        return ignore(id, "EC2 does not know this instance (another region, or gone long ago)", false);
    };
    if instance.tags.get(&config.gateway_tag.key).map(String::as_str) == Some(RETIRED)
        && let Some(by) = instance.tags.get(REPLACED_BY)
    {
        return ignore(id, format!("already replaced by {by}"), false);
    }
    if !instance.has(&config.gateway_tag) {
        return ignore(id, format!("not the gateway (no {} tag): left alone", config.gateway_tag), false);
    }
    let at = event.time().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match event {
        Event::Warning { action, .. } => match instance.state.as_str() {
            // A warning that arrives after the fact still proves the interruption.
            "terminated" | "stopped" => replace_or_ignore(
                instance,
                &instance.state,
                format!("Spot interruption warning at {at}"),
                event,
                observed,
                config,
            ),
            _ => Plan::Prepare(prepare(instance, Signal::Warning(*action), &at, event, observed, config)),
        },
        Event::Rebalance { .. } => match instance.state.as_str() {
            "running" | "pending" => Plan::Prepare(prepare(instance, Signal::Rebalance, &at, event, observed, config)),
            other => ignore(id, format!("rebalance recommendation for an instance that is {other}"), false),
        },
        Event::StateChange { state: reported, .. } if reported == "running" => clear(instance, event.time()),
        Event::StateChange { state: reported, .. } => {
            // EC2's API may lag the event by a moment: a transitional state counts as the event's.
            let state = match instance.state.as_str() {
                "shutting-down" | "stopping" => reported.as_str(),
                observed_state => observed_state,
            };
            match state {
                "terminated" | "stopped" => match spot_evidence(instance, event.time()) {
                    Some(evidence) => replace_or_ignore(instance, state, evidence, event, observed, config),
                    None => ignore(
                        id,
                        format!(
                            "{state} on purpose, not by a Spot interruption ({}, state reason {}): not replaced",
                            if instance.spot { "Spot instance" } else { "On-Demand instance" },
                            instance.state_reason.as_deref().filter(|r| !r.is_empty()).unwrap_or("none")
                        ),
                        false,
                    ),
                },
                "running" | "pending" => {
                    ignore(id, format!("the {reported} event is out of date: the instance is {state} again"), false)
                }
                other => ignore(id, format!("{reported} event for an instance that is {other}: nothing to do"), false),
            }
        }
    }
}

/// The gateway's `running` notification: the warning and rebalance records it still carries
/// belong to an interruption it came back from, unless they were recorded after it started
/// (EventBridge does not promise order, so the notification may arrive after a newer warning).
fn clear(instance: &Instance, started: chrono::DateTime<chrono::Utc>) -> Plan {
    let id = &instance.id;
    if instance.state != "running" {
        return ignore(id, format!("the running event is out of date: the instance is {} now", instance.state), false);
    }
    let mut kept = Vec::new();
    let mut tags = Vec::new();
    for key in [SPOT_WARNING, REBALANCE] {
        let Some(value) = instance.tags.get(key) else { continue };
        // An unreadable value is no evidence of anything (`spot_evidence` ignores it): cleared too.
        match value.parse::<chrono::DateTime<chrono::Utc>>() {
            Ok(at) if at >= started => kept.push(format!("{key}={value}")),
            _ => tags.push((key.to_owned(), value.clone())),
        }
    }
    if tags.is_empty() {
        let reason = if kept.is_empty() {
            format!("running; no {SPOT_WARNING} or {REBALANCE} record to clear")
        } else {
            format!("running; {} recorded after it started: kept", kept.join(", "))
        };
        return ignore(id, reason, false);
    }
    Plan::Clear(Clear { instance_id: id.clone(), gateway: instance.name().to_owned(), tags })
}

/// How long before the stop or termination a recorded warning still explains it: EC2 warns two
/// minutes ahead; an older record belongs to an earlier interruption the instance came back from.
pub const WARNING_TRUSTED_FOR: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// Why this stop or termination was EC2 reclaiming Spot capacity, if it was. A recorded warning
/// counts only when EC2 gives no other reason (the operator's `Client.UserInitiatedShutdown` wins)
/// and only when it is recent.
fn spot_evidence(instance: &Instance, at: chrono::DateTime<chrono::Utc>) -> Option<String> {
    if !instance.spot {
        return None;
    }
    match instance.state_reason.as_deref() {
        Some(code) if code.starts_with(SPOT_REASON_PREFIX) => return Some(format!("state reason {code}")),
        Some(_) => return None,
        None => {}
    }
    let warned = instance.tags.get(SPOT_WARNING)?;
    let when = warned.parse::<chrono::DateTime<chrono::Utc>>().ok()?;
    (when <= at + chrono::TimeDelta::minutes(1) && at - when <= WARNING_TRUSTED_FOR)
        .then(|| format!("Spot interruption warning at {warned}"))
}

fn replace_or_ignore(
    instance: &Instance,
    state: &str,
    evidence: String,
    event: &Event,
    observed: &Observed,
    config: &Config,
) -> Plan {
    if instance.tags.get(MAINTENANCE).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return ignore(
            &instance.id,
            format!("{state} by a Spot interruption while it carries {MAINTENANCE}=true: not replaced"),
            true,
        );
    }
    if state == "stopped" && !config.replace_on_stop {
        return ignore(
            &instance.id,
            "stopped by a Spot interruption; REPLACE_ON_STOP is off, so EC2 starts it again when capacity returns",
            true,
        );
    }
    let lineage = lineage(instance, observed, config);
    // The replacement holding the data, if one does (two may exist after an earlier defect or a
    // human's launch); else the first by id.
    let live: Vec<&Instance> = observed.replacements.iter().filter(|r| !r.is_gone()).collect();
    let gateway_volume = |v: &&Volume| v.tags.get(&config.gateway_tag.key) == Some(&config.gateway_tag.value);
    let holds = |r: &Instance| {
        lineage
            .iter()
            .copied()
            .chain(observed.volumes.iter().filter(gateway_volume))
            .any(|v| v.attachment.as_ref().is_some_and(|a| a.instance_id == r.id))
    };
    let existing = live.iter().find(|r| holds(r)).or_else(|| live.iter().min_by(|a, b| a.id.cmp(&b.id))).copied();
    let (volume, volume_az) = match volume_step(instance, state, existing, &lineage, event, observed, config) {
        Ok(step) => step,
        Err(held) => return Plan::Held(held),
    };
    let replacement = match existing {
        Some(r) => Replacement::Existing {
            instance_id: r.id.clone(),
            tags: carried_tags(instance).into_iter().filter(|(k, v)| r.tags.get(k) != Some(v)).collect(),
        },
        None => match launch(instance, volume_az.as_deref(), observed, config, Launching::Now) {
            Ok(l) => Replacement::Launch(l),
            Err(reason) => Replacement::Impossible { reason },
        },
    };
    Plan::Replace(Replace {
        old_instance: instance.id.clone(),
        gateway: instance.name().to_owned(),
        old_state: state.to_owned(),
        evidence,
        warned_at: instance.tags.get(SPOT_WARNING).cloned(),
        replacement,
        volume,
        address: config.address.clone(),
        alarm_name_prefix: config.alarm_name_prefix.clone(),
        gateway_tag_key: config.gateway_tag.key.clone(),
    })
}

/// The volumes that hold (or held) this gateway's data: attached to it, snapshotted from it as
/// its data device, or restored from such a snapshot. Gone ones (`deleting`, `deleted`, `error`)
/// do not count. While one exists, its data is newer than any snapshot's.
fn lineage<'a>(instance: &Instance, observed: &'a Observed, config: &Config) -> Vec<&'a Volume> {
    let from_this: Vec<&ObservedSnapshot> = observed
        .snapshots
        .iter()
        .filter(|s| s.is_managed() && s.tags.get(tags::INSTANCE_ID) == Some(&instance.id))
        .collect();
    let gateway_tagged = |v: &Volume| v.tags.get(&config.gateway_tag.key) == Some(&config.gateway_tag.value);
    observed
        .volumes
        .iter()
        .filter(|v| !matches!(v.state.as_str(), "deleting" | "deleted" | "error"))
        .filter(|v| {
            let attached_here = v.attachment.as_ref().is_some_and(|a| a.instance_id == instance.id);
            let snapshotted = from_this.iter().any(|s| {
                s.volume_id == v.id && (gateway_tagged(v) || s.tags.get(tags::DEVICE) == Some(&config.data_device))
            });
            let restored = v
                .tags
                .get(RESTORED_FROM)
                .is_some_and(|id| from_this.iter().any(|s| &s.snapshot_id == id && s.volume_id != v.id));
            (attached_here && gateway_tagged(v)) || snapshotted || restored
        })
        .collect()
}

fn prepare(
    instance: &Instance,
    signal: Signal,
    at: &str,
    event: &Event,
    observed: &Observed,
    config: &Config,
) -> Prepare {
    let key = match signal {
        Signal::Warning(_) => SPOT_WARNING,
        Signal::Rebalance => REBALANCE,
    };
    let duplicate = instance.tags.contains_key(key);
    let mut notes = Vec::new();
    let data = observed.volumes.iter().find(|v| v.attachment.as_ref().is_some_and(|a| a.instance_id == instance.id));
    let snapshot = match data {
        _ if duplicate => None,
        None => {
            notes.push(format!("no volume with {} is attached: nothing to snapshot", config.gateway_tag));
            None
        }
        Some(v) => Some(SnapshotSource {
            volume_id: v.id.clone(),
            name: v.tags.get(tags::NAME).cloned(),
            instance_id: Some(instance.id.clone()),
            device: v.attachment.as_ref().map(|a| a.device.clone()),
        }),
    };
    let backup = match &config.backup {
        _ if duplicate => None,
        None => {
            notes.push("BACKUP_BUCKET is not set: no last-minute backup".to_owned());
            None
        }
        Some(_) if instance.state != "running" => {
            notes.push(format!("the instance is {}: too late for a backup command", instance.state));
            None
        }
        Some(target) => {
            let gateway_id = data.map_or(instance.id.as_str(), |v| v.id.as_str());
            let keys = layout::daily(&target.prefix, gateway_id, instance.name(), event.time());
            Some(BackupJob {
                gateway: instance.name().to_owned(),
                gateway_id: gateway_id.to_owned(),
                archive_key: keys.archive,
                manifest_key: keys.manifest,
            })
        }
    };
    if duplicate {
        notes.push(format!("{key} is already recorded: a repeated delivery, nothing is saved twice"));
    }
    let maintenance = instance.tags.get(MAINTENANCE).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let early_launch = match signal {
        Signal::Rebalance if config.early_replace => {
            if maintenance {
                notes.push(format!("{MAINTENANCE}=true: no early replacement"));
                None
            } else if let Some(r) = observed.replacements.iter().find(|r| !r.is_gone()) {
                notes.push(format!("replacement {} already started", r.id));
                None
            } else {
                match launch(instance, data.map(|v| v.az.as_str()), observed, config, Launching::Standby) {
                    Ok(l) => Some(l),
                    Err(reason) => {
                        notes.push(format!("no early replacement: {reason}"));
                        None
                    }
                }
            }
        }
        _ => None,
    };
    Prepare {
        instance_id: instance.id.clone(),
        gateway: instance.name().to_owned(),
        signal,
        at: at.to_owned(),
        record: (key.to_owned(), at.to_owned()),
        duplicate,
        snapshot,
        backup,
        early_launch,
        notes,
    }
}

/// The gateway's tags a replacement carries: not EC2's own, not the old instance's history.
fn carried_tags(instance: &Instance) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = instance
        .tags
        .iter()
        .filter(|(k, _)| !tags::is_reserved(k) && !NOT_CARRIED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    tags.push((REPLACES.to_owned(), instance.id.clone()));
    tags.push((tags::MANAGED_BY.to_owned(), tags::MANAGED_BY_VALUE.to_owned()));
    tags
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Launching {
    /// The gateway is gone: the replacement is the gateway from the start.
    Now,
    /// Early, while the gateway still runs: tagged `openclaw:role=standby`, so nothing takes it for
    /// the gateway (s3-backup's backups, ebs-snapshots, the next interruption's lookup) before it
    /// has the data volume. Leaving the key out is not enough: EC2 merges the launch template's
    /// instance tags (`openclaw:role=gateway`, `Name=openclaw-gateway`) under the request's, so
    /// only a request tag of the same key overrides them.
    Standby,
}

/// How the replacement is launched: from the launch template, in the data volume's zone.
fn launch(
    instance: &Instance,
    volume_az: Option<&str>,
    observed: &Observed,
    config: &Config,
    launching: Launching,
) -> Result<Launch, String> {
    let template_id = config.launch_template_id.clone().ok_or("LAUNCH_TEMPLATE_ID is not set")?;
    let az = volume_az
        .or(instance.az.as_deref())
        .ok_or("neither the data volume nor the instance has a known Availability Zone")?
        .to_owned();
    let subnet_id = observed
        .subnets
        .iter()
        .find(|s| s.az == az && config.subnet_ids.contains(&s.id))
        .map(|s| s.id.clone())
        .or_else(|| instance.subnet_id.clone().filter(|_| instance.az.as_deref() == Some(az.as_str())));
    let mut tags = carried_tags(instance);
    if launching == Launching::Standby {
        let name = format!("{}-standby", instance.name());
        for (k, v) in &mut tags {
            if *k == config.gateway_tag.key {
                *v = STANDBY_ROLE.to_owned();
            } else if k == tags::NAME {
                v.clone_from(&name);
            }
        }
        if !tags.iter().any(|(k, _)| *k == config.gateway_tag.key) {
            tags.push((config.gateway_tag.key.clone(), STANDBY_ROLE.to_owned()));
        }
        if !tags.iter().any(|(k, _)| k == tags::NAME) {
            tags.push((tags::NAME.to_owned(), name));
        }
    }
    Ok(Launch {
        template_id,
        template_version: config.launch_template_version.clone(),
        az,
        subnet_id,
        client_token: client_token(instance, observed, launching),
        tags,
    })
}

/// EC2 answers a `ClientToken` it has seen with the instance it launched then, and a token reused
/// with other parameters with `IdempotentParameterMismatch`. So the token names what is launched
/// (a standby carries other tags: another request) and how many launches for this instance are
/// gone already: two deliveries of one event share a token and get one instance, in whichever
/// market (`ec2::Ec2::launch` sends this token with both), while a launch after a replacement that
/// died gets a new instance instead of the dead one.
fn client_token(instance: &Instance, observed: &Observed, launching: Launching) -> String {
    let purpose = match launching {
        Launching::Now => "replace",
        Launching::Standby => "standby",
    };
    match observed.replacements.iter().filter(|r| r.is_gone()).count() {
        0 => format!("openclaw-ops-{purpose}-{}", instance.id),
        gone => format!("openclaw-ops-{purpose}-{}-{gone}", instance.id),
    }
}

/// The newest completed suite snapshot that `matches`.
fn newest_snapshot(
    snapshots: &[ObservedSnapshot],
    matches: impl Fn(&ObservedSnapshot) -> bool,
) -> Option<&ObservedSnapshot> {
    snapshots
        .iter()
        .filter(|s| s.is_managed() && s.state == SnapshotState::Completed && matches(s))
        .max_by(|a, b| (a.start_time, &a.snapshot_id).cmp(&(b.start_time, &b.snapshot_id)))
}

fn volume_step(
    instance: &Instance,
    state: &str,
    existing: Option<&Instance>,
    lineage: &[&Volume],
    event: &Event,
    observed: &Observed,
    config: &Config,
) -> Result<(VolumeStep, Option<String>), Held> {
    let ours: Vec<&Volume> = observed
        .volumes
        .iter()
        .filter(|v| v.tags.get(&config.gateway_tag.key) == Some(&config.gateway_tag.value))
        .collect();
    let attached_to =
        |id: &str| ours.iter().find(|v| v.attachment.as_ref().is_some_and(|a| a.instance_id == id)).copied();
    if let Some(v) = attached_to(&instance.id) {
        let device = v.attachment.as_ref().map(|a| a.device.clone()).unwrap_or_else(|| config.data_device.clone());
        let detach_from = (state == "stopped").then(|| instance.id.clone());
        return Ok((VolumeStep::Move { volume_id: v.id.clone(), device, detach_from }, Some(v.az.clone())));
    }
    let on_replacement = existing.and_then(|r| {
        lineage
            .iter()
            .find(|v| v.attachment.as_ref().is_some_and(|a| a.instance_id == r.id))
            .copied()
            .or_else(|| attached_to(&r.id))
    });
    if let Some(v) = on_replacement {
        let device = v.attachment.as_ref().map(|a| a.device.clone()).unwrap_or_default();
        return Ok((VolumeStep::Attached { volume_id: v.id.clone(), device }, Some(v.az.clone())));
    }
    // Never beside the live data: a volume of this lineage on any other instance stops everything.
    if let Some((v, a)) = lineage.iter().find_map(|v| v.attachment.as_ref().map(|a| (v, a))) {
        return Err(Held {
            old_instance: instance.id.clone(),
            gateway: instance.name().to_owned(),
            volume_id: v.id.clone(),
            holder: a.instance_id.clone(),
            attachment_state: a.state.clone(),
        });
    }
    // Released already: an unattached gateway volume; several only when other gateways share the tag.
    let free: Vec<&Volume> =
        ours.iter().filter(|v| v.attachment.is_none() && v.state == "available").copied().collect();
    let is_lineage = |v: &Volume| lineage.iter().any(|l| l.id == v.id);
    let free_lineage = lineage.iter().find(|v| v.attachment.is_none() && v.state == "available").copied();
    let chosen = match free.as_slice() {
        _ if free_lineage.is_some() => free_lineage,
        [only] => Some(*only),
        [] => None,
        many => {
            let mine: Vec<&&Volume> = many.iter().filter(|v| is_lineage(v)).collect();
            match mine.as_slice() {
                [only] => Some(**only),
                _ => {
                    let ids: Vec<&str> = many.iter().map(|v| v.id.as_str()).collect();
                    return Ok((
                        VolumeStep::Missing {
                            reason: format!(
                                "several unattached gateway volumes ({}) and none is known to be {}'s",
                                ids.join(", "),
                                instance.id
                            ),
                        },
                        None,
                    ));
                }
            }
        }
    };
    // Or a volume of the lineage that is not (yet) available: one being restored by another run,
    // or released without the gateway tag.
    let chosen = chosen.or_else(|| lineage.first().copied());
    if let Some(v) = chosen {
        let device = newest_snapshot(&observed.snapshots, |s| s.volume_id == v.id)
            .and_then(|s| s.tags.get(tags::DEVICE).cloned())
            .unwrap_or_else(|| config.data_device.clone());
        return Ok((VolumeStep::Move { volume_id: v.id.clone(), device, detach_from: None }, Some(v.az.clone())));
    }
    let Some(az) = instance.az.clone() else {
        return Ok((
            VolumeStep::Missing { reason: "the data volume is gone and the instance's zone is unknown".into() },
            None,
        ));
    };
    let snapshot = newest_snapshot(&observed.snapshots, |s| {
        s.tags.get(tags::INSTANCE_ID) == Some(&instance.id)
            && s.tags.get(tags::DEVICE) == Some(&config.data_device)
            && s.kind().is_ok_and(|k| matches!(k, SnapshotKind::Daily | SnapshotKind::SpotFinal | SnapshotKind::Manual))
    });
    Ok(match snapshot {
        Some(s) => {
            let name = s.tags.get(tags::NAME).cloned().unwrap_or_else(|| "openclaw-data".to_owned());
            let tags = vec![
                (tags::NAME.to_owned(), name),
                (config.gateway_tag.key.clone(), config.gateway_tag.value.clone()),
                (config.snapshot_tag.key.clone(), config.snapshot_tag.value.clone()),
                (tags::MANAGED_BY.to_owned(), tags::MANAGED_BY_VALUE.to_owned()),
                (RESTORED_FROM.to_owned(), s.snapshot_id.clone()),
            ];
            (
                VolumeStep::Restore {
                    snapshot_id: s.snapshot_id.clone(),
                    taken_at: s.start_time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    age_seconds: (event.time() - s.start_time).num_seconds().max(0),
                    az: az.clone(),
                    device: config.data_device.clone(),
                    tags,
                },
                Some(az),
            )
        }
        None => (
            VolumeStep::Missing {
                reason: format!(
                    "no gateway volume is left and no completed suite snapshot of {}'s {} exists",
                    instance.id, config.data_device
                ),
            },
            Some(az),
        ),
    })
}

#[cfg(test)]
mod tests;
