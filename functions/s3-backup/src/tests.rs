//! The handler in process: the real configuration and restore flow over mocked EC2, SSM, S3 and SNS.

use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
use aws_sdk_ec2::operation::describe_volumes::DescribeVolumesOutput;
use aws_sdk_ec2::types::{Instance, Reservation, Tag};
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_sns::operation::publish::PublishOutput;
use aws_sdk_ssm::operation::send_command::SendCommandOutput;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use lambda_runtime::LambdaEvent;
use openclaw_ops_shared::config::MapEnv;
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
        sns: mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&publish]),
    };
    let handler = Handler::new(config, clients);
    let event = json!({"action": "restore", "gateway": "openclaw-gateway", "backup": "latest"});

    let err = handler.handle(LambdaEvent::new(event, samples::context(FUNCTION))).await.unwrap_err();
    let err = err.to_string();
    assert!(err.contains("2 running gateways are named \"openclaw-gateway\" (i-1, i-2)"), "{err}");
    assert!(err.contains("by its instance id"), "{err}");
    assert_eq!((instances.num_calls(), volumes.num_calls()), (1, 1));
    assert_eq!((list.num_calls(), send.num_calls(), publish.num_calls()), (0, 0, 0));
}
