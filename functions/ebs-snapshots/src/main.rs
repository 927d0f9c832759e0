use ebs_snapshots::{Config, Handler};
use lambda_runtime::{LambdaEvent, service_fn};
use openclaw_ops_shared::config::ProcessEnv;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env(&ProcessEnv)?;
    let sdk = openclaw_ops_shared::aws::load().await;
    let dr = config.copy.clone().map(|copy| ebs_snapshots::copy::Dr::from_sdk(copy, &sdk));
    let handler = Handler::new(
        config,
        aws_sdk_ec2::Client::new(&sdk),
        aws_sdk_ssm::Client::new(&sdk),
        aws_sdk_sns::Client::new(&sdk),
    )
    .with_dr(dr);
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| handler.handle(event))).await
}
