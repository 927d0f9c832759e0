//! Carries out a plan, writing down when each step happened. A failed step is recorded and the
//! steps that do not depend on it still run.

use std::time::Duration;

use chrono::{DateTime, Utc};
use openclaw_ops_shared::error;
use openclaw_ops_shared::ssm;
use serde::Serialize;
use tokio::time::Instant;

use crate::aws::Clients;
use crate::aws::ec2::{LaunchError, Launched, Purchase};
use crate::aws::ssm::CommandResult;
use crate::config::{Address, BackupTarget};
use crate::plan::{Clear, Prepare, REPLACED_BY, RETIRED, Replace, Replacement, VolumeStep};

/// A warning comes two minutes before the end: a backup still running then is left to its fate.
pub const WARNING_WINDOW: Duration = Duration::from_secs(115);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub at: DateTime<Utc>,
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub step: &'static str,
    /// The AWS call, its error code and message; or, for a failure that is no call's, the message.
    pub error: error::Failure,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub timeline: Vec<Step>,
    pub failed: Vec<Failure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<CommandResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purchase: Option<Purchase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_health: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<String>,
    /// Another delivery of the same event launched the replacement while this one was about to,
    /// and carries the recovery on (its own report and notification say how it ended; should it
    /// fail, Lambda's retry of it finds the replacement and goes on). This run stopped there.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub left_to_another_delivery: bool,
    /// The follow-up check asked for after a takeover not yet seen serving.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<crate::aws::scheduler::Scheduled>,
}

impl Outcome {
    pub fn step(&mut self, what: impl Into<String>) {
        self.step_at(Utc::now(), what);
    }

    /// Logged as it happens, beside the run's one report line: should the function time out in the
    /// middle of a recovery, the log still shows how far it got.
    pub fn step_at(&mut self, at: DateTime<Utc>, what: impl Into<String>) {
        let what = what.into();
        tracing::info!(%at, step = %what, "spot-recovery step");
        self.timeline.push(Step { at, what });
    }

    pub fn fail(&mut self, step: &'static str, error: impl Into<error::Failure>) {
        let error = error.into();
        tracing::error!(step, %error, "spot-recovery step failed");
        self.timeline.push(Step { at: Utc::now(), what: format!("FAILED {step}: {error}") });
        self.failed.push(Failure { step, error });
    }
}

/// The warning's steps, at once: snapshot, backup, the record on the instance, maybe the early launch.
pub async fn prepare(
    clients: &Clients,
    p: &Prepare,
    backup: Option<&BackupTarget>,
    event_time: DateTime<Utc>,
    deadline: Instant,
) -> Outcome {
    let mut outcome = Outcome::default();
    outcome.step_at(event_time, format!("{} for {} ({})", signal_words(p), p.instance_id, p.gateway));
    let until = deadline.min(Instant::now() + WARNING_WINDOW);
    // Each step's own finishing time goes into the timeline, not the time they were all done.
    let snapshot = async {
        match &p.snapshot {
            Some(source) => Some((clients.ec2.create_snapshot(source, event_time.date_naive()).await, Utc::now())),
            None => None,
        }
    };
    let command = async {
        match (&p.backup, backup) {
            (Some(job), Some(target)) => {
                Some((clients.ssm.back_up(&p.instance_id, job, target, event_time, until).await, Utc::now()))
            }
            _ => None,
        }
    };
    let record = async { (clients.ec2.tag(&p.instance_id, &p.record.0, &p.record.1).await, Utc::now()) };
    let early = async {
        match &p.early_launch {
            Some(launch) => Some((clients.ec2.launch(launch).await, Utc::now())),
            None => None,
        }
    };
    let (snapshot, command, record, early) = tokio::join!(snapshot, command, record, early);

    match record {
        (Ok(()), at) => outcome.step_at(at, format!("recorded {}={} on {}", p.record.0, p.record.1, p.instance_id)),
        (Err(e), _) => outcome.fail("record", e),
    }
    match snapshot {
        Some((Ok(id), at)) => {
            let volume = p.snapshot.as_ref().map(|s| s.volume_id.as_str()).unwrap_or_default();
            outcome.step_at(at, format!("spot-final snapshot {id} of {volume} started"));
            outcome.snapshot_id = Some(id);
        }
        Some((Err(e), _)) => outcome.fail("snapshot", e),
        None => {}
    }
    match command {
        Some((Ok(result), at)) => {
            match result.status.as_str() {
                "Success" if result.record.is_some() => outcome.step_at(
                    at,
                    format!("backup {} uploaded, verified and recorded (command {})", key_of(p), result.command_id),
                ),
                "Success" => outcome.fail(
                    "backup",
                    format!(
                        "backup {} uploaded by command {} but {}",
                        key_of(p),
                        result.command_id,
                        result.verify_error.as_deref().unwrap_or("not verified")
                    ),
                ),
                "Pending" | "InProgress" | "Delayed" => outcome.step_at(
                    at,
                    format!(
                        "backup command {} still {} when the window closed{}",
                        result.command_id,
                        result.status,
                        result.cancel.as_ref().map(ssm::Cancel::note).unwrap_or_default()
                    ),
                ),
                other => outcome.fail(
                    "backup",
                    format!("command {} ended {other}: {}", result.command_id, result.stderr_tail.trim()),
                ),
            }
            outcome.backup = Some(result);
        }
        Some((Err(e), _)) => outcome.fail("backup", e),
        None => {}
    }
    match early {
        Some((Ok(launched), _)) => record_launch(&mut outcome, &launched, "standby"),
        Some((Err(LaunchError::ByAnotherDelivery { .. }), at)) => {
            outcome.step_at(at, "standby launched by another delivery of this signal")
        }
        Some((Err(LaunchError::Refused(e)), _)) => outcome.fail("early-launch", e),
        None => {}
    }
    outcome.timeline.sort_by_key(|s| s.at);
    outcome
}

