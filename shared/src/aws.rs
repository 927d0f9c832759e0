//! AWS SDK configuration shared by every function: loaded once per container, in the init phase.

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::Error;

/// Retries for throttling (`RequestLimitExceeded`, `Throttling`...) and transient errors: EC2's
/// rate limits refill in seconds, so back off from one second up to twenty, for up to eight tries.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(8)
        .with_initial_backoff(Duration::from_secs(1))
        .with_max_backoff(Duration::from_secs(20))
}

/// The SDK configuration from the standard sources (environment, including `AWS_ENDPOINT_URL`,
/// which is how tests point the functions at the local emulator), with the suite's HTTP client
/// ([`crate::http`]) over the process's TLS configuration ([`crate::tls::shared`]).
pub async fn load(tls: Arc<rustls::ClientConfig>) -> Result<SdkConfig, Error> {
    let http = crate::http::client(tls);
    Ok(aws_config::defaults(BehaviorVersion::latest()).retry_config(retry_config()).http_client(http).load().await)
}
