//! The AWS calls spot-recovery makes, one wrapper per service, and the clients that carry them,
//! built once per container (in the init phase).

pub mod cloudwatch;
pub mod ec2;
pub mod elb;
pub mod scheduler;
pub mod ssm;

use aws_config::SdkConfig;
use openclaw_ops_shared::notification::Publisher;

use crate::config::Config;

/// Every client a recovery or a follow-up check uses.
pub struct Clients {
    pub ec2: ec2::Ec2,
    /// Run Command, and the backup store it writes to when backups are configured.
    pub ssm: ssm::Ssm,
    pub target_group: elb::TargetGroup,
    pub alarms: cloudwatch::Alarms,
    pub scheduler: scheduler::Scheduler,
    /// Reports to the suite's topic.
    pub publisher: Publisher,
}

impl Clients {
    pub fn new(sdk: &SdkConfig, config: &Config) -> Self {
        Clients {
            ec2: ec2::Ec2::new(aws_sdk_ec2::Client::new(sdk)),
            ssm: ssm::Ssm::new(
                aws_sdk_ssm::Client::new(sdk),
                config.backup.as_ref().map(|b| b.store(aws_sdk_s3::Client::new(sdk))),
            ),
            target_group: elb::TargetGroup::new(aws_sdk_elasticloadbalancingv2::Client::new(sdk)),
            alarms: cloudwatch::Alarms::new(aws_sdk_cloudwatch::Client::new(sdk)),
            scheduler: scheduler::Scheduler::new(aws_sdk_scheduler::Client::new(sdk)),
            publisher: Publisher::new(aws_sdk_sns::Client::new(sdk), &config.topic_arn),
        }
    }
}