fn key_of(p: &Prepare) -> &str {
    p.backup.as_ref().map(|b| b.archive_key.as_str()).unwrap_or_default()
}

pub fn signal_words(p: &Prepare) -> String {
    match p.signal {
        crate::plan::Signal::Warning(action) => {
            format!(
                "Spot interruption warning ({})",
                serde_json::to_value(action).unwrap_or_default().as_str().unwrap_or("")
            )
        }
        crate::plan::Signal::Rebalance => "rebalance recommendation".to_owned(),
    }
}

fn record_launch(outcome: &mut Outcome, launched: &Launched, what: &str) {
    if let Some(spot_error) = &launched.spot_error {
        outcome.step(format!("no Spot capacity ({spot_error})"));
    }
    outcome.step(format!("{what} {} launched ({})", launched.instance_id, launched.purchase.as_str()));
    outcome.replacement = Some(launched.instance_id.clone());
    outcome.purchase = Some(launched.purchase);
}

/// The gateway runs again: the records of the interruption it came back from are deleted.
pub async fn clear(clients: &Clients, c: &Clear, event_time: DateTime<Utc>) -> Outcome {
    let mut outcome = Outcome::default();
    outcome.step_at(event_time, format!("{} ({}) running again", c.instance_id, c.gateway));
    let records: Vec<String> = c.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    match clients.ec2.untag(&c.instance_id, &c.tags).await {
        Ok(()) => outcome.step(format!("cleared {} from {}", records.join(", "), c.instance_id)),
        Err(e) => outcome.fail("clear", e),
    }
    outcome
}

