//! The handler in process: the real configuration, plan and report over mocked AWS clients.

use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
use aws_sdk_ec2::types::{Instance, InstanceLifecycleType, InstanceState, InstanceStateName, Reservation, Tag};
use aws_sdk_sns::operation::publish::PublishOutput;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use lambda_runtime::LambdaEvent;
use openclaw_ops_shared::config::MapEnv;
use openclaw_ops_shared::notification::Publisher;
use openclaw_ops_shared::samples;
use serde_json::json;

use super::*;

const INSTANCE: &str = "i-0123456789abcdef0";

/// A Spot warning for an instance that is not the gateway (a bastion): looked up once, nothing
/// else read, nothing done, nobody told.
#[tokio::test]
async fn a_warning_for_another_instance_reads_it_once_and_does_nothing() {
    let describe = mock!(aws_sdk_ec2::Client::describe_instances)
        .match_requests(|r| r.instance_ids() == [INSTANCE] && r.filters().is_empty())
        .then_output(|| {
            let bastion = Instance::builder()
                .instance_id(INSTANCE)
                .instance_lifecycle(InstanceLifecycleType::Spot)
                .state(InstanceState::builder().name(InstanceStateName::Running).build())
                .tags(Tag::builder().key("openclaw:role").value("bastion").build())
                .build();
            DescribeInstancesOutput::builder().reservations(Reservation::builder().instances(bastion).build()).build()
        });
    let publish = mock!(aws_sdk_sns::Client::publish).then_output(|| PublishOutput::builder().message_id("m").build());
    let none = Vec::<&Rule>::new;
    let config =
        Config::from_env(&MapEnv::new(&[("NOTIFY_TOPIC_ARN", "arn:aws:sns:eu-central-1:123456789012:openclaw-ops")]))
            .unwrap();
    let clients = Clients {
        ec2: aws::ec2::Ec2::new(mock_client!(aws_sdk_ec2, RuleMode::Sequential, [&describe])),
        ssm: aws::ssm::Ssm::new(mock_client!(aws_sdk_ssm, RuleMode::Sequential, none()), None),
        target_group: aws::elb::TargetGroup::new(mock_client!(
            aws_sdk_elasticloadbalancingv2,
            RuleMode::Sequential,
            none()
        )),
        alarms: aws::cloudwatch::Alarms::new(mock_client!(aws_sdk_cloudwatch, RuleMode::Sequential, none())),
        scheduler: aws::scheduler::Scheduler::new(mock_client!(aws_sdk_scheduler, RuleMode::Sequential, none())),
        publisher: Publisher::new(mock_client!(aws_sdk_sns, RuleMode::Sequential, [&publish]), &config.topic_arn),
    };
    let handler = Handler { config, clients };
    let event = json!({
        "version": "0",
        "id": "1e5527d7-bb36-4607-3370-4164db56a40e",
        "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": "2026-11-25T10:00:00Z",
        "region": "eu-central-1",
        "resources": [format!("arn:aws:ec2:eu-central-1a:instance/{INSTANCE}")],
        "detail": {"instance-id": INSTANCE, "instance-action": "terminate"}
    });

    let response = handler.handle(LambdaEvent::new(event, samples::context(FUNCTION))).await.unwrap();
    let Response::Recovery(report) = response else { panic!("a recovery's report, not a follow-up's") };
    match &report.plan {
        Plan::Ignore { instance_id, reason, notify } => {
            assert_eq!(instance_id, INSTANCE);
            assert!(reason.contains("gateway"), "{reason}");
            assert!(!notify);
        }
        other => panic!("expected Ignore, got {other:?}"),
    }
    assert!(report.outcome.is_none());
    assert_eq!(describe.num_calls(), 1, "one DescribeInstances, no replacement or volume lookup");
    assert_eq!(publish.num_calls(), 0);
}
