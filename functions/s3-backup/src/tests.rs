//! The handler in process: the real configuration and restore flow over mocked EC2, SSM, S3 and SNS.

use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
use aws_sdk_ec2::operation::describe_volumes::DescribeVolumesOutput;
use aws_sdk_ec2::types::{Instance, Reservation, Tag, Volume, VolumeAttachment};
use aws_sdk_s3::error::ErrorMetadata;
use aws_sdk_s3::operation::get_bucket_encryption::GetBucketEncryptionError;
use aws_sdk_s3::operation::get_bucket_lifecycle_configuration::GetBucketLifecycleConfigurationError;
use aws_sdk_s3::operation::get_bucket_versioning::GetBucketVersioningOutput;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::types::BucketVersioningStatus;
use aws_sdk_sns::operation::publish::PublishOutput;
use aws_sdk_ssm::operation::send_command::SendCommandOutput;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use lambda_runtime::LambdaEvent;
use openclaw_ops_shared::config::MapEnv;
use openclaw_ops_shared::notification::Publisher;
use openclaw_ops_shared::samples;
use serde_json::json;

use super::*;

fn gateway(id: &str) -> Instance {
    Instance::builder().instance_id(id).tags(Tag::builder().key("Name").value("openclaw-gateway").build()).build()
}

/// Two running gateways share the Name asked for: the restore is refused, naming both instance
/// ids, before any backup is listed or any command sent.
#[tokio::test]
async fn a_restore_by_an_ambiguous_name_is_refused_before_touching_anything() {
    let instances = mock!(aws_sdk_ec2::Client::describe_instances).then_output(|| {
        DescribeInstancesOutput::builder()
            .reservations(Reservation::builder().instances(gateway("i-1")).instances(gateway("i-2")).build())
            .build()
    });
    let volumes = mock!(aws_sdk_ec2::Client::describe_volumes).then_output(|| DescribeVolumesOutput::builder().build());
    let list = mock!(aws_sdk_s3::Client::list_objects_v2).then_output(|| ListObjectsV2Output::builder().build());
    let send = mock!(aws_sdk_ssm::Client::send_command).then_output(|| SendCommandOutput::builder().build());
    let publish = mock!(aws_sdk_sns::Client::publish).then_output(|| PublishOutput::builder().message_id("m").build());
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&list]);
    let config = Config::from_env(&MapEnv::new(&[
        ("NOTIFY_TOPIC_ARN", "arn:aws:sns:eu-central-1:123456789012:openclaw-ops"),
        ("BACKUP_BUCKET", "openclaw-backups"),
    ]))
    .unwrap();
    let clients = Clients {
        ec2: mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&instances, &volumes]),
        ssm: mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&send]),
        store: config.backup.store(s3.clone()),
        s3,
        publisher: Publisher::new(mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&publish]), &config.topic_arn),
    };
    let handler = Handler { config, clients };
    let event = json!({"action": "restore", "gateway": "openclaw-gateway", "backup": "latest"});

    let err = handler.handle(LambdaEvent::new(event, samples::context(FUNCTION))).await.unwrap_err();
    let err = err.to_string();
    assert!(err.contains("2 running gateways are named \"openclaw-gateway\" (i-1, i-2)"), "{err}");
    assert!(err.contains("by its instance id"), "{err}");
    assert_eq!((instances.num_calls(), volumes.num_calls()), (1, 1));
    assert_eq!((list.num_calls(), send.num_calls(), publish.num_calls()), (0, 0, 0));
}