/// The replacement, in order: instance, volume, address, alarms.
pub async fn replace(
    clients: &Clients,
    r: &Replace,
    health_timeout: Duration,
    event_time: DateTime<Utc>,
    deadline: Instant,
    follow_up: Option<crate::aws::scheduler::FollowUpTarget<'_>>,
) -> Outcome {
    let mut outcome = Outcome::default();
    if let Some(warned) = r.warned_at.as_deref().and_then(|t| t.parse::<DateTime<Utc>>().ok()) {
        outcome.step_at(warned, format!("Spot interruption warning for {}", r.old_instance));
    }
    outcome.step_at(event_time, format!("{} {} ({})", r.old_instance, r.old_state, r.evidence));

    let new = match &r.replacement {
        Replacement::Existing { instance_id, .. } => {
            outcome.step(format!("replacement {instance_id} already launched (found by its openclaw:replaces tag)"));
            outcome.replacement = Some(instance_id.clone());
            instance_id.clone()
        }
        Replacement::Impossible { reason } => {
            outcome.fail("launch", reason.clone());
            return outcome;
        }
        Replacement::Launch(launch) => {
            // A look right before the launch saves a request; the client token (one for both
            // markets) is what makes two racing deliveries launch one instance.
            let launched = match clients.ec2.replacements(&r.old_instance).await {
                Ok(found) if found.iter().any(is_live) => Err(LaunchError::ByAnotherDelivery { spot_error: None }),
                Ok(_) => clients.ec2.launch(launch).await,
                Err(e) => {
                    outcome.fail("launch", e.to_string());
                    return outcome;
                }
            };
            match launched {
                Ok(launched) => {
                    record_launch(&mut outcome, &launched, &format!("replacement in {}", launch.az));
                    launched.instance_id
                }
                Err(LaunchError::ByAnotherDelivery { spot_error }) => {
                    if let Some(spot_error) = spot_error {
                        outcome.step(format!("no Spot capacity ({spot_error})"));
                    }
                    leave_to_another_delivery(clients, r, &mut outcome).await;
                    return outcome;
                }
                Err(LaunchError::Refused(e)) => {
                    outcome.fail("launch", e);
                    return outcome;
                }
            }
        }
    };
    if let Err(e) = clients.ec2.tag(&r.old_instance, REPLACED_BY, &new).await {
        outcome.fail("record", e);
    }
    let running = clients.ec2.wait_running(&new, deadline).await;
    match &running {
        Ok(()) => outcome.step(format!("{new} running")),
        Err(e) => outcome.fail("replacement", e.clone()),
    }

    // A standby becomes the gateway before it gets the gateway's volume and address: the grants to
    // attach the data volume and move the address name the gateway's role tag on the instance
    // (`MoveTheGatewaysDataVolume`, `ToTheGatewayOnly`), which an operator's launch template may not
    // set, and AWS checks the tags as they are at the time of the call.
    if let Replacement::Existing { instance_id, tags } = &r.replacement
        && !tags.is_empty()
    {
        match clients.ec2.tag_all(instance_id, tags).await {
            Ok(()) => outcome.step(format!("{instance_id} takes over: tagged as the gateway")),
            Err(e) => outcome.fail("record", e),
        }
    }

    if running.is_ok() {
        move_volume(clients, r, &new, deadline, &mut outcome).await;
    }

    match &r.address {
        Address::None => {}
        Address::ElasticIp { allocation_id } => match clients.ec2.associate_address(allocation_id, &new).await {
            Ok(ip) => {
                outcome.step(format!("Elastic IP {ip} ({allocation_id}) moved to {new}"));
                outcome.address = Some(ip);
            }
            Err(e) => outcome.fail("address", e),
        },
        Address::TargetGroup { arn } => {
            match clients.target_group.register(arn, &new).await {
                Ok(()) => outcome.step(format!("{new} registered in the target group")),
                Err(e) => outcome.fail("address", e),
            }
            match clients.target_group.deregister(arn, &r.old_instance).await {
                Ok(()) => outcome.step(format!("{} deregistered", r.old_instance)),
                Err(e) => outcome.fail("address", e),
            }
            outcome.address = Some(arn.clone());
            let until = deadline.min(Instant::now() + health_timeout);
            match clients.target_group.wait_healthy(arn, &new, until).await {
                Ok(state) if state == "healthy" => {
                    outcome.step(format!("target {new}: {state}"));
                    outcome.target_health = Some(state);
                }
                // Not serving yet (still booting, or failing its checks): not a recovery to report
                // as done. The run ends incomplete, the old instance is not retired, and Lambda's
                // retry of the event looks again.
                Ok(state) => {
                    outcome.fail(
                        "health",
                        format!(
                            "target {new} is still {state} at the end of the wait: the load balancer sends it no traffic yet"
                        ),
                    );
                    outcome.target_health = Some(state);
                }
                Err(e) => outcome.fail("health", e),
            }
        }
    }

    if let Some(prefix) = &r.alarm_name_prefix {
        match clients.alarms.repoint_all(prefix, &r.old_instance, &new).await {
            Ok(names) => {
                outcome.step(format!("{} alarm(s) re-pointed to {new}", names.len()));
                outcome.alarms = names;
            }
            Err(e) => outcome.fail("alarms", e),
        }
    }
    // The takeover is done (all but the health wait went well) and the replacement was not seen
    // serving: a follow-up check confirms it or escalates. Before the retirement, so that a failure
    // to schedule it leaves the old instance the gateway and Lambda's retry schedules it.
    if outcome.failed.iter().all(|f| f.step == "health") && outcome.target_health.as_deref() != Some("healthy") {
        crate::aws::scheduler::first_check(&clients.scheduler, follow_up, &r.old_instance, &new, &mut outcome).await;
    }
    // Last, and only when all went well: a retry of a failed run must still see the gateway.
    if outcome.failed.is_empty() {
        match clients.ec2.tag(&r.old_instance, &r.gateway_tag_key, RETIRED).await {
            Ok(()) => outcome.step(format!("{} retired ({}={RETIRED})", r.old_instance, r.gateway_tag_key)),
            Err(e) => outcome.fail("record", e),
        }
    }
    outcome
}

