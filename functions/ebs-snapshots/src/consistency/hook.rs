//! The SSM side of app-consistency: which gateways have an online agent, and the freeze →
//! `CreateSnapshot` → thaw sequence around one data volume's snapshot.

use std::time::Duration;

use aws_sdk_ssm::types::InstanceInformationStringFilter;
use chrono::NaiveDate;
use openclaw_ops_shared::Error;
use openclaw_ops_shared::error::{Failure, sdk};
use openclaw_ops_shared::snapshot::SnapshotSource;
use openclaw_ops_shared::ssm::{self, ShellCommand};
use serde::Serialize;
use tokio::time::Instant;

use super::{Agent, Choice, Consistency, Frozen, Mode, Script, Settings};
use crate::aws::Ec2;

/// How long SSM may take to hand a command to the agent (SendCommand's least `TimeoutSeconds`).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// The scripts' own limit on the instance: the checkpoint waits up to 5 s per busy database.
const EXECUTION_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the function follows the thaw (the timer thaws at the limit anyway).
const THAW_WAIT: Duration = Duration::from_secs(40);

#[derive(Debug, Clone)]
pub struct Hook {
    client: aws_sdk_ssm::Client,
    settings: Settings,
}

/// How one snapshot came out: its consistency and, when it is not what was wanted, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Taken {
    pub volume_id: String,
    pub consistency: Consistency,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The gateway should have had an app-consistent snapshot and did not (or the thaw failed).
    pub warn: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frozen: Option<Frozen>,
    /// How the thaw found the filesystem (`thawed`, or its limit had thawed it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thawed: Option<String>,
    /// From the freeze being sent to `CreateSnapshot` returning, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frozen_ms: Option<u128>,
}

impl Hook {
    pub fn new(client: aws_sdk_ssm::Client, settings: Settings) -> Self {
        Hook { client, settings }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The SSM agents of `instances` (`ssm:DescribeInstanceInformation`); one not listed is not managed.
    #[tracing::instrument(skip_all)]
    pub async fn agents(&self, instances: &[String]) -> Result<Vec<(String, Agent)>, Error> {
        if instances.is_empty() {
            return Ok(Vec::new());
        }
        let filter = InstanceInformationStringFilter::builder()
            .key("InstanceIds")
            .set_values(Some(instances.to_vec()))
            .build()
            .map_err(|e| Error::Config(format!("an SSM filter: {e}")))?;
        let mut pages = self.client.describe_instance_information().filters(filter).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(sdk("ssm:DescribeInstanceInformation"))?;
            for info in page.instance_information_list() {
                let Some(id) = info.instance_id() else { continue };
                let agent = match info.ping_status().map(|s| s.as_str()) {
                    Some("Online") => Agent::Online,
                    other => Agent::Offline(other.unwrap_or("unknown").to_owned()),
                };
                out.push((id.to_owned(), agent));
            }
        }
        Ok(out)
    }