/// A manual backup in dry-run on a bucket someone changed by hand: the plan names the backup's
/// keys under the gateway's data volume, nothing is sent to the instance, and the drift (versioning
/// suspended, no default encryption, no lifecycle rules) is told in one notification.
#[tokio::test]
async fn a_manual_dry_run_plans_the_backup_sends_nothing_and_reports_the_drift() {
    let instances = mock!(aws_sdk_ec2::Client::describe_instances).then_output(|| {
        DescribeInstancesOutput::builder()
            .reservations(Reservation::builder().instances(gateway("i-1")).build())
            .build()
    });
    let volumes = mock!(aws_sdk_ec2::Client::describe_volumes).then_output(|| {
        DescribeVolumesOutput::builder()
            .volumes(
                Volume::builder()
                    .volume_id("vol-1")
                    .attachments(VolumeAttachment::builder().instance_id("i-1").build())
                    .build(),
            )
            .build()
    });
    let list = mock!(aws_sdk_s3::Client::list_objects_v2)
        .match_requests(|r| {
            r.bucket() == Some("openclaw-backups")
                && matches!(r.prefix(), Some("openclaw/daily/vol-1/" | "openclaw/monthly/vol-1/"))
        })
        .then_output(|| ListObjectsV2Output::builder().build());
    let versioning = mock!(aws_sdk_s3::Client::get_bucket_versioning)
        .then_output(|| GetBucketVersioningOutput::builder().status(BucketVersioningStatus::Suspended).build());
    let encryption = mock!(aws_sdk_s3::Client::get_bucket_encryption).then_error(|| {
        GetBucketEncryptionError::generic(
            ErrorMetadata::builder().code("ServerSideEncryptionConfigurationNotFoundError").build(),
        )
    });
    let lifecycle = mock!(aws_sdk_s3::Client::get_bucket_lifecycle_configuration).then_error(|| {
        GetBucketLifecycleConfigurationError::generic(
            ErrorMetadata::builder().code("NoSuchLifecycleConfiguration").build(),
        )
    });
    let send = mock!(aws_sdk_ssm::Client::send_command).then_output(|| SendCommandOutput::builder().build());
    let publish = mock!(aws_sdk_sns::Client::publish)
        .match_requests(|r| r.message().is_some_and(|m| m.contains("openclaw-backups")))
        .then_output(|| PublishOutput::builder().message_id("m").build());
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&list, &versioning, &encryption, &lifecycle]);
    let config = Config::from_env(&MapEnv::new(&[
        ("NOTIFY_TOPIC_ARN", "arn:aws:sns:eu-central-1:123456789012:openclaw-ops"),
        ("BACKUP_BUCKET", "openclaw-backups"),
        ("BACKUP_PREFIX", "openclaw"),
    ]))
    .unwrap();
    let clients = Clients {
        ec2: mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&instances, &volumes]),
        ssm: mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&send]),
        store: config.backup.store(s3.clone()),
        s3,
        publisher: Publisher::new(mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&publish]), &config.topic_arn),
    };
    let handler = Handler { config, clients };
    let event = json!({"action": "backup", "reason": "before upgrading", "dry_run": true});

    let Response::Backup(report) = handler.handle(LambdaEvent::new(event, samples::context(FUNCTION))).await.unwrap()
    else {
        panic!("a backup's report")
    };
    assert!(report.dry_run);
    assert_eq!(report.reason.as_deref(), Some("before upgrading"));
    let [job] = report.plan.backups.as_slice() else { panic!("one backup planned: {:?}", report.plan) };
    assert_eq!((job.gateway.instance_id.as_str(), job.gateway.id.as_str()), ("i-1", "vol-1"));
    assert!(job.archive_key.starts_with("openclaw/daily/vol-1/"), "{}", job.archive_key);
    assert!(job.monthly_archive_key.is_some(), "the month has no copy yet");
    assert!(report.backed_up.is_empty() && report.failed.is_empty());
    let drifted: Vec<_> = report.drift.iter().map(|d| d.setting).collect();
    assert!(drifted.contains(&"versioning") && drifted.contains(&"encryption"), "{drifted:?}");
    assert_eq!(list.num_calls(), 2, "the gateway's daily and monthly folders");
    assert_eq!(send.num_calls(), 0, "a dry run sends nothing to the instance");
    assert_eq!(publish.num_calls(), 1, "one drift notification");
}
