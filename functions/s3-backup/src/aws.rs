//! The AWS calls: the gateways (EC2), the command (SSM), and the bucket's settings (S3). The backups
//! themselves are read and written through [`Store`] (shared with spot-recovery).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use openclaw_ops_shared::Error;
pub use openclaw_ops_shared::backup::store::{Manifest, Store};
use openclaw_ops_shared::error::{Failure, sdk};
use openclaw_ops_shared::notification::Publisher;
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
    /// Reports to the suite's topic.
    pub publisher: Publisher,
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
            publisher: Publisher::new(aws_sdk_sns::Client::new(sdk), &config.topic_arn),
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

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
    use aws_sdk_ec2::operation::describe_volumes::DescribeVolumesOutput;
    use aws_sdk_ec2::types::{Instance, Reservation, Tag, Volume, VolumeAttachment};
    use aws_sdk_s3::error::ErrorMetadata;
    use aws_sdk_s3::operation::get_bucket_encryption::{GetBucketEncryptionError, GetBucketEncryptionOutput};
    use aws_sdk_s3::operation::get_bucket_lifecycle_configuration::{
        GetBucketLifecycleConfigurationError, GetBucketLifecycleConfigurationOutput,
    };
    use aws_sdk_s3::operation::get_bucket_versioning::{GetBucketVersioningError, GetBucketVersioningOutput};
    use aws_sdk_s3::types::{
        AbortIncompleteMultipartUpload, BucketVersioningStatus, ExpirationStatus, LifecycleExpiration, LifecycleRule,
        LifecycleRuleFilter, NoncurrentVersionExpiration, ServerSideEncryption, ServerSideEncryptionByDefault,
        ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Transition, TransitionStorageClass,
    };
    use aws_sdk_ssm::operation::get_command_invocation::GetCommandInvocationOutput;
    use aws_sdk_ssm::operation::send_command::SendCommandOutput;
    use aws_sdk_ssm::types::{Command, CommandInvocationStatus};
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

    use super::*;

    fn clients(ec2: &[&Rule], ssm: &[&Rule], s3: &[&Rule]) -> Clients {
        let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, s3.iter().copied());
        Clients {
            ec2: mock_client!(aws_sdk_ec2, RuleMode::MatchAny, ec2.iter().copied()),
            ssm: mock_client!(aws_sdk_ssm, RuleMode::MatchAny, ssm.iter().copied()),
            store: Store::new(s3.clone(), "bucket".into(), None, None),
            s3,
            publisher: Publisher::new(
                mock_client!(aws_sdk_sns, RuleMode::MatchAny, Vec::<&Rule>::new()),
                "arn:aws:sns:eu-central-1:123456789012:openclaw-ops",
            ),
        }
    }

    fn code<E: 'static>(code: &'static str, make: fn(ErrorMetadata) -> E) -> impl Fn() -> E + Send + Sync + 'static {
        move || make(ErrorMetadata::builder().code(code).message("m").build())
    }

    fn versioning(status: Option<BucketVersioningStatus>) -> Rule {
        mock!(aws_sdk_s3::Client::get_bucket_versioning)
            .match_requests(|r| r.bucket() == Some("bucket"))
            .then_output(move || GetBucketVersioningOutput::builder().set_status(status.clone()).build())
    }

    #[tokio::test]
    async fn the_bucket_settings_are_read_as_set() {
        let v = versioning(Some(BucketVersioningStatus::Enabled));
        let e = mock!(aws_sdk_s3::Client::get_bucket_encryption)
            .match_requests(|r| r.bucket() == Some("bucket"))
            .then_output(|| {
                let default = ServerSideEncryptionByDefault::builder()
                    .sse_algorithm(ServerSideEncryption::AwsKms)
                    .kms_master_key_id("arn:aws:kms:eu-west-1:1:key/k")
                    .build()
                    .unwrap();
                let rule = ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(default).build();
                GetBucketEncryptionOutput::builder()
                    .server_side_encryption_configuration(
                        ServerSideEncryptionConfiguration::builder().rules(rule).build().unwrap(),
                    )
                    .build()
            });
        let l = mock!(aws_sdk_s3::Client::get_bucket_lifecycle_configuration)
            .match_requests(|r| r.bucket() == Some("bucket"))
            .then_output(|| {
                let rule = LifecycleRule::builder()
                    .id("daily")
                    .status(ExpirationStatus::Enabled)
                    .filter(LifecycleRuleFilter::builder().prefix("p/daily/").build())
                    .expiration(LifecycleExpiration::builder().days(7).build())
                    .transitions(
                        Transition::builder().days(30).storage_class(TransitionStorageClass::StandardIa).build(),
                    )
                    .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(7).build())
                    .abort_incomplete_multipart_upload(
                        AbortIncompleteMultipartUpload::builder().days_after_initiation(1).build(),
                    )
                    .build()
                    .unwrap();
                GetBucketLifecycleConfigurationOutput::builder().rules(rule).build()
            });
        let observed = clients(&[], &[], &[&v, &e, &l]).bucket_settings("bucket").await;

        assert_eq!(observed.versioning, Ok(Some("Enabled".into())));
        assert_eq!(
            observed.encryption,
            Ok(vec![drift::Encryption {
                algorithm: "aws:kms".into(),
                kms_key: Some("arn:aws:kms:eu-west-1:1:key/k".into())
            }])
        );
        assert_eq!(
            observed.lifecycle,
            Ok(Some(vec![drift::Rule {
                id: "daily".into(),
                enabled: true,
                prefix: "p/daily/".into(),
                expiration_days: Some(7),
                transitions: vec![(30, "STANDARD_IA".into())],
                noncurrent_days: Some(7),
                abort_upload_days: Some(1),
            }]))
        );
    }

    /// S3 answers "none configured" with an error code; that is a setting (none), not a failure.
    #[tokio::test]
    async fn no_encryption_and_no_lifecycle_are_settings_not_errors() {
        let v = versioning(None);
        let e = mock!(aws_sdk_s3::Client::get_bucket_encryption)
            .then_error(code("ServerSideEncryptionConfigurationNotFoundError", GetBucketEncryptionError::generic));
        let l = mock!(aws_sdk_s3::Client::get_bucket_lifecycle_configuration)
            .then_error(code("NoSuchLifecycleConfiguration", GetBucketLifecycleConfigurationError::generic));
        let observed = clients(&[], &[], &[&v, &e, &l]).bucket_settings("bucket").await;

        assert_eq!(observed, drift::Observed { versioning: Ok(None), encryption: Ok(vec![]), lifecycle: Ok(None) });
        let expected = drift::Expected { prefix: "p/".into(), daily_days: 7, kms_key: None };
        let findings: Vec<_> = drift::check(&observed, &expected).into_iter().map(|d| d.setting).collect();
        assert!(findings.contains(&"versioning") && findings.contains(&"encryption"), "{findings:?}");
    }

    /// A read that is denied is reported as such, never taken for "not configured".
    #[tokio::test]
    async fn denied_reads_are_kept_as_their_errors() {
        let v = mock!(aws_sdk_s3::Client::get_bucket_versioning)
            .then_error(code("AccessDenied", GetBucketVersioningError::generic));
        let e = mock!(aws_sdk_s3::Client::get_bucket_encryption)
            .then_error(code("AccessDenied", GetBucketEncryptionError::generic));
        let l = mock!(aws_sdk_s3::Client::get_bucket_lifecycle_configuration)
            .then_error(code("AccessDenied", GetBucketLifecycleConfigurationError::generic));
        let observed = clients(&[], &[], &[&v, &e, &l]).bucket_settings("bucket").await;

        let versioning = observed.versioning.clone().unwrap_err();
        let encryption = observed.encryption.clone().unwrap_err();
        let lifecycle = observed.lifecycle.clone().unwrap_err();
        for (failure, operation) in [
            (&versioning, "s3:GetBucketVersioning"),
            (&encryption, "s3:GetEncryptionConfiguration"),
            (&lifecycle, "s3:GetLifecycleConfiguration"),
        ] {
            assert_eq!(
                (failure.operation.as_deref(), failure.code()),
                (Some(operation), Some("AccessDenied")),
                "{failure}"
            );
        }
        let expected = drift::Expected { prefix: "p/".into(), daily_days: 7, kms_key: None };
        let drifts = drift::check(&observed, &expected);
        assert_eq!(drifts.len(), 3, "{drifts:?}");
        assert!(drifts.iter().all(|d| d.finding.contains("could not be read")), "{drifts:?}");
    }

    fn instance(id: &str, name: Option<&str>) -> Instance {
        let mut b = Instance::builder().instance_id(id);
        if let Some(name) = name {
            b = b.tags(Tag::builder().key("Name").value(name).build());
        }
        b.build()
    }

    fn attached(volume_id: &str, instance_id: &str) -> Volume {
        Volume::builder()
            .volume_id(volume_id)
            .attachments(VolumeAttachment::builder().instance_id(instance_id).build())
            .build()
    }

    /// A gateway's backups follow its data volume (the lowest id if several), else its instance id.
    #[tokio::test]
    async fn gateways_are_filed_under_their_tagged_data_volume() {
        let instances = mock!(aws_sdk_ec2::Client::describe_instances)
            .match_requests(|r| {
                let f = r.filters();
                f.len() == 2
                    && f[0].name() == Some("tag:openclaw:role")
                    && f[0].values() == ["gateway"]
                    && f[1].name() == Some("instance-state-name")
                    && f[1].values() == ["running"]
            })
            .then_output(|| {
                DescribeInstancesOutput::builder()
                    .reservations(
                        Reservation::builder()
                            .instances(instance("i-1", Some("openclaw-gateway")))
                            .instances(instance("i-2", None))
                            .build(),
                    )
                    .build()
            });
        let volumes = mock!(aws_sdk_ec2::Client::describe_volumes)
            .match_requests(|r| {
                let f = r.filters();
                f[0].name() == Some("tag:openclaw:role")
                    && f[1].name() == Some("attachment.instance-id")
                    && f[1].values() == ["i-1", "i-2"]
            })
            .then_output(|| {
                DescribeVolumesOutput::builder()
                    .volumes(attached("vol-b", "i-1"))
                    .volumes(attached("vol-a", "i-1"))
                    .volumes(attached("vol-c", "i-9"))
                    .build()
            });
        let clients = clients(&[&instances, &volumes], &[], &[]);

        let gateways = clients.gateways(&"openclaw:role=gateway".parse().unwrap()).await.unwrap();
        assert_eq!(
            gateways,
            [
                Gateway { instance_id: "i-1".into(), name: "openclaw-gateway".into(), id: "vol-a".into() },
                Gateway { instance_id: "i-2".into(), name: "i-2".into(), id: "i-2".into() },
            ]
        );
    }

    #[tokio::test]
    async fn no_running_gateway_means_no_volume_lookup() {
        let instances =
            mock!(aws_sdk_ec2::Client::describe_instances).then_output(|| DescribeInstancesOutput::builder().build());
        let volumes =
            mock!(aws_sdk_ec2::Client::describe_volumes).then_output(|| DescribeVolumesOutput::builder().build());
        let clients = clients(&[&instances, &volumes], &[], &[]);

        assert!(clients.gateways(&"openclaw:role=gateway".parse().unwrap()).await.unwrap().is_empty());
        assert_eq!(volumes.num_calls(), 0);
    }

    fn send() -> Rule {
        mock!(aws_sdk_ssm::Client::send_command)
            .match_requests(|r| r.timeout_seconds() == Some(crate::config::DELIVERY_TIMEOUT.as_secs() as i32))
            .then_output(|| SendCommandOutput::builder().command(Command::builder().command_id("c-1").build()).build())
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_command_is_its_outcome() {
        let send = send();
        let poll = mock!(aws_sdk_ssm::Client::get_command_invocation).then_output(|| {
            GetCommandInvocationOutput::builder()
                .status(CommandInvocationStatus::Failed)
                .response_code(3)
                .standard_error_content("no space left")
                .build()
        });
        let clients = clients(&[], &[&send, &poll], &[]);

        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let outcome = clients.run("i-1", "backup", "true".into(), Duration::from_secs(600), deadline).await.unwrap();
        assert_eq!(
            (outcome.status.as_str(), outcome.exit_code, outcome.stderr.as_str()),
            ("Failed", 3, "no space left")
        );
    }

    /// A backup still running when the function must stop is left to finish (its uploads are
    /// write-once; the retry adopts them) and the run says so.
    #[tokio::test(start_paused = true)]
    async fn a_command_still_running_at_the_deadline_is_an_error_and_not_cancelled() {
        let send = send();
        let poll = mock!(aws_sdk_ssm::Client::get_command_invocation)
            .then_output(|| GetCommandInvocationOutput::builder().status(CommandInvocationStatus::InProgress).build());
        let cancel = mock!(aws_sdk_ssm::Client::cancel_command)
            .then_output(|| aws_sdk_ssm::operation::cancel_command::CancelCommandOutput::builder().build());
        let clients = clients(&[], &[&send, &poll, &cancel], &[]);

        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        let err = clients.run("i-1", "backup", "true".into(), Duration::from_secs(600), deadline).await.unwrap_err();
        assert!(err.to_string().contains("command c-1 still InProgress"), "{err}");
        assert_eq!(cancel.num_calls(), 0);
    }
}
