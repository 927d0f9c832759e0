//! The handler in process: the real configuration, plan and report over mocked EC2, SSM and SNS.

use aws_sdk_ec2::operation::create_snapshot::CreateSnapshotOutput;
use aws_sdk_ec2::operation::describe_snapshots::DescribeSnapshotsOutput;
use aws_sdk_ec2::operation::describe_volumes::DescribeVolumesOutput;
use aws_sdk_ec2::types::{Tag, Volume, VolumeAttachment, VolumeAttachmentState, VolumeState};
use aws_sdk_sns::operation::publish::PublishOutput;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use chrono::{SecondsFormat, Utc};
use lambda_runtime::LambdaEvent;
use openclaw_ops_shared::config::MapEnv;
use openclaw_ops_shared::samples;
use openclaw_ops_shared::snapshot::SnapshotSource;
use serde_json::json;

use super::*;

fn root_volume() -> Volume {
    Volume::builder()
        .volume_id("vol-root")
        .state(VolumeState::InUse)
        .tags(Tag::builder().key("openclaw:snapshot").value("daily").build())
        .tags(Tag::builder().key("Name").value("openclaw-root").build())
        .attachments(
            VolumeAttachment::builder()
                .instance_id("i-1")
                .device("/dev/xvda")
                .state(VolumeAttachmentState::Attached)
                .build(),
        )
        .build()
}

/// The daily schedule in dry-run over one tagged volume with no snapshot yet: the plan creates
/// one, and nothing is written (no CreateSnapshot, no notification).
#[tokio::test]
async fn a_scheduled_dry_run_plans_the_snapshot_and_takes_none() {
    let volumes = mock!(aws_sdk_ec2::Client::describe_volumes)
        .match_requests(|r| {
            r.filters()[0].name() == Some("tag:openclaw:snapshot") && r.filters()[0].values() == ["daily"]
        })
        .then_output(|| DescribeVolumesOutput::builder().volumes(root_volume()).build());
    let snapshots =
        mock!(aws_sdk_ec2::Client::describe_snapshots).then_output(|| DescribeSnapshotsOutput::builder().build());
    let create = mock!(aws_sdk_ec2::Client::create_snapshot)
        .then_output(|| CreateSnapshotOutput::builder().snapshot_id("snap-1").build());
    let publish = mock!(aws_sdk_sns::Client::publish).then_output(|| PublishOutput::builder().message_id("m").build());
    let clients = Clients {
        ec2: Ec2::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&volumes, &snapshots, &create])),
        // The root volume is snapshotted crash-consistent: SSM is not asked about agents.
        ssm: mock_client!(aws_sdk_ssm, RuleMode::MatchAny, Vec::<&Rule>::new()),
        sns: mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&publish]),
        dr: None,
    };
    let config = Config::from_env(&MapEnv::new(&[
        ("NOTIFY_TOPIC_ARN", "arn:aws:sns:eu-central-1:123456789012:openclaw-ops"),
        ("DRY_RUN", "true"),
    ]))
    .unwrap();
    let handler = Handler::new(config, clients);
    let now = Utc::now();
    let event = json!({
        "version": "0",
        "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": now.to_rfc3339_opts(SecondsFormat::Secs, true),
        "region": "eu-central-1",
        "resources": ["arn:aws:events:eu-central-1:123456789012:rule/openclaw-ops-EbsSnapshotsDaily"],
        "detail": {}
    });

    let report = handler.handle(LambdaEvent::new(event, samples::context(FUNCTION))).await.unwrap();
    assert!(report.dry_run);
    assert_eq!(report.event_id.as_deref(), Some("89d1a02d-5ec7-412e-82f5-13505f849b41"));
    assert_eq!(report.date, now.date_naive());
    assert_eq!(report.volumes, ["vol-root"]);
    assert_eq!(
        report.would_create,
        [SnapshotSource {
            volume_id: "vol-root".into(),
            name: Some("openclaw-root".into()),
            instance_id: Some("i-1".into()),
            device: Some("/dev/xvda".into()),
        }]
    );
    assert!(report.created.is_empty() && report.deleted.is_empty() && report.failed.is_empty());
    assert_eq!((volumes.num_calls(), snapshots.num_calls()), (1, 1));
    assert_eq!(create.num_calls(), 0, "a dry run creates nothing");
    assert_eq!(publish.num_calls(), 0, "a dry run's plan is answered, not notified");
}
