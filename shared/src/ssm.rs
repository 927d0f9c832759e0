//! Running a shell script on an instance through SSM Run Command (`AWS-RunShellScript`) and
//! following it: s3-backup's backups and restores, spot-recovery's last-minute backup.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::error::Failure;

/// What to run where, and for how long SSM may take to deliver and to run it.
#[derive(Debug, Clone)]
pub struct ShellCommand<'a> {
    pub instance_id: &'a str,
    pub comment: &'a str,
    pub script: String,
    /// The script's own limit on the instance (`executionTimeout`).
    pub execution_timeout: Duration,
    /// How long SSM may wait for the instance to pick the command up.
    pub delivery_timeout: Duration,
    /// Whether a command still running at the caller's deadline is cancelled (`CancelCommand`) or
    /// left to finish: see [`Cancel`].
    pub cancel_at_deadline: bool,
}

/// Where a command stands: ended (`Success`, `Failed`, `TimedOut`...) or, when the caller's time ran
/// out first, still running (see [`Invocation::running`]) and then cancelled (see [`Cancel`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invocation {
    pub command_id: String,
    pub status: String,
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Set when the command was still running at the caller's deadline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel: Option<Cancel>,
}

/// What became of a command still running when the caller had to stop and asked for it to be
/// cancelled. Left running, a Lambda retry would start a second one beside it; a caller whose
/// retry adopts the first one's result instead (s3-backup's write-once uploads) leaves it running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cancel {
    /// SSM accepted `CancelCommand`: the agent stops the script (the invocation turns `Cancelled`).
    Requested,
    /// `CancelCommand` failed: the script may still run to its own `executionTimeout`.
    Failed(String),
}

impl Invocation {
    pub fn running(&self) -> bool {
        matches!(self.status.as_str(), "Pending" | "InProgress" | "Delayed")
    }

    /// "cancelled" or why not, for a command still running at the deadline (empty otherwise).
    pub fn cancel_note(&self) -> String {
        self.cancel.as_ref().map(Cancel::note).unwrap_or_default()
    }
}

impl Cancel {
    /// A clause to append to "command X still running when ...".
    pub fn note(&self) -> String {
        match self {
            Cancel::Requested => "; cancelled, so a retry does not run it twice".to_owned(),
            Cancel::Failed(e) => format!("; NOT cancelled ({e}): it may still run to its own time limit"),
        }
    }
}

/// Sends the command and follows it until it ends or `until` comes.
#[tracing::instrument(skip_all)]
pub async fn run(
    client: &aws_sdk_ssm::Client,
    command: ShellCommand<'_>,
    until: Instant,
) -> Result<Invocation, Failure> {
    let instance_id = command.instance_id;
    let sent = client
        .send_command()
        .instance_ids(instance_id)
        .document_name("AWS-RunShellScript")
        .comment(command.comment)
        .parameters("commands", vec![command.script])
        .parameters("executionTimeout", vec![command.execution_timeout.as_secs().to_string()])
        .timeout_seconds(command.delivery_timeout.as_secs() as i32)
        .send()
        .await
        .map_err(|e| {
            // SSM refuses the send at once for an instance it cannot reach: say what to fix.
            let hint = if e.as_service_error().is_some_and(|s| s.is_invalid_instance_id()) {
                format!(
                    " ({instance_id} is not an instance SSM can reach now: it is not running, or its SSM agent is \
                     not running or not registered (its instance role needs the SSM agent's grants: the gateway stack's \
                     SsmAgent* statements, or AmazonSSMManagedInstanceCore on an instance of your own); nothing was sent)"
                )
            } else {
                String::new()
            };
            let mut failure = Failure::from_sdk("ssm:SendCommand", &e);
            failure.message.push_str(&hint);
            failure
        })?;
    let command_id = sent
        .command()
        .and_then(|c| c.command_id())
        .ok_or_else(|| Failure::call("ssm:SendCommand", "answered without a command id"))?
        .to_owned();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let invocation =
            match client.get_command_invocation().command_id(&command_id).instance_id(instance_id).send().await {
                Ok(i) => Invocation {
                    command_id: command_id.clone(),
                    status: i.status().map(|s| s.as_str().to_owned()).unwrap_or_else(|| "Pending".to_owned()),
                    exit_code: i.response_code(),
                    stdout: i.standard_output_content().unwrap_or_default().to_owned(),
                    stderr: i.standard_error_content().unwrap_or_default().to_owned(),
                    cancel: None,
                },
                // Right after SendCommand the invocation may not exist yet.
                Err(e) if e.as_service_error().is_some_and(|s| s.is_invocation_does_not_exist()) => Invocation {
                    command_id: command_id.clone(),
                    status: "Pending".to_owned(),
                    exit_code: -1,
                    stdout: String::new(),
                    stderr: String::new(),
                    cancel: None,
                },
                Err(e) => {
                    let mut failure = Failure::from_sdk("ssm:GetCommandInvocation", &e);
                    failure.message = format!("command {command_id}: {}", failure.message);
                    return Err(failure);
                }
            };
        if !invocation.running() {
            return Ok(invocation);
        }
        if Instant::now() >= until {
            if !command.cancel_at_deadline {
                return Ok(invocation);
            }
            let cancel = match client.cancel_command().command_id(&command_id).instance_ids(instance_id).send().await {
                Ok(_) => Cancel::Requested,
                Err(e) => {
                    Cancel::Failed(format!("command {command_id}: {}", Failure::from_sdk("ssm:CancelCommand", &e)))
                }
            };
            return Ok(Invocation { cancel: Some(cancel), ..invocation });
        }
    }
}