    /// The daily snapshot of `source` as `choice` says: crash-consistent at once, or frozen first.
    /// A hook that fails leaves a crash-consistent snapshot and says why; only `CreateSnapshot`
    /// itself failing is an error.
    #[tracing::instrument(skip_all, fields(token = %token))]
    pub async fn snapshot(
        &self,
        ec2: &Ec2,
        source: &SnapshotSource,
        date: NaiveDate,
        choice: &Choice,
        token: &str,
    ) -> (Result<String, Failure>, Taken) {
        let crash = |reason: String, warn: bool| Taken {
            volume_id: source.volume_id.clone(),
            consistency: Consistency::Crash,
            reason: Some(reason),
            warn,
            frozen: None,
            thawed: None,
            frozen_ms: None,
        };
        let (instance_id, device) = match choice {
            Choice::Crash { reason, warn } => {
                let taken = crash(reason.clone(), *warn);
                return (ec2.create_daily(source, date, Consistency::Crash).await, taken);
            }
            Choice::App { instance_id, device } => (instance_id.as_str(), device.as_str()),
        };
        let script = |mode| Script {
            mode,
            volume_id: &source.volume_id,
            device,
            state_dir: &self.settings.state_dir,
            limit: self.settings.freeze_limit,
            token,
        };
        let limit = self.settings.freeze_limit;

        let sent = Instant::now();
        // Waiting longer is pointless: the snapshot could no longer be started inside the window.
        let give_up = sent + super::frozen_window(limit).saturating_sub(super::CREATE_BUDGET);
        let frozen = self.run(instance_id, "openclaw-ops ebs-snapshots: freeze", script(Mode::Freeze), give_up).await;
        let frozen = match frozen {
            Ok(out) => super::parse_frozen(&out).map_err(|e| format!("the freeze: {e}")),
            Err(e) => Err(e),
        };
        let frozen = match frozen {
            Ok(frozen) if super::can_still_snapshot(sent.elapsed(), limit) => frozen,
            outcome => {
                let why = match outcome {
                    Ok(_) => format!(
                        "the freeze was confirmed {:.1} s after it was sent: too late to start the snapshot inside \
                         its limit of {} s",
                        sent.elapsed().as_secs_f64(),
                        limit.as_secs()
                    ),
                    Err(e) => e,
                };
                // Thawed (or kept from ever freezing, if the command has not run yet) before the
                // crash-consistent snapshot, so the gateway waits no longer than it must.
                let thawed = self.thaw(instance_id, script(Mode::Thaw)).await;
                let mut taken = crash(format!("the freeze failed: {why}"), true);
                taken.thawed = Some(thawed.unwrap_or_else(|e| format!("thaw failed: {e}")));
                return (ec2.create_daily(source, date, Consistency::Crash).await, taken);
            }
        };

        // Tagged `app` at creation: it must return while the freeze certainly holds, or the claim
        // could be false. An answer later than that is reported as a failure (see README).
        let window = super::frozen_window(limit).saturating_sub(sent.elapsed());
        let created = match tokio::time::timeout(window, ec2.create_daily(source, date, Consistency::App)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::call(
                "ec2:CreateSnapshot",
                format!(
                    "no answer within the freeze's limit ({} s): if EC2 made the snapshot, it is tagged {}=app but \
                     the filesystem may have been thawed at its point in time",
                    limit.as_secs(),
                    super::TAG
                ),
            )),
        };
        let frozen_ms = sent.elapsed().as_millis();
        let thawed = self.thaw(instance_id, script(Mode::Thaw)).await;
        let (thawed, warn, reason) = match thawed {
            Ok(how) if how == "thawed" || how == "not-frozen-by-this-run" => (how, false, None),
            Ok(how) => (how.clone(), true, Some(format!("the thaw found the filesystem {how}"))),
            Err(e) => (
                format!("thaw failed: {e}"),
                true,
                Some(format!(
                    "the thaw failed ({e}); the filesystem thaws on its own at the limit, {} s after the freeze",
                    limit.as_secs()
                )),
            ),
        };
        let taken = Taken {
            volume_id: source.volume_id.clone(),
            consistency: Consistency::App,
            reason,
            warn,
            frozen: Some(frozen),
            thawed: Some(thawed),
            frozen_ms: Some(frozen_ms),
        };
        (created, taken)
    }
    #[tracing::instrument(skip_all, fields(instance_id = %instance_id))]

    async fn thaw(&self, instance_id: &str, script: Script<'_>) -> Result<String, String> {
        let until = Instant::now() + THAW_WAIT;
        let out = self.run(instance_id, "openclaw-ops ebs-snapshots: thaw", script, until).await?;
        super::parse_thawed(&out).map_err(|e| format!("the thaw: {e}"))
    }

    /// Runs one hook command and follows it until it ends or `until`: its output, or why not.
    #[tracing::instrument(skip_all, fields(instance_id = %instance_id, comment = %comment))]
    async fn run(
        &self,
        instance_id: &str,
        comment: &str,
        script: Script<'_>,
        until: Instant,
    ) -> Result<String, String> {
        let command = ShellCommand {
            instance_id,
            comment,
            script: script.text(),
            execution_timeout: EXECUTION_TIMEOUT,
            delivery_timeout: DELIVERY_TIMEOUT,
            // A freeze left pending would freeze the volume after the function gave up on it: the
            // script's own timer still thaws it, but a command that never ran is better.
            cancel_at_deadline: true,
        };
        let invocation = ssm::run(&self.client, command, until).await.map_err(|e| e.to_string())?;
        if invocation.running() {
            return Err(format!(
                "command {} still {} when the function had to stop waiting for it",
                invocation.command_id, invocation.status
            ));
        }
        if invocation.status != "Success" {
            return Err(format!(
                "command {} {} (exit {}): {}",
                invocation.command_id,
                invocation.status,
                invocation.exit_code,
                super::tail(&invocation.stderr)
            ));
        }
        Ok(invocation.stdout)
    }
}
