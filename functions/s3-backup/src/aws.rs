//! The AWS calls: the gateways (EC2), the command (SSM), and the bucket's settings (S3). The backups
//! themselves are read and written through [`Store`] (shared with spot-recovery).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use openclaw_ops_shared::Error;
pub use openclaw_ops_shared::backup::store::{Manifest, Store};
use openclaw_ops_shared::error::{Failure, sdk};
use openclaw_ops_shared::ssm::{self, ShellCommand};
use openclaw_ops_shared::tags::TagFilter;

use crate::drift;
use crate::plan::Gateway;

#[derive(Debug, Clone)]
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub s3: aws_sdk_s3::Client,
    pub store: Store,
    pub sns: aws_sdk_sns::Client,
}

/// How a command ended.
pub use openclaw_ops_shared::ssm::Invocation as CommandOutcome;

impl Clients {
    /// Every client, built once per container (in the init phase).
    pub fn new(sdk: &aws_config::SdkConfig, config: &crate::Config) -> Self {
        let s3 = aws_sdk_s3::Client::new(sdk);
        Clients {
            ec2: aws_sdk_ec2::Client::new(sdk),
            ssm: aws_sdk_ssm::Client::new(sdk),
            store: config.backup.store(s3.clone()),
            s3,
            sns: aws_sdk_sns::Client::new(sdk),
        }
    }

