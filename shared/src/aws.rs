//! AWS SDK configuration shared by every function: loaded once per container, in the init phase.

use std::sync::Arc;
use std::time::Duration;

use aws_config::environment::{EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider};
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::Error;
use crate::config::{self, Env, ProcessEnv};

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
///
/// Credentials and region come from the environment when it holds them, as it always does on
/// Lambda ([`Sources`]); only elsewhere are the SDK's default chains built.
pub async fn load(tls: Arc<rustls::ClientConfig>) -> Result<SdkConfig, Error> {
    let http = crate::http::client(tls);
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(retry_config()).http_client(http);
    let sources = Sources::of(&ProcessEnv);
    if sources.credentials_in_env {
        loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
    }
    if sources.region_in_env {
        loader = loader.region(EnvironmentVariableRegionProvider::new());
    }
    Ok(loader.load().await)
}

/// Which of the SDK's settings the environment supplies on its own.
///
/// The environment is the first source of the SDK's default credentials and region chains, so taking
/// it directly when it is complete gives the same answer. It saves the rest of the chains, which
/// `ConfigLoader::load` builds whether or not they are asked: web identity's STS client (with its
/// endpoint partitions parsed from JSON) and two IMDS clients, about a quarter of a function's init
/// (bench/results.md) for sources Lambda never uses: Lambda sets `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` and `AWS_REGION` in every function's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sources {
    /// An access key and its secret (the environment provider's own requirement, blanks refused
    /// as it refuses them).
    pub credentials_in_env: bool,
    /// `AWS_REGION` or `AWS_DEFAULT_REGION`.
    pub region_in_env: bool,
}

impl Sources {
    pub fn of(env: &impl Env) -> Self {
        let set = |name: &str| config::optional(env, name).is_some();
        Self {
            credentials_in_env: set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY"),
            region_in_env: set("AWS_REGION") || set("AWS_DEFAULT_REGION"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    #[test]
    fn lambdas_environment_supplies_both() {
        let env = MapEnv::new(&[
            ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
            ("AWS_REGION", "eu-central-1"),
        ]);
        assert_eq!(Sources::of(&env), Sources { credentials_in_env: true, region_in_env: true });
    }

    #[test]
    fn anything_incomplete_or_blank_falls_back_to_the_default_chains() {
        let none = Sources { credentials_in_env: false, region_in_env: false };
        assert_eq!(Sources::of(&MapEnv::new(&[])), none);
        // A key without its secret: the chain goes on to the profile, web identity, ECS, IMDS.
        assert_eq!(Sources::of(&MapEnv::new(&[("AWS_ACCESS_KEY_ID", "AKIA")])), none);
        assert_eq!(Sources::of(&MapEnv::new(&[("AWS_ACCESS_KEY_ID", "AKIA"), ("AWS_SECRET_ACCESS_KEY", " ")])), none);
        assert_eq!(Sources::of(&MapEnv::new(&[("AWS_REGION", "")])), none);
        let region_only = Sources::of(&MapEnv::new(&[("AWS_DEFAULT_REGION", "us-west-2")]));
        assert_eq!(region_only, Sources { credentials_in_env: false, region_in_env: true });
    }
}
