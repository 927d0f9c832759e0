use lambda_runtime::{LambdaEvent, service_fn};
use openclaw_ops_shared::config::ProcessEnv;
use s3_backup::aws::Clients;
use s3_backup::{Config, Handler};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env(&ProcessEnv)?;
    let sdk = openclaw_ops_shared::aws::load().await;
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let store = config.backup.store(s3.clone());
    let clients = Clients { ec2: aws_sdk_ec2::Client::new(&sdk), ssm: aws_sdk_ssm::Client::new(&sdk), s3, store };
    let handler = Handler::new(config, clients, aws_sdk_sns::Client::new(&sdk));
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| handler.handle(event))).await
}
