//! The full tier's address: the load balancer's target group.

use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types::{TargetDescription, TargetHealthStateEnum};
use openclaw_ops_shared::error::SdkErrorDisplay;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct TargetGroup {
    client: Client,
}

impl TargetGroup {
    pub fn new(client: Client) -> Self {
        TargetGroup { client }
    }

    pub async fn register(&self, arn: &str, instance: &str) -> Result<(), String> {
        self.client
            .register_targets()
            .target_group_arn(arn)
            .targets(TargetDescription::builder().id(instance).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("elasticloadbalancing:RegisterTargets {instance}: {}", SdkErrorDisplay(&e)))
    }

    pub async fn deregister(&self, arn: &str, instance: &str) -> Result<(), String> {
        self.client
            .deregister_targets()
            .target_group_arn(arn)
            .targets(TargetDescription::builder().id(instance).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("elasticloadbalancing:DeregisterTargets {instance}: {}", SdkErrorDisplay(&e)))
    }

    /// The target's health state once it is `healthy`, or the last one seen at `until`.
    pub async fn wait_healthy(&self, arn: &str, instance: &str, until: Instant) -> Result<String, String> {
        loop {
            let out = self
                .client
                .describe_target_health()
                .target_group_arn(arn)
                .targets(TargetDescription::builder().id(instance).build())
                .send()
                .await
                .map_err(|e| format!("elasticloadbalancing:DescribeTargetHealth: {}", SdkErrorDisplay(&e)))?;
            let health = out
                .target_health_descriptions()
                .iter()
                .find(|d| d.target().and_then(|t| t.id()) == Some(instance))
                .and_then(|d| d.target_health());
            let state = health.and_then(|h| h.state()).cloned();
            if state == Some(TargetHealthStateEnum::Healthy) || Instant::now() + Duration::from_secs(5) > until {
                let reason = health.and_then(|h| h.description()).map(|d| format!(" ({d})")).unwrap_or_default();
                return Ok(format!("{}{reason}", state.as_ref().map(|s| s.as_str()).unwrap_or("unknown")));
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
}
