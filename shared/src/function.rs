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

/// The process of every function: tracing ([`crate::logging`]: JSON lines when
/// `AWS_LAMBDA_LOG_FORMAT` is `JSON`), the process's TLS configuration, the SDK's configuration
/// from the standard sources (including `AWS_ENDPOINT_URL`), the handler built once, then the
/// runtime's loop.
///
/// Each phase of init is a function of its own that is never inlined, so a profile of the release
/// build (the benchmark's callgrind run) counts each phase's instructions under its name.
pub async fn serve<F: Function>() -> Result<(), lambda_runtime::Error> {
    crate::logging::init(&ProcessEnv);
    let tls = phase::tls_roots()?;
    let sdk = phase::sdk_config(tls).await?;
    let function = phase::clients::<F>(&sdk)?;
    let function = &function;
    // Boxed: the handler's future nested inside the runtime's is deeper than rustc's default
    // layout query limit; one allocation per invocation is nothing beside its AWS calls.
    let handler = service_fn(move |event: LambdaEvent<Value>| Box::pin(function.handle(event)));
    phase::runtime(handler).await
}

/// The phases of init, by the names a profile shows (`openclaw_ops_shared::function::phase::…`).
mod phase {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;

    use aws_config::SdkConfig;
    use lambda_runtime::{LambdaEvent, Service};
    use serde_json::Value;

    use super::Function;
    use crate::Error;
    use crate::config::ProcessEnv;

    #[inline(never)]
    pub fn tls_roots() -> Result<Arc<rustls::ClientConfig>, Error> {
        crate::tls::shared()
    }

    /// Boxed, here and below, so the future's poll is a call of its own rather than inlined into
    /// `serve`'s.
    #[inline(never)]
    pub fn sdk_config(tls: Arc<rustls::ClientConfig>) -> Pin<Box<dyn Future<Output = Result<SdkConfig, Error>>>> {
        Box::pin(crate::aws::load(tls))
    }

    #[inline(never)]
    pub fn clients<F: Function>(sdk: &SdkConfig) -> Result<F, Error> {
        F::init(&ProcessEnv, sdk)
    }

    /// The runtime's client, then its loop from the first `/next` on.
    #[inline(never)]
    pub fn runtime<'a, S, R>(handler: S) -> Pin<Box<dyn Future<Output = Result<(), lambda_runtime::Error>> + 'a>>
    where
        S: Service<LambdaEvent<Value>, Response = R, Error = Error> + 'a,
        R: serde::Serialize + 'a,
    {
        Box::pin(lambda_runtime::run(handler))
    }
}
