//! The full tier's address: the load balancer's target group.

use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types::{TargetDescription, TargetHealthStateEnum};
use openclaw_ops_shared::error::{Failure, sdk};
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct TargetGroup {
    client: Client,
}

impl TargetGroup {
    pub fn new(client: Client) -> Self {
        TargetGroup { client }
    }
    #[tracing::instrument(skip_all, fields(arn = %arn, instance = %instance))]

    pub async fn register(&self, arn: &str, instance: &str) -> Result<(), Failure> {
        self.client
            .register_targets()
            .target_group_arn(arn)
            .targets(TargetDescription::builder().id(instance).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Failure::from_sdk("elasticloadbalancing:RegisterTargets", &e).context(instance))
    }
    #[tracing::instrument(skip_all, fields(arn = %arn, instance = %instance))]

    pub async fn deregister(&self, arn: &str, instance: &str) -> Result<(), Failure> {
        self.client
            .deregister_targets()
            .target_group_arn(arn)
            .targets(TargetDescription::builder().id(instance).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Failure::from_sdk("elasticloadbalancing:DeregisterTargets", &e).context(instance))
    }

    /// The target's health state once it is `healthy`, or the last one seen at `until`.
    #[tracing::instrument(skip_all, fields(arn = %arn, instance = %instance))]
    pub async fn wait_healthy(&self, arn: &str, instance: &str, until: Instant) -> Result<String, Failure> {
        loop {
            let out = self
                .client
                .describe_target_health()
                .target_group_arn(arn)
                .targets(TargetDescription::builder().id(instance).build())
                .send()
                .await
                .map_err(sdk("elasticloadbalancing:DescribeTargetHealth"))?;
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

#[cfg(test)]
mod tests {
    use aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthOutput;
    use aws_sdk_elasticloadbalancingv2::types::{TargetHealth, TargetHealthDescription};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    fn health(state: TargetHealthStateEnum, description: Option<&str>) -> DescribeTargetHealthOutput {
        let mut h = TargetHealth::builder().state(state);
        if let Some(d) = description {
            h = h.description(d);
        }
        DescribeTargetHealthOutput::builder()
            .target_health_descriptions(
                TargetHealthDescription::builder()
                    .target(TargetDescription::builder().id("i-new").build())
                    .target_health(h.build())
                    .build(),
            )
            .build()
    }

    #[tokio::test(start_paused = true)]
    async fn the_health_wait_ends_healthy_or_with_the_last_state_at_the_deadline() {
        let turning = mock!(Client::describe_target_health)
            .sequence()
            .output(|| health(TargetHealthStateEnum::Initial, Some("Target registration is in progress")))
            .times(2)
            .output(|| health(TargetHealthStateEnum::Healthy, None))
            .build();
        let tg = TargetGroup::new(mock_client!(aws_sdk_elasticloadbalancingv2, RuleMode::Sequential, [&turning]));
        let state = tg.wait_healthy("arn:tg", "i-new", Instant::now() + Duration::from_secs(90)).await.unwrap();
        assert_eq!(state, "healthy");
        assert_eq!(turning.num_calls(), 3);

        let failing = mock!(Client::describe_target_health)
            .then_output(|| health(TargetHealthStateEnum::Unhealthy, Some("Health checks failed")));
        let tg = TargetGroup::new(mock_client!(aws_sdk_elasticloadbalancingv2, RuleMode::MatchAny, [&failing]));
        let started = Instant::now();
        let state = tg.wait_healthy("arn:tg", "i-new", started + Duration::from_secs(30)).await.unwrap();
        assert_eq!(state, "unhealthy (Health checks failed)");
        assert!(started.elapsed() <= Duration::from_secs(30));
    }
}
