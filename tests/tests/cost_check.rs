//! cost-check end to end: the real bootstrap against the emulator's Cost Explorer (answers loaded
//! per case), as the template's IAM policy, publishing to the `ops` topic. Each case's response and
//! notification are compared with a golden file (tests/golden/cost-check/<case>.json;
//! UPDATE_GOLDEN=1 rewrites them).

use std::collections::BTreeSet;

use integration_tests::account::ops_topic_with_capture;
use integration_tests::costs::{FULL_ON_BUDGET, full_with_nat_overrun, groups};
use integration_tests::emulator::Emulator;
use integration_tests::iam::Principal;
use integration_tests::runtime::Function;
use integration_tests::stack::Stack;
use integration_tests::workspace_root;
use serde_json::{Value, json};

const LOGICAL_ID: &str = "CostCheckFunction";

const BUDGET_MONTH_TO_DATE: &[(&str, &str, &str)] = &[
    ("Amazon Elastic Compute Cloud - Compute", "EUC1-BoxUsage:t3.micro", "4.10"),
    ("EC2 - Other", "EUC1-EBS:VolumeUsage.gp3", "0.80"),
    ("Amazon Virtual Private Cloud", "EUC1-PublicIPv4:InUseAddress", "1.83"),
    ("AWS Secrets Manager", "EUC1-AWSSecretsManager-Secrets", "0.60"),
    ("AWS WAF", "EUC1-WebACL", "2.50"),
];

struct Case {
    name: &'static str,
    tier: &'static str,
    event: Value,
    costs: Option<Value>,
    forecast: Option<Value>,
    failure: Option<Value>,
}

async fn run(case: Case) -> Value {
    let emulator = Emulator::start().await.unwrap();
    let admin = emulator.admin().await;
    let (topic_arn, queue_url) = ops_topic_with_capture(&admin).await.unwrap();
    if let Some(costs) = case.costs {
        emulator.queue_cost_and_usage(vec![costs]).await.unwrap();
    }
    if let Some(forecast) = case.forecast {
        emulator.queue_cost_forecasts(vec![forecast]).await.unwrap();
    }
    if let Some(failure) = case.failure {
        emulator.queue_cost_failures(vec![failure]).await.unwrap();
    }
    let stack = Stack::new(&emulator).await.unwrap().topic("OpsTopic", &topic_arn);
    let principal = Principal::for_function(&emulator, LOGICAL_ID, &stack).await.unwrap();
    let mut env = emulator.function_env(&principal.keys);
    env.extend([("NOTIFY_TOPIC_ARN".to_owned(), topic_arn), ("COST_TIER".to_owned(), case.tier.to_owned())]);
    let function = Function::start("cost-check", &env).await.unwrap();
    let response = function.invoke(&case.event).await.unwrap().response();

    // The request budget: counted by the function, and by the emulator.
    let calls = emulator.calls_by(&principal.keys).await.unwrap();
    assert!(calls.iter().all(|c| c.allowed), "{calls:?}");
    let ce_calls = calls.iter().filter(|c| c.action.starts_with("ce:")).count();
    assert_eq!(response["requests"], ce_calls, "{}: the count the function logs is the count it made", case.name);
    assert!(ce_calls <= 3);
    let output = function.output();
    assert!(output.contains(&format!("\"requests\":{ce_calls}")), "the log line carries the request count");
    let emf: Vec<Value> = output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(emf[0]["CostExplorerRequests"], json!(ce_calls as f64));
    if response["comparison"].is_object() {
        assert_eq!(
            emf[0]["CostEstimate"].as_f64(),
            response["comparison"]["total"]["estimate"].as_str().unwrap().parse().ok()
        );
        let lines = response["comparison"]["lines"].as_array().unwrap().len();
        assert_eq!(
            emf.iter().filter(|d| d.get("Line").is_some() && d.get("CostOverrun").is_some()).count(),
            lines,
            "one overrun metric per line"
        );
    }

    let notes = integration_tests::account::drain(&admin, &queue_url).await.unwrap();
    let got = json!({"response": response, "notifications": notes, "calls": calls.iter().map(|c| c.action.clone()).collect::<Vec<_>>()});
    let golden = workspace_root().join("tests/golden/cost-check").join(format!("{}.json", case.name));
    let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &text).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| panic!("no golden file {}", golden.display()));
    // Compared as JSON values: key order depends on serde_json features unified across the workspace.
    let want: Value = serde_json::from_str(&want).unwrap();
    assert_eq!(got, want, "{} differs from {}", case.name, golden.display());
    got
}

