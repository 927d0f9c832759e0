//! The last-minute backup: s3-backup's script, started through SSM Run Command with pre-signed URLs
//! for exactly its archive and manifest, followed for as long as the instance may still live, then
//! read back, locked and recorded like s3-backup's (so "latest" can be this one).

use std::time::Duration;

use chrono::{DateTime, Utc};
use openclaw_ops_shared::backup::layout::Kind;
use openclaw_ops_shared::backup::script;
use openclaw_ops_shared::backup::store::{Owner, Store};
use openclaw_ops_shared::error::Failure;
use openclaw_ops_shared::ssm::{self, ShellCommand};
use serde::Serialize;
use tokio::time::Instant;

use crate::config::BackupTarget;
use crate::plan::BackupJob;

/// The backup's own limit on the instance: the warning gives two minutes in all.
pub const EXECUTION_TIMEOUT: Duration = Duration::from_secs(110);
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandResult {
    pub command_id: String,
    /// `Success`, `Failed`, `TimedOut`..., or `InProgress` when the function stopped following it.
    pub status: String,
    pub stderr_tail: String,
    /// The record written once the backup verified; `None` when it did not (see `verify_error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_error: Option<String>,
    /// Still running when the window closed: cancelled, so that a retry does not run a second one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel: Option<ssm::Cancel>,
}

#[derive(Debug, Clone)]
pub struct Ssm {
    client: aws_sdk_ssm::Client,
    /// The backup bucket; `None` without `BACKUP_BUCKET`.
    store: Option<Store>,
}

impl Ssm {
    pub fn new(client: aws_sdk_ssm::Client, store: Option<Store>) -> Self {
        Ssm { client, store }
    }

    /// Starts the backup on the instance and follows it until it ends or `until`.
    #[tracing::instrument(skip_all, fields(instance_id = %instance_id))]
    pub async fn back_up(
        &self,
        instance_id: &str,
        job: &BackupJob,
        target: &BackupTarget,
        made_at: DateTime<Utc>,
        until: Instant,
    ) -> Result<CommandResult, Failure> {
        let store = self.store.as_ref().ok_or("no backup bucket is configured")?;
        let lifetime = DELIVERY_TIMEOUT + EXECUTION_TIMEOUT;
        let upload = |key: &str, kind: &str| {
            let (key, kind) = (key.to_owned(), kind.to_owned());
            async move { store.upload_url(&key, &kind, lifetime).await.map_err(Failure::from) }
        };
        let script = script::Backup {
            state_dir: target.state_dir.clone(),
            archive_key: job.archive_key.clone(),
            manifest_key: job.manifest_key.clone(),
            archive_upload: upload(&job.archive_key, "application/gzip").await?,
            manifest_upload: upload(&job.manifest_key, "application/json").await?,
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
            delivery_timeout: DELIVERY_TIMEOUT,
            // A retry would start a second backup of a dying instance beside it.
            cancel_at_deadline: true,
        };
        let invocation = ssm::run(&self.client, command, until).await?;
        let stderr_tail = openclaw_ops_shared::invocation::tail(&invocation.stderr, 1500);
        let mut result = CommandResult {
            command_id: invocation.command_id,
            status: invocation.status,
            stderr_tail,
            record: None,
            verify_error: None,
            cancel: invocation.cancel,
        };
        if result.status == "Success" {
            let owner = Owner { gateway_id: &job.gateway_id, gateway: &job.gateway, instance_id };
            match store.verify(&job.manifest_key, None).await {
                Ok(verified) => match store.keep(&verified, Kind::SpotWarning, &owner, made_at, Utc::now()).await {
                    Ok(_) => result.record = layout_record(&job.manifest_key),
                    Err(e) => result.verify_error = Some(format!("verified but not recorded: {e}")),
                },
                Err(e) => result.verify_error = Some(format!("does not verify: {e}")),
            }
        }
        Ok(result)
    }
}

fn layout_record(manifest_key: &str) -> Option<String> {
    openclaw_ops_shared::backup::layout::record_for(manifest_key, Kind::SpotWarning)
}
