//! What a Lambda function of the suite is, and its process: built once per container (the init
//! phase: configuration, SDK configuration, clients), then handed every invocation by the
//! runtime's loop. Each function's `main.rs` is `serve::<Handler>()`.

use std::future::Future;

use aws_config::SdkConfig;
use lambda_runtime::{LambdaEvent, service_fn};
use serde::Serialize;
use serde_json::Value;

use crate::Error;
use crate::config::{Env, ProcessEnv};

/// A function's handler: how it is built in the init phase, and how it handles one invocation.
pub trait Function: Sized {
    /// The invocation's answer (its report).
    type Output: Serialize;

    /// Reads the configuration from `env` and builds the clients from `sdk`. A configuration
    /// error stops the container before its first invocation, and Lambda reports it as an
    /// init error.
    fn init(env: &impl Env, sdk: &SdkConfig) -> Result<Self, Error>;

    /// One invocation: observe → plan → apply → report.
    fn handle(&self, event: LambdaEvent<Value>) -> impl Future<Output = Result<Self::Output, Error>>;
}

/// The process of every function: tracing (the runtime's JSON lines when `AWS_LAMBDA_LOG_FORMAT`
/// is `JSON`), the SDK's configuration from the standard sources (including `AWS_ENDPOINT_URL`),
/// the handler built once, then `lambda_runtime::run`.
pub async fn serve<F: Function>() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = crate::aws::load().await?;
    let function = F::init(&ProcessEnv, &sdk)?;
    let function = &function;
    // Boxed: the handler's future nested inside the runtime's is deeper than rustc's default
    // layout query limit; one allocation per invocation is nothing beside its AWS calls.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| Box::pin(function.handle(event)))).await
}
