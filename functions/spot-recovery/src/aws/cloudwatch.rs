//! The gateway's CloudWatch alarms watch one instance (their `InstanceId` dimension): after a
//! replacement they are re-pointed, or they would watch a dead instance and never fire again.

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{AlarmType, Dimension, MetricAlarm};
use openclaw_ops_shared::error::{Failure, sdk};

pub const INSTANCE_DIMENSION: &str = "InstanceId";

#[derive(Debug, Clone)]
pub struct Alarms {
    client: Client,
}

/// The dimensions with `InstanceId = old` turned into `new`; `None` when none watched `old`.
fn repointed(dimensions: &[Dimension], old: &str, new: &str) -> Option<Vec<Dimension>> {
    let watches = dimensions.iter().any(|d| d.name() == Some(INSTANCE_DIMENSION) && d.value() == Some(old));
    watches.then(|| {
        dimensions
            .iter()
            .map(|d| {
                if d.name() == Some(INSTANCE_DIMENSION) && d.value() == Some(old) {
                    Dimension::builder().name(INSTANCE_DIMENSION).value(new).build()
                } else {
                    d.clone()
                }
            })
            .collect()
    })
}

/// The alarm watching `new` instead of `old` (metric-math alarms included), or `None`.
pub fn repoint(alarm: &MetricAlarm, old: &str, new: &str) -> Option<MetricAlarm> {
    let mut out = alarm.clone();
    let mut changed = false;
    if let Some(dims) = repointed(alarm.dimensions(), old, new) {
        out.dimensions = Some(dims);
        changed = true;
    }
    if let Some(metrics) = out.metrics.as_mut() {
        for query in metrics.iter_mut() {
            let Some(metric) = query.metric_stat.as_mut().and_then(|s| s.metric.as_mut()) else { continue };
            if let Some(dims) = repointed(metric.dimensions(), old, new) {
                metric.dimensions = Some(dims);
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

impl Alarms {
    pub fn new(client: Client) -> Self {
        Alarms { client }
    }

    /// Re-points every metric alarm named `prefix...` that watches `old`; answers their names.
    #[tracing::instrument(skip_all, fields(prefix = %prefix, old = %old, new = %new))]
    pub async fn repoint_all(&self, prefix: &str, old: &str, new: &str) -> Result<Vec<String>, Failure> {
        let mut pages = self
            .client
            .describe_alarms()
            .alarm_name_prefix(prefix)
            .alarm_types(AlarmType::MetricAlarm)
            .into_paginator()
            .send();
        let mut alarms = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(sdk("cloudwatch:DescribeAlarms"))?;
            alarms.extend(page.metric_alarms().iter().filter_map(|a| repoint(a, old, new)));
        }
        let mut names = Vec::new();
        let mut errors = Vec::new();
        for a in alarms {
            let name = a.alarm_name.clone().unwrap_or_default();
            let sent = self
                .client
                .put_metric_alarm()
                .set_alarm_name(a.alarm_name)
                .set_alarm_description(a.alarm_description)
                .set_actions_enabled(a.actions_enabled)
                .set_ok_actions(a.ok_actions)
                .set_alarm_actions(a.alarm_actions)
                .set_insufficient_data_actions(a.insufficient_data_actions)
                .set_metric_name(a.metric_name)
                .set_namespace(a.namespace)
                .set_statistic(a.statistic)
                .set_extended_statistic(a.extended_statistic)
                .set_dimensions(a.dimensions)
                .set_period(a.period)
                .set_unit(a.unit)
                .set_evaluation_periods(a.evaluation_periods)
                .set_datapoints_to_alarm(a.datapoints_to_alarm)
                .set_threshold(a.threshold)
                .set_comparison_operator(a.comparison_operator)
                .set_treat_missing_data(a.treat_missing_data)
                .set_evaluate_low_sample_count_percentile(a.evaluate_low_sample_count_percentile)
                .set_metrics(a.metrics)
                .set_threshold_metric_id(a.threshold_metric_id)
                .send()
                .await;
            match sent {
                Ok(_) => names.push(name),
                Err(e) => errors.push(Failure::from_sdk("cloudwatch:PutMetricAlarm", &e).context(name)),
            }
        }
        // One failure for the step: the first's call and code, every alarm's message.
        match errors.first() {
            None => Ok(names),
            Some(first) => Err(Failure {
                message: errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; "),
                ..first.clone()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
    use aws_sdk_cloudwatch::operation::put_metric_alarm::{PutMetricAlarmError, PutMetricAlarmOutput};
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Metric, MetricDataQuery, MetricStat, Statistic};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    fn dim(name: &str, value: &str) -> Dimension {
        Dimension::builder().name(name).value(value).build()
    }

    fn cpu(name: &str, instance: &str) -> MetricAlarm {
        MetricAlarm::builder()
            .alarm_name(name)
            .alarm_description("Gateway CPU above 80 % for 10 minutes.")
            .namespace("AWS/EC2")
            .metric_name("CPUUtilization")
            .dimensions(dim("InstanceId", instance))
            .statistic(Statistic::Average)
            .period(300)
            .evaluation_periods(2)
            .threshold(80.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .treat_missing_data("missing")
            .alarm_actions("arn:aws:sns:us-east-1:1:ops")
            .ok_actions("arn:aws:sns:us-east-1:1:ops")
            .actions_enabled(true)
            .build()
    }

    fn disk(instance: &str) -> MetricAlarm {
        MetricAlarm::builder()
            .alarm_name("stack-gateway-disk-full")
            .namespace("CWAgent")
            .metric_name("disk_used_percent")
            .dimensions(dim("InstanceId", instance))
            .dimensions(dim("path", "/"))
            .build()
    }

    fn math(instance: &str) -> MetricAlarm {
        let metric =
            Metric::builder().namespace("AWS/EC2").metric_name("NetworkIn").dimensions(dim("InstanceId", instance));
        MetricAlarm::builder()
            .alarm_name("stack-gateway-network")
            .metrics(
                MetricDataQuery::builder()
                    .id("m1")
                    .metric_stat(MetricStat::builder().metric(metric.build()).period(60).stat("Sum").build())
                    .return_data(false)
                    .build(),
            )
            .metrics(MetricDataQuery::builder().id("e1").expression("m1 / 60").return_data(true).build())
            .threshold_metric_id("e1")
            .build()
    }

    #[test]
    fn only_alarms_watching_the_old_instance_change_and_nothing_else_in_them() {
        let a = repoint(&cpu("stack-gateway-cpu-high", "i-old"), "i-old", "i-new").unwrap();
        assert_eq!(a.dimensions(), [dim("InstanceId", "i-new")]);
        let mut back = a.clone();
        back.dimensions = Some(vec![dim("InstanceId", "i-old")]);
        assert_eq!(back, cpu("stack-gateway-cpu-high", "i-old"), "only the dimension differs");

        assert_eq!(
            repoint(&disk("i-old"), "i-old", "i-new").unwrap().dimensions(),
            [dim("InstanceId", "i-new"), dim("path", "/")]
        );
        assert_eq!(repoint(&cpu("x", "i-someone-else"), "i-old", "i-new"), None);

        let m = repoint(&math("i-old"), "i-old", "i-new").unwrap();
        let stat = m.metrics()[0].metric_stat().unwrap().metric().unwrap();
        assert_eq!(stat.dimensions(), [dim("InstanceId", "i-new")]);
        assert_eq!(m.metrics()[1].expression(), Some("m1 / 60"));
    }

    #[tokio::test]
    async fn every_page_is_read_and_each_watching_alarm_is_put_back_re_pointed() {
        let first = mock!(Client::describe_alarms)
            .match_requests(|r| {
                r.next_token().is_none()
                    && r.alarm_name_prefix() == Some("stack-gateway-")
                    && r.alarm_types() == [AlarmType::MetricAlarm]
            })
            .then_output(|| {
                DescribeAlarmsOutput::builder()
                    .metric_alarms(cpu("stack-gateway-cpu-high", "i-old"))
                    .metric_alarms(cpu("stack-gateway-cpu-other", "i-other"))
                    .next_token("p2")
                    .build()
            });
        let second = mock!(Client::describe_alarms)
            .match_requests(|r| r.next_token() == Some("p2"))
            .then_output(|| DescribeAlarmsOutput::builder().metric_alarms(disk("i-old")).build());
        let put_cpu = mock!(Client::put_metric_alarm)
            .match_requests(|r| {
                r.alarm_name() == Some("stack-gateway-cpu-high")
                    && r.dimensions() == [dim("InstanceId", "i-new")]
                    && r.namespace() == Some("AWS/EC2")
                    && r.metric_name() == Some("CPUUtilization")
                    && r.statistic() == Some(&Statistic::Average)
                    && r.period() == Some(300)
                    && r.evaluation_periods() == Some(2)
                    && r.threshold() == Some(80.0)
                    && r.comparison_operator() == Some(&ComparisonOperator::GreaterThanThreshold)
                    && r.treat_missing_data() == Some("missing")
                    && r.alarm_actions() == ["arn:aws:sns:us-east-1:1:ops"]
                    && r.ok_actions() == ["arn:aws:sns:us-east-1:1:ops"]
                    && r.actions_enabled() == Some(true)
                    && r.alarm_description() == Some("Gateway CPU above 80 % for 10 minutes.")
            })
            .then_output(|| PutMetricAlarmOutput::builder().build());
        let put_disk = mock!(Client::put_metric_alarm)
            .match_requests(|r| {
                r.alarm_name() == Some("stack-gateway-disk-full")
                    && r.dimensions() == [dim("InstanceId", "i-new"), dim("path", "/")]
            })
            .then_output(|| PutMetricAlarmOutput::builder().build());
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&first, &second, &put_cpu, &put_disk]);
        let names = Alarms::new(client).repoint_all("stack-gateway-", "i-old", "i-new").await.unwrap();
        assert_eq!(names, ["stack-gateway-cpu-high", "stack-gateway-disk-full"]);
        assert_eq!((put_cpu.num_calls(), put_disk.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_refused_put_is_reported_and_the_others_still_go() {
        let list = mock!(Client::describe_alarms).then_output(|| {
            DescribeAlarmsOutput::builder()
                .metric_alarms(cpu("stack-gateway-cpu-high", "i-old"))
                .metric_alarms(disk("i-old"))
                .build()
        });
        let denied = mock!(Client::put_metric_alarm)
            .match_requests(|r| r.alarm_name() == Some("stack-gateway-cpu-high"))
            .then_error(|| {
                PutMetricAlarmError::generic(ErrorMetadata::builder().code("AccessDenied").message("no").build())
            });
        let ok = mock!(Client::put_metric_alarm)
            .match_requests(|r| r.alarm_name() == Some("stack-gateway-disk-full"))
            .then_output(|| PutMetricAlarmOutput::builder().build());
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&list, &denied, &ok]);
        let err = Alarms::new(client).repoint_all("stack-gateway-", "i-old", "i-new").await.unwrap_err();
        assert_eq!((err.operation.as_deref(), err.code()), (Some("cloudwatch:PutMetricAlarm"), Some("AccessDenied")));
        assert!(err.message.contains("stack-gateway-cpu-high"), "{err}");
        assert_eq!(ok.num_calls(), 1);
    }
}
