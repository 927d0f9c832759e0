use lambda_runtime::{LambdaEvent, service_fn};
use openclaw_ops_shared::config::ProcessEnv;
use s3_backup::{Clients, Config, Handler};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env(&ProcessEnv)?;
    let sdk = openclaw_ops_shared::aws::load().await;
    let clients = Clients::new(&sdk, &config);
    let handler = Handler::new(config, clients);
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| handler.handle(event))).await
}
