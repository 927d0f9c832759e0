//! The handler in process: the real configuration, comparison and report over mocked Cost
//! Explorer and SNS.

use aws_sdk_costexplorer::operation::get_cost_and_usage::GetCostAndUsageOutput;
use aws_sdk_costexplorer::types::{Group, MetricValue, ResultByTime};
use aws_sdk_sns::operation::publish::PublishOutput;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use lambda_runtime::LambdaEvent;
use openclaw_ops_shared::config::MapEnv;
use openclaw_ops_shared::samples;
use serde_json::{Value, json};

use super::*;
use crate::plan::Status;

const TOPIC: &str = "arn:aws:sns:eu-central-1:123456789012:openclaw-ops";

fn group(service: &str, usage_type: &str, amount: &str) -> Group {
    Group::builder()
        .keys(service)
        .keys(usage_type)
        .metrics("UnblendedCost", MetricValue::builder().amount(amount).unit("USD").build())
        .build()
}

/// October as the seed estimates it, plus 31.75 USD of NAT data processing the seed does not.
fn october_over_budget() -> Vec<Group> {
    vec![
        group("Amazon Elastic Compute Cloud - Compute", "EUC1-BoxUsage:t3.small", "15.33"),
        group("EC2 - Other", "EUC1-EBS:VolumeUsage.gp3", "1.60"),
        group("EC2 - Other", "EUC1-NatGateway-Hours", "32.40"),
        group("EC2 - Other", "EUC1-NatGateway-Bytes", "31.75"),
        group("Amazon Elastic Load Balancing", "EUC1-LoadBalancerUsage", "16.20"),
        group("AWS Secrets Manager", "EUC1-AWSSecretsManager-Secrets", "1.60"),
        group("Amazon Simple Storage Service", "EUC1-TimedStorage-ByteHrs", "0.50"),
        group("AmazonCloudWatch", "EUC1-CW:AlarmMonitorUsage", "4.29"),
        group("AWS Key Management Service", "EUC1-KMS-Keys", "2.00"),
        group("EC2 - Other", "EUC1-EBS:SnapshotUsage", "1.00"),
        group("AWS Cost Explorer", "USE1-APIRequest", "0.10"),
    ]
}

/// The monthly check on 2 November: October's costs in one request (no forecast for a month that
/// has ended), compared line by line, over budget, told in one notification.
#[tokio::test]
async fn a_monthly_check_over_budget_compares_last_month_and_notifies_once() {
    let costs = mock!(aws_sdk_costexplorer::Client::get_cost_and_usage)
        .match_requests(|r| {
            let period = r.time_period().unwrap();
            (period.start(), period.end()) == ("2026-10-01", "2026-11-01") && r.filter().is_none()
        })
        .then_output(|| {
            GetCostAndUsageOutput::builder()
                .results_by_time(ResultByTime::builder().set_groups(Some(october_over_budget())).build())
                .build()
        });
    let publish = mock!(aws_sdk_sns::Client::publish)
        .match_requests(|r| r.topic_arn() == Some(TOPIC))
        .then_output(|| PublishOutput::builder().message_id("m-1").build());
    let clients = Clients {
        ce: mock_client!(aws_sdk_costexplorer, RuleMode::Sequential, [&costs]),
        sns: mock_client!(aws_sdk_sns, RuleMode::Sequential, [&publish]),
    };
    let handler = Handler::new(Config::from_env(&MapEnv::new(&[("NOTIFY_TOPIC_ARN", TOPIC)])).unwrap(), clients);
    let event = json!({"check": "monthly", "as_of": "2026-11-02"});

    let report = handler.handle(LambdaEvent::new(event, samples::context(FUNCTION))).await.unwrap();
    assert_eq!(report.requests, 1, "a monthly check reads no forecast");
    assert!(report.unavailable.is_none() && report.no_forecast.is_none());
    let c = report.comparison.as_ref().expect("a comparison");
    assert_eq!((c.period_start.to_string(), c.period_end.to_string()), ("2026-10-01".into(), "2026-11-01".into()));
    assert_eq!(c.total.actual, "106.77".parse().unwrap(), "the seed's 75.02 and the NAT's 31.75");
    assert_eq!(c.total.status, Status::Alert);
    assert!(c.drivers.iter().any(|d| d.name.starts_with("NAT Gateway data processing")), "{:?}", c.drivers);
    assert!(report.notified);
    assert_eq!((costs.num_calls(), publish.num_calls()), (1, 1));
    let json: Value = serde_json::from_str(&openclaw_ops_shared::run::to_json(&report)).unwrap();
    assert_eq!(json["check"], "monthly");
}

/// The weekly check mid-month: the month so far, then the forecast of the rest, which fails; the
/// run still compares and answers, saying why there is no forecast.
#[tokio::test]
async fn a_weekly_check_whose_forecast_fails_reports_it_and_still_compares() {
    let costs = mock!(aws_sdk_costexplorer::Client::get_cost_and_usage)
        .match_requests(|r| {
            let period = r.time_period().unwrap();
            (period.start(), period.end()) == ("2026-11-01", "2026-11-15")
        })
        .then_output(|| {
            GetCostAndUsageOutput::builder()
                .results_by_time(
                    ResultByTime::builder()
                        .groups(group("Amazon Elastic Compute Cloud - Compute", "EUC1-BoxUsage:t3.small", "7.15"))
                        .build(),
                )
                .build()
        });
    let forecast = mock!(aws_sdk_costexplorer::Client::get_cost_forecast)
        .match_requests(|r| {
            let period = r.time_period().unwrap();
            (period.start(), period.end()) == ("2026-11-15", "2026-12-01")
        })
        .then_error(|| {
            aws_sdk_costexplorer::operation::get_cost_forecast::GetCostForecastError::generic(
                aws_sdk_costexplorer::error::ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message("User: arn:aws:sts::123456789012:assumed-role/x is not authorized to perform: ce:GetCostForecast")
                    .build(),
            )
        });
    let publish = mock!(aws_sdk_sns::Client::publish).then_output(|| PublishOutput::builder().message_id("m").build());
    let clients = Clients {
        ce: mock_client!(aws_sdk_costexplorer, RuleMode::Sequential, [&costs, &forecast]),
        sns: mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&publish]),
    };
    let handler = Handler::new(Config::from_env(&MapEnv::new(&[("NOTIFY_TOPIC_ARN", TOPIC)])).unwrap(), clients);
    let event = json!({"check": "weekly", "as_of": "2026-11-15"});

    let report = handler.handle(LambdaEvent::new(event, samples::context(FUNCTION))).await.unwrap();
    assert_eq!(report.requests, 2);
    assert!(report.unavailable.is_none());
    let why = report.no_forecast.as_deref().expect("why there is no forecast");
    assert!(why.contains("AccessDenied"), "{why}");
    let c = report.comparison.as_ref().expect("the month so far is still compared");
    assert!(c.forecast.is_none());
    assert_eq!(c.total.actual, "7.15".parse().unwrap());
    assert_eq!((costs.num_calls(), forecast.num_calls()), (1, 1));
    assert_eq!(publish.num_calls(), usize::from(report.notified));
}
