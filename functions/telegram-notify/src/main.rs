use lambda_runtime::{LambdaEvent, service_fn};
use openclaw_ops_shared::config::ProcessEnv;
use serde_json::Value;
use telegram_notify::{Config, Handler};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env(&ProcessEnv)?;
    let sdk = openclaw_ops_shared::aws::load().await;
    let handler = Handler::new(
        config,
        aws_sdk_secretsmanager::Client::new(&sdk),
        aws_sdk_sqs::Client::new(&sdk),
        aws_sdk_s3::Client::new(&sdk),
    );
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| handler.handle(event))).await
}
