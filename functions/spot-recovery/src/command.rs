//! The last-minute backup: s3-backup's script, started through SSM Run Command and followed for as
//! long as the instance may still live.

use std::time::Duration;

use openclaw_ops_shared::backup::script;
use openclaw_ops_shared::ssm::{self, ShellCommand};
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
        let command = ShellCommand {
            instance_id,
            comment: "openclaw-ops spot-recovery: backup before a Spot interruption",
            script,
            execution_timeout: EXECUTION_TIMEOUT,
            delivery_timeout: Duration::from_secs(30),
        };
        let invocation = ssm::run(&self.client, command, until).await?;
        let count = invocation.stderr.chars().count();
        let stderr_tail = invocation.stderr.chars().skip(count.saturating_sub(1500)).collect();
        Ok(CommandResult { command_id: invocation.command_id, status: invocation.status, stderr_tail })
    }
}
