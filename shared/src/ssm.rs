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

#[cfg(test)]
mod tests {
    use aws_sdk_ssm::Client;
    use aws_sdk_ssm::operation::cancel_command::CancelCommandOutput;
    use aws_sdk_ssm::operation::get_command_invocation::{GetCommandInvocationError, GetCommandInvocationOutput};
    use aws_sdk_ssm::operation::send_command::{SendCommandError, SendCommandOutput};
    use aws_sdk_ssm::types::error::{InvalidInstanceId, InvocationDoesNotExist};
    use aws_sdk_ssm::types::{Command, CommandInvocationStatus};
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    fn command(cancel_at_deadline: bool) -> ShellCommand<'static> {
        ShellCommand {
            instance_id: "i-1",
            comment: "openclaw-ops backup",
            script: "echo hi".to_owned(),
            execution_timeout: Duration::from_secs(600),
            delivery_timeout: Duration::from_secs(60),
            cancel_at_deadline,
        }
    }

    fn sent() -> Rule {
        mock!(Client::send_command)
            .match_requests(|r| {
                let parameters = r.parameters().expect("parameters are sent");
                r.instance_ids() == ["i-1"]
                    && r.document_name() == Some("AWS-RunShellScript")
                    && r.comment() == Some("openclaw-ops backup")
                    && parameters["commands"] == ["echo hi"]
                    && parameters["executionTimeout"] == ["600"]
                    && r.timeout_seconds() == Some(60)
            })
            .then_output(|| {
                SendCommandOutput::builder().command(Command::builder().command_id("cmd-1").build()).build()
            })
    }

    fn invocation(
        status: CommandInvocationStatus,
        code: i32,
        stdout: &str,
        stderr: &str,
    ) -> GetCommandInvocationOutput {
        GetCommandInvocationOutput::builder()
            .command_id("cmd-1")
            .instance_id("i-1")
            .status(status)
            .response_code(code)
            .standard_output_content(stdout)
            .standard_error_content(stderr)
            .build()
    }

    fn polled() -> aws_smithy_mocks::RuleBuilder<
        aws_sdk_ssm::operation::get_command_invocation::GetCommandInvocationInput,
        GetCommandInvocationOutput,
        GetCommandInvocationError,
    > {
        mock!(Client::get_command_invocation)
            .match_requests(|r| r.command_id() == Some("cmd-1") && r.instance_id() == Some("i-1"))
    }

    #[tokio::test(start_paused = true)]
    async fn success_answers_the_output() {
        let send = sent();
        let poll = polled().then_output(|| invocation(CommandInvocationStatus::Success, 0, "done\n", ""));
        let client = mock_client!(aws_sdk_ssm, RuleMode::Sequential, [&send, &poll]);

        let outcome = run(&client, command(true), Instant::now() + Duration::from_secs(60)).await.unwrap();
        assert_eq!(
            outcome,
            Invocation {
                command_id: "cmd-1".into(),
                status: "Success".into(),
                exit_code: 0,
                stdout: "done\n".into(),
                stderr: String::new(),
                cancel: None,
            }
        );
        assert_eq!((send.num_calls(), poll.num_calls()), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_carries_its_exit_code_and_stderr() {
        let send = sent();
        let poll = polled()
            .sequence()
            .output(|| invocation(CommandInvocationStatus::InProgress, -1, "", ""))
            .output(|| invocation(CommandInvocationStatus::Failed, 2, "", "tar: /data: Cannot open"))
            .build();
        let client = mock_client!(aws_sdk_ssm, RuleMode::Sequential, [&send, &poll]);

        let outcome = run(&client, command(true), Instant::now() + Duration::from_secs(60)).await.unwrap();
        assert_eq!((outcome.status.as_str(), outcome.exit_code), ("Failed", 2));
        assert_eq!(outcome.stderr, "tar: /data: Cannot open");
        assert!(!outcome.running());
        assert_eq!(poll.num_calls(), 2);
    }

    /// Right after SendCommand, GetCommandInvocation may answer InvocationDoesNotExist: that is a
    /// command not delivered yet, polled again, not a failure.
    #[tokio::test(start_paused = true)]
    async fn invocation_does_not_exist_right_after_sending_is_polled_again() {
        let send = sent();
        let poll = polled()
            .sequence()
            .error(|| {
                GetCommandInvocationError::InvocationDoesNotExist(
                    InvocationDoesNotExist::builder()
                        .meta(ErrorMetadata::builder().code("InvocationDoesNotExist").build())
                        .build(),
                )
            })
            .times(2)
            .output(|| invocation(CommandInvocationStatus::Success, 0, "ok", ""))
            .build();
        let client = mock_client!(aws_sdk_ssm, RuleMode::Sequential, [&send, &poll]);

        let outcome = run(&client, command(true), Instant::now() + Duration::from_secs(60)).await.unwrap();
        assert_eq!(outcome.status, "Success");
        assert_eq!(poll.num_calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn another_polling_error_is_a_failure() {
        let send = sent();
        let poll = polled().then_error(|| {
            GetCommandInvocationError::generic(
                ErrorMetadata::builder().code("AccessDeniedException").message("no").build(),
            )
        });
        let client = mock_client!(aws_sdk_ssm, RuleMode::Sequential, [&send, &poll]);

        let err = run(&client, command(true), Instant::now() + Duration::from_secs(60)).await.unwrap_err();
        assert!(err.to_string().contains("GetCommandInvocation"), "{err}");
        assert!(err.to_string().contains("AccessDeniedException"), "{err}");
    }

    /// A command still Pending, then InProgress, at the deadline is cancelled when the caller asks
    /// for it, once, and answered as still running.
    #[tokio::test(start_paused = true)]
    async fn a_command_running_at_the_deadline_is_cancelled_when_asked() {
        let send = sent();
        let poll = polled()
            .sequence()
            .output(|| invocation(CommandInvocationStatus::Pending, -1, "", ""))
            .times(2)
            .output(|| invocation(CommandInvocationStatus::InProgress, -1, "half", ""))
            .repeatedly()
            .build();
        let cancel = mock!(Client::cancel_command)
            .match_requests(|r| r.command_id() == Some("cmd-1") && r.instance_ids() == ["i-1"])
            .then_output(|| CancelCommandOutput::builder().build());
        let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&send, &poll, &cancel]);

        let started = Instant::now();
        let outcome = run(&client, command(true), started + Duration::from_secs(5)).await.unwrap();
        assert!(outcome.running());
        assert_eq!(outcome.status, "InProgress");
        assert_eq!(outcome.cancel, Some(Cancel::Requested));
        assert!(outcome.cancel_note().contains("cancelled"));
        assert_eq!(cancel.num_calls(), 1);
        assert!(Instant::now() >= started + Duration::from_secs(5), "polled until the deadline");
        // Every half second until the deadline, not in a tight loop.
        assert!((10..=11).contains(&poll.num_calls()), "{} polls", poll.num_calls());
    }

    #[tokio::test(start_paused = true)]
    async fn a_command_running_at_the_deadline_is_left_running_when_asked() {
        let send = sent();
        let poll = polled().then_output(|| invocation(CommandInvocationStatus::Pending, -1, "", ""));
        let cancel = mock!(Client::cancel_command).then_output(|| CancelCommandOutput::builder().build());
        let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&send, &poll, &cancel]);

        let outcome = run(&client, command(false), Instant::now() + Duration::from_secs(2)).await.unwrap();
        assert_eq!((outcome.status.as_str(), outcome.cancel.as_ref()), ("Pending", None));
        assert_eq!(cancel.num_calls(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_cancel_says_the_command_may_still_run() {
        let send = sent();
        let poll = polled().then_output(|| invocation(CommandInvocationStatus::InProgress, -1, "", ""));
        let cancel = mock!(Client::cancel_command).then_error(|| {
            aws_sdk_ssm::operation::cancel_command::CancelCommandError::generic(
                ErrorMetadata::builder().code("InvalidCommandId").message("gone").build(),
            )
        });
        let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&send, &poll, &cancel]);

        let outcome = run(&client, command(true), Instant::now() + Duration::from_secs(1)).await.unwrap();
        assert!(matches!(&outcome.cancel, Some(Cancel::Failed(e)) if e.contains("InvalidCommandId")));
        assert!(outcome.cancel_note().contains("NOT cancelled"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_instance_is_refused_at_once_with_what_to_fix() {
        let send = mock!(Client::send_command).then_error(|| {
            SendCommandError::InvalidInstanceId(
                InvalidInstanceId::builder().meta(ErrorMetadata::builder().code("InvalidInstanceId").build()).build(),
            )
        });
        let poll = polled().then_output(|| invocation(CommandInvocationStatus::Success, 0, "", ""));
        let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&send, &poll]);

        let err = run(&client, command(true), Instant::now() + Duration::from_secs(60)).await.unwrap_err();
        assert!(err.to_string().contains("ssm:SendCommand"), "{err}");
        assert!(err.to_string().contains("i-1 is not an instance SSM can reach"), "{err}");
        assert!(err.to_string().contains("nothing was sent"), "{err}");
        assert_eq!(poll.num_calls(), 0);
    }
}