fn is_live(i: &crate::plan::Instance) -> bool {
    !matches!(i.state.as_str(), "terminated" | "shutting-down")
}

/// Two deliveries must not both move the volume and the address: the one that launched carries on,
/// this one names the replacement and stops.
async fn leave_to_another_delivery(clients: &Clients, r: &Replace, outcome: &mut Outcome) {
    match clients.ec2.replacements(&r.old_instance).await {
        Ok(found) => match found.into_iter().filter(is_live).map(|i| i.id).min() {
            Some(id) => {
                outcome.step(format!("replacement {id} launched by another delivery, which carries the recovery on"));
                outcome.replacement = Some(id);
            }
            // EC2's lists are eventually consistent: a launch a moment old may not be listed yet.
            None => outcome.step(
                "replacement launched by another delivery (EC2 does not list it yet), which carries the recovery on",
            ),
        },
        Err(e) => {
            outcome.fail("launch", format!("launched by another delivery, which could not be looked up: {e}"));
            return;
        }
    }
    outcome.left_to_another_delivery = true;
}

async fn move_volume(clients: &Clients, r: &Replace, new: &str, deadline: Instant, outcome: &mut Outcome) {
    let (volume, device) = match &r.volume {
        VolumeStep::Attached { volume_id, device } => {
            outcome.step(format!("data volume {volume_id} already attached to {new} at {device}"));
            outcome.volume_id = Some(volume_id.clone());
            return;
        }
        VolumeStep::Missing { reason } => {
            outcome.fail("volume", format!("the replacement runs WITHOUT OpenClaw's data: {reason}"));
            return;
        }
        VolumeStep::Move { volume_id, device, detach_from } => {
            if let Some(old) = detach_from {
                match clients.ec2.detach(volume_id, old).await {
                    Ok(()) => outcome.step(format!("data volume {volume_id} detached from the stopped {old}")),
                    Err(e) => {
                        outcome.fail("volume", e);
                        return;
                    }
                }
            }
            (volume_id.clone(), device.clone())
        }
        VolumeStep::Restore { snapshot_id, taken_at, age_seconds, az, device, tags } => {
            match clients.ec2.restore_volume(snapshot_id, az, tags).await {
                Ok(id) => {
                    outcome.step(format!(
                        "THE DATA VOLUME WAS GONE: {id} created in {az} from snapshot {snapshot_id} (taken at \
                         {taken_at}, {} before the interruption); changes since that snapshot are lost",
                        crate::report::duration(*age_seconds)
                    ));
                    outcome.restored_from = Some(snapshot_id.clone());
                    (id, device.clone())
                }
                Err(e) => {
                    outcome.fail("volume", e);
                    return;
                }
            }
        }
    };
    match clients.ec2.wait_available(&volume, new, deadline).await {
        Ok(None) => outcome.step(format!("data volume {volume} available")),
        Ok(Some(device)) => {
            outcome.step(format!("data volume {volume} already attached to {new} at {device}"));
            outcome.volume_id = Some(volume);
            return;
        }
        Err(e) => {
            outcome.fail("volume", e);
            return;
        }
    }
    match clients.ec2.attach(&volume, new, &device).await {
        Ok(()) => {
            outcome.step(format!("data volume {volume} attached to {new} at {device}"));
            outcome.volume_id = Some(volume);
        }
        Err(e) => outcome.fail("volume", e),
    }
}