fn monthly() -> Value {
    json!({"check": "monthly", "as_of": "2026-11-02"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_tier_on_budget() {
    let got = run(Case {
        name: "full-on-budget",
        tier: "full",
        event: monthly(),
        costs: Some(groups(FULL_ON_BUDGET)),
        forecast: None,
        failure: None,
    })
    .await;
    assert_eq!(got["response"]["comparison"]["total"]["status"], "ok");
    assert_eq!(got["notifications"][0]["severity"], "info", "the monthly report is always sent");
    assert_eq!(got["response"]["requests"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_tier_nat_overrun() {
    let lines = full_with_nat_overrun();
    let got = run(Case {
        name: "full-nat-overrun",
        tier: "full",
        event: monthly(),
        costs: Some(groups(&lines)),
        forecast: None,
        failure: None,
    })
    .await;
    let note = &got["notifications"][0];
    assert_eq!(note["severity"], "critical", "NAT hours and data together put the total 27 % over");
    assert!(note["text"].as_str().unwrap().contains("Driving the overrun: NAT Gateway"));
    assert!(note["text"].as_str().unwrap().contains("Remove the NAT Gateway"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_tier_unexpected_service() {
    let mut lines = FULL_ON_BUDGET.to_vec();
    lines.push(("Amazon SageMaker", "EUC1-Notebk:ml.t3.medium", "38.16"));
    let got = run(Case {
        name: "full-unexpected-service",
        tier: "full",
        event: monthly(),
        costs: Some(groups(&lines)),
        forecast: None,
        failure: None,
    })
    .await;
    assert_eq!(got["notifications"][0]["severity"], "critical");
    assert_eq!(got["response"]["comparison"]["not_in_estimate"][0]["service"], "Amazon SageMaker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_tier_first_week_without_a_forecast() {
    let got = run(Case {
        name: "budget-first-of-month-no-forecast",
        tier: "budget",
        event: json!({"check": "weekly", "as_of": "2026-11-02"}),
        costs: Some(groups(&[("Amazon Elastic Compute Cloud - Compute", "EUC1-BoxUsage:t3.micro", "0.25")])),
        forecast: None,
        failure: None,
    })
    .await;
    assert!(got["response"]["no_forecast"].as_str().unwrap().contains("DataUnavailableException"));
    assert_eq!(got["notifications"], json!([]), "a weekly check below the thresholds says nothing");
    assert_eq!(got["response"]["requests"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_tier_forecast_over_the_estimate() {
    let got = run(Case {
        name: "budget-forecast-over",
        tier: "budget",
        event: json!({"check": "weekly", "as_of": "2026-11-16"}),
        costs: Some(groups(BUDGET_MONTH_TO_DATE)),
        forecast: Some(json!({"result": {
            "Total": {"Amount": "16.9172", "Unit": "USD"},
            "ForecastResultsByTime": [{"TimePeriod": {"Start": "2026-11-16", "End": "2026-12-01"}, "MeanValue": "16.9172",
                                       "PredictionIntervalLowerBound": "14.10", "PredictionIntervalUpperBound": "19.70"}]
        }})),
        failure: None,
    })
    .await;
    let note = &got["notifications"][0];
    assert_eq!(note["severity"], "warning");
    assert_eq!(note["title"], "AWS cost forecast for November 2026: $26.75 of $22.54 estimated (+18.68 %)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_explorer_not_enabled_is_one_clear_notification_not_a_failure() {
    let got = run(Case {
        name: "ce-disabled",
        tier: "full",
        event: monthly(),
        costs: None,
        forecast: None,
        failure: Some(json!({"code": "DataUnavailableException", "message": "Cost Explorer has not been enabled for this account."})),
    })
    .await;
    assert_eq!(got["response"]["unavailable"]["kind"], "not_enabled");
    let note = &got["notifications"][0];
    assert!(note["text"].as_str().unwrap().contains("Enable Cost Explorer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_is_what_the_function_uses_and_bad_input_changes_nothing() {
    let emulator = Emulator::start().await.unwrap();
    let admin = emulator.admin().await;
    let (topic_arn, _) = ops_topic_with_capture(&admin).await.unwrap();
    emulator.queue_cost_and_usage(vec![groups(FULL_ON_BUDGET)]).await.unwrap();
    emulator
        .queue_cost_forecasts(vec![
            json!({"result": {"Total": {"Amount": "90", "Unit": "USD"}, "ForecastResultsByTime": []}}),
        ])
        .await
        .unwrap();
    let stack = Stack::new(&emulator).await.unwrap().topic("OpsTopic", &topic_arn);
    let principal = Principal::for_function(&emulator, LOGICAL_ID, &stack).await.unwrap();
    let mut env = emulator.function_env(&principal.keys);
    env.push(("NOTIFY_TOPIC_ARN".to_owned(), topic_arn));
    let function = Function::start("cost-check", &env).await.unwrap();

    for bad in [json!({"check": "daily"}), json!({"check": "weekly", "dry_run": true}), json!([])] {
        let (error_type, _) = function.invoke(&bad).await.unwrap().error();
        assert_eq!(error_type, "InputError");
    }
    assert!(emulator.calls_by(&principal.keys).await.unwrap().is_empty());

    let report = function.invoke(&json!({"check": "weekly", "as_of": "2026-11-16"})).await.unwrap().response();
    assert_eq!(report["notified"], true);
    let used: BTreeSet<String> =
        emulator.calls_by(&principal.keys).await.unwrap().into_iter().map(|c| c.action).collect();
    let implicit = BTreeSet::from(["kms:GenerateDataKey".to_owned(), "kms:Decrypt".to_owned()]);
    assert_eq!(used, principal.granted.difference(&implicit).cloned().collect::<BTreeSet<_>>());
}
