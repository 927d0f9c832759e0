use lambda_runtime::{LambdaEvent, service_fn};
use openclaw_ops_shared::config::ProcessEnv;
use serde_json::Value;
use spot_recovery::alarms::Alarms;
use spot_recovery::command::Ssm;
use spot_recovery::ec2::Ec2;
use spot_recovery::schedule::Scheduler;
use spot_recovery::target::TargetGroup;
use spot_recovery::{Clients, Config, Handler};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env(&ProcessEnv)?;
    let sdk = openclaw_ops_shared::aws::load().await;
    let clients = Clients {
        ec2: Ec2::new(aws_sdk_ec2::Client::new(&sdk)),
        ssm: Ssm::new(
            aws_sdk_ssm::Client::new(&sdk),
            config.backup.as_ref().map(|b| b.store(aws_sdk_s3::Client::new(&sdk))),
        ),
        target_group: TargetGroup::new(aws_sdk_elasticloadbalancingv2::Client::new(&sdk)),
        alarms: Alarms::new(aws_sdk_cloudwatch::Client::new(&sdk)),
        scheduler: Scheduler::new(aws_sdk_scheduler::Client::new(&sdk)),
    };
    let handler = Handler::new(config, clients, aws_sdk_sns::Client::new(&sdk));
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| handler.handle(event))).await
}