    /// Running instances carrying the gateway tag, each with the id its backups are filed under:
    /// the data volume attached to it that carries the same tag (it follows the gateway to a
    /// replacement instance), else the instance id.
    #[tracing::instrument(skip_all)]
    pub async fn gateways(&self, tag: &TagFilter) -> Result<Vec<Gateway>, Error> {
        let mut pages = self
            .ec2
            .describe_instances()
            .filters(Filter::builder().name(format!("tag:{}", tag.key)).values(&tag.value).build())
            .filters(Filter::builder().name("instance-state-name").values("running").build())
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(sdk("ec2:DescribeInstances"))?;
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = instance.instance_id() else { continue };
                let name = instance.tags().iter().find(|t| t.key() == Some("Name")).and_then(|t| t.value());
                out.push(Gateway {
                    instance_id: id.to_owned(),
                    name: name.unwrap_or(id).to_owned(),
                    id: id.to_owned(),
                });
            }
        }
        if out.is_empty() {
            return Ok(out);
        }
        let volumes = self.data_volumes(tag, &out).await?;
        for gateway in &mut out {
            if let Some(volume) = volumes.get(&gateway.instance_id) {
                gateway.id = volume.clone();
            }
        }
        Ok(out)
    }

    /// Instance id → the id of the tagged data volume attached to it (the lowest, if several).
    #[tracing::instrument(skip_all)]
    async fn data_volumes(&self, tag: &TagFilter, gateways: &[Gateway]) -> Result<HashMap<String, String>, Error> {
        let ids: Vec<String> = gateways.iter().map(|g| g.instance_id.clone()).collect();
        let mut pages = self
            .ec2
            .describe_volumes()
            .filters(Filter::builder().name(format!("tag:{}", tag.key)).values(&tag.value).build())
            .filters(Filter::builder().name("attachment.instance-id").set_values(Some(ids)).build())
            .into_paginator()
            .send();
        let mut out: HashMap<String, String> = HashMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(sdk("ec2:DescribeVolumes"))?;
            for volume in page.volumes() {
                let Some(volume_id) = volume.volume_id() else { continue };
                for instance in volume.attachments().iter().filter_map(|a| a.instance_id()) {
                    let entry = out.entry(instance.to_owned()).or_insert_with(|| volume_id.to_owned());
                    if volume_id < entry.as_str() {
                        *entry = volume_id.to_owned();
                    }
                }
            }
        }
        Ok(out)
    }

    /// Keys under a prefix (every page).
    #[tracing::instrument(skip_all, fields(prefix = %prefix))]
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        self.store.list(prefix).await
    }

    /// Runs a shell script on an instance and waits for it, until `deadline`.
    #[tracing::instrument(skip_all, fields(instance_id = %instance_id, comment = %comment))]
    pub async fn run(
        &self,
        instance_id: &str,
        comment: &str,
        script: String,
        timeout: Duration,
        deadline: tokio::time::Instant,
    ) -> Result<CommandOutcome, Failure> {
        let command = ShellCommand {
            instance_id,
            comment,
            script,
            execution_timeout: timeout,
            delivery_timeout: crate::config::DELIVERY_TIMEOUT,
            // Left to finish: its uploads are write-once, and Lambda's retry verifies and records
            // what it uploaded instead of sending it again (a backup that outlasts the run lands).
            cancel_at_deadline: false,
        };
        let outcome = ssm::run(&self.ssm, command, deadline).await?;
        if outcome.running() {
            return Err(Failure::from(format!(
                "command {} still {} when the function had to stop{}",
                outcome.command_id,
                outcome.status,
                outcome.cancel_note()
            )));
        }
        Ok(outcome)
    }

    /// The bucket's versioning, default encryption and lifecycle rules, for the drift check. What
    /// cannot be read is kept as its error, to be reported.
    #[tracing::instrument(skip_all, fields(bucket = %bucket))]
    pub async fn bucket_settings(&self, bucket: &str) -> drift::Observed {
        // Three independent reads, at once.
        let (versioning, encryption, lifecycle) = tokio::join!(
            self.s3.get_bucket_versioning().bucket(bucket).send(),
            self.s3.get_bucket_encryption().bucket(bucket).send(),
            self.s3.get_bucket_lifecycle_configuration().bucket(bucket).send(),
        );
        let versioning = match versioning {
            Ok(v) => Ok(v.status().map(|s| s.as_str().to_owned())),
            Err(e) => Err(Failure::from_sdk("s3:GetBucketVersioning", &e)),
        };
        let encryption = match encryption {
            Ok(out) => Ok(out
                .server_side_encryption_configuration()
                .map(|c| c.rules())
                .unwrap_or_default()
                .iter()
                .filter_map(|r| r.apply_server_side_encryption_by_default())
                .map(|d| drift::Encryption {
                    algorithm: d.sse_algorithm().as_str().to_owned(),
                    kms_key: d.kms_master_key_id().map(str::to_owned),
                })
                .collect()),
            Err(e) if e.as_service_error().and_then(|s| s.meta().code()) == Some(NO_ENCRYPTION) => Ok(vec![]),
            Err(e) => Err(Failure::from_sdk("s3:GetEncryptionConfiguration", &e)),
        };
        let lifecycle = match lifecycle {
            Ok(out) => Ok(Some(out.rules().iter().map(rule).collect())),
            Err(e) if e.as_service_error().and_then(|s| s.meta().code()) == Some(NO_LIFECYCLE) => Ok(None),
            Err(e) => Err(Failure::from_sdk("s3:GetLifecycleConfiguration", &e)),
        };
        drift::Observed { versioning, encryption, lifecycle }
    }
}

const NO_ENCRYPTION: &str = "ServerSideEncryptionConfigurationNotFoundError";
const NO_LIFECYCLE: &str = "NoSuchLifecycleConfiguration";

fn rule(r: &aws_sdk_s3::types::LifecycleRule) -> drift::Rule {
    #[allow(deprecated)] // CloudFormation's rule-level `Prefix` may come back in the legacy field.
    let legacy_prefix = r.prefix();
    drift::Rule {
        id: r.id().unwrap_or_default().to_owned(),
        enabled: r.status() == &aws_sdk_s3::types::ExpirationStatus::Enabled,
        prefix: r.filter().and_then(|f| f.prefix()).or(legacy_prefix).unwrap_or_default().to_owned(),
        expiration_days: r.expiration().and_then(|e| e.days()),
        transitions: r
            .transitions()
            .iter()
            .filter_map(|t| Some((t.days()?, t.storage_class()?.as_str().to_owned())))
            .collect(),
        noncurrent_days: r.noncurrent_version_expiration().and_then(|n| n.noncurrent_days()),
        abort_upload_days: r.abort_incomplete_multipart_upload().and_then(|a| a.days_after_initiation()),
    }
}
