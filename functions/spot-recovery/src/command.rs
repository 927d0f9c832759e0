//! The last-minute backup: s3-backup's script, started through SSM Run Command and followed for as
//! long as the instance may still live.

use std::time::Duration;

use openclaw_ops_shared::backup::script;
use openclaw_ops_shared::error::SdkErrorDisplay;
use serde::Serialize;
use tokio::time::Instant;

use crate::config::BackupTarget;
use crate::plan::BackupJob;

/// The backup's own limit on the instance: the warning gives two minutes in all.
pub const EXECUTION_TIMEOUT: Duration = Duration::from_secs(110);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandResult {
    pub command_id: String,
    /// `Success`, `Failed`, `TimedOut`..., or `InProgress` when the function stopped following it.
    pub status: String,
    pub stderr_tail: String,
}

#[derive(Debug, Clone)]
pub struct Ssm {
    client: aws_sdk_ssm::Client,
}

impl Ssm {
    pub fn new(client: aws_sdk_ssm::Client) -> Self {
        Ssm { client }
    }

    /// Starts the backup on the instance and follows it until it ends or `until`.
    pub async fn back_up(
        &self,
        instance_id: &str,
        job: &BackupJob,
        target: &BackupTarget,
        until: Instant,
    ) -> Result<CommandResult, String> {
        let script = script::Backup {
            state_dir: target.state_dir.clone(),
            bucket: target.bucket.clone(),
            archive_key: job.archive_key.clone(),
            manifest_key: job.manifest_key.clone(),
            kms_key_id: target.kms_key_id.clone(),
            trigger: "spot-warning".to_owned(),
            instance_id: instance_id.to_owned(),
            gateway: job.gateway.clone(),
            include_logs_and_media: false,
        }
        .script();
        let sent = self
            .client
            .send_command()
            .instance_ids(instance_id)
            .document_name("AWS-RunShellScript")
            .comment("openclaw-ops spot-recovery: backup before a Spot interruption")
            .parameters("commands", vec![script])
            .parameters("executionTimeout", vec![EXECUTION_TIMEOUT.as_secs().to_string()])
            .timeout_seconds(30)
            .send()
            .await
            .map_err(|e| format!("ssm:SendCommand: {}", SdkErrorDisplay(&e)))?;
        let command_id =
            sent.command().and_then(|c| c.command_id()).ok_or("SendCommand answered without a command id")?.to_owned();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let invocation = match self
                .client
                .get_command_invocation()
                .command_id(&command_id)
                .instance_id(instance_id)
                .send()
                .await
            {
                Ok(i) => Some(i),
                // Right after SendCommand the invocation may not exist yet.
                Err(e) if e.as_service_error().is_some_and(|s| s.is_invocation_does_not_exist()) => None,
                Err(e) => return Err(format!("ssm:GetCommandInvocation {command_id}: {}", SdkErrorDisplay(&e))),
            };
            let status = invocation
                .as_ref()
                .and_then(|i| i.status())
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|| "Pending".to_owned());
            let running = matches!(status.as_str(), "Pending" | "InProgress" | "Delayed");
            if !running || Instant::now() >= until {
                let stderr = invocation.as_ref().and_then(|i| i.standard_error_content()).unwrap_or_default();
                let count = stderr.chars().count();
                let stderr_tail = stderr.chars().skip(count.saturating_sub(1500)).collect();
                return Ok(CommandResult { command_id, status, stderr_tail });
            }
        }
    }
}
